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
. bench/common.sh
kib() { awk -v k="$2" '$1 == k":" {print $2}' "/proc/$1/status"; }
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }   # utime + stime of all threads, seconds

# serve N: start a server on the store in $WORK/data (pool of max(N,1) addresses), print
# "ready_s cpu_s anon_kib rss_kib hwm_kib", stop it.
serve() {
  local n=$1
  bench_config "$WORK/s.toml" 127.0.0.1:16767 "$WORK/data" 10.0.0.0/8 10.0.0.0 \
    "$(bench_ip 10.0.0.0 $((n > 1 ? n - 1 : 0)))" "$(bench_bulk_section 16767)"
  local t0
  t0=$(date +%s.%N)
  LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/s.toml" & SRV=$!
  bench_wait_tcp 16767 0.02
  local ready cpu_s
  ready=$(echo "$(date +%s.%N) - $t0" | bc)
  cpu_s=$(cpu $SRV)
  sleep 1   # let the allocator settle (nothing else runs: no clients)
  echo "$ready $cpu_s $(kib $SRV RssAnon) $(kib $SRV VmRSS) $(kib $SRV VmHWM)"
  bench_stop
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
