# Sourced by privileged shell tests. Exit code 77 is ctest's SKIP; under
# XGW_REQUIRE_PRIVILEGED=1 (scripts/test, CI) a skip becomes a failure.
xgw_require_root() {
  if [ "$(id -u)" -ne 0 ]; then
    if [ "${XGW_REQUIRE_PRIVILEGED:-0}" = 1 ]; then
      echo "FAIL: needs root (XGW_REQUIRE_PRIVILEGED=1)" >&2
      exit 1
    fi
    echo "SKIP: needs root" >&2
    exit 77
  fi
}
