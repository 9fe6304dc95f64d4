/* SPDX-License-Identifier: Apache-2.0 */
/* engine_rig — the real call engine in one process; see engine_rig.h.
 *
 * Everything runs on the worker's loop: the replicas' listeners and
 * connections and the client are gw_io entries of that loop too, so one
 * gw_loop_run_once moves bytes in every direction. On loopback a write is
 * readable by the peer as soon as it returns, so "two iterations without an
 * event and nothing dirty" means every byte in flight has been handled.
 * The rig's own memory comes from malloc, never from the gateway's wrapper,
 * so allocation-failure tests fail and count the gateway's allocations only.
 */
#include "engine_rig.h"

#include <arpa/inet.h>
#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "obs/accesslog.h"
#include "auth/auth.h"
#include "base/config.h"
#include "h2/h2srv.h"
#include "base/log.h"
#include "base/hostport.h"
#include "route/route.h"
#include "engine/upstream.h"

#define CONTAINER(ptr, type, member) ((type *)(void *)((char *)(ptr)-offsetof(type, member)))

static struct {
    int inited;
    int lfd[RIG_REPLICAS];
    uint16_t port[RIG_REPLICAS];
    struct gw_config cfg;
    struct gw_routes *routes;
    nghttp2_session_callbacks *rep_cbs, *cl_cbs;
} g;

/* --- pending output ------------------------------------------------------- */

struct pend {
    uint8_t *buf;
    size_t len, cap;
};

/* Writes what <s> has to send to <fd>, keeping what the kernel does not take.
 * Returns 1 when output is still pending, 0 when all is written, -1 on error. */
static int sess_flush(int fd, nghttp2_session *s, struct pend *p)
{
    for (;;) {
        if (p->len > 0) {
            ssize_t n = write(fd, p->buf, p->len);
            if (n < 0)
                return errno == EAGAIN ? 1 : -1;
            memmove(p->buf, p->buf + n, p->len - (size_t)n);
            p->len -= (size_t)n;
            if (p->len > 0)
                return 1;
        }
        const uint8_t *data;
        ssize_t n = nghttp2_session_mem_send(s, &data);
        if (n < 0)
            return -1;
        if (n == 0)
            return 0;
        if (p->cap < (size_t)n) {
            uint8_t *nb = realloc(p->buf, (size_t)n);
            if (!nb)
                return -1;
            p->buf = nb;
            p->cap = (size_t)n;
        }
        memcpy(p->buf, data, (size_t)n);
        p->len = (size_t)n;
    }
}

static int set_nonblock_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

