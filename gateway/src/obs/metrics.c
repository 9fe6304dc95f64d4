/* SPDX-License-Identifier: Apache-2.0 */
/* metrics — per-worker counters merged on scrape (see metrics.h). */
#include "obs/metrics.h"

#include <inttypes.h>
#include <stdlib.h>
#include <string.h>

#include "base/grpcwire.h"
#include "base/mem.h"

const double gw_metrics_buckets[GW_METRICS_NBUCKETS] = {
    0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10};

/* gw_metrics_buckets in ns, for the request path (le: a call of exactly a
 * bound's duration falls in that bucket). */
static const uint64_t bucket_ns[GW_METRICS_NBUCKETS] = {
    500000ULL,     1000000ULL,    2500000ULL,    5000000ULL,    10000000ULL,
    25000000ULL,   50000000ULL,   100000000ULL,  250000000ULL,  500000000ULL,
    1000000000ULL, 2500000000ULL, 5000000000ULL, 10000000000ULL};

static const char *const method_names[GW_METHOD_COUNT] = {
    [GW_METHOD_SERVER_LIVE] = "/inference.GRPCInferenceService/ServerLive",
    [GW_METHOD_SERVER_READY] = "/inference.GRPCInferenceService/ServerReady",
    [GW_METHOD_MODEL_READY] = "/inference.GRPCInferenceService/ModelReady",
    [GW_METHOD_SERVER_METADATA] = "/inference.GRPCInferenceService/ServerMetadata",
    [GW_METHOD_MODEL_METADATA] = "/inference.GRPCInferenceService/ModelMetadata",
    [GW_METHOD_MODEL_INFER] = "/inference.GRPCInferenceService/ModelInfer",
    [GW_METHOD_MODEL_STREAM_INFER] = "/inference.GRPCInferenceService/ModelStreamInfer",
    [GW_METHOD_HEALTH_CHECK] = "/grpc.health.v1.Health/Check",
    [GW_METHOD_HEALTH_WATCH] = "/grpc.health.v1.Health/Watch",
    [GW_METHOD_OTHER] = "other",
};

static const char *const outcome_names[GW_OUTCOME_COUNT - GW_METRICS_NCODES] = {
    "CONNECT_FAILED", "RESET", "CONNECTION_LOST"};

static const char *const kind_names[GW_KIND_COUNT] = {"primary", "retry", "hedge", "resume"};
static const char *const resume_mode_names[GW_METRICS_RESUME_MODES] = {"replay", "continue"};
static const char *const resume_outcome_names[GW_RESUME_OUTCOMES] = {"ok", "diverged", "failed",
                                                                     "fallback"};

static const char *const tls_fail_names[GW_TLS_FAIL_COUNT] = {
    [GW_TLS_FAIL_TIMEOUT] = "timeout",
    [GW_TLS_FAIL_NOT_TLS] = "not_tls",
    [GW_TLS_FAIL_PROTOCOL] = "protocol",
    [GW_TLS_FAIL_NO_ALPN_H2] = "no_alpn_h2",
    [GW_TLS_FAIL_NO_PEER_CERT] = "no_peer_certificate",
    [GW_TLS_FAIL_CERT_VERIFY] = "certificate_verify_failed",
    [GW_TLS_FAIL_PEER_ALERT] = "peer_alert",
    [GW_TLS_FAIL_PEER_CLOSED] = "peer_closed",
    [GW_TLS_FAIL_OTHER] = "other",
};

static const char *const tls_side_names[GW_TLS_SIDE_COUNT] = {"client", "upstream"};

const char *gw_metrics_tls_fail_name(int why)
{
    return why >= 0 && why < GW_TLS_FAIL_COUNT ? tls_fail_names[why] : "other";
}

/* Pool entries that are not pools of the snapshot. */
#define POOL_NONE     "none"
#define POOL_UNKNOWN  "unknown"
#define OVERFLOW      "other"
#define POOL_SLOTS    (GW_METRICS_MAX_POOLS + 3)
#define REPLICA_SLOTS (GW_METRICS_MAX_REPLICAS + 1)

struct gw_metrics *gw_metrics_new(void)
{
    struct gw_metrics *m = gw_calloc(1, sizeof(*m));
    if (!m)
        return NULL;
    if (pthread_mutex_init(&m->routes_mu, NULL) != 0) {
        gw_free(m);
        return NULL;
    }
    return m;
}

