# shellcheck shell=bash
# Check helpers for shell tests: every check prints one line, failures are
# counted, and checks_done exits non-zero if any failed.
failures=0
pass() { echo "ok   - $*"; }
fail() {
  echo "FAIL - $*"
  failures=$((failures + 1))
}
# check DESCRIPTION CMD...: CMD runs in this shell (may set variables).
check() {
  local what=$1
  shift
  if "$@"; then pass "$what"; else fail "$what"; fi
}
# expect_ok DESCRIPTION CMD...: CMD must succeed; its output is shown if not.
expect_ok() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    pass "$what"
  else
    fail "$what"
    printf '%s\n' "$out" | sed 's/^/    /'
  fi
}
# expect_fail DESCRIPTION CMD...: CMD must fail.
expect_fail() {
  local what=$1 out
  shift
  if out=$("$@" 2>&1); then
    fail "$what (unexpectedly succeeded)"
    printf '%s\n' "$out" | sed 's/^/    /'
  else
    pass "$what"
  fi
}
# expect_eq DESCRIPTION GOT WANT
expect_eq() {
  if [ "$2" = "$3" ]; then pass "$1 ($2)"; else fail "$1: got '$2', want '$3'"; fi
}
checks_done() {
  if [ "$failures" -ne 0 ]; then
    echo "$failures check(s) failed"
    exit 1
  fi
  echo "all checks passed"
}
