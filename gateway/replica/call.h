/* SPDX-License-Identifier: Apache-2.0 */
/* call — one gRPC call of the replica server, as a state machine, and the
 * server state it shares with server.c. Internal to infergw-replica.
 *
 * The structs below are shared by server.c (which owns the grpc server, the
 * worker threads, their completion queues and their request slots) and
 * call.c (which drives one call from its start to its free). A call is
 * touched only by the worker thread that owns it; the counters in struct
 * rp_server are atomics read by the main thread.
 *
 * server.c hands call.c a new call with rp_call_start(), every completion
 * of one of its batches with rp_call_complete(), and runs rp_call_on_timer()
 * when the call's timer expires. Either function may free the call.
 */
#ifndef INFERGW_REPLICA_CALL_H
#define INFERGW_REPLICA_CALL_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#include <grpc/grpc.h>

#include "base/timer.h"
#include "llmsim.h"
#include "options.h"
#include "service.h"

#define SLOTS_PER_WORKER 32 /* grpc_server_request_call kept outstanding */
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
 * x-resume-from). <delay_ns> comes before the first message, <gap_ns>
 * before each one but the first. <llm>: an LLM simulation request
 * (llmsim.h), whose <delay_ns> is the queue, the prefill and the first
 * token, and whose blocks enter the cache once it is over. */
struct job {
    struct job *next;
    grpc_slice msg;
    int has_msg;
    long count, sent;
    struct rp_tokens *tok;
    uint64_t delay_ns, gap_ns;
    struct rp_llm_call *llm;
    grpc_status_code code;
    char *detail; /* NULL for OK */
    unsigned started : 1, final : 1, injected : 1, gap_over : 1, prefilled : 1;
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
    /* An LLM simulation call: the cache figures of its last request, and
     * its trailers (llmsim.h), sent with its status. */
    struct rp_llm_kv kv;
    int has_kv;
    struct rp_llm_trailers *trailers;
    grpc_metadata md_trail[6];
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
    struct rp_llm *llm; /* --llm-model, or NULL */
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

/* Starts new call <c> (already linked into its worker's live calls, with
 * c->w, c->call, c->details, c->md and c->timer set, c->timer running
 * rp_call_on_timer): asks for the close notification and the first
 * message, or queues the refusal; frees <c> if it is already over. */
void rp_call_start(struct call *c);

/* A batch of t->c completed (<ok> as grpc core reported it): moves the call
 * forward and frees it once it is closed and no batch is outstanding.
 * <t> is never a TAG_NEW tag. */
void rp_call_complete(struct tag *t, int ok);

/* The timer callback of c->timer (<arg> is the call): the delay of the job
 * at the head is over, its sends can start. */
void rp_call_on_timer(struct gw_timer *t, void *arg);

#endif
