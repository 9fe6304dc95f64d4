/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the picks of gateway/src/route/ring.c: pinned picks, the
 * load cap, the bounded pick (pinned answers, off switch, a reference walk,
 * the census, the fallback that never refuses), the running tally and the
 * capped pick (plain and floored cap) against a straightforward reference
 * under random changes, the floor keeping a light key on its replica, the
 * lookup index against a linear scan, and bounded load under a Zipf stream. Building, lookups and
 * shares are tested in test_ring.c. All randomness comes from a fixed-seed
 * generator, so every run sees the same keys. */
#include <errno.h>
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/mem.h"
#include "route/ring.h"

static const char *const five[] = {
    "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000", "10.0.0.5:8000",
};

/* --- shared helpers for the tests below ------------------------------------- */

/* splitmix64: a fixed-seed generator, so every run sees the same keys. */
static uint64_t rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in [0, 1). */
static double rng_unit(uint64_t *s)
{
    return (double)(rng_next(s) >> 11) * (1.0 / 9007199254740992.0);
}

static uint32_t hash_str(const char *s)
{
    return gw_hash32(s, strlen(s));
}

/* Eligibility from a bitmap of up to 64 replicas; counts the calls. */
struct elig {
    uint64_t ok;
    int calls;
};

static int elig_fn(uint32_t idx, void *ctx)
{
    struct elig *e = ctx;

    e->calls++;
    return idx < 64 && (e->ok >> idx & 1);
}

/* --- pinned answers -------------------------------------------------------- */

/* The replica (and the second and third choices) for a few keys on the
 * five-replica ring, computed once outside this code base by a short
 * independent script (Python hashlib SHA-256 of "<addr>#<i>", points sorted
 * by (token, address), bisect for the first token >= the key's hash). A
 * change here means two gateway versions would route the same key
 * differently. */
static void test_pick_pinned_vectors(void **state)
{
    static const struct {
        const char *key;
        uint32_t point;
        int choice[3];
    } v[] = {
        {"user-1", 0xc6c289e4u, {2, 3, 1}},
        {"user-2", 0xd92b69cfu, {2, 0, 4}},
        {"user-3", 0x92303aa0u, {4, 1, 0}},
        {"tenant-7/model-a", 0x1dfa82c9u, {4, 3, 2}},
        {"session-42", 0x92e76c73u, {4, 1, 0}},
        {"", 0xe3b0c442u, {3, 2, 4}},
        {"\xc3\xa9t\xc3\xa9", 0xbd010c64u, {1, 2, 4}},
    };
    static const struct {
        uint32_t point;
        int choice[3];
    } at[] = {
        {0, {0, 1, 3}},
        {UINT32_MAX, {0, 1, 3}},
        {0x80000000u, {2, 1, 0}},
    };
    struct gw_ring r;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint32_t ex[2];

        assert_int_equal(hash_str(v[i].key), v[i].point);
        for (int c = 0; c < 3; c++) {
            int got = gw_ring_pick(&r, v[i].point, NULL, NULL, ex, (size_t)c);

            assert_int_equal(got, v[i].choice[c]);
            if (c < 2)
                ex[c] = (uint32_t)got;
        }
    }
    for (size_t i = 0; i < sizeof(at) / sizeof(at[0]); i++) {
        uint32_t ex[2] = {(uint32_t)at[i].choice[0], (uint32_t)at[i].choice[1]};

        for (int c = 0; c < 3; c++)
            assert_int_equal(gw_ring_pick(&r, at[i].point, NULL, NULL, ex, (size_t)c),
                             at[i].choice[c]);
    }
    gw_ring_free(&r);
}

static void test_load_cap(void **state)
{
    (void)state;
    assert_int_equal(gw_ring_load_cap(0, 10, 1.25), 1);
    assert_int_equal(gw_ring_load_cap(199, 10, 1.25), 25); /* 1.25 x 200 / 10 */
    assert_int_equal(gw_ring_load_cap(200, 10, 1.25), 26); /* 25.125 rounds up */
    assert_int_equal(gw_ring_load_cap(49, 5, 1.1), 11);    /* exactly 11, not 11.000...2 */
    assert_int_equal(gw_ring_load_cap(99, 10, 1.1), 11);   /* likewise */
    assert_int_equal(gw_ring_load_cap(100, 10, 1.1), 12);  /* 11.11 */
    assert_int_equal(gw_ring_load_cap(9, 1, 1.0), 10);     /* one replica takes all */
    assert_int_equal(gw_ring_load_cap(3, 4, 0.5), 1);      /* below 1: still at least 1 */
    assert_int_equal(gw_ring_load_cap(4095, 4096, 1.0), 1);
    assert_int_equal(gw_ring_load_cap(0, 0, 1.25), UINT64_MAX); /* nobody eligible */
    assert_int_equal(gw_ring_load_cap(5, 3, 0), UINT64_MAX);    /* off */
    assert_int_equal(gw_ring_load_cap(5, 3, -1.0), UINT64_MAX);
    assert_int_equal(gw_ring_load_cap(5, 3, NAN), UINT64_MAX);
    assert_int_equal(gw_ring_load_cap(5, 3, INFINITY), UINT64_MAX);
    assert_int_equal(gw_ring_load_cap(UINT64_MAX, 1, 100.0), UINT64_MAX); /* saturates */
}

