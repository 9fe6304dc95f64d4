/* SPDX-License-Identifier: Apache-2.0 */
/* call_intake — a call's request side: its header fields (deadline,
 * content-type, x-model, what is forwarded), authentication on a view of the
 * request (the verdict applied), the model_name scan and check of KServe
 * messages, request bytes into the log, and routing to a pool (the primary
 * attempt, the hedge timer). See call.h and call_int.h.
 */
#include "engine/call_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "auth/auth.h"
#include "base/headers.h"
#include "base/log.h"
#include "obs/metrics.h"
#include "route/policy.h"
#include "route/poolstate.h"
#include "route/route.h"

static void call_route(struct gw_call *c);
static void prefix_wait_more(struct gw_call *c);

#define KSERVE_PREFIX "/inference.GRPCInferenceService/"

/* Requests the gateway answers itself are tiny (a health check names a
 * service); Health/Check needs no authentication, so keep this small. */
#define LOCAL_REQ_MAX 4096

static void set_bad_request(struct gw_call *c, int code, const char *msg)
{
    if (!c->bad_request) {
        c->bad_request = msg;
        c->bad_request_code = code;
    }
}

void call__refuse_header_list(struct gw_srv_stream *st)
{
    struct gw_call *c = st->user;
    /* Wins over an earlier refusal: it says why the rest was not read. */
    c->bad_request = "request header list too large (limits: --max-header-list-bytes, "
                     "--max-header-count; RFC 9113 section 6.5.2 size)";
    c->bad_request_code = GW_GRPC_RESOURCE_EXHAUSTED;
    c->bad_request_http = NULL;
}

/* A content-type the gRPC spec accepts: "application/grpc", alone or
 * followed by "+<format>" or ";<parameters>". */
static int grpc_content_type(const uint8_t *v, size_t len)
{
    return len >= 16 && !memcmp(v, "application/grpc", 16) &&
           (len == 16 || v[16] == '+' || v[16] == ';');
}

int call__on_req_header(struct gw_srv_stream *st, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen)
{
    struct gw_call *c = st->user;
    if (namelen > 0 && name[0] == ':') {
        /* :path and :authority are kept in req_hdrs (they arrive first, so
         * they stay ahead of the metadata when forwarded). */
        int keep = call__name_is(name, namelen, ":path");
        if (call__name_is(name, namelen, ":authority"))
            keep = c->has_authority = 1;
        if (call__name_is(name, namelen, ":method") &&
            (valuelen != 4 || memcmp(value, "POST", 4) != 0))
            set_bad_request(c, GW_GRPC_UNIMPLEMENTED, "gRPC calls use the POST method");
        if (!keep)
            return 0;
        return gw_hdrlist_add(&c->req_hdrs, name, namelen, value, valuelen) < 0 ? -1 : 0;
    }
    if (call__name_is(name, namelen, "grpc-timeout")) {
        uint64_t ns;
        if (gw_grpc_timeout_parse((const char *)value, valuelen, &ns) < 0) {
            set_bad_request(c, GW_GRPC_INVALID_ARGUMENT, "malformed grpc-timeout header");
            return 0;
        }
        c->deadline_ns = c->w->loop.now_ns + (ns ? ns : 1);
        return 0;
    }
    if (call__name_is(name, namelen, "content-type")) {
        if (grpc_content_type(value, valuelen))
            c->grpc_content_type = 1; /* else refused once the headers are complete */
    } else if (call__name_is(name, namelen, "x-model")) {
        if (valuelen == 0 || valuelen > GW_MODEL_NAME_MAX) {
            set_bad_request(c, GW_GRPC_INVALID_ARGUMENT, "x-model must be 1 to 255 bytes long");
            return 0;
        }
        memcpy(c->pool_name, value, valuelen);
        c->pool_name[valuelen] = '\0';
        c->pool_len = valuelen;
        c->pool_known = 1;
    } else if (call__name_is(name, namelen, "te")) {
        if (valuelen == 8 && !memcmp(value, "trailers", 8))
            c->has_te = 1;
    } else if (call__name_is(name, namelen, "grpc-previous-rpc-attempts")) {
        return 0; /* the gateway sets its own count */
    }
    if (!gw_hdr_forwardable(name, namelen, value, valuelen))
        return 0;
    return gw_hdrlist_add(&c->req_hdrs, name, namelen, value, valuelen) < 0 ? -1 : 0;
}

