#!/usr/bin/env bash
# Three (or N) rpmfleet-server replicas on one PostgreSQL, on loopback, in
# one command (issue 15; docs/replicas.md). Each replica runs its embedded
# MQTT broker; they share the database and the notice key, and tell each
# other what they publish through PostgreSQL LISTEN/NOTIFY.
#
#   bash cross/replicas.sh                     # a throwaway PostgreSQL, 3 replicas
#   DB=postgres://rpmfleet@db/rpmfleet bash cross/replicas.sh   # an existing database
#   N=2 PORT=9080 MQTT_PORT=2883 DIR=/var/tmp/rf bash cross/replicas.sh
#
# Replica i (from 0) serves the API on 127.0.0.1:PORT+i and MQTT on
# 127.0.0.1:MQTT_PORT+i, with its data in DIR/replica-i. It stays in the
# foreground; Ctrl-C stops the replicas and the PostgreSQL it started.
# With no DB it starts PostgreSQL (initdb in DIR/postgres, as the
# "postgres" user when run as root) on PG_PORT.
set -euo pipefail
cd "$(dirname "$0")/.."
N=${N:-3}
PORT=${PORT:-8080}
MQTT_PORT=${MQTT_PORT:-1883}
PG_PORT=${PG_PORT:-5433}
DIR=${DIR:-$(mktemp -d /tmp/rpmfleet-replicas.XXXXXX)}
DB=${DB:-}
mkdir -p "$DIR"
chmod 0755 "$DIR"
pids=()
pgdata=""
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null || true; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null || true; done
  if [ -n "$pgdata" ]; then as_pg "$pgbin/pg_ctl" -D "$pgdata" -m fast stop >/dev/null || true; fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

as_pg() { if [ "$(id -u)" = 0 ]; then runuser -u postgres -- "$@"; else "$@"; fi; }
waitfile() { for _ in $(seq 200); do [ -s "$1" ] && return; sleep 0.1; done; echo "$1 never appeared" >&2; exit 1; }

go build -o "$DIR/bin/" ./server/cmd/rpmfleet-server ./server/cmd/rpmfleet

if [ -z "$DB" ]; then
  pgbin=$(pg_config --bindir 2>/dev/null || true)
  if [ ! -x "$pgbin/initdb" ]; then pgbin=$(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V | tail -1); fi
  [ -x "$pgbin/initdb" ] || { echo "PostgreSQL not found (initdb); give DB=postgres://..." >&2; exit 1; }
  pgdata=$DIR/postgres
  mkdir -p "$pgdata"
  if [ "$(id -u)" = 0 ]; then chown postgres "$pgdata"; fi
  as_pg "$pgbin/initdb" -D "$pgdata" -U postgres --auth=trust >"$DIR/initdb.log"
  as_pg "$pgbin/pg_ctl" -D "$pgdata" -l "$pgdata/server.log" -w \
    -o "-p $PG_PORT -k $pgdata -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null
  as_pg "$pgbin/createdb" -h 127.0.0.1 -p "$PG_PORT" -U postgres rpmfleet
  DB="postgres://postgres@127.0.0.1:$PG_PORT/rpmfleet?sslmode=disable"
  echo "PostgreSQL: $DB (data $pgdata)"
fi

for i in $(seq 0 $((N - 1))); do
  data=$DIR/replica-$i
  mkdir -p "$data"
  chmod 0700 "$data"
  if [ "$i" -gt 0 ]; then
    # Every replica signs with the same key: devices pin one.
    install -m 0600 "$DIR/replica-0/notice.key" "$data/notice.key"
  fi
  "$DIR/bin/rpmfleet-server" --data "$data" --db "$DB" \
    --listen "127.0.0.1:$((PORT + i))" --mqtt-listen "127.0.0.1:$((MQTT_PORT + i))" \
    2>"$data/server.log" &
  pids+=($!)
  waitfile "$data/admin.token"
  if [ "$i" -eq 0 ]; then waitfile "$data/notice.key"; fi
  echo "replica $i: http://127.0.0.1:$((PORT + i)) mqtt://127.0.0.1:$((MQTT_PORT + i)) (pid ${pids[-1]}, log $data/server.log)"
done
echo "admin token: $DIR/replica-0/admin.token"
echo "  $DIR/bin/rpmfleet login --server http://127.0.0.1:$PORT --token \"\$(cat $DIR/replica-0/admin.token)\""
echo "Ctrl-C stops them."
wait -n "${pids[@]}"
echo "a replica exited; stopping the others" >&2
exit 1
