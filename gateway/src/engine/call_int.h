/* SPDX-License-Identifier: Apache-2.0 */
/* call_int — what the files of the call engine share (internal to
 * engine/call*.c; the module's API is call.h). Symbols are prefixed call__.
 *
 * The engine is split by side:
 *   call_core.c     the call's lifecycle (new, timers, end, free), its request
 *                   log and replay accounting, h2srv's stream callbacks;
 *   call_intake.c   accepting the request: headers, authentication (the
 *                   verdict), model scan and check, request bytes, routing;
 *   call_attempt.c  attempts on upstream streams: start, cancel, fail,
 *                   retries and hedges (route/policy decides), close, loss;
 *   call_relay.c    the answer: commit, relay, trailers, gateway statuses;
 *   call_local.c    the methods the gateway answers itself;
 *   call_resume.c   stream resume: whole messages, their hashes, carrying a
 *                   committed stream over to another replica.
 * Loop thread only.
 */
#ifndef INFERGW_CALL_INT_H
#define INFERGW_CALL_INT_H

#include <nghttp2/nghttp2.h>
#include <stdint.h>
#include <string.h>

#include "engine/call.h"
#include "engine/upstream.h"
#include "engine/wstate.h"
#include "h2/h2srv.h"
#include "obs/metrics.h"

/* Budgets start with (and always allow) this many extra attempts per worker
 * and pool, so a quiet pool can still retry or hedge its first failures. */
#define RETRY_BUDGET_MIN 10

#define HEDGE_BUDGET_MIN 10

/* The observed latency is used once it rests on this many samples. */
#define LATENCY_MIN_SAMPLES 50

#define MS ((uint64_t)1000000)

static inline nghttp2_session *call__client_sess(struct gw_call *c)
{
    return c->sc->conn.sess;
}

static inline int call__client_alive(const struct gw_call *c)
{
    return !c->client_closed && !c->sc->conn.closed;
}

static inline void call__mark_client_dirty(struct gw_call *c)
{
    if (call__client_alive(c))
        gw_conn_mark_dirty(&c->sc->conn);
}

static inline const char *call__attempt_addr(const struct gw_attempt *a)
{
    return a && a->up ? a->up->addr : "(none)";
}

/* The grpc-status in header list <h>, or -1. */
static inline int call__status_in(const struct gw_hdrlist *h)
{
    return gw_metrics_status_of(h, h);
}

/* Passive health (outlier ejection): tells the replica's record how an
 * attempt went — a failure of the replica's own making, or an answer. */
static inline void call__report_outcome(const struct gw_attempt *a, int ok)
{
    if (a->up)
        gw_upstream_report(a->up, ok);
}

/* The committed response's header lists: the winner's, or the gateway's own. */
static inline struct gw_hdrlist *call__resp_hdrs(struct gw_call *c)
{
    return c->winner ? &c->winner->hdrs : &c->resp_hdrs;
}

static inline struct gw_hdrlist *call__resp_trailers(struct gw_call *c)
{
    return c->winner ? &c->winner->trailers : &c->resp_trailers;
}

static inline int call__name_is(const uint8_t *name, size_t len, const char *lit)
{
    size_t n = strlen(lit);
    return len == n && memcmp(name, lit, n) == 0;
}

#define NV_LIT(n, v)                                                                               \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), sizeof(n) - 1, sizeof(v) - 1, NGHTTP2_NV_FLAG_NONE         \
    }

static inline nghttp2_nv call__nv_str(const char *n, const char *v)
{
    nghttp2_nv nv = {(uint8_t *)n, (uint8_t *)v, strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE};
    return nv;
}

/* --- call_core.c --- */

void call__reset_stream(struct gw_conn *conn, int32_t sid, uint32_t err);
void call__conn_held(struct gw_call *c, int64_t delta);
extern const char *const call__kind_names[];
void call__cancel_timers(struct gw_call *c);
size_t call__running_attempts(const struct gw_call *c, const struct gw_attempt *except);
void call__maybe_free(struct gw_call *c);
void call__replay_account(struct gw_call *c);
/* Adds <d> (may be negative) to the worker's replay bytes and their gauge:
 * request logs (call__replay_account) and resume hashes (call_resume.c). */
void call__replay_bytes_add(struct gw_call *c, int64_t d);
void call__stop_replay(struct gw_call *c);
void call__resume_upstream(struct gw_call *c);
void call__replay_over_budget(struct gw_call *c);
ssize_t call__req_read_cb(nghttp2_session *session, int32_t stream_id, uint8_t *buf, size_t length,
                          uint32_t *data_flags, nghttp2_data_source *source, void *user_data);
const struct gw_pool *call__pool(const struct gw_call *c);

/* --- call_intake.c: the client stream's events (gw_call_srv_ops) --- */

int call__on_req_header(struct gw_srv_stream *st, const uint8_t *name, size_t namelen,
                        const uint8_t *value, size_t valuelen);
void call__refuse_header_list(struct gw_srv_stream *st);
void call__on_req_headers_done(struct gw_srv_stream *st);
void call__on_req_data(struct gw_srv_stream *st, const uint8_t *data, size_t len);
void call__on_req_end(struct gw_srv_stream *st);

/* --- call_attempt.c --- */

int call__attempt_start(struct gw_call *c, const struct gw_pool *pool, struct gw_attempt *reuse,
                        enum gw_attempt_kind kind);
void call__attempt_cancel(struct gw_attempt *a);
void call__cancel_attempts(struct gw_call *c, const struct gw_attempt *except);
void call__attempt_failed(struct gw_attempt *a, int code, int relayable, int retryable,
                          const char *fmt, ...) __attribute__((format(printf, 5, 6)));
