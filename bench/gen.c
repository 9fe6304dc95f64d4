/* SPDX-License-Identifier: Apache-2.0 */
/* gen — the engine of infergw-bench (see gen.h). In open loop every call is
 * timed from its SCHEDULED start, not from when it was written (see
 * loadgen.c); grpc-status is read from the trailers (or a trailers-only
 * HEADERS frame) and counted by name.
 */
#include "gen.h"

#include <errno.h>
#include <math.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/epoll.h>
#include <sys/stat.h>
#include <sys/timerfd.h>
#include <unistd.h>

#include "base/config.h"
#include "base/hostport.h"
#include "base/mem.h"
#include "grpc_predict_v2.pb-c.h"

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
double *lg_zipf_table(long n, double s)
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
    if (g->o->stream_tokens > 0 && c->grpc_status == 0 && c->msgs != g->o->stream_tokens)
        g->short_calls++;
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

int lg_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                 const uint8_t *value, size_t valuelen, uint8_t flags, void *ud)
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

int lg_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud)
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

/* One whole response message of <c> came in: timed from the call's start
 * (the first) or from the message before. */
static void lg_message_done(struct lg_gen *g, struct lg_call *c)
{
    uint64_t now = gw_now_ns();
    if (c->last_msg_ns)
        bench_hist_record(&g->gap_hist, now - c->last_msg_ns);
    else
        bench_hist_record(&g->first_hist, now > c->sched_ns ? now - c->sched_ns : 0);
    c->last_msg_ns = now;
    c->msgs++;
    g->msgs++;
}

/* Cuts <len> bytes of response DATA into gRPC messages (5-byte prefix, then
 * the body); a message ends when its last body byte is in. */
int lg_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
               void *ud)
{
    struct lg_call *c = nghttp2_session_get_stream_user_data(s, sid);
    (void)flags;
    if (!c)
        return 0;
    while (len > 0) {
        if (c->prefix_have < sizeof(c->prefix)) {
            c->prefix[c->prefix_have++] = *data++;
            len--;
            if (c->prefix_have < sizeof(c->prefix))
                continue;
            c->body_left = (uint32_t)c->prefix[1] << 24 | (uint32_t)c->prefix[2] << 16 |
                           (uint32_t)c->prefix[3] << 8 | c->prefix[4];
        } else {
            size_t n = len < c->body_left ? len : c->body_left;
            c->body_left -= (uint32_t)n;
            data += n;
            len -= n;
        }
        if (c->body_left == 0) {
            lg_message_done(((struct lg_conn *)ud)->gen, c);
            c->prefix_have = 0;
        }
    }
    return 0;
}

/* A request nghttp2 never sent (connection going away) ends here, not in
 * on_stream_close. */
int lg_on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f, int lib_err, void *ud)
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
int lg_conn_open(struct lg_gen *g, struct lg_conn *lc)
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
void lg_arm_tick(struct lg_gen *g, uint64_t when_ns)
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
void lg_on_tick(struct gw_io *io, uint32_t events)
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
void lg_on_stop(struct gw_timer *t, void *arg)
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

void lg_on_closed_loop_start(struct gw_timer *t, void *arg)
{
    struct lg_gen *g = arg;
    (void)t;
    for (long i = 0; i < g->o->concurrency && !lg_count_reached(g) && !g->issuing_over; i++)
        lg_issue(g, gw_now_ns());
    if (lg_count_reached(g))
        lg_stop_issuing(g);
}

/* --- request --------------------------------------------------------------- */

/* A token-model request (docs/stream-resume.md): prompt "bench prompt",
 * seed 42, max_tokens M. Returns the packed message (gw_free it), or NULL. */
static uint8_t *lg_token_request(const struct lg_opts *o, size_t *len)
{
    static char prompt[] = "bench prompt";
    ProtobufCBinaryData text = {.len = sizeof(prompt) - 1, .data = (uint8_t *)prompt};
    Inference__InferTensorContents contents = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    contents.n_bytes_contents = 1;
    contents.bytes_contents = &text;
    int64_t shape[1] = {1};
    Inference__ModelInferRequest__InferInputTensor in =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    in.name = "PROMPT";
    in.datatype = "BYTES";
    in.n_shape = 1;
    in.shape = shape;
    in.contents = &contents;
    Inference__ModelInferRequest__InferInputTensor *ins[1] = {&in};
    Inference__InferParameter seed = INFERENCE__INFER_PARAMETER__INIT,
                              max = INFERENCE__INFER_PARAMETER__INIT;
    seed.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    seed.int64_param = 42;
    max.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    max.int64_param = o->stream_tokens;
    Inference__ModelInferRequest__ParametersEntry
        pseed = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT,
        pmax = INFERENCE__MODEL_INFER_REQUEST__PARAMETERS_ENTRY__INIT;
    pseed.key = "seed";
    pseed.value = &seed;
    pmax.key = "max_tokens";
    pmax.value = &max;
    Inference__ModelInferRequest__ParametersEntry *params[2] = {&pseed, &pmax};
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    req.model_name = (char *)o->model;
    req.id = "bench";
    req.n_parameters = 2;
    req.parameters = params;
    req.n_inputs = 1;
    req.inputs = ins;
    *len = inference__model_infer_request__get_packed_size(&req);
    uint8_t *msg = gw_malloc(*len ? *len : 1);
    if (msg)
        inference__model_infer_request__pack(&req, msg);
    return msg;
}

/* Reads the file or builds a KServe ModelInferRequest, and frames it. */
int lg_build_request(struct lg_gen *g, char *err, size_t errlen)
{
    const struct lg_opts *o = g->o;
    uint8_t *msg = NULL;
    size_t len = 0;
    if (o->stream_tokens > 0 && !o->payload_file) {
        if (!(msg = lg_token_request(o, &len)))
            return -1;
    } else if (o->payload_file) {
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

int lg_build_headers(struct lg_gen *g)
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
