/* SPDX-License-Identifier: Apache-2.0 */
/* route — the routing table (snapshot): replicas, pools (models) with their
 * consistent-hashing rings, and the tunables in force.
 *
 * A snapshot is immutable and reference-counted. It is built either from
 * the static --pool flags or by the control plane from Redis (control/watcher.c), and
 * handed to each worker with a reference of its own (gw_worker_offer_routes),
 * so a worker never reads memory that another thread may free: the last
 * holder to drop its reference frees it, on whatever thread that is.
 *
 * Each distinct replica address gets an index shared by every pool that
 * lists it; each pool gets a ring (ring.h) over its replicas and its
 * effective tunables (global overlaid with the pool's own). Replicas in
 * state "drain" stay on their rings (no key moves) but are not eligible
 * for new calls.
 */
#ifndef INFERGW_ROUTE_H
#define INFERGW_ROUTE_H

#include <netinet/in.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "auth/authdb.h"
#include "base/config.h"
#include "route/ring.h"
#include "route/tunables.h"

struct gw_replica {
    char *addr; /* "host:port" */
    struct sockaddr_storage sa;
    socklen_t salen;
    int drain; /* state "drain": no new calls */
};

struct gw_pool {
    char *name;
    size_t name_len;
    struct gw_ring ring;
    uint32_t *replica_ids;  /* ring replica index -> index in gw_routes.replicas */
    struct gw_tunables tun; /* effective: defaults < global < pool */
    int from_redis;
};

struct gw_routes {
    atomic_int refs;
    uint64_t version; /* infergw:version it was loaded at; 0 = flags only */
    struct gw_replica *replicas;
    size_t nreplicas;
    struct gw_pool *pools;
    size_t npools;
    struct gw_tunables global;
    struct gw_authdb *authdb; /* tenants and API keys; NULL = none loaded */
};

/* One pool to build: replicas and their weights (vnode counts). */
struct gw_pool_spec {
    const char *name;
    const char *const *addrs;
    const uint32_t *weights; /* NULL = GW_RING_DEFAULT_VNODES each */
    size_t n;
    const struct gw_tunables *tun; /* the pool's own settings (set bits), or NULL */
    int from_redis;
};

/* Builds a snapshot (refs = 1) of <npools> pools, resolving every replica
 * address once (blocking: call it off the workers). <global> are the
 * global tunables (defaults plus what is set); <drained> lists addresses in
 * state drain. Returns the snapshot, or NULL with the reason in <err>. */
struct gw_routes *gw_routes_build(const struct gw_pool_spec *pools, size_t npools,
                                  const struct gw_tunables *global, const char *const *drained,
                                  size_t ndrained, uint64_t version, char *err, size_t errlen);
/* The snapshot of the static --pool flags, with the tenants and API keys of
 * the --tenants/--api-keys files when given (authdb NULL otherwise). Returns
 * NULL with the reason in <err> (a replica that does not resolve, a file
 * error as "file:line: reason"). */
struct gw_routes *gw_routes_from_config(const struct gw_config *cfg, char *err, size_t errlen);

void gw_routes_ref(struct gw_routes *rt);
/* Drops a reference; frees the snapshot with the last one. NULL is a no-op. */
void gw_routes_unref(struct gw_routes *rt);

/* The pool named <name> (<len> bytes), or NULL. */
const struct gw_pool *gw_routes_find_pool(const struct gw_routes *rt, const char *name, size_t len);
/* The index of replica <addr>, or -1. */
int gw_routes_find_replica(const struct gw_routes *rt, const char *addr);

/* Is replica <idx> (index into gw_routes.replicas) eligible for a call now? */
typedef int (*gw_routes_eligible_fn)(uint32_t idx, void *ctx);

/* Picks a replica of <pool> for ring point <point>: the first clockwise that
 * <eligible> accepts and, when <inflight> is given (calls in flight per ring
 * replica index), whose load stays within <cap> (inflight + 1 <= cap; the
 * caller's gw_ring_load_cap_floor, UINT64_MAX = no bound), falling back to
 * the first eligible one when all are over (gw_ring_pick_capped). The
 * caller keeps the totals behind <cap> (engine/poolload.h), so the pick
 * makes no pass over the pool. Returns the replica index (into
 * gw_routes.replicas), or GW_ENOREPLICA. */
int gw_routes_pick(const struct gw_pool *pool, uint32_t point, gw_routes_eligible_fn eligible,
                   void *ctx, const uint32_t *inflight, uint64_t cap);

#endif
