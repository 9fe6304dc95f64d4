# SPDX-License-Identifier: Apache-2.0
"""Retries, hedging, budgets, the deadline and health under faults, end to end.

Per test: its own redis-server, 3 infergw-replica processes (the pool `demo`
written with infergw-ctl, 100 vnodes each) and one gateway on --redis with
--admin; open-loop load from an outside gRPC client (loaddrive.LoadDriver,
the generated Python stubs), every call with a 1 s deadline.

- kill -9 one replica mid-load: zero failed calls; /debug/replicas shows the
  replica out (down, ejected or unhealthy) within 1 s of the kill;
- SIGSTOP one replica (SIGCONT at the end), hedge_delay_ms 50: zero failed
  calls; p99 of the calls sent after the stop < 50 ms + 2 x the p99 of the
  calls before it (same run);
- one replica answering UNAVAILABLE in trailers after headers on 30% of its
  calls: >= 99.9% of calls succeed, with outlier ejection off (every error
  is retried; at least 50 were injected during the load) and again with the
  default ejection;
- one replica with --slow-fraction 0.02 --slow-ms 200 (all --latency-ms 2),
  load on keys that it owns: p99 with hedge_delay_ms 20 <= 1/5 of p99 with
  hedging off, both in this test, and extra upstream calls (counted from the
  replicas' own log lines) <= 5% of calls;
- every replica failing with UNAVAILABLE: upstream attempts <= 1.2 x calls +
  the retry budget minimum (per worker), every caller gets UNAVAILABLE with
  a message, nobody gets DEADLINE_EXCEEDED;
- in every case: no call is answered after its deadline (loaddrive "late":
  later than deadline + 50 ms of client scheduling slack).

The gateway runs with fast health flags (HEALTH_FLAGS: --keepalive-ms,
--health-interval-ms, ...). Every case prints one line on stderr:
"RESILIENCE <case>: <figures>".
"""

import json
import signal
import sys
import threading
import time
import unittest

import harness as h
import loaddrive as ld

POOL = "demo"
DEADLINE = 1.0
RATE = 300.0
WORKERS = 2  # harness.start_gateway's --workers; each worker keeps its own budgets

# The retry budget's minimum: extra attempts each worker's pool budget always allows
# (documented with the retry budget in docs/routing.md).
RETRY_BUDGET_MIN = 10  # per worker

HEALTH_FLAGS = (("--keepalive-ms", "200"), ("--keepalive-timeout-ms", "300"),
                ("--health-interval-ms", "200"), ("--health-timeout-ms", "200"))


def health_args():
    return [x for flag_value in HEALTH_FLAGS for x in flag_value]


def report(case, text):
    sys.stderr.write("RESILIENCE %s: %s\n" % (case, text))
    sys.stderr.flush()


def replica_is_out(entry):
    """Whether one /debug/replicas entry shows a replica the ring walk passes
    over for health: its "eligible" is false (down, ejected, unhealthy or
    NOT_SERVING: docs/health.md). The gateway keeps a health record for every
    replica of its routes, so the entry has "eligible" (a KeyError otherwise)."""
    return entry["eligible"] is False


class EjectWatch:
    """Polls /debug/replicas every 10 ms from a thread; records the first
    time.monotonic() at which <addr> shows out. An entry not of the documented
    shape ends the thread; stop() raises it."""

    def __init__(self, admin_port, addr):
        self.port = admin_port
        self.addr = addr
        self.out_at = None
        self.last = None
        self.polls = 0
        self.error = None
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._t.start()
        return self

    def _run(self):
        try:
            self._poll()
        except Exception as e:  # re-raised by stop()
            self.error = e

    def _poll(self):
        while not self._stop.is_set() and self.out_at is None:
            try:
                code, body = h.http_get(self.port, "/debug/replicas", timeout=0.5)
                if code == 200:
                    for e in json.loads(body)["replicas"]:
                        if e["address"] == self.addr:
                            self.last = e
                            if replica_is_out(e):
                                self.out_at = time.monotonic()
                self.polls += 1
            except (OSError, ValueError):
                pass
            self._stop.wait(0.01)

    def stop(self):
        self._stop.set()
        self._t.join(2)
        if self.error is not None:
            raise AssertionError("/debug/replicas entry of %s: %r (last entry %r)"
                                 % (self.addr, self.error, self.last)) from self.error


