/* SPDX-License-Identifier: Apache-2.0 */
/* call — the call engine: one client stream relayed to 1..n replica
 * streams (attempts).
 *
 * A call is created when a client opens a stream. It collects the request
 * headers, authenticates them (auth.h), decides the pool (x-model, else the
 * KServe model_name scanned from the first message, else "default") and the
 * routing key, then starts its primary attempt on the ring's first eligible
 * replica. With authentication on, every model_name of every request message
 * of a KServe model method must name that same model (x-model or the first
 * message's); bytes are checked before they are forwarded, so a message that
 * names another model never reaches a replica whole: the call ends with
 * PERMISSION_DENIED (a model the tenant may not use) or INVALID_ARGUMENT,
 * and its attempts are reset.
 *
 * Request bytes are kept in a replay log (reqlog) while the call may still
 * start another attempt, up to --retry-buffer-bytes; each attempt's data
 * provider reads the log from its own offset, and bytes are consumed on the
 * client session's stream window (WINDOW_UPDATE) when the furthest attempt
 * has taken them, so HTTP/2 flow control holds end to end per stream (the
 * connection windows are given back on receipt: one stalled stream never
 * holds a connection's window). A request larger than the buffer, or one that
 * would take the worker's request logs past --replay-buffer-total, makes the
 * call single-attempt: others are cancelled, no more start, and the log drops
 * what was sent. A stream the replica refuses (REFUSED_STREAM, or never sent)
 * is routed again without counting against the replica.
 *
 * Response headers of every attempt are held until that attempt's first
 * response DATA or its final status. That is the commit point: the attempt
 * wins, every other attempt is reset (RST_STREAM CANCEL, which the replica
 * sees), and from then on the winner's bytes flow to the client through
 * respbuf. A final status in retry_on (RESOURCE_EXHAUSTED only with a valid
 * grpc-retry-pushback-ms), an HTTP error, a reset stream or a lost connection
 * before the commit point is a failed attempt: when the pool's retry budget,
 * retry_max_attempts, the request log and the caller's deadline (minus a
 * floor: the pool's observed p50) allow, the call tries the next eligible
 * replica on the ring after a full-jitter backoff (or the replica's pushback),
 * sending grpc-previous-rpc-attempts; otherwise the last failure is relayed
 * as the replica sent it, or, for transport failures, as UNAVAILABLE.
 * Hedging: after hedge_delay_ms (fixed, or auto = the pool's observed p95 of
 * time to first response) with no response yet, one hedge attempt goes to
 * the next eligible replica, within the hedge budget; the first response wins.
 * per_try_timeout_ms bounds each attempt until its commit point.
 *
 * Stream resume (pool tunable stream_resume, docs/stream-resume.md): with it
 * on, the commit point keeps the request log, and response messages reach
 * the client whole only (a message is held until its last byte came), each
 * hashed (XXH3-64). When the winner is lost after the commit point (reset,
 * connection lost, a retry_on status, HTTP error), or its replica leaves
 * (GOAWAY, drain, lease gone), a resume attempt goes to another replica
 * within the retry budget (not for a replica leaving), retry_max_attempts,
 * the deadline floor and the log: in replay mode it gets the request again
 * and its first N messages are checked against the hashes and dropped (a
 * mismatch ends the call ABORTED "resumed stream diverged at message i"); in
 * continue mode it also gets x-resume-from: N, and a FAILED_PRECONDITION
 * refusal falls back to replay. The client's stream stays open throughout;
 * response headers are never sent twice.
 *
 * Every ending has a defined answer: the gateway's own errors are gRPC
 * statuses (trailers-only, or trailers after relayed data), the deadline
 * (grpc-timeout, cut to --max-deadline-ms, which also bounds calls without
 * one) ends the call with DEADLINE_EXCEEDED and resets every attempt, a call
 * that moves no bytes either way for --stream-idle-timeout-ms ends the same
 * way, a client reset cancels every attempt at once. A request without
 * content-type application/grpc is refused with HTTP 415 (the gRPC spec's
 * answer, readable by a client that is not gRPC) carrying grpc-status
 * INVALID_ARGUMENT too, and never reaches a replica. A call is freed when
 * its client stream and all its attempts' streams are closed. Loop thread only.
 *
 * The engine's files (their shared declarations in call_int.h): call_core.c
 * (lifecycle, request log, h2srv's callbacks), call_intake.c (the request,
 * authentication, routing), call_attempt.c (attempts, retries, hedges; the
 * decisions are route/policy's), call_relay.c (commit, relay, trailers,
 * gateway statuses), call_local.c (methods the gateway answers itself),
 * call_resume.c (stream resume). Attempts' upstream streams are gw_up_streams whose ops
 * dispatch back into the engine (upstream.h).
 */
