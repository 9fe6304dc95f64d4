# SPDX-License-Identifier: Apache-2.0
"""The admin endpoint's live status page (/ and /status.json): the JSON's
shape, the headers (content types, a Content-Security-Policy that allows
only the page's own files), read-only methods, and the page itself loaded in
a real browser (headless Chromium: --dump-dom, and the DevTools protocol over
--remote-debugging-pipe to click): the pool, each replica and its state (a
stopped replica shows as down), and a pool of 1,000 replicas shown a page of
50 rows at a time, the next page and the state filter clicked through.

INFERGW_STATUS_SCREENSHOT=<file.png> also saves a screenshot of the page
with one replica down (docs/status-page.png is made that way)."""

import fcntl
import html.parser
import json
import os
import shutil
import subprocess
import tempfile
import time
import unittest
import urllib.error
import urllib.request

import grpc

from harness import (DIRECT, WORK_DIR, channel, free_port, http_json, infer_stub, start_gateway,
                     start_replica, stop_all, typed_request, values)

CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
BAD_STATES = ("down", "ejected", "unhealthy")


def http(port, path, method="GET"):
    """(status, headers, body bytes) of <method> http://127.0.0.1:<port><path>
    (harness.http_get tells neither the headers nor other methods)."""
    req = urllib.request.Request("http://127.0.0.1:%d%s" % (port, path), method=method)
    try:
        with urllib.request.urlopen(req, timeout=10) as r:
            return r.status, r.headers, r.read()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read()


def status_json(port):
    return http_json(port, "/status.json")


class Dom(html.parser.HTMLParser):
    """The elements of a dumped DOM that the checks need: pools (data-pool),
    replica rows (data-addr, data-state) and the pager's range text."""

    def __init__(self):
        super().__init__()
        self.pools, self.rows, self.ranges, self.scripts = [], [], [], 0
        self._range = False

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag == "script":
            self.scripts += 1
        if "data-pool" in a:
            self.pools.append(a["data-pool"])
        if tag == "tr" and "data-addr" in a:
            self.rows.append((a["data-addr"], a.get("data-state")))
        self._range = tag == "span" and a.get("class") == "range"

    def handle_data(self, data):
        if self._range:
            self.ranges.append(data)
            self._range = False


