/* conn — the socket side of an HTTP/2 connection, shared by client-facing
 * (h2srv) and replica-facing (upstream) connections.
 *
 * It reads at most GW_CONN_READ bytes per wake-up into nghttp2_session_mem_recv,
 * and writes what nghttp2_session_mem_send produces through one buffer, at
 * most one write(2) per flush, waiting for EPOLLOUT when the kernel is full
 * (and producing no more frames meanwhile, so output memory stays bounded).
 *
 * Closing is deferred: gw_conn_close() only records the reason and marks the
 * connection dirty; the loop's flush phase (gw_conn_flush_dirty) then calls
 * the owner's on_close outside every nghttp2 callback, where the owner may
 * delete the session and free the connection. Loop thread only.
 */
#ifndef INFERGW_CONN_H
#define INFERGW_CONN_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

#include "loop.h"

#define GW_CONN_READ 65536
#define GW_CONN_WBUF 65536

struct gw_conn;

struct gw_conn_ops {
    /* The connection is finished (peer closed, I/O or protocol error, or
     * gw_conn_close). The owner tears down its state; the fd is already
     * closed. <reason> is a static or conn-owned string. */
    void (*on_close)(struct gw_conn *c, const char *reason);
    /* A non-blocking connect completed (upstream only; may be NULL). */
    void (*on_connected)(struct gw_conn *c);
};

struct gw_conn {
    struct gw_io io;
    struct gw_loop *loop;
    nghttp2_session *sess;
    const struct gw_conn_ops *ops;
    void *owner;
    uint8_t *wbuf;
    size_t wlen, woff, wcap;
    struct gw_conn *dirty_next;
    unsigned dirty : 1;
    unsigned connecting : 1;
    unsigned closing : 1; /* close requested, on_close pending */
    unsigned closed : 1;  /* fd closed, on_close ran */
    const char *close_reason;
    char errbuf[96]; /* close reasons built at run time */
};

/* Sets up <c> around connected (or connecting, if <connecting>) socket <fd>
 * and registers it with <loop>. The session is the owner's to create and
 * assign to c->sess before the first event. Returns 0 or a negative errno
 * (fd not registered; the caller closes it). */
int gw_conn_init(struct gw_conn *c, struct gw_loop *loop, int fd, int connecting,
                 const struct gw_conn_ops *ops, void *owner);
/* Queues <c> for the flush phase of this loop iteration. */
void gw_conn_mark_dirty(struct gw_conn *c);
/* Requests an orderly close; the owner's on_close runs in the flush phase. */
void gw_conn_close(struct gw_conn *c, const char *reason);
/* Frees the write buffer; call from on_close after the session is deleted. */
void gw_conn_release(struct gw_conn *c);
/* The call a stream of session <s> belongs to (its stream user data), or
 * NULL for stream 0 and streams without one. */
static inline void *gw_conn_stream_data(nghttp2_session *s, int32_t sid)
{
    return sid > 0 ? nghttp2_session_get_stream_user_data(s, sid) : NULL;
}

/* Flushes every dirty connection of <loop> (called by the loop). */
void gw_conn_flush_dirty(struct gw_loop *loop);

#endif
