/* SPDX-License-Identifier: Apache-2.0 */
/* localsvc — answers ServerLive/ServerReady/ServerMetadata and health
 * Check; see localsvc.h. Requests are unpacked with protobuf-c (they are a
 * few bytes: the gateway bounds them) and answers packed the same way. */
#include "engine/localsvc.h"

#include <string.h>

#include "grpc/health/v1/health.pb-c.h"
#include "grpc_predict_v2.pb-c.h"
#include "base/mem.h"

#ifndef INFERGW_VERSION
#define INFERGW_VERSION "0.1.0"
#endif

enum gw_local_method gw_localsvc_match(const char *path)
{
    static const struct {
        const char *path;
        enum gw_local_method m;
    } table[] = {
        {"/inference.GRPCInferenceService/ServerLive", GW_LOCAL_SERVER_LIVE},
        {"/inference.GRPCInferenceService/ServerReady", GW_LOCAL_SERVER_READY},
        {"/inference.GRPCInferenceService/ServerMetadata", GW_LOCAL_SERVER_METADATA},
        {"/grpc.health.v1.Health/Check", GW_LOCAL_HEALTH_CHECK},
    };
    for (size_t i = 0; i < sizeof(table) / sizeof(table[0]); i++)
        if (!strcmp(path, table[i].path))
            return table[i].m;
    return GW_LOCAL_NONE;
}

/* Packs <msg> behind a 5-byte gRPC prefix into a new buffer. */
static int frame(const ProtobufCMessage *msg, uint8_t **out, size_t *outlen)
{
    size_t n = protobuf_c_message_get_packed_size(msg);
    uint8_t *b = gw_malloc(n + 5);
    if (!b)
        return -1;
    b[0] = 0;
    b[1] = (uint8_t)(n >> 24);
    b[2] = (uint8_t)(n >> 16);
    b[3] = (uint8_t)(n >> 8);
    b[4] = (uint8_t)n;
    protobuf_c_message_pack(msg, b + 5);
    *out = b;
    *outlen = n + 5;
    return 0;
}

int gw_localsvc_answer(enum gw_local_method m, const uint8_t *req, size_t len, int ready,
                       int draining, uint8_t **out, size_t *outlen, const char **errmsg)
{
    int rc = -1;
    switch (m) {
    case GW_LOCAL_SERVER_LIVE: {
        Inference__ServerLiveResponse r = INFERENCE__SERVER_LIVE_RESPONSE__INIT;
        r.live = 1;
        rc = frame(&r.base, out, outlen);
        break;
    }
    case GW_LOCAL_SERVER_READY: {
        Inference__ServerReadyResponse r = INFERENCE__SERVER_READY_RESPONSE__INIT;
        r.ready = ready && !draining;
        rc = frame(&r.base, out, outlen);
        break;
    }
    case GW_LOCAL_SERVER_METADATA: {
        Inference__ServerMetadataResponse r = INFERENCE__SERVER_METADATA_RESPONSE__INIT;
        r.name = "infergw";
        r.version = INFERGW_VERSION;
        rc = frame(&r.base, out, outlen);
        break;
    }
    case GW_LOCAL_HEALTH_CHECK: {
        Grpc__Health__V1__HealthCheckRequest *hr =
            grpc__health__v1__health_check_request__unpack(NULL, len, req);
        if (!hr) {
            *errmsg = "malformed HealthCheckRequest";
            return 3; /* INVALID_ARGUMENT */
        }
        int known =
            hr->service[0] == '\0' || !strcmp(hr->service, "inference.GRPCInferenceService");
        grpc__health__v1__health_check_request__free_unpacked(hr, NULL);
        if (!known) {
            *errmsg = "unknown service: the gateway reports '' and "
                      "'inference.GRPCInferenceService'";
            return 5; /* NOT_FOUND */
        }
        Grpc__Health__V1__HealthCheckResponse r = GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__INIT;
        r.status = draining ? GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__NOT_SERVING
                            : GRPC__HEALTH__V1__HEALTH_CHECK_RESPONSE__SERVING_STATUS__SERVING;
        rc = frame(&r.base, out, outlen);
        break;
    }
    default:
        *errmsg = "not a local method";
        return 13; /* INTERNAL */
    }
    if (rc < 0) {
        *errmsg = "gateway out of memory";
        return 8; /* RESOURCE_EXHAUSTED */
    }
    return 0;
}
