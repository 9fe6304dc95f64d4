/* SPDX-License-Identifier: Apache-2.0 */
/* health — replica health: active grpc.health.v1 checks, passive outlier
 * ejection, and the transport state (connect failures, keepalive timeouts)
 * every worker shares.
 *
 * Design. One struct gw_health per replica address for the whole process,
 * kept in a registry (struct gw_health_registry) that main creates before
 * the workers and frees after they are joined. Records are created when a
 * worker first maps the address (gw_upstream_adopt); each worker's
 * gw_upstream holds a reference (gw_health_get / gw_health_put). A record no
 * worker references any more (its replica left every snapshot) is unlinked
 * by gw_health_sweep and freed by a later sweep at least
 * GW_HEALTH_FREE_GRACE_MS after, so the admin and control-plane threads,
 * which look records up without the lock and use them for the length of a
 * scrape or a report, never touch freed memory; the number of records
 * follows the replicas configured now, not every address ever named. Each worker's gw_upstream
 * holds a pointer to its record; gw_upstream_eligible() reads it, so a replica that is ejected,
 * unhealthy, NOT_SERVING or down is passed over by the ring walk (other keys keep their replicas)
 * and comes back when the record says so.
 *
 * Every field is an atomic, read with relaxed loads: the data path takes no
 * lock. Writers:
 *  - active state: only the checker (hcheck.h, worker 0) writes it. Every
 *    --health-interval-ms it sends grpc.health.v1.Health/Check (service "")
 *    to each replica of its snapshot over a connection per replica that
 *    carries checks only (a small unary call on an nghttp2 client stream),
 *    with --health-timeout-ms;
 *    --healthy-threshold consecutive SERVING answers make the replica
 *    healthy, --unhealthy-threshold consecutive NOT_SERVING / error / timeout
 *    answers make it NOT_SERVING or unhealthy. Before the first verdict the
 *    state is "unknown", which is eligible; a replica that answers
 *    UNIMPLEMENTED (no health service) stays "unknown".
 *  - passive state: every worker, through gw_health_passive() (called by
 *    gw_upstream_report for attempt outcomes and keepalive timeouts, with
 *    plain values: the worker's snapshot and a record lookup). --outlier-failures consecutive
 *    failures eject the replica for min(--outlier-base-ms × times ejected,
 *    --outlier-max-ms), unless that would eject more than
 *    --outlier-max-percent of the replicas of a pool that contains it. The
 *    decision to eject reads the other replicas' records, so it is taken
 *    under the registry's mutex (rare: at most once per failure run), which
 *    keeps two workers from ejecting two replicas of a pool past the cap.
 *  - transport state: every worker. A failed connect, a connection that never
 *    sent its HTTP/2 SETTINGS, or a PING keepalive timeout marks the replica
 *    down with an exponential retry time (100 ms doubling to 5 s) shared by
 *    all workers; any frame received from the replica afterwards, on any
 *    connection of any worker, clears it.
 *  - calls in flight: every worker, as its streams to the replica open and
 *    close (gw_health_inflight_add); bounded loads, the prefix decision and
 *    least_loaded read the sum (gw_health_inflight).
 * The checker (hcheck.h, worker 0) also notices ejections that ended and
 * logs replica_returned; eligibility itself compares ejected_until_ns with
 * the clock, so a replica returns on time whichever thread looks.
 *
 * Availability bookkeeping (struct gw_health_avail, under the registry's
 * mutex): a replica is "up" while gw_health_is_up() (usable and not down).
 * Every function above that can change that (a check verdict, an ejection,
 * its end, a connect failure, a frame after one) and every reader (scrape,
 * control-plane report) notes the current up/down state with its time
 * (gw_health_avail_sync); from the transitions, gw_health_avail_stats()
 * derives failures, MTBF, MTTR and availability (docs/slo.md).
 *
 * The records and their state machine are plain logic (no sockets, times
 * passed in), unit-tested in tests/unit/test_health.c; this module knows
 * nothing of workers or upstreams. gw_health_render_metrics() writes the
 * health series on scrape.
 */
