# SPDX-License-Identifier: Apache-2.0
"""A client that stops reading a large server stream must not make the
gateway buffer the stream: its RSS stays within a bound derived from the
configured windows while the stream stalls, and other calls are still served.

The bound. With end-to-end flow control the gateway holds, per stalled stream,
at most what the replica may send before the gateway stops consuming (one
stream window, STREAM_WINDOW) plus what it has framed for the client but
not yet written; the replica's connection is bounded by CONN_WINDOW. Allowing
each twice over (one copy on each side) plus SLACK for the allocator, thread
arenas and sanitizer bookkeeping gives

    RSS growth <= 2 * STREAM_WINDOW + 2 * CONN_WINDOW + SLACK  (= 38 MiB here)

while the stalled stream carries 3000 x 256 KiB = 750 MiB: a gateway that
buffers the stream grows by hundreds of MiB within the stall.
"""

import socket
import struct
import time
import unittest


import harness as h
import rawh2 as r2

MiB = h.MiB
STREAM_WINDOW = 1 * MiB
CONN_WINDOW = 2 * MiB
SLACK = 32 * MiB
BOUND_KIB = (2 * STREAM_WINDOW + 2 * CONN_WINDOW + SLACK) // 1024
TENSOR_FLOATS = 64 * 1024          # 256 KiB per response tensor
STREAM_RESPONSES = 3000
STALL_S = 3.0


def tensor():
    vals = [float(i % 1000) for i in range(TENSOR_FLOATS)]
    return struct.pack("<%df" % TENSOR_FLOATS, *vals), struct.pack(
        "<%df" % TENSOR_FLOATS, *[2 * v + 1 for v in vals])


class _FlowControlBase(h.GatewayTestCase):
    """One gateway per test class, so that no test's baseline carries another's buffers."""
    N_REPLICAS = 1
    GATEWAY_ARGS = ("--stream-window-bytes", str(STREAM_WINDOW),
                    "--conn-window-bytes", str(CONN_WINDOW))

    @classmethod
    def setUpClass(cls):
        super().setUpClass()
        cls.raw_in, cls.raw_out = tensor()

    def setUp(self):
        super().setUp()
        self.require_gateway()
        self.gw = self.cluster.gateway
        self.replica = self.cluster.replicas[0]

    def _baseline(self):
        """Warms the gateway (buffers, arenas) with full-speed traffic, then samples RSS."""
        req = h.raw_request(self.raw_in, rid="warm", params={"stream_responses": 40})
        got = list(self.stub.ModelStreamInfer(iter([req]), timeout=30))
        self.assertEqual(len(got), 40)
        for _ in range(20):
            self._unary(self.stub)
        time.sleep(0.2)
        return max(self.gw.rss_kib() for _ in range(5))

    def _unary(self, stub, timeout=5):
        vals = h.values(8)
        resp = stub.ModelInfer(h.typed_request(vals), timeout=timeout)
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))

    def _stall(self, stubs):
        """Samples RSS for STALL_S while making unary calls on <stubs>; returns
        (peak RSS KiB, calls made)."""
        peak, calls = 0, 0
        end = time.monotonic() + STALL_S
        while time.monotonic() < end:
            peak = max(peak, self.gw.rss_kib())
            for stub in stubs:
                t0 = time.monotonic()
                self._unary(stub)
                self.assertLess(time.monotonic() - t0, 1.0, "a call waited behind the stalled stream")
                calls += 1
            time.sleep(0.1)
        return max(peak, self.gw.rss_kib()), calls

    def _stream_done_in_replica(self):
        return [e for e in self.replica.events("call") if "StreamInfer" in e.get("method", "")
                and e.get("status") == "OK" and not e.get("cancelled")]


