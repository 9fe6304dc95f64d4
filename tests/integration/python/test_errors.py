# SPDX-License-Identifier: Apache-2.0
"""Error statuses through the gateway: a replica's injected error (trailers-only
and after headers) reaches the client unchanged; with every replica down the
gateway answers UNAVAILABLE naming the pool."""

import time
import unittest

import grpc

import harness as h


def _error_of(stub, **kw):
    with_md = kw.pop("metadata", None)
    try:
        stub.ModelInfer(h.typed_request(h.values(4)), metadata=with_md, timeout=10, **kw)
    except grpc.RpcError as e:
        return e
    raise AssertionError("call succeeded, expected an error")


class _InjectedErrorChecks:
    """Tests shared by the two injected-error classes (not a TestCase itself)."""

    N_REPLICAS = 1
    CODE = None           # expected grpc.StatusCode
    CODE_NAME = None      # expected x-injected-error value

    def _check(self, err):
        self.assertEqual(err.code(), self.CODE)
        self.assertEqual(err.details(), "injected error")
        self.assertEqual(h.md_get(err.trailing_metadata(), "x-injected-error"), self.CODE_NAME,
                         "trailing metadata: %r" % (err.trailing_metadata(),))

    def test_injected_error_reaches_client(self):
        self._check(_error_of(self.stub))

    def test_same_as_direct(self):
        """Code, message and trailing metadata equal those of a direct call."""
        self.require_gateway()
        via = _error_of(self.stub)
        with h.channel(self.cluster.replicas[0].addr) as direct_ch:
            direct = _error_of(h.infer_stub(direct_ch))
        self.assertEqual(via.code(), direct.code())
        self.assertEqual(via.details(), direct.details())
        self.assertEqual(sorted(via.trailing_metadata()), sorted(direct.trailing_metadata()))
        self.assertEqual(sorted(via.initial_metadata()), sorted(direct.initial_metadata()))

    def test_repeated_errors_leave_gateway_healthy(self):
        for _ in range(20):
            self._check(_error_of(self.stub))


class InjectedErrorTrailersOnlyTest(_InjectedErrorChecks, h.GatewayTestCase):
    REPLICA_ARGS = ("--error-fraction", "1", "--error-code", "FAILED_PRECONDITION")
    CODE = grpc.StatusCode.FAILED_PRECONDITION
    CODE_NAME = "FAILED_PRECONDITION"


class InjectedErrorAfterHeadersTest(_InjectedErrorChecks, h.GatewayTestCase):
    REPLICA_ARGS = ("--error-fraction", "1", "--error-code", "10", "--error-after-headers")
    CODE = grpc.StatusCode.ABORTED
    CODE_NAME = "ABORTED"

    def test_initial_metadata_then_error(self):
        err = _error_of(self.stub)
        self._check(err)
        self.assertReplica(err)


class EveryReplicaDownTest(unittest.TestCase):
    """Pools whose replicas never listened, or stopped after serving."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        self.procs = []
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        h.stop_all(list(reversed(self.procs)))

    def _expect_unavailable(self, stub, pool, **kw):
        t0 = time.monotonic()
        err = _error_of(stub, **kw)
        elapsed = time.monotonic() - t0
        self.assertEqual(err.code(), grpc.StatusCode.UNAVAILABLE, err.details())
        self.assertIn(pool, err.details() or "", "the message must name the pool")
        self.assertLess(elapsed, 8.0)
        return err

    def test_never_listening_replicas(self):
        dead = ["127.0.0.1:%d" % h.free_port(), "127.0.0.1:%d" % h.free_port()]
        gw = h.start_gateway({"demo": dead, "default": dead})
        self.procs.append(gw)
        with h.channel(gw.addr) as ch:
            stub = h.infer_stub(ch)
            self._expect_unavailable(stub, "demo")
            self._expect_unavailable(stub, "demo", metadata=(("x-model", "demo"),))
            # The gateway itself still answers.
            self.assertTrue(stub.ServerLive(h.pb.ServerLiveRequest(), timeout=5).live)

    def test_replicas_stopped_after_serving(self):
        reps = [h.start_replica("down-r%d" % i) for i in range(2)]
        self.procs.extend(reps)
        addrs = [r.addr for r in reps]
        gw = h.start_gateway({"sales-model": addrs, "demo": addrs})
        self.procs.append(gw)
        with h.channel(gw.addr) as ch:
            stub = h.infer_stub(ch)
            md = (("x-model", "sales-model"),)
            resp = stub.ModelInfer(h.typed_request(h.values(4)), metadata=md, timeout=10)
            self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(h.values(4)))
            for r in reps:
                r.stop()
            self._expect_unavailable(stub, "sales-model", metadata=md)
            self._expect_unavailable(stub, "demo")
            # A replica back on the same port is used again.
            back = h.start_replica("down-back", port=reps[0].port)
            self.procs.append(back)
            deadline = time.monotonic() + 10
            while True:
                try:
                    _, call = stub.ModelInfer.with_call(h.typed_request(h.values(4)), metadata=md,
                                                        timeout=5)
                    self.assertEqual(h.replica_of(call), "down-back")
                    break
                except grpc.RpcError as e:
                    if time.monotonic() > deadline:
                        raise AssertionError("no recovery after the replica came back: %s %s"
                                             % (e.code(), e.details()))
                    time.sleep(0.2)


if __name__ == "__main__":
    unittest.main()
