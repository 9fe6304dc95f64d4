# SPDX-License-Identifier: Apache-2.0
"""SIGTERM drains the gateway: in-flight calls complete OK, new connections
are refused, and the gateway exits 0 within its grace period."""

import signal
import time
import unittest

import grpc

import harness as h


class ShutdownTest(unittest.TestCase):

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        self.replicas = [h.start_replica("drain-r%d" % i, "--latency-ms", "1000") for i in range(2)]
        addrs = [r.addr for r in self.replicas]
        self.gw = h.start_gateway({"demo": addrs, "default": addrs}, grace_ms=10000)
        self.addCleanup(self._stop_all)

    def _stop_all(self):
        h.stop_all([self.gw] + self.replicas)

    def test_sigterm_with_50_calls_in_flight(self):
        with h.channel(self.gw.addr) as ch:
            stub = h.infer_stub(ch)
            futs = []
            for i in range(50):
                vals = [float(i), 0.5]
                futs.append((vals, stub.ModelInfer.future(h.typed_request(vals, rid=str(i)),
                                                          timeout=20)))
            time.sleep(0.3)  # every call has reached a replica and waits there (1 s)
            t_term = time.monotonic()
            self.gw.send_signal(signal.SIGTERM)
            failures = []
            for vals, f in futs:
                try:
                    resp = f.result()
                    if list(resp.outputs[0].contents.fp32_contents) != h.expected(vals):
                        failures.append("wrong values in %s" % resp.id)
                    if h.replica_of(f) not in {"drain-r0", "drain-r1"}:
                        failures.append("no x-replica-id on %s" % resp.id)
                except grpc.RpcError as e:
                    failures.append("%s: %s" % (e.code().name, e.details()))
            self.assertEqual(failures, [], "in-flight calls must complete OK during the drain")
            # A new connection after the drain started is not served.
            with h.channel_unready(self.gw.addr) as late:
                with self.assertRaises(grpc.RpcError) as cm:
                    h.infer_stub(late).ModelInfer(h.typed_request([1.0]), timeout=2)
                self.assertIn(cm.exception.code(), (grpc.StatusCode.UNAVAILABLE,
                                                    grpc.StatusCode.DEADLINE_EXCEEDED))
            code = self.gw.wait_exit(15)
            took = time.monotonic() - t_term
        self.gw.check_sanitizers()
        self.assertEqual(code, 0, "gateway exit status; log:\n" + self.gw.tail())
        self.assertLess(took, 10.0 + 2.0, "drain took longer than its grace")
        served = sum(1 for r in self.replicas for e in r.events("call")
                     if e.get("method", "").endswith("ModelInfer") and e.get("status") == "OK")
        self.assertEqual(served, 50, "the replicas completed %d of the 50 calls" % served)


if __name__ == "__main__":
    unittest.main()
