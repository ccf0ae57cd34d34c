#!/usr/bin/env bash
# IKEv2 interop: xgwd (userspace ESP path) on g1 against Debian's strongSwan
# (charon + kernel-libipsec) on g2, in the four-namespace ESP lab:
#
#      h1 ---------- g1 (xgwd) ====== g2 (charon) ---------- h2
#   10.91.1.2          192.0.2.1     192.0.2.2            10.91.2.2
#
# The connection is created through xgwctl; pings from h1 to h2 cross xgw's
# own ESP. Cases (IKE_CASES, default all): each proposal of the issue with
# xgw as initiator and as responder, FQDN ids, two SPD rules with several
# subnets, rekeys by both sides under a running ping, DPD after killing
# charon, and the failure reasons (wrong PSK, wrong id, no common proposal,
# wrong DH group, mismatched subnets).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/privileged.sh"
xgw_require_root
. "$here/../lib/esp_lab.sh"
. "$here/../lib/strongswan.sh"

XGWD=$1
XGWCTL=$2
P=ik
# The IKEv2 lab hands plaintext to the ESP engine by XDP redirect (devmap);
# the IKEv1 lab runs the default (route), so both paths meet strongSwan.
IKE_LAB_US_PATH=${IKE_LAB_US_PATH:-devmap}
. "$here/../lib/ike_lab.sh"

# --- Proposals, xgw as initiator and as responder -------------------------
# name: xgw ike enc/auth/dh, esp enc/auth ; strongSwan proposal strings
proposal_case() {  # tag ike_enc ike_auth dh esp_enc esp_auth ss_ike ss_esp role
  local name="p-$1-$9"
  want "$name" || return 0
  local start_x=true start_s=none
  [ "$9" = responder ] && { start_x=false; start_s=start; }
  site "$name" "psk-$1" "$2" "$3" "$4" "$5" "$6" "$start_x" >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "$name: apply"
  ss_conf "$name" "psk-$1" "$7" "$8" "$start_s" >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "$name: swanctl load"
  wait_up "$name" 20 || fail "$name: tunnel not up"
  ping_h2 3 || fail "$name: ping across the tunnel"
  local bytes
  bytes=$(ctl --json list-sas | jq "[.ike_sas[] | .children[]? | .bytes_in] | add // 0")
  [ "${bytes:-0}" -gt 0 ] || fail "$name: no inbound bytes on xgw's CHILD_SA"
  echo "ok   - $name ($7 / $8)"
  reset_conns "$name"
  ran=$((ran + 1))
}

for role in initiator responder; do
  proposal_case gcm aes-128 sha2-256 group14 aes-128-gcm-16 none aes128-sha256-modp2048 aes128gcm16 $role
  proposal_case cbc aes-128 sha2-256 group14 aes-128 sha2-256 aes128-sha256-modp2048 aes128-sha256 $role
  proposal_case a256 aes-256 sha2-512 group20 aes-256 sha2-512 aes256-sha512-ecp384 aes256-sha512 $role
  proposal_case 3des 3des sha1 group2 3des sha1 3des-sha1-modp1024 3des-sha1 $role
  proposal_case ecp aes-128 sha2-256 group19 aes-128 sha2-256 aes128-sha256-ecp256 aes128-sha256 $role
done

# --- Identities, several subnets -------------------------------------------
if want fqdn; then
  LOCAL_ID=xgw.example.org PEER_ID=ss.example.org site fqdn psk-fqdn aes-128 sha2-256 group14 \
    aes-128-gcm-16 none true >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "fqdn: apply"
  SS_LOCAL_ID=ss.example.org SS_REMOTE_ID=xgw.example.org ss_conf fqdn psk-fqdn \
    aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "fqdn: swanctl load"
  wait_up fqdn 20 || fail "fqdn: tunnel not up"
  ping_h2 3 || fail "fqdn: ping"
  [ "$(ctl --json list-sas | jq -r '.ike_sas[0].remote_id')" = ss.example.org ] ||
    fail "fqdn: remote id is not ss.example.org"
  echo "ok   - fqdn ids"
  reset_conns fqdn
  ran=$((ran + 1))
