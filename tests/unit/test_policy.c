/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/policy.c: backoff bounds, pushback
 * parsing, the deadline floor, retry/hedge budget accounting, the latency
 * estimator against exact quantiles of known distributions, ejection times,
 * and the retry and hedge decisions (table-driven). */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/grpcwire.h"
#include "route/policy.h"

#define MS  1000000ull
#define SEC 1000000000ull

/* splitmix64: a fixed-seed generator so every run sees the same samples. */
static uint64_t rng_state;

static uint64_t rng_next(void)
{
    uint64_t z = (rng_state += 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
}

/* Uniform in (0, 1). */
static double rng_unit(void)
{
    return ((double)(rng_next() >> 11) + 0.5) / 9007199254740992.0;
}

static uint32_t expected_bound(unsigned retry, uint32_t base, uint32_t cap)
{
    uint64_t b = base;

    for (unsigned i = 0; i < retry && b < cap; i++)
        b *= 2;
    return b > cap ? cap : (uint32_t)b;
}

static void test_backoff_bounds(void **state)
{
    (void)state;
    rng_state = 1;
    for (unsigned retry = 0; retry < 12; retry++) {
        uint32_t bound = expected_bound(retry, GW_BACKOFF_BASE_MS, GW_BACKOFF_CAP_MS);
        uint32_t lo = UINT32_MAX, hi = 0;

        for (int i = 0; i < 20000; i++) {
            uint32_t d = gw_policy_backoff_ms(retry, GW_BACKOFF_BASE_MS, GW_BACKOFF_CAP_MS,
                                              (uint32_t)rng_next());
            assert_true(d <= bound);
            if (d < lo)
                lo = d;
            if (d > hi)
                hi = d;
        }
        /* Full jitter: the whole range is used, from near 0 to near the bound. */
        assert_true(lo <= bound / 50);
        assert_true(hi >= bound - bound / 50 - 1);
        /* The extremes of rnd reach exactly 0 and the bound. */
        assert_int_equal(gw_policy_backoff_ms(retry, 25, 250, 0), 0);
        assert_int_equal(gw_policy_backoff_ms(retry, 25, 250, UINT32_MAX), bound);
    }
    assert_int_equal(expected_bound(0, 25, 250), 25);
    assert_int_equal(expected_bound(3, 25, 250), 200);
    assert_int_equal(expected_bound(4, 25, 250), 250);
}

static void test_backoff_mean_is_half_the_bound(void **state)
{
    double sum = 0;
    const int n = 100000;

    (void)state;
    rng_state = 2;
    for (int i = 0; i < n; i++)
        sum += gw_policy_backoff_ms(2, 25, 250, (uint32_t)rng_next());
    /* Uniform on [0, 100]: mean 50. */
    assert_true(fabs(sum / n - 50.0) < 1.0);
}

static void test_backoff_no_overflow(void **state)
{
    (void)state;
    /* Huge retry numbers and bases saturate at the cap instead of wrapping. */
    for (unsigned retry = 28; retry < 40; retry++)
        assert_int_equal(gw_policy_backoff_ms(retry, 25, 250, UINT32_MAX), 250);
    assert_int_equal(gw_policy_backoff_ms(1000, 25, 250, UINT32_MAX), 250);
    assert_int_equal(gw_policy_backoff_ms(UINT32_MAX, 25, 250, UINT32_MAX), 250);
    assert_true(gw_policy_backoff_ms(1000, 25, 250, 0x80000000u) <= 250);
    assert_int_equal(gw_policy_backoff_ms(31, UINT32_MAX, UINT32_MAX, UINT32_MAX), UINT32_MAX);
    assert_int_equal(gw_policy_backoff_ms(1000, UINT32_MAX, UINT32_MAX, UINT32_MAX), UINT32_MAX);
    assert_int_equal(gw_policy_backoff_ms(0, UINT32_MAX, UINT32_MAX, UINT32_MAX), UINT32_MAX);
}

static void test_backoff_edge_cases(void **state)
{
    (void)state;
    /* base 0: no wait at all, whatever the retry. */
    assert_int_equal(gw_policy_backoff_ms(0, 0, 250, UINT32_MAX), 0);
    assert_int_equal(gw_policy_backoff_ms(1000, 0, 250, UINT32_MAX), 0);
    /* cap 0: no wait either. */
    assert_int_equal(gw_policy_backoff_ms(0, 25, 0, UINT32_MAX), 0);
    assert_int_equal(gw_policy_backoff_ms(5, 25, 0, UINT32_MAX), 0);
    /* base above the cap: the cap wins from the first retry. */
    assert_int_equal(gw_policy_backoff_ms(0, 500, 250, UINT32_MAX), 250);
    /* base = cap = 1: the two values 0 and 1. */
    assert_int_equal(gw_policy_backoff_ms(0, 1, 1, 0), 0);
    assert_int_equal(gw_policy_backoff_ms(0, 1, 1, UINT32_MAX), 1);
    assert_int_equal(gw_policy_backoff_ms(0, 1, 1, 0x7fffffffu), 0);
    assert_int_equal(gw_policy_backoff_ms(0, 1, 1, 0x80000000u), 1);
}

static int parse(const char *s, uint32_t *ms)
{
    return gw_policy_pushback_parse(s, strlen(s), ms);
}

static void test_pushback_valid(void **state)
{
    uint32_t ms = 7;

    (void)state;
    assert_int_equal(parse("0", &ms), 0);
    assert_int_equal(ms, 0);
    assert_int_equal(parse("5", &ms), 0);
    assert_int_equal(ms, 5);
    assert_int_equal(parse("1500", &ms), 0);
    assert_int_equal(ms, 1500);
    assert_int_equal(parse("007", &ms), 0);
    assert_int_equal(ms, 7);
    assert_int_equal(parse("4294967295", &ms), 0);
    assert_int_equal(ms, UINT32_MAX);
    /* Above UINT32_MAX: clamps, however long. */
    assert_int_equal(parse("4294967296", &ms), 0);
    assert_int_equal(ms, UINT32_MAX);
    ms = 0;
    assert_int_equal(parse("99999999999999999999999999999999999999999999", &ms), 0);
    assert_int_equal(ms, UINT32_MAX);
    /* The length counts, not a NUL: "12" out of "123". */
    assert_int_equal(gw_policy_pushback_parse("123", 2, &ms), 0);
    assert_int_equal(ms, 12);
}

static void test_pushback_malformed(void **state)
{
    static const char *const bad[] = {
        "",      "-1",  "+5", " 5", "5 ", "1e3", "0x10", "5.0",
        "1,000", "abc", "-0", "\t", "5a", "9\n", "1 2",  "99999999999999999999999999x",
    };
    uint32_t ms = 42;

    (void)state;
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        assert_int_equal(parse(bad[i], &ms), -1);
        assert_int_equal(ms, 42); /* untouched on failure */
    }
    assert_int_equal(gw_policy_pushback_parse(NULL, 0, &ms), -1);
    /* An embedded NUL inside the length is junk too. */
    assert_int_equal(gw_policy_pushback_parse("1\0"
                                              "2",
                                              3, &ms),
                     -1);
    assert_int_equal(ms, 42);
}

