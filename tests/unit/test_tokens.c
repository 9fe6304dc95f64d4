/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/replica/tokens.c: a token stream depends on the
 * prompt, the seed and the salt and on nothing else (not max_tokens, not the
 * request id); its messages pack the same bytes every time and decode to the
 * documented shape; seed and max_tokens are checked; x-resume-from takes
 * digits only, 0..RP_RESUME_MAX. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "tokens.h"

/* A request with one BYTES input holding <text>, and the parameters given
 * (a negative max_tokens leaves it out; has_seed 0 leaves the seed out). */
struct req {
    Inference__ModelInferRequest r;
    Inference__ModelInferRequest__InferInputTensor in, *inp;
    Inference__InferTensorContents c;
    ProtobufCBinaryData text;
    int64_t shape[1];
    Inference__InferParameter pv[2];
    Inference__ModelInferRequest__ParametersEntry pe[2], *pp[2];
};

static void make(struct req *q, const char *text, int has_seed, int64_t seed, long max_tokens,
                 const char *id)
{
    memset(q, 0, sizeof(*q));
    inference__model_infer_request__init(&q->r);
    inference__model_infer_request__infer_input_tensor__init(&q->in);
    inference__infer_tensor_contents__init(&q->c);
    q->text.data = (uint8_t *)text;
    q->text.len = strlen(text);
    q->c.n_bytes_contents = 1;
    q->c.bytes_contents = &q->text;
    q->shape[0] = 1;
    q->in.name = "PROMPT";
    q->in.datatype = "BYTES";
    q->in.n_shape = 1;
    q->in.shape = q->shape;
    q->in.contents = &q->c;
    q->inp = &q->in;
    q->r.model_name = "llm";
    q->r.id = (char *)id;
    q->r.n_inputs = 1;
    q->r.inputs = &q->inp;
    size_t n = 0;
    if (has_seed) {
        inference__model_infer_request__parameters_entry__init(&q->pe[n]);
        inference__infer_parameter__init(&q->pv[n]);
        q->pv[n].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
        q->pv[n].int64_param = seed;
        q->pe[n].key = "seed";
        q->pe[n].value = &q->pv[n];
        q->pp[n] = &q->pe[n];
        n++;
    }
    if (max_tokens >= 0) {
        inference__model_infer_request__parameters_entry__init(&q->pe[n]);
        inference__infer_parameter__init(&q->pv[n]);
        q->pv[n].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
        q->pv[n].int64_param = max_tokens;
        q->pe[n].key = "max_tokens";
        q->pe[n].value = &q->pv[n];
        q->pp[n] = &q->pe[n];
        n++;
    }
    q->r.n_parameters = n;
    q->r.parameters = q->pp;
}

static uint64_t key_of(const char *text, int64_t seed, long max_tokens, const char *id,
                       uint64_t salt)
{
    struct req q;
    struct rp_tokens t;
    struct rp_error err;
    make(&q, text, 1, seed, max_tokens, id);
    assert_int_equal(rp_tokens_init(&t, &q.r, 32, salt, &err), 0);
    uint64_t k = t.key;
    rp_tokens_free(&t);
    return k;
}

static void test_key_depends_on_prompt_seed_salt_only(void **state)
{
    (void)state;
    uint64_t k = key_of("hello", 42, 10, "a", 0);
    assert_true(key_of("hello", 42, 10, "a", 0) == k);
    assert_true(key_of("hello", 42, 99, "a", 0) == k); /* not max_tokens */
    assert_true(key_of("hello", 42, 10, "other-id", 0) == k);
    assert_true(key_of("hello", 43, 10, "a", 0) != k);
    assert_true(key_of("hellp", 42, 10, "a", 0) != k);
    assert_true(key_of("hello", 42, 10, "a", 12345) != k);
}

static void test_defaults_and_bounds(void **state)
{
    (void)state;
    struct req q;
    struct rp_tokens t;
    struct rp_error err;

    make(&q, "x", 0, 0, -1, "id");
    assert_int_equal(rp_tokens_init(&t, &q.r, 17, 0, &err), 0);
    assert_int_equal(t.end, 17);
    assert_int_equal(t.next, 0);
    assert_string_equal(t.model, "llm");
    assert_string_equal(t.id, "id");
    rp_tokens_free(&t);
    /* No seed is seed 0. */
    make(&q, "x", 0, 0, -1, "id");
    assert_int_equal(rp_tokens_init(&t, &q.r, 17, 0, &err), 0);
    assert_true(t.key == key_of("x", 0, -1, "id", 0));
    rp_tokens_free(&t);

    make(&q, "x", 1, -5, RP_TOKENS_MAX, "id");
    assert_int_equal(rp_tokens_init(&t, &q.r, 17, 0, &err), 0);
    assert_int_equal(t.end, RP_TOKENS_MAX);
    rp_tokens_free(&t);

    long bad[] = {0, RP_TOKENS_MAX + 1};
    for (size_t i = 0; i < 2; i++) {
        make(&q, "x", 1, 1, bad[i], "id");
        assert_int_equal(rp_tokens_init(&t, &q.r, 17, 0, &err), -1);
        assert_int_equal(err.code, GRPC_STATUS_INVALID_ARGUMENT);
        assert_non_null(strstr(err.msg, "max_tokens"));
    }
    /* A seed that is not an integer is refused too. */
    make(&q, "x", 1, 1, 5, "id");
    q.pv[0].parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_STRING_PARAM;
    q.pv[0].string_param = "7";
    assert_int_equal(rp_tokens_init(&t, &q.r, 17, 0, &err), -1);
    assert_non_null(strstr(err.msg, "seed"));
}

