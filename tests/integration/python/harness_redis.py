# SPDX-License-Identifier: Apache-2.0
"""Integration test helpers for the control plane, split out of harness.py:
redis-server and Sentinel processes on loopback (start_redis, start_sentinel,
start_sentinel_group), a minimal RESP client (redis_connect, redis_call,
redis_query...), infergw-ctl (run_ctl, ctl_version) and the documented ring
(ring_token, key_point, RingModel).

harness.py re-exports every public name here, so tests use them as h.start_redis,
h.RingModel, h.run_ctl...; import harness, not this module (this module takes
Proc, free_port and the paths from harness, which must be loaded first).
"""

import os
import shutil
import socket
import subprocess
import time

from harness import SANITIZER_MARKERS, WORK_DIR, Proc, _bin, free_port, port_accepts

__all__ = [
    "redis_connect",
    "redis_send",
    "redis_read",
    "redis_call",
    "redis_close",
    "start_redis",
    "start_sentinel",
    "redis_url",
    "run_ctl",
    "ctl_version",
    "start_sentinel_group",
    "redis_query",
    "sentinel_master_addr",
    "ring_token",
    "key_point",
    "RingModel",
]

# --------------------------------------------------------------------------
# Redis (the control plane): servers on loopback and a minimal RESP client
# --------------------------------------------------------------------------

def redis_connect(port, timeout=5.0):
    """A connection to 127.0.0.1:<port>: (socket, buffered reader)."""
    s = socket.create_connection(("127.0.0.1", port), timeout=timeout)
    return s, s.makefile("rb")


def redis_send(conn, *args):
    """Sends one command; arguments are str, bytes or int."""
    out = [b"*%d\r\n" % len(args)]
    for a in args:
        a = a if isinstance(a, bytes) else str(a).encode()
        out.append(b"$%d\r\n%s\r\n" % (len(a), a))
    conn[0].sendall(b"".join(out))


def redis_read(conn):
    """Reads one reply: str, int, None or a list; an error reply raises RuntimeError."""
    line = conn[1].readline()
    if not line.endswith(b"\r\n"):
        raise RuntimeError("redis: connection closed")
    kind, rest = line[:1], line[1:-2]
    if kind == b"+":
        return rest.decode()
    if kind == b"-":
        raise RuntimeError("redis: " + rest.decode())
    if kind == b":":
        return int(rest)
    if kind == b"$":
        n = int(rest)
        return None if n < 0 else conn[1].read(n + 2)[:-2].decode("utf-8", "surrogateescape")
    if kind == b"*":
        n = int(rest)
        return None if n < 0 else [redis_read(conn) for _ in range(n)]
    raise RuntimeError("redis: unexpected reply %r" % line)


def redis_call(conn, *args):
    """One command and its reply on <conn> (from redis_connect)."""
    redis_send(conn, *args)
    return redis_read(conn)


def redis_close(conn):
    conn[1].close()
    conn[0].close()


def _wait_redis(proc, timeout=10.0):
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        if proc.popen.poll() is not None:
            raise AssertionError("%s exited with %s; log:\n%s"
                                 % (proc.name, proc.popen.returncode, proc.tail()))
        if port_accepts(proc.port):
            try:
                conn = redis_connect(proc.port, timeout=1.0)
                try:
                    if redis_call(conn, "PING") == "PONG":
                        return proc
                finally:
                    redis_close(conn)
            except RuntimeError as e:
                if "NOAUTH" in str(e):  # up, and wants a password
                    return proc
            except OSError:
                pass
        time.sleep(0.02)
    raise AssertionError("%s not answering PING on %s; log:\n%s"
                         % (proc.name, proc.addr, proc.tail()))


def start_redis(*args, port=None, name="redis"):
    """Starts redis-server on a free loopback port with no persistence and its own
    directory under the work dir; extra redis-server flags in <args>. Returns the
    Proc once it answers PING."""
    port = port or free_port()
    d = os.path.join(WORK_DIR, "%d-%s-%d" % (os.getpid(), name, port))
    os.makedirs(d, exist_ok=True)
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", "--port", str(port),
            "--bind", "127.0.0.1", "--save", "", "--appendonly", "no", "--dir", d] + list(args)
    return _wait_redis(Proc(name, argv, port))


