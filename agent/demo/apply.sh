#!/usr/bin/env bash
# The second half of make demo: apply an advisory, verified, with rollback.
#
# internal/rpmtest/cmd/demorepo makes a throwaway Ed25519 signing key, a signed
# repository holding the real ALSA-2023:3722 (openssl, CVE-2023-2650) as
# updateinfo.xml with stub packages of the fixed and the installed versions,
# and a device root of this machine's arch with the old versions installed
# by the real rpm. A fleet server (rpmfleet-server on embedded defaults, in a
# temporary data folder on a free loopback port) imports all AlmaLinux 9
# advisories and the device enrols and reports: `rpmfleet cve CVE-2023-2650`
# lists it as exposed. The agent then applies the advisory twice: once with a
# health check that fails (it rolls back), once with one that passes. After
# the next report the same query lists the device as patched.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The demo's data is the repository's real-data fixtures (testdata/, each
# folder with its SOURCE.md), the same files the tests read.
osv=testdata/almalinux-osv/almalinux9.jsonl.gz
release=testdata/os-release/almalinux-9.2-host.os-release
work=.demo/apply
agent=bin/rpmfleet-agent
rm -rf "$work"
go run ./internal/rpmtest/cmd/demorepo -osv "$osv" -advisory ALSA-2023:3722 \
  -device-release "$release" -arch "$(uname -m)" -out "$work" >/dev/null
root=$work/device
args=(--root "$root" --repo "$work/repo" --gpgkey "$work/RPM-GPG-KEY-demo" --advisory ALSA-2023:3722 --state-dir "$work/state")
show() { echo; echo "==> $*"; }
export RPMFLEET_LOG=warn

# The fleet server, on a free loopback port, stopped when the demo ends.
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
server=http://127.0.0.1:$port
bin/rpmfleet-server --data "$work/server" --listen "127.0.0.1:$port" 2>"$work/server.log" &
server_pid=$!
trap 'kill $server_pid 2>/dev/null || true' EXIT
for _ in $(seq 100); do [ -s "$work/server/admin.token" ] && curl -fs "$server/" >/dev/null 2>&1 && break; sleep 0.1; done
export RPMFLEET_SERVER=$server RPMFLEET_TOKEN=$(cat "$work/server/admin.token")

show "rpmfleet-server --data $work/server --listen 127.0.0.1:$port   (admin token in $work/server/admin.token)"
show "rpmfleet import $osv"
bin/rpmfleet import "$osv"
show "rpmfleet enroll-token create; rpmfleet-agent enroll; rpmfleet-agent report --once"
token=$(bin/rpmfleet enroll-token create)
"$agent" enroll --server "$server" --token "$token" --name demo-pi --state-dir "$work/state"
"$agent" report --once --root "$root" --state-dir "$work/state"
show "rpmfleet cve CVE-2023-2650"
# Exit code 100 is the CLI's "devices exposed", as dnf check-update's.
bin/rpmfleet cve CVE-2023-2650 || { rc=$?; [ "$rc" -eq 100 ] || exit "$rc"; echo "(exit code 100: devices are exposed)"; }

show "rpmfleet-agent apply ${args[*]} --dry-run"
"$agent" apply "${args[@]}" --dry-run

show "rpmfleet-agent apply ... --health-check false      (a health check that fails: the update is rolled back)"
"$agent" apply "${args[@]}" --health-check false || echo "(exit code $?: 3 means rolled back)"
echo "installed now: $(rpm --root "$PWD/$root" --dbpath /var/lib/rpm -q openssl-libs)"

show "rpmfleet-agent apply ... --health-check 'test -s $root/usr/share/rpmfleet-demo/openssl-libs.txt'"
"$agent" apply "${args[@]}" --health-check "test -s $root/usr/share/rpmfleet-demo/openssl-libs.txt"
echo "installed now: $(rpm --root "$PWD/$root" --dbpath /var/lib/rpm -q openssl-libs)"

show "rpmfleet-agent history --state-dir $work/state"
"$agent" history --state-dir "$work/state"

show "rpmfleet-agent check --root $root --advisories $work/repo"
"$agent" check --root "$root" --advisories "$work/repo"

show "rpmfleet-agent report --once; rpmfleet cve CVE-2023-2650"
"$agent" report --once --root "$root" --state-dir "$work/state"
bin/rpmfleet cve CVE-2023-2650
