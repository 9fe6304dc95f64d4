# SPDX-License-Identifier: Apache-2.0
"""Prometheus acceptance: the rules of deploy/prometheus pass promtool (syntax and their unit
tests), a scrape taken under load with fault injection passes `promtool check metrics`, a real
Prometheus server on loopback scrapes the gateway and answers a query with the call counter the
client counted (and evaluates every rule of infergw-rules.yml without error), and after runs
with known outcomes each counter equals what the client and the replicas counted: calls by
status, attempts per replica (the replicas' call and cancelled log lines), retries (the call
lines carrying grpc-previous-rpc-attempts), hedges and hedges won (the slow replica's
cancellations), hedges refused for want of deadline (one per call too short for a hedge),
outlier ejections (the gateway's replica_ejected log lines); and that
InfergwReplicaDown, evaluated live, pages for a dead replica of the ring and not for one taken
off it."""

import collections
import concurrent.futures
import json
import os
import shutil
import subprocess
import threading
import time
import unittest
import urllib.parse

import grpc

import harness as h

RULES_DIR = os.path.join(h.SOURCE_DIR, "deploy", "prometheus")
RULES = os.path.join(RULES_DIR, "infergw-rules.yml")
RULES_TEST = os.path.join(RULES_DIR, "infergw-rules.test.yml")
CONFIG = os.path.join(RULES_DIR, "prometheus.yml")
INFER = "/inference.GRPCInferenceService/ModelInfer"


def promtool():
    path = shutil.which("promtool")
    if not path:
        raise AssertionError("promtool not found: apt-get install prometheus (tests/run.sh does)")
    return path


