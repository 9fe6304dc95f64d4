/* SPDX-License-Identifier: Apache-2.0 */
/* call_prefix — route_by = prefix and least_loaded in the call path
 * (docs/routing.md, "Prefix-cache routing"), and the replicas' load reports
 * read from attempt trailers.
 *
 * prefix: the primary attempt waits until the first request message is whole
 * in the request log (any number of DATA frames), at most
 * min(--retry-buffer-bytes, --stream-window-bytes) with its 5-byte prefix
 * (a bigger message, a log already cut, or the workers' replay budget
 * running out while it waits: not_replayable); the
 * message is copied into the worker's scratch buffer (grown to the largest
 * message seen, bounded by that limit) and hashed (route/prefix.h). A
 * compressed message, one without the pool's prefix_input or a malformed one
 * routes by the ring as before, counted by reason. Candidates are the pool's
 * eligible replicas; their depth comes from the precise view
 * (control/kvview.h) when prefix_mode = precise and the view is usable, else
 * from the shared estimation index (engine/prefixstate.h); route/
 * prefixscore decides. Ring fallback: the pool's ring at point
 * (uint32_t)(hashes[0] >> 32), the same on every gateway, bounded as every
 * ring pick is (floored cap: engine/poolload.h);
 * later attempts of the call walk the ring from that point too. The chosen
 * replica's chain is then recorded in the estimation index.
 * least_loaded: power of two choices (route/orca.h) among the eligible
 * replicas on the in-flight count (every worker's calls, from the health
 * record) and the reported load.
 * Loop thread only; the scratch belongs to the worker.
 */
#include "engine/call_int.h"

#include <inttypes.h>
#include <jansson.h>
#include <string.h>
#include <xxhash.h>

#include "base/log.h"
#include "base/mem.h"
#include "control/kvview.h"
#include "engine/prefixstate.h"
#include "health/health.h"
#include "route/orca.h"
#include "route/prefix.h"
#include "route/prefixidx.h"
#include "route/prefixscore.h"
#include "route/ring.h"
#include "route/route.h"

struct call_pfx_scratch {
    uint8_t *msg; /* the first message with its prefix */
    size_t msgcap;
    uint64_t hashes[GW_PREFIX_BLOCKS_MAX];
    size_t ccap; /* room in the arrays below */
    struct gw_pscore_cand *cands;
    uint32_t *cidx; /* candidate -> index in routes->replicas */
    uint64_t *keys;
    uint32_t *depth;
    double *cost;
};

void gw_call_prefix_scratch_free(struct gw_worker *w)
{
    struct call_pfx_scratch *s = w->pfx;
    if (!s)
        return;
    gw_free(s->msg);
    gw_free(s->cands);
    gw_free(s->cidx);
    gw_free(s->keys);
    gw_free(s->depth);
    gw_free(s->cost);
    gw_free(s);
    w->pfx = NULL;
}

static struct call_pfx_scratch *scratch(struct gw_worker *w)
{
    if (!w->pfx)
        w->pfx = gw_calloc(1, sizeof(*w->pfx));
    return w->pfx;
}

/* Room for <n> candidates. Returns 0 or -1 (out of memory). */
static int scratch_cands(struct call_pfx_scratch *s, size_t n)
{
    if (n <= s->ccap)
        return 0;
    gw_free(s->cands);
    gw_free(s->cidx);
    gw_free(s->keys);
    gw_free(s->depth);
    gw_free(s->cost);
    s->cands = gw_malloc(n * sizeof(*s->cands));
    s->cidx = gw_malloc(n * sizeof(*s->cidx));
    s->keys = gw_malloc(n * sizeof(*s->keys));
    s->depth = gw_malloc(n * sizeof(*s->depth));
    s->cost = gw_malloc(n * sizeof(*s->cost));
    s->ccap = s->cands && s->cidx && s->keys && s->depth && s->cost ? n : 0;
    return s->ccap ? 0 : -1;
}

static uint64_t up_key(struct gw_upstream *up)
{
    if (!up->pkey)
        up->pkey = gw_pidx_replica_key(up->addr, strlen(up->addr));
    return up->pkey;
}

static uint32_t pool_id(const struct gw_pool *pool)
{
    return (uint32_t)XXH3_64bits(pool->name, pool->name_len);
}

/* Counts a call that is not hashed; it routes by the ring. */
static int not_hashed(struct gw_call *c, const struct gw_pool *pool, enum gw_pfx_decision d)
{
    gw_pfx_count(gw_pfx_pool(pool->name, pool->name_len), d, -1);
    c->pfx_ready = 1;
    c->pfx_wait = 0;
    return 0;
}

/* The first message is not whole yet: wait for more, unless the call can
 * no longer keep its request (the workers' replay budget ran out). */
