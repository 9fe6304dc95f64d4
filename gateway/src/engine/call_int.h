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
 *   call_relay.c    the answer: commit, relay, trailers, gateway statuses,
 *                   the methods the gateway answers itself.
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
void call__answer_local(struct gw_call *c);

#endif