fi

if want rules; then
  # Two SPD rules; the first with two remote subnets in one CHILD_SA.
  # charon's libipsec routes need a local address in each of its subnets.
  ip -n "$G2" addr add 10.92.0.1/24 dev "$ESP_LAB_LAN_IF" 2>/dev/null || true
  RULES="      - {source: 10.91.1.0/25, destination: [10.91.2.0/24, 10.92.0.0/24]}
      - {source: 10.91.1.128/25, destination: [10.91.2.0/24]}" \
    site rules psk-rules aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "rules: apply"
  SS_LOCAL_TS=10.91.2.0/24,10.92.0.0/24 ss_conf rules psk-rules aes128-sha256-modp2048 aes128gcm16 \
    none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "rules: swanctl load"
  wait_up rules 20 || fail "rules: tunnel not up"
  ping_h2 3 || fail "rules: ping"
  sas=$(ctl --json list-sas)
  [ "$(echo "$sas" | jq '.ike_sas[0].children | length')" = 2 ] || fail "rules: want 2 CHILD_SAs: $sas"
  [ "$(echo "$sas" | jq -r '.ike_sas[0].children[] | select(.name=="rule1") | .remote_ts | join(",")')" = \
    "10.91.2.0/24,10.92.0.0/24" ] || fail "rules: rule1 does not carry both remote subnets: $sas"
  ss_swanctl "$tmp/ss" --list-sas | grep -q "10.91.1.128/25" || fail "rules: strongSwan lacks rule2's CHILD_SA"
  echo "ok   - two SPD rules, several subnets in one CHILD_SA"
  ctl list-sas
  reset_conns rules
  ran=$((ran + 1))
fi

# --- One packet path: XDP on g1's LAN and WAN carries the negotiated SAs -----
# xgw_lan classifies h1's plaintext and redirects it into the ESP engine's
# device; xgw_wan admits only the SPIs IKE negotiated; forged SPIs die in
# XDP, counted; the gateway's tier holds tunnel traffic both ways.
if want xdp && [ "${IKE_LAB_XDP:-1}" = 1 ]; then
  site xdp psk-xdp aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "xdp: apply"
  ss_conf xdp psk-xdp aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "xdp: swanctl load"
  wait_up xdp 20 || fail "xdp: tunnel not up"
  gw=$(ctl --json gateway show gw1)
  [ "$(echo "$gw" | jq -r .vpn_gateway.status)" = running ] || fail "xdp: gateway not running: $gw"
  for ifc in "$ESP_LAB_LAN_IF" "$ESP_LAB_WAN_IF"; do
    in_g1 ip -d link show "$ifc" | grep -q "prog/xdp" || fail "xdp: no XDP program on $ifc"
  done
  unknown0=$(xdp_reason drop $XDP_DROP_UNKNOWN_SPI)
  us0=$(xdp_reason pass $XDP_PASS_USERSPACE)
  esp0=$(xdp_reason pass $XDP_PASS_ESP_IN)
  ping_h2 5 || fail "xdp: ping across the tunnel"
  ip netns exec "$H2" iperf3 -s -1 -p 5301 >/dev/null 2>&1 &
  srv=$!
  sleep 0.3
  ip netns exec "$H1" timeout 20 iperf3 -c "$ESP_LAB_H2_IP" -p 5301 -t 3 -J >"$tmp/iperf-xdp.json" ||
    fail "xdp: iperf3 across the tunnel"
  wait "$srv" 2>/dev/null || true
  mbit=$(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$tmp/iperf-xdp.json")
  [ "$mbit" -gt 1 ] || fail "xdp: iperf3 moved only $mbit Mbit/s"
  unknown1=$(xdp_reason drop $XDP_DROP_UNKNOWN_SPI)
  us1=$(xdp_reason pass $XDP_PASS_USERSPACE)
  esp1=$(xdp_reason pass $XDP_PASS_ESP_IN)
  [ "$unknown1" = "$unknown0" ] || fail "xdp: $((unknown1 - unknown0)) negotiated ESP packets dropped as unknown_spi"
  [ $((us1 - us0)) -ge 1000 ] || fail "xdp: only $((us1 - us0)) LAN packets handed to the ESP engine by XDP"
  [ $((esp1 - esp0)) -ge 100 ] || fail "xdp: only $((esp1 - esp0)) ESP packets admitted by XDP"
  # The negotiated inbound SPI is in xgw_sa; the tunnel names the outbound one.
  sa=$(ctl --json list-sas | jq '.ike_sas[] | select(.connection=="xdp") | .children[0]')
  spi_in=$(echo "$sa" | jq -r .spi_in)
  spi_out=$(echo "$sa" | jq -r .spi_out)
  bpftool map lookup pinned "$XDP_PIN/xgw_sa" key hex ${spi_in:0:2} ${spi_in:2:2} ${spi_in:4:2} ${spi_in:6:2} \
    >/dev/null 2>&1 || fail "xdp: inbound SPI $spi_in not in xgw_sa"
  bpftool -j map dump pinned "$XDP_PIN/xgw_tun" |
    jq -e --argjson s "$((16#$spi_out))" '[.[] | select(.formatted.value.out_spi == $s and .formatted.value.flags == 1)] | length == 1' \
    >/dev/null || fail "xdp: no ready tunnel names outbound SPI $spi_out in xgw_tun"
  # Forged SPIs from the WAN side, raw ESP and ESP-in-UDP: dropped in XDP.
  ip netns exec "$G2" python3 - "$ESP_LAB_G1_WAN_IP" <<'PY' || fail "xdp: could not send forged ESP"
import socket, struct, sys
dst = sys.argv[1]
raw = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)
udp = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for i in range(50):
    body = struct.pack("!II", 0xdeadbe00 + i, i + 1) + b"\x00" * 64
    raw.sendto(body, (dst, 0))
    udp.sendto(body, (dst, 4500))
