/* SPDX-License-Identifier: Apache-2.0 */
/* server — the replica's gRPC server on the grpc core C API (see server.h).
 *
 * A call goes through these steps, each started from the worker that owns
 * the call and finished by a completion on that worker's queue:
 *   new call      -> RECV_CLOSE_ON_SERVER (tells us about cancellation) and
 *                    RECV_MESSAGE (unknown methods get UNIMPLEMENTED at once,
 *                    a stream with a bad or unwanted x-resume-from its
 *                    refusal)
 *   message       -> a job: the reply, its delay, how often to send it (or
 *                    the token stream it sends)
 *   job           -> timer (the delay), then SEND_MESSAGE batches one at a
 *                    time, the first with the initial metadata, the last of a
 *                    unary call with the status; a token stream waits
 *                    --token-ms before each token after its first, and the
 *                    first x-resume-from messages of a stream are skipped
 *   stream        -> keeps receiving while fewer than STREAM_BACKLOG jobs
 *                    wait; half-close queues the final OK status
 *   close         -> the call is freed once no batch is outstanding
 * Only one batch per direction is outstanding at a time (grpc core allows
 * no two batches with the same op type on a call), and a call is freed only
 * from its last completion, never while grpc core may still write into it.
 */
#include "server.h"

#include <errno.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>
#include <time.h>
#include <unistd.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "base/err.h"
#include "base/grpcwire.h"
#include "jlog.h"
#include "service.h"
#include "base/timer.h"

#ifndef RP_VERSION
#define RP_VERSION "0"
#endif

#define SLOTS_PER_WORKER 32 /* grpc_server_request_call kept outstanding */
#define STREAM_BACKLOG   8  /* stream requests decoded ahead of the one answered */
#define MAX_MESSAGE      (64 << 20)
#define IDLE_WAKE_NS     (50ull * 1000000) /* workers look at the stop flags this often */
#define NS_PER_MS        1000000ull

enum tag_kind { TAG_NEW, TAG_RECV, TAG_SEND, TAG_CLOSE };

struct worker;
struct call;

/* The tag of every batch on a call: <kind> first, so that a tag pointer
 * from the queue tells what it is before it is cast. */
struct tag {
    enum tag_kind kind;
    struct call *c;
};

/* One outstanding grpc_server_request_call. */
struct slot {
    enum tag_kind kind; /* TAG_NEW; first member, as in struct tag */
    struct worker *w;
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
};

/* What a call has still to send for one request: <count> copies of <msg>,
 * or the messages of the token stream <tok>, then, if <final>, the status
 * <code>/<detail>. <sent> counts the messages sent (not those skipped for
 * x-resume-from). */
struct job {
    struct job *next;
    grpc_slice msg;
    int has_msg;
    long count, sent;
    struct rp_tokens *tok;
    uint64_t delay_ns;
    grpc_status_code code;
    char *detail; /* NULL for OK */
    unsigned started : 1, final : 1, injected : 1, gap_over : 1;
};

struct call {
    struct worker *w;
    struct call *prev, *next; /* the worker's live calls */
    grpc_call *call;
    grpc_call_details details;
    grpc_metadata_array md;
    enum rp_method method;
    char *path;
    struct tag t_recv, t_send, t_close;
    int npending; /* batches started and not completed */
    grpc_byte_buffer *recv_bb, *send_bb;
    int cancelled; /* written by RECV_CLOSE_ON_SERVER */
    grpc_metadata md_out[3];
    struct gw_timer timer; /* the delay of the job at the head; runs on_timer */
    struct job *head, *tail;
    int njobs;
    long requests;
    long resume_from; /* x-resume-from, -1 when absent */
    long skip;        /* messages still to skip for it */
    long produced;    /* messages sent or skipped */
    grpc_status_code status;
    unsigned closed : 1, recv_busy : 1, recv_eof : 1, send_busy : 1, md_sent : 1, status_sent : 1,
        final_queued : 1, failed : 1, injected : 1;
};

struct worker {
    struct rp_server *s;
    int index;
    pthread_t thread;
    int thread_started;
    grpc_completion_queue *cq;
    struct gw_timer_heap timers;
    uint64_t rng;
    int pending_requests;
    int live_calls;
    int cancelled_all;
    struct call *calls;
    struct slot slots[SLOTS_PER_WORKER];
};

struct rp_server {
    const struct rp_config *cfg;
    struct rp_service svc;
    atomic_int serving;
    grpc_server *server;
    grpc_completion_queue *shutdown_cq;
    struct worker *workers;
    int nworkers;
    atomic_int live_calls;
    atomic_int cancel_all; /* workers cancel their calls (shutdown grace is over) */
    atomic_int exiting;    /* the server is destroyed: workers drain and return */
    atomic_ullong calls, ok, errors, injected, cancelled;
    char addr[300];
};

/* --- time and randomness ---------------------------------------------------- */

/* Times are gw_now_ns() (CLOCK_MONOTONIC), the clock of the timer heaps.
 * gpr's monotonic clock is offset from it, so grpc core is handed deadlines
 * relative to now (GPR_TIMESPAN), never absolute times. */
