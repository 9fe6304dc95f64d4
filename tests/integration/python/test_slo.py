# SPDX-License-Identifier: Apache-2.0
"""Availability SLO, end to end: a gateway with --redis in front of 3 replicas.

  - `infergw-ctl conf set --pool demo slo_target 99.5` reaches the gateway's metrics as
    infergw_pool_slo_target{pool="demo"} 0.995 (the objective the SLO rules read);
  - one replica is stopped twice (SIGKILL, then restarted on the same port about 2 s later);
    the test polls /metrics to see when the gateway takes it for down and up again.
    `infergw-ctl status` (text and --json) and the metrics then show, for that replica,
    2 failures, 2 recoveries, an MTTR close to the outages the gateway saw (and within a
    tolerance of the ones the test caused), an MTBF, and an availability below 1 equal to
    MTBF / (MTBF + MTTR); the other replicas show no failure and availability 1.

Figures are printed on stderr as "TIMING <what> <seconds>"."""

import json
import re
import signal
import time
import unittest
import urllib.request

import harness as h

POOL = "demo"
DOWN_S = 2.0  # how long each outage lasts, kill to restart
GW_ARGS = ("--health-interval-ms", "100", "--health-timeout-ms", "100",
           "--healthy-threshold", "1", "--unhealthy-threshold", "1",
           "--redis-poll-ms", "200")


def metrics(port):
    with urllib.request.urlopen("http://127.0.0.1:%d/metrics" % port, timeout=5) as r:
        return r.read().decode()


def sample(text, name, **labels):
    """The value of series <name>{<labels>} in a scrape, or None."""
    want = ",".join('%s="%s"' % kv for kv in sorted(labels.items()))
    for line in text.splitlines():
        if line.startswith(name + "{"):
            lbl, _, val = line[len(name) + 1:].rpartition("} ")
            if ",".join(sorted(lbl.split(","))) == want:
                return float(val)
    return None


def replica_up(text, addr):
    """Up as the availability bookkeeping defines it: usable and not down."""
    def state(s):
        return sample(text, "infergw_replica_health", replica=addr, state=s)
    return (state("unhealthy") == 0 and state("not_serving") == 0 and state("ejected") == 0
            and state("down") == 0)


