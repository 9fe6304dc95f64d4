/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/health/health.c: the active state machine and its
 * thresholds, passive ejection (count, growing time, the cap on a pool's
 * ejected share, pools sharing a replica), ejection returns, the shared
 * connect backoff, the registry, the metrics it writes, and the availability
 * bookkeeping (failures, MTBF, MTTR, availability from up/down transitions
 * at given times), and the reported load (decaying average, aging out). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "health/health.h"
#include "route/route.h"
#include "route/tunables.h"

#define MS 1000000ull

static const char *const A[] = {"127.0.0.1:7301", "127.0.0.1:7302", "127.0.0.1:7303"};
static const char *const B[] = {"127.0.0.1:7303", "127.0.0.1:7304"};
static const char *const SOLO[] = {"127.0.0.1:7305"};

struct fixture {
    struct gw_health_registry *reg;
    struct gw_routes *rt;
    struct gw_health *rec[8]; /* by snapshot replica index */
};

static struct gw_health *rec_of(size_t i, void *ctx)
{
    struct fixture *f = ctx;
    return i < f->rt->nreplicas ? f->rec[i] : NULL;
}

/* Pool "a" = 3 replicas, pool "b" = the third of them plus another, pool
 * "solo" = one replica; a record per replica. */
static int setup(void **state)
{
    struct fixture *f = calloc(1, sizeof(*f));
    struct gw_tunables global;
    char err[128];

    gw_tunables_defaults(&global);
    struct gw_pool_spec specs[] = {
        {.name = "a", .addrs = A, .n = 3},
        {.name = "b", .addrs = B, .n = 2},
        {.name = "solo", .addrs = SOLO, .n = 1},
    };
    f->rt = gw_routes_build(specs, 3, &global, NULL, 0, 1, err, sizeof(err));
    assert_non_null(f->rt);
    f->reg = gw_health_registry_new();
    assert_non_null(f->reg);
    for (size_t i = 0; i < f->rt->nreplicas; i++) {
        f->rec[i] = gw_health_get(f->reg, f->rt->replicas[i].addr);
        assert_non_null(f->rec[i]);
    }
    *state = f;
    return 0;
}

static int teardown(void **state)
{
    struct fixture *f = *state;
    gw_routes_unref(f->rt);
    gw_health_registry_free(f->reg);
    free(f);
    return 0;
}

static int idx_of(const struct fixture *f, const char *addr)
{
    int i = gw_routes_find_replica(f->rt, addr);
    assert_true(i >= 0);
    return i;
}

static const struct gw_outlier_params P = {
    .failures = 5, .base_ms = 10000, .max_ms = 300000, .max_percent = 50};

/* <n> failures of replica <addr>; returns how many of them ejected it. */
static int fail_n(struct fixture *f, const char *addr, int n, uint64_t now,
                  const struct gw_outlier_params *p)
{
    int i = idx_of(f, addr), ejected = 0;
    for (int k = 0; k < n; k++)
        ejected += gw_health_passive(f->rec[i], 0, now, p, f->rt, i, rec_of, f);
    return ejected;
}

static void test_registry(void **state)
{
    struct fixture *f = *state;
    struct gw_health *h = gw_health_get(f->reg, A[0]);

    assert_ptr_equal(h, f->rec[idx_of(f, A[0])]);
    assert_ptr_equal(gw_health_find(f->reg, A[1]), f->rec[idx_of(f, A[1])]);
    assert_null(gw_health_find(f->reg, "127.0.0.1:1"));
    assert_ptr_not_equal(gw_health_get(f->reg, A[0]), gw_health_get(f->reg, A[1]));
    assert_string_equal(h->addr, A[0]);
    /* A new record starts eligible: unknown, not ejected, not down. */
    assert_int_equal(h->state, GW_HEALTH_UNKNOWN);
    assert_true(gw_health_usable(h, 123));
    assert_false(gw_health_conn_backing_off(h, 123));
}

