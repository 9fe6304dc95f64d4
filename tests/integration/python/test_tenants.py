# SPDX-License-Identifier: Apache-2.0
"""Tenants and API keys end to end, against a real redis-server:

- infergw-ctl tenant add/remove/show and key create/revoke/list/hash: what
  each writes (SHA-256 recomputed here with hashlib), that a new key is
  printed once and never stored (every key name and value in Redis is
  searched for it), that key list shows 12-hex-digit prefixes only, that
  refusals exit with the documented code and write nothing, that every
  write bumps <prefix>version;
- the gateway loading the records with --redis: a bad record is logged
  (config_rejected naming key, field and value) and counted
  (infergw_config_errors_total), the good ones load (config_applied counts
  tenants and api_keys), a record that turns bad keeps its last good
  version, and a key that would name a missing tenant is left out;
- --tenants/--api-keys files without Redis: loaded at start (tenants_loaded),
  a bad line stops the start with file:line, and files are refused with
  --redis.
"""

import hashlib
import json
import os
import re
import time
import unittest

import harness as h
import test_ctl

KEY_RE = re.compile(r"^igw_[A-Za-z0-9_-]{43}$")


def sha(text):
    return hashlib.sha256(text.encode()).hexdigest()


class RedisCase(test_ctl.CtlCase):
    """One redis-server per class, flushed before each test (test_ctl's)."""

    def new_key(self, tenant, *args):
        p = self.ctl("key", "create", tenant, *args)
        key = p.stdout.strip()
        self.assertRegex(key, KEY_RE)
        self.assertEqual(p.stdout, key + "\n", "key create prints the key alone on stdout")
        self.assertIn("shown only this once", p.stderr)
        self.assertNotIn(key, p.stderr)
        return key


