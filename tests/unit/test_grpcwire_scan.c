/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for the protobuf scans of gateway/src/base/grpcwire.c: the
 * model_name scanner and the model_name check. Inputs include real KServe
 * messages serialized at test time by the generated protobuf-c code, fed at
 * every split point. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "grpc_predict_v2.pb-c.h"
#include "base/grpcwire.h"
#include "grpcframe.h"

/* --- model_name scanner -------------------------------------------------------------- */

struct scan_out {
    int result;
    size_t consumed;
    char name[GW_MODEL_NAME_MAX + 1];
    const char *error;
};

/* Feeds <p> in chunks ending at the given cut offsets (ascending, each <= n),
 * then the rest, stopping at the first result other than MORE. */
static struct scan_out scan_cuts(const uint8_t *p, size_t n, const size_t *cuts, size_t ncuts)
{
    struct gw_model_scan s;
    struct scan_out o = {0};
    size_t at = 0;

    gw_model_scan_init(&s);
    o.result = GW_SCAN_MORE;
    for (size_t i = 0; i <= ncuts && o.result == GW_SCAN_MORE; i++) {
        size_t end = i < ncuts ? cuts[i] : n, used = 99;

        o.result = gw_model_scan_feed(&s, p + at, end - at, &used);
        assert_true(used <= end - at);
        /* Before a result, every byte offered is read. */
        if (o.result == GW_SCAN_MORE)
            assert_int_equal(used, end - at);
        o.consumed += used;
        at = end;
    }
    if (o.result != GW_SCAN_MORE) {
        size_t used = 99;

        /* A finished scan answers the same and reads nothing more. */
        assert_int_equal(gw_model_scan_feed(&s, p, n, &used), o.result);
        assert_int_equal(used, 0);
    }
    if (o.result == GW_SCAN_FOUND) {
        assert_int_equal(strlen(s.name), s.name_len);
        memcpy(o.name, s.name, s.name_len + 1);
    }
    o.error = s.error;
    assert_int_equal(gw_model_scan_finish(&s),
                     o.result == GW_SCAN_MORE ? GW_SCAN_ABSENT : o.result);
    if (o.result == GW_SCAN_ERROR)
        assert_non_null(o.error);
    else
        assert_null(o.error);
    return o;
}

static struct scan_out scan_once(const uint8_t *p, size_t n)
{
    return scan_cuts(p, n, NULL, 0);
}

/* Checks that every cut into two and into single bytes gives the one-shot
 * answer, and returns it. */
static struct scan_out scan_all_splits(const uint8_t *p, size_t n)
{
    struct scan_out want = scan_once(p, n), got;
    struct gw_model_scan s;

    for (size_t cut = 0; cut <= n; cut++) {
        got = scan_cuts(p, n, &cut, 1);
        assert_int_equal(got.result, want.result);
        assert_int_equal(got.consumed, want.consumed);
        assert_string_equal(got.name, want.name);
        assert_ptr_equal(got.error, want.error);
    }
    /* Two cuts among the first bytes, where prefix, tag and length are. */
    for (size_t a = 0; a <= n && a < 24; a++) {
        for (size_t b = a; b <= n && b < 24; b++) {
            size_t cuts[2] = {a, b};

            got = scan_cuts(p, n, cuts, 2);
            assert_int_equal(got.result, want.result);
            assert_int_equal(got.consumed, want.consumed);
            assert_string_equal(got.name, want.name);
        }
    }
    /* One byte at a time. */
    gw_model_scan_init(&s);
    got.result = GW_SCAN_MORE;
    got.consumed = 0;
    for (size_t i = 0; i < n && got.result == GW_SCAN_MORE; i++) {
        size_t used;

        got.result = gw_model_scan_feed(&s, p + i, 1, &used);
        got.consumed += used;
    }
    assert_int_equal(gw_model_scan_finish(&s),
                     want.result == GW_SCAN_MORE ? GW_SCAN_ABSENT : want.result);
    assert_int_equal(got.result, want.result);
    assert_int_equal(got.consumed, want.consumed);
    if (want.result == GW_SCAN_FOUND)
        assert_string_equal(s.name, want.name);
    return want;
}

/* Frames <len> payload bytes as one gRPC message (flag 0) into a new buffer. */
static uint8_t *frame(const uint8_t *payload, size_t len, size_t *out_len)
{
    uint8_t *buf = malloc(len + 5);
    size_t off = 0;

    assert_non_null(buf);
    put_message(buf, &off, 0, (uint32_t)len, 0);
    if (len)
        memcpy(buf + 5, payload, len);
    *out_len = len + 5;
    return buf;
}

