/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/names.c: the one pool-name rule (1..255
 * bytes of printable ASCII without spaces or commas) at its edges, and the
 * printable-word check with its length bound and refused characters. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <string.h>

#include <cmocka.h>

#include "base/names.h"

static int pool_ok(const char *s)
{
    return gw_pool_name_valid(s, strlen(s));
}

static void test_pool_names_accepted(void **state)
{
    (void)state;
    assert_true(pool_ok("demo"));
    assert_true(pool_ok("a"));
    assert_true(pool_ok("resnet-50_v2.onnx"));
    assert_true(pool_ok("org/model:1"));
    /* '=' and '*' are printable: a pool may hold them (--pool ends its
     * name at the first '='; tenants' lists refuse '*' themselves). */
    assert_true(pool_ok("a=b"));
    assert_true(pool_ok("a*b"));
    assert_true(pool_ok("!~"));
    char max[GW_POOL_NAME_MAX + 1];
    memset(max, 'x', GW_POOL_NAME_MAX);
    max[GW_POOL_NAME_MAX] = '\0';
    assert_true(pool_ok(max));
}

static void test_pool_names_refused(void **state)
{
    (void)state;
    assert_false(pool_ok(""));
    assert_false(pool_ok("a b"));
    assert_false(pool_ok("a,b"));
    assert_false(pool_ok(","));
    assert_false(pool_ok("tab\there"));
    assert_false(pool_ok("nl\n"));
    assert_false(pool_ok("del\x7f"));
    assert_false(pool_ok("caf\xc3\xa9"));
    char over[GW_POOL_NAME_MAX + 2];
    memset(over, 'x', GW_POOL_NAME_MAX + 1);
    over[GW_POOL_NAME_MAX + 1] = '\0';
    assert_false(pool_ok(over));
    /* The length is the caller's: a NUL inside counts as a bad byte. */
    assert_false(gw_pool_name_valid("a\0b", 3));
    assert_true(gw_pool_name_valid("ab,c", 2));
}

static void test_word(void **state)
{
    (void)state;
    assert_true(gw_name_word("abc", 3, 3, ""));
    assert_false(gw_name_word("abcd", 4, 3, ""));
    assert_false(gw_name_word("", 0, 3, ""));
    assert_true(gw_name_word("a,b", 3, 10, ""));
    assert_false(gw_name_word("a,b", 3, 10, ","));
    assert_false(gw_name_word("h#1", 3, 10, "#,/@"));
    assert_false(gw_name_word("u@h", 3, 10, "#,/@"));
    assert_true(gw_name_word("h:1", 3, 10, "#,/@"));
    assert_false(gw_name_word("a b", 3, 10, ""));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_pool_names_accepted),
        cmocka_unit_test(test_pool_names_refused),
        cmocka_unit_test(test_word),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