void gw_metrics_free(struct gw_metrics *m)
{
    if (!m)
        return;
    gw_routes_unref(m->routes);
    pthread_mutex_destroy(&m->routes_mu);
    gw_free(m);
}

void gw_metrics_set_routes(struct gw_metrics *m, struct gw_routes *rt)
{
    if (rt)
        gw_routes_ref(rt);
    pthread_mutex_lock(&m->routes_mu);
    struct gw_routes *old = m->routes;
    m->routes = rt;
    pthread_mutex_unlock(&m->routes_mu);
    gw_routes_unref(old);
}

struct gw_routes *gw_metrics_get_routes(struct gw_metrics *m)
{
    pthread_mutex_lock(&m->routes_mu);
    struct gw_routes *rt = m->routes;
    if (rt)
        gw_routes_ref(rt);
    pthread_mutex_unlock(&m->routes_mu);
    return rt;
}

#define KSERVE_PREFIX "/inference.GRPCInferenceService/"
#define HEALTH_PREFIX "/grpc.health.v1.Health/"

/* Compares the method part after the service prefix both share, so a call
 * costs one prefix compare and a few short ones. */
enum gw_metrics_method gw_metrics_method_of(const char *path)
{
    if (!path)
        return GW_METHOD_OTHER;
    int first, last;
    size_t plen;
    if (!strncmp(path, KSERVE_PREFIX, sizeof(KSERVE_PREFIX) - 1)) {
        first = GW_METHOD_SERVER_LIVE;
        last = GW_METHOD_MODEL_STREAM_INFER;
        plen = sizeof(KSERVE_PREFIX) - 1;
    } else if (!strncmp(path, HEALTH_PREFIX, sizeof(HEALTH_PREFIX) - 1)) {
        first = GW_METHOD_HEALTH_CHECK;
        last = GW_METHOD_HEALTH_WATCH;
        plen = sizeof(HEALTH_PREFIX) - 1;
    } else {
        return GW_METHOD_OTHER;
    }
    for (int i = first; i <= last; i++)
        if (!strcmp(path + plen, method_names[i] + plen))
            return (enum gw_metrics_method)i;
    return GW_METHOD_OTHER;
}

static int parse_status(const char *v, size_t len)
{
    if (!v || len == 0 || len > 2)
        return -1;
    int st = 0;
    for (size_t i = 0; i < len; i++) {
        if (v[i] < '0' || v[i] > '9')
            return -1;
        st = st * 10 + (v[i] - '0');
    }
    return st;
}

const char *gw_metrics_outcome_name(int outcome)
{
    if (outcome >= 0 && outcome < GW_METRICS_NCODES)
        return gw_grpc_status_name(outcome);
    if (outcome >= GW_METRICS_NCODES && outcome < GW_OUTCOME_COUNT)
        return outcome_names[outcome - GW_METRICS_NCODES];
    return "UNKNOWN";
}

int gw_metrics_status_of(const struct gw_hdrlist *trailers, const struct gw_hdrlist *hdrs)
{
    size_t len = 0;
    const char *v = gw_hdrlist_get(trailers, "grpc-status", &len);
    if (!v)
        v = gw_hdrlist_get(hdrs, "grpc-status", &len);
    return parse_status(v, len);
}

/* Finds entry <name> (<len> bytes) among the <n> published names of a table
 * of entries <size> bytes apart, each starting with its name. */
static void *table_find(void *base, size_t size, size_t n, const char *name, size_t len)
{
    for (size_t i = 0; i < n; i++) {
        char *e = (char *)base + i * size;
        if (!strncmp(e, name, len) && e[len] == '\0')
            return e;
    }
    return NULL;
}

/* Appends entry <name> when the table (count <np>) has room below <limit>;
 * the entry is zero (calloc) and published by the release store. */
static void *table_add(void *base, size_t size, _Atomic size_t *np, size_t limit, const char *name,
                       size_t len)
{
    size_t n = atomic_load_explicit(np, memory_order_relaxed);
    if (n >= limit || len > GW_METRICS_NAME_MAX)
        return NULL;
    char *e = (char *)base + n * size;
    memcpy(e, name, len);
    e[len] = '\0';
    atomic_store_explicit(np, n + 1, memory_order_release);
    return e;
}

