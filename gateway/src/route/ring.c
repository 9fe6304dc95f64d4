/* SPDX-License-Identifier: Apache-2.0 */
/* ring — consistent hashing over a pool's replicas (pure logic, no I/O).
 *
 * Tokens come from gw_hash32, SHA-256 through OpenSSL's EVP interface; key
 * points from gw_key_hash32, XXH3-64 through libxxhash (a few ns for a short
 * key, against ~150 ns for SHA-256, which the ring only needs at build). The
 * SHA-256 implementation is fetched once (EVP_MD_fetch under pthread_once)
 * instead of through EVP_sha256() on each call, because OpenSSL 3 would
 * otherwise look the algorithm up in its locked provider store for every
 * key, on every worker. Points are sorted by (token, replica address): the
 * build ranks the addresses once and sorts on (token, rank), so two gateways
 * given the same replicas in any order produce the same sequence. A key
 * belongs to the first point at or after it, so among points with equal
 * tokens the first one in that order owns the arc; gw_ring_share uses the
 * same rule. Rings of GW_RING_INDEX_MIN points or more also get a lookup
 * index on the top bits of the token, so a lookup searches a handful of
 * points (one or two cache lines) instead of the whole array. Every pick is one clockwise walk
 * (ring_walk) that remembers the replicas it has already turned down in a bitmap on the stack
 * (rings hold at most GW_RING_MAX_REPLICAS replicas), so a pool whose replicas are mostly down
 * costs one eligibility call per replica, not one per vnode, and the walk stops once every replica
 * has been turned down. The bounded-load pick first takes a census of the eligible replicas (it
 * needs their number and their calls in flight for the cap) and hands the walk its answers, so the
 * predicate is asked once per replica and the walk and the census agree even
 * if health changes meanwhile on another thread. gw_ring_pick_capped skips
 * the census: its caller computes the cap from totals it keeps (struct
 * gw_ring_tally), and the walk then asks the predicate itself.
 */
#include "route/ring.h"
#include "base/mem.h"

#include <errno.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/evp.h>
#include <xxhash.h>

/* --- the pinned hash -------------------------------------------------------- */

static EVP_MD *sha256_md;
static pthread_once_t sha256_once = PTHREAD_ONCE_INIT;

static void sha256_fetch(void)
{
    sha256_md = EVP_MD_fetch(NULL, "SHA256", NULL);
}

uint32_t gw_hash32(const void *data, size_t len)
{
    unsigned char md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    const EVP_MD *alg;

    pthread_once(&sha256_once, sha256_fetch);
    alg = sha256_md ? sha256_md : EVP_sha256();
    if (EVP_Digest(data, len, md, &mdlen, alg, NULL) != 1 || mdlen < 4)
        abort();
    return (uint32_t)md[0] << 24 | (uint32_t)md[1] << 16 | (uint32_t)md[2] << 8 | (uint32_t)md[3];
}

uint32_t gw_key_hash32(const void *data, size_t len)
{
    return (uint32_t)(XXH3_64bits(data, len) >> 32);
}

/* --- build -------------------------------------------------------------------- */

struct addr_rank {
    const char *addr;
    uint32_t idx;
};

static int cmp_addr_rank(const void *a, const void *b)
{
    const struct addr_rank *x = a, *y = b;

    return strcmp(x->addr, y->addr);
}

/* While sorting, point.replica holds the replica's address rank, so the
 * order is (token, address) without needing the addresses in the
 * comparator. */
static int cmp_point_by_rank(const void *a, const void *b)
{
    const struct gw_ring_point *x = a, *y = b;

    if (x->token != y->token)
        return x->token < y->token ? -1 : 1;
    if (x->replica != y->replica)
        return x->replica < y->replica ? -1 : 1;
    return 0;
}

/* The lookup index of a built ring (see struct gw_ring): 2^bits slots with
 * 2^bits <= npoints / 4, at most 2^24. Returns 0, or -ENOMEM. */
