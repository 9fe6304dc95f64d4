# SPDX-License-Identifier: Apache-2.0
"""Per-tenant rate limits end to end (the issue's acceptance test).

Two tenants with API keys made by `infergw-ctl key create`, in a real
redis-server; the gateway runs with authentication on (`--auth on`) and
reads tenants and keys from Redis; calls carry `authorization: Bearer <key>`.

- Tenant A: rps=50, burst=50, models=demo. Driven open loop at 200 calls/s
  for 5 s: call i is sent at t0 + i/200 s, whatever happened to the calls
  before it (grpc futures, 1 s deadline each).
- Tenant B: rps=1000, models=*, driven at the same time at 100 calls/s.

What "50 rps through (+-10%)" means here. The bucket starts full, so A gets
its burst (50) at once and then 50 calls/s. Counted by send time:
  - calls sent in seconds 1..5 (after the first second, when the burst is
    long spent): 4 s x 50/s = 200 OK, +-10% (180..220);
  - all 5 s: burst + 5 s x 50/s = 300 OK, +-10% (270..330).
Every other call of A ends RESOURCE_EXHAUSTED with trailing metadata
grpc-retry-pushback-ms holding a positive integer (ms until a token is
back). Every call of B is OK. A call from A to a model outside its list
("other") is PERMISSION_DENIED.
"""

import threading
import time
import unittest

import grpc

import harness as h

RATE_A, RATE_B, SECONDS = 200, 100, 5
RPS_A, BURST_A = 50, 50


def drive(stub, key, model, rate, seconds, t0, out):
    """Sends rate x seconds calls open loop from monotonic time <t0>; appends
    (send offset s, status, trailing metadata) to <out> as each call ends."""
    md = (("authorization", "Bearer " + key), ("x-model", model))
    pending = []
    lock = threading.Lock()

    def done(fut, offset):
        code = fut.code()
        try:
            trailers = tuple(fut.trailing_metadata() or ())
        except Exception:  # noqa: BLE001 - a cancelled call has none
            trailers = ()
        with lock:
            out.append((offset, code, trailers))

    req = h.typed_request(h.values(4), model=model)
    for i in range(rate * seconds):
        at = t0 + i / float(rate)
        delay = at - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        fut = stub.ModelInfer.future(req, timeout=1.0, metadata=md)
        offset = time.monotonic() - t0
        fut.add_done_callback(lambda f, o=offset: done(f, o))
        pending.append(fut)
    for fut in pending:
        try:
            fut.result(timeout=5)
        except grpc.RpcError:
            pass
        except grpc.FutureTimeoutError:
            pass


