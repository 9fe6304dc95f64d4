/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/config.c: defaults, every flag's validation
 * (the refusal names the flag and value), pools, and address splitting. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/config.h"
#include "base/hostport.h"

static int parse(struct gw_config *cfg, char *err, size_t errlen, int argc, ...)
{
    char *argv[32];
    va_list ap;
    va_start(ap, argc);
    argv[0] = "infergw";
    for (int i = 1; i < argc; i++)
        argv[i] = va_arg(ap, char *);
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return gw_config_parse(cfg, argc, argv, err, errlen);
}

static void test_defaults_and_pools(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), 4, "--pool", "demo=127.0.0.1:1,[::1]:2",
                           "--pool=default=localhost:3"),
                     0);
    assert_string_equal(cfg.listen, "127.0.0.1:7100");
    assert_true(cfg.workers >= 1);
    assert_int_equal(cfg.upstream_conns, 2);
    assert_int_equal(cfg.max_message_bytes, 16u << 20);
    assert_int_equal(cfg.stream_window_bytes, 1u << 20);
    assert_int_equal(cfg.shutdown_grace_ms, 15000);
    assert_string_equal(cfg.route_header, "x-route-key");
    assert_int_equal(cfg.prefix_index_bytes, 64u << 20);
    assert_int_equal(cfg.npools, 2);
    assert_string_equal(cfg.pools[0].name, "demo");
    assert_int_equal(cfg.pools[0].naddrs, 2);
    assert_string_equal(cfg.pools[0].addrs[1], "[::1]:2");
    assert_string_equal(cfg.pools[1].name, "default");
    assert_string_equal(cfg.pools[1].addrs[0], "localhost:3");
    gw_config_free(&cfg);
}

static void test_numbers(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), 7, "--pool", "a=h:1", "--workers", "3",
                           "--max-message-bytes", "2048"),
                     0);
    assert_int_equal(cfg.workers, 3);
    assert_int_equal(cfg.max_message_bytes, 2048);
    gw_config_free(&cfg);

    const char *bad[][2] = {
        {"--workers", "0"},
        {"--workers", "x"},
        {"--workers", "-1"},
        {"--max-message-bytes", "10"},
        {"--stream-window-bytes", "100"},
        {"--upstream-conns", "65"},
        {"--shutdown-grace-ms", "1e3"},
        {"--connect-timeout-ms", ""},
        {"--log-level", "loud"},
        {"--route-header", "X-Key"},
        {"--auth", "jwt"},
        {"--listen", "nohost"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", bad[i][0], bad[i][1]),
                         -1);
        assert_non_null(strstr(err, bad[i][0]));
        gw_config_free(&cfg);
    }
}

static void test_bad_pools(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    const char *bad[] = {"demo",     "=h:1",         "demo=",     "demo=h",
                         "demo=h:0", "demo=h:1,h:1", "de mo=h:1", "demo=h:1,,h:2"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&cfg, err, sizeof(err), 3, "--pool", bad[i]), -1);
        assert_non_null(strstr(err, "--pool"));
        gw_config_free(&cfg);
    }
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", "--pool", "a=h:2"), -1);
    assert_non_null(strstr(err, "given twice"));
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 1), -1);
    assert_non_null(strstr(err, "no pool"));
    gw_config_free(&cfg);
}

static void test_unknown_and_help(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), 4, "--pool", "a=h:1", "--frobnicate"), -1);
    assert_non_null(strstr(err, "--frobnicate"));
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 4, "--pool", "a=h:1", "stray"), -1);
    assert_non_null(strstr(err, "stray"));
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 2, "--workers"), -1);
    assert_non_null(strstr(err, "needs a value"));
    gw_config_free(&cfg);
    FILE *saved = stdout;
    stdout = fopen("/dev/null", "w");
    int rc = parse(&cfg, err, sizeof(err), 2, "--help");
    fclose(stdout);
    stdout = saved;
    assert_int_equal(rc, 1);
    gw_config_free(&cfg);
}