/* Closes <fd> with a reset, so no TIME_WAIT piles up over many runs. */
static void close_rst(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* --- replicas --------------------------------------------------------------- */

/* The loop of the rig being run: the replicas' listeners and connections
 * are served by it. */
static struct gw_loop *current_loop;
static struct rig *current_rig;

struct rstream;

struct rig_rconn {
    int fd;
    struct gw_io io;
    struct gw_loop *loop;
    nghttp2_session *sess;
    struct rig_replica *rep;
    struct rig_rconn *next;
    struct pend out;
    struct rstream *streams; /* its request streams, for the timers they hold */
    struct gw_timer close_timer;
    unsigned close_now : 1; /* close once the output is written */
};

struct rstream {
    struct rig_rconn *rc;
    int32_t sid;
    struct rstream *next;  /* in rc->streams */
    struct gw_timer timer; /* delay_ms before answering */
    int mode;              /* enum rig_answer of this stream's answer */
    int answered;
    size_t off;       /* answer bytes sent */
    int sent;         /* the whole answer message went */
    int trailers_due; /* trailers_after_ms passed (or none) */
};

static const uint8_t rep_msg[] = {0, 0, 0, 0, 6, 0x0a, 4, 'd', 'e', 'm', 'o'};

static void rconn_service(struct rig_rconn *rc);

static const uint8_t *rep_answer_msg(const struct rig_replica *rep, size_t *len)
{
    *len = rep->msg ? rep->msglen : sizeof(rep_msg);
    return rep->msg ? rep->msg : rep_msg;
}

/* trailers_after_ms passed: the stream's trailers may go. */
static void rep_trailers_cb(struct gw_timer *t, void *arg)
{
    struct rstream *st = arg;
    st->trailers_due = 1;
    nghttp2_session_resume_data(st->rc->sess, st->sid);
    rconn_service(st->rc);
}

static ssize_t rep_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct rstream *st = src->ptr;
    if (st->mode == RIG_ANSWER_CLOSE_AFTER_HEADERS)
        return NGHTTP2_ERR_DEFERRED; /* the connection closes after the HEADERS */
    if (st->mode == RIG_ANSWER_UNAVAILABLE_TRAILERS) {
        nghttp2_nv tr[] = {
            {(uint8_t *)"grpc-status", (uint8_t *)"14", 11, 2, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"grpc-message", (uint8_t *)"rig: try another replica", 12, 24,
             NGHTTP2_NV_FLAG_NONE},
        };
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        return nghttp2_submit_trailer(s, sid, tr, 2) != 0 ? NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE
                                                          : 0;
    }
    size_t mlen;
    const uint8_t *msg = rep_answer_msg(st->rc->rep, &mlen);
    size_t n = mlen - st->off < len ? mlen - st->off : len;
    if (!st->sent) {
        memcpy(buf, msg + st->off, n);
        st->off += n;
        st->sent = st->off == mlen;
        if (!st->sent)
            return (ssize_t)n;
    } else {
        n = 0;
    }
    if (st->mode == RIG_ANSWER_CLOSE_AFTER_MESSAGE)
        return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    if (!st->trailers_due) {
        if (!gw_timer_armed(&st->timer)) {
            gw_timer_init(&st->timer, rep_trailers_cb, st);
            gw_loop_timer_in(st->rc->loop, &st->timer,
                             (uint64_t)st->rc->rep->trailers_after_ms * 1000000ull);
        }
        return n ? (ssize_t)n : NGHTTP2_ERR_DEFERRED;
    }
    nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, NGHTTP2_NV_FLAG_NONE}};
    *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
    if (nghttp2_submit_trailer(s, sid, tr, 1) != 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return (ssize_t)n;
}

static void rep_answer(nghttp2_session *s, struct rig_rconn *rc, int32_t sid, struct rstream *st)
{
    if (st->answered)
        return;
    st->answered = 1;
    struct rig_replica *rep = rc->rep;
    st->mode = rep->answer;
    if (current_rig->fail_first > 0) {
        current_rig->fail_first--;
        st->mode = RIG_ANSWER_UNAVAILABLE;
    }
    if (st->mode == RIG_ANSWER_NONE)
        return;
    if (st->mode == RIG_ANSWER_UNAVAILABLE) {
        nghttp2_nv nv[] = {
            {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16,
             NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"grpc-status", (uint8_t *)"14", 11, 2, NGHTTP2_NV_FLAG_NONE},
            {(uint8_t *)"grpc-message", (uint8_t *)"rig: try another replica", 12, 24,
             NGHTTP2_NV_FLAG_NONE},
        };
        nghttp2_submit_response(s, sid, nv, 4, NULL);
        return;
    }
    if (st->mode == RIG_ANSWER_OK)
        rep->answered++;
    st->trailers_due = rep->trailers_after_ms == 0;
    nghttp2_nv nv[] = {
        {(uint8_t *)":status", (uint8_t *)"200", 7, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
    };
    nghttp2_data_provider prd = {.source.ptr = st, .read_callback = rep_read_cb};
    nghttp2_submit_response(s, sid, nv, 2, &prd);
}

static void rep_delay_cb(struct gw_timer *t, void *arg)
{
    struct rstream *st = arg;
    struct rig_rconn *rc = st->rc;
    rep_answer(rc->sess, rc, st->sid, st);
    rconn_service(rc);
}

static void rstream_free(struct rstream *st)
{
    struct rstream **pp = &st->rc->streams;
    while (*pp != st)
        pp = &(*pp)->next;
    *pp = st->next;
    gw_loop_timer_cancel(st->rc->loop, &st->timer);
    st->rc->rep->open--;
    free(st);
}

static int rep_on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct rig_rconn *rc = ud;
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct rstream *st = calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    st->rc = rc;
    st->sid = f->hd.stream_id;
    gw_timer_init(&st->timer, rep_delay_cb, st);
    st->next = rc->streams;
    rc->streams = st;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
    struct rig_replica *rep = rc->rep;
    rep->streams++;
    rep->open++;
    rep->req_len = 0;
    rep->prev_attempts[0] = '\0';
    rep->grpc_timeout[0] = '\0';
    return 0;
}

