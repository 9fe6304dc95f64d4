/* SPDX-License-Identifier: Apache-2.0 */
/* infergw-bench — an open-loop gRPC load generator on nghttp2.
 *
 * One epoll loop (the gateway's loop/conn modules) drives M HTTP/2 client
 * connections (h2c, prior knowledge) and issues unary gRPC calls either at a
 * fixed arrival rate (open loop: uniform or Poisson inter-arrival times) or
 * with N calls always in flight (closed loop). In open loop every call is
 * timed from its SCHEDULED start, not from when it was written: a call the
 * generator could not send on time (the loop was busy, the connection was
 * full, nghttp2 held it back behind MAX_CONCURRENT_STREAMS) still counts the
 * wait, so queueing delay shows in the tail instead of being hidden the way
 * a closed-loop tool hides it (coordinated omission). Latencies go into a
 * log-linear histogram (hist.c, <= 1% error); grpc-status is read from the
 * trailers (or a trailers-only HEADERS frame) and counted by name.
 */
#include <errno.h>
#include <getopt.h>
#include <jansson.h>
#include <math.h>
#include <netdb.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/config.h"
#include "h2/conn.h"
#include "grpc_predict_v2.pb-c.h"
#include "base/grpcwire.h"
#include "hist.h"
#include "h2/loop.h"
#include "base/mem.h"
#include "base/hostport.h"

#define LG_MAX_DURATION_S 3600
#define LG_MAX_METADATA   32
#define LG_MAX_KEYS       10000000
#define LG_MAX_PAYLOAD    (64u << 20)
#define LG_NSTATUS        17 /* gRPC codes 0..16 */
#define LG_DRAIN_NS       (10ull * 1000000000ull)

enum lg_dist { LG_UNIFORM, LG_POISSON, LG_ZIPF };

struct lg_opts {
    const char *target;
    char host[256];
    uint16_t port;
    char authority[300];
    const char *path;
    const char *model;
    const char *payload_file;
    long payload_bytes;
    const char *md_name[LG_MAX_METADATA];
    const char *md_value[LG_MAX_METADATA];
    int n_md;
    long route_keys;
    int key_dist;
    double rate; /* calls/s; 0 = closed loop */
    int arrival;
    long concurrency;
    long connections;
    double duration_s; /* 0 = use count */
    long count;
    long deadline_ms;
    long cpu_pid;
    uint64_t seed;
    int json;
};

struct lg_conn;

/* One call: lives from submit to stream close (or the connection's end). */
struct lg_call {
    struct lg_conn *lc;
    struct lg_call *prev, *next; /* the connection's calls */
    uint64_t sched_ns;           /* scheduled start: latency counts from here */
    size_t off;                  /* request bytes handed to nghttp2 */
    int32_t sid;
    int grpc_status; /* -1 until seen */
    int http_status;
    char key[24];
};

struct lg_conn {
    struct gw_conn conn;
    struct lg_gen *gen;
    struct lg_call *calls;
    int alive;
};

struct lg_gen {
    struct lg_opts *o;
    struct gw_loop loop;
    nghttp2_session_callbacks *cbs;
    struct addrinfo *addr;
    struct lg_conn **conns;
    long next_conn;
    uint8_t *req; /* the framed request message */
    size_t req_len;
    nghttp2_nv *nv; /* request headers; grpc-timeout/x-route-key slots filled per call */
    size_t n_nv;
    size_t nv_key_slot; /* index of x-route-key, or SIZE_MAX */
    char timeout_hdr[GW_GRPC_TIMEOUT_BUFLEN];
    double *zipf_cdf;
    uint64_t rng;
    /* schedule */
    uint64_t start_ns, end_ns, next_ns, last_done_ns;
    struct gw_io tick_io; /* a timerfd: the loop's timers sleep in whole ms */
    struct gw_timer stop_timer;
    long issued, done, inflight;
    int issuing_over;
    /* results */
    struct bench_hist hist;
    uint64_t by_status[LG_NSTATUS];
    uint64_t no_status;  /* stream ended without grpc-status (reset, HTTP error) */
    uint64_t conn_lost;  /* calls failed because their connection closed */
    uint64_t unfinished; /* still in flight when the drain time ran out */
    long conn_errors;
    uint64_t late_ns_max; /* how late the generator itself ran behind schedule */
};

/* --- randomness ------------------------------------------------------------ */

static uint64_t lg_rand64(struct lg_gen *g)
{
    /* xorshift64*: fast and good enough for arrival times and key picks */
    g->rng ^= g->rng >> 12;
    g->rng ^= g->rng << 25;
    g->rng ^= g->rng >> 27;
    return g->rng * 2685821657736338717ull;
}

static double lg_rand01(struct lg_gen *g)
{
    return ((double)(lg_rand64(g) >> 11) + 0.5) / 9007199254740992.0; /* (0, 1) */
}

/* Zipf over ranks 1..n with exponent s: P(k) ~ k^-s, as a cumulative table. */
static double *lg_zipf_table(long n, double s)
{
    double *cdf = gw_malloc((size_t)n * sizeof(*cdf));
    if (!cdf)
        return NULL;
    double sum = 0;
    for (long k = 0; k < n; k++) {
        sum += pow((double)(k + 1), -s);
        cdf[k] = sum;
    }
    for (long k = 0; k < n; k++)
        cdf[k] /= sum;
    return cdf;
}

