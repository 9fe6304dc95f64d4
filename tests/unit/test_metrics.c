/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for metrics.c: the merge of several workers' metrics and its
 * Prometheus text exposition (labels, escaping, cumulative histogram
 * buckets, _sum and _count), and the bounded pool and replica tables. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/grpcwire.h"
#include "obs/metrics.h"
#include "route/route.h"

#define MS 1000000ULL

static struct gw_routes *routes_of(const char *const *pools, size_t n)
{
    static const char *const addrs[] = {"127.0.0.1:1"};
    struct gw_pool_spec specs[8];
    assert_true(n <= 8);
    for (size_t i = 0; i < n; i++)
        specs[i] = (struct gw_pool_spec){.name = pools[i], .addrs = addrs, .n = 1};
    struct gw_tunables global;
    gw_tunables_defaults(&global);
    char err[256];
    struct gw_routes *rt = gw_routes_build(specs, n, &global, NULL, 0, 0, err, sizeof(err));
    assert_non_null(rt);
    return rt;
}

/* Renders <n> workers' metrics into a NUL-terminated string (caller frees). */
/* noinline: inlined, gcc 12 mistakes the memstream buffer for a dangling
 * local (-Wdangling-pointer) in Release builds. */
__attribute__((noinline)) static char *render(struct gw_metrics *const *ws, size_t n,
                                              const struct gw_metrics_global *g)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    assert_non_null(f);
    assert_int_equal(gw_metrics_render(ws, n, g, f), 0);
    fclose(f);
    return buf;
}

/* The value of the sample line that starts with <series> followed by a
 * space, or -1 when there is none. */
static double sample(const char *text, const char *series)
{
    size_t sl = strlen(series);
    for (const char *line = text; line && *line;) {
        const char *nl = strchr(line, '\n');
        if (!strncmp(line, series, sl) && line[sl] == ' ')
            return strtod(line + sl + 1, NULL);
        line = nl ? nl + 1 : NULL;
    }
    return -1;
}

