# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# Shared helper: install the Debian packages a script needs, only when some are
# missing. The packages are named in one place, deploy/lib/packages.sh, in
# groups. Source this file, then call
#
#   infergw_ensure_groups <caller name> <group>...     (build run test bench fresh)
#
# It checks every package with dpkg-query and returns at once when all are
# installed (no apt-get at all). Otherwise it runs `apt-get update` once and
# `apt-get install` for the missing ones (as root; when not root it names the
# missing packages and returns 1). A nodejs that bundles npm (NodeSource's does)
# stands in for Debian's npm.

# shellcheck source=packages.sh
source "$(dirname "${BASH_SOURCE[0]}")/packages.sh"

infergw_missing_packages() { # <package>... -> prints the missing ones, one a line
  local p
  for p in "$@"; do
    if [[ $p == npm ]] && command -v npm >/dev/null 2>&1; then
      continue
    fi
    if ! dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed'; then
      printf '%s\n' "$p"
    fi
  done
}

infergw_ensure_packages() { # <caller name> <package>...
  local who=$1 missing=()
  shift
  mapfile -t missing < <(infergw_missing_packages "$@")
  ((${#missing[@]})) || return 0
  printf '\n==> %s: installing missing packages: %s\n' "$who" "${missing[*]}"
  if [[ $(id -u) -ne 0 ]]; then
    echo "$who: missing packages (${missing[*]}); run as root or install them with apt-get" >&2
    return 1
  fi
  DEBIAN_FRONTEND=noninteractive apt-get update
  DEBIAN_FRONTEND=noninteractive apt-get install -y --no-install-recommends "${missing[@]}"
}

infergw_ensure_groups() { # <caller name> <group>...
  local who=$1 pkgs=()
  shift
  mapfile -t pkgs < <(infergw_packages "$@")
  if ((${#pkgs[@]} == 0)); then
    echo "$who: no packages in group(s) $*" >&2
    return 2
  fi
  infergw_ensure_packages "$who" "${pkgs[@]}"
}
