# shellcheck shell=bash
# strongSwan (charon + swanctl) as an interop peer inside a network namespace.
# Source it from bash (needs root, strongswan-charon, strongswan-swanctl,
# libcharon-extra-plugins, util-linux for unshare):
#
#   . tests/lib/strongswan.sh
#   trap 'ss_stop_all' EXIT                 # or call it from your own trap
#   ss_start gwA "$NS" "$tmp/ss-gwA" "" || exit 1
#   ss_load gwA "$tmp/ss-gwA" "$tmp/gwA.swanctl.conf" || exit 1
#   ss_initiate gwA "$tmp/ss-gwA" net || exit 1
#   ss_wait_child_installed "$tmp/ss-gwA" net 10 || exit 1
#   ss_stop "$tmp/ss-gwA"
#
# Each instance is one charon in its own namespace and state directory DIR
# (an absolute path without whitespace; created if missing):
#   DIR/strongswan.conf   written by ss_start; nothing from /etc is read
#   DIR/run/              bind-mounted on /run in charon's private mount
#                         namespace: charon.pid and charon.vici live here, so
#                         several charons (and a system one) never collide
#   DIR/charon.log        charon's file log (ike and knl at level 2; SS_LOG_IKE
#                         raises ike, e.g. to 4 for key material)
#   DIR/charon.out        charon's stdout/stderr
#   DIR/swanctl.log       output of the last ss_load / ss_initiate
#   DIR/netns, DIR/bgpid  the namespace and the PID started there
#
# The kernel has no ESP, so charon uses kernel-libipsec (userspace ESP on a
# TUN device, loaded before kernel-netlink); in 5.9.8 that always
# UDP-encapsulates ESP on port 4500. libipsec refuses traffic selectors that
# contain the IKE peer addresses: use inner subnets behind the gateways.
#
# Functions (all return non-zero with a message on stderr on failure):
#   ss_start NAME NETNS DIR [CHARON_EXTRA_SETTINGS]
#       write DIR/strongswan.conf and start charon in NETNS; returns once the
#       vici socket answers (timeout SS_START_TIMEOUT, default 15 s).
#       CHARON_EXTRA_SETTINGS is text placed inside the charon { } section,
#       e.g. "i_dont_care_about_security_and_use_aggressive_mode_psk = yes"
#       or "block_threshold = 1000  cookie_threshold = 2000". A charon still
#       running from DIR is stopped first.
#   ss_load NAME DIR SWANCTL_CONF_FILE   swanctl --load-all from that file
#   ss_initiate NAME DIR CHILD [TIMEOUT] swanctl --initiate --child CHILD
#                                        (TIMEOUT s, default 20)
#   ss_wait_child_installed DIR CHILD TIMEOUT
#                                        poll until CHILD is INSTALLED
#   ss_swanctl DIR ARGS...               swanctl ARGS --uri <DIR's socket>
#   ss_pid DIR                           print the running charon's PID
#   ss_running DIR                       true if DIR's charon is alive
#   ss_stop DIR                          stop DIR's charon (TERM, then KILL
#                                        after SS_STOP_TIMEOUT s, default 5);
#                                        idempotent, safe in traps
#   ss_stop_all                          ss_stop every DIR this shell started
#
# Liveness: this sandbox's PID 1 does not reap orphans, so an exited charon
# can linger as a zombie that still answers `kill -0`; every check here reads
# /proc/PID/status instead, and only PIDs whose command is charon and whose
# network namespace is DIR's are ever signalled (never a system charon).

SS_CHARON=${SS_CHARON:-/usr/lib/ipsec/charon}
SS_SWANCTL=${SS_SWANCTL:-swanctl}
# Plugins charon loads (load_modular = no). The LAB-NOTES core plus a few
# algorithm plugins future interop tests may negotiate (CTR, CCM, XCBC, CMAC,
# ChaCha20-Poly1305).
SS_PLUGINS=${SS_PLUGINS:-random nonce openssl aes sha1 sha2 md5 hmac gcm ctr ccm xcbc cmac chapoly gmp curve25519 kdf pem pkcs1 x509 pubkey kernel-libipsec kernel-netlink socket-default vici updown}
# DIRs started by this shell, for ss_stop_all.
SS_DIRS=()

_ss_log() { echo "strongswan.sh: $*" >&2; }

