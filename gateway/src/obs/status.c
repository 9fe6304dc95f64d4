/* SPDX-License-Identifier: Apache-2.0 */
/* status — the live status page and /status.json (see status.h). */
#include "obs/status.h"

#include <errno.h>
#include <jansson.h>
#include <pthread.h>
#include <string.h>
#include <time.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/timer.h"
#include "control/watcher.h"
#include "health/health.h"
#include "obs/admin_t.h"
#include "obs/metrics.h"
#include "route/ring.h"

#define NBUCKETS (GW_METRICS_NBUCKETS + 1)
#define CSP                                                                                        \
    "default-src 'self'; script-src 'self'; style-src 'self'; img-src 'self' data:; "              \
    "connect-src 'self'; base-uri 'none'; form-action 'none'; frame-ancestors 'none'"

struct sample {
    uint32_t calls, errors;
    uint32_t buckets[NBUCKETS]; /* per bucket, not cumulative */
};

/* One pool name's history. */
struct pool_hist {
    char name[GW_METRICS_NAME_MAX + 1];
    int seen;                           /* <last> holds a first reading */
    uint64_t last[2 + NBUCKETS];        /* cumulative calls, errors, buckets */
    uint64_t cur[2 + NBUCKETS];         /* this reading (scratch) */
    struct sample s[GW_STATUS_SAMPLES]; /* slot = sample number % GW_STATUS_SAMPLES */
};

struct gw_status {
    struct gw_admin *a;
    pthread_t thread;
    pthread_mutex_t mu; /* guards everything below */
    pthread_cond_t cv;
    int stop;
    uint64_t nsamples;                /* samples taken so far */
    uint64_t t_ms[GW_STATUS_SAMPLES]; /* CLOCK_REALTIME of each sample */
    size_t npools;
    struct pool_hist pools[GW_METRICS_MAX_POOLS + 3];
};

/* The codes the Prometheus rules count as errors (deploy/prometheus). */
static int is_error(int code)
{
    return code == 2 || code == 4 || code == 12 || code == 13 || code == 14 || code == 15;
}

static struct pool_hist *hist_of(struct gw_status *s, const char *name, int add)
{
    for (size_t i = 0; i < s->npools; i++)
        if (!strcmp(s->pools[i].name, name))
            return &s->pools[i];
    if (!add || s->npools == sizeof(s->pools) / sizeof(s->pools[0]))
        return NULL;
    struct pool_hist *h = &s->pools[s->npools++];
    memset(h, 0, sizeof(*h));
    snprintf(h->name, sizeof(h->name), "%s", name);
    return h;
}

/* Adds worker pool entry <mp>'s counters to <h>->cur. */
static void read_pool(struct pool_hist *h, struct gw_metrics_pool *mp)
{
    for (int m = 0; m < GW_METHOD_COUNT; m++)
        for (int c = 0; c < GW_METRICS_NCODES; c++) {
            uint64_t v = atomic_load_explicit(&mp->calls[m][c], memory_order_relaxed);
            h->cur[0] += v;
            if (is_error(c))
                h->cur[1] += v;
        }
    for (int b = 0; b < NBUCKETS; b++)
        h->cur[2 + b] += atomic_load_explicit(&mp->buckets[b], memory_order_relaxed);
}

/* One reading of every worker's pool counters; the deltas since the last
 * reading become sample number s->nsamples. */
