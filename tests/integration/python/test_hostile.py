# SPDX-License-Identifier: Apache-2.0
"""Hostile clients: one raw-frame HTTP/2 client (rawh2) per attack, each
against its own gateway (authentication on, tenants and API keys from files)
and replicas on loopback. One hostile or unlucky client must not hurt anyone
else:

- HPACK amplification: one ~4 KB header into the dynamic table, then tens of
  thousands of 1-byte references to it in HEADERS + CONTINUATION on a few
  streams that never end (~130 KB sent, no credentials);
- a stalled reader: SETTINGS_INITIAL_WINDOW_SIZE 0, a few dozen ModelInfer
  calls whose answers are larger than a stream window, never read;
- descriptor exhaustion: the gateway under RLIMIT_NOFILE 1024 (soft and hard)
  and 1,100 idle TCP connections;
- model smuggling: a tenant allowed only model demo sends x-model: demo with
  model_name "secret" in the body (ModelInfer and ModelStreamInfer);
- a client that sends the connection preface and nothing else (and one that
  sends nothing at all);
- rapid reset: HEADERS + DATA + RST_STREAM, as fast as Python sends them;
- a flood of CONTINUATION frames, each with a new header;
- slow loris: streams without grpc-timeout that send one DATA byte every 2 s.

In every case an outside client (loaddrive.py in its own process, so that the
attacker's Python does not disturb its timing) calls the gateway at 100
calls/s, first without the attack (the baseline, measured in the same test)
and then during it. Each case asserts, with the thresholds of the issue:
- none of those calls fails, and their p99 stays within 2x of the baseline's;
- the gateway's RSS (VmRSS) grows by less than 16 MiB over its value before
  the attack (the stalled reader: plus what its calls may hold by design,
  computed below);
- no core spins: after the attack, while its connections stay open, the
  gateway uses under 5% of one core (utime + stime of /proc/<pid>/stat over
  3 s);
- the gateway answers a new client afterwards (within 1 s) and its replicas
  stay healthy (admin /debug/replicas);
plus the attack's own criterion (refused stream, closed connection, call
never seen by the replica...).

Against a sanitizer build of the gateway (tests/run.sh's ASan run) the RSS
and p99 criteria are reported, not asserted: ASan's quarantine keeps freed
memory resident and its instrumentation multiplies the gateway's CPU cost,
so they measure the sanitizer. Every other criterion holds there too.

Every figure is printed on stderr as one "HOSTILE <case> ..." line, and every
criterion is checked before a test fails, so one run shows them all. The
timeouts the hardening adds are set with their flags, --preface-timeout-ms
and --max-deadline-ms.
"""

import hashlib
import json
import os
import resource
import socket
import subprocess
import sys
import tempfile
import threading
import time
import unittest

import grpc

import harness as h
import rawh2 as r2

MiB = 1024 * 1024

# Thresholds of the issue.
VICTIM_RATE = 100.0      # calls/s of the other client
P99_FACTOR = 2.0         # "their p99 stays within 2x of the p99 without the attack"
P99_FLOOR_MS = 10.0      # the reference p99 is at least this: below it, one scheduling
                         # hiccup of a shared 2-core machine decides (2.0 -> 5.5 ms seen
                         # while 1,100 connections were accepted), as in test_isolation
RSS_GROWTH = 16 * MiB    # "gateway RSS grows by less than 16 MB"
QUIET_CPU = 0.05         # "the gateway uses under 5% of a core"
NEW_CLIENT_S = 1.0       # "it serves a new client within 1 s of them closing"
NOFILE = 1024            # "RLIMIT_NOFILE 1024 (Debian's default soft limit)"
IDLE_CONNS = 1100        # "1,100 idle TCP connections"

BASE_S = 4.0             # victim seconds without the attack, before it and after it
ATTACK_S = 6.0           # victim seconds during it
QUIET_S = 3.0            # CPU window after it
STREAM_WINDOW = 1 * MiB  # the gateway's default --stream-window-bytes
CONN_MEMORY = 32 * 1024  # what an idle accepted connection may cost (session, buffers)
RESET_RATE = 2000        # rapid reset: streams opened and reset per second