static void test_merge_and_format(void **state)
{
    const char *pools[] = {"resnet", "bert"};
    struct gw_routes *rt = routes_of(pools, 2);
    struct gw_metrics *w[2] = {gw_metrics_new(), gw_metrics_new()};
    const char *infer = "/inference.GRPCInferenceService/ModelInfer";
    gw_metrics_call_end(w[0], rt, "resnet", 6, infer, GW_GRPC_OK, 2 * MS);
    gw_metrics_call_end(w[0], rt, "resnet", 6, infer, GW_GRPC_OK, 20 * MS);
    gw_metrics_call_end(w[1], rt, "resnet", 6, infer, GW_GRPC_OK, 400 * MS);
    gw_metrics_call_end(w[1], rt, "resnet", 6, infer, GW_GRPC_UNAVAILABLE, 30000 * MS);
    gw_metrics_call_end(w[1], rt, "bert", 4, "/my.Service/Method", GW_GRPC_INTERNAL, 1 * MS);
    gw_metrics_call_end(w[0], rt, "nosuch", 6, infer, GW_GRPC_NOT_FOUND, 1 * MS);
    gw_metrics_call_end(w[0], rt, NULL, 0, "/grpc.health.v1.Health/Check", GW_GRPC_OK, 0);
    struct gw_metrics_replica *r0 = gw_metrics_replica(w[0], "10.0.0.1:80");
    struct gw_metrics_replica *r1 = gw_metrics_replica(w[1], "10.0.0.1:80");
    gw_metrics_attempt(r0, GW_KIND_PRIMARY, GW_GRPC_OK);
    gw_metrics_attempt(r1, GW_KIND_PRIMARY, GW_GRPC_OK);
    gw_metrics_attempt(r1, GW_KIND_PRIMARY, GW_OUTCOME_CONNECT_FAILED);
    gw_metrics_inflight_add(r0, 3);
    gw_metrics_inflight_add(r1, 2);
    gw_metrics_inflight_add(r1, -1);
    gw_metrics_set_reachable(r1, 1);
    r1->listed = 1; /* worker 1 keeps a record of it: its gauges are exported */
    /* A replica no worker keeps a record of any more: counters stay, gauges go. */
    struct gw_metrics_replica *gone = gw_metrics_replica(w[0], "10.0.0.9:80");
    gw_metrics_attempt(gone, GW_KIND_PRIMARY, GW_GRPC_OK);
    gw_metrics_conns_add(w[0], 2);
    gw_metrics_conns_add(w[1], 1);
    struct gw_metrics_global g = {.have_ctrl = 1,
                                  .redis_up = 1,
                                  .config_version = 42,
                                  .config_age_seconds = 1.5,
                                  .config_errors = 3};
    char *text = render(w, 2, &g);

    assert_true(sample(text, "infergw_calls_total{pool=\"resnet\",method=\"/inference."
                             "GRPCInferenceService/ModelInfer\",code=\"OK\"}") == 3);
    assert_true(sample(text, "infergw_calls_total{pool=\"resnet\",method=\"/inference."
                             "GRPCInferenceService/ModelInfer\",code=\"UNAVAILABLE\"}") == 1);
    /* Methods outside the list and pools outside the snapshot fold. */
    assert_true(
        sample(text, "infergw_calls_total{pool=\"bert\",method=\"other\",code=\"INTERNAL\"}") == 1);
    assert_true(sample(text, "infergw_calls_total{pool=\"unknown\",method=\"/inference."
                             "GRPCInferenceService/ModelInfer\",code=\"NOT_FOUND\"}") == 1);
    assert_true(sample(text, "infergw_calls_total{pool=\"none\",method=\"/grpc.health.v1.Health/"
                             "Check\",code=\"OK\"}") == 1);
    /* Series that never counted are left out. */
    assert_null(strstr(text, "code=\"ABORTED\""));

    /* Histogram: cumulative, +Inf = _count, _sum in seconds. */
    assert_true(
        sample(text, "infergw_call_duration_seconds_bucket{pool=\"resnet\",le=\"0.001\"}") == 0);
    assert_true(
        sample(text, "infergw_call_duration_seconds_bucket{pool=\"resnet\",le=\"0.0025\"}") == 1);
    assert_true(
        sample(text, "infergw_call_duration_seconds_bucket{pool=\"resnet\",le=\"0.025\"}") == 2);
    assert_true(sample(text, "infergw_call_duration_seconds_bucket{pool=\"resnet\",le=\"0.5\"}") ==
                3);
    assert_true(sample(text, "infergw_call_duration_seconds_bucket{pool=\"resnet\",le=\"10\"}") ==
                3);
    assert_true(sample(text, "infergw_call_duration_seconds_bucket{pool=\"resnet\",le=\"+Inf\"}") ==
                4);
    assert_true(sample(text, "infergw_call_duration_seconds_count{pool=\"resnet\"}") == 4);
    double sum = sample(text, "infergw_call_duration_seconds_sum{pool=\"resnet\"}");
    assert_true(sum > 30.4219 && sum < 30.4221);
    /* Every bucket is at least the one before it. */
    double prev = -1;
    for (int b = 0; b < GW_METRICS_NBUCKETS; b++) {
        char series[160];
        snprintf(series, sizeof(series),
                 "infergw_call_duration_seconds_bucket{pool=\"resnet\",le=\"%g\"}",
                 gw_metrics_buckets[b]);
        double v = sample(text, series);
        assert_true(v >= prev);
        prev = v;
    }

    assert_true(sample(text, "infergw_upstream_attempts_total{replica=\"10.0.0.1:80\",kind="
                             "\"primary\",outcome=\"OK\"}") == 2);
    assert_true(sample(text, "infergw_upstream_attempts_total{replica=\"10.0.0.1:80\",kind="
                             "\"primary\",outcome=\"CONNECT_FAILED\"}") == 1);
    assert_true(sample(text, "infergw_inflight_calls{replica=\"10.0.0.1:80\"}") == 4);
    assert_true(sample(text, "infergw_replica_reachable{replica=\"10.0.0.1:80\"}") == 1);
    assert_null(strstr(text, "infergw_replica_reachable{replica=\"10.0.0.9:80\"}"));
    assert_null(strstr(text, "infergw_inflight_calls{replica=\"10.0.0.9:80\"}"));
    assert_non_null(strstr(text, "infergw_upstream_attempts_total{replica=\"10.0.0.9:80\""));
    assert_true(sample(text, "infergw_client_connections") == 3);
    assert_true(sample(text, "infergw_config_version") == 42);
    assert_true(sample(text, "infergw_config_age_seconds") == 1.5);
    assert_true(sample(text, "infergw_redis_up") == 1);
    assert_true(sample(text, "infergw_config_errors_total") == 3);
    /* One HELP and one TYPE per family. */
    assert_non_null(strstr(text, "# TYPE infergw_calls_total counter\n"));
    assert_non_null(strstr(text, "# TYPE infergw_call_duration_seconds histogram\n"));
    assert_non_null(strstr(text, "# TYPE infergw_inflight_calls gauge\n"));
    const char *t = strstr(text, "# TYPE infergw_calls_total");
    assert_null(strstr(t + 1, "# TYPE infergw_calls_total"));
    free(text);

    /* Without a control plane there is no Redis to report on. */
    g.have_ctrl = 0;
    text = render(w, 2, &g);
    assert_true(sample(text, "infergw_redis_up") == -1);
    assert_true(sample(text, "infergw_config_errors_total") == -1);
    free(text);
    gw_metrics_free(w[0]);
    gw_metrics_free(w[1]);
    gw_routes_unref(rt);
}

