#!/usr/bin/env bash
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

owner() { # <library path> -> package name (Debian 12 has merged /usr: try both spellings)
  local p=$1 real alt out
  real=$(readlink -f "$p")
  for alt in "$p" "$real" "${p#/usr}" "/usr$p" "${real#/usr}" "/usr$real"; do
    if out=$(dpkg-query -S "$alt" 2>/dev/null); then
      # "libfoo1:amd64: /usr/lib/x86_64-linux-gnu/libfoo.so.1" -> libfoo1
      printf '%s\n' "${out%%: *}" | head -n 1 | sed 's/:[a-z0-9_]*$//'
      return 0
    fi
  done
  echo "runtime-packages.sh: no package holds $p" >&2
  return 1
}

libs=$(for prog in "$@"; do
  ldd "$prog" | awk '$2 == "=>" && $3 ~ /^\// { print $3 } $1 ~ /^\// { print $1 }'
done | sort -u)
[[ -n $libs ]] || { echo "runtime-packages.sh: ldd found no libraries" >&2; exit 1; }
{
  for lib in $libs; do owner "$lib"; done
  "$(dirname "${BASH_SOURCE[0]}")/../lib/packages.sh" image
} | sort -u
