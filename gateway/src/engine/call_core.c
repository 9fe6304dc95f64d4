/* SPDX-License-Identifier: Apache-2.0 */
/* call_core — the call engine's core: a call's lifecycle (creation, deadline and
 * idle timers, the end: metrics, access log, freeing), its request log
 * (replay accounting, consumption on the client stream, trimming), and the
 * stream callbacks h2srv calls (gw_call_srv_ops). See call.h for the model
 * and call_int.h for how the engine's files share the work.
 *
 * Consumption rule (end-to-end flow control, per stream): bytes received on
 * one session are handed back to that session's connection window at once
 * (nghttp2_session_consume_connection, on receipt), and to the stream's
 * window (nghttp2_session_consume_stream) only when the other session has
 * taken them (a data provider copied them into a frame), or when they are
 * dropped. So a call holds at most one stream window of unrelayed bytes per
 * direction, and a stalled stream never holds the connection window that the
 * connection's other streams need (upstream.h). With several attempts
 * reading one request log, request bytes are consumed once, when the
 * furthest attempt takes them.
 *
 * Replay budget: the request log bytes of every call of a worker are
 * counted (w->replay_bytes), with the message hashes its resumable streams
 * keep (call_resume.c: past the budget a stream is not resumed); a call
 * that would take the total past
 * --replay-buffer-total stops keeping its request for replay and runs
 * single-attempt (infergw_replay_budget_exceeded_total, log
 * replay_budget_exceeded).
 */
#include "engine/call_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "obs/accesslog.h"
#include "obs/metrics.h"
#include "route/poolstate.h"
#include "route/route.h"

/* Queues RST_STREAM <err> for stream <sid> of <conn>. When not even that
 * frame can be allocated, closes the connection: without memory, the one
 * way left to end the stream rather than leave its peer waiting. */
void call__reset_stream(struct gw_conn *conn, int32_t sid, uint32_t err)
{
    if (nghttp2_submit_rst_stream(conn->sess, NGHTTP2_FLAG_NONE, sid, err) != 0)
        gw_conn_close(conn, "out of memory");
    gw_conn_mark_dirty(conn);
}

/* The bytes a call holds for its client connection are counted on it
 * (--max-conn-buffer-bytes): request bytes no attempt has taken yet (their
 * stream window is not back) and answer bytes waiting in respbuf for the
 * client; <delta> is what the call gained or lost. Once the client side
 * closed the call no longer counts. */
void call__conn_held(struct gw_call *c, int64_t delta)
{
    if (c->sc)
        c->sc->held += (uint64_t)delta;
}

const char *const call__kind_names[] = {"primary", "retry", "hedge", "resume"};

static void deadline_cb(struct gw_timer *t, void *arg)
{
    struct gw_call *c = arg;
    uint64_t ms = (c->deadline_ns - c->att_start_ns + MS - 1) / MS;
    if (c->deadline_capped) {
        uint64_t hits = gw_worker_limit_hit(c->w, GW_LIMIT_MAX_DEADLINE);
        if (hits)
            gw_log(GW_LOG_INFO, "call_max_deadline", "{s:I, s:s?, s:I, s:I}", "call",
                   (json_int_t)c->id, "path", c->path, "max_deadline_ms", (json_int_t)ms, "hits",
                   (json_int_t)hits);
        gw_call_fail(c, GW_GRPC_DEADLINE_EXCEEDED,
                     "deadline exceeded (the gateway's --max-deadline-ms %" PRIu64 " ms)", ms);
        return;
    }
    gw_call_fail(c, GW_GRPC_DEADLINE_EXCEEDED, "deadline exceeded (grpc-timeout %" PRIu64 " ms)",
                 ms);
}

/* --stream-idle-timeout-ms: the timer is armed once per idle period and
 * re-armed from the latest byte, so moving bytes costs no timer work. */
