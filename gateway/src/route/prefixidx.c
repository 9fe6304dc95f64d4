/* SPDX-License-Identifier: Apache-2.0 */
/* prefixidx — the estimation index of prefix-cache routing; see prefixidx.h. */
#include "route/prefixidx.h"

#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <xxhash.h>

#include "base/mem.h"
#include "route/prefix.h"

#define REBASE_AFTER_MS (1ull << 30)
#define HUGE_PAGE       (2u << 20)
/* Lookahead of the walks: tag lines are prefetched TAG_AHEAD levels ahead,
 * entry lines (once the tag line is in) ENTRY_AHEAD levels ahead, so the
 * cache misses of a chain's levels overlap instead of queueing. */
#define TAG_AHEAD   32
#define ENTRY_AHEAD 8

/* One chain hash of one pool: the replicas it was sent to, each with the
 * time of its last record (a mark: ms since the set's base, plus 1; 0 = an
 * empty slot). touched = the newest mark; 0 = the entry is free. */
struct entry {
    uint64_t hash;
    uint32_t pool;
    uint32_t touched;
    uint64_t rkey[GW_PIDX_WAYS];
    uint32_t mark[GW_PIDX_WAYS];
};

/* A set: one cache line of tags (a 32-bit digest of (hash, pool), never 0
 * for a used entry) and the base of its marks, then the entries. */
struct set {
    uint32_t tag[GW_PIDX_SET_WAYS];
    uint64_t base_ms;
    uint8_t pad[64 - 4 * GW_PIDX_SET_WAYS - 8];
    struct entry e[GW_PIDX_SET_WAYS];
};

_Static_assert(sizeof(struct entry) == 64, "an entry is one cache line");
_Static_assert(sizeof(struct set) == 64 * (GW_PIDX_SET_WAYS + 1), "a set is 9 cache lines");

struct gw_pidx {
    pthread_mutex_t mu;
    enum gw_pidx_mode mode;
    struct set *sets;
    size_t nsets; /* 1 .. 2^32 - 1 */
    size_t bytes; /* of sets[] */
    void *raw;    /* the allocation sets[] is in, 64 bytes more */
    size_t entries;
    uint64_t recorded, inserted, evicted, expired, lookups, hits, hit_blocks;
};

uint64_t gw_pidx_replica_key(const char *addr, size_t len)
{
    return XXH3_64bits(addr, len);
}

/* Asks for huge pages over the whole 2 MiB pages inside p[0..len) (a hint:
 * failure changes nothing). */
static void huge_pages(void *p, size_t len)
{
    uintptr_t a = ((uintptr_t)p + HUGE_PAGE - 1) & ~(uintptr_t)(HUGE_PAGE - 1);
    uintptr_t end = ((uintptr_t)p + len) & ~(uintptr_t)(HUGE_PAGE - 1);

    if (end > a)
        (void)madvise((void *)a, end - a, MADV_HUGEPAGE);
}

struct gw_pidx *gw_pidx_create(size_t max_bytes, enum gw_pidx_mode mode)
{
    struct gw_pidx *x;
    size_t nsets;

    if (max_bytes < GW_PIDX_MIN_BYTES)
        return NULL;
    /* As many sets as fit beside the structure (a set is picked by
     * multiplying, so any count works), at most 2^32 - 1. */
    nsets = (max_bytes - sizeof(*x) - 64) / sizeof(struct set);
    if (nsets > UINT32_MAX)
        nsets = UINT32_MAX;
    x = gw_calloc(1, sizeof(*x));
    if (!x)
        return NULL;
    /* calloc maps a table this large: zero pages the kernel backs as they
     * are first written. Sets start on a cache line (64 bytes spare). Huge
     * pages where the kernel offers them (madvise mode): a lookup touches a
     * random set per level, a TLB miss each on 4 KiB pages. */
    x->bytes = nsets * sizeof(struct set);
    x->raw = gw_calloc(1, x->bytes + 64);
    if (!x->raw) {
        gw_free(x);
        return NULL;
    }
    x->sets = (struct set *)(((uintptr_t)x->raw + 63) & ~(uintptr_t)63);
    huge_pages(x->sets, x->bytes);
    x->nsets = nsets;
    x->mode = mode;
    if (pthread_mutex_init(&x->mu, NULL) != 0) {
        gw_free(x->raw);
        gw_free(x);
        return NULL;
    }
    return x;
}

void gw_pidx_free(struct gw_pidx *x)
{
    if (!x)
        return;
    pthread_mutex_destroy(&x->mu);
    gw_free(x->raw);
    gw_free(x);
}

