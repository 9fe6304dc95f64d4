# SPDX-License-Identifier: Apache-2.0
"""The upstream side under stress that is not the replica's fault.

- Stream ids: an upstream connection whose HTTP/2 stream ids run out is
  retired and replaced before they do (--upstream-stream-id-limit makes the
  last usable id small enough to test); calls and health checks never see it.
- GOAWAY: a replica that sends GOAWAY on two connections while each still
  carries a long call, and one that refuses a stream (GOAWAY with
  last_stream_id 0), is neither ejected nor unreachable: draining connections
  leave their slot, refused streams are routed again.
- Request direction: a replica that stops reading some uploads does not
  block the other calls of the same client connection.
- Local connect failures: a gateway out of descriptors (RLIMIT_NOFILE) that
  cannot open an upstream connection counts a local failure and never marks
  the replica down.
- Replay budget: the request bytes all calls of a worker keep for replay stay
  under --replay-buffer-total; calls beyond it run single-attempt, counted.
- Records: upstream and health records of replicas that left the
  configuration are freed; their number follows the replicas configured now.
"""

import socket
import struct
import threading
import time
import unittest

import grpc
import h2.config
import h2.connection
import h2.events
import h2.errors

import harness as h

FAST = ("--health-interval-ms", "250", "--health-timeout-ms", "250")


def replica_view(admin, addr):
    for r in h.http_json(admin, "/debug/replicas")["replicas"]:
        if r["address"] == addr:
            return r
    return None


def infer(stub, timeout=5.0, size=4, rid="req"):
    """One ModelInfer; returns (status code, seconds, x-replica-id)."""
    t0 = time.monotonic()
    try:
        _, call = stub.ModelInfer.with_call(h.typed_request(h.values(size), rid=rid),
                                            timeout=timeout)
        return grpc.StatusCode.OK, time.monotonic() - t0, h.replica_of(call)
    except grpc.RpcError as e:
        return e.code(), time.monotonic() - t0, e.details()


