/* SPDX-License-Identifier: Apache-2.0 */
/* c_client: a KServe v2 ModelInfer client on the grpc core C API, used by the
 * integration tests to show that a standard grpc-core client works through
 * the gateway.
 *
 * Each call sends one FP32 tensor (typed `contents` or `raw_input_contents`)
 * and checks that the answer is OUTPUT0 = 2x + 1 with the same shape, in the
 * same representation. It prints one JSON line per call (status, message,
 * the x-replica-id seen in the initial metadata) and a summary line, and
 * exits 0 only when every call ended with the expected status and every
 * check passed. Calls run one after another on one channel, each on its own
 * pluck completion queue, so the code stays linear and easy to follow.
 */
#include <errno.h>
#include <getopt.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <grpc/byte_buffer.h>
#include <grpc/byte_buffer_reader.h>
#include <grpc/grpc.h>
#include <grpc/grpc_security.h>
#include <grpc/support/time.h>

#include "base/grpcwire.h"
#include "grpc_predict_v2.pb-c.h"

#define CC_METHOD       "/inference.GRPCInferenceService/ModelInfer"
#define CC_MAX_REPLICAS 64
#define CC_ID_LEN       128

struct cc_opts {
    const char *target;
    const char *model_name; /* KServe model_name in the request */
    const char *x_model;    /* x-model metadata, NULL = not sent */
    const char *route_key;  /* x-route-key metadata, NULL = not sent */
    int raw;                /* 1 = raw_input_contents, 0 = typed contents */
    long count;
    long deadline_ms; /* 0 = no deadline */
    long elements;
    int expect_status; /* grpc_status_code expected for every call */
    int same_replica;  /* every call must see the same x-replica-id */
    int min_replicas;  /* at least that many distinct x-replica-id */
};

struct cc_result {
    grpc_status_code status;
    char message[256];
    char replica[CC_ID_LEN];
    char check[256]; /* empty = every check passed */
};

/* Status names come from the gateway's grpcwire module (one table). */
static const char *cc_status_name(int code)
{
    return gw_grpc_status_name(code);
}

/* Accepts a status name ("NOT_FOUND") or number ("5"); returns -1 otherwise. */
static int cc_parse_status(const char *s)
{
    return gw_grpc_status_parse(s);
}

/* Writes <s> as a JSON string body (without quotes) into <out>. */
static void cc_json_escape(char *out, size_t cap, const char *s, size_t len)
{
    size_t o = 0;

    for (size_t i = 0; i < len && o + 7 < cap; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') {
            out[o++] = '\\';
            out[o++] = (char)c;
        } else if (c < 0x20) {
            o += (size_t)snprintf(out + o, cap - o, "\\u%04x", c);
        } else {
            out[o++] = (char)c;
        }
    }
    out[o] = '\0';
}

/* The input value of element <i>: exact in float32, so 2x + 1 is exact too. */
static float cc_input_value(long i)
{
    return (float)(i % 4096) * 0.5f - 512.0f;
}

static void cc_fail(struct cc_result *r, const char *what)
{
    if (r->check[0] == '\0')
        snprintf(r->check, sizeof(r->check), "%s", what);
}

/* Checks one ModelInferResponse against the request that was sent. */
static void cc_check_response(const struct cc_opts *o, const uint8_t *buf, size_t len,
                              struct cc_result *r)
{
    Inference__ModelInferResponse *resp;
    const Inference__ModelInferResponse__InferOutputTensor *out;

    resp = inference__model_infer_response__unpack(NULL, len, buf);
    if (resp == NULL) {
        cc_fail(r, "response is not a ModelInferResponse");
        return;
    }
    if (resp->n_outputs != 1) {
        cc_fail(r, "expected exactly one output tensor");
        goto done;
    }
    out = resp->outputs[0];
    if (strcmp(out->name, "OUTPUT0") != 0)
        cc_fail(r, "output tensor is not named OUTPUT0");
    if (strcmp(out->datatype, "FP32") != 0)
        cc_fail(r, "output datatype is not FP32");
    if (out->n_shape != 1 || out->shape[0] != o->elements)
        cc_fail(r, "output shape differs from the input shape");
    if (o->raw) {
        if (resp->n_raw_output_contents != 1 ||
            resp->raw_output_contents[0].len != (size_t)o->elements * 4) {
            cc_fail(r, "raw_output_contents missing or of the wrong size");
            goto done;
        }
        for (long i = 0; i < o->elements; i++) {
            float v;
            memcpy(&v, resp->raw_output_contents[0].data + i * 4, 4); /* little-endian host */
            if (v != 2.0f * cc_input_value(i) + 1.0f) {
                cc_fail(r, "raw output value is not 2x+1");
                break;
            }
        }
    } else {
        if (out->contents == NULL || out->contents->n_fp32_contents != (size_t)o->elements) {
            cc_fail(r, "fp32_contents missing or of the wrong size");
            goto done;
        }
        for (long i = 0; i < o->elements; i++) {
            if (out->contents->fp32_contents[i] != 2.0f * cc_input_value(i) + 1.0f) {
                cc_fail(r, "typed output value is not 2x+1");
                break;
            }
        }
    }
done:
    inference__model_infer_response__free_unpacked(resp, NULL);
}

