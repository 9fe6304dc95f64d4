/* SPDX-License-Identifier: Apache-2.0 */
/* metrics — per-worker counters and histograms, merged on scrape into the
 * Prometheus text exposition format.
 *
 * Each worker owns one struct gw_metrics and is its only writer: a counter
 * bump is a relaxed load and a relaxed store of an _Atomic uint64_t (no
 * lock-prefixed read-modify-write, no line shared with another worker), so
 * the request path pays an add and a store. The scraper thread (admin.c)
 * reads the same fields with relaxed loads: values never tear, and a scrape
 * sees each counter at some recent point.
 *
 * Pools and replicas come and go with the routing snapshot, so their series
 * are keyed by name in small bounded per-worker tables, never by snapshot
 * index. An entry is filled in by its worker, then published by a release
 * store of the table's count; entries are never removed or moved, so the
 * scraper can read every entry below the count it loaded (acquire) without
 * any lock. Beyond the bound, new names fold into an entry named "other".
 * Pool labels name only pools of the worker's snapshot ("unknown" for the
 * rest, "none" when a call named no pool), and method labels only the
 * KServe v2 and grpc.health.v1 methods ("other" for the rest), so a client
 * cannot grow the series without bound.
 *
 * The worker also publishes a reference to its current snapshot here
 * (gw_metrics_set_routes, under a mutex taken only when the snapshot
 * changes), so the admin thread can read the pools and drain states of a
 * snapshot nobody frees under it.
 */
#ifndef INFERGW_METRICS_H
#define INFERGW_METRICS_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/hdrlist.h"
#include "route/route.h"

#define GW_METRICS_MAX_POOLS    64
#define GW_METRICS_MAX_REPLICAS 256
#define GW_METRICS_NAME_MAX     255
#define GW_METRICS_NCODES       17 /* gRPC status codes 0..16 */

/* Methods with a label of their own; the rest count as GW_METHOD_OTHER. */
enum gw_metrics_method {
    GW_METHOD_SERVER_LIVE,
    GW_METHOD_SERVER_READY,
    GW_METHOD_MODEL_READY,
    GW_METHOD_SERVER_METADATA,
    GW_METHOD_MODEL_METADATA,
    GW_METHOD_MODEL_INFER,
    GW_METHOD_MODEL_STREAM_INFER,
    GW_METHOD_HEALTH_CHECK,
    GW_METHOD_HEALTH_WATCH,
    GW_METHOD_OTHER,
    GW_METHOD_COUNT
};

/* How an upstream attempt ended: a gRPC status the replica sent (0..16), or
 * one of these. */
enum gw_metrics_outcome {
    GW_OUTCOME_CONNECT_FAILED = GW_METRICS_NCODES, /* its connection never came up */
    GW_OUTCOME_RESET,                              /* stream reset / ended without a status */
    GW_OUTCOME_CONNECTION_LOST,                    /* connection closed under it */
    GW_OUTCOME_COUNT
};

/* Attempt kinds (the same order as enum gw_attempt_kind in call.h). */
enum gw_metrics_kind {
    GW_KIND_PRIMARY,
    GW_KIND_RETRY,
    GW_KIND_HEDGE,
    GW_KIND_RESUME,
    GW_KIND_COUNT
};

/* Stream resume (docs/stream-resume.md): the mode label of
 * infergw_stream_resumes_total (replay, continue) and its outcomes. */
#define GW_METRICS_RESUME_MODES 2
enum gw_metrics_resume_outcome {
    GW_RESUME_OK,       /* the new attempt relayed its first new message or the final status */
    GW_RESUME_DIVERGED, /* a replayed message differed: ABORTED */
    GW_RESUME_FAILED,   /* no resume possible (budget, deadline, log, replica) or it failed */
    GW_RESUME_FALLBACK, /* continue refused by the replica: replay instead */
    GW_RESUME_OUTCOMES
};

/* Decisions of the retry and hedge policy, per worker. */
enum gw_metrics_policy {
    GW_POLICY_RETRY_BUDGET,   /* a retry the retry budget refused */
    GW_POLICY_RETRY_DEADLINE, /* a retry that could not finish within the deadline */
    GW_POLICY_RETRY_PUSHBACK, /* a retry a malformed or negative pushback forbade */
    GW_POLICY_HEDGE_BUDGET,   /* a hedge the hedge budget refused */
    GW_POLICY_HEDGE_DEADLINE, /* a hedge that could not finish within the deadline */
    GW_POLICY_HEDGE_WON,      /* calls answered by their hedge */
    GW_POLICY_COUNT
};

/* Upstream events counted per worker (gw_metrics_upstream): why a
 * connection was retired, and calls the gateway's own limits touched. */