static int ring_index_build(struct gw_ring *r)
{
    unsigned bits = 0;
    size_t nslots, i = 0;

    if (r->npoints < GW_RING_INDEX_MIN)
        return 0;
    while (bits < 24 && ((size_t)2 << bits) <= r->npoints / 4)
        bits++;
    nslots = (size_t)1 << bits;
    r->index = gw_malloc((nslots + 1) * sizeof(*r->index));
    if (!r->index)
        return -ENOMEM;
    r->index_shift = 32 - bits;
    for (size_t b = 0; b < nslots; b++) {
        uint64_t start = (uint64_t)b << r->index_shift;

        while (i < r->npoints && r->points[i].token < start)
            i++;
        r->index[b] = (uint32_t)i;
    }
    r->index[nslots] = (uint32_t)r->npoints;
    return 0;
}

int gw_ring_build(struct gw_ring *out, const char *const *addrs, const uint32_t *weights, size_t n)
{
    struct gw_ring r = {0};
    struct addr_rank *ranks = NULL;
    uint32_t *rank_to_idx = NULL;
    char *label = NULL;
    size_t i, maxlen = 0, np = 0;
    int rc;

    if (n == 0 || n > GW_RING_MAX_REPLICAS || !addrs)
        return -EINVAL;
    for (i = 0; i < n; i++) {
        uint32_t w = weights ? weights[i] : GW_RING_DEFAULT_VNODES;
        size_t len;

        if (!addrs[i] || !addrs[i][0] || w > GW_RING_MAX_VNODES)
            return -EINVAL;
        len = strlen(addrs[i]);
        if (len > maxlen)
            maxlen = len;
        np += w;
    }

    rc = -ENOMEM;
    ranks = gw_malloc(n * sizeof(*ranks));
    if (!ranks)
        goto out;
    for (i = 0; i < n; i++) {
        ranks[i].addr = addrs[i];
        ranks[i].idx = (uint32_t)i;
    }
    qsort(ranks, n, sizeof(*ranks), cmp_addr_rank);
    for (i = 1; i < n; i++) {
        if (strcmp(ranks[i - 1].addr, ranks[i].addr) == 0) {
            rc = -EINVAL;
            goto out;
        }
    }

    rank_to_idx = gw_malloc(n * sizeof(*rank_to_idx));
    r.replicas = gw_calloc(n, sizeof(*r.replicas));
    r.weights = gw_malloc(n * sizeof(*r.weights));
    /* "<addr>#<vnode>": '#', up to 10 digits, NUL. */
    label = gw_malloc(maxlen + 12);
    if (!rank_to_idx || !r.replicas || !r.weights || !label)
        goto out;
    r.nreplicas = n;
    if (np) {
        r.points = gw_malloc(np * sizeof(*r.points));
        if (!r.points)
            goto out;
    }

    for (i = 0; i < n; i++) {
        rank_to_idx[i] = ranks[i].idx;
        r.weights[i] = weights ? weights[i] : GW_RING_DEFAULT_VNODES;
        r.replicas[i] = gw_strdup(addrs[i]);
        if (!r.replicas[i])
            goto out;
    }
    for (i = 0; i < n; i++) {
        uint32_t rank = (uint32_t)i, idx = ranks[i].idx;

        for (uint32_t v = 0; v < r.weights[idx]; v++) {
            int len = snprintf(label, maxlen + 12, "%s#%u", addrs[idx], v);

            r.points[r.npoints].token = gw_hash32(label, (size_t)len);
            r.points[r.npoints].replica = rank;
            r.npoints++;
        }
    }
    if (r.npoints) /* all weights 0: no array, and qsort must not get NULL */
        qsort(r.points, r.npoints, sizeof(*r.points), cmp_point_by_rank);
    for (i = 0; i < r.npoints; i++)
        r.points[i].replica = rank_to_idx[r.points[i].replica];
    if (ring_index_build(&r) < 0)
        goto out;

    *out = r;
    rc = 0;
out:
    if (rc != 0)
        gw_ring_free(&r);
    gw_free(label);
    gw_free(rank_to_idx);
    gw_free(ranks);
    return rc;
}

void gw_ring_free(struct gw_ring *r)
{
    if (r->replicas)
        for (size_t i = 0; i < r->nreplicas; i++)
            gw_free(r->replicas[i]);
    gw_free(r->replicas);
    gw_free(r->weights);
    gw_free(r->points);
    gw_free(r->index);
    memset(r, 0, sizeof(*r));
}

/* --- lookup ------------------------------------------------------------------- */

