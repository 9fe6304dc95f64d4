/* upstream — HTTP/2 client connections to replicas; see upstream.h. */
#include "upstream.h"

#include <errno.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "call.h"
#include "log.h"
#include "mem.h"
#include "route.h"
#include "worker.h"

#define BACKOFF_MIN_NS 100000000ULL  /* 100 ms */
#define BACKOFF_MAX_NS 5000000000ULL /* 5 s */

/* The attempt a stream belongs to (its stream user data), or NULL. */
static struct gw_attempt *stream_attempt(nghttp2_session *s, int32_t sid)
{
    return gw_conn_stream_data(s, sid);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_attempt *a = stream_attempt(s, frame->hd.stream_id);
    if (a && frame->hd.type == NGHTTP2_HEADERS)
        a->in_trailers = frame->headers.cat == NGHTTP2_HCAT_HEADERS;
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gw_attempt *a = stream_attempt(s, frame->hd.stream_id);
    if (a && gw_call_on_resp_header(a, name, namelen, value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_up_conn *uc = ud;
    if (frame->hd.type == NGHTTP2_HEADERS) {
        struct gw_attempt *a = stream_attempt(s, frame->hd.stream_id);
        if (a)
            gw_call_on_resp_headers_done(a, frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* Streams above last_stream_id are closed by nghttp2 (REFUSED_STREAM);
         * the rest finish; no new stream goes here. */
        uc->goaway = 1;
        gw_log(GW_LOG_INFO, "replica_goaway", "{s:s, s:i}", "replica", uc->up->addr,
               "last_stream_id", frame->goaway.last_stream_id);
        if (uc->nstreams == 0)
            gw_conn_close(&uc->conn, "GOAWAY from replica");
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                              size_t len, void *ud)
{
    struct gw_attempt *a = stream_attempt(s, sid);
    if (!a) {
        nghttp2_session_consume(s, sid, len);
        return 0;
    }
    gw_call_on_resp_data(a, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
    struct gw_attempt *a = stream_attempt(s, sid);
    if (a) {
        nghttp2_session_set_stream_user_data(s, sid, NULL);
        gw_call_on_upstream_close(a, error_code);
    }
    return 0;
}

/* A request whose HEADERS never left (GOAWAY, stream ids exhausted, ...):
 * reported here and not through on_stream_close. Nothing reached the replica. */
static int on_frame_not_send(nghttp2_session *s, const nghttp2_frame *frame, int lib_error_code,
                             void *ud)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gw_attempt *a = stream_attempt(s, frame->hd.stream_id);
    if (!a)
        return 0;
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, NULL);
    gw_upstream_detach(a);
    gw_call_on_upstream_lost(a, 0, nghttp2_strerror(lib_error_code));
    return 0;
}

int gw_upstream_setup(struct gw_worker *w)
{
    if (nghttp2_session_callbacks_new(&w->up_cbs) != 0)
        return -ENOMEM;
    nghttp2_session_callbacks_set_on_begin_headers_callback(w->up_cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(w->up_cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(w->up_cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_data_chunk_recv_callback(w->up_cbs, on_data_chunk_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(w->up_cbs, on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(w->up_cbs, on_frame_not_send);
    if (nghttp2_option_new(&w->up_opt) != 0)
        return -ENOMEM;
    nghttp2_option_set_no_auto_window_update(w->up_opt, 1);
    /* Until the replica's SETTINGS arrive, assume the common gRPC limit. */
    nghttp2_option_set_peer_max_concurrent_streams(w->up_opt, 100);

    return 0;
}

static struct gw_upstream *upstream_find(struct gw_worker *w, const char *addr)
{
    for (size_t i = 0; i < w->nups; i++)
        if (!strcmp(w->ups[i]->addr, addr))
            return w->ups[i];
    return NULL;
}

static struct gw_upstream *upstream_new(struct gw_worker *w, const struct gw_replica *r)
{
    struct gw_upstream **nu = gw_realloc(w->ups, (w->nups + 1) * sizeof(*nu));
    if (!nu)
        return NULL;
    w->ups = nu;
    struct gw_upstream *up = gw_calloc(1, sizeof(*up));
    if (!up)
        return NULL;
    up->w = w;
    up->metrics = gw_metrics_replica(w->metrics, r->addr);
    up->nconns = w->cfg->upstream_conns;
    up->addr = gw_strdup(r->addr);
    up->conns = gw_calloc((size_t)up->nconns, sizeof(*up->conns));
    if (!up->addr || !up->conns) {
        gw_free(up->addr);
        gw_free(up->conns);
        gw_free(up);
        return NULL;
    }
    memcpy(&up->sa, &r->sa, r->salen);
    up->salen = r->salen;
    w->ups[w->nups++] = up;
    return up;
}

int gw_upstream_adopt(struct gw_worker *w, const struct gw_routes *rt)
{
    struct gw_upstream **map = gw_calloc(rt->nreplicas ? rt->nreplicas : 1, sizeof(*map));
    if (!map)
        return -ENOMEM;
    for (size_t i = 0; i < rt->nreplicas; i++) {
        struct gw_upstream *up = upstream_find(w, rt->replicas[i].addr);
        if (!up)
            up = upstream_new(w, &rt->replicas[i]);
        if (!up) {
            gw_free(map);
            return -ENOMEM;
        }
        map[i] = up;
    }
    for (size_t i = 0; i < w->nups; i++)
        w->ups[i]->in_use = 0;
    for (size_t i = 0; i < rt->nreplicas; i++)
        map[i]->in_use = 1;
    gw_free(w->upmap);
    w->upmap = map;
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_upstream *up = w->ups[i];
        if (up->in_use) {
            /* Connect now, so the first calls find a connection up and a
             * dead replica is known before a call is routed to it. */
            int any = 0;
            for (int j = 0; j < up->nconns; j++)
                any |= up->conns[j] != NULL;
            if (!any)
                gw_upstream_conn_for(up);
            continue;
        }
        /* Gone from the snapshot: no new streams; close when idle. */
        for (int j = 0; j < up->nconns; j++) {
            struct gw_up_conn *uc = up->conns[j];
            if (!uc)
                continue;
            uc->goaway = 1;
            if (uc->nstreams == 0)
                gw_conn_close(&uc->conn, "replica left the routing table");
        }
    }
    return 0;
}

static void up_conn_free(struct gw_up_conn *uc)
{
    if (uc->conn.sess)
        nghttp2_session_del(uc->conn.sess);
    gw_conn_release(&uc->conn);
    gw_free(uc);
}

void gw_upstream_teardown(struct gw_worker *w)
{
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_upstream *up = w->ups[i];
        for (int j = 0; up->conns && j < up->nconns; j++) {
            struct gw_up_conn *uc = up->conns[j];
            if (!uc)
                continue;
            gw_loop_timer_cancel(&w->loop, &uc->connect_timer);
            if (uc->conn.io.fd >= 0) {
                gw_loop_del(&w->loop, &uc->conn.io);
                close(uc->conn.io.fd);
            }
            up_conn_free(uc);
        }
        gw_free(up->conns);
        gw_free(up->addr);
        gw_free(up);
    }
    gw_free(w->ups);
    w->ups = NULL;
    w->nups = 0;
    gw_free(w->upmap);
    w->upmap = NULL;
}

/* Whether a connection to <up> is up (for the replica_reachable gauge). */
static int any_connected(const struct gw_upstream *up)
{
    for (int i = 0; i < up->nconns; i++)
        if (up->conns[i] && up->conns[i]->connected && !up->conns[i]->conn.closing)
            return 1;
    return 0;
}

static void up_conn_on_close(struct gw_conn *conn, const char *reason)
{
    struct gw_up_conn *uc = (struct gw_up_conn *)conn;
    struct gw_upstream *up = uc->up;
    struct gw_worker *w = up->w;
    gw_loop_timer_cancel(&w->loop, &uc->connect_timer);
    for (int i = 0; i < up->nconns; i++)
        if (up->conns[i] == uc)
            up->conns[i] = NULL;
    int connected = uc->connected;
    if (!connected) {
        up->failures++;
        uint64_t backoff = BACKOFF_MIN_NS << (up->failures < 7 ? up->failures - 1 : 6);
        if (backoff > BACKOFF_MAX_NS)
            backoff = BACKOFF_MAX_NS;
        up->retry_at_ns = w->loop.now_ns + backoff;
        if (!up->down_logged) {
            up->down_logged = 1;
            gw_log(GW_LOG_WARN, "replica_unreachable", "{s:s, s:s, s:i}", "replica", up->addr,
                   "reason", reason, "worker", w->index);
        }
    } else {
        gw_log(GW_LOG_DEBUG, "upstream_closed", "{s:s, s:s}", "replica", up->addr, "reason",
               reason);
    }
    /* Detach every attempt first: re-routing one may open new streams. */
    struct gw_attempt *list = uc->attempts;
    uc->attempts = NULL;
    up->inflight -= (uint32_t)uc->nstreams;
    gw_metrics_inflight_add(up->metrics, -(int64_t)uc->nstreams);
    gw_metrics_set_reachable(up->metrics, any_connected(up));
    uc->nstreams = 0;
    for (struct gw_attempt *a = list; a; a = a->next)
        a->uc = NULL;
    while (list) {
        struct gw_attempt *a = list;
        list = a->next;
        a->prev = a->next = NULL;
        gw_call_on_upstream_lost(a, connected, reason);
    }
    up_conn_free(uc);
}

static void up_conn_on_connected(struct gw_conn *conn)
{
    struct gw_up_conn *uc = (struct gw_up_conn *)conn;
    struct gw_upstream *up = uc->up;
    uc->connected = 1;
    gw_metrics_set_reachable(up->metrics, 1);
    gw_loop_timer_cancel(&up->w->loop, &uc->connect_timer);
    if (up->down_logged)
        gw_log(GW_LOG_INFO, "replica_reachable", "{s:s, s:i}", "replica", up->addr, "worker",
               up->w->index);
    up->failures = 0;
    up->down_logged = 0;
}

static const struct gw_conn_ops up_conn_ops = {.on_close = up_conn_on_close,
                                               .on_connected = up_conn_on_connected};

static void connect_timeout_cb(struct gw_timer *t, void *arg)
{
    struct gw_up_conn *uc = arg;
    gw_conn_close(&uc->conn, "connect timed out");
}

static void record_failure(struct gw_upstream *up, const char *why)
{
    up->failures++;
    up->retry_at_ns = up->w->loop.now_ns + BACKOFF_MIN_NS;
    if (!up->down_logged) {
        up->down_logged = 1;
        gw_log(GW_LOG_WARN, "replica_unreachable", "{s:s, s:s}", "replica", up->addr, "reason",
               why);
    }
}

static struct gw_up_conn *up_connect(struct gw_upstream *up, int slot)
{
    struct gw_worker *w = up->w;
    int fd = socket(up->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        record_failure(up, strerror(errno));
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&up->sa, up->salen) < 0 && errno != EINPROGRESS) {
        record_failure(up, strerror(errno));
        close(fd);
        return NULL;
    }
    struct gw_up_conn *uc = gw_calloc(1, sizeof(*uc));
    if (!uc) {
        close(fd);
        return NULL;
    }
    uc->up = up;
    gw_timer_init(&uc->connect_timer, connect_timeout_cb, uc);
    if (gw_conn_init(&uc->conn, &w->loop, fd, 1, &up_conn_ops, uc) < 0) {
        close(fd);
        gw_free(uc);
        return NULL;
    }
    if (nghttp2_session_client_new2(&uc->conn.sess, w->up_cbs, uc, w->up_opt) != 0) {
        gw_loop_del(&w->loop, &uc->conn.io);
        close(fd);
        gw_conn_release(&uc->conn);
        gw_free(uc);
        return NULL;
    }
    nghttp2_settings_entry iv[] = {
        {NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
        {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, w->cfg->stream_window_bytes},
        {NGHTTP2_SETTINGS_NO_RFC7540_PRIORITIES, 1},
    };
    nghttp2_submit_settings(uc->conn.sess, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(uc->conn.sess, NGHTTP2_FLAG_NONE, 0,
                                          (int32_t)w->cfg->conn_window_bytes);
    gw_loop_timer_in(&w->loop, &uc->connect_timer,
                     (uint64_t)w->cfg->connect_timeout_ms * 1000000ULL);
    up->conns[slot] = uc;
    return uc;
}

int gw_upstream_eligible(const struct gw_upstream *up)
{
    if (up->failures == 0)
        return 1;
    /* Backing off: eligible only when a connection is up anyway, or when the
     * backoff is over and a new connect may be tried. */
    for (int i = 0; i < up->nconns; i++) {
        const struct gw_up_conn *uc = up->conns[i];
        if (uc && uc->connected && !uc->goaway && !uc->conn.closing)
            return 1;
    }
    return up->w->loop.now_ns >= up->retry_at_ns;
}

struct gw_up_conn *gw_upstream_conn_for(struct gw_upstream *up)
{
    struct gw_worker *w = up->w;
    if (!up->in_use)
        return NULL;
    struct gw_up_conn *best = NULL;
    int free_slot = -1;
    for (int i = 0; i < up->nconns; i++) {
        struct gw_up_conn *uc = up->conns[i];
        if (!uc) {
            if (free_slot < 0)
                free_slot = i;
            continue;
        }
        if (uc->goaway || uc->conn.closing || uc->conn.closed)
            continue;
        if (!best || uc->nstreams < best->nstreams)
            best = uc;
    }
    /* Spread over the configured connections as load grows (a grpc-core
     * replica serves each connection's streams on one thread); reuse the
     * least busy one otherwise. */
    int want_new = free_slot >= 0 && (!best || best->nstreams > 0);
    if (want_new && (up->failures == 0 || w->loop.now_ns >= up->retry_at_ns)) {
        struct gw_up_conn *nc = up_connect(up, free_slot);
        if (nc)
            return nc;
    }
    return best;
}

int32_t gw_upstream_submit(struct gw_up_conn *uc, struct gw_attempt *a, const nghttp2_nv *nv,
                           size_t nvlen, nghttp2_data_provider *prd)
{
    int32_t sid = nghttp2_submit_request(uc->conn.sess, NULL, nv, nvlen, prd, a);
    if (sid < 0)
        return sid;
    a->uc = uc;
    a->sid = sid;
    a->open = 1;
    a->prev = NULL;
    a->next = uc->attempts;
    if (uc->attempts)
        uc->attempts->prev = a;
    uc->attempts = a;
    uc->nstreams++;
    uc->up->inflight++;
    gw_metrics_inflight_add(uc->up->metrics, 1);
    gw_conn_mark_dirty(&uc->conn);
    return sid;
}

void gw_upstream_detach(struct gw_attempt *a)
{
    struct gw_up_conn *uc = a->uc;
    if (!uc)
        return;
    if (a->prev)
        a->prev->next = a->next;
    else if (uc->attempts == a)
        uc->attempts = a->next;
    if (a->next)
        a->next->prev = a->prev;
    a->prev = a->next = NULL;
    uc->nstreams--;
    uc->up->inflight--;
    gw_metrics_inflight_add(uc->up->metrics, -1);
    a->uc = NULL;
    if (uc->goaway && uc->nstreams == 0)
        gw_conn_close(&uc->conn, "drained after GOAWAY");
}
