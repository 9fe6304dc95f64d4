# SPDX-License-Identifier: Apache-2.0
"""Large messages through the gateway: 12 MiB each way intact under the
default 16 MiB limit; messages over --max-message-bytes, in either direction,
end in RESOURCE_EXHAUSTED."""

import array
import sys
import unittest

import grpc

import harness as h

MiB = h.MiB


def f32_bytes(seq):
    a = array.array("f", seq)
    if sys.byteorder != "little":
        a.byteswap()
    return a.tobytes()


class LargeMessageTest(h.GatewayTestCase):
    N_REPLICAS = 1

    def test_12mib_request_and_response_intact(self):
        n = 12 * MiB // 4
        raw = f32_bytes(range(n))          # every element distinct: a moved chunk shows
        want = f32_bytes(2 * i + 1 for i in range(n))
        req = h.raw_request(raw, rid="big")
        self.assertGreater(req.ByteSize(), 12 * MiB)
        resp, call = self.stub.ModelInfer.with_call(req, timeout=60)
        self.assertReplica(call)
        self.assertEqual(list(resp.outputs[0].shape), [n])
        self.assertEqual(len(resp.raw_output_contents), 1)
        got = resp.raw_output_contents[0]
        self.assertEqual(len(got), len(want))
        if got != want:
            first = next(i for i in range(0, len(got), 4) if got[i:i + 4] != want[i:i + 4])
            self.fail("12 MiB response differs first at byte %d" % first)
        self.assertGreater(resp.ByteSize(), 12 * MiB)

    def test_12mib_stream_messages_intact(self):
        n = 12 * MiB // 4
        raw = f32_bytes(range(n))
        want = f32_bytes(2 * i + 1 for i in range(n))
        req = h.raw_request(raw, rid="big-stream", params={"stream_responses": 2})
        got = list(self.stub.ModelStreamInfer(iter([req]), timeout=60))
        self.assertEqual(len(got), 2)
        for r in got:
            self.assertTrue(r.infer_response.raw_output_contents[0] == want)

    def test_4mib_typed_intact(self):
        n = 4 * MiB // 4
        vals = h.values(n)
        resp = self.stub.ModelInfer(h.typed_request(vals), timeout=60)
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))


class MessageLimitTest(h.GatewayTestCase):
    """Gateway with --max-message-bytes 1 MiB (replica without a limit of its own)."""
    N_REPLICAS = 1
    LIMIT = 1 * MiB
    GATEWAY_ARGS = ("--max-message-bytes", str(1 * MiB))

    def setUp(self):
        super().setUp()
        self.require_gateway()

    def _still_serving(self):
        vals = h.values(8)
        resp = self.stub.ModelInfer(h.typed_request(vals), timeout=10)
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))

    def test_2mib_request_is_resource_exhausted(self):
        req = h.raw_request(f32_bytes(range(2 * MiB // 4)))
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(req, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         cm.exception.details())
        self._still_serving()

    def test_2mib_second_stream_message_is_resource_exhausted(self):
        small = h.raw_request(f32_bytes(range(16)), rid="small", params={"stream_responses": 1})
        big = h.raw_request(f32_bytes(range(2 * MiB // 4)), rid="big")
        call = self.stub.ModelStreamInfer(iter([small, big]), timeout=10)
        got = []
        with self.assertRaises(grpc.RpcError) as cm:
            for r in call:
                got.append(r)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         cm.exception.details())
        self.assertLessEqual(len(got), 1)
        self._still_serving()

    def test_request_under_limit_passes(self):
        n = (self.LIMIT - 4096) // 4
        raw = f32_bytes(range(n))
        resp = self.stub.ModelInfer(h.raw_request(raw), timeout=10)
        self.assertEqual(resp.raw_output_contents[0], f32_bytes(2 * i + 1 for i in range(n)))

    def _sized_request(self, n, pad):
        req = h.pb.ModelInferRequest(model_name="demo", id="x" * pad)
        req.inputs.add(datatype="FP32", shape=[n])  # empty name: the answer's OUTPUT0 is longer
        req.raw_input_contents.append(bytes(4 * n))
        return req

    def test_too_large_response_is_resource_exhausted(self):
        """A request just under the limit whose answer is just over it.

        The sizes are measured, not assumed: the same request is sent to the
        replica directly first, and the test picks one whose request is at most
        LIMIT-5 bytes (under the limit whether or not the 5-byte gRPC prefix
        is counted) and whose response is more than LIMIT bytes."""
        with h.channel(self.cluster.replicas[0].addr) as direct_ch:
            direct = h.infer_stub(direct_ch)
            chosen = None
            base = (self.LIMIT - 64) // 4
            for n in range(base, base + 24):
                for pad in range(0, 4):
                    req = self._sized_request(n, pad)
                    if req.ByteSize() > self.LIMIT - 5:
                        break
                    if req.ByteSize() < self.LIMIT - 40:
                        continue
                    size = direct.ModelInfer(req, timeout=10).ByteSize()
                    if size > self.LIMIT:
                        chosen = (req, size)
                        break
                if chosen:
                    break
        self.assertIsNotNone(chosen, "could not size a request under / response over the limit")
        req, resp_size = chosen
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(req, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.RESOURCE_EXHAUSTED,
                         "request %d bytes, response %d bytes, limit %d: %s"
                         % (req.ByteSize(), resp_size, self.LIMIT, cm.exception.details()))
        self._still_serving()


if __name__ == "__main__":
    unittest.main()
