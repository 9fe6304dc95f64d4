/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_prompt — infergw-ctl route <pool> --prompt-file F: what prefix-cache
 * routing (docs/routing.md, "Prefix-cache routing") makes of a prompt.
 *
 * The prompt is F's bytes taken as the first element of the BYTES tensor
 * named by the pool's prefix_input (a ModelInferRequest is built around
 * them and hashed with route/prefix.h's gw_prefix_hash, so the hashes are
 * the gateway's by construction), with the pool's effective tunables
 * (defaults < <prefix>conf < <prefix>pool:<pool>:conf; a value a gateway
 * would refuse is reported and skipped). It prints the hashes, the ring
 * fallback replica (point (uint32_t)(h[0] >> 32), the first replica
 * clockwise that is not drained, as the gateways pick when no replica
 * matches), and:
 *  - prefix_mode precise: the pool's KV event stream read from its start
 *    with XRANGE (pages of CTL_KV_PAGE, at most CTL_KV_MAX_ENTRIES entries)
 *    into a route/kvindex as a gateway's reader builds it; when every
 *    active replica is fresh, the replica holding the longest prefix (ties:
 *    the lowest replica key; a gateway may still move the call for load),
 *    or the ring fallback when none holds block 0; otherwise the view is
 *    not usable and gateways use estimation;
 *  - prefix_mode estimate: the index is each gateway's own (what it sent
 *    where), so only the ring fallback is predictable: it is where every
 *    gateway sends a prefix it has not seen.
 * Health and load, which only the gateways see, are not taken into account.
 */
#include <errno.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/mem.h"
#include "ctl.h"
#include "ctlview.h"
#include "route/kvindex.h"
#include "route/prefix.h"
#include "route/prefixidx.h"
#include "route/ring.h"
#include "route/tunables.h"

#define CTL_KV_PAGE        1000
#define CTL_KV_MAX_ENTRIES 1000000
#define CTL_KV_BYTES       (256u << 20) /* the rebuilt view's memory cap */

/* Applies the field/value pairs of HGETALL reply <r> to <t>. */
static void apply_conf(struct gw_tunables *t, const redisReply *r, const char *key)
{
    for (size_t i = 0; r && r->type == REDIS_REPLY_ARRAY && i + 1 < r->elements; i += 2) {
        const char *f = r->element[i]->str, *v = r->element[i + 1]->str;
        char why[300];
        if (f && v && gw_tunables_field(f) >= 0 && gw_tunables_set(t, f, v, why, sizeof(why)) < 0)
            ctl_say(0,
                    "warning: %s field %s: %s (gateways keep their last good value; the "
                    "default is used here)",
                    key, f, why);
    }
}

static int load_tunables(struct ctl *x, struct gw_tunables *t)
{
    char global[KEYLEN], pool[KEYLEN];
    gw_key_conf(global, sizeof(global), x->a->prefix);
    gw_key_pool_conf(pool, sizeof(pool), x->a->prefix, x->a->pool);
    gw_tunables_defaults(t);
    redisReply *g = ctl_command(x, "HGETALL %s", global);
    if (!g)
        return CTL_EXIT_REDIS;
    redisReply *p = ctl_command(x, "HGETALL %s", pool);
    if (!p) {
        freeReplyObject(g);
        return CTL_EXIT_REDIS;
    }
    apply_conf(t, g, global);
    apply_conf(t, p, pool);
    freeReplyObject(g);
    freeReplyObject(p);
    return CTL_EXIT_OK;
}

/* Reads at most <max> bytes of the prompt into <buf>; *total = the file's
 * whole length. Returns 0, or -1 (reported). */
