# SPDX-License-Identifier: Apache-2.0
"""Limits and timeouts of the client edge, driven by raw HTTP/2 frames
(h2raw.py): what one hostile or careless client can make the gateway hold,
and that other clients keep being served meanwhile.

- HPACK amplification: one ~4 KB header enters the dynamic table and is then
  referenced by one-byte indexes, tens of thousands of times per stream, on a
  few streams that never end. The gateway's RSS must grow by less than 16 MB
  and each such stream is refused (RST_STREAM ENHANCE_YOUR_CALM, at no CPU
  cost); a block only a little too large is answered RESOURCE_EXHAUSTED.
- Descriptor exhaustion: 1,100 idle connections against RLIMIT_NOFILE 1024:
  no spinning, and a new client served within 1 s of them closing.
- --max-conns, --preface-timeout-ms, --idle-timeout-ms,
  --stream-idle-timeout-ms, --max-deadline-ms, --max-pushback-ms: each acts,
  with its status, its log line and its infergw_limit_hits_total label.
- Protocol details: trailers past 64 entries keep grpc-status; the GOAWAY of a
  refused connection reaches the client; a request that is not gRPC gets HTTP
  415 and never reaches a replica; :scheme is https towards TLS replicas.
"""

import os
import shutil
import socket
import struct
import tempfile
import time
import unittest

import grpc

import h2raw
import rawh2
import h2replica
import harness as h

MB = 1024 * 1024


def _vm(pid, key):
    with open("/proc/%d/status" % pid) as f:
        for line in f:
            if line.startswith(key + ":"):
                return int(line.split()[1]) * 1024
    raise AssertionError("no %s" % key)


def _grpc_status(heads):
    for block in heads:
        if "grpc-status" in block:
            return int(block["grpc-status"]), block.get("grpc-message", "")
    return None, None


