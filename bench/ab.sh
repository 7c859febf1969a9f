#!/usr/bin/env bash
# A/B of two leasewire binaries in one sitting, alternating A and B each round so that load drift hits both:
# DORA/s (`bench dora --rate 0` against `serve`, durable, lease log off), leasequery/s over UDP at 100k
# bindings (`bench leasequery`), Bulk `--all` of 100k bindings (wall time and bindings/s), and Active
# delivery to 10 requestors under 5,000 ACKs/s (`bench active-latency`). For a change that must not move the
# figures (a refactor), both columns should agree within the run's noise.
#
#   bench/ab.sh A_BINARY B_BINARY [rounds]      (default 2 rounds; SECONDS_=5 per step)
#
# PIN=1 runs every server on CPU 0 and every generator/requestor on CPU 1 (`taskset`), so that the two do not
# compete for a core. PERF_STAT=1 adds, for the leasequery step, the server's counts divided by the answers:
# CPU time in user space and in the kernel (/proc), and from `perf stat` context switches, CPU migrations,
# system calls, and the receive, send and futex calls among them (software events and tracepoints: this VM
# has no hardware counters, so no instruction counts); and, for a Bulk `--all --json` after the `--count`
# one, the server's CPU time for it. Counts per answer move much less with the machine's load than a rate.
# CALLGRIND=1 runs only the leasequery step, with the server under valgrind's callgrind counting the
# instructions it executes in user space while the generator queries (window 16: the server runs some 50
# times slower): the exact count per answer, which the load does not move at all; the profiles stay in
# $CALLGRIND_OUT (default /tmp/ab-callgrind) for `callgrind_annotate`.
set -euo pipefail
cd "$(dirname "$0")/.."
A=$(realpath "$1") B=$(realpath "$2") ROUNDS=${3:-2} SECONDS_=${SECONDS_:-5}
LEASEWIRE=$A . bench/common.sh
SRV_CPU=() GEN_CPU=()
[ "${PIN:-0}" = 1 ] && SRV_CPU=(taskset -c 0) GEN_CPU=(taskset -c 1)
# cpu_ticks PID: the process's user and system CPU time in clock ticks ("USER SYS").
cpu_ticks() { awk '{print $14, $15}' "/proc/$1/stat"; }
PERF_EVENTS=task-clock,context-switches,cpu-migrations,raw_syscalls:sys_enter,syscalls:sys_enter_recvfrom
PERF_EVENTS+=,syscalls:sys_enter_recvmsg,syscalls:sys_enter_recvmmsg,syscalls:sys_enter_sendto
PERF_EVENTS+=,syscalls:sys_enter_sendmsg,syscalls:sys_enter_sendmmsg,syscalls:sys_enter_futex
PERF_EVENTS+=,syscalls:sys_enter_epoll_wait
# serve BIN NAME PORT SUBNET POOL_START POOL_END [SECTIONS]: `serve` on 127.0.0.1:PORT with data in
# $WORK/NAME, one subnet and SECTIONS, in the background as $SRV.
serve() {
  bench_config "$WORK/$2.toml" "127.0.0.1:$3" "$WORK/$2" "$4" "$5" "$6" "${7:-}"
  LEASEWIRE_LOG=error "${SRV_CPU[@]}" "$1" serve --config "$WORK/$2.toml" & SRV=$!
}