static long lg_pick_key(struct lg_gen *g)
{
    long n = g->o->route_keys;
    if (!g->zipf_cdf)
        return (long)(lg_rand64(g) % (uint64_t)n);
    double u = lg_rand01(g);
    long lo = 0, hi = n - 1;
    while (lo < hi) {
        long mid = lo + (hi - lo) / 2;
        if (g->zipf_cdf[mid] < u)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* --- calls ----------------------------------------------------------------- */

static void lg_maybe_finish(struct lg_gen *g);
static void lg_issue(struct lg_gen *g, uint64_t sched_ns);
static void lg_stop_issuing(struct lg_gen *g);
static void lg_arm_tick(struct lg_gen *g, uint64_t when_ns);
static int lg_count_reached(const struct lg_gen *g);

/* Records the outcome of <c> and frees it. */
static void lg_call_end(struct lg_gen *g, struct lg_call *c, int conn_lost)
{
    uint64_t now = gw_now_ns();
    bench_hist_record(&g->hist, now > c->sched_ns ? now - c->sched_ns : 0);
    if (c->grpc_status >= 0 && c->grpc_status < LG_NSTATUS)
        g->by_status[c->grpc_status]++;
    else if (conn_lost)
        g->conn_lost++;
    else
        g->no_status++;
    g->last_done_ns = now;
    g->done++;
    g->inflight--;
    struct lg_conn *lc = c->lc;
    if (c->prev)
        c->prev->next = c->next;
    else
        lc->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    gw_free(c);
    /* Closed loop: the next call starts as soon as one ends. A call lost
     * with its connection is not replaced (that would spin on a dead
     * target); when none is left in flight the run ends. */
    if (g->o->rate <= 0 && !g->issuing_over) {
        if (lg_count_reached(g) || (conn_lost && g->inflight == 0))
            lg_stop_issuing(g);
        else if (!conn_lost)
            lg_issue(g, now);
    }
    lg_maybe_finish(g);
}

static ssize_t lg_req_read(nghttp2_session *s, int32_t sid, uint8_t *buf, size_t len,
                           uint32_t *flags, nghttp2_data_source *src, void *ud)
{
    struct lg_conn *lc = ud;
    struct lg_call *c = src->ptr;
    size_t left = lc->gen->req_len - c->off;
    size_t n = left < len ? left : len;
    (void)s;
    (void)sid;
    memcpy(buf, lc->gen->req + c->off, n);
    c->off += n;
    if (c->off == lc->gen->req_len)
        *flags |= NGHTTP2_DATA_FLAG_EOF;
    return (ssize_t)n;
}

static int lg_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name,
                        size_t namelen, const uint8_t *value, size_t valuelen, uint8_t flags,
                        void *ud)
{
    struct lg_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    char v[16];
    (void)flags;
    (void)ud;
    if (!c || f->hd.type != NGHTTP2_HEADERS || valuelen >= sizeof(v))
        return 0;
    memcpy(v, value, valuelen);
    v[valuelen] = 0;
    if (namelen == 11 && memcmp(name, "grpc-status", 11) == 0)
        c->grpc_status = gw_grpc_status_parse(v);
    else if (namelen == 7 && memcmp(name, ":status", 7) == 0)
        c->http_status = atoi(v);
    return 0;
}

static int lg_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
{
    struct lg_conn *lc = ud;
    struct lg_call *c = nghttp2_session_get_stream_user_data(s, sid);
    (void)err;
    if (!c)
        return 0;
    nghttp2_session_set_stream_user_data(s, sid, NULL);
    if (c->grpc_status < 0 && c->http_status != 200)
        c->grpc_status = gw_grpc_status_from_http(c->http_status);
    lg_call_end(lc->gen, c, 0);
    return 0;
}

/* A request nghttp2 never sent (connection going away) ends here, not in
 * on_stream_close. */
static int lg_on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f, int lib_err, void *ud)
{
    (void)lib_err;
    if (f->hd.type != NGHTTP2_HEADERS)
        return 0;
    struct lg_call *c = nghttp2_session_get_stream_user_data(s, f->hd.stream_id);
    if (!c)
        return 0;
    nghttp2_session_set_stream_user_data(s, f->hd.stream_id, NULL);
    lg_call_end(((struct lg_conn *)ud)->gen, c, 1);
    return 0;
}

/* --- connections ----------------------------------------------------------- */

static void lg_conn_closed(struct gw_conn *gc, const char *reason)
{
    struct lg_conn *lc = gc->owner;
    struct lg_gen *g = lc->gen;
    lc->alive = 0;
    g->conn_errors++;
    /* A dead target closes every reconnect: report the first few only. */
    if (!g->loop.stop && g->conn_errors <= 3)
        fprintf(stderr, "infergw-bench: connection closed: %s%s\n", reason,
                g->conn_errors == 3 ? " (further closes counted, not shown)" : "");
    /* nghttp2_session_del runs no callbacks: fail what is still open. */
    nghttp2_session_del(gc->sess);
    gc->sess = NULL;
    while (lc->calls)
        lg_call_end(g, lc->calls, 1);
    gw_conn_release(gc);
}

static const struct gw_conn_ops lg_conn_ops = {.on_close = lg_conn_closed};

/* Opens (or reopens) connection slot <lc>: a non-blocking connect with the
 * client session created up front, so requests can be queued at once. */