/* Index of the first point with token >= <point>, or npoints when none.
 * With a lookup index, the answer lies between the first point of <point>'s
 * slot and the first point of the next slot: every point before the slot
 * is below <point>, every point after it above. */
static size_t ring_lower_bound(const struct gw_ring *r, uint32_t point)
{
    size_t lo = 0, hi = r->npoints;

    if (r->index) {
        size_t b = point >> r->index_shift;

        lo = r->index[b];
        hi = r->index[b + 1];
    }

    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;

        if (r->points[mid].token < point)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* One bit per ring replica index. */
#define BITMAP_WORDS ((GW_RING_MAX_REPLICAS + 63) / 64)

static inline int bit_get(const uint64_t *map, uint32_t idx)
{
    return (int)(map[idx / 64] >> (idx % 64) & 1);
}

static inline void bit_set(uint64_t *map, uint32_t idx)
{
    map[idx / 64] |= 1ull << (idx % 64);
}

static int is_excluded(uint32_t idx, const uint32_t *exclude, size_t nexclude)
{
    for (size_t e = 0; e < nexclude; e++)
        if (exclude[e] == idx)
            return 1;
    return 0;
}

/* The clockwise walk behind every pick. Eligibility comes from <census>
 * (a bitmap of eligible replicas) when given, else from <eligible>, asked at
 * most once per replica. Returns the first eligible, non-excluded replica
 * whose load stays within <cap> (<inflight> NULL = no load check); failing
 * that, the first eligible non-excluded replica met; failing that,
 * GW_ENOREPLICA. Stops as soon as <nlive> distinct replicas have been turned
 * down: every replica that is on a point has been seen. */
static int ring_walk(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible,
                     void *ctx, const uint64_t *census, const uint32_t *exclude, size_t nexclude,
                     const uint32_t *inflight, uint64_t cap, size_t nlive)
{
    uint64_t seen[BITMAP_WORDS];
    size_t start, k, nseen = 0;
    int fallback = GW_ENOREPLICA;

    /* Rings come from gw_ring_build, which enforces the maximum; the check
     * keeps a hand-made ring from writing past the bitmap. */
    if (r->npoints == 0 || r->nreplicas > GW_RING_MAX_REPLICAS)
        return GW_ENOREPLICA;
    memset(seen, 0, (r->nreplicas + 63) / 64 * sizeof(seen[0]));
    start = ring_lower_bound(r, point);
    for (k = 0; k < r->npoints; k++) {
        size_t at = start + k < r->npoints ? start + k : start + k - r->npoints;
        uint32_t idx = r->points[at].replica;

        if (bit_get(seen, idx))
            continue;
        bit_set(seen, idx);
        nseen++;
        if (!is_excluded(idx, exclude, nexclude) &&
            (census ? bit_get(census, idx) : !eligible || eligible(idx, ctx))) {
            if (!inflight || (uint64_t)inflight[idx] + 1 <= cap)
                return (int)idx;
            if (fallback == GW_ENOREPLICA)
                fallback = (int)idx; /* over the cap: only if all others are too */
        }
        if (nseen == nlive)
            break;
    }
    return fallback;
}

int gw_ring_pick(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible, void *ctx,
                 const uint32_t *exclude, size_t nexclude)
{
    /* nlive = nreplicas is an upper bound: with weight-0 replicas the walk
     * simply ends at the last point. */
    return ring_walk(r, point, eligible, ctx, NULL, exclude, nexclude, NULL, UINT64_MAX,
                     r->nreplicas);
}

uint64_t gw_ring_load_cap(uint64_t total_inflight, size_t n_eligible, double balance_factor)
{
    double cap;
    uint64_t whole;

    if (!(balance_factor > 0) || n_eligible == 0)
        return UINT64_MAX;
    cap = balance_factor * ((double)total_inflight + 1.0) / (double)n_eligible;
    /* Balance factors are decimals (1.1) that binary floating point holds a
     * hair off, so 1.1 x 100 / 10 comes out as 11.000000000000002; scaling
     * down by 1e-12 before rounding up keeps it 11. Below 10,000 calls per
     * replica the shift is under 1e-8, while a value that is truly above a
     * whole number is so by at least 1 / (n_eligible x 1000) = 2.4e-7 for a
     * factor of up to three decimals: no true fraction is rounded down. */
    cap *= 1.0 - 1e-12;
    if (cap >= 18446744073709549568.0) /* the largest double below 2^64 */
        return UINT64_MAX;
    whole = (uint64_t)cap; /* rounding up by hand keeps ring.c free of libm */
    return (double)whole < cap ? whole + 1 : whole;
}

uint64_t gw_ring_load_cap_floor(uint64_t total_inflight, size_t n_eligible, double balance_factor)
{
    uint64_t cap = gw_ring_load_cap(total_inflight, n_eligible, balance_factor);

    return cap < GW_RING_CAP_FLOOR ? GW_RING_CAP_FLOOR : cap;
}

int gw_ring_pick_capped(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible,
                        void *ctx, const uint32_t *exclude, size_t nexclude,
                        const uint32_t *inflight, uint64_t cap)
{
    return ring_walk(r, point, eligible, ctx, NULL, exclude, nexclude, inflight, cap, r->nreplicas);
}

int gw_ring_pick_bounded(const struct gw_ring *r, uint32_t point, gw_ring_eligible_fn eligible,
                         void *ctx, const uint32_t *exclude, size_t nexclude,
                         const uint32_t *inflight, double balance_factor)
{
    uint64_t census[BITMAP_WORDS], total = 0;
    size_t i, nlive = 0, neligible = 0;

    if (!(balance_factor > 0) || !inflight)
        return gw_ring_pick(r, point, eligible, ctx, exclude, nexclude);
    if (r->npoints == 0 || r->nreplicas > GW_RING_MAX_REPLICAS)
        return GW_ENOREPLICA;
    memset(census, 0, (r->nreplicas + 63) / 64 * sizeof(census[0]));
    for (i = 0; i < r->nreplicas; i++) {
        if (r->weights[i] == 0) /* on no point: can take no call, counts for nothing */
            continue;
        nlive++;
        if (eligible && !eligible((uint32_t)i, ctx))
            continue;
        bit_set(census, (uint32_t)i);
        neligible++;
        total += inflight[i];
    }
    if (neligible == 0)
        return GW_ENOREPLICA;
    return ring_walk(r, point, eligible, ctx, census, exclude, nexclude, inflight,
                     gw_ring_load_cap(total, neligible, balance_factor), nlive);
}

void gw_ring_tally_census(struct gw_ring_tally *t, const struct gw_ring *r,
                          gw_ring_eligible_fn eligible, void *ctx, const uint32_t *inflight)
{
    t->n_eligible = 0;
    t->inflight = 0;
    for (size_t i = 0; i < r->nreplicas; i++) {
        if (r->weights[i] == 0 || (eligible && !eligible((uint32_t)i, ctx)))
            continue;
        t->n_eligible++;
        t->inflight += inflight ? inflight[i] : 0;
    }
}

double gw_ring_share(const struct gw_ring *r, uint32_t idx)
{
    uint64_t owned = 0;
    size_t i;

    if (idx >= r->nreplicas || r->npoints == 0)
        return 0.0;
    for (i = 0; i < r->npoints; i++) {
        uint64_t prev, arc;

        if (r->points[i].replica != idx)
            continue;
        /* Point i owns (previous token, its token]; the first point also
         * owns the wrap-around above the last token. */
        prev = i ? r->points[i - 1].token : r->points[r->npoints - 1].token;
        arc = i ? (uint64_t)r->points[i].token - prev
                : (uint64_t)r->points[i].token + (1ull << 32) - prev;
        owned += arc;
    }
    return (double)owned / 4294967296.0;
}

void gw_ring_shares(const struct gw_ring *r, double *out)
{
    for (size_t j = 0; j < r->nreplicas; j++)
        out[j] = 0.0;
    for (size_t i = 0; i < r->npoints; i++) {
        /* As gw_ring_share: point i owns (previous token, its token]. */
        uint64_t prev = i ? r->points[i - 1].token : r->points[r->npoints - 1].token;
        uint64_t arc = i ? (uint64_t)r->points[i].token - prev
                         : (uint64_t)r->points[i].token + (1ull << 32) - prev;
        if (r->points[i].replica < r->nreplicas)
            out[r->points[i].replica] += (double)arc; /* whole numbers below 2^33: exact */
    }
    for (size_t j = 0; j < r->nreplicas; j++)
        out[j] /= 4294967296.0;
}