class TenantCtlTest(RedisCase):

    def test_tenant_add_update_show(self):
        v0 = self.version()
        p = self.ctl("tenant", "add", "acme", "--models", "resnet,bert", "--rps", "50",
                     "--burst", "100")
        self.assertIn("tenant acme added", p.stdout)
        self.assertEqual(self.version(), v0 + 1)
        self.assertEqual(self.call("HGETALL", "infergw:tenant:acme"),
                         ["models", "resnet,bert", "rps", "50", "burst", "100"])
        # The same again changes nothing; an update keeps what it does not name.
        p = self.ctl("tenant", "add", "acme", "--models", "resnet,bert")
        self.assertIn("already", p.stdout)
        self.assertEqual(self.version(), v0 + 1)
        self.ctl("tenant", "add", "acme", "--models", "resnet")
        self.assertEqual(self.call("HGET", "infergw:tenant:acme", "rps"), "50")
        self.assertEqual(self.call("HGET", "infergw:tenant:acme", "models"), "resnet")
        self.assertEqual(self.version(), v0 + 2)
        self.ctl("tenant", "add", "root", "--models", "*")
        self.assertEqual(self.call("HGET", "infergw:tenant:root", "rps"), "0")

        doc = json.loads(self.ctl("--json", "tenant", "show").stdout)
        self.assertEqual([t["tenant"] for t in doc], ["acme", "root"])
        self.assertEqual(doc[0]["rps"], 50)
        self.assertEqual(doc[0]["burst"], 100)
        self.assertEqual(doc[1]["models"], "*")
        text = self.ctl("tenant", "show", "root").stdout
        self.assertIn("unlimited", text)
        self.refused(3, "tenant nobody does not exist", "tenant", "show", "nobody")

        self.refused(2, "--rps '-5' refused", "tenant", "add", "acme", "--models", "*", "--rps",
                     "-5")
        self.refused(2, "--models ',' refused", "tenant", "add", "acme", "--models", ",")
        self.refused(2, "needs --models", "tenant", "add", "acme")
        # A record the gateways would refuse is pointed out by tenant show.
        self.call("HSET", "infergw:tenant:bad", "models", "a", "rps", "lots")
        p = self.ctl("tenant", "show")
        self.assertIn("infergw:tenant:bad field rps = 'lots'", p.stderr)

    def test_key_printed_once_only_hash_stored(self):
        self.ctl("tenant", "add", "acme", "--models", "*")
        v0 = self.version()
        key = self.new_key("acme")
        self.assertEqual(self.version(), v0 + 1)
        digest = sha(key)
        self.assertEqual(self.call("HGETALL", "infergw:apikey:" + digest), ["tenant", "acme"])
        # The key text is nowhere in Redis: not in a key name, not in a value.
        self.assertNotIn(key, json.dumps(self.snapshot()))
        self.assertNotIn(key[4:], json.dumps(self.snapshot()))
        # key list: the 12-digit prefix, the tenant, never the key or whole hash.
        out = self.ctl("key", "list").stdout
        self.assertIn(digest[:12], out)
        self.assertNotIn(digest[:13], out)
        self.assertNotIn(key, out)
        doc = json.loads(self.ctl("--json", "key", "list").stdout)
        self.assertEqual(doc, [{"hash_prefix": digest[:12], "tenant": "acme", "expired": False,
                                "expires_at": None}])
        # key hash gives the same digest, offline.
        self.assertEqual(self.ctl("key", "hash", key).stdout.strip(), digest)
        # JSON create: the key once, with its hash and tenant.
        doc = json.loads(self.ctl("--json", "key", "create", "acme").stdout)
        self.assertRegex(doc["key"], KEY_RE)
        self.assertEqual(doc["hash"], sha(doc["key"]))
        self.assertEqual(self.call("HGET", "infergw:apikey:" + doc["hash"], "tenant"), "acme")
        self.assertNotEqual(doc["key"], key)

        self.refused(3, "tenant ghost does not exist", "key", "create", "ghost")

    def test_key_expiry(self):
        self.ctl("tenant", "add", "acme", "--models", "*")
        now = int(time.time())
        key = self.new_key("acme", "--expires-in", "1h")
        exp = int(self.call("HGET", "infergw:apikey:" + sha(key), "expires_at"))
        self.assertTrue(now + 3600 - 5 <= exp <= now + 3600 + 5, exp - now)
        key2 = self.new_key("acme", "--expires-at", "4102444800")
        self.assertEqual(self.call("HGET", "infergw:apikey:" + sha(key2), "expires_at"),
                         "4102444800")
        self.refused(2, "not in the future", "key", "create", "acme", "--expires-at", "1000")
        self.refused(2, "refused", "key", "create", "acme", "--expires-in", "soon")
        # An expired record shows as expired in key list.
        self.call("HSET", "infergw:apikey:" + "ab" * 32, "tenant", "acme", "expires_at", "1000")
        out = self.ctl("key", "list").stdout
        self.assertRegex(out, r"abababababab\s+1970-01-01T00:16:40Z\s+acme\s+\(expired\)")

    def test_key_revoke(self):
        self.ctl("tenant", "add", "acme", "--models", "*")
        k1, k2 = self.new_key("acme"), self.new_key("acme")
        # By the key itself (hashed locally).
        v0 = self.version()
        p = self.ctl("key", "revoke", k1)
        self.assertIn("revoked", p.stdout)
        self.assertNotIn(k1, p.stdout + p.stderr)
        self.assertEqual(self.version(), v0 + 1)
        self.assertEqual(self.call("EXISTS", "infergw:apikey:" + sha(k1)), 0)
        self.refused(3, "no such API key", "key", "revoke", k1)
        # By an 8-digit prefix of its hash.
        self.ctl("key", "revoke", sha(k2)[:8])
        self.assertEqual(self.call("EXISTS", "infergw:apikey:" + sha(k2)), 0)
        # A prefix that matches two records is refused and names them.
        a = "c0ffee00" + "1" * 56
        b = "c0ffee00" + "2" * 56
        for hx in (a, b):
            self.call("HSET", "infergw:apikey:" + hx, "tenant", "acme")
        p = self.refused(2, "ambiguous", "key", "revoke", "c0ffee00")
        self.assertIn("c0ffee0011111111", p.stderr)
        self.ctl("key", "revoke", "c0ffee001")
        self.assertEqual(self.call("EXISTS", "infergw:apikey:" + a), 0)
        self.assertEqual(self.call("EXISTS", "infergw:apikey:" + b), 1)
        self.refused(3, "no API key has a hash starting with", "key", "revoke", "deadbeef")
        self.refused(2, "8 to 64", "key", "revoke", "abc")
        self.assertEqual(json.loads(self.ctl("--json", "key", "list").stdout),
                         [{"hash_prefix": b[:12], "tenant": "acme", "expired": False,
                           "expires_at": None}])

    def test_tenant_remove(self):
        self.ctl("tenant", "add", "acme", "--models", "*")
        self.ctl("tenant", "add", "other", "--models", "*")
        k1, k2 = self.new_key("acme"), self.new_key("acme")
        ko = self.new_key("other")
        self.refused(1, "still has 2 API keys", "tenant", "remove", "acme")
        v0 = self.version()
        p = self.ctl("tenant", "remove", "acme", "--force")
        self.assertIn("2 API keys revoked", p.stdout)
        self.assertEqual(self.version(), v0 + 1)
        for k in (k1, k2):
            self.assertEqual(self.call("EXISTS", "infergw:apikey:" + sha(k)), 0)
        self.assertEqual(self.call("EXISTS", "infergw:tenant:acme"), 0)
        self.assertEqual(self.call("EXISTS", "infergw:apikey:" + sha(ko)), 1)
        self.refused(3, "tenant acme does not exist", "tenant", "remove", "acme")
        self.ctl("key", "revoke", ko)
        self.ctl("tenant", "remove", "other")
        self.assertEqual(sorted(self.call("KEYS", "*")), ["infergw:version"])


