# SPDX-License-Identifier: Apache-2.0
"""The reference replica's LLM simulation mode (docs/llm-simulation.md): the
KV cache's hits and LRU eviction, prefill cost, trailers (x-kv-*, ORCA TEXT
and -bin), determinism by seed, the bounded batch and queue, KV-cache events
in a real redis-server, and refused flags."""

import base64
import os
import re
import struct
import subprocess
import threading
import time
import unittest

import grpc

import harness as h

MODEL = "llm"
INFER = "/inference.GRPCInferenceService/ModelInfer"
STREAM = "/inference.GRPCInferenceService/ModelStreamInfer"
BLOCK = 16


def request(text, max_tokens=None, seed=None, rid="q"):
    req = h.pb.ModelInferRequest(model_name=MODEL, id=rid)
    t = req.inputs.add(name="text_input", datatype="BYTES", shape=[1])
    t.contents.bytes_contents.append(text)
    if max_tokens is not None:
        req.parameters["max_tokens"].int64_param = max_tokens
    if seed is not None:
        req.parameters["seed"].int64_param = seed
    return req


def prompt(tag, nblocks):
    """A prompt of exactly <nblocks> blocks, distinct per <tag>."""
    base = (tag.encode() * BLOCK * nblocks)
    return base[:BLOCK * nblocks]


def infer(ch, req, timeout=20):
    """(seconds, trailers dict) of one ModelInfer call."""
    call = ch.unary_unary(INFER, request_serializer=h.pb.ModelInferRequest.SerializeToString,
                          response_deserializer=h.pb.ModelInferResponse.FromString)
    t0 = time.monotonic()
    resp, c = call.with_call(req, timeout=timeout)
    return time.monotonic() - t0, dict(c.trailing_metadata()), resp


def stream(ch, req, timeout=20):
    """(raw messages, trailers dict) of one ModelStreamInfer call."""
    call = ch.stream_stream(STREAM, request_serializer=h.pb.ModelInferRequest.SerializeToString,
                            response_deserializer=None)
    it = call(iter([req]), timeout=timeout)
    msgs = list(it)
    return msgs, dict(it.trailing_metadata())


def parse_orca_bin(b):
    """An OrcaLoadReport (the Python protobuf runtime, stubs from proto/): the
    fields it carries by number (named_metrics aside: proto3 leaves out the
    zero ones), and its named_metrics."""
    msg = h.orca_pb2.OrcaLoadReport.FromString(b)
    fields = {fd.number: v for fd, v in msg.ListFields() if fd.name != "named_metrics"}
    return fields, dict(msg.named_metrics)


def parse_orca_text(s):
    assert s.startswith("TEXT "), s
    return {k: float(v) for k, v in (kv.strip().split("=") for kv in s[5:].split(","))}


def raw_trailers(addr, req):
    """The response headers and trailers of one ModelInfer call, read by nghttp."""
    body = req.SerializeToString()
    path = os.path.join(h.WORK_DIR, "%d-llmsim-req" % os.getpid())
    with open(path, "wb") as f:
        f.write(b"\0" + struct.pack(">I", len(body)) + body)
    r = subprocess.run(["nghttp", "-v", "-H", "content-type: application/grpc", "-H",
                        "te: trailers", "-d", path,
                        "http://%s%s" % (addr, INFER)], capture_output=True, timeout=20)
    out = {}
    for line in r.stdout.decode("latin-1").splitlines():
        m = re.match(r"\[ *[0-9.]+\] recv \(stream_id=\d+\) ([a-z0-9-]+): (.*)$", line)
        if m:
            out[m.group(1)] = m.group(2)
    return out


def xrange_entries(port, key):
    out = []
    for eid, fields in h.redis_query(port, "XRANGE", key, "-", "+", timeout=5.0) or []:
        out.append(dict(zip(fields[0::2], fields[1::2])))
    return out


class LlmSimTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.procs, cls.channels = [], []
        try:
            cls.a, cls.ch_a = cls.replica("llm-a", "--kv-blocks", "512", "--seed", "7",
                                          "--prefill-us-per-unit", "200",
                                          "--decode-us-per-token", "1000", "--decode-tokens", "4")
            cls.b, cls.ch_b = cls.replica("llm-b", "--kv-blocks", "64", "--seed", "7",
                                          "--prefill-us-per-unit", "1",
                                          "--decode-us-per-token", "100", "--decode-tokens", "4")
        except BaseException:
            cls._stop()
            raise
        cls.addClassCleanup(cls._stop)

    @classmethod
    def replica(cls, name, *args):
        p = h.start_replica(name, "--llm-model", MODEL, "--prefix-block", str(BLOCK), *args)
        cls.procs.append(p)
        ch = h.channel(p.addr)
        cls.channels.append(ch)
        return p, ch

    @classmethod
    def _stop(cls):
        for ch in cls.channels:
            ch.close()
        h.stop_all(list(reversed(cls.procs)))

    def test_repeated_prompt_hits(self):
        text = prompt("hit", 10) + b"tail"
        _, tr, resp = infer(self.ch_a, request(text))
        self.assertEqual((tr["x-kv-prompt-blocks"], tr["x-kv-hit-blocks"]), ("10", "0"))
        self.assertEqual((tr["x-kv-prompt-units"], tr["x-kv-hit-units"]), ("164", "0"))
        self.assertEqual(len(resp.outputs[0].contents.int64_contents), 4)
        _, tr, _ = infer(self.ch_a, request(text))
        self.assertEqual((tr["x-kv-hit-blocks"], tr["x-kv-hit-units"]), ("10", "160"))
        # A prompt sharing the first 6 blocks hits those only.
        _, tr, _ = infer(self.ch_a, request(prompt("hit", 6) + prompt("other", 4)))
        self.assertEqual(tr["x-kv-hit-blocks"], "6")
        # The stream reports the same way.
        msgs, tr = stream(self.ch_a, request(text, max_tokens=3))
        self.assertEqual(len(msgs), 3)
        self.assertEqual(tr["x-kv-hit-blocks"], "10")

    def test_lru_eviction(self):
        p, ch = self.replica("llm-small", "--kv-blocks", "8", "--prefill-us-per-unit", "0",
                             "--decode-us-per-token", "0")
        a, b = prompt("A", 6), prompt("B", 6)
        self.assertEqual(infer(ch, request(a))[1]["x-kv-hit-blocks"], "0")
        self.assertEqual(infer(ch, request(a))[1]["x-kv-hit-blocks"], "6")
        # B's 6 blocks evict A's 4 least recently used, A's tail blocks.
        self.assertEqual(infer(ch, request(b))[1]["x-kv-hit-blocks"], "0")
        self.assertEqual(infer(ch, request(a))[1]["x-kv-hit-blocks"], "2")
        # The cache is full (8 of 8 blocks), but usage counts only the blocks
        # running requests hold (vLLM's kv_cache_usage): B's 6 of 8.
        tr = infer(ch, request(b))[1]
        self.assertEqual(parse_orca_text(tr["endpoint-load-metrics"])
                         ["named_metrics.kv_cache_usage"], 0.75)

    def test_token_ids_and_metadata(self):
        """A prompt of INT64 ids in --prefix-input: units are ids, blocks of 4
        ids; ModelMetadata names that input."""
        _, ch = self.replica("llm-ids", "--prefix-input", "input_ids", "--prefix-block", "4",
                             "--decode-us-per-token", "0")
        req = h.pb.ModelInferRequest(model_name=MODEL, id="ids")
        t = req.inputs.add(name="input_ids", datatype="INT64", shape=[14])
        t.contents.int64_contents.extend(range(1, 15))
        tr = infer(ch, req)[1]
        self.assertEqual((tr["x-kv-prompt-blocks"], tr["x-kv-prompt-units"]), ("3", "14"))
        tr = infer(ch, req)[1]
        self.assertEqual((tr["x-kv-hit-blocks"], tr["x-kv-hit-units"]), ("3", "12"))
        meta = h.infer_stub(ch).ModelMetadata(h.pb.ModelMetadataRequest(name=MODEL), timeout=10)
        self.assertEqual(meta.inputs[0].name, "input_ids")
        # Without the prompt input: refused, naming it.
        with self.assertRaises(grpc.RpcError) as cm:
            infer(ch, request(b"text in the wrong input"))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("input_ids", cm.exception.details())

    def test_prefill_grows_with_uncached_units(self):
        big, small = prompt("big", 60), prompt("small", 10)   # 960 and 160 units
        t_big, _, _ = infer(self.ch_a, request(big, max_tokens=1))
        t_small, _, _ = infer(self.ch_a, request(small, max_tokens=1))
        t_cached, tr, _ = infer(self.ch_a, request(big, max_tokens=1))
        self.assertEqual(tr["x-kv-hit-blocks"], "60")
        self.assertGreater(t_big, t_small)
        self.assertGreater(t_big, t_cached)
        self.assertGreaterEqual(t_big, 960 * 200e-6 * 0.9)

    def test_trailers_text_and_bin_agree(self):
        # grpc core's client keeps endpoint-load-metrics-bin to itself (its
        # load balancers read it): read the trailers off the wire with nghttp.
        tr = raw_trailers(self.a.addr, request(prompt("orca", 3)))
        self.assertEqual(tr["x-kv-prompt-blocks"], "3")
        text = parse_orca_text(tr["endpoint-load-metrics"])
        self.assertEqual(sorted(text), ["cpu_utilization", "named_metrics.kv_cache_usage",
                                        "named_metrics.queue_depth", "rps_fractional"])
        fields, named = parse_orca_bin(base64.b64decode(tr["endpoint-load-metrics-bin"] + "=="))
        self.assertEqual(sorted(fields), [1, 6])
        self.assertEqual(sorted(named), ["kv_cache_usage", "queue_depth"])
        self.assertAlmostEqual(fields[1], text["cpu_utilization"], places=3)
        self.assertAlmostEqual(fields[6], text["rps_fractional"], places=2)
        self.assertAlmostEqual(named["kv_cache_usage"], text["named_metrics.kv_cache_usage"],
                               places=3)
        self.assertEqual(named["queue_depth"], text["named_metrics.queue_depth"])
        self.assertTrue(0 < fields[1] <= 1.0, fields)
        self.assertGreater(fields[6], 0)

    def test_deterministic_across_replicas(self):
        req = request(prompt("det", 4), max_tokens=8, seed=3)
        a, _ = stream(self.ch_a, req)
        b, _ = stream(self.ch_b, req)
        self.assertEqual(len(a), 8)
        self.assertEqual(a, b)
        _, ch_c = self.replica("llm-c", "--seed", "8", "--decode-us-per-token", "0")
        c, _ = stream(ch_c, req)
        self.assertNotEqual(a, c, "another --seed gives other tokens")

    def test_queue_past_max_batch(self):
        _, ch = self.replica("llm-batch", "--max-batch", "1", "--max-queue", "1",
                             "--prefill-us-per-unit", "0", "--decode-us-per-token", "100000",
                             "--decode-tokens", "3")
        results = [None] * 3

        def one(i):
            try:
                infer(ch, request(prompt("q%d" % i, 1)))
                results[i] = ("ok", time.monotonic() - t0, None)
            except grpc.RpcError as e:
                results[i] = (e.code(), e.details(), None)
        threads = []
        t0 = time.monotonic()
        for i in range(3):
            threads.append(threading.Thread(target=one, args=(i,)))
            threads[-1].start()
            time.sleep(0.05)
        for t in threads:
            t.join(10)
        oks = sorted(r[1] for r in results if r[0] == "ok")
        refused = [r for r in results if r[0] != "ok"]
        self.assertEqual(len(oks), 2, results)
        self.assertEqual(refused[0][0], grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertIn("--max-queue 1", refused[0][1])
        # The queued call waited for the first one's 300 ms, then took its own.
        self.assertGreater(oks[1], 0.59, oks)

    def test_bad_flags_refused(self):
        cases = [("--kv-blocks", "0"), ("--prefix-block", "2000"), ("--max-batch", "x"),
                 ("--prefill-us-per-unit", "-1"), ("--kv-events-redis", "nohost"),
                 ("--kv-snapshot-ms", "5"), ("--decode-tokens", "0"),
                 ("--kv-events-prefix", "two words")]
        for flag, value in cases:
            r = subprocess.run([h._bin("infergw-replica"), "--llm-model", MODEL, flag, value],
                               capture_output=True, text=True, timeout=10)
            self.assertEqual(r.returncode, 2, (flag, value, r.stderr))
            self.assertIn(flag, r.stderr)
            self.assertIn("'%s'" % value, r.stderr)
        r = subprocess.run([h._bin("infergw-replica"), "--kv-blocks", "8"],
                           capture_output=True, text=True, timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("need --llm-model", r.stderr)
        r = subprocess.run([h._bin("infergw-replica"), "--llm-model", MODEL,
                            "--kv-events-prefix", "t1:"], capture_output=True, text=True,
                           timeout=10)
        self.assertEqual(r.returncode, 2)
        self.assertIn("--kv-events-prefix need --kv-events-redis", r.stderr)


class LlmKvEventsTest(unittest.TestCase):
    KEY = "infergw:pool:chat:kv"

    def setUp(self):
        self.procs = []
        self.redis = h.start_redis()
        self.procs.append(self.redis)
        self.addCleanup(lambda: h.stop_all(list(reversed(self.procs))))

    def start(self, name):
        p = h.start_replica(name, "--llm-model", MODEL, "--prefix-block", str(BLOCK),
                            "--kv-blocks", "16", "--prefill-us-per-unit", "0",
                            "--decode-us-per-token", "0", "--kv-pool", "chat",
                            "--kv-events-redis", self.redis.addr, "--kv-snapshot-ms", "300")
        self.procs.append(p)
        ch = h.channel(p.addr)
        self.addCleanup(ch.close)
        return p, ch

    def entries_of(self, epoch=None):
        es = xrange_entries(self.redis.port, self.KEY)
        return [e for e in es if epoch is None or e["e"] == epoch]

    def check_run(self, es):
        """Consecutive seqs; replaying stored/evicted from each complete
        snapshot gives the next snapshot."""
        seqs = [int(e["s"]) for e in es]
        self.assertEqual(seqs, list(range(seqs[0], seqs[0] + len(seqs))))
        held, snapshots, parts = None, 0, []
        for e in es:
            hs = set(e["h"].split(",")) if e["h"] else set()
            for x in hs:
                self.assertRegex(x, "^[0-9a-f]{16}$")
            if e["op"] == "cleared":
                held = set()
            elif e["op"] == "snapshot":
                parts.append((int(e["part"]), int(e["parts"]), hs))
                if parts[-1][0] == parts[-1][1]:
                    self.assertEqual([p[0] for p in parts], list(range(1, parts[-1][1] + 1)))
                    snap = set().union(*(p[2] for p in parts))
                    if held is not None:
                        self.assertEqual(snap, held, "snapshot differs from the events")
                    held, parts, snapshots = snap, [], snapshots + 1
            elif held is not None:
                if e["op"] == "stored":
                    held |= hs
                else:
                    self.assertEqual(e["op"], "evicted")
                    held -= hs
        return held, snapshots

    def test_events_snapshot_and_gaps(self):
        rep, ch = self.start("kv-a")
        for i in range(6):
            infer(ch, request(prompt("ev%d" % i, 5)))
        self.assertTrue(h.wait_for(lambda: sum(e["op"] == "snapshot" for e in
                                               self.entries_of()) >= 2, 5))
        es = self.entries_of()
        self.assertEqual((es[0]["op"], es[0]["s"], es[0]["r"]), ("cleared", "1", "kv-a"))
        self.assertTrue(any(e["op"] == "evicted" for e in es))
        held, snaps = self.check_run(es)
        self.assertGreaterEqual(snaps, 1)
        self.assertLessEqual(len(held), 16)
        last = int(es[-1]["s"])
        epoch = es[0]["e"]

        # Redis restarts empty; calls meanwhile lose their events: a gap.
        port = self.redis.port
        self.redis.stop()
        for i in range(3):
            infer(ch, request(prompt("down%d" % i, 5)))
        self.redis = h.start_redis(port=port)
        self.procs.append(self.redis)
        self.assertTrue(h.wait_for(lambda: any(e["op"] == "snapshot" for e in
                                               self.entries_of()), 8))
        es = self.entries_of()
        self.assertEqual(es[0]["e"], epoch)
        self.assertGreater(int(es[0]["s"]), last + 1, "no gap after Redis came back")
        self.assertTrue(rep.wait_event(lambda ev: ev.get("dropped_events", 0) > 0,
                                       event="kv_events_up", timeout=3))
        self.check_run(es)

        # The replica restarts (same id, another port: grpc's client would
        # reuse the old connection's GOAWAY): a new epoch that starts with
        # cleared, s=1.
        rep.stop()
        self.procs.remove(rep)
        rep2, ch2 = self.start("kv-a")
        infer(ch2, request(prompt("again", 3)))
        self.assertTrue(h.wait_for(lambda: any(e["e"] != epoch for e in self.entries_of()), 5))
        new = [e for e in self.entries_of() if e["e"] != epoch]
        self.assertEqual((new[0]["op"], new[0]["s"]), ("cleared", "1"))
        self.assertGreater(int(new[0]["e"]), int(epoch))
        self.check_run(new)


if __name__ == "__main__":
    unittest.main()
