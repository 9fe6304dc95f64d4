/* SPDX-License-Identifier: Apache-2.0 */
/* h2srv — client-facing HTTP/2 server sessions; see h2srv.h. */
#include "h2/h2srv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <openssl/err.h>
#include <stdatomic.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "h2/tls.h"
#include "engine/wstate.h"

#define MS_NS 1000000ULL

/* Client connections of every worker: --max-conns counts them all. */
static atomic_size_t total_conns;

void gw_srv_conn_add_stream(struct gw_srv_conn *sc, struct gw_srv_stream *st)
{
    st->prev = NULL;
    st->next = sc->streams;
    if (sc->streams)
        sc->streams->prev = st;
    sc->streams = st;
}

void gw_srv_conn_remove_stream(struct gw_srv_conn *sc, struct gw_srv_stream *st)
{
    if (st->prev)
        st->prev->next = st->next;
    else if (sc->streams == st)
        sc->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
}

void gw_h2srv_check_drained(struct gw_worker *w)
{
    if (!w->draining)
        return;
    /* A connection whose calls are all done gets its final GOAWAY; nghttp2
     * then reports the session finished and conn closes it. */
    for (struct gw_srv_conn *sc = w->conns; sc; sc = sc->next) {
        if (!sc->streams && !sc->goaway_sent) {
            sc->goaway_sent = 1;
            nghttp2_submit_goaway(sc->conn.sess, NGHTTP2_FLAG_NONE,
                                  nghttp2_session_get_last_proc_stream_id(sc->conn.sess),
                                  NGHTTP2_NO_ERROR, NULL, 0);
            gw_conn_mark_dirty(&sc->conn);
        }
    }
    if (w->nconns == 0)
        w->loop.stop = 1;
}

static struct gw_srv_stream *stream_of(nghttp2_session *s, int32_t sid)
{
    return gw_conn_stream_data(s, sid);
}

/* The engine behind the connection's streams. */
static const struct gw_srv_stream_ops *ops_of(const struct gw_srv_conn *sc)
{
    return sc->w->srv_ops;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_srv_conn *sc = ud;
    gw_hdr_budget_reset(&sc->conn.hdr_budget);
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct gw_srv_stream *c = ops_of(sc)->open(sc, frame->hd.stream_id);
    if (!c) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, c);
    return 0;
}

/* A client header block passed the limits: counted, logged (at most once a
 * second), and the request refused; trailers are ignored anyway. */