enum gw_metrics_upstream {
    GW_UP_RETIRED_GOAWAY,     /* the replica sent GOAWAY: drained, replaced */
    GW_UP_RETIRED_STREAM_IDS, /* stream ids running out: drained, replaced */
    GW_UP_LOCAL_FAILURE,      /* socket()/connect() failed for want of a local resource */
    GW_UP_REFUSED_REROUTED,   /* REFUSED_STREAM or unsent request routed again, no blame */
    GW_UP_REPLAY_OVER_BUDGET, /* calls made single-attempt by --replay-buffer-total */
    GW_UP_COUNT
};

/* Why a TLS handshake failed (label reason of
 * infergw_tls_handshake_failures_total); names in gw_metrics_tls_fail_name. */
enum gw_metrics_tls_fail {
    GW_TLS_FAIL_TIMEOUT,      /* no handshake within --tls-handshake-timeout-ms */
    GW_TLS_FAIL_NOT_TLS,      /* the peer spoke something else (h2c, HTTP/1) */
    GW_TLS_FAIL_PROTOCOL,     /* no shared TLS version or cipher */
    GW_TLS_FAIL_NO_ALPN_H2,   /* ALPN h2 not agreed */
    GW_TLS_FAIL_NO_PEER_CERT, /* mutual TLS: the client sent no certificate */
    GW_TLS_FAIL_CERT_VERIFY,  /* the peer's certificate did not verify */
    GW_TLS_FAIL_PEER_ALERT,   /* the peer refused the handshake (e.g. our certificate) */
    GW_TLS_FAIL_PEER_CLOSED,  /* the peer closed or reset the connection mid-handshake */
    GW_TLS_FAIL_OTHER,
    GW_TLS_FAIL_COUNT
};

/* Limits and timeouts of the client edge (label limit of
 * infergw_limit_hits_total); names in gw_metrics_limit_name. Each hit also
 * has a log line (rate-limited, gw_worker_limit_hit). */
enum gw_metrics_limit {
    GW_LIMIT_HEADER_LIST_CLIENT,  /* a client's header block over the limits: stream refused */
    GW_LIMIT_HEADER_LIST_REPLICA, /* a replica's header block over the limits: stream reset */
    GW_LIMIT_MAX_CONNS,           /* a connection closed at accept: --max-conns reached */
    GW_LIMIT_ACCEPT_NOFILE,       /* accept failed for lack of descriptors: listener paused */
    GW_LIMIT_PREFACE_TIMEOUT,     /* no HTTP/2 preface and SETTINGS within --preface-timeout-ms */
    GW_LIMIT_IDLE_TIMEOUT,        /* no call and no frame for --idle-timeout-ms: GOAWAY */
    GW_LIMIT_STREAM_IDLE,         /* a call moved no bytes for --stream-idle-timeout-ms */
    GW_LIMIT_MAX_DEADLINE,        /* a call ended by --max-deadline-ms */
    GW_LIMIT_PUSHBACK_CAPPED,     /* a replica's grpc-retry-pushback-ms cut to --max-pushback-ms */
    GW_LIMIT_CONTENT_TYPE,        /* a request without content-type application/grpc refused */
    GW_LIMIT_CONN_BUFFER, /* a call ended: its connection held --max-conn-buffer-bytes unread */
    GW_LIMIT_COUNT
};

/* Which side a TLS handshake was on (label side). */
enum gw_metrics_tls_side { GW_TLS_SIDE_CLIENT, GW_TLS_SIDE_UPSTREAM, GW_TLS_SIDE_COUNT };

/* Upper bounds (seconds) of the call duration histogram; +Inf is implicit. */
#define GW_METRICS_NBUCKETS 14
extern const double gw_metrics_buckets[GW_METRICS_NBUCKETS];

typedef _Atomic uint64_t gw_counter;

struct gw_metrics_pool {
    char name[GW_METRICS_NAME_MAX + 1];
    gw_counter calls[GW_METHOD_COUNT][GW_METRICS_NCODES];
    gw_counter buckets[GW_METRICS_NBUCKETS + 1]; /* per bucket, not cumulative; last = +Inf */
    gw_counter duration_ns_sum;
    /* stream resume: resumes by mode (replay = 0, continue = 1) and outcome,
     * the gap histogram (loss to first new message; call duration bounds),
     * bytes of replayed messages dropped */
    gw_counter resumes[GW_METRICS_RESUME_MODES][GW_RESUME_OUTCOMES];
    gw_counter resume_gap[GW_METRICS_NBUCKETS + 1];
    gw_counter resume_gap_ns_sum;
    gw_counter resume_dropped_bytes;
};

