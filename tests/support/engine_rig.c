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
 * This file is the worker, the client and the loop stepping; the scripted
 * replicas are in rig_replica.c (what the two share: rig_internal.h).
 */
#include "rig_internal.h"

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

static struct {
    int inited;
    int lfd[RIG_REPLICAS];
    uint16_t port[RIG_REPLICAS];
    struct gw_config cfg;
    struct gw_routes *routes;
    nghttp2_session_callbacks *cl_cbs;
} g;

/* --- pending output ------------------------------------------------------- */

int rig_sess_flush(int fd, nghttp2_session *s, struct pend *p)
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

int rig_set_nonblock_nodelay(int fd)
{
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    return 0;
}

void rig_close_rst(int fd)
{
    struct linger lg = {1, 0};
    setsockopt(fd, SOL_SOCKET, SO_LINGER, &lg, sizeof(lg));
    close(fd);
}

/* --- client ------------------------------------------------------------------- */

static void client_close(struct rig *r)
{
    struct rig_client *cl = &r->cl;
    if (cl->fd < 0)
        return;
    gw_loop_del(&r->w.loop, &cl->io);
    rig_close_rst(cl->fd);
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
        more = rig_sess_flush(cl->fd, cl->sess, &cl_out);
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
    rig_set_nonblock_nodelay(cl->fd);
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

    rig_replicas_init();
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
    rig_replicas_bind(r);
    for (int i = 0; i < RIG_REPLICAS; i++) {
        r->rep[i].lfd = g.lfd[i];
        r->rep[i].port = g.port[i];
        if (rig_replica_listen(&r->w.loop, &r->rep[i]) < 0)
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
    for (int i = 0; i < RIG_REPLICAS; i++)
        rig_replica_close(&r->w.loop, &r->rep[i]);
    gw_worker_free(&r->w);
    gw_health_registry_free(r->health);
    free(cl_out.buf);
    cl_out = (struct pend){0};
    rig_replicas_bind(NULL);
    r->opened = 0;
}
