/* SPDX-License-Identifier: Apache-2.0 */
/* stopper — a helper thread that can be told to stop at once: a stop flag,
 * an eventfd its waits poll beside their own descriptors, and the thread's
 * start and join. Shared by the control plane's threads (the Redis watcher,
 * the KV event reader) so each stops the same way: the flag is set, the
 * eventfd wakes any poll, the thread is joined.
 */
#ifndef INFERGW_STOPPER_H
#define INFERGW_STOPPER_H

#include <pthread.h>
#include <stdatomic.h>

struct gw_stopper {
    pthread_t thread;
    int started;
    int fd; /* eventfd: readable once stopping; poll it beside your own */
    atomic_int stop;
};

/* Opens the eventfd. Returns 0, or -errno (the stopper is then inert). */
int gw_stopper_init(struct gw_stopper *s);
/* Starts fn(arg) on a thread. Returns 0 or pthread_create's error. */
int gw_stopper_start(struct gw_stopper *s, void *(*fn)(void *), void *arg);
/* Sleeps up to <ms> unless asked to stop. Returns 1 when stopping. */
int gw_stopper_wait(struct gw_stopper *s, int ms);
/* Whether the thread is asked to stop. */
static inline int gw_stopper_stopping(struct gw_stopper *s)
{
    return atomic_load(&s->stop);
}
/* Asks the thread to stop, joins it, closes the eventfd. Idempotent. */
void gw_stopper_stop(struct gw_stopper *s);

#endif