static void test_active_thresholds(void **state)
{
    struct fixture *f = *state;
    struct gw_health *h = f->rec[0];

    /* Two SERVING answers in a row to become healthy. */
    assert_int_equal(gw_health_apply_check(h, GW_HC_SERVING, 2, 2), -1);
    assert_int_equal(h->state, GW_HEALTH_UNKNOWN);
    assert_int_equal(gw_health_apply_check(h, GW_HC_SERVING, 2, 2), GW_HEALTH_HEALTHY);
    assert_int_equal(gw_health_apply_check(h, GW_HC_SERVING, 2, 2), -1);
    /* One NOT_SERVING is not enough; it stays usable. */
    assert_int_equal(gw_health_apply_check(h, GW_HC_NOT_SERVING, 2, 2), -1);
    assert_true(gw_health_usable(h, 0));
    /* A SERVING in between resets the run. */
    assert_int_equal(gw_health_apply_check(h, GW_HC_SERVING, 2, 2), -1);
    assert_int_equal(gw_health_apply_check(h, GW_HC_NOT_SERVING, 2, 2), -1);
    assert_int_equal(gw_health_apply_check(h, GW_HC_NOT_SERVING, 2, 2), GW_HEALTH_NOT_SERVING);
    assert_false(gw_health_usable(h, 0));
    /* Timeouts while NOT_SERVING turn it unhealthy (still out). */
    assert_int_equal(gw_health_apply_check(h, GW_HC_TIMEOUT, 2, 2), GW_HEALTH_UNHEALTHY);
    assert_false(gw_health_usable(h, 0));
    /* One SERVING does not bring it back; two do. */
    assert_int_equal(gw_health_apply_check(h, GW_HC_SERVING, 2, 2), -1);
    assert_false(gw_health_usable(h, 0));
    assert_int_equal(gw_health_apply_check(h, GW_HC_SERVING, 2, 2), GW_HEALTH_HEALTHY);
    assert_true(gw_health_usable(h, 0));
    /* Errors and timeouts mix in one run. */
    assert_int_equal(gw_health_apply_check(h, GW_HC_ERROR, 2, 2), -1);
    assert_int_equal(gw_health_apply_check(h, GW_HC_TIMEOUT, 2, 2), GW_HEALTH_UNHEALTHY);
    /* Threshold 1 flips on every result. */
    assert_int_equal(gw_health_apply_check(h, GW_HC_SERVING, 1, 1), GW_HEALTH_HEALTHY);
    assert_int_equal(gw_health_apply_check(h, GW_HC_NOT_SERVING, 1, 1), GW_HEALTH_NOT_SERVING);
    /* No health service: back to unknown (eligible), and it stays there. */
    assert_int_equal(gw_health_apply_check(h, GW_HC_UNIMPLEMENTED, 1, 1), GW_HEALTH_UNKNOWN);
    assert_true(gw_health_usable(h, 0));
    assert_int_equal(gw_health_apply_check(h, GW_HC_UNIMPLEMENTED, 1, 1), -1);
    assert_int_equal(h->check_fail, 0);
    assert_int_equal(h->checks[GW_HC_UNIMPLEMENTED], 2);
    /* Every result is counted. */
    assert_int_equal(h->checks[GW_HC_SERVING], 7);
    assert_int_equal(h->checks[GW_HC_NOT_SERVING], 4);
    assert_int_equal(h->checks[GW_HC_TIMEOUT], 2);
    assert_int_equal(h->checks[GW_HC_ERROR], 1);
}

