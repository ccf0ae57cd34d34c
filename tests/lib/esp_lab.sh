# shellcheck shell=bash
# shellcheck disable=SC2034 # ESP_LAB_* and ESP_STATIC_PID are for the sourcing script
# Four-namespace ESP topology shared by scripts/bench-esp and the ESP lab
# tests, plus helpers for xgw-esp-static (static SAs, no IKE). Source it from
# bash (needs root, iproute2, procps; openssl for the key generator):
#
#   . tests/lib/esp_lab.sh
#   trap 'esp_static_stop; esp_lab_down xbfoo' EXIT
#   esp_lab_up xbfoo || exit 1
#   esp_static_pair_configs "$tmp" aes128gcm16 none udp || exit 1
#   esp_static_start "$ESP_LAB_G1" "$tmp/g1.yaml" "$tmp/g1.stats.json" || exit 1
#   esp_static_start "$ESP_LAB_G2" "$tmp/g2.yaml" "$tmp/g2.stats.json" || exit 1
#   esp_lab_ping xbfoo 5 || exit 1
#
#      h1 ---------- g1 ============ g2 ---------- h2
#   10.91.1.2   10.91.1.1 192.0.2.1  192.0.2.2 10.91.2.1   10.91.2.2
#     eth0         lan0    wan0         wan0    lan0         eth0
#
# Namespaces are "<PREFIX>h1", "<PREFIX>g1", "<PREFIX>g2", "<PREFIX>h2"
# (ESP_LAB_H1 ESP_LAB_G1 ESP_LAB_G2 ESP_LAB_H2 after esp_lab_vars/esp_lab_up).
# Hosts default-route via their gateway; gateways forward, have rp_filter off
# and no route to the far LAN: only a tunnel (or esp_lab_plain_routes)
# connects h1 and h2. MTU 1500 on every veth. IPv6 is disabled in the four
# namespaces so captures hold only the test's traffic; with ESP_LAB_IPV6=1
# (set when calling esp_lab_up) it stays on and every interface above also
# gets the IPv6 address below (no DAD), the gateways forward IPv6 and the
# hosts default-route via their gateway's IPv6 address.
#
# Addresses (fixed; the WAN is TEST-NET-1, RFC 5737):
#   ESP_LAB_NET1=10.91.1.0/24  ESP_LAB_H1_IP=10.91.1.2  ESP_LAB_G1_LAN_IP=10.91.1.1
#   ESP_LAB_NET2=10.91.2.0/24  ESP_LAB_H2_IP=10.91.2.2  ESP_LAB_G2_LAN_IP=10.91.2.1
#   ESP_LAB_WAN_NET=192.0.2.0/24 ESP_LAB_G1_WAN_IP=192.0.2.1 ESP_LAB_G2_WAN_IP=192.0.2.2
# IPv6 (ESP_LAB_IPV6=1; the WAN is the documentation prefix, RFC 3849):
#   ESP_LAB_NET1_V6=fd00:91:1::/64 ESP_LAB_H1_IP6=fd00:91:1::2 ESP_LAB_G1_LAN_IP6=fd00:91:1::1
#   ESP_LAB_NET2_V6=fd00:91:2::/64 ESP_LAB_H2_IP6=fd00:91:2::2 ESP_LAB_G2_LAN_IP6=fd00:91:2::1
#   ESP_LAB_WAN_NET_V6=2001:db8:91::/64
#   ESP_LAB_G1_WAN_IP6=2001:db8:91::1 ESP_LAB_G2_WAN_IP6=2001:db8:91::2
# Interfaces: ESP_LAB_HOST_IF=eth0 (h1, h2), ESP_LAB_LAN_IF=lan0 and
# ESP_LAB_WAN_IF=wan0 (g1, g2).
#
# Functions:
#   esp_lab_vars PREFIX            set the ESP_LAB_* namespace variables
#   esp_lab_up PREFIX              (re)build the topology; a stale one with the
#                                  same PREFIX (crashed run) is removed first
#   esp_lab_down PREFIX            kill processes in the namespaces and delete
#                                  them; idempotent, safe in traps
#   esp_lab_plain_routes PREFIX    route the LANs across the WAN without a
#                                  tunnel (the bare-veth baseline)
#   esp_lab_ping PREFIX [TIMEOUT]  ping h1 -> h2 until one reply (default 5 s)
#   esp_static_pair_configs DIR ENCR INTEG ENCAP
#                                  write DIR/g1.yaml, DIR/g2.yaml (mirrored
#                                  xgw-esp-static configs with fresh random
#                                  keys) and DIR/keys.env. Optional knobs:
#                                  ESP_LAB_OUTER=4|6 (default 4) picks the
#                                  SAs' local/remote (WAN) family,
#                                  ESP_LAB_INNER="4", "6" or "4 6" (default
#                                  4) the policies' (LAN) families,
#                                  ESP_LAB_ESN=1 sets esn: true on all SAs;
#                                  IPv6 on either side needs ESP_LAB_IPV6=1
#   esp_static_start NS CONFIG STATSFILE
#                                  start xgw-esp-static in NS, wait until its
#                                  TUN is up with the policy routes; sets
#                                  ESP_STATIC_PID; log in ${CONFIG%.yaml}.log
#   esp_static_stats PID STATSFILE [TIMEOUT]
#                                  SIGUSR1 and wait for a fresh JSON file
#   esp_static_stop [PID...]       SIGTERM (then SIGKILL after 5 s) the given
#                                  instances, default all this shell started;
#                                  returns 1 if one needed SIGKILL
#
# The binary is $ESP_STATIC_BIN, default $XGW_BUILD_DIR/xgw-esp-static with
# XGW_BUILD_DIR defaulting to <repo>/build/bin. ESP_LAB_WORKERS, when set,
# becomes the configs' `workers:`, ESP_LAB_DEVICE (tap|tun) their `device:`.

