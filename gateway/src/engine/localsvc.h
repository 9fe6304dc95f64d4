/* SPDX-License-Identifier: Apache-2.0 */
/* localsvc — the methods the gateway answers itself: KServe ServerLive,
 * ServerReady and ServerMetadata (they name no model, so Triton/KServe
 * clients that check the server first work unchanged) and
 * grpc.health.v1.Health/Check. Messages are packed with protobuf-c.
 */
#ifndef INFERGW_LOCALSVC_H
#define INFERGW_LOCALSVC_H

#include <stddef.h>
#include <stdint.h>

enum gw_local_method {
    GW_LOCAL_NONE = 0,
    GW_LOCAL_SERVER_LIVE,
    GW_LOCAL_SERVER_READY,
    GW_LOCAL_SERVER_METADATA,
    GW_LOCAL_HEALTH_CHECK,
};

/* Which local method <path> is, or GW_LOCAL_NONE. */
enum gw_local_method gw_localsvc_match(const char *path);

/* Builds the answer to local method <m> for the unframed request message
 * <req> (<len> bytes). On success returns 0 and stores a malloc'd gRPC-framed
 * response message in *out / *outlen (caller frees with gw_free); on failure
 * returns a gRPC status code with a static message in *errmsg. <ready> is
 * whether every pool has an eligible replica; <draining> whether the
 * gateway is shutting down. */
int gw_localsvc_answer(enum gw_local_method m, const uint8_t *req, size_t len, int ready,
                       int draining, uint8_t **out, size_t *outlen, const char **errmsg);

#endif
