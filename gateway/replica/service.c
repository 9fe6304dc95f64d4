/* SPDX-License-Identifier: Apache-2.0 */
/* service — the replica's gRPC methods (see service.h).
 *
 * Every reply is packed into one malloc'd buffer that the server hands to
 * grpc core as a slice without another copy; a ModelStreamInfer reply that
 * is sent N times is packed once.
 */
#include "service.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "grpc/health/v1/health.pb-c.h"

static const struct {
    const char *path;
    enum rp_method method;
} methods[] = {
    {"/inference.GRPCInferenceService/ServerLive", RP_M_SERVER_LIVE},
    {"/inference.GRPCInferenceService/ServerReady", RP_M_SERVER_READY},
    {"/inference.GRPCInferenceService/ModelReady", RP_M_MODEL_READY},
    {"/inference.GRPCInferenceService/ServerMetadata", RP_M_SERVER_METADATA},
    {"/inference.GRPCInferenceService/ModelMetadata", RP_M_MODEL_METADATA},
    {"/inference.GRPCInferenceService/ModelInfer", RP_M_MODEL_INFER},
    {"/inference.GRPCInferenceService/ModelStreamInfer", RP_M_MODEL_STREAM_INFER},
    {"/grpc.health.v1.Health/Check", RP_M_HEALTH_CHECK},
};

enum rp_method rp_service_method(const char *path, size_t len)
{
    for (size_t i = 0; i < sizeof(methods) / sizeof(methods[0]); i++) {
        if (strlen(methods[i].path) == len && memcmp(methods[i].path, path, len) == 0)
            return methods[i].method;
    }
    return RP_M_UNKNOWN;
}

int rp_service_is_delayed(enum rp_method m)
{
    return m == RP_M_MODEL_READY || m == RP_M_MODEL_METADATA || m == RP_M_MODEL_INFER ||
           m == RP_M_MODEL_STREAM_INFER;
}

int rp_service_is_inference(enum rp_method m)
{
    return m == RP_M_MODEL_INFER || m == RP_M_MODEL_STREAM_INFER;
}

static void reply_status(struct rp_reply *out, grpc_status_code code, const char *detail)
{
    out->code = code;
    snprintf(out->detail, sizeof(out->detail), "%s", detail);
}

static void reply_error(struct rp_reply *out, const struct rp_error *err)
{
    reply_status(out, err->code, err->msg);
}