struct gw_metrics_replica {
    char name[GW_METRICS_NAME_MAX + 1];
    gw_counter attempts[GW_KIND_COUNT][GW_OUTCOME_COUNT];
    _Atomic int64_t inflight;
    _Atomic int reachable; /* a connection to it is up (worker's view) */
    _Atomic int listed;    /* upstream records of it the worker keeps */
};

/* Reasons of infergw_auth_failures_total: enum infergw_auth_reason
 * (infergw/plugin.h), then the gateway's own below. */
#define GW_AUTH_REASON_UNKNOWN_TENANT 9 /* authenticated tenant has no record */
#define GW_AUTH_REASON_MODEL_DENIED   10
#define GW_AUTH_REASON_MODEL_MISMATCH 11 /* a message's model_name is not the call's model */
#define GW_METRICS_NREASONS           12
#define GW_METRICS_MAX_TENANTS        64

struct gw_metrics_tenant {
    char name[GW_METRICS_NAME_MAX + 1];
    gw_counter ratelimited;
};

struct gw_metrics {
    _Atomic size_t npools, nreplicas, ntenants;             /* published entries */
    struct gw_metrics_pool pools[GW_METRICS_MAX_POOLS + 3]; /* + "other", "unknown", "none" */
    struct gw_metrics_replica replicas[GW_METRICS_MAX_REPLICAS + 1];
    struct gw_metrics_tenant tenants[GW_METRICS_MAX_TENANTS + 1]; /* + "other" */
    gw_counter auth_failures[GW_METRICS_NREASONS];
    _Atomic int64_t client_connections;
    gw_counter tls_handshakes[GW_TLS_SIDE_COUNT];
    gw_counter tls_failures[GW_TLS_SIDE_COUNT][GW_TLS_FAIL_COUNT];
    gw_counter policy[GW_POLICY_COUNT];
    gw_counter limits[GW_LIMIT_COUNT];
    gw_counter upstream[GW_UP_COUNT];
    _Atomic int64_t upstream_records; /* struct gw_upstream the worker keeps */
    _Atomic int64_t replay_bytes;     /* request bytes and resume hashes held for replay */
    pthread_mutex_t routes_mu;
    struct gw_routes *routes; /* the worker's snapshot (a reference), under routes_mu */
};

/* Values that do not come from the workers, gathered by the scraper. */
struct gw_metrics_global {
    int have_ctrl; /* a Redis control plane is configured */
    int redis_up;
    uint64_t config_version;
    double config_age_seconds;
    uint64_t config_errors;
};

/* Allocates zeroed metrics for one worker. Returns NULL when out of memory.
 * Caller frees with gw_metrics_free(). */
struct gw_metrics *gw_metrics_new(void);
/* Frees <m> and drops its snapshot reference. NULL is a no-op. */
void gw_metrics_free(struct gw_metrics *m);

/* Replaces the published snapshot by <rt> (takes a reference of its own).
 * Worker thread. */
void gw_metrics_set_routes(struct gw_metrics *m, struct gw_routes *rt);
/* A new reference to the published snapshot, or NULL; caller drops it with
 * gw_routes_unref(). Any thread. */
struct gw_routes *gw_metrics_get_routes(struct gw_metrics *m);

/* The method label index of :path <path> (NULL = other). */
enum gw_metrics_method gw_metrics_method_of(const char *path);
/* The label of an attempt outcome: a gRPC status name or CONNECT_FAILED,
 * RESET, CONNECTION_LOST ("UNKNOWN" out of range). */
const char *gw_metrics_outcome_name(int outcome);
/* The grpc-status in <trailers>, else in <hdrs> (trailers-only), or -1. */
int gw_metrics_status_of(const struct gw_hdrlist *trailers, const struct gw_hdrlist *hdrs);

/* The entry of replica <addr>, created when new (the overflow entry when
 * the table is full). Worker thread; the pointer lives as long as <m>. */
struct gw_metrics_replica *gw_metrics_replica(struct gw_metrics *m, const char *addr);

/* Counts a finished call: pool <pool> (<len> bytes, NULL = none), looked up
 * in <rt> when first seen; :path <path>; gRPC status <code>; duration in ns.
 * Worker thread. */
void gw_metrics_call_end(struct gw_metrics *m, const struct gw_routes *rt, const char *pool,
                         size_t len, const char *path, int code, uint64_t duration_ns);

/* Stream resume of a call of pool <pool> (as gw_metrics_call_end looks it
 * up): one resume of <mode> (1 replay, 2 continue: enum gw_resume_mode) with
 * <outcome>; or, with outcome -1, only <gap_ns> (> 0: a gap observed) and
 * <dropped_bytes> added. Worker thread. */