static int rep_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                         size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                         void *ud)
{
    struct rig_replica *rep = ((struct rig_rconn *)ud)->rep;
    if (namelen == 26 && !memcmp(name, "grpc-previous-rpc-attempts", 26))
        snprintf(rep->prev_attempts, sizeof(rep->prev_attempts), "%.*s", (int)valuelen, value);
    else if (namelen == 12 && !memcmp(name, "grpc-timeout", 12))
        snprintf(rep->grpc_timeout, sizeof(rep->grpc_timeout), "%.*s", (int)valuelen, value);
    return 0;
}

static int rep_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                       size_t len, void *ud)
{
    struct rig_replica *rep = ((struct rig_rconn *)ud)->rep;
    if (rep->req_len < RIG_CAPTURE)
        memcpy(rep->req + rep->req_len, data,
               len < RIG_CAPTURE - rep->req_len ? len : RIG_CAPTURE - rep->req_len);
    rep->req_len += len;
    return 0;
}

static int rep_on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct rig_rconn *rc = ud;
    if (f->hd.type == NGHTTP2_RST_STREAM) {
        rc->rep->rsts++;
        rc->rep->rst_code = f->rst_stream.error_code;
        return 0;
    }
    if ((f->hd.type != NGHTTP2_HEADERS && f->hd.type != NGHTTP2_DATA) ||
        !(f->hd.flags & NGHTTP2_FLAG_END_STREAM))
        return 0;
    struct rstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st)
        return 0;
    if (rc->rep->delay_ms > 0)
        gw_loop_timer_in(rc->loop, &st->timer, (uint64_t)rc->rep->delay_ms * 1000000ull);
    else
        rep_answer(s, rc, f->hd.stream_id, st);
    return 0;
}

/* Scripted closes: after the response HEADERS (at once) or after the
 * answer message (close_after_ms later). */
static int rep_on_frame_send(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct rig_rconn *rc = ud;
    struct rstream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!st)
        return 0;
    if (f->hd.type == NGHTTP2_HEADERS && st->mode == RIG_ANSWER_CLOSE_AFTER_HEADERS)
        rc->close_now = 1;
    else if (f->hd.type == NGHTTP2_DATA && st->mode == RIG_ANSWER_CLOSE_AFTER_MESSAGE && st->sent) {
        if (rc->rep->close_after_ms == 0)
            rc->close_now = 1;
        else if (!gw_timer_armed(&rc->close_timer))
            gw_loop_timer_in(rc->loop, &rc->close_timer,
                             (uint64_t)rc->rep->close_after_ms * 1000000ull);
    }
    return 0;
}

static int rep_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    struct rstream *st = nghttp2_session_get_stream_user_data(s, sid);
    if (st) {
        rstream_free(st);
        nghttp2_session_set_stream_user_data(s, sid, NULL);
    }
    return 0;
}

/* Closes <rc>: with a reset (teardown, errors), or <graceful>ly (a FIN
 * after what was written, the way a replica process closes). */
static void rconn_free_how(struct rig_rconn *rc, int graceful)
{
    struct rig_rconn **pp = &rc->rep->conns;
    while (*pp != rc)
        pp = &(*pp)->next;
    *pp = rc->next;
    gw_loop_del(rc->loop, &rc->io);
    gw_loop_timer_cancel(rc->loop, &rc->close_timer);
    if (graceful) {
        uint8_t buf[4096];
        while (read(rc->fd, buf, sizeof(buf)) > 0)
            ; /* unread bytes would turn the FIN into a reset */
        close(rc->fd);
        rc->rep->closed_conns++;
    } else {
        close_rst(rc->fd);
    }
    while (rc->streams)
        rstream_free(rc->streams);
    nghttp2_session_del(rc->sess); /* runs no stream-close callbacks */
    free(rc->out.buf);
    free(rc);
}

