/* SPDX-License-Identifier: Apache-2.0 */
/* worker — thread, listener and drain of one worker; see worker.h. */
#include "engine/worker.h"

#include <errno.h>
#include <jansson.h>
#include <malloc.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "h2/conn.h"
#include "engine/call.h"
#include "h2/h2srv.h"
#include "engine/hcheck.h"
#include "base/log.h"
#include "base/hostport.h"
#include "route/poolstate.h"
#include "engine/upstream.h"

static int open_listener(const char *addr, int reuseport)
{
    char host[256];
    uint16_t port;
    if (gw_hostport_split(addr, host, sizeof(host), &port) < 0)
        return -EINVAL;
    char portstr[8];
    snprintf(portstr, sizeof(portstr), "%u", port);
    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res = NULL;
    if (getaddrinfo(host, portstr, &hints, &res) != 0 || !res)
        return -EADDRNOTAVAIL;
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0) {
        int e = -errno;
        freeaddrinfo(res);
        return e;
    }
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (reuseport)
        setsockopt(fd, SOL_SOCKET, SO_REUSEPORT, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        int e = -errno;
        close(fd);
        freeaddrinfo(res);
        return e;
    }
    freeaddrinfo(res);
    return fd;
}

int gw_worker_probe_listen(const char *addr)
{
    int fd = open_listener(addr, 0);
    if (fd < 0)
        return fd;
    close(fd);
    return 0;
}

static void grace_over_cb(struct gw_timer *t, void *arg)
{
    struct gw_worker *w = arg;
    size_t calls = 0;
    for (struct gw_srv_conn *sc = w->conns; sc; sc = sc->next)
        for (struct gw_srv_stream *st = sc->streams; st; st = st->next)
            calls++;
    gw_log(GW_LOG_WARN, "drain_grace_over", "{s:i, s:I}", "worker", w->index, "calls_cancelled",
           (json_int_t)calls);
    gw_h2srv_close_all(w);
}

void gw_worker_offer_routes(struct gw_worker *w, struct gw_routes *rt)
{
    gw_routes_ref(rt);
    struct gw_routes *old = atomic_exchange(&w->pending, rt);
    gw_routes_unref(old); /* offered before but never taken up */
    gw_loop_wake(&w->loop);
}

/* Puts a reference to <ctx> in <slot>, dropping one offered before but
 * never taken up. */
static void offer_ctx(_Atomic(SSL_CTX *) *slot, SSL_CTX *ctx)
{
    if (!ctx || SSL_CTX_up_ref(ctx) != 1)
        return;
    SSL_CTX_free(atomic_exchange(slot, ctx));
}

void gw_worker_offer_tls(struct gw_worker *w, SSL_CTX *front, SSL_CTX *up)
{
    offer_ctx(&w->tls_pending, front);
    offer_ctx(&w->up_tls_pending, up);
    gw_loop_wake(&w->loop);
}

/* Maps snapshot <rt> onto the worker's upstreams (w->upmap) and rebuilds
 * the load view from their in-flight counts. Returns 0, or -ENOMEM with
 * both as they were. */
static int adopt_routes(struct gw_worker *w, const struct gw_routes *rt)
{
    struct gw_poolload load;
    if (gw_poolload_build(&load, rt) < 0)
        return -ENOMEM;
    if (gw_upstream_adopt(w, rt) < 0) {
        gw_poolload_free(&load);
        return -ENOMEM;
    }
    gw_poolload_free(&w->load); /* before the old snapshot it borrows goes */
    w->load = load;
    gw_poolload_fill(&w->load, gw_upstream_replica_inflight, w);
    return 0;
}

static void adopt_pending(struct gw_worker *w)
{
    struct gw_routes *rt = atomic_exchange(&w->pending, NULL);
    if (!rt)
        return;
    if (adopt_routes(w, rt) < 0) {
        gw_log(GW_LOG_ERROR, "routes_not_applied", "{s:i, s:I, s:s}", "worker", w->index, "version",
               (json_int_t)rt->version, "error", "out of memory");
        gw_routes_unref(rt);
        return;
    }
    gw_routes_unref(w->routes);
    w->routes = rt;
    gw_metrics_set_routes(w->metrics, rt);
    gw_upstream_notify_leaving(w);
}

/* Worker 0, every GW_TRIM_MS: gives free heap pages back to the kernel.
 * Client connections that come and go leave their freed 64 KiB write
 * buffers and sessions scattered over glibc's arenas, which RSS keeps
 * counting though nothing uses them: a gateway whose live memory is flat
 * would otherwise look as if it grew for as long as clients churn. */
static void trim_cb(struct gw_timer *t, void *arg)
{
    struct gw_worker *w = arg;
    malloc_trim(0);
    gw_loop_timer_in(&w->loop, &w->trim_timer, (uint64_t)GW_TRIM_MS * 1000000);
}

static void worker_on_wake(struct gw_loop *loop)
{
    struct gw_worker *w = loop->owner;
    adopt_pending(w);
    gw_worker_tls_ctx(w);
    gw_worker_adopt_ctx(&w->up_tls_pending, &w->up_tls_ctx);
    if (!atomic_load(&w->drain_requested) || w->draining)
        return;
    w->draining = 1;
    gw_loop_timer_cancel(&w->loop, &w->accept_timer);
    if (w->listen_io.fd >= 0) {
        gw_loop_del(&w->loop, &w->listen_io);
        close(w->listen_io.fd);
        w->listen_io.fd = -1;
    }
    gw_h2srv_goaway_all(w);
    gw_loop_timer_in(&w->loop, &w->grace_timer, (uint64_t)w->cfg->shutdown_grace_ms * 1000000ULL);
    gw_h2srv_check_drained(w);
}

