/* SPDX-License-Identifier: Apache-2.0 */
/* service — the replica's gRPC methods, from request bytes to reply bytes.
 *
 * Maps a method path to what the replica does with it and turns one
 * serialized request message into one reply: a serialized response message
 * or a gRPC status with a message. Decoding, the model and encoding live
 * here; the grpc core call machinery lives in server.c. No I/O and no grpc
 * calls, so any worker thread may call these functions at the same time.
 */
#ifndef INFERGW_REPLICA_SERVICE_H
#define INFERGW_REPLICA_SERVICE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "model.h"
#include "tokens.h"

enum rp_method {
    RP_M_UNKNOWN = 0,
    RP_M_SERVER_LIVE,
    RP_M_SERVER_READY,
    RP_M_MODEL_READY,
    RP_M_SERVER_METADATA,
    RP_M_MODEL_METADATA,
    RP_M_MODEL_INFER,
    RP_M_MODEL_STREAM_INFER,
    RP_M_HEALTH_CHECK,
};

/* The method with this path ("/inference.GRPCInferenceService/ModelInfer"),
 * or RP_M_UNKNOWN. */
enum rp_method rp_service_method(const char *path, size_t len);
/* Whether --latency-ms/--slow-ms delay the method's answer. */
int rp_service_is_delayed(enum rp_method m);
/* Whether --error-fraction applies to the method. */
int rp_service_is_inference(enum rp_method m);

struct rp_service {
    struct rp_models models;
    const char *server_version;
    /* grpc.health.v1 status: 1 SERVING, 0 NOT_SERVING; flipped by signals. */
    atomic_int *serving;
    long max_tokens; /* token models: max_tokens when the request has none */
    uint64_t salt;   /* token models: 0, or --nondeterministic's random value */
};

/* One reply. code GRPC_STATUS_OK: either <msg> holds the serialized
 * response (malloc'd, the caller takes ownership and frees it with free())
 * and <count> says how many times to send it (ModelStreamInfer's
 * stream_responses, else 1); or, for a token model's ModelStreamInfer
 * request, <msg> is NULL and <tokens> is the stream to send (malloc'd, the
 * caller frees it with rp_tokens_free() and free()). Otherwise <msg> and
 * <tokens> are NULL and <detail> is the status message. */
struct rp_reply {
    grpc_status_code code;
    char detail[512];
    uint8_t *msg;
    size_t msg_len;
    long count;
    struct rp_tokens *tokens;
};

/* Answers a unary method <m> (not RP_M_MODEL_STREAM_INFER, not
 * RP_M_UNKNOWN) for the request bytes <req>/<len>. */
void rp_service_unary(const struct rp_service *s, enum rp_method m, const uint8_t *req, size_t len,
                      struct rp_reply *out);

/* Answers one request of a ModelStreamInfer stream: for a token model, its
 * token stream (tokens.h). Per-request problems (undecodable message, bad
 * input, unknown model, bad stream_responses, seed or max_tokens) are
 * reported as one ModelStreamInferResponse with error_message set and code
 * OK, as Triton does, so the stream goes on. Only running out of memory
 * gives a non-OK code. */
void rp_service_stream(const struct rp_service *s, const uint8_t *req, size_t len,
                       struct rp_reply *out);

#endif
