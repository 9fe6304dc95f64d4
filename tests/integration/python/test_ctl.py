# SPDX-License-Identifier: Apache-2.0
"""infergw-ctl against a real redis-server: what each command writes (ring
tokens recomputed here, harness.ring_token; key points, harness.key_point), exit codes and refusals that
write nothing, atomic weight changes under a concurrent reader, version bumps
with a PUBLISH per write, `route` and `ring show` against a Python
re-implementation of the ring (harness.RingModel), key prefixes, passwords,
db numbers and Sentinel discovery."""

import json
import threading
import unittest

import harness as h

token = h.ring_token


def members(addr, weight):
    return {"%s#%d" % (addr, i): token("%s#%d" % (addr, i)) for i in range(weight)}


class CtlCase(unittest.TestCase):
    """One redis-server per test class, flushed before each test."""

    @classmethod
    def setUpClass(cls):
        cls.redis = h.start_redis()
        cls.addClassCleanup(cls.redis.stop)
        cls.url = "redis://127.0.0.1:%d" % cls.redis.port
        cls.r = h.redis_connect(cls.redis.port)
        cls.addClassCleanup(h.redis_close, cls.r)

    def setUp(self):
        self.call("FLUSHALL")

    def call(self, *args):
        return h.redis_call(self.r, *args)

    def ctl(self, *args, expect=0, url=None, env=None):
        """Runs infergw-ctl --redis <url> <args> (h.run_ctl; <url> "": no
        --redis, None: this test's Redis); asserts the exit code, and that a
        failure is said on stderr as "infergw-ctl: ..."."""
        p = h.run_ctl(self.url if url is None else (url or None), *args, timeout=60,
                      expect=expect, env=env)
        if p.returncode != 0:
            self.assertTrue(p.stderr.startswith("infergw-ctl: "), p.stderr)
        return p

    def version(self):
        return int(self.call("GET", "infergw:version") or 0)

    def snapshot(self):
        """Every key with its type and contents, to prove nothing was written."""
        out = {}
        for k in self.call("KEYS", "*"):
            t = self.call("TYPE", k)
            if t == "string":
                v = self.call("GET", k)
            elif t == "set":
                v = sorted(self.call("SMEMBERS", k))
            elif t == "zset":
                v = self.call("ZRANGE", k, 0, -1, "WITHSCORES")
            elif t == "hash":
                v = sorted(self.call("HGETALL", k))
            else:
                v = t
            out[k] = (t, v)
        return out

    def ring(self, pool="demo"):
        z = self.call("ZRANGE", "infergw:pool:%s:ring" % pool, 0, -1, "WITHSCORES")
        return {z[i]: int(z[i + 1]) for i in range(0, len(z), 2)}

    def refused(self, code, needle, *args):
        """Runs a command that must fail with <code>, say <needle>, and write nothing."""
        before = self.snapshot()
        p = self.ctl(*args, expect=code)
        self.assertIn(needle, p.stderr)
        self.assertEqual(self.snapshot(), before, "refused command %r wrote to Redis" % (args,))
        return p