/* The tenant records of the worker's current snapshot. */
static const struct gw_authdb *call_authdb(const struct gw_call *c)
{
    return c->w->routes ? c->w->routes->authdb : NULL;
}

/* Ends the call with a refusal of authentication. */
static void apply_refusal(struct gw_call *c, const struct gw_auth_verdict *v)
{
    if (v->pushback_ms >= 0)
        gw_call_fail_pushback(c, v->status, (uint32_t)v->pushback_ms, "%s", v->message);
    else
        gw_call_fail(c, v->status, "%s", v->message);
}

/* Authenticates the call on a view of its request and applies the verdict.
 * Returns 0 when it goes on, or -1 after ending it. */
static int authenticate(struct gw_call *c)
{
    const struct gw_srv_conn *sc = c->sc;
    struct gw_auth_request req = {
        .hdrs = &c->req_hdrs,
        .path = c->path,
        .peer = sc->peer,
        .tls = sc->tls,
        .peer_verified = sc->peer_verified,
        .peer_cn = sc->peer_cn,
        .peer_sans = (const char *const *)sc->peer_sans,
        .peer_nsans = sc->peer_nsans,
        .db = call_authdb(c),
        .metrics = c->w->metrics,
        .worker = c->w->index,
        .now_ns = c->w->loop.now_ns,
        .call_id = c->id,
    };
    struct gw_auth_verdict v;
    int rc = gw_auth_on_headers(&req, &v);
    /* The tenant counts for the access log whatever the verdict: a call
     * refused by its tenant's rate limit is logged with that tenant. */
    memcpy(c->tenant, v.tenant, sizeof(c->tenant));
    if (rc < 0) {
        apply_refusal(c, &v);
        return -1;
    }
    return 0;
}

static int is_model_method(const char *path)
{
    static const char *const methods[] = {"ModelInfer", "ModelStreamInfer", "ModelReady",
                                          "ModelMetadata"};
    size_t plen = sizeof(KSERVE_PREFIX) - 1;
    if (strncmp(path, KSERVE_PREFIX, plen) != 0)
        return 0;
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++)
        if (!strcmp(path + plen, methods[i]))
            return 1;
    return 0;
}