static void rconn_free(struct rig_rconn *rc)
{
    rconn_free_how(rc, 0);
}

static void rconn_close_cb(struct gw_timer *t, void *arg)
{
    rconn_free_how(arg, 1);
}

/* Writes what <rc>'s session has to send; closes it when the session is
 * done, failed, or a scripted close is due once the output is out. */
static void rconn_service(struct rig_rconn *rc)
{
    int rc_out = sess_flush(rc->fd, rc->sess, &rc->out);
    if (rc_out < 0 ||
        (!nghttp2_session_want_read(rc->sess) && !nghttp2_session_want_write(rc->sess))) {
        rconn_free(rc);
        return;
    }
    if (rc->close_now && rc_out == 0) {
        rconn_free_how(rc, 1);
        return;
    }
    gw_loop_mod(rc->loop, &rc->io, EPOLLIN | (rc_out ? EPOLLOUT : 0));
}

static void rconn_on_io(struct gw_io *io, uint32_t events)
{
    struct rig_rconn *rc = CONTAINER(io, struct rig_rconn, io);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        uint8_t buf[65536];
        ssize_t n = read(rc->fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN) ||
            (n > 0 && nghttp2_session_mem_recv(rc->sess, buf, (size_t)n) < 0)) {
            rconn_free(rc);
            return;
        }
    }
    rconn_service(rc);
}

static void rep_on_accept(struct gw_io *io, uint32_t events)
{
    struct rig_replica *rep = CONTAINER(io, struct rig_replica, lio);
    for (;;) {
        int fd = accept4(rep->lfd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        set_nonblock_nodelay(fd);
        struct rig_rconn *rc = calloc(1, sizeof(*rc));
        if (!rc) {
            close(fd);
            continue;
        }
        rc->fd = fd;
        rc->rep = rep;
        rc->loop = current_loop;
        gw_timer_init(&rc->close_timer, rconn_close_cb, rc);
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 1000}};
        if (nghttp2_session_server_new(&rc->sess, g.rep_cbs, rc) != 0) {
            close(fd);
            free(rc);
            continue;
        }
        nghttp2_submit_settings(rc->sess, NGHTTP2_FLAG_NONE, iv, 1);
        rc->next = rep->conns;
        rep->conns = rc;
        if (gw_loop_add(rc->loop, &rc->io, fd, EPOLLIN | EPOLLOUT, rconn_on_io) < 0) {
            rep->conns = rc->next;
            nghttp2_session_del(rc->sess);
            close(fd);
            free(rc);
        }
    }
}

/* --- client ------------------------------------------------------------------- */

static void client_close(struct rig *r)
{
    struct rig_client *cl = &r->cl;
    if (cl->fd < 0)
        return;
    gw_loop_del(&r->w.loop, &cl->io);
    close_rst(cl->fd);
    cl->fd = -1;
    cl->done = 1;
    if (cl->sess) {
        nghttp2_session_del(cl->sess);
        cl->sess = NULL;
    }
}

static struct pend cl_out;
static void run_until_idle(struct rig *r, uint64_t end_ns);

static void client_on_io(struct gw_io *io, uint32_t events)
{
    struct rig_client *cl = CONTAINER(io, struct rig_client, io);
    struct rig *r = CONTAINER(cl, struct rig, cl);
    if (events & (EPOLLIN | EPOLLHUP | EPOLLERR)) {
        uint8_t buf[65536];
        ssize_t n = read(cl->fd, buf, sizeof(buf));
        if (n == 0 || (n < 0 && errno != EAGAIN)) {
            client_close(r);
            return;
        }
        if (n > 0 && cl->sess && nghttp2_session_mem_recv(cl->sess, buf, (size_t)n) < 0) {
            client_close(r);
            return;
        }
    }
    int more = 0;
    if (cl->sess) {
        more = sess_flush(cl->fd, cl->sess, &cl_out);
        if (more < 0) {
            client_close(r);
            return;
        }
    } else if (cl->outoff < cl->outlen) {
        ssize_t n = write(cl->fd, cl->out + cl->outoff, cl->outlen - cl->outoff);
        if (n < 0 && errno != EAGAIN) {
            client_close(r);
            return;
        }
        if (n > 0)
            cl->outoff += (size_t)n;
        more = cl->outoff < cl->outlen;
    }
    gw_loop_mod(&r->w.loop, &cl->io, EPOLLIN | (more ? EPOLLOUT : 0));
}