class PoolTest(CtlCase):
    def test_add_list_remove(self):
        p = self.ctl("pool", "add", "demo")
        self.assertIn("pool demo added (version 1)", p.stdout)
        self.assertEqual(self.call("SMEMBERS", "infergw:pools"), ["demo"])
        # Adding again changes nothing, not even the version.
        p = self.ctl("pool", "add", "demo")
        self.assertIn("already exists", p.stdout)
        self.assertEqual(self.version(), 1)
        self.ctl("pool", "add", "alpha")
        self.assertEqual(self.ctl("pool", "list").stdout, "alpha\ndemo\n")
        self.assertEqual(json.loads(self.ctl("pool", "list", "--json").stdout), ["alpha", "demo"])

        self.ctl("replica", "add", "demo", "127.0.0.1:7201", "--weight", "3")
        self.ctl("conf", "set", "--pool", "demo", "hedge_delay_ms", "40")
        self.ctl("replica", "add", "alpha", "127.0.0.1:7201", "--weight", "2")
        out = json.loads(self.ctl("--json", "pool", "remove", "demo").stdout)
        self.assertEqual(out, {"pool": "demo", "changed": True, "version": self.version()})
        self.assertEqual(self.call("SMEMBERS", "infergw:pools"), ["alpha"])
        self.assertEqual(self.call("EXISTS", "infergw:pool:demo:ring"), 0)
        self.assertEqual(self.call("EXISTS", "infergw:pool:demo:conf"), 0)
        self.assertEqual(len(self.ring("alpha")), 2)
        self.refused(3, "infergw-ctl: pool demo does not exist", "pool", "remove", "demo")

    def test_bad_names(self):
        self.refused(2, "pool name 'a b' refused", "pool", "add", "a b")
        self.refused(2, "pool name 'a,b' refused", "pool", "add", "a,b")
        self.refused(2, "pool name", "pool", "add", "x" * 256)
        self.ctl("pool", "add", "x" * 255)


