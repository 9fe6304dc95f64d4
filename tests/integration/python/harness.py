# SPDX-License-Identifier: Apache-2.0
"""Integration test harness: real infergw and infergw-replica processes on loopback.

What it does for the tests:
- generates the Python gRPC stubs from proto/ into the build tree (once per run);
- picks free loopback ports in 20000-32000 (a port is taken only if a plain
  bind() succeeds, which also fails when a SO_REUSEPORT listener holds it);
- starts replicas and the gateway with stdout/stderr captured to files under
  the work dir, waits for their "listening" log line and for the port to
  accept connections;
- stops them with SIGTERM, asserts the exit status, and fails the test when
  the captured output carries a sanitizer report (AddressSanitizer,
  LeakSanitizer, UBSan "runtime error:", ThreadSanitizer);
- reads the JSON log lines of a process (calls and cancellations a replica saw);
- reads the admin endpoint (http_get, http_text, http_json) and its /metrics
  (scrape, metric_sum, metric), measures a process's CPU time (cpu_seconds);
- re-exports harness_redis.py: redis-server and Sentinel on loopback
  (start_redis, start_sentinel...), a RESP client (redis_call...), infergw-ctl
  (run_ctl) and the ring model (ring_token, key_point, RingModel);
the one copy of each for every test file.

Environment: INFERGW_BIN (dir of the binaries), INFERGW_SOURCE_DIR (the repo),
INFERGW_WORK_DIR (scratch dir in the build tree), INFERGW_GATEWAY_BIN (dir of
the infergw to test, default INFERGW_BIN: the ThreadSanitizer run of
tests/run.sh points it at a gateway-only TSan build and takes every other
program, the replica with its uninstrumented grpc core included, from the
Release build).
INFERGW_IT_DIRECT=1 points
the clients at the first replica instead of the gateway (only to debug the
tests themselves; tests that need the gateway are then skipped).

Run with Debian's /usr/bin/python3 (python3-grpcio), not a pyenv python.
"""

import atexit
import json
import os
import random
import shutil
import signal
import socket
import subprocess
import sys
import threading
import time
import unittest
import urllib.error
import urllib.request

HERE = os.path.dirname(os.path.abspath(__file__))
SOURCE_DIR = os.environ.get("INFERGW_SOURCE_DIR") or os.path.abspath(os.path.join(HERE, "..", "..", ".."))
BIN_DIR = os.environ.get("INFERGW_BIN") or os.path.join(SOURCE_DIR, "build", "bin")
WORK_DIR = os.environ.get("INFERGW_WORK_DIR") or os.path.join(SOURCE_DIR, "build", "tests", "integration", "work")
DIRECT = os.environ.get("INFERGW_IT_DIRECT") == "1"
SANITIZER_MARKERS = ("ERROR: AddressSanitizer", "runtime error:", "LeakSanitizer",
                     "WARNING: ThreadSanitizer", "FATAL: ThreadSanitizer")
PORT_MIN, PORT_MAX = 20000, 32000
MiB = 1024 * 1024

os.makedirs(WORK_DIR, exist_ok=True)


# --------------------------------------------------------------------------
# Stubs generated from proto/ at test time
# --------------------------------------------------------------------------

def _generate_stubs():
    """Runs protoc + grpc_python_plugin into WORK_DIR/pygen unless up to date.

    health.proto is compiled from its own directory so that its module is
    `health_pb2`, not `grpc.health.v1.health_pb2` (a pygen/grpc directory
    would collide with the grpc package itself); the ORCA load report the
    same way (`orca_load_report_pb2`).
    """
    out = os.path.join(WORK_DIR, "pygen")
    proto = os.path.join(SOURCE_DIR, "proto")
    sources = [
        (proto, "grpc_predict_v2.proto", "grpc_predict_v2_pb2_grpc.py"),
        (os.path.join(proto, "grpc", "health", "v1"), "health.proto", "health_pb2_grpc.py"),
        (os.path.join(proto, "xds", "data", "orca", "v3"), "orca_load_report.proto",
         "orca_load_report_pb2_grpc.py"),
    ]
    os.makedirs(out, exist_ok=True)
    for inc, name, produced in sources:
        target = os.path.join(out, produced)
        src = os.path.join(inc, name)
        if os.path.exists(target) and os.path.getmtime(target) >= os.path.getmtime(src):
            continue
        subprocess.run(
            ["protoc", "-I", inc, "--python_out=" + out, "--grpc_out=" + out,
             "--plugin=protoc-gen-grpc=/usr/bin/grpc_python_plugin", src],
            check=True)
    if out not in sys.path:
        sys.path.insert(0, out)