#ifndef INFERGW_HEALTH_H
#define INFERGW_HEALTH_H

#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

struct gw_upstream;
struct gw_up_conn;
struct gw_worker;
struct gw_routes;

/* Active (grpc.health.v1) state of a replica. */
enum gw_health_state {
    GW_HEALTH_UNKNOWN = 0, /* no verdict yet (or checks are off): eligible */
    GW_HEALTH_HEALTHY,
    GW_HEALTH_UNHEALTHY,   /* errors or timeouts */
    GW_HEALTH_NOT_SERVING, /* the replica said so */
    GW_HEALTH_NSTATES
};

/* The result of one check. */
enum gw_health_result {
    GW_HC_SERVING = 0,
    GW_HC_NOT_SERVING,
    GW_HC_ERROR, /* no connection, stream reset, non-OK grpc-status, bad message */
    GW_HC_TIMEOUT,
    GW_HC_UNIMPLEMENTED, /* grpc-status UNIMPLEMENTED: the replica has no health service */
    GW_HC_NRESULTS
};

struct gw_health_registry;

/* Up/down transitions of one replica, for MTBF / MTTR / availability.
 * Pure: the caller passes the state and the time (ns, one monotonic clock).
 * Nothing counts before the replica is first seen up. Each up -> down
 * transition is a failure, each down -> up one a recovery. */
struct gw_health_avail {
    int seen;            /* 1 once seen up */
    int up;              /* the state last noted */
    uint64_t since_ns;   /* when that state began */
    uint64_t up_ns;      /* ended up intervals */
    uint64_t down_ns;    /* ended down intervals (each an ended failure) */
    uint32_t failures;   /* up -> down */
    uint32_t recoveries; /* down -> up */
};

/* What gw_health_avail_stats derives at a given time:
 *   up_s, down_s  total time up / down since first seen up, the interval in
 *                 progress included;
 *   mtbf_s        up_s / failures; with no failure yet, up_s (a lower bound);
 *   mttr_s        ended down time / recoveries (the outage in progress counts
 *                 once it ends); 0 before the first recovery;
 *   availability  up_s / (up_s + down_s), which is MTBF / (MTBF + MTTR)
 *                 whenever the replica is up (every failure ended); while it is
 *                 down the outage so far counts; 1 when never down (or never
 *                 seen up). */
struct gw_health_avail_stats {
    uint32_t failures, recoveries;
    double up_s, down_s, mtbf_s, mttr_s, availability;
};

/* Notes that the replica is <up> (1) or down (0) at <now_ns>. Returns 1 when
 * this is a transition that counts (first seen up, a failure, a recovery),
 * else 0. A time before the last transition is taken as that time. */
int gw_health_avail_note(struct gw_health_avail *a, int up, uint64_t now_ns);
/* Fills <out> for <a> at <now_ns> (see struct gw_health_avail_stats). */
void gw_health_avail_stats(const struct gw_health_avail *a, uint64_t now_ns,
                           struct gw_health_avail_stats *out);

struct gw_health {
    struct gw_health_registry *reg;
    _Atomic(struct gw_health *) next; /* registry list; set before the record is published */
    uint32_t refs;                    /* gw_upstream references; under reg->mu */
    uint64_t unlinked_ns;             /* when gw_health_sweep unlinked it */
    struct gw_health *graveyard_next; /* in reg->graveyard once unlinked */
    char *addr;                       /* "host:port", owned */

    /* active: written by the checker only */
    _Atomic int state;                     /* enum gw_health_state */
    _Atomic uint32_t check_ok, check_fail; /* consecutive results */
    _Atomic uint64_t checks[GW_HC_NRESULTS];

    /* passive: any worker */
    _Atomic uint32_t failures;         /* consecutive failed attempts */
    _Atomic uint64_t ejected_until_ns; /* 0 = not ejected (monotonic clock) */
    _Atomic uint32_t times_ejected;