static int read_prompt(const char *path, uint8_t *buf, size_t max, size_t *len, size_t *total)
{
    FILE *f = strcmp(path, "-") ? fopen(path, "rb") : stdin;
    if (!f)
        return ctl_say(-1, "cannot read --prompt-file %s: %s", path, strerror(errno));
    *len = fread(buf, 1, max, f);
    *total = *len;
    char skip[4096];
    size_t k;
    while ((k = fread(skip, 1, sizeof(skip), f)) > 0)
        *total += k;
    int bad = ferror(f);
    if (f != stdin)
        fclose(f);
    if (bad)
        return ctl_say(-1, "cannot read --prompt-file %s: read error", path);
    return 0;
}

static size_t put_varint(uint8_t *p, uint64_t v)
{
    size_t n = 0;
    do {
        p[n++] = (uint8_t)((v & 0x7f) | (v > 0x7f ? 0x80 : 0));
        v >>= 7;
    } while (v);
    return n;
}

static size_t put_len(uint8_t *p, unsigned field, const void *data, size_t len)
{
    size_t n = put_varint(p, ((uint64_t)field << 3) | 2);
    n += put_varint(p + n, len);
    if (len)
        memcpy(p + n, data, len);
    return n + len;
}

/* A ModelInferRequest with one input: <name>, BYTES, shape [1], contents
 * bytes_contents = text (KServe v2: inputs 5; tensor name 1, datatype 2,
 * shape 3, contents 5; bytes_contents 8). Returns its length; <out> has
 * room for len + 256 + 3 * strlen(name). */
static size_t build_request(uint8_t *out, const char *name, const uint8_t *text, size_t len)
{
    size_t nl = strlen(name), cap = len + 64 + nl;
    uint8_t *contents = gw_malloc(cap), *tensor = gw_malloc(cap + 64);
    if (!contents || !tensor) {
        gw_free(contents);
        gw_free(tensor);
        return 0;
    }
    size_t c = put_len(contents, 8, text, len);
    size_t t = put_len(tensor, 1, name, nl);
    t += put_len(tensor + t, 2, "BYTES", 5);
    static const uint8_t one = 1;
    t += put_len(tensor + t, 3, &one, 1);
    t += put_len(tensor + t, 5, contents, c);
    size_t m = put_len(out, 5, tensor, t);
    gw_free(contents);
    gw_free(tensor);
    return m;
}

struct kv_view {
    struct gw_kvidx *idx;
    size_t entries, rejected;
    int truncated;
};

/* The id right after <id> ("ms-seq" -> "ms-(seq+1)"), for XRANGE paging. */
static void next_id(const char *id, char *out, size_t cap)
{
    unsigned long long ms = 0, seq = 0;
    if (sscanf(id, "%llu-%llu", &ms, &seq) != 2)
        ms = seq = 0;
    snprintf(out, cap, "%llu-%llu", ms, seq + 1);
}

static int read_stream(struct ctl *x, struct kv_view *kv)
{
    char key[KEYLEN], start[64] = "-";
    gw_key_pool_kv(key, sizeof(key), x->a->prefix, x->a->pool);
    kv->idx = gw_kvidx_create(CTL_KV_BYTES, 4096);
    if (!kv->idx)
        return ctl_say(CTL_EXIT_REDIS, "out of memory");
    for (;;) {
        redisReply *r = ctl_command(x, "XRANGE %s %s + COUNT %d", key, start, CTL_KV_PAGE);
        if (!r)
            return CTL_EXIT_REDIS;
        size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0;
        for (size_t i = 0; i < n; i++) {
            const redisReply *e = r->element[i];
            if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 || !e->element[0]->str)
                continue;
            next_id(e->element[0]->str, start, sizeof(start));
            const redisReply *fv = e->element[1];
            struct gw_kv_field f[16];
            size_t nf = 0;
            for (size_t k = 0; fv->type == REDIS_REPLY_ARRAY && k + 1 < fv->elements && nf < 16;
                 k += 2)
                f[nf++] = (struct gw_kv_field){fv->element[k]->str, fv->element[k]->len,
                                               fv->element[k + 1]->str, fv->element[k + 1]->len};
            struct gw_kv_event ev;
            char why[256];
            kv->entries++;
            if (gw_kv_event_parse(f, nf, &ev, why, sizeof(why)) < 0)
                kv->rejected++;
            else
                gw_kvidx_apply(kv->idx, &ev, NULL, 0);
        }
        freeReplyObject(r);
        if (n < CTL_KV_PAGE)
            return CTL_EXIT_OK;
        if (kv->entries >= CTL_KV_MAX_ENTRIES) {
            kv->truncated = 1;
            return CTL_EXIT_OK;
        }
    }
}

