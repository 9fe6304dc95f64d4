#!/usr/bin/python3
# SPDX-License-Identifier: Apache-2.0
"""Config propagation delay: from an infergw-ctl write to the first call that
the gateway routes by the new ring.

Starts its own redis-server, 3 reference replicas and a gateway on loopback
(--redis), puts the replicas on pool demo, picks a routing key owned by the
first replica, then makes <changes> writes alternating `replica drain` and
`replica undrain` of that replica. For each write, back-to-back calls with the
key probe until the answer comes from where the new ring sends it (another
replica after a drain, the first one after an undrain). Reported per write:

- ctl -> routed: from starting the infergw-ctl process to the answer of the
  first call routed by the new ring (what an operator sees);
- publish -> routed: from the moment a subscriber on <prefix>changed received
  the write's PUBLISH (the write is then committed) to that same answer.

The answer time is an upper bound of the routing moment (a probe call takes
the round trip printed as "probe call"). Prints p50/p99 and a markdown row.

Run with Debian's /usr/bin/python3 (python3-grpcio):
  bench/propagation.py --build-dir build [--changes 100]
"""

import argparse
import os
import platform
import shlex
import subprocess
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.path.dirname(HERE)


def parse_args():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--build-dir", default=os.path.join(SOURCE_DIR, "build"),
                    help="CMake build dir holding bin/infergw, bin/infergw-ctl, "
                         "bin/infergw-replica [%(default)s]")
    ap.add_argument("--changes", type=int, default=100,
                    help="writes to measure (alternating drain/undrain) [%(default)s]")
    ap.add_argument("--workers", type=int, default=2, help="gateway worker threads [%(default)s]")
    ap.add_argument("--limit-s", type=float, default=10.0,
                    help="give up on one write after this long [%(default)s]")
    return ap.parse_args()


def pct(sorted_vals, p):
    """Nearest-rank percentile of an ascending list."""
    if not sorted_vals:
        return float("nan")
    k = max(1, int(-(-p * len(sorted_vals) // 100)))
    return sorted_vals[min(k, len(sorted_vals)) - 1]


def main():
    args = parse_args()
    build = os.path.abspath(args.build_dir)
    os.environ["INFERGW_BIN"] = os.path.join(build, "bin")
    os.environ["INFERGW_SOURCE_DIR"] = SOURCE_DIR
    os.environ.setdefault("INFERGW_WORK_DIR", os.path.join(build, "bench-work", "propagation"))
    sys.path.insert(0, os.path.join(SOURCE_DIR, "tests", "integration", "python"))
    import harness as h  # noqa: E402 (needs the environment above)

    procs = []
    try:
        redis = h.start_redis(name="redis-propagation")
        procs.append(redis)
        url = h.redis_url(redis)
        reps = []
        for i in range(3):
            p = h.start_replica("prop-r%d" % i, "--quiet")
            procs.append(p)
            reps.append(p)
        rid = {p.addr: "prop-r%d" % i for i, p in enumerate(reps)}
        h.run_ctl(url, "pool", "add", "demo")
        for p in reps:
            h.run_ctl(url, "replica", "add", "demo", p.addr)
        gw = h.start_gateway({}, "--redis", url, "--workers", str(args.workers))
        procs.append(gw)
        target = reps[0].addr
        key = None
        for i in range(1000):
            k = "prop-%d" % i
            if h.run_ctl(url, "route", "demo", k).stdout.split()[0] == target:
                key = k
                break
        assert key, "no key maps to %s" % target

        # Subscriber: when each version's PUBLISH arrives.
        published = {}
        sub = h.redis_connect(redis.port)
        assert h.redis_call(sub, "SUBSCRIBE", "infergw:changed")[0] == "subscribe"
        sub[0].settimeout(None)

        def listen():
            try:
                while True:
                    msg = h.redis_read(sub)
                    published[int(msg[2])] = time.time()
            except (OSError, RuntimeError, ValueError):
                return

        threading.Thread(target=listen, daemon=True).start()

        ch = h.channel(gw.addr)
        stub = h.infer_stub(ch)
        vals = h.values(4)
        req = h.typed_request(vals)
        md = [("x-route-key", key)]
        rtts = []

        def probe():
            t = time.time()
            _, call = stub.ModelInfer.with_call(req, metadata=md, timeout=5)
            done = time.time()
            rtts.append(done - t)
            return h.replica_of(call), done

        first, _ = probe()
        assert first == rid[target], "key %s went to %s, not %s" % (key, first, rid[target])
        ctl_argv = [os.path.join(build, "bin", "infergw-ctl"), "--redis", url, "replica"]
        from_ctl, from_pub, calls_per_change = [], [], []
        for i in range(args.changes):
            drain = i % 2 == 0
            argv = ctl_argv + ["drain" if drain else "undrain", target]
            t0 = time.time()
            ctl = subprocess.Popen(argv, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            n = 0
            while True:
                who, done = probe()
                n += 1
                if (who != rid[target]) == drain:
                    break
                if done - t0 > args.limit_s:
                    raise SystemExit("write %d (%s) not routed after %.0f s" % (i, argv[-2],
                                                                              args.limit_s))
            out, err = ctl.communicate(timeout=30)
            if ctl.returncode != 0:
                raise SystemExit("infergw-ctl failed: %s" % err)
            version = h.ctl_version(out)
            end = time.time() + 2
            while version not in published and time.time() < end:
                time.sleep(0.001)
            from_ctl.append(done - t0)
            if version in published:
                from_pub.append(done - published[version])
            calls_per_change.append(n)
            time.sleep(0.02)
        ch.close()
    finally:
        for p in reversed(procs):
            try:
                p.stop()
            except AssertionError as e:
                print("warning: %s" % e, file=sys.stderr)

    ms = lambda v: v * 1000.0  # noqa: E731
    a, b, r = sorted(from_ctl), sorted(from_pub), sorted(rtts)
    cmdline = " ".join(shlex.quote(x) for x in [sys.executable] + sys.argv)
    print("# config propagation: infergw-ctl write -> first call routed by the new ring")
    print("command: %s" % cmdline)
    print("machine: %s, %d CPUs, %s; gateway --workers %d, --redis-poll-ms 1000 (default)"
          % (platform.node() or "?", os.cpu_count() or 0, platform.platform(), args.workers))
    print("writes: %d (alternating replica drain/undrain %s), probe key %s"
          % (len(from_ctl), target, key))
    print("%-20s %8s %8s %8s %8s %8s" % ("", "p50 ms", "p99 ms", "min ms", "max ms", "mean ms"))
    for name, v in (("ctl -> routed", a), ("publish -> routed", b), ("probe call", r)):
        print("%-20s %8.2f %8.2f %8.2f %8.2f %8.2f"
              % (name, ms(pct(v, 50)), ms(pct(v, 99)), ms(v[0]), ms(v[-1]), ms(sum(v) / len(v))))
    print("probe calls per write: mean %.1f" % (sum(calls_per_change) / len(calls_per_change)))
    print()
    print("| config propagation (infergw-ctl write -> first call on the new ring), %d writes "
          "| p50 %.1f ms | p99 %.1f ms | from the PUBLISH: p50 %.1f ms, p99 %.1f ms |"
          % (len(a), ms(pct(a, 50)), ms(pct(a, 99)), ms(pct(b, 50)), ms(pct(b, 99))))


if __name__ == "__main__":
    main()