PY
  sleep 0.5
  unknown2=$(xdp_reason drop $XDP_DROP_UNKNOWN_SPI)
  [ $((unknown2 - unknown1)) -ge 100 ] || fail "xdp: $((unknown2 - unknown1)) of 100 forged ESP packets counted as unknown_spi"
  ping_h2 3 || fail "xdp: ping after the forged packets"
  # The tunnel's XDP counters and its ESP counters agree, both in /metrics
  # (the IKE snapshot is published once a second).
  sleep 1.5
  in_g1 curl -s --max-time 5 "http://$(cat "$tmp/state/metrics.addr")/metrics" >"$tmp/metrics-xdp.txt" ||
    fail "xdp: no /metrics"
  metric() { awk -v m="$1" '$1 ~ "^"m"\\{" && $1 ~ /connection="xdp"/ { print $2 }' "$tmp/metrics-xdp.txt"; }
  agree=""
  for dir in transmit receive; do
    x=$(metric "xgw_tunnel_${dir}_packets_total")
    e=$(metric "xgw_tunnel_esp_${dir}_packets_total")
    [ -n "$x" ] && [ -n "$e" ] || fail "xdp: /metrics lacks the XDP or ESP $dir packets of the tunnel"
    awk -v x="$x" -v e="$e" 'BEGIN { d = x - e; if (d < 0) d = -d; exit !(e > 0 && d <= e * 0.01) }' ||
      fail "xdp: $dir packets: XDP counted $x, ESP $e (more than 1 % apart)"
    agree+=" $dir XDP $x / ESP $e;"
  done
  echo "ok   - one packet path: $((us1 - us0)) LAN packets to the ESP engine and $((esp1 - esp0)) ESP admitted by XDP, iperf3 $mbit Mbit/s, 0 unknown_spi for negotiated SPIs, $((unknown2 - unknown1)) forged dropped; packets$agree"
  reset_conns xdp
  ran=$((ran + 1))
fi

