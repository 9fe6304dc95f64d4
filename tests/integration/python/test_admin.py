# SPDX-License-Identifier: Apache-2.0
"""Admin HTTP endpoint (--admin): /metrics counts exactly what clients saw,
/readyz follows replica reachability, /healthz answers, and the exposition
parses (by a small parser here, and by promtool when it is installed)."""

import json
import re
import shutil
import subprocess
import time
import unittest

import grpc

from harness import (stop_all, DIRECT, free_port, health_stub, health_pb2, http_get, infer_stub,
                     channel, start_gateway, start_replica, typed_request, values)

INFER = "/inference.GRPCInferenceService/ModelInfer"
CHECK = "/grpc.health.v1.Health/Check"

_NAME = r"[a-zA-Z_:][a-zA-Z0-9_:]*"
_LABEL = re.compile(r'([a-zA-Z_][a-zA-Z0-9_]*)="((?:[^"\\\n]|\\["\\n])*)"')
_VALUE = re.compile(r"^(?:[+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?|[+-]?Inf|NaN)$")


def parse_metrics(text):
    """{(name, frozenset of (label, value))): value}; raises on a bad line.

    Every line is a '# HELP name text' or '# TYPE name type' comment, or
    'name{label="value",...} value' (labels optional, values escaped)."""
    samples = {}
    typed = set()
    for n, line in enumerate(text.split("\n"), 1):
        if line == "":
            continue
        m = re.match(r"^# (HELP|TYPE) (%s) (.+)$" % _NAME, line)
        if m:
            if m.group(1) == "TYPE":
                assert m.group(3) in ("counter", "gauge", "histogram", "summary", "untyped"), line
                assert m.group(2) not in typed, "TYPE twice for %s" % m.group(2)
                typed.add(m.group(2))
            continue
        assert not line.startswith("#"), "line %d: stray comment %r" % (n, line)
        m = re.match(r"^(%s)(\{(.*)\})? (\S+)$" % _NAME, line)
        assert m, "line %d: not 'name{labels} value': %r" % (n, line)
        labels = []
        rest = m.group(3) or ""
        while rest:
            lm = _LABEL.match(rest)
            assert lm, "line %d: bad label list %r" % (n, m.group(3))
            value = re.sub(r"\\(.)", lambda e: {"n": "\n"}.get(e.group(1), e.group(1)),
                           lm.group(2))
            labels.append((lm.group(1), value))
            rest = rest[lm.end():]
            if rest.startswith(","):
                rest = rest[1:]
            else:
                assert rest == "", "line %d: bad label separator %r" % (n, rest)
        assert _VALUE.match(m.group(4)), "line %d: bad value %r" % (n, m.group(4))
        key = (m.group(1), frozenset(labels))
        assert key not in samples, "line %d: duplicate series" % n
        samples[key] = float(m.group(4))
    return samples


def get(samples, name, **labels):
    return samples.get((name, frozenset(labels.items())), 0.0)


