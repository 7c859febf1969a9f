#!/usr/bin/env bash
# A/B of two leasewire binaries in one sitting, alternating A and B each round so that load drift hits both:
# DORA/s (`bench dora --rate 0` against `serve`, durable, lease log off), leasequery/s over UDP at 100k
# bindings (`bench leasequery`), Bulk `--all` of 100k bindings (wall time and bindings/s), and Active
# delivery to 10 requestors under 5,000 ACKs/s (`bench active-latency`). For a change that must not move the
# figures (a refactor), both columns should agree within the run's noise.
#
#   bench/ab.sh A_BINARY B_BINARY [rounds]      (default 2 rounds; SECONDS_=5 per step)
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "$1") B=$(realpath "$2") ROUNDS=${3:-2} SECONDS_=${SECONDS_:-5}
LEASEWIRE=$A . bench/common.sh
# serve BIN NAME PORT SUBNET POOL_START POOL_END [SECTIONS]: `serve` on 127.0.0.1:PORT with data in
# $WORK/NAME, one subnet and SECTIONS, in the background as $SRV.
serve() {
  bench_config "$WORK/$2.toml" "127.0.0.1:$3" "$WORK/$2" "$4" "$5" "$6" "${7:-}"
  LEASEWIRE_LOG=error "$1" serve --config "$WORK/$2.toml" & SRV=$!
}

dora() { # BIN
  rm -rf "$WORK/d"
  serve "$1" d 16781 127.0.0.0/8 127.64.0.0 127.127.255.255 '[log]
leases = false'
  bench_wait_udp 16781
  "$1" bench dora --server 127.0.0.1:16781 --giaddr 127.0.0.1 --rate 0 --clients 1000000 --duration "${SECONDS_}s" \
    2>/dev/null | grep -o '[0-9]* DORA/s'
  bench_stop
}

leasequery_and_bulk() { # BIN
  rm -rf "$WORK/q"
  "$1" bench populate --data-dir "$WORK/q" --first 10.0.0.0 --count 100000 >/dev/null
  serve "$1" q 16782 10.0.0.0/8 10.0.0.0 10.1.134.159 "[leasequery]
allow = [\"127.0.0.0/8\"]
rate-limit = 0
$(bench_bulk_section 16782)"
  bench_wait_tcp 16782
  "$1" bench leasequery --server 127.0.0.1:16782 --giaddr 127.0.0.1 --first 10.0.0.0 --count 100000 \
    --seconds "$SECONDS_" --window 256 2>/dev/null | tail -1
  printf 'bulk --all: %s\n' "$("$1" bulk --server 127.0.0.1:16782 --all --count 2>&1 | grep 'binding(s)')"
  bench_stop
}

active() { # BIN
  rm -rf "$WORK/a"
  serve "$1" a 16783 127.0.0.0/8 127.64.0.0 127.127.255.255 "$(bench_bulk_section 16783)
max-connections-per-requestor = 200
[active-leasequery]
enabled = true
insecure = true"
  bench_wait_tcp 16783
  "$1" bench active-latency --tcp 127.0.0.1:16783 --dhcp 127.0.0.1:16783 --requestors 10 --rate 5000 \
    --seconds "$SECONDS_" 2>/dev/null | grep -i 'delivery\|ack' | head -3
  bench_stop
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); A=$A B=$B"
for r in $(seq "$ROUNDS"); do
  # A first in odd rounds, B first in even ones: a drift through the run then hits both sides alike.
  order="A B"; [ $((r % 2)) = 0 ] && order="B A"
  for side in $order; do
    bin=$A; [ $side = B ] && bin=$B
    echo "## round $r $side"
    printf 'DORA: %s\n' "$(dora "$bin")"
    leasequery_and_bulk "$bin" | sed 's/^/leasequery\/bulk: /'
    active "$bin" | sed 's/^/active 10: /'
  done
done
