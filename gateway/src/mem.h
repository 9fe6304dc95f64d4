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

void *gw_malloc(size_t n);
void *gw_calloc(size_t nmemb, size_t size);
void *gw_realloc(void *p, size_t n);
void gw_free(void *p);
/* Copies <n> bytes of <s> and a terminating NUL; caller frees with gw_free(). */
char *gw_strndup(const char *s, size_t n);
char *gw_strdup(const char *s);

/* Test hook: the allocation after <n> more successful ones fails (returns
 * NULL), and every later one too until reset with -1. Not thread-safe: for
 * single-threaded unit tests only. */
void gw_mem_fail_after(long n);

#endif
