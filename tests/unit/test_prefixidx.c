/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/prefixidx.c, the estimation index: record
 * and longest match (depth per candidate, the walk stopping at the first
 * level no candidate holds), pools kept apart, several replicas per chain
 * and the replacement of the oldest, TTL checked on lookup (and the entry
 * freed), LRU eviction within a set, the memory cap (1,000,000 distinct
 * prefixes stay under it, by the index's own byte count), clocks far apart
 * (the marks' base moves without wrapping), many candidates, the replica
 * key, and both locking modes from two threads. Chains are hashed with
 * gw_prefix_hash over the pinned vector of tests/unit/test_prefix.c. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "base/mem.h"
#include "route/prefixidx.h"

#define MIB (1u << 20)

static const uint64_t A = 0xa1, B = 0xb2, C = 0xc3;

/* The chain hash of text blocks, as route/prefix.c defines it. */
static void chain(const char *text, size_t block, uint64_t *h, size_t n)
{
    uint64_t prev = 0;
    for (size_t i = 0; i < n; i++)
        h[i] = prev = XXH3_64bits_withSeed(text + i * block, block, prev);
}

static void test_chain_matches_pinned_vector(void **state)
{
    /* tests/unit/test_prefix.c: "The quick brown fox..." in blocks of 8. */
    static const uint64_t want[5] = {0x4fdd94d918ebefb3ull, 0xf0722b7523dcafb9ull,
                                     0x3596459f40ed056cull, 0x68a5026f2e9293a5ull,
                                     0xe17eae5b41d66580ull};
    uint64_t h[5];

    (void)state;
    chain("The quick brown fox jumps over the lazy dog", 8, h, 5);
    assert_memory_equal(h, want, sizeof(h));
}

#define TEXT96                                                                                     \
    "The quick brown fox jumps over the lazy dog. Pack my box with five dozen liquor jugs, ok? "   \
    "Yes!!"

static void test_record_and_match(void **state)
{
    struct gw_pidx *x = gw_pidx_create(MIB, GW_PIDX_PRIVATE);
    uint64_t h[12], other[12], cands[3] = {A, B, C};
    uint32_t depth[3];

    (void)state;
    assert_non_null(x);
    assert_int_equal(GW_PIDX_STRIDE, 4);
    chain(TEXT96, 8, h, 12);
    chain(TEXT96 + 1, 8, other, 11);
    /* Nothing recorded: no match. */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 12, 1000, 60000, cands, 3, depth), 0);
    assert_int_equal(depth[0] + depth[1] + depth[2], 0);
    /* A got the first 8 blocks (levels 3 and 7 kept), B all 12 (3, 7, 11). */
    gw_pidx_record(x, 1, h, 8, A, 1000);
    gw_pidx_record(x, 1, h, 12, B, 1001);
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 12, 1002, 60000, cands, 3, depth), 12);
    assert_int_equal(depth[0], 8);
    assert_int_equal(depth[1], 12);
    assert_int_equal(depth[2], 0);
    /* A shorter prompt with the same start: 6 blocks, whose last level (5)
     * nobody recorded: the match is rounded down to the stride, 4. */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 6, 1002, 60000, cands, 3, depth), 4);
    assert_int_equal(depth[0], 4);
    assert_int_equal(depth[1], 4);
    /* Candidates limit what counts: only A eligible -> 8 (the walk stops at
     * level 11 and finds nothing between). */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 12, 1002, 60000, cands, 1, depth), 8);
    /* C alone: nothing. */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 12, 1002, 60000, &cands[2], 1, depth), 0);
    /* C gets a 6-block prompt (levels 3 and 5): the walk stops at 7 and
     * finds C's last level on the way back: exact depth 6. */
    gw_pidx_record(x, 1, h, 6, C, 1002);
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 12, 1003, 60000, &cands[2], 1, depth), 6);
    assert_int_equal(depth[0], 6);
    /* Another prompt, another pool: no match. */
    assert_int_equal(gw_pidx_longest_match(x, 1, other, 11, 1003, 60000, cands, 3, depth), 0);
    assert_int_equal(gw_pidx_longest_match(x, 2, h, 12, 1003, 60000, cands, 3, depth), 0);
    /* Duplicated candidates both get the depth; n = 0 matches nothing. */
    {
        uint64_t dup[2] = {B, B};
        uint32_t d2[2];
        assert_int_equal(gw_pidx_longest_match(x, 1, h, 12, 1003, 60000, dup, 2, d2), 12);
        assert_int_equal(d2[0], 12);
        assert_int_equal(d2[1], 12);
        assert_int_equal(gw_pidx_longest_match(x, 1, h, 0, 1003, 60000, dup, 2, d2), 0);
    }
    struct gw_pidx_stats st;
    gw_pidx_stats(x, &st);
    assert_int_equal(st.entries, 4);  /* levels 3, 5, 7, 11 */
    assert_int_equal(st.recorded, 7); /* A 2, B 3, C 2 */
    assert_int_equal(st.inserted, 4);
    assert_int_equal(st.evicted, 0);
    /* Dropping the pool forgets it. */
    gw_pidx_drop_pool(x, 1);
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 12, 1003, 60000, cands, 3, depth), 0);
    gw_pidx_stats(x, &st);
    assert_int_equal(st.entries, 0);
    gw_pidx_free(x);
}

