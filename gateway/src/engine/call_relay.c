/* SPDX-License-Identifier: Apache-2.0 */
/* call_relay — a call's answer: response headers held to the commit point,
 * the commit, relaying the winner's messages and trailers to the client,
 * relaying the last failure, the gateway's own statuses (gw_call_fail), the
 * per-connection buffer limit (call_local.c answers the gateway's own
 * methods; call_resume.c carries resumable streams).
 * See call.h and call_int.h.
 */
#include "engine/call_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "base/headers.h"
#include "base/log.h"
#include "base/mem.h"
#include "obs/metrics.h"
#include "route/poolstate.h"
#include "route/route.h"

static void submit_held_headers(struct gw_call *c, int with_data);
static void call_fail_v(struct gw_call *c, int code, int64_t pushback_ms, const char *fmt,
                        va_list ap) __attribute__((format(printf, 4, 0)));

/* Ends a call whose attempts all failed and which will not retry: the last
 * replica answer is relayed as the replica sent it; a transport failure
 * becomes the gateway's own status with what went wrong. */
void call__finish_failed(struct gw_call *c)
{
    struct gw_attempt *a = c->last_failed;
    if (!a || !c->last_failed_relayable) {
        gw_call_fail(c, c->fail_code, "%s", c->fail_msg);
        return;
    }
    c->winner = a;
    c->resp_done = 1;
    call__cancel_timers(c);
    call__cancel_attempts(c, a);
    if (!call__client_alive(c))
        return;
    if (a->trailers.n == 0) {
        /* Trailers-only: one HEADERS frame with END_STREAM. */
        submit_held_headers(c, 0);
        return;
    }
    c->trailers_ready = 1;
    submit_held_headers(c, 1);
}

/* --- response ------------------------------------------------------------ */

static ssize_t resp_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data)
{
    struct gw_call *c = source->ptr;
    struct gw_attempt *a = c->winner;
    size_t n = gw_bufq_read(&c->respbuf, buf, length);
    call__conn_held(c, -(int64_t)n);
    if (n > 0)
        c->last_io_ns = c->w->loop.now_ns; /* --stream-idle-timeout-ms */
    if (n > 0 && c->rs) {
        call__resume_taken(c, n);
    } else if (n > 0 && a && a->st.uc) {
        nghttp2_session_consume_stream(a->st.uc->conn.sess, a->st.sid, n);
        gw_conn_mark_dirty(&a->st.uc->conn);
    }
    if (c->respbuf.len == 0 && c->trailers_ready) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        /* Every trailer goes (grpc-status may be the last of many): their
         * number was bounded by --max-header-count when they arrived. */
        struct gw_hdrlist *t = call__resp_trailers(c);
        nghttp2_nv stack_nv[64];
        nghttp2_nv *nv = t->n <= 64 ? stack_nv : gw_malloc(t->n * sizeof(*nv));
        int rv = NGHTTP2_ERR_NOMEM;
        if (nv) {
            size_t nt = gw_hdrlist_to_nv(t, nv);
            rv = nghttp2_submit_trailer(session, stream_id, nv, nt);
            if (nv != stack_nv)
                gw_free(nv);
        }
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
    if (c->resp_submitted || !call__client_alive(c))
        return;
    c->resp_submitted = 1;
    struct gw_hdrlist *h = call__resp_hdrs(c);
    size_t cap = h->n + 1;
    nghttp2_nv stack_nv[48];
    nghttp2_nv *nv = cap <= 48 ? stack_nv : gw_malloc(cap * sizeof(*nv));
    int rv = NGHTTP2_ERR_NOMEM;
    if (nv) {
        nv[0] = (nghttp2_nv)NV_LIT(":status", "200");
        size_t n = 1 + gw_hdrlist_to_nv(h, nv + 1);
        nghttp2_data_provider prd = {.source.ptr = c, .read_callback = resp_read_cb};
        rv = nghttp2_submit_response(call__client_sess(c), c->ss.sid, nv, n,
                                     with_data ? &prd : NULL);
        if (nv != stack_nv)
            gw_free(nv);
    }
    if (rv != 0)
        call__reset_stream(&c->sc->conn, c->ss.sid, NGHTTP2_INTERNAL_ERROR);
    call__mark_client_dirty(c);
}

