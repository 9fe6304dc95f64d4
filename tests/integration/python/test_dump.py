# SPDX-License-Identifier: Apache-2.0
"""infergw-ctl dump and restore (docs/backup.md) against a real redis-server,
real replicas and a gateway on --redis:

- dump -> FLUSHALL -> restore under a steady load through the gateway: no
  failed call (the gateway keeps its last snapshot while Redis is empty and
  takes the restored state as a normal change), every control-plane key and
  field is back as it was, `infergw-ctl route` gives the same replica for
  1,000 keys and real calls land on the same replicas as before;
- a dump with one invalid value (each of several kinds in turn) is refused
  whole: exit 2, the message names the value's JSON path, and Redis is
  unchanged (every key, type and value, the version included);
- restore --dry-run prints the added, removed and changed keys and fields
  and writes nothing; a dump of a newer format version is refused with its
  message; a restore into an empty Redis gives back the same dump, and one
  over keys of the wrong type replaces them;
- deploy/backup.sh writes dump-<UTC timestamp>.json and keeps the newest
  INFERGW_BACKUP_KEEP; a failed dump leaves no file and deletes nothing.
"""

import copy
import json
import os
import subprocess
import sys
import tempfile
import time
import unittest

import harness as h

POOL = "demo"
BACKUP_SH = os.path.join(h.SOURCE_DIR, "deploy", "backup.sh")


def redis_state(conn):
    """Every key with its type and value (strings, sorted set members with
    scores, hash fields), for before/after comparisons."""
    out = {}
    for k in h.redis_call(conn, "KEYS", "*"):
        t = h.redis_call(conn, "TYPE", k)
        if t == "string":
            v = h.redis_call(conn, "GET", k)
        elif t == "set":
            v = sorted(h.redis_call(conn, "SMEMBERS", k))
        elif t == "zset":
            v = h.redis_call(conn, "ZRANGE", k, 0, -1, "WITHSCORES")
        elif t == "hash":
            v = dict(zip(*[iter(h.redis_call(conn, "HGETALL", k))] * 2))
        else:
            v = None
        out[k] = (t, v)
    return out


class DumpCase(unittest.TestCase):
    N_REPLICAS = 3

    def setUp(self):
        self.redis = h.start_redis(name="redis-" + self._testMethodName[:20])
        self.addCleanup(self.redis.stop)
        self.url = h.redis_url(self.redis)
        self.r = h.redis_connect(self.redis.port)
        self.addCleanup(h.redis_close, self.r)
        self.tmp = tempfile.TemporaryDirectory(prefix="infergw-dump-")
        self.addCleanup(self.tmp.cleanup)

    def ctl(self, *args, expect=0, url=None):
        return h.run_ctl(url or self.url, *args, expect=expect)

    def path(self, name):
        return os.path.join(self.tmp.name, name)

    def make_state(self, addrs):
        """Two pools, weights, a drained replica (an address nobody serves),
        global and pool tunables, two tenants and their API keys."""
        self.dead = "127.0.0.1:%d" % h.free_port()
        self.weights = dict(zip(addrs, (100, 150, 60)))
        self.weights[self.dead] = 80
        self.ctl("pool", "add", POOL)
        for a, w in self.weights.items():
            self.ctl("replica", "add", POOL, a, "--weight", w)
        self.ctl("replica", "drain", self.dead)
        self.ctl("pool", "add", "other")
        self.ctl("replica", "add", "other", addrs[0], "--weight", 7)
        self.ctl("conf", "set", "retry_on", "UNAVAILABLE,DEADLINE_EXCEEDED")
        self.ctl("conf", "set", "--pool", POOL, "hedge_delay_ms", "250")
        self.ctl("tenant", "add", "acme", "--models", POOL, "--rps", "50", "--burst", "100")
        self.ctl("tenant", "add", "globex", "--models", "*")
        self.ctl("key", "create", "acme")
        self.ctl("key", "create", "globex", "--expires-in", "30d")

    def dump(self, name="dump.json", url=None):
        self.ctl("dump", "--out", self.path(name), url=url)
        with open(self.path(name)) as f:
            return json.load(f)

    def write_doc(self, doc, name):
        with open(self.path(name), "w") as f:
            json.dump(doc, f)
        return self.path(name)

    def state(self):
        """The Redis state but the gateways' own health reports."""
        return {k: v for k, v in redis_state(self.r).items()
                if not k.startswith("infergw:gateway:")}


