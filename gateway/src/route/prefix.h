/* SPDX-License-Identifier: Apache-2.0 */
/* prefix — the prompt's chained block hashes, read straight from the bytes of
 * a KServe v2 ModelInferRequest (the message of ModelInfer and of each
 * ModelStreamInfer request), for prefix-cache routing. Pure: no I/O, no
 * allocation, no global state; any thread may call it.
 *
 * The prompt is the input tensor named by the pool's `prefix_input`
 * tunable, in blocks of `prefix_block` up to `prefix_max_blocks` (route/
 * tunables.h; engine/call_prefix.c hashes the first request message of a
 * route_by = prefix pool). Its data is read from the tensor's
 * InferTensorContents (bytes_contents for BYTES, int_contents for INT32,
 * int64_contents for INT64, packed or not; several `contents` occurrences
 * merge as protobuf merges them) or, when the tensor has no contents, from
 * raw_input_contents[i], i being the tensor's position among the inputs
 * (raw BYTES elements are 4-byte little-endian length-prefixed; raw INT32
 * and INT64 are little-endian).
 *
 * The hashes, the exact definition (docs/routing.md, "Prompt block
 * hashes"), which every gateway and any replica or other router reproduces:
 *  - text (BYTES): the prompt is the tensor's first element, taken as bytes;
 *    token ids (INT32/INT64): the prompt is every element in order, each
 *    written as a little-endian int64 (8 bytes; INT32 sign-extended), so an
 *    INT32 and an INT64 tensor of the same ids give the same hashes;
 *  - block i is prompt units [i*B, (i+1)*B), B = `block` bytes (text) or ids
 *    (8*B bytes); only whole blocks count, at most `max_blocks` of them:
 *    n = min(floor(units / B), max_blocks);
 *  - h[-1] = 0, h[i] = XXH3_64bits_withSeed(block i, its length, h[i-1]):
 *    block i's hash covers blocks 0..i (xxHash >= 0.8.0, whose XXH3 output
 *    is frozen; XXH3 with seed 0 is plain XXH3_64bits).
 *
 * The message must be held whole in memory: the caller hands the replay
 * buffer's contiguous bytes once the message is complete, whatever number of
 * DATA frames carried it (engine/call_prefix.c copies it out of the request
 * log; a message past what the log may hold is not hashed and routes by the
 * ring).
 */
#ifndef INFERGW_PREFIX_H
#define INFERGW_PREFIX_H

#include <stddef.h>
#include <stdint.h>

#define GW_PREFIX_BLOCK_MAX  1024 /* largest block: bytes (text) or ids */
#define GW_PREFIX_BLOCKS_MAX 1024 /* largest max_blocks */

enum gw_prefix_status {
    GW_PREFIX_OK = 0,          /* *n hashes written (0 when the prompt is shorter than a block) */
    GW_PREFIX_NO_INPUT = -1,   /* no input of that name, or it carries no data */
    GW_PREFIX_WRONG_TYPE = -2, /* datatype not BYTES/INT32/INT64, or contents of another type */
    GW_PREFIX_MALFORMED = -3,  /* bad protobuf, raw contents or gRPC framing */
    GW_PREFIX_COMPRESSED = -4, /* (framed form) a compressed message: its fields cannot be read */
    GW_PREFIX_EINVAL = -5,     /* block or max_blocks out of range */
};

struct gw_prefix_params {
    const char *input;   /* the input tensor's name, NUL-terminated (borrowed) */
    uint32_t block;      /* 1..GW_PREFIX_BLOCK_MAX bytes (text) or ids per block */
    uint32_t max_blocks; /* 1..GW_PREFIX_BLOCKS_MAX */
};

/* Hashes the prompt of the ModelInferRequest in msg[0..len) (protobuf bytes,
 * no gRPC prefix). <hashes> has room for pp->max_blocks values. Returns
 * GW_PREFIX_OK with hashes[0..*n) written, or a negative gw_prefix_status
 * with *error set to a static string saying why (*n is then 0; hashes may
 * have been written). Where the input appears more than once, the first one
 * counts; where its name or datatype appear more than once in it, the last
 * one counts (as protobuf parsers keep the last). A known field with an
 * unexpected wire type is skipped, as protobuf parsers skip it. The request
 * is read only as far as needed: up to the input (and, for raw data, up to
 * raw_input_contents[i]), and packed ids past the last block needed are not
 * decoded, so malformed bytes past those points go unnoticed. */
int gw_prefix_hash(const uint8_t *msg, size_t len, const struct gw_prefix_params *pp,
                   uint64_t *hashes, size_t *n, const char **error);

/* The same for one gRPC length-prefixed message at frame[0..len): the
 * 5-byte prefix (compressed flag 0, big-endian length) and the whole message
 * (bytes after it are ignored). A compressed flag of 1 gives
 * GW_PREFIX_COMPRESSED; a flag above 1, or fewer bytes than the prefix
 * announces, GW_PREFIX_MALFORMED. */
int gw_prefix_hash_grpc(const uint8_t *frame, size_t len, const struct gw_prefix_params *pp,
                        uint64_t *hashes, size_t *n, const char **error);

#endif
