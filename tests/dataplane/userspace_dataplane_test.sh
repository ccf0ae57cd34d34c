#!/usr/bin/env bash
# Runs dataplane_userspace_tests (the userspace ESP engine with a real TUN
# device and sockets) in a fresh, unnamed network namespace that vanishes
# with the process. Not root: skipped (77), or a failure under
# XGW_REQUIRE_PRIVILEGED=1.
set -u
bin=${1:?usage: userspace_dataplane_test.sh TEST_BINARY [GTEST_ARGS...]}
shift
# shellcheck source=../lib/privileged.sh
. "$(dirname "$0")/../lib/privileged.sh"
xgw_require_root
command -v unshare >/dev/null || { echo "FAIL: unshare (util-linux) is missing" >&2; exit 1; }
command -v ip >/dev/null || { echo "FAIL: ip (iproute2) is missing" >&2; exit 1; }
[ -c /dev/net/tun ] || { echo "FAIL: /dev/net/tun is missing" >&2; exit 1; }
exec unshare --net -- "$bin" "$@"