static struct gw_metrics_pool *pool_entry(struct gw_metrics *m, const char *name, size_t len,
                                          size_t limit)
{
    size_t n = atomic_load_explicit(&m->npools, memory_order_relaxed);
    struct gw_metrics_pool *p = table_find(m->pools, sizeof(m->pools[0]), n, name, len);
    if (!p)
        p = table_add(m->pools, sizeof(m->pools[0]), &m->npools, limit, name, len);
    return p;
}

/* Entry <name> of a table of at most <limit> names, added when new; once
 * the table is full, its "other" entry (in the one slot past <limit>). */
static void *table_entry(void *base, size_t size, _Atomic size_t *np, size_t limit,
                         const char *name, size_t len)
{
    size_t n = atomic_load_explicit(np, memory_order_relaxed);
    void *e = table_find(base, size, n, name, len);
    if (!e)
        e = table_add(base, size, np, limit, name, len);
    if (!e)
        e = table_find(base, size, n, OVERFLOW, strlen(OVERFLOW));
    if (!e)
        e = table_add(base, size, np, limit + 1, OVERFLOW, strlen(OVERFLOW));
    return e;
}

struct gw_metrics_replica *gw_metrics_replica(struct gw_metrics *m, const char *addr)
{
    return table_entry(m->replicas, sizeof(m->replicas[0]), &m->nreplicas, GW_METRICS_MAX_REPLICAS,
                       addr, strlen(addr));
}

void gw_metrics_ratelimited(struct gw_metrics *m, const char *tenant)
{
    struct gw_metrics_tenant *t = m ? table_entry(m->tenants, sizeof(m->tenants[0]), &m->ntenants,
                                                  GW_METRICS_MAX_TENANTS, tenant, strlen(tenant))
                                    : NULL;
    if (t)
        gw_counter_add(&t->ratelimited, 1);
}

static struct gw_metrics_pool *call_pool(struct gw_metrics *m, const struct gw_routes *rt,
                                         const char *pool, size_t len)
{
    if (!pool)
        return pool_entry(m, POOL_NONE, strlen(POOL_NONE), POOL_SLOTS);
    size_t n = atomic_load_explicit(&m->npools, memory_order_relaxed);
    struct gw_metrics_pool *p = table_find(m->pools, sizeof(m->pools[0]), n, pool, len);
    if (p)
        return p;
    /* First call of this name on this worker: only pools of the snapshot
     * get a series of their own. */
    if (!rt || !gw_routes_find_pool(rt, pool, len))
        return pool_entry(m, POOL_UNKNOWN, strlen(POOL_UNKNOWN), POOL_SLOTS);
    p = table_add(m->pools, sizeof(m->pools[0]), &m->npools, GW_METRICS_MAX_POOLS, pool, len);
    return p ? p : pool_entry(m, OVERFLOW, strlen(OVERFLOW), POOL_SLOTS);
}

/* The duration histogram's bucket of <ns> (GW_METRICS_NBUCKETS = +Inf). */
static size_t duration_bucket(uint64_t ns)
{
    size_t b = 0;
    while (b < GW_METRICS_NBUCKETS && ns > bucket_ns[b])
        b++;
    return b;
}

void gw_metrics_call_end(struct gw_metrics *m, const struct gw_routes *rt, const char *pool,
                         size_t len, const char *path, int code, uint64_t duration_ns)
{
    if (!GW_METRICS_ON)
        return;
    struct gw_metrics_pool *p = call_pool(m, rt, pool, len);
    if (!p)
        return;
    if (code < 0 || code >= GW_METRICS_NCODES)
        code = GW_GRPC_UNKNOWN;
    gw_counter_add(&p->calls[gw_metrics_method_of(path)][code], 1);
    gw_counter_add(&p->buckets[duration_bucket(duration_ns)], 1);
    gw_counter_add(&p->duration_ns_sum, duration_ns);
}

void gw_metrics_resume(struct gw_metrics *m, const struct gw_routes *rt, const char *pool,
                       size_t len, int mode, int outcome, uint64_t gap_ns, uint64_t dropped_bytes)
{
    if (!GW_METRICS_ON || !m)
        return;
    struct gw_metrics_pool *p = call_pool(m, rt, pool, len);
    if (!p)
        return;
    if (outcome >= 0 && outcome < GW_RESUME_OUTCOMES && mode >= 1 &&
        mode <= GW_METRICS_RESUME_MODES)
        gw_counter_add(&p->resumes[mode - 1][outcome], 1);
    if (gap_ns) {
        gw_counter_add(&p->resume_gap[duration_bucket(gap_ns)], 1);
        gw_counter_add(&p->resume_gap_ns_sum, gap_ns);
    }
    if (dropped_bytes)
        gw_counter_add(&p->resume_dropped_bytes, dropped_bytes);
}

