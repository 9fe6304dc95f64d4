/* SPDX-License-Identifier: Apache-2.0 */
/* hist — a log-linear latency histogram for the load generator.
 *
 * Values (nanoseconds, any uint64_t) below 128 get one bucket each; above,
 * every power of two [2^k, 2^(k+1)) is cut into 64 equal buckets, so a
 * bucket is at most 1/64 of its lower bound wide. Percentiles report the
 * bucket's midpoint (clamped to the exact min and max seen), which is within
 * 1/128 (0.8%) of any value in the bucket: the <= 1% relative error the
 * benchmark promises. Recording is one clz, a shift and an increment; the
 * whole histogram is a fixed array, so it never allocates. Pure logic, no
 * I/O; not thread-safe (one histogram per thread, merge at the end).
 */
#ifndef INFERGW_BENCH_HIST_H
#define INFERGW_BENCH_HIST_H

#include <stdint.h>

#define BENCH_HIST_LINEAR  128 /* values below this are exact */
#define BENCH_HIST_SUB     64  /* buckets per power of two above it */
#define BENCH_HIST_BUCKETS (BENCH_HIST_LINEAR + (64 - 7) * BENCH_HIST_SUB)

struct bench_hist {
    uint64_t counts[BENCH_HIST_BUCKETS];
    uint64_t total;
    uint64_t min, max; /* exact; min is UINT64_MAX while empty */
    double sum;        /* for the mean */
};

void bench_hist_init(struct bench_hist *h);
void bench_hist_record(struct bench_hist *h, uint64_t v);
/* Adds every value recorded in <src> to <dst>. */
void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src);

/* The bucket index of <v>, and the bounds [lo, hi] of bucket <idx>
 * (exposed for the unit test). */
unsigned bench_hist_index(uint64_t v);
uint64_t bench_hist_bucket_lo(unsigned idx);
uint64_t bench_hist_bucket_hi(unsigned idx);

/* The value at percentile <p> (0..100): the smallest recorded value v such
 * that at least p% of the values are <= v, to within the bucket error.
 * p <= 0 gives the min, p >= 100 the max; an empty histogram gives 0. */
uint64_t bench_hist_percentile(const struct bench_hist *h, double p);
/* The exact mean, 0 when empty. */
double bench_hist_mean(const struct bench_hist *h);

#endif