/* Serializes a realistic ModelInferRequest (one FP32 input with its raw
 * contents) and frames it. */
static uint8_t *infer_request(const char *model, size_t raw_len, size_t *out_len)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor in =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    Inference__ModelInferRequest__InferInputTensor *inputs[1] = {&in};
    int64_t shape[2] = {1, (int64_t)(raw_len / 4)};
    ProtobufCBinaryData raw;
    uint8_t *payload, *framed;
    size_t len;

    raw.len = raw_len;
    raw.data = malloc(raw_len ? raw_len : 1);
    assert_non_null(raw.data);
    for (size_t i = 0; i < raw_len; i++)
        raw.data[i] = (uint8_t)(i * 7);
    req.model_name = (char *)model;
    req.model_version = "3";
    req.id = "req-0001";
    in.name = "INPUT0";
    in.datatype = "FP32";
    in.n_shape = 2;
    in.shape = shape;
    req.n_inputs = 1;
    req.inputs = inputs;
    req.n_raw_input_contents = 1;
    req.raw_input_contents = &raw;

    len = inference__model_infer_request__get_packed_size(&req);
    payload = malloc(len);
    assert_non_null(payload);
    assert_int_equal(inference__model_infer_request__pack(&req, payload), len);
    framed = frame(payload, len, out_len);
    free(payload);
    free(raw.data);
    return framed;
}

static void test_scan_real_infer_request_every_split(void **state)
{
    size_t n;
    uint8_t *buf = infer_request("resnet50", 4096, &n);
    struct scan_out o;

    (void)state;
    o = scan_all_splits(buf, n);
    assert_int_equal(o.result, GW_SCAN_FOUND);
    assert_string_equal(o.name, "resnet50");
    /* Prefix, tag, one length byte, the name: nothing of the tensor. */
    assert_int_equal(o.consumed, 5 + 1 + 1 + 8);
    free(buf);
}

static void test_scan_two_byte_length_varint(void **state)
{
    char name[201];
    size_t n;
    uint8_t *buf;
    struct scan_out o;

    (void)state;
    memset(name, 'm', 200);
    name[200] = '\0';
    buf = infer_request(name, 64, &n);
    assert_int_equal(buf[5], 0x0a);
    assert_int_equal(buf[6], 0xc8); /* 200 = 0xc8 0x01 */
    assert_int_equal(buf[7], 0x01);
    o = scan_all_splits(buf, n);
    assert_int_equal(o.result, GW_SCAN_FOUND);
    assert_string_equal(o.name, name);
    assert_int_equal(o.consumed, 5 + 1 + 2 + 200);
    free(buf);
}

static void test_scan_name_length_limit(void **state)
{
    char name[GW_MODEL_NAME_MAX + 2];
    size_t n;
    uint8_t *buf;
    struct scan_out o;

    (void)state;
    memset(name, 'x', sizeof(name));
    name[GW_MODEL_NAME_MAX] = '\0';
    buf = infer_request(name, 16, &n);
    o = scan_once(buf, n);
    assert_int_equal(o.result, GW_SCAN_FOUND);
    assert_int_equal(strlen(o.name), GW_MODEL_NAME_MAX);
    free(buf);

    name[GW_MODEL_NAME_MAX] = 'x';
    name[GW_MODEL_NAME_MAX + 1] = '\0';
    buf = infer_request(name, 16, &n);
    o = scan_all_splits(buf, n);
    assert_int_equal(o.result, GW_SCAN_ERROR);
    assert_string_equal(o.error, "model_name too long");
    assert_int_equal(o.consumed, 5 + 1 + 2); /* stops right after the length */
    free(buf);
}

static void test_scan_other_kserve_requests(void **state)
{
    Inference__ModelReadyRequest ready = INFERENCE__MODEL_READY_REQUEST__INIT;
    Inference__ModelMetadataRequest meta = INFERENCE__MODEL_METADATA_REQUEST__INIT;
    uint8_t payload[64], *buf;
    size_t len, n;
    struct scan_out o;

    (void)state;
    ready.name = "bert-large";
    ready.version = "2";
    len = inference__model_ready_request__pack(&ready, payload);
    buf = frame(payload, len, &n);
    o = scan_all_splits(buf, n);
    assert_int_equal(o.result, GW_SCAN_FOUND);
    assert_string_equal(o.name, "bert-large");
    free(buf);

    meta.name = "llama";
    len = inference__model_metadata_request__pack(&meta, payload);
    buf = frame(payload, len, &n);
    o = scan_all_splits(buf, n);
    assert_int_equal(o.result, GW_SCAN_FOUND);
    assert_string_equal(o.name, "llama");
    free(buf);
}

