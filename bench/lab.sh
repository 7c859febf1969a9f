# Shared by the benchmark scripts that need two network namespaces (source it after common.sh): server ($S,
# veth $VS) and client ($C, veth $VC), joined by a veth pair, removed on exit with what runs inside them.
#   lab_up SERVER_CIDR CLIENT_CIDR
#   lab_dhcp_config [TOML]     $WORK/leasewire.toml: DHCP on 10.77.0.1:67, 10.128.0.0/9 to relayed clients,
#                               data in $WORK/lw-data; TOML: more of the file (e.g. `[log]` lines)
#   kea_conf THREADS [DB]       $WORK/kea.json: Kea 2.2 with the same subnet on $VS; THREADS 0 is
#                               single-threaded; DB is the lease-database object (default: memfile in $WORK)
S=lwbs$$ C=lwbc$$ VS=vs$$ VC=vc$$
lab_cleanup() {
  for ns in $S $C; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 $p 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
}
bench_on_exit lab_cleanup
lab_up() {
  ip netns add $S; ip netns add $C
  ip link add $VS type veth peer name $VC
  ip link set $VS netns $S; ip link set $VC netns $C
  ip -n $S addr add "$1" dev $VS; ip -n $C addr add "$2" dev $VC
  for n in $S $C; do ip -n $n link set lo up; done
  ip -n $S link set $VS up; ip -n $C link set $VC up
}
lab_dhcp_config() {
  bench_config "$WORK/leasewire.toml" 10.77.0.1:67 "$WORK/lw-data" 10.0.0.0/8 10.128.0.0 10.255.255.254 "${1:-}" \
    "lease-time = 3600"
}
kea_conf() {
  local mt='"multi-threading": { "enable-multi-threading": false },'
  [ "$1" -gt 0 ] && mt="\"multi-threading\": { \"enable-multi-threading\": true, \"thread-pool-size\": $1, \"packet-queue-size\": 64 },"
  local db=${2:-"{ \"type\": \"memfile\", \"persist\": true, \"name\": \"$WORK/kea-leases.csv\", \"lfc-interval\": 0 }"}
  cat > "$WORK/kea.json" <<JSON
{ "Dhcp4": {
  "interfaces-config": { "interfaces": [ "$VS/10.77.0.1" ], "dhcp-socket-type": "udp" },
  $mt
  "lease-database": $db,
  "valid-lifetime": 3600,
  "subnet4": [ { "subnet": "10.0.0.0/8", "pools": [ { "pool": "10.128.0.0 - 10.255.255.254" } ] } ],
  "loggers": [ { "name": "kea-dhcp4", "severity": "WARN", "output_options": [ { "output": "$WORK/kea.log" } ] } ]
} }
JSON
}
