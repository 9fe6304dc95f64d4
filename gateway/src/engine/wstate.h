/* SPDX-License-Identifier: Apache-2.0 */
/* wstate — the state of one worker that its data path shares.
 *
 * struct gw_worker is one worker's share of the gateway (see worker.h for
 * the thread, the listener and the drain): its loop, configuration, routing
 * snapshot, replica pool, client connections, metrics, limits and access
 * log buffer. The modules of the data path (h2srv, call, upstream, hcheck)
 * read and write it on the worker's loop thread; this header is all they
 * need of the worker, so they sit below worker.c, which wires them together
 * (it registers the call engine's stream callbacks with h2srv, srv_ops).
 * The few helpers here count limit hits, queue access log lines and take up
 * a reloaded TLS context. Loop thread only, except the atomics named below.
 */
#ifndef INFERGW_WSTATE_H
#define INFERGW_WSTATE_H

#include <nghttp2/nghttp2.h>
#include <openssl/ssl.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/config.h"
#include "health/health.h"
#include "obs/accesslog.h"
#include "base/log.h"
#include "engine/poolload.h"
#include "h2/loop.h"
#include "obs/metrics.h"
#include "route/route.h"

struct gw_srv_conn;
struct gw_srv_stream_ops;
struct gw_upstream;

struct gw_worker {
    int index;
    pthread_t thread;
    struct gw_loop loop;
    const struct gw_config *cfg;
    struct gw_routes *routes;            /* current snapshot (a reference of ours) */
    _Atomic(struct gw_routes *) pending; /* offered by the control plane */
    struct gw_upstream **upmap;          /* routes->replicas[i] -> its upstream */
    struct gw_poolload load;             /* in flight per pool of routes (poolload.h) */
    struct gw_io listen_io;
    struct gw_srv_conn *conns; /* accepted client connections */
    size_t nconns;
    struct gw_upstream **ups; /* every replica address seen */
    size_t nups;
    nghttp2_session_callbacks *srv_cbs, *up_cbs;
    const struct gw_srv_stream_ops *srv_ops; /* the engine behind client streams (h2srv.h) */
    nghttp2_option *srv_opt, *up_opt;
    atomic_int drain_requested;
    int draining;
    struct gw_timer grace_timer;
    uint64_t calls_started;
    uint64_t replay_bytes; /* request log bytes and resume hashes all calls keep (call_core.c) */
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
    struct call_pfx_scratch *pfx; /* prefix routing's scratch (call_prefix.c), NULL = none yet */
};

/* Counts a hit of limit <which> (metric) and says whether to log it now:
 * 0 = not yet (one line a second per worker and limit), else the number of
 * hits that line stands for (its "hits" field). Worker thread. */
uint64_t gw_worker_limit_hit(struct gw_worker *w, enum gw_metrics_limit which);
/* Adds a line to the worker's access log buffer (written out within
 * GW_ACCESSLOG_FLUSH_MS). Worker thread. */
void gw_worker_access_log(struct gw_worker *w, const struct gw_access_entry *e);
/* Timer callback (w->alog_timer): writes the buffered access log lines. */
void gw_worker_access_log_flush(struct gw_timer *t, void *arg);
/* The front-end TLS context for a new connection (borrowed; the SSL made
 * from it holds its own reference), or NULL for h2c. Worker thread. */
SSL_CTX *gw_worker_tls_ctx(struct gw_worker *w);
/* Takes up the context offered in <slot>, if any, in place of <*cur>. */
void gw_worker_adopt_ctx(_Atomic(SSL_CTX *) *slot, SSL_CTX **cur);

#endif
