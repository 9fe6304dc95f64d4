/* SPDX-License-Identifier: Apache-2.0 */
/* admin — the admin HTTP endpoint (--admin, loopback by default), served by
 * libmicrohttpd on a thread of its own:
 *
 *   /metrics         Prometheus text exposition of every worker's metrics,
 *                    merged on scrape (metrics.h)
 *   /healthz         200 "ok" while the process runs
 *   /readyz          200 "ready" when a routing snapshot is loaded and every
 *                    pool has an eligible replica (reachable, not draining,
 *                    not ejected, unhealthy or NOT_SERVING) on at least one
 *                    worker; else 503 and a one-line reason naming the first
 *                    pool that has none
 *   /debug/replicas  JSON: per replica its address, pools, reachable,
 *                    in-flight attempts, drain state, and its health record
 *                    (health.h): active state, ejection (until when, how
 *                    often), consecutive failures, down
 *   /debug/ring      JSON: a pool's ring (?pool=P[&key=K])
 *   /, /status.json  the live status page and the JSON it polls (status.h)
 *
 * GET and HEAD only: any other method is answered 405.
 *
 * The admin thread never touches worker-owned memory except through the
 * worker's struct gw_metrics: relaxed loads of its atomics, and references
 * to its published snapshot (gw_metrics_get_routes), so nothing is freed
 * under it. Replica health records are process-wide atomics that live until
 * exit. Start it after the workers and stop it before they are joined.
 */
#ifndef INFERGW_ADMIN_H
#define INFERGW_ADMIN_H

#include <stddef.h>

#include "base/config.h"
#include "obs/admin_t.h"
#include "obs/metrics.h"

/* Starts serving cfg->admin for <nworkers> started <workers> and <ctl> (NULL
 * without Redis); all must outlive gw_admin_stop(). With --admin off nothing
 * starts. When the address cannot be listened on, this is an error if --admin
 * was given, and only a logged warning for the default address (another
 * gateway on the machine may hold it: logged here as admin_not_started).
 * Returns 0, or -1 with the reason in <err> (not logged: the caller decides). */
int gw_admin_start(struct gw_admin *a, const struct gw_config *cfg, struct gw_worker *workers,
                   size_t nworkers, struct gw_watcher *ctl, char *err, size_t errlen);
/* Stops the thread (waits for requests in progress) and frees everything.
 * Safe on a gw_admin that never started. */
void gw_admin_stop(struct gw_admin *a);

/* Readiness over the workers' metrics <ms> and replica health <health>
 * (NULL = not considered): 1 when ready; else 0 with the reason in <why>.
 * Any thread. */
int gw_admin_ready(struct gw_metrics *const *ms, size_t n, struct gw_health_registry *health,
                   char *why, size_t whylen);

#endif
