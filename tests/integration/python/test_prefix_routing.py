# SPDX-License-Identifier: Apache-2.0
"""route_by = prefix and least_loaded through the gateway, with real replicas
(plain infergw-replica serving a token-streaming model, so that any input is
accepted) and the tunables in Redis: the same long prompt sticks to one
replica, different system prompts spread, a prompt in several DATA frames
works, a prompt without the input falls back to the ring (and is counted),
a compressed one too, two gateways send a first-time prefix to the same
replica, bounded load moves calls off the favourite, least_loaded spreads
concurrent calls, and the decisions count every worker's calls in flight.
ORCA load reports come from stand-in replicas (h2replica.py) that put them in
their trailers: the reported load shows in infergw_replica_load, a bad report
is counted, and least_loaded avoids the replica that reports a high load
(the reference replica's own reports are on another branch; the parser's
details are unit-tested in tests/unit/test_orca.c)."""

import base64
import collections
import concurrent.futures
import shutil
import subprocess
import unittest

import grpc

import h2replica
import harness as h

POOL = "llm"
LL_POOL = "llmll"
METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"


def request(text, model=POOL, name="text_input", max_tokens=2):
    req = h.pb.ModelInferRequest(model_name=model, id="p")
    t = req.inputs.add(name=name, datatype="BYTES", shape=[1])
    t.contents.bytes_contents.append(text)
    req.parameters["max_tokens"].int64_param = max_tokens
    return req