/* The floor: a replica may always hold GW_RING_CAP_FLOOR calls, the new one
 * included; above the floor the plain cap rules. */
static void test_load_cap_floor(void **state)
{
    (void)state;
    assert_int_equal(GW_RING_CAP_FLOOR, 2);
    /* The case the floor is for: 1 call in flight on 3 replicas. */
    assert_int_equal(gw_ring_load_cap(1, 3, 1.25), 1);
    assert_int_equal(gw_ring_load_cap_floor(1, 3, 1.25), 2);
    assert_int_equal(gw_ring_load_cap_floor(0, 10, 1.25), 2);
    assert_int_equal(gw_ring_load_cap_floor(3, 4, 0.5), 2);
    /* At and above the floor: unchanged. */
    assert_int_equal(gw_ring_load_cap_floor(3, 3, 1.25), 2); /* ceil(1.667) */
    assert_int_equal(gw_ring_load_cap_floor(5, 3, 1.25), 3); /* ceil(2.5) */
    assert_int_equal(gw_ring_load_cap_floor(199, 10, 1.25), 25);
    assert_int_equal(gw_ring_load_cap_floor(49, 5, 1.1), 11);
    /* No bound stays no bound. */
    assert_int_equal(gw_ring_load_cap_floor(5, 3, 0), UINT64_MAX);
    assert_int_equal(gw_ring_load_cap_floor(0, 0, 1.25), UINT64_MAX);
    assert_int_equal(gw_ring_load_cap_floor(5, 3, NAN), UINT64_MAX);
    /* Every (total, n) at c = 1.25: max(plain, 2). */
    for (uint64_t total = 0; total < 200; total++)
        for (size_t n = 1; n < 20; n++) {
            uint64_t plain = gw_ring_load_cap(total, n, 1.25);
            assert_int_equal(gw_ring_load_cap_floor(total, n, 1.25), plain < 2 ? 2 : plain);
        }
}

/* Bounded picks on the five-replica ring; the expected replicas follow from
 * the pinned clockwise orders above and the cap, worked out by hand. */
static void test_bounded_pinned_vectors(void **state)
{
    static const struct {
        uint32_t point;
        uint32_t inflight[5];
        double c;
        int nexclude;
        uint32_t exclude;
        int want;
    } v[] = {
        /* user-1 walks 2, 3, 1, 4, 0. Cap ceil(1.25 x 7 / 5) = 2: 2 is full. */
        {0xc6c289e4u, {0, 0, 6, 0, 0}, 1.25, 0, 0, 3},
        /* Cap ceil(1.25 x 13 / 5) = 4: 2 and 3 are full. */
        {0xc6c289e4u, {0, 0, 6, 6, 0}, 1.25, 0, 0, 1},
        /* Cap ceil(1.1 x 50 / 5) = 11: 2 and 3 at 11 are full (12 would let 2 in). */
        {0xc6c289e4u, {8, 8, 11, 11, 11}, 1.1, 0, 0, 1},
        /* Cap ceil(1.2 x 50 / 5) = 12: 2 fits. */
        {0xc6c289e4u, {8, 8, 11, 11, 11}, 1.2, 0, 0, 2},
        /* Off: the ring's answer however loaded. */
        {0xc6c289e4u, {0, 0, 100, 0, 0}, 0, 0, 0, 2},
        /* Cap ceil(0.5 x 11 / 5) = 2 and all at 2: nobody fits, first eligible. */
        {0xc6c289e4u, {2, 2, 2, 2, 2}, 0.5, 0, 0, 2},
        /* user-2 walks 2, 0, 4, 3, 1. Cap ceil(1.25 x 7 / 5) = 2. */
        {0xd92b69cfu, {3, 0, 3, 0, 0}, 1.25, 0, 0, 4},
        /* user-3 walks 4, 1, 0, 3, 2; 4 excluded (a hedge); cap 2; 1 is full. */
        {0x92303aa0u, {0, 5, 0, 0, 0}, 1.25, 1, 4, 0},
        /* Everyone equal and within the cap: no change. */
        {0x92303aa0u, {4, 4, 4, 4, 4}, 1.25, 0, 0, 4},
    };
    struct gw_ring r;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++) {
        uint64_t total = 0;

        assert_int_equal(gw_ring_pick_bounded(&r, v[i].point, NULL, NULL, &v[i].exclude,
                                              (size_t)v[i].nexclude, v[i].inflight, v[i].c),
                         v[i].want);
        for (int j = 0; j < 5; j++)
            total += v[i].inflight[j];
        assert_int_equal(gw_ring_pick_capped(&r, v[i].point, NULL, NULL, &v[i].exclude,
                                             (size_t)v[i].nexclude, v[i].inflight,
                                             gw_ring_load_cap(total, 5, v[i].c)),
                         v[i].want);
    }
    gw_ring_free(&r);
}

