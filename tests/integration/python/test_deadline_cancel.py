# SPDX-License-Identifier: Apache-2.0
"""Deadlines and cancellation through the gateway, seen from both ends: the
client's status and timing, and the replica's log of cancelled calls."""

import os
import re
import subprocess
import threading
import time
import unittest

import grpc

import harness as h


def grpc_frame(msg):
    data = msg.SerializeToString()
    return b"\x00" + len(data).to_bytes(4, "big") + data


class DeadlineCancelTest(h.GatewayTestCase):
    N_REPLICAS = 1
    REPLICA_ARGS = ("--latency-ms", "500")

    def setUp(self):
        super().setUp()
        self.replica = self.cluster.replicas[0]

    def _cancellations(self):
        return len(self.replica.events("cancelled"))

    def _wait_cancellations(self, before, timeout=3.0):
        """How many cancellations the replica logged since <before> (waits for one)."""
        return self.replica.wait_count("cancelled", before + 1, timeout) - before

    def test_deadline_50ms_against_500ms_replica(self):
        before = self._cancellations()
        t0 = time.monotonic()
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(h.typed_request(h.values(4)), timeout=0.05)
        elapsed = time.monotonic() - t0
        self.assertEqual(cm.exception.code(), grpc.StatusCode.DEADLINE_EXCEEDED)
        self.assertGreaterEqual(elapsed, 0.05)
        self.assertLessEqual(elapsed, 0.15, "DEADLINE_EXCEEDED after %.3f s" % elapsed)
        self.assertEqual(self._wait_cancellations(before), 1,
                         "the replica must log the cancelled call; log:\n" + self.replica.tail())
        ev = self.replica.events("cancelled")[-1]
        self.assertIn("ModelInfer", ev.get("method", ""))

    def test_gateway_enforces_grpc_timeout(self):
        """A raw HTTP/2 client that never gives up by itself: the gateway must
        answer DEADLINE_EXCEEDED at the grpc-timeout and reset the upstream."""
        self.require_gateway()
        body = os.path.join(h.WORK_DIR, "deadline-body.bin")
        with open(body, "wb") as f:
            f.write(grpc_frame(h.typed_request(h.values(4))))
        before = self._cancellations()
        r = subprocess.run(
            ["nghttp", "-v", "-t", "5", "-d", body,
             "-H", "content-type: application/grpc", "-H", "te: trailers",
             "-H", "grpc-timeout: 50m",
             "http://%s/inference.GRPCInferenceService/ModelInfer" % self.cluster.target],
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=20)
        out = r.stdout.decode("utf-8", "replace")
        status = re.findall(r"\[\s*([\d.]+)\] recv \(stream_id=\d+\) grpc-status: (\d+)", out)
        sent = re.findall(r"\[\s*([\d.]+)\] send HEADERS frame", out)
        self.assertTrue(status and sent, out)
        self.assertEqual(status[-1][1], "4", "expected grpc-status 4 (DEADLINE_EXCEEDED):\n" + out)
        took = float(status[-1][0]) - float(sent[0])
        self.assertGreaterEqual(took, 0.045, out)
        self.assertLessEqual(took, 0.15, "gateway answered after %.3f s:\n%s" % (took, out))
        self.assertEqual(self._wait_cancellations(before), 1,
                         "the upstream stream must be reset; replica log:\n" + self.replica.tail())

    def test_client_cancel_mid_call(self):
        before = self._cancellations()
        fut = self.stub.ModelInfer.future(h.typed_request(h.values(4)), timeout=10)
        time.sleep(0.2)  # the call is now waiting in the replica
        self.assertTrue(fut.cancel())
        self.assertTrue(fut.cancelled())
        self.assertEqual(self._wait_cancellations(before), 1,
                         "the replica must see the cancellation; log:\n" + self.replica.tail())

    def test_client_cancel_open_stream(self):
        """A bidi stream cancelled while the replica waits for its next message."""
        before = self._cancellations()
        stop = threading.Event()

        def gen():
            yield h.typed_request(h.values(4), rid="s", params={"stream_responses": 1})
            stop.wait(10)  # keep the request side open

        call = self.stub.ModelStreamInfer(gen(), timeout=10)
        first = next(iter(call))
        self.assertEqual(first.infer_response.id, "s")
        call.cancel()
        stop.set()
        self.assertEqual(self._wait_cancellations(before), 1,
                         "the replica must see the stream cancelled; log:\n" + self.replica.tail())

    def test_deadline_long_enough_succeeds(self):
        t0 = time.monotonic()
        resp, call = self.stub.ModelInfer.with_call(h.typed_request(h.values(4)), timeout=3)
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertGreaterEqual(time.monotonic() - t0, 0.5, "--latency-ms 500 not applied")


if __name__ == "__main__":
    unittest.main()
