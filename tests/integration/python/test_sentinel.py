# SPDX-License-Identifier: Apache-2.0
"""A Redis Sentinel failover under steady load, all on loopback: 1 master, 1
replica (redis-server --replicaof), 3 sentinels (quorum 2, down after 1 s),
a gateway and infergw-ctl on the same sentinel:// URL. The master is killed;
once the sentinels name the promoted replica, a change made with infergw-ctl
reaches the gateway's routing within 15 s, and no call fails throughout.

Times measured are printed on stderr as "TIMING <what> <seconds>".
"""

import signal
import sys
import time
import unittest

import harness as h


MASTER = "m"
POOL = "demo"


def info_field(port, section, field):
    text = h.redis_query(port, "INFO", section)
    for line in (text or "").splitlines():
        if line.startswith(field + ":"):
            return line.split(":", 1)[1].strip()
    return None


def as_dict(flat):
    return {flat[i]: flat[i + 1] for i in range(0, len(flat or ()) - 1, 2)}


class SentinelFailoverTest(unittest.TestCase):

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.master = h.start_redis(name="redis-master")
        self.addCleanup(self.master.stop)
        self.replica = h.start_redis("--replicaof", "127.0.0.1", str(self.master.port),
                                     name="redis-replica")
        self.addCleanup(self.replica.stop)
        self.assertTrue(h.wait_for(lambda: info_field(self.replica.port, "replication",
                                                    "master_link_status") == "up", 20),
                        "the Redis replica never synced with the master")
        self.sentinels = h.start_sentinel_group(self.master.port, MASTER, n=3, quorum=2,
                                                down_after_ms=1000, failover_timeout_ms=5000)
        for s in self.sentinels:
            self.addCleanup(s.stop)
        self.url = "sentinel://%s/%s" % (",".join(s.addr for s in self.sentinels), MASTER)

        def sentinels_ready():
            for s in self.sentinels:
                m = as_dict(h.redis_query(s.port, "SENTINEL", "master", MASTER))
                reps = h.redis_query(s.port, "SENTINEL", "replicas", MASTER) or []
                if m.get("num-other-sentinels") != "2" or not any(
                        as_dict(r).get("port") == str(self.replica.port)
                        and "down" not in as_dict(r).get("flags", "") for r in reps):
                    return False
            return True

        self.assertTrue(h.wait_for(sentinels_ready, 30),
                        "the sentinels did not find each other and the replica in 30 s")

        self.backends = []
        self.rid = {}
        for i in range(4):
            rid = "sentinel-r%d" % i
            p = h.start_replica(rid, "--quiet")
            self.addCleanup(p.stop)
            self.backends.append(p)
            self.rid[p.addr] = rid

    def ctl(self, *args, expect=0):
        return h.run_ctl(self.url, *args, expect=expect)

    def call(self, stub, key):
        vals = h.values(4)
        resp, call = stub.ModelInfer.with_call(h.typed_request(vals, model=POOL),
                                               metadata=[("x-route-key", key)], timeout=5)
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))
        return h.replica_of(call)

    def test_failover_is_followed(self):
        weights = {p.addr: 100 for p in self.backends[:3]}
        self.ctl("pool", "add", POOL)
        for addr in weights:
            self.ctl("replica", "add", POOL, addr)
        gw = h.start_gateway({}, "--redis", self.url)
        self.addCleanup(gw.stop)
        ch = h.channel(gw.addr)
        self.addCleanup(ch.close)
        stub = h.infer_stub(ch)
        self.assertIsNotNone(gw.wait_event(lambda e: e.get("addr") == self.master.addr,
                                           event="redis_connected", timeout=5),
                             "gateway not connected to the master; log:\n%s" % gw.tail())
        r3 = self.backends[3].addr
        fresh = [k for k in ("fo-%d" % i for i in range(5000))
                 if h.RingModel(dict(weights, **{r3: 100})).owner(k) == r3][:3]
        keys = ["load-%d" % i for i in range(30)]

        load = h.SteadyLoad(gw.addr, keys, rate=50).start()
        seen = None
        try:
            time.sleep(1.0)
            # Every write has reached the replica before the master dies.
            self.assertEqual(h.redis_query(self.master.port, "WAIT", 1, 2000), 1)
            t_kill = time.time()
            self.master.stop(sig=signal.SIGKILL, expect_code=None)

            def failed_over():
                names = {h.sentinel_master_addr(s.port, MASTER) for s in self.sentinels}
                role = h.redis_query(self.replica.port, "ROLE")
                return (names == {self.replica.addr} and isinstance(role, list)
                        and role[0] == "master")

            self.assertTrue(h.wait_for(failed_over, 60),
                            "no failover to %s within 60 s" % self.replica.addr)
            t_fo = time.time()
            h.timing("sentinel_failover", t_fo - t_kill)

            # infergw-ctl through the same sentinel URL reaches the new master.
            p = self.ctl("replica", "add", POOL, r3, expect=None)
            self.assertEqual(p.returncode, 0, "infergw-ctl after the failover: %s" % p.stderr)
            t_write = time.time()
            end = t_fo + 15.0
            while seen is None and time.time() < end:
                for k in fresh:
                    if self.call(stub, k) == self.rid[r3]:
                        seen = time.time()
                        break
            time.sleep(1.0)
        finally:
            recs = load.stop()
        self.assertIsNotNone(seen, "a change made after the failover did not reach routing "
                             "within 15 s; gateway log:\n%s" % gw.tail(15))
        h.timing("change_after_failover_in_routing", seen - t_fo)
        h.timing("change_after_write_in_routing", seen - t_write)
        failed = load.failures(recs)
        sys.stderr.write("sentinel failover: %d calls, %d failed\n" % (len(recs), len(failed)))
        self.assertEqual(failed, [], "calls failed during the failover")
        self.assertGreater(len(recs), 100)
        ev = gw.wait_event(lambda e: e.get("addr") == self.replica.addr and h.log_time(e) > t_kill,
                           event="redis_connected", timeout=1)
        self.assertIsNotNone(ev, "the gateway did not log redis_connected to the new master; "
                             "log:\n%s" % gw.tail(15))


if __name__ == "__main__":
    unittest.main()
