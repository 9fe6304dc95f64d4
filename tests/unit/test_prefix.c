/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/route/prefix.c: the prompt's chained block
 * hashes. Requests are encoded here field by field (so packed and unpacked
 * ids, raw contents and malformed bytes are all in reach) and once through
 * the generated protobuf-c code; every hash is checked against a reference
 * written straight from the definition in prefix.h, and pinned values fix
 * that definition for every gateway and replica. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <xxhash.h>

#include "grpc_predict_v2.pb-c.h"
#include "base/grpcwire.h"
#include "route/prefix.h"

/* --- a small protobuf writer --------------------------------------------------- */

struct pb {
    uint8_t b[16384];
    size_t n;
};

static void pb_raw(struct pb *m, const void *p, size_t len)
{
    assert_true(m->n + len <= sizeof(m->b));
    memcpy(m->b + m->n, p, len);
    m->n += len;
}

static void pb_varint(struct pb *m, uint64_t v)
{
    uint8_t c;
    do {
        c = (uint8_t)(v & 0x7f);
        v >>= 7;
        if (v)
            c |= 0x80;
        pb_raw(m, &c, 1);
    } while (v);
}

static void pb_uint(struct pb *m, unsigned field, uint64_t v)
{
    pb_varint(m, (uint64_t)field << 3 | GW_PB_VARINT);
    pb_varint(m, v);
}

static void pb_bytes(struct pb *m, unsigned field, const void *p, size_t len)
{
    pb_varint(m, (uint64_t)field << 3 | GW_PB_LEN);
    pb_varint(m, len);
    pb_raw(m, p, len);
}

static void pb_str(struct pb *m, unsigned field, const char *s)
{
    pb_bytes(m, field, s, strlen(s));
}

static void pb_sub(struct pb *m, unsigned field, const struct pb *sub)
{
    pb_bytes(m, field, sub->b, sub->n);
}

/* --- reference: the definition, written out ------------------------------------ */

static size_t ref_text(const char *s, size_t len, uint32_t block, uint32_t max, uint64_t *out)
{
    uint64_t h = 0;
    size_t n = 0;
    for (; (n + 1) * block <= len && n < max; n++)
        out[n] = h = XXH3_64bits_withSeed(s + n * block, block, h);
    return n;
}

static size_t ref_ids(const int64_t *ids, size_t count, uint32_t block, uint32_t max, uint64_t *out)
{
    uint8_t buf[GW_PREFIX_BLOCK_MAX * 8];
    uint64_t h = 0;
    size_t n = 0;
    for (; (n + 1) * block <= count && n < max; n++) {
        for (size_t i = 0; i < block; i++)
            for (int b = 0; b < 8; b++)
                buf[i * 8 + b] = (uint8_t)((uint64_t)ids[n * block + i] >> (8 * b));
        out[n] = h = XXH3_64bits_withSeed(buf, (size_t)block * 8, h);
    }
    return n;
}

/* --- request builders -------------------------------------------------------- */

static const char TEXT[] = "The quick brown fox jumps over the lazy dog";
#define NIDS 40
static int64_t IDS[NIDS];

static void ids_init(void)
{
    for (int i = 0; i < NIDS; i++)
        IDS[i] = i % 7 == 3 ? -(int64_t)i * 1000003 : (int64_t)i * 40961 + 1;
}

/* ModelInferRequest header fields, and a first input that is not the prompt. */
static void req_head(struct pb *m, int with_other_input)
{
    struct pb t = {.n = 0};
    pb_str(m, 1, "llm");
    pb_str(m, 3, "req-1");
    if (with_other_input) {
        pb_str(&t, 1, "max_tokens");
        pb_str(&t, 2, "INT32");
        pb_uint(&t, 3, 1);
        pb_sub(m, 5, &t);
    }
}

