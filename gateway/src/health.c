/* health — shared replica health records, passive ejection and the active
 * grpc.health.v1 checker; see health.h. */
#include "health.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "log.h"
#include "mem.h"
#include "metrics.h"
#include "policy.h"
#include "route.h"
#include "upstream.h"
#include "worker.h"

#define MS_NS               1000000ULL
#define CONN_BACKOFF_MIN_NS (100 * MS_NS)
#define CONN_BACKOFF_MAX_NS (5000 * MS_NS)
#define CHECK_PATH          "/grpc.health.v1.Health/Check"

/* --- the registry ------------------------------------------------------- */

struct gw_health_registry *gw_health_registry_new(void)
{
    struct gw_health_registry *reg = gw_calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    atomic_init(&reg->head, NULL);
    pthread_mutex_init(&reg->mu, NULL);
    return reg;
}

void gw_health_registry_free(struct gw_health_registry *reg)
{
    if (!reg)
        return;
    struct gw_health *h = atomic_load(&reg->head);
    while (h) {
        struct gw_health *next = h->next;
        gw_free(h->addr);
        gw_free(h);
        h = next;
    }
    pthread_mutex_destroy(&reg->mu);
    gw_free(reg);
}

struct gw_health *gw_health_find(struct gw_health_registry *reg, const char *addr)
{
    for (struct gw_health *h = atomic_load_explicit(&reg->head, memory_order_acquire); h;
         h = h->next)
        if (!strcmp(h->addr, addr))
            return h;
    return NULL;
}

struct gw_health *gw_health_get(struct gw_health_registry *reg, const char *addr)
{
    pthread_mutex_lock(&reg->mu);
    struct gw_health *h = gw_health_find(reg, addr);
    if (!h && (h = gw_calloc(1, sizeof(*h))) != NULL) {
        h->reg = reg;
        h->addr = gw_strdup(addr);
        if (!h->addr) {
            gw_free(h);
            h = NULL;
        } else {
            /* Fully built before the release store publishes it. */
            h->next = atomic_load_explicit(&reg->head, memory_order_relaxed);
            atomic_store_explicit(&reg->head, h, memory_order_release);
        }
    }
    pthread_mutex_unlock(&reg->mu);
    return h;
}

/* --- state -------------------------------------------------------------- */