static gpr_timespec in_ns(uint64_t ns)
{
    return gpr_time_from_nanos((int64_t)ns, GPR_TIMESPAN);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* xorshift64*: a uniform double in [0, 1). One stream per worker. */
static double rng_unit(struct worker *w)
{
    uint64_t x = w->rng;
    x ^= x >> 12;
    x ^= x << 25;
    x ^= x >> 27;
    w->rng = x;
    return (double)((x * 0x2545f4914f6cdd1dull) >> 11) / 9007199254740992.0;
}

/* True for <fraction> of the draws; draws nothing when fraction is 0, so a
 * seed reproduces the same choices whatever other flags are set. */
static int roll(struct worker *w, double fraction)
{
    return fraction > 0.0 && rng_unit(w) < fraction;
}

/* --nondeterministic: a value no other process shares (never 0). */
static uint64_t random_salt(void)
{
    uint64_t v = 0;
    if (getrandom(&v, sizeof(v), 0) != (ssize_t)sizeof(v))
        v = gw_now_ns() ^ ((uint64_t)getpid() << 32) ^ (uint64_t)(uintptr_t)&v;
    return splitmix64(v) | 1;
}

/* --- jobs ------------------------------------------------------------------- */

static void job_free(struct job *j)
{
    if (j->has_msg)
        grpc_slice_unref(j->msg);
    if (j->tok) {
        rp_tokens_free(j->tok);
        free(j->tok);
    }
    free(j->detail);
    free(j);
}

static void call_append(struct call *c, struct job *j)
{
    if (c->tail)
        c->tail->next = j;
    else
        c->head = j;
    c->tail = j;
    c->njobs++;
    if (j->final)
        c->final_queued = 1;
}

static void call_pop(struct call *c)
{
    struct job *j = c->head;
    c->head = j->next;
    if (!c->head)
        c->tail = NULL;
    c->njobs--;
    job_free(j);
}

static void call_fail(struct call *c, const char *why)
{
    c->failed = 1;
    grpc_call_cancel_with_status(c->call, GRPC_STATUS_RESOURCE_EXHAUSTED, why, NULL);
}

/* Queues a status (no message) with <delay_ns>. */
static void push_status(struct call *c, grpc_status_code code, const char *detail,
                        uint64_t delay_ns, int injected)
{
    struct job *j = calloc(1, sizeof(*j));
    if (!j || (detail && !(j->detail = strdup(detail)))) {
        free(j);
        call_fail(c, "out of memory");
        return;
    }
    j->code = code;
    j->final = 1;
    j->injected = injected ? 1 : 0;
    j->delay_ns = delay_ns;
    call_append(c, j);
}

/* Queues <r> (takes ownership of r->msg). A unary reply, or any non-OK
 * reply, ends the call. */
static void push_reply(struct call *c, struct rp_reply *r, uint64_t delay_ns, int unary)
{
    struct job *j;

    if (r->code != GRPC_STATUS_OK) {
        push_status(c, r->code, r->detail, delay_ns, 0);
        return;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        free(r->msg);
        if (r->tokens) {
            rp_tokens_free(r->tokens);
            free(r->tokens);
        }
        call_fail(c, "out of memory");
        return;
    }
    if (r->tokens) {
        j->tok = r->tokens;
    } else {
        /* The slice takes the buffer: sent <count> times without a copy. */
        j->msg = grpc_slice_new(r->msg, r->msg_len, free);
        j->has_msg = 1;
        j->count = r->count;
    }
    j->code = GRPC_STATUS_OK;
    j->final = unary ? 1 : 0;
    j->delay_ns = delay_ns;
    call_append(c, j);
}

/* --- batches ---------------------------------------------------------------- */

/* Starts a batch; counts it outstanding. Returns 0, or -1 (logged, call
 * cancelled) when grpc core refuses it, which is a bug in this file. */
static int start_batch(struct call *c, const grpc_op *ops, size_t n, struct tag *t)
{
    grpc_call_error e = grpc_call_start_batch(c->call, ops, n, t, NULL);
    if (e != GRPC_CALL_OK) {
        struct rp_jline l;
        rp_jlog_begin(&l, "internal_error", c->w->s->cfg->id);
        rp_jlog_str(&l, "method", c->path);
        rp_jlog_str(&l, "message", grpc_call_error_to_string(e));
        rp_jlog_end(&l);
        call_fail(c, "internal error");
        return -1;
    }
    c->npending++;
    return 0;
}

static void start_recv(struct call *c)
{
    grpc_op op;
    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_MESSAGE;
    op.data.recv_message.recv_message = &c->recv_bb;
    if (start_batch(c, &op, 1, &c->t_recv) == 0)
        c->recv_busy = 1;
}

static void set_md(grpc_metadata *md, const char *key, const char *value)
{
    memset(md, 0, sizeof(*md));
    md->key = grpc_slice_from_static_string(key);
    md->value = grpc_slice_from_static_string(value);
}

/* Adds SEND_INITIAL_METADATA to <op>: x-replica-id, or nothing at all when
 * <empty> (so that grpc core sends a trailers-only response). grpc core
 * scribbles on grpc_metadata, so each call has its own copy. */
static void op_initial_md(struct call *c, grpc_op *op, int empty)
{
    memset(op, 0, sizeof(*op));
    op->op = GRPC_OP_SEND_INITIAL_METADATA;
    if (!empty) {
        set_md(&c->md_out[0], "x-replica-id", c->w->s->cfg->id);
        op->data.send_initial_metadata.count = 1;
        op->data.send_initial_metadata.metadata = c->md_out;
    }
}

/* Sends the next message of <j>: the next copy of j->msg, or the next
 * token of j->tok. */
static void send_message(struct call *c, struct job *j)
{
    grpc_op ops[3];
    size_t n = 0;
    int with_status = j->final && !j->tok && j->sent + 1 == j->count;

    if (j->tok) {
        uint8_t *buf;
        size_t len;
        grpc_slice msg;
        if (rp_tokens_pack(j->tok, j->tok->next, &buf, &len) < 0) {
            call_fail(c, "out of memory");
            return;
        }
        msg = grpc_slice_new(buf, len, free);
        c->send_bb = grpc_raw_byte_buffer_create(&msg, 1);
        grpc_slice_unref(msg);
    } else {
        c->send_bb = grpc_raw_byte_buffer_create(&j->msg, 1);
    }
    if (!c->md_sent)
        op_initial_md(c, &ops[n++], 0);
    memset(&ops[n], 0, sizeof(ops[n]));
    ops[n].op = GRPC_OP_SEND_MESSAGE;
    ops[n++].data.send_message.send_message = c->send_bb;
    if (with_status) {
        memset(&ops[n], 0, sizeof(ops[n]));
        ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
        ops[n++].data.send_status_from_server.status = j->code;
    }
    if (start_batch(c, ops, n, &c->t_send) < 0) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
        return;
    }
    c->send_busy = 1;
    c->md_sent = 1;
    j->sent++;
    c->produced++;
    if (j->tok)
        j->tok->next++;
    if (with_status) {
        c->status_sent = 1;
        c->status = j->code;
    }
}