class SloTest(unittest.TestCase):
    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.redis = h.start_redis(name="redis-slo")
        self.addCleanup(self.redis.stop)
        self.url = h.redis_url(self.redis)
        self.replicas = []
        for i in range(3):
            p = h.start_replica("slo-r%d" % i, "--quiet")
            self.replicas.append(p)
        self.addCleanup(lambda: h.stop_all(self.replicas))
        h.run_ctl(self.url, "pool", "add", POOL)
        for r in self.replicas:
            h.run_ctl(self.url, "replica", "add", POOL, r.addr)
        self.admin = h.free_port()
        self.gw = h.start_gateway({}, "--redis", self.url, "--gateway-id", "slo-gw",
                                  "--admin", "127.0.0.1:%d" % self.admin, *GW_ARGS)
        self.addCleanup(self.gw.stop)

    def status_json(self):
        return json.loads(h.run_ctl(self.url, "--json", "status").stdout)

    def wait_state(self, addr, up, timeout):
        """Polls /metrics every 20 ms until the gateway sees <addr> up (or down); returns
        the monotonic time it first did, or None."""
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            if replica_up(metrics(self.admin), addr) == up:
                return time.monotonic()
            time.sleep(0.02)
        return None

    def test_objective_exported(self):
        ok = h.wait_for(lambda: sample(metrics(self.admin), "infergw_pool_slo_target",
                                       pool=POOL) == 0.999, 5)
        self.assertTrue(ok, "default objective not exported:\n%s" % metrics(self.admin))
        h.run_ctl(self.url, "conf", "set", "--pool", POOL, "slo_target", "99.5")
        ok = h.wait_for(lambda: sample(metrics(self.admin), "infergw_pool_slo_target",
                                       pool=POOL) == 0.995, 5)
        self.assertTrue(ok, "slo_target 99.5 not exported as 0.995")
        h.run_ctl(self.url, "conf", "set", "--pool", POOL, "slo_target", "100", expect=2)

    def test_replica_stopped_twice(self):
        victim = self.replicas[1]
        others = [r.addr for r in self.replicas if r is not victim]
        # Every replica up and reported before the first outage.
        ok = h.wait_for(lambda: all(replica_up(metrics(self.admin), r.addr)
                                    for r in self.replicas), 10)
        self.assertTrue(ok, "replicas not all up:\n%s" % metrics(self.admin))
        time.sleep(1.0)

        caused, seen = [], []
        for k in range(2):
            t_kill = time.monotonic()
            victim.popen.kill()
            victim.popen.wait(5)
            t_down = self.wait_state(victim.addr, False, 5)
            self.assertIsNotNone(t_down, "outage %d not noticed in 5 s" % (k + 1))
            time.sleep(max(0.0, t_kill + DOWN_S - time.monotonic()))
            t_restart = time.monotonic()
            victim = h.start_replica("slo-r1-back%d" % (k + 1), "--quiet", port=victim.port)
            self.replicas[1] = victim
            t_up = self.wait_state(victim.addr, True, 10)
            self.assertIsNotNone(t_up, "recovery %d not noticed in 10 s" % (k + 1))
            caused.append(t_restart - t_kill)
            seen.append(t_up - t_down)
            h.timing("slo_outage%d_caused" % (k + 1), caused[-1])
            h.timing("slo_outage%d_seen" % (k + 1), seen[-1])
            time.sleep(1.5)

        # The report is rewritten every 2 s: wait for one with both recoveries.
        def victim_avail():
            a = self.status_json().get("availability", {}).get(victim.addr, {}).get("slo-gw")
            return a if a and a["recoveries"] == 2 else None
        a = h.wait_for(victim_avail, 6, step=0.2)
        self.assertIsNotNone(a, "status shows no 2 recoveries: %s" % self.status_json())
        text = h.run_ctl(self.url, "status").stdout
        print("$ infergw-ctl status\n" + text)
        scrape = metrics(self.admin)

        mean_seen = sum(seen) / 2
        mean_caused = sum(caused) / 2
        h.timing("slo_mttr_status", a["mttr_s"])
        self.assertEqual(a["failures"], 2)
        self.assertEqual(a["recoveries"], 2)
        # MTTR: the gateway's own outages, as the test saw them through /metrics (20 ms
        # polls, a scrape per poll), and the ones the test caused (the gateway notices a
        # kill within a check interval, and a restart once its connect backoff, at most
        # 1.6 s by then, lets it retry).
        self.assertLess(abs(a["mttr_s"] - mean_seen), 0.4, (a, seen))
        self.assertGreater(a["mttr_s"], mean_caused - 0.5, (a, caused))
        self.assertLess(a["mttr_s"], mean_caused + 2.5, (a, caused))
        self.assertGreater(a["mtbf_s"], 1.0, a)
        self.assertLess(a["availability"], 1.0)
        self.assertGreater(a["availability"], 0.3)
        self.assertAlmostEqual(a["availability"], a["mtbf_s"] / (a["mtbf_s"] + a["mttr_s"]),
                               delta=0.002)
        # The text table has a row for the victim with the same figures.
        row = re.search(r"^%s\s+slo-gw\s+(\d+)\s+([\d.]+)s\s+([\d.]+)s\s+([\d.]+)$"
                        % re.escape(victim.addr), text, re.M)
        self.assertIsNotNone(row, text)
        self.assertEqual(int(row.group(1)), 2)
        self.assertAlmostEqual(float(row.group(3)), a["mttr_s"], delta=0.002)

        # The metrics agree (MTTR only changes when an outage ends; MTBF and availability
        # grow with the time up since the report).
        self.assertEqual(sample(scrape, "infergw_replica_failures_total", replica=victim.addr), 2)
        self.assertAlmostEqual(sample(scrape, "infergw_replica_mttr_seconds",
                                      replica=victim.addr), a["mttr_s"], delta=0.002)
        m_avail = sample(scrape, "infergw_replica_availability", replica=victim.addr)
        self.assertLess(m_avail, 1.0)
        self.assertAlmostEqual(m_avail, a["availability"], delta=0.05)
        self.assertGreaterEqual(sample(scrape, "infergw_replica_mtbf_seconds",
                                       replica=victim.addr), a["mtbf_s"] - 0.002)
        for addr in others:
            self.assertEqual(sample(scrape, "infergw_replica_failures_total", replica=addr), 0)
            self.assertEqual(sample(scrape, "infergw_replica_availability", replica=addr), 1.0)
            self.assertEqual(self.status_json()["availability"][addr]["slo-gw"]["failures"], 0)


if __name__ == "__main__":
    unittest.main()
