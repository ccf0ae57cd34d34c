#!/usr/bin/env bash
# xgwd drives the XDP data plane from its object model, in a namespace lab:
# attach on the configured interfaces, tier and SPD follow API changes,
# matched traffic without an SA raises an acquire event, a restart keeps
# programs attached and counters, and --detach-all removes everything.
# Usage: xgwd_dataplane_test.sh XGWD XGWCTL
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/privileged.sh"
xgw_require_root
. "$here/../lib/netns.sh"

XGWD=$1
XGWCTL=$2
fail() { echo "FAIL: $*" >&2; exit 1; }

tmp=$(mktemp -d /tmp/xgw-dp-lab.XXXXXX)
pin=/sys/fs/bpf/xgw/lab-$$-$RANDOM
xgwd_pid=
cleanup() {
  [ -n "$xgwd_pid" ] && kill -KILL "$xgwd_pid" 2>/dev/null || true
  [ -n "${prom_pid:-}" ] && kill -KILL "$prom_pid" 2>/dev/null || true
  "$XGWD" --config "$tmp/xgwd.yaml" --state-dir "$tmp/state" --detach-all >/dev/null 2>&1 || true
  [ -n "${XGW_KEEP_TMP:-}" ] && cp "$tmp/xgwd.log" /tmp/xgwd-lab.log; rm -rf "$pin" "$tmp"
  xgw_topo_destroy_all
}
trap cleanup EXIT INT TERM
xgw_topo_create || fail "topology"

# nsenter switches only the network namespace, so bpffs pins stay visible
# to the host (ip netns exec would remount /sys).
in_gwa() { nsenter --net="/run/netns/$XGW_NS_GWA" "$@"; }

cat >"$tmp/xgwd.yaml" <<YAML
dataplane:
  pin_dir: $pin
  backend: xfrm
  gateways:
    gw-a: {lan_interface: $XGW_GWA_LAN_IF, wan_interface: $XGW_GWA_WAN_IF}
    gw-ghost: {lan_interface: nosuchlan0}
YAML
cat >"$tmp/site.yaml" <<YAML
vpn_gateways:
  - {name: gw-a, bandwidth: 50, local_cidr: 10.1.0.0/16, public_ips: ["$XGW_GWA_WAN_IP"]}
customer_gateways:
  - {name: gw-b, ip: "$XGW_GWB_WAN_IP"}
vpn_connections:
  - name: a-to-b
    vpn_gateway: gw-a
    customer_gateway: gw-b
    policy_rules:
      - {source: 10.1.0.0/24, destination: [10.2.0.0/24]}
YAML

start_xgwd() {
  rm -f "$tmp/state/api.addr"
  in_gwa "$XGWD" --config "$tmp/xgwd.yaml" --state-dir "$tmp/state" --api-listen 127.0.0.1:0 \
    --metrics-listen 127.0.0.1:0 \
    --log-level debug >>"$tmp/xgwd.log" 2>&1 &
  xgwd_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/state/api.addr" ] && return 0; sleep 0.05; done
  cat "$tmp/xgwd.log" >&2
  fail "xgwd did not start"
}
ctl() { in_gwa "$XGWCTL" --state-dir "$tmp/state" "$@"; }
wait_log() {  # pattern, count (at least)
  for _ in $(seq 100); do
    [ "$(grep -c -- "$1" "$tmp/xgwd.log" || true)" -ge "${2:-1}" ] && return 0
    sleep 0.05
  done
  cat "$tmp/xgwd.log" >&2
  fail "no log line matching '$1'"
}
xdp_prog() { in_gwa ip -d link show "$1" | grep -o 'prog/xdp id [0-9]*\|xdp.*id [0-9]*' | head -1; }
gw_field() { bpftool -j map dump pinned "$pin/xgw_gw" | jq -r ".[0].formatted.value.$1"; }
# Sum of one outcome counter over CPUs, for gateway index 0.
reason() {  # drop|pass index
  bpftool -j map lookup pinned "$pin/xgw_gw_stats" key 0 0 0 0 |
    jq "[.formatted.values[].value.$1[$2]] | add"
}
# Position of NO_SA_PASS in XGW_PASS_REASONS (bpf/xgw_dp_abi.h).
PASS_NO_SA_PASS=$(awk '/define XGW_PASS_REASONS/{on=1} on && /X\(/{ if ($0 ~ /X\(NO_SA_PASS/) {print n; exit} n++ }' \
  "$here/../../bpf/xgw_dp_abi.h")
