/* timerq — a binary min-heap of timers for one worker thread.
 *
 * grpc core 1.51 has no timer or alarm API in C, so each worker keeps its
 * own heap and sleeps in grpc_completion_queue_next() no longer than the
 * earliest expiry. Timers are embedded in the objects they delay (a call),
 * so arming one allocates only when the heap grows; cancelling is O(log n)
 * through the slot index each timer keeps. Not thread-safe: a heap belongs
 * to one thread.
 */
#ifndef INFERGW_REPLICA_TIMERQ_H
#define INFERGW_REPLICA_TIMERQ_H

#include <stddef.h>
#include <stdint.h>

struct rp_timer {
    uint64_t when_ns; /* expiry in the caller's clock; valid while armed */
    size_t idx;       /* heap slot + 1; 0 = not armed */
};

struct rp_timerq {
    struct rp_timer **v;
    size_t n, cap;
};

void rp_timerq_init(struct rp_timerq *q);
/* Frees the heap's array; the timers belong to their owners. */
void rp_timerq_free(struct rp_timerq *q);

static inline int rp_timer_armed(const struct rp_timer *t)
{
    return t->idx != 0;
}

/* Arms <t> (which must not be armed) to expire at <when_ns>.
 * Returns 0, or -1 when the heap could not grow (t stays unarmed). */
int rp_timerq_add(struct rp_timerq *q, struct rp_timer *t, uint64_t when_ns);
/* Disarms <t>; a no-op when it is not armed. */
void rp_timerq_cancel(struct rp_timerq *q, struct rp_timer *t);
/* The earliest expiry, or UINT64_MAX when nothing is armed. */
uint64_t rp_timerq_next(const struct rp_timerq *q);
/* Disarms and returns one timer with when_ns <= now_ns, or NULL. */
struct rp_timer *rp_timerq_pop_expired(struct rp_timerq *q, uint64_t now_ns);

#endif