void call__retry_cb(struct gw_timer *t, void *arg);
void call__hedge_cb(struct gw_timer *t, void *arg);

/* A replica of the worker's snapshot may take this call (eligible_cb). */
int call__eligible(uint32_t idx, void *ctx);

/* --- call_prefix.c --- */

/* route_by = prefix, before the primary attempt: returns 1 while the first
 * message is not whole in the log (c->pfx_wait; the data or the end of the
 * request calls again), 0 once decided: hashed (c->pfx_hashed) or not
 * (counted by reason; the ring routes). */
int call__prefix_prepare(struct gw_call *c, const struct gw_pool *pool);
/* The replica (index into routes->replicas) for the hashed call, or -1: the
 * ring at c->pfx_point (or the usual point) decides. Counts the decision. */
int call__prefix_pick(struct gw_call *c, const struct gw_pool *pool);
/* The pick went to <up>: its chain enters the estimation index. */
void call__prefix_record(struct gw_call *c, const struct gw_pool *pool, struct gw_upstream *up);
/* route_by = least_loaded: power of two choices, or -1 (no eligible one). */
int call__least_loaded_pick(struct gw_call *c, const struct gw_pool *pool);
/* A response header of attempt <a>: an ORCA load report feeds the replica's
 * average (a bad one is counted); other headers are ignored. */
void call__load_report(struct gw_attempt *a, const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen);

/* --- call_relay.c --- */

void call__finish_failed(struct gw_call *c);
void call__conn_buffer_check(struct gw_call *c);
int call__rst_to_grpc(uint32_t err);
/* the attempt stream's response events (attempt_stream_ops) */
void call__on_begin_headers(struct gw_up_stream *st, int trailers);
int call__on_resp_header(struct gw_up_stream *st, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen);
void call__on_resp_headers_done(struct gw_up_stream *st, int end_stream);
void call__on_resp_data(struct gw_up_stream *st, const uint8_t *data, size_t len);
/* Response bytes or the final status are ready for the client. */
void call__relay_response(struct gw_call *c);
/* The winner <a>'s trailers end the call: relayed (or INTERNAL without a
 * grpc-status). */
void call__relay_trailers(struct gw_attempt *a);

/* --- call_local.c --- */

void call__answer_local(struct gw_call *c);

/* --- call_resume.c --- */

/* The resume state of a call (c->rs). */
struct call_resume {
    struct XXH3_state_s *xs; /* the hash of the message coming in */
    uint64_t *hash;          /* hashes of the messages relayed to the client */
    uint32_t nmsg, cap;      /* messages relayed; room in hash */
    uint32_t in_idx;         /* index of the winner's message coming in */
    uint32_t msg_len;        /* its length (from its prefix) */
    uint32_t remaining;      /* its payload bytes still to come */
    uint8_t hdr[5];
    uint8_t hdr_have;               /* bytes of its prefix seen */
    uint8_t cur;                    /* the mode: the pool's, until continue falls back to replay */
    struct gw_bufq partial;         /* the winner's message coming in, held until whole */
    const struct gw_attempt *first; /* the winner whose headers the client got */
    uint64_t owed;                  /* winner bytes not yet given back to its stream window */
    uint64_t win_in_buf;            /* winner bytes in c->respbuf */
    uint64_t stale;                 /* bytes at respbuf's front from earlier winners */
    uint64_t lost_ns;               /* when the stream was lost; 0 = not resuming */
    uint32_t dropped_msgs;          /* replayed messages checked and dropped */
    uint32_t skipped_msgs;          /* messages continue attempts did not send again */
    uint32_t from;                  /* where the pending resume attempt started */
    uint32_t resumes;               /* resume attempts started */
    uint64_t hash_held;             /* bytes of hash counted in w->replay_bytes */
    const char *full;               /* why no more messages are hashed (no more resumes), or NULL */
    unsigned pending : 1;           /* a resume attempt awaits its outcome */
};

/* At the commit point: turns resume on for the call when its pool wants it
 * and the request is whole in the log. Returns 1 when on (the log stays). */
int call__resume_commit(struct gw_call *c);
/* The winner's response bytes, resume on: whole messages only reach the
 * client; replayed ones are checked and dropped. */
void call__resume_data(struct gw_attempt *a, const uint8_t *data, size_t len);
/* The client's data provider took <n> bytes of respbuf. */
void call__resume_taken(struct gw_call *c, size_t n);
/* Respbuf was emptied (the call ends): the held message goes too, and the
 * winner's window gets back what it is owed. */
void call__resume_dropped(struct gw_call *c);
/* The winner <a> was lost (<code>, reason after it): returns 1 when a
 * resume attempt took over, 0 when the call must end as it would without
 * resume. */
int call__resume_lost(struct gw_attempt *a, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The winner <a>'s replica is leaving (<why>): move the stream now. */
void call__resume_leaving(struct gw_attempt *a, const char *why);
/* A header block of resume attempt <a> (the winner) is complete. */
void call__resume_headers(struct gw_attempt *a, int end_stream);
/* The winner's final header block <h> (its trailers, or the headers of a
 * trailers-only answer), resume on. Returns 1 when handled (resumed again
 * or ended), 0 when it is to be relayed as it is. */
int call__resume_trailers(struct gw_attempt *a, const struct gw_hdrlist *h);
/* A resume attempt to which the client has no headers yet answers
 * trailers-only: relayed as such. */
void call__relay_trailers_only(struct gw_attempt *a);
/* The per-try timer of the winner <a> fired: a resume attempt nothing
 * came from yet is lost (per_try_timeout_ms); any other winner goes on. */
void call__resume_try_timeout(struct gw_attempt *a, uint32_t ms);
/* Frees the resume state. */
void call__resume_free(struct gw_call *c);

#endif