[ -n "$PASS_NO_SA_PASS" ] || fail "NO_SA_PASS not found in xgw_dp_abi.h"

start_xgwd
wait_log "event=dataplane.backend backend=xfrm configured=xfrm"
ctl apply -f "$tmp/site.yaml" >/dev/null
wait_log "event=dataplane.spd .*relations=1"
wait_log "event=dataplane.attached interface=$XGW_GWA_LAN_IF role=lan"
wait_log "event=dataplane.attached interface=$XGW_GWA_WAN_IF role=wan"
[ -n "$(xdp_prog "$XGW_GWA_LAN_IF")" ] || fail "no XDP program on $XGW_GWA_LAN_IF"
[ -n "$(xdp_prog "$XGW_GWA_WAN_IF")" ] || fail "no XDP program on $XGW_GWA_WAN_IF"
[ "$(gw_field tier_bps)" = 50000000 ] || fail "tier_bps is $(gw_field tier_bps), want 50000000"
bpftool prog show pinned "$pin/xgw_lan" | grep -q 'xgw_version = "xgw-dp 1"' || fail "no version metadata"
gw_status() { ctl --json gateway show "$1" | jq -r '.vpn_gateway | "\(.status) \(.status_reason // "")"'; }
wait_status() {  # gateway "status reason-substring"
  local got=
  for _ in $(seq 100); do
    got=$(gw_status "$1")
    [[ "$got" == $2* ]] && return 0
    sleep 0.05
  done
  fail "gateway $1 is '$got', want '$2...'"
}
wait_status gw-a running

# A program removed behind xgwd's back is attached again (within ~2 s).
in_gwa ip link set dev "$XGW_GWA_WAN_IF" xdp off 2>/dev/null || in_gwa ip link set dev "$XGW_GWA_WAN_IF" xdpgeneric off
for _ in $(seq 60); do [ -n "$(xdp_prog "$XGW_GWA_WAN_IF")" ] && break; sleep 0.1; done
[ -n "$(xdp_prog "$XGW_GWA_WAN_IF")" ] || fail "xgwd did not attach the removed WAN program again"
wait_log "event=dataplane.program_missing interface=$XGW_GWA_WAN_IF"
wait_status gw-a running

# A gateway whose interface does not exist is in error, and says why.
# (gw-ghost is in xgwd.yaml from the start, with an interface that does
# not exist.)
cat >"$tmp/ghost.yaml" <<YAML
vpn_gateways:
  - {name: gw-ghost, bandwidth: 10, local_cidr: 10.7.0.0/16, public_ips: ["198.18.0.7"]}
YAML
ctl apply -f "$tmp/ghost.yaml" >/dev/null || fail "apply gw-ghost"
wait_status gw-ghost "error gateway gw-ghost: no interface nosuchlan0"
ctl gateway show gw-ghost | grep -q "status_reason.*no interface nosuchlan0" ||
  fail "xgwctl gateway show does not print the reason"
ctl gateway delete gw-ghost >/dev/null || fail "a gateway in error cannot be deleted"

# Matched plaintext without an SA: passed (default policy) and an acquire
# event names the connection.
conn_id=$(ctl --json connection show a-to-b | jq -r '.vpn_connection.id')
xgw_ns_exec "$XGW_NS_LANA" ping -c 3 -i 0.2 -W 1 "$XGW_LANB_IP" >/dev/null 2>&1 || true
wait_log "event=dataplane.acquire .*connection=$conn_id .*src=$XGW_LANA_IP dst=$XGW_LANB_IP"
before=$(reason pass $PASS_NO_SA_PASS)
[ "$before" -ge 3 ] || fail "no_sa_pass counted $before, want >= 3"

# A real Prometheus scrapes xgwd's /metrics (inside gwA's namespace) and
# sees the attachment and the configured-but-down tunnel.
prom_pid=
if command -v prometheus >/dev/null; then
  cat >"$tmp/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: xgw
    static_configs: [{targets: ["$(cat "$tmp/state/metrics.addr")"]}]
