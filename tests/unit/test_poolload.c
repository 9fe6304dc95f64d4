/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/engine/poolload.c, a worker's per-pool load
 * view, on a snapshot built by route.c (no worker): the membership of a
 * replica listed by two pools, counts that follow every change and never go
 * below 0, the census (taken on the first pick, reused for less than 1 ms
 * of loop time, in-flight changes of counted replicas added to its total,
 * others not), no bound with balance_factor 0 or a pool of another
 * snapshot, and the floored cap keeping a keyed call on its replica through
 * gw_routes_pick until a third call is in flight; a census reads every
 * count again from the source (every worker's calls). */
#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/mem.h"
#include "engine/poolload.h"
#include "route/route.h"

static const char *const A[] = {"127.0.0.1:9001", "127.0.0.1:9002", "127.0.0.1:9003"};
static const char *const B[] = {"127.0.0.1:9003", "127.0.0.1:9004"};

/* Pools a (3 replicas, balance_factor 1.25), b (9003 shared with a, 9004)
 * and off (balance_factor 0). */
static struct gw_routes *build(void)
{
    struct gw_tunables global, off;
    gw_tunables_defaults(&global);
    gw_tunables_defaults(&off);
    off.set = 0;
    char err[128];
    assert_int_equal(gw_tunables_set(&off, "balance_factor", "0", err, sizeof(err)), 0);
    struct gw_pool_spec specs[] = {
        {.name = "a", .addrs = A, .n = 3},
        {.name = "b", .addrs = B, .n = 2},
        {.name = "off", .addrs = A, .n = 3, .tun = &off},
    };
    struct gw_routes *rt = gw_routes_build(specs, 3, &global, NULL, 0, 1, err, sizeof(err));
    assert_non_null(rt);
    return rt;
}

/* In-flight counts and eligibility per replica of the snapshot. */
struct fake {
    uint32_t inflight[8];
    int eligible[8];
    int asked;
};

static uint32_t fake_inflight(uint32_t idx, void *ctx)
{
    return ((struct fake *)ctx)->inflight[idx];
}

static int fake_eligible(uint32_t idx, void *ctx)
{
    struct fake *f = ctx;
    f->asked++;
    return f->eligible[idx];
}

static int all(uint32_t idx, void *ctx)
{
    (void)idx;
    (void)ctx;
    return 1;
}

/* The ring index of replica <addr> in <pool>. */
static size_t ring_idx(const struct gw_pool *pool, const struct gw_routes *rt, const char *addr)
{
    int id = gw_routes_find_replica(rt, addr);
    assert_true(id >= 0);
    for (size_t j = 0; j < pool->ring.nreplicas; j++)
        if (pool->replica_ids[j] == (uint32_t)id)
            return j;
    fail();
    return 0;
}

static void test_counts_follow_every_pool(void **state)
{
    (void)state;
    long before = gw_mem_live();
    struct gw_routes *rt = build();
    struct gw_poolload pl;
    assert_int_equal(gw_poolload_build(&pl, rt), 0);
    struct fake f = {{0}, {0}, 0};
    uint32_t shared = (uint32_t)gw_routes_find_replica(rt, "127.0.0.1:9003");
    f.inflight[shared] = 4;
    gw_poolload_fill(&pl, fake_inflight, &f);
    const struct gw_pool *a = gw_routes_find_pool(rt, "a", 1);
    const struct gw_pool *b = gw_routes_find_pool(rt, "b", 1);
    size_t ja = ring_idx(a, rt, "127.0.0.1:9003"), jb = ring_idx(b, rt, "127.0.0.1:9003");
    assert_int_equal(pl.pools[0].inflight[ja], 4);
    assert_int_equal(pl.pools[1].inflight[jb], 4);
    assert_int_equal(pl.pools[2].inflight[ja], 4); /* off lists A in the same order */
    /* 9003 is in all three pools, 9004 in b only. */
    assert_int_equal(pl.first[shared + 1] - pl.first[shared], 3);
    gw_poolload_add(&pl, shared, 1);
    assert_int_equal(pl.pools[0].inflight[ja], 5);
    assert_int_equal(pl.pools[1].inflight[jb], 5);
    gw_poolload_add(&pl, shared, -7); /* more than it holds: 0, not a wrap */
    assert_int_equal(pl.pools[0].inflight[ja], 0);
    assert_int_equal(pl.pools[1].inflight[jb], 0);
    gw_poolload_add(&pl, 99, 1); /* out of range: ignored */
    gw_poolload_add(&pl, UINT32_MAX, 1);
    uint32_t only_b = (uint32_t)gw_routes_find_replica(rt, "127.0.0.1:9004");
    gw_poolload_add(&pl, only_b, 2);
    assert_int_equal(pl.pools[1].inflight[ring_idx(b, rt, "127.0.0.1:9004")], 2);
    for (size_t j = 0; j < a->ring.nreplicas; j++)
        assert_int_equal(pl.pools[0].inflight[j], 0);
    gw_poolload_free(&pl);
    gw_poolload_free(&pl); /* a zeroed view: no-op */
    gw_routes_unref(rt);
    assert_int_equal(gw_mem_live(), before);
}

static void test_census_lasts_under_a_millisecond(void **state)
{
    (void)state;
    struct gw_routes *rt = build();
    const struct gw_pool *a = gw_routes_find_pool(rt, "a", 1);
    struct gw_poolload pl;
    assert_int_equal(gw_poolload_build(&pl, rt), 0);
    struct fake f = {{0}, {0}, 0};
    uint32_t r1 = (uint32_t)gw_routes_find_replica(rt, "127.0.0.1:9001");
    uint32_t r2 = (uint32_t)gw_routes_find_replica(rt, "127.0.0.1:9002");
    uint32_t r3 = (uint32_t)gw_routes_find_replica(rt, "127.0.0.1:9003");
    f.eligible[r1] = f.eligible[r2] = 1; /* 9003 is not */
    f.inflight[r1] = 3;
    f.inflight[r3] = 5;
    gw_poolload_fill(&pl, fake_inflight, &f);
    uint64_t cap, t0 = 1000 * GW_POOLLOAD_CENSUS_NS;
    const uint32_t *load = gw_poolload_view(&pl, a, t0, fake_eligible, NULL, &f, &cap);
    assert_ptr_equal(load, pl.pools[0].inflight);
    assert_int_equal(f.asked, 3); /* one question per replica */
    assert_int_equal(pl.pools[0].tally.n_eligible, 2);
    assert_int_equal(pl.pools[0].tally.inflight, 3);
    assert_int_equal(cap, gw_ring_load_cap_floor(3, 2, 1.25)); /* ceil(2.5) = 3 */
    /* Counted replicas' changes reach the total; 9003's do not. */
    gw_poolload_add(&pl, r2, 2);
    gw_poolload_add(&pl, r1, -1);
    gw_poolload_add(&pl, r3, 4);
    f.eligible[r3] = 1; /* not seen before the next census */
    load = gw_poolload_view(&pl, a, t0 + GW_POOLLOAD_CENSUS_NS - 1, fake_eligible, NULL, &f, &cap);
    assert_int_equal(f.asked, 3);
    assert_int_equal(pl.pools[0].tally.n_eligible, 2);
    assert_int_equal(pl.pools[0].tally.inflight, 4);
    assert_int_equal(cap, gw_ring_load_cap_floor(4, 2, 1.25));
    assert_int_equal(load[ring_idx(a, rt, "127.0.0.1:9003")], 9);
    /* 1 ms later: a new census sees 9003. */
    gw_poolload_view(&pl, a, t0 + GW_POOLLOAD_CENSUS_NS, fake_eligible, NULL, &f, &cap);
    assert_int_equal(f.asked, 6);
    assert_int_equal(pl.pools[0].tally.n_eligible, 3);
    assert_int_equal(pl.pools[0].tally.inflight, 2 + 2 + 9);
    assert_int_equal(cap, gw_ring_load_cap_floor(13, 3, 1.25));
    /* A refill (a new snapshot) drops the census: the next view takes one. */
    gw_poolload_fill(&pl, fake_inflight, &f);
    gw_poolload_view(&pl, a, t0 + GW_POOLLOAD_CENSUS_NS, fake_eligible, NULL, &f, &cap);
    assert_int_equal(f.asked, 9);
    assert_int_equal(pl.pools[0].tally.inflight, 3 + 5);
    /* No replica eligible: no bound (the walk decides). */
    memset(f.eligible, 0, sizeof(f.eligible));
    gw_poolload_view(&pl, a, t0 + 3 * GW_POOLLOAD_CENSUS_NS, fake_eligible, NULL, &f, &cap);
    assert_int_equal(pl.pools[0].tally.n_eligible, 0);
    assert_int_equal(cap, UINT64_MAX);
    gw_poolload_free(&pl);
    gw_routes_unref(rt);
}

static void test_no_bound_without_factor_or_foreign_pool(void **state)
{
    (void)state;
    struct gw_routes *rt = build(), *other = build();
    struct gw_poolload pl;
    assert_int_equal(gw_poolload_build(&pl, rt), 0);
    struct fake f = {{0}, {1, 1, 1, 1}, 0};
    gw_poolload_fill(&pl, fake_inflight, &f);
    uint64_t cap = 0;
    assert_null(
        gw_poolload_view(&pl, gw_routes_find_pool(rt, "off", 3), 0, fake_eligible, NULL, &f, &cap));
    assert_int_equal(cap, UINT64_MAX);
    assert_int_equal(f.asked, 0); /* no census for a pool without a bound */
    cap = 0;
    assert_null(gw_poolload_view(&pl, gw_routes_find_pool(other, "a", 1), 0, fake_eligible, NULL,
                                 &f, &cap));
    assert_int_equal(cap, UINT64_MAX);
    gw_poolload_free(&pl);
    gw_routes_unref(other);
    gw_routes_unref(rt);
}

/* One replica of three with calls of one key piling up: the first two stay
 * on the keyed replica (floor 2; the plain cap ceil(1.25 x 2 / 3) = 1 would
 * move the second), the third moves. */
static void test_floor_keeps_a_light_key_sticky(void **state)
{
    (void)state;
    struct gw_routes *rt = build();
    const struct gw_pool *a = gw_routes_find_pool(rt, "a", 1);
    struct gw_poolload pl;
    assert_int_equal(gw_poolload_build(&pl, rt), 0);
    struct fake f = {{0}, {1, 1, 1, 1}, 0};
    gw_poolload_fill(&pl, fake_inflight, &f);
    uint32_t point = gw_key_hash32("session-7", 9);
    int keyed = gw_routes_pick(a, point, all, NULL, NULL, UINT64_MAX);
    assert_true(keyed >= 0);
    uint64_t now = 0, cap;
    for (int call = 1; call <= 3; call++) {
        const uint32_t *load = gw_poolload_view(&pl, a, now, fake_eligible, NULL, &f, &cap);
        int got = gw_routes_pick(a, point, all, NULL, load, cap);
        if (call <= 2)
            assert_int_equal(got, keyed);
        else
            assert_true(got >= 0 && got != keyed);
        if (call == 2)
            assert_int_equal(gw_ring_load_cap(1, 3, 1.25), 1); /* what the floor overrides */
        gw_poolload_add(&pl, (uint32_t)got, 1);
        now += GW_POOLLOAD_CENSUS_NS; /* a fresh census each call */
    }
    gw_poolload_free(&pl);
    gw_routes_unref(rt);
}

/* With a source, every census reads each replica's count again (the other
 * workers' calls, in the gateway); between censuses only this worker's
 * changes (gw_poolload_add) move the counts. */
static void test_census_rereads_the_source(void **state)
{
    (void)state;
    struct gw_routes *rt = build();
    const struct gw_pool *a = gw_routes_find_pool(rt, "a", 1);
    struct gw_poolload pl;
    assert_int_equal(gw_poolload_build(&pl, rt), 0);
    struct fake f = {{0}, {1, 1, 1, 1, 1, 1, 1, 1}, 0};
    uint32_t r1 = (uint32_t)gw_routes_find_replica(rt, "127.0.0.1:9001");
    size_t j1 = ring_idx(a, rt, "127.0.0.1:9001");
    gw_poolload_fill(&pl, fake_inflight, &f);
    uint64_t cap, t0 = 1000 * GW_POOLLOAD_CENSUS_NS;
    const uint32_t *load = gw_poolload_view(&pl, a, t0, fake_eligible, fake_inflight, &f, &cap);
    assert_int_equal(load[j1], 0);
    /* Another worker opens 4 calls to 9001, this one 1. */
    f.inflight[r1] = 5;
    gw_poolload_add(&pl, r1, 1);
    load = gw_poolload_view(&pl, a, t0 + 1, fake_eligible, fake_inflight, &f, &cap);
    assert_int_equal(load[j1], 1); /* the census is under 1 ms old */
    assert_int_equal(pl.pools[0].tally.inflight, 1);
    load = gw_poolload_view(&pl, a, t0 + GW_POOLLOAD_CENSUS_NS, fake_eligible, fake_inflight, &f,
                            &cap);
    assert_int_equal(load[j1], 5);
    assert_int_equal(pl.pools[0].tally.inflight, 5);
    assert_int_equal(cap, gw_ring_load_cap_floor(5, 3, 1.25));
    gw_poolload_free(&pl);
    gw_routes_unref(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_counts_follow_every_pool),
        cmocka_unit_test(test_census_lasts_under_a_millisecond),
        cmocka_unit_test(test_no_bound_without_factor_or_foreign_pool),
        cmocka_unit_test(test_floor_keeps_a_light_key_sticky),
        cmocka_unit_test(test_census_rereads_the_source),
    };
    return cmocka_run_group_tests_name("poolload", tests, NULL, NULL);
}
