/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/ctl/ctlview.c: ring members and pinned tokens,
 * reading a pool's replicas back from its ZSET with the gateway's rules
 * (and every kind of bad member reported), out-of-memory paths, route
 * against an independent walk over the ring, effective tunables with their
 * sources, and the text and JSON output. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <jansson.h>

#include "ctlview.h"
#include "base/mem.h"

/* --- helpers ------------------------------------------------------------------ */

/* ZSET contents for replicas <addrs> with <weights>, as Redis returns them
 * (members with decimal scores), in a scrambled order. */
struct zset {
    char **members, **scores;
    size_t n;
};

static void zset_add(struct zset *z, const char *member, const char *score)
{
    z->members = realloc(z->members, (z->n + 1) * sizeof(char *));
    z->scores = realloc(z->scores, (z->n + 1) * sizeof(char *));
    z->members[z->n] = strdup(member);
    z->scores[z->n] = strdup(score);
    z->n++;
}

static void zset_add_replica(struct zset *z, const char *addr, uint32_t w)
{
    char m[300], s[16];

    for (uint32_t i = 0; i < w; i++) {
        int n = ctl_view_member(m, sizeof(m), addr, i);
        assert_true(n > 0);
        snprintf(s, sizeof(s), "%u", gw_hash32(m, (size_t)n));
        zset_add(z, m, s);
    }
}

static void zset_scramble(struct zset *z, unsigned seed)
{
    srand(seed);
    for (size_t i = z->n; i > 1; i--) {
        size_t j = (size_t)rand() % i;
        char *t = z->members[i - 1];
        z->members[i - 1] = z->members[j];
        z->members[j] = t;
        t = z->scores[i - 1];
        z->scores[i - 1] = z->scores[j];
        z->scores[j] = t;
    }
}

static void zset_free(struct zset *z)
{
    for (size_t i = 0; i < z->n; i++) {
        free(z->members[i]);
        free(z->scores[i]);
    }
    free(z->members);
    free(z->scores);
    memset(z, 0, sizeof(*z));
}

static int parse_z(struct ctl_ring_view *v, const struct zset *z, struct ctl_problems *p)
{
    return ctl_view_ring_parse(v, (const char *const *)z->members, (const char *const *)z->scores,
                               z->n, p);
}

#define CAPTURE(var, call)                                                                         \
    do {                                                                                           \
        size_t len_ = 0;                                                                           \
        FILE *f_ = open_memstream(&(var), &len_);                                                  \
        assert_non_null(f_);                                                                       \
        call;                                                                                      \
        fclose(f_);                                                                                \
    } while (0)

/* --- members and tokens ------------------------------------------------------------ */

static void test_member_and_pinned_tokens(void **state)
{
    (void)state;
    char buf[64];

    assert_int_equal(ctl_view_member(buf, sizeof(buf), "127.0.0.1:7201", 0), 16);
    assert_string_equal(buf, "127.0.0.1:7201#0");
    /* First 4 bytes of SHA-256, big-endian: the same numbers Python's
     * hashlib gives (the integration test computes them that way). */
    assert_int_equal(gw_hash32(buf, 16), 321777906u);
    ctl_view_member(buf, sizeof(buf), "127.0.0.1:7201", 99);
    assert_int_equal(gw_hash32(buf, strlen(buf)), 3627340130u);
    ctl_view_member(buf, sizeof(buf), "[::1]:7203", 0);
    assert_int_equal(gw_hash32(buf, strlen(buf)), 3294810226u);
    assert_int_equal(gw_hash32("customer-42", 11), 2688936755u);
    /* Keys hash with XXH3-64 (seed 0), high 32 bits: what Python gets from
     * libxxhash through ctypes (the integration tests' RingModel). */
    assert_int_equal(gw_key_hash32("customer-42", 11), 0xf40925acu);
    assert_int_equal(gw_key_hash32("user-42", 7), 0x50fe4b21u);
    assert_int_equal(ctl_view_member(buf, 17, "127.0.0.1:7201", 10), -1);
}

