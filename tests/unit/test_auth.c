/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/auth/auth.c: the chain built from the flags
 * (--auth=none, the built-ins, refusals at start), and the decision for one
 * call against real tenant records (authdb.c) and rate limits
 * (ratelimit.c): accepted, no credentials, a malformed authorization, a
 * bearer token nobody claims, an unknown tenant, over the rate (with the
 * pushback), a model outside the tenant's list, and a tenant removed by a
 * newer snapshot between the headers and the pool. The module decides on a
 * view of the request (gw_auth_request) and returns a verdict, recorded
 * here as the call engine would apply it. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "auth/auth.h"
#include "auth/authdb.h"
#include "base/config.h"
#include "base/grpcwire.h"
#include "base/hdrlist.h"
#include "infergw/plugin.h"
#include "obs/metrics.h"
#include "route/route.h"

/* --- a call's verdicts, recorded --------------------------------------- */

static char failed_msg[512];
static uint32_t failed_pushback;

/* What the test keeps of a call: its request and what the verdicts said. */
struct call {
    struct gw_hdrlist req_hdrs;
    const char *path;
    int status; /* -1 = not refused */
    char tenant[GW_TENANT_NAME_MAX + 1];
};

/* The client connection the calls come on. */
static struct {
    char peer[64];
    int tls, peer_verified;
    const char *peer_cn;
} sc;

/* gw_metrics_ratelimited lives in metrics.c, which this test does not link. */
static int ratelimited_calls;
void gw_metrics_ratelimited(struct gw_metrics *m, const char *tenant)
{
    ratelimited_calls++;
}
const char *gw_metrics_auth_reason_name(int reason)
{
    return "reason";
}

/* --- a worker, a connection and a call ------------------------------------ */

static const char KEY[] = "igw_unit-test-key-0123456789";

static const uint64_t now_ns = 1000000000ull;
static struct gw_routes routes;
static struct gw_metrics *metrics;

static struct gw_authdb *make_db(const char *acme_rps)
{
    struct gw_authdb *db = gw_authdb_new();
    const char *bad;
    char err[256];
    assert_int_equal(
        gw_authdb_add_tenant(db, "acme", "demo", acme_rps, "1", &bad, err, sizeof(err)), 0);
    uint8_t h[32];
    gw_apikey_hash(KEY, strlen(KEY), h);
    assert_int_equal(gw_authdb_add_apikey(db, h, "acme", 0), 0);
    assert_int_equal(
        gw_authdb_add_tenant(db, "ghost-free", "*", NULL, NULL, &bad, err, sizeof(err)), 0);
    return db;
}

static int setup(void **state)
{
    metrics = calloc(1, sizeof(*metrics));
    routes.authdb = make_db("0");
    snprintf(sc.peer, sizeof(sc.peer), "127.0.0.1:1234");
    return 0;
}

static int teardown(void **state)
{
    gw_authdb_free(routes.authdb);
    free(metrics);
    return 0;
}

/* A call whose request headers are :path and <auth> (NULL: none). */
static void call_init(struct call *c, const char *auth)
{
    memset(c, 0, sizeof(*c));
    c->status = -1;
    gw_hdrlist_init(&c->req_hdrs);
    const char *path = "/inference.GRPCInferenceService/ModelInfer";
    gw_hdrlist_add(&c->req_hdrs, ":path", 5, path, strlen(path));
    if (auth)
        gw_hdrlist_add(&c->req_hdrs, "authorization", 13, auth, strlen(auth));
    c->path = path;
    failed_msg[0] = '\0';
    failed_pushback = 0;
}

static void record(struct call *c, int rc, const struct gw_auth_verdict *v)
{
    if (rc == 0)
        return;
    c->status = v->status;
    snprintf(failed_msg, sizeof(failed_msg), "%s", v->message);
    if (v->pushback_ms >= 0)
        failed_pushback = (uint32_t)v->pushback_ms;
}

/* gw_auth_on_headers on the view the call engine would fill. */
static int on_headers(struct call *c)
{
    struct gw_auth_request req = {
        .hdrs = &c->req_hdrs,
        .path = c->path,
        .peer = sc.peer,
        .tls = sc.tls,
        .peer_verified = sc.peer_verified,
        .peer_cn = sc.peer_cn,
        .db = routes.authdb,
        .metrics = metrics,
        .worker = 0,
        .now_ns = now_ns,
        .call_id = 1,
    };
    struct gw_auth_verdict v;
    int rc = gw_auth_on_headers(&req, &v);
    if (rc == 0)
        memcpy(c->tenant, v.tenant, sizeof(c->tenant));
    record(c, rc, &v);
    return rc;
}

static int on_pool(struct call *c, const struct gw_pool *pool)
{
    struct gw_auth_verdict v;
    int rc = gw_auth_on_pool(routes.authdb, metrics, c->tenant, pool, &v);
    record(c, rc, &v);
    return rc;
}

static struct gw_pool pool_named(const char *name)
{
    struct gw_pool p = {.name = (char *)name, .name_len = strlen(name)};
    return p;
}

static void start(const char *const *flags, int n)
{
    struct gw_config cfg;
    char *argv[16] = {"infergw", "--pool", "demo=127.0.0.1:1", "--workers", "1"};
    for (int i = 0; i < n; i++)
        argv[5 + i] = (char *)flags[i];
    char err[256];
    assert_int_equal(gw_config_parse(&cfg, 5 + n, argv, err, sizeof(err)), 0);
    assert_int_equal(gw_auth_init(&cfg, err, sizeof(err)), 0);
    gw_config_free(&cfg);
}

/* --- tests ------------------------------------------------------------------- */

