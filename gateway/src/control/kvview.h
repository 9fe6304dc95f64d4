/* SPDX-License-Identifier: Apache-2.0 */
/* kvview — the gateway's process-wide precise view of what each replica's
 * KV cache holds (prefix_mode = precise): one route/kvindex per pool, fed by
 * a reader of the pools' KV event streams (<prefix>pool:<pool>:kv), read by
 * the workers when they route a call. Thread-safe: one writer (the reader
 * thread), any number of readers; no reader ever waits on Redis.
 *
 * Until the stream reader is running (or for a pool it does not follow),
 * every pool's view is unusable and callers use estimation.
 */
#ifndef INFERGW_KVVIEW_H
#define INFERGW_KVVIEW_H

#include <stddef.h>
#include <stdint.h>

struct gw_kvview;

/* The process's view (created on first use; never NULL after
 * gw_kvview_init succeeded). */
struct gw_kvview *gw_kvview_global(void);
/* Creates the process's view with <max_bytes> for all pools' indexes.
 * Returns 0, or -1 when out of memory. Call once at start, before workers. */
int gw_kvview_init(size_t max_bytes);
/* Frees it (after the workers and the reader stopped). */
void gw_kvview_shutdown(void);

/* For pool <pool> (<pool_len> bytes): depth[j] = the leading blocks of
 * hashes[0..n) that replica cands[j] (gw_pidx_replica_key) holds. Returns
 * the largest depth (0 = no replica holds block 0), or -1 when the pool's
 * view is not usable now (never fed, the stream lost, or a candidate stale):
 * the caller then uses estimation. <v> NULL gives -1. */
int gw_kvview_match(struct gw_kvview *v, const char *pool, size_t pool_len, const uint64_t *hashes,
                    size_t n, const uint64_t *cands, size_t ncand, uint32_t *depth);

#endif
