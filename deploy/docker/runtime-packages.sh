#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Prints, one a line, the Debian packages that hold the shared libraries the
# given programs load (ldd, then dpkg -S), so the image's runtime stage
# installs exactly what the build linked against and no list has to be kept
# by hand, followed by group "image" of deploy/lib/packages.sh (what the
# runtime stage needs besides those libraries). Runs in the build stage of
# deploy/docker/Dockerfile.
#
# Usage: deploy/docker/runtime-packages.sh <program>...
set -euo pipefail
(($#)) || { echo "usage: $0 <program>..." >&2; exit 2; }

libs=$(for prog in "$@"; do
  ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u)
[[ -n $libs ]] || { echo "runtime-packages.sh: ldd found no libraries" >&2; exit 1; }

# Each library under every spelling of its path (Debian 12 has merged /usr;
# symlinks), all asked of dpkg-query -S at once: one pass over dpkg's file lists.
spellings() { # <library path> -> its spellings, one a line
  local p=$1 real
  real=$(readlink -f "$p")
  printf '%s\n' "$p" "$real" "${p#/usr}" "/usr$p" "${real#/usr}" "/usr$real"
}
declare -A owner_of=()
while IFS= read -r line; do # "libfoo1:amd64: /usr/lib/x86_64-linux-gnu/libfoo.so.1"
  [[ $line == *": /"* && $line != diversion* ]] || continue
  pkg=${line%%: /*}
  pkg=${pkg%%,*}
  owner_of[${line#*: }]=${pkg%%:*}
done < <(for lib in $libs; do spellings "$lib"; done | sort -u | xargs dpkg-query -S 2>/dev/null)

{
  for lib in $libs; do
    found=
    while IFS= read -r alt; do
      if [[ -n ${owner_of[$alt]:-} ]]; then
        found=${owner_of[$alt]}
        break
      fi
    done < <(spellings "$lib")
    [[ -n $found ]] || { echo "runtime-packages.sh: no package holds $lib" >&2; exit 1; }
    echo "$found"
  done
  "$(dirname "${BASH_SOURCE[0]}")/../lib/packages.sh" image
} | sort -u
