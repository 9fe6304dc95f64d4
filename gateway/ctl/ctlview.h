/* SPDX-License-Identifier: Apache-2.0 */
/* ctlview — what infergw-ctl computes from Redis replies without talking to
 * Redis: ring members and their tokens, a pool's replicas read back from
 * its ring ZSET (with the gateway's validation), the effective tunables and
 * their sources, the route of a key, and the text and JSON output of the
 * read commands.
 *
 * Pure logic over plain arrays, so every rule is unit-tested; the ctl_*.c
 * files only move replies in and out. The ring is always a gw_ring built by
 * gw_ring_build() from the replicas and vnode counts found in the ZSET,
 * exactly as the gateway builds it, so infergw-ctl and the gateways cannot
 * disagree about where a key goes.
 */
#ifndef INFERGW_CTL_VIEW_H
#define INFERGW_CTL_VIEW_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <jansson.h>

#include "route/ring.h"
#include "route/tunables.h"

#define CTL_MAX_PROBLEMS 20

/* Problems found in what Redis holds (values the gateways refuse). Keeps
 * the first CTL_MAX_PROBLEMS messages; <total> counts them all. */
struct ctl_problems {
    char msg[CTL_MAX_PROBLEMS][320];
    size_t n, total;
};

void ctl_problems_add(struct ctl_problems *p, const char *fmt, ...)
    __attribute__((format(printf, 2, 3)));
/* Writes each problem as "infergw-ctl: warning: ..." to <out>. */
void ctl_problems_print(const struct ctl_problems *p, FILE *out);

/* Writes ring member "<addr>#<i>" into <buf>. Returns its length, or -1
 * when it does not fit. Its token is gw_hash32() of those bytes. */
int ctl_view_member(char *buf, size_t cap, const char *addr, uint32_t i);

/* A pool's replicas read back from its ring ZSET. */
struct ctl_ring_view {
    char **addrs;      /* sorted; owned */
    uint32_t *weights; /* vnode count of each */
    size_t n;
};

/* Groups ZSET <members> and their <scores> (as Redis returns them, decimal
 * strings) by replica address, applying the gateway's rules: a member is
 * "<host:port>#<i>" with i in 0..9999, the score is the member's token, and
 * a replica's vnodes are exactly #0..#w-1. A member that breaks a rule is
 * left out and reported in <probs> (the gateways then refuse the whole ring
 * and keep their last good one, which this tool cannot see). Returns 0, or
 * -ENOMEM (<v> untouched). Free with ctl_view_ring_free(). */
int ctl_view_ring_parse(struct ctl_ring_view *v, const char *const *members,
                        const char *const *scores, size_t n, struct ctl_problems *probs);
void ctl_view_ring_free(struct ctl_ring_view *v);

/* A replica's state from HASH replica:<addr> field state (NULL = unset =
 * active). Returns 1 for drain, 0 for active; any other value is reported
 * in <probs> and counted as active. */
int ctl_view_state(const char *addr, const char *state, struct ctl_problems *probs);

/* The route of <key>: its point gw_key_hash32(key), the first replica clockwise
 * that is not drained, and the next distinct one (the second choice).
 * <drain> has one flag per ring replica (NULL = none drained). *first and
 * *second are -1 when there is none. */
void ctl_view_route(const struct gw_ring *r, const int *drain, const char *key, size_t keylen,
                    uint32_t *point, int *first, int *second);
/* The same from ring point <point> (a prompt's ring fallback point). */
void ctl_view_route_point(const struct gw_ring *r, const int *drain, uint32_t point, int *first,
                          int *second);

enum ctl_conf_source { CTL_SRC_DEFAULT = 0, CTL_SRC_GLOBAL, CTL_SRC_POOL };

struct ctl_conf_value {
    char value[600];
    enum ctl_conf_source source;
};

/* Effective tunables from the field/value pairs of the global hash
 * (<gpairs>, 2*<ng> strings) and the pool's hash (<ppairs>, NULL when no
 * pool), as the gateway computes them: defaults, overlaid by valid global
 * values, overlaid by valid pool values. Invalid values and unknown fields
 * are reported in <probs> naming <gkey>/<pkey> (the gateways ignore them
 * and keep their last good value). */
void ctl_view_conf(struct ctl_conf_value out[GW_TUN_COUNT], const char *gkey,
                   const char *const *gpairs, size_t ng, const char *pkey,
                   const char *const *ppairs, size_t np, struct ctl_problems *probs);

const char *ctl_view_source_name(enum ctl_conf_source s);

/* A tenant record read back from HASH <prefix>tenant:<name> (strings
 * borrowed; NULL = field absent) and how many API-key records name it. */
struct ctl_tenant_row {
    const char *name, *models, *rps, *burst;
    size_t nkeys;
};