int gw_worker_init(struct gw_worker *w, int index, const struct gw_config *cfg,
                   struct gw_routes *routes, struct gw_health_registry *health, SSL_CTX *tls,
                   SSL_CTX *up_tls)
{
    memset(w, 0, sizeof(*w));
    w->index = index;
    w->cfg = cfg;
    w->health = health;
    gw_timer_init(&w->health_timer, NULL, NULL);
    atomic_init(&w->tls_pending, NULL);
    atomic_init(&w->up_tls_pending, NULL);
    if (tls && SSL_CTX_up_ref(tls) == 1)
        w->tls_ctx = tls;
    if (up_tls && SSL_CTX_up_ref(up_tls) == 1)
        w->up_tls_ctx = up_tls;
    gw_routes_ref(routes);
    w->routes = routes;
    atomic_init(&w->pending, NULL);
    w->listen_io.fd = -1;
    atomic_init(&w->drain_requested, 0);
    int rc = gw_loop_init(&w->loop, worker_on_wake, w);
    if (rc < 0) {
        gw_log(GW_LOG_ERROR, "worker_init_failed", "{s:i, s:s}", "worker", index, "error",
               strerror(-rc));
        return -1;
    }
    gw_timer_init(&w->grace_timer, grace_over_cb, w);
    gw_timer_init(&w->alog_timer, gw_worker_access_log_flush, w);
    gw_timer_init(&w->accept_timer, gw_h2srv_accept_resume, w);
    gw_timer_init(&w->trim_timer, trim_cb, w);
    if (index == 0)
        gw_loop_timer_in(&w->loop, &w->trim_timer, (uint64_t)GW_TRIM_MS * 1000000);
    w->metrics = gw_metrics_new();
    if (!w->metrics) {
        gw_log(GW_LOG_ERROR, "worker_init_failed", "{s:i, s:s}", "worker", index, "error",
               "out of memory");
        return -1;
    }
    gw_metrics_set_routes(w->metrics, routes);
    int fd = open_listener(cfg->listen, 1);
    if (fd < 0) {
        gw_log(GW_LOG_ERROR, "listen_failed", "{s:s, s:s}", "addr", cfg->listen, "error",
               strerror(-fd));
        return -1;
    }
    if (gw_loop_add(&w->loop, &w->listen_io, fd, EPOLLIN, gw_h2srv_on_listen) < 0) {
        close(fd);
        return -1;
    }
    if (gw_h2srv_setup(w, &gw_call_srv_ops) < 0 || gw_upstream_setup(w) < 0 ||
        adopt_routes(w, routes) < 0 || (index == 0 && gw_hcheck_start(w) < 0)) {
        gw_log(GW_LOG_ERROR, "worker_init_failed", "{s:i, s:s}", "worker", index, "error",
               "out of memory");
        return -1;
    }
    return 0;
}

static void *worker_main(void *arg)
{
    struct gw_worker *w = arg;
    gw_conn_flush_dirty(&w->loop); /* connects queued at init */
    gw_loop_run(&w->loop);
    return NULL;
}

int gw_worker_start(struct gw_worker *w)
{
    return pthread_create(&w->thread, NULL, worker_main, w);
}

void gw_worker_drain(struct gw_worker *w)
{
    atomic_store(&w->drain_requested, 1);
    gw_loop_wake(&w->loop);
}

void gw_worker_join(struct gw_worker *w)
{
    pthread_join(w->thread, NULL);
}

void gw_worker_free(struct gw_worker *w)
{
    /* Client connections are gone after a drain; close any that remain (a
     * worker that failed to start) without their callbacks. */
    while (w->conns) {
        struct gw_srv_conn *sc = w->conns;
        gw_conn_close(&sc->conn, "worker exit");
        gw_conn_flush_dirty(&w->loop);
    }
    gw_hcheck_stop(w);
    gw_upstream_teardown(w);
    gw_poolload_free(&w->load); /* borrows w->routes: freed first */
    if (w->listen_io.fd >= 0)
        close(w->listen_io.fd);
    gw_loop_timer_cancel(&w->loop, &w->grace_timer);
    gw_loop_timer_cancel(&w->loop, &w->accept_timer);
    gw_loop_timer_cancel(&w->loop, &w->trim_timer);
    if (w->srv_cbs)
        nghttp2_session_callbacks_del(w->srv_cbs);
    if (w->up_cbs)
        nghttp2_session_callbacks_del(w->up_cbs);
    if (w->srv_opt)
        nghttp2_option_del(w->srv_opt);
    if (w->up_opt)
        nghttp2_option_del(w->up_opt);
    gw_loop_free(&w->loop);
    gw_routes_unref(atomic_exchange(&w->pending, NULL));
    gw_routes_unref(w->routes);
    w->routes = NULL;
    gw_metrics_free(w->metrics);
    w->metrics = NULL;
    SSL_CTX_free(atomic_exchange(&w->tls_pending, NULL));
    SSL_CTX_free(atomic_exchange(&w->up_tls_pending, NULL));
    SSL_CTX_free(w->tls_ctx);
    SSL_CTX_free(w->up_tls_ctx);
    w->tls_ctx = w->up_tls_ctx = NULL;
    gw_poolstate_free_all(&w->poolstates);
    gw_call_prefix_scratch_free(w);
    gw_loop_timer_cancel(&w->loop, &w->alog_timer);
    gw_accesslog_buf_free(&w->alog);
}