static void test_health_flags(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    /* Defaults. */
    assert_int_equal(parse(&cfg, err, sizeof(err), 3, "--pool", "a=h:1"), 0);
    assert_int_equal(cfg.keepalive_ms, 1000);
    assert_int_equal(cfg.keepalive_timeout_ms, 1000);
    assert_int_equal(cfg.health_interval_ms, 1000);
    assert_int_equal(cfg.health_timeout_ms, 500);
    assert_int_equal(cfg.healthy_threshold, 2);
    assert_int_equal(cfg.unhealthy_threshold, 2);
    assert_int_equal(cfg.outlier_failures, 5);
    assert_int_equal(cfg.outlier_base_ms, 10000);
    assert_int_equal(cfg.outlier_max_ms, 300000);
    assert_int_equal(cfg.outlier_max_percent, 50);
    gw_config_free(&cfg);
    /* Every flag sets its field; 0 turns keepalive, checks and ejection off. */
    assert_int_equal(parse(&cfg, err, sizeof(err), 23, "--pool", "a=h:1", "--keepalive-ms", "0",
                           "--keepalive-timeout-ms", "300", "--health-interval-ms", "0",
                           "--health-timeout-ms", "200", "--healthy-threshold", "3",
                           "--unhealthy-threshold", "4", "--outlier-failures", "0",
                           "--outlier-base-ms", "500", "--outlier-max-ms", "500",
                           "--outlier-max-percent", "100"),
                     0);
    assert_int_equal(cfg.keepalive_ms, 0);
    assert_int_equal(cfg.keepalive_timeout_ms, 300);
    assert_int_equal(cfg.health_interval_ms, 0);
    assert_int_equal(cfg.health_timeout_ms, 200);
    assert_int_equal(cfg.healthy_threshold, 3);
    assert_int_equal(cfg.unhealthy_threshold, 4);
    assert_int_equal(cfg.outlier_failures, 0);
    assert_int_equal(cfg.outlier_base_ms, 500);
    assert_int_equal(cfg.outlier_max_ms, 500);
    assert_int_equal(cfg.outlier_max_percent, 100);
    gw_config_free(&cfg);
    /* The upstream limits: defaults, then set. */
    assert_int_equal(parse(&cfg, err, sizeof(err), 3, "--pool", "a=h:1"), 0);
    assert_int_equal(cfg.replay_buffer_total, 256u << 20);
    assert_int_equal(cfg.upstream_stream_id_limit, 2147483647u);
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 7, "--pool", "a=h:1", "--replay-buffer-total",
                           "1048576", "--upstream-stream-id-limit", "65"),
                     0);
    assert_int_equal(cfg.replay_buffer_total, 1048576);
    assert_int_equal(cfg.upstream_stream_id_limit, 65);
    gw_config_free(&cfg);
    /* Refusals name the flag, the value and the range. */
    static const char *const bad[][3] = {
        {"--keepalive-timeout-ms", "5", "--keepalive-timeout-ms '5': expected 10..600000"},
        {"--keepalive-ms", "-1", "--keepalive-ms '-1': expected 0..3600000"},
        {"--health-timeout-ms", "abc", "--health-timeout-ms 'abc': expected 10..600000"},
        {"--healthy-threshold", "0", "--healthy-threshold '0': expected 1..100"},
        {"--unhealthy-threshold", "101", "--unhealthy-threshold '101': expected 1..100"},
        {"--outlier-failures", "1e3", "--outlier-failures '1e3': expected 0..100000"},
        {"--outlier-base-ms", "0", "--outlier-base-ms '0': expected 1..86400000"},
        {"--outlier-max-percent", "101", "--outlier-max-percent '101': expected 0..100"},
        {"--replay-buffer-total", "-1", "--replay-buffer-total '-1': expected 0..4294967295"},
        {"--upstream-stream-id-limit", "32",
         "--upstream-stream-id-limit '32': expected 33..2147483647"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", bad[i][0], bad[i][1]),
                         -1);
        assert_string_equal(err, bad[i][2]);
        gw_config_free(&cfg);
    }
    /* Cross-flag rules. */
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", "--outlier-max-ms", "100"),
                     -1);
    assert_non_null(strstr(err, "--outlier-max-ms 100 is below --outlier-base-ms 10000"));
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 7, "--pool", "a=h:1", "--health-interval-ms",
                           "200", "--health-timeout-ms", "300"),
                     -1);
    assert_non_null(strstr(err, "--health-timeout-ms 300 is above --health-interval-ms 200"));
    gw_config_free(&cfg);
    /* With checks off, the timeout is not compared. */
    assert_int_equal(parse(&cfg, err, sizeof(err), 7, "--pool", "a=h:1", "--health-interval-ms",
                           "0", "--health-timeout-ms", "3000"),
                     0);
    gw_config_free(&cfg);
}

