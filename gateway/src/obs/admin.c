/* SPDX-License-Identifier: Apache-2.0 */
/* admin — admin HTTP on libmicrohttpd's own thread (see admin.h). */
#include "obs/admin.h"

#include <jansson.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "control/kvview.h"
#include "control/watcher.h"
#include "engine/prefixstate.h"
#include "health/health.h"
#include "base/err.h"
#include "base/log.h"
#include "base/timer.h"
#include "base/mem.h"
#include "base/hostport.h"
#include "route/prefixidx.h"
#include "route/ring.h"
#include "route/route.h"
#include "route/tunables.h"
#include "engine/worker.h"
#include "obs/status.h"

/* Worker <m>'s entry for replica <addr>, or NULL when it has none yet. */
static struct gw_metrics_replica *replica_of(struct gw_metrics *m, const char *addr)
{
    size_t n = atomic_load_explicit(&m->nreplicas, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (!strcmp(m->replicas[i].name, addr))
            return &m->replicas[i];
    return NULL;
}

/* Whether pool <name> has an eligible replica in worker <m>'s view (and
 * in <health>'s, when given). */
static int pool_ready_on(struct gw_metrics *m, const struct gw_routes *rt, const char *name,
                         struct gw_health_registry *health, uint64_t now)
{
    const struct gw_pool *p = gw_routes_find_pool(rt, name, strlen(name));
    if (!p)
        return 0;
    for (size_t j = 0; j < p->ring.nreplicas; j++) {
        const struct gw_replica *r = &rt->replicas[p->replica_ids[j]];
        struct gw_metrics_replica *mr = replica_of(m, r->addr);
        struct gw_health *h = health ? gw_health_find(health, r->addr) : NULL;
        if (!r->drain && mr && atomic_load_explicit(&mr->reachable, memory_order_relaxed) &&
            (!h || gw_health_usable(h, now)))
            return 1;
    }
    return 0;
}

int gw_admin_ready(struct gw_metrics *const *ms, size_t n, struct gw_health_registry *health,
                   char *why, size_t whylen)
{
    uint64_t now = gw_now_ns();
    struct gw_routes **rts = gw_calloc(n ? n : 1, sizeof(*rts));
    if (!rts) {
        snprintf(why, whylen, "out of memory");
        return 0;
    }
    for (size_t w = 0; w < n; w++)
        rts[w] = gw_metrics_get_routes(ms[w]);
    int ready = 1;
    if (n == 0 || !rts[0]) {
        snprintf(why, whylen, "no routing snapshot loaded");
        ready = 0;
    } else if (rts[0]->npools == 0) {
        snprintf(why, whylen, "no pool configured");
        ready = 0;
    }
    for (size_t i = 0; ready && i < rts[0]->npools; i++) {
        const char *name = rts[0]->pools[i].name;
        int any = 0;
        for (size_t w = 0; w < n && !any; w++)
            any = rts[w] && pool_ready_on(ms[w], rts[w], name, health, now);
        if (!any) {
            snprintf(why, whylen,
                     "pool '%s' has no eligible replica (reachable, not draining, not ejected, "
                     "healthy or unchecked)",
                     name);
            ready = 0;
        }
    }
    for (size_t w = 0; w < n; w++)
        gw_routes_unref(rts[w]);
    gw_free(rts);
    return ready;
}

static char *render_metrics(struct gw_admin *a, size_t *len)
{
    struct gw_metrics_global g = {0};
    uint64_t now = gw_realtime_ms(), loaded = a->started_ms;
    if (a->ctl) {
        g.have_ctrl = 1;
        g.redis_up = atomic_load(&a->ctl->redis_up);
        g.config_version = atomic_load(&a->ctl->version);
        g.config_errors = atomic_load(&a->ctl->config_errors);
        uint64_t at = atomic_load(&a->ctl->loaded_at_ms);
        if (at)
            loaded = at;
    }
    g.config_age_seconds = now > loaded ? (double)(now - loaded) / 1000.0 : 0.0;
    char *buf = NULL;
    FILE *f = open_memstream(&buf, len);
    if (!f)
        return NULL;
    int rc = gw_metrics_render(a->ms, a->nworkers, &g, f);
    gw_kvview_render_metrics(gw_kvview_global(), f); /* the precise prefix view */
    if (a->health)
        gw_health_render_metrics(a->health, f);
    gw_pfx_render_metrics(f);
    if (fclose(f) != 0 || rc < 0) {
        free(buf);
        return NULL;
    }
    return buf;
}

/* The fields of replica health record <h>: "health" (unknown, healthy,
 * unhealthy, not_serving), "eligible" (not ejected, unhealthy,
 * NOT_SERVING or down), "ejected",
 * "ejected_until" (RFC 3339 UTC, or null), "ejected_for_ms", "times_ejected",
 * "consecutive_failures" (passive), "consecutive_check_failures", "down"
 * (connects or keepalives failing), "keepalive_timeouts". */
static json_t *health_json(struct gw_health *h)
{
    uint64_t now = gw_now_ns();
    uint64_t until = atomic_load_explicit(&h->ejected_until_ns, memory_order_relaxed);
    int ejected = gw_health_ejected(h, now);
    int down = atomic_load_explicit(&h->connect_failures, memory_order_relaxed) != 0;
    json_t *until_json = json_null();
    if (ejected) {
        uint64_t ms = gw_realtime_ms() + (until - now) / 1000000u;
        time_t secs = (time_t)(ms / 1000);
        struct tm tm;
        char buf[40];
        gmtime_r(&secs, &tm);
        size_t n = strftime(buf, sizeof(buf), "%Y-%m-%dT%H:%M:%S", &tm);
        snprintf(buf + n, sizeof(buf) - n, ".%03uZ", (unsigned)(ms % 1000));
        until_json = json_string(buf);
    }
    return json_pack(
        "{s:s, s:b, s:b, s:o, s:I, s:i, s:i, s:i, s:b, s:I}", "health",
        gw_health_state_name(atomic_load_explicit(&h->state, memory_order_relaxed)), "eligible",
        gw_health_usable(h, now) && !down, "ejected", ejected, "ejected_until", until_json,
        "ejected_for_ms", (json_int_t)(ejected ? (until - now) / 1000000u : 0), "times_ejected",
        (int)atomic_load_explicit(&h->times_ejected, memory_order_relaxed), "consecutive_failures",
        (int)atomic_load_explicit(&h->failures, memory_order_relaxed), "consecutive_check_failures",
        (int)atomic_load_explicit(&h->check_fail, memory_order_relaxed), "down", down,
        "keepalive_timeouts",
        (json_int_t)atomic_load_explicit(&h->keepalive_timeouts, memory_order_relaxed));
}

static char *render_replicas(struct gw_admin *a, size_t *len)
{
    struct gw_routes *rt = a->nworkers ? gw_metrics_get_routes(a->ms[0]) : NULL;
    json_t *root = json_object(), *arr = json_array();
    json_object_set_new(root, "version", json_integer(rt ? (json_int_t)rt->version : 0));
    json_object_set_new(root, "replicas", arr);
    for (size_t i = 0; rt && i < rt->nreplicas; i++) {
        const struct gw_replica *r = &rt->replicas[i];
        int reachable = 0;
        int64_t inflight = 0;
        for (size_t w = 0; w < a->nworkers; w++) {
            struct gw_metrics_replica *mr = replica_of(a->ms[w], r->addr);
            if (!mr)
                continue;
            reachable |= atomic_load_explicit(&mr->reachable, memory_order_relaxed) != 0;
            inflight += atomic_load_explicit(&mr->inflight, memory_order_relaxed);
        }
        json_t *pools = json_array();
        for (size_t p = 0; p < rt->npools; p++)
            for (size_t j = 0; j < rt->pools[p].ring.nreplicas; j++)
                if (rt->pools[p].replica_ids[j] == i)
                    json_array_append_new(pools, json_string(rt->pools[p].name));
        json_t *o =
            json_pack("{s:s, s:o, s:b, s:I, s:b}", "address", r->addr, "pools", pools, "reachable",
                      reachable, "inflight", (json_int_t)inflight, "drain", r->drain);
        struct gw_health *h = a->health ? gw_health_find(a->health, r->addr) : NULL;
        if (o && h)
            json_object_update_new(o, health_json(h));
        json_array_append_new(arr, o);
    }
    gw_routes_unref(rt);
    char *s = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (s)
        *len = strlen(s);
    return s;
}

/* /debug/ring?pool=P[&key=K]: pool P's ring as this gateway holds it — each
 * replica's weight, drain state and share of the key space, the effective
 * tunables, and for key K the ring's answer (first replica clockwise, and
 * the order a retry or hedge would walk). Returns NULL with *status 404 for
 * an unknown pool. */
static char *render_ring(struct gw_admin *a, const char *pool, const char *key, size_t *len,
                         unsigned *status)
{
    struct gw_routes *rt = a->nworkers ? gw_metrics_get_routes(a->ms[0]) : NULL;
    const struct gw_pool *p = rt && pool ? gw_routes_find_pool(rt, pool, strlen(pool)) : NULL;
    if (!p) {
        gw_routes_unref(rt);
        *status = MHD_HTTP_NOT_FOUND;
        return NULL;
    }
    json_t *root = json_pack("{s:s, s:I, s:I}", "pool", p->name, "version", (json_int_t)rt->version,
                             "points", (json_int_t)p->ring.npoints);
    json_t *reps = json_array(), *tun = json_object();
    for (size_t j = 0; j < p->ring.nreplicas; j++) {
        const struct gw_replica *r = &rt->replicas[p->replica_ids[j]];
        json_array_append_new(reps, json_pack("{s:s, s:I, s:b, s:f}", "address", r->addr, "weight",
                                              (json_int_t)p->ring.weights[j], "drain", r->drain,
                                              "share", gw_ring_share(&p->ring, (uint32_t)j)));
    }
    json_object_set_new(root, "replicas", reps);
    for (int f = 0; f < GW_TUN_COUNT; f++) {
        char v[600];
        gw_tunables_format(&p->tun, (enum gw_tunable_field)f, v, sizeof(v));
        json_object_set_new(tun, gw_tunable_names[f], json_string(v));
    }
    json_object_set_new(root, "tunables", tun);
    if (key) {
        /* The walk a call with this key makes when every replica is
         * eligible: first choice, then each retry or hedge in turn. */
        uint32_t point = gw_key_hash32(key, strlen(key)), order[16];
        size_t n = 0, cap = sizeof(order) / sizeof(order[0]);
        json_t *walk = json_array();
        while (n < cap && n < p->ring.nreplicas) {
            int idx = gw_ring_pick(&p->ring, point, NULL, NULL, order, n);
            if (idx < 0)
                break;
            order[n++] = (uint32_t)idx;
            json_array_append_new(walk, json_string(p->ring.replicas[idx]));
        }
        json_object_set_new(
            root, "key",
            json_pack("{s:s, s:I, s:o}", "key", key, "hash", (json_int_t)point, "walk", walk));
    }
    gw_routes_unref(rt);
    char *s = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (s)
        *len = strlen(s);
    *status = MHD_HTTP_OK;
    return s;
}

/* The load inputs of pool <p>'s decisions, per ring replica: address,
 * calls in flight (every worker's, the count bounded loads, the prefix
 * decision and least_loaded compare) and the reported load (null when
 * none is fresh). */
static json_t *decision_inputs(struct gw_admin *a, const struct gw_routes *rt,
                               const struct gw_pool *p)
{
    uint64_t now = gw_now_ns();
    json_t *arr = json_array();
    for (size_t j = 0; arr && j < p->ring.nreplicas; j++) {
        const char *addr = rt->replicas[p->replica_ids[j]].addr;
        struct gw_health *h = a->health ? gw_health_find(a->health, addr) : NULL;
        double load = h ? gw_health_load(h, now) : -1;
        json_array_append_new(arr, json_pack("{s:s, s:I, s:o}", "address", addr, "inflight",
                                             (json_int_t)(h ? gw_health_inflight(h) : 0), "load",
                                             load >= 0 ? json_real(load) : json_null()));
    }
    return arr;
}

/* /debug/prefix?pool=P: pool P's prefix routing — route_by, prefix_mode,
 * whether the precise view is usable now, the shared estimation index (all
 * pools: entries, bytes, capacity, lookups, hits), the pool's decision
 * counters and each replica's load inputs (decision_inputs). NULL with
 * *status 404 for an unknown pool. */
static char *render_prefix(struct gw_admin *a, const char *pool, size_t *len, unsigned *status)
{
    struct gw_routes *rt = a->nworkers ? gw_metrics_get_routes(a->ms[0]) : NULL;
    const struct gw_pool *p = rt && pool ? gw_routes_find_pool(rt, pool, strlen(pool)) : NULL;
    if (!p) {
        gw_routes_unref(rt);
        *status = MHD_HTTP_NOT_FOUND;
        return NULL;
    }
    static const char *const by[] = {"ring", "least_loaded", "prefix"};
    /* The precise view of the pool: followed, stream up, usable, events by
     * result, memory, and each ring replica's freshness. Its "usable" (the
     * stream read and every ring replica fresh, as infergw_kv_view_usable)
     * is also the top-level precise_view_usable: what a call routed now
     * would find. */
    json_t *precise = json_object();
    if (precise && gw_kvview_describe(gw_kvview_global(), p->name, precise) < 0) {
        json_decref(precise);
        precise = NULL;
    }
    int usable = precise && json_is_true(json_object_get(precise, "usable"));
    json_t *root = json_pack("{s:s, s:s, s:s, s:b}", "pool", p->name, "route_by",
                             p->tun.route_by < 3 ? by[p->tun.route_by] : "?", "mode",
                             p->tun.prefix_mode == GW_PREFIX_MODE_PRECISE ? "precise" : "estimate",
                             "precise_view_usable", usable);
    if (precise)
        json_object_set_new(root, "precise", precise);
    struct gw_pidx *x = gw_pfx_index_peek();
    struct gw_pidx_stats st = {0};
    if (x)
        gw_pidx_stats(x, &st);
    json_object_set_new(root, "index",
                        json_pack("{s:b, s:I, s:I, s:I, s:I, s:I, s:I, s:I}", "created", x != NULL,
                                  "entries", (json_int_t)st.entries, "bytes", (json_int_t)st.bytes,
                                  "capacity", (json_int_t)st.capacity, "lookups",
                                  (json_int_t)st.lookups, "hits", (json_int_t)st.hits, "evicted",
                                  (json_int_t)st.evicted, "expired", (json_int_t)st.expired));
    struct gw_pfx_pool *pp = gw_pfx_pool_find(p->name, p->name_len);
    json_t *dec = json_object();
    for (int i = 0; i < GW_PFX_NDECISIONS; i++)
        json_object_set_new(dec, gw_pfx_decision_name((enum gw_pfx_decision)i),
                            json_integer(pp ? (json_int_t)atomic_load(&pp->decisions[i]) : 0));
    json_object_set_new(root, "decisions", dec);
    json_object_set_new(root, "replicas", decision_inputs(a, rt, p));
    json_object_set_new(root, "precise_decisions",
                        json_integer(pp ? (json_int_t)atomic_load(&pp->precise_used) : 0));
    json_object_set_new(root, "precise_unusable",
                        json_integer(pp ? (json_int_t)atomic_load(&pp->precise_unusable) : 0));
    gw_routes_unref(rt);
    char *s = json_dumps(root, JSON_INDENT(2));
    json_decref(root);
    if (s)
        *len = strlen(s);
    *status = MHD_HTTP_OK;
    return s;
}

static enum MHD_Result reply(struct MHD_Connection *conn, unsigned status, const char *type,
                             char *body, size_t len, enum MHD_ResponseMemoryMode mode)
{
    struct MHD_Response *resp = MHD_create_response_from_buffer(len, body, mode);
    if (!resp)
        return MHD_NO;
    MHD_add_response_header(resp, "Content-Type", type);
    enum MHD_Result rc = MHD_queue_response(conn, status, resp);
    MHD_destroy_response(resp);
    return rc;
}

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...) __attribute__((format(printf, 3, 4)));

