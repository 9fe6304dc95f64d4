/* SPDX-License-Identifier: Apache-2.0 */
/* health — shared replica health records and passive ejection; see
 * health.h. */
#include "health/health.h"

#include <errno.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

#include "base/log.h"
#include "base/mem.h"
#include "obs/metrics.h"
#include "route/orca.h"
#include "route/policy.h"
#include "route/route.h"
#include "base/timer.h"

#define MS_NS               1000000ULL
#define CONN_BACKOFF_MIN_NS (100 * MS_NS)
#define CONN_BACKOFF_MAX_NS (5000 * MS_NS)
#define CHECK_PATH          "/grpc.health.v1.Health/Check"

static void avail_note_locked(struct gw_health *h, uint64_t now_ns);

/* --- the registry ------------------------------------------------------- */

struct gw_health_registry *gw_health_registry_new(void)
{
    struct gw_health_registry *reg = gw_calloc(1, sizeof(*reg));
    if (!reg)
        return NULL;
    atomic_init(&reg->head, NULL);
    pthread_mutex_init(&reg->mu, NULL);
    return reg;
}

void gw_health_registry_free(struct gw_health_registry *reg)
{
    if (!reg)
        return;
    struct gw_health *h = atomic_load(&reg->head);
    while (h) {
        struct gw_health *next = atomic_load_explicit(&h->next, memory_order_relaxed);
        gw_free(h->addr);
        gw_free(h);
        h = next;
    }
    for (h = reg->graveyard; h;) {
        struct gw_health *next = h->graveyard_next;
        gw_free(h->addr);
        gw_free(h);
        h = next;
    }
    pthread_mutex_destroy(&reg->mu);
    gw_free(reg);
}

struct gw_health *gw_health_find(struct gw_health_registry *reg, const char *addr)
{
    for (struct gw_health *h = atomic_load_explicit(&reg->head, memory_order_acquire); h;
         h = atomic_load_explicit(&h->next, memory_order_acquire))
        if (!strcmp(h->addr, addr))
            return h;
    return NULL;
}

struct gw_health *gw_health_get(struct gw_health_registry *reg, const char *addr)
{
    pthread_mutex_lock(&reg->mu);
    struct gw_health *h = gw_health_find(reg, addr);
    if (!h && (h = gw_calloc(1, sizeof(*h))) != NULL) {
        h->reg = reg;
        h->addr = gw_strdup(addr);
        if (!h->addr) {
            gw_free(h);
            h = NULL;
        } else {
            /* Fully built before the release store publishes it. */
            atomic_store_explicit(&h->next, atomic_load_explicit(&reg->head, memory_order_relaxed),
                                  memory_order_relaxed);
            atomic_store_explicit(&reg->head, h, memory_order_release);
            atomic_fetch_add_explicit(&reg->nrecords, 1, memory_order_relaxed);
        }
    }
    if (h)
        h->refs++;
    pthread_mutex_unlock(&reg->mu);
    return h;
}

void gw_health_put(struct gw_health *h)
{
    if (!h)
        return;
    pthread_mutex_lock(&h->reg->mu);
    h->refs--;
    pthread_mutex_unlock(&h->reg->mu);
}

size_t gw_health_sweep(struct gw_health_registry *reg, uint64_t now_ns)
{
    size_t freed = 0;
    pthread_mutex_lock(&reg->mu);
    /* Free what was unlinked long enough ago: no reader still holds it. */
    for (struct gw_health **p = &reg->graveyard; *p;) {
        struct gw_health *h = *p;
        if (now_ns - h->unlinked_ns < (uint64_t)GW_HEALTH_FREE_GRACE_MS * MS_NS) {
            p = &h->graveyard_next;
            continue;
        }
        *p = h->graveyard_next;
        gw_free(h->addr);
        gw_free(h);
        freed++;
    }
    /* Unlink the unreferenced. A reader walking past one keeps a valid next
     * pointer: an unlinked record's own next is left as it was until it is
     * freed. */
    _Atomic(struct gw_health *) *link = &reg->head;
    struct gw_health *h;
    while ((h = atomic_load_explicit(link, memory_order_relaxed)) != NULL) {
        if (h->refs != 0) {
            link = &h->next;
            continue;
        }
        atomic_store_explicit(link, atomic_load_explicit(&h->next, memory_order_relaxed),
                              memory_order_release);
        atomic_fetch_sub_explicit(&reg->nrecords, 1, memory_order_relaxed);
        h->unlinked_ns = now_ns;
        /* Its next field keeps pointing into the live list for readers; the
         * graveyard has a chain of its own. */
        h->graveyard_next = reg->graveyard;
        reg->graveyard = h;
    }
    pthread_mutex_unlock(&reg->mu);
    return freed;
}

