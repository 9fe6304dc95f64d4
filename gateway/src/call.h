/* call — the call engine: one client stream relayed to one replica stream.
 *
 * A call is created when a client opens a stream. It collects the request
 * headers, decides the pool (x-model, else the KServe model_name scanned
 * from the first message, else "default") and the routing key, then starts
 * an attempt on an upstream connection. Bytes flow through two bounded
 * queues: request DATA from the client waits in reqbuf until the upstream
 * data provider takes it, and only then is it consumed on the client session
 * (WINDOW_UPDATE), so HTTP/2 flow control holds end to end; responses
 * likewise through respbuf. Response headers are held until the first
 * response DATA or the final status (the commit point), so a later version
 * can still retry a status that arrives in trailers.
 *
 * Every ending has a defined answer: the gateway's own errors are gRPC
 * statuses (trailers-only, or trailers after relayed data), the deadline
 * (grpc-timeout) ends the call with DEADLINE_EXCEEDED and resets the upstream
 * stream, a client reset cancels the upstream stream at once. A call is freed
 * when both its client stream and its upstream stream are closed. Loop
 * thread only.
 */
#ifndef INFERGW_CALL_H
#define INFERGW_CALL_H

#include <nghttp2/nghttp2.h>
#include <stdint.h>

#include "authdb.h"
#include "buf.h"
#include "grpcwire.h"
#include "hdrlist.h"
#include "timer.h"

struct gw_worker;
struct gw_srv_conn;
struct gw_up_conn;
struct gw_pool;
struct gw_upstream;

enum gw_local_method {
    GW_LOCAL_NONE = 0,
    GW_LOCAL_SERVER_LIVE,
    GW_LOCAL_SERVER_READY,
    GW_LOCAL_SERVER_METADATA,
    GW_LOCAL_HEALTH_CHECK,
};

struct gw_attempt {
    struct gw_up_conn *uc;          /* NULL once its connection is gone */
    int32_t sid;                    /* upstream stream id, -1 before submit */
    struct gw_upstream *up;         /* the replica (lives as long as the worker) */
    struct gw_attempt *prev, *next; /* in uc's list */
    unsigned open : 1;              /* upstream stream exists and is not closed */
    unsigned sent : 1;              /* some of the request may have reached the replica */
};

struct gw_call {
    struct gw_worker *w;
    struct gw_srv_conn *sc;
    int32_t sid;                 /* client stream id */
    struct gw_call *prev, *next; /* in sc's list */
    uint64_t id;

    /* request */
    struct gw_hdrlist req_hdrs; /* :path, :authority, then metadata to forward */
    const char *path;           /* in req_hdrs once the request headers are complete */
    char pool_name[GW_MODEL_NAME_MAX + 1];
    size_t pool_len;
    uint64_t deadline_ns;  /* 0 = none */
    uint64_t att_start_ns; /* when the call began */
    struct gw_timer deadline_timer;
    struct gw_bufq reqbuf;
    struct gw_framer req_framer;
    struct gw_model_scan scan; /* while .scanning: the pool is not known yet */
    enum gw_local_method local;
    const char *bad_request; /* set while reading headers: answer this, route nothing */
    int bad_request_code;
    unsigned has_te : 1;
    unsigned has_authority : 1;
    unsigned scanning : 1;
    unsigned pool_known : 1;
    unsigned routed : 1;
    unsigned req_eos : 1;
    unsigned client_closed : 1;
    char tenant[GW_TENANT_NAME_MAX + 1]; /* set by authentication, "" = none */

    /* attempt (one per call in this version) */
    struct gw_attempt att;
    struct gw_upstream *tried[8]; /* replicas this call went to, not to pick again */
    size_t ntried;

    /* response */
    struct gw_hdrlist resp_hdrs;
    struct gw_hdrlist resp_trailers;
    struct gw_bufq respbuf;
    struct gw_framer resp_framer;
    unsigned resp_in_trailers : 1; /* the upstream header block being read is trailers */
    unsigned resp_submitted : 1;   /* response HEADERS submitted to the client */
    unsigned trailers_ready : 1;   /* resp_trailers complete: send after respbuf drains */
    unsigned resp_done : 1;        /* final status decided */
    int http_status;
    int status; /* the status gw_call_fail() answered with, -1 = none (metrics) */
};

/* Creates the call for client stream <sid> of <sc>. Returns NULL on
 * allocation failure (the caller resets the stream). */
struct gw_call *gw_call_new(struct gw_srv_conn *sc, int32_t sid);

/* Client side events (from h2srv's nghttp2 callbacks). */
int gw_call_on_req_header(struct gw_call *c, const uint8_t *name, size_t namelen,
                          const uint8_t *value, size_t valuelen);
void gw_call_on_req_headers_done(struct gw_call *c);
void gw_call_on_req_data(struct gw_call *c, const uint8_t *data, size_t len);
void gw_call_on_req_end(struct gw_call *c);
/* The client stream closed (normally, by reset, or with its connection). */
void gw_call_on_client_close(struct gw_call *c, uint32_t error_code);

/* Upstream side events (from upstream's nghttp2 callbacks). */
int gw_call_on_resp_header(struct gw_call *c, const uint8_t *name, size_t namelen,
                           const uint8_t *value, size_t valuelen);
void gw_call_on_resp_headers_done(struct gw_call *c, int end_stream);
void gw_call_on_resp_data(struct gw_call *c, const uint8_t *data, size_t len);
/* The upstream stream closed with <error_code> (NGHTTP2_* codes). */
void gw_call_on_upstream_close(struct gw_call *c, uint32_t error_code);
/* The attempt's connection failed; <connected> says whether it ever came up. */
void gw_call_on_upstream_lost(struct gw_call *c, int connected, const char *reason);

/* Ends the call with a gateway-made status (no-op once the status is decided). */
void gw_call_fail(struct gw_call *c, int code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

#endif
