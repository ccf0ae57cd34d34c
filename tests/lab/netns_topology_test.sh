#!/usr/bin/env bash
# shellcheck disable=SC2119 # xgw_topo_create takes an optional prefix
# Checks tests/lib/netns.sh: the two-site topology forwards what it should,
# keeps the LANs unreachable without a tunnel, cleans up fully, and several
# topologies (same shell or parallel processes) never collide.
set -uo pipefail # no -e: every assertion runs and failures are counted

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/privileged.sh
. "$here/../lib/privileged.sh"
xgw_require_root
# shellcheck source=../lib/netns.sh
. "$here/../lib/netns.sh"
xgw_topo_install_trap
xgw_topo_gc

# shellcheck source=../lib/checks.sh
. "$here/../lib/checks.sh"
# Bounded pings: a reachable peer answers in ms, so 2 s is generous; the
# negative checks wait 1 s for a reply that must never come.
ping_ok() { xgw_ns_exec "$1" ping -n -q -c 1 -W 2 "$2"; }
ping_blocked() { xgw_ns_exec "$1" ping -n -q -c 1 -W 1 "$2"; }
count_ns() { xgw_topo_namespaces "$1" | wc -l; }
has_ns() { [ "$(count_ns "$1")" -eq "$2" ]; }

check_reachability() {
  local tag=$1
  expect_ok "$tag: gwA pings gwB WAN $XGW_GWB_WAN_IP" ping_ok "$XGW_NS_GWA" "$XGW_GWB_WAN_IP"
  expect_ok "$tag: gwB pings gwA WAN $XGW_GWA_WAN_IP" ping_ok "$XGW_NS_GWB" "$XGW_GWA_WAN_IP"
  expect_ok "$tag: leafA pings gwA $XGW_GWA_LAN_IP" ping_ok "$XGW_NS_LANA" "$XGW_GWA_LAN_IP"
  expect_ok "$tag: gwB pings leafB $XGW_LANB_IP" ping_ok "$XGW_NS_GWB" "$XGW_LANB_IP"
}

# --- one topology ------------------------------------------------------------
root_links_before=$(ip -o link show | wc -l)
# check, not expect_ok: create sets variables, and $(...) would lose them.
check "create topology" xgw_topo_create
prefix=$XGW_TOPO_PREFIX
echo "# prefix $prefix"
check "5 namespaces exist" has_ns "$prefix" 5
check "root namespace links untouched" test "$(ip -o link show | wc -l)" -eq "$root_links_before"
expect_ok "role shorthand in xgw_ns_exec" xgw_ns_exec gwA ip link show "$XGW_GWA_WAN_IF"

check_reachability v4
if [ "$XGW_TOPO_IPV6" = 1 ]; then
  expect_ok "v6: gwA pings gwB WAN" ping_ok "$XGW_NS_GWA" "$XGW_GWB_WAN_IP6"
  expect_ok "v6: leafA pings gwA" ping_ok "$XGW_NS_LANA" "$XGW_GWA_LAN_IP6"
  expect_ok "v6: gwB pings leafB" ping_ok "$XGW_NS_GWB" "$XGW_LANB_IP6"
  expect_fail "v6: leafA cannot reach leafB" ping_blocked "$XGW_NS_LANA" "$XGW_LANB_IP6"
else
  echo "# IPv6 unavailable; v6 checks skipped"
fi

# Without a tunnel the WAN knows no LAN prefix: LAN traffic dies there.
expect_fail "wan has no route to LAN B" xgw_ns_exec "$XGW_NS_WAN" ip route get "$XGW_LANB_IP"
expect_fail "wan has no route to LAN A" xgw_ns_exec "$XGW_NS_WAN" ip route get "$XGW_LANA_IP"
expect_fail "leafA cannot reach leafB" ping_blocked "$XGW_NS_LANA" "$XGW_LANB_IP"
# gwB's reply to a 10.1.0.0/24 source is dropped at wan as well.
expect_fail "leafA cannot reach gwB WAN" ping_blocked "$XGW_NS_LANA" "$XGW_GWB_WAN_IP"