static void test_passive_ejection_and_return(void **state)
{
    struct fixture *f = *state;
    struct gw_health *h = f->rec[idx_of(f, A[0])];
    uint64_t now = 1000 * MS;

    /* Four failures, a success, four more: no run of five. */
    assert_int_equal(fail_n(f, A[0], 4, now, &P), 0);
    assert_int_equal(gw_health_passive(h, 1, now, &P, f->rt, idx_of(f, A[0]), rec_of, f), 0);
    assert_int_equal(h->failures, 0);
    assert_int_equal(fail_n(f, A[0], 4, now, &P), 0);
    assert_false(gw_health_ejected(h, now));
    /* The fifth in a row ejects it for base x 1. */
    assert_int_equal(fail_n(f, A[0], 1, now, &P), 1);
    assert_true(gw_health_ejected(h, now));
    assert_false(gw_health_usable(h, now));
    assert_int_equal(h->times_ejected, 1);
    assert_int_equal(h->ejected_until_ns, now + 10000 * MS);
    assert_int_equal(h->failures, 0);
    /* More failures while ejected do not extend it. */
    assert_int_equal(fail_n(f, A[0], 10, now + MS, &P), 0);
    assert_int_equal(h->ejected_until_ns, now + 10000 * MS);
    /* It returns exactly at the end; the return is noticed once. */
    assert_true(gw_health_ejected(h, now + 10000 * MS - 1));
    assert_int_equal(gw_health_end_ejection(h, now + 10000 * MS - 1), 0);
    assert_false(gw_health_ejected(h, now + 10000 * MS));
    assert_true(gw_health_usable(h, now + 10000 * MS));
    assert_int_equal(gw_health_end_ejection(h, now + 10000 * MS), 1);
    assert_int_equal(gw_health_end_ejection(h, now + 10000 * MS), 0);
    assert_int_equal(h->ejected_until_ns, 0);
    /* The second time lasts twice as long; the thirtieth and later, the max. */
    now += 20000 * MS;
    h->failures = 0;
    assert_int_equal(fail_n(f, A[0], 5, now, &P), 1);
    assert_int_equal(h->ejected_until_ns, now + 20000 * MS);
    for (int t = 3; t <= 40; t++) {
        now += 400000 * MS;
        assert_int_equal(fail_n(f, A[0], 5, now, &P), 1);
        assert_int_equal(h->ejected_until_ns, now + (t * 10000 < 300000 ? t * 10000 : 300000) * MS);
    }
    assert_int_equal(h->times_ejected, 40);
}

static void test_ejection_cap(void **state)
{
    struct fixture *f = *state;
    uint64_t now = 5000 * MS;

    /* Pool a has 3 replicas and max 50%: one may be out (33%), not two. */
    assert_int_equal(fail_n(f, A[0], 5, now, &P), 1);
    assert_int_equal(fail_n(f, A[1], 5, now, &P), 0);
    assert_false(gw_health_ejected(f->rec[idx_of(f, A[1])], now));
    /* The refusal restarts the count: four more do nothing... */
    assert_int_equal(fail_n(f, A[1], 4, now, &P), 0);
    /* ... and once A[0] is back, the fifth ejects A[1]. */
    now += 10000 * MS;
    assert_int_equal(fail_n(f, A[1], 1, now, &P), 1);
    /* A[2] is in pools a and b: a would be 2/3 ejected, so no. */
    assert_int_equal(fail_n(f, A[2], 5, now, &P), 0);
    /* B[1] is only in b: 1 of 2 = 50% is allowed. */
    assert_int_equal(fail_n(f, B[1], 5, now, &P), 1);
    /* A pool of one replica never loses it at 50%... */
    assert_int_equal(fail_n(f, SOLO[0], 50, now, &P), 0);
    /* ... but may at 100%. */
    struct gw_outlier_params all = P;
    all.max_percent = 100;
    assert_int_equal(fail_n(f, SOLO[0], 5, now, &all), 1);
    /* max_percent 0: nothing is ever ejected. */
    struct gw_outlier_params none = P;
    none.max_percent = 0;
    now += 1000000 * MS;
    assert_int_equal(fail_n(f, A[0], 50, now, &none), 0);
    /* failures 0: ejection is off. */
    struct gw_outlier_params off = P;
    off.failures = 0;
    assert_int_equal(fail_n(f, A[0], 50, now, &off), 0);
    /* Not in the snapshot (idx -1): never ejected. */
    struct gw_health *h = f->rec[0];
    for (int k = 0; k < 10; k++)
        assert_int_equal(gw_health_passive(h, 0, now, &P, f->rt, -1, rec_of, f), 0);
}

