#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# shellcheck disable=SC2317  # the stop functions run from traps
# Runs infergw locally on a fresh Debian 12 machine: installs missing Debian
# packages, builds Release into build/, starts a private redis-server, 3
# reference replicas and the gateway on loopback, registers the replicas in
# Redis with infergw-ctl (pools demo and default), runs the gateway on that
# Redis ring, makes sample calls through it with the Python client generated
# from proto/, shows an operator retuning routing live with infergw-ctl (route,
# drain, undrain, weight), prints what to try next and waits. Ctrl-C stops
# everything it started and exits 0.
#
# Usage: deploy/run-local.sh [--smoke] [--help]      (from any directory)
#   --smoke   exit after the sample calls: 0 if every call returned the right
#             answer and every retuning step took effect as predicted, 1
#             otherwise; everything started is stopped either way
#
# Environment:
#   GATEWAY_PORT   gateway port on 127.0.0.1 [7100]
#   REPLICA_PORTS  the 3 replica ports, comma or space separated [7201,7202,7203]
#   REDIS_PORT     the private redis-server's port on 127.0.0.1 [7379]; it keeps
#                  nothing on disk (its directory: <build dir>/run-local/redis)
#   BUILD_DIR      build directory, relative to the repository root [build]
#   JOBS           build parallelism [number of CPUs]
# Ports must be below 32768 (the kernel's ephemeral range starts there).
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
cd "$ROOT"

usage() { sed -n '4,/^set -euo/{/^set -euo/d;s/^# \{0,1\}//;p}' "$0"; }

SMOKE=0
for arg in "$@"; do
  case $arg in
    --smoke) SMOKE=1 ;;
    -h | --help) usage; exit 0 ;;
    *) echo "run-local.sh: unknown argument '$arg' (try --help)" >&2; exit 2 ;;
  esac
done

GATEWAY_PORT=${GATEWAY_PORT:-7100}
IFS=', ' read -r -a RPORTS <<<"${REPLICA_PORTS:-7201,7202,7203}" || true
REDIS_PORT=${REDIS_PORT:-7379}
BUILD_DIR=${BUILD_DIR:-build}
JOBS=${JOBS:-$(nproc)}
PY=/usr/bin/python3 # Debian's python3-grpcio, whatever python3 is first on PATH
PYGEN=$ROOT/$BUILD_DIR/pygen
RUN_DIR=$ROOT/$BUILD_DIR/run-local

say() { printf '\n==> %s\n' "$*"; }
die() { printf 'run-local.sh: %s\n' "$*" >&2; exit 1; }

