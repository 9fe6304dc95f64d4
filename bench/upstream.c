/* SPDX-License-Identifier: Apache-2.0 */
/* infergw-bench-upstream — a minimal gRPC upstream for benchmarks.
 *
 * It answers every POST with one fixed gRPC message (the payload size is a
 * flag) and grpc-status 0, as fast as an nghttp2 server on one epoll loop
 * can, so that a benchmark measures the proxy in front of it and not the
 * model server (the grpc-core reference replica tops out far lower). It reuses
 * the gateway's loop and conn modules; it is not a model server and checks
 * nothing about the request beyond draining it. The one exception is
 * grpc.health.v1.Health/Check, answered SERVING, so the gateway's active
 * health checks see a healthy replica.
 *
 * --stall-ms N freezes the whole server for N ms once a second (it sleeps in
 * its loop thread), the stalling replica against which an open-loop load
 * generator must show the queueing a closed loop hides.
 */
#include <errno.h>
#include <getopt.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "base/config.h"
#include "h2/conn.h"
#include "h2/loop.h"
#include "base/mem.h"
#include "base/hostport.h"

struct up_server {
    struct gw_loop loop;
    struct gw_io listen_io;
    nghttp2_session_callbacks *cbs;
    uint8_t *resp; /* framed response message */
    size_t resp_len;
    const char *id;
    long stall_ms; /* once a second, stop answering for this long (0 = never) */
    struct gw_timer stall_timer;
};

struct up_conn {
    struct gw_conn conn;
    struct up_server *srv;
};

struct up_stream {
    size_t off;
    int health; /* a grpc.health.v1 Check: answer SERVING */
};

/* HealthCheckResponse{status: SERVING} behind the 5-byte gRPC prefix. */
static const uint8_t health_serving[] = {0, 0, 0, 0, 2, 0x08, 0x01};

static ssize_t resp_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len, uint32_t *flags,
                         nghttp2_data_source *src, void *ud)
{
    struct up_conn *uc = ud;
    struct up_stream *st = src->ptr;
    const uint8_t *resp = st->health ? health_serving : uc->srv->resp;
    size_t resp_len = st->health ? sizeof(health_serving) : uc->srv->resp_len;
    size_t left = resp_len - st->off;
    size_t n = left < len ? left : len;
    memcpy(buf, resp + st->off, n);
    st->off += n;
    if (st->off == resp_len) {
        *flags |= NGHTTP2_DATA_FLAG_EOF | NGHTTP2_DATA_FLAG_NO_END_STREAM;
        nghttp2_nv tr[] = {{(uint8_t *)"grpc-status", (uint8_t *)"0", 11, 1, 0}};
        nghttp2_submit_trailer(s, sid, tr, 1);
    }
    return (ssize_t)n;
}

static int on_begin_headers(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    if (f->hd.type != NGHTTP2_HEADERS || f->headers.cat != NGHTTP2_HCAT_REQUEST)
        return 0;
    struct up_stream *st = gw_calloc(1, sizeof(*st));
    if (!st)
        return NGHTTP2_ERR_CALLBACK_FAILURE;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, st);
    return 0;
}

static int on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                     size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
{
    static const char path[] = "/grpc.health.v1.Health/Check";
    struct up_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (st && namelen == 5 && !memcmp(name, ":path", 5) && valuelen == sizeof(path) - 1 &&
        !memcmp(value, path, valuelen))
        st->health = 1;
    return 0;
}

static int on_frame_recv(nghttp2_session *s, const nghttp2_frame *f, void *ud)
{
    struct up_conn *uc = ud;
    if ((f->hd.type == NGHTTP2_HEADERS || f->hd.type == NGHTTP2_DATA) &&
        (f->hd.flags & NGHTTP2_FLAG_END_STREAM)) {
        struct up_stream *st = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
        if (!st)
            return 0;
        nghttp2_nv nv[] = {
            {(uint8_t *)":status", (uint8_t *)"200", 7, 3, 0},
            {(uint8_t *)"content-type", (uint8_t *)"application/grpc", 12, 16, 0},
            {(uint8_t *)"x-replica-id", (uint8_t *)uc->srv->id, 12, strlen(uc->srv->id), 0},
        };
        nghttp2_data_provider prd = {.source.ptr = st, .read_callback = resp_read};
        nghttp2_submit_response(s, f->hd.stream_id, nv, 3, &prd);
    }
    return 0;
}

static int on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    gw_free(nghttp2_session_get_stream_user_data(s, sid));
    return 0;
}

static void conn_closed(struct gw_conn *c, const char *reason)
{
    nghttp2_session_del(c->sess);
    gw_conn_release(c);
    gw_free(c->owner);
}

static const struct gw_conn_ops ops = {.on_close = conn_closed};

static void on_accept(struct gw_io *io, uint32_t events)
{
    struct up_server *srv =
        (struct up_server *)((char *)io - offsetof(struct up_server, listen_io));
    for (int i = 0; i < 32; i++) {
        int fd = accept4(io->fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd < 0)
            return;
        int one = 1;
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
        struct up_conn *uc = gw_calloc(1, sizeof(*uc));
        if (!uc || gw_conn_init(&uc->conn, &srv->loop, fd, 0, &ops, uc) < 0) {
            gw_free(uc);
            close(fd);
            continue;
        }
        uc->srv = srv;
        nghttp2_session_server_new(&uc->conn.sess, srv->cbs, uc);
        nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_MAX_CONCURRENT_STREAMS, 4096},
                                       {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 20}};
        nghttp2_submit_settings(uc->conn.sess, NGHTTP2_FLAG_NONE, iv, 2);
        gw_conn_mark_dirty(&uc->conn);
    }
}

