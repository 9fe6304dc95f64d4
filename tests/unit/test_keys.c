/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/control/keys.c: every builder's output equals
 * the key spelled in docs/redis-keys.md (default prefix and another one),
 * the Lua key parts put together make the same keys, SCAN patterns escape
 * the prefix's glob characters, suffixes are found only under their
 * family, and a key that does not fit is refused. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "control/keys.h"

#define P "infergw:"

static char buf[GW_KEY_LEN];

/* The documented keys (docs/redis-keys.md), with the default prefix. */
static void test_documented_keys(void **state)
{
    (void)state;
    assert_int_equal(gw_key_pools(buf, sizeof(buf), P), 0);
    assert_string_equal(buf, "infergw:pools");
    assert_int_equal(gw_key_pool_ring(buf, sizeof(buf), P, "demo"), 0);
    assert_string_equal(buf, "infergw:pool:demo:ring");
    assert_int_equal(gw_key_pool_conf(buf, sizeof(buf), P, "demo"), 0);
    assert_string_equal(buf, "infergw:pool:demo:conf");
    assert_int_equal(gw_key_pool_kv(buf, sizeof(buf), P, "demo"), 0);
    assert_string_equal(buf, "infergw:pool:demo:kv");
    assert_int_equal(gw_key_conf(buf, sizeof(buf), P), 0);
    assert_string_equal(buf, "infergw:conf");
    assert_int_equal(gw_key_replica(buf, sizeof(buf), P, "127.0.0.1:7201"), 0);
    assert_string_equal(buf, "infergw:replica:127.0.0.1:7201");
    assert_int_equal(gw_key_version(buf, sizeof(buf), P), 0);
    assert_string_equal(buf, "infergw:version");
    assert_int_equal(gw_key_changed(buf, sizeof(buf), P), 0);
    assert_string_equal(buf, "infergw:changed");
    assert_int_equal(gw_key_tenant(buf, sizeof(buf), P, "acme"), 0);
    assert_string_equal(buf, "infergw:tenant:acme");
    assert_int_equal(gw_key_apikey(buf, sizeof(buf), P, "3f2a9c1b"), 0);
    assert_string_equal(buf, "infergw:apikey:3f2a9c1b");
    assert_int_equal(gw_key_lease(buf, sizeof(buf), P, "[::1]:7201"), 0);
    assert_string_equal(buf, "infergw:lease:[::1]:7201");
    assert_int_equal(gw_key_leased(buf, sizeof(buf), P), 0);
    assert_string_equal(buf, "infergw:leased");
    assert_int_equal(gw_key_lease_gone(buf, sizeof(buf), P), 0);
    assert_string_equal(buf, "infergw:lease_gone");
    assert_int_equal(gw_key_gateway(buf, sizeof(buf), P, "gw1:8443"), 0);
    assert_string_equal(buf, "infergw:gateway:gw1:8443");
}

/* --redis-prefix: the prefix is taken as given, any prefix. */
static void test_other_prefix(void **state)
{
    (void)state;
    assert_int_equal(gw_key_pool_ring(buf, sizeof(buf), "t1/", "m"), 0);
    assert_string_equal(buf, "t1/pool:m:ring");
    assert_int_equal(gw_key_version(buf, sizeof(buf), ""), 0);
    assert_string_equal(buf, "version");
}

/* The parts handed to the Lua scripts make the builders' keys. */
static void test_lua_parts(void **state)
{
    (void)state;
    char head[64], whole[128], ring[128];

    assert_int_equal(gw_key_pool_ring_head(head, sizeof(head), P), 0);
    assert_string_equal(head, "infergw:pool:");
    assert_string_equal(GW_KEY_POOL_RING_TAIL, ":ring");
    snprintf(whole, sizeof(whole), "%s%s%s", head, "demo", GW_KEY_POOL_RING_TAIL);
    gw_key_pool_ring(ring, sizeof(ring), P, "demo");
    assert_string_equal(whole, ring);
    assert_int_equal(gw_key_lease_head(head, sizeof(head), P), 0);
    assert_string_equal(head, "infergw:lease:");
    snprintf(whole, sizeof(whole), "%s%s", head, "h:1");
    gw_key_lease(ring, sizeof(ring), P, "h:1");
    assert_string_equal(whole, ring);
}

static void test_scan(void **state)
{
    (void)state;
    char b[32];

    assert_int_equal(gw_key_scan(b, sizeof(b), P, GW_KEY_TENANT, ""), 0);
    assert_string_equal(b, "infergw:tenant:*");
    assert_int_equal(gw_key_scan(b, sizeof(b), P, GW_KEY_APIKEY, "3f2a"), 0);
    assert_string_equal(b, "infergw:apikey:3f2a*");
    assert_int_equal(gw_key_scan(b, sizeof(b), P, GW_KEY_GATEWAY, ""), 0);
    assert_string_equal(b, "infergw:gateway:*");
    assert_int_equal(gw_key_scan(b, sizeof(b), P, GW_KEY_REPLICA, ""), 0);
    assert_string_equal(b, "infergw:replica:*");
    /* Glob characters of the prefix match only themselves. */
    assert_int_equal(gw_key_scan(b, sizeof(b), "a*b?[c]\\:", GW_KEY_APIKEY, ""), 0);
    assert_string_equal(b, "a\\*b\\?\\[c\\]\\\\:apikey:*");
    assert_int_equal(gw_key_scan(b, 8, P, GW_KEY_TENANT, ""), -1);
    assert_int_equal(gw_key_scan(b, 17, P, GW_KEY_TENANT, ""), 0);
    assert_int_equal(gw_key_scan(b, 16, P, GW_KEY_TENANT, ""), -1);
}

static void test_suffix(void **state)
{
    (void)state;
    assert_string_equal(gw_key_suffix("infergw:tenant:acme", P, GW_KEY_TENANT), "acme");
    assert_string_equal(gw_key_suffix("infergw:apikey:ab", P, GW_KEY_APIKEY), "ab");
    assert_string_equal(gw_key_suffix("infergw:gateway:g:1", P, GW_KEY_GATEWAY), "g:1");
    assert_string_equal(gw_key_suffix("infergw:replica:h:1", P, GW_KEY_REPLICA), "h:1");
    assert_string_equal(gw_key_suffix("infergw:tenant:", P, GW_KEY_TENANT), "");
    assert_null(gw_key_suffix("infergw:tenant:acme", P, GW_KEY_APIKEY));
    assert_null(gw_key_suffix("other:tenant:acme", P, GW_KEY_TENANT));
    assert_null(gw_key_suffix("infergw:", P, GW_KEY_TENANT));
}

static void test_does_not_fit(void **state)
{
    (void)state;
    char b[32];
    char longp[40];

    /* Exactly full (31 bytes + NUL) fits; one more does not. */
    assert_int_equal(gw_key_tenant(b, sizeof(b), "p:", "abcdefghijklmnopqrstuv"), 0);
    assert_string_equal(b, "p:tenant:abcdefghijklmnopqrstuv");
    assert_int_equal(gw_key_tenant(b, sizeof(b), "p:", "abcdefghijklmnopqrstuvw"), -1);
    memset(longp, 'x', 39);
    longp[39] = '\0';
    assert_int_equal(gw_key_version(b, sizeof(b), longp), -1);
    assert_string_equal(b, "");
    assert_int_equal(gw_key_pools(b, 0, P), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_documented_keys), cmocka_unit_test(test_other_prefix),
        cmocka_unit_test(test_lua_parts),       cmocka_unit_test(test_scan),
        cmocka_unit_test(test_suffix),          cmocka_unit_test(test_does_not_fit),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