static int lg_conn_open(struct lg_gen *g, struct lg_conn *lc)
{
    int fd = socket(g->addr->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -errno;
    int one = 1;
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof(one));
    int connecting = 0;
    if (connect(fd, g->addr->ai_addr, g->addr->ai_addrlen) < 0) {
        if (errno != EINPROGRESS) {
            int e = -errno;
            close(fd);
            return e;
        }
        connecting = 1;
    }
    int rc = gw_conn_init(&lc->conn, &g->loop, fd, connecting, &lg_conn_ops, lc);
    if (rc < 0) {
        close(fd);
        return rc;
    }
    lc->gen = g;
    lc->calls = NULL;
    if (nghttp2_session_client_new(&lc->conn.sess, g->cbs, lc) != 0) {
        gw_conn_close(&lc->conn, "out of memory");
        return -ENOMEM;
    }
    nghttp2_settings_entry iv[] = {{NGHTTP2_SETTINGS_ENABLE_PUSH, 0},
                                   {NGHTTP2_SETTINGS_INITIAL_WINDOW_SIZE, 1 << 24}};
    nghttp2_submit_settings(lc->conn.sess, NGHTTP2_FLAG_NONE, iv, 2);
    nghttp2_session_set_local_window_size(lc->conn.sess, NGHTTP2_FLAG_NONE, 0, 1 << 30);
    lc->alive = 1;
    gw_conn_mark_dirty(&lc->conn);
    return 0;
}

/* The next connection, round robin, reopened if it was lost. */
static struct lg_conn *lg_next_conn(struct lg_gen *g)
{
    for (long tries = 0; tries < g->o->connections; tries++) {
        struct lg_conn *lc = g->conns[g->next_conn];
        g->next_conn = (g->next_conn + 1) % g->o->connections;
        if (lc->alive || lg_conn_open(g, lc) == 0)
            return lc;
    }
    return NULL;
}

/* Starts one call scheduled at <sched_ns>. A call that cannot even be queued
 * (no connection) ends at once with no status, still timed from schedule. */
static void lg_issue(struct lg_gen *g, uint64_t sched_ns)
{
    struct lg_call *c = gw_calloc(1, sizeof(*c));
    if (!c) {
        g->issued++;
        g->done++;
        g->no_status++;
        return;
    }
    c->sched_ns = sched_ns;
    c->grpc_status = -1;
    g->issued++;
    g->inflight++;
    struct lg_conn *lc = lg_next_conn(g);
    if (!lc) {
        /* Borrow a dead slot just to keep lg_call_end's list logic simple. */
        c->lc = g->conns[0];
        c->next = c->lc->calls;
        if (c->next)
            c->next->prev = c;
        c->lc->calls = c;
        lg_call_end(g, c, 1);
        return;
    }
    c->lc = lc;
    c->next = lc->calls;
    if (c->next)
        c->next->prev = c;
    lc->calls = c;
    if (g->nv_key_slot != SIZE_MAX) {
        int n = snprintf(c->key, sizeof(c->key), "key-%ld", lg_pick_key(g));
        g->nv[g->nv_key_slot].value = (uint8_t *)c->key;
        g->nv[g->nv_key_slot].valuelen = (size_t)n;
    }
    nghttp2_data_provider prd = {.source.ptr = c, .read_callback = lg_req_read};
    int32_t sid = nghttp2_submit_request(lc->conn.sess, NULL, g->nv, g->n_nv, &prd, c);
    if (sid < 0) {
        lg_call_end(g, c, 1);
        return;
    }
    c->sid = sid;
    gw_conn_mark_dirty(&lc->conn);
}

/* --- schedule -------------------------------------------------------------- */

static void lg_maybe_finish(struct lg_gen *g)
{
    if (g->issuing_over && g->inflight == 0)
        g->loop.stop = 1;
}

static void lg_stop_issuing(struct lg_gen *g)
{
    if (g->issuing_over)
        return;
    g->issuing_over = 1;
    lg_arm_tick(g, 0);
    /* Wait for the calls in flight, but not forever. */
    uint64_t drain = LG_DRAIN_NS;
    if (g->o->deadline_ms > 0)
        drain = (uint64_t)g->o->deadline_ms * 1000000ull + 1000000000ull;
    gw_loop_timer_in(&g->loop, &g->stop_timer, drain);
    lg_maybe_finish(g);
}

/* Arms the open-loop tick at monotonic <when_ns> (ns precision, unlike the
 * loop's timers), or disarms it for 0. */
static void lg_arm_tick(struct lg_gen *g, uint64_t when_ns)
{
    struct itimerspec its = {{0, 0}, {0, 0}};
    if (when_ns) {
        its.it_value.tv_sec = (time_t)(when_ns / 1000000000ull);
        its.it_value.tv_nsec = (long)(when_ns % 1000000000ull);
    }
    timerfd_settime(g->tick_io.fd, TFD_TIMER_ABSTIME, &its, NULL);
}

static int lg_count_reached(const struct lg_gen *g)
{
    return g->o->count > 0 && g->issued >= g->o->count;
}

static uint64_t lg_interval_ns(struct lg_gen *g)
{
    double mean = 1e9 / g->o->rate;
    if (g->o->arrival == LG_POISSON)
        return (uint64_t)(-log(lg_rand01(g)) * mean);
    return (uint64_t)mean;
}

/* Open loop: issues every call whose scheduled time has come, each stamped
 * with its schedule, then sleeps until the next one. */
