/* Unit tests for gateway/src/ring.c: the pinned hash, ring order, lookup,
 * passing over replicas, shares, weights, validation, and every allocation
 * failure of gw_ring_build. */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "mem.h"
#include "ring.h"

/* Expected values computed outside this code base, once, with
 * `printf '%s' '<input>' | sha256sum` and the first 8 hex digits. Every
 * writer of the Redis ring must reproduce these. */
static void test_hash32_pinned_vectors(void **state)
{
    static const struct {
        const char *in;
        uint32_t want;
    } v[] = {
        {"", 0xe3b0c442u},
        {"a", 0xca978112u},
        {"abc", 0xba7816bfu},
        {"10.0.0.1:8000#0", 0xfd71d0fau},
        {"10.0.0.1:8000#99", 0x30242df6u},
        {"replica-b:9000#7", 0x74385c3bu},
        {"user-42", 0x6d894aa3u},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(v) / sizeof(v[0]); i++)
        assert_int_equal(gw_hash32(v[i].in, strlen(v[i].in)), v[i].want);
}

static const char *const five[] = {
    "10.0.0.1:8000", "10.0.0.2:8000", "10.0.0.3:8000", "10.0.0.4:8000", "10.0.0.5:8000",
};

static void assert_sorted(const struct gw_ring *r)
{
    for (size_t i = 1; i < r->npoints; i++) {
        const struct gw_ring_point *a = &r->points[i - 1], *b = &r->points[i];

        assert_true(a->token <= b->token);
        if (a->token == b->token)
            assert_true(strcmp(r->replicas[a->replica], r->replicas[b->replica]) <= 0);
    }
}

static void test_build_basic(void **state)
{
    struct gw_ring r;
    uint32_t token0;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    assert_int_equal(r.nreplicas, 5);
    assert_int_equal(r.npoints, 5 * GW_RING_DEFAULT_VNODES);
    for (size_t i = 0; i < 5; i++) {
        assert_string_equal(r.replicas[i], five[i]);
        assert_ptr_not_equal(r.replicas[i], five[i]); /* copied */
        assert_int_equal(r.weights[i], GW_RING_DEFAULT_VNODES);
    }
    assert_sorted(&r);
    /* Vnode 0 of the first replica is at the pinned token fd71d0fa. */
    token0 = gw_hash32("10.0.0.1:8000#0", 15);
    assert_int_equal(token0, 0xfd71d0fau);
    assert_int_equal(gw_ring_pick(&r, token0, NULL, NULL, NULL, 0), 0);
    gw_ring_free(&r);
    assert_null(r.points);
    assert_int_equal(r.nreplicas, 0);
    gw_ring_free(&r); /* a freed ring frees again as a no-op */
}

/* The same replicas in any order give the same (token, address) sequence,
 * and every key goes to the same address. */
static void test_order_independent_of_insertion(void **state)
{
    static const char *const rev[] = {
        "10.0.0.5:8000", "10.0.0.4:8000", "10.0.0.3:8000", "10.0.0.2:8000", "10.0.0.1:8000",
    };
    static const char *const mixed[] = {
        "10.0.0.3:8000", "10.0.0.1:8000", "10.0.0.5:8000", "10.0.0.2:8000", "10.0.0.4:8000",
    };
    const char *const *orders[] = {rev, mixed};
    struct gw_ring a, b;

    (void)state;
    assert_int_equal(gw_ring_build(&a, five, NULL, 5), 0);
    for (size_t o = 0; o < 2; o++) {
        assert_int_equal(gw_ring_build(&b, orders[o], NULL, 5), 0);
        assert_int_equal(a.npoints, b.npoints);
        for (size_t i = 0; i < a.npoints; i++) {
            assert_int_equal(a.points[i].token, b.points[i].token);
            assert_string_equal(a.replicas[a.points[i].replica], b.replicas[b.points[i].replica]);
        }
        for (uint32_t k = 0; k < 2000; k++) {
            char key[32];
            int n = snprintf(key, sizeof(key), "user-%u", k);
            uint32_t point = gw_hash32(key, (size_t)n);

            assert_string_equal(a.replicas[gw_ring_pick(&a, point, NULL, NULL, NULL, 0)],
                                b.replicas[gw_ring_pick(&b, point, NULL, NULL, NULL, 0)]);
        }
        gw_ring_free(&b);
    }
    gw_ring_free(&a);
}

