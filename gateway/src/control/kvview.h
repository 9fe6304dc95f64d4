/* SPDX-License-Identifier: Apache-2.0 */
/* kvview — the gateway's process-wide precise view of what each replica's
 * KV cache holds (prefix_mode = precise): one route/kvindex per pool whose
 * effective tunables say route_by = prefix and prefix_mode = precise in the
 * routing snapshot in force, fed by the stream reader (control/kvreader.h)
 * from the pools' KV event streams (<prefix>pool:<pool>:kv), read by the
 * workers when they route a call.
 *
 * Pools come and go with snapshots: the watcher hands every snapshot it
 * publishes to gw_kvview_want (a copy of the precise pools and their ring
 * addresses, under a short mutex; no Redis, no index work), and the reader
 * thread applies it with gw_kvview_sync: a new precise pool gets an empty
 * index (every replica stale until its `cleared` or a complete snapshot),
 * a pool that left or stopped being precise loses its index, and a replica
 * that left a followed pool's ring leaves its index (events of replicas
 * never on the ring are still applied, within the limits below). At most
 * GW_KVVIEW_POOLS pools are followed (more are logged and left on
 * estimation).
 *
 * Memory: every pool's index counts against one budget of <max_bytes>
 * (gw_kvview_init; the app passes --prefix-index-bytes, so the precise view
 * and the estimation index may each hold up to that much), at most
 * GW_KVVIEW_REPLICAS replicas per pool; events past it are refused (see
 * route/kvindex.h, GW_KV_FULL) and counted.
 *
 * Threads: one writer (the reader thread: gw_kvview_sync, _apply,
 * _set_up), the watcher (gw_kvview_want), any number of readers
 * (gw_kvview_match, _render_metrics, _describe). The pool table is under a
 * read-write lock taken for writing only when pools come or go; each index
 * has its own lock. No reader ever waits on Redis.
 */
#ifndef INFERGW_KVVIEW_H
#define INFERGW_KVVIEW_H

#include <jansson.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "route/kvindex.h"

#define GW_KVVIEW_POOLS    64   /* precise pools followed */
#define GW_KVVIEW_REPLICAS 4096 /* replicas per pool's index */
#define GW_KVVIEW_ID_LEN   48   /* a stream entry id "<ms>-<seq>" */

struct gw_kvview;
struct gw_routes;

/* What happened to one stream entry (infergw_kv_events_total{result}). */
enum gw_kvview_result {
    GW_KVV_APPLIED = 0, /* stored, evicted, cleared or a snapshot part applied */
    GW_KVV_IGNORED,     /* a replay (seq at or below the last one) */
    GW_KVV_REJECTED,    /* malformed: gw_kv_event_parse refused it */
    GW_KVV_LOST,        /* a seq gap or a new epoch without cleared: the replica is stale */
    GW_KVV_FULL,        /* over the memory budget or the replica limit */
    GW_KVV_RESULTS,
};
const char *gw_kvview_result_name(enum gw_kvview_result r);

/* The process's view (NULL before gw_kvview_init or after shutdown). */
struct gw_kvview *gw_kvview_global(void);
/* Creates the process's view with <max_bytes> for all pools' indexes.
 * Returns 0, or -1 when out of memory. Call once at start, before the
 * watcher and the workers. */
int gw_kvview_init(size_t max_bytes);
/* Frees it (after the workers, the watcher and the reader stopped). */
void gw_kvview_shutdown(void);

/* For pool <pool> (<pool_len> bytes): depth[j] = the leading blocks of
 * hashes[0..n) that replica cands[j] (gw_pidx_replica_key) holds. Returns
 * the largest depth (0 = no replica holds block 0), or -1 when the pool's
 * view is not usable now (not a followed precise pool, the stream lost, or
 * a candidate unknown or stale): the caller then uses estimation. <v> NULL
 * gives -1. A replica that goes stale between the usability check and the
 * match reads as depth 0. */
int gw_kvview_match(struct gw_kvview *v, const char *pool, size_t pool_len, const uint64_t *hashes,
                    size_t n, const uint64_t *cands, size_t ncand, uint32_t *depth);

/* Watcher: the snapshot <rt> is in force now (see above). <v> NULL: no-op. */
void gw_kvview_want(struct gw_kvview *v, const struct gw_routes *rt);

/* Reader thread only. */
/* Applies the last gw_kvview_want; returns how many pools are followed. */
size_t gw_kvview_sync(struct gw_kvview *v);
/* Pool i (< the count gw_kvview_sync returned): its name and the id after
 * which its stream is to be read ("0-0" for a new pool). */
const char *gw_kvview_pool_name(struct gw_kvview *v, size_t i);
const char *gw_kvview_last_id(struct gw_kvview *v, size_t i);
/* Parses and applies one entry <id> of pool i's stream; the pool's last id
 * becomes <id> whatever the outcome. */
enum gw_kvview_result gw_kvview_apply(struct gw_kvview *v, size_t i, const char *id,
                                      const struct gw_kv_field *fields, size_t nfields);
/* Pool i's stream key holds another type than a stream: with <why>
 * (non-NULL) the pool's replicas go stale with it and the reader leaves the
 * key out of XREAD until <recheck_ms> (monotonic ms), when it looks again;
 * with NULL the key is read again. gw_kvview_key_bad gives that time (0:
 * the key is read). Kept while the pool stays followed. */
void gw_kvview_set_key_bad(struct gw_kvview *v, size_t i, const char *why, uint64_t recheck_ms);
uint64_t gw_kvview_key_bad(struct gw_kvview *v, size_t i);
/* The stream is readable (1) or lost (0: every followed pool's replicas go
 * stale with <why>, and gw_kvview_match gives -1 until it is back). */
void gw_kvview_set_up(struct gw_kvview *v, int up, const char *why);

/* Any thread. */
/* Appends infergw_kv_events_total{pool,result}, infergw_kv_view_usable{pool}
 * and infergw_kv_index_bytes (Prometheus text). <v> NULL: nothing. */
void gw_kvview_render_metrics(struct gw_kvview *v, FILE *out);
/* Sets in <out> the precise view of pool <pool>: "followed" (false when
 * the pool is not a precise pool of the snapshot in force: then only that),
 * "stream_up", "usable" (every ring replica known and fresh),
 * "events" {result: count}, "bytes", "budget_used", "budget_max",
 * "replicas" [{addr, known, stale, why, epoch, seq, held}] for the pool's
 * ring replicas, "snapshots", "snapshots_abandoned". Returns 0, or -1 when
 * <v> is NULL or out of memory. */
int gw_kvview_describe(struct gw_kvview *v, const char *pool, json_t *out);

#endif
