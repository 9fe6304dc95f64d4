/* SPDX-License-Identifier: Apache-2.0 */
/* ring — consistent hashing over a pool's replicas (pure logic, no I/O).
 *
 * Each replica "host:port" owns <weight> virtual nodes; vnode i sits at the
 * 32-bit token gw_hash32("<host:port>#<i>"). gw_hash32 is the first four bytes
 * of SHA-256, read big-endian: written once here and pinned by fixed
 * input/output tests, because every gateway, infergw-ctl, and any other
 * writer of the Redis ring must compute the same tokens. A key maps to the
 * point gw_key_hash32(key), the high 32 bits of XXH3-64 (seed 0; libxxhash),
 * also pinned by tests: it runs on every call, where SHA-256 alone would
 * cost more than the whole lookup. Lookup finds the first vnode clockwise (token >= point,
 * wrapping), by binary search (within one slot of a lookup index on rings of
 * GW_RING_INDEX_MIN points or more). Equal tokens are ordered by replica address so
 * the order never depends on insertion.
 *
 * Bounded loads (Mirrokni, Thorup and Zadimoghaddam, "Consistent Hashing with
 * Bounded Loads"): with a balance factor c > 0, a replica that already carries
 * its share of the calls in flight, times c, is passed over for the next one
 * clockwise, so a hot key spills onto its neighbours instead of piling onto one
 * replica, while every other key keeps its replica.
 *
 * A ring is immutable once built and may be shared by threads read-only.
 */
#ifndef INFERGW_RING_H
#define INFERGW_RING_H

#include <stddef.h>
#include <stdint.h>

#define GW_RING_DEFAULT_VNODES 100
#define GW_RING_MAX_VNODES     10000 /* per replica; keeps a bad weight from eating memory */
/* Replicas per ring. A pick keeps a bit per replica on its stack (at most
 * 2 x 512 bytes), so it never allocates. */
#define GW_RING_MAX_REPLICAS 4096
#define GW_ENOREPLICA        (-2)
#define GW_RING_INDEX_MIN    256 /* points; smaller rings get no lookup index */

/* First four bytes of SHA-256(<data>), big-endian. Thread-safe. Aborts the
 * process if OpenSSL cannot compute SHA-256 (a broken installation), since a
 * wrong hash would silently send keys to different replicas than every
 * other writer. */
uint32_t gw_hash32(const void *data, size_t len);

/* The point of a routing key: the high 32 bits of XXH3_64bits(<data>)
 * (seed 0), i.e. the first four bytes of its canonical big-endian form.
 * Every gateway and infergw-ctl must agree on it (pinned by tests).
 * Thread-safe, pure. */
uint32_t gw_key_hash32(const void *data, size_t len);

struct gw_ring_point {
    uint32_t token;
    uint32_t replica; /* index into gw_ring.replicas */
};

struct gw_ring {
    struct gw_ring_point *points; /* sorted by (token, replica address) */
    size_t npoints;
    /* Where a lookup starts its binary search: index[b] is the first point
     * whose token is >= b << index_shift, for b = 0 .. 2^(32 - index_shift)
     * (the last entry is npoints). About one entry per 4 to 8 points; NULL
     * for rings under GW_RING_INDEX_MIN points (the search alone is fast). */
    uint32_t *index;
    unsigned index_shift;
    char **replicas; /* "host:port", owned */
    uint32_t *weights;
    size_t nreplicas;
};

/* Builds a ring of <n> replicas with the given weights (vnode counts; NULL =
 * GW_RING_DEFAULT_VNODES each; weight 0 = the replica is on no point).
 * Replica indexes in the ring are the positions in <addrs>, which is copied.
 * Duplicated addresses are rejected. Returns 0 and fills *out, or -EINVAL
 * (n == 0, n over GW_RING_MAX_REPLICAS, duplicate, NULL or empty address,
 * weight over GW_RING_MAX_VNODES) / -ENOMEM; *out untouched on failure.
 * Free with gw_ring_free(). */
int gw_ring_build(struct gw_ring *out, const char *const *addrs, const uint32_t *weights, size_t n);
/* Frees what gw_ring_build() allocated and zeroes *r; a zeroed ring is a
 * no-op. */
void gw_ring_free(struct gw_ring *r);

/* Tells whether replica <idx> may take a call now (healthy, not draining...). */
typedef int (*gw_ring_eligible_fn)(uint32_t idx, void *ctx);

/* Walks clockwise from <point> and returns the index of the first replica
 * that is not in <exclude> (an array of <nexclude> replica indexes, may be
 * NULL) and for which <eligible> (may be NULL = all) says yes. Passing over a
 * replica moves no other key. Returns the replica index, or GW_ENOREPLICA.
 *
 * The second choice (for a hedge or a retry) is the next distinct eligible
 * replica clockwise: call the same pick again with the first choice in
 * <exclude>; a third, with both; and so on.
 *
 * Pure: reads only the ring and its arguments, calls <eligible> (on the
 * calling thread) at most once per replica, allocates nothing; any thread may
 * call it on a shared ring. O(log points + points walked). */
int gw_ring_pick(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible, void *ctx,
                 const uint32_t *exclude, size_t nexclude);

/* The bounded-load cap: the most calls a replica may have in flight, the new
 * call included, when <total_inflight> calls are in flight on <n_eligible>
 * eligible replicas before it: ceil(c x (total_inflight + 1) / n_eligible).
 * Returns UINT64_MAX (no bound) when c <= 0 or c is not a number, or
 * <n_eligible> is 0. A product that is whole in decimal arithmetic but lands
 * a hair above it in binary (1.1 x 100 / 10) counts as whole. Pure. */
