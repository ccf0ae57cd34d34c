#!/usr/bin/env bash
# Probes run as an outsider would (issue 15), against xgwd with `ike:` and
# the XDP data plane on g1 and strongSwan on g2 (tests/lib/ike_lab.sh):
#
#   decoy       strongSwan, at the address of xgw's connection `real`,
#               claims the identity and knows the PSK of another connection
#               (`decoy`, whose customer gateway is elsewhere). It must not
#               bring that connection up towards itself; the attempt counts
#               as id_mismatch against `real`, unauthenticated.
#   spoof       six IKE_SA_INIT requests spoofed from the peer's address with
#               a DH group xgw refuses, against an established tunnel: counted
#               with authenticated="false"; the tunnel's status stays clean.
#   narrow-*    peers narrowing selectors (docs/ike.md, "Peers configured
#               unlike us").
#   restart-responder  kill -9 of xgwd as responder while only the peer
#               sends: traffic back within 10 s of the restart.
#   failclosed  g1 has a default route out of its WAN (as a real gateway
#               does). Under a ping from h1 to h2: kill -9 xgwd, restart it,
#               then delete the connection. A capture on g2's WAN sees no
#               plaintext packet to the remote subnet at any time; the
#               fail-closed route goes after the drain time. Reports the time
#               until traffic crosses again after the restart.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/privileged.sh"
xgw_require_root
. "$here/../lib/esp_lab.sh"
. "$here/../lib/strongswan.sh"

XGWD=$1
XGWCTL=$2
P=ip
IKE_LAB_US_PATH=route
DRAIN_S=4
IKE_LAB_IKE_EXTRA="fail_closed_drain_s: $DRAIN_S${PROBE_IKE_EXTRA:+, $PROBE_IKE_EXTRA}"
. "$here/../lib/ike_lab.sh"

# Polls (xgwd publishes IKE state once a second) until the metric is >= $2;
# prints the last value.
wait_metric() {  # regex min
  local v=0
  for _ in $(seq 30); do
    v=$(metric_value "$1")
    [ "$v" -ge "$2" ] && break
    sleep 0.2
  done
  echo "$v"
}

# Starts xgwd (in this shell: it sets xgwd_pid), then pings from namespace
# $1 to $2 (0.2 s each, at most $3 tries); sets `back` to the ms from the
# start to the first reply, or to nothing.
restart_until_ping() {  # ns dst tries
  local t0
  t0=$(date +%s%N)
  start_xgwd
  back=
  for _ in $(seq "$3"); do
    if ip netns exec "$1" ping -c 1 -W 0.2 "$2" >/dev/null 2>&1; then
      back=$(( ($(date +%s%N) - t0) / 1000000 ))
      return 0
    fi
  done
}

two_conns() {  # the real peer's connection and a decoy elsewhere
  cat <<YAML
vpn_gateways:
  - {name: gw1, bandwidth: 100, local_cidr: 10.91.1.0/24, public_ips: ["$ESP_LAB_G1_WAN_IP"]}
customer_gateways:
  - {name: ss, ip: "$ESP_LAB_G2_WAN_IP"}
  - {name: far, ip: "10.99.0.5"}
vpn_connections:
  - name: real
    vpn_gateway: gw1
    customer_gateway: ss
    psk: "psk-real"
    start_immediately: $1
    ikepolicy: {ike_version: v2, encryption_algorithm: aes-128, authentication_algorithm: sha2-256,
                dh_group: group14}
    ipsecpolicy: {encryption_algorithm: aes-128-gcm-16, authentication_algorithm: none, pfs: disable}
    policy_rules:
      - {source: 10.91.1.0/24, destination: [10.91.2.0/24]}
  - name: decoy
    vpn_gateway: gw1
    customer_gateway: far
    psk: "psk-decoy"
    start_immediately: false
    ikepolicy: {ike_version: v2, encryption_algorithm: aes-128, authentication_algorithm: sha2-256,
                dh_group: group14, peer_id_type: fqdn, peer_id: decoy.example.net}
    ipsecpolicy: {encryption_algorithm: aes-128-gcm-16, authentication_algorithm: none, pfs: disable}
    policy_rules:
      - {source: 10.91.1.0/24, destination: [10.93.0.0/24]}
YAML
}

