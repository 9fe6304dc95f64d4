# SPDX-License-Identifier: Apache-2.0
"""The call engine's retries and hedges, seen from outside: which replicas a
call reached (their JSON call logs, including the grpc-previous-rpc-attempts
they were sent), which answered (x-replica-id), and what the caller got.

Each test builds its own replicas and gateway: one replica misbehaves in a
set way, the others are healthy. Tunables are written through infergw-ctl to
a private redis-server, as an operator would."""

import collections
import time
import unittest

import grpc

import harness as h


def calls_logged(replica, status=None):
    """The replica's per-call log lines (optionally of one status), without
    the gateway's own grpc.health.v1 checks."""
    evs = [e for e in replica.events("call")
           if not e.get("method", "").startswith("/grpc.health.v1.")]
    return [e for e in evs if status is None or e.get("status") == status]


class _Setup(unittest.TestCase):
    def setUp(self):
        self.procs = []
        self.addCleanup(lambda: h.stop_all(self.procs))

    def start(self, bad_args, tunables=None, gateway_args=(), n=3, nbad=1):
        """Replicas r0..r<nbad-1> run with <bad_args>, the others healthy; the
        gateway routes pool demo over all of them (through Redis when
        <tunables> are set)."""
        self.reps = []
        for i in range(n):
            args = list(bad_args) if i < nbad else []
            self.reps.append(h.start_replica("r%d" % i, "--latency-ms", "1", *args))
        self.procs += self.reps
        addrs = [r.addr for r in self.reps]
        args = ["--workers", "1", "--log-level", "debug"] + list(gateway_args)
        if tunables is None:
            self.gw = h.start_gateway({"demo": addrs}, *args)
        else:
            redis = h.start_redis()
            self.procs.append(redis)
            url = h.redis_url(redis)
            h.run_ctl(url, "pool", "add", "demo")
            for a in addrs:
                h.run_ctl(url, "replica", "add", "demo", a)
            for k, v in dict(tunables, balance_factor="0").items():
                h.run_ctl(url, "conf", "set", "--pool", "demo", k, str(v))
            self.gw = h.start_gateway({}, "--redis", url, *args)
            self.gw.wait_event(lambda e: True, timeout=5, event="config_applied")
        self.procs.append(self.gw)
        self.ch = h.channel(self.gw.addr)
        self.addCleanup(self.ch.close)
        self.stub = h.infer_stub(self.ch)

    def infer(self, key, timeout=5.0, request=None):
        return self.stub.ModelInfer.with_call(request or h.typed_request([1, 2, 3]),
                                              timeout=timeout,
                                              metadata=[("x-route-key", key)])

    def wait_logged(self, replica, n, timeout=5.0):
        end = time.monotonic() + timeout
        while len(calls_logged(replica)) < n and time.monotonic() < end:
            time.sleep(0.02)
        return calls_logged(replica)