uint64_t gw_ring_load_cap(uint64_t total_inflight, size_t n_eligible, double balance_factor);

/* The floor of the bounded-load cap: a replica may always hold this many
 * calls in flight, the new one included, before bounded loads move a keyed
 * call off it. */
#define GW_RING_CAP_FLOOR 2

/* gw_ring_load_cap with a floor: max(gw_ring_load_cap(...), GW_RING_CAP_FLOOR),
 * UINT64_MAX (no bound) as there. Without it, ceil(1.25 x mean) moves a
 * keyed call as soon as two calls overlap on one replica of three (1 call in
 * flight on 3 replicas: cap ceil(1.25 x 2 / 3) = 1), so affinity (prefix
 * caches, session keys) breaks at light load; with it, light loads stay
 * sticky and the bound works as before once c x (total + 1) / n_eligible
 * passes 1. Pure.
 * The gateway's bounded picks all use it: the prefix decision
 * (engine/call_prefix.c) and the ring pick (route.h gw_routes_pick, through
 * gw_ring_pick_capped with the totals engine/poolload.h keeps).
 * gw_ring_pick_bounded keeps the plain cap: it is the reference the capped
 * pick is tested against. */
uint64_t gw_ring_load_cap_floor(uint64_t total_inflight, size_t n_eligible, double balance_factor);

/* Like gw_ring_pick, but also passes over every replica whose in-flight
 * count plus the new call would exceed <cap>: inflight[idx] + 1 > cap, with
 * <inflight> indexed by ring replica index (nreplicas entries; NULL = no
 * bound). When every replica that gw_ring_pick would accept is over the cap,
 * returns the one gw_ring_pick returns: balance never refuses a call.
 * For callers that keep the eligible total themselves (see
 * gw_ring_load_cap): O(log points + points walked), one <eligible> call per
 * replica met. Pure, like gw_ring_pick. */
int gw_ring_pick_capped(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible,
                        void *ctx, const uint32_t *exclude, size_t nexclude,
                        const uint32_t *inflight, uint64_t cap);

/* Consistent hashing with bounded loads. Counts the replicas that are on at
 * least one point and that <eligible> accepts (n_eligible; replicas in
 * <exclude> count too) and the calls in flight on them (<inflight>, indexed
 * by ring replica index), then picks as gw_ring_pick_capped with the cap
 * gw_ring_load_cap(total, n_eligible, <balance_factor>): a replica whose
 * count plus the new call would exceed ceil(c x (total + 1) / n_eligible) is
 * passed over for the next replica clockwise. When every eligible replica is
 * over the cap, returns the first eligible one clockwise (the gw_ring_pick
 * answer): balance never refuses a call. <balance_factor> <= 0 (or NaN) or
 * <inflight> NULL: exactly gw_ring_pick. The second choice: the same call
 * with the first choice in <exclude>.
 *
 * Returns the ring replica index, or GW_ENOREPLICA when no replica is
 * eligible. Pure: reads only its inputs (the caller keeps <inflight> stable
 * during the call, e.g. per-worker counts on the worker's thread), calls
 * <eligible> once per replica with a point, allocates nothing.
 * O(nreplicas + log points + points walked): the census is the cost, one
 * <eligible> call per replica. Not on the gateway's path: the reference
 * that tests (tests/unit/test_ring_pick.c) and bench/ring_bench.c hold the
 * capped pick to; the gateway keeps n_eligible and the total itself
 * (engine/poolload.h) and calls gw_ring_pick_capped, O(log points + points
 * walked). */
int gw_ring_pick_bounded(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible,
                         void *ctx, const uint32_t *exclude, size_t nexclude,
                         const uint32_t *inflight, double balance_factor);

/* The running totals a bounded pick needs, kept by the caller instead of
 * counted on every pick: the replicas that are on at least one point and
 * eligible (n_eligible), and the calls in flight on them (inflight). Taken
 * by a census (gw_ring_tally_census); while a replica counted by it stays
 * counted, every change of its in-flight count is added to <inflight>
 * (gw_ring_tally_add). Replicas that become eligible or stop being are seen
 * by the next census (the gateway takes one at least every millisecond,
 * engine/poolload.h). Replicas on no point (weight 0) are never counted.
 * gw_ring_pick_capped with the cap gw_ring_load_cap(t.inflight,
 * t.n_eligible, c) of a tally equal to the census answers as
 * gw_ring_pick_bounded does (tested). */
struct gw_ring_tally {
    size_t n_eligible;
    uint64_t inflight;
};

/* Counts from scratch: the replicas on a point that <eligible> (NULL = all)
 * accepts, asked once each, and their <inflight> (NULL = 0 each). The census
 * gw_ring_pick_bounded takes on every call. */
void gw_ring_tally_census(struct gw_ring_tally *t, const struct gw_ring *r,
                          gw_ring_eligible_fn eligible, void *ctx, const uint32_t *inflight);
/* A counted replica's in-flight count changed by <delta> (+1 when a call
 * starts on it, -1 when one ends). */
static inline void gw_ring_tally_add(struct gw_ring_tally *t, int64_t delta)
{
    t->inflight += (uint64_t)delta;
}

/* Share of the 2^32 hash space that replica <idx> owns (0..1): the keys
 * gw_ring_pick() sends to it when every replica is eligible. 0 for an index
 * out of range or a replica of weight 0. */
double gw_ring_share(const struct gw_ring *r, uint32_t idx);
/* Every replica's share at once, in one pass over the points: out[idx] =
 * gw_ring_share(r, idx) for idx < nreplicas (<out> holds nreplicas). */
void gw_ring_shares(const struct gw_ring *r, double *out);

#endif
