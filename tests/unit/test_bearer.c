/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/auth/bearer.c: what "authorization" values yield a
 * bearer token, and what they yield. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "auth/bearer.h"

static int parse(const char *v, const char **tok, size_t *len)
{
    return gw_bearer_parse(v, strlen(v), tok, len);
}

static void test_accepted(void **state)
{
    (void)state;
    const char *t;
    size_t n;
    assert_int_equal(parse("Bearer abc", &t, &n), 0);
    assert_int_equal(n, 3);
    assert_memory_equal(t, "abc", 3);
    assert_int_equal(parse("bearer \t a.b-c_d~e+f/g==  ", &t, &n), 0);
    assert_int_equal(n, 15);
    assert_memory_equal(t, "a.b-c_d~e+f/g==", 15);
    assert_int_equal(parse("BEARER x", &t, &n), 0);
    assert_int_equal(n, 1);
}

static void test_refused(void **state)
{
    (void)state;
    const char *t = NULL;
    size_t n = 99;
    const char *bad[] = {"",          "Bearer",       "Bearer ",    "Bearer    ",
                         "Bearerabc", "Basic abc",    "Bearer a b", "Bearer a=b",
                         "Bearer é",  "Bearer a\x01", "Token abc",  " Bearer abc"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(parse(bad[i], &t, &n), -1);
    assert_null(t);
    assert_int_equal(n, 99);
    static char big[GW_BEARER_MAX + 16];
    memcpy(big, "Bearer ", 7);
    memset(big + 7, 'a', GW_BEARER_MAX + 1);
    assert_int_equal(parse(big, &t, &n), -1);
    big[7 + GW_BEARER_MAX] = '\0';
    assert_int_equal(parse(big, &t, &n), 0);
    assert_int_equal(n, GW_BEARER_MAX);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_accepted),
        cmocka_unit_test(test_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
