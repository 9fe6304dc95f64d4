/* SPDX-License-Identifier: Apache-2.0 */
/* prefixstate — the process-wide state of prefix-cache routing
 * (docs/routing.md, "Prefix-cache routing"): the one estimation index every
 * worker shares (route/prefixidx.h, GW_PIDX_SHARED, capped by
 * --prefix-index-bytes, created on first use), the per-pool decision
 * counters and matched-blocks histogram, and the count of bad load reports.
 * Any thread: counters are relaxed atomics; the index locks itself; pool
 * slots are claimed under a mutex (at most GW_PFX_MAX_POOLS pools are
 * counted, later ones are not, and gw_pfx_pool returns NULL for them).
 * Rendered on scrape (infergw_prefix_*, infergw_load_reports_bad_total) and
 * by the admin's /debug/prefix.
 */
#ifndef INFERGW_PREFIXSTATE_H
#define INFERGW_PREFIXSTATE_H

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/grpcwire.h"

#define GW_PFX_MAX_POOLS 64
#define GW_PFX_NBUCKETS  9 /* matched blocks <= 0, 1, 4, 16, 64, 256, 1024, +Inf */

/* infergw_prefix_decisions_total{decision}: the three picks of
 * route/prefixscore.h, then why a call of a prefix pool was not hashed. */
enum gw_pfx_decision {
    GW_PFX_PREFIX = 0,
    GW_PFX_LOAD_OVERRIDE,
    GW_PFX_RING_FALLBACK,
    GW_PFX_NOT_REPLAYABLE, /* the first message is past the request log */
    GW_PFX_COMPRESSED,     /* compressed: its fields cannot be read */
    GW_PFX_NO_INPUT,       /* no prefix_input tensor, or no data in it */
    GW_PFX_MALFORMED,      /* bad protobuf or tensor type, or no message */
    GW_PFX_NDECISIONS
};

struct gw_pfx_pool {
    char name[GW_MODEL_NAME_MAX + 1];
    size_t name_len;
    _Atomic uint64_t decisions[GW_PFX_NDECISIONS];
    _Atomic uint64_t matched[GW_PFX_NBUCKETS]; /* per bucket (not cumulative) */
    _Atomic uint64_t matched_sum;
    _Atomic uint64_t precise_used;     /* decisions made on the precise view */
    _Atomic uint64_t precise_unusable; /* precise mode, view unusable: estimation */
};

/* The shared estimation index, created with <bytes> on the first call
 * (later calls return it whatever their <bytes>). NULL when it cannot be
 * created (logged once): callers then route by the ring. */
struct gw_pidx *gw_pfx_index(size_t bytes);
/* The index if created, else NULL (admin, metrics). */
struct gw_pidx *gw_pfx_index_peek(void);

/* The counters of pool <name> (<len> bytes), claimed on first use; NULL when
 * every slot is taken. */
struct gw_pfx_pool *gw_pfx_pool(const char *name, size_t len);
/* The pool's counters if it has a slot, else NULL (no claim). */
struct gw_pfx_pool *gw_pfx_pool_find(const char *name, size_t len);

/* Counts a decision of <p> (NULL: nothing); <matched> >= 0 also enters the
 * histogram (the three picks). */
void gw_pfx_count(struct gw_pfx_pool *p, enum gw_pfx_decision d, int matched);

/* A load report that could not be used (malformed or a bad value). */
void gw_pfx_load_bad(void);
uint64_t gw_pfx_load_bad_total(void);

/* "prefix", "load_override", ... (metric labels). */
const char *gw_pfx_decision_name(enum gw_pfx_decision d);

/* Writes the infergw_prefix_* series and infergw_load_reports_bad_total. */
void gw_pfx_render_metrics(FILE *out);

/* Frees the index (after the workers stopped). */
void gw_pfx_shutdown(void);

#endif
