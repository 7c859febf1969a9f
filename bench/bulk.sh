#!/usr/bin/env bash
# Bulk Leasequery throughput end to end on loopback: `leasewire bulk --all` and `--relay-id` against
# `leasewire serve` holding N bindings; requestor and server CPU seconds and peak memory.
#
#   bench/bulk.sh [N...]        (default: 100000 1000000)
set -euo pipefail
cd "$(dirname "$0")/.."
SIZES=${*:-"100000 1000000"}
. bench/common.sh
cpu() { awk '{print ($14 + $15) / 100}' "/proc/$1/stat"; }   # utime + stime, seconds (USER_HZ 100)
hwm() { awk '/VmHWM/ {print $2 / 1024 " MiB"}' "/proc/$1/status"; }

echo "# $(date -u +%FT%TZ) $(nproc) cores"
for N in $SIZES; do
  rm -rf "$WORK/data"
  "$BIN" bench populate --data-dir "$WORK/data" --first 10.0.0.0 --count "$N" >/dev/null
  bench_config "$WORK/s.toml" 127.0.0.1:16767 "$WORK/data" 10.0.0.0/8 10.0.0.0 "$(bench_ip 10.0.0.0 $((N - 1)))" \
    "$(bench_bulk_section 16767)"
  t0=$(date +%s.%N)
  LEASEWIRE_LOG=warn "$BIN" serve --config "$WORK/s.toml" & SRV=$!
  bench_wait_tcp 16767
  printf '%8s bindings: server ready in %.1f s (store open + engine load)\n' "$N" "$(echo "$(date +%s.%N) - $t0" | bc)"
  for q in "--all --count" "--all --json" "--relay-id $(printf relay3 | xxd -p) --json"; do
    before=$(cpu $SRV)
    /usr/bin/time -f "%e s wall, requestor %U+%S s CPU, %M KiB peak" "$BIN" bulk --server 127.0.0.1:16767 $q \
      >/dev/null 2>"$WORK/err" || true
    after=$(cpu $SRV)
    printf '%8s bindings %-22s %s | %s | server %.2f s CPU\n' "$N" "$q" "$(grep binding "$WORK/err")" \
      "$(tail -1 "$WORK/err")" "$(echo "$after - $before" | bc)"
  done
  echo "         server peak memory $(hwm $SRV)"
  bench_stop
done