# --- The gateway's tier on tunnel traffic, both directions --------------------
# UDP offered at twice the tier; the rate XDP admits (its gateway counters,
# sampled over 3 s of steady load) must be the tier within 5 %.
if want tier && [ "${IKE_LAB_XDP:-1}" = 1 ]; then
  tier_rate() {  # field -> admitted Mbit/s over 3 s
    local b1 b2 t1 t2
    b1=$(xdp_gw_traffic "$1"); t1=$(date +%s%N)
    sleep 3
    b2=$(xdp_gw_traffic "$1"); t2=$(date +%s%N)
    awk -v b="$((b2 - b1))" -v t="$((t2 - t1))" 'BEGIN { printf "%.2f", b * 8 * 1000 / t }'
  }
  for bw in 5 50; do
    BANDWIDTH=$bw site tier psk-tier aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
    ctl apply -f "$tmp/site.yaml" >/dev/null || fail "tier: apply"
    ss_conf tier psk-tier aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
    ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "tier: swanctl load"
    wait_up tier 20 || fail "tier: tunnel not up"
    for dir in out in; do
      field=tx_bytes; rev=
      [ "$dir" = in ] && { field=rx_bytes; rev=-R; }
      drops0=$(xdp_reason drop $XDP_DROP_OVER_TIER)
      ip netns exec "$H2" iperf3 -s -1 -p 5302 >/dev/null 2>&1 &
      srv=$!
      sleep 0.3
      ip netns exec "$H1" timeout 20 iperf3 -c "$ESP_LAB_H2_IP" -p 5302 -u -b $((bw * 2))M -l 1200 -t 6 $rev \
        >"$tmp/iperf-tier.txt" 2>&1 &
      cli=$!
      sleep 2
      got=$(tier_rate $field)
      wait "$cli" || fail "tier: iperf3 $dir"
      wait "$srv" 2>/dev/null || true
      drops=$(( $(xdp_reason drop $XDP_DROP_OVER_TIER) - drops0 ))
      ok=$(awk -v g="$got" -v w="$bw" 'BEGIN { print (g >= w * 0.95 && g <= w * 1.05) ? 1 : 0 }')
      [ "$ok" = 1 ] || fail "tier: $bw Mbit/s $dir: XDP admitted $got Mbit/s (want within 5 %)"
      [ "$drops" -gt 0 ] || fail "tier: $bw Mbit/s $dir: no over_tier drops at twice the rate"
      echo "ok   - tier $bw Mbit/s $dir: $got Mbit/s admitted, $drops dropped over tier"
    done
    reset_conns tier
  done
  ran=$((ran + 1))
fi

# --- Start on traffic: the ESP path's acquire starts the negotiation ---------
if want acquire; then
  site acquire psk-acq aes-128 sha2-256 group14 aes-128-gcm-16 none false >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "acquire: apply"
  ss_conf acquire psk-acq aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "acquire: swanctl load"
  sleep 1
  [ "$(conn_field acquire negotiation_status)" = down ] || fail "acquire: negotiated before any traffic"
  # The first packets find a policy without an SA (acquire); the tunnel
  # comes up and later pings cross it.
  ip netns exec "$H1" ping -c 20 -i 0.2 -W 1 "$ESP_LAB_H2_IP" >"$tmp/ping-acq.txt" 2>&1 || true
  wait_up acquire 10 || fail "acquire: traffic did not bring the tunnel up"
  got=$(grep -o '[0-9]* received' "$tmp/ping-acq.txt" | cut -d' ' -f1)
  [ "${got:-0}" -ge 10 ] || fail "acquire: only ${got:-0} of 20 pings answered"
  grep -q "event=ike.acquire conn=acquire" "$tmp/xgwd.log" || fail "acquire: no acquire logged"
  if [ "${IKE_LAB_XDP:-1}" = 1 ]; then
    grep -q "event=dataplane.acquire" "$tmp/xgwd.log" || fail "acquire: XDP raised no acquire"
    sleep 1.5  # the IKE snapshot (with the acquire counts) is published once a second
    in_g1 curl -s --max-time 5 "http://$(cat "$tmp/state/metrics.addr")/metrics" >"$tmp/metrics-acq.txt" ||
      fail "acquire: no /metrics"
    n=$(awk '$1 == "xgw_dataplane_acquires_total{result=\"negotiated\"}" { print $2 }' "$tmp/metrics-acq.txt")
    [ "${n:-0}" -ge 1 ] 2>/dev/null || fail "acquire: xgw_dataplane_acquires_total{result=negotiated} is '${n:-}'"
  fi
  echo "ok   - start on traffic: acquire negotiated the tunnel, $got/20 pings answered"
  reset_conns acquire
  ran=$((ran + 1))
