# SPDX-License-Identifier: Apache-2.0
"""TLS through the gateway: the generated Python client over TLS with the CA
file, h2c and non-h2 clients refused at the handshake, the handshake deadline,
certificate reload on SIGHUP (new connections see the new certificate, a bad
pair keeps the old one), mutual TLS (no certificate or one from another CA
refused at the handshake, a valid one carries its identity), TLS to replicas
with verification, and the start-up checks of the TLS flags.

Certificates are made at test time with the openssl CLI in a scratch
directory; no key is committed."""

import os
import shutil
import signal
import socket
import ssl
import subprocess
import tempfile
import time
import unittest

import grpc

import harness as h

CERTS = None  # the directory of the certificates, made by setUpModule


def _openssl(*args):
    subprocess.run(["openssl"] + list(args), check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.PIPE, timeout=60)


def _ca(d, name):
    _openssl("req", "-x509", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", os.path.join(d, name + ".key"), "-out", os.path.join(d, name + ".pem"),
             "-days", "2", "-subj", "/CN=%s" % name)


def _cert(d, name, ca, subject, san):
    """<name>.pem/.key signed by CA <ca> with <subject> and subjectAltName <san>."""
    key, csr, ext = (os.path.join(d, name + s) for s in (".key", ".csr", ".ext"))
    _openssl("req", "-newkey", "ec", "-pkeyopt", "ec_paramgen_curve:P-256", "-nodes",
             "-keyout", key, "-out", csr, "-subj", subject)
    with open(ext, "w") as f:
        f.write("subjectAltName=%s\n" % san)
    _openssl("x509", "-req", "-in", csr, "-CA", os.path.join(d, ca + ".pem"),
             "-CAkey", os.path.join(d, ca + ".key"), "-CAcreateserial",
             "-out", os.path.join(d, name + ".pem"), "-days", "2", "-extfile", ext)


def setUpModule():
    global CERTS
    CERTS = tempfile.mkdtemp(prefix="%d-tls-" % os.getpid(), dir=h.WORK_DIR)
    _ca(CERTS, "ca")
    _ca(CERTS, "otherca")
    san = "DNS:localhost,IP:127.0.0.1"
    _cert(CERTS, "server1", "ca", "/CN=infergw-test-1", san)
    _cert(CERTS, "server2", "ca", "/CN=infergw-test-2", san)
    _cert(CERTS, "client", "ca", "/CN=tenant-a",
          "DNS:tenant-a.example,URI:spiffe://example.org/tenant-a,IP:10.1.2.3")
    _cert(CERTS, "stranger", "otherca", "/CN=tenant-a", "DNS:tenant-a.example")


def tearDownModule():
    if CERTS:
        shutil.rmtree(CERTS, ignore_errors=True)


def cpath(name):
    return os.path.join(CERTS, name)


def read(name):
    with open(cpath(name), "rb") as f:
        return f.read()


def tls_channel(target, client=None, ready=True):
    """A grpc channel over TLS trusting ca.pem, with client cert <client>."""
    creds = grpc.ssl_channel_credentials(
        root_certificates=read("ca.pem"),
        private_key=read(client + ".key") if client else None,
        certificate_chain=read(client + ".pem") if client else None)
    ch = grpc.secure_channel(target, creds, options=h.CHANNEL_OPTIONS)
    if ready:
        grpc.channel_ready_future(ch).result(timeout=10)
    return ch


def infer(ch, n=4, timeout=10):
    vals = h.values(n)
    resp, call = h.infer_stub(ch).ModelInfer.with_call(h.typed_request(vals), timeout=timeout)
    return vals, resp, call


def metric(admin_port, name, **labels):
    """The value of series <name>{<labels>} on the gateway's /metrics (0 if absent:
    a counter not counted yet)."""
    return h.metric_sum(h.scrape(admin_port), name, **labels) or 0.0


def wait_metric(admin_port, name, at_least, timeout=10.0, **labels):
    end = time.monotonic() + timeout
    while True:
        v = metric(admin_port, name, **labels)
        if v >= at_least or time.monotonic() >= end:
            return v
        time.sleep(0.05)


def failures(admin_port, reason, side="client"):
    return metric(admin_port, "infergw_tls_handshake_failures_total", side=side, reason=reason)


def peer_cert(port, alpn=("h2",), client=None):
    """Handshakes with the gateway using the ssl module; returns
    (the server certificate as a dict, the ALPN protocol agreed)."""
    ctx = ssl.create_default_context(cafile=cpath("ca.pem"))
    if alpn:
        ctx.set_alpn_protocols(list(alpn))
    if client:
        ctx.load_cert_chain(cpath(client + ".pem"), cpath(client + ".key"))
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw:
        with ctx.wrap_socket(raw, server_hostname="localhost") as s:
            return s.getpeercert(), s.selected_alpn_protocol()


