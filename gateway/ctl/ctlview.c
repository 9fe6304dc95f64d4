/* SPDX-License-Identifier: Apache-2.0 */
/* ctlview — infergw-ctl's pure computations and output; see ctlview.h.
 *
 * The ring parser mirrors the gateway's loader rule for rule (member
 * syntax, token check, vnodes #0..#w-1) so that what `ring show` and
 * `route` compute is what the gateways compute; where the gateways would
 * refuse the ring, the problem is reported rather than hidden. JSON goes
 * through jansson, never hand-built strings.
 */
#include "ctlview.h"

#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/authdb.h"
#include "base/config.h"
#include "ctlargs.h"
#include "base/mem.h"
#include "base/hostport.h"

void ctl_problems_add(struct ctl_problems *p, const char *fmt, ...)
{
    va_list ap;

    if (!p)
        return;
    p->total++;
    if (p->n == CTL_MAX_PROBLEMS)
        return;
    va_start(ap, fmt);
    vsnprintf(p->msg[p->n++], sizeof(p->msg[0]), fmt, ap);
    va_end(ap);
}

void ctl_problems_print(const struct ctl_problems *p, FILE *out)
{
    for (size_t i = 0; i < p->n; i++)
        fprintf(out, "infergw-ctl: warning: %s\n", p->msg[i]);
    if (p->total > p->n)
        fprintf(out, "infergw-ctl: warning: ... and %zu more\n", p->total - p->n);
}

int ctl_view_member(char *buf, size_t cap, const char *addr, uint32_t i)
{
    int n = snprintf(buf, cap, "%s#%u", addr, i);

    return n < 0 || (size_t)n >= cap ? -1 : n;
}

/* --- ring --------------------------------------------------------------------- */

struct member {
    const char *addr; /* into <bufs> */
    size_t alen;
    uint32_t vnode;
};

static int cmp_member(const void *a, const void *b)
{
    const struct member *x = a, *y = b;
    size_t n = x->alen < y->alen ? x->alen : y->alen;
    int c = memcmp(x->addr, y->addr, n);

    if (c)
        return c;
    if (x->alen != y->alen)
        return x->alen < y->alen ? -1 : 1;
    return x->vnode < y->vnode ? -1 : x->vnode > y->vnode;
}

/* Parses one member; returns 0 and fills <m>, or -1 with <probs> told. */
static int parse_member(const char *member, const char *score, struct member *m,
                        struct ctl_problems *probs)
{
    const char *hash = strrchr(member, '#');
    char addr[300], host[256], *end;
    unsigned long vnode;
    unsigned long long tok;
    uint16_t port;
    size_t alen;

    /* No sign, no leading zero: "#01" would name vnode 1 with another token. */
    if (!hash || hash == member || hash[1] < '0' || hash[1] > '9' || (hash[1] == '0' && hash[2])) {
        ctl_problems_add(probs, "ring member '%s' is not <host:port>#<vnode>", member);
        return -1;
    }
    errno = 0;
    vnode = strtoul(hash + 1, &end, 10);
    if (*end || errno || vnode >= GW_RING_MAX_VNODES) {
        ctl_problems_add(probs, "ring member '%s': vnode is not 0..%d", member,
                         GW_RING_MAX_VNODES - 1);
        return -1;
    }
    alen = (size_t)(hash - member);
    if (alen >= sizeof(addr)) {
        ctl_problems_add(probs, "ring member '%.40s...': address too long", member);
        return -1;
    }
    memcpy(addr, member, alen);
    addr[alen] = '\0';
    if (gw_hostport_split(addr, host, sizeof(host), &port) < 0) {
        ctl_problems_add(probs, "ring member '%s': '%s' is not host:port", member, addr);
        return -1;
    }
    errno = 0;
    tok = strtoull(score, &end, 10);
    if (*end || errno || score[0] < '0' || score[0] > '9' || tok > UINT32_MAX ||
        tok != gw_hash32(member, strlen(member))) {
        ctl_problems_add(probs,
                         "ring member '%s': score %s is not its token %u (first 4 bytes of "
                         "SHA-256, big-endian)",
                         member, score, gw_hash32(member, strlen(member)));
        return -1;
    }
    m->addr = member;
    m->alen = alen;
    m->vnode = (uint32_t)vnode;
    return 0;
}

