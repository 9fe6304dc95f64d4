/* SPDX-License-Identifier: Apache-2.0 */
/* call_resume — stream resume: a committed stream survives the loss of its
 * replica (docs/stream-resume.md; the model is in call.h).
 *
 * With resume on (c->rs), the winner's bytes go through a splitter: a
 * message is held in rs->partial until its last byte came, then hashed
 * (XXH3-64 over its 5-byte prefix and payload), its hash kept, and spliced
 * into respbuf whole, so the client never holds part of a message the next
 * replica might send differently. When the winner is lost, a resume attempt
 * takes over; its first rs->nmsg messages (replay) are checked against the
 * hashes and dropped, or (continue) it starts at message nmsg.
 *
 * Stream windows (the rule of call_core.c, with a twist): the winner's bytes
 * are given back to its stream as the client takes them from respbuf, and
 * at once when they are dropped (replayed messages). A message bigger than
 * half the stream window could never complete if its bytes waited for the
 * client, so a held message past that size has its bytes given back on
 * receipt (they are still counted on the client connection,
 * --max-conn-buffer-bytes). The count is kept as rs->owed (received, not
 * given back): the window gets back whatever exceeds what the call holds.
 * Bytes of earlier winners at respbuf's front (rs->stale) go to nobody.
 */
#include "engine/call_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "base/log.h"
#include "base/mem.h"
#include "obs/metrics.h"
#include "route/policy.h"
#include "route/poolstate.h"
#include "route/route.h"

/* Messages whose hashes a call keeps (8 bytes each): a longer stream is not
 * resumed past this point. */
#define RESUME_MAX_MESSAGES 65536u

int call__resume_commit(struct gw_call *c)
{
    int mode = c->resume_mode;
    if (mode == GW_RESUME_OFF || !c->replayable || c->req_base != 0 || c->rs)
        return c->rs != NULL;
    struct call_resume *rs = gw_calloc(1, sizeof(*rs));
    if (rs)
        rs->xs = XXH3_createState();
    if (!rs || !rs->xs) {
        gw_free(rs);
        gw_log(GW_LOG_WARN, "resume_unavailable", "{s:I, s:s}", "call", (json_int_t)c->id, "reason",
               "out of memory");
        return 0;
    }
    rs->cur = (uint8_t)mode;
    rs->first = c->winner;
    gw_bufq_init(&rs->partial);
    c->rs = rs;
    return 1;
}

void call__resume_free(struct gw_call *c)
{
    struct call_resume *rs = c->rs;
    if (!rs)
        return;
    call__conn_held(c, -(int64_t)rs->partial.len);
    call__replay_bytes_add(c, -(int64_t)rs->hash_held);
    gw_bufq_reset(&rs->partial);
    XXH3_freeState(rs->xs);
    gw_free(rs->hash);
    gw_free(rs);
    c->rs = NULL;
}

static void metric(struct gw_call *c, int outcome, uint64_t gap_ns, uint64_t dropped)
{
    gw_metrics_resume(c->w->metrics, c->w->routes, c->pool_name, c->pool_len,
                      c->rs ? c->rs->cur : c->resume_mode, outcome, gap_ns, dropped);
}

/* The caller's x-request-id (at most 64 bytes), or "", for log lines. */
static const char *request_id(const struct gw_call *c, char out[65])
{
    size_t len = 0;
    const char *v = gw_hdrlist_get(&c->req_hdrs, "x-request-id", &len);
    if (!v || len > 64)
        len = 0;
    if (len)
        memcpy(out, v, len);
    out[len] = '\0';
    return out;
}

/* The pending resume attempt delivered (a new message, or the final
 * status): the stream is whole again. */
static void resume_done(struct gw_call *c)
{
    struct call_resume *rs = c->rs;
    if (!rs->pending)
        return;
    rs->pending = 0;
    if (rs->cur == GW_RESUME_CONTINUE)
        rs->skipped_msgs += rs->from;
    uint64_t gap = rs->lost_ns ? c->w->loop.now_ns - rs->lost_ns : 0;
    rs->lost_ns = 0;
    metric(c, GW_RESUME_OK, gap ? gap : 1, 0);
}

/* --- stream windows ------------------------------------------------------- */

/* Gives the winner's stream window back whatever it has sent beyond what
 * the call holds of it (see the header). */
