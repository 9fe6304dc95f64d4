/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/hdrlist.c: copies survive the caller's
 * buffers, growth past the inline storage keeps every entry, values read
 * back NUL-terminated, and a failed allocation leaves the list unchanged. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/hdrlist.h"
#include "base/mem.h"

static void test_add_get_nv(void **state)
{
    (void)state;
    struct gw_hdrlist h;
    gw_hdrlist_init(&h);
    char name[16], value[16];
    strcpy(name, "x-route-key");
    strcpy(value, "user-42");
    assert_int_equal(gw_hdrlist_add(&h, name, strlen(name), value, strlen(value)), 0);
    memset(name, 'z', sizeof(name)); /* the list holds its own copy */
    memset(value, 'z', sizeof(value));
    assert_int_equal(gw_hdrlist_add(&h, "empty", 5, "", 0), 0);
    size_t len = 0;
    const char *v = gw_hdrlist_get(&h, "x-route-key", &len);
    assert_non_null(v);
    assert_int_equal(len, 7);
    assert_string_equal(v, "user-42");
    v = gw_hdrlist_get(&h, "empty", &len);
    assert_non_null(v);
    assert_int_equal(len, 0);
    assert_null(gw_hdrlist_get(&h, "x-route", NULL));
    nghttp2_nv nv[2];
    assert_int_equal(gw_hdrlist_to_nv(&h, nv), 2);
    assert_int_equal(nv[0].namelen, 11);
    assert_memory_equal(nv[0].name, "x-route-key", 11);
    assert_memory_equal(nv[0].value, "user-42", 7);
    gw_hdrlist_reset(&h);
    assert_int_equal(h.n, 0);
}

static void test_growth_keeps_entries(void **state)
{
    (void)state;
    struct gw_hdrlist h;
    gw_hdrlist_init(&h);
    long before = gw_mem_live();
    char name[32], value[200];
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "x-meta-%d", i);
        memset(value, 'a' + i % 26, sizeof(value));
        assert_int_equal(gw_hdrlist_add(&h, name, strlen(name), value, 100 + i % 50), 0);
    }
    assert_true(gw_mem_live() > before); /* outgrew the inline space */
    for (int i = 0; i < 100; i++) {
        snprintf(name, sizeof(name), "x-meta-%d", i);
        size_t len;
        const char *v = gw_hdrlist_get(&h, name, &len);
        assert_non_null(v);
        assert_int_equal(len, (size_t)(100 + i % 50));
        assert_int_equal(v[0], 'a' + i % 26);
        assert_int_equal(v[len], '\0');
    }
    gw_hdrlist_reset(&h);
    assert_int_equal(gw_mem_live(), before);
}

static void test_enomem_leaves_list_unchanged(void **state)
{
    (void)state;
    struct gw_hdrlist h;
    gw_hdrlist_init(&h);
    char big[1000];
    memset(big, 'b', sizeof(big));
    assert_int_equal(gw_hdrlist_add(&h, "a", 1, "1", 1), 0);
    gw_mem_fail_after(0);
    assert_int_equal(gw_hdrlist_add(&h, "big", 3, big, sizeof(big)), -12);
    gw_mem_fail_after(-1);
    assert_int_equal(h.n, 1);
    assert_string_equal(gw_hdrlist_get(&h, "a", NULL), "1");
    assert_int_equal(gw_hdrlist_add(&h, "big", 3, big, sizeof(big)), 0);
    assert_int_equal(h.n, 2);
    gw_hdrlist_reset(&h);
}

/* RFC 9113 section 6.5.2 counting: name + value + 32 per field; the field
 * that passes a limit fails, and the block stays over until a reset. */
static void test_budget_counts_rfc_size(void **state)
{
    (void)state;
    struct gw_hdr_budget b;
    gw_hdr_budget_reset(&b);
    /* 100 bytes: two fields of 18 (5 + 13 + 32 = 50) fit exactly. */
    assert_int_equal(gw_hdr_budget_add(&b, 5, 13, 100, 10), 0);
    assert_int_equal(gw_hdr_budget_add(&b, 5, 13, 100, 10), 0);
    assert_int_equal(b.bytes, 100);
    /* An empty field still costs 32. */
    assert_int_equal(gw_hdr_budget_add(&b, 0, 0, 100, 10), -1);
    assert_int_equal(b.over, 1);
    assert_int_equal(gw_hdr_budget_add(&b, 0, 0, 1000, 10), -1); /* sticky */
    gw_hdr_budget_reset(&b);
    assert_int_equal(b.bytes, 0);
    /* The field count: the 4th of at most 3 fails. */
    for (int i = 0; i < 3; i++)
        assert_int_equal(gw_hdr_budget_add(&b, 1, 1, 1 << 20, 3), 0);
    assert_int_equal(gw_hdr_budget_add(&b, 1, 1, 1 << 20, 3), -1);
    /* 100,000 one-byte references to a 4 KB field: over after 16. */
    gw_hdr_budget_reset(&b);
    int ok = 0;
    for (int i = 0; i < 100000 && gw_hdr_budget_add(&b, 5, 4000, 65536, 256) == 0; i++)
        ok++;
    assert_int_equal(ok, 16);
    /* Fields past the limit are still counted: the 33rd reference is more
     * than twice over (amplification), the 17th is not. */
    assert_false(gw_hdr_budget_far_over(&b, 65536, 256));
    for (int i = 18; i <= 32; i++) /* the 17th was counted by the loop above */
        assert_int_equal(gw_hdr_budget_add(&b, 5, 4000, 65536, 256), -1);
    assert_false(gw_hdr_budget_far_over(&b, 65536, 256));
    assert_int_equal(gw_hdr_budget_add(&b, 5, 4000, 65536, 256), -1);
    assert_true(gw_hdr_budget_far_over(&b, 65536, 256));
    /* The count alone can be far over too. */
    gw_hdr_budget_reset(&b);
    for (int i = 0; i < 21; i++)
        gw_hdr_budget_add(&b, 1, 1, 1 << 20, 10);
    assert_true(gw_hdr_budget_far_over(&b, 1 << 20, 10));
    /* Sums saturate instead of wrapping. */
    b.bytes = UINT64_MAX - 10;
    b.over = 0;
    assert_int_equal(gw_hdr_budget_add(&b, 100, 100, UINT32_MAX, UINT32_MAX), -1);
    assert_true(b.bytes == UINT64_MAX);
}

/* Arms the allocation hook so gw_mem_live() counts (nothing fails). */
static int count_allocations(void **state)
{
    (void)state;
    gw_mem_fail_after(-1);
    return 0;
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_add_get_nv),
        cmocka_unit_test(test_growth_keeps_entries),
        cmocka_unit_test(test_enomem_leaves_list_unchanged),
        cmocka_unit_test(test_budget_counts_rfc_size),
    };
    return cmocka_run_group_tests_name("hdrlist", tests, count_allocations, NULL);
}
