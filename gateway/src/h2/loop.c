/* SPDX-License-Identifier: Apache-2.0 */
/* loop — epoll + timer heap + dirty-connection flush; see loop.h.
 *
 * Level-triggered epoll: a readable connection does one read per wake-up, so
 * one busy client cannot starve the others on the same worker. */
#include "h2/loop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

static void loop_wake_readable(struct gw_io *io, uint32_t events)
{
    struct gw_loop *loop = (struct gw_loop *)((char *)io - offsetof(struct gw_loop, wake_io));
    uint64_t v;
    ssize_t r = read(io->fd, &v, sizeof(v));
    (void)r;
    if (loop->on_wake)
        loop->on_wake(loop);
}

int gw_loop_init(struct gw_loop *loop, gw_loop_wake_cb on_wake, void *owner)
{
    memset(loop, 0, sizeof(*loop));
    gw_timer_heap_init(&loop->timers);
    loop->epfd = epoll_create1(EPOLL_CLOEXEC);
    if (loop->epfd < 0)
        return -errno;
    int efd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
    if (efd < 0) {
        int e = -errno;
        close(loop->epfd);
        return e;
    }
    loop->on_wake = on_wake;
    loop->owner = owner;
    loop->now_ns = gw_now_ns();
    loop->rng = loop->now_ns ^ (uint64_t)(uintptr_t)loop ^ 0x9e3779b97f4a7c15ULL;
    int rc = gw_loop_add(loop, &loop->wake_io, efd, EPOLLIN, loop_wake_readable);
    if (rc < 0) {
        close(efd);
        close(loop->epfd);
        return rc;
    }
    return 0;
}

void gw_loop_free(struct gw_loop *loop)
{
    if (loop->wake_io.fd >= 0)
        close(loop->wake_io.fd);
    if (loop->epfd >= 0)
        close(loop->epfd);
    gw_timer_heap_free(&loop->timers);
}

int gw_loop_add(struct gw_loop *loop, struct gw_io *io, int fd, uint32_t events, gw_io_cb cb)
{
    io->fd = fd;
    io->events = events;
    io->cb = cb;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
        return -errno;
    return 0;
}

int gw_loop_mod(struct gw_loop *loop, struct gw_io *io, uint32_t events)
{
    if (io->events == events)
        return 0;
    struct epoll_event ev = {.events = events, .data.ptr = io};
    if (epoll_ctl(loop->epfd, EPOLL_CTL_MOD, io->fd, &ev) < 0)
        return -errno;
    io->events = events;
    return 0;
}

void gw_loop_del(struct gw_loop *loop, struct gw_io *io)
{
    epoll_ctl(loop->epfd, EPOLL_CTL_DEL, io->fd, NULL);
}

int gw_loop_timer_in(struct gw_loop *loop, struct gw_timer *t, uint64_t delay_ns)
{
    return gw_timer_heap_add(&loop->timers, t, loop->now_ns + delay_ns);
}

int gw_loop_timer_at(struct gw_loop *loop, struct gw_timer *t, uint64_t when_ns)
{
    return gw_timer_heap_add(&loop->timers, t, when_ns);
}

void gw_loop_timer_cancel(struct gw_loop *loop, struct gw_timer *t)
{
    gw_timer_heap_cancel(&loop->timers, t);
}

void gw_loop_wake(struct gw_loop *loop)
{
    uint64_t one = 1;
    ssize_t r = write(loop->wake_io.fd, &one, sizeof(one));
    (void)r;
}

uint32_t gw_loop_rand(struct gw_loop *loop)
{
    uint64_t x = loop->rng;
    x ^= x << 13;
    x ^= x >> 7;
    x ^= x << 17;
    loop->rng = x;
    return (uint32_t)(x >> 32);
}

static void loop_run_timers(struct gw_loop *loop)
{
    struct gw_timer *t;
    while ((t = gw_timer_heap_pop_expired(&loop->timers, loop->now_ns)) != NULL)
        t->cb(t, t->arg);
}

int gw_loop_run_once(struct gw_loop *loop, int max_wait_ms)
{
    struct epoll_event evs[64];
    int timeout_ms = -1;
    uint64_t next = gw_timer_heap_next(&loop->timers);
    if (loop->dirty) {
        timeout_ms = 0;
    } else if (next != UINT64_MAX) {
        uint64_t now = gw_now_ns();
        /* Round up so a timer never fires early and spins the loop. */
        timeout_ms = next <= now ? 0 : (int)((next - now + 999999) / 1000000);
    }
    if (max_wait_ms >= 0 && (timeout_ms < 0 || timeout_ms > max_wait_ms))
        timeout_ms = max_wait_ms;
    int n = epoll_wait(loop->epfd, evs, 64, timeout_ms);
    loop->now_ns = gw_now_ns();
    for (int i = 0; i < n; i++) {
        struct gw_io *io = evs[i].data.ptr;
        io->cb(io, evs[i].events);
    }
    loop_run_timers(loop);
    if (loop->dirty && loop->flush_dirty)
        loop->flush_dirty(loop);
    return n > 0 ? n : 0;
}

void gw_loop_run(struct gw_loop *loop)
{
    while (!loop->stop)
        gw_loop_run_once(loop, -1);
}
