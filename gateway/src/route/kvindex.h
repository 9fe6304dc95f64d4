/* SPDX-License-Identifier: Apache-2.0 */
/* kvindex — the precise index of prefix-cache routing: for one pool, the set
 * of chain hashes each replica says its KV cache holds, fed by the KV-cache
 * events replicas publish to the pool's Redis Stream <prefix>pool:<pool>:kv
 * (docs/routing.md, "Prefix-cache routing"). Pure data structure and parser:
 * no I/O; not wired into the call path yet (a reader thread will XREAD the
 * stream, parse each entry with gw_kv_event_parse and apply it; workers will
 * ask gw_kvidx_usable and gw_kvidx_longest_match).
 *
 * Entry fields (all ASCII): r replica id (its ring address host:port), e
 * epoch (decimal u64, new at each replica start), s seq (decimal u64 >= 1,
 * +1 per entry of (r, e)), op stored | evicted | cleared | snapshot, h a
 * comma list of 16-lowercase-hex chain hashes (at most GW_KV_HASHES_MAX; ""
 * for cleared), and for snapshot only part/parts (k of n, 1-based).
 *
 * Per replica (keyed by gw_pidx_replica_key(r)):
 *  - stored adds the hashes, evicted removes them, cleared empties the set;
 *  - a seq that is not the last one + 1 (a gap: lost events), or a new epoch
 *    whose first entry is not `cleared`, makes the replica stale; a seq at or
 *    below the last one of the same epoch is a replay and ignored;
 *  - `cleared` (the cache is empty: exact whatever was lost) and a complete
 *    snapshot run (parts 1..n on consecutive seqs; any other entry in
 *    between abandons it) replace the set and make the replica fresh; the
 *    live set keeps answering while a snapshot is read;
 *  - gw_kvidx_mark_stale: the caller lost the stream (Redis down, reconnect),
 *    so every replica is stale until its next cleared or complete snapshot.
 * A replica never heard of is stale. The pool may use the precise index only
 * while every eligible replica is fresh (gw_kvidx_usable); otherwise the
 * caller uses estimation.
 *
 * Bounded: hash sets are open-addressed tables of 8-byte slots (load at most
 * 1/2) whose bytes, with the replicas' records, are counted against the cap
 * given at creation, or a budget several pools' indexes share (a table that doubles holds its old
 * slots too for the moment it is copied); a stored event or snapshot part that would go past it is
 * refused (GW_KV_FULL): a stored one leaves the replica stale (its set emptied), a snapshot part
 * abandons the run. At most <max_replicas> replicas: events of more are refused.
 *
 * Threads: one writer (the stream reader; the same thread for all indexes
 * sharing a budget) and any number of readers; a read-write lock inside.
 */
#ifndef INFERGW_KVINDEX_H
#define INFERGW_KVINDEX_H

#include <stddef.h>
#include <stdint.h>

#define GW_KV_HASHES_MAX 64  /* hashes per entry */
#define GW_KV_ID_MAX     255 /* bytes of a replica id */

enum gw_kv_op {
    GW_KV_STORED = 0,
    GW_KV_EVICTED,
    GW_KV_CLEARED,
    GW_KV_SNAPSHOT,
};

/* One field of a stream entry as XREAD returns it (binary-safe). */
struct gw_kv_field {
    const char *name;
    size_t name_len;
    const char *value;
    size_t value_len;
};

struct gw_kv_event {
    char replica[GW_KV_ID_MAX + 1]; /* r, NUL-terminated */
    uint64_t rkey;                  /* gw_pidx_replica_key(r) */
    uint64_t epoch;                 /* e */
    uint64_t seq;                   /* s, >= 1 */
    enum gw_kv_op op;
    uint64_t hashes[GW_KV_HASHES_MAX];
    size_t nhashes;
    uint32_t part, parts; /* snapshot only (1 <= part <= parts); 0 otherwise */
};