static void send_status(struct call *c, struct job *j)
{
    const struct rp_config *cfg = c->w->s->cfg;
    grpc_op ops[2];
    grpc_slice detail;
    size_t n = 0;
    int rc;

    if (j->injected && cfg->error_after_headers && !c->md_sent) {
        /* Headers in a batch of their own: the status then has to come as
         * trailers after them, never as a trailers-only response. */
        op_initial_md(c, &ops[0], 0);
        if (start_batch(c, ops, 1, &c->t_send) == 0) {
            c->send_busy = 1;
            c->md_sent = 1;
        }
        return;
    }
    if (!c->md_sent)
        op_initial_md(c, &ops[n++], j->injected);
    memset(&ops[n], 0, sizeof(ops[n]));
    ops[n].op = GRPC_OP_SEND_STATUS_FROM_SERVER;
    ops[n].data.send_status_from_server.status = j->code;
    if (j->injected) {
        /* An injected error's initial metadata is empty or already sent, so
         * md_out is free for the trailers. */
        set_md(&c->md_out[0], "x-injected-error", gw_grpc_status_name(j->code));
        set_md(&c->md_out[1], "x-replica-id", cfg->id);
        ops[n].data.send_status_from_server.trailing_metadata_count = 2;
        if (cfg->error_pushback) {
            set_md(&c->md_out[2], "grpc-retry-pushback-ms", cfg->error_pushback);
            ops[n].data.send_status_from_server.trailing_metadata_count = 3;
        }
        ops[n].data.send_status_from_server.trailing_metadata = c->md_out;
    }
    if (j->detail) {
        detail = grpc_slice_from_copied_string(j->detail);
        ops[n].data.send_status_from_server.status_details = &detail;
    }
    n++;
    rc = start_batch(c, ops, n, &c->t_send);
    if (j->detail)
        grpc_slice_unref(detail);
    if (rc < 0)
        return;
    c->send_busy = 1;
    c->md_sent = 1;
    c->status_sent = 1;
    c->status = j->code;
    c->injected = j->injected;
}

static int job_has_message(const struct job *j)
{
    return j->tok ? j->tok->next < j->tok->end : j->has_msg && j->sent < j->count;
}

/* Passes over the next message of <j> for x-resume-from, as if it had been
 * sent. */
static void job_skip(struct call *c, struct job *j)
{
    if (j->tok)
        j->tok->next++;
    else
        j->sent++;
    c->skip--;
    c->produced++;
}

/* The end of a stream that x-resume-from asked to start after its last
 * message: its OK status becomes INVALID_ARGUMENT. 0, or -1 when out of
 * memory (the call is failed). */
static int resume_beyond_end(struct call *c, struct job *j)
{
    char detail[200];

    if (c->skip <= 0 || j->code != GRPC_STATUS_OK)
        return 0;
    snprintf(detail, sizeof(detail),
             "x-resume-from: %ld is beyond the end of the stream (%ld messages)", c->resume_from,
             c->produced);
    free(j->detail);
    j->detail = strdup(detail);
    if (!j->detail) {
        call_fail(c, "out of memory");
        return -1;
    }
    j->code = GRPC_STATUS_INVALID_ARGUMENT;
    c->skip = 0;
    return 0;
}

