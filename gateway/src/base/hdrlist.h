/* SPDX-License-Identifier: Apache-2.0 */
/* hdrlist — a compact copy of an HTTP/2 header list.
 *
 * nghttp2 hands header names and values to callbacks only for the duration
 * of the callback; a proxy that holds response headers until it commits (or
 * forwards request metadata later) must copy them. A list keeps all bytes in
 * one growing buffer plus an offset table, and turns into an nghttp2_nv
 * array on demand (nghttp2 copies the array at submit time, so it may live
 * on the stack). A typical gRPC header block fits the inline space, so a
 * list costs no allocation until it outgrows it. Each value is followed by
 * a NUL (not counted in its length), so values can be read as C strings.
 * Loop thread only, owned by one call.
 *
 * A header budget counts one header block as it is decoded, the way RFC 9113
 * section 6.5.2 sizes SETTINGS_MAX_HEADER_LIST_SIZE: each field costs its
 * name and value lengths plus 32 bytes. nghttp2 advertises that setting but
 * does not enforce it, and HPACK lets one byte stand for a field of up to the
 * dynamic table's size, so the receiver must count what it decodes before it
 * copies anything (the gateway does so on client and replica sessions).
 */
#ifndef INFERGW_HDRLIST_H
#define INFERGW_HDRLIST_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

struct gw_hdr_ent {
    uint32_t name_off, name_len, value_off, value_len;
};

#define GW_HDRLIST_INLINE_BYTES 384
#define GW_HDRLIST_INLINE_ENTS  12

struct gw_hdrlist {
    char *buf; /* inline_buf until it outgrows it */
    size_t len, cap;
    struct gw_hdr_ent *ent; /* inline_ent until it outgrows it */
    size_t n, ncap;
    char inline_buf[GW_HDRLIST_INLINE_BYTES];
    struct gw_hdr_ent inline_ent[GW_HDRLIST_INLINE_ENTS];
};

/* The cost RFC 9113 section 6.5.2 assigns to every field on top of its
 * name and value. */
#define GW_HDR_FIELD_OVERHEAD 32

struct gw_hdr_budget {
    uint64_t bytes; /* RFC 9113 size of the fields counted so far */
    uint32_t count; /* fields counted so far */
    uint32_t over;  /* a limit was passed in this block */
};

/* Starts counting a new header block. */
static inline void gw_hdr_budget_reset(struct gw_hdr_budget *b)
{
    b->bytes = 0;
    b->count = 0;
    b->over = 0;
}
/* Counts one field of <nlen> + <vlen> bytes. Returns 0 while the block is
 * within <max_bytes> and <max_count> fields, or -1 from the field that
 * passes either limit on (b->over stays set until the next reset; fields
 * are still counted, so the caller sees how far over the block goes). */
int gw_hdr_budget_add(struct gw_hdr_budget *b, size_t nlen, size_t vlen, uint32_t max_bytes,
                      uint32_t max_count);
/* Whether the block counted in <b> is more than twice over a limit: not a
 * client with too much metadata but HPACK amplification, where every
 * further field costs the decoder's validation for nothing. */
int gw_hdr_budget_far_over(const struct gw_hdr_budget *b, uint32_t max_bytes, uint32_t max_count);

void gw_hdrlist_init(struct gw_hdrlist *h);
void gw_hdrlist_reset(struct gw_hdrlist *h);
/* Appends a copy of name/value. Returns 0 or -ENOMEM (list unchanged). */
int gw_hdrlist_add(struct gw_hdrlist *h, const void *name, size_t nlen, const void *value,
                   size_t vlen);
/* Value (NUL-terminated) of the first header called <name>, or NULL; *vlen
 * (may be NULL) gets its length. Valid until the next add or reset. */
const char *gw_hdrlist_get(const struct gw_hdrlist *h, const char *name, size_t *vlen);
/* Fills nv[0..h->n) from the list (pointers into h, valid until the next
 * add or reset) and returns h->n. <nv> must have room for h->n entries. */
size_t gw_hdrlist_to_nv(const struct gw_hdrlist *h, nghttp2_nv *nv);

#endif