static void test_label_escaping(void **state)
{
    char *buf = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&buf, &len);
    gw_metrics_write_label(f, "a\"b\\c\nd");
    fclose(f);
    assert_string_equal(buf, "a\\\"b\\\\c\\nd");
    free(buf);

    /* A replica address is written escaped in every series. */
    struct gw_metrics *m = gw_metrics_new();
    gw_metrics_attempt(gw_metrics_replica(m, "we\"ird\\host:1"), GW_KIND_PRIMARY, GW_GRPC_OK);
    struct gw_metrics_global g = {0};
    char *text = render(&m, 1, &g);
    assert_true(sample(text, "infergw_upstream_attempts_total{replica=\"we\\\"ird\\\\host:1\","
                             "kind=\"primary\",outcome=\"OK\"}") == 1);
    free(text);
    gw_metrics_free(m);
}

static void test_bounded_tables(void **state)
{
    struct gw_metrics *m = gw_metrics_new();
    char addr[32];
    struct gw_metrics_replica *first = gw_metrics_replica(m, "10.0.0.0:1");
    assert_ptr_equal(first, gw_metrics_replica(m, "10.0.0.0:1"));
    for (int i = 1; i < GW_METRICS_MAX_REPLICAS + 50; i++) {
        snprintf(addr, sizeof(addr), "10.0.%d.%d:1", i / 256, i % 256);
        assert_non_null(gw_metrics_replica(m, addr));
    }
    assert_int_equal(atomic_load(&m->nreplicas), GW_METRICS_MAX_REPLICAS + 1);
    assert_string_equal(gw_metrics_replica(m, "1.2.3.4:5")->name, "other");

    /* Many distinct unknown pools and methods: one series each. */
    const char *pools[] = {"p"};
    struct gw_routes *rt = routes_of(pools, 1);
    for (int i = 0; i < 1000; i++) {
        char name[32], path[32];
        snprintf(name, sizeof(name), "attacker%d", i);
        snprintf(path, sizeof(path), "/x.Y/M%d", i);
        gw_metrics_call_end(m, rt, name, strlen(name), path, GW_GRPC_NOT_FOUND, MS);
        gw_metrics_call_end(m, rt, "p", 1, path, 99, MS); /* bad code counts as UNKNOWN */
    }
    assert_int_equal(atomic_load(&m->npools), 2);
    struct gw_metrics_global g = {0};
    char *text = render(&m, 1, &g);
    assert_true(
        sample(text, "infergw_calls_total{pool=\"unknown\",method=\"other\",code=\"NOT_FOUND\"}") ==
        1000);
    assert_true(sample(text, "infergw_calls_total{pool=\"p\",method=\"other\",code=\"UNKNOWN\"}") ==
                1000);
    free(text);
    gw_routes_unref(rt);
    gw_metrics_free(m);
}

/* Authentication refusals by reason and rate-limited calls by tenant,
 * summed over workers; the tenant table is bounded like the others. */