def attempts_by_kind(admin_port):
    """{kind: count} of infergw_upstream_attempts_total from /metrics, summed
    over replicas and outcomes (kind "primary", and the kinds the call engine
    adds for retries and hedges)."""
    out = {}
    for name, labels, v in h.scrape(admin_port, timeout=2.0):
        if name == "infergw_upstream_attempts_total":
            out[labels["kind"]] = out.get(labels["kind"], 0) + int(v)
    return out


def kinds_delta(before, after):
    return {k: after.get(k, 0) - before.get(k, 0) for k in sorted(set(before) | set(after))
            if after.get(k, 0) - before.get(k, 0)}


def modelinfer_attempts(replica):
    """Upstream attempts a replica saw, from its JSON log lines: finished
    ModelInfer calls ("call") plus cancelled ones ("cancelled", e.g. a hedge
    that lost), whatever their status."""
    n = 0
    for ev in replica.events():
        if ev.get("event") in ("call", "cancelled") and str(ev.get("method", "")).endswith("/ModelInfer"):
            n += 1
    return n


class ResilienceCase(unittest.TestCase):
    """Redis + 3 replicas + 1 gateway per test; see bring_up()."""

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(name="redis-" + self._testMethodName)
        self.addCleanup(self.redis.stop)
        self.url = h.redis_url(self.redis)

    def ctl(self, *args):
        return h.run_ctl(self.url, *args)

    def conf_set(self, field, value):
        """infergw-ctl conf set --pool demo <field> <value>; waits until the
        gateway has applied that version."""
        p = self.ctl("conf", "set", "--pool", POOL, field, value)
        v = h.ctl_version(p.stdout + p.stderr)
        if v is not None and self.gw is not None:
            ev = self.gw.wait_event(lambda e: e.get("version", 0) >= v, timeout=5.0,
                                    event="config_applied")
            self.assertIsNotNone(ev, "gateway did not apply version %d; log:\n%s" % (v, self.gw.tail()))

    def bring_up(self, replica_args=((), (), ()), conf=None, gateway_args=()):
        """Starts the replicas (ids <test>-r<i>, each --latency-ms 2 and a fixed
        seed, then its own args), writes the pool and <conf> with infergw-ctl,
        starts the gateway and makes a few calls so every replica is connected."""
        tag = self._testMethodName.replace("test_", "")[:20]
        self.gw = None
        self.replicas = []
        for i, extra in enumerate(replica_args):
            p = h.start_replica("%s-r%d" % (tag, i), "--latency-ms", "2", "--seed", str(101 + i),
                                *extra)
            self.addCleanup(p.stop)
            self.replicas.append(p)
        self.ids = {p.name[len("replica-"):]: p for p in self.replicas}
        self.ctl("pool", "add", POOL)
        for p in self.replicas:
            self.ctl("replica", "add", POOL, p.addr)
        for field, value in (conf or {}).items():
            self.ctl("conf", "set", "--pool", POOL, field, value)
        self.admin_port = h.free_port()
        self.gw = h.start_gateway({}, "--redis", self.url, "--admin", "127.0.0.1:%d" % self.admin_port,
                                  *health_args(), *gateway_args)
        self.addCleanup(self.gw.stop)
        ev = self.gw.wait_event(lambda e: e.get("pools", 0) != 0, timeout=5.0, event="config_applied")
        self.assertIsNotNone(ev, "no config_applied with the pool; log:\n%s" % self.gw.tail())
        # Warm up: connections to every replica from both workers.
        warm = ld.LoadDriver(self.gw.addr, rate=200, duration=0.5, keys=64, key_prefix="warm").run()
        self.assertEqual(len(warm.records), 100)
        self.ring = h.RingModel({p.addr: 100 for p in self.replicas})

    def assertNoLate(self, res, case):
        late = res.late_calls()
        self.assertEqual(late, [], "%s: %d calls answered after their deadline (+%.0f ms slack):\n%s"
                         % (case, len(late), res.slack * 1e3,
                            "\n".join("  #%d latency=%.1fms code=%s" % (r.index, r.latency * 1e3, r.code)
                                      for r in late[:20])))
        self.assertEqual(res.unfinished(), [], "%s: calls never finished" % case)

    def assertNoFailures(self, res, case):
        self.assertEqual(len(res.failed()), 0, "%s: %d of %d calls failed:\n%s"
                         % (case, len(res.failed()), res.count(), "\n".join(res.failed_lines())))

    def assertDriverKeptUp(self, res, case):
        # Latencies are measured from the actual send, so a send that left a
        # few ms late (other work on the 2 vCPUs) costs nothing; a driver that
        # fell far behind its schedule no longer makes open-loop load, and
        # the run says nothing about the gateway.
        p50, p99, mx = res.send_lateness()
        self.assertLess(p99, 100.0, "%s: the load driver sent late (p99 %.1f ms, max %.1f ms): "
                        "the machine is too loaded for this run" % (case, p99, mx))


