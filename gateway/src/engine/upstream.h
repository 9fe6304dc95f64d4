/* SPDX-License-Identifier: Apache-2.0 */
/* upstream — a worker's HTTP/2 client connections to the replicas.
 *
 * A worker keeps one gw_upstream per replica address of its snapshot, and
 * of replicas that left it while calls still point at them (see Lifetime
 * below), and maps the replica indexes of its current snapshot onto them
 * (gw_upstream_adopt). Each gw_upstream holds a reference on the
 * process-wide health record of its address (health.h), which every worker
 * reads to decide eligibility. For each replica a worker keeps up to
 * --upstream-conns connections, created on demand and at start, multiplexing
 * calls (the least busy one takes a new stream; a connection that got GOAWAY
 * takes none, leaves its slot and closes when its streams are done).
 *
 * A connection counts as alive once the replica's first frame (its
 * SETTINGS) arrives; until then the connect timer (--connect-timeout-ms)
 * runs, so a replica whose kernel accepts but whose process does not answer
 * is noticed. A failed connect or handshake, or a keepalive timeout, marks
 * the replica down in its health record (shared by all workers, with a
 * backoff of 100 ms doubling to 5 s): it is not eligible, and the ring walk
 * moves on to the next replica, until a frame arrives from it on any
 * connection. The health checks connect to a down replica every interval
 * (ignoring the backoff), so that is how it comes back; with checks off, a
 * call may try it again once the backoff is over. A live connection that the
 * replica drops is reconnected at once, so a killed replica is known to be
 * down within a connect attempt. Calls whose connection never came up had
 * sent nothing, so they are routed again.
 *
 * Keepalive: while a connection carries streams and nothing has arrived on
 * it for --keepalive-ms, it sends a PING; with no ACK within
 * --keepalive-timeout-ms the connection is closed ("keepalive timeout"), its
 * calls are lost as on any connection loss, the replica is marked down and a
 * passive failure is reported. A grpc-core server closes a connection that
 * sends PINGs with no response HEADERS or DATA in between more than about
 * three times ("too_many_pings"), so a connection sends at most two PINGs
 * between two response frames (a long silent call is pinged twice, then left
 * to its deadline and the health checks), and idle connections are not
 * pinged at all: idle replicas are watched by the active health checks.
 *
 * Flow control isolates the streams of a connection from each other: a
 * DATA frame's bytes are handed back to the connection window at once
 * (nghttp2_session_consume_connection), and to the stream window only as the
 * client takes them (the call engine), so a stream holds at most one stream window of
 * unrelayed bytes and a stalled client never holds the connection window
 * that other calls (and the replica's answers to them) need.
 *
 * Health checks have a connection of their own per replica (check_conn,
 * opened by gw_upstream_conn_probe, outside the --upstream-conns slots), so
 * a check never waits behind data traffic: neither its windows nor the
 * replica's stream limit are shared with calls.
 *
 * Streams: every stream's owner embeds a gw_up_stream with an ops table
 * (gw_up_stream_ops) and a user pointer, as nghttp2's own stream user data
 * works; the connection's callbacks dispatch through it, so this module
 * knows neither calls nor health checks (which sit above it).
 *
 * Draining connections leave their slot: a connection that got GOAWAY, or
 * whose stream ids run out (its next stream id passes
 * --upstream-stream-id-limit less a margin), is moved to the upstream's
 * draining list, its slot is free for a new connection at once, and it
 * closes when its streams are done. A GOAWAY, and the refusals after it
 * (REFUSED_STREAM, requests that never left), are not the replica's
 * failure: those calls are routed again and nothing is reported to health.
 * Likewise a connect that fails for want of a gateway resource (EMFILE,
 * ENFILE, ENOBUFS, ENOMEM, EADDRNOTAVAIL) is counted as a local failure
 * (infergw_upstream_local_failures_total), never against the replica.
 *
 * Leaving replicas (upleave.c): a GOAWAY, or a snapshot in which a replica is
 * drained, its lease is gone or it is no longer listed, is told to every
 * call stream on its connections (on_leaving), whose owner may move it
 * elsewhere (stream resume) before the replica goes.
 *
 * Lifetime: a gw_upstream is referenced by the worker's snapshot mapping
 * and by each attempt that points at it (gw_upstream_ref/unref). One whose
 * replica left the snapshot, with no attempt, connection or health check
 * left, is freed by gw_upstream_sweep (after every snapshot change and on
 * the checker's tick), and drops its reference on the shared health record
 * (health.h frees records nobody holds). Loop thread only.
 */
#ifndef INFERGW_UPSTREAM_H
#define INFERGW_UPSTREAM_H

#include <stdint.h>
#include <sys/socket.h>

#include "h2/conn.h"
#include "health/health.h"
#include "base/timer.h"

