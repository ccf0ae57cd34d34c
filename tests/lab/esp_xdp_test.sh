#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2153 # optional prefix; XGW_* come from netns.sh
# The XDP fast path handing plaintext to the userspace ESP path: gwA runs
# the LAN and WAN programs natively (programmed by xgw_dp_ctl) with a
# userspace-backend tunnel whose TAP device is in the xgw_us_tun devmap, and
# xgw-esp-static on both gateways with UDP-encapsulated AES-128-GCM SAs.
#   a. leafA -> leafB ping crosses the tunnel; every request was redirected
#      by XDP straight into the TAP device (XDP pass.userspace counts them,
#      gwA's IP stack forwards only the replies: Ip ForwDatagrams grows by
#      the reply count, not twice that), the outbound SA sealed them
#   b. a packet bigger than the device MTU (DF set) is left to the stack,
#      which answers "frag needed" with MTU 1400; a smaller ping passes
#   c. iperf3 TCP for 3 s through XDP → TAP → ESP passes traffic
#   d. without the devmap entry, routing takes over: ping passes and
#      ForwDatagrams counts both directions again
# Usage: esp_xdp_test.sh PATH/TO/xgw_dp_ctl PATH/TO/xgw-esp-static
set -uo pipefail # no -e: every assertion runs and failures are counted

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/privileged.sh
. "$here/../lib/privileged.sh"
xgw_require_root

ctl=${1:?usage: esp_xdp_test.sh PATH/TO/xgw_dp_ctl PATH/TO/xgw-esp-static}
esp=${2:?usage: esp_xdp_test.sh PATH/TO/xgw_dp_ctl PATH/TO/xgw-esp-static}
for tool in iperf3 openssl jq; do
  command -v "$tool" >/dev/null || {
    echo "FAIL: $tool missing (scripts/install-deps)"
    exit 1
  }
done
# shellcheck source=../lib/netns.sh
. "$here/../lib/netns.sh"

pin=/sys/fs/bpf/xgw-espxdp-$$-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d)
pids=()
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  for p in "${pids[@]}"; do kill "$p" 2>/dev/null; done
  for p in "${pids[@]}"; do wait "$p" 2>/dev/null; done
  if [ -e "$pin" ] && [ -n "${XGW_NS_GWA:-}" ] && [ -e "/run/netns/$XGW_NS_GWA" ]; then
    "$ctl" --netns "$XGW_NS_GWA" --pin-dir "$pin" detach-all >/dev/null 2>&1
  fi
  rm -rf "$pin" "$tmp"
  xgw_topo_destroy_all
}
xgw_topo_install_trap
trap cleanup EXIT
xgw_topo_gc

# shellcheck source=../lib/checks.sh
. "$here/../lib/checks.sh"
abort() {
  fail "$*"
  echo "$failures check(s) failed (aborted)"
  exit 1
}

dp() { "$ctl" --netns "$XGW_NS_GWA" --pin-dir "$pin" "$@"; }
snap() { dp counters 0 0 >"$tmp/$1" || abort "reading counters"; }
get() { awk -F= -v k="$2" '$1 == k { print $2 }' "$tmp/$1"; }
delta() { echo $(($(get "$2" "$3") - $(get "$1" "$3"))); }
forwarded() { xgw_ns_exec "$XGW_NS_GWA" awk '/^Ip: [0-9]/ { print $7 }' /proc/net/snmp; }

check "create topology" xgw_topo_create || abort "no topology"
echo "# prefix $XGW_TOPO_PREFIX, pins $pin"

k_ab=$(openssl rand -hex 20)
k_ba=$(openssl rand -hex 20)
spi_ab=0x0000a001
spi_ba=0x0000b001
# write_config FILE LOCAL REMOTE OUT_SPI OUT_KEY IN_SPI IN_KEY SRC DST
write_config() {
  cat >"$1" <<YAML
tun: xgw0
device: tap
mtu: 1400
sas:
  - {name: out, direction: out, spi: $4, local: $2, remote: $3, encap: udp, encr: aes128gcm16, encr_key: "0x$5"}
  - {name: in, direction: in, spi: $6, local: $2, remote: $3, encap: udp, encr: aes128gcm16, encr_key: "0x$7"}
policies:
  - {src: $8, dst: $9, sa: out}
YAML
}
write_config "$tmp/a.yaml" "$XGW_GWA_WAN_IP" "$XGW_GWB_WAN_IP" $spi_ab "$k_ab" $spi_ba "$k_ba" \
  "$XGW_LANA_NET" "$XGW_LANB_NET"
write_config "$tmp/b.yaml" "$XGW_GWB_WAN_IP" "$XGW_GWA_WAN_IP" $spi_ba "$k_ba" $spi_ab "$k_ab" \
  "$XGW_LANB_NET" "$XGW_LANA_NET"
xgw_ns_exec "$XGW_NS_GWA" "$esp" --config "$tmp/a.yaml" --stats-file "$tmp/a.json" \
  >"$tmp/a.log" 2>&1 &
pids+=($!)
xgw_ns_exec "$XGW_NS_GWB" "$esp" --config "$tmp/b.yaml" --stats-file "$tmp/b.json" \
  >"$tmp/b.log" 2>&1 &
