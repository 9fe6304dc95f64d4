# SPDX-License-Identifier: Apache-2.0
"""Unary calls through the gateway: ModelInfer 2x+1 (typed and raw), the
methods the gateway answers itself, unknown models, malformed input."""

import socket
import struct
import time
import unittest

import grpc

import harness as h
from harness import pb


class UnaryTest(h.GatewayTestCase):

    def test_model_infer_typed(self):
        vals = h.values(6)
        resp, call = self.stub.ModelInfer.with_call(h.typed_request(vals, shape=[2, 3]), timeout=10)
        self.assertEqual(call.code(), grpc.StatusCode.OK)
        self.assertReplica(call)
        self.assertEqual(len(resp.outputs), 1)
        out = resp.outputs[0]
        self.assertEqual(out.name, "OUTPUT0")
        self.assertEqual(out.datatype, "FP32")
        self.assertEqual(list(out.shape), [2, 3])
        self.assertEqual(list(out.contents.fp32_contents), h.expected(vals))
        self.assertEqual(len(resp.raw_output_contents), 0, "typed input must give typed output")

    def test_model_infer_typed_two_inputs(self):
        a, b = h.values(4), h.values(3, base=100)
        req = h.typed_request(a)
        t = req.inputs.add(name="INPUT1", datatype="FP32", shape=[3])
        t.contents.fp32_contents.extend(b)
        resp, call = self.stub.ModelInfer.with_call(req, timeout=10)
        self.assertReplica(call)
        self.assertEqual([o.name for o in resp.outputs], ["OUTPUT0", "OUTPUT1"])
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(a))
        self.assertEqual(list(resp.outputs[1].contents.fp32_contents), h.expected(b))
        self.assertEqual(list(resp.outputs[1].shape), [3])

    def test_model_infer_raw(self):
        vals = h.values(1000)
        raw = struct.pack("<%df" % len(vals), *vals)
        resp, call = self.stub.ModelInfer.with_call(h.raw_request(raw, shape=[10, 100]), timeout=10)
        self.assertReplica(call)
        self.assertEqual(len(resp.outputs), 1)
        self.assertEqual(resp.outputs[0].name, "OUTPUT0")
        self.assertEqual(list(resp.outputs[0].shape), [10, 100])
        self.assertEqual(len(resp.raw_output_contents), 1, "raw input must give raw output")
        self.assertEqual(resp.raw_output_contents[0],
                         struct.pack("<%df" % len(vals), *h.expected(vals)))

    def test_model_infer_x_model_header(self):
        vals = h.values(8)
        resp, call = self.stub.ModelInfer.with_call(
            h.typed_request(vals), metadata=(("x-model", "demo"),), timeout=10)
        self.assertReplica(call)
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))

    def test_unknown_model_x_model(self):
        self.require_gateway()
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(h.typed_request(h.values(4)),
                                 metadata=(("x-model", "no-such-model"),), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, cm.exception.details())
        self.assertIsNone(h.replica_of(cm.exception), "NOT_FOUND must come from the gateway")

    def test_unknown_model_model_name(self):
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(h.typed_request(h.values(4), model="no-such-model"), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.NOT_FOUND, cm.exception.details())

    def test_server_live_ready_metadata_answered_by_gateway(self):
        self.require_gateway()
        live, call = self.stub.ServerLive.with_call(pb.ServerLiveRequest(), timeout=5)
        self.assertTrue(live.live)
        self.assertIsNone(h.replica_of(call), "ServerLive must be answered by the gateway")
        ready, call = self.stub.ServerReady.with_call(pb.ServerReadyRequest(), timeout=5)
        self.assertTrue(ready.ready)
        self.assertIsNone(h.replica_of(call), "ServerReady must be answered by the gateway")
        meta, call = self.stub.ServerMetadata.with_call(pb.ServerMetadataRequest(), timeout=5)
        self.assertNotEqual(meta.name, "")
        self.assertIsNone(h.replica_of(call), "ServerMetadata must be answered by the gateway")

    def test_health_check_answered_by_gateway(self):
        self.require_gateway()
        resp, call = h.health_stub(self.channel).Check.with_call(h.health_pb2.HealthCheckRequest(),
                                                                 timeout=5)
        self.assertEqual(resp.status, h.health_pb2.HealthCheckResponse.SERVING)
        self.assertIsNone(h.replica_of(call), "Health/Check must be answered by the gateway")

    def test_model_ready_and_metadata_reach_a_replica(self):
        resp, call = self.stub.ModelReady.with_call(pb.ModelReadyRequest(name="demo"), timeout=5)
        self.assertTrue(resp.ready)
        self.assertReplica(call)

    def test_invalid_protobuf_gets_a_grpc_status(self):
        raw_call = self.channel.unary_unary("/inference.GRPCInferenceService/ModelInfer")
        with self.assertRaises(grpc.RpcError) as cm:
            raw_call(b"\xff\xff\xff\xff\x0f\x0a", timeout=10)  # not a protobuf message
        self.assertIn(cm.exception.code(),
                      (grpc.StatusCode.INVALID_ARGUMENT, grpc.StatusCode.INTERNAL),
                      cm.exception.details())
        self.assertNotEqual(cm.exception.details() or "", "", "an error needs a message")
        self._still_serving()

    def _still_serving(self):
        vals = h.values(4)
        resp = self.stub.ModelInfer(h.typed_request(vals), timeout=10)
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))

    def _raw_exchange(self, data, wait=2.0):
        """Sends <data> on a fresh TCP connection; returns (bytes read, closed)."""
        s = socket.create_connection(("127.0.0.1", self.cluster.gateway.port), timeout=wait)
        got, closed = b"", False
        try:
            s.sendall(data)
            end = time.monotonic() + wait
            while time.monotonic() < end:
                try:
                    chunk = s.recv(65536)
                except socket.timeout:
                    break
                except ConnectionResetError:
                    closed = True
                    break
                if not chunk:
                    closed = True
                    break
                got += chunk
        finally:
            s.close()
        return got, closed

    @staticmethod
    def _frames(data):
        """(type, flags, stream id, payload) of each complete HTTP/2 frame in <data>."""
        out, i = [], 0
        while i + 9 <= len(data):
            length = int.from_bytes(data[i:i + 3], "big")
            if i + 9 + length > len(data):
                break
            out.append((data[i + 3], data[i + 4], int.from_bytes(data[i + 5:i + 9], "big") & 0x7FFFFFFF,
                        data[i + 9:i + 9 + length]))
            i += 9 + length
        return out

    def test_garbage_instead_of_http2_is_closed(self):
        self.require_gateway()
        got, closed = self._raw_exchange(b"GET / HTTP/1.1\r\nHost: x\r\n\r\n" + b"\x00garbage" * 64)
        self.assertTrue(closed, "the gateway must close a connection without the HTTP/2 preface")
        self._still_serving()

    def test_bad_http2_frame_gets_goaway(self):
        self.require_gateway()
        preface = b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"
        settings = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"
        bad_data_on_stream0 = b"\x00\x00\x04\x00\x00\x00\x00\x00\x00" + b"junk"  # DATA on stream 0
        got, closed = self._raw_exchange(preface + settings + bad_data_on_stream0)
        frames = self._frames(got)
        goaways = [f for f in frames if f[0] == 0x7]
        self.assertTrue(goaways, "expected a GOAWAY, got frames %r" % ([f[0] for f in frames],))
        code = int.from_bytes(goaways[0][3][4:8], "big")
        self.assertEqual(code, 0x1, "GOAWAY error code should be PROTOCOL_ERROR")
        self.assertTrue(closed, "connection should be closed after the GOAWAY")
        self._still_serving()

    def test_headers_without_grpc_content_type(self):
        """A plain HTTP/2 GET is answered (any HTTP status or gRPC error), not dropped."""
        self.require_gateway()
        import subprocess
        r = subprocess.run(["nghttp", "-v", "-t", "5", "http://%s/" % self.cluster.target],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, timeout=15)
        text = r.stdout.decode("utf-8", "replace")
        self.assertRegex(text, r"recv HEADERS frame", text)
        self.assertRegex(text, r":status: \d{3}", text)
        self._still_serving()


if __name__ == "__main__":
    unittest.main()
