/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/obs/accesslog.c: every line is one valid JSON
 * object (checked by parsing it with jansson) with hostile strings escaped,
 * a line that does not fit is refused whole, and a worker buffer reaches
 * the file only when flushed or full, as whole lines. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <jansson.h>

#include "obs/accesslog.h"
#include "base/mem.h"

static const struct gw_access_attempt two[] = {
    {"127.0.0.1:7201", "primary", "UNAVAILABLE"},
    {"127.0.0.1:7202", "retry", "OK"},
};

static struct gw_access_entry entry(void)
{
    struct gw_access_entry e = {
        .time_ms = 1764300000123,
        .request_id = "req-1",
        .peer = "127.0.0.1:5555",
        .tenant = "team-a",
        .pool = "resnet",
        .method = "/inference.GRPCInferenceService/ModelInfer",
        .code = 0,
        .duration_us = 1500,
        .req_bytes = 100,
        .resp_bytes = 42,
        .attempts = two,
        .nattempts = 2,
    };
    return e;
}

static json_t *parse_line(const char *buf, size_t len)
{
    assert_true(len > 0);
    assert_int_equal(buf[len - 1], '\n');
    assert_null(memchr(buf, '\n', len - 1)); /* one line */
    json_error_t jerr;
    json_t *j = json_loadb(buf, len, 0, &jerr);
    if (!j)
        fail_msg("not JSON (%s): %.*s", jerr.text, (int)len, buf);
    return j;
}

static void test_line_is_json_with_every_field(void **state)
{
    (void)state;
    char buf[2048];
    struct gw_access_entry e = entry();
    size_t n = gw_accesslog_format(buf, sizeof(buf), &e);
    json_t *j = parse_line(buf, n);
    assert_string_equal(json_string_value(json_object_get(j, "time")), "2025-11-28T03:20:00.123Z");
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "req-1");
    assert_string_equal(json_string_value(json_object_get(j, "tenant")), "team-a");
    assert_string_equal(json_string_value(json_object_get(j, "pool")), "resnet");
    assert_string_equal(json_string_value(json_object_get(j, "status")), "OK");
    assert_int_equal(json_integer_value(json_object_get(j, "code")), 0);
    assert_int_equal(json_integer_value(json_object_get(j, "attempts")), 2);
    assert_int_equal(json_integer_value(json_object_get(j, "request_bytes")), 100);
    assert_int_equal(json_integer_value(json_object_get(j, "response_bytes")), 42);
    assert_true(json_real_value(json_object_get(j, "duration_ms")) == 1.5);
    json_t *up = json_object_get(j, "upstream");
    assert_int_equal(json_array_size(up), 2);
    assert_string_equal(json_string_value(json_object_get(json_array_get(up, 0), "outcome")),
                        "UNAVAILABLE");
    assert_string_equal(json_string_value(json_object_get(json_array_get(up, 1), "kind")), "retry");
    json_decref(j);
}

static void test_hostile_strings_are_escaped(void **state)
{
    (void)state;
    char buf[2048];
    struct gw_access_entry e = entry();
    e.request_id = "a\"b\\c\nd\x01";
    e.method = "/x\"}],\"injected\":1,{\"";
    e.nattempts = 0;
    size_t n = gw_accesslog_format(buf, sizeof(buf), &e);
    json_t *j = parse_line(buf, n);
    assert_string_equal(json_string_value(json_object_get(j, "request_id")), "a\"b\\c\nd\x01");
    assert_string_equal(json_string_value(json_object_get(j, "method")), e.method);
    assert_null(json_object_get(j, "injected"));
    assert_int_equal(json_array_size(json_object_get(j, "upstream")), 0);
    json_decref(j);
}

static void test_too_small_buffer_refuses_the_whole_line(void **state)
{
    (void)state;
    char buf[4096];
    struct gw_access_entry e = entry();
    size_t full = gw_accesslog_format(buf, sizeof(buf), &e);
    for (size_t cap = 0; cap < full; cap += 7)
        assert_int_equal(gw_accesslog_format(buf, cap, &e), 0);
    assert_int_equal(gw_accesslog_format(buf, full, &e), full);
}

