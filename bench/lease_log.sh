#!/usr/bin/env bash
# What the lease log costs: DORA throughput and ACK latency of `leasewire serve` with the INFO lease log on
# (written to a file, one line per ACK) and off (`[log] leases = false`), alternating in the same run.
#
#   bench/lease_log.sh [rounds]      (default 3; SECONDS_=6 per step)
#
# The load is `leasewire bench dora --rate 0` (as fast as the server answers): relayed DORA of new clients
# with RFC 8357 (no port 67), on loopback, from the same machine. Every DORA is a durable commit and, with
# the lease log on, one DHCPACK line.
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3}
SECONDS_=${SECONDS_:-6}
. bench/common.sh
echo "# $(date -u +%FT%TZ) $(nproc) cores, $SECONDS_ s per step, load $(cut -d' ' -f1-3 /proc/loadavg)"
step() { # $1 = on|off
  rm -rf "$WORK/data"
  local leases=true filter=info
  [ "$1" = off ] && leases=false filter=warn
  bench_config "$WORK/s.toml" 127.0.0.1:16771 "$WORK/data" 127.0.0.0/8 127.64.0.0 127.127.255.255 "[log]
leases = $leases"
  LEASEWIRE_LOG=$filter "$BIN" serve --config "$WORK/s.toml" 2>"$WORK/server.log" & SRV=$!
  bench_wait_udp 16771
  printf 'lease log %-3s ' "$1"
  "$BIN" bench dora --server 127.0.0.1:16771 --giaddr 127.0.0.1 --rate 0 --clients 1000000 \
    --duration "${SECONDS_}s" 2>/dev/null
  bench_stop
  printf '               lease log lines written: %s\n' "$(grep -c 'leasewire::lease: DHCPACK' "$WORK/server.log" || true)"
}
for _ in $(seq "$ROUNDS"); do
  step on
  step off
done
