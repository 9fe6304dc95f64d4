/* call — the call engine; see call.h for the model.
 *
 * Consumption rule (end-to-end flow control): bytes received on one session
 * are handed back to that session with nghttp2_session_consume() only when
 * the other session has taken them (a data provider copied them into a
 * frame), or when they are dropped. Dropped bytes are consumed too, or the
 * connection window would leak and the connection stall.
 */
#include "call.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "auth.h"
#include "h2srv.h"
#include "headers.h"
#include "localsvc.h"
#include "log.h"
#include "mem.h"
#include "route.h"
#include "upstream.h"
#include "worker.h"

#define KSERVE_PREFIX "/inference.GRPCInferenceService/"
#define LOCAL_REQ_MAX 65536 /* requests the gateway answers itself are tiny */

static void call_route(struct gw_call *c);

static nghttp2_session *client_sess(struct gw_call *c)
{
    return c->sc->conn.sess;
}

static int client_alive(const struct gw_call *c)
{
    return !c->client_closed && !c->sc->conn.closed;
}

static void mark_client_dirty(struct gw_call *c)
{
    if (client_alive(c))
        gw_conn_mark_dirty(&c->sc->conn);
}

static const char *replica_addr(const struct gw_call *c)
{
    return c->att.up ? c->att.up->addr : "(none)";
}

static void deadline_cb(struct gw_timer *t, void *arg)
{
    struct gw_call *c = arg;
    gw_call_fail(c, GW_GRPC_DEADLINE_EXCEEDED, "deadline exceeded (grpc-timeout %" PRIu64 " ms)",
                 (c->deadline_ns - c->att_start_ns + 999999) / 1000000);
}

struct gw_call *gw_call_new(struct gw_srv_conn *sc, int32_t sid)
{
    struct gw_call *c = gw_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->w = sc->w;
    c->sc = sc;
    c->sid = sid;
    c->id = ++sc->w->calls_started;
    c->att.sid = -1;
    c->status = -1;
    c->att_start_ns = sc->w->loop.now_ns;
    gw_hdrlist_init(&c->req_hdrs);
    gw_hdrlist_init(&c->resp_hdrs);
    gw_hdrlist_init(&c->resp_trailers);
    gw_bufq_init(&c->reqbuf);
    gw_bufq_init(&c->respbuf);
    gw_framer_init(&c->req_framer);
    gw_framer_init(&c->resp_framer);
    gw_timer_init(&c->deadline_timer, deadline_cb, c);
    gw_srv_conn_add_call(sc, c);
    return c;
}

static void call_free(struct gw_call *c)
{
    int st = c->status >= 0 ? c->status : gw_metrics_status_of(&c->resp_trailers, &c->resp_hdrs);
    gw_metrics_call_end(c->w->metrics, c->w->routes, c->pool_len ? c->pool_name : NULL, c->pool_len,
                        c->path, st < 0 ? GW_GRPC_CANCELLED : st,
                        c->w->loop.now_ns - c->att_start_ns);
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    gw_hdrlist_reset(&c->req_hdrs);
    gw_hdrlist_reset(&c->resp_hdrs);
    gw_hdrlist_reset(&c->resp_trailers);
    gw_bufq_reset(&c->reqbuf);
    gw_bufq_reset(&c->respbuf);
    struct gw_worker *w = c->w;
    gw_free(c);
    gw_worker_check_drained(w);
}

/* A call goes when neither side can call back into it any more. */
static void maybe_free(struct gw_call *c)
{
    if (c->client_closed && !c->att.open)
        call_free(c);
}

static int name_is(const uint8_t *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(name, lit, n) == 0;
}

static void set_bad_request(struct gw_call *c, int code, const char *msg)
{
    if (!c->bad_request) {
        c->bad_request = msg;
        c->bad_request_code = code;
    }
}