ESP_LAB_ROLES=(h1 g1 g2 h2)
ESP_LAB_NET1=10.91.1.0/24 ESP_LAB_H1_IP=10.91.1.2 ESP_LAB_G1_LAN_IP=10.91.1.1
ESP_LAB_NET2=10.91.2.0/24 ESP_LAB_H2_IP=10.91.2.2 ESP_LAB_G2_LAN_IP=10.91.2.1
ESP_LAB_WAN_NET=192.0.2.0/24 ESP_LAB_G1_WAN_IP=192.0.2.1 ESP_LAB_G2_WAN_IP=192.0.2.2
ESP_LAB_NET1_V6=fd00:91:1::/64 ESP_LAB_H1_IP6=fd00:91:1::2 ESP_LAB_G1_LAN_IP6=fd00:91:1::1
ESP_LAB_NET2_V6=fd00:91:2::/64 ESP_LAB_H2_IP6=fd00:91:2::2 ESP_LAB_G2_LAN_IP6=fd00:91:2::1
ESP_LAB_WAN_NET_V6=2001:db8:91::/64
ESP_LAB_G1_WAN_IP6=2001:db8:91::1 ESP_LAB_G2_WAN_IP6=2001:db8:91::2
ESP_LAB_HOST_IF=eth0 ESP_LAB_LAN_IF=lan0 ESP_LAB_WAN_IF=wan0
ESP_LAB_TUN=xgw0 ESP_LAB_TUN_MTU=1400 ESP_LAB_UDP_PORT=4500
# SPIs of the two directions (g1 -> g2 is g1's "out1" and g2's "in1").
ESP_LAB_SPI_G1_G2=0x00001001 ESP_LAB_SPI_G2_G1=0x00002001

_esp_lab_root=$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)
ESP_STATIC_BIN=${ESP_STATIC_BIN:-${XGW_BUILD_DIR:-$_esp_lab_root/build/bin}/xgw-esp-static}
ESP_STATIC_PIDS=()
ESP_STATIC_PID=

_esp_log() { echo "esp_lab.sh: $*" >&2; }

