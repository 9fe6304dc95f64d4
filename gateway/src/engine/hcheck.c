/* SPDX-License-Identifier: Apache-2.0 */
/* hcheck — the active grpc.health.v1 checker; see hcheck.h. */
#include "engine/hcheck.h"

#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "base/grpcwire.h"
#include "health/health.h"
#include "base/log.h"
#include "base/mem.h"
#include "engine/upstream.h"
#include "engine/wstate.h"

#define MS_NS      1000000ULL
#define CHECK_PATH "/grpc.health.v1.Health/Check"

/* The checker's state of one upstream (up->check), allocated at its first
 * check and freed with the upstream; a check in flight holds a reference
 * on the upstream (so it is not swept while the timeout is armed). */
struct gw_hcheck {
    struct gw_upstream *up;
    struct gw_up_stream st; /* the check's stream; st.uc = its connection */
    unsigned busy : 1;      /* a check is in flight */
    uint64_t started_ns;
    struct gw_timer timeout;
    int grpc_status; /* -1 until seen */
    int http_status;
    uint8_t body[64]; /* the response message (a HealthCheckResponse is tiny) */
    size_t body_len;
    int body_overflow;
    uint8_t req[16]; /* the request, framed */
    size_t req_len, req_off;
};

static void check_finish(struct gw_upstream *up, enum gw_health_result r, const char *why)
{
    struct gw_hcheck *c = up->check;
    struct gw_worker *w = up->w;
    gw_loop_timer_cancel(&w->loop, &c->timeout);
    gw_upstream_detach(&c->st); /* a retired check connection closes now */
    c->st.open = 0;
    c->st.sid = -1;
    if (c->busy) {
        c->busy = 0;
        gw_upstream_unref(up);
    }
    int prev = atomic_load_explicit(&up->health->state, memory_order_relaxed);
    int next = gw_health_apply_check(up->health, r, w->cfg->healthy_threshold,
                                     w->cfg->unhealthy_threshold);
    if (r != GW_HC_SERVING)
        gw_log(GW_LOG_DEBUG, "health_check_failed", "{s:s, s:s, s:s}", "replica", up->addr,
               "result", gw_health_result_name(r), "reason", why);
    if (next >= 0)
        gw_log(next == GW_HEALTH_HEALTHY ? GW_LOG_INFO : GW_LOG_WARN, "replica_health",
               "{s:s, s:s, s:s, s:s, s:s}", "replica", up->addr, "state",
               gw_health_state_name(next), "previous", gw_health_state_name(prev), "result",
               gw_health_result_name(r), "reason", why);
}

static void check_timeout_cb(struct gw_timer *t, void *arg)
{
    struct gw_hcheck *c = arg;
    if (c->st.uc && c->st.open && !c->st.uc->conn.closing) {
        /* The stream is detached below: its later events are dropped. */
        nghttp2_submit_rst_stream(c->st.uc->conn.sess, NGHTTP2_FLAG_NONE, c->st.sid,
                                  NGHTTP2_CANCEL);
        gw_conn_mark_dirty(&c->st.uc->conn);
    }
    check_finish(c->up, GW_HC_TIMEOUT, "no answer within --health-timeout-ms");
}

