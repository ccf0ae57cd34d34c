#!/usr/bin/env bash
# Runs dataplane_xfrm_tests (XfrmDataplane against the kernel) in a fresh,
# unnamed network namespace that vanishes with the process. Not root:
# skipped (77), or a failure under XGW_REQUIRE_PRIVILEGED=1. The XfrmEsp.*
# cases skip on a kernel without ESP (tests/lab/xfrm_vm_test.sh runs them).
set -u
bin=${1:?usage: xfrm_dataplane_test.sh TEST_BINARY [GTEST_ARGS...]}
shift
# shellcheck source=../lib/privileged.sh
. "$(dirname "$0")/../lib/privileged.sh"
xgw_require_root
command -v unshare >/dev/null || { echo "FAIL: unshare (util-linux) is missing" >&2; exit 1; }
command -v ip >/dev/null || { echo "FAIL: ip (iproute2) is missing" >&2; exit 1; }
exec unshare --net -- "$bin" "$@"