def chromium(url, *extra):
    """Runs headless Chromium on <url> with a throwaway profile; returns stdout.
    A missing chromium fails the test (tests/run.sh installs it)."""
    assert CHROMIUM, "chromium not installed (apt-get install chromium)"
    profile = tempfile.mkdtemp(prefix="chromium-", dir=WORK_DIR)
    try:
        out = subprocess.run(
            [CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--user-data-dir=" + profile, "--virtual-time-budget=8000"] + list(extra) + [url],
            capture_output=True, timeout=90, check=True)
        return out.stdout.decode()
    finally:
        shutil.rmtree(profile, ignore_errors=True)


class Browser:
    """Headless Chromium driven over the DevTools protocol on a pipe
    (--remote-debugging-pipe: JSON messages ended by a NUL byte, written to
    its fd 3 and read from its fd 4), to click through a page."""

    def __init__(self, url):
        assert CHROMIUM, "chromium not installed (apt-get install chromium)"
        self.profile = tempfile.mkdtemp(prefix="chromium-", dir=WORK_DIR)
        to_r, self.to_w = os.pipe()
        self.from_r, from_w = os.pipe()
        # Above any descriptor the child's 3 and 4 could clobber.
        hi_r, hi_w = fcntl.fcntl(to_r, fcntl.F_DUPFD, 100), fcntl.fcntl(from_w, fcntl.F_DUPFD, 100)
        os.close(to_r)
        os.close(from_w)

        def fds():  # the child's fd 3 reads our messages, fd 4 takes its answers
            os.dup2(hi_r, 3)
            os.dup2(hi_w, 4)

        self.proc = subprocess.Popen(
            [CHROMIUM, "--headless=new", "--disable-gpu", "--no-sandbox", "--no-first-run",
             "--disable-extensions", "--disable-background-networking", "--disable-sync",
             "--user-data-dir=" + self.profile, "--remote-debugging-pipe", "about:blank"],
            stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
            preexec_fn=fds, pass_fds=(3, 4))
        os.close(hi_r)
        os.close(hi_w)
        self.buf, self.next_id, self.session = b"", 0, None
        target = self.call("Target.createTarget", url=url)["targetId"]
        self.session = self.call("Target.attachToTarget", targetId=target,
                                 flatten=True)["sessionId"]

    def call(self, method, **params):
        self.next_id += 1
        msg = {"id": self.next_id, "method": method, "params": params}
        if self.session and not method.startswith("Target."):
            msg["sessionId"] = self.session
        os.write(self.to_w, json.dumps(msg).encode() + b"\0")
        end = time.monotonic() + 30
        while time.monotonic() < end:
            while b"\0" in self.buf:
                raw, self.buf = self.buf.split(b"\0", 1)
                reply = json.loads(raw)
                if reply.get("id") == self.next_id:
                    assert "error" not in reply, reply
                    return reply["result"]
            chunk = os.read(self.from_r, 65536)
            assert chunk, "chromium closed the pipe"
            self.buf += chunk
        raise AssertionError("no answer to %s" % method)

    def eval(self, expr):
        r = self.call("Runtime.evaluate", expression=expr, returnByValue=True)
        assert "exceptionDetails" not in r, r
        return r["result"].get("value")

    def wait(self, expr, timeout=15.0):
        end = time.monotonic() + timeout
        while time.monotonic() < end:
            v = self.eval(expr)
            if v:
                return v
            time.sleep(0.2)
        raise AssertionError("never true in the page: %s" % expr)

    def close(self):
        try:
            self.call("Browser.close")
        except (AssertionError, OSError):
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        os.close(self.to_w)
        os.close(self.from_r)
        shutil.rmtree(self.profile, ignore_errors=True)


def load_dom(port):
    dom = Dom()
    dom.feed(chromium("http://127.0.0.1:%d/" % port, "--dump-dom"))
    return dom


@unittest.skipIf(DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class StatusPageTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.addClassCleanup(lambda: stop_all(cls.procs))
        cls.reps = [start_replica("status-%d" % i, "--quiet") for i in range(3)]
        cls.procs.extend(cls.reps)
        cls.admin = free_port()
        cls.gateway = start_gateway({"demo": [r.addr for r in cls.reps]},
                                    "--admin", "127.0.0.1:%d" % cls.admin,
                                    "--health-interval-ms", "300", "--health-timeout-ms", "250")
        cls.procs.insert(0, cls.gateway)
        cls.ch = channel(cls.gateway.addr)
        cls.addClassCleanup(cls.ch.close)
        cls.stub = infer_stub(cls.ch)
        cls.infer(30)
        # One replica stops: the health checker finds it down.
        cls.dead = cls.reps[2]
        cls.dead.stop()
        cls.procs.remove(cls.dead)
        end = time.monotonic() + 15
        while time.monotonic() < end and cls.state_of(cls.dead.addr) not in BAD_STATES:
            time.sleep(0.2)
        cls.infer(30)

    @classmethod
    def infer(cls, n):
        for i in range(n):
            try:
                cls.stub.ModelInfer(typed_request(values(4, i), rid="k%d" % i), timeout=5)
            except grpc.RpcError:
                pass

    @classmethod
    def state_of(cls, addr):
        for r in status_json(cls.admin)["pools"][0]["replicas"]:
            if r["address"] == addr:
                return r["state"]
        return None

    def test_json_shape(self):
        d = status_json(self.admin)
        for k in ("now_ms", "started_ms", "version", "workers", "period_ms", "samples",
                  "control", "config_versions", "pools"):
            self.assertIn(k, d)
        self.assertIsNone(d["control"])  # no --redis
        self.assertEqual(d["config_versions"], [])
        self.assertEqual([p["name"] for p in d["pools"]], ["demo"])
        p = d["pools"][0]
        self.assertEqual(p["replica_count"], 3)
        self.assertEqual(p["eligible"], 2)
        self.assertAlmostEqual(p["slo_target"], 0.999)
        self.assertEqual(p["points"], 300)
        self.assertAlmostEqual(sum(r["share"] for r in p["replicas"]), 1.0, places=9)
        for r in p["replicas"]:
            for k in ("address", "state", "weight", "share", "drain", "lease_gone", "reachable",
                      "inflight", "health", "ejected", "ejected_for_ms", "down", "eligible"):
                self.assertIn(k, r)
        states = {r["address"]: r["state"] for r in p["replicas"]}
        self.assertIn(states[self.dead.addr], BAD_STATES)
        for r in self.reps[:2]:
            self.assertEqual(states[r.addr], "healthy")
        w = p["window"]
        for k in ("seconds", "calls", "errors", "rate_per_s", "error_ratio", "p50_ms", "p99_ms",
                  "slo_burn"):
            self.assertIn(k, w)
        h = p["history"]
        self.assertEqual(len({len(h[k]) for k in ("t_ms", "calls", "errors", "p50_ms",
                                                  "p99_ms")}), 1)
        self.assertLessEqual(len(h["t_ms"]), d["samples"])

    def test_history_counts_calls(self):
        # Samples every period_ms: the calls made show up in the history.
        d = status_json(self.admin)
        end = time.monotonic() + 2.5 * d["period_ms"] / 1000
        while time.monotonic() < end:
            self.infer(5)
            time.sleep(0.2)
        w = status_json(self.admin)["pools"][0]["window"]
        self.assertGreater(w["calls"], 0)
        self.assertGreater(w["rate_per_s"], 0)
        self.assertGreater(w["p99_ms"], 0)
        self.assertAlmostEqual(w["slo_burn"], w["error_ratio"] / (1 - 0.999), places=6)

    def test_headers_and_methods(self):
        for path, ctype in (("/", "text/html"), ("/index.html", "text/html"),
                            ("/status.css", "text/css"), ("/status.js", "text/javascript"),
                            ("/status.json", "application/json")):
            code, headers, body = http(self.admin, path)
            self.assertEqual(code, 200, path)
            self.assertTrue(headers["Content-Type"].startswith(ctype), path)
            csp = headers["Content-Security-Policy"]
            self.assertIn("default-src 'self'", csp, path)
            self.assertNotIn("http", csp)
            self.assertNotIn("unsafe-inline", csp)
            self.assertGreater(len(body), 0)
            code, _, body = http(self.admin, path, "HEAD")
            self.assertEqual((code, body), (200, b""), path)
            for method in ("POST", "PUT", "DELETE"):
                self.assertEqual(http(self.admin, path, method)[0], 405, (method, path))
        # The page's own files name nothing outside.
        for path in ("/", "/status.css", "/status.js"):
            body = http(self.admin, path)[2].decode()
            self.assertNotIn("http://", body.replace("http://www.w3.org/2000/svg", ""))
            self.assertNotIn("https://", body)

    def test_page_in_browser(self):
        dom = load_dom(self.admin)
        self.assertEqual(dom.pools, ["demo"])
        rows = dict(dom.rows)
        self.assertEqual(set(rows), {r.addr for r in self.reps})
        self.assertIn(rows[self.dead.addr], BAD_STATES)
        self.assertEqual(rows[self.reps[0].addr], "healthy")
        self.assertEqual(rows[self.reps[1].addr], "healthy")
        self.assertEqual(dom.rows[0][0], self.dead.addr)  # worst first
        shot = os.environ.get("INFERGW_STATUS_SCREENSHOT")
        if shot:
            chromium("http://127.0.0.1:%d/" % self.admin, "--screenshot=" + os.path.abspath(shot),
                     "--window-size=1280,900", "--hide-scrollbars")

    def test_thousand_replicas_paged(self):
        # 1,000 addresses where nothing listens (127.0.x.y:9 on loopback) and
        # the two live replicas: rendered 50 rows at a time, worst first.
        dead = ["127.0.%d.%d:9" % (10 + i // 250, 1 + i % 250) for i in range(998)]
        live = [r.addr for r in self.reps[:2]]
        admin = free_port()
        gw = start_gateway({"big": dead + live}, "--admin", "127.0.0.1:%d" % admin,
                           "--health-interval-ms", "1000")
        try:
            d = status_json(admin)
            self.assertEqual(d["pools"][0]["replica_count"], 1000)
            self.assertAlmostEqual(sum(r["share"] for r in d["pools"][0]["replicas"]), 1.0,
                                   places=9)
            t0 = time.monotonic()
            http(admin, "/status.json")
            self.assertLess(time.monotonic() - t0, 2.0)
            dom = load_dom(admin)
            self.assertEqual(dom.pools, ["big"])
            self.assertEqual(len(dom.rows), 50)
            self.assertTrue(any(r.endswith("of 1000") for r in dom.ranges), dom.ranges)
            self.assertTrue(all(a in dead for a, _ in dom.rows))
            # Clicked through: the next page, then only the healthy replicas.
            b = Browser("http://127.0.0.1:%d/" % admin)
            try:
                rows = "document.querySelectorAll('tr[data-addr]')"
                b.wait(rows + ".length == 50")
                self.assertEqual(b.eval("document.querySelector('.range').textContent"),
                                 "1\u201350 of 1000")
                b.eval("document.querySelector('.pager button:last-child').click()")
                self.assertEqual(b.eval("document.querySelector('.range').textContent"),
                                 "51\u2013100 of 1000")
                self.assertEqual(b.eval(rows + ".length"), 50)
                b.eval("document.querySelector('.chip[data-state=healthy]').click()")
                got = b.eval("Array.from(%s).map(r => r.dataset.addr).sort()" % rows)
                self.assertEqual(got, sorted(live))
            finally:
                b.close()
        finally:
            gw.stop()


if __name__ == "__main__":
    unittest.main()