/* --- state -------------------------------------------------------------- */

static uint32_t ld32(const _Atomic uint32_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static uint64_t ld64(const _Atomic uint64_t *v)
{
    return atomic_load_explicit(v, memory_order_relaxed);
}

static void add64(_Atomic uint64_t *v, uint64_t n)
{
    atomic_fetch_add_explicit(v, n, memory_order_relaxed);
}

int gw_health_ejected(const struct gw_health *h, uint64_t now_ns)
{
    uint64_t until = ld64(&h->ejected_until_ns);
    return until != 0 && now_ns < until;
}

int gw_health_usable(const struct gw_health *h, uint64_t now_ns)
{
    int s = atomic_load_explicit(&h->state, memory_order_relaxed);
    return s != GW_HEALTH_UNHEALTHY && s != GW_HEALTH_NOT_SERVING && !gw_health_ejected(h, now_ns);
}

const char *gw_health_state_name(enum gw_health_state s)
{
    static const char *const names[] = {"unknown", "healthy", "unhealthy", "not_serving"};
    return (unsigned)s < GW_HEALTH_NSTATES ? names[s] : "unknown";
}

const char *gw_health_result_name(enum gw_health_result r)
{
    static const char *const names[] = {"serving", "not_serving", "error", "timeout",
                                        "unimplemented"};
    return (unsigned)r < GW_HC_NRESULTS ? names[r] : "error";
}

int gw_health_apply_check(struct gw_health *h, enum gw_health_result r, uint32_t healthy_threshold,
                          uint32_t unhealthy_threshold)
{
    int prev = atomic_load_explicit(&h->state, memory_order_relaxed), next = prev;
    add64(&h->checks[r], 1);
    if (r == GW_HC_UNIMPLEMENTED) {
        atomic_store_explicit(&h->check_ok, 0, memory_order_relaxed);
        atomic_store_explicit(&h->check_fail, 0, memory_order_relaxed);
        next = GW_HEALTH_UNKNOWN;
    } else if (r == GW_HC_SERVING) {
        uint32_t ok = ld32(&h->check_ok) + 1;
        atomic_store_explicit(&h->check_ok, ok, memory_order_relaxed);
        atomic_store_explicit(&h->check_fail, 0, memory_order_relaxed);
        if (ok >= healthy_threshold)
            next = GW_HEALTH_HEALTHY;
    } else {
        uint32_t fail = ld32(&h->check_fail) + 1;
        atomic_store_explicit(&h->check_fail, fail, memory_order_relaxed);
        atomic_store_explicit(&h->check_ok, 0, memory_order_relaxed);
        if (fail >= unhealthy_threshold)
            next = r == GW_HC_NOT_SERVING ? GW_HEALTH_NOT_SERVING : GW_HEALTH_UNHEALTHY;
    }
    if (next == prev)
        return -1;
    atomic_store_explicit(&h->state, next, memory_order_relaxed);
    gw_health_avail_sync(h, gw_now_ns(), NULL);
    return next;
}

int gw_health_eject_allowed(const struct gw_routes *rt, size_t idx, gw_health_rec_fn rec, void *ctx,
                            uint32_t max_percent, uint64_t now_ns)
{
    for (size_t p = 0; p < rt->npools; p++) {
        const struct gw_pool *pool = &rt->pools[p];
        size_t n = pool->ring.nreplicas, ejected = 0;
        int member = 0;
        for (size_t j = 0; j < n; j++) {
            size_t r = pool->replica_ids[j];
            if (r == idx) {
                member = 1;
                continue;
            }
            struct gw_health *h = rec(r, ctx);
            ejected += h && gw_health_ejected(h, now_ns);
        }
        /* Ejecting it would make (ejected + 1) of n ejected. */
        if (member && (uint64_t)(ejected + 1) * 100 > (uint64_t)max_percent * n)
            return 0;
    }
    return 1;
}

int gw_health_passive(struct gw_health *h, int ok, uint64_t now_ns,
                      const struct gw_outlier_params *p, const struct gw_routes *rt, int idx,
                      gw_health_rec_fn rec, void *ctx)
{
    if (ok) {
        /* A load first: the common case writes nothing, so workers do not
         * bounce the line between them. */
        if (ld32(&h->failures) != 0)
            atomic_store_explicit(&h->failures, 0, memory_order_relaxed);
        return 0;
    }
    uint32_t n = atomic_fetch_add_explicit(&h->failures, 1, memory_order_relaxed) + 1;
    if (p->failures == 0 || n < p->failures || idx < 0 || !rt)
        return 0;
    int ejected = 0;
    pthread_mutex_lock(&h->reg->mu);
    if (ld32(&h->failures) >= p->failures && !gw_health_ejected(h, now_ns) &&
        gw_health_eject_allowed(rt, (size_t)idx, rec, ctx, p->max_percent, now_ns)) {
        uint32_t times = ld32(&h->times_ejected) + 1;
        uint64_t ms = gw_policy_ejection_ms(times, p->base_ms, p->max_ms);
        atomic_store_explicit(&h->times_ejected, times, memory_order_relaxed);
        atomic_store_explicit(&h->ejected_until_ns, now_ns + ms * MS_NS, memory_order_relaxed);
        avail_note_locked(h, now_ns);
        ejected = 1;
    }
    /* Ejected or refused by the cap: either way the next decision waits for
     * a fresh run of failures, so a failing pool does not take the mutex on
     * every failure. */
    atomic_store_explicit(&h->failures, 0, memory_order_relaxed);
    pthread_mutex_unlock(&h->reg->mu);
    return ejected;
}

int gw_health_end_ejection(struct gw_health *h, uint64_t now_ns)
{
    uint64_t until = ld64(&h->ejected_until_ns);
    if (until == 0 || now_ns < until)
        return 0;
    if (!atomic_compare_exchange_strong(&h->ejected_until_ns, &until, 0))
        return 0;
    gw_health_avail_sync(h, now_ns, NULL);
    return 1;
}

int gw_health_conn_failed(struct gw_health *h, uint64_t now_ns)
{
    uint32_t f = atomic_fetch_add_explicit(&h->connect_failures, 1, memory_order_relaxed) + 1;
    uint64_t backoff = CONN_BACKOFF_MIN_NS << (f < 7 ? f - 1 : 6);
    if (backoff > CONN_BACKOFF_MAX_NS)
        backoff = CONN_BACKOFF_MAX_NS;
    atomic_store_explicit(&h->connect_retry_at_ns, now_ns + backoff, memory_order_relaxed);
    if (f != 1)
        return 0;
    gw_health_avail_sync(h, now_ns, NULL);
    return 1;
}

int gw_health_conn_alive(struct gw_health *h)
{
    if (ld32(&h->connect_failures) == 0)
        return 0;
    if (atomic_exchange_explicit(&h->connect_failures, 0, memory_order_relaxed) == 0)
        return 0;
    gw_health_avail_sync(h, gw_now_ns(), NULL);
    return 1;
}

int gw_health_conn_backing_off(const struct gw_health *h, uint64_t now_ns)
{
    return ld32(&h->connect_failures) != 0 && now_ns < ld64(&h->connect_retry_at_ns);
}

/* --- availability ---------------------------------------------------------- */

int gw_health_avail_note(struct gw_health_avail *a, int up, uint64_t now_ns)
{
    up = up != 0;
    if (!a->seen) {
        if (!up)
            return 0; /* nothing counts before the replica is first seen up */
        a->seen = 1;
        a->up = 1;
        a->since_ns = now_ns;
        return 1;
    }
    if (up == a->up)
        return 0;
    uint64_t spent = now_ns > a->since_ns ? now_ns - a->since_ns : 0;
    if (a->up) {
        a->up_ns += spent;
        a->failures++;
    } else {
        a->down_ns += spent;
        a->recoveries++;
    }
    a->up = up;
    a->since_ns = now_ns > a->since_ns ? now_ns : a->since_ns;
    return 1;
}

void gw_health_avail_stats(const struct gw_health_avail *a, uint64_t now_ns,
                           struct gw_health_avail_stats *out)
{
    memset(out, 0, sizeof(*out));
    out->availability = 1.0;
    if (!a->seen)
        return;
    uint64_t open = now_ns > a->since_ns ? now_ns - a->since_ns : 0;
    uint64_t up_ns = a->up_ns + (a->up ? open : 0);
    uint64_t down_ns = a->down_ns + (a->up ? 0 : open);
    out->failures = a->failures;
    out->recoveries = a->recoveries;
    out->up_s = (double)up_ns / 1e9;
    out->down_s = (double)down_ns / 1e9;
    out->mtbf_s = a->failures ? out->up_s / a->failures : out->up_s;
    out->mttr_s = a->recoveries ? (double)a->down_ns / 1e9 / a->recoveries : 0.0;
    if (up_ns + down_ns > 0)
        out->availability = (double)up_ns / (double)(up_ns + down_ns);
}

int gw_health_is_up(const struct gw_health *h, uint64_t now_ns)
{
    return gw_health_usable(h, now_ns) && ld32(&h->connect_failures) == 0;
}

/* Notes the current state of <h>; reg->mu held. */
static void avail_note_locked(struct gw_health *h, uint64_t now_ns)
{
    gw_health_avail_note(&h->avail, gw_health_is_up(h, now_ns), now_ns);
}

void gw_health_avail_sync(struct gw_health *h, uint64_t now_ns, struct gw_health_avail_stats *out)
{
    pthread_mutex_lock(&h->reg->mu);
    avail_note_locked(h, now_ns);
    if (out)
        gw_health_avail_stats(&h->avail, now_ns, out);
    pthread_mutex_unlock(&h->reg->mu);
}

/* --- metrics -------------------------------------------------------------- */

/* The availability series of every record (see struct
 * gw_health_avail_stats); notes each record's current state first. The
 * records are collected once, so every series lists the same ones. */
static void render_avail(struct gw_health *head, uint64_t now, FILE *out)
{
    static const struct {
        const char *name, *type, *help;
    } series[4] = {
        {"infergw_replica_failures_total", "counter",
         "Times the replica went from up (usable and reachable) to down."},
        {"infergw_replica_mtbf_seconds", "gauge",
         "Mean time between failures: time up / failures (before the first failure, the time "
         "up so far)."},
        {"infergw_replica_mttr_seconds", "gauge",
         "Mean time to repair: time down / recoveries, of the failures that ended."},
        {"infergw_replica_availability", "gauge",
         "Share of the time the replica was up since first seen up: MTBF / (MTBF + MTTR)."},
    };
    size_t n = 0;
    for (struct gw_health *h = head; h; h = atomic_load_explicit(&h->next, memory_order_acquire))
        n++;
    struct gw_health **recs = gw_calloc(n + 1, sizeof(*recs));
    struct gw_health_avail_stats *st = gw_calloc(n + 1, sizeof(*st));
    size_t k = 0;
    for (struct gw_health *h = head; recs && st && h && k < n;
         h = atomic_load_explicit(&h->next, memory_order_acquire)) {
        recs[k] = h;
        gw_health_avail_sync(h, now, &st[k++]);
    }
    for (int s = 0; recs && st && s < 4; s++) {
        fprintf(out, "# HELP %s %s\n# TYPE %s %s\n", series[s].name, series[s].help, series[s].name,
                series[s].type);
        for (size_t i = 0; i < k; i++) {
            double v[4] = {st[i].failures, st[i].mtbf_s, st[i].mttr_s, st[i].availability};
            fprintf(out, "%s{replica=\"", series[s].name);
            gw_metrics_write_label(out, recs[i]->addr);
            fprintf(out, s == 0 ? "\"} %.0f\n" : "\"} %.6f\n", v[s]);
        }
    }
    gw_free(recs);
    gw_free(st);
}

void gw_health_render_metrics(struct gw_health_registry *reg, FILE *out)
{
    struct gw_health *head = atomic_load_explicit(&reg->head, memory_order_acquire);
    uint64_t now = gw_now_ns();

    fputs("# HELP infergw_replica_health Replica health as the gateway sees it: 1 for the "
          "replica's current state (unknown, healthy, unhealthy, not_serving, ejected, down).\n"
          "# TYPE infergw_replica_health gauge\n",
          out);
    for (struct gw_health *h = head; h; h = atomic_load_explicit(&h->next, memory_order_acquire)) {
        static const char *const extra[] = {"ejected", "down"};
        int st = atomic_load_explicit(&h->state, memory_order_relaxed);
        for (int s = 0; s < GW_HEALTH_NSTATES; s++) {
            fputs("infergw_replica_health{replica=\"", out);
            gw_metrics_write_label(out, h->addr);
            fprintf(out, "\",state=\"%s\"} %d\n", gw_health_state_name(s), s == st);
        }
        int flags[2] = {gw_health_ejected(h, now), ld32(&h->connect_failures) != 0};
        for (int k = 0; k < 2; k++) {
            fputs("infergw_replica_health{replica=\"", out);
            gw_metrics_write_label(out, h->addr);
            fprintf(out, "\",state=\"%s\"} %d\n", extra[k], flags[k]);
        }
    }
    fprintf(out,
            "# HELP infergw_health_records Replica health records held (replicas configured "
            "now, plus ones that left and are not freed yet).\n"
            "# TYPE infergw_health_records gauge\n"
            "infergw_health_records %zu\n",
            atomic_load_explicit(&reg->nrecords, memory_order_relaxed));
    fputs("# HELP infergw_replica_load The replica's reported load (ORCA trailers: decaying "
          "average of max(cpu_utilization, kv_cache_usage)); -1 = none or stale.\n"
          "# TYPE infergw_replica_load gauge\n",
          out);
    for (struct gw_health *h = head; h; h = atomic_load_explicit(&h->next, memory_order_acquire)) {
        fputs("infergw_replica_load{replica=\"", out);
        gw_metrics_write_label(out, h->addr);
        fprintf(out, "\"} %g\n", gw_health_load(h, now));
    }
    fputs("# HELP infergw_replica_ejections_total Passive outlier ejections of the replica.\n"
          "# TYPE infergw_replica_ejections_total counter\n",
          out);
    for (struct gw_health *h = head; h; h = atomic_load_explicit(&h->next, memory_order_acquire)) {
        fputs("infergw_replica_ejections_total{replica=\"", out);
        gw_metrics_write_label(out, h->addr);
        fprintf(out, "\"} %u\n", ld32(&h->times_ejected));
    }
    fputs("# HELP infergw_health_checks_total Active grpc.health.v1 checks by result.\n"
          "# TYPE infergw_health_checks_total counter\n",
          out);
    for (struct gw_health *h = head; h; h = atomic_load_explicit(&h->next, memory_order_acquire))
        for (int r = 0; r < GW_HC_NRESULTS; r++) {
            fputs("infergw_health_checks_total{replica=\"", out);
            gw_metrics_write_label(out, h->addr);
            fprintf(out, "\",result=\"%s\"} %llu\n", gw_health_result_name(r),
                    (unsigned long long)ld64(&h->checks[r]));
        }
    render_avail(head, now, out);
    fputs("# HELP infergw_upstream_keepalive_timeouts_total Upstream connections closed because "
          "a PING was not answered in time.\n"
          "# TYPE infergw_upstream_keepalive_timeouts_total counter\n",
          out);
    for (struct gw_health *h = head; h; h = atomic_load_explicit(&h->next, memory_order_acquire)) {
        fputs("infergw_upstream_keepalive_timeouts_total{replica=\"", out);
        gw_metrics_write_label(out, h->addr);
        fprintf(out, "\"} %llu\n", (unsigned long long)ld64(&h->keepalive_timeouts));
    }
}

static double load_stored(const struct gw_health *h)
{
    uint64_t bits = atomic_load_explicit(&h->load_bits, memory_order_relaxed);
    double d;
    memcpy(&d, &bits, sizeof(d));
    return d;
}

void gw_health_load_report(struct gw_health *h, double sample, uint64_t now_ns)
{
    double prev = gw_health_load(h, now_ns);
    double avg = gw_orca_avg(prev, sample);
    uint64_t bits;
    memcpy(&bits, &avg, sizeof(bits));
    atomic_store_explicit(&h->load_bits, bits, memory_order_relaxed);
    atomic_store_explicit(&h->load_at_ns, now_ns ? now_ns : 1, memory_order_relaxed);
}

double gw_health_load(const struct gw_health *h, uint64_t now_ns)
{
    uint64_t at = atomic_load_explicit(&h->load_at_ns, memory_order_relaxed);
    if (at == 0 || (now_ns > at && now_ns - at > (uint64_t)GW_HEALTH_LOAD_STALE_MS * 1000000))
        return -1;
    return load_stored(h);
}