def start_sentinel(master_port, master="mymaster", port=None, auth_pass=None):
    """Starts a Redis Sentinel on a free loopback port watching the master on
    127.0.0.1:<master_port> under the name <master> (quorum 1), with the
    master's password <auth_pass> if it has one."""
    port = port or free_port()
    d = os.path.join(WORK_DIR, "%d-sentinel-%d" % (os.getpid(), port))
    os.makedirs(d, exist_ok=True)
    conf = os.path.join(d, "sentinel.conf")  # Sentinel rewrites its config file
    with open(conf, "w") as f:
        f.write("port %d\nbind 127.0.0.1\ndir %s\nsentinel monitor %s 127.0.0.1 %d 1\n"
                % (port, d, master, master_port))
        if auth_pass:
            f.write("sentinel auth-pass %s %s\n" % (master, auth_pass))
    argv = [shutil.which("redis-server") or "/usr/bin/redis-server", conf, "--sentinel"]
    return _wait_redis(Proc("sentinel", argv, port))


# --------------------------------------------------------------------------
# Control plane: infergw-ctl, Sentinel groups, the documented ring, steady load
# --------------------------------------------------------------------------

def redis_url(proc):
    """redis:// URL of a redis-server Proc from start_redis."""
    return "redis://127.0.0.1:%d" % proc.port


def run_ctl(url, *args, timeout=30.0, expect=0, env=None):
    """Runs infergw-ctl --redis <url> <args> (no --redis when <url> is None),
    with the variables of <env> added to its environment; returns the
    CompletedProcess. Raises AssertionError when its stderr carries a
    sanitizer report or the exit code is not <expect> (None: any)."""
    argv = ([_bin("infergw-ctl")] + (["--redis", url] if url is not None else [])
            + [str(a) for a in args])
    p = subprocess.run(argv, capture_output=True, text=True, timeout=timeout,
                       env=dict(os.environ, **(env or {})))
    for marker in SANITIZER_MARKERS:
        if marker in p.stderr:
            raise AssertionError("infergw-ctl: sanitizer report:\n" + p.stderr)
    if expect is not None and p.returncode != expect:
        raise AssertionError("%s -> exit %d (expected %d)\nstdout:\n%s\nstderr:\n%s"
                             % (" ".join(argv), p.returncode, expect, p.stdout, p.stderr))
    return p


def ctl_version(out):
    """The version an infergw-ctl write printed, "... (version N)", or None."""
    i = out.rfind("(version ")
    if i < 0:
        return None
    j = out.find(")", i)
    return int(out[i + 9:j]) if j > 0 else None


def start_sentinel_group(master_port, master, n=3, quorum=2, down_after_ms=1000,
                         failover_timeout_ms=5000):
    """Starts <n> Redis Sentinels on free loopback ports watching the master on
    127.0.0.1:<master_port> as <master> with the given quorum and timings, each
    with its own config file and directory. Returns their Procs."""
    procs = []
    try:
        for _ in range(n):
            port = free_port()
            d = os.path.join(WORK_DIR, "%d-sentinel-%d" % (os.getpid(), port))
            os.makedirs(d, exist_ok=True)
            conf = os.path.join(d, "sentinel.conf")  # Sentinel rewrites it
            with open(conf, "w") as f:
                f.write("port %d\nbind 127.0.0.1\ndir %s\n"
                        "sentinel monitor %s 127.0.0.1 %d %d\n"
                        "sentinel down-after-milliseconds %s %d\n"
                        "sentinel failover-timeout %s %d\n"
                        % (port, d, master, master_port, quorum, master, down_after_ms,
                           master, failover_timeout_ms))
            argv = [shutil.which("redis-server") or "/usr/bin/redis-server", conf, "--sentinel"]
            procs.append(_wait_redis(Proc("sentinel", argv, port)))
    except BaseException:
        for p in procs:
            if p.popen.poll() is None:
                p.popen.kill()
                p.wait_exit(5)
        raise
    return procs


