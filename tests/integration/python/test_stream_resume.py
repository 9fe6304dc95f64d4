# SPDX-License-Identifier: Apache-2.0
"""Stream resume through the gateway (docs/stream-resume.md), the acceptance
cases of the feature with real processes: 3 replicas serving the token model
(infergw-replica --token-model, deterministic by seed), a gateway on a private
redis-server, and 200 concurrent ModelStreamInfer calls of 200 messages each
from grpc.aio clients (50 streams per channel). One replica is lost in the
middle of the run (kill -9, SIGTERM, a drain through Redis, an expiring
lease) while every stream is part way through; then:

- replay and continue: no stream fails and every stream's messages equal,
  byte for byte, those of an unfaulted run (the same requests straight to a
  replica); infergw_stream_resumes_total{outcome="ok"} is exactly the number
  of streams that were on the lost replica; the resume gap histogram's p50
  and p99 are printed (RESUME_GAP lines);
- replay: infergw_stream_resume_dropped_bytes_total is the bytes of the
  messages each resumed stream had already relayed (access log
  resume_dropped); continue: it stays 0, the surviving replicas were asked
  for the tail only (their call lines carry resume_from) and sent just that;
- replicas that are not deterministic: every resumed stream ends ABORTED
  "resumed stream diverged at message N" with N the first index at which the
  new replica disagrees, after a prefix of the right messages only;
- the replay buffer limit exceeded (--retry-buffer-bytes below the request,
  or --replay-buffer-total below the message hashes the streams need): the
  streams on the lost replica fail as they do without resume, and no resume
  is counted;
- stream_resume off: as before the feature, the streams on the killed
  replica fail UNAVAILABLE with a prefix of their messages;
- a resume attempt to a replica that sends nothing is given up after
  per_try_timeout_ms (one stream, two replicas).

Streams are told apart in the access log by x-request-id s<i>. Each case
takes 5-20 s (the clients' own decoding is the bottleneck on 2 cores)."""

import asyncio
import json
import os
import re
import signal
import sys
import threading
import time
import unittest

import grpc

import harness as h

POOL = "llm"  # the pool and the model: the pool is picked by model_name
METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
N_STREAMS = 200
N_MSGS = 200
PER_CHANNEL = 50
TOKEN_MS = 5
STREAM_TIMEOUT = 60.0
FRAME = 5  # the gRPC message prefix: compressed flag and length
# The message of a divergence, with the gateway's reason in parentheses.
DIVERGED = re.compile(r"^resumed stream diverged at message (\d+)( \(.+\))?$")


def request(i, prompt_bytes=0):
    """Stream i's request: its own prompt and seed, N_MSGS tokens. With
    <prompt_bytes>, the prompt is padded to that size (a large request)."""
    req = h.pb.ModelInferRequest(model_name=POOL, id="s%d" % i)
    t = req.inputs.add(name="PROMPT", datatype="BYTES", shape=[1])
    text = b"stream %d: tell me a story" % i
    if prompt_bytes:
        text = (text + b" " + b"x" * prompt_bytes)[:prompt_bytes]
    t.contents.bytes_contents.append(text)
    req.parameters["seed"].int64_param = 1000 + i
    req.parameters["max_tokens"].int64_param = N_MSGS
    return req


def requests(n=N_STREAMS, prompt_bytes=0):
    return [request(i, prompt_bytes) for i in range(n)]


# --------------------------------------------------------------------------
# The load: N concurrent streams on an asyncio loop of its own thread
# --------------------------------------------------------------------------