static void test_auth_counters(void **state)
{
    struct gw_metrics *w[2] = {gw_metrics_new(), gw_metrics_new()};
    gw_metrics_auth_failure(w[0], 1); /* no_credentials */
    gw_metrics_auth_failure(w[1], 1);
    gw_metrics_auth_failure(w[1], GW_AUTH_REASON_MODEL_DENIED);
    gw_metrics_auth_failure(w[1], GW_METRICS_NREASONS); /* out of range: ignored */
    gw_metrics_auth_failure(NULL, 1);
    gw_metrics_ratelimited(w[0], "acme");
    gw_metrics_ratelimited(w[1], "acme");
    gw_metrics_ratelimited(w[1], "t\"x");
    for (int i = 0; i < GW_METRICS_MAX_TENANTS + 10; i++) {
        char name[32];
        snprintf(name, sizeof(name), "tenant%d", i);
        gw_metrics_ratelimited(w[0], name);
    }
    assert_int_equal(atomic_load(&w[0]->ntenants), GW_METRICS_MAX_TENANTS + 1);
    struct gw_metrics_global g = {0};
    char *text = render(w, 2, &g);
    assert_true(sample(text, "infergw_auth_failures_total{reason=\"no_credentials\"}") == 2);
    assert_true(sample(text, "infergw_auth_failures_total{reason=\"model_not_allowed\"}") == 1);
    assert_true(sample(text, "infergw_auth_failures_total{reason=\"expired\"}") == 0);
    assert_true(sample(text, "infergw_ratelimited_total{tenant=\"acme\"}") == 2);
    assert_true(sample(text, "infergw_ratelimited_total{tenant=\"t\\\"x\"}") == 1);
    assert_true(sample(text, "infergw_ratelimited_total{tenant=\"other\"}") == 11);
    assert_non_null(strstr(text, "# TYPE infergw_ratelimited_total counter\n"));
    assert_string_equal(gw_metrics_auth_reason_name(GW_AUTH_REASON_UNKNOWN_TENANT),
                        "unknown_tenant");
    assert_string_equal(gw_metrics_auth_reason_name(-1), "refused");
    free(text);
    gw_metrics_free(w[0]);
    gw_metrics_free(w[1]);
}

static void test_method_and_status(void **state)
{
    assert_int_equal(gw_metrics_method_of("/inference.GRPCInferenceService/ModelStreamInfer"),
                     GW_METHOD_MODEL_STREAM_INFER);
    assert_int_equal(gw_metrics_method_of("/inference.GRPCInferenceService/ModelInferX"),
                     GW_METHOD_OTHER);
    assert_int_equal(gw_metrics_method_of(NULL), GW_METHOD_OTHER);
    assert_int_equal(gw_metrics_method_of("/grpc.health.v1.Health/Watch"), GW_METHOD_HEALTH_WATCH);
    assert_int_equal(gw_metrics_method_of("/inference.GRPCInferenceService/"), GW_METHOD_OTHER);
    assert_int_equal(gw_metrics_method_of("/grpc.health.v1.Health/ModelInfer"), GW_METHOD_OTHER);
    struct gw_hdrlist tr, hd;
    gw_hdrlist_init(&tr);
    gw_hdrlist_init(&hd);
    assert_int_equal(gw_metrics_status_of(&tr, &hd), -1);
    gw_hdrlist_add(&hd, "grpc-status", 11, "5", 1);
    assert_int_equal(gw_metrics_status_of(&tr, &hd), 5);
    gw_hdrlist_add(&tr, "grpc-status", 11, "14", 2);
    assert_int_equal(gw_metrics_status_of(&tr, &hd), 14);
    gw_hdrlist_reset(&tr);
    gw_hdrlist_add(&tr, "grpc-status", 11, "x", 1);
    assert_int_equal(gw_metrics_status_of(&tr, &hd), -1);
    gw_hdrlist_reset(&tr);
    gw_hdrlist_reset(&hd);
}

/* A bound belongs to its own bucket (le = less or equal). */
static void test_bucket_bounds(void **state)
{
    const char *pools[] = {"p"};
    struct gw_routes *rt = routes_of(pools, 1);
    struct gw_metrics *m = gw_metrics_new();
    for (int b = 0; b < GW_METRICS_NBUCKETS; b++) {
        uint64_t ns = (uint64_t)(gw_metrics_buckets[b] * 1e9 + 0.5);
        gw_metrics_call_end(m, rt, "p", 1, NULL, GW_GRPC_OK, ns);
        gw_metrics_call_end(m, rt, "p", 1, NULL, GW_GRPC_OK, ns + 1);
    }
    struct gw_metrics_global g = {0};
    char *text = render(&m, 1, &g);
    for (int b = 0; b < GW_METRICS_NBUCKETS; b++) {
        char series[128];
        snprintf(series, sizeof(series),
                 "infergw_call_duration_seconds_bucket{pool=\"p\",le=\"%g\"}",
                 gw_metrics_buckets[b]);
        assert_true(sample(text, series) == 2 * b + 1);
    }
    assert_true(sample(text, "infergw_call_duration_seconds_count{pool=\"p\"}") ==
                2 * GW_METRICS_NBUCKETS);
    free(text);
    gw_metrics_free(m);
    gw_routes_unref(rt);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_merge_and_format), cmocka_unit_test(test_label_escaping),
        cmocka_unit_test(test_bounded_tables),   cmocka_unit_test(test_method_and_status),
        cmocka_unit_test(test_bucket_bounds),    cmocka_unit_test(test_auth_counters),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