/* An entry keeps GW_PIDX_WAYS replicas; a fifth replaces the oldest. */
static void test_replicas_per_entry(void **state)
{
    struct gw_pidx *x = gw_pidx_create(MIB, GW_PIDX_PRIVATE);
    uint64_t h[1] = {42}, cands[5] = {1, 2, 3, 4, 5};
    uint32_t depth[5];

    (void)state;
    for (uint64_t r = 1; r <= 4; r++)
        gw_pidx_record(x, 7, h, 1, r, 100 + r);
    gw_pidx_record(x, 7, h, 1, 1, 200); /* 1 again: refreshed, not added */
    gw_pidx_record(x, 7, h, 1, 5, 201); /* replaces 2, now the oldest */
    assert_int_equal(gw_pidx_longest_match(x, 7, h, 1, 202, 60000, cands, 5, depth), 1);
    assert_int_equal(depth[0], 1);
    assert_int_equal(depth[1], 0);
    assert_int_equal(depth[2], 1);
    assert_int_equal(depth[3], 1);
    assert_int_equal(depth[4], 1);
    gw_pidx_free(x);
}

static void test_ttl(void **state)
{
    struct gw_pidx *x = gw_pidx_create(MIB, GW_PIDX_PRIVATE);
    uint64_t h[8], cands[2] = {A, B};
    uint32_t depth[2];
    struct gw_pidx_stats st;

    (void)state;
    chain(TEXT96, 8, h, 8);
    gw_pidx_record(x, 1, h, 8, A, 10000); /* levels 3 and 7 */
    gw_pidx_record(x, 1, h, 4, B, 15000); /* level 3 */
    /* Within the TTL (5000 ms): A 8, B 4. Just under A's TTL. */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 8, 14999, 5000, cands, 2, depth), 8);
    /* At 15000 A is 5000 ms old: expired; B fresh for 4 blocks, and the
     * walk stops at level 7, where only A's expired mark is. */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 8, 15000, 5000, cands, 2, depth), 4);
    assert_int_equal(depth[0], 0);
    assert_int_equal(depth[1], 4);
    gw_pidx_stats(x, &st);
    assert_int_equal(st.expired, 1); /* level 7: only A's mark, all expired: freed */
    assert_int_equal(st.entries, 1);
    /* Another pool's TTL (longer) sees A again: the TTL is the caller's. */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 4, 15000, 60000, cands, 2, depth), 4);
    assert_int_equal(depth[0], 4);
    /* Everything expired: nothing, and the entry is freed on the way. */
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 8, 100000, 5000, cands, 2, depth), 0);
    gw_pidx_stats(x, &st);
    assert_int_equal(st.expired, 2);
    assert_int_equal(st.entries, 0);
    gw_pidx_free(x);
}

/* Clock values far apart: the marks' base moves forward without wrapping,
 * so a mark 49.7 days (2^32 ms) old is not taken for a fresh one. */
