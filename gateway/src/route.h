/* route — the routing table: replicas and the pools (models) that use them.
 *
 * Built once from the static --pool flags (the Redis control plane will
 * replace it with refcounted snapshots): each distinct replica address gets a
 * global id shared by every pool that lists it, each pool gets a consistent-
 * hashing ring (ring.h) over its replicas. Picking a replica for a call hashes
 * the routing key onto the pool's ring, or takes a random point when the call
 * has no key, and walks clockwise past replicas the caller finds ineligible.
 * Read-only after build, so every worker reads it without locks.
 */
#ifndef INFERGW_ROUTE_H
#define INFERGW_ROUTE_H

#include <netinet/in.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/socket.h>

#include "config.h"
#include "ring.h"

struct gw_replica {
    uint32_t id;
    char *addr; /* "host:port" as configured */
    struct sockaddr_storage sa;
    socklen_t salen;
};

struct gw_pool {
    char *name;
    size_t name_len;
    struct gw_ring ring;
    uint32_t *replica_ids; /* ring replica index -> gw_replica.id */
};

struct gw_routes {
    struct gw_replica *replicas;
    size_t nreplicas;
    struct gw_pool *pools;
    size_t npools;
};

/* Builds the table from <cfg>, resolving each replica address once.
 * Returns 0, or -1 with the reason in <err> (unresolvable host, ...). */
int gw_routes_build(struct gw_routes *rt, const struct gw_config *cfg, char *err, size_t errlen);
void gw_routes_free(struct gw_routes *rt);

/* The pool named <name> (<len> bytes), or NULL. */
const struct gw_pool *gw_routes_find_pool(const struct gw_routes *rt, const char *name, size_t len);

/* Is global replica <id> eligible for a call right now? */
typedef int (*gw_routes_eligible_fn)(uint32_t replica_id, void *ctx);

/* Picks a replica of <pool> for the ring point <point>, skipping replicas
 * for which <eligible> says no and the <nexclude> global ids in <exclude>.
 * Returns the global replica id, or GW_ENOREPLICA. */
int gw_routes_pick(const struct gw_pool *pool, uint32_t point, gw_routes_eligible_fn eligible,
                   void *ctx, const uint32_t *exclude, size_t nexclude);

#endif