static void test_eject_allowed_direct(void **state)
{
    struct fixture *f = *state;
    uint64_t now = 7 * MS;

    for (size_t i = 0; i < f->rt->nreplicas; i++)
        assert_true(gw_health_eject_allowed(f->rt, i, rec_of, f,
                                            i == (size_t)idx_of(f, SOLO[0]) ? 100 : 50, now));
    f->rec[idx_of(f, A[1])]->ejected_until_ns = now + 1;
    assert_false(gw_health_eject_allowed(f->rt, (size_t)idx_of(f, A[0]), rec_of, f, 50, now));
    assert_true(gw_health_eject_allowed(f->rt, (size_t)idx_of(f, A[0]), rec_of, f, 67, now));
    /* An ejection that has ended does not count. */
    assert_true(gw_health_eject_allowed(f->rt, (size_t)idx_of(f, A[0]), rec_of, f, 50, now + 1));
}

static void test_conn_backoff(void **state)
{
    struct fixture *f = *state;
    struct gw_health *h = f->rec[0];
    uint64_t now = 100 * MS;

    assert_int_equal(gw_health_conn_alive(h), 0);
    assert_int_equal(gw_health_conn_failed(h, now), 1); /* went down: log once */
    assert_true(gw_health_conn_backing_off(h, now));
    assert_true(gw_health_conn_backing_off(h, now + 100 * MS - 1));
    assert_false(gw_health_conn_backing_off(h, now + 100 * MS));
    /* Doubling from 100 ms, at most 5 s. */
    uint64_t expect = 200;
    for (int k = 2; k < 12; k++, expect *= 2) {
        assert_int_equal(gw_health_conn_failed(h, now), 0);
        uint64_t want = expect < 5000 ? expect : 5000;
        assert_int_equal(h->connect_retry_at_ns, now + want * MS);
    }
    /* Health state is separate: a down replica is still "usable" as far as
     * checks and ejection go (gw_upstream_eligible adds the backoff). */
    assert_true(gw_health_usable(h, now));
    assert_int_equal(gw_health_conn_alive(h), 1); /* came back: log once */
    assert_int_equal(gw_health_conn_alive(h), 0);
    assert_false(gw_health_conn_backing_off(h, now));
}

/* Records nobody references are unlinked by a sweep (no longer found,
 * no longer rendered) and freed by a sweep after the grace time; referenced
 * ones stay; a record taken again before the sweep survives it. */
static void test_sweep_frees_unreferenced(void **state)
{
    struct fixture *f = *state;
    const uint64_t grace = (uint64_t)GW_HEALTH_FREE_GRACE_MS * 1000000ULL;
    size_t n0 = f->reg->nrecords;
    assert_int_equal(n0, f->rt->nreplicas);
    /* Every fixture record is referenced: nothing goes. */
    assert_int_equal(gw_health_sweep(f->reg, 1000), 0);
    assert_int_equal(f->reg->nrecords, n0);

    for (int i = 0; i < 50; i++) {
        char addr[32];
        snprintf(addr, sizeof(addr), "127.0.0.1:%d", 20000 + i);
        struct gw_health *h = gw_health_get(f->reg, addr);
        assert_non_null(h);
        if (i == 0) {
            gw_health_put(h);
            assert_ptr_equal(gw_health_get(f->reg, addr), h); /* taken again: stays */
        } else {
            gw_health_put(h);
        }
    }
    assert_int_equal(f->reg->nrecords, n0 + 50);
    assert_int_equal(gw_health_sweep(f->reg, 1000), 0); /* unlinked, not freed yet */
    assert_int_equal(f->reg->nrecords, n0 + 1);
    assert_null(gw_health_find(f->reg, "127.0.0.1:20001"));
    assert_non_null(gw_health_find(f->reg, "127.0.0.1:20000"));
    assert_non_null(gw_health_find(f->reg, A[0]));
    /* Freed once the grace time has passed since they were unlinked. */
    assert_int_equal(gw_health_sweep(f->reg, 1000 + grace - 1), 0);
    assert_int_equal(gw_health_sweep(f->reg, 1000 + grace), 49);
    assert_null(f->reg->graveyard);

    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    gw_health_render_metrics(f->reg, out);
    fclose(out);
    char want[64];
    snprintf(want, sizeof(want), "infergw_health_records %zu\n", n0 + 1);
    assert_non_null(strstr(buf, want));
    assert_null(strstr(buf, "127.0.0.1:20001"));
    free(buf);
    /* The registry frees what is left, the graveyard included (ASan). */
    gw_health_put(gw_health_find(f->reg, "127.0.0.1:20000"));
    gw_health_sweep(f->reg, 5000);
    assert_non_null(f->reg->graveyard);
}

