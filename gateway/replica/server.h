/* SPDX-License-Identifier: Apache-2.0 */
/* server — the replica's gRPC server on the grpc core C API.
 *
 * One completion queue per worker thread; each worker keeps several
 * grpc_server_request_call() outstanding on its own queue, so a call lives
 * on one thread from start to end and nothing on the call path takes a lock.
 * A call is a small state machine driven by completion tags (receive, send,
 * close) and by the worker's timer heap (--latency-ms, --slow-ms). Counters
 * shared with the main thread are atomics.
 */
#ifndef INFERGW_REPLICA_SERVER_H
#define INFERGW_REPLICA_SERVER_H

#include <stddef.h>
#include <stdint.h>

#include "options.h"

struct rp_server;

struct rp_stats {
    uint64_t calls;           /* calls completed */
    uint64_t ok;              /* ... with status OK */
    uint64_t errors;          /* ... with another status (injected ones included) */
    uint64_t injected_errors; /* ... with an --error-fraction status */
    uint64_t cancelled;       /* ... cancelled by the client or by their deadline */
};

/* Binds <cfg->listen>, starts the worker threads and serves. <cfg> is
 * borrowed and must outlive the server. Returns the server (stop it with
 * rp_server_stop()), or NULL with a message in <err> when the address
 * cannot be bound or a resource is missing. Call after grpc_init(). */
struct rp_server *rp_server_start(const struct rp_config *cfg, char *err, size_t errlen);

/* The address actually bound (the port filled in when --listen asked for
 * port 0). Borrowed, valid until rp_server_stop(). */
const char *rp_server_addr(const struct rp_server *s);

/* Sets the grpc.health.v1 status: 1 SERVING, 0 NOT_SERVING. Any thread. */
void rp_server_set_serving(struct rp_server *s, int serving);

/* Shuts down: refuses new calls, lets running calls finish for up to
 * <grace_ms>, cancels the rest, joins the workers and frees everything.
 * Fills <stats> with the final counts. Main thread only. */
void rp_server_stop(struct rp_server *s, long grace_ms, struct rp_stats *stats);

#endif
