/* SPDX-License-Identifier: Apache-2.0 */
/* prefixscore — the prefix-cache routing decision; see prefixscore.h. */
#include "route/prefixscore.h"

struct view {
    double cap_div;   /* C */
    double mean_load; /* of the reported loads; < 0 when fewer than two */
};

static double clamp01(double v)
{
    return v < 0 ? 0 : v > 1 ? 1 : v;
}

static void view_init(struct view *v, const struct gw_pscore_cand *c, size_t n,
                      const struct gw_pscore_params *p)
{
    uint32_t maxq = 0;
    double sum = 0;
    size_t reported = 0;

    for (size_t i = 0; i < n; i++) {
        if (c[i].inflight > maxq)
            maxq = c[i].inflight;
        if (c[i].load >= 0) {
            sum += clamp01(c[i].load);
            reported++;
        }
    }
    v->cap_div = p->cap != UINT64_MAX && p->cap > 0 ? (double)p->cap : 1.0 + maxq;
    v->mean_load = reported >= 2 ? sum / (double)reported : -1.0;
}

static double score(const struct gw_pscore_cand *c, const struct view *v,
                    const struct gw_pscore_params *p)
{
    double l = (double)c->inflight / v->cap_div;

    if (c->load >= 0 && clamp01(c->load) > l)
        l = clamp01(c->load);
    return (double)c->matched / (double)p->nblocks - p->load_weight * l;
}

static int over(const struct gw_pscore_cand *c, const struct view *v,
                const struct gw_pscore_params *p)
{
    if ((uint64_t)c->inflight + 1 > p->cap)
        return 1;
    if (p->imbalance > 0 && v->mean_load >= 0 && c->load >= 0) {
        double l = clamp01(c->load);
        return l > p->imbalance * v->mean_load && l - v->mean_load >= GW_PSCORE_IMBALANCE_MIN;
    }
    return 0;
}

/* Is a (matched ma, score sa, key ka) ahead of b by <by_match> first? */
static int ahead(const struct gw_pscore_cand *a, double sa, const struct gw_pscore_cand *b,
                 double sb, int by_match)
{
    if (by_match && a->matched != b->matched)
        return a->matched > b->matched;
    if (sa != sb)
        return sa > sb;
    if (!by_match && a->matched != b->matched)
        return a->matched > b->matched;
    return a->key < b->key;
}

static void result(struct gw_pscore_result *out, enum gw_pscore_kind k, int idx,
                   const struct gw_pscore_cand *c, double s)
{
    out->kind = k;
    out->index = idx;
    out->matched = c ? c->matched : 0;
    out->score = s;
}

int gw_pscore_pick(const struct gw_pscore_cand *cands, size_t ncand,
                   const struct gw_pscore_params *p, struct gw_pscore_result *out)
{
    struct view v;
    int best = -1, alt = -1;
    double sbest = 0, salt = 0;

    result(out, GW_PSCORE_RING_FALLBACK, -1, NULL, 0);
    if (!ncand || !p->nblocks)
        return -1;
    view_init(&v, cands, ncand, p);
    for (size_t i = 0; i < ncand; i++) {
        double s = score(&cands[i], &v, p);
        if (cands[i].matched && (best < 0 || ahead(&cands[i], s, &cands[best], sbest, 1))) {
            best = (int)i;
            sbest = s;
        }
        if (!over(&cands[i], &v, p) && (alt < 0 || ahead(&cands[i], s, &cands[alt], salt, 0))) {
            alt = (int)i;
            salt = s;
        }
    }
    if (best < 0)
        return -1;
    if (!over(&cands[best], &v, p) || alt < 0) {
        result(out, GW_PSCORE_PREFIX, best, &cands[best], sbest);
        return best;
    }
    /* alt != best: best is over, alt is not. */
    result(out, GW_PSCORE_LOAD_OVERRIDE, alt, &cands[alt], salt);
    return alt;
}

const char *gw_pscore_kind_name(enum gw_pscore_kind k)
{
    switch (k) {
    case GW_PSCORE_PREFIX:
        return "prefix";
    case GW_PSCORE_LOAD_OVERRIDE:
        return "load_override";
    case GW_PSCORE_RING_FALLBACK:
        return "ring_fallback";
    }
    return "unknown";
}