def system_prompt(i, size=2048):
    base = ("system prompt %d: you are a careful assistant. " % i).encode()
    return (base * (size // len(base) + 1))[:size]


class PrefixRoutingTest(unittest.TestCase):
    N_REPLICAS = 3

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(name="redis-" + self._testMethodName)
        self.addCleanup(self.redis.stop)
        self.url = h.redis_url(self.redis)
        self.rid = {}
        tag = self._testMethodName.replace("test_", "")[:20]
        addrs = []
        for i in range(self.N_REPLICAS):
            rid = "%s-r%d" % (tag, i)
            p = h.start_replica(rid, "--quiet", "--token-model", POOL, "--token-model", LL_POOL,
                                "--token-ms", "20")
            self.addCleanup(p.stop)
            self.rid[p.addr] = rid
            addrs.append(p.addr)
        for pool, by in ((POOL, "prefix"), (LL_POOL, "least_loaded")):
            self.ctl("pool", "add", pool)
            for a in addrs:
                self.ctl("replica", "add", pool, a)
            self.ctl("conf", "set", "--pool", pool, "route_by", by)
        self.ctl("conf", "set", "--pool", POOL, "prefix_input", "text_input")

    def ctl(self, *args, expect=0):
        return h.run_ctl(self.url, *args, expect=expect)

    def gateway(self):
        admin = h.free_port()
        gw = h.start_gateway({}, "--redis", self.url, "--admin", "127.0.0.1:%d" % admin)
        self.addCleanup(gw.stop)
        self.gw_addr = gw.addr
        ch = h.channel(gw.addr)
        self.addCleanup(ch.close)
        call = ch.stream_stream(METHOD, request_serializer=h.pb.ModelInferRequest.SerializeToString,
                                response_deserializer=None)
        h.wait_for(lambda: self.route_ok(call), 10)
        return call, admin

    def route_ok(self, call):
        try:
            self.ask(call, request(b"warm-up"))
            return True
        except grpc.RpcError:
            return False

    def ask(self, call, req, timeout=20, **kw):
        """One stream of request <req>: the x-replica-id that answered."""
        it = call(iter([req]), timeout=timeout, **kw)
        msgs = list(it)
        self.assertGreaterEqual(len(msgs), 1)
        rid = h.md_get(it.initial_metadata(), "x-replica-id")
        self.assertIn(rid, self.rid.values())
        return rid

    def decisions(self, admin, decision, pool=POOL):
        return h.metric_sum(h.scrape(admin), "infergw_prefix_decisions_total", pool=pool,
                            decision=decision)

    def test_same_prompt_sticks(self):
        call, admin = self.gateway()
        sp = system_prompt(1)
        seen = collections.Counter(self.ask(call, request(sp + b" turn %d" % i))
                                   for i in range(20))
        self.assertEqual(len(seen), 1, dict(seen))
        self.assertGreaterEqual(self.decisions(admin, "prefix"), 19)
        self.assertGreaterEqual(self.decisions(admin, "ring_fallback"), 1)
        self.assertEqual(h.metric_sum(h.scrape(admin), "infergw_prefix_matched_blocks_count",
                                      pool=POOL), self.decisions(admin, "prefix")
                         + self.decisions(admin, "ring_fallback")
                         + self.decisions(admin, "load_override"))
        dbg = h.http_json(admin, "/debug/prefix?pool=" + POOL)
        self.assertEqual(dbg["mode"], "estimate")
        self.assertEqual(dbg["route_by"], "prefix")
        self.assertFalse(dbg["precise_view_usable"])
        self.assertGreater(dbg["index"]["entries"], 0)
        self.assertGreater(dbg["index"]["hits"], 0)
        self.assertGreater(h.metric_sum(h.scrape(admin), "infergw_prefix_index_bytes"), 0)
        if shutil.which("promtool") is None:
            self.fail("promtool is not installed (prometheus package)")
        # the scrape, with the prefix and load families, passes promtool's checks
        text = h.http_text(admin, "/metrics")
        self.assertIn('infergw_replica_load{replica=', text)
        res = subprocess.run(["promtool", "check", "metrics"], input=text.encode(),
                             capture_output=True, timeout=30)
        out = (res.stdout + res.stderr).decode()
        self.assertEqual((res.returncode, out.strip()), (0, ""), out)

    def test_different_system_prompts_spread(self):
        call, _ = self.gateway()
        owner = {}
        for i in range(24):
            sp = system_prompt(100 + i)
            rids = {self.ask(call, request(sp + b" q%d" % k)) for k in range(2)}
            self.assertEqual(len(rids), 1, "prompt %d split: %r" % (i, rids))
            owner[i] = rids.pop()
        self.assertEqual(set(owner.values()), set(self.rid.values()), owner)

    def test_prompt_in_several_frames(self):
        call, admin = self.gateway()
        sp = system_prompt(7, size=300 * 1024)  # > 16 KiB frames, < the 1 MiB window
        rids = {self.ask(call, request(sp + b" x%d" % i)) for i in range(5)}
        self.assertEqual(len(rids), 1, rids)
        self.assertGreaterEqual(self.decisions(admin, "prefix"), 4)

    def test_no_input_falls_back_to_ring(self):
        call, admin = self.gateway()
        before = self.decisions(admin, "no_input")
        for i in range(5):
            self.ask(call, request(system_prompt(3) + b"%d" % i, name="PROMPT"))
        self.assertEqual(self.decisions(admin, "no_input"), before + 5)

    def test_compressed_falls_back_to_ring(self):
        call, admin = self.gateway()
        before = self.decisions(admin, "compressed")
        for i in range(3):
            self.ask(call, request(system_prompt(4) + b"%d" % i),
                     compression=grpc.Compression.Gzip,
                     metadata=[("x-model", POOL)])  # a compressed message names no model
        self.assertEqual(self.decisions(admin, "compressed"), before + 3)

    def test_two_gateways_agree_on_new_prefixes(self):
        a, _ = self.gateway()
        b, _ = self.gateway()
        for i in range(10):
            sp = system_prompt(500 + i)
            self.assertEqual(self.ask(a, request(sp + b" a")), self.ask(b, request(sp + b" b")),
                             "first-time prefix %d went to different replicas" % i)

    def test_bounded_load_overrides(self):
        call, admin = self.gateway()
        sp = system_prompt(9)
        first = self.ask(call, request(sp + b" first"))
        with concurrent.futures.ThreadPoolExecutor(9) as ex:
            futs = [ex.submit(self.ask, call, request(sp + b" c%d" % i, max_tokens=40))
                    for i in range(9)]
            seen = collections.Counter(f.result() for f in futs)
        self.assertIn(first, seen)
        self.assertGreater(len(seen), 1, "9 concurrent calls all on one replica: %r" % dict(seen))
        self.assertGreater(self.decisions(admin, "load_override"), 0)

    def test_least_loaded_spreads(self):
        call, _ = self.gateway()
        with concurrent.futures.ThreadPoolExecutor(12) as ex:
            futs = [ex.submit(self.ask, call, request(b"same prompt", model=LL_POOL,
                                                      max_tokens=25)) for _ in range(12)]
            seen = collections.Counter(f.result() for f in futs)
        self.assertEqual(set(seen), set(self.rid.values()), dict(seen))
        self.assertLessEqual(max(seen.values()), 6, dict(seen))

    def test_in_flight_counts_every_worker(self):
        """The decisions weigh the calls in flight from every worker (the
        harness's gateway has two, each with its own listener): eight long
        streams held on one connection on replica A (one prompt, pool llm
        without bounded loads), then eight held least_loaded streams, each on
        a connection of its own, over a pool of A and B: all eight go to B
        (power of two choices over two replicas takes the one with fewer
        calls, and A has eight). With each worker's own count, a connection
        on the other worker would see A idle and send calls there; that all
        eight land on the held connection's worker, which would hide it, has
        a chance of 1 in 256. Then /debug/prefix shows the counts
        /debug/replicas shows."""
        call, admin = self.gateway()
        self.ctl("conf", "set", "--pool", POOL, "balance_factor", "0")
        sp = system_prompt(5)
        a = self.ask(call, request(sp + b" warm"))
        addr = {rid: ad for ad, rid in self.rid.items()}
        b = sorted(r for r in self.rid.values() if r != a)[0]
        self.ctl("replica", "remove", LL_POOL,
                 next(ad for ad, rid in self.rid.items() if rid not in (a, b)))
        h.wait_for(lambda: len(h.http_json(admin, "/debug/prefix?pool=" + LL_POOL)["replicas"])
                   == 2, 10)

        def hold(call, req):
            it = call(iter([req]), timeout=30)
            next(it)  # the attempt is open: it counts
            self.addCleanup(it.cancel)
            return h.md_get(it.initial_metadata(), "x-replica-id")

        on_a = [hold(call, request(sp + b" held %d" % i, max_tokens=400)) for i in range(8)]
        self.assertEqual(on_a, [a] * 8)
        seen = []
        for i in range(8):
            # A subchannel of its own, so a TCP connection of its own, which
            # the kernel gives to either worker's listener.
            ch = h.channel(self.gw_addr, ("grpc.use_local_subchannel_pool", 1))
            self.addCleanup(ch.close)
            ll = ch.stream_stream(METHOD,
                                  request_serializer=h.pb.ModelInferRequest.SerializeToString,
                                  response_deserializer=None)
            seen.append(hold(ll, request(b"ll %d" % i, model=LL_POOL, max_tokens=400)))
        self.assertEqual(seen, [b] * 8)
        inputs = {r["address"]: r["inflight"]
                  for r in h.http_json(admin, "/debug/prefix?pool=" + LL_POOL)["replicas"]}
        self.assertEqual(inputs, {addr[a]: 8, addr[b]: 8})
        summed = {r["address"]: r["inflight"]
                  for r in h.http_json(admin, "/debug/replicas")["replicas"] if r["address"] in inputs}
        self.assertEqual(summed, inputs)

def orca_bin(cpu, kv):
    """base64 (unpadded, as gRPC sends -bin headers) of an OrcaLoadReport with
    cpu_utilization <cpu> and named_metrics {kv_cache_usage: kv}."""
    msg = h.orca_pb2.OrcaLoadReport(cpu_utilization=cpu, named_metrics={"kv_cache_usage": kv})
    return base64.b64encode(msg.SerializeToString()).decode().rstrip("=")


class LoadReportTest(unittest.TestCase):
    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(name="redis-" + self._testMethodName)
        self.addCleanup(self.redis.stop)
        self.url = h.redis_url(self.redis)
        self.busy = h2replica.H2Replica(replica_id="busy", trailers=[
            ("endpoint-load-metrics", "TEXT cpu_utilization=0.9, named_metrics.queue_depth=4")])
        self.idle = h2replica.H2Replica(replica_id="idle", trailers=[
            ("endpoint-load-metrics-bin", orca_bin(0.05, 0.1))])
        for r in (self.busy, self.idle):
            self.addCleanup(r.stop)
        h.run_ctl(self.url, "pool", "add", "demo")
        for r in (self.busy, self.idle):
            h.run_ctl(self.url, "replica", "add", "demo", r.addr)
        h.run_ctl(self.url, "conf", "set", "--pool", "demo", "route_by", "least_loaded")
        self.admin = h.free_port()
        self.gw = h.start_gateway({}, "--redis", self.url, "--admin", "127.0.0.1:%d" % self.admin,
                                  "--health-interval-ms", "0")
        self.addCleanup(self.gw.stop)
        self.ch = h.channel(self.gw.addr)
        self.addCleanup(self.ch.close)
        self.infer = self.ch.unary_unary("/inference.GRPCInferenceService/ModelInfer",
                                         request_serializer=None, response_deserializer=None)
        body = h.pb.ModelInferRequest(model_name="demo").SerializeToString()
        h.wait_for(lambda: self.ask(body) is not None, 10)
        self.body = body

    def ask(self, body=None):
        try:
            _, call = self.infer.with_call(body or self.body, timeout=5)
        except grpc.RpcError:
            return None
        return h.replica_of(call)

    def load(self, replica):
        return h.metric_sum(h.scrape(self.admin), "infergw_replica_load", replica=replica.addr)

    def test_reports_feed_the_load_and_least_loaded(self):
        seen = {self.ask() for _ in range(20)}
        self.assertEqual(seen, {"busy", "idle"} & seen)
        h.wait_for(lambda: self.load(self.busy) > 0 and self.load(self.idle) >= 0, 10)
        self.assertAlmostEqual(self.load(self.busy), 0.9, places=3)   # text form
        self.assertAlmostEqual(self.load(self.idle), 0.1, places=3)   # -bin form: max(cpu, kv)
        # with both loads known, every sequential call (in-flight 0 on both)
        # goes to the one reporting less
        got = collections.Counter(self.ask() for _ in range(30))
        self.assertEqual(got, {"idle": 30}, dict(got))

    def test_bad_reports_are_counted_and_ignored(self):
        before = (self.load(self.busy), self.load(self.idle))  # the warm-up call's, or -1
        # mem_utilization above 1 (cpu_utilization may pass 1: gRFC A51)
        self.busy.trailers = [("endpoint-load-metrics", "TEXT cpu_utilization=0.5, mem_utilization=7")]
        self.idle.trailers = [("endpoint-load-metrics-bin", "Bw")]  # wire type 7
        self.idle.trailers += [("endpoint-load-metrics", "JSON {}")]
        for _ in range(10):
            self.assertIsNotNone(self.ask())
        self.assertGreaterEqual(h.metric_sum(h.scrape(self.admin),
                                             "infergw_load_reports_bad_total"), 10)
        self.assertEqual((self.load(self.busy), self.load(self.idle)), before)


if __name__ == "__main__":
    unittest.main()
