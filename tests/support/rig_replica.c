/* SPDX-License-Identifier: Apache-2.0 */
/* rig_replica — the engine rig's scripted in-process replicas; see
 * engine_rig.h for how they answer and what they record.
 *
 * Each accepted connection is an nghttp2 server session served from the
 * loop of the rig being run (rig_replicas_bind): the listeners and
 * connections are gw_io entries of that loop, and the answer delays and
 * scripted closes are timers of it. Memory comes from malloc, never from
 * the gateway's wrapper (see engine_rig.c).
 */
#include "rig_internal.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

/* The replicas' session callbacks (rig_replicas_init). */
static nghttp2_session_callbacks *rep_cbs;

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
        rig_close_rst(rc->fd);
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
    int rc_out = rig_sess_flush(rc->fd, rc->sess, &rc->out);
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
        rig_set_nonblock_nodelay(fd);
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
        if (nghttp2_session_server_new(&rc->sess, rep_cbs, rc) != 0) {
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

/* --- the rig's side ------------------------------------------------------------ */

void rig_replicas_init(void)
{
    nghttp2_session_callbacks_new(&rep_cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(rep_cbs, rep_on_begin_headers);
    nghttp2_session_callbacks_set_on_frame_recv_callback(rep_cbs, rep_on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(rep_cbs, rep_on_stream_close);
    nghttp2_session_callbacks_set_on_header_callback(rep_cbs, rep_on_header);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(rep_cbs, rep_on_data);
    nghttp2_session_callbacks_set_on_frame_send_callback(rep_cbs, rep_on_frame_send);
}

void rig_replicas_bind(struct rig *r)
{
    current_loop = r ? &r->w.loop : NULL;
    current_rig = r;
}

int rig_replica_listen(struct gw_loop *loop, struct rig_replica *rep)
{
    return gw_loop_add(loop, &rep->lio, rep->lfd, EPOLLIN, rep_on_accept);
}

void rig_replica_close(struct gw_loop *loop, struct rig_replica *rep)
{
    while (rep->conns)
        rconn_free(rep->conns);
    gw_loop_del(loop, &rep->lio);
}