/* Balance factor off (0, negative, NaN) or no in-flight counts: exactly
 * gw_ring_pick, with any eligibility and exclusions. */
static void test_bounded_off_is_pick(void **state)
{
    static const double off[] = {0.0, -1.0, NAN};
    uint32_t inflight[5] = {50, 0, 7, 300, 1};
    uint64_t seed = 7;
    struct gw_ring r;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    for (int k = 0; k < 20000; k++) {
        uint32_t point = (uint32_t)rng_next(&seed), ex = (uint32_t)(rng_next(&seed) % 5);
        size_t nex = k % 2;
        struct elig e = {rng_next(&seed) & 0x1f, 0};
        int want = gw_ring_pick(&r, point, elig_fn, &e, &ex, nex);

        for (size_t o = 0; o < 3; o++)
            assert_int_equal(
                gw_ring_pick_bounded(&r, point, elig_fn, &e, &ex, nex, inflight, off[o]), want);
        assert_int_equal(gw_ring_pick_bounded(&r, point, elig_fn, &e, &ex, nex, NULL, 1.25), want);
        assert_int_equal(
            gw_ring_pick_capped(&r, point, elig_fn, &e, &ex, nex, inflight, UINT64_MAX), want);
        assert_int_equal(gw_ring_pick_capped(&r, point, elig_fn, &e, &ex, nex, NULL, 0), want);
    }
    /* Nothing in flight: every replica fits, so the bound changes nothing. */
    memset(inflight, 0, sizeof(inflight));
    for (int k = 0; k < 20000; k++) {
        uint32_t point = (uint32_t)rng_next(&seed);

        assert_int_equal(gw_ring_pick_bounded(&r, point, NULL, NULL, NULL, 0, inflight, 1.25),
                         gw_ring_pick(&r, point, NULL, NULL, NULL, 0));
    }
    gw_ring_free(&r);
}

/* The bounded pick against a reference built only from the documented
 * behaviour: the clockwise order of distinct replicas comes from repeated
 * gw_ring_pick calls with the earlier choices excluded; the answer is the
 * first of them, eligible and not excluded, with inflight + 1 <= cap, where
 * cap is computed here from the census in integers; else the first eligible
 * one. A ring of 12 replicas with mixed weights, random loads, eligibility
 * and exclusions, balance factors 1.25 and 0.75 (the latter makes everyone
 * over the cap often enough to exercise the fallback). */