class RetryTest(_Setup):
    def test_unavailable_after_headers_is_retried_on_the_next_replica(self):
        """r0 answers UNAVAILABLE in trailers after headers on every call:
        each call that reached it is answered by another replica, which was
        told it is the second attempt. (Retry budget 100% of calls: the ring
        may give r0 more keys than the default budget's 10 + 20%.)"""
        self.start(["--error-fraction", "1", "--error-after-headers"],
                   tunables={"retry_budget_percent": 100})
        answered = collections.Counter()
        for i in range(60):
            resp, call = self.infer("key-%d" % i)
            self.assertEqual(list(resp.outputs[0].contents.fp32_contents), [3.0, 5.0, 7.0])
            answered[h.replica_of(call)] += 1
        self.assertEqual(answered["r0"], 0)
        failed = len(self.wait_logged(self.reps[0], 1))
        # (After 5 failures in a row r0 is ejected: its keys then go straight on.)
        self.assertGreaterEqual(failed, 3, "r0 got too few keys to show anything")
        retried = []
        for r in self.reps[1:]:
            retried += [e for e in calls_logged(r) if e.get("previous_attempts") == "1"]
        self.assertEqual(len(retried), failed)
        self.assertEqual(sum(answered.values()), 60)

    def test_status_not_in_retry_on_is_relayed_once(self):
        """INVALID_ARGUMENT is the replica's answer: relayed as sent, no retry."""
        self.start(["--error-fraction", "1", "--error-code", "INVALID_ARGUMENT"], n=1)
        for i in range(5):
            with self.assertRaises(grpc.RpcError) as cm:
                self.infer("k%d" % i)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
            self.assertEqual(h.md_get(cm.exception.trailing_metadata(), "x-injected-error"),
                             "INVALID_ARGUMENT")
        self.assertEqual(len(self.wait_logged(self.reps[0], 5)), 5)

    def test_resource_exhausted_retried_only_with_pushback(self):
        self.start(["--error-fraction", "1", "--error-code", "RESOURCE_EXHAUSTED"], n=1)
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer("a")
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertEqual(len(self.wait_logged(self.reps[0], 1)), 1)

    def test_pushback_delays_the_retry(self):
        """RESOURCE_EXHAUSTED with grpc-retry-pushback-ms 300: retried on
        another replica no sooner than 300 ms later."""
        self.start(["--error-fraction", "1", "--error-code", "RESOURCE_EXHAUSTED",
                    "--error-pushback", "300"])
        for i in range(40):
            t0 = time.monotonic()
            resp, call = self.infer("pb-%d" % i)
            took = time.monotonic() - t0
            if calls_logged(self.reps[0]):
                break
        else:
            self.fail("no key reached r0")
        self.assertNotEqual(h.replica_of(call), "r0")
        self.assertGreaterEqual(took, 0.3)

    def test_malformed_or_negative_pushback_forbids_the_retry(self):
        for value in ("-1", "soon"):
            with self.subTest(pushback=value):
                self.start(["--error-fraction", "1", "--error-pushback", value], n=2)
                seen = 0
                for i in range(30):
                    try:
                        self.infer("m-%d" % i)
                    except grpc.RpcError as e:
                        self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                        seen += 1
                self.assertGreater(seen, 0)
                self.assertEqual(len(self.wait_logged(self.reps[0], seen)), seen)
                retried = [e for e in calls_logged(self.reps[1]) if e.get("previous_attempts")]
                self.assertEqual(retried, [])
                h.stop_all(self.procs)
                self.procs = []

    def test_every_replica_failing_bounded_attempts_and_message(self):
        """Each call makes at most retry_max_attempts (3) attempts, the caller
        gets UNAVAILABLE with the replica's message, and the retry budget
        (20% of calls + 10) bounds the total."""
        self.start(["--error-fraction", "1"], nbad=3)
        stub = self.stub
        n = 100
        for i in range(n):
            with self.assertRaises(grpc.RpcError) as cm:
                stub.ModelInfer(h.typed_request([1]), timeout=5,
                                metadata=[("x-route-key", "f-%d" % i)])
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            self.assertEqual(cm.exception.details(), "injected error")
        time.sleep(0.3)
        attempts = sum(len(calls_logged(r)) for r in self.reps)
        self.assertGreaterEqual(attempts, n)
        self.assertLessEqual(attempts, 1.2 * n + 10)
        prev = collections.Counter(e.get("previous_attempts")
                                   for r in self.reps for e in calls_logged(r))
        self.assertLessEqual(set(prev), {None, "1", "2"})
        self.assertEqual(prev[None], n)

    def test_request_longer_than_the_retry_buffer_is_not_retried(self):
        big = h.raw_request(b"\0" * 8192)
        self.start(["--error-fraction", "1", "--error-after-headers"],
                   gateway_args=("--retry-buffer-bytes", "1024"), n=2)
        failed = ok = 0
        for i in range(30):
            try:
                self.infer("b-%d" % i, request=big)
                ok += 1
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAVAILABLE)
                failed += 1
        self.assertGreater(failed, 0)
        self.assertEqual(len(self.wait_logged(self.reps[0], failed)), failed)
        self.assertEqual([e for e in calls_logged(self.reps[1]) if e.get("previous_attempts")],
                         [])


