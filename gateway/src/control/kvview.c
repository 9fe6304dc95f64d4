/* SPDX-License-Identifier: Apache-2.0 */
/* kvview — the precise view; see kvview.h.
 *
 * Two tables: <want> (the precise pools of the snapshot in force, written
 * by the watcher under want_mu, with a generation number) and <pools> (the
 * followed pools with their indexes, changed only by the reader thread in
 * gw_kvview_sync, under the write side of <mu>; readers take the read side).
 * A followed pool's ring addresses and keys are copied at sync, so usability
 * and describe need no snapshot.
 */
#include "control/kvview.h"

#include <inttypes.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "obs/metrics.h"
#include "route/prefixidx.h"
#include "route/route.h"
#include "route/tunables.h"

struct kv_ring {
    char name[256];
    char **addrs; /* owned */
    uint64_t *keys;
    size_t n;
};

struct kv_pool {
    struct kv_ring ring;
    struct gw_kvidx *idx;
    char last_id[GW_KVVIEW_ID_LEN]; /* reader thread only */
    uint64_t key_recheck_ms;        /* reader thread only: see gw_kvview_key_bad */
    atomic_ullong events[GW_KVV_RESULTS];
};

struct gw_kvview {
    struct gw_kv_budget budget;
    pthread_rwlock_t mu; /* pools[] and npools */
    struct kv_pool *pools[GW_KVVIEW_POOLS];
    size_t npools;
    atomic_int up;
    pthread_mutex_t want_mu;
    struct kv_ring want[GW_KVVIEW_POOLS];
    size_t nwant;
    uint64_t want_gen, synced_gen; /* synced_gen: reader thread only */
};

static struct gw_kvview *view;

static const char *const result_names[GW_KVV_RESULTS] = {"applied", "ignored", "rejected", "lost",
                                                         "full"};

const char *gw_kvview_result_name(enum gw_kvview_result r)
{
    return (unsigned)r < GW_KVV_RESULTS ? result_names[r] : "unknown";
}

struct gw_kvview *gw_kvview_global(void)
{
    return view;
}

static void ring_clear(struct kv_ring *r)
{
    for (size_t i = 0; i < r->n; i++)
        gw_free(r->addrs[i]);
    gw_free(r->addrs);
    gw_free(r->keys);
    memset(r, 0, sizeof(*r));
}

/* Copies <src> into <dst> (emptied first). Returns 0, or -1 when out of
 * memory (dst then empty). */
static int ring_copy(struct kv_ring *dst, const char *name, char *const *addrs, size_t n)
{
    ring_clear(dst);
    snprintf(dst->name, sizeof(dst->name), "%s", name);
    dst->addrs = gw_calloc(n + 1, sizeof(*dst->addrs));
    dst->keys = gw_calloc(n + 1, sizeof(*dst->keys));
    if (!dst->addrs || !dst->keys) {
        ring_clear(dst);
        return -1;
    }
    for (size_t i = 0; i < n; i++) {
        dst->addrs[i] = gw_strdup(addrs[i]);
        if (!dst->addrs[i]) {
            dst->n = i;
            ring_clear(dst);
            return -1;
        }
        dst->keys[i] = gw_pidx_replica_key(addrs[i], strlen(addrs[i]));
    }
    dst->n = n;
    return 0;
}

int gw_kvview_init(size_t max_bytes)
{
    if (view)
        return 0;
    struct gw_kvview *v = gw_calloc(1, sizeof(*v));
    if (!v)
        return -1;
    v->budget.max = max_bytes;
    pthread_rwlock_init(&v->mu, NULL);
    pthread_mutex_init(&v->want_mu, NULL);
    view = v;
    return 0;
}

static void pool_free(struct kv_pool *p)
{
    if (!p)
        return;
    gw_kvidx_free(p->idx);
    ring_clear(&p->ring);
    gw_free(p);
}

void gw_kvview_shutdown(void)
{
    struct gw_kvview *v = view;
    if (!v)
        return;
    view = NULL;
    for (size_t i = 0; i < v->npools; i++)
        pool_free(v->pools[i]);
    for (size_t i = 0; i < v->nwant; i++)
        ring_clear(&v->want[i]);
    pthread_rwlock_destroy(&v->mu);
    pthread_mutex_destroy(&v->want_mu);
    gw_free(v);
}

/* Under mu (either side). */
static struct kv_pool *find_pool(struct gw_kvview *v, const char *name, size_t len)
{
    for (size_t i = 0; i < v->npools; i++)
        if (strlen(v->pools[i]->ring.name) == len && !memcmp(v->pools[i]->ring.name, name, len))
            return v->pools[i];
    return NULL;
}

