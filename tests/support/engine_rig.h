/* SPDX-License-Identifier: Apache-2.0 */
/* engine_rig — the gateway's real call engine in one process, one thread:
 * a worker (gw_worker_init with a config parsed by config.c, pool "demo"
 * of two replicas), two in-process replicas (nghttp2 server sessions on
 * loopback listeners, served from the worker's own loop), and one client
 * connection to the worker's listener, all driven by stepping the worker's
 * loop. Used by the whole-session fuzzer (tests/fuzz/fuzz_session.c) and
 * the allocation-failure test (tests/unit/test_failmalloc.c).
 *
 * A replica answers every request stream once its request has ended:
 * response HEADERS, one small gRPC message, trailers with grpc-status 0 —
 * except while the rig's <fail_first> count is above zero: the next stream
 * (of either replica) is then answered UNAVAILABLE (trailers-only), a status
 * the gateway retries on the other replica. Each replica can also be
 * scripted (set after rig_open, which zeroes it): its own answer message,
 * a delay before answering, a wait between the message and the trailers,
 * or another answer (UNAVAILABLE trailers-only or in trailers, none, or
 * closing its connection after the response headers or after the first
 * message); it counts the streams, answers and RST_STREAM frames it sees
 * and keeps the request bytes and some headers of its latest stream. The
 * client either writes raw bytes and half-closes (fuzzing), or makes one
 * gRPC call through an nghttp2 client session, records the answer (status,
 * message, the first RIG_CAPTURE bytes) and may reset its stream.
 * Replica timers (delays, closes) run on the worker's loop, so time moves
 * only as the loop is stepped (rig_run_for, rig_run_until, rig_wait_client).
 *
 * Lifetimes: rig_global_init once per process (listeners, config, auth);
 * rig_open/rig_close around each run (worker, health records, connections).
 * rig_settle steps the loop until the client is gone and the worker holds
 * no client connection and no upstream stream, which is when every call
 * must have been freed. Not thread-safe; tests only.
 */
#ifndef INFERGW_ENGINE_RIG_H
#define INFERGW_ENGINE_RIG_H

#include <nghttp2/nghttp2.h>
#include <stddef.h>
#include <stdint.h>

#include "health/health.h"
#include "h2/loop.h"
#include "engine/worker.h"

#define RIG_REPLICAS 2
#define RIG_CAPTURE  65536 /* bytes of a request or an answer kept for comparison */

struct rig_rconn;

/* How a replica answers a request stream (once its request has ended and
 * its delay_ms passed). */
enum rig_answer {
    RIG_ANSWER_OK = 0,               /* HEADERS, the message, trailers grpc-status 0 */
    RIG_ANSWER_UNAVAILABLE,          /* trailers-only grpc-status 14 */
    RIG_ANSWER_NONE,                 /* nothing: the stream stays open until reset */
    RIG_ANSWER_CLOSE_AFTER_HEADERS,  /* response HEADERS, then the connection is closed */
    RIG_ANSWER_CLOSE_AFTER_MESSAGE,  /* HEADERS and the message, then the connection is
                                        closed close_after_ms later */
    RIG_ANSWER_UNAVAILABLE_TRAILERS, /* HEADERS, then trailers grpc-status 14 (no message) */
};

struct rig_replica {
    int lfd;
    struct gw_io lio;
    uint16_t port;
    struct rig_rconn *conns;
    unsigned streams;  /* request streams seen */
    unsigned answered; /* answered OK */
    unsigned open;     /* streams open now */
    /* script (zeroed by rig_open) */
    int answer;                 /* enum rig_answer */
    unsigned delay_ms;          /* wait this long after the request ended before answering */
    unsigned close_after_ms;    /* RIG_ANSWER_CLOSE_AFTER_MESSAGE: the wait before closing */
    unsigned trailers_after_ms; /* RIG_ANSWER_OK: the wait between the message and trailers */
    const uint8_t *msg;         /* the answer's DATA bytes (framed); NULL = the rig's own */
    size_t msglen;
    /* what it saw */
    unsigned rsts;            /* RST_STREAM frames received */
    uint32_t rst_code;        /* the latest one's error code */
    unsigned closed_conns;    /* connections it closed by script */
    uint8_t req[RIG_CAPTURE]; /* DATA bytes of its latest request stream (the first ones) */
    size_t req_len;           /* all of them */
    char prev_attempts[16];   /* grpc-previous-rpc-attempts of that stream, "" = none */
    char grpc_timeout[32];    /* grpc-timeout of that stream, "" = none */
};

