# SPDX-License-Identifier: Apache-2.0
"""Soak: mixed traffic at a steady rate through one gateway for a bounded time,
with faults on a fixed cycle, asserting that nothing leaks and no call is
lost.

Set-up (all on loopback): a redis-server (append-only, so that it comes back
with its data), 4 replicas, and a gateway on --redis with authentication on.
Pools demo (r0, r1, r2) and other (r2, r3); tenants alpha (*), beta (demo,
other) and gamma (demo), one API key each, all written with infergw-ctl.

Traffic, open loop, every call with its own deadline:
- unary ModelInfer at --rate calls/s (default 60), round robin over the
  tenants, random routing keys;
- server streams: ModelStreamInfer, one request asking for 20 responses
  (stream_responses), 2 a second;
- client streams: ModelStreamInfer with 5 requests and 5 responses, 2 a second.

Faults, one cycle every 20 s (offsets in s):
-  0 kill -9 a replica (r0, r1, r2, r3 in turn), restart it on its port at 3;
-  6 stop redis-server, start it again on its port at 9;
- 11 config churn with infergw-ctl: conf set (hedge_delay_ms,
     retry_max_attempts), replica weight, drain a replica (undrain at 14);
- 15 slow readers (raw HTTP/2: a 4 KB stream window, opened 8 KB every
     100 ms), client resets (grpc cancels after 5-50 ms, and raw HEADERS +
     DATA + RST_STREAM), idle connections (40 silent TCP, 40 after the
     preface) held 4 s;
- 20 checkpoint: the gateway's RSS and open descriptors (/proc/<pid>/fd),
     after 1 s of quiet.

Each call's outcome is classified: ok; expected (UNAVAILABLE for a call that
overlapped a kill window: kill to restart + 2 s); cancelled (by this client, on
purpose); anything else is a failure, as is a call answered after its
deadline (+ 250 ms of client scheduling slack) or never answered at all. The
checkpoints after the warm-up (the first two cycles) must stay within 10% of
the first of them (RSS and descriptors). Every process's output is scanned
for sanitizer reports. A summary is printed; the last line starts with
"SOAK" and the exit status is 0 only when every assertion held.

Usage: /usr/bin/python3 soak.py [--seconds N] [--rate R] [--faults kill,redis,churn,clients]
Environment: SOAK_SECONDS (default 600; tests/run.sh sets 180), the
harness's INFERGW_BIN / INFERGW_GATEWAY_BIN / INFERGW_WORK_DIR.
Under ASan the gateway's quarantine is capped (quarantine_size_mb=16) so
that its RSS measures the gateway, not the quarantine filling up.
"""

import argparse
import json
import os
import random
import signal
import socket
import sys
import threading
import time

HERE = os.path.dirname(os.path.abspath(__file__))
if HERE not in sys.path:
    sys.path.insert(0, HERE)

import harness as h  # noqa: E402
import rawh2 as r2  # noqa: E402
import grpc  # noqa: E402

CYCLE_S = 20.0
WARMUP_CYCLES = 2
FLAT = 0.10            # checkpoints within 10% of the first after warm-up
KILL_GRACE_S = 2.0     # a kill window lasts until restart + this
LATE_SLACK_S = 0.25
UNARY_DEADLINE = 2.0
STREAM_DEADLINE = 5.0


class Records:
    """Every call: kind, tenant, sent, done (monotonic), deadline, code, note."""

    def __init__(self):
        self.lock = threading.Lock()
        self.items = []
        self.outstanding = 0

    def begin(self, kind, tenant, deadline, cancel=False):
        rec = {"kind": kind, "tenant": tenant, "sent": time.monotonic(), "done": None,
               "deadline": deadline, "code": None, "note": None, "cancel": cancel}
        with self.lock:
            self.items.append(rec)
            self.outstanding += 1
        return rec

    def end(self, rec, code, note=None):
        with self.lock:
            if rec["done"] is not None:
                return
            rec["done"] = time.monotonic()
            rec["code"] = code
            rec["note"] = note
            self.outstanding -= 1