static enum MHD_Result reply_text(struct MHD_Connection *conn, unsigned status, const char *fmt,
                                  ...)
{
    char *s = NULL;
    va_list ap;
    va_start(ap, fmt);
    int n = vasprintf(&s, fmt, ap);
    va_end(ap);
    if (n < 0)
        return MHD_NO;
    return reply(conn, status, "text/plain; charset=utf-8", s, (size_t)n, MHD_RESPMEM_MUST_FREE);
}

/* The answer of a per-pool JSON endpoint: <body> (<len> bytes, owned), or
 * 404 when <status> says the pool is not in the snapshot, or 500 without a
 * body. */
static enum MHD_Result reply_pool_json(struct MHD_Connection *conn, const char *pool, char *body,
                                       size_t len, unsigned status)
{
    if (status == MHD_HTTP_NOT_FOUND) {
        free(body);
        return reply_text(conn, status, "no pool '%s' in the routing snapshot (use ?pool=P)\n",
                          pool ? pool : "");
    }
    if (!body)
        return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
    return reply(conn, MHD_HTTP_OK, "application/json", body, len, MHD_RESPMEM_MUST_FREE);
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url,
                                  const char *method, const char *version, const char *upload_data,
                                  size_t *upload_data_size, void **con_cls)
{
    struct gw_admin *a = cls;
    if (strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0)
        return reply_text(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "only GET and HEAD\n");
    if (!strcmp(url, "/healthz"))
        return reply_text(conn, MHD_HTTP_OK, "ok\n");
    if (gw_status_owns(url))
        return gw_status_serve(a, atomic_load(&a->status), conn, url);
    if (!strcmp(url, "/readyz")) {
        char why[512];
        if (gw_admin_ready(a->ms, a->nworkers, a->health, why, sizeof(why)))
            return reply_text(conn, MHD_HTTP_OK, "ready\n");
        return reply_text(conn, MHD_HTTP_SERVICE_UNAVAILABLE, "not ready: %s\n", why);
    }
    size_t len = 0;
    if (!strcmp(url, "/metrics")) {
        char *body = render_metrics(a, &len);
        if (!body)
            return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return reply(conn, MHD_HTTP_OK, "text/plain; version=0.0.4; charset=utf-8", body, len,
                     MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/debug/replicas")) {
        char *body = render_replicas(a, &len);
        if (!body)
            return reply_text(conn, MHD_HTTP_INTERNAL_SERVER_ERROR, "out of memory\n");
        return reply(conn, MHD_HTTP_OK, "application/json", body, len, MHD_RESPMEM_MUST_FREE);
    }
    if (!strcmp(url, "/debug/ring")) {
        const char *pool = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "pool");
        const char *key = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "key");
        unsigned status = 0;
        char *body = render_ring(a, pool, key, &len, &status);
        return reply_pool_json(conn, pool, body, len, status);
    }
    if (!strcmp(url, "/debug/prefix")) {
        const char *pool = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "pool");
        unsigned status = 0;
        char *body = render_prefix(a, pool, &len, &status);
        return reply_pool_json(conn, pool, body, len, status);
    }
    return reply_text(conn, MHD_HTTP_NOT_FOUND,
                      "not found; try /, /status.json, /metrics, /healthz, /readyz, "
                      "/debug/replicas, /debug/ring?pool=P[&key=K], /debug/prefix?pool=P\n");
}

