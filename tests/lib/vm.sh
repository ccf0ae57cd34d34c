# shellcheck shell=bash
# shellcheck disable=SC2034 # VM_* are for the sourcing script
# A QEMU test VM with Debian's kernel (scripts/vm-kernel), driven over its
# serial console. Source from bash (root; qemu-system-x86, busybox-static,
# cpio, kmod: scripts/install-deps):
#
#   . tests/lib/vm.sh
#   trap vm_stop EXIT
#   kdir=$(vm_prepare) || exit 1
#   vm_overlay "$tmp/overlay.cpio" "$tmp/files" /path/to/bin... || exit 1
#   vm_boot NS "$kdir" "$tmp/overlay.cpio" "$tmp/console.log" || exit 1
#   vm_cmd 'ip -s xfrm state' && echo "$VM_OUT"
#   vm_stop
#
# The VM: TCG (this host's /dev/kvm only runs PVM guests), one vCPU,
# the uncompressed PVH vmlinux, base.cpio.gz + the overlay as initramfs,
# one virtio-net NIC on a TAP device `tap0` created by QEMU inside the host
# network namespace NS (configure the host side after vm_boot). Inside,
# the NIC is eth0 with no address.
#
# Functions:
#   vm_prepare              scripts/vm-kernel prepare; prints the kernel dir
#   vm_overlay OUT DIR [BIN...]
#                           an uncompressed cpio of DIR's tree (as /) plus
#                           each BIN, stripped, at /xgw/bin/NAME with its
#                           shared libraries at their paths
#   vm_boot NS KDIR OVERLAY LOG
#                           boots; waits for XGW-VM-READY (VM_BOOT_TIMEOUT,
#                           default 90 s); sets VM_PID, VM_BOOT_SECONDS;
#                           the whole VM is killed after VM_LIFETIME seconds
#                           (default 600) whatever happens
#   vm_cmd [-t SECONDS] CMD run CMD with the VM's sh; its output (stdout and
#                           stderr) in VM_OUT; returns its status, or 124 on
#                           timeout (default 60 s)
#   vm_put FILE DEST        copy a small file (≤ 2 KiB) into the VM
#   vm_stop                 poweroff, then kill; idempotent, for traps
#   vm_lab_host GW H1       the VM labs' host side (tests/lib/esp_lab.sh
#                           addresses): namespaces GW (forwarding, lan0) and
#                           H1 (eth0, default route via GW); the VM's tap0
#                           joins GW at vm_boot (then vm_lab_wan GW)
#   vm_lab_wan GW           GW's tap0 gets the g1 WAN address and goes up
#   vm_lab_vm_network       prints the VM-side script: eth0 on the WAN, a
#                           leaf namespace behind lan0, forwarding, and a
#                           route to the far LAN (XFRM only sees what
#                           routing sends somewhere); run it with vm_cmd
#
# Commands travel as one line "ID BASE64(CMD)" (base64 keeps tty control
# characters out of the line discipline); the VM answers "XGW-BEGIN ID",
# the output, "XGW-END ID RC". Lines are limited to 4 KiB by the tty: keep
# commands short, ship files in the overlay.

_vm_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
VM_PID='' VM_FD='' VM_LOG='' VM_OUT='' VM_BOOT_SECONDS='' VM_FIFO=''

_vm_log() { echo "vm.sh: $*" >&2; }