static void test_metrics(void **state)
{
    struct fixture *f = *state;
    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    struct gw_health *h = f->rec[idx_of(f, A[0])];

    gw_health_apply_check(h, GW_HC_NOT_SERVING, 1, 1);
    h->times_ejected = 3;
    h->keepalive_timeouts = 7;
    gw_health_render_metrics(f->reg, out);
    fclose(out);
    assert_non_null(strstr(buf, "# TYPE infergw_replica_health gauge\n"));
    assert_non_null(strstr(
        buf, "infergw_replica_health{replica=\"127.0.0.1:7301\",state=\"not_serving\"} 1\n"));
    assert_non_null(
        strstr(buf, "infergw_replica_health{replica=\"127.0.0.1:7301\",state=\"healthy\"} 0\n"));
    assert_non_null(
        strstr(buf, "infergw_replica_health{replica=\"127.0.0.1:7302\",state=\"unknown\"} 1\n"));
    assert_non_null(strstr(buf, "infergw_replica_ejections_total{replica=\"127.0.0.1:7301\"} 3\n"));
    assert_non_null(strstr(
        buf, "infergw_health_checks_total{replica=\"127.0.0.1:7301\",result=\"not_serving\"} 1\n"));
    assert_non_null(
        strstr(buf, "infergw_upstream_keepalive_timeouts_total{replica=\"127.0.0.1:7301\"} 7\n"));
    free(buf);
}

/* --- availability ------------------------------------------------------ */

#define S 1000000000ull

struct avail_case {
    const char *name;
    struct {
        uint64_t t_s; /* seconds */
        int up;
    } notes[8];
    size_t nnotes;
    uint64_t at_s; /* when the stats are taken */
    uint32_t failures, recoveries;
    double up_s, down_s, mtbf_s, mttr_s, availability;
};

static const struct avail_case avail_cases[] = {
    {"never seen", {{0}}, 0, 100, 0, 0, 0, 0, 0, 0, 1.0},
    {"down before first seen up: not counted", {{10, 0}, {20, 0}}, 2, 100, 0, 0, 0, 0, 0, 0, 1.0},
    {"up, never failed", {{10, 1}, {50, 1}}, 2, 110, 0, 0, 100, 0, 100, 0, 1.0},
    {"down then first up: counting starts at the up",
     {{0, 0}, {10, 1}},
     2,
     40,
     0,
     0,
     30,
     0,
     30,
     0,
     1.0},
    /* up 0..90, down 90..100, up 100..190, down 190..200, up 200..300 */
    {"two failures, both ended",
     {{0, 1}, {90, 0}, {100, 1}, {190, 0}, {200, 1}},
     5,
     300,
     2,
     2,
     280,
     20,
     140,
     10,
     280.0 / 300},
    /* up 0..100, down 100..: the outage in progress counts in availability,
     * not in MTTR until it ends */
    {"down now", {{0, 1}, {100, 0}}, 2, 125, 1, 0, 100, 25, 100, 0, 100.0 / 125},
    {"repeated notes change nothing",
     {{0, 1}, {5, 1}, {50, 0}, {55, 0}, {60, 1}, {70, 1}},
     6,
     100,
     1,
     1,
     90,
     10,
     90,
     10,
     0.9},
    /* a note older than the last transition is taken at that time */
    {"time going back", {{0, 1}, {50, 0}, {40, 1}}, 3, 100, 1, 1, 100, 0, 100, 0, 1.0},
};

