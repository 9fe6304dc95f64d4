/* SPDX-License-Identifier: Apache-2.0 */
/* Allocation failures over a whole scripted call through the real call
 * engine (tests/support/engine_rig.h): a client sends one ModelInfer; its
 * first attempt is answered UNAVAILABLE by one replica, the gateway retries
 * on the other, which answers OK. First the call runs with no failure to
 * count the gateway's allocations on that path (N). Then, for n = 0, 1, ...,
 * the same call runs with allocation n failing, twice: once with every
 * allocation after it failing too (memory exhausted, gw_mem_fail_after), and
 * once with only that one failing (gw_mem_fail_once); each series ends with
 * the first run whose call makes no allocation n (nothing failed), which
 * must answer OK like the run without failures.
 *
 * Each run must end cleanly within 3 s: the worker then holds no client
 * connection and no upstream stream, and once it is torn down the live
 * allocations are back where they were before it started (gw_mem_live: the
 * call, its attempts and whatever failed left nothing behind). The client's answer must be
 * well-formed: HTTP 200 with grpc-status, OK with the replica's message or a
 * gateway status (RESOURCE_EXHAUSTED, INTERNAL, UNAVAILABLE) with a
 * grpc-message; or a reset of its stream when not even the call could be
 * made. Under ASan (the build-asan run) any memory error on these paths aborts.
 */
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "engine_rig.h"
#include "base/grpcwire.h"
#include "base/mem.h"

#define PATH "/inference.GRPCInferenceService/ModelInfer"

/* model_name "demo", id "req-1", RAW_BYTES raw input bytes (several buffer
 * chunks and DATA frames), built in main(). */
#define RAW_BYTES 40000
static uint8_t request[13 + 4 + RAW_BYTES];

struct outcome {
    int http_status, grpc_status, reset, closed;
    uint32_t reset_code;
    size_t resp_bytes;
    char message[512];
    unsigned streams;
    long allocs;
};

static struct rig rig;

/* Runs the scripted call with allocation number <fail_at> failing (-1:
 * none), and every later one too unless <once>. */
static void scripted_call(long fail_at, int once, struct outcome *o)
{
    memset(o, 0, sizeof(*o));
    long live0 = gw_mem_live();
    assert_int_equal(rig_open(&rig), 0);
    rig.call_pad = 600; /* metadata past a header list's inline space */
    /* The same call twice first makes what a worker keeps after its first
     * calls (the pool's latency estimator and budgets, the HPACK tables of
     * its replica connections), so the run below compares live allocations
     * of one call only. */
    for (int i = 0; i < 2; i++) {
        rig.fail_first = 1;
        assert_int_equal(rig_client_call(&rig, PATH, request, sizeof(request), NULL), 0);
        assert_int_equal(rig_wait_client(&rig, 3000), 0);
        assert_int_equal(rig.cl.grpc_status, 0);
        assert_int_equal(rig_settle(&rig, 3000), 0);
    }

    unsigned streams0 = rig.rep[0].streams + rig.rep[1].streams;
    rig.fail_first = 1;
    assert_int_equal(rig_client_open(&rig), 0);
    long allocs0 = gw_mem_allocs();
    if (once)
        gw_mem_fail_once(fail_at);
    else
        gw_mem_fail_after(fail_at);
    assert_int_equal(rig_client_call(&rig, PATH, request, sizeof(request), NULL), 0);
    int waited = rig_wait_client(&rig, 3000);
    o->http_status = rig.cl.http_status;
    o->grpc_status = rig.cl.grpc_status;
    o->reset = rig.cl.stream_closed && rig.cl.close_error != 0;
    o->reset_code = rig.cl.close_error;
    o->closed = rig.cl.done && !rig.cl.stream_closed;
    o->resp_bytes = rig.cl.resp_bytes;
    snprintf(o->message, sizeof(o->message), "%s", rig.cl.grpc_message);
    /* The client's own session leaves with the client (rig_settle): count
     * the live allocations once it is gone. */
    int settled = rig_settle(&rig, 3000);
    o->allocs = gw_mem_allocs() - allocs0;
    gw_mem_fail_after(-1);
    o->streams = rig.rep[0].streams + rig.rep[1].streams - streams0;
    rig_close(&rig);
    if (waited != 0 || settled != 0 || gw_mem_live() != live0)
        fail_msg("allocation #%ld failing (%s): answered %d, settled %d, live allocations "
                 "%ld -> %ld after the worker's teardown (status %d '%s')",
                 fail_at, once ? "once" : "from then on", waited == 0, settled == 0, live0,
                 gw_mem_live(), o->grpc_status, o->message);
}

