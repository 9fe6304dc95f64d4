#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# Benchmarks infergw beside its peers in the same run, on loopback.
#
#   bench/run.sh [overhead|tls] [--requests N] [--rounds R] [--payload BYTES]
#   bench/run.sh auth [--requests N] [--rounds R]   (see bench/auth.sh)
#   bench/run.sh memory [--inflight N] [--seconds S] (see bench/memory.sh)
#   bench/run.sh ring [--ms N]                       (infergw-ring-bench: lookups, key movement)
#   bench/run.sh tail|failover [flags]               (bench/tail.py: hedging off/fixed/auto; kill -9, SIGSTOP)
#   bench/run.sh llm [compare|agree|oracle] [flags]  (bench/llm.py: LLM routers on a multi-turn trace;
#                                                     docs/llm-bench.md)
#   bench/run.sh stream [--streams N] [--tokens M]   (see bench/stream.sh: token streams through the
#                                                     gateway vs direct; stream resume off/replay/continue)
#
# overhead (the default): closed-loop h2load (-c16 -m32, unary
# gRPC POSTs of the KServe ModelInfer request in bench/) against
#   direct   infergw-bench-upstream itself (the ceiling),
#   infergw  1 worker, pinned (and infergw-accesslog: the same with --access-log;
#            with NOMETRICS_BUILD_DIR=<a -DINFERGW_BENCH_NO_METRICS=ON build>,
#            infergw-nometrics: the same without per-call metrics; with
#            BASELINE_BUILD_DIR=<a build of an earlier commit>, infergw-baseline:
#            that build's gateway with the same flags, for a before/after in one run),
#   haproxy  1 thread, proto h2, balance hash hdr(x-route-key), http-reuse always,
#   nginx    grpc_pass with keepalive (1 worker),
# all in front of the same upstream. Pinning: h2load and the
# upstream on cpu0, the proxy under test on cpu1 (taskset). Each target runs
# R rounds, interleaved, and the median round is reported: req/s, p50/p99
# latency (from h2load's per-request log) and the proxy's CPU time per call
# (utime+stime from /proc). h2load counts HTTP 200 as success, so every
# target is first checked to answer grpc-status 0.
#
# tls: the same load over TLS (h2load https://, ALPN h2, a P-256
# certificate made for the run) against
#   infergw-tls  infergw terminating TLS (--tls-cert/--tls-key), 1 worker,
#   haproxy-tls  HAProxy terminating the same TLS (bind ... ssl crt alpn h2),
#                h2c to the upstream, http-reuse always, 1 thread,
# and, as the reference in the same run, infergw over h2c (no TLS). Pinning,
# rounds and the grpc-status check as above. Then new connections: 4 x 500
# h2load clients each doing one full handshake and one call, for the
# connections per second and the proxy's CPU per new TLS connection.
#
# Ports: 21300 (upstream), 21310 infergw, 21311 infergw-accesslog, 21312 infergw-nometrics,
# 21313 infergw-baseline, 21320 haproxy, 21330 nginx; tls:
# 21340 (upstream), 21341 infergw TLS, 21342 infergw h2c, 21343 haproxy TLS.
# The script refuses to start if one is taken, and stops everything it started.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
# Scenarios with scripts (or programs) of their own.
case ${1:-} in
  auth) shift; exec "$ROOT/bench/auth.sh" "$@" ;;
  memory) shift; exec "$ROOT/bench/memory.sh" "$@" ;;
  stream) shift; exec "$ROOT/bench/stream.sh" "$@" ;;
  ring) shift; exec "${BUILD_DIR:-$ROOT/build}/bin/infergw-ring-bench" "$@" ;;
  tail|failover) exec /usr/bin/python3 "$ROOT/bench/tail.py" --build-dir "${BUILD_DIR:-$ROOT/build}" "$@" ;;
  llm) shift; exec /usr/bin/python3 "$ROOT/bench/llm.py" --build-dir "${BUILD_DIR:-$ROOT/build}" "$@" ;;