static void idle_cb(struct gw_timer *t, void *arg)
{
    struct gw_call *c = arg;
    uint64_t idle = (uint64_t)c->w->cfg->stream_idle_timeout_ms * MS, now = c->w->loop.now_ns;
    if (now < c->last_io_ns + idle &&
        gw_loop_timer_at(&c->w->loop, &c->idle_timer, c->last_io_ns + idle) == 0)
        return;
    uint64_t hits = gw_worker_limit_hit(c->w, GW_LIMIT_STREAM_IDLE);
    if (hits)
        gw_log(GW_LOG_INFO, "call_stream_idle", "{s:I, s:s?, s:s, s:i, s:b, s:I}", "call",
               (json_int_t)c->id, "path", c->path, "peer", c->sc ? c->sc->peer : c->peer,
               "timeout_ms", (int)c->w->cfg->stream_idle_timeout_ms, "status_sent", c->resp_done,
               "hits", (json_int_t)hits);
    if (c->resp_done) {
        /* The status is decided but cannot reach the client (it reads
         * nothing): give the stream up. */
        if (call__client_alive(c)) {
            nghttp2_submit_rst_stream(call__client_sess(c), NGHTTP2_FLAG_NONE, c->ss.sid,
                                      NGHTTP2_CANCEL);
            call__mark_client_dirty(c);
        }
        return;
    }
    gw_call_fail(c, GW_GRPC_DEADLINE_EXCEEDED,
                 "stream idle for %" PRIu32 " ms (no bytes either way; --stream-idle-timeout-ms)",
                 c->w->cfg->stream_idle_timeout_ms);
}

struct gw_call *gw_call_new(struct gw_srv_conn *sc, int32_t sid)
{
    struct gw_call *c = gw_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->w = sc->w;
    c->sc = sc;
    c->ss.user = c;
    c->ss.sid = sid;
    c->id = ++sc->w->calls_started;
    c->status = -1;
    c->att_start_ns = sc->w->loop.now_ns;
    c->replayable = sc->w->cfg->retry_buffer_bytes > 0;
    gw_hdrlist_init(&c->req_hdrs);
    gw_hdrlist_init(&c->resp_hdrs);
    gw_hdrlist_init(&c->resp_trailers);
    gw_bufq_init(&c->reqlog);
    gw_bufq_init(&c->respbuf);
    gw_framer_init(&c->req_framer);
    gw_framer_init(&c->resp_framer);
    gw_timer_init(&c->deadline_timer, deadline_cb, c);
    gw_timer_init(&c->idle_timer, idle_cb, c);
    c->last_io_ns = c->att_start_ns;
    gw_timer_init(&c->retry_timer, call__retry_cb, c);
    gw_timer_init(&c->hedge_timer, call__hedge_cb, c);
    gw_srv_conn_add_stream(sc, &c->ss);
    return c;
}

void call__cancel_timers(struct gw_call *c)
{
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    gw_loop_timer_cancel(&c->w->loop, &c->retry_timer);
    gw_loop_timer_cancel(&c->w->loop, &c->hedge_timer);
}

/* Writes the call's access log line (--access-log). */
static void access_log(struct gw_call *c, int code, uint64_t duration_ns)
{
    struct gw_access_attempt atts[GW_ACCESSLOG_MAX_ATTEMPTS];
    size_t n = 0;
    for (size_t i = 0; i < c->natt && n < GW_ACCESSLOG_MAX_ATTEMPTS; i++) {
        const struct gw_attempt *a = c->att[i];
        atts[n].replica = call__attempt_addr(a);
        atts[n].kind = call__kind_names[a->kind];
        atts[n++].outcome = a->outcome >= 0 ? gw_metrics_outcome_name(a->outcome) : "NONE";
    }
    struct gw_access_call f = {
        .worker = c->w->index,
        .call_id = c->id,
        .peer = c->peer,
        .tenant = c->tenant,
        .pool = c->pool_len ? c->pool_name : "",
        .method = c->path ? c->path : "",
        .code = code,
        .duration_ns = duration_ns,
        .req_bytes = c->req_total,
        .resp_bytes = c->resp_total,
        .attempts = atts,
        .nattempts = n,
    };
    if (c->rs) {
        f.resumes = c->rs->resumes;
        f.resume_dropped = c->rs->dropped_msgs;
        f.resume_skipped = c->rs->skipped_msgs;
    }
    f.given_request_id = gw_hdrlist_get(&c->req_hdrs, "x-request-id", &f.given_len);
    char rid[GW_ACCESSLOG_RID_MAX];
    struct gw_access_entry e;
    gw_accesslog_entry(&e, rid, &f);
    gw_worker_access_log(c->w, &e);
}

