/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/tunables.c: defaults, field names, every field's
 * accepted and refused values (a refusal leaves the tunables untouched and
 * names the field and value), pool-over-global overlay, and formatting that
 * round-trips through gw_tunables_set, the way infergw-ctl shows a value an
 * operator can write back. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#include <cmocka.h>

#include "base/grpcwire.h"
#include "route/tunables.h"

static const char *fmt(const struct gw_tunables *t, enum gw_tunable_field f)
{
    static char buf[600];

    gw_tunables_format(t, f, buf, sizeof(buf));
    return buf;
}

static void test_defaults(void **state)
{
    static const char *const want[GW_TUN_COUNT] = {
        "1.25", "off", "10", "", "3", "UNAVAILABLE", "20", "0", "x-route-key", "99.9", "off",
    };
    struct gw_tunables t;

    (void)state;
    memset(&t, 0x5a, sizeof(t));
    gw_tunables_defaults(&t);
    assert_true(t.balance_factor == 1.25);
    assert_int_equal(t.hedge_delay_ms, GW_HEDGE_OFF);
    assert_int_equal(t.hedge_budget_percent, 10);
    assert_string_equal(t.hedge_exclude, "");
    assert_int_equal(t.retry_max_attempts, 3);
    assert_int_equal(t.retry_on, 1u << GW_GRPC_UNAVAILABLE);
    assert_int_equal(t.retry_budget_percent, 20);
    assert_int_equal(t.per_try_timeout_ms, 0);
    assert_string_equal(t.route_header, "x-route-key");
    assert_int_equal(t.slo_target_milli, 99900);
    assert_int_equal(t.stream_resume, GW_RESUME_OFF);
    assert_int_equal(t.set, 0);
    for (int f = 0; f < GW_TUN_COUNT; f++)
        assert_string_equal(fmt(&t, (enum gw_tunable_field)f), want[f]);
}

static void test_field_names(void **state)
{
    (void)state;
    for (int f = 0; f < GW_TUN_COUNT; f++) {
        assert_non_null(gw_tunable_names[f]);
        assert_int_equal(gw_tunables_field(gw_tunable_names[f]), f);
    }
    assert_int_equal(gw_tunables_field("hedge_delay_ms"), GW_TUN_HEDGE_DELAY_MS);
    assert_int_equal(gw_tunables_field("route_header"), GW_TUN_ROUTE_HEADER);
    assert_int_equal(gw_tunables_field(""), -1);
    assert_int_equal(gw_tunables_field("Hedge_delay_ms"), -1);
    assert_int_equal(gw_tunables_field("hedge_delay"), -1);
    assert_int_equal(gw_tunables_field("hedge_delay_ms "), -1);
}

struct vcase {
    const char *field, *value;
};

