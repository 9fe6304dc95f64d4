# SPDX-License-Identifier: Apache-2.0
"""infergw-bench against a real gateway: closed loop by count, open loop at a
fixed rate (achieved rate and total), statuses counted by name against
replicas that always fail, latency percentiles in order, and the flags that
must refuse to run."""

import json
import os
import subprocess
import unittest

import harness as h

PCTS = ("min", "p50", "p90", "p99", "p99.9", "max")


def run_bench(target, *args, timeout=60, expect=0):
    argv = [h._bin("infergw-bench"), "--json"] + list(args) + [target]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != expect:
        raise AssertionError("%s exited %d (expected %d)\nstdout: %s\nstderr: %s"
                             % (" ".join(argv), p.returncode, expect, p.stdout, p.stderr))
    if expect != 0:
        return p
    lines = [l for l in p.stdout.splitlines() if l.strip()]
    if len(lines) != 1:
        raise AssertionError("expected one JSON line, got:\n%s" % p.stdout)
    return json.loads(lines[0])


class BenchTest(h.GatewayTestCase):
    N_REPLICAS = 2

    def assertMonotonic(self, r):
        lat = r["latency_us"]
        vals = [lat[k] for k in PCTS]
        self.assertEqual(vals, sorted(vals), "percentiles out of order: %r" % (lat,))
        self.assertGreater(lat["p50"], 0)
        self.assertLessEqual(lat["min"], lat["mean"])
        self.assertLessEqual(lat["mean"], lat["max"])

    def test_closed_loop_count(self):
        r = run_bench(self.cluster.target, "--count", "2000", "--concurrency", "16",
                      "--connections", "2", "--route-keys", "50", "--key-dist", "zipf",
                      "--metadata", "x-bench:1", "--deadline-ms", "5000")
        self.assertEqual(r["mode"], "closed")
        self.assertEqual(r["issued"], 2000)
        self.assertEqual(r["completed"], 2000)
        self.assertEqual(r["status"], {"OK": 2000})
        self.assertEqual((r["no_status"], r["connection_lost"], r["unfinished"]), (0, 0, 0))
        self.assertGreater(r["achieved_rate"], 0)
        self.assertMonotonic(r)

    def test_open_loop_rate(self):
        gw = self.cluster.gateway
        extra = ["--cpu-pid", str(gw.pid)] if gw else []
        r = run_bench(self.cluster.target, "--rate", "500", "--duration", "2",
                      "--route-keys", "100", *extra)
        self.assertEqual(r["mode"], "open")
        self.assertAlmostEqual(r["achieved_rate"], 500, delta=50)
        self.assertGreaterEqual(r["completed"], 950)
        self.assertLessEqual(r["completed"], 1050)
        self.assertEqual(r["status"], {"OK": r["completed"]})
        self.assertEqual(r["issued"], r["completed"])
        self.assertMonotonic(r)
        if gw:
            self.assertGreaterEqual(r["cpu_s"], 0)
            self.assertEqual(r["cpu_pid"], gw.pid)

    def test_open_loop_poisson_count(self):
        r = run_bench(self.cluster.target, "--rate", "1000", "--arrival", "poisson",
                      "--count", "500", "--connections", "3", "--payload-bytes", "4096")
        self.assertEqual(r["completed"], 500)
        self.assertEqual(r["status"], {"OK": 500})
        self.assertGreater(r["request_bytes"], 4096)
        self.assertMonotonic(r)

    def test_payload_file(self):
        """--payload-file sends a raw serialized message, gRPC-framed:
        ModelReadyRequest{name: "demo"} (field 1, length 4) to ModelReady."""
        path = os.path.join(h.WORK_DIR, "%d-bench-ready.bin" % os.getpid())
        with open(path, "wb") as f:
            f.write(b"\x0a\x04demo")
        r = run_bench(self.cluster.target, "--count", "100", "--payload-file", path,
                      "--method", "/inference.GRPCInferenceService/ModelReady")
        self.assertEqual(r["status"], {"OK": 100})

    def test_refuses_unbounded_and_bad_flags(self):
        p = run_bench(self.cluster.target, "--rate", "10", expect=2)
        self.assertIn("--duration", p.stderr)
        run_bench(self.cluster.target, "--duration", "3601", expect=2)
        run_bench(self.cluster.target, "--count", "1", "--key-dist", "pareto", expect=2)

    def test_help_lists_every_flag(self):
        p = subprocess.run([h._bin("infergw-bench"), "--help"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(p.returncode, 0)
        for flag in ("--target", "--method", "--payload-file", "--payload-bytes", "--model",
                     "--metadata", "--route-keys", "--key-dist", "--rate", "--arrival",
                     "--concurrency", "--connections", "--duration", "--count",
                     "--deadline-ms", "--cpu-pid", "--seed", "--json", "--stream-tokens",
                     "Example"):
            self.assertIn(flag, p.stdout)


class BenchStreamTest(unittest.TestCase):
    """--stream-tokens: ModelStreamInfer calls of a token replica, each
    message counted and timed, straight to the replica and through the gateway."""

    def test_stream_tokens(self):
        rep = h.start_replica("bench-tok", "--token-model", "llm", "--token-ms", "1")
        self.addCleanup(rep.stop)
        gw = h.start_gateway({"llm": [rep.addr]})
        self.addCleanup(gw.stop)
        for target in (rep.addr, gw.addr):
            r = run_bench(target, "--stream-tokens", "50", "--model", "llm", "--count", "40",
                          "--concurrency", "10", "--connections", "2", "--cpu-pid", str(gw.pid))
            self.assertEqual(r["method"], "/inference.GRPCInferenceService/ModelStreamInfer")
            self.assertEqual(r["status"], {"OK": 40}, target)
            self.assertEqual((r["stream_tokens"], r["messages"], r["short_calls"]), (50, 2000, 0))
            self.assertGreater(r["messages_per_s"], 0)
            for k in ("first_message_us", "message_gap_us"):
                vals = [r[k][p] for p in ("p50", "p90", "p99", "p99.9")]
                self.assertEqual(vals, sorted(vals), k)
            # 1 ms a token: the median gap between two messages is about that.
            self.assertGreater(r["message_gap_us"]["p50"], 500)
            self.assertGreaterEqual(r["cpu_us_per_message"], 0)  # clock ticks: may be 0
        # With --payload-file the request is the file's: one that asks for 10
        # tokens while --stream-tokens expects 20 is counted short.
        req = h.pb.ModelInferRequest(model_name="llm")
        req.inputs.add(name="PROMPT", datatype="BYTES", shape=[1]).contents.bytes_contents.append(
            b"short")
        req.parameters["max_tokens"].int64_param = 10
        path = os.path.join(h.WORK_DIR, "%d-bench-short.bin" % os.getpid())
        with open(path, "wb") as f:
            f.write(req.SerializeToString())
        r = run_bench(rep.addr, "--stream-tokens", "20", "--payload-file", path, "--count", "5")
        self.assertEqual((r["status"], r["messages"], r["short_calls"]), ({"OK": 5}, 50, 5))


class BenchErrorStatusTest(h.GatewayTestCase):
    N_REPLICAS = 1
    REPLICA_ARGS = ("--error-fraction", "1", "--error-code", "UNAVAILABLE")

    def test_statuses_counted_by_name(self):
        r = run_bench(self.cluster.target, "--count", "300", "--concurrency", "8")
        self.assertEqual(r["completed"], 300)
        self.assertEqual(r["status"], {"UNAVAILABLE": 300})
        lat = r["latency_us"]
        vals = [lat[k] for k in PCTS]
        self.assertEqual(vals, sorted(vals))



def h2load_run(target, body, *args, timeout=60, log=True):
    """h2load against <target> with <body> as every request; (mean latency
    in µs, latencies in µs from its per-request log, or [] without <log>)."""
    import re
    import tempfile
    logf = tempfile.NamedTemporaryFile(prefix="h2load-", suffix=".log", delete=False).name
    argv = ["h2load", "-d", body, "-H", "content-type: application/grpc", "-H", "te: trailers",
            ] + (["--log-file", logf] if log else []) + list(args) + [
        "http://%s/inference.GRPCInferenceService/ModelInfer" % target]
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    if p.returncode != 0:
        raise AssertionError("h2load failed: %s\n%s" % (p.stdout, p.stderr))
    m = re.search(r"time for request:\s+\S+\s+\S+\s+([\d.]+)(us|ms|s)", p.stdout)
    mean = float(m.group(1)) * {"us": 1, "ms": 1e3, "s": 1e6}[m.group(2)]
    lat = []
    if log:
        with open(logf) as f:
            lat = sorted(int(l.split()[2]) for l in f if l.strip())
    os.unlink(logf)
    return mean, lat


class BenchAgainstH2loadTest(unittest.TestCase):
    """infergw-bench measured against h2load on the same server: the same
    mean in a closed loop (against a reference replica taking 2 ms a call, so
    that what is compared is the measurement, not the two clients' own CPU on
    this small machine), and, against an upstream that stalls 200 ms once a
    second, the open-loop queueing that a closed loop hides."""

    @classmethod
    def setUpClass(cls):
        import tempfile
        import signal
        cls.steady = h.start_replica("bench-steady", "--latency-ms", "2", "--quiet",
                                     "--threads", "4")
        cls.addClassCleanup(cls.steady.stop)
        port = h.free_port()
        cls.stall = h.Proc("upstream-stall", [h._bin("infergw-bench-upstream"), "--listen",
                                              "127.0.0.1:%d" % port, "--stall-ms", "200"], port)
        cls.stall.wait_ready()
        # It has no signal handler: SIGTERM ends it with that signal.
        cls.addClassCleanup(cls.stall.stop, expect_code=-signal.SIGTERM)
        msg = h.typed_request(h.values(25)).SerializeToString()
        cls.body = tempfile.NamedTemporaryFile(prefix="req-", suffix=".bin", delete=False).name
        with open(cls.body, "wb") as f:  # h2load sends the body as is: framed
            f.write(b"\0" + len(msg).to_bytes(4, "big") + msg)
        cls.addClassCleanup(os.unlink, cls.body)
        cls.pb = cls.body[:-4] + ".pb"  # infergw-bench frames --payload-file itself
        with open(cls.pb, "wb") as f:
            f.write(msg)
        cls.addClassCleanup(os.unlink, cls.pb)

    def test_closed_loop_mean_agrees_with_h2load(self):
        means = []
        for _ in range(3):  # interleaved rounds; the machine is shared
            hm, _ = h2load_run(self.steady.addr, self.body, "-n", "3000", "-c", "4", "-m", "4",
                               log=False)
            r = run_bench(self.steady.addr, "--count", "3000", "--concurrency", "16",
                          "--connections", "4", "--payload-file", self.pb)
            means.append((hm, r["latency_us"]["mean"]))
        hm = sorted(m[0] for m in means)[1]
        bm = sorted(m[1] for m in means)[1]
        print("h2load mean %.1f us, infergw-bench mean %.1f us (medians of 3)" % (hm, bm))
        self.assertLess(abs(bm - hm) / hm, 0.10)

    def test_open_loop_shows_the_stall(self):
        _, lat = h2load_run(self.stall.addr, self.body, "-D", "3", "-c", "1", "-m", "1")
        h2_p99 = lat[int(0.99 * len(lat))] / 1000.0
        r = run_bench(self.stall.addr, "--rate", "500", "--duration", "3", "--connections", "1")
        open_p99 = r["latency_us"]["p99"] / 1000.0
        print("stalling upstream: h2load closed-loop p99 %.1f ms, infergw-bench open-loop p99 "
              "%.1f ms" % (h2_p99, open_p99))
        self.assertGreater(open_p99, 100.0)  # calls scheduled in a stall wait for it
        self.assertLess(h2_p99, 50.0)        # one call per stall: hidden below p99


if __name__ == "__main__":
    unittest.main()
