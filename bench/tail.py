#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Tail latency with hedging off / fixed / auto, and failover (kill -9, SIGSTOP).

Both experiments start their own redis-server, 3 reference replicas
(infergw-replica --latency-ms 2) and one gateway on loopback (--redis, pool
`demo` written with infergw-ctl, tunables with `infergw-ctl conf set`), and
drive it with open-loop load from the Python gRPC client
(tests/integration/python/loaddrive.py): calls at fixed scheduled times,
every call with a 1 s deadline, x-route-key spread over --keys keys.

tail: one replica also --slow-fraction 0.02 --slow-ms 200. The same gateway
  runs the modes off, fixed (hedge_delay_ms = --hedge-ms) and auto
  (hedge_delay_ms = auto, the pool's observed p95) in interleaved rounds;
  per mode, over all its rounds: p50, p99, p99.9 of every call, p99 of the
  calls whose key the slow replica owns, failed calls, and extra upstream
  load = (attempts the replicas logged - calls) / calls, with the
  gateway's own infergw_upstream_attempts_total by kind beside it.

failover: fresh processes per fault, hedge_delay_ms = --failover-hedge-ms,
  health flags (--keepalive-ms 200 --keepalive-timeout-ms 300
  --health-interval-ms 200 --health-timeout-ms 200) when the gateway has
  them. Load for --failover-s seconds; at 1/3 of it one replica gets
  kill -9 (or SIGSTOP, SIGCONT at the end). Reported: failed calls (with
  their statuses), time from the fault until /debug/replicas shows the
  replica out (not eligible: down, ejected, unhealthy or NOT_SERVING;
  polled every 10 ms), p99 before and after the fault.

Prints markdown tables (with the machine and the command) on stdout.
Run with Debian's /usr/bin/python3 (python3-grpcio):
  bench/tail.py --build-dir build [tail|failover|all] [--rate 300] [--duration 10] [--rounds 2]
"""

import argparse
import json
import os
import platform
import shlex
import signal
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 epilog="example: /usr/bin/python3 bench/tail.py --build-dir build all",
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("scenario", nargs="?", default="all", choices=("tail", "failover", "all"),
                    help="which experiment [%(default)s]")
    ap.add_argument("--build-dir", default=os.path.join(SOURCE_DIR, "build"),
                    help="CMake build dir holding bin/infergw, bin/infergw-ctl, bin/infergw-replica "
                         "[%(default)s]")
    ap.add_argument("--rate", type=float, default=300.0, help="calls per second [%(default)s]")
    ap.add_argument("--duration", type=float, default=10.0,
                    help="tail: seconds of load per mode and round [%(default)s]")
    ap.add_argument("--rounds", type=int, default=2, help="tail: interleaved rounds [%(default)s]")
    ap.add_argument("--keys", type=int, default=256, help="routing keys [%(default)s]")
    ap.add_argument("--hedge-ms", type=int, default=20, help="tail: the fixed hedge delay [%(default)s]")
    ap.add_argument("--failover-s", type=float, default=9.0,
                    help="failover: seconds of load per fault [%(default)s]")
    ap.add_argument("--failover-hedge-ms", default="50",
                    help="failover: hedge_delay_ms during the faults [%(default)s]")
    ap.add_argument("--workers", type=int, default=2, help="gateway worker threads [%(default)s]")
    ap.add_argument("--channels", type=int, default=2, help="client channels [%(default)s]")
    return ap.parse_args()


class Setup:
    """redis-server + 3 replicas + gateway; infergw-ctl writes."""

    def __init__(self, h, tr, tag, replica_args, conf, workers):
        self.h = h
        self.procs = []
        self.redis = h.start_redis(name="redis-" + tag)
        self.procs.append(self.redis)
        self.url = h.redis_url(self.redis)
        self.replicas = []
        for i, extra in enumerate(replica_args):
            p = h.start_replica("%s-r%d" % (tag, i), "--latency-ms", "2", "--seed", str(101 + i), *extra)
            self.procs.append(p)
            self.replicas.append(p)
        h.run_ctl(self.url, "pool", "add", "demo")
        for p in self.replicas:
            h.run_ctl(self.url, "replica", "add", "demo", p.addr)
        for field, value in conf.items():
            h.run_ctl(self.url, "conf", "set", "--pool", "demo", field, value)
        self.admin_port = h.free_port()
        self.gw = h.start_gateway({}, "--redis", self.url, "--admin", "127.0.0.1:%d" % self.admin_port,
                                  "--workers", str(workers), *tr.health_args())
        self.procs.append(self.gw)
        if not self.gw.wait_event(lambda e: e.get("pools", 0) != 0, timeout=5.0, event="config_applied"):
            raise RuntimeError("gateway did not load the pool:\n" + self.gw.tail())

    def conf_set(self, field, value):
        p = self.h.run_ctl(self.url, "conf", "set", "--pool", "demo", field, value)
        v = self.h.ctl_version(p.stdout + p.stderr)
        if v is not None and not self.gw.wait_event(lambda e: e.get("version", 0) >= v, timeout=5.0,
                                                    event="config_applied"):
            raise RuntimeError("gateway did not apply %s=%s" % (field, value))

    def stop(self):
        for p in self.replicas:
            if p.popen.poll() is None:
                p.send_signal(signal.SIGCONT)
        errors = []
        for p in [self.gw] + self.replicas + [self.redis]:
            try:
                if p.popen.poll() is not None and not p.stopped:
                    p.wait_exit(5)  # killed on purpose
                else:
                    p.stop()
            except AssertionError as e:
                errors.append(str(e))
        if errors:
            sys.stderr.write("stop: " + "\n".join(errors) + "\n")


def fmt(v, unit="ms"):
    return "-" if v is None else "%.1f %s" % (v, unit)


def tail_experiment(args, h, ld, tr):
    modes = [("off", "off"), ("fixed %d ms" % args.hedge_ms, str(args.hedge_ms)), ("auto", "auto")]
    s = Setup(h, tr, "tail", ((), ("--slow-fraction", "0.02", "--slow-ms", "200"), ()),
              {"hedge_delay_ms": "off"}, args.workers)
    try:
        slow = s.replicas[1]
        ring = h.RingModel({p.addr: 100 for p in s.replicas})
        keys = ["key-%d" % i for i in range(args.keys)]
        slow_keys = {k for k in keys if ring.owner(k) == slow.addr}
        # Warm up: connections, and samples for the auto estimator.
        ld.LoadDriver(s.gw.addr, rate=args.rate, duration=2.0, keys=keys, channels=args.channels).run()
        pooled = {name: [] for name, _ in modes}
        attempts = {name: [0, 0] for name, _ in modes}  # [replica-logged attempts, calls]
        kinds = {name: {} for name, _ in modes}
        for rnd in range(args.rounds):
            for name, value in modes:
                s.conf_set("hedge_delay_ms", value)
                time.sleep(0.3)
                a0 = sum(tr.modelinfer_attempts(p) for p in s.replicas)
                k0 = tr.attempts_by_kind(s.admin_port)
                res = ld.LoadDriver(s.gw.addr, rate=args.rate, duration=args.duration, keys=keys,
                                    channels=args.channels).run()
                time.sleep(0.5)
                a1 = sum(tr.modelinfer_attempts(p) for p in s.replicas)
                for k, v in tr.kinds_delta(k0, tr.attempts_by_kind(s.admin_port)).items():
                    kinds[name][k] = kinds[name].get(k, 0) + v
                attempts[name][0] += a1 - a0
                attempts[name][1] += res.count()
                pooled[name].extend(res.records)
                sys.stderr.write("round %d %s\n" % (rnd + 1, res.summary_line(name)))
        print("| hedging | calls | failed | p50 | p99 | p99.9 | p99, keys of the slow replica | "
              "extra upstream load | gateway attempts by kind |")
        print("|---|---|---|---|---|---|---|---|---|")
        for name, _ in modes:
            r = ld.LoadResult(pooled[name], args.rate, args.duration, 1.0, ld.DEFAULT_SLACK,
                              args.channels, 0)
            sk = ld.LoadResult([c for c in pooled[name] if c.key in slow_keys], args.rate,
                               args.duration, 1.0, ld.DEFAULT_SLACK, args.channels, 0)
            a, n = attempts[name]
            print("| %s | %d | %d | %s | %s | %s | %s | %.2f%% | %s |"
                  % (name, r.count(), len(r.failed()), fmt(r.pct_ms(0.5)), fmt(r.pct_ms(0.99)),
                     fmt(r.pct_ms(0.999)), fmt(sk.pct_ms(0.99)), 100.0 * (a - n) / n,
                     " ".join("%s=%d" % kv for kv in sorted(kinds[name].items())) or "-"))
            lag = r.send_lateness()
            sys.stderr.write("%s: send lateness p99 %.1f ms max %.1f ms; late answers %d\n"
                             % (name, lag[1], lag[2], len(r.late_calls())))
        print("\n%d of %d keys are owned by the slow replica." % (len(slow_keys), len(keys)))
    finally:
        s.stop()


def failover_one(args, h, ld, tr, fault):
    s = Setup(h, tr, "fo-" + ("kill" if fault == "kill -9" else "stop"), ((), (), ()), {"hedge_delay_ms": args.failover_hedge_ms},
              args.workers)
    try:
        victim = s.replicas[1]
        ld.LoadDriver(s.gw.addr, rate=args.rate, duration=1.0, keys=args.keys, channels=args.channels).run()
        d = ld.LoadDriver(s.gw.addr, rate=args.rate, duration=args.failover_s, keys=args.keys,
                          channels=args.channels)
        watch = tr.EjectWatch(s.admin_port, victim.addr)
        k0 = tr.attempts_by_kind(s.admin_port)
        d.start()
        at = args.failover_s / 3.0
        while d.elapsed() < at:
            time.sleep(0.005)
        watch.start()
        time.sleep(0.03)
        if fault == "kill -9":
            victim.popen.kill()
        else:
            victim.send_signal(signal.SIGSTOP)
        t_fault = time.monotonic()
        el = d.elapsed()
        res = d.wait()
        watch.stop()
        kinds = tr.kinds_delta(k0, tr.attempts_by_kind(s.admin_port))
        out_s = None if watch.out_at is None else watch.out_at - t_fault
        before, after = res.between(0.5, el), res.between(el, None)
        sys.stderr.write("%s\n" % res.report(fault))
        failed = "%d" % len(res.failed())
        if res.failed():
            failed += " " + json.dumps({k: v for k, v in res.by_status().items() if k != "OK"})
        return ("| %s | %d | %s | %s | %s | %s | %s | %s |"
                % (fault, res.count(), failed,
                   "not seen" if out_s is None else "%.3f s" % out_s,
                   fmt(before.pct_ms(0.99)), fmt(after.pct_ms(0.99)), fmt(after.pct_ms(0.999)),
                   " ".join("%s=%d" % kv for kv in sorted(kinds.items())) or "-"))
    finally:
        s.stop()


def failover_experiment(args, h, ld, tr):
    rows = [failover_one(args, h, ld, tr, f) for f in ("kill -9", "SIGSTOP")]
    print("| fault | calls | failed | shown out after | p99 before | p99 after | p99.9 after | "
          "gateway attempts by kind |")
    print("|---|---|---|---|---|---|---|---|")
    for r in rows:
        print(r)


def main():
    args = parse_args()
    build = os.path.abspath(args.build_dir)
    os.environ["INFERGW_BIN"] = os.path.join(build, "bin")
    os.environ["INFERGW_SOURCE_DIR"] = SOURCE_DIR
    os.environ.setdefault("INFERGW_WORK_DIR", os.path.join(build, "bench-work", "tail"))
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration", "python"))
    import harness as h  # noqa: E402 (needs the environment above)
    import loaddrive as ld  # noqa: E402
    import test_resilience as tr  # noqa: E402 (its helpers: health flags, /debug/replicas, counts)

    commit = subprocess.run(["git", "-C", SOURCE_DIR, "rev-parse", "--short", "HEAD"],
                            capture_output=True, text=True).stdout.strip()
    cpu = "?"
    try:
        with open("/proc/cpuinfo") as f:
            cpu = next(l.split(":", 1)[1].strip() for l in f if l.startswith("model name"))
    except (OSError, StopIteration):
        pass
    print("machine: %d vCPU (%s), Linux %s; commit %s; %s"
          % (os.cpu_count(), cpu, platform.release(), commit, time.strftime("%Y-%m-%d %H:%M UTC", time.gmtime())))
    print("command: /usr/bin/python3 bench/tail.py " + " ".join(shlex.quote(a) for a in sys.argv[1:]))
    print("health flags passed: %s" % (" ".join(tr.health_args()) or "none (the gateway has none)"))
    print()
    if args.scenario in ("tail", "all"):
        print("tail: %.0f calls/s, %d keys, 1 s deadline, %d rounds x %.0f s per mode, interleaved; "
              "replica 1 of 3 --slow-fraction 0.02 --slow-ms 200, all --latency-ms 2\n"
              % (args.rate, args.keys, args.rounds, args.duration))
        tail_experiment(args, h, ld, tr)
        print()
    if args.scenario in ("failover", "all"):
        print("failover: %.0f calls/s, %d keys, 1 s deadline, %.0f s of load, fault at %.1f s; "
              "hedge_delay_ms %s\n" % (args.rate, args.keys, args.failover_s, args.failover_s / 3,
                                       args.failover_hedge_ms))
        failover_experiment(args, h, ld, tr)
    return 0


if __name__ == "__main__":
    sys.exit(main())
