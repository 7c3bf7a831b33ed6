#!/usr/bin/env bash
# make bench-check: issue 2's figures, rpmfleet-agent check beside dnf in one run.
#
# Devices: the real RHEL 9.0 aarch64 image (179 packages) and the same grown to
# 1,000 packages (internal/rpmtest/cmd/devroot -size), both with rpm databases
# written by the real rpm. Advisories: all 1783 AlmaLinux 9 OSV advisories,
# read by check from the OSV file and by dnf from a createrepo_c repository
# holding them as updateinfo.xml. Times are hyperfine means; peak RSS is the
# maximum resident set size /usr/bin/time -v reports, with the CPU time of
# that run (steadier than wall time on a busy machine). Prints a Markdown table.
set -euo pipefail
cd "$(dirname "$0")/../.."
# The demo's data is the repository's real-data fixtures (testdata/, each
# folder with its SOURCE.md), the same files the tests read.
osv=testdata/almalinux-osv/almalinux9.jsonl.gz
release=testdata/os-release/almalinux-9.2-host.os-release
manifest=testdata/installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv
out=.demo/bench
mkdir -p "$out"
if ! command -v hyperfine >/dev/null; then
  if command -v apt-get >/dev/null; then DEBIAN_FRONTEND=noninteractive apt-get install -y -qq hyperfine >/dev/null
  else echo "bench: hyperfine is missing (EPEL has it)" >&2; exit 1; fi
fi

make -s build >/dev/null
agent=bin/rpmfleet-agent

if [ ! -f "$out/dev179/.complete" ]; then
  rm -rf "$out/dev179"
  go run ./internal/rpmtest/cmd/devroot -manifest "$manifest" \
    -os-release "$release" -out "$out/dev179" 2>/dev/null
  touch "$out/dev179/.complete"
fi
if [ ! -f "$out/dev1000/.complete" ]; then
  rm -rf "$out/dev1000"
  go run ./internal/rpmtest/cmd/devroot -manifest "$manifest" \
    -os-release "$release" -out "$out/dev1000" \
    -size 1000 -osv "$osv" -ecosystem AlmaLinux:9 2>/dev/null
  touch "$out/dev1000/.complete"
fi
if [ ! -f "$out/repo/repodata/repomd.xml" ]; then
  go run ./internal/rpmtest/cmd/advisoryrepo -osv "$osv" -ecosystem AlmaLinux:9 -out "$out/repo" >/dev/null
fi

dnf_cmd() { # root cachedir
  # Debian's rpm looks for ~/.rpmdb inside the root; devroot links ROOT/root/.rpmdb.
  echo "env HOME=/root dnf --installroot $PWD/$1 --releasever 9 --forcearch aarch64 --setopt=reposdir=/dev/null --setopt=cachedir=$2 --repofrompath=al9,file://$PWD/$out/repo --repo al9 --setopt=al9.gpgcheck=0 -q updateinfo list"
}

rss() { # command... -> "peak RSS MB | CPU ms" of one run
  /usr/bin/time -v "$@" 2>&1 >/dev/null | awk -F': ' '/Maximum resident/{r=$2/1024} /User time/{u=$2} /System time/{s=$2} END{printf "%.1f MB | %.0f ms", r, (u+s)*1000}'
}

mean_ms() { # json file -> mean ms
  python3 -c 'import json,sys; print("%.0f" % (json.load(open(sys.argv[1]))["results"][0]["mean"]*1000))' "$1"
}

echo "machine: $(nproc) cores, $(awk '/MemTotal/{printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(lscpu | awk -F': +' '/Model name/{print $2}'), load average $(cut -d' ' -f1-3 /proc/loadavg)"
echo
echo "| device | tool | command | mean wall time | peak RSS | CPU (user+sys) |"
echo "|---|---|---|---|---|---|"
for dev in dev179 dev1000; do
  root=$out/$dev
  check="$agent check --root $root --advisories $osv"
  hyperfine -N -i --warmup 3 --runs 20 --export-json "$out/h.json" "$check" >/dev/null 2>&1
  echo "| $dev | rpmfleet-agent check | \`check --advisories almalinux9.jsonl.gz\` | $(mean_ms "$out/h.json") ms | $(rss $check) |"

  warm=$out/dnfcache-warm
  rm -rf "$warm"; $(dnf_cmd "$root" "$warm") >/dev/null 2>&1 || true
  hyperfine -N -i --warmup 1 --runs 5 --export-json "$out/h.json" "$(dnf_cmd "$root" "$warm")" >/dev/null 2>&1
  echo "| $dev | dnf 4 (warm cache) | \`dnf updateinfo list\` | $(mean_ms "$out/h.json") ms | $(rss $(dnf_cmd "$root" "$warm")) |"

  cold=$out/dnfcache-cold
  hyperfine -N -i --runs 5 --prepare "rm -rf $cold" --export-json "$out/h.json" "$(dnf_cmd "$root" "$cold")" >/dev/null 2>&1
  rm -rf "$cold"
  echo "| $dev | dnf 4 (cold cache) | \`dnf updateinfo list\` | $(mean_ms "$out/h.json") ms | $(rss $(dnf_cmd "$root" "$cold")) |"
done
