/* SPDX-License-Identifier: Apache-2.0 */
/* upstream — HTTP/2 client connections to replicas; see upstream.h. */
#include "engine/upstream.h"

#include <errno.h>
#include <jansson.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include "base/log.h"
#include "base/mem.h"
#include "base/hostport.h"
#include "route/route.h"
#include "h2/tls.h"
#include "engine/wstate.h"

#define MS_NS 1000000ULL
/* A connection dropped by the replica is replaced at once only when it had
 * lived this long, so a replica that accepts and drops connections in a loop
 * does not make a worker spin. */
#define RECONNECT_MIN_LIFE_NS (1000 * MS_NS)
/* PINGs sent on a connection while the replica sends no HEADERS or DATA.
 * A grpc-core server counts a PING that comes sooner than 5 minutes after
 * the previous one, with nothing written by the server in between, as a
 * strike, and closes the connection ("too_many_pings") after its third
 * strike; two PINGs per quiet spell keep a long silent call safe. */
#define KEEPALIVE_PINGS_PER_DATA 2
/* A local connect failure (EMFILE...) is logged at most this often. */
#define LOCAL_FAILURE_LOG_NS (1000 * MS_NS)

static void up_conn_retire(struct gw_up_conn *uc, int why);
static struct gw_up_conn *conn_pick(struct gw_upstream *up, int probe);

/* The stream's owner (its stream user data), or NULL. */
static struct gw_up_stream *stream_of(nghttp2_session *s, int32_t sid)
{
    return gw_conn_stream_data(s, sid);
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    gw_hdr_budget_reset(&((struct gw_up_conn *)ud)->conn.hdr_budget);
    struct gw_up_stream *st = stream_of(s, frame->hd.stream_id);
    if (st && frame->hd.type == NGHTTP2_HEADERS && st->ops->on_begin_headers)
        st->ops->on_begin_headers(st, frame->headers.cat == NGHTTP2_HCAT_HEADERS);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *frame, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    if (frame->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct gw_up_conn *uc = ud;
    /* A replica's header block is counted as it is decoded, like a
     * client's (h2srv.h): past the limits the stream is reset, which fails
     * the attempt, and nghttp2 calls back no more for this block. */
    const struct gw_config *cfg = uc->up->w->cfg;
    if (gw_hdr_budget_add(&uc->conn.hdr_budget, namelen, valuelen, cfg->max_header_list_bytes,
                          cfg->max_header_count) < 0) {
        uint64_t hits = gw_worker_limit_hit(uc->up->w, GW_LIMIT_HEADER_LIST_REPLICA);
        if (hits)
            gw_log(GW_LOG_WARN, "header_list_refused", "{s:s, s:s, s:i, s:I, s:i, s:I}", "side",
                   "replica", "replica", uc->up->addr, "stream", frame->hd.stream_id,
                   "bytes_at_least", (json_int_t)uc->conn.hdr_budget.bytes, "fields_at_least",
                   (int)uc->conn.hdr_budget.count, "hits", (json_int_t)hits);
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    }
    struct gw_up_stream *st = stream_of(s, frame->hd.stream_id);
    if (st && st->ops->on_header && st->ops->on_header(st, name, namelen, value, valuelen) < 0)
        return NGHTTP2_ERR_TEMPORAL_CALLBACK_FAILURE;
    return 0;
}

static void up_conn_alive(struct gw_up_conn *uc);
static void ka_arm(struct gw_up_conn *uc, uint64_t when_ns);

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *frame, void *ud)
{
    struct gw_up_conn *uc = ud;
    uc->last_recv_ns = uc->up->w->loop.now_ns;
    if (!uc->alive)
        up_conn_alive(uc);
    else if (gw_health_conn_alive(uc->up->health)) /* a load unless it was down */
        gw_log(GW_LOG_INFO, "replica_reachable", "{s:s, s:i}", "replica", uc->up->addr, "worker",
               uc->up->w->index);
    if (frame->hd.type == NGHTTP2_HEADERS || frame->hd.type == NGHTTP2_DATA)
        uc->pings_since_data = 0;
    if (frame->hd.type == NGHTTP2_PING && (frame->hd.flags & NGHTTP2_FLAG_ACK)) {
        if (uc->ping_sent_ns) {
            uc->ping_sent_ns = 0;
            ka_arm(uc, uc->last_recv_ns + (uint64_t)uc->up->w->cfg->keepalive_ms * MS_NS);
        }
    } else if (frame->hd.type == NGHTTP2_HEADERS) {
        struct gw_up_stream *st = stream_of(s, frame->hd.stream_id);
        if (st && st->ops->on_headers_done)
            st->ops->on_headers_done(st, frame->hd.flags & NGHTTP2_FLAG_END_STREAM);
    } else if (frame->hd.type == NGHTTP2_GOAWAY) {
        /* Streams above last_stream_id are closed by nghttp2 (REFUSED_STREAM,
         * routed again without blame); the rest finish; no new stream goes
         * here, and its slot takes a new connection. */
        gw_log(GW_LOG_INFO, "replica_goaway", "{s:s, s:i}", "replica", uc->up->addr,
               "last_stream_id", frame->goaway.last_stream_id);
        up_conn_retire(uc, GW_UP_RETIRED_GOAWAY);
        gw_upstream_conn_leaving(uc, "the replica sent GOAWAY");
    }
    return 0;
}