void gw_metrics_resume(struct gw_metrics *m, const struct gw_routes *rt, const char *pool,
                       size_t len, int mode, int outcome, uint64_t gap_ns, uint64_t dropped_bytes);

#ifdef GW_METRICS_COMPILED_OUT
#define GW_METRICS_ON 0 /* INFERGW_BENCH_NO_METRICS: what the counters cost */
#else
#define GW_METRICS_ON 1
#endif

static inline void gw_counter_add(gw_counter *c, uint64_t n)
{
    if (!GW_METRICS_ON)
        return;
    atomic_store_explicit(c, atomic_load_explicit(c, memory_order_relaxed) + n,
                          memory_order_relaxed);
}

/* Counts a call refused by authentication or authorization for <reason>
 * (0..GW_METRICS_NREASONS-1). Worker thread. */
static inline void gw_metrics_auth_failure(struct gw_metrics *m, int reason)
{
    if (m && reason >= 0 && reason < GW_METRICS_NREASONS)
        gw_counter_add(&m->auth_failures[reason], 1);
}

/* The label of reason <reason> ("refused" when out of range). */
const char *gw_metrics_auth_reason_name(int reason);

/* Counts a call of tenant <tenant> refused by its rate limit (beyond
 * GW_METRICS_MAX_TENANTS names per worker, under "other"). Worker thread. */
void gw_metrics_ratelimited(struct gw_metrics *m, const char *tenant);

/* Counts an attempt on <r> of kind <kind> ending in <outcome> (a gRPC status
 * or enum gw_metrics_outcome). Worker thread. */
static inline void gw_metrics_attempt(struct gw_metrics_replica *r, int kind, int outcome)
{
    if (r && outcome >= 0 && outcome < GW_OUTCOME_COUNT)
        gw_counter_add(&r->attempts[kind][outcome], 1);
}
static inline void gw_metrics_policy(struct gw_metrics *m, enum gw_metrics_policy p)
{
    if (m)
        gw_counter_add(&m->policy[p], 1);
}
static inline void gw_metrics_inflight_add(struct gw_metrics_replica *r, int64_t d)
{
    if (r)
        atomic_store_explicit(&r->inflight,
                              atomic_load_explicit(&r->inflight, memory_order_relaxed) + d,
                              memory_order_relaxed);
}
static inline void gw_metrics_upstream(struct gw_metrics *m, enum gw_metrics_upstream what)
{
    if (m)
        gw_counter_add(&m->upstream[what], 1);
}

static inline void gw_metrics_set_reachable(struct gw_metrics_replica *r, int up)
{
    if (r)
        atomic_store_explicit(&r->reachable, up, memory_order_relaxed);
}
static inline void gw_metrics_conns_add(struct gw_metrics *m, int64_t d)
{
    if (m)
        atomic_store_explicit(&m->client_connections,
                              atomic_load_explicit(&m->client_connections, memory_order_relaxed) +
                                  d,
                              memory_order_relaxed);
}

/* Counts one hit of limit <which>. Worker thread. */
static inline void gw_metrics_limit(struct gw_metrics *m, enum gw_metrics_limit which)
{
    if (m && which < GW_LIMIT_COUNT)
        gw_counter_add(&m->limits[which], 1);
}
/* The label (and log name) of limit <which> ("other" when out of range). */
const char *gw_metrics_limit_name(int which);

/* The label of TLS failure reason <why> ("other" when out of range). */
const char *gw_metrics_tls_fail_name(int why);

/* Counts a completed TLS handshake on <side>. Worker thread. */
static inline void gw_metrics_tls_ok(struct gw_metrics *m, int side)
{
    if (m && side >= 0 && side < GW_TLS_SIDE_COUNT)
        gw_counter_add(&m->tls_handshakes[side], 1);
}
/* Counts a failed TLS handshake on <side> for reason <why>. Worker thread. */
static inline void gw_metrics_tls_failed(struct gw_metrics *m, int side, int why)
{
    if (!m || side < 0 || side >= GW_TLS_SIDE_COUNT)
        return;
    if (why < 0 || why >= GW_TLS_FAIL_COUNT)
        why = GW_TLS_FAIL_OTHER;
    gw_counter_add(&m->tls_failures[side][why], 1);
}

/* Writes the merged metrics of <n> workers and <g> to <out> in the
 * Prometheus text format (version 0.0.4). Scraper thread. Returns 0, or -1
 * when out of memory. */
int gw_metrics_render(struct gw_metrics *const *ws, size_t n, const struct gw_metrics_global *g,
                      FILE *out);

/* Writes <v> to <out> escaped as a Prometheus label value (\\, \", \n). */
void gw_metrics_write_label(FILE *out, const char *v);

#endif