static uint32_t ld32(const _Atomic uint32_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static uint64_t ld64(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void add64(_Atomic uint64_t *v, uint64_t n)
{
    atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

int gw_health_ejected(const struct gw_health *h, uint64_t now_ns)
{
    uint64_t until = ld64(&h->ejected_until_ns);
    return until != 0 && now_ns < until;
}

int gw_health_usable(const struct gw_health *h, uint64_t now_ns)
{
    int s = atomic_load_explicit(&h->state, memory_order_relaxed);
    return s != GW_HEALTH_UNHEALTHY && s != GW_HEALTH_NOT_SERVING && !gw_health_ejected(h, now_ns);
}

const char *gw_health_state_name(enum gw_health_state s)
{
    static const char *const names[] = {"unknown", "healthy", "unhealthy", "not_serving"};
    return (unsigned)s < GW_HEALTH_NSTATES ? names[s] : "unknown";
}

const char *gw_health_result_name(enum gw_health_result r)
{
    static const char *const names[] = {"serving", "not_serving", "error", "timeout"};
    return (unsigned)r < GW_HC_NRESULTS ? names[r] : "error";
}

int gw_health_apply_check(struct gw_health *h, enum gw_health_result r, uint32_t healthy_threshold,
                          uint32_t unhealthy_threshold)
{
    int prev = atomic_load_explicit(&h->state, memory_order_relaxed), next = prev;
    add64(&h->checks[r], 1);
    if (r == GW_HC_SERVING) {
        uint32_t ok = ld32(&h->check_ok) + 1;
        atomic_store_explicit(&h->check_ok, ok, memory_order_relaxed);
        atomic_store_explicit(&h->check_fail, 0, memory_order_relaxed);
        if (ok >= healthy_threshold)
            next = GW_HEALTH_HEALTHY;
    } else {
        uint32_t fail = ld32(&h->check_fail) + 1;
        atomic_store_explicit(&h->check_fail, fail, memory_order_relaxed);
        atomic_store_explicit(&h->check_ok, 0, memory_order_relaxed);
        if (fail >= unhealthy_threshold)
            next = r == GW_HC_NOT_SERVING ? GW_HEALTH_NOT_SERVING : GW_HEALTH_UNHEALTHY;
    }
    if (next == prev)
        return -1;
    atomic_store_explicit(&h->state, next, memory_order_relaxed);
    return next;
}

int gw_health_eject_allowed(const struct gw_routes *rt, size_t idx, gw_health_rec_fn rec, void *ctx,
                            uint32_t max_percent, uint64_t now_ns)
{
    for (size_t p = 0; p < rt->npools; p++) {
        const struct gw_pool *pool = &rt->pools[p];
        size_t n = pool->ring.nreplicas, ejected = 0;
        int member = 0;
        for (size_t j = 0; j < n; j++) {
            size_t r = pool->replica_ids[j];
            if (r == idx) {
                member = 1;
                continue;
            }
            struct gw_health *h = rec(r, ctx);
            ejected += h && gw_health_ejected(h, now_ns);
        }
        /* Ejecting it would make (ejected + 1) of n ejected. */
        if (member && (uint64_t)(ejected + 1) * 100 > (uint64_t)max_percent * n)
            return 0;
    }
    return 1;
}

int gw_health_passive(struct gw_health *h, int ok, uint64_t now_ns,
                      const struct gw_outlier_params *p, const struct gw_routes *rt, int idx,
                      gw_health_rec_fn rec, void *ctx)
{
    if (ok) {
        /* A load first: the common case writes nothing, so workers do not
         * bounce the line between them. */
        if (ld32(&h->failures) != 0)
            atomic_store_explicit(&h->failures, 0, memory_order_relaxed);
        return 0;
    }
    uint32_t n = atomic_fetch_add_explicit(&h->failures, 1, memory_order_relaxed) + 1;
    if (p->failures == 0 || n < p->failures || idx < 0 || !rt)
        return 0;
    int ejected = 0;
    pthread_mutex_lock(&h->reg->mu);
    if (ld32(&h->failures) >= p->failures && !gw_health_ejected(h, now_ns) &&
        gw_health_eject_allowed(rt, (size_t)idx, rec, ctx, p->max_percent, now_ns)) {
        uint32_t times = ld32(&h->times_ejected) + 1;
        uint64_t ms = gw_policy_ejection_ms(times, p->base_ms, p->max_ms);
        atomic_store_explicit(&h->times_ejected, times, memory_order_relaxed);
        atomic_store_explicit(&h->ejected_until_ns, now_ns + ms * MS_NS, memory_order_relaxed);
        ejected = 1;
    }
    /* Ejected or refused by the cap: either way the next decision waits for
     * a fresh run of failures, so a failing pool does not take the mutex on
     * every failure. */
    atomic_store_explicit(&h->failures, 0, memory_order_relaxed);
    pthread_mutex_unlock(&h->reg->mu);
    return ejected;
}

int gw_health_end_ejection(struct gw_health *h, uint64_t now_ns)
{
    uint64_t until = ld64(&h->ejected_until_ns);
    if (until == 0 || now_ns < until)
        return 0;
    return atomic_compare_exchange_strong(&h->ejected_until_ns, &until, 0);
}

int gw_health_conn_failed(struct gw_health *h, uint64_t now_ns)
{
    uint32_t f = atomic_fetch_add_explicit(&h->connect_failures, 1, memory_order_relaxed) + 1;
    uint64_t backoff = CONN_BACKOFF_MIN_NS << (f < 7 ? f - 1 : 6);
    if (backoff > CONN_BACKOFF_MAX_NS)
        backoff = CONN_BACKOFF_MAX_NS;
    atomic_store_explicit(&h->connect_retry_at_ns, now_ns + backoff, memory_order_relaxed);
    return f == 1;
}

int gw_health_conn_alive(struct gw_health *h)
{
    if (ld32(&h->connect_failures) == 0)
        return 0;
    return atomic_exchange_explicit(&h->connect_failures, 0, memory_order_relaxed) != 0;
}

int gw_health_conn_backing_off(const struct gw_health *h, uint64_t now_ns)
{
    return ld32(&h->connect_failures) != 0 && now_ns < ld64(&h->connect_retry_at_ns);
}

/* --- passive reports from the call engine ------------------------------- */

static struct gw_health *worker_rec(size_t i, void *ctx)
{
    struct gw_worker *w = ctx;
    return w->upmap[i] ? w->upmap[i]->health : NULL;
}

/* The index of <up> in its worker's snapshot, or -1. */
static int upstream_index(const struct gw_upstream *up)
{
    const struct gw_worker *w = up->w;
    for (size_t i = 0; i < w->routes->nreplicas; i++)
        if (w->upmap[i] == up)
            return (int)i;
    return -1;
}

void gw_health_report(struct gw_upstream *up, int ok)
{
    if (!up || !up->health)
        return;
    struct gw_worker *w = up->w;
    const struct gw_config *cfg = w->cfg;
    struct gw_outlier_params p = {cfg->outlier_failures, cfg->outlier_base_ms, cfg->outlier_max_ms,
                                  cfg->outlier_max_percent};
    uint64_t now = w->loop.now_ns;
    int idx = ok ? -1 : upstream_index(up);
    if (!gw_health_passive(up->health, ok, now, &p, w->routes, idx, worker_rec, w))
        return;
    uint64_t until = ld64(&up->health->ejected_until_ns);
    gw_log(GW_LOG_WARN, "replica_ejected", "{s:s, s:i, s:I, s:I, s:i}", "replica", up->addr,
           "consecutive_failures", (int)p.failures, "times_ejected",
           (json_int_t)ld32(&up->health->times_ejected), "ejected_ms",
           (json_int_t)((until - now) / MS_NS), "worker", w->index);
}

/* --- the active checker --------------------------------------------------- */

static void check_finish(struct gw_upstream *up, enum gw_health_result r, const char *why)
{
    struct gw_hcheck *c = &up->check;
    struct gw_worker *w = up->w;
    gw_loop_timer_cancel(&w->loop, &c->timeout);
    if (c->uc && c->uc->check_sid == c->sid)
        c->uc->check_sid = 0;
    c->uc = NULL;
    c->sid = 0;
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
    struct gw_upstream *up = arg;
    struct gw_hcheck *c = &up->check;
    if (c->uc && c->uc->check_sid == c->sid && !c->uc->conn.closing) {
        /* The stream's later events no longer match check_sid: dropped. */
        nghttp2_submit_rst_stream(c->uc->conn.sess, NGHTTP2_FLAG_NONE, c->sid, NGHTTP2_CANCEL);
        gw_conn_mark_dirty(&c->uc->conn);
    }
    check_finish(up, GW_HC_TIMEOUT, "no answer within --health-timeout-ms");
}

static ssize_t check_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t length,
                             uint32_t *data_flags, nghttp2_data_source *source, void *ud)
{
    struct gw_upstream *up = source->ptr;
    struct gw_hcheck *c = &up->check;
    size_t n = c->req_len - c->req_off;
    if (n > length)
        n = length;
    memcpy(buf, c->req + c->req_off, n);
    c->req_off += n;
    if (c->req_off == c->req_len)
        *data_flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

void gw_health_check_init(struct gw_upstream *up)
{
    struct gw_hcheck *c = &up->check;
    memset(c, 0, sizeof(*c));
    gw_timer_init(&c->timeout, check_timeout_cb, up);
    /* HealthCheckRequest{service: ""} behind the 5-byte gRPC prefix. */
    Grpc__Health__V1__HealthCheckRequest req = GRPC__HEALTH__V1__HEALTH_CHECK_REQUEST__INIT;
    size_t n = protobuf_c_message_get_packed_size(&req.base);
    c->req[0] = 0;
    c->req[1] = (uint8_t)(n >> 24);
    c->req[2] = (uint8_t)(n >> 16);
    c->req[3] = (uint8_t)(n >> 8);
    c->req[4] = (uint8_t)n;
    c->req_len = 5 + protobuf_c_message_pack(&req.base, c->req + 5);
}

#define NV(n, v)                                                                                   \
    {                                                                                              \
        (uint8_t *)(n), (uint8_t *)(v), strlen(n), strlen(v), NGHTTP2_NV_FLAG_NONE                 \
    }

static void check_start(struct gw_upstream *up)
{
    struct gw_hcheck *c = &up->check;
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
    nghttp2_data_provider prd = {.source.ptr = up, .read_callback = check_read_cb};
    int32_t sid =
        nghttp2_submit_request(uc->conn.sess, NULL, nv, sizeof(nv) / sizeof(nv[0]), &prd, NULL);
    if (sid < 0) {
        check_finish(up, GW_HC_ERROR, nghttp2_strerror(sid));
        return;
    }
    c->uc = uc;
    c->sid = sid;
    c->started_ns = w->loop.now_ns;
    uc->check_sid = sid;
    gw_conn_mark_dirty(&uc->conn);
    gw_loop_timer_in(&w->loop, &c->timeout, (uint64_t)w->cfg->health_timeout_ms * MS_NS);
}

void gw_health_check_on_header(struct gw_upstream *up, const uint8_t *name, size_t namelen,
                               const uint8_t *value, size_t valuelen)
{
    struct gw_hcheck *c = &up->check;
    char v[16];
    if (valuelen >= sizeof(v))
        valuelen = sizeof(v) - 1;
    memcpy(v, value, valuelen);
    v[valuelen] = '\0';
    if (namelen == 7 && !memcmp(name, ":status", 7))
        c->http_status = atoi(v);
    else if (namelen == 11 && !memcmp(name, "grpc-status", 11))
        c->grpc_status = atoi(v);
}

void gw_health_check_on_data(struct gw_upstream *up, const uint8_t *data, size_t len)
{
    struct gw_hcheck *c = &up->check;
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

void gw_health_check_on_close(struct gw_upstream *up, uint32_t error_code)
{
    struct gw_hcheck *c = &up->check;
    if (!c->uc)
        return;
    const char *why = "stream reset";
    enum gw_health_result r = error_code == NGHTTP2_NO_ERROR ? check_verdict(c, &why) : GW_HC_ERROR;
    if (error_code != NGHTTP2_NO_ERROR)
        why = nghttp2_http2_strerror(error_code);
    check_finish(up, r, why);
}

static void checker_tick_cb(struct gw_timer *t, void *arg)
{
    struct gw_worker *w = arg;
    uint64_t now = w->loop.now_ns;
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_upstream *up = w->ups[i];
        if (gw_health_end_ejection(up->health, now))
            gw_log(GW_LOG_INFO, "replica_returned", "{s:s, s:I}", "replica", up->addr,
                   "times_ejected", (json_int_t)ld32(&up->health->times_ejected));
        if (up->in_use && w->cfg->health_interval_ms > 0 && !up->check.uc && !w->draining)
            check_start(up);
    }
    uint32_t every = w->cfg->health_interval_ms ? w->cfg->health_interval_ms : 1000;
    gw_loop_timer_in(&w->loop, &w->health_timer, (uint64_t)every * MS_NS);
}

int gw_health_checker_start(struct gw_worker *w)
{
    gw_timer_init(&w->health_timer, checker_tick_cb, w);
    /* The first round soon after start, once connections are up. */
    return gw_loop_timer_in(&w->loop, &w->health_timer, 50 * MS_NS);
}

void gw_health_checker_stop(struct gw_worker *w)
{
    gw_loop_timer_cancel(&w->loop, &w->health_timer);
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_hcheck *c = &w->ups[i]->check;
        gw_loop_timer_cancel(&w->loop, &c->timeout);
        if (c->uc)
            c->uc->check_sid = 0;
        c->uc = NULL;
    }
}

/* --- metrics -------------------------------------------------------------- */

void gw_health_render_metrics(struct gw_health_registry *reg, FILE *out)
{
    struct gw_health *head = atomic_load_explicit(&reg->head, memory_order_acquire);
    uint64_t now = gw_now_ns();

    fputs("# HELP infergw_replica_health Replica health as the gateway sees it: 1 for the "
          "replica's current state (unknown, healthy, unhealthy, not_serving, ejected, down).\n"
          "# TYPE infergw_replica_health gauge\n",
          out);
    for (struct gw_health *h = head; h; h = h->next) {
        static const char *const extra[] = {"ejected", "down"};
        int st = atomic_load_explicit(&h->state, memory_order_relaxed);
        for (int s = 0; s < GW_HEALTH_NSTATES; s++) {
            fputs("infergw_replica_health{replica=\"", out);
            gw_metrics_write_label(out, h->addr);
            fprintf(out, "\",state=\"%s\"} %d\n", gw_health_state_name(s), s == st);
        }
        int flags[2] = {gw_health_ejected(h, now), ld32(&h->connect_failures) != 0};
        for (int k = 0; k < 2; k++) {
            fputs("infergw_replica_health{replica=\"", out);
            gw_metrics_write_label(out, h->addr);
            fprintf(out, "\",state=\"%s\"} %d\n", extra[k], flags[k]);
        }
    }
    fputs("# HELP infergw_replica_ejections_total Passive outlier ejections of the replica.\n"
          "# TYPE infergw_replica_ejections_total counter\n",
          out);
    for (struct gw_health *h = head; h; h = h->next) {
        fputs("infergw_replica_ejections_total{replica=\"", out);
        gw_metrics_write_label(out, h->addr);
        fprintf(out, "\"} %u\n", ld32(&h->times_ejected));
    }
    fputs("# HELP infergw_health_checks_total Active grpc.health.v1 checks by result.\n"
          "# TYPE infergw_health_checks_total counter\n",
          out);
    for (struct gw_health *h = head; h; h = h->next)
        for (int r = 0; r < GW_HC_NRESULTS; r++) {
            fputs("infergw_health_checks_total{replica=\"", out);
            gw_metrics_write_label(out, h->addr);
            fprintf(out, "\",result=\"%s\"} %llu\n", gw_health_result_name(r),
                    (unsigned long long)ld64(&h->checks[r]));
        }
    fputs("# HELP infergw_upstream_keepalive_timeouts_total Upstream connections closed because "
          "a PING was not answered in time.\n"
          "# TYPE infergw_upstream_keepalive_timeouts_total counter\n",
          out);
    for (struct gw_health *h = head; h; h = h->next) {
        fputs("infergw_upstream_keepalive_timeouts_total{replica=\"", out);
        gw_metrics_write_label(out, h->addr);
        fprintf(out, "\"} %llu\n", (unsigned long long)ld64(&h->keepalive_timeouts));
    }
}
