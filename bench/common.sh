# Shared by every benchmark script (source it from the repository's root):
#   $BIN   the release binary: $LEASEWIRE, or target/release/leasewire, built when missing (absolute path)
#   $WORK  a directory, removed on exit together with the processes whose pids are in $SRV (set it when
#          starting a server or watcher in the background)
#   bench_on_exit CMD   one more thing to do on exit, before $WORK goes
#   bench_postgres      a throwaway PostgreSQL cluster in $WORK/pg (Unix socket only), stopped on exit;
#                       sets $PGBIN and $PG (a connection string without dbname) and defines `sql` (psql)
#   bench_config ...    a `serve` configuration file (one subnet, one pool, more sections as TOML text)
#   bench_wait_tcp PORT / bench_wait_udp PORT   until something listens on 127.0.0.1:PORT
#   bench_stop          stop the server $SRV and wait for it
#   bench_ip FIRST N    the address N after FIRST
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

# bench_config FILE ADDR:PORT DATA SUBNET POOL_START POOL_END [TOML] [SUBNET_KEYS]: the configuration every
# benchmark serves with, in FILE: server-id ADDR, DHCP on ADDR:PORT, data in DATA; TOML (more keys of
# `[server]` first, then more sections); one subnet with one pool, and SUBNET_KEYS (more keys of that subnet).
bench_config() {
  cat > "$1" <<TOML
[server]
server-id = "${2%:*}"
listen = ["$2"]
data-dir = "$3"
${7:-}
[[subnet]]
subnet = "$4"
pools = [{ start = "$5", end = "$6" }]
${8:-}
TOML
}
# `[bulk-leasequery]` on 127.0.0.1:PORT for requestors on loopback, as TOML text for bench_config.
bench_bulk_section() { printf '[bulk-leasequery]\nlisten = ["127.0.0.1:%s"]\nallow = ["127.0.0.0/8"]\n' "$1"; }
bench_wait_tcp() { until (exec 3<>/dev/tcp/127.0.0.1/"$1") 2>/dev/null; do sleep "${2:-0.1}"; done; }
bench_wait_udp() { until ss -Hlun "sport = :$1" | grep -q .; do sleep 0.1; done; }
bench_stop() { kill "$SRV"; wait "$SRV" 2>/dev/null || true; SRV=; }
bench_ip() { python3 -c "import ipaddress; print(ipaddress.IPv4Address('$1') + $2)"; }
