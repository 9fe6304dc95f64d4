#!/usr/bin/env bash
# Builds infergw and runs every test, twice: a Release build with warnings as
# errors (build/), then an ASan+UBSan build (build-asan/); in between it runs
# the libFuzzer targets in FUZZ_TARGETS for FUZZ_SECONDS each (clang build
# with ASan+UBSan in build-fuzz/, over a scratch copy of their seed corpora). Installs missing
# Debian packages first (as root) and the Node test client from the npm
# registry. Exits non-zero if anything failed (it stops after a failing
# Release run); the last line printed is the summary of the last ctest run.
#
# Usage: tests/run.sh          (from anywhere; CI runs it through .ci/run)
# Environment: JOBS (build parallelism, default: number of CPUs),
#   FUZZ_TARGETS (default "token authdb_file"), FUZZ_SECONDS (default 60; 0 skips fuzzing).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc)}
cd "$ROOT"

log() { printf '\n==> %s\n' "$*"; }

# --- packages ------------------------------------------------------------------
# The build itself (commands) is deploy/lib/build.sh, shared with
# deploy/docker/Dockerfile; the packages are groups "build" and "test" of
# deploy/lib/packages.sh.
# shellcheck source=../deploy/lib/build.sh
source "$ROOT/deploy/lib/build.sh"
# shellcheck source=../deploy/lib/deps.sh
source "$ROOT/deploy/lib/deps.sh"
infergw_ensure_groups tests/run.sh build test

# --- the Node test client --------------------------------------------------------
NODE_DIR=$ROOT/tests/integration/node
if [[ ! -d $NODE_DIR/node_modules/@grpc/grpc-js || ! -d $NODE_DIR/node_modules/@grpc/proto-loader ]]; then
  log "npm ci (tests/integration/node)"
  (cd "$NODE_DIR" && npm ci --no-audit --no-fund)
fi

# --- builds and test runs ------------------------------------------------------
# ctest runs as a background job in its own process group (job control on), so
# that however this script ends, the trap can end that group by its id: ctest,
# the Python/Node test runners and what they started. (The Python harness also
# ties each gateway/replica to its runner with PR_SET_PDEATHSIG, and kills them
# at exit.)
set -m
CTEST_PID=
cleanup() {
  if [[ -n $CTEST_PID ]] && kill -0 "$CTEST_PID" 2>/dev/null; then
    kill -TERM -- "-$CTEST_PID" 2>/dev/null || true
    sleep 1
    kill -KILL -- "-$CTEST_PID" 2>/dev/null || true
  fi
}
trap cleanup EXIT
trap 'exit 130' INT TERM

run_suite() { # <build dir> <label> <cmake args...>
  local dir=$1 label=$2 rc=0
  shift 2
  log "configure + build ($label) in ${dir#"$ROOT"/}"
  infergw_build "$dir" "$@" || return
  log "ctest ($label)"
  (cd "$dir" && ctest --output-on-failure --timeout 600 2>&1 | tee "$dir/ctest.log"
   exit "${PIPESTATUS[0]}") &
  CTEST_PID=$!
  wait "$CTEST_PID" || rc=$?
  CTEST_PID=
  # ctest prints its timing and the list of failed tests after the summary
  # line; repeat the summary so that it is the last line of the run.
  echo
  grep -E '^[0-9]+% tests passed' "$dir/ctest.log" | tail -n 1 || echo "ctest ($label) printed no summary"
  return "$rc"
}

# 1. Release, warnings are errors. Stop here on failure, so that the last line
#    printed is the summary of the run that failed.
run_suite "$ROOT/build" release "${INFERGW_RELEASE_ARGS[@]}"

# 2. Fuzzing for a bounded time (libFuzzer needs clang). A finding aborts the
#    target (ASan, UBSan or a FUZZ_CHECK) and fails the run; the crashing
#    input is left in build-fuzz/ (crash-*).
FUZZ_SECONDS=${FUZZ_SECONDS:-60}
FUZZ_TARGETS=${FUZZ_TARGETS:-"token authdb_file"}
if ((FUZZ_SECONDS > 0)); then
  FUZZ_DIR=$ROOT/build-fuzz
  log "fuzz (${FUZZ_SECONDS}s each: $FUZZ_TARGETS) in ${FUZZ_DIR#"$ROOT"/}"
  fuzz_bins=()
  for t in $FUZZ_TARGETS; do fuzz_bins+=("fuzz_$t"); done
  CC=clang infergw_build_targets "$FUZZ_DIR" "${fuzz_bins[*]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DINFERGW_FUZZ=ON ||
    exit 1
  for t in $FUZZ_TARGETS; do
    work=$(mktemp -d "$FUZZ_DIR/corpus-$t.XXXXXX")
    cp "$ROOT/tests/fuzz/corpus/fuzz_$t/"* "$work/"
    rc=0
    (cd "$FUZZ_DIR" && "$FUZZ_DIR/bin/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -max_len=9000 \
       -print_final_stats=1 "$work" 2>&1 | tail -n 5) || rc=$?
    rm -rf "$work"
    if ((rc != 0)); then
      echo "fuzz_$t found a problem (exit $rc): see $FUZZ_DIR/crash-*"
      exit 1
    fi
    echo "fuzz_$t: ${FUZZ_SECONDS}s, nothing found"
  done
fi

# 3. ASan + UBSan over the whole suite again. Any report aborts the process;
#    the harness scans the captured output of the gateway and replicas for
#    reports and fails the test (Python/Node clients are not sanitized).
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
run_suite "$ROOT/build-asan" asan+ubsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DINFERGW_SANITIZE=address,undefined
