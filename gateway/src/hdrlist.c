/* hdrlist — copied header lists; see hdrlist.h. */
#include "hdrlist.h"

#include <errno.h>
#include <string.h>

#include "mem.h"

void gw_hdrlist_init(struct gw_hdrlist *h)
{
    memset(h, 0, sizeof(*h));
}

void gw_hdrlist_reset(struct gw_hdrlist *h)
{
    gw_free(h->buf);
    gw_free(h->ent);
    gw_hdrlist_init(h);
}

int gw_hdrlist_add(struct gw_hdrlist *h, const void *name, size_t nlen, const void *value,
                   size_t vlen)
{
    if (nlen > UINT32_MAX / 4 || vlen > UINT32_MAX / 4 || h->len > UINT32_MAX / 2)
        return -ENOMEM;
    if (h->len + nlen + vlen > h->cap) {
        size_t cap = h->cap ? h->cap * 2 : 512;
        while (cap < h->len + nlen + vlen)
            cap *= 2;
        char *nb = gw_realloc(h->buf, cap);
        if (!nb)
            return -ENOMEM;
        h->buf = nb;
        h->cap = cap;
    }
    if (h->n == h->ncap) {
        size_t ncap = h->ncap ? h->ncap * 2 : 16;
        struct gw_hdr_ent *ne = gw_realloc(h->ent, ncap * sizeof(*ne));
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
    return 0;
}

const char *gw_hdrlist_get(const struct gw_hdrlist *h, const char *name, size_t *vlen)
{
    size_t nlen = strlen(name);
    for (size_t i = 0; i < h->n; i++) {
        const struct gw_hdr_ent *e = &h->ent[i];
        if (e->name_len == nlen && !memcmp(h->buf + e->name_off, name, nlen)) {
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
