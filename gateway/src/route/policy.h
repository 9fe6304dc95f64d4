/* policy — the maths of retries and hedging, and of outlier ejection: backoff,
 * grpc-retry-pushback-ms, retry/hedge budgets, the deadline floor, and an
 * online latency estimator for "auto" hedge delays and the deadline floor.
 *
 * Pure logic: no I/O, no clock reads (times are passed in), no allocation,
 * so every rule is unit-tested without sockets. Not thread-safe: each worker
 * keeps its own state per pool.
 */
#ifndef INFERGW_POLICY_H
#define INFERGW_POLICY_H

#include <stddef.h>
#include <stdint.h>

#define GW_BACKOFF_BASE_MS 25
#define GW_BACKOFF_CAP_MS  250

/* Full-jitter exponential backoff before retry number <retry> (0 = the
 * first retry): uniform in [0, min(cap_ms, base_ms * 2^retry)], drawn from
 * the 32-bit random number <rnd>. Never overflows for any <retry>. */
uint32_t gw_policy_backoff_ms(unsigned retry, uint32_t base_ms, uint32_t cap_ms, uint32_t rnd);

/* Parses a grpc-retry-pushback-ms value (<len> bytes, not NUL-terminated).
 * Returns 0 with *ms set for a non-negative decimal integer (values above
 * UINT32_MAX clamp to UINT32_MAX), or -1 for anything else (negative, empty,
 * signs, spaces, junk), which means: do not retry. *ms untouched on -1. */
int gw_policy_pushback_parse(const char *v, size_t len, uint32_t *ms);

/* Whether an attempt may start at <now_ns>: the caller's remaining time
 * (deadline_ns - now_ns; deadline_ns 0 = no deadline) must exceed
 * <floor_ns>. Returns 1 or 0. */
int gw_policy_attempt_allowed(uint64_t now_ns, uint64_t deadline_ns, uint64_t floor_ns);

/* A retry or hedge budget: a token bucket that every call started fills by
 * percent/100 of a token and every extra attempt empties by one. It holds at
 * most min + percent/100 × (calls started in the last second), and starts
 * with <min> tokens, so over any run the extra attempts are at most
 * min + percent/100 × calls, and a pool that fails completely gets no storm. */
struct gw_budget {
    double tokens;
    uint64_t window_start_ns; /* one-second windows for the cap */
    uint32_t calls_prev, calls_cur;
    int started;
};

/* Counts a call started at <now_ns> (adds percent/100 of a token). */
void gw_budget_on_call(struct gw_budget *b, uint64_t now_ns, unsigned percent, unsigned min);
/* Takes one token for an extra attempt. Returns 1 when allowed, 0 when the
 * budget is spent (nothing taken). */
int gw_budget_take(struct gw_budget *b, uint64_t now_ns, unsigned percent, unsigned min);

/* An online latency estimator: a log-linear histogram (buckets at most
 * 1/32 of their value wide) whose counts are halved every <half-life> of
 * samples, so it follows a pool whose latency changes. Fixed size, embeddable. */
#define GW_LATENCY_SUB     32
#define GW_LATENCY_BUCKETS (64 + 40 * GW_LATENCY_SUB) /* 1 µs .. ~2^46 µs */
struct gw_latency {
    uint32_t counts[GW_LATENCY_BUCKETS];
    uint64_t total;    /* samples held: the sum of counts, after halvings */
    uint32_t halflife; /* samples between halvings */
    uint32_t since_halving;
};

/* Prepares <l>; <halflife> samples between halvings (0 = 10000). */
void gw_latency_init(struct gw_latency *l, uint32_t halflife);
/* Records one latency of <ns> nanoseconds. */
void gw_latency_add(struct gw_latency *l, uint64_t ns);
/* The <q> quantile (0 < q < 1) in nanoseconds, or 0 while fewer than
 * <min_samples> samples are held. */
uint64_t gw_latency_quantile(const struct gw_latency *l, double q, uint32_t min_samples);

/* How long an outlier stays ejected the <times>-th time (1 = first):
 * base_ms × times, at most max_ms. */
uint32_t gw_policy_ejection_ms(unsigned times, uint32_t base_ms, uint32_t max_ms);

#endif
