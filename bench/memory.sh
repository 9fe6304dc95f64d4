#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The gateway's memory with many calls in flight.
#
#   bench/run.sh memory [--inflight N] [--seconds S]
#
# Two reference replicas that hold every call 3 s (--latency-ms 3000), one
# gateway (2 workers, --auth=none) in front of them, and infergw-bench keeping
# N calls in flight (closed loop, 20 connections) for S seconds. Prints the
# gateway's RSS before, each second, and its peak (VmHWM from /proc), with
# the calls completed and their statuses. Ports 21400-21402; everything it
# starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
INFLIGHT=10000
SECONDS_RUN=8
while (($#)); do
  case $1 in
    --inflight) INFLIGHT=$2; shift ;;
    --seconds) SECONDS_RUN=$2; shift ;;
    -h|--help) sed -n '3,12p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/memory.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for b in infergw infergw-replica infergw-bench; do
  [[ -x $BUILD/bin/$b ]] || { echo "bench/memory.sh: $BUILD/bin/$b missing (build first; BUILD_DIR=...)" >&2; exit 1; }
done
GW=21400 R1=21401 R2=21402
BENCH_NAME="bench/run.sh memory"
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
bench_ports_free $GW $R1 $R2
bench_setup infergw-memory

for port in $R1 $R2; do
  "$BUILD/bin/infergw-replica" --listen 127.0.0.1:$port --id "r$port" --latency-ms 3000 \
    --threads 4 --quiet >"$WORK/r$port.log" 2>&1 &
  PIDS+=($!)
done
"$BUILD/bin/infergw" --listen 127.0.0.1:$GW --auth=none --workers 2 --admin off \
  --max-concurrent-streams 1024 --pool demo=127.0.0.1:$R1,127.0.0.1:$R2 --log-level warn \
  >"$WORK/gw.log" 2>&1 &
G=$!
PIDS+=($G)
wait_port $R1
wait_port $R2
wait_port $GW
rss() { awk -v k="$1:" '$1 == k {print $2}' "/proc/$G/status"; }
echo "gateway RSS before load: $(rss VmRSS) kB"
"$BUILD/bin/infergw-bench" --concurrency "$INFLIGHT" --connections 20 --duration "$SECONDS_RUN" \
  --deadline-ms 10000 127.0.0.1:$GW >"$WORK/bench.out" 2>&1 &
B=$!
for i in $(seq "$SECONDS_RUN"); do
  sleep 1
  echo "t=${i}s gateway RSS $(rss VmRSS) kB"
done
wait $B || true
echo "gateway peak RSS (VmHWM) with $INFLIGHT calls in flight: $(rss VmHWM) kB"
cat "$WORK/bench.out"
