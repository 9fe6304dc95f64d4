/* SPDX-License-Identifier: Apache-2.0 */
/* mem — the one allocation wrapper of the gateway.
 *
 * Production code never calls the test hooks, so `hooked` stays 0 and every
 * wrapper costs one well-predicted branch before the libc call; the hooks'
 * state is plain globals because they serve single-threaded unit tests only
 * (nothing writes them while worker threads run). Once a test arms a hook,
 * the slow path both decides failures and keeps a live-allocation count so
 * tests can assert that an error path freed everything it took.
 */
#include "base/mem.h"

#include <stdlib.h>
#include <string.h>

static int hooked;               /* set by the first gw_mem_fail_after() call */
static long fail_countdown = -1; /* successes left before failing; -1 = never fail */
static int fail_once;            /* after the failure, succeed again */
static long live;                /* allocations minus frees while hooked */
static long allocs;              /* allocations attempted while hooked */

/* Decides whether the allocation about to be made may proceed (1) or must
 * fail (0), counting it against the countdown. */
static int mem_allow(void)
{
    allocs++;
    if (fail_countdown < 0)
        return 1;
    if (fail_countdown == 0) {
        if (fail_once)
            fail_countdown = -1;
        return 0;
    }
    fail_countdown--;
    return 1;
}

void gw_mem_fail_after(long n)
{
    hooked = 1;
    fail_once = 0;
    fail_countdown = n < 0 ? -1 : n;
}

void gw_mem_fail_once(long n)
{
    gw_mem_fail_after(n);
    fail_once = 1;
}

long gw_mem_live(void)
{
    return live;
}

long gw_mem_allocs(void)
{
    return allocs;
}

void *gw_malloc(size_t n)
{
    void *p;

    if (__builtin_expect(!hooked, 1))
        return malloc(n);
    if (!mem_allow())
        return NULL;
    p = malloc(n);
    if (p)
        live++;
    return p;
}

void *gw_calloc(size_t nmemb, size_t size)
{
    void *p;

    if (__builtin_expect(!hooked, 1))
        return calloc(nmemb, size);
    if (!mem_allow())
        return NULL;
    p = calloc(nmemb, size);
    if (p)
        live++;
    return p;
}

void *gw_realloc(void *p, size_t n)
{
    void *q;

    /* realloc(p, 0) may free p and return NULL, which callers would take
     * for a failure that left p alive: never ask for 0 bytes. */
    if (n == 0)
        n = 1;
    if (__builtin_expect(!hooked, 1))
        return realloc(p, n);
    if (!mem_allow())
        return NULL;
    q = realloc(p, n);
    if (q && !p)
        live++;
    return q;
}

void gw_free(void *p)
{
    if (__builtin_expect(hooked, 0) && p)
        live--;
    free(p);
}

char *gw_strndup(const char *s, size_t n)
{
    size_t len = strnlen(s, n);
    char *d = gw_malloc(len + 1);

    if (!d)
        return NULL;
    memcpy(d, s, len);
    d[len] = '\0';
    return d;
}

char *gw_strdup(const char *s)
{
    return gw_strndup(s, strlen(s));
}
