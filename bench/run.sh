#!/usr/bin/env bash
# Benchmarks infergw beside its peers in the same run, on loopback.
#
#   bench/run.sh [overhead] [--requests N] [--rounds R] [--payload BYTES]
#   bench/run.sh auth [--requests N] [--rounds R]   (see bench/auth.sh)
#
# overhead (the only scenario so far): closed-loop h2load (-c16 -m32, unary
# gRPC POSTs of the KServe ModelInfer request in bench/) against
#   direct   infergw-bench-upstream itself (the ceiling),
#   infergw  1 worker, pinned,
#   haproxy  1 thread, proto h2, balance hash hdr(x-route-key), http-reuse always,
#   nginx    grpc_pass with keepalive (1 worker),
# all in front of the same upstream. Pinning as in DESIGN.md: h2load and the
# upstream on cpu0, the proxy under test on cpu1 (taskset). Each target runs
# R rounds, interleaved, and the median round is reported: req/s, p50/p99
# latency (from h2load's per-request log) and the proxy's CPU time per call
# (utime+stime from /proc). h2load counts HTTP 200 as success, so every
# target is first checked to answer grpc-status 0.
#
# Ports: 21300 (upstream), 21310 infergw, 21320 haproxy, 21330 nginx; the
# script refuses to start if one is taken, and stops everything it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# The authentication scenario lives in its own script (bench/auth.sh).
if [[ ${1:-} == auth ]]; then
  shift
  exec "$ROOT/bench/auth.sh" "$@"
fi
SCENARIO=overhead
REQUESTS=300000
ROUNDS=3
PAYLOAD=100
while (($#)); do
  case $1 in
    overhead) SCENARIO=$1 ;;
    --requests) REQUESTS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --payload) PAYLOAD=$2; shift ;;
    -h|--help) sed -n '2,22p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

BUILD=${BUILD_DIR:-$ROOT/build}
WORK=$(mktemp -d /tmp/infergw-bench.XXXXXX)
PIDS=()
cleanup() {
  for p in "${PIDS[@]}"; do kill "$p" 2>/dev/null || true; done
  wait 2>/dev/null || true
  rm -rf "$WORK"
}
trap cleanup EXIT

for bin in h2load haproxy nginx python3 taskset; do
  command -v "$bin" >/dev/null || { echo "bench/run.sh: $bin is missing (apt-get install nghttp2-client haproxy nginx-light util-linux)" >&2; exit 1; }
