/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/prefixscore.c, the prefix-cache routing
 * decision: ring fallback without a match, the longest match, the load
 * override when the longest match is over the bounded-load cap (with the
 * floor of route/ring.h) or over the imbalance threshold, the score (matched
 * against load, load_weight), ties, and every candidate over. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "route/prefixscore.h"
#include "route/ring.h"

#define NONE (-1.0)

static struct gw_pscore_params params(uint32_t n, uint64_t cap)
{
    struct gw_pscore_params p = {.nblocks = n, .cap = cap, .load_weight = 1.0, .imbalance = 1.5};
    return p;
}

static void test_ring_fallback(void **state)
{
    struct gw_pscore_cand c[3] = {
        {.key = 1, .inflight = 0, .matched = 0, .load = NONE},
        {.key = 2, .inflight = 5, .matched = 0, .load = 0.9},
        {.key = 3, .inflight = 1, .matched = 0, .load = NONE},
    };
    struct gw_pscore_params p = params(64, UINT64_MAX);
    struct gw_pscore_result r;

    (void)state;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), -1);
    assert_int_equal(r.kind, GW_PSCORE_RING_FALLBACK);
    assert_int_equal(r.index, -1);
    assert_string_equal(gw_pscore_kind_name(r.kind), "ring_fallback");
    /* No candidates, or a prompt of no blocks: ring too. */
    assert_int_equal(gw_pscore_pick(c, 0, &p, &r), -1);
    assert_int_equal(r.kind, GW_PSCORE_RING_FALLBACK);
    c[0].matched = 3;
    p.nblocks = 0;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), -1);
    assert_int_equal(r.kind, GW_PSCORE_RING_FALLBACK);
}

static void test_longest_match(void **state)
{
    struct gw_pscore_cand c[4] = {
        {.key = 1, .inflight = 2, .matched = 10, .load = NONE},
        {.key = 2, .inflight = 3, .matched = 40, .load = NONE},
        {.key = 3, .inflight = 0, .matched = 0, .load = NONE},
        {.key = 4, .inflight = 1, .matched = 39, .load = NONE},
    };
    uint64_t cap = gw_ring_load_cap_floor(6, 4, 1.25); /* ceil(1.25 x 7 / 4) = 3 */
    struct gw_pscore_params p = params(64, cap);
    struct gw_pscore_result r;

    (void)state;
    assert_int_equal(cap, 3);
    /* Replica 2 matched most but holds 3 = the cap: 3 + 1 > 3, over. The
     * best score among the others: 4 (39/64 - 1/3) over 1 (10/64 - 2/3)
     * and 3 (0 - 0). */
    assert_int_equal(gw_pscore_pick(c, 4, &p, &r), 3);
    assert_int_equal(r.kind, GW_PSCORE_LOAD_OVERRIDE);
    assert_int_equal(r.matched, 39);
    assert_string_equal(gw_pscore_kind_name(r.kind), "load_override");
    /* Under the cap: the longest match. */
    c[1].inflight = 1;
    assert_int_equal(gw_pscore_pick(c, 4, &p, &r), 1);
    assert_int_equal(r.kind, GW_PSCORE_PREFIX);
    assert_int_equal(r.matched, 40);
    assert_string_equal(gw_pscore_kind_name(r.kind), "prefix");
    /* No cap at all: the longest match whatever its load. */
    c[1].inflight = 1000;
    p.cap = UINT64_MAX;
    assert_int_equal(gw_pscore_pick(c, 4, &p, &r), 1);
    assert_int_equal(r.kind, GW_PSCORE_PREFIX);
}

/* The floor keeps light loads sticky: 1 call in flight on one replica of
 * three; the plain cap (1) would move the next call sharing its prefix. */
static void test_floor_keeps_affinity(void **state)
{
    struct gw_pscore_cand c[3] = {
        {.key = 1, .inflight = 1, .matched = 8, .load = NONE},
        {.key = 2, .inflight = 0, .matched = 0, .load = NONE},
        {.key = 3, .inflight = 0, .matched = 0, .load = NONE},
    };
    struct gw_pscore_params p = params(8, gw_ring_load_cap(1, 3, 1.25));
    struct gw_pscore_result r;

    (void)state;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 1); /* moved: key 2, lower key of a tie */
    assert_int_equal(r.kind, GW_PSCORE_LOAD_OVERRIDE);
    p.cap = gw_ring_load_cap_floor(1, 3, 1.25);
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 0);
    assert_int_equal(r.kind, GW_PSCORE_PREFIX);
}