# Milliseconds on the wall clock ($SECONDS ticks whole seconds only).
_esp_now_ms() {
  local t=${EPOCHREALTIME//[!0-9]/}
  echo $((t / 1000))
}

_esp_run() {
  "$@" || {
    local rc=$?
    _esp_log "failed ($rc): $*"
    return "$rc"
  }
}

esp_lab_vars() {
  local p=$1
  [ -n "$p" ] || { _esp_log "missing PREFIX"; return 2; }
  ESP_LAB_PREFIX=$p
  ESP_LAB_H1=${p}h1 ESP_LAB_G1=${p}g1 ESP_LAB_G2=${p}g2 ESP_LAB_H2=${p}h2
}

# _esp_alive PID: exists and is not a zombie (PID 1 here does not reap, so
# kill -0 is not enough).
_esp_alive() {
  local state
  [[ $1 =~ ^[0-9]+$ ]] || return 1
  state=$(awk '/^State:/ { print $2; exit }' "/proc/$1/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

_esp_ns_kill() {
  local ns=$1 pids
  pids=$(ip netns pids "$ns" 2>/dev/null)
  [ -n "$pids" ] || return 0
  # shellcheck disable=SC2086
  kill -TERM $pids 2>/dev/null
  for _ in $(seq 50); do
    [ -n "$(ip netns pids "$ns" 2>/dev/null)" ] || return 0
    sleep 0.1
  done
  pids=$(ip netns pids "$ns" 2>/dev/null)
  # shellcheck disable=SC2086
  [ -z "$pids" ] || kill -KILL $pids 2>/dev/null
  sleep 0.1
}

esp_lab_down() {
  local r ns rc=0
  esp_lab_vars "$1" || return
  for r in "${ESP_LAB_ROLES[@]}"; do
    ns=$1$r
    [ -e "/run/netns/$ns" ] || continue
    _esp_ns_kill "$ns"
    ip netns del "$ns" 2>/dev/null || rc=1
  done
  for r in "${ESP_LAB_ROLES[@]}"; do
    if [ -e "/run/netns/$1$r" ]; then
      _esp_log "namespace $1$r remains after esp_lab_down"
      rc=1
    fi
  done
  return "$rc"
}

_esp_sysctl() { _esp_run ip netns exec "$1" sysctl -q -w "$2" >/dev/null; }

_esp_veth() {
  local ns1=$1 if1=$2 ns2=$3 if2=$4
  _esp_run ip -n "$ns1" link add "$if1" mtu 1500 type veth peer name "$if2" mtu 1500 \
    netns "$ns2" || return
  _esp_run ip -n "$ns1" link set "$if1" up || return
  _esp_run ip -n "$ns2" link set "$if2" up
}

_esp_lab_build() {
  local r ns
  for r in "${ESP_LAB_ROLES[@]}"; do
    ns=$ESP_LAB_PREFIX$r
    _esp_run ip netns add "$ns" || return
    _esp_run ip -n "$ns" link set lo up || return
    # Before the veths exist, so they (and later TUNs) inherit it.
    _esp_sysctl "$ns" net.ipv4.conf.all.rp_filter=0 || return
    _esp_sysctl "$ns" net.ipv4.conf.default.rp_filter=0 || return
    if [ "${ESP_LAB_IPV6:-0}" != 1 ] && [ -d /proc/sys/net/ipv6 ]; then
      _esp_sysctl "$ns" net.ipv6.conf.all.disable_ipv6=1 || return
      _esp_sysctl "$ns" net.ipv6.conf.default.disable_ipv6=1 || return
    fi
  done
  _esp_veth "$ESP_LAB_H1" "$ESP_LAB_HOST_IF" "$ESP_LAB_G1" "$ESP_LAB_LAN_IF" || return
  _esp_veth "$ESP_LAB_G1" "$ESP_LAB_WAN_IF" "$ESP_LAB_G2" "$ESP_LAB_WAN_IF" || return
  _esp_veth "$ESP_LAB_G2" "$ESP_LAB_LAN_IF" "$ESP_LAB_H2" "$ESP_LAB_HOST_IF" || return

  _esp_run ip -n "$ESP_LAB_H1" addr add "$ESP_LAB_H1_IP/24" dev "$ESP_LAB_HOST_IF" || return
  _esp_run ip -n "$ESP_LAB_G1" addr add "$ESP_LAB_G1_LAN_IP/24" dev "$ESP_LAB_LAN_IF" || return
  _esp_run ip -n "$ESP_LAB_G1" addr add "$ESP_LAB_G1_WAN_IP/24" dev "$ESP_LAB_WAN_IF" || return
  _esp_run ip -n "$ESP_LAB_G2" addr add "$ESP_LAB_G2_WAN_IP/24" dev "$ESP_LAB_WAN_IF" || return
  _esp_run ip -n "$ESP_LAB_G2" addr add "$ESP_LAB_G2_LAN_IP/24" dev "$ESP_LAB_LAN_IF" || return
  _esp_run ip -n "$ESP_LAB_H2" addr add "$ESP_LAB_H2_IP/24" dev "$ESP_LAB_HOST_IF" || return

  for ns in "$ESP_LAB_G1" "$ESP_LAB_G2"; do
    _esp_sysctl "$ns" net.ipv4.ip_forward=1 || return
    # The per-interface value counts too (the maximum of all and dev wins).
    for r in "$ESP_LAB_LAN_IF" "$ESP_LAB_WAN_IF"; do
      _esp_sysctl "$ns" "net.ipv4.conf.$r.rp_filter=0" || return
    done
  done
  _esp_run ip -n "$ESP_LAB_H1" route add default via "$ESP_LAB_G1_LAN_IP" || return
  _esp_run ip -n "$ESP_LAB_H2" route add default via "$ESP_LAB_G2_LAN_IP" || return
  [ "${ESP_LAB_IPV6:-0}" = 1 ] || return 0
  _esp_lab_build_v6
}

_esp_addr6() { _esp_run ip -n "$1" -6 addr add "$2/64" dev "$3" nodad; }

_esp_lab_build_v6() {
  local ns
  _esp_addr6 "$ESP_LAB_H1" "$ESP_LAB_H1_IP6" "$ESP_LAB_HOST_IF" || return
  _esp_addr6 "$ESP_LAB_G1" "$ESP_LAB_G1_LAN_IP6" "$ESP_LAB_LAN_IF" || return
  _esp_addr6 "$ESP_LAB_G1" "$ESP_LAB_G1_WAN_IP6" "$ESP_LAB_WAN_IF" || return
  _esp_addr6 "$ESP_LAB_G2" "$ESP_LAB_G2_WAN_IP6" "$ESP_LAB_WAN_IF" || return
  _esp_addr6 "$ESP_LAB_G2" "$ESP_LAB_G2_LAN_IP6" "$ESP_LAB_LAN_IF" || return
  _esp_addr6 "$ESP_LAB_H2" "$ESP_LAB_H2_IP6" "$ESP_LAB_HOST_IF" || return
  for ns in "$ESP_LAB_G1" "$ESP_LAB_G2"; do
    _esp_sysctl "$ns" net.ipv6.conf.all.forwarding=1 || return
  done
  _esp_run ip -n "$ESP_LAB_H1" -6 route add default via "$ESP_LAB_G1_LAN_IP6" || return
  _esp_run ip -n "$ESP_LAB_H2" -6 route add default via "$ESP_LAB_G2_LAN_IP6"
}

esp_lab_up() {
  local p=$1
  esp_lab_vars "$p" || return
  esp_lab_down "$p" || return
  esp_lab_vars "$p"
  if ! _esp_lab_build; then
    _esp_log "building topology $p failed; removing it"
    esp_lab_down "$p"
    return 1
  fi
}

esp_lab_plain_routes() {
  esp_lab_vars "$1" || return
  _esp_run ip -n "$ESP_LAB_G1" route replace "$ESP_LAB_NET2" via "$ESP_LAB_G2_WAN_IP" || return
  _esp_run ip -n "$ESP_LAB_G2" route replace "$ESP_LAB_NET1" via "$ESP_LAB_G1_WAN_IP"
}

esp_lab_ping() {
  local timeout=${2:-5} deadline
  esp_lab_vars "$1" || return
  deadline=$(($(_esp_now_ms) + timeout * 1000))
  until ip netns exec "$ESP_LAB_H1" ping -c 1 -W 1 -q "$ESP_LAB_H2_IP" >/dev/null 2>&1; do
    if [ "$(_esp_now_ms)" -ge "$deadline" ]; then
      _esp_log "h1 cannot ping h2 ($ESP_LAB_H2_IP) within ${timeout}s"
      return 1
    fi
    sleep 0.2
  done
}

# _esp_key_len ALG: key bytes for an encryption or integrity keyword (GCM
# keys include the 4-byte salt); fails for an unknown keyword.
_esp_key_len() {
  case $1 in
    aes128gcm16) echo 20 ;;
    aes256gcm16) echo 36 ;;
    aes128 | sm4 | md5) echo 16 ;;
    aes192 | 3des) echo 24 ;;
    aes256 | sha256 | sm3) echo 32 ;;
    des) echo 8 ;;
    sha1) echo 20 ;;
    sha384) echo 48 ;;
    sha512) echo 64 ;;
    null | none) echo 0 ;;
    *) return 1 ;;
  esac
}

