# SPDX-License-Identifier: Apache-2.0
"""Authentication and authorization (--auth=on): API keys and tenants from
Redis (written with infergw-ctl, or directly for an expired key), JWTs
(RS256 and ES256 from PEM/JWKS files, HS256 from a JWKS oct key) made here
with the `cryptography` module, the example plugin loaded with --plugin, and
a plugin built for another ABI refused at start.

Every refusal must be UNAUTHENTICATED (or PERMISSION_DENIED for a model
outside the tenant's list) with a message saying why and never containing
the credential, and no refused call may reach a replica: the replicas log one
"call" event per call they serve, and the counts of inference calls must not
move (the gateway's own grpc.health.v1 checks are logged too, and left out). At the end
the logs of every process (the gateway at debug level) are searched for
every key and token used.
"""
import base64
import datetime
import hashlib
import hmac
import json
import os
import tempfile
import time
import unittest

import grpc
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, padding, rsa
from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature
from cryptography.x509.oid import NameOID

import harness as h

ISSUER = "https://issuer.example"
AUDIENCE = "infer-gw"


def b64url(b):
    return base64.urlsafe_b64encode(b).rstrip(b"=").decode()


class Signer:
    """Makes JWTs: RS256 and ES256 with keys generated here, HS256 with a secret."""

    def __init__(self):
        self.rsa = rsa.generate_private_key(public_exponent=65537, key_size=2048)
        self.ec = ec.generate_private_key(ec.SECP256R1())
        self.secret = os.urandom(32)

    def rsa_pem(self):
        return self.rsa.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)

    def jwks(self):
        nums = self.ec.public_key().public_numbers()
        return {"keys": [
            {"kty": "EC", "crv": "P-256", "kid": "ec-1", "alg": "ES256",
             "x": b64url(nums.x.to_bytes(32, "big")), "y": b64url(nums.y.to_bytes(32, "big"))},
            {"kty": "oct", "kid": "hs-1", "k": b64url(self.secret)},
        ]}

    def token(self, alg, claims, kid=None, header=None, hs_key=None):
        hdr = dict(header or {"alg": alg, "typ": "JWT"})
        if kid:
            hdr["kid"] = kid
        signing_input = (b64url(json.dumps(hdr).encode()) + "." +
                         b64url(json.dumps(claims).encode())).encode()
        if alg == "RS256":
            sig = self.rsa.sign(signing_input, padding.PKCS1v15(), hashes.SHA256())
        elif alg == "ES256":
            r, s = decode_dss_signature(self.ec.sign(signing_input, ec.ECDSA(hashes.SHA256())))
            sig = r.to_bytes(32, "big") + s.to_bytes(32, "big")
        elif alg == "HS256":
            sig = hmac.new(hs_key or self.secret, signing_input, hashlib.sha256).digest()
        else:
            sig = b""
        return signing_input.decode() + "." + b64url(sig)


def claims(sub="acme", exp_in=600, **extra):
    now = int(time.time())
    c = {"sub": sub, "iss": ISSUER, "aud": AUDIENCE, "exp": now + exp_in, "iat": now}
    c.update(extra)
    return c


def md(token):
    return [("authorization", "Bearer " + token)]