static void settle(struct gw_call *c)
{
    struct call_resume *rs = c->rs;
    struct gw_attempt *a = c->winner;
    uint64_t big = c->w->cfg->stream_window_bytes / 2;
    uint64_t hold = rs->win_in_buf + (rs->partial.len < big ? rs->partial.len : big);
    if (rs->owed <= hold)
        return;
    uint64_t n = rs->owed - hold;
    rs->owed = hold;
    if (a && a->st.open && a->st.uc && !a->cancelled) {
        nghttp2_session_consume_stream(a->st.uc->conn.sess, a->st.sid, (size_t)n);
        gw_conn_mark_dirty(&a->st.uc->conn);
    }
}

void call__resume_taken(struct gw_call *c, size_t n)
{
    struct call_resume *rs = c->rs;
    uint64_t s = n < rs->stale ? n : rs->stale;
    rs->stale -= s;
    n -= (size_t)s;
    rs->win_in_buf -= n < rs->win_in_buf ? n : rs->win_in_buf;
    settle(c);
}

void call__resume_dropped(struct gw_call *c)
{
    struct call_resume *rs = c->rs;
    call__conn_held(c, -(int64_t)rs->partial.len);
    gw_bufq_reset(&rs->partial);
    rs->stale = rs->win_in_buf = 0;
    settle(c);
}

/* --- the winner's messages ------------------------------------------------ */

static void diverged(struct gw_call *c, const char *how)
{
    struct call_resume *rs = c->rs;
    rs->pending = 0;
    metric(c, GW_RESUME_DIVERGED, 0, 0);
    gw_log(GW_LOG_WARN, "resume_diverged", "{s:I, s:s, s:s, s:i, s:s}", "call", (json_int_t)c->id,
           "pool", c->pool_name, "replica", call__attempt_addr(c->winner), "message",
           (int)rs->in_idx, "how", how);
    gw_call_fail(c, GW_GRPC_ABORTED,
                 "resumed stream diverged at message %" PRIu32 " (replica %s %s)", rs->in_idx,
                 call__attempt_addr(c->winner), how);
}

/* Keeps hash <h> of the message just relayed. The hashes count in the
 * worker's replay bytes (--replay-buffer-total) with the request logs; past
 * it, or past RESUME_MAX_MESSAGES, relaying goes on and resuming is over. */
static void keep_hash(struct gw_call *c, uint64_t h)
{
    struct call_resume *rs = c->rs;
    if (rs->full)
        return;
    if (rs->nmsg == rs->cap) {
        uint32_t cap = rs->cap ? rs->cap * 2 : 64;
        uint64_t add = (uint64_t)(cap - rs->cap) * sizeof(*rs->hash);
        if (cap > RESUME_MAX_MESSAGES) {
            rs->full = "the stream is past the messages the gateway keeps hashes of (65536)";
            return;
        }
        if (c->w->replay_bytes + add > c->w->cfg->replay_buffer_total) {
            rs->full = "its message hashes would take the worker past --replay-buffer-total";
            return;
        }
        uint64_t *nh = gw_realloc(rs->hash, cap * sizeof(*nh));
        if (!nh) {
            rs->full = "the gateway was out of memory for its message hashes";
            return;
        }
        rs->hash = nh;
        rs->cap = cap;
        rs->hash_held += add;
        call__replay_bytes_add(c, (int64_t)add);
    }
    rs->hash[rs->nmsg] = h;
}

/* The winner's message rs->in_idx is complete. Returns 1 when it went to
 * the client, 0 when it was a replayed one (dropped), -1 when the call
 * ended. */
static int message_done(struct gw_call *c)
{
    struct call_resume *rs = c->rs;
    uint64_t h = XXH3_64bits_digest(rs->xs);
    uint64_t size = 5 + (uint64_t)rs->msg_len;
    if (rs->in_idx < rs->nmsg) {
        if (rs->in_idx >= rs->cap || h != rs->hash[rs->in_idx]) {
            diverged(c, "sent a different message than the caller has");
            return -1;
        }
        rs->in_idx++;
        rs->dropped_msgs++;
        metric(c, -1, 0, size);
        return 0;
    }
    keep_hash(c, h);
    rs->nmsg++;
    rs->in_idx++;
    rs->win_in_buf += rs->partial.len;
    gw_bufq_splice(&c->respbuf, &rs->partial);
    c->resp_total += size;
    resume_done(c);
    return 1;
}