# With plain routes on wan the path works, so only routing blocks it above.
expect_ok "add LAN routes on wan" bash -c "
  ip -n '$XGW_NS_WAN' route add '$XGW_LANA_NET' via '$XGW_GWA_WAN_IP' &&
  ip -n '$XGW_NS_WAN' route add '$XGW_LANB_NET' via '$XGW_GWB_WAN_IP'"
expect_ok "leafA reaches leafB with wan routes" ping_ok "$XGW_NS_LANA" "$XGW_LANB_IP"
expect_ok "remove LAN routes on wan" bash -c "
  ip -n '$XGW_NS_WAN' route del '$XGW_LANA_NET' &&
  ip -n '$XGW_NS_WAN' route del '$XGW_LANB_NET'"
expect_fail "leafA cannot reach leafB again" ping_blocked "$XGW_NS_LANA" "$XGW_LANB_IP"

# A process left inside must not keep the namespace alive.
# (stderr muted: the background shell reports the kill as "Terminated").
{ xgw_ns_exec "$XGW_NS_GWA" sleep 300; } 2>/dev/null &
sleeper=$!
expect_ok "destroy topology" xgw_topo_destroy "$prefix"
check "no $prefix-* namespace remains" has_ns "$prefix" 0
# $sleeper is the background shell waiting for sleep; give it time to reap.
for _ in $(seq 20); do
  kill -0 "$sleeper" 2>/dev/null || break
  sleep 0.1
done
if kill -0 "$sleeper" 2>/dev/null; then
  fail "process in destroyed namespace was stopped"
  kill -KILL "$sleeper" 2>/dev/null
else
  pass "process in destroyed namespace was stopped"
fi
wait "$sleeper" 2>/dev/null
expect_ok "destroy is idempotent" xgw_topo_destroy "$prefix"

# --- two topologies in one shell ---------------------------------------------
check "create topology 1" xgw_topo_create
p1=$XGW_TOPO_PREFIX
check "create topology 2" xgw_topo_create
p2=$XGW_TOPO_PREFIX
echo "# prefixes $p1 $p2"
check "prefixes differ" test -n "$p1" -a "$p1" != "$p2"
check "topology 1 has 5 namespaces" has_ns "$p1" 5
check "topology 2 has 5 namespaces" has_ns "$p2" 5
xgw_topo_use "$p1" && check_reachability "$p1"
xgw_topo_use "$p2" && check_reachability "$p2"
expect_ok "destroy topology 1" xgw_topo_destroy "$p1"
check "topology 1 gone" has_ns "$p1" 0
check_reachability "$p2 after $p1 destroyed"
expect_ok "destroy topology 2" xgw_topo_destroy "$p2"
check "topology 2 gone" has_ns "$p2" 0

# --- two topologies built concurrently by separate processes ------------------
prefix_log=$(mktemp)
run_site() {
  # Own trap: the subshell cleans up its topology even if it fails midway.
  xgw_topo_install_trap
  xgw_topo_create || exit 1
  echo "$XGW_TOPO_PREFIX" >>"$prefix_log"
  ping_ok "$XGW_NS_GWA" "$XGW_GWB_WAN_IP" >/dev/null &&
    ping_ok "$XGW_NS_LANA" "$XGW_GWA_LAN_IP" >/dev/null &&
    ping_ok "$XGW_NS_GWB" "$XGW_LANB_IP" >/dev/null
}
(run_site) &
job1=$!
(run_site) &
job2=$!
check "parallel topology 1 built and forwards" wait "$job1"
check "parallel topology 2 built and forwards" wait "$job2"
mapfile -t par_prefixes <"$prefix_log"
rm -f "$prefix_log"
check "parallel prefixes differ: ${par_prefixes[*]}" \
  test "${#par_prefixes[@]}" -eq 2 -a "${par_prefixes[0]:-}" != "${par_prefixes[1]:-}"
for p in "${par_prefixes[@]}"; do
  check "$p cleaned up by its process" has_ns "$p" 0
done

checks_done
