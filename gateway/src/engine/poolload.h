/* SPDX-License-Identifier: Apache-2.0 */
/* poolload — one worker's load view of the pools of its routing snapshot,
 * so a bounded ring pick costs no pass over the pool's replicas.
 *
 * For each pool of the snapshot it mirrors, the view holds the calls in
 * flight per ring replica index (the array the capped walk reads,
 * route/ring.h) and a struct gw_ring_tally: the eligible replicas and their
 * in-flight total, from which the pick's cap comes (gw_ring_load_cap_floor).
 * A replica index of the snapshot may be listed by several pools: a
 * membership list (replica -> (pool, ring index)), built with the view,
 * sends each in-flight change to every pool that lists it.
 *
 * Counts: the caller's source (in the gateway, the health record's count of
 * every worker's calls, health.h) is read for every replica of a pool when
 * the snapshot is installed (gw_poolload_fill) and again with each census;
 * in between, this worker's own changes are passed in (gw_poolload_add). So
 * the counts are exact for this worker's calls and at most one census
 * period old for the other workers'.
 *
 * Eligibility depends on loop time and on health records other threads
 * update, so no event says when it changes. The tally is therefore a census
 * (call-independent eligibility given by the caller: not draining, and
 * gw_upstream_eligible), taken on the first pick after a snapshot is
 * installed and again on a pick that finds the pool's last census
 * GW_POOLLOAD_CENSUS_NS (1 ms) of loop time old or older. Between censuses,
 * in-flight changes of the replicas the census counted are added to the
 * total; replicas that became eligible or ineligible since are not seen
 * until the next census. So n_eligible is at most 1 ms stale and the cap may
 * be a little off for that long, never more; the walk still asks the call's
 * own eligibility (tried replicas, drain, health) of every replica it
 * meets, so an ineligible replica is never picked. O(replicas of the pool)
 * once per millisecond per pool and worker instead of on every call.
 *
 * A pool's view is looked up by its position in the snapshot the view was
 * built for: the caller passes pools of that snapshot. Loop thread only
 * (one view per worker); pure otherwise (no I/O, no clock: loop time is
 * passed in), so it is unit-tested without a worker.
 */
#ifndef INFERGW_POOLLOAD_H
#define INFERGW_POOLLOAD_H

#include <stddef.h>
#include <stdint.h>

#include "route/ring.h"
#include "route/route.h"

/* The longest a pool's census serves picks, in loop-time nanoseconds. */
#define GW_POOLLOAD_CENSUS_NS 1000000ULL

/* Replica <idx> (index into gw_routes.replicas): its calls in flight, or
 * whether it may take calls at all (call-independent: drain, health). */
typedef uint32_t (*gw_poolload_inflight_fn)(uint32_t idx, void *ctx);
typedef int (*gw_poolload_eligible_fn)(uint32_t idx, void *ctx);

struct gw_poolload_member {
    uint32_t pool;     /* index into gw_routes.pools */
    uint32_t ring_idx; /* the replica's index in that pool's ring */
};

struct gw_poolload_pool {
    uint32_t *inflight; /* calls in flight by ring replica index */
    uint8_t *counted;   /* by ring replica index: counted by the last census */
    struct gw_ring_tally tally;
    uint64_t census_ns; /* loop time of the last census */
    int census_valid;   /* 0 = none since the counts were (re)filled */
};

struct gw_poolload {
    const struct gw_routes *rt; /* the snapshot mirrored (borrowed), NULL = none */
    struct gw_poolload_pool *pools;
    uint32_t *first; /* replica i's members: members[first[i] .. first[i + 1]) */
    struct gw_poolload_member *members;
};

/* Builds an empty view (every count 0, no census) of snapshot <rt> into
 * *out. Returns 0, or -ENOMEM with *out zeroed. Free with gw_poolload_free. */
int gw_poolload_build(struct gw_poolload *out, const struct gw_routes *rt);
/* Frees the view and zeroes it; a zeroed view is a no-op. */
void gw_poolload_free(struct gw_poolload *pl);
/* Takes every count from <inflight> (per replica of the snapshot) and drops
 * every census: the next pick of each pool takes one. */
void gw_poolload_fill(struct gw_poolload *pl, gw_poolload_inflight_fn inflight, void *ctx);
/* Replica <idx>'s calls in flight changed by <delta>: every pool listing it
 * sees the change, and the tally of a pool whose census counted it. An
 * index out of range is ignored; a count never goes below 0. */
void gw_poolload_add(struct gw_poolload *pl, uint32_t idx, int32_t delta);

/* What a bounded ring pick of <pool> at loop time <now_ns> needs: returns
 * the in-flight counts by ring replica index and sets *cap to
 * gw_ring_load_cap_floor(total, n_eligible, the pool's balance_factor),
 * taking a census first when the last one is missing or
 * GW_POOLLOAD_CENSUS_NS old: each replica's count is read again from
 * <inflight> (NULL = keep the running counts) and its eligibility asked of
 * <eligible>, both with <ctx>. Returns NULL with *cap = UINT64_MAX (no bound)
 * when the balance factor is 0 (no census taken) or <pool> is not a pool of
 * the view's snapshot. A census that finds no eligible replica gives no
 * bound either (the walk decides). */
const uint32_t *gw_poolload_view(struct gw_poolload *pl, const struct gw_pool *pool,
                                 uint64_t now_ns, gw_poolload_eligible_fn eligible,
                                 gw_poolload_inflight_fn inflight, void *ctx, uint64_t *cap);

#endif