static void test_buffer_reaches_the_file_as_whole_lines(void **state)
{
    (void)state;
    char path[] = "/tmp/infergw-accesslog-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    close(fd);
    char err[256];
    assert_int_equal(gw_accesslog_open(path, err, sizeof(err)), 0);
    assert_true(gw_accesslog_enabled());
    struct gw_accesslog_buf b = {0};
    struct gw_access_entry e = entry();
    assert_int_equal(gw_accesslog_append(&b, &e), 1); /* first line: arm the timer */
    assert_int_equal(gw_accesslog_append(&b, &e), 0);
    FILE *f = fopen(path, "r");
    fseek(f, 0, SEEK_END);
    assert_int_equal(ftell(f), 0); /* buffered: no write per call */
    /* Enough lines to fill the buffer: it is written out whole lines at a time. */
    int lines = 2;
    while (b.len + 400 < GW_ACCESSLOG_BUF) {
        gw_accesslog_append(&b, &e);
        lines++;
    }
    for (int i = 0; i < 10; i++, lines++)
        gw_accesslog_append(&b, &e);
    gw_accesslog_buf_free(&b);
    gw_accesslog_close();
    rewind(f);
    char line[4096];
    int n = 0;
    while (fgets(line, sizeof(line), f)) {
        json_t *j = parse_line(line, strlen(line));
        json_decref(j);
        n++;
    }
    fclose(f);
    unlink(path);
    assert_int_equal(n, lines);
    assert_int_equal(b.dropped, 0);
}

static void test_open_failure_says_why(void **state)
{
    (void)state;
    char err[256] = "";
    assert_int_equal(gw_accesslog_open("/nonexistent-dir/x.log", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "/nonexistent-dir/x.log"));
    assert_false(gw_accesslog_enabled());
}

static void test_entry_from_call_facts(void **state)
{
    struct gw_access_attempt atts[1] = {{"127.0.0.1:9001", "primary", "OK"}};
    struct gw_access_call f = {
        .worker = 12,
        .call_id = 0x2af,
        .peer = "127.0.0.1:5000",
        .tenant = "acme",
        .pool = "demo",
        .method = "/svc/M",
        .code = 14,
        .duration_ns = 2500000,
        .req_bytes = 10,
        .resp_bytes = 20,
        .attempts = atts,
        .nattempts = 1,
    };
    char rid[GW_ACCESSLOG_RID_MAX];
    struct gw_access_entry e;
    gw_accesslog_entry(&e, rid, &f);
    assert_string_equal(e.request_id, "12-2af"); /* the gateway's own id */
    assert_int_equal(e.duration_us, 2500);
    assert_int_equal(e.code, 14);
    assert_string_equal(e.pool, "demo");
    assert_int_equal(e.nattempts, 1);
    assert_true(e.time_ms > 1600000000000);
    f.worker = 0;
    f.call_id = 0;
    gw_accesslog_entry(&e, rid, &f);
    assert_string_equal(e.request_id, "0-0");
    f.given_request_id = "req-7 and more";
    f.given_len = 5; /* the caller's x-request-id (not NUL-terminated) */
    gw_accesslog_entry(&e, rid, &f);
    assert_string_equal(e.request_id, "req-7");
    char longid[65];
    memset(longid, 'x', sizeof(longid));
    f.given_request_id = longid;
    f.given_len = 65; /* too long: the gateway's own */
    gw_accesslog_entry(&e, rid, &f);
    assert_string_equal(e.request_id, "0-0");
    f.given_len = 64;
    gw_accesslog_entry(&e, rid, &f);
    assert_int_equal(strlen(e.request_id), 64);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_line_is_json_with_every_field),
        cmocka_unit_test(test_entry_from_call_facts),
        cmocka_unit_test(test_hostile_strings_are_escaped),
        cmocka_unit_test(test_too_small_buffer_refuses_the_whole_line),
        cmocka_unit_test(test_buffer_reaches_the_file_as_whole_lines),
        cmocka_unit_test(test_open_failure_says_why),
    };
    return cmocka_run_group_tests_name("accesslog", tests, NULL, NULL);
}