int gw_call_on_req_header(struct gw_call *c, const uint8_t *name, size_t namelen,
                          const uint8_t *value, size_t valuelen)
{
    if (namelen > 0 && name[0] == ':') {
        /* :path and :authority are kept in req_hdrs (they arrive first, so
         * they stay ahead of the metadata when forwarded). */
        int keep = name_is(name, namelen, ":path");
        if (name_is(name, namelen, ":authority"))
            keep = c->has_authority = 1;
        if (name_is(name, namelen, ":method") && (valuelen != 4 || memcmp(value, "POST", 4) != 0))
            set_bad_request(c, GW_GRPC_UNIMPLEMENTED, "gRPC calls use the POST method");
        if (!keep)
            return 0;
        return gw_hdrlist_add(&c->req_hdrs, name, namelen, value, valuelen) < 0 ? -1 : 0;
    }
    if (name_is(name, namelen, "grpc-timeout")) {
        uint64_t ns;
        if (gw_grpc_timeout_parse((const char *)value, valuelen, &ns) < 0) {
            set_bad_request(c, GW_GRPC_INVALID_ARGUMENT, "malformed grpc-timeout header");
            return 0;
        }
        c->deadline_ns = c->w->loop.now_ns + (ns ? ns : 1);
        return 0;
    }
    if (name_is(name, namelen, "content-type")) {
        if (valuelen < 16 || memcmp(value, "application/grpc", 16) != 0)
            set_bad_request(c, GW_GRPC_INVALID_ARGUMENT,
                            "content-type is not application/grpc: this endpoint serves gRPC");
    } else if (name_is(name, namelen, "x-model")) {
        if (valuelen == 0 || valuelen > GW_MODEL_NAME_MAX) {
            set_bad_request(c, GW_GRPC_INVALID_ARGUMENT, "x-model must be 1 to 255 bytes long");
            return 0;
        }
        memcpy(c->pool_name, value, valuelen);
        c->pool_name[valuelen] = '\0';
        c->pool_len = valuelen;
        c->pool_known = 1;
    } else if (name_is(name, namelen, "te")) {
        if (valuelen == 8 && !memcmp(value, "trailers", 8))
            c->has_te = 1;
    }
    if (!gw_hdr_forwardable(name, namelen, value, valuelen))
        return 0;
    return gw_hdrlist_add(&c->req_hdrs, name, namelen, value, valuelen) < 0 ? -1 : 0;
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

void gw_call_on_req_headers_done(struct gw_call *c)
{
    c->path = gw_hdrlist_get(&c->req_hdrs, ":path", NULL);
    if (c->bad_request) {
        gw_call_fail(c, c->bad_request_code, "%s", c->bad_request);
        return;
    }
    if (!c->path || c->path[0] != '/') {
        gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT, "missing or malformed :path");
        return;
    }
    if (c->deadline_ns) {
        if (gw_loop_timer_at(&c->w->loop, &c->deadline_timer, c->deadline_ns) < 0) {
            gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
            return;
        }
    }
    c->local = gw_localsvc_match(c->path);
    if (c->local != GW_LOCAL_HEALTH_CHECK && gw_auth_on_headers(c) < 0)
        return;
    if (c->local != GW_LOCAL_NONE)
        return; /* answered once the request message is complete */
    if (!c->pool_known && is_model_method(c->path)) {
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
    if (result == GW_SCAN_FOUND && c->scan.name_len > 0) {
        memcpy(c->pool_name, c->scan.name, c->scan.name_len);
        c->pool_name[c->scan.name_len] = '\0';
        c->pool_len = c->scan.name_len;
        c->pool_known = 1;
    }
    call_route(c);
}

static void resume_upstream(struct gw_call *c)
{
    if (c->att.open && c->att.uc) {
        nghttp2_session_resume_data(c->att.uc->conn.sess, c->att.sid);
        gw_conn_mark_dirty(&c->att.uc->conn);
    }
}

void gw_call_on_req_data(struct gw_call *c, const uint8_t *data, size_t len)
{
    if (c->resp_done || c->local != GW_LOCAL_NONE) {
        /* Nothing will read these bytes (the call is decided, or the gateway
         * answers it itself): hand the window back now. */
        nghttp2_session_consume(client_sess(c), c->sid, len);
        if (c->local != GW_LOCAL_NONE && !c->resp_done) {
            if (c->reqbuf.len + len > LOCAL_REQ_MAX)
                gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "request too large for %s", c->path);
            else if (gw_bufq_append(&c->reqbuf, data, len) < 0)
                gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        }
        return;
    }
    uint32_t max = c->w->cfg->max_message_bytes;
    if (gw_framer_feed(&c->req_framer, data, len, max) < 0) {
        nghttp2_session_consume(client_sess(c), c->sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                     "request message of %" PRIu32 " bytes exceeds the gateway's limit of %" PRIu32
                     " bytes (--max-message-bytes)",
                     c->req_framer.last_len, max);
        return;
    }
    if (gw_bufq_append(&c->reqbuf, data, len) < 0) {
        nghttp2_session_consume(client_sess(c), c->sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    if (c->scanning) {
        int r = gw_model_scan_feed(&c->scan, data, len, NULL);
        if (r != GW_SCAN_MORE)
            scan_done(c, r);
        return;
    }
    resume_upstream(c);
}

static void answer_local(struct gw_call *c);

void gw_call_on_req_end(struct gw_call *c)
{
    c->req_eos = 1;
    if (c->resp_done)
        return;
    if (c->local != GW_LOCAL_NONE) {
        answer_local(c);
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
    resume_upstream(c);
}

/* --- upstream attempt ---------------------------------------------------- */

static ssize_t req_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                           uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    struct gw_call *c = source->ptr;
    size_t n = gw_bufq_read(&c->reqbuf, buf, length);
    if (n > 0 && client_alive(c)) {
        nghttp2_session_consume(client_sess(c), c->sid, n);
        gw_conn_mark_dirty(&c->sc->conn);
    }
    if (c->reqbuf.len == 0 && c->req_eos) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

/* A replica of the worker's snapshot may take this call: not draining,
 * not tried by this call already, and reachable. */
static int eligible_cb(uint32_t idx, void *ctx)
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

#define NV_LIT(n, v)                                                                               \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

static nghttp2_nv nv_str(const char *n, const char *v)
{
    nghttp2_nv nv = {(uint8_t *)n, (uint8_t *)v, strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* Opens the attempt's stream on <uc>. Returns 0, or -1 after failing the call. */
static int submit_attempt(struct gw_call *c, struct gw_up_conn *uc, uint64_t now)
{
    size_t cap = c->req_hdrs.n + 8;
    nghttp2_nv stack_nv[48];
    nghttp2_nv *nv = cap <= 48 ? stack_nv : gw_malloc(cap * sizeof(*nv));
    if (!nv) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return -1;
    }
    size_t n = 0;
    nv[n++] = (nghttp2_nv)NV_LIT(":method", "POST");
    nv[n++] = (nghttp2_nv)NV_LIT(":scheme", "http");
    if (!c->has_authority)
        nv[n++] = nv_str(":authority", replica_addr(c));
    n += gw_hdrlist_to_nv(&c->req_hdrs, nv + n); /* :path, :authority, metadata */
    if (!c->has_te)
        nv[n++] = (nghttp2_nv)NV_LIT("te", "trailers");
    char tbuf[GW_GRPC_TIMEOUT_BUFLEN];
    if (c->deadline_ns) {
        gw_grpc_timeout_format(c->deadline_ns - now, tbuf);
        nv[n++] = nv_str("grpc-timeout", tbuf);
    }
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = req_read_cb};
    int32_t sid = gw_upstream_submit(uc, &c->att, nv, n, &prd, c);
    if (nv != stack_nv)
        gw_free(nv);
    if (sid < 0) {
        gw_call_fail(c, GW_GRPC_INTERNAL, "cannot open a stream to replica %s: %s", replica_addr(c),
                     nghttp2_strerror(sid));
        return -1;
    }
    c->routed = 1;
    return 0;
}

/* Starts an attempt on the best eligible replica of the call's pool. */
static void call_attempt(struct gw_call *c, const struct gw_pool *pool)
{
    struct gw_worker *w = c->w;
    uint64_t now = w->loop.now_ns;
    if (c->deadline_ns && now >= c->deadline_ns) {
        gw_call_fail(c, GW_GRPC_DEADLINE_EXCEEDED, "deadline exceeded before a replica was tried");
        return;
    }
    size_t keylen = 0;
    const char *key = gw_hdrlist_get(&c->req_hdrs, pool->tun.route_header, &keylen);
    uint32_t point = key ? gw_hash32(key, keylen) : gw_loop_rand(&w->loop);

    /* Bounded loads need the in-flight count of each of the pool's replicas. */
    uint32_t stack_load[128], *load = NULL;
    size_t nr = pool->ring.nreplicas;
    if (pool->tun.balance_factor > 0 && nr > 0) {
        load = nr <= 128 ? stack_load : gw_malloc(nr * sizeof(*load));
        for (size_t i = 0; load && i < nr; i++)
            load[i] = w->upmap[pool->replica_ids[i]]->inflight;
    }
    const size_t max_tried = sizeof(c->tried) / sizeof(c->tried[0]);
    for (;;) {
        int idx = gw_routes_pick(pool, point, eligible_cb, c, load);
        if (idx < 0 || c->ntried == max_tried) {
            gw_call_fail(c, GW_GRPC_UNAVAILABLE,
                         "no replica of pool '%s' is reachable (%zu configured)", pool->name,
                         pool->ring.nreplicas);
            break;
        }
        struct gw_upstream *up = w->upmap[idx];
        c->tried[c->ntried++] = up;
        struct gw_up_conn *uc = gw_upstream_conn_for(up);
        if (!uc)
            continue;
        c->att.up = up;
        submit_attempt(c, uc, now);
        break;
    }
    if (load != stack_load)
        gw_free(load);
}

static void call_route(struct gw_call *c)
{
    if (c->resp_done)
        return;
    if (!c->pool_known) {
        memcpy(c->pool_name, "default", 8);
        c->pool_len = 7;
    }
    const struct gw_pool *pool = gw_routes_find_pool(c->w->routes, c->pool_name, c->pool_len);
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
    if (gw_auth_on_pool(c, pool) < 0)
        return;
    call_attempt(c, pool);
}

/* --- response ------------------------------------------------------------ */

static ssize_t resp_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data)
{
    struct gw_call *c = source->ptr;
    size_t n = gw_bufq_read(&c->respbuf, buf, length);
    if (n > 0 && c->att.uc) {
        nghttp2_session_consume(c->att.uc->conn.sess, c->att.sid, n);
        gw_conn_mark_dirty(&c->att.uc->conn);
    }
    if (c->respbuf.len == 0 && c->trailers_ready) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv nv[64];
        size_t nt = c->resp_trailers.n < 64 ? c->resp_trailers.n : 64;
        struct gw_hdrlist *t = &c->resp_trailers;
        for (size_t i = 0; i < nt; i++) {
            nv[i].name = (uint8_t *)t->buf + t->ent[i].name_off;
            nv[i].namelen = t->ent[i].name_len;
            nv[i].value = (uint8_t *)t->buf + t->ent[i].value_off;
            nv[i].valuelen = t->ent[i].value_len;
            nv[i].flags = NGHTTP2_NV_FLAG_NONE;
        }
        int rv = nghttp2_submit_trailer(session, stream_id, nv, nt);
        if (rv != 0)
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
        return (ssize_t)n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

/* Submits the held response headers to the client: with a data provider
 * (messages and trailers follow), or alone with END_STREAM when <with_data>
 * is 0 (a trailers-only response). A failure resets the client stream. */
static void submit_held_headers(struct gw_call *c, int with_data)
{
    if (c->resp_submitted || !client_alive(c))
        return;
    c->resp_submitted = 1;
    size_t cap = c->resp_hdrs.n + 1;
    nghttp2_nv stack_nv[48];
    nghttp2_nv *nv = cap <= 48 ? stack_nv : gw_malloc(cap * sizeof(*nv));
    int rv = NGHTTP2_ERR_NOMEM;
    if (nv) {
        nv[0] = (nghttp2_nv)NV_LIT(":status", "200");
        size_t n = 1 + gw_hdrlist_to_nv(&c->resp_hdrs, nv + 1);
        nghttp2_data_provider prd = {.source.ptr = c, .read_callback = resp_read_cb};
        rv = nghttp2_submit_response(client_sess(c), c->sid, nv, n, with_data ? &prd : NULL);
        if (nv != stack_nv)
            gw_free(nv);
    }
    if (rv != 0)
        nghttp2_submit_rst_stream(client_sess(c), NGHTTP2_FLAG_NONE, c->sid,
                                  NGHTTP2_INTERNAL_ERROR);
    mark_client_dirty(c);
}

/* The commit point: headers go out, messages and trailers follow. */
static void commit_response(struct gw_call *c)
{
    submit_held_headers(c, 1);
}

/* Response bytes or the final status are ready for the client: commit the
 * held headers the first time, else wake the client's data provider. */
static void relay_response(struct gw_call *c)
{
    if (!c->resp_submitted)
        commit_response(c);
    else
        nghttp2_session_resume_data(client_sess(c), c->sid);
    mark_client_dirty(c);
}

int gw_call_on_resp_header(struct gw_call *c, const uint8_t *name, size_t namelen,
                           const uint8_t *value, size_t valuelen)
{
    if (c->resp_done && !c->resp_in_trailers)
        return 0;
    if (namelen > 0 && name[0] == ':') {
        if (!c->resp_in_trailers && name_is(name, namelen, ":status")) {
            int st = 0;
            for (size_t i = 0; i < valuelen && i < 3; i++)
                st = st * 10 + (value[i] - '0');
            c->http_status = st;
        }
        return 0;
    }
    if (!gw_hdr_forwardable(name, namelen, value, valuelen))
        return 0;
    struct gw_hdrlist *h = c->resp_in_trailers ? &c->resp_trailers : &c->resp_hdrs;
    return gw_hdrlist_add(h, name, namelen, value, valuelen) < 0 ? -1 : 0;
}

/* The replica's final header block <h> decides the call: it must carry
 * grpc-status. Returns 0 (status decided, deadline disarmed) or -1 after
 * failing the call. */
static int final_status(struct gw_call *c, const struct gw_hdrlist *h)
{
    if (!gw_hdrlist_get(h, "grpc-status", NULL)) {
        gw_call_fail(c, GW_GRPC_INTERNAL, "replica %s ended the call without grpc-status",
                     replica_addr(c));
        return -1;
    }
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    return 0;
}

void gw_call_on_resp_headers_done(struct gw_call *c, int end_stream)
{
    if (c->resp_done)
        return;
    if (!c->resp_in_trailers) {
        if (c->http_status != 200) {
            gw_call_fail(c, gw_grpc_status_from_http(c->http_status), "replica %s answered HTTP %d",
                         replica_addr(c), c->http_status);
            return;
        }
        if (!end_stream)
            return; /* held until the first message or the final status */
        /* Trailers-only: relay it as one HEADERS frame with END_STREAM. */
        if (final_status(c, &c->resp_hdrs) == 0)
            submit_held_headers(c, 0);
        return;
    }
    /* Trailers: the final status. */
    if (final_status(c, &c->resp_trailers) < 0)
        return;
    c->trailers_ready = 1;
    if (!client_alive(c))
        return;
    relay_response(c);
}

void gw_call_on_resp_data(struct gw_call *c, const uint8_t *data, size_t len)
{
    nghttp2_session *us = c->att.uc->conn.sess;
    if (c->resp_done || !client_alive(c)) {
        nghttp2_session_consume(us, c->att.sid, len);
        return;
    }
    uint32_t max = c->w->cfg->max_message_bytes;
    if (gw_framer_feed(&c->resp_framer, data, len, max) < 0) {
        nghttp2_session_consume(us, c->att.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                     "response message of %" PRIu32 " bytes from replica %s exceeds the "
                     "gateway's limit of %" PRIu32 " bytes (--max-message-bytes)",
                     c->resp_framer.last_len, replica_addr(c), max);
        return;
    }
    if (gw_bufq_append(&c->respbuf, data, len) < 0) {
        nghttp2_session_consume(us, c->att.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    relay_response(c);
}

/* The reason an upstream RST_STREAM gives, as a gRPC status (gRPC's
 * HTTP/2 error code mapping). */
static int rst_to_grpc(uint32_t err)
{
    switch (err) {
    case NGHTTP2_REFUSED_STREAM:
        return GW_GRPC_UNAVAILABLE;
    case NGHTTP2_CANCEL:
        return GW_GRPC_CANCELLED;
    case NGHTTP2_ENHANCE_YOUR_CALM:
        return GW_GRPC_RESOURCE_EXHAUSTED;
    case NGHTTP2_INADEQUATE_SECURITY:
        return GW_GRPC_PERMISSION_DENIED;
    default:
        return GW_GRPC_INTERNAL;
    }
}

/* Releases what the attempt still holds of its connection: response bytes
 * not yet taken by the client are consumed at connection level now, since
 * the stream that carried them is gone. */
static void release_attempt(struct gw_call *c)
{
    if (c->att.uc && c->respbuf.len > 0) {
        nghttp2_session_consume_connection(c->att.uc->conn.sess, c->respbuf.len);
        gw_conn_mark_dirty(&c->att.uc->conn);
    }
    gw_upstream_detach(&c->att);
    c->att.open = 0;
}

void gw_call_on_upstream_close(struct gw_call *c, uint32_t error_code)
{
    const char *addr = replica_addr(c);
    int st = gw_metrics_status_of(&c->resp_trailers, &c->resp_hdrs);
    gw_metrics_attempt(c->att.up ? c->att.up->metrics : NULL, GW_KIND_PRIMARY,
                       error_code != NGHTTP2_NO_ERROR || st < 0 ? GW_OUTCOME_RESET : st);
    release_attempt(c);
    if (!c->resp_done) {
        if (error_code == NGHTTP2_NO_ERROR)
            gw_call_fail(c, GW_GRPC_INTERNAL, "replica %s ended the call without a gRPC status",
                         addr);
        else
            gw_call_fail(c, rst_to_grpc(error_code), "replica %s reset the stream: %s", addr,
                         nghttp2_http2_strerror(error_code));
    }
    maybe_free(c);
}

void gw_call_on_upstream_lost(struct gw_call *c, int connected, const char *reason)
{
    c->att.uc = NULL;
    c->att.open = 0;
    gw_metrics_attempt(c->att.up ? c->att.up->metrics : NULL, GW_KIND_PRIMARY,
                       connected ? GW_OUTCOME_CONNECTION_LOST : GW_OUTCOME_CONNECT_FAILED);
    if (!c->resp_done && client_alive(c)) {
        if (!connected) {
            /* The connection never came up, so nothing of this call left the
             * gateway: route it again, past this replica. */
            const struct gw_pool *pool =
                gw_routes_find_pool(c->w->routes, c->pool_name, c->pool_len);
            if (pool) {
                call_attempt(c, pool);
                return;
            }
        }
        gw_call_fail(c, GW_GRPC_UNAVAILABLE, "connection to replica %s lost: %s", replica_addr(c),
                     reason);
    }
    maybe_free(c);
}

void gw_call_on_client_close(struct gw_call *c, uint32_t error_code)
{
    c->client_closed = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    if (!c->sc->conn.closed && c->reqbuf.len > 0)
        nghttp2_session_consume_connection(client_sess(c), c->reqbuf.len);
    gw_bufq_reset(&c->reqbuf);
    gw_srv_conn_remove_call(c->sc, c);
    if (!c->resp_done) {
        c->resp_done = 1;
        gw_log(GW_LOG_DEBUG, "call_cancelled", "{s:I, s:s?, s:s}", "call", (json_int_t)c->id,
               "path", c->path, "reason",
               error_code == NGHTTP2_NO_ERROR ? "client closed the stream" : "client reset");
    }
    if (c->att.open && c->att.uc) {
        nghttp2_submit_rst_stream(c->att.uc->conn.sess, NGHTTP2_FLAG_NONE, c->att.sid,
                                  NGHTTP2_CANCEL);
        gw_conn_mark_dirty(&c->att.uc->conn);
    }
    maybe_free(c);
}

void gw_call_fail(struct gw_call *c, int code, const char *fmt, ...)
{
    if (c->resp_done)
        return;
    c->resp_done = 1;
    c->status = code;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof(msg), fmt, ap);
    va_end(ap);
    gw_log(code == GW_GRPC_NOT_FOUND || code == GW_GRPC_DEADLINE_EXCEEDED ? GW_LOG_DEBUG
                                                                          : GW_LOG_INFO,
           "call_failed", "{s:I, s:s?, s:s, s:s}", "call", (json_int_t)c->id, "path", c->path,
           "status", gw_grpc_status_name(code), "message", msg);

    if (c->att.open && c->att.uc) {
        nghttp2_submit_rst_stream(c->att.uc->conn.sess, NGHTTP2_FLAG_NONE, c->att.sid,
                                  NGHTTP2_CANCEL);
        gw_conn_mark_dirty(&c->att.uc->conn);
    }
    if (!client_alive(c))
        return;

    char enc[1024], st[12];
    gw_grpc_message_encode(msg, enc, sizeof(enc));
    snprintf(st, sizeof(st), "%d", code);
    if (!c->resp_submitted) {
        nghttp2_nv nv[] = {NV_LIT(":status", "200"), NV_LIT("content-type", "application/grpc"),
                           nv_str("grpc-status", st), nv_str("grpc-message", enc)};
        nghttp2_submit_response(client_sess(c), c->sid, nv, 4, NULL);
        c->resp_submitted = 1;
    } else {
        /* Headers (and maybe messages) already went out: drop what is still
         * queued and end with the status in trailers. */
        size_t dropped = c->respbuf.len;
        gw_bufq_reset(&c->respbuf);
        if (dropped && c->att.uc) {
            nghttp2_session_consume(c->att.uc->conn.sess, c->att.sid, dropped);
            gw_conn_mark_dirty(&c->att.uc->conn);
        }
        gw_hdrlist_reset(&c->resp_trailers);
        if (gw_hdrlist_add(&c->resp_trailers, "grpc-status", 11, st, strlen(st)) < 0 ||
            gw_hdrlist_add(&c->resp_trailers, "grpc-message", 12, enc, strlen(enc)) < 0) {
            nghttp2_submit_rst_stream(client_sess(c), NGHTTP2_FLAG_NONE, c->sid,
                                      NGHTTP2_INTERNAL_ERROR);
        } else {
            c->trailers_ready = 1;
            nghttp2_session_resume_data(client_sess(c), c->sid);
        }
    }
    mark_client_dirty(c);
}

/* --- methods the gateway answers itself ---------------------------------- */

static int pools_ready(struct gw_worker *w)
{
    const struct gw_routes *rt = w->routes;
    for (size_t i = 0; i < rt->npools; i++) {
        const struct gw_pool *p = &rt->pools[i];
        int any = 0;
        for (size_t j = 0; j < p->ring.nreplicas && !any; j++)
            any = !rt->replicas[p->replica_ids[j]].drain &&
                  gw_upstream_eligible(w->upmap[p->replica_ids[j]]);
        if (!any)
            return 0;
    }
    return 1;
}

static void answer_local(struct gw_call *c)
{
    uint8_t *req = NULL;
    size_t len = c->reqbuf.len;
    if (len < 5) {
        gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT, "request message missing");
        return;
    }
    req = gw_malloc(len);
    if (!req) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    gw_bufq_read(&c->reqbuf, req, len);
    uint32_t mlen =
        (uint32_t)req[1] << 24 | (uint32_t)req[2] << 16 | (uint32_t)req[3] << 8 | req[4];
    if (req[0] != 0 || mlen != len - 5) {
        gw_free(req);
        gw_call_fail(c, req[0] != 0 ? GW_GRPC_UNIMPLEMENTED : GW_GRPC_INVALID_ARGUMENT,
                     req[0] != 0 ? "compressed requests are not supported for this method"
                                 : "expected exactly one request message");
        return;
    }
    uint8_t *out = NULL;
    size_t outlen = 0;
    const char *err = NULL;
    int st = gw_localsvc_answer(c->local, req + 5, mlen, pools_ready(c->w), c->w->draining, &out,
                                &outlen, &err);
    gw_free(req);
    if (st != GW_GRPC_OK) {
        gw_call_fail(c, st, "%s", err);
        return;
    }
    int rc = gw_bufq_append(&c->respbuf, out, outlen);
    gw_free(out);
    if (rc < 0 || gw_hdrlist_add(&c->resp_hdrs, "content-type", 12, "application/grpc", 16) < 0 ||
        gw_hdrlist_add(&c->resp_trailers, "grpc-status", 11, "0", 1) < 0) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    c->trailers_ready = 1;
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    commit_response(c);
}