static void test_avail_table(void **state)
{
    (void)state;
    for (size_t c = 0; c < sizeof(avail_cases) / sizeof(avail_cases[0]); c++) {
        const struct avail_case *k = &avail_cases[c];
        struct gw_health_avail a;
        struct gw_health_avail_stats st;
        memset(&a, 0, sizeof(a));
        for (size_t i = 0; i < k->nnotes; i++)
            gw_health_avail_note(&a, k->notes[i].up, k->notes[i].t_s * S);
        gw_health_avail_stats(&a, k->at_s * S, &st);
        print_message("avail case: %s\n", k->name);
        assert_int_equal(st.failures, k->failures);
        assert_int_equal(st.recoveries, k->recoveries);
        assert_float_equal(st.up_s, k->up_s, 1e-9);
        assert_float_equal(st.down_s, k->down_s, 1e-9);
        assert_float_equal(st.mtbf_s, k->mtbf_s, 1e-9);
        assert_float_equal(st.mttr_s, k->mttr_s, 1e-9);
        assert_float_equal(st.availability, k->availability, 1e-9);
        /* Whenever every failure ended, availability = MTBF / (MTBF + MTTR). */
        if (st.failures && st.failures == st.recoveries)
            assert_float_equal(st.availability, st.mtbf_s / (st.mtbf_s + st.mttr_s), 1e-9);
    }
}

/* What counts as a transition. */
static void test_avail_note_returns(void **state)
{
    struct gw_health_avail a;
    (void)state;
    memset(&a, 0, sizeof(a));
    assert_int_equal(gw_health_avail_note(&a, 0, 1 * S), 0); /* not seen yet */
    assert_int_equal(gw_health_avail_note(&a, 1, 2 * S), 1); /* first seen up */
    assert_int_equal(gw_health_avail_note(&a, 1, 3 * S), 0);
    assert_int_equal(gw_health_avail_note(&a, 0, 4 * S), 1); /* failure */
    assert_int_equal(gw_health_avail_note(&a, 0, 5 * S), 0);
    assert_int_equal(gw_health_avail_note(&a, 7, 6 * S), 1); /* recovery (any non-zero is up) */
}

/* The record's own transitions feed the bookkeeping: a connect failure and
 * an ejection are failures, the frame after the one and the end of the
 * other are recoveries; the metrics show them. */