/* Values every field accepts. */
static const struct vcase accepted[] = {
    {"balance_factor", "0"},
    {"balance_factor", "1"},
    {"balance_factor", "1.0"},
    {"balance_factor", "1.25"},
    {"balance_factor", "2.5"},
    {"balance_factor", "1.123456789"},
    {"balance_factor", "100"},
    {"balance_factor", "100.000"},
    {"balance_factor", "10"},
    {"balance_factor", "1.00000000000000000001"},
    {"hedge_delay_ms", "off"},
    {"hedge_delay_ms", "auto"},
    {"hedge_delay_ms", "1"},
    {"hedge_delay_ms", "250"},
    {"hedge_delay_ms", "600000"},
    {"hedge_budget_percent", "0"},
    {"hedge_budget_percent", "100"},
    {"hedge_exclude", ""},
    {"hedge_exclude", "/inference.GRPCInferenceService/ModelStreamInfer"},
    {"hedge_exclude", "/a.B/C,/d.E/F"},
    {"retry_max_attempts", "1"},
    {"retry_max_attempts", "10"},
    {"retry_on", "UNAVAILABLE"},
    {"retry_on", "UNAVAILABLE,resource_exhausted"},
    {"retry_on", "14,8"},
    {"retry_on", "CANCELLED,UNAUTHENTICATED"},
    {"retry_budget_percent", "0"},
    {"retry_budget_percent", "35"},
    {"per_try_timeout_ms", "0"},
    {"per_try_timeout_ms", "1"},
    {"per_try_timeout_ms", "3600000"},
    {"route_header", "x-route-key"},
    {"route_header", "x_user.id-2"},
    {"route_header", "k"},
    {"route_header", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijk"}, /* 63 */
    {"slo_target", "99.9"},
    {"slo_target", "50.001"},
    {"slo_target", "99.999"},
    {"slo_target", "99"},
    {"slo_target", "95.50"},
    {"stream_resume", "off"},
    {"stream_resume", "replay"},
    {"stream_resume", "continue"},
};

/* Values every field refuses. */
static const struct vcase refused[] = {
    {"balance_factor", ""},
    {"balance_factor", "banana"},
    {"balance_factor", "0.5"},
    {"balance_factor", "0.999"},
    {"balance_factor", "100.01"},
    {"balance_factor", "-1"},
    {"balance_factor", "-0"},
    {"balance_factor", "+1.5"},
    {"balance_factor", " 1.5"},
    {"balance_factor", "1.5 "},
    {"balance_factor", "1.25x"},
    {"balance_factor", "nan"},
    {"balance_factor", "inf"},
    {"balance_factor", "0x1.4p0"}, /* 1.25 in hex: not a decimal */
    {"balance_factor", "1e400"},
    {"balance_factor", "1e0"}, /* a plain decimal only */
    {"balance_factor", "1."},
    {"balance_factor", ".5"},
    {"hedge_delay_ms", ""},
    {"hedge_delay_ms", "banana"},
    {"hedge_delay_ms", "0"},
    {"hedge_delay_ms", "-5"},
    {"hedge_delay_ms", "600001"},
    {"hedge_delay_ms", "99999999999999999999999"},
    {"hedge_delay_ms", "250ms"},
    {"hedge_delay_ms", "+250"},
    {"hedge_delay_ms", " 250"},
    {"hedge_delay_ms", "\t250"},
    {"hedge_delay_ms", "\n250"},
    {"hedge_delay_ms", "2.5"},
    {"hedge_delay_ms", "AUTO"},
    {"hedge_delay_ms", "Off"},
    {"hedge_budget_percent", ""},
    {"hedge_budget_percent", "101"},
    {"hedge_budget_percent", "-1"},
    {"hedge_budget_percent", "1.5"},
    {"hedge_exclude", "foo"},
    {"hedge_exclude", "/nomethod"},
    {"hedge_exclude", "/a.B/"},
    {"hedge_exclude", "//Method"},
    {"hedge_exclude", "/a.B/C/D"},
    {"hedge_exclude", "/a.B/C,"},
    {"hedge_exclude", ",/a.B/C"},
    {"hedge_exclude", "/a.B/C,,/d.E/F"},
    {"hedge_exclude", "/a.B/C /d.E/F"},
    {"hedge_exclude", "/a.B/C\x7f"},
    {"retry_max_attempts", ""},
    {"retry_max_attempts", "0"},
    {"retry_max_attempts", "11"},
    {"retry_on", ""},
    {"retry_on", "OK"},
    {"retry_on", "0"},
    {"retry_on", "17"},
    {"retry_on", "UNAVAILABLE,"},
    {"retry_on", ",UNAVAILABLE"},
    {"retry_on", "UNAVAILABLE,,ABORTED"},
    {"retry_on", "UNAVAILABLE, ABORTED"},
    {"retry_on", "UNAVAILABLE,OK"},
    {"retry_on", "BANANA"},
    {"retry_on", "RESOURCE_EXHAUSTED_AND_THEN_SOME_MORE_THAN_FORTY_BYTES_LONG"},
    {"retry_budget_percent", "101"},
    {"per_try_timeout_ms", ""},
    {"per_try_timeout_ms", "-1"},
    {"per_try_timeout_ms", "3600001"},
    {"route_header", ""},
    {"route_header", "X-Route-Key"},
    {"route_header", "x route"},
    {"route_header", ":path"},
    {"route_header", "x-key\n"},
    {"route_header", "abcdefghijklmnopqrstuvwxyzabcdefghijklmnopqrstuvwxyzabcdefghijkl"}, /* 64 */
    {"slo_target", ""},
    {"stream_resume", ""},
    {"stream_resume", "on"},
    {"stream_resume", "Replay"},
    {"stream_resume", "replay "},
    {"slo_target", "50"},
    {"slo_target", "100"},
    {"slo_target", "100.0"},
    {"slo_target", "99.9999"}, /* more than 3 decimals */
    {"slo_target", "0.999"},   /* a ratio, not a percentage */
    {"slo_target", "-99"},
    {"slo_target", "99.9%"},
    {"slo_target", " 99.9"},
    {"slo_target", "99."},
    {"slo_target", "9e1"},
    {"slo_target", "1000"},
    {"slo_target", "nan"},
};

static void test_set_accepts(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        struct gw_tunables t;
        char err[256] = "";
        int f = gw_tunables_field(accepted[i].field);

        gw_tunables_defaults(&t);
        if (gw_tunables_set(&t, accepted[i].field, accepted[i].value, err, sizeof(err)) != 0)
            fail_msg("%s '%s' refused: %s", accepted[i].field, accepted[i].value, err);
        /* Only that field is marked as given. */
        assert_int_equal(t.set, 1u << f);
    }
}

