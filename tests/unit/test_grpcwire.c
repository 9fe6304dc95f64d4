/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/base/grpcwire.c: grpc-timeout, status names and
 * the HTTP status mapping, grpc-message encoding and the message framer. The
 * model_name scanner and check are tested in test_grpcwire_scan.c. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "base/grpcwire.h"
#include "grpcframe.h"

/* --- grpc-timeout -------------------------------------------------------------- */

static int parse_str(const char *s, uint64_t *out)
{
    return gw_grpc_timeout_parse(s, strlen(s), out);
}

static void test_timeout_parse_every_unit(void **state)
{
    static const struct {
        const char *s;
        uint64_t ns;
    } ok[] = {
        {"1H", 3600000000000ull},
        {"2M", 120000000000ull},
        {"3S", 3000000000ull},
        {"4m", 4000000ull},
        {"5u", 5000ull},
        {"6n", 6ull},
        {"0S", 0},
        {"00000001m", 1000000ull},
        {"99999999n", 99999999ull},
        {"99999999S", 99999999000000000ull},
        {"12345678u", 12345678000ull},
        {"99999999M", 5999999940000000000ull},
    };
    uint64_t ns;

    (void)state;
    for (size_t i = 0; i < sizeof(ok) / sizeof(ok[0]); i++) {
        ns = 7;
        assert_int_equal(parse_str(ok[i].s, &ns), 0);
        assert_int_equal(ns, ok[i].ns);
    }
}

static void test_timeout_parse_saturates(void **state)
{
    uint64_t ns = 0;

    (void)state;
    /* 99,999,999 hours is over 2^64 ns. */
    assert_int_equal(parse_str("99999999H", &ns), 0);
    assert_int_equal(ns, UINT64_MAX / 2);
    assert_int_equal(parse_str("3000000H", &ns), 0);
    assert_int_equal(ns, UINT64_MAX / 2);
    assert_int_equal(parse_str("2562047H", &ns), 0); /* just below the cap */
    assert_int_equal(ns, 2562047ull * 3600000000000ull);
}

static void test_timeout_parse_rejects_malformed(void **state)
{
    static const char *const bad[] = {
        "",    "S",    "1",    "123456789S",    "1s",         "1h",   "1X",
        "-1S", "+1S",  " 1S",  "1S ",           "1 S",        "1.5S", "1SS",
        "S1",  "0x1S", "1\0S", "\xef\xbc\x91S", "999999999n",
    };
    uint64_t ns;

    (void)state;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        ns = 42;
        assert_int_equal(parse_str(bad[i], &ns), -1);
        assert_int_equal(ns, 42); /* untouched */
    }
    /* An embedded NUL is just a bad byte when the length covers it. */
    assert_int_equal(gw_grpc_timeout_parse("1\0S", 3, &ns), -1);
    assert_int_equal(gw_grpc_timeout_parse(NULL, 2, &ns), -1);
    assert_int_equal(ns, 42);
}

static void test_timeout_parse_uses_length_not_nul(void **state)
{
    uint64_t ns = 0;

    (void)state;
    assert_int_equal(gw_grpc_timeout_parse("5m123", 2, &ns), 0);
    assert_int_equal(ns, 5000000);
    assert_int_equal(gw_grpc_timeout_parse("5m123", 5, &ns), -1);
}

static void assert_format(uint64_t ns, const char *want)
{
    char buf[GW_GRPC_TIMEOUT_BUFLEN];

    memset(buf, 'x', sizeof(buf));
    assert_int_equal(gw_grpc_timeout_format(ns, buf), strlen(want));
    assert_string_equal(buf, want);
}

static void test_timeout_format_finest_unit(void **state)
{
    (void)state;
    assert_format(0, "0n");
    assert_format(1, "1n");
    assert_format(99999999ull, "99999999n");
    assert_format(100000000ull, "100000u");
    assert_format(1500000000ull, "1500000u");
    assert_format(99999999999ull, "99999999u");
    assert_format(100000000000ull, "100000m");
    assert_format(100000000000000ull, "100000S");
    assert_format(99999999000000000ull, "99999999S");
    assert_format(100000000000000000ull, "1666666M");
    assert_format(6000000000000000000ull, "1666666H");
    assert_format(UINT64_MAX, "5124095H");
}