static void lg_on_tick(struct gw_io *io, uint32_t events)
{
    struct lg_gen *g = (struct lg_gen *)((char *)io - offsetof(struct lg_gen, tick_io));
    uint64_t expirations;
    (void)events;
    if (read(io->fd, &expirations, sizeof(expirations)) < 0 && errno != EAGAIN)
        return;
    uint64_t now = gw_now_ns();
    while (g->next_ns <= now) {
        if (lg_count_reached(g) || (g->end_ns && g->next_ns >= g->end_ns)) {
            lg_stop_issuing(g);
            return;
        }
        if (now - g->next_ns > g->late_ns_max)
            g->late_ns_max = now - g->next_ns;
        lg_issue(g, g->next_ns);
        g->next_ns += lg_interval_ns(g);
    }
    if (g->end_ns && g->next_ns >= g->end_ns) {
        /* No call left before the end: stop at the end, not now. */
        gw_loop_timer_at(&g->loop, &g->stop_timer, g->end_ns);
        return;
    }
    lg_arm_tick(g, g->next_ns);
}

/* Fires at the end of --duration (closed loop), and at the end of the drain
 * time after issuing stopped: whatever is still in flight is given up. */
static void lg_on_stop(struct gw_timer *t, void *arg)
{
    struct lg_gen *g = arg;
    (void)t;
    if (!g->issuing_over) {
        lg_stop_issuing(g);
        return;
    }
    g->unfinished = (uint64_t)g->inflight;
    g->loop.stop = 1;
}

static void lg_on_closed_loop_start(struct gw_timer *t, void *arg)
{
    struct lg_gen *g = arg;
    (void)t;
    for (long i = 0; i < g->o->concurrency && !lg_count_reached(g) && !g->issuing_over; i++)
        lg_issue(g, gw_now_ns());
    if (lg_count_reached(g))
        lg_stop_issuing(g);
}

/* --- CPU of another process ------------------------------------------------ */

