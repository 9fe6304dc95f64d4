/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/auth/ratelimit.c: bucket maths on a fake clock
 * (burst, steady rate, retry-after), defaults, a rate change applied at once,
 * and two threads sharing one bucket. Each test uses its own tenant name:
 * buckets are process-wide. */
#include <pthread.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include <cmocka.h>

#include "auth/ratelimit.h"

#define MS  1000000ULL
#define SEC 1000000000ULL
/* An arbitrary monotonic start, far from 0. */
#define T0 (123 * SEC)

static struct gw_tenant tenant(const char *name, double rps, uint32_t burst)
{
    struct gw_tenant t = {.name = (char *)name, .all_models = 1, .rps = rps, .burst = burst};
    return t;
}

/* rps=50 burst=50 driven at 200 attempts/s for 5 simulated seconds: the
 * burst, then 50 per second (+-1 for where the second boundaries fall). */
static void test_steady_rate(void **state)
{
    (void)state;
    struct gw_tenant t = tenant("steady", 50, 50);
    unsigned per_sec[5] = {0}, total = 0;
    for (unsigned k = 0; k < 1000; k++) {
        uint64_t now = T0 + (uint64_t)k * 5 * MS;
        uint32_t ra = 0;
        if (gw_ratelimit_take(&t, now, &ra) == 0) {
            per_sec[k / 200]++;
            total++;
        } else {
            assert_true(ra >= 1 && ra <= 20); /* one token every 20 ms */
        }
    }
    /* Second 0: the full bucket (50) plus what refills while it drains (50). */
    assert_in_range(per_sec[0], 99, 101);
    for (int s = 1; s < 5; s++)
        assert_in_range(per_sec[s], 49, 51);
    assert_in_range(total, 299, 301);
}

/* A full bucket lets exactly <burst> calls through at one instant. */
static void test_burst(void **state)
{
    (void)state;
    struct gw_tenant t = tenant("burst", 10, 25);
    uint32_t ra;
    for (int i = 0; i < 25; i++)
        assert_int_equal(gw_ratelimit_take(&t, T0, &ra), 0);
    assert_int_equal(gw_ratelimit_take(&t, T0, &ra), -1);
    assert_int_equal(ra, 100); /* 10 rps: the next token in 100 ms */
}

/* retry_after_ms is when a token is back: refused one millisecond before,
 * admitted at that time. */
static void test_retry_after(void **state)
{
    (void)state;
    struct gw_tenant t = tenant("retry", 3, 2); /* 333.33 ms per token */
    uint32_t ra = 0;
    assert_int_equal(gw_ratelimit_take(&t, T0, &ra), 0);
    assert_int_equal(gw_ratelimit_take(&t, T0, &ra), 0);
    uint64_t now = T0 + 100 * MS;
    assert_int_equal(gw_ratelimit_take(&t, now, &ra), -1);
    assert_int_equal(ra, 234); /* 333.33 - 100 ms, rounded up */
    uint32_t ra2 = 0;
    assert_int_equal(gw_ratelimit_take(&t, now + (ra - 1) * MS, &ra2), -1);
    assert_int_equal(ra2, 1);
    assert_int_equal(gw_ratelimit_take(&t, now + ra * MS, &ra2), 0);
    /* A refused call took nothing: the next token is a full interval on. */
    assert_int_equal(gw_ratelimit_take(&t, now + ra * MS, &ra2), -1);
    assert_in_range(ra2, 333, 334);
}

static void test_unlimited_and_defaults(void **state)
{
    (void)state;
    uint32_t ra;
    struct gw_tenant free_t = tenant("unlimited", 0, 0);
    for (int i = 0; i < 100000; i++)
        assert_int_equal(gw_ratelimit_take(&free_t, T0, &ra), 0);
    /* burst 0 = max(1, rps): 20 at once for rps 20 ... */
    struct gw_tenant t20 = tenant("default-burst", 20, 0);
    for (int i = 0; i < 20; i++)
        assert_int_equal(gw_ratelimit_take(&t20, T0, &ra), 0);
    assert_int_equal(gw_ratelimit_take(&t20, T0, &ra), -1);
    assert_int_equal(ra, 50);
    /* ... and 1 for rps 0.5, the next one 2 s later. */
    struct gw_tenant slow = tenant("slow", 0.5, 0);
    assert_int_equal(gw_ratelimit_take(&slow, T0, &ra), 0);
    assert_int_equal(gw_ratelimit_take(&slow, T0, &ra), -1);
    assert_int_equal(ra, 2000);
    assert_int_equal(gw_ratelimit_take(&slow, T0 + 2 * SEC, &ra), 0);
}