/* Response bytes or the final status are ready for the client: send the
 * held headers the first time, else wake the client's data provider. */
void call__relay_response(struct gw_call *c)
{
    if (!c->resp_submitted)
        submit_held_headers(c, 1);
    else
        nghttp2_session_resume_data(call__client_sess(c), c->ss.sid);
    call__mark_client_dirty(c);
}

/* The commit point: attempt <a> answers the call; every other attempt is
 * reset and no new one starts. */
static void commit(struct gw_attempt *a)
{
    struct gw_call *c = a->call;
    struct gw_worker *w = c->w;
    c->winner = a;
    gw_loop_timer_cancel(&w->loop, &a->try_timer);
    gw_loop_timer_cancel(&w->loop, &c->retry_timer);
    gw_loop_timer_cancel(&w->loop, &c->hedge_timer);
    call__cancel_attempts(c, a);
    if (c->ps)
        gw_latency_add(&c->ps->latency, w->loop.now_ns - a->start_ns);
    if (a->kind == GW_ATTEMPT_HEDGE)
        gw_metrics_policy(w->metrics, GW_POLICY_HEDGE_WON);
    call__report_outcome(a, 1);
    /* With stream resume on, the request stays for a resume attempt. */
    if (!call__resume_commit(c))
        call__stop_replay(c);
}

int call__on_resp_header(struct gw_up_stream *st, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen)
{
    struct gw_attempt *a = st->user;
    struct gw_call *c = a->call;
    if (a->cancelled || c->resp_done)
        return 0;
    if (namelen > 0 && name[0] == ':') {
        if (!a->in_trailers && call__name_is(name, namelen, ":status")) {
            int code = 0;
            for (size_t i = 0; i < valuelen && i < 3; i++)
                code = code * 10 + (value[i] - '0');
            a->http_status = code;
        }
        return 0;
    }
    if (!gw_hdr_forwardable(name, namelen, value, valuelen))
        return 0;
    if (namelen >= 21 && name[0] == 'e')
        call__load_report(a, name, namelen, value, valuelen); /* ORCA: endpoint-load-metrics */
    if (call__name_is(name, namelen, "grpc-retry-pushback-ms")) {
        a->pushback =
            gw_policy_pushback_parse((const char *)value, valuelen, &a->pushback_ms) == 0 ? 1 : -1;
        uint32_t cap = c->w->cfg->max_pushback_ms;
        if (a->pushback > 0 && a->pushback_ms > cap) {
            uint64_t hits = gw_worker_limit_hit(c->w, GW_LIMIT_PUSHBACK_CAPPED);
            if (hits)
                gw_log(GW_LOG_INFO, "pushback_capped", "{s:s, s:I, s:i, s:I}", "replica",
                       call__attempt_addr(a), "pushback_ms", (json_int_t)a->pushback_ms,
                       "max_pushback_ms", (int)cap, "hits", (json_int_t)hits);
            a->pushback_ms = cap;
        }
    }
    struct gw_hdrlist *h = a->in_trailers ? &a->trailers : &a->hdrs;
    return gw_hdrlist_add(h, name, namelen, value, valuelen) < 0 ? -1 : 0;
}

/* Attempt <a>'s final header block <h> (trailers, or the headers of a
 * trailers-only answer) arrived before any response message: a retryable
 * status fails the attempt, anything else answers the call. */
static void attempt_final(struct gw_attempt *a, const struct gw_hdrlist *h, int trailers_only)
{
    struct gw_call *c = a->call;
    int code = call__status_in(h);
    if (code < 0) {
        call__attempt_failed(a, GW_GRPC_INTERNAL, 0, 0,
                             "replica %s ended the call without grpc-status",
                             call__attempt_addr(a));
        return;
    }
    const struct gw_pool *pool = call__pool(c);
    if (pool && gw_policy_status_retryable(pool->tun.retry_on, code, a->pushback)) {
        call__attempt_failed(a, code, 1, 1, "replica %s answered %s", call__attempt_addr(a),
                             gw_grpc_status_name(code));
        return;
    }
    commit(a);
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    if (!call__client_alive(c))
        return;
    if (trailers_only) {
        submit_held_headers(c, 0);
        return;
    }
    c->trailers_ready = 1;
    call__relay_response(c);
}