class HpackAmplificationTest(h.GatewayTestCase):
    N_REPLICAS = 1
    STREAMS = 4
    FRAMES_PER_STREAM = 2  # HEADERS + one CONTINUATION, 16 KB of indexes each

    def test_indexed_header_flood_is_refused_and_bounded(self):
        self.require_gateway()
        gw = self.cluster.gateway
        # Warm up: both workers allocate what a call needs.
        for _ in range(4):
            self.stub.ModelInfer(h.typed_request(h.values(4)), timeout=10)
        time.sleep(0.3)
        rss0, hwm0 = _vm(gw.pid, "VmRSS"), _vm(gw.pid, "VmHWM")
        replica = self.cluster.replicas[0]

        def infers():
            return len([e for e in replica.events("call") if e["method"].endswith("/ModelInfer")])
        end = time.monotonic() + 3
        while infers() < 4 and time.monotonic() < end:  # the warm-up calls
            time.sleep(0.02)
        replica_calls0 = infers()

        cpu0 = h.cpu_seconds(gw.pid)
        c = h2raw.RawClient(gw.port)
        big = b"a" * 4000
        sent = 0
        sids = []
        for i in range(self.STREAMS):
            sid = 1 + 2 * i
            sids.append(sid)
            block = h2raw.grpc_request_block(extra=[(b"x-model", b"demo")])
            if i == 0:  # enters the dynamic table at index 62
                block += h2raw.literal(b"x-big", big, index=True)
            refs = b"\xbe" * 16384  # 0x80 | 62: one byte, one 4 KB header
            frames = h2raw.frame(h2raw.HEADERS, 0, sid, block + refs[:16384 - len(block)])
            for k in range(1, self.FRAMES_PER_STREAM):
                last = k == self.FRAMES_PER_STREAM - 1
                frames += h2raw.frame(h2raw.CONTINUATION, h2raw.END_HEADERS if last else 0, sid,
                                      refs)
            c.send(frames)  # no END_STREAM: the streams never end
            sent += len(frames)
        heads, rsts, goaway, closed = c.collect(sids, timeout=10)
        cpu = h.cpu_seconds(gw.pid) - cpu0
        time.sleep(0.3)
        rss1, hwm1 = _vm(gw.pid, "VmRSS"), _vm(gw.pid, "VmHWM")
        refs_sent = self.STREAMS * self.FRAMES_PER_STREAM * 16384
        print("\nhpack: sent %d bytes (%d indexed refs = %.0f MB of headers); RSS %+.1f MB, "
              "peak RSS %+.1f MB; gateway CPU %.2f s" % (sent, refs_sent, refs_sent * 4037 / MB,
                                              (rss1 - rss0) / MB, (hwm1 - hwm0) / MB, cpu))

        # Another client is served meanwhile, and the attack's connection is
        # still up (the streams were refused, not the connection).
        reply = self.stub.ModelInfer(h.typed_request(h.values(4)), timeout=10)
        self.assertEqual(list(reply.outputs[0].contents.fp32_contents), h.expected(h.values(4)))
        # Only that call reached the replica, none of the refused streams.
        time.sleep(0.3)
        self.assertEqual(infers(), replica_calls0 + 1)
        self.assertLess(rss1 - rss0, 16 * MB, "RSS grew by %d bytes" % (rss1 - rss0))
        self.assertLess(hwm1 - hwm0, 16 * MB, "peak RSS grew by %d bytes" % (hwm1 - hwm0))
        # Far over the limit (amplification): each stream is reset with
        # ENHANCE_YOUR_CALM, and nghttp2 decodes the rest of the block
        # without calling back or validating: it costs next to no CPU.
        for sid in sids:
            self.assertEqual(rsts.get(sid), 0xB,
                             "stream %d: headers %r, rst %r" % (sid, heads.get(sid), rsts.get(sid)))
        self.assertLess(cpu, 0.1, "the refused blocks cost %.2f s of CPU" % cpu)
        self.assertIsNone(goaway)
        self.assertFalse(closed)
        c.close()
        ev = gw.wait_event(lambda e: True, event="header_list_refused")
        self.assertIsNotNone(ev, gw.tail())

    def test_a_little_too_much_metadata_gets_a_status(self):
        """A block just over --max-header-list-bytes (20 literal fields of
        3.5 KB, about 70 KB) is answered RESOURCE_EXHAUSTED, then reset
        NO_ERROR since the client never ends the stream."""
        self.require_gateway()
        c = h2raw.RawClient(self.cluster.gateway.port)
        block = h2raw.grpc_request_block(extra=[(b"x-model", b"demo")] +
                                         [(b"x-pad-%d" % i, b"p" * 3500) for i in range(20)])
        frames = h2raw.frame(h2raw.HEADERS, 0, 1, block[:16384])
        rest = block[16384:]
        while rest:
            chunk, rest = rest[:16384], rest[16384:]
            frames += h2raw.frame(h2raw.CONTINUATION, 0 if rest else h2raw.END_HEADERS, 1, chunk)
        c.send(frames)
        heads, rsts, goaway, closed = c.collect([1], timeout=5)
        code, msg = _grpc_status(heads.get(1, []))
        self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0], (heads, rsts))
        self.assertIn("header list", msg)
        f = c.read_frame(timeout=2)
        while f is not None and f[0] != h2raw.RST_STREAM:
            f = c.read_frame(timeout=2)
        self.assertIsNotNone(f, "expected RST_STREAM NO_ERROR after the answer")
        self.assertEqual(struct.unpack(">I", f[3])[0], 0)
        c.close()