void call__on_req_headers_done(struct gw_srv_stream *st)
{
    struct gw_call *c = st->user;
    c->path = gw_hdrlist_get(&c->req_hdrs, ":path", NULL);
    if (!c->grpc_content_type && c->bad_request_code != GW_GRPC_RESOURCE_EXHAUSTED) {
        /* Not a gRPC request (whatever else is wrong with it, unless its
         * headers were cut short): the gRPC spec's answer is HTTP 415, which
         * a client that is not gRPC understands; grpc-status says it too. */
        uint64_t hits = gw_worker_limit_hit(c->w, GW_LIMIT_CONTENT_TYPE);
        if (hits)
            gw_log(GW_LOG_INFO, "request_not_grpc", "{s:s, s:s?, s:I}", "peer", c->sc->peer, "path",
                   c->path, "hits", (json_int_t)hits);
        c->bad_request = "content-type is not application/grpc: this endpoint serves gRPC";
        c->bad_request_code = GW_GRPC_INVALID_ARGUMENT;
        c->bad_request_http = "415";
    }
    if (c->bad_request) {
        gw_call_fail(c, c->bad_request_code, "%s", c->bad_request);
        return;
    }
    if (!c->path || c->path[0] != '/') {
        gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT, "missing or malformed :path");
        return;
    }
    const struct gw_config *cfg = c->w->cfg;
    if (cfg->max_deadline_ms) {
        /* Calls without grpc-timeout get the gateway's longest deadline;
         * longer ones are cut to it (the replica sees the shorter). */
        uint64_t cap = c->att_start_ns + (uint64_t)cfg->max_deadline_ms * MS;
        if (!c->deadline_ns || c->deadline_ns > cap) {
            c->deadline_ns = cap;
            c->deadline_capped = 1;
        }
    }
    if (cfg->stream_idle_timeout_ms &&
        gw_loop_timer_at(&c->w->loop, &c->idle_timer,
                         c->w->loop.now_ns + (uint64_t)cfg->stream_idle_timeout_ms * MS) < 0) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    if (c->deadline_ns) {
        if (gw_loop_timer_at(&c->w->loop, &c->deadline_timer, c->deadline_ns) < 0) {
            gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
            return;
        }
    }
    c->local = gw_localsvc_match(c->path);
    if (c->local != GW_LOCAL_HEALTH_CHECK && authenticate(c) < 0)
        return;
    if (c->local != GW_LOCAL_NONE)
        return; /* answered once the request message is complete */
    int model_method = is_model_method(c->path);
    if (model_method && !c->w->cfg->auth.none) {
        /* The tenant was authorized for one model: hold every message's
         * model_name to it, and route only once the first message's leading
         * field is read, so a call that names another model from its start
         * never opens a replica stream. */
        gw_model_check_init(&c->check);
        c->checking = 1;
    }
    if ((!c->pool_known || c->checking) && model_method) {
        gw_model_scan_init(&c->scan);
        c->scanning = 1;
        return; /* routed once model_name is read */
    }
    call_route(c);
}

/* Applies a finished model_name scan. */
static void scan_done(struct gw_call *c, int result)
{
    c->scanning = 0;
    if (result == GW_SCAN_ERROR) {
        gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT, "cannot read model_name from the request: %s",
                     c->scan.error ? c->scan.error : "malformed message");
        return;
    }
    if (result == GW_SCAN_FOUND && c->scan.name_len > 0 && !c->pool_known) {
        memcpy(c->pool_name, c->scan.name, c->scan.name_len);
        c->pool_name[c->scan.name_len] = '\0';
        c->pool_len = c->scan.name_len;
        c->pool_known = 1;
    }
    call_route(c);
}

/* A model_name of request message <k->messages> is not <want>, the model the
 * call is routed to: refused, as PERMISSION_DENIED when the tenant may not
 * use the named model either. */
static void refuse_model(struct gw_call *c, const char *want)
{
    const struct gw_model_check *k = &c->check;
    gw_metrics_auth_failure(c->w->metrics, GW_AUTH_REASON_MODEL_MISMATCH);
    if (!gw_auth_model_allowed(call_authdb(c), c->tenant, k->name, k->name_len))
        gw_call_fail(c, GW_GRPC_PERMISSION_DENIED,
                     "tenant '%s' may not call model '%s' (model_name of request message %" PRIu64
                     "; the call was authorized for model '%s')",
                     c->tenant, k->name, k->messages, want);
    else
        gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT,
                     "model_name '%s' in request message %" PRIu64
                     " does not match model '%s' the call was authorized for (x-model or the "
                     "first message's model_name)",
                     k->name, k->messages, want);
}

/* With authentication on, checks request bytes <p> before they are kept or
 * forwarded: every model_name must name the model the call is routed to (the
 * pool, else what the scan of the first field found <scan_r>, else the
 * default pool). Returns 0, or -1 after ending the call. */
