/* SPDX-License-Identifier: Apache-2.0 */
/* kvreader — the thread that feeds the precise view (control/kvview.h)
 * from the pools' KV event streams, <prefix>pool:<pool>:kv.
 *
 * Its own Redis connection (control/redisconn.h: the --redis URL, Sentinel
 * and AUTH included), so it never delays the watcher's route updates. Each
 * round it applies the precise pools of the snapshot in force
 * (gw_kvview_sync), then XREAD COUNT GW_KVREADER_COUNT BLOCK
 * GW_KVREADER_BLOCK_MS over every followed pool's stream from that pool's
 * last id, and parses and applies each entry (gw_kvview_apply). With no
 * precise pool it only waits (GW_KVREADER_BLOCK_MS) for one to appear.
 *
 * Where it starts: a newly followed pool is read from 0-0, so the history
 * the stream retains (trimmed by the replicas' MAXLEN) rebuilds what it can:
 * a replica whose retained entries begin with its `cleared` or contain a
 * complete snapshot becomes fresh; one whose start was trimmed away sees a
 * seq it cannot place and stays stale until its next snapshot (route/kvindex
 * rules). Reading from "$" would instead wait up to a snapshot period for
 * every replica. A trimmed gap after a reconnect shows the same way, as a
 * seq gap.
 *
 * Failures: a Redis error, a reply of an unexpected shape, a reconnect or,
 * with Sentinel, a node that is no longer the master (ROLE, checked at
 * most every GW_KVREADER_BLOCK_MS) marks the view lost
 * (every replica stale, gw_kvview_match -1) and reconnects with backoff
 * (100 ms doubling up to --redis-poll-ms), continuing from each pool's last
 * id. Workers never wait on it.
 *
 * A pool whose key holds another type than a stream (XREAD answers
 * WRONGTYPE; TYPE of each key tells which) leaves the XREAD alone, so the
 * other pools go on: its replicas go stale ("stream key is a <type>, not a
 * stream"), kv_stream_wrong_type is logged once, and TYPE looks again every
 * GW_KVREADER_RECHECK_MS until the key is a stream or gone
 * (kv_stream_key_fixed), then it is read from its last id.
 */
#ifndef INFERGW_KVREADER_H
#define INFERGW_KVREADER_H

#include <pthread.h>
#include <stdatomic.h>

#include "base/stopper.h"
#include "base/config.h"
#include "control/kvview.h"
#include "control/redisconn.h"

#define GW_KVREADER_BLOCK_MS   1000 /* XREAD BLOCK */
#define GW_KVREADER_COUNT      512  /* XREAD COUNT, per stream */
#define GW_KVREADER_FIELDS     16   /* fields per entry read; more: rejected */
#define GW_KVREADER_RECHECK_MS 2000 /* a wrong-type key looked at again */

struct gw_kvreader {
    const struct gw_config *cfg;
    struct gw_kvview *view;
    struct gw_redis_url url;
    struct gw_stopper stopper; /* its thread, and how it is told to stop */
    atomic_ullong reconnects;
};

/* Starts the thread for cfg->redis_url feeding <view>. Returns 0, or -1
 * with the reason in <err>. */
int gw_kvreader_start(struct gw_kvreader *r, const struct gw_config *cfg, struct gw_kvview *view,
                      char *err, size_t errlen);
/* Stops and joins it (a no-op when it was not started). */
void gw_kvreader_stop(struct gw_kvreader *r);

#endif