static int on_data_chunk_recv(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data,
                              size_t len, void *ud)
{
    struct gw_up_conn *uc = ud;
    struct gw_up_stream *st = stream_of(s, sid);
    if (!st || !st->ops->on_data) {
        nghttp2_session_consume(s, sid, len);
        return 0;
    }
    /* The connection window comes back at once; the stream's only as the
     * owner takes the bytes (the call engine: as the client takes them), so a
     * stalled stream holds at most its own window and never the
     * connection's (see upstream.h). */
    nghttp2_session_consume_connection(s, len);
    gw_conn_mark_dirty(&uc->conn);
    st->ops->on_data(st, data, len);
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t error_code, void *ud)
{
    struct gw_up_stream *st = stream_of(s, sid);
    if (st) {
        nghttp2_session_set_stream_user_data(s, sid, NULL);
        if (st->ops->on_close)
            st->ops->on_close(st, error_code);
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
    struct gw_up_stream *st = stream_of(s, frame->hd.stream_id);
    if (!st)
        return 0;
    nghttp2_session_set_stream_user_data(s, frame->hd.stream_id, NULL);
    /* Not the replica's failure: routed again like a refused stream. */
    if (st->ops->on_close)
        st->ops->on_close(st, NGHTTP2_REFUSED_STREAM);
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
    gw_conn_set_session_limits(w->up_opt, w->cfg->max_header_list_bytes);
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
    up->route_idx = UINT32_MAX;
    up->health = gw_health_get(w->health, r->addr); /* a reference of ours */
    up->metrics = gw_metrics_replica(w->metrics, r->addr);
    up->nconns = w->cfg->upstream_conns;
    up->addr = gw_strdup(r->addr);
    up->conns = gw_calloc((size_t)up->nconns, sizeof(*up->conns));
    if (!up->addr || !up->conns || !up->health) {
        gw_health_put(up->health);
        gw_free(up->addr);
        gw_free(up->conns);
        gw_free(up);
        return NULL;
    }
    memcpy(&up->sa, &r->sa, r->salen);
    up->salen = r->salen;
    w->ups[w->nups++] = up;
    atomic_fetch_add_explicit(&w->metrics->upstream_records, 1, memory_order_relaxed);
    if (up->metrics)
        atomic_fetch_add_explicit(&up->metrics->listed, 1, memory_order_relaxed);
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
    for (size_t i = 0; i < w->nups; i++) {
        w->ups[i]->in_use = 0;
        w->ups[i]->route_idx = UINT32_MAX;
    }
    for (size_t i = 0; i < rt->nreplicas; i++) {
        map[i]->in_use = 1;
        map[i]->route_idx = (uint32_t)i;
    }
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
        for (int j = 0; j < up->nconns; j++)
            if (up->conns[j])
                up_conn_retire(up->conns[j], -1);
        if (up->check_conn)
            up_conn_retire(up->check_conn, -1);
    }
    gw_upstream_sweep(w);
    return 0;
}

static void up_conn_free(struct gw_up_conn *uc)
{
    if (uc->conn.sess)
        nghttp2_session_del(uc->conn.sess);
    gw_conn_release(&uc->conn);
    gw_free(uc);
}

