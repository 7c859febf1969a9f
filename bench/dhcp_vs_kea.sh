#!/usr/bin/env bash
# DORA/s of `leasewire serve` and Kea 2.2 (memfile) under the same perfdhcp load, side by side.
#
#   sudo bench/dhcp_vs_kea.sh [seconds-per-step] [rates...]
#
# Two network namespaces joined by a veth pair: perfdhcp acts as a relay (giaddr 10.77.0.2) in one, the server
# listens on 10.77.0.1:67 in the other. For each rate, perfdhcp runs DORA for SECONDS seconds with a million
# distinct clients; a step passes when both exchanges drop < 0.1 %. Prints one line per server and rate.
# Needs root, perfdhcp and kea-dhcp4 (Debian: kea-admin, kea-dhcp4-server), and a release build of leasewire.
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
shift || true
RATES=${*:-"4000 8000 12000 16000 20000 24000 28000"}
. bench/common.sh
. bench/lab.sh
bench_socket_buffers
lab_up 10.77.0.1/24 10.77.0.2/24

lab_dhcp_config

step() { # $1 = label, $2 = rate
  local out rate d1 d2
  out=$(ip netns exec $C $GEN_PIN perfdhcp -4 -l 10.77.0.2 -r "$2" -R 1000000 -p "$SECS" 10.77.0.1 2>&1 || true)
  rate=$(echo "$out" | awk '/^Rate:/ {print $2; exit}')
  d1=$(echo "$out" | awk '/DISCOVER-OFFER/ {f=1} f && /drops ratio/ {print $3; exit}' | tr -d '%')
  d2=$(echo "$out" | awk '/REQUEST-ACK/ {f=1} f && /drops ratio/ {print $3; exit}' | tr -d '%')
  local ok=PASS
  awk -v a="${d1:-100}" -v b="${d2:-100}" 'BEGIN { exit !(a < 0.1 && b < 0.1) }' || ok=fail
  printf '%-22s target %6s/s  achieved %9s DORA/s  drops offer %6s%%  ack %6s%%  %s\n' "$1" "$2" "${rate:-?}" "${d1:-?}" "${d2:-?}" "$ok"
}

run_server() { # $1 = label, $2... = command
  local label=$1; shift
  for r in $RATES; do
    rm -rf "$WORK/lw-data" "$WORK/kea-leases.csv"*
    ip netns exec $S $SRV_PIN "$@" >"$WORK/server.log" 2>&1 &
    local pid=$!
    sleep 1.5
    step "$label" "$r"
    kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
  done
}

echo "# $(date -u +%FT%TZ) $(nproc) cores; $SECS s per step; perfdhcp $(perfdhcp -v 2>&1 | head -1)"
ONLY=${ONLY:-all}
# PIN=1: the server on CPU 0 and perfdhcp on CPU 1, so the generator cannot take the server's core.
GEN_PIN= SRV_PIN=
if [ "${PIN:-0}" = 1 ]; then GEN_PIN="taskset -c 1"; SRV_PIN="taskset -c 0"; echo "# pinned: server CPU 0, perfdhcp CPU 1"; fi
[ "$ONLY" = kea ] || run_server "leasewire (durable)" env LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/leasewire.toml"
[ "$ONLY" = leasewire ] && exit 0
# Kea wants its pid and lock files under /run/kea unless told otherwise.
kea_conf 0; run_server "kea 2.2 1 thread" env KEA_PIDFILE_DIR="$WORK" KEA_LOCKFILE_DIR="$WORK" kea-dhcp4 -c "$WORK/kea.json"
kea_conf 2; run_server "kea 2.2 2 threads" env KEA_PIDFILE_DIR="$WORK" KEA_LOCKFILE_DIR="$WORK" kea-dhcp4 -c "$WORK/kea.json"