static void test_bounded_matches_reference_walk(void **state)
{
    enum { N = 12 };
    static const char *const addrs[N] = {
        "10.2.0.1:9000", "10.2.0.2:9000",  "10.2.0.3:9000",  "10.2.0.4:9000",
        "10.2.0.5:9000", "10.2.0.6:9000",  "10.2.0.7:9000",  "10.2.0.8:9000",
        "10.2.0.9:9000", "10.2.0.10:9000", "10.2.0.11:9000", "10.2.0.12:9000",
    };
    static const uint32_t w[N] = {100, 50, 0, 100, 200, 1, 100, 100, 30, 0, 100, 100};
    uint64_t seed = 99;
    struct gw_ring r;
    long passed_over = 0, fell_back = 0;

    (void)state;
    assert_int_equal(gw_ring_build(&r, addrs, w, N), 0);
    for (int k = 0; k < 30000; k++) {
        uint32_t point = (uint32_t)rng_next(&seed), inflight[N], order[N], ex[2];
        size_t norder = 0, nex = (size_t)(rng_next(&seed) % 3);
        uint64_t total = 0, n = 0, cap;
        struct elig e = {rng_next(&seed) | rng_next(&seed), 0}; /* ~3/4 eligible */
        uint64_t num = k % 2 ? 5 : 3;                           /* c = num / 4 */
        int want = GW_ENOREPLICA, first = GW_ENOREPLICA, got;

        for (int i = 0; i < N; i++)
            inflight[i] = (uint32_t)(rng_next(&seed) % 40);
        for (size_t i = 0; i < nex; i++)
            ex[i] = (uint32_t)(rng_next(&seed) % N);
        for (int i = 0; i < N; i++) {
            if (w[i] && (e.ok >> i & 1)) {
                n++;
                total += inflight[i];
            }
        }
        /* ceil(c (total + 1) / n) = ceil(num (total + 1) / 4n) */
        cap = n ? (num * (total + 1) + 4 * n - 1) / (4 * n) : 0;
        /* Every replica that is on a point, clockwise from the key. */
        for (;;) {
            int p = gw_ring_pick(&r, point, NULL, NULL, order, norder);

            if (p < 0)
                break;
            order[norder++] = (uint32_t)p;
        }
        assert_int_equal(norder, N - 2);
        for (size_t i = 0; i < norder; i++) {
            uint32_t idx = order[i];

            if (!(e.ok >> idx & 1) || (nex > 0 && ex[0] == idx) || (nex > 1 && ex[1] == idx))
                continue;
            if (first < 0)
                first = (int)idx;
            if (inflight[idx] + 1 <= cap) {
                want = (int)idx;
                break;
            }
        }
        if (want < 0)
            want = first;
        got = gw_ring_pick_bounded(&r, point, elig_fn, &e, ex, nex, inflight, (double)num / 4);
        assert_int_equal(got, want);
        assert_int_equal(gw_ring_pick_capped(&r, point, elig_fn, &e, ex, nex, inflight, cap), want);
        passed_over += want != first;
        fell_back += want >= 0 && inflight[want] + 1 > cap;
    }
    print_message("      reference walk: %ld passed over, %ld fell back\n", passed_over, fell_back);
    /* The random loads exercised both paths. */
    assert_true(passed_over > 1000);
    assert_true(fell_back > 10);
    gw_ring_free(&r);
}

/* The census counts only replicas that are on a point and eligible, and
 * only their calls; it asks each of them once, and the walk asks nobody
 * again. */
static void test_bounded_census(void **state)
{
    static const uint32_t w[] = {100, 0, 100, 100, 100};
    struct gw_ring r;
    /* 1 weighs 0 and 4 is ineligible: their loads must not raise the cap. */
    uint32_t inflight[5] = {2, 1000, 2, 2, 1000};
    struct elig e = {0x0f, 0};
    uint64_t seed = 3;
    int passed_over = 0;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, w, 5), 0);
    for (int k = 0; k < 2000; k++) {
        uint32_t point = (uint32_t)rng_next(&seed);
        int first = gw_ring_pick(&r, point, elig_fn, &e, NULL, 0), got;

        /* n = 3 (0, 2, 3), total 6: cap ceil(1.25 x 7 / 3) = 3, so 2 fits. */
        e.calls = 0;
        got = gw_ring_pick_bounded(&r, point, elig_fn, &e, NULL, 0, inflight, 1.25);
        assert_int_equal(got, first);
        assert_int_equal(e.calls, 4); /* 0, 2, 3, 4: not the weightless 1 */
    }
    /* Now 0 carries 4: cap ceil(1.25 x 9 / 3) = 4, so 0 is full and its
     * keys go on to the next eligible replica clockwise. */
    inflight[0] = 4;
    for (int k = 0; k < 2000; k++) {
        uint32_t point = (uint32_t)rng_next(&seed), ex = 0;
        int first = gw_ring_pick(&r, point, elig_fn, &e, NULL, 0);
        int got = gw_ring_pick_bounded(&r, point, elig_fn, &e, NULL, 0, inflight, 1.25);

        if (first == 0) {
            assert_int_equal(got, gw_ring_pick(&r, point, elig_fn, &e, &ex, 1));
            passed_over++;
        } else {
            assert_int_equal(got, first);
        }
    }
    assert_true(passed_over > 300);
    gw_ring_free(&r);
}

/* On rings big enough for a lookup index, every lookup lands where a linear
 * scan for the first token at or after the point lands: random points, each
 * point's own token and its neighbours, the ends of the hash space, and
 * every slot boundary. */
