/* SPDX-License-Identifier: Apache-2.0 */
/* gen — the engine of infergw-bench (loadgen.c): its options, the HTTP/2
 * client connections, the calls on them and the schedule that issues them.
 *
 * loadgen.c parses the options into struct lg_opts, builds the request
 * (lg_build_request, lg_build_headers), opens the connections
 * (lg_conn_open) with the nghttp2 callbacks below, starts the schedule
 * (lg_arm_tick for open loop, lg_on_closed_loop_start for closed loop;
 * lg_on_tick serves the tick timerfd, lg_on_stop the stop timer), runs the
 * loop and reports from struct lg_gen. Everything runs on the loop's one
 * thread. A call is timed from its scheduled start (sched_ns) to its stream
 * close and counted by grpc-status into g->by_status/hist.
 *
 * Streaming (--stream-tokens M): each call is one ModelStreamInfer request
 * for M token messages (the replica's --token-model, docs/stream-resume.md);
 * lg_on_data cuts the response DATA into gRPC messages, counts them into
 * g->msgs and times each: the first from the call's start (first_hist), each
 * later one from the message before it (gap_hist). A call that ends OK with
 * another count than M is counted in g->short_calls.
 */
#ifndef INFERGW_BENCH_GEN_H
#define INFERGW_BENCH_GEN_H

#include <netdb.h>
#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

#include "base/grpcwire.h"
#include "h2/conn.h"
#include "h2/loop.h"
#include "hist.h"

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
    long stream_tokens; /* messages asked of each ModelStreamInfer call; 0 = unary */
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
    /* streaming: the gRPC message being read off the response DATA */
    uint8_t prefix[5];    /* its 5-byte prefix (compressed flag, length) */
    unsigned prefix_have; /* bytes of it seen */
    uint32_t body_left;   /* bytes of its body still to come */
    uint64_t last_msg_ns; /* when the message before ended (0: none yet) */
    long msgs;            /* messages completed */
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
    /* streaming (--stream-tokens) */
    struct bench_hist first_hist; /* call start to its first message */
    struct bench_hist gap_hist;   /* one message to the next within a call */
    uint64_t msgs;                /* response messages received */
    uint64_t short_calls;         /* ended OK with another count than stream_tokens */
};

/* Zipf over ranks 1..n with exponent s: the cumulative table (gw_free it),
 * or NULL when out of memory. */
double *lg_zipf_table(long n, double s);

/* nghttp2 session callbacks of every connection (user data: struct lg_conn). */
int lg_on_header(nghttp2_session *s, const nghttp2_frame *f, const uint8_t *name, size_t namelen,
                 const uint8_t *value, size_t valuelen, uint8_t flags, void *ud);
int lg_on_stream_close(nghttp2_session *s, int32_t sid, uint32_t err, void *ud);
int lg_on_frame_not_send(nghttp2_session *s, const nghttp2_frame *f, int lib_err, void *ud);
/* Response DATA of a call: counts and times its gRPC messages (streaming). */
int lg_on_data(nghttp2_session *s, uint8_t flags, int32_t sid, const uint8_t *data, size_t len,
               void *ud);

/* Opens (or reopens) connection slot <lc> to g->addr: a non-blocking
 * connect with the client session created and its SETTINGS queued. Returns
 * 0, or a negative errno. */
int lg_conn_open(struct lg_gen *g, struct lg_conn *lc);

/* Arms the open-loop tick at monotonic <when_ns>, or disarms it for 0. */
void lg_arm_tick(struct lg_gen *g, uint64_t when_ns);

/* The open-loop tick (g->tick_io, a timerfd): issues the calls now due. */
void lg_on_tick(struct gw_io *io, uint32_t events);

/* g->stop_timer (arg: the lg_gen): the end of --duration, then of the drain. */
void lg_on_stop(struct gw_timer *t, void *arg);

/* Closed loop (arg: the lg_gen): issues the first --concurrency calls. */
void lg_on_closed_loop_start(struct gw_timer *t, void *arg);

/* Builds the framed request message into g->req (with --stream-tokens M, a
 * token-model request: PROMPT "bench prompt", parameters seed 42 and
 * max_tokens M). Returns 0, or -1 with a message in <err> (empty when out of
 * memory). */
int lg_build_request(struct lg_gen *g, char *err, size_t errlen);

/* Builds the request headers into g->nv. Returns 0, or -1 out of memory. */
int lg_build_headers(struct lg_gen *g);

#endif
