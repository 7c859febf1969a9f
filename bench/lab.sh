# Shared by the benchmark scripts (source it): a work directory and two network namespaces, server ($S, veth
# $VS) and client ($C, veth $VC), joined by a veth pair, all removed on exit with what runs inside them.
#   lab_up SERVER_CIDR CLIENT_CIDR
WORK=$(mktemp -d)
S=lwbs$$ C=lwbc$$ VS=vs$$ VC=vc$$
lab_cleanup() {
  for ns in $S $C; do
    for p in $(ip netns pids $ns 2>/dev/null); do kill -9 $p 2>/dev/null || true; done
    ip netns del $ns 2>/dev/null || true
  done
  rm -rf "$WORK"
}
trap lab_cleanup EXIT
lab_up() {
  ip netns add $S; ip netns add $C
  ip link add $VS type veth peer name $VC
  ip link set $VS netns $S; ip link set $VC netns $C
  ip -n $S addr add "$1" dev $VS; ip -n $C addr add "$2" dev $VC
  for n in $S $C; do ip -n $n link set lo up; done
  ip -n $S link set $VS up; ip -n $C link set $VC up
}