/* Builds and packs the request; caller frees the returned buffer with free(). */
static uint8_t *cc_pack_request(const struct cc_opts *o, size_t *len)
{
    Inference__ModelInferRequest req = INFERENCE__MODEL_INFER_REQUEST__INIT;
    Inference__ModelInferRequest__InferInputTensor in =
        INFERENCE__MODEL_INFER_REQUEST__INFER_INPUT_TENSOR__INIT;
    Inference__ModelInferRequest__InferInputTensor *inputs[1] = {&in};
    Inference__InferTensorContents contents = INFERENCE__INFER_TENSOR_CONTENTS__INIT;
    ProtobufCBinaryData raw;
    int64_t shape[1];
    float *values;
    uint8_t *buf;

    values = malloc((size_t)o->elements * sizeof(float));
    if (values == NULL)
        return NULL;
    for (long i = 0; i < o->elements; i++)
        values[i] = cc_input_value(i);
    shape[0] = o->elements;
    req.model_name = (char *)o->model_name;
    req.id = (char *)"c-client";
    in.name = (char *)"INPUT0";
    in.datatype = (char *)"FP32";
    in.n_shape = 1;
    in.shape = shape;
    req.n_inputs = 1;
    req.inputs = inputs;
    if (o->raw) {
        raw.len = (size_t)o->elements * sizeof(float);
        raw.data = (uint8_t *)values;
        req.n_raw_input_contents = 1;
        req.raw_input_contents = &raw;
    } else {
        contents.n_fp32_contents = (size_t)o->elements;
        contents.fp32_contents = values;
        in.contents = &contents;
    }
    *len = inference__model_infer_request__get_packed_size(&req);
    buf = malloc(*len ? *len : 1);
    if (buf != NULL)
        inference__model_infer_request__pack(&req, buf);
    free(values);
    return buf;
}

/* Reads the whole byte buffer into <out> (caller frees with free()). */
static uint8_t *cc_read_buffer(grpc_byte_buffer *bb, size_t *len)
{
    grpc_byte_buffer_reader reader;
    grpc_slice s;
    uint8_t *out;

    if (!grpc_byte_buffer_reader_init(&reader, bb))
        return NULL;
    s = grpc_byte_buffer_reader_readall(&reader);
    grpc_byte_buffer_reader_destroy(&reader);
    *len = GRPC_SLICE_LENGTH(s);
    out = malloc(*len ? *len : 1);
    if (out != NULL)
        memcpy(out, GRPC_SLICE_START_PTR(s), *len);
    grpc_slice_unref(s);
    return out;
}

/* Runs one ModelInfer call to completion and fills <r>. */
static void cc_call(grpc_channel *ch, const struct cc_opts *o, const uint8_t *req, size_t req_len,
                    struct cc_result *r)
{
    grpc_completion_queue *cq = grpc_completion_queue_create_for_pluck(NULL);
    grpc_metadata md[2];
    size_t n_md = 0;
    grpc_metadata_array initial, trailing;
    grpc_byte_buffer *send = NULL, *recv = NULL;
    grpc_slice slice, details = grpc_empty_slice();
    grpc_op ops[6];
    grpc_call *call;
    gpr_timespec deadline;
    grpc_call_error err;
    grpc_event ev;

    memset(r, 0, sizeof(*r));
    memset(ops, 0, sizeof(ops));
    grpc_metadata_array_init(&initial);
    grpc_metadata_array_init(&trailing);
    deadline = o->deadline_ms > 0 ? gpr_time_add(gpr_now(GPR_CLOCK_MONOTONIC),
                                                 gpr_time_from_millis(o->deadline_ms, GPR_TIMESPAN))
                                  : gpr_inf_future(GPR_CLOCK_MONOTONIC);
    call = grpc_channel_create_call(ch, NULL, GRPC_PROPAGATE_DEFAULTS, cq,
                                    grpc_slice_from_static_string(CC_METHOD), NULL, deadline, NULL);
    if (o->route_key != NULL) {
        memset(&md[n_md], 0, sizeof(md[n_md]));
        md[n_md].key = grpc_slice_from_static_string("x-route-key");
        md[n_md].value = grpc_slice_from_copied_string(o->route_key);
        n_md++;
    }
    if (o->x_model != NULL) {
        memset(&md[n_md], 0, sizeof(md[n_md]));
        md[n_md].key = grpc_slice_from_static_string("x-model");
        md[n_md].value = grpc_slice_from_copied_string(o->x_model);
        n_md++;
    }
    slice = grpc_slice_from_copied_buffer((const char *)req, req_len);
    send = grpc_raw_byte_buffer_create(&slice, 1);
    grpc_slice_unref(slice);

