/* SPDX-License-Identifier: Apache-2.0 */
/* timer — a binary min-heap of timers, one per worker thread.
 *
 * Timers are embedded in the objects they belong to (a call, a connection),
 * so arming one never allocates once the heap has grown; cancelling is
 * O(log n) through the index each timer keeps of its heap slot. Times are
 * CLOCK_MONOTONIC nanoseconds (gw_now_ns). Pure logic, no I/O: the worker's
 * epoll loop asks gw_timer_heap_next() how long it may sleep and pops expired
 * timers with gw_timer_heap_pop_expired(). Not thread-safe: a heap belongs to
 * one thread.
 */
#ifndef INFERGW_TIMER_H
#define INFERGW_TIMER_H

#include <stddef.h>
#include <stdint.h>

struct gw_timer;
typedef void (*gw_timer_cb)(struct gw_timer *t, void *arg);

struct gw_timer {
    uint64_t when_ns; /* expiry, monotonic ns; valid while armed */
    size_t idx;       /* slot in the heap + 1; 0 = not armed */
    gw_timer_cb cb;
    void *arg;
};

struct gw_timer_heap {
    struct gw_timer **v;
    size_t n, cap;
};

/* Monotonic clock in nanoseconds. */
uint64_t gw_now_ns(void);
/* Wall clock (CLOCK_REALTIME) in milliseconds since the epoch, for what is
 * shown to people and other hosts (status pages, reports). */
uint64_t gw_realtime_ms(void);

void gw_timer_init(struct gw_timer *t, gw_timer_cb cb, void *arg);
static inline int gw_timer_armed(const struct gw_timer *t)
{
    return t->idx != 0;
}

void gw_timer_heap_init(struct gw_timer_heap *h);
/* Frees the heap's array; the timers themselves belong to their owners. */
void gw_timer_heap_free(struct gw_timer_heap *h);

/* Arms <t> to fire at <when_ns>, re-arming it if already armed.
 * Returns 0, or -ENOMEM when the heap could not grow (t is left unarmed). */
int gw_timer_heap_add(struct gw_timer_heap *h, struct gw_timer *t, uint64_t when_ns);
/* Disarms <t>; a no-op when it is not armed. */
void gw_timer_heap_cancel(struct gw_timer_heap *h, struct gw_timer *t);
/* The earliest expiry, or UINT64_MAX when no timer is armed. */
uint64_t gw_timer_heap_next(const struct gw_timer_heap *h);
/* Removes and returns one timer with when_ns <= now_ns (disarmed, callback
 * not run), or NULL when none has expired. Timers with equal expiry come out
 * in no particular order. */
struct gw_timer *gw_timer_heap_pop_expired(struct gw_timer_heap *h, uint64_t now_ns);

#endif