int gw_admin_start(struct gw_admin *a, const struct gw_config *cfg, struct gw_worker *workers,
                   size_t nworkers, struct gw_watcher *ctl, char *err, size_t errlen)
{
    memset(a, 0, sizeof(*a));
    if (!cfg->admin[0])
        return 0;
    a->ctl = ctl;
    a->started_ms = gw_realtime_ms();
    a->nworkers = nworkers;
    a->ms = gw_calloc(nworkers ? nworkers : 1, sizeof(*a->ms));
    if (!a->ms)
        return gw_errf(err, errlen, "out of memory");
    for (size_t i = 0; i < nworkers; i++)
        a->ms[i] = workers[i].metrics;
    a->health = nworkers ? workers[0].health : NULL;

    char host[128], port[8];
    uint16_t p = 0;
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM, .ai_flags = AI_NUMERICSERV}, *ai = NULL;
    const char *error = NULL;
    if (gw_hostport_split(cfg->admin, host, sizeof(host), &p) < 0)
        error = "not HOST:PORT";
    snprintf(port, sizeof(port), "%u", (unsigned)p);
    if (!error && getaddrinfo(host, port, &hints, &ai) != 0)
        error = "cannot resolve the host";
    if (!error) {
        /* epoll or poll, not select(): the listening socket may come after
         * FD_SETSIZE descriptors when a pool has many replicas. */
        unsigned flags = MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_AUTO;
        if (ai->ai_family == AF_INET6)
            flags |= MHD_USE_IPv6;
        a->daemon = MHD_start_daemon(flags, p, NULL, NULL, on_request, a, MHD_OPTION_SOCK_ADDR,
                                     ai->ai_addr, MHD_OPTION_CONNECTION_LIMIT, (unsigned)64,
                                     MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)10, MHD_OPTION_END);
        freeaddrinfo(ai);
        if (!a->daemon)
            error = "cannot listen there (address in use?)";
    }
    if (error) {
        gw_free(a->ms);
        a->ms = NULL;
        if (cfg->admin_explicit)
            return gw_errf(err, errlen, "%s", error);
        gw_log(GW_LOG_WARN, "admin_not_started", "{s:s, s:s}", "addr", cfg->admin, "error", error);
        return 0;
    }
    atomic_store(&a->status, gw_status_start(a)); /* NULL: the page shows no history */
    gw_log(GW_LOG_INFO, "admin_listening", "{s:s}", "addr", cfg->admin);
    return 0;
}

void gw_admin_stop(struct gw_admin *a)
{
    if (a->daemon)
        MHD_stop_daemon(a->daemon);
    a->daemon = NULL;
    gw_status_stop(atomic_exchange(&a->status, NULL));
    gw_free(a->ms);
    a->ms = NULL;
}