_vm_now_ms() {
  local t=${EPOCHREALTIME//[!0-9]/}
  echo $((t / 1000))
}

vm_prepare() {
  "$_vm_root/scripts/vm-kernel" prepare
}

vm_overlay() {
  local out=$1 dir=$2 bin lib stage
  shift 2
  stage=$(mktemp -d) || return
  [ -z "$dir" ] || cp -a "$dir/." "$stage/" || return
  mkdir -p "$stage/xgw/bin"
  for bin in "$@"; do
    [ -x "$bin" ] || { _vm_log "$bin is not executable"; rm -rf "$stage"; return 1; }
    # Debug info only slows the initramfs down.
    objcopy --strip-debug "$bin" "$stage/xgw/bin/$(basename "$bin")" ||
      cp "$bin" "$stage/xgw/bin/$(basename "$bin")"
    for lib in $(ldd "$bin" | awk '/=> \// { print $3 } /^\t\/[^ ]+ \(/ { print $1 }'); do
      [ -e "$stage$lib" ] && continue
      mkdir -p "$stage$(dirname "$lib")"
      cp -L "$lib" "$stage$lib" || return
    done
  done
  (cd "$stage" && find . | LC_ALL=C sort | cpio -o -H newc --quiet) >"$out"
  local rc=$?
  rm -rf "$stage"
  return $rc
}

vm_boot() {
  local ns=$1 kdir=$2 overlay=$3 log=$4 initrd deadline t0
  VM_LOG=$log
  initrd=${overlay%.cpio}.initrd
  # The kernel unpacks concatenated archives in order (ours on top); each
  # must start 4-byte aligned, zero padding between them is skipped.
  cp "$kdir/base.cpio.gz" "$initrd" || return
  truncate -s %4 "$initrd" || return
  cat "$overlay" >>"$initrd" || return
  VM_FIFO=$(mktemp -u "${log%.log}.in.XXXX")
  mkfifo "$VM_FIFO" || return
  # Read-write: opening never blocks, and QEMU never sees EOF.
  exec {VM_FD}<>"$VM_FIFO"
  : >"$log"
  t0=$(_vm_now_ms)
  ip netns exec "$ns" timeout -s KILL "${VM_LIFETIME:-600}" \
    qemu-system-x86_64 -accel tcg -nographic -monitor none -serial stdio \
    -m 768 -smp 1 -no-reboot \
    -kernel "$kdir/vmlinux" -initrd "$initrd" \
    -append "console=ttyS0 quiet loglevel=3 panic=-1 net.ifnames=0" \
    -netdev tap,id=n0,ifname=tap0,script=no,downscript=no \
    -device virtio-net-pci,netdev=n0,mac=52:54:00:00:80:02 \
    <&"$VM_FD" >"$log" 2>&1 &
  VM_PID=$!
  deadline=$((t0 + ${VM_BOOT_TIMEOUT:-90} * 1000))
  until grep -q 'XGW-VM-READY' "$log" 2>/dev/null; do
    if ! kill -0 "$VM_PID" 2>/dev/null; then
      _vm_log "QEMU exited during boot:"
      tail -n 30 "$log" | sed 's/^/    /' >&2
      return 1
    fi
    if [ "$(_vm_now_ms)" -ge "$deadline" ]; then
      _vm_log "no XGW-VM-READY after ${VM_BOOT_TIMEOUT:-90}s:"
      tail -n 30 "$log" | sed 's/^/    /' >&2
      return 1
    fi
    sleep 0.1
  done
  VM_BOOT_SECONDS=$(awk -v ms=$(($(_vm_now_ms) - t0)) 'BEGIN { printf "%.1f", ms / 1000 }')
  grep -a 'XGW-VM-READY' "$log" | tr -d '\r' | head -n 1 >&2
}

vm_cmd() {
  local timeout=60 id b64 deadline
  if [ "${1:-}" = -t ]; then
    timeout=$2
    shift 2
  fi
  VM_OUT=
  [ -n "$VM_PID" ] || { _vm_log "no VM"; return 1; }
  # Unique even across subshells (a counter would not survive `$(vm_cmd …)`):
  # the wall clock in microseconds.
  id=${EPOCHREALTIME//[!0-9]/}
  b64=$(printf '%s' "$1" | base64 -w0)
  if [ ${#b64} -gt 4000 ]; then
    _vm_log "command too long for the serial line (${#b64} > 4000 bytes base64)"
    return 2
  fi
  printf '%s %s\n' "$id" "$b64" >&"$VM_FD"
  deadline=$(($(_vm_now_ms) + timeout * 1000))
  until grep -aq "^XGW-END $id " <(tr -d '\r' <"$VM_LOG"); do
    if ! kill -0 "$VM_PID" 2>/dev/null; then
      _vm_log "VM gone while running: $1"
      return 1
    fi
    if [ "$(_vm_now_ms)" -ge "$deadline" ]; then
      _vm_log "timeout (${timeout}s) running: $1"
      return 124
    fi
    sleep 0.05
  done
  VM_OUT=$(tr -d '\r' <"$VM_LOG" | awk -v id="$id" '
    $0 == "XGW-BEGIN " id { on = 1; next }
    index($0, "XGW-END " id " ") == 1 { exit }
    on { print }')
  return "$(tr -d '\r' <"$VM_LOG" | awk -v id="$id" 'index($0, "XGW-END " id " ") == 1 { print $3; exit }')"
}

vm_put() {
  local file=$1 dest=$2 b64
  b64=$(base64 -w0 <"$file") || return
  vm_cmd "echo $b64 | base64 -d > $dest"
}

vm_stop() {
  [ -n "$VM_PID" ] || return 0
  if kill -0 "$VM_PID" 2>/dev/null; then
    printf '%s %s\n' "${EPOCHREALTIME//[!0-9]/}" "$(printf 'poweroff -f' | base64 -w0)" \
      1>&"$VM_FD" 2>/dev/null
    for _ in $(seq 50); do
      kill -0 "$VM_PID" 2>/dev/null || break
      sleep 0.1
    done
    # timeout(1) runs QEMU as its child: kill both.
    pkill -KILL -P "$VM_PID" 2>/dev/null
    kill -KILL "$VM_PID" 2>/dev/null
  fi
  wait "$VM_PID" 2>/dev/null
  VM_PID=
  [ -z "$VM_FD" ] || exec {VM_FD}>&-
  VM_FD=
  [ -z "$VM_FIFO" ] || rm -f "$VM_FIFO"
  VM_FIFO=
}

# ---- the VM labs' topology (h1 -- gw =tap0= VM -- leaf) ----------------------
# ESP_LAB_* come from tests/lib/esp_lab.sh, sourced by the lab.

vm_lab_host() {
  local gw=$1 h1=$2 ns
  for ns in "$gw" "$h1"; do
    ip netns add "$ns" || return 1
    ip -n "$ns" link set lo up
    ip netns exec "$ns" sysctl -qw net.ipv6.conf.all.disable_ipv6=1 \
      net.ipv6.conf.default.disable_ipv6=1 net.ipv4.conf.all.rp_filter=0 \
      net.ipv4.conf.default.rp_filter=0
  done
  ip netns exec "$gw" sysctl -qw net.ipv4.ip_forward=1
  ip -n "$h1" link add eth0 type veth peer name lan0 netns "$gw" || return 1
  ip -n "$h1" addr add "$ESP_LAB_H1_IP/24" dev eth0
  ip -n "$h1" link set eth0 up
  ip -n "$h1" route add default via "$ESP_LAB_G1_LAN_IP"
  ip -n "$gw" addr add "$ESP_LAB_G1_LAN_IP/24" dev lan0
  ip -n "$gw" link set lan0 up
}

vm_lab_wan() {
  ip -n "$1" addr add "$ESP_LAB_G1_WAN_IP/24" dev tap0 || return 1
  ip -n "$1" link set tap0 up
}

# shellcheck disable=SC2016 # \$f is expanded by the VM's shell
vm_lab_vm_network() {
  cat <<EOF
set -e
ip link set eth0 up
ip addr add $ESP_LAB_G2_WAN_IP/24 dev eth0
echo 1 > /proc/sys/net/ipv4/ip_forward
for f in /proc/sys/net/ipv4/conf/*/rp_filter; do echo 0 > \$f; done
ip netns add leaf
ip link add lan0 type veth peer name eth0 netns leaf
ip addr add $ESP_LAB_G2_LAN_IP/24 dev lan0
ip link set lan0 up
ip -n leaf link set lo up
ip -n leaf addr add $ESP_LAB_H2_IP/24 dev eth0
ip -n leaf link set eth0 up
ip -n leaf route add default via $ESP_LAB_G2_LAN_IP
ip route add $ESP_LAB_NET1 via $ESP_LAB_G1_WAN_IP dev eth0
ping -c 1 -W 5 $ESP_LAB_G1_WAN_IP >/dev/null
EOF
}
