#!/usr/bin/env bash
# Issue 8, scenario 2: xgwd with the kernel XFRM backend (ike.backend: xfrm,
# XfrmDataplane) in a QEMU VM running Debian's kernel against xgwd with the
# userspace ESP backend on the host, IKEv2 negotiated, connections created
# on both sides with `xgwctl apply -f` (tests/lib/vm.sh, scripts/vm-kernel;
# this machine's kernel has no ESP).
#
#   h1 ---- gw (host netns) ==== tap0 ==== eth0  VM  lan0 ---- leaf (VM netns)
#  10.91.1.2  10.91.1.1 192.0.2.1         192.0.2.2 10.91.2.1    10.91.2.2
#             xgwd, ike: userspace         xgwd, ike: {backend: xfrm}
#             (TAP xgw0, routes)           (no routes: a route to the far LAN
#             XDP on lan0 and tap0         via the WAN, XFRM policies)
#                                          XDP on lan0 and eth0
# Both xgwds run as the product does, with the XDP data plane attached: the
# host's hands matched plaintext to the userspace ESP engine, the VM's
# passes it to the kernel's XFRM after tier and counters; each admits only
# the SPIs its IKE negotiated (`xgwctl dataplane` on both sides is checked
# after the pings: programs attached, tunnel SA-ready, packets counted both
# ways, no unknown SPIs).
#
# Cases (IKE aes128-sha256-modp2048, PSK, DPD on, both):
# 1. gcm, the host initiating (start_immediately), the VM answering: ESP
#    aes-128-gcm-16, raw ESP. Both sides' `xgwctl --json connection show`
#    reach status up; the VM's kernel holds the two negotiated SAs (SPIs =
#    the host's list-sas, reqid = the VM's list-sas) and out/in/fwd
#    policies with that reqid and the WAN endpoints; ping h1 -> leaf and
#    leaf -> h1, 5 each, no loss; exact packet deltas on the kernel SAs and
#    the host's CHILD_SA (list-sas); the VM's list-sas (read back from the
#    kernel through XfrmDataplane) equals `ip -s xfrm state`; no replay/ICV
#    failures. Rekey: the VM's CHILD_SA lifetime is 30 s, so the VM
#    (XfrmDataplane, make-before-break) rekeys it ≈ 27 s after it came up,
#    under a 0.1 s ping from h1 that must lose nothing; then the kernel
#    holds only the two new SAs, which carried the pings.
# 2. cbc, the host initiating: ESP aes-128 + sha2-256 and UDP encapsulation
#    (the host restarted with ike.raw_esp: false claims a NAT as initiator,
#    floats to 4500 and both sides encapsulate): up, pings both
#    ways, `encap espinudp 4500 4500` on both kernel SAs, bytes on both
#    sides' CHILD_SA. Rekey: now the host's CHILD_SA lifetime is 30 s and
#    the VM answers (installing the new outbound SA only when the host
#    deletes the old one), again under a ping that must lose nothing.
# Deleting each connection on both sides leaves the VM's kernel without
# SAs and policies. About 80 s here; XGW_VM_IKE_REKEY=0 skips the two
# rekeys (≈ 25 s).
# Usage: xfrm_vm_ike_test.sh PATH/TO/xgwd PATH/TO/xgwctl
# Needs root, qemu-system-x86, busybox-static, cpio, kmod, dash, jq and the
# Debian kernel package (downloaded once into /var/cache/xgw-vm). Missing
# pieces skip (77), or fail under XGW_REQUIRE_PRIVILEGED=1.
set -uo pipefail # no -e: every assertion runs and failures are counted

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
# shellcheck source=../lib/privileged.sh
. "$here/../lib/privileged.sh"
xgw_require_root
xgwd_bin=${1:?usage: xfrm_vm_ike_test.sh PATH/TO/xgwd PATH/TO/xgwctl}
xgwctl_bin=${2:?usage: xfrm_vm_ike_test.sh PATH/TO/xgwd PATH/TO/xgwctl}

missing() {
  if [ "${XGW_REQUIRE_PRIVILEGED:-0}" = 1 ]; then
    echo "FAIL: $* (XGW_REQUIRE_PRIVILEGED=1; scripts/install-deps)"
    exit 1
  fi
  echo "SKIP: $* (scripts/install-deps)"
  exit 77
}
for tool in qemu-system-x86_64 busybox cpio modprobe depmod dash objcopy python3 jq \
  apt-get mkfifo timeout; do
  command -v "$tool" >/dev/null || missing "$tool missing"