_esp_rand_hex() {
  [ "$1" -gt 0 ] || return 0
  openssl rand -hex "$1"
}

# _esp_sa_yaml NAME DIRECTION SPI LOCAL REMOTE ENCR INTEG ENCAP EKEY IKEY:
# one entry of `sas:` (keys as bare hex; omitted when empty).
_esp_sa_yaml() {
  local name=$1 direction=$2 spi=$3 local=$4 remote=$5 encr=$6 integ=$7 encap=$8 ek=$9 ik=${10}
  echo "  - name: $name"
  echo "    direction: $direction"
  echo "    spi: $spi"
  echo "    local: $local"
  echo "    remote: $remote"
  echo "    encap: $encap"
  [ "$encap" != udp ] || echo "    remote_port: $ESP_LAB_UDP_PORT"
  # Quoted: a bare `null` is YAML's null, not the algorithm's name.
  echo "    encr: \"$encr\""
  echo "    integ: \"$integ\""
  [ -z "$ek" ] || echo "    encr_key: \"0x$ek\""
  [ -z "$ik" ] || echo "    integ_key: \"0x$ik\""
  if [ "${ESP_LAB_ESN:-0}" = 1 ]; then echo "    esn: true"; else echo "    esn: false"; fi
  echo "    replay_window: 1024"
}

