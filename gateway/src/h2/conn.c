/* SPDX-License-Identifier: Apache-2.0 */
/* conn — socket I/O for nghttp2 sessions; see conn.h. */
#include "h2/conn.h"

#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/mem.h"
#include "obs/metrics.h"
#include "h2/tls.h"

static void conn_io_cb(struct gw_io *io, uint32_t events);
static void conn_tls_timeout(struct gw_timer *t, void *arg);

int gw_conn_init(struct gw_conn *c, struct gw_loop *loop, int fd, int connecting,
                 const struct gw_conn_ops *ops, void *owner)
{
    memset(c, 0, sizeof(*c));
    c->loop = loop;
    c->ops = ops;
    c->owner = owner;
    c->connecting = connecting ? 1 : 0;
    gw_timer_init(&c->tls_timer, conn_tls_timeout, c);
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
    c->loop->flush_dirty = gw_conn_flush_dirty;
}

void gw_conn_close(struct gw_conn *c, const char *reason)
{
    if (c->closing || c->closed)
        return;
    c->closing = 1;
    c->close_reason = reason;
    gw_conn_mark_dirty(c);
}

void gw_conn_close_flush(struct gw_conn *c, const char *reason)
{
    if (c->closing || c->closed)
        return;
    c->flush_on_close = 1;
    gw_conn_close(c, reason);
}

void gw_conn_release(struct gw_conn *c)
{
    gw_free(c->wbuf);
    c->wbuf = NULL;
    gw_loop_timer_cancel(c->loop, &c->tls_timer);
    SSL_free(c->ssl);
    c->ssl = NULL;
}

static void conn_fail_errno(struct gw_conn *c, const char *what, int err)
{
    snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", what, strerror(err));
    gw_conn_close(c, c->errbuf);
}

/* The events to wait for once nothing is blocked on output. */
static uint32_t conn_idle_events(const struct gw_conn *c)
{
    return EPOLLIN | (c->tls_read_wants_write ? EPOLLOUT : 0);
}

/* The GOAWAY error code that tells a peer why nghttp2 refused its bytes
 * with library error <lib_err>. */
static uint32_t conn_goaway_code(int lib_err)
{
    switch (lib_err) {
    case NGHTTP2_ERR_FLOODED:
    case NGHTTP2_ERR_TOO_MANY_CONTINUATIONS:
    case NGHTTP2_ERR_TOO_MANY_SETTINGS:
        return NGHTTP2_ENHANCE_YOUR_CALM;
    case NGHTTP2_ERR_HEADER_COMP:
        return NGHTTP2_COMPRESSION_ERROR;
    case NGHTTP2_ERR_NOMEM:
    case NGHTTP2_ERR_CALLBACK_FAILURE:
        return NGHTTP2_INTERNAL_ERROR;
    default:
        return NGHTTP2_PROTOCOL_ERROR;
    }
}

/* Hands <n> received bytes to nghttp2. Returns 0, or -1 after a protocol
 * error (GOAWAY queued, close requested). */
static int conn_feed(struct gw_conn *c, const uint8_t *buf, size_t n)
{
    ssize_t r = nghttp2_session_mem_recv(c->sess, buf, n);
    if (r < 0) {
        snprintf(c->errbuf, sizeof(c->errbuf), "HTTP/2 error: %s", nghttp2_strerror((int)r));
        /* A no-op when nghttp2 queued a GOAWAY of its own already. */
        nghttp2_session_terminate_session(c->sess, conn_goaway_code((int)r));
        gw_conn_close_flush(c, c->errbuf);
        return -1;
    }
    return 0;
}

/* --- TLS ------------------------------------------------------------------- */

int gw_conn_tls_start(struct gw_conn *c, SSL *ssl, int client, uint64_t timeout_ns)
{
    c->ssl = ssl; /* freed by gw_conn_release from here on */
    if (SSL_set_fd(ssl, c->io.fd) != 1) {
        ERR_clear_error();
        return -ENOMEM;
    }
    if (client)
        SSL_set_connect_state(ssl);
    else
        SSL_set_accept_state(ssl);
    c->tls_hs = 1;
    if (timeout_ns && gw_loop_timer_in(c->loop, &c->tls_timer, timeout_ns) < 0)
        return -ENOMEM;
    return 0;
}

/* The handshake of <c> failed for <why> (enum gw_metrics_tls_fail). */
static void conn_tls_fail(struct gw_conn *c, int why, const char *detail)
{
    c->tls_fatal = 1;
    gw_loop_timer_cancel(c->loop, &c->tls_timer);
    snprintf(c->errbuf, sizeof(c->errbuf), "TLS handshake failed (%s): %s",
             gw_metrics_tls_fail_name(why), detail);
    if (c->ops->on_tls_handshake)
        c->ops->on_tls_handshake(c, why, detail);
    gw_conn_close(c, c->errbuf);
}

