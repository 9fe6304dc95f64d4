/* SPDX-License-Identifier: Apache-2.0 */
/* prefixstate — the shared estimation index and the prefix counters. See
 * prefixstate.h. */
#include "engine/prefixstate.h"

#include <jansson.h>
#include <pthread.h>
#include <string.h>

#include "base/log.h"
#include "obs/metrics.h"
#include "route/prefixidx.h"

static pthread_mutex_t pfx_mu = PTHREAD_MUTEX_INITIALIZER;
static _Atomic(struct gw_pidx *) pfx_index;
static int pfx_index_failed; /* under pfx_mu */
static struct gw_pfx_pool pfx_pools[GW_PFX_MAX_POOLS];
static _Atomic size_t pfx_npools;
static _Atomic uint64_t pfx_load_bad;

static const char *const decision_names[GW_PFX_NDECISIONS] = {
    "prefix",     "load_override", "ring_fallback", "not_replayable",
    "compressed", "no_input",      "malformed",
};

static const uint32_t bucket_le[GW_PFX_NBUCKETS - 1] = {0, 1, 4, 16, 64, 256, 1024, 4096};

const char *gw_pfx_decision_name(enum gw_pfx_decision d)
{
    return (unsigned)d < GW_PFX_NDECISIONS ? decision_names[d] : "unknown";
}

struct gw_pidx *gw_pfx_index(size_t bytes)
{
    struct gw_pidx *x = atomic_load_explicit(&pfx_index, memory_order_acquire);
    if (x)
        return x;
    pthread_mutex_lock(&pfx_mu);
    x = atomic_load_explicit(&pfx_index, memory_order_relaxed);
    if (!x && !pfx_index_failed) {
        x = gw_pidx_create(bytes, GW_PIDX_SHARED);
        if (!x) {
            pfx_index_failed = 1;
            gw_log(GW_LOG_ERROR, "prefix_index_failed", "{s:I, s:s}", "bytes", (json_int_t)bytes,
                   "effect", "prefix pools route by the ring");
        }
        atomic_store_explicit(&pfx_index, x, memory_order_release);
    }
    pthread_mutex_unlock(&pfx_mu);
    return x;
}

struct gw_pidx *gw_pfx_index_peek(void)
{
    return atomic_load_explicit(&pfx_index, memory_order_acquire);
}

struct gw_pfx_pool *gw_pfx_pool_find(const char *name, size_t len)
{
    size_t n = atomic_load_explicit(&pfx_npools, memory_order_acquire);
    for (size_t i = 0; i < n; i++)
        if (pfx_pools[i].name_len == len && memcmp(pfx_pools[i].name, name, len) == 0)
            return &pfx_pools[i];
    return NULL;
}

struct gw_pfx_pool *gw_pfx_pool(const char *name, size_t len)
{
    struct gw_pfx_pool *p = gw_pfx_pool_find(name, len);
    if (p || len > GW_MODEL_NAME_MAX)
        return p;
    pthread_mutex_lock(&pfx_mu);
    p = gw_pfx_pool_find(name, len);
    size_t n = atomic_load_explicit(&pfx_npools, memory_order_relaxed);
    if (!p && n < GW_PFX_MAX_POOLS) {
        p = &pfx_pools[n];
        memcpy(p->name, name, len);
        p->name[len] = '\0';
        p->name_len = len;
        atomic_store_explicit(&pfx_npools, n + 1, memory_order_release);
    }
    pthread_mutex_unlock(&pfx_mu);
    return p;
}

void gw_pfx_count(struct gw_pfx_pool *p, enum gw_pfx_decision d, int matched)
{
    if (!p || (unsigned)d >= GW_PFX_NDECISIONS)
        return;
    atomic_fetch_add_explicit(&p->decisions[d], 1, memory_order_relaxed);
    if (matched < 0)
        return;
    size_t b = 0;
    while (b < GW_PFX_NBUCKETS - 1 && (uint32_t)matched > bucket_le[b])
        b++;
    atomic_fetch_add_explicit(&p->matched[b], 1, memory_order_relaxed);
    atomic_fetch_add_explicit(&p->matched_sum, (uint64_t)matched, memory_order_relaxed);
}

