# shellcheck shell=bash
# Two-site network-namespace topology for data-plane and IKE tests.
# Source it from bash (needs root, iproute2, iputils-ping, procps):
#
#   . tests/lib/netns.sh
#   xgw_topo_install_trap           # always clean up on EXIT/INT/TERM
#   xgw_topo_create || exit 1       # fresh unique prefix; sets the vars below
#   xgw_ns_exec "$XGW_NS_GWA" ping -c 1 -W 2 "$XGW_GWB_WAN_IP"
#   xgw_ns_exec gwA ip addr         # a role name works for the current topology
#
#   leafA --- gwA ============ wan ============ gwB --- leafB
#   10.1.0.0/24   198.51.100.0/24   203.0.113.0/24   10.2.0.0/24
#
# The WAN namespace routes only between the two gateway links; it has no
# routes to the LANs, so leafA cannot reach leafB until a tunnel (or test
# routes on wan) exists. Gateways forward and default-route via wan; leaves
# default-route via their gateway. The WAN subnets are TEST-NET-2/3 (RFC 5737)
# and gateway addresses are host addresses (not .0/.255, not classful
# network/broadcast, not loopback/link-local/multicast).
#
# Namespaces (all named "<prefix>-<role>"):
#   XGW_TOPO_PREFIX  e.g. xgw1234-9f3a (xgw, creator's PID, random hex)
#   XGW_NS_LANA XGW_NS_GWA XGW_NS_WAN XGW_NS_GWB XGW_NS_LANB
# Interfaces (fixed names; every veth end lives inside a namespace, so names
# never collide between parallel runs and stay far below IFNAMSIZ):
#   XGW_LANA_IF=eth0  (in lanA)      XGW_LANB_IF=eth0  (in lanB)
#   XGW_GWA_LAN_IF=lan0 XGW_GWA_WAN_IF=wan0 (in gwA), same names in gwB
#   XGW_WAN_A_IF=gwa0 XGW_WAN_B_IF=gwb0     (in wan)
# IPv4:
#   XGW_LANA_NET=10.1.0.0/24   XGW_LANA_IP=10.1.0.10    XGW_GWA_LAN_IP=10.1.0.1
#   XGW_LANB_NET=10.2.0.0/24   XGW_LANB_IP=10.2.0.10    XGW_GWB_LAN_IP=10.2.0.1
#   XGW_WANA_NET=198.51.100.0/24 XGW_GWA_WAN_IP=198.51.100.10 XGW_WAN_A_IP=198.51.100.1
#   XGW_WANB_NET=203.0.113.0/24  XGW_GWB_WAN_IP=203.0.113.20  XGW_WAN_B_IP=203.0.113.1
# IPv6 (same shape; set only when XGW_TOPO_IPV6=1, the default if the kernel
# has IPv6; LANs are ULA, WAN links are 2001:db8::/32 documentation space):
#   XGW_LANA_NET6=fd00:a::/64  XGW_LANA_IP6=fd00:a::10  XGW_GWA_LAN_IP6=fd00:a::1
#   XGW_LANB_NET6=fd00:b::/64  XGW_LANB_IP6=fd00:b::10  XGW_GWB_LAN_IP6=fd00:b::1
#   XGW_WANA_NET6=2001:db8:a::/64 XGW_GWA_WAN_IP6=2001:db8:a::10 XGW_WAN_A_IP6=2001:db8:a::1
#   XGW_WANB_NET6=2001:db8:b::/64 XGW_GWB_WAN_IP6=2001:db8:b::20 XGW_WAN_B_IP6=2001:db8:b::1
#
# Functions:
#   xgw_topo_new_prefix              set XGW_TOPO_NEW_PREFIX to a fresh unused
#                                    prefix (call directly, not in $(...))
#   xgw_topo_create [PREFIX]         build a topology (new prefix if omitted)
#                                    and point the XGW_* variables at it
#   xgw_topo_use PREFIX              point the XGW_* variables at PREFIX
#   xgw_topo_destroy [PREFIX]        delete every "<PREFIX>-*" namespace,
#                                    killing processes left in them; idempotent
#   xgw_topo_destroy_all             destroy every topology this process (shell
#                                    or subshell) created
#   xgw_topo_install_trap            run xgw_topo_destroy_all on EXIT/INT/TERM;
#                                    subshells that create topologies call it
#                                    again (bash does not inherit the trap)
#   xgw_topo_namespaces [PREFIX]     list existing "<PREFIX>-*" namespaces
#   xgw_topo_gc                      remove topologies whose creator PID is dead
#   xgw_ns_exec NS CMD...            run CMD in namespace NS (name or role)
#
# Several topologies may coexist (in one shell or in parallel processes): each
# has its own prefix; create/use re-point the variables.

