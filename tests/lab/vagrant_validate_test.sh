#!/usr/bin/env bash
# vagrant/Vagrantfile is valid: `vagrant validate` with the libvirt
# provider's checks (vagrant-libvirt), and without provider checks (the
# VirtualBox provider needs VBoxManage to validate); a copy with a
# misspelt provider setting must fail (the check has teeth). vagrant
# missing: skipped (77), or a failure under XGW_REQUIRE_PRIVILEGED=1
# (scripts/test installs it).
set -uo pipefail
here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
vfile=$(cd "$here/../../vagrant" && pwd)/Vagrantfile
# shellcheck source=../lib/checks.sh
. "$here/../lib/checks.sh"
if ! command -v vagrant >/dev/null; then
  if [ "${XGW_REQUIRE_PRIVILEGED:-0}" = 1 ]; then
    echo "FAIL: vagrant missing (scripts/install-deps)"
    exit 1
  fi
  echo "SKIP: vagrant missing (scripts/install-deps)"
  exit 77
fi
tmp=$(mktemp -d)
trap 'rm -rf "$tmp"' EXIT
# A private Vagrant home: no state or plugin updates leak in or out.
export VAGRANT_HOME=$tmp/home VAGRANT_CHECKPOINT_DISABLE=1 VAGRANT_VAGRANTFILE=$vfile
cd "$tmp" || exit 1
if vagrant plugin list 2>/dev/null | grep -q vagrant-libvirt; then
  expect_ok "vagrant validate (libvirt provider)" env VAGRANT_DEFAULT_PROVIDER=libvirt vagrant validate
  sed 's/lv.memory = GW_MEMORY/lv.memroy = GW_MEMORY/' "$vfile" >"$tmp/Vagrantfile.bad"
  expect_fail "a misspelt libvirt setting fails validation" \
    env VAGRANT_DEFAULT_PROVIDER=libvirt VAGRANT_VAGRANTFILE="$tmp/Vagrantfile.bad" vagrant validate
else
  echo "note: vagrant-libvirt not installed; provider settings unchecked"
fi
expect_ok "vagrant validate --ignore-provider" vagrant validate --ignore-provider
out=$(vagrant status 2>&1)
for vm in gw-a gw-b client; do
  check "machine $vm defined" grep -q "^$vm " <<<"$out"
done
checks_done