/* --- reading the ring ------------------------------------------------------------------- */

static void test_ring_parse(void **state)
{
    (void)state;
    struct zset z = {0};
    struct ctl_ring_view v;
    struct ctl_problems p = {0};

    zset_add_replica(&z, "10.0.0.2:80", 3);
    zset_add_replica(&z, "10.0.0.1:80", 2);
    zset_add_replica(&z, "10.0.0.1:8", 1); /* a prefix of another address */
    zset_add_replica(&z, "[::1]:80", 5);
    zset_scramble(&z, 7);
    assert_int_equal(parse_z(&v, &z, &p), 0);
    assert_int_equal(p.total, 0);
    assert_int_equal(v.n, 4);
    assert_string_equal(v.addrs[0], "10.0.0.1:8");
    assert_int_equal(v.weights[0], 1);
    assert_string_equal(v.addrs[1], "10.0.0.1:80");
    assert_int_equal(v.weights[1], 2);
    assert_string_equal(v.addrs[2], "10.0.0.2:80");
    assert_int_equal(v.weights[2], 3);
    assert_string_equal(v.addrs[3], "[::1]:80");
    assert_int_equal(v.weights[3], 5);
    ctl_view_ring_free(&v);
    ctl_view_ring_free(&v); /* zeroed: a no-op */
    zset_free(&z);

    /* Empty ZSET: no replicas, no problems. */
    assert_int_equal(ctl_view_ring_parse(&v, NULL, NULL, 0, &p), 0);
    assert_int_equal(v.n, 0);
    ctl_view_ring_free(&v);
}

static void test_ring_parse_problems(void **state)
{
    (void)state;
    struct zset z = {0};
    struct ctl_ring_view v;
    struct ctl_problems p = {0};

    zset_add_replica(&z, "good:1", 2);
    zset_add(&z, "nohash", "1");
    zset_add(&z, "#0", "1");
    zset_add(&z, "h:1#", "1");
    zset_add(&z, "h:1#-1", "1");
    zset_add(&z, "h:1#01", "1");
    zset_add(&z, "h:1#10000", "1");
    zset_add(&z, "h:1#1x", "1");
    zset_add(&z, "nohostport#0", "1");
    zset_add(&z, "bad:2#0", "12345"); /* wrong token */
    zset_add(&z, "bad:2#1", "-1");    /* negative */
    zset_add(&z, "bad:2#2", "1e3");   /* not an integer */
    zset_add(&z, "bad:2#3", "4294967296");
    zset_add_replica(&z, "gap:3", 3);
    /* Drop gap:3#1: vnodes 0 and 2 only. */
    for (size_t i = 0; i < z.n; i++)
        if (!strcmp(z.members[i], "gap:3#1"))
            strcpy(z.members[i], "gap:3#5"), strcpy(z.scores[i], "0");
    assert_int_equal(parse_z(&v, &z, &p), 0);
    /* 12 bad members, 1 bad token for gap:3#5, 1 gap. */
    assert_int_equal(p.total, 14);
    assert_int_equal(p.n, 14);
    assert_int_equal(v.n, 2);
    assert_string_equal(v.addrs[0], "gap:3");
    assert_int_equal(v.weights[0], 2);
    assert_string_equal(v.addrs[1], "good:1");
    assert_int_equal(v.weights[1], 2);
    int saw_gap = 0, saw_token = 0;
    for (size_t i = 0; i < p.n; i++) {
        saw_gap |= strstr(p.msg[i], "gap:3 has 2 vnodes but not #0..#1") != NULL;
        saw_token |= strstr(p.msg[i], "'bad:2#0': score 12345 is not its token") != NULL;
    }
    assert_true(saw_gap);
    assert_true(saw_token);

    char *text = NULL;
    CAPTURE(text, ctl_problems_print(&p, f_));
    assert_non_null(strstr(text, "infergw-ctl: warning: ring member 'nohash'"));
    free(text);
    ctl_view_ring_free(&v);
    zset_free(&z);

    /* More problems than kept: the rest are counted. */
    struct ctl_problems many = {0};
    for (int i = 0; i < 25; i++)
        ctl_problems_add(&many, "p%d", i);
    assert_int_equal(many.n, CTL_MAX_PROBLEMS);
    assert_int_equal(many.total, 25);
    CAPTURE(text, ctl_problems_print(&many, f_));
    assert_non_null(strstr(text, "... and 5 more"));
    free(text);
}

