#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash
# The one recipe that builds infergw: tests/run.sh and deploy/docker/Dockerfile
# both use it, so the container image is built exactly as the tests build.
#
# Sourced (tests/run.sh, deploy/run-local.sh):
#   INFERGW_RELEASE_ARGS     cmake arguments of the Release build (an array):
#                            optimised, compiler warnings are errors
#   infergw_build <build dir> <cmake configure args...>
#       configures (output kept in <build dir>/configure.log and printed only
#       when configuring fails) and builds with -j $JOBS (default: the number
#       of CPUs); returns non-zero on failure
#
# Run as a script (deploy/docker/Dockerfile):
#   deploy/lib/build.sh --deps                      install missing build packages only
#   deploy/lib/build.sh <build dir> <cmake args...> install missing build packages, then build
# (the build packages: group "build" of deploy/lib/packages.sh)
#   deploy/lib/build.sh --release <build dir> [<more cmake args...>]
#                                                   the same with INFERGW_RELEASE_ARGS first
# Environment: JOBS (build parallelism, default: number of CPUs).

INFERGW_RELEASE_ARGS=(-DCMAKE_BUILD_TYPE=Release -DINFERGW_WERROR=ON)

INFERGW_ROOT=${INFERGW_ROOT:-$(cd "$(dirname "${BASH_SOURCE[0]}")/../.." && pwd)}

infergw_build() { # <build dir> <cmake configure args...>
  infergw_build_targets "$1" "" "${@:2}"
}

# The same recipe limited to some targets (space-separated; "" = all), for
# builds that need only a few programs (the fuzzers in tests/run.sh).
infergw_build_targets() { # <build dir> <targets> <cmake configure args...>
  local dir=$1 targets=$2 t
  shift 2
  mkdir -p "$dir"
  if ! cmake -S "$INFERGW_ROOT" -B "$dir" "$@" >"$dir/configure.log" 2>&1; then
    cat "$dir/configure.log"
    return 1
  fi
  if [[ -z $targets ]]; then
    cmake --build "$dir" -j "${JOBS:-$(nproc)}"
    return
  fi
  for t in $targets; do
    cmake --build "$dir" -j "${JOBS:-$(nproc)}" --target "$t" || return
  done
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
    sed -n '4,/^$/{s/^# \{0,1\}//;p}' "$0"
    [[ $# -gt 0 ]] && exit 0
    exit 2
  fi
  # shellcheck source=deps.sh
  source "$INFERGW_ROOT/deploy/lib/deps.sh"
  infergw_ensure_groups build.sh build
  case $1 in
    --deps) exit 0 ;;
    --release)
      [[ $# -ge 2 ]] || { echo "build.sh: --release needs a build directory" >&2; exit 2; }
      dir=$2
      shift 2
      infergw_build "$dir" "${INFERGW_RELEASE_ARGS[@]}" "$@"
      ;;
    *) infergw_build "$@" ;;
  esac
fi
