#!/usr/bin/env bash
# The server's memory and start-up with N bindings: `leasewire serve` on a store of N active bindings
# (`bench populate`), from exec to the Bulk Leasequery port accepting (store open + engine load), then its
# resident memory once loaded, minus the same server with an empty store. Anonymous memory (RssAnon) is the
# bindings; VmRSS also counts file pages the load mapped; VmHWM is the peak.
#
#   bench/memory.sh [N...]        (default: 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${*:-"1000000"}
BIN=${LEASEWIRE:-target/release/leasewire}
[ -x "$BIN" ] || cargo build --release -p leasewire
BIN=$(realpath "$BIN")
WORK=$(mktemp -d)
trap 'kill $SRV 2>/dev/null || true; rm -rf "$WORK"' EXIT
SRV=
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }   # utime + stime of all threads, seconds

# serve N: start a server on the store in $WORK/data (pool of max(N,1) addresses), print
# "ready_s cpu_s anon_kib rss_kib hwm_kib", stop it.
serve() {
  local n=$1 last
  last=$(python3 -c "import ipaddress; print(ipaddress.IPv4Address(int(ipaddress.IPv4Address('10.0.0.0')) + max($n, 1) - 1))")
  cat > "$WORK/s.toml" <<TOML
[server]
server-id = "127.0.0.1"
listen = ["127.0.0.1:16767"]
data-dir = "$WORK/data"
[bulk-leasequery]
listen = ["127.0.0.1:16767"]
allow = ["127.0.0.0/8"]
[[subnet]]
subnet = "10.0.0.0/8"
pools = [{ start = "10.0.0.0", end = "$last" }]
TOML
  local t0
  t0=$(date +%s.%N)
  LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/s.toml" & SRV=$!
  until (exec 3<>/dev/tcp/127.0.0.1/16767) 2>/dev/null; do sleep 0.02; done
  local ready cpu_s
  ready=$(echo "$(date +%s.%N) - $t0" | bc)
  cpu_s=$(cpu $SRV)
  sleep 1   # let the allocator settle (nothing else runs: no clients)
  echo "$ready $cpu_s $(kib $SRV RssAnon) $(kib $SRV VmRSS) $(kib $SRV VmHWM)"
  kill $SRV; wait $SRV 2>/dev/null || true
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); $BIN"
rm -rf "$WORK/data"; mkdir -p "$WORK/data"
read -r _ _ e_anon e_rss e_hwm <<<"$(serve 0)"
echo "empty server: RssAnon $((e_anon / 1024)) MiB, VmRSS $((e_rss / 1024)) MiB, VmHWM $((e_hwm / 1024)) MiB"
for N in $SIZES; do
  rm -rf "$WORK/data"
  "$BIN" bench populate --data-dir "$WORK/data" --first 10.0.0.0 --count "$N" >/dev/null
  read -r ready cpu_s anon rss hwm <<<"$(serve "$N")"
  printf '%9s bindings: ready in %.2f s (%.2f s CPU); above empty: RssAnon %d MiB (%d B/binding), VmRSS %d MiB (%d B/binding), peak VmHWM %d MiB (%d B/binding)\n' \
    "$N" "$ready" "$cpu_s" $(((anon - e_anon) / 1024)) $(((anon - e_anon) * 1024 / N)) \
    $(((rss - e_rss) / 1024)) $(((rss - e_rss) * 1024 / N)) $(((hwm - e_hwm) / 1024)) $(((hwm - e_hwm) * 1024 / N))
done