static void test_ring_parse_out_of_memory(void **state)
{
    (void)state;
    struct zset z = {0};
    struct ctl_ring_view v;
    int ok = 0;

    zset_add_replica(&z, "a:1", 3);
    zset_add_replica(&z, "b:1", 2);
    for (long n = 0; !ok; n++) {
        struct ctl_problems p = {0};
        long before;

        gw_mem_fail_after(n);
        before = gw_mem_live();
        memset(&v, 0x5a, sizeof(v));
        int rc = parse_z(&v, &z, &p);
        gw_mem_fail_after(-1);
        if (rc == 0) {
            ok = 1;
            assert_int_equal(v.n, 2);
            ctl_view_ring_free(&v);
        } else {
            assert_int_equal(rc, -12 /* -ENOMEM */);
            assert_int_equal(((unsigned char *)&v)[0], 0x5a);
        }
        assert_int_equal(gw_mem_live(), before);
        assert_true(n < 100);
    }
    zset_free(&z);
}

static void test_state(void **state)
{
    (void)state;
    struct ctl_problems p = {0};

    assert_int_equal(ctl_view_state("h:1", NULL, &p), 0);
    assert_int_equal(ctl_view_state("h:1", "active", &p), 0);
    assert_int_equal(ctl_view_state("h:1", "drain", &p), 1);
    assert_int_equal(p.total, 0);
    assert_int_equal(ctl_view_state("h:1", "draining", &p), 0);
    assert_int_equal(p.total, 1);
    assert_non_null(strstr(p.msg[0], "state 'draining'"));
}

/* --- route -------------------------------------------------------------------------------- */

struct tpoint {
    uint32_t token;
    const char *addr;
};

static int cmp_tpoint(const void *a, const void *b)
{
    const struct tpoint *x = a, *y = b;

    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    return strcmp(x->addr, y->addr);
}

/* The documented rule, written out independently of ring.c: points sorted
 * by (token, address); the first point at or after the key's hash, wrapping,
 * whose replica is not drained (and not <skip>). */
static const char *walk(const char *const *addrs, const uint32_t *w, const int *drain, size_t n,
                        const char *key, const char *skip)
{
    struct tpoint pts[64];
    size_t np = 0;
    char m[64];

    for (size_t i = 0; i < n; i++)
        for (uint32_t v = 0; v < w[i]; v++) {
            int len = snprintf(m, sizeof(m), "%s#%u", addrs[i], v);
            pts[np].token = gw_hash32(m, (size_t)len);
            pts[np++].addr = addrs[i];
        }
    qsort(pts, np, sizeof(pts[0]), cmp_tpoint);
    uint32_t h = gw_key_hash32(key, strlen(key));
    size_t start = 0;
    while (start < np && pts[start].token < h)
        start++;
    for (size_t k = 0; k < np; k++) {
        const struct tpoint *p = &pts[(start + k) % np];
        size_t i = 0;

        while (strcmp(addrs[i], p->addr) != 0)
            i++;
        if (!drain[i] && (!skip || strcmp(skip, p->addr) != 0))
            return p->addr;
    }
    return NULL;
}

