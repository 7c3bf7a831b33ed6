#!/usr/bin/env bash
# rpmversion.sh VERSION prints an RPM Version for a `git describe` VERSION.
# RPM forbids '-' in Version, and EL8's rpm 4.14 does not know '^', so:
#   v1.2.3            -> 1.2.3
#   v1.2.3-4-gabcdef  -> 1.2.3.4.gabcdef   (4 commits after the tag)
#   abcdef (no tag)   -> 0.0.0.COMMITTIME.gabcdef (sorts newer with each commit)
# A trailing -dirty becomes .dirty.
set -euo pipefail
v=${1:-}
dirty=""
case "$v" in *-dirty) dirty=".dirty"; v=${v%-dirty} ;; esac
if [[ "$v" =~ ^v?([0-9]+(\.[0-9]+)*)(-([0-9]+)-g([0-9a-f]+))?$ ]]; then
  out=${BASH_REMATCH[1]}
  [ -n "${BASH_REMATCH[4]}" ] && out="$out.${BASH_REMATCH[4]}.g${BASH_REMATCH[5]}"
elif [[ "$v" =~ ^[0-9a-f]{4,40}$ ]]; then
  ts=$(git log -1 --format=%cd --date=format:%Y%m%d%H%M%S 2>/dev/null || date -u +%Y%m%d%H%M%S)
  out="0.0.0.$ts.g$v"
else
  out="0.0.0.$(printf '%s' "$v" | tr -c 'A-Za-z0-9._+~\n' '.')"
fi
echo "$out$dirty"