static void conn_tls_timeout(struct gw_timer *t, void *arg)
{
    struct gw_conn *c = arg;
    if (c->tls_hs && !c->closing && !c->closed)
        conn_tls_fail(c, GW_TLS_FAIL_TIMEOUT, "no TLS handshake within the timeout");
}

/* A TLS error after the handshake: closes <c> with the OpenSSL reason. */
static void conn_tls_io_fail(struct gw_conn *c, const char *what, int ssl_err)
{
    char detail[120];
    c->tls_fatal = 1;
    gw_tls_classify_failure(c->ssl, ssl_err, detail, sizeof(detail));
    snprintf(c->errbuf, sizeof(c->errbuf), "%s: %s", what, detail);
    gw_conn_close(c, c->errbuf);
}

static void conn_read(struct gw_conn *c);

static void conn_handshake(struct gw_conn *c)
{
    ERR_clear_error();
    int r = SSL_do_handshake(c->ssl);
    if (r != 1) {
        int e = SSL_get_error(c->ssl, r);
        if (e == SSL_ERROR_WANT_READ) {
            gw_loop_mod(c->loop, &c->io, EPOLLIN);
            return;
        }
        if (e == SSL_ERROR_WANT_WRITE) {
            gw_loop_mod(c->loop, &c->io, EPOLLIN | EPOLLOUT);
            return;
        }
        char detail[120];
        int why = gw_tls_classify_failure(c->ssl, e, detail, sizeof(detail));
        conn_tls_fail(c, why, detail);
        return;
    }
    c->tls_hs = 0;
    gw_loop_timer_cancel(c->loop, &c->tls_timer);
    const unsigned char *proto = NULL;
    unsigned int plen = 0;
    SSL_get0_alpn_selected(c->ssl, &proto, &plen);
    if (plen != 2 || memcmp(proto, "h2", 2) != 0) {
        /* A client that offered no ALPN at all gets here (one that offered
         * other protocols was refused by the ALPN callback). */
        conn_tls_fail(c, GW_TLS_FAIL_NO_ALPN_H2,
                      SSL_is_server(c->ssl) ? "the client did not offer ALPN h2"
                                            : "the server did not agree to ALPN h2");
        return;
    }
    if (c->ops->on_tls_handshake && c->ops->on_tls_handshake(c, -1, NULL) < 0) {
        gw_conn_close(c, "peer refused after the TLS handshake");
        return;
    }
    gw_loop_mod(c->loop, &c->io, EPOLLIN);
    if (!SSL_is_server(c->ssl) && c->ops->on_connected)
        c->ops->on_connected(c);
    gw_conn_mark_dirty(c);
    /* The client's first frames may have come with its last handshake
     * message and sit decrypted in OpenSSL's buffer already. */
    conn_read(c);
}

/* Reads what the peer sent over TLS: until OpenSSL wants more from the
 * socket, or, past GW_CONN_READ bytes, until its buffer is empty, so that
 * whatever is left is in the socket where level-triggered epoll sees it. */
static void conn_tls_read(struct gw_conn *c)
{
    uint8_t buf[GW_CONN_READ];
    size_t off = 0, total = 0;
    int e = SSL_ERROR_NONE;
    c->tls_read_wants_write = 0;
    for (;;) {
        if (off == sizeof(buf)) {
            if (conn_feed(c, buf, off) < 0)
                return;
            off = 0;
        }
        if (total >= GW_CONN_READ && !SSL_has_pending(c->ssl))
            break;
        ERR_clear_error();
        int n = SSL_read(c->ssl, buf + off, (int)(sizeof(buf) - off));
        if (n > 0) {
            off += (size_t)n;
            total += (size_t)n;
            continue;
        }
        e = SSL_get_error(c->ssl, n);
        break;
    }
    if (off && conn_feed(c, buf, off) < 0)
        return;
    switch (e) {
    case SSL_ERROR_NONE:
    case SSL_ERROR_WANT_READ:
        break;
    case SSL_ERROR_WANT_WRITE:
        c->tls_read_wants_write = 1;
        gw_loop_mod(c->loop, &c->io, EPOLLIN | EPOLLOUT);
        break;
    case SSL_ERROR_ZERO_RETURN:
        gw_conn_close(c, "peer closed the connection");
        return;
    case SSL_ERROR_SYSCALL:
        if (errno == EAGAIN || errno == EINTR)
            break;
        c->tls_fatal = 1;
        conn_fail_errno(c, "read", errno ? errno : ECONNRESET);
        return;
    default:
        conn_tls_io_fail(c, "TLS read", e);
        return;
    }
    if (total > 0 || c->tls_write_wants_read) {
        c->tls_write_wants_read = 0;
        gw_conn_mark_dirty(c);
    }
}

/* --- cleartext and common paths --------------------------------------------- */

