/* call — the call engine; see call.h for the model.
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
 * counted (w->replay_bytes); a call that would take the total past
 * --replay-buffer-total stops keeping its request for replay and runs
 * single-attempt (infergw_replay_budget_exceeded_total, log
 * replay_budget_exceeded).
 */
#include "engine/call.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "obs/accesslog.h"
#include "auth/auth.h"
#include "h2/h2srv.h"
#include "health/health.h"
#include "base/headers.h"
#include "engine/localsvc.h"
#include "base/log.h"
#include "base/mem.h"
#include "obs/metrics.h"
#include "route/policy.h"
#include "route/poolstate.h"
#include "route/route.h"
#include "engine/upstream.h"
#include "engine/wstate.h"

#define KSERVE_PREFIX "/inference.GRPCInferenceService/"
/* Requests the gateway answers itself are tiny (a health check names a
 * service); Health/Check needs no authentication, so keep this small. */
#define LOCAL_REQ_MAX 4096
/* Budgets start with (and always allow) this many extra attempts per worker
 * and pool, so a quiet pool can still retry or hedge its first failures. */
#define RETRY_BUDGET_MIN 10
#define HEDGE_BUDGET_MIN 10
/* The observed latency is used once it rests on this many samples. */
#define LATENCY_MIN_SAMPLES 50
#define MS                  ((uint64_t)1000000)

static void call_route(struct gw_call *c);
static void conn_buffer_check(struct gw_call *c);
static void replay_account(struct gw_call *c);
static void answer_local(struct gw_call *c);
static void submit_held_headers(struct gw_call *c, int with_data);

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

/* Queues RST_STREAM <err> for stream <sid> of <conn>. When not even that
 * frame can be allocated, closes the connection: without memory, the one
 * way left to end the stream rather than leave its peer waiting. */
static void reset_stream(struct gw_conn *conn, int32_t sid, uint32_t err)
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
static void conn_held(struct gw_call *c, int64_t delta)
{
    if (c->sc)
        c->sc->held += (uint64_t)delta;
}

static const char *attempt_addr(const struct gw_attempt *a)
{
    return a && a->up ? a->up->addr : "(none)";
}

static const char *const kind_names[] = {"primary", "retry", "hedge"};

/* The grpc-status in header list <h>, or -1. */
static int status_in(const struct gw_hdrlist *h)
{
    return gw_metrics_status_of(h, h);
}

/* Passive health (outlier ejection): tells the replica's record how an
 * attempt went — a failure of the replica's own making, or an answer. */
static void report_outcome(const struct gw_attempt *a, int ok)
{
    if (a->up)
        gw_upstream_report(a->up, ok);
}

/* The committed response's header lists: the winner's, or the gateway's own. */
static struct gw_hdrlist *resp_hdrs(struct gw_call *c)
{
    return c->winner ? &c->winner->hdrs : &c->resp_hdrs;
}

static struct gw_hdrlist *resp_trailers(struct gw_call *c)
{
    return c->winner ? &c->winner->trailers : &c->resp_trailers;
}

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
        if (client_alive(c)) {
            nghttp2_submit_rst_stream(client_sess(c), NGHTTP2_FLAG_NONE, c->ss.sid, NGHTTP2_CANCEL);
            mark_client_dirty(c);
        }
        return;
    }
    gw_call_fail(c, GW_GRPC_DEADLINE_EXCEEDED,
                 "stream idle for %" PRIu32 " ms (no bytes either way; --stream-idle-timeout-ms)",
                 c->w->cfg->stream_idle_timeout_ms);
}

static void retry_cb(struct gw_timer *t, void *arg);
static void hedge_cb(struct gw_timer *t, void *arg);
static void try_timeout_cb(struct gw_timer *t, void *arg);

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
    gw_timer_init(&c->retry_timer, retry_cb, c);
    gw_timer_init(&c->hedge_timer, hedge_cb, c);
    gw_srv_conn_add_stream(sc, &c->ss);
    return c;
}

static void cancel_timers(struct gw_call *c)
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
        atts[n].replica = attempt_addr(a);
        atts[n].kind = kind_names[a->kind];
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
    f.given_request_id = gw_hdrlist_get(&c->req_hdrs, "x-request-id", &f.given_len);
    char rid[GW_ACCESSLOG_RID_MAX];
    struct gw_access_entry e;
    gw_accesslog_entry(&e, rid, &f);
    gw_worker_access_log(c->w, &e);
}