/* "10.1.0.217:7000#29" and "10.1.3.83:7000#21" both hash to e0f66f02
 * (checked with sha256sum): equal tokens are ordered by address, whatever
 * the insertion order, and the first of them owns the keys. */
static void test_equal_tokens_ordered_by_address(void **state)
{
    static const char *const ab[] = {"10.1.0.217:7000", "10.1.3.83:7000"};
    static const char *const ba[] = {"10.1.3.83:7000", "10.1.0.217:7000"};
    static const uint32_t w_ab[] = {30, 22}, w_ba[] = {22, 30};
    const uint32_t tie = 0xe0f66f02u;
    struct gw_ring r;

    (void)state;
    assert_int_equal(gw_hash32("10.1.0.217:7000#29", 18), tie);
    assert_int_equal(gw_hash32("10.1.3.83:7000#21", 17), tie);
    for (int o = 0; o < 2; o++) {
        size_t i, at = SIZE_MAX;
        double sum;

        assert_int_equal(gw_ring_build(&r, o ? ba : ab, o ? w_ba : w_ab, 2), 0);
        assert_int_equal(r.npoints, 52);
        assert_sorted(&r);
        for (i = 0; i < r.npoints; i++) {
            if (r.points[i].token == tie) {
                at = i;
                break;
            }
        }
        assert_true(at + 1 < r.npoints);
        assert_int_equal(r.points[at + 1].token, tie);
        assert_string_equal(r.replicas[r.points[at].replica], "10.1.0.217:7000");
        assert_string_equal(r.replicas[r.points[at + 1].replica], "10.1.3.83:7000");
        assert_string_equal(r.replicas[gw_ring_pick(&r, tie, NULL, NULL, NULL, 0)],
                            "10.1.0.217:7000");
        sum = gw_ring_share(&r, 0) + gw_ring_share(&r, 1);
        assert_true(sum > 1.0 - 1e-12 && sum < 1.0 + 1e-12);
        gw_ring_free(&r);
    }
}

static void test_lookup_clockwise_and_wraps(void **state)
{
    struct gw_ring r;
    const struct gw_ring_point *first, *last;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    first = &r.points[0];
    last = &r.points[r.npoints - 1];
    /* A point past the last token wraps to the first vnode. */
    assert_true(last->token < UINT32_MAX);
    assert_int_equal(gw_ring_pick(&r, last->token + 1, NULL, NULL, NULL, 0), first->replica);
    assert_int_equal(gw_ring_pick(&r, UINT32_MAX, NULL, NULL, NULL, 0), first->replica);
    assert_int_equal(gw_ring_pick(&r, 0, NULL, NULL, NULL, 0), first->replica);
    assert_int_equal(gw_ring_pick(&r, last->token, NULL, NULL, NULL, 0), last->replica);
    /* Every token maps to its own vnode; one past it, to the next. */
    for (size_t i = 0; i + 1 < r.npoints; i++) {
        assert_int_equal(gw_ring_pick(&r, r.points[i].token, NULL, NULL, NULL, 0),
                         r.points[i].replica);
        if (r.points[i + 1].token > r.points[i].token)
            assert_int_equal(gw_ring_pick(&r, r.points[i].token + 1, NULL, NULL, NULL, 0),
                             r.points[i + 1].replica);
    }
    gw_ring_free(&r);
}

static int not_this_one(uint32_t idx, void *ctx)
{
    return idx != *(const uint32_t *)ctx;
}

static int none_eligible(uint32_t idx, void *ctx)
{
    (*(int *)ctx)++;
    return 0;
}

/* Passing over an ineligible replica moves that replica's keys and no
 * other, and they go to the replica next clockwise. */