static void test_edge_limit_flags(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), 3, "--pool", "a=h:1"), 0);
    assert_int_equal(cfg.max_header_list_bytes, 65536);
    assert_int_equal(cfg.max_header_count, 256);
    assert_int_equal(cfg.max_conns, 10000);
    assert_int_equal(cfg.max_conns_per_worker, 0);
    assert_int_equal(cfg.preface_timeout_ms, 10000);
    assert_int_equal(cfg.idle_timeout_ms, 300000);
    assert_int_equal(cfg.stream_idle_timeout_ms, 300000);
    assert_int_equal(cfg.max_deadline_ms, 3600000);
    assert_int_equal(cfg.max_pushback_ms, 30000);
    assert_int_equal(cfg.max_conn_buffer_bytes, 64u << 20);
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 19, "--pool", "a=h:1", "--max-header-count",
                           "16", "--max-conns", "5", "--max-conns-per-worker", "2",
                           "--preface-timeout-ms", "100", "--idle-timeout-ms", "0",
                           "--stream-idle-timeout-ms", "0", "--max-deadline-ms", "0",
                           "--max-pushback-ms", "0"),
                     0);
    assert_int_equal(cfg.max_header_count, 16);
    assert_int_equal(cfg.max_conns, 5);
    assert_int_equal(cfg.max_conns_per_worker, 2);
    assert_int_equal(cfg.preface_timeout_ms, 100);
    assert_int_equal(cfg.idle_timeout_ms, 0);
    assert_int_equal(cfg.stream_idle_timeout_ms, 0);
    assert_int_equal(cfg.max_deadline_ms, 0);
    assert_int_equal(cfg.max_pushback_ms, 0);
    gw_config_free(&cfg);
    static const char *const bad[][3] = {
        {"--max-header-count", "15", "--max-header-count '15': expected 16..65536"},
        {"--max-conns", "0", "--max-conns '0': expected 1..10000000"},
        {"--preface-timeout-ms", "0", "--preface-timeout-ms '0': expected 100..600000"},
        {"--idle-timeout-ms", "x", "--idle-timeout-ms 'x': expected 0..86400000"},
        {"--max-deadline-ms", "-5", "--max-deadline-ms '-5': expected 0..604800000"},
        {"--max-pushback-ms", "3600001", "--max-pushback-ms '3600001': expected 0..3600000"},
        {"--max-conn-buffer-bytes", "65535",
         "--max-conn-buffer-bytes '65535': expected 65536..4294967295"},
        {"--prefix-index-bytes", "1048575",
         "--prefix-index-bytes '1048575': expected 1048576..4294967295"},
        {"--prefix-index-bytes", "4294967296",
         "--prefix-index-bytes '4294967296': expected 1048576..4294967295"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", bad[i][0], bad[i][1]),
                         -1);
        assert_string_equal(err, bad[i][2]);
        gw_config_free(&cfg);
    }
}