_generate_stubs()

import grpc  # noqa: E402
import grpc_predict_v2_pb2 as pb  # noqa: E402
import grpc_predict_v2_pb2_grpc as pb_grpc  # noqa: E402
import health_pb2  # noqa: E402
import health_pb2_grpc  # noqa: E402
import orca_load_report_pb2 as orca_pb2  # noqa: E402


# --------------------------------------------------------------------------
# Ports
# --------------------------------------------------------------------------

_used_ports = set()


def port_is_free(port):
    """True when nothing listens on 127.0.0.1:<port> and a bind would succeed."""
    s = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    try:
        s.bind(("127.0.0.1", port))
    except OSError:
        return False
    finally:
        s.close()
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(0.2)
    try:
        return c.connect_ex(("127.0.0.1", port)) != 0
    finally:
        c.close()


def free_port():
    """A loopback port in 20000-32000 that is free now and not handed out before."""
    rnd = random.Random(os.getpid() ^ int(time.time() * 1000))
    for _ in range(500):
        port = rnd.randint(PORT_MIN, PORT_MAX)
        if port in _used_ports:
            continue
        if port_is_free(port):
            _used_ports.add(port)
            return port
    raise RuntimeError("no free port in %d-%d" % (PORT_MIN, PORT_MAX))


def port_accepts(port, timeout=0.2):
    c = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    c.settimeout(timeout)
    try:
        return c.connect_ex(("127.0.0.1", port)) == 0
    finally:
        c.close()


# --------------------------------------------------------------------------
# Processes
# --------------------------------------------------------------------------

_SETPRIV = shutil.which("setpriv") is not None
_live = []
_live_lock = threading.Lock()


def _kill_leftovers():
    with _live_lock:
        procs = list(_live)
    for p in procs:
        if p.popen.poll() is None:
            p.popen.kill()
            p.popen.wait()


atexit.register(_kill_leftovers)
for _sig in (signal.SIGINT, signal.SIGHUP):
    signal.signal(_sig, lambda s, f: (_kill_leftovers(), os._exit(128 + s)))
# ctest ends a test that runs past its TIMEOUT with SIGTERM: clean up then too.
signal.signal(signal.SIGTERM, lambda s, f: (_kill_leftovers(), os._exit(128 + s)))