static ssize_t check_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                             uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
    struct gw_hcheck *c = source->ptr;
    size_t n = c->req_len - c->req_off;
    if (n > length)
        n = length;
    memcpy(buf, c->req + c->req_off, n);
    c->req_off += n;
    if (c->req_off == c->req_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static const struct gw_up_stream_ops check_stream_ops;

/* The checker's state for <up>, made at its first check. NULL without memory. */
static struct gw_hcheck *check_get(struct gw_upstream *up)
{
    if (up->check)
        return up->check;
    struct gw_hcheck *c = gw_calloc(1, sizeof(*c));
    if (!c)
        return NULL;
    c->up = up;
    c->st.ops = &check_stream_ops;
    c->st.user = c;
    c->st.sid = -1;
    gw_timer_init(&c->timeout, check_timeout_cb, c);
    /* HealthCheckRequest{service: ""} behind the 5-byte gRPC prefix. */
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    size_t n = protobuf_c_message_get_packed_size(&req.base);
    c->req[0] = 0;
    c->req[1] = (uint8_t)(n >> 24);
    c->req[2] = (uint8_t)(n >> 16);
    c->req[3] = (uint8_t)(n >> 8);
    c->req[4] = (uint8_t)n;
    c->req_len = 5 + protobuf_c_message_pack(&req.base, c->req + 5);
    up->check = c;
    return c;
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }

static void check_start(struct gw_upstream *up)
{
    struct gw_hcheck *c = check_get(up);
    if (!c)
        return; /* tried again at the next tick */
    struct gw_worker *w = up->w;
    struct gw_up_conn *uc = gw_upstream_conn_probe(up);
    if (!uc) {
        check_finish(up, GW_HC_ERROR, "no connection to the replica");
        return;
    }
    char timeout[24];
    snprintf(timeout, sizeof(timeout), "%um", (unsigned)w->cfg->health_timeout_ms);
    nghttp2_nv nv[] = {
        NV(":method", "POST"),       NV(":scheme", "http"),
        NV(":path", CHECK_PATH),     NV(":authority", up->addr),
        NV("te", "trailers"),        NV("content-type", "application/grpc"),
        NV("grpc-timeout", timeout), NV("user-agent", "infergw-health"),
    };
    c->req_off = 0;
    c->grpc_status = -1;
    c->http_status = 0;
    c->body_len = 0;
    c->body_overflow = 0;
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = check_read_cb};
    int32_t sid = gw_upstream_submit_check(uc, &c->st, nv, sizeof(nv) / sizeof(nv[0]), &prd);
    if (sid < 0) {
        check_finish(up, GW_HC_ERROR, nghttp2_strerror(sid));
        return;
    }
    c->busy = 1;
    gw_upstream_ref(up);
    c->started_ns = w->loop.now_ns;
    gw_loop_timer_in(&w->loop, &c->timeout, (uint64_t)w->cfg->health_timeout_ms * MS_NS);
}

/* --- the check stream's events (gw_up_stream_ops) ------------------------ */

static int check_on_header(struct gw_up_stream *st, const uint8_t *name, size_t namelen,
                           const uint8_t *value, size_t valuelen)
{
    struct gw_hcheck *c = st->user;
    char v[16];
    if (valuelen >= sizeof(v))
        valuelen = sizeof(v) - 1;
    memcpy(v, value, valuelen);
    v[valuelen] = '\0';
    if (namelen == 7 && !memcmp(name, ":status", 7))
        c->http_status = atoi(v);
    else if (namelen == 11 && !memcmp(name, "grpc-status", 11))
        c->grpc_status = atoi(v);
    return 0;
}

static void check_on_data(struct gw_up_stream *st, const uint8_t *data, size_t len)
{
    struct gw_hcheck *c = st->user;
    if (!st->uc) /* stopped (gw_hcheck_stop): the worker is going away */
        return;
    /* A check's bytes are all taken at once: its stream window comes back. */
    nghttp2_session_consume_stream(st->uc->conn.sess, st->sid, len);
    if (c->body_len + len > sizeof(c->body)) {
        c->body_overflow = 1;
        return;
    }
    memcpy(c->body + c->body_len, data, len);
    c->body_len += len;
}

