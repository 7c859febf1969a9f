#!/usr/bin/env bash
# Active Leasequery latency under DHCP load: for each N, a fresh `leasewire serve` (insecure Active
# Leasequery), `leasewire bench active-latency` running DORA at RATE ACKs/s while N requestors watch.
#
#   bench/active_latency.sh [N...]      (default: 0 1 10 100; RATE=5000 SECONDS_=6; REMOTE=1 runs the
#                                         watching requestors at nice 10, standing in for other machines)
set -euo pipefail
cd "$(dirname "$0")/.."
COUNTS=${*:-"0 1 10 100"}
RATE=${RATE:-5000}
SECONDS_=${SECONDS_:-6}
. bench/common.sh
echo "# $(date -u +%FT%TZ) $(nproc) cores, rate $RATE/s, $SECONDS_ s"
for N in $COUNTS; do
  rm -rf "$WORK/data"
  bench_config "$WORK/s.toml" 127.0.0.1:16770 "$WORK/data" 127.0.0.0/8 127.64.0.0 127.127.255.255 \
    "$(bench_bulk_section 16770)
max-connections = 200
max-connections-per-requestor = 200
max-pending-connections = 256
[active-leasequery]
enabled = true
insecure = true"
  LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/s.toml" & SRV=$!
  bench_wait_tcp 16770
  "$BIN" bench active-latency --tcp 127.0.0.1:16770 --dhcp 127.0.0.1:16770 --requestors "$N" --rate "$RATE" \
    --seconds "$SECONDS_" ${REMOTE:+--remote-requestors}
  bench_stop
done