fi

# --- Rekeys by both sides under a running ping -------------------------------
if want rekey; then
  # xgw: CHILD_SA lifetime 30 s (rekeys near 27 s and 54 s), IKE SA 60 s
  # (near 53 s); strongSwan rekeys the CHILD_SA at 5 s and the IKE SA at
  # 60 s on command. A ping every 0.1 s runs across all of it.
  site rekey psk-rekey aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
  sed -i 's/^      dpd: {interval: 10, timeout: 6}/      lifetime_seconds: 60\n      dpd: {interval: 10, timeout: 6}/;
          s/pfs: disable}/pfs: disable, lifetime_seconds: 30}/' "$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "rekey: apply"
  ss_conf rekey psk-rekey aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "rekey: swanctl load"
  wait_up rekey 20 || fail "rekey: tunnel not up"
  before_child=$(grep -c "event=ike.child_rekeyed" "$tmp/xgwd.log" || true)
  before_ike=$(grep -c "event=ike.rekeyed" "$tmp/xgwd.log" || true)
  ip netns exec "$H1" ping -c 650 -i 0.1 -W 1 "$ESP_LAB_H2_IP" >"$tmp/ping.txt" 2>&1 &
  ping_pid=$!
  sleep 5
  ss_swanctl "$tmp/ss" --rekey --child net >/dev/null || fail "rekey: swanctl child rekey"
  sleep 55
  ss_swanctl "$tmp/ss" --rekey --ike rekey >/dev/null || fail "rekey: swanctl IKE rekey"
  wait "$ping_pid" || true
  loss=$(grep -o '[0-9.]*% packet loss' "$tmp/ping.txt" | cut -d% -f1)
  sent=$(grep -o '^[0-9]* packets transmitted' "$tmp/ping.txt" | cut -d' ' -f1)
  child=$(( $(grep -c "event=ike.child_rekeyed" "$tmp/xgwd.log") - before_child ))
  ike=$(( $(grep -c "event=ike.rekeyed" "$tmp/xgwd.log") - before_ike ))
  grep -q "event=ike.child_rekeyed.*role=initiator" "$tmp/xgwd.log" || fail "rekey: xgw never rekeyed a CHILD_SA itself"
  grep -q "event=ike.child_rekeyed.*role=responder" "$tmp/xgwd.log" || fail "rekey: xgw never answered a CHILD_SA rekey"
  [ "$ike" -ge 2 ] || fail "rekey: $ike IKE rekeys seen, want 2 (one by each side)"
  [ "$loss" = 0 ] || fail "rekey: $loss% of $sent pings lost across the rekeys"
  echo "ok   - rekeys: $child CHILD_SA and $ike IKE_SA rekeys by both sides, $sent pings, 0 lost"
  reset_conns rekey
  ran=$((ran + 1))
fi