static void test_index_matches_linear_scan(void **state)
{
    static const size_t sizes[] = {3, 26, 300};
    uint64_t seed = 42;

    (void)state;
    for (size_t s = 0; s < sizeof(sizes) / sizeof(sizes[0]); s++) {
        size_t n = sizes[s], at = 0;
        char(*names)[32] = malloc(n * sizeof(*names));
        const char **addrs = malloc(n * sizeof(*addrs));
        struct gw_ring r;

        assert_non_null(names);
        assert_non_null(addrs);
        for (size_t i = 0; i < n; i++) {
            snprintf(names[i], sizeof(names[i]), "ix%zu:80", i);
            addrs[i] = names[i];
        }
        assert_int_equal(gw_ring_build(&r, addrs, NULL, n), 0);
        assert_true((r.index != NULL) == (r.npoints >= GW_RING_INDEX_MIN));
        for (long k = 0; k < 25000; k++) {
            uint32_t point;
            size_t lin = 0;

            switch (k % 5) {
            case 0:
                point = r.points[at % r.npoints].token;
                break;
            case 1:
                point = r.points[at % r.npoints].token + 1;
                break;
            case 2:
                point = r.points[at++ % r.npoints].token - 1;
                break;
            case 3:
                point = r.index ? (uint32_t)((k / 5) << r.index_shift) : (uint32_t)k;
                break;
            default:
                point = k < 10 ? (k % 2 ? UINT32_MAX : 0) : (uint32_t)rng_next(&seed);
                break;
            }
            while (lin < r.npoints && r.points[lin].token < point)
                lin++;
            assert_int_equal(gw_ring_pick(&r, point, NULL, NULL, NULL, 0),
                             r.points[lin % r.npoints].replica);
        }
        gw_ring_free(&r);
        free(names);
        free(addrs);
    }
}

/* The straightforward bounded pick, written without ring.c's walk: scan
 * every point for the first at or after <point>, go once round the ring,
 * count eligible replicas on a point (excluded ones too) and their calls,
 * cap = ceil(num/4 x (total + 1) / n) by integer arithmetic, raised to
 * <floor> (num 0 = no bound), then the first eligible, non-excluded replica
 * within the cap, else the first eligible, non-excluded one. */
static int reference_bounded(const struct gw_ring *r, uint32_t point, uint64_t ok,
                             const uint32_t *ex, size_t nex, const uint32_t *inflight, uint64_t num,
                             uint64_t floor)
{
    uint64_t n = 0, total = 0, cap = UINT64_MAX;
    size_t start = 0;
    int first = GW_ENOREPLICA;

    for (size_t i = 0; i < r->nreplicas; i++)
        if (r->weights[i] && (ok >> i & 1)) {
            n++;
            total += inflight[i];
        }
    if (num && n == 0)
        return GW_ENOREPLICA;
    if (num)
        cap = (num * (total + 1) + 4 * n - 1) / (4 * n);
    if (num && cap < floor)
        cap = floor;
    while (start < r->npoints && r->points[start].token < point)
        start++;
    for (size_t k = 0; k < r->npoints; k++) {
        uint32_t idx = r->points[(start + k) % r->npoints].replica;
        int excluded = 0;

        for (size_t e = 0; e < nex; e++)
            excluded |= ex[e] == idx;
        if (excluded || !(ok >> idx & 1))
            continue;
        if (first < 0)
            first = (int)idx;
        if ((uint64_t)inflight[idx] + 1 <= cap)
            return (int)idx;
    }
    return first;
}

/* A tally kept running as the gateway keeps it (a census when eligibility
 * changes, in-flight changes of counted replicas added in between) always
 * equals the census; the capped pick with the tally's cap gives the
 * reference answer, which is also gw_ring_pick_bounded's, and with the
 * floored cap the floored reference's, over random rings (weights 0
 * included), loads, exclusions and balance factors. */