class GatewayLoadTest(RedisCase):
    """The gateway's control plane loading tenants and keys from Redis."""

    def gateway(self, *args):
        admin = h.free_port()
        gw = h.start_gateway({}, "--redis", self.url, "--redis-poll-ms", "200", "--admin",
                             "127.0.0.1:%d" % admin, *args)
        self.addCleanup(gw.stop)
        gw.admin_port = admin
        return gw

    def metric(self, gw, name):
        return h.metric_sum(h.scrape(gw.admin_port), name)

    def applied(self, gw, version, timeout=5.0):
        ev = gw.wait_event(lambda e: e.get("version") == version, timeout=timeout,
                           event="config_applied")
        self.assertIsNotNone(ev, "config_applied at version %d not logged:\n%s"
                             % (version, gw.tail()))
        return ev

    def rejected(self, gw, key, field, value):
        ev = gw.wait_event(lambda e: e.get("key") == key and e.get("field") == field
                           and e.get("value") == value, event="config_rejected")
        self.assertIsNotNone(ev, "no config_rejected for %s %s=%r:\n%s"
                             % (key, field, value, gw.tail()))
        return ev

    def test_bad_records_rejected_good_ones_load(self):
        self.ctl("pool", "add", "default")
        self.ctl("tenant", "add", "acme", "--models", "resnet", "--rps", "50")
        self.ctl("tenant", "add", "beta", "--models", "*")
        key = self.new_key("acme")
        self.new_key("beta")
        # Bad records, written behind infergw-ctl's back.
        self.call("HSET", "infergw:tenant:badrps", "models", "x", "rps", "fast")
        self.call("HSET", "infergw:tenant:nomodels", "rps", "5")
        self.call("HSET", "infergw:apikey:" + "0" * 64, "tenant", "ghost")
        self.call("HSET", "infergw:apikey:" + "1" * 64, "tenant", "acme", "expires_at", "soon")
        self.call("HSET", "infergw:apikey:igw_pasted_in_clear", "tenant", "acme")
        self.call("INCR", "infergw:version")
        v = self.version()

        gw = self.gateway()
        ev = self.applied(gw, v)
        self.assertEqual(ev["tenants"], 2)
        self.assertEqual(ev["api_keys"], 2)
        self.assertEqual(ev["rejected_values"], 5)
        self.rejected(gw, "infergw:tenant:badrps", "rps", "fast")
        self.rejected(gw, "infergw:tenant:nomodels", "models", "")
        self.rejected(gw, "infergw:apikey:" + "0" * 64, "tenant", "ghost")
        self.rejected(gw, "infergw:apikey:" + "1" * 64, "expires_at", "soon")
        # A key name that is not a hash may be a key stored in clear: not logged.
        self.rejected(gw, "infergw:apikey:<not shown>", "", "19 bytes")
        self.assertNotIn("igw_pasted_in_clear", gw.log_text())
        self.assertNotIn(key, gw.log_text())
        self.assertGreaterEqual(self.metric(gw, "infergw_config_errors_total"), 5)

        # A good record that turns bad keeps its last good version.
        self.call("HSET", "infergw:tenant:acme", "burst", "-1")
        self.call("INCR", "infergw:version")
        ev = self.applied(gw, self.version())
        self.assertEqual(ev["tenants"], 2)
        self.assertEqual(ev["api_keys"], 2)
        self.rejected(gw, "infergw:tenant:acme", "burst", "-1")
        self.assertIsNotNone(gw.wait_event(lambda e: e.get("key") == "infergw:tenant:acme",
                                           event="config_kept"))
        # Fixed records load on the next change; a tenant removed with --force
        # takes its keys along.
        self.call("DEL", "infergw:tenant:badrps", "infergw:tenant:nomodels")
        self.call("HSET", "infergw:tenant:acme", "burst", "10")
        self.call("HSET", "infergw:apikey:" + "1" * 64, "expires_at", "4102444800")
        self.ctl("tenant", "add", "ghost", "--models", "m")
        ev = self.applied(gw, self.version())
        self.assertEqual((ev["tenants"], ev["api_keys"]), (3, 4))
        self.ctl("tenant", "remove", "ghost", "--force")
        ev = self.applied(gw, self.version())
        self.assertEqual((ev["tenants"], ev["api_keys"]), (2, 3))

    def test_prefix_and_many_records(self):
        """SCAN walks every record (more than one SCAN batch) under --redis-prefix."""
        pipe = []
        for i in range(1500):
            pipe.append(("HSET", "t2:tenant:t%d" % i, "models", "*", "rps", str(i % 7)))
        for i in range(2500):
            pipe.append(("HSET", "t2:apikey:%064x" % i, "tenant", "t%d" % (i % 1500)))
        pipe.append(("HSET", "infergw:tenant:not-mine", "models", "*"))
        pipe.append(("SADD", "t2:pools", "default"))
        pipe.append(("SET", "t2:version", "7"))
        for cmd in pipe:
            h.redis_send(self.r, *cmd)
        for _ in pipe:
            h.redis_read(self.r)
        gw = self.gateway("--redis-prefix", "t2:")
        ev = self.applied(gw, 7)
        self.assertEqual((ev["tenants"], ev["api_keys"], ev["rejected_values"]), (1500, 2500, 0))