static void tensor_head(struct pb *t, const char *name, const char *dtype, size_t count)
{
    pb_str(t, 1, name);
    pb_str(t, 2, dtype);
    pb_uint(t, 3, 1);
    pb_uint(t, 3, count);
}

enum enc { ENC_UNPACKED, ENC_PACKED, ENC_RAW };

static void put_le(struct pb *m, uint64_t v, int width)
{
    for (int b = 0; b < width; b++) {
        uint8_t c = (uint8_t)(v >> (8 * b));
        pb_raw(m, &c, 1);
    }
}

/* A request whose input "input_ids" holds IDS[0..count) as <dtype>. */
static void build_ids(struct pb *m, const char *dtype, enum enc enc, size_t count)
{
    int is32 = strcmp(dtype, "INT32") == 0;
    unsigned field = is32 ? 2 : 3;
    struct pb t = {.n = 0}, c = {.n = 0}, p = {.n = 0};

    req_head(m, 1);
    tensor_head(&t, "input_ids", dtype, count);
    for (size_t i = 0; i < count; i++) {
        uint64_t v = is32 ? (uint64_t)(int64_t)(int32_t)IDS[i] : (uint64_t)IDS[i];
        if (enc == ENC_UNPACKED)
            pb_uint(&c, field, v);
        else if (enc == ENC_PACKED)
            pb_varint(&p, v);
        else
            put_le(&p, v, is32 ? 4 : 8);
    }
    if (enc == ENC_PACKED)
        pb_sub(&c, field, &p);
    if (enc != ENC_RAW)
        pb_sub(&t, 5, &c);
    pb_sub(m, 5, &t);
    if (enc == ENC_RAW) {
        struct pb other = {.n = 0};
        put_le(&other, 1, 4);
        pb_sub(m, 7, &other); /* raw_input_contents[0]: max_tokens */
        pb_sub(m, 7, &p);     /* raw_input_contents[1]: input_ids */
    }
}

/* A request whose input "text_input" holds <s> as BYTES. */
static void build_text(struct pb *m, const char *s, size_t len, enum enc enc)
{
    struct pb t = {.n = 0}, c = {.n = 0}, raw = {.n = 0};

    req_head(m, 1);
    tensor_head(&t, "text_input", "BYTES", 1);
    if (enc != ENC_RAW) {
        pb_bytes(&c, 8, s, len);
        pb_bytes(&c, 8, "second element", 14); /* not the prompt */
        pb_sub(&t, 5, &c);
    }
    pb_sub(m, 5, &t);
    if (enc == ENC_RAW) {
        struct pb other = {.n = 0};
        put_le(&other, 1, 4);
        pb_sub(m, 7, &other);
        put_le(&raw, len, 4);
        pb_raw(&raw, s, len);
        put_le(&raw, 3, 4);
        pb_raw(&raw, "xyz", 3);
        pb_sub(m, 7, &raw);
    }
}

static int run(const struct pb *m, const char *input, uint32_t block, uint32_t max, uint64_t *out,
               size_t *n)
{
    struct gw_prefix_params pp = {.input = input, .block = block, .max_blocks = max};
    const char *why = NULL;
    int r = gw_prefix_hash(m->b, m->n, &pp, out, n, &why);
    if (r != GW_PREFIX_OK) {
        assert_non_null(why);
        assert_int_equal(*n, 0);
    }
    return r;
}

/* --- tests ------------------------------------------------------------------- */

/* Text, from contents and from raw contents, at several block sizes and caps. */
static void test_text(void **state)
{
    static const struct {
        enum enc enc;
        uint32_t block, max;
        size_t n;
    } cases[] = {
        {ENC_UNPACKED, 8, 16, 5},    {ENC_RAW, 8, 16, 5},      {ENC_UNPACKED, 4, 3, 3},
        {ENC_RAW, 4, 3, 3},          {ENC_UNPACKED, 43, 9, 1}, {ENC_RAW, 44, 9, 0},
        {ENC_UNPACKED, 1, 1024, 43},
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pb m = {.n = 0};
        uint64_t got[1024], want[1024];
        size_t n, wn;
        build_text(&m, TEXT, strlen(TEXT), cases[i].enc);
        assert_int_equal(run(&m, "text_input", cases[i].block, cases[i].max, got, &n),
                         GW_PREFIX_OK);
        wn = ref_text(TEXT, strlen(TEXT), cases[i].block, cases[i].max, want);
        assert_int_equal(n, cases[i].n);
        assert_int_equal(wn, cases[i].n);
        assert_memory_equal(got, want, n * sizeof(got[0]));
    }
}