@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class AuthTest(unittest.TestCase):
    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.addClassCleanup(lambda: h.stop_all(cls.procs))
        cls.tmp = tempfile.mkdtemp(prefix="auth-", dir=h.WORK_DIR)
        cls.signer = Signer()
        cls.rsa_path = os.path.join(cls.tmp, "rsa-1.pem")  # kid "rsa-1"
        with open(cls.rsa_path, "wb") as f:
            f.write(cls.signer.rsa_pem())
        cls.jwks_path = os.path.join(cls.tmp, "jwks.json")
        with open(cls.jwks_path, "w") as f:
            json.dump(cls.signer.jwks(), f)

        cls.redis = h.start_redis()
        cls.procs.append(cls.redis)
        cls.url = h.redis_url(cls.redis)
        cls.r_demo = h.start_replica("auth-demo")
        cls.r_other = h.start_replica("auth-other", "--model", "other")
        cls.procs += [cls.r_demo, cls.r_other]
        h.run_ctl(cls.url, "tenant", "add", "acme", "--models", "demo")
        h.run_ctl(cls.url, "tenant", "add", "slow", "--models", "*", "--rps", "0.01",
                  "--burst", "1")
        cls.key = h.run_ctl(cls.url, "key", "create", "acme").stdout.strip().split()[-1]
        cls.revoked = h.run_ctl(cls.url, "key", "create", "acme").stdout.strip().split()[-1]
        cls.slow_key = h.run_ctl(cls.url, "key", "create", "slow").stdout.strip().split()[-1]
        # An expired key cannot be made with infergw-ctl: write its record.
        cls.expired = "igwtest" + b64url(os.urandom(24))
        sha = hashlib.sha256(cls.expired.encode()).hexdigest()
        h.redis_query(cls.redis.port, "HSET", "infergw:apikey:" + sha, "tenant", "acme",
                      "expires_at", str(int(time.time()) - 3600))
        h.redis_query(cls.redis.port, "INCR", "infergw:version")
        h.redis_query(cls.redis.port, "PUBLISH", "infergw:changed", "test")

        cls.admin_port = h.free_port()
        cls.access_log = os.path.join(cls.tmp, "access.log")
        cls.gw = h.start_gateway(
            {"demo": [cls.r_demo.addr], "other": [cls.r_other.addr]},
            "--auth=on", "--redis", cls.url, "--log-level", "debug",
            "--access-log", cls.access_log,
            "--admin", "127.0.0.1:%d" % cls.admin_port,
            "--jwt-keys", cls.rsa_path, "--jwt-keys", cls.jwks_path,
            "--jwt-issuer", ISSUER, "--jwt-audience", AUDIENCE)
        cls.procs.insert(0, cls.gw)
        cls.ch = h.channel(cls.gw.addr)
        cls.addClassCleanup(cls.ch.close)
        cls.stub = h.infer_stub(cls.ch)
        cls.used = [cls.key, cls.revoked, cls.slow_key, cls.expired]  # searched in the logs

        # The gateway loaded the records when the valid key works.
        cls.expected_served = 1
        end = time.monotonic() + 15
        while True:
            try:
                cls.stub.ModelInfer(h.typed_request(h.values(2)), metadata=md(cls.key),
                                    timeout=5)
                break
            except grpc.RpcError as e:
                if time.monotonic() > end:
                    raise AssertionError("valid API key still refused: %s %s"
                                         % (e.code(), e.details()))
                time.sleep(0.1)

    # --- helpers -------------------------------------------------------------

    def served(self):
        """Inference calls the replicas logged (not the gateway's health checks)."""
        return sum(1 for r in (self.r_demo, self.r_other) for ev in r.events("call")
                   if ev.get("method", "").startswith("/inference."))

    def infer(self, metadata, model="demo"):
        return self.stub.ModelInfer(h.typed_request(h.values(3), model=model), metadata=metadata,
                                    timeout=5)

    def assertRefused(self, metadata, code, why, secret=None, model="demo"):
        """The call fails with <code>, a message containing <why> and not <secret>,
        and no replica served anything meanwhile."""
        # Every call that succeeded so far is in the replicas' logs first.
        end = time.monotonic() + 5
        while self.served() < self.expected_served and time.monotonic() < end:
            time.sleep(0.02)
        before = self.served()
        self.assertEqual(before, self.expected_served)
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer(metadata, model)
        e = cm.exception
        self.assertEqual(e.code(), code, e.details())
        self.assertIn(why, e.details())
        if secret:
            self.used.append(secret)
            self.assertNotIn(secret, e.details())
            for part in secret.split("."):
                if len(part) > 8:
                    self.assertNotIn(part, e.details())
        # A call that went through would be logged before it returned.
        self.assertEqual(self.served(), before, "a refused call reached a replica")
        return e.details()

    def ok_call(self, metadata, model="demo"):
        """One call that must succeed; returns the replica id that served it."""
        _, call = self.stub.ModelInfer.with_call(
            h.typed_request(h.values(3), model=model), metadata=metadata, timeout=5)
        type(self).expected_served += 1
        return h.replica_of(call)

    def assertOk(self, metadata, model="demo"):
        self.assertIn(self.ok_call(metadata, model), ("auth-demo", "auth-other"))

    # --- API keys ----------------------------------------------------------------

    def test_health_check_needs_no_credentials(self):
        resp = h.health_stub(self.ch).Check(h.health_pb2.HealthCheckRequest(), timeout=5)
        self.assertEqual(resp.status, h.health_pb2.HealthCheckResponse.SERVING)

    def test_no_credentials(self):
        self.assertRefused(None, grpc.StatusCode.UNAUTHENTICATED, "no credentials")
        self.assertRefused([("authorization", "Basic dXNlcjpwdw==")],
                           grpc.StatusCode.UNAUTHENTICATED, "not 'Bearer <token>'",
                           secret="dXNlcjpwdw==")

    def test_wrong_key(self):
        wrong = "igwtest" + b64url(os.urandom(24))
        self.assertRefused(md(wrong), grpc.StatusCode.UNAUTHENTICATED, "API key not recognised",
                           secret=wrong)

    def test_expired_key(self):
        self.assertRefused(md(self.expired), grpc.StatusCode.UNAUTHENTICATED, "API key expired",
                           secret=self.expired)

    def test_revoked_key(self):
        self.assertOk(md(self.revoked))
        h.run_ctl(self.url, "key", "revoke", self.revoked)
        end = time.monotonic() + 10
        while True:
            try:
                self.infer(md(self.revoked))
                type(self).expected_served += 1
            except grpc.RpcError as e:
                self.assertEqual(e.code(), grpc.StatusCode.UNAUTHENTICATED, e.details())
                break
            self.assertLess(time.monotonic(), end, "revoked key still accepted after 10 s")
            time.sleep(0.05)
        self.assertRefused(md(self.revoked), grpc.StatusCode.UNAUTHENTICATED,
                           "API key not recognised", secret=self.revoked)

    def test_valid_key(self):
        self.assertOk(md(self.key))

    def test_credentials_stop_at_the_gateway(self):
        """The replica serves the call but never sees its authorization."""
        before = self.served()
        self.assertOk(md(self.key))
        end = time.monotonic() + 5
        while self.served() == before and time.monotonic() < end:
            time.sleep(0.02)
        calls = [ev for r in (self.r_demo, self.r_other) for ev in r.events("call")
                 if ev.get("method", "").startswith("/inference.")]
        self.assertGreater(len(calls), 0)
        self.assertFalse(any(ev.get("authorization") for ev in calls), calls[-1])

    def test_key_for_model_outside_tenant(self):
        self.assertRefused(md(self.key), grpc.StatusCode.PERMISSION_DENIED,
                           "tenant 'acme' may not call model 'other'", secret=self.key,
                           model="other")

    def test_rate_limited_tenant(self):
        # rps 0.01, burst 1: the first call takes the only token for 100 s.
        self.assertOk(md(self.slow_key), model="other")
        detail = self.assertRefused(md(self.slow_key), grpc.StatusCode.RESOURCE_EXHAUSTED,
                                    "over its rate limit", secret=self.slow_key, model="other")
        self.assertIn("retry in", detail)
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer(md(self.slow_key), model="other")
        pushback = h.md_get(cm.exception.trailing_metadata(), "grpc-retry-pushback-ms")
        self.assertIsNotNone(pushback)
        self.assertGreater(int(pushback), 1000)  # the next token is ~100 s away

    # --- JWT -----------------------------------------------------------------------

    def test_valid_jwts(self):
        s = self.signer
        for tok in (s.token("RS256", claims(), kid="rsa-1"),
                    s.token("RS256", claims()),  # the only RSA key
                    s.token("ES256", claims(), kid="ec-1"),
                    s.token("HS256", claims(aud=["other", AUDIENCE]), kid="hs-1")):
            self.used.append(tok)
            self.assertOk(md(tok))
            self.assertOk(md(tok))  # again, from the worker's cache

    def test_sighup_reloads_jwt_keys(self):
        import signal
        tok = self.signer.token("ES256", claims(), kid="ec-1")
        self.used.append(tok)
        self.assertOk(md(tok))
        before = len(self.gw.events("auth_reloaded"))
        self.gw.send_signal(signal.SIGHUP)
        self.assertGreater(self.gw.wait_count("auth_reloaded", before + 1, timeout=10), before)
        self.assertOk(md(tok))  # verified again with the reloaded keys

    def test_forged_signature(self):
        s = self.signer
        good = s.token("RS256", claims(), kid="rsa-1")
        evil = s.token("RS256", claims(sub="acme", admin=True), kid="rsa-1")
        forged = evil.rsplit(".", 1)[0] + "." + good.rsplit(".", 1)[1]
        self.assertRefused(md(forged), grpc.StatusCode.UNAUTHENTICATED,
                           "signature does not verify", secret=forged)
        other = ec.generate_private_key(ec.SECP256R1())
        s2 = Signer.__new__(Signer)
        s2.ec = other
        tok = s2.token("ES256", claims(), kid="ec-1")
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED,
                           "signature does not verify", secret=tok)

    def test_expired_and_not_yet_valid(self):
        s = self.signer
        tok = s.token("ES256", claims(exp_in=-120), kid="ec-1")
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "JWT expired", secret=tok)
        tok = s.token("ES256", claims(nbf=int(time.time()) + 300), kid="ec-1")
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "not yet valid", secret=tok)

    def test_wrong_audience_and_issuer(self):
        s = self.signer
        tok = s.token("RS256", claims(aud="someone-else"), kid="rsa-1")
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "audience", secret=tok)
        tok = s.token("RS256", claims(aud=["a", "b"]), kid="rsa-1")
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "audience", secret=tok)
        tok = s.token("RS256", claims(iss="https://evil.example"), kid="rsa-1")
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "issuer", secret=tok)

    def test_alg_none(self):
        tok = self.signer.token("none", claims(), header={"alg": "none"})
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "alg 'none' is refused",
                           secret=tok)

    def test_hs256_with_rsa_public_key_as_secret(self):
        pem = self.signer.rsa_pem()
        tok = self.signer.token("HS256", claims(), kid="rsa-1", hs_key=pem)
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "does not fit", secret=tok)
        # Without kid the HS256 token goes to the one HMAC key, and fails there.
        tok = self.signer.token("HS256", claims(), hs_key=pem)
        self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED,
                           "signature does not verify", secret=tok)

    def test_jwt_for_model_outside_tenant_and_unknown_tenant(self):
        tok = self.signer.token("ES256", claims(), kid="ec-1")
        self.assertRefused(md(tok), grpc.StatusCode.PERMISSION_DENIED,
                           "may not call model 'other'", secret=tok, model="other")
        tok = self.signer.token("ES256", claims(sub="ghost"), kid="ec-1")
        self.assertRefused(md(tok), grpc.StatusCode.PERMISSION_DENIED,
                           "tenant 'ghost' is not configured", secret=tok)

    def test_malformed_jwt(self):
        for tok in ("a.b.c", "e30.e30.", "x" * 20 + "." + "y" * 20 + "." + "z" * 20):
            self.assertRefused(md(tok), grpc.StatusCode.UNAUTHENTICATED, "JWT", secret=tok)

    # --- metrics and logs -------------------------------------------------------------

    def read_access_log(self):
        try:
            with open(self.access_log) as f:
                return f.read()
        except FileNotFoundError:
            return ""

    def test_zz_metrics_and_no_secrets_in_logs(self):
        # Runs last (name order): every other test has used its credentials.
        self.assertRefused(md("igwtest-unknown-key"), grpc.StatusCode.UNAUTHENTICATED,
                           "not recognised", secret="igwtest-unknown-key")
        text = h.http_text(self.admin_port, "/metrics")
        for reason in ("no_credentials", "unknown_key", "expired", "bad_signature",
                       "bad_algorithm", "bad_claims", "model_not_allowed"):
            line = [l for l in text.splitlines()
                    if l.startswith('infergw_auth_failures_total{reason="%s"}' % reason)]
            self.assertTrue(line and int(line[0].split()[-1]) > 0, (reason, line))
        self.assertIn('infergw_ratelimited_total{tenant="slow"}', text)
        # Every credential of this class, in every log of this run.
        self.assertEqual(self.served(), self.expected_served)
        logs = "".join(p.log_text() for p in self.procs)
        self.assertIn('"event":"auth_refused"', logs)  # debug lines were written
        end = time.monotonic() + 5  # access log lines are written within 200 ms
        while '"tenant":"acme"' not in self.read_access_log() and time.monotonic() < end:
            time.sleep(0.05)
        access = self.read_access_log()
        self.assertIn('"tenant":"acme"', access)
        # A call refused by its tenant's rate limit is logged with that tenant.
        limited = [e for e in (json.loads(l) for l in access.splitlines() if l.strip())
                   if e.get("status") == "RESOURCE_EXHAUSTED"]
        self.assertTrue(limited, "no RESOURCE_EXHAUSTED line in the access log")
        self.assertEqual({e.get("tenant") for e in limited}, {"slow"})
        logs += access
        for secret in self.used:
            self.assertNotIn(secret, logs)
            for part in secret.split("."):
                if len(part) > 8:
                    self.assertNotIn(part, logs)
            # Nor its SHA-256 in full (the gateway logs hashes of nothing).
            self.assertNotIn(hashlib.sha256(secret.encode()).hexdigest(), logs)