# --- DPD: charon killed ------------------------------------------------------
if want dpd; then
  site dpd psk-dpd aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "dpd: apply"
  ss_conf dpd psk-dpd aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "dpd: swanctl load"
  wait_up dpd 20 || fail "dpd: tunnel not up"
  ping_h2 2 || fail "dpd: ping"
  kill -KILL "$(ss_pid "$tmp/ss")"
  t0=$(date +%s%N)
  wait_reason dpd dead_peer 30 || fail "dpd: not declared dead"
  took=$(( ($(date +%s%N) - t0) / 1000000 ))
  # interval 10 s + timeout 6 s, plus the ping's last reply and a tick.
  [ "$took" -le 18000 ] || fail "dpd: declared dead after $took ms, want <= 18000"
  [ "$took" -ge 6000 ] || fail "dpd: declared dead after only $took ms"
  echo "ok   - DPD: dead peer declared after $took ms (interval 10 s + timeout 6 s)"
  ctl connection delete dpd >/dev/null
  ss_stop "$tmp/ss" || true  # it was killed: nothing left to stop
  ss_start ss "$G2" "$tmp/ss" "" || fail "charon did not restart"
  ran=$((ran + 1))
fi

# --- NAT between the sites ---------------------------------------------------
# g1 reaches g2 a second way, through a NAT namespace (nftables masquerade):
#   g1 wan1 192.0.3.1 -- 192.0.3.254 nat 198.51.100.254 -- 198.51.100.2 wan1 g2
# xgw sits behind the NAT with a private public_ip; it detects the NAT,
# floats to port 4500, encapsulates ESP in UDP and sends keepalives.
if want nat; then
  NATNS=${P}nat
  ip netns del "$NATNS" 2>/dev/null || true
  ip netns add "$NATNS"
  ip link add wan1 netns "$G1" type veth peer name in0 netns "$NATNS"
  ip link add out0 netns "$NATNS" type veth peer name wan1 netns "$G2"
  ip -n "$G1" addr add 192.0.3.1/24 dev wan1
  ip -n "$NATNS" addr add 192.0.3.254/24 dev in0
  ip -n "$NATNS" addr add 198.51.100.254/24 dev out0
  ip -n "$G2" addr add 198.51.100.2/24 dev wan1
  for l in "$G1 wan1" "$NATNS in0" "$NATNS out0" "$G2 wan1" "$NATNS lo"; do
    set -- $l
    ip -n "$1" link set "$2" up
  done
  ip -n "$G1" route add 198.51.100.0/24 via 192.0.3.254
  ip netns exec "$NATNS" sysctl -q -w net.ipv4.ip_forward=1
  ip netns exec "$NATNS" nft -f - <<NFT
table ip nat {
  chain post { type nat hook postrouting priority 100; oifname "out0" masquerade; }
}
NFT
  cat >"$tmp/site.yaml" <<YAML
vpn_gateways:
  - {name: gw-nat, bandwidth: 100, local_cidr: 10.91.1.0/24, public_ips: ["192.0.3.1"]}
customer_gateways:
  - {name: ss-nat, ip: "198.51.100.2"}
vpn_connections:
  - name: nat
    vpn_gateway: gw-nat
    customer_gateway: ss-nat
    psk: "psk-nat"
    start_immediately: true
    ikepolicy: {ike_version: v2, encryption_algorithm: aes-128, authentication_algorithm: sha2-256,
                dh_group: group14, dpd: {interval: 10, timeout: 6}}
    ipsecpolicy: {encryption_algorithm: aes-128-gcm-16, authentication_algorithm: none, pfs: disable}
    policy_rules:
      - {source: 10.91.1.0/24, destination: [10.91.2.0/24]}
YAML
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "nat: apply"
  cat >"$tmp/ss.conf" <<CONF
connections {
  nat {
    version = 2
    local_addrs = 198.51.100.2
    remote_addrs = %any
    proposals = aes128-sha256-modp2048
    local { auth = psk
            id = 198.51.100.2 }
    remote { auth = psk
             id = 192.0.3.1 }
    children { net { local_ts = 10.91.2.0/24
                     remote_ts = 10.91.1.0/24
                     esp_proposals = aes128gcm16 } }
  }
}
secrets { ike-nat { id-1 = 198.51.100.2
                    id-2 = 192.0.3.1
                    secret = "psk-nat" } }
