/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the prompt's block hashes (route/prefix.c, over
 * grpcwire's contiguous field reader). The first three bytes pick the block
 * size (1..32), the cap (1..64 blocks) and the input name; the rest is the
 * ModelInferRequest. Whatever the bytes: the status is one of the documented
 * ones, with an error string exactly when it is not OK; no more hashes than
 * the cap, none on failure; the same answer twice; the framed form (gRPC
 * prefix) gives the answer of the bare message; and a smaller cap gives a
 * prefix of the same chain whenever the larger one succeeds. */
#include "fuzz.h"
#include "route/prefix.h"

#include <string.h>

#define HDR     3
#define MAX_LEN 65536

static const char *const names[] = {"p", "text_input", "input_ids", ""};

struct answer {
    int status;
    size_t n;
    const char *why;
    uint64_t h[64];
};

static void hash(const uint8_t *msg, size_t len, const struct gw_prefix_params *pp,
                 struct answer *a)
{
    a->why = NULL;
    a->status = gw_prefix_hash(msg, len, pp, a->h, &a->n, &a->why);
    FUZZ_CHECK(a->status <= GW_PREFIX_OK && a->status >= GW_PREFIX_MALFORMED);
    FUZZ_CHECK((a->status == GW_PREFIX_OK) == (a->why == NULL));
    FUZZ_CHECK(a->n <= pp->max_blocks);
    FUZZ_CHECK(a->status == GW_PREFIX_OK || a->n == 0);
}

static void check_same(const struct answer *a, const struct answer *b)
{
    FUZZ_CHECK(a->status == b->status);
    FUZZ_CHECK(a->n == b->n);
    FUZZ_CHECK(a->why == b->why);
    FUZZ_CHECK(memcmp(a->h, b->h, a->n * sizeof(a->h[0])) == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct answer once, again, small;
    static uint8_t framed[5 + MAX_LEN];
    struct gw_prefix_params pp;
    const uint8_t *msg = data + HDR;
    size_t len;

    if (size < HDR || size - HDR > MAX_LEN)
        return 0;
    len = size - HDR;
    pp.block = 1 + data[0] % 32;
    pp.max_blocks = 1 + data[1] % 64;
    pp.input = names[data[2] % 4];

    hash(msg, len, &pp, &once);
    hash(msg, len, &pp, &again);
    check_same(&once, &again);

    framed[0] = 0;
    framed[1] = (uint8_t)(len >> 24);
    framed[2] = (uint8_t)(len >> 16);
    framed[3] = (uint8_t)(len >> 8);
    framed[4] = (uint8_t)len;
    memcpy(framed + 5, msg, len);
    again.why = NULL;
    again.status = gw_prefix_hash_grpc(framed, 5 + len, &pp, again.h, &again.n, &again.why);
    check_same(&once, &again);

    if (pp.max_blocks > 1) {
        pp.max_blocks = 1 + data[1] % (pp.max_blocks - 1);
        hash(msg, len, &pp, &small);
        if (once.status == GW_PREFIX_OK) {
            FUZZ_CHECK(small.status == GW_PREFIX_OK);
            FUZZ_CHECK(small.n == (once.n < pp.max_blocks ? once.n : pp.max_blocks));
            FUZZ_CHECK(memcmp(small.h, once.h, small.n * sizeof(small.h[0])) == 0);
        }
    }
    return 0;
}