def subject_cn(cert):
    for rdn in cert["subject"]:
        for k, v in rdn:
            if k == "commonName":
                return v
    return None


class _TlsGateway(unittest.TestCase):
    """One replica (h2c) behind a gateway started with GATEWAY_TLS flags."""

    GATEWAY_TLS = ()
    LOG_LEVEL = "info"

    @classmethod
    def gateway_tls_args(cls):
        return list(cls.GATEWAY_TLS)

    @classmethod
    def setUpClass(cls):
        cls.replica = h.start_replica(cls.__name__.lower() + "-r0", "--quiet")
        cls.addClassCleanup(lambda: h.stop_all([cls.replica]))
        cls.admin_port = h.free_port()
        cls.gateway = h.start_gateway({"demo": [cls.replica.addr]},
                                      "--admin", "127.0.0.1:%d" % cls.admin_port,
                                      "--log-level", cls.LOG_LEVEL, *cls.gateway_tls_args())
        cls.addClassCleanup(lambda: h.stop_all([cls.gateway]))
        cls.target = cls.gateway.addr

    def assert_refused(self, ch):
        """A call on <ch> fails UNAVAILABLE (the handshake was refused)."""
        with self.assertRaises(grpc.RpcError) as cm:
            infer(ch, timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, cm.exception.details())
        return cm.exception


