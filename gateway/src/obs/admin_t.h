/* SPDX-License-Identifier: Apache-2.0 */
/* admin_t — the admin endpoint's state (struct gw_admin).
 *
 * Apart from admin.h so that the status page (status.c), which reads the
 * sources the admin endpoint was started with, and the endpoint (admin.c),
 * which serves the page, do not depend on each other both ways.
 */
#ifndef INFERGW_ADMIN_T_H
#define INFERGW_ADMIN_T_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

struct gw_metrics;
struct gw_watcher;
struct gw_worker;
struct gw_health_registry;
struct MHD_Daemon;
struct gw_status;

struct gw_admin {
    struct MHD_Daemon *daemon; /* NULL = not serving */
    struct gw_metrics **ms;    /* each worker's metrics (borrowed) */
    size_t nworkers;
    struct gw_watcher *ctl;            /* NULL without --redis (borrowed) */
    struct gw_health_registry *health; /* replica health (borrowed) */
    uint64_t started_ms;               /* CLOCK_REALTIME at start */
    struct gw_status *_Atomic status;  /* the status page's sampler, or NULL */
};

#endif
