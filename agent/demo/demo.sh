#!/usr/bin/env bash
# make demo: what rpmfleet-agent tells a real device.
#
# Builds a device root whose rpm database the real rpm writes, holding the
# real package set of a RHEL 9.0 aarch64 image (179 packages) under an
# AlmaLinux 9 os-release, then asks rpmfleet-agent which of the 1783 AlmaLinux
# 9 advisories apply to it; then applies one of them, ALSA-2023:3722, from a
# signed repository (agent/demo/apply.sh); and last the same with the agent
# running as a daemon, told by MQTT push and then by polling
# (agent/demo/push.sh). The device root is cached in .demo/.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The demo's data is the repository's real-data fixtures (testdata/, each
# folder with its SOURCE.md), the same files the tests read.
osv=testdata/almalinux-osv/almalinux9.jsonl.gz
release=testdata/os-release/almalinux-9.2-host.os-release
manifest=testdata/installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv
root=.demo/device
if [ ! -f "$root/.complete" ]; then
  rm -rf "$root"
  echo "==> Building a device root from the RHEL 9.0 aarch64 manifest with the real rpm (first run only)"
  go run ./internal/rpmtest/cmd/devroot -manifest "$manifest" \
    -os-release "$release" -out "$root"
  touch "$root/.complete"
fi
echo
echo "==> bin/rpmfleet-agent inventory --root $root | grep openssl"
bin/rpmfleet-agent inventory --root "$root" | grep openssl
echo
echo "==> bin/rpmfleet-agent check --root $root --advisories $osv --security --severity Important"
set +e
bin/rpmfleet-agent check --root "$root" --advisories "$osv" --security --severity Important
code=$?
set -e
echo
echo "(exit code $code: 100 means updates apply, as with dnf check-update)"
echo
echo "==> Is this device exposed to CVE-2023-2650 (openssl)?"
echo "==> bin/rpmfleet-agent check --root $root --advisories $osv --cve CVE-2023-2650"
bin/rpmfleet-agent check --root "$root" --advisories "$osv" --cve CVE-2023-2650 || true

echo
echo "==> Now apply that fix, verified, with rollback (agent/demo/apply.sh)"
./agent/demo/apply.sh

echo
echo "==> And with nothing done by hand: rpmfleet-agent run as a daemon (agent/demo/push.sh)"
./agent/demo/push.sh
