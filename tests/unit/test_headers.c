/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/headers.c: which header fields are relayed. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/headers.h"

static int fwd(const char *name, const char *value)
{
    return gw_hdr_forwardable((const uint8_t *)name, strlen(name), (const uint8_t *)value,
                              strlen(value));
}

static void test_connection_specific_dropped(void **state)
{
    static const char *const dropped[] = {
        "connection", "keep-alive", "proxy-connection", "transfer-encoding", "upgrade",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++) {
        assert_int_equal(fwd(dropped[i], "close"), 0);
        assert_int_equal(fwd(dropped[i], ""), 0);
    }
}

static void test_pseudo_headers_and_timeout_dropped(void **state)
{
    (void)state;
    assert_int_equal(fwd(":path", "/inference.GRPCInferenceService/ModelInfer"), 0);
    assert_int_equal(fwd(":authority", "gw:8080"), 0);
    assert_int_equal(fwd(":status", "200"), 0);
    assert_int_equal(fwd(":method", "POST"), 0);
    assert_int_equal(fwd(":scheme", "http"), 0);
    assert_int_equal(fwd("grpc-timeout", "100m"), 0);
    assert_int_equal(fwd("", "x"), 0);
}

static void test_te_only_trailers(void **state)
{
    (void)state;
    assert_int_equal(fwd("te", "trailers"), 1);
    assert_int_equal(fwd("te", "gzip"), 0);
    assert_int_equal(fwd("te", "trailers, gzip"), 0);
    assert_int_equal(fwd("te", "Trailers"), 0);
    assert_int_equal(fwd("te", "trailers "), 0);
    assert_int_equal(fwd("te", "trailer"), 0);
    assert_int_equal(fwd("te", ""), 0);
    /* The value is read by length, not up to a NUL. */
    assert_int_equal(gw_hdr_forwardable((const uint8_t *)"te", 2, (const uint8_t *)"trailersX", 8),
                     1);
}

static void test_everything_else_forwarded(void **state)
{
    static const char *const kept[] = {
        "content-type",
        "user-agent",
        "grpc-encoding",
        "grpc-accept-encoding",
        "grpc-status",
        "grpc-message",
        "x-model",
        "x-route-key",
        "x-replica-id",
        "authorization",
        "bin-bin",
        "custom-bin",
        "tee",
        "t",
        "connections",
        "upgrade-insecure-requests",
        "grpc-timeout-ms",
        "keep-alive2",
    };

    (void)state;
    for (size_t i = 0; i < sizeof(kept) / sizeof(kept[0]); i++)
        assert_int_equal(fwd(kept[i], "v"), 1);
    /* The name is read by length: a prefix of a dropped name is kept. */
    assert_int_equal(gw_hdr_forwardable((const uint8_t *)"connection", 4, (const uint8_t *)"v", 1),
                     1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_connection_specific_dropped),
        cmocka_unit_test(test_pseudo_headers_and_timeout_dropped),
        cmocka_unit_test(test_te_only_trailers),
        cmocka_unit_test(test_everything_else_forwarded),
    };
    return cmocka_run_group_tests_name("headers", tests, NULL, NULL);
}