CONF
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "nat: swanctl load"
  wait_up nat 25 || fail "nat: tunnel not up through the NAT"
  ping_h2 3 || fail "nat: ping through the NAT"
  sa=$(ctl --json list-sas | jq '.ike_sas[] | select(.connection=="nat")')
  [ "$(echo "$sa" | jq -r .nat_local)" = true ] || fail "nat: xgw did not see itself behind a NAT: $sa"
  [ "$(echo "$sa" | jq -r '.children[0].mode')" = TUNNEL-in-UDP ] || fail "nat: ESP not in UDP: $sa"
  ss_swanctl "$tmp/ss" --list-sas | grep -q "198.51.100.254\[" || fail "nat: strongSwan does not see the NAT's address"
  echo "ok   - NAT: xgw behind nftables masquerade, UDP-encapsulated ESP, $(echo "$sa" | jq -r .remote) seen"
  reset_conns nat
  ctl gateway delete gw-nat >/dev/null 2>&1 || true
  ip netns del "$NATNS"
  ran=$((ran + 1))
fi

# --- Prometheus: a real server scrapes xgwd while traffic crosses the tunnel ---
if want metrics; then
  if ! command -v prometheus >/dev/null || ! command -v promtool >/dev/null; then
    [ "${XGW_REQUIRE_PRIVILEGED:-0}" = 1 ] && fail "metrics: prometheus is not installed"
    echo "skip - metrics: prometheus not installed"
  else
    site metrics psk-m aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
    ctl apply -f "$tmp/site.yaml" >/dev/null || fail "metrics: apply"
    ss_conf metrics psk-m aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
    ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "metrics: swanctl load"
    wait_up metrics 20 || fail "metrics: tunnel not up"
    maddr=$(cat "$tmp/state/metrics.addr")
    # xgwd publishes the IKE state once a second.
    for _ in $(seq 30); do
      in_g1 curl -s --max-time 5 "http://$maddr/metrics" >"$tmp/metrics.txt" || fail "metrics: no /metrics"
      grep -q '^xgw_tunnel_ike_state{.*connection="metrics".*state="established"} 1' "$tmp/metrics.txt" &&
        break
      sleep 0.2
    done
    grep -q '^xgw_tunnel_ike_state{.*connection="metrics".*state="established"} 1' "$tmp/metrics.txt" ||
      fail "metrics: no established state in /metrics"
    promtool check metrics <"$tmp/metrics.txt" >"$tmp/promtool.txt" 2>&1 ||
      { cat "$tmp/promtool.txt" >&2; fail "metrics: promtool check metrics is not clean"; }
    cat >"$tmp/prometheus.yml" <<YAML
global: {scrape_interval: 1s, evaluation_interval: 1s}
scrape_configs:
  - job_name: xgw
    static_configs: [{targets: ["$maddr"]}]
