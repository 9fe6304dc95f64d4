/* SPDX-License-Identifier: Apache-2.0 */
/* A call's whole life through the real call engine, in one process (no fork,
 * no exec, no other process): an nghttp2 client session on one end, two scripted
 * in-process replicas (nghttp2 server sessions answering gRPC) on the
 * other, and the real worker, call and upstream code between them, all
 * stepped on the worker's own loop (tests/support/engine_rig.h). Timers are
 * real but short (tens of milliseconds), so each case takes well under a
 * second.
 *
 * The cases look only at what crosses the sessions (bytes, headers,
 * statuses, RST_STREAM frames), at what each replica saw, at the worker's
 * metrics (attempts per replica, kind and outcome; hedges won) and at the
 * gateway's live allocations, never at the engine's internals:
 *  - success: a unary ModelInfer is relayed byte-exact both ways, status OK;
 *  - retry: the first replica answers UNAVAILABLE before any message
 *    (trailers-only, or in trailers after held response headers), or does
 *    not answer within per_try_timeout_ms (its stream is reset); the call
 *    is retried on the other (grpc-previous-rpc-attempts 1) and ends OK;
 *  - hedge win and loss (hedge_delay_ms 20): the slower attempt is reset
 *    (CANCEL, seen by its replica) as soon as the faster one's first
 *    message commits the call, and the faster one's answer is relayed;
 *  - deadline: grpc-timeout shorter than the replica's delay ends the call
 *    DEADLINE_EXCEEDED and resets the replica's stream;
 *  - client reset: the replica's stream is reset, nothing is relayed, the
 *    call leaves no allocation behind;
 *  - upstream loss: the replica closes its connection after the response
 *    headers (not committed: retried on the other replica, or UNAVAILABLE
 *    "connection to replica ... lost: peer closed the connection" when no
 *    retry is allowed), or after the first message (committed: the message
 *    reaches the client, then UNAVAILABLE with that message).
 * Which replica the ring picks first for the rig's routing key depends on
 * the rig's (random) ports, so the group set-up finds it out with one call:
 * A is that replica, B the other.
 */
#include <inttypes.h>
#include <setjmp.h>
#include <signal.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/grpcwire.h"
#include "base/mem.h"
#include "engine_rig.h"
#include "obs/metrics.h"

#define PATH      "/inference.GRPCInferenceService/ModelInfer"
#define RAW_BYTES 1000
#define MS        1000000ull

/* ModelInferRequest: model_name "demo", id "req-1", RAW_BYTES raw input
 * bytes (built in main). */
static uint8_t request[13 + 3 + RAW_BYTES];

/* Each replica's answer: a framed ModelInferResponse, model_name "demo",
 * id "from-A" / "from-B". */
#define ANSWER(c)                                                                                  \
    {                                                                                              \
        0, 0, 0, 0, 14, 0x0a, 4, 'd', 'e', 'm', 'o', 0x1a, 6, 'f', 'r', 'o', 'm', '-', c           \
    }
static const uint8_t answer_a[] = ANSWER('A');
static const uint8_t answer_b[] = ANSWER('B');

static struct rig rig;
static long live0;
static int A, B; /* replica indexes: the ring's first choice, the other (find_primary) */
static char addr[RIG_REPLICAS][32];

/* Opens the rig with the pools' tunables <tun> (see rig_set_pool_tunables)
 * and gives the replicas their answers. */
static void rig_up(const char *const *tun)
{
    assert_int_equal(rig_set_pool_tunables(tun), 0);
    live0 = gw_mem_live();
    assert_int_equal(rig_open(&rig), 0);
    for (int i = 0; i < RIG_REPLICAS; i++)
        snprintf(addr[i], sizeof(addr[i]), "127.0.0.1:%u", rig.rep[i].port);
    rig.rep[A].msg = answer_a;
    rig.rep[A].msglen = sizeof(answer_a);
    rig.rep[B].msg = answer_b;
    rig.rep[B].msglen = sizeof(answer_b);
}

/* Closes the client and waits until the worker holds no client connection
 * and no upstream stream. */
static void rig_quiet(void)
{
    assert_int_equal(rig_settle(&rig, 2000), 0);
    for (int i = 0; i < RIG_REPLICAS; i++)
        assert_int_equal(rig.rep[i].open, 0);
}

/* Tears the rig down: every allocation of the gateway's is back. */
static void rig_down(void)
{
    rig_close(&rig);
    assert_int_equal(gw_mem_live(), live0);
}