    ops[0].op = GRPC_OP_SEND_INITIAL_METADATA;
    ops[0].data.send_initial_metadata.count = n_md;
    ops[0].data.send_initial_metadata.metadata = md;
    ops[1].op = GRPC_OP_SEND_MESSAGE;
    ops[1].data.send_message.send_message = send;
    ops[2].op = GRPC_OP_SEND_CLOSE_FROM_CLIENT;
    ops[3].op = GRPC_OP_RECV_INITIAL_METADATA;
    ops[3].data.recv_initial_metadata.recv_initial_metadata = &initial;
    ops[4].op = GRPC_OP_RECV_MESSAGE;
    ops[4].data.recv_message.recv_message = &recv;
    ops[5].op = GRPC_OP_RECV_STATUS_ON_CLIENT;
    ops[5].data.recv_status_on_client.trailing_metadata = &trailing;
    ops[5].data.recv_status_on_client.status = &r->status;
    ops[5].data.recv_status_on_client.status_details = &details;

    err = grpc_call_start_batch(call, ops, 6, (void *)1, NULL);
    if (err != GRPC_CALL_OK) {
        r->status = GRPC_STATUS_INTERNAL;
        cc_fail(r, "grpc_call_start_batch failed");
    } else {
        ev = grpc_completion_queue_pluck(cq, (void *)1, gpr_inf_future(GPR_CLOCK_REALTIME), NULL);
        if (ev.type != GRPC_OP_COMPLETE || !ev.success)
            cc_fail(r, "batch did not complete");
    }
    cc_json_escape(r->message, sizeof(r->message), (const char *)GRPC_SLICE_START_PTR(details),
                   GRPC_SLICE_LENGTH(details));
    for (size_t i = 0; i < initial.count; i++) {
        if (grpc_slice_str_cmp(initial.metadata[i].key, "x-replica-id") == 0)
            cc_json_escape(r->replica, sizeof(r->replica),
                           (const char *)GRPC_SLICE_START_PTR(initial.metadata[i].value),
                           GRPC_SLICE_LENGTH(initial.metadata[i].value));
    }
    if ((int)r->status != o->expect_status)
        cc_fail(r, "unexpected status");
    if (r->status == GRPC_STATUS_OK) {
        size_t len = 0;
        uint8_t *buf = recv != NULL ? cc_read_buffer(recv, &len) : NULL;
        if (buf == NULL)
            cc_fail(r, "OK status without a response message");
        else
            cc_check_response(o, buf, len, r);
        free(buf);
        if (r->replica[0] == '\0')
            cc_fail(r, "no x-replica-id in the initial metadata");
    }

    for (size_t i = 0; i < n_md; i++)
        grpc_slice_unref(md[i].value);
    grpc_slice_unref(details);
    grpc_metadata_array_destroy(&initial);
    grpc_metadata_array_destroy(&trailing);
    grpc_byte_buffer_destroy(send);
    if (recv != NULL)
        grpc_byte_buffer_destroy(recv);
    grpc_call_unref(call);
    grpc_completion_queue_shutdown(cq);
    grpc_completion_queue_destroy(cq);
}

static void cc_usage(FILE *f)
{
    fprintf(f, "usage: c_client --target HOST:PORT [options]\n"
               "  --target HOST:PORT     gateway or replica address (required)\n"
               "  --mode typed|raw       tensor representation (default typed)\n"
               "  --count N              number of calls, one after another (default 1)\n"
               "  --elements N           FP32 elements in the tensor (default 16)\n"
               "  --deadline-ms N        per-call deadline (default none)\n"
               "  --model-name NAME      KServe model_name in the request (default demo)\n"
               "  --x-model NAME         send x-model metadata\n"
               "  --route-key KEY        send x-route-key metadata\n"
               "  --expect-status CODE   status every call must end with, name or number "
               "(default OK)\n"
               "  --same-replica         every call must be answered by the same x-replica-id\n"
               "  --min-replicas N       at least N distinct x-replica-id must be seen\n"
               "example: c_client --target 127.0.0.1:7100 --mode raw --count 10 --route-key k1 "
               "--same-replica\n");
}

static int cc_parse_long(const char *s, long min, long *out)
{
    char *end;
    long v;

    errno = 0;
    v = strtol(s, &end, 10);
    if (errno || *end || end == s || v < min)
        return -1;
    *out = v;
    return 0;
}

