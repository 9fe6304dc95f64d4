#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# The cost of authentication: bench/run.sh auth [--requests N] [--rounds R]
#
# Closed-loop infergw-bench (512 calls in flight over 16 connections, unary
# KServe ModelInfer, 100-byte payload, h2c) against two gateways in the same
# run, both 1 worker pinned to cpu1, in front of infergw-bench-upstream on
# cpu0 (the load generator shares cpu0, as in the overhead scenario):
#   none          --auth=none (no authentication at all)
#   none+header   --auth=none, calls carrying the RS256 token below anyway: the
#                 cost of relaying a ~600-byte authorization header (a control)
#   apikey        --auth=on, an API key (SHA-256 lookup in the tenant records)
#   jwt-rs256     --auth=on, an RS256 JWT (RSA-2048), the same token on every
#                 call: verified once, then served from the worker's cache
#   jwt-es256     likewise with an ES256 JWT (P-256)
# and a third gateway with --jwt-cache-size 0, so every call verifies:
#   jwt-rs256-nocache, jwt-es256-nocache
# Each target runs R rounds, interleaved; the median round by calls/s is
# reported with its p50/p99 latency and the gateway's CPU time per call.
# Tokens and keys are made for the run (python3-cryptography).
#
# Ports 21370 (upstream), 21371 (--auth=none), 21372 (auth), 21373 (auth,
# no JWT cache); the script refuses to start if one is taken.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
REQUESTS=200000
ROUNDS=3
while (($#)); do
  case $1 in
    --requests) REQUESTS=$2; shift ;;
    --rounds) ROUNDS=$2; shift ;;
    -h|--help) sed -n '3,23p' "$0" | sed 's/^# \{0,1\}//'; exit 0 ;;
    *) echo "bench/run.sh auth: unknown argument '$1' (see --help)" >&2; exit 2 ;;
  esac
  shift
done

BUILD=${BUILD_DIR:-$ROOT/build}
BENCH_NAME="bench/run.sh auth"
# shellcheck source=lib.sh
source "$ROOT/bench/lib.sh"
bench_setup infergw-bench-auth

for bin in python3 taskset ss; do
  command -v "$bin" >/dev/null || { echo "bench/run.sh auth: $bin is missing" >&2; exit 1; }
done
python3 -c 'import cryptography' 2>/dev/null ||
  { echo "bench/run.sh auth: python3-cryptography is missing (apt-get install python3-cryptography)" >&2; exit 1; }
if [[ ! -x $BUILD/bin/infergw || ! -x $BUILD/bin/infergw-bench-upstream || ! -x $BUILD/bin/infergw-bench ]]; then
  cmake -S "$ROOT" -B "$BUILD" -DCMAKE_BUILD_TYPE=Release >/dev/null
  cmake --build "$BUILD" -j "$(nproc)" --target infergw infergw-bench-upstream infergw-bench >/dev/null
fi

UP=21370 GWN=21371 GWA=21372 GWC=21373
bench_ports_free $UP $GWN $GWA $GWC

# Keys, tenant records and tokens for the run.
python3 - "$WORK" <<'PY'
import base64, hashlib, json, os, sys, time
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
w = sys.argv[1]
b64 = lambda b: base64.urlsafe_b64encode(b).rstrip(b"=").decode()
rk = rsa.generate_private_key(public_exponent=65537, key_size=2048)
ek = ec.generate_private_key(ec.SECP256R1())
open(f"{w}/rs.pem", "wb").write(rk.public_key().public_bytes(
    serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo))
n = ek.public_key().public_numbers()
json.dump({"keys": [{"kty": "EC", "crv": "P-256", "kid": "es", "alg": "ES256",
                     "x": b64(n.x.to_bytes(32, "big")), "y": b64(n.y.to_bytes(32, "big"))}]},
          open(f"{w}/es.json", "w"))
claims = b64(json.dumps({"sub": "bench", "aud": "infergw-bench", "iss": "bench",
                         "exp": int(time.time()) + 86400}).encode())
def jwt(alg, kid, sign):
    si = b64(json.dumps({"alg": alg, "kid": kid, "typ": "JWT"}).encode()) + "." + claims
    return si + "." + b64(sign(si.encode()))
def es_sign(d):
    r, s = decode_dss_signature(ek.sign(d, ec.ECDSA(hashes.SHA256())))
    return r.to_bytes(32, "big") + s.to_bytes(32, "big")
open(f"{w}/jwt-rs256", "w").write(jwt("RS256", "rs", lambda d: rk.sign(d, padding.PKCS1v15(), hashes.SHA256())))
open(f"{w}/jwt-es256", "w").write(jwt("ES256", "es", es_sign))
key = "igwbench_" + b64(os.urandom(24))
open(f"{w}/apikey", "w").write(key)
open(f"{w}/tenants", "w").write("bench models=*\n")
open(f"{w}/apikeys", "w").write(hashlib.sha256(key.encode()).hexdigest() + " tenant=bench\n")
PY