static void call_free(struct gw_call *c)
{
    int st = c->status >= 0 ? c->status
                            : gw_metrics_status_of(call__resp_trailers(c), call__resp_hdrs(c));
    uint64_t duration = c->w->loop.now_ns - c->att_start_ns;
    gw_metrics_call_end(c->w->metrics, c->w->routes, c->pool_len ? c->pool_name : NULL, c->pool_len,
                        c->path, st < 0 ? GW_GRPC_CANCELLED : st, duration);
    if (gw_accesslog_enabled())
        access_log(c, st < 0 ? GW_GRPC_CANCELLED : st, duration);
    call__cancel_timers(c);
    /* The idle timer outlives cancel_timers (which runs when the status is
     * decided): a decided call may still sit behind a client that reads
     * nothing. It goes with the call. */
    gw_loop_timer_cancel(&c->w->loop, &c->idle_timer);
    for (size_t i = 0; i < c->natt; i++) {
        struct gw_attempt *a = c->att[i];
        gw_loop_timer_cancel(&c->w->loop, &a->try_timer);
        gw_hdrlist_reset(&a->hdrs);
        gw_hdrlist_reset(&a->trailers);
        if (a->up)
            gw_upstream_unref(a->up);
        if (a != &c->first)
            gw_free(a);
    }
    gw_hdrlist_reset(&c->req_hdrs);
    gw_hdrlist_reset(&c->resp_hdrs);
    gw_hdrlist_reset(&c->resp_trailers);
    gw_bufq_reset(&c->reqlog);
    call__replay_account(c);
    call__conn_held(c, -(int64_t)c->respbuf.len);
    gw_bufq_reset(&c->respbuf);
    call__resume_free(c);
    struct gw_worker *w = c->w;
    gw_free(c);
    gw_h2srv_check_drained(w);
}

static int any_open(const struct gw_call *c)
{
    for (size_t i = 0; i < c->natt; i++)
        if (c->att[i]->st.open)
            return 1;
    return 0;
}

/* Attempts still waiting for an outcome (not failed, cancelled or won). */
size_t call__running_attempts(const struct gw_call *c, const struct gw_attempt *except)
{
    size_t n = 0;
    for (size_t i = 0; i < c->natt; i++)
        if (c->att[i] != except && !c->att[i]->finished && c->att[i]->st.open)
            n++;
    return n;
}

/* A call goes when neither side can call back into it any more. */
void call__maybe_free(struct gw_call *c)
{
    if (c->client_closed && !any_open(c))
        call_free(c);
}

int gw_call_answered(const struct gw_call *c)
{
    return c->bad_request != NULL || c->resp_done;
}

/* --- the request log ----------------------------------------------------- */

void call__replay_bytes_add(struct gw_call *c, int64_t d)
{
    c->w->replay_bytes += (uint64_t)d;
    atomic_fetch_add_explicit(&c->w->metrics->replay_bytes, d, memory_order_relaxed);
}

/* Brings the worker's replay byte count up to date with the log's size. */
void call__replay_account(struct gw_call *c)
{
    int64_t d = (int64_t)c->reqlog.len - (int64_t)c->replay_held;
    if (d == 0)
        return;
    c->replay_held = c->reqlog.len;
    call__replay_bytes_add(c, d);
}

/* Hands request bytes up to log offset <off> back to the client session. */
static void consume_request(struct gw_call *c, uint64_t off)
{
    if (off <= c->req_consumed)
        return;
    size_t n = (size_t)(off - c->req_consumed);
    c->req_consumed = off;
    call__conn_held(c, -(int64_t)n);
    if (call__client_alive(c)) {
        nghttp2_session_consume_stream(call__client_sess(c), c->ss.sid, n);
        gw_conn_mark_dirty(&c->sc->conn);
    }
}

/* Once the call can start no other attempt, the log keeps only what an open
 * attempt has not sent yet. */
static void trim_request(struct gw_call *c)
{
    if (c->replayable)
        return;
    uint64_t low = c->req_total;
    for (size_t i = 0; i < c->natt; i++) {
        const struct gw_attempt *a = c->att[i];
        if (a->st.open && !a->cancelled && a->req_off < low)
            low = a->req_off;
    }
    if (low > c->req_base) {
        gw_bufq_drop(&c->reqlog, (size_t)(low - c->req_base));
        call__replay_account(c);
        consume_request(c, low);
        c->req_base = low;
    }
}

/* The request outgrew --retry-buffer-bytes, or the call committed: keep one
 * attempt (the winner, else the one furthest into the request), cancel the
 * others and let the log drop what was sent. */
void call__stop_replay(struct gw_call *c)
{
    if (!c->replayable)
        return;
    c->replayable = 0;
    gw_loop_timer_cancel(&c->w->loop, &c->hedge_timer);
    struct gw_attempt *keep = c->winner;
    for (size_t i = 0; !keep && i < c->natt; i++) {
        struct gw_attempt *a = c->att[i];
        if (a->st.open && !a->finished && (!keep || a->req_off > keep->req_off))
            keep = a;
    }
    for (size_t i = 0; i < c->natt; i++)
        if (c->att[i] != keep && !c->att[i]->finished)
            call__attempt_cancel(c->att[i]);
    trim_request(c);
}

