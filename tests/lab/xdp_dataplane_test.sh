#!/usr/bin/env bash
# shellcheck disable=SC2119,SC2153 # optional prefix; XGW_* come from netns.sh
# The XDP data plane on real interfaces: the LAN program natively on gwA's
# LAN veth (lan0, where leafA's traffic enters the gateway), the WAN program
# natively on gwA's wan0, programmed through the loader API by xgw_dp_ctl
# (each run of it opens the pinned instance again, as a restarted xgwd
# would). Real traffic from the namespaces of tests/lib/netns.sh:
#   a. ping/UDP leafA -> leafB matches the SPD (10.1.0.0/24 -> 10.2.0.0/24)
#      of an sa_ready XFRM tunnel: gateway and tunnel tx counters equal what
#      was sent, packets and IP bytes (ARP and IPv6 ND cross lan0 too, but
#      only matching IPv4 reaches the tx counters)
#   b. a 50 Mbit/s tier holds an iperf3 UDP flood (>= 100 Mbit/s, 5 s) to
#      50 +- 2.5 Mbit/s at the receiver (IP layer, what a tier counts)
#   c. raw ESP sent to gwA's WAN address: an unknown SPI is dropped and
#      counted as unknown_spi, a known SPI is counted rx on its tunnel
#   d. bpftool dumps the live pinned maps with BTF field names
#   e. restart: a new instance on the same pin dir re-attaches (replaces)
#      both programs without a gap; counters survive, traffic still flows;
#      detach_all() then removes the attachments and the pin dir
# Usage: xdp_dataplane_test.sh PATH/TO/xgw_dp_ctl
set -uo pipefail # no -e: every assertion runs and failures are counted

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/privileged.sh
. "$here/../lib/privileged.sh"
xgw_require_root
ctl=${1:?usage: xdp_dataplane_test.sh PATH/TO/xgw_dp_ctl}
for tool in iperf3 python3 bpftool; do
  command -v "$tool" >/dev/null || {
    echo "FAIL: $tool missing (scripts/install-deps)"
    exit 1
  }
done
[ -x "$ctl" ] || {
  echo "FAIL: $ctl is not executable"
  exit 1
}
# shellcheck source=../lib/netns.sh
. "$here/../lib/netns.sh"

pin=/sys/fs/bpf/xgw-lab-$$-$(od -An -N2 -tx1 /dev/urandom | tr -d ' \n')
tmp=$(mktemp -d)
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  # detach_all() resolves ifindexes in the caller's network namespace.
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
# snap NAME: counters of gateway 0 and tunnel 0 into $tmp/NAME.
snap() { dp counters 0 0 >"$tmp/$1" || abort "reading counters"; }
# get NAME KEY: one value of a snapshot.
get() { awk -F= -v k="$2" '$1 == k { print $2 }' "$tmp/$1"; }
# delta A B KEY: how much KEY moved from snapshot A to B.
delta() { echo $(($(get "$2" "$3") - $(get "$1" "$3"))); }
xdp_prog_id() {
  ip -n "$XGW_NS_GWA" link show "$1" | sed -n 's/.*prog\/xdp id \([0-9]*\).*/\1/p'
}

check "create topology" xgw_topo_create || abort "no topology"
echo "# prefix $XGW_TOPO_PREFIX, pins $pin"
# The WAN routes both LANs, so leafA <-> leafB works without a tunnel
# (backend xfrm means: XDP passes, the stack forwards).
if ! ip -n "$XGW_NS_WAN" route add "$XGW_LANA_NET" via "$XGW_GWA_WAN_IP" ||
  ! ip -n "$XGW_NS_WAN" route add "$XGW_LANB_NET" via "$XGW_GWB_WAN_IP"; then
  abort "wan routes"
fi

spi_known=0x00001001
spi_unknown=0xdeadbeef
dp gateway 0 : spd 0 "$XGW_LANA_NET" "$XGW_LANB_NET" 0 : conn 0 0 0 : \
  tunnel 0 0 xfrm sa-ready : sa "$spi_known" 0 0 : \
  attach "$XGW_GWA_LAN_IF" 0 lan native : attach "$XGW_GWA_WAN_IF" 0 wan native >"$tmp/attach1" ||
  abort "programming and attaching the data plane: $(cat "$tmp/attach1")"
