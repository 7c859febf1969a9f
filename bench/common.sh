# Shared by every benchmark script (source it from the repository's root):
#   $BIN   the release binary: $LEASEWIRE, or target/release/leasewire, built when missing (absolute path)
#   $WORK  a directory, removed on exit together with the processes whose pids are in $SRV (set it when
#          starting a server or watcher in the background)
#   bench_on_exit CMD   one more thing to do on exit, before $WORK goes
#   bench_postgres      a throwaway PostgreSQL cluster in $WORK/pg (Unix socket only), stopped on exit;
#                       sets $PGBIN and $PG (a connection string without dbname) and defines `sql` (psql)
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

bench_postgres() {
  PGBIN=${PGBIN:-$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -1)}
  # PostgreSQL refuses to run as root: the cluster belongs to the postgres user.
  chmod 755 "$WORK"
  mkdir -p "$WORK/pg"
  chown postgres "$WORK/pg"
  runuser -u postgres -- "$PGBIN/initdb" -D "$WORK/pg/data" -U postgres --auth=trust -E UTF8 --locale=C >/dev/null
  runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -l "$WORK/pg/log" -w \
    -o "-k $WORK/pg -c listen_addresses= -c max_connections=200" start >/dev/null
  bench_on_exit 'runuser -u postgres -- "$PGBIN/pg_ctl" -D "$WORK/pg/data" -m fast stop >/dev/null 2>&1'
  PG="host=$WORK/pg user=postgres"
}
sql() { PGOPTIONS="-c client_min_messages=warning" "$PGBIN/psql" -h "$WORK/pg" -U postgres -qAt -v ON_ERROR_STOP=1 "$@"; }