# --- decoy: another connection's identity and PSK from this peer's address ----
if want decoy; then
  two_conns false >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "decoy: apply"
  SS_LOCAL_ID=decoy.example.net SS_LOCAL_TS=10.93.0.0/24 ss_conf decoy psk-decoy \
    aes128-sha256-modp2048 aes128gcm16 start >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "decoy: swanctl load"
  wait_reason real id_mismatch 20 || fail "decoy: the attempt was not counted against 'real'"
  [ "$(conn_field decoy status)" != up ] || fail "decoy: the decoy connection came up towards the wrong peer"
  n=$(ctl --json list-sas | jq '[.ike_sas[]?] | length')
  [ "$n" = 0 ] || fail "decoy: $n IKE SA(s) exist: $(ctl --json list-sas)"
  v=$(wait_metric 'xgw_tunnel_negotiation_failures_total\{.*connection="real".*reason="id_mismatch".*authenticated="false"' 1)
  [ "$v" -ge 1 ] || fail "decoy: id_mismatch not counted as unauthenticated in /metrics"
  grep -q "AUTHENTICATION_FAILED" "$tmp/ss/charon.log" || fail "decoy: strongSwan was not refused"
  echo "ok   - decoy: strongSwan with the decoy's id and PSK refused (real: id_mismatch, $v unauthenticated), decoy down, no SA"
  reset_conns decoy
  ctl connection delete real >/dev/null 2>&1 || true
  ran=$((ran + 1))
fi

# --- spoof: forged first messages against an established tunnel ---------------
if want spoof; then
  two_conns true >"$tmp/site.yaml"
  ss_conf real psk-real aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "spoof: swanctl load"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "spoof: apply"
  wait_up real 20 || fail "spoof: tunnel not up"
  ip netns exec "$G2" python3 "$here/probe/ike_flood.py" dh1 "$ESP_LAB_G2_WAN_IP" "$ESP_LAB_G1_WAN_IP" 6 >/dev/null ||
    fail "spoof: sending"
  pat='xgw_tunnel_negotiation_failures_total\{.*connection="real".*reason="dh_group_mismatch".*authenticated="false"'
  v=$(wait_metric "$pat" 6)
  [ "$v" -ge 6 ] || fail "spoof: $v of 6 spoofed requests counted as unauthenticated dh_group_mismatch"
  xgwd_metrics | grep -E 'xgw_tunnel_negotiation_failures_total\{.*connection="real".*authenticated="true"' &&
    fail "spoof: spoofed requests counted as authenticated failures"
  [ "$(conn_field real status)" = up ] || fail "spoof: tunnel went down"
  r=$(conn_field real failure_reason)
  [ -z "$r" ] || fail "spoof: the up tunnel's failure_reason became '$r'"
  ping_h2 3 || fail "spoof: ping after the spoofed requests"
  echo "ok   - spoof: 6 forged IKE_SA_INIT counted unauthenticated ($v), tunnel up, no failure_reason"
  reset_conns real
  ctl connection delete decoy >/dev/null 2>&1 || true
  ran=$((ran + 1))
fi

# --- narrowing (issue 15 items 1-3): peers configured unlike us -------------
child_count() { ctl --json list-sas | jq "[.ike_sas[]? | select(.connection==\"$1\") | .children[]?] | length"; }
ss_child_count() { ss_swanctl "$tmp/ss" --list-sas 2>/dev/null | grep -c "INSTALLED, TUNNEL" || true; }

# xgw initiates its /24 relation; strongSwan allows only /25 of each side.
if want narrow-init; then
  site ni psk-ni aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
  SS_LOCAL_TS=10.91.2.0/25 SS_REMOTE_TS=10.91.1.0/25 ss_conf ni psk-ni aes128-sha256-modp2048 \
    aes128gcm16 none >"$tmp/ss.conf"
  apply_both ni initiator
  wait_up ni 20 || fail "narrow-init: tunnel not up"
  sleep 8  # a loop would have made hundreds of CHILD_SAs by now
  n=$(child_count ni)
  sn=$(ss_child_count)
  [ "$n" = 1 ] || fail "narrow-init: xgw has $n CHILD_SAs, want 1"
  [ "$sn" = 1 ] || fail "narrow-init: strongSwan has $sn CHILD_SAs, want 1"
  ts=$(ctl --json list-sas | jq -r '.ike_sas[] | select(.connection=="ni") | .children[0] | (.local_ts|join(",")) + "===" + (.remote_ts|join(","))')
  [ "$ts" = "10.91.1.0/25===10.91.2.0/25" ] || fail "narrow-init: SA selectors $ts"
  note=$(conn_json ni | jq -r '.vpn_connection.ts_narrowed[0] // empty')
  [ -n "$note" ] || fail "narrow-init: the status does not say the peer narrowed: $(conn_json ni)"
  ping_h2 3 || fail "narrow-init: ping inside the narrowed selectors"
  echo "ok   - narrow-init: strongSwan narrowed /24 to /25: 1 CHILD_SA on each side after 8 s ($note)"
  reset_conns ni
  ran=$((ran + 1))
fi

