/* hcheck — the active grpc.health.v1 checker.
 *
 * It runs on one worker (worker 0): every --health-interval-ms it sends
 * grpc.health.v1.Health/Check with service "" to every replica of that
 * worker's snapshot, over a connection per replica that carries checks only
 * (gw_upstream_conn_probe, which may connect while a replica backs off, so
 * a replica that comes back is found), never behind calls. A check is a small unary gRPC call on
 * an nghttp2 client stream of the upstream session: HEADERS (:method POST,
 * :path, content-type application/grpc, te trailers, grpc-timeout), one
 * DATA frame with the 5-byte prefix and a protobuf-c packed
 * HealthCheckRequest; the answer is read from DATA and trailers. upstream.c
 * tells a check's stream from a call's by gw_up_conn.check_sid and hands its
 * events here. At most one check per replica is in flight; one without an
 * answer after --health-timeout-ms is reset and counts as a timeout.
 *
 * Results go into the replica's shared health record (health.h,
 * gw_health_apply_check), which every worker reads. The same tick ends
 * ejections that ran out (log replica_returned) and sweeps the upstream and
 * health records of replicas that left (gw_upstream_sweep,
 * gw_health_sweep). Loop thread of its worker only.
 */
#ifndef INFERGW_HCHECK_H
#define INFERGW_HCHECK_H

#include <stddef.h>
#include <stdint.h>

#include "base/timer.h"

struct gw_upstream;
struct gw_up_conn;
struct gw_worker;

/* A check in flight on one upstream, embedded in struct gw_upstream. */
struct gw_hcheck {
    struct gw_up_conn *uc; /* connection carrying it, NULL = none in flight */
    int32_t sid;
    uint64_t started_ns;
    struct gw_timer timeout;
    int grpc_status; /* -1 until seen */
    int http_status;
    uint8_t body[64]; /* the response message (a HealthCheckResponse is tiny) */
    size_t body_len;
    int body_overflow;
    uint8_t req[16]; /* the request, framed */
    size_t req_len, req_off;
};

/* Starts the checker on worker <w> (its loop thread, before it runs): a
 * tick every --health-interval-ms (or every second, for ejection returns,
 * when checks are off). Returns 0 or -ENOMEM. */
int gw_hcheck_start(struct gw_worker *w);
/* Cancels the tick and every check in flight (worker exit). Safe on a
 * worker whose checker never started. */
void gw_hcheck_stop(struct gw_worker *w);
/* Prepares the check slot of a new upstream. */
void gw_hcheck_init(struct gw_upstream *up);

/* Upstream stream events of a check (upstream.c dispatches them). */
void gw_hcheck_on_header(struct gw_upstream *up, const uint8_t *name, size_t namelen,
                         const uint8_t *value, size_t valuelen);
void gw_hcheck_on_data(struct gw_upstream *up, const uint8_t *data, size_t len);
/* The check's stream closed (<error_code> from nghttp2) or never left
 * (<error_code> = NGHTTP2_REFUSED_STREAM), or its connection is gone. */
void gw_hcheck_on_close(struct gw_upstream *up, uint32_t error_code);

#endif