class KillReplicaTest(ResilienceCase):

    def test_kill9_replica_mid_load(self):
        self.bring_up()
        victim = self.replicas[1]
        d = ld.LoadDriver(self.gw.addr, rate=RATE, duration=6.0, deadline=DEADLINE, keys=64)
        watch = EjectWatch(self.admin_port, victim.addr)
        kinds = attempts_by_kind(self.admin_port)
        d.start()
        while d.elapsed() < 2.0:
            time.sleep(0.01)
        watch.start()
        time.sleep(0.05)  # the watch has seen the replica in before the kill
        self.assertIsNone(watch.out_at, "replica shown out before the kill: %r" % (watch.last,))
        victim.popen.kill()
        killed_at = time.monotonic()
        killed_el = d.elapsed()
        victim.wait_exit(5)
        res = d.wait()
        watch.stop()
        kinds = kinds_delta(kinds, attempts_by_kind(self.admin_port))
        eject_s = None if watch.out_at is None else watch.out_at - killed_at
        after = res.between(killed_el, None)
        report("kill9", "%s | after kill: calls=%d failed=%d p99=%.1fms | out after %s (polls %d, last %s)"
               " | gateway attempts by kind %s"
               % (res.summary_line("all"), after.count(), len(after.failed()), after.pct_ms(0.99),
                  "-" if eject_s is None else "%.3fs" % eject_s, watch.polls, json.dumps(watch.last),
                  json.dumps(kinds)))
        self.assertDriverKeptUp(res, "kill9")
        self.assertNoLate(res, "kill9")
        self.assertNoFailures(res, "kill9")
        self.assertIsNotNone(eject_s, "the killed replica never showed out in /debug/replicas "
                             "(last entry: %r)" % (watch.last,))
        self.assertLessEqual(eject_s, 1.0, "the killed replica showed out only after %.3f s" % eject_s)
        victim_id = victim.name[len("replica-"):]
        late_answers = [r for r in after.records if r.replica == victim_id and r.sent > killed_el + 0.1]
        self.assertEqual(late_answers, [], "answers from the killed replica after the kill")