static void stall_cb(struct gw_timer *t, void *arg)
{
    struct up_server *srv = arg;
    struct timespec ts = {srv->stall_ms / 1000, (srv->stall_ms % 1000) * 1000000L};
    while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
        ;
    gw_loop_timer_in(&srv->loop, &srv->stall_timer, 1000000000ull);
}

static void usage(FILE *out)
{
    fprintf(out,
            "Usage: infergw-bench-upstream [--listen HOST:PORT] [--id ID] [--payload-bytes N]\n"
            "                              [--stall-ms N]\n"
            "\n"
            "A minimal gRPC upstream for benchmarks: answers every call with one fixed\n"
            "message of N bytes and grpc-status 0.\n"
            "\n"
            "  --listen HOST:PORT   [127.0.0.1:7300]\n"
            "  --id ID              value of the x-replica-id response header [the address]\n"
            "  --payload-bytes N    response message size, 0..16777216 [100]\n"
            "  --stall-ms N         once a second, answer nothing for N ms, 0..900 [0]\n"
            "  -h, --help           this help\n"
            "\n"
            "Example: infergw-bench-upstream --listen 127.0.0.1:7301 --payload-bytes 4096\n");
}

int main(int argc, char **argv)
{
    static const struct option opts[] = {{"listen", required_argument, NULL, 'l'},
                                         {"id", required_argument, NULL, 'i'},
                                         {"payload-bytes", required_argument, NULL, 'p'},
                                         {"stall-ms", required_argument, NULL, 's'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *listen_addr = "127.0.0.1:7300", *id = NULL;
    long payload = 100, stall_ms = 0;
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'l':
            listen_addr = optarg;
            break;
        case 'i':
            id = optarg;
            break;
        case 'p': {
            char *end;
            payload = strtol(optarg, &end, 10);
            if (*end || payload < 0 || payload > (16 << 20)) {
                fprintf(stderr,
                        "infergw-bench-upstream: --payload-bytes '%s': expected 0..16777216\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 's': {
            char *end;
            stall_ms = strtol(optarg, &end, 10);
            if (*end || stall_ms < 0 || stall_ms > 900) {
                fprintf(stderr, "infergw-bench-upstream: --stall-ms '%s': expected 0..900\n",
                        optarg);
                return 2;
            }
            break;
        }
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (!id)
        id = listen_addr;
    char host[256];
    uint16_t port;
    if (gw_hostport_split(listen_addr, host, sizeof(host), &port) < 0) {
        fprintf(stderr, "infergw-bench-upstream: --listen '%s': expected HOST:PORT\n", listen_addr);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    struct up_server srv = {.id = id, .stall_ms = stall_ms};
    /* The response message: a protobuf bytes field 1 of <payload> bytes. */
    srv.resp_len = 5 + (payload ? 1 + 5 + (size_t)payload : 0);
    srv.resp = gw_calloc(1, srv.resp_len);
    size_t body = srv.resp_len - 5, o = 5;
    srv.resp[1] = (uint8_t)(body >> 24);
    srv.resp[2] = (uint8_t)(body >> 16);
    srv.resp[3] = (uint8_t)(body >> 8);
    srv.resp[4] = (uint8_t)body;
    if (payload) {
        srv.resp[o++] = 0x0a;
        for (uint32_t v = (uint32_t)payload, i = 0; i < 5; i++) /* padded varint */
            srv.resp[o++] = (uint8_t)((v >> (7 * i)) & 0x7f) | (i < 4 ? 0x80 : 0);
    }
    if (gw_loop_init(&srv.loop, NULL, &srv) < 0)
        return 1;
    nghttp2_session_callbacks_new(&srv.cbs);
    nghttp2_session_callbacks_set_on_begin_headers_callback(srv.cbs, on_begin_headers);
    nghttp2_session_callbacks_set_on_header_callback(srv.cbs, on_header);
    nghttp2_session_callbacks_set_on_frame_recv_callback(srv.cbs, on_frame_recv);
    nghttp2_session_callbacks_set_on_stream_close_callback(srv.cbs, on_stream_close);

    struct addrinfo hints = {
        .ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM, .ai_flags = AI_PASSIVE};
    struct addrinfo *res;
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", port);
    if (getaddrinfo(host, ps, &hints, &res) != 0) {
        fprintf(stderr, "infergw-bench-upstream: cannot resolve %s\n", host);
        return 1;
    }
    int fd = socket(res->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    int one = 1;
    setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &one, sizeof(one));
    if (bind(fd, res->ai_addr, res->ai_addrlen) < 0 || listen(fd, 1024) < 0) {
        fprintf(stderr, "infergw-bench-upstream: cannot listen on %s: %s\n", listen_addr,
                strerror(errno));
        return 1;
    }
    freeaddrinfo(res);
    gw_loop_add(&srv.loop, &srv.listen_io, fd, EPOLLIN, on_accept);
    gw_timer_init(&srv.stall_timer, stall_cb, &srv);
    if (stall_ms > 0)
        gw_loop_timer_in(&srv.loop, &srv.stall_timer, 1000000000ull);
    fprintf(stderr, "{\"event\":\"listening\",\"addr\":\"%s\",\"payload_bytes\":%ld}\n",
            listen_addr, payload);
    gw_loop_run(&srv.loop);
    return 0;
}