class GrpcClientStopsReadingTest(_FlowControlBase):

    def test_grpc_client_stops_reading(self):
        base = self._baseline()
        done_before = len(self._stream_done_in_replica())
        cancelled_before = len(self.replica.events("cancelled"))
        # No BDP probing: the client's stream window stays at its 64 KiB default.
        with h.channel(self.cluster.target, ("grpc.http2.bdp_probe", 0),
                       ("grpc.use_local_subchannel_pool", 1)) as slow_ch, \
                h.channel(self.cluster.target, ("grpc.use_local_subchannel_pool", 1),
                          ("test.other", 1)) as other_ch:
            slow = h.infer_stub(slow_ch)
            req = h.raw_request(self.raw_in, rid="slow",
                                params={"stream_responses": STREAM_RESPONSES})
            call = slow.ModelStreamInfer(iter([req]), timeout=120)
            it = iter(call)
            for _ in range(5):
                self.assertEqual(next(it).infer_response.raw_output_contents[0], self.raw_out)
            # Stop reading. Meanwhile calls on the stalled connection and on another one.
            peak, calls = self._stall([slow, h.infer_stub(other_ch)])
            growth = peak - base
            print("flow control (grpc client): baseline %d KiB, peak %d KiB, growth %d KiB, "
                  "bound %d KiB, %d calls served during the stall"
                  % (base, peak, growth, BOUND_KIB, calls))
            self.assertLessEqual(growth, BOUND_KIB,
                                 "gateway RSS grew %d KiB while a stream stalled" % growth)
            self.assertEqual(len(self._stream_done_in_replica()), done_before,
                             "the replica finished the 750 MiB stream: someone buffered it")
            # Reading again resumes the stream, intact and in order.
            for _ in range(20):
                r = next(it)
                self.assertEqual(r.infer_response.id, "slow")
                self.assertEqual(r.infer_response.raw_output_contents[0], self.raw_out)
            call.cancel()
        end = time.monotonic() + 3
        while len(self.replica.events("cancelled")) <= cancelled_before and time.monotonic() < end:
            time.sleep(0.05)
        self.assertGreater(len(self.replica.events("cancelled")), cancelled_before,
                           "cancelling the stalled stream must reach the replica")
        self._unary(self.stub)


class RawClientStopsReadingTest(_FlowControlBase):

    def test_raw_client_stops_reading_socket(self):
        """An HTTP/2 client that opens huge windows and then never reads its
        socket: the gateway must stop pulling from the replica, not queue in
        user space what the kernel will not take."""
        base = self._baseline()
        cancelled_before = len(self.replica.events("cancelled"))
        n = 12 * 1024  # 48 KiB tensor: the request fits the default 64 KiB stream window
        vals = [float(i % 1000) for i in range(n)]
        req = h.raw_request(struct.pack("<%df" % n, *vals), rid="raw",
                            params={"stream_responses": STREAM_RESPONSES})
        s = _raw_h2_stream(self.gw.port, "/inference.GRPCInferenceService/ModelStreamInfer", req)
        try:
            peak, calls = self._stall([self.stub])
        finally:
            s.close()
        growth = peak - base
        print("flow control (raw client, socket never read): baseline %d KiB, peak %d KiB, "
              "growth %d KiB, bound %d KiB, %d calls served during the stall"
              % (base, peak, growth, BOUND_KIB, calls))
        self.assertLessEqual(growth, BOUND_KIB,
                             "gateway RSS grew %d KiB behind a client that stopped reading" % growth)
        end = time.monotonic() + 3
        while len(self.replica.events("cancelled")) <= cancelled_before and time.monotonic() < end:
            time.sleep(0.05)
        self.assertGreater(len(self.replica.events("cancelled")), cancelled_before,
                           "closing the connection must cancel the replica's stream")
        self._unary(self.stub)


def _raw_h2_stream(port, path, msg):
    """Opens an h2c connection, announces maximal windows, sends one gRPC
    request on stream 1 and returns the socket, which is never read."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    s.setsockopt(socket.SOL_SOCKET, socket.SO_RCVBUF, 64 * 1024)
    s.settimeout(5)
    s.connect(("127.0.0.1", port))
    body = msg.SerializeToString()
    grpc_msg = r2.grpc_message(body)
    headers = b"".join(r2.hpack_literal(k, v) for k, v in (
        (":method", "POST"), (":scheme", "http"), (":path", path),
        (":authority", "127.0.0.1:%d" % port), ("content-type", "application/grpc"),
        ("te", "trailers")))
    out = r2.PREFACE
    out += r2.frame(0x4, 0, 0, struct.pack(">HI", 0x4, 0x7FFFFFFF))     # INITIAL_WINDOW_SIZE
    out += r2.frame(0x8, 0, 0, struct.pack(">I", 0x7FFFFFFF - 65535))   # connection window
    out += r2.frame(0x1, 0x4, 1, headers)                               # HEADERS, END_HEADERS
    for i in range(0, len(grpc_msg), 16384):
        chunk = grpc_msg[i:i + 16384]
        last = i + 16384 >= len(grpc_msg)
        out += r2.frame(0x0, 0x1 if last else 0, 1, chunk)              # DATA (END_STREAM last)
    s.sendall(out)
    # Acknowledge nothing, read nothing: the gateway's SETTINGS stay unanswered
    # for the few seconds of the test, well inside any sane SETTINGS timeout.
    return s


if __name__ == "__main__":
    unittest.main()
