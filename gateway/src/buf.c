/* buf — chunked byte queue; see buf.h. */
#include "buf.h"

#include <errno.h>
#include <string.h>

#include "mem.h"

struct gw_buf_chunk {
    struct gw_buf_chunk *next;
    size_t len; /* bytes written into data */
    uint8_t data[GW_BUF_CHUNK];
};

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
    /* Count the chunks needed first so that a failed allocation leaves the
     * queue exactly as it was. */
    size_t room = q->tail ? GW_BUF_CHUNK - q->tail->len : 0;
    size_t need = n > room ? (n - room + GW_BUF_CHUNK - 1) / GW_BUF_CHUNK : 0;
    struct gw_buf_chunk *first = NULL, *last = NULL;
    for (size_t i = 0; i < need; i++) {
        struct gw_buf_chunk *c = gw_malloc(sizeof(*c));
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
        if (last)
            last->next = c;
        else
            first = c;
        last = c;
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
            size_t k = n < GW_BUF_CHUNK ? n : GW_BUF_CHUNK;
            memcpy(c->data, src, k);
            c->len = k;
            src += k;
            n -= k;
            q->len += k;
        }
    }
    return 0;
}

size_t gw_bufq_read(struct gw_bufq *q, void *dst, size_t n)
{
    uint8_t *out = dst;
    size_t done = 0;
    while (done < n && q->len > 0) {
        struct gw_buf_chunk *c = q->head;
        size_t avail = c->len - q->head_off;
        size_t k = n - done < avail ? n - done : avail;
        memcpy(out + done, c->data + q->head_off, k);
        done += k;
        q->len -= k;
        q->head_off += k;
        if (q->head_off < c->len)
            break; /* <dst> is full */
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