XGW_TOPO_ROLES=(lanA gwA wan gwB lanB)
# "<BASHPID>:<prefix>" per topology created, for destroy_all. The PID keeps a
# subshell's EXIT trap from destroying topologies its parent created.
XGW_TOPO_CREATED=()

_xgw_log() { echo "netns.sh: $*" >&2; }

# Runs a command, logging it on failure so a broken setup step is obvious.
_xgw_run() {
  "$@" || {
    local rc=$?
    _xgw_log "failed ($rc): $*"
    return "$rc"
  }
}

xgw_topo_namespaces() {
  local prefix=${1:-${XGW_TOPO_PREFIX:-}}
  [ -n "$prefix" ] || return 0
  # `ip netns list` prints "name" or "name (id: N)".
  ip netns list 2>/dev/null | awk -v p="$prefix-" 'index($1, p) == 1 { print $1 }'
}

xgw_topo_new_prefix() {
  local hex
  XGW_TOPO_NEW_PREFIX=
  # BASHPID, not $$: parallel subshells share $$. Not meant for $(...): the
  # PID must be the caller's, since xgw_topo_gc treats a dead PID as stale.
  for _ in 1 2 3 4 5 6 7 8; do
    hex=$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
    XGW_TOPO_NEW_PREFIX="xgw${BASHPID}-${hex}"
    [ -n "$(xgw_topo_namespaces "$XGW_TOPO_NEW_PREFIX")" ] || return 0
  done
  _xgw_log "could not find a free prefix"
  return 1
}

xgw_topo_use() {
  local p=$1
  [ -n "$p" ] || { _xgw_log "xgw_topo_use: missing prefix"; return 1; }
  export XGW_TOPO_PREFIX=$p
  export XGW_NS_LANA=$p-lanA XGW_NS_GWA=$p-gwA XGW_NS_WAN=$p-wan
  export XGW_NS_GWB=$p-gwB XGW_NS_LANB=$p-lanB

  export XGW_LANA_IF=eth0 XGW_LANB_IF=eth0
  export XGW_GWA_LAN_IF=lan0 XGW_GWA_WAN_IF=wan0
  export XGW_GWB_LAN_IF=lan0 XGW_GWB_WAN_IF=wan0
  export XGW_WAN_A_IF=gwa0 XGW_WAN_B_IF=gwb0

  export XGW_LANA_NET=10.1.0.0/24 XGW_LANA_IP=10.1.0.10 XGW_GWA_LAN_IP=10.1.0.1
  export XGW_LANB_NET=10.2.0.0/24 XGW_LANB_IP=10.2.0.10 XGW_GWB_LAN_IP=10.2.0.1
  export XGW_WANA_NET=198.51.100.0/24 XGW_GWA_WAN_IP=198.51.100.10 XGW_WAN_A_IP=198.51.100.1
  export XGW_WANB_NET=203.0.113.0/24 XGW_GWB_WAN_IP=203.0.113.20 XGW_WAN_B_IP=203.0.113.1

  if [ -z "${XGW_TOPO_IPV6:-}" ]; then
    if [ -d /proc/sys/net/ipv6 ]; then XGW_TOPO_IPV6=1; else XGW_TOPO_IPV6=0; fi
  fi
  export XGW_TOPO_IPV6
  if [ "$XGW_TOPO_IPV6" = 1 ]; then
    export XGW_LANA_NET6=fd00:a::/64 XGW_LANA_IP6=fd00:a::10 XGW_GWA_LAN_IP6=fd00:a::1
    export XGW_LANB_NET6=fd00:b::/64 XGW_LANB_IP6=fd00:b::10 XGW_GWB_LAN_IP6=fd00:b::1
    export XGW_WANA_NET6=2001:db8:a::/64 XGW_GWA_WAN_IP6=2001:db8:a::10 XGW_WAN_A_IP6=2001:db8:a::1
    export XGW_WANB_NET6=2001:db8:b::/64 XGW_GWB_WAN_IP6=2001:db8:b::20 XGW_WAN_B_IP6=2001:db8:b::1
  fi
}

xgw_ns_exec() {
  local ns=$1
  shift
  # Accept a role (gwA, wan, ...) of the current topology as shorthand.
  if [ -n "${XGW_TOPO_PREFIX:-}" ] && [ ! -e "/run/netns/$ns" ] &&
    [ -e "/run/netns/$XGW_TOPO_PREFIX-$ns" ]; then
    ns=$XGW_TOPO_PREFIX-$ns
  fi
  ip netns exec "$ns" "$@"
}

