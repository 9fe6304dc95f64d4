/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests of the status page's pure parts (obs/status.c): latency
 * quantiles from the call duration histogram, the SLO objective, and which
 * URLs the page owns. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "obs/metrics.h"
#include "obs/status.h"

static void test_quantile_empty(void **state)
{
    uint64_t c[GW_METRICS_NBUCKETS + 1] = {0};
    (void)state;
    assert_true(gw_status_quantile(c, 0.5) == 0.0);
    assert_true(gw_status_quantile(c, 0.99) == 0.0);
}

static void test_quantile_interpolates(void **state)
{
    uint64_t c[GW_METRICS_NBUCKETS + 1] = {0};
    (void)state;
    /* 100 calls in (5 ms, 10 ms]: p50 halfway, p99 near the top. */
    c[4] = 100;
    assert_true(gw_status_quantile(c, 0.5) > 0.0075 - 1e-12);
    assert_true(gw_status_quantile(c, 0.5) < 0.0075 + 1e-12);
    assert_true(gw_status_quantile(c, 0.99) > 0.00995 - 1e-12);
    assert_true(gw_status_quantile(c, 0.99) < 0.00995 + 1e-12);
    /* 90 fast calls (<= 0.5 ms) and 10 slow ones in (0.5 s, 1 s]. */
    c[4] = 0;
    c[0] = 90;
    c[10] = 10;
    assert_true(gw_status_quantile(c, 0.5) < 0.0005 + 1e-12);
    assert_true(gw_status_quantile(c, 0.99) > 0.5 && gw_status_quantile(c, 0.99) <= 1.0);
}

static void test_quantile_overflow_bucket(void **state)
{
    uint64_t c[GW_METRICS_NBUCKETS + 1] = {0};
    (void)state;
    c[GW_METRICS_NBUCKETS] = 5; /* +Inf: the last finite bound */
    assert_true(gw_status_quantile(c, 0.99) == gw_metrics_buckets[GW_METRICS_NBUCKETS - 1]);
}

static void test_slo_and_urls(void **state)
{
    (void)state;
    assert_true(gw_status_slo_target(NULL) == 0.999);
    assert_true(gw_status_owns("/"));
    assert_true(gw_status_owns("/index.html"));
    assert_true(gw_status_owns("/status.json"));
    assert_true(gw_status_owns("/status.css"));
    assert_true(gw_status_owns("/status.js"));
    assert_false(gw_status_owns("/metrics"));
    assert_false(gw_status_owns("/status.json/"));
    assert_false(gw_status_owns("/../status.js"));
    /* The embedded page names its files and nothing outside. */
    assert_non_null(strstr(gw_status_index_html, "/status.js"));
    assert_non_null(strstr(gw_status_index_html, "/status.css"));
    assert_null(strstr(gw_status_index_html, "https://"));
    assert_non_null(strstr(gw_status_status_js, "/status.json"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_quantile_empty),
        cmocka_unit_test(test_quantile_interpolates),
        cmocka_unit_test(test_quantile_overflow_bucket),
        cmocka_unit_test(test_slo_and_urls),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
