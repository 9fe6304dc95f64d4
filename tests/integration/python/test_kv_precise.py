# SPDX-License-Identifier: Apache-2.0
"""The precise prefix view end to end (docs/routing.md, "Reading the
streams"): a real redis-server, two plain replicas on pool demo's ring, a
gateway on --redis with route_by prefix and prefix_mode precise, and KV-cache
events written straight into the pool's stream infergw:pool:demo:kv with
XADD (the entry format of docs/redis-keys.md) for replica ids that are the
ring addresses. Seen through /metrics (infergw_kv_view_usable,
infergw_kv_events_total) and /debug/prefix (its "precise" object):

- entries written before the gateway started are read from 0-0: one
  replica's `cleared` counts, and the view is usable once the other's is in;
- a seq gap makes the view unusable (result="lost"), a one-part snapshot
  makes it usable again;
- redis-server stopped: the view is unusable (kv_stream_lost is logged);
  back on the same port (empty), it stays unusable after the reconnect until
  both replicas' next snapshot, then usable;
- a steady load of calls runs meanwhile: none fails;
- the same with a Redis that requires a password (AUTH from the URL), and
  through a Sentinel;
- a pool whose stream key holds a string is left out of the read, the other
  pool's view stays usable, and it is read again once the key is a stream.

With simulated LLM replicas (--llm-model, publishing their KV events with
--kv-id = their ring address) and `infergw-ctl route <pool> --prompt-file F`:
- the gateway's view of their stream is usable;
- after one replica served a prompt, ctl names it with every block matched
  (its hashes are the replica's, which hashes with the same gw_prefix_hash),
  and names the ring fallback for a prompt no replica holds;
- the gateway sends that prompt to the replica ctl named (a decision on
  its precise view);
- with prefix_mode estimate, ctl says the index is per gateway and gives the
  ring fallback.
"""

import json
import os

import time
import unittest

import harness as h

POOL = "demo"
STREAM = "infergw:pool:%s:kv" % POOL
H1, H2 = "00000000000000a1", "00000000000000b2"