class DescriptorExhaustionTest(unittest.TestCase):
    """1,100 idle connections against RLIMIT_NOFILE 1024 (soft = hard, so the
    gateway cannot raise it): accept runs out of descriptors. The gateway must
    not spin (under 5% of a core while they stay open), and must serve a new
    client within 1 s of them closing."""

    N = 1100

    def test_emfile_does_not_spin_and_recovers(self):
        import resource
        import socket
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        self.assertGreaterEqual(hard, self.N + 200, "this test needs %d descriptors of its own "
                                "(RLIMIT_NOFILE hard limit %d)" % (self.N + 200, hard))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        replica = h.start_replica("nofile-r0")
        self.addCleanup(replica.stop)
        port = h.free_port()
        argv = ["prlimit", "--nofile=1024:1024", "--", h._bin("infergw"), "--listen",
                "127.0.0.1:%d" % port, "--auth=none", "--workers", "2", "--pool",
                "demo=%s" % replica.addr, "--pool", "default=%s" % replica.addr,
                "--preface-timeout-ms", "60000"]  # they must stay open
        gw = h.Proc("gateway", argv, port).wait_ready()
        self.addCleanup(gw.stop)
        with h.channel(gw.addr) as ch:
            h.infer_stub(ch).ModelInfer(h.typed_request(h.values(4)), timeout=10)

        socks = []
        try:
            for _ in range(self.N):
                s = socket.socket()
                s.setblocking(False)
                s.connect_ex(("127.0.0.1", port))
                socks.append(s)
            time.sleep(1.5)  # the gateway takes what it can, then runs out
            cpu0, t0 = h.cpu_seconds(gw.pid), time.monotonic()
            time.sleep(3.0)
            cpu = (h.cpu_seconds(gw.pid) - cpu0) / (time.monotonic() - t0)
        finally:
            for s in socks:
                s.close()
        closed_at = time.monotonic()
        served_in = None
        while time.monotonic() - closed_at < 10:
            try:
                with h.channel_unready(gw.addr) as ch:
                    h.infer_stub(ch).ModelInfer(h.typed_request(h.values(4)), timeout=1)
                served_in = time.monotonic() - closed_at
                break
            except grpc.RpcError:
                time.sleep(0.02)
        print("\nnofile: %d idle connections, RLIMIT_NOFILE 1024: gateway CPU %.1f%% of a core; "
              "new client served %s after they closed"
              % (self.N, cpu * 100, "%.3f s" % served_in if served_in is not None else "never"))
        self.assertLess(cpu, 0.05, "the gateway spins: %.0f%% of a core" % (cpu * 100))
        self.assertIsNotNone(served_in)
        self.assertLess(served_in, 1.0)
        ev = gw.wait_event(lambda e: True, event="accept_paused")
        self.assertIsNotNone(ev, gw.tail())
        self.assertEqual(ev["error"], "Too many open files")
        ev = gw.wait_event(lambda e: True, event="nofile_limit")
        self.assertEqual((ev["soft"], ev["hard"]), (1024, 1024))

    def test_soft_limit_raised_to_hard(self):
        port = h.free_port()
        gw = h.Proc("gateway", ["prlimit", "--nofile=512:4096", "--", h._bin("infergw"),
                                "--listen", "127.0.0.1:%d" % port, "--auth=none", "--workers", "1",
                                "--admin", "off", "--pool", "demo=127.0.0.1:1"], port).wait_ready()
        self.addCleanup(gw.stop)
        ev = gw.wait_event(lambda e: True, event="nofile_limit")
        self.assertIsNotNone(ev, gw.tail())
        self.assertEqual((ev["soft_before"], ev["soft"], ev["hard"]), (512, 4096, 4096))
        with open("/proc/%d/limits" % gw.pid) as f:
            line = [l for l in f if l.startswith("Max open files")][0]
        self.assertEqual(line.split()[3:5], ["4096", "4096"])
        self.assertIsNotNone(gw.wait_event(lambda e: True, event="nofile_limit_low"))


def limit_hits(port, limit):
    return h.metric(port, "infergw_limit_hits_total", limit=limit)


class _EdgeCase(unittest.TestCase):
    """One replica (infergw-replica with REPLICA_ARGS) and a gateway with
    GATEWAY_ARGS and an admin port, per test class."""

    N_REPLICAS = 1
    REPLICA_ARGS = ()
    GATEWAY_ARGS = ()

    @classmethod
    def setUpClass(cls):
        if h.DIRECT:
            raise unittest.SkipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        cls.replicas = []
        for i in range(cls.N_REPLICAS):
            cls.replicas.append(h.start_replica("%s-r%d" % (cls.__name__.lower(), i),
                                                *cls.REPLICA_ARGS))
            cls.addClassCleanup(cls.replicas[-1].stop)
        cls.replica = cls.replicas[0]
        addrs = [r.addr for r in cls.replicas]
        cls.admin_port = h.free_port()
        cls.gw = h.start_gateway({"demo": addrs, "default": addrs},
                                 "--admin", "127.0.0.1:%d" % cls.admin_port,
                                 "--health-interval-ms", "0", *cls.GATEWAY_ARGS)
        cls.addClassCleanup(cls.gw.stop)
        time.sleep(0.3)  # the start-up probes' connections are gone

    def call(self, timeout=None, metadata=None):
        with h.channel(self.gw.addr) as ch:
            return h.infer_stub(ch).ModelInfer(h.typed_request(h.values(4)), timeout=timeout,
                                               metadata=metadata)

    def replica_calls(self):
        return sum(len(r.events("call")) for r in self.replicas)