/* The verdict of a finished check stream. */
static enum gw_health_result check_verdict(const struct gw_hcheck *c, const char **why)
{
    if (c->http_status != 200) {
        *why = "HTTP status is not 200";
        return GW_HC_ERROR;
    }
    if (c->grpc_status == GW_GRPC_UNIMPLEMENTED) {
        *why = "grpc.health.v1 is UNIMPLEMENTED by the replica";
        return GW_HC_UNIMPLEMENTED;
    }
    if (c->grpc_status != 0) {
        *why = c->grpc_status < 0 ? "no grpc-status" : "grpc-status is not OK";
        return GW_HC_ERROR;
    }
    uint32_t mlen = c->body_len >= 5 ? (uint32_t)c->body[1] << 24 | (uint32_t)c->body[2] << 16 |
                                           (uint32_t)c->body[3] << 8 | c->body[4]
                                     : 0;
    if (c->body_overflow || c->body_len < 5 || c->body[0] != 0 || mlen != c->body_len - 5) {
        *why = "malformed HealthCheckResponse framing";
        return GW_HC_ERROR;
    }
    Grpc__Health__V1__HealthCheckResponse *r =
        grpc__health__v1__health_check_response__unpack(NULL, mlen, c->body + 5);
    if (!r) {
        *why = "malformed HealthCheckResponse";
        return GW_HC_ERROR;
    }
    enum gw_health_result res = GW_HC_ERROR;
    *why = "status is neither SERVING nor NOT_SERVING";
    if (r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING) {
        res = GW_HC_SERVING;
        *why = "SERVING";
    } else if (r->status == GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING) {
        res = GW_HC_NOT_SERVING;
        *why = "NOT_SERVING";
    }
    grpc__health__v1__health_check_response__free_unpacked(r, NULL);
    return res;
}

/* The check's stream closed (<error_code> from nghttp2) or never left
 * (NGHTTP2_REFUSED_STREAM), or its connection is gone. */
static void check_on_close(struct gw_up_stream *st, uint32_t error_code)
{
    struct gw_hcheck *c = st->user;
    st->open = 0;
    if (!c->busy)
        return;
    const char *why = "stream reset";
    enum gw_health_result r = error_code == NGHTTP2_NO_ERROR ? check_verdict(c, &why) : GW_HC_ERROR;
    if (error_code != NGHTTP2_NO_ERROR)
        why = nghttp2_http2_strerror(error_code);
    check_finish(c->up, r, why);
}

static void check_on_lost(struct gw_up_stream *st, int connected, const char *reason)
{
    check_on_close(st, NGHTTP2_CONNECT_ERROR);
}

static const struct gw_up_stream_ops check_stream_ops = {
    .on_header = check_on_header,
    .on_data = check_on_data,
    .on_close = check_on_close,
    .on_lost = check_on_lost,
};

static void checker_tick_cb(struct gw_timer *t, void *arg)
{
    struct gw_worker *w = arg;
    uint64_t now = w->loop.now_ns;
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_upstream *up = w->ups[i];
        if (gw_health_end_ejection(up->health, now))
            gw_log(
                GW_LOG_INFO, "replica_returned", "{s:s, s:I}", "replica", up->addr, "times_ejected",
                (json_int_t)atomic_load_explicit(&up->health->times_ejected, memory_order_relaxed));
        if (up->in_use && w->cfg->health_interval_ms > 0 && !(up->check && up->check->busy) &&
            !w->draining)
            check_start(up);
    }
    /* Records of replicas that left, once nothing uses them. */
    gw_upstream_sweep(w);
    gw_health_sweep(w->health, now);
    uint32_t every = w->cfg->health_interval_ms ? w->cfg->health_interval_ms : 1000;
    gw_loop_timer_in(&w->loop, &w->health_timer, (uint64_t)every * MS_NS);
}

int gw_hcheck_start(struct gw_worker *w)
{
    gw_timer_init(&w->health_timer, checker_tick_cb, w);
    /* The first round soon after start, once connections are up. */
    return gw_loop_timer_in(&w->loop, &w->health_timer, 50 * MS_NS);
}

void gw_hcheck_stop(struct gw_worker *w)
{
    gw_loop_timer_cancel(&w->loop, &w->health_timer);
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_hcheck *c = w->ups[i]->check;
        if (!c)
            continue;
        gw_loop_timer_cancel(&w->loop, &c->timeout);
        if (c->st.uc)
            c->st.uc->check = NULL;
        c->st.uc = NULL;
        if (c->busy) {
            c->busy = 0;
            gw_upstream_unref(w->ups[i]);
        }
    }
}
