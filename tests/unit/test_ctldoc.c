/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/ctl/ctldoc.c: the dump document of infergw-ctl
 * dump/restore. A good document passes; each kind of bad value is refused
 * with its JSON path; a newer format version is refused alone; the keys a
 * document stands for (names from control/keys.c, empty keys left out);
 * the key and field differences between two documents, and their text. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctldoc.h"

#define HEX "ab34567890abcdef1234567890abcdef1234567890abcdef1234567890abcdef"

static const char *good_text =
    "{\"format\": \"infergw-dump\", \"version\": 1, \"taken_at\": \"2026-12-03T07:00:00Z\","
    " \"config_version\": 42,"
    " \"global\": {\"retry_on\": \"UNAVAILABLE\"},"
    " \"pools\": {\"demo\": {\"ring\": [{\"replica\": \"10.0.0.1:7201\", \"weight\": 100},"
    "                                 {\"replica\": \"10.0.0.2:7201\", \"weight\": 3}],"
    "                      \"conf\": {\"hedge_delay_ms\": \"50\"}},"
    "            \"empty\": {\"ring\": [], \"conf\": {}}},"
    " \"replicas\": {\"10.0.0.2:7201\": {\"state\": \"drain\"}},"
    " \"tenants\": {\"acme\": {\"models\": \"demo\", \"rps\": \"5\", \"burst\": \"10\"}},"
    " \"apikeys\": {\"" HEX "\": {\"tenant\": \"acme\", \"expires_at\": \"1900000000\"}}}";

static json_t *good(void)
{
    json_error_t e;
    json_t *d = json_loads(good_text, 0, &e);

    if (!d)
        fail_msg("test document: %s", e.text);
    return d;
}

/* Sets the value at a dotted path of objects (array indexes as digits). */
static void set_path(json_t *doc, const char *path, json_t *v)
{
    char buf[256], *save = NULL, *tok, *next;
    json_t *at = doc;

    snprintf(buf, sizeof(buf), "%s", path);
    tok = strtok_r(buf, "/", &save);
    while ((next = strtok_r(NULL, "/", &save))) {
        at = json_is_array(at) ? json_array_get(at, (size_t)atoi(tok)) : json_object_get(at, tok);
        assert_non_null(at);
        tok = next;
    }
    if (json_is_array(at))
        json_array_set_new(at, (size_t)atoi(tok), v);
    else
        json_object_set_new(at, tok, v);
}

/* <doc> with <path> set to <v> is refused with a problem starting <want>. */
static void refused(const char *path, json_t *v, const char *want)
{
    json_t *d = good();
    struct ctl_problems p = {0};

    set_path(d, path, v);
    assert_int_equal(ctl_doc_check(d, &p), -1);
    assert_true(p.n >= 1);
    if (strncmp(p.msg[0], want, strlen(want)) != 0)
        fail_msg("%s: problem '%s' does not start with '%s'", path, p.msg[0], want);
    json_decref(d);
}

static void test_good_document(void **state)
{
    (void)state;
    json_t *d = good();
    struct ctl_problems p = {0};

    assert_int_equal(ctl_doc_check(d, &p), 0);
    assert_int_equal(p.total, 0);
    json_decref(d);
    /* The smallest document: an empty control plane. */
    d = json_pack("{s:s, s:i}", "format", "infergw-dump", "version", 1);
    assert_int_equal(ctl_doc_check(d, &p), 0);
    json_decref(d);
}

static void test_bad_values_name_their_path(void **state)
{
    (void)state;
    refused("global/hedge_ms", json_string("5"), "global.hedge_ms: unknown");
    refused("global/retry_on", json_integer(3), "global.retry_on: expected a string");
    refused("pools/demo/conf/hedge_delay_ms", json_string("soon"),
            "pools.demo.conf.hedge_delay_ms: ");
    refused("pools/demo/ring/1/weight", json_integer(0), "pools.demo.ring[1].weight: ");
    refused("pools/demo/ring/1/weight", json_string("3"), "pools.demo.ring[1].weight: ");
    refused("pools/demo/ring/1/weight", json_integer(10001), "pools.demo.ring[1].weight: ");
    refused("pools/demo/ring/0/replica", json_string("10.0.0.1:07201"),
            "pools.demo.ring[0].replica: ");
    refused("pools/demo/ring/1/replica", json_string("10.0.0.1:7201"),
            "pools.demo.ring[1].replica: 10.0.0.1:7201 is on this ring already");
    refused("pools/demo/ring/1/state", json_string("drain"), "pools.demo.ring[1].state: unknown");
    refused("pools/demo/ring", json_object(), "pools.demo.ring: expected an array");
    refused("pools/a b", json_object(), "pools.a b: pool name refused");
    refused("pools/demo/rings", json_array(), "pools.demo.rings: unknown");
    refused("replicas/10.0.0.2:7201/state", json_string("drained"),
            "replicas.10.0.0.2:7201.state: 'drained' refused");
    refused("replicas/10.0.0.9:1", json_object(), "replicas.10.0.0.9:1.state: missing");
    refused("replicas/host", json_pack("{s:s}", "state", "drain"), "replicas.host: ");
    refused("tenants/acme/rps", json_string("fast"), "tenants.acme.rps: ");
    refused("tenants/acme/burst", json_string("-1"), "tenants.acme.burst: ");
    refused("tenants/acme/models", json_string("a b"), "tenants.acme.models: ");
    refused("tenants/a b", json_pack("{s:s}", "models", "*"), "tenants.a b: ");
    refused("apikeys/" HEX "/tenant", json_string("nobody"), "apikeys." HEX ".tenant: ");
    refused("apikeys/" HEX "/expires_at", json_string("soon"), "apikeys." HEX ".expires_at: ");
    refused("apikeys/ABCD", json_pack("{s:s}", "tenant", "acme"), "apikeys.ABCD: not a SHA-256");
    refused("config_version", json_integer(-1), "config_version: ");
    refused("version", json_integer(0), "version: ");
    refused("format", json_string("other"), "format: ");
    refused("extra", json_true(), "extra: unknown field");
}

