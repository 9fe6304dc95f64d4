/* ring — consistent hashing over a pool's replicas (pure logic, no I/O).
 *
 * Each replica "host:port" owns <weight> virtual nodes; vnode i sits at the
 * 32-bit token gw_hash32("<host:port>#<i>"). gw_hash32 is the first four bytes
 * of SHA-256, read big-endian: written once here and pinned by fixed
 * input/output tests, because every gateway, infergw-ctl, and any other
 * writer of the Redis ring must compute the same tokens. A key maps to
 * gw_hash32(key); lookup finds the first vnode clockwise (token >= point,
 * wrapping), by binary search. Equal tokens are ordered by replica address so
 * the order never depends on insertion.
 *
 * A ring is immutable once built and may be shared by threads read-only.
 */
#ifndef INFERGW_RING_H
#define INFERGW_RING_H

#include <stddef.h>
#include <stdint.h>

#define GW_RING_DEFAULT_VNODES 100
#define GW_RING_MAX_VNODES     10000 /* per replica; keeps a bad weight from eating memory */
#define GW_ENOREPLICA          (-2)

/* First four bytes of SHA-256(<data>), big-endian. Thread-safe. Aborts the
 * process if OpenSSL cannot compute SHA-256 (a broken installation), since a
 * wrong hash would silently send keys to different replicas than every
 * other writer. */
uint32_t gw_hash32(const void *data, size_t len);

struct gw_ring_point {
    uint32_t token;
    uint32_t replica; /* index into gw_ring.replicas */
};

struct gw_ring {
    struct gw_ring_point *points; /* sorted by (token, replica address) */
    size_t npoints;
    char **replicas; /* "host:port", owned */
    uint32_t *weights;
    size_t nreplicas;
};

/* Builds a ring of <n> replicas with the given weights (vnode counts; NULL =
 * GW_RING_DEFAULT_VNODES each; weight 0 = the replica is on no point).
 * Replica indexes in the ring are the positions in <addrs>, which is copied.
 * Duplicated addresses are rejected. Returns 0 and fills *out, or -EINVAL
 * (n == 0, n over INT32_MAX, duplicate, NULL or empty address, weight over
 * GW_RING_MAX_VNODES) / -ENOMEM; *out untouched on failure.
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
 * replica moves no other key. Returns the replica index, or GW_ENOREPLICA. */
int gw_ring_pick(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible, void *ctx,
                 const uint32_t *exclude, size_t nexclude);

/* Share of the 2^32 hash space that replica <idx> owns (0..1): the keys
 * gw_ring_pick() sends to it when every replica is eligible. 0 for an index
 * out of range or a replica of weight 0. */
double gw_ring_share(const struct gw_ring *r, uint32_t idx);

#endif