static void header_list_refused(struct gw_srv_conn *sc, const nghttp2_frame *frame,
                                struct gw_srv_stream *c)
{
    struct gw_worker *w = sc->w;
    const struct gw_hdr_budget *b = &sc->conn.hdr_budget;
    uint64_t hits = gw_worker_limit_hit(w, GW_LIMIT_HEADER_LIST_CLIENT);
    if (hits)
        gw_log(GW_LOG_WARN, "header_list_refused", "{s:s, s:s, s:i, s:I, s:i, s:i, s:i, s:I}",
               "side", "client", "peer", sc->peer, "stream", frame->hd.stream_id, "bytes_at_least",
               (json_int_t)b->bytes, "fields_at_least", (int)b->count, "max_bytes",
               (int)w->cfg->max_header_list_bytes, "max_fields", (int)w->cfg->max_header_count,
               "hits", (json_int_t)hits);
    if (c)
        ops_of(sc)->refuse_header_list(c);
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    struct gw_srv_conn *sc = ud;
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    /* Counted before anything is copied: HPACK lets one byte stand for a
     * 4 KB field, so the bytes on the wire say nothing about the size. */
    struct gw_hdr_budget *b = &sc->conn.hdr_budget;
    int request = frame->headers.cat == NGHTTP2_HCAT_REQUEST;
    struct gw_srv_stream *c = request ? stream_of(s, frame->hd.stream_id) : NULL;
    const struct gw_config *cfg = sc->w->cfg;
    int was_over = b->over;
    if (gw_hdr_budget_add(b, namelen, valuelen, cfg->max_header_list_bytes, cfg->max_header_count) <
        0) {
        if (!was_over)
            header_list_refused(sc, frame, c);
        if (gw_hdr_budget_far_over(b, cfg->max_header_list_bytes, cfg->max_header_count)) {
            /* Amplification, not a client with a little too much metadata:
             * give up on the answer and reset the stream, so that nghttp2
             * calls back (and validates fields) no more for this block. */
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                      NGHTTP2_ENHANCE_YOUR_CALM);
            return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
        }
        return 0; /* nothing more is copied; refused when the block ends */
    }
    if (!c)
        return 0; /* request trailers carry nothing gRPC uses */
    if (ops_of(sc)->on_header(c, name, namelen, value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    return 0;
}

static void conn_timer_arm(struct gw_srv_conn *sc, uint64_t when_ns);

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_srv_conn *sc = ud;
    struct gw_srv_stream *c;
    sc->last_frame_ns = sc->w->loop.now_ns;
    if (!sc->got_frame) {
        /* The preface and a first frame came: from now on the timer is the
         * idle timeout's. */
        sc->got_frame = 1;
        uint32_t idle = sc->w->cfg->idle_timeout_ms;
        if (idle)
            conn_timer_arm(sc, sc->last_frame_ns + (uint64_t)idle * MS_NS);
        else
            gw_loop_timer_cancel(&sc->w->loop, &sc->timer);
    }
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        c = stream_of(s, frame->hd.stream_id);
        if (!c)
            return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            ops_of(sc)->on_headers_done(c);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            ops_of(sc)->on_end(c);
        break;
    case NGHTTP2_DATA:
        c = stream_of(s, frame->hd.stream_id);
        if (c && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            ops_of(sc)->on_end(c);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                              size_t len, void *ud)
{
    struct gw_srv_stream *c = stream_of(s, sid);
    if (!c) {
        nghttp2_session_consume(s, sid, len);
        return 0;
    }
    ops_of(ud)->on_data(c, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
    struct gw_srv_stream *c = stream_of(s, sid);
    if (c) {
        nghttp2_session_set_stream_user_data(s, sid, NULL);
        ops_of(ud)->on_close(c, error_code);
    }
    return 0;
}

/* Ends answered requests the client is still sending; logs the GOAWAY frames
 * the gateway sends with an error: they say why a client connection was torn
 * down (a protocol violation nghttp2 found). */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_srv_conn *sc = ud;
    if (frame->hd.type == NGHTTP2_HEADERS && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct gw_srv_stream *c = stream_of(s, frame->hd.stream_id);
        if (c && ops_of(sc)->answered_early(c))
            /* The call is answered (refused, failed, or the replica's
             * status relayed): the rest of the request is of no use, and a
             * client that never ends its stream must not keep the call and
             * the bytes it holds (RFC 9113 section 8.1). Sent after the
             * answer, which a reset would discard. */
            nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id, NGHTTP2_NO_ERROR);
    }
    if (frame->hd.type == NGHTTP2_GOAWAY && frame->goaway.error_code != NGHTTP2_NO_ERROR)
        gw_log(GW_LOG_WARN, "client_goaway", "{s:s, s:s, s:s%}", "peer", sc->peer, "error",
               nghttp2_http2_strerror(frame->goaway.error_code), "detail",
               (const char *)frame->goaway.opaque_data, frame->goaway.opaque_data_len);
    return 0;
}

static int on_invalid_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, int lib_error_code,
                                 void *ud)
{
    struct gw_srv_conn *sc = ud;
    gw_log(GW_LOG_DEBUG, "client_invalid_frame", "{s:s, s:i, s:i, s:s}", "peer", sc->peer, "type",
           frame->hd.type, "stream", frame->hd.stream_id, "error",
           nghttp2_strerror(lib_error_code));
    return 0;
}