/* --- scrape ---------------------------------------------------------------- */

static uint64_t ld(gw_counter *c)
{
    return atomic_load_explicit(c, memory_order_relaxed);
}

void gw_metrics_write_label(FILE *out, const char *v)
{
    for (; *v; v++) {
        if (*v == '\\')
            fputs("\\\\", out);
        else if (*v == '"')
            fputs("\\\"", out);
        else if (*v == '\n')
            fputs("\\n", out);
        else
            fputc(*v, out);
    }
}

static void header(FILE *out, const char *name, const char *type, const char *help)
{
    fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", name, help, name, type);
}

/* Sums of one name over every worker. */
struct merged_pool {
    const char *name;
    uint64_t calls[GW_METHOD_COUNT][GW_METRICS_NCODES];
    uint64_t buckets[GW_METRICS_NBUCKETS + 1];
    uint64_t sum_ns;
    uint64_t resumes[GW_METRICS_RESUME_MODES][GW_RESUME_OUTCOMES];
    uint64_t gap[GW_METRICS_NBUCKETS + 1];
    uint64_t gap_ns;
    uint64_t dropped;
};

struct merged_replica {
    const char *name;
    uint64_t attempts[GW_KIND_COUNT][GW_OUTCOME_COUNT];
    int64_t inflight;
    int reachable;
    int listed; /* a worker keeps a record of it (not a replica that left) */
};

static size_t find_name(const char *const *names, size_t stride, size_t n, const char *name)
{
    for (size_t i = 0; i < n; i++)
        if (!strcmp(*(const char *const *)((const char *)names + i * stride), name))
            return i;
    return n;
}

/* One pool's series of histogram <name>: per-bucket counts <buckets>
 * (GW_METRICS_NBUCKETS + 1, the last +Inf) and their sum in ns. */
static void render_pool_hist(FILE *out, const char *name, const char *pool, const uint64_t *buckets,
                             uint64_t sum_ns)
{
    uint64_t cum = 0;
    for (int b = 0; b <= GW_METRICS_NBUCKETS; b++) {
        cum += buckets[b];
        fprintf(out, "%s_bucket{pool=\"", name);
        gw_metrics_write_label(out, pool);
        if (b < GW_METRICS_NBUCKETS)
            fprintf(out, "\",le=\"%g\"} %" PRIu64 "\n", gw_metrics_buckets[b], cum);
        else
            fprintf(out, "\",le=\"+Inf\"} %" PRIu64 "\n", cum);
    }
    fprintf(out, "%s_sum{pool=\"", name);
    gw_metrics_write_label(out, pool);
    fprintf(out, "\"} %.9f\n", (double)sum_ns / 1e9);
    fprintf(out, "%s_count{pool=\"", name);
    gw_metrics_write_label(out, pool);
    fprintf(out, "\"} %" PRIu64 "\n", cum);
}