static void test_set_refuses_and_leaves_untouched(void **state)
{
    struct gw_tunables t, before;
    char err[512];

    (void)state;
    gw_tunables_defaults(&t);
    /* Some non-default values, so "untouched" is not "back to defaults". */
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "2", err, sizeof(err)), 0);
    assert_int_equal(gw_tunables_set(&t, "hedge_delay_ms", "auto", err, sizeof(err)), 0);
    assert_int_equal(gw_tunables_set(&t, "retry_on", "ABORTED", err, sizeof(err)), 0);
    before = t;
    for (size_t i = 0; i < sizeof(refused) / sizeof(refused[0]); i++) {
        int rc;

        err[0] = '\0';
        rc = gw_tunables_set(&t, refused[i].field, refused[i].value, err, sizeof(err));
        if (rc != -2)
            fail_msg("%s '%s': got %d, want -2 (refused)", refused[i].field, refused[i].value, rc);
        assert_memory_equal(&t, &before, sizeof(t));
        /* The refusal names the field and the value. */
        assert_non_null(strstr(err, refused[i].field));
        if (refused[i].value[0] && !strchr(refused[i].value, '\n'))
            assert_non_null(strstr(err, refused[i].value));
    }
    /* An unknown field: -1, named in the message. */
    assert_int_equal(gw_tunables_set(&t, "hedge_delay", "250", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "hedge_delay"));
    assert_memory_equal(&t, &before, sizeof(t));
    /* A message longer than the buffer is cut, not overrun. */
    {
        char small[8];

        memset(small, 'z', sizeof(small));
        assert_int_equal(gw_tunables_set(&t, "hedge_delay_ms", "banana", small, sizeof(small)), -2);
        assert_int_equal(strlen(small), sizeof(small) - 1);
        assert_int_equal(gw_tunables_set(&t, "hedge_delay_ms", "banana", NULL, 0), -2);
    }
    /* The hedge_exclude buffer holds 511 bytes: one path longer than that is refused. */
    {
        char longpath[520];

        memset(longpath, 'a', sizeof(longpath));
        longpath[0] = '/';
        longpath[10] = '/';
        longpath[512] = '\0';
        assert_int_equal(gw_tunables_set(&t, "hedge_exclude", longpath, err, sizeof(err)), -2);
        longpath[511] = '\0';
        assert_int_equal(gw_tunables_set(&t, "hedge_exclude", longpath, err, sizeof(err)), 0);
        assert_string_equal(t.hedge_exclude, longpath);
    }
}