class MaxConnsTest(_EdgeCase):
    GATEWAY_ARGS = ("--max-conns", "3")

    def test_connection_past_max_conns_is_closed(self):
        held = [h2raw.RawClient(self.gw.port) for _ in range(3)]
        for c in held:
            self.assertEqual(c.read_frame()[0], h2raw.SETTINGS)
        extra = h2raw.RawClient(self.gw.port)
        self.assertIsNone(extra.read_frame(timeout=3), "a 4th connection must be closed")
        extra.close()
        ev = self.gw.wait_event(lambda e: True, event="client_conn_refused")
        self.assertIsNotNone(ev, self.gw.tail())
        self.assertEqual(ev["limit"], "--max-conns")
        self.assertGreaterEqual(limit_hits(self.admin_port, "max_conns"), 1)
        for c in held:
            c.close()
        # Closed connections free their places.
        end = time.monotonic() + 5
        while True:
            try:
                self.call(timeout=2)
                break
            except grpc.RpcError:
                if time.monotonic() > end:
                    raise
                time.sleep(0.05)


class MaxConnsPerWorkerTest(_EdgeCase):
    GATEWAY_ARGS = ("--max-conns-per-worker", "1")  # the harness runs 2 workers

    def test_third_connection_over_two_workers_is_closed(self):
        """However the kernel spreads 3 connections over 2 workers, one
        worker gets 2 of them: exactly one is closed (pigeonhole)."""
        conns = [h2raw.RawClient(self.gw.port) for _ in range(3)]
        alive = sum(1 for c in conns if c.read_frame(timeout=2) is not None)
        for c in conns:
            c.close()
        self.assertLessEqual(alive, 2)
        ev = self.gw.wait_event(lambda e: True, event="client_conn_refused")
        self.assertIsNotNone(ev, self.gw.tail())
        self.assertEqual(ev["limit"], "--max-conns-per-worker")


class PrefaceTimeoutTest(_EdgeCase):
    GATEWAY_ARGS = ("--preface-timeout-ms", "300")

    def test_silent_connection_is_closed(self):
        t0 = time.monotonic()
        c = h2raw.RawClient(self.gw.port, preface=False)
        goaway = c.until_goaway(timeout=5)
        closed_after = time.monotonic() - t0
        self.assertIsNotNone(goaway, "expected a GOAWAY before the close")
        self.assertEqual(goaway[1], 0x4)  # SETTINGS_TIMEOUT
        self.assertIsNone(c.read_frame(timeout=3))  # then closed
        self.assertLess(closed_after, 2.0)
        c.close()
        self.assertIsNotNone(self.gw.wait_event(lambda e: True, event="client_preface_timeout"))
        self.assertGreaterEqual(limit_hits(self.admin_port, "preface_timeout"), 1)
        self.call(timeout=5)  # a client that speaks is served


class IdleTimeoutTest(_EdgeCase):
    REPLICA_ARGS = ("--latency-ms", "1200")
    GATEWAY_ARGS = ("--idle-timeout-ms", "400")

    def test_idle_connection_gets_goaway_busy_one_not(self):
        c = h2raw.RawClient(self.gw.port)
        t0 = time.monotonic()
        goaway = c.until_goaway(timeout=5)
        self.assertIsNotNone(goaway)
        self.assertEqual(goaway[1], 0)  # NO_ERROR
        self.assertIn(b"idle", goaway[2])
        self.assertLess(time.monotonic() - t0, 2.0)
        self.assertIsNone(c.read_frame(timeout=3))
        c.close()
        self.assertIsNotNone(self.gw.wait_event(lambda e: True, event="client_idle_timeout"))
        self.assertGreaterEqual(limit_hits(self.admin_port, "idle_timeout"), 1)
        # A call that takes three idle periods is not cut.
        self.call(timeout=10)


class StreamIdleTimeoutTest(_EdgeCase):
    REPLICA_ARGS = ("--latency-ms", "3000")
    GATEWAY_ARGS = ("--stream-idle-timeout-ms", "400")

    def test_call_without_bytes_ends(self):
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            self.call(timeout=20)
        took = time.monotonic() - t0
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertIn("stream idle for 400 ms", cm.exception.details())
        self.assertLess(took, 2.0)
        self.assertIsNotNone(self.gw.wait_event(lambda e: True, event="call_stream_idle"))
        self.assertGreaterEqual(limit_hits(self.admin_port, "stream_idle_timeout"), 1)


