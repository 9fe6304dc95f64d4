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
 * the gateway retries on the other replica. The client either writes raw bytes and half-closes
 * (fuzzing), or makes one gRPC call through an nghttp2 client session and records the answer.
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

struct rig_rconn;

struct rig_replica {
    int lfd;
    struct gw_io lio;
    uint16_t port;
    struct rig_rconn *conns;
    unsigned streams;  /* request streams seen */
    unsigned answered; /* answered OK */
    unsigned open;     /* streams open now */
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
 * not called) of <path> with one request message of <len> bytes (framed by the rig); <grpc_timeout>
 * may be NULL. Returns 0 or -1. */
int rig_client_call(struct rig *r, const char *path, const uint8_t *msg, size_t len,
                    const char *grpc_timeout);
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