class Proc:
    """One child process with its stdout+stderr captured into <name>.log."""

    _seq = 0

    def __init__(self, name, argv, port, env=None):
        Proc._seq += 1
        self.name = name
        self.argv = argv
        self.port = port
        self.addr = "127.0.0.1:%d" % port
        self.log_path = os.path.join(WORK_DIR, "%d-%03d-%s.log" % (os.getpid(), Proc._seq, name))
        self.stopped = False
        self.returncode = None
        with open(self.log_path, "wb") as log:
            log.write(("# " + " ".join(argv) + "\n").encode())
            log.flush()
            # The child is killed if this test runner dies without cleaning up.
            launch = (["setpriv", "--pdeathsig", "KILL", "--"] if _SETPRIV else []) + argv
            self.popen = subprocess.Popen(launch, stdin=subprocess.DEVNULL, stdout=log, stderr=log,
                                          env=env, start_new_session=True)
        with _live_lock:
            _live.append(self)

    @property
    def pid(self):
        return self.popen.pid

    def log_text(self):
        with open(self.log_path, "rb") as f:
            return f.read().decode("utf-8", "replace")

    def tail(self, n=40):
        lines = self.log_text().splitlines()
        return "\n".join(lines[-n:])

    def events(self, event=None):
        """The JSON log lines of the process (dicts), optionally of one event."""
        out = []
        for line in self.log_text().splitlines():
            line = line.strip()
            if not line.startswith("{"):
                continue
            try:
                ev = json.loads(line)
            except ValueError:
                continue
            if isinstance(ev, dict) and (event is None or ev.get("event") == event):
                out.append(ev)
        return out

    def wait_event(self, pred, timeout=3.0, event=None):
        """Polls the log until one event satisfies <pred>; returns it or None."""
        end = time.monotonic() + timeout
        while True:
            for ev in self.events(event):
                if pred(ev):
                    return ev
            if time.monotonic() >= end:
                return None
            time.sleep(0.02)

    def wait_count(self, event, n, timeout=3.0):
        """Polls until at least <n> events of kind <event> are logged; returns the count."""
        end = time.monotonic() + timeout
        while True:
            count = len(self.events(event))
            if count >= n or time.monotonic() >= end:
                return count
            time.sleep(0.02)

    def wait_ready(self, timeout=15.0):
        """Waits for the "listening" log line and for the port to accept."""
        end = time.monotonic() + timeout
        seen_port_at = None
        while time.monotonic() < end:
            if self.popen.poll() is not None:
                raise AssertionError("%s exited with %s before listening; log:\n%s"
                                     % (self.name, self.popen.returncode, self.tail()))
            listening = any(ev.get("event") == "listening" for ev in self.events())
            if port_accepts(self.port):
                if listening:
                    return self
                seen_port_at = seen_port_at or time.monotonic()
                if time.monotonic() - seen_port_at > 3.0:  # no log line but serving
                    return self
            time.sleep(0.02)
        raise AssertionError("%s not listening on %s after %.0f s; log:\n%s"
                             % (self.name, self.addr, timeout, self.tail()))

    def rss_kib(self):
        with open("/proc/%d/status" % self.pid) as f:
            for line in f:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1])
        raise AssertionError("no VmRSS for %s" % self.name)

    def send_signal(self, sig):
        self.popen.send_signal(sig)

    def wait_exit(self, timeout):
        try:
            self.returncode = self.popen.wait(timeout)
        except subprocess.TimeoutExpired:
            self.popen.kill()
            self.popen.wait()
            raise AssertionError("%s did not exit within %.1f s; killed; log:\n%s"
                                 % (self.name, timeout, self.tail()))
        finally:
            self.stopped = True
            with _live_lock:
                if self in _live:
                    _live.remove(self)
        return self.returncode

    def check_sanitizers(self):
        text = self.log_text()
        for marker in SANITIZER_MARKERS:
            if marker in text:
                i = text.index(marker)
                raise AssertionError("%s: sanitizer report in %s:\n%s"
                                     % (self.name, self.log_path, text[max(0, i - 200):i + 4000]))

    def stop(self, timeout=20.0, expect_code=0, sig=signal.SIGTERM):
        """SIGTERM, wait, assert the exit code and a clean sanitizer log."""
        if self.stopped:
            return self.returncode
        if self.popen.poll() is None:
            self.popen.send_signal(sig)
        code = self.wait_exit(timeout)
        self.check_sanitizers()
        if expect_code is not None and code != expect_code:
            raise AssertionError("%s exited with %s, expected %s; log:\n%s"
                                 % (self.name, code, expect_code, self.tail()))
        return code


GATEWAY_BIN_DIR = os.environ.get("INFERGW_GATEWAY_BIN") or BIN_DIR


def _bin(name):
    path = os.path.join(GATEWAY_BIN_DIR if name == "infergw" else BIN_DIR, name)
    if not os.access(path, os.X_OK):
        raise AssertionError("missing binary %s (build it first)" % path)
    return path


_sanitizer = {}


def gateway_sanitizer():
    """"address", "thread" or None: the sanitizer the gateway under test is built
    with (its binary carries the runtime's init symbol)."""
    if "v" not in _sanitizer:
        try:
            with open(_bin("infergw"), "rb") as f:
                data = f.read()
        except OSError:
            data = b""
        _sanitizer["v"] = ("address" if b"__asan_init" in data else
                           "thread" if b"__tsan_init" in data else None)
    return _sanitizer["v"]


def start_replica(rid, *args, port=None, wait=True):
    """Starts infergw-replica --id <rid> on a free port; extra flags in <args>."""
    port = port or free_port()
    argv = [_bin("infergw-replica"), "--listen", "127.0.0.1:%d" % port, "--id", rid] + list(args)
    p = Proc("replica-" + rid, argv, port)
    return p.wait_ready() if wait else p


