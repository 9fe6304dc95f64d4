/* SPDX-License-Identifier: Apache-2.0 */
/* kvcache — the simulated KV cache (see kvcache.h). */
#include "kvcache.h"

#include <stdlib.h>

static uint32_t home(const struct rp_kvcache *c, uint64_t h)
{
    h ^= h >> 33;
    h *= 0xff51afd7ed558ccdull;
    h ^= h >> 33;
    return (uint32_t)h & c->mask;
}

/* The table slot holding <h>, or the empty slot where it would go. */
static uint32_t find_slot(const struct rp_kvcache *c, uint64_t h)
{
    uint32_t i = home(c, h);
    while (c->table[i] >= 0 && c->nodes[c->table[i]].h != h)
        i = (i + 1) & c->mask;
    return i;
}

int rp_kvcache_init(struct rp_kvcache *c, uint32_t capacity)
{
    uint32_t size = 2;

    c->nodes = NULL;
    c->table = NULL;
    if (capacity < 1 || capacity > RP_KVCACHE_MAX)
        return -1;
    while (size < 2 * capacity)
        size <<= 1;
    c->nodes = calloc(capacity, sizeof(*c->nodes));
    c->table = malloc(size * sizeof(*c->table));
    if (!c->nodes || !c->table) {
        rp_kvcache_free(c);
        return -1;
    }
    for (uint32_t i = 0; i < size; i++)
        c->table[i] = -1;
    for (uint32_t i = 0; i < capacity; i++)
        c->nodes[i].next = i + 1 < capacity ? (int32_t)(i + 1) : -1;
    c->capacity = capacity;
    c->mask = size - 1;
    c->used = 0;
    c->head = c->tail = -1;
    c->free = 0;
    return 0;
}

void rp_kvcache_free(struct rp_kvcache *c)
{
    free(c->nodes);
    free(c->table);
    c->nodes = NULL;
    c->table = NULL;
}

static void unlink_node(struct rp_kvcache *c, int32_t i)
{
    struct rp_kvnode *n = &c->nodes[i];
    if (n->prev >= 0)
        c->nodes[n->prev].next = n->next;
    else
        c->head = n->next;
    if (n->next >= 0)
        c->nodes[n->next].prev = n->prev;
    else
        c->tail = n->prev;
}

static void push_head(struct rp_kvcache *c, int32_t i)
{
    c->nodes[i].prev = -1;
    c->nodes[i].next = c->head;
    if (c->head >= 0)
        c->nodes[c->head].prev = i;
    c->head = i;
    if (c->tail < 0)
        c->tail = i;
}

/* Removes table slot <i> (backward-shift deletion). */
static void table_delete(struct rp_kvcache *c, uint32_t i)
{
    uint32_t j = i;
    for (;;) {
        j = (j + 1) & c->mask;
        if (c->table[j] < 0)
            break;
        uint32_t k = home(c, c->nodes[c->table[j]].h);
        /* Entry j may move to i unless its home lies cyclically in (i, j]. */
        int stays = i <= j ? (i < k && k <= j) : (i < k || k <= j);
        if (!stays) {
            c->table[i] = c->table[j];
            i = j;
        }
    }
    c->table[i] = -1;
}

/* Evicts the least recently used node; returns its hash. */
static uint64_t evict_lru(struct rp_kvcache *c)
{
    int32_t i = c->tail;
    uint64_t h = c->nodes[i].h;
    unlink_node(c, i);
    table_delete(c, find_slot(c, h));
    c->nodes[i].next = c->free;
    c->free = i;
    c->used--;
    return h;
}

size_t rp_kvcache_hit(const struct rp_kvcache *c, const uint64_t *h, size_t n)
{
    size_t k = 0;
    while (k < n && c->table[find_slot(c, h[k])] >= 0)
        k++;
    return k;
}

/* Moves present <h> to the head; 0, or -1 when absent. */
static int touch(struct rp_kvcache *c, uint64_t h)
{
    int32_t i = c->table[find_slot(c, h)];
    if (i < 0)
        return -1;
    unlink_node(c, i);
    push_head(c, i);
    return 0;
}

void rp_kvcache_store(struct rp_kvcache *c, const uint64_t *h, size_t n, uint64_t *stored,
                      size_t *nstored, uint64_t *evicted, size_t *nevicted)
{
    *nstored = *nevicted = 0;
    if (n > c->capacity)
        n = c->capacity;
    /* The present blocks first, so that inserting the missing ones (at most
     * capacity - present of them) never evicts one of this prompt's. */
    for (size_t k = n; k-- > 0;)
        touch(c, h[k]);
    for (size_t k = n; k-- > 0;) {
        uint32_t slot = find_slot(c, h[k]);
        if (c->table[slot] >= 0)
            continue;
        if (c->used == c->capacity) {
            evicted[(*nevicted)++] = evict_lru(c);
            slot = find_slot(c, h[k]);
        }
        int32_t i = c->free;
        c->free = c->nodes[i].next;
        c->nodes[i].h = h[k];
        c->table[slot] = i;
        push_head(c, i);
        c->used++;
        stored[(*nstored)++] = h[k];
    }
    for (size_t k = n; k-- > 0;)
        touch(c, h[k]);
}

size_t rp_kvcache_list(const struct rp_kvcache *c, uint64_t *out)
{
    size_t n = 0;
    for (int32_t i = c->head; i >= 0; i = c->nodes[i].next)
        out[n++] = c->nodes[i].h;
    return n;
}
