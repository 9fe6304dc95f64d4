/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the model_name scanner: whatever the bytes, feeding them
 * in pieces (cut at points derived from the input, and one byte at a time)
 * must give exactly the answer of feeding them at once: same result, same
 * bytes consumed, same name, same error. A FOUND name must be as long as it
 * says, NUL-free and within GW_MODEL_NAME_MAX. */
#include "fuzz.h"
#include "base/grpcwire.h"

#include <string.h>

struct outcome {
    int result, final;
    size_t consumed;
    struct gw_model_scan s;
};

/* Feeds data cut at <cuts> (ascending offsets <= size), then the rest. */
static void scan_pieces(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts,
                        struct outcome *o)
{
    size_t at = 0;

    gw_model_scan_init(&o->s);
    o->result = GW_SCAN_MORE;
    o->consumed = 0;
    for (size_t i = 0; i <= ncuts && o->result == GW_SCAN_MORE; i++) {
        size_t end = i < ncuts ? cuts[i] : size, used = 0;

        o->result = gw_model_scan_feed(&o->s, data + at, end - at, &used);
        FUZZ_CHECK(used <= end - at);
        FUZZ_CHECK(o->result != GW_SCAN_MORE || used == end - at);
        o->consumed += used;
        at = end;
    }
    o->final = gw_model_scan_finish(&o->s);
}

static void check_same(const struct outcome *a, const struct outcome *b)
{
    FUZZ_CHECK(a->result == b->result);
    FUZZ_CHECK(a->final == b->final);
    FUZZ_CHECK(a->consumed == b->consumed);
    FUZZ_CHECK(a->s.error == b->s.error);
    if (a->result == GW_SCAN_FOUND) {
        FUZZ_CHECK(a->s.name_len == b->s.name_len);
        FUZZ_CHECK(memcmp(a->s.name, b->s.name, a->s.name_len + 1) == 0);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct outcome once, pieces;
    size_t cuts[3], used;

    scan_pieces(data, size, NULL, 0, &once);
    FUZZ_CHECK(once.result == GW_SCAN_MORE || once.final == once.result);
    FUZZ_CHECK(once.final != GW_SCAN_MORE);
    FUZZ_CHECK((once.final == GW_SCAN_ERROR) == (once.s.error != NULL));
    if (once.result == GW_SCAN_FOUND) {
        FUZZ_CHECK(once.s.name_len >= 1 && once.s.name_len <= GW_MODEL_NAME_MAX);
        FUZZ_CHECK(strlen(once.s.name) == once.s.name_len);
        FUZZ_CHECK(once.consumed >= 5 + 2 + once.s.name_len);
    }
    /* A finished scan reads nothing more. */
    FUZZ_CHECK(gw_model_scan_feed(&once.s, data, size, &used) == once.final && used == 0);

    /* Three cuts from the input itself, so the fuzzer can steer them. */
    if (size > 0) {
        fuzz_cuts3(data, size, cuts);
        scan_pieces(data, size, cuts, 3, &pieces);
        check_same(&once, &pieces);
    }

    /* One byte at a time. */
    gw_model_scan_init(&pieces.s);
    pieces.result = GW_SCAN_MORE;
    pieces.consumed = 0;
    for (size_t i = 0; i < size && pieces.result == GW_SCAN_MORE; i++) {
        pieces.result = gw_model_scan_feed(&pieces.s, data + i, 1, &used);
        pieces.consumed += used;
    }
    pieces.final = gw_model_scan_finish(&pieces.s);
    check_same(&once, &pieces);
    return 0;
}