int ctl_view_ring_parse(struct ctl_ring_view *v, const char *const *members,
                        const char *const *scores, size_t n, struct ctl_problems *probs)
{
    struct ctl_ring_view r = {0};
    struct member *ms = NULL;
    size_t nm = 0;
    int rc = -ENOMEM;

    ms = gw_malloc((n ? n : 1) * sizeof(*ms));
    r.addrs = gw_calloc(n ? n : 1, sizeof(*r.addrs));
    r.weights = gw_calloc(n ? n : 1, sizeof(*r.weights));
    if (!ms || !r.addrs || !r.weights)
        goto out;
    for (size_t i = 0; i < n; i++)
        if (members[i] && scores[i] && parse_member(members[i], scores[i], &ms[nm], probs) == 0)
            nm++;
    if (nm)
        qsort(ms, nm, sizeof(*ms), cmp_member);
    for (size_t i = 0; i < nm;) {
        size_t j = i;

        while (j < nm && ms[j].alen == ms[i].alen && !memcmp(ms[j].addr, ms[i].addr, ms[i].alen))
            j++;
        /* ms[i..j) is one replica, sorted by vnode: #0..#w-1 means the last
         * index is count-1 (indexes are distinct: ZSET members are). */
        if (ms[j - 1].vnode != j - i - 1)
            ctl_problems_add(probs,
                             "replica %.*s has %zu vnodes but not #0..#%zu (gateways refuse "
                             "this ring and keep their last good one)",
                             (int)ms[i].alen, ms[i].addr, j - i, j - i - 1);
        r.addrs[r.n] = gw_strndup(ms[i].addr, ms[i].alen);
        if (!r.addrs[r.n])
            goto out;
        r.weights[r.n] = (uint32_t)(j - i);
        r.n++;
        i = j;
    }
    *v = r;
    rc = 0;
out:
    if (rc)
        ctl_view_ring_free(&r);
    gw_free(ms);
    return rc;
}

void ctl_view_ring_free(struct ctl_ring_view *v)
{
    if (v->addrs)
        for (size_t i = 0; i < v->n; i++)
            gw_free(v->addrs[i]);
    gw_free(v->addrs);
    gw_free(v->weights);
    memset(v, 0, sizeof(*v));
}

int ctl_view_state(const char *addr, const char *state, struct ctl_problems *probs)
{
    if (!state || !strcmp(state, "active"))
        return 0;
    if (!strcmp(state, "drain"))
        return 1;
    ctl_problems_add(probs,
                     "replica %s: state '%s' is not active or drain (gateways keep its last "
                     "good state; shown as active)",
                     addr, state);
    return 0;
}

/* --- route ---------------------------------------------------------------------- */

static int not_drained(uint32_t idx, void *ctx)
{
    const int *drain = ctx;

    return !drain || !drain[idx];
}

void ctl_view_route_point(const struct gw_ring *r, const int *drain, uint32_t point, int *first,
                          int *second)
{
    uint32_t ex;

    *first = *second = -1;
    if (!r || r->npoints == 0)
        return;
    *first = gw_ring_pick(r, point, not_drained, (void *)drain, NULL, 0);
    if (*first < 0) {
        *first = -1;
        return;
    }
    ex = (uint32_t)*first;
    *second = gw_ring_pick(r, point, not_drained, (void *)drain, &ex, 1);
    if (*second < 0)
        *second = -1;
}

void ctl_view_route(const struct gw_ring *r, const int *drain, const char *key, size_t keylen,
                    uint32_t *point, int *first, int *second)
{
    *point = gw_key_hash32(key, keylen);
    ctl_view_route_point(r, drain, *point, first, second);
}

/* --- tunables --------------------------------------------------------------------- */

const char *ctl_view_source_name(enum ctl_conf_source s)
{
    switch (s) {
    case CTL_SRC_GLOBAL:
        return "global";
    case CTL_SRC_POOL:
        return "pool";
    default:
        return "default";
    }
}