/* utime + stime of <pid> in clock ticks, or -1. */
static long long lg_proc_cpu_ticks(long pid)
{
    char path[64], buf[1024];
    snprintf(path, sizeof(path), "/proc/%ld/stat", pid);
    FILE *f = fopen(path, "r");
    if (!f)
        return -1;
    size_t n = fread(buf, 1, sizeof(buf) - 1, f);
    fclose(f);
    buf[n] = 0;
    /* The command name may hold spaces and parentheses: fields start after
     * the last ')'. utime and stime are fields 14 and 15. */
    char *p = strrchr(buf, ')');
    if (!p)
        return -1;
    p++;
    unsigned long long ut, st;
    if (sscanf(p, " %*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return -1;
    return (long long)(ut + st);
}

/* --- request --------------------------------------------------------------- */

/* Reads the file or builds a KServe ModelInferRequest, and frames it. */
static int lg_build_request(struct lg_gen *g, char *err, size_t errlen)
{
    const struct lg_opts *o = g->o;
    uint8_t *msg = NULL;
    size_t len = 0;
    if (o->payload_file) {
        FILE *f = fopen(o->payload_file, "rb");
        struct stat stt;
        if (!f || fstat(fileno(f), &stt) < 0 || stt.st_size > (off_t)LG_MAX_PAYLOAD) {
            snprintf(err, errlen, "--payload-file '%s': %s", o->payload_file,
                     f ? "larger than 64 MiB" : strerror(errno));
            if (f)
                fclose(f);
            return -1;
        }
        len = (size_t)stt.st_size;
        msg = gw_malloc(len ? len : 1);
        if (!msg || fread(msg, 1, len, f) != len) {
            snprintf(err, errlen, "--payload-file '%s': read failed", o->payload_file);
            fclose(f);
            gw_free(msg);
            return -1;
        }
        fclose(f);
    } else {
        size_t nfloat = (size_t)o->payload_bytes / 4;
        int64_t shape[2] = {1, (int64_t)nfloat};
        uint8_t *raw = gw_calloc(1, nfloat * 4 + 1);
        if (!raw)
            return -1;
        for (size_t i = 0; i < nfloat; i++) {
            float v = (float)(i % 1000) * 0.5f;
            memcpy(raw + 4 * i, &v, 4);
        }
        Inference__ModelInferRequest__InferInputTensor in =
            INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
        in.name = "input";
        in.datatype = "FP32";
        in.n_shape = 2;
        in.shape = shape;
        Inference__ModelInferRequest__InferInputTensor *ins[1] = {&in};
        ProtobufCBinaryData rawc = {.len = nfloat * 4, .data = raw};
        Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
        req.model_name = (char *)o->model;
        req.id = "bench";
        req.n_inputs = 1;
        req.inputs = ins;
        req.n_raw_input_contents = 1;
        req.raw_input_contents = &rawc;
        len = inference__model_infer_request__get_packed_size(&req);
        msg = gw_malloc(len ? len : 1);
        if (msg)
            inference__model_infer_request__pack(&req, msg);
        gw_free(raw);
        if (!msg)
            return -1;
    }
    g->req_len = len + 5;
    g->req = gw_malloc(g->req_len);
    if (!g->req) {
        gw_free(msg);
        return -1;
    }
    g->req[0] = 0;
    g->req[1] = (uint8_t)(len >> 24);
    g->req[2] = (uint8_t)(len >> 16);
    g->req[3] = (uint8_t)(len >> 8);
    g->req[4] = (uint8_t)len;
    memcpy(g->req + 5, msg, len);
    gw_free(msg);
    return 0;
}

static nghttp2_nv lg_nv(const char *name, const char *value)
{
    nghttp2_nv nv = {(uint8_t *)name, (uint8_t *)value, strlen(name), strlen(value),
                     NGHTTP2_NV_FLAG_NONE};
    return nv;
}

static int lg_build_headers(struct lg_gen *g)
{
    const struct lg_opts *o = g->o;
    g->nv = gw_calloc(8 + (size_t)o->n_md, sizeof(*g->nv));
    if (!g->nv)
        return -1;
    size_t n = 0;
    g->nv[n++] = lg_nv(":method", "POST");
    g->nv[n++] = lg_nv(":scheme", "http");
    g->nv[n++] = lg_nv(":path", o->path);
    g->nv[n++] = lg_nv(":authority", o->authority);
    g->nv[n++] = lg_nv("content-type", "application/grpc");
    g->nv[n++] = lg_nv("te", "trailers");
    if (o->deadline_ms > 0) {
        gw_grpc_timeout_format((uint64_t)o->deadline_ms * 1000000ull, g->timeout_hdr);
        g->nv[n++] = lg_nv("grpc-timeout", g->timeout_hdr);
    }
    g->nv_key_slot = SIZE_MAX;
    if (o->route_keys > 0) {
        g->nv_key_slot = n;
        g->nv[n++] = lg_nv("x-route-key", "");
    }
    for (int i = 0; i < o->n_md; i++)
        g->nv[n++] = lg_nv(o->md_name[i], o->md_value[i]);
    g->n_nv = n;
    return 0;
}

/* --- options --------------------------------------------------------------- */

static void lg_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: infergw-bench [flags] TARGET\n"
        "\n"
        "An open-loop gRPC load generator (HTTP/2 over cleartext, prior knowledge).\n"
        "Open loop (--rate) times every call from its scheduled start, so queueing\n"
        "delay shows in the tail; closed loop (--concurrency) keeps N calls in flight.\n"
        "One of --duration or --count is required.\n"
        "\n"
        "  TARGET, --target ADDR     host:port or http://host:port (required)\n"
        "  --method PATH             gRPC method path\n"
        "                            [/inference.GRPCInferenceService/ModelInfer]\n"
        "  --payload-file FILE       a serialized protobuf message, sent gRPC-framed [none]\n"
        "  --payload-bytes N         else a ModelInferRequest with N bytes of FP32 input,\n"
        "                            0..67108864 [100]\n"
        "  --model NAME              model_name of that request [demo]\n"
        "  --metadata K:V            request metadata, repeatable (up to 32) [none]\n"
        "  --route-keys N            send x-route-key drawn from N keys 'key-<i>'; 0 = none [0]\n"
        "  --key-dist uniform|zipf   how keys are drawn (zipf: s = 1.1) [uniform]\n"
        "  --rate R                  open loop: R calls/s (0 = closed loop) [0]\n"
        "  --arrival uniform|poisson inter-arrival times in open loop [uniform]\n"
        "  --concurrency N           closed loop: calls in flight [16]\n"
        "  --connections M           HTTP/2 connections, calls spread round robin [1]\n"
        "  --duration S              run S seconds (at most 3600) [none]\n"
        "  --count N                 or issue N calls [none]\n"
        "  --deadline-ms MS          per-call deadline, sent as grpc-timeout; 0 = none [0]\n"
        "  --cpu-pid PID             report the CPU time of process PID per call [none]\n"
        "  --seed N                  random seed for arrivals and keys [1]\n"
        "  --json                    print one JSON object instead of text\n"
        "  -h, --help                this help\n"
        "\n"
        "Latency is in microseconds, from each call's scheduled start to its end; calls\n"
        "that end without a grpc-status are counted as 'no_status' (connection lost:\n"
        "'connection_lost'). Exit status: 0 when the run completed, 2 on a bad flag.\n"
        "\n"
        "Examples:\n"
        "  infergw-bench --rate 2000 --arrival poisson --duration 30 --connections 4 \\\n"
        "      --route-keys 1000 --key-dist zipf --metadata 'authorization:Bearer KEY' \\\n"
        "      --cpu-pid $(pidof infergw) --json 127.0.0.1:8080\n"
        "  infergw-bench --concurrency 64 --count 100000 --payload-bytes 4096 127.0.0.1:8080\n");
}

