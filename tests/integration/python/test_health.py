# SPDX-License-Identifier: Apache-2.0
"""Replica health: active grpc.health.v1 checks (NOT_SERVING via SIGUSR1 and
back via SIGUSR2), a SIGSTOPped replica noticed by keepalive and checks, a
kill -9 seen as down within 1 s, and passive outlier ejection of a replica
that answers UNAVAILABLE. In every case the replica is passed over by the
ring walk without moving the keys of the other replicas (predicted with
RingModel), /debug/replicas says what happened, and it comes back."""

import signal
import time
import unittest

import grpc

import harness as h


# Aggressive settings so that every transition takes a fraction of a second.
FAST = ("--health-interval-ms", "200", "--health-timeout-ms", "200", "--keepalive-ms", "200",
        "--keepalive-timeout-ms", "300")
KEYS = ["user-%d" % i for i in range(120)]


class HealthCase(unittest.TestCase):
    """Per test: 3 replicas (one may get extra flags) behind a gateway with
    fast health settings and an admin port."""

    BAD_ARGS = ()  # flags of the last BAD_COUNT replicas
    BAD_COUNT = 1

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.procs = []
        self.replicas = []
        for i in range(3):
            extra = self.BAD_ARGS if i >= 3 - self.BAD_COUNT else ()
            r = h.start_replica("%s-r%d" % (type(self).__name__.lower(), i), *extra)
            self.procs.append(r)
            self.replicas.append(r)
        self.rid = {r.addr: r.name[len("replica-"):] for r in self.replicas}
        self.addr_of = {v: k for k, v in self.rid.items()}
        self.admin = h.free_port()
        addrs = [r.addr for r in self.replicas]
        self.gw = h.start_gateway({"demo": addrs}, "--admin", "127.0.0.1:%d" % self.admin,
                                  *(FAST + self.gateway_args()))
        self.procs.insert(0, self.gw)
        self.addCleanup(self.stop_all)
        self.ch = h.channel(self.gw.addr)
        self.addCleanup(self.ch.close)
        self.stub = h.infer_stub(self.ch)
        self.model = h.RingModel({a: 100 for a in addrs})
        # Every replica has passed its health checks before the test starts.
        ok = h.wait_for(lambda: all(r["health"] == "healthy" for r in self.replicas_view()), 5.0)
        self.assertTrue(ok, "replicas not healthy after 5 s: %s" % self.replicas_view())

    def gateway_args(self):
        return ()

    def stop_all(self):
        for r in self.replicas:
            if not r.stopped and r.popen.poll() is None:
                r.send_signal(signal.SIGCONT)
        h.stop_all(self.procs)

    def replicas_view(self):
        return h.http_json(self.admin, "/debug/replicas")["replicas"]

    def replica_view(self, addr):
        for r in self.replicas_view():
            if r["address"] == addr:
                return r
        raise AssertionError("%s not in /debug/replicas" % addr)

    def call(self, key, timeout=5.0):
        """One ModelInfer with routing key <key>: (replica id, status code)."""
        try:
            _, c = self.stub.ModelInfer.with_call(h.typed_request(h.values(4)), timeout=timeout,
                                                  metadata=[("x-route-key", key)])
            return h.replica_of(c), grpc.StatusCode.OK
        except grpc.RpcError as e:
            return h.md_get(e.initial_metadata(), "x-replica-id"), e.code()

    def routes(self, keys):
        """{key: replica id} over sequential calls; every call must succeed."""
        out = {}
        for k in keys:
            rid, code = self.call(k)
            self.assertEqual(code, grpc.StatusCode.OK, "key %s: %s; gateway log:\n%s"
                             % (k, code, self.gw.tail()))
            out[k] = rid
        return out

    def expected(self, without=()):
        """The replica id of every key on the ring without the replicas <without>."""
        m = h.RingModel({r.addr: 100 for r in self.replicas}, drained=without)
        return {k: self.rid[m.owner(k)] for k in KEYS}

    def assert_passed_over(self, victim):
        """Calls avoid <victim>; keys of the other replicas stay where they were."""
        full, without = self.expected(), self.expected([victim])
        got = self.routes(KEYS)
        vid = self.rid[victim]
        self.assertNotIn(vid, got.values())
        moved = [k for k in KEYS if full[k] == vid]
        self.assertGreater(len(moved), 0, "the victim owns no key of the test")
        self.assertEqual(got, without)
        # Keys that were elsewhere did not move; only the victim's keys did.
        for k in KEYS:
            if full[k] != vid:
                self.assertEqual(got[k], full[k])
        return got