static int client_connect(struct rig *r)
{
    struct rig_client *cl = &r->cl;
    memset(cl, 0, sizeof(*cl));
    cl->grpc_status = -1;
    cl->fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (cl->fd < 0)
        return -1;
    set_nonblock_nodelay(cl->fd);
    char host[64];
    uint16_t port;
    gw_hostport_split(g.cfg.listen, host, sizeof(host), &port);
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(port)};
    inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
    if (connect(cl->fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 && errno != EINPROGRESS) {
        close(cl->fd);
        cl->fd = -1;
        return -1;
    }
    if (gw_loop_add(&r->w.loop, &cl->io, cl->fd, EPOLLIN | EPOLLOUT, client_on_io) < 0) {
        close(cl->fd);
        cl->fd = -1;
        return -1;
    }
    return 0;
}

int rig_client_raw(struct rig *r, const uint8_t *data, size_t len)
{
    if (client_connect(r) < 0)
        return -1;
    r->cl.out = data;
    r->cl.outlen = len;
    return 0;
}

static int cl_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud)
{
    struct rig_client *cl = ud;
    if (namelen == 7 && !memcmp(name, ":status", 7))
        cl->http_status = atoi((const char *)value);
    else if (namelen == 11 && !memcmp(name, "grpc-status", 11))
        cl->grpc_status = atoi((const char *)value);
    else if (namelen == 12 && !memcmp(name, "grpc-message", 12))
        snprintf(cl->grpc_message, sizeof(cl->grpc_message), "%.*s", (int)valuelen, value);
    return 0;
}

static int cl_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                      size_t len, void *ud)
{
    struct rig_client *cl = ud;
    if (cl->resp_bytes < RIG_CAPTURE)
        memcpy(cl->resp + cl->resp_bytes, data,
               len < RIG_CAPTURE - cl->resp_bytes ? len : RIG_CAPTURE - cl->resp_bytes);
    cl->resp_bytes += len;
    return 0;
}

static int cl_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    struct rig_client *cl = ud;
    if (sid == cl->sid) {
        cl->stream_closed = 1;
        cl->close_error = err;
    }
    return 0;
}