class ReplicaTest(CtlCase):
    def setUp(self):
        super().setUp()
        self.ctl("pool", "add", "demo")

    def test_add_writes_documented_tokens(self):
        self.ctl("replica", "add", "demo", "127.0.0.1:7201")
        self.ctl("replica", "add", "demo", "[::1]:7203", "--weight", "7")
        self.ctl("replica", "add", "demo", "replica-b.example:9000", "--weight=1")
        want = members("127.0.0.1:7201", 100)
        want.update(members("[::1]:7203", 7))
        want.update(members("replica-b.example:9000", 1))
        self.assertEqual(self.ring(), want)
        self.assertEqual(self.version(), 4)
        # A fixed vector, so this test and the C code pin the same hash.
        self.assertEqual(token("127.0.0.1:7201#0"), 321777906)

    def test_add_refusals(self):
        self.ctl("replica", "add", "demo", "127.0.0.1:7201", "--weight", "5")
        self.refused(3, "pool nope does not exist; create it with: infergw-ctl pool add nope",
                     "replica", "add", "nope", "127.0.0.1:7201")
        self.refused(2, "write it as 127.0.0.1:7202", "replica", "add", "demo", "127.0.0.1:07202")
        self.refused(2, "write it as [::1]:7202", "replica", "add", "demo", "::1:7202")
        self.refused(2, "replica address 'h#1:80'", "replica", "add", "demo", "h#1:80")
        self.refused(2, "replica address 'h'", "replica", "add", "demo", "h")
        self.refused(2, "weight '0'", "replica", "add", "demo", "h:1", "--weight", "0")
        self.refused(2, "weight '10001'", "replica", "add", "demo", "h:1", "--weight", "10001")
        self.refused(2, "replica weight demo 127.0.0.1:7201 6",
                     "replica", "add", "demo", "127.0.0.1:7201", "--weight", "6")
        # The same replica with the same weight: nothing to do, exit 0.
        before = self.snapshot()
        p = self.ctl("replica", "add", "demo", "127.0.0.1:7201", "--weight", "5")
        self.assertIn("already in pool demo with 5 vnodes", p.stdout)
        self.assertEqual(self.snapshot(), before)

    def test_ring_full(self):
        args = []
        for i in range(4096):
            args += [i, "10.0.%d.%d:80#0" % (i // 256, i % 256)]
        self.call("ZADD", "infergw:pool:demo:ring", *args)
        self.refused(2, "pool demo already has 4096 replicas, the most a ring takes",
                     "replica", "add", "demo", "127.0.0.1:7201")

    def test_weight_and_remove_touch_only_that_replica(self):
        # "127.0.0.1:720" is a string prefix of "127.0.0.1:7201".
        self.ctl("replica", "add", "demo", "127.0.0.1:720", "--weight", "4")
        self.ctl("replica", "add", "demo", "127.0.0.1:7201", "--weight", "6")
        v = self.version()
        p = self.ctl("replica", "weight", "demo", "127.0.0.1:720", "9")
        self.assertIn("127.0.0.1:720 in pool demo: 4 -> 9 vnodes (version %d)" % (v + 1), p.stdout)
        want = members("127.0.0.1:720", 9)
        want.update(members("127.0.0.1:7201", 6))
        self.assertEqual(self.ring(), want)
        # Down again: the extra vnodes go.
        self.ctl("replica", "weight", "demo", "127.0.0.1:720", "2")
        want = members("127.0.0.1:720", 2)
        want.update(members("127.0.0.1:7201", 6))
        self.assertEqual(self.ring(), want)
        # Same weight: no write.
        v = self.version()
        self.ctl("replica", "weight", "demo", "127.0.0.1:720", "2")
        self.assertEqual(self.version(), v)
        out = json.loads(self.ctl("--json", "replica", "remove", "demo", "127.0.0.1:720").stdout)
        self.assertEqual(out["old_weight"], 2)
        self.assertEqual(self.ring(), members("127.0.0.1:7201", 6))
        self.refused(3, "replica 127.0.0.1:720 is not in pool demo",
                     "replica", "remove", "demo", "127.0.0.1:720")
        self.refused(3, "replica 127.0.0.1:720 is not in pool demo",
                     "replica", "weight", "demo", "127.0.0.1:720", "3")
        self.refused(3, "pool nope does not exist", "replica", "remove", "nope", "127.0.0.1:7201")

    def test_weight_change_is_atomic(self):
        """A reader polling the ring while the weight flips between 100 and 300
        only ever sees one whole replica: #0..#99 or #0..#299, never a mix."""
        addr = "127.0.0.1:7201"
        self.ctl("replica", "add", "demo", addr, "--weight", "100")
        self.ctl("replica", "add", "demo", "127.0.0.1:7202", "--weight", "50")
        whole = {n: set(members(addr, n)) for n in (100, 300)}
        other = set(members("127.0.0.1:7202", 50))
        seen, bad, stop = [], [], threading.Event()

        def reader():
            conn = h.redis_connect(self.redis.port)
            try:
                while not stop.is_set():
                    z = set(h.redis_call(conn, "ZRANGE", "infergw:pool:demo:ring", 0, -1))
                    mine = {m for m in z if m.startswith(addr + "#")}
                    seen.append(len(mine))
                    if mine not in whole.values() or z - mine != other:
                        bad.append(len(mine))
            finally:
                h.redis_close(conn)

        t = threading.Thread(target=reader)
        t.start()
        try:
            for i in range(10):
                self.ctl("replica", "weight", "demo", addr, "300" if i % 2 == 0 else "100")
        finally:
            stop.set()
            t.join()
        self.assertEqual(bad, [], "reader saw a half-written ring")
        self.assertGreater(len(seen), 10)
        self.assertEqual(set(seen), {100, 300}, "reader should see both weights")

    def test_drain_undrain_list(self):
        self.ctl("replica", "add", "demo", "127.0.0.1:7201", "--weight", "3")
        self.ctl("replica", "add", "demo", "[::1]:7202", "--weight", "2")
        p = self.ctl("replica", "drain", "[::1]:7202")
        self.assertIn("drained", p.stdout)
        self.assertEqual(self.call("HGET", "infergw:replica:[::1]:7202", "state"), "drain")
        v = self.version()
        self.assertIn("already draining", self.ctl("replica", "drain", "[::1]:7202").stdout)
        self.assertEqual(self.version(), v)
        self.assertEqual(self.ctl("replica", "list", "demo").stdout,
                         "ADDRESS         WEIGHT  STATE\n"
                         "127.0.0.1:7201       3  active\n"
                         "[::1]:7202           2  drain\n")
        out = json.loads(self.ctl("--json", "replica", "list", "demo").stdout)
        self.assertEqual(out["replicas"][1], {"address": "[::1]:7202", "weight": 2,
                                              "state": "drain"})
        self.ctl("replica", "undrain", "[::1]:7202")
        self.assertEqual(self.call("HGET", "infergw:replica:[::1]:7202", "state"), "active")
        self.refused(3, "replica 127.0.0.1:7299 is in no pool", "replica", "drain",
                     "127.0.0.1:7299")
        self.refused(3, "pool nope does not exist", "replica", "list", "nope")
        # Removed from every pool, a drained replica can still be undrained.
        self.ctl("replica", "drain", "127.0.0.1:7201")
        self.ctl("replica", "remove", "demo", "127.0.0.1:7201")
        self.ctl("replica", "undrain", "127.0.0.1:7201")


class ConfTest(CtlCase):
    def setUp(self):
        super().setUp()
        self.ctl("pool", "add", "demo")

    def test_refusal_writes_nothing(self):
        v = self.version()
        p = self.refused(2, "refused, nothing written: hedge_delay_ms 'banana'",
                         "conf", "set", "hedge_delay_ms", "banana")
        self.assertIn("expected off, auto, or 1..600000", p.stderr)
        self.assertEqual(self.version(), v)
        self.assertEqual(self.call("EXISTS", "infergw:conf"), 0)
        self.refused(2, "refused, nothing written", "conf", "set", "--pool", "demo",
                     "balance_factor", "0.5")
        self.refused(2, "unknown tunable 'hedge'", "conf", "set", "hedge", "1")
        self.refused(3, "pool nope does not exist", "conf", "set", "--pool", "nope",
                     "hedge_delay_ms", "5")
        self.refused(3, "pool nope does not exist", "conf", "get", "--pool", "nope")

    def test_set_get_unset_with_sources(self):
        def get(*args):
            return json.loads(self.ctl("--json", "conf", "get", *args).stdout)

        self.assertEqual(get("hedge_delay_ms"),
                         {"field": "hedge_delay_ms", "value": "off", "source": "default",
                          "pool": None})
        self.ctl("conf", "set", "hedge_delay_ms", "50")
        self.assertEqual(self.call("HGET", "infergw:conf", "hedge_delay_ms"), "50")
        self.assertEqual(get("--pool", "demo", "hedge_delay_ms")["source"], "global")
        self.ctl("conf", "set", "--pool", "demo", "hedge_delay_ms", "auto")
        self.assertEqual(self.call("HGET", "infergw:pool:demo:conf", "hedge_delay_ms"), "auto")
        self.assertEqual(get("--pool", "demo", "hedge_delay_ms"),
                         {"field": "hedge_delay_ms", "value": "auto", "source": "pool",
                          "pool": "demo"})
        self.assertEqual(get("hedge_delay_ms")["value"], "50")
        text = self.ctl("conf", "get", "--pool", "demo").stdout
        self.assertRegex(text, r"hedge_delay_ms +auto +pool demo\n")
        self.assertRegex(text, r"balance_factor +1\.25 +default\n")
        self.assertRegex(text, r"slo_target +99\.9 +default\n")
        self.assertEqual(len(get("--pool", "demo")), 19)
        self.assertRegex(text, r"route_by +ring +default\n")
        self.assertRegex(text, r"prefix_load_weight +1 +default\n")
        # The prefix-cache routing tunables: validated like the others.
        self.ctl("conf", "set", "--pool", "demo", "route_by", "prefix")
        self.assertEqual(get("--pool", "demo", "route_by")["value"], "prefix")
        self.refused(2, "prefix_ttl_ms '999'", "conf", "set", "prefix_ttl_ms", "999")
        self.ctl("conf", "unset", "--pool", "demo", "route_by")
        self.ctl("conf", "set", "--pool", "demo", "slo_target", "99.95")
        self.assertEqual(get("--pool", "demo", "slo_target")["value"], "99.95")
        self.refused(2, "slo_target '100'", "conf", "set", "slo_target", "100")
        self.ctl("conf", "unset", "--pool", "demo", "slo_target")

        self.ctl("conf", "unset", "--pool", "demo", "hedge_delay_ms")
        self.assertEqual(self.call("HEXISTS", "infergw:pool:demo:conf", "hedge_delay_ms"), 0)
        self.assertEqual(get("--pool", "demo", "hedge_delay_ms")["source"], "global")
        self.refused(3, "hedge_delay_ms is not set for pool demo", "conf", "unset", "--pool",
                     "demo", "hedge_delay_ms")

    def test_bad_stored_values_are_reported(self):
        """Values written straight into Redis that the gateways refuse are shown as
        warnings, and a hand-written unknown field can be unset."""
        self.call("HSET", "infergw:conf", "hedge_delay_ms", "banana", "junk", "1")
        p = self.ctl("conf", "get", "hedge_delay_ms")
        self.assertIn("infergw-ctl: warning: infergw:conf: hedge_delay_ms 'banana'", p.stderr)
        self.assertRegex(p.stdout, r"hedge_delay_ms +off +default")
        self.ctl("conf", "unset", "junk")
        self.assertEqual(self.call("HKEYS", "infergw:conf"), ["hedge_delay_ms"])


class VersionTest(CtlCase):
    def test_every_write_bumps_and_publishes(self):
        sub = h.redis_connect(self.redis.port)
        self.addCleanup(h.redis_close, sub)
        self.assertEqual(h.redis_call(sub, "SUBSCRIBE", "infergw:changed"),
                         ["subscribe", "infergw:changed", 1])
        writes = [
            ("pool", "add", "demo"),
            ("replica", "add", "demo", "127.0.0.1:7201", "--weight", "4"),
            ("replica", "add", "demo", "127.0.0.1:7202"),
            ("replica", "weight", "demo", "127.0.0.1:7201", "8"),
            ("replica", "drain", "127.0.0.1:7201"),
            ("replica", "undrain", "127.0.0.1:7201"),
            ("conf", "set", "retry_on", "UNAVAILABLE,RESOURCE_EXHAUSTED"),
            ("conf", "set", "--pool", "demo", "route_header", "x-user"),
            ("conf", "unset", "retry_on"),
            ("replica", "remove", "demo", "127.0.0.1:7202"),
            ("pool", "remove", "demo"),
        ]
        for i, args in enumerate(writes, start=1):
            self.ctl(*args)
            self.assertEqual(self.version(), i, args)
            self.assertEqual(h.redis_read(sub), ["message", "infergw:changed", str(i)], args)
            self.assertEqual(self.ctl("version").stdout, "%d\n" % i)
        # A no-op and a refusal publish nothing: the next message is the next write's.
        self.ctl("pool", "add", "x")
        self.ctl("pool", "add", "x")
        self.ctl("conf", "set", "hedge_delay_ms", "banana", expect=2)
        self.ctl("pool", "remove", "x")
        self.assertEqual(h.redis_read(sub)[2], str(len(writes) + 1))
        self.assertEqual(h.redis_read(sub)[2], str(len(writes) + 2))
        self.assertEqual(json.loads(self.ctl("--json", "version").stdout),
                         {"version": str(len(writes) + 2)})

    def test_version_not_a_number_fails_before_writing(self):
        self.call("SET", "infergw:version", "oops")
        before = self.snapshot()
        p = self.ctl("pool", "add", "demo", expect=1)
        self.assertIn("redis answered", p.stderr)
        self.assertEqual(self.snapshot(), before)


class RingTest(CtlCase):
    REPLICAS = {"127.0.0.1:7201": 100, "127.0.0.1:7202": 50, "[::1]:7203": 200,
                "replica-d:9000": 1}

    def setUp(self):
        super().setUp()
        self.ctl("pool", "add", "demo")
        for addr, w in self.REPLICAS.items():
            self.ctl("replica", "add", "demo", addr, "--weight", str(w))
        self.py = h.RingModel(self.REPLICAS)

    def routes(self, keys):
        out = {}
        for key in keys:
            r = json.loads(self.ctl("--json", "route", "demo", "--", key).stdout)
            self.assertEqual(r["point"], h.key_point(key))
            out[key] = [r["replica"], r["second"]]
        return out

    def test_route_matches_python_ring_100_keys(self):
        keys = ["customer-%d" % i for i in range(97)] + ["-dash", "caf\u00e9", "k"]
        got = self.routes(keys)
        self.assertEqual(len(got), 100)
        for key in keys:
            self.assertEqual(got[key], self.py.route(key), key)
        self.assertGreaterEqual(len({v[0] for v in got.values()}), 3)
        # Text form: the replica first, then the second choice.
        text = self.ctl("route", "demo", "customer-1").stdout
        first, second = self.py.route("customer-1")
        self.assertEqual(text, "%s (second choice: %s; key point %d)\n"
                         % (first, second, h.key_point("customer-1")))

    def test_route_passes_over_drained(self):
        self.ctl("replica", "drain", "[::1]:7203")
        keys = ["user-%d" % i for i in range(100)]
        got = self.routes(keys)
        moved = 0
        without = h.RingModel(self.REPLICAS, drained={"[::1]:7203"})
        for key in keys:
            want = without.route(key)
            self.assertEqual(got[key], want, key)
            if self.py.route(key)[0] != want[0]:
                moved += 1
                # Only keys the drained replica owned move.
                self.assertEqual(self.py.route(key)[0], "[::1]:7203")
        self.assertGreater(moved, 0)
        for addr in self.REPLICAS:
            self.ctl("replica", "drain", addr)
        p = self.ctl("route", "demo", "k", expect=3)
        self.assertIn("no active replica", p.stderr)
        self.assertTrue(p.stdout.startswith("none "))

    def test_ring_show_shares(self):
        out = json.loads(self.ctl("--json", "ring", "show", "demo").stdout)
        self.assertEqual(out["vnodes"], sum(self.REPLICAS.values()))
        shares = self.py.shares()
        self.assertEqual([r["address"] for r in out["replicas"]], sorted(self.REPLICAS))
        for r in out["replicas"]:
            self.assertEqual(r["vnodes"], self.REPLICAS[r["address"]])
            self.assertAlmostEqual(r["share"], shares[r["address"]], places=12)
            self.assertEqual(r["state"], "active")
        text = self.ctl("ring", "show", "demo").stdout
        self.assertIn("pool demo: 4 replicas, 351 vnodes\n", text)
        self.assertRegex(text, r"\[::1\]:7203 +200 +%.2f%% +active"
                         % (100 * shares["[::1]:7203"]))

    def test_bad_ring_entries_are_reported(self):
        self.call("ZADD", "infergw:pool:demo:ring", 5, "junk", 7, "127.0.0.1:7201#100")
        p = self.ctl("ring", "show", "demo")
        self.assertIn("warning: ring member 'junk'", p.stderr)
        self.assertIn("score 7 is not its token", p.stderr)
        self.assertIn("4 replicas", p.stdout)
        # replica weight rewrites the replica cleanly, bad member included.
        self.ctl("replica", "weight", "demo", "127.0.0.1:7201", "10")
        ring = self.ring()
        self.assertEqual({m for m in ring if m.startswith("127.0.0.1:7201#")},
                         set(members("127.0.0.1:7201", 10)))

    def test_empty_pool(self):
        self.ctl("pool", "add", "empty")
        self.assertIn("empty ring", self.ctl("ring", "show", "empty").stdout)
        self.assertIn("no replicas", self.ctl("route", "empty", "k", expect=3).stderr)


class CommandLineTest(CtlCase):
    def test_help_and_usage_errors(self):
        p = self.ctl("--help", url="")
        for needle in ("pool add", "replica weight", "conf set", "ring show", "route",
                       "--redis", "--redis-prefix", "--timeout-ms", "--json", "Exit codes"):
            self.assertIn(needle, p.stdout)
        self.assertEqual(self.ctl(url="", expect=2).stderr,
                         "infergw-ctl: no command given (see --help)\n")
        self.ctl("frob", expect=2)
        self.ctl("pool", "list", "--frob", expect=2)
        self.ctl("--redis", "http://x", "pool", "list", url="", expect=2)

    def test_unreachable_redis(self):
        port = h.free_port()
        p = self.ctl("pool", "list", url="redis://:hunter2@127.0.0.1:%d" % port, expect=1)
        self.assertIn("cannot reach Redis at redis://:***@127.0.0.1:%d/0" % port, p.stderr)
        self.assertNotIn("hunter2", p.stderr)

    def test_env_and_prefix(self):
        self.ctl("pool", "add", "envpool", url="", env={"INFERGW_REDIS": self.url})
        self.assertEqual(self.call("SMEMBERS", "infergw:pools"), ["envpool"])
        self.ctl("--redis-prefix", "t1:", "pool", "add", "demo")
        self.ctl("--redis-prefix=t1:", "replica", "add", "demo", "127.0.0.1:7201", "--weight", "2")
        self.ctl("--redis-prefix=t1:", "replica", "drain", "127.0.0.1:7201")
        self.assertEqual(self.call("SMEMBERS", "t1:pools"), ["demo"])
        self.assertEqual(self.call("ZCARD", "t1:pool:demo:ring"), 2)
        self.assertEqual(self.call("GET", "t1:version"), "3")
        self.assertEqual(self.call("HGET", "t1:replica:127.0.0.1:7201", "state"), "drain")
        self.assertEqual(self.call("SMEMBERS", "infergw:pools"), ["envpool"])


class RedisUrlTest(unittest.TestCase):
    """Passwords, db numbers and Sentinel discovery."""

    @classmethod
    def setUpClass(cls):
        cls.redis = h.start_redis("--requirepass", "s3cret")
        cls.addClassCleanup(cls.redis.stop)
        cls.sentinel = h.start_sentinel(cls.redis.port, "gwmaster", auth_pass="s3cret")
        cls.addClassCleanup(cls.sentinel.stop)

    def ctl(self, url, *args, expect=0):
        return h.run_ctl(url, *args, timeout=60, expect=expect)

    def read(self, db, *args):
        conn = h.redis_connect(self.redis.port)
        try:
            h.redis_call(conn, "AUTH", "s3cret")
            h.redis_call(conn, "SELECT", db)
            return h.redis_call(conn, *args)
        finally:
            h.redis_close(conn)

    def test_password_and_db(self):
        base = "redis://:s3cret@127.0.0.1:%d" % self.redis.port
        self.ctl(base + "/3", "pool", "add", "in3")
        self.assertEqual(self.read(3, "SMEMBERS", "infergw:pools"), ["in3"])
        self.assertEqual(self.read(0, "EXISTS", "infergw:pools"), 0)
        p = self.ctl("redis://127.0.0.1:%d" % self.redis.port, "pool", "list", expect=1)
        self.assertIn("NOAUTH", p.stderr)
        p = self.ctl("redis://:wrong-pw@127.0.0.1:%d" % self.redis.port, "pool", "list", expect=1)
        self.assertIn("AUTH", p.stderr)
        self.assertNotIn("wrong-pw", p.stderr)
        self.ctl("redis://:s3cret@127.0.0.1:%d/x" % self.redis.port, "pool", "list", expect=2)

    def test_sentinel_finds_the_master(self):
        dead = h.free_port()
        url = "sentinel://:s3cret@127.0.0.1:%d,127.0.0.1:%d/gwmaster/5" % (dead, self.sentinel.port)
        self.ctl(url, "pool", "add", "viasentinel")
        self.assertEqual(self.read(5, "SMEMBERS", "infergw:pools"), ["viasentinel"])
        p = self.ctl("sentinel://127.0.0.1:%d/nosuch" % self.sentinel.port, "version", expect=1)
        self.assertIn("does not know master 'nosuch'", p.stderr)


if __name__ == "__main__":
    unittest.main()