/* Checks <t> with the gateway's rules (authdb.h); each field the gateways
 * would refuse is reported in <probs> naming <key>. Returns 1 when the
 * gateways load it, 0 when they do not. */
int ctl_view_tenant_check(const struct ctl_tenant_row *t, const char *key,
                          struct ctl_problems *probs);

/* An API-key record read back from HASH <prefix>apikey:<hash>. */
struct ctl_key_row {
    const char *hash;       /* 64 hex digits (the key name's suffix) */
    const char *tenant;     /* NULL = field absent */
    const char *expires_at; /* NULL = never */
};

/* Sorts <rows> by tenant, then hash (for stable output). */
void ctl_view_sort_keys(struct ctl_key_row *rows, size_t n);

/* --- output (text for people, JSON with --json) ---------------------------- */

/* Writes <doc> compact on one line, ASCII only, and drops the reference
 * (takes ownership; NULL, from a failed json_pack, writes nothing). */
void ctl_view_print_json(FILE *out, json_t *doc);

/* replica list: address, weight, state per replica of <r>. */
void ctl_view_print_replicas(FILE *out, int json, const char *pool, const struct gw_ring *r,
                             const int *drain);
/* ring show: replicas, vnodes, share of the hash space, state. */
void ctl_view_print_ring(FILE *out, int json, const char *pool, const struct gw_ring *r,
                         const int *drain);
/* route: first (-1: none) and second choice. */
void ctl_view_print_route(FILE *out, int json, const char *pool, const char *key, uint32_t point,
                          const struct gw_ring *r, int first, int second);
/* conf get: one field (<field> >= 0) or all (-1). JSON: an object
 * {field, value, source, pool} for one field, an array of them for all. */
void ctl_view_print_conf(FILE *out, int json, const char *pool,
                         const struct ctl_conf_value vals[GW_TUN_COUNT], int field);
/* tenant show: name, models, rps, burst (0 / absent shown as "unlimited"
 * and "default") and number of keys, one per row. JSON: an array of
 * {tenant, models, rps, burst, keys} (rps a number, burst an integer, as
 * stored; null when absent). */
void ctl_view_print_tenants(FILE *out, int json, const struct ctl_tenant_row *rows, size_t n);
/* key list: the first CTL_HASH_PREFIX hex digits of each hash, tenant and
 * expiry (UTC, "(expired)" when before <now>, unix seconds). Never a key.
 * JSON: an array of {hash_prefix, tenant, expires_at (number|null),
 * expired}. */
void ctl_view_print_keys(FILE *out, int json, const struct ctl_key_row *rows, size_t n,
                         int64_t now);

/* status: the gateways' reports (<prefix>gateway:<id>), collected as
 * (gateway, replica, value) cells; pure, so the table and the summary are
 * unit-tested. */
struct ctl_status_cell {
    char *gw, *replica, *value; /* replica NULL: the gateway alone */
};
struct ctl_status {
    struct ctl_status_cell *cells;
    size_t n, cap;
};
int ctl_status_init(struct ctl_status *st);
/* Adds a cell (copies). A field starting with '@' is the gateway's
 * metadata (@version: its snapshot's version). Returns 0 or -1 (OOM). */
int ctl_status_add(struct ctl_status *st, const char *gw, const char *replica, const char *value);
void ctl_status_free(struct ctl_status *st);
/* A reported value that means "takes calls and checks say so or are off":
 * exactly "healthy" or "unknown", with no ejected/down/drain/lease_gone. */
int ctl_status_healthy(const char *value);
/* Counts gateways, replicas, and replicas every gateway reports healthy
 * (a gateway that does not list a replica does not see it healthy). */
void ctl_status_summary(const struct ctl_status *st, size_t *ngw, size_t *nrep, size_t *healthy);
/* A replica's availability as a gateway reports it, in the field
 * "@avail:<replica>": "failures=N recoveries=N mtbf_s=X mttr_s=X
 * availability=X" (docs/slo.md). */
struct ctl_avail {
    unsigned failures, recoveries;
    double mtbf_s, mttr_s, availability;
};
/* Parses <value> into <out>. Returns 0, or -1 when a word is missing or
 * malformed (<out> then unspecified). */
int ctl_status_avail_parse(const char *value, struct ctl_avail *out);
/* Table replica x gateway (sorted), "-" where a gateway does not list the
 * replica; when gateways report availability, a blank line and a table
 * REPLICA GATEWAY FAILURES MTBF MTTR AVAILABILITY (one row per replica and
 * gateway that reports it); then "gateways reporting: G; replicas healthy:
 * H/T". JSON: {"gateways": [...], "replicas": {addr: {gw: value}},
 * "availability": {addr: {gw: {failures, recoveries, mtbf_s, mttr_s,
 * availability}}}, "versions": {gw: N}, "healthy": H, "total": T}. */
void ctl_status_print(const struct ctl_status *st, FILE *out, int json);

#endif