static void test_route_matches_walk(void **state)
{
    (void)state;
    const char *addrs[] = {"10.0.0.3:80", "10.0.0.1:80", "10.0.0.2:80", "[::1]:80"};
    uint32_t w[] = {7, 3, 12, 1};
    struct gw_ring r;
    char key[32];

    assert_int_equal(gw_ring_build(&r, addrs, w, 4), 0);
    for (int pattern = 0; pattern < 16; pattern++) {
        int drain[4], rdrain[4];

        for (int i = 0; i < 4; i++) {
            drain[i] = pattern >> i & 1;
            rdrain[i] = drain[i]; /* ring index == position in addrs */
        }
        for (int k = 0; k < 300; k++) {
            uint32_t point;
            int first, second;

            snprintf(key, sizeof(key), "key-%d", k);
            ctl_view_route(&r, rdrain, key, strlen(key), &point, &first, &second);
            assert_int_equal(point, gw_key_hash32(key, strlen(key)));
            const char *a = walk(addrs, w, drain, 4, key, NULL);
            const char *b = a ? walk(addrs, w, drain, 4, key, a) : NULL;
            if (!a) {
                assert_int_equal(first, -1);
                assert_int_equal(second, -1);
                continue;
            }
            assert_string_equal(r.replicas[first], a);
            if (b)
                assert_string_equal(r.replicas[second], b);
            else
                assert_int_equal(second, -1);
        }
    }
    gw_ring_free(&r);

    /* A zeroed ring (pool without replicas) routes nowhere. */
    struct gw_ring empty = {0};
    uint32_t point;
    int first, second;
    ctl_view_route(&empty, NULL, "k", 1, &point, &first, &second);
    assert_int_equal(first, -1);
    assert_int_equal(second, -1);
}

/* --- tunables --------------------------------------------------------------------------------- */

static void test_conf(void **state)
{
    (void)state;
    struct ctl_conf_value v[GW_TUN_COUNT];
    struct ctl_problems p = {0};

    ctl_view_conf(v, "g", NULL, 0, "p", NULL, 0, &p);
    assert_int_equal(p.total, 0);
    for (int f = 0; f < GW_TUN_COUNT; f++)
        assert_int_equal(v[f].source, CTL_SRC_DEFAULT);
    assert_string_equal(v[GW_TUN_BALANCE_FACTOR].value, "1.25");
    assert_string_equal(v[GW_TUN_HEDGE_DELAY_MS].value, "off");
    assert_string_equal(v[GW_TUN_ROUTE_HEADER].value, "x-route-key");

    const char *g[] = {"hedge_delay_ms", "50", "retry_max_attempts", "5", "retry_on", "BOGUS",
                       "junk",           "1"};
    const char *pl[] = {"hedge_delay_ms", "auto", "balance_factor", "0.5"};
    ctl_view_conf(v, "infergw:conf", g, 4, "infergw:pool:demo:conf", pl, 2, &p);
    assert_string_equal(v[GW_TUN_HEDGE_DELAY_MS].value, "auto");
    assert_int_equal(v[GW_TUN_HEDGE_DELAY_MS].source, CTL_SRC_POOL);
    assert_string_equal(v[GW_TUN_RETRY_MAX_ATTEMPTS].value, "5");
    assert_int_equal(v[GW_TUN_RETRY_MAX_ATTEMPTS].source, CTL_SRC_GLOBAL);
    /* Invalid values are ignored (the gateways keep their last good one). */
    assert_string_equal(v[GW_TUN_RETRY_ON].value, "UNAVAILABLE");
    assert_int_equal(v[GW_TUN_RETRY_ON].source, CTL_SRC_DEFAULT);
    assert_string_equal(v[GW_TUN_BALANCE_FACTOR].value, "1.25");
    assert_int_equal(v[GW_TUN_BALANCE_FACTOR].source, CTL_SRC_DEFAULT);
    assert_int_equal(p.total, 3);
    assert_non_null(strstr(p.msg[0], "infergw:conf: retry_on 'BOGUS'"));
    assert_non_null(strstr(p.msg[1], "infergw:conf: unknown field 'junk'"));
    assert_non_null(strstr(p.msg[2], "infergw:pool:demo:conf: balance_factor '0.5'"));

    /* Without a pool the pool pairs are not read. */
    struct ctl_problems q = {0};
    ctl_view_conf(v, "g", g, 2, "p", NULL, 0, &q);
    assert_string_equal(v[GW_TUN_HEDGE_DELAY_MS].value, "50");
    assert_int_equal(v[GW_TUN_HEDGE_DELAY_MS].source, CTL_SRC_GLOBAL);
    assert_string_equal(ctl_view_source_name(CTL_SRC_POOL), "pool");
}

