#!/usr/bin/env bash
# make test-emulated: the agent as it runs on the devices' CPUs.
#
# 1. The test suites of ./pkg/... and ./agent/... built for linux/arm64 and
#    linux/arm (GOARM=7) and run under qemu-user-static (go test -exec).
#    agent/integration is left out there: it builds the agent binary for
#    GOARCH and execs it directly, which needs binfmt_misc, which this kind
#    of machine (a container) has not got; step 2 covers the emulated binary
#    instead. Set EMU_PKGS to choose other packages, EMU_ARCHES ("arm64
#    armv7") to choose the arches. Slowest under emulation (2026-11-25, 2
#    busy cores): pkg/advisory/updateinfo, pkg/applicability, pkg/repo,
#    pkg/advisory/osv; see docs/benchmarks.md.
# 2. The cross-built rpmfleet-agent (arm64, armv7) runs `check --json` and
#    `inventory --json` on a device root made by the real rpm from a RHEL 9
#    aarch64 image's package list, against all AlmaLinux 9 advisories, and
#    `vercmp` over real AlmaLinux EVR pairs; each output must equal the
#    native amd64 binary's byte for byte.
set -euo pipefail
cd "$(dirname "$0")/.."
modroot=$PWD
fixtures=$modroot/testdata

for tool in qemu-aarch64-static qemu-arm-static rpm; do
  command -v "$tool" >/dev/null || { echo "test-emulated: $tool not found: run make deps" >&2; exit 1; }
done

declare -A qemu=([arm64]=qemu-aarch64-static [armv7]=qemu-arm-static)
declare -A goenv=([arm64]="GOARCH=arm64" [armv7]="GOARCH=arm GOARM=7")

if [ -z "${EMU_PKGS:-}" ]; then
  EMU_PKGS=$(go list ./pkg/... ./agent/... | grep -v '/agent/integration$' | tr '\n' ' ')
fi

arches=${EMU_ARCHES:-arm64 armv7}
start=$SECONDS
for arch in $arches; do
  echo "==> go test ($arch under ${qemu[$arch]})"
  t0=$SECONDS
  # -timeout: under emulation on a loaded machine the slowest package
  # (pkg/advisory/updateinfo) has taken 278 s; go test's default 10 min
  # per package leaves too little room. A wedged tool cannot hold it:
  # internal/rpmtest bounds every gpg and rpmsign run.
  # shellcheck disable=SC2086
  env ${goenv[$arch]} CGO_ENABLED=0 go test -count=1 -timeout 25m -exec "${qemu[$arch]}" $EMU_PKGS
  echo "    $arch tests took $((SECONDS - t0)) s"
done

echo "==> rpmfleet-agent: emulated output == native output"
work=$(mktemp -d)
trap 'rm -rf "$work"' EXIT
ldflags="-s -w -X github.com/rpmfleet/rpmfleet/pkg/version.Version=emulated"
CGO_ENABLED=0 go build -trimpath -ldflags "$ldflags" -o "$work/native" ./agent/cmd/rpmfleet-agent
for arch in $arches; do
  # shellcheck disable=SC2086
  env ${goenv[$arch]} CGO_ENABLED=0 GOOS=linux go build -trimpath -ldflags "$ldflags" -o "$work/$arch" ./agent/cmd/rpmfleet-agent
done

root=$work/device
go run ./internal/rpmtest/cmd/devroot -manifest testdata/installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv \
  -os-release testdata/os-release/almalinux-9.2-host.os-release -out "$root" 2>"$work/devroot.log" ||
  { cat "$work/devroot.log" >&2; exit 1; }
advisories=$fixtures/almalinux-osv/almalinux9.jsonl.gz
pairs=$work/pairs
awk -F'\t' '!/^#/ && n++ < 100 {print $3 "\t" $4}' "$fixtures/rpmvercmp/almalinux-osv-evr-pairs.tsv" > "$pairs"

# run NAME BIN...: each output of the agent on this device, one file per
# command, with the exit code appended.
run() {
  local name=$1; shift
  local out=$work/out.$name
  { "$@" check --root "$root" --advisories "$advisories" --json; echo "exit $?"; } > "$out.check" 2>&1 || true
  { "$@" inventory --root "$root" --json; echo "exit $?"; } > "$out.inventory" 2>&1 || true
  while IFS=$'\t' read -r a b; do "$@" vercmp "$a" "$b"; done < "$pairs" > "$out.vercmp" 2>&1
}
run native "$work/native"
fail=0
for arch in $arches; do
  t0=$SECONDS
  run "$arch" "${qemu[$arch]}" "$work/$arch"
  for what in check inventory vercmp; do
    if cmp -s "$work/out.native.$what" "$work/out.$arch.$what"; then
      echo "    $arch $what: identical ($(wc -c < "$work/out.native.$what") bytes)"
    else
      echo "    $arch $what: DIFFERS from native" >&2
      diff "$work/out.native.$what" "$work/out.$arch.$what" | head -20 >&2
      fail=1
    fi
  done
  echo "    $arch agent runs took $((SECONDS - t0)) s"
done
# The comparison proves nothing if check found nothing to say.
if ! grep -q '"advisories"' "$work/out.native.check" || ! grep -q '^exit 100$' "$work/out.native.check"; then
  echo "test-emulated: native check gave no advisories:" >&2
  head -c 2000 "$work/out.native.check" >&2
  fail=1
fi
echo "test-emulated: $((SECONDS - start)) s in all"
exit $fail