# strongSwan initiates with /25 selectors inside xgw's /24: xgw's outbound
# policy is the /25 too, so 10.91.1.200 -> h2 is not encrypted into the SA.
if want narrow-resp; then
  ip -n "$H1" addr add 10.91.1.200/24 dev "$ESP_LAB_HOST_IF" 2>/dev/null || true
  site nr psk-nr aes-128 sha2-256 group14 aes-128-gcm-16 none false >"$tmp/site.yaml"
  SS_LOCAL_TS=10.91.2.0/25 SS_REMOTE_TS=10.91.1.0/25 ss_conf nr psk-nr aes128-sha256-modp2048 \
    aes128gcm16 start >"$tmp/ss.conf"
  apply_both nr responder
  wait_up nr 20 || fail "narrow-resp: tunnel not up"
  ts=$(ctl --json list-sas | jq -r '.ike_sas[] | select(.connection=="nr") | .children[0] | (.local_ts|join(",")) + "===" + (.remote_ts|join(","))')
  [ "$ts" = "10.91.1.0/25===10.91.2.0/25" ] || fail "narrow-resp: SA selectors $ts"
  ping_h2 3 || fail "narrow-resp: ping inside the selectors"
  ss_in0=$(ss_swanctl "$tmp/ss" --list-sas 2>/dev/null | sed -n 's/.*in .*, *\([0-9]*\) packets.*/\1/p' | head -n1)
  ip netns exec "$H1" ping -c 3 -i 0.2 -W 1 -I 10.91.1.200 "$ESP_LAB_H2_IP" >/dev/null 2>&1 &&
    fail "narrow-resp: 10.91.1.200 reached h2 although no SA covers it"
  ss_in1=$(ss_swanctl "$tmp/ss" --list-sas 2>/dev/null | sed -n 's/.*in .*, *\([0-9]*\) packets.*/\1/p' | head -n1)
  [ "${ss_in1:-0}" = "${ss_in0:-0}" ] ||
    fail "narrow-resp: strongSwan received ${ss_in0:-0} -> ${ss_in1:-0} packets: xgw encrypted traffic outside the SA's selectors"
  echo "ok   - narrow-resp: strongSwan's /25 accepted; 10.91.1.200 -> h2 not sent into the /25 SA (strongSwan in-packets ${ss_in0:-0} -> ${ss_in1:-0})"
  ip -n "$H1" addr del 10.91.1.200/24 dev "$ESP_LAB_HOST_IF" 2>/dev/null || true
  reset_conns nr
  ran=$((ran + 1))
fi

# strongSwan puts 2x2 subnets in one CHILD_SA; xgw has them as two rules,
# narrows the SA to the first and negotiates the second itself.
if want narrow-2x2; then
  ip -n "$G2" addr add 10.92.0.1/24 dev "$ESP_LAB_LAN_IF" 2>/dev/null || true
  RULES="      - {source: 10.91.1.0/25, destination: [10.91.2.0/24]}
      - {source: 10.91.1.128/25, destination: [10.92.0.0/24]}" \
    site n22 psk-n22 aes-128 sha2-256 group14 aes-128-gcm-16 none false >"$tmp/site.yaml"
  SS_LOCAL_TS=10.91.2.0/24,10.92.0.0/24 SS_REMOTE_TS=10.91.1.0/25,10.91.1.128/25 ss_conf n22 psk-n22 \
    aes128-sha256-modp2048 aes128gcm16 start >"$tmp/ss.conf"
  t0=$(date +%s%N)
  apply_both n22 responder
  wait_up n22 15 || fail "narrow-2x2: not up with both rules' CHILD_SAs"
  took=$(( ($(date +%s%N) - t0) / 1000000 ))
  n=$(child_count n22)
  [ "$n" = 2 ] || fail "narrow-2x2: $n CHILD_SAs, want 2"
  sn=$(ss_child_count)
  [ "$sn" = 2 ] && ss_swanctl "$tmp/ss" --list-sas | grep -q "remote 10.91.1.128/25" ||
    fail "narrow-2x2: strongSwan lacks rule2's CHILD_SA: $(ss_swanctl "$tmp/ss" --list-sas)"
  [ -z "$(conn_json n22 | jq -r '.vpn_connection.relations_without_sa // empty')" ] ||
    fail "narrow-2x2: relations without SA: $(conn_json n22)"
  ping_h2 3 || fail "narrow-2x2: ping"
  echo "ok   - narrow-2x2: strongSwan's 2x2 CHILD_SA narrowed to rule1, rule2 negotiated by xgw: up in $took ms, 2 CHILD_SAs"
  reset_conns n22
  ran=$((ran + 1))
fi