static void test_set_stores_values(void **state)
{
    struct gw_tunables t;
    char err[256];

    (void)state;
    gw_tunables_defaults(&t);
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "0", err, sizeof(err)), 0);
    assert_true(t.balance_factor == 0.0);
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "1.5", err, sizeof(err)), 0);
    assert_true(t.balance_factor == 1.5);
    assert_int_equal(gw_tunables_set(&t, "hedge_delay_ms", "250", err, sizeof(err)), 0);
    assert_int_equal(t.hedge_delay_ms, 250);
    assert_int_equal(gw_tunables_set(&t, "hedge_delay_ms", "auto", err, sizeof(err)), 0);
    assert_int_equal(t.hedge_delay_ms, GW_HEDGE_AUTO);
    assert_int_equal(gw_tunables_set(&t, "hedge_delay_ms", "off", err, sizeof(err)), 0);
    assert_int_equal(t.hedge_delay_ms, GW_HEDGE_OFF);
    assert_int_equal(
        gw_tunables_set(&t, "retry_on", "UNAVAILABLE,resource_exhausted", err, sizeof(err)), 0);
    assert_int_equal(t.retry_on, 1u << GW_GRPC_UNAVAILABLE | 1u << GW_GRPC_RESOURCE_EXHAUSTED);
    assert_string_equal(fmt(&t, GW_TUN_RETRY_ON), "RESOURCE_EXHAUSTED,UNAVAILABLE");
    assert_int_equal(gw_tunables_set(&t, "hedge_budget_percent", "0", err, sizeof(err)), 0);
    assert_int_equal(t.hedge_budget_percent, 0);
    assert_int_equal(gw_tunables_set(&t, "retry_budget_percent", "100", err, sizeof(err)), 0);
    assert_int_equal(t.retry_budget_percent, 100);
    assert_int_equal(gw_tunables_set(&t, "retry_max_attempts", "7", err, sizeof(err)), 0);
    assert_int_equal(t.retry_max_attempts, 7);
    assert_int_equal(gw_tunables_set(&t, "per_try_timeout_ms", "1500", err, sizeof(err)), 0);
    assert_int_equal(t.per_try_timeout_ms, 1500);
    assert_int_equal(gw_tunables_set(&t, "route_header", "x-user", err, sizeof(err)), 0);
    assert_string_equal(t.route_header, "x-user");
    assert_int_equal(gw_tunables_set(&t, "hedge_exclude", "/a.B/C", err, sizeof(err)), 0);
    assert_string_equal(t.hedge_exclude, "/a.B/C");
    assert_int_equal(gw_tunables_set(&t, "slo_target", "99.95", err, sizeof(err)), 0);
    assert_int_equal(t.slo_target_milli, 99950);
    assert_int_equal(gw_tunables_set(&t, "stream_resume", "continue", err, sizeof(err)), 0);
    assert_int_equal(t.stream_resume, GW_RESUME_CONTINUE);
    assert_int_equal(t.set, (1u << GW_TUN_COUNT) - 1);
    /* The gateway's --stream-resume is a default: it does not mark the field set. */
    struct gw_tunables d;
    gw_tunables_defaults(&d);
    gw_tunables_default_resume(&d, "replay");
    assert_int_equal(d.stream_resume, GW_RESUME_REPLAY);
    assert_int_equal(d.set, 0);
    gw_tunables_default_resume(&d, "bogus");
    assert_int_equal(d.stream_resume, GW_RESUME_OFF);
}

/* A pool's tunables override the global ones field by field: only the
 * fields the pool set, whatever values its unset fields hold. */
static void test_overlay(void **state)
{
    struct gw_tunables global, pool, eff;
    char err[256];

    (void)state;
    gw_tunables_defaults(&global);
    assert_int_equal(gw_tunables_set(&global, "hedge_delay_ms", "300", err, sizeof(err)), 0);
    assert_int_equal(gw_tunables_set(&global, "retry_max_attempts", "5", err, sizeof(err)), 0);
    assert_int_equal(gw_tunables_set(&global, "route_header", "x-global", err, sizeof(err)), 0);

    gw_tunables_defaults(&pool);
    assert_int_equal(gw_tunables_set(&pool, "hedge_delay_ms", "auto", err, sizeof(err)), 0);
    assert_int_equal(gw_tunables_set(&pool, "balance_factor", "0", err, sizeof(err)), 0);
    assert_int_equal(gw_tunables_set(&pool, "hedge_exclude", "/a.B/C", err, sizeof(err)), 0);
    assert_int_equal(gw_tunables_set(&pool, "slo_target", "99.5", err, sizeof(err)), 0);
    /* Unset fields that differ from the global ones must not leak through. */
    pool.retry_max_attempts = 9;
    pool.route_header[0] = 'z';

    eff = global;
    gw_tunables_overlay(&eff, &pool);
    assert_int_equal(eff.hedge_delay_ms, GW_HEDGE_AUTO); /* pool */
    assert_true(eff.balance_factor == 0.0);              /* pool */
    assert_string_equal(eff.hedge_exclude, "/a.B/C");    /* pool */
    assert_int_equal(eff.slo_target_milli, 99500);       /* pool */
    assert_int_equal(eff.retry_max_attempts, 5);         /* global */
    assert_string_equal(eff.route_header, "x-global");   /* global */
    assert_int_equal(eff.retry_on, global.retry_on);     /* default */
    assert_int_equal(eff.hedge_budget_percent, 10);      /* default */
    assert_int_equal(eff.set, global.set | pool.set);

    /* Overlaying nothing changes nothing. */
    gw_tunables_defaults(&pool);
    eff = global;
    gw_tunables_overlay(&eff, &pool);
    assert_memory_equal(&eff, &global, sizeof(eff));

    /* Every field overlays. */
    gw_tunables_defaults(&pool);
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++)
        assert_int_equal(
            gw_tunables_set(&pool, accepted[i].field, accepted[i].value, err, sizeof(err)), 0);
    eff = global;
    gw_tunables_overlay(&eff, &pool);
    assert_memory_equal(&eff, &pool, sizeof(eff));
}