static int cc_parse_opts(int argc, char **argv, struct cc_opts *o)
{
    static const struct option longopts[] = {
        {"target", required_argument, NULL, 't'},
        {"mode", required_argument, NULL, 'm'},
        {"count", required_argument, NULL, 'c'},
        {"elements", required_argument, NULL, 'e'},
        {"deadline-ms", required_argument, NULL, 'd'},
        {"model-name", required_argument, NULL, 'n'},
        {"x-model", required_argument, NULL, 'x'},
        {"route-key", required_argument, NULL, 'k'},
        {"expect-status", required_argument, NULL, 's'},
        {"same-replica", no_argument, NULL, 'S'},
        {"min-replicas", required_argument, NULL, 'R'},
        {"help", no_argument, NULL, 'h'},
        {NULL, 0, NULL, 0},
    };
    long v;
    int c;

    memset(o, 0, sizeof(*o));
    o->model_name = "demo";
    o->count = 1;
    o->elements = 16;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 't':
            o->target = optarg;
            break;
        case 'm':
            if (strcmp(optarg, "raw") == 0)
                o->raw = 1;
            else if (strcmp(optarg, "typed") != 0)
                return -1;
            break;
        case 'c':
            if (cc_parse_long(optarg, 1, &o->count))
                return -1;
            break;
        case 'e':
            if (cc_parse_long(optarg, 1, &o->elements))
                return -1;
            break;
        case 'd':
            if (cc_parse_long(optarg, 1, &o->deadline_ms))
                return -1;
            break;
        case 'n':
            o->model_name = optarg;
            break;
        case 'x':
            o->x_model = optarg;
            break;
        case 'k':
            o->route_key = optarg;
            break;
        case 's':
            if ((o->expect_status = cc_parse_status(optarg)) < 0)
                return -1;
            break;
        case 'S':
            o->same_replica = 1;
            break;
        case 'R':
            if (cc_parse_long(optarg, 1, &v) || v > CC_MAX_REPLICAS)
                return -1;
            o->min_replicas = (int)v;
            break;
        case 'h':
            cc_usage(stdout);
            exit(0);
        default:
            return -1;
        }
    }
    return o->target != NULL && optind == argc ? 0 : -1;
}

int main(int argc, char **argv)
{
    struct cc_opts o;
    char seen[CC_MAX_REPLICAS][CC_ID_LEN];
    int n_seen = 0, same_ok = 1;
    long passed = 0, failed = 0;
    grpc_channel_credentials *creds;
    grpc_channel *ch;
    uint8_t *req;
    size_t req_len;
    char target[256];

    if (cc_parse_opts(argc, argv, &o) != 0) {
        cc_usage(stderr);
        return 2;
    }
    req = cc_pack_request(&o, &req_len);
    if (req == NULL) {
        fprintf(stderr, "c_client: out of memory\n");
        return 2;
    }
    grpc_init();
    creds = grpc_insecure_credentials_create();
    ch = grpc_channel_create(o.target, creds, NULL);
    grpc_channel_credentials_release(creds);

    for (long i = 0; i < o.count; i++) {
        struct cc_result r;
        int known = 0;

        cc_call(ch, &o, req, req_len, &r);
        for (int k = 0; k < n_seen; k++)
            known |= strcmp(seen[k], r.replica) == 0;
        if (!known && r.replica[0] != '\0' && n_seen < CC_MAX_REPLICAS)
            snprintf(seen[n_seen++], CC_ID_LEN, "%s", r.replica);
        if (o.same_replica && n_seen > 1 && same_ok) {
            same_ok = 0;
            cc_fail(&r, "x-replica-id changed between calls");
        }
        if (r.check[0] == '\0')
            passed++;
        else
            failed++;
        printf("{\"call\":%ld,\"status\":\"%s\",\"code\":%d,\"message\":\"%s\",\"replica\":\"%s\","
               "\"check\":\"%s\"}\n",
               i, cc_status_name(r.status), (int)r.status, r.message, r.replica,
               r.check[0] ? r.check : "pass");
    }
    if (o.min_replicas > 0 && n_seen < o.min_replicas)
        failed++;
    cc_json_escape(target, sizeof(target), o.target, strlen(o.target));
    printf("{\"summary\":true,\"target\":\"%s\",\"mode\":\"%s\",\"calls\":%ld,\"passed\":%ld,"
           "\"failed\":%ld,\"replicas\":[",
           target, o.raw ? "raw" : "typed", o.count, passed, failed);
    for (int k = 0; k < n_seen; k++)
        printf("%s\"%s\"", k ? "," : "", seen[k]);
    printf("]}\n");
    fflush(stdout);

    grpc_channel_destroy(ch);
    grpc_shutdown();
    free(req);
    return failed == 0 ? 0 : 1;
}
