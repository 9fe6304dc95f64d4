#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Builds infergw and runs every test, twice: a Release build with warnings as
# errors (build/), then an ASan+UBSan build (build-asan/) (the tsan-labelled
# tests under ASan and against a ThreadSanitizer gateway, the release_only
# ones in Release only); in between it runs
# the libFuzzer targets in FUZZ_TARGETS for FUZZ_SECONDS each (clang build
# with ASan+UBSan in build-fuzz/, over a scratch copy of their seed corpora).
# Then the soak (ctest label soak) against the ASan build for SOAK_SECONDS,
# and the tests labelled tsan against a ThreadSanitizer build of the gateway
# (build-tsan/). Installs missing
# Debian packages first (as root) and the Node test client from the npm
# registry. Exits non-zero if anything failed (it stops after a failing
# Release run); the last line printed is the summary of the last ctest run,
# or of the first that failed.
#
# Usage: tests/run.sh          (from anywhere; CI runs it through .ci/run)
# Environment: JOBS (build parallelism, default: number of CPUs),
#   FUZZ_TARGETS (default: every target, tests/fuzz/CMakeLists.txt's FUZZ_NAMES),
#   FUZZ_SECONDS (default 25 each, JOBS targets at a time: about 2 minutes
#   in all on 2 cores; 0 skips fuzzing),
#   SOAK_SECONDS (default 180; 0 skips the soak).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
JOBS=${JOBS:-$(nproc)}
cd "$ROOT"

# Each step's header says when it started (minutes into the run), so the log
# shows where the time goes.
log() { printf '\n==> %s  [%d:%02d]\n' "$*" $((SECONDS / 60)) $((SECONDS % 60)); }

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

# ctest in <build dir> with <ctest args...>, its output kept in <build dir>/<log>;
# the summary line is printed again at the end and kept in LAST_SUMMARY (the
# first failing run's in FAILED_SUMMARY).
LAST_SUMMARY=
FAILED_SUMMARY=
run_ctest() { # <build dir> <label> <log> <ctest args...>
  local dir=$1 label=$2 logf=$1/$3 rc=0
  shift 3
  log "ctest ($label)"
  (cd "$dir" && ctest --output-on-failure --timeout 600 "$@" 2>&1 | tee "$logf"
   exit "${PIPESTATUS[0]}") &
  CTEST_PID=$!
  wait "$CTEST_PID" || rc=$?
  CTEST_PID=
  # ctest prints its timing and the list of failed tests after the summary
  # line; repeat the summary so that it is the last line of the run.
  echo
  LAST_SUMMARY=$(grep -E '^[0-9]+% tests passed' "$logf" | tail -n 1 || echo "ctest ($label) printed no summary")
  echo "$LAST_SUMMARY"
  if ((rc != 0)) && [[ -z $FAILED_SUMMARY ]]; then FAILED_SUMMARY="$LAST_SUMMARY ($label)"; fi
  return "$rc"
}

# The whole suite but the soak (label soak: its own step below) and, with
# SUITE_EXCLUDE, the labels it names (a ctest regular expression).
run_suite() { # <build dir> <label> <cmake args...>
  local dir=$1 label=$2 exclude=soak
  shift 2
  [[ -n ${SUITE_EXCLUDE:-} ]] && exclude="soak|$SUITE_EXCLUDE"
  log "configure + build ($label) in ${dir#"$ROOT"/}"
  infergw_build "$dir" "$@" || return
  run_ctest "$dir" "$label" ctest.log -LE "$exclude"
}

# 1. Release, warnings are errors. Stop here on failure, so that the last line
#    printed is the summary of the run that failed. The tsan-labelled tests
#    are left out here: they run under ASan (step 3) and against the
#    ThreadSanitizer gateway (step 5), with this build's replicas, clients
#    and assertions; a third run would cost about 2 minutes.
SUITE_EXCLUDE=tsan run_suite "$ROOT/build" release "${INFERGW_RELEASE_ARGS[@]}"

