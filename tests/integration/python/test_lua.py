# SPDX-License-Identifier: Apache-2.0
"""infergw-ctl's Lua scripts (gateway/ctl/lua/*.lua) on their own, against a
real redis-server: each file is loaded with SCRIPT LOAD and run with EVALSHA
on an empty Redis, on the state a normal run expects, and on keys of the
wrong type or bad arguments; every case asserts the reply and the whole
Redis state after it (a refused or failed write leaves it unchanged: the
scripts check first and INCR the version before any other write). Keys are
passed as KEYS/ARGV the way gateway/ctl/ctl_*.c builds them (control/keys.c,
docs/redis-keys.md)."""

import os
import unittest

import harness as h

LUA_DIR = os.path.join(h.SOURCE_DIR, "gateway", "ctl", "lua")
P = "infergw:"
POOLS, VERSION, CONF = P + "pools", P + "version", P + "conf"
LEASED, LEASE_GONE = P + "leased", P + "lease_gone"
RING_HEAD, RING_TAIL, LEASE_HEAD = P + "pool:", ":ring", P + "lease:"
A, B = "10.0.0.1:7201", "10.0.0.2:7202"
HASH = "ab" * 32


def ring(pool):
    return RING_HEAD + pool + RING_TAIL


def pool_conf(pool):
    return P + "pool:" + pool + ":conf"


def replica(addr):
    return P + "replica:" + addr


def tenant(name):
    return P + "tenant:" + name


def apikey(hexhash):
    return P + "apikey:" + hexhash


def lease(addr):
    return LEASE_HEAD + addr


def vnodes(addr, weight, base=0):
    """ZADD arguments for <weight> vnodes of <addr> (scores need not be the
    real tokens here: the scripts store what they are given)."""
    out = []
    for i in range(weight):
        out += [str(base + i), "%s#%d" % (addr, i)]
    return out


