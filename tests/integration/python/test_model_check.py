# SPDX-License-Identifier: Apache-2.0
"""With authentication on, the model a tenant may use is the model the replica
runs: every model_name of every KServe request message must name the model
the call is routed by (x-model, else the first message's model_name), or the
call is refused before the message reaches a replica.

The replica serves both `demo` and `secret`; tenant `team-d` may use `demo`
only, tenant `root` any model. "No call reached the replica" is read from the
replica's JSON log (one `call` or `cancelled` line per call it saw).
"""

import hashlib
import os
import queue
import tempfile
import time
import unittest

import grpc

import harness as h

MODEL_INFER = "/inference.GRPCInferenceService/ModelInfer"


class ModelCheckTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.addClassCleanup(lambda: h.stop_all(cls.procs))
        tmp = tempfile.mkdtemp(prefix="model-check-", dir=h.WORK_DIR)
        cls.key_d = "igw_" + "d" * 43
        cls.key_root = "igw_" + "r" * 43
        tenants = os.path.join(tmp, "tenants")
        with open(tenants, "w") as f:
            f.write("team-d models=demo\nroot models=*\n")
        keys = os.path.join(tmp, "keys")
        with open(keys, "w") as f:
            for key, tenant in ((cls.key_d, "team-d"), (cls.key_root, "root")):
                f.write("%s tenant=%s\n" % (hashlib.sha256(key.encode()).hexdigest(), tenant))
        cls.replica = h.start_replica("check-r", "--model", "secret")
        cls.procs.append(cls.replica)
        cls.gw = h.start_gateway({"demo": [cls.replica.addr], "secret": [cls.replica.addr]},
                                 "--auth=on", "--tenants", tenants, "--api-keys", keys)
        cls.procs.insert(0, cls.gw)
        cls.ch = h.channel(cls.gw.addr)
        cls.addClassCleanup(cls.ch.close)
        cls.stub = h.infer_stub(cls.ch)
        cls.raw_infer = cls.ch.unary_unary(MODEL_INFER)  # bytes in, bytes out

    def md(self, key, model=None):
        out = [("authorization", "Bearer " + key)]
        if model:
            out.append(("x-model", model))
        return out

    def replica_calls(self):
        """KServe calls the replica logged, answered or cancelled (the gateway's
        health checks, grpc.health.v1, are not counted)."""
        return sum(1 for ev in self.replica.events()
                   if ev.get("event") in ("call", "cancelled") and
                   ev.get("method", "").startswith("/inference."))

    def assert_replica_saw(self, before, n):
        # The replica logs a call when it ends; give a stray one time to show.
        time.sleep(0.3)
        self.assertEqual(self.replica_calls(), before + n, self.replica.tail())

    def test_x_model_demo_with_body_secret_refused(self):
        before = self.replica_calls()
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(h.typed_request(h.values(4), model="secret"), timeout=5,
                                 metadata=self.md(self.key_d, "demo"))
        err = cm.exception
        self.assertEqual(err.code(), grpc.StatusCode.PERMISSION_DENIED, err.details())
        self.assertIn("'secret'", err.details())
        self.assertIn("'demo'", err.details())
        self.assertIsNone(h.replica_of(err), "the refusal must come from the gateway")
        self.assert_replica_saw(before, 0)
        # The same call naming demo in the body goes through.
        resp = self.stub.ModelInfer(h.typed_request(h.values(4), model="demo"), timeout=5,
                                    metadata=self.md(self.key_d, "demo"))
        self.assertEqual(resp.model_name, "demo")
        self.assert_replica_saw(before, 1)

    def test_mismatch_for_a_tenant_allowed_both_is_invalid_argument(self):
        before = self.replica_calls()
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(h.typed_request(h.values(4), model="secret"), timeout=5,
                                 metadata=self.md(self.key_root, "demo"))
        err = cm.exception
        self.assertEqual(err.code(), grpc.StatusCode.INVALID_ARGUMENT, err.details())
        self.assertIn("model_name 'secret'", err.details())
        self.assertIn("'demo'", err.details())
        self.assert_replica_saw(before, 0)
        # root may call secret when it says so.
        resp = self.stub.ModelInfer(h.typed_request(h.values(4), model="secret"), timeout=5,
                                    metadata=self.md(self.key_root, "secret"))
        self.assertEqual(resp.model_name, "secret")
        self.assert_replica_saw(before, 1)

    def test_second_model_name_in_one_message_refused(self):
        """A parser keeps the last of repeated field 1: demo first, secret after."""
        body = h.typed_request(h.values(4), model="demo").SerializeToString()
        body += b"\x0a\x06secret"
        before = self.replica_calls()
        for model_md in (None, "demo"):
            with self.assertRaises(grpc.RpcError) as cm:
                self.raw_infer(body, timeout=5, metadata=self.md(self.key_d, model_md))
            err = cm.exception
            self.assertEqual(err.code(), grpc.StatusCode.PERMISSION_DENIED, err.details())
            self.assertIn("'secret'", err.details())
        # model_name after another field (routing saw no name: pool default).
        body = h.typed_request(h.values(4), model="").SerializeToString() + b"\x0a\x06secret"
        with self.assertRaises(grpc.RpcError) as cm:
            self.raw_infer(body, timeout=5, metadata=self.md(self.key_root))
        self.assertEqual(cm.exception.code(), grpc.StatusCode.INVALID_ARGUMENT,
                         cm.exception.details())
        self.assertIn("'default'", cm.exception.details())
        self.assert_replica_saw(before, 0)

    def test_later_stream_message_refused_and_attempt_cancelled(self):
        reqs = queue.Queue()

        def gen():
            while True:
                r = reqs.get()
                if r is None:
                    return
                yield r

        before = self.replica_calls()
        call = self.stub.ModelStreamInfer(gen(), timeout=10, metadata=self.md(self.key_d, "demo"))
        reqs.put(h.typed_request(h.values(4), model="demo", rid="one"))
        first = next(call)
        self.assertEqual(first.infer_response.id, "one")
        self.assertEqual(first.infer_response.model_name, "demo")
        reqs.put(h.typed_request(h.values(4), model="secret", rid="two"))
        rest = []
        with self.assertRaises(grpc.RpcError) as cm:
            for r in call:
                rest.append(r)
        reqs.put(None)
        self.assertEqual(rest, [], "the replica must not answer the message naming secret")
        err = cm.exception
        self.assertEqual(err.code(), grpc.StatusCode.PERMISSION_DENIED, err.details())
        self.assertIn("request message 2", err.details())
        # The replica saw one stream, and it was cancelled by the gateway.
        ev = self.replica.wait_event(lambda e: e.get("method", "").endswith("ModelStreamInfer"),
                                     timeout=5, event="cancelled")
        self.assertIsNotNone(ev, self.replica.tail())
        self.assert_replica_saw(before, 1)

    def test_refusals_counted(self):
        with self.assertRaises(grpc.RpcError):
            self.stub.ModelInfer(h.typed_request(h.values(4), model="secret"), timeout=5,
                                 metadata=self.md(self.key_d, "demo"))
        ev = self.gw.wait_event(lambda e: "model_name" in e.get("message", "") or
                                "may not call model 'secret'" in e.get("message", ""),
                                event="call_failed")
        self.assertIsNotNone(ev, self.gw.tail())
        self.assertEqual(ev["status"], "PERMISSION_DENIED")


if __name__ == "__main__":
    unittest.main()