class TenantFilesTest(unittest.TestCase):
    """--tenants and --api-keys without Redis."""

    def write(self, name, text):
        path = os.path.join(h.WORK_DIR, "%d-%s" % (os.getpid(), name))
        with open(path, "w") as f:
            f.write(text)
        self.addCleanup(os.unlink, path)
        return path

    def test_files_load(self):
        key = "igw_" + "k" * 43
        tenants = self.write("tenants.conf", "# name fields\nacme models=resnet,bert rps=50\n"
                             "root models=*\n")
        keys = self.write("keys.conf", "%s tenant=acme\n%s tenant=root expires_at=4102444800\n"
                          % (sha(key), sha("igw_other")))
        gw = h.start_gateway({"default": ["127.0.0.1:1"]}, "--tenants", tenants,
                             "--api-keys", keys)
        self.addCleanup(gw.stop)
        ev = gw.wait_event(lambda e: True, event="tenants_loaded")
        self.assertIsNotNone(ev, gw.tail())
        self.assertEqual((ev["tenants"], ev["api_keys"]), (2, 2))

    def start_refused(self, *args):
        gw = h.start_gateway({"default": ["127.0.0.1:1"]}, *args, wait=False)
        code = gw.wait_exit(10)
        self.assertEqual(code, 2, gw.tail())
        return gw.log_text()

    def test_bad_line_stops_start_with_file_and_line(self):
        tenants = self.write("bad-tenants.conf", "acme models=*\n\nbeta models=x rps=fast\n")
        log = self.start_refused("--tenants", tenants)
        self.assertIn("%s:3: tenant 'beta': rps" % tenants, log)
        good = self.write("good-tenants.conf", "acme models=*\n")
        keys = self.write("bad-keys.conf", "igw_secret_pasted tenant=acme\n")
        log = self.start_refused("--tenants", good, "--api-keys", keys)
        self.assertIn("%s:1:" % keys, log)
        self.assertNotIn("igw_secret_pasted", log)

    def test_files_and_redis_refused(self):
        tenants = self.write("t.conf", "acme models=*\n")
        log = self.start_refused("--tenants", tenants, "--redis", "redis://127.0.0.1:1")
        self.assertIn("cannot be combined with --redis", log)


if __name__ == "__main__":
    unittest.main()