static void test_running_tally_matches_reference(void **state)
{
    static const uint64_t nums[] = {0, 3, 4, 5, 8}; /* c = num / 4 */
    uint64_t seed = 15;
    long picks = 0, passed_over = 0, fell_back = 0, floor_kept = 0;

    (void)state;
    for (int round = 0; round < 60; round++) {
        size_t n = 1 + (size_t)(rng_next(&seed) % 40);
        char names[40][16];
        const char *addrs[40];
        uint32_t w[40], inflight[40] = {0};
        struct elig e = {0, 0};
        struct gw_ring r;
        struct gw_ring_tally t = {0, 0}, c;

        for (size_t i = 0; i < n; i++) {
            snprintf(names[i], sizeof(names[i]), "r%zu:%u", i, (unsigned)(round + 1));
            addrs[i] = names[i];
            w[i] = rng_next(&seed) % 5 == 0 ? 0 : 1 + (uint32_t)(rng_next(&seed) % 20);
        }
        assert_int_equal(gw_ring_build(&r, addrs, w, n), 0);
        for (int step = 0; step < 500; step++) {
            uint32_t idx = (uint32_t)(rng_next(&seed) % n), ex[2];
            size_t nex = (size_t)(rng_next(&seed) % 3);
            uint32_t point = (uint32_t)rng_next(&seed);
            uint64_t num = nums[rng_next(&seed) % 5];
            double f = (double)num / 4;
            int want, got;

            if (rng_next(&seed) % 4 == 0) { /* eligibility flips: a new census */
                e.ok ^= 1ull << idx;
                gw_ring_tally_census(&t, &r, elig_fn, &e, inflight);
            } else { /* a call starts or ends on it */
                int64_t d = inflight[idx] && rng_next(&seed) % 2 ? -1 : 1;

                inflight[idx] = (uint32_t)((int64_t)inflight[idx] + d);
                if ((e.ok >> idx & 1) && w[idx])
                    gw_ring_tally_add(&t, d);
            }
            gw_ring_tally_census(&c, &r, elig_fn, &e, inflight);
            assert_int_equal(t.n_eligible, c.n_eligible);
            assert_int_equal(t.inflight, c.inflight);
            for (size_t i = 0; i < nex; i++)
                ex[i] = (uint32_t)(rng_next(&seed) % n);
            want = reference_bounded(&r, point, e.ok, ex, nex, inflight, num, 0);
            got = gw_ring_pick_capped(&r, point, elig_fn, &e, ex, nex, inflight,
                                      gw_ring_load_cap(t.inflight, t.n_eligible, f));
            assert_int_equal(got, want);
            assert_int_equal(gw_ring_pick_bounded(&r, point, elig_fn, &e, ex, nex, inflight, f),
                             want);
            got = gw_ring_pick_capped(&r, point, elig_fn, &e, ex, nex, inflight,
                                      gw_ring_load_cap_floor(t.inflight, t.n_eligible, f));
            assert_int_equal(
                got, reference_bounded(&r, point, e.ok, ex, nex, inflight, num, GW_RING_CAP_FLOOR));
            floor_kept += got != want;
            picks++;
            if (want >= 0) {
                int plain = gw_ring_pick(&r, point, elig_fn, &e, ex, nex);

                passed_over += want != plain;
                fell_back +=
                    num && want == plain &&
                    (uint64_t)inflight[want] + 1 > gw_ring_load_cap(t.inflight, t.n_eligible, f);
            }
        }
        gw_ring_free(&r);
    }
    print_message("      running tally vs reference: %ld picks, %ld passed over, %ld fell back, "
                  "%ld kept by the floor\n",
                  picks, passed_over, fell_back, floor_kept);
    assert_true(passed_over > 1000);
    assert_true(fell_back > 100);
    assert_true(floor_kept > 0);
}

/* A census skips replicas of weight 0 and counts no load without an
 * array; a capped pick with no cap or no loads is the plain pick. */
static void test_tally_edges(void **state)
{
    static const uint32_t w[] = {100, 0, 100, 100, 100};
    uint32_t inflight[5] = {9, 9, 0, 0, 0};
    struct gw_ring r;
    struct gw_ring_tally t = {0, 0};
    uint64_t seed = 7;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, w, 5), 0);
    gw_ring_tally_census(&t, &r, NULL, NULL, inflight);
    assert_int_equal(t.n_eligible, 4);
    assert_int_equal(t.inflight, 9);
    gw_ring_tally_add(&t, 2);
    gw_ring_tally_add(&t, -1);
    assert_int_equal(t.inflight, 10);
    gw_ring_tally_census(&t, &r, NULL, NULL, NULL);
    assert_int_equal(t.inflight, 0);
    for (int k = 0; k < 1000; k++) {
        uint32_t point = (uint32_t)rng_next(&seed);
        int plain = gw_ring_pick(&r, point, NULL, NULL, NULL, 0);

        assert_int_equal(gw_ring_pick_capped(&r, point, NULL, NULL, NULL, 0, inflight, UINT64_MAX),
                         plain);
        assert_int_equal(gw_ring_pick_capped(&r, point, NULL, NULL, NULL, 0, NULL, 1), plain);
    }
    gw_ring_free(&r);
}

/* Calls of one key on a ring of three, each counted before the next: with
 * the floored cap the first two stay on the keyed replica and the third
 * moves; with the plain cap the second already moves (cap
 * ceil(1.25 x 2 / 3) = 1). */