void call__resume_data(struct gw_attempt *a, const uint8_t *p, size_t len)
{
    struct gw_call *c = a->call;
    struct call_resume *rs = c->rs;
    uint32_t max = c->w->cfg->max_message_bytes;
    int relayed = 0;
    rs->owed += len;
    while (len > 0) {
        int skipping = rs->in_idx < rs->nmsg;
        if (rs->hdr_have < 5) {
            size_t need = 5u - rs->hdr_have, k = need < len ? need : len;
            memcpy(rs->hdr + rs->hdr_have, p, k);
            rs->hdr_have += (uint8_t)k;
            p += k;
            len -= k;
            if (rs->hdr_have < 5)
                break;
            rs->msg_len = (uint32_t)rs->hdr[1] << 24 | (uint32_t)rs->hdr[2] << 16 |
                          (uint32_t)rs->hdr[3] << 8 | rs->hdr[4];
            if (rs->msg_len > max) {
                gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED,
                             "response message of %" PRIu32 " bytes from replica %s exceeds the "
                             "gateway's limit of %" PRIu32 " bytes (--max-message-bytes)",
                             rs->msg_len, call__attempt_addr(a), max);
                return;
            }
            rs->remaining = rs->msg_len;
            XXH3_64bits_reset(rs->xs);
            XXH3_64bits_update(rs->xs, rs->hdr, 5);
            if (!skipping) {
                if (gw_bufq_append(&rs->partial, rs->hdr, 5) < 0)
                    goto nomem;
                call__conn_held(c, 5);
            }
        }
        size_t k = rs->remaining < len ? rs->remaining : len;
        if (k) {
            XXH3_64bits_update(rs->xs, p, k);
            if (!skipping) {
                if (gw_bufq_append(&rs->partial, p, k) < 0)
                    goto nomem;
                call__conn_held(c, (int64_t)k);
            }
            rs->remaining -= (uint32_t)k;
            p += k;
            len -= k;
        }
        if (rs->remaining == 0) {
            rs->hdr_have = 0;
            int r = message_done(c);
            if (r < 0)
                return;
            relayed |= r;
        }
    }
    settle(c);
    if (relayed)
        call__relay_response(c);
    call__conn_buffer_check(c);
    return;
nomem:
    gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
}

/* --- carrying the stream over --------------------------------------------- */

/* Why the call cannot resume now, or NULL when it can. <planned>: the
 * replica is leaving, no failure (the retry budget is not asked). */
static const char *cannot_resume(struct gw_call *c, const struct gw_pool *pool, int planned)
{
    struct call_resume *rs = c->rs;
    uint64_t now = c->w->loop.now_ns;
    if (!pool)
        return "its pool is gone";
    if (!c->replayable || c->req_base != 0)
        return "the request is no longer held (--retry-buffer-bytes, --replay-buffer-total)";
    if (rs->full)
        return rs->full;
    if (c->natt >= GW_CALL_MAX_ATTEMPTS || c->natt >= pool->tun.retry_max_attempts)
        return "retry_max_attempts reached";
    uint64_t floor = c->ps ? gw_latency_quantile(&c->ps->latency, 0.5, LATENCY_MIN_SAMPLES) : 0;
    if (c->deadline_ns && now + floor >= c->deadline_ns)
        return "too little of the deadline is left";
    if (!planned && (!c->ps || !gw_budget_take(&c->ps->retry_budget, now,
                                               pool->tun.retry_budget_percent, RETRY_BUDGET_MIN))) {
        gw_metrics_policy(c->w->metrics, GW_POLICY_RETRY_BUDGET);
        return "the pool's retry budget is spent";
    }
    return NULL;
}

/* Starts a resume attempt in place of <old> (the winner, lost or leaving).
 * Returns 1 when one started (<old> is then reset if still open); 0 with
 * the reason in <why> and nothing changed otherwise. */