static void call_free(struct gw_call *c)
{
    int st = c->status >= 0 ? c->status : gw_metrics_status_of(resp_trailers(c), resp_hdrs(c));
    uint64_t duration = c->w->loop.now_ns - c->att_start_ns;
    gw_metrics_call_end(c->w->metrics, c->w->routes, c->pool_len ? c->pool_name : NULL, c->pool_len,
                        c->path, st < 0 ? GW_GRPC_CANCELLED : st, duration);
    if (gw_accesslog_enabled())
        access_log(c, st < 0 ? GW_GRPC_CANCELLED : st, duration);
    cancel_timers(c);
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
    replay_account(c);
    conn_held(c, -(int64_t)c->respbuf.len);
    gw_bufq_reset(&c->respbuf);
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
static size_t running_attempts(const struct gw_call *c, const struct gw_attempt *except)
{
    size_t n = 0;
    for (size_t i = 0; i < c->natt; i++)
        if (c->att[i] != except && !c->att[i]->finished && c->att[i]->st.open)
            n++;
    return n;
}

/* A call goes when neither side can call back into it any more. */
static void maybe_free(struct gw_call *c)
{
    if (c->client_closed && !any_open(c))
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

void gw_call_refuse_header_list(struct gw_call *c)
{
    /* Wins over an earlier refusal: it says why the rest was not read. */
    c->bad_request = "request header list too large (limits: --max-header-list-bytes, "
                     "--max-header-count; RFC 9113 section 6.5.2 size)";
    c->bad_request_code = GW_GRPC_RESOURCE_EXHAUSTED;
    c->bad_request_http = NULL;
}

int gw_call_answered(const struct gw_call *c)
{
    return c->bad_request != NULL || c->resp_done;
}

/* A content-type the gRPC spec accepts: "application/grpc", alone or
 * followed by "+<format>" or ";<parameters>". */
static int grpc_content_type(const uint8_t *v, size_t len)
{
    return len >= 16 && !memcmp(v, "application/grpc", 16) &&
           (len == 16 || v[16] == '+' || v[16] == ';');
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
        if (grpc_content_type(value, valuelen))
            c->grpc_content_type = 1; /* else refused once the headers are complete */
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
    } else if (name_is(name, namelen, "grpc-previous-rpc-attempts")) {
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
    if (gw_auth_on_headers(&req, &v) < 0) {
        apply_refusal(c, &v);
        return -1;
    }
    memcpy(c->tenant, v.tenant, sizeof(c->tenant));
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

void gw_call_on_req_headers_done(struct gw_call *c)
{
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

/* --- the request log ----------------------------------------------------- */

/* Brings the worker's replay byte count up to date with the log's size. */
static void replay_account(struct gw_call *c)
{
    int64_t d = (int64_t)c->reqlog.len - (int64_t)c->replay_held;
    if (d == 0)
        return;
    c->w->replay_bytes += (uint64_t)d;
    c->replay_held = c->reqlog.len;
    atomic_fetch_add_explicit(&c->w->metrics->replay_bytes, d, memory_order_relaxed);
}

/* Hands request bytes up to log offset <off> back to the client session. */
static void consume_request(struct gw_call *c, uint64_t off)
{
    if (off <= c->req_consumed)
        return;
    size_t n = (size_t)(off - c->req_consumed);
    c->req_consumed = off;
    conn_held(c, -(int64_t)n);
    if (client_alive(c)) {
        nghttp2_session_consume_stream(client_sess(c), c->ss.sid, n);
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
        replay_account(c);
        consume_request(c, low);
        c->req_base = low;
    }
}

static void attempt_cancel(struct gw_attempt *a);

/* The request outgrew --retry-buffer-bytes, or the call committed: keep one
 * attempt (the winner, else the one furthest into the request), cancel the
 * others and let the log drop what was sent. */
static void stop_replay(struct gw_call *c)
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
            attempt_cancel(c->att[i]);
    trim_request(c);
}

static void resume_upstream(struct gw_call *c)
{
    for (size_t i = 0; i < c->natt; i++) {
        struct gw_attempt *a = c->att[i];
        if (a->st.open && !a->cancelled && a->st.uc) {
            nghttp2_session_resume_data(a->st.uc->conn.sess, a->st.sid);
            gw_conn_mark_dirty(&a->st.uc->conn);
        }
    }
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

/* The worker's replay buffers are full: the call keeps no more of its
 * request than its one attempt has yet to send. */
static void replay_over_budget(struct gw_call *c)
{
    struct gw_worker *w = c->w;
    gw_metrics_upstream(w->metrics, GW_UP_REPLAY_OVER_BUDGET);
    gw_log(GW_LOG_INFO, "replay_budget_exceeded", "{s:I, s:I, s:I}", "call", (json_int_t)c->id,
           "worker_replay_bytes", (json_int_t)w->replay_bytes, "limit",
           (json_int_t)w->cfg->replay_buffer_total);
    if (c->routed)
        stop_replay(c);
    else
        c->replayable = 0; /* no attempt yet: the first one will be the only one */
}

void gw_call_on_req_data(struct gw_call *c, const uint8_t *data, size_t len)
{
    c->last_io_ns = c->w->loop.now_ns; /* --stream-idle-timeout-ms */
    /* The connection window comes back at once; the stream's as an attempt
     * takes the bytes (consume_request) or when they are dropped. */
    nghttp2_session_consume_connection(client_sess(c), len);
    if (c->resp_done || c->local != GW_LOCAL_NONE) {
        /* Nothing will read these bytes (the call is decided, or the gateway
         * answers it itself): hand the window back now. */
        nghttp2_session_consume_stream(client_sess(c), c->ss.sid, len);
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
        nghttp2_session_consume_stream(client_sess(c), c->ss.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                     "request message of %" PRIu32 " bytes exceeds the gateway's limit of %" PRIu32
                     " bytes (--max-message-bytes)",
                     c->req_framer.last_len, max);
        return;
    }
    int scan_r = c->scanning ? gw_model_scan_feed(&c->scan, data, len, NULL) : GW_SCAN_MORE;
    if (c->checking && check_models(c, data, len, scan_r) < 0) {
        nghttp2_session_consume_stream(client_sess(c), c->ss.sid, len);
        return;
    }
    if (gw_bufq_append(&c->reqlog, data, len) < 0) {
        nghttp2_session_consume_stream(client_sess(c), c->ss.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    c->req_total += len;
    conn_held(c, (int64_t)len);
    conn_buffer_check(c);
    if (c->resp_done)
        return;
    replay_account(c);
    if (c->replayable && c->req_total > c->w->cfg->retry_buffer_bytes && c->routed)
        stop_replay(c);
    if (c->replayable && c->w->replay_bytes > c->w->cfg->replay_buffer_total)
        replay_over_budget(c);
    if (c->scanning) {
        if (scan_r != GW_SCAN_MORE)
            scan_done(c, scan_r);
        return;
    }
    resume_upstream(c);
}

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

/* --- attempts ------------------------------------------------------------ */

static ssize_t req_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
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

/* A replica of the worker's snapshot may take this call: not draining,
 * not tried by this call already, and reachable and healthy. */
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

/* Opens attempt <a>'s stream on <uc>. Returns 0 or a negative nghttp2 error. */
static int submit_attempt(struct gw_call *c, struct gw_attempt *a, struct gw_up_conn *uc,
                          const struct gw_pool *pool, uint64_t now)
{
    size_t cap = c->req_hdrs.n + 8;
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
        nv[n++] = nv_str(":authority", attempt_addr(a));
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
        nv[n++] = nv_str("grpc-timeout", tbuf);
    }
    if (c->natt > 1) {
        snprintf(pbuf, sizeof(pbuf), "%zu", c->natt - 1);
        nv[n++] = nv_str("grpc-previous-rpc-attempts", pbuf);
    }
    nghttp2_data_provider prd = {.source.ptr = a, .read_callback = req_read_cb};
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

static const struct gw_up_stream_ops attempt_stream_ops;

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
static int attempt_start(struct gw_call *c, const struct gw_pool *pool, struct gw_attempt *reuse,
                         enum gw_attempt_kind kind)
{
    struct gw_worker *w = c->w;
    uint64_t now = w->loop.now_ns;
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
    int rc = -1;
    c->start_code = 0; /* set when a reason other than "no replica" stops it */
    while (c->ntried < max_tried) {
        int idx = gw_routes_pick(pool, point, eligible_cb, c, load);
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
            if (kind != GW_ATTEMPT_PRIMARY || reuse)
                gw_log(GW_LOG_DEBUG, "attempt_started", "{s:I, s:s, s:s, s:s, s:i}", "call",
                       (json_int_t)c->id, "pool", pool->name, "replica", up->addr, "kind",
                       kind_names[a->kind], "attempt", (int)c->natt);
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
    if (load != stack_load)
        gw_free(load);
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
static void attempt_cancel(struct gw_attempt *a)
{
    a->cancelled = 1;
    a->finished = 1;
    gw_loop_timer_cancel(&a->call->w->loop, &a->try_timer);
    if (a->st.open && a->st.uc) {
        reset_stream(&a->st.uc->conn, a->st.sid, NGHTTP2_CANCEL);
    }
}

static void cancel_attempts(struct gw_call *c, const struct gw_attempt *except)
{
    for (size_t i = 0; i < c->natt; i++)
        if (c->att[i] != except && !c->att[i]->cancelled && c->att[i]->st.open)
            attempt_cancel(c->att[i]);
}

static const struct gw_pool *call_pool(const struct gw_call *c)
{
    return gw_routes_find_pool(c->w->routes, c->pool_name, c->pool_len);
}

/* The deadline floor: no retry or hedge starts unless more than this is
 * left of the caller's deadline. The pool's observed p50 (0 until known). */
static uint64_t attempt_floor(const struct gw_call *c)
{
    return c->ps ? gw_latency_quantile(&c->ps->latency, 0.5, LATENCY_MIN_SAMPLES) : 0;
}

/* Whether <path> is listed in the comma list <list> (hedge_exclude). */
static int path_listed(const char *list, const char *path)
{
    size_t plen = strlen(path);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t n = e ? (size_t)(e - p) : strlen(p);
        if (n == plen && memcmp(p, path, n) == 0)
            return 1;
        if (!e)
            break;
        p = e + 1;
    }
    return 0;
}

/* Arms the hedge timer of a call whose pool hedges. */
static void arm_hedge(struct gw_call *c, const struct gw_pool *pool)
{
    int32_t d = pool->tun.hedge_delay_ms;
    if (d == GW_HEDGE_OFF || !c->replayable || !c->ps ||
        path_listed(pool->tun.hedge_exclude, c->path))
        return;
    uint64_t delay = d == GW_HEDGE_AUTO
                         ? gw_latency_quantile(&c->ps->latency, 0.95, LATENCY_MIN_SAMPLES)
                         : (uint64_t)d * MS;
    if (delay == 0)
        return; /* auto, and too few samples yet */
    gw_loop_timer_at(&c->w->loop, &c->hedge_timer, c->w->loop.now_ns + delay);
}

/* Ends a call whose attempts all failed and which will not retry: the last
 * replica answer is relayed as the replica sent it; a transport failure
 * becomes the gateway's own status with what went wrong. */
static void finish_failed(struct gw_call *c)
{
    struct gw_attempt *a = c->last_failed;
    if (!a || !c->last_failed_relayable) {
        gw_call_fail(c, c->fail_code, "%s", c->fail_msg);
        return;
    }
    c->winner = a;
    c->resp_done = 1;
    cancel_timers(c);
    cancel_attempts(c, a);
    if (!client_alive(c))
        return;
    if (a->trailers.n == 0) {
        /* Trailers-only: one HEADERS frame with END_STREAM. */
        submit_held_headers(c, 0);
        return;
    }
    c->trailers_ready = 1;
    submit_held_headers(c, 1);
}

/* Attempt <a> failed before the commit point (a retryable status, an HTTP
 * error, a reset, a lost connection or its per-try timeout): <code> and the
 * message say how. <relayable> says the replica's own answer can be relayed
 * if nothing better comes; <retryable> whether another replica may be tried.
 * Waits for attempts still running; else retries within the budgets and the
 * deadline, or ends the call. */
static void attempt_failed(struct gw_attempt *a, int code, int relayable, int retryable,
                           const char *fmt, ...) __attribute__((format(printf, 5, 6)));
static void attempt_failed(struct gw_attempt *a, int code, int relayable, int retryable,
                           const char *fmt, ...)
{
    struct gw_call *c = a->call;
    struct gw_worker *w = c->w;
    a->finished = 1;
    gw_loop_timer_cancel(&w->loop, &a->try_timer);
    report_outcome(a, 0);
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(c->fail_msg, sizeof(c->fail_msg), fmt, ap);
    va_end(ap);
    c->fail_code = code;
    c->last_failed = a;
    c->last_failed_relayable = relayable;
    gw_log(GW_LOG_DEBUG, "attempt_failed", "{s:I, s:s, s:s, s:s, s:s}", "call", (json_int_t)c->id,
           "replica", attempt_addr(a), "kind", kind_names[a->kind], "status",
           gw_grpc_status_name(code), "message", c->fail_msg);
    if (c->resp_done || c->winner || !client_alive(c))
        return;
    if (running_attempts(c, a) > 0 || gw_timer_armed(&c->retry_timer))
        return; /* a hedge (or the hedged attempt) may still answer */

    const struct gw_pool *pool = call_pool(c);
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
        finish_failed(c);
        return;
    }
    if (!gw_budget_take(&c->ps->retry_budget, now, pool->tun.retry_budget_percent,
                        RETRY_BUDGET_MIN)) {
        gw_metrics_policy(w->metrics, GW_POLICY_RETRY_BUDGET);
        finish_failed(c);
        return;
    }
    if (gw_loop_timer_at(&w->loop, &c->retry_timer, now + (uint64_t)d.delay_ms * MS) < 0)
        finish_failed(c);
}

static void retry_cb(struct gw_timer *t, void *arg)
{
    struct gw_call *c = arg;
    if (c->resp_done || c->winner || !client_alive(c))
        return;
    const struct gw_pool *pool = call_pool(c);
    if (!pool || !c->replayable) {
        finish_failed(c);
        return;
    }
    c->retries++;
    if (attempt_start(c, pool, NULL, GW_ATTEMPT_RETRY) < 0) {
        /* No replica left to try: the last failure stands. */
        if (!c->last_failed_relayable)
            snprintf(c->fail_msg + strlen(c->fail_msg), sizeof(c->fail_msg) - strlen(c->fail_msg),
                     "; %s", c->start_msg);
        finish_failed(c);
    }
}

static void hedge_cb(struct gw_timer *t, void *arg)
{
    struct gw_call *c = arg;
    struct gw_worker *w = c->w;
    if (c->resp_done || c->winner || !c->replayable || !client_alive(c))
        return;
    const struct gw_pool *pool = call_pool(c);
    if (!pool)
        return;
    uint64_t now = w->loop.now_ns;
    struct gw_hedge_in in = {
        .replayable = c->replayable,
        .running = running_attempts(c, NULL),
        .attempts = c->natt,
        .max_attempts = pool->tun.retry_max_attempts,
        .now_ns = now,
        .deadline_ns = c->deadline_ns,
        .floor_ns = attempt_floor(c),
    };
    if (gw_policy_hedge(&in) != GW_HEDGE_GO)
        return;
    if (!gw_budget_take(&c->ps->hedge_budget, now, pool->tun.hedge_budget_percent,
                        HEDGE_BUDGET_MIN)) {
        gw_metrics_policy(w->metrics, GW_POLICY_HEDGE_BUDGET);
        return;
    }
    /* Without a second replica the primary carries on alone. */
    attempt_start(c, pool, NULL, GW_ATTEMPT_HEDGE);
}

static void try_timeout_cb(struct gw_timer *t, void *arg)
{
    struct gw_attempt *a = arg;
    struct gw_call *c = a->call;
    if (a->finished || c->winner == a)
        return;
    const struct gw_pool *pool = call_pool(c);
    uint32_t ms = pool ? pool->tun.per_try_timeout_ms : 0;
    attempt_cancel(a);
    attempt_failed(a, GW_GRPC_UNAVAILABLE, 0, 1,
                   "replica %s did not answer within per_try_timeout_ms (%" PRIu32 " ms)",
                   attempt_addr(a), ms);
}

static void call_route(struct gw_call *c)
{
    if (c->resp_done)
        return;
    if (!c->pool_known) {
        memcpy(c->pool_name, "default", 8);
        c->pool_len = 7;
    }
    const struct gw_pool *pool = call_pool(c);
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
    if (attempt_start(c, pool, NULL, GW_ATTEMPT_PRIMARY) < 0) {
        gw_call_fail(c, c->start_code, "%s", c->start_msg);
        return;
    }
    if (c->replayable && c->req_total > w->cfg->retry_buffer_bytes)
        stop_replay(c); /* the scan for model_name read past the buffer */
    arm_hedge(c, pool);
}

/* --- response ------------------------------------------------------------ */

static ssize_t resp_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf,
                            size_t length, uint32_t *data_flags, nghttp2_data_source *source,
                            void *user_data)
{
    struct gw_call *c = source->ptr;
    struct gw_attempt *a = c->winner;
    size_t n = gw_bufq_read(&c->respbuf, buf, length);
    conn_held(c, -(int64_t)n);
    if (n > 0)
        c->last_io_ns = c->w->loop.now_ns; /* --stream-idle-timeout-ms */
    if (n > 0 && a && a->st.uc) {
        nghttp2_session_consume_stream(a->st.uc->conn.sess, a->st.sid, n);
        gw_conn_mark_dirty(&a->st.uc->conn);
    }
    if (c->respbuf.len == 0 && c->trailers_ready) {
        *data_flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        /* Every trailer goes (grpc-status may be the last of many): their
         * number was bounded by --max-header-count when they arrived. */
        struct gw_hdrlist *t = resp_trailers(c);
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
    if (c->resp_submitted || !client_alive(c))
        return;
    c->resp_submitted = 1;
    struct gw_hdrlist *h = resp_hdrs(c);
    size_t cap = h->n + 1;
    nghttp2_nv stack_nv[48];
    nghttp2_nv *nv = cap <= 48 ? stack_nv : gw_malloc(cap * sizeof(*nv));
    int rv = NGHTTP2_ERR_NOMEM;
    if (nv) {
        nv[0] = (nghttp2_nv)NV_LIT(":status", "200");
        size_t n = 1 + gw_hdrlist_to_nv(h, nv + 1);
        nghttp2_data_provider prd = {.source.ptr = c, .read_callback = resp_read_cb};
        rv = nghttp2_submit_response(client_sess(c), c->ss.sid, nv, n, with_data ? &prd : NULL);
        if (nv != stack_nv)
            gw_free(nv);
    }
    if (rv != 0)
        reset_stream(&c->sc->conn, c->ss.sid, NGHTTP2_INTERNAL_ERROR);
    mark_client_dirty(c);
}

/* Response bytes or the final status are ready for the client: send the
 * held headers the first time, else wake the client's data provider. */
static void relay_response(struct gw_call *c)
{
    if (!c->resp_submitted)
        submit_held_headers(c, 1);
    else
        nghttp2_session_resume_data(client_sess(c), c->ss.sid);
    mark_client_dirty(c);
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
    cancel_attempts(c, a);
    if (c->ps)
        gw_latency_add(&c->ps->latency, w->loop.now_ns - a->start_ns);
    if (a->kind == GW_ATTEMPT_HEDGE)
        gw_metrics_policy(w->metrics, GW_POLICY_HEDGE_WON);
    report_outcome(a, 1);
    stop_replay(c);
}

static int on_resp_header(struct gw_attempt *a, const uint8_t *name, size_t namelen,
                          const uint8_t *value, size_t valuelen)
{
    struct gw_call *c = a->call;
    if (a->cancelled || c->resp_done)
        return 0;
    if (namelen > 0 && name[0] == ':') {
        if (!a->in_trailers && name_is(name, namelen, ":status")) {
            int st = 0;
            for (size_t i = 0; i < valuelen && i < 3; i++)
                st = st * 10 + (value[i] - '0');
            a->http_status = st;
        }
        return 0;
    }
    if (!gw_hdr_forwardable(name, namelen, value, valuelen))
        return 0;
    if (name_is(name, namelen, "grpc-retry-pushback-ms")) {
        a->pushback =
            gw_policy_pushback_parse((const char *)value, valuelen, &a->pushback_ms) == 0 ? 1 : -1;
        uint32_t cap = c->w->cfg->max_pushback_ms;
        if (a->pushback > 0 && a->pushback_ms > cap) {
            uint64_t hits = gw_worker_limit_hit(c->w, GW_LIMIT_PUSHBACK_CAPPED);
            if (hits)
                gw_log(GW_LOG_INFO, "pushback_capped", "{s:s, s:I, s:i, s:I}", "replica",
                       attempt_addr(a), "pushback_ms", (json_int_t)a->pushback_ms,
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
    int code = status_in(h);
    if (code < 0) {
        attempt_failed(a, GW_GRPC_INTERNAL, 0, 0, "replica %s ended the call without grpc-status",
                       attempt_addr(a));
        return;
    }
    const struct gw_pool *pool = call_pool(c);
    if (pool && gw_policy_status_retryable(pool->tun.retry_on, code, a->pushback)) {
        attempt_failed(a, code, 1, 1, "replica %s answered %s", attempt_addr(a),
                       gw_grpc_status_name(code));
        return;
    }
    commit(a);
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    if (!client_alive(c))
        return;
    if (trailers_only) {
        submit_held_headers(c, 0);
        return;
    }
    c->trailers_ready = 1;
    relay_response(c);
}

static void on_resp_headers_done(struct gw_attempt *a, int end_stream)
{
    struct gw_call *c = a->call;
    if (a->cancelled || c->resp_done)
        return;
    if (!a->in_trailers) {
        if (a->http_status != 200) {
            int code = gw_grpc_status_from_http(a->http_status);
            const struct gw_pool *pool = call_pool(c);
            int retryable = pool && ((pool->tun.retry_on >> code) & 1);
            if (c->winner == a) {
                gw_call_fail(c, code, "replica %s answered HTTP %d", attempt_addr(a),
                             a->http_status);
                return;
            }
            attempt_cancel(a);
            attempt_failed(a, code, 0, retryable, "replica %s answered HTTP %d", attempt_addr(a),
                           a->http_status);
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
    /* The committed attempt's trailers: the final status. */
    if (status_in(&a->trailers) < 0) {
        gw_call_fail(c, GW_GRPC_INTERNAL, "replica %s ended the call without grpc-status",
                     attempt_addr(a));
        return;
    }
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    c->trailers_ready = 1;
    if (client_alive(c))
        relay_response(c);
}

/* Connection windows come back on receipt, so each stream of a client may
 * hold up to a stream window either way: answer bytes the client does not
 * read, request bytes no replica takes. A connection with many streams could
 * hold streams x window. Past --max-conn-buffer-bytes the call that went over
 * ends with RESOURCE_EXHAUSTED: its answer bytes are dropped, its attempts
 * reset, and its stream reset after the status (h2srv), which gives its
 * request bytes back. */
static void conn_buffer_check(struct gw_call *c)
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

static void on_resp_data(struct gw_attempt *a, const uint8_t *data, size_t len)
{
    struct gw_call *c = a->call;
    /* upstream.c gave the connection window back on receipt; the stream's
     * comes back as the client takes the bytes (resp_read_cb) or here when
     * they are dropped. */
    nghttp2_session *us = a->st.uc->conn.sess;
    if (a->cancelled || c->resp_done || !client_alive(c)) {
        nghttp2_session_consume_stream(us, a->st.sid, len);
        return;
    }
    if (!c->winner)
        commit(a); /* the first response message decides the call */
    uint32_t max = c->w->cfg->max_message_bytes;
    if (gw_framer_feed(&c->resp_framer, data, len, max) < 0) {
        nghttp2_session_consume_stream(us, a->st.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                     "response message of %" PRIu32 " bytes from replica %s exceeds the "
                     "gateway's limit of %" PRIu32 " bytes (--max-message-bytes)",
                     c->resp_framer.last_len, attempt_addr(a), max);
        return;
    }
    if (gw_bufq_append(&c->respbuf, data, len) < 0) {
        nghttp2_session_consume_stream(us, a->st.sid, len);
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    c->resp_total += len;
    conn_held(c, (int64_t)len);
    relay_response(c);
    conn_buffer_check(c);
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
    if (c->resp_done || c->winner || !client_alive(c) || c->req_base != 0 || a->hdrs.n ||
        a->http_status || c->refusals >= GW_CALL_MAX_REFUSALS)
        return 0;
    const struct gw_pool *pool = call_pool(c);
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
           attempt_addr(a));
    return attempt_start(c, pool, a, a->kind) == 0;
}

static void on_upstream_close(struct gw_attempt *a, uint32_t error_code)
{
    struct gw_call *c = a->call;
    a->outcome =
        (int16_t)attempt_outcome(a, error_code != NGHTTP2_NO_ERROR ? GW_OUTCOME_RESET : -1);
    gw_metrics_attempt(a->up ? a->up->metrics : NULL, a->kind, a->outcome);
    release_attempt(a);
    if (a->finished && c->winner != a) {
        maybe_free(c);
        return;
    }
    if (c->winner == a) {
        if (!c->resp_done) {
            if (error_code == NGHTTP2_NO_ERROR)
                gw_call_fail(c, GW_GRPC_INTERNAL, "replica %s ended the call without a gRPC status",
                             attempt_addr(a));
            else
                gw_call_fail(c, rst_to_grpc(error_code), "replica %s reset the stream: %s",
                             attempt_addr(a), nghttp2_http2_strerror(error_code));
        }
    } else if (error_code == NGHTTP2_NO_ERROR) {
        attempt_failed(a, GW_GRPC_INTERNAL, 0, 0, "replica %s ended the call without a gRPC status",
                       attempt_addr(a));
    } else if (error_code == NGHTTP2_REFUSED_STREAM && reroute_refused(a)) {
        /* routed again */
    } else {
        /* A reset before any answer: the replica (or something between)
         * gave up on the stream; another replica may do better. */
        attempt_failed(a, GW_GRPC_UNAVAILABLE, 0, 1, "replica %s reset the stream: %s",
                       attempt_addr(a), nghttp2_http2_strerror(error_code));
    }
    maybe_free(c);
}

static void on_upstream_lost(struct gw_attempt *a, int connected, const char *reason)
{
    struct gw_call *c = a->call;
    a->st.uc = NULL;
    a->st.open = 0;
    gw_loop_timer_cancel(&c->w->loop, &a->try_timer);
    a->outcome = (int16_t)attempt_outcome(a, connected ? GW_OUTCOME_CONNECTION_LOST
                                                       : GW_OUTCOME_CONNECT_FAILED);
    gw_metrics_attempt(a->up ? a->up->metrics : NULL, a->kind, a->outcome);
    if (a->finished && c->winner != a) {
        maybe_free(c);
        return;
    }
    if (c->winner == a) {
        if (!c->resp_done)
            gw_call_fail(c, GW_GRPC_UNAVAILABLE, "connection to replica %s lost: %s",
                         attempt_addr(a), reason);
        maybe_free(c);
        return;
    }
    if (!connected && !c->resp_done && client_alive(c)) {
        /* The connection never came up, so nothing of this attempt left the
         * gateway: route it again, past this replica, as the same attempt.
         * (Failed connects are the upstream module's to count.) */
        const struct gw_pool *pool = call_pool(c);
        if (pool && attempt_start(c, pool, a, a->kind) == 0)
            return;
        a->finished = 1;
        if (running_attempts(c, a) == 0 && !gw_timer_armed(&c->retry_timer)) {
            if (pool)
                gw_call_fail(c, c->start_code, "%s (connecting to replica %s failed: %s)",
                             c->start_msg, attempt_addr(a), reason);
            else
                gw_call_fail(c, GW_GRPC_UNAVAILABLE,
                             "pool '%s' was removed while replica %s was connecting (%s)",
                             c->pool_name, attempt_addr(a), reason);
        }
        maybe_free(c);
        return;
    }
    attempt_failed(a, GW_GRPC_UNAVAILABLE, 0, 1, "connection to replica %s lost: %s",
                   attempt_addr(a), reason);
    maybe_free(c);
}

/* --- the attempt stream's events (gw_up_stream_ops) ---------------------- */

static void st_begin_headers(struct gw_up_stream *st, int trailers)
{
    ((struct gw_attempt *)st->user)->in_trailers = trailers;
}

static int st_header(struct gw_up_stream *st, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen)
{
    return on_resp_header(st->user, name, namelen, value, valuelen);
}

static void st_headers_done(struct gw_up_stream *st, int end_stream)
{
    on_resp_headers_done(st->user, end_stream);
}

static void st_data(struct gw_up_stream *st, const uint8_t *data, size_t len)
{
    on_resp_data(st->user, data, len);
}

static void st_close(struct gw_up_stream *st, uint32_t error_code)
{
    on_upstream_close(st->user, error_code);
}

static void st_lost(struct gw_up_stream *st, int connected, const char *reason)
{
    on_upstream_lost(st->user, connected, reason);
}

static const struct gw_up_stream_ops attempt_stream_ops = {
    .on_begin_headers = st_begin_headers,
    .on_header = st_header,
    .on_headers_done = st_headers_done,
    .on_data = st_data,
    .on_close = st_close,
    .on_lost = st_lost,
};

void gw_call_on_client_close(struct gw_call *c, uint32_t error_code)
{
    c->client_closed = 1;
    cancel_timers(c);
    gw_loop_timer_cancel(&c->w->loop, &c->idle_timer);
    /* The connection window got these bytes back on receipt; the stream is gone. */
    conn_held(c, -(int64_t)(c->req_total - c->req_consumed));
    c->req_consumed = c->req_total;
    gw_bufq_reset(&c->reqlog);
    replay_account(c);
    c->req_base = c->req_total;
    gw_srv_conn_remove_stream(c->sc, &c->ss);
    /* The connection may be freed before the call (an attempt still open):
     * keep what the access log needs, and no way back to it. */
    _Static_assert(sizeof(c->peer) == sizeof(c->sc->peer), "peer buffers differ");
    memcpy(c->peer, c->sc->peer, sizeof(c->peer));
    conn_held(c, -(int64_t)c->respbuf.len);
    gw_bufq_reset(&c->respbuf); /* nobody will read it */
    c->sc = NULL;
    if (!c->resp_done) {
        c->resp_done = 1;
        gw_log(GW_LOG_DEBUG, "call_cancelled", "{s:I, s:s?, s:s}", "call", (json_int_t)c->id,
               "path", c->path, "reason",
               error_code == NGHTTP2_NO_ERROR ? "client closed the stream" : "client reset");
    }
    cancel_attempts(c, NULL);
    maybe_free(c);
}

static void call_fail_v(struct gw_call *c, int code, int64_t pushback_ms, const char *fmt,
                        va_list ap) __attribute__((format(printf, 4, 0)));

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
    cancel_timers(c);
    char msg[512];
    vsnprintf(msg, sizeof(msg), fmt, ap);
    gw_log(code == GW_GRPC_NOT_FOUND || code == GW_GRPC_DEADLINE_EXCEEDED ? GW_LOG_DEBUG
                                                                          : GW_LOG_INFO,
           "call_failed", "{s:I, s:s?, s:s, s:s}", "call", (json_int_t)c->id, "path", c->path,
           "status", gw_grpc_status_name(code), "message", msg);

    struct gw_attempt *win = c->winner;
    cancel_attempts(c, NULL);
    if (!client_alive(c))
        return;

    char enc[1024], st[12], pb[24];
    gw_grpc_message_encode(msg, enc, sizeof(enc));
    snprintf(st, sizeof(st), "%d", code);
    snprintf(pb, sizeof(pb), "%" PRId64, pushback_ms);
    if (!c->resp_submitted) {
        nghttp2_nv nv[] = {nv_str(":status", c->bad_request_http ? c->bad_request_http : "200"),
                           NV_LIT("content-type", "application/grpc"), nv_str("grpc-status", st),
                           nv_str("grpc-message", enc), nv_str("grpc-retry-pushback-ms", pb)};
        if (nghttp2_submit_response(client_sess(c), c->ss.sid, nv, pushback_ms >= 0 ? 5 : 4, NULL))
            reset_stream(&c->sc->conn, c->ss.sid, NGHTTP2_INTERNAL_ERROR);
        c->resp_submitted = 1;
    } else {
        /* Headers (and maybe messages) already went out: drop what is still
         * queued and end with the status in trailers. */
        size_t dropped = c->respbuf.len;
        conn_held(c, -(int64_t)dropped);
        gw_bufq_reset(&c->respbuf);
        if (dropped && win && win->st.uc) {
            nghttp2_session_consume_stream(win->st.uc->conn.sess, win->st.sid, dropped);
            gw_conn_mark_dirty(&win->st.uc->conn);
        }
        struct gw_hdrlist *t = resp_trailers(c);
        gw_hdrlist_reset(t);
        if (gw_hdrlist_add(t, "grpc-status", 11, st, strlen(st)) < 0 ||
            gw_hdrlist_add(t, "grpc-message", 12, enc, strlen(enc)) < 0) {
            reset_stream(&c->sc->conn, c->ss.sid, NGHTTP2_INTERNAL_ERROR);
        } else {
            c->trailers_ready = 1;
            nghttp2_session_resume_data(client_sess(c), c->ss.sid);
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
    size_t len = c->reqlog.len;
    if (len < 5) {
        gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT, "request message missing");
        return;
    }
    req = gw_malloc(len);
    if (!req) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    gw_bufq_read(&c->reqlog, req, len);
    uint32_t mlen =
        (uint32_t)req[1] << 24 | (uint32_t)req[2] << 16 | (uint32_t)req[3] << 8 | req[4];
    int compressed = req[0] != 0;
    if (compressed || mlen != len - 5) {
        gw_free(req);
        gw_call_fail(c, compressed ? GW_GRPC_UNIMPLEMENTED : GW_GRPC_INVALID_ARGUMENT,
                     compressed ? "compressed requests are not supported for this method"
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
    if (rc == 0)
        conn_held(c, (int64_t)outlen);
    gw_free(out);
    if (rc < 0 || gw_hdrlist_add(&c->resp_hdrs, "content-type", 12, "application/grpc", 16) < 0 ||
        gw_hdrlist_add(&c->resp_trailers, "grpc-status", 11, "0", 1) < 0) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    c->trailers_ready = 1;
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    submit_held_headers(c, 1);
}

/* --- the client stream's events (gw_srv_stream_ops) ----------------------- */

static struct gw_srv_stream *ss_open(struct gw_srv_conn *sc, int32_t sid)
{
    struct gw_call *c = gw_call_new(sc, sid);
    return c ? &c->ss : NULL;
}

static int ss_header(struct gw_srv_stream *st, const uint8_t *name, size_t namelen,
                     const uint8_t *value, size_t valuelen)
{
    return gw_call_on_req_header(st->user, name, namelen, value, valuelen);
}

static void ss_refuse_header_list(struct gw_srv_stream *st)
{
    gw_call_refuse_header_list(st->user);
}

static void ss_headers_done(struct gw_srv_stream *st)
{
    gw_call_on_req_headers_done(st->user);
}

static void ss_data(struct gw_srv_stream *st, const uint8_t *data, size_t len)
{
    gw_call_on_req_data(st->user, data, len);
}

static void ss_end(struct gw_srv_stream *st)
{
    gw_call_on_req_end(st->user);
}

static void ss_close(struct gw_srv_stream *st, uint32_t error_code)
{
    gw_call_on_client_close(st->user, error_code);
}

static int ss_answered_early(const struct gw_srv_stream *st)
{
    const struct gw_call *c = st->user;
    return gw_call_answered(c) && !c->req_eos;
}

const struct gw_srv_stream_ops gw_call_srv_ops = {
    .open = ss_open,
    .on_header = ss_header,
    .refuse_header_list = ss_refuse_header_list,
    .on_headers_done = ss_headers_done,
    .on_data = ss_data,
    .on_end = ss_end,
    .on_close = ss_close,
    .answered_early = ss_answered_early,
};
