/* SPDX-License-Identifier: Apache-2.0 */
/* err — the gateway's one error convention, and the two helpers every
 * module uses to follow it.
 *
 * The convention (docs/conventions.md has the long form):
 *   1. A function that can fail returns int: 0 on success, -1 on failure,
 *      and fills the caller's <char *err, size_t errlen> buffer with one
 *      line naming what was refused and why (never a secret). Functions
 *      that return a pointer return NULL on failure, with the same buffer
 *      when they take one. Out-parameters are untouched on failure.
 *   2. A function that only answers a question returns 1/0 (a predicate),
 *      never -1.
 *   3. gRPC outcomes travel as enum gw_grpc_status (base/grpcwire.h), never
 *      as -1 plus text: the text goes into the call's grpc-message.
 *   4. Whoever decides what a failure means logs it, once: a module that
 *      returns an error does not also log it (its caller does, or reports
 *      it to its own caller); a module that handles a failure itself (a
 *      worker dropping a connection, a watcher keeping the old config)
 *      logs it with gw_log() and returns nothing to its caller.
 *   5. Out of memory is a failure like any other: "out of memory" in <err>.
 */
#ifndef INFERGW_ERR_H
#define INFERGW_ERR_H

#include <stddef.h>
#include <stdint.h>

/* Formats the reason into <err> (at most <errlen> - 1 bytes, NUL-terminated;
 * nothing when <err> is NULL or <errlen> is 0). Always returns -1, so a
 * failure path can be `return gw_errf(err, errlen, "...", ...);`. */
int gw_errf(char *err, size_t errlen, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* Parses <s> as a decimal integer in <min>..<max>: one or more ASCII digits
 * and nothing else (no sign, no white space, no exponent). Returns 0 with
 * the value in <*out>, or -1 (then <*out> is untouched). Pure. */
int gw_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* The same for a uint32_t (<max> at most UINT32_MAX). */
int gw_parse_u32(const char *s, uint32_t min, uint32_t max, uint32_t *out);

#endif