class NotServing(HealthCase):
    def test_not_serving_passed_over_and_back(self):
        self.assertEqual(self.routes(KEYS), self.expected())
        victim = self.replicas[1]
        t0 = time.monotonic()
        victim.send_signal(signal.SIGUSR1)
        seen = h.wait_for(lambda: self.replica_view(victim.addr)["health"] == "not_serving", 5.0)
        self.assertTrue(seen, "not NOT_SERVING after 5 s: %s" % self.replica_view(victim.addr))
        h.timing("not_serving_noticed", time.monotonic() - t0)
        v = self.replica_view(victim.addr)
        self.assertFalse(v["eligible"])
        self.assertGreaterEqual(v["consecutive_check_failures"], 2)
        self.assert_passed_over(victim.addr)
        ev = self.gw.wait_event(lambda e: e.get("replica") == victim.addr
                                and e.get("state") == "not_serving", event="replica_health")
        self.assertIsNotNone(ev)

        t0 = time.monotonic()
        victim.send_signal(signal.SIGUSR2)
        back = h.wait_for(lambda: self.replica_view(victim.addr)["health"] == "healthy", 5.0)
        self.assertTrue(back, "not healthy again after 5 s: %s" % self.replica_view(victim.addr))
        h.timing("serving_again_noticed", time.monotonic() - t0)
        self.assertEqual(self.routes(KEYS), self.expected())

        metrics = h.http_text(self.admin, "/metrics")
        line = ('infergw_health_checks_total{replica="%s",result="not_serving"}' % victim.addr)
        counts = [l for l in metrics.splitlines() if l.startswith(line)]
        self.assertEqual(len(counts), 1, metrics)
        self.assertGreaterEqual(int(counts[0].split()[-1]), 2)
        self.assertIn('infergw_replica_health{replica="%s",state="healthy"} 1' % victim.addr,
                      metrics)


class Stopped(HealthCase):
    def test_sigstop_noticed_passed_over_and_back(self):
        self.assertEqual(self.routes(KEYS), self.expected())
        victim = self.replicas[0]
        t0 = time.monotonic()
        victim.send_signal(signal.SIGSTOP)
        seen = h.wait_for(lambda: not self.replica_view(victim.addr)["eligible"], 5.0)
        self.assertTrue(seen, "SIGSTOP not noticed after 5 s: %s" % self.replica_view(victim.addr))
        h.timing("sigstop_noticed", time.monotonic() - t0)
        v = self.replica_view(victim.addr)
        # Noticed by a keepalive timeout (down) or by the checks (unhealthy),
        # whichever came first; the checks get there too.
        self.assertTrue(v["down"] or v["health"] == "unhealthy", v)
        self.assertTrue(h.wait_for(lambda: self.replica_view(victim.addr)["health"] == "unhealthy",
                                 3.0), self.replica_view(victim.addr))
        self.assert_passed_over(victim.addr)

        t0 = time.monotonic()
        victim.send_signal(signal.SIGCONT)
        back = h.wait_for(lambda: self.replica_view(victim.addr)["health"] == "healthy"
                        and not self.replica_view(victim.addr)["down"], 10.0)
        self.assertTrue(back, "not back 10 s after SIGCONT: %s" % self.replica_view(victim.addr))
        h.timing("sigcont_back", time.monotonic() - t0)
        self.assertEqual(self.routes(KEYS), self.expected())

    def test_sigstop_with_calls_in_flight(self):
        """Calls in flight on a stopped replica's connections: keepalive closes
        them (keepalive_timeouts counted) or the checks take it out first;
        calls after that go elsewhere."""
        victim = self.replicas[2]
        keys = [k for k in KEYS if self.expected()[k] == self.rid[victim.addr]][:5]
        self.assertTrue(keys)
        victim.send_signal(signal.SIGSTOP)
        futs = [self.stub.ModelInfer.future(h.typed_request(h.values(4)), timeout=3.0,
                                            metadata=[("x-route-key", k)]) for k in keys]
        seen = h.wait_for(lambda: not self.replica_view(victim.addr)["eligible"], 5.0)
        self.assertTrue(seen)
        ka = h.wait_for(lambda: self.replica_view(victim.addr)["keepalive_timeouts"] > 0, 3.0)
        for f in futs:
            try:
                f.result()
            except grpc.RpcError:
                pass  # the call engine decides what a lost call becomes
        self.assertTrue(ka, "no keepalive timeout counted: %s; log:\n%s"
                        % (self.replica_view(victim.addr), self.gw.tail()))
        self.assertTrue(self.gw.events("upstream_keepalive_timeout"))
        self.assert_passed_over(victim.addr)
        victim.send_signal(signal.SIGCONT)


