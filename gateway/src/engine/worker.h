/* worker — one thread = one epoll loop = one share of the gateway.
 *
 * A worker owns its listening socket (SO_REUSEPORT on the shared --listen
 * address, so the kernel spreads new client connections over workers), the
 * client connections it accepted, the calls on them, and its own upstream
 * pool of HTTP/2 connections to every replica. A call and all its attempts
 * live on one worker, so the data path takes no lock. Other threads talk to a
 * worker only through gw_worker_drain() and gw_worker_offer_routes() (an
 * atomic hand-over plus an eventfd wake-up); the worker switches to an
 * offered routing snapshot between events, never in the middle of one.
 * A reloaded TLS certificate arrives the same way (gw_worker_offer_tls): a
 * new SSL_CTX reference swapped in atomically, taken up before the next
 * accept (or, for replicas, at the next wake-up), while connections made
 * with the old context keep theirs.
 */
#ifndef INFERGW_WORKER_H
#define INFERGW_WORKER_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/config.h"
#include "health/health.h"
#include "obs/accesslog.h"
#include "base/log.h"
#include "h2/loop.h"
#include "obs/metrics.h"
#include "route/route.h"

struct gw_srv_conn;
struct gw_upstream;

/* How often worker 0 hands free heap pages back to the kernel (malloc_trim). */
#define GW_TRIM_MS 10000

struct gw_worker {
    int index;
    pthread_t thread;
    struct gw_loop loop;
    const struct gw_config *cfg;
    struct gw_routes *routes;            /* current snapshot (a reference of ours) */
    _Atomic(struct gw_routes *) pending; /* offered by the control plane */
    struct gw_upstream **upmap;          /* routes->replicas[i] -> its upstream */
    struct gw_io listen_io;
    struct gw_srv_conn *conns; /* accepted client connections */
    size_t nconns;
    struct gw_upstream **ups; /* every replica address seen */
    size_t nups;
    nghttp2_session_callbacks *srv_cbs, *up_cbs;
    nghttp2_option *srv_opt, *up_opt;
    atomic_int drain_requested;
    int draining;
    struct gw_timer grace_timer;
    uint64_t calls_started;
    uint64_t replay_bytes; /* request bytes all calls keep in their logs (call.c) */
    int exit_code;
    struct gw_metrics *metrics;        /* written by this worker only; read by the admin thread */
    struct gw_health_registry *health; /* the process's replica health (borrowed) */
    struct gw_timer health_timer;      /* worker 0: active checks, ejection returns */
    struct gw_poolstate *poolstates;   /* per-pool latency and budgets (poolstate.h) */
    SSL_CTX *tls_ctx;                  /* front-end TLS (a reference of ours), NULL = h2c */
    _Atomic(SSL_CTX *) tls_pending;    /* offered by a certificate reload */
    SSL_CTX *up_tls_ctx;               /* TLS towards replicas (a reference), NULL = h2c */
    _Atomic(SSL_CTX *) up_tls_pending; /* offered by a reload of the replica CA/cert */
    struct gw_log_limit limit_log[GW_LIMIT_COUNT]; /* one line a second per limit */
    struct gw_timer accept_timer; /* re-arms the listener after a descriptor shortage */
    unsigned accept_paused : 1;   /* listener out of epoll until accept_timer */
    struct gw_accesslog_buf alog; /* --access-log lines waiting to be written */
    struct gw_timer alog_timer;   /* writes them out at the latest after a moment */
    struct gw_timer trim_timer;   /* worker 0: free heap pages back to the kernel */
};

/* Prepares <w> (loop, listener, upstream pool, nghttp2 callbacks) with the
 * initial snapshot <routes> (the worker takes a reference of its own), the
 * shared replica health registry <health> (borrowed; it must outlive the
 * worker) and the TLS contexts <tls> (front end) and <up_tls> (replicas),
 * either NULL for cleartext h2c (the worker takes references of its own).
 * Worker 0 also runs the active health checker.
 * Returns 0 or -1 after logging why (e.g. the listen address is taken). */
int gw_worker_init(struct gw_worker *w, int index, const struct gw_config *cfg,
                   struct gw_routes *routes, struct gw_health_registry *health, SSL_CTX *tls,
                   SSL_CTX *up_tls);
/* Hands reloaded TLS contexts to the worker from any thread: <front> for
 * the connections it accepts from then on, <up> for the replica connections
 * it opens from then on (NULL: that one is unchanged). The worker takes
 * references of its own; open connections keep the context they were made
 * with. */
void gw_worker_offer_tls(struct gw_worker *w, SSL_CTX *front, SSL_CTX *up);
/* The front-end TLS context for a new connection (borrowed; the SSL made
 * from it holds its own reference), or NULL for h2c. Worker thread. */
SSL_CTX *gw_worker_tls_ctx(struct gw_worker *w);
/* Hands snapshot <rt> to the worker from any thread (the worker takes a
 * reference of its own); it switches to it at its next wake-up. */
void gw_worker_offer_routes(struct gw_worker *w, struct gw_routes *rt);
/* Checks that <addr> can be listened on by this process alone: binding
 * without SO_REUSEPORT fails when any other process listens there, which
 * SO_REUSEPORT would otherwise hide by silently sharing the port.
 * Returns 0 or a negative errno. */
int gw_worker_probe_listen(const char *addr);
/* Starts the worker's thread. Returns 0 or a positive errno. */
int gw_worker_start(struct gw_worker *w);
/* Asks the worker, from any thread, to stop accepting, send GOAWAY, let
 * in-flight calls finish within --shutdown-grace-ms, and end its thread. */
void gw_worker_drain(struct gw_worker *w);
void gw_worker_join(struct gw_worker *w);
void gw_worker_free(struct gw_worker *w);

/* Counts a hit of limit <which> (metric) and says whether to log it now:
 * 0 = not yet (one line a second per worker and limit), else the number of
 * hits that line stands for (its "hits" field). Worker thread. */
uint64_t gw_worker_limit_hit(struct gw_worker *w, enum gw_metrics_limit which);

/* Called when a client connection or a call ends, to finish a drain. */
void gw_worker_check_drained(struct gw_worker *w);
/* Adds a line to the worker's access log buffer (written out within
 * GW_ACCESSLOG_FLUSH_MS). Worker thread. */
void gw_worker_access_log(struct gw_worker *w, const struct gw_access_entry *e);

#endif
