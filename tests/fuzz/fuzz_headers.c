/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for header validation as a client reaches it: every header
 * field of a request goes through gw_hdr_forwardable (headers.c) and the
 * forwardable ones are copied into a gw_hdrlist (hdrlist.c), as the call
 * engine does for the metadata it relays.
 *
 * Input: records of <name length byte> <name> <value length (2 bytes, big
 * endian)> <value>, until the input runs out. Checks, for every record: the
 * verdict matches the rule in headers.h (written here again from the
 * documented contract, as an oracle); the list keeps every forwardable field
 * in order, byte for byte, with a NUL after each value; gw_hdrlist_get finds
 * the first value of each name; to_nv gives back the same fields. */
#include "fuzz.h"
#include "base/headers.h"
#include "base/hdrlist.h"

#include <string.h>

#define MAX_FIELDS 512

static int oracle(const uint8_t *name, size_t nlen, const uint8_t *value, size_t vlen)
{
    static const char *const dropped[] = {"connection",        "keep-alive", "proxy-connection",
                                          "transfer-encoding", "upgrade",    "grpc-timeout"};
    if (nlen == 0 || name[0] == ':')
        return 0;
    for (size_t i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (nlen == strlen(dropped[i]) && !memcmp(name, dropped[i], nlen))
            return 0;
    if (nlen == 2 && !memcmp(name, "te", 2))
        return vlen == 8 && !memcmp(value, "trailers", 8);
    return 1;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct {
        const uint8_t *name, *value;
        size_t nlen, vlen;
    } kept[MAX_FIELDS];
    static nghttp2_nv nv[MAX_FIELDS];
    struct gw_hdrlist h;
    size_t nkept = 0, off = 0;

    gw_hdrlist_init(&h);
    while (off < size && nkept < MAX_FIELDS) {
        size_t nlen = data[off++];
        if (size - off < nlen + 2)
            break;
        const uint8_t *name = data + off;
        off += nlen;
        size_t vlen = (size_t)data[off] << 8 | data[off + 1];
        off += 2;
        if (size - off < vlen)
            vlen = size - off;
        const uint8_t *value = data + off;
        off += vlen;

        int fwd = gw_hdr_forwardable(name, nlen, value, vlen);
        FUZZ_CHECK(fwd == 0 || fwd == 1);
        FUZZ_CHECK(fwd == oracle(name, nlen, value, vlen));
        if (!fwd)
            continue;
        FUZZ_CHECK(gw_hdrlist_add(&h, name, nlen, value, vlen) == 0);
        kept[nkept].name = name;
        kept[nkept].nlen = nlen;
        kept[nkept].value = value;
        kept[nkept++].vlen = vlen;
    }
    FUZZ_CHECK(h.n == nkept);
    FUZZ_CHECK(gw_hdrlist_to_nv(&h, nv) == nkept);
    for (size_t i = 0; i < nkept; i++) {
        FUZZ_CHECK(nv[i].namelen == kept[i].nlen &&
                   !memcmp(nv[i].name, kept[i].name, kept[i].nlen));
        FUZZ_CHECK(nv[i].valuelen == kept[i].vlen &&
                   !memcmp(nv[i].value, kept[i].value, kept[i].vlen));
        FUZZ_CHECK(nv[i].value[nv[i].valuelen] == '\0');
        /* get() looks names up as C strings: only NUL-free names. */
        char name[256];
        if (memchr(kept[i].name, '\0', kept[i].nlen))
            continue;
        memcpy(name, kept[i].name, kept[i].nlen);
        name[kept[i].nlen] = '\0';
        size_t first = 0;
        while (!(kept[first].nlen == kept[i].nlen &&
                 !memcmp(kept[first].name, kept[i].name, kept[i].nlen)))
            first++;
        size_t vlen = 0;
        const char *v = gw_hdrlist_get(&h, name, &vlen);
        FUZZ_CHECK(v && vlen == kept[first].vlen && !memcmp(v, kept[first].value, vlen));
    }
    gw_hdrlist_reset(&h);
    return 0;
}