/* --- output ------------------------------------------------------------------------------------
 */

static void test_print(void **state)
{
    (void)state;
    const char *addrs[] = {"10.0.0.1:80", "10.0.0.2:80"};
    uint32_t w[] = {100, 300};
    int drain[] = {0, 1};
    struct gw_ring r;
    char *text = NULL;
    json_error_t jerr;
    json_t *doc;

    assert_int_equal(gw_ring_build(&r, addrs, w, 2), 0);

    CAPTURE(text, ctl_view_print_ring(f_, 0, "demo", &r, drain));
    assert_non_null(strstr(text, "pool demo: 2 replicas, 400 vnodes\n"));
    assert_non_null(strstr(text, "REPLICA"));
    assert_non_null(strstr(text, "10.0.0.2:80     300"));
    assert_non_null(strstr(text, "%  drain\n"));
    free(text);

    CAPTURE(text, ctl_view_print_ring(f_, 1, "demo", &r, drain));
    doc = json_loads(text, 0, &jerr);
    assert_non_null(doc);
    assert_int_equal(json_integer_value(json_object_get(doc, "vnodes")), 400);
    json_t *reps = json_object_get(doc, "replicas");
    assert_int_equal(json_array_size(reps), 2);
    double s0 = json_real_value(json_object_get(json_array_get(reps, 0), "share"));
    double s1 = json_real_value(json_object_get(json_array_get(reps, 1), "share"));
    assert_true(s0 > 0.1 && s0 < 0.4);
    assert_true(s0 + s1 > 0.999999 && s0 + s1 < 1.000001);
    assert_string_equal(json_string_value(json_object_get(json_array_get(reps, 1), "state")),
                        "drain");
    json_decref(doc);
    free(text);

    CAPTURE(text, ctl_view_print_replicas(f_, 0, "demo", &r, NULL));
    assert_string_equal(text, "ADDRESS      WEIGHT  STATE\n"
                              "10.0.0.1:80     100  active\n"
                              "10.0.0.2:80     300  active\n");
    free(text);
    CAPTURE(text, ctl_view_print_replicas(f_, 1, "demo", &r, drain));
    assert_string_equal(text, "{\"pool\":\"demo\",\"replicas\":[{\"address\":\"10.0.0.1:80\","
                              "\"weight\":100,\"state\":\"active\"},{\"address\":\"10.0.0.2:80\","
                              "\"weight\":300,\"state\":\"drain\"}]}\n");
    free(text);

    struct gw_ring empty = {0};
    CAPTURE(text, ctl_view_print_replicas(f_, 0, "demo", &empty, NULL));
    assert_string_equal(text, "pool demo has no replicas\n");
    free(text);
    CAPTURE(text, ctl_view_print_ring(f_, 0, "demo", &empty, NULL));
    assert_string_equal(text, "pool demo: empty ring (no replicas)\n");
    free(text);

    CAPTURE(text, ctl_view_print_route(f_, 0, "demo", "k", 7, &r, 1, 0));
    assert_string_equal(text, "10.0.0.2:80 (second choice: 10.0.0.1:80; key point 7)\n");
    free(text);
    CAPTURE(text, ctl_view_print_route(f_, 0, "demo", "k", 7, &r, 0, -1));
    assert_string_equal(text, "10.0.0.1:80 (second choice: none; key point 7)\n");
    free(text);
    CAPTURE(text, ctl_view_print_route(f_, 1, "demo", "k\"\n", 7, &r, 0, -1));
    assert_string_equal(text, "{\"pool\":\"demo\",\"key\":\"k\\\"\\n\",\"point\":7,"
                              "\"replica\":\"10.0.0.1:80\",\"second\":null}\n");
    free(text);
    gw_ring_free(&r);

    struct ctl_conf_value v[GW_TUN_COUNT];
    const char *pl[] = {"hedge_delay_ms", "auto"};
    ctl_view_conf(v, "g", NULL, 0, "p", pl, 1, NULL);
    CAPTURE(text, ctl_view_print_conf(f_, 0, "demo", v, GW_TUN_HEDGE_DELAY_MS));
    assert_string_equal(text, "hedge_delay_ms        auto                     pool demo\n");
    free(text);
    CAPTURE(text, ctl_view_print_conf(f_, 0, NULL, v, GW_TUN_HEDGE_EXCLUDE));
    assert_string_equal(text, "hedge_exclude         \"\"                       default\n");
    free(text);
    CAPTURE(text, ctl_view_print_conf(f_, 1, "demo", v, GW_TUN_HEDGE_DELAY_MS));
    assert_string_equal(text, "{\"field\":\"hedge_delay_ms\",\"value\":\"auto\",\"source\":"
                              "\"pool\",\"pool\":\"demo\"}\n");
    free(text);
    CAPTURE(text, ctl_view_print_conf(f_, 1, NULL, v, -1));
    doc = json_loads(text, 0, &jerr);
    assert_int_equal(json_array_size(doc), GW_TUN_COUNT);
    assert_true(json_is_null(json_object_get(json_array_get(doc, 0), "pool")));
    json_decref(doc);
    free(text);
}