static void test_auth_none_lets_everything_pass(void **state)
{
    const char *flags[] = {"--auth=none"};
    start(flags, 1);
    struct call c;
    call_init(&c, NULL);
    assert_int_equal(on_headers(&c), 0);
    struct gw_pool p = pool_named("anything");
    assert_int_equal(on_pool(&c, &p), 0);
    assert_int_equal(c.status, -1);
    gw_auth_shutdown();
}

static void test_refused_at_start(void **state)
{
    const char *bad[][3] = {
        {"--auth=none", "--jwt-keys", "/k.pem"},
        {"--auth=on", "--jwt-keys", "/nonexistent/k.pem"},
        {"--auth=on", "--plugin", "/nonexistent/p.so"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        struct gw_config cfg;
        char *argv[] = {"infergw",         "--pool",          "demo=h:1", (char *)bad[i][0],
                        (char *)bad[i][1], (char *)bad[i][2], NULL};
        char err[256];
        assert_int_equal(gw_config_parse(&cfg, 6, argv, err, sizeof(err)), 0);
        assert_int_equal(gw_auth_init(&cfg, err, sizeof(err)), -1);
        assert_true(strlen(err) > 10);
        gw_config_free(&cfg);
    }
}

static void test_api_key_calls(void **state)
{
    const char *flags[] = {"--auth=on", "--mtls-tenant-from", "cn"};
    start(flags, 3);
    struct call c;
    char auth[128];
    snprintf(auth, sizeof(auth), "Bearer %s", KEY);

    call_init(&c, auth);
    assert_int_equal(on_headers(&c), 0);
    assert_string_equal(c.tenant, "acme");
    struct gw_pool demo = pool_named("demo"), other = pool_named("other");
    assert_int_equal(on_pool(&c, &demo), 0);
    assert_int_equal(on_pool(&c, &other), -1);
    assert_int_equal(c.status, GW_GRPC_PERMISSION_DENIED);
    assert_string_equal(failed_msg, "tenant 'acme' may not call model 'other'");
    assert_int_equal(atomic_load(&metrics->auth_failures[GW_AUTH_REASON_MODEL_DENIED]), 1);

    call_init(&c, NULL);
    assert_int_equal(on_headers(&c), -1);
    assert_int_equal(c.status, GW_GRPC_UNAUTHENTICATED);
    assert_non_null(strstr(failed_msg, "no credentials"));
    assert_non_null(strstr(failed_msg, "client certificate")); /* mTLS is on */
    assert_int_equal(atomic_load(&metrics->auth_failures[INFERGW_REASON_NO_CREDENTIALS]), 1);

    call_init(&c, "Basic abc");
    assert_int_equal(on_headers(&c), -1);
    assert_string_equal(failed_msg, "authorization metadata is not 'Bearer <token>'");

    call_init(&c, "Bearer a.b.c"); /* a JWT, and no JWT keys */
    assert_int_equal(on_headers(&c), -1);
    assert_non_null(strstr(failed_msg, "not recognised by any authenticator"));

    call_init(&c, "Bearer igw_wrong");
    assert_int_equal(on_headers(&c), -1);
    assert_string_equal(failed_msg, "API key not recognised");
    assert_null(strstr(failed_msg, "igw_"));

    /* A verified client certificate names a tenant that has no record. */
    call_init(&c, NULL);
    sc.tls = sc.peer_verified = 1;
    sc.peer_cn = "stranger";
    assert_int_equal(on_headers(&c), -1);
    assert_int_equal(c.status, GW_GRPC_PERMISSION_DENIED);
    assert_string_equal(failed_msg, "tenant 'stranger' is not configured on this gateway");
    sc.peer_cn = "ghost-free";
    call_init(&c, NULL);
    assert_int_equal(on_headers(&c), 0);
    assert_string_equal(c.tenant, "ghost-free");
    sc.tls = sc.peer_verified = 0;
    sc.peer_cn = NULL;

    /* The tenant is gone in the snapshot the worker switched to before the
     * pool was known. */
    call_init(&c, auth);
    assert_int_equal(on_headers(&c), 0);
    struct gw_authdb *old = routes.authdb;
    routes.authdb = gw_authdb_new();
    assert_int_equal(on_pool(&c, &demo), -1);
    assert_int_equal(c.status, GW_GRPC_PERMISSION_DENIED);
    gw_authdb_free(routes.authdb);
    routes.authdb = old;
    gw_auth_shutdown();
}

static void test_rate_limited(void **state)
{
    struct gw_authdb *old = routes.authdb;
    routes.authdb = make_db("0.01"); /* one call per 100 s, burst 1 */
    const char *flags[] = {"--auth=on"};
    start(flags, 1);
    char auth[128];
    snprintf(auth, sizeof(auth), "Bearer %s", KEY);
    struct call c;
    call_init(&c, auth);
    assert_int_equal(on_headers(&c), 0);
    call_init(&c, auth);
    int before = ratelimited_calls;
    assert_int_equal(on_headers(&c), -1);
    assert_int_equal(c.status, GW_GRPC_RESOURCE_EXHAUSTED);
    assert_non_null(strstr(failed_msg, "tenant 'acme' is over its rate limit"));
    assert_true(failed_pushback > 1000 && failed_pushback <= 100000);
    assert_int_equal(ratelimited_calls, before + 1);
    gw_auth_shutdown();
    gw_authdb_free(routes.authdb);
    routes.authdb = old;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_auth_none_lets_everything_pass),
        cmocka_unit_test(test_refused_at_start),
        cmocka_unit_test(test_api_key_calls),
        cmocka_unit_test(test_rate_limited),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