static void test_skip_moves_only_that_replicas_keys(void **state)
{
    enum { KEYS = 10000 };
    struct gw_ring r;
    const uint32_t down = 2;
    size_t moved = 0, owned[5] = {0};

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    for (uint32_t k = 0; k < KEYS; k++) {
        char key[32];
        int n = snprintf(key, sizeof(key), "session-%u", k);
        uint32_t point = gw_hash32(key, (size_t)n);
        int before = gw_ring_pick(&r, point, NULL, NULL, NULL, 0);
        int after = gw_ring_pick(&r, point, not_this_one, (void *)&down, NULL, 0);
        int excl = gw_ring_pick(&r, point, NULL, NULL, &down, 1);

        assert_true(before >= 0 && before < 5);
        owned[before]++;
        assert_int_equal(after, excl); /* excluding and ineligible agree */
        assert_int_not_equal(after, (int)down);
        if ((uint32_t)before == down)
            moved++;
        else
            assert_int_equal(after, before);
    }
    assert_int_equal(moved, owned[down]);
    /* Each replica gets a fair part of 10,000 keys. */
    for (int i = 0; i < 5; i++)
        assert_true(owned[i] > KEYS / 5 / 2 && owned[i] < KEYS / 5 * 3 / 2);
    gw_ring_free(&r);
}

static void test_pick_excludes_and_gives_up(void **state)
{
    static const uint32_t all[] = {0, 1, 2, 3, 4};
    struct gw_ring r;
    int calls = 0;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    for (uint32_t p = 0; p < 64; p++) {
        uint32_t point = p * 67108864u;
        int first = gw_ring_pick(&r, point, NULL, NULL, NULL, 0);
        uint32_t ex = (uint32_t)first;
        int second = gw_ring_pick(&r, point, NULL, NULL, &ex, 1);

        assert_true(second >= 0);
        assert_int_not_equal(second, first);
        /* Excluding four leaves the fifth. */
        assert_int_equal(gw_ring_pick(&r, point, NULL, NULL, all + 1, 4), 0);
        assert_int_equal(gw_ring_pick(&r, point, NULL, NULL, all, 5), GW_ENOREPLICA);
    }
    /* All ineligible: no replica, and each replica was asked once only. */
    assert_int_equal(gw_ring_pick(&r, 12345, none_eligible, &calls, NULL, 0), GW_ENOREPLICA);
    assert_int_equal(calls, 5);
    gw_ring_free(&r);
}

static void test_share_near_even(void **state)
{
    struct gw_ring r;
    double sum = 0;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, NULL, 5), 0);
    for (uint32_t i = 0; i < 5; i++) {
        double s = gw_ring_share(&r, i);

        /* 100 vnodes keep each share within a few tens of percent of 1/n. */
        assert_true(s > 0.2 * 0.7 && s < 0.2 * 1.3);
        sum += s;
    }
    assert_true(sum > 1.0 - 1e-9 && sum < 1.0 + 1e-9);
    assert_true(gw_ring_share(&r, 5) == 0.0);
    gw_ring_free(&r);

    /* One replica owns everything, even with a single vnode. */
    {
        static const uint32_t one = 1;

        assert_int_equal(gw_ring_build(&r, five, &one, 1), 0);
        assert_true(gw_ring_share(&r, 0) == 1.0);
        assert_int_equal(gw_ring_pick(&r, 7, NULL, NULL, NULL, 0), 0);
        gw_ring_free(&r);
    }
}

/* Shares match the fraction of keys that land on each replica. */
static void test_share_matches_key_spread(void **state)
{
    enum { KEYS = 100000 };
    static const uint32_t w[] = {100, 200, 50};
    struct gw_ring r;
    size_t owned[3] = {0};

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, w, 3), 0);
    assert_int_equal(r.npoints, 350);
    for (uint32_t k = 0; k < KEYS; k++)
        owned[gw_ring_pick(&r, k * 42949u + 12345u, NULL, NULL, NULL, 0)]++;
    for (uint32_t i = 0; i < 3; i++) {
        double frac = (double)owned[i] / KEYS, s = gw_ring_share(&r, i);

        assert_true(frac > s - 0.01 && frac < s + 0.01);
    }
    /* Twice the vnodes, about twice the share. */
    assert_true(gw_ring_share(&r, 1) > gw_ring_share(&r, 0) * 1.4);
    gw_ring_free(&r);
}