#ifndef INFERGW_CALL_H
#define INFERGW_CALL_H

#include <nghttp2/nghttp2.h>
#include <stdint.h>

#include "auth/authdb.h"
#include "base/buf.h"
#include "base/grpcwire.h"
#include "base/hdrlist.h"
#include "base/timer.h"
#include "engine/localsvc.h"
#include "h2/h2srv.h"
#include "engine/upstream.h"

struct gw_worker;
struct gw_pool;
struct gw_upstream;
struct gw_poolstate;
struct call_resume;

enum gw_attempt_kind { GW_ATTEMPT_PRIMARY, GW_ATTEMPT_RETRY, GW_ATTEMPT_HEDGE, GW_ATTEMPT_RESUME };

#define GW_CALL_MAX_ATTEMPTS 12 /* retry_max_attempts (at most 10) + a hedge + slack */
#define GW_CALL_MAX_REFUSALS 3  /* refused streams routed again per call */

struct gw_attempt {
    struct gw_call *call;
    /* its upstream stream: st.uc (NULL once its connection is gone), st.sid
     * (-1 before submit), st.open (the stream exists and is not closed) */
    struct gw_up_stream st;
    struct gw_upstream *up; /* the replica (lives as long as the worker) */
    uint64_t start_ns;
    uint64_t req_off;           /* request log offset this attempt has sent up to */
    struct gw_hdrlist hdrs;     /* response headers, held until the commit point */
    struct gw_hdrlist trailers; /* response trailers */
    struct gw_timer try_timer;  /* per_try_timeout_ms */
    uint32_t pushback_ms;
    int http_status;
    int16_t outcome;          /* how it ended (gw_metrics outcome), -1 = not yet */
    uint8_t kind;             /* enum gw_attempt_kind */
    int8_t pushback;          /* grpc-retry-pushback-ms: 0 none, 1 valid, -1 malformed/negative */
    unsigned in_trailers : 1; /* the header block being read is trailers */
    unsigned finished : 1;    /* outcome decided (failed, won, or cancelled) */
    unsigned cancelled : 1;   /* reset by the gateway: its events are ignored */
    unsigned load_seen : 1;   /* a load report of this attempt was taken (one per attempt) */
};

struct gw_call {
    struct gw_worker *w;
    struct gw_srv_conn *sc;  /* NULL once the client stream closed */
    struct gw_srv_stream ss; /* the client stream: ss.sid, in sc's list (h2srv.h) */
    uint64_t id;

    /* request */
    struct gw_hdrlist req_hdrs; /* :path, :authority, then metadata to forward */
    const char *path;           /* in req_hdrs once the request headers are complete */
    char pool_name[GW_MODEL_NAME_MAX + 1];
    size_t pool_len;
    uint64_t deadline_ns;  /* 0 = none */
    uint64_t att_start_ns; /* when the call began */
    struct gw_timer deadline_timer;
    struct gw_timer idle_timer; /* --stream-idle-timeout-ms, re-armed lazily */
    uint64_t last_io_ns;        /* request bytes in or response bytes out, latest */
    struct gw_bufq reqlog;      /* request bytes [req_base, req_total) */
    uint64_t req_base;          /* bytes dropped from the front of reqlog */
    uint64_t req_total;         /* bytes received from the client */
    uint64_t req_consumed;      /* bytes handed back to the client session */
    struct gw_framer req_framer;
    struct gw_model_scan scan;   /* while .scanning: the pool is not known yet */
    struct gw_model_check check; /* while .checking: every model_name of the request */
    enum gw_local_method local;
    const char *bad_request; /* set while reading headers: answer this, route nothing */
    int bad_request_code;
    const char *bad_request_http; /* its HTTP :status ("415"), NULL = 200 */
    unsigned has_te : 1;
    unsigned has_authority : 1;
    unsigned grpc_content_type : 1; /* content-type application/grpc[+...|;...] seen */
    unsigned deadline_capped : 1;   /* deadline_ns is --max-deadline-ms, not grpc-timeout */
    unsigned scanning : 1;
    unsigned checking : 1; /* authentication on and a KServe model method */
    unsigned pool_known : 1;
    unsigned routed : 1;
    unsigned req_eos : 1;
    unsigned client_closed : 1;
    unsigned replayable : 1; /* reqlog still holds the whole request */
    /* route_by = prefix (call_prefix.c) */
    unsigned pfx_wait : 1;               /* the primary waits for the first message to be whole */
    unsigned pfx_ready : 1;              /* the first message was looked at (hashed or not) */
    unsigned pfx_hashed : 1;             /* the worker's scratch holds its hashes, until the pick */
    unsigned pfx_has_point : 1;          /* pfx_point is the ring point of its attempts */
    uint16_t pfx_n;                      /* its block hashes */
    uint32_t pfx_point;                  /* (uint32_t)(hashes[0] >> 32) */
    char tenant[GW_TENANT_NAME_MAX + 1]; /* set by authentication, "" = none */
    char peer[64]; /* the client's address, copied when its connection goes (access log) */