/* Closes <uc> without callbacks (worker exit). */
static void up_conn_destroy(struct gw_worker *w, struct gw_up_conn *uc)
{
    gw_loop_timer_cancel(&w->loop, &uc->connect_timer);
    gw_loop_timer_cancel(&w->loop, &uc->ka_timer);
    if (uc->conn.io.fd >= 0) {
        gw_loop_del(&w->loop, &uc->conn.io);
        close(uc->conn.io.fd);
    }
    up_conn_free(uc);
}

static void upstream_free(struct gw_upstream *up)
{
    gw_free(up->check); /* plain memory: its timer is armed only while a check holds a ref */
    atomic_fetch_sub_explicit(&up->w->metrics->upstream_records, 1, memory_order_relaxed);
    if (up->metrics) {
        atomic_fetch_sub_explicit(&up->metrics->listed, 1, memory_order_relaxed);
        gw_metrics_set_reachable(up->metrics, 0);
    }
    gw_health_put(up->health);
    gw_free(up->conns);
    gw_free(up->addr);
    gw_free(up);
}

void gw_upstream_teardown(struct gw_worker *w)
{
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_upstream *up = w->ups[i];
        for (int j = 0; up->conns && j < up->nconns; j++)
            if (up->conns[j])
                up_conn_destroy(w, up->conns[j]);
        if (up->check_conn)
            up_conn_destroy(w, up->check_conn);
        while (up->draining) {
            struct gw_up_conn *uc = up->draining;
            up->draining = uc->drain_next;
            up_conn_destroy(w, uc);
        }
        upstream_free(up);
    }
    gw_free(w->ups);
    w->ups = NULL;
    w->nups = 0;
    gw_free(w->upmap);
    w->upmap = NULL;
}

/* A connect or handshake failed, or a keepalive timed out: the replica is
 * down (shared backoff in its health record; logged once per outage). */
static void record_failure(struct gw_upstream *up, const char *why)
{
    if (gw_health_conn_failed(up->health, up->w->loop.now_ns))
        gw_log(GW_LOG_WARN, "replica_unreachable", "{s:s, s:s, s:i}", "replica", up->addr, "reason",
               why, "worker", up->w->index);
}

/* Whether a connection to <up> is up (for the replica_reachable gauge). */
static int any_connected(const struct gw_upstream *up)
{
    for (int i = 0; i < up->nconns; i++)
        if (up->conns[i] && up->conns[i]->alive && !up->conns[i]->conn.closing)
            return 1;
    return 0;
}

/* Takes <uc> out of its slot, the check slot or the draining list. */
static void conn_unlink(struct gw_up_conn *uc)
{
    struct gw_upstream *up = uc->up;
    for (int i = 0; i < up->nconns; i++)
        if (up->conns[i] == uc)
            up->conns[i] = NULL;
    if (up->check_conn == uc)
        up->check_conn = NULL;
    for (struct gw_up_conn **p = &up->draining; *p; p = &(*p)->drain_next)
        if (*p == uc) {
            *p = uc->drain_next;
            break;
        }
    uc->drain_next = NULL;
}

/* No new stream goes to <uc> (GOAWAY, stream ids running out, replica left):
 * it leaves its slot, which a new connection may take at once, and closes
 * once its streams and check are done. <why> is a GW_UP_RETIRED_* counter,
 * or -1 for none. */
static void up_conn_retire(struct gw_up_conn *uc, int why)
{
    struct gw_upstream *up = uc->up;
    uc->goaway = 1;
    if (!uc->retired && !uc->conn.closing && !uc->conn.closed) {
        conn_unlink(uc);
        uc->retired = 1;
        uc->drain_next = up->draining;
        up->draining = uc;
        if (why >= 0) {
            gw_metrics_upstream(up->w->metrics, (enum gw_metrics_upstream)why);
            gw_log(GW_LOG_INFO, "upstream_conn_retired", "{s:s, s:s, s:i, s:i}", "replica",
                   up->addr, "reason", why == GW_UP_RETIRED_GOAWAY ? "goaway" : "stream_ids",
                   "streams", (int)uc->nstreams, "worker", up->w->index);
        }
    }
    gw_upstream_conn_idle(uc);
}