static void test_scan_field_2_first_is_absent(void **state)
{
    size_t n;
    /* proto3 leaves an empty model_name out, so model_version comes first. */
    uint8_t *buf = infer_request("", 32, &n);
    struct scan_out o;

    (void)state;
    assert_int_equal(buf[5], 0x12); /* field 2, wire type 2 */
    o = scan_all_splits(buf, n);
    assert_int_equal(o.result, GW_SCAN_ABSENT);
    assert_int_equal(o.consumed, 6); /* the prefix and the tag */
    free(buf);
}

static void test_scan_empty_and_compressed(void **state)
{
    static const uint8_t empty[] = {0, 0, 0, 0, 0, 0x0a, 0x01, 'a'};
    static const uint8_t compressed[] = {1, 0, 0, 0, 3, 0x0a, 0x01, 'a'};
    static const uint8_t bad_flag[] = {2, 0, 0, 0, 3, 0x0a, 0x01, 'a'};
    struct scan_out o;

    (void)state;
    o = scan_all_splits(empty, sizeof(empty));
    assert_int_equal(o.result, GW_SCAN_ABSENT);
    assert_int_equal(o.consumed, 5);
    o = scan_all_splits(compressed, sizeof(compressed));
    assert_int_equal(o.result, GW_SCAN_ABSENT);
    assert_int_equal(o.consumed, 5);
    o = scan_all_splits(bad_flag, sizeof(bad_flag));
    assert_int_equal(o.result, GW_SCAN_ERROR);
    assert_string_equal(o.error, "bad compressed-flag byte");
}

/* Scans the framed <payload> of <len> bytes (at every split) and checks the
 * result and, for errors, the reason. */
static void expect_scan(const uint8_t *payload, size_t len, int result, const char *error)
{
    size_t n;
    uint8_t *buf = frame(payload, len, &n);
    struct scan_out o = scan_all_splits(buf, n);

    assert_int_equal(o.result, result);
    if (error)
        assert_string_equal(o.error, error);
    free(buf);
}

static void test_scan_malformed(void **state)
{
    static const uint8_t long_varint[] = {0x80, 0x80, 0x80, 0x80, 0x80, 0x80,
                                          0x80, 0x80, 0x80, 0x80, 0x00, 0x0a};
    static const uint8_t varint_65_bits[] = {0x8a, 0x80, 0x80, 0x80, 0x80, 0x80,
                                             0x80, 0x80, 0x80, 0x02, 'a'};
    static const uint8_t tag_over_32_bits[] = {0x8a, 0x80, 0x80, 0x80, 0x10, 0x01, 'a'};
    static const uint8_t len_long_varint[] = {0x0a, 0x81, 0x80, 0x80, 0x80, 0x80, 0x80,
                                              0x80, 0x80, 0x80, 0x80, 0x00, 'a'};
    static const uint8_t len_beyond[] = {0x0a, 0x10, 'a', 'b', 'c'};
    static const uint8_t len_huge[] = {0x0a, 0xff, 0xff, 0xff, 0xff, 0x0f, 'a'};
    static const uint8_t field0_wt2[] = {0x02, 0x01, 'a'};
    static const uint8_t field0_wt0[] = {0x00, 0x01};
    static const uint8_t name_cut[] = {0x0a};
    static const uint8_t tag_cut[] = {0x8a};
    static const uint8_t len_cut[] = {0x0a, 0x85};
    static const uint8_t name_nul[] = {0x0a, 0x03, 'a', 0x00, 'b'};
    static const uint8_t wire_types[] = {3, 4, 6, 7};

    (void)state;
    expect_scan(long_varint, sizeof(long_varint), GW_SCAN_ERROR, "varint over 10 bytes or 64 bits");
    expect_scan(varint_65_bits, sizeof(varint_65_bits), GW_SCAN_ERROR,
                "varint over 10 bytes or 64 bits");
    expect_scan(tag_over_32_bits, sizeof(tag_over_32_bits), GW_SCAN_ERROR,
                "field tag over 32 bits");
    expect_scan(len_long_varint, sizeof(len_long_varint), GW_SCAN_ERROR,
                "varint over 10 bytes or 64 bits");
    expect_scan(len_beyond, sizeof(len_beyond), GW_SCAN_ERROR,
                "model_name longer than its message");
    expect_scan(len_huge, sizeof(len_huge), GW_SCAN_ERROR, "model_name longer than its message");
    expect_scan(field0_wt2, sizeof(field0_wt2), GW_SCAN_ERROR, "field number 0");
    expect_scan(field0_wt0, sizeof(field0_wt0), GW_SCAN_ERROR, "field number 0");
    expect_scan(name_cut, sizeof(name_cut), GW_SCAN_ERROR,
                "model_name cut by the end of the message");
    expect_scan(tag_cut, sizeof(tag_cut), GW_SCAN_ERROR, "varint cut by the end of the message");
    expect_scan(len_cut, sizeof(len_cut), GW_SCAN_ERROR, "varint cut by the end of the message");
    expect_scan(name_nul, sizeof(name_nul), GW_SCAN_ERROR, "model_name contains a NUL byte");
    /* Wire types 3, 4, 6 and 7 are errors whatever the field. */
    for (size_t i = 0; i < sizeof(wire_types); i++) {
        uint8_t f1[] = {(uint8_t)(1 << 3 | wire_types[i]), 0x01, 'a'};
        uint8_t f2[] = {(uint8_t)(2 << 3 | wire_types[i]), 0x01, 'a'};

        expect_scan(f1, sizeof(f1), GW_SCAN_ERROR, "invalid wire type");
        expect_scan(f2, sizeof(f2), GW_SCAN_ERROR, "invalid wire type");
    }
}

