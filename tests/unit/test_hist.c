/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for bench/hist.c: bucket bounds tile the value range with a
 * width of at most 1/64 of the value, and percentiles of known distributions
 * (uniform, exponential, log-normal, bimodal) stay within 1% of the exact
 * order statistic. */
#include <math.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>

#include <cmocka.h>

#include "hist.h"

/* A deterministic generator, so a failure reproduces. */
static uint64_t rng_state = 0x9e3779b97f4a7c15ull;
static double uniform01(void)
{
    rng_state ^= rng_state << 13;
    rng_state ^= rng_state >> 7;
    rng_state ^= rng_state << 17;
    return ((double)(rng_state >> 11) + 0.5) / 9007199254740992.0;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static void test_buckets_tile_the_range(void **state)
{
    (void)state;
    assert_int_equal(bench_hist_bucket_lo(0), 0);
    for (unsigned i = 0; i + 1 < BENCH_HIST_BUCKETS; i++) {
        uint64_t lo = bench_hist_bucket_lo(i), hi = bench_hist_bucket_hi(i);
        assert_true(lo <= hi);
        assert_int_equal(bench_hist_bucket_lo(i + 1), hi + 1);
        assert_int_equal(bench_hist_index(lo), i);
        assert_int_equal(bench_hist_index(hi), i);
        if (lo >= BENCH_HIST_LINEAR)
            assert_true((double)(hi - lo + 1) <= (double)lo / 64.0);
    }
    assert_int_equal(bench_hist_bucket_hi(BENCH_HIST_BUCKETS - 1), UINT64_MAX);
    assert_int_equal(bench_hist_index(UINT64_MAX), BENCH_HIST_BUCKETS - 1);
}

static void test_empty_and_single(void **state)
{
    struct bench_hist h;
    (void)state;
    bench_hist_init(&h);
    assert_int_equal(bench_hist_percentile(&h, 50), 0);
    assert_true(bench_hist_mean(&h) == 0.0);
    bench_hist_record(&h, 123456789);
    assert_int_equal(bench_hist_percentile(&h, 0), 123456789);
    assert_int_equal(bench_hist_percentile(&h, 50), 123456789); /* clamped to min = max */
    assert_int_equal(bench_hist_percentile(&h, 100), 123456789);
    assert_true(bench_hist_mean(&h) == 123456789.0);
}

static void test_small_values_exact(void **state)
{
    struct bench_hist h;
    (void)state;
    bench_hist_init(&h);
    for (uint64_t v = 1; v <= 100; v++)
        bench_hist_record(&h, v);
    assert_int_equal(bench_hist_percentile(&h, 50), 50);
    assert_int_equal(bench_hist_percentile(&h, 90), 90);
    assert_int_equal(bench_hist_percentile(&h, 99), 99);
    assert_int_equal(bench_hist_percentile(&h, 100), 100);
    assert_int_equal(h.min, 1);
}

/* Records <n> values drawn by <draw> and compares p1..p99.99 with the exact
 * order statistic of the same values. */
static void check_distribution(double (*draw)(void), size_t n)
{
    static const double ps[] = {1, 10, 25, 50, 75, 90, 95, 99, 99.9, 99.99};
    uint64_t *v = malloc(n * sizeof(*v));
    struct bench_hist *h = malloc(sizeof(*h));
    assert_non_null(v);
    assert_non_null(h);
    bench_hist_init(h);
    double sum = 0;
    for (size_t i = 0; i < n; i++) {
        v[i] = (uint64_t)draw();
        sum += (double)v[i];
        bench_hist_record(h, v[i]);
    }
    qsort(v, n, sizeof(*v), cmp_u64);
    for (size_t i = 0; i < sizeof(ps) / sizeof(ps[0]); i++) {
        size_t rank = (size_t)ceil(ps[i] / 100.0 * (double)n - 1e-9);
        double exact = (double)v[rank - 1];
        double got = (double)bench_hist_percentile(h, ps[i]);
        double err = fabs(got - exact) / exact;
        if (err > 0.01)
            fail_msg("p%g: exact %.0f, histogram %.0f (error %.3f%%)", ps[i], exact, got,
                     err * 100);
    }
    assert_int_equal(bench_hist_percentile(h, 100), v[n - 1]);
    assert_int_equal(bench_hist_percentile(h, 0), v[0]);
    assert_true(fabs(bench_hist_mean(h) - sum / (double)n) < 1e-6 * sum / (double)n);
    free(h);
    free(v);
}

static double draw_uniform(void)
{
    return 1000.0 + uniform01() * 10e6; /* 1 us .. 10 ms */
}
static double draw_exponential(void)
{
    return 200.0 - 500e3 * log(uniform01()); /* mean 0.5 ms */
}
static double draw_lognormal(void)
{
    double z = sqrt(-2 * log(uniform01())) * cos(2 * M_PI * uniform01());
    return exp(log(300e3) + 1.2 * z); /* median 0.3 ms, long tail */
}
static double draw_bimodal(void)
{
    /* 2% of the calls stall for ~200 ms: the tail hedging is about. */
    return uniform01() < 0.02 ? 200e6 + uniform01() * 1e6 : 150e3 + uniform01() * 50e3;
}

static void test_uniform(void **state)
{
    (void)state;
    check_distribution(draw_uniform, 200000);
}
static void test_exponential(void **state)
{
    (void)state;
    check_distribution(draw_exponential, 200000);
}
static void test_lognormal(void **state)
{
    (void)state;
    check_distribution(draw_lognormal, 200000);
}
static void test_bimodal(void **state)
{
    (void)state;
    check_distribution(draw_bimodal, 200000);
}

static void test_merge(void **state)
{
    struct bench_hist *a = malloc(sizeof(*a)), *b = malloc(sizeof(*b));
    (void)state;
    assert_non_null(a);
    assert_non_null(b);
    bench_hist_init(a);
    bench_hist_init(b);
    for (uint64_t v = 1; v <= 500; v++)
        bench_hist_record(a, v * 1000);
    for (uint64_t v = 501; v <= 1000; v++)
        bench_hist_record(b, v * 1000);
    bench_hist_merge(a, b);
    assert_int_equal(a->total, 1000);
    assert_int_equal(a->min, 1000);
    assert_int_equal(a->max, 1000000);
    double p50 = (double)bench_hist_percentile(a, 50);
    assert_true(fabs(p50 - 500000.0) / 500000.0 <= 0.01);
    free(a);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_buckets_tile_the_range),
        cmocka_unit_test(test_empty_and_single),
        cmocka_unit_test(test_small_values_exact),
        cmocka_unit_test(test_uniform),
        cmocka_unit_test(test_exponential),
        cmocka_unit_test(test_lognormal),
        cmocka_unit_test(test_bimodal),
        cmocka_unit_test(test_merge),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