int gw_kvview_match(struct gw_kvview *v, const char *pool, size_t pool_len, const uint64_t *hashes,
                    size_t n, const uint64_t *cands, size_t ncand, uint32_t *depth)
{
    if (!v || !atomic_load_explicit(&v->up, memory_order_acquire))
        return -1;
    int r = -1;
    pthread_rwlock_rdlock(&v->mu);
    struct kv_pool *p = find_pool(v, pool, pool_len);
    if (p && gw_kvidx_usable(p->idx, cands, ncand))
        r = (int)gw_kvidx_longest_match(p->idx, hashes, n, cands, ncand, depth);
    pthread_rwlock_unlock(&v->mu);
    return r;
}

void gw_kvview_want(struct gw_kvview *v, const struct gw_routes *rt)
{
    if (!v || !rt)
        return;
    pthread_mutex_lock(&v->want_mu);
    for (size_t i = 0; i < v->nwant; i++)
        ring_clear(&v->want[i]);
    v->nwant = 0;
    for (size_t i = 0; i < rt->npools; i++) {
        const struct gw_pool *p = &rt->pools[i];
        if (p->tun.route_by != GW_ROUTE_BY_PREFIX || p->tun.prefix_mode != GW_PREFIX_MODE_PRECISE)
            continue;
        if (v->nwant == GW_KVVIEW_POOLS) {
            gw_log(GW_LOG_WARN, "kv_pool_not_followed", "{s:s, s:i}", "pool", p->name, "limit",
                   GW_KVVIEW_POOLS);
            continue;
        }
        if (ring_copy(&v->want[v->nwant], p->name, p->ring.replicas, p->ring.nreplicas) == 0)
            v->nwant++;
        else
            gw_log(GW_LOG_ERROR, "kv_pool_not_followed", "{s:s, s:s}", "pool", p->name, "error",
                   "out of memory");
    }
    v->want_gen++;
    pthread_mutex_unlock(&v->want_mu);
}

/* Reader thread: a new followed pool for <w> (whose ring it takes). */
static struct kv_pool *pool_new(struct gw_kvview *v, struct kv_ring *w)
{
    struct kv_pool *p = gw_calloc(1, sizeof(*p));
    if (!p)
        return NULL;
    p->idx = gw_kvidx_create_in(&v->budget, GW_KVVIEW_REPLICAS);
    if (!p->idx) {
        gw_free(p);
        return NULL;
    }
    p->ring = *w;
    memset(w, 0, sizeof(*w));
    snprintf(p->last_id, sizeof(p->last_id), "0-0");
    for (int r = 0; r < GW_KVV_RESULTS; r++)
        atomic_init(&p->events[r], 0);
    /* A pool followed while the stream is lost starts stale like the rest. */
    if (!atomic_load(&v->up))
        gw_kvidx_mark_stale(p->idx, "stream not read yet");
    return p;
}

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

/* Reader thread: the replicas of <prev> that are not on pool <p>'s ring
 * now leave its index (their memory is freed). Out of memory: they stay
 * (bounded by the replica limit) until the pool is dropped. */
static void forget_departed(struct kv_pool *p, const struct kv_ring *prev)
{
    uint64_t *now = gw_calloc(p->ring.n + 1, sizeof(*now));
    if (!now)
        return;
    memcpy(now, p->ring.keys, p->ring.n * sizeof(*now));
    qsort(now, p->ring.n, sizeof(*now), cmp_u64);
    for (size_t i = 0; i < prev->n; i++)
        if (!bsearch(&prev->keys[i], now, p->ring.n, sizeof(*now), cmp_u64))
            gw_kvidx_forget(p->idx, prev->keys[i]);
    gw_free(now);
}

