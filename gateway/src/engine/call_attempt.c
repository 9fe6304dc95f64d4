/* SPDX-License-Identifier: Apache-2.0 */
/* call_attempt — the attempts of a call on upstream streams: picking a
 * replica, opening the stream (its request headers, the request log as its
 * data), cancelling, failing, retries and hedges (decided by route/policy,
 * budgets taken last), per-try timeouts, and the stream's close or loss
 * (refused streams and connects that never came up routed again). The
 * attempt's stream callbacks (attempt_stream_ops) dispatch here and to
 * call_relay.c. See call.h and call_int.h.
 */
#include "engine/call_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "obs/metrics.h"
#include "route/policy.h"
#include "route/poolstate.h"
#include "route/route.h"

static void try_timeout_cb(struct gw_timer *t, void *arg);
static const struct gw_up_stream_ops attempt_stream_ops;

/* A replica of worker <ctx>'s snapshot may take calls: not draining, and
 * reachable and healthy. The load view's census (poolload.h). */
static int replica_eligible(uint32_t idx, void *ctx)
{
    struct gw_worker *w = ctx;
    return !w->routes->replicas[idx].drain && gw_upstream_eligible(w->upmap[idx]);
}

/* A replica of the worker's snapshot may take this call: not draining,
 * not tried by this call already, and reachable and healthy. */
int call__eligible(uint32_t idx, void *ctx)
{
    struct gw_call *c = ctx;
    struct gw_worker *w = c->w;
    if (w->routes->replicas[idx].drain)
        return 0;
    struct gw_upstream *up = w->upmap[idx];
    for (size_t i = 0; i < c->ntried; i++)
        if (c->tried[i] == up)
            return 0;
    return gw_upstream_eligible(up);
}

/* Opens attempt <a>'s stream on <uc>. Returns 0 or a negative nghttp2 error. */
static int submit_attempt(struct gw_call *c, struct gw_attempt *a, struct gw_up_conn *uc,
                          const struct gw_pool *pool, uint64_t now)
{
    size_t cap = c->req_hdrs.n + 9;
    nghttp2_nv stack_nv[48];
    nghttp2_nv *nv = cap <= 48 ? stack_nv : gw_malloc(cap * sizeof(*nv));
    if (!nv)
        return NGHTTP2_ERR_NOMEM;
    size_t n = 0;
    nv[n++] = (nghttp2_nv)NV_LIT(":method", "POST");
    /* The scheme of the replica connection (RFC 9113 section 8.3.1). */
    if (uc->conn.ssl)
        nv[n++] = (nghttp2_nv)NV_LIT(":scheme", "https");
    else
        nv[n++] = (nghttp2_nv)NV_LIT(":scheme", "http");
    if (!c->has_authority)
        nv[n++] = call__nv_str(":authority", call__attempt_addr(a));
    size_t first = n;
    n += gw_hdrlist_to_nv(&c->req_hdrs, nv + n); /* :path, :authority, metadata */
    if (!c->w->cfg->auth.none) {
        /* The gateway checked the credentials: they stop here, replicas
         * never see the caller's token (with --auth=none it is forwarded). */
        size_t k = first;
        for (size_t i = first; i < n; i++)
            if (!(nv[i].namelen == 13 && !memcmp(nv[i].name, "authorization", 13)))
                nv[k++] = nv[i];
        n = k;
    }
    if (!c->has_te)
        nv[n++] = (nghttp2_nv)NV_LIT("te", "trailers");
    /* The replica gets the caller's deadline; a per-try timeout is the
     * gateway's to enforce (it resets the stream and tries elsewhere, where
     * a replica giving up by itself would answer DEADLINE_EXCEEDED). */
    uint64_t per_try = (uint64_t)pool->tun.per_try_timeout_ms * MS;
    char tbuf[GW_GRPC_TIMEOUT_BUFLEN], pbuf[24];
    if (c->deadline_ns) {
        gw_grpc_timeout_format(c->deadline_ns - now, tbuf);
        nv[n++] = call__nv_str("grpc-timeout", tbuf);
    }
    if (c->natt > 1) {
        snprintf(pbuf, sizeof(pbuf), "%zu", c->natt - 1);
        nv[n++] = call__nv_str("grpc-previous-rpc-attempts", pbuf);
    }
    char rbuf[16];
    if (a->kind == GW_ATTEMPT_RESUME && c->rs && c->rs->cur == GW_RESUME_CONTINUE) {
        snprintf(rbuf, sizeof(rbuf), "%" PRIu32, c->rs->nmsg);
        nv[n++] = call__nv_str("x-resume-from", rbuf);
    }
    nghttp2_data_provider prd = {.source.ptr = a, .read_callback = call__req_read_cb};
    a->req_off = c->req_base;
    int32_t sid = gw_upstream_submit(uc, &a->st, nv, n, &prd);
    if (nv != stack_nv)
        gw_free(nv);
    if (sid < 0)
        return sid;
    if (per_try && gw_loop_timer_at(&c->w->loop, &a->try_timer, now + per_try) < 0) {
        /* Without its timer the attempt is still bounded by the deadline. */
        gw_log(GW_LOG_WARN, "per_try_timer_failed", "{s:I}", "call", (json_int_t)c->id);
    }
    c->routed = 1;
    return 0;
}

