#!/usr/bin/env bash
# Several servers on one PostgreSQL database: DORA/s of `leasewire serve` with 1 and 2 servers on PostgreSQL,
# and of Kea 2.2's PostgreSQL lease backend (1 and 2 threads), under the same perfdhcp load; then the
# change-feed latency between two servers.
#
#   sudo bench/pg_multi.sh [seconds-per-step] [rates...]
#
# Lab as in dhcp_vs_kea.sh (perfdhcp relays from one namespace to servers in another). PostgreSQL is a
# throwaway cluster in the work directory (initdb, Unix socket only, default durability: fsync on,
# synchronous_commit on), run as the postgres user, stopped and removed on exit. With two servers, two
# perfdhcp instances (own relay address, own client MACs) each send half the rate to one server; the line
# shows the sum. A step passes when every exchange drops < 0.1 %.
# Needs root, perfdhcp, kea-dhcp4 + kea-admin, postgresql, and a release build of leasewire and of the
# latency example (built if missing).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
shift || true
RATES=${*:-"1000 2000 3000 4000 6000"}
ONLY=${ONLY:-all}
LAT=${LATENCY:-${CARGO_TARGET_DIR:-target}/release/examples/pg_feed_latency}
. bench/common.sh
if [ "$ONLY" = all ] || [ "$ONLY" = latency ]; then
  [ -x "$LAT" ] || cargo build --release -p leasewire-store --example pg_feed_latency
fi
. bench/lab.sh
bench_socket_buffers
lab_up 10.77.0.1/24 10.77.0.2/24
ip -n $S addr add 10.77.0.3/24 dev $VS
ip -n $C addr add 10.77.0.4/24 dev $VC

bench_postgres

lw_conf() { # $1 = file, $2 = address, $3 = name, $4 = start-at
  bench_config "$1" "$2:67" "$WORK/lw-data-$3" 10.0.0.0/8 10.128.0.0 10.255.255.254 \
    "store = { kind = \"postgres\", url = \"$PG dbname=lw\", name = \"$3\", start-at = $4 }" "lease-time = 3600"
}
lw_conf "$WORK/a.toml" 10.77.0.1 a 0.0
lw_conf "$WORK/b.toml" 10.77.0.3 b 0.5

pg_kea_conf() { kea_conf "$1" "{ \"type\": \"postgresql\", \"name\": \"kea\", \"host\": \"$WORK/pg\", \"user\": \"postgres\" }"; }

# perfdhcp from relay address $1 to server $2 at rate $3 with client MACs from $4; prints "rate drop1 drop2".
perf() {
  local out
  out=$(ip netns exec $C perfdhcp -4 -l "$1" -r "$3" -R 1000000 -b "mac=$4" -p "$SECS" ${PERF_EXTRA:-} "$2" 2>&1 || true)
  echo "$out" >> "$WORK/perf.log"
  local rate d1 d2
  rate=$(echo "$out" | awk '/^Rate:/ {print $2; exit}')
  d1=$(echo "$out" | awk '/DISCOVER-OFFER/ {f=1} f && /drops ratio/ {print $3; exit}' | tr -d '%')
  d2=$(echo "$out" | awk '/REQUEST-ACK/ {f=1} f && /drops ratio/ {print $3; exit}' | tr -d '%')
  echo "${rate:-0} ${d1:-100} ${d2:-100}"
}

report() { # $1 = label, $2 = target, then "rate d1 d2" per perfdhcp
  local label=$1 target=$2; shift 2
  echo "$@" | awk -v l="$label" -v t="$target" '{
    r = 0; w1 = 0; w2 = 0
    for (i = 1; i <= NF; i += 3) { r += $i; if ($(i+1) > w1) w1 = $(i+1); if ($(i+2) > w2) w2 = $(i+2) }
    ok = (w1 < 0.1 && w2 < 0.1) ? "PASS" : "fail"
    printf "%-28s target %6s/s  achieved %9.1f DORA/s  worst drops offer %6s%%  ack %6s%%  %s\n", l, t, r, w1, w2, ok
  }'
}

start_bg() { # $1 = log, then the command (in the server namespace); sets BG to its pid
  ip netns exec $S "${@:2}" >"$1" 2>&1 &
  BG=$!
}