size_t gw_pidx_bytes(const struct gw_pidx *x)
{
    return sizeof(*x) + x->bytes + 64;
}

static void lock(struct gw_pidx *x)
{
    if (x->mode == GW_PIDX_SHARED)
        pthread_mutex_lock(&x->mu);
}

static void unlock(struct gw_pidx *x)
{
    if (x->mode == GW_PIDX_SHARED)
        pthread_mutex_unlock(&x->mu);
}

/* A digest of (hash, pool): the set from its low 32 bits (scaled to the
 * number of sets), the tag from its high 32 (forced non-zero). */
static uint64_t mix(uint64_t hash, uint32_t pool)
{
    uint64_t z = hash ^ ((uint64_t)pool * 0x9e3779b97f4a7c15ull);

    z = (z ^ (z >> 32)) * 0xd6e8feb86659fd93ull;
    return z ^ (z >> 32);
}

static struct set *set_of(const struct gw_pidx *x, uint64_t d)
{
    return &x->sets[((d & 0xffffffffu) * x->nsets) >> 32];
}

static void free_entry(struct gw_pidx *x, struct set *s, unsigned w)
{
    memset(&s->e[w], 0, sizeof(s->e[w]));
    s->tag[w] = 0;
    x->entries--;
}

/* Moves the set's base forward when it is REBASE_AFTER_MS behind <now>,
 * keeping only marks younger than GW_PIDX_TTL_MAX_MS; returns <now> as a
 * mark. */
static uint32_t set_now(struct gw_pidx *x, struct set *s, uint64_t now)
{
    if (now < s->base_ms) /* a clock that went back: treat as the base */
        now = s->base_ms;
    if (now - s->base_ms >= REBASE_AFTER_MS) {
        uint64_t nb = now > GW_PIDX_TTL_MAX_MS ? now - GW_PIDX_TTL_MAX_MS : 0;

        for (unsigned w = 0; w < GW_PIDX_SET_WAYS; w++) {
            struct entry *e = &s->e[w];
            uint32_t newest = 0;

            if (!e->touched)
                continue;
            for (unsigned k = 0; k < GW_PIDX_WAYS; k++) {
                uint64_t at = s->base_ms + e->mark[k] - 1;

                if (!e->mark[k] || at < nb)
                    e->mark[k] = 0;
                else
                    e->mark[k] = (uint32_t)(at - nb + 1);
                if (e->mark[k] > newest)
                    newest = e->mark[k];
            }
            e->touched = newest;
            if (!newest)
                free_entry(x, s, w);
        }
        s->base_ms = nb;
    }
    return (uint32_t)(now - s->base_ms + 1);
}

static int find(const struct set *s, uint32_t tag, uint64_t hash, uint32_t pool)
{
    for (unsigned w = 0; w < GW_PIDX_SET_WAYS; w++)
        if (s->tag[w] == tag && s->e[w].hash == hash && s->e[w].pool == pool)
            return (int)w;
    return -1;
}

/* A free way, else the least recently touched one (evicted). */
static unsigned victim(struct gw_pidx *x, struct set *s)
{
    unsigned best = 0;

    for (unsigned w = 0; w < GW_PIDX_SET_WAYS; w++) {
        if (!s->tag[w])
            return w;
        if (s->e[w].touched < s->e[best].touched)
            best = w;
    }
    x->evicted++;
    x->entries--;
    return best;
}

static void mark(struct entry *e, uint64_t rkey, uint32_t m)
{
    unsigned slot = 0;

    for (unsigned k = 0; k < GW_PIDX_WAYS; k++) {
        if (e->mark[k] && e->rkey[k] == rkey) {
            slot = k;
            break;
        }
        if (e->mark[k] < e->mark[slot]) /* empty (0) or older */
            slot = k;
    }
    e->rkey[slot] = rkey;
    e->mark[slot] = m;
    e->touched = m > e->touched ? m : e->touched;
}

/* The levels a chain of <n> hashes is recorded and looked up at: every
 * GW_PIDX_STRIDE-th (S - 1, 2S - 1, ...) and the last. Returns how many. */
static size_t levels(size_t n, uint32_t *lv)
{
    size_t k = 0;

    for (size_t i = GW_PIDX_STRIDE - 1; i < n; i += GW_PIDX_STRIDE)
        lv[k++] = (uint32_t)i;
    if (n && (k == 0 || lv[k - 1] != n - 1))
        lv[k++] = (uint32_t)(n - 1);
    return k;
}

/* The digests of those levels' hashes in d[], and the tag lines of the
 * first TAG_AHEAD prefetched (no lock needed: nothing is read yet). */