/* Packs <msg> into out->msg; code OK, or RESOURCE_EXHAUSTED on ENOMEM. */
static void reply_pack(struct rp_reply *out, const ProtobufCMessage *msg, long count)
{
    size_t len = protobuf_c_message_get_packed_size(msg);
    /* One spare byte: malloc(0) may return NULL, and NULL means ENOMEM. */
    uint8_t *buf = malloc(len + 1);
    if (!buf) {
        reply_status(out, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
        return;
    }
    protobuf_c_message_pack(msg, buf);
    out->code = GRPC_STATUS_OK;
    out->msg = buf;
    out->msg_len = len;
    out->count = count;
}

static void bad_message(struct rp_reply *out, const char *type)
{
    char detail[128];
    snprintf(detail, sizeof(detail), "request is not a valid %s message", type);
    reply_status(out, GRPC_STATUS_INVALID_ARGUMENT, detail);
}

static void do_health(const struct rp_service *s, const uint8_t *req, size_t len,
                      struct rp_reply *out)
{
    Grpc__Health__V1__HealthCheckRequest *r;
    Grpc__Health__V1__HealthCheckResponse resp = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;

    r = grpc__health__v1__health_check_request__unpack(NULL, len, req);
    if (!r) {
        bad_message(out, "grpc.health.v1.HealthCheckRequest");
        return;
    }
    if (r->service[0] && strcmp(r->service, "inference.GRPCInferenceService") != 0) {
        char detail[300];
        snprintf(detail, sizeof(detail), "unknown service '%.200s'", r->service);
        reply_status(out, GRPC_STATUS_NOT_FOUND, detail);
    } else {
        resp.status = atomic_load(s->serving)
                          ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING
                          : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING;
        reply_pack(out, &resp.base, 1);
    }
    grpc__health__v1__health_check_request__free_unpacked(r, NULL);
}

static void do_model_ready(const struct rp_service *s, const uint8_t *req, size_t len,
                           struct rp_reply *out)
{
    Inference__ModelReadyRequest *r = inference__model_ready_request__unpack(NULL, len, req);
    Inference__ModelReadyResponse resp = INFERENCE__MODEL_READY_RESPONSE__INIT;
    struct rp_error err;

    if (!r) {
        bad_message(out, "inference.ModelReadyRequest");
        return;
    }
    if (rp_model_check(&s->models, r->name, r->version, &err) < 0) {
        reply_error(out, &err);
    } else {
        resp.ready = 1;
        reply_pack(out, &resp.base, 1);
    }
    inference__model_ready_request__free_unpacked(r, NULL);
}

static void do_model_metadata(const struct rp_service *s, const uint8_t *req, size_t len,
                              struct rp_reply *out)
{
    Inference__ModelMetadataRequest *r = inference__model_metadata_request__unpack(NULL, len, req);
    struct rp_model_meta meta;
    struct rp_error err;

    if (!r) {
        bad_message(out, "inference.ModelMetadataRequest");
        return;
    }
    if (rp_model_check(&s->models, r->name, r->version, &err) < 0) {
        reply_error(out, &err);
    } else {
        if (rp_model_is_tokens(&s->models, r->name))
            rp_model_metadata_tokens(&meta, r->name);
        else
            rp_model_metadata(&meta, r->name);
        for (size_t i = 0; i < s->models.nllm; i++) {
            if (strcmp(s->models.llm[i], r->name) == 0)
                meta.in.name = (char *)s->models.llm_input; /* --prefix-input */
        }
        reply_pack(out, &meta.resp.base, 1);
    }
    inference__model_metadata_request__free_unpacked(r, NULL);
}

static void do_model_infer(const struct rp_service *s, const uint8_t *req, size_t len,
                           struct rp_reply *out)
{
    Inference__ModelInferRequest *r = inference__model_infer_request__unpack(NULL, len, req);
    struct rp_model_result res;
    struct rp_error err;

    if (!r) {
        bad_message(out, "inference.ModelInferRequest");
        return;
    }
    size_t pad = 0;
    if (rp_model_is_tokens(&s->models, r->model_name)) {
        snprintf(err.msg, sizeof(err.msg),
                 "model '%.200s' streams tokens: call ModelStreamInfer, not ModelInfer",
                 r->model_name);
        err.code = GRPC_STATUS_INVALID_ARGUMENT;
        reply_error(out, &err);
    } else if (rp_model_pad_bytes(r, &pad, &err) < 0 ||
               rp_model_infer(&s->models, r, &res, &err) < 0) {
        reply_error(out, &err);
    } else {
        /* response_pad_bytes: a "pad" string parameter of that many bytes. */
        Inference__InferParameter pv = INFERENCE__INFER_PARAMETER__INIT;
        Inference__ModelInferResponse__ParametersEntry pe =
            INFERENCE__MODEL_INFER_RESPONSE__PARAMETERS_ENTRY__INIT;
        Inference__ModelInferResponse__ParametersEntry *pp = &pe;
        char *padding = pad ? malloc(pad + 1) : NULL;
        if (padding) {
            memset(padding, 'p', pad);
            padding[pad] = '\0';
            pv.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
            pv.string_param = padding;
            pe.key = "pad";
            pe.value = &pv;
            res.resp.n_parameters = 1;
            res.resp.parameters = &pp;
        }
        if (pad && !padding) {
            err.code = GRPC_STATUS_RESOURCE_EXHAUSTED;
            snprintf(err.msg, sizeof(err.msg), "out of memory");
            reply_error(out, &err);
        } else {
            reply_pack(out, &res.resp.base, 1);
        }
        res.resp.n_parameters = 0;
        res.resp.parameters = NULL;
        free(padding);
        rp_model_result_free(&res);
    }
    inference__model_infer_request__free_unpacked(r, NULL);
}

void rp_service_unary(const struct rp_service *s, enum rp_method m, const uint8_t *req, size_t len,
                      struct rp_reply *out)
{
    memset(out, 0, sizeof(*out));
    switch (m) {
    case RP_M_SERVER_LIVE: {
        Inference__ServerLiveResponse resp = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
        resp.live = 1;
        reply_pack(out, &resp.base, 1);
        break;
    }
    case RP_M_SERVER_READY: {
        /* Not ready while health says NOT_SERVING, like Triton's ready vs live. */
        Inference__ServerReadyResponse resp = INFERENCE__SERVER_READY_RESPONSE__INIT;
        resp.ready = atomic_load(s->serving) != 0;
        reply_pack(out, &resp.base, 1);
        break;
    }
    case RP_M_SERVER_METADATA: {
        Inference__ServerMetadataResponse resp = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
        static char *extensions[] = {"model_stream_infer"};
        resp.name = RP_MODEL_PLATFORM;
        resp.version = (char *)s->server_version;
        resp.n_extensions = 1;
        resp.extensions = extensions;
        reply_pack(out, &resp.base, 1);
        break;
    }
    case RP_M_MODEL_READY:
        do_model_ready(s, req, len, out);
        break;
    case RP_M_MODEL_METADATA:
        do_model_metadata(s, req, len, out);
        break;
    case RP_M_MODEL_INFER:
        do_model_infer(s, req, len, out);
        break;
    case RP_M_HEALTH_CHECK:
        do_health(s, req, len, out);
        break;
    case RP_M_MODEL_STREAM_INFER:
    case RP_M_UNKNOWN:
        reply_status(out, GRPC_STATUS_INTERNAL, "not a unary method");
        break;
    }
}

/* The token stream of <r> into out->tokens; -1 with <err> on failure. */
static int token_stream(const struct rp_service *s, const Inference__ModelInferRequest *r,
                        struct rp_reply *out, struct rp_error *err)
{
    struct rp_tokens *t = malloc(sizeof(*t));

    if (!t) {
        err->code = GRPC_STATUS_RESOURCE_EXHAUSTED;
        snprintf(err->msg, sizeof(err->msg), "out of memory");
        return -1;
    }
    if (rp_tokens_init(t, r, s->max_tokens, s->salt, err) < 0) {
        free(t);
        return -1;
    }
    out->code = GRPC_STATUS_OK;
    out->tokens = t;
    return 0;
}

void rp_service_stream(const struct rp_service *s, const uint8_t *req, size_t len,
                       struct rp_reply *out)
{
    Inference__ModelInferRequest *r = inference__model_infer_request__unpack(NULL, len, req);
    Inference__ModelStreamInferResponse resp = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    Inference__ModelInferResponse ids = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    struct rp_model_result res;
    struct rp_error err;
    long count = 1;
    int rc = 0;

    memset(out, 0, sizeof(*out));
    if (!r) {
        resp.error_message = "request is not a valid inference.ModelInferRequest message";
        reply_pack(out, &resp.base, 1);
        return;
    }
    if (rp_model_is_tokens(&s->models, r->model_name))
        rc = rp_model_check(&s->models, r->model_name, r->model_version, &err) < 0
                 ? -1
                 : token_stream(s, r, out, &err);
    else if (rp_model_stream_responses(r, &count, &err) < 0 ||
             rp_model_infer(&s->models, r, &res, &err) < 0)
        rc = -1;
    if (rc < 0) {
        if (err.code == GRPC_STATUS_RESOURCE_EXHAUSTED) {
            reply_error(out, &err);
            goto done;
        }
        /* Name the request the error belongs to, as the response would. */
        ids.model_name = r->model_name;
        ids.id = r->id;
        resp.error_message = err.msg;
        resp.infer_response = &ids;
        reply_pack(out, &resp.base, 1);
        goto done;
    }
    if (out->tokens)
        goto done;
    resp.infer_response = &res.resp;
    reply_pack(out, &resp.base, count);
    rp_model_result_free(&res);
done:
    inference__model_infer_request__free_unpacked(r, NULL);
}