class KvPreciseCase(unittest.TestCase):
    PASSWORD = None  # redis-server --requirepass, and in the gateway's URL

    def redis_args(self):
        return ("--requirepass", self.PASSWORD) if self.PASSWORD else ()

    def connect(self):
        conn = h.redis_connect(self.redis.port)
        if self.PASSWORD:
            h.redis_call(conn, "AUTH", self.PASSWORD)
        return conn

    def make_url(self):
        return (h.redis_url(self.redis) if not self.PASSWORD else
                "redis://:%s@127.0.0.1:%d" % (self.PASSWORD, self.redis.port))

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(*self.redis_args(), name="redis-kv")
        self.addCleanup(lambda: self.redis.stop())
        self.url = self.make_url()
        self.replicas = []
        for i in range(2):
            p = h.start_replica("kv-r%d" % i, "--quiet")
            self.addCleanup(p.stop)
            self.replicas.append(p)
        self.r = self.connect()
        self.seq = {}

    def ctl(self, *args):
        return h.run_ctl(self.url, *args)

    def xadd(self, addr, op, hashes="", seq=None, part=None):
        """One entry of replica <addr> (epoch 7): its next seq unless <seq>."""
        s = seq if seq is not None else self.seq.get(addr, 0) + 1
        self.seq[addr] = s
        fields = ["r", addr, "e", "7", "s", str(s), "op", op, "h", hashes]
        if part:
            fields += ["part", str(part[0]), "parts", str(part[1])]
        rep = h.redis_call(self.r, "XADD", STREAM, "MAXLEN", "~", "1000", "*", *fields)
        self.assertNotIsInstance(rep, Exception, "XADD refused: %r" % (rep,))

    def usable(self):
        return h.metric_sum(h.scrape(self.admin), "infergw_kv_view_usable", pool=POOL)

    def events(self, result):
        return h.metric_sum(h.scrape(self.admin), "infergw_kv_events_total", pool=POOL,
                            result=result)

    def wait_usable(self, want, what, timeout=5.0):
        t0 = time.time()
        ok = h.wait_for(lambda: self.usable() == want, timeout)
        self.assertTrue(ok, "infergw_kv_view_usable is %r, not %r, %s; log:\n%s"
                        % (self.usable(), want, what, self.gw.tail()))
        h.timing("kv_usable_%d_%s" % (want, what.replace(" ", "_")), time.time() - t0)

    def test_view_follows_stream(self):
        a, b = (p.addr for p in self.replicas)
        self.ctl("pool", "add", POOL)
        for addr in (a, b):
            self.ctl("replica", "add", POOL, addr)
        self.ctl("conf", "set", "--pool", POOL, "route_by", "prefix")
        self.ctl("conf", "set", "--pool", POOL, "prefix_mode", "precise")
        # History the gateway finds at start: a's cleared and a stored.
        self.xadd(a, "cleared")
        self.xadd(a, "stored", H1)

        self.admin = h.free_port()
        self.gw = h.start_gateway({}, "--redis", self.url, "--admin",
                                  "127.0.0.1:%d" % self.admin)
        self.addCleanup(self.gw.stop)
        self.assertTrue(h.wait_for(lambda: self.events("applied") == 2, 5),
                        "history not applied; log:\n%s" % self.gw.tail())
        self.assertEqual(self.usable(), 0, "b was never heard of")

        load = h.SteadyLoad(self.gw.addr, ["k%d" % i for i in range(20)], rate=50).start()
        try:
            self.xadd(b, "cleared")
            self.xadd(b, "stored", H1 + "," + H2)
            self.wait_usable(1, "after cleared")

            # A seq gap: b is stale; a one-part snapshot makes it fresh.
            self.xadd(b, "stored", H2, seq=self.seq[b] + 2)
            self.wait_usable(0, "after a gap")
            self.assertEqual(self.events("lost"), 1)
            top = h.http_json(self.admin, "/debug/prefix?pool=" + POOL)
            dbg = top["precise"]
            self.assertTrue(dbg["followed"] and dbg["stream_up"])
            self.assertFalse(dbg["usable"])
            # The stream is up, but a call routed now would not use the view.
            self.assertFalse(top["precise_view_usable"])
            self.assertEqual(dbg["events"]["lost"], 1)
            stale = {r["addr"]: r for r in dbg["replicas"]}
            self.assertFalse(stale[a]["stale"], dbg)
            self.assertTrue(stale[b]["stale"], dbg)
            self.assertIn("gap", stale[b]["why"])
            self.xadd(b, "snapshot", H1, part=(1, 1))
            self.wait_usable(1, "after a snapshot")

            # Redis stopped: the stream is lost.
            h.redis_close(self.r)
            t_stop = time.time()
            self.redis.stop()
            self.wait_usable(0, "redis stopped")
            ev = self.gw.wait_event(lambda e: h.log_time(e) >= t_stop - 0.01, timeout=10,
                                    event="kv_stream_lost")
            self.assertIsNotNone(ev, "no kv_stream_lost; log:\n%s" % self.gw.tail())
            time.sleep(2.0)

            # Back (empty): reconnected, still stale until each snapshot.
            self.redis = h.start_redis(*self.redis_args(), port=self.redis.port,
                                       name="redis-kv")
            self.r = self.connect()
            t_back = time.time()
            ev = self.gw.wait_event(lambda e: h.log_time(e) >= t_back - 0.01, timeout=10,
                                    event="kv_stream_connected")
            self.assertIsNotNone(ev, "no kv_stream_connected; log:\n%s" % self.gw.tail())
            time.sleep(0.3)
            self.assertEqual(self.usable(), 0, "usable before any snapshot")
            self.xadd(a, "snapshot", H1, part=(1, 1))
            time.sleep(0.3)
            self.assertEqual(self.usable(), 0, "usable with b still stale")
            self.xadd(b, "snapshot", H1 + "," + H2, part=(1, 1))
            self.wait_usable(1, "after redis returned")
        finally:
            load.stop()
        calls = load.snapshot()
        self.assertGreater(len(calls), 100)
        self.assertEqual(load.failures(), [], "calls failed")
        samples = h.scrape(self.admin)
        self.assertGreater(h.metric_sum(samples, "infergw_kv_index_bytes"), 0)
        self.assertEqual(self.events("rejected"), 0)
        top = h.http_json(self.admin, "/debug/prefix?pool=" + POOL)
        dbg = top["precise"]
        self.assertTrue(dbg["usable"], dbg)
        self.assertTrue(top["precise_view_usable"])
        self.assertEqual({r["addr"]: r["held"] for r in dbg["replicas"]}, {a: 1, b: 2})



class KvPreciseAuthCase(KvPreciseCase):
    """The same with a password: the reader authenticates as the watcher does."""

    PASSWORD = "kv-s3cret"


class KvPreciseSentinelCase(KvPreciseCase):
    """The same through a Sentinel (sentinel:// URL): the reader finds the
    master as the watcher does, and finds it again when it comes back."""

    def make_url(self):
        self.sentinel = h.start_sentinel(self.redis.port, "kvmaster")
        self.addCleanup(self.sentinel.stop)
        return "sentinel://127.0.0.1:%d/kvmaster" % self.sentinel.port