static void test_floor_keeps_two_calls_on_the_key(void **state)
{
    struct gw_ring r;
    uint32_t inflight[3] = {0, 0, 0};
    uint32_t point = gw_key_hash32("session-7", 9);

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 3), 0);
    int keyed = gw_ring_pick(&r, point, NULL, NULL, NULL, 0);
    for (uint64_t total = 0; total < 3; total++) {
        int got = gw_ring_pick_capped(&r, point, NULL, NULL, NULL, 0, inflight,
                                      gw_ring_load_cap_floor(total, 3, 1.25));
        int plain = gw_ring_pick_capped(&r, point, NULL, NULL, NULL, 0, inflight,
                                        gw_ring_load_cap(total, 3, 1.25));

        if (total < 2)
            assert_int_equal(got, keyed);
        else
            assert_true(got >= 0 && got != keyed);
        if (total == 1)
            assert_true(plain != keyed);
        inflight[got]++;
    }
    gw_ring_free(&r);
}

static void test_bounded_falls_back_never_refuses(void **state)
{
    static const uint32_t zero[] = {0, 0};
    struct gw_ring r;
    uint32_t inflight[5] = {10, 10, 10, 10, 10};
    struct elig none = {0, 0}, only3 = {1u << 3, 0};
    uint64_t seed = 11;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    for (int k = 0; k < 2000; k++) {
        uint32_t point = (uint32_t)rng_next(&seed), ex = (uint32_t)(k % 5);

        /* A factor below 1 puts everyone over the cap: the ring's answer. */
        assert_int_equal(gw_ring_pick_bounded(&r, point, NULL, NULL, NULL, 0, inflight, 0.5),
                         gw_ring_pick(&r, point, NULL, NULL, NULL, 0));
        /* With the first choice excluded, the second. */
        assert_int_equal(gw_ring_pick_bounded(&r, point, NULL, NULL, &ex, 1, inflight, 0.5),
                         gw_ring_pick(&r, point, NULL, NULL, &ex, 1));
        /* One eligible replica, however loaded, takes the call. */
        inflight[3] = 1000;
        assert_int_equal(gw_ring_pick_bounded(&r, point, elig_fn, &only3, NULL, 0, inflight, 1.25),
                         3);
        inflight[3] = 10;
        assert_int_equal(gw_ring_pick_bounded(&r, point, elig_fn, &none, NULL, 0, inflight, 1.25),
                         GW_ENOREPLICA);
    }
    /* Every eligible replica excluded: none. */
    {
        static const uint32_t all[] = {0, 1, 2, 3, 4};

        assert_int_equal(gw_ring_pick_bounded(&r, 5, NULL, NULL, all, 5, inflight, 1.25),
                         GW_ENOREPLICA);
    }
    gw_ring_free(&r);
    /* A ring with no points. */
    assert_int_equal(gw_ring_build(&r, five, zero, 2), 0);
    assert_int_equal(gw_ring_pick_bounded(&r, 5, NULL, NULL, NULL, 0, inflight, 1.25),
                     GW_ENOREPLICA);
    assert_int_equal(gw_ring_pick_capped(&r, 5, NULL, NULL, NULL, 0, inflight, 3), GW_ENOREPLICA);
    gw_ring_free(&r);
}

/* Ten replicas on loopback ports (the set test_ring.c pins its acceptance
 * checks on). */
#define N10 10
static const char *const ten[N10] = {
    "127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003", "127.0.0.1:9004", "127.0.0.1:9005",
    "127.0.0.1:9006", "127.0.0.1:9007", "127.0.0.1:9008", "127.0.0.1:9009", "127.0.0.1:9010",
};

/* A Zipf(1.1) stream over 10,000 keys, with calls arriving and completing so
 * that 180..220 are in flight (a reflected random walk from the fixed
 * generator). Runs the stream with ten eligible replicas and again with one
 * of them draining (ineligible: n = 9). At every pick the chosen replica's
 * in-flight count, the new call included, is at most ceil(c x mean), the
 * mean taken over the eligible replicas with the new call, as in the
 * algorithm. Without the bound the same stream goes over it, so the check
 * has teeth. */
struct zipf_run {
    long picks, passed_over, over_cap;
    uint32_t max_seen;
};