class StopReplicaTest(ResilienceCase):
    HEDGE_MS = 50

    def test_sigstop_replica_hedged(self):
        self.bring_up(conf={"hedge_delay_ms": str(self.HEDGE_MS)})
        victim = self.replicas[1]
        self.addCleanup(lambda: victim.popen.poll() is None and victim.send_signal(signal.SIGCONT))
        stop_el = 3.0
        d = ld.LoadDriver(self.gw.addr, rate=RATE, duration=8.0, deadline=DEADLINE, keys=64)
        watch = EjectWatch(self.admin_port, victim.addr)
        kinds = attempts_by_kind(self.admin_port)
        d.start()
        while d.elapsed() < stop_el:
            time.sleep(0.005)
        watch.start()
        victim.send_signal(signal.SIGSTOP)
        stopped_at = time.monotonic()
        stop_el = d.elapsed()
        res = d.wait()
        watch.stop()
        kinds = kinds_delta(kinds, attempts_by_kind(self.admin_port))
        victim.send_signal(signal.SIGCONT)
        normal = res.between(0.5, stop_el)
        fault = res.between(stop_el, None)
        normal_p99 = normal.pct_ms(0.99)
        fault_p99 = fault.pct_ms(0.99)
        bound = self.HEDGE_MS + 2 * normal_p99
        out_s = None if watch.out_at is None else watch.out_at - stopped_at
        report("sigstop", "%s | normal p99=%.1fms, after stop p99=%.1fms p99.9=%.1fms, bound %d+2x%.1f=%.1fms"
               " | shown out after %s (%s) | gateway attempts by kind %s"
               % (res.summary_line("all"), normal_p99, fault_p99, fault.pct_ms(0.999), self.HEDGE_MS,
                  normal_p99, bound, "-" if out_s is None else "%.3fs" % out_s, json.dumps(watch.last),
                  json.dumps(kinds)))
        self.assertDriverKeptUp(res, "sigstop")
        self.assertNoLate(res, "sigstop")
        self.assertNoFailures(res, "sigstop")
        self.assertLess(fault_p99, bound, "p99 after SIGSTOP %.1f ms >= %d ms + 2 x %.1f ms"
                        % (fault_p99, self.HEDGE_MS, normal_p99))


class ErrorAfterHeadersTest(ResilienceCase):
    BAD = ("--error-fraction", "0.3", "--error-code", "UNAVAILABLE", "--error-after-headers")

    def run_case(self, case, gateway_args):
        self.bring_up(replica_args=((), self.BAD, ()), gateway_args=gateway_args)
        bad = self.replicas[1]
        time.sleep(0.3)
        injected0 = sum(1 for ev in bad.events("call") if ev.get("status") == "UNAVAILABLE")
        kinds = attempts_by_kind(self.admin_port)
        res = ld.LoadDriver(self.gw.addr, rate=RATE, duration=5.0, deadline=DEADLINE, keys=64).run()
        time.sleep(0.3)
        kinds = kinds_delta(kinds, attempts_by_kind(self.admin_port))
        injected = sum(1 for ev in bad.events("call") if ev.get("status") == "UNAVAILABLE") - injected0
        frac = res.success_fraction()
        report(case, "%s | success=%.4f UNAVAILABLE injected during the load=%d | gateway attempts "
               "by kind %s" % (res.summary_line("all"), frac, injected, json.dumps(kinds)))
        self.assertDriverKeptUp(res, case)
        self.assertNoLate(res, case)
        self.assertGreaterEqual(frac, 0.999, "only %.4f of calls succeeded:\n%s"
                                % (frac, "\n".join(res.failed_lines())))
        return injected

    def test_unavailable_in_trailers_30pct(self):
        # Outlier ejection off, so that the failing replica keeps its third
        # of the keys for the whole run and every one of its errors has to
        # be retried (with ejection on, a run of 5 errors takes it out).
        args = ("--outlier-failures", "0")
        injected = self.run_case("error30", args)
        self.assertGreaterEqual(injected, 50, "the replica injected only %d errors during the load: "
                                "the test proves nothing" % injected)

    def test_unavailable_in_trailers_30pct_default_ejection(self):
        # The same with the gateway's default health flags: the replica may
        # be ejected for a while; callers still see >= 99.9% succeed.
        self.run_case("error30-ejection", ())