pids+=($!)
for _ in $(seq 1 50); do
  [ -s "$tmp/a.json" ] && [ -s "$tmp/b.json" ] && break
  sleep 0.1
done
[ -s "$tmp/a.json" ] && [ -s "$tmp/b.json" ] ||
  abort "xgw-esp-static did not start: $(cat "$tmp/a.log" "$tmp/b.log")"

# The XDP data plane on gwA: one relation of a userspace tunnel, SA ready,
# the inbound SPI known to the WAN program, the TAP device in the devmap.
dp gateway 0 : spd 0 "$XGW_LANA_NET" "$XGW_LANB_NET" 0 : conn 0 0 0 : \
  tunnel 0 0 userspace sa-ready : sa $spi_ba 0 0 : \
  attach "$XGW_GWA_LAN_IF" 0 lan native : attach "$XGW_GWA_WAN_IF" 0 wan native : \
  us-tun 0 xgw0 1400 >"$tmp/attach" 2>&1 || abort "programming the data plane: $(cat "$tmp/attach")"
check "lan0 attached natively" grep -q "^attached $XGW_GWA_LAN_IF native " "$tmp/attach"
# A frame from a wire carries complete checksums; a veth peer hands over
# CHECKSUM_PARTIAL packets whose TCP checksum only the stack would finish,
# and XDP_REDIRECT does not. Make leafA checksum in software, like a host
# behind a real NIC.
xgw_ns_exec "$XGW_NS_LANA" ethtool -K "$XGW_LANA_IF" tx off >/dev/null 2>&1 ||
  abort "ethtool -K tx off on leafA"

# --- a. ping: requests by XDP redirect, replies by the stack -----------------
n=20
snap a0
f0=$(forwarded)
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c $n -i 0.05 -W 2 "$XGW_LANB_IP" >"$tmp/ping" 2>&1
check "leafA pings leafB through XDP → TAP → ESP ($n/$n)" \
  grep -q "$n packets transmitted, $n received" "$tmp/ping"
snap a1
f1=$(forwarded)
check "XDP counted $n requests as userspace (got $(delta a0 a1 pass.userspace))" \
  test "$(delta a0 a1 pass.userspace)" -eq $n
fwd=$((f1 - f0))
check "gwA's stack forwarded only the $n replies (ForwDatagrams +$fwd)" \
  test "$fwd" -ge $n -a "$fwd" -lt $((2 * n))
sleep 1.2 # the stats file is rewritten every second
out_pkts=$(jq '.sas[] | select(.name == "out") | .packets' "$tmp/a.json")
check "gwA's outbound SA sealed the requests (packets=$out_pkts)" test "${out_pkts:-0}" -ge $n

# --- b. bigger than the device MTU: the stack answers with the MTU -----------
xgw_ns_exec "$XGW_NS_LANA" ping -n -c 1 -M do -s 1450 -W 2 "$XGW_LANB_IP" >"$tmp/big" 2>&1
check "an oversized DF packet gets 'frag needed' with MTU 1400" grep -q -i "mtu = 1400" "$tmp/big"
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c 3 -i 0.05 -M do -s 1300 -W 2 "$XGW_LANB_IP" \
  >"$tmp/mid" 2>&1
check "a 1328-byte DF ping still passes" grep -q "3 packets transmitted, 3 received" "$tmp/mid"

# --- c. iperf3 through XDP → TAP → ESP ----------------------------------------
xgw_ns_exec "$XGW_NS_LANB" iperf3 -s -1 -D -p 5301 >/dev/null 2>&1
sleep 0.3
snap c0
xgw_ns_exec "$XGW_NS_LANA" timeout 20 iperf3 -c "$XGW_LANB_IP" -p 5301 -t 3 -J >"$tmp/iperf.json" 2>&1
mbps=$(jq '.end.sum_received.bits_per_second / 1e6 | floor' "$tmp/iperf.json" 2>/dev/null || echo 0)
snap c1
echo "# iperf3 through XDP redirect + userspace ESP: ${mbps} Mbit/s"
check "iperf3 TCP passes (${mbps} Mbit/s > 50)" test "${mbps:-0}" -gt 50
check "XDP redirected the iperf3 data (pass.userspace +$(delta c0 c1 pass.userspace))" \
  test "$(delta c0 c1 pass.userspace)" -gt 1000

# --- d. without the devmap entry, routing takes over -------------------------
dp us-tun 0 - 0 >/dev/null 2>&1 || fail "removing the devmap entry"
f0=$(forwarded)
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c $n -i 0.05 -W 2 "$XGW_LANB_IP" >"$tmp/ping2" 2>&1
check "ping passes through the routed path ($n/$n)" \
  grep -q "$n packets transmitted, $n received" "$tmp/ping2"
fwd=$(($(forwarded) - f0))
check "the stack forwards both directions again (ForwDatagrams +$fwd)" test "$fwd" -ge $((2 * n))

for p in "${pids[@]}"; do
  check "xgw-esp-static $p still running" kill -0 "$p"
done
checks_done