void call__on_resp_headers_done(struct gw_up_stream *st, int end_stream)
{
    struct gw_attempt *a = st->user;
    struct gw_call *c = a->call;
    if (a->cancelled || c->resp_done)
        return;
    if (!a->in_trailers) {
        if (a->kind == GW_ATTEMPT_RESUME && c->winner == a) {
            call__resume_headers(a, end_stream);
            return;
        }
        if (a->http_status != 200) {
            int code = gw_grpc_status_from_http(a->http_status);
            const struct gw_pool *pool = call__pool(c);
            int retryable = pool && ((pool->tun.retry_on >> code) & 1);
            if (c->winner == a) {
                gw_call_fail(c, code, "replica %s answered HTTP %d", call__attempt_addr(a),
                             a->http_status);
                return;
            }
            call__attempt_cancel(a);
            call__attempt_failed(a, code, 0, retryable, "replica %s answered HTTP %d",
                                 call__attempt_addr(a), a->http_status);
            return;
        }
        if (end_stream)
            attempt_final(a, &a->hdrs, 1); /* trailers-only */
        return;                            /* else held until a message or the status */
    }
    if (c->winner != a) {
        attempt_final(a, &a->trailers, 0);
        return;
    }
    if (c->rs && call__resume_trailers(a, &a->trailers))
        return;
    call__relay_trailers(a);
}

void call__relay_trailers_only(struct gw_attempt *a)
{
    struct gw_call *c = a->call;
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    if (call__client_alive(c))
        submit_held_headers(c, 0);
}

void call__relay_trailers(struct gw_attempt *a)
{
    struct gw_call *c = a->call;
    /* The committed attempt's trailers: the final status. */
    if (call__status_in(&a->trailers) < 0) {
        gw_call_fail(c, GW_GRPC_INTERNAL, "replica %s ended the call without grpc-status",
                     call__attempt_addr(a));
        return;
    }
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    c->trailers_ready = 1;
    if (call__client_alive(c))
        call__relay_response(c);
}

/* Connection windows come back on receipt, so each stream of a client may
 * hold up to a stream window either way: answer bytes the client does not
 * read, request bytes no replica takes. A connection with many streams could
 * hold streams x window. Past --max-conn-buffer-bytes the call that went over
 * ends with RESOURCE_EXHAUSTED: its answer bytes are dropped, its attempts
 * reset, and its stream reset after the status (h2srv), which gives its
 * request bytes back. */
void call__conn_buffer_check(struct gw_call *c)
{
    const struct gw_config *cfg = c->w->cfg;
    if (!c->sc || c->resp_done || c->sc->held <= cfg->max_conn_buffer_bytes)
        return;
    uint64_t held = c->sc->held;
    uint64_t hits = gw_worker_limit_hit(c->w, GW_LIMIT_CONN_BUFFER);
    if (hits)
        gw_log(GW_LOG_WARN, "conn_buffer_exceeded", "{s:I, s:s?, s:s, s:I, s:I, s:I}", "call",
               (json_int_t)c->id, "path", c->path, "peer", c->sc->peer, "held", (json_int_t)held,
               "limit", (json_int_t)cfg->max_conn_buffer_bytes, "hits", (json_int_t)hits);
    gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                 "the client connection holds %" PRIu64 " bytes (answers it has not read, "
                 "requests no replica has taken), over the gateway's limit of %" PRIu32
                 " (--max-conn-buffer-bytes)",
                 held, cfg->max_conn_buffer_bytes);
}

