/* SPDX-License-Identifier: Apache-2.0 */
/* h2srv — the client-facing HTTP/2 server: accepting connections and the
 * nghttp2 server session callbacks, which hand stream events to the engine
 * behind them through the stream callbacks (gw_srv_stream_ops) the worker
 * registers (the call engine's, call.h); this module knows no call.
 *
 * Sessions are created with automatic WINDOW_UPDATE off (the call engine
 * consumes bytes only once a replica took them), SETTINGS that bound what a
 * client can make the gateway hold (max concurrent streams, initial window,
 * header list size), and nghttp2's rapid-reset and CONTINUATION-flood limits
 * set on purpose.
 *
 * With --tls-cert, each accepted socket gets an SSL from the worker's current
 * context (conn.c runs the handshake); the HTTP/2 session exists from the
 * start but nothing flows until the handshake is done. Handshake failures are
 * counted by reason and logged with the peer address. After a client
 * certificate verified (mutual TLS), its identity is copied onto the
 * connection (peer_cn, peer_sans) for the authentication chain.
 *
 * Limits of the client edge (docs/limits.md), each counted in
 * infergw_limit_hits_total and logged at most once a second per worker:
 * - every header block is counted while HPACK decodes it (RFC 9113 section
 *   6.5.2 size and field count, hdrlist.h): past --max-header-list-bytes or
 *   --max-header-count nothing more of it is copied, and a request is
 *   refused with RESOURCE_EXHAUSTED (then RST_STREAM NO_ERROR, so the call
 *   goes at once even when the client never ends its stream); a block more
 *   than twice over is HPACK amplification, not a careless client: its
 *   stream is reset at once (ENHANCE_YOUR_CALM) and nghttp2 decodes the rest
 *   without calling back or validating, so it costs no CPU either;
 * - --max-conns (all workers) and --max-conns-per-worker: a connection past
 *   either is accepted and closed at once;
 * - accept failing for lack of descriptors (EMFILE, ENFILE, ENOBUFS, ENOMEM)
 *   takes the listener out of epoll for GW_ACCEPT_PAUSE_MS, so a
 *   level-triggered listener never spins;
 * - one timer per connection: until the first frame, --preface-timeout-ms
 *   (closed); then --idle-timeout-ms without calls or frames (GOAWAY
 *   NO_ERROR, then closed). It is re-armed lazily (a frame only stamps the
 *   time), so busy connections cost no timer work per frame.
 * Loop thread only.
 */
#ifndef INFERGW_H2SRV_H
#define INFERGW_H2SRV_H

#include "h2/conn.h"

struct gw_worker;
struct gw_srv_conn;

/* One client stream as the engine behind the server keeps it (embedded in
 * its owner; h2srv lists a connection's streams to end them with it). */
struct gw_srv_stream {
    void *user;                        /* the owner */
    int32_t sid;                       /* client stream id */
    struct gw_srv_stream *prev, *next; /* in the connection's list */
};

/* What the engine does with client stream events (from the nghttp2 server
 * session callbacks). */
struct gw_srv_stream_ops {
    /* A client opened stream <sid> on <sc>: the owner's stream, added to
     * sc's list (gw_srv_conn_add_stream), or NULL without memory (the
     * stream is refused). */
    struct gw_srv_stream *(*open)(struct gw_srv_conn *sc, int32_t sid);
    /* One request header field; a negative return resets the stream. */
    int (*on_header)(struct gw_srv_stream *st, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen);
    /* The request's header block passed --max-header-list-bytes or
     * --max-header-count: nothing more of it is copied. */
    void (*refuse_header_list)(struct gw_srv_stream *st);
    void (*on_headers_done)(struct gw_srv_stream *st);
    void (*on_data)(struct gw_srv_stream *st, const uint8_t *data, size_t len);
    /* The request ended (END_STREAM). */
    void (*on_end)(struct gw_srv_stream *st);
    /* The stream closed (normally, by reset, or with its connection); the
     * owner takes it off sc's list (gw_srv_conn_remove_stream). */
    void (*on_close)(struct gw_srv_stream *st, uint32_t error_code);
    /* Whether the stream's final status is decided while its request is
     * still coming: the rest of the request is of no use (h2srv then ends
     * the stream after the answer). */
    int (*answered_early)(const struct gw_srv_stream *st);
};

struct gw_srv_conn {
    struct gw_conn conn;
    struct gw_worker *w;
    struct gw_srv_conn *prev, *next; /* in the worker's list */
    struct gw_srv_stream *streams;   /* the engine's streams (calls) on this connection */
    char peer[64];
    /* TLS (set by the handshake; all NULL/0 on h2c). The peer identity is
     * filled only for a client certificate that verified (mutual TLS). */
    unsigned tls : 1;
    unsigned peer_verified : 1;
    char *peer_cn;    /* subject CN, owned, or NULL */
    char **peer_sans; /* subjectAltNames as "DNS:<name>", "URI:<uri>", "IP:<addr>", owned */
    size_t peer_nsans;
    unsigned goaway_sent : 1;
    unsigned got_frame : 1; /* the client's first frame arrived */
    struct gw_timer timer;  /* preface, then idle timeout */
    uint64_t last_frame_ns; /* when the client's latest frame arrived */
    uint64_t held;          /* request and answer bytes its calls hold (--max-conn-buffer-bytes) */
};

/* How long the listener rests after accept ran out of descriptors. */
#define GW_ACCEPT_PAUSE_MS 100

/* Creates the callbacks and options every server session of <w> uses, and
 * registers <ops> (w->srv_ops) as the engine behind its client streams.
 * Returns 0 or -ENOMEM. */
int gw_h2srv_setup(struct gw_worker *w, const struct gw_srv_stream_ops *ops);
/* Accepts pending connections on the worker's listener. */
void gw_h2srv_on_listen(struct gw_io *io, uint32_t events);
/* Timer callback (w->accept_timer): puts the paused listener back. */
void gw_h2srv_accept_resume(struct gw_timer *t, void *arg);
/* Sends GOAWAY on every connection of <w> (drain). */
void gw_h2srv_goaway_all(struct gw_worker *w);
/* Closes every connection of <w> at once (end of the grace period). */
void gw_h2srv_close_all(struct gw_worker *w);

/* Called when a client connection or a call ends: while the worker drains,
 * a connection with no stream left gets its final GOAWAY, and the loop stops
 * once no connection is left. */
void gw_h2srv_check_drained(struct gw_worker *w);

void gw_srv_conn_add_stream(struct gw_srv_conn *sc, struct gw_srv_stream *st);
void gw_srv_conn_remove_stream(struct gw_srv_conn *sc, struct gw_srv_stream *st);

#endif
