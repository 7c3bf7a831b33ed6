#!/usr/bin/env bash
# make footprint: is the agent still small? (issue 6's budget)
#
# 1. Size: the stripped linux/arm64 rpmfleet-agent, budget < 12 MiB, and
#    what each dependency adds: tiny programs that reference each
#    dependency's entry points, one more dependency at a time, built as make
#    cross builds (CGO_ENABLED=0, -trimpath, -s -w).
# 2. Memory: peak resident set (/usr/bin/time -v) of
#    `rpmfleet-agent check` against all AlmaLinux 9 advisories on a device
#    root of about 1,000 packages written by the real rpm, budget < 30 MB;
#    and, on the same root in the same run, dnf answering the same question
#    from a repository whose updateinfo.xml holds the same advisories.
# Prints a Markdown report for docs/benchmarks.md ("Footprint"); exits 1 if
# a budget is broken. Set FOOTPRINT_PACKAGES to change the device's size.
set -euo pipefail
cd "$(dirname "$0")/.."
modroot=$PWD
fixtures=$modroot/testdata
for tool in /usr/bin/time rpm dnf createrepo_c modifyrepo_c; do
  command -v "$tool" >/dev/null || { echo "footprint: $tool not found: run make deps" >&2; exit 1; }
done
work=$(mktemp -d)
# The step programs are a module of their own with a copy of go.mod, so they
# link the versions the agent links; -mod=mod lets it add what a dependency
# the agent does not import yet needs (paho's websocket), in the copy only.
steps=$work/fp
mkdir -p "$steps"
sed 's|^module .*|module footprint|' go.mod > "$steps/go.mod"
cp go.sum "$steps/go.sum"
trap 'rm -rf "$work"' EXIT
export CGO_ENABLED=0 GOOS=linux GOARCH=arm64
size_budget=$((12 * 1024 * 1024))
rss_budget_kb=$((30 * 1000))
fail=0

# label | imports (space-separated, alias=path allowed) | references kept
# alive. Methods reached only through an interface (paho's Client) are kept
# by the linker only when named, hence the method expressions.
deps=(
  "Go runtime (empty main)||"
  "standard library the agent uses|fmt log/slog net/http encoding/json encoding/xml os/signal compress/gzip compress/bzip2 crypto/ed25519 crypto/sha256 crypto/tls|fmt.Sprint http.Get json.Marshal xml.NewDecoder slog.New signal.NotifyContext gzip.NewReader bzip2.NewReader ed25519.Verify sha256.New tls.Client"
  "github.com/BurntSushi/toml|github.com/BurntSushi/toml|toml.DecodeFile"
  "github.com/fsnotify/fsnotify|github.com/fsnotify/fsnotify|fsnotify.NewWatcher (*fsnotify.Watcher).Add"
  "github.com/klauspost/compress/zstd + github.com/ulikunitz/xz|github.com/klauspost/compress/zstd github.com/ulikunitz/xz|zstd.NewReader (*zstd.Decoder).Read xz.NewReader (*xz.Reader).Read"
  "github.com/ProtonMail/go-crypto/openpgp|github.com/ProtonMail/go-crypto/openpgp|openpgp.ReadArmoredKeyRing openpgp.CheckDetachedSignature"
  "github.com/cavaliergopher/rpm|github.com/cavaliergopher/rpm|rpm.Read"
  "github.com/eclipse/paho.mqtt.golang|mqtt=github.com/eclipse/paho.mqtt.golang|mqtt.NewClient mqtt.Client.Connect mqtt.Client.Publish mqtt.Client.Subscribe"
  "github.com/knqyf263/go-rpmdb + modernc.org/sqlite|rpmdb=github.com/knqyf263/go-rpmdb/pkg _=modernc.org/sqlite|rpmdb.Open (*rpmdb.RpmDB).ListPackages"
)

human() { awk -v b="$1" 'BEGIN{printf "%.2f MiB", b/1048576}'; }

table="| step | adds | stripped arm64 size | added |
|---|---|---|---|"
imports="" refs="" prev=0 i=0
for d in "${deps[@]}"; do
  IFS='|' read -r label imp ref <<<"$d"
  for p in $imp; do
    case "$p" in *=*) imports+="	${p%%=*} \"${p#*=}\""$'\n' ;; *) imports+="	\"$p\""$'\n' ;; esac
  done
  refs+=" $ref"
  i=$((i + 1))
  mkdir -p "$steps/s$i"
  {
    echo "package main"
    [ -n "$imports" ] && printf 'import (\n\t"os"\n%s)\n' "$imports"
    if [ -n "${refs// /}" ]; then
      echo "var keep = []any{$(echo $refs | sed 's/ /, /g')}"
      echo 'func main() { if len(os.Args) > 1000 { println(keep) } }'
    else
      echo 'func main() {}'
    fi
  } > "$steps/s$i/main.go"
  (cd "$steps" && GOFLAGS=-mod=mod go build -trimpath -ldflags "-s -w" -o "$work/s$i" "./s$i")
  size=$(stat -c %s "$work/s$i")
  table+=$'\n'"| $i | $label | $size B ($(human "$size")) | +$(human $((size - prev))) |"
  prev=$size