static void test_timeout_format_rounds_down(void **state)
{
    (void)state;
    /* Never more time than there is: the sub-unit remainder is dropped. */
    assert_format(100000999ull, "100000u");
    assert_format(100000001ull, "100000u");
    assert_format(99999999000000001ull, "99999999S");
    assert_format(100000059999999999ull, "1666667M");
}

/* Formats <ns>, checks the shape of the result, parses it back and checks
 * it is at most <ns> and short of it by less than 1e-5 of it (a value that
 * does not fit in 8 digits of one unit takes at least 5 of the next, at most
 * 1000 times coarser), or, above the parse cap of UINT64_MAX/2, that it
 * saturates there. */
static void assert_round_trip(uint64_t ns)
{
    char buf[GW_GRPC_TIMEOUT_BUFLEN];
    size_t len = gw_grpc_timeout_format(ns, buf);
    uint64_t back = 0, floor = ns - ns / 100000;

    assert_true(len >= 2 && len <= 9);
    assert_int_equal(strlen(buf), len);
    for (size_t i = 0; i + 1 < len; i++)
        assert_true(buf[i] >= '0' && buf[i] <= '9');
    assert_int_equal(gw_grpc_timeout_parse(buf, len, &back), 0);
    assert_true(back <= ns);
    assert_true(back >= (floor < UINT64_MAX / 2 ? floor : UINT64_MAX / 2));
    if (ns > 0)
        assert_true(back > 0);
}

static void test_timeout_round_trip(void **state)
{
    static const uint64_t edges[] = {
        0,           1,          999,        1000,       99999999,   100000000,      100000001,
        99999999999, 1ull << 32, 1ull << 40, 1ull << 52, 1ull << 62, UINT64_MAX / 2, UINT64_MAX,
    };
    static const char *const exact[] = {"7S", "1H", "250m", "3M", "42u", "999n", "60S"};
    unsigned seed = 7;

    (void)state;
    for (size_t i = 0; i < sizeof(edges) / sizeof(edges[0]); i++)
        assert_round_trip(edges[i]);
    for (int i = 0; i < 100000; i++) {
        uint64_t ns =
            (uint64_t)rand_r(&seed) << 33 ^ (uint64_t)rand_r(&seed) << 11 ^ (uint64_t)rand_r(&seed);

        assert_round_trip(ns >> (rand_r(&seed) % 64));
    }
    /* A parsed value formats and parses back to the same nanoseconds. */
    for (size_t i = 0; i < sizeof(exact) / sizeof(exact[0]); i++) {
        char buf[GW_GRPC_TIMEOUT_BUFLEN];
        uint64_t a = 0, b = 0;

        assert_int_equal(parse_str(exact[i], &a), 0);
        gw_grpc_timeout_format(a, buf);
        assert_int_equal(parse_str(buf, &b), 0);
        assert_int_equal(a, b);
    }
}

/* --- status names ----------------------------------------------------------------- */

static void test_status_names(void **state)
{
    static const char *const names[] = {
        "OK",
        "CANCELLED",
        "UNKNOWN",
        "INVALID_ARGUMENT",
        "DEADLINE_EXCEEDED",
        "NOT_FOUND",
        "ALREADY_EXISTS",
        "PERMISSION_DENIED",
        "RESOURCE_EXHAUSTED",
        "FAILED_PRECONDITION",
        "ABORTED",
        "OUT_OF_RANGE",
        "UNIMPLEMENTED",
        "INTERNAL",
        "UNAVAILABLE",
        "DATA_LOSS",
        "UNAUTHENTICATED",
    };

    (void)state;
    for (int i = 0; i <= 16; i++) {
        char num[4];

        assert_string_equal(gw_grpc_status_name(i), names[i]);
        assert_int_equal(gw_grpc_status_parse(names[i]), i);
        snprintf(num, sizeof(num), "%d", i);
        assert_int_equal(gw_grpc_status_parse(num), i);
    }
    assert_int_equal(GW_GRPC_UNAVAILABLE, 14);
    assert_string_equal(gw_grpc_status_name(-1), "UNKNOWN_STATUS");
    assert_string_equal(gw_grpc_status_name(17), "UNKNOWN_STATUS");
}