static void test_tls_flags(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), 3, "--pool", "a=h:1"), 0);
    assert_null(cfg.tls_cert);
    assert_null(cfg.upstream_tls_ca);
    assert_int_equal(cfg.tls_handshake_timeout_ms, 10000);
    gw_config_free(&cfg);

    assert_int_equal(parse(&cfg, err, sizeof(err), 15, "--pool", "a=h:1", "--tls-cert", "c.pem",
                           "--tls-key", "k.pem", "--tls-client-ca", "ca.pem",
                           "--tls-handshake-timeout-ms", "500", "--upstream-tls-ca", "up.pem",
                           "--upstream-tls-cert=uc.pem", "--upstream-tls-key=uk.pem"),
                     0);
    assert_string_equal(cfg.tls_cert, "c.pem");
    assert_string_equal(cfg.tls_key, "k.pem");
    assert_string_equal(cfg.tls_client_ca, "ca.pem");
    assert_int_equal(cfg.tls_handshake_timeout_ms, 500);
    assert_string_equal(cfg.upstream_tls_ca, "up.pem");
    assert_string_equal(cfg.upstream_tls_cert, "uc.pem");
    assert_string_equal(cfg.upstream_tls_key, "uk.pem");
    gw_config_free(&cfg);
    assert_null(cfg.tls_cert);

    struct {
        int argc;
        const char *a[4];
        const char *want;
    } bad[] = {
        {2, {"--tls-cert", "c.pem"}, "--tls-cert given without --tls-key"},
        {2, {"--tls-key", "k.pem"}, "--tls-key given without --tls-cert"},
        {2, {"--tls-client-ca", "ca.pem"}, "--tls-client-ca needs --tls-cert"},
        {2, {"--tls-cert", ""}, "--tls-cert needs a file name"},
        {2, {"--tls-handshake-timeout-ms", "5"}, "--tls-handshake-timeout-ms '5'"},
        {4, {"--upstream-tls-ca", "a", "--upstream-tls-cert", "c"}, "without --upstream-tls-key"},
        {4, {"--upstream-tls-cert", "c", "--upstream-tls-key", "k"}, "needs --upstream-tls-ca"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        int rc = bad[i].argc == 2
                     ? parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", bad[i].a[0], bad[i].a[1])
                     : parse(&cfg, err, sizeof(err), 7, "--pool", "a=h:1", bad[i].a[0], bad[i].a[1],
                             bad[i].a[2], bad[i].a[3]);
        assert_int_equal(rc, -1);
        if (!strstr(err, bad[i].want))
            fail_msg("case %zu: '%s' does not say '%s'", i, err, bad[i].want);
        gw_config_free(&cfg);
    }
}

static void test_split_addr(void **state)
{
    (void)state;
    char host[64];
    uint16_t port;
    assert_int_equal(gw_hostport_split("127.0.0.1:7100", host, sizeof(host), &port), 0);
    assert_string_equal(host, "127.0.0.1");
    assert_int_equal(port, 7100);
    assert_int_equal(gw_hostport_split("[::1]:80", host, sizeof(host), &port), 0);
    assert_string_equal(host, "::1");
    assert_int_equal(port, 80);
    assert_int_equal(gw_hostport_split("h:65536", host, sizeof(host), &port), -1);
    assert_int_equal(gw_hostport_split(":80", host, sizeof(host), &port), -1);
    assert_int_equal(gw_hostport_split("[::1]80", host, sizeof(host), &port), -1);
    assert_int_equal(gw_hostport_split("h:8x", host, sizeof(host), &port), -1);
}

static void test_tenant_files(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    assert_int_equal(parse(&cfg, err, sizeof(err), 7, "--pool", "a=h:1", "--tenants", "t.conf",
                           "--api-keys=k.conf", "--auth=none"),
                     0);
    assert_string_equal(cfg.tenants_file, "t.conf");
    assert_string_equal(cfg.api_keys_file, "k.conf");
    gw_config_free(&cfg);
    /* Keys need their tenants; files and Redis do not mix. */
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", "--api-keys", "k.conf"),
                     -1);
    assert_non_null(strstr(err, "--tenants"));
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--redis", "redis://127.0.0.1:6379",
                           "--tenants", "t.conf"),
                     -1);
    assert_non_null(strstr(err, "--redis"));
    gw_config_free(&cfg);
    assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", "--tenants", ""), -1);
    assert_non_null(strstr(err, "--tenants"));
    gw_config_free(&cfg);
}