# _esp_config_yaml LOCAL REMOTE SRCS DSTS OUT_SPI OUT_EKEY OUT_IKEY IN_SPI IN_EKEY
#   IN_IKEY ENCR INTEG ENCAP: a whole xgw-esp-static config on stdout; SRCS
#   and DSTS are space-separated lists of the same length (one policy each).
_esp_config_yaml() {
  local local=$1 remote=$2 ospi=$5 oek=$6 oik=$7 ispi=$8 iek=$9 iik=${10}
  local encr=${11} integ=${12} encap=${13} srcs dsts i
  read -ra srcs <<<"$3"
  read -ra dsts <<<"$4"
  echo "# written by tests/lib/esp_lab.sh (esp_static_pair_configs)"
  echo "tun: $ESP_LAB_TUN"
  echo "mtu: $ESP_LAB_TUN_MTU"
  [ -z "${ESP_LAB_WORKERS:-}" ] || echo "workers: $ESP_LAB_WORKERS"
  [ -z "${ESP_LAB_DEVICE:-}" ] || echo "device: $ESP_LAB_DEVICE"
  echo "udp_port: $ESP_LAB_UDP_PORT"
  echo "sas:"
  _esp_sa_yaml out1 out "$ospi" "$local" "$remote" "$encr" "$integ" "$encap" "$oek" "$oik"
  _esp_sa_yaml in1 in "$ispi" "$local" "$remote" "$encr" "$integ" "$encap" "$iek" "$iik"
  echo "policies:"
  for i in "${!srcs[@]}"; do
    echo "  - src: ${srcs[$i]}"
    echo "    dst: ${dsts[$i]}"
    echo "    sa: out1"
  done
}