static void apply_pairs(struct gw_tunables *t, const char *key, const char *const *pairs, size_t n,
                        struct ctl_problems *probs)
{
    for (size_t i = 0; i < n; i++) {
        const char *f = pairs[2 * i], *val = pairs[2 * i + 1];
        char why[300];

        if (!f || !val)
            continue;
        int rc = gw_tunables_set(t, f, val, why, sizeof(why));

        if (rc == -1)
            ctl_problems_add(probs, "%s: %s (gateways ignore it)", key, why);
        else if (rc < 0)
            ctl_problems_add(probs, "%s: %s (gateways ignore it and keep their last good value)",
                             key, why);
    }
}

void ctl_view_conf(struct ctl_conf_value out[GW_TUN_COUNT], const char *gkey,
                   const char *const *gpairs, size_t ng, const char *pkey,
                   const char *const *ppairs, size_t np, struct ctl_problems *probs)
{
    struct gw_tunables eff, pool;

    gw_tunables_defaults(&eff);
    eff.set = 0;
    apply_pairs(&eff, gkey, gpairs, ng, probs);
    gw_tunables_defaults(&pool);
    pool.set = 0;
    if (ppairs)
        apply_pairs(&pool, pkey, ppairs, np, probs);
    uint32_t gset = eff.set;
    gw_tunables_overlay(&eff, &pool);
    for (int f = 0; f < GW_TUN_COUNT; f++) {
        gw_tunables_format(&eff, (enum gw_tunable_field)f, out[f].value, sizeof(out[f].value));
        out[f].source = pool.set & (1u << f) ? CTL_SRC_POOL
                        : gset & (1u << f)   ? CTL_SRC_GLOBAL
                                             : CTL_SRC_DEFAULT;
    }
}

/* --- output ------------------------------------------------------------------------ */

void ctl_view_print_json(FILE *out, json_t *doc)
{
    if (doc) {
        json_dumpf(doc, out, JSON_COMPACT | JSON_ENSURE_ASCII);
        fputc('\n', out);
        json_decref(doc);
    }
}

static const char *state_name(const int *drain, size_t i)
{
    return drain && drain[i] ? "drain" : "active";
}

/* Column width for the addresses of <r>, at least <min>. */
static int addr_width(const struct gw_ring *r, int min)
{
    size_t w = (size_t)min;

    for (size_t i = 0; r && i < r->nreplicas; i++)
        if (strlen(r->replicas[i]) > w)
            w = strlen(r->replicas[i]);
    return (int)w;
}

void ctl_view_print_replicas(FILE *out, int json, const char *pool, const struct gw_ring *r,
                             const int *drain)
{
    size_t n = r ? r->nreplicas : 0;

    if (json) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:s}", "address", r->replicas[i],
                                                 "weight", (json_int_t)r->weights[i], "state",
                                                 state_name(drain, i)));
        ctl_view_print_json(out, json_pack("{s:s, s:o}", "pool", pool, "replicas", arr));
        return;
    }
    if (n == 0) {
        fprintf(out, "pool %s has no replicas\n", pool);
        return;
    }
    int w = addr_width(r, 7);
    fprintf(out, "%-*s  %6s  %s\n", w, "ADDRESS", "WEIGHT", "STATE");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%-*s  %6u  %s\n", w, r->replicas[i], r->weights[i], state_name(drain, i));
}