/* Parses one entry's fields, strictly: r, e, s, op and h exactly once each,
 * part and parts exactly for snapshot; r 1..GW_KV_ID_MAX bytes of printable
 * ASCII without spaces or commas; e and s plain decimals (no sign, no
 * spaces) within u64, s >= 1; h empty or comma-separated 16-lowercase-hex
 * hashes, at most GW_KV_HASHES_MAX, empty for cleared and not empty for
 * stored and evicted (a snapshot part may be empty); part and parts plain
 * decimals, 1 <= part <= parts <= 2^32-1. Fields of other names are ignored
 * (room for later fields). Returns 0, or -1 with <err> naming the field and
 * what was wrong (*ev then undefined). */
int gw_kv_event_parse(const struct gw_kv_field *fields, size_t nfields, struct gw_kv_event *ev,
                      char *err, size_t errlen);

const char *gw_kv_op_name(enum gw_kv_op op);

enum gw_kv_outcome {
    GW_KV_OK = 0,    /* applied; the replica's freshness did not change */
    GW_KV_OLD,       /* seq at or below the last one of this epoch: ignored */
    GW_KV_LOST,      /* a gap or a new epoch without cleared: now stale */
    GW_KV_FULL,      /* over the memory cap or the replica limit: refused */
    GW_KV_REFRESHED, /* cleared or a completed snapshot: fresh now */
};

struct gw_kvidx;

/* A byte budget several indexes (one per pool) may share: <used> counts
 * what they all hold, <max> bounds it. Indexes that share one must all be
 * written by the same thread (reads are free). */
struct gw_kv_budget {
    size_t max;
    size_t used;
};

/* An index for one pool holding at most <max_bytes> bytes and
 * <max_replicas> replicas. NULL when allocation fails or max_replicas is
 * 0. */
struct gw_kvidx *gw_kvidx_create(size_t max_bytes, size_t max_replicas);
/* The same within a shared <budget> (borrowed: it outlives the index). */
struct gw_kvidx *gw_kvidx_create_in(struct gw_kv_budget *budget, size_t max_replicas);
/* Frees the index; its bytes leave its budget. */
void gw_kvidx_free(struct gw_kvidx *x);

/* Applies one parsed event. <why> (may be NULL) says, for LOST, FULL and
 * REFRESHED, what happened ("gap: seq 9 after 7"). */
enum gw_kv_outcome gw_kvidx_apply(struct gw_kvidx *x, const struct gw_kv_event *ev, char *why,
                                  size_t whylen);

/* Every replica is stale (the stream was lost): <why> is kept as the
 * reason. */
void gw_kvidx_mark_stale(struct gw_kvidx *x, const char *why);
/* Drops replica <rkey> (it left the pool); its memory is freed. */
void gw_kvidx_forget(struct gw_kvidx *x, uint64_t rkey);

/* 1 when every one of cands[0..ncand) is known and fresh (ncand 0: 1). */
int gw_kvidx_usable(struct gw_kvidx *x, const uint64_t *cands, size_t ncand);

/* depth[j] = how many leading hashes of hashes[0..n) candidate j holds (0
 * for an unknown or stale replica); returns the largest. */
uint32_t gw_kvidx_longest_match(struct gw_kvidx *x, const uint64_t *hashes, size_t n,
                                const uint64_t *cands, size_t ncand, uint32_t *depth);

struct gw_kv_replica_info {
    int known; /* 0: never heard of (the rest is zero) */
    int stale;
    char why[128]; /* why stale ("" when fresh) */
    uint64_t epoch, seq;
    size_t held; /* hashes in its set */
};
void gw_kvidx_replica(struct gw_kvidx *x, uint64_t rkey, struct gw_kv_replica_info *out);

struct gw_kv_stats {
    size_t bytes;       /* this index's */
    size_t budget_used; /* its budget's, all indexes sharing it */
    size_t max_bytes;   /* the budget's bound */
    size_t replicas, stale_replicas, held;
    uint64_t applied, old, lost, full, snapshots, snapshots_abandoned;
};
void gw_kvidx_stats(struct gw_kvidx *x, struct gw_kv_stats *out);

#endif