static void test_deadline_floor(void **state)
{
    (void)state;
    /* No deadline: always allowed. */
    assert_int_equal(gw_policy_attempt_allowed(1000 * SEC, 0, 0), 1);
    assert_int_equal(gw_policy_attempt_allowed(1000 * SEC, 0, 60 * SEC), 1);
    /* Remaining above the floor. */
    assert_int_equal(gw_policy_attempt_allowed(100, 100 + 10 * MS, 5 * MS), 1);
    assert_int_equal(gw_policy_attempt_allowed(100, 100 + 5 * MS + 1, 5 * MS), 1);
    /* Remaining exactly the floor: an attempt could not finish. */
    assert_int_equal(gw_policy_attempt_allowed(100, 100 + 5 * MS, 5 * MS), 0);
    assert_int_equal(gw_policy_attempt_allowed(100, 100 + 4 * MS, 5 * MS), 0);
    /* At and past the deadline, whatever the floor. */
    assert_int_equal(gw_policy_attempt_allowed(500, 500, 0), 0);
    assert_int_equal(gw_policy_attempt_allowed(501, 500, 0), 0);
    assert_int_equal(gw_policy_attempt_allowed(UINT64_MAX, 500, 0), 0);
    /* Floor 0: any time left is enough. */
    assert_int_equal(gw_policy_attempt_allowed(499, 500, 0), 1);
}

