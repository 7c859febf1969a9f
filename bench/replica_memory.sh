#!/usr/bin/env bash
# Memory of `leasewire watch`'s replica at N bindings: a server holding N active bindings, a watcher that
# seeds itself by Bulk Leasequery and goes active; its resident memory (VmRSS) once the seed is complete,
# minus the same watcher's memory against an empty server, divided by N. With and without --db.
#
#   bench/replica_memory.sh [N]        (default: 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
N=${1:-1000000}
. bench/common.sh
W=
bench_on_exit '[ -z "$W" ] || kill $W 2>/dev/null'
rss() { awk '/VmRSS/ {print $2}' "/proc/$1/status"; }   # KiB

serve() { # $1 = count
  rm -rf "$WORK/data"
  [ "$1" -gt 0 ] && "$BIN" bench populate --data-dir "$WORK/data" --first 10.0.0.0 --count "$1" >/dev/null
  bench_config "$WORK/s.toml" 127.0.0.1:16768 "$WORK/data" 10.0.0.0/8 10.0.0.0 10.0.0.0 "$(bench_bulk_section 16768)
[active-leasequery]
enabled = true
insecure = true"
  LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/s.toml" & SRV=$!
  bench_wait_tcp 16768
}

watch_rss() { # $@ = extra watch flags; prints RSS KiB once the seed completed and catch-up ended
  rm -f "$WORK/r.sqlite3"* "$WORK/w.log"
  "$BIN" watch --server 127.0.0.1:16768 --json "$@" > /dev/null 2> "$WORK/w.log" & W=$!
  # Catch-up ends with CatchUpComplete, or with DataMissing (RFC 7724 §7.4.1) when the seed's base-time is
  # older than the server's history — as it is when the server started within the same second — and then
  # the gap fill completes the replica.
  until grep -qE "catch-up complete|gap filled" "$WORK/w.log"; do sleep 0.2; done
  sleep 1
  rss $W
  kill $W; wait $W 2>/dev/null || true
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, N=$N"
serve 0
base_mem=$(watch_rss); base_db=$(watch_rss --db "$WORK/r.sqlite3")
bench_stop
serve "$N"
t0=$(date +%s.%N)
full_mem=$(watch_rss)
printf 'in memory: seeded and caught up in %.1f s\n' "$(echo "$(date +%s.%N) - $t0" | bc)"
t0=$(date +%s.%N)
full_db=$(watch_rss --db "$WORK/r.sqlite3")
printf 'with --db: seeded and caught up in %.1f s; replica file %s\n' "$(echo "$(date +%s.%N) - $t0" | bc)" \
  "$(du -h "$WORK/r.sqlite3" | cut -f1)"
for m in "in-memory $base_mem $full_mem" "--db $base_db $full_db"; do
  set -- $m
  echo "$1: RSS $(($2 / 1024)) MiB empty, $(($3 / 1024)) MiB at $N bindings: $(( ($3 - $2) * 1024 / N )) bytes per binding"
done