static void take_sample(struct gw_status *s)
{
    struct gw_admin *a = s->a;
    pthread_mutex_lock(&s->mu);
    for (size_t i = 0; i < s->npools; i++)
        memset(s->pools[i].cur, 0, sizeof(s->pools[i].cur));
    for (size_t w = 0; w < a->nworkers; w++) {
        struct gw_metrics *m = a->ms[w];
        size_t n = atomic_load_explicit(&m->npools, memory_order_acquire);
        for (size_t i = 0; i < n; i++) {
            struct pool_hist *h = hist_of(s, m->pools[i].name, 1);
            if (h)
                read_pool(h, &m->pools[i]);
        }
    }
    size_t slot = (size_t)(s->nsamples % GW_STATUS_SAMPLES);
    s->t_ms[slot] = gw_realtime_ms();
    for (size_t i = 0; i < s->npools; i++) {
        struct pool_hist *h = &s->pools[i];
        struct sample *o = &h->s[slot];
        uint64_t d[2 + NBUCKETS];
        for (int k = 0; k < 2 + NBUCKETS; k++) {
            d[k] = h->seen && h->cur[k] > h->last[k] ? h->cur[k] - h->last[k] : 0;
            if (d[k] > UINT32_MAX)
                d[k] = UINT32_MAX;
            h->last[k] = h->cur[k];
        }
        o->calls = (uint32_t)d[0];
        o->errors = (uint32_t)d[1];
        for (int b = 0; b < NBUCKETS; b++)
            o->buckets[b] = (uint32_t)d[2 + b];
        h->seen = 1;
    }
    s->nsamples++;
    pthread_mutex_unlock(&s->mu);
}

static void *sampler(void *arg)
{
    struct gw_status *s = arg;
    take_sample(s); /* the baseline */
    for (;;) {
        struct timespec at;
        clock_gettime(CLOCK_MONOTONIC, &at);
        at.tv_sec += GW_STATUS_PERIOD_MS / 1000;
        at.tv_nsec += (long)(GW_STATUS_PERIOD_MS % 1000) * 1000000L;
        if (at.tv_nsec >= 1000000000L) {
            at.tv_sec++;
            at.tv_nsec -= 1000000000L;
        }
        pthread_mutex_lock(&s->mu);
        int rc = 0;
        while (!s->stop && rc != ETIMEDOUT)
            rc = pthread_cond_timedwait(&s->cv, &s->mu, &at);
        int stop = s->stop;
        pthread_mutex_unlock(&s->mu);
        if (stop)
            return NULL;
        take_sample(s);
    }
}

struct gw_status *gw_status_start(struct gw_admin *a)
{
    struct gw_status *s = gw_calloc(1, sizeof(*s));
    pthread_condattr_t ca;
    if (!s) {
        gw_log(GW_LOG_WARN, "status_not_started", "{s:s}", "error", "out of memory");
        return NULL;
    }
    s->a = a;
    pthread_mutex_init(&s->mu, NULL);
    pthread_condattr_init(&ca);
    pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
    pthread_cond_init(&s->cv, &ca);
    pthread_condattr_destroy(&ca);
    int rc = pthread_create(&s->thread, NULL, sampler, s);
    if (rc != 0) {
        gw_log(GW_LOG_WARN, "status_not_started", "{s:s}", "error", strerror(rc));
        pthread_cond_destroy(&s->cv);
        pthread_mutex_destroy(&s->mu);
        gw_free(s);
        return NULL;
    }
    return s;
}

void gw_status_stop(struct gw_status *s)
{
    if (!s)
        return;
    pthread_mutex_lock(&s->mu);
    s->stop = 1;
    pthread_cond_signal(&s->cv);
    pthread_mutex_unlock(&s->mu);
    pthread_join(s->thread, NULL);
    pthread_cond_destroy(&s->cv);
    pthread_mutex_destroy(&s->mu);
    gw_free(s);
}

double gw_status_slo_target(const struct gw_pool *p)
{
    return p ? (double)p->tun.slo_target_milli / 100000.0 : GW_STATUS_SLO_TARGET;
}

double gw_status_quantile(const uint64_t *counts, double q)
{
    uint64_t total = 0;
    for (int b = 0; b < NBUCKETS; b++)
        total += counts[b];
    if (total == 0)
        return 0.0;
    double want = q * (double)total, seen = 0.0;
    for (int b = 0; b < GW_METRICS_NBUCKETS; b++) {
        if (counts[b] && seen + (double)counts[b] >= want) {
            double lo = b ? gw_metrics_buckets[b - 1] : 0.0, hi = gw_metrics_buckets[b];
            return lo + (hi - lo) * ((want - seen) / (double)counts[b]);
        }
        seen += (double)counts[b];
    }
    return gw_metrics_buckets[GW_METRICS_NBUCKETS - 1];
}

