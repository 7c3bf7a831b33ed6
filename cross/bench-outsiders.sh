#!/usr/bin/env bash
# Held MQTT connections before login, as an outsider would hold them, on
# rpmfleet-server's embedded broker now, on the broker before issue 11
# (OLD, default 3d2e5f6, the main before issue 11; mochi's own listener), and on Mosquitto, in one
# run. Prints each broker's resident set before and while 1,000 sockets are
# held, and how many it closed. Measures only; the limits are asserted by
# server/internal/broker and server/integration tests.
#
#   bash cross/bench-outsiders.sh            # N=1000 BYTES="0 200000" HOLD=15s SOURCES=1
#   SOURCES=1000 bash cross/bench-outsiders.sh   # each socket from its own loopback address
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-1000}
HOLD=${HOLD:-15s}
OLD=${OLD:-3d2e5f6}
work=$(mktemp -d)
pids=()
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  git worktree remove --force "$work/old" 2>/dev/null || true
  rm -rf "$work"
}
trap cleanup EXIT
ulimit -n 8192

freeport() { python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])'; }
waitport() { for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null && return; sleep 0.1; done; echo "port $1 never opened" >&2; exit 1; }

go build -o "$work/holdconns" ./internal/attacker/cmd/holdconns
go build -o "$work/new" ./server/cmd/rpmfleet-server
git worktree add --quiet --detach "$work/old" "$OLD"
(cd "$work/old" && go build -o "$work/oldsrv" ./server/cmd/rpmfleet-server)

server() { # binary label
  local port mport
  port=$(freeport); mport=$(freeport)
  mkdir -p "$work/data-$2"
  "$1" --data "$work/data-$2" --listen "127.0.0.1:$port" --mqtt-listen "127.0.0.1:$mport" 2>"$work/$2.log" &
  pids+=($!)
  waitport "$mport"
  echo "$! $mport"
}
mosquitto_start() {
  local mport
  mport=$(freeport)
  printf 'listener %s 127.0.0.1\nallow_anonymous false\npassword_file /dev/null\n' "$mport" >"$work/mosquitto.conf"
  mosquitto -c "$work/mosquitto.conf" 2>"$work/mosquitto.log" &
  pids+=($!)
  waitport "$mport"
  echo "$! $mport"
}

echo "machine: $(nproc) cores, $(uname -r); $(go version | awk '{print $3}'); $(mosquitto -h 2>/dev/null | head -1)"
for bytes in ${BYTES:-0 200000}; do
  for which in new old mosquitto; do
    case $which in
      new) read -r pid port < <(server "$work/new" new-$bytes) ;;
      old) read -r pid port < <(server "$work/oldsrv" old-$bytes) ;;
      mosquitto) read -r pid port < <(mosquitto_start) ;;
    esac
    echo "== $which: $N connections, each sending ${bytes} bytes of an unfinished CONNECT, held $HOLD"
    "$work/holdconns" -addr "127.0.0.1:$port" -n "$N" -bytes "$bytes" -hold "$HOLD" -pid "$pid" -sources "${SOURCES:-1}"
    kill "$pid"; wait "$pid" 2>/dev/null || true
  done
done
