/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/orca.c: the ORCA text form (keys,
 * spacing, named metrics, unknown keys, malformed items and bad values),
 * the -bin form (an OrcaLoadReport encoded by hand and one packed by
 * protobuf-c as the reference replica packs it, in base64 with and without
 * padding; unknown fields skipped; truncation, wrong wire types, values out
 * of range and bad base64 refused), the load (capped at 1) and its decaying
 * average, and power of two choices. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "route/orca.h"
#include "xds/data/orca/v3/orca_load_report.pb-c.h"

static int text(const char *s, struct gw_orca *o)
{
    return gw_orca_parse_text(s, strlen(s), o);
}

static void test_text(void **state)
{
    (void)state;
    struct gw_orca o;
    assert_int_equal(text("TEXT cpu_utilization=0.5, rps_fractional=12.5, "
                          "named_metrics.kv_cache_usage=0.75, named_metrics.queue_depth=3",
                          &o),
                     0);
    assert_true(o.has & GW_ORCA_HAS_CPU);
    assert_true(o.has & GW_ORCA_HAS_KV);
    assert_true(o.has & GW_ORCA_HAS_QUEUE);
    assert_true(o.has & GW_ORCA_HAS_RPS);
    assert_true(fabs(o.cpu - 0.5) < 1e-12);
    assert_true(fabs(o.kv - 0.75) < 1e-12);
    assert_true(fabs(o.queue - 3) < 1e-12);
    assert_true(fabs(gw_orca_load(&o) - 0.75) < 1e-12);
    /* as the reference replica's LLM simulation writes it */
    assert_int_equal(text("TEXT cpu_utilization=1.0000, rps_fractional=0.000, "
                          "named_metrics.kv_cache_usage=0.0312, named_metrics.queue_depth=0",
                          &o),
                     0);
    assert_true(fabs(gw_orca_load(&o) - 1.0) < 1e-12);
    /* no spaces, unknown keys skipped, one key only */
    assert_int_equal(text("TEXT cpu_utilization=0.25,named_metrics.foo=7,eps=3", &o), 0);
    assert_true(fabs(gw_orca_load(&o) - 0.25) < 1e-12);
    assert_int_equal(text("TEXT rps_fractional=3", &o), 0);
    assert_true(gw_orca_load(&o) < 0);
    /* cpu_utilization past 1 (past the replica's soft limits): taken, the
     * load capped at 1 */
    assert_int_equal(text("TEXT cpu_utilization=1.5", &o), 0);
    assert_true(fabs(o.cpu - 1.5) < 1e-12);
    assert_true(fabs(gw_orca_load(&o) - 1.0) < 1e-12);
    /* application_utilization, when there, stands for cpu_utilization */
    assert_int_equal(text("TEXT cpu_utilization=0.9, application_utilization=0.3", &o), 0);
    assert_true(o.has & GW_ORCA_HAS_APP);
    assert_true(fabs(gw_orca_load(&o) - 0.3) < 1e-12);
    assert_int_equal(text("TEXT application_utilization=0.3, named_metrics.kv_cache_usage=0.5", &o),
                     0);
    assert_true(fabs(gw_orca_load(&o) - 0.5) < 1e-12);
    assert_int_equal(text("TEXT application_utilization=2.5", &o), 0);
    assert_true(fabs(gw_orca_load(&o) - 1.0) < 1e-12);
    assert_int_equal(text("TEXT application_utilization=-1", &o), -1);
}

