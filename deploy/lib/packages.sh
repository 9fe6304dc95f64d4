#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck shell=bash disable=SC2034 # the groups are read through infergw_packages
# The one list of the Debian 12 packages infergw's scripts install, in named
# groups. Every script takes its packages from here (no script keeps a list of
# its own); apt-get installs them with --no-install-recommends, so a package
# that is only a Recommends of another one is listed explicitly.
#
#   build   what building needs (compiler, cmake, the -dev packages CMake's
#           pkg-config checks look for)                 deploy/lib/build.sh,
#           the Dockerfile's build stage, deploy/run-local.sh, tests/run.sh
#   run     what deploy/run-local.sh needs besides the build: redis, the
#           Python sample client, the cmocka unit tests the default build
#           compiles                                    deploy/run-local.sh
#   test    what tests/run.sh needs besides the build   tests/run.sh
#   bench   what bench/run.sh needs besides the build   bench/run.sh
#   fresh   what tests/fresh-machine.sh needs on the host (the root file
#           system, the container image)                tests/fresh-machine.sh
#   image   what the image's runtime stage installs besides the shared
#           libraries of its programs (those are found by
#           deploy/docker/runtime-packages.sh with ldd; bash, for the health
#           check, is in the base image)               deploy/docker/Dockerfile
#
# Sourced:  infergw_packages <group>...   prints the packages, one a line
# Run:      deploy/lib/packages.sh <group>...   the same
# deploy/lib/deps.sh installs the missing ones of some groups.

INFERGW_PACKAGES_build=(
  build-essential cmake pkg-config
  libnghttp2-dev libssl-dev libgrpc-dev libprotobuf-c-dev protobuf-c-compiler libhiredis-dev
  libjansson-dev libmicrohttpd-dev libxxhash-dev
)
INFERGW_PACKAGES_run=(
  libcmocka-dev redis-server redis-tools iproute2 libxxhash0
  python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc
)
# nodejs + npm: Debian's, or NodeSource's nodejs, whose bundled npm stands in
# for Debian's npm (deps.sh). clang's libFuzzer runtime (libclang-rt-14-dev) is
# only a Recommends of clang. The raw HTTP/2 client tests use python3-h2;
# tests/check-format.sh uses clang-format; test_status_page.py loads the
# admin endpoint's status page in headless chromium. The format and SPDX
# checks list the tracked files with git (a fresh root has no git: the
# checkout may have come as an archive, or been cloned elsewhere).
INFERGW_PACKAGES_test=(
  git libcmocka-dev redis-server redis-sentinel redis-tools iproute2 systemd
  python3-grpcio python3-protobuf protobuf-compiler protobuf-compiler-grpc python3-yaml
  python3-cryptography python3-h2 python3-hpack python3-hyperframe
  nghttp2-client nodejs npm clang libclang-rt-14-dev clang-format prometheus chromium
)
INFERGW_PACKAGES_bench=(nghttp2-client haproxy nginx-light util-linux python3-cryptography)
INFERGW_PACKAGES_fresh=(mmdebstrap podman git ca-certificates util-linux)
INFERGW_PACKAGES_image=()

infergw_packages() { # <group>... -> the packages, one a line, each once
  local g
  for g in "$@"; do
    if ! declare -p "INFERGW_PACKAGES_$g" >/dev/null 2>&1; then
      echo "packages.sh: no package group '$g' (build run test bench fresh image)" >&2
      return 2
    fi
  done
  for g in "$@"; do
    local -n list="INFERGW_PACKAGES_$g"
    ((${#list[@]} == 0)) || printf '%s\n' "${list[@]}"
    unset -n list
  done | awk '!seen[$0]++'
}

if [[ ${BASH_SOURCE[0]} == "$0" ]]; then
  set -euo pipefail
  if [[ $# -eq 0 || $1 == -h || $1 == --help ]]; then
    sed -n '4,/^$/{s/^# \{0,1\}//;p}' "$0"
    [[ $# -gt 0 ]] && exit 0
    exit 2
  fi
  infergw_packages "$@"
fi
