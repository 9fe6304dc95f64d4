/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/control/redisconn.c: URL parsing (schemes, passwords
 * with escapes, db, sentinel lists, IPv6 in brackets, every refusal leaving
 * the output untouched and never quoting the password), the masked URL
 * format, and a connection refused on loopback (keys: test_keys.c). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>
#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <cmocka.h>

#include "control/redisconn.h"

static int parse(const char *url, struct gw_redis_url *u, char *err, size_t errlen)
{
    memset(u, 0, sizeof(*u));
    err[0] = '\0';
    return gw_redis_url_parse(url, u, err, errlen);
}

static void test_plain(void **state)
{
    (void)state;
    struct gw_redis_url u;
    char err[512];

    assert_int_equal(parse("redis://127.0.0.1:6379", &u, err, sizeof(err)), 0);
    assert_int_equal(u.sentinel, 0);
    assert_int_equal(u.nhosts, 1);
    assert_string_equal(u.hosts[0].host, "127.0.0.1");
    assert_int_equal(u.hosts[0].port, 6379);
    assert_string_equal(u.password, "");
    assert_string_equal(u.username, "");
    assert_int_equal(u.db, 0);

    assert_int_equal(parse("redis://redis-1.example.com:7000/3", &u, err, sizeof(err)), 0);
    assert_string_equal(u.hosts[0].host, "redis-1.example.com");
    assert_int_equal(u.hosts[0].port, 7000);
    assert_int_equal(u.db, 3);

    /* Port defaults to 6379; a bare trailing slash is db 0. */
    assert_int_equal(parse("redis://localhost/", &u, err, sizeof(err)), 0);
    assert_string_equal(u.hosts[0].host, "localhost");
    assert_int_equal(u.hosts[0].port, 6379);
    assert_int_equal(u.db, 0);

    assert_int_equal(parse("redis://h:1/2147483647", &u, err, sizeof(err)), 0);
    assert_int_equal(u.db, 2147483647);
}