@unittest.skipIf(DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class AdminTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.addClassCleanup(cls._stop_all)
        cls.ok = cls._replica("admin-ok")
        cls.bad = cls._replica("admin-bad", "--error-fraction", "1")
        cls.solo = [cls._replica("admin-solo0"), cls._replica("admin-solo1")]
        cls.admin_port = free_port()
        cls.gateway = start_gateway({"demo": [cls.ok.addr], "flaky": [cls.bad.addr],
                                     "solo": [r.addr for r in cls.solo]},
                                    "--admin", "127.0.0.1:%d" % cls.admin_port)
        cls.procs.insert(0, cls.gateway)
        cls.channel = channel(cls.gateway.addr)
        cls.addClassCleanup(cls.channel.close)
        cls.stub = infer_stub(cls.channel)
        cls._wait_ready(200)

    @classmethod
    def _replica(cls, rid, *args, port=None):
        p = start_replica(rid, *args, port=port)
        cls.procs.append(p)
        return p

    @classmethod
    def _stop_all(cls):
        stop_all(cls.procs)

    @classmethod
    def _wait_ready(cls, want, timeout=15.0, poke=None):
        end = time.monotonic() + timeout
        while True:
            status, body = http_get(cls.admin_port, "/readyz")
            if status == want or time.monotonic() > end:
                return status, body
            if poke:
                poke()
            time.sleep(0.1)

    def scrape(self):
        status, text = http_get(self.admin_port, "/metrics")
        self.assertEqual(status, 200)
        return text, parse_metrics(text)

    def infer(self, model, n):
        codes = {}
        for i in range(n):
            try:
                self.stub.ModelInfer(typed_request(values(4, i), model=model), timeout=10)
                code = grpc.StatusCode.OK
            except grpc.RpcError as e:
                code = e.code()
            codes[code.name] = codes.get(code.name, 0) + 1
        return codes

    def test_a_counters_equal_client_counts(self):
        before = self.scrape()[1]
        ok = self.infer("demo", 17)
        missing = self.infer("nosuch", 5)
        failed = self.infer("flaky", 9)
        hs = health_stub(self.channel)
        for _ in range(3):
            hs.Check(health_pb2.HealthCheckRequest(), timeout=5)
        self.assertEqual(ok, {"OK": 17})
        self.assertEqual(missing, {"NOT_FOUND": 5})
        self.assertEqual(failed, {"UNAVAILABLE": 9})

        def delta(s, name, **labels):
            return get(s, name, **labels) - get(before, name, **labels)

        want = [
            (("infergw_calls_total",), dict(pool="demo", method=INFER, code="OK"), 17),
            (("infergw_calls_total",), dict(pool="unknown", method=INFER, code="NOT_FOUND"), 5),
            (("infergw_calls_total",), dict(pool="flaky", method=INFER, code="UNAVAILABLE"), 9),
            (("infergw_calls_total",), dict(pool="none", method=CHECK, code="OK"), 3),
            (("infergw_call_duration_seconds_count",), dict(pool="demo"), 17),
            (("infergw_call_duration_seconds_bucket",), dict(pool="flaky", le="+Inf"), 9),
            (("infergw_upstream_attempts_total",),
             dict(replica=self.ok.addr, kind="primary", outcome="OK"), 17),
            (("infergw_upstream_attempts_total",),
             dict(replica=self.bad.addr, kind="primary", outcome="UNAVAILABLE"), 9),
        ]
        # A call is counted when both of its streams are closed, a moment
        # after the client has its answer: wait for the counts to settle.
        end = time.monotonic() + 5
        while True:
            s = self.scrape()[1]
            got = [delta(s, name[0], **labels) for name, labels, _ in want]
            if got == [n for _, _, n in want] or time.monotonic() > end:
                break
            time.sleep(0.05)
        for (name, labels, n), g in zip(want, got):
            self.assertEqual(g, n, "%s%s" % (name[0], labels))
        # Nothing else was counted for these pools.
        total = sum(v - before.get(k, 0.0) for k, v in s.items() if k[0] == "infergw_calls_total")
        self.assertEqual(total, 17 + 5 + 9 + 3)
        self.assertEqual(get(s, "infergw_inflight_calls", replica=self.ok.addr), 0)
        self.assertEqual(get(s, "infergw_replica_reachable", replica=self.ok.addr), 1)
        self.assertGreaterEqual(get(s, "infergw_client_connections"), 1)
        # Cumulative buckets, +Inf == _count, and a _sum.
        les = sorted((float(dict(k[1])["le"]), v) for k, v in s.items()
                     if k[0] == "infergw_call_duration_seconds_bucket"
                     and dict(k[1]).get("pool") == "demo")
        self.assertEqual([v for _, v in les], sorted(v for _, v in les))
        self.assertEqual(les[-1][1], get(s, "infergw_call_duration_seconds_count", pool="demo"))
        self.assertGreater(get(s, "infergw_call_duration_seconds_sum", pool="demo"), 0)

    def test_b_exposition_parses_and_promtool_accepts(self):
        self.infer("demo", 3)
        text, samples = self.scrape()
        self.assertTrue(text.endswith("\n"))
        names = {k[0] for k in samples}
        for name in ("infergw_calls_total", "infergw_call_duration_seconds_bucket",
                     "infergw_upstream_attempts_total", "infergw_inflight_calls",
                     "infergw_replica_reachable", "infergw_config_version",
                     "infergw_config_age_seconds", "infergw_client_connections"):
            self.assertIn(name, names)
        promtool = shutil.which("promtool")
        self.assertIsNotNone(promtool, "promtool missing (Debian package prometheus, which "
                             "tests/run.sh installs)")
        r = subprocess.run([promtool, "check", "metrics"], input=text.encode(),
                           capture_output=True, timeout=30)
        self.assertEqual(r.returncode, 0, "promtool check metrics:\n%s%s"
                         % (r.stdout.decode(), r.stderr.decode()))

    def test_c_healthz_and_debug(self):
        self.assertEqual(http_get(self.admin_port, "/healthz"), (200, "ok\n"))
        self.assertEqual(http_get(self.admin_port, "/nosuch")[0], 404)
        status, body = http_get(self.admin_port, "/debug/replicas")
        self.assertEqual(status, 200)
        reps = {r["address"]: r for r in json.loads(body)["replicas"]}
        self.assertEqual(set(reps), {self.ok.addr, self.bad.addr} | {r.addr for r in self.solo})
        self.assertEqual(reps[self.ok.addr]["pools"], ["demo"])
        self.assertTrue(reps[self.ok.addr]["reachable"])
        self.assertFalse(reps[self.ok.addr]["drain"])
        self.assertEqual(reps[self.ok.addr]["inflight"], 0)

    def test_c_debug_ring(self):
        """/debug/ring shows the pool's ring as routed: shares, tunables, and
        a key's walk whose first step is the replica the ring model predicts."""
        from harness import RingModel
        addrs = [r.addr for r in self.solo]
        status, body = http_get(self.admin_port, "/debug/ring?pool=solo&key=user-42")
        self.assertEqual(status, 200, body)
        ring = json.loads(body)
        self.assertEqual(ring["pool"], "solo")
        self.assertEqual(ring["points"], 200)
        self.assertEqual({r["address"]: r["weight"] for r in ring["replicas"]},
                         {a: 100 for a in addrs})
        self.assertAlmostEqual(sum(r["share"] for r in ring["replicas"]), 1.0, places=6)
        self.assertEqual(ring["tunables"]["retry_max_attempts"], "3")
        walk = ring["key"]["walk"]
        self.assertEqual(walk[0], RingModel({a: 100 for a in addrs}).owner("user-42"))
        self.assertEqual(sorted(walk), sorted(addrs))
        self.assertEqual(http_get(self.admin_port, "/debug/ring?pool=nosuch")[0], 404)
        self.assertEqual(http_get(self.admin_port, "/debug/ring")[0], 404)

    def test_d_readyz_follows_replicas(self):
        self.assertEqual(http_get(self.admin_port, "/readyz"), (200, "ready\n"))
        ports = [r.port for r in self.solo]
        for r in self.solo:
            r.stop()
        status, body = self._wait_ready(503, timeout=10)
        self.assertEqual(status, 503, body)
        self.assertIn("pool 'solo'", body)
        self.assertEqual(len(body.strip().split("\n")), 1)
        s = self.scrape()[1]
        for r in self.solo:
            self.assertEqual(get(s, "infergw_replica_reachable", replica=r.addr), 0)
        # Still not ready while calls find nobody.
        self.infer("solo", 2)
        self.assertEqual(http_get(self.admin_port, "/readyz")[0], 503)
        # One back: calls reconnect to it and the pool is ready again.
        back = self._replica("admin-solo0b", port=ports[0])
        status, body = self._wait_ready(200, timeout=20, poke=lambda: self.infer("solo", 1))
        self.assertEqual(status, 200, body)
        s = self.scrape()[1]
        self.assertEqual(get(s, "infergw_replica_reachable", replica=back.addr), 1)
        self.assertEqual(http_get(self.admin_port, "/healthz")[0], 200)


if __name__ == "__main__":
    unittest.main()
