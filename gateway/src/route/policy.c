/* SPDX-License-Identifier: Apache-2.0 */
/* policy — the maths of retries, hedging and outlier ejection (see policy.h).
 *
 * Everything here is arithmetic on values the caller passes in. Overflow is
 * ruled out by working in 64 bits where a product of two 32-bit values can
 * appear, and by saturating shifts. The latency estimator is a log-linear
 * histogram in microseconds: values below 64 µs get a bucket each, above that
 * every power of two is split into 32 equal buckets, so a bucket is never
 * wider than 1/32 of the values it holds and a quantile read from a bucket's
 * midpoint is within ~1.6% of the exact one.
 */
#include "route/policy.h"

#include <string.h>

#include "base/grpcwire.h"

#define NS_PER_SEC 1000000000ull

uint32_t gw_policy_backoff_ms(unsigned retry, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd)
{
    uint64_t bound;

    /* base << retry saturates at the cap; a 32-bit base shifted by at most 31
     * still fits in 64 bits, and any larger shift is above every cap. */
    if (base_ms == 0)
        bound = 0;
    else if (retry >= 32)
        bound = cap_ms;
    else {
        bound = (uint64_t)base_ms << retry;
        if (bound > cap_ms)
            bound = cap_ms;
    }
    /* Scales rnd from [0, 2^32) onto [0, bound] with a multiply, not a modulo:
     * uniform up to a 2^-32 bias, and rnd = UINT32_MAX reaches bound itself. */
    return (uint32_t)(((uint64_t)rnd * (bound + 1)) >> 32);
}

int gw_policy_pushback_parse(const char *v, size_t len, uint32_t *ms)
{
    uint64_t n = 0;

    if (v == NULL || len == 0)
        return -1;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        /* Saturates instead of wrapping: keep reading so junk after a long
         * run of digits is still rejected. */
        if (n <= UINT32_MAX)
            n = n * 10 + (uint64_t)(v[i] - '0');
    }
    *ms = n > UINT32_MAX ? UINT32_MAX : (uint32_t)n;
    return 0;
}

int gw_policy_attempt_allowed(uint64_t now_ns, uint64_t deadline_ns, uint64_t floor_ns)
{
    if (deadline_ns == 0)
        return 1;
    if (now_ns >= deadline_ns)
        return 0;
    return deadline_ns - now_ns > floor_ns;
}

/* Moves <b>'s one-second windows up to <now_ns> and trims its tokens to the
 * cap: min + percent% of the calls started in the last second, estimated as
 * the current window plus the part of the previous one that still overlaps
 * the last second (the usual sliding-window approximation). */
static void budget_advance(struct gw_budget *b, uint64_t now_ns, unsigned percent, unsigned min)
{
    double recent, cap, overlap;
    uint64_t elapsed;

    if (!b->started) {
        b->started = 1;
        b->tokens = min;
        b->window_start_ns = now_ns;
        b->calls_prev = 0;
        b->calls_cur = 0;
    }
    /* A clock that goes backwards (it should not) only shortens the window. */
    if (now_ns < b->window_start_ns)
        b->window_start_ns = now_ns;
    elapsed = now_ns - b->window_start_ns;
    if (elapsed >= NS_PER_SEC) {
        b->calls_prev = elapsed >= 2 * NS_PER_SEC ? 0 : b->calls_cur;
        b->calls_cur = 0;
        b->window_start_ns += elapsed / NS_PER_SEC * NS_PER_SEC;
        elapsed = now_ns - b->window_start_ns;
    }
    overlap = 1.0 - (double)elapsed / (double)NS_PER_SEC;
    recent = (double)b->calls_cur + (double)b->calls_prev * overlap;
    cap = (double)min + (double)percent / 100.0 * recent;
    if (b->tokens > cap)
        b->tokens = cap;
}

void gw_budget_on_call(struct gw_budget *b, uint64_t now_ns, unsigned percent, unsigned min)
{
    budget_advance(b, now_ns, percent, min);
    if (b->calls_cur < UINT32_MAX)
        b->calls_cur++;
    b->tokens += (double)percent / 100.0;
    /* Trim again: the call just counted raised the cap by exactly what it
     * added, so this only bites when the bucket was already full. */
    budget_advance(b, now_ns, percent, min);
}

int gw_budget_take(struct gw_budget *b, uint64_t now_ns, unsigned percent, unsigned min)
{
    budget_advance(b, now_ns, percent, min);
    if (b->tokens < 1.0)
        return 0;
    b->tokens -= 1.0;
    return 1;
}

/* Bucket of a latency of <us> microseconds. */
static unsigned latency_bucket(uint64_t us)
{
    unsigned msb, shift, idx;

    if (us < 2 * GW_LATENCY_SUB)
        return (unsigned)us;
    msb = 63u - (unsigned)__builtin_clzll(us);
    shift = msb - 5; /* us >> shift is in [32, 64) */
    idx = 2 * GW_LATENCY_SUB + (shift - 1) * GW_LATENCY_SUB +
          (unsigned)((us >> shift) - GW_LATENCY_SUB);
    return idx < GW_LATENCY_BUCKETS ? idx : GW_LATENCY_BUCKETS - 1;
}