/* The rate is read from the record on each call: a new record under the same
 * name uses the same bucket at its new rate, from the tokens it holds. */
static void test_rate_change_applies_at_once(void **state)
{
    (void)state;
    uint32_t ra;
    struct gw_tenant t = tenant("change", 1, 1);
    assert_int_equal(gw_ratelimit_take(&t, T0, &ra), 0);
    assert_int_equal(gw_ratelimit_take(&t, T0 + 10 * MS, &ra), -1);
    assert_int_equal(ra, 990); /* 0.01 token there, at 1 rps */
    /* At 1000 rps the missing 0.99 token comes in 0.99 ms, not 990 ms. */
    struct gw_tenant faster = tenant("change", 1000, 1);
    assert_int_equal(gw_ratelimit_take(&faster, T0 + 10 * MS, &ra), -1);
    assert_int_equal(ra, 1);
    assert_int_equal(gw_ratelimit_take(&faster, T0 + 11 * MS, &ra), 0);
    assert_int_equal(gw_ratelimit_take(&faster, T0 + 11 * MS, &ra), -1);
    assert_int_equal(ra, 1);
    /* Back to 1 rps: the bucket is empty, a token comes in 1 s. */
    assert_int_equal(gw_ratelimit_take(&t, T0 + 11 * MS, &ra), -1);
    assert_in_range(ra, 999, 1000);
    /* A smaller burst: never more debt than one full bucket. */
    struct gw_tenant big = tenant("shrink", 1, 100);
    for (int i = 0; i < 100; i++)
        assert_int_equal(gw_ratelimit_take(&big, T0, &ra), 0);
    struct gw_tenant small = tenant("shrink", 1, 2);
    assert_int_equal(gw_ratelimit_take(&small, T0, &ra), -1);
    assert_int_equal(ra, 1000);
    assert_int_equal(gw_ratelimit_take(&small, T0 + SEC, &ra), 0);
}

/* Two threads, one bucket. */
struct hammer {
    struct gw_tenant *t;
    _Atomic uint64_t *clock; /* NULL: time stands still at T0 */
    unsigned attempts;
    unsigned admitted;
};

static void *hammer_main(void *arg)
{
    struct hammer *h = arg;
    for (unsigned i = 0; i < h->attempts; i++) {
        uint64_t now = h->clock ? atomic_fetch_add(h->clock, 1000) : T0; /* +1 us per try */
        uint32_t ra;
        if (gw_ratelimit_take(h->t, now, &ra) == 0)
            h->admitted++;
    }
    return NULL;
}

static unsigned run_two(struct gw_tenant *t, _Atomic uint64_t *clock, unsigned attempts)
{
    struct hammer h[2] = {{t, clock, attempts, 0}, {t, clock, attempts, 0}};
    pthread_t th[2];
    for (int i = 0; i < 2; i++)
        assert_int_equal(pthread_create(&th[i], NULL, hammer_main, &h[i]), 0);
    for (int i = 0; i < 2; i++)
        pthread_join(th[i], NULL);
    return h[0].admitted + h[1].admitted;
}

static void test_two_threads(void **state)
{
    (void)state;
    /* Time frozen: exactly the burst, however the threads interleave. */
    struct gw_tenant t = tenant("threads-frozen", 100, 1000);
    assert_int_equal(run_two(&t, NULL, 200000), 1000);

    /* A shared clock that moves 1 us per attempt, 400,000 attempts = 0.4 s of
     * simulated time at 1000 rps with a burst of 10: 10 + 400 at most (one
     * more for rounding); a few fewer only when a thread was descheduled
     * between reading the clock and taking its token. */
    _Atomic uint64_t clock = T0;
    struct gw_tenant u = tenant("threads-clock", 1000, 10);
    unsigned got = run_two(&u, &clock, 200000);
    assert_in_range(got, 405, 411);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_steady_rate),
        cmocka_unit_test(test_burst),
        cmocka_unit_test(test_retry_after),
        cmocka_unit_test(test_unlimited_and_defaults),
        cmocka_unit_test(test_rate_change_applies_at_once),
        cmocka_unit_test(test_two_threads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
