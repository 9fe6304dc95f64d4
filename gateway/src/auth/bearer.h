/* SPDX-License-Identifier: Apache-2.0 */
/* bearer — reads the credential of an "authorization" metadata value
 * (pure logic, no allocation; fuzzed by tests/fuzz/fuzz_token.c).
 */
#ifndef INFERGW_BEARER_H
#define INFERGW_BEARER_H

#include <stddef.h>

/* Longest token accepted, in bytes: a JWT with a few claims and an RSA-4096
 * signature fits with room to spare; anything longer is refused unread. */
#define GW_BEARER_MAX 8192

/* Parses <value> (<len> bytes) as "Bearer <token>": the scheme is matched
 * case-insensitively, one or more spaces or tabs separate it from the token,
 * trailing blanks are dropped. The token must be 1..GW_BEARER_MAX bytes of
 * the RFC 6750 token68 alphabet (A-Z a-z 0-9 - . _ ~ + / and trailing '=').
 * Returns 0 with *tok (pointing into <value>) and *toklen set, or -1 when
 * the value is not such a credential (out-parameters untouched). Any thread. */
int gw_bearer_parse(const char *value, size_t len, const char **tok, size_t *toklen);

#endif
