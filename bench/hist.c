/* SPDX-License-Identifier: Apache-2.0 */
/* hist — log-linear latency histogram; see hist.h. */
#include "hist.h"

#include <math.h>
#include <string.h>

void bench_hist_init(struct bench_hist *h)
{
    memset(h, 0, sizeof(*h));
    h->min = UINT64_MAX;
}

unsigned bench_hist_index(uint64_t v)
{
    if (v < BENCH_HIST_LINEAR)
        return (unsigned)v;
    unsigned k = 63u - (unsigned)__builtin_clzll(v); /* 7..63 */
    unsigned shift = k - 6;                          /* v >> shift is in [64, 127] */
    return BENCH_HIST_LINEAR + (k - 7) * BENCH_HIST_SUB + (unsigned)(v >> shift) - BENCH_HIST_SUB;
}

uint64_t bench_hist_bucket_lo(unsigned idx)
{
    if (idx < BENCH_HIST_LINEAR)
        return idx;
    unsigned k = (idx - BENCH_HIST_LINEAR) / BENCH_HIST_SUB + 7;
    uint64_t sub = (idx - BENCH_HIST_LINEAR) % BENCH_HIST_SUB + BENCH_HIST_SUB;
    return sub << (k - 6);
}

uint64_t bench_hist_bucket_hi(unsigned idx)
{
    if (idx < BENCH_HIST_LINEAR)
        return idx;
    unsigned k = (idx - BENCH_HIST_LINEAR) / BENCH_HIST_SUB + 7;
    return bench_hist_bucket_lo(idx) + ((uint64_t)1 << (k - 6)) - 1;
}

void bench_hist_record(struct bench_hist *h, uint64_t v)
{
    h->counts[bench_hist_index(v)]++;
    h->total++;
    h->sum += (double)v;
    if (v < h->min)
        h->min = v;
    if (v > h->max)
        h->max = v;
}

void bench_hist_merge(struct bench_hist *dst, const struct bench_hist *src)
{
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++)
        dst->counts[i] += src->counts[i];
    dst->total += src->total;
    dst->sum += src->sum;
    if (src->min < dst->min)
        dst->min = src->min;
    if (src->max > dst->max)
        dst->max = src->max;
}

uint64_t bench_hist_percentile(const struct bench_hist *h, double p)
{
    if (h->total == 0)
        return 0;
    if (p <= 0)
        return h->min;
    if (p >= 100)
        return h->max;
    /* The rank of the value sought, 1-based; the epsilon keeps 50% of 1000
     * at rank 500 despite binary rounding. */
    uint64_t rank = (uint64_t)ceil(p / 100.0 * (double)h->total - 1e-9);
    if (rank < 1)
        rank = 1;
    uint64_t seen = 0;
    for (unsigned i = 0; i < BENCH_HIST_BUCKETS; i++) {
        seen += h->counts[i];
        if (seen >= rank) {
            uint64_t lo = bench_hist_bucket_lo(i), hi = bench_hist_bucket_hi(i);
            uint64_t mid = lo + (hi - lo) / 2;
            if (mid < h->min)
                mid = h->min;
            if (mid > h->max)
                mid = h->max;
            return mid;
        }
    }
    return h->max;
}

double bench_hist_mean(const struct bench_hist *h)
{
    return h->total ? h->sum / (double)h->total : 0.0;
}
