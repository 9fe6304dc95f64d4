/* SPDX-License-Identifier: Apache-2.0 */
/* call — one call of the replica's gRPC server (see call.h).
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
#include "call.h"

#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/slice.h>
#include <grpc/support/time.h>

#include "base/grpcwire.h"
#include "jlog.h"

#define STREAM_BACKLOG 8 /* stream requests decoded ahead of the one answered */

/* --- randomness -------------------------------------------------------------- */

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

/* --- jobs ------------------------------------------------------------------- */

static void job_free(struct job *j)
{
    if (j->has_msg)
        grpc_slice_unref(j->msg);
    if (j->tok) {
        rp_tokens_free(j->tok);
        free(j->tok);
    }
    rp_llm_call_free(j->llm);
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
 * reply, ends the call. Returns the job of an OK reply, else NULL. */
static struct job *push_reply(struct call *c, struct rp_reply *r, uint64_t delay_ns, int unary)
{
    struct job *j;

    if (r->code != GRPC_STATUS_OK) {
        push_status(c, r->code, r->detail, delay_ns, 0);
        return NULL;
    }
    j = calloc(1, sizeof(*j));
    if (!j) {
        free(r->msg);
        if (r->tokens) {
            rp_tokens_free(r->tokens);
            free(r->tokens);
        }
        call_fail(c, "out of memory");
        return NULL;
    }
    if (r->tokens) {
        j->tok = r->tokens;
        j->gap_ns = (uint64_t)c->w->s->cfg->token_ms * NS_PER_MS; /* --token-ms */
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
    return j;
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

/* Fills c->md_trail with the LLM simulation's trailers of <c> and returns
 * their count; 0 for other calls (or when out of memory). */
static size_t llm_trailers(struct call *c)
{
    struct rp_llm_trailers *t;

    if (!c->has_kv)
        return 0;
    if (!c->trailers && !(c->trailers = malloc(sizeof(*c->trailers))))
        return 0;
    t = c->trailers;
    rp_llm_trailers(c->w->s->llm, &c->kv, t);
    set_md(&c->md_trail[0], "x-kv-prompt-blocks", t->prompt_blocks);
    set_md(&c->md_trail[1], "x-kv-hit-blocks", t->hit_blocks);
    set_md(&c->md_trail[2], "x-kv-prompt-units", t->prompt_units);
    set_md(&c->md_trail[3], "x-kv-hit-units", t->hit_units);
    set_md(&c->md_trail[4], "endpoint-load-metrics", t->text);
    set_md(&c->md_trail[5], "endpoint-load-metrics-bin", "");
    c->md_trail[5].value = grpc_slice_from_static_buffer(t->bin, t->bin_len);
    return 6;
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
        ops[n].data.send_status_from_server.status = j->code;
        ops[n].data.send_status_from_server.trailing_metadata_count = llm_trailers(c);
        ops[n++].data.send_status_from_server.trailing_metadata = c->md_trail;
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
    } else {
        ops[n].data.send_status_from_server.trailing_metadata_count = llm_trailers(c);
        ops[n].data.send_status_from_server.trailing_metadata = c->md_trail;
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
    struct job *j;

    while (!c->closed && !c->failed && !c->send_busy && !gw_timer_armed(&c->timer) &&
           (j = c->head)) {
        if (!j->started) {
            j->started = 1;
            if (j->delay_ns &&
                gw_timer_heap_add(&w->timers, &c->timer, gw_now_ns() + j->delay_ns) == 0)
                break;
        }
        if (j->llm && !j->prefilled) {
            rp_llm_prefilled(w->s->llm, j->llm);
            j->prefilled = 1;
        }
        if (!c->status_sent && job_has_message(j)) {
            if (c->skip > 0) {
                job_skip(c, j);
                continue;
            }
            /* --token-ms or the decode time: a pause before each message
             * but the first sent. */
            if (j->gap_ns && j->sent > 0 && !j->gap_over &&
                gw_timer_heap_add(&w->timers, &c->timer, gw_now_ns() + j->gap_ns) == 0) {
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
    struct rp_llm_call *lc = NULL;
    uint64_t delay = delay_for(c);
    int unary = c->method == RP_M_MODEL_INFER;

    c->requests++;
    if (inject_error(c)) {
        push_status(c, s->cfg->error_code, "injected error", delay, 1);
    } else if (s->llm && rp_service_is_inference(c->method) &&
               rp_llm_request(s->llm, p, len, unary, &r, &lc)) {
        struct job *j = push_reply(c, &r, delay, unary);
        if (lc && !j) {
            rp_llm_call_free(lc);
        } else if (lc) {
            j->llm = lc;
            /* One wait for the queue, the prefill and the first token
             * (two timers in a row would add the loop's wake-up lag twice
             * to every time to first token). */
            j->delay_ns += lc->delay_ns + lc->gap_ns;
            j->gap_ns = lc->gap_ns;
            c->kv = lc->kv;
            c->has_kv = 1;
        }
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
    free(c->trailers);
    free(c);
    w->live_calls--;
    atomic_fetch_sub(&w->s->live_calls, 1);
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

void rp_call_start(struct call *c)
{
    call_start(c);
    maybe_finish(c);
}

void rp_call_on_timer(struct gw_timer *t, void *arg)
{
    struct call *c = arg;

    pump(c);
    maybe_finish(c);
}

void rp_call_complete(struct tag *t, int ok)
{
    struct call *c = t->c;

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
