# SPDX-License-Identifier: Apache-2.0
"""The reference replica's token-streaming model and x-resume-from, against
the replica directly (and once through the gateway): the replica side of
docs/stream-resume.md."""

import time
import unittest

import grpc

import harness as h

MODEL = "llm"
METHOD = "/inference.GRPCInferenceService/ModelStreamInfer"
TOKEN_MS = 5


def prompt(text=b"hello", seed=None, max_tokens=None, rid="p1", model=MODEL):
    req = h.pb.ModelInferRequest(model_name=model, id=rid)
    t = req.inputs.add(name="PROMPT", datatype="BYTES", shape=[1])
    t.contents.bytes_contents.append(text)
    if seed is not None:
        req.parameters["seed"].int64_param = seed
    if max_tokens is not None:
        req.parameters["max_tokens"].int64_param = max_tokens
    return req


def stream_method(ch):
    """ModelStreamInfer on <ch>, its responses left as the bytes that came off
    the wire."""
    return ch.stream_stream(METHOD, request_serializer=h.pb.ModelInferRequest.SerializeToString,
                            response_deserializer=None)


def raw_stream(ch, req, metadata=None, timeout=20):
    """The response messages of one ModelStreamInfer call with request <req>,
    as bytes; raises grpc.RpcError on a non-OK status."""
    return list(stream_method(ch)(iter([req]), timeout=timeout, metadata=metadata))


def refusal(ch, req, metadata):
    with unittest.TestCase().assertRaises(grpc.RpcError) as cm:
        raw_stream(ch, req, metadata)
    return cm.exception


class ReplicaStreamTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.channels = []

        def replica(name, *args):
            p = h.start_replica(name, "--token-model", MODEL, "--token-ms", str(TOKEN_MS), *args)
            cls.procs.append(p)
            ch = h.channel(p.addr)
            cls.channels.append(ch)
            return p, ch

        try:
            cls.a, cls.ch_a = replica("tok-a")
            cls.b, cls.ch_b = replica("tok-b", "--threads", "1", "--max-tokens", "12")
            cls.nr, cls.ch_nr = replica("tok-noresume", "--no-resume")
            cls.n1, cls.ch_n1 = replica("tok-nd1", "--nondeterministic")
            cls.n2, cls.ch_n2 = replica("tok-nd2", "--nondeterministic")
        except BaseException:
            cls._stop()
            raise
        cls.addClassCleanup(cls._stop)

    @classmethod
    def _stop(cls):
        for ch in cls.channels:
            ch.close()
        h.stop_all(list(reversed(cls.procs)))

    def test_same_request_same_bytes_on_every_replica(self):
        req = prompt(seed=42, max_tokens=20)
        a = raw_stream(self.ch_a, req)
        self.assertEqual(len(a), 20)
        self.assertEqual(raw_stream(self.ch_b, req), a, "replica b disagrees with replica a")
        self.assertEqual(raw_stream(self.ch_a, req), a, "replica a disagrees with itself")
        for i, m in enumerate(a):
            r = h.pb.ModelStreamInferResponse.FromString(m)
            self.assertEqual(r.error_message, "")
            ir = r.infer_response
            self.assertEqual((ir.model_name, ir.model_version, ir.id), (MODEL, "1", "p1"))
            self.assertEqual(ir.parameters["index"].int64_param, i)
            self.assertEqual([o.name for o in ir.outputs], ["token_id", "text"])
            self.assertEqual(ir.outputs[0].datatype, "INT64")
            self.assertEqual(len(ir.outputs[0].contents.int64_contents), 1)
            self.assertEqual(ir.outputs[1].datatype, "BYTES")
            self.assertTrue(ir.outputs[1].contents.bytes_contents[0].startswith(b" "))

    def test_seed_and_prompt_change_the_tokens(self):
        base = raw_stream(self.ch_a, prompt(seed=1, max_tokens=10))
        other_seed = raw_stream(self.ch_a, prompt(seed=2, max_tokens=10))
        other_prompt = raw_stream(self.ch_a, prompt(text=b"hellp", seed=1, max_tokens=10))

        def tokens(msgs):
            return [h.pb.ModelStreamInferResponse.FromString(m)
                    .infer_response.outputs[0].contents.int64_contents[0] for m in msgs]
        self.assertNotEqual(tokens(base), tokens(other_seed))
        self.assertNotEqual(tokens(base), tokens(other_prompt))

    def test_max_tokens_default_and_prefix(self):
        """Message i does not depend on max_tokens; the default comes from
        --max-tokens (32 on a, 12 on b)."""
        long = raw_stream(self.ch_a, prompt(seed=7))
        self.assertEqual(len(long), 32)
        self.assertEqual(len(raw_stream(self.ch_b, prompt(seed=7))), 12)
        self.assertEqual(raw_stream(self.ch_b, prompt(seed=7, max_tokens=5)), long[:5])

    def test_token_ms_paces_the_stream(self):
        t0 = time.monotonic()
        got = raw_stream(self.ch_a, prompt(seed=3, max_tokens=40))
        took = time.monotonic() - t0
        self.assertEqual(len(got), 40)
        self.assertGreaterEqual(took, 39 * TOKEN_MS / 1000.0 * 0.9)

    def test_resume_from_equals_the_tail(self):
        req = prompt(seed=11, max_tokens=25)
        full = raw_stream(self.ch_a, req)
        for n in (0, 1, 13, 24, 25):
            tail = raw_stream(self.ch_b, req, metadata=[("x-resume-from", str(n))])
            self.assertEqual(tail, full[n:], "x-resume-from: %d" % n)

    def test_resume_from_bad_values_refused(self):
        req = prompt(seed=5, max_tokens=10)
        for v in ("abc", "-1", "+3", " 3", "3x", "1.5", "0x10", "99999999999", ""):
            e = refusal(self.ch_a, req, [("x-resume-from", v)])
            self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT, repr(v))
            self.assertIn("is not a message index", e.details(), repr(v))
        e = refusal(self.ch_a, req, [("x-resume-from", "11")])
        self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertEqual(e.details(),
                         "x-resume-from: 11 is beyond the end of the stream (10 messages)")
        e = refusal(self.ch_a, req, [("x-resume-from", "1"), ("x-resume-from", "1")])
        self.assertEqual(e.code(), grpc.StatusCode.INVALID_ARGUMENT)

    def test_resume_across_two_requests_of_one_stream(self):
        """x-resume-from counts the messages of the whole call."""
        reqs = [prompt(seed=1, max_tokens=5, rid="first"),
                prompt(seed=2, max_tokens=6, rid="second")]
        call = stream_method(self.ch_a)
        full = list(call(iter(reqs), timeout=20))
        self.assertEqual(len(full), 11)
        for n in (3, 5, 7, 11):
            tail = list(call(iter(reqs), timeout=20, metadata=[("x-resume-from", str(n))]))
            self.assertEqual(tail, full[n:], "x-resume-from: %d" % n)

    def test_cancel_mid_stream(self):
        """A caller that goes away mid-stream cancels the paced stream; the
        replica goes on serving (and exits cleanly at the end of the class)."""
        it = stream_method(self.ch_b)(iter([prompt(seed=4, max_tokens=2000)]), timeout=20)
        for _ in range(3):
            next(it)
        it.cancel()
        self.assertIsNotNone(self.b.wait_event(lambda ev: True, timeout=5, event="cancelled"),
                             "replica b logged no cancellation")
        self.assertEqual(len(raw_stream(self.ch_b, prompt(seed=4, max_tokens=3))), 3)

    def test_resume_on_the_2x_plus_1_model(self):
        """x-resume-from counts the messages of any stream, copies included."""
        req = h.typed_request(h.values(4), params={"stream_responses": 5})
        full = raw_stream(self.ch_a, req)
        self.assertEqual(len(full), 5)
        self.assertEqual(raw_stream(self.ch_a, req, [("x-resume-from", "3")]), full[3:])

    def test_no_resume_refuses_with_failed_precondition(self):
        req = prompt(seed=5, max_tokens=8)
        e = refusal(self.ch_nr, req, [("x-resume-from", "2")])
        self.assertEqual(e.code(), grpc.StatusCode.FAILED_PRECONDITION)
        self.assertEqual(e.details(), "resume not supported")
        # Without the header the same replica streams as the others do.
        self.assertEqual(raw_stream(self.ch_nr, req), raw_stream(self.ch_a, req))

    def test_nondeterministic_replicas_disagree(self):
        req = prompt(seed=9, max_tokens=16)
        n1 = raw_stream(self.ch_n1, req)
        n2 = raw_stream(self.ch_n2, req)
        det = raw_stream(self.ch_a, req)
        self.assertEqual(len(n1), 16)
        self.assertNotEqual(n1, n2)
        self.assertNotEqual(n1, det)
        # Each one still agrees with itself: the salt is per process.
        self.assertEqual(raw_stream(self.ch_n1, req), n1)

    def test_token_request_errors(self):
        """A bad parameter is an error_message in the stream (as for the 2x+1
        model); ModelInfer on a token model is refused."""
        msgs = raw_stream(self.ch_a, prompt(max_tokens=0))
        self.assertEqual(len(msgs), 1)
        r = h.pb.ModelStreamInferResponse.FromString(msgs[0])
        self.assertIn("max_tokens", r.error_message)
        with self.assertRaises(grpc.RpcError) as cm:
            h.infer_stub(self.ch_a).ModelInfer(prompt(), timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT)
        self.assertIn("ModelStreamInfer", cm.exception.details())

    def test_metadata(self):
        stub = h.infer_stub(self.ch_a)
        m = stub.ModelMetadata(h.pb.ModelMetadataRequest(name=MODEL), timeout=10)
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in m.inputs],
                         [("PROMPT", "BYTES", [-1])])
        self.assertEqual([(t.name, t.datatype, list(t.shape)) for t in m.outputs],
                         [("token_id", "INT64", [1]), ("text", "BYTES", [1])])
        d = stub.ModelMetadata(h.pb.ModelMetadataRequest(name="demo"), timeout=10)
        self.assertEqual([(t.name, t.datatype) for t in d.outputs], [("OUTPUT0", "FP32")])

    def test_through_the_gateway(self):
        gw = h.start_gateway({MODEL: [self.a.addr, self.b.addr]})
        try:
            ch = h.channel(gw.addr)
            try:
                req = prompt(seed=21, max_tokens=30)
                direct = raw_stream(self.ch_a, req)
                self.assertEqual(raw_stream(ch, req), direct)
                self.assertEqual(raw_stream(ch, req, [("x-resume-from", "17")]), direct[17:])
            finally:
                ch.close()
        finally:
            gw.stop()


if __name__ == "__main__":
    unittest.main()