def run_promtool(*args, stdin=None, cwd=None):
    """(exit code, stdout + stderr) of promtool <args>."""
    r = subprocess.run([promtool()] + list(args), input=stdin, cwd=cwd, timeout=60,
                       stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
    return r.returncode, r.stdout.decode("utf-8", "replace")


def http_get(port, path, timeout=5):
    """h.http_get, or (0, "") when nothing answers (Prometheus still starting)."""
    try:
        return h.http_get(port, path, timeout)
    except OSError:
        return 0, ""


def infer_events(replica, event):
    """The replica's <event> log lines ("call" or "cancelled") of ModelInfer calls: the
    gateway's active health checks (grpc.health.v1 Check) are logged too, and are not
    upstream attempts."""
    return [e for e in replica.events(event) if e.get("method") == INFER]


def total(samples, name, **match):
    """Sum of <name> over the samples whose labels include <match> (0 when none do)."""
    return h.metric_sum(samples, name, **match) or 0.0


class RulesTest(unittest.TestCase):
    """The files of deploy/prometheus as promtool sees them."""

    def test_check_rules(self):
        code, out = run_promtool("check", "rules", RULES)
        print("$ promtool check rules deploy/prometheus/infergw-rules.yml\n" + out)
        self.assertEqual(code, 0, out)
        self.assertIn("SUCCESS", out)

    def test_rules_unit_tests(self):
        """Synthetic series make every alert fire (and others next to them not fire)."""
        code, out = run_promtool("test", "rules", "infergw-rules.test.yml", cwd=RULES_DIR)
        print("$ promtool test rules deploy/prometheus/infergw-rules.test.yml\n" + out)
        self.assertEqual(code, 0, out)
        self.assertIn("SUCCESS", out)

    def test_every_alert_is_tested_and_documented(self):
        """Each alert has severity, summary, description and runbook, and the unit tests have
        a case where it fires and one where it does not."""
        with open(RULES) as f:
            rules = f.read()
        with open(RULES_TEST) as f:
            tests = f.read()
        alerts = [line.split(":", 1)[1].strip() for line in rules.splitlines()
                  if line.strip().startswith("- alert:")]
        self.assertGreaterEqual(len(alerts), 8)
        for name in alerts:
            block = rules.split("- alert: " + name, 1)[1].split("- alert:", 1)[0]
            for field in ("severity:", "summary:", "description:", "runbook:"):
                self.assertIn(field, block, "%s has no %s" % (name, field))
            fired = [t for t in tests.split("alertname: " + name)[1:]
                     if t.split("\n", 2)[1].strip().startswith("exp_alerts:")
                     and "exp_labels" in t.split("alertname:", 1)[0]]
            self.assertTrue(fired, "no unit test makes %s fire" % name)
            quiet = [t for t in tests.split("alertname: " + name)[1:]
                     if t.split("\n", 2)[1].strip() == "exp_alerts: []"]
            self.assertTrue(quiet, "no unit test checks that %s stays quiet" % name)

    def test_check_config(self):
        code, out = run_promtool("check", "config", CONFIG)
        print("$ promtool check config deploy/prometheus/prometheus.yml\n" + out)
        self.assertEqual(code, 0, out)


class PrometheusServer:
    """A prometheus on a free loopback port with its own data dir, scraping <targets>
    (admin host:port) every second as job "infergw" and evaluating infergw-rules.yml."""

    def __init__(self, targets):
        self.port = h.free_port()
        self.dir = os.path.join(h.WORK_DIR, "%d-prometheus-%d" % (os.getpid(), self.port))
        os.makedirs(os.path.join(self.dir, "data"), exist_ok=True)
        conf = os.path.join(self.dir, "prometheus.yml")
        with open(conf, "w") as f:
            f.write("global:\n  scrape_interval: 1s\n  scrape_timeout: 1s\n"
                    "  evaluation_interval: 1s\n"
                    "rule_files:\n  - %s\n"
                    "scrape_configs:\n  - job_name: infergw\n    static_configs:\n"
                    "      - targets: [%s]\n"
                    % (json.dumps(RULES), ", ".join('"%s"' % t for t in targets)))
        binary = shutil.which("prometheus")
        if not binary:
            raise AssertionError("prometheus not found: apt-get install prometheus")
        argv = [binary, "--config.file=" + conf,
                "--storage.tsdb.path=" + os.path.join(self.dir, "data"),
                "--storage.tsdb.retention.time=1h",
                "--web.listen-address=127.0.0.1:%d" % self.port,
                "--log.level=warn"]
        self.proc = h.Proc("prometheus", argv, self.port)
        end = time.monotonic() + 30
        while http_get(self.port, "/-/ready", timeout=1)[0] != 200:
            if self.proc.popen.poll() is not None or time.monotonic() > end:
                self.proc.stop(expect_code=None)
                raise AssertionError("prometheus not ready; log:\n" + self.proc.tail())
            time.sleep(0.1)

    def query(self, expr):
        """The result list of an instant query, or None when it failed."""
        status, body = http_get(self.port, "/api/v1/query?" + urllib.parse.urlencode(
            {"query": expr}))
        if status != 200:
            return None
        doc = json.loads(body)
        return doc["data"]["result"] if doc.get("status") == "success" else None

    def rules(self):
        status, body = http_get(self.port, "/api/v1/rules")
        return json.loads(body)["data"]["groups"] if status == 200 else None

    def stop(self):
        self.proc.stop(timeout=20)


class Load:
    """ModelInfer calls from <threads> threads for <seconds> (at most <cap> calls each), each
    with its own routing key; counts the status codes and answering replicas the client saw."""

    def __init__(self, target, threads=4, seconds=2.5, cap=3000, timeout=5.0):
        self.codes = collections.Counter()
        self.answered = collections.Counter()
        self.calls = 0
        self._lock = threading.Lock()
        self._ch = h.channel(target)
        self._stub = h.infer_stub(self._ch)
        self._end = None
        self.seconds, self.cap, self.timeout = seconds, cap, timeout
        self._threads = [threading.Thread(target=self._run, args=(i,), daemon=True)
                         for i in range(threads)]
        self.running = threading.Event()

    def _run(self, i):
        req = h.typed_request([1.0, 2.0, 3.0])
        for n in range(self.cap):
            if time.monotonic() >= self._end:
                break
            try:
                resp, call = self._stub.ModelInfer.with_call(
                    req, timeout=self.timeout, metadata=[("x-route-key", "t%d-%d" % (i, n))])
                ok = list(resp.outputs[0].contents.fp32_contents) == [3.0, 5.0, 7.0]
                code = "OK" if ok else "WRONG_ANSWER"
                rid = h.replica_of(call)
            except grpc.RpcError as e:
                code, rid = e.code().name, None
            with self._lock:
                self.calls += 1
                self.codes[code] += 1
                self.answered[rid] += 1

    def run(self):
        self._end = time.monotonic() + self.seconds
        self.running.set()
        for t in self._threads:
            t.start()
        for t in self._threads:
            t.join(self.seconds + self.timeout + 10)
            assert not t.is_alive(), "load thread stuck"
        self.running.clear()
        self._ch.close()
        return self


class _ClusterCase(unittest.TestCase):
    def setUp(self):
        self.procs = []
        self.addCleanup(lambda: h.stop_all(self.procs))

    def scrape(self):
        status, body = http_get(self.admin_port, "/metrics")
        self.assertEqual(status, 200, body)
        return body

    def settle_logs(self, replicas, attempts_by_replica, timeout=10.0):
        """Waits until each replica has logged a call or cancelled line per attempt the
        gateway counted for it (lines are written when a call is freed)."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if all(len(infer_events(r, "call")) + len(infer_events(r, "cancelled"))
                   >= attempts_by_replica.get(r.addr, 0) for r in replicas):
                return
            time.sleep(0.05)


@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class ScrapeUnderLoadTest(_ClusterCase):
    """Three replicas, r0 failing 30% of its calls with UNAVAILABLE after headers (so the
    gateway retries them elsewhere), a gateway, and a Prometheus server scraping it."""

    def test_scrape_under_load(self):
        self.reps = [h.start_replica("r0", "--error-fraction", "0.3", "--error-code", "UNAVAILABLE",
                                     "--error-after-headers", "--seed", "7"),
                     h.start_replica("r1"), h.start_replica("r2")]
        self.procs += self.reps
        self.admin_port = h.free_port()
        # --outlier-failures 10: with the default 5, r0 (failing 30%) is ejected for 10 s
        # after five failures in a row, which can come within its first dozen calls and
        # leave the run with too few failures to count; ten in a row (0.3^10 a call) still
        # happens now and then, and whenever it does r0 has failed at least ten times.
        gw = h.start_gateway({"demo": [r.addr for r in self.reps]},
                             "--admin", "127.0.0.1:%d" % self.admin_port,
                             "--outlier-failures", "10")
        self.procs.insert(0, gw)  # stopped first
        prom = PrometheusServer(["127.0.0.1:%d" % self.admin_port])
        self.procs.insert(0, prom)
        # Scraping before the load starts, so that its scrapes see the counters grow.
        end = time.monotonic() + 20
        while not [x for x in prom.query('up{job="infergw"}') or [] if x["value"][1] == "1"]:
            self.assertLess(time.monotonic(), end, "prometheus never scraped the gateway")
            time.sleep(0.2)

        # Load, with /metrics scraped while it runs.
        load = Load(gw.addr)
        during = []

        def scraper():
            load.running.wait(5)
            while load.running.is_set() and len(during) < 50:
                time.sleep(0.3)
                status, body = http_get(self.admin_port, "/metrics")
                if status == 200 and load.running.is_set():
                    during.append(body)

        st = threading.Thread(target=scraper, daemon=True)
        st.start()
        load.run()
        st.join(10)
        print("client: %d calls, codes %s, answered by %s"
              % (load.calls, dict(load.codes), dict(load.answered)))
        self.assertGreater(load.calls, 100)
        self.assertTrue(during, "no scrape taken during the load")

        # 1. promtool check metrics accepts a scrape taken under load (the last one taken
        #    while calls were running, so every family has samples).
        text = during[-1]
        self.assertGreater(total(h.metric_samples(text), "infergw_calls_total"), 0)
        code, out = run_promtool("check", "metrics", stdin=text.encode())
        print("$ curl -s http://127.0.0.1:%d/metrics | promtool check metrics  (under load, "
              "%d lines)\n%s(exit %d)" % (self.admin_port, len(text.splitlines()), out, code))
        self.assertEqual(code, 0, out)
        self.assertEqual(out.strip(), "", out)
        # ... and it held every family the rules read (auth and rate-limit counters aside).
        names = {n for n, _, _ in h.metric_samples(text)}
        for name in ("infergw_calls_total", "infergw_call_duration_seconds_bucket",
                     "infergw_upstream_attempts_total", "infergw_replica_reachable",
                     "infergw_replica_health", "infergw_replica_ejections_total",
                     "infergw_retries_refused_total", "infergw_hedges_refused_total"):
            self.assertIn(name, names)

        # 2. Counters after the run equal what the client and the replicas counted.
        s = h.metric_samples(self.scrape())
        by_replica = {r.addr: total(s, "infergw_upstream_attempts_total", replica=r.addr)
                      for r in self.reps}
        self.settle_logs(self.reps, by_replica)
        s = h.metric_samples(self.scrape())
        calls = total(s, "infergw_calls_total", pool="demo", method=INFER)
        self.assertEqual(calls, load.calls)
        self.assertEqual(total(s, "infergw_calls_total"), load.calls)
        for code_name, n in load.codes.items():
            self.assertEqual(total(s, "infergw_calls_total", code=code_name), n, code_name)
        self.assertEqual(total(s, "infergw_call_duration_seconds_count", pool="demo"), load.calls)
        # One primary attempt per call.
        self.assertEqual(total(s, "infergw_upstream_attempts_total", kind="primary"), load.calls)
        retried_lines = 0
        for r in self.reps:
            lines = infer_events(r, "call")
            cancelled = infer_events(r, "cancelled")
            attempts = total(s, "infergw_upstream_attempts_total", replica=r.addr)
            self.assertEqual(attempts, len(lines) + len(cancelled), r.name)
            self.assertEqual(total(s, "infergw_upstream_attempts_total", replica=r.addr,
                                   outcome="CANCELLED"), len(cancelled), r.name)
            for st_name in ("OK", "UNAVAILABLE"):
                self.assertEqual(total(s, "infergw_upstream_attempts_total", replica=r.addr,
                                       outcome=st_name),
                                 len([e for e in lines if e.get("status") == st_name]),
                                 "%s %s" % (r.name, st_name))
            retried_lines += len([e for e in lines if e.get("previous_attempts")])
        failed_r0 = len([e for e in infer_events(self.reps[0], "call")
                         if e.get("status") == "UNAVAILABLE"])
        self.assertGreaterEqual(failed_r0, 10, "fault injection made too few failures")
        retries = total(s, "infergw_upstream_attempts_total", kind="retry")
        print("gateway: %d calls, %d primary + %d retry attempts; replicas logged %s call lines, "
              "%d with previous_attempts; r0 failed %d"
              % (calls, total(s, "infergw_upstream_attempts_total", kind="primary"), retries,
                 [len(infer_events(r, "call")) for r in self.reps], retried_lines, failed_r0))
        self.assertEqual(retries, retried_lines)
        self.assertGreater(retries, 0)
        # Every failure of r0 was retried (budget 20% + 10 is far from spent) and answered.
        refused = total(s, "infergw_retries_refused_total")
        self.assertEqual(retries + refused, failed_r0)
        self.assertEqual(load.codes["OK"] + load.codes["UNAVAILABLE"], load.calls)
        self.assertEqual(load.codes["UNAVAILABLE"], refused)
        self.assertEqual(load.answered.get("r0", 0), len(
            [e for e in infer_events(self.reps[0], "call") if e.get("status") == "OK"]))
        # Outlier ejections (r0 may fail often enough in a row): as the gateway logged them.
        ejected = collections.Counter(e.get("replica") for e in gw.events("replica_ejected"))
        print("ejections logged: %s" % dict(ejected))
        for r in self.reps:
            self.assertEqual(total(s, "infergw_replica_ejections_total", replica=r.addr),
                             ejected.get(r.addr, 0), r.name)

        # 3. The Prometheus server: the call counter as the client counted it.
        result, want, end = None, float(load.calls), time.monotonic() + 30
        while time.monotonic() < end:
            result = prom.query("infergw_calls_total")
            if result and sum(float(x["value"][1]) for x in result) == want:
                break
            time.sleep(0.5)
        got = sum(float(x["value"][1]) for x in result or [])
        print("prometheus /api/v1/query?query=infergw_calls_total -> %s"
              % json.dumps([{"metric": x["metric"], "value": x["value"][1]}
                            for x in result or []]))
        self.assertEqual(got, want)
        self.assertTrue(all(x["metric"].get("job") == "infergw" for x in result))
        up = prom.query('up{job="infergw"}')
        self.assertEqual([x["value"][1] for x in up], ["1"])

        # 4. Every rule of infergw-rules.yml evaluates against the real series without error,
        #    and the recording rules see the attempts. The primary attempts grow through the
        #    whole load, so their rate is positive. The retry series must exist, but its rate
        #    may be 0: a series created between two scrapes (r0 is ejected within seconds, so
        #    its retries come in a burst) is first seen at its final value, and rate() sees no
        #    increase in it.
        end, rec = time.monotonic() + 20, {}
        while time.monotonic() < end:
            rec = {x["metric"].get("kind"): float(x["value"][1])
                   for x in prom.query("job_kind:infergw_upstream_attempts:rate5m") or []}
            if rec.get("primary", 0) > 0 and "retry" in rec:
                break
            time.sleep(0.5)
        self.assertGreater(rec.get("primary", 0), 0, rec)
        self.assertIn("retry", rec)
        groups = prom.rules()
        self.assertTrue(groups)
        bad = [(r["name"], r.get("health"), r.get("lastError")) for g in groups
               for r in g["rules"] if r.get("health") != "ok"]
        self.assertEqual(bad, [])
        print("prometheus: %d rules evaluated, all healthy; attempts/s (5m) by kind = %s"
              % (sum(len(g["rules"]) for g in groups), rec))


@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class ReplicaDownAlertTest(_ClusterCase):
    """InfergwReplicaDown, live: of three replicas, b is taken off the ring with infergw-ctl
    and stopped (the gateway still exports it as unreachable), c is stopped while still on the
    ring. Prometheus, evaluating infergw-rules.yml, holds a pending alert for c only."""

    def test_replica_down_pending_for_the_dead_replica_only(self):
        a, b, c = (h.start_replica(n) for n in ("a", "b", "c"))
        self.procs += [a, b, c]
        redis = h.start_redis()
        self.procs.append(redis)
        url = h.redis_url(redis)
        h.run_ctl(url, "pool", "add", "demo")
        for r in (a, b, c):
            h.run_ctl(url, "replica", "add", "demo", r.addr)
        self.admin_port = h.free_port()
        gw = h.start_gateway({}, "--redis", url, "--admin", "127.0.0.1:%d" % self.admin_port)
        self.procs.insert(0, gw)
        gw.wait_event(lambda e: True, timeout=5, event="config_applied")
        ch = h.channel(gw.addr)
        self.addCleanup(ch.close)
        stub = h.infer_stub(ch)
        for i in range(30):  # connections up to every replica
            stub.ModelInfer(h.typed_request([1.0]), metadata=[("x-route-key", "k%d" % i)],
                            timeout=5)
        v = h.ctl_version(h.run_ctl(url, "replica", "remove", "demo", b.addr).stdout)
        self.assertIsNotNone(v)
        self.assertTrue(gw.wait_event(lambda e: e.get("version", 0) >= v, timeout=10,
                                      event="config_applied"))
        b.stop()
        c.stop()
        prom = PrometheusServer(["127.0.0.1:%d" % self.admin_port])
        self.procs.insert(0, prom)

        def down_alerts():
            for g in prom.rules() or []:
                for r in g["rules"]:
                    if r["name"] == "InfergwReplicaDown":
                        return {x["labels"]["replica"]: x["state"] for x in r.get("alerts", [])}
            return None

        end, alerts = time.monotonic() + 30, None
        while time.monotonic() < end:
            s = h.metric_samples(self.scrape())
            gone = {addr for addr in (b.addr, c.addr)
                    if total(s, "infergw_replica_reachable", replica=addr) == 0}
            alerts = down_alerts()
            if gone == {b.addr, c.addr} and alerts and c.addr in alerts:
                break
            time.sleep(0.5)
        time.sleep(3)  # a few more evaluations with both replicas unreachable
        alerts = down_alerts()
        print("exported unreachable: %s; InfergwReplicaDown alerts: %s" % (sorted(gone), alerts))
        self.assertEqual(gone, {b.addr, c.addr})
        self.assertEqual(alerts, {c.addr: "pending"})


@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class HedgeCountersTest(_ClusterCase):
    """r0 answers after 1 s, r1 and r2 at once; pool demo hedges after 50 ms with a budget of
    every call (tunables through infergw-ctl and Redis). Every call whose first replica is r0
    is hedged, the hedge wins, and r0 sees its attempt cancelled."""

    def start_cluster(self, reps, tunables, *gateway_args):
        """Replicas <reps> in pool demo with <tunables> (through infergw-ctl and a Redis of
        its own), and a gateway on that Redis with an admin port; returns the gateway."""
        self.reps = reps
        self.procs += self.reps
        redis = h.start_redis()
        self.procs.append(redis)
        url = h.redis_url(redis)
        h.run_ctl(url, "pool", "add", "demo")
        for r in self.reps:
            h.run_ctl(url, "replica", "add", "demo", r.addr)
        for k, v in tunables:
            h.run_ctl(url, "conf", "set", "--pool", "demo", k, str(v))
        self.admin_port = h.free_port()
        gw = h.start_gateway({}, "--redis", url, "--admin", "127.0.0.1:%d" % self.admin_port,
                             *gateway_args)
        self.procs.insert(0, gw)
        gw.wait_event(lambda e: True, timeout=5, event="config_applied")
        return gw

    def test_hedges_counted(self):
        gw = self.start_cluster([h.start_replica("r0", "--latency-ms", "1000"),
                                 h.start_replica("r1"), h.start_replica("r2")],
                                (("hedge_delay_ms", 50), ("hedge_budget_percent", 100),
                                 ("balance_factor", 0)))

        load = Load(gw.addr, threads=3, seconds=2.0, cap=400).run()
        print("client: %d calls, codes %s, answered by %s"
              % (load.calls, dict(load.codes), dict(load.answered)))
        self.assertEqual(load.codes["OK"], load.calls)
        self.assertEqual(load.answered.get("r0", 0), 0)

        s = h.metric_samples(self.scrape())
        by_replica = {r.addr: total(s, "infergw_upstream_attempts_total", replica=r.addr)
                      for r in self.reps}
        self.settle_logs(self.reps, by_replica)
        s = h.metric_samples(self.scrape())
        hedges = total(s, "infergw_upstream_attempts_total", kind="hedge")
        won = total(s, "infergw_hedges_won_total")
        r0_cancelled = len(infer_events(self.reps[0], "cancelled"))
        hedge_lines = sum(len([e for e in infer_events(r, "call") if e.get("previous_attempts")])
                          for r in self.reps[1:])
        print("gateway: %d calls, %d hedge attempts, %d hedges won, %d refused; r0 cancelled "
              "%d, r1+r2 call lines with previous_attempts %d"
              % (total(s, "infergw_calls_total"), hedges, won,
                 total(s, "infergw_hedges_refused_total"), r0_cancelled, hedge_lines))
        self.assertEqual(total(s, "infergw_calls_total", code="OK"), load.calls)
        self.assertGreater(hedges, 5, "too few calls went to r0 first")
        self.assertEqual(hedges, won)
        self.assertEqual(won, r0_cancelled)
        self.assertEqual(hedges, hedge_lines)
        self.assertEqual(total(s, "infergw_upstream_attempts_total", kind="retry"), 0)
        self.assertEqual(total(s, "infergw_hedges_refused_total"), 0)
        self.assertEqual(total(s, "infergw_upstream_attempts_total", kind="primary"), load.calls)
        for r in self.reps:
            self.assertEqual(total(s, "infergw_upstream_attempts_total", replica=r.addr),
                             len(infer_events(r, "call")) + len(infer_events(r, "cancelled")),
                             r.name)
        self.assertEqual(total(s, "infergw_upstream_attempts_total", replica=self.reps[0].addr,
                               outcome="CANCELLED"), r0_cancelled)

    def test_hedges_refused_for_deadline(self):
        """Both replicas answer after 200 ms; pool demo hedges after 100 ms. Once the pool's
        median call (200 ms, from 60 calls with time to spare) is known, a call with a 280 ms
        deadline has 180 ms left when its hedge is due: too little for a median call, so the
        hedge is not sent and counted as refused for the deadline; the call itself is
        answered in time by its first replica."""
        gw = self.start_cluster([h.start_replica("r0", "--latency-ms", "200"),
                                 h.start_replica("r1", "--latency-ms", "200")],
                                (("hedge_delay_ms", 100), ("hedge_budget_percent", 100)),
                                "--workers", "1")  # one worker: one latency estimate

        def refused(reason):
            return total(h.metric_samples(self.scrape()), "infergw_hedges_refused_total",
                         reason=reason)

        def hedges():
            return total(h.metric_samples(self.scrape()), "infergw_upstream_attempts_total",
                         kind="hedge")

        stub = h.infer_stub(h.channel(gw.addr))
        req = h.typed_request([1.0, 2.0, 3.0])

        def calls(n, timeout):
            with concurrent.futures.ThreadPoolExecutor(10) as ex:
                futs = [ex.submit(stub.ModelInfer, req, timeout=timeout,
                                  metadata=[("x-route-key", "d%d-%d" % (timeout * 1000, i))])
                        for i in range(n)]
                return collections.Counter(
                    "OK" if not f.exception() else f.exception().code().name for f in futs)

        warm = calls(60, 5.0)
        self.assertEqual(warm, {"OK": 60})
        self.assertEqual(refused("deadline"), 0)
        hedged = hedges()
        print("warm-up: 60 calls, %d hedged (each hedge also waits 200 ms)" % hedged)
        got = calls(20, 0.28)
        print("20 calls with a 280 ms deadline: %s; hedges refused for the deadline %d, "
              "hedges sent %d" % (dict(got), refused("deadline"), hedges() - hedged))
        self.assertEqual(refused("deadline"), 20)
        self.assertEqual(hedges(), hedged)
        self.assertEqual(refused("budget"), 0)
        self.assertGreater(got["OK"], 10, got)


if __name__ == "__main__":
    unittest.main()
