/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the model_name check (the protobuf scan over every field
 * of every message): whatever the bytes, feeding them in pieces (cut at
 * points derived from the input, and one byte at a time) must give exactly
 * the events of feeding them at once, in the same order, with the same
 * names, message numbers and error. A NAME is NUL-free and within
 * GW_MODEL_NAME_MAX; message numbers never go down; after ERROR nothing more
 * is reported. On a well-formed stream the first NAME of the first message
 * agrees with the first-field scanner when that one says FOUND. */
#include "fuzz.h"
#include "base/grpcwire.h"

#include <string.h>

#define MAX_EVENTS 8192

struct event {
    int kind;
    uint64_t message;
    uint32_t name_len;
    char name[GW_MODEL_NAME_MAX + 1];
    const char *error;
};

struct run {
    struct event ev[MAX_EVENTS];
    size_t n;
};

/* Feeds <data> cut at <cuts> (ascending offsets <= size; ncuts may be 0),
 * collecting events. */
static void run_pieces(const uint8_t *data, size_t size, const size_t *cuts, size_t ncuts,
                       struct run *r)
{
    struct gw_model_check k;
    size_t at = 0;

    gw_model_check_init(&k);
    r->n = 0;
    for (size_t i = 0; i <= ncuts; i++) {
        size_t end = i < ncuts ? cuts[i] : size;
        while (at < end) {
            size_t used = 0;
            int kind = gw_model_check_feed(&k, data + at, end - at, &used);
            FUZZ_CHECK(used <= end - at);
            at += used;
            if (kind == GW_CHECK_MORE) {
                FUZZ_CHECK(at == end);
                continue;
            }
            FUZZ_CHECK(kind == GW_CHECK_ERROR || used > 0);
            if (r->n < MAX_EVENTS) {
                struct event *e = &r->ev[r->n++];
                e->kind = kind;
                e->message = k.messages;
                e->error = kind == GW_CHECK_ERROR ? k.error : NULL;
                e->name_len = kind == GW_CHECK_NAME ? k.name_len : 0;
                if (kind == GW_CHECK_NAME)
                    memcpy(e->name, k.name, k.name_len + 1);
            }
            if (kind == GW_CHECK_ERROR) {
                /* Sticky. */
                FUZZ_CHECK(gw_model_check_feed(&k, data, size, &used) == GW_CHECK_ERROR);
                return;
            }
        }
    }
}

static void check_same(const struct run *a, const struct run *b)
{
    FUZZ_CHECK(a->n == b->n);
    for (size_t i = 0; i < a->n; i++) {
        FUZZ_CHECK(a->ev[i].kind == b->ev[i].kind);
        FUZZ_CHECK(a->ev[i].message == b->ev[i].message);
        FUZZ_CHECK(a->ev[i].error == b->ev[i].error);
        FUZZ_CHECK(a->ev[i].name_len == b->ev[i].name_len);
        FUZZ_CHECK(!memcmp(a->ev[i].name, b->ev[i].name, a->ev[i].name_len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct run once, pieces;
    size_t cuts[3];

    run_pieces(data, size, NULL, 0, &once);
    uint64_t last = 0;
    for (size_t i = 0; i < once.n; i++) {
        const struct event *e = &once.ev[i];
        FUZZ_CHECK(e->message >= last);
        last = e->message;
        FUZZ_CHECK((e->kind == GW_CHECK_ERROR) == (e->error != NULL));
        FUZZ_CHECK(e->kind != GW_CHECK_ERROR || i == once.n - 1);
        if (e->kind == GW_CHECK_NAME) {
            FUZZ_CHECK(e->name_len <= GW_MODEL_NAME_MAX);
            FUZZ_CHECK(strlen(e->name) == e->name_len);
            FUZZ_CHECK(e->message >= 1);
        }
    }

    /* The first-field scanner agrees on the first message's leading name. */
    struct gw_model_scan s;
    gw_model_scan_init(&s);
    if (gw_model_scan_feed(&s, data, size, NULL) == GW_SCAN_FOUND) {
        FUZZ_CHECK(once.n > 0);
        FUZZ_CHECK(once.ev[0].kind == GW_CHECK_NAME && once.ev[0].message == 1);
        FUZZ_CHECK(once.ev[0].name_len == s.name_len && !strcmp(once.ev[0].name, s.name));
    }

    if (size > 0) {
        fuzz_cuts3(data, size, cuts);
        run_pieces(data, size, cuts, 3, &pieces);
        check_same(&once, &pieces);
    }

    /* One byte at a time. */
    {
        struct gw_model_check k;
        size_t n = 0;
        gw_model_check_init(&k);
        for (size_t i = 0; i < size; i++) {
            size_t used;
            int kind = gw_model_check_feed(&k, data + i, 1, &used);
            if (kind == GW_CHECK_MORE)
                continue;
            if (n < MAX_EVENTS) {
                FUZZ_CHECK(n < once.n && once.ev[n].kind == kind &&
                           once.ev[n].message == k.messages);
                if (kind == GW_CHECK_NAME)
                    FUZZ_CHECK(!strcmp(once.ev[n].name, k.name));
            }
            n++;
            if (kind == GW_CHECK_ERROR)
                break;
        }
        FUZZ_CHECK(n == once.n || (once.n == MAX_EVENTS && n >= MAX_EVENTS));
    }
    return 0;
}
