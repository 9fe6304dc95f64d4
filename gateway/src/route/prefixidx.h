/* SPDX-License-Identifier: Apache-2.0 */
/* prefixidx — the estimation index of prefix-cache routing: which replicas
 * this gateway sent each prompt block chain to (docs/routing.md,
 * "Prefix-cache routing"). Pure data structure: no I/O, no threads of its own;
 * the engine (engine/call_prefix.c, one shared index: engine/prefixstate.c)
 * asks longest_match before a prefix pick and records the chosen replica's
 * chain after it.
 *
 * Keys: (pool id, chain hash) -> up to GW_PIDX_WAYS replicas, each with the
 * time this gateway last sent that chain there. Only every
 * GW_PIDX_STRIDE-th hash of a chain (levels S-1, 2S-1, ...) and its last
 * one are kept: h[i] covers blocks 0..i, so the levels between add little,
 * and skipping them makes a lookup or a record touch 4 times fewer cache
 * lines and the index hold 4 times more prompts. A pool id is any 32-bit
 * number the caller keeps stable per pool (e.g. a hash of its name); a
 * replica is its 64-bit key gw_pidx_replica_key("host:port"), so the index
 * survives ring reloads and replica reordering.
 *
 * Bounded: the memory cap given at creation (--prefix-index-bytes) is
 * allocated once, as a set-associative table: sets of GW_PIDX_SET_WAYS
 * fixed 64-byte entries behind one 64-byte line of tags (72 bytes an entry
 * in all); gw_pidx_bytes() is never above the cap and never grows. A new
 * chain hash takes a free entry of its set or evicts the set's least
 * recently recorded one (LRU within each set of 8, an approximation of
 * global LRU); a replica new to a full entry replaces that entry's least
 * recently recorded replica. TTL: a replica's mark older than the caller's
 * ttl_ms does not match (checked on lookup; an entry none of whose marks is
 * fresh is freed there).
 *
 * Time: callers pass a monotonic clock in milliseconds. Marks are 32-bit
 * offsets from a base per set, moved forward when the set is touched 2^30 ms
 * (12.4 days) after it, dropping marks older than GW_PIDX_TTL_MAX_MS on the
 * way, so they never wrap.
 *
 * Concurrency (measured: bench/RESULTS.md, "prefix-cache routing
 * decision"): GW_PIDX_SHARED is one index every worker uses under one mutex
 * (a record or a lookup takes it once, for 0.1 to 0.4 us); GW_PIDX_PRIVATE
 * takes no lock, for one thread only (a per-worker index). DECISION: one
 * shared index. With 2 threads deciding back to back (the worst case: the
 * gateway does much else between decisions), shared cost 0.9 to 1.0 us a
 * decision against 0.7 to 0.8 us private at 4 replicas and 1.6 to 2.3 us
 * against 0.9 to 1.0 us at 64 on a quiet machine, and 2 to 3 times private's
 * cost on a loaded one (a lock holder descheduled makes the other wait). A
 * per-worker index would only know its own worker's calls: the turns of one
 * conversation arrive on whichever worker holds the caller's connection, and
 * a worker that did not see the earlier turns matches the system prompt
 * alone, which after load overrides may point elsewhere, so sharing keeps the
 * hit ratio that this index exists for. (Striping one shared index by the
 * first block's hash would split its capacity by stripe, with every chain
 * behind a popular system prompt in one stripe; striping by set would take a
 * lock per level.)
 */
#ifndef INFERGW_PREFIXIDX_H
#define INFERGW_PREFIXIDX_H

#include <stddef.h>
#include <stdint.h>

#define GW_PIDX_WAYS       4         /* replicas remembered per chain hash */
#define GW_PIDX_STRIDE     4         /* every 4th level of a chain is kept, and the last */
#define GW_PIDX_SET_WAYS   8         /* entries per set (LRU within a set) */
#define GW_PIDX_MIN_BYTES  4096      /* smallest cap (1 MiB / 256 workers) */
#define GW_PIDX_TTL_MAX_MS 86400000u /* largest ttl_ms (prefix_ttl_ms's bound) */
#define GW_PIDX_MAX_CANDS  4096      /* candidates per lookup (GW_RING_MAX_REPLICAS) */