# --- recovery (issue 15 item 5): xgw responder restarts, only the peer sends --
if want restart-responder; then
  site rr psk-rr aes-128 sha2-256 group14 aes-128-gcm-16 none false >"$tmp/site.yaml"
  ss_conf rr psk-rr aes128-sha256-modp2048 aes128gcm16 start >"$tmp/ss.conf"
  apply_both rr responder
  wait_up rr 20 || fail "restart-responder: tunnel not up"
  ip netns exec "$H2" ping -c 3 -i 0.2 -W 1 "$ESP_LAB_H1_IP" >/dev/null || fail "restart-responder: ping from h2"
  sleep 1.5  # xgwd records the connection as up (once a second)
  grep -qx rr "$tmp/state/ike-up" || fail "restart-responder: rr not recorded as up: $(cat "$tmp/state/ike-up" 2>&1)"
  kill -KILL "$xgwd_pid"
  wait "$xgwd_pid" 2>/dev/null || true
  sleep 1
  restart_until_ping "$H2" "$ESP_LAB_H1_IP" 150
  [ -n "$back" ] || fail "restart-responder: traffic from the peer's side not back within 30 s"
  [ "$back" -le 10000 ] || fail "restart-responder: traffic back after $back ms, goal 10000"
  grep -q "event=ike.restore_initiate conn=rr" "$tmp/xgwd.log" || fail "restart-responder: no restore_initiate"
  echo "ok   - restart-responder: kill -9 of xgwd (responder, start on traffic), only h2 sending: traffic back ${back} ms after the restart"
  reset_conns rr
  ran=$((ran + 1))
fi

# --- failclosed: kill -9, restart, delete under ping; no plaintext leaves ------
if want failclosed; then
  # A real gateway has a default route out of its WAN: the way plaintext
  # would leave if nothing held the remote subnet.
  ip -n "$G1" route replace default via "$ESP_LAB_G2_WAN_IP"
  site fc psk-fc aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
  ss_conf fc psk-fc aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "failclosed: swanctl load"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "failclosed: apply"
  wait_up fc 20 || fail "failclosed: tunnel not up"
  ping_h2 3 || fail "failclosed: ping"
  fc_route() { ip -n "$G1" route show proto 88 | grep -E "^unreachable 10\.91\.2\.0/24" || true; }
  [ -n "$(fc_route)" ] || fail "failclosed: no fail-closed route: $(ip -n "$G1" route)"
  # Plaintext to h2's subnet on the wire between the gateways (ESP and
  # UDP-encapsulated ESP do not match).
  ip netns exec "$G2" dumpcap -q -i "$ESP_LAB_WAN_IF" -f "icmp and dst net 10.91.2.0/24" \
    -w "$tmp/wan.pcapng" >"$tmp/dumpcap.log" 2>&1 &
  cap=$!
  for _ in $(seq 50); do grep -q "Capturing on" "$tmp/dumpcap.log" && break; sleep 0.1; done
  ip netns exec "$H1" ping -i 0.05 -W 1 "$ESP_LAB_H2_IP" >"$tmp/fc-ping.txt" 2>&1 &
  pinger=$!
  sleep 1
  kill -KILL "$xgwd_pid"
  wait "$xgwd_pid" 2>/dev/null || true
  sleep 2  # xgwd down: the TAP device and its routes are gone
  [ -n "$(fc_route)" ] || fail "failclosed: the fail-closed route died with xgwd"
  restart_until_ping "$H1" "$ESP_LAB_H2_IP" 300
  [ -n "$back" ] || fail "failclosed: no traffic across the tunnel after the restart"
  # The connection is deleted under the same ping: the route holds for the
  # drain time, then goes.
  ctl connection delete fc >/dev/null || fail "failclosed: delete"
  sleep 2
  [ -n "$(fc_route)" ] || fail "failclosed: the fail-closed route went before the drain time"
  kill "$pinger" 2>/dev/null; wait "$pinger" 2>/dev/null || true
  sleep 0.5
  kill -INT "$cap" 2>/dev/null; wait "$cap" 2>/dev/null || true
  leaked=$(tshark -r "$tmp/wan.pcapng" 2>/dev/null | wc -l)
  sent=$(grep -c "bytes from" "$tmp/fc-ping.txt" || true)
  [ "$leaked" = 0 ] || { tshark -r "$tmp/wan.pcapng" | head -n 5 >&2; fail "failclosed: $leaked plaintext packets on the WAN"; }
  gone=
  for _ in $(seq $(( (DRAIN_S + 4) * 10 ))); do
    [ -z "$(fc_route)" ] && { gone=1; break; }
    sleep 0.1
  done
  [ -n "$gone" ] || fail "failclosed: the fail-closed route outlived the drain time"
  echo "ok   - failclosed: kill -9, restart, delete under ping: 0 plaintext on the WAN ($sent replies); traffic back ${back} ms after the restart; route drained after ${DRAIN_S} s"
  ip -n "$G1" route del default via "$ESP_LAB_G2_WAN_IP" 2>/dev/null || true
  reset_conns fc
  ran=$((ran + 1))
fi

echo "ran $ran cases"
[ "$ran" -gt 0 ] || fail "no case ran"