done
[ -c /dev/net/tun ] || missing "/dev/net/tun missing"
for b in "$xgwd_bin" "$xgwctl_bin"; do
  [ -x "$b" ] || {
    echo "FAIL: $b is not executable"
    exit 1
  }
done

# shellcheck source=../lib/esp_lab.sh
. "$here/../lib/esp_lab.sh"
# shellcheck source=../lib/vm.sh
. "$here/../lib/vm.sh"
# shellcheck source=../lib/checks.sh
. "$here/../lib/checks.sh"

prefix=h9vi$$
gw=${prefix}gw h1=${prefix}h1
tmp=$(mktemp -d)
pin=/sys/fs/bpf/xgw/$prefix
xgwd_pid=
# shellcheck disable=SC2317 # called from the EXIT trap
cleanup() {
  local ns nspids
  vm_stop
  if [ -n "$xgwd_pid" ]; then
    kill -TERM "$xgwd_pid" 2>/dev/null
    wait "$xgwd_pid" 2>/dev/null
  fi
  [ -f "$tmp/xgwd.yaml" ] && [ -e "/run/netns/$gw" ] &&
    nsenter --net="/run/netns/$gw" "$xgwd_bin" --config "$tmp/xgwd.yaml" --state-dir "$tmp/state" \
      --detach-all >/dev/null 2>&1
  rm -rf "$pin"
  for ns in "$gw" "$h1"; do
    [ -e "/run/netns/$ns" ] || continue
    nspids=$(ip netns pids "$ns" 2>/dev/null)
    # shellcheck disable=SC2086
    [ -z "$nspids" ] || kill -KILL $nspids 2>/dev/null
    ip netns del "$ns" 2>/dev/null
  done
  if [ -n "${XGW_KEEP_TMP:-}" ]; then echo "kept $tmp" >&2; else rm -rf "$tmp"; fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM
started=$SECONDS

abort() {
  fail "$*"
  [ -f "$tmp/xgwd.log" ] && tail -n 20 "$tmp/xgwd.log" | sed 's/^/    host: /'
  if [ -n "$VM_PID" ] && vm_cmd -t 10 'tail -n 30 /tmp/xgwd.log'; then
    printf '%s\n' "$VM_OUT" | sed 's/^/    vm: /'
  fi
  echo "$failures check(s) failed (aborted)"
  exit 1
}

# ---- the kernel, the configs, the overlay ---------------------------------------
t0=$SECONDS
kdir=$(vm_prepare) || missing "no VM kernel (scripts/vm-kernel prepare failed: apt-get download offline and nothing cached?)"
echo "kernel: $kdir (prepared in $((SECONDS - t0)) s)"

# site NAME GW LOCAL_CIDR PUBLIC_IP PEER PEER_IP REMOTE_CIDR START ESP_ENC ESP_AUTH CHILD_LIFETIME
site() {
  cat <<YAML
vpn_gateways:
  - {name: $2, bandwidth: 100, local_cidr: $3, public_ips: ["$4"]}
customer_gateways:
  - {name: $5, ip: "$6"}
vpn_connections:
  - name: $1
    vpn_gateway: $2
    customer_gateway: $5
    psk: "xgw-vm-ike-$1"
    start_immediately: $8
    ikepolicy: {ike_version: v2, encryption_algorithm: aes-128, authentication_algorithm: sha2-256,
                dh_group: group14, dpd: {interval: 10, timeout: 6}}
    ipsecpolicy: {encryption_algorithm: $9, authentication_algorithm: ${10}, pfs: disable,
                  lifetime_seconds: ${11}}
    policy_rules:
      - {source: $3, destination: [$7]}
YAML
}
host_site() { # NAME START ESP_ENC ESP_AUTH CHILD_LIFETIME
  site "$1" gw-host "$ESP_LAB_NET1" "$ESP_LAB_G1_WAN_IP" vm "$ESP_LAB_G2_WAN_IP" "$ESP_LAB_NET2" \
    "$2" "$3" "$4" "$5"
}
vm_site() { # NAME START ESP_ENC ESP_AUTH CHILD_LIFETIME
  site "$1" gw-vm "$ESP_LAB_NET2" "$ESP_LAB_G2_WAN_IP" host "$ESP_LAB_G1_WAN_IP" "$ESP_LAB_NET1" \
    "$2" "$3" "$4" "$5"
}
rekey=${XGW_VM_IKE_REKEY:-1}
vm_gcm_life=3600 host_cbc_life=3600
[ "$rekey" = 1 ] && vm_gcm_life=30 host_cbc_life=30
mkdir -p "$tmp/files/xgw/cfg"
# The VM's xgwd: IKE into the kernel's XFRM and the XDP data plane on the
# VM's LAN and WAN, no metrics.
cat >"$tmp/files/xgw/cfg/xgwd.yaml" <<YAML
metrics: {listen: "off"}
ike: {backend: xfrm}
dataplane:
  pin_dir: /sys/fs/bpf/xgw/vm
  backend: xfrm
  gateways:
    gw-vm: {lan_interface: lan0, wan_interface: eth0}
YAML
# gcm: the host initiates, the VM's CHILD_SA lifetime is short (it rekeys).
# cbc: the host (raw_esp false) initiates and claims a NAT.
vm_site gcm false aes-128-gcm-16 none "$vm_gcm_life" >"$tmp/files/xgw/cfg/gcm.yaml"
host_site gcm true aes-128-gcm-16 none 3600 >"$tmp/gcm.yaml"
vm_site cbc false aes-128 sha2-256 3600 >"$tmp/files/xgw/cfg/cbc.yaml"
host_site cbc true aes-128 sha2-256 "$host_cbc_life" >"$tmp/cbc.yaml"
vm_overlay "$tmp/overlay.cpio" "$tmp/files" "$xgwd_bin" "$xgwctl_bin" || abort "overlay initramfs"

# ---- host side ------------------------------------------------------------------
vm_lab_host "$gw" "$h1" || abort "host namespaces"

# XDP redirects h1's frames into the ESP engine as they are: a veth peer
# leaves TCP checksums partial, a real NIC's frames carry complete ones.
ip netns exec "$h1" ethtool -K eth0 tx off >/dev/null 2>&1 || abort "ethtool -K tx off on h1"

# ---- boot -------------------------------------------------------------------------
vm_boot "$gw" "$kdir" "$tmp/overlay.cpio" "$tmp/console.log" || abort "VM boot"
echo "VM ready after $VM_BOOT_SECONDS s"
vm_lab_wan "$gw" || abort "tap0 address"
expect_ok "VM network: WAN, leaf namespace, forwarding, a route to the far LAN" vm_cmd "$(vm_lab_vm_network)"

# ---- the two xgwds ----------------------------------------------------------------
t0=$SECONDS
expect_ok "VM xgwd starts with ike.backend xfrm and XDP (state dir in tmpfs)" vm_cmd -t 60 "
mkdir -p /run/xgw
mount -t bpf bpf /sys/fs/bpf 2>/dev/null || true
/xgw/bin/xgwd --config /xgw/cfg/xgwd.yaml --state-dir /run/xgw --api-listen 127.0.0.1:0 \
  --log-level debug >/tmp/xgwd.log 2>&1 &
echo \$! > /tmp/xgwd.pid
for n in \$(seq 400); do
  [ -s /run/xgw/api.addr ] && exit 0
  kill -0 \$(cat /tmp/xgwd.pid) 2>/dev/null || break
  sleep 0.1
done
cat /tmp/xgwd.log; exit 1"
vm_cmd 'grep -m1 "event=ike.started" /tmp/xgwd.log'
check "VM xgwd: IKE on the xfrm backend ($(grep -o 'backend="[^"]*"' <<<"$VM_OUT" | head -n 1))" \
  grep -q 'backend="\?xfrm' <<<"$VM_OUT"
echo "     (VM xgwd up in $((SECONDS - t0)) s)"

# start_host RAW_ESP: (re)start the host's xgwd (userspace ESP, TAP xgw0).
start_host() {
  if [ -n "$xgwd_pid" ]; then
    kill -TERM "$xgwd_pid" 2>/dev/null
    wait "$xgwd_pid" 2>/dev/null
    xgwd_pid=
  fi
  cat >"$tmp/xgwd.yaml" <<YAML
metrics: {listen: "off"}
ike: {tun: xgw0, workers: 1, raw_esp: $1}
dataplane:
  pin_dir: $pin
  backend: userspace
  gateways:
    gw-host: {lan_interface: lan0, wan_interface: tap0}
YAML
  rm -f "$tmp/state/api.addr"
  # nsenter: the network namespace only, so the bpffs pins stay visible.
  nsenter --net="/run/netns/$gw" "$xgwd_bin" --config "$tmp/xgwd.yaml" --state-dir "$tmp/state" \
    --api-listen 127.0.0.1:0 --log-level debug >>"$tmp/xgwd.log" 2>&1 &
  xgwd_pid=$!
  for _ in $(seq 100); do
    [ -s "$tmp/state/api.addr" ] && return 0
    sleep 0.05
  done
  return 1
}
hctl() { ip netns exec "$gw" "$xgwctl_bin" --state-dir "$tmp/state" "$@"; }
vctl() { vm_cmd "/xgw/bin/xgwctl --state-dir /run/xgw $*"; }
start_host true || abort "host xgwd did not start"
pass "host xgwd starts (userspace ESP)"

# ---- helpers ------------------------------------------------------------------------
py=$tmp/xi.py
cat >"$py" <<'EOF'
"""xfrm_vm_ike_test.sh: flatten `ip -s xfrm state` / `ip xfrm policy`."""
import re
import sys


def state(path):
    """Per SPI: src, dst, reqid, packets, bytes, replay/ICV failures, encap."""
    out = {}
    spi = None
    src = dst = None
    section = None
    for line in open(path):
        line = line.strip()
        m = re.match(r"src (\S+) dst (\S+)", line)
        if m:
            src, dst = m.groups()
            continue
        m = re.match(r"proto esp spi 0x([0-9a-f]+)\S* reqid (\d+)", line)
        if m:
            spi = f"{int(m.group(1), 16):08x}"
            out[spi + ".src"], out[spi + ".dst"] = src, dst
            out[spi + ".reqid"] = m.group(2)
            out[spi + ".encap"] = "none"
            print(f"spi={spi}")
            continue
        if spi is None:
            continue
        if line.startswith("encap type"):
            f = line.split()  # encap type espinudp sport S dport D addr A
            out[spi + ".encap"] = f"{f[2]}-{f[4]}-{f[6]}"
        elif line.startswith("lifetime current:"):
            section = "cur"
        elif line.startswith("stats:"):
            section = "stats"
        elif section == "cur" and "(packets)" in line:
            m = re.match(r"(\d+)\(bytes\), (\d+)\(packets\)", line)
            out[spi + ".bytes"], out[spi + ".packets"] = m.group(1), m.group(2)
            section = None
        elif section == "stats" and line.startswith("replay-window"):
            m = re.match(r"replay-window (\d+) replay (\d+) failed (\d+)", line)
            out[spi + ".replay"], out[spi + ".failed"] = m.group(2), m.group(3)
            section = None
    for k, v in out.items():
        print(f"{k}={v}")


def policy(path):
    """Per direction: selector, template endpoints and reqid."""
    d = None
    sel = None
    for line in open(path):
        line = line.strip()
        m = re.match(r"src (\S+) dst (\S+)", line)
        if m and not line.startswith("tmpl"):
            sel = f"{m.group(1)}>{m.group(2)}"
            continue
        m = re.match(r"dir (\w+) priority", line)
        if m:
            d = m.group(1)
            print(f"{d}.sel={sel}")
            continue
        m = re.match(r"tmpl src (\S+) dst (\S+)", line)
        if m and d:
            print(f"{d}.tmpl={m.group(1)}>{m.group(2)}")
            continue
        m = re.match(r"proto esp reqid (\d+) mode tunnel", line)
        if m and d:
            print(f"{d}.reqid={m.group(1)}")


if __name__ == "__main__":
    {"state": state, "policy": policy}[sys.argv[1]](*sys.argv[2:])
EOF
# get FILE KEY: the value of KEY=... in a flattened file (empty if none).
get() { awk -F= -v k="$2" '$1 == k { print $2; exit }' "$1"; }
# vm_state OUT: the VM's `ip -s xfrm state`, flattened.
vm_state() {
  vm_cmd 'ip -s xfrm state' || return
  printf '%s\n' "$VM_OUT" >"$1.raw"
  python3 "$py" state "$1.raw" >"$1"
}
# host_child OUT / vm_child OUT: the first CHILD_SA of list-sas, as JSON.
host_child() { hctl --json list-sas | jq -c '[.ike_sas[] | .children[]?][0] // empty' >"$1"; }
vm_child() {
  vctl --json list-sas || return
  jq -c '[.ike_sas[] | .children[]?][0] // empty' <<<"$VM_OUT" >"$1"
}
jf() { jq -r ".$2 // empty" "$1"; }
# wait_up CONN SECONDS: both sides' `connection show` say status up.
wait_up() {
  local h='' v='' deadline=$((SECONDS + $2))
  while [ "$SECONDS" -lt "$deadline" ]; do
    [ "$h" = up ] || h=$(hctl --json connection show "$1" 2>/dev/null | jq -r '.vpn_connection.status')
    if [ "$v" != up ] && vctl --json connection show "$1"; then
      v=$(jq -r '.vpn_connection.status' <<<"$VM_OUT" 2>/dev/null)
    fi
    [ "$h" = up ] && [ "$v" = up ] && return 0
    sleep 0.3
  done
  echo "    host status '$h', VM status '$v'"
  hctl --json connection show "$1" | jq -c '.vpn_connection | {status, negotiation_status, failure_reason, failure_detail}' | sed 's/^/    host: /'
  vctl --json connection show "$1"
  jq -c '.vpn_connection | {status, negotiation_status, failure_reason, failure_detail}' <<<"$VM_OUT" | sed 's/^/    vm: /'
  return 1
}
# ping_both N: h1 -> leaf and leaf -> h1, N each; sets P1, P2 (received).
ping_both() {
  local out
  out=$(ip netns exec "$h1" ping -c "$1" -i 0.2 -W 2 -q "$ESP_LAB_H2_IP" 2>&1)
  P1=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$out")
  vm_cmd "ip netns exec leaf ping -c $1 -i 0.2 -W 2 -q $ESP_LAB_H1_IP"
  P2=$(sed -n 's/.* \([0-9]*\) packets received.*/\1/p' <<<"$VM_OUT")
}
# warm_up: the first packets may meet unresolved neighbours.
warm_up() {
  for _ in $(seq 20); do
    ip netns exec "$h1" ping -c 1 -W 1 -q "$ESP_LAB_H2_IP" >/dev/null 2>&1 && return 0
  done
  return 1
}
# delete_conn NAME: on both sides; the VM's kernel must be left without SAs
# and SPD entries (the NAT-T sockets' own bypass policies stay).
delete_conn() {
  hctl connection delete "$1" >/dev/null || fail "$1: host connection delete"
  vctl connection delete "$1" >/dev/null || fail "$1: VM connection delete"
  vm_cmd "
    for n in \$(seq 50); do
      [ -z \"\$(ip xfrm state)\" ] && ! ip xfrm policy | grep -q 'dir ' && exit 0
      sleep 0.1
    done
    ip xfrm state; ip xfrm policy; exit 1"
  rc=$?
  check "$1: deleting the connection removes the VM's SAs and policies" test $rc = 0
  [ $rc = 0 ] || printf 'rc %s\n%s\n' "$rc" "$VM_OUT" | sed 's/^/    /'
}

# rekey_under_ping WHO VM_ROLE OLD_IN OLD_OUT REQID ENCAP: WHO (vm|host)
# has the 30 s CHILD_SA lifetime; h1 pings every 0.1 s until 5 s after the
# rekey its list-sas announces. None may be lost; the VM's xgwd logs the
# rekey in VM_ROLE, the host in the other; afterwards the VM's kernel holds
# just the two new SAs (new SPIs, same reqid and encapsulation) and they
# carried the pings.
rekey_under_ping() {
  local who=$1 role=$2 o_in=$3 o_out=$4 rq=$5 encap=$6 due count out got n_in n_out hrole t0=$SECONDS
  if [ "$who" = vm ]; then vm_child "$tmp/r0.child"; else host_child "$tmp/r0.child"; fi
  due=$(jf "$tmp/r0.child" rekey_in_seconds)
  if [ -z "$due" ] || [ "$due" -gt 40 ]; then
    fail "$name: the $who's CHILD_SA rekey is not due within 40 s (rekey_in_seconds '$due')"
    return
  fi
  count=$(((due + 6) * 10))
  echo "     ($name: the $who rekeys in $due s: $count pings at 0.1 s)"
  out=$(ip netns exec "$h1" ping -c "$count" -i 0.1 -W 1 -q "$ESP_LAB_H2_IP" 2>&1)
  got=$(sed -n 's/.* \([0-9]*\) received.*/\1/p' <<<"$out")
  expect_eq "$name: $count pings across the $who's CHILD_SA rekey, none lost" "$got" "$count"
  vm_cmd "grep -c 'event=ike.child_rekeyed.*conn=$name .*role=$role' /tmp/xgwd.log"
  check "$name: the VM (XfrmDataplane) rekeyed the CHILD_SA as $role" test "${VM_OUT:-0}" -ge 1
  hrole=initiator
  [ "$role" = initiator ] && hrole=responder
  grep -q "event=ike.child_rekeyed.*conn=$name .*role=$hrole" "$tmp/xgwd.log"
  check "$name: the host (userspace) rekeyed it as $hrole" test $? = 0
  vm_state "$tmp/r1"
  vm_child "$tmp/r1.child"
  n_in=$(jf "$tmp/r1.child" spi_in) n_out=$(jf "$tmp/r1.child" spi_out)
  check "$name: new SPIs ($o_in/$o_out -> $n_in/$n_out)" \
    test -n "$n_in" -a -n "$n_out" -a "$n_in" != "$o_in" -a "$n_out" != "$o_out"
  expect_eq "$name: the VM's kernel holds just the new SAs" \
    "$(grep '^spi=' "$tmp/r1" | cut -d= -f2 | sort | tr '\n' ' ')" \
    "$(printf '%s\n' "$n_in" "$n_out" | sort | tr '\n' ' ')"
  check "$name: the new kernel SAs carried the pings ($(get "$tmp/r1" "$n_in.packets")/$(get "$tmp/r1" "$n_out.packets") packets)" \
    test "$(get "$tmp/r1" "$n_in.packets")" -gt 0 -a "$(get "$tmp/r1" "$n_out.packets")" -gt 0
  expect_eq "$name: the new kernel SAs keep reqid and encapsulation" \
    "$(get "$tmp/r1" "$n_in.reqid")/$(get "$tmp/r1" "$n_out.reqid") $(get "$tmp/r1" "$n_in.encap")/$(get "$tmp/r1" "$n_out.encap")" \
    "$rq/$rq $encap/$encap"
  echo "     ($name rekey: $((SECONDS - t0)) s)"
}

# ---- 1. AES-GCM, raw ESP, and the VM's rekey -----------------------------------------
name=gcm
t0=$SECONDS
vctl apply -f /xgw/cfg/gcm.yaml >/dev/null || abort "gcm: VM xgwctl apply: $VM_OUT"
hctl apply -f "$tmp/gcm.yaml" >/dev/null || abort "gcm: host xgwctl apply"
if wait_up gcm 40; then pass "$name: both xgwds report status up"; else abort "gcm: not up"; fi
t_up=$SECONDS
echo "     ($name: up in $((t_up - t0)) s)"
host_child "$tmp/h.child"
vm_child "$tmp/v.child"
vm_state "$tmp/s0"
vm_cmd 'ip xfrm policy' && printf '%s\n' "$VM_OUT" >"$tmp/p0.raw"
python3 "$py" policy "$tmp/p0.raw" >"$tmp/p0"
h_in=$(jf "$tmp/h.child" spi_in) h_out=$(jf "$tmp/h.child" spi_out)
v_in=$(jf "$tmp/v.child" spi_in) v_out=$(jf "$tmp/v.child" spi_out)
reqid=$(jf "$tmp/v.child" reqid)
expect_eq "$name: the VM's kernel holds 2 SAs" "$(grep -c '^spi=' "$tmp/s0")" 2
expect_eq "$name: host spi_out = VM spi_in" "$h_out" "$v_in"
expect_eq "$name: host spi_in = VM spi_out" "$h_in" "$v_out"
expect_eq "$name: VM inbound SA in the kernel: $ESP_LAB_G1_WAN_IP -> $ESP_LAB_G2_WAN_IP" \
  "$(get "$tmp/s0" "$v_in.src")>$(get "$tmp/s0" "$v_in.dst")" "$ESP_LAB_G1_WAN_IP>$ESP_LAB_G2_WAN_IP"
expect_eq "$name: VM outbound SA in the kernel: $ESP_LAB_G2_WAN_IP -> $ESP_LAB_G1_WAN_IP" \
  "$(get "$tmp/s0" "$v_out.src")>$(get "$tmp/s0" "$v_out.dst")" "$ESP_LAB_G2_WAN_IP>$ESP_LAB_G1_WAN_IP"
expect_eq "$name: kernel SAs carry the CHILD_SA's reqid" \
  "$(get "$tmp/s0" "$v_in.reqid")/$(get "$tmp/s0" "$v_out.reqid")" "$reqid/$reqid"
check "$name: kernel SAs are AES-GCM (rfc4106)" grep -q 'aead rfc4106(gcm(aes))' "$tmp/s0.raw"
expect_eq "$name: raw ESP (no encapsulation)" \
  "$(get "$tmp/s0" "$v_in.encap")/$(get "$tmp/s0" "$v_out.encap")" none/none
for d in out in fwd; do
  want_sel="$ESP_LAB_NET2>$ESP_LAB_NET1" want_tmpl="$ESP_LAB_G2_WAN_IP>$ESP_LAB_G1_WAN_IP"
  [ $d != out ] && want_sel="$ESP_LAB_NET1>$ESP_LAB_NET2" want_tmpl="$ESP_LAB_G1_WAN_IP>$ESP_LAB_G2_WAN_IP"
  expect_eq "$name: VM policy dir $d: selector, template, reqid" \
    "$(get "$tmp/p0" $d.sel) $(get "$tmp/p0" $d.tmpl) $(get "$tmp/p0" $d.reqid)" \
    "$want_sel $want_tmpl $reqid"
done

warm_up || fail "$name: h1 cannot reach the VM's leaf through the tunnel"
vm_cmd "ip netns exec leaf ping -c 1 -W 2 -q $ESP_LAB_H1_IP >/dev/null"
host_child "$tmp/h1.child"
vm_state "$tmp/s1"
ping_both 5
expect_eq "$name: ping h1 -> VM leaf" "$P1" 5
expect_eq "$name: ping VM leaf -> h1" "$P2" 5
host_child "$tmp/h2.child"
vm_state "$tmp/s2"
vm_child "$tmp/v2.child"
sdelta() { echo $(($(get "$2" "$3") - $(get "$1" "$3"))); }
jdelta() { echo $(($(jf "$2" "$3") - $(jf "$1" "$3"))); }
expect_eq "$name: VM kernel inbound SA +10 packets" "$(sdelta "$tmp/s1" "$tmp/s2" "$v_in.packets")" 10
expect_eq "$name: VM kernel outbound SA +10 packets" "$(sdelta "$tmp/s1" "$tmp/s2" "$v_out.packets")" 10
expect_eq "$name: host CHILD_SA packets_in +10 (list-sas)" \
  "$(jdelta "$tmp/h1.child" "$tmp/h2.child" packets_in)" 10
expect_eq "$name: host CHILD_SA packets_out +10 (list-sas)" \
  "$(jdelta "$tmp/h1.child" "$tmp/h2.child" packets_out)" 10
check "$name: host CHILD_SA has bytes both ways ($(jf "$tmp/h2.child" bytes_in)/$(jf "$tmp/h2.child" bytes_out))" \
  test "$(jf "$tmp/h2.child" bytes_in)" -gt 0 -a "$(jf "$tmp/h2.child" bytes_out)" -gt 0
expect_eq "$name: VM list-sas packets = kernel's (in/out)" \
  "$(jf "$tmp/v2.child" packets_in)/$(jf "$tmp/v2.child" packets_out)" \
  "$(get "$tmp/s2" "$v_in.packets")/$(get "$tmp/s2" "$v_out.packets")"
expect_eq "$name: VM inbound SA: replay/ICV failures" \
  "$(get "$tmp/s2" "$v_in.replay")/$(get "$tmp/s2" "$v_in.failed")" 0/0
# The XDP data plane on both sides carried those packets.
# dp_summary JSON: status, attached interfaces, the tunnel's readiness,
# outcomes and traffic as "key=value ..." for the checks below.
dp_summary() {
  jq -r '.dataplane.gateways[0] |
    "status=\(.status) attached=\([.interfaces[] | select(.attached)] | length)" +
    " ready=\(.tunnels[0].sa_ready) xfrm=\(.passes.xfrm) userspace=\(.passes.userspace)" +
    " esp_in=\(.passes.esp_in) unknown_spi=\(.drops.unknown_spi)" +
    " tx=\(.tunnels[0].traffic.tx_packets) rx=\(.tunnels[0].traffic.rx_packets)"'
}
kv() { sed -n "s/.*\b$2=\([^ ]*\).*/\1/p" <<<"$1"; }
hdp=$(hctl --json dataplane | dp_summary)
vctl --json dataplane || true
vdp=$(dp_summary <<<"$VM_OUT")
echo "     (host XDP: $hdp)"
echo "     (VM XDP:   $vdp)"
for side in host vm; do
  s=$hdp
  [ $side = vm ] && s=$vdp
  expect_eq "$name: $side gateway running, LAN and WAN programs attached, tunnel SA-ready" \
    "$(kv "$s" status) $(kv "$s" attached) $(kv "$s" ready)" "running 2 true"
  expect_eq "$name: $side XDP dropped no negotiated ESP as unknown_spi" "$(kv "$s" unknown_spi)" 0
  check "$name: $side XDP admitted the peer's ESP ($(kv "$s" esp_in) packets)" test "$(kv "$s" esp_in)" -ge 10
  check "$name: $side tunnel counted traffic both ways (tx $(kv "$s" tx), rx $(kv "$s" rx))" \
    test "$(kv "$s" tx)" -ge 10 -a "$(kv "$s" rx)" -ge 10
done
check "$name: host XDP handed LAN packets to the userspace ESP engine ($(kv "$hdp" userspace))" \
  test "$(kv "$hdp" userspace)" -ge 10
check "$name: VM XDP passed LAN packets to the kernel's XFRM ($(kv "$vdp" xfrm))" \
  test "$(kv "$vdp" xfrm)" -ge 10
echo "     ($name: $((SECONDS - t0)) s)"

if [ "$rekey" = 1 ]; then
  rekey_under_ping vm initiator "$v_in" "$v_out" "$reqid" none
else
  echo "     (rekey skipped: XGW_VM_IKE_REKEY=0)"
fi
delete_conn gcm

# ---- 2. AES-CBC + HMAC-SHA-256, UDP-encapsulated -----------------------------------
name=cbc
t0=$SECONDS
# raw_esp: false makes the host claim a NAT (a random NAT_DETECTION_SOURCE_IP
# in its IKE_SA_INIT response): the VM floats to 4500, both encapsulate.
start_host false || abort "host xgwd restart (raw_esp false)"
hctl apply -f "$tmp/cbc.yaml" >/dev/null || abort "cbc: host xgwctl apply"
vctl apply -f /xgw/cfg/cbc.yaml >/dev/null || abort "cbc: VM xgwctl apply: $VM_OUT"
if wait_up cbc 40; then pass "$name: both xgwds report status up"; else abort "cbc: not up"; fi
warm_up || fail "$name: h1 cannot reach the VM's leaf through the tunnel"
ping_both 5
expect_eq "$name: ping h1 -> VM leaf" "$P1" 5
expect_eq "$name: ping VM leaf -> h1" "$P2" 5
vm_state "$tmp/c1"
vm_child "$tmp/vc.child"
host_child "$tmp/hc.child"
v_in=$(jf "$tmp/vc.child" spi_in) v_out=$(jf "$tmp/vc.child" spi_out)
expect_eq "$name: kernel SAs are cbc(aes) + hmac(sha256) truncated to 128 bits" \
  "$(grep -c 'enc cbc(aes)' "$tmp/c1.raw")/$(grep -cE 'auth-trunc hmac\(sha256\) 0x[0-9a-f]+ \(256 bits\) 128' "$tmp/c1.raw")" 2/2
expect_eq "$name: kernel SAs are UDP-encapsulated" \
  "$(get "$tmp/c1" "$v_in.encap")/$(get "$tmp/c1" "$v_out.encap")" "espinudp-4500-4500/espinudp-4500-4500"
expect_eq "$name: host CHILD_SA mode (list-sas)" "$(jf "$tmp/hc.child" mode)" TUNNEL-in-UDP
expect_eq "$name: VM CHILD_SA mode (list-sas)" "$(jf "$tmp/vc.child" mode)" TUNNEL-in-UDP
check "$name: kernel SAs counted the pings ($(get "$tmp/c1" "$v_in.packets")/$(get "$tmp/c1" "$v_out.packets"))" \
  test "$(get "$tmp/c1" "$v_in.packets")" -ge 10 -a "$(get "$tmp/c1" "$v_out.packets")" -ge 10
check "$name: host CHILD_SA bytes both ways ($(jf "$tmp/hc.child" bytes_in)/$(jf "$tmp/hc.child" bytes_out))" \
  test "$(jf "$tmp/hc.child" bytes_in)" -gt 0 -a "$(jf "$tmp/hc.child" bytes_out)" -gt 0
expect_eq "$name: VM inbound SA: replay/ICV failures" \
  "$(get "$tmp/c1" "$v_in.replay")/$(get "$tmp/c1" "$v_in.failed")" 0/0
if [ "$rekey" = 1 ]; then
  rekey_under_ping host responder "$v_in" "$v_out" "$(jf "$tmp/vc.child" reqid)" espinudp-4500-4500
fi
echo "     ($name: $((SECONDS - t0)) s)"
delete_conn cbc

vm_cmd 'grep -cE "level=(error|warn)" /tmp/xgwd.log; grep -E "level=(error|warn)" /tmp/xgwd.log | head -n 5'
echo "     (VM xgwd warnings/errors: ${VM_OUT//$'\n'/ | })"
echo "VM boot $VM_BOOT_SECONDS s; whole test $((SECONDS - started)) s"
checks_done
