# shellcheck shell=bash
# The IKE interop lab shared by ike_strongswan_test.sh (IKEv2) and
# ikev1_strongswan_test.sh: xgwd (userspace ESP path) on g1 against
# Debian's strongSwan (charon + kernel-libipsec) on g2, in the
# four-namespace ESP lab:
#
#      h1 ---------- g1 (xgwd) ====== g2 (charon) ---------- h2
#   10.91.1.2          192.0.2.1     192.0.2.2            10.91.2.2
#
# Source it after esp_lab.sh and strongswan.sh with XGWD, XGWCTL, P (the
# namespace prefix) and, optionally, SS_CHARON_EXTRA (charon settings) or
# IKE_LAB_NO_CHARON (another peer on g2) set; IKE_LAB_IKE_EXTRA adds
# settings to the `ike:` section of xgwd.yaml ("key: value, ...").
# xgwd runs as the product does: with `ike:` and the XDP data plane
# (`dataplane:`) attached on g1's LAN and WAN, so every tunnel packet
# crosses the classifier, the tier and the XDP counters (IKE_LAB_XDP=0 runs
# IKE alone; IKE_LAB_US_PATH=devmap|route picks dataplane.userspace_path).
# XDP_PIN is the pin directory; xdp_reason/xdp_gw_traffic read it.
# It brings the lab up, starts charon and xgwd, and defines:
#   site NAME PSK IKE_ENC IKE_AUTH DH ESP_ENC ESP_AUTH START   xgwctl YAML
#       (IKE_VERSION v1|v2, P1_MODE main|aggressive, DPD_MSG, PFS, RULES,
#        LOCAL_ID, PEER_ID adjust it)
#   ss_conf NAME PSK IKE_PROP ESP_PROP START_ACTION   swanctl.conf
#       (SS_VERSION 1|2, SS_AGGRESSIVE, SS_LOCAL_ID, SS_REMOTE_ID,
#        SS_LOCAL_TS, SS_REMOTE_TS, SS_IKE_REKEY, SS_CHILD_REKEY, SS_DPD)
#   conn_field, wait_up, wait_reason, ping_h2, reset_conns, want, fail, ctl,
#   apply_both (the initiating side's config last), failure_case
tmp=$(mktemp -d /tmp/xgw-ike-lab.XXXXXX)
xgwd_pid=
fail() {
  echo "FAIL: $*" >&2
  [ -f "$tmp/xgwd.log" ] && tail -n 40 "$tmp/xgwd.log" >&2
  [ -f "$tmp/ss/charon.log" ] && tail -n 30 "$tmp/ss/charon.log" >&2
  exit 1
}
XDP_PIN=/sys/fs/bpf/xgw/iklab-$$-$RANDOM
cleanup() {
  [ -n "$xgwd_pid" ] && kill -TERM "$xgwd_pid" 2>/dev/null && sleep 0.3
  [ -n "$xgwd_pid" ] && kill -KILL "$xgwd_pid" 2>/dev/null || true
  if [ "${IKE_LAB_XDP:-1}" = 1 ] && [ -f "$tmp/xgwd.yaml" ]; then
    nsenter --net="/run/netns/$G1" "$XGWD" --config "$tmp/xgwd.yaml" --state-dir "$tmp/state" \
      --detach-all >/dev/null 2>&1 || true
    rm -rf "$XDP_PIN"
  fi
  ss_stop_all || true
  declare -F ike_lab_cleanup_peer >/dev/null && ike_lab_cleanup_peer
  esp_lab_down "$P" || true
  if [ -n "${XGW_KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM

esp_lab_up "$P" || fail "topology"
G1=$ESP_LAB_G1 G2=$ESP_LAB_G2 H1=$ESP_LAB_H1 H2=$ESP_LAB_H2
in_g1() { ip netns exec "$G1" "$@"; }
# nsenter switches only the network namespace, so bpffs pins stay visible
# (ip netns exec remounts /sys).
in_g1_net() { nsenter --net="/run/netns/$G1" "$@"; }
ctl() { in_g1 "$XGWCTL" --state-dir "$tmp/state" "$@"; }

# g2 routes h1's LAN into charon's libipsec TUN by itself (policy routes in
# table 220); g1's kernel routes come from xgwd (ike.install_routes).
cat >"$tmp/xgwd.yaml" <<YAML
metrics: {listen: "127.0.0.1:0"}
ike: {tun: xgw0, workers: 1${IKE_LAB_IKE_EXTRA:+, $IKE_LAB_IKE_EXTRA}}
YAML
if [ "${IKE_LAB_XDP:-1}" = 1 ]; then
  cat >>"$tmp/xgwd.yaml" <<YAML
dataplane:
  pin_dir: $XDP_PIN
  backend: userspace
  userspace_path: ${IKE_LAB_US_PATH:-route}
  gateways:
    gw1: {lan_interface: $ESP_LAB_LAN_IF, wan_interface: $ESP_LAB_WAN_IF}
YAML
fi
if [ "${IKE_LAB_XDP:-1}" = 1 ]; then
  # A frame from a wire carries complete checksums; a veth peer hands over
  # CHECKSUM_PARTIAL packets that XDP_REDIRECT does not finish. h1
  # checksums in software, like a host behind a real NIC.
  ip netns exec "$H1" ethtool -K "$ESP_LAB_HOST_IF" tx off >/dev/null 2>&1 || fail "ethtool -K tx off on h1"
fi
# XDP counters of gateway index $1 (default 0): one drop/pass reason,
# summed over CPUs (indexes: XGW_DROP_REASONS / XGW_PASS_REASONS).
xdp_reason() {  # drop|pass index [gw_idx]
  bpftool -j map lookup pinned "$XDP_PIN/xgw_gw_stats" key "${3:-0}" 0 0 0 |
    jq "[.formatted.values[].value.$1[$2]] | add"
}
XDP_DROP_UNKNOWN_SPI=4 XDP_DROP_OVER_TIER=3 XDP_PASS_USERSPACE=6 XDP_PASS_ESP_IN=7
# One traffic counter (tx_bytes, rx_packets, ...) of the gateway.
xdp_gw_traffic() {  # field [gw_idx]
  bpftool -j map lookup pinned "$XDP_PIN/xgw_gw_stats" key "${2:-0}" 0 0 0 |
    jq "[.formatted.values[].value.traffic.$1] | add"
}
# /metrics of the running xgwd; metric_value REGEX: the value of the first
# line matching the extended regex, as an integer (0 when none matches).
xgwd_metrics() { in_g1 curl -s --max-time 5 "http://$(cat "$tmp/state/metrics.addr")/metrics"; }
metric_value() {
  local v
  v=$(xgwd_metrics | grep -E "$1" | awk '{print $2}' | head -n1)
  printf '%.0f' "${v:-0}"
}
start_xgwd() {
  rm -f "$tmp/state/api.addr"
  # nsenter execs xgwd, so $! is xgwd itself (a shell function run in the
  # background would be a subshell, and killing that leaves xgwd running).
  nsenter --net="/run/netns/$G1" "$XGWD" --config "$tmp/xgwd.yaml" --state-dir "$tmp/state" \
    --api-listen 127.0.0.1:0 --log-level debug >>"$tmp/xgwd.log" 2>&1 &
  xgwd_pid=$!
  for _ in $(seq 100); do [ -s "$tmp/state/api.addr" ] && return 0; sleep 0.05; done
  fail "xgwd did not start"
}
if [ -z "${IKE_LAB_NO_CHARON:-}" ]; then
  ss_start ss "$G2" "$tmp/ss" "${SS_CHARON_EXTRA:-}" || fail "charon did not start"
fi
start_xgwd

DEFAULT_RULES="      - {source: 10.91.1.0/24, destination: [10.91.2.0/24]}"
# site.yaml for xgwctl apply: one gateway, the strongSwan peer, and the
# connection with the case's policies.
site() {  # name psk ike_enc ike_auth dh esp_enc esp_auth start [extra yaml lines]
  cat <<YAML
vpn_gateways:
  - {name: gw1, bandwidth: ${BANDWIDTH:-100}, local_cidr: 10.91.1.0/24, public_ips: ["$ESP_LAB_G1_WAN_IP"]}
customer_gateways:
  - {name: ss, ip: "$ESP_LAB_G2_WAN_IP"}
vpn_connections:
  - name: $1
    vpn_gateway: gw1
    customer_gateway: ss
    psk: "$2"
    start_immediately: $8
    ikepolicy:
      ike_version: ${IKE_VERSION:-v2}
${P1_MODE:+      phase1_negotiation_mode: $P1_MODE}
      encryption_algorithm: $3
      authentication_algorithm: $4
      dh_group: $5
      dpd: {interval: 10, timeout: 6${DPD_MSG:+, msg: $DPD_MSG}}
${LOCAL_ID:+      local_id_type: fqdn
      local_id: $LOCAL_ID}
${PEER_ID:+      peer_id_type: fqdn
      peer_id: $PEER_ID}
    ipsecpolicy: {encryption_algorithm: $6, authentication_algorithm: $7, pfs: ${PFS:-disable}}
    policy_rules:
${RULES:-$DEFAULT_RULES}
YAML
}

# swanctl.conf for charon: the mirror image. ss_conf name psk ike_prop esp_prop start_action
ss_conf() {
  cat <<CONF
connections {
  $1 {
    version = ${SS_VERSION:-2}
${SS_AGGRESSIVE:+    aggressive = yes}
    local_addrs = $ESP_LAB_G2_WAN_IP
    remote_addrs = $ESP_LAB_G1_WAN_IP
    proposals = $3
    rekey_time = ${SS_IKE_REKEY:-4h}
    dpd_delay = ${SS_DPD:-0}
    local { auth = psk
            id = ${SS_LOCAL_ID:-$ESP_LAB_G2_WAN_IP} }
    remote { auth = psk
             id = ${SS_REMOTE_ID:-$ESP_LAB_G1_WAN_IP} }
    children {
      net {
        local_ts = ${SS_LOCAL_TS:-10.91.2.0/24}
        remote_ts = ${SS_REMOTE_TS:-10.91.1.0/24}
        esp_proposals = $4
        rekey_time = ${SS_CHILD_REKEY:-1h}
        start_action = $5
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-1 { id-1 = ${SS_LOCAL_ID:-$ESP_LAB_G2_WAN_IP}
          id-2 = ${SS_REMOTE_ID:-$ESP_LAB_G1_WAN_IP}
          secret = "$2" }
}
CONF
}

conn_json() { ctl --json connection show "$1"; }
conn_field() { conn_json "$1" | jq -r ".vpn_connection.$2 // empty"; }
wait_up() {  # conn timeout_s
  local t=$(( $2 * 10 ))
  for _ in $(seq "$t"); do
    [ "$(conn_field "$1" status)" = up ] && return 0
    sleep 0.1
  done
  conn_json "$1" >&2 || true
  return 1
}
wait_reason() {  # conn reason timeout_s
  local t=$(( $3 * 10 )) got=
  for _ in $(seq "$t"); do
    got=$(conn_field "$1" failure_reason)
    [ "$got" = "$2" ] && return 0
    sleep 0.1
  done
  echo "failure_reason is '$got', want '$2'" >&2
  conn_json "$1" >&2 || true
  return 1
}
ping_h2() { ip netns exec "$H1" ping -c "${1:-3}" -i 0.2 -W 1 "$ESP_LAB_H2_IP" >/dev/null; }
reset_conns() {
  ctl connection delete "$1" >/dev/null 2>&1 || true
  ss_swanctl "$tmp/ss" --terminate --ike "$1" --force >/dev/null 2>&1 || true
  ss_swanctl "$tmp/ss" --unload-conn --name "$1" >/dev/null 2>&1 || true
}

ran=0
want() { [ -z "${IKE_CASES:-}" ] || [[ " $IKE_CASES " == *" $1 "* ]]; }

# The initiating side's configuration goes in last, so the first attempt
# meets a configured responder.
apply_both() {  # name role(xgw's)
  if [ "$2" = initiator ]; then
    ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "$1: swanctl load"
    ctl apply -f "$tmp/site.yaml" >/dev/null || fail "$1: apply"
  else
    ctl apply -f "$tmp/site.yaml" >/dev/null || fail "$1: apply"
    ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "$1: swanctl load"
  fi
}

# failure_case TAG ROLE REASON SS_IKE SS_ESP SS_PSK: xgw (site with
# $FAIL_SUITE: ike_enc ike_auth dh esp_enc esp_auth) against strongSwan
# configured with the given proposals and PSK (and whatever SS_* / site
# knobs the caller sets) must report REASON within $FAIL_WAIT s.
failure_case() {
  local name="${FAIL_PREFIX:-f}-$1-$2"
  want "$name" || return 0
  local start_x=true start_s=none
  [ "$2" = responder ] && { start_x=false; start_s=start; }
  # shellcheck disable=SC2086
  site "$name" psk-good ${FAIL_SUITE:-aes-128 sha2-256 group14 aes-128 sha2-256} "$start_x" >"$tmp/site.yaml"
  ss_conf "$name" "$6" "$4" "$5" "$start_s" >"$tmp/ss.conf"
  apply_both "$name" "$2"
  wait_reason "$name" "$3" "${FAIL_WAIT:-20}" || fail "$name: wrong failure reason"
  echo "ok   - $name: $3 ($(conn_field "$name" failure_detail))"
  reset_conns "$name"
  ran=$((ran + 1))
}