@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class RateLimitTest(unittest.TestCase):

    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.addClassCleanup(h.stop_all, cls.procs)
        cls.redis = h.start_redis(name="redis-ratelimit")
        cls.procs.append(cls.redis)
        url = h.redis_url(cls.redis)
        h.run_ctl(url, "tenant", "add", "tenant-a", "--models", "demo", "--rps", RPS_A,
                  "--burst", BURST_A)
        h.run_ctl(url, "tenant", "add", "tenant-b", "--models", "*", "--rps", 1000)
        cls.key_a = h.run_ctl(url, "key", "create", "tenant-a").stdout.strip()
        cls.key_b = h.run_ctl(url, "key", "create", "tenant-b").stdout.strip()
        cls.replica = h.start_replica("r1", "--model", "other")
        cls.procs.append(cls.replica)
        cls.gw = h.start_gateway({"demo": [cls.replica.addr], "other": [cls.replica.addr]},
                                 "--auth", "on", "--redis", url)
        cls.procs.insert(0, cls.gw)
        ev = cls.gw.wait_event(lambda e: e.get("api_keys") == 2, timeout=10,
                               event="config_applied")
        assert ev, "tenants and keys not loaded:\n" + cls.gw.tail()
        cls.ch = h.channel(cls.gw.addr)
        cls.stub = h.infer_stub(cls.ch)

    @classmethod
    def tearDownClass(cls):
        cls.ch.close()

    def test_model_outside_list_permission_denied(self):
        md = (("authorization", "Bearer " + self.key_a), ("x-model", "other"))
        with self.assertRaises(grpc.RpcError) as cm:
            self.stub.ModelInfer(h.typed_request(h.values(4), model="other"), timeout=5,
                                 metadata=md)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED,
                         cm.exception.details())
        # Tenant B may call it.
        md = (("authorization", "Bearer " + self.key_b), ("x-model", "other"))
        self.stub.ModelInfer(h.typed_request(h.values(4), model="other"), timeout=5, metadata=md)

    def test_tenant_a_limited_tenant_b_unaffected(self):
        # Let the bucket of A fill up after any earlier test.
        time.sleep(BURST_A / float(RPS_A) + 0.2)
        out_a, out_b = [], []
        t0 = time.monotonic() + 0.2
        ta = threading.Thread(target=drive, args=(self.stub, self.key_a, "demo", RATE_A, SECONDS,
                                                  t0, out_a))
        tb = threading.Thread(target=drive, args=(self.stub, self.key_b, "demo", RATE_B, SECONDS,
                                                  t0, out_b))
        ta.start()
        tb.start()
        ta.join(SECONDS + 30)
        tb.join(SECONDS + 30)
        self.assertEqual(len(out_a), RATE_A * SECONDS)
        self.assertEqual(len(out_b), RATE_B * SECONDS)

        ok_total = sum(1 for _, c, _ in out_a if c == grpc.StatusCode.OK)
        ok_after_1s = sum(1 for o, c, _ in out_a if c == grpc.StatusCode.OK and o >= 1.0)
        per_second = [sum(1 for o, c, _ in out_a if c == grpc.StatusCode.OK and s <= o < s + 1)
                      for s in range(SECONDS)]
        print("\nrate limit: tenant A (rps=%d burst=%d) driven at %d/s for %d s: %d OK in "
              "total, %d OK sent after the first second (%.1f/s), per second %s"
              % (RPS_A, BURST_A, RATE_A, SECONDS, ok_total, ok_after_1s,
                 ok_after_1s / (SECONDS - 1.0), per_second))
        want_after = RPS_A * (SECONDS - 1)
        self.assertTrue(0.9 * want_after <= ok_after_1s <= 1.1 * want_after,
                        "tenant A got %d OK after the first second, want %d +-10%%"
                        % (ok_after_1s, want_after))
        want_total = BURST_A + RPS_A * SECONDS
        self.assertTrue(0.9 * want_total <= ok_total <= 1.1 * want_total,
                        "tenant A got %d OK in total, want %d +-10%%" % (ok_total, want_total))

        bad_b = [(o, c) for o, c, _ in out_b if c != grpc.StatusCode.OK]
        print("rate limit: tenant B (rps=1000) driven at %d/s: %d OK, %d not"
              % (RATE_B, len(out_b) - len(bad_b), len(bad_b)))
        self.assertEqual(bad_b, [], "tenant B was affected")

        pushbacks = []
        for offset, code, trailers in out_a:
            if code == grpc.StatusCode.OK:
                continue
            self.assertEqual(code, grpc.StatusCode.RESOURCE_EXHAUSTED,
                             "tenant A call at %.3f s ended %s" % (offset, code))
            value = h.md_get(trailers, "grpc-retry-pushback-ms")
            self.assertIsNotNone(value, "RESOURCE_EXHAUSTED without grpc-retry-pushback-ms: %r"
                                 % (trailers,))
            self.assertRegex(value, r"^[1-9][0-9]*$")
            pushbacks.append(int(value))
        # One token every 20 ms: never told to wait much longer than that (the
        # workers read the clock once per wake-up, so a few ms either way).
        self.assertLessEqual(max(pushbacks), 2 * 1000 // RPS_A)
        print("rate limit: %d RESOURCE_EXHAUSTED, pushback %d..%d ms"
              % (len(pushbacks), min(pushbacks), max(pushbacks)))


if __name__ == "__main__":
    unittest.main()