/* The midpoint, in nanoseconds, of the values bucket <idx> holds. */
static uint64_t latency_bucket_mid_ns(unsigned idx)
{
    unsigned shift, off;
    uint64_t lo;

    if (idx < 2 * GW_LATENCY_SUB)
        return (uint64_t)idx * 1000 + 500;
    shift = (idx - 2 * GW_LATENCY_SUB) / GW_LATENCY_SUB + 1;
    off = (idx - 2 * GW_LATENCY_SUB) % GW_LATENCY_SUB;
    lo = (uint64_t)(GW_LATENCY_SUB + off) << shift;
    return (lo * 1000) + ((1000ull << shift) / 2);
}

void gw_latency_init(struct gw_latency *l, uint32_t halflife)
{
    for (size_t i = 0; i < GW_LATENCY_BUCKETS; i++)
        l->counts[i] = 0;
    l->total = 0;
    l->halflife = halflife ? halflife : 10000;
    l->since_halving = 0;
}

void gw_latency_add(struct gw_latency *l, uint64_t ns)
{
    l->counts[latency_bucket(ns / 1000)]++;
    l->total++;
    if (++l->since_halving < l->halflife)
        return;
    /* Halving every count keeps the shape and makes old samples weigh half
     * as much after each half-life, so a shifted distribution takes over
     * within a few half-lives. */
    l->since_halving = 0;
    l->total = 0;
    for (size_t i = 0; i < GW_LATENCY_BUCKETS; i++) {
        l->counts[i] >>= 1;
        l->total += l->counts[i];
    }
}

uint64_t gw_latency_quantile(const struct gw_latency *l, double q, uint32_t min_samples)
{
    uint64_t want, seen = 0;

    if (l->total == 0 || l->total < min_samples || !(q > 0.0 && q < 1.0))
        return 0;
    /* The smallest bucket holding the ceil(q·total)-th sample. */
    want = (uint64_t)(q * (double)l->total);
    if ((double)want < q * (double)l->total)
        want++;
    if (want == 0)
        want = 1;
    for (unsigned i = 0; i < GW_LATENCY_BUCKETS; i++) {
        seen += l->counts[i];
        if (seen >= want)
            return latency_bucket_mid_ns(i);
    }
    return latency_bucket_mid_ns(GW_LATENCY_BUCKETS - 1);
}

uint32_t gw_policy_ejection_ms(unsigned times, uint32_t base_ms, uint32_t max_ms)
{
    uint64_t ms = (uint64_t)base_ms * (times ? times : 1);

    return ms > max_ms ? max_ms : (uint32_t)ms;
}

int gw_policy_status_retryable(uint32_t retry_on, int code, int pushback)
{
    if (code <= GW_GRPC_OK || code > GW_GRPC_UNAUTHENTICATED)
        return 0;
    if (code == GW_GRPC_RESOURCE_EXHAUSTED)
        return pushback > 0;
    return (retry_on >> code) & 1;
}

struct gw_retry_decision gw_policy_retry(const struct gw_retry_in *in)
{
    struct gw_retry_decision d = {GW_RETRY_NO, 0};
    if (!in->retryable || !in->replayable || in->attempts >= in->max_attempts)
        return d;
    if (in->pushback < 0) {
        d.verdict = GW_RETRY_NO_PUSHBACK;
        return d;
    }
    d.delay_ms = in->pushback > 0 ? in->pushback_ms
                                  : gw_policy_backoff_ms(in->retries, GW_BACKOFF_BASE_MS,
                                                         GW_BACKOFF_CAP_MS, in->rnd);
    uint64_t at = in->now_ns + (uint64_t)d.delay_ms * 1000000u;
    d.verdict = gw_policy_attempt_allowed(at, in->deadline_ns, in->floor_ns) ? GW_RETRY_AT
                                                                             : GW_RETRY_NO_DEADLINE;
    return d;
}

enum gw_hedge_verdict gw_policy_hedge(const struct gw_hedge_in *in)
{
    if (!in->replayable || in->running != 1 || in->attempts >= (size_t)in->max_attempts + 1)
        return GW_HEDGE_NO;
    if (!gw_policy_attempt_allowed(in->now_ns, in->deadline_ns, in->floor_ns))
        return GW_HEDGE_NO_DEADLINE;
    return GW_HEDGE_GO;
}

/* Whether <path> is listed in the comma list <list>. */
static int path_listed(const char *list, const char *path)
{
    size_t plen = strlen(path);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == plen && memcmp(p, path, n) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

uint64_t gw_policy_hedge_delay_ns(int32_t delay_ms, const struct gw_latency *lat,
                                  uint32_t min_samples, const char *exclude, const char *path)
{
    if (delay_ms == 0 || path_listed(exclude, path))
        return 0;
    if (delay_ms < 0)
        return gw_latency_quantile(lat, 0.95, min_samples);
    return (uint64_t)delay_ms * 1000000u;
}