struct tally {
    long ok, gateway_status, reset;
};

/* Checks that outcome <o> of a run failing allocation <n> is well-formed. */
static void check_outcome(long n, int once, const struct outcome *o, struct tally *t)
{
    const char *mode = once ? "once" : "from then on";
    if (o->reset && o->grpc_status < 0) {
        t->reset++;
        return;
    }
    if (o->http_status != 200 || o->grpc_status < 0)
        fail_msg("allocation #%ld failing (%s): HTTP %d, grpc-status %d, closed %d", n, mode,
                 o->http_status, o->grpc_status, o->closed);
    if (o->grpc_status == GW_GRPC_OK) {
        assert_int_equal(o->resp_bytes, 11);
        t->ok++;
        return;
    }
    if (o->grpc_status != GW_GRPC_RESOURCE_EXHAUSTED && o->grpc_status != GW_GRPC_INTERNAL &&
        o->grpc_status != GW_GRPC_UNAVAILABLE)
        fail_msg("allocation #%ld failing (%s): status %d '%s'", n, mode, o->grpc_status,
                 o->message);
    if (o->message[0] == '\0')
        fail_msg("allocation #%ld failing (%s): status %d without grpc-message", n, mode,
                 o->grpc_status);
    t->gateway_status++;
}

static void test_scripted_call_every_allocation_fails(void **state)
{
    struct outcome base, o;
    (void)state;

    /* No failure: primary UNAVAILABLE, retry OK, the replica's message. */
    scripted_call(-1, 0, &base);
    assert_int_equal(base.http_status, 200);
    assert_int_equal(base.grpc_status, GW_GRPC_OK);
    assert_int_equal(base.resp_bytes, 11);
    assert_int_equal(base.streams, 2);
    assert_true(base.allocs > 0);

    /* FAILMALLOC_ONLY=<n>[,once] runs one failure point (to debug it). */
    const char *only = getenv("FAILMALLOC_ONLY");
    if (only) {
        long n = atol(only);
        struct tally t = {0};
        scripted_call(n, strstr(only, "once") != NULL, &o);
        check_outcome(n, strstr(only, "once") != NULL, &o, &t);
        return;
    }
    for (int once = 0; once <= 1; once++) {
        struct tally t = {0};
        long n;
        for (n = 0;; n++) {
            scripted_call(n, once, &o);
            if (o.allocs <= n)
                break; /* allocation #n was never made: nothing failed */
            check_outcome(n, once, &o, &t);
            if (n >= 2 * base.allocs)
                fail_msg("allocation #%ld failing (%s): still within the call's %ld allocations", n,
                         once ? "once" : "from then on", o.allocs);
        }
        /* The run that ends the loop failed nothing: it is the call of the
         * base run again, answered OK after the retry. */
        if (o.http_status != 200 || o.grpc_status != GW_GRPC_OK || o.resp_bytes != 11 ||
            o.streams != 2)
            fail_msg("allocation #%ld (%s), past the call's %ld allocations: HTTP %d, status %d "
                     "'%s', %zu response bytes, %u replica streams",
                     n, once ? "once" : "from then on", o.allocs, o.http_status, o.grpc_status,
                     o.message, o.resp_bytes, o.streams);
        printf("failmalloc: %ld failure points (%s) on the scripted call (request, attempt, "
               "retry, response): %ld answered OK, %ld with a gateway status, %ld stream "
               "resets; then a run with nothing failing answered OK\n",
               n, once ? "one failing" : "all failing from there on", t.ok, t.gateway_status,
               t.reset);
    }
}

int main(void)
{
    static const char *const args[] = {"--retry-buffer-bytes", "65536", "--access-log", "/dev/null",
                                       NULL};
    static const uint8_t head[] = {0x0a,
                                   4,
                                   'd',
                                   'e',
                                   'm',
                                   'o',
                                   0x1a,
                                   5,
                                   'r',
                                   'e',
                                   'q',
                                   '-',
                                   '1',
                                   0x3a,
                                   0x80 | (RAW_BYTES & 0x7f),
                                   0x80 | ((RAW_BYTES >> 7) & 0x7f),
                                   RAW_BYTES >> 14};
    memcpy(request, head, sizeof(head));
    for (size_t i = sizeof(head); i < sizeof(request); i++)
        request[i] = (uint8_t)i;
    signal(SIGPIPE, SIG_IGN);
    gw_mem_fail_after(-1); /* count from here on */
    if (rig_global_init(args) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scripted_call_every_allocation_fails),
    };
    return cmocka_run_group_tests_name("failmalloc", tests, NULL, NULL);
}