# 2. Fuzzing for a bounded time (libFuzzer needs clang). A finding aborts the
#    target (ASan, UBSan or a FUZZ_CHECK) and fails the run; the crashing
#    input is left in build-fuzz/ (crash-*).
FUZZ_SECONDS=${FUZZ_SECONDS:-25}
FUZZ_TARGETS=${FUZZ_TARGETS:-"model_scan model_check grpc_timeout framer headers token authdb_file session prefix orca"}
if ((FUZZ_SECONDS > 0)); then
  FUZZ_DIR=$ROOT/build-fuzz
  log "fuzz (${FUZZ_SECONDS}s each: $FUZZ_TARGETS) in ${FUZZ_DIR#"$ROOT"/}"
  fuzz_bins=()
  for t in $FUZZ_TARGETS; do fuzz_bins+=("fuzz_$t"); done
  CC=clang infergw_build_targets "$FUZZ_DIR" "${fuzz_bins[*]}" -DCMAKE_BUILD_TYPE=RelWithDebInfo \
    -DINFERGW_FUZZ=ON ||
    exit 1
  # libFuzzer runs on one core: JOBS targets at a time, each for its full
  # FUZZ_SECONDS; their outputs are printed in order once each ends.
  fuzz_one() { # <target>: its output in $FUZZ_DIR/fuzz-<target>.out, its exit status
    local t=$1 work rc=0
    work=$(mktemp -d "$FUZZ_DIR/corpus-$t.XXXXXX")
    cp "$ROOT/tests/fuzz/corpus/fuzz_$t/"* "$work/"
    (cd "$FUZZ_DIR" && "$FUZZ_DIR/bin/fuzz_$t" -max_total_time="$FUZZ_SECONDS" -max_len=9000 \
       -print_final_stats=1 "$work" >"$FUZZ_DIR/fuzz-$t.out" 2>&1) || rc=$?
    rm -rf "$work"
    return "$rc"
  }
  fuzz_report() { # <target> <exit status>
    tail -n 5 "$FUZZ_DIR/fuzz-$1.out"
    if (($2 != 0)); then
      echo "fuzz_$1 found a problem (exit $2): see $FUZZ_DIR/crash-* and $FUZZ_DIR/fuzz-$1.out"
      return 1
    fi
    echo "fuzz_$1: ${FUZZ_SECONDS}s, nothing found"
  }
  fuzz_failed=0
  read -r -a fuzz_all <<<"$FUZZ_TARGETS"
  for ((i = 0; i < ${#fuzz_all[@]}; i += JOBS)); do
    batch=("${fuzz_all[@]:i:JOBS}") pids=()
    for t in "${batch[@]}"; do
      fuzz_one "$t" &
      pids+=($!)
    done
    for k in "${!batch[@]}"; do
      rc=0
      wait "${pids[k]}" || rc=$?
      fuzz_report "${batch[k]}" "$rc" || fuzz_failed=1
    done
  done
  ((fuzz_failed == 0)) || exit 1
fi

# 3. ASan + UBSan over the whole suite again. Any report aborts the process;
#    the harness scans the captured output of the gateway and replicas for
#    reports and fails the test (Python/Node clients are not sanitized).
status=0
export ASAN_OPTIONS=detect_leaks=1:abort_on_error=1
export UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
#    The release_only tests (the hostile-client suite: its RSS, p99 and CPU
#    figures mean nothing under ASan) are left out; the soak below is the
#    sanitized run under attack-like traffic.
SUITE_EXCLUDE=release_only run_suite "$ROOT/build-asan" asan+ubsan -DCMAKE_BUILD_TYPE=RelWithDebInfo \
  -DINFERGW_SANITIZE=address,undefined || status=1

# 4. The soak against the ASan build: mixed traffic for SOAK_SECONDS (default
#    180; 0 skips it) with replica kills, Redis restarts, config churn, slow
#    readers, client resets and idle connections (tests/integration/python/
#    soak.py). Its own summary is the line starting with SOAK.
SOAK_SECONDS=${SOAK_SECONDS:-180}
if ((SOAK_SECONDS > 0)) && [[ -x $ROOT/build-asan/bin/infergw ]]; then
  export SOAK_SECONDS
  run_ctest "$ROOT/build-asan" "soak ${SOAK_SECONDS}s, asan+ubsan" ctest-soak.log -L soak -V ||
    status=1
  grep -E '^([0-9]+: )?SOAK ' "$ROOT/build-asan/ctest-soak.log" | tail -n 1 | sed -E 's/^[0-9]+: //' || true
fi

# 5. ThreadSanitizer: the gateway alone, built with -fsanitize=thread in
#    build-tsan/, under the integration tests labelled tsan (the paths where
#    workers, the admin thread, the Redis control-plane thread and the main
#    thread share state: control-plane reloads, admin scrapes under load,
#    health checks, SIGHUP reloads, shutdown), run from the Release tree
#    (INFERGW_GATEWAY_BIN): the replicas, whose grpc core is not
#    instrumented, infergw-ctl and the clients are the Release ones. The first
#    report stops the gateway; the harness fails the test on it. Reports from
#    inside OpenSSL (not instrumented) are suppressed: tests/tsan.supp.
TSAN_DIR=$ROOT/build-tsan
log "configure + build (tsan, the gateway only) in ${TSAN_DIR#"$ROOT"/}"
if infergw_build_targets "$TSAN_DIR" infergw -DCMAKE_BUILD_TYPE=RelWithDebInfo \
     -DINFERGW_SANITIZE=thread -DINFERGW_TESTS=OFF; then
  INFERGW_GATEWAY_BIN=$TSAN_DIR/bin \
    TSAN_OPTIONS=halt_on_error=1:second_deadlock_stack=1:suppressions=$ROOT/tests/tsan.supp \
    run_ctest "$ROOT/build" tsan ctest-tsan.log -L tsan || status=1
else
  status=1
  FAILED_SUMMARY=${FAILED_SUMMARY:-"the ThreadSanitizer build failed"}
fi

# The last lines: the time it all took, then the first failing ctest run's
# summary, else the last one's.
echo
echo "tests/run.sh: $((SECONDS / 60)) min $((SECONDS % 60)) s in all"
if ((status != 0)); then
  echo "${FAILED_SUMMARY:-$LAST_SUMMARY}"
  false
fi
echo "$LAST_SUMMARY"
