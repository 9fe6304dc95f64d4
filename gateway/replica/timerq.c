/* timerq — a binary min-heap of timers for one worker thread (see timerq.h). */
#include "timerq.h"

#include <stdlib.h>

void rp_timerq_init(struct rp_timerq *q)
{
    q->v = NULL;
    q->n = q->cap = 0;
}

void rp_timerq_free(struct rp_timerq *q)
{
    free(q->v);
    rp_timerq_init(q);
}

static void place(struct rp_timerq *q, size_t i, struct rp_timer *t)
{
    q->v[i] = t;
    t->idx = i + 1;
}

static void sift_up(struct rp_timerq *q, size_t i)
{
    struct rp_timer *t = q->v[i];
    while (i > 0) {
        size_t parent = (i - 1) / 2;
        if (q->v[parent]->when_ns <= t->when_ns)
            break;
        place(q, i, q->v[parent]);
        i = parent;
    }
    place(q, i, t);
}

static void sift_down(struct rp_timerq *q, size_t i)
{
    struct rp_timer *t = q->v[i];
    for (;;) {
        size_t child = 2 * i + 1;
        if (child >= q->n)
            break;
        if (child + 1 < q->n && q->v[child + 1]->when_ns < q->v[child]->when_ns)
            child++;
        if (t->when_ns <= q->v[child]->when_ns)
            break;
        place(q, i, q->v[child]);
        i = child;
    }
    place(q, i, t);
}

int rp_timerq_add(struct rp_timerq *q, struct rp_timer *t, uint64_t when_ns)
{
    if (q->n == q->cap) {
        size_t cap = q->cap ? q->cap * 2 : 64;
        struct rp_timer **v = realloc(q->v, cap * sizeof(*v));
        if (!v)
            return -1;
        q->v = v;
        q->cap = cap;
    }
    t->when_ns = when_ns;
    place(q, q->n++, t);
    sift_up(q, q->n - 1);
    return 0;
}

void rp_timerq_cancel(struct rp_timerq *q, struct rp_timer *t)
{
    size_t i;
    struct rp_timer *last;

    if (!t->idx)
        return;
    i = t->idx - 1;
    t->idx = 0;
    last = q->v[--q->n];
    if (i == q->n)
        return;
    /* The last timer takes the freed slot and moves whichever way it must. */
    place(q, i, last);
    if (i > 0 && q->v[(i - 1) / 2]->when_ns > last->when_ns)
        sift_up(q, i);
    else
        sift_down(q, i);
}

uint64_t rp_timerq_next(const struct rp_timerq *q)
{
    return q->n ? q->v[0]->when_ns : UINT64_MAX;
}

struct rp_timer *rp_timerq_pop_expired(struct rp_timerq *q, uint64_t now_ns)
{
    struct rp_timer *t;
    if (!q->n || q->v[0]->when_ns > now_ns)
        return NULL;
    t = q->v[0];
    rp_timerq_cancel(q, t);
    return t;
}
