/* SPDX-License-Identifier: Apache-2.0 */
/* timer — a binary min-heap of timers, one per worker thread.
 *
 * The heap holds pointers to timers embedded in their owners; each timer
 * records its slot (plus one, so 0 means "not armed"), which makes cancel and
 * re-arm O(log n) without searching. The array only grows (doubling), so
 * once a worker has seen its peak number of armed timers, arming never
 * allocates again. Ordering is by when_ns alone; ties come out in whatever
 * order the heap leaves them, which callers must not rely on.
 */
#include "base/timer.h"
#include "base/mem.h"

#include <errno.h>
#include <time.h>

#define TIMER_HEAP_MIN_CAP 16

uint64_t gw_now_ns(void)
{
    struct timespec ts;

    /* CLOCK_MONOTONIC cannot fail with a valid pointer on Linux. */
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

uint64_t gw_realtime_ms(void)
{
    struct timespec ts;

    clock_gettime(CLOCK_REALTIME, &ts);
    return (uint64_t)ts.tv_sec * 1000u + (uint64_t)ts.tv_nsec / 1000000u;
}

void gw_timer_init(struct gw_timer *t, gw_timer_cb cb, void *arg)
{
    t->when_ns = 0;
    t->idx = 0;
    t->cb = cb;
    t->arg = arg;
}

void gw_timer_heap_init(struct gw_timer_heap *h)
{
    h->v = NULL;
    h->n = 0;
    h->cap = 0;
}

void gw_timer_heap_free(struct gw_timer_heap *h)
{
    /* Timers still armed are disarmed so their owners can tell. */
    for (size_t i = 0; i < h->n; i++)
        h->v[i]->idx = 0;
    gw_free(h->v);
    gw_timer_heap_init(h);
}

/* Puts <t> in slot <i> and records the slot in the timer. */
static void heap_place(struct gw_timer_heap *h, size_t i, struct gw_timer *t)
{
    h->v[i] = t;
    t->idx = i + 1;
}

/* Moves the timer in slot <i> towards the root while it is earlier than its
 * parent. */
static void heap_sift_up(struct gw_timer_heap *h, size_t i)
{
    struct gw_timer *t = h->v[i];

    while (i > 0) {
        size_t parent = (i - 1) / 2;

        if (h->v[parent]->when_ns <= t->when_ns)
            break;
        heap_place(h, i, h->v[parent]);
        i = parent;
    }
    heap_place(h, i, t);
}

/* Moves the timer in slot <i> towards the leaves while a child is earlier. */
static void heap_sift_down(struct gw_timer_heap *h, size_t i)
{
    struct gw_timer *t = h->v[i];

    for (;;) {
        size_t child = 2 * i + 1;

        if (child >= h->n)
            break;
        if (child + 1 < h->n && h->v[child + 1]->when_ns < h->v[child]->when_ns)
            child++;
        if (t->when_ns <= h->v[child]->when_ns)
            break;
        heap_place(h, i, h->v[child]);
        i = child;
    }
    heap_place(h, i, t);
}

/* Restores the heap order around slot <i> after its timer changed. */
static void heap_fix(struct gw_timer_heap *h, size_t i)
{
    if (i > 0 && h->v[(i - 1) / 2]->when_ns > h->v[i]->when_ns)
        heap_sift_up(h, i);
    else
        heap_sift_down(h, i);
}

/* Removes the timer in slot <i>: the last timer takes its place. */
static void heap_remove_at(struct gw_timer_heap *h, size_t i)
{
    struct gw_timer *t = h->v[i];
    struct gw_timer *last = h->v[--h->n];

    t->idx = 0;
    if (i < h->n) {
        heap_place(h, i, last);
        heap_fix(h, i);
    }
}

int gw_timer_heap_add(struct gw_timer_heap *h, struct gw_timer *t, uint64_t when_ns)
{
    if (gw_timer_armed(t)) {
        t->when_ns = when_ns;
        heap_fix(h, t->idx - 1);
        return 0;
    }
    if (h->n == h->cap) {
        size_t cap = h->cap ? h->cap * 2 : TIMER_HEAP_MIN_CAP;
        struct gw_timer **v;

        if (cap < h->cap || cap > SIZE_MAX / sizeof(*v))
            return -ENOMEM;
        v = gw_realloc(h->v, cap * sizeof(*v));
        if (!v)
            return -ENOMEM;
        h->v = v;
        h->cap = cap;
    }
    t->when_ns = when_ns;
    heap_place(h, h->n, t);
    h->n++;
    heap_sift_up(h, h->n - 1);
    return 0;
}

void gw_timer_heap_cancel(struct gw_timer_heap *h, struct gw_timer *t)
{
    if (gw_timer_armed(t))
        heap_remove_at(h, t->idx - 1);
}

uint64_t gw_timer_heap_next(const struct gw_timer_heap *h)
{
    return h->n ? h->v[0]->when_ns : UINT64_MAX;
}

struct gw_timer *gw_timer_heap_pop_expired(struct gw_timer_heap *h, uint64_t now_ns)
{
    struct gw_timer *t;

    if (h->n == 0 || h->v[0]->when_ns > now_ns)
        return NULL;
    t = h->v[0];
    heap_remove_at(h, 0);
    return t;
}
