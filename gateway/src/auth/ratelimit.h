/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimit — one token bucket per tenant per gateway process (shared by
 * every worker, lock-free), sized by the tenant's rps and burst (burst 0 =
 * max(1, rps)). The bucket starts full, so a new tenant may send <burst>
 * calls at once, then <rps> per second.
 */
#ifndef INFERGW_RATELIMIT_H
#define INFERGW_RATELIMIT_H

#include <stdint.h>

#include "auth/authdb.h"

/* Takes one token from <t>'s bucket at time <now_ns> (monotonic). Returns 0
 * when the call may go on (always, for a tenant without rps), or -1 when the
 * tenant is over its rate, with *retry_after_ms set to when a token will be
 * there. Any thread. */
int gw_ratelimit_take(const struct gw_tenant *t, uint64_t now_ns, uint32_t *retry_after_ms);

/* How many tenants the process-wide table of buckets holds (power of 2). */
#define GW_RATELIMIT_SLOTS 16384

/* Calls admitted without a bucket because the table was full (or out of
 * memory). Any thread. */
unsigned long long gw_ratelimit_overflow(void);

#endif
