"""Limits and timeouts of the client edge, driven by raw HTTP/2 frames
(h2raw.py): what one hostile or careless client can make the gateway hold,
and that other clients keep being served meanwhile.

- HPACK amplification: one ~4 KB header enters the dynamic table and is then
  referenced by one-byte indexes, tens of thousands of times per stream, on a
  few streams that never end. The gateway's RSS must grow by less than 16 MB
  and each such stream is refused with RESOURCE_EXHAUSTED.
"""

import time
import unittest

import grpc

import h2raw
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
        time.sleep(0.3)
        rss1, hwm1 = _vm(gw.pid, "VmRSS"), _vm(gw.pid, "VmHWM")
        refs_sent = self.STREAMS * self.FRAMES_PER_STREAM * 16384
        print("\nhpack: sent %d bytes (%d indexed refs = %.0f MB of headers); RSS %+.1f MB, "
              "peak RSS %+.1f MB" % (sent, refs_sent, refs_sent * 4037 / MB, (rss1 - rss0) / MB,
                                     (hwm1 - hwm0) / MB))

        # Another client is served meanwhile, and the attack's connection is
        # still up (the streams were refused, not the connection).
        reply = self.stub.ModelInfer(h.typed_request(h.values(4)), timeout=10)
        self.assertEqual(list(reply.outputs[0].contents.fp32_contents), h.expected(h.values(4)))
        self.assertLess(rss1 - rss0, 16 * MB, "RSS grew by %d bytes" % (rss1 - rss0))
        self.assertLess(hwm1 - hwm0, 16 * MB, "peak RSS grew by %d bytes" % (hwm1 - hwm0))
        for sid in sids:
            code, msg = _grpc_status(heads.get(sid, []))
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED.value[0],
                             "stream %d: headers %r, rst %r" % (sid, heads.get(sid), rsts.get(sid)))
            self.assertIn("header list", msg)
        self.assertIsNone(goaway)
        self.assertFalse(closed)
        c.close()
        ev = gw.wait_event(lambda e: True, event="header_list_refused")
        self.assertIsNotNone(ev, gw.tail())


if __name__ == "__main__":
    unittest.main()


def _gateway_flags():
    """The flags the gateway under test knows (its --help), so that a test
    can run against an older build to show the defect it guards."""
    import subprocess
    out = subprocess.run([h._bin("infergw"), "--help"], stdout=subprocess.PIPE, check=True).stdout
    return out.decode()


def _cpu_seconds(pid):
    """utime + stime of process <pid>, all threads, in seconds."""
    import os
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


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
        if hard < self.N + 200:
            self.skipTest("this test needs %d descriptors of its own" % (self.N + 200))
        resource.setrlimit(resource.RLIMIT_NOFILE, (hard, hard))
        replica = h.start_replica("nofile-r0")
        self.addCleanup(replica.stop)
        port = h.free_port()
        argv = ["prlimit", "--nofile=1024:1024", "--", h._bin("infergw"), "--listen",
                "127.0.0.1:%d" % port, "--auth=none", "--workers", "2", "--pool",
                "demo=%s" % replica.addr, "--pool", "default=%s" % replica.addr]
        if "--preface-timeout-ms" in _gateway_flags():
            argv += ["--preface-timeout-ms", "60000"]  # they must stay open
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
            cpu0, t0 = _cpu_seconds(gw.pid), time.monotonic()
            time.sleep(3.0)
            cpu = (_cpu_seconds(gw.pid) - cpu0) / (time.monotonic() - t0)
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
