/* SPDX-License-Identifier: Apache-2.0 */
/* kvevents — the simulated replica's KV-cache events, published to a Redis
 * Stream (docs/llm-simulation.md, "KV-cache events").
 *
 * Each entry of the stream <key> (XADD <key> MAXLEN ~ <maxlen> *) has the
 * fields r (replica id), e (epoch: CLOCK_REALTIME ns at start), s (seq,
 * 1, 2, 3, ... per epoch), op (stored | evicted | cleared | snapshot), h
 * (comma list of at most RP_KVEV_HASHES 16-hex-digit hashes) and, for a
 * snapshot, part and parts (k of n, 1-based, consecutive seqs).
 *
 * Callers never block on Redis: rp_kvev_publish() and rp_kvev_snapshot()
 * take a mutex only long enough to copy into a bounded queue, and assign
 * seqs there. One publisher thread drains the queue with hiredis (pipelined
 * XADDs). When the queue is full, or Redis is down (then the thread drains
 * and drops what is queued, and reconnects with a doubling backoff from
 * 100 ms to 2 s), events are dropped but their seqs are spent, so consumers
 * see the gap. Dropped events are counted and logged on each reconnect and
 * at stop. The first event is `cleared`. Every <snapshot_ms> (and at once
 * after each reconnect) the thread asks the owner for a complete snapshot
 * through the callback, which calls rp_kvev_snapshot() with its lock held,
 * so that no stored/evicted event of the owner falls between the copy and
 * its seqs.
 */
#ifndef INFERGW_REPLICA_KVEVENTS_H
#define INFERGW_REPLICA_KVEVENTS_H

#include <stddef.h>
#include <stdint.h>

#define RP_KVEV_HASHES 64 /* hashes per entry */

enum rp_kvev_op { RP_KVEV_STORED, RP_KVEV_EVICTED, RP_KVEV_CLEARED, RP_KVEV_SNAPSHOT };

struct rp_kvev;

/* Called on the publisher thread when a snapshot is due (possibly before
 * rp_kvev_start() has returned: hence <ev>). */
typedef void (*rp_kvev_snapshot_cb)(struct rp_kvev *ev, void *arg);

struct rp_kvev_config {
    const char *redis;   /* HOST:PORT */
    const char *key;     /* the stream */
    const char *replica; /* r */
    long maxlen;         /* MAXLEN ~ */
    long snapshot_ms;
    size_t queue_entries; /* queue bound */
    rp_kvev_snapshot_cb snapshot;
    void *arg;
};

/* Starts the publisher (the strings are copied) and queues `cleared`.
 * Returns it, or NULL with a message in <err> (bad address, out of
 * memory, no thread). Redis need not be up. */
struct rp_kvev *rp_kvev_start(const struct rp_kvev_config *cfg, char *err, size_t errlen);

/* Queues <op> entries for h[0..n) (RP_KVEV_HASHES per entry). Never
 * blocks on Redis; n == 0 queues nothing. */
void rp_kvev_publish(struct rp_kvev *ev, enum rp_kvev_op op, const uint64_t *h, size_t n);

/* Queues a complete snapshot of h[0..n) (one part when n == 0): every part
 * or, when the queue cannot take them all, none (their seqs are spent). */
void rp_kvev_snapshot(struct rp_kvev *ev, const uint64_t *h, size_t n);

/* Sends what is queued if Redis is reachable (up to 1 s), stops the thread,
 * logs the totals and frees <ev>. */
void rp_kvev_stop(struct rp_kvev *ev);

#endif