class PushbackCapTest(_EdgeCase):
    N_REPLICAS = 2
    REPLICA_ARGS = ("--error-fraction", "1", "--error-code", "RESOURCE_EXHAUSTED",
                    "--error-pushback", "600000")
    GATEWAY_ARGS = ("--max-pushback-ms", "100", "--max-deadline-ms", "0")

    def test_ten_minute_pushback_is_cut(self):
        """A call with no deadline at all (--max-deadline-ms 0) is not parked
        for the replica's 10 minutes: it retries after 100 ms."""
        before = self.replica_calls()
        t0 = time.monotonic()
        with h.channel(self.gw.addr) as ch:
            # No grpc-timeout: the wait is the client's own, not a deadline.
            fut = h.infer_stub(ch).ModelInfer.future(h.typed_request(h.values(4)))
            try:
                with self.assertRaises(grpc.RpcError) as cm:
                    fut.result(timeout=10)
            finally:
                fut.cancel()
        took = time.monotonic() - t0
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED)
        self.assertLess(took, 5.0)
        self.assertGreaterEqual(self.replica_calls() - before, 2, "the call was retried")
        ev = self.gw.wait_event(lambda e: True, event="pushback_capped")
        self.assertIsNotNone(ev, self.gw.tail())
        self.assertEqual(ev["pushback_ms"], 600000)
        self.assertGreaterEqual(limit_hits(self.admin_port, "pushback_capped"), 1)


class ContentTypeTest(_EdgeCase):
    def _request(self, content_type, method_get=False):
        c = h2raw.RawClient(self.gw.port)
        block = h2raw.grpc_request_block(content_type=content_type, method_get=method_get,
                                         extra=[(b"x-model", b"demo")])
        c.send(h2raw.frame(h2raw.HEADERS, h2raw.END_HEADERS, 1, block) +
               h2raw.frame(h2raw.DATA, h2raw.END_STREAM, 1,
                           rawh2.grpc_message(h.typed_request(h.values(4)).SerializeToString())))
        heads, rsts, goaway, closed = c.collect([1], timeout=5)
        c.close()
        self.assertTrue(heads.get(1), "no answer: rst %r goaway %r" % (rsts, goaway))
        return heads[1][0]

    def test_not_grpc_is_refused_with_415_and_never_forwarded(self):
        before = self.replica_calls()
        for ct in (None, b"text/plain", b"application/grpcx", b"application/json"):
            head = self._request(ct)
            self.assertEqual(head.get(":status"), "415", "content-type %r: %r" % (ct, head))
            self.assertEqual(head.get("grpc-status"), "3")
            self.assertIn("application/grpc", head.get("grpc-message", ""))
        self.assertEqual(self._request(None, method_get=True).get(":status"), "415")
        time.sleep(0.3)
        self.assertEqual(self.replica_calls(), before, "a non-gRPC request reached the replica")
        self.assertGreaterEqual(limit_hits(self.admin_port, "content_type"), 5)
        self.assertIsNotNone(self.gw.wait_event(lambda e: True, event="request_not_grpc"))
        for ct in (b"application/grpc", b"application/grpc+proto"):
            head = self._request(ct)
            self.assertEqual(head.get(":status"), "200")
        # The replica writes a call's log line after sending its status, so the
        # line may come after the client has the whole answer.
        h.wait_for(lambda: self.replica_calls() >= before + 2, 3.0)
        self.assertEqual(self.replica_calls(), before + 2)


class GoawayFlushTest(_EdgeCase):
    def test_goaway_reaches_client_before_close(self):
        """Bytes nghttp2 refuses outright (here a CONTINUATION flood past its
        limit) end the connection with a GOAWAY that says why."""
        c = h2raw.RawClient(self.gw.port)
        block = h2raw.grpc_request_block()
        frames = h2raw.frame(h2raw.HEADERS, 0, 1, block)
        for _ in range(40):
            frames += h2raw.frame(h2raw.CONTINUATION, 0, 1, b"\x00\x01a\x01b")
        c.send(frames)
        goaway = c.until_goaway(timeout=5)
        c.close()
        self.assertIsNotNone(goaway, "the connection closed without a GOAWAY")
        self.assertEqual(goaway[1], 0xB)  # ENHANCE_YOUR_CALM
        c = h2raw.RawClient(self.gw.port, preface=False)
        c.send(b"PRI * HTTP/2.0\r\n\r\nXX\r\n\r\n" + b"\0" * 64)  # bad client magic
        goaway = c.until_goaway(timeout=5)
        c.close()
        self.assertIsNotNone(goaway, "the connection closed without a GOAWAY")
        self.assertEqual(goaway[1], 0x1)  # PROTOCOL_ERROR
        self.call(timeout=5)