check "lan0 attached natively" grep -q "^attached $XGW_GWA_LAN_IF native " "$tmp/attach1"
check "wan0 attached natively" grep -q "^attached $XGW_GWA_WAN_IF native " "$tmp/attach1"
check "ip link shows native xdp on lan0" \
  bash -c "ip -n '$XGW_NS_GWA' link show '$XGW_GWA_LAN_IF' | grep -q 'prog/xdp id .* name xgw_lan'"

# --- a. exact counters for matching traffic -----------------------------------
ping_n=10 ping_size=100 udp_n=25 udp_len=500
snap a0
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c "$ping_n" -i 0.05 -s "$ping_size" -W 2 "$XGW_LANB_IP" \
  >"$tmp/ping" 2>&1
check "leafA pings leafB through the LAN program ($ping_n/$ping_n)" \
  grep -q "$ping_n packets transmitted, $ping_n received" "$tmp/ping"
xgw_ns_exec "$XGW_NS_LANA" python3 -c '
import socket, sys
s = socket.socket(socket.AF_INET, socket.SOCK_DGRAM)
for _ in range(int(sys.argv[2])):
    s.sendto(b"u" * int(sys.argv[3]), (sys.argv[1], 9))
' "$XGW_LANB_IP" "$udp_n" "$udp_len" || fail "sending UDP"
# Traffic to the gateway itself matches no relation: passed, not counted.
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c 3 -i 0.05 -W 2 "$XGW_GWA_LAN_IP" >/dev/null 2>&1 ||
  fail "leafA pings gwA"
sleep 0.3
snap a1
want_pkts=$((ping_n + udp_n))
want_bytes=$((ping_n * (20 + 8 + ping_size) + udp_n * (20 + 8 + udp_len)))
expect_eq "gateway tx_packets = packets sent" "$(delta a0 a1 gw.tx_packets)" "$want_pkts"
expect_eq "gateway tx_bytes = IP bytes sent" "$(delta a0 a1 gw.tx_bytes)" "$want_bytes"
expect_eq "tunnel 0 tx_packets = packets sent" "$(delta a0 a1 tun.0.tx_packets)" "$want_pkts"
expect_eq "tunnel 0 tx_bytes = IP bytes sent" "$(delta a0 a1 tun.0.tx_bytes)" "$want_bytes"
expect_eq "pass.xfrm = packets sent" "$(delta a0 a1 pass.xfrm)" "$want_pkts"
check "pings to gwA counted as no_match (>= 3)" test "$(delta a0 a1 pass.no_match)" -ge 3
check "ARP counted as not_ip" test "$(get a1 pass.not_ip)" -gt 0
expect_eq "nothing dropped on the LAN side" \
  "$(($(delta a0 a1 drop.no_policy) + $(delta a0 a1 drop.over_tier) + $(delta a0 a1 drop.malformed)))" 0

# --- c. ESP on the WAN side -----------------------------------------------------
esp_unknown_n=5 esp_known_n=7 esp_known_len=64
snap c0
xgw_ns_exec "$XGW_NS_WAN" python3 -c '
import socket, struct, sys
dst, spi_u, n_u, spi_k, n_k, len_k = sys.argv[1], *map(lambda x: int(x, 0), sys.argv[2:])
s = socket.socket(socket.AF_INET, socket.SOCK_RAW, 50)  # the kernel adds the IPv4 header
for spi, n, size in ((spi_u, n_u, 100), (spi_k, n_k, len_k)):
    for seq in range(1, n + 1):
        s.sendto(struct.pack("!II", spi, seq) + bytes(size - 8), (dst, 0))
' "$XGW_GWA_WAN_IP" "$spi_unknown" "$esp_unknown_n" "$spi_known" "$esp_known_n" "$esp_known_len" ||
  fail "sending ESP"