static void render_pools(struct merged_pool *mp, size_t n, FILE *out)
{
    header(out, "infergw_calls_total", "counter",
           "Calls finished by the gateway, by pool, method (:path) and gRPC status.");
    for (size_t i = 0; i < n; i++)
        for (int me = 0; me < GW_METHOD_COUNT; me++)
            for (int c = 0; c < GW_METRICS_NCODES; c++) {
                if (!mp[i].calls[me][c])
                    continue;
                fputs("infergw_calls_total{pool=\"", out);
                gw_metrics_write_label(out, mp[i].name);
                fprintf(out, "\",method=\"%s\",code=\"%s\"} %" PRIu64 "\n", method_names[me],
                        gw_grpc_status_name(c), mp[i].calls[me][c]);
            }
    header(out, "infergw_call_duration_seconds", "histogram",
           "Time from a call's request headers to its end, by pool.");
    for (size_t i = 0; i < n; i++)
        render_pool_hist(out, "infergw_call_duration_seconds", mp[i].name, mp[i].buckets,
                         mp[i].sum_ns);
    header(out, "infergw_stream_resumes_total", "counter",
           "Committed streams carried over to another replica (docs/stream-resume.md), by pool, "
           "mode and outcome.");
    for (size_t i = 0; i < n; i++)
        for (int mo = 0; mo < GW_METRICS_RESUME_MODES; mo++)
            for (int o = 0; o < GW_RESUME_OUTCOMES; o++) {
                if (!mp[i].resumes[mo][o])
                    continue;
                fputs("infergw_stream_resumes_total{pool=\"", out);
                gw_metrics_write_label(out, mp[i].name);
                fprintf(out, "\",mode=\"%s\",outcome=\"%s\"} %" PRIu64 "\n", resume_mode_names[mo],
                        resume_outcome_names[o], mp[i].resumes[mo][o]);
            }
    header(out, "infergw_stream_resume_gap_seconds", "histogram",
           "Extra time a resumed stream's caller waited: from the loss of its replica to the "
           "first new message, by pool.");
    for (size_t i = 0; i < n; i++) {
        uint64_t any = 0;
        for (int b = 0; b <= GW_METRICS_NBUCKETS; b++)
            any += mp[i].gap[b];
        if (any)
            render_pool_hist(out, "infergw_stream_resume_gap_seconds", mp[i].name, mp[i].gap,
                             mp[i].gap_ns);
    }
    header(out, "infergw_stream_resume_dropped_bytes_total", "counter",
           "Bytes of replayed response messages a resumed stream's new replica sent again and the "
           "gateway checked and dropped (replay mode), by pool.");
    for (size_t i = 0; i < n; i++) {
        if (!mp[i].dropped)
            continue;
        fputs("infergw_stream_resume_dropped_bytes_total{pool=\"", out);
        gw_metrics_write_label(out, mp[i].name);
        fprintf(out, "\"} %" PRIu64 "\n", mp[i].dropped);
    }
}

static void render_replicas(struct merged_replica *mr, size_t n, FILE *out)
{
    header(out, "infergw_upstream_attempts_total", "counter",
           "Attempts sent to replicas, by replica, kind and outcome (gRPC status or "
           "transport failure).");
    for (size_t i = 0; i < n; i++)
        for (int k = 0; k < GW_KIND_COUNT; k++)
            for (int o = 0; o < GW_OUTCOME_COUNT; o++) {
                if (!mr[i].attempts[k][o])
                    continue;
                fputs("infergw_upstream_attempts_total{replica=\"", out);
                gw_metrics_write_label(out, mr[i].name);
                fprintf(out, "\",kind=\"%s\",outcome=\"%s\"} %" PRIu64 "\n", kind_names[k],
                        gw_metrics_outcome_name(o), mr[i].attempts[k][o]);
            }
    /* The gauges describe the replicas the workers keep; one that left (and
     * whose record was freed) drops out rather than showing as unreachable. */
    header(out, "infergw_inflight_calls", "gauge",
           "Attempts open on each replica, summed over workers.");
    for (size_t i = 0; i < n; i++) {
        if (!mr[i].listed)
            continue;
        fputs("infergw_inflight_calls{replica=\"", out);
        gw_metrics_write_label(out, mr[i].name);
        fprintf(out, "\"} %" PRId64 "\n", mr[i].inflight);
    }
    header(out, "infergw_replica_reachable", "gauge",
           "1 when at least one worker has a connection up to the replica.");
    for (size_t i = 0; i < n; i++) {
        if (!strcmp(mr[i].name, OVERFLOW) || !mr[i].listed)
            continue;
        fputs("infergw_replica_reachable{replica=\"", out);
        gw_metrics_write_label(out, mr[i].name);
        fprintf(out, "\"} %d\n", mr[i].reachable);
    }
}

/* Indexed by enum infergw_auth_reason, then GW_AUTH_REASON_*. */
static const char *const reason_names[GW_METRICS_NREASONS] = {
    "refused",    "no_credentials", "malformed",         "unknown_key",
    "expired",    "not_yet_valid",  "bad_signature",     "bad_algorithm",
    "bad_claims", "unknown_tenant", "model_not_allowed", "model_mismatch",
};

const char *gw_metrics_auth_reason_name(int reason)
{
    return reason >= 0 && reason < GW_METRICS_NREASONS ? reason_names[reason] : reason_names[0];
}

