/* h2srv — client-facing HTTP/2 server sessions; see h2srv.h. */
#include "h2srv.h"

#include <arpa/inet.h>
#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <openssl/err.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call.h"
#include "log.h"
#include "mem.h"
#include "tls.h"
#include "worker.h"

void gw_srv_conn_add_call(struct gw_srv_conn *sc, struct gw_call *c)
{
    c->prev = NULL;
    c->next = sc->calls;
    if (sc->calls)
        sc->calls->prev = c;
    sc->calls = c;
}

void gw_srv_conn_remove_call(struct gw_srv_conn *sc, struct gw_call *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else if (sc->calls == c)
        sc->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    c->prev = c->next = NULL;
}

static struct gw_call *stream_call(nghttp2_session *s, int32_t sid)
{
    return gw_conn_stream_data(s, sid);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_srv_conn *sc = ud;
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct gw_call *c = gw_call_new(sc, frame->hd.stream_id);
    if (!c) {
        nghttp2_submit_rst_stream(s, NGHTTP2_FLAG_NONE, frame->hd.stream_id,
                                  NGHTTP2_REFUSED_STREAM);
        return 0;
    }
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, c);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    if (frame->hd.type != NGHTTP2_HEADERS || frame->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0; /* request trailers carry nothing gRPC uses */
    struct gw_call *c = stream_call(s, frame->hd.stream_id);
    if (!c)
        return 0;
    if (gw_call_on_req_header(c, name, namelen, value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE; /* resets the stream */
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_call *c;
    switch (frame->hd.type) {
    case NGHTTP2_HEADERS:
        c = stream_call(s, frame->hd.stream_id);
        if (!c)
            return 0;
        if (frame->headers.cat == NGHTTP2_HCAT_REQUEST)
            gw_call_on_req_headers_done(c);
        if (frame->hd.flags & NGHTTP2_FLAG_END_STREAM)
            gw_call_on_req_end(c);
        break;
    case NGHTTP2_DATA:
        c = stream_call(s, frame->hd.stream_id);
        if (c && (frame->hd.flags & NGHTTP2_FLAG_END_STREAM))
            gw_call_on_req_end(c);
        break;
    default:
        break;
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                              size_t len, void *ud)
{
    struct gw_call *c = stream_call(s, sid);
    if (!c) {
        nghttp2_session_consume(s, sid, len);
        return 0;
    }
    gw_call_on_req_data(c, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
    struct gw_call *c = stream_call(s, sid);
    if (c) {
        nghttp2_session_set_stream_user_data(s, sid, NULL);
        gw_call_on_client_close(c, error_code);
    }
    return 0;
}

/* Logs the GOAWAY frames the gateway sends with an error: they say why a
 * client connection was torn down (a protocol violation nghttp2 found). */
static int on_frame_send(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_srv_conn *sc = ud;
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

int gw_h2srv_setup(struct gw_worker *w)
{
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
    /* Abuse limits, set on purpose rather than inherited: rapid reset
     * (CVE-2023-44487) and CONTINUATION floods (CVE-2024-28182). */
    nghttp2_option_set_stream_reset_rate_limit(w->srv_opt, 1000, 100);
    nghttp2_option_set_max_continuations(w->srv_opt, 16);
    nghttp2_option_set_max_outbound_ack(w->srv_opt, 1000);
    nghttp2_option_set_max_settings(w->srv_opt, 32);
    return 0;
}

static const struct gw_conn_ops srv_conn_ops;

static void srv_conn_on_close(struct gw_conn *conn, const char *reason)
{
    struct gw_srv_conn *sc = (struct gw_srv_conn *)conn;
    struct gw_worker *w = sc->w;
    /* nghttp2_session_del runs no stream-close callbacks: end the calls here. */
    while (sc->calls) {
        struct gw_call *c = sc->calls;
        nghttp2_session_set_stream_user_data(conn->sess, c->sid, NULL);
        gw_call_on_client_close(c, NGHTTP2_CANCEL);
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
    gw_metrics_conns_add(w->metrics, -1);
    gw_free(sc);
    gw_worker_check_drained(w);
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

static void accept_one(struct gw_worker *w, int fd, const struct sockaddr_storage *ss)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    struct gw_srv_conn *sc = gw_calloc(1, sizeof(*sc));
    if (!sc) {
        close(fd);
        return;
    }
    sc->w = w;
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
    gw_metrics_conns_add(w->metrics, 1);
    gw_conn_mark_dirty(&sc->conn);
    return;

fail_conn:
    gw_loop_del(&w->loop, &sc->conn.io);
    gw_conn_release(&sc->conn);
    close(fd);
    gw_free(sc);
}

void gw_h2srv_on_listen(struct gw_io *io, uint32_t events)
{
    struct gw_worker *w = (struct gw_worker *)((char *)io - offsetof(struct gw_worker, listen_io));
    for (int i = 0; i < 32 && w->listen_io.fd >= 0; i++) {
        struct sockaddr_storage ss;
        socklen_t sl = sizeof(ss);
        int fd = accept4(io->fd, (struct sockaddr *)&ss, &sl, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0) {
            if (errno != EAGAIN && errno != EINTR && errno != ECONNABORTED)
                gw_log(GW_LOG_WARN, "accept_failed", "{s:s}", "error", strerror(errno));
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
