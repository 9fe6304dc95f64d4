/* SPDX-License-Identifier: Apache-2.0 */
/* tokens — the token-streaming model (see tokens.h).
 *
 * The key is a 64-bit FNV-1a hash of the model name, each input tensor as
 * protobuf-c packs it (fields in order, so the same decoded request always
 * packs the same way), each raw_input_contents entry, the seed and the salt;
 * token i is splitmix64 of the key and i. Lengths are hashed before the
 * bytes they count, so no two different prompts share their hashed input.
 */
#include "tokens.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FNV_OFFSET 0xcbf29ce484222325ull
#define FNV_PRIME  0x100000001b3ull

static uint64_t fnv_bytes(uint64_t h, const void *p, size_t len)
{
    const uint8_t *b = p;
    for (size_t i = 0; i < len; i++) {
        h ^= b[i];
        h *= FNV_PRIME;
    }
    return h;
}

/* Hashes <v> as 8 little-endian bytes. */
static uint64_t fnv_u64(uint64_t h, uint64_t v)
{
    uint8_t b[8];
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(v >> (8 * i));
    return fnv_bytes(h, b, sizeof(b));
}

/* Hashes <len> and then the bytes, so concatenations cannot collide. */
static uint64_t fnv_field(uint64_t h, const void *p, size_t len)
{
    return fnv_bytes(fnv_u64(h, len), p, len);
}

static uint64_t splitmix64(uint64_t x)
{
    x += 0x9e3779b97f4a7c15ull;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ull;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebull;
    return x ^ (x >> 31);
}

/* The key of <req>'s prompt with <seed> and <salt>; -1 when out of memory. */
static int prompt_key(const Inference__ModelInferRequest *req, int64_t seed, uint64_t salt,
                      uint64_t *key)
{
    uint64_t h = fnv_field(FNV_OFFSET, req->model_name, strlen(req->model_name));

    h = fnv_u64(h, req->n_inputs);
    for (size_t i = 0; i < req->n_inputs; i++) {
        const ProtobufCMessage *in = &req->inputs[i]->base;
        size_t len = protobuf_c_message_get_packed_size(in);
        uint8_t *buf = malloc(len + 1);
        if (!buf)
            return -1;
        protobuf_c_message_pack(in, buf);
        h = fnv_field(h, buf, len);
        free(buf);
    }
    h = fnv_u64(h, req->n_raw_input_contents);
    for (size_t i = 0; i < req->n_raw_input_contents; i++)
        h = fnv_field(h, req->raw_input_contents[i].data, req->raw_input_contents[i].len);
    h = fnv_u64(h, (uint64_t)seed);
    *key = splitmix64(h ^ salt);
    return 0;
}

int rp_tokens_init(struct rp_tokens *t, const Inference__ModelInferRequest *req, long max_tokens,
                   uint64_t salt, struct rp_error *err)
{
    long long seed = 0, n = max_tokens;

    memset(t, 0, sizeof(*t));
    if (rp_model_int_param(req, "seed", INT64_MIN, INT64_MAX, &seed, err) < 0 ||
        rp_model_int_param(req, "max_tokens", 1, RP_TOKENS_MAX, &n, err) < 0)
        return -1;
    t->model = strdup(req->model_name);
    t->id = strdup(req->id);
    if (!t->model || !t->id || prompt_key(req, (int64_t)seed, salt, &t->key) < 0) {
        rp_tokens_free(t);
        return rp_fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    }
    t->end = (long)n;
    return 0;
}

void rp_tokens_free(struct rp_tokens *t)
{
    free(t->model);
    free(t->id);
    memset(t, 0, sizeof(*t));
}

uint32_t rp_tokens_id(uint64_t key, long index)
{
    uint64_t x = splitmix64(key + (uint64_t)index * 0xd1b54a32d192ed03ull);
    return (uint32_t)(x % RP_TOKENS_VOCAB);
}