@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class PluginTest(unittest.TestCase):
    """The example plugin loaded with --plugin ahead of the built-ins, tenants
    and API keys from --tenants/--api-keys files."""

    @classmethod
    def setUpClass(cls):
        cls.procs = []
        cls.addClassCleanup(lambda: h.stop_all(cls.procs))
        cls.tmp = tempfile.mkdtemp(prefix="plugin-", dir=h.WORK_DIR)
        cls.lib = os.path.normpath(os.path.join(h.BIN_DIR, "..", "lib"))
        tenants = os.path.join(cls.tmp, "tenants")
        with open(tenants, "w") as f:
            f.write("team-x models=demo\nacme models=*\n")
        cls.key = "igwtest" + b64url(os.urandom(24))
        keys = os.path.join(cls.tmp, "keys")
        with open(keys, "w") as f:
            f.write("%s tenant=acme\n" % hashlib.sha256(cls.key.encode()).hexdigest())
        cls.replica = h.start_replica("plugin-r")
        cls.procs.append(cls.replica)
        cls.gw = h.start_gateway(
            {"demo": [cls.replica.addr]}, "--auth=on", "--tenants", tenants, "--api-keys", keys,
            "--plugin", os.path.join(cls.lib, "infergw-plugin-example.so") +
            ":secret=s3cret-value,tenant=team-x")
        cls.procs.insert(0, cls.gw)
        cls.ch = h.channel(cls.gw.addr)
        cls.addClassCleanup(cls.ch.close)
        cls.stub = h.infer_stub(cls.ch)

    def infer(self, metadata):
        return self.stub.ModelInfer.with_call(h.typed_request(h.values(2)), metadata=metadata,
                                              timeout=5)

    def test_example_plugin(self):
        _, call = self.infer([("x-shared-secret", "s3cret-value")])
        self.assertEqual(h.replica_of(call), "plugin-r")
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer([("x-shared-secret", "s3cret-wrong")])
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertEqual(cm.exception.details(), "x-shared-secret does not match")
        # Calls the plugin does not claim go on down the chain (API key).
        _, call = self.infer(md(self.key))
        self.assertEqual(h.replica_of(call), "plugin-r")
        with self.assertRaises(grpc.RpcError) as cm:
            self.infer(None)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn('"chain":["example","apikey"]', self.gw.log_text())

    def test_plugin_for_another_abi_refused_at_start(self):
        gw = h.start_gateway({"demo": [self.replica.addr]}, "--auth=on", "--plugin",
                             os.path.join(self.lib, "infergw-plugin-badabi.so"), wait=False)
        self.assertEqual(gw.wait_exit(15), 2)
        gw.check_sanitizers()
        self.assertIn("built for plugin ABI version 2, but this infergw speaks version 1",
                      gw.log_text())

    def test_bad_plugin_path_and_args_refused_at_start(self):
        for args in (["--plugin", "/nonexistent/plugin.so"],
                     ["--plugin", os.path.join(self.lib, "infergw-plugin-example.so")],
                     ["--jwt-keys", "/nonexistent/keys.json"],
                     ["--auth=none", "--jwt-keys", "/nonexistent/keys.json"]):
            gw = h.start_gateway({"demo": [self.replica.addr]}, *(["--auth=on"] if args[0] !=
                                                                  "--auth=none" else []) + args,
                                 wait=False)
            self.assertEqual(gw.wait_exit(15), 2, gw.log_text())
            gw.check_sanitizers()