static void test_scan_valid_but_absent(void **state)
{
    static const uint8_t f1_varint[] = {0x08, 0x05};                 /* field 1, wire type 0 */
    static const uint8_t f1_fixed32[] = {0x0d, 1, 2, 3, 4};          /* field 1, wire type 5 */
    static const uint8_t f1_empty[] = {0x0a, 0x00, 0x12, 0x01, 'v'}; /* empty string */
    static const uint8_t f7_bytes[] = {0x3a, 0x02, 0xff, 0xfe};      /* raw contents first */
    static const uint8_t big_field[] = {0xfa, 0xff, 0xff, 0xff, 0x0f, 0x00}; /* field 2^29-1 */
    static const uint8_t padded_tag[] = {0x8a, 0x80, 0x00, 0x01, 'q'};       /* non-minimal tag */

    (void)state;
    expect_scan(f1_varint, sizeof(f1_varint), GW_SCAN_ABSENT, NULL);
    expect_scan(f1_fixed32, sizeof(f1_fixed32), GW_SCAN_ABSENT, NULL);
    expect_scan(f1_empty, sizeof(f1_empty), GW_SCAN_ABSENT, NULL);
    expect_scan(f7_bytes, sizeof(f7_bytes), GW_SCAN_ABSENT, NULL);
    expect_scan(big_field, sizeof(big_field), GW_SCAN_ABSENT, NULL);
    /* A tag written in more bytes than needed is still field 1. */
    expect_scan(padded_tag, sizeof(padded_tag), GW_SCAN_FOUND, NULL);
}

static void test_scan_truncated_stream_finishes_absent(void **state)
{
    size_t n;
    uint8_t *buf = infer_request("resnet50", 16, &n);

    (void)state;
    /* The stream ends inside the prefix, inside the name, or before any
     * byte: finish() turns MORE into ABSENT. */
    for (size_t cut = 0; cut < 5 + 1 + 1 + 8; cut++) {
        struct gw_model_scan s;
        size_t used;

        gw_model_scan_init(&s);
        assert_int_equal(gw_model_scan_feed(&s, buf, cut, &used), GW_SCAN_MORE);
        assert_int_equal(used, cut);
        assert_int_equal(gw_model_scan_finish(&s), GW_SCAN_ABSENT);
        assert_int_equal(gw_model_scan_finish(&s), GW_SCAN_ABSENT);
        assert_int_equal(gw_model_scan_feed(&s, buf, n, NULL), GW_SCAN_ABSENT);
    }
    free(buf);
}