esp_static_pair_configs() {
  local dir=$1 encr=$2 integ=${3:-none} encap=${4:-udp} ekl ikl ek12 ek21 ik12 ik21
  local outer=${ESP_LAB_OUTER:-4} inner=${ESP_LAB_INNER:-4} w1 w2 f n1="" n2=""
  if [ -z "$dir" ] || [ -z "$encr" ]; then
    _esp_log "usage: esp_static_pair_configs DIR ENCR [INTEG [ENCAP]]"
    return 2
  fi
  case $encr in
    aes128gcm16 | aes256gcm16 | aes128 | aes192 | aes256 | 3des | des | sm4 | null)
      ekl=$(_esp_key_len "$encr")
      ;;
    *) _esp_log "unknown encr '$encr'"; return 2 ;;
  esac
  case $integ in
    none | md5 | sha1 | sha256 | sha384 | sha512 | sm3) ikl=$(_esp_key_len "$integ") ;;
    *) _esp_log "unknown integ '$integ'"; return 2 ;;
  esac
  case $encap in
    udp | none) ;;
    *) _esp_log "encap must be udp or none, not '$encap'"; return 2 ;;
  esac
  case $encr in
    *gcm*)
      [ "$integ" = none ] || { _esp_log "$encr is AEAD: integ must be none"; return 2; }
      ;;
  esac
  case $outer in
    4) w1=$ESP_LAB_G1_WAN_IP w2=$ESP_LAB_G2_WAN_IP ;;
    6) w1=$ESP_LAB_G1_WAN_IP6 w2=$ESP_LAB_G2_WAN_IP6 ;;
    *) _esp_log "ESP_LAB_OUTER must be 4 or 6, not '$outer'"; return 2 ;;
  esac
  for f in $inner; do
    case $f in
      4) n1+=" $ESP_LAB_NET1" n2+=" $ESP_LAB_NET2" ;;
      6) n1+=" $ESP_LAB_NET1_V6" n2+=" $ESP_LAB_NET2_V6" ;;
      *) _esp_log "ESP_LAB_INNER must list 4 and/or 6, not '$inner'"; return 2 ;;
    esac
  done
  [ -n "$n1" ] || { _esp_log "ESP_LAB_INNER is empty"; return 2; }
  command -v openssl >/dev/null || { _esp_log "openssl missing"; return 1; }
  mkdir -p "$dir" || return
  ek12=$(_esp_rand_hex "$ekl") && ek21=$(_esp_rand_hex "$ekl") &&
    ik12=$(_esp_rand_hex "$ikl") && ik21=$(_esp_rand_hex "$ikl") || return
  # Created private before any key is written.
  (umask 077 && : >"$dir/g1.yaml" && : >"$dir/g2.yaml" && : >"$dir/keys.env") || return

  _esp_config_yaml "$w1" "$w2" "$n1" "$n2" \
    "$ESP_LAB_SPI_G1_G2" "$ek12" "$ik12" "$ESP_LAB_SPI_G2_G1" "$ek21" "$ik21" \
    "$encr" "$integ" "$encap" >"$dir/g1.yaml" || return
  _esp_config_yaml "$w2" "$w1" "$n2" "$n1" \
    "$ESP_LAB_SPI_G2_G1" "$ek21" "$ik21" "$ESP_LAB_SPI_G1_G2" "$ek12" "$ik12" \
    "$encr" "$integ" "$encap" >"$dir/g2.yaml" || return
  # Keys as 0x-prefixed hex, empty when the algorithm takes none.
  cat >"$dir/keys.env" <<EOF
# written by tests/lib/esp_lab.sh: the static SAs of g1.yaml / g2.yaml
ESP_ENCR=$encr
ESP_INTEG=$integ
ESP_ENCAP=$encap
ESP_UDP_PORT=$ESP_LAB_UDP_PORT
ESP_ESN=${ESP_LAB_ESN:-0}
ESP_OUTER=$outer
ESP_INNER="$inner"
ESP_G1_WAN_IP=$w1
ESP_G2_WAN_IP=$w2
ESP_SPI_G1_G2=$ESP_LAB_SPI_G1_G2
ESP_ENCR_KEY_G1_G2=${ek12:+0x$ek12}
ESP_INTEG_KEY_G1_G2=${ik12:+0x$ik12}
ESP_SPI_G2_G1=$ESP_LAB_SPI_G2_G1
ESP_ENCR_KEY_G2_G1=${ek21:+0x$ek21}
ESP_INTEG_KEY_G2_G1=${ik21:+0x$ik21}
EOF
}