def redis_query(port, *args, timeout=1.0):
    """One command on a fresh connection to 127.0.0.1:<port>; None when the
    server cannot be reached or answers an error."""
    try:
        conn = redis_connect(port, timeout=timeout)
    except OSError:
        return None
    try:
        return redis_call(conn, *args)
    except (OSError, RuntimeError):
        return None
    finally:
        redis_close(conn)


def sentinel_master_addr(sentinel_port, master):
    """"host:port" of <master> as one sentinel names it now, or None."""
    r = redis_query(sentinel_port, "SENTINEL", "get-master-addr-by-name", master)
    return "%s:%s" % (r[0], r[1]) if isinstance(r, list) and len(r) == 2 else None


def ring_token(s):
    """The documented token of a ring member: first 4 bytes of SHA-256, big-endian."""
    import hashlib
    return int.from_bytes(hashlib.sha256(s.encode()).digest()[:4], "big")


_xxh3 = None


def key_point(s):
    """The documented point of a routing key: the high 32 bits of XXH3-64
    (seed 0) of its UTF-8 bytes, from the system's libxxhash (the reference
    implementation; Debian's libxxhash0) through ctypes."""
    global _xxh3
    if _xxh3 is None:
        import ctypes
        import ctypes.util
        lib = ctypes.CDLL(ctypes.util.find_library("xxhash") or "libxxhash.so.0")
        lib.XXH3_64bits.restype = ctypes.c_uint64
        lib.XXH3_64bits.argtypes = [ctypes.c_char_p, ctypes.c_size_t]
        _xxh3 = lib.XXH3_64bits
    b = s.encode()
    return _xxh3(b, len(b)) >> 32


class RingModel:
    """The ring as infergw-ctl --help documents it: member <addr>#<i> for
    i < weight at ring_token(member); a key goes to the first member with
    token >= key_point(key), wrapping, ties by address; drained replicas are
    passed over, and so are replicas already chosen on the way to a second
    choice. Load and health are not modelled."""

    def __init__(self, weights, drained=()):
        self.points = sorted((ring_token("%s#%d" % (a, i)), a)
                             for a, w in weights.items() for i in range(w))
        self.tokens = [t for t, _ in self.points]
        self.drained = set(drained)

    def owner(self, key):
        return self.owner_of_point(key_point(key))

    def owner_of_point(self, point):
        """The replica of the first eligible member at or after <point>."""
        return self.walk_from_point(point, 1)[0]

    def route(self, key, n=2):
        """The first <n> eligible replicas clockwise from <key>'s point (the
        owner, then the second choice...), padded with None."""
        return self.walk_from_point(key_point(key), n)

    def walk_from_point(self, point, n):
        import bisect
        start = bisect.bisect_left(self.tokens, point)
        order = []
        for k in range(len(self.points)):
            addr = self.points[(start + k) % len(self.points)][1]
            if addr not in self.drained and addr not in order:
                order.append(addr)
                if len(order) == n:
                    break
        return (order + [None] * n)[:n]

    def keys_owned_by(self, addr, n, prefix):
        """<n> keys <prefix>-<i> (i = 0, 1, ...) whose owner is <addr>."""
        out = []
        i = 0
        while len(out) < n:
            k = "%s-%d" % (prefix, i)
            if self.owner(k) == addr:
                out.append(k)
            i += 1
            if i >= 100000:
                raise AssertionError("no %d keys %s-<i> owned by %s" % (n, prefix, addr))
        return out

    def shares(self):
        """{address: the fraction of the 2^32 key points it owns}, drained or not."""
        owned = {}
        for i, (t, a) in enumerate(self.points):
            prev = self.points[i - 1][0] if i else self.points[-1][0] - (1 << 32)
            owned[a] = owned.get(a, 0) + t - prev
        return {a: v / float(1 << 32) for a, v in owned.items()}