static int wait_more(struct gw_call *c, const struct gw_pool *pool)
{
    if (!c->replayable)
        return not_hashed(c, pool, GW_PFX_NOT_REPLAYABLE);
    c->pfx_wait = 1;
    return 1;
}

int call__prefix_prepare(struct gw_call *c, const struct gw_pool *pool)
{
    struct gw_worker *w = c->w;
    uint64_t limit = w->cfg->retry_buffer_bytes;
    if (limit > w->cfg->stream_window_bytes)
        limit = w->cfg->stream_window_bytes;
    if (c->req_base != 0)
        return not_hashed(c, pool, GW_PFX_NOT_REPLAYABLE);
    uint8_t hdr[5];
    if (gw_bufq_peek(&c->reqlog, 0, hdr, 5) < 5) {
        if (c->req_eos)
            return not_hashed(c, pool, GW_PFX_MALFORMED);
        return wait_more(c, pool);
    }
    if (hdr[0] == 1) /* known at once: no need to wait for the message */
        return not_hashed(c, pool, GW_PFX_COMPRESSED);
    if (hdr[0] > 1)
        return not_hashed(c, pool, GW_PFX_MALFORMED);
    uint64_t total = 5 + ((uint64_t)hdr[1] << 24 | (uint64_t)hdr[2] << 16 | (uint64_t)hdr[3] << 8 |
                          (uint64_t)hdr[4]);
    if (total > limit)
        return not_hashed(c, pool, GW_PFX_NOT_REPLAYABLE);
    if (c->reqlog.len < total) {
        if (c->req_eos)
            return not_hashed(c, pool, GW_PFX_MALFORMED);
        return wait_more(c, pool);
    }
    struct call_pfx_scratch *s = scratch(w);
    if (s && s->msgcap < total) {
        size_t cap = s->msgcap * 2 > total ? s->msgcap * 2 : (size_t)total;
        if (cap > limit)
            cap = (size_t)limit;
        uint8_t *m = gw_realloc(s->msg, cap);
        if (m) {
            s->msg = m;
            s->msgcap = cap;
        }
    }
    if (!s || s->msgcap < total) {
        gw_log(GW_LOG_WARN, "prefix_scratch_nomem", "{s:I, s:s}", "bytes", (json_int_t)total,
               "effect", "the call routes by the ring");
        return not_hashed(c, pool, GW_PFX_NOT_REPLAYABLE);
    }
    gw_bufq_peek(&c->reqlog, 0, s->msg, (size_t)total);
    struct gw_prefix_params pp = {pool->tun.prefix_input, pool->tun.prefix_block,
                                  pool->tun.prefix_max_blocks};
    size_t n = 0;
    const char *err = NULL;
    int rc = gw_prefix_hash_grpc(s->msg, (size_t)total, &pp, s->hashes, &n, &err);
    if (rc == GW_PREFIX_COMPRESSED)
        return not_hashed(c, pool, GW_PFX_COMPRESSED);
    if (rc == GW_PREFIX_NO_INPUT)
        return not_hashed(c, pool, GW_PFX_NO_INPUT);
    if (rc < 0)
        return not_hashed(c, pool, GW_PFX_MALFORMED);
    c->pfx_ready = 1;
    c->pfx_wait = 0;
    c->pfx_hashed = 1;
    c->pfx_n = (uint16_t)n;
    if (n > 0) {
        c->pfx_point = (uint32_t)(s->hashes[0] >> 32);
        c->pfx_has_point = 1;
    }
    return 0;
}

/* Fills the scratch with the pool's eligible replicas. Returns their
 * number (0 on memory shortage); *total = their in-flight sum. */
static size_t eligible_cands(struct gw_call *c, const struct gw_pool *pool,
                             struct call_pfx_scratch *s, uint64_t *total)
{
    struct gw_worker *w = c->w;
    size_t nr = pool->ring.nreplicas, k = 0;
    if (scratch_cands(s, nr) < 0)
        return 0;
    uint64_t now = w->loop.now_ns;
    *total = 0;
    for (size_t i = 0; i < nr; i++) {
        uint32_t ridx = pool->replica_ids[i];
        if (!call__eligible(ridx, c))
            continue;
        struct gw_upstream *up = w->upmap[ridx];
        s->cidx[k] = ridx;
        s->keys[k] = up_key(up);
        s->cands[k].key = s->keys[k];
        s->cands[k].inflight = gw_health_inflight(up->health);
        s->cands[k].matched = 0;
        s->cands[k].load = gw_health_load(up->health, now);
        *total += s->cands[k].inflight;
        k++;
    }
    return k;
}

/* Depths from the precise view when the pool wants it and it is usable,
 * else from the estimation index. Returns 0 or -1 (no index). */
