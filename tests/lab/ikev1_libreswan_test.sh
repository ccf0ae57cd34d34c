#!/usr/bin/env bash
# IKEv1 second opinion: xgwd against libreswan's pluto (Debian 4.10) in
# main mode, in the lab of tests/lib/ike_lab.sh with pluto on g2 instead of
# charon. pluto completes IKE here but cannot install ESP (no kernel ESP),
# so the cases check phase 1 (the ISAKMP SA) both ways: xgw initiating and
# xgw responding, aes128-sha1-modp2048 (Debian's libreswan refuses
# MODP-1024 and below) and aes256-sha256-modp3072.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/privileged.sh"
xgw_require_root
. "$here/../lib/esp_lab.sh"
. "$here/../lib/strongswan.sh"
. "$here/../lib/libreswan.sh"

XGWD=$1
XGWCTL=$2
P=l1
IKE_LAB_NO_CHARON=1
IKE_VERSION=v1
P1_MODE=main
ike_lab_cleanup_peer() { [ -n "${lsw:-}" ] && lsw_stop "$lsw"; }
. "$here/../lib/ike_lab.sh"

lsw_root=$(lsw_prepare) || {
  [ "${XGW_REQUIRE_PRIVILEGED:-0}" = 1 ] && fail "libreswan could not be unpacked"
  echo "skip - libreswan not available"
  exit 77
}

lsw_conf() {  # name ike esp auto
  cat <<CONF
config setup
  ikev1-policy=accept
conn $1
  ikev2=no
  authby=secret
  left=$ESP_LAB_G2_WAN_IP
  right=$ESP_LAB_G1_WAN_IP
  leftsubnet=10.91.2.0/24
  rightsubnet=10.91.1.0/24
  ike=$2
  esp=$3
  pfs=no
  auto=$4
CONF
}
echo "$ESP_LAB_G2_WAN_IP $ESP_LAB_G1_WAN_IP : PSK \"lsw-psk\"" >"$tmp/lsw.secrets"
lsw=$tmp/lsw
lsw_conf none aes128-sha1 aes128-sha1 add >"$tmp/lsw.conf"
lsw_start "$G2" "$lsw" "$tmp/lsw.conf" "$tmp/lsw.secrets" || fail "pluto did not start"

# xgw's log line for an established ISAKMP SA of CONN.
xgw_established() { grep "event=ike.established sa=\"conn=$1 " "$tmp/xgwd.log" | tail -n1 || true; }
lsw_case() {  # tag xgw_enc xgw_auth dh lsw_ike role
  local name="lsw-$1-$6" start_x=true
  want "$name" || return 0
  [ "$6" = responder ] && start_x=false
  lsw_conf "$name" "$5" aes128-sha1 add >"$lsw/ipsec.conf"
  lsw_add "$lsw" "$name" >/dev/null || fail "$name: addconn"
  site "$name" lsw-psk "$2" "$3" "$4" aes-128 sha1 "$start_x" >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "$name: apply"
  [ "$6" = responder ] && lsw_whack "$lsw" --initiate --asynchronous --name "$name" >/dev/null
  local line= pl=
  for _ in $(seq 200); do
    line=$(xgw_established "$name")
    pl=$(grep "\"$name\" #[0-9]*: IKE SA established" "$lsw/pluto.log" | tail -n1 || true)
    [ -n "$line" ] && [ -n "$pl" ] && break
    sleep 0.1
  done
  [ -n "$line" ] || fail "$name: xgw never established the ISAKMP SA"
  [ -n "$pl" ] || { tail -20 "$lsw/pluto.log" >&2; fail "$name: pluto never established the ISAKMP SA"; }
  echo "$line" | grep -q "role=$6" || fail "$name: xgw was not the $6: $line"
  # pluto, lacking kernel ESP, then cannot finish a quick mode: phase 1 is
  # what this peer can vouch for.
  echo "ok   - $name: main mode, xgw $6; pluto: ${pl#*: IKE SA established }"
  ctl connection delete "$name" >/dev/null 2>&1 || true
  lsw_whack "$lsw" --delete --name "$name" >/dev/null 2>&1 || true
  ran=$((ran + 1))
}

for role in initiator responder; do
  lsw_case a128 aes-128 sha1 group14 "aes128-sha1;modp2048" $role
  lsw_case a256 aes-256 sha2-256 group15 "aes256-sha2_256;modp3072" $role
done

echo "ran $ran cases"
[ "$ran" -gt 0 ] || fail "no case ran"