/* Moves the call forward as far as it can go without waiting: arms the
 * delay of the next job, or starts the next send, or receives more, or
 * skips the messages x-resume-from passes over. */
static void pump(struct call *c)
{
    struct worker *w = c->w;
    uint64_t token_ns = (uint64_t)w->s->cfg->token_ms * NS_PER_MS;
    struct job *j;

    while (!c->closed && !c->failed && !c->send_busy && !gw_timer_armed(&c->timer) &&
           (j = c->head)) {
        if (!j->started) {
            j->started = 1;
            if (j->delay_ns &&
                gw_timer_heap_add(&w->timers, &c->timer, gw_now_ns() + j->delay_ns) == 0)
                break;
        }
        if (!c->status_sent && job_has_message(j)) {
            if (c->skip > 0) {
                job_skip(c, j);
                continue;
            }
            /* --token-ms: a pause before each token but the first sent. */
            if (j->tok && j->sent > 0 && token_ns && !j->gap_over &&
                gw_timer_heap_add(&w->timers, &c->timer, gw_now_ns() + token_ns) == 0) {
                j->gap_over = 1;
                break;
            }
            j->gap_over = 0;
            send_message(c, j);
            break;
        }
        if (!c->status_sent && j->final) {
            if (resume_beyond_end(c, j) < 0)
                break;
            send_status(c, j);
            break;
        }
        call_pop(c);
    }
    /* A stream reads ahead while it answers, up to STREAM_BACKLOG requests. */
    if (c->method == RP_M_MODEL_STREAM_INFER && !c->closed && !c->failed && !c->recv_busy &&
        !c->recv_eof && !c->final_queued && c->njobs < STREAM_BACKLOG)
        start_recv(c);
}

/* --- call life -------------------------------------------------------------- */

static uint64_t delay_for(struct call *c)
{
    const struct rp_config *cfg = c->w->s->cfg;
    if (!rp_service_is_delayed(c->method))
        return 0;
    if (roll(c->w, cfg->slow_fraction))
        return (uint64_t)cfg->slow_ms * NS_PER_MS;
    return (uint64_t)cfg->latency_ms * NS_PER_MS;
}

/* Whether this request is answered with the injected error instead: every
 * ModelInfer call, and the first request of each ModelStreamInfer call. */
static int inject_error(struct call *c)
{
    if (!rp_service_is_inference(c->method) || c->requests != 1)
        return 0;
    return roll(c->w, c->w->s->cfg->error_fraction);
}

static void handle_request(struct call *c, const uint8_t *p, size_t len)
{
    struct rp_server *s = c->w->s;
    struct rp_reply r;
    uint64_t delay = delay_for(c);

    c->requests++;
    if (inject_error(c)) {
        push_status(c, s->cfg->error_code, "injected error", delay, 1);
    } else if (c->method == RP_M_MODEL_STREAM_INFER) {
        rp_service_stream(&s->svc, p, len, &r);
        push_reply(c, &r, delay, 0);
    } else {
        rp_service_unary(&s->svc, c->method, p, len, &r);
        push_reply(c, &r, delay, 1);
    }
}

static void on_recv(struct call *c, int ok)
{
    grpc_byte_buffer *bb = c->recv_bb;
    grpc_byte_buffer_reader reader;
    grpc_slice data;

    c->recv_bb = NULL;
    c->recv_busy = 0;
    if (!ok || c->closed || c->failed || c->status_sent) {
        /* The call is failing or answered: RECV_CLOSE_ON_SERVER reports how. */
        if (bb)
            grpc_byte_buffer_destroy(bb);
        return;
    }
    if (!bb) {
        /* The client half-closed. */
        c->recv_eof = 1;
        if (c->method == RP_M_MODEL_STREAM_INFER)
            push_status(c, GRPC_STATUS_OK, NULL, 0, 0);
        else
            push_status(c, GRPC_STATUS_INVALID_ARGUMENT, "the client sent no request message", 0,
                        0);
        pump(c);
        return;
    }
    /* One uncompressed slice (the usual case) is read in place. */
    if (bb->type == GRPC_BB_RAW && bb->data.raw.compression == GRPC_COMPRESS_NONE &&
        bb->data.raw.slice_buffer.count == 1) {
        data = grpc_slice_ref(bb->data.raw.slice_buffer.slices[0]);
    } else if (grpc_byte_buffer_reader_init(&reader, bb)) {
        data = grpc_byte_buffer_reader_readall(&reader);
        grpc_byte_buffer_reader_destroy(&reader);
    } else {
        grpc_byte_buffer_destroy(bb);
        push_status(c, GRPC_STATUS_INTERNAL, "cannot read the request message", 0, 0);
        pump(c);
        return;
    }
    grpc_byte_buffer_destroy(bb);
    handle_request(c, GRPC_SLICE_START_PTR(data), GRPC_SLICE_LENGTH(data));
    grpc_slice_unref(data);
    pump(c);
}

static void on_send(struct call *c, int ok)
{
    c->send_busy = 0;
    if (c->send_bb) {
        grpc_byte_buffer_destroy(c->send_bb);
        c->send_bb = NULL;
    }
    if (!ok)
        c->failed = 1;
    pump(c);
}