void call__resume_upstream(struct gw_call *c)
{
    for (size_t i = 0; i < c->natt; i++) {
        struct gw_attempt *a = c->att[i];
        if (a->st.open && !a->cancelled && a->st.uc) {
            nghttp2_session_resume_data(a->st.uc->conn.sess, a->st.sid);
            gw_conn_mark_dirty(&a->st.uc->conn);
        }
    }
}

/* The worker's replay buffers are full: the call keeps no more of its
 * request than its one attempt has yet to send. */
void call__replay_over_budget(struct gw_call *c)
{
    struct gw_worker *w = c->w;
    gw_metrics_upstream(w->metrics, GW_UP_REPLAY_OVER_BUDGET);
    gw_log(GW_LOG_INFO, "replay_budget_exceeded", "{s:I, s:I, s:I}", "call", (json_int_t)c->id,
           "worker_replay_bytes", (json_int_t)w->replay_bytes, "limit",
           (json_int_t)w->cfg->replay_buffer_total);
    if (c->routed)
        call__stop_replay(c);
    else
        c->replayable = 0; /* no attempt yet: the first one will be the only one */
}

/* An attempt's data provider: it reads the request log from its own offset;
 * the bytes are consumed on the client stream once the furthest attempt has
 * taken them, and dropped once no other attempt can start. */
ssize_t call__req_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                          uint32_t *data_flags, nghttp2_data_source *source, void *user_data)
{
    struct gw_attempt *a = source->ptr;
    struct gw_call *c = a->call;
    size_t n = gw_bufq_peek(&c->reqlog, (size_t)(a->req_off - c->req_base), buf, length);
    a->req_off += n;
    consume_request(c, a->req_off);
    trim_request(c);
    if (a->req_off == c->req_total && c->req_eos) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
        return (ssize_t)n;
    }
    if (n == 0)
        return NGHTTP2_ERR_DEFERRED;
    return (ssize_t)n;
}

const struct gw_pool *call__pool(const struct gw_call *c)
{
    return gw_routes_find_pool(c->w->routes, c->pool_name, c->pool_len);
}

static void on_client_close(struct gw_srv_stream *st, uint32_t error_code)
{
    struct gw_call *c = st->user;
    c->client_closed = 1;
    call__cancel_timers(c);
    gw_loop_timer_cancel(&c->w->loop, &c->idle_timer);
    /* The connection window got these bytes back on receipt; the stream is gone. */
    call__conn_held(c, -(int64_t)(c->req_total - c->req_consumed));
    c->req_consumed = c->req_total;
    gw_bufq_reset(&c->reqlog);
    call__replay_account(c);
    c->req_base = c->req_total;
    gw_srv_conn_remove_stream(c->sc, &c->ss);
    /* The connection may be freed before the call (an attempt still open):
     * keep what the access log needs, and no way back to it. */
    _Static_assert(sizeof(c->peer) == sizeof(c->sc->peer), "peer buffers differ");
    memcpy(c->peer, c->sc->peer, sizeof(c->peer));
    call__conn_held(c, -(int64_t)c->respbuf.len);
    gw_bufq_reset(&c->respbuf); /* nobody will read it */
    if (c->rs)
        call__resume_dropped(c); /* and the message being held */
    c->sc = NULL;
    if (!c->resp_done) {
        c->resp_done = 1;
        gw_log(GW_LOG_DEBUG, "call_cancelled", "{s:I, s:s?, s:s}", "call", (json_int_t)c->id,
               "path", c->path, "reason",
               error_code == NGHTTP2_NO_ERROR ? "client closed the stream" : "client reset");
    }
    call__cancel_attempts(c, NULL);
    call__maybe_free(c);
}

/* --- the client stream's events (gw_srv_stream_ops) ----------------------- */

static struct gw_srv_stream *ss_open(struct gw_srv_conn *sc, int32_t sid)
{
    struct gw_call *c = gw_call_new(sc, sid);
    return c ? &c->ss : NULL;
}

static int ss_answered_early(const struct gw_srv_stream *st)
{
    const struct gw_call *c = st->user;
    return gw_call_answered(c) && !c->req_eos;
}

const struct gw_srv_stream_ops gw_call_srv_ops = {
    .open = ss_open,
    .on_header = call__on_req_header,
    .refuse_header_list = call__refuse_header_list,
    .on_headers_done = call__on_req_headers_done,
    .on_data = call__on_req_data,
    .on_end = call__on_req_end,
    .on_close = on_client_close,
    .answered_early = ss_answered_early,
};