static void digests(const struct gw_pidx *x, uint32_t pool, const uint64_t *hashes,
                    const uint32_t *lv, size_t n, uint64_t *d)
{
    for (size_t i = 0; i < n; i++) {
        d[i] = mix(hashes[lv[i]], pool);
        if (i < TAG_AHEAD)
            __builtin_prefetch(set_of(x, d[i]));
    }
}

/* At level i: the tag line of level i + TAG_AHEAD, and the entry line of
 * level i + ENTRY_AHEAD where its tag matches (a tag-only guess). */
static void ahead(const struct gw_pidx *x, const uint64_t *d, size_t i, size_t n)
{
    if (i + TAG_AHEAD < n)
        __builtin_prefetch(set_of(x, d[i + TAG_AHEAD]));
    if (i + ENTRY_AHEAD < n) {
        const struct set *s = set_of(x, d[i + ENTRY_AHEAD]);
        uint32_t tag = (uint32_t)(d[i + ENTRY_AHEAD] >> 32) | 1u;
        for (unsigned w = 0; w < GW_PIDX_SET_WAYS; w++)
            if (s->tag[w] == tag) {
                __builtin_prefetch(&s->e[w], 1);
                break;
            }
    }
}

/* The entry lines of the first ENTRY_AHEAD levels (under the lock). */
static void ahead_start(const struct gw_pidx *x, const uint64_t *d, size_t n)
{
    for (size_t i = 0; i < ENTRY_AHEAD && i < n; i++) {
        const struct set *s = set_of(x, d[i]);
        uint32_t tag = (uint32_t)(d[i] >> 32) | 1u;
        for (unsigned w = 0; w < GW_PIDX_SET_WAYS; w++)
            if (s->tag[w] == tag) {
                __builtin_prefetch(&s->e[w], 1);
                break;
            }
    }
}

static void record_one(struct gw_pidx *x, uint32_t pool, uint64_t hash, uint64_t d, uint64_t rkey,
                       uint64_t now)
{
    struct set *s = set_of(x, d);
    uint32_t tag = (uint32_t)(d >> 32) | 1u;
    uint32_t m = set_now(x, s, now);
    int w = find(s, tag, hash, pool);

    if (w < 0) {
        w = (int)victim(x, s);
        memset(&s->e[w], 0, sizeof(s->e[w]));
        s->e[w].hash = hash;
        s->e[w].pool = pool;
        s->tag[w] = tag;
        x->entries++;
        x->inserted++;
    }
    mark(&s->e[w], rkey, m);
}

void gw_pidx_record(struct gw_pidx *x, uint32_t pool, const uint64_t *hashes, size_t n,
                    uint64_t rkey, uint64_t now_ms)
{
    uint64_t d[GW_PREFIX_BLOCKS_MAX];
    uint32_t lv[GW_PREFIX_BLOCKS_MAX];
    size_t k;

    if (n > GW_PREFIX_BLOCKS_MAX)
        n = GW_PREFIX_BLOCKS_MAX;
    k = levels(n, lv);
    digests(x, pool, hashes, lv, k, d);
    lock(x);
    ahead_start(x, d, k);
    for (size_t i = 0; i < k; i++) {
        ahead(x, d, i, k);
        record_one(x, pool, hashes[lv[i]], d[i], rkey, now_ms);
    }
    x->recorded += k;
    unlock(x);
}

/* Candidate lookup: a linear scan for a few, else an open-addressed table
 * of candidate positions (+1; 0 = empty) on the caller's stack. */
struct cmap {
    const uint64_t *keys;
    size_t n;
    uint16_t *slot;
    size_t mask;
};

static void cmap_init(struct cmap *c, const uint64_t *keys, size_t n, uint16_t *slots)
{
    c->keys = keys;
    c->n = n;
    c->slot = NULL;
    c->mask = 0;
    if (n <= 8)
        return;
    size_t size = 16;
    while (size < 2 * n)
        size *= 2;
    c->slot = slots;
    c->mask = size - 1;
    memset(slots, 0, size * sizeof(*slots));
    for (size_t j = 0; j < n; j++) {
        size_t h = (size_t)(keys[j] ^ (keys[j] >> 29)) & c->mask;
        while (c->slot[h])
            h = (h + 1) & c->mask;
        c->slot[h] = (uint16_t)(j + 1);
    }
}

/* Sets depth[j] = level for every candidate j with key <k>; returns how
 * many. */