def start_gateway(pools, *args, port=None, wait=True, grace_ms=5000, wrap=(), env=None):
    """Starts infergw with --pool NAME=ADDR,... for each item of <pools> (a dict).
    Authentication is off (--auth=none) unless <args> hold an --auth flag.
    <wrap>: a command that execs the gateway (e.g. prlimit ... --); <env>: its
    environment (default: this one)."""
    port = port or free_port()
    own_auth = any(a == "--auth" or a.startswith("--auth=") for a in args)
    argv = [_bin("infergw"), "--listen", "127.0.0.1:%d" % port] + \
        ([] if own_auth else ["--auth=none"]) + \
        ["--workers", "2", "--shutdown-grace-ms", str(grace_ms), "--connect-timeout-ms", "1000"]
    for name, addrs in pools.items():
        argv += ["--pool", "%s=%s" % (name, ",".join(addrs))]
    argv += list(args)
    p = Proc("gateway", list(wrap) + argv, port, env=env)
    return p.wait_ready() if wait else p


# --------------------------------------------------------------------------
# Clients
# --------------------------------------------------------------------------

CHANNEL_OPTIONS = [
    ("grpc.max_send_message_length", -1),
    ("grpc.max_receive_message_length", -1),
    ("grpc.enable_retries", 0),
]


def channel(addr, *extra_options):
    ch = grpc.insecure_channel(addr, options=CHANNEL_OPTIONS + list(extra_options))
    grpc.channel_ready_future(ch).result(timeout=10)
    return ch


def channel_unready(addr, *extra_options):
    """A channel that is not waited for (for targets expected to refuse)."""
    return grpc.insecure_channel(addr, options=CHANNEL_OPTIONS + list(extra_options))


def infer_stub(ch):
    return pb_grpc.GRPCInferenceServiceStub(ch)


def health_stub(ch):
    return health_pb2_grpc.HealthStub(ch)


def md_get(md, key):
    """The value of <key> in a metadata sequence, or None."""
    for k, v in md or ():
        if k == key:
            return v
    return None


def replica_of(call):
    """x-replica-id from the initial metadata of a finished call (or RpcError)."""
    return md_get(call.initial_metadata(), "x-replica-id")


def values(n, base=0):
    """<n> float32-exact input values (so 2x+1 is exact too)."""
    return [float(((i + base) % 4096) * 0.5 - 512.0) for i in range(n)]


def typed_request(vals, model="demo", shape=None, rid="req", params=None):
    req = pb.ModelInferRequest(model_name=model, id=rid)
    t = req.inputs.add(name="INPUT0", datatype="FP32", shape=shape or [len(vals)])
    t.contents.fp32_contents.extend(vals)
    for k, v in (params or {}).items():
        req.parameters[k].int64_param = v
    return req