void gw_pfx_load_bad(void)
{
    atomic_fetch_add_explicit(&pfx_load_bad, 1, memory_order_relaxed);
}

uint64_t gw_pfx_load_bad_total(void)
{
    return atomic_load_explicit(&pfx_load_bad, memory_order_relaxed);
}

static uint64_t rd(_Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

/* Writes <metric>{pool="<name>" (the caller closes the braces). */
static void pool_series(FILE *out, const char *metric, const struct gw_pfx_pool *p)
{
    fprintf(out, "%s{pool=\"", metric);
    gw_metrics_write_label(out, p->name);
    fputc('"', out);
}

static void render_decisions(FILE *out, struct gw_pfx_pool *p)
{
    for (int d = 0; d < GW_PFX_NDECISIONS; d++) {
        pool_series(out, "infergw_prefix_decisions_total", p);
        fprintf(out, ",decision=\"%s\"} %llu\n", decision_names[d],
                (unsigned long long)rd(&p->decisions[d]));
    }
}

static void render_matched(FILE *out, struct gw_pfx_pool *p)
{
    uint64_t cum = 0;
    for (int b = 0; b < GW_PFX_NBUCKETS; b++) {
        cum += rd(&p->matched[b]);
        pool_series(out, "infergw_prefix_matched_blocks_bucket", p);
        if (b < GW_PFX_NBUCKETS - 1)
            fprintf(out, ",le=\"%u\"} %llu\n", bucket_le[b], (unsigned long long)cum);
        else
            fprintf(out, ",le=\"+Inf\"} %llu\n", (unsigned long long)cum);
    }
    pool_series(out, "infergw_prefix_matched_blocks_sum", p);
    fprintf(out, "} %llu\n", (unsigned long long)rd(&p->matched_sum));
    pool_series(out, "infergw_prefix_matched_blocks_count", p);
    fprintf(out, "} %llu\n", (unsigned long long)cum);
}

void gw_pfx_render_metrics(FILE *out)
{
    size_t n = atomic_load_explicit(&pfx_npools, memory_order_acquire);
    fputs("# HELP infergw_prefix_decisions_total Prefix-routing decisions by pool and outcome "
          "(picks and why calls were not hashed).\n"
          "# TYPE infergw_prefix_decisions_total counter\n",
          out);
    for (size_t i = 0; i < n; i++)
        render_decisions(out, &pfx_pools[i]);
    fputs("# HELP infergw_prefix_matched_blocks Leading blocks matched by the chosen replica.\n"
          "# TYPE infergw_prefix_matched_blocks histogram\n",
          out);
    for (size_t i = 0; i < n; i++)
        render_matched(out, &pfx_pools[i]);
    struct gw_pidx *x = gw_pfx_index_peek();
    struct gw_pidx_stats st = {0};
    if (x)
        gw_pidx_stats(x, &st);
    fprintf(out,
            "# HELP infergw_prefix_index_bytes Memory held by the prefix estimation index.\n"
            "# TYPE infergw_prefix_index_bytes gauge\ninfergw_prefix_index_bytes %zu\n"
            "# HELP infergw_prefix_index_entries Entries in use in the prefix estimation index.\n"
            "# TYPE infergw_prefix_index_entries gauge\ninfergw_prefix_index_entries %zu\n"
            "# HELP infergw_load_reports_bad_total Replica load reports (ORCA trailers) ignored "
            "as malformed or out of range.\n"
            "# TYPE infergw_load_reports_bad_total counter\ninfergw_load_reports_bad_total %llu\n",
            st.bytes, st.entries, (unsigned long long)gw_pfx_load_bad_total());
}

void gw_pfx_shutdown(void)
{
    pthread_mutex_lock(&pfx_mu);
    struct gw_pidx *x = atomic_exchange(&pfx_index, NULL);
    pfx_index_failed = 0;
    pthread_mutex_unlock(&pfx_mu);
    gw_pidx_free(x);
}