YAML
    in_g1 prometheus --config.file="$tmp/prometheus.yml" --storage.tsdb.path="$tmp/prom" \
      --web.listen-address=127.0.0.1:19090 >"$tmp/prometheus.log" 2>&1 &
    prom_pid=$!
    prom_query() {  # PromQL -> the first sample's value, or empty
      in_g1 curl -s --max-time 2 --get --data-urlencode "query=$1" \
        http://127.0.0.1:19090/api/v1/query | jq -r '.data.result[0].value[1] // empty' 2>/dev/null || true
    }
    prom_wait() {  # PromQL condition, timeout s: waits until it returns a sample
      local got=
      for _ in $(seq $(( $2 * 2 ))); do
        got=$(prom_query "$1")
        [ -n "$got" ] && { echo "$got"; return 0; }
        sleep 0.5
      done
      return 1
    }
    ip netns exec "$H1" ping -c 200 -i 0.2 -W 1 "$ESP_LAB_H2_IP" >"$tmp/ping-m.txt" 2>&1 &
    mping=$!
    sel='connection="metrics",role="master"'
    prom_wait "xgw_tunnel_up{$sel} == 1" 40 >/dev/null || fail "metrics: Prometheus never saw xgw_tunnel_up == 1"
    rate=$(prom_wait "rate(xgw_tunnel_esp_receive_bytes_total{$sel}[5s]) > 0" 30) ||
      fail "metrics: no receive rate on the tunnel"
    # Rekeys of both kinds, started by strongSwan, under traffic.
    ss_swanctl "$tmp/ss" --rekey --child net >/dev/null || fail "metrics: child rekey"
    sleep 3
    ss_swanctl "$tmp/ss" --rekey --ike metrics >/dev/null || fail "metrics: IKE rekey"
    prom_wait "xgw_tunnel_rekeys_total{$sel,kind=\"child\"} >= 1" 20 >/dev/null ||
      fail "metrics: the CHILD_SA rekey was not counted"
    prom_wait "xgw_tunnel_rekeys_total{$sel,kind=\"ike\"} >= 1" 20 >/dev/null ||
      fail "metrics: the IKE_SA rekey was not counted"
    sleep 4
    [ "$(prom_query "resets(xgw_tunnel_esp_receive_bytes_total{$sel}[2m])")" = 0 ] ||
      fail "metrics: the tunnel's receive counter went backwards across the rekeys"
    [ "$(prom_query "resets(xgw_tunnel_esp_transmit_packets_total{$sel}[2m])")" = 0 ] ||
      fail "metrics: the tunnel's transmit counter went backwards across the rekeys"
    kill "$mping" 2>/dev/null; wait "$mping" 2>/dev/null || true
    # The peer dies: DPD (10 s + 6 s) turns the tunnel down in Prometheus.
    kill -KILL "$(ss_pid "$tmp/ss")"
    prom_wait "xgw_tunnel_up{$sel} == 0" 40 >/dev/null || fail "metrics: xgw_tunnel_up stayed 1 after the peer died"
    prom_wait "xgw_tunnel_dpd_timeouts_total{$sel} >= 1" 10 >/dev/null || fail "metrics: no DPD timeout counted"
    kill "$prom_pid"; wait "$prom_pid" 2>/dev/null || true
    echo "ok   - metrics: Prometheus saw the tunnel up, $rate B/s in, rekeys counted without resets, down after DPD"
    ctl connection delete metrics >/dev/null
    ss_stop "$tmp/ss" || true
    ss_start ss "$G2" "$tmp/ss" "" || fail "charon did not restart"
    ran=$((ran + 1))
  fi
fi

# --- Failure reasons ----------------------------------------------------------
failure_case psk responder psk_mismatch aes128-sha256-modp2048 aes128-sha256 psk-bad
failure_case psk initiator authentication_failed aes128-sha256-modp2048 aes128-sha256 psk-bad
SS_LOCAL_ID=who.example.org failure_case id responder id_mismatch aes128-sha256-modp2048 aes128-sha256 psk-good
SS_LOCAL_ID=who.example.org failure_case id initiator id_mismatch aes128-sha256-modp2048 aes128-sha256 psk-good
failure_case proposal responder proposal_mismatch aes256-sha512-modp2048 aes128-sha256 psk-good
failure_case proposal initiator proposal_mismatch aes256-sha512-modp2048 aes128-sha256 psk-good
failure_case dh responder dh_group_mismatch aes128-sha256-modp3072 aes128-sha256 psk-good
failure_case dh initiator dh_group_mismatch aes128-sha256-modp3072 aes128-sha256 psk-good
failure_case esp responder ipsec_proposal_mismatch aes128-sha256-modp2048 aes256-sha512 psk-good
failure_case esp initiator ipsec_proposal_mismatch aes128-sha256-modp2048 aes256-sha512 psk-good
SS_LOCAL_TS=10.99.0.0/24 failure_case ts responder traffic_selector_mismatch aes128-sha256-modp2048 aes128-sha256 psk-good
SS_LOCAL_TS=10.99.0.0/24 failure_case ts initiator traffic_selector_mismatch aes128-sha256-modp2048 aes128-sha256 psk-good

echo "ran $ran cases"
[ "$ran" -gt 0 ] || fail "no case ran"