class Killed(HealthCase):
    def test_kill9_down_within_1s(self):
        self.assertEqual(self.routes(KEYS), self.expected())
        victim = self.replicas[1]
        t0 = time.monotonic()
        victim.popen.kill()
        victim.wait_exit(5)
        down = h.wait_for(lambda: self.replica_view(victim.addr)["down"]
                        and not self.replica_view(victim.addr)["reachable"], 5.0, step=0.01)
        elapsed = time.monotonic() - t0
        h.timing("kill9_down", elapsed)
        self.assertTrue(down, "not down 5 s after kill -9: %s" % self.replica_view(victim.addr))
        self.assertLess(elapsed, 1.0, "kill -9 took %.3f s to show as down" % elapsed)
        self.assert_passed_over(victim.addr)
        self.assertTrue(self.gw.events("replica_unreachable"))


class Ejection(HealthCase):
    """The third replica answers every inference call with UNAVAILABLE."""

    BAD_ARGS = ("--error-fraction", "1", "--error-code", "14")

    def gateway_args(self):
        return ("--outlier-failures", "5", "--outlier-base-ms", "2000",
                "--outlier-max-ms", "4000")

    def test_failing_replica_ejected_and_returns(self):
        bad = self.replicas[2]
        bad_keys = [k for k in KEYS if self.expected()[k] == self.rid[bad.addr]]
        self.assertGreaterEqual(len(bad_keys), 5)
        t0 = time.monotonic()
        for k in bad_keys[:10]:
            self.call(k)  # retried elsewhere or failed: the replica's failures count
        ejected = h.wait_for(lambda: self.replica_view(bad.addr)["ejected"], 3.0)
        self.assertTrue(ejected, "not ejected: %s; log:\n%s"
                        % (self.replica_view(bad.addr), self.gw.tail()))
        h.timing("ejected_after", time.monotonic() - t0)
        v = self.replica_view(bad.addr)
        self.assertEqual(v["times_ejected"], 1)
        self.assertIsNotNone(v["ejected_until"])
        self.assertEqual(v["health"], "healthy")  # its health service still says SERVING
        ev = self.gw.wait_event(lambda e: e.get("replica") == bad.addr, event="replica_ejected")
        self.assertIsNotNone(ev)
        self.assertIn('infergw_replica_ejections_total{replica="%s"} 1' % bad.addr,
                      h.http_text(self.admin, "/metrics"))
        self.assert_passed_over(bad.addr)
        # After --outlier-base-ms it returns (and is logged as returned).
        back = h.wait_for(lambda: not self.replica_view(bad.addr)["ejected"], 5.0)
        self.assertTrue(back)
        self.assertIsNotNone(self.gw.wait_event(lambda e: e.get("replica") == bad.addr,
                                                event="replica_returned"))
        # Still failing: the second ejection lasts twice as long (4 s, the max).
        for k in bad_keys[:10]:
            self.call(k)
        again = h.wait_for(lambda: self.replica_view(bad.addr)["times_ejected"] == 2, 3.0)
        self.assertTrue(again, "not ejected again: %s" % self.replica_view(bad.addr))
        self.assertGreater(self.replica_view(bad.addr)["ejected_for_ms"], 2000)

    def test_healthy_replicas_never_ejected(self):
        """Only the third replica fails: the other two are never ejected."""
        for k in KEYS[:60]:
            self.call(k)
        views = {r["address"]: r for r in self.replicas_view()}
        for r in self.replicas[:2]:
            self.assertEqual(views[r.addr]["times_ejected"], 0)


class EjectionCap(HealthCase):
    """Two of the three replicas answer UNAVAILABLE: with
    --outlier-max-percent 50 at most one of them is out at any time (1 of 3)."""

    BAD_ARGS = ("--error-fraction", "1", "--error-code", "14")
    BAD_COUNT = 2

    def gateway_args(self):
        return ("--outlier-failures", "5", "--outlier-base-ms", "1000",
                "--outlier-max-ms", "1000")

    def test_at_most_half_the_pool_ejected(self):
        bad = [r.addr for r in self.replicas[1:]]
        most, ejected_ever = 0, set()
        end = time.monotonic() + 4.0
        i = 0
        while time.monotonic() < end:
            for k in KEYS[i % len(KEYS):i % len(KEYS) + 10]:
                self.call(k)
            i += 10
            views = {r["address"]: r for r in self.replicas_view()}
            out = [a for a in bad if views[a]["ejected"]]
            ejected_ever.update(out)
            most = max(most, len(out))
            self.assertFalse(views[self.replicas[0].addr]["ejected"])
        self.assertEqual(most, 1, "ejected at once: %d of 3" % most)
        self.assertTrue(ejected_ever)
        # The refusals are not logged as ejections: one per time ejected.
        times = sum(v["times_ejected"] for v in self.replicas_view())
        self.assertEqual(len(self.gw.events("replica_ejected")), times)


if __name__ == "__main__":
    unittest.main()