void ctl_view_print_ring(FILE *out, int json, const char *pool, const struct gw_ring *r,
                         const int *drain)
{
    size_t n = r ? r->nreplicas : 0;

    if (json) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++)
            json_array_append_new(arr, json_pack("{s:s, s:I, s:f, s:s}", "address", r->replicas[i],
                                                 "vnodes", (json_int_t)r->weights[i], "share",
                                                 gw_ring_share(r, (uint32_t)i), "state",
                                                 state_name(drain, i)));
        ctl_view_print_json(out, json_pack("{s:s, s:I, s:o}", "pool", pool, "vnodes",
                                           (json_int_t)(r ? r->npoints : 0), "replicas", arr));
        return;
    }
    if (n == 0) {
        fprintf(out, "pool %s: empty ring (no replicas)\n", pool);
        return;
    }
    fprintf(out, "pool %s: %zu replica%s, %zu vnodes\n", pool, n, n == 1 ? "" : "s", r->npoints);
    int w = addr_width(r, 7);
    fprintf(out, "%-*s  %6s  %7s  %s\n", w, "REPLICA", "VNODES", "SHARE", "STATE");
    for (size_t i = 0; i < n; i++)
        fprintf(out, "%-*s  %6u  %6.2f%%  %s\n", w, r->replicas[i], r->weights[i],
                100.0 * gw_ring_share(r, (uint32_t)i), state_name(drain, i));
}

void ctl_view_print_route(FILE *out, int json, const char *pool, const char *key, uint32_t point,
                          const struct gw_ring *r, int first, int second)
{
    const char *a = first >= 0 ? r->replicas[first] : NULL;
    const char *b = second >= 0 ? r->replicas[second] : NULL;

    if (json) {
        ctl_view_print_json(out, json_pack("{s:s, s:s, s:I, s:s?, s:s?}", "pool", pool, "key", key,
                                           "point", (json_int_t)point, "replica", a, "second", b));
        return;
    }
    fprintf(out, "%s (second choice: %s; key point %u)\n", a ? a : "none", b ? b : "none", point);
}

void ctl_view_print_conf(FILE *out, int json, const char *pool,
                         const struct ctl_conf_value vals[GW_TUN_COUNT], int field)
{
    int lo = field >= 0 ? field : 0, hi = field >= 0 ? field + 1 : GW_TUN_COUNT;

    if (json) {
        json_t *arr = json_array();

        for (int f = lo; f < hi; f++)
            json_array_append_new(arr,
                                  json_pack("{s:s, s:s, s:s, s:s?}", "field", gw_tunable_names[f],
                                            "value", vals[f].value, "source",
                                            ctl_view_source_name(vals[f].source), "pool", pool));
        if (field >= 0) {
            ctl_view_print_json(out, json_incref(json_array_get(arr, 0)));
            json_decref(arr);
        } else {
            ctl_view_print_json(out, arr);
        }
        return;
    }
    for (int f = lo; f < hi; f++) {
        const char *src = ctl_view_source_name(vals[f].source);

        fprintf(out, "%-21s %-24s %s%s%s\n", gw_tunable_names[f],
                vals[f].value[0] ? vals[f].value : "\"\"", src,
                vals[f].source == CTL_SRC_POOL ? " " : "",
                vals[f].source == CTL_SRC_POOL ? pool : "");
    }
}

/* --- tenants and API keys ---------------------------------------------------------- */

int ctl_view_tenant_check(const struct ctl_tenant_row *t, const char *key,
                          struct ctl_problems *probs)
{
    struct gw_authdb *db = gw_authdb_new();
    const char *bad = NULL;
    char why[256];
    int rc;

    if (!db)
        return 1; /* out of memory: nothing to report */
    rc = gw_authdb_add_tenant(db, t->name, t->models, t->rps, t->burst, &bad, why, sizeof(why));
    gw_authdb_free(db);
    if (rc != GW_AUTHDB_EINVAL)
        return 1;
    const char *value = !strcmp(bad, "models")  ? t->models
                        : !strcmp(bad, "rps")   ? t->rps
                        : !strcmp(bad, "burst") ? t->burst
                                                : t->name;
    ctl_problems_add(probs, "%s field %s = '%s': %s (the gateways refuse this tenant)", key, bad,
                     value ? value : "", why);
    return 0;
}

static int key_row_cmp(const void *a, const void *b)
{
    const struct ctl_key_row *x = a, *y = b;
    int c = strcmp(x->tenant ? x->tenant : "", y->tenant ? y->tenant : "");

    return c ? c : strcmp(x->hash, y->hash);
}

void ctl_view_sort_keys(struct ctl_key_row *rows, size_t n)
{
    qsort(rows, n, sizeof(*rows), key_row_cmp);
}