static void test_auth_flags(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256];
    /* Authentication is on by default, with the documented JWT defaults. */
    assert_int_equal(parse(&cfg, err, sizeof(err), 3, "--pool", "a=h:1"), 0);
    assert_int_equal(cfg.auth.none, 0);
    assert_string_equal(cfg.auth.jwt_tenant_claim, "sub");
    assert_int_equal(cfg.auth.jwt_leeway_s, 30);
    assert_int_equal(cfg.auth.jwt_cache_size, 4096);
    assert_int_equal(cfg.auth.nplugins + cfg.auth.njwt_keys, 0);
    gw_config_free(&cfg);

    char *argv[] = {"infergw",
                    "--pool",
                    "a=h:1",
                    "--auth=none",
                    "--auth",
                    "on",
                    "--plugin",
                    "/x/p.so:k=v,w",
                    "--plugin=/y/q.so",
                    "--jwt-keys",
                    "/k/a.pem",
                    "--jwt-keys",
                    "/k/b.json",
                    "--jwt-issuer",
                    "https://iss",
                    "--jwt-audience",
                    "aud",
                    "--jwt-tenant-claim",
                    "org",
                    "--jwt-leeway-s",
                    "0",
                    "--jwt-cache-size",
                    "0",
                    "--mtls-tenant-from",
                    "san-uri",
                    NULL};
    assert_int_equal(gw_config_parse(&cfg, 25, argv, err, sizeof(err)), 0);
    assert_int_equal(cfg.auth.none, 0); /* the last --auth wins */
    assert_int_equal(cfg.auth.nplugins, 2);
    assert_string_equal(cfg.auth.plugins[0], "/x/p.so:k=v,w");
    assert_string_equal(cfg.auth.plugins[1], "/y/q.so");
    assert_int_equal(cfg.auth.njwt_keys, 2);
    assert_string_equal(cfg.auth.jwt_keys[1], "/k/b.json");
    assert_string_equal(cfg.auth.jwt_issuer, "https://iss");
    assert_string_equal(cfg.auth.jwt_audience, "aud");
    assert_string_equal(cfg.auth.jwt_tenant_claim, "org");
    assert_int_equal(cfg.auth.jwt_leeway_s, 0);
    assert_int_equal(cfg.auth.jwt_cache_size, 0);
    assert_string_equal(cfg.auth.mtls_tenant_from, "san-uri");
    gw_config_free(&cfg);

    assert_int_equal(parse(&cfg, err, sizeof(err), 4, "--pool", "a=h:1", "--auth=none"), 0);
    assert_int_equal(cfg.auth.none, 1);
    gw_config_free(&cfg);

    const char *bad[][2] = {
        {"--auth", "maybe"},           {"--plugin", ""},
        {"--plugin", ":args"},         {"--jwt-keys", "a,b.pem"},
        {"--jwt-issuer", "a,b"},       {"--jwt-audience", ""},
        {"--jwt-tenant-claim", "a=b"}, {"--jwt-leeway-s", "3601"},
        {"--jwt-cache-size", "-1"},    {"--mtls-tenant-from", "san-ip"},
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(&cfg, err, sizeof(err), 5, "--pool", "a=h:1", bad[i][0], bad[i][1]),
                         -1);
        assert_non_null(strstr(err, bad[i][0]));
        gw_config_free(&cfg);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_pools), cmocka_unit_test(test_numbers),
        cmocka_unit_test(test_bad_pools),          cmocka_unit_test(test_unknown_and_help),
        cmocka_unit_test(test_health_flags),       cmocka_unit_test(test_split_addr),
        cmocka_unit_test(test_tenant_files),       cmocka_unit_test(test_auth_flags),
        cmocka_unit_test(test_tls_flags),          cmocka_unit_test(test_edge_limit_flags),
    };
    return cmocka_run_group_tests_name("config", tests, NULL, NULL);
}