void rp_tokens_text(uint32_t id, char buf[16])
{
    static const char *const syl[32] = {"ka", "lo", "mi", "nu", "pe", "ra", "si", "to",
                                        "va", "we", "xi", "yo", "zu", "ba", "de", "fo",
                                        "ga", "hi", "jo", "ku", "le", "mo", "na", "po",
                                        "qu", "ri", "sa", "te", "ul", "vi", "wo", "ze"};
    size_t off = 0;

    buf[off++] = ' ';
    do {
        const char *s = syl[id % 32];
        memcpy(buf + off, s, 2);
        off += 2;
        id /= 32;
    } while (id > 0);
    buf[off] = '\0'; /* ids < 32768: at most 3 syllables, 7 bytes */
}

void rp_token_outputs_init(struct rp_token_outputs *o, int64_t *ids, size_t n, const char *text,
                           size_t textlen)
{
    Inference__ModelInferResponse__InferOutputTensor ot =
        INFERENCE__MODEL_INFER_RESPONSE__INFER_OUTPUT_TENSOR__INIT;
    Inference__InferTensorContents oc = INFERENCE__INFER_TENSOR_CONTENTS__INIT;

    o->tid = o->txt = ot;
    o->cid = o->ctxt = oc;
    o->outs[0] = &o->tid;
    o->outs[1] = &o->txt;
    o->nshape[0] = (int64_t)n;
    o->one[0] = 1;
    o->text.data = (uint8_t *)text;
    o->text.len = textlen;

    o->cid.n_int64_contents = n;
    o->cid.int64_contents = ids;
    o->tid.name = "token_id";
    o->tid.datatype = "INT64";
    o->tid.n_shape = 1;
    o->tid.shape = o->nshape;
    o->tid.contents = &o->cid;

    o->ctxt.n_bytes_contents = 1;
    o->ctxt.bytes_contents = &o->text;
    o->txt.name = "text";
    o->txt.datatype = "BYTES";
    o->txt.n_shape = 1;
    o->txt.shape = o->one;
    o->txt.contents = &o->ctxt;
}

int rp_tokens_pack(const struct rp_tokens *t, long index, uint8_t **out, size_t *len)
{
    Inference__ModelStreamInferResponse resp = INFERENCE__MODEL_STREAM_INFER_RESPONSE__INIT;
    Inference__ModelInferResponse ir = INFERENCE__MODEL_INFER_RESPONSE__INIT;
    struct rp_token_outputs o;
    Inference__InferParameter pv = INFERENCE__INFER_PARAMETER__INIT;
    Inference__ModelInferResponse__ParametersEntry pe =
        INFERENCE__MODEL_INFER_RESPONSE__PARAMETERS_ENTRY__INIT;
    Inference__ModelInferResponse__ParametersEntry *pp = &pe;
    int64_t id_value;
    char text[16];
    uint32_t id = rp_tokens_id(t->key, index);

    rp_tokens_text(id, text);
    id_value = id;
    rp_token_outputs_init(&o, &id_value, 1, text, strlen(text));

    pv.parameter_choice_case = INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM;
    pv.int64_param = index;
    pe.key = "index";
    pe.value = &pv;

    ir.model_name = t->model;
    ir.model_version = RP_MODEL_VERSION;
    ir.id = t->id;
    ir.n_parameters = 1;
    ir.parameters = &pp;
    ir.n_outputs = 2;
    ir.outputs = o.outs;
    resp.infer_response = &ir;

    *len = protobuf_c_message_get_packed_size(&resp.base);
    /* One spare byte: malloc(0) may return NULL, and NULL means ENOMEM. */
    *out = malloc(*len + 1);
    if (!*out)
        return -1;
    protobuf_c_message_pack(&resp.base, *out);
    return 0;
}

int rp_resume_parse(const char *s, size_t len, long *n, struct rp_error *err)
{
    long v = 0;
    int ok = len > 0 && len <= 10;

    for (size_t i = 0; ok && i < len; i++) {
        if (s[i] < '0' || s[i] > '9')
            ok = 0;
        else
            v = v * 10 + (s[i] - '0');
    }
    if (!ok || v > RP_RESUME_MAX)
        return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                       "x-resume-from: '%.*s' is not a message index (a decimal number 0..%ld)",
                       (int)(len < 40 ? len : 40), s, RP_RESUME_MAX);
    *n = v;
    return 0;
}