/* A fresh attempt of <kind>, or NULL when the call has no room or memory. */
static struct gw_attempt *attempt_new(struct gw_call *c, enum gw_attempt_kind kind)
{
    if (c->natt == GW_CALL_MAX_ATTEMPTS)
        return NULL;
    struct gw_attempt *a = c->natt == 0 ? &c->first : gw_calloc(1, sizeof(*a));
    if (!a)
        return NULL;
    a->call = c;
    a->st.ops = &attempt_stream_ops;
    a->st.user = a;
    a->st.sid = -1;
    a->kind = (uint8_t)kind;
    a->outcome = -1;
    gw_hdrlist_init(&a->hdrs);
    gw_hdrlist_init(&a->trailers);
    gw_timer_init(&a->try_timer, try_timeout_cb, a);
    c->att[c->natt++] = a;
    return a;
}

/* Starts an attempt of <kind> on the best eligible replica of <pool> that
 * this call has not tried: <reuse> (an attempt whose connection never came
 * up, so nothing was sent) or a new one. Returns 0, or -1 with nothing
 * started when no replica can take it (the reason in c->start_msg and
 * c->start_code). */
int call__attempt_start(struct gw_call *c, const struct gw_pool *pool, struct gw_attempt *reuse,
                        enum gw_attempt_kind kind)
{
    struct gw_worker *w = c->w;
    uint64_t now = w->loop.now_ns;
    c->resume_mode = pool->tun.stream_resume;
    size_t keylen = 0;
    const char *key = gw_hdrlist_get(&c->req_hdrs, pool->tun.route_header, &keylen);
    uint32_t point = c->pfx_has_point ? c->pfx_point
                     : key            ? gw_key_hash32(key, keylen)
                                      : gw_loop_rand(&w->loop);

