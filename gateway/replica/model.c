/* SPDX-License-Identifier: Apache-2.0 */
/* model — the replica's models and the 2x+1 computation (see model.h).
 *
 * Validation runs over every input before anything is allocated, so a bad
 * request costs no memory and the first problem found is the one reported.
 * Raw tensors are decoded byte by byte as little-endian float32, so the
 * result does not depend on the host's byte order.
 */
#include "model.h"

#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int rp_fail(struct rp_error *err, grpc_status_code code, const char *fmt, ...)
{
    va_list ap;
    err->code = code;
    va_start(ap, fmt);
    vsnprintf(err->msg, sizeof(err->msg), fmt, ap);
    va_end(ap);
    return -1;
}

int rp_model_check(const struct rp_models *m, const char *name, const char *version,
                   struct rp_error *err)
{
    for (size_t i = 0; i < m->n; i++) {
        if (strcmp(m->names[i], name) != 0)
            continue;
        if (version[0] && strcmp(version, RP_MODEL_VERSION) != 0)
            return rp_fail(err, GRPC_STATUS_NOT_FOUND,
                           "model '%s' version '%s' is not served by replica %s (it serves "
                           "version " RP_MODEL_VERSION ")",
                           name, version, m->replica_id);
        return 0;
    }
    return rp_fail(err, GRPC_STATUS_NOT_FOUND, "model '%s' is not served by replica %s", name,
                   m->replica_id);
}

int rp_model_is_tokens(const struct rp_models *m, const char *name)
{
    for (size_t i = 0; i < m->ntokens; i++) {
        if (strcmp(m->tokens[i], name) == 0)
            return 1;
    }
    return 0;
}

/* Writes "[d0,d1,...]" into <buf>, cut short with "..." when it is long. */
static const char *shape_str(const Inference__ModelInferRequest__InferInputTensor *in, char *buf,
                             size_t len)
{
    size_t off = 0;
    buf[off++] = '[';
    for (size_t i = 0; i < in->n_shape; i++) {
        int n = snprintf(buf + off, len - off, "%s%lld", i ? "," : "", (long long)in->shape[i]);
        if (n < 0 || (size_t)n >= len - off - 5) {
            snprintf(buf + off, len - off, "...]");
            return buf;
        }
        off += (size_t)n;
    }
    snprintf(buf + off, len - off, "]");
    return buf;
}

/* The name of the first typed field other than fp32_contents that holds
 * values, or NULL. */
static const char *other_contents(const Inference__InferTensorContents *c)
{
    if (c->n_bool_contents)
        return "bool_contents";
    if (c->n_int_contents)
        return "int_contents";
    if (c->n_int64_contents)
        return "int64_contents";
    if (c->n_uint_contents)
        return "uint_contents";
    if (c->n_uint64_contents)
        return "uint64_contents";
    if (c->n_fp64_contents)
        return "fp64_contents";
    if (c->n_bytes_contents)
        return "bytes_contents";
    return NULL;
}

static int has_typed_values(const Inference__InferTensorContents *c)
{
    return c && (c->n_fp32_contents || other_contents(c));
}

/* Checks input <i> of <req> and stores its element count in *count. */
static int check_input(const Inference__ModelInferRequest *req, size_t i, size_t *count,
                       struct rp_error *err)
{
    const Inference__ModelInferRequest__InferInputTensor *in = req->inputs[i];
    const char *name = in->name;
    char shape[96];
    size_t elems = 1;
    int raw = req->n_raw_input_contents > 0;

    if (strcmp(in->datatype, "FP32") != 0)
        return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                       "input '%s': datatype %s not supported, %s takes FP32", name,
                       in->datatype[0] ? in->datatype : "(empty)", req->model_name);
    for (size_t d = 0; d < in->n_shape; d++) {
        int64_t dim = in->shape[d];
        if (dim < 0)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "input '%s': shape %s has a negative dimension", name,
                           shape_str(in, shape, sizeof(shape)));
        if (dim > 0 && elems > RP_MODEL_MAX_ELEMENTS / (uint64_t)dim)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "input '%s': shape %s has more than %zu elements", name,
                           shape_str(in, shape, sizeof(shape)), RP_MODEL_MAX_ELEMENTS);
        elems = dim == 0 ? 0 : elems * (size_t)dim;
    }
    if (raw) {
        size_t got = req->raw_input_contents[i].len;
        if (got != elems * 4)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "input '%s': shape %s needs %zu bytes of raw_input_contents (%zu FP32 "
                           "values) but raw_input_contents[%zu] has %zu bytes",
                           name, shape_str(in, shape, sizeof(shape)), elems * 4, elems, i, got);
    } else {
        const Inference__InferTensorContents *c = in->contents;
        const char *other = c ? other_contents(c) : NULL;
        size_t got = c ? c->n_fp32_contents : 0;
        if (other)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "input '%s': datatype FP32 takes fp32_contents but %s was given", name,
                           other);
        if (got != elems)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "input '%s': shape %s has %zu elements but contents has %zu", name,
                           shape_str(in, shape, sizeof(shape)), elems, got);
    }
    *count = elems;
    return 0;
}

