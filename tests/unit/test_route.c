/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/route.c: snapshots built from specs (flags
 * and Redis alike), replica sharing across pools, tunables overlay, drain,
 * picks that agree with the ring, and reference counting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/mem.h"
#include "route/route.h"

static const char *const A[] = {"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"};
static const char *const B[] = {"127.0.0.1:9003", "127.0.0.1:9004"};

static struct gw_routes *build(const char *const *drained, size_t ndrained)
{
    struct gw_tunables global, own;
    gw_tunables_defaults(&global);
    gw_tunables_defaults(&own);
    own.set = 0;
    char err[128];
    assert_int_equal(gw_tunables_set(&own, "balance_factor", "0", err, sizeof(err)), 0);
    struct gw_pool_spec specs[] = {
        {.name = "a", .addrs = A, .n = 3},
        {.name = "b", .addrs = B, .n = 2, .tun = &own, .from_redis = 1},
        {.name = "empty", .n = 0},
    };
    struct gw_routes *rt =
        gw_routes_build(specs, 3, &global, drained, ndrained, 7, err, sizeof(err));
    assert_non_null(rt);
    return rt;
}

static int all(uint32_t idx, void *ctx)
{
    (void)idx;
    (void)ctx;
    return 1;
}

static int not_drained(uint32_t idx, void *ctx)
{
    const struct gw_routes *rt = ctx;
    return !rt->replicas[idx].drain;
}

static void test_build_shares_replicas(void **state)
{
    (void)state;
    long before = gw_mem_live();
    struct gw_routes *rt = build(NULL, 0);
    assert_int_equal(rt->version, 7);
    assert_int_equal(rt->npools, 3);
    assert_int_equal(rt->nreplicas, 4); /* 9003 is in both pools, once */
    const struct gw_pool *a = gw_routes_find_pool(rt, "a", 1);
    const struct gw_pool *b = gw_routes_find_pool(rt, "b", 1);
    assert_non_null(a);
    assert_non_null(b);
    assert_null(gw_routes_find_pool(rt, "c", 1));
    assert_null(gw_routes_find_pool(rt, "a", 0));
    assert_true(a->tun.balance_factor == 1.25);
    assert_true(b->tun.balance_factor == 0);
    assert_int_equal(b->from_redis, 1);
    int id3 = gw_routes_find_replica(rt, "127.0.0.1:9003");
    assert_true(id3 >= 0);
    int in_a = 0, in_b = 0;
    for (size_t i = 0; i < a->ring.nreplicas; i++)
        in_a += a->replica_ids[i] == (uint32_t)id3;
    for (size_t i = 0; i < b->ring.nreplicas; i++)
        in_b += b->replica_ids[i] == (uint32_t)id3;
    assert_int_equal(in_a + in_b, 2);
    gw_routes_unref(rt);
    assert_int_equal(gw_mem_live(), before);
}

static void test_pick_agrees_with_ring_and_skips_drained(void **state)
{
    (void)state;
    const char *const drained[] = {"127.0.0.1:9002"};
    struct gw_routes *rt = build(drained, 1);
    const struct gw_pool *a = gw_routes_find_pool(rt, "a", 1);
    int d = gw_routes_find_replica(rt, "127.0.0.1:9002");
    assert_int_equal(rt->replicas[d].drain, 1);
    int moved = 0;
    for (uint32_t k = 0; k < 2000; k++) {
        char key[16];
        snprintf(key, sizeof(key), "k%u", k);
        uint32_t point = gw_hash32(key, strlen(key));
        int plain = gw_routes_pick(a, point, all, NULL, NULL, UINT64_MAX);
        int ring = gw_ring_pick(&a->ring, point, NULL, NULL, NULL, 0);
        assert_int_equal(plain, (int)a->replica_ids[ring]);
        int live = gw_routes_pick(a, point, not_drained, rt, NULL, UINT64_MAX);
        assert_true(live != d);
        if (plain != d)
            assert_int_equal(live, plain); /* only the drained replica's keys move */
        else
            moved++;
    }
    assert_true(moved > 300 && moved < 1000);
    const struct gw_pool *e = gw_routes_find_pool(rt, "empty", 5);
    assert_int_equal(gw_routes_pick(e, 1, all, NULL, NULL, UINT64_MAX), GW_ENOREPLICA);
    gw_routes_unref(rt);
}

static void test_bounded_load_moves_busy_replica(void **state)
{
    (void)state;
    struct gw_routes *rt = build(NULL, 0);
    const struct gw_pool *a = gw_routes_find_pool(rt, "a", 1);
    uint32_t point = gw_hash32("hot", 3);
    int first = gw_routes_pick(a, point, all, NULL, NULL, UINT64_MAX);
    uint32_t load[3] = {0, 0, 0};
    for (size_t i = 0; i < 3; i++)
        if (a->replica_ids[i] == (uint32_t)first)
            load[i] = 10; /* far above ceil(1.25 * 11 / 3) = 5 */
    uint64_t cap = gw_ring_load_cap_floor(10, 3, a->tun.balance_factor);
    assert_int_equal(cap, 5);
    int picked = gw_routes_pick(a, point, all, NULL, load, cap);
    assert_true(picked >= 0 && picked != first);
    gw_routes_unref(rt);
}

static void test_refcount(void **state)
{
    (void)state;
    long before = gw_mem_live();
    struct gw_routes *rt = build(NULL, 0);
    gw_routes_ref(rt);
    gw_routes_unref(rt);
    assert_int_equal(rt->npools, 3); /* still alive */
    gw_routes_unref(rt);
    gw_routes_unref(NULL);
    assert_int_equal(gw_mem_live(), before);
}

static void test_unresolvable_replica_refused(void **state)
{
    (void)state;
    const char *const bad[] = {"no-such-host.invalid:80"};
    struct gw_pool_spec spec = {.name = "x", .addrs = bad, .n = 1};
    struct gw_tunables t;
    gw_tunables_defaults(&t);
    char err[256] = "";
    long before = gw_mem_live();
    assert_null(gw_routes_build(&spec, 1, &t, NULL, 0, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "no-such-host.invalid"));
    assert_int_equal(gw_mem_live(), before);
}

/* Arms the allocation hook so gw_mem_live() counts (nothing fails). */
static int count_allocations(void **state)
{
    (void)state;
    gw_mem_fail_after(-1);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_build_shares_replicas),
        cmocka_unit_test(test_pick_agrees_with_ring_and_skips_drained),
        cmocka_unit_test(test_bounded_load_moves_busy_replica),
        cmocka_unit_test(test_refcount),
        cmocka_unit_test(test_unresolvable_replica_refused),
    };
    return cmocka_run_group_tests_name("route", tests, count_allocations, NULL);
}
