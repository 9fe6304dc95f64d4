/* SPDX-License-Identifier: Apache-2.0 */
/* kvcache — the simulated KV cache of an LLM replica: a set of at most
 * <capacity> chained block hashes (route/prefix.h), evicted least recently
 * used first.
 *
 * A call's hit is the number of leading blocks of its prompt that are
 * present (rp_kvcache_hit, read-only). After its prefill all its blocks are
 * stored (rp_kvcache_store): the ones present are touched, the missing ones
 * inserted, evicting from the LRU end; then the prompt's blocks are touched
 * from the last to the first, so block 0 is the most recently used and a
 * prompt loses its tail blocks before its head. A prompt of more blocks
 * than the capacity stores only its first <capacity> blocks. The store
 * reports the net change: blocks that were absent and are now present, and
 * blocks that were present and are now gone (disjoint lists).
 *
 * Pure logic: no I/O, no locks (the caller serializes), no allocation after
 * rp_kvcache_init. Hash table with linear probing (backward-shift delete)
 * over a node pool with an intrusive LRU list.
 */
#ifndef INFERGW_REPLICA_KVCACHE_H
#define INFERGW_REPLICA_KVCACHE_H

#include <stddef.h>
#include <stdint.h>

#define RP_KVCACHE_MAX (1u << 22) /* largest capacity in blocks (4 Mi) */

struct rp_kvnode {
    uint64_t h;
    int32_t prev, next; /* LRU list (head = most recent), or the free list (next) */
};

struct rp_kvcache {
    struct rp_kvnode *nodes;
    int32_t *table; /* node index, -1 = empty */
    uint32_t capacity, mask, used;
    int32_t head, tail, free;
};

/* 0, or -1 when out of memory or <capacity> is not 1..RP_KVCACHE_MAX. */
int rp_kvcache_init(struct rp_kvcache *c, uint32_t capacity);
void rp_kvcache_free(struct rp_kvcache *c);

/* The number of leading hashes of h[0..n) present. */
size_t rp_kvcache_hit(const struct rp_kvcache *c, const uint64_t *h, size_t n);

/* Stores h[0..n) as described above. <stored> and <evicted> have room for
 * n hashes each; *nstored and *nevicted say how many were written. */
void rp_kvcache_store(struct rp_kvcache *c, const uint64_t *h, size_t n, uint64_t *stored,
                      size_t *nstored, uint64_t *evicted, size_t *nevicted);

/* Writes every present hash (most recent first) into out[0..c->used). */
size_t rp_kvcache_list(const struct rp_kvcache *c, uint64_t *out);

#endif