static void on_close(struct call *c, int ok)
{
    struct worker *w = c->w;
    c->closed = 1;
    if (!ok)
        c->cancelled = 1;
    /* Nothing more will be sent: drop the delay and what was queued. */
    gw_timer_heap_cancel(&w->timers, &c->timer);
    while (c->head)
        call_pop(c);
}

static void log_call(struct call *c)
{
    struct rp_server *s = c->w->s;
    struct rp_jline l;

    atomic_fetch_add(&s->calls, 1);
    if (c->cancelled) {
        atomic_fetch_add(&s->cancelled, 1);
        rp_jlog_begin(&l, "cancelled", s->cfg->id);
        rp_jlog_str(&l, "method", c->path);
        rp_jlog_end(&l);
        return;
    }
    if (c->status == GRPC_STATUS_OK) {
        atomic_fetch_add(&s->ok, 1);
    } else {
        atomic_fetch_add(&s->errors, 1);
        if (c->injected)
            atomic_fetch_add(&s->injected, 1);
    }
    if (s->cfg->quiet)
        return;
    rp_jlog_begin(&l, "call", s->cfg->id);
    rp_jlog_str(&l, "method", c->path);
    rp_jlog_str(&l, "status", gw_grpc_status_name(c->status));
    rp_jlog_bool(&l, "cancelled", 0);
    if (c->resume_from >= 0)
        rp_jlog_num(&l, "resume_from", (unsigned long long)c->resume_from);
    /* How many attempts came before this one (a retry or hedge through
     * infergw), and whether the caller's credentials reached the replica. */
    for (size_t i = 0; i < c->md.count; i++) {
        if (grpc_slice_str_cmp(c->md.metadata[i].key, "authorization") == 0)
            rp_jlog_bool(&l, "authorization", 1);
        if (grpc_slice_str_cmp(c->md.metadata[i].key, "grpc-previous-rpc-attempts") == 0) {
            char v[16];
            size_t len = GRPC_SLICE_LENGTH(c->md.metadata[i].value);
            len = len < sizeof(v) - 1 ? len : sizeof(v) - 1;
            memcpy(v, GRPC_SLICE_START_PTR(c->md.metadata[i].value), len);
            v[len] = '\0';
            rp_jlog_str(&l, "previous_attempts", v);
        }
    }
    rp_jlog_end(&l);
}

/* Frees <c> once it is closed and grpc core holds no batch of it. */
static void maybe_finish(struct call *c)
{
    struct worker *w = c->w;

    if (!c->closed || c->npending > 0)
        return;
    log_call(c);
    while (c->head)
        call_pop(c);
    if (c->prev)
        c->prev->next = c->next;
    else
        w->calls = c->next;
    if (c->next)
        c->next->prev = c->prev;
    grpc_call_unref(c->call);
    grpc_call_details_destroy(&c->details);
    grpc_metadata_array_destroy(&c->md);
    free(c->path);
    free(c);
    w->live_calls--;
    atomic_fetch_sub(&w->s->live_calls, 1);
}

static void slot_request(struct slot *sl)
{
    struct worker *w = sl->w;
    grpc_call_error e;

    sl->call = NULL;
    e = grpc_server_request_call(w->s->server, &sl->call, &sl->details, &sl->md, w->cq, w->cq, sl);
    if (e == GRPC_CALL_OK) {
        w->pending_requests++;
    } else {
        struct rp_jline l;
        rp_jlog_begin(&l, "internal_error", w->s->cfg->id);
        rp_jlog_str(&l, "message", grpc_call_error_to_string(e));
        rp_jlog_end(&l);
    }
}

/* Reads x-resume-from for a ModelStreamInfer call (other methods ignore
 * it): c->resume_from and c->skip. Returns 0, or -1 with the refusal queued:
 * FAILED_PRECONDITION with --no-resume, INVALID_ARGUMENT for a bad or
 * repeated value. */
static int resume_setup(struct call *c)
{
    const grpc_metadata *found = NULL;
    struct rp_error err;
    long n;

    c->resume_from = -1;
    if (c->method != RP_M_MODEL_STREAM_INFER)
        return 0;
    for (size_t i = 0; i < c->md.count; i++) {
        if (grpc_slice_str_cmp(c->md.metadata[i].key, "x-resume-from") != 0)
            continue;
        if (found) {
            push_status(c, GRPC_STATUS_INVALID_ARGUMENT, "x-resume-from is given more than once", 0,
                        0);
            return -1;
        }
        found = &c->md.metadata[i];
    }
    if (!found)
        return 0;
    if (c->w->s->cfg->no_resume) {
        push_status(c, GRPC_STATUS_FAILED_PRECONDITION, "resume not supported", 0, 0);
        return -1;
    }
    if (rp_resume_parse((const char *)GRPC_SLICE_START_PTR(found->value),
                        GRPC_SLICE_LENGTH(found->value), &n, &err) < 0) {
        push_status(c, err.code, err.msg, 0, 0);
        return -1;
    }
    c->resume_from = n;
    c->skip = n;
    return 0;
}

