/* SPDX-License-Identifier: Apache-2.0 */
/* prefix — the prompt's chained block hashes (contract and definition in
 * prefix.h, docs/routing.md).
 *
 * Choices made here:
 *  - Protobuf is read with grpcwire's contiguous field reader (gw_pb_next),
 *    which rejects what the model-name scans reject; nothing is copied but
 *    one block of ids at a time (text blocks are hashed where they lie).
 *  - The request is walked twice at its top level at most: once for the
 *    input (its name, datatype, position, whether it has contents) and, only
 *    when it has no contents, once for raw_input_contents[position]. Payloads
 *    are skipped by length, so a walk costs one step per top-level field.
 *  - Contents of a type other than the datatype make the input unusable
 *    (WRONG_TYPE) rather than being guessed at.
 */
#include "route/prefix.h"

#include "base/grpcwire.h"

#include <string.h>
#include <xxhash.h>

/* ModelInferRequest fields. */
#define REQ_INPUTS 5
#define REQ_RAW    7
/* InferInputTensor fields. */
#define TENSOR_NAME     1
#define TENSOR_DATATYPE 2
#define TENSOR_CONTENTS 5
/* InferTensorContents fields: 1 bool .. 8 bytes. */
#define CONTENTS_INT32 2
#define CONTENTS_INT64 3
#define CONTENTS_BYTES 8
#define CONTENTS_LAST  8

enum kind { KIND_TEXT, KIND_INT32, KIND_INT64 };

struct input {
    size_t index;        /* position among the inputs */
    const uint8_t *data; /* the InferInputTensor message */
    size_t len;
    const uint8_t *dtype; /* its (last) datatype */
    size_t dtype_len;
    int has_contents;
};

/* What a failing step reports: a status and why. */
struct fail {
    int status;
    const char *why;
};

/* The chain being built. */
struct chain {
    const struct gw_prefix_params *pp;
    uint64_t *hashes;
    size_t n;
    uint64_t prev;
    size_t have; /* bytes of the current id block in buf */
    uint8_t buf[GW_PREFIX_BLOCK_MAX * 8];
};

static int fail(struct fail *f, int status, const char *why)
{
    f->status = status;
    f->why = why;
    return -1;
}

static void chain_block(struct chain *c, const uint8_t *p, size_t len)
{
    c->prev = XXH3_64bits_withSeed(p, len, c->prev);
    c->hashes[c->n++] = c->prev;
}

static int chain_full(const struct chain *c)
{
    return c->n >= c->pp->max_blocks;
}

/* Text: the whole blocks of p[0..len), where they lie. */
static void chain_text(struct chain *c, const uint8_t *p, size_t len)
{
    size_t b = c->pp->block;

    for (size_t at = 0; len - at >= b && !chain_full(c); at += b)
        chain_block(c, p + at, b);
}

/* Ids: one id into the current block, hashed when the block is whole. */
static void chain_id(struct chain *c, int64_t id)
{
    uint64_t u = (uint64_t)id;

    if (chain_full(c))
        return;
    for (int i = 0; i < 8; i++)
        c->buf[c->have++] = (uint8_t)(u >> (8 * i));
    if (c->have == (size_t)c->pp->block * 8) {
        chain_block(c, c->buf, c->have);
        c->have = 0;
    }
}

static void chain_wire_id(struct chain *c, enum kind k, uint64_t v)
{
    /* protobuf's int32 keeps the low 32 bits of the (sign-extended) varint */
    chain_id(c, k == KIND_INT32 ? (int64_t)(int32_t)(uint32_t)v : (int64_t)v);
}

static int name_is(const struct gw_pb_field *f, const char *name)
{
    size_t len = strlen(name);
    return f->len == len && memcmp(f->data, name, len) == 0;
}

/* Reads an InferInputTensor: its last name and datatype, whether it has
 * contents. */
static int tensor_read(const uint8_t *p, size_t len, struct gw_pb_field *name, struct input *in,
                       struct fail *fl)
{
    struct gw_pb_field f;
    size_t pos = 0;
    const char *why;
    int r;