static void conn_read(struct gw_conn *c)
{
    if (c->ssl) {
        conn_tls_read(c);
        return;
    }
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
    if (conn_feed(c, buf, (size_t)n) < 0)
        return;
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
        if (c->ssl) {
            conn_handshake(c); /* on_connected once it is done */
            return;
        }
        gw_loop_mod(c->loop, &c->io, EPOLLIN);
        if (c->ops->on_connected)
            c->ops->on_connected(c);
        gw_conn_mark_dirty(c);
        return;
    }
    if (c->tls_hs) {
        conn_handshake(c);
        return;
    }
    if ((events & (EPOLLIN | EPOLLHUP | EPOLLERR)) ||
        ((events & EPOLLOUT) && c->tls_read_wants_write))
        conn_read(c);
    if ((events & EPOLLOUT) && !c->closing)
        gw_conn_mark_dirty(c);
}

/* Writes what is buffered. Returns 1 when all of it went out, 0 when the
 * kernel is full (EPOLLOUT armed), -1 after an error (close requested). */
static int conn_write(struct gw_conn *c)
{
    while (c->woff < c->wlen) {
        if (c->ssl) {
            /* A retry after WANT_* passes the same bytes again: the buffer
             * is not refilled until it has all gone out. */
            size_t len = c->wlen - c->woff;
            ERR_clear_error();
            int r = SSL_write(c->ssl, c->wbuf + c->woff, len > INT_MAX ? INT_MAX : (int)len);
            if (r > 0) {
                c->woff += (size_t)r;
                continue;
            }
            int e = SSL_get_error(c->ssl, r);
            if (e == SSL_ERROR_WANT_WRITE) {
                gw_loop_mod(c->loop, &c->io, EPOLLIN | EPOLLOUT);
                return 0;
            }
            if (e == SSL_ERROR_WANT_READ) {
                c->tls_write_wants_read = 1; /* the next read marks us dirty */
                return 0;
            }
            if (e == SSL_ERROR_SYSCALL && errno != 0) {
                c->tls_fatal = 1;
                conn_fail_errno(c, "write", errno);
                return -1;
            }
            conn_tls_io_fail(c, "TLS write", e);
            return -1;
        }
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
    if (c->connecting || c->tls_hs)
        return; /* nothing may be produced before the socket (and TLS) is up */
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
    gw_loop_mod(c->loop, &c->io, conn_idle_events(c));
    if (!nghttp2_session_want_read(c->sess) && !nghttp2_session_want_write(c->sess))
        gw_conn_close(c, "session finished");
}

/* Before a close that must tell the peer why: adds what the session has
 * queued to the write buffer, as far as it has room (no growing, no second
 * write: the socket is about to go). */
static void conn_fill_last(struct gw_conn *c)
{
    if (c->woff > 0 && c->woff == c->wlen)
        c->woff = c->wlen = 0;
    while (c->wlen < c->wcap) {
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(c->sess, &data);
        if (n <= 0 || c->wlen + (size_t)n > c->wcap)
            break;
        memcpy(c->wbuf + c->wlen, data, (size_t)n);
        c->wlen += (size_t)n;
    }
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
    gw_loop_timer_cancel(c->loop, &c->tls_timer);
    if (c->ssl && !c->tls_hs && !c->tls_fatal && !c->connecting) {
        /* Best effort close_notify; the socket is not waited for. */
        ERR_clear_error();
        SSL_shutdown(c->ssl);
        ERR_clear_error();
    }
    gw_loop_del(c->loop, &c->io);
    close(c->io.fd);
    c->io.fd = -1;
    c->closed = 1;
    c->ops->on_close(c, c->close_reason ? c->close_reason : "closed");
}

void gw_conn_set_session_limits(nghttp2_option *opt, uint32_t max_header_list_bytes)
{
    /* Floods, the same from a client or a replica: CONTINUATION frames per
     * header block (CVE-2024-28182), queued SETTINGS and PING ACKs, and
     * entries per SETTINGS frame. */
    nghttp2_option_set_max_continuations(opt, 16);
    nghttp2_option_set_max_outbound_ack(opt, 1000);
    nghttp2_option_set_max_settings(opt, 32);
    /* The table our encoder keeps per connection, whatever size the peer
     * offers in SETTINGS_HEADER_TABLE_SIZE (the decoder's side is the 4096
     * we advertise). */
    nghttp2_option_set_max_deflate_dynamic_table_size(opt, GW_HPACK_TABLE_SIZE);
    /* The largest block we encode: relayed headers were accepted within
     * --max-header-list-bytes, and encode to no more than that. */
    nghttp2_option_set_max_send_header_block_length(opt, (size_t)max_header_list_bytes +
                                                             GW_HPACK_TABLE_SIZE);
    /* Leading or trailing white space in a field value stays a malformed
     * request (RFC 9113 section 8.2.1), as nghttp2 checks by default. */
    nghttp2_option_set_no_rfc9113_leading_and_trailing_ws_validation(opt, 0);
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
            if (c->flush_on_close && !c->connecting && !c->tls_hs && c->wbuf)
                conn_fill_last(c);
            if (!c->connecting && !c->tls_hs && c->wlen > c->woff)
                conn_write(c);
            conn_finish(c);
        }
    }
}