class AccessLogTest(_Setup):
    def test_access_log_lists_every_attempt(self):
        """--access-log: one JSON line per call with its request id, pool,
        status, and each attempt's replica, kind and outcome; no secret."""
        import json
        import os
        import tempfile
        path = os.path.join(tempfile.mkdtemp(prefix="infergw-alog-"), "access.log")
        self.start(["--error-fraction", "1", "--error-after-headers"],
                   gateway_args=("--access-log", path))
        by_rid = {}
        for i in range(30):
            rid = "rid-%d" % i
            resp, call = self.stub.ModelInfer.with_call(
                h.typed_request([1]), timeout=5,
                metadata=[("x-route-key", "a-%d" % i), ("x-request-id", rid),
                          ("authorization", "Bearer sk-secret-%d" % i)])
            by_rid[rid] = h.replica_of(call)
        end = time.monotonic() + 5
        lines = []
        while time.monotonic() < end:
            with open(path) as f:
                lines = [json.loads(l) for l in f if l.strip()]
            if len(lines) >= 30:
                break
            time.sleep(0.05)
        self.assertEqual(len(lines), 30)
        with open(path) as f:
            self.assertNotIn("sk-secret", f.read())
        r0 = self.reps[0].addr
        retried = 0
        for ln in lines:
            self.assertIn(ln["request_id"], by_rid)
            self.assertEqual(ln["status"], "OK")
            self.assertEqual(ln["pool"], "demo")
            self.assertEqual(ln["method"], "/inference.GRPCInferenceService/ModelInfer")
            self.assertEqual(ln["attempts"], len(ln["upstream"]))
            last = ln["upstream"][-1]
            self.assertEqual(last["outcome"], "OK")
            self.assertNotEqual(last["replica"], r0)
            if ln["attempts"] == 2:
                retried += 1
                self.assertEqual(ln["upstream"][0],
                                 {"replica": r0, "kind": "primary", "outcome": "UNAVAILABLE"})
                self.assertEqual(last["kind"], "retry")
        self.assertEqual(retried, len(calls_logged(self.reps[0])))
        self.assertGreater(retried, 0)
        # With --auth=none the gateway checks nothing, so it forwards the
        # caller's authorization (with authentication on it never does).
        self.assertTrue(all(e.get("authorization") for r in self.reps for e in calls_logged(r)))


class HedgeTest(_Setup):
    def test_slow_replica_is_hedged_and_the_loser_cancelled(self):
        """r0 takes 2 s on every call; with hedge_delay_ms 30, calls keyed to
        r0 are answered by the next replica in well under r0's time, and r0
        sees each of its calls cancelled. (24 calls, about 8 keyed to r0; the
        hedge budget is every call: with the default 10 + 10% of calls, the
        13th call keyed to r0 would not be hedged, and the ring, laid out by
        the replicas' random ports, sometimes keys that many there.)"""
        self.start(["--slow-fraction", "1", "--slow-ms", "2000"],
                   tunables={"hedge_delay_ms": 30, "hedge_budget_percent": 100})
        slow = 0
        for i in range(24):
            t0 = time.monotonic()
            resp, call = self.infer("h-%d" % i, timeout=5)
            self.assertNotEqual(h.replica_of(call), "r0")
            slow = max(slow, time.monotonic() - t0)
        self.assertLess(slow, 1.0)
        hedges = [e for e in self.gw.events("attempt_started") if e.get("kind") == "hedge"]
        self.assertGreater(len(hedges), 0)
        # Every hedge hedged a call that r0 held; r0 saw each of those cancelled.
        self.assertEqual(self.reps[0].wait_count("cancelled", len(hedges), timeout=5),
                         len(hedges))
        self.assertEqual(calls_logged(self.reps[0]), [])

    def test_excluded_method_is_not_hedged(self):
        self.start(["--slow-fraction", "1", "--slow-ms", "400"],
                   tunables={"hedge_delay_ms": 30,
                             "hedge_exclude": "/inference.GRPCInferenceService/ModelInfer"})
        for i in range(40):
            resp, call = self.infer("x-%d" % i, timeout=5)
            if h.replica_of(call) == "r0":
                return
        self.fail("no call was answered by the slow replica: it was hedged")

    def test_per_try_timeout_moves_on(self):
        """per_try_timeout_ms 100 against a replica that takes 2 s: the call
        goes to the next replica after ~100 ms; r0's attempt is cancelled."""
        self.start(["--slow-fraction", "1", "--slow-ms", "2000"],
                   tunables={"per_try_timeout_ms": 100})
        for i in range(40):
            t0 = time.monotonic()
            resp, call = self.infer("t-%d" % i, timeout=5)
            took = time.monotonic() - t0
            self.assertNotEqual(h.replica_of(call), "r0")
            if took >= 0.1:
                break
        else:
            self.fail("no key reached r0")
        self.assertLess(took, 1.5)
        self.assertTrue(self.reps[0].wait_count("cancelled", 1, timeout=5) >= 1)


if __name__ == "__main__":
    unittest.main()