static int check_request(const Inference__ModelInferRequest *req, size_t *counts,
                         struct rp_error *err)
{
    size_t n = req->n_inputs;

    if (n == 0)
        return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                       "request has no inputs; %s takes one or more FP32 inputs", req->model_name);
    if (req->n_raw_input_contents > 0) {
        for (size_t i = 0; i < n; i++) {
            if (has_typed_values(req->inputs[i]->contents))
                return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                               "input '%s': has typed contents but the request also uses "
                               "raw_input_contents; use one or the other for all inputs",
                               req->inputs[i]->name);
        }
        if (req->n_raw_input_contents != n)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "raw_input_contents has %zu entries but the request has %zu inputs",
                           req->n_raw_input_contents, n);
    }
    for (size_t i = 0; i < n; i++) {
        if (check_input(req, i, &counts[i], err) < 0)
            return -1;
    }
    return 0;
}

static float twice_plus_one(float x)
{
    return 2.0f * x + 1.0f;
}

static void compute_raw(const uint8_t *in, uint8_t *out, size_t count)
{
    for (size_t k = 0; k < count; k++, in += 4, out += 4) {
        uint32_t u =
            (uint32_t)in[0] | (uint32_t)in[1] << 8 | (uint32_t)in[2] << 16 | (uint32_t)in[3] << 24;
        float f;
        memcpy(&f, &u, 4);
        f = twice_plus_one(f);
        memcpy(&u, &f, 4);
        out[0] = (uint8_t)u;
        out[1] = (uint8_t)(u >> 8);
        out[2] = (uint8_t)(u >> 16);
        out[3] = (uint8_t)(u >> 24);
    }
}

void rp_model_result_free(struct rp_model_result *r)
{
    for (size_t i = 0; i < r->n; i++) {
        if (r->contents)
            free(r->contents[i].fp32_contents);
        if (r->raw)
            free(r->raw[i].data);
    }
    free(r->tensors);
    free(r->tensor_ptrs);
    free(r->contents);
    free(r->raw);
    free(r->names);
    memset(r, 0, sizeof(*r));
}

/* Allocates the output of input <i> (count values); 0 or -1 on ENOMEM. */
static int compute_output(struct rp_model_result *r, const Inference__ModelInferRequest *req,
                          size_t i, size_t count)
{
    const Inference__ModelInferRequest__InferInputTensor *in = req->inputs[i];
    Inference__ModelInferResponse__InferOutputTensor *t = &r->tensors[i];

    inference__model_infer_response__infer_output_tensor__init(t);
    snprintf(r->names[i], sizeof(r->names[i]), "OUTPUT%zu", i);
    t->name = r->names[i];
    t->datatype = "FP32";
    t->n_shape = in->n_shape;
    t->shape = in->shape;
    r->tensor_ptrs[i] = t;

    if (r->raw) {
        /* malloc(0) may return NULL: keep one byte so NULL means ENOMEM. */
        uint8_t *out = malloc(count * 4 + 1);
        if (!out)
            return -1;
        compute_raw(req->raw_input_contents[i].data, out, count);
        r->raw[i].data = out;
        r->raw[i].len = count * 4;
    } else {
        Inference__InferTensorContents *c = &r->contents[i];
        const float *x = in->contents ? in->contents->fp32_contents : NULL;
        float *y = malloc(count * sizeof(float) + 1);
        if (!y)
            return -1;
        for (size_t k = 0; k < count; k++)
            y[k] = twice_plus_one(x[k]);
        inference__infer_tensor_contents__init(c);
        c->fp32_contents = y;
        c->n_fp32_contents = count;
        t->contents = c;
    }
    return 0;
}

int rp_model_infer(const struct rp_models *m, const Inference__ModelInferRequest *req,
                   struct rp_model_result *out, struct rp_error *err)
{
    struct rp_model_result r;
    size_t n = req->n_inputs, *counts;
    int raw = req->n_raw_input_contents > 0;

    if (rp_model_check(m, req->model_name, req->model_version, err) < 0)
        return -1;
    counts = calloc(n ? n : 1, sizeof(*counts));
    if (!counts)
        return rp_fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
    if (check_request(req, counts, err) < 0)
        goto fail_counts;

