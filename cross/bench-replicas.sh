#!/usr/bin/env bash
# Issue 15's scale figures: the fleet simulator (internal/fleetsim) against
# 2 rpmfleet-server replicas on PostgreSQL (cross/replicas.sh), then
# against one server on SQLite, with DEVICES simulated devices each
# holding an MQTT session, and the AlmaLinux 9 OSV database imported once
# they are connected (push fan-out). Prints each run's JSON
# (docs/benchmarks.md, "Scale-out").
#
#   bash cross/bench-replicas.sh                # DEVICES=10000 REPLICAS=2 (ONLY=postgres or sqlite)
#
# FLEETSIM_FLAGS go to fleetsim as they are; at 100,000 devices:
#   DEVICES=100000 FLEETSIM_FLAGS="-sessions 10000 -delta-only -plans 10000 -cve-queries 20" bash cross/bench-replicas.sh
set -euo pipefail
cd "$(dirname "$0")/.."
DEVICES=${DEVICES:-10000}
REPLICAS=${REPLICAS:-2}
VARIANTS=${VARIANTS:-200}
IMPORT=${IMPORT:-testdata/almalinux-osv/almalinux9.jsonl.gz}
read -r -a extra <<<"${FLEETSIM_FLAGS:-}"
work=$(mktemp -d /tmp/rpmfleet-bench.XXXXXX)
chmod 0755 "$work"
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n "$(ulimit -Hn)"
go build -o "$work/" ./internal/fleetsim/cmd/fleetsim ./server/cmd/rpmfleet-server
waitfor() { for _ in $(seq 600); do grep -q "$2" "$1" 2>/dev/null && return; sleep 0.1; done; echo "$1: no '$2'" >&2; cat "$1" >&2; exit 1; }

# PostgreSQL, REPLICAS replicas (ONLY=sqlite skips them).
if [ "${ONLY:-}" != sqlite ]; then
N=$REPLICAS DIR=$work/pg PORT=18080 MQTT_PORT=18830 PG_PORT=15433 bash cross/replicas.sh >"$work/replicas.out" 2>&1 &
pids+=($!)
waitfor "$work/replicas.out" "Ctrl-C"
servers=""; brokers=""; rpids=""
for i in $(seq 0 $((REPLICAS - 1))); do
  servers+="${servers:+,}http://127.0.0.1:$((18080 + i))"
  brokers+="${brokers:+,}tcp://127.0.0.1:$((18830 + i))"
  rpids+="${rpids:+,}$(sed -n "s/^replica $i: .*(pid \([0-9]*\),.*/\1/p" "$work/replicas.out")"
done
echo "== PostgreSQL, $REPLICAS replicas, $DEVICES devices"
"$work/fleetsim" -servers "$servers" -brokers "$brokers" -admin-token-file "$work/pg/replica-0/admin.token" \
  -devices "$DEVICES" -variants "$VARIANTS" -import "$IMPORT" -rss-pids "$rpids" "${extra[@]}"
kill "${pids[0]}"; wait "${pids[0]}" 2>/dev/null || true; pids=()
fi
[ "${ONLY:-}" = postgres ] && exit 0

# SQLite, one server.
mkdir -p "$work/sqlite"; chmod 0700 "$work/sqlite"
"$work/rpmfleet-server" --data "$work/sqlite" --listen 127.0.0.1:18090 --mqtt-listen 127.0.0.1:18840 2>"$work/sqlite.log" &
pids+=($!)
waitfor "$work/sqlite.log" "serving the API"
echo "== SQLite, 1 server, $DEVICES devices"
"$work/fleetsim" -servers http://127.0.0.1:18090 -brokers tcp://127.0.0.1:18840 -admin-token-file "$work/sqlite/admin.token" \
  -devices "$DEVICES" -variants "$VARIANTS" -import "$IMPORT" -rss-pids "${pids[0]}" "${extra[@]}"
