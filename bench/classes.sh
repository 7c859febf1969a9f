#!/usr/bin/env bash
# DORA/s with address planning configured (50 client classes, 20 subnets, pools by class, class options)
# against the same binary with a single subnet, in one sitting, alternating which goes first each round so
# that load drift hits both (as bench/ab.sh does for two binaries). The load is `bench dora --rate 0`
# (relayed clients whose MACs start 02, with option 82) against `serve` on loopback, durable, lease log off.
#
# The planned configuration makes every packet do the work classes and subnets cost: 49 classes that never
# match it (vendor class, user class, circuit-id and remote-id patterns, MAC prefixes, giaddr prefixes) are
# evaluated before the one that does (MAC prefix 02 and giaddr 127.0.0.0/8, all-of), the served subnet is
# the last of 20, its class's pool is tried first and the class's options go into every reply.
#
#   bench/classes.sh [rounds]      (default 3 rounds; SECONDS_=8 per run; LEASEWIRE=binary)
set -euo pipefail
cd "$(dirname "$0")/.."
ROUNDS=${1:-3} SECONDS_=${SECONDS_:-8}
. bench/common.sh

head_() {
  cat <<TOML
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:16784"]
data-dir = "$WORK/data"
[log]
leases = false
TOML
}

single() {
  head_
  cat <<TOML
[[subnet]]
subnet = "127.0.0.0/8"
pools = [{ start = "127.64.0.0", end = "127.127.255.255" }]
[subnet.options]
routers = ["127.0.0.1"]
TOML
}

planned() {
  head_
  for i in $(seq 0 48); do
    echo "[[client-class]]"
    echo "name = \"class-$i\""
    case $((i % 6)) in
      0) echo "vendor-class-prefix = \"vendor-$i\"" ;;
      1) echo "user-class = \"user-$i\"" ;;
      2) printf 'circuit-id-prefix = "hex:ff%02x"\n' "$i" ;;
      3) printf 'remote-id = "hex:0a0b0c0d0e%02x"\n' "$i" ;;
      4) printf 'mac-prefix = "00:1a:%02x"\n' "$i" ;;
      5) echo "giaddr = \"10.$i.0.0/16\"" ;;
    esac
    echo "options = { ntp-servers = [\"10.$i.0.123\"] }"
  done
  cat <<TOML
[[client-class]]
name = "bench"
mac-prefix = "02"
giaddr = "127.0.0.0/8"
options = { domain-name = "bench.example", ntp-servers = ["127.0.0.123"] }
TOML
  for i in $(seq 0 18); do
    cat <<TOML
[[subnet]]
subnet = "10.$i.0.0/16"
pools = [{ start = "10.$i.1.0", end = "10.$i.1.255", allow = ["class-$i", "class-$((i + 19))"] }, { start = "10.$i.2.0", end = "10.$i.2.255", deny = ["class-$((i + 30))"] }]
options = { routers = ["10.$i.0.1"] }
TOML
  done
  cat <<TOML
[[subnet]]
subnet = "127.0.0.0/8"
pools = [
  { start = "127.1.0.0", end = "127.1.255.255", allow = ["class-1", "class-2"] },
  { start = "127.64.0.0", end = "127.127.255.255", allow = ["bench"], deny = ["class-0"] },
  { start = "127.128.0.0", end = "127.128.255.255", deny = ["bench"] },
]
[subnet.options]
routers = ["127.0.0.1"]
TOML
}

dora() { # CONFIG_FUNCTION
  rm -rf "$WORK/data"
  "$1" > "$WORK/$1.toml"
  LEASEWIRE_LOG=error "$BIN" serve --config "$WORK/$1.toml" & SRV=$!
  bench_wait_udp 16784
  "$BIN" bench dora --server 127.0.0.1:16784 --giaddr 127.0.0.1 --rate 0 --clients 1000000 --duration "${SECONDS_}s" \
    2>/dev/null | grep -o '[0-9]* DORA/s'
  bench_stop
}

"$BIN" check-config --config <(planned | sed "s|$WORK|/tmp|") | grep -E 'subnet 127|client classes' | cut -c1-120
echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $BIN; ${SECONDS_} s per run"
for r in $(seq "$ROUNDS"); do
  order="single planned"; [ $((r % 2)) = 0 ] && order="planned single"
  for c in $order; do
    printf 'round %s %-8s %s\n' "$r" "$c" "$(dora "$c")"
  done
done