/* Ids: every encoding of INT32 and INT64 gives the same hashes. */
static void test_ids_every_encoding_agrees(void **state)
{
    static const struct {
        const char *dtype;
        enum enc enc;
    } cases[] = {
        {"INT64", ENC_UNPACKED}, {"INT64", ENC_PACKED}, {"INT64", ENC_RAW},
        {"INT32", ENC_UNPACKED}, {"INT32", ENC_PACKED}, {"INT32", ENC_RAW},
    };
    static const struct {
        uint32_t block, max;
        size_t count, n;
    } shapes[] = {
        {16, 8, NIDS, 2}, {4, 3, NIDS, 3}, {1, 1024, NIDS, NIDS}, {41, 4, NIDS, 0}, {8, 8, 0, 0}};
    for (size_t s = 0; s < sizeof(shapes) / sizeof(shapes[0]); s++) {
        uint64_t want[1024];
        size_t wn = ref_ids(IDS, shapes[s].count, shapes[s].block, shapes[s].max, want);
        assert_int_equal(wn, shapes[s].n);
        for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
            struct pb m = {.n = 0};
            uint64_t got[1024];
            size_t n;
            build_ids(&m, cases[i].dtype, cases[i].enc, shapes[s].count);
            assert_int_equal(run(&m, "input_ids", shapes[s].block, shapes[s].max, got, &n),
                             GW_PREFIX_OK);
            assert_int_equal(n, wn);
            assert_memory_equal(got, want, n * sizeof(got[0]));
        }
    }
}

/* Block i's hash covers blocks 0..i: a change in block 0 changes every hash,
 * a change in the last block only the last. */
static void test_chain(void **state)
{
    char s[64];
    uint64_t a[8], b[8];
    size_t na, nb;
    struct pb m = {.n = 0};

    memset(s, 'a', sizeof(s));
    build_text(&m, s, sizeof(s), ENC_UNPACKED);
    assert_int_equal(run(&m, "text_input", 8, 8, a, &na), GW_PREFIX_OK);
    s[0] = 'b';
    m.n = 0;
    build_text(&m, s, sizeof(s), ENC_UNPACKED);
    assert_int_equal(run(&m, "text_input", 8, 8, b, &nb), GW_PREFIX_OK);
    assert_int_equal(na, 8);
    assert_int_equal(nb, 8);
    for (int i = 0; i < 8; i++)
        assert_true(a[i] != b[i]);
    s[0] = 'a';
    s[63] = 'z';
    m.n = 0;
    build_text(&m, s, sizeof(s), ENC_UNPACKED);
    assert_int_equal(run(&m, "text_input", 8, 8, b, &nb), GW_PREFIX_OK);
    assert_memory_equal(a, b, 7 * sizeof(a[0]));
    assert_true(a[7] != b[7]);
    /* identical blocks still hash differently along the chain */
    assert_true(a[0] != a[1]);
}