static void call_start(struct call *c)
{
    grpc_op op;
    const char *path = (const char *)GRPC_SLICE_START_PTR(c->details.method);
    size_t len = GRPC_SLICE_LENGTH(c->details.method);

    c->resume_from = -1;
    c->t_recv = (struct tag){TAG_RECV, c};
    c->t_send = (struct tag){TAG_SEND, c};
    c->t_close = (struct tag){TAG_CLOSE, c};
    c->method = rp_service_method(path, len);
    c->path = strndup(path, len);

    memset(&op, 0, sizeof(op));
    op.op = GRPC_OP_RECV_CLOSE_ON_SERVER;
    op.data.recv_close_on_server.cancelled = &c->cancelled;
    if (!c->path || start_batch(c, &op, 1, &c->t_close) < 0) {
        /* Without the close notification the call can only be dropped. */
        grpc_call_cancel(c->call, NULL);
        c->closed = 1;
        c->cancelled = 1;
        if (!c->path)
            c->path = strdup("?");
        return;
    }
    if (c->method == RP_M_UNKNOWN) {
        char detail[300];
        snprintf(detail, sizeof(detail), "method '%.200s' is not implemented by infergw-replica",
                 c->path);
        push_status(c, GRPC_STATUS_UNIMPLEMENTED, detail, 0, 0);
        pump(c);
    } else if (resume_setup(c) < 0) {
        pump(c);
    } else {
        start_recv(c);
    }
}

/* A job's delay is over: its sends can start. */
static void on_timer(struct gw_timer *t, void *arg)
{
    struct call *c = arg;

    pump(c);
    maybe_finish(c);
}

static void on_new(struct slot *sl, int ok)
{
    struct worker *w = sl->w;
    struct call *c;

    w->pending_requests--;
    if (!ok)
        return; /* the server is shutting down: no more calls */
    c = calloc(1, sizeof(*c));
    if (!c) {
        grpc_call_cancel_with_status(sl->call, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory",
                                     NULL);
        grpc_call_unref(sl->call);
        grpc_call_details_destroy(&sl->details);
        grpc_metadata_array_destroy(&sl->md);
    } else {
        c->w = w;
        gw_timer_init(&c->timer, on_timer, c);
        c->call = sl->call;
        c->details = sl->details;
        c->md = sl->md;
        c->next = w->calls;
        if (w->calls)
            w->calls->prev = c;
        w->calls = c;
        w->live_calls++;
        atomic_fetch_add(&w->s->live_calls, 1);
    }
    grpc_call_details_init(&sl->details);
    grpc_metadata_array_init(&sl->md);
    slot_request(sl);
    if (c) {
        call_start(c);
        maybe_finish(c);
    }
}

static void dispatch(void *tag, int ok)
{
    struct tag *t = tag;
    struct call *c;

    if (t->kind == TAG_NEW) {
        on_new((struct slot *)tag, ok);
        return;
    }
    c = t->c;
    c->npending--;
    switch (t->kind) {
    case TAG_RECV:
        on_recv(c, ok);
        break;
    case TAG_SEND:
        on_send(c, ok);
        break;
    case TAG_CLOSE:
        on_close(c, ok);
        break;
    case TAG_NEW:
        break;
    }
    maybe_finish(c);
}

static void *worker_main(void *arg)
{
    struct worker *w = arg;
    struct rp_server *s = w->s;

    for (int i = 0; i < SLOTS_PER_WORKER; i++) {
        struct slot *sl = &w->slots[i];
        sl->kind = TAG_NEW;
        sl->w = w;
        grpc_call_details_init(&sl->details);
        grpc_metadata_array_init(&sl->md);
        slot_request(sl);
    }
    for (;;) {
        uint64_t now = gw_now_ns(), wake;
        struct gw_timer *t;
        grpc_event ev;

        while ((t = gw_timer_heap_pop_expired(&w->timers, now)))
            t->cb(t, t->arg);
        if (atomic_load(&s->cancel_all) && !w->cancelled_all) {
            w->cancelled_all = 1;
            for (struct call *c = w->calls; c; c = c->next)
                grpc_call_cancel_with_status(c->call, GRPC_STATUS_UNAVAILABLE,
                                             "replica shutting down", NULL);
        }
        if (atomic_load(&s->exiting) && w->pending_requests == 0 && w->live_calls == 0)
            break;
        /* grpc core has no timer or alarm API in C: the worker sleeps no
         * longer than until the earliest expiry in its own heap. */
        wake = gw_timer_heap_next(&w->timers);
        if (wake > now + IDLE_WAKE_NS)
            wake = now + IDLE_WAKE_NS;
        ev = grpc_completion_queue_next(w->cq, in_ns(wake > now ? wake - now : 0), NULL);
        if (ev.type == GRPC_OP_COMPLETE)
            dispatch(ev.tag, ev.success);
        else if (ev.type == GRPC_QUEUE_SHUTDOWN)
            break;
    }
    for (int i = 0; i < SLOTS_PER_WORKER; i++) {
        grpc_call_details_destroy(&w->slots[i].details);
        grpc_metadata_array_destroy(&w->slots[i].md);
    }
    gw_timer_heap_free(&w->timers);
    return NULL;
}

/* --- server ----------------------------------------------------------------- */

