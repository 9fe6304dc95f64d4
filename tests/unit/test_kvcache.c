/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/replica/kvcache.c, the LLM simulation's KV cache:
 * leading-block hits, LRU eviction of a prompt's tail blocks first, the net
 * stored/evicted lists, a prompt larger than the cache, and the table
 * under many inserts and deletes (backward-shift deletion). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "kvcache.h"

static uint64_t st[64], ev[64];
static size_t nst, nev;

static void chain(uint64_t *h, size_t n, uint64_t base)
{
    for (size_t i = 0; i < n; i++)
        h[i] = base * 1000 + i;
}

static void test_hits_and_lru(void **state)
{
    struct rp_kvcache c;
    uint64_t a[6], b[6];
    (void)state;
    assert_int_equal(rp_kvcache_init(&c, 8), 0);
    chain(a, 6, 1);
    chain(b, 6, 2);
    assert_int_equal(rp_kvcache_hit(&c, a, 6), 0);
    rp_kvcache_store(&c, a, 6, st, &nst, ev, &nev);
    assert_int_equal(nst, 6);
    assert_int_equal(nev, 0);
    assert_int_equal(rp_kvcache_hit(&c, a, 6), 6);
    rp_kvcache_store(&c, a, 6, st, &nst, ev, &nev);
    assert_int_equal(nst + nev, 0); /* nothing changed */
    /* b evicts a's four least recently used blocks: its tail. */
    rp_kvcache_store(&c, b, 6, st, &nst, ev, &nev);
    assert_int_equal(nst, 6);
    assert_int_equal(nev, 4);
    for (size_t i = 0; i < nev; i++)
        assert_true(ev[i] >= a[2] && ev[i] <= a[5]);
    assert_int_equal(rp_kvcache_hit(&c, a, 6), 2);
    assert_int_equal(c.used, 8);
    uint64_t list[8];
    assert_int_equal(rp_kvcache_list(&c, list), 8);
    assert_int_equal(list[0], b[0]); /* block 0 most recent */
    rp_kvcache_free(&c);
}

static void test_prompt_larger_than_cache(void **state)
{
    struct rp_kvcache c;
    uint64_t a[20];
    (void)state;
    assert_int_equal(rp_kvcache_init(&c, 5), 0);
    chain(a, 20, 3);
    rp_kvcache_store(&c, a, 20, st, &nst, ev, &nev);
    assert_int_equal(nst, 5);
    assert_int_equal(nev, 0);
    assert_int_equal(rp_kvcache_hit(&c, a, 20), 5);
    rp_kvcache_free(&c);
    assert_int_equal(rp_kvcache_init(&c, 0), -1);
}

static void test_many_inserts(void **state)
{
    struct rp_kvcache c;
    uint64_t h[16];
    (void)state;
    assert_int_equal(rp_kvcache_init(&c, 64), 0);
    for (uint64_t round = 0; round < 2000; round++) {
        /* Hashes with colliding low bits, to exercise probing. */
        for (size_t i = 0; i < 16; i++)
            h[i] = ((round * 16 + i) << 20) | 7;
        rp_kvcache_store(&c, h, 16, st, &nst, ev, &nev);
        assert_int_equal(nst, 16);
        assert_int_equal(nev, round < 4 ? 0 : 16);
        assert_int_equal(rp_kvcache_hit(&c, h, 16), 16);
        assert_true(c.used <= 64);
    }
    /* The last four prompts are held, the ones before are gone. */
    for (size_t i = 0; i < 16; i++)
        h[i] = ((1995 * 16 + i) << 20) | 7;
    assert_int_equal(rp_kvcache_hit(&c, h, 16), 0);
    for (size_t i = 0; i < 16; i++)
        h[i] = ((1996 * 16 + i) << 20) | 7;
    assert_int_equal(rp_kvcache_hit(&c, h, 16), 16);
    rp_kvcache_free(&c);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_hits_and_lru),
        cmocka_unit_test(test_prompt_larger_than_cache),
        cmocka_unit_test(test_many_inserts),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