/* --- tenants and API keys ---------------------------------------------------------- */

static void test_tenant_check(void **state)
{
    (void)state;
    struct ctl_problems probs = {0};
    struct ctl_tenant_row ok = {"acme", "a,b", "50", "100", 0};
    struct ctl_tenant_row no_models = {"t1", NULL, "5", NULL, 0};
    struct ctl_tenant_row bad_rps = {"t2", "*", "fast", NULL, 0};

    assert_int_equal(ctl_view_tenant_check(&ok, "infergw:tenant:acme", &probs), 1);
    assert_int_equal(probs.total, 0);
    assert_int_equal(ctl_view_tenant_check(&no_models, "infergw:tenant:t1", &probs), 0);
    assert_int_equal(ctl_view_tenant_check(&bad_rps, "infergw:tenant:t2", &probs), 0);
    assert_int_equal(probs.total, 2);
    assert_non_null(strstr(probs.msg[0], "infergw:tenant:t1 field models"));
    assert_non_null(strstr(probs.msg[1], "infergw:tenant:t2 field rps = 'fast'"));
}

static void test_print_tenants_and_keys(void **state)
{
    (void)state;
    char *text = NULL;
    json_error_t jerr;
    json_t *doc;
    struct ctl_tenant_row t[] = {{"acme", "a,b", "50", "100", 2}, {"root", "*", NULL, "0", 0}};

    CAPTURE(text, ctl_view_print_tenants(f_, 0, t, 2));
    assert_string_equal(text, "TENANT  RPS         BURST     KEYS   MODELS\n"
                              "acme    50          100       2      a,b\n"
                              "root    unlimited   default   0      *\n");
    free(text);
    CAPTURE(text, ctl_view_print_tenants(f_, 1, t, 2));
    doc = json_loads(text, 0, &jerr);
    assert_non_null(doc);
    assert_true(json_real_value(json_object_get(json_array_get(doc, 0), "rps")) == 50.0);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doc, 0), "burst")), 100);
    assert_int_equal(json_integer_value(json_object_get(json_array_get(doc, 0), "keys")), 2);
    assert_true(json_is_null(json_object_get(json_array_get(doc, 1), "rps")));
    json_decref(doc);
    free(text);

    const char *h1 = "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad";
    const char *h2 = "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    const char *h3 = "ffff456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef";
    struct ctl_key_row k[] = {{h1, "zeta", NULL}, {h3, "acme", "1000"}, {h2, "acme", "4102444800"}};
    ctl_view_sort_keys(k, 3);
    assert_ptr_equal(k[0].hash, h2);
    assert_ptr_equal(k[2].hash, h1);
    CAPTURE(text, ctl_view_print_keys(f_, 0, k, 3, 2000));
    assert_string_equal(text, "HASH          EXPIRES (UTC)         TENANT\n"
                              "0123456789ab  2100-01-01T00:00:00Z  acme\n"
                              "ffff456789ab  1970-01-01T00:16:40Z  acme  (expired)\n"
                              "ba7816bf8f01  never                 zeta\n");
    /* Never more of a hash than its prefix. */
    assert_null(strstr(text, "ba7816bf8f01c"));
    free(text);
    CAPTURE(text, ctl_view_print_keys(f_, 1, k, 3, 2000));
    doc = json_loads(text, 0, &jerr);
    assert_non_null(doc);
    assert_int_equal(json_array_size(doc), 3);
    assert_string_equal(json_string_value(json_object_get(json_array_get(doc, 0), "hash_prefix")),
                        "0123456789ab");
    assert_true(json_is_true(json_object_get(json_array_get(doc, 1), "expired")));
    assert_true(json_is_null(json_object_get(json_array_get(doc, 2), "expires_at")));
    json_decref(doc);
    free(text);
}

