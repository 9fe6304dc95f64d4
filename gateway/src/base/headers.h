/* SPDX-License-Identifier: Apache-2.0 */
/* headers — which HTTP/2 header fields the gateway relays between a client
 * and a replica (pure logic, no I/O, no allocation).
 *
 * A proxy must not forward connection-specific fields (RFC 9113 §8.2.2),
 * writes its own pseudo-headers, and rewrites grpc-timeout from the deadline
 * it has left; everything else, metadata included, passes unchanged in both
 * directions. Names arrive lowercase from nghttp2, which also rejects
 * malformed names and values before the gateway sees them.
 */
#ifndef INFERGW_HEADERS_H
#define INFERGW_HEADERS_H

#include <stddef.h>
#include <stdint.h>

/* Tells whether the header field <name>: <value> (lowercase name, neither
 * NUL-terminated) may be copied as is to the other side. Returns 0 for an
 * empty name, a pseudo-header (":..."), connection, keep-alive,
 * proxy-connection, transfer-encoding, upgrade, grpc-timeout, and te unless
 * its value is exactly "trailers"; returns 1 for anything else. Any thread. */
int gw_hdr_forwardable(const uint8_t *name, size_t namelen, const uint8_t *value, size_t valuelen);

#endif