sleep 0.3
snap c1
expect_eq "unknown SPI dropped, counted unknown_spi" "$(delta c0 c1 drop.unknown_spi)" "$esp_unknown_n"
expect_eq "known SPI counted rx on tunnel 0 (packets)" "$(delta c0 c1 tun.0.rx_packets)" "$esp_known_n"
expect_eq "known SPI counted rx on tunnel 0 (IP bytes)" "$(delta c0 c1 tun.0.rx_bytes)" \
  "$((esp_known_n * (20 + esp_known_len)))"
expect_eq "known SPI counted rx on the gateway" "$(delta c0 c1 gw.rx_packets)" "$esp_known_n"
expect_eq "known SPI passed as esp_in" "$(delta c0 c1 pass.esp_in)" "$esp_known_n"

# --- d. BTF-typed dumps of live pinned maps ---------------------------------------
if bpftool map dump pinned "$pin/xgw_gw" >"$tmp/gw.dump" 2>&1; then
  check "bpftool dump of xgw_gw names tier_bps" grep -q '"tier_bps"' "$tmp/gw.dump"
  check "bpftool dump of xgw_gw names spd_gen" grep -q '"spd_gen"' "$tmp/gw.dump"
else
  fail "bpftool map dump pinned xgw_gw: $(head -c 300 "$tmp/gw.dump")"
fi
if bpftool map dump pinned "$pin/xgw_tun_cnt" >"$tmp/tun.dump" 2>&1; then
  check "bpftool dump of xgw_tun_cnt names tx_packets" grep -q '"tx_packets"' "$tmp/tun.dump"
else
  fail "bpftool map dump pinned xgw_tun_cnt: $(head -c 300 "$tmp/tun.dump")"