static void test_status_parse(void **state)
{
    static const char *const bad[] = {
        "",
        "17",
        "-1",
        "+1",
        " 1",
        "1 ",
        "14x",
        "UNKNOWN_STATUS",
        "UNAVAILABLE ",
        "OKAY",
        "99999999999999999999",
        "0x1",
    };

    (void)state;
    assert_int_equal(gw_grpc_status_parse("unavailable"), GW_GRPC_UNAVAILABLE);
    assert_int_equal(gw_grpc_status_parse("Not_Found"), GW_GRPC_NOT_FOUND);
    assert_int_equal(gw_grpc_status_parse("resource_exhausted"), GW_GRPC_RESOURCE_EXHAUSTED);
    assert_int_equal(gw_grpc_status_parse("0"), GW_GRPC_OK);
    assert_int_equal(gw_grpc_status_parse(NULL), -1);
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gw_grpc_status_parse(bad[i]), -1);
}

/* --- grpc-message ------------------------------------------------------------------ */

static void test_message_encode(void **state)
{
    char out[64];

    (void)state;
    assert_int_equal(gw_grpc_message_encode("no replica for pool", out, sizeof(out)), 19);
    assert_string_equal(out, "no replica for pool");
    assert_int_equal(gw_grpc_message_encode("50% done", out, sizeof(out)), 10);
    assert_string_equal(out, "50%25 done");
    gw_grpc_message_encode("a\nb\tc\x7f~ ", out, sizeof(out));
    assert_string_equal(out, "a%0Ab%09c%7F~ ");
    gw_grpc_message_encode("caf\xc3\xa9", out, sizeof(out)); /* UTF-8 bytes, each escaped */
    assert_string_equal(out, "caf%C3%A9");
    assert_int_equal(gw_grpc_message_encode("", out, sizeof(out)), 0);
    assert_string_equal(out, "");
}