    /* transport: any worker */
    _Atomic uint32_t connect_failures; /* consecutive; 0 = reachable */
    _Atomic uint64_t connect_retry_at_ns;
    _Atomic uint64_t keepalive_timeouts;

    /* load reports (ORCA trailers, route/orca.h): any worker */
    _Atomic uint64_t load_bits;  /* decaying average of the reported load, a double's bits */
    _Atomic uint64_t load_at_ns; /* latest report; 0 = none */

    /* availability: under reg->mu (gw_health_avail_sync) */
    struct gw_health_avail avail;

    /* Calls in flight to the replica, every worker's together (each worker
     * adds its streams as they open and close): the load bounded loads,
     * the prefix decision and least_loaded compare. Padded off the fields
     * above (a cache line), so the writes of every call do not evict the
     * line every eligibility check reads. */
    char pad[64];
    _Atomic uint32_t inflight;
};

/* The replica's calls in flight, all workers together. Any thread. */
static inline uint32_t gw_health_inflight(const struct gw_health *h)
{
    return atomic_load_explicit(&h->inflight, memory_order_relaxed);
}

/* <delta> streams to the replica opened (> 0) or closed (< 0). Any thread. */
static inline void gw_health_inflight_add(struct gw_health *h, int32_t delta)
{
    atomic_fetch_add_explicit(&h->inflight, (uint32_t)delta, memory_order_relaxed);
}

/* A report older than this no longer counts: the load reads -1. */
#define GW_HEALTH_LOAD_STALE_MS 5000

/* Folds the load <sample> (0..1) the replica reported at <now_ns> into its
 * decaying average (gw_orca_avg; a stale average restarts from the sample).
 * Any thread; concurrent reports may lose one another's update (a sample). */
void gw_health_load_report(struct gw_health *h, double sample, uint64_t now_ns);
/* The replica's reported load (decaying average, 0..1), or -1 when it never
 * reported or its latest report is older than GW_HEALTH_LOAD_STALE_MS. */
double gw_health_load(const struct gw_health *h, uint64_t now_ns);

struct gw_health_registry {
    _Atomic(struct gw_health *) head; /* newest first */
    pthread_mutex_t mu;               /* creation, references, sweeps, ejection decisions */
    struct gw_health *graveyard;      /* unlinked, freed after the grace time; under mu */
    _Atomic size_t nrecords;          /* linked records (infergw_health_records) */
};

/* How long an unlinked record stays allocated for lock-free readers. */
#define GW_HEALTH_FREE_GRACE_MS 10000

/* Passive ejection parameters (from the flags). */
struct gw_outlier_params {
    uint32_t failures;    /* consecutive failures that eject; 0 = never */
    uint32_t base_ms;     /* ejection time per time ejected */
    uint32_t max_ms;      /* longest ejection */
    uint32_t max_percent; /* most of a pool that may be ejected at once */
};

/* Creates an empty registry. Returns NULL when out of memory; caller frees
 * with gw_health_registry_free() once no thread uses it. */
struct gw_health_registry *gw_health_registry_new(void);
void gw_health_registry_free(struct gw_health_registry *reg);
/* The record of <addr>, created when new, with a reference the caller drops
 * with gw_health_put(). Any thread (takes the mutex: call it when adopting a
 * snapshot, not per call). Returns NULL when out of memory. */
struct gw_health *gw_health_get(struct gw_health_registry *reg, const char *addr);
/* Drops a reference taken by gw_health_get (NULL is a no-op). Any thread. */
void gw_health_put(struct gw_health *h);
/* Unlinks the records nobody references and frees those unlinked at least
 * GW_HEALTH_FREE_GRACE_MS before <now_ns>. Returns how many were freed.
 * Any thread. */
size_t gw_health_sweep(struct gw_health_registry *reg, uint64_t now_ns);
/* The record of <addr>, or NULL. Any thread, lock-free; the pointer stays
 * valid for at least GW_HEALTH_FREE_GRACE_MS. */
struct gw_health *gw_health_find(struct gw_health_registry *reg, const char *addr);