static int resume_go(struct gw_attempt *old, int planned, const char *cause, char *why,
                     size_t whylen)
{
    struct gw_call *c = old->call;
    struct call_resume *rs = c->rs;
    const struct gw_pool *pool = call__pool(c);
    const char *no = cannot_resume(c, pool, planned);
    if (no) {
        snprintf(why, whylen, "%s", no);
        return 0;
    }
    /* rs->cur and rs->nmsg tell the new attempt's request headers where it
     * starts (x-resume-from). */
    c->winner = NULL;
    if (call__attempt_start(c, pool, NULL, GW_ATTEMPT_RESUME) < 0) {
        c->winner = old;
        snprintf(why, whylen, "%s", c->start_msg);
        return 0;
    }
    struct gw_attempt *a = c->att[c->natt - 1];
    if (!old->cancelled && old->st.open)
        call__attempt_cancel(old);
    old->finished = 1;
    /* What the old winner sent of an unfinished message goes; its bytes in
     * respbuf still go to the client, its window is no one's. */
    call__conn_held(c, -(int64_t)rs->partial.len);
    gw_bufq_reset(&rs->partial);
    rs->hdr_have = 0;
    rs->remaining = 0;
    rs->stale += rs->win_in_buf;
    rs->win_in_buf = rs->owed = 0;
    rs->in_idx = rs->cur == GW_RESUME_CONTINUE ? rs->nmsg : 0;
    rs->from = rs->in_idx;
    if (!rs->lost_ns)
        rs->lost_ns = c->w->loop.now_ns;
    c->winner = a;
    rs->resumes++;
    rs->pending = 1;
    char rid[65];
    gw_log(GW_LOG_INFO, "stream_resume", "{s:I, s:s, s:s, s:s, s:s, s:s, s:i, s:s}", "call",
           (json_int_t)c->id, "request_id", request_id(c, rid), "pool", pool->name, "from",
           call__attempt_addr(old), "to", call__attempt_addr(a), "mode",
           gw_resume_mode_name(rs->cur), "messages", (int)rs->nmsg, "cause", cause);
    return 1;
}

int call__resume_lost(struct gw_attempt *a, int code, const char *fmt, ...)
{
    struct gw_call *c = a->call;
    if (c->resume_mode == GW_RESUME_OFF || c->resp_done || !call__client_alive(c))
        return 0;
    char cause[160], why[160], rid[65];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(cause, sizeof(cause), fmt, ap);
    va_end(ap);
    if (!c->rs) {
        /* Resume is on for the pool, but the call kept no request to resume
         * with (it outgrew the log before the commit point, or the gateway
         * was out of memory): say so, or the loss reads like resume off. */
        metric(c, GW_RESUME_FAILED, 0, 0);
        gw_log(GW_LOG_INFO, "resume_failed", "{s:I, s:s, s:s, s:s, s:s, s:s}", "call",
               (json_int_t)c->id, "request_id", request_id(c, rid), "pool", c->pool_name, "status",
               gw_grpc_status_name(code), "cause", cause, "reason",
               "the request is no longer held (--retry-buffer-bytes, --replay-buffer-total)");
        return 0;
    }
    int counted = c->rs->pending;
    if (counted) {
        c->rs->pending = 0;
        metric(c, GW_RESUME_FAILED, 0, 0); /* the resume attempt itself was lost */
    }
    if (resume_go(a, 0, cause, why, sizeof(why)))
        return 1;
    if (!counted)
        metric(c, GW_RESUME_FAILED, 0, 0);
    gw_log(GW_LOG_INFO, "resume_failed", "{s:I, s:s, s:s, s:s, s:s, s:s}", "call",
           (json_int_t)c->id, "request_id", request_id(c, rid), "pool", c->pool_name, "status",
           gw_grpc_status_name(code), "cause", cause, "reason", why);
    return 0;
}

void call__resume_leaving(struct gw_attempt *a, const char *why)
{
    struct gw_call *c = a->call;
    char no[160];
    if (!c->rs || c->winner != a || a->cancelled || c->resp_done || !call__client_alive(c))
        return;
    if (!resume_go(a, 1, why, no, sizeof(no)))
        gw_log(GW_LOG_INFO, "resume_not_moved", "{s:I, s:s, s:s, s:s}", "call", (json_int_t)c->id,
               "replica", call__attempt_addr(a), "cause", why, "reason", no);
}

void call__resume_try_timeout(struct gw_attempt *a, uint32_t ms)
{
    struct gw_call *c = a->call;
    struct call_resume *rs = c->rs;
    if (a->kind != GW_ATTEMPT_RESUME || !rs || !rs->pending || c->resp_done || a->hdrs.n ||
        a->http_status || rs->in_idx != rs->from || rs->hdr_have)
        return; /* something came: the stream's own timeouts apply */
    call__attempt_cancel(a);
    if (!call__resume_lost(a, GW_GRPC_UNAVAILABLE,
                           "replica %s did not answer within per_try_timeout_ms (%" PRIu32 " ms)",
                           call__attempt_addr(a), ms))
        gw_call_fail(c, GW_GRPC_UNAVAILABLE,
                     "replica %s did not answer within per_try_timeout_ms (%" PRIu32 " ms)",
                     call__attempt_addr(a), ms);
}

/* Resume attempt <a> was refused by a replica that does not know
 * x-resume-from: replay on the same replica. */
