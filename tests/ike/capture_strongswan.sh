#!/usr/bin/env bash
# Captures a real IKEv2 exchange between two strongSwan charons, for the
# codec tests (tests/ike/message_test.cpp) and the fuzzer's seed corpus
# (tests/fuzz/corpus/ike_message/). Not run by ctest: run it by hand (as
# root) when the captured vectors need refreshing, then paste the hex it
# prints into message_test.cpp.
#
#   tests/ike/capture_strongswan.sh [OUTDIR]
#
# IKEv1: CAPTURE_VERSION=1 (and CAPTURE_AGGRESSIVE=yes for aggressive
# mode), with CAPTURE_IKE / CAPTURE_ESP as the proposals; SS_LOG_IKE=4
# makes charon log its key material (with XGW_KEEP_TMP to keep the logs).
#
# Topology: tests/lib/esp_lab.sh's four namespaces with the prefix
# $CAPTURE_PREFIX (default "hfcap"); charon on g1 (initiator) and g2
# (responder), IKEv2 with PSK, IKE proposal aes128-sha256-modp2048, ESP
# aes128gcm16, both started through tests/lib/strongswan.sh. tshark
# captures UDP 500 and 4500 on g1's wan0 while g1 initiates the CHILD_SA.
#
# Output: for each IKE datagram, one line on stdout
#   <n> <exchange> <request|response> <src>-><dst> <bytes> <hex>
# and, with OUTDIR, the raw message as OUTDIR/<n>-<exchange>-<dir>.bin
# (the non-ESP marker of port 4500 stripped, so every file is an IKE
# message starting at the IKE header). IKE_SA_INIT is plaintext; IKE_AUTH is
# encrypted (only its header and SK payload are readable).
#
# Needs: root, iproute2, tshark, perl, strongswan-charon,
# strongswan-swanctl, libcharon-extra-plugins (scripts/install-deps).
set -euo pipefail
here=$(cd "$(dirname "$0")" && pwd)
. "$here/../lib/privileged.sh"
xgw_require_root
. "$here/../lib/esp_lab.sh"
. "$here/../lib/strongswan.sh"

P=${CAPTURE_PREFIX:-hfcap}
outdir=${1:-}
tmp=$(mktemp -d /tmp/xgw-ike-capture.XXXXXX)
cap_pid=

