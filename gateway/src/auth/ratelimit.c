/* SPDX-License-Identifier: Apache-2.0 */
/* ratelimit — per-tenant token buckets; see ratelimit.h.
 *
 * The bucket is kept in its GCRA form (the "virtual scheduling" form of a
 * token bucket): one 64-bit "theoretical arrival time" (TAT, monotonic ns)
 * per tenant. With emission interval T = 1 s / rps and capacity B = burst, a
 * call at <now> is admitted when max(TAT, now) + T - now <= B * T, and the
 * new TAT is max(TAT, now) + T. That is exactly a bucket of B tokens refilled
 * at rps: TAT - now is how much of the bucket is used, in time. One word of
 * state means one compare-and-swap per admitted call and no lock; a refused
 * call writes nothing. rps and burst are read from the tenant record on each
 * call, so a change in Redis applies with the next snapshot: the bucket
 * remembers the interval its TAT was counted in and recounts the tokens in
 * use at a new rate, and never holds more than a full bucket of debt.
 *
 * The buckets live in a process-wide open-addressing table keyed by tenant
 * name (a tenant's bucket must outlive the snapshots whose records name it,
 * so the records cannot own it). A bucket is created on first use by a CAS
 * into an empty slot and never freed: the table holds GW_RATELIMIT_SLOTS
 * tenants; past that, unknown tenants are admitted and counted
 * (gw_ratelimit_overflow) rather than refused.
 */
#include "auth/ratelimit.h"

#include <math.h>
#include <stdatomic.h>
#include <string.h>

#include "base/mem.h"

struct bucket {
    _Atomic uint64_t tat;      /* theoretical arrival time, ns */
    _Atomic uint64_t interval; /* T (ns) that <tat> was last counted in; 0 = none yet */
    _Atomic uint64_t params;   /* a mix of T and tau last seen, to notice a change */
    char name[];
};

static _Atomic(struct bucket *) table[GW_RATELIMIT_SLOTS];
static atomic_ullong overflow;

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

/* The bucket of <name>, created on first use; NULL when the table is full
 * or out of memory. */
static struct bucket *bucket_of(const char *name)
{
    size_t mask = GW_RATELIMIT_SLOTS - 1, i = (size_t)name_hash(name) & mask;
    struct bucket *mine = NULL;
    for (size_t probes = 0; probes < GW_RATELIMIT_SLOTS; probes++, i = (i + 1) & mask) {
        struct bucket *b = atomic_load_explicit(&table[i], memory_order_acquire);
        if (!b) {
            if (!mine) {
                size_t n = strlen(name);
                mine = gw_malloc(sizeof(*mine) + n + 1);
                if (!mine)
                    return NULL;
                atomic_init(&mine->tat, 0);
                atomic_init(&mine->interval, 0);
                atomic_init(&mine->params, 0);
                memcpy(mine->name, name, n + 1);
            }
            if (atomic_compare_exchange_strong_explicit(&table[i], &b, mine, memory_order_acq_rel,
                                                        memory_order_acquire))
                return mine;
            /* Another thread filled the slot first: <b> is what it put. */
        }
        if (!strcmp(b->name, name)) {
            gw_free(mine);
            return b;
        }
    }
    gw_free(mine);
    return NULL;
}

int gw_ratelimit_take(const struct gw_tenant *t, uint64_t now_ns, uint32_t *retry_after_ms)
{
    if (!(t->rps > 0))
        return 0;
    struct bucket *b = bucket_of(t->name);
    if (!b) {
        atomic_fetch_add_explicit(&overflow, 1, memory_order_relaxed);
        return 0;
    }
    double burst = t->burst ? (double)t->burst : fmax(1.0, t->rps);
    double interval = 1e9 / t->rps;
    /* Both bounded well inside 64 bits: rps >= GW_TENANT_RPS_MIN, burst <= GW_TENANT_BURST_MAX
     * for validated records; clamp anyway for hand-made ones. */
    uint64_t t_ns = interval >= 4e18 ? (uint64_t)4e18 : (uint64_t)llround(interval);
    if (t_ns == 0)
        t_ns = 1;
    double tau_d = burst * (double)t_ns;
    uint64_t tau = tau_d >= 4e18 ? (uint64_t)4e18 : (uint64_t)tau_d;

    uint64_t tat = atomic_load_explicit(&b->tat, memory_order_relaxed);
    uint64_t key = t_ns ^ (tau * 0x9E3779B97F4A7C15ULL), seen = atomic_load(&b->params);
    if (seen != key && atomic_compare_exchange_strong(&b->params, &seen, key)) {
        /* rps or burst changed (this thread noticed first): the tokens in
         * use, (TAT - now) / T_old, are recounted in the new interval, and
         * never more than a full bucket is owed. Calls racing with this one
         * may be counted with either parameters for that moment. */
        uint64_t old_t = atomic_exchange(&b->interval, t_ns);
        while (old_t && tat > now_ns) {
            double v = (double)(tat - now_ns) / (double)old_t * (double)t_ns;
            uint64_t used = v > (double)tau ? tau : (uint64_t)v;
            if (atomic_compare_exchange_weak_explicit(&b->tat, &tat, now_ns + used,
                                                      memory_order_relaxed, memory_order_relaxed)) {
                tat = now_ns + used;
                break;
            }
        }
    }
    for (;;) {
        uint64_t base = tat > now_ns ? tat : now_ns;
        uint64_t next = base + t_ns;
        if (next - now_ns > tau) {
            /* Over the rate: a token is back once next - now <= tau. */
            uint64_t wait_ns = next - now_ns - tau;
            uint64_t ms = (wait_ns + 999999) / 1000000;
            *retry_after_ms = ms == 0 ? 1 : ms > UINT32_MAX ? UINT32_MAX : (uint32_t)ms;
            return -1;
        }
        if (atomic_compare_exchange_weak_explicit(&b->tat, &tat, next, memory_order_relaxed,
                                                  memory_order_relaxed))
            return 0;
    }
}

unsigned long long gw_ratelimit_overflow(void)
{
    return atomic_load_explicit(&overflow, memory_order_relaxed);
}
