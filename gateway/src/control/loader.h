/* SPDX-License-Identifier: Apache-2.0 */
/* loader — reads the keys of the control plane from Redis into a load, the
 * parts of a new routing snapshot, validating every value.
 *
 * gw_loader_run reads, under cfg->redis_prefix: the global conf HASH, the
 * pools SET, each pool's ring ZSET and conf HASH, the leases (SMEMBERS
 * <prefix>leased plus pipelined EXISTS of each lease key), each distinct
 * replica's state, and, found with SCAN (never KEYS), every tenant and
 * API-key HASH into a new authdb. It builds no snapshot and touches no
 * worker: the watcher (watcher.h) turns the load into a gw_routes and
 * publishes it.
 *
 * Validation: a bad value is refused with a "config_rejected" log line
 * naming key, field and value, *config_errors goes up, and the last good
 * value (from <prev>, the snapshot in force) stays: a pool whose ring has a
 * bad member keeps <prev>'s ring; a bad tunable keeps <prev>'s value; a
 * tenant or API-key record with a bad field keeps its <prev> record, or is
 * left out when it had none; an API key naming a tenant that is not loaded
 * is left out. A replica whose lease is gone is listed as drained (counted
 * in nexpired).
 *
 * Blocking hiredis calls on the caller's connection, bounded by its
 * timeout; one thread at a time per load. A Redis error leaves the
 * connection to be dropped by the caller.
 */
#ifndef INFERGW_LOADER_H
#define INFERGW_LOADER_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include "base/config.h"
#include "control/redisconn.h"
#include "route/route.h"

/* One pool as Redis defines it. */
struct gw_load_pool {
    char *name;
    char **addrs; /* owned */
    uint32_t *weights;
    size_t n;
    struct gw_tunables own; /* the pool's own settings (set bits) */
};

/* One load. The caller zeroes it and sets the three inputs; the rest is
 * filled by gw_loader_run and freed by gw_loader_free. */
struct gw_load {
    /* Inputs. */
    const struct gw_config *cfg;  /* redis_prefix, route_header */
    const struct gw_routes *prev; /* the snapshot in force (last good values); may be NULL */
    atomic_ullong *config_errors; /* counts every value refused; not NULL */
    /* Outputs. */
    struct gw_load_pool *pools;
    size_t npools;
    struct gw_tunables global;
    char **drained;
    size_t ndrained;
    char *gone;               /* leased replicas whose lease is gone ("\n"-framed) */
    size_t nexpired;          /* replicas of the snapshot passed over for that */
    struct gw_authdb *authdb; /* tenants and API keys */
    int oom;                  /* an allocation failed while loading records */
    unsigned errors;          /* values refused by this load */
};

/* Reads everything into <ld>. Returns 0, or -1 on a Redis error or when out
 * of memory (what was read so far stays in <ld> for gw_loader_free). */
int gw_loader_run(redisContext *c, struct gw_load *ld);
/* Frees what <ld> holds and zeroes it (inputs too). */
void gw_loader_free(struct gw_load *ld);

/* The replicas listed in <prefix>leased whose <prefix>lease:<addr> key is
 * gone, sorted and framed by newlines ("\n" when none, "\na\nb\n"), as a
 * new string. NULL on a Redis error or when out of memory. */
char *gw_loader_lease_gone(redisContext *c, const char *prefix);
/* Whether <addr> is in a "\n"-framed list (NULL is the empty list). */
int gw_loader_in_list(const char *list, const char *addr);
/* A reply to the command that is not an error (the error is logged as
 * "redis_error" and NULL returned: the connection is to be given up), or
 * NULL when the connection failed. */
redisReply *gw_loader_cmd(redisContext *c, const char *fmt, ...);

#endif