static void render_auth(struct gw_metrics *const *ws, size_t nw, FILE *out)
{
    header(out, "infergw_auth_failures_total", "counter",
           "Calls refused by authentication (UNAUTHENTICATED) or authorization "
           "(PERMISSION_DENIED), by reason.");
    for (int r = 0; r < GW_METRICS_NREASONS; r++) {
        uint64_t v = 0;
        for (size_t w = 0; w < nw; w++)
            v += ld(&ws[w]->auth_failures[r]);
        fprintf(out, "infergw_auth_failures_total{reason=\"%s\"} %" PRIu64 "\n", reason_names[r],
                v);
    }
    header(out, "infergw_ratelimited_total", "counter",
           "Calls refused with RESOURCE_EXHAUSTED by their tenant's rate limit, by tenant.");
    for (size_t w = 0; w < nw; w++) {
        size_t n = atomic_load_explicit(&ws[w]->ntenants, memory_order_acquire);
        for (size_t i = 0; i < n; i++) {
            const char *name = ws[w]->tenants[i].name;
            int seen = 0; /* written already, for an earlier worker */
            for (size_t pw = 0; pw < w && !seen; pw++) {
                size_t pn = atomic_load_explicit(&ws[pw]->ntenants, memory_order_acquire);
                seen = table_find(ws[pw]->tenants, sizeof(ws[pw]->tenants[0]), pn, name,
                                  strlen(name)) != NULL;
            }
            if (seen)
                continue;
            uint64_t v = 0;
            for (size_t ow = w; ow < nw; ow++) {
                size_t on = atomic_load_explicit(&ws[ow]->ntenants, memory_order_acquire);
                struct gw_metrics_tenant *t =
                    table_find(ws[ow]->tenants, sizeof(ws[ow]->tenants[0]), on, name, strlen(name));
                if (t)
                    v += ld(&t->ratelimited);
            }
            fputs("infergw_ratelimited_total{tenant=\"", out);
            gw_metrics_write_label(out, name);
            fprintf(out, "\"} %" PRIu64 "\n", v);
        }
    }
}

const char *gw_metrics_limit_name(int which)
{
    static const char *const names[GW_LIMIT_COUNT] = {
        "header_list_client", "header_list_replica", "max_conns",           "accept_nofile",
        "preface_timeout",    "idle_timeout",        "stream_idle_timeout", "max_deadline",
        "pushback_capped",    "content_type",        "conn_buffer",
    };
    return which >= 0 && which < GW_LIMIT_COUNT ? names[which] : "other";
}

/* The upstream connection events and the limits of the upstream side. */
static void render_upstream(struct gw_metrics *const *ws, size_t nw, FILE *out)
{
    static const char *const names[GW_UP_COUNT] = {
        "infergw_upstream_conns_retired_total{reason=\"goaway\"}",
        "infergw_upstream_conns_retired_total{reason=\"stream_ids\"}",
        "infergw_upstream_local_failures_total",
        "infergw_upstream_refused_rerouted_total",
        "infergw_replay_budget_exceeded_total",
    };
    static const char *const help[GW_UP_COUNT] = {
        "Upstream connections drained and replaced: the replica sent GOAWAY, or the "
        "connection's stream ids were running out.",
        NULL,
        "Upstream connects that failed for want of a gateway resource (descriptors, buffers, "
        "ports); never counted against the replica.",
        "Upstream streams the replica refused (REFUSED_STREAM) or that never left, routed "
        "again without blaming the replica.",
        "Calls run single-attempt because the worker's replay buffers were full "
        "(--replay-buffer-total).",
    };
    for (int k = 0; k < GW_UP_COUNT; k++) {
        uint64_t v = 0;
        for (size_t w = 0; w < nw; w++)
            v += ld(&ws[w]->upstream[k]);
        if (help[k]) {
            char name[64];
            size_t n = strcspn(names[k], "{");
            snprintf(name, sizeof(name), "%.*s", (int)n, names[k]);
            header(out, name, "counter", help[k]);
        }
        fprintf(out, "%s %" PRIu64 "\n", names[k], v);
    }
    int64_t recs = 0, replay = 0;
    for (size_t w = 0; w < nw; w++) {
        recs += atomic_load_explicit(&ws[w]->upstream_records, memory_order_relaxed);
        replay += atomic_load_explicit(&ws[w]->replay_bytes, memory_order_relaxed);
    }
    header(out, "infergw_upstream_records", "gauge",
           "Per-worker replica records (connections, counters) the workers keep, summed; "
           "records of replicas that left the configuration are freed once idle.");
    fprintf(out, "infergw_upstream_records %" PRId64 "\n", recs);
    header(out, "infergw_replay_buffer_bytes", "gauge",
           "Request bytes held for retries and hedges, and message hashes held for stream "
           "resume, summed over workers (--replay-buffer-total per worker).");
    fprintf(out, "infergw_replay_buffer_bytes %" PRId64 "\n", replay);
}