class Soak:

    def __init__(self, seconds, rate, faults=("kill", "redis", "churn", "clients")):
        self.seconds = seconds
        self.rate = rate
        self.enabled = set(faults)
        self.rec = Records()
        self.stop = threading.Event()
        self.kill_windows = []   # [start, end] monotonic
        self.events = []         # (t, what)
        self.checkpoints = []    # (t, rss KiB, fds)
        self.dead_procs = []     # killed and restarted: scanned for reports at the end
        self.errors = []         # failures of the soak's own machinery
        self.slow = {"ok": 0, "other": []}
        self.threads = []
        # Processes the fault thread starts die with it (the harness ties each
        # child to the thread that started it, PR_SET_PDEATHSIG): that thread
        # stays until the teardown has stopped them.
        self.faults_done = threading.Event()
        self.released = threading.Event()

    # --- set-up ------------------------------------------------------------

    def setup(self):
        self.redis = h.start_redis("--appendonly", "yes", name="soak-redis")
        self.url = h.redis_url(self.redis)
        self.replicas = {}
        self.replica_args = {"r0": ("--quiet",), "r1": ("--quiet",),
                             "r2": ("--quiet", "--model", "demo", "--model", "other"),
                             "r3": ("--quiet", "--model", "other")}
        for rid, args in self.replica_args.items():
            self.replicas[rid] = h.start_replica("soak-" + rid, *args)
        ctl = lambda *a: h.run_ctl(self.url, *a)  # noqa: E731
        ctl("pool", "add", "demo")
        ctl("pool", "add", "other")
        for rid in ("r0", "r1", "r2"):
            ctl("replica", "add", "demo", self.replicas[rid].addr)
        for rid in ("r2", "r3"):
            ctl("replica", "add", "other", self.replicas[rid].addr)
        self.tenants = {"alpha": ["demo", "other"], "beta": ["demo", "other"], "gamma": ["demo"]}
        ctl("tenant", "add", "alpha", "--models", "*")
        ctl("tenant", "add", "beta", "--models", "demo,other")
        ctl("tenant", "add", "gamma", "--models", "demo")
        self.keys = {t: ctl("key", "create", t).stdout.strip() for t in self.tenants}
        env = dict(os.environ)
        if h.gateway_sanitizer() == "address":
            env["ASAN_OPTIONS"] = (env.get("ASAN_OPTIONS", "") + ":quarantine_size_mb=16").lstrip(":")
        self.admin = h.free_port()
        self.gw = h.start_gateway({}, "--redis", self.url, "--auth=on", "--admin",
                                  "127.0.0.1:%d" % self.admin, "--redis-timeout-ms", "500",
                                  env=env)
        ok = h.wait_for(lambda: self._call_ok("alpha", "demo") and self._call_ok("alpha", "other"),
                        15.0, step=0.2)
        if not ok:
            raise AssertionError("the gateway does not serve both pools; log:\n" + self.gw.tail())
        self.channels = [h.channel(self.gw.addr, ("grpc.use_local_subchannel_pool", 1),
                                   ("soak.channel", i)) for i in range(3)]
        self.stubs = [h.infer_stub(ch) for ch in self.channels]

    def _md(self, tenant, key=None):
        md = [("authorization", "Bearer " + self.keys[tenant])]
        if key:
            md.append(("x-route-key", key))
        return md

    def _call_ok(self, tenant, model):
        try:
            st = r2.call(self.gw.port, r2.MODEL_INFER, [r2.model_infer(model=model)],
                         extra=self._md(tenant), timeout=2.0)
            return st.grpc_status == 0
        except (OSError, r2.ConnectionClosed, TimeoutError, AssertionError):
            return False

    def teardown(self):
        for ch in getattr(self, "channels", []):
            ch.close()
        procs = [p for p in [getattr(self, "gw", None)] + list(getattr(self, "replicas", {}).values())
                 + [getattr(self, "redis", None)] if p is not None]
        errors = []
        try:
            h.stop_all(procs)
        except AssertionError as e:
            errors.append(str(e))
        for p in self.dead_procs:
            try:
                p.check_sanitizers()
            except AssertionError as e:
                errors.append(str(e))
        self.released.set()
        return errors

    # --- traffic -------------------------------------------------------------

    def _schedule(self, rate, fn):
        """Calls fn(i) at i/rate s from now until stop (open loop: never bursts to
        catch up after a stall)."""
        interval = 1.0 / rate
        nxt = time.monotonic()
        i = 0
        while not self.stop.is_set():
            d = nxt - time.monotonic()
            if d > 0:
                self.stop.wait(d)
                continue
            try:
                fn(i)
            except Exception as e:  # noqa: BLE001 - a bug of the soak itself
                self.errors.append("traffic %s: %r" % (fn.__name__, e))
            i += 1
            nxt = max(nxt + interval, time.monotonic() - interval)

    def _tenant_model(self, i):
        t = ("alpha", "beta", "gamma")[i % 3]
        models = self.tenants[t]
        return t, models[(i // 3) % len(models)]

    def unary(self, i):
        tenant, model = self._tenant_model(i)
        vals = h.values(8, base=i)
        cancel = i % 50 == 7  # a client reset now and then
        rec = self.rec.begin("unary", tenant, UNARY_DEADLINE, cancel=cancel)
        fut = self.stubs[i % len(self.stubs)].ModelInfer.future(
            h.typed_request(vals, model=model), timeout=UNARY_DEADLINE,
            metadata=self._md(tenant, "k%d" % random.randrange(256)))

        def done(f):
            try:
                c = f.code()
                if c == grpc.StatusCode.OK:
                    out = list(f.result().outputs[0].contents.fp32_contents)
                    if out != h.expected(vals):
                        self.rec.end(rec, "WRONG_ANSWER")
                        return
                self.rec.end(rec, c.name, None if c == grpc.StatusCode.OK else f.details())
            except Exception as e:  # noqa: BLE001
                self.rec.end(rec, "CLIENT_ERROR", repr(e))

        fut.add_done_callback(done)
        if cancel:
            threading.Timer(random.uniform(0.005, 0.05), fut.cancel).start()

    def _stream(self, kind, i, requests, want):
        tenant, model = self._tenant_model(i)
        rec = self.rec.begin(kind, tenant, STREAM_DEADLINE)

        def run():
            got = 0
            try:
                it = self.stubs[i % len(self.stubs)].ModelStreamInfer(
                    iter(requests(model)), timeout=STREAM_DEADLINE,
                    metadata=self._md(tenant, "s%d" % random.randrange(256)))
                for resp in it:
                    if resp.error_message:
                        self.rec.end(rec, "STREAM_ERROR", resp.error_message)
                        return
                    got += 1
                self.rec.end(rec, "OK" if got == want else "SHORT_STREAM",
                             None if got == want else "%d of %d responses" % (got, want))
            except grpc.RpcError as e:
                self.rec.end(rec, e.code().name, "%s (after %d responses)" % (e.details(), got))
            except Exception as e:  # noqa: BLE001
                self.rec.end(rec, "CLIENT_ERROR", repr(e))

        t = threading.Thread(target=run, daemon=True)
        t.start()

    def server_stream(self, i):
        self._stream("server_stream", i, lambda m: [
            h.typed_request(h.values(16), model=m, params={"stream_responses": 20})], 20)

    def client_stream(self, i):
        self._stream("client_stream", i, lambda m: [
            h.typed_request(h.values(16, base=k), model=m) for k in range(5)], 5)

    # --- faults --------------------------------------------------------------

    def note(self, what):
        self.events.append((time.monotonic() - self.t0, what))

    def at(self, cycle_start, offset):
        """Waits until <offset> s into the cycle; False when the soak is over."""
        d = cycle_start + offset - time.monotonic()
        if d > 0:
            self.stop.wait(d)
        return not self.stop.is_set()

    def kill_replica(self, rid):
        p = self.replicas[rid]
        start = time.monotonic()
        window = [start, float("inf")]
        self.kill_windows.append(window)
        p.popen.send_signal(signal.SIGKILL)
        p.wait_exit(10)
        self.dead_procs.append(p)
        self.note("kill -9 %s" % rid)
        return window

    def restart_replica(self, rid, window):
        p = self.replicas[rid]
        self.replicas[rid] = h.start_replica("soak-" + rid, *self.replica_args[rid], port=p.port)
        window[1] = time.monotonic() + KILL_GRACE_S
        self.note("restarted %s" % rid)

    def redis_restart_begin(self):
        self.redis.stop()
        self.note("redis stopped")

    def redis_restart_end(self):
        self.redis = h.start_redis("--appendonly", "yes", port=self.redis.port, name="soak-redis")
        self.note("redis started")

    def churn(self, n):
        ctl = lambda *a: h.run_ctl(self.url, *a)  # noqa: E731
        ctl("conf", "set", "hedge_delay_ms", "off" if n % 2 else "50")
        ctl("conf", "set", "--pool", "demo", "retry_max_attempts", "2" if n % 2 else "3")
        ctl("replica", "weight", "demo", self.replicas["r1"].addr, "50" if n % 2 == 0 else "100")
        target = self.replicas[("r0", "r1", "r2")[n % 3]].addr
        ctl("replica", "drain", target)
        self.note("churn: conf, weight, drain %s" % target)
        return target

    def slow_reader(self):
        """A ModelInfer whose 128 KiB answer is read 8 KiB every 100 ms."""
        try:
            c = r2.Conn(self.gw.port, auto_window=False, timeout=10)
            c.handshake({r2.INITIAL_WINDOW_SIZE: 4096})
            sid = c.request(r2.MODEL_INFER, [r2.model_infer(raw=bytes(128 * 1024))],
                            extra=self._md("alpha"), grpc_timeout="20S")
            t0 = time.monotonic()
            st = c.stream(sid)
            while not st.ended and not c.closed and time.monotonic() - t0 < 20:
                c.window_update(0, 8192)
                c.window_update(sid, 8192)
                c.pump(lambda cc: st.ended, 0.1)
            c.close()
            if st.grpc_status == 0 and len(st.data) > 128 * 1024:
                self.slow["ok"] += 1
            else:
                self.slow["other"].append(repr(st)[:300])
        except Exception as e:  # noqa: BLE001
            self.slow["other"].append(repr(e))

    def raw_resets(self):
        try:
            c = r2.Conn(self.gw.port)
            c.handshake()
            msg = r2.grpc_message(r2.model_infer())
            block = r2.request_block(r2.MODEL_INFER, extra=self._md("beta"))
            for _ in range(20):
                sid = c.new_stream()
                c.send_raw(r2.frame(r2.HEADERS, r2.END_HEADERS, sid, block) +
                           r2.frame(r2.DATA, r2.END_STREAM, sid, msg))
                c.rst(sid)
            c.pump(None, 0.2)
            c.close()
        except (OSError, r2.ConnectionClosed, TimeoutError) as e:
            self.errors.append("raw resets: %r" % e)

    def idle_connections(self, hold):
        socks = []
        try:
            for i in range(80):
                if i % 2:
                    c = r2.Conn(self.gw.port, passive=True)
                    c.preface()
                    socks.append(c)
                else:
                    s = socket.create_connection(("127.0.0.1", self.gw.port), timeout=2)
                    socks.append(s)
        except OSError as e:
            self.errors.append("idle connections: %r" % e)
        self.stop.wait(hold)
        for s in socks:
            s.close()

    def checkpoint(self):
        try:
            rss = self.gw.rss_kib()
            fds = len(os.listdir("/proc/%d/fd" % self.gw.pid))
        except (OSError, AssertionError) as e:
            self.errors.append("checkpoint: %r" % e)
            return
        self.checkpoints.append((time.monotonic() - self.t0, rss, fds))
        self.note("checkpoint rss=%.1fMiB fds=%d" % (rss / 1024.0, fds))

    def faults(self):
        try:
            self._faults()
        except Exception as e:  # noqa: BLE001
            self.errors.append("faults: %r" % e)
        self.faults_done.set()
        self.released.wait()

    def _faults(self):
        n = 0
        kill_order = ("r0", "r1", "r2", "r3")
        while not self.stop.is_set():
            c0 = time.monotonic()
            if not self.at(c0, 0):
                break
            if "kill" in self.enabled:
                rid = kill_order[n % len(kill_order)]
                w = self.kill_replica(rid)
                self.at(c0, 3)
                self.restart_replica(rid, w)   # even when the soak ends meanwhile
            if not self.at(c0, 6):
                break
            if "redis" in self.enabled:
                self.redis_restart_begin()
                self.at(c0, 9)
                self.redis_restart_end()
            if not self.at(c0, 11):
                break
            if "churn" in self.enabled:
                drained = self.churn(n)
                self.at(c0, 14)
                h.run_ctl(self.url, "replica", "undrain", drained)
            if not self.at(c0, 15):
                break
            extras = []
            if "clients" in self.enabled:
                extras = [threading.Thread(target=self.slow_reader, daemon=True)
                          for _ in range(3)]
                extras.append(threading.Thread(target=self.raw_resets, daemon=True))
                extras.append(threading.Thread(target=self.idle_connections, args=(4.0,),
                                               daemon=True))
            for t in extras:
                t.start()
            for t in extras:
                t.join(30)
            self.note("slow readers, resets, idle connections")
            if not self.at(c0, CYCLE_S - 0.5):
                break
            self.stop.wait(0.5)
            self.checkpoint()
            n += 1

    # --- the run -------------------------------------------------------------

    def run(self):
        self.t0 = time.monotonic()
        self.cpu0 = h.cpu_seconds(self.gw.pid)
        self.rss0 = self.gw.rss_kib()
        self.fds0 = len(os.listdir("/proc/%d/fd" % self.gw.pid))
        loops = [(self.rate, self.unary), (2.0, self.server_stream), (2.0, self.client_stream)]
        for rate, fn in loops:
            t = threading.Thread(target=self._schedule, args=(rate, fn), daemon=True)
            t.start()
            self.threads.append(t)
        ft = threading.Thread(target=self.faults, daemon=True)
        ft.start()
        self.stop.wait(self.seconds)
        self.stop.set()
        for t in self.threads:
            t.join(10)
        self.faults_done.wait(60)
        end = time.monotonic() + STREAM_DEADLINE + 5
        while self.rec.outstanding > 0 and time.monotonic() < end:
            time.sleep(0.1)
        self.wall = time.monotonic() - self.t0
        self.cpu = h.cpu_seconds(self.gw.pid) - self.cpu0

    def classify(self):
        out = {"ok": 0, "expected": {}, "cancelled": 0, "failed": {}, "late": 0, "lost": 0}
        bad = []
        for r in self.rec.items:
            if r["done"] is None:
                out["lost"] += 1
                bad.append(r)
                continue
            late = r["done"] - r["sent"] > r["deadline"] + LATE_SLACK_S
            code = r["code"]
            if late:
                out["late"] += 1
                bad.append(r)
            elif code == "OK":
                out["ok"] += 1
            elif r["cancel"] and code == "CANCELLED":
                out["cancelled"] += 1
            elif code == "UNAVAILABLE" and any(
                    r["sent"] <= w[1] and r["done"] >= w[0] for w in self.kill_windows):
                out["expected"][code] = out["expected"].get(code, 0) + 1
            else:
                out["failed"][code] = out["failed"].get(code, 0) + 1
                bad.append(r)
        return out, bad

    def report(self):
        cls, bad = self.classify()
        problems = list(self.errors)
        by_kind = {}
        for r in self.rec.items:
            by_kind[r["kind"]] = by_kind.get(r["kind"], 0) + 1
        if bad:
            problems.append("%d calls failed, late or lost; first: %s" % (len(bad), [
                {k: (round(v - self.t0, 3) if k in ("sent", "done") and v else v)
                 for k, v in r.items()} for r in bad[:5]]))
        if self.slow["other"]:
            problems.append("slow readers that did not finish OK: %s" % self.slow["other"][:3])
        after = [c for c in self.checkpoints[WARMUP_CYCLES - 1:]] if len(self.checkpoints) >= \
            WARMUP_CYCLES else []
        if len(after) < 2:
            problems.append("only %d checkpoints after the warm-up: run longer (--seconds >= %d)"
                            % (len(after), int(CYCLE_S * (WARMUP_CYCLES + 1))))
        else:
            ref = after[0]
            over = [c for c in after[1:] if c[1] > ref[1] * (1 + FLAT)]
            if over:
                worst = max(over, key=lambda c: c[1])
                problems.append("RSS over %.0f%% above %.1f MiB (at %.0f s, after the warm-up) at %d "
                                "checkpoints from %.0f s; highest %.1f MiB at %.0f s"
                                % (100 * FLAT, ref[1] / 1024.0, ref[0], len(over), over[0][0],
                                   worst[1] / 1024.0, worst[0]))
            over = [c for c in after[1:] if c[2] > ref[2] * (1 + FLAT)]
            if over:
                worst = max(over, key=lambda c: c[2])
                problems.append("descriptors over %.0f%% above %d (at %.0f s) at %d checkpoints "
                                "from %.0f s; most %d at %.0f s"
                                % (100 * FLAT, ref[2], ref[0], len(over), over[0][0], worst[2],
                                   worst[0]))
        summary = {
            "seconds": round(self.wall, 1), "calls": len(self.rec.items), "by_kind": by_kind,
            "ok": cls["ok"], "expected_fault": cls["expected"], "client_cancelled": cls["cancelled"],
            "failed": cls["failed"], "late": cls["late"], "lost": cls["lost"],
            "slow_readers_ok": self.slow["ok"], "kills": len(self.kill_windows),
            "checkpoints": [(round(t), round(rss / 1024.0, 1), fds)
                            for t, rss, fds in self.checkpoints],
            "rss_mib": [round(self.rss0 / 1024.0, 1),
                        round((self.checkpoints[-1][1] if self.checkpoints else 0) / 1024.0, 1)],
            "fds": [self.fds0, self.checkpoints[-1][2] if self.checkpoints else None],
            "gateway_cpu_pct": round(100.0 * self.cpu / self.wall, 1),
        }
        return summary, problems


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--seconds", type=float,
                    default=float(os.environ.get("SOAK_SECONDS", "600")),
                    help="length of the run [SOAK_SECONDS or 600]")
    ap.add_argument("--rate", type=float, default=60.0, help="unary calls per second [60]")
    ap.add_argument("--faults", default="kill,redis,churn,clients",
                    help="which faults of the cycle to inject (comma list of kill, redis, "
                         "churn, clients; '' for none) [all]")
    a = ap.parse_args(argv)
    s = Soak(a.seconds, a.rate, [f for f in a.faults.split(",") if f])
    problems = []
    summary = None
    try:
        s.setup()
        s.run()
        summary, problems = s.report()
    except AssertionError as e:
        problems.append(str(e))
    finally:
        problems += s.teardown()
    if summary:
        print("events: " + "; ".join("%.0fs %s" % ev for ev in s.events))
        print("summary: " + json.dumps(summary))
    for p in problems:
        print("PROBLEM: " + p)
    if summary:
        fmt = lambda d: ",".join("%s:%d" % kv for kv in sorted(d.items())) or "-"  # noqa: E731
        print("SOAK %s: %.0f s, %d calls (%s), ok %d, expected-fault %s, client-cancelled %d, "
              "failed %s, late %d, lost %d; RSS %.1f -> %.1f MiB, fds %s -> %s, gateway CPU %.1f%%"
              % ("passed" if not problems else "FAILED", summary["seconds"], summary["calls"],
                 fmt(summary["by_kind"]), summary["ok"], fmt(summary["expected_fault"]),
                 summary["client_cancelled"], fmt(summary["failed"]), summary["late"],
                 summary["lost"], summary["rss_mib"][0], summary["rss_mib"][1],
                 summary["fds"][0], summary["fds"][1], summary["gateway_cpu_pct"]))
    else:
        print("SOAK FAILED before any traffic")
    sys.stdout.flush()
    return 0 if not problems else 1


if __name__ == "__main__":
    sys.exit(main())