static int check_models(struct gw_call *c, const uint8_t *p, size_t n, int scan_r)
{
    while (n > 0) {
        size_t used = 0;
        int r = gw_model_check_feed(&c->check, p, n, &used);
        p += used;
        n -= used;
        if (r == GW_CHECK_MORE)
            continue;
        if (r == GW_CHECK_ERROR) {
            gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT,
                         "cannot read model_name from request message %" PRIu64 ": %s",
                         c->check.messages, c->check.error);
            return -1;
        }
        if (r == GW_CHECK_COMPRESSED) {
            gw_call_fail(c, GW_GRPC_UNIMPLEMENTED,
                         "request message %" PRIu64 " is compressed: with authentication on, "
                         "the gateway reads each message's model_name, so send it uncompressed",
                         c->check.messages);
            return -1;
        }
        const char *want = c->pool_known             ? c->pool_name
                           : scan_r == GW_SCAN_FOUND ? c->scan.name
                                                     : "default";
        if (strcmp(c->check.name, want) != 0) {
            refuse_model(c, want);
            return -1;
        }
    }
    return 0;
}

void call__on_req_data(struct gw_srv_stream *st, const uint8_t *data, size_t len)
{
    struct gw_call *c = st->user;
    c->last_io_ns = c->w->loop.now_ns; /* --stream-idle-timeout-ms */
    /* The connection window comes back at once; the stream's as an attempt
     * takes the bytes (consume_request) or when they are dropped. */
    nghttp2_session_consume_connection(call__client_sess(c), len);
    if (c->resp_done || c->local != GW_LOCAL_NONE) {
        /* Nothing will read these bytes (the call is decided, or the gateway
         * answers it itself): hand the window back now. */
        nghttp2_session_consume_stream(call__client_sess(c), c->ss.sid, len);
        if (c->local != GW_LOCAL_NONE && !c->resp_done) {
            if (c->reqlog.len + len > LOCAL_REQ_MAX)
                gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "request too large for %s", c->path);
            else if (gw_bufq_append(&c->reqlog, data, len) < 0)
                gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        }
        return;
    }
    uint32_t max = c->w->cfg->max_message_bytes;
    if (gw_framer_feed(&c->req_framer, data, len, max) < 0) {
        nghttp2_session_consume_stream(call__client_sess(c), c->ss.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                     "request message of %" PRIu32 " bytes exceeds the gateway's limit of %" PRIu32
                     " bytes (--max-message-bytes)",
                     c->req_framer.last_len, max);
        return;
    }
    int scan_r = c->scanning ? gw_model_scan_feed(&c->scan, data, len, NULL) : GW_SCAN_MORE;
    if (c->checking && check_models(c, data, len, scan_r) < 0) {
        nghttp2_session_consume_stream(call__client_sess(c), c->ss.sid, len);
        return;
    }
    if (gw_bufq_append(&c->reqlog, data, len) < 0) {
        nghttp2_session_consume_stream(call__client_sess(c), c->ss.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    c->req_total += len;
    call__conn_held(c, (int64_t)len);
    call__conn_buffer_check(c);
    if (c->resp_done)
        return;
    call__replay_account(c);
    if (c->replayable && c->req_total > c->w->cfg->retry_buffer_bytes && c->routed)
        call__stop_replay(c);
    if (c->replayable && c->w->replay_bytes > c->w->cfg->replay_buffer_total)
        call__replay_over_budget(c);
    if (c->scanning) {
        if (scan_r != GW_SCAN_MORE)
            scan_done(c, scan_r);
        return;
    }
    if (c->pfx_wait) {
        prefix_wait_more(c);
        return;
    }
    call__resume_upstream(c);
}

void call__on_req_end(struct gw_srv_stream *st)
{
    struct gw_call *c = st->user;
    c->req_eos = 1;
    if (c->resp_done)
        return;
    if (c->local != GW_LOCAL_NONE) {
        call__answer_local(c);
        return;
    }
    if (!gw_framer_at_boundary(&c->req_framer)) {
        gw_call_fail(c, GW_GRPC_INTERNAL, "request ended in the middle of a gRPC message");
        return;
    }
    if (c->scanning) {
        scan_done(c, gw_model_scan_finish(&c->scan));
        return;
    }
    if (c->pfx_wait) {
        prefix_wait_more(c);
        return;
    }
    call__resume_upstream(c);
}

/* Arms the hedge timer of a call whose pool hedges. */
static void arm_hedge(struct gw_call *c, const struct gw_pool *pool)
{
    if (!c->replayable || !c->ps)
        return;
    uint64_t delay =
        gw_policy_hedge_delay_ns(pool->tun.hedge_delay_ms, &c->ps->latency, LATENCY_MIN_SAMPLES,
                                 pool->tun.hedge_exclude, c->path);
    if (delay == 0)
        return; /* off, excluded, or auto with too few samples yet */
    gw_loop_timer_at(&c->w->loop, &c->hedge_timer, c->w->loop.now_ns + delay);
}

/* Starts the primary attempt of a routed call; with route_by = prefix,
 * once its first message is whole (call_prefix.c). */
static void call_start_primary(struct gw_call *c, const struct gw_pool *pool)
{
    struct gw_worker *w = c->w;
    if (pool->tun.route_by == GW_ROUTE_BY_PREFIX && !c->pfx_ready &&
        call__prefix_prepare(c, pool) > 0)
        return; /* c->pfx_wait: the data or the end of the request comes back here */
    /* Started now, whatever the pool's route_by became while the call waited. */
    c->pfx_wait = 0;
    c->pfx_ready = 1;
    if (call__attempt_start(c, pool, NULL, GW_ATTEMPT_PRIMARY) < 0) {
        gw_call_fail(c, c->start_code, "%s", c->start_msg);
        return;
    }
    if (c->replayable && c->req_total > w->cfg->retry_buffer_bytes)
        call__stop_replay(c); /* the scan for model_name read past the buffer */
    arm_hedge(c, pool);
}

static void call_route(struct gw_call *c)
{
    if (c->resp_done)
        return;
    if (!c->pool_known) {
        memcpy(c->pool_name, "default", 8);
        c->pool_len = 7;
    }
    const struct gw_pool *pool = call__pool(c);
    if (!pool) {
        if (!c->pool_known)
            gw_call_fail(c, GW_GRPC_NOT_FOUND,
                         "the call names no model (x-model or model_name) and no pool "
                         "'default' is configured");
        else
            gw_call_fail(c, GW_GRPC_NOT_FOUND, "unknown model '%s': no pool of that name",
                         c->pool_name);
        return;
    }
    c->pool_known = 1;
    struct gw_auth_verdict v;
    if (gw_auth_on_pool(call_authdb(c), c->w->metrics, c->tenant, pool, &v) < 0) {
        apply_refusal(c, &v);
        return;
    }
    struct gw_worker *w = c->w;
    uint64_t now = w->loop.now_ns;
    c->ps = gw_poolstate_get(&w->poolstates, c->pool_name, c->pool_len);
    if (c->ps) {
        gw_budget_on_call(&c->ps->retry_budget, now, pool->tun.retry_budget_percent,
                          RETRY_BUDGET_MIN);
        gw_budget_on_call(&c->ps->hedge_budget, now, pool->tun.hedge_budget_percent,
                          HEDGE_BUDGET_MIN);
    } else {
        c->replayable = 0; /* no budgets without memory: one attempt */
    }
    if (c->deadline_ns && now >= c->deadline_ns) {
        gw_call_fail(c, GW_GRPC_DEADLINE_EXCEEDED, "deadline exceeded before a replica was tried");
        return;
    }
    call_start_primary(c, pool);
}

/* A call waiting for its first message (route_by = prefix): more request
 * bytes or its end came. */
static void prefix_wait_more(struct gw_call *c)
{
    const struct gw_pool *pool = call__pool(c);
    if (!pool) {
        c->pfx_wait = 0;
        gw_call_fail(c, GW_GRPC_NOT_FOUND, "pool '%s' was removed while the call waited",
                     c->pool_name);
        return;
    }
    call_start_primary(c, pool);
}