void gw_upstream_conn_idle(struct gw_up_conn *uc)
{
    if (uc->goaway && uc->nstreams == 0 && !uc->check)
        gw_conn_close(&uc->conn, "drained after GOAWAY or retirement");
}

static void up_conn_on_close(struct gw_conn *conn, const char *reason)
{
    struct gw_up_conn *uc = (struct gw_up_conn *)conn;
    struct gw_upstream *up = uc->up;
    struct gw_worker *w = up->w;
    gw_loop_timer_cancel(&w->loop, &uc->connect_timer);
    gw_loop_timer_cancel(&w->loop, &uc->ka_timer);
    conn_unlink(uc);
    int connected = uc->connected;
    struct gw_up_stream *check = uc->check;
    if (check) {
        uc->check = NULL;
        check->uc = NULL;
        if (check->ops->on_lost)
            check->ops->on_lost(check, connected, reason);
    }
    if (!uc->alive && !uc->goaway) {
        /* Never became an HTTP/2 connection (and not because it left the
         * snapshot while connecting): the replica is down. */
        record_failure(up, reason);
    } else {
        gw_log(GW_LOG_DEBUG, "upstream_closed", "{s:s, s:s}", "replica", up->addr, "reason",
               reason);
    }
    /* Detach every stream first: re-routing a call may open new streams. */
    struct gw_up_stream *list = uc->streams;
    uc->streams = NULL;
    up->inflight -= (uint32_t)uc->nstreams;
    gw_health_inflight_add(up->health, -(int32_t)uc->nstreams);
    gw_poolload_add(&w->load, up->route_idx, -(int32_t)uc->nstreams);
    gw_metrics_inflight_add(up->metrics, -(int64_t)uc->nstreams);
    gw_metrics_set_reachable(up->metrics, any_connected(up));
    uc->nstreams = 0;
    for (struct gw_up_stream *st = list; st; st = st->next)
        st->uc = NULL;
    while (list) {
        struct gw_up_stream *st = list;
        list = st->next;
        st->prev = st->next = NULL;
        if (st->ops->on_lost)
            st->ops->on_lost(st, connected, reason);
    }
    /* A live connection the replica dropped (killed, restarted): connect
     * again now, so a dead replica is known to be down at once instead of
     * at the next call. Ours to close (GOAWAY drained, keepalive, left the
     * snapshot) are not replaced here. */
    int lost = uc->alive && !uc->goaway && !uc->closed_by_us && !uc->is_check &&
               w->loop.now_ns - uc->alive_ns >= RECONNECT_MIN_LIFE_NS;
    up_conn_free(uc);
    if (lost && up->in_use && !w->draining) {
        int any = 0;
        for (int j = 0; j < up->nconns; j++)
            any |= up->conns[j] != NULL;
        if (!any)
            gw_upstream_conn_for(up);
    }
    /* The last connection of a replica that left may free its record (the
     * flush phase runs outside every callback that could still use it). */
    gw_upstream_sweep(w);
}

/* TCP is up; the connect timer keeps running until the replica's first
 * frame (up_conn_alive), which a stopped process never sends. */
static void up_conn_on_connected(struct gw_conn *conn)
{
    struct gw_up_conn *uc = (struct gw_up_conn *)conn;
    uc->connected = 1;
}

/* The first frame from the replica: the connection is an HTTP/2 one. */
static void up_conn_alive(struct gw_up_conn *uc)
{
    struct gw_upstream *up = uc->up;
    struct gw_worker *w = up->w;
    uc->alive = 1;
    uc->alive_ns = w->loop.now_ns;
    gw_loop_timer_cancel(&w->loop, &uc->connect_timer);
    gw_metrics_set_reachable(up->metrics, 1);
    if (gw_health_conn_alive(up->health))
        gw_log(GW_LOG_INFO, "replica_reachable", "{s:s, s:i}", "replica", up->addr, "worker",
               w->index);
    if (w->cfg->keepalive_ms)
        ka_arm(uc, w->loop.now_ns + (uint64_t)w->cfg->keepalive_ms * MS_NS);
}

static void ka_arm(struct gw_up_conn *uc, uint64_t when_ns)
{
    if (uc->up->w->cfg->keepalive_ms)
        gw_loop_timer_at(&uc->up->w->loop, &uc->ka_timer, when_ns);
}