static void test_status_avail_parse(void **state)
{
    struct ctl_avail a;
    (void)state;
    assert_int_equal(ctl_status_avail_parse("failures=1 recoveries=0 mtbf_s=3.5 mttr_s=0.000 "
                                            "availability=0.75",
                                            &a),
                     0);
    assert_int_equal(a.failures, 1);
    assert_int_equal(a.recoveries, 0);
    assert_true(a.mtbf_s == 3.5 && a.mttr_s == 0 && a.availability == 0.75);
    assert_int_equal(ctl_status_avail_parse(NULL, &a), -1);
    assert_int_equal(ctl_status_avail_parse("", &a), -1);
    assert_int_equal(ctl_status_avail_parse("failures=1 recoveries=0 mtbf_s=3.5", &a), -1);
    assert_int_equal(ctl_status_avail_parse("failures=1 recoveries=0 mtbf_s=3.5 mttr_s=0 "
                                            "availability=1 extra",
                                            &a),
                     -1);
}

static void test_status(void **state)
{
    (void)state;
    struct ctl_status st;
    char *text = NULL;

    assert_true(ctl_status_healthy("healthy"));
    assert_true(ctl_status_healthy("unknown"));
    assert_false(ctl_status_healthy("healthy drain"));
    assert_false(ctl_status_healthy("unknown lease_gone"));
    assert_false(ctl_status_healthy("healthy ejected"));
    assert_false(ctl_status_healthy("unhealthy"));
    assert_false(ctl_status_healthy("not_serving"));
    assert_false(ctl_status_healthy(NULL));

    assert_int_equal(ctl_status_init(&st), 0);
    assert_int_equal(ctl_status_add(&st, "gw1", "10.0.0.2:1", "healthy"), 0);
    assert_int_equal(ctl_status_add(&st, "gw1", "10.0.0.1:1", "healthy"), 0);
    assert_int_equal(ctl_status_add(&st, "gw1", "@version", "7"), 0);
    assert_int_equal(ctl_status_add(&st, "gw1", NULL, NULL), 0);
    assert_int_equal(ctl_status_add(&st, "gw0", "10.0.0.1:1", "unknown"), 0);
    assert_int_equal(ctl_status_add(&st, "gw0", "10.0.0.2:1", "healthy down"), 0);
    assert_int_equal(ctl_status_add(&st, "gw0", "10.0.0.3:1", "healthy"), 0);
    assert_int_equal(ctl_status_add(&st, "gw2", NULL, NULL), 0); /* lists nothing */
    assert_int_equal(ctl_status_add(&st, "gw0", "@avail:10.0.0.2:1",
                                    "failures=2 recoveries=2 mtbf_s=140.000 mttr_s=10.000 "
                                    "availability=0.933333"),
                     0);
    assert_int_equal(ctl_status_add(&st, "gw0", "@avail:10.0.0.3:1", "garbage"), 0);
    size_t ngw, nrep, healthy;
    ctl_status_summary(&st, &ngw, &nrep, &healthy);
    assert_int_equal(ngw, 3);
    assert_int_equal(nrep, 3);
    assert_int_equal(healthy, 0); /* gw2 sees none of them */

    CAPTURE(text, ctl_status_print(&st, f_, 0));
    assert_non_null(strstr(text, "REPLICA     gw0           gw1      gw2\n"));
    assert_non_null(strstr(text, "10.0.0.1:1  unknown       healthy  -\n"));
    assert_non_null(strstr(text, "10.0.0.2:1  healthy down  healthy  -\n"));
    assert_non_null(strstr(text, "10.0.0.3:1  healthy       -        -\n"));
    assert_non_null(strstr(text, "gateways reporting: 3; replicas healthy: 0/3\n"));
    assert_null(strstr(text, "@version"));
    assert_null(strstr(text, "@avail"));
    assert_non_null(strstr(text, "\nREPLICA     GATEWAY  FAILURES          MTBF        MTTR  "
                                 "AVAILABILITY\n"
                                 "10.0.0.2:1  gw0             2      140.000s     10.000s  "
                                 "0.933333\n"
                                 "gateways reporting"));
    free(text);

    CAPTURE(text, ctl_status_print(&st, f_, 1));
    json_t *doc = json_loads(text, 0, NULL);
    assert_non_null(doc);
    assert_int_equal(json_array_size(json_object_get(doc, "gateways")), 3);
    assert_string_equal(
        json_string_value(json_object_get(
            json_object_get(json_object_get(doc, "replicas"), "10.0.0.2:1"), "gw0")),
        "healthy down");
    assert_true(json_is_null(
        json_object_get(json_object_get(json_object_get(doc, "replicas"), "10.0.0.3:1"), "gw1")));
    assert_int_equal(json_integer_value(json_object_get(json_object_get(doc, "versions"), "gw1")),
                     7);
    assert_int_equal(json_integer_value(json_object_get(doc, "total")), 3);
    json_t *av = json_object_get(doc, "availability");
    assert_int_equal(json_object_size(av), 1); /* the malformed report is left out */
    json_t *a2 = json_object_get(json_object_get(av, "10.0.0.2:1"), "gw0");
    assert_int_equal(json_integer_value(json_object_get(a2, "failures")), 2);
    assert_true(json_real_value(json_object_get(a2, "mttr_s")) == 10.0);
    assert_true(json_real_value(json_object_get(a2, "availability")) == 0.933333);
    json_decref(doc);
    free(text);
    ctl_status_free(&st);

    /* Two gateways agreeing: 10.0.0.1 healthy, 10.0.0.2 drained at one of them. */
    assert_int_equal(ctl_status_init(&st), 0);
    ctl_status_add(&st, "a", "10.0.0.1:1", "healthy");
    ctl_status_add(&st, "b", "10.0.0.1:1", "unknown");
    ctl_status_add(&st, "a", "10.0.0.2:1", "healthy");
    ctl_status_add(&st, "b", "10.0.0.2:1", "healthy drain");
    ctl_status_summary(&st, &ngw, &nrep, &healthy);
    assert_int_equal(ngw, 2);
    assert_int_equal(nrep, 2);
    assert_int_equal(healthy, 1);
    ctl_status_free(&st);

    /* No gateway reports. */
    assert_int_equal(ctl_status_init(&st), 0);
    CAPTURE(text, ctl_status_print(&st, f_, 0));
    assert_non_null(strstr(text, "gateways reporting: 0; replicas healthy: 0/0\n"));
    free(text);
    ctl_status_free(&st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_member_and_pinned_tokens),
        cmocka_unit_test(test_ring_parse),
        cmocka_unit_test(test_ring_parse_problems),
        cmocka_unit_test(test_ring_parse_out_of_memory),
        cmocka_unit_test(test_state),
        cmocka_unit_test(test_route_matches_walk),
        cmocka_unit_test(test_conf),
        cmocka_unit_test(test_print),
        cmocka_unit_test(test_tenant_check),
        cmocka_unit_test(test_print_tenants_and_keys),
        cmocka_unit_test(test_status_avail_parse),
        cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