static ssize_t cl_read_cb(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                          uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct rig_client *cl = ud;
    size_t total = cl->msglen + 5, n = 0;
    while (n < len && cl->msgoff < total) {
        size_t o = cl->msgoff;
        buf[n++] = o == 0 ? 0 : o < 5 ? (uint8_t)(cl->msglen >> (8 * (4 - o))) : cl->msg[o - 5];
        cl->msgoff++;
    }
    if (cl->msgoff == total)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

int rig_client_open(struct rig *r)
{
    if (client_connect(r) < 0)
        return -1;
    struct rig_client *cl = &r->cl;
    if (nghttp2_session_client_new(&cl->sess, g.cl_cbs, cl) != 0)
        return -1;
    nghttp2_submit_settings(cl->sess, NGHTTP2_FLAG_NONE, NULL, 0);
    gw_loop_mod(&r->w.loop, &cl->io, EPOLLIN | EPOLLOUT);
    /* Until the gateway accepted it and the SETTINGS went both ways. */
    uint64_t end = gw_now_ns() + 2000000000ull;
    while (!cl->done && r->w.nconns == 0 && gw_now_ns() < end)
        gw_loop_run_once(&r->w.loop, 1);
    run_until_idle(r, end);
    return cl->done || r->w.nconns == 0 ? -1 : 0;
}

int rig_client_call(struct rig *r, const char *path, const uint8_t *msg, size_t len,
                    const char *grpc_timeout)
{
    struct rig_client *cl = &r->cl;
    if (!cl->sess && rig_client_open(r) < 0)
        return -1;
    cl->msg = msg;
    cl->msglen = len;
    cl->msgoff = 0;
    cl->stream_closed = 0;
    cl->close_error = 0;
    cl->http_status = 0;
    cl->grpc_status = -1;
    cl->grpc_message[0] = '\0';
    cl->resp_bytes = 0;
    static char pad[4096];
    memset(pad, 'p', sizeof(pad));
    nghttp2_nv nv[9] = {
        {(uint8_t *)":method", (uint8_t *)"POST", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":scheme", (uint8_t *)"http", 7, 4, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":path", (uint8_t *)path, 5, strlen(path), NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)":authority", (uint8_t *)"rig", 10, 3, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"te", (uint8_t *)"trailers", 2, 8, NGHTTP2_NV_FLAG_NONE},
        {(uint8_t *)"x-route-key", (uint8_t *)"rig", 11, 3, NGHTTP2_NV_FLAG_NONE},
    };
    size_t n = 7;
    if (r->call_pad)
        nv[n++] = (nghttp2_nv){(uint8_t *)"x-pad", (uint8_t *)pad, 5,
                               r->call_pad < sizeof(pad) ? r->call_pad : sizeof(pad),
                               NGHTTP2_NV_FLAG_NONE};
    if (grpc_timeout)
        nv[n++] = (nghttp2_nv){(uint8_t *)"grpc-timeout", (uint8_t *)grpc_timeout, 12,
                               strlen(grpc_timeout), NGHTTP2_NV_FLAG_NONE};
    nghttp2_data_provider prd = {.read_callback = cl_read_cb};
    cl->sid = nghttp2_submit_request(cl->sess, NULL, nv, n, &prd, NULL);
    gw_loop_mod(&r->w.loop, &cl->io, EPOLLIN | EPOLLOUT);
    return cl->sid > 0 ? 0 : -1;
}

int rig_client_reset(struct rig *r, uint32_t error_code)
{
    struct rig_client *cl = &r->cl;
    if (!cl->sess || cl->sid <= 0 ||
        nghttp2_submit_rst_stream(cl->sess, NGHTTP2_FLAG_NONE, cl->sid, error_code) != 0)
        return -1;
    gw_loop_mod(&r->w.loop, &cl->io, EPOLLIN | EPOLLOUT);
    return 0;
}

/* --- set-up ----------------------------------------------------------------------- */

/* Listens on a free loopback port in 20000-31999 (below the ephemeral
 * range, so no outgoing connection can take it between runs). Returns the
 * fd, or -1. */
static int listen_low(uint16_t *port)
{
    static unsigned seed;
    if (!seed)
        seed = (unsigned)getpid() * 2654435761u;
    for (int tries = 0; tries < 500; tries++) {
        seed = seed * 1103515245u + 12345u;
        uint16_t p = (uint16_t)(20000 + (seed >> 8) % 12000);
        int fd = socket(AF_INET, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
        if (fd < 0)
            return -1;
        struct sockaddr_in sa = {.sin_family = AF_INET, .sin_port = htons(p)};
        inet_pton(AF_INET, "127.0.0.1", &sa.sin_addr);
        if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0 && listen(fd, 128) == 0) {
            *port = p;
            return fd;
        }
        close(fd);
    }
    return -1;
}