fi
# The typed per-CPU values add up to what the loader reads.
snap d1
btf_sum=$(bpftool -j map lookup pinned "$pin/xgw_tun_cnt" key 0 0 0 0 2>/dev/null | python3 -c '
import json, sys
e = json.load(sys.stdin)["formatted"]  # -j: raw bytes plus the BTF-typed view
print(sum(v["value"]["tx_packets"] for v in e["values"]))' 2>/dev/null)
expect_eq "bpftool's per-CPU tx_packets of tunnel 0 sum to the loader's" "$btf_sum" \
  "$(get d1 tun.0.tx_packets)"

# --- b. a 50 Mbit/s tier under a UDP flood ------------------------------------------
tier_mbit=50 offered_mbit=120 secs=5 len=1400
dp gateway 0 tier=$((tier_mbit * 1000000)) >/dev/null || fail "setting the tier"
snap b0
xgw_ns_exec "$XGW_NS_LANB" timeout 30 iperf3 -s -1 >/dev/null 2>&1 &
srv=$!
for _ in $(seq 50); do
  xgw_ns_exec "$XGW_NS_LANB" ss -Hltn 'sport = :5201' | grep -q 5201 && break
  sleep 0.1
done
if xgw_ns_exec "$XGW_NS_LANA" timeout 30 iperf3 -c "$XGW_LANB_IP" -u -b "${offered_mbit}M" \
  -l "$len" -w 4M -t "$secs" --json >"$tmp/iperf.json" 2>"$tmp/iperf.err"; then
  read -r offered rcv_udp rcv_ip < <(python3 -c '
import json, sys
e = json.load(open(sys.argv[1]))["end"]
length = int(sys.argv[2])
sent = e["sum_sent"]["bits_per_second"] / 1e6
rcv = e["sum_received"]["bits_per_second"] / 1e6
print(f"{sent:.2f} {rcv:.2f} {rcv * (length + 28) / length:.2f}")
' "$tmp/iperf.json" "$len")
  echo "# tier $tier_mbit Mbit/s: offered $offered, receiver $rcv_udp (UDP payload) = $rcv_ip Mbit/s (IP)"
  check "offered >= 100 Mbit/s ($offered)" python3 -c "import sys; sys.exit(not $offered >= 100)"
  check "receiver holds 50 +- 2.5 Mbit/s at the IP layer ($rcv_ip)" \
    python3 -c "import sys; sys.exit(not abs($rcv_ip - $tier_mbit) <= 2.5)"
else
  fail "iperf3 failed: $(head -c 300 "$tmp/iperf.err")"
fi
wait "$srv" 2>/dev/null
snap b1
check "the tier dropped the excess (over_tier > 0)" test "$(delta b0 b1 drop.over_tier)" -gt 0
dp gateway 0 >/dev/null || fail "clearing the tier"

# --- e. restart: a second instance on the same pins -------------------------------
old_lan=$(xdp_prog_id "$XGW_GWA_LAN_IF")
old_wan=$(xdp_prog_id "$XGW_GWA_WAN_IF")
snap e0
# A ping stream across the re-attach: an atomic replace loses nothing.
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c 150 -i 0.01 -W 2 "$XGW_LANB_IP" >"$tmp/ping.e" 2>&1 &
pinger=$!
sleep 0.3
dp attach "$XGW_GWA_LAN_IF" 0 lan native : attach "$XGW_GWA_WAN_IF" 0 wan native \
  >"$tmp/attach2" 2>&1 || fail "re-attach by a second instance: $(cat "$tmp/attach2")"
wait "$pinger"
check "no ping lost across the replace (150/150)" \
  grep -q "150 packets transmitted, 150 received" "$tmp/ping.e"
new_lan=$(sed -n "s/^attached $XGW_GWA_LAN_IF native prog_id=\([0-9]*\)$/\1/p" "$tmp/attach2")
new_wan=$(sed -n "s/^attached $XGW_GWA_WAN_IF native prog_id=\([0-9]*\)$/\1/p" "$tmp/attach2")
check "lan0 now runs the new instance's program ($old_lan -> $new_lan)" \
  test -n "$new_lan" -a "$new_lan" != "$old_lan" -a "$(xdp_prog_id "$XGW_GWA_LAN_IF")" = "$new_lan"
check "wan0 now runs the new instance's program ($old_wan -> $new_wan)" \
  test -n "$new_wan" -a "$new_wan" != "$old_wan" -a "$(xdp_prog_id "$XGW_GWA_WAN_IF")" = "$new_wan"
snap e1
check "counters not reset by the restart (tx $(get e0 gw.tx_packets) -> $(get e1 gw.tx_packets))" \
  test "$(get e1 gw.tx_packets)" -ge $(($(get e0 gw.tx_packets) + 150))
expect_eq "tunnel rx survives the restart" "$(get e1 tun.0.rx_packets)" "$(get e0 tun.0.rx_packets)"
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c 5 -i 0.05 -W 2 "$XGW_LANB_IP" >"$tmp/ping.e2" 2>&1
check "traffic still flows after the restart" grep -q "5 packets transmitted, 5 received" "$tmp/ping.e2"
sleep 0.2
snap e2
expect_eq "the new program counts it (tx_packets +5)" "$(delta e1 e2 gw.tx_packets)" 5
expect_eq "still through the SPD and tunnel (pass.xfrm +5)" "$(delta e1 e2 pass.xfrm)" 5

"$ctl" --netns "$XGW_NS_GWA" --pin-dir "$pin" detach-all >"$tmp/detach" 2>&1 ||
  fail "detach-all: $(cat "$tmp/detach")"
check "lan0 no longer shows xdp" \
  bash -c "! ip -n '$XGW_NS_GWA' link show '$XGW_GWA_LAN_IF' | grep -q xdp"
check "wan0 no longer shows xdp" \
  bash -c "! ip -n '$XGW_NS_GWA' link show '$XGW_GWA_WAN_IF' | grep -q xdp"
check "pin dir removed" test ! -e "$pin"
xgw_ns_exec "$XGW_NS_LANA" ping -n -q -c 2 -i 0.05 -W 2 "$XGW_LANB_IP" >/dev/null 2>&1
check "traffic flows without the data plane" test $? -eq 0

checks_done