static void test_scan_reads_first_message_only(void **state)
{
    size_t n1, n2;
    uint8_t *a = infer_request("first", 8, &n1);
    uint8_t *b = infer_request("second", 8, &n2);
    uint8_t *both = malloc(n1 + n2);
    struct scan_out o;

    (void)state;
    memcpy(both, a, n1);
    memcpy(both + n1, b, n2);
    o = scan_once(both, n1 + n2);
    assert_int_equal(o.result, GW_SCAN_FOUND);
    assert_string_equal(o.name, "first");
    assert_int_equal(o.consumed, 5 + 1 + 1 + 5);
    free(both);
    free(a);
    free(b);
}

/* --- model_name check ------------------------------------------------------- */

/* Writes an uncompressed message prefix announcing <len> bytes at <p>. */
static void put_prefix(uint8_t *p, uint32_t len)
{
    p[0] = 0;
    p[1] = (uint8_t)(len >> 24);
    p[2] = (uint8_t)(len >> 16);
    p[3] = (uint8_t)(len >> 8);
    p[4] = (uint8_t)len;
}

/* Runs the check over <p> cut at <cut> (one cut, or none when cut >= n) and
 * writes its events as "N<msg>:<name>" / "C<msg>" / "E:<error>", comma
 * separated, into <out>. */
static void check_events(const uint8_t *p, size_t n, size_t cut, char *out, size_t cap)
{
    struct gw_model_check k;
    size_t len = 0;

    gw_model_check_init(&k);
    out[0] = '\0';
    for (int part = 0; part < 2; part++) {
        size_t at = part == 0 ? 0 : (cut < n ? cut : n);
        size_t end = part == 0 ? (cut < n ? cut : n) : n;

        while (at < end) {
            size_t used = 0;
            int r = gw_model_check_feed(&k, p + at, end - at, &used);

            assert_true(used <= end - at);
            at += used;
            if (r == GW_CHECK_MORE) {
                assert_int_equal(at, end);
                continue;
            }
            if (r == GW_CHECK_NAME)
                len += (size_t)snprintf(out + len, cap - len, "%sN%llu:%s", len ? "," : "",
                                        (unsigned long long)k.messages, k.name);
            else if (r == GW_CHECK_COMPRESSED)
                len += (size_t)snprintf(out + len, cap - len, "%sC%llu", len ? "," : "",
                                        (unsigned long long)k.messages);
            else {
                len += (size_t)snprintf(out + len, cap - len, "%sE:%s", len ? "," : "", k.error);
                return;
            }
        }
    }
}

/* Asserts that every single cut of <p> gives the events <want>. */
static void assert_check_events(const uint8_t *p, size_t n, const char *want)
{
    char got[1024];

    for (size_t cut = 0; cut <= n; cut++) {
        check_events(p, n, cut, got, sizeof(got));
        assert_string_equal(got, want);
    }
}

static void test_check_every_name_of_every_message(void **state)
{
    size_t n1, n2, off = 0;
    uint8_t *m1 = infer_request("demo", 300, &n1);
    /* Message 2: model_version "3", a varint, a fixed64 and a fixed32 field,
     * then field 1 twice (a parser keeps the last): "secret", "demo". */
    static const uint8_t body2[] = {0x12, 1,   '3', 0x28, 0x96, 0x01, 0x31, 1,   2,    3,  4,   5,
                                    6,    7,   8,   0x3d, 1,    2,    3,    4,   0x0a, 6,  's', 'e',
                                    'c',  'r', 'e', 't',  0x0a, 4,    'd',  'e', 'm',  'o'};
    uint8_t *m2 = frame(body2, sizeof(body2), &n2);
    /* Message 3 compressed, message 4 empty, message 5 an empty field 1. */
    static const uint8_t tail[] = {1, 0, 0, 0, 3, 0x0a, 1, 'x', 0,    0,
                                   0, 0, 0, 0, 0, 0,    0, 2,   0x0a, 0};
    uint8_t *stream = malloc(n1 + n2 + sizeof(tail));
    char got[1024];

    (void)state;
    assert_non_null(stream);
    memcpy(stream + off, m1, n1);
    off += n1;
    memcpy(stream + off, m2, n2);
    off += n2;
    memcpy(stream + off, tail, sizeof(tail));
    off += sizeof(tail);
    assert_check_events(stream, off, "N1:demo,N2:secret,N2:demo,C3,N5:");
    /* One byte at a time gives the same. */
    {
        struct gw_model_check k;
        size_t len = 0;

        gw_model_check_init(&k);
        got[0] = '\0';
        for (size_t i = 0; i < off; i++) {
            size_t used;
            int r = gw_model_check_feed(&k, stream + i, 1, &used);

            assert_int_equal(used, 1);
            if (r == GW_CHECK_NAME)
                len += (size_t)snprintf(got + len, sizeof(got) - len, "%sN%llu:%s", len ? "," : "",
                                        (unsigned long long)k.messages, k.name);
            else if (r == GW_CHECK_COMPRESSED)
                len += (size_t)snprintf(got + len, sizeof(got) - len, "%sC%llu", len ? "," : "",
                                        (unsigned long long)k.messages);
        }
        assert_string_equal(got, "N1:demo,N2:secret,N2:demo,C3,N5:");
        assert_true(gw_model_check_at_boundary(&k));
    }
    free(stream);
    free(m1);
    free(m2);
}