class TlsFrontEndTest(_TlsGateway):
    """--tls-cert/--tls-key on the gateway (no client certificate asked for)."""

    @classmethod
    def gateway_tls_args(cls):
        # The gateway reads these two files again on SIGHUP.
        cls.live_cert, cls.live_key = cpath("live-cert.pem"), cpath("live-key.pem")
        shutil.copy(cpath("server1.pem"), cls.live_cert)
        shutil.copy(cpath("server1.key"), cls.live_key)
        return ["--tls-cert", cls.live_cert, "--tls-key", cls.live_key,
                "--tls-handshake-timeout-ms", "1000"]

    def test_generated_client_over_tls(self):
        listening = self.gateway.events("listening")
        self.assertIn("TLS", listening[0]["transport"])
        self.assertFalse(self.gateway.events("tls_off"), "TLS is on: no plaintext notice")
        soon = self.gateway.events("tls_certificate_expires_soon")
        self.assertTrue(soon and soon[0]["days_left"] in (1, 2),
                        "the test certificates last 2 days: %r" % (soon,))
        ch = tls_channel(self.target)
        try:
            vals, resp, call = infer(ch, n=6)
            self.assertEqual(call.code(), grpc.StatusCode.OK)
            self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))
            self.assertEqual(h.replica_of(call), self.replica.name[len("replica-"):])
            # Many calls on the one connection: the read and write paths
            # through TLS, messages both ways larger than one TLS record.
            for i in range(20):
                vals = h.values(10000, base=i)
                resp = h.infer_stub(ch).ModelInfer(h.typed_request(vals), timeout=10)
                self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))
        finally:
            ch.close()
        self.assertGreaterEqual(
            metric(self.admin_port, "infergw_tls_handshakes_total", side="client"), 1)

    def test_large_messages_and_streams_over_tls(self):
        """12 MiB each way (TLS writes that fill the socket and resume on
        EPOLLOUT) and a bidi stream, several calls at once on one connection."""
        import struct
        from concurrent.futures import ThreadPoolExecutor
        ch = tls_channel(self.target)
        try:
            stub = h.infer_stub(ch)
            vals = h.values(12 * h.MiB // 4)
            raw = struct.pack("<%df" % len(vals), *vals)
            want = struct.pack("<%df" % len(vals), *h.expected(vals))

            def big(_):
                resp = stub.ModelInfer(h.raw_request(raw, rid="big"), timeout=60)
                return resp.raw_output_contents[0] == want

            def stream(i):
                reqs = [h.typed_request(h.values(8, base=i + k), rid="s%d" % k,
                                        params={"stream_responses": 3}) for k in range(5)]
                outs = [list(r.infer_response.outputs[0].contents.fp32_contents)
                        for r in stub.ModelStreamInfer(iter(reqs), timeout=30)]
                return outs == [h.expected(h.values(8, base=i + k)) for k in range(5)
                                for _ in range(3)]

            with ThreadPoolExecutor(6) as pool:
                results = list(pool.map(big, range(2))) + list(pool.map(stream, range(4)))
            self.assertEqual(results, [True] * 6)
        finally:
            ch.close()

    def test_h2c_client_is_refused(self):
        before = failures(self.admin_port, "not_tls")
        ch = h.channel_unready(self.target)
        try:
            self.assert_refused(ch)
        finally:
            ch.close()
        self.assertGreater(wait_metric(self.admin_port, "infergw_tls_handshake_failures_total",
                                       before + 1, side="client", reason="not_tls"), before)
        ev = self.gateway.wait_event(lambda e: e.get("reason") == "not_tls",
                                     event="tls_handshake_failed")
        self.assertIsNotNone(ev, "no tls_handshake_failed log line for the h2c client")
        self.assertIn("peer", ev)

    def test_client_without_alpn_h2_is_refused(self):
        before = failures(self.admin_port, "no_alpn_h2")
        # ALPN offered without h2: the handshake itself fails.
        with self.assertRaises(ssl.SSLError):
            peer_cert(self.gateway.port, alpn=("http/1.1",))
        # No ALPN at all: the handshake completes, then the gateway closes.
        ctx = ssl.create_default_context(cafile=cpath("ca.pem"))
        with socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10) as raw:
            try:
                with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                    s.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n")
                    self.assertEqual(s.recv(100), b"", "the gateway must close the connection")
            except (ssl.SSLError, ConnectionResetError):
                pass  # TLS 1.3: the refusal may surface as an error instead
        self.assertGreaterEqual(wait_metric(self.admin_port, "infergw_tls_handshake_failures_total",
                                            before + 2, side="client", reason="no_alpn_h2"),
                                before + 2)

    def test_tls12_client_works(self):
        ctx = ssl.create_default_context(cafile=cpath("ca.pem"))
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        ctx.set_alpn_protocols(["h2"])
        with socket.create_connection(("127.0.0.1", self.gateway.port), timeout=10) as raw:
            with ctx.wrap_socket(raw, server_hostname="localhost") as s:
                self.assertEqual(s.version(), "TLSv1.2")
                self.assertEqual(s.selected_alpn_protocol(), "h2")

    def test_idle_socket_is_closed_after_the_handshake_timeout(self):
        before = failures(self.admin_port, "timeout")
        with socket.create_connection(("127.0.0.1", self.gateway.port), timeout=15) as s:
            self.assertEqual(s.recv(100), b"", "a silent client must be disconnected")
        self.assertGreater(wait_metric(self.admin_port, "infergw_tls_handshake_failures_total",
                                       before + 1, side="client", reason="timeout"), before)

    def test_sighup_reload(self):
        cert, alpn = peer_cert(self.gateway.port)
        self.assertEqual(alpn, "h2")
        first = subject_cn(cert)
        self.assertIn(first, ("infergw-test-1", "infergw-test-2"))
        new = "server2" if first == "infergw-test-1" else "server1"
        old_ch = tls_channel(self.target)  # a connection made before the reload
        try:
            infer(old_ch)
            # Replace the files (key first is fine: they are read on SIGHUP only).
            shutil.copy(cpath(new + ".key"), self.live_key)
            shutil.copy(cpath(new + ".pem"), self.live_cert)
            n = len(self.gateway.events("tls_reloaded"))
            self.gateway.send_signal(signal.SIGHUP)
            self.assertEqual(self.gateway.wait_count("tls_reloaded", n + 1, timeout=10), n + 1,
                             self.gateway.tail())
            cert2, _ = peer_cert(self.gateway.port)
            self.assertNotEqual(cert2["serialNumber"], cert["serialNumber"])
            self.assertEqual(subject_cn(cert2), "infergw-test-" + new[-1])
            # The connection made with the old certificate still serves.
            infer(old_ch)
            ch = tls_channel(self.target)
            try:
                infer(ch)
            finally:
                ch.close()

            # A key that does not match the certificate: the reload is
            # refused, and new connections keep the certificate in use.
            other = "server1" if new == "server2" else "server2"
            shutil.copy(cpath(other + ".key"), self.live_key)
            m = len(self.gateway.events("tls_reload_failed"))
            self.gateway.send_signal(signal.SIGHUP)
            self.assertEqual(self.gateway.wait_count("tls_reload_failed", m + 1, timeout=10), m + 1)
            ev = self.gateway.events("tls_reload_failed")[-1]
            self.assertIn("does not match", ev["error"])
            cert3, _ = peer_cert(self.gateway.port)
            self.assertEqual(cert3["serialNumber"], cert2["serialNumber"])
        finally:
            old_ch.close()
            shutil.copy(cpath(new + ".key"), self.live_key)
        self.assertTrue(self.gateway.popen.poll() is None, "SIGHUP must not stop the gateway")