struct rig_client {
    int fd;
    struct gw_io io;
    /* raw mode */
    const uint8_t *out;
    size_t outlen, outoff;
    unsigned shut : 1;
    /* call mode */
    nghttp2_session *sess;
    int32_t sid;
    const uint8_t *msg;
    size_t msglen, msgoff;
    int http_status;
    int grpc_status; /* -1 = none seen */
    char grpc_message[512];
    size_t resp_bytes;
    uint8_t resp[RIG_CAPTURE]; /* the first response DATA bytes */
    unsigned stream_closed : 1;
    uint32_t close_error;
    unsigned done : 1; /* the socket is closed */
};

struct rig {
    struct gw_worker w;
    struct gw_health_registry *health;
    struct rig_replica rep[RIG_REPLICAS];
    struct rig_client cl;
    unsigned fail_first; /* request streams (of any replica) still to answer UNAVAILABLE */
    size_t call_pad;     /* rig_client_call adds metadata x-pad of this many bytes (<= 4096) */
    int opened;
};

/* Once per process: opens the replicas' listeners, parses the gateway's
 * flags (<extra_args>, NULL-terminated, may be NULL, are added after the
 * rig's own: --listen, --pool demo=<both replicas>, --upstream-conns 1,
 * --log-level error, and --auth=none unless <extra_args> have an --auth
 * flag), loads the authentication chain and builds the routing snapshot.
 * Returns 0 or -1. */
int rig_global_init(const char *const *extra_args);
/* Between runs (before rig_open): rebuilds the routing snapshot from the
 * flags with <kv> (NULL-terminated field, value pairs of tunables.h, e.g.
 * "hedge_delay_ms", "20"; NULL = none) set on every pool, for the next
 * rig_open. Returns 0, or -1 after printing why (an unknown field, a bad
 * value). */
int rig_set_pool_tunables(const char *const *kv);
/* Starts a worker on <r> and steps its loop until its connections to both
 * replicas are up (within 2 s). Returns 0 or -1. */
int rig_open(struct rig *r);
/* Connects the client and queues <len> raw bytes for it to write, after
 * which it half-closes. Returns 0 or -1. */
int rig_client_raw(struct rig *r, const uint8_t *data, size_t len);
/* Connects the client with an HTTP/2 session and steps the loop until the
 * gateway accepted it and SETTINGS went both ways. Returns 0 or -1. */
int rig_client_open(struct rig *r);
/* Starts one gRPC call (connecting the client first if rig_client_open was
 * not called) of <path> with one request message of <len> bytes (framed by
 * the rig); <grpc_timeout> may be NULL. The client's record of the previous
 * call's answer is cleared; one call at a time per client. Returns 0 or -1. */
int rig_client_call(struct rig *r, const char *path, const uint8_t *msg, size_t len,
                    const char *grpc_timeout);
/* Queues RST_STREAM <error_code> on the client's call stream. Returns 0 or -1. */
int rig_client_reset(struct rig *r, uint32_t error_code);
/* Steps the loop for <ms> milliseconds. */
void rig_run_for(struct rig *r, int ms);
/* Steps the loop until <done>(r, arg) is true, at most <max_ms>. Returns 0,
 * or -1 on timeout. */
int rig_run_until(struct rig *r, int (*done)(struct rig *r, void *arg), void *arg, int max_ms);
/* Steps the loop until the client's call stream closed (call mode) or the
 * gateway closed the connection (raw mode), at most <max_ms>. Returns 0, or
 * -1 on timeout. */
int rig_wait_client(struct rig *r, int max_ms);
/* Closes the client (if still open) and steps the loop until the worker
 * holds no client connection and no upstream stream and nothing is left to
 * write, at most <max_ms>. Returns 0, or -1 on timeout. */
int rig_settle(struct rig *r, int max_ms);
/* Tears the worker and the replicas' connections down. */
void rig_close(struct rig *r);

#endif