class LuaScriptTest(unittest.TestCase):
    tested = set()

    @classmethod
    def setUpClass(cls):
        cls.redis = h.start_redis(name="redis-lua")
        cls.conn = h.redis_connect(cls.redis.port)
        cls.sha = {}
        for f in sorted(os.listdir(LUA_DIR)):
            if f.endswith(".lua"):
                with open(os.path.join(LUA_DIR, f)) as src:
                    cls.sha[f[:-4]] = h.redis_call(cls.conn, "SCRIPT", "LOAD", src.read())

    @classmethod
    def tearDownClass(cls):
        h.redis_close(cls.conn)
        cls.redis.stop()

    def setUp(self):
        self.r("FLUSHALL")

    # --- helpers -----------------------------------------------------------------

    def r(self, *args):
        return h.redis_call(self.conn, *args)

    def run_lua(self, name, keys, args=()):
        LuaScriptTest.tested.add(name)
        return self.r("EVALSHA", self.sha[name], len(keys), *keys, *args)

    def state(self):
        """Every key with its type and value, for before/after comparisons."""
        out = {}
        for k in self.r("KEYS", "*"):
            t = self.r("TYPE", k)
            if t == "string":
                v = self.r("GET", k)
            elif t == "set":
                v = sorted(self.r("SMEMBERS", k))
            elif t == "zset":
                v = self.r("ZRANGE", k, 0, -1, "WITHSCORES")
            elif t == "hash":
                v = dict(zip(*[iter(self.r("HGETALL", k))] * 2))
            else:
                v = None
            out[k] = (t, v)
        return out

    def assert_unchanged(self, name, keys, args=(), reply=None, error=False):
        """Runs the script and asserts that Redis did not change; returns the
        reply (or asserts an error reply when <error>)."""
        before = self.state()
        if error:
            with self.assertRaises(RuntimeError):
                self.run_lua(name, keys, args)
            got = None
        else:
            got = self.run_lua(name, keys, args)
            if reply is not None:
                self.assertEqual(got, reply)
        self.assertEqual(self.state(), before)
        return got

    def members(self, pool):
        return self.r("ZRANGE", ring(pool), 0, -1)

    # --- pools -------------------------------------------------------------------

    def test_pool_add(self):
        self.assertEqual(self.run_lua("pool_add", [POOLS, VERSION], ["demo"]), ["ok", 1])
        self.assertEqual(self.state(), {POOLS: ("set", ["demo"]), VERSION: ("string", "1")})
        self.assert_unchanged("pool_add", [POOLS, VERSION], ["demo"], ["exists"])
        # A version that is not a number: INCR fails before SADD writes.
        self.r("SET", VERSION, "abc")
        self.assert_unchanged("pool_add", [POOLS, VERSION], ["other"], error=True)
        # The pools key of the wrong type.
        self.r("FLUSHALL")
        self.r("SET", POOLS, "x")
        self.assert_unchanged("pool_add", [POOLS, VERSION], ["demo"], error=True)

    def test_pool_remove(self):
        keys = [POOLS, ring("demo"), pool_conf("demo"), VERSION]
        self.assert_unchanged("pool_remove", keys, ["demo"], ["nopool"])
        self.r("SADD", POOLS, "demo", "other")
        self.r("ZADD", ring("demo"), 1, A + "#0")
        self.r("HSET", pool_conf("demo"), "retry_on", "UNAVAILABLE")
        self.r("SET", VERSION, 7)
        self.assertEqual(self.run_lua("pool_remove", keys, ["demo"]), ["ok", 8])
        self.assertEqual(self.state(), {POOLS: ("set", ["other"]), VERSION: ("string", "8")})
        self.r("SADD", POOLS, "demo")
        self.r("SET", VERSION, "not-a-number")
        self.assert_unchanged("pool_remove", keys, ["demo"], error=True)

    # --- replicas ----------------------------------------------------------------

    def test_replica_set(self):
        keys = [POOLS, ring("demo"), VERSION]

        def args(mode, addr=A, weight=2, most=1000):
            return ["demo", addr + "#", mode, str(most)] + (
                vnodes(addr, weight) if mode != "remove" else [])

        self.assert_unchanged("replica_set", keys, args("add"), ["nopool"])
        self.r("SADD", POOLS, "demo")
        self.assertEqual(self.run_lua("replica_set", keys, args("add")), ["ok", 0, 1])
        self.assertEqual(self.members("demo"), [A + "#0", A + "#1"])
        self.assert_unchanged("replica_set", keys, args("add"), ["exists", 2])
        self.assert_unchanged("replica_set", keys, args("weight"), ["same", 2])
        self.assert_unchanged("replica_set", keys, args("add", B, 1, most=1), ["full", 1])
        self.assert_unchanged("replica_set", keys, args("weight", B), ["noreplica"])
        self.assertEqual(self.run_lua("replica_set", keys, args("weight", weight=3)),
                         ["ok", 2, 2])
        self.assertEqual(self.members("demo"), [A + "#0", A + "#1", A + "#2"])
        self.assertEqual(self.run_lua("replica_set", keys, args("remove")), ["ok", 3, 3])
        self.assertEqual(self.state(), {POOLS: ("set", ["demo"]), VERSION: ("string", "3")})
        self.assert_unchanged("replica_set", keys, args("remove"), ["noreplica"])
        # Wrong types: the ring a string; a bad "most replicas" argument.
        self.r("SET", ring("demo"), "x")
        self.assert_unchanged("replica_set", keys, args("add"), error=True)
        self.r("DEL", ring("demo"))
        self.assert_unchanged("replica_set", keys, args("add", most="many"), error=True)

    def test_replica_state(self):
        keys = [POOLS, replica(A), VERSION]

        def args(state):
            return [RING_HEAD, RING_TAIL, A + "#0", state]

        self.assert_unchanged("replica_state", keys, args("drain"), ["noreplica"])
        # On a pool's ring, found through the key parts passed in ARGV.
        self.r("SADD", POOLS, "demo", "other")
        self.r("ZADD", ring("other"), 5, A + "#0")
        self.assertEqual(self.run_lua("replica_state", keys, args("drain")), ["ok", 1])
        self.assertEqual(self.r("HGET", replica(A), "state"), "drain")
        self.assert_unchanged("replica_state", keys, args("drain"), ["same"])
        # Off every ring but with a state: it can still be undrained.
        self.r("DEL", ring("other"))
        self.assertEqual(self.run_lua("replica_state", keys, args("active")), ["ok", 2])
        self.assertEqual(self.r("HGET", replica(A), "state"), "active")
        # Another prefix in the key parts finds nothing under infergw:.
        self.r("DEL", replica(A))
        self.r("ZADD", ring("demo"), 5, A + "#0")
        self.assert_unchanged("replica_state", keys, ["other:pool:", RING_TAIL, A + "#0", "drain"],
                              ["noreplica"])
        self.r("SET", replica(A), "x")
        self.assert_unchanged("replica_state", keys, args("drain"), error=True)

    # --- tunables ----------------------------------------------------------------

    def test_conf_set_unset(self):
        gkeys = [POOLS, CONF, VERSION]
        pkeys = [POOLS, pool_conf("demo"), VERSION]
        self.assertEqual(self.run_lua("conf_set", gkeys, ["", "retry_max_attempts", "2"]),
                         ["ok", 1])
        self.assertEqual(self.r("HGET", CONF, "retry_max_attempts"), "2")
        self.assert_unchanged("conf_set", gkeys, ["", "retry_max_attempts", "2"], ["same"])
        self.assert_unchanged("conf_set", pkeys, ["demo", "retry_on", "INTERNAL"], ["nopool"])
        self.r("SADD", POOLS, "demo")
        self.assertEqual(self.run_lua("conf_set", pkeys, ["demo", "retry_on", "INTERNAL"]),
                         ["ok", 2])
        self.assertEqual(self.r("HGETALL", pool_conf("demo")), ["retry_on", "INTERNAL"])
        self.assert_unchanged("conf_unset", pkeys, ["demo", "hedge_delay_ms"], ["notset"])
        self.assertEqual(self.run_lua("conf_unset", pkeys, ["demo", "retry_on"]), ["ok", 3])
        self.assertEqual(self.r("EXISTS", pool_conf("demo")), 0)
        self.assert_unchanged("conf_unset", [POOLS, pool_conf("gone"), VERSION],
                              ["gone", "retry_on"], ["nopool"])
        self.r("SET", CONF, "x")
        self.assert_unchanged("conf_set", gkeys, ["", "retry_on", "INTERNAL"], error=True)
        self.assert_unchanged("conf_unset", gkeys, ["", "retry_on"], error=True)

    def test_conf_on_empty_redis(self):
        self.assert_unchanged("conf_unset", [POOLS, CONF, VERSION], ["", "retry_on"], ["notset"])

    # --- reads -------------------------------------------------------------------

    def test_read_ring(self):
        keys = [POOLS, ring("demo")]
        self.assert_unchanged("read_ring", keys, ["demo"], [0])
        self.r("SADD", POOLS, "demo")
        self.assert_unchanged("read_ring", keys, ["demo"], [1, []])
        self.r("ZADD", ring("demo"), 7, A + "#0", 3, B + "#0")
        self.assert_unchanged("read_ring", keys, ["demo"], [1, [B + "#0", "3", A + "#0", "7"]])
        self.r("SET", ring("demo"), "x")
        self.assert_unchanged("read_ring", keys, ["demo"], error=True)

    def test_read_conf(self):
        keys = [POOLS, CONF, pool_conf("demo")]
        self.assert_unchanged("read_conf", keys, [""], [1, [], []])
        self.assert_unchanged("read_conf", keys, ["demo"], [0])
        self.r("SADD", POOLS, "demo")
        self.r("HSET", CONF, "retry_on", "INTERNAL")
        self.r("HSET", pool_conf("demo"), "balance_factor", "2")
        self.assert_unchanged("read_conf", keys, ["demo"],
                              [1, ["retry_on", "INTERNAL"], ["balance_factor", "2"]])
        self.assert_unchanged("read_conf", keys, [""], [1, ["retry_on", "INTERNAL"], []])
        self.r("SET", CONF, "x")
        self.assert_unchanged("read_conf", keys, [""], error=True)

    # --- tenants and API keys ------------------------------------------------------

    def test_tenant_add(self):
        keys = [tenant("acme"), VERSION]
        self.assertEqual(self.run_lua("tenant_add", keys, ["demo", "", ""]),
                         ["ok", 1, 1, "0", "0"])
        self.assertEqual(self.r("HGETALL", tenant("acme")),
                         ["models", "demo", "rps", "0", "burst", "0"])
        self.assert_unchanged("tenant_add", keys, ["demo", "", ""], ["same", 0, 0, "0", "0"])
        self.assertEqual(self.run_lua("tenant_add", keys, ["demo,other", "5", ""]),
                         ["ok", 2, 0, "5", "0"])
        # Left out: the current value stays.
        self.assertEqual(self.run_lua("tenant_add", keys, ["*", "", "9"]), ["ok", 3, 0, "5", "9"])
        self.assertEqual(dict(zip(*[iter(self.r("HGETALL", tenant("acme")))] * 2)),
                         {"models": "*", "rps": "5", "burst": "9"})
        self.r("SET", tenant("bad"), "x")
        self.assert_unchanged("tenant_add", [tenant("bad"), VERSION], ["demo", "", ""],
                              error=True)

    def test_tenant_remove(self):
        k1, k2, k3 = apikey("01" * 32), apikey("02" * 32), apikey("03" * 32)
        keys = [tenant("acme"), VERSION, k1, k2, k3]
        self.assert_unchanged("tenant_remove", keys[:2], ["acme"], ["notenant"])
        self.r("HSET", tenant("acme"), "models", "*")
        self.r("HSET", k1, "tenant", "acme")
        self.r("HSET", k2, "tenant", "other")   # renamed since: kept
        self.r("HSET", k3, "tenant", "acme")
        self.assertEqual(self.run_lua("tenant_remove", keys, ["acme"]), ["ok", 1, 2])
        self.assertEqual(self.state(), {k2: ("hash", {"tenant": "other"}),
                                        VERSION: ("string", "1")})
        # Keys left behind by a tenant already gone are still revoked.
        self.r("HSET", k1, "tenant", "acme")
        self.assertEqual(self.run_lua("tenant_remove", [tenant("acme"), VERSION, k1], ["acme"]),
                         ["ok", 2, 1])
        self.assertEqual(self.r("EXISTS", k1), 0)
        self.r("HSET", tenant("acme"), "models", "*")
        self.r("SET", k1, "x")
        self.assert_unchanged("tenant_remove", [tenant("acme"), VERSION, k1], ["acme"],
                              error=True)

    def test_key_create_revoke(self):
        ckeys = [tenant("acme"), apikey(HASH), VERSION]
        self.assert_unchanged("key_create", ckeys, ["acme", ""], ["notenant"])
        self.assert_unchanged("key_revoke", [apikey(HASH), VERSION], [], ["nokey"])
        self.r("HSET", tenant("acme"), "models", "*")
        self.assertEqual(self.run_lua("key_create", ckeys, ["acme", ""]), ["ok", 1])
        self.assertEqual(self.r("HGETALL", apikey(HASH)), ["tenant", "acme"])
        self.assert_unchanged("key_create", ckeys, ["acme", ""], ["exists"])
        other = [tenant("acme"), apikey("cd" * 32), VERSION]
        self.assertEqual(self.run_lua("key_create", other, ["acme", "1999999999"]), ["ok", 2])
        self.assertEqual(self.r("HGET", apikey("cd" * 32), "expires_at"), "1999999999")
        self.assertEqual(self.run_lua("key_revoke", [apikey(HASH), VERSION]), ["ok", 3, "acme"])
        self.assertEqual(self.r("EXISTS", apikey(HASH)), 0)
        self.r("SET", apikey(HASH), "x")
        self.assert_unchanged("key_revoke", [apikey(HASH), VERSION], error=True)
        self.r("SET", VERSION, "abc")
        self.assert_unchanged("key_create", [tenant("acme"), apikey("ef" * 32), VERSION],
                              ["acme", ""], error=True)

    # --- leases ------------------------------------------------------------------

    def test_register_deregister(self):
        keys = [POOLS, ring("demo"), VERSION, LEASED, lease(A)]

        def args(ttl_ms=60000, most=1000, weight=2):
            return ["demo", A + "#", str(most), str(ttl_ms), A] + vnodes(A, weight)

        self.assert_unchanged("register", keys, args(), ["nopool"])
        self.r("SADD", POOLS, "demo")
        self.assertEqual(self.run_lua("register", keys, args()), ["ok", 0, 1])
        self.assertEqual(self.members("demo"), [A + "#0", A + "#1"])
        self.assertEqual(self.r("GET", lease(A)), "1")
        self.assertGreater(self.r("PTTL", lease(A)), 50000)
        self.assertEqual(self.r("SMEMBERS", LEASED), [A])
        # Renewal: no version bump, the lease gets its full TTL again.
        self.r("PEXPIRE", lease(A), 1000)
        self.assertEqual(self.run_lua("register", keys, args()), ["ok", 2, -1])
        self.assertGreater(self.r("PTTL", lease(A)), 50000)
        self.assertEqual(self.r("GET", VERSION), "1")
        # Full ring: refused before anything is written.
        self.r("DEL", ring("demo"), lease(A), LEASED)
        self.r("ZADD", ring("demo"), 1, B + "#0")
        self.assert_unchanged("register", keys, args(most=1), ["full", 1])
        self.r("DEL", ring("demo"))
        self.assertEqual(self.run_lua("register", keys, args())[0], "ok")
        self.r("ZADD", ring("demo"), 1, B + "#0")
        self.r("HSET", replica(A), "state", "drain")
        dkeys = [ring("demo"), VERSION, LEASED, lease(A), replica(A)]
        self.assertEqual(self.run_lua("deregister", dkeys, [A + "#", A]), ["ok", 2, 3])
        self.assertEqual(self.state(), {POOLS: ("set", ["demo"]), VERSION: ("string", "3"),
                                        ring("demo"): ("zset", [B + "#0", "1"])})
        # Deregistering again (a retry after a lost reply) still bumps and
        # removes nothing.
        self.assertEqual(self.run_lua("deregister", dkeys, [A + "#", A]), ["ok", 0, 4])
        # Bad argument: a ring size that is not a number (checked before INCR).
        self.assert_unchanged("register", keys, args(most="many"), error=True)

    def test_deregister_on_empty_redis(self):
        dkeys = [ring("demo"), VERSION, LEASED, lease(A), replica(A)]
        self.assertEqual(self.run_lua("deregister", dkeys, [A + "#", A]), ["ok", 0, 1])
        self.assertEqual(self.state(), {VERSION: ("string", "1")})
        self.r("SET", ring("demo"), "x")
        self.assert_unchanged("deregister", dkeys, [A + "#", A], error=True)

    def test_gc(self):
        keys = [LEASED, LEASE_GONE, POOLS, VERSION]

        def args(grace):
            return [LEASE_HEAD, str(grace), RING_HEAD, RING_TAIL]

        self.assert_unchanged("gc", keys, args(60), ["ok", -1, [], []])
        self.r("SADD", POOLS, "demo", "other")
        self.r("SADD", LEASED, A, B)
        self.r("SET", lease(B), "1")
        self.r("ZADD", ring("demo"), 1, A + "#0", 2, A + "#1", 3, B + "#0")
        self.r("ZADD", ring("other"), 4, A + "#0")
        # A's lease is gone: noted now, removed once the grace period is over.
        self.assertEqual(self.run_lua("gc", keys, args(60)), ["ok", -1, [], [A + " 60"]])
        gone = self.r("HGET", LEASE_GONE, A)
        self.assertIsNotNone(gone)
        self.assertEqual(self.r("HEXISTS", LEASE_GONE, B), 0)
        self.assertEqual(self.r("HGET", LEASE_GONE, A), gone)
        self.assertEqual(self.run_lua("gc", keys, args(0)), ["ok", 1, [A], []])
        self.assertEqual(self.members("demo"), [B + "#0"])
        self.assertEqual(self.r("EXISTS", ring("other")), 0)
        self.assertEqual(self.r("SMEMBERS", LEASED), [B])
        self.assertEqual(self.r("EXISTS", LEASE_GONE), 0)
        self.assertEqual(self.r("GET", VERSION), "1")
        # A lease that comes back forgets its gone-time.
        self.r("DEL", lease(B))
        self.run_lua("gc", keys, args(60))
        self.assertEqual(self.r("HEXISTS", LEASE_GONE, B), 1)
        self.r("SET", lease(B), "1")
        self.assertEqual(self.run_lua("gc", keys, args(60)), ["ok", -1, [], []])
        self.assertEqual(self.r("EXISTS", LEASE_GONE), 0)
        # Wrong type and bad argument.
        self.r("DEL", lease(B))
        self.assert_unchanged("gc", keys, args("later"), error=True)
        self.r("DEL", LEASED)
        self.r("SET", LEASED, "x")
        self.assert_unchanged("gc", keys, args(60), error=True)

    # --- restore -----------------------------------------------------------------

    def test_restore(self):
        # Into an empty Redis: the version becomes config_version + 1.
        writes = [POOLS, ring("demo"), pool_conf("demo"), tenant("acme")]
        plan = ["set", "1", "demo",
                "zset", "4", "1", A + "#0", "2", A + "#1",
                "hash", "2", "hedge_delay_ms", "50",
                "hash", "4", "models", "demo", "rps", "5"]
        self.assertEqual(self.run_lua("restore", [VERSION] + writes, ["", "7", "0"] + plan),
                         ["ok", 8])
        want = {POOLS: ("set", ["demo"]), VERSION: ("string", "8"),
                ring("demo"): ("zset", [A + "#0", "1", A + "#1", "2"]),
                pool_conf("demo"): ("hash", {"hedge_delay_ms": "50"}),
                tenant("acme"): ("hash", {"models": "demo", "rps": "5"})}
        self.assertEqual(self.state(), want)
        # A write since the state was read: nothing written.
        self.assert_unchanged("restore", [VERSION] + writes, ["7", "0", "0"] + plan,
                              ["changed", "8"])
        # Replacing: the old keys go (a stale tenant, a ring of the wrong
        # type), the new ones are written whole; leases stay; a version above
        # config_version is just bumped.
        self.r("HSET", tenant("old"), "models", "*")
        self.r("DEL", ring("demo"))
        self.r("SET", ring("demo"), "junk")
        self.r("SET", lease(A), "1")
        self.r("SET", VERSION, "20")
        old = [POOLS, ring("demo"), pool_conf("demo"), tenant("acme"), tenant("old")]
        new = [POOLS, ring("demo")]
        self.assertEqual(self.run_lua("restore", [VERSION] + old + new,
                                      ["20", "7", str(len(old)), "set", "2", "demo", "other",
                                       "zset", "2", "3", B + "#0"]), ["ok", 21])
        self.assertEqual(self.state(), {POOLS: ("set", ["demo", "other"]),
                                        VERSION: ("string", "21"),
                                        ring("demo"): ("zset", [B + "#0", "3"]),
                                        lease(A): ("string", "1")})
        # An empty document empties the control plane.
        self.assertEqual(self.run_lua("restore", [VERSION] + new, ["21", "0", "2"]), ["ok", 22])
        self.assertEqual(self.state(), {VERSION: ("string", "22"), lease(A): ("string", "1")})
        # Bad plans and arguments are refused before anything is written.
        self.r("SADD", POOLS, "demo")
        for keys, args in (([VERSION, POOLS], ["22", "0", "0", "list", "1", "x"]),
                           ([VERSION, POOLS], ["22", "0", "0", "set", "5", "x"]),
                           ([VERSION, POOLS], ["22", "0", "0", "hash", "1", "x"]),
                           ([VERSION, POOLS], ["22", "0", "0"]),
                           ([VERSION], ["22", "0", "0", "set", "1", "x"]),
                           ([VERSION, POOLS], ["22", "zero", "1"]),
                           ([VERSION, POOLS], ["22", "0", "2"])):
            self.assert_unchanged("restore", keys, args, error=True)
        # A version that is not a number: INCR fails before any write.
        self.r("SET", VERSION, "abc")
        self.assert_unchanged("restore", [VERSION, POOLS, POOLS],
                              ["abc", "0", "1", "set", "1", "x"], error=True)
        # The version key of the wrong type.
        self.r("DEL", VERSION)
        self.r("HSET", VERSION, "a", "b")
        self.assert_unchanged("restore", [VERSION, POOLS], ["", "0", "0", "set", "1", "x"],
                              error=True)

    # --- coverage ----------------------------------------------------------------

    def test_zz_every_script_tested(self):
        """Runs last (name order): every .lua file has been run by a test."""
        self.assertEqual(sorted(set(self.sha) - LuaScriptTest.tested), [])


if __name__ == "__main__":
    unittest.main()