static void test_imbalance(void **state)
{
    struct gw_pscore_cand c[3] = {
        {.key = 1, .inflight = 0, .matched = 20, .load = 0.9},
        {.key = 2, .inflight = 0, .matched = 5, .load = 0.2},
        {.key = 3, .inflight = 0, .matched = 0, .load = 0.1},
    };
    struct gw_pscore_params p = params(20, UINT64_MAX);
    struct gw_pscore_result r;

    (void)state;
    /* Mean 0.4; 0.9 > 1.5 x 0.4: replica 1 is not chosen for affinity.
     * Scores: 2 = 5/20 - 0.2 = 0.05, 3 = 0 - 0.1. */
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 1);
    assert_int_equal(r.kind, GW_PSCORE_LOAD_OVERRIDE);
    assert_true(r.score > 0.049 && r.score < 0.051);
    /* A heavier load weight does not change who is imbalanced, but a zero
     * weight makes the score the match alone. */
    p.load_weight = 0;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 1);
    /* Imbalance off: the longest match. */
    p.imbalance = 0;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 0);
    assert_int_equal(r.kind, GW_PSCORE_PREFIX);
    /* Near idle: 0.04 against a mean of 0.02 is 2x but only 0.02 above:
     * not imbalanced (GW_PSCORE_IMBALANCE_MIN). */
    p.imbalance = 1.5;
    c[0].load = 0.04;
    c[1].load = 0.01;
    c[2].load = 0.01;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 0);
    assert_int_equal(r.kind, GW_PSCORE_PREFIX);
    /* Only one report: no mean to compare with, no imbalance. */
    c[0].load = 0.99;
    c[1].load = NONE;
    c[2].load = NONE;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 0);
    assert_int_equal(r.kind, GW_PSCORE_PREFIX);
}

/* The score weighs matched blocks against load: with load_weight 1, a
 * replica that matched half the prompt at load 0.1 beats one that matched
 * 60% at load 0.5; with load_weight 0.1 the deeper match wins. */
static void test_score_weights(void **state)
{
    struct gw_pscore_cand c[3] = {
        {.key = 1, .inflight = 9, .matched = 10, .load = NONE}, /* the longest: over the cap */
        {.key = 2, .inflight = 1, .matched = 5, .load = 0.1},
        {.key = 3, .inflight = 1, .matched = 6, .load = 0.5},
    };
    struct gw_pscore_params p = params(10, 4);
    struct gw_pscore_result r;

    (void)state;
    p.imbalance = 0;
    /* 2: 0.5 - max(0.1, 1/4) = 0.25; 3: 0.6 - 0.5 = 0.1. */
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 1);
    assert_int_equal(r.kind, GW_PSCORE_LOAD_OVERRIDE);
    p.load_weight = 0.1;
    /* 2: 0.5 - 0.025; 3: 0.6 - 0.05. */
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 2);
    /* In-flight counts alone (no reports) against the cap: 1/4 each. */
    c[1].load = NONE;
    c[2].load = NONE;
    p.load_weight = 1;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 2);
}

static void test_ties_and_all_over(void **state)
{
    struct gw_pscore_cand c[3] = {
        {.key = 30, .inflight = 1, .matched = 4, .load = NONE},
        {.key = 10, .inflight = 1, .matched = 4, .load = NONE},
        {.key = 20, .inflight = 0, .matched = 4, .load = NONE},
    };
    struct gw_pscore_params p = params(4, UINT64_MAX);
    struct gw_pscore_result r;

    (void)state;
    /* Equal matches: the lower load (higher score) wins. */
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 2);
    /* Equal scores too: the lower key, whatever the order. */
    c[2].inflight = 1;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 1);
    /* Every candidate over the cap: the longest match after all, as the
     * bounded pick never refuses a call. */
    c[0].matched = 5;
    p.nblocks = 5;
    p.cap = 1;
    assert_int_equal(gw_pscore_pick(c, 3, &p, &r), 0);
    assert_int_equal(r.kind, GW_PSCORE_PREFIX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ring_fallback),        cmocka_unit_test(test_longest_match),
        cmocka_unit_test(test_floor_keeps_affinity), cmocka_unit_test(test_imbalance),
        cmocka_unit_test(test_score_weights),        cmocka_unit_test(test_ties_and_all_over),
    };
    return cmocka_run_group_tests_name("prefixscore", tests, NULL, NULL);
}
