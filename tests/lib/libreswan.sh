# shellcheck shell=bash
# libreswan's pluto (Debian 4.10) as an IKEv1 interop peer in a network
# namespace. Debian's libreswan package conflicts with strongSwan's, so it
# is never installed: lsw_prepare `apt-get download`s it (Debian's archive
# only) into /var/cache/xgw-libreswan and unpacks it there; its runtime
# libraries (libldns3, libevent-pthreads, NSS) come from scripts/install-deps.
# pluto runs in a private mount namespace where the unpacked
# /usr/libexec/ipsec and a per-instance /run are bind-mounted, so it finds
# its helpers and keeps its control socket to itself. Here the kernel has
# no ESP: pluto completes IKE but cannot install ESP SAs (LAB-NOTES), so
# this peer checks phase 1 only.
#
#   lsw_prepare                        prints the unpacked root (or fails)
#   lsw_start NETNS DIR CONF SECRETS   start pluto; returns once it listens
#   lsw_add DIR CONN                   addconn from DIR/ipsec.conf
#   lsw_whack DIR ARGS...              whack on DIR's control socket
#   lsw_stop DIR                       stop it (idempotent)

LSW_CACHE=${LSW_CACHE:-/var/cache/xgw-libreswan}

lsw_prepare() {
  local root=$LSW_CACHE/root deb
  if [ ! -x "$root/usr/libexec/ipsec/pluto" ]; then
    mkdir -p "$LSW_CACHE/debs" || return 1
    (cd "$LSW_CACHE/debs" && apt-get download -q -o APT::Sandbox::User=root libreswan >&2) ||
      echo "libreswan.sh: apt-get download libreswan failed; trying the cache" >&2
    deb=$(ls -t "$LSW_CACHE"/debs/libreswan_*.deb 2>/dev/null | head -n1)
    [ -n "$deb" ] || { echo "libreswan.sh: no libreswan package" >&2; return 1; }
    rm -rf "$root.tmp" && dpkg -x "$deb" "$root.tmp" && mv "$root.tmp" "$root" || return 1
  fi
  if ldd "$root/usr/libexec/ipsec/pluto" | grep -q "not found"; then
    echo "libreswan.sh: pluto misses libraries (scripts/install-deps):" >&2
    ldd "$root/usr/libexec/ipsec/pluto" | grep "not found" >&2
    return 1
  fi
  echo "$root"
}

lsw_start() {  # netns dir conf secrets
  local ns=$1 dir=$2 root
  root=$(lsw_prepare) || return 1
  mkdir -p "$dir/nss" "$dir/run/pluto"
  cp "$3" "$dir/ipsec.conf"
  cp "$4" "$dir/ipsec.secrets"
  chmod 600 "$dir/ipsec.secrets"
  certutil -N -d "sql:$dir/nss" --empty-password || return 1
  echo "$ns" >"$dir/netns"
  echo "$root" >"$dir/root"
  ip netns exec "$ns" unshare -m sh -c "mount --make-rprivate / &&
    mount --bind '$root/usr/libexec' /usr/libexec && mount --bind '$dir/run' /run &&
    exec /usr/libexec/ipsec/pluto --nofork --config '$dir/ipsec.conf' \
      --secretsfile '$dir/ipsec.secrets' --nssdir '$dir/nss' --logfile '$dir/pluto.log'" \
    >"$dir/pluto.out" 2>&1 &
  echo $! >"$dir/pid"
  for _ in $(seq 100); do
    [ -S "$dir/run/pluto/pluto.ctl" ] && lsw_whack "$dir" --listen >/dev/null 2>&1 && return 0
    sleep 0.1
  done
  echo "libreswan.sh: pluto did not start" >&2
  tail -5 "$dir/pluto.out" >&2
  return 1
}

lsw_whack() {
  local dir=$1
  shift
  ip netns exec "$(cat "$dir/netns")" "$(cat "$dir/root")/usr/libexec/ipsec/whack" \
    --ctlsocket "$dir/run/pluto/pluto.ctl" "$@"
}

lsw_add() {
  ip netns exec "$(cat "$1/netns")" "$(cat "$1/root")/usr/libexec/ipsec/addconn" \
    --config "$1/ipsec.conf" --ctlsocket "$1/run/pluto/pluto.ctl" "$2"
}

lsw_stop() {
  local dir=$1 pid
  [ -f "$dir/pid" ] || return 0
  pid=$(cat "$dir/pid")
  lsw_whack "$dir" --shutdown >/dev/null 2>&1 || true
  for _ in $(seq 30); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  kill -KILL "$pid" 2>/dev/null || true
  rm -f "$dir/pid"
}
