/* SPDX-License-Identifier: Apache-2.0 */
/* hdrlist — copied header lists; see hdrlist.h. */
#include "base/hdrlist.h"

#include <errno.h>
#include <string.h>

#include "base/mem.h"

int gw_hdr_budget_add(struct gw_hdr_budget *b, size_t nlen, size_t vlen, uint32_t max_bytes,
                      uint32_t max_count)
{
    /* Field lengths come from nghttp2 (bounded by its buffers); saturate
     * anyway so no sum wraps. */
    uint64_t cost = (uint64_t)nlen + (uint64_t)vlen + GW_HDR_FIELD_OVERHEAD;
    b->bytes = cost > UINT64_MAX - b->bytes ? UINT64_MAX : b->bytes + cost;
    if (b->count < UINT32_MAX)
        b->count++;
    if (b->over || b->bytes > max_bytes || b->count > max_count) {
        b->over = 1;
        return -1;
    }
    return 0;
}

int gw_hdr_budget_far_over(const struct gw_hdr_budget *b, uint32_t max_bytes, uint32_t max_count)
{
    return b->bytes > 2 * (uint64_t)max_bytes || b->count > 2 * (uint64_t)max_count;
}

void gw_hdrlist_init(struct gw_hdrlist *h)
{
    h->buf = h->inline_buf;
    h->cap = sizeof(h->inline_buf);
    h->len = 0;
    h->ent = h->inline_ent;
    h->ncap = GW_HDRLIST_INLINE_ENTS;
    h->n = 0;
}

void gw_hdrlist_reset(struct gw_hdrlist *h)
{
    if (h->buf != h->inline_buf)
        gw_free(h->buf);
    if (h->ent != h->inline_ent)
        gw_free(h->ent);
    gw_hdrlist_init(h);
}

/* Grows an inline-or-heap array to <cap> elements of <size> bytes. */
static void *grow(void *cur, const void *inline_store, size_t used, size_t cap, size_t size)
{
    if (cur != inline_store)
        return gw_realloc(cur, cap * size);
    void *p = gw_malloc(cap * size);
    if (p)
        memcpy(p, cur, used * size);
    return p;
}

int gw_hdrlist_add(struct gw_hdrlist *h, const void *name, size_t nlen, const void *value,
                   size_t vlen)
{
    if (nlen > UINT32_MAX / 4 || vlen > UINT32_MAX / 4 || h->len > UINT32_MAX / 2)
        return -ENOMEM;
    size_t need = h->len + nlen + vlen + 1;
    if (need > h->cap) {
        size_t cap = h->cap * 2;
        while (cap < need)
            cap *= 2;
        char *nb = grow(h->buf, h->inline_buf, h->len, cap, 1);
        if (!nb)
            return -ENOMEM;
        h->buf = nb;
        h->cap = cap;
    }
    if (h->n == h->ncap) {
        size_t ncap = h->ncap * 2;
        struct gw_hdr_ent *ne = grow(h->ent, h->inline_ent, h->n, ncap, sizeof(*ne));
        if (!ne)
            return -ENOMEM;
        h->ent = ne;
        h->ncap = ncap;
    }
    struct gw_hdr_ent *e = &h->ent[h->n++];
    e->name_off = (uint32_t)h->len;
    e->name_len = (uint32_t)nlen;
    memcpy(h->buf + h->len, name, nlen);
    h->len += nlen;
    e->value_off = (uint32_t)h->len;
    e->value_len = (uint32_t)vlen;
    if (vlen)
        memcpy(h->buf + h->len, value, vlen);
    h->len += vlen;
    h->buf[h->len++] = '\0';
    return 0;
}

const char *gw_hdrlist_get(const struct gw_hdrlist *h, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < h->n; i++) {
        const struct gw_hdr_ent *e = &h->ent[i];
        if (e->name_len == nlen && !memcmp(h->buf + e->name_off, name, nlen)) {
            if (vlen)
                *vlen = e->value_len;
            return h->buf + e->value_off;
        }
    }
    return NULL;
}

size_t gw_hdrlist_to_nv(const struct gw_hdrlist *h, nghttp2_nv *nv)
{
    for (size_t i = 0; i < h->n; i++) {
        const struct gw_hdr_ent *e = &h->ent[i];
        nv[i].name = (uint8_t *)h->buf + e->name_off;
        nv[i].namelen = e->name_len;
        nv[i].value = (uint8_t *)h->buf + e->value_off;
        nv[i].valuelen = e->value_len;
        nv[i].flags = NGHTTP2_NV_FLAG_NONE;
    }
    return h->n;
}