class MutualTlsTest(_TlsGateway):
    """--tls-client-ca: a client certificate from that CA is required."""

    LOG_LEVEL = "debug"

    @classmethod
    def gateway_tls_args(cls):
        return ["--tls-cert", cpath("server1.pem"), "--tls-key", cpath("server1.key"),
                "--tls-client-ca", cpath("ca.pem")]

    def test_no_client_certificate_is_refused(self):
        before = failures(self.admin_port, "no_peer_certificate")
        ch = tls_channel(self.target, ready=False)
        try:
            self.assert_refused(ch)
        finally:
            ch.close()
        self.assertGreater(wait_metric(self.admin_port, "infergw_tls_handshake_failures_total",
                                       before + 1, side="client", reason="no_peer_certificate"),
                           before)
        self.assertIsNotNone(self.gateway.wait_event(
            lambda e: e.get("reason") == "no_peer_certificate", event="tls_handshake_failed"))

    def test_certificate_from_another_ca_is_refused(self):
        before = failures(self.admin_port, "certificate_verify_failed")
        ch = tls_channel(self.target, client="stranger", ready=False)
        try:
            self.assert_refused(ch)
        finally:
            ch.close()
        self.assertGreater(wait_metric(self.admin_port, "infergw_tls_handshake_failures_total",
                                       before + 1, side="client",
                                       reason="certificate_verify_failed"), before)
        ev = self.gateway.wait_event(lambda e: e.get("reason") == "certificate_verify_failed",
                                     event="tls_handshake_failed")
        self.assertIsNotNone(ev)
        self.assertIn("certificate verify failed", ev["detail"])

    def test_valid_client_certificate_works_and_carries_its_identity(self):
        n = len(self.gateway.events("client_tls"))
        ch = tls_channel(self.target, client="client")
        try:
            vals, resp, call = infer(ch)
            self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))
        finally:
            ch.close()
        self.assertGreater(self.gateway.wait_count("client_tls", n + 1), n)
        ev = self.gateway.events("client_tls")[-1]
        self.assertTrue(ev["peer_verified"])
        self.assertEqual(ev["peer_cn"], "tenant-a")
        self.assertEqual(ev["peer_sans"], ["DNS:tenant-a.example",
                                           "URI:spiffe://example.org/tenant-a", "IP:10.1.2.3"])

    def test_no_key_material_in_the_log(self):
        text = self.gateway.log_text()
        self.assertNotIn("PRIVATE KEY", text)
        for name in ("server1.key", "client.key"):
            body = b"".join(l for l in read(name).splitlines() if not l.startswith(b"-----"))
            self.assertNotIn(body[:40].decode(), text)


