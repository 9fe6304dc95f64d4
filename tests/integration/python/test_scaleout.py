# SPDX-License-Identifier: Apache-2.0
"""Scale-out on loopback: 1 Redis master watched by 3 Sentinels, 3 gateways on
the sentinel:// URL, replicas that join and leave with
`infergw-ctl replica register <pool> <host:port> --ttl 2` (one registrar
process per replica) while a client drives load round-robin through the 3
gateways (1 s deadline, x-route-key over a set of keys).

Asserted:
  - a replica registering mid-run receives calls within 2 s;
  - a replica whose registrar gets SIGTERM is drained, then removed, with no
    failed call;
  - a replica killed together with its registrar (SIGKILL both) is passed
    over by every gateway within TTL + 1 s (lease expiry), and
    `infergw-ctl gc` removes it from the ring;
  - no call fails over the whole run;
  - whenever membership is stable, each key of a sample goes to the same
    replica through each of the 3 gateways, the replica the documented ring
    names (balance_factor 0, so load does not move keys);
  - `infergw-ctl status` lists the 3 gateways.

Figures are printed on stderr as "TIMING <what> <seconds>" and "COUNT <what> <n>".
"""

import signal
import sys
import threading
import time
import unittest

import harness as h

MASTER = "m"
POOL = "demo"
TTL = 2
KEYS = ["user-%d" % i for i in range(64)]
SAMPLE = KEYS[:24]


def count(what, n):
    sys.stderr.write("COUNT %s %d\n" % (what, n))
    sys.stderr.flush()