# --- ports: valid, distinct, free ------------------------------------------------
((${#RPORTS[@]} == 3)) || die "REPLICA_PORTS must name 3 ports, got '${REPLICA_PORTS:-}'"
valid_port() { # <port> -> prints it in decimal, or dies
  if ! [[ $1 =~ ^0*[0-9]{1,5}$ ]] || ((10#$1 < 1 || 10#$1 >= 32768)); then
    die "port '$1' is not a number in 1..32767 (ports from 32768 up are the ephemeral range)"
  fi
  echo $((10#$1))
}
GATEWAY_PORT=$(valid_port "$GATEWAY_PORT")
for i in 0 1 2; do RPORTS[i]=$(valid_port "${RPORTS[i]}"); done
REDIS_PORT=$(valid_port "$REDIS_PORT")
GW_ADDR=127.0.0.1:$GATEWAY_PORT
REDIS_URL=redis://127.0.0.1:$REDIS_PORT
declare -A seen=()
for p in "$GATEWAY_PORT" "${RPORTS[@]}" "$REDIS_PORT"; do
  [[ -z ${seen[$p]:-} ]] || die "port $p is given twice"
  seen[$p]=1
done

# --- packages ----------------------------------------------------------------------
# shellcheck source=deploy/lib/deps.sh
. "$ROOT/deploy/lib/deps.sh"
infergw_ensure_groups run-local.sh build run # deploy/lib/packages.sh

# A listener (any address) on the port, as `ss` shows it; empty when free. gRPC
# servers set SO_REUSEPORT, so a leftover process would silently share the port:
# check before starting anything.
port_user() {
  local out
  out=$(ss -ltnpH "sport = :$1") || die "'ss -ltn' failed; cannot check whether port $1 is free"
  [[ -z $out ]] || awk 'NR == 1 { $1 = $2 = $3 = ""; sub(/^ +/, ""); print }' <<<"$out"
}
busy=0
for p in "$GATEWAY_PORT" "${RPORTS[@]}" "$REDIS_PORT"; do
  u=$(port_user "$p")
  if [[ -n $u ]]; then
    role=replica
    [[ $p != "$GATEWAY_PORT" ]] || role=gateway
    [[ $p != "$REDIS_PORT" ]] || role=redis
    echo "run-local.sh: port $p ($role) is already in use: $u" >&2
    busy=1
  fi
done
((busy == 0)) || die "stop what holds the port(s) above, or choose others, e.g.
  GATEWAY_PORT=7110 REPLICA_PORTS=7211,7212,7213 REDIS_PORT=7389 $0 ${*:-}"

# --- build -------------------------------------------------------------------------
say "building Release into $BUILD_DIR/"
cmake -S "$ROOT" -B "$ROOT/$BUILD_DIR" -DCMAKE_BUILD_TYPE=Release >/dev/null
cmake --build "$ROOT/$BUILD_DIR" -j "$JOBS"
BIN=$ROOT/$BUILD_DIR/bin
for b in infergw infergw-replica infergw-ctl; do
  [[ -x $BIN/$b ]] || die "the build produced no $BIN/$b"
done

# --- Python stubs from proto/ (in the build tree) ------------------------------------
# health.proto is compiled from its own directory, so its module is `health_pb2`:
# a grpc/ package directory in the stubs would shadow grpcio's `grpc`.
gen_stubs() { # <include dir> <proto file> <module it produces>
  local inc=$1 src=$1/$2 out=$PYGEN/$3
  [[ -f $out && $out -nt $src ]] && return 0
  protoc -I "$inc" --python_out="$PYGEN" --grpc_out="$PYGEN" \
    --plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin "$src"
}
say "generating Python stubs into $BUILD_DIR/pygen/"
mkdir -p "$PYGEN"
gen_stubs "$ROOT/proto" grpc_predict_v2.proto grpc_predict_v2_pb2_grpc.py
gen_stubs "$ROOT/proto/grpc/health/v1" health.proto health_pb2_grpc.py

# --- processes: start, wait for "listening", stop ------------------------------------
PIDS=()   # everything started, in start order
NAMES=()
GW_PID=
SLEEP_PID=
STOPPED=0

stop_all() {
  ((STOPPED == 0)) || return 0
  STOPPED=1
  [[ -z $SLEEP_PID ]] || kill "$SLEEP_PID" 2>/dev/null || true
  ((${#PIDS[@]})) || return 0
  local i pid t alive limit
  # The gateway first (it drains: GOAWAY, in-flight calls finish), then the
  # replicas, then redis-server (started first).
  for ((i = ${#PIDS[@]} - 1; i >= 0; i--)); do
    pid=${PIDS[i]}
    kill -0 "$pid" 2>/dev/null || continue
    kill -TERM "$pid" 2>/dev/null || true
    limit=50 # replicas cancel what still runs after 1 s
    [[ $pid != "$GW_PID" ]] || limit=170 # the gateway's default grace is 15 s
    for ((t = 0; t < limit; t++)); do
      kill -0 "$pid" 2>/dev/null || break
      sleep 0.1
    done
    if kill -0 "$pid" 2>/dev/null; then
      echo "run-local.sh: ${NAMES[i]} (pid $pid) did not stop on SIGTERM; sending SIGKILL" >&2
      kill -KILL "$pid" 2>/dev/null || true
    fi
    wait "$pid" 2>/dev/null || true
  done
  alive=0
  for pid in "${PIDS[@]}"; do kill -0 "$pid" 2>/dev/null && alive=1; done
  if ((alive)); then
    echo "run-local.sh: some processes are still running: ${PIDS[*]}" >&2
  else
    echo "stopped: ${NAMES[*]} (logs kept in ${RUN_DIR#"$ROOT"/}/)"
  fi
}
on_exit() {
  local rc=$?
  stop_all
  exit "$rc"
}
trap on_exit EXIT
if ((SMOKE)); then
  trap 'echo; echo "interrupted"; exit 1' INT TERM
else
  trap 'echo; echo "stopping..."; exit 0' INT TERM
fi

# Each program runs with its parent-death signal set to SIGTERM (setpriv execs,
# so the pid is the program's): even if this script is killed with SIGKILL,
# nothing it started outlives it.
LAUNCH=()
command -v setpriv >/dev/null 2>&1 && LAUNCH=(setpriv --pdeathsig TERM --)

start() { # <name> <argv...>; the log goes to $RUN_DIR/<name>.log
  local name=$1 log=$RUN_DIR/$1.log
  shift
  { printf '#'; printf ' %q' "$@"; echo; } >"$log"
  "${LAUNCH[@]}" "$@" >>"$log" 2>&1 </dev/null &
  PIDS+=("$!")
  NAMES+=("$name")
}

wait_for() { # <name> <pid> <what it waits for> <command...>: until the command succeeds
  local name=$1 pid=$2 what=$3 log=$RUN_DIR/$1.log t
  shift 3
  for ((t = 0; t < 150; t++)); do # up to 15 s
    if "$@"; then
      return 0
    fi
    if ! kill -0 "$pid" 2>/dev/null; then
      echo "run-local.sh: $name (pid $pid) exited before $what; the end of $log:" >&2
      tail -n 20 "$log" >&2
      exit 1
    fi
    sleep 0.1
  done
  echo "run-local.sh: $name (pid $pid): no $what within 15 s; the end of $log:" >&2
  tail -n 20 "$log" >&2
  exit 1
}
logged_listening() { grep -q '"event":"listening"' "$RUN_DIR/$1.log"; }
wait_listening() { # <name> <pid>
  wait_for "$1" "$2" 'a "listening" log line' logged_listening "$1"
}
# The gateway has loaded the Redis ring: a config_applied line with pools >= 2.
logged_pools_applied() {
  grep '"event":"config_applied"' "$RUN_DIR/gateway.log" |
    grep -Eq '"pools":([2-9]|[1-9][0-9]+)[,}]'
}
redis_ping() { [[ $(redis-cli -h 127.0.0.1 -p "$REDIS_PORT" ping 2>/dev/null) == PONG ]]; }

CTL=("$BIN/infergw-ctl" --redis "$REDIS_URL")
ctl() { # <infergw-ctl operands...>: runs it, prints its output indented; dies if it fails
  local out
  if ! out=$("${CTL[@]}" "$@" 2>&1); then
    printf 'run-local.sh: infergw-ctl --redis %s %s failed:\n%s\n' "$REDIS_URL" "$*" "$out" >&2
    exit 1
  fi
  printf '   %s\n' "$out"
}

mkdir -p "$RUN_DIR"
rm -f "$RUN_DIR"/*.log
# redis-server's own directory: it writes nothing there (no RDB, no AOF), but it
# is its working directory, away from the repository.
rm -rf "$RUN_DIR/redis"
mkdir -p "$RUN_DIR/redis"
say "starting redis-server, 3 replicas and the gateway on loopback (logs in ${RUN_DIR#"$ROOT"/}/)"
start redis redis-server --port "$REDIS_PORT" --bind 127.0.0.1 --save '' --appendonly no \
  --dir "$RUN_DIR/redis"
REDIS_PID=${PIDS[0]}
ADDRS=() IDS=()
for i in 1 2 3; do
  port=${RPORTS[i - 1]}
  ADDRS+=("127.0.0.1:$port")
  IDS+=("replica-$i")
  start "replica-$i" "$BIN/infergw-replica" --listen "127.0.0.1:$port" --id "replica-$i" --model demo
done
wait_for redis "$REDIS_PID" "answer to redis-cli ping" redis_ping
for i in 1 2 3; do wait_listening "${NAMES[i]}" "${PIDS[i]}"; done

say "registering the replicas in Redis: infergw-ctl --redis $REDIS_URL"
for pool in demo default; do
  ctl pool add "$pool"
  for a in "${ADDRS[@]}"; do ctl replica add "$pool" "$a"; done
done

start gateway "$BIN/infergw" --listen "$GW_ADDR" --auth=none --redis "$REDIS_URL"
GW_PID=${PIDS[4]}
wait_listening gateway "$GW_PID"
wait_for gateway "$GW_PID" 'config_applied log line with pools >= 2' logged_pools_applied
echo
printf '   %-10s pid %-7s %s\n' redis "$REDIS_PID" "$REDIS_URL (nothing kept on disk)"
for i in 1 2 3; do printf '   %-10s pid %-7s %s\n' "${NAMES[i]}" "${PIDS[i]}" "${ADDRS[i - 1]}"; done
printf '   %-10s pid %-7s %s\n' gateway "$GW_PID" "$GW_ADDR (--auth=none, ring from Redis)"
printf '%s\n' "${PIDS[@]}" >"$RUN_DIR/pids"

# --- sample calls ----------------------------------------------------------------------
say "sample calls"
rc=0
INFERGW_PYGEN=$PYGEN "$PY" "$ROOT/deploy/sample_client.py" --target "$GW_ADDR" \
  demo --replicas "$(IFS=,; echo "${IDS[*]}")" || rc=1

say "retuning routing live with infergw-ctl"
ID_ADDR=()
for i in 0 1 2; do ID_ADDR+=("${IDS[i]}=${ADDRS[i]}"); done
INFERGW_PYGEN=$PYGEN "$PY" "$ROOT/deploy/sample_client.py" --target "$GW_ADDR" \
  retune --ctl "$BIN/infergw-ctl" --redis "$REDIS_URL" \
  --replicas "$(IFS=,; echo "${ID_ADDR[*]}")" || rc=1

if ((SMOKE)); then
  if ((rc == 0)); then
    say "smoke: PASS"
  else
    say "smoke: FAIL (logs in ${RUN_DIR#"$ROOT"/}/)"
    rc=1
  fi
  exit "$rc"
fi
((rc == 0)) || echo "(some sample calls failed: see above and the logs in ${RUN_DIR#"$ROOT"/}/)"

# --- what to try next, then wait ----------------------------------------------------------
CTL_CMD="$BUILD_DIR/bin/infergw-ctl --redis $REDIS_URL"
# the replica the retuning demo left at weight 300
WEIGHTED=$("${CTL[@]}" --json route demo user-42 2>/dev/null |
  "$PY" -c 'import json, sys; print(json.load(sys.stdin)["replica"])' 2>/dev/null) || WEIGHTED=
[[ -n $WEIGHTED ]] || WEIGHTED="<host:port>"
CLIENT="/usr/bin/python3 deploy/sample_client.py"
[[ $GW_ADDR == 127.0.0.1:7100 ]] || CLIENT+=" --target $GW_ADDR"
[[ $BUILD_DIR == build ]] || CLIENT="INFERGW_PYGEN=$BUILD_DIR/pygen $CLIENT"
cat <<EOF

==> infergw is running: gateway $GW_ADDR, replicas ${ADDRS[*]}, Redis $REDIS_URL

Try next (from $ROOT, in another terminal):
  # ModelInfer through the gateway, the same routing key 3 times; then a stream of 3
  $CLIENT infer 1 2 3 --key user-7 --count 3
  $CLIENT stream 10 20 --responses 3
  $CLIENT --help
  # retune routing live: the gateway follows every change within a second, no restart
  $CTL_CMD ring show demo
  $CTL_CMD route demo user-7
  $CTL_CMD replica drain ${ADDRS[1]}
  $CTL_CMD replica undrain ${ADDRS[1]}
  $CTL_CMD replica weight demo $WEIGHTED 100    # back from 300
  $CTL_CMD conf set hedge_delay_ms 50
  $CTL_CMD conf get
  $CTL_CMD --help
  # the keys themselves (docs/redis-keys.md lists them all)
  redis-cli -p $REDIS_PORT zcard infergw:pool:demo:ring; redis-cli -p $REDIS_PORT hgetall infergw:conf
  # a one-liner with the generated stubs (Debian's python3-grpcio is /usr/bin/python3)
  PYTHONPATH=$BUILD_DIR/pygen /usr/bin/python3 -c 'import grpc, grpc_predict_v2_pb2 as pb, grpc_predict_v2_pb2_grpc as g; print(g.GRPCInferenceServiceStub(grpc.insecure_channel("$GW_ADDR")).ServerReady(pb.ServerReadyRequest()))'
  # drain: the gateway sends GOAWAY, lets in-flight calls finish, exits 0 (then this script stops)
  kill -TERM $GW_PID
  # replica-1 reports NOT_SERVING on grpc.health.v1 (SIGUSR2: back to SERVING)
  kill -USR1 ${PIDS[1]}
  # the logs (JSON lines), and every flag
  tail -f ${RUN_DIR#"$ROOT"/}/gateway.log ${RUN_DIR#"$ROOT"/}/replica-*.log
  tail -f ${RUN_DIR#"$ROOT"/}/redis.log
  $BUILD_DIR/bin/infergw --help; $BUILD_DIR/bin/infergw-replica --help

Press Ctrl-C to stop everything.
EOF

while kill -0 "$GW_PID" 2>/dev/null; do
  sleep 1 &
  SLEEP_PID=$!
  wait "$SLEEP_PID" || true
done
SLEEP_PID=
gw_rc=0
wait "$GW_PID" || gw_rc=$?
echo
echo "the gateway (pid $GW_PID) exited with status $gw_rc; its last log lines:"
tail -n 5 "$RUN_DIR/gateway.log"
echo "stopping the replicas and redis-server..."
exit 0