stop_all() { # SIGTERM, then wait (a server drains its queued commits first; SIGKILL after 60 s)
  kill -TERM "$@" 2>/dev/null || true
  for _ in $(seq 600); do
    kill -0 "$@" 2>/dev/null || break
    sleep 0.1
  done
  kill -9 "$@" 2>/dev/null || true
  wait "$@" 2>/dev/null || true
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; $SECS s per step; perfdhcp $(perfdhcp -v 2>&1 | head -1); $("$PGBIN/postgres" --version)"
if [ "$ONLY" = all ] || [ "$ONLY" = leasewire ]; then
  for r in $RATES; do
    sql -d postgres -c "DROP DATABASE IF EXISTS lw WITH (FORCE)" -c "CREATE DATABASE lw"
    start_bg "$WORK/a.log" env LEASEWIRE_LOG="${LW_LOG:-warn}" "$BIN" serve --config "$WORK/a.toml"
    a=$BG
    sleep 1.5
    report "leasewire 1 server (pg)" "$r" "$(perf 10.77.0.2 10.77.0.1 "$r" 00:0c:01:00:00:00)"
    stop_all "$a"
  done
  for r in $RATES; do
    sql -d postgres -c "DROP DATABASE IF EXISTS lw WITH (FORCE)" -c "CREATE DATABASE lw"
    start_bg "$WORK/a.log" env LEASEWIRE_LOG="${LW_LOG:-warn}" "$BIN" serve --config "$WORK/a.toml"
    a=$BG
    sleep 1
    start_bg "$WORK/b.log" env LEASEWIRE_LOG="${LW_LOG:-warn}" "$BIN" serve --config "$WORK/b.toml"
    b=$BG
    sleep 1.5
    half=$((r / 2))
    perf 10.77.0.2 10.77.0.1 "$half" 00:0c:01:00:00:00 > "$WORK/p1" &
    p1=$!
    perf 10.77.0.4 10.77.0.3 "$half" 00:0c:02:00:00:00 > "$WORK/p2"
    wait $p1
    report "leasewire 2 servers (pg)" "$r" "$(cat "$WORK/p1") $(cat "$WORK/p2")"
    dup=$(sql -d lw -c "SELECT count(*) FROM (SELECT hwaddr FROM lw_binding WHERE state = 2 GROUP BY hwaddr HAVING count(*) > 1) d")
    remote=$(sql -d lw -c "SELECT origin || ':' || count(*) FROM lw_binding GROUP BY origin ORDER BY origin" | tr '\n' ' ')
    echo "#   bindings by server: $remote; clients with two ACTIVE addresses: $dup"
    echo "#   refused commits (NAKs): a $(grep -c "commit refused" "$WORK/a.log" || true), b $(grep -c "commit refused" "$WORK/b.log" || true)"
    stop_all "$a" "$b"
  done
fi
if [ "$ONLY" = all ] || [ "$ONLY" = kea ]; then
  sql -d postgres -c "DROP DATABASE IF EXISTS kea" -c "CREATE DATABASE kea"
  kea-admin db-init pgsql -h "$WORK/pg" -u postgres -n kea >/dev/null 2>&1
  for threads in 0 2; do
    pg_kea_conf $threads
    for r in $RATES; do
      sql -d kea -c "TRUNCATE lease4"
      start_bg "$WORK/kea-run.log" env KEA_PIDFILE_DIR="$WORK" KEA_LOCKFILE_DIR="$WORK" kea-dhcp4 -c "$WORK/kea.json"
      k=$BG
      sleep 1.5
      report "kea 2.2 pg $([ $threads = 0 ] && echo 1 thread || echo "$threads threads")" "$r" \
        "$(perf 10.77.0.2 10.77.0.1 "$r" 00:0c:01:00:00:00)"
      stop_all "$k"
    done
  done
fi
if [ "$ONLY" = all ] || [ "$ONLY" = latency ]; then
  sql -d postgres -c "DROP DATABASE IF EXISTS lat" -c "CREATE DATABASE lat"
  for r in ${LAT_RATES:-500 2000 5000}; do
    echo "feed latency at $r commits/s: $("$LAT" "$PG dbname=lat" "$r" "$SECS")"
  done
fi