esac
SCENARIO=overhead
REQUESTS=300000
ROUNDS=3
PAYLOAD=100
while (($#)); do
  case $1 in
    overhead|tls) SCENARIO=$1 ;;
    --requests) REQUESTS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    --payload) PAYLOAD=$2; shift ;;
    -h|--help) awk 'NR > 2 && !/^#/ { exit } NR > 2 { sub(/^# ?/, ""); print }' "$0"; exit 0 ;;
    *) echo "bench/run.sh: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

BUILD=${BUILD_DIR:-$ROOT/build}
BENCH_NAME=bench/run.sh
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
bench_setup infergw-bench

for bin in h2load nghttp haproxy nginx openssl python3 taskset; do
  command -v "$bin" >/dev/null || { echo "bench/run.sh: $bin is missing (apt-get install $("$ROOT/deploy/lib/packages.sh" bench | xargs))" >&2; exit 1; }
done
if [[ ! -x $BUILD/bin/infergw || ! -x $BUILD/bin/infergw-bench-upstream ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target infergw infergw-bench-upstream >/dev/null
fi

if [[ $SCENARIO == tls ]]; then
  UP=21340 GWT=21341 GW=21342 HAPT=21343
  PORTS=($UP $GWT $GW $HAPT)
else
  UP=21300 GW=21310 GWL=21311 GWN=21312 GWB=21313 HAP=21320 NGX=21330
  PORTS=($UP $GW $GWL $GWN $GWB $HAP $NGX)
fi
bench_ports_free "${PORTS[@]}"


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

# Starts HAProxy (1 thread, on cpu1) in front of the upstream, its frontend
# bound as "bind $1"; sets HAP_PID.
start_haproxy() {
cat >"$WORK/haproxy.cfg" <<CFG
global
    nbthread 1
    maxconn 4000
    ssl-default-bind-options ssl-min-ver TLSv1.2
defaults
    mode http
    timeout connect 5s
    timeout client 60s
    timeout server 60s
frontend fe
    bind $1
    default_backend be
backend be
    balance hash hdr(x-route-key)
    hash-type consistent
    http-reuse always
    server s1 127.0.0.1:$UP proto h2
CFG
taskset -c 1 haproxy -db -f "$WORK/haproxy.cfg" 2>"$WORK/haproxy.log" &
PIDS+=($!); HAP_PID=$!
}

start_proxies_overhead() {
taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GW --workers 1 --upstream-conns 1 --auth=none \
  --pool demo=127.0.0.1:$UP 2>"$WORK/gw.log" &
PIDS+=($!); GW_PID=$!
# The same with the access log on: what --access-log costs.
taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GWL --workers 1 --upstream-conns 1 --auth=none \
  --admin off --access-log "$WORK/access.log" --pool demo=127.0.0.1:$UP 2>"$WORK/gwl.log" &
PIDS+=($!); GWL_PID=$!
# With NOMETRICS_BUILD_DIR (a build with -DINFERGW_BENCH_NO_METRICS=ON), the
# same gateway with its per-call metrics compiled out: what metrics cost.
if [[ -n ${NOMETRICS_BUILD_DIR:-} ]]; then
  taskset -c 1 "$NOMETRICS_BUILD_DIR/bin/infergw" --listen 127.0.0.1:$GWN --workers 1 \
    --upstream-conns 1 --auth=none --admin off --pool demo=127.0.0.1:$UP 2>"$WORK/gwn.log" &
  PIDS+=($!); GWN_PID=$!
fi
# With BASELINE_BUILD_DIR, an earlier build's gateway beside this one.
if [[ -n ${BASELINE_BUILD_DIR:-} ]]; then
  taskset -c 1 "$BASELINE_BUILD_DIR/bin/infergw" --listen 127.0.0.1:$GWB --workers 1 \
    --upstream-conns 1 --auth=none --pool demo=127.0.0.1:$UP 2>"$WORK/gwb.log" &
  PIDS+=($!); GWB_PID=$!
fi

start_haproxy "127.0.0.1:$HAP proto h2"

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
wait_port $GW; wait_port $GWL; wait_port $HAP; wait_port $NGX
if [[ -n ${NOMETRICS_BUILD_DIR:-} ]]; then wait_port $GWN; fi
if [[ -n ${BASELINE_BUILD_DIR:-} ]]; then wait_port $GWB; fi
}

start_proxies_tls() {
# One certificate for both TLS terminators: P-256, SAN 127.0.0.1.
openssl req -x509 -newkey ec -pkeyopt ec_paramgen_curve:P-256 -nodes -days 1 \
  -keyout "$WORK/tls.key" -out "$WORK/tls.pem" -subj /CN=infergw-bench \
  -addext subjectAltName=IP:127.0.0.1 2>/dev/null
cat "$WORK/tls.pem" "$WORK/tls.key" >"$WORK/haproxy.pem"
taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GWT --workers 1 --upstream-conns 1 --auth=none \
  --admin off --tls-cert "$WORK/tls.pem" --tls-key "$WORK/tls.key" \
  --pool demo=127.0.0.1:$UP 2>"$WORK/gwt.log" &
PIDS+=($!); GWT_PID=$!
taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GW --workers 1 --upstream-conns 1 --auth=none \
  --admin off --pool demo=127.0.0.1:$UP 2>"$WORK/gw.log" &
PIDS+=($!); GW_PID=$!
start_haproxy "127.0.0.1:$HAPT ssl crt $WORK/haproxy.pem alpn h2"
HAPT_PID=$HAP_PID
wait_port $GWT; wait_port $GW; wait_port $HAPT
}

if [[ $SCENARIO == tls ]]; then start_proxies_tls; else start_proxies_overhead; fi

PATHQ=/inference.GRPCInferenceService/ModelInfer
HDRS=(-H 'content-type: application/grpc' -H 'te: trailers' -H 'x-route-key: bench')

# Every target must answer grpc-status 0 before it is measured.
if [[ $SCENARIO == tls ]]; then
  TARGETS=("direct|http://127.0.0.1:$UP|" "infergw-h2c|http://127.0.0.1:$GW|$GW_PID"
           "infergw-tls|https://127.0.0.1:$GWT|$GWT_PID" "haproxy-tls|https://127.0.0.1:$HAPT|$HAPT_PID")
else
  TARGETS=("direct|http://127.0.0.1:$UP|" "infergw|http://127.0.0.1:$GW|$GW_PID"
           "infergw-accesslog|http://127.0.0.1:$GWL|$GWL_PID"
           ${NOMETRICS_BUILD_DIR:+"infergw-nometrics|http://127.0.0.1:$GWN|$GWN_PID"}
           ${BASELINE_BUILD_DIR:+"infergw-baseline|http://127.0.0.1:$GWB|$GWB_PID"}
           "haproxy|http://127.0.0.1:$HAP|$HAP_PID" "nginx|http://127.0.0.1:$NGX|$NGX_PID")
fi
for t in "${TARGETS[@]}"; do
  IFS='|' read -r tname turl _ <<<"$t"
  out=$(nghttp -nv -H ':method: POST' "${HDRS[@]}" -d "$WORK/req.bin" "$turl$PATHQ" 2>&1 || true)
  if ! grep -q 'grpc-status: 0' <<<"$out"; then
    echo "bench/run.sh: $tname did not answer grpc-status 0:" >&2; grep -E 'grpc-|:status' <<<"$out" >&2; exit 1
  fi
done

cpu_ticks() { awk '{print $14 + $15}' "/proc/$1/stat"; }
HZ=$(getconf CLK_TCK)

run_one() { # name url pid round
  local name=$1 url=$2 pid=$3 round=$4 log="$WORK/$1.$4.log" before=0 after=0
  [[ -n $pid ]] && before=$(cpu_ticks "$pid")
  taskset -c 0 h2load -c16 -m32 -n "$REQUESTS" -d "$WORK/req.bin" "${HDRS[@]}" \
    --log-file="$log" "$url$PATHQ" >"$WORK/$name.$round.out" 2>&1
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
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r tname turl tpid <<<"$t"
    run_one "$tname" "$turl" "$tpid" "$r"
  done
done

if [[ $SCENARIO == tls ]]; then
  for n in infergw-tls haproxy-tls; do
    echo "$n: $(grep -E '^(TLS Protocol|Cipher|Server Temp Key):' "$WORK/$n.1.out" | tr '\n' ' ')"
  done
  echo
fi
NAMES=$(for t in "${TARGETS[@]}"; do printf '%s ' "${t%%|*}"; done)
python3 - "$WORK/rounds.tsv" "$REQUESTS" "$ROUNDS" "$PAYLOAD" "$SCENARIO" "$NAMES" <<'PY'
import statistics, sys
rows = [l.rstrip("\n").split("\t") for l in open(sys.argv[1])]
scenario, names = sys.argv[5], sys.argv[6].split()
by = {}
for r in rows: by.setdefault(r[0], []).append(r)
def med(name):
    rs = sorted(by[name], key=lambda r: float(r[1]))
    return rs[len(rs) // 2]
print(f"{scenario}: h2load -c16 -m32 -n {sys.argv[2]}, {sys.argv[4]}-byte payload, median of {sys.argv[3]} rounds")
ref = "haproxy-tls" if scenario == "tls" else "haproxy"
gw = "infergw-tls" if scenario == "tls" else "infergw"
print(f"| target | req/s | p50 ms | p99 ms | proxy CPU µs/call | succeeded | req/s vs {ref} |")
print("|---|---|---|---|---|---|---|")
hap = float(med(ref)[1])
for name in names:
    m = med(name)
    cpu = "-" if name == "direct" else m[4]
    print(f"| {name} | {m[1]} | {m[2]} | {m[3]} | {cpu} | {m[5]} | {float(m[1]) / hap:.2f} |")
g, h = med(gw), med(ref)
if float(h[4]) > 0:
    print(f"\n{gw} CPU per call / {ref} CPU per call: {float(g[4]) / float(h[4]):.2f}")
PY

# tls: new connections. Each h2load client opens one connection, does the
# handshake (full, no resumption) and one call; 500 clients at once, 4 times
# per target. The proxy's CPU per connection is what a handshake costs it.
if [[ $SCENARIO == tls ]]; then
  echo
  echo "new TLS connections: h2load -c500 -n500 -m1 (one call per connection), 4 runs each"
  echo "| target | connections/s | proxy CPU µs/connection | succeeded |"
  echo "|---|---|---|---|"
  for t in "infergw-tls|https://127.0.0.1:$GWT|$GWT_PID" "haproxy-tls|https://127.0.0.1:$HAPT|$HAPT_PID"; do
    IFS='|' read -r tname turl tpid <<<"$t"
    secs=0 ticks=0 ok=0
    for run in 1 2 3 4; do
      before=$(cpu_ticks "$tpid")
      taskset -c 0 h2load -c500 -n500 -m1 -d "$WORK/req.bin" "${HDRS[@]}" "$turl$PATHQ" \
        >"$WORK/$tname.hs$run.out" 2>&1
      after=$(cpu_ticks "$tpid")
      ticks=$((ticks + after - before))
      secs=$(python3 -c "import re,sys; t=open(sys.argv[1]).read(); m=re.search(r'finished in ([\d.]+)(m?s)', t); print($secs + float(m.group(1)) / (1000 if m.group(2) == 'ms' else 1))" "$WORK/$tname.hs$run.out")
      ok=$((ok + $(grep -oE '[0-9]+ succeeded' "$WORK/$tname.hs$run.out" | cut -d' ' -f1)))
    done
    python3 -c "import sys; s, t, hz, ok = float(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]); print(f'| {sys.argv[5]} | {2000 / s:.0f} | {t / hz * 1e6 / 2000:.0f} | {ok} |')" "$secs" "$ticks" "$HZ" "$ok" "$tname"
  done
fi