class DumpRestoreUnderLoadTest(DumpCase):

    def route_all(self, keys):
        out = {}
        for k in keys:
            out[k] = self.ctl("route", POOL, "--", k).stdout.split()[0]
        return out

    def calls(self, stub, keys):
        out = {}
        vals = h.values(4)
        for k in keys:
            resp, call = stub.ModelInfer.with_call(h.typed_request(vals, model=POOL),
                                                   metadata=[("x-route-key", k)], timeout=5)
            self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))
            out[k] = h.replica_of(call)
        return out

    def test_dump_flushall_restore_under_load(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        reps = []
        for i in range(self.N_REPLICAS):
            p = h.start_replica("dump-r%d" % i, "--quiet")
            self.addCleanup(p.stop)
            reps.append(p)
        rid = {p.addr: "dump-r%d" % i for i, p in enumerate(reps)}
        self.make_state([p.addr for p in reps])
        version = int(self.ctl("version").stdout.strip())
        gw = h.start_gateway({}, "--redis", self.url)
        self.addCleanup(gw.stop)
        self.assertIsNotNone(gw.wait_event(lambda e: e.get("version") == version, timeout=10,
                                           event="config_applied"), gw.tail())
        ch = h.channel(gw.addr)
        self.addCleanup(ch.close)
        stub = h.infer_stub(ch)

        keys = ["customer-%d" % i for i in range(1000)]
        t0 = time.monotonic()
        routes_before = self.route_all(keys)
        h.timing("route_1000_keys", time.monotonic() - t0)
        model = h.RingModel(self.weights, drained=[self.dead])
        self.assertEqual({k: model.owner(k) for k in keys}, routes_before)
        self.assertNotIn(self.dead, routes_before.values())
        called = keys[:200]
        calls_before = self.calls(stub, called)
        self.assertEqual(calls_before, {k: rid[routes_before[k]] for k in called})

        doc = self.dump()
        self.assertEqual(doc["config_version"], version)
        before = self.state()

        load = h.SteadyLoad(gw.addr, keys[:100], rate=50).start()
        try:
            time.sleep(1.0)
            self.assertEqual(h.redis_call(self.r, "FLUSHALL"), "OK")
            self.assertIsNotNone(gw.wait_event(lambda e: True, timeout=10, event="redis_empty"),
                                 "the gateway did not notice the empty Redis:\n" + gw.tail())
            time.sleep(1.0)  # serving on the last snapshot meanwhile
            out = self.ctl("restore", self.path("dump.json")).stdout
            restored = h.ctl_version(out)
            self.assertEqual(restored, version + 1, out)
            self.assertIsNotNone(gw.wait_event(lambda e: e.get("version") == restored,
                                               timeout=10, event="config_applied"), gw.tail())
            time.sleep(1.0)
        finally:
            records = load.stop()
        failed = load.failures(records)
        sys.stderr.write("steady load: %d calls, %d failed\n" % (len(records), len(failed)))
        self.assertGreater(len(records), 100)
        self.assertEqual(failed, [], "failed calls: %r" % failed[:5])

        after = self.state()
        self.assertEqual(after.pop("infergw:version"), ("string", str(restored)))
        before.pop("infergw:version")
        self.assertEqual(after, before)
        self.assertEqual(self.route_all(keys), routes_before)
        self.assertEqual(self.calls(stub, called), calls_before)


class RestoreRefusesTest(DumpCase):

    def test_one_invalid_value_refused_whole(self):
        self.make_state(["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
        doc = self.dump()
        # Redis moves on after the dump, so a restore would change it.
        self.ctl("tenant", "add", "initech", "--models", POOL)
        self.ctl("replica", "weight", POOL, "127.0.0.1:7301", 5)
        keyhash = sorted(doc["apikeys"])[0]

        def conf(d):
            d["pools"][POOL]["conf"]["hedge_delay_ms"] = "soon"

        def weight(d):
            d["pools"][POOL]["ring"][1]["weight"] = 0

        def state(d):
            d["replicas"][self.dead]["state"] = "drained"

        def rps(d):
            d["tenants"]["acme"]["rps"] = "fast"

        def key_tenant(d):
            d["apikeys"][keyhash]["tenant"] = "nobody"

        def pool_name(d):
            d["pools"]["bad pool"] = {"ring": [], "conf": {}}

        def global_field(d):
            d["global"]["hedge_ms"] = "50"

        def replica_addr(d):
            d["pools"][POOL]["ring"][0]["replica"] = "127.0.0.1:07301"

        cases = [(conf, "pools.demo.conf.hedge_delay_ms: "),
                 (weight, "pools.demo.ring[1].weight: "),
                 (state, "replicas.%s.state: " % self.dead),
                 (rps, "tenants.acme.rps: "),
                 (key_tenant, "apikeys.%s.tenant: " % keyhash[:80]),
                 (pool_name, "pools.bad pool: "),
                 (global_field, "global.hedge_ms: "),
                 (replica_addr, "pools.demo.ring[0].replica: ")]
        for edit, path in cases:
            bad = copy.deepcopy(doc)
            edit(bad)
            f = self.write_doc(bad, "bad-%s.json" % edit.__name__)
            before = self.state()
            for args in (("restore", f), ("restore", "--dry-run", f)):
                p = self.ctl(*args, expect=2)
                self.assertIn("infergw-ctl: " + path, p.stderr, edit.__name__)
                self.assertIn("nothing written", p.stderr)
                self.assertEqual(p.stdout, "")
            self.assertEqual(self.state(), before, edit.__name__)
            sys.stderr.write("%s refused: %s" % (edit.__name__, p.stderr.splitlines()[0]))
            sys.stderr.write("\n")
        # Not JSON at all, and JSON with a key given twice.
        for text in ("{not json", '{"format": "infergw-dump", "format": "x"}'):
            with open(self.path("junk.json"), "w") as f:
                f.write(text)
            before = self.state()
            p = self.ctl("restore", self.path("junk.json"), expect=2)
            self.assertIn("nothing written", p.stderr)
            self.assertEqual(self.state(), before)

    def test_newer_format_version_refused(self):
        self.make_state(["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
        doc = self.dump()
        doc["version"] = 2
        doc["something_new"] = {"x": 1}
        f = self.write_doc(doc, "v2.json")
        before = self.state()
        p = self.ctl("restore", f, expect=2)
        self.assertIn("dump format version 2 is newer than this infergw-ctl understands (1)",
                      p.stderr)
        self.assertEqual(self.state(), before)
        # From stdin too.
        with open(f) as src:
            p = subprocess.run([os.path.join(h.BIN_DIR, "infergw-ctl"), "--redis", self.url,
                                "restore", "-"], stdin=src, capture_output=True, text=True,
                               timeout=30)
        self.assertEqual(p.returncode, 2)
        self.assertIn("dump format version 2 is newer", p.stderr)
        self.assertEqual(self.state(), before)


class DryRunAndEmptyRedisTest(DumpCase):

    def test_dry_run_shows_the_diff_writes_nothing(self):
        a0, a1, a2 = "127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"
        self.make_state([a0, a1, a2])
        self.dump()
        self.ctl("tenant", "add", "initech", "--models", POOL)
        self.ctl("replica", "weight", POOL, a0, 5)
        self.ctl("conf", "set", "--pool", POOL, "hedge_delay_ms", "90")
        self.ctl("conf", "unset", "retry_on")
        self.ctl("replica", "undrain", self.dead)
        self.ctl("pool", "remove", "other")
        before = self.state()
        out = self.ctl("restore", "--dry-run", self.path("dump.json")).stdout
        sys.stderr.write(out)
        self.assertEqual(self.state(), before)
        lines = out.splitlines()
        for want in ("- infergw:tenant:initech (hash)",
                     "~ infergw:pool:demo:ring (ring: replica = weight)",
                     "    ~ %s = 5 -> 100" % a0,
                     "~ infergw:pool:demo:conf (hash)",
                     "    ~ hedge_delay_ms = 90 -> 250",
                     "+ infergw:conf (hash)",
                     "    + retry_on = UNAVAILABLE,DEADLINE_EXCEEDED",
                     "~ infergw:replica:%s (hash)" % self.dead,
                     "    ~ state = active -> drain",
                     "~ infergw:pools (set)",
                     "    + other",
                     "+ infergw:pool:other:ring (ring: replica = weight)",
                     "    + %s = 7" % a0):
            self.assertIn(want, lines)
        self.assertIn("2 key(s) added, 1 removed, 4 changed, 4 unchanged", out)
        self.assertIn("dry run: nothing written", out)
        # The same as JSON.
        j = json.loads(self.ctl("--json", "restore", "--dry-run", self.path("dump.json")).stdout)
        self.assertEqual((j["added"], j["removed"], j["changed"], j["dry_run"]), (2, 1, 4, True))
        self.assertEqual(self.state(), before)
        # Applied, the diff is gone.
        self.ctl("restore", self.path("dump.json"))
        out = self.ctl("restore", "--dry-run", self.path("dump.json")).stdout
        self.assertIn("0 key(s) added, 0 removed, 0 changed", out)

    def test_restore_into_empty_redis(self):
        self.make_state(["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
        doc = self.dump()
        other = h.start_redis(name="redis-empty")
        self.addCleanup(other.stop)
        url = h.redis_url(other)
        self.assertEqual(h.redis_query(other.port, "DBSIZE"), 0)
        out = self.ctl("restore", self.path("dump.json"), url=url).stdout
        self.assertEqual(h.ctl_version(out), doc["config_version"] + 1)
        again = self.dump("again.json", url=url)
        for d in (doc, again):
            d.pop("taken_at")
            d.pop("config_version")
        self.assertEqual(again, doc)
        conn = h.redis_connect(other.port)
        self.addCleanup(h.redis_close, conn)
        mine, theirs = self.state(), redis_state(conn)
        mine.pop("infergw:version")
        theirs.pop("infergw:version")
        self.assertEqual(theirs, mine)
        # An empty document into an empty Redis: nothing but the version.
        empty = self.write_doc({"format": "infergw-dump", "version": 1}, "empty.json")
        self.ctl("restore", empty, url=url)
        self.assertEqual(list(redis_state(conn)), ["infergw:version"])


    def test_restore_over_keys_of_the_wrong_type(self):
        """Garbage where control-plane keys belong is no obstacle: dump and
        the restore's reading of the current state warn and read it as
        empty, and the script deletes each key before it writes it."""
        self.make_state(["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
        self.dump()
        want = self.state()
        want.pop("infergw:version")
        h.redis_call(self.r, "FLUSHALL")
        h.redis_call(self.r, "SET", "infergw:pools", "junk")
        h.redis_call(self.r, "SET", "infergw:pool:demo:ring", "junk")
        h.redis_call(self.r, "SADD", "infergw:conf", "junk")
        p = self.ctl("dump")
        self.assertIn("infergw:pools is not a set; left out", p.stderr)
        self.assertIn("infergw:conf is not a hash; left out", p.stderr)
        self.ctl("restore", self.path("dump.json"))
        got = self.state()
        got.pop("infergw:version")
        self.assertEqual(got, want)


class BackupScriptTest(DumpCase):

    def run_backup(self, keep, url=None):
        env = dict(os.environ, PATH=h.BIN_DIR + os.pathsep + os.environ.get("PATH", ""),
                   INFERGW_REDIS=url or self.url, INFERGW_BACKUP_DIR=self.path("backups"),
                   INFERGW_BACKUP_KEEP=str(keep))
        return subprocess.run(["sh", BACKUP_SH], env=env, capture_output=True, text=True,
                              timeout=60)

    def test_backup_retention(self):
        self.make_state(["127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"])
        d = self.path("backups")
        os.makedirs(d)
        old = ["dump-2026010%dT000000Z.json" % i for i in range(1, 6)]
        for name in old + ["notes.txt", "dump-latest.json"]:
            with open(os.path.join(d, name), "w") as f:
                f.write("{}")
        p = self.run_backup(3)
        self.assertEqual(p.returncode, 0, p.stderr)
        new = sorted(n for n in os.listdir(d) if n not in old and n.endswith("Z.json"))
        self.assertEqual(len(new), 1, os.listdir(d))
        self.assertRegex(new[0], r"^dump-\d{8}T\d{6}Z\.json$")
        # The newest 3 dumps stay (the new one and the two newest old ones);
        # files that are not dumps are left alone; no temporary file stays.
        self.assertEqual(sorted(os.listdir(d)),
                         sorted([new[0], old[3], old[4], "notes.txt", "dump-latest.json"]))
        with open(os.path.join(d, new[0])) as f:
            doc = json.load(f)
        self.assertEqual((doc["format"], doc["version"]), ("infergw-dump", 1))
        self.assertIn(POOL, doc["pools"])
        # Redis unreachable: exit non-zero, no new file, nothing deleted.
        listing = sorted(os.listdir(d))
        p = self.run_backup(1, url="redis://127.0.0.1:%d" % h.free_port())
        self.assertNotEqual(p.returncode, 0)
        self.assertEqual(sorted(os.listdir(d)), listing)
        # A bad KEEP is refused before anything runs.
        p = self.run_backup(0)
        self.assertEqual(p.returncode, 2)
        self.assertEqual(sorted(os.listdir(d)), listing)
        # One more second, one more dump, and KEEP=1 leaves only it.
        time.sleep(1.1)
        p = self.run_backup(1)
        self.assertEqual(p.returncode, 0, p.stderr)
        left = sorted(n for n in os.listdir(d) if n.endswith("Z.json"))
        self.assertEqual(len(left), 1)
        self.assertGreater(left[0], new[0])


if __name__ == "__main__":
    unittest.main()
