/* SPDX-License-Identifier: Apache-2.0 */
/* rig_internal — what the engine rig's two files share (tests only):
 * engine_rig.c (worker, client, loop stepping) gives the replicas its
 * socket and output helpers; rig_replica.c (the scripted replicas) gives
 * engine_rig.c their set-up and teardown. Not for tests themselves: they
 * use engine_rig.h.
 */
#ifndef INFERGW_RIG_INTERNAL_H
#define INFERGW_RIG_INTERNAL_H

#include <stddef.h>
#include <stdint.h>

#include "engine_rig.h"

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

/* Output an nghttp2 session produced that the kernel did not take yet. */
struct pend {
    uint8_t *buf;
    size_t len, cap;
};

/* Writes what <s> has to send to <fd>, keeping what the kernel does not take.
 * Returns 1 when output is still pending, 0 when all is written, -1 on error. */
int rig_sess_flush(int fd, nghttp2_session *s, struct pend *p);
/* Sets TCP_NODELAY on <fd> (already non-blocking). Returns 0. */
int rig_set_nonblock_nodelay(int fd);
/* Closes <fd> with a reset, so no TIME_WAIT piles up over many runs. */
void rig_close_rst(int fd);

/* Once per process (rig_global_init): the replicas' session callbacks. */
void rig_replicas_init(void);
/* Makes <r> the rig whose loop serves the replicas (and whose fail_first
 * they count down); NULL after its rig_close. */
void rig_replicas_bind(struct rig *r);
/* Adds <rep>'s listener (rep->lfd) to <loop>. Returns 0 or -1. */
int rig_replica_listen(struct gw_loop *loop, struct rig_replica *rep);
/* Closes <rep>'s connections with a reset and takes its listener off <loop>
 * (the listening socket stays open for the next run). */
void rig_replica_close(struct gw_loop *loop, struct rig_replica *rep);

#endif