/* Pinned values: the definition, fixed for every gateway and replica. */
static void test_pinned_vectors(void **state)
{
    static const uint64_t text8[5] = {
        0x4fdd94d918ebefb3ull, 0xf0722b7523dcafb9ull, 0x3596459f40ed056cull,
        0x68a5026f2e9293a5ull, 0xe17eae5b41d66580ull,
    };
    static const uint64_t ids4[3] = {
        0x53e911333a923397ull,
        0x5be3faead2529cebull,
        0x2abcbc284eb48d43ull,
    };
    uint64_t got[8];
    size_t n;
    struct pb m = {.n = 0}, t = {.n = 0}, c = {.n = 0}, p = {.n = 0};

    /* XXH3 itself: the library's own reference value for empty input */
    assert_true(XXH3_64bits("", 0) == 0x2D06800538D394C2ull);
    build_text(&m, TEXT, strlen(TEXT), ENC_UNPACKED);
    assert_int_equal(run(&m, "text_input", 8, 8, got, &n), GW_PREFIX_OK);
    assert_int_equal(n, 5);
    assert_memory_equal(got, text8, sizeof(text8));

    /* ids 1..12 in blocks of 4, as INT32 packed contents */
    m.n = 0;
    pb_str(&t, 1, "input_ids");
    pb_str(&t, 2, "INT32");
    for (int i = 1; i <= 12; i++)
        pb_varint(&p, (uint64_t)i);
    pb_sub(&c, 2, &p);
    pb_sub(&t, 5, &c);
    pb_sub(&m, 5, &t);
    assert_int_equal(run(&m, "input_ids", 4, 8, got, &n), GW_PREFIX_OK);
    assert_int_equal(n, 3);
    assert_memory_equal(got, ids4, sizeof(ids4));
}

/* A request serialized by protobuf-c, with parameters, shapes and outputs
 * around the prompt, reads as the hand-written one. */
static void test_protobuf_c_request(void **state)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor in =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    Inference__ModelInferRequest__InferInputTensor *inputs[1] = {&in};
    Inference__InferTensorContents contents = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    Inference__ModelInferRequest__InferRequestedOutputTensor out =
        INFERENCE__MODEL_INFER_REQUEST__INFER_REQUESTED_OUTPUT_TENSOR__INIT;
    Inference__ModelInferRequest__InferRequestedOutputTensor *outputs[1] = {&out};
    int64_t shape[2] = {1, NIDS};
    struct pb m = {.n = 0};
    uint64_t got[8], want[8];
    size_t n;

    req.model_name = "llm";
    req.id = "r";
    in.name = "input_ids";
    in.datatype = "INT64";
    in.n_shape = 2;
    in.shape = shape;
    contents.n_int64_contents = NIDS;
    contents.int64_contents = IDS;
    in.contents = &contents;
    out.name = "text_output";
    req.n_inputs = 1;
    req.inputs = inputs;
    req.n_outputs = 1;
    req.outputs = outputs;
    m.n = inference__model_infer_request__get_packed_size(&req);
    assert_true(m.n <= sizeof(m.b));
    assert_int_equal(inference__model_infer_request__pack(&req, m.b), m.n);
    assert_int_equal(run(&m, "input_ids", 16, 8, got, &n), GW_PREFIX_OK);
    assert_int_equal(n, 2);
    assert_int_equal(ref_ids(IDS, NIDS, 16, 8, want), 2);
    assert_memory_equal(got, want, sizeof(got[0]) * 2);
}

/* Several contents occurrences merge, in order, as protobuf merges them;
 * of a repeated name the last counts; of a repeated input the first. */
static void test_merge_and_repeats(void **state)
{
    struct pb m = {.n = 0}, t = {.n = 0}, c1 = {.n = 0}, c2 = {.n = 0}, t2 = {.n = 0};
    uint64_t got[8], want[8];
    size_t n;

    req_head(&m, 0);
    pb_str(&t, 1, "other");
    tensor_head(&t, "input_ids", "INT64", NIDS); /* second name wins */
    for (int i = 0; i < 20; i++)
        pb_uint(&c1, 3, (uint64_t)IDS[i]);
    for (int i = 20; i < NIDS; i++)
        pb_uint(&c2, 3, (uint64_t)IDS[i]);
    pb_sub(&t, 5, &c1);
    pb_uint(&t, 3, 7); /* a shape between the two contents */
    pb_sub(&t, 5, &c2);
    pb_sub(&m, 5, &t);
    /* a second input of the same name, ignored */
    tensor_head(&t2, "input_ids", "INT64", 1);
    pb_sub(&m, 5, &t2);
    assert_int_equal(run(&m, "input_ids", 10, 8, got, &n), GW_PREFIX_OK);
    assert_int_equal(n, 4);
    assert_int_equal(ref_ids(IDS, NIDS, 10, 8, want), 4);
    assert_memory_equal(got, want, sizeof(got[0]) * 4);
    assert_int_equal(run(&m, "other", 10, 8, got, &n), GW_PREFIX_NO_INPUT);
}

