/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/mem.c: the fail-after-n hook and the live
 * allocation count the other tests rely on to prove error paths free
 * everything. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

#include <cmocka.h>

#include "base/mem.h"

static int reset_hook(void **state)
{
    (void)state;
    gw_mem_fail_after(-1);
    return 0;
}

static void test_no_failure_when_reset(void **state)
{
    void *p[64];

    (void)state;
    for (int i = 0; i < 64; i++) {
        p[i] = gw_malloc(16);
        assert_non_null(p[i]);
    }
    for (int i = 0; i < 64; i++)
        gw_free(p[i]);
}

static void test_fail_after_zero_fails_next(void **state)
{
    (void)state;
    gw_mem_fail_after(0);
    assert_null(gw_malloc(1));
    assert_null(gw_calloc(1, 1));
    assert_null(gw_strdup("x"));
}

static void test_fail_after_n_allows_n_then_fails_until_reset(void **state)
{
    void *a, *b, *c;

    (void)state;
    gw_mem_fail_after(2);
    a = gw_malloc(8);
    b = gw_calloc(2, 8);
    assert_non_null(a);
    assert_non_null(b);
    /* The third and every later allocation fail, whatever the wrapper. */
    assert_null(gw_malloc(8));
    assert_null(gw_calloc(1, 8));
    assert_null(gw_realloc(NULL, 8));
    assert_null(gw_strndup("abc", 3));
    gw_mem_fail_after(-1);
    c = gw_malloc(8);
    assert_non_null(c);
    gw_free(a);
    gw_free(b);
    gw_free(c);
}

static void test_realloc_failure_keeps_block(void **state)
{
    char *p, *q;

    (void)state;
    p = gw_malloc(4);
    assert_non_null(p);
    memcpy(p, "abc", 4);
    gw_mem_fail_after(0);
    q = gw_realloc(p, 4096);
    assert_null(q);
    assert_string_equal(p, "abc");
    gw_mem_fail_after(-1);
    q = gw_realloc(p, 4096);
    assert_non_null(q);
    assert_string_equal(q, "abc");
    /* Size 0 keeps a valid block instead of freeing it. */
    p = gw_realloc(q, 0);
    assert_non_null(p);
    gw_free(p);
}

static void test_live_count_tracks_allocations(void **state)
{
    long base;
    void *a, *b;
    char *s;

    (void)state;
    base = gw_mem_live();
    a = gw_malloc(10);
    b = gw_calloc(3, 3);
    s = gw_strdup("hello");
    assert_int_equal(gw_mem_live() - base, 3);
    a = gw_realloc(a, 100); /* moving a block is not a new allocation */
    assert_int_equal(gw_mem_live() - base, 3);
    gw_free(b);
    b = gw_realloc(NULL, 9); /* but realloc of NULL is */
    assert_non_null(b);
    assert_int_equal(gw_mem_live() - base, 3);
    gw_free(NULL);
    assert_int_equal(gw_mem_live() - base, 3);
    gw_free(a);
    gw_free(b);
    gw_free(s);
    assert_int_equal(gw_mem_live() - base, 0);
    /* Failed allocations are not counted. */
    gw_mem_fail_after(0);
    assert_null(gw_malloc(1));
    assert_int_equal(gw_mem_live() - base, 0);
}

static void test_strndup_copies_and_terminates(void **state)
{
    const char buf[4] = {'a', 'b', 'c', 'd'}; /* not NUL-terminated */
    char *s;

    (void)state;
    s = gw_strndup(buf, 3);
    assert_string_equal(s, "abc");
    gw_free(s);
    s = gw_strndup(buf, 4);
    assert_string_equal(s, "abcd");
    gw_free(s);
    s = gw_strndup("ab", 10); /* stops at the NUL */
    assert_string_equal(s, "ab");
    gw_free(s);
    s = gw_strndup("ab", 0);
    assert_string_equal(s, "");
    gw_free(s);
    s = gw_strdup("pool-a");
    assert_string_equal(s, "pool-a");
    gw_free(s);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test_setup(test_no_failure_when_reset, reset_hook),
        cmocka_unit_test_setup_teardown(test_fail_after_zero_fails_next, reset_hook, reset_hook),
        cmocka_unit_test_setup_teardown(test_fail_after_n_allows_n_then_fails_until_reset,
                                        reset_hook, reset_hook),
        cmocka_unit_test_setup_teardown(test_realloc_failure_keeps_block, reset_hook, reset_hook),
        cmocka_unit_test_setup_teardown(test_live_count_tracks_allocations, reset_hook, reset_hook),
        cmocka_unit_test_setup_teardown(test_strndup_copies_and_terminates, reset_hook, reset_hook),
    };
    return cmocka_run_group_tests_name("mem", tests, NULL, NULL);
}