class CertMaker:
    """A CA and certificates signed by it (P-256), written as PEM files into <d>."""

    def __init__(self, d):
        self.d = d
        self.key = ec.generate_private_key(ec.SECP256R1())
        self.name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "auth-test-ca")])
        now = datetime.datetime.utcnow()
        self.ca = (x509.CertificateBuilder().subject_name(self.name).issuer_name(self.name)
                   .public_key(self.key.public_key()).serial_number(x509.random_serial_number())
                   .not_valid_before(now - datetime.timedelta(hours=1))
                   .not_valid_after(now + datetime.timedelta(days=1))
                   .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
                   .sign(self.key, hashes.SHA256()))
        self.write("ca.pem", self.ca.public_bytes(serialization.Encoding.PEM))

    def write(self, name, data):
        with open(os.path.join(self.d, name), "wb") as f:
            f.write(data)
        return os.path.join(self.d, name)

    def issue(self, name, cn, sans):
        key = ec.generate_private_key(ec.SECP256R1())
        now = datetime.datetime.utcnow()
        cert = (x509.CertificateBuilder()
                .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)]))
                .issuer_name(self.name).public_key(key.public_key())
                .serial_number(x509.random_serial_number())
                .not_valid_before(now - datetime.timedelta(hours=1))
                .not_valid_after(now + datetime.timedelta(days=1))
                .add_extension(x509.SubjectAlternativeName(sans), critical=False)
                .sign(self.key, hashes.SHA256()))
        self.write(name + ".key", key.private_bytes(serialization.Encoding.PEM,
                                                    serialization.PrivateFormat.PKCS8,
                                                    serialization.NoEncryption()))
        self.write(name + ".pem", cert.public_bytes(serialization.Encoding.PEM))

    def read(self, name):
        with open(os.path.join(self.d, name), "rb") as f:
            return f.read()