# Adds address $3 (CIDR) to $2 in namespace $1; nodad keeps IPv6 addresses
# usable at once even if a caller re-enabled DAD.
_xgw_addr() {
  local ns=$1 dev=$2 addr=$3
  case $addr in
    *:*) _xgw_run ip -n "$ns" -6 addr add "$addr" dev "$dev" nodad ;;
    *) _xgw_run ip -n "$ns" addr add "$addr" dev "$dev" ;;
  esac
}

# veth pair whose ends are created directly inside their namespaces, so the
# root namespace never sees (or collides on) the names.
_xgw_veth() {
  local ns1=$1 if1=$2 ns2=$3 if2=$4
  _xgw_run ip -n "$ns1" link add "$if1" type veth peer name "$if2" netns "$ns2" || return
  _xgw_run ip -n "$ns1" link set "$if1" up || return
  _xgw_run ip -n "$ns2" link set "$if2" up
}

_xgw_sysctl() {
  _xgw_run ip netns exec "$1" sysctl -q -w "$2" >/dev/null
}

_xgw_topo_build() {
  local r ns
  for r in "${XGW_TOPO_ROLES[@]}"; do
    ns=$XGW_TOPO_PREFIX-$r
    _xgw_run ip netns add "$ns" || return
    _xgw_run ip -n "$ns" link set lo up || return
    if [ "$XGW_TOPO_IPV6" = 1 ]; then
      # Set before the veths exist so they inherit it. No DAD: otherwise
      # link-local addresses stay tentative ~1 s and the first forwarded
      # packets stall on neighbour discovery. No RA/SLAAC: routes are static.
      _xgw_sysctl "$ns" net.ipv6.conf.default.accept_dad=0 || return
      _xgw_sysctl "$ns" net.ipv6.conf.all.accept_dad=0 || return
      _xgw_sysctl "$ns" net.ipv6.conf.default.accept_ra=0 || return
      _xgw_sysctl "$ns" net.ipv6.conf.all.accept_ra=0 || return
    fi
  done

  _xgw_veth "$XGW_NS_LANA" "$XGW_LANA_IF" "$XGW_NS_GWA" "$XGW_GWA_LAN_IF" || return
  _xgw_veth "$XGW_NS_GWA" "$XGW_GWA_WAN_IF" "$XGW_NS_WAN" "$XGW_WAN_A_IF" || return
  _xgw_veth "$XGW_NS_WAN" "$XGW_WAN_B_IF" "$XGW_NS_GWB" "$XGW_GWB_WAN_IF" || return
  _xgw_veth "$XGW_NS_GWB" "$XGW_GWB_LAN_IF" "$XGW_NS_LANB" "$XGW_LANB_IF" || return

  _xgw_addr "$XGW_NS_LANA" "$XGW_LANA_IF" "$XGW_LANA_IP/24" || return
  _xgw_addr "$XGW_NS_GWA" "$XGW_GWA_LAN_IF" "$XGW_GWA_LAN_IP/24" || return
  _xgw_addr "$XGW_NS_GWA" "$XGW_GWA_WAN_IF" "$XGW_GWA_WAN_IP/24" || return
  _xgw_addr "$XGW_NS_WAN" "$XGW_WAN_A_IF" "$XGW_WAN_A_IP/24" || return
  _xgw_addr "$XGW_NS_WAN" "$XGW_WAN_B_IF" "$XGW_WAN_B_IP/24" || return
  _xgw_addr "$XGW_NS_GWB" "$XGW_GWB_WAN_IF" "$XGW_GWB_WAN_IP/24" || return
  _xgw_addr "$XGW_NS_GWB" "$XGW_GWB_LAN_IF" "$XGW_GWB_LAN_IP/24" || return
  _xgw_addr "$XGW_NS_LANB" "$XGW_LANB_IF" "$XGW_LANB_IP/24" || return

  for ns in "$XGW_NS_GWA" "$XGW_NS_WAN" "$XGW_NS_GWB"; do
    _xgw_sysctl "$ns" net.ipv4.ip_forward=1 || return
  done
  _xgw_run ip -n "$XGW_NS_LANA" route add default via "$XGW_GWA_LAN_IP" || return
  _xgw_run ip -n "$XGW_NS_GWA" route add default via "$XGW_WAN_A_IP" || return
  _xgw_run ip -n "$XGW_NS_GWB" route add default via "$XGW_WAN_B_IP" || return
  _xgw_run ip -n "$XGW_NS_LANB" route add default via "$XGW_GWB_LAN_IP" || return

  [ "$XGW_TOPO_IPV6" = 1 ] || return 0
  _xgw_addr "$XGW_NS_LANA" "$XGW_LANA_IF" "$XGW_LANA_IP6/64" || return
  _xgw_addr "$XGW_NS_GWA" "$XGW_GWA_LAN_IF" "$XGW_GWA_LAN_IP6/64" || return
  _xgw_addr "$XGW_NS_GWA" "$XGW_GWA_WAN_IF" "$XGW_GWA_WAN_IP6/64" || return
  _xgw_addr "$XGW_NS_WAN" "$XGW_WAN_A_IF" "$XGW_WAN_A_IP6/64" || return
  _xgw_addr "$XGW_NS_WAN" "$XGW_WAN_B_IF" "$XGW_WAN_B_IP6/64" || return
  _xgw_addr "$XGW_NS_GWB" "$XGW_GWB_WAN_IF" "$XGW_GWB_WAN_IP6/64" || return
  _xgw_addr "$XGW_NS_GWB" "$XGW_GWB_LAN_IF" "$XGW_GWB_LAN_IP6/64" || return
  _xgw_addr "$XGW_NS_LANB" "$XGW_LANB_IF" "$XGW_LANB_IP6/64" || return
  for ns in "$XGW_NS_GWA" "$XGW_NS_WAN" "$XGW_NS_GWB"; do
    _xgw_sysctl "$ns" net.ipv6.conf.all.forwarding=1 || return
  done
  _xgw_run ip -n "$XGW_NS_LANA" -6 route add default via "$XGW_GWA_LAN_IP6" || return
  _xgw_run ip -n "$XGW_NS_GWA" -6 route add default via "$XGW_WAN_A_IP6" || return
  _xgw_run ip -n "$XGW_NS_GWB" -6 route add default via "$XGW_WAN_B_IP6" || return
  _xgw_run ip -n "$XGW_NS_LANB" -6 route add default via "$XGW_GWB_LAN_IP6"
}

