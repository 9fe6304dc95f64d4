# SPDX-License-Identifier: Apache-2.0
"""ModelStreamInfer (bidi streaming) through the gateway."""

import queue
import struct
import unittest

import grpc

import harness as h


class StreamTest(h.GatewayTestCase):

    def _check_set(self, responses, vals, rid):
        for r in responses:
            self.assertEqual(r.error_message, "")
            ir = r.infer_response
            self.assertEqual(ir.id, rid, "responses out of order or from another request")
            self.assertEqual(list(ir.outputs[0].contents.fp32_contents), h.expected(vals))

    def test_stream_five_responses_in_order(self):
        vals = h.values(16)
        req = h.typed_request(vals, rid="only", params={"stream_responses": 5})
        call = self.stub.ModelStreamInfer(iter([req]), timeout=10)
        got = list(call)
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertReplica(call)
        self.assertEqual(len(got), 5)
        # The replica's answers to one request are identical copies; order is
        # checked across requests (ids) in the tests below.
        self._check_set(got, vals, "only")

    def test_two_requests_on_one_stream(self):
        a, b = h.values(8), h.values(8, base=1000)
        reqs = [h.typed_request(a, rid="first", params={"stream_responses": 3}),
                h.typed_request(b, rid="second", params={"stream_responses": 4})]
        call = self.stub.ModelStreamInfer(iter(reqs), timeout=10)
        got = list(call)
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertEqual(len(got), 7)
        self._check_set(got[:3], a, "first")
        self._check_set(got[3:], b, "second")

    def test_interleaved_request_response(self):
        """Second request sent only after the first set arrived: a real bidi exchange."""
        reqs = queue.Queue()
        sets = [(h.values(4, base=i * 10), "msg-%d" % i) for i in range(3)]
        done = object()

        def gen():
            while True:
                item = reqs.get(timeout=10)
                if item is done:
                    return
                yield item

        reqs.put(h.typed_request(sets[0][0], rid=sets[0][1], params={"stream_responses": 2}))
        call = self.stub.ModelStreamInfer(gen(), timeout=15)
        it = iter(call)
        for i, (vals, rid) in enumerate(sets):
            got = [next(it), next(it)]
            self._check_set(got, vals, rid)
            if i + 1 < len(sets):
                nv, nid = sets[i + 1]
                reqs.put(h.typed_request(nv, rid=nid, params={"stream_responses": 2}))
        reqs.put(done)
        self.assertEqual(list(it), [])
        self.assertEqual(call.code(), grpc.StatusCode.OK)

    def test_stream_raw_tensors(self):
        vals = h.values(64)
        raw = struct.pack("<64f", *vals)
        req = h.raw_request(raw, rid="raw", params={"stream_responses": 5})
        got = list(self.stub.ModelStreamInfer(iter([req]), timeout=10))
        self.assertEqual(len(got), 5)
        for r in got:
            self.assertEqual(r.infer_response.raw_output_contents[0],
                             struct.pack("<64f", *h.expected(vals)))

    def test_stream_unknown_model(self):
        self.require_gateway()
        req = h.typed_request(h.values(2), model="no-such-model", params={"stream_responses": 2})
        call = self.stub.ModelStreamInfer(iter([req]), timeout=10)
        with self.assertRaises(grpc.RpcError) as cm:
            list(call)
        # The gateway finds no pool (NOT_FOUND); a replica would answer NOT_FOUND
        # itself or with an error_message in the stream.
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND)


if __name__ == "__main__":
    unittest.main()