static void test_budget_starts_at_min(void **state)
{
    struct gw_budget b = {0};

    (void)state;
    /* Before any call the budget holds min tokens. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(gw_budget_take(&b, SEC, 20, 3), 1);
    assert_int_equal(gw_budget_take(&b, SEC, 20, 3), 0);
}

static void test_budget_percent_per_call(void **state)
{
    struct gw_budget b = {0};
    uint64_t now = 5 * SEC;

    (void)state;
    /* min 0, 20%: one extra attempt per five calls. */
    for (int round = 0; round < 10; round++) {
        for (int i = 0; i < 4; i++) {
            gw_budget_on_call(&b, now, 20, 0);
            now += MS;
        }
        assert_int_equal(gw_budget_take(&b, now, 20, 0), 0);
        gw_budget_on_call(&b, now, 20, 0);
        assert_int_equal(gw_budget_take(&b, now, 20, 0), 1);
        assert_int_equal(gw_budget_take(&b, now, 20, 0), 0);
    }
    /* 0% and min 0: nothing, ever. */
    struct gw_budget z = {0};
    for (int i = 0; i < 1000; i++)
        gw_budget_on_call(&z, now + (uint64_t)i * MS, 0, 0);
    assert_int_equal(gw_budget_take(&z, now + SEC, 0, 0), 0);
}

static void test_budget_cap_is_last_second(void **state)
{
    struct gw_budget b = {0};
    uint64_t now = 10 * SEC;
    int taken = 0;

    (void)state;
    /* 1000 calls in one second with no extra attempts: the bucket holds at
     * most min + 20% of them. */
    for (int i = 0; i < 1000; i++)
        gw_budget_on_call(&b, now + (uint64_t)i * MS, 20, 10);
    now += 999 * MS;
    assert_true(b.tokens <= 10 + 200 + 1e-9);
    while (gw_budget_take(&b, now, 20, 10))
        taken++;
    assert_true(taken >= 200 && taken <= 210);

    /* Refill with a busy second, then fall quiet for three seconds: calls
     * long gone no longer count, only min is left. */
    for (int i = 0; i < 1000; i++)
        gw_budget_on_call(&b, now + (uint64_t)i * MS, 20, 10);
    now += 1000 * MS + 3 * SEC;
    taken = 0;
    while (gw_budget_take(&b, now, 20, 10))
        taken++;
    assert_int_equal(taken, 10);
}

static void test_budget_no_storm_on_failing_pool(void **state)
{
    const unsigned percent = 20, min = 10, max_attempts = 3;
    const int n = 50000;
    struct gw_budget b = {0};
    uint64_t now = SEC;
    long extra = 0;

    (void)state;
    rng_state = 3;
    /* Every attempt fails and every call asks for all its retries, at an
     * irregular rate around 2000 calls/s. */
    for (int i = 0; i < n; i++) {
        now += rng_next() % (MS) + 1;
        gw_budget_on_call(&b, now, percent, min);
        for (unsigned a = 1; a < max_attempts; a++)
            if (gw_budget_take(&b, now, percent, min))
                extra++;
    }
    assert_true(extra <= (long)min + (long)percent * n / 100);
    /* And the budget is not stingy either: it gives nearly all it may. */
    assert_true(extra >= (long)percent * n / 100 - 1);
}

/* The exact q quantile of sorted <v>: the ceil(q·n)-th smallest. */
static uint64_t exact_quantile(const uint64_t *v, size_t n, double q)
{
    size_t k = (size_t)ceil(q * (double)n);

    return v[k ? k - 1 : 0];
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

    return x < y ? -1 : x > y;
}

static void check_quantiles(struct gw_latency *l, uint64_t *v, size_t n)
{
    static const double qs[] = {0.5, 0.9, 0.95, 0.99};

    qsort(v, n, sizeof v[0], cmp_u64);
    for (size_t i = 0; i < sizeof qs / sizeof qs[0]; i++) {
        double exact = (double)exact_quantile(v, n, qs[i]);
        double est = (double)gw_latency_quantile(l, qs[i], 1);

        assert_true(fabs(est - exact) <= 0.05 * exact);
    }
}

static void test_latency_exponential(void **state)
{
    enum { N = 20000 };
    static uint64_t v[N];
    static struct gw_latency l;

    (void)state;
    rng_state = 4;
    /* No halving during the run: the estimator holds every sample. */
    gw_latency_init(&l, N + 1);
    for (size_t i = 0; i < N; i++) {
        /* Exponential, mean 2 ms, plus a 300 µs floor. */
        v[i] = 300000 + (uint64_t)(-2e6 * log(rng_unit()));
        gw_latency_add(&l, v[i]);
    }
    assert_int_equal(l.total, N);
    check_quantiles(&l, v, N);
}