static void zipf_stream(const struct gw_ring *r, const uint32_t *points, const double *cdf,
                        size_t nkeys, double c, int draining, struct zipf_run *out)
{
    enum { STEPS = 300000, CALLS_MAX = 256 };
    uint32_t inflight[N10] = {0}, calls[CALLS_MAX];
    size_t ncalls = 0;
    uint64_t seed = 1101, total = 0;
    struct elig e = {(1u << N10) - 1, 0};
    uint64_t n = N10;

    if (draining >= 0) {
        e.ok &= ~(1ull << draining);
        n--;
    }
    memset(out, 0, sizeof(*out));
    for (int step = 0; step < STEPS; step++) {
        int arrive = ncalls < 180 || (ncalls <= 220 && (rng_next(&seed) & 1));

        if (arrive) {
            double u = rng_unit(&seed);
            size_t lo = 0, hi = nkeys - 1;
            uint64_t cap;
            int got;

            while (lo < hi) { /* the first rank whose cumulative weight exceeds u */
                size_t mid = (lo + hi) / 2;

                if (cdf[mid] > u)
                    hi = mid;
                else
                    lo = mid + 1;
            }
            /* cap in integers: ceil(5 (total + 1) / 4n) */
            cap = (5 * (total + 1) + 4 * n - 1) / (4 * n);
            got = gw_ring_pick_bounded(r, points[lo], elig_fn, &e, NULL, 0, inflight, c);
            assert_true(got >= 0 && got != draining);
            out->picks++;
            out->passed_over += got != gw_ring_pick(r, points[lo], elig_fn, &e, NULL, 0);
            inflight[got]++;
            total++;
            out->over_cap += inflight[got] > cap;
            if (inflight[got] > out->max_seen)
                out->max_seen = inflight[got];
            assert_true(ncalls < CALLS_MAX);
            calls[ncalls++] = (uint32_t)got;
        } else {
            size_t which = (size_t)(rng_next(&seed) % ncalls);

            inflight[calls[which]]--;
            total--;
            calls[which] = calls[--ncalls];
        }
    }
}

static void test_acceptance_bounded_zipf(void **state)
{
    enum { ZKEYS = 10000 };
    struct gw_ring r;
    uint32_t *points = malloc(ZKEYS * sizeof(*points));
    double *cdf = malloc(ZKEYS * sizeof(*cdf)), sum = 0;
    struct zipf_run run;

    (void)state;
    assert_non_null(points);
    assert_non_null(cdf);
    for (size_t i = 0; i < ZKEYS; i++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "zipf-%zu", i);

        points[i] = gw_hash32(key, (size_t)n);
        sum += pow((double)(i + 1), -1.1);
        cdf[i] = sum;
    }
    for (size_t i = 0; i < ZKEYS; i++)
        cdf[i] /= sum;
    cdf[ZKEYS - 1] = 2.0; /* rounding never runs past the last rank */
    assert_int_equal(gw_ring_build(&r, ten, NULL, N10), 0);

    for (int draining = -1; draining <= 3; draining += 4) {
        zipf_stream(&r, points, cdf, ZKEYS, 1.25, draining, &run);
        print_message("      zipf c=1.25 %s: %ld picks, %.1f%% passed over, max in flight %u, "
                      "%ld over the cap\n",
                      draining < 0 ? "10 eligible" : "9 eligible", run.picks,
                      100.0 * run.passed_over / run.picks, run.max_seen, run.over_cap);
        assert_true(run.picks > 100000);
        assert_int_equal(run.over_cap, 0);
        /* The bound was needed, and most calls still went to their own replica. */
        assert_true(run.passed_over > 0);
        assert_true(run.passed_over < run.picks / 2);

        zipf_stream(&r, points, cdf, ZKEYS, 0, draining, &run);
        print_message("      zipf c=0 (off): max in flight %u, %ld picks over the cap\n",
                      run.max_seen, run.over_cap);
        assert_true(run.over_cap > 1000);
    }
    gw_ring_free(&r);
    free(points);
    free(cdf);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pick_pinned_vectors),
        cmocka_unit_test(test_load_cap),
        cmocka_unit_test(test_load_cap_floor),
        cmocka_unit_test(test_bounded_pinned_vectors),
        cmocka_unit_test(test_bounded_off_is_pick),
        cmocka_unit_test(test_bounded_matches_reference_walk),
        cmocka_unit_test(test_bounded_census),
        cmocka_unit_test(test_index_matches_linear_scan),
        cmocka_unit_test(test_running_tally_matches_reference),
        cmocka_unit_test(test_tally_edges),
        cmocka_unit_test(test_floor_keeps_two_calls_on_the_key),
        cmocka_unit_test(test_bounded_falls_back_never_refuses),
        cmocka_unit_test(test_acceptance_bounded_zipf),
    };
    return cmocka_run_group_tests_name("ring_pick", tests, NULL, NULL);
}
