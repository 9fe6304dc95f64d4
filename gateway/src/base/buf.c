/* SPDX-License-Identifier: Apache-2.0 */
/* buf — chunked byte queue; see buf.h. */
#include "base/buf.h"

#include <errno.h>
#include <string.h>

#include "base/mem.h"

struct gw_buf_chunk {
    struct gw_buf_chunk *next;
    size_t len; /* bytes written into data */
    size_t cap;
    uint8_t data[];
};

/* Chunks start small (most gRPC messages are) and double with each new
 * chunk of a queue up to GW_BUF_CHUNK, so a 100-byte call costs a 256-byte
 * allocation and a 12 MiB one mostly 16 KiB chunks. */
#define GW_BUF_MIN 256

static size_t next_cap(size_t want, const struct gw_buf_chunk *prev)
{
    size_t cap = prev && prev->cap * 2 > want ? prev->cap * 2 : want;
    if (cap < GW_BUF_MIN)
        cap = GW_BUF_MIN;
    return cap > GW_BUF_CHUNK ? GW_BUF_CHUNK : cap;
}

void gw_bufq_init(struct gw_bufq *q)
{
    memset(q, 0, sizeof(*q));
}

void gw_bufq_reset(struct gw_bufq *q)
{
    struct gw_buf_chunk *c = q->head;
    while (c) {
        struct gw_buf_chunk *next = c->next;
        gw_free(c);
        c = next;
    }
    gw_bufq_init(q);
}

int gw_bufq_append(struct gw_bufq *q, const void *p, size_t n)
{
    const uint8_t *src = p;
    /* Allocate every chunk needed first so that a failed allocation leaves
     * the queue exactly as it was. */
    size_t room = q->tail ? q->tail->cap - q->tail->len : 0;
    size_t left = n > room ? n - room : 0;
    struct gw_buf_chunk *first = NULL, *last = NULL, *prev = q->tail;
    while (left > 0) {
        size_t cap = next_cap(left, prev);
        struct gw_buf_chunk *c = gw_malloc(sizeof(*c) + cap);
        if (!c) {
            while (first) {
                struct gw_buf_chunk *next = first->next;
                gw_free(first);
                first = next;
            }
            return -ENOMEM;
        }
        c->next = NULL;
        c->len = 0;
        c->cap = cap;
        if (last)
            last->next = c;
        else
            first = c;
        last = prev = c;
        left -= cap < left ? cap : left;
    }
    if (room) {
        size_t k = n < room ? n : room;
        memcpy(q->tail->data + q->tail->len, src, k);
        q->tail->len += k;
        src += k;
        n -= k;
        q->len += k;
    }
    if (first) {
        if (q->tail)
            q->tail->next = first;
        else
            q->head = first;
        q->tail = last;
        for (struct gw_buf_chunk *c = first; c; c = c->next) {
            size_t k = n < c->cap ? n : c->cap;
            memcpy(c->data, src, k);
            c->len = k;
            src += k;
            n -= k;
            q->len += k;
        }
    }
    return 0;
}

size_t gw_bufq_peek(const struct gw_bufq *q, size_t skip, void *dst, size_t n)
{
    uint8_t *out = dst;
    size_t done = 0;
    size_t off = q->head_off + skip;
    for (const struct gw_buf_chunk *c = q->head; c && done < n; c = c->next) {
        if (off >= c->len) {
            off -= c->len;
            continue;
        }
        size_t avail = c->len - off;
        size_t k = n - done < avail ? n - done : avail;
        memcpy(out + done, c->data + off, k);
        done += k;
        off = 0;
    }
    return done;
}

size_t gw_bufq_drop(struct gw_bufq *q, size_t n)
{
    size_t done = 0;
    while (done < n && q->len > 0) {
        struct gw_buf_chunk *c = q->head;
        size_t avail = c->len - q->head_off;
        size_t k = n - done < avail ? n - done : avail;
        done += k;
        q->len -= k;
        q->head_off += k;
        if (q->head_off < c->len)
            break;
        if (c->next) {
            q->head = c->next;
            q->head_off = 0;
            gw_free(c);
        } else {
            /* The only chunk is drained: keep it for the next append. */
            c->len = 0;
            q->head_off = 0;
        }
    }
    return done;
}

void gw_bufq_splice(struct gw_bufq *dst, struct gw_bufq *src)
{
    if (src->len == 0) {
        gw_bufq_reset(src);
        return;
    }
    /* Read bytes of src's head chunk would be counted again: drop them by
     * moving the rest of that chunk down (at most one chunk). */
    if (src->head_off) {
        struct gw_buf_chunk *h = src->head;
        memmove(h->data, h->data + src->head_off, h->len - src->head_off);
        h->len -= src->head_off;
        src->head_off = 0;
    }
    if (dst->len == 0) {
        gw_bufq_reset(dst);
        *dst = *src;
    } else {
        dst->tail->next = src->head;
        dst->tail = src->tail;
        dst->len += src->len;
    }
    gw_bufq_init(src);
}

size_t gw_bufq_read(struct gw_bufq *q, void *dst, size_t n)
{
    return gw_bufq_drop(q, gw_bufq_peek(q, 0, dst, n));
}
