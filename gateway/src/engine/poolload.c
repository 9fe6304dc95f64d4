/* SPDX-License-Identifier: Apache-2.0 */
/* poolload — a worker's per-pool load view; see poolload.h. */
#include "engine/poolload.h"

#include <errno.h>
#include <string.h>

#include "base/mem.h"

void gw_poolload_free(struct gw_poolload *pl)
{
    if (pl->pools)
        for (size_t p = 0; p < pl->rt->npools; p++) {
            gw_free(pl->pools[p].inflight);
            gw_free(pl->pools[p].counted);
        }
    gw_free(pl->pools);
    gw_free(pl->first);
    gw_free(pl->members);
    memset(pl, 0, sizeof(*pl));
}

/* Lists every (pool, ring index) of each replica, by replica (counting
 * sort: first[] from the counts, then the members in place). */
static int build_members(struct gw_poolload *pl, const struct gw_routes *rt)
{
    size_t total = 0;
    pl->first = gw_calloc(rt->nreplicas + 1, sizeof(*pl->first));
    if (!pl->first)
        return -ENOMEM;
    for (size_t p = 0; p < rt->npools; p++)
        for (size_t j = 0; j < rt->pools[p].ring.nreplicas; j++) {
            pl->first[rt->pools[p].replica_ids[j] + 1]++;
            total++;
        }
    for (size_t i = 0; i < rt->nreplicas; i++)
        pl->first[i + 1] += pl->first[i];
    pl->members = gw_calloc(total ? total : 1, sizeof(*pl->members));
    uint32_t *next = gw_calloc(rt->nreplicas ? rt->nreplicas : 1, sizeof(*next));
    if (!pl->members || !next) {
        gw_free(next);
        return -ENOMEM;
    }
    memcpy(next, pl->first, rt->nreplicas * sizeof(*next));
    for (size_t p = 0; p < rt->npools; p++)
        for (size_t j = 0; j < rt->pools[p].ring.nreplicas; j++) {
            uint32_t id = rt->pools[p].replica_ids[j];
            pl->members[next[id]++] = (struct gw_poolload_member){(uint32_t)p, (uint32_t)j};
        }
    gw_free(next);
    return 0;
}

int gw_poolload_build(struct gw_poolload *out, const struct gw_routes *rt)
{
    memset(out, 0, sizeof(*out));
    out->rt = rt;
    out->pools = gw_calloc(rt->npools ? rt->npools : 1, sizeof(*out->pools));
    if (!out->pools) {
        memset(out, 0, sizeof(*out));
        return -ENOMEM;
    }
    for (size_t p = 0; p < rt->npools; p++) {
        size_t n = rt->pools[p].ring.nreplicas ? rt->pools[p].ring.nreplicas : 1;
        out->pools[p].inflight = gw_calloc(n, sizeof(uint32_t));
        out->pools[p].counted = gw_calloc(n, 1);
        if (!out->pools[p].inflight || !out->pools[p].counted) {
            gw_poolload_free(out);
            return -ENOMEM;
        }
    }
    if (build_members(out, rt) < 0) {
        gw_poolload_free(out);
        return -ENOMEM;
    }
    return 0;
}

void gw_poolload_fill(struct gw_poolload *pl, gw_poolload_inflight_fn inflight, void *ctx)
{
    if (!pl->rt)
        return;
    for (size_t p = 0; p < pl->rt->npools; p++) {
        const struct gw_pool *pool = &pl->rt->pools[p];
        struct gw_poolload_pool *v = &pl->pools[p];
        for (size_t j = 0; j < pool->ring.nreplicas; j++)
            v->inflight[j] = inflight(pool->replica_ids[j], ctx);
        memset(v->counted, 0, pool->ring.nreplicas);
        v->tally = (struct gw_ring_tally){0, 0};
        v->census_valid = 0;
    }
}

void gw_poolload_add(struct gw_poolload *pl, uint32_t idx, int32_t delta)
{
    if (!pl->rt || idx >= pl->rt->nreplicas)
        return;
    for (uint32_t m = pl->first[idx]; m < pl->first[idx + 1]; m++) {
        struct gw_poolload_pool *v = &pl->pools[pl->members[m].pool];
        uint32_t j = pl->members[m].ring_idx;
        int64_t d = delta;
        if (d < 0 && (uint64_t)-d > v->inflight[j])
            d = -(int64_t)v->inflight[j]; /* never below 0 */
        v->inflight[j] = (uint32_t)((int64_t)v->inflight[j] + d);
        if (v->counted[j])
            gw_ring_tally_add(&v->tally, d);
    }
}

struct census_ctx {
    const struct gw_pool *pool;
    struct gw_poolload_pool *v;
    gw_poolload_eligible_fn eligible;
    void *ctx;
};

/* gw_ring_tally_census asks this once per replica on a point: the answer
 * is also what marks the replica counted. */
static int census_eligible(uint32_t ring_idx, void *arg)
{
    struct census_ctx *cc = arg;
    int ok = cc->eligible(cc->pool->replica_ids[ring_idx], cc->ctx) != 0;
    cc->v->counted[ring_idx] = (uint8_t)ok;
    return ok;
}

const uint32_t *gw_poolload_view(struct gw_poolload *pl, const struct gw_pool *pool,
                                 uint64_t now_ns, gw_poolload_eligible_fn eligible,
                                 gw_poolload_inflight_fn inflight, void *ctx, uint64_t *cap)
{
    *cap = UINT64_MAX;
    if (!(pool->tun.balance_factor > 0) || !pl->rt || pool < pl->rt->pools ||
        pool >= pl->rt->pools + pl->rt->npools)
        return NULL;
    struct gw_poolload_pool *v = &pl->pools[pool - pl->rt->pools];
    if (!v->census_valid || now_ns - v->census_ns >= GW_POOLLOAD_CENSUS_NS) {
        struct census_ctx cc = {pool, v, eligible, ctx};
        for (size_t j = 0; inflight && j < pool->ring.nreplicas; j++)
            v->inflight[j] = inflight(pool->replica_ids[j], ctx);
        memset(v->counted, 0, pool->ring.nreplicas);
        gw_ring_tally_census(&v->tally, &pool->ring, census_eligible, &cc, v->inflight);
        v->census_ns = now_ns;
        v->census_valid = 1;
    }
    *cap = gw_ring_load_cap_floor(v->tally.inflight, v->tally.n_eligible, pool->tun.balance_factor);
    return v->inflight;
}