done
if [[ ! -x $BUILD/bin/infergw || ! -x $BUILD/bin/infergw-bench-upstream ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target infergw infergw-bench-upstream >/dev/null
fi

UP=21300 GW=21310 HAP=21320 NGX=21330
for p in $UP $GW $HAP $NGX; do
  if ss -ltnH "sport = :$p" | grep -q .; then
    echo "bench/run.sh: port $p is in use: $(ss -ltnpH "sport = :$p")" >&2; exit 1
  fi
done

wait_port() {
  for _ in $(seq 100); do ss -ltnH "sport = :$1" | grep -q . && return 0; sleep 0.05; done
  echo "bench/run.sh: nothing listens on port $1" >&2; return 1
}

# The request: one KServe ModelInferRequest for model "demo" with ~PAYLOAD
# bytes of FP32 input, gRPC-framed.
python3 - "$PAYLOAD" "$WORK/req.bin" <<'PY'
import struct, sys
n, out = int(sys.argv[1]), sys.argv[2]
def varint(v):
    b = b""
    while True:
        if v < 0x80: return b + bytes([v])
        b += bytes([v & 0x7f | 0x80]); v >>= 7
def field(num, data): return varint(num << 3 | 2) + varint(len(data)) + data
floats = max(1, (n - 30) // 4)
tensor = field(1, b"x") + field(2, b"FP32") + bytes([0x1a]) + varint(len(varint(floats))) + varint(floats)
msg = field(1, b"demo") + field(5, tensor) + field(7, b"\0" * 4 * floats)
open(out, "wb").write(b"\0" + struct.pack(">I", len(msg)) + msg)
PY

taskset -c 0 "$BUILD/bin/infergw-bench-upstream" --listen 127.0.0.1:$UP --payload-bytes "$PAYLOAD" 2>"$WORK/up.log" &
PIDS+=($!)
wait_port $UP

taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GW --workers 1 --upstream-conns 1 --auth=none \
  --pool demo=127.0.0.1:$UP 2>"$WORK/gw.log" &
PIDS+=($!); GW_PID=$!

cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind 127.0.0.1:$HAP proto h2
    default_backend be
backend be
    balance hash hdr(x-route-key)
    hash-type consistent
    http-reuse always
    server s1 127.0.0.1:$UP proto h2
CFG
taskset -c 1 haproxy -db -f "$WORK/haproxy.cfg" 2>"$WORK/haproxy.log" &
PIDS+=($!); HAP_PID=$!

mkdir -p "$WORK/nginx"
cat >"$WORK/nginx.conf" <<CFG
daemon off;
master_process off;
worker_processes 1;
pid $WORK/nginx/nginx.pid;
error_log $WORK/nginx/error.log warn;
events { worker_connections 4096; }
http {
    access_log off;
    client_body_temp_path $WORK/nginx;
    upstream up {
        hash \$http_x_route_key consistent;
        server 127.0.0.1:$UP;
        keepalive 64;
        keepalive_requests 100000000;
    }
    keepalive_requests 100000000;
    server {
        listen 127.0.0.1:$NGX http2;
        http2_max_concurrent_streams 1024;
        location / { grpc_pass grpc://up; }
    }
}
CFG
taskset -c 1 nginx -p "$WORK/nginx" -c "$WORK/nginx.conf" 2>"$WORK/nginx.log" &
PIDS+=($!); NGX_PID=$!
wait_port $GW; wait_port $HAP; wait_port $NGX

PATHQ=/inference.GRPCInferenceService/ModelInfer
HDRS=(-H 'content-type: application/grpc' -H 'te: trailers' -H 'x-route-key: bench')

# Every target must answer grpc-status 0 before it is measured.
for t in "direct:$UP" "infergw:$GW" "haproxy:$HAP" "nginx:$NGX"; do
  out=$(nghttp -nv -H ':method: POST' "${HDRS[@]}" -d "$WORK/req.bin" "http://127.0.0.1:${t#*:}$PATHQ" 2>&1 || true)
  if ! grep -q 'grpc-status: 0' <<<"$out"; then
    echo "bench/run.sh: ${t%%:*} did not answer grpc-status 0:" >&2; grep -E 'grpc-|:status' <<<"$out" >&2; exit 1
  fi
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

run_one() { # name port pid round
  local name=$1 port=$2 pid=$3 round=$4 log="$WORK/$1.$4.log" before=0 after=0
  [[ -n $pid ]] && before=$(cpu_ticks "$pid")
  taskset -c 0 h2load -c16 -m32 -n "$REQUESTS" -d "$WORK/req.bin" "${HDRS[@]}" \
    --log-file="$log" "http://127.0.0.1:$port$PATHQ" >"$WORK/$name.$round.out" 2>&1
  [[ -n $pid ]] && after=$(cpu_ticks "$pid")
  python3 - "$name" "$log" "$WORK/$name.$round.out" "$((after - before))" "$HZ" "$REQUESTS" <<'PY' >>"$WORK/rounds.tsv"
import re, sys
name, log, out, ticks, hz, n = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4]), int(sys.argv[5]), int(sys.argv[6])
text = open(out).read()
rps = float(re.search(r"finished in [\d.]+m?s, ([\d.]+) req/s", text).group(1))
ok = int(re.search(r"(\d+) succeeded", text).group(1))
lat = sorted(int(l.split()[2]) for l in open(log) if l.strip())
p = lambda q: lat[min(len(lat) - 1, int(q * len(lat)))] / 1000.0
cpu_us = ticks / hz * 1e6 / n if ticks else 0.0
print(f"{name}\t{rps:.0f}\t{p(0.5):.2f}\t{p(0.99):.2f}\t{cpu_us:.2f}\t{ok}")
PY
}

: >"$WORK/rounds.tsv"
for r in $(seq "$ROUNDS"); do
  run_one direct $UP "" "$r"
  run_one infergw $GW "$GW_PID" "$r"
  run_one haproxy $HAP "$HAP_PID" "$r"
  run_one nginx $NGX "$NGX_PID" "$r"
done

python3 - "$WORK/rounds.tsv" "$REQUESTS" "$ROUNDS" "$PAYLOAD" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
by = {}
for r in rows: by.setdefault(r[0], []).append(r)
def med(name):
    rs = sorted(by[name], key=lambda r: float(r[1]))
    return rs[len(rs) // 2]
print(f"overhead: h2load -c16 -m32 -n {sys.argv[2]}, {sys.argv[4]}-byte payload, median of {sys.argv[3]} rounds")
print("| target | req/s | p50 ms | p99 ms | proxy CPU µs/call | succeeded | req/s vs haproxy |")
print("|---|---|---|---|---|---|---|")
hap = float(med("haproxy")[1])
for name in ("direct", "infergw", "haproxy", "nginx"):
    m = med(name)
    cpu = "-" if name == "direct" else m[4]
    print(f"| {name} | {m[1]} | {m[2]} | {m[3]} | {cpu} | {m[5]} | {float(m[1]) / hap:.2f} |")
g, h = med("infergw"), med("haproxy")
if float(h[4]) > 0:
    print(f"\ninfergw CPU per call / haproxy CPU per call: {float(g[4]) / float(h[4]):.2f}")
PY
