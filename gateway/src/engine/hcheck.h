/* SPDX-License-Identifier: Apache-2.0 */
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
 * HealthCheckRequest; the answer is read from DATA and trailers. The check's
 * stream is a gw_up_stream with the checker's ops (upstream.h), so upstream.c
 * dispatches its events like any other stream's. The checker's state of a
 * replica lives in up->check (made at its first check, freed with the
 * upstream). At most one check per replica is in flight, holding a
 * reference on the upstream; one without an answer after
 * --health-timeout-ms is reset and counts as a timeout.
 *
 * Results go into the replica's shared health record (health.h,
 * gw_health_apply_check), which every worker reads. The same tick ends
 * ejections that ran out (log replica_returned) and sweeps the upstream and
 * health records of replicas that left (gw_upstream_sweep,
 * gw_health_sweep). Loop thread of its worker only.
 */
#ifndef INFERGW_HCHECK_H
#define INFERGW_HCHECK_H

struct gw_worker;

/* Starts the checker on worker <w> (its loop thread, before it runs): a
 * tick every --health-interval-ms (or every second, for ejection returns,
 * when checks are off). Returns 0 or -ENOMEM. */
int gw_hcheck_start(struct gw_worker *w);
/* Cancels the tick and every check in flight (worker exit). Safe on a
 * worker whose checker never started. */
void gw_hcheck_stop(struct gw_worker *w);

#endif