dora() { # BIN
  rm -rf "$WORK/d"
  serve "$1" d 16781 127.0.0.0/8 127.64.0.0 127.127.255.255 '[log]
leases = false'
  bench_wait_udp 16781
  "${GEN_CPU[@]}" "$1" bench dora --server 127.0.0.1:16781 --giaddr 127.0.0.1 --rate 0 --clients 1000000 --duration "${SECONDS_}s" \
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
  if [ "${PERF_STAT:-0}" = 1 ]; then
    perf stat -x, -o "$WORK/perf" -e "$PERF_EVENTS" -p "$SRV" &
    local perf=$! t0
    sleep 0.2
    t0=$(cpu_ticks "$SRV")
  fi
  local lq
  lq=$("${GEN_CPU[@]}" "$1" bench leasequery --server 127.0.0.1:16782 --giaddr 127.0.0.1 --first 10.0.0.0 \
    --count 100000 --seconds "$SECONDS_" --window 256 2>/dev/null | tail -1)
  echo "$lq"
  if [ "${PERF_STAT:-0}" = 1 ]; then
    local t1 n
    t1=$(cpu_ticks "$SRV")
    kill -INT "$perf"; wait "$perf" || true
    # Per answer; the few hundred ms around the run (perf's start, the generator's start and end) add little
    # to the server's counts while it has no queries.
    n=$(grep -o 'answered [0-9]*' <<<"$lq" | cut -d' ' -f2)
    awk -v n="$n" -v hz="$(getconf CLK_TCK)" -v t0="$t0" -v t1="$t1" 'BEGIN {
      split(t0, a, " "); split(t1, b, " ")
      printf "per answer: user %.2f µs, sys %.2f µs", (b[1] - a[1]) * 1e6 / hz / n, (b[2] - a[2]) * 1e6 / hz / n }'
    awk -F, -v n="$n" '$3 ~ /^[a-z]/ { e = $3; sub(/.*sys_enter_?/, "", e); if (e == "") e = "syscalls"
      printf ", %s %.3f", e, (e == "task-clock" ? $1 * 1000 : $1) / n } END { print "" }' "$WORK/perf"
  fi
  printf 'bulk --all: %s\n' "$("${GEN_CPU[@]}" "$1" bulk --server 127.0.0.1:16782 --all --count 2>&1 |
    grep 'binding(s)')"
  if [ "${PERF_STAT:-0}" = 1 ]; then
    local b0 b1
    b0=$(cpu_ticks "$SRV")
    "${GEN_CPU[@]}" "$1" bulk --server 127.0.0.1:16782 --all --json >/dev/null 2>&1
    b1=$(cpu_ticks "$SRV")
    awk -v hz="$(getconf CLK_TCK)" -v b0="$b0" -v b1="$b1" 'BEGIN { split(b0, a, " "); split(b1, b, " ")
      printf "bulk --all --json: server CPU user %d ms sys %d ms\n", (b[1] - a[1]) * 1000 / hz, (b[2] - a[2]) * 1000 / hz }'
  fi
  bench_stop
}

leasequery_callgrind() { # BIN SIDE ROUND
  local out=${CALLGRIND_OUT:-/tmp/ab-callgrind}/$2$3 lq
  mkdir -p "${out%/*}"
  rm -rf "$WORK/q" "$out".*
  "$1" bench populate --data-dir "$WORK/q" --first 10.0.0.0 --count 100000 >/dev/null
  bench_config "$WORK/q.toml" 127.0.0.1:16782 "$WORK/q" 10.0.0.0/8 10.0.0.0 10.1.134.159 "[leasequery]
allow = [\"127.0.0.0/8\"]
rate-limit = 0
$(bench_bulk_section 16782)"
  # Not counting until the store is loaded and the sockets are open: only the queries' work is in the totals.
  LEASEWIRE_LOG=error valgrind --tool=callgrind --instr-atstart=no --callgrind-out-file="$out.%p" \
    "$1" serve --config "$WORK/q.toml" 2>/dev/null & SRV=$!
  bench_wait_tcp 16782 0.5
  callgrind_control -i on "$SRV" >/dev/null 2>&1
  lq=$("$1" bench leasequery --server 127.0.0.1:16782 --giaddr 127.0.0.1 --first 10.0.0.0 --count 100000 \
    --seconds "$SECONDS_" --window 16 2>/dev/null | tail -1)
  callgrind_control -i off "$SRV" >/dev/null 2>&1
  bench_stop
  awk -v n="$(grep -o 'answered [0-9]*' <<<"$lq" | cut -d' ' -f2)" \
    '/^totals:/ { printf "%d answers, %.0f instructions/answer (user space, callgrind)\n", n, $2 / n }' "$out".*
}

active() { # BIN
  rm -rf "$WORK/a"
  serve "$1" a 16783 127.0.0.0/8 127.64.0.0 127.127.255.255 "$(bench_bulk_section 16783)
max-connections-per-requestor = 200
[active-leasequery]
enabled = true
insecure = true"
  bench_wait_tcp 16783
  "${GEN_CPU[@]}" "$1" bench active-latency --tcp 127.0.0.1:16783 --dhcp 127.0.0.1:16783 --requestors 10 --rate 5000 \
    --seconds "$SECONDS_" 2>/dev/null | grep -i 'delivery\|ack' | head -3
  bench_stop
}

echo "# $(date -u +%FT%TZ) $(nproc) cores, load $(cut -d' ' -f1-3 /proc/loadavg); A=$A B=$B PIN=${PIN:-0}"
for r in $(seq "$ROUNDS"); do
  # A first in odd rounds, B first in even ones: a drift through the run then hits both sides alike.
  order="A B"; [ $((r % 2)) = 0 ] && order="B A"
  for side in $order; do
    bin=$A; [ $side = B ] && bin=$B
    echo "## round $r $side (load $(cut -d' ' -f1 /proc/loadavg))"
    if [ "${CALLGRIND:-0}" = 1 ]; then
      leasequery_callgrind "$bin" "$side" "$r" | sed 's/^/leasequery: /'
      continue
    fi
    printf 'DORA: %s\n' "$(dora "$bin")"
    leasequery_and_bulk "$bin" | sed 's/^/leasequery\/bulk: /'
    active "$bin" | sed 's/^/active 10: /'
  done
done
