/* SPDX-License-Identifier: Apache-2.0 */
/* poolstate — what a worker learns about each pool over time, kept across
 * routing snapshots: the latency estimator (time to first response, for
 * "auto" hedge delays and the deadline floor) and the retry and hedge
 * budgets (policy.h).
 *
 * Keyed by pool name, created on first use, freed when the worker exits
 * (bounded by the pools ever configured). Loop thread only.
 */
#ifndef INFERGW_POOLSTATE_H
#define INFERGW_POOLSTATE_H

#include <stddef.h>

#include "route/policy.h"

struct gw_poolstate {
    struct gw_poolstate *next;
    char *name;
    size_t name_len;
    struct gw_latency latency;
    struct gw_budget retry_budget;
    struct gw_budget hedge_budget;
};

/* The state of pool <name> (<len> bytes) in list <*head>, created if it
 * does not exist. Returns NULL when out of memory. */
struct gw_poolstate *gw_poolstate_get(struct gw_poolstate **head, const char *name, size_t len);
/* Frees every state in <*head>. */
void gw_poolstate_free_all(struct gw_poolstate **head);

#endif