class UpstreamTlsTest(unittest.TestCase):
    """--upstream-tls-ca: the gateway reaches a TLS replica and verifies it."""

    @classmethod
    def setUpClass(cls):
        cls.replica = h.start_replica("tls-r0", "--quiet", "--tls-cert", cpath("server1.pem"),
                                      "--tls-key", cpath("server1.key"))
        cls.addClassCleanup(lambda: h.stop_all([cls.replica]))

    def start_gateway(self, ca):
        admin = h.free_port()
        gw = h.start_gateway({"demo": [self.replica.addr]}, "--admin", "127.0.0.1:%d" % admin,
                             "--upstream-tls-ca", ca if os.path.isabs(ca) else cpath(ca))
        self.addCleanup(lambda: h.stop_all([gw]))
        return gw, admin

    def test_tls_replica_with_the_right_ca(self):
        gw, admin = self.start_gateway("ca.pem")
        self.assertTrue(gw.events("tls_off"), "h2c towards clients must be logged at start")
        ch = h.channel(gw.addr)
        try:
            vals, resp, call = infer(ch)
            self.assertEqual(list(resp.outputs[0].contents.fp32_contents), h.expected(vals))
            self.assertEqual(h.replica_of(call), "tls-r0")
        finally:
            ch.close()
        self.assertGreaterEqual(metric(admin, "infergw_tls_handshakes_total", side="upstream"), 1)

    def test_tls_replica_with_a_wrong_ca_fails_unavailable(self):
        gw, admin = self.start_gateway("otherca.pem")
        ch = h.channel(gw.addr)
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                infer(ch)
        finally:
            ch.close()
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE, cm.exception.details())
        self.assertTrue(cm.exception.details(), "the failure needs a message")
        ev = gw.wait_event(lambda e: "certificate verify failed" in e.get("reason", ""),
                           event="replica_unreachable")
        self.assertIsNotNone(ev, gw.tail())
        self.assertGreaterEqual(metric(admin, "infergw_tls_handshake_failures_total",
                                       side="upstream", reason="certificate_verify_failed"), 1)


    def test_client_certificate_towards_a_replica_that_requires_one(self):
        r = h.start_replica("tls-mtls-r0", "--quiet", "--tls-cert", cpath("server1.pem"),
                            "--tls-key", cpath("server1.key"), "--tls-client-ca", cpath("ca.pem"))
        self.addCleanup(lambda: h.stop_all([r]))
        for client, works in ((("client.pem", "client.key"), True), (None, False)):
            args = ["--upstream-tls-ca", cpath("ca.pem")]
            if client:
                args += ["--upstream-tls-cert", cpath(client[0]),
                         "--upstream-tls-key", cpath(client[1])]
            gw = h.start_gateway({"demo": [r.addr]}, "--admin", "off", *args)
            ch = h.channel(gw.addr)
            try:
                if works:
                    vals, resp, call = infer(ch)
                    self.assertEqual(h.replica_of(call), "tls-mtls-r0")
                else:
                    with self.assertRaises(grpc.RpcError) as cm:
                        infer(ch)
                    self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            finally:
                ch.close()
                h.stop_all([gw])

    def test_sighup_reloads_the_replica_ca(self):
        live = cpath("live-upstream-ca.pem")
        shutil.copy(cpath("otherca.pem"), live)
        gw, admin = self.start_gateway(live)
        ch = h.channel(gw.addr)
        try:
            with self.assertRaises(grpc.RpcError) as cm:
                infer(ch)
            self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAVAILABLE)
            shutil.copy(cpath("ca.pem"), live)
            gw.send_signal(signal.SIGHUP)
            self.assertIsNotNone(gw.wait_event(lambda e: e.get("side") == "upstream",
                                               event="tls_reloaded", timeout=10), gw.tail())
            # The replica is in connect backoff (up to 5 s): new connections
            # made after the reload use the new CA.
            end, ok = time.monotonic() + 20, False
            while not ok and time.monotonic() < end:
                try:
                    vals, resp, call = infer(ch)
                    ok = list(resp.outputs[0].contents.fp32_contents) == h.expected(vals)
                except grpc.RpcError:
                    time.sleep(0.2)
            self.assertTrue(ok, "no successful call after reloading the right CA:\n" + gw.tail())
        finally:
            ch.close()


class TlsFlagsTest(unittest.TestCase):
    """Bad TLS flags stop the gateway at start with exit code 2 and a message."""

    def run_gateway(self, *args):
        argv = [h._bin("infergw"), "--listen", "127.0.0.1:%d" % h.free_port(), "--auth=none",
                "--admin", "off", "--pool", "demo=127.0.0.1:1"] + list(args)
        p = subprocess.run(argv, capture_output=True, text=True, timeout=30)
        for marker in h.SANITIZER_MARKERS:
            self.assertNotIn(marker, p.stderr)
        return p

    def assert_refused(self, args, message):
        p = self.run_gateway(*args)
        self.assertEqual(p.returncode, 2, p.stderr)
        self.assertIn(message, p.stderr)

    def test_key_does_not_match_certificate(self):
        self.assert_refused(["--tls-cert", cpath("server1.pem"), "--tls-key", cpath("client.key")],
                            "--tls-key")

    def test_missing_file(self):
        self.assert_refused(["--tls-cert", cpath("nope.pem"), "--tls-key", cpath("server1.key")],
                            "No such file or directory")

    def test_not_a_certificate(self):
        self.assert_refused(["--tls-cert", cpath("server1.ext"), "--tls-key",
                             cpath("server1.key")], "--tls-cert")

    def test_cert_without_key(self):
        self.assert_refused(["--tls-cert", cpath("server1.pem")], "--tls-key")

    def test_client_ca_without_cert(self):
        self.assert_refused(["--tls-client-ca", cpath("ca.pem")], "--tls-client-ca needs")

    def test_bad_upstream_ca(self):
        self.assert_refused(["--upstream-tls-ca", cpath("server1.key")], "--upstream-tls-ca")

    def test_help_lists_the_tls_flags(self):
        p = subprocess.run([h._bin("infergw"), "--help"], capture_output=True, text=True,
                           timeout=10)
        for flag in ("--tls-cert", "--tls-key", "--tls-client-ca", "--tls-handshake-timeout-ms",
                     "--upstream-tls-ca", "--upstream-tls-cert", "--upstream-tls-key"):
            self.assertIn(flag, p.stdout)


if __name__ == "__main__":
    unittest.main()