/* Pool <name>'s history as JSON arrays (oldest first, one entry per sample
 * after the baseline) and its totals over the window in <win>. */
static json_t *history_json(struct gw_status *s, const char *name, json_t *win, double slo)
{
    json_t *t = json_array(), *calls = json_array(), *errs = json_array();
    json_t *p50 = json_array(), *p99 = json_array();
    uint64_t wcalls = 0, werrs = 0, wb[NBUCKETS] = {0};
    double secs = 0.0;
    if (s) {
        pthread_mutex_lock(&s->mu);
        struct pool_hist *h = hist_of(s, name, 0);
        uint64_t n = s->nsamples > 1 ? s->nsamples - 1 : 0; /* the baseline has no delta */
        uint64_t first = s->nsamples - (n < GW_STATUS_SAMPLES ? n : GW_STATUS_SAMPLES);
        for (uint64_t i = first; i < s->nsamples && n; i++) {
            size_t slot = (size_t)(i % GW_STATUS_SAMPLES);
            struct sample zero = {0}, *o = h ? &h->s[slot] : &zero;
            uint64_t b[NBUCKETS];
            for (int k = 0; k < NBUCKETS; k++)
                wb[k] += b[k] = o->buckets[k];
            wcalls += o->calls;
            werrs += o->errors;
            json_array_append_new(t, json_integer((json_int_t)s->t_ms[slot]));
            json_array_append_new(calls, json_integer(o->calls));
            json_array_append_new(errs, json_integer(o->errors));
            json_array_append_new(p50, json_real(1000.0 * gw_status_quantile(b, 0.50)));
            json_array_append_new(p99, json_real(1000.0 * gw_status_quantile(b, 0.99)));
        }
        if (n)
            secs = (double)(n < GW_STATUS_SAMPLES ? n : GW_STATUS_SAMPLES) * GW_STATUS_PERIOD_MS /
                   1000.0;
        pthread_mutex_unlock(&s->mu);
    }
    double ratio = wcalls ? (double)werrs / (double)wcalls : 0.0;
    json_object_set_new(win, "seconds", json_real(secs));
    json_object_set_new(win, "calls", json_integer((json_int_t)wcalls));
    json_object_set_new(win, "errors", json_integer((json_int_t)werrs));
    json_object_set_new(win, "rate_per_s", json_real(secs > 0 ? (double)wcalls / secs : 0.0));
    json_object_set_new(win, "error_ratio", json_real(ratio));
    json_object_set_new(win, "p50_ms", json_real(1000.0 * gw_status_quantile(wb, 0.50)));
    json_object_set_new(win, "p99_ms", json_real(1000.0 * gw_status_quantile(wb, 0.99)));
    json_object_set_new(win, "slo_burn", json_real(slo < 1.0 ? ratio / (1.0 - slo) : 0.0));
    return json_pack("{s:o, s:o, s:o, s:o, s:o}", "t_ms", t, "calls", calls, "errors", errs,
                     "p50_ms", p50, "p99_ms", p99);
}

/* One word for the replica's state, worst first: down, ejected, unhealthy,
 * not_serving, lease_gone, draining, healthy, unknown (no verdict yet). */
static const char *state_word(const struct gw_replica *r, struct gw_health *h, int gone,
                              uint64_t now)
{
    int hs = h ? atomic_load_explicit(&h->state, memory_order_relaxed) : GW_HEALTH_UNKNOWN;
    if (h && atomic_load_explicit(&h->connect_failures, memory_order_relaxed))
        return "down";
    if (h && gw_health_ejected(h, now))
        return "ejected";
    if (hs == GW_HEALTH_UNHEALTHY || hs == GW_HEALTH_NOT_SERVING)
        return gw_health_state_name(hs);
    if (gone)
        return "lease_gone";
    if (r->drain)
        return "draining";
    return hs == GW_HEALTH_HEALTHY ? "healthy" : "unknown";
}