struct gw_worker;
struct gw_routes;
struct gw_metrics_replica;
struct gw_hcheck;
struct gw_up_stream;

/* What an upstream stream's owner (a call's attempt, a health check) does
 * with its events; upstream.c dispatches every stream through these and
 * tells no kind of stream from another. A NULL entry ignores its event. */
struct gw_up_stream_ops {
    /* A response header block begins; <trailers> 1 when it is a trailer block. */
    void (*on_begin_headers)(struct gw_up_stream *st, int trailers);
    /* One response header field; a negative return resets the stream. */
    int (*on_header)(struct gw_up_stream *st, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen);
    /* A header block is complete (<end_stream>: the stream ends with it). */
    void (*on_headers_done)(struct gw_up_stream *st, int end_stream);
    /* Response bytes. The connection window was given back on receipt; the
     * stream's is the owner's to give back (nghttp2_session_consume_stream). */
    void (*on_data)(struct gw_up_stream *st, const uint8_t *data, size_t len);
    /* The stream closed with <error_code> (NGHTTP2_*), or never left
     * (NGHTTP2_REFUSED_STREAM). Its stream user data is already cleared. */
    void (*on_close)(struct gw_up_stream *st, uint32_t error_code);
    /* Its connection is gone (st->uc is already NULL); <connected> says
     * whether it ever came up (if not, nothing of the stream left). */
    void (*on_lost)(struct gw_up_stream *st, int connected, const char *reason);
    /* Its replica is leaving (<why>: GOAWAY, drained, lease gone, left the
     * snapshot); the stream may finish, but an owner able to move it should
     * move it now. */
    void (*on_leaving)(struct gw_up_stream *st, const char *why);
};

/* One stream on an upstream connection, embedded in its owner. */
struct gw_up_stream {
    const struct gw_up_stream_ops *ops;
    void *user;                       /* the owner */
    struct gw_up_conn *uc;            /* NULL before submit and once detached or lost */
    int32_t sid;                      /* upstream stream id, -1 before submit */
    struct gw_up_stream *prev, *next; /* in uc's list of call streams */
    unsigned open : 1;                /* the owner's: the stream exists and is not closed */
};

struct gw_up_conn {
    struct gw_conn conn;
    struct gw_upstream *up;
    struct gw_up_stream *streams; /* call streams on this connection */
    size_t nstreams;
    struct gw_timer connect_timer; /* until the replica's first frame */
    struct gw_timer ka_timer;      /* keepalive: next PING, or its deadline */
    uint64_t ping_sent_ns;         /* PING awaiting its ACK; 0 = none */
    unsigned pings_since_data;     /* PINGs sent since the replica last sent HEADERS/DATA */
    uint64_t last_recv_ns;         /* last frame from the replica */
    uint64_t alive_ns;             /* when the first frame arrived */
    struct gw_up_stream *check;    /* a health check's stream on it; NULL = none */
    struct gw_up_conn *drain_next; /* in up->draining */
    unsigned connected : 1;        /* TCP connected */
    unsigned alive : 1;            /* a frame arrived from the replica */
    unsigned goaway : 1;           /* no new streams */
    unsigned closed_by_us : 1;     /* closed by a timer of ours, not the replica */
    unsigned retired : 1;          /* out of its slot, in up->draining */
    unsigned is_check : 1;         /* the health checks' own connection */
};

struct gw_upstream {
    struct gw_worker *w;
    char *addr; /* "host:port", owned */
    struct sockaddr_storage sa;
    socklen_t salen;
    struct gw_up_conn **conns; /* --upstream-conns slots, NULL = none */
    int nconns;
    struct gw_up_conn *check_conn; /* the health checks' connection, NULL = none */
    struct gw_up_conn *draining;   /* retired connections finishing their streams */
    uint32_t refs;                 /* attempts and a check in flight pointing at it */
    int local_errno;               /* the last connect's local failure (EMFILE...), 0 = none */
    uint64_t local_logged_ns;      /* last upstream_local_failure log line */
    struct gw_health *health;      /* shared record of this address (borrowed) */
    struct gw_hcheck *check;       /* the health checker's state (hcheck.c), NULL = none yet;
                                      plain memory, freed with the upstream */
    int in_use;                    /* listed by the worker's current snapshot */
    uint32_t inflight;             /* attempts open on this worker (the record is kept
                                      while > 0); every change also goes to the
                                      health record's count of every worker's calls
                                      and to w->load (poolload.h) */
    uint32_t route_idx;            /* its index in w->routes->replicas, UINT32_MAX =
                                      not listed by the current snapshot */
    uint64_t pkey;                 /* gw_pidx_replica_key(addr), 0 = not computed yet */
    /* this replica's series in w->metrics */
    struct gw_metrics_replica *metrics;
};