static int lg_parse_long(const char *flag, const char *s, long min, long max, long *out, char *err,
                         size_t errlen)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v < min || v > max) {
        snprintf(err, errlen, "%s '%s': expected an integer in %ld..%ld", flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

static int lg_parse_double(const char *flag, const char *s, double min, double max, double *out,
                           char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (errno || end == s || *end || !(v >= min && v <= max)) {
        snprintf(err, errlen, "%s '%s': expected a number in %g..%g", flag, s, min, max);
        return -1;
    }
    *out = v;
    return 0;
}

/* Returns 0 to run, 1 after --help, -1 on a bad command line (reason in err). */
static int lg_parse(struct lg_opts *o, int argc, char **argv, char *err, size_t errlen)
{
    enum {
        O_TARGET = 256,
        O_METHOD,
        O_PFILE,
        O_PBYTES,
        O_MODEL,
        O_MD,
        O_KEYS,
        O_KDIST,
        O_RATE,
        O_ARRIVAL,
        O_CONC,
        O_CONNS,
        O_DUR,
        O_COUNT,
        O_DEADLINE,
        O_CPU,
        O_SEED,
        O_JSON
    };
    static const struct option opts[] = {{"target", required_argument, NULL, O_TARGET},
                                         {"method", required_argument, NULL, O_METHOD},
                                         {"payload-file", required_argument, NULL, O_PFILE},
                                         {"payload-bytes", required_argument, NULL, O_PBYTES},
                                         {"model", required_argument, NULL, O_MODEL},
                                         {"metadata", required_argument, NULL, O_MD},
                                         {"route-keys", required_argument, NULL, O_KEYS},
                                         {"key-dist", required_argument, NULL, O_KDIST},
                                         {"rate", required_argument, NULL, O_RATE},
                                         {"arrival", required_argument, NULL, O_ARRIVAL},
                                         {"concurrency", required_argument, NULL, O_CONC},
                                         {"connections", required_argument, NULL, O_CONNS},
                                         {"duration", required_argument, NULL, O_DUR},
                                         {"count", required_argument, NULL, O_COUNT},
                                         {"deadline-ms", required_argument, NULL, O_DEADLINE},
                                         {"cpu-pid", required_argument, NULL, O_CPU},
                                         {"seed", required_argument, NULL, O_SEED},
                                         {"json", no_argument, NULL, O_JSON},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    memset(o, 0, sizeof(*o));
    o->path = "/inference.GRPCInferenceService/ModelInfer";
    o->model = "demo";
    o->payload_bytes = 100;
    o->concurrency = 16;
    o->connections = 1;
    o->seed = 1;
    o->cpu_pid = -1;
    long seed = 1;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        int rc = 0;
        switch (c) {
        case O_TARGET:
            o->target = optarg;
            break;
        case O_METHOD:
            if (optarg[0] != '/') {
                snprintf(err, errlen, "--method '%s': expected /package.Service/Method", optarg);
                return -1;
            }
            o->path = optarg;
            break;
        case O_PFILE:
            o->payload_file = optarg;
            break;
        case O_PBYTES:
            rc = lg_parse_long("--payload-bytes", optarg, 0, LG_MAX_PAYLOAD, &o->payload_bytes, err,
                               errlen);
            break;
        case O_MODEL:
            o->model = optarg;
            break;
        case O_MD: {
            char *colon = strchr(optarg, ':');
            if (!colon || colon == optarg || o->n_md == LG_MAX_METADATA) {
                snprintf(err, errlen, "--metadata '%s': expected KEY:VALUE (at most %d)", optarg,
                         LG_MAX_METADATA);
                return -1;
            }
            *colon = 0;
            for (char *p = optarg; *p; p++)
                if (*p >= 'A' && *p <= 'Z')
                    *p = (char)(*p - 'A' + 'a'); /* HTTP/2 header names are lower case */
            o->md_name[o->n_md] = optarg;
            o->md_value[o->n_md++] = colon + 1;
            break;
        }
        case O_KEYS:
            rc = lg_parse_long("--route-keys", optarg, 0, LG_MAX_KEYS, &o->route_keys, err, errlen);
            break;
        case O_KDIST:
            if (strcmp(optarg, "uniform") == 0)
                o->key_dist = LG_UNIFORM;
            else if (strcmp(optarg, "zipf") == 0)
                o->key_dist = LG_ZIPF;
            else {
                snprintf(err, errlen, "--key-dist '%s': expected uniform or zipf", optarg);
                return -1;
            }
            break;
        case O_RATE:
            rc = lg_parse_double("--rate", optarg, 0, 10e6, &o->rate, err, errlen);
            break;
        case O_ARRIVAL:
            if (strcmp(optarg, "uniform") == 0)
                o->arrival = LG_UNIFORM;
            else if (strcmp(optarg, "poisson") == 0)
                o->arrival = LG_POISSON;
            else {
                snprintf(err, errlen, "--arrival '%s': expected uniform or poisson", optarg);
                return -1;
            }
            break;
        case O_CONC:
            rc = lg_parse_long("--concurrency", optarg, 1, 100000, &o->concurrency, err, errlen);
            break;
        case O_CONNS:
            rc = lg_parse_long("--connections", optarg, 1, 10000, &o->connections, err, errlen);
            break;
        case O_DUR:
            rc = lg_parse_double("--duration", optarg, 0.001, LG_MAX_DURATION_S, &o->duration_s,
                                 err, errlen);
            break;
        case O_COUNT:
            rc = lg_parse_long("--count", optarg, 1, 1000000000L, &o->count, err, errlen);
            break;
        case O_DEADLINE:
            rc = lg_parse_long("--deadline-ms", optarg, 0, 86400000L, &o->deadline_ms, err, errlen);
            break;
        case O_CPU:
            rc = lg_parse_long("--cpu-pid", optarg, 1, 1L << 30, &o->cpu_pid, err, errlen);
            break;
        case O_SEED:
            rc = lg_parse_long("--seed", optarg, 0, 1L << 62, &seed, err, errlen);
            break;
        case O_JSON:
            o->json = 1;
            break;
        case 'h':
            return 1;
        default:
            snprintf(err, errlen, "unknown flag (see --help)");
            return -1;
        }
        if (rc < 0)
            return -1;
    }
    if (optind < argc && !o->target)
        o->target = argv[optind++];
    if (optind < argc) {
        snprintf(err, errlen, "unexpected argument '%s'", argv[optind]);
        return -1;
    }
    if (!o->target) {
        snprintf(err, errlen, "no target: give host:port");
        return -1;
    }
    if (o->duration_s <= 0 && o->count <= 0) {
        snprintf(err, errlen, "refusing an unbounded run: give --duration S or --count N");
        return -1;
    }
    o->seed = (uint64_t)seed * 0x9e3779b97f4a7c15ull + 0x2545f4914f6cdd1dull;
    const char *t = o->target;
    if (strncmp(t, "http://", 7) == 0)
        t += 7;
    else if (strstr(t, "://")) {
        snprintf(err, errlen, "target '%s': only http:// (h2c) is supported", o->target);
        return -1;
    }
    char addr[300];
    snprintf(addr, sizeof(addr), "%s", t);
    size_t al = strlen(addr);
    if (al && addr[al - 1] == '/')
        addr[al - 1] = 0;
    if (gw_hostport_split(addr, o->host, sizeof(o->host), &o->port) < 0) {
        snprintf(err, errlen, "target '%s': expected host:port", o->target);
        return -1;
    }
    snprintf(o->authority, sizeof(o->authority), "%s", addr);
    return 0;
}

/* --- report ---------------------------------------------------------------- */

static const double lg_pcts[] = {50, 90, 99, 99.9};
static const char *const lg_pct_names[] = {"p50", "p90", "p99", "p99.9"};

static void lg_report(struct lg_gen *g, double elapsed_s, double cpu_s)
{
    const struct lg_opts *o = g->o;
    double rate = elapsed_s > 0 ? (double)g->done / elapsed_s : 0;
    double us[4];
    for (int i = 0; i < 4; i++)
        us[i] = (double)bench_hist_percentile(&g->hist, lg_pcts[i]) / 1e3;
    if (o->json) {
        json_t *j = json_object();
        json_t *lat = json_object(), *st = json_object();
        json_object_set_new(j, "target", json_string(o->authority));
        json_object_set_new(j, "method", json_string(o->path));
        json_object_set_new(j, "mode", json_string(o->rate > 0 ? "open" : "closed"));
        if (o->rate > 0) {
            json_object_set_new(j, "offered_rate", json_real(o->rate));
            json_object_set_new(j, "arrival",
                                json_string(o->arrival == LG_POISSON ? "poisson" : "uniform"));
        } else {
            json_object_set_new(j, "concurrency", json_integer(o->concurrency));
        }
        json_object_set_new(j, "connections", json_integer(o->connections));
        json_object_set_new(j, "request_bytes", json_integer((json_int_t)g->req_len));
        json_object_set_new(j, "issued", json_integer(g->issued));
        json_object_set_new(j, "completed", json_integer(g->done));
        json_object_set_new(j, "elapsed_s", json_real(elapsed_s));
        json_object_set_new(j, "achieved_rate", json_real(rate));
        json_object_set_new(lat, "min", json_real((double)g->hist.min / 1e3));
        json_object_set_new(lat, "mean", json_real(bench_hist_mean(&g->hist) / 1e3));
        for (int i = 0; i < 4; i++)
            json_object_set_new(lat, lg_pct_names[i], json_real(us[i]));
        json_object_set_new(lat, "max", json_real((double)g->hist.max / 1e3));
        if (g->hist.total == 0)
            json_object_set_new(lat, "min", json_real(0));
        json_object_set_new(j, "latency_us", lat);
        for (int i = 0; i < LG_NSTATUS; i++)
            if (g->by_status[i])
                json_object_set_new(st, gw_grpc_status_name(i),
                                    json_integer((json_int_t)g->by_status[i]));
        json_object_set_new(j, "status", st);
        json_object_set_new(j, "no_status", json_integer((json_int_t)g->no_status));
        json_object_set_new(j, "connection_lost", json_integer((json_int_t)g->conn_lost));
        json_object_set_new(j, "unfinished", json_integer((json_int_t)g->unfinished));
        json_object_set_new(j, "connection_closes", json_integer(g->conn_errors));
        json_object_set_new(j, "max_schedule_lag_us", json_real((double)g->late_ns_max / 1e3));
        if (cpu_s >= 0) {
            json_object_set_new(j, "cpu_pid", json_integer(o->cpu_pid));
            json_object_set_new(j, "cpu_s", json_real(cpu_s));
            json_object_set_new(j, "cpu_us_per_call",
                                json_real(g->done ? cpu_s * 1e6 / (double)g->done : 0));
        }
        char *s = json_dumps(j, JSON_COMPACT | JSON_REAL_PRECISION(9));
        if (s)
            printf("%s\n", s);
        free(s);
        json_decref(j);
        return;
    }
    printf("target %s%s, %s loop", o->authority, o->path, o->rate > 0 ? "open" : "closed");
    if (o->rate > 0)
        printf(" at %.1f calls/s (%s)", o->rate, o->arrival == LG_POISSON ? "poisson" : "uniform");
    else
        printf(" with %ld in flight", o->concurrency);
    printf(", %ld connection(s), %zu-byte request\n", o->connections, g->req_len);
    printf("calls: %ld issued, %ld completed in %.3f s = %.1f calls/s\n", g->issued, g->done,
           elapsed_s, rate);
    printf("latency (us, from scheduled start): mean %.1f", bench_hist_mean(&g->hist) / 1e3);
    for (int i = 0; i < 4; i++)
        printf(" %s %.1f", lg_pct_names[i], us[i]);
    printf(" max %.1f\n", (double)g->hist.max / 1e3);
    printf("status:");
    for (int i = 0; i < LG_NSTATUS; i++)
        if (g->by_status[i])
            printf(" %s %llu", gw_grpc_status_name(i), (unsigned long long)g->by_status[i]);
    if (g->no_status)
        printf(" no_status %llu", (unsigned long long)g->no_status);
    if (g->conn_lost)
        printf(" connection_lost %llu", (unsigned long long)g->conn_lost);
    if (g->unfinished)
        printf(" unfinished %llu", (unsigned long long)g->unfinished);
    printf("\n");
    if (cpu_s >= 0)
        printf("cpu of pid %ld: %.3f s = %.2f us per call\n", o->cpu_pid, cpu_s,
               g->done ? cpu_s * 1e6 / (double)g->done : 0);
}

/* --- main ------------------------------------------------------------------ */

int main(int argc, char **argv)
{
    static struct lg_opts o;
    static struct lg_gen g; /* the histogram is ~30 KiB: keep it off the stack */
    char err[512];
    int rc = lg_parse(&o, argc, argv, err, sizeof(err));
    if (rc == 1) {
        lg_usage(stdout);
        return 0;
    }
    if (rc < 0) {
        fprintf(stderr, "infergw-bench: %s\n", err);
        return 2;
    }
    signal(SIGPIPE, SIG_IGN);
    g.o = &o;
    g.rng = o.seed;
    bench_hist_init(&g.hist);
    if (lg_build_request(&g, err, sizeof(err)) < 0 || lg_build_headers(&g) < 0) {
        fprintf(stderr, "infergw-bench: %s\n", err[0] ? err : "out of memory");
        return 2;
    }
    if (o.route_keys > 0 && o.key_dist == LG_ZIPF &&
        !(g.zipf_cdf = lg_zipf_table(o.route_keys, 1.1)))
        return 1;
    struct addrinfo hints = {.ai_family = AF_UNSPEC, .ai_socktype = SOCK_STREAM};
    char ps[8];
    snprintf(ps, sizeof(ps), "%u", o.port);
    if (getaddrinfo(o.host, ps, &hints, &g.addr) != 0) {
        fprintf(stderr, "infergw-bench: cannot resolve %s\n", o.host);
        return 1;
    }
    if (gw_loop_init(&g.loop, NULL, &g) < 0)
        return 1;
    nghttp2_session_callbacks_new(&g.cbs);
    nghttp2_session_callbacks_set_on_header_callback(g.cbs, lg_on_header);
    nghttp2_session_callbacks_set_on_stream_close_callback(g.cbs, lg_on_stream_close);
    nghttp2_session_callbacks_set_on_frame_not_send_callback(g.cbs, lg_on_frame_not_send);
    g.conns = gw_calloc((size_t)o.connections, sizeof(*g.conns));
    if (!g.conns)
        return 1;
    for (long i = 0; i < o.connections; i++) {
        g.conns[i] = gw_calloc(1, sizeof(**g.conns));
        if (!g.conns[i])
            return 1;
        g.conns[i]->gen = &g;
        int e = lg_conn_open(&g, g.conns[i]);
        if (e < 0) {
            fprintf(stderr, "infergw-bench: cannot connect to %s: %s\n", o.authority, strerror(-e));
            return 1;
        }
    }
    int tfd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
    if (tfd < 0 || gw_loop_add(&g.loop, &g.tick_io, tfd, EPOLLIN, lg_on_tick) < 0) {
        fprintf(stderr, "infergw-bench: timerfd: %s\n", strerror(errno));
        return 1;
    }
    gw_timer_init(&g.stop_timer, lg_on_stop, &g);

    long long cpu0 = o.cpu_pid > 0 ? lg_proc_cpu_ticks(o.cpu_pid) : -1;
    if (o.cpu_pid > 0 && cpu0 < 0) {
        fprintf(stderr, "infergw-bench: --cpu-pid %ld: cannot read /proc/%ld/stat\n", o.cpu_pid,
                o.cpu_pid);
        return 2;
    }
    g.start_ns = gw_now_ns();
    if (o.duration_s > 0)
        g.end_ns = g.start_ns + (uint64_t)(o.duration_s * 1e9);
    struct gw_timer start;
    if (o.rate > 0) {
        g.next_ns = g.start_ns;
        lg_arm_tick(&g, g.start_ns);
    } else {
        gw_timer_init(&start, lg_on_closed_loop_start, &g);
        gw_loop_timer_at(&g.loop, &start, g.start_ns);
        if (g.end_ns)
            gw_loop_timer_at(&g.loop, &g.stop_timer, g.end_ns);
    }
    gw_loop_run(&g.loop);
    uint64_t end = g.last_done_ns > g.start_ns ? g.last_done_ns : gw_now_ns();
    double elapsed = (double)(end - g.start_ns) / 1e9;
    double cpu_s = -1;
    if (cpu0 >= 0) {
        long long cpu1 = lg_proc_cpu_ticks(o.cpu_pid);
        if (cpu1 >= cpu0)
            cpu_s = (double)(cpu1 - cpu0) / (double)sysconf(_SC_CLK_TCK);
    }
    lg_report(&g, elapsed, cpu_s);

    for (long i = 0; i < o.connections; i++) {
        struct lg_conn *lc = g.conns[i];
        if (lc->alive) {
            while (lc->calls) { /* abandoned after the drain time */
                struct lg_call *c = lc->calls;
                lc->calls = c->next;
                gw_free(c);
            }
            nghttp2_session_del(lc->conn.sess);
            gw_loop_del(&g.loop, &lc->conn.io);
            close(lc->conn.io.fd);
            gw_conn_release(&lc->conn);
        }
        gw_free(lc);
    }
    gw_free(g.conns);
    gw_loop_del(&g.loop, &g.tick_io);
    close(tfd);
    nghttp2_session_callbacks_del(g.cbs);
    freeaddrinfo(g.addr);
    gw_loop_free(&g.loop);
    gw_free(g.req);
    gw_free(g.nv);
    gw_free(g.zipf_cdf);
    return 0;
}