static void render_global(struct gw_metrics *const *ws, size_t nw,
                          const struct gw_metrics_global *g, FILE *out)
{
    int64_t conns = 0;
    for (size_t w = 0; w < nw; w++)
        conns += atomic_load_explicit(&ws[w]->client_connections, memory_order_relaxed);
    header(out, "infergw_client_connections", "gauge", "Client connections open.");
    fprintf(out, "infergw_client_connections %" PRId64 "\n", conns);
    header(out, "infergw_tls_handshakes_total", "counter",
           "TLS handshakes completed, by side (client: accepted connections; upstream: "
           "connections to replicas).");
    for (int side = 0; side < GW_TLS_SIDE_COUNT; side++) {
        uint64_t n = 0;
        for (size_t w = 0; w < nw; w++)
            n += ld(&ws[w]->tls_handshakes[side]);
        fprintf(out, "infergw_tls_handshakes_total{side=\"%s\"} %" PRIu64 "\n",
                tls_side_names[side], n);
    }
    header(out, "infergw_tls_handshake_failures_total", "counter",
           "TLS handshakes that failed, by side and reason.");
    for (int side = 0; side < GW_TLS_SIDE_COUNT; side++)
        for (int why = 0; why < GW_TLS_FAIL_COUNT; why++) {
            uint64_t n = 0;
            for (size_t w = 0; w < nw; w++)
                n += ld(&ws[w]->tls_failures[side][why]);
            if (n)
                fprintf(out,
                        "infergw_tls_handshake_failures_total{side=\"%s\",reason=\"%s\"} "
                        "%" PRIu64 "\n",
                        tls_side_names[side], tls_fail_names[why], n);
        }
    header(out, "infergw_limit_hits_total", "counter",
           "Times a limit or timeout of the client edge acted, by limit (docs/limits.md).");
    for (int l = 0; l < GW_LIMIT_COUNT; l++) {
        uint64_t n = 0;
        for (size_t w = 0; w < nw; w++)
            n += ld(&ws[w]->limits[l]);
        fprintf(out, "infergw_limit_hits_total{limit=\"%s\"} %" PRIu64 "\n",
                gw_metrics_limit_name(l), n);
    }
    static const char *const policy_names[GW_POLICY_COUNT] = {
        "infergw_retries_refused_total{reason=\"budget\"}",
        "infergw_retries_refused_total{reason=\"deadline\"}",
        "infergw_retries_refused_total{reason=\"pushback\"}",
        "infergw_hedges_refused_total{reason=\"budget\"}",
        "infergw_hedges_refused_total{reason=\"deadline\"}",
        "infergw_hedges_won_total",
    };
    for (int p = 0; p < GW_POLICY_COUNT; p++) {
        uint64_t v = 0;
        for (size_t w = 0; w < nw; w++)
            v += atomic_load_explicit(&ws[w]->policy[p], memory_order_relaxed);
        if (p == GW_POLICY_RETRY_BUDGET)
            header(out, "infergw_retries_refused_total", "counter",
                   "Retries not made: the retry budget was spent, the deadline left too little "
                   "time, or the replica's grpc-retry-pushback-ms forbade it.");
        else if (p == GW_POLICY_HEDGE_BUDGET)
            header(out, "infergw_hedges_refused_total", "counter",
                   "Hedges not sent: the hedge budget was spent, or the deadline left too "
                   "little time (less than the pool's median call).");
        else if (p == GW_POLICY_HEDGE_WON)
            header(out, "infergw_hedges_won_total", "counter",
                   "Calls whose hedge answered before the attempt it hedged.");
        fprintf(out, "%s %" PRIu64 "\n", policy_names[p], v);
    }
    render_upstream(ws, nw, out);
    header(out, "infergw_config_version", "gauge",
           "infergw:version of the routing snapshot in force (0 = --pool flags only).");
    fprintf(out, "infergw_config_version %" PRIu64 "\n", g->config_version);
    header(out, "infergw_config_age_seconds", "gauge",
           "Seconds since the routing snapshot in force was loaded.");
    fprintf(out, "infergw_config_age_seconds %.3f\n", g->config_age_seconds);
    if (!g->have_ctrl)
        return;
    header(out, "infergw_redis_up", "gauge", "1 while the control plane is connected to Redis.");
    fprintf(out, "infergw_redis_up %d\n", g->redis_up ? 1 : 0);
    header(out, "infergw_config_errors_total", "counter",
           "Configuration values refused by validation.");
    fprintf(out, "infergw_config_errors_total %" PRIu64 "\n", g->config_errors);
}