static json_t *replica_json(struct gw_admin *a, const struct gw_pool *p, const struct gw_routes *rt,
                            size_t j, double share, uint64_t now)
{
    const struct gw_replica *r = &rt->replicas[p->replica_ids[j]];
    int reachable = 0;
    int64_t inflight = 0;
    for (size_t w = 0; w < a->nworkers; w++) {
        struct gw_metrics *m = a->ms[w];
        size_t n = atomic_load_explicit(&m->nreplicas, memory_order_acquire);
        for (size_t i = 0; i < n; i++)
            if (!strcmp(m->replicas[i].name, r->addr)) {
                reachable |= atomic_load_explicit(&m->replicas[i].reachable, memory_order_relaxed);
                inflight += atomic_load_explicit(&m->replicas[i].inflight, memory_order_relaxed);
                break;
            }
    }
    struct gw_health *h = a->health ? gw_health_find(a->health, r->addr) : NULL;
    int gone = a->ctl ? gw_watcher_lease_gone(a->ctl, r->addr) : 0;
    /* One read of the ejection time: it may be cleared meanwhile. */
    uint64_t until = h ? atomic_load_explicit(&h->ejected_until_ns, memory_order_relaxed) : 0;
    int ejected = until != 0 && now < until;
    int down = h && atomic_load_explicit(&h->connect_failures, memory_order_relaxed) != 0;
    int hs = h ? atomic_load_explicit(&h->state, memory_order_relaxed) : GW_HEALTH_UNKNOWN;
    int eligible = !r->drain && !down && (!h || gw_health_usable(h, now));
    return json_pack("{s:s, s:s, s:I, s:f, s:b, s:b, s:b, s:I, s:s, s:b, s:I, s:b, s:b}", "address",
                     r->addr, "state", state_word(r, h, gone, now), "weight",
                     (json_int_t)p->ring.weights[j], "share", share, "drain", r->drain,
                     "lease_gone", gone, "reachable", reachable, "inflight", (json_int_t)inflight,
                     "health", gw_health_state_name(hs), "ejected", ejected, "ejected_for_ms",
                     (json_int_t)(ejected ? (until - now) / 1000000u : 0), "down", down, "eligible",
                     eligible);
}

static json_t *pool_json(struct gw_admin *a, struct gw_status *s, const struct gw_routes *rt,
                         const struct gw_pool *p, uint64_t now)
{
    double *shares = gw_calloc(p->ring.nreplicas ? p->ring.nreplicas : 1, sizeof(*shares));
    if (!shares)
        return NULL;
    gw_ring_shares(&p->ring, shares);
    json_t *reps = json_array(), *win = json_object();
    size_t eligible = 0;
    for (size_t j = 0; j < p->ring.nreplicas; j++) {
        json_t *o = replica_json(a, p, rt, j, shares[j], now);
        if (o && json_is_true(json_object_get(o, "eligible")))
            eligible++;
        json_array_append_new(reps, o);
    }
    gw_free(shares);
    double slo = gw_status_slo_target(p);
    json_t *hist = history_json(s, p->name, win, slo);
    return json_pack("{s:s, s:I, s:I, s:I, s:f, s:o, s:o, s:o}", "name", p->name, "points",
                     (json_int_t)p->ring.npoints, "replica_count", (json_int_t)p->ring.nreplicas,
                     "eligible", (json_int_t)eligible, "slo_target", slo, "window", win, "history",
                     hist, "replicas", reps);
}