size_t gw_kvview_sync(struct gw_kvview *v)
{
    pthread_mutex_lock(&v->want_mu);
    if (v->want_gen == v->synced_gen) {
        pthread_mutex_unlock(&v->want_mu);
        return v->npools;
    }
    v->synced_gen = v->want_gen;
    struct kv_pool *next[GW_KVVIEW_POOLS] = {0}, *old[GW_KVVIEW_POOLS] = {0};
    size_t nnext = 0;
    memcpy(old, v->pools, v->npools * sizeof(old[0]));
    for (size_t i = 0; i < v->nwant; i++) {
        struct kv_ring *w = &v->want[i];
        struct kv_pool *p = NULL;
        for (size_t j = 0; j < v->npools && !p; j++)
            if (old[j] && !strcmp(old[j]->ring.name, w->name)) {
                p = old[j];
                old[j] = NULL;
            }
        if (p) {
            /* Same pool: its ring may have changed. */
            struct kv_ring tmp = *w;
            memset(w, 0, sizeof(*w));
            next[nnext] = p;
            struct kv_ring prev = p->ring;
            pthread_rwlock_wrlock(&v->mu);
            p->ring = tmp;
            pthread_rwlock_unlock(&v->mu);
            forget_departed(p, &prev);
            ring_clear(&prev);
            nnext++;
        } else if ((p = pool_new(v, w)) != NULL) {
            gw_log(GW_LOG_INFO, "kv_pool_followed", "{s:s}", "pool", p->ring.name);
            next[nnext++] = p;
        } else {
            gw_log(GW_LOG_ERROR, "kv_pool_not_followed", "{s:s, s:s}", "pool", w->name, "error",
                   "out of memory");
        }
    }
    for (size_t i = 0; i < v->nwant; i++)
        ring_clear(&v->want[i]); /* moved into next[] (empty now) or not followed */
    v->nwant = 0;
    pthread_mutex_unlock(&v->want_mu);
    pthread_rwlock_wrlock(&v->mu);
    memcpy(v->pools, next, nnext * sizeof(next[0]));
    size_t had = v->npools;
    v->npools = nnext;
    pthread_rwlock_unlock(&v->mu);
    for (size_t j = 0; j < had; j++)
        if (old[j]) {
            gw_log(GW_LOG_INFO, "kv_pool_unfollowed", "{s:s}", "pool", old[j]->ring.name);
            pool_free(old[j]);
        }
    return nnext;
}

const char *gw_kvview_pool_name(struct gw_kvview *v, size_t i)
{
    return v->pools[i]->ring.name;
}

const char *gw_kvview_last_id(struct gw_kvview *v, size_t i)
{
    return v->pools[i]->last_id;
}

/* Entries refused one after another (a replica writing garbage, a full
 * budget) are logged at the 1st, 2nd, 4th, 8th ... occurrence, not each. */
static int worth_logging(struct kv_pool *p, enum gw_kvview_result r)
{
    uint64_t n = atomic_load_explicit(&p->events[r], memory_order_relaxed) + 1;
    return (n & (n - 1)) == 0;
}

enum gw_kvview_result gw_kvview_apply(struct gw_kvview *v, size_t i, const char *id,
                                      const struct gw_kv_field *fields, size_t nfields)
{
    struct kv_pool *p = v->pools[i];
    snprintf(p->last_id, sizeof(p->last_id), "%s", id);
    struct gw_kv_event ev;
    char why[256] = "";
    enum gw_kvview_result res;
    if (gw_kv_event_parse(fields, nfields, &ev, why, sizeof(why)) < 0) {
        res = GW_KVV_REJECTED;
        if (worth_logging(p, res))
            gw_log(GW_LOG_WARN, "kv_event_rejected", "{s:s, s:s, s:s, s:I}", "pool", p->ring.name,
                   "id", id, "error", why, "rejected_so_far",
                   (json_int_t)atomic_load(&p->events[res]) + 1);
    } else {
        switch (gw_kvidx_apply(p->idx, &ev, why, sizeof(why))) {
        case GW_KV_OLD:
            res = GW_KVV_IGNORED;
            break;
        case GW_KV_LOST:
            res = GW_KVV_LOST;
            gw_log(GW_LOG_WARN, "kv_replica_stale", "{s:s, s:s, s:s}", "pool", p->ring.name,
                   "replica", ev.replica, "why", why);
            break;
        case GW_KV_FULL:
            res = GW_KVV_FULL;
            if (worth_logging(p, res))
                gw_log(GW_LOG_WARN, "kv_index_full", "{s:s, s:s, s:s, s:I}", "pool", p->ring.name,
                       "replica", ev.replica, "why", why, "refused_so_far",
                       (json_int_t)atomic_load(&p->events[res]) + 1);
            break;
        case GW_KV_REFRESHED:
            gw_log(GW_LOG_INFO, "kv_replica_fresh", "{s:s, s:s, s:s}", "pool", p->ring.name,
                   "replica", ev.replica, "why", why);
            res = GW_KVV_APPLIED;
            break;
        default:
            res = GW_KVV_APPLIED;
            break;
        }
    }
    atomic_fetch_add_explicit(&p->events[res], 1, memory_order_relaxed);
    return res;
}

uint64_t gw_kvview_key_bad(struct gw_kvview *v, size_t i)
{
    return v->pools[i]->key_recheck_ms;
}

void gw_kvview_set_key_bad(struct gw_kvview *v, size_t i, const char *why, uint64_t recheck_ms)
{
    struct kv_pool *p = v->pools[i];
    if (why)
        gw_kvidx_mark_stale(p->idx, why);
    p->key_recheck_ms = why ? recheck_ms : 0;
}

