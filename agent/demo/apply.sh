#!/usr/bin/env bash
# The second half of make demo: apply an advisory, verified, with rollback.
#
# pkg/rpmtest/cmd/demorepo makes a throwaway Ed25519 signing key, a signed
# repository holding the real ALSA-2023:3722 (openssl, CVE-2023-2650) as
# updateinfo.xml with stub packages of the fixed and the installed versions,
# and a device root of this machine's arch with the old versions installed
# by the real rpm. The agent then applies the advisory twice: once with a
# health check that fails (it rolls back), once with one that passes.
set -euo pipefail
cd "$(dirname "$0")/../.."
demo=agent/demo
work=.demo/apply
agent=bin/rpmfleet-agent
rm -rf "$work"
go run ./pkg/rpmtest/cmd/demorepo -osv "$demo/almalinux9.jsonl.gz" -advisory ALSA-2023:3722 \
  -device-release "$demo/almalinux-9.2-host.os-release" -arch "$(uname -m)" -out "$work" >/dev/null
root=$work/device
args=(--root "$root" --repo "$work/repo" --gpgkey "$work/RPM-GPG-KEY-demo" --advisory ALSA-2023:3722 --state-dir "$work/state")
show() { echo; echo "==> $*"; }
export RPMFLEET_LOG=warn

show "rpmfleet-agent apply ${args[*]} --dry-run"
"$agent" apply "${args[@]}" --dry-run

show "rpmfleet-agent apply ... --health-check false      (a health check that fails: the update is rolled back)"
"$agent" apply "${args[@]}" --health-check false || echo "(exit code $?: 3 means rolled back)"
echo "installed now: $(rpm --root "$PWD/$root" --dbpath /var/lib/rpm -q openssl-libs)"

show "rpmfleet-agent apply ... --health-check 'test -s $root/usr/share/rpmfleet-demo/openssl-libs.txt'"
"$agent" apply "${args[@]}" --health-check "test -s $root/usr/share/rpmfleet-demo/openssl-libs.txt"
echo "installed now: $(rpm --root "$PWD/$root" --dbpath /var/lib/rpm -q openssl-libs)"

show "rpmfleet-agent history --state-dir $work/state"
"$agent" history --state-dir "$work/state"

show "rpmfleet-agent check --root $root --advisories $work/repo"
"$agent" check --root "$root" --advisories "$work/repo"