static void test_message_encode_truncates_whole_escapes(void **state)
{
    char out[8];

    (void)state;
    /* "ab%25" needs 5 bytes + NUL. */
    assert_int_equal(gw_grpc_message_encode("ab%cd", out, 6), 5);
    assert_string_equal(out, "ab%25");
    /* One byte short: the escape is dropped whole, not cut. */
    assert_int_equal(gw_grpc_message_encode("ab%cd", out, 5), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(gw_grpc_message_encode("ab%cd", out, 4), 2);
    assert_string_equal(out, "ab");
    assert_int_equal(gw_grpc_message_encode("abcdefghij", out, sizeof(out)), 7);
    assert_string_equal(out, "abcdefg");
    assert_int_equal(gw_grpc_message_encode("abc", out, 1), 0);
    assert_string_equal(out, "");
    out[0] = 'z';
    assert_int_equal(gw_grpc_message_encode("abc", out, 0), 0);
    assert_int_equal(out[0], 'z'); /* nothing written */
}

/* --- framer ------------------------------------------------------------------------- */

enum { FRAMER_BIG = 70000 };

/* Three messages of 0, 3 and 70000 bytes; ends[] receives the offset after
 * each. */
static uint8_t *framer_stream(size_t *len, size_t ends[3])
{
    uint8_t *buf = malloc(3 * 5 + 3 + FRAMER_BIG);
    size_t off = 0;

    assert_non_null(buf);
    put_message(buf, &off, 0, 0, 0);
    ends[0] = off;
    put_message(buf, &off, 1, 3, 0xaa);
    ends[1] = off;
    put_message(buf, &off, 0, FRAMER_BIG, 0x00);
    ends[2] = off;
    *len = off;
    return buf;
}

static void test_framer_whole_stream(void **state)
{
    struct gw_framer f;
    size_t len, ends[3];
    uint8_t *buf = framer_stream(&len, ends);

    (void)state;
    gw_framer_init(&f);
    assert_true(gw_framer_at_boundary(&f));
    assert_int_equal(gw_framer_feed(&f, buf, len, FRAMER_BIG), 0);
    assert_int_equal(f.messages, 3);
    assert_int_equal(f.last_len, FRAMER_BIG);
    assert_true(gw_framer_at_boundary(&f));
    assert_int_equal(gw_framer_feed(&f, buf, 0, FRAMER_BIG), 0);
    free(buf);
}

static void test_framer_every_split_point(void **state)
{
    size_t len, ends[3];
    uint8_t *buf = framer_stream(&len, ends);

    (void)state;
    for (size_t cut = 0; cut <= len; cut++) {
        struct gw_framer f;
        int boundary, messages;

        gw_framer_init(&f);
        assert_int_equal(gw_framer_feed(&f, buf, cut, FRAMER_BIG), 0);
        boundary = cut == 0 || cut == ends[0] || cut == ends[1] || cut == ends[2];
        messages = (cut >= 5) + (cut >= ends[0] + 5) + (cut >= ends[1] + 5);
        assert_int_equal(gw_framer_at_boundary(&f), boundary);
        assert_int_equal(f.messages, messages);
        assert_int_equal(gw_framer_feed(&f, buf + cut, len - cut, FRAMER_BIG), 0);
        assert_int_equal(f.messages, 3);
        assert_int_equal(f.last_len, FRAMER_BIG);
        assert_true(gw_framer_at_boundary(&f));
    }
    free(buf);
}

static void test_framer_byte_by_byte(void **state)
{
    struct gw_framer f;
    size_t len, ends[3], boundaries = 0;
    uint8_t *buf = framer_stream(&len, ends);

    (void)state;
    gw_framer_init(&f);
    for (size_t i = 0; i < len; i++) {
        assert_int_equal(gw_framer_feed(&f, buf + i, 1, FRAMER_BIG), 0);
        boundaries += (size_t)gw_framer_at_boundary(&f);
    }
    assert_int_equal(boundaries, 3);
    assert_int_equal(f.messages, 3);
    free(buf);
}

static void test_framer_over_limit(void **state)
{
    size_t len, ends[3];
    uint8_t *buf = framer_stream(&len, ends);

    (void)state;
    /* Whole, and with the third prefix cut in two. */
    for (int split = 0; split < 2; split++) {
        struct gw_framer f;
        size_t cut = split ? ends[1] + 3 : len;

        gw_framer_init(&f);
        if (split)
            assert_int_equal(gw_framer_feed(&f, buf, cut, FRAMER_BIG - 1), 0);
        assert_int_equal(
            gw_framer_feed(&f, buf + (split ? cut : 0), len - (split ? cut : 0), FRAMER_BIG - 1),
            -1);
        assert_int_equal(f.last_len, FRAMER_BIG);
        assert_int_equal(f.messages, 3);
        assert_false(gw_framer_at_boundary(&f));
        /* Feeding a failed framer keeps failing. */
        assert_int_equal(gw_framer_feed(&f, buf, 5, UINT32_MAX), -1);
        assert_int_equal(f.messages, 3);
    }
    free(buf);
}
static void test_status_from_http(void **state)
{
    (void)state;
    assert_int_equal(gw_grpc_status_from_http(400), GW_GRPC_INTERNAL);
    assert_int_equal(gw_grpc_status_from_http(401), GW_GRPC_UNAUTHENTICATED);
    assert_int_equal(gw_grpc_status_from_http(403), GW_GRPC_PERMISSION_DENIED);
    assert_int_equal(gw_grpc_status_from_http(404), GW_GRPC_UNIMPLEMENTED);
    for (int h = 0; h < 4; h++)
        assert_int_equal(gw_grpc_status_from_http((int[]){429, 502, 503, 504}[h]),
                         GW_GRPC_UNAVAILABLE);
    assert_int_equal(gw_grpc_status_from_http(500), GW_GRPC_UNKNOWN);
    assert_int_equal(gw_grpc_status_from_http(200), GW_GRPC_UNKNOWN);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_timeout_parse_every_unit),
        cmocka_unit_test(test_timeout_parse_saturates),
        cmocka_unit_test(test_timeout_parse_rejects_malformed),
        cmocka_unit_test(test_timeout_parse_uses_length_not_nul),
        cmocka_unit_test(test_timeout_format_finest_unit),
        cmocka_unit_test(test_timeout_format_rounds_down),
        cmocka_unit_test(test_timeout_round_trip),
        cmocka_unit_test(test_status_names),
        cmocka_unit_test(test_status_parse),
        cmocka_unit_test(test_status_from_http),
        cmocka_unit_test(test_message_encode),
        cmocka_unit_test(test_message_encode_truncates_whole_escapes),
        cmocka_unit_test(test_framer_whole_stream),
        cmocka_unit_test(test_framer_every_split_point),
        cmocka_unit_test(test_framer_byte_by_byte),
        cmocka_unit_test(test_framer_over_limit),
    };
    return cmocka_run_group_tests_name("grpcwire", tests, NULL, NULL);
}
