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

# serve NAME STORE_LINE: `serve` on 127.0.0.1:16790 in the background as $SRV.
serve() {
  bench_config "$WORK/$1.toml" 127.0.0.1:16790 "$WORK/$1" 10.0.0.0/8 10.0.0.0 10.1.134.159 "$2
[leasequery]
allow = [\"127.0.0.0/8\"]
rate-limit = 0"
  LEASEWIRE_LOG=error "$BIN" serve --config "$WORK/$1.toml" & SRV=$!
  bench_wait_udp 16790
}
query() { "$BIN" bench leasequery --server 127.0.0.1:16790 --giaddr 127.0.0.1 --first 10.0.0.0 --count "$COUNT" \
  --seconds "$SECS" --window 256 2>/dev/null | tail -1; }

"$BIN" bench populate --data-dir "$WORK/sqlite" --first 10.0.0.0 --count "$COUNT" >/dev/null
"$BIN" bench populate --postgres "$PG" --first 10.0.0.0 --count "$COUNT" >/dev/null
for r in $(seq "$ROUNDS"); do
  serve sqlite ''
  printf 'round %s sqlite:     %s\n' "$r" "$(query)"
  bench_stop
  serve pg "store = { kind = \"postgres\", url = \"$PG\", name = \"q\" }"
  printf 'round %s postgresql: %s\n' "$r" "$(query)"
  bench_stop
done
