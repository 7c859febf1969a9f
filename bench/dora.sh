#!/usr/bin/env bash
# DORA/s with `leasewire bench dora` as the load (batched relayed clients, no perfdhcp ceiling): against
# `leasewire bench dhcp-echo` (a server that answers without work: the generator's own ceiling), against
# `leasewire serve` (durable) and against Kea 2.2 (memfile, 1 and 2 threads); unpinned, then pinned (server on
# CPU 0, generator on CPU 1).
#
#   sudo bench/dora.sh [seconds] [window]
#
# Two network namespaces joined by a veth pair: the generator relays from 10.77.0.2 (replies come back to its
# own ports through the RFC 8357 relay-source-port sub-option), the server listens on 10.77.0.1:67. One line
# per run: the generator's summary (DORA/s, drops = exchanges without a reply within 2 s).
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
WINDOW=${2:-256}
. bench/common.sh
. bench/lab.sh
bench_socket_buffers
lab_up 10.77.0.1/24 10.77.0.2/24

lab_dhcp_config "[log]
leases = false"

run() { # $1 = label, $2... = server command
  local label=$1; shift
  rm -rf "$WORK/lw-data" "$WORK/kea-leases.csv"*
  ip netns exec $S $SRV_PIN "$@" >"$WORK/server.log" 2>&1 &
  local pid=$!
  sleep 1.5
  local out
  out=$(ip netns exec $C $GEN_PIN "$BIN" bench dora --server 10.77.0.1 --giaddr 10.77.0.2 --rate 0 \
    --duration "${SECS}s" --clients 1000000 --sockets 2 --window "$WINDOW" 2>/dev/null | tail -n 1)
  printf '%-26s %s\n' "$label" "$out"
  kill -TERM $pid 2>/dev/null || true; wait $pid 2>/dev/null || true
}

all() {
  run "dhcp-echo (no work)" "$BIN" bench dhcp-echo --listen 10.77.0.1:67 --threads 1
  run "leasewire (durable)" env LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/leasewire.toml"
  kea_conf 0; run "kea 2.2 1 thread" env KEA_PIDFILE_DIR="$WORK" KEA_LOCKFILE_DIR="$WORK" kea-dhcp4 -c "$WORK/kea.json"
  kea_conf 2; run "kea 2.2 2 threads" env KEA_PIDFILE_DIR="$WORK" KEA_LOCKFILE_DIR="$WORK" kea-dhcp4 -c "$WORK/kea.json"
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $SECS s per run, window $WINDOW per socket, 2 sockets"
GEN_PIN= SRV_PIN=
echo "## unpinned"; all
GEN_PIN="taskset -c 1" SRV_PIN="taskset -c 0"
echo "## pinned: server CPU 0, generator CPU 1"; all