/* Keepalive: either the ACK of the PING in flight is overdue, or it is time
 * to consider sending one. */
static void ka_timer_cb(struct gw_timer *t, void *arg)
{
    struct gw_up_conn *uc = arg;
    struct gw_upstream *up = uc->up;
    struct gw_worker *w = up->w;
    uint64_t now = w->loop.now_ns, every = (uint64_t)w->cfg->keepalive_ms * MS_NS;
    if (uc->conn.closing || uc->conn.closed)
        return;
    if (uc->ping_sent_ns &&
        (uc->last_recv_ns >= uc->ping_sent_ns || uc->conn.wlen > uc->conn.woff ||
         nghttp2_session_want_write(uc->conn.sess))) {
        /* Busy, not dead: frames arrived since the PING (its ACK queues
         * behind them), or our own bytes are still waiting for the socket
         * (the PING may not have left). No blame; look again later. */
        uc->ping_sent_ns = 0;
        ka_arm(uc, now + every);
        return;
    }
    if (uc->ping_sent_ns) {
        atomic_fetch_add_explicit(&up->health->keepalive_timeouts, 1, memory_order_relaxed);
        gw_log(GW_LOG_WARN, "upstream_keepalive_timeout", "{s:s, s:i, s:I, s:i}", "replica",
               up->addr, "timeout_ms", (int)w->cfg->keepalive_timeout_ms, "streams",
               (json_int_t)uc->nstreams, "worker", w->index);
        record_failure(up, "keepalive timeout");
        gw_upstream_report(up, 0);
        uc->closed_by_us = 1;
        gw_conn_close(&uc->conn, "keepalive timeout");
        return;
    }
    /* Only a connection with streams and nothing heard for a whole interval
     * is pinged: frames from the replica already prove it alive, and idle
     * connections are left to the health checks (see upstream.h). */
    if ((uc->nstreams == 0 && !uc->check) || now - uc->last_recv_ns < every ||
        uc->pings_since_data >= KEEPALIVE_PINGS_PER_DATA) {
        uint64_t next = uc->last_recv_ns + every;
        ka_arm(uc, next > now ? next : now + every);
        return;
    }
    if (nghttp2_submit_ping(uc->conn.sess, NGHTTP2_FLAG_NONE, NULL) != 0) {
        ka_arm(uc, now + every);
        return;
    }
    uc->ping_sent_ns = now;
    uc->pings_since_data++;
    gw_conn_mark_dirty(&uc->conn);
    ka_arm(uc, now + (uint64_t)w->cfg->keepalive_timeout_ms * MS_NS);
}

/* Counts the TLS handshake with a replica; a failure's reason also ends up
 * in the close reason (replica_unreachable log, the calls' message). */
static int up_conn_on_tls(struct gw_conn *conn, int fail, const char *detail)
{
    struct gw_up_conn *uc = (struct gw_up_conn *)conn;
    if (fail < 0)
        gw_metrics_tls_ok(uc->up->w->metrics, GW_TLS_SIDE_UPSTREAM);
    else
        gw_metrics_tls_failed(uc->up->w->metrics, GW_TLS_SIDE_UPSTREAM, fail);
    return 0;
}

static const struct gw_conn_ops up_conn_ops = {.on_close = up_conn_on_close,
                                               .on_connected = up_conn_on_connected,
                                               .on_tls_handshake = up_conn_on_tls};

/* Puts TLS on a new connection to <up> when --upstream-tls-ca is set: the
 * replica's certificate must name the host of its address. */
