#!/usr/bin/env bash
# UDP leasequery/s (RFC 4388, by IP) of `leasewire serve` on its embedded SQLite store and on a PostgreSQL store,
# same run, alternating: each store holds COUNT active bindings (`bench populate`), and `bench leasequery`
# keeps 256 queries outstanding for SECONDS per step.
#
#   sudo bench/leasequery_pg.sh [count] [seconds] [rounds]     (defaults 100000, 5, 2)
#
# PostgreSQL is a throwaway cluster in the work directory (initdb, Unix socket only, default durability), run
# as the postgres user, stopped and removed on exit. Needs root (for that), postgresql, and a release build.
set -euo pipefail
cd "$(dirname "$0")/.."
COUNT=${1:-100000} SECS=${2:-5} ROUNDS=${3:-2}
. bench/common.sh
bench_postgres
"$PGBIN/psql" -h "$WORK/pg" -U postgres -qAt -c "CREATE DATABASE lw"
PG="$PG dbname=lw"

wait_udp() { until ss -Hlun "sport = :$1" | grep -q .; do sleep 0.1; done; }
# serve NAME STORE_LINE: `serve` on 127.0.0.1:16790 in the background as $SRV.
serve() {
  cat > "$WORK/$1.toml" <<TOML
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:16790"]
data-dir = "$WORK/$1"
$2
[leasequery]
allow = ["127.0.0.0/8"]
rate-limit = 0
[[subnet]]
subnet = "10.0.0.0/8"
pools = [{ start = "10.0.0.0", end = "10.1.134.159" }]
TOML
  LEASEWIRE_LOG=error "$BIN" serve --config "$WORK/$1.toml" & SRV=$!
  wait_udp 16790
}
stop() { kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=; }
query() { "$BIN" bench leasequery --server 127.0.0.1:16790 --giaddr 127.0.0.1 --first 10.0.0.0 --count "$COUNT" \
  --seconds "$SECS" --window 256 2>/dev/null | tail -1; }

"$BIN" bench populate --data-dir "$WORK/sqlite" --first 10.0.0.0 --count "$COUNT" >/dev/null
"$BIN" bench populate --postgres "$PG" --first 10.0.0.0 --count "$COUNT" >/dev/null
for r in $(seq "$ROUNDS"); do
  serve sqlite ''
  printf 'round %s sqlite:     %s\n' "$r" "$(query)"
  stop
  serve pg "store = { kind = \"postgres\", url = \"$PG\", name = \"q\" }"
  printf 'round %s postgresql: %s\n' "$r" "$(query)"
  stop
done