static void test_check_malformed(void **state)
{
    static const struct {
        uint8_t bytes[16];
        size_t len;
        const char *want;
    } cases[] = {
        {{2, 0, 0, 0, 0}, 5, "E:bad compressed-flag byte"},
        {{0, 0, 0, 0, 2, 0x0b, 0}, 7, "E:invalid wire type"},
        {{0, 0, 0, 0, 2, 0x02, 0}, 7, "E:field number 0"},
        {{0, 0, 0, 0, 2, 0x0a, 2}, 7, "E:field longer than its message"},
        {{0, 0, 0, 0, 3, 0x09, 1, 2}, 8, "E:field cut by the end of the message"},
        {{0, 0, 0, 0, 2, 0x08, 0x80}, 7, "E:varint cut by the end of the message"},
        {{0, 0, 0, 0, 4, 0x0a, 2, 'a', 0}, 9, "E:model_name contains a NUL byte"},
        {{0, 0, 0, 0, 3, 0x0a, 0xa0, 0x02}, 8, "E:field longer than its message"},
    };

    (void)state;
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++)
        assert_check_events(cases[i].bytes, cases[i].len, cases[i].want);

    /* A name over GW_MODEL_NAME_MAX bytes; a 100 kB field 2 is skipped. */
    {
        size_t n = 5 + 3 + GW_MODEL_NAME_MAX + 1, big = 100000;
        uint8_t *p = calloc(1, n > big + 16 ? n : big + 16);

        assert_non_null(p);
        put_prefix(p, (uint32_t)(n - 5));
        p[5] = 0x0a;
        p[6] = (uint8_t)(0x80 | ((GW_MODEL_NAME_MAX + 1) & 0x7f));
        p[7] = (uint8_t)((GW_MODEL_NAME_MAX + 1) >> 7);
        memset(p + 8, 'm', GW_MODEL_NAME_MAX + 1);
        assert_check_events(p, n, "E:model_name too long");

        size_t off = 5;
        put_prefix(p, (uint32_t)(1 + 3 + big + 3));
        p[off++] = 0x12;
        p[off++] = (uint8_t)(0x80 | (big & 0x7f));
        p[off++] = (uint8_t)(0x80 | ((big >> 7) & 0x7f));
        p[off++] = (uint8_t)(big >> 14);
        memset(p + off, 0x0a, big);
        off += big;
        p[off++] = 0x0a;
        p[off++] = 1;
        p[off++] = 'z';
        char got[64];
        check_events(p, off, off / 2, got, sizeof(got));
        assert_string_equal(got, "N1:z");
        free(p);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_scan_real_infer_request_every_split),
        cmocka_unit_test(test_scan_two_byte_length_varint),
        cmocka_unit_test(test_scan_name_length_limit),
        cmocka_unit_test(test_scan_other_kserve_requests),
        cmocka_unit_test(test_scan_field_2_first_is_absent),
        cmocka_unit_test(test_scan_empty_and_compressed),
        cmocka_unit_test(test_scan_malformed),
        cmocka_unit_test(test_scan_valid_but_absent),
        cmocka_unit_test(test_scan_truncated_stream_finishes_absent),
        cmocka_unit_test(test_scan_reads_first_message_only),
        cmocka_unit_test(test_check_every_name_of_every_message),
        cmocka_unit_test(test_check_malformed),
    };
    return cmocka_run_group_tests_name("grpcwire_scan", tests, NULL, NULL);
}