# Milliseconds on the wall clock ($SECONDS ticks whole seconds only).
_ss_now_ms() {
  local t=${EPOCHREALTIME//[!0-9]/}
  echo $((t / 1000))
}

_ss_uri() { echo "unix://$1/run/charon.vici"; }

# _ss_alive PID: the process exists and is not a zombie.
_ss_alive() {
  local pid=$1 state
  [[ $pid =~ ^[0-9]+$ ]] || return 1
  state=$(awk '/^State:/ { print $2; exit }' "/proc/$pid/status" 2>/dev/null) || return 1
  [ -n "$state" ] && [ "$state" != Z ] && [ "$state" != X ]
}

# _ss_is_ours PID DIR: PID is a live charon in DIR's network namespace.
_ss_is_ours() {
  local pid=$1 dir=$2 ns comm want got
  _ss_alive "$pid" || return 1
  comm=$(cat "/proc/$pid/comm" 2>/dev/null) || return 1
  [ "$comm" = charon ] || return 1
  ns=$(cat "$dir/netns" 2>/dev/null) || return 1
  want=$(stat -L -c %i "/run/netns/$ns" 2>/dev/null) || return 1
  got=$(stat -L -c %i "/proc/$pid/ns/net" 2>/dev/null) || return 1
  [ "$want" = "$got" ]
}

# _ss_pids DIR: candidate PIDs (ours and alive), one per line, no duplicates.
_ss_pids() {
  local dir=$1 f pid
  for f in "$dir/bgpid" "$dir/run/charon.pid"; do
    [ -r "$f" ] || continue
    # charon removes its pidfile as it exits: the read may race with that.
    pid=$(tr -dc '0-9' 2>/dev/null <"$f")
    _ss_is_ours "$pid" "$dir" && echo "$pid"
  done | sort -u
}

ss_pid() {
  local pids
  pids=$(_ss_pids "$1")
  [ -n "$pids" ] || return 1
  echo "$pids" | head -n 1
}

ss_running() { [ -n "$(_ss_pids "$1")" ]; }

ss_swanctl() {
  local dir=$1
  shift
  # swanctl reads strongswan.conf only for its own plugin list; point it at
  # ours so a system /etc/strongswan.conf cannot change its behaviour.
  STRONGSWAN_CONF=$dir/strongswan.conf "$SS_SWANCTL" "$@" --uri "$(_ss_uri "$dir")"
}

_ss_write_conf() {
  local dir=$1 extra=$2
  cat >"$dir/strongswan.conf" <<EOF
# written by tests/lib/strongswan.sh; standalone (includes nothing from /etc)
charon {
  load_modular = no
  load = $SS_PLUGINS
  plugins {
    kernel-libipsec {
      load = yes
    }
    vici {
      socket = $(_ss_uri "$dir")
    }
  }
  filelog {
    ss {
      path = $dir/charon.log
      time_format = %H:%M:%S
      default = 1
      ike = ${SS_LOG_IKE:-2}
      knl = 2
      cfg = 2
      flush_line = yes
    }
  }
  syslog {
    daemon {
      default = -1
    }
  }
$extra
}
EOF
}

ss_start() {
  local name=$1 ns=$2 dir=$3 extra=${4:-} timeout=${SS_START_TIMEOUT:-15} pid deadline
  if [ -z "$name" ] || [ -z "$ns" ] || [ -z "$dir" ]; then
    _ss_log "usage: ss_start NAME NETNS DIR [CHARON_EXTRA_SETTINGS]"
    return 2
  fi
  [ -x "$SS_CHARON" ] || { _ss_log "$SS_CHARON missing (strongswan-charon)"; return 1; }
  command -v "$SS_SWANCTL" >/dev/null || { _ss_log "swanctl missing (strongswan-swanctl)"; return 1; }
  [ -e "/run/netns/$ns" ] || { _ss_log "$name: no network namespace $ns"; return 1; }
  case $dir in
    /*) ;;
    *) dir=$(pwd)/$dir ;;
  esac
  if [[ $dir =~ [[:space:]] ]]; then
    _ss_log "$name: DIR must not contain whitespace: '$dir'"
    return 2
  fi
  mkdir -p "$dir/run" || return 1
  # A charon left from an earlier start with this DIR would hold the socket.
  [ -e "$dir/netns" ] && ss_stop "$dir"
  rm -f "$dir/run/charon.pid" "$dir/run/charon.vici" "$dir/charon.log" "$dir/charon.out" \
    "$dir/bgpid"
  _ss_write_conf "$dir" "$extra" || return 1
  echo "$ns" >"$dir/netns"
  echo "$name" >"$dir/name"
  SS_DIRS+=("$dir")

  # `ip netns exec` and `unshare` exec (no fork), and sh execs charon, so $!
  # is charon's PID. The private mount namespace gives this charon its own
  # /run (its pidfile path is compiled in).
  # shellcheck disable=SC2016 # expanded by the inner sh
  ip netns exec "$ns" unshare -m --propagation private sh -c \
    'mount --bind "$1/run" /run && STRONGSWAN_CONF="$1/strongswan.conf" exec "$2"' \
    sh "$dir" "$SS_CHARON" >"$dir/charon.out" 2>&1 </dev/null &
  pid=$!
  echo "$pid" >"$dir/bgpid"

  deadline=$(($(_ss_now_ms) + timeout * 1000))
  while :; do
    if ss_swanctl "$dir" --stats >/dev/null 2>&1; then
      return 0
    fi
    if ! _ss_alive "$pid"; then
      _ss_log "$name: charon exited during start-up"
      tail -n 20 "$dir/charon.out" "$dir/charon.log" 2>/dev/null | sed 's/^/    /' >&2
      return 1
    fi
    if [ "$(_ss_now_ms)" -ge "$deadline" ]; then
      _ss_log "$name: vici socket not answering after ${timeout}s"
      tail -n 20 "$dir/charon.out" "$dir/charon.log" 2>/dev/null | sed 's/^/    /' >&2
      ss_stop "$dir"
      return 1
    fi
    sleep 0.1
  done
}

# Without the credential directories swanctl looks for next to the file.
_ss_show_swanctl_log() {
  grep -v '^opening directory ' "$1/swanctl.log" | tail -n 30 | sed 's/^/    /' >&2
}

ss_load() {
  local name=$1 dir=$2 file=$3
  [ -r "$file" ] || { _ss_log "$name: cannot read $file"; return 1; }
  if ! ss_swanctl "$dir" --load-all --noprompt --file "$file" >"$dir/swanctl.log" 2>&1; then
    _ss_log "$name: swanctl --load-all --file $file failed"
    _ss_show_swanctl_log "$dir"
    return 1
  fi
  # Belt and braces over the exit status: any failure but the credential
  # directories swanctl looks for next to FILE (absent here, harmless).
  if grep -v '^opening directory ' "$dir/swanctl.log" | grep -qiE 'failed|error'; then
    _ss_log "$name: swanctl reported errors loading $file"
    _ss_show_swanctl_log "$dir"
    return 1
  fi
}

ss_initiate() {
  local name=$1 dir=$2 child=$3 timeout=${4:-20}
  if ! ss_swanctl "$dir" --initiate --child "$child" --timeout "$timeout" \
    >"$dir/swanctl.log" 2>&1; then
    _ss_log "$name: initiating CHILD_SA $child failed"
    _ss_show_swanctl_log "$dir"
    return 1
  fi
}

# ss_child_installed DIR CHILD: a CHILD_SA named CHILD is INSTALLED now.
ss_child_installed() {
  # swanctl --list-sas prints a CHILD_SA as
  #   "  CHILD: #1, reqid 1, INSTALLED, TUNNEL-in-UDP, ESP:AES_GCM_16-128"
  ss_swanctl "$1" --list-sas 2>/dev/null |
    grep -qE "^[[:space:]]+$2: #[0-9]+, reqid [0-9]+, INSTALLED,"
}

ss_wait_child_installed() {
  local dir=$1 child=$2 timeout=${3:-10} deadline
  deadline=$(($(_ss_now_ms) + timeout * 1000))
  until ss_child_installed "$dir" "$child"; do
    if [ "$(_ss_now_ms)" -ge "$deadline" ]; then
      _ss_log "$(cat "$dir/name" 2>/dev/null): CHILD_SA $child not installed after ${timeout}s"
      ss_swanctl "$dir" --list-sas 2>&1 | sed 's/^/    /' >&2
      return 1
    fi
    if ! ss_running "$dir"; then
      _ss_log "$(cat "$dir/name" 2>/dev/null): charon is not running"
      return 1
    fi
    sleep 0.1
  done
}

ss_stop() {
  local dir=$1 timeout=${SS_STOP_TIMEOUT:-5} pids pid deadline
  [ -n "$dir" ] && [ -d "$dir" ] || return 0
  pids=$(_ss_pids "$dir")
  if [ -n "$pids" ]; then
    for pid in $pids; do kill -TERM "$pid" 2>/dev/null; done
    deadline=$(($(_ss_now_ms) + timeout * 1000))
    while [ -n "$(_ss_pids "$dir")" ] && [ "$(_ss_now_ms)" -lt "$deadline" ]; do
      sleep 0.1
    done
    for pid in $(_ss_pids "$dir"); do
      _ss_log "$(cat "$dir/name" 2>/dev/null): charon $pid ignored SIGTERM; killing it"
      kill -KILL "$pid" 2>/dev/null
    done
    # Reap it if it is this shell's child (no-op otherwise).
    for pid in $pids; do wait "$pid" 2>/dev/null; done
  fi
  rm -f "$dir/bgpid" "$dir/run/charon.pid" "$dir/run/charon.vici"
  return 0
}

ss_stop_all() {
  local d
  for d in "${SS_DIRS[@]}"; do ss_stop "$d"; done
  return 0
}