static void test_avail_record(void **state)
{
    struct fixture *f = *state;
    size_t i = idx_of(f, A[0]);
    struct gw_health *h = f->rec[i];
    struct gw_health_avail_stats st;
    struct gw_outlier_params p = {
        .failures = 1, .base_ms = 1000, .max_ms = 1000, .max_percent = 100};

    gw_health_avail_sync(h, 1 * S, &st); /* first seen up */
    assert_true(gw_health_is_up(h, 1 * S));
    assert_int_equal(gw_health_conn_failed(h, 11 * S), 1);
    assert_false(gw_health_is_up(h, 11 * S));
    gw_health_avail_sync(h, 12 * S, &st);
    assert_int_equal(st.failures, 1);
    assert_int_equal(st.recoveries, 0);
    assert_float_equal(st.up_s, 10, 1e-9);
    assert_float_equal(st.down_s, 1, 1e-9);
    /* conn_alive notes at the clock; bring the bookkeeping to known times
     * instead by syncing around it. */
    h->connect_failures = 0;
    gw_health_avail_sync(h, 13 * S, &st);
    assert_int_equal(st.recoveries, 1);
    assert_float_equal(st.mttr_s, 2, 1e-9);
    /* An ejection for 1 s at 23 s; returns at 24 s. */
    assert_int_equal(gw_health_passive(h, 0, 23 * S, &p, f->rt, (int)i, rec_of, f), 1);
    assert_false(gw_health_is_up(h, 23 * S));
    assert_int_equal(gw_health_end_ejection(h, 24 * S), 1);
    gw_health_avail_sync(h, 33 * S, &st);
    assert_int_equal(st.failures, 2);
    assert_int_equal(st.recoveries, 2);
    assert_float_equal(st.up_s, 10 + 10 + 9, 1e-9);
    assert_float_equal(st.mtbf_s, 29.0 / 2, 1e-9);
    assert_float_equal(st.mttr_s, 3.0 / 2, 1e-9);
    assert_float_equal(st.availability, 29.0 / 32, 1e-9);

    char *buf = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&buf, &len);
    gw_health_render_metrics(f->reg, out);
    fclose(out);
    assert_non_null(strstr(buf, "# TYPE infergw_replica_availability gauge\n"));
    assert_non_null(strstr(buf, "# TYPE infergw_replica_failures_total counter\n"));
    assert_non_null(strstr(buf, "infergw_replica_failures_total{replica=\"127.0.0.1:7301\"} 2\n"));
    assert_non_null(strstr(buf, "infergw_replica_mttr_seconds{replica=\"127.0.0.1:7301\"} 1.5"));
    /* Never seen down: availability 1. */
    assert_non_null(
        strstr(buf, "infergw_replica_availability{replica=\"127.0.0.1:7302\"} 1.000000\n"));
    free(buf);
}

/* Reported load: none until a report, the decaying average of the reports,
 * -1 again once the latest is older than GW_HEALTH_LOAD_STALE_MS, and a
 * report after that starts the average afresh. */
static void test_load_reports(void **state)
{
    (void)state;
    struct gw_health h;
    memset(&h, 0, sizeof(h));
    const uint64_t ms = 1000000, t0 = 5000 * ms;
    assert_true(gw_health_load(&h, t0) < 0);
    gw_health_load_report(&h, 0.5, t0);
    assert_true(fabs(gw_health_load(&h, t0) - 0.5) < 1e-12);
    gw_health_load_report(&h, 1.0, t0 + ms);
    assert_true(fabs(gw_health_load(&h, t0 + ms) - 0.65) < 1e-12); /* 0.5 + 0.3 x 0.5 */
    uint64_t last = t0 + ms;
    assert_true(gw_health_load(&h, last + GW_HEALTH_LOAD_STALE_MS * ms) >= 0);
    assert_true(gw_health_load(&h, last + GW_HEALTH_LOAD_STALE_MS * ms + 1) < 0);
    uint64_t later = last + 2 * GW_HEALTH_LOAD_STALE_MS * ms;
    gw_health_load_report(&h, 0.2, later);
    assert_true(fabs(gw_health_load(&h, later) - 0.2) < 1e-12);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup_teardown(test_registry, setup, teardown),
        cmocka_unit_test_setup_teardown(test_active_thresholds, setup, teardown),
        cmocka_unit_test_setup_teardown(test_passive_ejection_and_return, setup, teardown),
        cmocka_unit_test_setup_teardown(test_ejection_cap, setup, teardown),
        cmocka_unit_test_setup_teardown(test_eject_allowed_direct, setup, teardown),
        cmocka_unit_test_setup_teardown(test_conn_backoff, setup, teardown),
        cmocka_unit_test_setup_teardown(test_sweep_frees_unreferenced, setup, teardown),
        cmocka_unit_test_setup_teardown(test_metrics, setup, teardown),
        cmocka_unit_test(test_avail_table),
        cmocka_unit_test(test_load_reports),
        cmocka_unit_test(test_avail_note_returns),
        cmocka_unit_test_setup_teardown(test_avail_record, setup, teardown),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
