# SPDX-License-Identifier: Apache-2.0
"""The grpc-core C client (c_client) through the gateway: typed and raw
ModelInfer, route-key stickiness, spread without a key, x-model, deadlines
and NOT_FOUND, each judged by the client's own checks and its JSON output."""

import json
import os
import subprocess
import unittest

import harness as h

C_CLIENT = os.environ.get("INFERGW_C_CLIENT") or os.path.join(
    h.SOURCE_DIR, "build", "tests", "integration", "c_client")


class CClientTest(h.GatewayTestCase):
    N_REPLICAS = 3

    def run_client(self, *args, expect_rc=0):
        exe = C_CLIENT
        self.assertTrue(os.access(exe, os.X_OK), "missing %s" % exe)
        r = subprocess.run([exe, "--target", self.cluster.target] + list(args),
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=60)
        out = r.stdout.decode()
        lines = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        self.assertTrue(lines and lines[-1].get("summary"), out + r.stderr.decode())
        self.assertEqual(r.returncode, expect_rc, out + r.stderr.decode())
        return lines[:-1], lines[-1]

    def test_typed(self):
        calls, summary = self.run_client("--mode", "typed", "--count", "10", "--elements", "100")
        self.assertEqual((summary["calls"], summary["passed"], summary["failed"]), (10, 10, 0))
        self.assertTrue(set(summary["replicas"]) <= self.cluster.ids, summary)
        self.assertTrue(all(c["status"] == "OK" and c["check"] == "pass" for c in calls), calls)

    def test_raw(self):
        calls, summary = self.run_client("--mode", "raw", "--count", "10", "--elements", "10000")
        self.assertEqual(summary["passed"], 10)
        self.assertTrue(all(c["replica"] in self.cluster.ids for c in calls), calls)

    def test_route_key_sticks(self):
        _, summary = self.run_client("--mode", "raw", "--count", "100", "--route-key", "c-key-1",
                                     "--same-replica")
        self.assertEqual(summary["passed"], 100)
        self.assertEqual(len(summary["replicas"]), 1, summary)

    def test_no_key_reaches_all_replicas(self):
        self.require_gateway()
        _, summary = self.run_client("--count", "60", "--min-replicas", "3")
        self.assertEqual(set(summary["replicas"]), self.cluster.ids, summary)

    def test_x_model_header(self):
        _, summary = self.run_client("--x-model", "demo", "--model-name", "demo", "--count", "3")
        self.assertEqual(summary["passed"], 3)

    def test_unknown_model_not_found(self):
        calls, summary = self.run_client("--model-name", "no-such-model",
                                         "--expect-status", "NOT_FOUND")
        self.assertEqual(calls[0]["status"], "NOT_FOUND")
        self.require_gateway()
        calls, _ = self.run_client("--x-model", "no-such-model", "--expect-status", "NOT_FOUND")
        self.assertEqual(calls[0]["status"], "NOT_FOUND")
        self.assertEqual(calls[0]["replica"], "", "the gateway answers, no replica is involved")

    def test_wrong_expectation_fails(self):
        """The client's exit code really reflects its checks."""
        calls, summary = self.run_client("--expect-status", "NOT_FOUND", expect_rc=1)
        self.assertEqual(calls[0]["status"], "OK")
        self.assertEqual(summary["failed"], 1)


class CClientDeadlineTest(h.GatewayTestCase):
    N_REPLICAS = 1
    REPLICA_ARGS = ("--latency-ms", "500")

    def test_deadline_exceeded(self):
        exe = C_CLIENT
        before = len(self.cluster.replicas[0].events("cancelled"))
        r = subprocess.run([exe, "--target", self.cluster.target, "--deadline-ms", "50",
                            "--expect-status", "DEADLINE_EXCEEDED"],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, timeout=30)
        out = r.stdout.decode()
        self.assertEqual(r.returncode, 0, out + r.stderr.decode())
        self.assertIn('"status":"DEADLINE_EXCEEDED"', out)
        self.assertGreater(self.cluster.replicas[0].wait_count("cancelled", before + 1), before,
                           "the replica must log the cancellation")


if __name__ == "__main__":
    unittest.main()