class StreamLoad:
    """Runs one ModelStreamInfer call per request of <reqs> against <target>,
    all at once, from grpc.aio on a background thread. Per stream: replica
    (x-replica-id of the response headers), msgs (each message's bytes as they
    came off the wire), times (time.monotonic() of each), code, details.
    <progress>[i] counts the messages stream i got so far."""

    def __init__(self, target, reqs, metadata=()):
        self.target = target
        self.reqs = list(reqs)
        self.metadata = list(metadata)
        n = len(self.reqs)
        self.progress = [0] * n
        self.started = 0
        self.results = [None] * n
        self.error = None
        self._thread = threading.Thread(target=self._main, daemon=True)

    def start(self):
        self.t0 = time.monotonic()
        self._thread.start()
        return self

    def _main(self):
        try:
            asyncio.run(self._run())
        except BaseException as e:  # noqa: BLE001 - reported by join()
            self.error = e

    async def _run(self):
        chans = [grpc.aio.insecure_channel(self.target, options=h.CHANNEL_OPTIONS)
                 for _ in range((len(self.reqs) + PER_CHANNEL - 1) // PER_CHANNEL)]
        try:
            for ch in chans:
                await asyncio.wait_for(ch.channel_ready(), 10)
            methods = [ch.stream_stream(METHOD,
                                        request_serializer=h.pb.ModelInferRequest.SerializeToString,
                                        response_deserializer=None) for ch in chans]
            await asyncio.gather(*(self._one(methods[i // PER_CHANNEL], i)
                                   for i in range(len(self.reqs))))
        finally:
            for ch in chans:
                await ch.close()

    async def _one(self, method, i):
        rec = {"replica": None, "msgs": [], "times": [], "code": None, "details": None}
        self.results[i] = rec
        md = [("x-request-id", "s%d" % i)] + self.metadata
        call = method(iter([self.reqs[i]]), timeout=STREAM_TIMEOUT, metadata=md)
        self.started += 1
        try:
            rec["replica"] = h.md_get(await call.initial_metadata(), "x-replica-id")
            async for m in call:
                rec["msgs"].append(m)
                rec["times"].append(time.monotonic())
                self.progress[i] += 1
            rec["code"] = await call.code()
            rec["details"] = await call.details()
        except grpc.aio.AioRpcError as e:
            rec["code"], rec["details"] = e.code(), e.details()

    def wait_midway(self, low, high, timeout=30.0):
        """Waits until every stream has at least <low> messages; fails when one
        already has <high> or more by then (the fault would not be mid-stream
        for all of them)."""
        end = time.monotonic() + timeout
        n = len(self.reqs)
        while time.monotonic() < end:
            if self.error:
                raise AssertionError("the load failed: %r" % (self.error,))
            p = list(self.progress)
            if self.started == n and min(p) >= low:
                if max(p) >= high:
                    raise AssertionError("streams too far apart to fault all mid-stream: "
                                         "min %d, max %d messages" % (min(p), max(p)))
                return p
            time.sleep(0.005)
        raise AssertionError("the streams did not reach %d messages in %.0f s (started %d, "
                             "min %d)" % (low, timeout, self.started, min(self.progress)))

    def join(self, timeout=STREAM_TIMEOUT + 15):
        self._thread.join(timeout)
        if self._thread.is_alive():
            raise AssertionError("the streams did not end within %.0f s" % timeout)
        if self.error:
            raise AssertionError("the load failed: %r" % (self.error,))
        self.elapsed = time.monotonic() - self.t0
        return self.results


def run_streams(target, reqs):
    return StreamLoad(target, reqs).start().join()


# --------------------------------------------------------------------------
# The reference: the same requests, unfaulted, straight to one replica
# --------------------------------------------------------------------------

_reference = {}


def reference(prompt_bytes=0):
    """The message bytes of every stream of requests(prompt_bytes), from an
    unpaced replica of its own (computed once per module)."""
    if prompt_bytes not in _reference:
        rep = h.start_replica("reference", "--token-model", POOL, "--quiet")
        try:
            res = run_streams(rep.addr, requests(prompt_bytes=prompt_bytes))
        finally:
            rep.stop()
        for i, r in enumerate(res):
            assert r["code"] == grpc.StatusCode.OK and len(r["msgs"]) == N_MSGS, \
                "reference stream %d: %s %s, %d messages" % (i, r["code"], r["details"],
                                                             len(r["msgs"]))
        _reference[prompt_bytes] = [r["msgs"] for r in res]
    return _reference[prompt_bytes]


def wire_bytes(msgs):
    """Bytes of <msgs> as gRPC messages: payload plus the 5-byte prefix."""
    return sum(len(m) + FRAME for m in msgs)


def histogram_quantile(samples, name, q, **labels):
    """The <q> quantile of Prometheus histogram <name> (linear within the
    bucket, as PromQL's histogram_quantile), or None when it is empty."""
    buckets = sorted(((float("inf") if lab["le"] == "+Inf" else float(lab["le"])), v)
                     for n, lab, v in samples
                     if n == name + "_bucket" and all(lab.get(k) == w for k, w in labels.items()))
    if not buckets or buckets[-1][1] == 0:
        return None
    rank = q * buckets[-1][1]
    prev_le, prev_c = 0.0, 0.0
    for le, c in buckets:
        if c >= rank:
            if le == float("inf"):
                return prev_le
            return prev_le + (le - prev_le) * ((rank - prev_c) / (c - prev_c) if c > prev_c else 0)
        prev_le, prev_c = le, c
    return prev_le


# --------------------------------------------------------------------------
# The cluster of a case
# --------------------------------------------------------------------------

class ResumeCase(unittest.TestCase):
    """Each test starts its own replicas r0..r2 (r0 is the one to lose), a
    redis-server with pool llm over them and its tunables, and a gateway on
    it with an admin port and an access log."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.procs = []
        self.addCleanup(lambda: h.stop_all(list(reversed(self.procs))))

    def start(self, mode, token_ms=TOKEN_MS, replica_args=((), (), ()), gateway_args=(),
              lease_ttl=None):
        """<mode>: the pool's stream_resume tunable (None: not set). With
        <lease_ttl>, each replica joins through `infergw-ctl replica register
        --ttl` (self.registrars) instead of `replica add`."""
        self.redis = h.start_redis()
        self.procs.append(self.redis)
        self.url = h.redis_url(self.redis)
        h.run_ctl(self.url, "pool", "add", POOL)
        tunables = {"retry_budget_percent": 100}  # every stream of a lost replica may resume
        if mode is not None:
            tunables["stream_resume"] = mode
        for k, v in tunables.items():
            h.run_ctl(self.url, "conf", "set", "--pool", POOL, k, str(v))
        self.reps, self.registrars = [], []
        for i, extra in enumerate(replica_args):
            rep = h.start_replica("r%d" % i, "--token-model", POOL, "--token-ms", str(token_ms),
                                  *extra)
            self.procs.append(rep)
            self.reps.append(rep)
            if lease_ttl is None:
                h.run_ctl(self.url, "replica", "add", POOL, rep.addr)
            else:
                reg = h.Proc("registrar-r%d" % i,
                             [h._bin("infergw-ctl"), "--redis", self.url, "replica", "register",
                              POOL, rep.addr, "--ttl", str(lease_ttl), "--drain-ms", "0"],
                             rep.port)
                self.procs.append(reg)
                self.registrars.append(reg)
        self.admin = h.free_port()
        self.access_log = os.path.join(h.WORK_DIR, "%d-%s-access.log" % (os.getpid(), self.id()))
        if os.path.exists(self.access_log):
            os.unlink(self.access_log)
        self.gw = h.start_gateway({}, "--redis", self.url, "--redis-poll-ms", "100",
                                  "--admin", "127.0.0.1:%d" % self.admin,
                                  "--access-log", self.access_log, *gateway_args)
        self.procs.append(self.gw)
        ev = self.gw.wait_event(lambda e: e.get("replicas") == len(self.reps), timeout=10,
                                event="config_applied")
        self.assertIsNotNone(ev, "the gateway did not load %d replicas; log:\n%s"
                             % (len(self.reps), self.gw.tail()))
        self.ids = ["r%d" % i for i in range(len(self.reps))]

    # --- measurements -------------------------------------------------------

    def resumes(self, samples=None, **labels):
        """infergw_stream_resumes_total of the pool with <labels>, summed (the
        gateway leaves out the series that are 0)."""
        samples = samples if samples is not None else h.scrape(self.admin)
        return h.metric_sum(samples, "infergw_stream_resumes_total", pool=POOL, **labels) or 0

    def dropped_bytes(self, samples):
        """infergw_stream_resume_dropped_bytes_total of the pool (left out while 0)."""
        return h.metric_sum(samples, "infergw_stream_resume_dropped_bytes_total", pool=POOL) or 0

    def access_lines(self, n):
        """The access log's lines by request id (waits for <n> of them: each
        worker writes its lines at most 200 ms late)."""
        def read():
            try:
                with open(self.access_log) as f:
                    lines = [json.loads(line) for line in f if line.strip()]
            except OSError:
                return None
            return lines if len(lines) >= n else None
        lines = h.wait_for(read, 5)
        self.assertIsNotNone(lines, "fewer than %d access log lines" % n)
        return {e["request_id"]: e for e in lines}

    def report_gap(self, what, samples, res, victims):
        """Prints the resume gap: mean, p50 and p99 from the gateway's
        histogram (the quantiles interpolated within its buckets), and the
        longest wait between two messages of the resumed streams as the
        clients saw it (shorter when a client reads behind the gateway: what
        it has buffered covers part of the gap)."""
        p50 = histogram_quantile(samples, "infergw_stream_resume_gap_seconds", 0.5, pool=POOL)
        p99 = histogram_quantile(samples, "infergw_stream_resume_gap_seconds", 0.99, pool=POOL)
        count = h.metric_sum(samples, "infergw_stream_resume_gap_seconds_count", pool=POOL)
        total = h.metric_sum(samples, "infergw_stream_resume_gap_seconds_sum", pool=POOL)
        mean = "-" if not count else "%.1f" % (total / count * 1e3)
        gaps = sorted(max(b - a for a, b in zip(res[i]["times"], res[i]["times"][1:]))
                      for i in victims if len(res[i]["times"]) > 1)
        client = ("client-side longest message gap of the resumed streams: p50 %.1f ms, "
                  "p99 %.1f ms" % (gaps[len(gaps) // 2] * 1e3,
                                   gaps[min(len(gaps) - 1, int(len(gaps) * 0.99))] * 1e3)
                  if gaps else "no resumed stream")
        sys.stderr.write("RESUME_GAP %s: %s resumes in the histogram, mean %s ms, p50 %s ms, "
                         "p99 %s ms (within buckets); %s\n"
                         % (what, count, mean, "-" if p50 is None else "%.1f" % (p50 * 1e3),
                            "-" if p99 is None else "%.1f" % (p99 * 1e3), client))
        self.assertEqual(count, len(victims), "resume gap histogram count")

    # --- the run ------------------------------------------------------------

    def run_with_fault(self, fault, reqs=None, low=30, high=150):
        """Starts the streams, waits until each has <low> messages (none has
        <high>), calls <fault>(), waits for the end. Returns the per-stream
        results and the indexes of the streams that were on r0."""
        load = StreamLoad(self.gw.addr, reqs or requests()).start()
        at = load.wait_midway(low, high)
        t_fault = time.monotonic()
        fault()
        res = load.join()
        h.timing("%s_streams" % self._testMethodName, load.elapsed)
        sys.stderr.write("%s: fault at %.2f s, streams had %d..%d messages; run took %.2f s\n"
                         % (self._testMethodName, t_fault - load.t0, min(at), max(at),
                            load.elapsed))
        victims = [i for i, r in enumerate(res) if r["replica"] == "r0"]
        for i, r in enumerate(res):
            self.assertIn(r["replica"], self.ids, "stream %d: x-replica-id %r (%s %s)"
                          % (i, r["replica"], r["code"], r["details"]))
        self.assertGreater(len(victims), 0, "no stream went to r0")
        sys.stderr.write("%d of %d streams were on r0\n" % (len(victims), len(res)))
        return res, victims

    def assert_all_equal_reference(self, res, ref):
        bad = [(i, r["code"], r["details"], len(r["msgs"])) for i, r in enumerate(res)
               if r["code"] != grpc.StatusCode.OK or r["msgs"] != ref[i]]
        if bad:
            self.fail("%d streams failed or differ from the unfaulted run; the first (index, "
                      "status, message, messages received): %s" % (len(bad), bad[:3]))

    def kill9(self):
        self.reps[0].popen.kill()
        self.reps[0].wait_exit(5)

    def assert_replayed(self, res, victims, ref, mode="replay"):
        """Every stream whole; one ok resume per victim and nothing else; the
        access log and the dropped-bytes counter agree on what was dropped."""
        self.assert_all_equal_reference(res, ref)
        samples = h.scrape(self.admin)
        self.assertEqual(self.resumes(samples, outcome="ok"), len(victims))
        self.assertEqual(self.resumes(samples, mode=mode, outcome="ok"), len(victims))
        for outcome in ("diverged", "failed", "fallback"):
            self.assertEqual(self.resumes(samples, outcome=outcome), 0, outcome)
        log = self.access_lines(len(res))
        dropped = {i: log["s%d" % i].get("resume_dropped") for i in range(len(res))}
        resumed = {i: log["s%d" % i].get("resumes") for i in range(len(res))}
        self.assertEqual({i for i, n in resumed.items() if n}, set(victims),
                         "access log: calls with resumes")
        self.assertEqual({resumed[i] for i in victims}, {1})
        for i in range(len(res)):
            self.assertEqual(log["s%d" % i]["response_bytes"], wire_bytes(ref[i]),
                             "access log response_bytes of stream %d" % i)
        drop_counter = self.dropped_bytes(samples)
        self.report_gap(self._testMethodName, samples, res, victims)
        return samples, log, dropped, drop_counter

    def check_replay_drops(self, res, victims, ref):
        samples, log, dropped, drop_counter = self.assert_replayed(res, victims, ref)
        for i in victims:
            self.assertGreaterEqual(dropped[i], 1, "stream %d dropped nothing" % i)
            self.assertLess(dropped[i], N_MSGS)
        self.assertEqual({dropped[i] for i in range(len(res)) if i not in victims} - {0, None},
                         set(), "streams that were not resumed dropped messages")
        # Each dropped message counted with its 5-byte gRPC prefix.
        framed = sum(wire_bytes(ref[i][:dropped[i]]) for i in victims)
        sys.stderr.write("replay: %d messages, %d bytes dropped; counter %d\n"
                         % (sum(dropped[i] for i in victims), framed, drop_counter))
        self.assertEqual(drop_counter, framed,
                         "infergw_stream_resume_dropped_bytes_total against the access log's "
                         "resume_dropped")


class ResumeReplayTest(ResumeCase):

    def test_baseline_unfaulted_resume_off(self):
        """No fault, stream_resume left at its default (off): every stream
        equals the unfaulted run straight to a replica; the access log counts
        its bytes."""
        ref = reference()
        self.start(None)
        res = run_streams(self.gw.addr, requests())
        self.assert_all_equal_reference(res, ref)
        log = self.access_lines(N_STREAMS)
        for i in range(N_STREAMS):
            self.assertEqual(log["s%d" % i]["response_bytes"], wire_bytes(ref[i]))
        per = {rid: sum(1 for r in res if r["replica"] == rid) for rid in self.ids}
        sys.stderr.write("baseline: %d streams x %d messages, %s\n" % (N_STREAMS, N_MSGS, per))

    def test_kill9_replay(self):
        ref = reference()
        self.start("replay")
        res, victims = self.run_with_fault(self.kill9)
        self.check_replay_drops(res, victims, ref)

    def test_sigterm_replay(self):
        """SIGTERM: the replica sends GOAWAY and would finish its calls; the
        gateway moves them first. The replica then exits cleanly, its moved
        calls cancelled. Streams of 10 ms a token, so that they outlast the
        replica's 1 s shutdown grace: they must move, not just finish."""
        ref = reference()
        self.start("replay", token_ms=10)

        def term():
            self.reps[0].send_signal(signal.SIGTERM)
        res, victims = self.run_with_fault(term)
        self.assertEqual(self.reps[0].wait_exit(20), 0, self.reps[0].tail())
        self.check_replay_drops(res, victims, ref)
        self.assertEqual(len(self.cancelled_streams(self.reps[0])), len(victims),
                         "streams r0 saw cancelled")

    def test_drain_replay(self):
        """`infergw-ctl replica drain`: the streams move off the drained
        replica while it still runs (each cancelled on it)."""
        ref = reference()
        self.start("replay")

        def drain():
            h.run_ctl(self.url, "replica", "drain", self.reps[0].addr)
        res, victims = self.run_with_fault(drain)
        self.check_replay_drops(res, victims, ref)
        self.assertEqual(len(self.cancelled_streams(self.reps[0])), len(victims),
                         "streams the drained replica saw cancelled")
        self.assertEqual(self.ok_streams(self.reps[0]), 0, "streams the drained replica finished")

    def test_lease_expiry_replay(self):
        """r0's registrar is killed: its lease expires within the 1 s TTL and
        the gateway moves r0's streams before passing over it (r0 itself runs
        on and would have finished them). Slower streams (15 ms a token) so
        the lease expires mid-stream."""
        ref = reference()
        self.start("replay", token_ms=15, lease_ttl=1)

        def lose_lease():
            self.registrars[0].popen.kill()
            self.registrars[0].wait_exit(5)
        res, victims = self.run_with_fault(lose_lease, low=10, high=80)
        self.assertIsNotNone(self.gw.wait_event(lambda e: self.reps[0].addr in e.get("gone", ""),
                                                timeout=1, event="leases_changed"))
        self.check_replay_drops(res, victims, ref)
        self.assertEqual(len(self.cancelled_streams(self.reps[0])), len(victims))

    @staticmethod
    def cancelled_streams(rep):
        return [e for e in rep.events("cancelled") if e.get("method") == METHOD]

    @staticmethod
    def ok_streams(rep):
        return sum(1 for e in rep.events("call")
                   if e.get("method") == METHOD and e.get("status") == "OK")


class ResumeContinueTest(ResumeCase):

    def test_kill9_continue(self):
        """continue: the surviving replicas are asked for the tail
        (x-resume-from: N, N what the caller got), so nothing is dropped and
        the bytes they send for the resumed streams are the tail's only."""
        ref = reference()
        self.start("continue")
        res, victims = self.run_with_fault(self.kill9)
        samples, log, dropped, drop_counter = self.assert_replayed(res, victims, ref,
                                                                   mode="continue")
        self.assertEqual(drop_counter, 0, "continue mode dropped replayed bytes")
        self.assertEqual({dropped[i] for i in range(len(res))} - {0, None}, set(),
                         "access log: messages dropped in continue mode")
        # What each resumed stream skipped (access log resume_skipped: the N
        # of x-resume-from) against what the survivors were asked for (their
        # call lines' resume_from): the same numbers, one per stream.
        skipped = {i: log["s%d" % i].get("resume_skipped") for i in victims}
        for i in victims:
            self.assertGreaterEqual(skipped[i], 1, "stream %d" % i)
            self.assertLess(skipped[i], N_MSGS, "stream %d" % i)
        resumed = [e for rep in self.reps[1:] for e in rep.events("call")
                   if e.get("method") == METHOD and "resume_from" in e]
        self.assertEqual({e["status"] for e in resumed}, {"OK"})
        self.assertEqual(sorted(e["resume_from"] for e in resumed), sorted(skipped.values()),
                         "x-resume-from the survivors got against the access log's resume_skipped")
        # Bytes: the survivors sent each resumed stream's tail only, and the
        # callers got exactly r0's part plus that tail (their streams are
        # byte-exact); a replay would have sent the whole stream again.
        tail = sum(wire_bytes(ref[i][skipped[i]:]) for i in victims)
        head = sum(wire_bytes(ref[i][:skipped[i]]) for i in victims)
        got = sum(wire_bytes(res[i]["msgs"]) for i in victims)
        sys.stderr.write("continue: the callers of the %d resumed streams got %d bytes: %d from "
                         "r0, then %d sent by r1 and r2 (a replay would have had them send %d); "
                         "dropped bytes %d\n" % (len(victims), got, head, tail, head + tail,
                                                  drop_counter))
        self.assertEqual(got, head + tail)

    def test_kill9_continue_falls_back_to_replay(self):
        """continue against replicas that refuse x-resume-from (--no-resume,
        FAILED_PRECONDITION "resume not supported"): each resume falls back
        to replay, still whole."""
        ref = reference()
        self.start("continue", replica_args=((), ("--no-resume",), ("--no-resume",)))
        res, victims = self.run_with_fault(self.kill9)
        self.assert_all_equal_reference(res, ref)
        samples = h.scrape(self.admin)
        self.assertEqual(self.resumes(samples, mode="continue", outcome="fallback"), len(victims))
        self.assertEqual(self.resumes(samples, outcome="diverged"), 0)
        self.assertEqual(self.resumes(samples, outcome="failed"), 0)
        refused = [e for rep in self.reps[1:] for e in rep.events("call")
                   if e.get("status") == "FAILED_PRECONDITION"]
        self.assertEqual(len(refused), len(victims), "continuation attempts refused")
        self.assertGreater(self.dropped_bytes(samples), 0, "the fallback replay dropped nothing")


class ResumeFailureTest(ResumeCase):

    def test_nondeterministic_diverges(self):
        """r1 and r2 are --nondeterministic: a stream of r0 resumed on either
        disagrees from its first message. Each such stream ends ABORTED
        naming the first index where the new replica differs, having received
        only the right messages (a prefix of the deterministic sequence);
        the streams of r1 and r2 are whole (each its replica's own sequence)."""
        ref = reference()
        nd = ("--nondeterministic",)
        self.start("replay", replica_args=((), nd, nd))
        res, victims = self.run_with_fault(self.kill9)
        # What r1 and r2 send for the requests of their own streams and of
        # r0's (their salt is per process), asked directly afterwards.
        reqs = requests()
        own = {}
        for k, rid in ((1, "r1"), (2, "r2")):
            idx = [i for i, r in enumerate(res) if i in victims or r["replica"] == rid]
            got = run_streams(self.reps[k].addr, [reqs[i] for i in idx])
            self.assertEqual({r["code"] for r in got}, {grpc.StatusCode.OK})
            own[rid] = dict(zip(idx, got))
        for i, r in enumerate(res):
            if i in victims:
                continue
            self.assertEqual((r["code"], r["msgs"] == own[r["replica"]][i]["msgs"]),
                             (grpc.StatusCode.OK, True), "stream %d on %s" % (i, r["replica"]))
        for i in victims:
            r = res[i]
            got = len(r["msgs"])
            self.assertEqual(r["code"], grpc.StatusCode.ABORTED, "stream %d: %s %s"
                             % (i, r["code"], r["details"]))
            m = DIVERGED.match(r["details"] or "")
            self.assertIsNotNone(m, "stream %d: message %r" % (i, r["details"]))
            self.assertGreaterEqual(got, 1)
            self.assertEqual(r["msgs"], ref[i][:got], "stream %d delivered a wrong message" % i)

            def first_difference(other):
                return next((k for k, (a, b) in enumerate(zip(ref[i], other)) if a != b),
                            N_MSGS)
            points = {first_difference(own[rid][i]["msgs"]) for rid in ("r1", "r2")}
            self.assertIn(int(m.group(1)), points, "stream %d: divergence point" % i)
            self.assertLessEqual(int(m.group(1)), got)
        samples = h.scrape(self.admin)
        self.assertEqual(self.resumes(samples, outcome="diverged"), len(victims))
        self.assertEqual(self.resumes(samples, outcome="ok"), 0)
        sys.stderr.write("nondeterministic: %d streams ABORTED at %s\n"
                         % (len(victims), sorted({res[i]["details"] for i in victims})))

    def test_replay_buffer_exceeded(self):
        """Requests of 8 KiB against --retry-buffer-bytes 4096: the request is
        not kept, so nothing can be resumed; r0's streams fail as without the
        feature (UNAVAILABLE, a prefix of the right messages), the others are
        whole, and each lost stream is a failed resume with a log line."""
        ref = reference(prompt_bytes=8192)
        self.start("replay", gateway_args=("--retry-buffer-bytes", "4096"))
        res, victims = self.run_with_fault(self.kill9, reqs=requests(prompt_bytes=8192))
        self.assert_lost(res, victims, ref)
        samples = h.scrape(self.admin)
        # Not one resumed; each lost stream is counted as a failed resume and
        # logged with the reason, so the operator sees why.
        self.assertEqual(self.resumes(samples, outcome="ok"), 0, "resumes counted")
        self.assertEqual(self.resumes(samples, outcome="failed"), len(victims))
        self.assertEqual(self.dropped_bytes(samples), 0)
        why = [e for e in self.gw.events("resume_failed")
               if "no longer held" in e.get("reason", "")]
        self.assertEqual(len(why), len(victims), "resume_failed lines naming the request log")

    def test_hash_budget_exceeded(self):
        """The message hashes count in --replay-buffer-total with the request
        logs: 20 streams on one worker whose budget holds their requests and
        64 hashes each, not 128. Lost after message 70, r0's streams fail as
        without the feature, each a failed resume logged with that reason;
        the others are whole; the bytes are given back when the calls end."""
        n = 20
        reqs = requests(n)
        ref = reference()[:n]
        held = sum(5 + len(r.SerializeToString()) for r in reqs) + n * 64 * 8
        self.start("replay", gateway_args=("--workers", "1", "--replay-buffer-total",
                                           str(held + 256)))
        res, victims = self.run_with_fault(self.kill9, reqs=reqs, low=70, high=150)
        self.assert_lost(res, victims, ref)
        samples = h.scrape(self.admin)
        self.assertEqual(self.resumes(samples, outcome="ok"), 0, "resumes counted")
        self.assertEqual(self.resumes(samples, outcome="failed"), len(victims))
        why = [e for e in self.gw.events("resume_failed")
               if "--replay-buffer-total" in e.get("reason", "")]
        self.assertEqual(len(why), len(victims), "resume_failed lines naming the budget: %r"
                         % self.gw.events("resume_failed")[:2])
        self.assertEqual(h.metric_sum(samples, "infergw_replay_buffer_bytes"), 0)

    def test_resume_attempt_bounded_by_per_try_timeout(self):
        """A resume attempt whose replica takes the stream and sends nothing
        (r1: --latency-ms 60000) is given up after per_try_timeout_ms, not
        the call's deadline: one stream keyed to r0, r0 killed after 30
        messages; with no third replica the call ends UNAVAILABLE naming the
        timeout about 0.5 s later, one failed resume counted, the messages
        the client got a prefix of the unfaulted run's."""
        ref = reference()[0]
        self.start("replay", replica_args=((), ("--latency-ms", "60000")))
        t_set = time.time()
        h.run_ctl(self.url, "conf", "set", "--pool", POOL, "per_try_timeout_ms", "500")
        ev = self.gw.wait_event(lambda e: h.log_time(e) >= t_set - 0.01, timeout=10,
                                event="config_applied")
        self.assertIsNotNone(ev, "per_try_timeout_ms not applied")
        key = next(k for k in ("k%d" % i for i in range(200))
                   if h.http_json(self.admin, "/debug/ring?pool=%s&key=%s" % (POOL, k))["key"]
                   ["walk"][0] == self.reps[0].addr)
        ch = h.channel(self.gw.addr)
        self.addCleanup(ch.close)
        call = ch.stream_stream(METHOD, request_serializer=h.pb.ModelInferRequest.SerializeToString,
                                response_deserializer=None)
        it = call(iter([request(0)]), metadata=[("x-route-key", key)], timeout=STREAM_TIMEOUT)
        msgs, code, details, t_kill = [], grpc.StatusCode.OK, None, None
        try:
            for m in it:
                msgs.append(m)
                if len(msgs) == 30:
                    t_kill = time.monotonic()
                    self.kill9()
        except grpc.RpcError as e:
            code, details = e.code(), e.details()
        took = time.monotonic() - t_kill
        self.assertEqual(code, grpc.StatusCode.UNAVAILABLE, details)
        self.assertRegex(details or "", r"^replica 127\.0\.0\.1:%d did not answer within "
                         r"per_try_timeout_ms \(500 ms\)" % self.reps[1].port)
        self.assertLess(took, 5.0, "the resume attempt waited %.1f s" % took)
        self.assertGreaterEqual(took, 0.5)
        self.assertGreaterEqual(len(msgs), 30)
        self.assertEqual(msgs, ref[:len(msgs)])
        self.assertEqual(self.resumes(outcome="failed"), 1)
        self.assertEqual(self.resumes(outcome="ok"), 0)
        sys.stderr.write("resume attempt given up %.2f s after the kill: %s\n" % (took, details))

    def test_resume_off_kill9_fails_as_before(self):
        ref = reference()
        self.start("off")
        res, victims = self.run_with_fault(self.kill9)
        self.assert_lost(res, victims, ref)
        samples = h.scrape(self.admin)
        self.assertEqual(self.resumes(samples), 0)

    def assert_lost(self, res, victims, ref):
        for i, r in enumerate(res):
            if i in victims:
                self.assertEqual(r["code"], grpc.StatusCode.UNAVAILABLE, "stream %d: %s"
                                 % (i, r["details"]))
                self.assertRegex(r["details"] or "", r"^connection to replica 127\.0\.0\.1:%d "
                                 r"lost: " % self.reps[0].port, "stream %d" % i)
                self.assertLess(len(r["msgs"]), N_MSGS)
                self.assertEqual(r["msgs"], ref[i][:len(r["msgs"])], "stream %d" % i)
            else:
                self.assertEqual((r["code"], r["msgs"] == ref[i]), (grpc.StatusCode.OK, True),
                                 "stream %d" % i)
        sys.stderr.write("%d streams lost with r0: %s\n"
                         % (len(victims), sorted({res[i]["details"] for i in victims})))


if __name__ == "__main__":
    unittest.main()
