/* SPDX-License-Identifier: Apache-2.0 */
/* route — refcounted routing snapshots over rings; see route.h. */
#include "route/route.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/hostport.h"

static int resolve(struct gw_replica *r, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (gw_hostport_split(r->addr, host, sizeof(host), &port) < 0) {
        gw_errf(err, errlen, "replica '%s' is not HOST:PORT", r->addr);
        return -1;
    }
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || !res) {
        gw_errf(err, errlen, "replica '%s': cannot resolve host '%s': %s", r->addr, host,
                gai_strerror(rc));
        return -1;
    }
    memcpy(&r->sa, res->ai_addr, res->ai_addrlen);
    r->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

int gw_routes_find_replica(const struct gw_routes *rt, const char *addr)
{
    for (size_t i = 0; i < rt->nreplicas; i++)
        if (!strcmp(rt->replicas[i].addr, addr))
            return (int)i;
    return -1;
}

/* Returns the index of <addr>, adding it if new, or -1 (err set). */
static int replica_index(struct gw_routes *rt, const char *addr, char *err, size_t errlen)
{
    int i = gw_routes_find_replica(rt, addr);
    if (i >= 0)
        return i;
    struct gw_replica *nr = gw_realloc(rt->replicas, (rt->nreplicas + 1) * sizeof(*nr));
    if (!nr) {
        gw_errf(err, errlen, "out of memory");
        return -1;
    }
    rt->replicas = nr;
    struct gw_replica *r = &rt->replicas[rt->nreplicas];
    memset(r, 0, sizeof(*r));
    r->addr = gw_strdup(addr);
    if (!r->addr) {
        gw_errf(err, errlen, "out of memory");
        return -1;
    }
    rt->nreplicas++;
    if (resolve(r, err, errlen) < 0)
        return -1;
    return (int)rt->nreplicas - 1;
}

static void routes_free(struct gw_routes *rt)
{
    for (size_t i = 0; i < rt->npools; i++) {
        if (rt->pools[i].ring.points || rt->pools[i].ring.replicas)
            gw_ring_free(&rt->pools[i].ring);
        gw_free(rt->pools[i].replica_ids);
        gw_free(rt->pools[i].name);
    }
    gw_free(rt->pools);
    for (size_t i = 0; i < rt->nreplicas; i++)
        gw_free(rt->replicas[i].addr);
    gw_free(rt->replicas);
    gw_authdb_free(rt->authdb);
    gw_free(rt);
}

struct gw_routes *gw_routes_build(const struct gw_pool_spec *pools, size_t npools,
                                  const struct gw_tunables *global, const char *const *drained,
                                  size_t ndrained, uint64_t version, char *err, size_t errlen)
{
    struct gw_routes *rt = gw_calloc(1, sizeof(*rt));
    if (!rt) {
        gw_errf(err, errlen, "out of memory");
        return NULL;
    }
    atomic_init(&rt->refs, 1);
    rt->version = version;
    rt->global = *global;
    rt->pools = gw_calloc(npools ? npools : 1, sizeof(*rt->pools));
    if (!rt->pools) {
        gw_errf(err, errlen, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < npools; i++) {
        const struct gw_pool_spec *ps = &pools[i];
        struct gw_pool *p = &rt->pools[i];
        rt->npools++;
        p->name = gw_strdup(ps->name);
        p->replica_ids = gw_calloc(ps->n ? ps->n : 1, sizeof(uint32_t));
        if (!p->name || !p->replica_ids) {
            gw_errf(err, errlen, "out of memory");
            goto fail;
        }
        p->name_len = strlen(p->name);
        p->from_redis = ps->from_redis;
        p->tun = *global;
        if (ps->tun)
            gw_tunables_overlay(&p->tun, ps->tun);
        if (ps->n == 0)
            continue; /* a pool without replicas: every call gets UNAVAILABLE */
        int rc = gw_ring_build(&p->ring, ps->addrs, ps->weights, ps->n);
        if (rc < 0) {
            gw_errf(err, errlen, "pool %s: cannot build the ring (%s)", ps->name,
                    rc == -22 ? "invalid replica list" : "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < p->ring.nreplicas; j++) {
            int id = replica_index(rt, p->ring.replicas[j], err, errlen);
            if (id < 0)
                goto fail;
            p->replica_ids[j] = (uint32_t)id;
        }
    }
    for (size_t i = 0; i < ndrained; i++) {
        int id = gw_routes_find_replica(rt, drained[i]);
        if (id >= 0)
            rt->replicas[id].drain = 1;
    }
    return rt;
fail:
    routes_free(rt);
    return NULL;
}

struct gw_routes *gw_routes_from_config(const struct gw_config *cfg, char *err, size_t errlen)
{
    struct gw_pool_spec *specs = gw_calloc(cfg->npools ? cfg->npools : 1, sizeof(*specs));
    if (!specs) {
        gw_errf(err, errlen, "out of memory");
        return NULL;
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        specs[i].name = cfg->pools[i].name;
        specs[i].addrs = (const char *const *)cfg->pools[i].addrs;
        specs[i].n = cfg->pools[i].naddrs;
    }
    struct gw_tunables global;
    gw_tunables_defaults(&global);
    memcpy(global.route_header, cfg->route_header, sizeof(global.route_header));
    gw_tunables_default_resume(&global, cfg->stream_resume);
    struct gw_routes *rt = gw_routes_build(specs, cfg->npools, &global, NULL, 0, 0, err, errlen);
    gw_free(specs);
    if (rt && cfg->tenants_file[0]) {
        rt->authdb = gw_authdb_load_files(cfg->tenants_file, cfg->api_keys_file, err, errlen);
        if (!rt->authdb) {
            routes_free(rt);
            return NULL;
        }
    }
    return rt;
}

void gw_routes_ref(struct gw_routes *rt)
{
    atomic_fetch_add_explicit(&rt->refs, 1, memory_order_relaxed);
}

void gw_routes_unref(struct gw_routes *rt)
{
    if (rt && atomic_fetch_sub_explicit(&rt->refs, 1, memory_order_acq_rel) == 1)
        routes_free(rt);
}

const struct gw_pool *gw_routes_find_pool(const struct gw_routes *rt, const char *name, size_t len)
{
    for (size_t i = 0; i < rt->npools; i++)
        if (rt->pools[i].name_len == len && !memcmp(rt->pools[i].name, name, len))
            return &rt->pools[i];
    return NULL;
}

struct pick_ctx {
    const struct gw_pool *pool;
    gw_routes_eligible_fn eligible;
    void *ctx;
};

static int pick_eligible(uint32_t ring_idx, void *arg)
{
    struct pick_ctx *pc = arg;
    return pc->eligible(pc->pool->replica_ids[ring_idx], pc->ctx);
}

int gw_routes_pick(const struct gw_pool *pool, uint32_t point, gw_routes_eligible_fn eligible,
                   void *ctx, const uint32_t *inflight, uint64_t cap)
{
    if (pool->ring.npoints == 0)
        return GW_ENOREPLICA;
    struct pick_ctx pc = {pool, eligible, ctx};
    int idx = gw_ring_pick_capped(&pool->ring, point, pick_eligible, &pc, NULL, 0, inflight, cap);
    if (idx < 0)
        return GW_ENOREPLICA;
    return (int)pool->replica_ids[idx];
}