static int depths(struct gw_call *c, const struct gw_pool *pool, struct call_pfx_scratch *s,
                  size_t k, struct gw_pfx_pool *st)
{
    size_t n = c->pfx_n;
    if (pool->tun.prefix_mode == GW_PREFIX_MODE_PRECISE) {
        int r = gw_kvview_match(gw_kvview_global(), pool->name, pool->name_len, s->hashes, n,
                                s->keys, k, s->depth);
        if (r >= 0) {
            if (st)
                atomic_fetch_add_explicit(&st->precise_used, 1, memory_order_relaxed);
            return 0;
        }
        if (st)
            atomic_fetch_add_explicit(&st->precise_unusable, 1, memory_order_relaxed);
    }
    struct gw_pidx *x = gw_pfx_index(c->w->cfg->prefix_index_bytes);
    if (!x)
        return -1;
    gw_pidx_longest_match(x, pool_id(pool), s->hashes, n, c->w->loop.now_ns / MS,
                          pool->tun.prefix_ttl_ms, s->keys, k, s->depth);
    return 0;
}

int call__prefix_pick(struct gw_call *c, const struct gw_pool *pool)
{
    struct call_pfx_scratch *s = c->w->pfx;
    struct gw_pfx_pool *st = gw_pfx_pool(pool->name, pool->name_len);
    uint64_t total = 0;
    size_t k = s ? eligible_cands(c, pool, s, &total) : 0;
    if (c->pfx_n == 0 || k == 0 || depths(c, pool, s, k, st) < 0) {
        gw_pfx_count(st, GW_PFX_RING_FALLBACK, 0);
        return -1;
    }
    for (size_t j = 0; j < k; j++)
        s->cands[j].matched = s->depth[j];
    struct gw_pscore_params p = {
        .nblocks = c->pfx_n,
        .cap = pool->tun.balance_factor > 0
                   ? gw_ring_load_cap_floor(total, k, pool->tun.balance_factor)
                   : UINT64_MAX,
        .load_weight = pool->tun.prefix_load_weight,
        .imbalance = pool->tun.prefix_imbalance,
    };
    struct gw_pscore_result r;
    int i = gw_pscore_pick(s->cands, k, &p, &r);
    enum gw_pfx_decision d = r.kind == GW_PSCORE_PREFIX          ? GW_PFX_PREFIX
                             : r.kind == GW_PSCORE_LOAD_OVERRIDE ? GW_PFX_LOAD_OVERRIDE
                                                                 : GW_PFX_RING_FALLBACK;
    gw_pfx_count(st, d, i >= 0 ? (int)r.matched : 0);
    return i >= 0 ? (int)s->cidx[i] : -1;
}

void call__prefix_record(struct gw_call *c, const struct gw_pool *pool, struct gw_upstream *up)
{
    struct call_pfx_scratch *s = c->w->pfx;
    struct gw_pidx *x = gw_pfx_index(c->w->cfg->prefix_index_bytes);
    if (s && x && c->pfx_n > 0)
        gw_pidx_record(x, pool_id(pool), s->hashes, c->pfx_n, up_key(up), c->w->loop.now_ns / MS);
    c->pfx_hashed = 0; /* the hashes were the worker's scratch: used once */
}

int call__least_loaded_pick(struct gw_call *c, const struct gw_pool *pool)
{
    struct call_pfx_scratch *s = scratch(c->w);
    uint64_t total = 0;
    size_t k = s ? eligible_cands(c, pool, s, &total) : 0;
    if (k == 0)
        return -1;
    for (size_t j = 0; j < k; j++)
        s->cost[j] = gw_p2c_cost(s->cands[j].inflight, s->cands[j].load);
    int i = gw_p2c_pick(s->cost, k, gw_loop_rand(&c->w->loop));
    return i >= 0 ? (int)s->cidx[i] : -1;
}

void call__load_report(struct gw_attempt *a, const uint8_t *name, size_t namelen,
                       const uint8_t *value, size_t valuelen)
{
    struct gw_orca o;
    int rc, text = call__name_is(name, namelen, "endpoint-load-metrics");
    if (!text && !call__name_is(name, namelen, "endpoint-load-metrics-bin"))
        return;
    if (a->load_seen)
        return; /* the text and -bin forms of one report: one sample */
    rc = text ? gw_orca_parse_text((const char *)value, valuelen, &o)
              : gw_orca_parse_bin((const char *)value, valuelen, &o);
    if (rc < 0) {
        gw_pfx_load_bad();
        return;
    }
    double load = gw_orca_load(&o);
    a->load_seen = 1;
    if (load >= 0 && a->up && a->up->health)
        gw_health_load_report(a->up->health, load, a->call->w->loop.now_ns);
}