class SlowTailTest(ResilienceCase):
    HEDGE_MS = 20

    def test_hedging_cuts_p99_of_slow_replica(self):
        # balance_factor 0: every call of a key goes to its ring owner (the
        # bounded-load walk would move some of them off the slow replica).
        self.bring_up(replica_args=((), ("--slow-fraction", "0.02", "--slow-ms", "200"), ()),
                      conf={"balance_factor": "0", "hedge_delay_ms": "off"})
        slow = self.replicas[1]
        slow_id = slow.name[len("replica-"):]
        keys = self.ring.keys_owned_by(slow.addr, 32, "tail")

        def phase(label):
            time.sleep(0.3)  # calls of the previous phase have logged
            before = sum(modelinfer_attempts(p) for p in self.replicas)
            kinds = attempts_by_kind(self.admin_port)
            res = ld.LoadDriver(self.gw.addr, rate=RATE, duration=5.0, deadline=DEADLINE,
                                keys=keys).run()
            time.sleep(0.5)  # hedges cancelled at the end have logged
            after = sum(modelinfer_attempts(p) for p in self.replicas)
            kinds = kinds_delta(kinds, attempts_by_kind(self.admin_port))
            attempts = after - before
            extra = (attempts - res.count()) / res.count()
            report("tail-" + label, "%s | upstream attempts=%d extra=%.2f%% | gateway attempts by kind %s"
                   % (res.summary_line(label), attempts, 100 * extra, json.dumps(kinds)))
            return res, extra

        off, extra_off = phase("off")
        self.conf_set("hedge_delay_ms", str(self.HEDGE_MS))
        on, extra_on = phase("fixed%d" % self.HEDGE_MS)
        p99_off, p99_on = off.pct_ms(0.99), on.pct_ms(0.99)
        report("tail", "p99 off=%.1fms on=%.1fms ratio=%.3f (<= 0.2), extra upstream calls on=%.2f%% "
               "(<= 5%%), off=%.2f%%; answered by the slow replica off=%d/%d"
               % (p99_off, p99_on, p99_on / p99_off, 100 * extra_on, 100 * extra_off,
                  off.by_replica().get(slow_id, 0), off.count()))
        for res, label in ((off, "tail-off"), (on, "tail-on")):
            self.assertDriverKeptUp(res, label)
            self.assertNoLate(res, label)
            self.assertNoFailures(res, label)
        # The set-up must show a tail to cut: the slow replica answered the
        # calls with hedging off, and 2% of them waited 200 ms.
        self.assertGreaterEqual(off.by_replica().get(slow_id, 0), 0.95 * off.count())
        self.assertGreater(p99_off, 150.0, "no tail with hedging off: the set-up is wrong")
        self.assertLessEqual(p99_on, p99_off / 5.0, "p99 with hedging %.1f ms > 1/5 of %.1f ms"
                             % (p99_on, p99_off))
        self.assertLessEqual(extra_on, 0.05, "extra upstream calls %.2f%% > 5%%" % (100 * extra_on))


class AllFailingTest(ResilienceCase):

    def test_every_replica_failing_no_storm(self):
        fail = ("--error-fraction", "1", "--error-code", "14")
        self.bring_up(replica_args=(fail, fail, fail))
        time.sleep(0.3)
        before = sum(modelinfer_attempts(p) for p in self.replicas)
        kinds = attempts_by_kind(self.admin_port)
        res = ld.LoadDriver(self.gw.addr, rate=200.0, duration=4.0, deadline=DEADLINE, keys=64).run()
        time.sleep(0.5)
        attempts = sum(modelinfer_attempts(p) for p in self.replicas) - before
        kinds = kinds_delta(kinds, attempts_by_kind(self.admin_port))
        calls = res.count()
        bound = 1.2 * calls + WORKERS * RETRY_BUDGET_MIN
        empty = [r for r in res.records if r.code == "UNAVAILABLE" and not (r.message or "").strip()]
        messages = sorted({r.message for r in res.records if r.code == "UNAVAILABLE"})[:3]
        report("allfail", "%s | upstream attempts=%d (%.3f per call), bound 1.2x%d+%dx%d=%.0f | "
               "gateway attempts by kind %s | messages %r"
               % (res.summary_line("all"), attempts, attempts / calls, calls, WORKERS, RETRY_BUDGET_MIN,
                  bound, json.dumps(kinds), messages))
        self.assertDriverKeptUp(res, "allfail")
        self.assertNoLate(res, "allfail")
        self.assertEqual(res.by_status(), {"UNAVAILABLE": calls})
        self.assertEqual(empty, [], "UNAVAILABLE without a message")
        self.assertLess(res.pct_ms(1.0), DEADLINE * 1e3, "a caller waited until its deadline")
        self.assertGreaterEqual(attempts, calls, "fewer upstream attempts than calls: counting is wrong")
        self.assertLessEqual(attempts, bound, "%d upstream attempts for %d calls: a retry storm"
                             % (attempts, calls))


if __name__ == "__main__":
    unittest.main()