int gw_h2srv_setup(struct gw_worker *w, const struct gw_srv_stream_ops *ops)
{
    w->srv_ops = ops;
    if (nghttp2_session_callbacks_new(&w->srv_cbs) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(w->srv_cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(w->srv_cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(w->srv_cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(w->srv_cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(w->srv_cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_send_callback(w->srv_cbs, on_frame_send);
    nghttp2_session_callbacks_set_on_invalid_frame_recv_callback(w->srv_cbs, on_invalid_frame_recv);
    if (nghttp2_option_new(&w->srv_opt) != 0)
        return -ENOMEM;
    nghttp2_option_set_no_auto_window_update(w->srv_opt, 1);
    gw_conn_set_session_limits(w->srv_opt, w->cfg->max_header_list_bytes);
    /* Set on purpose rather than inherited: rapid reset (CVE-2023-44487),
     * a server's concern; the floods both sides share are in conn. */
    nghttp2_option_set_stream_reset_rate_limit(w->srv_opt, 1000, 100);
    return 0;
}

static const struct gw_conn_ops srv_conn_ops;

static void srv_conn_on_close(struct gw_conn *conn, const char *reason)
{
    struct gw_srv_conn *sc = (struct gw_srv_conn *)conn;
    struct gw_worker *w = sc->w;
    /* nghttp2_session_del runs no stream-close callbacks: end the calls here. */
    while (sc->streams) {
        struct gw_srv_stream *c = sc->streams;
        nghttp2_session_set_stream_user_data(conn->sess, c->sid, NULL);
        ops_of(sc)->on_close(c, NGHTTP2_CANCEL);
    }
    gw_log(GW_LOG_DEBUG, "client_closed", "{s:s, s:s}", "peer", sc->peer, "reason", reason);
    gw_tls_identity_free(sc->peer_cn, sc->peer_sans, sc->peer_nsans);
    nghttp2_session_del(conn->sess);
    conn->sess = NULL;
    gw_conn_release(conn);
    if (sc->prev)
        sc->prev->next = sc->next;
    else
        w->conns = sc->next;
    if (sc->next)
        sc->next->prev = sc->prev;
    w->nconns--;
    atomic_fetch_sub_explicit(&total_conns, 1, memory_order_relaxed);
    gw_loop_timer_cancel(&w->loop, &sc->timer);
    gw_metrics_conns_add(w->metrics, -1);
    gw_free(sc);
    gw_h2srv_check_drained(w);
}

/* Counts and logs a client's TLS handshake; after a verified client
 * certificate (mutual TLS), fills the connection's peer identity, which the
 * authentication chain reads to map a tenant. */
static int srv_conn_on_tls(struct gw_conn *conn, int fail, const char *detail)
{
    struct gw_srv_conn *sc = (struct gw_srv_conn *)conn;
    struct gw_worker *w = sc->w;
    if (fail >= 0) {
        gw_metrics_tls_failed(w->metrics, GW_TLS_SIDE_CLIENT, fail);
        /* A connection closed before its handshake is what TCP health
         * checks and port probes do: counted, but logged at debug only. */
        gw_log(fail == GW_TLS_FAIL_PEER_CLOSED ? GW_LOG_DEBUG : GW_LOG_INFO, "tls_handshake_failed",
               "{s:s, s:s, s:s}", "peer", sc->peer, "reason", gw_metrics_tls_fail_name(fail),
               "detail", detail);
        return 0;
    }
    gw_metrics_tls_ok(w->metrics, GW_TLS_SIDE_CLIENT);
    X509 *x = SSL_get0_peer_certificate(conn->ssl);
    if (x && (SSL_get_verify_mode(conn->ssl) & SSL_VERIFY_PEER) &&
        SSL_get_verify_result(conn->ssl) == X509_V_OK) {
        if (gw_tls_identity(x, &sc->peer_cn, &sc->peer_sans, &sc->peer_nsans) < 0) {
            gw_log(GW_LOG_WARN, "client_refused", "{s:s, s:s}", "peer", sc->peer, "error",
                   "out of memory reading the client certificate");
            return -1;
        }
        sc->peer_verified = 1;
    }
    if (gw_log_enabled(GW_LOG_DEBUG)) {
        json_t *sans = json_array();
        for (size_t i = 0; i < sc->peer_nsans; i++)
            json_array_append_new(sans, json_string(sc->peer_sans[i]));
        gw_log(GW_LOG_DEBUG, "client_tls", "{s:s, s:s, s:s, s:b, s:s?, s:o}", "peer", sc->peer,
               "version", SSL_get_version(conn->ssl), "cipher",
               SSL_CIPHER_get_name(SSL_get_current_cipher(conn->ssl)), "peer_verified",
               sc->peer_verified, "peer_cn", sc->peer_cn, "peer_sans", sans);
    }
    return 0;
}

static const struct gw_conn_ops srv_conn_ops = {.on_close = srv_conn_on_close,
                                                .on_tls_handshake = srv_conn_on_tls};

static void conn_timer_arm(struct gw_srv_conn *sc, uint64_t when_ns)
{
    if (gw_loop_timer_at(&sc->w->loop, &sc->timer, when_ns) < 0)
        gw_log(GW_LOG_WARN, "client_timer_failed", "{s:s}", "peer", sc->peer);
}

/* The connection's one timer: the preface deadline until the first frame,
 * then the idle deadline (re-armed from the latest frame while the
 * connection is busy or heard from). */
static void conn_timer_cb(struct gw_timer *t, void *arg)
{
    struct gw_srv_conn *sc = arg;
    struct gw_worker *w = sc->w;
    const struct gw_config *cfg = w->cfg;
    if (sc->conn.closing || sc->conn.closed)
        return;
    uint64_t now = w->loop.now_ns, hits;
    if (!sc->got_frame) {
        hits = gw_worker_limit_hit(w, GW_LIMIT_PREFACE_TIMEOUT);
        if (hits)
            gw_log(GW_LOG_INFO, "client_preface_timeout", "{s:s, s:i, s:b, s:I}", "peer", sc->peer,
                   "timeout_ms", (int)cfg->preface_timeout_ms, "tls_handshake_done",
                   sc->tls && !sc->conn.tls_hs, "hits", (json_int_t)hits);
        if (!sc->conn.tls_hs)
            nghttp2_session_terminate_session(sc->conn.sess, NGHTTP2_SETTINGS_TIMEOUT);
        gw_conn_close_flush(&sc->conn, "no HTTP/2 preface within --preface-timeout-ms");
        return;
    }
    uint64_t idle = (uint64_t)cfg->idle_timeout_ms * MS_NS;
    if (!idle)
        return;
    if (sc->streams || now < sc->last_frame_ns + idle) {
        conn_timer_arm(sc, (sc->streams ? now : sc->last_frame_ns) + idle);
        return;
    }
    hits = gw_worker_limit_hit(w, GW_LIMIT_IDLE_TIMEOUT);
    if (hits)
        gw_log(GW_LOG_INFO, "client_idle_timeout", "{s:s, s:i, s:I}", "peer", sc->peer,
               "timeout_ms", (int)cfg->idle_timeout_ms, "hits", (json_int_t)hits);
    static const char msg[] = "idle connection: no call and no frame within --idle-timeout-ms";
    nghttp2_submit_goaway(sc->conn.sess, NGHTTP2_FLAG_NONE,
                          nghttp2_session_get_last_proc_stream_id(sc->conn.sess), NGHTTP2_NO_ERROR,
                          (const uint8_t *)msg, sizeof(msg) - 1);
    gw_conn_close_flush(&sc->conn, "idle timeout");
}

/* Whether <w> may take one more client connection; counts and logs a
 * refusal. */
static int conn_allowed(struct gw_worker *w)
{
    const struct gw_config *cfg = w->cfg;
    size_t total = atomic_load_explicit(&total_conns, memory_order_relaxed);
    int per_worker = cfg->max_conns_per_worker && w->nconns >= cfg->max_conns_per_worker;
    if (total < cfg->max_conns && !per_worker)
        return 1;
    uint64_t hits = gw_worker_limit_hit(w, GW_LIMIT_MAX_CONNS);
    if (hits)
        gw_log(GW_LOG_WARN, "client_conn_refused", "{s:s, s:I, s:I, s:i, s:i, s:i, s:I}", "limit",
               per_worker ? "--max-conns-per-worker" : "--max-conns", "open_total",
               (json_int_t)total, "open_worker", (json_int_t)w->nconns, "worker", w->index,
               "max_conns", (int)cfg->max_conns, "max_conns_per_worker",
               (int)cfg->max_conns_per_worker, "hits", (json_int_t)hits);
    return 0;
}

static void accept_one(struct gw_worker *w, int fd, const struct sockaddr_storage *ss)
{
    if (!conn_allowed(w)) {
        close(fd);
        return;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct gw_srv_conn *sc = gw_calloc(1, sizeof(*sc));
    if (!sc) {
        close(fd);
        return;
    }
    sc->w = w;
    gw_timer_init(&sc->timer, conn_timer_cb, sc);
    if (ss->ss_family == AF_INET) {
        const struct sockaddr_in *in = (const struct sockaddr_in *)ss;
        char a[INET_ADDRSTRLEN];
        inet_ntop(AF_INET, &in->sin_addr, a, sizeof(a));
        snprintf(sc->peer, sizeof(sc->peer), "%s:%u", a, ntohs(in->sin_port));
    } else if (ss->ss_family == AF_INET6) {
        const struct sockaddr_in6 *in6 = (const struct sockaddr_in6 *)ss;
        char a[INET6_ADDRSTRLEN];
        inet_ntop(AF_INET6, &in6->sin6_addr, a, sizeof(a));
        snprintf(sc->peer, sizeof(sc->peer), "[%s]:%u", a, ntohs(in6->sin6_port));
    }
    if (gw_conn_init(&sc->conn, &w->loop, fd, 0, &srv_conn_ops, sc) < 0) {
        close(fd);
        gw_free(sc);
        return;
    }
    SSL_CTX *tls = gw_worker_tls_ctx(w);
    if (tls) {
        SSL *ssl = SSL_new(tls);
        if (!ssl ||
            gw_conn_tls_start(&sc->conn, ssl, 0,
                              (uint64_t)w->cfg->tls_handshake_timeout_ms * 1000000ULL) < 0) {
            if (!ssl)
                ERR_clear_error();
            gw_log(GW_LOG_WARN, "accept_failed", "{s:s, s:s}", "peer", sc->peer, "error",
                   "cannot start TLS (out of memory)");
            goto fail_conn;
        }
        sc->tls = 1;
    }
    if (nghttp2_session_server_new2(&sc->conn.sess, w->srv_cbs, sc, w->srv_opt) != 0)
        goto fail_conn;
    const struct gw_config *cfg = w->cfg;
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_HEADER_TABLE_SIZE, GW_HPACK_TABLE_SIZE},
        {NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, cfg->max_concurrent_streams},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, cfg->stream_window_bytes},
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, cfg->max_header_list_bytes},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(sc->conn.sess, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(sc->conn.sess, NGHTTP2_FLAG_NONE, 0,
                                          (int32_t)cfg->conn_window_bytes);
    sc->next = w->conns;
    if (w->conns)
        w->conns->prev = sc;
    w->conns = sc;
    w->nconns++;
    atomic_fetch_add_explicit(&total_conns, 1, memory_order_relaxed);
    gw_metrics_conns_add(w->metrics, 1);
    conn_timer_arm(sc, w->loop.now_ns + (uint64_t)cfg->preface_timeout_ms * MS_NS);
    gw_conn_mark_dirty(&sc->conn);
    return;

fail_conn:
    gw_loop_del(&w->loop, &sc->conn.io);
    gw_conn_release(&sc->conn);
    close(fd);
    gw_free(sc);
}

void gw_h2srv_accept_resume(struct gw_timer *t, void *arg)
{
    struct gw_worker *w = arg;
    if (!w->accept_paused || w->listen_io.fd < 0)
        return;
    w->accept_paused = 0;
    gw_loop_mod(&w->loop, &w->listen_io, EPOLLIN);
}

/* accept failed with <err> for lack of descriptors or memory: the pending
 * connection stays in the backlog and the level-triggered listener would
 * wake the loop again at once, forever. Take it out of epoll for a moment. */
static void accept_pause(struct gw_worker *w, int err)
{
    uint64_t hits = gw_worker_limit_hit(w, GW_LIMIT_ACCEPT_NOFILE);
    if (hits)
        gw_log(GW_LOG_WARN, "accept_paused", "{s:s, s:i, s:I, s:i, s:I}", "error", strerror(err),
               "worker", w->index, "open_worker", (json_int_t)w->nconns, "pause_ms",
               GW_ACCEPT_PAUSE_MS, "hits", (json_int_t)hits);
    if (gw_loop_mod(&w->loop, &w->listen_io, 0) < 0)
        return;
    w->accept_paused = 1;
    if (gw_loop_timer_in(&w->loop, &w->accept_timer, GW_ACCEPT_PAUSE_MS * MS_NS) < 0)
        gw_h2srv_accept_resume(&w->accept_timer, w);
}

void gw_h2srv_on_listen(struct gw_io *io, uint32_t events)
{
    struct gw_worker *w = (struct gw_worker *)((char *)io - offsetof(struct gw_worker, listen_io));
    for (int i = 0; i < 32 && w->listen_io.fd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            int err = errno;
            if (err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM)
                accept_pause(w, err);
            else if (err != EAGAIN && err != EINTR && err != ECONNABORTED)
                gw_log(GW_LOG_WARN, "accept_failed", "{s:s}", "error", strerror(err));
            return;
        }
        accept_one(w, fd, &ss);
    }
}

void gw_h2srv_goaway_all(struct gw_worker *w)
{
    for (struct gw_srv_conn *sc = w->conns; sc; sc = sc->next) {
        if (sc->conn.tls_hs) {
            /* No HTTP/2 yet, so no call to wait for: do not let a
             * half-done handshake hold the drain up. */
            gw_conn_close(&sc->conn, "draining before the TLS handshake finished");
            continue;
        }
        nghttp2_submit_shutdown_notice(sc->conn.sess);
        gw_conn_mark_dirty(&sc->conn);
    }
}

void gw_h2srv_close_all(struct gw_worker *w)
{
    for (struct gw_srv_conn *sc = w->conns; sc; sc = sc->next)
        gw_conn_close(&sc->conn, "shutdown grace period over");
}