static void drain_and_destroy(grpc_completion_queue *cq)
{
    grpc_completion_queue_shutdown(cq);
    while (grpc_completion_queue_next(cq, gpr_inf_future(GPR_CLOCK_REALTIME), NULL).type !=
           GRPC_QUEUE_SHUTDOWN)
        ;
    grpc_completion_queue_destroy(cq);
}

/* The address with the bound port: "127.0.0.1:0" becomes "127.0.0.1:41234". */
static void format_addr(char *buf, size_t len, const char *listen, int port)
{
    const char *colon = strrchr(listen, ':');
    if (strncmp(listen, "unix:", 5) == 0 || !colon)
        snprintf(buf, len, "%s", listen);
    else
        snprintf(buf, len, "%.*s:%d", (int)(colon - listen), listen, port);
}

static void wait_live_calls(struct rp_server *s, uint64_t until_ns)
{
    struct timespec pause = {0, 2 * 1000000};
    while (atomic_load(&s->live_calls) > 0 && gw_now_ns() < until_ns)
        nanosleep(&pause, NULL);
}

/* Waits for the server's shutdown tag on the private queue; 1 if it came
 * before <deadline>. */
static int wait_shutdown_tag(struct rp_server *s, gpr_timespec deadline)
{
    return grpc_completion_queue_next(s->shutdown_cq, deadline, NULL).type == GRPC_OP_COMPLETE;
}

void rp_server_stop(struct rp_server *s, long grace_ms, struct rp_stats *stats)
{
    uint64_t grace_ns = (uint64_t)grace_ms * NS_PER_MS, until = gw_now_ns() + grace_ns;

    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, s);
    if (!wait_shutdown_tag(s, in_ns(grace_ns))) {
        grpc_server_cancel_all_calls(s->server);
        atomic_store(&s->cancel_all, 1);
        wait_shutdown_tag(s, gpr_inf_future(GPR_CLOCK_MONOTONIC));
    }
    /* Calls finish on their workers; the ones that outlive the grace are
     * cancelled there (a delayed call may not be known to grpc core as
     * running, so cancel_all_calls alone cannot reach it). */
    wait_live_calls(s, until);
    atomic_store(&s->cancel_all, 1);
    wait_live_calls(s, UINT64_MAX);
    grpc_server_destroy(s->server);

    atomic_store(&s->exiting, 1);
    for (int i = 0; i < s->nworkers; i++) {
        if (s->workers[i].thread_started)
            pthread_join(s->workers[i].thread, NULL);
        drain_and_destroy(s->workers[i].cq);
    }
    drain_and_destroy(s->shutdown_cq);

    stats->calls = atomic_load(&s->calls);
    stats->ok = atomic_load(&s->ok);
    stats->errors = atomic_load(&s->errors);
    stats->injected_errors = atomic_load(&s->injected);
    stats->cancelled = atomic_load(&s->cancelled);
    free(s->workers);
    free(s);
}

const char *rp_server_addr(const struct rp_server *s)
{
    return s->addr;
}

void rp_server_set_serving(struct rp_server *s, int serving)
{
    atomic_store(&s->serving, serving ? 1 : 0);
}

/* Reads all of text file <path> into a NUL-terminated buffer (caller
 * frees), or NULL with the reason in <err>. */
static char *read_pem(const char *flag, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    char *buf = NULL;
    size_t len = 0, cap = 0;
    if (!f) {
        gw_errf(err, errlen, "%s '%s': %s", flag, path, strerror(errno));
        return NULL;
    }
    for (;;) {
        if (len + 4096 + 1 > cap) {
            char *nb = realloc(buf, cap = cap ? cap * 2 : 8192);
            if (!nb) {
                gw_errf(err, errlen, "%s '%s': out of memory", flag, path);
                free(buf);
                fclose(f);
                return NULL;
            }
            buf = nb;
        }
        size_t n = fread(buf + len, 1, cap - len - 1, f);
        len += n;
        if (n == 0)
            break;
    }
    int bad = ferror(f);
    fclose(f);
    if (bad || len == 0 || !strstr(buf, "-----BEGIN")) {
        gw_errf(err, errlen, "%s '%s': %s", flag, path, bad ? strerror(errno) : "not a PEM file");
        free(buf);
        return NULL;
    }
    buf[len] = '\0';
    return buf;
}

/* Server credentials: TLS from --tls-cert/--tls-key (with --tls-client-ca,
 * a verified client certificate is required), else plaintext. NULL with a
 * message in <err> when a file cannot be read. */
static grpc_server_credentials *server_credentials(const struct rp_config *cfg, char *err,
                                                   size_t errlen)
{
    if (!cfg->tls_cert)
        return grpc_insecure_server_credentials_create();
    grpc_ssl_pem_key_cert_pair pair;
    char *cert = read_pem("--tls-cert", cfg->tls_cert, err, errlen);
    char *key = cert ? read_pem("--tls-key", cfg->tls_key, err, errlen) : NULL;
    char *ca = key && cfg->tls_client_ca
                   ? read_pem("--tls-client-ca", cfg->tls_client_ca, err, errlen)
                   : NULL;
    grpc_server_credentials *creds = NULL;
    if (cert && key && (ca || !cfg->tls_client_ca)) {
        pair.cert_chain = cert;
        pair.private_key = key;
        creds = grpc_ssl_server_credentials_create_ex(
            ca, &pair, 1,
            ca ? GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY
               : GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE,
            NULL);
        if (!creds)
            gw_errf(err, errlen, "--tls-cert/--tls-key: grpc refused the certificate or key");
    }
    if (key) {
        memset(key, 0, strlen(key)); /* no copy of the key left behind */
        free(key);
    }
    free(cert);
    free(ca);
    return creds;
}