static void test_text_malformed(void **state)
{
    (void)state;
    struct gw_orca o;
    const char *bad[] = {
        "",
        "TEXT",
        "JSON {\"cpu_utilization\": 0.5}",
        "TEXTcpu_utilization=0.5",
        "TEXT cpu_utilization",
        "TEXT cpu_utilization=",
        "TEXT =0.5",
        "TEXT cpu_utilization=abc",
        "TEXT cpu_utilization=0.5x",
        "TEXT mem_utilization=1.5",
        "TEXT cpu_utilization=-0.1",
        "TEXT cpu_utilization=nan",
        "TEXT named_metrics.kv_cache_usage=2",
        "TEXT rps_fractional=inf",
        "TEXT cpu_utilization=0.5,,rps_fractional=1",
        "TEXT cpu_utilization=0.123456789012345678901234567890123456789012345678901",
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(text(bad[i], &o), -1);
}

/* base64 of the bytes b[0..n) (OpenSSL's encoder), without its padding, as
 * gRPC sends -bin headers. */
static void b64(const uint8_t *b, size_t n, char *out)
{
    int l = EVP_EncodeBlock((unsigned char *)out, b, (int)n);
    while (l > 0 && out[l - 1] == '=')
        out[--l] = '\0';
}

static size_t put_double(uint8_t *p, unsigned field, double v)
{
    uint64_t u;
    memcpy(&u, &v, 8);
    p[0] = (uint8_t)(field << 3 | 1);
    for (int i = 0; i < 8; i++)
        p[1 + i] = (uint8_t)(u >> (8 * i));
    return 9;
}

/* An OrcaLoadReport: cpu 0.4 (1), mem 0.9 (2), rps 3 (varint, 3, skipped),
 * rps_fractional 7.5 (6), utilization map (5, skipped), named_metrics
 * {kv_cache_usage: 0.6} (8). */
static size_t report(uint8_t *m)
{
    size_t n = 0;
    n += put_double(m + n, 1, 0.4);
    n += put_double(m + n, 2, 0.9);
    m[n++] = 3 << 3 | 0;
    m[n++] = 3;
    n += put_double(m + n, 6, 7.5);
    m[n++] = 5 << 3 | 2; /* utilization {"x": 0.1} */
    m[n++] = 3 + 9;
    m[n++] = 1 << 3 | 2;
    m[n++] = 1;
    m[n++] = 'x';
    n += put_double(m + n, 2, 0.1);
    static const char k[] = "kv_cache_usage";
    m[n++] = 8 << 3 | 2;
    m[n++] = (uint8_t)(2 + 14 + 9);
    m[n++] = 1 << 3 | 2;
    m[n++] = 14;
    memcpy(m + n, k, 14);
    n += 14;
    n += put_double(m + n, 2, 0.6);
    return n;
}

static void test_bin(void **state)
{
    (void)state;
    uint8_t m[128];
    char s[256];
    size_t n = report(m);
    b64(m, n, s);
    struct gw_orca o;
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), 0);
    assert_true(fabs(o.cpu - 0.4) < 1e-12);
    assert_true(fabs(o.mem - 0.9) < 1e-12);
    assert_true(fabs(o.rps - 7.5) < 1e-12);
    assert_true(fabs(o.kv - 0.6) < 1e-12);
    assert_true(fabs(gw_orca_load(&o) - 0.6) < 1e-12);
    /* with padding */
    size_t l = strlen(s);
    while (l % 4)
        s[l++] = '=';
    s[l] = '\0';
    assert_int_equal(gw_orca_parse_bin(s, l, &o), 0);
    assert_true(fabs(o.kv - 0.6) < 1e-12);
    /* empty report: valid, no load */
    assert_int_equal(gw_orca_parse_bin("", 0, &o), 0);
    assert_true(gw_orca_load(&o) < 0);
    /* an unknown field (15, varint) after the report is skipped */
    m[n] = 15 << 3 | 0;
    m[n + 1] = 1;
    b64(m, n + 2, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), 0);
    assert_true(fabs(o.kv - 0.6) < 1e-12);
}

/* base64 of an OrcaLoadReport packed by protobuf-c, as the reference replica
 * sends it: cpu_utilization <cpu>, named_metrics kv_cache_usage <kv>. */
static void packed(double cpu, double kv, char *out)
{
    Xds__Data__Orca__V3__OrcaLoadReport__NamedMetricsEntry e =
        XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__NAMED_METRICS_ENTRY__INIT;
    Xds__Data__Orca__V3__OrcaLoadReport__NamedMetricsEntry *named[] = {&e};
    Xds__Data__Orca__V3__OrcaLoadReport r = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__INIT;
    uint8_t buf[128];
    e.key = (char *)"kv_cache_usage";
    e.value = kv;
    r.cpu_utilization = cpu;
    r.n_named_metrics = 1;
    r.named_metrics = named;
    assert_true(xds__data__orca__v3__orca_load_report__get_packed_size(&r) <= sizeof(buf));
    b64(buf, xds__data__orca__v3__orca_load_report__pack(&r, buf), out);
}

