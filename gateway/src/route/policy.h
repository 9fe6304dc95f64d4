/* SPDX-License-Identifier: Apache-2.0 */
/* policy — the maths of retries and hedging, and of outlier ejection: backoff,
 * grpc-retry-pushback-ms, retry/hedge budgets, the deadline floor, an
 * online latency estimator for "auto" hedge delays and the deadline floor,
 * and the retry and hedge decisions themselves (gw_policy_retry,
 * gw_policy_hedge): plain inputs in, a decision out; the call engine
 * gathers the inputs and carries the decision out (budgets last).
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

/* Whether final status <code> of an attempt may be retried: listed in the
 * pool's <retry_on> mask (bit 1 << code), or RESOURCE_EXHAUSTED with a valid
 * grpc-retry-pushback-ms (<pushback> > 0). OK and unknown codes never. */
int gw_policy_status_retryable(uint32_t retry_on, int code, int pushback);

/* What a call whose last attempt failed (none still running, no retry
 * pending) knows when it decides whether to retry. */
struct gw_retry_in {
    int retryable;         /* the failure may go to another replica (and the pool exists) */
    int replayable;        /* the request log still holds the whole request */
    size_t attempts;       /* attempts started so far */
    unsigned max_attempts; /* the pool's retry_max_attempts */
    int pushback;          /* grpc-retry-pushback-ms: 0 none, 1 valid, -1 malformed/negative */
    uint32_t pushback_ms;  /* its value when valid (already capped) */
    unsigned retries;      /* retries started so far (the backoff's exponent) */
    uint32_t rnd;          /* a random number for the jitter */
    uint64_t now_ns;
    uint64_t deadline_ns; /* 0 = none */
    uint64_t floor_ns;    /* the deadline floor (the pool's observed p50, 0 until known) */
};

enum gw_retry_verdict {
    GW_RETRY_AT,          /* retry after delay_ms, if the retry budget has a token */
    GW_RETRY_NO,          /* not retryable, not replayable, or out of attempts */
    GW_RETRY_NO_PUSHBACK, /* the replica sent a malformed or negative pushback */
    GW_RETRY_NO_DEADLINE, /* the retry would start too close to the deadline */
};

struct gw_retry_decision {
    enum gw_retry_verdict verdict;
    uint32_t delay_ms; /* GW_RETRY_AT: the pushback, else a full-jitter backoff */
};

/* Decides a retry (the budget is the caller's to take, last). */
struct gw_retry_decision gw_policy_retry(const struct gw_retry_in *in);

/* What a call knows when its hedge timer fires. */
struct gw_hedge_in {
    int replayable;        /* the request log still holds the whole request */
    size_t running;        /* attempts still waiting for an outcome */
    size_t attempts;       /* attempts started so far */
    unsigned max_attempts; /* the pool's retry_max_attempts (a hedge may add one) */
    uint64_t now_ns;
    uint64_t deadline_ns; /* 0 = none */
    uint64_t floor_ns;    /* the deadline floor */
};

enum gw_hedge_verdict {
    GW_HEDGE_GO,          /* start a hedge, if the hedge budget has a token */
    GW_HEDGE_NO,          /* not replayable, not exactly one attempt running, or no room */
    GW_HEDGE_NO_DEADLINE, /* too close to the deadline */
};

/* Decides a hedge (the budget is the caller's to take, last). */
enum gw_hedge_verdict gw_policy_hedge(const struct gw_hedge_in *in);

/* The hedge delay of a call, in ns; 0 = no hedge. <delay_ms> is the pool's
 * hedge_delay_ms: 0 off, -1 auto (the p95 of <lat>, 0 while it holds fewer
 * than <min_samples> samples), else milliseconds. A <path> listed in the
 * comma list <exclude> (hedge_exclude) is never hedged. */
uint64_t gw_policy_hedge_delay_ns(int32_t delay_ms, const struct gw_latency *lat,
                                  uint32_t min_samples, const char *exclude, const char *path);

/* How long an outlier stays ejected the <times>-th time (1 = first):
 * base_ms × times, at most max_ms. */
uint32_t gw_policy_ejection_ms(unsigned times, uint32_t base_ms, uint32_t max_ms);

#endif