static void test_ipv6(void **state)
{
    (void)state;
    struct gw_redis_url u;
    char err[512];

    assert_int_equal(parse("redis://[::1]:6380/1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.hosts[0].host, "::1");
    assert_int_equal(u.hosts[0].port, 6380);
    assert_int_equal(u.db, 1);

    assert_int_equal(parse("redis://[fe80::1:2]", &u, err, sizeof(err)), 0);
    assert_string_equal(u.hosts[0].host, "fe80::1:2");
    assert_int_equal(u.hosts[0].port, 6379);

    assert_int_equal(parse("sentinel://[::1]:26379,127.0.0.1/m", &u, err, sizeof(err)), 0);
    assert_int_equal(u.nhosts, 2);
    assert_string_equal(u.hosts[0].host, "::1");
    assert_int_equal(u.hosts[1].port, 26379);

    /* Unbracketed IPv6 is ambiguous: refused with a hint. */
    assert_int_equal(parse("redis://::1:6379", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "brackets"));
    assert_int_equal(parse("redis://[::1:6379", &u, err, sizeof(err)), -1);
    assert_int_equal(parse("redis://[]:6379", &u, err, sizeof(err)), -1);
    assert_int_equal(parse("redis://[1.2.3.4]:6379", &u, err, sizeof(err)), -1);
    assert_int_equal(parse("redis://[::1]x:6379", &u, err, sizeof(err)), -1);
    assert_int_equal(parse("redis://[::g]:6379", &u, err, sizeof(err)), -1);
}

static void test_passwords(void **state)
{
    (void)state;
    struct gw_redis_url u;
    char err[512];

    assert_int_equal(parse("redis://:s3cret@10.0.0.1:6379/2", &u, err, sizeof(err)), 0);
    assert_string_equal(u.password, "s3cret");
    assert_string_equal(u.username, "");
    assert_string_equal(u.hosts[0].host, "10.0.0.1");
    assert_int_equal(u.db, 2);

    assert_int_equal(parse("redis://ops:pw@h:1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.username, "ops");
    assert_string_equal(u.password, "pw");

    /* Escapes; ':' after the first belongs to the password; a raw '@' too
     * (the user info ends at the last '@'). */
    assert_int_equal(parse("redis://:a%2Fb%40c%25d:e@h:1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.password, "a/b@c%d:e");
    assert_int_equal(parse("redis://:p@ss@h:1", &u, err, sizeof(err)), 0);
    assert_string_equal(u.password, "p@ss");
    assert_string_equal(u.hosts[0].host, "h");

    /* Refusals never quote the password. */
    const char *bad[] = {
        "redis://topsecret@h:1",     /* no ':' */
        "redis://:@h:1",             /* empty */
        "redis://:top%2secret@h:1",  /* bad escape */
        "redis://:topsecret%@h:1",   /* truncated escape */
        "redis://:top%00secret@h:1", /* NUL */
        "redis://:top secret@h:1",   /* space */
    };
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        assert_int_equal(parse(bad[i], &u, err, sizeof(err)), -1);
        assert_null(strstr(err, "secret"));
        assert_non_null(strstr(err, "expected redis://"));
    }

    char longpw[400] = "redis://:";
    memset(longpw + 9, 'x', 300);
    strcpy(longpw + 309, "@h:1");
    assert_int_equal(parse(longpw, &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "password"));
}

static void test_sentinel(void **state)
{
    (void)state;
    struct gw_redis_url u;
    char err[512];

    assert_int_equal(parse("sentinel://:pw@s1:26379,s2:26380,s3/mymaster/4", &u, err, sizeof(err)),
                     0);
    assert_int_equal(u.sentinel, 1);
    assert_int_equal(u.nhosts, 3);
    assert_string_equal(u.hosts[0].host, "s1");
    assert_int_equal(u.hosts[0].port, 26379);
    assert_string_equal(u.hosts[1].host, "s2");
    assert_int_equal(u.hosts[1].port, 26380);
    assert_string_equal(u.hosts[2].host, "s3");
    assert_int_equal(u.hosts[2].port, GW_REDIS_DEFAULT_SENTINEL_PORT);
    assert_string_equal(u.master, "mymaster");
    assert_string_equal(u.password, "pw");
    assert_int_equal(u.db, 4);

    assert_int_equal(parse("sentinel://127.0.0.1:26379/m", &u, err, sizeof(err)), 0);
    assert_int_equal(u.nhosts, 1);
    assert_string_equal(u.master, "m");
    assert_int_equal(u.db, 0);

    assert_int_equal(parse("sentinel://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8/m", &u, err, sizeof(err)),
                     0);
    assert_int_equal(u.nhosts, GW_REDIS_MAX_HOSTS);
    assert_int_equal(
        parse("sentinel://a:1,b:2,c:3,d:4,e:5,f:6,g:7,h:8,i:9/m", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "more than 8"));

    assert_int_equal(parse("sentinel://s1:26379", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "master"));
    assert_int_equal(parse("sentinel://s1:26379/", &u, err, sizeof(err)), -1);
    assert_int_equal(parse("sentinel://s1:26379//0", &u, err, sizeof(err)), -1);
    assert_int_equal(parse("sentinel://s1:26379,/m", &u, err, sizeof(err)), -1);
    assert_int_equal(parse("sentinel://s1:26379/m/x", &u, err, sizeof(err)), -1);
    char longm[200] = "sentinel://s:1/";
    memset(longm + 15, 'm', 150);
    longm[165] = '\0';
    assert_int_equal(parse(longm, &u, err, sizeof(err)), -1);

    /* redis:// takes exactly one host. */
    assert_int_equal(parse("redis://a:1,b:2", &u, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "sentinel://"));
}

static void test_bad_urls_leave_output(void **state)
{
    (void)state;
    const char *bad[] = {
        "",
        "127.0.0.1:6379",
        "http://h:1",
        "rediss://h:1",
        "redis://",
        "redis://:6379",
        "redis://h:",
        "redis://h:0",
        "redis://h:65536",
        "redis://h:-1",
        "redis://h:+1",
        "redis://h:6379x",
        "redis://h:6379/x",
        "redis://h:6379/-1",
        "redis://h:6379/2147483648",
        "redis://h:6379/1?timeout=1",
        "redis://h:6379#frag",
        "redis://h_ok but space:1",
        "redis://h/a:1",
        "redis://h\x01:1",
    };
    char err[512];
    struct gw_redis_url u;

    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        memset(&u, 0x5a, sizeof(u));
        err[0] = '\0';
        assert_int_equal(gw_redis_url_parse(bad[i], &u, err, sizeof(err)), -1);
        assert_true(err[0] != '\0');
        /* untouched */
        for (size_t b = 0; b < sizeof(u); b++)
            assert_int_equal(((unsigned char *)&u)[b], 0x5a);
    }
    assert_int_equal(gw_redis_url_parse(NULL, &u, err, sizeof(err)), -1);

    /* A host name that does not fit. */
    char longh[400] = "redis://";
    memset(longh + 8, 'h', 300);
    strcpy(longh + 308, ":1");
    assert_int_equal(gw_redis_url_parse(longh, &u, err, sizeof(err)), -1);
}

static void test_format_masks_password(void **state)
{
    (void)state;
    struct gw_redis_url u;
    char err[512], out[512];

    assert_int_equal(parse("redis://:hunter2@[::1]:7000/5", &u, err, sizeof(err)), 0);
    assert_int_equal(gw_redis_url_format(&u, out, sizeof(out)), 0);
    assert_string_equal(out, "redis://:***@[::1]:7000/5");

    assert_int_equal(parse("sentinel://ops:pw@a:1,b/m", &u, err, sizeof(err)), 0);
    assert_int_equal(gw_redis_url_format(&u, out, sizeof(out)), 0);
    assert_string_equal(out, "sentinel://ops:***@a:1,b:26379/m/0");

    assert_int_equal(parse("redis://h", &u, err, sizeof(err)), 0);
    assert_int_equal(gw_redis_url_format(&u, out, sizeof(out)), 0);
    assert_string_equal(out, "redis://h:6379/0");
    assert_int_equal(gw_redis_url_format(&u, out, 10), -1);
    assert_int_equal(strlen(out), 9);
    assert_int_equal(gw_redis_url_format(&u, out, 16), -1);
}

/* A loopback port nobody listens on: bind one, read its number, close it. */
static uint16_t closed_port(void)
{
    struct sockaddr_in sa = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof(sa);
    int fd = socket(AF_INET, SOCK_STREAM, 0);

    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&sa, sizeof(sa)), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&sa, &len), 0);
    close(fd);
    return ntohs(sa.sin_port);
}

static void test_connect_refused(void **state)
{
    (void)state;
    struct gw_redis_url u;
    char err[1024], url[128], addr[64] = "untouched";
    uint16_t port = closed_port();

    snprintf(url, sizeof(url), "redis://:topsecret@127.0.0.1:%u", port);
    assert_int_equal(parse(url, &u, err, sizeof(err)), 0);
    assert_null(gw_redis_connect(&u, 500, addr, sizeof(addr), err, sizeof(err)));
    assert_non_null(strstr(err, "127.0.0.1:"));
    assert_null(strstr(err, "topsecret"));
    assert_string_equal(addr, "untouched");

    /* Sentinel: every sentinel is tried and each reason is reported. */
    snprintf(url, sizeof(url), "sentinel://127.0.0.1:%u,[::1]:%u/mymaster", port, port);
    assert_int_equal(parse(url, &u, err, sizeof(err)), 0);
    assert_null(gw_redis_connect(&u, 500, NULL, 0, err, sizeof(err)));
    assert_non_null(strstr(err, "mymaster"));
    assert_non_null(strstr(err, "127.0.0.1:"));
    assert_non_null(strstr(err, "[::1]:"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_plain),
        cmocka_unit_test(test_ipv6),
        cmocka_unit_test(test_passwords),
        cmocka_unit_test(test_sentinel),
        cmocka_unit_test(test_bad_urls_leave_output),
        cmocka_unit_test(test_format_masks_password),
        cmocka_unit_test(test_connect_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