static int teardown(void **state)
{
    (void)state;
    if (rig.opened)
        rig_close(&rig);
    return 0;
}

static uint64_t attempts(int rep, int kind, int outcome)
{
    struct gw_metrics_replica *m = gw_metrics_replica(rig.w.metrics, addr[rep]);
    assert_non_null(m);
    return m->attempts[kind][outcome];
}

/* Replica <rep>'s attempts of <kind> that ended with <outcome> number <n>
 * (where metrics are compiled in). */
static void expect_attempts(int rep, int kind, int outcome, uint64_t n)
{
    if (GW_METRICS_ON)
        assert_int_equal(attempts(rep, kind, outcome), n);
}

static uint64_t hedges_won(void)
{
    return rig.w.metrics->policy[GW_POLICY_HEDGE_WON];
}

/* Makes the call and waits for its end (at most <max_ms>); returns how
 * long it took in ms. */
static uint64_t call(const char *grpc_timeout, int max_ms)
{
    uint64_t t0 = gw_now_ns();
    assert_int_equal(rig_client_call(&rig, PATH, request, sizeof(request), grpc_timeout), 0);
    assert_int_equal(rig_wait_client(&rig, max_ms), 0);
    return (gw_now_ns() - t0) / MS;
}

/* The client got <answer> and status OK. */
static void expect_ok(const uint8_t *answer, size_t len)
{
    assert_int_equal(rig.cl.http_status, 200);
    assert_int_equal(rig.cl.grpc_status, GW_GRPC_OK);
    assert_string_equal(rig.cl.grpc_message, "");
    assert_int_equal(rig.cl.close_error, 0);
    assert_int_equal(rig.cl.resp_bytes, len);
    assert_memory_equal(rig.cl.resp, answer, len);
}

/* Replica <i>'s latest stream carried the request, byte-exact. */
static void expect_request_at(int i)
{
    struct rig_replica *rep = &rig.rep[i];
    assert_int_equal(rep->req_len, 5 + sizeof(request));
    const uint8_t prefix[5] = {0, 0, 0, (uint8_t)(sizeof(request) >> 8),
                               (uint8_t)(sizeof(request) & 0xff)};
    assert_memory_equal(rep->req, prefix, 5);
    assert_memory_equal(rep->req + 5, request, sizeof(request));
}

/* Replica <rep> has seen <n> streams, or <n> resets and has no stream open. */
struct want {
    int rep;
    unsigned n;
};

static int replica_saw_streams(struct rig *r, void *arg)
{
    const struct want *w = arg;
    return r->rep[w->rep].streams >= w->n;
}

static int replica_saw_resets(struct rig *r, void *arg)
{
    const struct want *w = arg;
    return r->rep[w->rep].rsts >= w->n && r->rep[w->rep].open == 0;
}

static int client_got(struct rig *r, void *arg)
{
    return r->cl.resp_bytes >= *(const size_t *)arg || r->cl.stream_closed;
}

/* Starts the call and steps until the client has the winner's message
 * (<len> bytes); the winner holds its trailers back meanwhile, so the call
 * is still open when replica <loser> must have seen its stream reset: the
 * commit point itself cancels the other attempt, not the call's end. Then
 * waits for the call's end; returns how long it took in ms. */
static uint64_t call_expect_loser_reset_at_commit(size_t len, int loser)
{
    uint64_t t0 = gw_now_ns();
    assert_int_equal(rig_client_call(&rig, PATH, request, sizeof(request), NULL), 0);
    assert_int_equal(rig_run_until(&rig, client_got, &len, 900), 0);
    assert_int_equal(rig.cl.resp_bytes, len);
    assert_int_equal(rig_run_until(&rig, replica_saw_resets, &(struct want){loser, 1}, 1000), 0);
    assert_false(rig.cl.stream_closed); /* the winner's trailers are still to come */
    assert_int_equal(rig_wait_client(&rig, 900), 0);
    return (gw_now_ns() - t0) / MS;
}

/* --- cases ------------------------------------------------------------------ */

static void test_success(void **state)
{
    (void)state;
    rig_up(NULL);
    call(NULL, 2000);
    /* The ring's first choice for the rig's key answered alone. */
    expect_ok(answer_a, sizeof(answer_a));
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[B].streams, 0);
    assert_int_equal(rig.rep[A].answered, 1);
    expect_request_at(A);
    assert_string_equal(rig.rep[A].prev_attempts, "");
    rig_quiet();
    assert_int_equal(rig.rep[A].rsts, 0);
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_OK, 1);
    rig_down();
}