# _esp_static_ready NS CONFIG: the TUN is up and every policy dst routes via it.
_esp_static_ready() {
  local ns=$1 cfg=$2 tun dst fam
  tun=$(awk '$1 == "tun:" { gsub(/"/, "", $2); print $2; exit }' "$cfg")
  [ -n "$tun" ] || return 1
  ip -n "$ns" link show dev "$tun" 2>/dev/null | grep -q '[<,]UP[,>]' || return 1
  # shellcheck disable=SC2013 # CIDRs, one word each
  for dst in $(awk '$1 == "dst:" || ($1 == "-" && $2 == "dst:") { print $NF }' "$cfg"); do
    dst=${dst//\"/}
    # `ip route show` lists one family only (IPv4 unless told).
    if [[ $dst == *:* ]]; then fam=-6; else fam=-4; fi
    ip -n "$ns" "$fam" route show "$dst" 2>/dev/null | grep -q "dev $tun" || return 1
  done
  if grep -qE '^[[:space:]]*encap:[[:space:]]*udp' "$cfg"; then
    local port
    port=$(awk '$1 == "udp_port:" { print $2; exit }' "$cfg")
    [ -z "$port" ] || [ -n "$(ip netns exec "$ns" ss -Hlun "sport = :$port" 2>/dev/null)" ] ||
      return 1
  fi
}

esp_static_start() {
  local ns=$1 cfg=$2 stats=$3 timeout=${ESP_STATIC_START_TIMEOUT:-10} pid log deadline
  ESP_STATIC_PID=
  if [ -z "$ns" ] || [ -z "$cfg" ] || [ -z "$stats" ]; then
    _esp_log "usage: esp_static_start NS CONFIG STATSFILE"
    return 2
  fi
  [ -x "$ESP_STATIC_BIN" ] || { _esp_log "$ESP_STATIC_BIN missing (build xgw-esp-static)"; return 1; }
  [ -r "$cfg" ] || { _esp_log "cannot read $cfg"; return 1; }
  log=${cfg%.yaml}.log
  ip netns exec "$ns" "$ESP_STATIC_BIN" --config "$cfg" --stats-file "$stats" \
    >"$log" 2>&1 </dev/null &
  pid=$!
  ESP_STATIC_PIDS+=("$pid")
  deadline=$(($(_esp_now_ms) + timeout * 1000))
  until _esp_static_ready "$ns" "$cfg"; do
    if ! _esp_alive "$pid"; then
      _esp_log "xgw-esp-static ($cfg) exited during start-up"
      tail -n 20 "$log" | sed 's/^/    /' >&2
      return 1
    fi
    if [ "$(_esp_now_ms)" -ge "$deadline" ]; then
      _esp_log "xgw-esp-static ($cfg) not ready after ${timeout}s (TUN up, routes, UDP port)"
      tail -n 20 "$log" | sed 's/^/    /' >&2
      esp_static_stop "$pid"
      return 1
    fi
    sleep 0.1
  done
  ESP_STATIC_PID=$pid
}

esp_static_stats() {
  local pid=$1 stats=$2 timeout=${3:-5} deadline
  _esp_alive "$pid" || { _esp_log "xgw-esp-static $pid is not running"; return 1; }
  rm -f "$stats"
  kill -USR1 "$pid" || return
  deadline=$(($(_esp_now_ms) + timeout * 1000))
  # Complete once it parses (the writer may not be atomic).
  until [ -s "$stats" ] && python3 -c 'import json,sys; json.load(open(sys.argv[1]))' \
    "$stats" 2>/dev/null; do
    if [ "$(_esp_now_ms)" -ge "$deadline" ]; then
      _esp_log "no stats JSON in $stats ${timeout}s after SIGUSR1"
      return 1
    fi
    sleep 0.1
  done
}

esp_static_stop() {
  local pids=("$@") pid left rc=0
  [ $# -gt 0 ] || pids=("${ESP_STATIC_PIDS[@]}")
  left=()
  for pid in "${pids[@]}"; do
    _esp_alive "$pid" || continue
    # Never signal a recycled PID.
    [ "$(cat "/proc/$pid/comm" 2>/dev/null)" = xgw-esp-static ] || continue
    kill -TERM "$pid" 2>/dev/null && left+=("$pid")
  done
  for pid in "${left[@]}"; do
    for _ in $(seq 50); do
      _esp_alive "$pid" || break
      sleep 0.1
    done
    if _esp_alive "$pid"; then
      _esp_log "xgw-esp-static $pid ignored SIGTERM for 5 s; killing it"
      kill -KILL "$pid" 2>/dev/null
      rc=1
    fi
    wait "$pid" 2>/dev/null
  done
  return "$rc"
}
