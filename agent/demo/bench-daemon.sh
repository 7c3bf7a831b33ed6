#!/usr/bin/env bash
# Issue 5's performance figures on the real binaries (docs/benchmarks.md,
# "Push (issue 5)"):
#
#   agent/demo/bench-daemon.sh [idle] [push] [dnf]     (all three by default)
#
#   idle  BenchmarkDaemonIdle: three idle agents enrolled with rpmfleet-server
#         --tls auto and its embedded broker (MQTT over TLS), each behind a
#         byte- and segment-counting proxy: resident set, CPU per idle minute,
#         bytes per poll and per keepalive, scaled to a day of the defaults
#         (144 pings, 3.9 polls while connected). 12 idle
#         minutes (RPMFLEET_BENCH_WINDOW to change), about 14 in all.
#   push  BenchmarkDaemonPush100: import to 100 real agents holding their
#         verified plan, through the embedded broker and then through
#         Mosquitto (RPMFLEET_BENCH_AGENTS to change the 100). About 2 minutes.
#   dnf   what a user would otherwise run on a timer: dnf makecache (as
#         dnf-makecache.timer and dnf-automatic do) against a repository of
#         all 1,783 AlmaLinux 9 advisories served over loopback HTTP, cold
#         and warm, under /usr/bin/time -v; and Mosquitto's idle resident set.
#
# Nothing here fails on a figure: the numbers are printed for the docs.
set -euo pipefail
cd "$(dirname "$0")/../.."
parts=("$@")
[ ${#parts[@]} -eq 0 ] && parts=(idle push dnf)
out=.demo/bench-daemon
mkdir -p "$out"

echo "machine: $(nproc) cores, $(uname -m), $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | awk -F': +' '/Model name/{print $2}')"
commit=$(git rev-parse --short HEAD 2>/dev/null || echo "not a git checkout")
git diff --quiet HEAD -- agent server pkg 2>/dev/null || commit="$commit (agent, server or pkg changed since)"
echo "commit: $commit, $(date -u '+%Y-%m-%d %H:%M UTC'), load average $(cut -d' ' -f1-3 /proc/loadavg)"

for part in "${parts[@]}"; do
  case $part in
  idle)
    go test -tags daemonbench -count=1 -run '^$' -bench BenchmarkDaemonIdle -benchtime 1x -timeout 60m ./server/integration/ | tee "$out/idle.txt"
    ;;
  push)
    go test -tags daemonbench -count=1 -run '^$' -bench BenchmarkDaemonPush100 -benchtime 1x -timeout 30m ./server/integration/ | tee "$out/push.txt"
    ;;
  dnf)
    repo=$out/repo
    if [ ! -f "$repo/repodata/repomd.xml" ]; then
      go run ./internal/rpmtest/cmd/advisoryrepo -osv testdata/almalinux-osv/almalinux9.jsonl.gz -ecosystem AlmaLinux:9 -out "$repo" >/dev/null
    fi
    port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    python3 -m http.server --bind 127.0.0.1 --directory "$repo" "$port" >/dev/null 2>&1 &
    httpd=$!
    trap 'kill $httpd 2>/dev/null' EXIT
    for _ in $(seq 50); do curl -sf "http://127.0.0.1:$port/repodata/repomd.xml" >/dev/null && break; sleep 0.1; done
    root=$out/dnfroot
    cache=$out/dnfcache
    rm -rf "$root" "$cache"
    mkdir -p "$root"
    makecache() {
      /usr/bin/time -v env HOME=/root dnf --installroot "$PWD/$root" --releasever 9 --setopt=reposdir=/dev/null \
        --setopt=cachedir="$PWD/$cache" --repofrompath="al9,http://127.0.0.1:$port/" --repo al9 \
        --setopt=al9.gpgcheck=0 -q makecache 2>&1 >/dev/null |
        awk -F': ' '/Maximum resident/{r=$2/1024} /User time/{u=$2} /System time/{s=$2} /Elapsed/{e=$2} END{printf "peak RSS %.1f MB, CPU %.0f ms, wall %s", r, (u+s)*1000, e}'
    }
    echo "repository: $(du -sb "$repo/repodata" | cut -f1) bytes of repodata ($(ls "$repo/repodata" | wc -l) files), served by python3 -m http.server on loopback"
    echo "dnf makecache, cold cache: $(makecache); cache now $(du -sb "$cache" | cut -f1) bytes"
    echo "dnf makecache, warm cache (metadata not expired): $(makecache)"
    kill $httpd 2>/dev/null || true
    trap - EXIT

    # Mosquitto, idle, no client: its resident set beside the embedded broker.
    conf=$(mktemp -d)
    mport=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
    printf 'listener %s 127.0.0.1\nallow_anonymous true\n' "$mport" >"$conf/m.conf"
    mosq=$(command -v mosquitto || echo /usr/sbin/mosquitto)
    "$mosq" -c "$conf/m.conf" >/dev/null 2>&1 &
    mpid=$!
    sleep 2
    echo "mosquitto $("$mosq" -h 2>/dev/null | awk '/mosquitto version/{print $3; exit}') idle, no client: $(awk '/VmRSS/{print $2, $3}' /proc/$mpid/status)"
    kill $mpid
    wait $mpid 2>/dev/null || true
    rm -rf "$conf"
    ;;
  *)
    echo "bench-daemon: unknown part $part (idle, push, dnf)" >&2
    exit 2
    ;;
  esac
done