    memset(name, 0, sizeof(*name));
    while ((r = gw_pb_next(p, len, &pos, &f, &why)) == 1) {
        if (f.wire != GW_PB_LEN)
            continue;
        if (f.number == TENSOR_NAME)
            *name = f;
        else if (f.number == TENSOR_DATATYPE) {
            in->dtype = f.data;
            in->dtype_len = f.len;
        } else if (f.number == TENSOR_CONTENTS)
            in->has_contents = 1;
    }
    return r < 0 ? fail(fl, GW_PREFIX_MALFORMED, why) : 0;
}

/* Finds the first input named <name>. */
static int find_input(const uint8_t *msg, size_t len, const char *name, struct input *in,
                      struct fail *fl)
{
    struct gw_pb_field f, tname;
    size_t pos = 0, index = 0;
    const char *why;
    int r;

    while ((r = gw_pb_next(msg, len, &pos, &f, &why)) == 1) {
        if (f.number != REQ_INPUTS || f.wire != GW_PB_LEN)
            continue;
        struct input t = {.index = index++, .data = f.data, .len = f.len};
        if (tensor_read(f.data, f.len, &tname, &t, fl) < 0)
            return -1;
        if (tname.data && name_is(&tname, name)) {
            *in = t;
            return 0;
        }
    }
    if (r < 0)
        return fail(fl, GW_PREFIX_MALFORMED, why);
    return fail(fl, GW_PREFIX_NO_INPUT, "no input of that name");
}

static int input_kind(const struct input *in, enum kind *k, struct fail *fl)
{
    static const struct {
        const char *name;
        enum kind kind;
    } kinds[] = {{"BYTES", KIND_TEXT}, {"INT32", KIND_INT32}, {"INT64", KIND_INT64}};

    for (size_t i = 0; i < sizeof(kinds) / sizeof(kinds[0]); i++)
        if (in->dtype_len == strlen(kinds[i].name) &&
            memcmp(in->dtype, kinds[i].name, in->dtype_len) == 0) {
            *k = kinds[i].kind;
            return 0;
        }
    return fail(fl, GW_PREFIX_WRONG_TYPE, "datatype is not BYTES, INT32 or INT64");
}

/* Packed ids: a run of varints filling the payload. */
static int chain_packed(struct chain *c, enum kind k, const struct gw_pb_field *f, struct fail *fl)
{
    size_t pos = 0;
    uint64_t v;

    while (pos < f->len && !chain_full(c)) {
        if (gw_pb_varint(f->data, f->len, &pos, &v) < 0)
            return fail(fl, GW_PREFIX_MALFORMED, "bad varint in packed ids");
        chain_wire_id(c, k, v);
    }
    return 0;
}

/* One InferTensorContents message. <*text_seen> tracks the first
 * bytes_contents element across the merged occurrences. */
static int chain_contents(struct chain *c, enum kind k, const uint8_t *p, size_t len,
                          int *text_seen, struct fail *fl)
{
    unsigned want = k == KIND_TEXT    ? CONTENTS_BYTES
                    : k == KIND_INT32 ? CONTENTS_INT32
                                      : CONTENTS_INT64;
    struct gw_pb_field f;
    size_t pos = 0;
    const char *why;
    int r;

    while ((r = gw_pb_next(p, len, &pos, &f, &why)) == 1) {
        if (f.number > CONTENTS_LAST)
            continue;
        if (f.number != want)
            return fail(fl, GW_PREFIX_WRONG_TYPE, "contents of another type than the datatype");
        if (k == KIND_TEXT) {
            if (f.wire == GW_PB_LEN && !*text_seen) {
                *text_seen = 1;
                chain_text(c, f.data, f.len);
            }
        } else if (f.wire == GW_PB_VARINT)
            chain_wire_id(c, k, f.value);
        else if (f.wire == GW_PB_LEN && chain_packed(c, k, &f, fl) < 0)
            return -1;
    }
    return r < 0 ? fail(fl, GW_PREFIX_MALFORMED, why) : 0;
}

/* Every contents occurrence of the tensor, merged in order. */
static int chain_tensor(struct chain *c, enum kind k, const struct input *in, struct fail *fl)
{
    struct gw_pb_field f;
    size_t pos = 0;
    const char *why;
    int text_seen = 0;

    /* tensor_read walked these bytes already: no error is left in them */
    while (gw_pb_next(in->data, in->len, &pos, &f, &why) == 1)
        if (f.number == TENSOR_CONTENTS && f.wire == GW_PB_LEN &&
            chain_contents(c, k, f.data, f.len, &text_seen, fl) < 0)
            return -1;
    return 0;
}