static void test_weight_zero(void **state)
{
    static const uint32_t w[] = {100, 0, 100};
    static const uint32_t zero[] = {0, 0};
    struct gw_ring r;

    (void)state;
    assert_int_equal(gw_ring_build(&r, five, w, 3), 0);
    assert_int_equal(r.npoints, 200);
    assert_int_equal(r.nreplicas, 3);
    assert_true(gw_ring_share(&r, 1) == 0.0);
    for (uint32_t p = 0; p < 1000; p++)
        assert_int_not_equal(gw_ring_pick(&r, p * 4294967u, NULL, NULL, NULL, 0), 1);
    gw_ring_free(&r);

    assert_int_equal(gw_ring_build(&r, five, zero, 2), 0);
    assert_int_equal(r.npoints, 0);
    assert_int_equal(gw_ring_pick(&r, 1, NULL, NULL, NULL, 0), GW_ENOREPLICA);
    assert_true(gw_ring_share(&r, 0) == 0.0);
    gw_ring_free(&r);
}

static void test_build_rejects_invalid(void **state)
{
    static const char *const dup[] = {"a:1", "b:2", "a:1"};
    static const char *const empty[] = {"a:1", ""};
    static const char *const null_addr[] = {"a:1", NULL};
    static const uint32_t too_heavy[] = {1, GW_RING_MAX_VNODES + 1};
    struct gw_ring r;

    (void)state;
    memset(&r, 0x5a, sizeof(r));
    assert_int_equal(gw_ring_build(&r, dup, NULL, 3), -EINVAL);
    assert_int_equal(gw_ring_build(&r, empty, NULL, 2), -EINVAL);
    assert_int_equal(gw_ring_build(&r, null_addr, NULL, 2), -EINVAL);
    assert_int_equal(gw_ring_build(&r, five, NULL, 0), -EINVAL);
    assert_int_equal(gw_ring_build(&r, NULL, NULL, 1), -EINVAL);
    assert_int_equal(gw_ring_build(&r, five, too_heavy, 2), -EINVAL);
    /* *out is untouched on failure. */
    assert_int_equal(r.npoints, 0x5a5a5a5a5a5a5a5aull);
}

/* Fails the 1st, 2nd, ... allocation of gw_ring_build in turn: each failure
 * returns -ENOMEM, leaves *out untouched and frees everything; the first run
 * with enough allocations builds the same ring as without the hook. */
static void test_build_allocation_failures(void **state)
{
    static const uint32_t w[] = {3, 0, 5, 2, 1};
    struct gw_ring want, r;
    long base, n;

    (void)state;
    gw_mem_fail_after(-1);
    assert_int_equal(gw_ring_build(&want, five, w, 5), 0);
    base = gw_mem_live();
    for (n = 0;; n++) {
        int rc;

        memset(&r, 0x5a, sizeof(r));
        gw_mem_fail_after(n);
        rc = gw_ring_build(&r, five, w, 5);
        gw_mem_fail_after(-1);
        if (rc == 0)
            break;
        assert_int_equal(rc, -ENOMEM);
        assert_int_equal(r.npoints, 0x5a5a5a5a5a5a5a5aull);
        assert_int_equal(gw_mem_live(), base);
    }
    /* 5 arrays (3 of them scratch) + the points + 5 address copies. */
    assert_int_equal(n, 11);
    assert_int_equal(r.npoints, want.npoints);
    assert_memory_equal(r.points, want.points, want.npoints * sizeof(*want.points));
    gw_ring_free(&r);
    gw_ring_free(&want);
    /* Each ring kept 8 blocks; want's were counted in base. */
    assert_int_equal(gw_mem_live(), base - 8);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hash32_pinned_vectors),
        cmocka_unit_test(test_build_basic),
        cmocka_unit_test(test_order_independent_of_insertion),
        cmocka_unit_test(test_equal_tokens_ordered_by_address),
        cmocka_unit_test(test_lookup_clockwise_and_wraps),
        cmocka_unit_test(test_skip_moves_only_that_replicas_keys),
        cmocka_unit_test(test_pick_excludes_and_gives_up),
        cmocka_unit_test(test_share_near_even),
        cmocka_unit_test(test_share_matches_key_spread),
        cmocka_unit_test(test_weight_zero),
        cmocka_unit_test(test_build_rejects_invalid),
        cmocka_unit_test(test_build_allocation_failures),
    };
    return cmocka_run_group_tests_name("ring", tests, NULL, NULL);
}
