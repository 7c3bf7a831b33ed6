#!/usr/bin/env bash
# The third part of make demo: the agent as a daemon, with nothing done by hand.
#
# A fleet server on embedded defaults (its own MQTT broker) and a device
# running `rpmfleet-agent run` with policy apply. Importing a new advisory
# from a signed repository (updateinfo.xml plus primary.xml's locations and
# checksums) makes the server publish a signed notice; the agent fetches its
# signed plan, installs the fix, reports, and `rpmfleet cve` shows it patched,
# in about a second. Then the same with the broker off: the agent learns of
# the advisory at its next poll (10 s here; 1 h by default).
#
# The repository, its signing key and the device roots come from
# internal/rpmtest/cmd/demorepo (see apply.sh); the repository is served on a
# free loopback port by python3's http.server.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The demo's data is the repository's real-data fixtures (testdata/, each
# folder with its SOURCE.md), the same files the tests read.
osv=testdata/almalinux-osv/almalinux9.jsonl.gz
release=testdata/os-release/almalinux-9.2-host.os-release
work=$PWD/.demo/push
export RPMFLEET_LOG=warn
rm -rf "$work"
mkdir -p "$work"
show() { echo; echo "==> $*"; }
freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
pids=()
# Stopped newest first: the agent before its server.
cleanup() { for ((i = ${#pids[@]} - 1; i >= 0; i--)); do kill "${pids[i]}" 2>/dev/null || true; done; wait 2>/dev/null || true; }
trap cleanup EXIT

# The signed repository with ALSA-2023:3722 and, for each act, a device
# root holding the vulnerable openssl-libs 1:3.0.1-23.el9_0.
for d in pi-push pi-poll; do
  go run ./internal/rpmtest/cmd/demorepo -osv "$osv" -advisory ALSA-2023:3722 \
    -device-release "$release" -arch "$(uname -m)" -out "$work/$d" >/dev/null
done

# act NAME MQTT POLL: a server with --mqtt-listen MQTT, a repository server,
# and one enrolled device running rpmfleet-agent run, polling every POLL.
act() {
  local name=$1 mqtt=$2 poll=$3 dir=$work/$1
  local port repoport
  port=$(freeport)
  repoport=$(freeport)
  server=http://127.0.0.1:$port
  repo=http://127.0.0.1:$repoport/
  root=$dir/device
  python3 -m http.server --bind 127.0.0.1 --directory "$dir/repo" "$repoport" >"$dir/repo.log" 2>&1 &
  pids+=($!)
  bin/rpmfleet-server --data "$dir/server" --listen "127.0.0.1:$port" --mqtt-listen "$mqtt" 2>"$dir/server.log" &
  pids+=($!)
  for _ in $(seq 100); do [ -s "$dir/server/admin.token" ] && curl -fs "$server/" >/dev/null 2>&1 && curl -fs "$repo/repodata/repomd.xml" >/dev/null 2>&1 && break; sleep 0.1; done
  export RPMFLEET_SERVER=$server RPMFLEET_TOKEN=$(cat "$dir/server/admin.token")

  show "rpmfleet-server --data $dir/server --listen 127.0.0.1:$port --mqtt-listen $mqtt"
  token=$(bin/rpmfleet enroll-token create)
  show "rpmfleet-agent enroll --server $server --token ... --name $name"
  bin/rpmfleet-agent enroll --server "$server" --token "$token" --name "$name" --state-dir "$dir/state" --root "$root"
  cat >"$dir/agent.toml" <<EOF
server = "$server"
state_dir = "$dir/state"
root = "$root"

[[repo]]
id = "demo"
baseurl = "$repo"
gpgkey = ["$dir/RPM-GPG-KEY-demo"]

[policy]
mode = "apply"
security_only = true
min_severity = "moderate"
exclude = ["kernel*"]

[poll]
interval = "$poll"
jitter = "1s"
EOF
  show "rpmfleet-agent run --config $dir/agent.toml   (policy apply, poll every $poll)"
  sed 's/^/    /' "$dir/agent.toml"
  RPMFLEET_LOG=info bin/rpmfleet-agent run --config "$dir/agent.toml" 2>"$dir/agent.log" &
  pids+=($!)
  # The daemon's first report makes the device known with its packages.
  for _ in $(seq 100); do
    bin/rpmfleet device "$name" --json 2>/dev/null | python3 -c 'import json,sys; sys.exit(not json.load(sys.stdin)["packages"])' 2>/dev/null && break
    sleep 0.1
  done
  echo "installed: $(rpm --root "$root" --dbpath /var/lib/rpm -q openssl-libs)"
  show "rpmfleet device $name"
  bin/rpmfleet device "$name"

  show "rpmfleet import $repo   (the signed repository: ALSA-2023:3722 and its packages' checksums)"
  local t0 t1
  t0=$(date +%s.%N)
  bin/rpmfleet import "$repo"
  echo "waiting, doing nothing..."
  for _ in $(seq 600); do
    if bin/rpmfleet cve CVE-2023-2650 --json | python3 -c 'import json,sys; sys.exit(not json.load(sys.stdin)["patched"])'; then break; fi
    sleep 0.05
  done
  t1=$(date +%s.%N)
  if ! bin/rpmfleet cve CVE-2023-2650 --json | grep -q "\"device\": \"$name\""; then
    echo "the device was not reported patched within 30 s; see $dir/agent.log and $dir/server.log" >&2
    exit 1
  fi
  echo "installed: $(rpm --root "$root" --dbpath /var/lib/rpm -q openssl-libs)"
  awk -v a="$t0" -v b="$t1" 'BEGIN { printf "from the import to the server knowing the device patched: %.1f s\n", b - a }'
  show "rpmfleet cve CVE-2023-2650"
  bin/rpmfleet cve CVE-2023-2650
  show "rpmfleet device $name"
  bin/rpmfleet device "$name"
  echo "(pending-reboot: a new openssl-libs takes effect at the next reboot, which this policy leaves to you)"
  show "what the agent logged (level info and up; $dir/agent.log)"
  grep -E 'notice|plan|appl|report' "$dir/agent.log" | head -8 | cut -c1-220 | sed 's/^/    /' || true
}

echo "Act 1: push. The server's embedded MQTT broker tells the device at once."
act pi-push "127.0.0.1:$(freeport)" 1h
echo
echo "Act 2: no broker (--mqtt-listen off). The agent learns of it at its next poll."
act pi-poll off 10s