static json_t *versions_json(struct gw_admin *a)
{
    json_t *arr = json_array();
    struct gw_watcher_applied v[GW_WATCHER_HISTORY];
    size_t n = a->ctl ? gw_watcher_history(a->ctl, v, GW_WATCHER_HISTORY) : 0;
    for (size_t i = 0; i < n; i++)
        json_array_append_new(arr, json_pack("{s:I, s:I}", "version", (json_int_t)v[i].version,
                                             "applied_at_ms", (json_int_t)v[i].at_ms));
    return arr;
}

static char *render_json(struct gw_admin *a, struct gw_status *s, size_t *len)
{
    struct gw_routes *rt = a->nworkers ? gw_metrics_get_routes(a->ms[0]) : NULL;
    uint64_t now = gw_now_ns();
    json_t *pools = json_array();
    for (size_t i = 0; rt && i < rt->npools; i++)
        json_array_append_new(pools, pool_json(a, s, rt, &rt->pools[i], now));
    json_t *control =
        a->ctl ? json_pack("{s:b, s:I, s:I}", "redis_up", atomic_load(&a->ctl->redis_up),
                           "config_errors", (json_int_t)atomic_load(&a->ctl->config_errors),
                           "reloads", (json_int_t)atomic_load(&a->ctl->reloads))
               : json_null();
    json_t *root = json_pack(
        "{s:I, s:I, s:I, s:I, s:i, s:i, s:o, s:o, s:o}", "now_ms", (json_int_t)gw_realtime_ms(),
        "started_ms", (json_int_t)a->started_ms, "version", (json_int_t)(rt ? rt->version : 0),
        "workers", (json_int_t)a->nworkers, "period_ms", GW_STATUS_PERIOD_MS, "samples",
        GW_STATUS_SAMPLES, "control", control, "config_versions", versions_json(a), "pools", pools);
    gw_routes_unref(rt);
    char *out = root ? json_dumps(root, JSON_COMPACT) : NULL;
    json_decref(root);
    if (out)
        *len = strlen(out);
    return out;
}

int gw_status_owns(const char *url)
{
    return !strcmp(url, "/") || !strcmp(url, "/index.html") || !strcmp(url, "/status.css") ||
           !strcmp(url, "/status.js") || !strcmp(url, "/status.json");
}

static enum MHD_Result answer(struct MHD_Connection *conn, unsigned code, const char *type,
                              void *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    MHD_add_response_header(resp, "Content-Security-Policy", CSP);
    MHD_add_response_header(resp, "X-Content-Type-Options", "nosniff");
    MHD_add_response_header(resp, "Cache-Control", "no-store");
    MHD_add_response_header(resp, "Referrer-Policy", "no-referrer");
    enum MHD_Result rc = MHD_queue_response(conn, code, resp);
    MHD_destroy_response(resp);
    return rc;
}

enum MHD_Result gw_status_serve(struct gw_admin *a, struct gw_status *s,
                                struct MHD_Connection *conn, const char *url)
{
    const char *file = NULL, *type = NULL;
    if (!strcmp(url, "/") || !strcmp(url, "/index.html")) {
        file = gw_status_index_html;
        type = "text/html; charset=utf-8";
    } else if (!strcmp(url, "/status.css")) {
        file = gw_status_status_css;
        type = "text/css; charset=utf-8";
    } else if (!strcmp(url, "/status.js")) {
        file = gw_status_status_js;
        type = "text/javascript; charset=utf-8";
    }
    if (file)
        return answer(conn, MHD_HTTP_OK, type, (void *)file, strlen(file), MHD_RESPMEM_PERSISTENT);
    size_t len = 0;
    char *body = render_json(a, s, &len);
    if (!body) {
        static const char oom[] = "out of memory\n";
        return answer(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "text/plain; charset=utf-8",
                      (void *)oom, sizeof(oom) - 1, MHD_RESPMEM_PERSISTENT);
    }
    return answer(conn, MHD_HTTP_OK, "application/json", body, len, MHD_RESPMEM_MUST_FREE);
}
