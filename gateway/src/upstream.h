/* upstream — a worker's HTTP/2 client connections to the replicas.
 *
 * A worker keeps one gw_upstream per replica address it has ever routed to
 * (so calls may point at it across snapshot changes), and maps the replica
 * indexes of its current snapshot onto them (gw_upstream_adopt). For each
 * replica a worker keeps up to --upstream-conns connections,
 * created on demand and at start, multiplexing calls (the least busy one
 * takes a new stream; a connection that got GOAWAY takes none and closes when
 * its streams are done). A failed connect puts the replica in exponential
 * backoff (100 ms doubling to 5 s): while every connection of a replica is
 * backing off, the replica is not eligible and the ring walks on to the next
 * one. Calls whose connection never came up had sent nothing, so they are
 * routed again. A replica that leaves the snapshot gets no new calls; its
 * connections close once their streams are done. Loop thread only.
 */
#ifndef INFERGW_UPSTREAM_H
#define INFERGW_UPSTREAM_H

#include <stdint.h>
#include <sys/socket.h>

#include "conn.h"
#include "timer.h"

struct gw_worker;
struct gw_attempt;
struct gw_routes;
struct gw_metrics_replica;

struct gw_up_conn {
    struct gw_conn conn;
    struct gw_upstream *up;
    struct gw_attempt *attempts; /* streams on this connection */
    size_t nstreams;
    struct gw_timer connect_timer;
    unsigned connected : 1;
    unsigned goaway : 1; /* no new streams */
};

struct gw_upstream {
    struct gw_worker *w;
    char *addr; /* "host:port", owned */
    struct sockaddr_storage sa;
    socklen_t salen;
    struct gw_up_conn **conns; /* --upstream-conns slots, NULL = none */
    int nconns;
    unsigned failures;    /* consecutive failed connects */
    uint64_t retry_at_ns; /* no connect before this while failures > 0 */
    int down_logged;
    int in_use;        /* listed by the worker's current snapshot */
    uint32_t inflight; /* attempts open on this worker */
    /* this replica's series in w->metrics */
    struct gw_metrics_replica *metrics;
};

/* Creates the nghttp2 callbacks and options. Returns 0 or -ENOMEM. */
int gw_upstream_setup(struct gw_worker *w);
/* Maps the replicas of snapshot <rt> onto the worker's upstreams (creating
 * and connecting new ones) into w->upmap. Returns 0, or -ENOMEM with the
 * previous mapping intact. */
int gw_upstream_adopt(struct gw_worker *w, const struct gw_routes *rt);
/* Closes every connection (worker exit) and frees the upstreams. */
void gw_upstream_teardown(struct gw_worker *w);

/* Whether <up> can take a call now. */
int gw_upstream_eligible(const struct gw_upstream *up);
/* A connection to <up> able to take a new stream (connecting ones
 * included), opening one if needed; NULL when none can be had. */
struct gw_up_conn *gw_upstream_conn_for(struct gw_upstream *up);

/* Opens a stream for attempt <a> of a call on <uc> (the attempt is the
 * stream's user data). Returns the stream id or a negative nghttp2 error. */
int32_t gw_upstream_submit(struct gw_up_conn *uc, struct gw_attempt *a, const nghttp2_nv *nv,
                           size_t nvlen, nghttp2_data_provider *prd);
/* Detaches <a> from its connection (its stream closed or was abandoned). */
void gw_upstream_detach(struct gw_attempt *a);

#endif