@unittest.skipIf(h.DIRECT, "needs the gateway (INFERGW_IT_DIRECT=1)")
class MtlsAuthTest(unittest.TestCase):
    """The mTLS authenticator: the tenant of a verified client certificate, from
    its CN or its URI subjectAltName."""

    @classmethod
    def setUpClass(cls):
        import ipaddress
        cls.procs = []
        cls.addClassCleanup(lambda: h.stop_all(cls.procs))
        cls.tmp = tempfile.mkdtemp(prefix="mtls-", dir=h.WORK_DIR)
        cls.certs = CertMaker(cls.tmp)
        cls.certs.issue("server", "infergw-test", [x509.DNSName("localhost"),
                                                   x509.IPAddress(ipaddress.ip_address("127.0.0.1"))])
        cls.certs.issue("client-a", "tenant-a", [x509.DNSName("tenant-a.example"),
                                                 x509.UniformResourceIdentifier(
                                                     "spiffe://example.org/tenant-a")])
        cls.certs.issue("ghost", "ghost", [x509.DNSName("ghost.example")])
        tenants = cls.certs.write("tenants", b"tenant-a models=demo\n"
                                  b"spiffe://example.org/tenant-a models=demo\n")
        cls.replica = h.start_replica("mtls-r")
        cls.procs.append(cls.replica)
        tls = ["--tls-cert", os.path.join(cls.tmp, "server.pem"),
               "--tls-key", os.path.join(cls.tmp, "server.key"),
               "--tls-client-ca", os.path.join(cls.tmp, "ca.pem")]
        cls.gw_cn = h.start_gateway({"demo": [cls.replica.addr]}, "--auth=on", "--tenants",
                                    tenants, "--mtls-tenant-from", "cn", *tls)
        cls.gw_uri = h.start_gateway({"demo": [cls.replica.addr]}, "--auth=on", "--tenants",
                                     tenants, "--mtls-tenant-from", "san-uri", *tls)
        cls.procs[:0] = [cls.gw_cn, cls.gw_uri]

    def channel(self, gw, client):
        creds = grpc.ssl_channel_credentials(
            root_certificates=self.certs.read("ca.pem"),
            private_key=self.certs.read(client + ".key"),
            certificate_chain=self.certs.read(client + ".pem"))
        ch = grpc.secure_channel(gw.addr, creds, options=h.CHANNEL_OPTIONS)
        self.addCleanup(ch.close)
        return h.infer_stub(ch)

    def test_tenant_from_cn_and_san_uri(self):
        for gw in (self.gw_cn, self.gw_uri):
            _, call = self.channel(gw, "client-a").ModelInfer.with_call(
                h.typed_request(h.values(2)), timeout=10)
            self.assertEqual(h.replica_of(call), "mtls-r")

    def test_certificate_of_an_unknown_tenant(self):
        def served():
            return sum(1 for ev in self.replica.events("call")
                       if ev.get("method", "").startswith("/inference."))

        before = served()
        with self.assertRaises(grpc.RpcError) as cm:
            self.channel(self.gw_cn, "ghost").ModelInfer(h.typed_request(h.values(2)),
                                                          timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.PERMISSION_DENIED)
        self.assertIn("tenant 'ghost' is not configured", cm.exception.details())
        # Verified, but without a URI subjectAltName to name a tenant.
        with self.assertRaises(grpc.RpcError) as cm:
            self.channel(self.gw_uri, "ghost").ModelInfer(h.typed_request(h.values(2)),
                                                           timeout=10)
        self.assertEqual(cm.exception.code(), grpc.StatusCode.UNAUTHENTICATED)
        self.assertIn("no URI subjectAltName", cm.exception.details())
        self.assertEqual(served(), before)


if __name__ == "__main__":
    unittest.main()