YAML
  in_gwa prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
    --web.listen-address=127.0.0.1:9090 >"$tmp/prometheus.log" 2>&1 &
  prom_pid=$!
  prom_query() {  # PromQL -> the first sample's value, or empty
    in_gwa curl -s --max-time 2 --get --data-urlencode "query=$1" http://127.0.0.1:9090/api/v1/query |
      jq -r '.data.result[0].value[1] // empty' 2>/dev/null || true
  }
  got=
  # The first sample lands after Prometheus's discovery cycle (~6 s).
  for _ in $(seq 60); do
    got=$(prom_query "xgw_xdp_attached{interface=\"$XGW_GWA_LAN_IF\",role=\"lan\"}")
    [ -n "$got" ] && break
    sleep 0.5
  done
  [ "$got" = 1 ] || { cat "$tmp/prometheus.log" >&2; fail "Prometheus sees xgw_xdp_attached='$got', want 1"; }
  [ "$(prom_query 'xgw_tunnel_up{connection="a-to-b",role="master"}')" = 0 ] ||
    fail "Prometheus does not see the configured tunnel as down"
  [ "$(prom_query 'xgw_gateway_bandwidth_tier_bytes_per_second{gateway="gw-a"}')" = 6250000 ] ||
    fail "Prometheus does not see the 50 Mbit/s tier"
  kill "$prom_pid"; wait "$prom_pid" 2>/dev/null || true; prom_pid=
elif [ "${XGW_REQUIRE_PRIVILEGED:-0}" = 1 ]; then
  fail "prometheus is not installed (scripts/install-deps installs it)"
fi

# API changes reach the maps: tier, then SPD.
ctl gateway update gw-a --bandwidth 20 >/dev/null
for _ in $(seq 100); do [ "$(gw_field tier_bps)" = 20000000 ] && break; sleep 0.05; done
[ "$(gw_field tier_bps)" = 20000000 ] || fail "tier not updated: $(gw_field tier_bps)"
gen1=$(gw_field spd_gen)
[ "$(grep -c "event=dataplane.spd .*relations=1" "$tmp/xgwd.log" || true)" = 1 ] ||
  fail "a tier change swapped the unchanged SPD (retiring the flow cache)"

# Restart: programs stay attached, counters survive, SPD re-synced.
lan_prog=$(xdp_prog "$XGW_GWA_LAN_IF")
kill -TERM "$xgwd_pid"; wait "$xgwd_pid" || true; xgwd_pid=
[ -n "$(xdp_prog "$XGW_GWA_LAN_IF")" ] || fail "XDP detached when xgwd stopped"
synced=$(grep -c "event=dataplane.spd .*relations=1" "$tmp/xgwd.log" || true)
# backend: auto probes the kernel (a throwaway ESP SA): userspace here,
# where the kernel has no ESP, and the log says why.
sed -i 's/backend: xfrm/backend: auto/' "$tmp/xgwd.yaml"
start_xgwd
wait_log "event=dataplane.backend .*configured=auto"
grep -qE 'event=dataplane.backend backend=(userspace configured=auto reason="auto: fell back to userspace, the kernel cannot install an ESP SA|xfrm configured=auto reason="auto: the kernel installs ESP SAs)' \
  "$tmp/xgwd.log" || fail "backend auto: no clear choice in the log"
wait_log "event=dataplane.spd .*relations=1" $((synced + 1))
after=$(reason pass $PASS_NO_SA_PASS)
[ "$after" -ge "$before" ] || fail "counters reset across restart ($before -> $after)"
[ "$(gw_field spd_gen)" -gt "$gen1" ] || fail "SPD generation did not move on resync"
[ "$(xdp_prog "$XGW_GWA_LAN_IF")" != "$lan_prog" ] || fail "restart did not replace the program"

ctl connection delete a-to-b >/dev/null
wait_log "event=dataplane.spd .*relations=0"

# --detach-all removes attachments and pins.
kill -TERM "$xgwd_pid"; wait "$xgwd_pid" || true; xgwd_pid=
in_gwa "$XGWD" --config "$tmp/xgwd.yaml" --state-dir "$tmp/state" --detach-all >/dev/null 2>&1 ||
  fail "--detach-all failed"
[ -z "$(xdp_prog "$XGW_GWA_LAN_IF")" ] || fail "XDP still attached after --detach-all"
[ ! -e "$pin" ] || fail "pins left in $pin"
echo "PASS"