class _H2ReplicaCase(unittest.TestCase):
    NTRAILERS = 0
    TLS = False
    STALL = False
    GATEWAY_ARGS = ()

    @classmethod
    def setUpClass(cls):
        if h.DIRECT:
            raise unittest.SkipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        args = ["--health-interval-ms", "0"]
        kw = {}
        if cls.TLS:
            import test_tls
            d = tempfile.mkdtemp(prefix="%d-limits-" % os.getpid(), dir=h.WORK_DIR)
            cls.addClassCleanup(shutil.rmtree, d, True)
            test_tls._ca(d, "ca")
            test_tls._cert(d, "replica", "ca", "/CN=replica", "DNS:localhost,IP:127.0.0.1")
            kw = dict(certfile=os.path.join(d, "replica.pem"),
                      keyfile=os.path.join(d, "replica.key"))
            args += ["--upstream-tls-ca", os.path.join(d, "ca.pem")]
        cls.replica = h2replica.H2Replica(ntrailers=cls.NTRAILERS, stall=cls.STALL, **kw)
        cls.addClassCleanup(cls.replica.stop)
        cls.admin_port = h.free_port()
        args += ["--admin", "127.0.0.1:%d" % cls.admin_port] + list(cls.GATEWAY_ARGS)
        cls.gw = h.start_gateway({"demo": [cls.replica.addr], "default": [cls.replica.addr]},
                                 *args)
        cls.addClassCleanup(cls.gw.stop)

    def call(self, timeout=10):
        with h.channel(self.gw.addr) as ch:
            return h.infer_stub(ch).ModelInfer.with_call(h.typed_request(h.values(4)),
                                                         timeout=timeout)


class ManyTrailersTest(_H2ReplicaCase):
    NTRAILERS = 70

    def test_grpc_status_after_70_trailers_is_relayed(self):
        reply, call = self.call()
        trailers = dict(call.trailing_metadata())
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertEqual(len([k for k in trailers if k.startswith("x-trailer-")]), 70)
        self.assertEqual(trailers.get("x-trailer-69"), "v69")


class ReplicaHeaderListTest(_H2ReplicaCase):
    """A replica's header block is held to the same limits: 300 trailers
    (past --max-header-count 256) reset its stream; nothing else suffers."""
    NTRAILERS = 300

    def test_replica_trailers_past_limit_fail_the_call(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.call()
        self.assertNotEqual(cm.exception.code(), grpc.StatusCode.OK)
        ev = self.gw.wait_event(lambda e: e.get("side") == "replica", event="header_list_refused")
        self.assertIsNotNone(ev, self.gw.tail())
        self.assertEqual(ev["fields_at_least"], 257)
        self.assertGreaterEqual(limit_hits(self.admin_port, "header_list_replica"), 1)


class TlsSchemeTest(_H2ReplicaCase):
    TLS = True

    def test_scheme_is_https_towards_tls_replica(self):
        reply, call = self.call()
        self.assertEqual(dict(call.initial_metadata()).get("x-scheme"), "https")
        self.assertEqual(dict(self.replica.requests[-1]).get(":scheme"), "https")


class MaxDeadlineTest(_H2ReplicaCase):
    """A replica that never answers: the call ends at --max-deadline-ms,
    with or without a (longer) grpc-timeout of its own."""
    STALL = True
    GATEWAY_ARGS = ("--max-deadline-ms", "500")

    def test_call_without_grpc_timeout_gets_one(self):
        for timeout in (None, 20):  # none given, and a longer one cut
            t0 = time.monotonic()
            with self.assertRaises(grpc.RpcError) as cm:
                self.call(timeout=timeout)
            took = time.monotonic() - t0
            self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
            self.assertIn("--max-deadline-ms 500 ms", cm.exception.details())
            self.assertLess(took, 2.0)
        self.assertIsNotNone(self.gw.wait_event(lambda e: True, event="call_max_deadline"))
        self.assertGreaterEqual(limit_hits(self.admin_port, "max_deadline"), 1)
        # The replica was told the capped deadline.
        self.assertIn("grpc-timeout", dict(self.replica.requests[-1]))


if __name__ == "__main__":
    unittest.main()