static void test_latency_uniform(void **state)
{
    enum { N = 20000 };
    static uint64_t v[N];
    static struct gw_latency l;

    (void)state;
    rng_state = 5;
    gw_latency_init(&l, N + 1);
    for (size_t i = 0; i < N; i++) {
        /* Uniform on [1 ms, 50 ms]. */
        v[i] = MS + (uint64_t)(49.0 * (double)MS * rng_unit());
        gw_latency_add(&l, v[i]);
    }
    check_quantiles(&l, v, N);
}

static void test_latency_min_samples_and_edges(void **state)
{
    static struct gw_latency l;

    (void)state;
    gw_latency_init(&l, 0);
    assert_int_equal(l.halflife, 10000);
    assert_int_equal(gw_latency_quantile(&l, 0.5, 0), 0);
    for (int i = 0; i < 99; i++)
        gw_latency_add(&l, 3 * MS);
    assert_int_equal(gw_latency_quantile(&l, 0.95, 100), 0);
    gw_latency_add(&l, 3 * MS);
    assert_true(gw_latency_quantile(&l, 0.95, 100) != 0);
    /* Out-of-range q is refused. */
    assert_int_equal(gw_latency_quantile(&l, 0.0, 1), 0);
    assert_int_equal(gw_latency_quantile(&l, 1.0, 1), 0);
    /* Sub-microsecond and enormous values land in the first/last bucket. */
    gw_latency_init(&l, 100);
    gw_latency_add(&l, 0);
    assert_true(gw_latency_quantile(&l, 0.5, 1) < 1000);
    gw_latency_init(&l, 100);
    gw_latency_add(&l, UINT64_MAX);
    assert_true(gw_latency_quantile(&l, 0.5, 1) > 1000000ull * SEC / 1000);
}

static void test_latency_follows_a_shift(void **state)
{
    static struct gw_latency l;
    uint64_t p50;

    (void)state;
    rng_state = 6;
    gw_latency_init(&l, 1000);
    for (int i = 0; i < 10000; i++)
        gw_latency_add(&l, MS + rng_next() % (MS / 10));
    p50 = gw_latency_quantile(&l, 0.5, 1);
    assert_true(p50 >= MS && p50 <= MS + MS / 10 + MS / 20);
    /* Halving keeps the held count bounded by about two half-lives. */
    assert_true(l.total <= 2000);
    /* The pool slows down tenfold: after a few half-lives the old samples
     * weigh next to nothing. */
    for (int i = 0; i < 6000; i++)
        gw_latency_add(&l, 10 * MS + rng_next() % MS);
    p50 = gw_latency_quantile(&l, 0.5, 1);
    assert_true(p50 >= 10 * MS && p50 <= 11 * MS + MS / 2);
    assert_true(gw_latency_quantile(&l, 0.05, 1) >= 10 * MS);
}

static void test_ejection_ms(void **state)
{
    (void)state;
    assert_int_equal(gw_policy_ejection_ms(1, 10000, 300000), 10000);
    assert_int_equal(gw_policy_ejection_ms(2, 10000, 300000), 20000);
    assert_int_equal(gw_policy_ejection_ms(30, 10000, 300000), 300000);
    assert_int_equal(gw_policy_ejection_ms(31, 10000, 300000), 300000);
    assert_int_equal(gw_policy_ejection_ms(UINT32_MAX, 10000, 300000), 300000);
    assert_int_equal(gw_policy_ejection_ms(UINT32_MAX, UINT32_MAX, UINT32_MAX), UINT32_MAX);
    /* 0 counts as the first time. */
    assert_int_equal(gw_policy_ejection_ms(0, 10000, 300000), 10000);
    /* A base above the max is capped from the first time on. */
    assert_int_equal(gw_policy_ejection_ms(1, 500000, 300000), 300000);
}

/* --- retry and hedge decisions (table-driven) ------------------------------- */

