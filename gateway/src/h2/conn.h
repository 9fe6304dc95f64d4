/* SPDX-License-Identifier: Apache-2.0 */
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
 *
 * TLS sits here, under both kinds of connection: with an SSL attached
 * (gw_conn_tls_start) the same read and write paths go through SSL_read and
 * SSL_write on the non-blocking socket. The handshake runs from epoll events
 * (WANT_READ / WANT_WRITE either way, also in the middle of SSL_read or
 * SSL_write, e.g. a TLS 1.3 key update) and never blocks the loop; nothing
 * is produced for the session until it is done, and ALPN "h2" must have been
 * agreed. A server-side handshake has a deadline (a timer), so idle sockets
 * that never finish one cannot pile up. Reads drain what OpenSSL buffered
 * (read-ahead) before returning to epoll, since epoll cannot see those bytes.
 *
 * When nghttp2 refuses the peer's bytes (a protocol error, a flood, a bad
 * preface), the session is terminated with the matching GOAWAY code and the
 * close flushes what the session still has queued (that GOAWAY, with its
 * reason) in one last write before the socket goes: the peer learns why.
 *
 * Header blocks are decoded one at a time per connection (HPACK forbids
 * interleaving), so the budget the owners count a block against
 * (hdrlist.h) lives here, reset at each block's first frame.
 */
#ifndef INFERGW_CONN_H
#define INFERGW_CONN_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <stddef.h>
#include <stdint.h>

#include "base/hdrlist.h"
#include "h2/loop.h"

#define GW_CONN_READ 65536
#define GW_CONN_WBUF 65536

struct gw_conn;

struct gw_conn_ops {
    /* The connection is finished (peer closed, I/O or protocol error, or
     * gw_conn_close). The owner tears down its state; the fd is already
     * closed. <reason> is a static or conn-owned string. */
    void (*on_close)(struct gw_conn *c, const char *reason);
    /* A non-blocking connect completed, and with TLS its handshake too
     * (upstream only; may be NULL). */
    void (*on_connected)(struct gw_conn *c);
    /* The TLS handshake ended (may be NULL): <fail> is -1 when it succeeded
     * with ALPN h2, else an enum gw_metrics_tls_fail value with <detail>
     * saying why (the connection then closes). On success, returning -1
     * refuses the peer and closes the connection. */
    int (*on_tls_handshake)(struct gw_conn *c, int fail, const char *detail);
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
    unsigned closing : 1;              /* close requested, on_close pending */
    unsigned closed : 1;               /* fd closed, on_close ran */
    unsigned tls_hs : 1;               /* TLS handshake in progress */
    unsigned tls_fatal : 1;            /* a TLS error: no close_notify */
    unsigned tls_read_wants_write : 1; /* SSL_read must be retried on EPOLLOUT */
    unsigned tls_write_wants_read : 1; /* SSL_write must be retried after EPOLLIN */
    unsigned flush_on_close : 1;       /* send what the session has queued before closing */
    SSL *ssl;                          /* TLS on this connection, owned; NULL = cleartext */
    struct gw_timer tls_timer;         /* handshake deadline (server side) */
    struct gw_hdr_budget hdr_budget;   /* the header block being decoded */
    const char *close_reason;
    char errbuf[160]; /* close reasons built at run time */
};

/* Sets up <c> around connected (or connecting, if <connecting>) socket <fd>
 * and registers it with <loop>. The session is the owner's to create and
 * assign to c->sess before the first event. Returns 0 or a negative errno
 * (fd not registered; the caller closes it). */
int gw_conn_init(struct gw_conn *c, struct gw_loop *loop, int fd, int connecting,
                 const struct gw_conn_ops *ops, void *owner);
/* Puts TLS on <c> (right after gw_conn_init, before any event): <ssl>
 * (takes ownership in every case) runs the client side of the handshake if
 * <client>, else the server side, which must end within <timeout_ns>
 * (0 = no deadline). Returns 0 or a negative errno. */
int gw_conn_tls_start(struct gw_conn *c, SSL *ssl, int client, uint64_t timeout_ns);
/* Queues <c> for the flush phase of this loop iteration. */
void gw_conn_mark_dirty(struct gw_conn *c);
/* Requests an orderly close; the owner's on_close runs in the flush phase. */
void gw_conn_close(struct gw_conn *c, const char *reason);
/* The same, after sending what the session has queued (a GOAWAY submitted
 * just before, and frames ahead of it), as far as one write takes it. */
void gw_conn_close_flush(struct gw_conn *c, const char *reason);
/* Frees the write buffer and the SSL; call from on_close after the session
 * is deleted. */
void gw_conn_release(struct gw_conn *c);
/* The call a stream of session <s> belongs to (its stream user data), or
 * NULL for stream 0 and streams without one. */
static inline void *gw_conn_stream_data(nghttp2_session *s, int32_t sid)
{
    return sid > 0 ? nghttp2_session_get_stream_user_data(s, sid) : NULL;
}

/* HPACK dynamic table size, both ways (the RFC's default, said explicitly). */
#define GW_HPACK_TABLE_SIZE 4096

/* Sets the limits every session has, client and replica alike, in session
 * options <opt>: CONTINUATION, SETTINGS and ACK floods; HPACK: our
 * encoder's table, the largest block we encode (what was accepted within
 * <max_header_list_bytes>, plus slack), and white-space validation of
 * values kept on. */
void gw_conn_set_session_limits(nghttp2_option *opt, uint32_t max_header_list_bytes);

/* Flushes every dirty connection of <loop> (called by the loop). */
void gw_conn_flush_dirty(struct gw_loop *loop);

#endif