    /* attempts: att[0] is the primary (embedded), the others allocated */
    struct gw_attempt first;
    struct gw_attempt *att[GW_CALL_MAX_ATTEMPTS];
    size_t natt;
    struct gw_attempt *winner;                           /* committed attempt, or NULL */
    struct gw_upstream *tried[GW_CALL_MAX_ATTEMPTS + 4]; /* replicas this call went to */
    size_t ntried;
    unsigned retries;        /* retry attempts started */
    unsigned refusals;       /* streams refused by replicas and routed again */
    size_t replay_held;      /* reqlog bytes counted in w->replay_bytes */
    struct gw_poolstate *ps; /* the pool's latency estimator and budgets (worker-owned) */
    struct gw_timer retry_timer;
    struct gw_timer hedge_timer;
    struct gw_attempt *last_failed; /* the latest failed attempt, relayed if nothing better */
    char fail_msg[160];             /* why the latest attempt failed */
    int fail_code;                  /* and the status that stands for it */
    char start_msg[128];            /* why the latest attempt could not start */
    int start_code;
    unsigned last_failed_relayable : 1; /* last_failed holds the replica's own answer */

    /* response (the winner's headers and trailers live in the winner) */
    struct gw_hdrlist resp_hdrs;     /* gateway-made responses */
    struct gw_hdrlist resp_trailers; /* gateway-made responses */
    struct gw_bufq respbuf;
    uint64_t resp_total; /* response bytes relayed from the winner */
    struct gw_framer resp_framer;
    unsigned resp_submitted : 1; /* response HEADERS submitted to the client */
    unsigned trailers_ready : 1; /* trailers complete: send after respbuf drains */
    unsigned resp_done : 1;      /* final status decided */
    int status;                  /* the status gw_call_fail() answered with, -1 = none (metrics) */

    /* stream resume (call_resume.c): set at the commit point when the pool's
     * stream_resume is on and the request is whole in the log; NULL = off */
    struct call_resume *rs;
    uint8_t resume_mode; /* the pool's stream_resume when the latest attempt started */
};

/* The call engine as h2srv's stream callbacks (registered by the worker):
 * a client stream opens a call (gw_call_new), its header fields, data, end
 * and close go to the call (call_intake.c, call_core.c). A request whose
 * header block passed --max-header-list-bytes or --max-header-count is
 * refused with RESOURCE_EXHAUSTED once the block ends; a call answered while
 * its request still comes has its stream ended after the answer. */
extern const struct gw_srv_stream_ops gw_call_srv_ops;

/* Creates the call for client stream <sid> of <sc>. Returns NULL on
 * allocation failure (the caller resets the stream). */
struct gw_call *gw_call_new(struct gw_srv_conn *sc, int32_t sid);

/* Frees the worker's prefix-routing scratch (call_prefix.c), at its end. */
void gw_call_prefix_scratch_free(struct gw_worker *w);

/* Whether the call's final status is decided: a request refused while its
 * headers were read, a gateway-made error, or the replica's status. Once
 * that status went out, the rest of the request is of no use. */
int gw_call_answered(const struct gw_call *c);

/* Ends the call with a gateway-made status (no-op once the status is decided). */
void gw_call_fail(struct gw_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
/* The same, adding grpc-retry-pushback-ms: <pushback_ms> to a trailers-only
 * answer (over-rate callers learn when to come back). */
void gw_call_fail_pushback(struct gw_call *c, int code, uint32_t pushback_ms, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

#endif