static void test_status_retryable(void **state)
{
    static const struct {
        uint32_t retry_on;
        int code, pushback, want;
    } cases[] = {
        {1u << GW_GRPC_UNAVAILABLE, GW_GRPC_UNAVAILABLE, 0, 1},
        {1u << GW_GRPC_UNAVAILABLE, GW_GRPC_INTERNAL, 0, 0},
        {1u << GW_GRPC_UNAVAILABLE, GW_GRPC_OK, 0, 0},
        {0xffffffffu, GW_GRPC_OK, 0, 0},                  /* OK never */
        {0xffffffffu, -1, 0, 0},                          /* no status */
        {0xffffffffu, GW_GRPC_UNAUTHENTICATED + 1, 0, 0}, /* unknown code */
        {0xffffffffu, GW_GRPC_UNAUTHENTICATED, 0, 1},
        {0, GW_GRPC_RESOURCE_EXHAUSTED, 1, 1}, /* with a valid pushback only */
        {0xffffffffu, GW_GRPC_RESOURCE_EXHAUSTED, 0, 0},
        {0xffffffffu, GW_GRPC_RESOURCE_EXHAUSTED, -1, 0},
        {0, GW_GRPC_UNAVAILABLE, 0, 0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_int_equal(
            gw_policy_status_retryable(cases[i].retry_on, cases[i].code, cases[i].pushback),
            cases[i].want);
}

static void test_retry_decision(void **state)
{
    static const struct {
        const char *what;
        struct gw_retry_in in;
        enum gw_retry_verdict want;
        uint32_t delay_lo, delay_hi; /* GW_RETRY_AT: the delay's bounds */
    } cases[] = {
        {"first retry, no deadline: backoff within 25 ms",
         {1, 1, 1, 3, 0, 0, 0, 0xffffffffu, 100 * SEC, 0, 0},
         GW_RETRY_AT,
         0,
         25},
        {"second retry: within 50 ms",
         {1, 1, 2, 3, 0, 0, 1, 0xffffffffu, 100 * SEC, 0, 0},
         GW_RETRY_AT,
         0,
         50},
        {"backoff capped at 250 ms",
         {1, 1, 2, 12, 0, 0, 9, 0xffffffffu, 100 * SEC, 0, 0},
         GW_RETRY_AT,
         0,
         250},
        {"valid pushback is the delay",
         {1, 1, 1, 3, 1, 700, 0, 5, 100 * SEC, 0, 0},
         GW_RETRY_AT,
         700,
         700},
        {"not retryable", {0, 1, 1, 3, 0, 0, 0, 0, 100 * SEC, 0, 0}, GW_RETRY_NO, 0, 0},
        {"not replayable", {1, 0, 1, 3, 0, 0, 0, 0, 100 * SEC, 0, 0}, GW_RETRY_NO, 0, 0},
        {"out of attempts", {1, 1, 3, 3, 0, 0, 2, 0, 100 * SEC, 0, 0}, GW_RETRY_NO, 0, 0},
        {"attempts checked before a bad pushback",
         {1, 1, 3, 3, -1, 0, 2, 0, 100 * SEC, 0, 0},
         GW_RETRY_NO,
         0,
         0},
        {"malformed pushback",
         {1, 1, 1, 3, -1, 0, 0, 0, 100 * SEC, 0, 0},
         GW_RETRY_NO_PUSHBACK,
         0,
         0},
        {"deadline far enough",
         {1, 1, 1, 3, 1, 100, 0, 0, 100 * SEC, 100 * SEC + SEC, 0},
         GW_RETRY_AT,
         100,
         100},
        {"pushback lands past the deadline",
         {1, 1, 1, 3, 1, 2000, 0, 0, 100 * SEC, 100 * SEC + SEC, 0},
         GW_RETRY_NO_DEADLINE,
         0,
         0},
        {"floor: less than p50 left after the delay",
         {1, 1, 1, 3, 1, 100, 0, 0, 100 * SEC, 100 * SEC + 300 * MS, 250 * MS},
         GW_RETRY_NO_DEADLINE,
         0,
         0},
        {"floor: more than p50 left after the delay",
         {1, 1, 1, 3, 1, 100, 0, 0, 100 * SEC, 100 * SEC + 400 * MS, 250 * MS},
         GW_RETRY_AT,
         100,
         100},
        {"deadline already passed",
         {1, 1, 1, 3, 1, 0, 0, 0, 100 * SEC, 99 * SEC, 0},
         GW_RETRY_NO_DEADLINE,
         0,
         0},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct gw_retry_decision d = gw_policy_retry(&cases[i].in);
        if (d.verdict != cases[i].want)
            fail_msg("%s: verdict %d, want %d", cases[i].what, d.verdict, cases[i].want);
        if (d.verdict == GW_RETRY_AT &&
            (d.delay_ms < cases[i].delay_lo || d.delay_ms > cases[i].delay_hi))
            fail_msg("%s: delay %u ms not in [%u, %u]", cases[i].what, d.delay_ms,
                     cases[i].delay_lo, cases[i].delay_hi);
    }
}

static void test_hedge_decision(void **state)
{
    static const struct {
        const char *what;
        struct gw_hedge_in in;
        enum gw_hedge_verdict want;
    } cases[] = {
        {"one attempt running, room left", {1, 1, 1, 3, 100 * SEC, 0, 0}, GW_HEDGE_GO},
        {"a hedge may add one over retry_max_attempts", {1, 1, 3, 3, 100 * SEC, 0, 0}, GW_HEDGE_GO},
        {"no room", {1, 1, 4, 3, 100 * SEC, 0, 0}, GW_HEDGE_NO},
        {"not replayable", {0, 1, 1, 3, 100 * SEC, 0, 0}, GW_HEDGE_NO},
        {"nothing running", {1, 0, 1, 3, 100 * SEC, 0, 0}, GW_HEDGE_NO},
        {"already hedged", {1, 2, 2, 3, 100 * SEC, 0, 0}, GW_HEDGE_NO},
        {"deadline far enough", {1, 1, 1, 3, 100 * SEC, 101 * SEC, 500 * MS}, GW_HEDGE_GO},
        {"within the floor of the deadline",
         {1, 1, 1, 3, 100 * SEC, 100 * SEC + 400 * MS, 500 * MS},
         GW_HEDGE_NO_DEADLINE},
        {"deadline passed", {1, 1, 1, 3, 100 * SEC, 100 * SEC, 0}, GW_HEDGE_NO_DEADLINE},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        enum gw_hedge_verdict v = gw_policy_hedge(&cases[i].in);
        if (v != cases[i].want)
            fail_msg("%s: verdict %d, want %d", cases[i].what, v, cases[i].want);
    }
}

static void test_hedge_delay(void **state)
{
    struct gw_latency few, many;
    gw_latency_init(&few, 0);
    gw_latency_init(&many, 0);
    for (int i = 0; i < 10; i++)
        gw_latency_add(&few, 10 * MS);
    for (int i = 0; i < 1000; i++)
        gw_latency_add(&many, 10 * MS);
    const uint64_t p95 = gw_latency_quantile(&many, 0.95, 50);
    assert_true(p95 > 9 * MS && p95 < 11 * MS);
    const struct {
        const char *what;
        int32_t delay_ms;
        const struct gw_latency *lat;
        const char *exclude, *path;
        uint64_t want;
    } cases[] = {
        {"off", 0, &many, "", "/a/B", 0},
        {"fixed", 40, &many, "", "/a/B", 40 * MS},
        {"auto: the p95", -1, &many, "", "/a/B", p95},
        {"auto, too few samples", -1, &few, "", "/a/B", 0},
        {"excluded alone", 40, &many, "/a/B", "/a/B", 0},
        {"excluded in a list", 40, &many, "/x/Y,/a/B,/z/Z", "/a/B", 0},
        {"a prefix is not a match", 40, &many, "/a/BC,/a", "/a/B", 40 * MS},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        uint64_t got = gw_policy_hedge_delay_ns(cases[i].delay_ms, cases[i].lat, 50,
                                                cases[i].exclude, cases[i].path);
        if (got != cases[i].want)
            fail_msg("%s: %llu ns, want %llu", cases[i].what, (unsigned long long)got,
                     (unsigned long long)cases[i].want);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_backoff_bounds),
        cmocka_unit_test(test_backoff_mean_is_half_the_bound),
        cmocka_unit_test(test_backoff_no_overflow),
        cmocka_unit_test(test_backoff_edge_cases),
        cmocka_unit_test(test_pushback_valid),
        cmocka_unit_test(test_pushback_malformed),
        cmocka_unit_test(test_deadline_floor),
        cmocka_unit_test(test_budget_starts_at_min),
        cmocka_unit_test(test_budget_percent_per_call),
        cmocka_unit_test(test_budget_cap_is_last_second),
        cmocka_unit_test(test_budget_no_storm_on_failing_pool),
        cmocka_unit_test(test_latency_exponential),
        cmocka_unit_test(test_latency_uniform),
        cmocka_unit_test(test_latency_min_samples_and_edges),
        cmocka_unit_test(test_latency_follows_a_shift),
        cmocka_unit_test(test_ejection_ms),
        cmocka_unit_test(test_status_retryable),
        cmocka_unit_test(test_retry_decision),
        cmocka_unit_test(test_hedge_decision),
        cmocka_unit_test(test_hedge_delay),
    };

    return cmocka_run_group_tests(tests, NULL, NULL);
}