int rig_global_init(const char *const *extra_args)
{
    if (g.inited)
        return 0;
    for (int i = 0; i < RIG_REPLICAS; i++)
        if ((g.lfd[i] = listen_low(&g.port[i])) < 0)
            return -1;
    uint16_t gwport;
    int probe = listen_low(&gwport); /* a free port for the worker's listener */
    if (probe < 0)
        return -1;
    close(probe);

    char listen[32], pool[96];
    snprintf(listen, sizeof(listen), "127.0.0.1:%u", gwport);
    snprintf(pool, sizeof(pool), "demo=127.0.0.1:%u,127.0.0.1:%u", g.port[0], g.port[1]);
    const char *base[] = {"rig", "--listen",    listen, "--pool", pool, "--upstream-conns",
                          "1",   "--log-level", "error"};
    char *argv[64];
    int argc = 0, own_auth = 0;
    for (size_t i = 0; i < sizeof(base) / sizeof(base[0]); i++)
        argv[argc++] = (char *)base[i];
    for (size_t i = 0; extra_args && extra_args[i]; i++)
        own_auth |= !strncmp(extra_args[i], "--auth", 6);
    if (!own_auth)
        argv[argc++] = (char *)"--auth=none";
    for (size_t i = 0; extra_args && extra_args[i] && argc < 63; i++)
        argv[argc++] = (char *)extra_args[i];
    argv[argc] = NULL;
    char err[512];
    if (gw_config_parse(&g.cfg, argc, argv, err, sizeof(err)) != 0) {
        fprintf(stderr, "rig: %s\n", err);
        return -1;
    }
    gw_log_set_level(g.cfg.log_level);
    if (gw_auth_init(&g.cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "rig: %s\n", err);
        return -1;
    }
    if (g.cfg.access_log[0] && gw_accesslog_open(g.cfg.access_log, err, sizeof(err)) < 0) {
        fprintf(stderr, "rig: %s\n", err);
        return -1;
    }
    g.routes = gw_routes_from_config(&g.cfg, err, sizeof(err));
    if (!g.routes) {
        fprintf(stderr, "rig: %s\n", err);
        return -1;
    }

    nghttp2_session_callbacks_new(&g.rep_cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(g.rep_cbs, rep_on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(g.rep_cbs, rep_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(g.rep_cbs, rep_on_stream_close);
    nghttp2_session_callbacks_set_on_header_callback(g.rep_cbs, rep_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g.rep_cbs, rep_on_data);
    nghttp2_session_callbacks_set_on_frame_send_callback(g.rep_cbs, rep_on_frame_send);
    nghttp2_session_callbacks_new(&g.cl_cbs);
    nghttp2_session_callbacks_set_on_header_callback(g.cl_cbs, cl_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(g.cl_cbs, cl_on_data);
    nghttp2_session_callbacks_set_on_stream_close_callback(g.cl_cbs, cl_on_stream_close);
    g.inited = 1;
    return 0;
}

int rig_set_pool_tunables(const char *const *kv)
{
    char err[512];
    if (!g.inited)
        return -1;
    struct gw_routes *rt = gw_routes_from_config(&g.cfg, err, sizeof(err));
    if (!rt) {
        fprintf(stderr, "rig: %s\n", err);
        return -1;
    }
    /* Not handed to any worker yet, so still the rig's to change. */
    for (size_t i = 0; kv && kv[i] && kv[i + 1]; i += 2)
        for (size_t p = 0; p < rt->npools; p++)
            if (gw_tunables_set(&rt->pools[p].tun, kv[i], kv[i + 1], err, sizeof(err)) != 0) {
                fprintf(stderr, "rig: tunable %s: %s\n", kv[i], err);
                gw_routes_unref(rt);
                return -1;
            }
    gw_routes_unref(g.routes);
    g.routes = rt;
    return 0;
}

/* Whether every connection the worker has to the replicas is up. */
static int upstreams_alive(struct rig *r)
{
    size_t alive = 0;
    for (size_t i = 0; i < r->w.nups; i++)
        for (int j = 0; j < r->w.ups[i]->nconns; j++)
            alive += r->w.ups[i]->conns[j] && r->w.ups[i]->conns[j]->alive;
    return alive >= RIG_REPLICAS;
}

/* Upstream streams open on the worker's connections. */
static size_t upstream_streams(struct rig *r)
{
    size_t n = 0;
    for (size_t i = 0; i < r->w.nups; i++)
        for (int j = 0; j < r->w.ups[i]->nconns; j++)
            if (r->w.ups[i]->conns[j])
                n += r->w.ups[i]->conns[j]->nstreams;
    return n;
}

int rig_open(struct rig *r)
{
    memset(r, 0, sizeof(*r));
    r->cl.fd = -1;
    r->health = gw_health_registry_new();
    if (!r->health)
        return -1;
    /* Worker 1: worker 0 would also run the active health checks. */
    if (gw_worker_init(&r->w, 1, &g.cfg, g.routes, r->health, NULL, NULL) < 0) {
        gw_worker_free(&r->w);
        gw_health_registry_free(r->health);
        return -1;
    }
    r->opened = 1;
    current_loop = &r->w.loop;
    current_rig = r;
    for (int i = 0; i < RIG_REPLICAS; i++) {
        r->rep[i].lfd = g.lfd[i];
        r->rep[i].port = g.port[i];
        if (gw_loop_add(&r->w.loop, &r->rep[i].lio, g.lfd[i], EPOLLIN, rep_on_accept) < 0)
            return -1;
    }
    r->w.loop.now_ns = gw_now_ns();
    gw_conn_flush_dirty(&r->w.loop); /* the connects queued at init */
    uint64_t end = gw_now_ns() + 2000000000ull;
    while (!upstreams_alive(r)) {
        if (gw_now_ns() > end)
            return -1;
        gw_loop_run_once(&r->w.loop, 10);
    }
    return 0;
}

/* Steps the loop until two iterations in a row handle no event and nothing
 * is dirty, or <end_ns>. */
static void run_until_idle(struct rig *r, uint64_t end_ns)
{
    int quiet = 0;
    while (quiet < 2 && gw_now_ns() < end_ns) {
        int n = gw_loop_run_once(&r->w.loop, 0);
        quiet = n == 0 && !r->w.loop.dirty ? quiet + 1 : 0;
    }
}

void rig_run_for(struct rig *r, int ms)
{
    uint64_t end = gw_now_ns() + (uint64_t)ms * 1000000ull;
    for (uint64_t now = gw_now_ns(); now < end; now = gw_now_ns()) {
        uint64_t left_ms = (end - now + 999999) / 1000000;
        gw_loop_run_once(&r->w.loop, left_ms < 5 ? (int)left_ms : 5);
    }
}

int rig_run_until(struct rig *r, int (*done)(struct rig *r, void *arg), void *arg, int max_ms)
{
    uint64_t end = gw_now_ns() + (uint64_t)max_ms * 1000000ull;
    while (!done(r, arg)) {
        if (gw_now_ns() > end)
            return -1;
        gw_loop_run_once(&r->w.loop, 1);
    }
    return 0;
}

int rig_wait_client(struct rig *r, int max_ms)
{
    struct rig_client *cl = &r->cl;
    uint64_t end = gw_now_ns() + (uint64_t)max_ms * 1000000ull;
    if (!cl->sess) {
        /* Raw: write everything, let the gateway and the replicas answer what
         * they can, then half-close and wait for the gateway to close. */
        while (!cl->done && cl->outoff < cl->outlen && gw_now_ns() < end)
            gw_loop_run_once(&r->w.loop, 1);
        run_until_idle(r, end);
        if (!cl->done && !cl->shut) {
            shutdown(cl->fd, SHUT_WR);
            cl->shut = 1;
        }
    }
    while (!cl->done && !(cl->sess && cl->stream_closed)) {
        if (gw_now_ns() > end)
            return -1;
        gw_loop_run_once(&r->w.loop, 5);
    }
    return 0;
}

int rig_settle(struct rig *r, int max_ms)
{
    uint64_t end = gw_now_ns() + (uint64_t)max_ms * 1000000ull;
    client_close(r);
    for (;;) {
        run_until_idle(r, end);
        if (r->w.nconns == 0 && upstream_streams(r) == 0 && !r->w.loop.dirty)
            return 0;
        if (gw_now_ns() > end)
            return -1;
        gw_loop_run_once(&r->w.loop, 5);
    }
}

void rig_close(struct rig *r)
{
    if (!r->opened)
        return;
    client_close(r);
    for (int i = 0; i < RIG_REPLICAS; i++) {
        while (r->rep[i].conns)
            rconn_free(r->rep[i].conns);
        gw_loop_del(&r->w.loop, &r->rep[i].lio);
    }
    gw_worker_free(&r->w);
    gw_health_registry_free(r->health);
    free(cl_out.buf);
    cl_out = (struct pend){0};
    current_loop = NULL;
    current_rig = NULL;
    r->opened = 0;
}
