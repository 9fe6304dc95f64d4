#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Token streams through the gateway: what relaying ModelStreamInfer costs,
# and what stream resume (docs/stream-resume.md) costs when nothing fails.
#
#   bench/run.sh stream [--streams N] [--tokens M] [--count K] [--token-ms T] [--rounds R]
#
# Two reference replicas serve the token model (infergw-replica
# --token-model): "llm" unpaced (--token-ms 0: as fast as it can) and
# "llmpaced" at one message every T ms (default 2). infergw-bench
# --stream-tokens M keeps N ModelStreamInfer calls of M messages in flight
# (closed loop, 4 connections) until K calls are done, against
#   direct          the replica itself,
#   infergw         1 worker, --stream-resume off (the default),
#   infergw-replay  1 worker, --stream-resume replay: every relayed message
#                   is hashed and logged for a resume that never comes,
#   infergw-continue  the same with continue (counts messages, no hashes),
# (the two resume targets only when this infergw has --stream-resume).
# Pinning: infergw-bench and the replicas on cpu0, the gateway on cpu1.
# Each target runs R rounds, interleaved; the median round by messages/s is
# reported. Unpaced: messages/s and the gateway's CPU per message (the relay
# cost). Paced: the time from a call's start to its first message and the gap
# between one message and the next, p50 and p99 (the relay latency a token
# sees; the gap's p50 is T when nothing queues). Every call must end OK with
# exactly M messages (the report's "bad" column counts those that did not).
# Ports 25400-25413; everything it starts is stopped on exit.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BUILD=${BUILD_DIR:-$ROOT/build}
STREAMS=100
TOKENS=200
COUNT=1000
TOKEN_MS=2
ROUNDS=3
while (($#)); do
  case $1 in
    --streams) STREAMS=$2; shift ;;
    --tokens) TOKENS=$2; shift ;;
    --count) COUNT=$2; shift ;;
    --token-ms) TOKEN_MS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h|--help) sed -n '3,26p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh stream: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done
for b in infergw infergw-replica infergw-bench; do
  [[ -x $BUILD/bin/$b ]] || { echo "bench/run.sh stream: $BUILD/bin/$b missing (build first; BUILD_DIR=...)" >&2; exit 1; }
done
command -v taskset >/dev/null || { echo "bench/run.sh stream: taskset is missing (util-linux)" >&2; exit 1; }

RU=25400 RP=25401 GW=25410 GWR=25411 GWC=25412
BENCH_NAME="bench/run.sh stream"
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
bench_ports_free $RU $RP $GW $GWR $GWC
bench_setup infergw-stream

taskset -c 0 "$BUILD/bin/infergw-replica" --listen 127.0.0.1:$RU --id unpaced --token-model llm \
  --threads 2 --quiet >"$WORK/ru.log" 2>&1 &
PIDS+=($!)
taskset -c 0 "$BUILD/bin/infergw-replica" --listen 127.0.0.1:$RP --id paced --token-model llmpaced \
  --token-ms "$TOKEN_MS" --threads 2 --quiet >"$WORK/rp.log" 2>&1 &
PIDS+=($!)

# Starts a gateway on port $1 (extra flags after it); sets GW_PID.
start_gw() {
  local port=$1
  shift
  taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$port --workers 1 --upstream-conns 1 \
    --auth=none --admin off --pool llm=127.0.0.1:$RU --pool llmpaced=127.0.0.1:$RP "$@" \
    >"$WORK/gw$port.log" 2>&1 &
  PIDS+=($!)
  GW_PID=$!
}

start_gw $GW
TARGETS=("direct|$RU|$RP|" "infergw|$GW|$GW|$GW_PID")
if "$BUILD/bin/infergw" --help 2>&1 | grep -c -- '--stream-resume' >/dev/null; then
  start_gw $GWR --stream-resume replay
  TARGETS+=("infergw-replay|$GWR|$GWR|$GW_PID")
  start_gw $GWC --stream-resume continue
  TARGETS+=("infergw-continue|$GWC|$GWC|$GW_PID")
else
  echo "note: this infergw has no --stream-resume: infergw-replay and infergw-continue left out"
fi
wait_port $RU; wait_port $RP
for t in "${TARGETS[@]}"; do
  IFS='|' read -r _ port _ _ <<<"$t"
  wait_port "$port"
done

# run_one NAME PORT MODEL PID ROUND: one infergw-bench run, its JSON report
# appended to $WORK/NAME.MODEL.json.
run_one() {
  local name=$1 port=$2 model=$3 pid=$4 round=$5
  local cpu=()
  [[ -n $pid ]] && cpu=(--cpu-pid "$pid")
  taskset -c 0 "$BUILD/bin/infergw-bench" --stream-tokens "$TOKENS" --model "$model" \
    --concurrency "$STREAMS" --count "$COUNT" --connections 4 "${cpu[@]}" --json \
    127.0.0.1:"$port" >>"$WORK/$name.$model.json" 2>"$WORK/$name.$model.$round.err"
}

for r in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r name pu pp pid <<<"$t"
    run_one "$name" "$pu" llm "$pid" "$r"
    run_one "$name" "$pp" llmpaced "$pid" "$r"
  done
done

NAMES=$(for t in "${TARGETS[@]}"; do printf '%s ' "${t%%|*}"; done)
python3 - "$WORK" "$STREAMS" "$TOKENS" "$COUNT" "$TOKEN_MS" "$ROUNDS" "$NAMES" <<'PY'
import json, sys
work, streams, tokens, count, token_ms, rounds, names = sys.argv[1:8]
names = names.split()
def med(name, model):
    runs = [json.loads(l) for l in open(f"{work}/{name}.{model}.json") if l.strip()]
    runs.sort(key=lambda j: j["messages_per_s"])
    return runs[len(runs) // 2]
def bad(j):
    return int(count) - j["status"].get("OK", 0) + j["short_calls"]
print(f"stream: {streams} ModelStreamInfer calls in flight, {tokens} messages each, {count} calls "
      f"per run, 4 connections; median of {rounds} rounds")
print()
print("unpaced replica (--token-ms 0):")
print("| target | messages/s | vs direct | gateway CPU µs/message | bad calls |")
print("|---|---|---|---|---|")
d = med("direct", "llm")["messages_per_s"]
for n in names:
    j = med(n, "llm")
    cpu = "-" if n == "direct" else "%.2f" % j.get("cpu_us_per_message", 0)
    print(f"| {n} | {j['messages_per_s']:.0f} | {j['messages_per_s'] / d:.2f} | {cpu} | {bad(j)} |")
print()
print(f"paced replica (--token-ms {token_ms}):")
print("| target | messages/s | first message p50 / p99 µs | message gap p50 / p99 µs | bad calls |")
print("|---|---|---|---|---|")
for n in names:
    j = med(n, "llmpaced")
    f, g = j["first_message_us"], j["message_gap_us"]
    print(f"| {n} | {j['messages_per_s']:.0f} | {f['p50']:.0f} / {f['p99']:.0f} | "
          f"{g['p50']:.0f} / {g['p99']:.0f} | {bad(j)} |")
PY