    /* Bounded loads: the pool's counts (every worker's calls as of the last
     * census, this worker's since) and the floored cap from that census
     * (poolload.h); no pass over the pool. */
    uint64_t ring_cap;
    const uint32_t *load = gw_poolload_view(&w->load, pool, now, replica_eligible,
                                            gw_upstream_replica_inflight, w, &ring_cap);
    const size_t max_tried = sizeof(c->tried) / sizeof(c->tried[0]);
    int rc = -1;
    c->start_code = 0; /* set when a reason other than "no replica" stops it */
    while (c->ntried < max_tried) {
        int idx = -1;
        if (c->pfx_hashed)
            idx = call__prefix_pick(c, pool);
        else if (pool->tun.route_by == GW_ROUTE_BY_LEAST_LOADED)
            idx = call__least_loaded_pick(c, pool);
        if (idx < 0)
            idx = gw_routes_pick(pool, point, call__eligible, c, load, ring_cap);
        if (idx < 0)
            break;
        struct gw_upstream *up = w->upmap[idx];
        c->tried[c->ntried++] = up;
        struct gw_up_conn *uc = gw_upstream_conn_for(up);
        if (!uc) {
            if (up->local_errno) {
                /* The gateway's own shortage, not the replica's failure. */
                snprintf(c->start_msg, sizeof(c->start_msg),
                         "the gateway has no resources to reach replica %s (%s); the replica is "
                         "not at fault",
                         up->addr, strerror(up->local_errno));
                c->start_code = GW_GRPC_UNAVAILABLE;
            }
            continue;
        }
        struct gw_attempt *a = reuse ? reuse : attempt_new(c, kind);
        if (!a) {
            snprintf(c->start_msg, sizeof(c->start_msg), "gateway out of memory");
            c->start_code = GW_GRPC_RESOURCE_EXHAUSTED;
            break;
        }
        if (a->up)
            gw_upstream_unref(a->up);
        a->up = up;
        gw_upstream_ref(up);
        a->start_ns = now;
        a->finished = a->cancelled = 0;
        int err = submit_attempt(c, a, uc, pool, now);
        if (err == 0) {
            rc = 0;
            if (c->pfx_hashed)
                call__prefix_record(c, pool, up);
            if (kind != GW_ATTEMPT_PRIMARY || reuse)
                gw_log(GW_LOG_DEBUG, "attempt_started", "{s:I, s:s, s:s, s:s, s:i}", "call",
                       (json_int_t)c->id, "pool", pool->name, "replica", up->addr, "kind",
                       call__kind_names[a->kind], "attempt", (int)c->natt);
            break;
        }
        /* No connection of this replica could take a stream (they were
         * retired and replaced where possible): not the replica's failure;
         * try the next one. */
        a->finished = 1;
        snprintf(c->start_msg, sizeof(c->start_msg), "cannot open a stream to replica %s: %s",
                 up->addr, nghttp2_strerror(err));
        c->start_code = GW_GRPC_UNAVAILABLE;
        reuse = a; /* the next replica gets the same, unsent, attempt */
    }
    c->pfx_hashed = 0; /* the scratch's hashes serve this start only */
    if (rc < 0 && c->start_code == 0) {
        snprintf(c->start_msg, sizeof(c->start_msg),
                 "no replica of pool '%s' is reachable (%zu configured)", pool->name,
                 pool->ring.nreplicas);
        c->start_code = GW_GRPC_UNAVAILABLE;
    }
    return rc;
}

/* Resets attempt <a>'s stream (the replica sees the cancellation); its
 * events are ignored from now on. */
void call__attempt_cancel(struct gw_attempt *a)
{
    a->cancelled = 1;
    a->finished = 1;
    gw_loop_timer_cancel(&a->call->w->loop, &a->try_timer);
    if (a->st.open && a->st.uc) {
        call__reset_stream(&a->st.uc->conn, a->st.sid, NGHTTP2_CANCEL);
    }
}

void call__cancel_attempts(struct gw_call *c, const struct gw_attempt *except)
{
    for (size_t i = 0; i < c->natt; i++)
        if (c->att[i] != except && !c->att[i]->cancelled && c->att[i]->st.open)
            call__attempt_cancel(c->att[i]);
}

/* The deadline floor: no retry or hedge starts unless more than this is
 * left of the caller's deadline. The pool's observed p50 (0 until known). */
static uint64_t attempt_floor(const struct gw_call *c)
{
    return c->ps ? gw_latency_quantile(&c->ps->latency, 0.5, LATENCY_MIN_SAMPLES) : 0;
}