xgw_topo_create() {
  local prefix=${1:-}
  if [ -z "$prefix" ]; then
    xgw_topo_new_prefix || return
    prefix=$XGW_TOPO_NEW_PREFIX
  elif [ -n "$(xgw_topo_namespaces "$prefix")" ]; then
    _xgw_log "topology $prefix already exists"
    return 1
  fi
  xgw_topo_use "$prefix" || return
  # Record before building so a half-built topology is still cleaned up.
  XGW_TOPO_CREATED+=("$BASHPID:$prefix")
  if ! _xgw_topo_build; then
    _xgw_log "creating topology $prefix failed; removing it"
    xgw_topo_destroy "$prefix"
    return 1
  fi
}

xgw_topo_destroy() {
  local prefix=${1:-${XGW_TOPO_PREFIX:-}} ns pids rc=0
  [ -n "$prefix" ] || return 0
  for ns in $(xgw_topo_namespaces "$prefix"); do
    # Daemons started inside would keep the namespace (and its veths and XDP
    # programs) alive after `ip netns del`; they belong to this topology.
    pids=$(ip netns pids "$ns" 2>/dev/null)
    if [ -n "$pids" ]; then
      # shellcheck disable=SC2086
      kill -TERM $pids 2>/dev/null
      for _ in 1 2 3 4 5 6 7 8 9 10; do
        [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] || break
        sleep 0.1
      done
      pids=$(ip netns pids "$ns" 2>/dev/null)
      # shellcheck disable=SC2086
      [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
    fi
    ip netns del "$ns" 2>/dev/null || rc=1
  done
  if [ -n "$(xgw_topo_namespaces "$prefix")" ]; then
    _xgw_log "namespaces of $prefix remain after destroy"
    rc=1
  fi
  return "$rc"
}

xgw_topo_destroy_all() {
  local e rc=0
  for e in "${XGW_TOPO_CREATED[@]}"; do
    [ "${e%%:*}" = "$BASHPID" ] || continue
    xgw_topo_destroy "${e#*:}" || rc=1
  done
  return "$rc"
}

xgw_topo_install_trap() {
  # EXIT covers normal ends and `set -e` aborts; INT/TERM exit with the usual
  # 128+signal status, which runs the EXIT trap once.
  trap 'xgw_topo_destroy_all' EXIT
  trap 'exit 130' INT
  trap 'exit 143' TERM
}

# Topologies whose creator died without cleanup (e.g. SIGKILL on a ctest
# timeout): the PID is part of the prefix.
xgw_topo_gc() {
  local ns pid
  for ns in $(ip netns list 2>/dev/null | awk '{ print $1 }'); do
    [[ $ns =~ ^xgw([0-9]+)-[0-9a-f]{4}- ]] || continue
    pid=${BASH_REMATCH[1]}
    [ -d "/proc/$pid" ] && continue
    _xgw_log "removing stale namespace $ns"
    ip netns del "$ns" 2>/dev/null
  done
  return 0
}