/* The ways a request gives no hashes. */
static void test_refusals(void **state)
{
    /* automatic, not static: the byte strings are compound literals */
    const struct {
        const char *what;
        const uint8_t *bytes;
        size_t len;
        const char *input;
        int status;
    } cases[] = {
#define B(...) (const uint8_t[]){__VA_ARGS__}, sizeof((const uint8_t[]){__VA_ARGS__})
        {"empty request", (const uint8_t *)"", 0, "p", GW_PREFIX_NO_INPUT},
        {"other input only", B(0x2a, 0x03, 0x0a, 0x01, 'q'), "p", GW_PREFIX_NO_INPUT},
        {"no data at all", B(0x2a, 0x0a, 0x0a, 0x01, 'p', 0x12, 0x05, 'B', 'Y', 'T', 'E', 'S'), "p",
         GW_PREFIX_NO_INPUT},
        {"raw list too short", B(0x2a, 0x0a, 0x0a, 0x01, 'p', 0x12, 0x05, 'I', 'N', 'T', '3', '2'),
         "p", GW_PREFIX_NO_INPUT},
        {"FP32", B(0x2a, 0x09, 0x0a, 0x01, 'p', 0x12, 0x04, 'F', 'P', '3', '2'), "p",
         GW_PREFIX_WRONG_TYPE},
        {"no datatype", B(0x2a, 0x03, 0x0a, 0x01, 'p'), "p", GW_PREFIX_WRONG_TYPE},
        {"INT32 with int64_contents",
         B(0x2a, 0x0e, 0x0a, 0x01, 'p', 0x12, 0x05, 'I', 'N', 'T', '3', '2', 0x2a, 0x02, 0x18,
           0x01),
         "p", GW_PREFIX_WRONG_TYPE},
        {"BYTES with fp32_contents",
         B(0x2a, 0x11, 0x0a, 0x01, 'p', 0x12, 0x05, 'B', 'Y', 'T', 'E', 'S', 0x2a, 0x05, 0x35, 0, 0,
           0, 0),
         "p", GW_PREFIX_WRONG_TYPE},
        {"truncated varint", B(0x0a, 0x80), "p", GW_PREFIX_MALFORMED},
        {"truncated tag", B(0x80), "p", GW_PREFIX_MALFORMED},
        {"length past end", B(0x2a, 0x05, 0x0a, 0x01), "p", GW_PREFIX_MALFORMED},
        {"length past end inside the input", B(0x2a, 0x03, 0x0a, 0x05, 'p'), "p",
         GW_PREFIX_MALFORMED},
        {"field number 0", B(0x02, 0x00), "p", GW_PREFIX_MALFORMED},
        {"wire type 3", B(0x0b), "p", GW_PREFIX_MALFORMED},
        {"varint over 10 bytes",
         B(0x08, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0x01), "p",
         GW_PREFIX_MALFORMED},
        {"fixed64 cut", B(0x09, 1, 2, 3), "p", GW_PREFIX_MALFORMED},
        {"packed ids cut",
         B(0x2a, 0x0f, 0x0a, 0x01, 'p', 0x12, 0x05, 'I', 'N', 'T', '6', '4', 0x2a, 0x03, 0x1a, 0x01,
           0x80),
         "p", GW_PREFIX_MALFORMED},
        {"bad contents",
         B(0x2a, 0x0e, 0x0a, 0x01, 'p', 0x12, 0x05, 'I', 'N', 'T', '6', '4', 0x2a, 0x02, 0x1a,
           0x05),
         "p", GW_PREFIX_MALFORMED},
        {"raw BYTES element cut",
         B(0x2a, 0x0a, 0x0a, 0x01, 'p', 0x12, 0x05, 'B', 'Y', 'T', 'E', 'S', 0x3a, 0x05, 0x09, 0, 0,
           0, 'a'),
         "p", GW_PREFIX_MALFORMED},
        {"raw BYTES length cut",
         B(0x2a, 0x0a, 0x0a, 0x01, 'p', 0x12, 0x05, 'B', 'Y', 'T', 'E', 'S', 0x3a, 0x02, 0x01, 0),
         "p", GW_PREFIX_MALFORMED},
        {"raw INT32 not whole",
         B(0x2a, 0x0a, 0x0a, 0x01, 'p', 0x12, 0x05, 'I', 'N', 'T', '3', '2', 0x3a, 0x06, 1, 0, 0, 0,
           2, 0),
         "p", GW_PREFIX_MALFORMED},
        {"raw INT64 not whole",
         B(0x2a, 0x0a, 0x0a, 0x01, 'p', 0x12, 0x05, 'I', 'N', 'T', '6', '4', 0x3a, 0x04, 1, 0, 0,
           0),
         "p", GW_PREFIX_MALFORMED},
#undef B
    };
    for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
        struct pb m = {.n = 0};
        uint64_t got[4];
        size_t n = 99;
        pb_raw(&m, cases[i].bytes, cases[i].len);
        int r = run(&m, cases[i].input, 1, 4, got, &n);
        if (r != cases[i].status)
            fail_msg("%s: got %d, want %d", cases[i].what, r, cases[i].status);
    }
}