static void test_retry_on_unavailable(void **state)
{
    (void)state;
    rig_up(NULL);
    rig.rep[A].answer = RIG_ANSWER_UNAVAILABLE;
    call(NULL, 2000);
    expect_ok(answer_b, sizeof(answer_b));
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[B].streams, 1);
    assert_int_equal(rig.rep[B].answered, 1);
    assert_string_equal(rig.rep[A].prev_attempts, "");
    assert_string_equal(rig.rep[B].prev_attempts, "1");
    expect_request_at(A);
    expect_request_at(B); /* replayed whole */
    rig_quiet();
    assert_int_equal(rig.rep[A].rsts, 0);
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_UNAVAILABLE, 1);
    expect_attempts(B, GW_KIND_RETRY, GW_GRPC_OK, 1);
    rig_down();
}

/* UNAVAILABLE in trailers after response headers, still before any message:
 * the headers were held, so the call goes to B as if nothing was sent. */
static void test_retry_on_unavailable_in_trailers(void **state)
{
    (void)state;
    rig_up(NULL);
    rig.rep[A].answer = RIG_ANSWER_UNAVAILABLE_TRAILERS;
    call(NULL, 2000);
    expect_ok(answer_b, sizeof(answer_b));
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[B].streams, 1);
    assert_string_equal(rig.rep[B].prev_attempts, "1");
    rig_quiet();
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_UNAVAILABLE, 1);
    expect_attempts(B, GW_KIND_RETRY, GW_GRPC_OK, 1);
    rig_down();
}

/* per_try_timeout_ms: A does not answer within 30 ms, so its stream is
 * reset and the call retried on B. */
static void test_per_try_timeout(void **state)
{
    (void)state;
    static const char *const per_try[] = {"per_try_timeout_ms", "30", NULL};
    rig_up(per_try);
    rig.rep[A].delay_ms = 1000;
    uint64_t ms = call(NULL, 900);
    assert_true(ms >= 30 && ms < 900);
    expect_ok(answer_b, sizeof(answer_b));
    assert_int_equal(rig.rep[B].streams, 1);
    assert_string_equal(rig.rep[B].prev_attempts, "1");
    rig_quiet();
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[A].rsts, 1);
    assert_int_equal(rig.rep[A].rst_code, NGHTTP2_CANCEL);
    assert_int_equal(rig.rep[A].answered, 0);
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_CANCELLED, 1);
    expect_attempts(B, GW_KIND_RETRY, GW_GRPC_OK, 1);
    rig_down();
}

static const char *const hedge20[] = {"hedge_delay_ms", "20", NULL};

static void test_hedge_wins(void **state)
{
    (void)state;
    rig_up(hedge20);
    rig.rep[A].delay_ms = 1000;         /* the primary is slow */
    rig.rep[B].trailers_after_ms = 150; /* the hedge answers a message, then waits */
    uint64_t ms = call_expect_loser_reset_at_commit(sizeof(answer_b), A);
    assert_true(ms >= 150 && ms < 1000);
    expect_ok(answer_b, sizeof(answer_b));
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[B].streams, 1);
    assert_string_equal(rig.rep[B].prev_attempts, "1");
    expect_request_at(B);
    rig_quiet();
    /* The primary was cancelled: its replica saw the reset, never answered. */
    assert_int_equal(rig.rep[A].rsts, 1);
    assert_int_equal(rig.rep[A].rst_code, NGHTTP2_CANCEL);
    assert_int_equal(rig.rep[A].answered, 0);
    assert_int_equal(rig.rep[B].rsts, 0);
    if (GW_METRICS_ON)
        assert_int_equal(hedges_won(), 1);
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_CANCELLED, 1);
    expect_attempts(B, GW_KIND_HEDGE, GW_GRPC_OK, 1);
    rig_down();
}

static void test_hedge_loses(void **state)
{
    (void)state;
    rig_up(hedge20);
    rig.rep[A].delay_ms = 80;           /* answers after the hedge started */
    rig.rep[A].trailers_after_ms = 150; /* (a message, then its status) */
    rig.rep[B].delay_ms = 1000;         /* but before the hedge */
    uint64_t ms = call_expect_loser_reset_at_commit(sizeof(answer_a), B);
    assert_true(ms >= 230 && ms < 1000);
    expect_ok(answer_a, sizeof(answer_a));
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[B].streams, 1);
    rig_quiet();
    assert_int_equal(rig.rep[B].rsts, 1);
    assert_int_equal(rig.rep[B].rst_code, NGHTTP2_CANCEL);
    assert_int_equal(rig.rep[B].answered, 0);
    assert_int_equal(rig.rep[A].rsts, 0);
    if (GW_METRICS_ON)
        assert_int_equal(hedges_won(), 0);
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_OK, 1);
    expect_attempts(B, GW_KIND_HEDGE, GW_GRPC_CANCELLED, 1);
    rig_down();
}