/* Every accepted value formats to text that set accepts and that gives the
 * same value back; formatting is stable. */
static void test_format_round_trips(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof(accepted) / sizeof(accepted[0]); i++) {
        struct gw_tunables a, b;
        enum gw_tunable_field f = (enum gw_tunable_field)gw_tunables_field(accepted[i].field);
        char text[600], again[600], err[256] = "";
        size_t n;

        gw_tunables_defaults(&a);
        assert_int_equal(gw_tunables_set(&a, accepted[i].field, accepted[i].value, err, 256), 0);
        n = gw_tunables_format(&a, f, text, sizeof(text));
        assert_int_equal(n, strlen(text));
        gw_tunables_defaults(&b);
        if (gw_tunables_set(&b, accepted[i].field, text, err, sizeof(err)) != 0)
            fail_msg("%s '%s' formats as '%s', which set refuses: %s", accepted[i].field,
                     accepted[i].value, text, err);
        assert_memory_equal(&a, &b, sizeof(a));
        gw_tunables_format(&b, f, again, sizeof(again));
        assert_string_equal(text, again);
    }
}

static void test_format_values_and_truncation(void **state)
{
    struct gw_tunables t;
    char err[256], out[16];

    (void)state;
    gw_tunables_defaults(&t);
    assert_int_equal(gw_tunables_set(&t, "hedge_delay_ms", "250", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_HEDGE_DELAY_MS), "250");
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "1.10", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_BALANCE_FACTOR), "1.1");
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "100", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_BALANCE_FACTOR), "100");
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "0", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_BALANCE_FACTOR), "0");
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "1.123456789", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_BALANCE_FACTOR), "1.123456789");
    assert_int_equal(gw_tunables_set(&t, "balance_factor", "99.99", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_BALANCE_FACTOR), "99.99");
    assert_int_equal(gw_tunables_set(&t, "retry_on", "14,8,unavailable", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_RETRY_ON), "RESOURCE_EXHAUSTED,UNAVAILABLE");
    assert_int_equal(gw_tunables_set(&t, "slo_target", "99.000", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_SLO_TARGET), "99");
    assert_int_equal(gw_tunables_set(&t, "slo_target", "99.990", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_SLO_TARGET), "99.99");
    assert_int_equal(gw_tunables_set(&t, "slo_target", "50.005", err, sizeof(err)), 0);
    assert_string_equal(fmt(&t, GW_TUN_SLO_TARGET), "50.005");

    /* Truncated to cap - 1 bytes and terminated. */
    memset(out, 'z', sizeof(out));
    assert_int_equal(gw_tunables_format(&t, GW_TUN_RETRY_ON, out, 5), 4);
    assert_string_equal(out, "RESO");
    assert_int_equal(gw_tunables_format(&t, GW_TUN_ROUTE_HEADER, out, 3), 2);
    assert_string_equal(out, "x-");
    assert_int_equal(gw_tunables_format(&t, GW_TUN_RETRY_ON, out, 1), 0);
    assert_string_equal(out, "");
    /* cap 0 writes nothing at all. */
    for (int f = 0; f < GW_TUN_COUNT; f++) {
        out[0] = 'z';
        assert_int_equal(gw_tunables_format(&t, (enum gw_tunable_field)f, out, 0), 0);
        assert_int_equal(out[0], 'z');
    }
    /* An unknown field formats as empty. */
    assert_int_equal(gw_tunables_format(&t, GW_TUN_COUNT, out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults),
        cmocka_unit_test(test_field_names),
        cmocka_unit_test(test_set_accepts),
        cmocka_unit_test(test_set_refuses_and_leaves_untouched),
        cmocka_unit_test(test_set_stores_values),
        cmocka_unit_test(test_overlay),
        cmocka_unit_test(test_format_round_trips),
        cmocka_unit_test(test_format_values_and_truncation),
    };
    return cmocka_run_group_tests_name("tunables", tests, NULL, NULL);
}
