# Shared by every benchmark script (source it from the repository's root):
#   $BIN   the release binary: $LEASEWIRE, or target/release/leasewire, built when missing (absolute path)
#   $WORK  a directory, removed on exit together with the processes whose pids are in $SRV (set it when
#          starting a server or watcher in the background)
#   bench_on_exit CMD   one more thing to do on exit, before $WORK goes
BIN=${LEASEWIRE:-${CARGO_TARGET_DIR:-target}/release/leasewire}
[ -x "$BIN" ] || cargo build --release -p leasewire
BIN=$(realpath "$BIN")
WORK=$(mktemp -d)
SRV=
BENCH_ON_EXIT=()
bench_on_exit() { BENCH_ON_EXIT+=("$1"); }
bench_cleanup() {
  local i
  for ((i = ${#BENCH_ON_EXIT[@]} - 1; i >= 0; i--)); do eval "${BENCH_ON_EXIT[i]}" || true; done
  # shellcheck disable=SC2086 # $SRV is a list of pids
  [ -z "$SRV" ] || kill $SRV 2>/dev/null || true
  rm -rf "$WORK"
}
trap bench_cleanup EXIT
# The same socket-buffer ceiling for every server and generator (the default 208 KiB queue overflows).
bench_socket_buffers() {
  sysctl -qw net.core.rmem_max=8388608 net.core.wmem_max=8388608 net.core.rmem_default=4194304 \
    net.core.wmem_default=4194304
}