static void test_deadline(void **state)
{
    (void)state;
    rig_up(NULL);
    rig.rep[A].delay_ms = 1000;
    uint64_t ms = call("50m", 900);
    assert_true(ms >= 45 && ms < 900);
    assert_int_equal(rig.cl.http_status, 200);
    assert_int_equal(rig.cl.grpc_status, GW_GRPC_DEADLINE_EXCEEDED);
    assert_string_equal(rig.cl.grpc_message, "deadline exceeded (grpc-timeout 50 ms)");
    assert_int_equal(rig.cl.resp_bytes, 0);
    /* The replica was given what was left of the deadline. */
    uint64_t left;
    assert_int_equal(
        gw_grpc_timeout_parse(rig.rep[A].grpc_timeout, strlen(rig.rep[A].grpc_timeout), &left), 0);
    assert_true(left > 0 && left <= 50 * MS);
    rig_quiet();
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[A].rsts, 1);
    assert_int_equal(rig.rep[A].rst_code, NGHTTP2_CANCEL);
    assert_int_equal(rig.rep[A].answered, 0);
    assert_int_equal(rig.rep[B].streams, 0);
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_CANCELLED, 1);
    rig_down();
}

static void test_client_reset(void **state)
{
    (void)state;
    rig_up(NULL);
    /* A first call on the same connection makes what the worker keeps
     * (the pool's budgets and latency, HPACK tables). */
    call(NULL, 2000);
    expect_ok(answer_a, sizeof(answer_a));
    long live1 = gw_mem_live();

    rig.rep[A].answer = RIG_ANSWER_NONE;
    assert_int_equal(rig_client_call(&rig, PATH, request, sizeof(request), NULL), 0);
    assert_int_equal(rig_run_until(&rig, replica_saw_streams, &(struct want){A, 2}, 1000), 0);
    assert_int_equal(rig.rep[A].streams, 2);
    rig_run_for(&rig, 20); /* the call is in flight, the replica silent */
    assert_int_equal(rig.rep[A].open, 1);
    assert_int_equal(rig_client_reset(&rig, NGHTTP2_CANCEL), 0);
    assert_int_equal(rig_run_until(&rig, replica_saw_resets, &(struct want){A, 1}, 1000), 0);
    assert_int_equal(rig.rep[A].rst_code, NGHTTP2_CANCEL);
    assert_int_equal(rig_wait_client(&rig, 1000), 0);
    /* Nothing was relayed to the client. */
    assert_int_equal(rig.cl.close_error, NGHTTP2_CANCEL);
    assert_int_equal(rig.cl.http_status, 0);
    assert_int_equal(rig.cl.grpc_status, -1);
    assert_int_equal(rig.cl.resp_bytes, 0);
    /* With the client connection still open, the call is gone. */
    rig_run_for(&rig, 10);
    assert_int_equal(gw_mem_live(), live1);
    assert_int_equal(rig.rep[B].streams, 0);
    rig_quiet();
    expect_attempts(A, GW_KIND_PRIMARY, GW_GRPC_CANCELLED, 1);
    rig_down();
}

static void test_upstream_lost_after_headers_retried(void **state)
{
    (void)state;
    rig_up(NULL);
    rig.rep[A].answer = RIG_ANSWER_CLOSE_AFTER_HEADERS;
    call(NULL, 2000);
    /* Headers are held until a message: not committed, so retried. */
    expect_ok(answer_b, sizeof(answer_b));
    assert_int_equal(rig.rep[A].closed_conns, 1);
    assert_int_equal(rig.rep[A].streams, 1);
    assert_int_equal(rig.rep[B].streams, 1);
    assert_string_equal(rig.rep[B].prev_attempts, "1");
    expect_request_at(B);
    rig_quiet();
    expect_attempts(A, GW_KIND_PRIMARY, GW_OUTCOME_CONNECTION_LOST, 1);
    expect_attempts(B, GW_KIND_RETRY, GW_GRPC_OK, 1);
    rig_down();
}