static const char *route_by_name(uint32_t r)
{
    return r == GW_ROUTE_BY_PREFIX         ? "prefix"
           : r == GW_ROUTE_BY_LEAST_LOADED ? "least_loaded"
                                           : "ring";
}

struct prediction {
    uint32_t point;
    int fallback, second; /* ring fallback replica and the next; -1 none */
    int pick;             /* the predicted replica; -1 none */
    const char *reason;
    uint32_t depth;
};

/* Fills <pr> for the precise view <kv> of ring <r> (drained replicas skipped). */
static void predict_precise(const struct gw_ring *r, const int *drain, struct kv_view *kv,
                            const uint64_t *hashes, size_t n, uint32_t *depths, int *usable,
                            struct prediction *pr)
{
    uint64_t *keys = gw_calloc(r->nreplicas + 1, sizeof(*keys));
    size_t *which = gw_calloc(r->nreplicas + 1, sizeof(*which));
    uint32_t *d = gw_calloc(r->nreplicas + 1, sizeof(*d));
    size_t nc = 0;
    *usable = 0;
    if (!keys || !which || !d)
        goto out;
    for (size_t i = 0; i < r->nreplicas; i++) {
        if (drain && drain[i])
            continue;
        keys[nc] = gw_pidx_replica_key(r->replicas[i], strlen(r->replicas[i]));
        which[nc++] = i;
    }
    *usable = nc > 0 && gw_kvidx_usable(kv->idx, keys, nc);
    uint32_t best = gw_kvidx_longest_match(kv->idx, hashes, n, keys, nc, d);
    for (size_t j = 0; j < nc; j++)
        depths[which[j]] = d[j];
    if (!*usable) {
        pr->reason = "view_not_usable";
        pr->pick = -1;
    } else if (best == 0) {
        pr->reason = "ring_fallback";
        pr->pick = pr->fallback;
    } else {
        size_t bj = nc;
        for (size_t j = 0; j < nc; j++)
            if (d[j] == best && (bj == nc || keys[j] < keys[bj]))
                bj = j;
        pr->reason = "prefix";
        pr->pick = (int)which[bj];
        pr->depth = best;
    }
out:
    gw_free(keys);
    gw_free(which);
    gw_free(d);
}

