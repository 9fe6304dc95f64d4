/* SPDX-License-Identifier: Apache-2.0 */
/* headers — which HTTP/2 header fields the gateway relays.
 *
 * The list is short and fixed, so a linear scan of length-checked memcmp is
 * both the clearest and, for the handful of headers a gRPC call carries,
 * fast enough: most names differ in length from every entry and cost one
 * comparison each.
 */
#include "base/headers.h"

#include <string.h>

#define NAME(s)                                                                                    \
    {                                                                                              \
        s, sizeof(s) - 1                                                                           \
    }

static const struct {
    const char *name;
    size_t len;
} dropped[] = {
    /* RFC 9113 §8.2.2: connection-specific fields. */
    NAME("connection"),
    NAME("keep-alive"),
    NAME("proxy-connection"),
    NAME("transfer-encoding"),
    NAME("upgrade"),
    /* Rewritten by the gateway from the deadline left. */
    NAME("grpc-timeout"),
};

static int name_is(const uint8_t *name, size_t len, const char *s, size_t slen)
{
    return len == slen && memcmp(name, s, slen) == 0;
}

int gw_hdr_forwardable(const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen)
{
    size_t i;

    if (namelen == 0 || name[0] == ':')
        return 0;
    for (i = 0; i < sizeof(dropped) / sizeof(dropped[0]); i++)
        if (name_is(name, namelen, dropped[i].name, dropped[i].len))
            return 0;
    /* The one value te may carry in HTTP/2, and the one gRPC requires. */
    if (name_is(name, namelen, "te", 2))
        return valuelen == 8 && memcmp(value, "trailers", 8) == 0;
    return 1;
}
