/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/err.c: gw_errf's buffer handling and the
 * strict decimal parser. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/err.h"

static void test_errf(void **state)
{
    (void)state;
    char err[8];
    assert_int_equal(gw_errf(err, sizeof(err), "%s '%d'", "--x", 5), -1);
    assert_string_equal(err, "--x '5'");
    assert_int_equal(gw_errf(err, sizeof(err), "%s", "longer than eight"), -1);
    assert_string_equal(err, "longer "); /* truncated, NUL-terminated */
    assert_int_equal(gw_errf(NULL, 0, "%s", "nowhere"), -1);
    err[0] = 'z';
    assert_int_equal(gw_errf(err, 0, "%s", "nowhere"), -1);
    assert_int_equal(err[0], 'z');
}

static void test_parse(void **state)
{
    (void)state;
    uint64_t v = 7;
    assert_int_equal(gw_parse_u64("0", 0, 10, &v), 0);
    assert_int_equal(v, 0);
    assert_int_equal(gw_parse_u64("10", 0, 10, &v), 0);
    assert_int_equal(v, 10);
    assert_int_equal(gw_parse_u64("18446744073709551615", 0, UINT64_MAX, &v), 0);
    assert_true(v == UINT64_MAX);
    v = 7;
    static const char *const bad[] = {
        "", "11", "+1", " 1", "1 ", "-1", "1e3", "0x1", "x", "1.0", "18446744073709551616"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (gw_parse_u64(bad[i], 0, i == 10 ? UINT64_MAX : 10, &v) != -1)
            fail_msg("'%s' accepted", bad[i]);
        assert_int_equal(v, 7); /* untouched */
    }
    assert_int_equal(gw_parse_u64(NULL, 0, 10, &v), -1);
    assert_int_equal(gw_parse_u64("4", 5, 10, &v), -1);
    uint32_t u = 3;
    assert_int_equal(gw_parse_u32("4294967295", 0, UINT32_MAX, &u), 0);
    assert_true(u == UINT32_MAX);
    assert_int_equal(gw_parse_u32("4294967296", 0, UINT32_MAX, &u), -1);
    assert_true(u == UINT32_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_errf),
        cmocka_unit_test(test_parse),
    };
    return cmocka_run_group_tests_name("err", tests, NULL, NULL);
}
