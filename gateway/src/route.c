/* route — static routing table over rings; see route.h. */
#include "route.h"

#include <netdb.h>
#include <stdio.h>
#include <string.h>

#include "mem.h"

static int resolve(struct gw_replica *r, char *err, size_t errlen)
{
    char host[256];
    uint16_t port;
    if (gw_config_split_addr(r->addr, host, sizeof(host), &port) < 0) {
        snprintf(err, errlen, "replica '%s' is not HOST:PORT", r->addr);
        return -1;
    }
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    struct addrinfo *res = NULL;
    int rc = getaddrinfo(host, portstr, &hints, &res);
    if (rc != 0 || !res) {
        snprintf(err, errlen, "replica '%s': cannot resolve host '%s': %s", r->addr, host,
                 gai_strerror(rc));
        return -1;
    }
    memcpy(&r->sa, res->ai_addr, res->ai_addrlen);
    r->salen = res->ai_addrlen;
    freeaddrinfo(res);
    return 0;
}

/* Returns the global id of <addr>, adding it to the table if new, or -1. */
static int replica_id(struct gw_routes *rt, const char *addr, char *err, size_t errlen)
{
    for (size_t i = 0; i < rt->nreplicas; i++)
        if (!strcmp(rt->replicas[i].addr, addr))
            return (int)i;
    struct gw_replica *nr = gw_realloc(rt->replicas, (rt->nreplicas + 1) * sizeof(*nr));
    if (!nr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rt->replicas = nr;
    struct gw_replica *r = &rt->replicas[rt->nreplicas];
    memset(r, 0, sizeof(*r));
    r->id = (uint32_t)rt->nreplicas;
    r->addr = gw_strdup(addr);
    if (!r->addr) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    rt->nreplicas++;
    if (resolve(r, err, errlen) < 0)
        return -1;
    return (int)r->id;
}

int gw_routes_build(struct gw_routes *rt, const struct gw_config *cfg, char *err, size_t errlen)
{
    memset(rt, 0, sizeof(*rt));
    rt->pools = gw_calloc(cfg->npools, sizeof(*rt->pools));
    if (!rt->pools) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    for (size_t i = 0; i < cfg->npools; i++) {
        const struct gw_pool_conf *pc = &cfg->pools[i];
        struct gw_pool *p = &rt->pools[i];
        rt->npools++;
        p->name = gw_strdup(pc->name);
        p->replica_ids = gw_calloc(pc->naddrs, sizeof(uint32_t));
        if (!p->name || !p->replica_ids) {
            snprintf(err, errlen, "out of memory");
            goto fail;
        }
        p->name_len = strlen(p->name);
        int rc = gw_ring_build(&p->ring, (const char *const *)pc->addrs, NULL, pc->naddrs);
        if (rc < 0) {
            snprintf(err, errlen, "pool %s: cannot build the ring (%s)", pc->name,
                     rc == -22 ? "invalid replica list" : "out of memory");
            goto fail;
        }
        for (size_t j = 0; j < p->ring.nreplicas; j++) {
            int id = replica_id(rt, p->ring.replicas[j], err, errlen);
            if (id < 0)
                goto fail;
            p->replica_ids[j] = (uint32_t)id;
        }
    }
    return 0;
fail:
    gw_routes_free(rt);
    return -1;
}

void gw_routes_free(struct gw_routes *rt)
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
    memset(rt, 0, sizeof(*rt));
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
    const uint32_t *exclude;
    size_t nexclude;
};

static int pick_eligible(uint32_t ring_idx, void *arg)
{
    struct pick_ctx *pc = arg;
    uint32_t id = pc->pool->replica_ids[ring_idx];
    for (size_t i = 0; i < pc->nexclude; i++)
        if (pc->exclude[i] == id)
            return 0;
    return pc->eligible ? pc->eligible(id, pc->ctx) : 1;
}

int gw_routes_pick(const struct gw_pool *pool, uint32_t point, gw_routes_eligible_fn eligible,
                   void *ctx, const uint32_t *exclude, size_t nexclude)
{
    struct pick_ctx pc = {pool, eligible, ctx, exclude, nexclude};
    int idx = gw_ring_pick(&pool->ring, point, pick_eligible, &pc, NULL, 0);
    if (idx < 0)
        return GW_ENOREPLICA;
    return (int)pool->replica_ids[idx];
}