/* raw_input_contents[index], or NULL data when there is none. */
static int find_raw(const uint8_t *msg, size_t len, size_t index, struct gw_pb_field *raw,
                    struct fail *fl)
{
    struct gw_pb_field f;
    size_t pos = 0, k = 0;
    const char *why;
    int r;

    while ((r = gw_pb_next(msg, len, &pos, &f, &why)) == 1)
        if (f.number == REQ_RAW && f.wire == GW_PB_LEN && k++ == index) {
            *raw = f;
            return 0;
        }
    if (r < 0)
        return fail(fl, GW_PREFIX_MALFORMED, why);
    return fail(fl, GW_PREFIX_NO_INPUT, "input has neither contents nor raw contents");
}

static uint64_t raw_le(const uint8_t *p, size_t len)
{
    uint64_t v = 0;

    for (size_t i = len; i-- > 0;)
        v = v << 8 | p[i];
    return v;
}

static int chain_raw(struct chain *c, enum kind k, const struct gw_pb_field *raw, struct fail *fl)
{
    size_t width = k == KIND_INT32 ? 4 : 8;

    if (k == KIND_TEXT) {
        if (raw->len == 0)
            return 0; /* no element: an empty prompt */
        if (raw->len < 4 || raw_le(raw->data, 4) > raw->len - 4)
            return fail(fl, GW_PREFIX_MALFORMED, "raw BYTES element cut");
        chain_text(c, raw->data + 4, (size_t)raw_le(raw->data, 4));
        return 0;
    }
    if (raw->len % width != 0)
        return fail(fl, GW_PREFIX_MALFORMED, "raw ids not a whole number of elements");
    for (size_t at = 0; at < raw->len && !chain_full(c); at += width)
        chain_wire_id(c, k, raw_le(raw->data + at, width));
    return 0;
}

static int prefix_run(const uint8_t *msg, size_t len, struct chain *c, struct fail *fl)
{
    struct input in;
    struct gw_pb_field raw;
    enum kind k;

    if (find_input(msg, len, c->pp->input, &in, fl) < 0 || input_kind(&in, &k, fl) < 0)
        return -1;
    if (in.has_contents)
        return chain_tensor(c, k, &in, fl);
    if (find_raw(msg, len, in.index, &raw, fl) < 0)
        return -1;
    return chain_raw(c, k, &raw, fl);
}

int gw_prefix_hash(const uint8_t *msg, size_t len, const struct gw_prefix_params *pp,
                   uint64_t *hashes, size_t *n, const char **error)
{
    struct chain c;
    struct fail fl = {GW_PREFIX_OK, NULL};

    *n = 0;
    if (!pp->input || pp->block < 1 || pp->block > GW_PREFIX_BLOCK_MAX || pp->max_blocks < 1 ||
        pp->max_blocks > GW_PREFIX_BLOCKS_MAX) {
        *error = "block or max_blocks out of range";
        return GW_PREFIX_EINVAL;
    }
    c.pp = pp;
    c.hashes = hashes;
    c.n = 0;
    c.prev = 0;
    c.have = 0;
    if (prefix_run(msg, len, &c, &fl) < 0) {
        *error = fl.why;
        return fl.status;
    }
    *n = c.n;
    return GW_PREFIX_OK;
}

int gw_prefix_hash_grpc(const uint8_t *frame, size_t len, const struct gw_prefix_params *pp,
                        uint64_t *hashes, size_t *n, const char **error)
{
    uint32_t msg_len;

    *n = 0;
    if (len < 5) {
        *error = "message cut short";
        return GW_PREFIX_MALFORMED;
    }
    if (frame[0] > 1) {
        *error = "bad compressed-flag byte";
        return GW_PREFIX_MALFORMED;
    }
    if (frame[0] == 1) {
        *error = "compressed message";
        return GW_PREFIX_COMPRESSED;
    }
    msg_len =
        (uint32_t)frame[1] << 24 | (uint32_t)frame[2] << 16 | (uint32_t)frame[3] << 8 | frame[4];
    if (msg_len > len - 5) {
        *error = "message cut short";
        return GW_PREFIX_MALFORMED;
    }
    return gw_prefix_hash(frame + 5, msg_len, pp, hashes, n, error);
}
