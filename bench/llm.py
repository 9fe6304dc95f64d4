#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""The LLM routing bench (issue 15): the same seeded multi-turn trace
(bench/llm_workload.py) at the same rate through one gateway for each router,
against simulated LLM replicas, and one markdown table with the oracle rows
(bench/llm_analysis.py). docs/llm-bench.md explains the columns and the oracle.

compare (the default): per router, fresh processes (so every KV cache starts
  cold): a redis-server, --replicas simulated replicas (infergw-replica
  --llm-model llm --kv-blocks K ...) registered in pool `llm` with
  infergw-ctl, the router's tunables written with `infergw-ctl conf set
  --pool llm` (route_by, prefix_mode), one gateway on that Redis. Routers:
    ring            route_by=ring, x-route-key = the user id (session key)
    least_loaded    route_by=least_loaded, no key
    prefix-estimate route_by=prefix prefix_mode=estimate, no key
    prefix-precise  route_by=prefix prefix_mode=precise, no key; the replicas
                    publish KV events (--kv-events-redis, --kv-pool llm)
  A router is "not available" when infergw-ctl refuses its tunables (an
  unknown field or value: ctl and gateway validate alike) or the gateway logs
  config_rejected for them; it is never run in another mode instead. (The one
  exception, said in the table: when route_by itself is unknown, the ring on
  x-route-key is the gateway's only routing, so the ring row runs without it.)
  K (--kv-blocks) defaults to ceil(--kv-share x the trace's working set), the
  working set being the distinct prompt blocks of the whole trace; both are
  printed.
agree: two gateways on one Redis and one set of replicas, the trace split
  between them (call i through gateway i mod 2), for each router of
  --routers (default prefix-estimate,prefix-precise): the fraction of
  first-time prefixes both send to the same replica, and how often a
  follow-up turn lands on its previous turn's replica when that turn went
  through the other gateway against the same gateway
  (llm_analysis.agreement). With --mirror, also a run (fresh processes)
  where every call goes through both gateways at once: the fraction of all
  calls both send to the same replica (llm_analysis.mirror_agreement).
redis: for each router of --routers (default prefix-precise), Redis is killed
  (SIGKILL) at 1/3 of the run and started again from its snapshot (taken
  just before, so pools and tunables are back; the KV stream too) at 2/3;
  per third: calls, failed calls, hit ratio, TTFT p50, and the gateway's
  metrics whose names hold "prefix" or "kv" at the end of each third.
oracle: no processes: the trace's figures and the oracle rows only.

The replicas must have the LLM simulation (--llm-model). --stand-in runs the
token-streaming model instead (--token-model llm, --latency-ms as a fixed
prefill, --token-ms): no KV cache, no x-kv trailers (hit ratio n/a); it only
checks the machinery.

  /usr/bin/python3 bench/llm.py --build-dir build [compare|agree|oracle] [--rate 20] [--calls 1200]
"""

import argparse
import json
import math
import os
import platform
import shlex
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)
sys.path.insert(0, HERE)

import llm_analysis as la  # noqa: E402
import llm_workload as lw  # noqa: E402

POOL = "llm"
MODEL = "llm"
ROUTERS = {
    # name: (tunables, keyed, precise)
    "ring": ({"route_by": "ring"}, True, False),
    "least_loaded": ({"route_by": "least_loaded"}, False, False),
    "prefix-estimate": ({"route_by": "prefix", "prefix_mode": "estimate"}, False, False),
    "prefix-precise": ({"route_by": "prefix", "prefix_mode": "precise"}, False, True),
}


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog=__doc__.split("\n\n", 1)[1])
    ap.add_argument("mode", nargs="?", default="compare",
                    choices=("compare", "agree", "redis", "oracle"))
    ap.add_argument("--build-dir", default=os.path.join(SOURCE_DIR, "build"))
    ap.add_argument("--routers", help="comma list of %s [compare: all; agree: "
                    "prefix-estimate,prefix-precise]" % ",".join(ROUTERS))
    ap.add_argument("--rate", type=float, default=20.0, help="calls per second [%(default)s]")
    ap.add_argument("--replicas", type=int, default=4, help="[%(default)s]")
    ap.add_argument("--kv-share", type=float, default=0.25,
                    help="each replica's cache in blocks = this x the working set [%(default)s]")
    ap.add_argument("--kv-blocks", type=int, help="each replica's cache in blocks [from --kv-share]")
    ap.add_argument("--block", type=int, default=64, help="prefix_block, bytes [%(default)s]")
    ap.add_argument("--max-blocks", type=int, default=128, help="prefix_max_blocks [%(default)s]")
    ap.add_argument("--prefill-us-per-unit", type=int, default=10, help="[%(default)s]")
    ap.add_argument("--decode-us-per-token", type=int, default=5000, help="[%(default)s]")
    ap.add_argument("--max-batch", type=int, default=4, help="replica running batch [%(default)s]")
    ap.add_argument("--lru-touch", default="reverse", choices=("reverse", "forward"),
                    help="the cache model of the greedy reference (the replica's) [%(default)s]")
    ap.add_argument("--max-inflight", type=int, default=256, help="driver bound [%(default)s]")
    ap.add_argument("--deadline", type=float, default=30.0, help="per call, s [%(default)s]")
    ap.add_argument("--workers", type=int, default=2, help="gateway workers [%(default)s]")
    ap.add_argument("--conf", action="append", default=[], metavar="FIELD=VALUE",
                    help="another pool tunable for every router's run (e.g. balance_factor=0, "
                         "prefix_imbalance=1.3); repeatable")
    ap.add_argument("--mirror", action="store_true",
                    help="agree: also a run sending every call through both gateways (double load)")
    ap.add_argument("--out", help="directory for per-call records (JSON lines per router)")
    ap.add_argument("--stand-in", action="store_true",
                    help="token-model replicas instead of the LLM simulation (no KV cache)")
    lw.add_trace_args(ap)
    return ap.parse_args()


def replica_has_llm(h):
    out = subprocess.run([h._bin("infergw-replica"), "--help"], capture_output=True, text=True)
    return "--llm-model" in out.stdout + out.stderr


class Setup:
    """redis-server, replicas and gateways for one router run; stop() stops all."""

    def __init__(self, h, args, k, tunables, precise, gateways=1):
        self.h = h
        self.procs = []
        self.note = None
        self.unavailable = None
        try:
            self._start(args, k, tunables, precise, gateways)
        except BaseException:
            self.stop()
            raise

    def _start(self, args, k, tunables, precise, gateways):
        h = self.h
        self.redis = h.start_redis(name="redis-llm")
        self.procs.append(self.redis)
        self.url = h.redis_url(self.redis)
        h.run_ctl(self.url, "pool", "add", POOL)
        fields = dict(tunables)
        for kv in args.conf:
            field, _, value = kv.partition("=")
            fields[field] = value
        if "prefix_mode" in fields:
            if args.block != 64:
                fields["prefix_block"] = str(args.block)
            if args.max_blocks != 128:
                fields["prefix_max_blocks"] = str(args.max_blocks)
        for field, value in fields.items():
            p = h.run_ctl(self.url, "conf", "set", "--pool", POOL, field, value, expect=None)
            if p.returncode == 0:
                continue
            why = ((p.stderr.strip() or p.stdout.strip()).splitlines() or ["exit %d" % p.returncode])[-1]
            why = why.replace("infergw-ctl: ", "").split(";")[0]
            if field == "route_by" and value == "ring" and "unknown" in why:
                self.note = "route_by unknown to this build: the ring is its only routing"
                continue
            self.unavailable = "not available (infergw-ctl conf set %s %s: %s)" % (field, value, why)
            return
        self.replicas = []
        for i in range(args.replicas):
            port = h.free_port()
            rid = "127.0.0.1:%d" % port
            if args.stand_in:
                extra = ["--token-model", MODEL, "--latency-ms", "20",
                         "--token-ms", str(max(1, args.decode_us_per_token // 1000))]
            else:
                extra = ["--llm-model", MODEL, "--kv-blocks", str(k),
                         "--prefix-block", str(args.block), "--prefix-max-blocks", str(args.max_blocks),
                         "--prefill-us-per-unit", str(args.prefill_us_per_unit),
                         "--decode-us-per-token", str(args.decode_us_per_token),
                         "--max-batch", str(args.max_batch)]
                if precise:
                    extra += ["--kv-events-redis", "127.0.0.1:%d" % self.redis.port, "--kv-pool", POOL]
            p = h.start_replica(rid, "--quiet", "--seed", str(1000 + i), *extra, port=port)
            self.procs.append(p)
            self.replicas.append(p)
            h.run_ctl(self.url, "replica", "add", POOL, rid)
        self.gws = []
        for g in range(gateways):
            admin = h.free_port()
            gw = h.start_gateway({}, "--redis", self.url, "--workers", str(args.workers),
                                 "--admin", "127.0.0.1:%d" % admin)
            gw.admin_port = admin
            self.procs.append(gw)
            self.gws.append(gw)
            if not gw.wait_event(lambda e: e.get("pools", 0) != 0, timeout=10.0, event="config_applied"):
                raise RuntimeError("gateway did not load pool %s:\n%s" % (POOL, gw.tail()))
            bad = [e for e in gw.events("config_rejected") if e.get("field") in fields]
            if bad:
                self.unavailable = "not available (gateway config_rejected: %s=%s: %s)" % (
                    bad[0].get("field"), bad[0].get("value"), bad[0].get("reason"))
                return

    def ids(self):
        return [p.argv[p.argv.index("--id") + 1] for p in self.replicas]

    def stop(self):
        errors = []
        for p in reversed(self.procs):
            try:
                p.stop()
            except AssertionError as e:
                errors.append(str(e).splitlines()[0])
        if errors:
            sys.stderr.write("stop: " + "\n".join(errors) + "\n")


def header(args):
    commit = subprocess.run(["git", "-C", SOURCE_DIR, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(line.split(":", 1)[1].strip() for line in f if line.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print("machine: %d vCPU (%s), Linux %s; commit %s; %s"
          % (os.cpu_count(), cpu, platform.release(), commit,
             time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print("command: /usr/bin/python3 bench/llm.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))


def trace_and_oracle(args):
    cfg = lw.trace_config(args)
    trace = lw.generate_trace(cfg)
    chains = [lw.block_chain(c.prompt, args.block, args.max_blocks) for c in trace]
    units = [len(c.prompt) for c in trace]
    st = lw.trace_stats(trace, args.block, args.max_blocks)
    ws = st["working_set_blocks"]
    k = args.kv_blocks or max(1, math.ceil(args.kv_share * ws))
    print("trace: %s" % json.dumps(st, sort_keys=True))
    print("working set: %d blocks of %d bytes; --kv-blocks %d per replica (%.0f%% of it), "
          "%d replicas" % (ws, args.block, k, 100.0 * k / ws if ws else 0, args.replicas))
    oracle = la.oracle_rows(chains, units, args.block, args.replicas, k, args.lru_touch)
    return trace, chains, k, oracle


def save(args, name, results):
    if args.out:
        os.makedirs(args.out, exist_ok=True)
        lw.write_results(os.path.join(args.out, name + ".jsonl"), results)


def setup_or_reason(h, args, k, tunables, precise, gateways=1):
    """A Setup, or a string saying why the processes could not be started
    (a process that died or did not listen: the other routers still run)."""
    try:
        return Setup(h, args, k, tunables, precise, gateways)
    except (AssertionError, RuntimeError, OSError) as e:
        why = str(e).splitlines()[0] if str(e) else type(e).__name__
        sys.stderr.write("setup failed: %s\n" % e)
        return "setup failed (%s)" % why


def prefix_evidence(h, gw):
    """Whether any gateway metric whose name holds "prefix" is above 0 (a
    build that accepts route_by=prefix but does not route by it has none)."""
    try:
        return any(v > 0 for n, _, v in h.scrape(gw.admin_port) if "prefix" in n)
    except Exception:  # noqa: BLE001 (no admin answer: no evidence)
        return False


def run_compare(args, h, trace, chains, k, oracle):
    names = (args.routers or ",".join(ROUTERS)).split(",")
    rows = []
    notes = []
    for name in names:
        tunables, keyed, precise = ROUTERS[name]
        s = setup_or_reason(h, args, k, tunables, precise)
        if isinstance(s, str):
            rows.append((name, s))
            continue
        try:
            if s.unavailable:
                rows.append((name, s.unavailable))
                sys.stderr.write("%s: %s\n" % (name, s.unavailable))
                continue
            if s.note:
                notes.append("%s: %s" % (name, s.note))
            res = lw.run_trace([s.gws[0].addr], trace, args.rate, model=MODEL, keyed=keyed,
                               timeout=args.deadline, max_inflight=args.max_inflight)
            save(args, name, res)
            row = la.router_row(res, s.ids(), [c.prev for c in trace])
            if "prefix_mode" in tunables and not prefix_evidence(h, s.gws[0]):
                name += " [no prefix metric > 0 in /metrics: routed by prefix?]"
                notes.append("%s: the gateway accepted route_by=prefix but none of its metrics "
                             "whose names hold 'prefix' is above 0 after the run; this build may "
                             "not route by prefix yet" % name)
            row["replay_hit_ratio"] = la.replay_hit_ratio(chains, [len(c.prompt) for c in trace], res,
                                                          s.ids(), k, args.block, args.lru_touch)
            rows.append((name, row))
            sys.stderr.write("%s: %s\n" % (name, json.dumps(row, sort_keys=True)))
        finally:
            s.stop()
    print()
    print(la.table(rows, oracle))
    for n in notes:
        print("\nnote: " + n)
    for name, row in rows:
        if isinstance(row, dict):
            rp = row["replay_hit_ratio"]
            fs = row["followups_sticky"]
            print("%s: status %s; calls per replica %s; follow-up turns on their previous turn's "
                  "replica %s; turns sent before the previous one finished %d; send lateness p99 "
                  "%.1f ms; cache model replayed on this assignment: %s"
                  % (name, json.dumps(row["status"]), json.dumps(sorted(row["load"].values())),
                     "-" if fs is None else "%.1f%% of %d" % (100.0 * fs, row["followups"]),
                     row["turns_sent_before_previous_done"],
                     1000.0 * (row["send_lateness_p99"] or 0.0),
                     "-" if rp is None else "%.1f%%" % (100.0 * rp)))


def _frac(x, n):
    return "-" if x is None else "%.1f%% of %d" % (100.0 * x, n)


def run_agree(args, h, trace, chains, k):
    names = (args.routers or "prefix-estimate,prefix-precise").split(",")
    prevs = [c.prev for c in trace]
    print()
    print("| router | traffic | first-time prefixes, same replica | follow-up turns on their previous "
          "turn's replica: previous through the other gateway | ... through the same gateway | "
          "all calls, same replica |")
    print("|---|---|---|---|---|---|")
    for name in names:
        tunables, keyed, precise = ROUTERS[name]
        for mirror in ((False, True) if args.mirror else (False,)):
            s = setup_or_reason(h, args, k, tunables, precise, gateways=2)
            if isinstance(s, str):
                print("| %s | | %s | | | |" % (name, s))
                break
            try:
                if s.unavailable:
                    print("| %s | | %s | | | |" % (name, s.unavailable))
                    break
                out = lw.run_trace([g.addr for g in s.gws], trace, args.rate, model=MODEL,
                                   keyed=keyed, timeout=args.deadline,
                                   max_inflight=args.max_inflight, mirror=mirror)
                if mirror:
                    for g, res in enumerate(out):
                        save(args, "agree-mirror-%s-gw%d" % (name, g), res)
                    m = la.mirror_agreement(chains, out[0], out[1])
                    sys.stderr.write("%s mirror: %s\n" % (name, json.dumps(m, sort_keys=True)))
                    print("| %s | mirrored: every call through both | %s | | | %s |"
                          % (name, _frac(m["first_time_fraction"], m["first_time_prefixes"]),
                             _frac(m["all_calls_fraction"], m["all_calls"])))
                    continue
                save(args, "agree-" + name, out)
                a = la.agreement(chains, prevs, out)
                sys.stderr.write("%s split: %s\n" % (name, json.dumps(a, sort_keys=True)))
                print("| %s | split: call i through gateway i mod 2 | %s | %s | %s | |"
                      % (name, _frac(a["first_time_fraction"], a["first_time_prefixes"]),
                         _frac(a["followups_cross_fraction"], a["followups_cross"]),
                         _frac(a["followups_same_fraction"], a["followups_same"])))
            finally:
                s.stop()


def _interesting(samples):
    return {(n, tuple(sorted(lab.items()))): v for n, lab, v in samples
            if "prefix" in n or "_kv" in n or n.startswith("kv")}


def run_redis_kill(args, h, trace):
    import threading
    names = (args.routers or "prefix-precise").split(",")
    span = len(trace) / args.rate
    cuts = (span / 3.0, 2.0 * span / 3.0)
    for name in names:
        tunables, keyed, precise = ROUTERS[name]
        s = setup_or_reason(h, args, args.k, tunables, precise)
        if isinstance(s, str):
            print("\n%s: %s" % (name, s))
            continue
        try:
            if s.unavailable:
                print("\n%s: %s" % (name, s.unavailable))
                continue
            out = {}
            th = threading.Thread(target=lambda: out.setdefault("res", lw.run_trace(
                [s.gws[0].addr], trace, args.rate, model=MODEL, keyed=keyed, timeout=args.deadline,
                max_inflight=args.max_inflight)))
            t0 = time.monotonic()
            th.start()
            metrics = []
            gw = s.gws[0]
            time.sleep(max(0.0, t0 + cuts[0] - time.monotonic()))
            metrics.append(_interesting(h.scrape(gw.admin_port)))
            h.redis_query(s.redis.port, "SAVE", timeout=10.0)
            s.redis.popen.kill()
            s.redis.wait_exit(5)
            killed = time.monotonic() - t0
            time.sleep(max(0.0, t0 + cuts[1] - time.monotonic()))
            metrics.append(_interesting(h.scrape(gw.admin_port)))
            s.redis = h.start_redis(name="redis-llm", port=s.redis.port)
            s.procs.append(s.redis)
            back = time.monotonic() - t0
            nkeys = h.redis_query(s.redis.port, "DBSIZE")
            th.join()
            metrics.append(_interesting(h.scrape(gw.admin_port)))
            res = out["res"]
            save(args, "redis-" + name, res)
            print("\n%s: Redis killed at %.1f s, back at %.1f s with %s keys from its snapshot (run %.1f s)"
                  % (name, killed, back, nkeys, span))
            print("| phase | calls | failed | not started | cache-hit ratio | TTFT p50 ms |")
            print("|---|---|---|---|---|---|")
            for label, lo, hi in (("before", 0.0, cuts[0]), ("Redis down", cuts[0], cuts[1]),
                                  ("after", cuts[1], None)):
                part = [r for r in res if r.scheduled >= lo and (hi is None or r.scheduled < hi)]
                row = la.router_row(part, s.ids())
                print("| %s | %d | %d | %d | %s | %s |"
                      % (label, row["calls"], row["failed"], row["not_started"],
                         "-" if row["hit_ratio"] is None else "%.1f%%" % (100.0 * row["hit_ratio"]),
                         "-" if row["ttft_p50"] is None else "%.1f" % (1000.0 * row["ttft_p50"])))
            keys = sorted(set().union(*metrics))
            if keys:
                print("\ngateway metrics at the end of each third (names with prefix or kv):")
                for k in keys:
                    print("  %s%s: %s" % (k[0], "{%s}" % ",".join("%s=%s" % kv for kv in k[1]) if k[1] else "",
                                          " / ".join("%g" % m[k] if k in m else "-" for m in metrics)))
            else:
                print("\n(the gateway exports no metric whose name holds prefix or kv)")
            fails = [r for r in res if not r.ok and r.code != "NOT_STARTED"]
            for r in fails[:5]:
                print("failed: call %d at %.2f s: %s %s" % (r.index, r.scheduled, r.code, r.message))
        finally:
            s.stop()


def main():
    args = parse_args()
    for n in (args.routers or "").split(","):
        if n and n not in ROUTERS:
            sys.stderr.write("bench/llm.py: unknown router %r (%s)\n" % (n, ",".join(ROUTERS)))
            return 2
    for kv in args.conf:
        if "=" not in kv:
            sys.stderr.write("bench/llm.py: --conf wants FIELD=VALUE, not %r\n" % kv)
            return 2
    header(args)
    trace, chains, k, oracle = trace_and_oracle(args)
    if args.mode == "oracle":
        print()
        print(la.table([], oracle))
        return 0
    build = os.path.abspath(args.build_dir)
    os.environ["INFERGW_BIN"] = os.path.join(build, "bin")
    os.environ["INFERGW_SOURCE_DIR"] = SOURCE_DIR
    os.environ.setdefault("INFERGW_WORK_DIR", os.path.join(build, "bench-work", "llm"))
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration", "python"))
    import harness as h  # noqa: E402 (needs the environment above)
    if not args.stand_in and not replica_has_llm(h):
        sys.stderr.write("bench/llm.py: this infergw-replica has no --llm-model (the LLM "
                         "simulation); --stand-in runs the token model instead (no KV cache)\n")
        return 1
    print("replicas: %s; rate %.1f calls/s; deadline %.0f s; at most %d in flight"
          % ("STAND-IN token model (no KV cache)" if args.stand_in else
             "--llm-model, --prefill-us-per-unit %d --decode-us-per-token %d --max-batch %d"
             % (args.prefill_us_per_unit, args.decode_us_per_token, args.max_batch),
             args.rate, args.deadline, args.max_inflight))
    args.k = k
    if args.mode == "compare":
        run_compare(args, h, trace, chains, k, oracle)
    elif args.mode == "redis":
        run_redis_kill(args, h, trace)
    else:
        run_agree(args, h, trace, chains, k)
    return 0


if __name__ == "__main__":
    sys.exit(main())