/* Known fields of an unexpected wire type are skipped, as protobuf parsers
 * skip them; empty raw BYTES is an empty prompt. */
static void test_skips(void **state)
{
    static const uint8_t varint_inputs[] = {0x28, 0x05, 0x38, 0x01};
    static const uint8_t empty_raw[] = {0x2a, 0x0a, 0x0a, 0x01, 'p', 0x12, 0x05,
                                        'B',  'Y',  'T',  'E',  'S', 0x3a, 0x00};
    struct pb m = {.n = 0};
    uint64_t got[4];
    size_t n;

    pb_raw(&m, varint_inputs, sizeof(varint_inputs));
    assert_int_equal(run(&m, "p", 1, 4, got, &n), GW_PREFIX_NO_INPUT);
    m.n = 0;
    pb_raw(&m, empty_raw, sizeof(empty_raw));
    assert_int_equal(run(&m, "p", 1, 4, got, &n), GW_PREFIX_OK);
    assert_int_equal(n, 0);
}

static void test_params_out_of_range(void **state)
{
    static const struct gw_prefix_params bad[] = {
        {"p", 0, 4},  {"p", GW_PREFIX_BLOCK_MAX + 1, 4},
        {"p", 4, 0},  {"p", 4, GW_PREFIX_BLOCKS_MAX + 1},
        {NULL, 4, 4},
    };
    uint64_t got[4];
    size_t n;
    const char *why;
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(gw_prefix_hash((const uint8_t *)"", 0, &bad[i], got, &n, &why),
                         GW_PREFIX_EINVAL);
}

