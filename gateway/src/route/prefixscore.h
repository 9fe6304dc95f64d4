/* SPDX-License-Identifier: Apache-2.0 */
/* prefixscore — the prefix-cache routing decision (docs/routing.md,
 * "Prefix-cache routing"): given the eligible candidates, how deep each one
 * matched the prompt's chain (route/prefixidx.h or route/kvindex.h), their
 * load and the pool's tunables, which replica gets the call and why. Pure: no
 * I/O, no allocation, no state; any thread. Called by engine/call_prefix.c
 * for the primary attempt of a route_by = prefix call.
 *
 * For candidate i, with n = the prompt's blocks (hashes):
 *  - q_i = inflight_i / C, C = the bounded-load cap when there is one, else
 *    1 + the largest inflight among the candidates; l_i = max(q_i, load_i)
 *    when a load is reported (load_i clamped to 0..1), else q_i;
 *  - score_i = matched_i / n - prefix_load_weight x l_i;
 *  - over cap: inflight_i + 1 > cap (the bounded-load cap, see
 *    gw_ring_load_cap_floor in route/ring.h);
 *  - over imbalance (prefix_imbalance > 0, at least two candidates report a
 *    load): load_i > prefix_imbalance x the mean reported load and exceeds
 *    it by at least GW_PSCORE_IMBALANCE_MIN, so that near-idle replicas are
 *    not read as imbalanced. In-flight counts are bounded by the cap only.
 * Decision:
 *  - n = 0 or no candidate matched a block: GW_PSCORE_RING_FALLBACK (the
 *    caller picks on the ring at hashes[0]'s point, so every gateway sends a
 *    new prefix to the same replica);
 *  - else the longest match (ties: higher score, then lower key) when it is
 *    neither over the cap nor over imbalance: GW_PSCORE_PREFIX;
 *  - else the best score among the candidates that are neither (ties: more
 *    matched, then lower key): GW_PSCORE_LOAD_OVERRIDE; when every candidate
 *    is over, the longest match after all (GW_PSCORE_PREFIX: balance never
 *    refuses a call).
 */
#ifndef INFERGW_PREFIXSCORE_H
#define INFERGW_PREFIXSCORE_H

#include <stddef.h>
#include <stdint.h>

#define GW_PSCORE_IMBALANCE_MIN 0.05

enum gw_pscore_kind {
    GW_PSCORE_PREFIX = 0,    /* the longest match */
    GW_PSCORE_LOAD_OVERRIDE, /* the longest match was over the cap or imbalanced */
    GW_PSCORE_RING_FALLBACK, /* no match: the ring on hashes[0] decides */
};

struct gw_pscore_cand {
    uint64_t key;      /* the replica's key (gw_pidx_replica_key) */
    uint32_t inflight; /* calls in flight on it, before this one */
    uint32_t matched;  /* leading blocks matched (0..n) */
    double load;       /* reported load 0..1 (decaying average), or < 0: none */
};

struct gw_pscore_params {
    uint32_t nblocks;   /* n: the prompt's block hashes */
    uint64_t cap;       /* most calls in flight, the new one included; UINT64_MAX = none */
    double load_weight; /* prefix_load_weight, 0..100 */
    double imbalance;   /* prefix_imbalance, 0 = off */
};

struct gw_pscore_result {
    enum gw_pscore_kind kind;
    int index;        /* the chosen candidate, or -1 (ring fallback, no candidates) */
    uint32_t matched; /* its matched blocks */
    double score;     /* its score */
};

/* Decides among cands[0..ncand). Returns the chosen index, or -1 with kind
 * GW_PSCORE_RING_FALLBACK (no candidate, n = 0, or nothing matched). */
int gw_pscore_pick(const struct gw_pscore_cand *cands, size_t ncand,
                   const struct gw_pscore_params *p, struct gw_pscore_result *out);

/* "prefix", "load_override", "ring_fallback" (metric labels). */
const char *gw_pscore_kind_name(enum gw_pscore_kind k);

#endif