static unsigned cmap_hit(const struct cmap *c, uint64_t k, uint32_t *depth, uint32_t level)
{
    unsigned hits = 0;

    if (!c->slot) {
        for (size_t j = 0; j < c->n; j++)
            if (c->keys[j] == k) {
                depth[j] = level;
                hits++;
            }
        return hits;
    }
    for (size_t h = (size_t)(k ^ (k >> 29)) & c->mask; c->slot[h]; h = (h + 1) & c->mask) {
        size_t j = c->slot[h] - 1u;
        if (c->keys[j] == k) {
            depth[j] = level;
            hits++;
        }
    }
    return hits;
}

/* Marks the candidates found fresh in the entry of hash; returns how many
 * candidates matched (-1: no entry or none of its marks fresh). */
static int match_one(struct gw_pidx *x, uint32_t pool, uint64_t hash, uint64_t d, uint64_t now,
                     uint32_t ttl, const struct cmap *c, uint32_t *depth, uint32_t level)
{
    struct set *s = set_of(x, d);
    uint32_t tag = (uint32_t)(d >> 32) | 1u;
    uint32_t m = set_now(x, s, now);
    int w = find(s, tag, hash, pool);
    int fresh = 0, hits = 0;

    if (w < 0)
        return -1;
    struct entry *e = &s->e[w];
    for (unsigned k = 0; k < GW_PIDX_WAYS; k++) {
        if (!e->mark[k] || (m > e->mark[k] && m - e->mark[k] >= ttl))
            continue; /* (a mark ahead of now: the clock went back; fresh) */
        fresh = 1;
        hits += (int)cmap_hit(c, e->rkey[k], depth, level);
    }
    if (!fresh) {
        free_entry(x, s, (unsigned)w);
        x->expired++;
        return -1;
    }
    return hits;
}

uint32_t gw_pidx_longest_match(struct gw_pidx *x, uint32_t pool, const uint64_t *hashes, size_t n,
                               uint64_t now_ms, uint32_t ttl_ms, const uint64_t *cands,
                               size_t ncand, uint32_t *depth)
{
    uint16_t slots[2 * GW_PIDX_MAX_CANDS];
    uint64_t d[GW_PREFIX_BLOCKS_MAX];
    uint32_t lv[GW_PREFIX_BLOCKS_MAX];
    struct cmap c;
    uint32_t best = 0;
    size_t k, j;

    for (size_t i = 0; i < ncand; i++)
        depth[i] = 0;
    if (ncand > GW_PIDX_MAX_CANDS)
        ncand = GW_PIDX_MAX_CANDS;
    if (n > GW_PREFIX_BLOCKS_MAX)
        n = GW_PREFIX_BLOCKS_MAX;
    if (ttl_ms > GW_PIDX_TTL_MAX_MS)
        ttl_ms = GW_PIDX_TTL_MAX_MS;
    k = ncand ? levels(n, lv) : 0;
    digests(x, pool, hashes, lv, k, d);
    cmap_init(&c, cands, ncand, slots);
    lock(x);
    x->lookups++;
    ahead_start(x, d, k);
    for (j = 0; j < k; j++) {
        ahead(x, d, j, k);
        if (match_one(x, pool, hashes[lv[j]], d[j], now_ms, ttl_ms, &c, depth, lv[j] + 1) <= 0)
            break;
        best = lv[j] + 1;
    }
    /* Stopped at level lv[j]: the levels between the last hit and it, from
     * the deepest down, hold the last level of shorter chains. */
    for (size_t i = j < k ? lv[j] : 0; i-- > best;)
        if (match_one(x, pool, hashes[i], mix(hashes[i], pool), now_ms, ttl_ms, &c, depth,
                      (uint32_t)i + 1) > 0) {
            best = (uint32_t)i + 1;
            break;
        }
    if (best) {
        x->hits++;
        x->hit_blocks += best;
    }
    unlock(x);
    return best;
}

void gw_pidx_drop_pool(struct gw_pidx *x, uint32_t pool)
{
    lock(x);
    for (size_t i = 0; i < x->nsets; i++)
        for (unsigned w = 0; w < GW_PIDX_SET_WAYS; w++)
            if (x->sets[i].tag[w] && x->sets[i].e[w].pool == pool)
                free_entry(x, &x->sets[i], w);
    unlock(x);
}

void gw_pidx_stats(struct gw_pidx *x, struct gw_pidx_stats *out)
{
    lock(x);
    out->bytes = gw_pidx_bytes(x);
    out->capacity = x->nsets * GW_PIDX_SET_WAYS;
    out->entries = x->entries;
    out->recorded = x->recorded;
    out->inserted = x->inserted;
    out->evicted = x->evicted;
    out->expired = x->expired;
    out->lookups = x->lookups;
    out->hits = x->hits;
    out->hit_blocks = x->hit_blocks;
    unlock(x);
}