void gw_kvview_set_up(struct gw_kvview *v, int up, const char *why)
{
    if (!up)
        for (size_t i = 0; i < v->npools; i++)
            gw_kvidx_mark_stale(v->pools[i]->idx, why);
    atomic_store_explicit(&v->up, up ? 1 : 0, memory_order_release);
}

/* Under mu (read side). */
static int pool_usable(struct gw_kvview *v, struct kv_pool *p)
{
    return atomic_load(&v->up) && gw_kvidx_usable(p->idx, p->ring.keys, p->ring.n);
}

void gw_kvview_render_metrics(struct gw_kvview *v, FILE *out)
{
    if (!v)
        return;
    pthread_rwlock_rdlock(&v->mu);
    fputs("# HELP infergw_kv_events_total KV-cache events read from the pools' streams (precise "
          "prefix mode), by result.\n# TYPE infergw_kv_events_total counter\n",
          out);
    for (size_t i = 0; i < v->npools; i++)
        for (int r = 0; r < GW_KVV_RESULTS; r++) {
            fputs("infergw_kv_events_total{pool=\"", out);
            gw_metrics_write_label(out, v->pools[i]->ring.name);
            fprintf(out, "\",result=\"%s\"} %llu\n", result_names[r],
                    (unsigned long long)atomic_load_explicit(&v->pools[i]->events[r],
                                                             memory_order_relaxed));
        }
    fputs("# HELP infergw_kv_view_usable 1 while the pool's precise view is usable (stream read, "
          "every ring replica fresh); 0 while the pool routes by estimation.\n"
          "# TYPE infergw_kv_view_usable gauge\n",
          out);
    size_t bytes = 0;
    for (size_t i = 0; i < v->npools; i++) {
        fputs("infergw_kv_view_usable{pool=\"", out);
        gw_metrics_write_label(out, v->pools[i]->ring.name);
        fprintf(out, "\"} %d\n", pool_usable(v, v->pools[i]));
        struct gw_kv_stats st;
        gw_kvidx_stats(v->pools[i]->idx, &st);
        bytes += st.bytes;
    }
    pthread_rwlock_unlock(&v->mu);
    fprintf(out,
            "# HELP infergw_kv_index_bytes Bytes held by the precise view's indexes, all pools.\n"
            "# TYPE infergw_kv_index_bytes gauge\ninfergw_kv_index_bytes %zu\n",
            bytes);
}

static json_t *describe_replicas(struct kv_pool *p)
{
    json_t *arr = json_array();
    for (size_t i = 0; arr && i < p->ring.n; i++) {
        struct gw_kv_replica_info ri;
        gw_kvidx_replica(p->idx, p->ring.keys[i], &ri);
        json_array_append_new(
            arr, json_pack("{s:s, s:b, s:b, s:s, s:I, s:I, s:I}", "addr", p->ring.addrs[i], "known",
                           ri.known, "stale", !ri.known || ri.stale, "why",
                           ri.known ? ri.why : "never heard of", "epoch", (json_int_t)ri.epoch,
                           "seq", (json_int_t)ri.seq, "held", (json_int_t)ri.held));
    }
    return arr;
}

int gw_kvview_describe(struct gw_kvview *v, const char *pool, json_t *out)
{
    if (!v || !out)
        return -1;
    pthread_rwlock_rdlock(&v->mu);
    struct kv_pool *p = find_pool(v, pool, strlen(pool));
    int rc = 0;
    if (!p) {
        rc = json_object_set_new(out, "followed", json_false());
    } else {
        struct gw_kv_stats st;
        gw_kvidx_stats(p->idx, &st);
        json_t *ev = json_object();
        for (int r = 0; ev && r < GW_KVV_RESULTS; r++)
            json_object_set_new(ev, result_names[r],
                                json_integer((json_int_t)atomic_load(&p->events[r])));
        json_t *o = json_pack("{s:b, s:b, s:b, s:o*, s:I, s:I, s:I, s:I, s:I, s:o*}", "followed", 1,
                              "stream_up", atomic_load(&v->up), "usable", pool_usable(v, p),
                              "events", ev, "bytes", (json_int_t)st.bytes, "budget_used",
                              (json_int_t)st.budget_used, "budget_max", (json_int_t)st.max_bytes,
                              "snapshots", (json_int_t)st.snapshots, "snapshots_abandoned",
                              (json_int_t)st.snapshots_abandoned, "replicas", describe_replicas(p));
        rc = o ? json_object_update(out, o) : -1;
        json_decref(o);
    }
    pthread_rwlock_unlock(&v->mu);
    return rc < 0 ? -1 : 0;
}
