# SPDX-License-Identifier: Apache-2.0
"""One stalled reader must not take a pool down (flow-control isolation).

The attack: one HTTP/2 client connection announces SETTINGS_INITIAL_WINDOW_SIZE
0, opens STALLED ModelInfer calls whose answers (PAD bytes each, asked for with
the replica's response_pad_bytes parameter) are larger than a stream window,
and never grants a byte of window. Every one of those answers stops in the
gateway. A gateway that gives the upstream connection window back only when the
client takes the bytes lets these streams fill the shared upstream connections'
windows (STALLED x --stream-window-bytes > 2 x --conn-window-bytes), so every
other call on those connections, and the health checks, wait for ever.

The stalled calls are opened over SPREAD_S seconds: 40 answers of 2.5 MiB
opened at once cost the replica itself (infergw-replica, 2 threads) about a
second of work, during which its own latency, measured without any gateway,
goes to a second too; spread out, the replica keeps up and what is measured
is the gateway.

Meanwhile another client calls the same (only) replica at RATE calls/s.
Asserted, over the attack against a baseline of the same load without it:
  - zero of the other client's calls fail, from the first stalled call on;
  - their p99 latency with every stalled call open stays within 2x the
    baseline p99 (the worse of the p99s measured before and after the
    attack, with a floor of P99_FLOOR_S: the scheduling noise of a shared
    2-core machine);
  - the replica stays healthy: /debug/replicas says "healthy" and no health
    check failed during the attack (infergw_health_checks_total).
"""

import os
import signal
import socket
import time
import unittest

import h2.config
import h2.connection
import h2.exceptions
import h2.settings

import harness as h

STALLED = 40
PAD = 2 * h.MiB + 512 * 1024      # larger than the 1 MiB default stream window
RATE = 100.0
PHASE_S = 8.0
SPREAD_S = 2.0                    # the stalled calls are opened over this long
P99_FLOOR_S = 0.010
FAST = ("--health-interval-ms", "250", "--health-timeout-ms", "250")


def p99(records):
    lat = sorted(r["done"] - r["sent"] for r in records)
    return lat[min(len(lat) - 1, int(0.99 * len(lat)))] if lat else 0.0


def stalled_reader(port, n, pad, spread_s=0.0):
    """Opens an h2c connection with initial stream window 0 and sends <n>
    ModelInfer calls asking for <pad>-byte answers, evenly over <spread_s>
    seconds; returns the socket, which is never read (no WINDOW_UPDATE is
    ever sent)."""
    cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
    conn = h2.connection.H2Connection(cfg)
    conn.local_settings = h2.settings.Settings(
        client=True, initial_values={h2.settings.SettingCodes.INITIAL_WINDOW_SIZE: 0,
                                     h2.settings.SettingCodes.ENABLE_PUSH: 0})
    conn.initiate_connection()
    body = h.typed_request(h.values(4), rid="stall",
                           params={"response_pad_bytes": pad}).SerializeToString()
    msg = b"\x00" + len(body).to_bytes(4, "big") + body
    s = socket.create_connection(("127.0.0.1", port), timeout=5)
    for i in range(n):
        sid = conn.get_next_available_stream_id()
        conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                (":path", "/inference.GRPCInferenceService/ModelInfer"),
                                (":authority", "127.0.0.1:%d" % port),
                                ("content-type", "application/grpc"), ("te", "trailers")])
        conn.send_data(sid, msg, end_stream=True)
        s.sendall(conn.data_to_send())
        if spread_s and i + 1 < n:
            time.sleep(spread_s / n)
    return s