static grpc_completion_queue *non_listening_cq(void)
{
    grpc_completion_queue_attributes attr;
    memset(&attr, 0, sizeof(attr));
    attr.version = GRPC_CQ_CURRENT_VERSION;
    attr.cq_completion_type = GRPC_CQ_NEXT;
    attr.cq_polling_type = GRPC_CQ_NON_LISTENING;
    return grpc_completion_queue_create(grpc_completion_queue_factory_lookup(&attr), &attr, NULL);
}

struct rp_server *rp_server_start(const struct rp_config *cfg, char *err, size_t errlen)
{
    grpc_arg args[3];
    grpc_channel_args chargs = {3, args};
    grpc_server_credentials *creds;
    struct rp_server *s;
    int port;

    s = calloc(1, sizeof(*s));
    if (!s)
        goto fail_oom;
    s->cfg = cfg;
    s->nworkers = cfg->threads;
    s->workers = calloc((size_t)s->nworkers, sizeof(*s->workers));
    if (!s->workers)
        goto fail_workers;
    atomic_init(&s->serving, 1);
    s->svc.models.names = cfg->models;
    s->svc.models.n = cfg->nmodels;
    s->svc.models.replica_id = cfg->id;
    s->svc.server_version = RP_VERSION;
    s->svc.serving = &s->serving;
    s->svc.models.tokens = cfg->token_models;
    s->svc.models.ntokens = cfg->ntoken_models;
    s->svc.max_tokens = cfg->max_tokens;
    s->svc.salt = cfg->nondeterministic ? random_salt() : 0;

    memset(args, 0, sizeof(args));
    args[0].type = GRPC_ARG_INTEGER;
    args[0].key = GRPC_ARG_MAX_RECEIVE_MESSAGE_LENGTH;
    args[0].value.integer = MAX_MESSAGE;
    args[1].type = GRPC_ARG_INTEGER;
    args[1].key = GRPC_ARG_MAX_SEND_MESSAGE_LENGTH;
    args[1].value.integer = MAX_MESSAGE;
    /* Without SO_REUSEPORT a port that is in use fails to bind instead of
     * being shared silently with a leftover process. */
    args[2].type = GRPC_ARG_INTEGER;
    args[2].key = GRPC_ARG_ALLOW_REUSEPORT;
    args[2].value.integer = 0;
    s->server = grpc_server_create(&chargs, NULL);

    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        w->s = s;
        w->index = i;
        w->rng = splitmix64(cfg->seed + (uint64_t)i) | 1;
        gw_timer_heap_init(&w->timers);
        w->cq = grpc_completion_queue_create_for_next(NULL);
        grpc_server_register_completion_queue(s->server, w->cq, NULL);
    }
    /* Only the main thread waits on this one, and only for the shutdown tag,
     * so it must not be handed listening sockets to poll. */
    s->shutdown_cq = non_listening_cq();
    grpc_server_register_completion_queue(s->server, s->shutdown_cq, NULL);

    creds = server_credentials(cfg, err, errlen);
    if (!creds)
        goto fail_server;
    port = grpc_server_add_http2_port(s->server, cfg->listen, creds);
    grpc_server_credentials_release(creds);
    if (port == 0) {
        gw_errf(err, errlen, "cannot listen on %s: the address is in use or not available%s",
                cfg->listen, cfg->tls_cert ? ", or the TLS certificate and key do not load" : "");
        goto fail_server;
    }
    format_addr(s->addr, sizeof(s->addr), cfg->listen, port);
    grpc_server_start(s->server);

    for (int i = 0; i < s->nworkers; i++) {
        struct worker *w = &s->workers[i];
        if (pthread_create(&w->thread, NULL, worker_main, w) != 0) {
            struct rp_stats ignored;
            gw_errf(err, errlen, "cannot start worker thread %d", i);
            rp_server_stop(s, 0, &ignored);
            return NULL;
        }
        w->thread_started = 1;
    }
    return s;

fail_server:
    /* An unstarted server still needs its shutdown before it is destroyed. */
    grpc_server_shutdown_and_notify(s->server, s->shutdown_cq, s);
    wait_shutdown_tag(s, gpr_inf_future(GPR_CLOCK_MONOTONIC));
    grpc_server_destroy(s->server);
    for (int i = 0; i < s->nworkers; i++)
        drain_and_destroy(s->workers[i].cq);
    drain_and_destroy(s->shutdown_cq);
    free(s->workers);
    free(s);
    return NULL;
fail_workers:
    free(s);
fail_oom:
    gw_errf(err, errlen, "out of memory");
    return NULL;
}
