# SPDX-License-Identifier: Apache-2.0
"""Routing through the gateway, seen through x-replica-id: a routing key sticks
to one replica, different keys and key-less calls spread over all replicas."""

import collections
import unittest

import harness as h


class RoutingTest(h.GatewayTestCase):
    N_REPLICAS = 3

    def setUp(self):
        super().setUp()
        self.require_gateway()

    def _replica(self, stub, key=None, model_md=None):
        md = []
        if key is not None:
            md.append(("x-route-key", key))
        if model_md is not None:
            md.append(("x-model", model_md))
        vals = h.values(4)
        resp, call = stub.ModelInfer.with_call(h.typed_request(vals), metadata=md, timeout=10)
        self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))
        return self.assertReplica(call)

    def test_same_key_same_replica_100_of_100(self):
        seen = collections.Counter(self._replica(self.stub, "customer-42") for _ in range(100))
        self.assertEqual(len(seen), 1, "route key split over replicas: %r" % dict(seen))
        self.assertEqual(sum(seen.values()), 100)

    def test_same_key_same_replica_across_connections(self):
        """Every connection (and so every worker) maps a key to the same replica."""
        key = "session-7"
        first = self._replica(self.stub, key)
        for i in range(4):
            with h.channel(self.cluster.target, ("grpc.use_local_subchannel_pool", 1),
                           ("test.channel_id", i)) as ch:
                stub = h.infer_stub(ch)
                for _ in range(10):
                    self.assertEqual(self._replica(stub, key), first)

    def test_different_keys_spread(self):
        owner = {}
        for i in range(30):
            key = "user-%d" % i
            rids = {self._replica(self.stub, key) for _ in range(3)}
            self.assertEqual(len(rids), 1, "key %s answered by %r" % (key, rids))
            owner[key] = rids.pop()
        spread = collections.Counter(owner.values())
        self.assertEqual(set(spread), self.cluster.ids,
                         "30 keys should reach all 3 replicas: %r" % dict(spread))

    def test_key_with_x_model(self):
        a = {self._replica(self.stub, "k-model", model_md="demo") for _ in range(20)}
        self.assertEqual(len(a), 1)

    def test_no_key_reaches_all_replicas(self):
        seen = collections.Counter(self._replica(self.stub) for _ in range(60))
        self.assertEqual(set(seen), self.cluster.ids,
                         "60 key-less calls should reach all 3 replicas: %r" % dict(seen))

    def test_no_key_concurrent_calls_spread(self):
        vals = h.values(4)
        futs = [self.stub.ModelInfer.future(h.typed_request(vals), timeout=10) for _ in range(60)]
        seen = collections.Counter()
        for f in futs:
            self.assertEqual(list(f.result().outputs[0].contents.fp32_contents), h.expected(vals))
            seen[self.assertReplica(f)] += 1
        self.assertEqual(set(seen), self.cluster.ids, dict(seen))


if __name__ == "__main__":
    unittest.main()