/* infergw_pool_slo_target: each pool's availability objective (the
 * slo_target tunable) as a ratio, for the SLO rules (docs/slo.md). The pools
 * are the snapshot in force on worker 0 (every worker converges on it). */
static void render_slo(struct gw_metrics *const *ws, size_t nw, FILE *out)
{
    struct gw_routes *rt = nw ? gw_metrics_get_routes(ws[0]) : NULL;
    if (!rt)
        return;
    header(out, "infergw_pool_slo_target", "gauge",
           "The pool's availability objective (slo_target) as a ratio: the share of calls that "
           "must not end with a service error.");
    for (size_t i = 0; i < rt->npools; i++) {
        fputs("infergw_pool_slo_target{pool=\"", out);
        gw_metrics_write_label(out, rt->pools[i].name);
        fprintf(out, "\"} %u.%05u\n", rt->pools[i].tun.slo_target_milli / 100000,
                rt->pools[i].tun.slo_target_milli % 100000);
    }
    gw_routes_unref(rt);
}

int gw_metrics_render(struct gw_metrics *const *ws, size_t nw, const struct gw_metrics_global *g,
                      FILE *out)
{
    struct merged_pool *mp = gw_calloc(nw * POOL_SLOTS + 1, sizeof(*mp));
    struct merged_replica *mr = gw_calloc(nw * REPLICA_SLOTS + 1, sizeof(*mr));
    if (!mp || !mr) {
        gw_free(mp);
        gw_free(mr);
        return -1;
    }
    size_t np = 0, nr = 0;
    for (size_t w = 0; w < nw; w++) {
        struct gw_metrics *m = ws[w];
        size_t n = atomic_load_explicit(&m->npools, memory_order_acquire);
        for (size_t i = 0; i < n; i++) {
            struct gw_metrics_pool *p = &m->pools[i];
            size_t j = find_name(&mp[0].name, sizeof(mp[0]), np, p->name);
            if (j == np)
                mp[np++].name = p->name;
            for (int me = 0; me < GW_METHOD_COUNT; me++)
                for (int c = 0; c < GW_METRICS_NCODES; c++)
                    mp[j].calls[me][c] += ld(&p->calls[me][c]);
            for (int b = 0; b <= GW_METRICS_NBUCKETS; b++)
                mp[j].buckets[b] += ld(&p->buckets[b]);
            mp[j].sum_ns += ld(&p->duration_ns_sum);
            for (int mo = 0; mo < GW_METRICS_RESUME_MODES; mo++)
                for (int o = 0; o < GW_RESUME_OUTCOMES; o++)
                    mp[j].resumes[mo][o] += ld(&p->resumes[mo][o]);
            for (int b = 0; b <= GW_METRICS_NBUCKETS; b++)
                mp[j].gap[b] += ld(&p->resume_gap[b]);
            mp[j].gap_ns += ld(&p->resume_gap_ns_sum);
            mp[j].dropped += ld(&p->resume_dropped_bytes);
        }
        n = atomic_load_explicit(&m->nreplicas, memory_order_acquire);
        for (size_t i = 0; i < n; i++) {
            struct gw_metrics_replica *r = &m->replicas[i];
            size_t j = find_name(&mr[0].name, sizeof(mr[0]), nr, r->name);
            if (j == nr)
                mr[nr++].name = r->name;
            for (int k = 0; k < GW_KIND_COUNT; k++)
                for (int o = 0; o < GW_OUTCOME_COUNT; o++)
                    mr[j].attempts[k][o] += ld(&r->attempts[k][o]);
            mr[j].inflight += atomic_load_explicit(&r->inflight, memory_order_relaxed);
            mr[j].reachable |= atomic_load_explicit(&r->reachable, memory_order_relaxed) != 0;
            mr[j].listed |= atomic_load_explicit(&r->listed, memory_order_relaxed) > 0;
        }
    }
    render_pools(mp, np, out);
    render_slo(ws, nw, out);
    render_replicas(mr, nr, out);
    render_global(ws, nw, g, out);
    render_auth(ws, nw, out);
    gw_free(mp);
    gw_free(mr);
    return ferror(out) ? -1 : 0;
}