static void test_newer_version(void **state)
{
    (void)state;
    json_t *d = good();
    struct ctl_problems p = {0};

    json_object_set_new(d, "version", json_integer(2));
    json_object_set_new(d, "new_things", json_object());
    assert_int_equal(ctl_doc_check(d, &p), -1);
    assert_int_equal(p.total, 1);
    assert_string_equal(p.msg[0],
                        "dump format version 2 is newer than this infergw-ctl understands (1)");
    json_decref(d);
}

static void test_keys(void **state)
{
    (void)state;
    json_t *d = good(), *k = ctl_doc_keys(d, "infergw:");
    char *text;

    assert_non_null(k);
    text = json_dumps(k, JSON_SORT_KEYS | JSON_COMPACT);
    assert_string_equal(
        text, "{\"infergw:apikey:" HEX "\":{\"fields\":{\"expires_at\":\"1900000000\",\"tenant\":"
              "\"acme\"},\"type\":\"hash\"},"
              "\"infergw:conf\":{\"fields\":{\"retry_on\":\"UNAVAILABLE\"},\"type\":\"hash\"},"
              "\"infergw:pool:demo:conf\":{\"fields\":{\"hedge_delay_ms\":\"50\"},\"type\":"
              "\"hash\"},"
              "\"infergw:pool:demo:ring\":{\"fields\":{\"10.0.0.1:7201\":\"100\",\"10.0.0.2:"
              "7201\":\"3\"},\"type\":\"ring\"},"
              "\"infergw:pools\":{\"fields\":{\"demo\":\"\",\"empty\":\"\"},\"type\":\"set\"},"
              "\"infergw:replica:10.0.0.2:7201\":{\"fields\":{\"state\":\"drain\"},\"type\":"
              "\"hash\"},"
              "\"infergw:tenant:acme\":{\"fields\":{\"burst\":\"10\",\"models\":\"demo\",\"rps\":"
              "\"5\"},\"type\":\"hash\"}}");
    free(text);
    json_decref(k);
    /* Another prefix. */
    k = ctl_doc_keys(d, "x:");
    assert_non_null(json_object_get(k, "x:pools"));
    json_decref(k);
    json_decref(d);
}

static void test_diff(void **state)
{
    (void)state;
    json_t *a = good(), *b = good();

    json_object_del(json_object_get(b, "tenants"), "acme");
    json_object_del(b, "apikeys");
    set_path(b, "pools/demo/ring/1/weight", json_integer(7));
    set_path(b, "global/retry_on", json_string("UNAVAILABLE,INTERNAL"));
    set_path(b, "replicas/10.0.0.3:1", json_pack("{s:s}", "state", "drain"));
    json_t *ka = ctl_doc_keys(a, "infergw:"), *kb = ctl_doc_keys(b, "infergw:");
    json_t *diff = ctl_doc_diff(ka, kb);

    assert_non_null(diff);
    assert_int_equal(json_integer_value(json_object_get(diff, "added")), 1);
    assert_int_equal(json_integer_value(json_object_get(diff, "removed")), 2);
    assert_int_equal(json_integer_value(json_object_get(diff, "changed")), 2);
    assert_int_equal(json_integer_value(json_object_get(diff, "unchanged")), 3);
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);
    ctl_doc_print_diff(f, diff);
    fclose(f);
    assert_string_equal(text, "- infergw:apikey:" HEX " (hash)\n"
                              "    - expires_at = 1900000000\n"
                              "    - tenant = acme\n"
                              "~ infergw:conf (hash)\n"
                              "    ~ retry_on = UNAVAILABLE -> UNAVAILABLE,INTERNAL\n"
                              "~ infergw:pool:demo:ring (ring: replica = weight)\n"
                              "    ~ 10.0.0.2:7201 = 3 -> 7\n"
                              "+ infergw:replica:10.0.0.3:1 (hash)\n"
                              "    + state = drain\n"
                              "- infergw:tenant:acme (hash)\n"
                              "    - burst = 10\n"
                              "    - models = demo\n"
                              "    - rps = 5\n"
                              "1 key(s) added, 2 removed, 2 changed, 3 unchanged\n");
    free(text);
    json_decref(diff);
    /* No difference. */
    diff = ctl_doc_diff(ka, ka);
    assert_int_equal(json_array_size(json_object_get(diff, "keys")), 0);
    assert_int_equal(json_integer_value(json_object_get(diff, "unchanged")), 7);
    json_decref(diff);
    json_decref(ka);
    json_decref(kb);
    json_decref(a);
    json_decref(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_good_document), cmocka_unit_test(test_bad_values_name_their_path),
        cmocka_unit_test(test_newer_version), cmocka_unit_test(test_keys),
        cmocka_unit_test(test_diff),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