/* Creates the nghttp2 callbacks and options. Returns 0 or -ENOMEM. */
int gw_upstream_setup(struct gw_worker *w);
/* Maps the replicas of snapshot <rt> onto the worker's upstreams (creating
 * and connecting new ones) into w->upmap. Returns 0, or -ENOMEM with the
 * previous mapping intact. */
int gw_upstream_adopt(struct gw_worker *w, const struct gw_routes *rt);
/* Tells every call stream of <uc> that its replica is leaving (<why>);
 * their owners may move them (gw_up_stream_ops.on_leaving). Owners reset
 * their streams at most: none leaves the list while it is walked. */
void gw_upstream_conn_leaving(struct gw_up_conn *uc, const char *why);
/* After a snapshot change (w->routes and w->upmap agree): the call streams
 * of replicas that are drained, whose lease is gone, or that left the
 * snapshot are told they are leaving (gw_up_stream_ops.on_leaving). */
void gw_upstream_notify_leaving(struct gw_worker *w);
/* Closes every connection (worker exit) and frees the upstreams. */
void gw_upstream_teardown(struct gw_worker *w);

/* Replica <idx>'s (an index of <worker>'s snapshot: struct gw_worker *)
 * calls in flight from every worker, from its health record: the count the
 * load view (poolload.h) and the routing decisions read. */
uint32_t gw_upstream_replica_inflight(uint32_t idx, void *worker);

/* Whether <up> can take a call now: its health record says it is not
 * ejected, unhealthy or NOT_SERVING, and not down (with health checks off,
 * a down replica whose backoff is over may be tried). */
int gw_upstream_eligible(const struct gw_upstream *up);
/* A connection to <up> able to take a new stream (connecting ones
 * included), opening one if needed; NULL when none can be had. */
struct gw_up_conn *gw_upstream_conn_for(struct gw_upstream *up);
/* The replica's health-check connection (check_conn), opened if there is
 * none: checks never share a connection with calls. May connect while the
 * replica is backing off (a check is how a down replica is found to be
 * back). NULL when none can be had now. */
struct gw_up_conn *gw_upstream_conn_probe(struct gw_upstream *up);

/* Opens call stream <st> (ops and user set) on <uc>; <st> is the stream's
 * user data, counted in the replica's in-flight streams. A connection that
 * cannot open one (stream ids exhausted, GOAWAY) is retired and another
 * connection of the same replica tried, so a submit failure is never the
 * replica's. Sets st->uc, st->sid and st->open. Returns the stream id or a
 * negative nghttp2 error (nothing was sent). */
int32_t gw_upstream_submit(struct gw_up_conn *uc, struct gw_up_stream *st, const nghttp2_nv *nv,
                           size_t nvlen, nghttp2_data_provider *prd);
/* Opens a health check's stream <st> on <uc> (its check connection; one
 * at a time, not counted in flight). Returns the stream id or a negative
 * nghttp2 error. */
int32_t gw_upstream_submit_check(struct gw_up_conn *uc, struct gw_up_stream *st,
                                 const nghttp2_nv *nv, size_t nvlen, nghttp2_data_provider *prd);
/* Closes <uc> if it takes no new streams and has none left. */
void gw_upstream_conn_idle(struct gw_up_conn *uc);
/* Detaches <st> from its connection (its stream closed or was abandoned:
 * a stream still open gets no more events). */
void gw_upstream_detach(struct gw_up_stream *st);

/* Passive health (outlier ejection): reports the outcome of one attempt on
 * <up> to the replica's shared record (gw_health_passive): ok = 1 for a
 * response (any status the replica chose that is not retryable), 0 for a
 * failure (retryable status like UNAVAILABLE, stream reset, connection
 * lost, per-try timeout, keepalive timeout). Reads the worker's snapshot for
 * the ejection cap and logs replica_ejected. NULL <up> is ignored. Loop
 * thread. */
void gw_upstream_report(struct gw_upstream *up, int ok);

/* An attempt (or a check in flight) starts or stops pointing at <up>. */
void gw_upstream_ref(struct gw_upstream *up);
void gw_upstream_unref(struct gw_upstream *up);
/* Frees the upstreams of replicas that left the snapshot and that nothing
 * uses any more (no attempt, connection or check). Returns how many. */
size_t gw_upstream_sweep(struct gw_worker *w);

/* Whether errno <err> of socket()/connect() is the gateway's own shortage
 * (descriptors, buffers, memory, local ports) rather than the replica's. */
int gw_upstream_errno_is_local(int err);
/* Whether a connection whose next stream id is <next_id> must be retired
 * under limit <limit> (the last usable id): retired once fewer than 1/16
 * of the ids are left, so streams opened meanwhile always fit. */
int gw_upstream_ids_low(int32_t next_id, uint32_t limit);

#endif
