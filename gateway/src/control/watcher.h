/* SPDX-License-Identifier: Apache-2.0 */
/* watcher — the control plane: a thread that keeps the routing snapshot in
 * step with Redis.
 *
 * It loads the keys of the contract (pools, each pool's ring ZSET and conf
 * HASH, the global conf HASH, replica states, and, found with SCAN, every
 * tenant and API-key HASH into the snapshot's authdb) into a new snapshot,
 * validates every value (both done by control/loader.h), and hands the snapshot to each worker
 * (gw_worker_offer_routes); workers never wait on Redis. It reloads when a
 * writer PUBLISHes on <prefix>changed and also polls <prefix>version every
 * --redis-poll-ms, so a lost message costs at most one poll period.
 *
 * Validation: a bad value is refused with a log line naming key, field and
 * value, the config-error counter goes up, and the last good value stays (a
 * pool whose ring has a bad member keeps its previous ring; a bad tunable
 * keeps its previous value; a tenant or API-key record with a bad field
 * keeps its last good record, or is left out when it never had one; an API
 * key naming a tenant that is not loaded is left out). Fail static: while
 * Redis is unreachable the workers keep the last good snapshot, and the
 * thread reconnects with backoff (100 ms doubling up to --redis-poll-ms);
 * sentinel:// URLs are followed across a failover (the node is checked to be
 * a master on every poll).
 *
 * Leases (infergw-ctl replica register): a replica listed in <prefix>leased
 * whose <prefix>lease:<host:port> key is gone (expired) is passed over like
 * a drained one; it stays on the ring, so no other key moves. The thread
 * checks the leases (SMEMBERS + pipelined EXISTS) at every poll and loads
 * a new snapshot when the set of expired leases changes, with no version
 * bump needed.
 *
 * Health report: every GW_CTRL_REPORT_MS the thread writes the HASH
 * <prefix>gateway:<id> (field per replica -> "state" words, see docs/redis-keys.md)
 * with an expiry of 3 periods, so infergw-ctl status sees every live
 * gateway's view and a dead gateway's report disappears.
 *
 * Pools given with --pool that Redis does not define stay as configured;
 * Redis wins for the pools it defines.
 */
#ifndef INFERGW_CTRL_H
#define INFERGW_CTRL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include "base/stopper.h"
#include "base/config.h"
#include "control/redisconn.h"
#include "route/route.h"

#define GW_CTRL_REPORT_MS  2000
#define GW_WATCHER_HISTORY 16 /* applied versions kept for the status page */

/* One snapshot the watcher published: its infergw:version and when. */
struct gw_watcher_applied {
    uint64_t version;
    uint64_t at_ms; /* CLOCK_REALTIME */
};

struct gw_worker;
struct gw_health_registry;

struct gw_watcher {
    const struct gw_config *cfg;
    struct gw_redis_url url;
    struct gw_worker *workers;
    int nworkers;
    struct gw_stopper stopper;         /* its thread, and how it is told to stop */
    struct gw_routes *current;         /* last snapshot published (our reference) */
    struct gw_routes *flags;           /* the snapshot of the --pool flags */
    struct gw_health_registry *health; /* set by main before gw_watcher_start; may be NULL */
    char *lease_gone;                  /* "\n"-framed sorted leased replicas whose lease is gone */
    char gateway_id[300];              /* --gateway-id, or hostname:listen-port */
    uint64_t report_due_ms;            /* next write of <prefix>gateway:<id> */
    /* Read by other threads (metrics, readiness). */
    atomic_int redis_up;
    atomic_ullong version;       /* infergw:version of the snapshot in force */
    atomic_ullong config_errors; /* values refused */
    atomic_ullong reloads;       /* snapshots published from Redis */
    atomic_ullong loaded_at_ms;  /* CLOCK_REALTIME of the last publish */
    /* Read by the admin thread (status page), under applied_mu. */
    pthread_mutex_t applied_mu;
    struct gw_watcher_applied applied[GW_WATCHER_HISTORY]; /* ring of the last publishes */
    uint64_t napplied;                                     /* publishes so far */
    char *lease_gone_pub; /* a copy of lease_gone as of the last publish */
};

/* Prepares the control plane for cfg->redis_url. <flags> is the snapshot of
 * the --pool flags (the ctrl takes a reference). Returns 0, or -1 with the
 * reason in <err> (bad URL). */
int gw_watcher_init(struct gw_watcher *ctl, const struct gw_config *cfg, struct gw_routes *flags,
                    char *err, size_t errlen);
/* Tries one load now (blocking, bounded by the Redis timeout), before the
 * workers exist. Returns the snapshot to start with (a new reference): the
 * Redis one, or the flags one when Redis cannot be read. */
struct gw_routes *gw_watcher_initial(struct gw_watcher *ctl);
/* Starts the thread, which publishes to <workers>. Returns 0 or an errno. */
int gw_watcher_start(struct gw_watcher *ctl, struct gw_worker *workers, int nworkers);
/* Stops and joins the thread, frees everything. */
void gw_watcher_stop(struct gw_watcher *ctl);

/* The last (at most <max>) snapshots published, newest first, into <out>.
 * Returns how many. Any thread. */
size_t gw_watcher_history(struct gw_watcher *ctl, struct gw_watcher_applied *out, size_t max);
/* Whether replica <addr> is leased and its lease is gone, as of the last
 * snapshot published. Any thread. */
int gw_watcher_lease_gone(struct gw_watcher *ctl, const char *addr);

#endif