static void fall_back(struct gw_attempt *a)
{
    struct gw_call *c = a->call;
    struct call_resume *rs = c->rs;
    char why[160];
    rs->pending = 0;
    metric(c, GW_RESUME_FALLBACK, 0, 0);
    rs->cur = GW_RESUME_REPLAY;
    for (size_t i = c->ntried; i-- > 0;)
        if (c->tried[i] == a->up) {
            memmove(&c->tried[i], &c->tried[i + 1], (c->ntried - i - 1) * sizeof(c->tried[0]));
            c->ntried--;
            break;
        }
    if (resume_go(a, 1, "replica refused x-resume-from", why, sizeof(why)))
        return;
    metric(c, GW_RESUME_FAILED, 0, 0);
    gw_call_fail(c, GW_GRPC_UNAVAILABLE,
                 "replica %s does not support resume (x-resume-from) and the stream could not be "
                 "replayed: %s",
                 call__attempt_addr(a), why);
}

/* Whether header lists <x> and <y> hold the same fields in the same order. */
static int same_headers(const struct gw_hdrlist *x, const struct gw_hdrlist *y)
{
    nghttp2_nv sx[48], sy[48];
    if (x->n != y->n)
        return 0;
    if (x->n > 48)
        return 1; /* not compared: the first set stands either way */
    gw_hdrlist_to_nv(x, sx);
    gw_hdrlist_to_nv(y, sy);
    for (size_t i = 0; i < x->n; i++)
        if (sx[i].namelen != sy[i].namelen || sx[i].valuelen != sy[i].valuelen ||
            memcmp(sx[i].name, sy[i].name, sx[i].namelen) ||
            memcmp(sx[i].value, sy[i].value, sx[i].valuelen))
            return 0;
    return 1;
}

void call__resume_headers(struct gw_attempt *a, int end_stream)
{
    struct gw_call *c = a->call;
    struct call_resume *rs = c->rs;
    if (a->http_status != 200) {
        int code = gw_grpc_status_from_http(a->http_status);
        if (!call__resume_lost(a, code, "replica %s answered HTTP %d", call__attempt_addr(a),
                               a->http_status))
            gw_call_fail(c, code, "replica %s answered HTTP %d", call__attempt_addr(a),
                         a->http_status);
        return;
    }
    if (!end_stream) {
        const struct gw_attempt *f = rs->first;
        if (f && !same_headers(&f->hdrs, &a->hdrs))
            gw_log(GW_LOG_DEBUG, "resume_headers_differ", "{s:I, s:s, s:s}", "call",
                   (json_int_t)c->id, "first", call__attempt_addr(f), "now", call__attempt_addr(a));
        return;
    }
    /* Trailers-only: the status is in the headers. */
    if (call__resume_trailers(a, &a->hdrs))
        return;
    if (!c->resp_submitted) {
        /* The client has no headers yet (the first winner's first message
         * never came whole): the answer is trailers-only for it too. */
        call__relay_trailers_only(a);
        return;
    }
    struct gw_hdrlist t = a->trailers;
    a->trailers = a->hdrs;
    a->hdrs = t;
    call__relay_trailers(a);
}

int call__resume_trailers(struct gw_attempt *a, const struct gw_hdrlist *h)
{
    struct gw_call *c = a->call;
    struct call_resume *rs = c->rs;
    int code = call__status_in(h);
    /* A replica that does not know x-resume-from refuses before any message
     * (trailers-only, or headers then trailers). */
    if (a->kind == GW_ATTEMPT_RESUME && rs->cur == GW_RESUME_CONTINUE &&
        code == GW_GRPC_FAILED_PRECONDITION && rs->in_idx == rs->from && !rs->hdr_have) {
        fall_back(a);
        return 1;
    }
    const struct gw_pool *pool = call__pool(c);
    if (code > 0 && pool && ((pool->tun.retry_on >> code) & 1) &&
        call__resume_lost(a, code, "replica %s answered %s", call__attempt_addr(a),
                          gw_grpc_status_name(code)))
        return 1;
    if (code == GW_GRPC_OK && rs->in_idx < rs->nmsg) {
        diverged(c, "ended the stream before the messages the caller has");
        return 1;
    }
    if (code == GW_GRPC_OK && (rs->hdr_have || rs->remaining)) {
        gw_call_fail(c, GW_GRPC_INTERNAL, "replica %s ended the stream inside a message",
                     call__attempt_addr(a));
        return 1;
    }
    if (code >= 0)
        resume_done(c);
    return 0;
}
