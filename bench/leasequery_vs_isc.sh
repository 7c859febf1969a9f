#!/usr/bin/env bash
# RFC 4388 leasequeries answered per second, and latency, at 100k bindings: leasewire vs ISC dhcpd 4.4.3, with
# the same generator (`leasewire bench leasequery`), whose own ceiling is measured against `leasewire bench echo`.
#
#   sudo bench/leasequery_vs_isc.sh [seconds] [window]
set -euo pipefail
cd "$(dirname "$0")/.."
SECS=${1:-10}
WINDOW=${2:-128}
N=100000
. bench/common.sh
. bench/lab.sh
lab_up 10.64.0.1/10 10.64.0.2/10

gen() { ip netns exec $C "$BIN" bench leasequery --server 10.64.0.1 --giaddr 10.64.0.2 --first 10.65.0.0 --count $N --seconds "$SECS" --window "$WINDOW"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores, $N bindings, window $WINDOW, $SECS s"
printf 'generator ceiling (echo):  '
ip netns exec $S "$BIN" bench echo --listen 10.64.0.1:67 & E=$!; sleep 0.5
gen; kill $E; wait $E 2>/dev/null || true

# ISC dhcpd with N active leases in its lease file.
python3 - "$WORK/dhcpd.leases" $N <<'PY'
import sys, ipaddress, time
path, n = sys.argv[1], int(sys.argv[2])
t = time.gmtime(); e = time.gmtime(time.time() + 86400)
fmt = lambda x: time.strftime("%w %Y/%m/%d %H:%M:%S", x)
base = int(ipaddress.IPv4Address("10.65.0.0"))
with open(path, "w") as f:
    for i in range(n):
        ip = ipaddress.IPv4Address(base + i)
        mac = ":".join(f"{b:02x}" for b in [2, 0, (i >> 24) & 255, (i >> 16) & 255, (i >> 8) & 255, i & 255])
        f.write(f"lease {ip} {{\n  starts {fmt(t)};\n  ends {fmt(e)};\n  cltt {fmt(t)};\n  binding state active;\n"
                f"  next binding state free;\n  hardware ethernet {mac};\n}}\n")
PY
cat > "$WORK/dhcpd.conf" <<CONF
authoritative;
ping-check false;
allow leasequery;
default-lease-time 86400;
max-lease-time 86400;
subnet 10.64.0.0 netmask 255.192.0.0 { range 10.65.0.0 10.66.255.255; }
CONF
ip netns exec $S dhcpd -4 -f -q -cf "$WORK/dhcpd.conf" -lf "$WORK/dhcpd.leases" -pf "$WORK/dhcpd.pid" $VS >/dev/null 2>&1 & I=$!
sleep 3
printf 'ISC dhcpd 4.4.3:           '
gen; kill $I; wait $I 2>/dev/null || true

"$BIN" bench populate --data-dir "$WORK/lw" --first 10.65.0.0 --count $N >/dev/null
bench_config "$WORK/lw.toml" 10.64.0.1:67 "$WORK/lw" 10.64.0.0/10 10.65.0.0 10.66.255.255 '[leasequery]
allow = ["10.64.0.0/10"]
rate-limit = 0'
ip netns exec $S env LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/lw.toml" & L=$!
sleep 2
printf 'leasewire:                 '
gen; kill $L; wait $L 2>/dev/null || true
