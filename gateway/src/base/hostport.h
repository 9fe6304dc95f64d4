/* SPDX-License-Identifier: Apache-2.0 */
/* hostport — splitting "host:port" addresses.
 *
 * One rule for every address infergw reads (--listen, --pool, --admin, replica
 * addresses from Redis, infergw-ctl's operands, the bench tools): a host of
 * 1..<hostlen>-1 bytes, or an IPv6 literal in brackets, then ':' and a port of
 * 1..65535 in decimal digits only. Pure: no I/O, no resolving.
 */
#ifndef INFERGW_HOSTPORT_H
#define INFERGW_HOSTPORT_H

#include <stddef.h>
#include <stdint.h>

/* Splits "host:port" ("[v6]:port" too) into <host> (NUL-terminated, at most
 * <hostlen>-1 bytes) and <port> (1..65535). Returns 0 or -1. */
int gw_hostport_split(const char *addr, char *host, size_t hostlen, uint16_t *port);

#endif