static int up_tls_start(struct gw_up_conn *uc)
{
    struct gw_worker *w = uc->up->w;
    char host[256];
    uint16_t port;
    if (!w->up_tls_ctx)
        return 0;
    if (gw_hostport_split(uc->up->addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    SSL *ssl = gw_tls_client_ssl_new(w->up_tls_ctx, host);
    if (!ssl)
        return -ENOMEM;
    return gw_conn_tls_start(&uc->conn, ssl, 1, 0);
}

static void connect_timeout_cb(struct gw_timer *t, void *arg)
{
    struct gw_up_conn *uc = arg;
    uc->closed_by_us = 1;
    gw_conn_close(&uc->conn, uc->connected ? "no HTTP/2 SETTINGS from the replica within "
                                             "--connect-timeout-ms"
                                           : "connect timed out");
}

int gw_upstream_errno_is_local(int err)
{
    return err == EMFILE || err == ENFILE || err == ENOBUFS || err == ENOMEM ||
           err == EADDRNOTAVAIL || err == EAGAIN;
}

int gw_upstream_ids_low(int32_t next_id, uint32_t limit)
{
    return next_id < 0 || (uint32_t)next_id > limit - limit / 16;
}

/* socket() or connect() failed with <err>: the gateway's own shortage is
 * counted and logged (once a second), the replica's failure recorded. */
static void connect_failed(struct gw_upstream *up, const char *what, int err)
{
    struct gw_worker *w = up->w;
    if (!gw_upstream_errno_is_local(err)) {
        up->local_errno = 0;
        record_failure(up, strerror(err));
        return;
    }
    up->local_errno = err;
    gw_metrics_upstream(w->metrics, GW_UP_LOCAL_FAILURE);
    if (!up->local_logged_ns || w->loop.now_ns - up->local_logged_ns >= LOCAL_FAILURE_LOG_NS) {
        up->local_logged_ns = w->loop.now_ns;
        gw_log(GW_LOG_WARN, "upstream_local_failure", "{s:s, s:s, s:s, s:i}", "replica", up->addr,
               "call", what, "error", strerror(err), "worker", w->index);
    }
}

/* Opens a connection to <up> into slot <slot>, or as its health-check
 * connection when <slot> is -1. */
static struct gw_up_conn *up_connect(struct gw_upstream *up, int slot)
{
    struct gw_worker *w = up->w;
    int fd = socket(up->sa.ss_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        connect_failed(up, "socket", errno);
        return NULL;
    }
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    if (connect(fd, (const struct sockaddr *)&up->sa, up->salen) < 0 && errno != EINPROGRESS) {
        connect_failed(up, "connect", errno);
        close(fd);
        return NULL;
    }
    up->local_errno = 0;
    struct gw_up_conn *uc = gw_calloc(1, sizeof(*uc));
    if (!uc) {
        close(fd);
        return NULL;
    }
    uc->up = up;
    gw_timer_init(&uc->connect_timer, connect_timeout_cb, uc);
    gw_timer_init(&uc->ka_timer, ka_timer_cb, uc);
    if (gw_conn_init(&uc->conn, &w->loop, fd, 1, &up_conn_ops, uc) < 0) {
        close(fd);
        gw_free(uc);
        return NULL;
    }
    if (up_tls_start(uc) < 0 ||
        nghttp2_session_client_new2(&uc->conn.sess, w->up_cbs, uc, w->up_opt) != 0) {
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
        /* The limits on_header enforces, told to the replica. */
        {NGHTTP2_SETTINGS_MAX_HEADER_LIST_SIZE, w->cfg->max_header_list_bytes},
    };
    nghttp2_submit_settings(uc->conn.sess, NGHTTP2_FLAG_NONE, iv, sizeof(iv) / sizeof(iv[0]));
    nghttp2_session_set_local_window_size(uc->conn.sess, NGHTTP2_FLAG_NONE, 0,
                                          (int32_t)w->cfg->conn_window_bytes);
    gw_loop_timer_in(&w->loop, &uc->connect_timer,
                     (uint64_t)w->cfg->connect_timeout_ms * 1000000ULL);
    if (slot < 0) {
        uc->is_check = 1;
        up->check_conn = uc;
    } else {
        up->conns[slot] = uc;
    }
    return uc;
}

uint32_t gw_upstream_replica_inflight(uint32_t idx, void *worker)
{
    const struct gw_worker *w = worker;
    return gw_health_inflight(w->upmap[idx]->health);
}

int gw_upstream_eligible(const struct gw_upstream *up)
{
    uint64_t now = up->w->loop.now_ns;
    if (!gw_health_usable(up->health, now))
        return 0;
    if (atomic_load_explicit(&up->health->connect_failures, memory_order_relaxed) == 0)
        return 1;
    /* Down until a frame arrives from it on any connection of any worker.
     * The health checks connect to a down replica every interval; without
     * them, a call may try once the backoff is over. (A live connection of
     * this worker proves nothing: a stopped replica keeps its connections.) */
    return up->w->cfg->health_interval_ms == 0 && !gw_health_conn_backing_off(up->health, now);
}

/* Whether <uc> may open more streams; retires it when its stream ids run
 * low. */
static int conn_usable(struct gw_up_conn *uc)
{
    if (uc->goaway || uc->conn.closing || uc->conn.closed)
        return 0;
    if (gw_upstream_ids_low(nghttp2_session_get_next_stream_id(uc->conn.sess),
                            uc->up->w->cfg->upstream_stream_id_limit)) {
        up_conn_retire(uc, GW_UP_RETIRED_STREAM_IDS);
        return 0;
    }
    return 1;
}

static struct gw_up_conn *conn_pick(struct gw_upstream *up, int probe)
{
    struct gw_worker *w = up->w;
    if (!up->in_use)
        return NULL;
    if (probe) {
        /* Checks use a connection of their own (see upstream.h), and may
         * connect while the replica backs off. */
        if (up->check_conn && conn_usable(up->check_conn))
            return up->check_conn;
        return up->check_conn ? NULL : up_connect(up, -1);
    }
    for (int i = 0; i < up->nconns; i++)
        if (up->conns[i])
            conn_usable(up->conns[i]); /* frees the slot of one out of ids */
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
        /* A live connection beats one still coming up; then the least busy. */
        if (!best || (uc->alive && !best->alive) ||
            (uc->alive == best->alive && uc->nstreams < best->nstreams))
            best = uc;
    }
    /* Spread over the configured connections as load grows (a grpc-core
     * replica serves each connection's streams on one thread); reuse the
     * least busy one otherwise. */
    int want_new = free_slot >= 0 && (!best || best->nstreams > 0);
    if (want_new && !gw_health_conn_backing_off(up->health, w->loop.now_ns)) {
        struct gw_up_conn *nc = up_connect(up, free_slot);
        if (nc)
            return nc;
    }
    return best;
}

struct gw_up_conn *gw_upstream_conn_for(struct gw_upstream *up)
{
    return conn_pick(up, 0);
}

struct gw_up_conn *gw_upstream_conn_probe(struct gw_upstream *up)
{
    return conn_pick(up, 1);
}

/* nghttp2_submit_request on <uc>, with stream ids above
 * --upstream-stream-id-limit unavailable as nghttp2's own are above 2^31-1;
 * a connection whose ids run low is retired once the stream is queued. */
static int32_t submit_on(struct gw_up_conn *uc, const nghttp2_nv *nv, size_t nvlen,
                         nghttp2_data_provider *prd, void *ud)
{
    uint32_t limit = uc->up->w->cfg->upstream_stream_id_limit;
    int32_t next = nghttp2_session_get_next_stream_id(uc->conn.sess);
    int32_t sid = next < 0 || (uint32_t)next > limit
                      ? NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE
                      : nghttp2_submit_request(uc->conn.sess, NULL, nv, nvlen, prd, ud);
    if (sid == NGHTTP2_ERR_STREAM_ID_NOT_AVAILABLE)
        up_conn_retire(uc, GW_UP_RETIRED_STREAM_IDS);
    else if (sid == NGHTTP2_ERR_START_STREAM_NOT_ALLOWED || sid == NGHTTP2_ERR_INVALID_STATE)
        up_conn_retire(uc, GW_UP_RETIRED_GOAWAY);
    else if (sid > 0 &&
             gw_upstream_ids_low(nghttp2_session_get_next_stream_id(uc->conn.sess), limit))
        up_conn_retire(uc, GW_UP_RETIRED_STREAM_IDS);
    return sid;
}

int32_t gw_upstream_submit_check(struct gw_up_conn *uc, struct gw_up_stream *st,
                                 const nghttp2_nv *nv, size_t nvlen, nghttp2_data_provider *prd)
{
    int32_t sid = submit_on(uc, nv, nvlen, prd, st);
    if (sid < 0)
        return sid;
    st->uc = uc;
    st->sid = sid;
    st->open = 1;
    uc->check = st;
    gw_conn_mark_dirty(&uc->conn);
    return sid;
}

int32_t gw_upstream_submit(struct gw_up_conn *uc, struct gw_up_stream *st, const nghttp2_nv *nv,
                           size_t nvlen, nghttp2_data_provider *prd)
{
    struct gw_upstream *up = uc->up;
    int32_t sid;
    /* A connection that cannot take the stream is retired (out of its slot);
     * the next one of the replica, or a new one, gets it. */
    for (int tries = 0;; tries++) {
        uc->nstreams++; /* keeps a retired connection open through submit_on */
        sid = submit_on(uc, nv, nvlen, prd, st);
        uc->nstreams--;
        if (sid >= 0)
            break;
        gw_upstream_conn_idle(uc);
        if (!uc->goaway || tries >= up->nconns)
            return sid;
        uc = conn_pick(up, 0);
        if (!uc)
            return sid;
    }
    st->uc = uc;
    st->sid = sid;
    st->open = 1;
    st->prev = NULL;
    st->next = uc->streams;
    if (uc->streams)
        uc->streams->prev = st;
    uc->streams = st;
    uc->nstreams++;
    uc->up->inflight++;
    gw_health_inflight_add(uc->up->health, 1);
    gw_poolload_add(&uc->up->w->load, uc->up->route_idx, 1);
    gw_metrics_inflight_add(uc->up->metrics, 1);
    gw_conn_mark_dirty(&uc->conn);
    return sid;
}

void gw_upstream_detach(struct gw_up_stream *st)
{
    struct gw_up_conn *uc = st->uc;
    if (!uc)
        return;
    st->uc = NULL;
    if (uc->check == st) {
        /* A check given up while its stream is open: later events of that
         * stream find no owner and are dropped. */
        uc->check = NULL;
        if (st->open && uc->conn.sess)
            nghttp2_session_set_stream_user_data(uc->conn.sess, st->sid, NULL);
        gw_upstream_conn_idle(uc);
        return;
    }
    if (st->prev)
        st->prev->next = st->next;
    else if (uc->streams == st)
        uc->streams = st->next;
    if (st->next)
        st->next->prev = st->prev;
    st->prev = st->next = NULL;
    uc->nstreams--;
    uc->up->inflight--;
    gw_health_inflight_add(uc->up->health, -1);
    gw_poolload_add(&uc->up->w->load, uc->up->route_idx, -1);
    gw_metrics_inflight_add(uc->up->metrics, -1);
    gw_upstream_conn_idle(uc);
}

static struct gw_health *worker_rec(size_t i, void *ctx)
{
    struct gw_worker *w = ctx;
    return w->upmap[i] ? w->upmap[i]->health : NULL;
}

void gw_upstream_report(struct gw_upstream *up, int ok)
{
    if (!up || !up->health)
        return;
    struct gw_worker *w = up->w;
    const struct gw_config *cfg = w->cfg;
    struct gw_outlier_params p = {cfg->outlier_failures, cfg->outlier_base_ms, cfg->outlier_max_ms,
                                  cfg->outlier_max_percent};
    uint64_t now = w->loop.now_ns;
    int idx = ok || up->route_idx == UINT32_MAX ? -1 : (int)up->route_idx;
    if (!gw_health_passive(up->health, ok, now, &p, w->routes, idx, worker_rec, w))
        return;
    uint64_t until = atomic_load_explicit(&up->health->ejected_until_ns, memory_order_relaxed);
    gw_log(GW_LOG_WARN, "replica_ejected", "{s:s, s:i, s:I, s:I, s:i}", "replica", up->addr,
           "consecutive_failures", (int)p.failures, "times_ejected",
           (json_int_t)atomic_load_explicit(&up->health->times_ejected, memory_order_relaxed),
           "ejected_ms", (json_int_t)((until - now) / MS_NS), "worker", w->index);
}

void gw_upstream_ref(struct gw_upstream *up)
{
    up->refs++;
}

void gw_upstream_unref(struct gw_upstream *up)
{
    up->refs--;
}

size_t gw_upstream_sweep(struct gw_worker *w)
{
    size_t freed = 0, k = 0;
    for (size_t i = 0; i < w->nups; i++) {
        struct gw_upstream *up = w->ups[i];
        int busy = up->in_use || up->refs || up->inflight || up->check_conn || up->draining;
        for (int j = 0; !busy && j < up->nconns; j++)
            busy = up->conns[j] != NULL;
        if (busy) {
            w->ups[k++] = up;
            continue;
        }
        upstream_free(up);
        freed++;
    }
    w->nups = k;
    return freed;
}
