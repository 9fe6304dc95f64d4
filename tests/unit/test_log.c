/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/log.c: the once-a-second limiter of events a
 * peer can repeat at will (limit hits), and level parsing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "base/log.h"

#define SEC 1000000000ULL

static void test_limit_one_line_a_second(void **state)
{
    (void)state;
    struct gw_log_limit l = {0};
    uint64_t t = 5 * SEC;
    /* The first occurrence is logged at once and stands for itself. */
    assert_int_equal(gw_log_limit_pass(&l, t), 1);
    /* 999 more within the second: held back. */
    for (int i = 1; i < 1000; i++)
        assert_int_equal(gw_log_limit_pass(&l, t + (uint64_t)i * 1000000), 0);
    /* The next one after the second stands for all of them. */
    assert_int_equal(gw_log_limit_pass(&l, t + SEC), 1000);
    /* A quiet spell: the next one is logged at once again. */
    assert_int_equal(gw_log_limit_pass(&l, t + 10 * SEC), 1);
    assert_int_equal(gw_log_limit_pass(&l, t + 10 * SEC + 1), 0);
}

static void test_level_parse(void **state)
{
    (void)state;
    assert_int_equal(gw_log_level_parse("debug"), GW_LOG_DEBUG);
    assert_int_equal(gw_log_level_parse("WARN"), GW_LOG_WARN);
    assert_int_equal(gw_log_level_parse("loud"), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_limit_one_line_a_second),
        cmocka_unit_test(test_level_parse),
    };
    return cmocka_run_group_tests_name("log", tests, NULL, NULL);
}
