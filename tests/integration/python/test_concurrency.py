# SPDX-License-Identifier: Apache-2.0
"""2,000 concurrent calls over 4 client connections, all answered correctly."""

import collections
import subprocess
import time
import unittest

import grpc

import harness as h

N_CHANNELS = 4
PER_CHANNEL = 500


def established_to(port):
    """Number of ESTABLISHED TCP connections to 127.0.0.1:<port> (client side)."""
    out = subprocess.run(["ss", "-Htn", "state", "established", "dst", "127.0.0.1:%d" % port],
                         stdout=subprocess.PIPE, check=True).stdout.decode()
    return len([line for line in out.splitlines() if line.strip()])


class ConcurrencyTest(h.GatewayTestCase):
    N_REPLICAS = 3
    # Each call waits 300 ms in the replica, so the 2,000 calls overlap.
    REPLICA_ARGS = ("--latency-ms", "300", "--quiet")

    def test_2000_concurrent_calls_over_4_connections(self):
        before = established_to(self.cluster.gateway.port) if not h.DIRECT else 0
        chans = []
        try:
            for i in range(N_CHANNELS):
                # Distinct arguments + a local subchannel pool: one TCP connection each.
                chans.append(h.channel(self.cluster.target, ("grpc.use_local_subchannel_pool", 1),
                                       ("test.channel_id", i)))
            if not h.DIRECT:
                self.assertEqual(established_to(self.cluster.gateway.port) - before, N_CHANNELS,
                                 "expected one connection per channel")
            stubs = [h.infer_stub(c) for c in chans]
            t0 = time.monotonic()
            futs = []
            for k in range(PER_CHANNEL):
                for c, stub in enumerate(stubs):
                    vals = [float(c), float(k), float(k % 7) * 0.5]
                    futs.append((vals, stub.ModelInfer.future(
                        h.typed_request(vals, rid="%d-%d" % (c, k)), timeout=60)))
            codes = collections.Counter()
            replicas = collections.Counter()
            wrong = []
            for vals, f in futs:
                try:
                    resp = f.result()
                except grpc.RpcError as e:
                    codes[e.code().name] += 1
                    continue
                codes["OK"] += 1
                replicas[h.replica_of(f)] += 1
                if list(resp.outputs[0].contents.fp32_contents) != h.expected(vals):
                    wrong.append(resp.id)
            elapsed = time.monotonic() - t0
            self.assertEqual(dict(codes), {"OK": N_CHANNELS * PER_CHANNEL})
            self.assertEqual(wrong, [], "answers with wrong values")
            self.assertEqual(set(replicas), self.cluster.ids, dict(replicas))
            # Serialized, 2,000 x 300 ms would take 600 s; overlapping calls take seconds.
            self.assertLess(elapsed, 30.0, "calls did not run concurrently (%.1f s)" % elapsed)
            if not h.DIRECT:
                self.assertEqual(established_to(self.cluster.gateway.port) - before, N_CHANNELS)
        finally:
            for c in chans:
                c.close()


if __name__ == "__main__":
    unittest.main()