def raw_request(raw, model="demo", shape=None, rid="req", params=None):
    req = pb.ModelInferRequest(model_name=model, id=rid)
    req.inputs.add(name="INPUT0", datatype="FP32", shape=shape or [len(raw) // 4])
    req.raw_input_contents.append(raw)
    for k, v in (params or {}).items():
        req.parameters[k].int64_param = v
    return req


def expected(vals):
    return [2.0 * v + 1.0 for v in vals]


# --------------------------------------------------------------------------
# A cluster of replicas behind one gateway, for a test class
# --------------------------------------------------------------------------

def stop_all(procs):
    """Stops every process in <procs>, in order, even when one of them fails
    its exit checks; then raises one AssertionError naming every failure."""
    errors = []
    for p in procs:
        try:
            p.stop()
        except AssertionError as e:
            errors.append(str(e))
    if errors:
        raise AssertionError("\n\n".join(errors))


class Cluster:
    """<n> replicas (ids <prefix>0..) and a gateway with pools demo + default."""

    def __init__(self, n=3, replica_args=(), gateway_args=(), prefix="r", pools=None, grace_ms=5000):
        self.replicas = []
        self.gateway = None
        try:
            for i in range(n):
                self.replicas.append(start_replica("%s%d" % (prefix, i), *replica_args))
            addrs = [r.addr for r in self.replicas]
            if pools is None:
                pools = {"demo": addrs, "default": addrs}
            if not DIRECT:
                self.gateway = start_gateway(pools, *gateway_args, grace_ms=grace_ms)
        except BaseException:
            self.kill()
            raise
        self.target = self.replicas[0].addr if DIRECT else self.gateway.addr
        self.ids = {"%s%d" % (prefix, i) for i in range(n)}

    def replica(self, rid):
        for r in self.replicas:
            if r.name == "replica-" + rid:
                return r
        raise KeyError(rid)

    def kill(self):
        for p in ([self.gateway] if self.gateway else []) + self.replicas:
            if not p.stopped and p.popen.poll() is None:
                p.popen.kill()
                p.wait_exit(5)

    def stop(self):
        """Stops the gateway first, then the replicas; asserts clean exits."""
        stop_all(([self.gateway] if self.gateway else []) + self.replicas)


class GatewayTestCase(unittest.TestCase):
    """Base class: one Cluster per test class, stopped (and checked) at the end."""

    N_REPLICAS = 3
    REPLICA_ARGS = ()
    GATEWAY_ARGS = ()

    @classmethod
    def setUpClass(cls):
        cls.cluster = Cluster(cls.N_REPLICAS, cls.REPLICA_ARGS, cls.GATEWAY_ARGS,
                              prefix=cls.__name__.lower() + "-r")
        cls.addClassCleanup(cls.cluster.stop)  # cleanups run last-in first-out
        cls.channel = channel(cls.cluster.target)
        cls.addClassCleanup(cls.channel.close)
        cls.stub = infer_stub(cls.channel)

    def setUp(self):
        """Fails at once, with the reason, when a process of the cluster has died."""
        for p in ([self.cluster.gateway] if self.cluster.gateway else []) + self.cluster.replicas:
            if not p.stopped and p.popen.poll() is not None:
                p.check_sanitizers()
                raise AssertionError("%s died (exit %s) before this test; log:\n%s"
                                     % (p.name, p.popen.returncode, p.tail()))

    def require_gateway(self):
        if DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")

    def assertReplica(self, call):
        rid = replica_of(call)
        self.assertIn(rid, self.cluster.ids, "x-replica-id %r is not one of ours" % (rid,))
        return rid


def timing(what, seconds):
    """Prints a measured duration on stderr as 'TIMING <what> <s>' (closing notes quote them)."""
    sys.stderr.write("TIMING %s %.3f\n" % (what, seconds))
    sys.stderr.flush()


def wait_for(pred, timeout, step=0.05):
    """Polls <pred> until it returns a true value (returned) or <timeout> s pass (None)."""
    end = time.monotonic() + timeout
    while True:
        v = pred()
        if v or time.monotonic() >= end:
            return v or None
        time.sleep(step)


def http_get(port, path, timeout=5.0):
    """(status, body) of GET http://127.0.0.1:<port><path>, whatever the status;
    raises OSError (urllib.error.URLError) when nothing answers."""
    try:
        with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
            return r.status, r.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.read().decode()


def http_text(port, path, timeout=5.0):
    """The body of GET http://127.0.0.1:<port><path>; raises OSError
    (urllib.error.HTTPError) unless the answer is 2xx, or when nothing answers."""
    with urllib.request.urlopen("http://127.0.0.1:%d%s" % (port, path), timeout=timeout) as r:
        return r.read().decode()


def http_json(port, path, timeout=5.0):
    """The JSON document of GET http://127.0.0.1:<port><path> (as http_text)."""
    return json.loads(http_text(port, path, timeout))


def metric_samples(text):
    """[(name, {label: value}, float)] of the sample lines of a Prometheus text
    exposition (the gateway's label values never hold a comma, quote or brace,
    so a plain split is enough)."""
    out = []
    for line in text.splitlines():
        if not line or line.startswith("#"):
            continue
        head, value = line.rsplit(" ", 1)
        labels = {}
        if "{" in head:
            name, rest = head.split("{", 1)
            for part in rest.rstrip("}").split(","):
                if part:
                    k, v = part.split("=", 1)
                    labels[k] = v.strip('"')
        else:
            name = head
        out.append((name, labels, float(value)))
    return out


def scrape(admin_port, timeout=5.0):
    """metric_samples() of the gateway's /metrics on <admin_port>."""
    return metric_samples(http_text(admin_port, "/metrics", timeout))


def metric_sum(samples, name, **labels):
    """Sum of the samples of <name> whose labels include <labels>; None when no
    series matches (a metric or label value the gateway does not have)."""
    hits = [v for n, lab, v in samples
            if n == name and all(lab.get(k) == want for k, want in labels.items())]
    return sum(hits) if hits else None


def metric(admin_port, name, **labels):
    """metric_sum() of the gateway's /metrics on <admin_port>; raises
    AssertionError when no series matches."""
    v = metric_sum(scrape(admin_port), name, **labels)
    if v is None:
        raise AssertionError("no sample %s%s in /metrics" % (name, labels or ""))
    return v


def cpu_seconds(pid):
    """utime + stime of every thread of process <pid>, in seconds (fields 14
    and 15 of /proc/<pid>/stat, stat(5))."""
    with open("/proc/%d/stat" % pid) as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def log_time(ev):
    """The "time" of a JSON log line (UTC, ms) as seconds since the epoch."""
    import calendar
    t = ev["time"]  # 2026-11-28T02:57:58.294Z
    secs = calendar.timegm(time.strptime(t[:19], "%Y-%m-%dT%H:%M:%S"))
    frac = t[20:-1] if len(t) > 20 else "0"
    return secs + float("0." + frac)


class SteadyLoad:
    """Unary ModelInfer calls at a fixed rate from a background thread, each
    with the next routing key of <keys> (round robin), on its own channel.
    Every call is recorded as a dict: key, sent and done (time.time()),
    replica (x-replica-id), code (grpc.StatusCode), ok (status OK and the
    right answer)."""

    def __init__(self, target, keys, rate=100.0, timeout=10.0, model="demo"):
        self.target = target
        self.keys = list(keys)
        self.interval = 1.0 / rate
        self.timeout = timeout
        self.model = model
        self.records = []
        self.sent = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._outstanding = 0
        self._idle = threading.Condition(self._lock)
        self._channel = channel(target)
        self._stub = infer_stub(self._channel)
        self._thread = threading.Thread(target=self._run, daemon=True)

    def start(self):
        self._thread.start()
        return self

    def _done(self, fut, key, sent, vals):
        rec = {"key": key, "sent": sent, "done": time.time(), "replica": None,
               "code": None, "ok": False}
        try:
            rec["code"] = fut.code()
            rec["replica"] = md_get(fut.initial_metadata(), "x-replica-id")
            if rec["code"] == grpc.StatusCode.OK:
                out = list(fut.result().outputs[0].contents.fp32_contents)
                rec["ok"] = out == expected(vals)
        except Exception as e:  # noqa: BLE001 - recorded as a failed call
            rec["error"] = repr(e)
        with self._lock:
            self.records.append(rec)
            self._outstanding -= 1
            self._idle.notify_all()

    def _run(self):
        vals = values(4)
        next_t = time.monotonic()
        i = 0
        while not self._stop.is_set():
            now = time.monotonic()
            if now < next_t:
                self._stop.wait(next_t - now)
                continue
            key = self.keys[i % len(self.keys)]
            i += 1
            with self._lock:
                self._outstanding += 1
            sent = time.time()
            try:
                fut = self._stub.ModelInfer.future(typed_request(vals, model=self.model),
                                                   metadata=[("x-route-key", key)],
                                                   timeout=self.timeout)
                fut.add_done_callback(lambda f, k=key, s=sent: self._done(f, k, s, vals))
            except Exception as e:  # noqa: BLE001
                with self._lock:
                    self._outstanding -= 1
                    self.records.append({"key": key, "sent": sent, "done": time.time(),
                                         "replica": None, "code": None, "ok": False,
                                         "error": repr(e)})
            self.sent += 1
            # Fixed rate; after a stall, start again from now rather than burst.
            next_t = max(next_t + self.interval, time.monotonic() - self.interval)

    def stop(self):
        """Stops sending, waits for every call in flight; returns the records."""
        self._stop.set()
        self._thread.join()
        with self._lock:
            end = time.monotonic() + self.timeout + 5
            while self._outstanding > 0 and time.monotonic() < end:
                self._idle.wait(0.1)
        self._channel.close()
        return self.snapshot()

    def snapshot(self):
        with self._lock:
            return list(self.records)

    def failures(self, records=None):
        return [r for r in (self.snapshot() if records is None else records) if not r["ok"]]


# The Redis/Sentinel, infergw-ctl and ring-model helpers live in harness_redis.py;
# re-exported here so tests keep using h.start_redis, h.run_ctl, h.RingModel...
# (imported last: harness_redis takes Proc, free_port and the paths from here).
from harness_redis import *  # noqa: E402,F401,F403