static void test_clock_far_apart(void **state)
{
    struct gw_pidx *x = gw_pidx_create(MIB, GW_PIDX_PRIVATE);
    uint64_t h[2] = {11, 12}, cands[1] = {A};
    uint32_t depth[1];
    uint64_t t0 = 5000;

    (void)state;
    gw_pidx_record(x, 1, h, 2, A, t0);
    assert_int_equal(
        gw_pidx_longest_match(x, 1, h, 2, t0 + (1ull << 32), GW_PIDX_TTL_MAX_MS, cands, 1, depth),
        0);
    /* Recorded again after 100 days; fresh next day, expired the day after. */
    uint64_t t1 = t0 + 100ull * 86400000;
    gw_pidx_record(x, 1, h, 2, A, t1);
    assert_int_equal(
        gw_pidx_longest_match(x, 1, h, 2, t1 + 86399999, GW_PIDX_TTL_MAX_MS, cands, 1, depth), 2);
    assert_int_equal(
        gw_pidx_longest_match(x, 1, h, 2, t1 + 86400000, GW_PIDX_TTL_MAX_MS, cands, 1, depth), 0);
    /* A starting clock above 2^32 works too. */
    gw_pidx_record(x, 3, h, 2, A, 1ull << 40);
    assert_int_equal(gw_pidx_longest_match(x, 3, h, 2, (1ull << 40) + 10, 1000, cands, 1, depth),
                     2);
    /* A mark just recorded across a rebase (12.4 days later) stays fresh. */
    gw_pidx_record(x, 3, h, 1, A, (1ull << 40) + (1ull << 30) - 5);
    assert_int_equal(
        gw_pidx_longest_match(x, 3, h, 1, (1ull << 40) + (1ull << 30) + 5, 1000, cands, 1, depth),
        1);
    gw_pidx_free(x);
}

/* A full set evicts its least recently recorded entry. */
static void test_lru_eviction(void **state)
{
    /* A small index: 64 KiB -> 113 sets of 8 entries (904 entries). */
    struct gw_pidx *x = gw_pidx_create(64u << 10, GW_PIDX_PRIVATE);
    struct gw_pidx_stats st;
    uint64_t cands[1] = {A};
    uint32_t depth[1];
    uint64_t h;

    (void)state;
    gw_pidx_stats(x, &st);
    assert_true(st.bytes <= 64u << 10);
    assert_true(st.capacity >= 256);
    /* Fill far past capacity; touch key 0 again just before each insert, so
     * it is always the newest in its set: it must survive. */
    uint64_t keep = 0x1234567;
    gw_pidx_record(x, 1, &keep, 1, A, 1);
    for (uint64_t i = 1; i <= 20000; i++) {
        h = i * 0x9e3779b97f4a7c15ull;
        gw_pidx_record(x, 1, &keep, 1, A, 2 * i);
        gw_pidx_record(x, 1, &h, 1, A, 2 * i + 1);
    }
    gw_pidx_stats(x, &st);
    assert_int_equal(st.entries, st.capacity);
    assert_int_equal(st.inserted, 20001);
    assert_int_equal(st.evicted, 20001 - st.capacity);
    assert_int_equal(gw_pidx_longest_match(x, 1, &keep, 1, 40002, 60000, cands, 1, depth), 1);
    /* The oldest insertions are gone, the newest are there. */
    h = 1 * 0x9e3779b97f4a7c15ull;
    assert_int_equal(gw_pidx_longest_match(x, 1, &h, 1, 40002, 60000, cands, 1, depth), 0);
    h = 20000 * 0x9e3779b97f4a7c15ull;
    assert_int_equal(gw_pidx_longest_match(x, 1, &h, 1, 40002, 60000, cands, 1, depth), 1);
    gw_pidx_free(x);
}

/* The cap: 1,000,000 distinct prefixes (16 blocks each, 4 million levels
 * kept; bench/prefix_bench.c does 64 blocks) into a 64 MiB index stay under
 * it; the index's own byte count never moves. */
