/* SPDX-License-Identifier: Apache-2.0 */
/* status — the admin endpoint's live status page: a read-only HTML page
 * (obs/status/index.html, status.css, status.js, embedded into the binary at
 * build time) and the JSON it polls, /status.json.
 *
 *   /             the page (text/html); /status.css, /status.js its files
 *   /status.json  pools with their ring (each replica's share of the hash
 *                 space, from the ring itself), replicas with health,
 *                 ejection, drain, lease and in-flight attempts, per-pool
 *                 call rate, error ratio and latency p50/p99 per
 *                 GW_STATUS_PERIOD_MS over the last GW_STATUS_SAMPLES
 *                 periods, the SLO burn over that window, and the config
 *                 versions the watcher applied (newest first, with times)
 *
 * Every answer carries a Content-Security-Policy that allows only the page's
 * own files (default-src 'self'): the page fetches nothing from outside.
 *
 * History: a thread of this module samples the per-pool counters the
 * workers already keep (struct gw_metrics_pool: calls per code, the
 * duration histogram) every GW_STATUS_PERIOD_MS and keeps, per pool name,
 * the last GW_STATUS_SAMPLES deltas in a fixed ring: bounded memory, no cost
 * per call beyond the metrics. Errors are the codes the Prometheus rules
 * count (UNKNOWN, DEADLINE_EXCEEDED, UNIMPLEMENTED, INTERNAL, UNAVAILABLE,
 * DATA_LOSS); p50/p99 are interpolated within the histogram's buckets.
 * SLO burn = error ratio over the window / (1 - objective), the objective
 * being the pool's slo_target tunable (gw_status_slo_target()).
 *
 * It reads worker state the way admin.c does (relaxed atomics, snapshot
 * references) and the watcher's history through gw_watcher_history().
 */
#ifndef INFERGW_STATUS_H
#define INFERGW_STATUS_H

#include <microhttpd.h>

#include "route/route.h"

#define GW_STATUS_PERIOD_MS  5000
#define GW_STATUS_SAMPLES    60    /* 5 minutes of history */
#define GW_STATUS_SLO_TARGET 0.999 /* the objective without a pool (slo_target's default) */

struct gw_admin;
struct gw_status;

/* The page's files, NUL-terminated (generated from status/ at build time). */
extern const char gw_status_index_html[];
extern const char gw_status_status_css[];
extern const char gw_status_status_js[];

/* Starts the sampler for admin endpoint <a>, which must outlive
 * gw_status_stop(). Returns NULL (after logging why) when out of memory or
 * the thread cannot start. */
struct gw_status *gw_status_start(struct gw_admin *a);
/* Stops the sampler and frees everything. NULL is a no-op. */
void gw_status_stop(struct gw_status *s);

/* Whether <url> is one of this module's: "/", "/index.html", "/status.css",
 * "/status.js", "/status.json". */
int gw_status_owns(const char *url);
/* Answers a GET or HEAD of <url> (one gw_status_owns() accepts); <s> may be
 * NULL (the sampler did not start: no history). Admin thread. */
enum MHD_Result gw_status_serve(struct gw_admin *a, struct gw_status *s,
                                struct MHD_Connection *conn, const char *url);

/* The availability objective of pool <p> (0..1): its slo_target tunable;
 * GW_STATUS_SLO_TARGET for NULL. */
double gw_status_slo_target(const struct gw_pool *p);

/* Latency quantile <q> (0..1) in seconds of histogram <counts>
 * (GW_METRICS_NBUCKETS + 1 per-bucket counts, the last +Inf), interpolated
 * linearly within the bucket it falls in; the last finite bound when it
 * falls in +Inf; 0 with no count. Pure. */
double gw_status_quantile(const uint64_t *counts, double q);

#endif