/* Whether <h> lets calls through at <now_ns> as far as health goes: not
 * ejected, not unhealthy, not NOT_SERVING. (Transport state is checked by
 * gw_upstream_eligible, which knows the worker's own connections.) */
int gw_health_usable(const struct gw_health *h, uint64_t now_ns);
/* Whether <h> is ejected at <now_ns>. */
int gw_health_ejected(const struct gw_health *h, uint64_t now_ns);
const char *gw_health_state_name(enum gw_health_state s);
const char *gw_health_result_name(enum gw_health_result r);

/* Applies check result <r> to <h> with the thresholds. Returns the new state
 * when it changed, or -1. GW_HC_UNIMPLEMENTED (a replica without the
 * grpc.health.v1 service) puts it back to "unknown", which is eligible: no
 * health service is not a failure, and passive ejection still applies. Only
 * one thread (the checker) may call it for a given record. */
int gw_health_apply_check(struct gw_health *h, enum gw_health_result r, uint32_t healthy_threshold,
                          uint32_t unhealthy_threshold);

/* The record of replica <i> (index into a snapshot's replicas). */
typedef struct gw_health *(*gw_health_rec_fn)(size_t i, void *ctx);
/* Whether ejecting replica <idx> of <rt> at <now_ns> keeps the ejected share
 * of every pool containing it at or below <max_percent>. */
int gw_health_eject_allowed(const struct gw_routes *rt, size_t idx, gw_health_rec_fn rec, void *ctx,
                            uint32_t max_percent, uint64_t now_ns);
/* Records one attempt outcome on <h> (<ok> 1 = a response, 0 = a failure)
 * at <now_ns>. On the failure that reaches p->failures in a row, ejects the
 * replica when gw_health_eject_allowed() agrees (using <rt>, <idx>, <rec>,
 * <ctx>; idx < 0 = not in the snapshot: never ejected). Returns 1 when this
 * call ejected it, 0 otherwise. Any thread. */
int gw_health_passive(struct gw_health *h, int ok, uint64_t now_ns,
                      const struct gw_outlier_params *p, const struct gw_routes *rt, int idx,
                      gw_health_rec_fn rec, void *ctx);
/* Clears an ejection that ended by <now_ns>. Returns 1 when this call
 * cleared it (log "replica_returned" once), else 0. Any thread. */
int gw_health_end_ejection(struct gw_health *h, uint64_t now_ns);

/* Transport: a connect failed, a connection never became an HTTP/2 one, or
 * a keepalive timed out. Backs the replica off. Returns 1 when this marked a
 * reachable replica down (log once), else 0. */
int gw_health_conn_failed(struct gw_health *h, uint64_t now_ns);
/* A frame arrived from the replica. Returns 1 when this marked a down
 * replica reachable again (log once), else 0. */
int gw_health_conn_alive(struct gw_health *h);
/* Whether the replica is down and its retry time has not come. */
int gw_health_conn_backing_off(const struct gw_health *h, uint64_t now_ns);

/* Whether <h> counts as up at <now_ns> for availability: usable
 * (gw_health_usable) and not down (no failed connect since the last frame). */
int gw_health_is_up(const struct gw_health *h, uint64_t now_ns);
/* Notes the current up/down state of <h> at <now_ns> in its availability
 * bookkeeping and, when <out> is not NULL, fills it. Takes the registry's
 * mutex (never call it holding it). Any thread. */
void gw_health_avail_sync(struct gw_health *h, uint64_t now_ns, struct gw_health_avail_stats *out);

/* Writes infergw_replica_health, infergw_replica_ejections_total,
 * infergw_health_checks_total, infergw_upstream_keepalive_timeouts_total,
 * infergw_replica_failures_total, infergw_replica_mtbf_seconds,
 * infergw_replica_mttr_seconds and infergw_replica_availability for every record of <reg> in the
 * Prometheus text format. Any thread. */
void gw_health_render_metrics(struct gw_health_registry *reg, FILE *out);

#endif
