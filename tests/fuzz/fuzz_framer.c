/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the gRPC message framer. The first 4 input bytes give the
 * size limit (big-endian), the rest is the DATA stream. The framer fed all at
 * once, and fed in pieces cut at points derived from the input, must agree
 * with a direct walk over the whole buffer: same error, message count, last
 * length, and whether the stream ends on a message boundary. */
#include "fuzz.h"
#include "base/grpcwire.h"

struct expect {
    int rc;
    uint64_t messages;
    uint32_t last_len;
    int boundary;
};

static uint32_t be32(const uint8_t *p)
{
    return (uint32_t)p[0] << 24 | (uint32_t)p[1] << 16 | (uint32_t)p[2] << 8 | (uint32_t)p[3];
}

/* The reference: walks the prefixes of the whole stream. */
static struct expect walk(const uint8_t *p, size_t n, uint32_t max_len)
{
    struct expect e = {0, 0, 0, 1};
    size_t off = 0;

    while (off + 5 <= n) {
        e.last_len = be32(p + off + 1);
        e.messages++;
        if (e.last_len > max_len) {
            e.rc = -1;
            e.boundary = 0;
            return e;
        }
        off += 5 + (size_t)e.last_len;
    }
    e.boundary = off == n;
    return e;
}

static void check(const struct gw_framer *f, int rc, const struct expect *e)
{
    FUZZ_CHECK(rc == e->rc);
    FUZZ_CHECK(f->messages == e->messages);
    FUZZ_CHECK(f->last_len == e->last_len);
    FUZZ_CHECK(gw_framer_at_boundary(f) == e->boundary);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_framer f;
    struct expect e;
    uint32_t max_len;
    size_t cut[2];
    int rc = 0;

    if (size < 4)
        return 0;
    max_len = be32(data);
    data += 4;
    size -= 4;
    e = walk(data, size, max_len);

    gw_framer_init(&f);
    check(&f, gw_framer_feed(&f, data, size, max_len), &e);
    if (e.rc)
        FUZZ_CHECK(gw_framer_feed(&f, data, size, max_len) == -1);

    cut[0] = size ? data[0] % (size + 1) : 0;
    cut[1] = size ? (cut[0] + data[size - 1] * 3u) % (size + 1) : 0;
    if (cut[1] < cut[0])
        cut[1] = cut[0];
    gw_framer_init(&f);
    rc = gw_framer_feed(&f, data, cut[0], max_len);
    if (rc == 0)
        rc = gw_framer_feed(&f, data + cut[0], cut[1] - cut[0], max_len);
    if (rc == 0)
        rc = gw_framer_feed(&f, data + cut[1], size - cut[1], max_len);
    check(&f, rc, &e);

    gw_framer_init(&f);
    rc = 0;
    for (size_t i = 0; i < size && rc == 0; i++)
        rc = gw_framer_feed(&f, data + i, 1, max_len);
    check(&f, rc, &e);
    return 0;
}