static void print_text(struct ctl *x, const struct gw_tunables *t, const struct gw_ring *r,
                       const int *drain, size_t bytes, const uint64_t *h, size_t n,
                       const struct prediction *pr, const struct kv_view *kv,
                       const uint32_t *depths, int usable)
{
    printf("pool %s: route_by %s, prefix_mode %s (prefix_input %s, block %u, max_blocks %u)\n",
           x->a->pool, route_by_name(t->route_by),
           t->prefix_mode == GW_PREFIX_MODE_PRECISE ? "precise" : "estimate", t->prefix_input,
           t->prefix_block, t->prefix_max_blocks);
    printf("prompt: %zu bytes, %zu blocks hashed", bytes, n);
    if (n)
        printf(" (first %016" PRIx64 ", last %016" PRIx64 ")", h[0], h[n - 1]);
    printf("\n");
    if (n)
        printf("ring fallback: point %u -> %s (then %s)\n", pr->point,
               pr->fallback >= 0 ? r->replicas[pr->fallback] : "none",
               pr->second >= 0 ? r->replicas[pr->second] : "none");
    if (kv->idx) {
        printf("precise view: %zu stream entries read%s, %zu rejected; %s\n", kv->entries,
               kv->truncated ? " (truncated)" : "", kv->rejected,
               usable ? "usable" : "not usable: gateways use estimation");
        for (size_t i = 0; i < r->nreplicas; i++) {
            struct gw_kv_replica_info ri;
            gw_kvidx_replica(kv->idx, gw_pidx_replica_key(r->replicas[i], strlen(r->replicas[i])),
                             &ri);
            printf("  %-24s %s%s%s, %zu hashes held, holds %u leading blocks\n", r->replicas[i],
                   drain && drain[i] ? "drained, " : "",
                   !ri.known  ? "never heard of"
                   : ri.stale ? "stale: "
                              : "fresh",
                   ri.known && ri.stale ? ri.why : "", ri.held, depths[i]);
        }
    }
    if (!strcmp(pr->reason, "prefix"))
        printf("prediction: %s (prefix: holds %u of %zu blocks, the longest match; a gateway may "
               "move the call for load)\n",
               r->replicas[pr->pick], pr->depth, n);
    else if (!strcmp(pr->reason, "ring_fallback"))
        printf("prediction: %s (ring fallback: no replica holds the first block)\n",
               pr->fallback >= 0 ? r->replicas[pr->fallback] : "none");
    else if (!strcmp(pr->reason, "view_not_usable"))
        printf("prediction: none (the precise view is not usable; each gateway uses its own "
               "estimation index, and a prefix it has not seen goes to the ring fallback)\n");
    else if (!strcmp(pr->reason, "estimation"))
        printf("prediction: per gateway (estimation: each gateway's own index of what it sent "
               "where); a prefix a gateway has not seen goes to the ring fallback %s\n",
               pr->fallback >= 0 ? r->replicas[pr->fallback] : "none");
    else if (!strcmp(pr->reason, "not_hashed"))
        printf("prediction: none (shorter than one block: not hashed; routed by the ring on the "
               "route key, or spread without one)\n");
    else
        printf("prediction: none (the pool routes by %s, not by prefix: the prompt does not "
               "decide; see infergw-ctl route %s <key>)\n",
               route_by_name(t->route_by), x->a->pool);
}

static void print_json(struct ctl *x, const struct gw_tunables *t, const struct gw_ring *r,
                       const int *drain, size_t bytes, const uint64_t *h, size_t n,
                       const struct prediction *pr, const struct kv_view *kv,
                       const uint32_t *depths, int usable)
{
    json_t *hs = json_array();
    for (size_t i = 0; i < n; i++) {
        char hex[17];
        snprintf(hex, sizeof(hex), "%016" PRIx64, h[i]);
        json_array_append_new(hs, json_string(hex));
    }
    json_t *o = json_pack("{s:s, s:s, s:s, s:s, s:i, s:i, s:I, s:i, s:o, s:s, s:s?}", "pool",
                          x->a->pool, "route_by", route_by_name(t->route_by), "prefix_mode",
                          t->prefix_mode == GW_PREFIX_MODE_PRECISE ? "precise" : "estimate",
                          "prefix_input", t->prefix_input, "prefix_block", (int)t->prefix_block,
                          "prefix_max_blocks", (int)t->prefix_max_blocks, "prompt_bytes",
                          (json_int_t)bytes, "blocks", (int)n, "hashes", hs, "reason", pr->reason,
                          "prediction", pr->pick >= 0 ? r->replicas[pr->pick] : NULL);
    if (n)
        json_object_set_new(o, "ring_fallback",
                            json_pack("{s:I, s:s?, s:s?}", "point", (json_int_t)pr->point,
                                      "replica",
                                      pr->fallback >= 0 ? r->replicas[pr->fallback] : NULL,
                                      "second", pr->second >= 0 ? r->replicas[pr->second] : NULL));
    if (!strcmp(pr->reason, "prefix"))
        json_object_set_new(o, "matched_blocks", json_integer(pr->depth));
    if (kv->idx) {
        json_t *reps = json_array();
        for (size_t i = 0; i < r->nreplicas; i++) {
            struct gw_kv_replica_info ri;
            gw_kvidx_replica(kv->idx, gw_pidx_replica_key(r->replicas[i], strlen(r->replicas[i])),
                             &ri);
            json_array_append_new(
                reps, json_pack("{s:s, s:b, s:b, s:b, s:s, s:I, s:i}", "addr", r->replicas[i],
                                "drain", drain && drain[i], "known", ri.known, "stale",
                                !ri.known || ri.stale, "why", ri.known ? ri.why : "never heard of",
                                "held", (json_int_t)ri.held, "depth", (int)depths[i]));
        }
        json_object_set_new(o, "view",
                            json_pack("{s:I, s:I, s:b, s:b, s:o}", "entries",
                                      (json_int_t)kv->entries, "rejected", (json_int_t)kv->rejected,
                                      "truncated", kv->truncated, "usable", usable, "replicas",
                                      reps));
    }
    char *s = json_dumps(o, JSON_INDENT(2));
    if (s)
        printf("%s\n", s);
    free(s);
    json_decref(o);
}