/* The framed form: a gRPC length prefix, then the message. */
static void test_grpc_framed(void **state)
{
    struct gw_prefix_params pp = {.input = "text_input", .block = 8, .max_blocks = 8};
    struct pb m = {.n = 0};
    uint8_t f[sizeof(m.b) + 16];
    uint64_t got[8], want[8];
    size_t n, wn;
    const char *why;

    build_text(&m, TEXT, strlen(TEXT), ENC_UNPACKED);
    f[0] = 0;
    f[1] = (uint8_t)(m.n >> 24);
    f[2] = (uint8_t)(m.n >> 16);
    f[3] = (uint8_t)(m.n >> 8);
    f[4] = (uint8_t)m.n;
    memcpy(f + 5, m.b, m.n);
    memcpy(f + 5 + m.n, "\x00\x00\x00", 3); /* the next message's start: ignored */
    assert_int_equal(gw_prefix_hash_grpc(f, 5 + m.n + 3, &pp, got, &n, &why), GW_PREFIX_OK);
    wn = ref_text(TEXT, strlen(TEXT), 8, 8, want);
    assert_int_equal(n, wn);
    assert_memory_equal(got, want, n * sizeof(got[0]));
    assert_int_equal(gw_prefix_hash_grpc(f, 5 + m.n - 1, &pp, got, &n, &why), GW_PREFIX_MALFORMED);
    assert_int_equal(gw_prefix_hash_grpc(f, 4, &pp, got, &n, &why), GW_PREFIX_MALFORMED);
    f[0] = 1;
    assert_int_equal(gw_prefix_hash_grpc(f, 5 + m.n, &pp, got, &n, &why), GW_PREFIX_COMPRESSED);
    f[0] = 2;
    assert_int_equal(gw_prefix_hash_grpc(f, 5 + m.n, &pp, got, &n, &why), GW_PREFIX_MALFORMED);
}

/* grpcwire's contiguous reader: each wire type, and the end. */
static void test_pb_next(void **state)
{
    static const uint8_t msg[] = {0x08, 0x96, 0x01, 0x11, 1,   0,    0, 0, 0, 0, 0,
                                  0x80, 0x1a, 0x02, 'h',  'i', 0x25, 4, 3, 2, 1};
    struct gw_pb_field f;
    size_t pos = 0;
    const char *why = NULL;

    assert_int_equal(gw_pb_next(msg, sizeof(msg), &pos, &f, &why), 1);
    assert_true(f.number == 1 && f.wire == GW_PB_VARINT && f.value == 150);
    assert_int_equal(gw_pb_next(msg, sizeof(msg), &pos, &f, &why), 1);
    assert_true(f.number == 2 && f.wire == GW_PB_FIXED64 && f.value == 0x8000000000000001ull);
    assert_int_equal(gw_pb_next(msg, sizeof(msg), &pos, &f, &why), 1);
    assert_true(f.number == 3 && f.wire == GW_PB_LEN && f.len == 2 && f.data == msg + 14);
    assert_int_equal(gw_pb_next(msg, sizeof(msg), &pos, &f, &why), 1);
    assert_true(f.number == 4 && f.wire == GW_PB_FIXED32 && f.value == 0x01020304);
    assert_int_equal(gw_pb_next(msg, sizeof(msg), &pos, &f, &why), 0);
    assert_int_equal(pos, sizeof(msg));
    assert_null(why);
    pos = 0;
    assert_int_equal(gw_pb_next(msg, 13, &pos, &f, &why), 1);
    assert_int_equal(gw_pb_next(msg, 13, &pos, &f, &why), 1);
    assert_int_equal(gw_pb_next(msg, 13, &pos, &f, &why), -1);
    assert_int_equal(pos, 12);
    assert_non_null(why);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_ids_every_encoding_agrees),
        cmocka_unit_test(test_chain),
        cmocka_unit_test(test_pinned_vectors),
        cmocka_unit_test(test_protobuf_c_request),
        cmocka_unit_test(test_merge_and_repeats),
        cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_skips),
        cmocka_unit_test(test_params_out_of_range),
        cmocka_unit_test(test_grpc_framed),
        cmocka_unit_test(test_pb_next),
    };
    ids_init();
    return cmocka_run_group_tests(tests, NULL, NULL);
}