static void test_bin_packed(void **state)
{
    (void)state;
    char s[256];
    struct gw_orca o;
    packed(0.3, 0.7, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), 0);
    assert_true(fabs(o.cpu - 0.3) < 1e-12);
    assert_true(fabs(gw_orca_load(&o) - 0.7) < 1e-12);
    /* cpu_utilization 0 is not on the wire: not reported, the load is kv's */
    packed(0, 0.2, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), 0);
    assert_false(o.has & GW_ORCA_HAS_CPU);
    assert_true(fabs(gw_orca_load(&o) - 0.2) < 1e-12);
    /* cpu_utilization past 1: taken, the load capped at 1 */
    packed(1.75, 0.1, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), 0);
    assert_true(fabs(o.cpu - 1.75) < 1e-12);
    assert_true(fabs(gw_orca_load(&o) - 1.0) < 1e-12);
    /* application_utilization stands for cpu_utilization */
    {
        Xds__Data__Orca__V3__OrcaLoadReport r = XDS__DATA__ORCA__V3__ORCA_LOAD_REPORT__INIT;
        uint8_t buf[64];
        r.cpu_utilization = 0.9;
        r.application_utilization = 0.4;
        b64(buf, xds__data__orca__v3__orca_load_report__pack(&r, buf), s);
        assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), 0);
        assert_true(fabs(o.app - 0.4) < 1e-12);
        assert_true(fabs(gw_orca_load(&o) - 0.4) < 1e-12);
    }
    /* kv_cache_usage past 1, a negative or not finite value: bad */
    packed(0.5, 1.5, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
    packed(-0.5, 0.1, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
    packed(INFINITY, 0.1, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
}

static void test_bin_malformed(void **state)
{
    (void)state;
    uint8_t m[128];
    char s[256];
    size_t n = report(m);
    struct gw_orca o;
    for (size_t cut = 1; cut < n; cut++) {
        b64(m, cut, s);
        /* a prefix that ends between fields may parse; none may crash or
         * read past the end, and one that cuts a field must fail */
        int rc = gw_orca_parse_bin(s, strlen(s), &o);
        assert_true(rc == 0 || rc == -1);
    }
    b64(m, 5, s); /* inside the first double */
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
    /* not base64: other characters, '=' within, blanks, a lone sextet */
    const char *not_b64[] = {"!!!!", "A", "QQ=A", " CQ", "CQ ", "CQ\n", "C Q", "Q===", "===="};
    for (size_t i = 0; i < sizeof(not_b64) / sizeof(not_b64[0]); i++)
        assert_int_equal(gw_orca_parse_bin(not_b64[i], strlen(not_b64[i]), &o), -1);
    uint8_t bad[16];
    size_t k = put_double(bad, 2, 2.0); /* mem_utilization over 1 */
    b64(bad, k, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
    bad[0] = 1 << 3 | 5; /* cpu_utilization with a 32-bit wire type */
    b64(bad, 5, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
    k = put_double(bad, 6, NAN);
    b64(bad, k, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
    bad[0] = 7; /* wire type 7 */
    b64(bad, 1, s);
    assert_int_equal(gw_orca_parse_bin(s, strlen(s), &o), -1);
    char big[8000];
    memset(big, 'A', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    assert_int_equal(gw_orca_parse_bin(big, strlen(big), &o), -1); /* over 4 KiB */
}

static void test_avg(void **state)
{
    (void)state;
    assert_true(fabs(gw_orca_avg(-1, 0.8) - 0.8) < 1e-12);
    assert_true(fabs(gw_orca_avg(0.0, 1.0) - GW_ORCA_ALPHA) < 1e-12);
    double a = -1;
    for (int i = 0; i < 100; i++)
        a = gw_orca_avg(a, 0.5);
    assert_true(fabs(a - 0.5) < 1e-9);
}

static void test_p2c(void **state)
{
    (void)state;
    double cost[4] = {3, 0, 5, 1};
    assert_int_equal(gw_p2c_pick(cost, 0, 7), -1);
    assert_int_equal(gw_p2c_pick(cost, 1, 7), 0);
    /* the two drawn are distinct; the cheaper wins; every pair is reachable */
    int seen[4][4] = {{0}};
    for (uint32_t r = 0; r < 1000; r++) {
        size_t a = r % 4, b = (a + 1 + (r / 4) % 3) % 4;
        assert_true(a != b);
        seen[a][b] = 1;
        int i = gw_p2c_pick(cost, 4, r);
        assert_int_equal(i, cost[b] < cost[a] ? (int)b : (int)a);
    }
    for (int a = 0; a < 4; a++)
        for (int b = 0; b < 4; b++)
            assert_int_equal(seen[a][b], a != b);
    /* the most loaded never wins when n > 1 */
    for (uint32_t r = 0; r < 1000; r++)
        assert_int_not_equal(gw_p2c_pick(cost, 4, r), 2);
    /* cost: in-flight, scaled by the reported load */
    assert_true(fabs(gw_p2c_cost(0, -1) - 0) < 1e-12);
    assert_true(fabs(gw_p2c_cost(3, -1) - 3) < 1e-12);
    assert_true(fabs(gw_p2c_cost(0, 1.0) - 1) < 1e-12);
    assert_true(fabs(gw_p2c_cost(1, 0.5) - 2) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),          cmocka_unit_test(test_text_malformed),
        cmocka_unit_test(test_bin),           cmocka_unit_test(test_bin_packed),
        cmocka_unit_test(test_bin_malformed), cmocka_unit_test(test_avg),
        cmocka_unit_test(test_p2c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