void ctl_view_print_tenants(FILE *out, int json, const struct ctl_tenant_row *rows, size_t n)
{
    if (json) {
        json_t *arr = json_array();

        for (size_t i = 0; i < n; i++) {
            const struct ctl_tenant_row *t = &rows[i];
            json_t *o = json_pack("{s:s, s:s?, s:I}", "tenant", t->name, "models", t->models,
                                  "keys", (json_int_t)t->nkeys);

            json_object_set_new(o, "rps", t->rps ? json_real(strtod(t->rps, NULL)) : json_null());
            json_object_set_new(o, "burst",
                                t->burst ? json_integer(strtoll(t->burst, NULL, 10)) : json_null());
            json_array_append_new(arr, o);
        }
        ctl_view_print_json(out, arr);
        return;
    }
    int w = 6;
    for (size_t i = 0; i < n; i++)
        if ((int)strlen(rows[i].name) > w)
            w = (int)strlen(rows[i].name);
    fprintf(out, "%-*s  %-10s  %-8s  %-5s  %s\n", w, "TENANT", "RPS", "BURST", "KEYS", "MODELS");
    for (size_t i = 0; i < n; i++) {
        const struct ctl_tenant_row *t = &rows[i];
        int unlimited = !t->rps || strtod(t->rps, NULL) == 0;
        int dflt = !t->burst || strtoll(t->burst, NULL, 10) == 0;

        fprintf(out, "%-*s  %-10s  %-8s  %-5zu  %s\n", w, t->name, unlimited ? "unlimited" : t->rps,
                dflt ? "default" : t->burst, t->nkeys, t->models ? t->models : "(none)");
    }
}

void ctl_view_print_keys(FILE *out, int json, const struct ctl_key_row *rows, size_t n, int64_t now)
{
    json_t *arr = json ? json_array() : NULL;

    if (!json)
        fprintf(out, "%-*s  %-20s  %s\n", CTL_HASH_PREFIX, "HASH", "EXPIRES (UTC)", "TENANT");
    for (size_t i = 0; i < n; i++) {
        const struct ctl_key_row *k = &rows[i];
        long long exp = k->expires_at ? strtoll(k->expires_at, NULL, 10) : 0;
        int expired = exp > 0 && exp <= now;
        char when[64] = "never";

        if (exp > 0) {
            time_t t = (time_t)exp;
            struct tm tm;

            if (gmtime_r(&t, &tm))
                strftime(when, sizeof(when), "%Y-%m-%dT%H:%M:%SZ", &tm);
        } else if (k->expires_at) {
            snprintf(when, sizeof(when), "invalid");
        }
        if (json) {
            json_t *o = json_pack("{s:s#, s:s?, s:b}", "hash_prefix", k->hash, (int)CTL_HASH_PREFIX,
                                  "tenant", k->tenant, "expired", expired);

            json_object_set_new(o, "expires_at", exp > 0 ? json_integer(exp) : json_null());
            json_array_append_new(arr, o);
        } else {
            fprintf(out, "%.*s  %-20s  %s%s\n", CTL_HASH_PREFIX, k->hash, when,
                    k->tenant ? k->tenant : "(none)", expired ? "  (expired)" : "");
        }
    }
    if (json)
        ctl_view_print_json(out, arr);
}

/* --- status ------------------------------------------------------------------ */

int ctl_status_init(struct ctl_status *st)
{
    memset(st, 0, sizeof(*st));
    return 0;
}

int ctl_status_add(struct ctl_status *st, const char *gw, const char *replica, const char *value)
{
    if (st->n == st->cap) {
        size_t cap = st->cap ? 2 * st->cap : 32;
        struct ctl_status_cell *c = gw_realloc(st->cells, cap * sizeof(*c));
        if (!c)
            return -1;
        st->cells = c;
        st->cap = cap;
    }
    struct ctl_status_cell *c = &st->cells[st->n];
    c->gw = gw_strdup(gw);
    c->replica = replica ? gw_strdup(replica) : NULL;
    c->value = value ? gw_strdup(value) : NULL;
    if (!c->gw || (replica && !c->replica) || (value && !c->value)) {
        gw_free(c->gw);
        gw_free(c->replica);
        gw_free(c->value);
        return -1;
    }
    st->n++;
    return 0;
}

