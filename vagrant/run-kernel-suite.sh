#!/usr/bin/env bash
# The full-kernel suite, run from the workstation after `vagrant up` in
# this directory (see Vagrantfile). Everything runs inside the VMs over
# `vagrant ssh`; the VMs have real kernels with ESP, so nothing skips.
#
# 1. On gw-a and gw-b: dataplane_xfrm_tests with XGW_XFRM_REQUIRE_ESP=1
#    (every kernel transform, SA life cycle, policies, counters, expiry,
#    acquire) — the same binary the QEMU lab runs.
# 2. On gw-a: every privileged ctest lab (namespaces, XDP on virtio NICs,
#    userspace ESP, strongSwan) under XGW_REQUIRE_PRIVILEGED=1, except the
#    QEMU lab (it exists for kernels without ESP).
# 3. Across the VMs, over real NICs: gw-a runs xgw-esp-static with the
#    userspace backend, gw-b with the xfrm backend (XfrmDataplane); the
#    client pings gw-b's LAN address through the tunnel for AES-GCM-128 and
#    AES-CBC-128 + HMAC-SHA-256, raw ESP and UDP-encapsulated, and gw-b's
#    kernel counters must show the packets.
# Usage: vagrant/run-kernel-suite.sh [--skip-ctest]
set -uo pipefail
cd "$(dirname "$(readlink -f "$0")")" || exit 1
root=$(cd .. && pwd)
# shellcheck source=../tests/lib/checks.sh
. "$root/tests/lib/checks.sh"
# shellcheck source=../tests/lib/esp_lab.sh
. "$root/tests/lib/esp_lab.sh"

skip_ctest=0
[ "${1:-}" = --skip-ctest ] && skip_ctest=1
command -v vagrant >/dev/null || { echo "vagrant missing"; exit 1; }
command -v openssl >/dev/null || { echo "openssl missing (random SA keys)"; exit 1; }

on() {
  local vm=$1
  shift
  vagrant ssh "$vm" -c "$*" -- -q -o LogLevel=ERROR
}
# push VM LOCAL REMOTE: copy a small file (a config with keys) into a VM.
push() { vagrant ssh "$1" -c "sudo install -m 0600 /dev/stdin $3" -- -q <"$2"; }

for vm in gw-a gw-b client; do
  on "$vm" true >/dev/null 2>&1 || { echo "VM $vm is not up (vagrant up)"; exit 1; }
done
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"; on gw-a "sudo pkill -x xgw-esp-static" >/dev/null 2>&1; on gw-b "sudo pkill -x xgw-esp-static" >/dev/null 2>&1' EXIT

# ---- 1 + 2 -------------------------------------------------------------------------
for vm in gw-a gw-b; do
  expect_ok "$vm: dataplane_xfrm_tests against the kernel's ESP" on "$vm" \
    "cd /xgw && sudo XGW_REQUIRE_PRIVILEGED=1 XGW_XFRM_REQUIRE_ESP=1 \
     bash tests/dataplane/xfrm_dataplane_test.sh build/bin/dataplane_xfrm_tests --gtest_brief=1"
done
if [ $skip_ctest = 0 ]; then
  expect_ok "gw-a: privileged ctest labs" on gw-a \
    "cd /xgw && sudo XGW_REQUIRE_PRIVILEGED=1 XGW_XFRM_REQUIRE_ESP=1 \
     ctest --preset default -L privileged -E xfrm_vm_lab --timeout 600"
fi

# ---- 3 --------------------------------------------------------------------------------
# esp_lab.sh's config writer, with the VMs' addresses.
# shellcheck disable=SC2034 # read by esp_static_pair_configs
ESP_LAB_G1_WAN_IP=192.168.60.10 ESP_LAB_G2_WAN_IP=192.168.60.20 ESP_LAB_NET1=10.60.1.0/24 ESP_LAB_NET2=10.60.2.0/24
on gw-b "sudo ip route replace $ESP_LAB_NET1 via $ESP_LAB_G1_WAN_IP" >/dev/null
for combo in "aes128gcm16 none udp" "aes128gcm16 none none" "aes128 sha256 udp" \
  "aes128 sha256 none"; do
  read -r encr integ encap <<<"$combo"
  name="$encr/$integ/$encap"
  d=$tmp/${encr}_${integ}_$encap
  esp_static_pair_configs "$d" "$encr" "$integ" "$encap" || { fail "$name: configs"; continue; }
  { echo "backend: xfrm"; grep -vE '^(tun|mtu|device|workers):' "$d/g2.yaml"; } >"$d/g2x.yaml"
  push gw-a "$d/g1.yaml" /root/xgw-a.yaml
  push gw-b "$d/g2x.yaml" /root/xgw-b.yaml
  on gw-a "sudo sh -c 'xgw-esp-static --config /root/xgw-a.yaml >/root/xgw-a.log 2>&1 &'"
  on gw-b "sudo sh -c 'xgw-esp-static --config /root/xgw-b.yaml >/root/xgw-b.log 2>&1 &'"
  sleep 2
  out=$(on client "ping -c 5 -i 0.2 -W 2 -q 10.60.2.2" 2>&1)
  check "$name: client -> gw-b LAN through the tunnel, 5/5" \
    grep -q '5 packets transmitted, 5 received' <<<"$out"
  st=$(on gw-b "sudo ip -s xfrm state" 2>&1)
  check "$name: gw-b's kernel decrypted and encrypted" \
    grep -qE '^[[:space:]]+[0-9]+\(bytes\), ([5-9]|[1-9][0-9]+)\(packets\)' <<<"$st"
  on gw-a "sudo pkill -x xgw-esp-static" >/dev/null 2>&1
  on gw-b "sudo pkill -x xgw-esp-static" >/dev/null 2>&1
  sleep 1
  st=$(on gw-b "sudo ip xfrm state; sudo ip xfrm policy" 2>&1)
  check "$name: gw-b's SAs and policies removed at exit" test -z "$st"
done
checks_done
