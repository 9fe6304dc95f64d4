/* conn — socket I/O for nghttp2 sessions; see conn.h. */
#include "conn.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "mem.h"

static void conn_io_cb(struct gw_io *io, uint32_t events);

int gw_conn_init(struct gw_conn *c, struct gw_loop *loop, int fd, int connecting,
                 const struct gw_conn_ops *ops, void *owner)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->ops = ops;
    c->owner = owner;
    c->connecting = connecting ? 1 : 0;
    c->wbuf = gw_malloc(GW_CONN_WBUF);
    if (!c->wbuf)
        return -ENOMEM;
    c->wcap = GW_CONN_WBUF;
    int rc = gw_loop_add(loop, &c->io, fd, connecting ? EPOLLOUT : EPOLLIN, conn_io_cb);
    if (rc < 0) {
        gw_free(c->wbuf);
        c->wbuf = NULL;
        return rc;
    }
    return 0;
}

void gw_conn_mark_dirty(struct gw_conn *c)
{
    if (c->dirty || c->closed)
        return;
    c->dirty = 1;
    c->dirty_next = c->loop->dirty;
    c->loop->dirty = c;
}

void gw_conn_close(struct gw_conn *c, const char *reason)
{
    if (c->closing || c->closed)
        return;
    c->closing = 1;
    c->close_reason = reason;
    gw_conn_mark_dirty(c);
}

void gw_conn_release(struct gw_conn *c)
{
    gw_free(c->wbuf);
    c->wbuf = NULL;
}

static void conn_fail_errno(struct gw_conn *c, const char *what, int err)
{
    snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", what, strerror(err));
    gw_conn_close(c, c->errbuf);
}

static void conn_read(struct gw_conn *c)
{
    uint8_t buf[GW_CONN_READ];
    ssize_t n = read(c->io.fd, buf, sizeof(buf));
    if (n == 0) {
        gw_conn_close(c, "peer closed the connection");
        return;
    }
    if (n < 0) {
        if (errno != EAGAIN && errno != EINTR)
            conn_fail_errno(c, "read", errno);
        return;
    }
    ssize_t r = nghttp2_session_mem_recv(c->sess, buf, (size_t)n);
    if (r < 0) {
        snprintf(c->errbuf, sizeof(c->errbuf), "HTTP/2 error: %s", nghttp2_strerror((int)r));
        gw_conn_close(c, c->errbuf);
        return;
    }
    gw_conn_mark_dirty(c);
}

static void conn_io_cb(struct gw_io *io, uint32_t events)
{
    struct gw_conn *c = (struct gw_conn *)io;
    if (c->closing || c->closed)
        return;
    if (c->connecting) {
        int err = 0;
        socklen_t len = sizeof(err);
        if (getsockopt(io->fd, SOL_SOCKET, SO_ERROR, &err, &len) < 0)
            err = errno;
        if (err) {
            conn_fail_errno(c, "connect", err);
            return;
        }
        if (!(events & (EPOLLOUT | EPOLLERR | EPOLLHUP)))
            return;
        c->connecting = 0;
        gw_loop_mod(c->loop, &c->io, EPOLLIN);
        if (c->ops->on_connected)
            c->ops->on_connected(c);
        gw_conn_mark_dirty(c);
        return;
    }
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR))
        conn_read(c);
    if ((events & EPOLLOUT) && !c->closing)
        gw_conn_mark_dirty(c);
}

/* Writes what is buffered. Returns 1 when all of it went out, 0 when the
 * kernel is full (EPOLLOUT armed), -1 after an error (close requested). */
static int conn_write(struct gw_conn *c)
{
    while (c->woff < c->wlen) {
        ssize_t n = write(c->io.fd, c->wbuf + c->woff, c->wlen - c->woff);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            if (errno == EAGAIN) {
                gw_loop_mod(c->loop, &c->io, EPOLLIN | EPOLLOUT);
                return 0;
            }
            conn_fail_errno(c, "write", errno);
            return -1;
        }
        c->woff += (size_t)n;
    }
    c->woff = c->wlen = 0;
    return 1;
}

static void conn_flush(struct gw_conn *c)
{
    if (c->connecting)
        return; /* nothing may be produced before the socket is up */
    if (c->wlen > c->woff && conn_write(c) <= 0)
        return; /* the kernel is still full: produce no more frames */
    for (;;) {
        /* Fill the buffer from nghttp2 (about GW_CONN_WBUF bytes), then write it. */
        while (c->wlen < GW_CONN_WBUF) {
            const uint8_t *data;
            ssize_t n = nghttp2_session_mem_send(c->sess, &data);
            if (n < 0) {
                snprintf(c->errbuf, sizeof(c->errbuf), "HTTP/2 error: %s",
                         nghttp2_strerror((int)n));
                gw_conn_close(c, c->errbuf);
                return;
            }
            if (n == 0)
                break;
            if (c->wlen + (size_t)n > c->wcap) {
                /* Frames from mem_send live only until the next call: keep
                 * a large one whole by growing the buffer (rare). */
                uint8_t *nb = gw_realloc(c->wbuf, c->wlen + (size_t)n);
                if (!nb) {
                    gw_conn_close(c, "out of memory");
                    return;
                }
                c->wbuf = nb;
                c->wcap = c->wlen + (size_t)n;
            }
            memcpy(c->wbuf + c->wlen, data, (size_t)n);
            c->wlen += (size_t)n;
        }
        if (c->wlen == 0)
            break;
        if (conn_write(c) <= 0)
            return;
    }
    gw_loop_mod(c->loop, &c->io, EPOLLIN);
    if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess))
        gw_conn_close(c, "session finished");
}

static void conn_finish(struct gw_conn *c)
{
    /* gw_conn_close() may have queued <c> again: the owner frees it below. */
    if (c->dirty) {
        for (struct gw_conn **pp = &c->loop->dirty; *pp; pp = &(*pp)->dirty_next)
            if (*pp == c) {
                *pp = c->dirty_next;
                break;
            }
        c->dirty = 0;
    }
    gw_loop_del(c->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
    c->closed = 1;
    c->ops->on_close(c, c->close_reason ? c->close_reason : "closed");
}

void gw_conn_flush_dirty(struct gw_loop *loop)
{
    struct gw_conn *c;
    while ((c = loop->dirty) != NULL) {
        loop->dirty = c->dirty_next;
        c->dirty_next = NULL;
        c->dirty = 0;
        if (c->closed)
            continue;
        if (!c->closing)
            conn_flush(c);
        if (c->closing) {
            /* Best effort: push out what is queued (GOAWAY, RST) first. */
            if (!c->connecting && c->wlen > c->woff)
                conn_write(c);
            conn_finish(c);
        }
    }
}