static void test_cap_million_prefixes(void **state)
{
    size_t cap = 64u * MIB;
    struct gw_pidx *x = gw_pidx_create(cap, GW_PIDX_SHARED);
    struct gw_pidx_stats st;
    uint64_t h[16];
    size_t bytes0 = gw_pidx_bytes(x);

    (void)state;
    assert_true(bytes0 <= cap);
    assert_true(bytes0 > cap - 1024); /* the cap is used, not wasted */
    for (uint64_t p = 0; p < 1000000; p++) {
        uint64_t prev = p + 1;
        for (size_t i = 0; i < 16; i++)
            h[i] = prev = XXH3_64bits_withSeed(&i, sizeof(i), prev);
        gw_pidx_record(x, 1, h, 16, p & 3, p);
    }
    gw_pidx_stats(x, &st);
    assert_int_equal(st.bytes, bytes0);
    assert_true(st.bytes <= cap);
    assert_int_equal(st.recorded, 4000000); /* levels 3, 7, 11, 15 of each */
    assert_true(st.entries <= st.capacity);
    assert_true(st.entries > st.capacity * 9 / 10);
    assert_int_equal(st.inserted - st.evicted, st.entries);
    printf("1,000,000 prefixes x 16 blocks: %zu bytes (cap %zu), %zu of %zu entries used, "
           "%llu evicted\n",
           st.bytes, cap, st.entries, st.capacity, (unsigned long long)st.evicted);
    /* The newest prefix is all there. */
    {
        uint64_t cands[4] = {0, 1, 2, 3};
        uint32_t depth[4];
        assert_int_equal(gw_pidx_longest_match(x, 1, h, 16, 1000000, 600000, cands, 4, depth), 16);
        assert_int_equal(depth[999999 & 3], 16);
    }
    gw_pidx_free(x);
}

/* Many candidates (the probe table path) give the same depths as few. */
static void test_many_candidates(void **state)
{
    struct gw_pidx *x = gw_pidx_create(MIB, GW_PIDX_PRIVATE);
    uint64_t h[8], cands[GW_PIDX_MAX_CANDS];
    static uint32_t depth[GW_PIDX_MAX_CANDS + 1];

    (void)state;
    for (size_t i = 0; i < 8; i++)
        h[i] = 1000 + i;
    for (size_t j = 0; j < GW_PIDX_MAX_CANDS; j++)
        cands[j] = gw_pidx_replica_key("10.0.0.1:7000", 13) + j * 7919;
    gw_pidx_record(x, 1, h, 8, cands[4000], 1);
    gw_pidx_record(x, 1, h, 5, cands[17], 2);
    gw_pidx_record(x, 1, h, 3, cands[0], 3);
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 8, 4, 1000, cands, GW_PIDX_MAX_CANDS, depth),
                     8);
    for (size_t j = 0; j < GW_PIDX_MAX_CANDS; j++) {
        /* 17's 5 blocks and 0's 3 end between the levels the walk visits
         * for the deepest (8): rounded down to the stride. */
        uint32_t want = j == 4000 ? 8 : j == 17 ? 4 : 0;
        if (depth[j] != want)
            fail_msg("candidate %zu: depth %u, want %u", j, depth[j], want);
    }
    /* 9 candidates (just past the linear scan), 17 the deepest of them:
     * found exactly on the way back from level 7. */
    uint64_t nine[9] = {5, 6, 7, 8, 9, 10, 11, 12, cands[17]};
    assert_int_equal(gw_pidx_longest_match(x, 1, h, 8, 4, 1000, nine, 9, depth), 5);
    assert_int_equal(depth[8], 5);
    gw_pidx_free(x);
}