cleanup() {
  if [ -n "$cap_pid" ] && kill -0 "$cap_pid" 2>/dev/null; then
    kill -TERM "$cap_pid" 2>/dev/null || true
    wait "$cap_pid" 2>/dev/null || true
  fi
  ss_stop_all || true
  esp_lab_down "$P" || true
  if [ -n "${XGW_KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT INT TERM
fail() {
  echo "capture_strongswan.sh: $*" >&2
  for d in g1 g2; do
    [ -f "$tmp/$d/charon.log" ] && tail -n 20 "$tmp/$d/charon.log" >&2
  done
  exit 1
}

esp_lab_up "$P" || fail "topology"

# swanctl.conf: conf LOCAL_WAN REMOTE_WAN LOCAL_LAN REMOTE_LAN
conf() {
  cat <<CONF
connections {
  cap {
    version = ${CAPTURE_VERSION:-2}
${CAPTURE_AGGRESSIVE:+    aggressive = yes}
    local_addrs = $1
    remote_addrs = $2
    proposals = ${CAPTURE_IKE:-aes128-sha256-modp2048}
    local { auth = psk
            id = $1 }
    remote { auth = psk
             id = $2 }
    children {
      net {
        local_ts = $3
        remote_ts = $4
        esp_proposals = ${CAPTURE_ESP:-aes128gcm16}
        start_action = none
        mode = tunnel
      }
    }
  }
}
secrets {
  ike-1 { id-1 = $1
          id-2 = $2
          secret = "capture-psk" }
}
CONF
}
conf "$ESP_LAB_G1_WAN_IP" "$ESP_LAB_G2_WAN_IP" "$ESP_LAB_NET1" "$ESP_LAB_NET2" >"$tmp/g1.conf"
conf "$ESP_LAB_G2_WAN_IP" "$ESP_LAB_G1_WAN_IP" "$ESP_LAB_NET2" "$ESP_LAB_NET1" >"$tmp/g2.conf"

extra=
[ -n "${CAPTURE_AGGRESSIVE:-}" ] && extra="i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
ss_start g1 "$ESP_LAB_G1" "$tmp/g1" "$extra" || fail "charon on g1"
ss_start g2 "$ESP_LAB_G2" "$tmp/g2" "$extra" || fail "charon on g2"
ss_load g1 "$tmp/g1" "$tmp/g1.conf" || fail "swanctl load on g1"
ss_load g2 "$tmp/g2" "$tmp/g2.conf" || fail "swanctl load on g2"

# `ip netns exec` execs tshark, so $! is tshark's PID (dumpcap is its child
# and stops with it).
ip netns exec "$ESP_LAB_G1" tshark -q -i "$ESP_LAB_WAN_IF" \
  -f 'udp port 500 or udp port 4500' -w "$tmp/ike.pcapng" 2>"$tmp/tshark.err" &
cap_pid=$!
for _ in $(seq 100); do
  grep -q "Capturing on" "$tmp/tshark.err" 2>/dev/null && break
  kill -0 "$cap_pid" 2>/dev/null || fail "tshark exited: $(cat "$tmp/tshark.err")"
  sleep 0.1
done
grep -q "Capturing on" "$tmp/tshark.err" || fail "tshark did not start capturing"

ss_initiate g1 "$tmp/g1" net 20 || fail "initiate"
ss_wait_child_installed "$tmp/g1" net 10 || fail "CHILD_SA not installed"
sleep 0.5  # let the last datagram reach the capture
kill -TERM "$cap_pid"
wait "$cap_pid" 2>/dev/null || true
cap_pid=

echo "# strongSwan $(dpkg-query -W -f='${Version}' strongswan-charon 2>/dev/null)," \
  "captured $(date -u +%Y-%m-%d) on $ESP_LAB_G1:$ESP_LAB_WAN_IF"
[ -z "$outdir" ] || mkdir -p "$outdir"
n=0
while read -r src sport dst dport hex; do
  hex=${hex//:/}
  # RFC 3948 §2.2: IKE on port 4500 follows a 4-byte zero non-ESP marker.
  if [ "$sport" = 4500 ] || [ "$dport" = 4500 ]; then
    [ "${hex:0:8}" = 00000000 ] || continue  # ESP in UDP, or a keepalive
    hex=${hex:8}
  fi
  [ ${#hex} -ge 56 ] || continue
  case $((16#${hex:36:2})) in
    34) ex=ike_sa_init ;;
    35) ex=ike_auth ;;
    36) ex=create_child_sa ;;
    37) ex=informational ;;
    2) ex=id_prot ;;
    4) ex=aggressive ;;
    5) ex=informational_v1 ;;
    32) ex=quick_mode ;;
    *) ex=exchange$((16#${hex:36:2})) ;;
  esac
  dir=request
  (($((16#${hex:38:2})) & 0x20)) && dir=response
  # IKEv1 has no response flag: name the sender instead.
  [ "${hex:34:2}" = 10 ] && { dir=from-g1; [ "$src" = "$ESP_LAB_G1_WAN_IP" ] || dir=from-g2; }
  n=$((n + 1))
  echo "$n $ex $dir $src:$sport->$dst:$dport $((${#hex} / 2)) $hex"
  if [ -n "$outdir" ]; then
    perl -e 'print pack("H*", $ARGV[0])' "$hex" >"$outdir/$n-$ex-$dir.bin"
  fi
done < <(tshark -r "$tmp/ike.pcapng" -T fields -e ip.src -e udp.srcport -e ip.dst \
  -e udp.dstport -e udp.payload 2>/dev/null)
[ "$n" -ge 2 ] || fail "captured $n IKE messages"
