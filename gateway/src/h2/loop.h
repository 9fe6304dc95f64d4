/* SPDX-License-Identifier: Apache-2.0 */
/* loop — one epoll event loop per worker thread.
 *
 * A loop owns an epoll instance, the worker's timer heap, an eventfd other
 * threads use to wake it (gw_loop_wake), and the list of HTTP/2 connections
 * with output pending ("dirty"), which the connection layer (conn.h) keeps
 * and flushes through the flush_dirty callback it registers: the loop knows
 * nothing of connections. One iteration: wait for events (no longer than the
 * next timer), run their callbacks, run expired timers, then flush every
 * dirty connection once — so frames produced by several callbacks leave
 * in one write per connection. Everything here runs on the loop's own thread,
 * except gw_loop_wake.
 */
#ifndef INFERGW_LOOP_H
#define INFERGW_LOOP_H

#include <stdint.h>

#include "base/timer.h"

struct gw_io;
typedef void (*gw_io_cb)(struct gw_io *io, uint32_t events);

/* An fd watched by a loop; embed it in the object that owns the fd. */
struct gw_io {
    int fd;
    uint32_t events;
    gw_io_cb cb;
};

struct gw_conn;
struct gw_loop;
typedef void (*gw_loop_wake_cb)(struct gw_loop *loop);

struct gw_loop {
    int epfd;
    struct gw_timer_heap timers;
    uint64_t now_ns; /* refreshed once per iteration */
    int stop;
    struct gw_conn *dirty; /* connections to flush, linked by gw_conn.dirty_next */
    /* Flushes <dirty>; set by the connection layer when it first marks one. */
    void (*flush_dirty)(struct gw_loop *loop);
    struct gw_io wake_io; /* eventfd */
    gw_loop_wake_cb on_wake;
    void *owner;
    uint64_t rng; /* xorshift state, for picks that need no quality */
};

/* Returns 0, or a negative errno. */
int gw_loop_init(struct gw_loop *loop, gw_loop_wake_cb on_wake, void *owner);
void gw_loop_free(struct gw_loop *loop);

/* Adds, changes or removes an fd. Return 0 or a negative errno. */
int gw_loop_add(struct gw_loop *loop, struct gw_io *io, int fd, uint32_t events, gw_io_cb cb);
int gw_loop_mod(struct gw_loop *loop, struct gw_io *io, uint32_t events);
void gw_loop_del(struct gw_loop *loop, struct gw_io *io);

/* Arms <t> <delay_ns> from the loop's current time. Returns 0 or -ENOMEM. */
int gw_loop_timer_in(struct gw_loop *loop, struct gw_timer *t, uint64_t delay_ns);
int gw_loop_timer_at(struct gw_loop *loop, struct gw_timer *t, uint64_t when_ns);
void gw_loop_timer_cancel(struct gw_loop *loop, struct gw_timer *t);

/* Runs until loop->stop is set. */
void gw_loop_run(struct gw_loop *loop);
/* Runs one iteration, waiting for events no longer than the next timer and
 * than <max_wait_ms> (-1: no bound of its own). Returns how many fd events
 * were handled. For tests that drive a loop step by step. */
int gw_loop_run_once(struct gw_loop *loop, int max_wait_ms);
/* Wakes the loop from any thread; on_wake runs on the loop's thread. */
void gw_loop_wake(struct gw_loop *loop);
/* A pseudo-random 32-bit number (not for security). */
uint32_t gw_loop_rand(struct gw_loop *loop);

#endif