class KvWrongTypeCase(unittest.TestCase):
    """Two precise pools; one's stream key holds a string. The other's view
    is read and usable all along; the bad pool is unusable, its replicas
    stale with the reason, kv_stream_wrong_type logged once; once the key
    is a stream again the pool is read again."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(name="redis-kvtype")
        self.addCleanup(self.redis.stop)
        self.url = h.redis_url(self.redis)
        self.replicas = []
        for i in range(2):
            p = h.start_replica("kvtype-r%d" % i, "--quiet")
            self.addCleanup(p.stop)
            self.replicas.append(p)
        self.r = h.redis_connect(self.redis.port)
        self.addCleanup(h.redis_close, self.r)
        for pool in ("good", "bad"):
            h.run_ctl(self.url, "pool", "add", pool)
            for p in self.replicas:
                h.run_ctl(self.url, "replica", "add", pool, p.addr)
            h.run_ctl(self.url, "conf", "set", "--pool", pool, "route_by", "prefix")
            h.run_ctl(self.url, "conf", "set", "--pool", pool, "prefix_mode", "precise")

    def xadd(self, pool, addr, seq, op, hashes=""):
        rep = h.redis_call(self.r, "XADD", "infergw:pool:%s:kv" % pool, "*", "r", addr, "e", "7",
                           "s", str(seq), "op", op, "h", hashes)
        self.assertNotIsInstance(rep, Exception, "XADD refused: %r" % (rep,))

    def usable(self, pool):
        return h.metric_sum(h.scrape(self.admin), "infergw_kv_view_usable", pool=pool)

    def test_wrong_type_key_isolated(self):
        a, b = (p.addr for p in self.replicas)
        self.assertEqual(h.redis_call(self.r, "SET", "infergw:pool:bad:kv", "oops"), "OK")
        for addr in (a, b):
            self.xadd("good", addr, 1, "cleared")
        self.admin = h.free_port()
        self.gw = h.start_gateway({}, "--redis", self.url, "--admin", "127.0.0.1:%d" % self.admin)
        self.addCleanup(self.gw.stop)
        self.assertTrue(h.wait_for(lambda: self.usable("good") == 1, 5),
                        "the good pool's view is not usable; log:\n%s" % self.gw.tail())
        self.assertEqual(self.usable("bad"), 0)
        ev = self.gw.wait_event(lambda e: e.get("pool") == "bad", timeout=5,
                                event="kv_stream_wrong_type")
        self.assertIsNotNone(ev, "no kv_stream_wrong_type; log:\n%s" % self.gw.tail())
        self.assertEqual((ev["key"], ev["type"]), ("infergw:pool:bad:kv", "string"))
        # Entries of the good pool keep coming in while the bad key stays bad
        # (looked at again every 2 s: logged once).
        for seq in range(2, 6):
            self.xadd("good", a, seq, "stored", "00000000000000a%d" % seq)
            time.sleep(0.8)
        applied = h.metric_sum(h.scrape(self.admin), "infergw_kv_events_total", pool="good",
                               result="applied")
        self.assertEqual(applied, 6)
        self.assertEqual(self.usable("good"), 1)
        self.assertEqual(len(self.gw.events("kv_stream_wrong_type")), 1)
        self.assertEqual(self.gw.events("kv_stream_lost"), [], "the stream was given up")
        dbg = h.http_json(self.admin, "/debug/prefix?pool=bad")["precise"]
        self.assertTrue(dbg["stream_up"])
        self.assertFalse(dbg["usable"])
        # Replicas never heard of are stale from the start; none is fresh.
        self.assertTrue(all(r["stale"] or not r["known"] for r in dbg["replicas"]), dbg)

        # The key becomes a stream: read again, usable once both replicas
        # are in.
        self.assertEqual(h.redis_call(self.r, "DEL", "infergw:pool:bad:kv"), 1)
        for addr in (a, b):
            self.xadd("bad", addr, 1, "cleared")
        self.assertTrue(h.wait_for(lambda: self.usable("bad") == 1, 6),
                        "the bad pool's view is not usable after the fix; log:\n%s"
                        % self.gw.tail())
        ev = self.gw.wait_event(lambda e: e.get("pool") == "bad", timeout=1,
                                event="kv_stream_key_fixed")
        self.assertIsNotNone(ev, "no kv_stream_key_fixed; log:\n%s" % self.gw.tail())
        self.assertEqual(ev["type"], "stream")
        self.assertEqual(self.usable("good"), 1)


LLM = "chat"
BLOCK = 16


class CtlPromptCase(unittest.TestCase):
    """Simulated LLM replicas publishing their KV events, a gateway in precise
    mode reading them and infergw-ctl predicting a route, all under a key
    prefix that is not the default (the replicas' --kv-events-prefix, the
    gateway's and infergw-ctl's --redis-prefix)."""
    PREFIX = "kvctl7:"

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(name="redis-kvctl")
        self.addCleanup(self.redis.stop)
        self.url = h.redis_url(self.redis)
        self.replicas = []
        for i in range(2):
            port = h.free_port()
            addr = "127.0.0.1:%d" % port
            p = h.start_replica("kvctl-r%d" % i, "--quiet", "--llm-model", LLM, "--prefix-block",
                                str(BLOCK), "--kv-blocks", "64", "--prefill-us-per-unit", "0",
                                "--decode-us-per-token", "0", "--decode-tokens", "1",
                                "--kv-pool", LLM, "--kv-id", addr, "--kv-events-redis",
                                self.redis.addr, "--kv-events-prefix", self.PREFIX,
                                "--kv-snapshot-ms", "300", port=port)
            self.addCleanup(p.stop)
            self.replicas.append(p)
        self.ctl("pool", "add", LLM)
        for p in self.replicas:
            self.ctl("replica", "add", LLM, p.addr)
        for field, value in (("route_by", "prefix"), ("prefix_mode", "precise"),
                             ("prefix_block", str(BLOCK))):
            self.ctl("conf", "set", "--pool", LLM, field, value)

    def ctl(self, *args, expect=0):
        return h.run_ctl(self.url, "--redis-prefix", self.PREFIX, *args, expect=expect)

    def predict(self, path):
        return json.loads(self.ctl("route", LLM, "--prompt-file", path, "--json").stdout)

    def test_ctl_route_prompt(self):
        admin = h.free_port()
        gw = h.start_gateway({}, "--redis", self.url, "--redis-prefix", self.PREFIX,
                             "--admin", "127.0.0.1:%d" % admin)
        self.addCleanup(gw.stop)
        ok = h.wait_for(lambda: h.metric_sum(h.scrape(admin), "infergw_kv_view_usable",
                                             pool=LLM) == 1, 5)
        self.assertTrue(ok, "the view of the simulated replicas' stream is not usable; log:\n%s"
                        % gw.tail())
        # The events are under the prefix, and nothing under the default one.
        self.assertEqual(h.redis_query(self.redis.port, "EXISTS", self.PREFIX + "pool:%s:kv" % LLM),
                         1)
        self.assertEqual(h.redis_query(self.redis.port, "EXISTS", "infergw:pool:%s:kv" % LLM), 0)

        text = b"You are a careful assistant. Answer briefly. " * 4  # 180 bytes: 11 blocks
        path = os.path.join(h.WORK_DIR, "%d-prompt.txt" % os.getpid())
        with open(path, "wb") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        before = self.predict(path)
        self.assertEqual(before["blocks"], len(text) // BLOCK)
        self.assertEqual(before["reason"], "ring_fallback", before)
        self.assertEqual(before["prediction"], before["ring_fallback"]["replica"])
        self.assertEqual(before["ring_fallback"]["point"], int(before["hashes"][0], 16) >> 32)

        # The replica that is not the ring fallback serves the prompt.
        holder = [p for p in self.replicas if p.addr != before["ring_fallback"]["replica"]][0]
        ch = h.channel(holder.addr)
        self.addCleanup(ch.close)
        req = h.pb.ModelInferRequest(model_name=LLM, id="q")
        t = req.inputs.add(name="text_input", datatype="BYTES", shape=[1])
        t.contents.bytes_contents.append(text)
        h.infer_stub(ch).ModelInfer(req, timeout=10)
        got = {}

        def predicted():
            got.update(self.predict(path))
            return got["prediction"] == holder.addr

        self.assertTrue(h.wait_for(predicted, 5), "ctl does not name the holder: %r" % got)
        self.assertEqual(got["reason"], "prefix")
        self.assertEqual(got["matched_blocks"], len(text) // BLOCK)
        self.assertTrue(got["view"]["usable"])
        out = self.ctl("route", LLM, "--prompt-file", path).stdout
        self.assertIn("prediction: %s (prefix: holds %d of %d blocks"
                      % (holder.addr, len(text) // BLOCK, len(text) // BLOCK), out)

        # The gateway, deciding on its precise view, sends the prompt there too.
        gch = h.channel(gw.addr)
        self.addCleanup(gch.close)
        _, call = h.infer_stub(gch).ModelInfer.with_call(req, timeout=10)
        self.assertEqual(h.replica_of(call), holder.name.replace("replica-", ""))
        dbg = h.http_json(admin, "/debug/prefix?pool=" + LLM)
        self.assertEqual(dbg["precise_decisions"], 1, dbg)

        self.ctl("conf", "set", "--pool", LLM, "prefix_mode", "estimate")
        est = self.predict(path)
        self.assertEqual(est["reason"], "estimation")
        self.assertIsNone(est["prediction"])
        self.assertNotIn("view", est)
        self.assertIn("per gateway", self.ctl("route", LLM, "--prompt-file", path).stdout)


if __name__ == "__main__":
    unittest.main()