int ctl_route_prompt(struct ctl *x, const struct gw_ring *r, const int *drain)
{
    struct gw_tunables t;
    int rc = load_tunables(x, &t);
    if (rc != CTL_EXIT_OK)
        return rc;
    size_t want = (size_t)t.prefix_block * t.prefix_max_blocks, len = 0, total = 0, n = 0;
    size_t cap = want + 256 + 3 * strlen(t.prefix_input);
    uint8_t *text = gw_malloc(want + 1), *msg = gw_malloc(cap);
    uint64_t *hashes = gw_calloc(t.prefix_max_blocks + 1, sizeof(*hashes));
    uint32_t *depths = gw_calloc(r->nreplicas + 1, sizeof(*depths));
    struct kv_view kv = {0};
    struct prediction pr = {.fallback = -1, .second = -1, .pick = -1, .reason = "not_hashed"};
    int usable = 0;
    if (!text || !msg || !hashes || !depths) {
        rc = ctl_say(CTL_EXIT_REDIS, "out of memory");
        goto out;
    }
    if (read_prompt(x->a->prompt_file, text, want, &len, &total) < 0) {
        rc = CTL_EXIT_USAGE;
        goto out;
    }
    size_t mlen = build_request(msg, t.prefix_input, text, len);
    struct gw_prefix_params pp = {t.prefix_input, t.prefix_block, t.prefix_max_blocks};
    const char *why = NULL;
    if (mlen == 0 || gw_prefix_hash(msg, mlen, &pp, hashes, &n, &why) != GW_PREFIX_OK) {
        rc = ctl_say(CTL_EXIT_REDIS, "cannot hash the prompt: %s", why ? why : "out of memory");
        goto out;
    }
    if (n) {
        pr.point = (uint32_t)(hashes[0] >> 32);
        ctl_view_route_point(r, drain, pr.point, &pr.fallback, &pr.second);
    }
    if (t.route_by != GW_ROUTE_BY_PREFIX) {
        pr.reason = "not_prefix";
    } else if (t.prefix_mode == GW_PREFIX_MODE_PRECISE) {
        if ((rc = read_stream(x, &kv)) != CTL_EXIT_OK)
            goto out;
        if (n)
            predict_precise(r, drain, &kv, hashes, n, depths, &usable, &pr);
    } else if (n) {
        pr.reason = "estimation";
    }
    if (x->a->json)
        print_json(x, &t, r, drain, total, hashes, n, &pr, &kv, depths, usable);
    else
        print_text(x, &t, r, drain, total, hashes, n, &pr, &kv, depths, usable);
    if (n && pr.fallback < 0)
        rc = ctl_say(CTL_EXIT_NOTFOUND, "pool %s has %s", x->a->pool,
                     r->nreplicas ? "no active replica (all drained)" : "no replicas");
out:
    if (kv.idx)
        gw_kvidx_free(kv.idx);
    gw_free(text);
    gw_free(msg);
    gw_free(hashes);
    gw_free(depths);
    return rc;
}