done
go build -trimpath -ldflags "-s -w" -o "$work/agent_arm64" ./agent/cmd/rpmfleet-agent
agent_size=$(stat -c %s "$work/agent_arm64")
table+=$'\n'"| $((i + 1)) | **rpmfleet-agent** (all of the above plus its own code, as linked today) | **$agent_size B ($(human "$agent_size"))** | +$(human $((agent_size - prev))) |"
if [ "$agent_size" -ge "$size_budget" ]; then
  echo "footprint: BUDGET BROKEN: stripped arm64 agent is $(human "$agent_size") >= 12 MiB" >&2
  fail=1
fi
linked=$(go version -m "$work/agent_arm64" | awk '$1=="dep"{print $2}' | tr '\n' ' ')

# --- memory ---
unset GOOS GOARCH
go build -trimpath -ldflags "-s -w" -o "$work/agent" ./agent/cmd/rpmfleet-agent
go build -o "$work/osvrepo" ./cross/cmd/osvrepo
n=${FOOTPRINT_PACKAGES:-1000}
root=$work/device
advisories=$fixtures/almalinux-osv/almalinux9.jsonl.gz
go run ./internal/rpmtest/cmd/devroot -manifest testdata/installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv \
  -os-release testdata/os-release/almalinux-9.2-host.os-release -size "$n" -out "$root" 2>"$work/devroot.log" ||
  { cat "$work/devroot.log" >&2; exit 1; }
installed=$(rpm --root "$root" --dbpath /var/lib/rpm -qa | wc -l)
nadv=$(gzip -dc "$advisories" | wc -l)
"$work/osvrepo" -osv "$advisories" -ecosystem AlmaLinux:9 -arch aarch64,noarch -out "$work/repo" 2>/dev/null

# measure NAME CMD...: runs CMD under /usr/bin/time -v; prints
# "rss_kb seconds exit".
measure() {
  local name=$1; shift
  local code=0
  /usr/bin/time -v -o "$work/$name.time" "$@" >"$work/$name.out" 2>"$work/$name.err" || code=$?
  awk -v c="$code" '/Maximum resident set size/{rss=$NF} /Elapsed \(wall clock\)/{split($NF,t,":"); s=(length(t)==3)?t[1]*3600+t[2]*60+t[3]:t[1]*60+t[2]} END{printf "%d %.2f %d\n", rss, s, c}' "$work/$name.time"
}
dnfargs=(--installroot "$root" --releasever 9 --forcearch aarch64 --setopt=reposdir=/dev/null
  --setopt=cachedir="$work/dnfcache" --setopt=t.gpgcheck=0 --repofrompath=t,file://"$work/repo" --repo t --quiet)
read -r a_rss a_s a_code < <(measure agent "$work/agent" check --root "$root" --advisories "$advisories" --json)
a_found=$(grep -o '"id"' "$work/agent.out" | wc -l || true)
# HOME=/root: Debian's rpm looks for ~/.rpmdb inside the root, which devroot
# links to var/lib/rpm.
read -r c_rss c_s c_code < <(measure dnfcu env HOME=/root dnf "${dnfargs[@]}" check-update --security)
read -r u_rss u_s u_code < <(measure dnfui env HOME=/root dnf "${dnfargs[@]}" updateinfo list --security)
read -r w_rss w_s w_code < <(measure dnfui2 env HOME=/root dnf "${dnfargs[@]}" updateinfo list --security)
u_found=$(awk 'NF>=3' "$work/dnfui.out" | awk '{print $1}' | sort -u | wc -l)
if [ "$a_rss" -ge "$rss_budget_kb" ]; then
  echo "footprint: BUDGET BROKEN: check peak RSS ${a_rss} kB >= 30 MB" >&2
  fail=1
fi

mb() { awk -v k="$1" 'BEGIN{printf "%.1f MB", k/1000}'; }
cat <<REPORT
### Binary size (linux/arm64, stripped)

Budget: < 12 MiB. Measured: **$(human "$agent_size")** ($agent_size bytes).

$table

Each step is a program that references the named packages' entry points
(listed in cross/footprint.sh), cumulatively, so the linker keeps what a
real caller keeps; the last row is the real agent. Modules the agent links
today: $linked

### Peak memory: check against all AlmaLinux 9 advisories

Device root: $installed packages in an rpm database (sqlite) written by rpm
$(rpm --version | awk '{print $3}') (\`go run ./internal/rpmtest/cmd/devroot -manifest testdata/installed-inventory/claircore-ubi9/ubi9_ubi-aarch64-rpm-manifest.tsv -size $n\`);
advisories: all $nadv AlmaLinux 9 OSV advisories (almalinux9.jsonl.gz). dnf
reads the same advisories as updateinfo.xml (each fixed package listed for
aarch64 and noarch) from a local repository made with createrepo_c and
modifyrepo_c; that repository holds no packages.

| command | peak RSS | wall time | exit | result |
|---|---|---|---|---|
| \`rpmfleet-agent check --root R --advisories almalinux9.jsonl.gz --json\` (linux/amd64) | **$(mb "$a_rss")** | $a_s s | $a_code | $a_found advisories |
| \`dnf check-update --security\` (cold cache) | $(mb "$c_rss") | $c_s s | $c_code | no package updates: the repository holds none |
| \`dnf updateinfo list --security\` (cache warm from the line above) | $(mb "$u_rss") | $u_s s | $u_code | $u_found advisories |
| \`dnf updateinfo list --security\` (again) | $(mb "$w_rss") | $w_s s | $w_code | |

Budget: check < 30 MB peak RSS: $( [ "$a_rss" -lt "$rss_budget_kb" ] && echo met || echo BROKEN ).
dnf flags: \`${dnfargs[*]//$work/\$WORK}\`.
REPORT
exit $fail
