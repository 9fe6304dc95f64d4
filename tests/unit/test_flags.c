/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/flags.c: the table is well formed (names
 * unique, ranges ordered, every flag documented with its default), every
 * default goes through its own parser, and --help lists every flag once. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/config.h"
#include "base/flags.h"

static void test_table(void **state)
{
    (void)state;
    assert_true(gw_nflags > 0 && gw_nflags <= GW_FLAGS_MAX);
    for (size_t i = 0; i < gw_nflags; i++) {
        const struct gw_flag *f = &gw_flags[i];
        assert_non_null(f->name);
        assert_non_null(f->help);
        assert_true(f->section < GW_SEC_COUNT);
        for (size_t j = i + 1; j < gw_nflags; j++)
            if (!strcmp(f->name, gw_flags[j].name))
                fail_msg("--%s is in the table twice", f->name);
        int takes_value = f->kind != GW_FLAG_HELP && f->kind != GW_FLAG_VERSION;
        if (takes_value != (f->arg != NULL))
            fail_msg("--%s: a value name exactly when it takes a value", f->name);
        if (takes_value && !f->def && !f->shown && !f->machine_default)
            fail_msg("--%s: --help would not say its default", f->name);
        if ((f->kind == GW_FLAG_U32 || f->kind == GW_FLAG_INT) && f->min > f->max)
            fail_msg("--%s: range %u..%u", f->name, (unsigned)f->min, (unsigned)f->max);
        if (f->kind == GW_FLAG_CUSTOM && !f->parse)
            fail_msg("--%s: custom without a parser", f->name);
    }
}

static void test_defaults(void **state)
{
    (void)state;
    struct gw_config cfg;
    char err[256] = "";
    if (gw_flags_defaults(&cfg, err, sizeof(err)) != 0)
        fail_msg("a default refused by its own parser: %s", err);
    assert_int_equal(cfg.admin_explicit, 0);
    assert_string_equal(cfg.admin, "127.0.0.1:7190");
    assert_string_equal(cfg.access_log, "");
    assert_true(cfg.workers >= 1);
    gw_config_free(&cfg);
}

static void test_help_lists_every_flag(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *out = open_memstream(&text, &len);
    assert_non_null(out);
    gw_flags_help(out);
    fclose(out);
    for (size_t i = 0; i < gw_nflags; i++) {
        char want[80];
        snprintf(want, sizeof(want), "--%s%s", gw_flags[i].name, gw_flags[i].arg ? " " : "");
        const char *at = strstr(text, want);
        if (!at)
            fail_msg("--help does not list --%s", gw_flags[i].name);
    }
    for (int s = 0; s < GW_SEC_COUNT; s++)
        assert_non_null(strstr(text, gw_flag_section_titles[s]));
    free(text);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_table),
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_help_lists_every_flag),
    };
    return cmocka_run_group_tests_name("flags", tests, NULL, NULL);
}