LOADDRIVE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "loaddrive.py")


# --------------------------------------------------------------------------
# Measurements
# --------------------------------------------------------------------------

def fd_count(pid):
    return len(os.listdir("/proc/%d/fd" % pid))


class RssPeak:
    """Samples a process's VmRSS every 20 ms in a thread; .peak in KiB."""

    def __init__(self, proc):
        self.proc = proc
        self.peak = proc.rss_kib()
        self._stop = threading.Event()
        self._t = threading.Thread(target=self._run, daemon=True)
        self._t.start()

    def _run(self):
        while not self._stop.wait(0.02):
            try:
                self.peak = max(self.peak, self.proc.rss_kib())
            except (OSError, AssertionError):
                return

    def stop(self):
        self._stop.set()
        self._t.join()
        try:
            self.peak = max(self.peak, self.proc.rss_kib())
        except (OSError, AssertionError):
            pass
        return self.peak


class Victim:
    """loaddrive.py in its own process: ModelInfer at <rate> for <duration> s."""

    def __init__(self, target, duration, key, rate=VICTIM_RATE, deadline_ms=5000, model="demo"):
        self.p = subprocess.Popen(
            [sys.executable, LOADDRIVE, target, "--rate", str(rate), "--duration", str(duration),
             "--deadline-ms", str(deadline_ms), "--model", model, "--json", "--metadata",
             "authorization:Bearer " + key],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        self.duration = duration

    def wait(self):
        try:
            out, err = self.p.communicate(timeout=self.duration + 60)
        except subprocess.TimeoutExpired:
            self.p.kill()
            out, err = self.p.communicate()
        lines = [ln for ln in out.splitlines() if ln.startswith("{")]
        if not lines:
            raise AssertionError("loaddrive printed no summary (exit %s):\n%s\n%s"
                                 % (self.p.returncode, out, err))
        return json.loads(lines[-1])


def p99(summary):
    return summary["latency_ms"]["p99"]


# --------------------------------------------------------------------------
# The cases
# --------------------------------------------------------------------------

@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class HostileTest(unittest.TestCase):

    def setUp(self):
        self.procs = []
        self.addCleanup(lambda: h.stop_all(self.procs))
        self.problems = []
        self.figures = {}
        self.tmp = tempfile.mkdtemp(prefix="hostile-", dir=h.WORK_DIR)
        self.key = "igwtest-victim-" + os.urandom(12).hex()
        self.limited_key = "igwtest-limited-" + os.urandom(12).hex()
        self.tenants = os.path.join(self.tmp, "tenants")
        with open(self.tenants, "w") as f:
            f.write("victim models=*\nlimited models=demo\n")
        self.keys = os.path.join(self.tmp, "keys")
        with open(self.keys, "w") as f:
            for key, tenant in ((self.key, "victim"), (self.limited_key, "limited")):
                f.write("%s tenant=%s\n" % (hashlib.sha256(key.encode()).hexdigest(), tenant))
        self.auth = [("authorization", "Bearer " + self.key)]
        self.victim_model = "demo"

    # --- set-up ---------------------------------------------------------------

    def start(self, gateway_args=(), replicas=(("r0", ()),), pools=None, wrap=()):
        """Replicas (id, extra flags), then a gateway with --admin; waits until every
        replica is healthy. Pools: demo and default on the first replica unless
        given (a dict of pool -> replica ids)."""
        self.replicas = {}
        for rid, args in replicas:
            p = h.start_replica(self._testMethodName.replace("test_", "") + "-" + rid, *args)
            self.procs.append(p)
            self.replicas[rid] = p
        first = next(iter(self.replicas.values()))
        pools = pools or {"demo": [replicas[0][0]], "default": [replicas[0][0]]}
        self.admin = h.free_port()
        self.gw = h.start_gateway({k: [self.replicas[r].addr for r in v] for k, v in pools.items()},
                                  "--auth=on", "--tenants", self.tenants, "--api-keys", self.keys,
                                  "--admin", "127.0.0.1:%d" % self.admin, *gateway_args,
                                  wrap=wrap)
        self.procs.insert(0, self.gw)
        self.port = self.gw.port
        ok = h.wait_for(lambda: self.all_healthy(), 10.0, step=0.1)
        self.assertTrue(ok, "replicas not healthy after 10 s: %s" % self.health())
        self.first = first

    def health(self):
        try:
            doc = h.http_json(self.admin, "/debug/replicas")
        except (OSError, ValueError) as e:
            return {"error": repr(e)}
        return {r["address"]: r["health"] for r in doc["replicas"]}

    def all_healthy(self):
        hs = self.health()
        return bool(hs) and "error" not in hs and all(v == "healthy" for v in hs.values())

    def metrics(self):
        """The samples of the admin /metrics (h.scrape), or [] when the admin
        endpoint does not answer."""
        try:
            return h.scrape(self.admin)
        except OSError:
            return []

    # --- measurements and checks ----------------------------------------------

    def check(self, ok, msg, perf=False):
        """Records a failed criterion; <perf>: a resource or latency one, only
        reported against a sanitizer build."""
        if not ok:
            if perf and h.gateway_sanitizer():
                self.figure(**{"not_asserted_under_%s" % h.gateway_sanitizer():
                               self.figures.get("not_asserted_under_%s"
                                                % h.gateway_sanitizer(), []) + [msg[:80]]})
            else:
                self.problems.append(msg)

    def figure(self, **kv):
        self.figures.update(kv)

    def finish(self):
        name = self._testMethodName.replace("test_", "")
        sys.stderr.write("HOSTILE %s %s\n" % (name, " ".join(
            "%s=%s" % (k, ("%.3f" % v) if isinstance(v, float) else json.dumps(v))
            for k, v in self.figures.items())))
        sys.stderr.flush()
        if self.problems:
            self.fail("%s:\n- %s\ngateway log tail:\n%s"
                      % (name, "\n- ".join(self.problems), self.gw.tail(25)))

    def victim(self, duration):
        """Starts the other client and returns once its connections are up."""
        before = h.metric_sum(self.metrics(), "infergw_client_connections") or 0
        v = Victim(self.gw.addr, duration, self.key, model=self.victim_model)
        h.wait_for(lambda: (h.metric_sum(self.metrics(), "infergw_client_connections") or 0)
                   >= before + 2, 10.0, step=0.05)
        return v

    def baseline(self, seconds=BASE_S):
        s = self.victim(seconds).wait()
        self.figure(base_calls=s["calls"], base_failed=s["failed"], base_p99_ms=p99(s))
        self.assertEqual(s["failed"], 0, "calls failed without any attack: %s" % s)
        return s

    def check_victim(self, base, during, after=None):
        """Zero failed calls during the attack, and a p99 within P99_FACTOR of the
        p99 without it: the larger of the runs before and after the attack (when
        the one after had no failure), so that a machine busier in one of the
        two windows does not decide the outcome, and at least P99_FLOOR_MS."""
        ref = p99(base)
        if after is not None:
            self.figure(after_calls=after["calls"], after_failed=after["failed"],
                        after_p99_ms=p99(after))
            if after["failed"] == 0 and p99(after) is not None:
                ref = max(ref, p99(after))
        if ref is not None:
            ref = max(ref, P99_FLOOR_MS)
        self.figure(victim_calls=during["calls"], victim_failed=during["failed"],
                    victim_status=during["status"], victim_p99_ms=p99(during),
                    victim_p99_ratio=(p99(during) / ref) if p99(during) and ref else None)
        self.check(during["failed"] == 0,
                   "%d of %d calls of the other client failed: %s %s"
                   % (during["failed"], during["calls"], during["status"],
                      [(c["code"], c["message"]) for c in during.get("failed_calls", [])[:3]]))
        if p99(during) is not None and ref is not None:
            self.check(p99(during) <= P99_FACTOR * ref,
                       "the other client's p99 is %.1f ms during the attack, over %.0fx its "
                       "%.1f ms without it" % (p99(during), P99_FACTOR, ref), perf=True)

    def quiet_cpu(self, seconds=QUIET_S):
        """Fraction of one core the gateway uses over <seconds> (nothing else running)."""
        c0, t0 = h.cpu_seconds(self.gw.pid), time.monotonic()
        time.sleep(seconds)
        frac = (h.cpu_seconds(self.gw.pid) - c0) / (time.monotonic() - t0)
        self.figure(quiet_cpu_pct=100.0 * frac)
        self.check(frac < QUIET_CPU, "the gateway used %.1f%% of a core over %.0f s after the "
                   "attack (limit %.0f%%)" % (100 * frac, seconds, 100 * QUIET_CPU))
        return frac

    def check_rss(self, rss0, peak, bound=RSS_GROWTH):
        growth = (peak - rss0) * 1024
        self.figure(rss_start_mib=rss0 / 1024.0, rss_peak_mib=peak / 1024.0,
                    rss_growth_mib=growth / MiB, rss_bound_mib=bound / MiB)
        self.check(growth < bound, "gateway RSS grew by %.1f MiB (from %.1f to %.1f MiB; limit "
                   "%.1f MiB)" % (growth / MiB, rss0 / 1024.0, peak / 1024.0, bound / MiB),
                   perf=True)

    def probe(self, within):
        """Seconds until a new client's ModelInfer succeeds (fresh connection each
        try), or None when none did within <within> s."""
        t0 = time.monotonic()
        msg = r2.model_infer()
        while True:
            left = within - (time.monotonic() - t0)
            if left <= 0:
                return None
            try:
                st = r2.call(self.port, r2.MODEL_INFER, [msg], extra=self.auth,
                             timeout=max(0.05, left))
                if st.grpc_status == 0 and st.messages():
                    return time.monotonic() - t0
            except (OSError, r2.ConnectionClosed, TimeoutError, AssertionError):
                pass
            time.sleep(0.01)

    def check_after(self, within=NEW_CLIENT_S):
        took = self.probe(within)
        self.figure(new_client_s=took)
        self.check(took is not None, "no new client was served within %.1f s after the attack"
                   % within)
        self.check(self.gw.popen.poll() is None, "the gateway died (exit %s)"
                   % self.gw.popen.returncode)

    def check_healthy(self, when="after the attack"):
        hs = self.health()
        self.figure(health=hs)
        self.check("error" not in hs and all(v == "healthy" for v in hs.values()),
                   "replicas not healthy %s: %s" % (when, hs))

    def run_attack(self, attack, base, setup=None, rss_bound=RSS_GROWTH):
        """The common frame: RSS sampling; <setup>() (before the other client
        starts: a state to measure, not a burst); the other client during
        <attack>(); the CPU window; then the hostile connections close. Both
        return the connections to hold open until then."""
        rss0 = self.gw.rss_kib()
        sampler = RssPeak(self.gw)
        held = list(setup() or ()) if setup else []
        v = self.victim(ATTACK_S)
        t0 = time.monotonic()
        held += list(attack() or ())
        during = v.wait()
        self.figure(attack_s=time.monotonic() - t0)
        self.quiet_cpu()
        self.check_rss(rss0, sampler.stop(), rss_bound)
        self.check_healthy()
        for c in held:
            c.close()
        self.check_after()
        self.check_victim(base, during, self.victim(BASE_S).wait())
        return during

    # --- 1. HPACK amplification -----------------------------------------------

    def test_hpack_amplification(self):
        self.start()
        base = self.baseline()
        pad = "a" * 4000  # one entry of 4,037 bytes: fits the 4,096-byte table
        nstreams, refs = 4, 32000
        conns = []

        def attack():
            c = r2.Conn(self.port)
            conns.append(c)
            c.handshake()
            sids = []
            for i in range(nstreams):
                sid = c.new_stream()
                sids.append(sid)
                block = r2.request_block(r2.MODEL_INFER)  # no credentials
                if i == 0:
                    block += r2.hpack_literal_indexed("x-pad", pad)  # dynamic index 62
                block += r2.hpack_indexed(62) * refs
                chunks = [block[k:k + 16384] for k in range(0, len(block), 16384)]
                try:
                    c.headers(sid, chunks[0], end_headers=len(chunks) == 1)
                    for k, chunk in enumerate(chunks[1:], 2):
                        c.continuation(sid, chunk, end_headers=k == len(chunks))
                except (r2.ConnectionClosed, TimeoutError):
                    break
            self.figure(sent_kib=c.bytes_sent / 1024.0, streams=nstreams, refs_per_stream=refs,
                        decoded_mib_per_stream=refs * (5 + len(pad)) / MiB)
            c.pump(lambda cc: all(cc.refused(s) for s in sids), 3.0)
            refused = [s for s in sids if c.refused(s)]
            self.figure(refused=len(refused), goaway=c.goaway and list(c.goaway[:2]),
                        closed=c.closed)
            self.check(len(refused) == nstreams, "%d of %d amplified streams refused: %s"
                       % (len(refused), nstreams, [c.streams.get(s) for s in sids]))
            return conns

        self.run_attack(attack, base)
        self.finish()

    # --- 2. The stalled reader ------------------------------------------------

    def test_stalled_reader(self):
        # One worker: the hostile connection and the other client share the
        # worker's upstream connections, as two clients of one worker do.
        self.start(gateway_args=("--workers", "1"))
        base = self.baseline()
        ncalls, answer = 40, 2 * MiB + 64 * 1024  # answers larger than a stream window
        raw = bytes(answer)  # 0.0 in, 1.0 out: the answer is as large as the request
        msg = r2.model_infer(raw=raw)
        unhealthy = []

        def setup():
            c = r2.Conn(self.port, auto_window=False, timeout=30)
            c.handshake({r2.INITIAL_WINDOW_SIZE: 0})
            t0 = time.monotonic()
            for _ in range(ncalls):
                c.request(r2.MODEL_INFER, [msg], extra=self.auth)
            self.figure(stalled_calls=ncalls, answer_bytes=len(msg), upload_s=time.monotonic() - t0)
            time.sleep(1.0)  # the answers fill what windows they can
            return [c]       # from here on nothing is read, no window ever granted

        def attack():
            end = time.monotonic() + ATTACK_S
            while time.monotonic() < end:
                hs = self.health()
                if not all(v == "healthy" for v in hs.values()):
                    unhealthy.append(hs)
                time.sleep(0.25)

        # What the calls may hold by design: the request kept for replay and
        # a stream window each way.
        self.run_attack(attack, base, setup=setup,
                        rss_bound=RSS_GROWTH + ncalls * (len(msg) + 2 * STREAM_WINDOW))
        self.figure(unhealthy_samples=len(unhealthy))
        self.check(not unhealthy, "the replica was not healthy during the attack: %s"
                   % unhealthy[:3])
        self.finish()

    # --- 3. Descriptor exhaustion ---------------------------------------------

    def test_descriptor_exhaustion(self):
        self.start(wrap=["prlimit", "--nofile=%d:%d" % (NOFILE, NOFILE), "--"])
        with open("/proc/%d/limits" % self.gw.pid) as f:
            lim = [ln.split()[3:5] for ln in f if ln.startswith("Max open files")][0]
        self.assertEqual(lim, [str(NOFILE), str(NOFILE)], "the gateway's RLIMIT_NOFILE")
        soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
        if soft < IDLE_CONNS + 200:
            resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, IDLE_CONNS + 1000), hard))
        base = self.baseline()
        socks = []
        rss0 = self.gw.rss_kib()
        sampler = RssPeak(self.gw)
        v = self.victim(ATTACK_S)
        failed_connects = 0
        t0 = time.monotonic()
        for _ in range(IDLE_CONNS):
            s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
            s.settimeout(2.0)
            try:
                s.connect(("127.0.0.1", self.port))
                socks.append(s)
            except OSError:
                failed_connects += 1
                s.close()
        self.figure(idle_conns=len(socks), failed_connects=failed_connects,
                    connect_s=time.monotonic() - t0, gateway_fds=fd_count(self.gw.pid))
        during = v.wait()
        self.quiet_cpu()  # while the 1,100 stay open
        # Each accepted connection may cost a session and its buffers.
        self.check_rss(rss0, sampler.stop(), RSS_GROWTH + IDLE_CONNS * CONN_MEMORY)
        for s in socks:
            s.close()
        self.check_after(NEW_CLIENT_S)
        self.check_healthy()
        self.check_victim(base, during, self.victim(BASE_S).wait())
        self.finish()

    # --- 4. Model smuggling ---------------------------------------------------

    def replica_calls(self, rid, method="ModelInfer"):
        return [e for e in self.replicas[rid].events()
                if e.get("event") in ("call", "cancelled") and e.get("method", "").endswith(method)]

    def test_model_smuggling(self):
        # The other client calls model other (replica r2), so that r0 and r1
        # see the smuggler's calls alone.
        self.victim_model = "other"
        self.start(replicas=(("r0", ("--model", "demo", "--model", "secret")),
                             ("r1", ("--model", "secret")), ("r2", ("--model", "other"))),
                   pools={"demo": ["r0"], "default": ["r0"], "secret": ["r1"], "other": ["r2"]})
        base = self.baseline(3.0)
        limited = [("authorization", "Bearer " + self.limited_key)]
        ch = h.channel(self.gw.addr)
        self.addCleanup(ch.close)
        stub = h.infer_stub(ch)

        def code_of(fn):
            try:
                fn()
                return grpc.StatusCode.OK
            except grpc.RpcError as e:
                return e.code()

        # The checks themselves work: the tenant's own model runs, and the
        # replica's log shows the call.
        n0 = len(self.replica_calls("r0"))
        self.assertEqual(code_of(lambda: stub.ModelInfer(h.typed_request(h.values(4)),
                                                         metadata=limited, timeout=5)),
                         grpc.StatusCode.OK)
        self.assertEqual(code_of(lambda: stub.ModelInfer(h.typed_request(h.values(4), "secret"),
                                                         metadata=limited, timeout=5)),
                         grpc.StatusCode.PERMISSION_DENIED)
        self.assertIsNotNone(h.wait_for(lambda: len(self.replica_calls("r0")) == n0 + 1, 3.0),
                             "the replica's log shows the allowed call")

        refused = (grpc.StatusCode.PERMISSION_DENIED, grpc.StatusCode.INVALID_ARGUMENT)
        seen = {rid: len(self.replica_calls(rid, "Infer")) for rid in ("r0", "r1")}

        def attack():
            # ModelInfer: x-model names the allowed model, the body another.
            code = code_of(lambda: stub.ModelInfer(h.typed_request(h.values(4), "secret"),
                                                   metadata=limited + [("x-model", "demo")],
                                                   timeout=5))
            self.figure(unary=code.name)
            self.check(code in refused, "x-model demo + model_name secret: %s" % code.name)

            # ModelStreamInfer, the smuggled name in the first message.
            def stream(models):
                out = []
                try:
                    for resp in stub.ModelStreamInfer(
                            iter([h.typed_request(h.values(4), m) for m in models]),
                            metadata=limited + [("x-model", "demo")], timeout=5):
                        out.append(resp.infer_response.model_name or resp.error_message)
                    return grpc.StatusCode.OK, out
                except grpc.RpcError as e:
                    return e.code(), out

            code, out = stream(["secret"])
            self.figure(stream_first=code.name)
            self.check(code in refused and not out,
                       "stream, first message model_name secret: %s %s" % (code.name, out))
            time.sleep(0.5)
            now = {rid: len(self.replica_calls(rid, "Infer")) for rid in ("r0", "r1")}
            self.figure(replica_calls_seen={k: now[k] - seen[k] for k in now})
            self.check(now == seen, "a replica saw the smuggled calls: %s calls before, %s after"
                       % (seen, now))
            # ... and in a later message: refused, and no answer of model secret.
            code, out = stream(["demo", "secret"])
            self.figure(stream_second=code.name, stream_second_answers=out)
            self.check(code in refused and "secret" not in out,
                       "stream, second message model_name secret: %s, answers %s"
                       % (code.name, out))
            return []

        self.run_attack(attack, base)
        self.finish()

    # --- 5. Preface and nothing else --------------------------------------------

    def test_preface_only(self):
        timeout_ms = 2000
        self.start(gateway_args=("--preface-timeout-ms", str(timeout_ms)))
        self.figure(flag="--preface-timeout-ms")
        limit = timeout_ms / 1000.0 + 1.5
        base = self.baseline()
        conns = []

        def attack():
            t0 = time.monotonic()
            for i in range(100):
                c = r2.Conn(self.port, passive=True)  # reads, never answers
                if i % 2 == 0:
                    c.send_raw(r2.PREFACE)  # the preface and nothing else
                conns.append(c)             # odd ones: not even the preface
            closed_at = {}
            while time.monotonic() - t0 < limit and len(closed_at) < len(conns):
                for i, c in enumerate(conns):
                    if i not in closed_at:
                        try:
                            c.read_frame(0.0)
                        except r2.ConnectionClosed:
                            closed_at[i] = time.monotonic() - t0
                time.sleep(0.05)
            self.figure(closed=len(closed_at), of=len(conns),
                        closed_after_max_s=max(closed_at.values()) if closed_at else None)
            self.check(len(closed_at) == len(conns),
                       "%d of %d silent connections still open %.1f s after connecting"
                       % (len(conns) - len(closed_at), len(conns), limit))
            return conns

        self.run_attack(attack, base)
        self.finish()

    # --- 6. Rapid reset ---------------------------------------------------------

    def test_rapid_reset(self):
        # The attack goes to pool burst (replica r1, 100 ms per call, so an
        # attempt is still open when its reset arrives); the other client to demo.
        self.start(replicas=(("r0", ()), ("r1", ("--model", "burst", "--latency-ms", "100"))),
                   pools={"demo": ["r0"], "default": ["r0"], "burst": ["r1"]})
        base = self.baseline()
        msg = r2.grpc_message(r2.model_infer(model="burst"))
        block = r2.request_block(r2.MODEL_INFER, extra=self.auth + [("x-model", "burst")])
        counts = {"streams": 0, "conns": 0}

        def attack():
            end = time.monotonic() + ATTACK_S - 1.0
            c = None
            nxt = time.monotonic()
            # At most RESET_RATE streams/s: the attacker's Python must not take
            # the machine's two cores from the gateway and the other client.
            while time.monotonic() < end:
                nxt += 100.0 / RESET_RATE
                time.sleep(max(0.0, nxt - time.monotonic()))
                if c is None or c.closed:
                    c = r2.Conn(self.port)
                    c.handshake()
                    counts["conns"] += 1
                # 100 calls, then (once their attempts are open) 100 resets.
                calls, resets = [], []
                for _ in range(100):
                    sid = c.next_id
                    c.next_id += 2
                    calls.append(r2.frame(r2.HEADERS, r2.END_HEADERS, sid, block))
                    calls.append(r2.frame(r2.DATA, r2.END_STREAM, sid, msg))
                    resets.append(r2.frame(r2.RST_STREAM, 0, sid, b"\0\0\0\x08"))
                try:
                    c.send_raw(b"".join(calls))
                    time.sleep(0.01)
                    c.send_raw(b"".join(resets))
                    counts["streams"] += 100
                    while c.read_frame(0.0) is not None:  # settings, GOAWAY
                        pass
                except (r2.ConnectionClosed, TimeoutError, OSError):
                    c.close()
                if c.goaway is not None:
                    c.close()
            c.close()
            return []

        self.run_attack(attack, base)
        # Every attempt the resets left open is cancelled: nothing in flight,
        # and the replica finished (almost) none of the reset calls.
        r1 = self.replicas["r1"].addr
        inflight = h.wait_for(
            lambda: h.metric_sum(self.metrics(), "infergw_inflight_calls", replica=r1) == 0, 5.0)
        done = [e for e in self.replica_calls("r1") if e.get("event") == "call"]
        cancelled = [e for e in self.replica_calls("r1") if e.get("event") == "cancelled"]
        self.figure(reset_streams=counts["streams"], conns=counts["conns"],
                    replica_completed=len(done), replica_cancelled=len(cancelled),
                    inflight_after=h.metric_sum(self.metrics(), "infergw_inflight_calls", replica=r1))
        self.check(inflight, "attempts still open 5 s after the resets: %s"
                   % h.metric_sum(self.metrics(), "infergw_inflight_calls", replica=r1))
        self.check(len(done) <= 0.01 * counts["streams"],
                   "the replica completed %d of %d reset calls" % (len(done), counts["streams"]))
        self.finish()

    # --- 7. CONTINUATION flood --------------------------------------------------

    def test_continuation_flood(self):
        self.start()
        base = self.baseline()
        limit_bytes = 4 * MiB

        def attack():
            c = r2.Conn(self.port, timeout=5.0)
            c.handshake()
            sid = c.new_stream()
            c.headers(sid, r2.request_block(r2.MODEL_INFER, extra=self.auth), end_headers=False)
            i, frames = 0, 0
            stopped = None
            while c.bytes_sent < limit_bytes and not c.refused(sid):
                batch = []
                for _ in range(256):
                    batch.append(r2.frame(r2.CONTINUATION, 0, sid,
                                          r2.hpack_literal("x-c%d" % i, "v" * 64)))
                    i += 1
                try:
                    c.send_raw(b"".join(batch))
                    frames += len(batch)
                    while c.read_frame(0.0) is not None:
                        pass
                except (r2.ConnectionClosed, TimeoutError) as e:
                    stopped = type(e).__name__
                    break
            if not c.closed:
                c.pump(lambda cc: cc.refused(sid), 5.0)
            self.figure(continuation_frames=frames, sent_kib=c.bytes_sent / 1024.0,
                        stopped=stopped, refused=c.refused(sid),
                        goaway=c.goaway and list(c.goaway[:2]), closed=c.closed)
            self.check(c.refused(sid), "the flooded stream was neither reset nor its connection "
                       "closed after %d CONTINUATION frames (%.0f KiB)"
                       % (frames, c.bytes_sent / 1024.0))
            return [c]

        self.run_attack(attack, base)
        self.finish()

    # --- 8. Slow loris ----------------------------------------------------------

    def test_slow_loris(self):
        max_ms = 3000
        self.start(gateway_args=("--max-deadline-ms", str(max_ms)))
        self.figure(flag="--max-deadline-ms")
        limit = max_ms / 1000.0 + 2.0
        base = self.baseline()
        body = r2.grpc_message(r2.model_infer(vals=h.values(256)))
        conns = []

        def attack():
            sids = []
            for _ in range(2):
                c = r2.Conn(self.port)
                c.handshake()
                conns.append(c)
                for _ in range(10):
                    sid = c.new_stream()
                    c.headers(sid, r2.request_block(r2.MODEL_INFER,
                                                    extra=self.auth + [("x-model", "demo")]))
                    sids.append((c, sid))
            t0 = time.monotonic()
            ended_at = {}
            k = 0
            while time.monotonic() - t0 < limit and len(ended_at) < len(sids):
                for c, sid in sids:
                    if (c, sid) in ended_at or k >= len(body):
                        continue
                    if c.refused(sid) or c.stream(sid).ended:
                        ended_at[(c, sid)] = time.monotonic() - t0
                        continue
                    try:
                        c.data(sid, body[k:k + 1])
                    except (r2.ConnectionClosed, TimeoutError):
                        ended_at[(c, sid)] = time.monotonic() - t0
                k += 1
                nxt = time.monotonic() + 2.0  # a byte every 2 s
                while time.monotonic() < nxt:
                    for c in conns:
                        if not c.closed:
                            c.pump(None, 0.05)
                    for c, sid in sids:
                        if (c, sid) not in ended_at and (c.refused(sid) or c.stream(sid).ended):
                            ended_at[(c, sid)] = time.monotonic() - t0
            statuses = sorted({str(c.stream(s).grpc_status) for c, s in sids})
            self.figure(loris_streams=len(sids), ended=len(ended_at), bytes_each=k,
                        ended_after_max_s=max(ended_at.values()) if ended_at else None,
                        statuses=statuses)
            self.check(len(ended_at) == len(sids),
                       "%d of %d slow streams still open %.1f s after they started"
                       % (len(sids) - len(ended_at), len(sids), limit))
            return conns

        self.run_attack(attack, base)
        self.finish()


if __name__ == "__main__":
    unittest.main()