void ctl_status_free(struct ctl_status *st)
{
    for (size_t i = 0; i < st->n; i++) {
        gw_free(st->cells[i].gw);
        gw_free(st->cells[i].replica);
        gw_free(st->cells[i].value);
    }
    gw_free(st->cells);
    memset(st, 0, sizeof(*st));
}

int ctl_status_healthy(const char *value)
{
    return value && (!strcmp(value, "healthy") || !strcmp(value, "unknown"));
}

static int cmp_cstr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Sorted distinct names: gateways (<replicas> 0) or replicas (1, without
 * '@' metadata fields). Caller frees the array (not the strings). */
static const char **status_names(const struct ctl_status *st, int replicas, size_t *n)
{
    const char **v = gw_calloc(st->n + 1, sizeof(*v));
    size_t k = 0;
    if (!v) {
        *n = 0;
        return NULL;
    }
    for (size_t i = 0; i < st->n; i++) {
        const char *s = replicas ? st->cells[i].replica : st->cells[i].gw;
        if (s && !(replicas && s[0] == '@'))
            v[k++] = s;
    }
    qsort(v, k, sizeof(*v), cmp_cstr);
    size_t u = 0;
    for (size_t i = 0; i < k; i++)
        if (!u || strcmp(v[u - 1], v[i]) != 0)
            v[u++] = v[i];
    *n = u;
    return v;
}

static const char *status_value(const struct ctl_status *st, const char *gw, const char *rep)
{
    for (size_t i = 0; i < st->n; i++)
        if (st->cells[i].replica && !strcmp(st->cells[i].gw, gw) &&
            !strcmp(st->cells[i].replica, rep))
            return st->cells[i].value;
    return NULL;
}

void ctl_status_summary(const struct ctl_status *st, size_t *ngw, size_t *nrep, size_t *healthy)
{
    const char **gws = status_names(st, 0, ngw);
    const char **reps = status_names(st, 1, nrep);
    *healthy = 0;
    for (size_t r = 0; reps && gws && r < *nrep; r++) {
        int ok = 1;
        for (size_t g = 0; g < *ngw && ok; g++)
            ok = ctl_status_healthy(status_value(st, gws[g], reps[r]));
        *healthy += ok;
    }
    gw_free(gws);
    gw_free(reps);
}

int ctl_status_avail_parse(const char *value, struct ctl_avail *out)
{
    char tail;
    if (!value ||
        sscanf(value, "failures=%u recoveries=%u mtbf_s=%lf mttr_s=%lf availability=%lf%c",
               &out->failures, &out->recoveries, &out->mtbf_s, &out->mttr_s, &out->availability,
               &tail) != 5)
        return -1;
    return 0;
}

#define AVAIL_PREFIX "@avail:"

/* The parsed "@avail:<rep>" field of <gw>; 0, or -1 when absent or bad. */
static int status_avail(const struct ctl_status *st, const char *gw, const char *rep,
                        struct ctl_avail *out)
{
    char field[600];
    snprintf(field, sizeof(field), AVAIL_PREFIX "%s", rep);
    return ctl_status_avail_parse(status_value(st, gw, field), out);
}

static json_t *avail_json(const struct ctl_status *st, const char **gws, size_t ngw,
                          const char **reps, size_t nrep)
{
    json_t *ja = json_object();
    for (size_t r = 0; r < nrep; r++) {
        json_t *o = json_object();
        struct ctl_avail a;
        for (size_t g = 0; g < ngw; g++)
            if (status_avail(st, gws[g], reps[r], &a) == 0)
                json_object_set_new(o, gws[g],
                                    json_pack("{s:I, s:I, s:f, s:f, s:f}", "failures",
                                              (json_int_t)a.failures, "recoveries",
                                              (json_int_t)a.recoveries, "mtbf_s", a.mtbf_s,
                                              "mttr_s", a.mttr_s, "availability", a.availability));
        if (json_object_size(o))
            json_object_set_new(ja, reps[r], o);
        else
            json_decref(o);
    }
    return ja;
}