class StreamIdsTest(unittest.TestCase):
    """--upstream-stream-id-limit 65: a connection can open 33 streams (ids 1..65)."""

    def test_connections_are_replaced_before_their_ids_run_out(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        r = h.start_replica("ids-r0", "--quiet")
        admin = h.free_port()
        gw = h.start_gateway({"demo": [r.addr]}, "--workers", "1", "--admin",
                             "127.0.0.1:%d" % admin, "--upstream-stream-id-limit", "65", *FAST)
        self.addCleanup(h.stop_all, [gw, r])
        with h.channel(gw.addr) as ch:
            stub = h.infer_stub(ch)
            codes = [infer(stub)[0] for _ in range(300)]
        failed = [c for c in codes if c != grpc.StatusCode.OK]
        # 300 quick calls can end before the first check (every 250 ms) has
        # come back: wait for the checker's verdict, whatever it is.
        view = replica_view(admin, r.addr)
        until = time.monotonic() + 5
        while view["health"] == "unknown" and time.monotonic() < until:
            time.sleep(0.1)
            view = replica_view(admin, r.addr)
        retired = h.metric(admin, "infergw_upstream_conns_retired_total", reason="stream_ids")
        checks_failed = (h.metric(admin, "infergw_health_checks_total", replica=r.addr,
                                  result="error") +
                         h.metric(admin, "infergw_health_checks_total", replica=r.addr,
                                  result="timeout"))
        print("stream ids: 300 calls, %d failed, %d connections retired, replica %s, "
              "%d checks failed" % (len(failed), retired, view["health"], checks_failed))
        self.assertEqual(failed, [])
        self.assertGreaterEqual(retired, 300 // 33)
        self.assertEqual(view["health"], "healthy")
        self.assertEqual(checks_failed, 0)


class GoawayReplica:
    """A minimal gRPC server on h2 that answers ModelInfer and Health/Check.
    The first ModelInfer stream of each of its first connections plays a trick:
    on connection 1 it sends GOAWAY with last_stream_id 0 (the stream is
    refused); on connections 2 and 3 it sends GOAWAY(last_stream_id = that
    stream) and answers the stream HOLD_S later, so the connection drains for
    that long. Later connections behave."""

    HOLD_S = 3.0

    def __init__(self, tricks=True):
        self.tricks = tricks
        self.sock = socket.socket()
        self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self.port = h.free_port()
        self.sock.bind(("127.0.0.1", self.port))
        self.sock.listen(64)
        self.addr = "127.0.0.1:%d" % self.port
        self.lock = threading.Lock()
        self.model_conns = 0     # connections that carried a ModelInfer
        self.refused = 0
        self.answered = 0
        self.stop = False
        threading.Thread(target=self._accept, daemon=True).start()

    def close(self):
        self.stop = True
        self.sock.close()

    def _accept(self):
        while not self.stop:
            try:
                s, _ = self.sock.accept()
            except OSError:
                return
            threading.Thread(target=self._serve, args=(s,), daemon=True).start()

    @staticmethod
    def _goaway(last_sid):
        payload = struct.pack(">II", last_sid, 0)
        return len(payload).to_bytes(3, "big") + b"\x07\x00" + b"\x00\x00\x00\x00" + payload

    def _answer(self, conn, sid, path):
        if path.endswith("/Check"):
            msg = h.health_pb2.HealthCheckResponse(status=1).SerializeToString()
        else:
            msg = h.pb.ModelInferResponse(model_name="demo", id="x").SerializeToString()
        conn.send_headers(sid, [(":status", "200"), ("content-type", "application/grpc"),
                                ("x-replica-id", "goaway-srv")])
        conn.send_data(sid, b"\x00" + len(msg).to_bytes(4, "big") + msg)
        conn.send_headers(sid, [("grpc-status", "0")], end_stream=True)
        with self.lock:
            self.answered += 1

    def _serve(self, s):
        conn = h2.connection.H2Connection(
            h2.config.H2Configuration(client_side=False, header_encoding="utf-8"))
        conn.initiate_connection()
        s.sendall(conn.data_to_send())
        s.settimeout(0.02)
        paths, held, stalled = {}, [], set()
        trick, goaway_sid, open_streams = None, None, 0
        try:
            while not self.stop:
                try:
                    data = s.recv(65536)
                    if not data:
                        return
                except socket.timeout:
                    data = None
                out = b""
                for ev in conn.receive_data(data) if data else ():
                    if isinstance(ev, h2.events.RequestReceived):
                        hdrs = dict(ev.headers)
                        paths[ev.stream_id] = hdrs[":path"]
                        if hdrs.get("x-stall") == "1":
                            stalled.add(ev.stream_id)
                        open_streams += 1
                    elif isinstance(ev, h2.events.DataReceived) and ev.stream_id in stalled:
                        # Never reads this stream: its window stays shut; the
                        # connection's is given back, as a sane server does.
                        if ev.flow_controlled_length:
                            conn.increment_flow_control_window(ev.flow_controlled_length)
                    elif isinstance(ev, h2.events.DataReceived):
                        conn.acknowledge_received_data(ev.flow_controlled_length, ev.stream_id)
                    elif isinstance(ev, h2.events.StreamReset):
                        open_streams -= 1
                    elif isinstance(ev, h2.events.StreamEnded):
                        sid, path = ev.stream_id, paths[ev.stream_id]
                        if goaway_sid is not None and sid > goaway_sid:
                            conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                            open_streams -= 1
                            with self.lock:
                                self.refused += 1
                            continue
                        if trick is None and path.endswith("/ModelInfer") and self.tricks:
                            with self.lock:
                                self.model_conns += 1
                                trick = self.model_conns
                            if trick == 1:
                                goaway_sid = 0
                                out += self._goaway(0)
                                conn.reset_stream(sid, h2.errors.ErrorCodes.REFUSED_STREAM)
                                open_streams -= 1
                                with self.lock:
                                    self.refused += 1
                                continue
                            if trick in (2, 3):
                                goaway_sid = sid
                                out += self._goaway(sid)
                                held.append((time.monotonic() + self.HOLD_S, sid))
                                continue
                        self._answer(conn, sid, path)
                        open_streams -= 1
                now = time.monotonic()
                for due, sid in [x for x in held if x[0] <= now]:
                    held.remove((due, sid))
                    self._answer(conn, sid, paths[sid])
                    open_streams -= 1
                out += conn.data_to_send()
                if out:
                    s.sendall(out)
                if goaway_sid is not None and open_streams <= 0 and not held:
                    time.sleep(0.05)
                    return
        except OSError:
            return
        finally:
            s.close()


class GoawayTest(unittest.TestCase):

    def test_goaway_and_refusals_are_not_replica_failures(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        srv = GoawayReplica()
        self.addCleanup(srv.close)
        admin = h.free_port()
        # --outlier-failures 1: any failure reported against the replica ejects it.
        gw = h.start_gateway({"demo": [srv.addr]}, "--workers", "1", "--admin",
                             "127.0.0.1:%d" % admin, "--outlier-failures", "1", *FAST)
        self.addCleanup(h.stop_all, [gw])
        self.assertTrue(h.wait_for(lambda: replica_view(admin, srv.addr)["health"] == "healthy",
                                   5.0))
        with h.channel(gw.addr) as ch:
            stub = h.infer_stub(ch)
            held = []
            for i in range(2):  # each ends up on a connection the replica drains for 3 s
                held.append(stub.ModelInfer.future(h.typed_request(h.values(4)), timeout=10))
                time.sleep(0.5)
            quick = [infer(stub, timeout=2.0) for _ in range(20)]
            slow = []
            for f in held:
                try:
                    f.result()
                    slow.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    slow.append((e.code(), e.details()))
        view = replica_view(admin, srv.addr)
        ejections = h.metric(admin, "infergw_replica_ejections_total", replica=srv.addr)
        bad_quick = [q for q in quick if q[0] != grpc.StatusCode.OK or q[1] > 1.0]
        print("goaway: held calls %s; %d quick calls during the drain, %d failed or slow "
              "(e.g. %s); replica refused %d streams; %d ejections, replica %s"
              % (slow, len(quick), len(bad_quick), bad_quick[:1], srv.refused, ejections,
                 view["health"]))
        self.assertEqual(slow, [grpc.StatusCode.OK] * 2)
        self.assertEqual(bad_quick, [])
        retired = h.metric(admin, "infergw_upstream_conns_retired_total", reason="goaway")
        rerouted = h.metric(admin, "infergw_upstream_refused_rerouted_total")
        print("goaway: %d connections retired, %d refused streams routed again"
              % (retired, rerouted))
        self.assertGreaterEqual(retired, 3)
        self.assertGreaterEqual(rerouted, 1)
        self.assertEqual(ejections, 0)
        self.assertEqual(view["health"], "healthy")
        self.assertFalse(view["ejected"], view)


class RequestDirectionTest(unittest.TestCase):
    """The request direction: a replica stops reading 20 uploads of 2 MiB
    (their stream windows stay shut); on the same client connection, other
    calls must still get their requests through. The gateway holds at most a
    stream window (1 MiB) per stalled upload, so 20 of them would take the
    client connection's whole 16 MiB window if it were given back only as the
    replica reads."""

    def test_stalled_uploads_do_not_block_the_client_connection(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        srv = GoawayReplica(tricks=False)
        self.addCleanup(srv.close)
        gw = h.start_gateway({"demo": [srv.addr]}, "--workers", "1", "--health-interval-ms", "0")
        self.addCleanup(h.stop_all, [gw])
        raw = b"\x01" * (2 * h.MiB)
        with h.channel(gw.addr) as ch:
            stub = h.infer_stub(ch)
            self.assertEqual(infer(stub)[0], grpc.StatusCode.OK)
            stalled = [stub.ModelInfer.future(h.raw_request(raw), metadata=[("x-stall", "1")],
                                              timeout=30) for _ in range(20)]
            time.sleep(1.5)
            quick = [infer(stub, timeout=2.0, size=4096) for _ in range(20)]
            for f in stalled:
                f.cancel()
        bad = [q for q in quick if q[0] != grpc.StatusCode.OK or q[1] > 1.0]
        print("request direction: 20 stalled 2 MiB uploads; %d calls on the same connection, "
              "%d failed or slow (e.g. %s)" % (len(quick), len(bad), bad[:1]))
        self.assertEqual(bad, [])


class LocalFailureTest(unittest.TestCase):
    """RLIMIT_NOFILE 64 and idle client connections take every descriptor;
    a call that needs a second upstream connection finds socket() failing
    with EMFILE. That is the gateway's shortage, not the replica's."""

    def test_emfile_is_not_a_replica_failure(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        r = h.start_replica("emfile-r0", "--quiet", "--latency-ms", "300")
        admin = h.free_port()
        port = h.free_port()
        argv = ["prlimit", "--nofile=64:64", "--", h._bin("infergw"),
                "--listen", "127.0.0.1:%d" % port, "--auth=none", "--workers", "1",
                "--pool", "demo=%s" % r.addr, "--admin", "127.0.0.1:%d" % admin,
                "--upstream-conns", "2", *FAST]
        gw = h.Proc("gateway", argv, port).wait_ready()
        self.addCleanup(h.stop_all, [gw, r])
        self.assertTrue(h.wait_for(lambda: replica_view(admin, r.addr)["health"] == "healthy",
                                   5.0))
        idle = []
        self.addCleanup(lambda: [s.close() for s in idle])
        with h.channel(gw.addr) as ch:
            stub = h.infer_stub(ch)
            self.assertEqual(infer(stub)[0], grpc.StatusCode.OK)
            # Take every descriptor the gateway has left (the admin endpoint,
            # on its own thread, keeps answering with what is left over).
            for _ in range(80):
                idle.append(socket.create_connection(("127.0.0.1", port), timeout=2))
            time.sleep(0.5)
            # Two concurrent calls: the second wants a second upstream connection.
            futs = [stub.ModelInfer.future(h.typed_request(h.values(4)), timeout=5)
                    for _ in range(4)]
            for f in futs:
                try:
                    f.result()
                except grpc.RpcError:
                    pass
            for s in idle:
                s.close()
            idle.clear()
            time.sleep(0.5)
            after = infer(stub)
        events = gw.events()
        unreachable = [e for e in events if e.get("event") == "replica_unreachable"]
        local = [e for e in events if e.get("event") == "upstream_local_failure"]
        print("EMFILE: %d upstream_local_failure lines, %d replica_unreachable lines, call after: "
              "%s" % (len(local), len(unreachable), after[0]))
        self.assertEqual(unreachable, [], "a local shortage was blamed on the replica")
        self.assertGreaterEqual(len(local), 1, "no upstream connect met EMFILE")
        self.assertEqual(after[0], grpc.StatusCode.OK)


class ReplayBudgetTest(unittest.TestCase):
    """--replay-buffer-total 1 MiB; six concurrent 400 KiB requests to a
    replica that takes 600 ms: without the limit the worker keeps 2.4 MiB."""

    def test_replay_buffers_are_bounded_per_worker(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        r = h.start_replica("replay-r0", "--quiet", "--latency-ms", "600")
        admin = h.free_port()
        limit = 1 << 20
        gw = h.start_gateway({"demo": [r.addr]}, "--workers", "1", "--admin",
                             "127.0.0.1:%d" % admin, "--replay-buffer-total", str(limit), *FAST)
        self.addCleanup(h.stop_all, [gw, r])
        n = 100 * 1024  # floats: 400 KiB per request
        raw = struct.pack("<%df" % n, *[float(i % 100) for i in range(n)])
        peak = 0
        with h.channel(gw.addr) as ch:
            stub = h.infer_stub(ch)
            futs = [stub.ModelInfer.future(h.raw_request(raw), timeout=10) for _ in range(6)]
            end = time.monotonic() + 0.5
            while time.monotonic() < end:
                peak = max(peak, h.metric(admin, "infergw_replay_buffer_bytes"))
                time.sleep(0.02)
            codes = []
            for f in futs:
                try:
                    f.result()
                    codes.append(grpc.StatusCode.OK)
                except grpc.RpcError as e:
                    codes.append(e.code())
        over = h.metric(admin, "infergw_replay_budget_exceeded_total")
        logged = [e for e in gw.events() if e.get("event") == "replay_budget_exceeded"]
        after = h.metric(admin, "infergw_replay_buffer_bytes")
        print("replay budget: peak %d bytes held (limit %d), %d calls single-attempt (%d log "
              "lines), %d bytes held after" % (peak, limit, over, len(logged), after))
        self.assertEqual(codes, [grpc.StatusCode.OK] * 6)
        self.assertLessEqual(peak, limit + len(raw) + 64 * 1024)
        self.assertGreaterEqual(over, 1)
        self.assertEqual(len(logged), over)
        self.assertEqual(after, 0)


class RecordsTest(unittest.TestCase):
    """100 replica addresses come and go through Redis; the gateway's upstream
    and health records follow the 5 configured at the end."""

    def test_records_of_replicas_that_left_are_freed(self):
        if h.DIRECT:
            self.skipTest("needs the gateway")
        redis = h.start_redis(name="redis-records")
        url = h.redis_url(redis)
        h.run_ctl(url, "pool", "add", "demo")
        admin = h.free_port()
        gw = h.start_gateway({}, "--redis", url, "--workers", "2", "--admin",
                             "127.0.0.1:%d" % admin, *FAST)
        self.addCleanup(h.stop_all, [gw, redis])
        # Nothing listens on these ports: the records exist all the same.
        base = h.free_port()
        for rnd in range(20):
            addrs = ["127.0.0.1:%d" % (base + rnd * 5 + i) for i in range(5)]
            for a in addrs:
                h.run_ctl(url, "replica", "add", "demo", a)
            time.sleep(0.3)
            for a in addrs if rnd < 19 else ():
                h.run_ctl(url, "replica", "remove", "demo", a)
        time.sleep(2.0)
        # The replicas the health series still name (one per health record).
        named = {lab["replica"] for name, lab, _ in h.scrape(admin)
                 if name == "infergw_replica_health"}
        print("records: 100 addresses named, 5 configured now: %d replicas in "
              "infergw_replica_health" % len(named))
        self.assertLessEqual(len(named), 5)
        ups = h.metric(admin, "infergw_upstream_records")
        recs = h.metric(admin, "infergw_health_records")
        print("records: %d upstream records (2 workers), %d health records" % (ups, recs))
        self.assertLessEqual(ups, 2 * 5)
        self.assertLessEqual(recs, 5)


if __name__ == "__main__":
    unittest.main()