taskset -c 0 "$BUILD/bin/infergw-bench-upstream" --listen 127.0.0.1:$UP --payload-bytes 100 \
  2>"$WORK/up.log" &
PIDS+=($!)
wait_port $UP

GW_COMMON=(--workers 1 --upstream-conns 1 --admin off --pool demo=127.0.0.1:$UP)
AUTH=(--auth=on --tenants "$WORK/tenants" --api-keys "$WORK/apikeys" --jwt-keys "$WORK/rs.pem"
      --jwt-keys "$WORK/es.json" --jwt-audience infergw-bench --jwt-issuer bench)
taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GWN --auth=none "${GW_COMMON[@]}" \
  2>"$WORK/gw-none.log" &
PIDS+=($!); PID_NONE=$!
taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GWA "${AUTH[@]}" "${GW_COMMON[@]}" \
  2>"$WORK/gw-auth.log" &
PIDS+=($!); PID_AUTH=$!
taskset -c 1 "$BUILD/bin/infergw" --listen 127.0.0.1:$GWC "${AUTH[@]}" --jwt-cache-size 0 \
  "${GW_COMMON[@]}" 2>"$WORK/gw-nocache.log" &
PIDS+=($!); PID_NOCACHE=$!
wait_port $GWN; wait_port $GWA; wait_port $GWC

# name|port|gateway pid|credential file ("" = none)
TARGETS=("none|$GWN|$PID_NONE|" "none+header|$GWN|$PID_NONE|jwt-rs256" "apikey|$GWA|$PID_AUTH|apikey"
         "jwt-rs256|$GWA|$PID_AUTH|jwt-rs256" "jwt-es256|$GWA|$PID_AUTH|jwt-es256"
         "jwt-rs256-nocache|$GWC|$PID_NOCACHE|jwt-rs256" "jwt-es256-nocache|$GWC|$PID_NOCACHE|jwt-es256")

run_one() { # name port pid cred count -> one JSON line
  local md=()
  [[ -n $4 ]] && md=(--metadata "authorization:Bearer $(cat "$WORK/$4")")
  taskset -c 0 "$BUILD/bin/infergw-bench" --concurrency 512 --connections 16 --count "$5" \
    --route-keys 0 "${md[@]}" --cpu-pid "$3" --json "127.0.0.1:$2"
}

# Every target must answer OK (a refused credential would measure refusals).
for t in "${TARGETS[@]}"; do
  IFS='|' read -r name port pid cred <<<"$t"
  out=$(run_one "$name" "$port" "$pid" "$cred" 100)
  python3 -c 'import json,sys; d=json.loads(sys.argv[2]); sys.exit(0 if d["status"].get("OK", 0) == 100 else 1)' \
    "$name" "$out" || { echo "bench/run.sh auth: $name did not answer OK: $out" >&2; exit 1; }
done

: >"$WORK/rounds.jsonl"
for r in $(seq "$ROUNDS"); do
  for t in "${TARGETS[@]}"; do
    IFS='|' read -r name port pid cred <<<"$t"
    out=$(run_one "$name" "$port" "$pid" "$cred" "$REQUESTS")
    printf '{"name":"%s","round":%d,"r":%s}\n' "$name" "$r" "$out" >>"$WORK/rounds.jsonl"
  done
done

python3 - "$WORK/rounds.jsonl" "$REQUESTS" "$ROUNDS" <<'PY'
import json, sys
rows = [json.loads(l) for l in open(sys.argv[1])]
by = {}
for r in rows:
    by.setdefault(r["name"], []).append(r["r"])
order = ["none", "none+header", "apikey", "jwt-rs256", "jwt-es256", "jwt-rs256-nocache", "jwt-es256-nocache"]
med = {n: sorted(by[n], key=lambda r: r["achieved_rate"])[len(by[n]) // 2] for n in order}
base = med["none"]["achieved_rate"]
print(f"auth: infergw-bench --concurrency 512 --connections 16 --count {sys.argv[2]}, "
      f"100-byte payload, h2c, median of {sys.argv[3]} rounds")
print("| target | calls/s | p50 ms | p99 ms | gateway CPU µs/call | ok | calls/s vs none |")
print("|---|---|---|---|---|---|---|")
for n in order:
    m = med[n]
    print(f"| {n} | {m['achieved_rate']:.0f} | {m['latency_us']['p50'] / 1000:.2f} | "
          f"{m['latency_us']['p99'] / 1000:.2f} | {m.get('cpu_us_per_call', 0):.2f} | {m['status'].get('OK', 0)} | "
          f"{m['achieved_rate'] / base:.2f} |")
PY
