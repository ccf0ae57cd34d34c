#!/usr/bin/env bash
# IKE floods against xgwd (issue 16, hardening), in the IKE lab with
# strongSwan on g2 as the legitimate peer (tests/lib/ike_lab.sh). Each flood
# is bounded in time (FLOOD_S, default 8 s) and sent by
# tests/lab/probe/ike_flood.py from g2's namespace:
#
#   random  IKE_SA_INIT from random sources (100.64.0.0/10, no connection
#           configured for them): never answered, counted, at most one log
#           line per 10 s, xgwd's memory flat.
#   spoof   IKE_SA_INIT forged from the peer's own address at 200/s, which
#           fills the peer's half-open share; strongSwan must still bring the
#           tunnel up (it returns the cookie xgw asks for), within 10 s.
#   natt    junk IKE datagrams on UDP 4500 as fast as one core sends them:
#           xgwd's memory stays bounded (hand-over queue: 1024 datagrams,
#           2 MiB), the API answers, the tunnel stays up and carries pings.
# Prints the figures (packets sent, counters, RSS) for the closing notes.
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/privileged.sh"
xgw_require_root
. "$here/../lib/esp_lab.sh"
. "$here/../lib/strongswan.sh"

XGWD=$1
XGWCTL=$2
P=fl
IKE_LAB_US_PATH=route
FLOOD_S=${FLOOD_S:-8}
. "$here/../lib/ike_lab.sh"

flood() { ip netns exec "$G2" python3 "$here/probe/ike_flood.py" "$@"; }
metric_int() { metric_value "^$1 "; }  # a metric without labels
rss_kb() { awk '/^VmRSS/ {print $2}' "/proc/$xgwd_pid/status"; }
hwm_kb() { awk '/^VmHWM/ {print $2}' "/proc/$xgwd_pid/status"; }
# Waits for xgwd's once-a-second metrics snapshot to include the counters.
settle() { sleep 1.5; }

# --- random sources, no connection for them ---------------------------------
if want random; then
  rss0=$(rss_kb)
  logs0=$(grep -c "event=ike.no_config" "$tmp/xgwd.log" || true)
  init_sent='^xgw_ike_messages_total\{.*exchange="IKE_SA_INIT".*direction="sent"'
  init_tx0=$(metric_value "$init_sent")
  sent=$(flood random "$ESP_LAB_G1_WAN_IP" "$FLOOD_S") || fail "random: flood"
  settle
  unknown=$(metric_int xgw_ike_unknown_peer_requests_total)
  logs=$(( $(grep -c "event=ike.no_config" "$tmp/xgwd.log" || true) - logs0 ))
  init_tx=$(metric_value "$init_sent")
  rss1=$(rss_kb)
  # The kernel drops what the socket buffer cannot hold; most must arrive.
  [ "$unknown" -ge $((sent / 4)) ] || fail "random: only $unknown of $sent requests reached xgwd's count"
  [ "$init_tx" = "$init_tx0" ] || fail "random: xgwd answered unconfigured sources ($init_tx0 -> $init_tx IKE_SA_INIT sent)"
  [ "$logs" -le $(( FLOOD_S / 10 + 2 )) ] || fail "random: $logs ike.no_config log lines in $FLOOD_S s"
  [ $((rss1 - rss0)) -lt 16384 ] || fail "random: RSS grew by $((rss1 - rss0)) KiB"
  echo "ok   - random: $sent IKE_SA_INIT from random sources in ${FLOOD_S} s; $unknown counted, 0 answered, $logs log line(s); RSS $rss0 -> $rss1 KiB"
  ran=$((ran + 1))
fi

# --- forgeries from the peer's own address ---------------------------------------
if want spoof; then
  site legit psk-legit aes-128 sha2-256 group14 aes-128-gcm-16 none false >"$tmp/site.yaml"
  ctl apply -f "$tmp/site.yaml" >/dev/null || fail "spoof: apply"
  cookies0=$(metric_int xgw_ike_cookies_sent_total)
  flood spoof "$ESP_LAB_G2_WAN_IP" "$ESP_LAB_G1_WAN_IP" 200 $((FLOOD_S + 12)) >"$tmp/spoof.sent" &
  fl=$!
  sleep 2  # the forgeries hold the peer's half-open share
  ss_conf legit psk-legit aes128-sha256-modp2048 aes128gcm16 start >"$tmp/ss.conf"
  t0=$(date +%s%N)
  ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "spoof: swanctl load"
  wait_up legit 10 || fail "spoof: strongSwan could not bring the tunnel up within 10 s under the forgeries"
  took=$(( ($(date +%s%N) - t0) / 1000000 ))
  half=$(metric_int xgw_ike_half_open_sas)
  wait "$fl" || fail "spoof: flood"
  settle
  cookies=$(( $(metric_int xgw_ike_cookies_sent_total) - cookies0 ))
  [ "$cookies" -gt 0 ] || fail "spoof: no cookie was asked"
  ping_h2 3 || fail "spoof: ping"
  echo "ok   - spoof: $(cat "$tmp/spoof.sent") forged IKE_SA_INIT from the peer's address (200/s); tunnel up in $took ms; $cookies cookies asked; half-open $half"
  ran=$((ran + 1))
fi

# --- junk on UDP 4500 ---------------------------------------------------------
if want natt; then
  if [ "$(conn_field legit status 2>/dev/null)" != up ]; then
    site legit psk-legit aes-128 sha2-256 group14 aes-128-gcm-16 none true >"$tmp/site.yaml"
    ss_conf legit psk-legit aes128-sha256-modp2048 aes128gcm16 none >"$tmp/ss.conf"
    ss_load ss "$tmp/ss" "$tmp/ss.conf" || fail "natt: swanctl load"
    ctl apply -f "$tmp/site.yaml" >/dev/null || fail "natt: apply"
    wait_up legit 20 || fail "natt: tunnel not up"
  fi
  rss0=$(rss_kb)
  hwm0=$(hwm_kb)
  flood natt "$ESP_LAB_G2_WAN_IP" "$ESP_LAB_G1_WAN_IP" "$FLOOD_S" >"$tmp/natt.sent" &
  fl=$!
  sleep $(( FLOOD_S / 2 ))
  a0=$(date +%s%N)
  ctl connection show legit >/dev/null || fail "natt: API request failed under the flood"
  api_ms=$(( ($(date +%s%N) - a0) / 1000000 ))
  wait "$fl" || fail "natt: flood"
  settle
  rss1=$(rss_kb)
  hwm1=$(hwm_kb)
  drops=$(metric_int xgw_ike_receive_queue_drops_total)
  [ "$(conn_field legit status)" = up ] || fail "natt: tunnel went down"
  ping_h2 3 || fail "natt: ping after the flood"
  [ $((hwm1 - rss0)) -lt 65536 ] || fail "natt: peak RSS $hwm1 KiB, $((hwm1 - rss0)) KiB over the start"
  [ "$api_ms" -lt 3000 ] || fail "natt: the API took $api_ms ms under the flood"
  echo "ok   - natt: $(cat "$tmp/natt.sent") datagrams on 4500 in ${FLOOD_S} s; $drops dropped at the queue; RSS $rss0 -> $rss1 KiB (peak $hwm0 -> $hwm1); API $api_ms ms; tunnel up"
  ran=$((ran + 1))
fi

echo "ran $ran cases"
[ "$ran" -gt 0 ] || fail "no case ran"