static void avail_text(const struct ctl_status *st, const char **gws, size_t ngw, const char **reps,
                       size_t nrep, int w0, FILE *out)
{
    int wg = 7, any = 0;
    struct ctl_avail a;
    for (size_t g = 0; g < ngw; g++)
        if ((int)strlen(gws[g]) > wg)
            wg = (int)strlen(gws[g]);
    for (size_t r = 0; r < nrep; r++)
        for (size_t g = 0; g < ngw; g++) {
            if (status_avail(st, gws[g], reps[r], &a) < 0)
                continue;
            if (!any++)
                fprintf(out, "\n%-*s  %-*s  %8s  %12s  %10s  %s\n", w0, "REPLICA", wg, "GATEWAY",
                        "FAILURES", "MTBF", "MTTR", "AVAILABILITY");
            fprintf(out, "%-*s  %-*s  %8u  %11.3fs  %9.3fs  %.6f\n", w0, reps[r], wg, gws[g],
                    a.failures, a.mtbf_s, a.mttr_s, a.availability);
        }
}

void ctl_status_print(const struct ctl_status *st, FILE *out, int json)
{
    size_t ngw, nrep, healthy;
    const char **gws = status_names(st, 0, &ngw);
    const char **reps = status_names(st, 1, &nrep);

    ctl_status_summary(st, &ngw, &nrep, &healthy);
    if (json) {
        json_t *jg = json_array(), *jr = json_object(), *jv = json_object();
        for (size_t g = 0; g < ngw; g++) {
            const char *v = status_value(st, gws[g], "@version");
            json_array_append_new(jg, json_string(gws[g]));
            json_object_set_new(jv, gws[g],
                                v ? json_integer((json_int_t)strtoll(v, NULL, 10)) : json_null());
        }
        for (size_t r = 0; r < nrep; r++) {
            json_t *o = json_object();
            for (size_t g = 0; g < ngw; g++) {
                const char *v = status_value(st, gws[g], reps[r]);
                json_object_set_new(o, gws[g], v ? json_string(v) : json_null());
            }
            json_object_set_new(jr, reps[r], o);
        }
        ctl_view_print_json(
            out, json_pack("{s:o, s:o, s:o, s:o, s:I, s:I}", "gateways", jg, "replicas", jr,
                           "availability", avail_json(st, gws, ngw, reps, nrep), "versions", jv,
                           "healthy", (json_int_t)healthy, "total", (json_int_t)nrep));
    } else {
        int w0 = 7;
        for (size_t r = 0; r < nrep; r++)
            if ((int)strlen(reps[r]) > w0)
                w0 = (int)strlen(reps[r]);
        int *w = gw_calloc(ngw + 1, sizeof(*w));
        fprintf(out, "%-*s", ngw ? w0 : 0, "REPLICA");
        for (size_t g = 0; w && g < ngw; g++) {
            w[g] = (int)strlen(gws[g]);
            for (size_t r = 0; r < nrep; r++) {
                const char *v = status_value(st, gws[g], reps[r]);
                if (v && (int)strlen(v) > w[g])
                    w[g] = (int)strlen(v);
            }
            fprintf(out, "  %-*s", g + 1 < ngw ? w[g] : 0, gws[g]);
        }
        fputc('\n', out);
        for (size_t r = 0; w && r < nrep; r++) {
            fprintf(out, "%-*s", ngw ? w0 : 0, reps[r]);
            for (size_t g = 0; g < ngw; g++) {
                const char *v = status_value(st, gws[g], reps[r]);
                fprintf(out, "  %-*s", g + 1 < ngw ? w[g] : 0, v ? v : "-");
            }
            fputc('\n', out);
        }
        gw_free(w);
        avail_text(st, gws, ngw, reps, nrep, w0, out);
        fprintf(out, "gateways reporting: %zu; replicas healthy: %zu/%zu\n", ngw, healthy, nrep);
    }
    gw_free(gws);
    gw_free(reps);
}