class RoundRobinLoad:
    """Unary calls at a fixed rate from a few threads; call i goes to gateway
    i mod 3 with key KEYS[i mod len]. Every call is recorded: gateway, key,
    sent, replica, ok."""

    def __init__(self, targets, rate=150.0, threads=3, timeout=1.0):
        self.stubs = [h.infer_stub(h.channel(t)) for t in targets]
        self.interval = threads / rate
        self.nthreads = threads
        self.timeout = timeout
        self.records = []
        self.lock = threading.Lock()
        self.stop_ev = threading.Event()
        self.seq = 0
        self.threads = [threading.Thread(target=self._run, daemon=True) for _ in range(threads)]

    def start(self):
        for t in self.threads:
            t.start()
        return self

    def _run(self):
        vals = h.values(4)
        while not self.stop_ev.is_set():
            with self.lock:
                i = self.seq
                self.seq += 1
            g = i % len(self.stubs)
            key = KEYS[(i // len(self.stubs)) % len(KEYS)]
            rec = {"gw": g, "key": key, "sent": time.time(), "replica": None, "ok": False}
            try:
                resp, call = self.stubs[g].ModelInfer.with_call(
                    h.typed_request(vals, model=POOL), metadata=[("x-route-key", key)],
                    timeout=self.timeout)
                rec["replica"] = h.md_get(call.initial_metadata(), "x-replica-id")
                rec["ok"] = list(resp.outputs[0].contents.fp32_contents) == h.expected(vals)
            except Exception as e:  # noqa: BLE001 - a failed call
                rec["error"] = repr(e)
            rec["done"] = time.time()
            with self.lock:
                self.records.append(rec)
            self.stop_ev.wait(self.interval)

    def stop(self):
        self.stop_ev.set()
        for t in self.threads:
            t.join()
        return self.snapshot()

    def snapshot(self):
        with self.lock:
            return list(self.records)


class ScaleOutTest(unittest.TestCase):

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(name="redis-master")
        self.addCleanup(self.redis.stop)
        self.sentinels = h.start_sentinel_group(self.redis.port, MASTER, n=3, quorum=2)
        for s in self.sentinels:
            self.addCleanup(s.stop)
        self.url = "sentinel://%s/%s" % (",".join(s.addr for s in self.sentinels), MASTER)
        self.assertTrue(h.wait_for(lambda: all(h.sentinel_master_addr(s.port, MASTER)
                                             for s in self.sentinels), 20))
        h.run_ctl(self.url, "pool", "add", POOL)
        h.run_ctl(self.url, "conf", "set", "balance_factor", "0")
        self.replicas = {}    # id -> Proc
        self.registrars = {}  # id -> Proc
        self.gateways = []
        for i in range(3):
            gw = h.start_gateway({}, "--redis", self.url, "--redis-poll-ms", "200",
                                 "--gateway-id", "gw%d" % i,
                                 "--admin", "127.0.0.1:%d" % h.free_port(), wait=True)
            self.addCleanup(gw.stop)
            self.gateways.append(gw)

    def start_member(self, rid):
        """Starts replica <rid> and its registrar; returns the registrar's start time."""
        rep = h.start_replica(rid)
        self.addCleanup(rep.stop)
        self.replicas[rid] = rep
        t0 = time.time()
        reg = h.Proc("registrar-" + rid,
                     [h._bin("infergw-ctl"), "--redis", self.url, "replica", "register", POOL,
                      rep.addr, "--ttl", str(TTL), "--drain-ms", "1000"], rep.port)
        self.addCleanup(reg.stop, 20.0, None)
        self.registrars[rid] = reg
        return t0

    def members(self):
        out = h.run_ctl(self.url, "--json", "replica", "list", POOL).stdout
        import json
        return {r["address"] for r in json.loads(out)["replicas"]}

    def addr_to_id(self):
        return {p.addr: rid for rid, p in self.replicas.items()}

    def check_same_route(self, what, expected_addrs):
        """Each sampled key goes to one replica through all 3 gateways: the one the
        documented ring over <expected_addrs> names."""
        self.assertTrue(h.wait_for(lambda: self.members() == set(expected_addrs), 10),
                        "%s: ring holds %s, expected %s" % (what, self.members(), expected_addrs))
        time.sleep(0.6)  # every gateway has loaded it (PUBLISH, or a 200 ms poll)
        model = h.RingModel({a: 100 for a in expected_addrs})
        ids = self.addr_to_id()
        vals = h.values(4)
        for key in SAMPLE:
            got = []
            for gw in self.gateways:
                ch = h.channel(gw.addr)
                try:
                    _, call = h.infer_stub(ch).ModelInfer.with_call(
                        h.typed_request(vals, model=POOL), metadata=[("x-route-key", key)],
                        timeout=2.0)
                    got.append(h.md_get(call.initial_metadata(), "x-replica-id"))
                finally:
                    ch.close()
            self.assertEqual(len(set(got)), 1, "%s: key %s went to %s through the 3 gateways"
                             % (what, key, got))
            self.assertEqual(got[0], ids[model.owner(key)],
                             "%s: key %s not on the ring's replica" % (what, key))
        count("same_route_keys_" + what, len(SAMPLE))

    def test_scale_out(self):
        # Two replicas to start with.
        for rid in ("r1", "r2"):
            self.start_member(rid)
        self.check_same_route("initial", [self.replicas[r].addr for r in ("r1", "r2")])
        load = RoundRobinLoad([g.addr for g in self.gateways]).start()
        self.addCleanup(load.stop)
        time.sleep(1.0)

        # r3 joins mid-run.
        t0 = self.start_member("r3")
        first = h.wait_for(lambda: min((r["done"] for r in load.snapshot()
                                      if r["replica"] == "r3"), default=None), 5)
        self.assertIsNotNone(first, "r3 got no call within 5 s of registering")
        h.timing("first_call_after_register", first - t0)
        self.assertLessEqual(first - t0, 2.0, "r3 took %.2f s to get calls" % (first - t0))
        gws_seeing = {r["gw"] for r in load.snapshot() if r["replica"] == "r3"}
        self.check_same_route("after_join", [self.replicas[r].addr for r in ("r1", "r2", "r3")])
        h.wait_for(lambda: {r["gw"] for r in load.snapshot() if r["replica"] == "r3"} ==
                 {0, 1, 2}, 3)
        gws_seeing = {r["gw"] for r in load.snapshot() if r["replica"] == "r3"}
        self.assertEqual(gws_seeing, {0, 1, 2}, "r3 not reached through every gateway")

        # r2's registrar gets SIGTERM: drained, then removed; no call fails.
        n_before = len(load.snapshot())
        t_term = time.time()
        self.registrars["r2"].send_signal(signal.SIGTERM)
        self.assertEqual(self.registrars["r2"].wait_exit(15), 0,
                         self.registrars["r2"].tail())
        h.timing("registrar_sigterm_to_exit", time.time() - t_term)
        self.registrars["r2"].check_sanitizers()
        log = self.registrars["r2"].log_text()
        self.assertIn("drained", log)
        self.assertIn("removed from pool", log)
        self.assertLess(log.index("drained"), log.index("removed from pool"))
        last_r2 = max((r["sent"] for r in load.snapshot() if r["replica"] == "r2"), default=0)
        h.timing("last_call_sent_to_r2_after_sigterm", last_r2 - t_term)
        self.replicas["r2"].stop()
        del self.replicas["r2"]
        time.sleep(0.5)
        fails = [r for r in load.snapshot()[n_before:] if not r["ok"]]
        count("failed_calls_sigterm_leave", len(fails))
        self.assertEqual(fails, [], "calls failed while r2 left: %s" % fails[:5])
        self.check_same_route("after_leave", [self.replicas[r].addr for r in ("r1", "r3")])

        # r4 joins, then r3 is killed with its registrar: the lease expires.
        self.start_member("r4")
        self.check_same_route("after_join2", [self.replicas[r].addr for r in ("r1", "r3", "r4")])
        addr3 = self.replicas["r3"].addr
        t_kill = time.time()
        self.registrars["r3"].popen.kill()
        self.replicas["r3"].popen.kill()
        self.registrars["r3"].wait_exit(5)
        self.replicas["r3"].wait_exit(5)

        def all_passed_over():
            return all(any(addr3 in ev.get("gone", "") for ev in g.events("leases_changed"))
                       for g in self.gateways)

        self.assertTrue(h.wait_for(all_passed_over, TTL + 3), "lease expiry not noticed")
        seen = [min(h.log_time(ev) for ev in g.events("leases_changed")
                    if addr3 in ev.get("gone", "")) for g in self.gateways]
        h.timing("kill_to_lease_expired_slowest_gateway", max(seen) - t_kill)
        self.assertLessEqual(max(seen) - t_kill, TTL + 1.0)
        last_r3 = max((r["sent"] for r in load.snapshot() if r["replica"] == "r3"), default=0)
        h.timing("kill_to_last_call_answered_by_r3", last_r3 - t_kill)
        self.assertLessEqual(last_r3 - t_kill, TTL + 1.0)

        # status: the 3 gateways report, and r3 is lease_gone in each.
        st = h.run_ctl(self.url, "status").stdout
        sys.stderr.write("STATUS\n" + st)
        for i in range(3):
            self.assertIn("gw%d" % i, st)
        self.assertIn("gateways reporting: 3;", st)
        import json
        js = json.loads(h.run_ctl(self.url, "--json", "status").stdout)
        self.assertEqual(sorted(js["gateways"]), ["gw0", "gw1", "gw2"])
        self.assertTrue(h.wait_for(lambda: all(
            "lease_gone" in (json.loads(h.run_ctl(self.url, "--json", "status").stdout)
                             ["replicas"].get(addr3) or {}).get("gw%d" % i, "")
            for i in range(3)), 5), "status does not show r3's lease gone")

        # gc: first within the grace period (kept), then with --grace 0 (removed).
        out = h.run_ctl(self.url, "gc", "--grace", "3600")
        self.assertIn("0 replicas removed", out.stdout)
        self.assertIn(addr3, self.members())
        out = h.run_ctl(self.url, "gc", "--grace", "0")
        sys.stderr.write("GC " + out.stdout)
        self.assertIn("1 replica removed: %s" % addr3, out.stdout)
        del self.replicas["r3"]
        self.check_same_route("after_gc", [self.replicas[r].addr for r in ("r1", "r4")])

        records = load.stop()
        fails = [r for r in records if not r["ok"]]
        count("calls_total", len(records))
        count("calls_failed", len(fails))
        per = {}
        for r in records:
            per[r["replica"]] = per.get(r["replica"], 0) + 1
        sys.stderr.write("CALLS_PER_REPLICA %s\n" % sorted(per.items(), key=str))
        self.assertEqual(fails, [], "failed calls: %s" % fails[:5])
        self.assertGreater(len(records), 500)

        # Registrars left: SIGTERM removes them cleanly (exit 0).
        for rid in ("r1", "r4"):
            self.registrars[rid].stop(15.0, 0)
        self.assertEqual(self.members(), set())
        for g in self.gateways:
            g.check_sanitizers()


if __name__ == "__main__":
    unittest.main()