static void test_upstream_lost_after_headers_no_retry(void **state)
{
    (void)state;
    static const char *const one_attempt[] = {"retry_max_attempts", "1", NULL};
    rig_up(one_attempt);
    rig.rep[A].answer = RIG_ANSWER_CLOSE_AFTER_HEADERS;
    call(NULL, 2000);
    char want[128];
    snprintf(want, sizeof(want), "connection to replica %s lost: peer closed the connection",
             addr[A]);
    assert_int_equal(rig.cl.http_status, 200);
    assert_int_equal(rig.cl.grpc_status, GW_GRPC_UNAVAILABLE);
    assert_string_equal(rig.cl.grpc_message, want);
    assert_int_equal(rig.cl.resp_bytes, 0);
    assert_int_equal(rig.rep[B].streams, 0);
    rig_quiet();
    expect_attempts(A, GW_KIND_PRIMARY, GW_OUTCOME_CONNECTION_LOST, 1);
    rig_down();
}

static void test_upstream_lost_after_message(void **state)
{
    (void)state;
    rig_up(NULL);
    rig.rep[A].answer = RIG_ANSWER_CLOSE_AFTER_MESSAGE;
    rig.rep[A].close_after_ms = 30; /* the message reaches the client first */
    call(NULL, 2000);
    char want[128];
    snprintf(want, sizeof(want), "connection to replica %s lost: peer closed the connection",
             addr[A]);
    /* Committed: the message was relayed, then the loss ends the call. */
    assert_int_equal(rig.cl.http_status, 200);
    assert_int_equal(rig.cl.resp_bytes, sizeof(answer_a));
    assert_memory_equal(rig.cl.resp, answer_a, sizeof(answer_a));
    assert_int_equal(rig.cl.grpc_status, GW_GRPC_UNAVAILABLE);
    assert_string_equal(rig.cl.grpc_message, want);
    assert_int_equal(rig.rep[A].closed_conns, 1);
    assert_int_equal(rig.rep[B].streams, 0); /* never retried once committed */
    rig_quiet();
    expect_attempts(A, GW_KIND_PRIMARY, GW_OUTCOME_CONNECTION_LOST, 1);
    rig_down();
}

/* Group set-up: which replica the ring picks first for the rig's key (it
 * depends on the rig's ports): one call, answered by A alone. */
static int find_primary(void **state)
{
    (void)state;
    if (rig_set_pool_tunables(NULL) != 0 || rig_open(&rig) != 0)
        return -1;
    int ok = rig_client_call(&rig, PATH, request, sizeof(request), NULL) == 0 &&
             rig_wait_client(&rig, 2000) == 0 && rig.cl.grpc_status == GW_GRPC_OK &&
             rig.rep[0].streams + rig.rep[1].streams == 1 && rig_settle(&rig, 2000) == 0;
    A = rig.rep[0].streams ? 0 : 1;
    B = 1 - A;
    rig_close(&rig);
    return ok ? 0 : -1;
}

int main(void)
{
    static const uint8_t head[] = {0x0a,          4,    'd', 'e',  'm',
                                   'o',           0x1a, 5,   'r',  'e',
                                   'q',           '-',  '1', 0x3a, 0x80 | (RAW_BYTES & 0x7f),
                                   RAW_BYTES >> 7};
    memcpy(request, head, sizeof(head));
    for (size_t i = sizeof(head); i < sizeof(request); i++)
        request[i] = (uint8_t)(i * 7);
    signal(SIGPIPE, SIG_IGN);
    if (rig_global_init(NULL) != 0)
        return 1;
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_teardown(test_success, teardown),
        cmocka_unit_test_teardown(test_retry_on_unavailable, teardown),
        cmocka_unit_test_teardown(test_retry_on_unavailable_in_trailers, teardown),
        cmocka_unit_test_teardown(test_per_try_timeout, teardown),
        cmocka_unit_test_teardown(test_hedge_wins, teardown),
        cmocka_unit_test_teardown(test_hedge_loses, teardown),
        cmocka_unit_test_teardown(test_deadline, teardown),
        cmocka_unit_test_teardown(test_client_reset, teardown),
        cmocka_unit_test_teardown(test_upstream_lost_after_headers_retried, teardown),
        cmocka_unit_test_teardown(test_upstream_lost_after_headers_no_retry, teardown),
        cmocka_unit_test_teardown(test_upstream_lost_after_message, teardown),
    };
    return cmocka_run_group_tests_name("engine", tests, find_primary, NULL);
}