void call__attempt_failed(struct gw_attempt *a, int code, int relayable, int retryable,
                          const char *fmt, ...)
{
    struct gw_call *c = a->call;
    struct gw_worker *w = c->w;
    a->finished = 1;
    gw_loop_timer_cancel(&w->loop, &a->try_timer);
    call__report_outcome(a, 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
    va_end(ap);
    c->fail_code = code;
    c->last_failed = a;
    c->last_failed_relayable = relayable;
    gw_log(GW_LOG_DEBUG, "attempt_failed", "{s:I, s:s, s:s, s:s, s:s}", "call", (json_int_t)c->id,
           "replica", call__attempt_addr(a), "kind", call__kind_names[a->kind], "status",
           gw_grpc_status_name(code), "message", c->fail_msg);
    if (c->resp_done || c->winner || !call__client_alive(c))
        return;
    if (call__running_attempts(c, a) > 0 || gw_timer_armed(&c->retry_timer))
        return; /* a hedge (or the hedged attempt) may still answer */

    const struct gw_pool *pool = call__pool(c);
    uint64_t now = w->loop.now_ns;
    struct gw_retry_in in = {
        .retryable = pool && retryable,
        .replayable = c->replayable,
        .attempts = c->natt,
        .max_attempts = pool ? pool->tun.retry_max_attempts : 0,
        .pushback = a->pushback,
        .pushback_ms = a->pushback_ms,
        .retries = c->retries,
        .now_ns = now,
        .deadline_ns = c->deadline_ns,
    };
    if (in.retryable && in.replayable && in.attempts < in.max_attempts) {
        in.rnd = a->pushback == 0 ? gw_loop_rand(&w->loop) : 0;
        in.floor_ns = attempt_floor(c);
    }
    struct gw_retry_decision d = gw_policy_retry(&in);
    if (d.verdict == GW_RETRY_NO_PUSHBACK)
        gw_metrics_policy(w->metrics, GW_POLICY_RETRY_PUSHBACK);
    else if (d.verdict == GW_RETRY_NO_DEADLINE)
        gw_metrics_policy(w->metrics, GW_POLICY_RETRY_DEADLINE);
    if (d.verdict != GW_RETRY_AT) {
        call__finish_failed(c);
        return;
    }
    if (!gw_budget_take(&c->ps->retry_budget, now, pool->tun.retry_budget_percent,
                        RETRY_BUDGET_MIN)) {
        gw_metrics_policy(w->metrics, GW_POLICY_RETRY_BUDGET);
        call__finish_failed(c);
        return;
    }
    if (gw_loop_timer_at(&w->loop, &c->retry_timer, now + (uint64_t)d.delay_ms * MS) < 0)
        call__finish_failed(c);
}

void call__retry_cb(struct gw_timer *t, void *arg)
{
    struct gw_call *c = arg;
    if (c->resp_done || c->winner || !call__client_alive(c))
        return;
    const struct gw_pool *pool = call__pool(c);
    if (!pool || !c->replayable) {
        call__finish_failed(c);
        return;
    }
    c->retries++;
    if (call__attempt_start(c, pool, NULL, GW_ATTEMPT_RETRY) < 0) {
        /* No replica left to try: the last failure stands. */
        if (!c->last_failed_relayable)
            snprintf(c->fail_msg + strlen(c->fail_msg), sizeof(c->fail_msg) - strlen(c->fail_msg),
                     "; %s", c->start_msg);
        call__finish_failed(c);
    }
}

void call__hedge_cb(struct gw_timer *t, void *arg)
{
    struct gw_call *c = arg;
    struct gw_worker *w = c->w;
    if (c->resp_done || c->winner || !c->replayable || !call__client_alive(c))
        return;
    const struct gw_pool *pool = call__pool(c);
    if (!pool)
        return;
    uint64_t now = w->loop.now_ns;
    struct gw_hedge_in in = {
        .replayable = c->replayable,
        .running = call__running_attempts(c, NULL),
        .attempts = c->natt,
        .max_attempts = pool->tun.retry_max_attempts,
        .now_ns = now,
        .deadline_ns = c->deadline_ns,
        .floor_ns = attempt_floor(c),
    };
    enum gw_hedge_verdict v = gw_policy_hedge(&in);
    if (v == GW_HEDGE_NO_DEADLINE)
        gw_metrics_policy(w->metrics, GW_POLICY_HEDGE_DEADLINE);
    if (v != GW_HEDGE_GO)
        return;
    if (!gw_budget_take(&c->ps->hedge_budget, now, pool->tun.hedge_budget_percent,
                        HEDGE_BUDGET_MIN)) {
        gw_metrics_policy(w->metrics, GW_POLICY_HEDGE_BUDGET);
        return;
    }
    /* Without a second replica the primary carries on alone. */
    call__attempt_start(c, pool, NULL, GW_ATTEMPT_HEDGE);
}

static void try_timeout_cb(struct gw_timer *t, void *arg)
{
    struct gw_attempt *a = arg;
    struct gw_call *c = a->call;
    const struct gw_pool *pool = call__pool(c);
    uint32_t ms = pool ? pool->tun.per_try_timeout_ms : 0;
    if (a->finished)
        return;
    if (c->winner == a) {
        call__resume_try_timeout(a, ms); /* a resume attempt nothing came from yet */
        return;
    }
    call__attempt_cancel(a);
    call__attempt_failed(a, GW_GRPC_UNAVAILABLE, 0, 1,
                         "replica %s did not answer within per_try_timeout_ms (%" PRIu32 " ms)",
                         call__attempt_addr(a), ms);
}

/* How attempt <a> ended, for the attempts counter. */
static int attempt_outcome(const struct gw_attempt *a, int transport_outcome)
{
    if (a->cancelled)
        return GW_GRPC_CANCELLED;
    int st = gw_metrics_status_of(&a->trailers, &a->hdrs);
    return transport_outcome >= 0 || st < 0 ? transport_outcome : st;
}

/* Releases attempt <a>'s stream. (Response bytes it left in respbuf were
 * handed back to the connection window on receipt.) */
static void release_attempt(struct gw_attempt *a)
{
    struct gw_call *c = a->call;
    gw_upstream_detach(&a->st);
    a->st.open = 0;
    gw_loop_timer_cancel(&c->w->loop, &a->try_timer);
}

/* The replica refused attempt <a>'s stream (REFUSED_STREAM: after its
 * GOAWAY, or over its stream limit), or the request never left: it did not
 * process the call (RFC 9113 §8.7), so it is routed again, the same replica
 * allowed (on a new connection: the refusing one is retired), without
 * reporting a failure or spending the retry budget, at most
 * GW_CALL_MAX_REFUSALS times per call. Returns 1 when routed again. */
static int reroute_refused(struct gw_attempt *a)
{
    struct gw_call *c = a->call;
    if (c->resp_done || c->winner || !call__client_alive(c) || c->req_base != 0 || a->hdrs.n ||
        a->http_status || c->refusals >= GW_CALL_MAX_REFUSALS)
        return 0;
    const struct gw_pool *pool = call__pool(c);
    if (!pool)
        return 0;
    c->refusals++;
    for (size_t i = c->ntried; i-- > 0;)
        if (c->tried[i] == a->up) {
            memmove(&c->tried[i], &c->tried[i + 1], (c->ntried - i - 1) * sizeof(c->tried[0]));
            c->ntried--;
            break;
        }
    gw_metrics_upstream(c->w->metrics, GW_UP_REFUSED_REROUTED);
    gw_log(GW_LOG_DEBUG, "attempt_refused", "{s:I, s:s}", "call", (json_int_t)c->id, "replica",
           call__attempt_addr(a));
    return call__attempt_start(c, pool, a, a->kind) == 0;
}

static void on_upstream_close(struct gw_up_stream *st, uint32_t error_code)
{
    struct gw_attempt *a = st->user;
    struct gw_call *c = a->call;
    a->outcome =
        (int16_t)attempt_outcome(a, error_code != NGHTTP2_NO_ERROR ? GW_OUTCOME_RESET : -1);
    gw_metrics_attempt(a->up ? a->up->metrics : NULL, a->kind, a->outcome);
    release_attempt(a);
    if (a->finished && c->winner != a) {
        call__maybe_free(c);
        return;
    }
    if (c->winner == a) {
        if (c->resp_done) {
            /* decided */
        } else if (error_code == NGHTTP2_NO_ERROR) {
            if (!call__resume_lost(a, GW_GRPC_INTERNAL,
                                   "replica %s ended the call without a gRPC status",
                                   call__attempt_addr(a)))
                gw_call_fail(c, GW_GRPC_INTERNAL, "replica %s ended the call without a gRPC status",
                             call__attempt_addr(a));
        } else if (!call__resume_lost(a, call__rst_to_grpc(error_code),
                                      "replica %s reset the stream: %s", call__attempt_addr(a),
                                      nghttp2_http2_strerror(error_code))) {
            gw_call_fail(c, call__rst_to_grpc(error_code), "replica %s reset the stream: %s",
                         call__attempt_addr(a), nghttp2_http2_strerror(error_code));
        }
    } else if (error_code == NGHTTP2_NO_ERROR) {
        call__attempt_failed(a, GW_GRPC_INTERNAL, 0, 0,
                             "replica %s ended the call without a gRPC status",
                             call__attempt_addr(a));
    } else if (error_code == NGHTTP2_REFUSED_STREAM && reroute_refused(a)) {
        /* routed again */
    } else {
        /* A reset before any answer: the replica (or something between)
         * gave up on the stream; another replica may do better. */
        call__attempt_failed(a, GW_GRPC_UNAVAILABLE, 0, 1, "replica %s reset the stream: %s",
                             call__attempt_addr(a), nghttp2_http2_strerror(error_code));
    }
    call__maybe_free(c);
}

static void on_upstream_lost(struct gw_up_stream *st, int connected, const char *reason)
{
    struct gw_attempt *a = st->user;
    struct gw_call *c = a->call;
    a->st.uc = NULL;
    a->st.open = 0;
    gw_loop_timer_cancel(&c->w->loop, &a->try_timer);
    a->outcome = (int16_t)attempt_outcome(a, connected ? GW_OUTCOME_CONNECTION_LOST
                                                       : GW_OUTCOME_CONNECT_FAILED);
    gw_metrics_attempt(a->up ? a->up->metrics : NULL, a->kind, a->outcome);
    if (a->finished && c->winner != a) {
        call__maybe_free(c);
        return;
    }
    if (c->winner == a) {
        if (!c->resp_done &&
            !call__resume_lost(a, GW_GRPC_UNAVAILABLE, "connection to replica %s lost: %s",
                               call__attempt_addr(a), reason))
            gw_call_fail(c, GW_GRPC_UNAVAILABLE, "connection to replica %s lost: %s",
                         call__attempt_addr(a), reason);
        call__maybe_free(c);
        return;
    }
    if (!connected && !c->resp_done && call__client_alive(c)) {
        /* The connection never came up, so nothing of this attempt left the
         * gateway: route it again, past this replica, as the same attempt.
         * (Failed connects are the upstream module's to count.) */
        const struct gw_pool *pool = call__pool(c);
        if (pool && call__attempt_start(c, pool, a, a->kind) == 0)
            return;
        a->finished = 1;
        if (call__running_attempts(c, a) == 0 && !gw_timer_armed(&c->retry_timer)) {
            if (pool)
                gw_call_fail(c, c->start_code, "%s (connecting to replica %s failed: %s)",
                             c->start_msg, call__attempt_addr(a), reason);
            else
                gw_call_fail(c, GW_GRPC_UNAVAILABLE,
                             "pool '%s' was removed while replica %s was connecting (%s)",
                             c->pool_name, call__attempt_addr(a), reason);
        }
        call__maybe_free(c);
        return;
    }
    call__attempt_failed(a, GW_GRPC_UNAVAILABLE, 0, 1, "connection to replica %s lost: %s",
                         call__attempt_addr(a), reason);
    call__maybe_free(c);
}

/* The replica of attempt <a>'s stream is leaving: a resumable winner moves. */
static void on_upstream_leaving(struct gw_up_stream *st, const char *why)
{
    call__resume_leaving(st->user, why);
}

static const struct gw_up_stream_ops attempt_stream_ops = {
    .on_begin_headers = call__on_begin_headers,
    .on_header = call__on_resp_header,
    .on_headers_done = call__on_resp_headers_done,
    .on_data = call__on_resp_data,
    .on_close = on_upstream_close,
    .on_lost = on_upstream_lost,
    .on_leaving = on_upstream_leaving,
};
