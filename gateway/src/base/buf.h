/* SPDX-License-Identifier: Apache-2.0 */
/* buf — a byte queue made of fixed-size chunks, for the data that waits in
 * the gateway between one HTTP/2 session and another (request bodies on
 * their way to a replica, responses on their way to the client).
 *
 * Appending copies the bytes once into the tail chunk; reading copies them
 * out once into the frame nghttp2 is building; whole chunks are freed as they
 * drain, so memory follows what is actually buffered, which flow control
 * bounds. Not thread-safe: a queue belongs to one call on one worker.
 */
#ifndef INFERGW_BUF_H
#define INFERGW_BUF_H

#include <stddef.h>
#include <stdint.h>

#define GW_BUF_CHUNK 16384 /* largest chunk */

struct gw_buf_chunk;

struct gw_bufq {
    struct gw_buf_chunk *head, *tail;
    size_t head_off; /* bytes already read from head */
    size_t len;      /* bytes queued */
};

void gw_bufq_init(struct gw_bufq *q);
/* Frees every chunk; the queue is empty and reusable afterwards. */
void gw_bufq_reset(struct gw_bufq *q);
/* Appends a copy of <n> bytes. Returns 0, or -ENOMEM (queue unchanged). */
int gw_bufq_append(struct gw_bufq *q, const void *p, size_t n);
/* Copies up to <n> bytes from the front into <dst> and drops them.
 * Returns the number of bytes copied. */
size_t gw_bufq_read(struct gw_bufq *q, void *dst, size_t n);
/* Copies up to <n> bytes, starting <skip> bytes after the front, into <dst>
 * without dropping anything (a replay log read by several readers). Returns
 * the number of bytes copied. */
size_t gw_bufq_peek(const struct gw_bufq *q, size_t skip, void *dst, size_t n);
/* Drops up to <n> bytes from the front. Returns the number dropped. */
size_t gw_bufq_drop(struct gw_bufq *q, size_t n);
/* Moves every byte of <src> to the end of <dst> without copying (its chunks
 * are linked in); <src> is empty afterwards. */
void gw_bufq_splice(struct gw_bufq *dst, struct gw_bufq *src);

#endif