static void test_create_and_keys(void **state)
{
    (void)state;
    assert_null(gw_pidx_create(GW_PIDX_MIN_BYTES - 1, GW_PIDX_SHARED));
    /* The smallest: --prefix-index-bytes' least (1 MiB) over 256 workers. */
    {
        struct gw_pidx *tiny = gw_pidx_create((1u << 20) / 256, GW_PIDX_PRIVATE);
        uint64_t h[8] = {1, 2, 3, 4, 5, 6, 7, 8}, k = 9;
        uint32_t d;
        struct gw_pidx_stats st;
        assert_non_null(tiny);
        gw_pidx_stats(tiny, &st);
        assert_true(st.bytes <= 4096);
        assert_true(st.capacity >= 48);
        gw_pidx_record(tiny, 1, h, 8, k, 1);
        assert_int_equal(gw_pidx_longest_match(tiny, 1, h, 8, 2, 1000, &k, 1, &d), 8);
        gw_pidx_free(tiny);
    }
    struct gw_pidx *x = gw_pidx_create(3 * MIB + 12345, GW_PIDX_SHARED);
    assert_true(gw_pidx_bytes(x) <= 3 * MIB + 12345);
    gw_pidx_free(x);
    gw_pidx_free(NULL);
    /* Either allocation failing: NULL, nothing left allocated. */
    gw_mem_fail_after(-1);
    long base = gw_mem_live();
    for (long n = 0; n < 2; n++) {
        gw_mem_fail_after(n);
        assert_null(gw_pidx_create(MIB, GW_PIDX_SHARED));
        gw_mem_fail_after(-1);
        assert_int_equal(gw_mem_live(), base);
    }
    gw_mem_fail_after(2);
    x = gw_pidx_create(MIB, GW_PIDX_SHARED);
    gw_mem_fail_after(-1);
    assert_non_null(x);
    gw_pidx_free(x);
    assert_int_equal(gw_mem_live(), base);
    /* The replica key is XXH3-64 of the address. */
    assert_true(gw_pidx_replica_key("127.0.0.1:7201", 14) == XXH3_64bits("127.0.0.1:7201", 14));
    assert_true(gw_pidx_replica_key("127.0.0.1:7201", 14) !=
                gw_pidx_replica_key("127.0.0.1:7202", 14));
}

struct worker {
    struct gw_pidx *x;
    uint64_t seed;
    unsigned matched;
};

static void *work(void *arg)
{
    struct worker *w = arg;
    uint64_t h[16], cands[4] = {1, 2, 3, 4};
    uint32_t depth[4];

    for (uint64_t i = 0; i < 20000; i++) {
        uint64_t prev = w->seed + (i % 50);
        for (size_t k = 0; k < 16; k++)
            h[k] = prev = XXH3_64bits_withSeed(&k, sizeof(k), prev);
        if (gw_pidx_longest_match(w->x, 1, h, 16, i, 600000, cands, 4, depth) == 16)
            w->matched++;
        gw_pidx_record(w->x, 1, h, 16, 1 + (i % 4), i);
    }
    return NULL;
}

/* Two threads on one shared index; then one private index each. */
static void test_threads(void **state)
{
    (void)state;
    for (int mode = 0; mode < 2; mode++) {
        struct gw_pidx *shared = gw_pidx_create(4 * MIB, GW_PIDX_SHARED);
        struct worker w[2] = {{shared, 1, 0}, {shared, 1000, 0}};
        pthread_t t[2];
        if (mode == 1) {
            w[0].x = gw_pidx_create(2 * MIB, GW_PIDX_PRIVATE);
            w[1].x = gw_pidx_create(2 * MIB, GW_PIDX_PRIVATE);
        }
        for (int i = 0; i < 2; i++)
            assert_int_equal(pthread_create(&t[i], NULL, work, &w[i]), 0);
        for (int i = 0; i < 2; i++)
            pthread_join(t[i], NULL);
        /* 50 distinct prompts per thread: all but the first round match. */
        assert_int_equal(w[0].matched, 20000 - 50);
        assert_int_equal(w[1].matched, 20000 - 50);
        if (mode == 1) {
            gw_pidx_free(w[0].x);
            gw_pidx_free(w[1].x);
        }
        gw_pidx_free(shared);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_matches_pinned_vector),
        cmocka_unit_test(test_record_and_match),
        cmocka_unit_test(test_replicas_per_entry),
        cmocka_unit_test(test_ttl),
        cmocka_unit_test(test_clock_far_apart),
        cmocka_unit_test(test_lru_eviction),
        cmocka_unit_test(test_cap_million_prefixes),
        cmocka_unit_test(test_many_candidates),
        cmocka_unit_test(test_create_and_keys),
        cmocka_unit_test(test_threads),
    };
    return cmocka_run_group_tests_name("prefixidx", tests, NULL, NULL);
}
