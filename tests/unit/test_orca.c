/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/orca.c: the ORCA text form (keys,
 * spacing, named metrics, unknown keys, malformed items and bad values),
 * the -bin form (a hand-encoded OrcaLoadReport in base64, with and without
 * padding, unknown fields skipped, truncation and bad base64 refused), the
 * load and its decaying average, and power of two choices. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route/orca.h"

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
        "TEXT cpu_utilization=1.5",
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

/* base64 of the bytes b[0..n), no padding. */
static void b64(const uint8_t *b, size_t n, char *out)
{
    static const char tab[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/";
    size_t o = 0;
    uint32_t acc = 0;
    int bits = 0;
    for (size_t i = 0; i < n; i++) {
        acc = (acc << 8) | b[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = tab[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = tab[(acc << (6 - bits)) & 63];
    out[o] = '\0';
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
    assert_int_equal(gw_orca_parse_bin("!!!!", 4, &o), -1);
    assert_int_equal(gw_orca_parse_bin("A", 1, &o), -1);
    uint8_t bad[16];
    size_t k = put_double(bad, 1, 2.0); /* cpu over 1 */
    b64(bad, k, s);
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
        cmocka_unit_test(test_text), cmocka_unit_test(test_text_malformed),
        cmocka_unit_test(test_bin),  cmocka_unit_test(test_bin_malformed),
        cmocka_unit_test(test_avg),  cmocka_unit_test(test_p2c),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