void call__on_resp_data(struct gw_up_stream *st, const uint8_t *data, size_t len)
{
    struct gw_attempt *a = st->user;
    struct gw_call *c = a->call;
    /* upstream.c gave the connection window back on receipt; the stream's
     * comes back as the client takes the bytes (resp_read_cb) or here when
     * they are dropped. */
    nghttp2_session *us = a->st.uc->conn.sess;
    if (a->cancelled || c->resp_done || !call__client_alive(c)) {
        nghttp2_session_consume_stream(us, a->st.sid, len);
        return;
    }
    if (!c->winner)
        commit(a); /* the first response message decides the call */
    if (c->rs) {
        call__resume_data(a, data, len);
        return;
    }
    uint32_t max = c->w->cfg->max_message_bytes;
    if (gw_framer_feed(&c->resp_framer, data, len, max) < 0) {
        nghttp2_session_consume_stream(us, a->st.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                     "response message of %" PRIu32 " bytes from replica %s exceeds the "
                     "gateway's limit of %" PRIu32 " bytes (--max-message-bytes)",
                     c->resp_framer.last_len, call__attempt_addr(a), max);
        return;
    }
    if (gw_bufq_append(&c->respbuf, data, len) < 0) {
        nghttp2_session_consume_stream(us, a->st.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    c->resp_total += len;
    call__conn_held(c, (int64_t)len);
    call__relay_response(c);
    call__conn_buffer_check(c);
}

/* The reason an upstream RST_STREAM gives, as a gRPC status (gRPC's
 * HTTP/2 error code mapping). */
int call__rst_to_grpc(uint32_t err)
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

/* A response header block of an attempt begins (attempt_stream_ops):
 * headers, or trailers. */
void call__on_begin_headers(struct gw_up_stream *st, int trailers)
{
    ((struct gw_attempt *)st->user)->in_trailers = trailers;
}

/* --- the gateway's own statuses ------------------------------------------ */

void gw_call_fail(struct gw_call *c, int code, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    call_fail_v(c, code, -1, fmt, ap);
    va_end(ap);
}

void gw_call_fail_pushback(struct gw_call *c, int code, uint32_t pushback_ms, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    call_fail_v(c, code, pushback_ms, fmt, ap);
    va_end(ap);
}

static void call_fail_v(struct gw_call *c, int code, int64_t pushback_ms, const char *fmt,
                        va_list ap)
{
    if (c->resp_done)
        return;
    c->resp_done = 1;
    c->status = code;
    call__cancel_timers(c);
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    gw_log(code == GW_GRPC_NOT_FOUND || code == GW_GRPC_DEADLINE_EXCEEDED ? GW_LOG_DEBUG
                                                                          : GW_LOG_INFO,
           "call_failed", "{s:I, s:s?, s:s, s:s}", "call", (json_int_t)c->id, "path", c->path,
           "status", gw_grpc_status_name(code), "message", msg);

    struct gw_attempt *win = c->winner;
    call__cancel_attempts(c, NULL);
    if (!call__client_alive(c))
        return;

    char enc[1024], st[12], pb[24];
    gw_grpc_message_encode(msg, enc, sizeof(enc));
    snprintf(st, sizeof(st), "%d", code);
    snprintf(pb, sizeof(pb), "%" PRId64, pushback_ms);
    if (!c->resp_submitted) {
        nghttp2_nv nv[] = {
            call__nv_str(":status", c->bad_request_http ? c->bad_request_http : "200"),
            NV_LIT("content-type", "application/grpc"), call__nv_str("grpc-status", st),
            call__nv_str("grpc-message", enc), call__nv_str("grpc-retry-pushback-ms", pb)};
        if (nghttp2_submit_response(call__client_sess(c), c->ss.sid, nv, pushback_ms >= 0 ? 5 : 4,
                                    NULL))
            call__reset_stream(&c->sc->conn, c->ss.sid, NGHTTP2_INTERNAL_ERROR);
        c->resp_submitted = 1;
    } else {
        /* Headers (and maybe messages) already went out: drop what is still
         * queued and end with the status in trailers. */
        size_t dropped = c->respbuf.len;
        call__conn_held(c, -(int64_t)dropped);
        gw_bufq_reset(&c->respbuf);
        if (c->rs) {
            call__resume_dropped(c);
        } else if (dropped && win && win->st.uc) {
            nghttp2_session_consume_stream(win->st.uc->conn.sess, win->st.sid, dropped);
            gw_conn_mark_dirty(&win->st.uc->conn);
        }
        struct gw_hdrlist *t = call__resp_trailers(c);
        gw_hdrlist_reset(t);
        if (gw_hdrlist_add(t, "grpc-status", 11, st, strlen(st)) < 0 ||
            gw_hdrlist_add(t, "grpc-message", 12, enc, strlen(enc)) < 0) {
            call__reset_stream(&c->sc->conn, c->ss.sid, NGHTTP2_INTERNAL_ERROR);
        } else {
            c->trailers_ready = 1;
            nghttp2_session_resume_data(call__client_sess(c), c->ss.sid);
        }
    }
    call__mark_client_dirty(c);
}