enum gw_pidx_mode {
    GW_PIDX_SHARED = 0, /* one mutex: any thread */
    GW_PIDX_PRIVATE,    /* no locks: one thread only */
};

struct gw_pidx;

/* The stable key of a replica: XXH3_64bits of its ring address
 * ("host:port"). Pure. */
uint64_t gw_pidx_replica_key(const char *addr, size_t len);

/* Creates an index using at most <max_bytes> bytes in all (allocated now,
 * zeroed: the kernel backs pages as they are first written). Returns NULL
 * when <max_bytes> is below GW_PIDX_MIN_BYTES or allocation fails. */
struct gw_pidx *gw_pidx_create(size_t max_bytes, enum gw_pidx_mode mode);
void gw_pidx_free(struct gw_pidx *x);

/* Records that chain hashes[0..n) of <pool> were sent to replica <rkey> at
 * <now_ms>: the entries of levels S-1, 2S-1, ... and n-1 (S =
 * GW_PIDX_STRIDE) get <rkey>'s mark set to now (entries created or evicted
 * as needed). n = 0 is a no-op; n is cut to GW_PREFIX_BLOCKS_MAX (1024).
 * Never fails: a full set evicts. */
void gw_pidx_record(struct gw_pidx *x, uint32_t pool, const uint64_t *hashes, size_t n,
                    uint64_t rkey, uint64_t now_ms);

/* How deep each candidate matches hashes[0..n), for cands[0..ncand)
 * (replica keys, ncand <= GW_PIDX_MAX_CANDS; more are ignored, depth 0). A
 * candidate matches at level i when h[i]'s entry holds a mark of it younger
 * than <ttl_ms> (1..GW_PIDX_TTL_MAX_MS). The walk visits levels S-1, 2S-1,
 * ..., n-1 in order and stops at the first where no candidate matches; then
 * it looks at the levels between the last match and that one, deepest first
 * (where shorter chains ended), and stops at the first match. depth[j] = 1 +
 * the deepest level visited where cands[j] matched: exact for the longest
 * match, rounded down to a multiple of S for the others. Returns the largest
 * depth (0 = no match: the caller falls back to the ring on hashes[0]).
 * Read-mostly: frees entries found wholly expired. Duplicate candidates both
 * get the depth. */
uint32_t gw_pidx_longest_match(struct gw_pidx *x, uint32_t pool, const uint64_t *hashes, size_t n,
                               uint64_t now_ms, uint32_t ttl_ms, const uint64_t *cands,
                               size_t ncand, uint32_t *depth);

/* Forgets every entry of <pool> (a deleted pool): one pass over the index. */
void gw_pidx_drop_pool(struct gw_pidx *x, uint32_t pool);

struct gw_pidx_stats {
    size_t bytes;        /* memory held: gw_pidx_bytes() */
    size_t capacity;     /* entries the index can hold */
    size_t entries;      /* entries in use */
    uint64_t recorded;   /* chain hashes recorded (the levels kept) */
    uint64_t inserted;   /* entries created */
    uint64_t evicted;    /* live entries evicted for room (LRU) */
    uint64_t expired;    /* entries freed because every mark was past its TTL */
    uint64_t lookups;    /* longest_match calls */
    uint64_t hits;       /* longest_match calls that returned a depth above 0 */
    uint64_t hit_blocks; /* sum of the depths returned */
};

/* The counters and sizes, read under the lock. */
void gw_pidx_stats(struct gw_pidx *x, struct gw_pidx_stats *out);
/* The bytes the index holds: its structure and table; constant
 * from creation, at most the cap. */
size_t gw_pidx_bytes(const struct gw_pidx *x);

#endif
