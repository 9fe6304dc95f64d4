/* SPDX-License-Identifier: Apache-2.0 */
/* mem — the one allocation wrapper of the gateway.
 *
 * Every allocation in gateway/src goes through these functions so that tests
 * can make the nth allocation fail (gw_mem_fail_after) and prove that each
 * out-of-memory path answers cleanly instead of crashing. In production the
 * wrappers are a single predictable branch in front of the libc call.
 */
#ifndef INFERGW_MEM_H
#define INFERGW_MEM_H

#include <stddef.h>

/* Same contracts as malloc/calloc/free. Return NULL when out of memory or
 * when the test hook says this allocation fails. */
void *gw_malloc(size_t n);
void *gw_calloc(size_t nmemb, size_t size);
/* Like realloc, except that <n> == 0 is treated as 1 (never frees <p>). On
 * failure returns NULL and leaves <p> allocated and unchanged. */
void *gw_realloc(void *p, size_t n);
void gw_free(void *p);
/* Copies at most <n> bytes of <s> (stopping early at a NUL, so <s> need not be
 * NUL-terminated when it holds <n> bytes) and a terminating NUL; caller frees
 * with gw_free(). Returns NULL when out of memory. */
char *gw_strndup(const char *s, size_t n);
/* Copies the NUL-terminated <s>; caller frees with gw_free(). */
char *gw_strdup(const char *s);

/* Test hook: the allocation after <n> more successful ones fails (returns
 * NULL), and every later one too until reset with -1. Not thread-safe: for
 * single-threaded unit tests only. */
void gw_mem_fail_after(long n);
/* Test hook: like gw_mem_fail_after, but only that one allocation fails;
 * the ones after it succeed (a transient failure). */
void gw_mem_fail_once(long n);
/* Test hook: allocations made through these wrappers minus frees of non-NULL
 * pointers, counted from the first gw_mem_fail_after() call on (before that,
 * nothing is counted and the value is 0). Compare two readings to prove an
 * operation left nothing allocated. Not thread-safe, like gw_mem_fail_after. */
long gw_mem_live(void);
/* Test hook: allocations attempted through these wrappers (failed ones
 * included) since the first gw_mem_fail_after() call, so a test can learn
 * how many failure points an operation has. Not thread-safe either. */
long gw_mem_allocs(void);

#endif