    memset(&r, 0, sizeof(r));
    r.n = n;
    r.tensors = calloc(n, sizeof(*r.tensors));
    r.tensor_ptrs = calloc(n, sizeof(*r.tensor_ptrs));
    r.names = calloc(n, sizeof(*r.names));
    if (raw)
        r.raw = calloc(n, sizeof(*r.raw));
    else
        r.contents = calloc(n, sizeof(*r.contents));
    if (!r.tensors || !r.tensor_ptrs || !r.names || (raw ? !r.raw : !r.contents))
        goto fail_oom;
    for (size_t i = 0; i < n; i++) {
        if (compute_output(&r, req, i, counts[i]) < 0)
            goto fail_oom;
    }

    inference__model_infer_response__init(&r.resp);
    r.resp.model_name = req->model_name;
    r.resp.model_version = RP_MODEL_VERSION;
    r.resp.id = req->id;
    r.resp.n_outputs = n;
    r.resp.outputs = r.tensor_ptrs;
    if (raw) {
        r.resp.n_raw_output_contents = n;
        r.resp.raw_output_contents = r.raw;
    }
    free(counts);
    /* Every pointer in r points to the heap or the request, never into r. */
    *out = r;
    return 0;

fail_oom:
    rp_model_result_free(&r);
    rp_fail(err, GRPC_STATUS_RESOURCE_EXHAUSTED, "out of memory");
fail_counts:
    free(counts);
    return -1;
}

void rp_model_metadata(struct rp_model_meta *meta, const char *name)
{
    memset(meta, 0, sizeof(*meta));
    meta->shape[0] = -1;
    meta->versions[0] = RP_MODEL_VERSION;

    inference__model_metadata_response__tensor_metadata__init(&meta->in);
    meta->in.name = "INPUT0";
    meta->in.datatype = "FP32";
    meta->in.n_shape = 1;
    meta->in.shape = meta->shape;
    meta->out = meta->in;
    meta->out.name = "OUTPUT0";
    meta->in_ptr = &meta->in;
    meta->out_ptrs[0] = &meta->out;

    inference__model_metadata_response__init(&meta->resp);
    meta->resp.name = (char *)name;
    meta->resp.n_versions = 1;
    meta->resp.versions = meta->versions;
    meta->resp.platform = RP_MODEL_PLATFORM;
    meta->resp.n_inputs = 1;
    meta->resp.inputs = &meta->in_ptr;
    meta->resp.n_outputs = 1;
    meta->resp.outputs = meta->out_ptrs;
}

void rp_model_metadata_tokens(struct rp_model_meta *meta, const char *name)
{
    rp_model_metadata(meta, name);
    meta->one[0] = 1;
    meta->in.name = "PROMPT";
    meta->in.datatype = "BYTES";
    meta->out.name = "token_id";
    meta->out.datatype = "INT64";
    meta->out.shape = meta->one;
    meta->out2 = meta->out;
    meta->out2.name = "text";
    meta->out2.datatype = "BYTES";
    meta->out_ptrs[1] = &meta->out2;
    meta->resp.n_outputs = 2;
}

int rp_model_int_param(const Inference__ModelInferRequest *req, const char *key, long long lo,
                       long long hi, long long *v, struct rp_error *err)
{
    for (size_t i = 0; i < req->n_parameters; i++) {
        const Inference__ModelInferRequest__ParametersEntry *e = req->parameters[i];
        long long x;
        if (strcmp(e->key, key) != 0)
            continue;
        if (!e->value)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "parameter '%s' has no value; give an int64_param", key);
        switch (e->value->parameter_choice_case) {
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_INT64_PARAM:
            x = (long long)e->value->int64_param;
            break;
        case INFERENCE__INFER_PARAMETER__PARAMETER_CHOICE_UINT64_PARAM:
            if (e->value->uint64_param > (unsigned long long)hi)
                return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                               "parameter '%s' is %llu; it must be between %lld and %lld", key,
                               (unsigned long long)e->value->uint64_param, lo, hi);
            x = (long long)e->value->uint64_param;
            break;
        default:
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "parameter '%s' must be an int64_param", key);
        }
        if (x < lo || x > hi)
            return rp_fail(err, GRPC_STATUS_INVALID_ARGUMENT,
                           "parameter '%s' is %lld; it must be between %lld and %lld", key, x, lo,
                           hi);
        *v = x;
        return 0;
    }
    return 0;
}

int rp_model_stream_responses(const Inference__ModelInferRequest *req, long *n,
                              struct rp_error *err)
{
    long long v = 1;
    if (rp_model_int_param(req, "stream_responses", 1, RP_MODEL_MAX_STREAM_RESPONSES, &v, err) < 0)
        return -1;
    *n = (long)v;
    return 0;
}

int rp_model_pad_bytes(const Inference__ModelInferRequest *req, size_t *n, struct rp_error *err)
{
    long long v = 0;
    if (rp_model_int_param(req, "response_pad_bytes", 0, RP_MODEL_MAX_PAD_BYTES, &v, err) < 0)
        return -1;
    *n = (size_t)v;
    return 0;
}