static void test_text(void **state)
{
    (void)state;
    char buf[16];
    rp_tokens_text(0, buf);
    assert_string_equal(buf, " ka");
    rp_tokens_text(33, buf);
    assert_string_equal(buf, " lolo");
    for (uint32_t id = 0; id < RP_TOKENS_VOCAB; id++) {
        rp_tokens_text(id, buf);
        assert_true(buf[0] == ' ' && strlen(buf) >= 3 && strlen(buf) <= 7);
    }
    for (long i = 0; i < 1000; i++)
        assert_true(rp_tokens_id(0x1234, i) < RP_TOKENS_VOCAB);
}

static void test_pack(void **state)
{
    (void)state;
    struct req q;
    struct rp_tokens t;
    struct rp_error err;
    uint8_t *a, *b;
    size_t alen, blen;
    char text[16];

    make(&q, "hello", 1, 42, 8, "req-1");
    assert_int_equal(rp_tokens_init(&t, &q.r, 32, 0, &err), 0);
    assert_int_equal(rp_tokens_pack(&t, 5, &a, &alen), 0);
    assert_int_equal(rp_tokens_pack(&t, 5, &b, &blen), 0);
    assert_int_equal(alen, blen);
    assert_memory_equal(a, b, alen);
    free(b);
    assert_int_equal(rp_tokens_pack(&t, 6, &b, &blen), 0);
    assert_true(alen != blen || memcmp(a, b, alen) != 0);
    free(b);

    Inference__ModelStreamInferResponse *r =
        inference__model_stream_infer_response__unpack(NULL, alen, a);
    assert_non_null(r);
    Inference__ModelInferResponse *ir = r->infer_response;
    assert_string_equal(r->error_message, "");
    assert_string_equal(ir->model_name, "llm");
    assert_string_equal(ir->model_version, "1");
    assert_string_equal(ir->id, "req-1");
    assert_int_equal(ir->n_parameters, 1);
    assert_string_equal(ir->parameters[0]->key, "index");
    assert_int_equal(ir->parameters[0]->value->int64_param, 5);
    assert_int_equal(ir->n_outputs, 2);
    assert_string_equal(ir->outputs[0]->name, "token_id");
    assert_string_equal(ir->outputs[0]->datatype, "INT64");
    assert_int_equal(ir->outputs[0]->contents->n_int64_contents, 1);
    uint32_t id = rp_tokens_id(t.key, 5);
    assert_int_equal(ir->outputs[0]->contents->int64_contents[0], id);
    assert_string_equal(ir->outputs[1]->name, "text");
    assert_string_equal(ir->outputs[1]->datatype, "BYTES");
    rp_tokens_text(id, text);
    assert_int_equal(ir->outputs[1]->contents->bytes_contents[0].len, strlen(text));
    assert_memory_equal(ir->outputs[1]->contents->bytes_contents[0].data, text, strlen(text));
    inference__model_stream_infer_response__free_unpacked(r, NULL);
    free(a);
    rp_tokens_free(&t);
}

static int resume(const char *s, long *n, struct rp_error *err)
{
    return rp_resume_parse(s, strlen(s), n, err);
}

static void test_resume_parse(void **state)
{
    (void)state;
    struct rp_error err;
    long n = -1;

    assert_int_equal(resume("0", &n, &err), 0);
    assert_int_equal(n, 0);
    assert_int_equal(resume("25", &n, &err), 0);
    assert_int_equal(n, 25);
    assert_int_equal(resume("007", &n, &err), 0);
    assert_int_equal(n, 7);
    assert_int_equal(resume("1000000000", &n, &err), 0);
    assert_int_equal(n, RP_RESUME_MAX);
    /* Not NUL-terminated: only <len> bytes count. */
    assert_int_equal(rp_resume_parse("12x", 2, &n, &err), 0);
    assert_int_equal(n, 12);

    const char *bad[] = {"",           "-1",          "+1", " 1",  "1 ",
                         "1000000001", "12345678901", "a",  "0x1", "1.0"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        n = -1;
        assert_int_equal(resume(bad[i], &n, &err), -1);
        assert_int_equal(n, -1);
        assert_int_equal(err.code, GRPC_STATUS_INVALID_ARGUMENT);
        assert_non_null(strstr(err.msg, "is not a message index"));
    }
    assert_int_equal(resume("-1", &n, &err), -1);
    assert_string_equal(
        err.msg, "x-resume-from: '-1' is not a message index (a decimal number 0..1000000000)");
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_key_depends_on_prompt_seed_salt_only),
        cmocka_unit_test(test_defaults_and_bounds),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_pack),
        cmocka_unit_test(test_resume_parse),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
