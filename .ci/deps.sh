#!/usr/bin/env bash
# Installs the system tools rpmfleet's tests drive for real: rpm, rpmbuild and
# rpmsign, createrepo_c and modifyrepo_c, dnf (differential tests), gpg,
# mosquitto (external broker tests), PostgreSQL (storage conformance tests),
# qemu-user-static (emulated arm64/armv7 runs), and what the packaging tests
# check the RPMs with (systemd-analyze, man, file, /usr/bin/time). Only what
# is missing is installed. Debian/Ubuntu use apt-get; EL and Fedora use dnf.
set -euo pipefail

# command -> Debian package, Enterprise Linux package
need=(
  "rpm:rpm:rpm"
  "rpmbuild:rpm:rpm-build"
  "rpmsign:rpm:rpm-sign"
  "createrepo_c:createrepo-c:createrepo_c"
  "modifyrepo_c:createrepo-c:createrepo_c"
  "dnf:dnf:dnf"
  "gpg:gnupg:gnupg2"
  "zstd:zstd:zstd"
  "openssl:openssl:openssl"
  "systemd-analyze:systemd:systemd"
  "man:man-db:man-db"
  "file:file:file"
  "/usr/bin/time:time:time"
  "mosquitto:mosquitto:mosquitto"
  "qemu-aarch64-static:qemu-user-static:qemu-user-static"
  "chromium:chromium:chromium"
  "promtool:prometheus:golang-github-prometheus"
)

pg_ok() {
  command -v initdb >/dev/null 2>&1 && return 0
  ls /usr/lib/postgresql/*/bin/initdb >/dev/null 2>&1 && return 0
  ls /usr/pgsql-*/bin/initdb >/dev/null 2>&1 && return 0
  return 1
}

missing_deb=() missing_el=()
for n in "${need[@]}"; do
  IFS=: read -r cmd deb el <<<"$n"
  if ! command -v "$cmd" >/dev/null 2>&1 && ! [ -x "/usr/sbin/$cmd" ] && ! [ -x "/usr/bin/$cmd" ]; then
    missing_deb+=("$deb") missing_el+=("$el")
  fi
done
if ! pg_ok; then missing_deb+=(postgresql) missing_el+=(postgresql-server); fi

[ ${#missing_deb[@]} -eq 0 ] && exit 0

sudo=""
[ "$(id -u)" -eq 0 ] || sudo="sudo"
if command -v apt-get >/dev/null 2>&1; then
  pkgs=$(printf '%s\n' "${missing_deb[@]}" | sort -u | tr '\n' ' ')
  echo "deps: installing $pkgs" >&2
  $sudo apt-get update -qq
  DEBIAN_FRONTEND=noninteractive $sudo apt-get install -y -qq --no-install-recommends $pkgs >/dev/null
elif command -v dnf >/dev/null 2>&1; then
  pkgs=$(printf '%s\n' "${missing_el[@]}" | sort -u | tr '\n' ' ')
  echo "deps: installing $pkgs" >&2
  $sudo dnf install -y -q $pkgs
else
  echo "deps: cannot install ${missing_deb[*]}: neither apt-get nor dnf found" >&2
  exit 1
fi
