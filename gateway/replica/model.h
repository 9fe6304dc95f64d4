/* SPDX-License-Identifier: Apache-2.0 */
/* model — the replica's models: which names it serves and what they compute.
 *
 * Every model but the token-streaming ones (--token-model, see tokens.h) is
 * the same pure function: for each FP32 input tensor <i>, in
 * order, output tensor OUTPUT<i> = 2*x + 1 elementwise, with the input's
 * shape and in the representation the input used (typed fp32_contents, or
 * little-endian float32 bytes in raw_input_contents). Inputs are validated
 * first, and every rejection says exactly what is wrong, naming the input.
 *
 * Pure logic over protobuf-c structs: no I/O, no grpc calls, no global
 * state, so any thread may call these functions at the same time.
 */
#ifndef INFERGW_REPLICA_MODEL_H
#define INFERGW_REPLICA_MODEL_H

#include <stddef.h>
#include <stdint.h>

#include <grpc/status.h>

#include "grpc_predict_v2.pb-c.h"

#define RP_MODEL_VERSION  "1"
#define RP_MODEL_PLATFORM "infergw-replica"
/* Requests larger than 64 MiB never reach the model, so no tensor can hold
 * more FP32 values than this; shapes beyond it are rejected before any
 * allocation. */
#define RP_MODEL_MAX_ELEMENTS ((size_t)16 << 20)
/* Bounds of the ModelStreamInfer "stream_responses" parameter. */
#define RP_MODEL_MAX_STREAM_RESPONSES 10000

/* The set of models one replica serves. Borrowed strings, valid for the
 * life of the process. <tokens> (a subset of <names>) are the token-streaming
 * models (tokens.h) rather than 2x+1. */
struct rp_models {
    const char *const *names;
    size_t n;
    const char *const *tokens;
    size_t ntokens;
    const char *replica_id; /* named in NOT_FOUND messages */
    /* The LLM simulation's models (--llm-model, a subset of <tokens>) and
     * the input their prompt is read from (--prefix-input), for metadata. */
    const char *const *llm;
    size_t nllm;
    const char *llm_input;
};

/* Why a request was refused: a gRPC status and a message for the caller. */
struct rp_error {
    grpc_status_code code;
    char msg[512];
};

/* Fills <err> with <code> and the formatted message; returns -1, so that a
 * refusal reads `return rp_fail(err, GRPC_STATUS_..., "...", ...);`. */
int rp_fail(struct rp_error *err, grpc_status_code code, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

/* Checks that <name> (and <version>, "" meaning any) is served.
 * Returns 0, or -1 with err->code GRPC_STATUS_NOT_FOUND. */
int rp_model_check(const struct rp_models *m, const char *name, const char *version,
                   struct rp_error *err);

/* Whether <name> is one of m->tokens. */
int rp_model_is_tokens(const struct rp_models *m, const char *name);

/* A computed response. It borrows model_name, id and the shapes from the
 * request, so the request must outlive it; free with rp_model_result_free(). */
struct rp_model_result {
    Inference__ModelInferResponse resp;
    Inference__ModelInferResponse__InferOutputTensor *tensors;
    Inference__ModelInferResponse__InferOutputTensor **tensor_ptrs;
    Inference__InferTensorContents *contents; /* typed inputs only */
    ProtobufCBinaryData *raw;                 /* raw inputs only */
    char (*names)[32];                        /* "OUTPUT<i>": room for any size_t */
    size_t n;
};

/* Runs the model named by req->model_name on <req>.
 * Returns 0 with <out> filled, or -1 with <err> set:
 * GRPC_STATUS_NOT_FOUND (model not served), GRPC_STATUS_INVALID_ARGUMENT
 * (bad input, message names the input and the problem), or
 * GRPC_STATUS_RESOURCE_EXHAUSTED (out of memory). <out> is untouched on
 * failure. */
int rp_model_infer(const struct rp_models *m, const Inference__ModelInferRequest *req,
                   struct rp_model_result *out, struct rp_error *err);
void rp_model_result_free(struct rp_model_result *r);

/* The metadata of one model, held in caller storage (no allocation). */
struct rp_model_meta {
    Inference__ModelMetadataResponse resp;
    Inference__ModelMetadataResponse__TensorMetadata in, out, out2;
    Inference__ModelMetadataResponse__TensorMetadata *in_ptr, *out_ptrs[2];
    char *versions[1];
    int64_t shape[1], one[1];
};

/* Fills <meta> for model <name> (borrowed, must outlive <meta>): versions
 * ["1"], platform "infergw-replica", one FP32 input INPUT0 and output OUTPUT0
 * of shape [-1]. The caller checks the name with rp_model_check() first. */
void rp_model_metadata(struct rp_model_meta *meta, const char *name);
/* The same for token model <name> (tokens.h): input PROMPT (BYTES, shape
 * [-1]), outputs token_id (INT64, [1]) and text (BYTES, [1]). */
void rp_model_metadata_tokens(struct rp_model_meta *meta, const char *name);

/* Reads the "stream_responses" request parameter: how many responses a
 * ModelStreamInfer request gets. Absent means 1.
 * Returns 0 with *n set, or -1 with <err> (INVALID_ARGUMENT) when the
 * parameter is not an integer or not within 1..10000. */
int rp_model_stream_responses(const Inference__ModelInferRequest *req, long *n,
                              struct rp_error *err);

/* Reads integer request parameter <key> (int64_param, or uint64_param) into
 * *v; an absent parameter leaves *v alone. Returns 0, or -1 with <err>
 * (INVALID_ARGUMENT) when it is not an integer within lo..hi. */
int rp_model_int_param(const Inference__ModelInferRequest *req, const char *key, long long lo,
                       long long hi, long long *v, struct rp_error *err);

#define RP_MODEL_MAX_PAD_BYTES (64 << 20)
/* Reads the "response_pad_bytes" request parameter of ModelInfer: the
 * response carries that many extra bytes (response parameter "pad"), so a
 * test can ask for an answer larger than a flow-control window with a small
 * request. Absent means 0.
 * Returns 0 with *n set, or -1 with <err> (INVALID_ARGUMENT) when the
 * parameter is not an integer or not within 0..64 MiB. */
int rp_model_pad_bytes(const Inference__ModelInferRequest *req, size_t *n, struct rp_error *err);

#endif