class StalledReaderIsolationTest(unittest.TestCase):

    def setUp(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        self.replica = h.start_replica("iso-r0", "--quiet")
        self.admin = h.free_port()
        # One worker: the stalled connection, the other client and the health
        # checks all share the worker's upstream connections.
        self.gw = h.start_gateway({"demo": [self.replica.addr]}, "--workers", "1",
                                  "--admin", "127.0.0.1:%d" % self.admin, *FAST)
        self.addCleanup(h.stop_all, [self.gw, self.replica])
        ok = h.wait_for(lambda: self.health() == "healthy", 5.0)
        self.assertTrue(ok, "replica not healthy after 5 s: %s" % self.health())

    def health(self):
        body = h.http_json(self.admin, "/debug/replicas")
        return [r["health"] for r in body["replicas"] if r["address"] == self.replica.addr][0]

    def failed_checks(self):
        s = h.scrape(self.admin)
        return int(sum(h.metric_sum(s, "infergw_health_checks_total", result=r) or 0
                       for r in ("error", "timeout")))

    def phase(self, load):
        start = len(load.snapshot())
        time.sleep(PHASE_S)
        return load.snapshot()[start:]

    def test_stalled_reader_does_not_take_the_pool_down(self):
        load = h.SteadyLoad(self.gw.addr, ["k%d" % i for i in range(50)], rate=RATE,
                            timeout=5.0).start()
        try:
            time.sleep(1.0)  # warm-up
            base = self.phase(load)
            checks_before = self.failed_checks()
            t_attack = time.time()
            s = stalled_reader(self.gw.port, STALLED, PAD, SPREAD_S)
            try:
                time.sleep(1.0)  # the last answers reach the gateway
                attack = self.phase(load)
                health = self.health()
                checks_failed = self.failed_checks() - checks_before
            finally:
                s.close()
            t_end = time.time()
            time.sleep(1.0)
            after = self.phase(load)  # the same load again, without the attack
        finally:
            rest = load.stop()
        # Every call sent since the attack began, up to the end of the load.
        in_flight = [r for r in rest if t_attack <= r["sent"] < t_end]
        failures = load.failures(in_flight)
        t0 = attack[0]["sent"] if attack else 0
        buckets = {}
        for r in attack:
            b = int((r["sent"] - t0) * 4)
            buckets[b] = max(buckets.get(b, 0), r["done"] - r["sent"])
        print("worst latency per 250 ms of the attack (ms):",
              " ".join("%.0f" % (buckets[b] * 1e3) for b in sorted(buckets)))
        # The reference is the worse of the baselines before and after the
        # attack: the load other processes put on the machine drifts.
        p_base, p_attack = max(p99(base), p99(after)), p99(attack)
        print("stalled reader: %d stalled calls of %d bytes; other client: %d calls, %d failed, "
              "p99 %.1f ms without the attack, %.1f ms with it; replica %s, %d health checks "
              "failed during the attack"
              % (STALLED, PAD, len(in_flight), len(failures), p_base * 1e3, p_attack * 1e3,
                 health, checks_failed))
        self.assertGreater(len(attack), RATE * PHASE_S * 0.8, "the load generator fell behind")
        self.assertEqual(len(failures), 0, "calls of another client failed during the attack, "
                         "e.g. %s" % failures[:3])
        self.assertLessEqual(p_attack, 2 * max(p_base, P99_FLOOR_S),
                             "p99 %.1f ms under attack vs %.1f ms without"
                             % (p_attack * 1e3, p_base * 1e3))
        self.assertEqual(health, "healthy")
        self.assertEqual(checks_failed, 0, "health checks failed while a client stalled")


class ConnBufferTest(unittest.TestCase):
    """What a stalled reader costs in memory: each of its streams may hold a
    stream window of answer (the price of isolation), so the connection's
    total is capped by --max-conn-buffer-bytes: the call that goes past it
    ends with RESOURCE_EXHAUSTED and its bytes are dropped. Without the cap
    (the limit set to its maximum) the same attack holds CONN_STALLED x
    --stream-window-bytes."""

    CAP = 8 * h.MiB
    CONN_STALLED = 60

    def run_attack(self, cap):
        replica = h.start_replica("connbuf-r0", "--quiet")
        admin = h.free_port()
        gw = h.start_gateway({"demo": [replica.addr]}, "--workers", "1", "--admin",
                             "127.0.0.1:%d" % admin, "--max-conn-buffer-bytes", str(cap))
        self.addCleanup(h.stop_all, [gw, replica])
        with h.channel(gw.addr) as ch:  # warm the upstream connections
            h.infer_stub(ch).ModelInfer(h.typed_request(h.values(4)), timeout=5)
        rss0 = gw.rss_kib()
        s = stalled_reader(gw.port, self.CONN_STALLED, PAD)
        try:
            # Until the answers stop arriving: RSS flat for a second.
            last, stable, until = -1, 0, time.monotonic() + 20
            while stable < 4 and time.monotonic() < until:
                time.sleep(0.25)
                rss = gw.rss_kib()
                stable = stable + 1 if rss == last else 0
                last = rss
            grown_mib = (gw.rss_kib() - rss0) / 1024.0
            hits = int(h.metric_sum(h.scrape(admin), "infergw_limit_hits_total",
                                    limit="conn_buffer") or 0)
            with h.channel(gw.addr) as ch:
                h.infer_stub(ch).ModelInfer(h.typed_request(h.values(4)), timeout=5)
        finally:
            s.close()
        return grown_mib, hits

    def test_requests_no_replica_takes_count_too(self):
        """The request direction: the replica is stopped (SIGSTOP), so
        nothing takes the request bytes CONN_STALLED streams send (a stream
        window each, never ending); the gateway gives the connection window
        back on receipt, so without the cap it would hold them all."""
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        replica = h.start_replica("connbuf-req-r0", "--quiet")
        admin = h.free_port()
        gw = h.start_gateway({"demo": [replica.addr]}, "--workers", "1", "--admin",
                             "127.0.0.1:%d" % admin, "--max-conn-buffer-bytes", str(self.CAP))
        self.addCleanup(h.stop_all, [gw, replica])
        with h.channel(gw.addr) as ch:  # the upstream connection is up
            h.infer_stub(ch).ModelInfer(h.typed_request(h.values(4)), timeout=5)
        os.kill(replica.pid, signal.SIGSTOP)
        self.addCleanup(os.kill, replica.pid, signal.SIGCONT)
        rss0 = gw.rss_kib()
        cfg = h2.config.H2Configuration(client_side=True, header_encoding="utf-8")
        conn = h2.connection.H2Connection(cfg)
        conn.initiate_connection()
        sock = socket.create_connection(("127.0.0.1", gw.port), timeout=5)
        sock.sendall(conn.data_to_send())
        # The gateway's SETTINGS (its stream window) before the first stream.
        sock.settimeout(0.5)
        until = time.monotonic() + 5
        while conn.remote_settings.initial_window_size <= 65535 and time.monotonic() < until:
            try:
                conn.receive_data(sock.recv(65536))
            except socket.timeout:
                pass
            sock.sendall(conn.data_to_send())
        sock.settimeout(5)
        chunk = b"\x00" * 16384
        sent = 0
        try:
            for i in range(self.CONN_STALLED):
                sid = conn.get_next_available_stream_id()
                conn.send_headers(sid, [(":method", "POST"), (":scheme", "http"),
                                        (":path", "/inference.GRPCInferenceService/ModelInfer"),
                                        (":authority", "127.0.0.1:%d" % gw.port),
                                        ("content-type", "application/grpc"), ("te", "trailers"),
                                        ("x-model", "demo")])
                # One message header announcing 4 MiB, then as much of it as
                # the stream's window takes.
                conn.send_data(sid, b"\x00" + (4 * h.MiB).to_bytes(4, "big"))
                while conn.local_flow_control_window(sid) >= len(chunk):
                    conn.send_data(sid, chunk)
                    sent += len(chunk)
                sock.sendall(conn.data_to_send())
                # Take in what the gateway answers (window updates, statuses).
                sock.setblocking(False)
                try:
                    while True:
                        data = sock.recv(65536)
                        if not data:
                            break
                        conn.receive_data(data)
                except (BlockingIOError, h2.exceptions.ProtocolError):
                    pass
                sock.setblocking(True)
                sock.sendall(conn.data_to_send())
            time.sleep(1.0)
            grown_mib = (gw.rss_kib() - rss0) / 1024.0
            hits = int(h.metric_sum(h.scrape(admin), "infergw_limit_hits_total",
                                    limit="conn_buffer") or 0)
        finally:
            sock.close()
        print("requests no replica takes: %d streams, %.1f MiB sent, --max-conn-buffer-bytes %d: "
              "RSS +%.1f MiB, %d calls ended" % (self.CONN_STALLED, sent / h.MiB, self.CAP,
                                                 grown_mib, hits))
        self.assertGreater(sent, 3 * self.CAP, "the client could not send enough to test the cap")
        self.assertGreater(hits, 0, "no call was ended by --max-conn-buffer-bytes")
        if not h.gateway_sanitizer():  # ASan's quarantine and shadow make RSS its own
            self.assertLess(grown_mib, 3 * self.CAP / h.MiB,
                            "RSS grew by %.1f MiB with a cap of %d MiB"
                            % (grown_mib, self.CAP // h.MiB))

    def test_a_stalled_connection_holds_at_most_its_buffer_limit(self):
        if h.DIRECT:
            self.skipTest("needs the gateway (INFERGW_IT_DIRECT=1)")
        grown, hits = self.run_attack(self.CAP)
        print("stalled reader, %d calls of %d bytes, --max-conn-buffer-bytes %d: RSS +%.1f MiB, "
              "%d calls ended" % (self.CONN_STALLED, PAD, self.CAP, grown, hits))
        self.assertGreater(hits, 0, "no call was ended by --max-conn-buffer-bytes")
        if not h.gateway_sanitizer():  # ASan's quarantine and shadow make RSS its own
            self.assertLess(grown, 3 * self.CAP / h.MiB,
                            "RSS grew by %.1f MiB with a cap of %d MiB" % (grown, self.CAP // h.MiB))


if __name__ == "__main__":
    unittest.main()
