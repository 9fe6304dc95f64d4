/* SPDX-License-Identifier: Apache-2.0 */
/* ctldoc — the dump document: checks, keys, differences; see ctldoc.h. */
#include "ctldoc.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authdb.h"
#include "base/mem.h"
#include "base/names.h"
#include "control/keys.h"
#include "ctlargs.h"
#include "route/ring.h"
#include "route/tunables.h"

/* --- checks ------------------------------------------------------------------- */

/* Only the fields in the NULL-terminated list <allowed>. */
static void only_fields(const json_t *obj, const char *path, const char *const *allowed,
                        struct ctl_problems *p)
{
    const char *k;
    json_t *v;

    json_object_foreach((json_t *)obj, k, v)
    {
        size_t i = 0;
        while (allowed[i] && strcmp(allowed[i], k) != 0)
            i++;
        if (!allowed[i])
            ctl_problems_add(p, "%s%s%s: unknown field", path, path[0] ? "." : "", k);
    }
}

/* The object at <path>, or NULL (reported when present but not an object). */
static const json_t *object_at(const json_t *v, const char *path, struct ctl_problems *p)
{
    if (!v)
        return NULL;
    if (!json_is_object(v)) {
        ctl_problems_add(p, "%s: expected an object", path);
        return NULL;
    }
    return v;
}

/* String field <f> of <obj>: NULL when absent (reported when <required>)
 * or not a string (reported). */
static const char *string_at(const json_t *obj, const char *path, const char *f, int required,
                             struct ctl_problems *p)
{
    const json_t *v = json_object_get(obj, f);

    if (!v) {
        if (required)
            ctl_problems_add(p, "%s.%s: missing", path, f);
        return NULL;
    }
    if (!json_is_string(v)) {
        ctl_problems_add(p, "%s.%s: expected a string", path, f);
        return NULL;
    }
    return json_string_value(v);
}

/* A hash of tunables (global, or a pool's conf). */
static void check_tunables(const json_t *conf, const char *path, struct ctl_problems *p)
{
    const char *k;
    json_t *v;

    if (!object_at(conf, path, p))
        return;
    json_object_foreach((json_t *)conf, k, v)
    {
        struct gw_tunables t;
        char err[300];

        gw_tunables_defaults(&t);
        if (!json_is_string(v))
            ctl_problems_add(p, "%s.%s: expected a string", path, k);
        else if (gw_tunables_set(&t, k, json_string_value(v), err, sizeof(err)) < 0)
            ctl_problems_add(p, "%s.%s: %s", path, k, err);
    }
}

static void check_ring(const json_t *ring, const char *path, struct ctl_problems *p)
{
    static const char *const fields[] = {"replica", "weight", NULL};
    size_t i;
    json_t *e;

    if (!json_is_array(ring)) {
        ctl_problems_add(p, "%s: expected an array", path);
        return;
    }
    if (json_array_size(ring) > GW_RING_MAX_REPLICAS)
        ctl_problems_add(p, "%s: %zu replicas, more than a ring takes (%d)", path,
                         json_array_size(ring), GW_RING_MAX_REPLICAS);
    json_array_foreach(ring, i, e)
    {
        char at[700], err[400];
        const char *addr;
        json_t *w = json_object_get(e, "weight");

        snprintf(at, sizeof(at), "%.600s[%zu]", path, i);
        if (!object_at(e, at, p))
            continue;
        only_fields(e, at, fields, p);
        if ((addr = string_at(e, at, "replica", 1, p))) {
            if (ctl_check_replica(addr, err, sizeof(err)) < 0)
                ctl_problems_add(p, "%s.replica: %s", at, err);
            for (size_t j = 0; j < i; j++) {
                const char *o =
                    json_string_value(json_object_get(json_array_get(ring, j), "replica"));
                if (o && !strcmp(o, addr)) {
                    ctl_problems_add(p, "%s.replica: %s is on this ring already ([%zu])", at, addr,
                                     j);
                    break;
                }
            }
        }
        if (!w)
            ctl_problems_add(p, "%s.weight: missing", at);
        else if (!json_is_integer(w) || json_integer_value(w) < 1 ||
                 json_integer_value(w) > GW_RING_MAX_VNODES)
            ctl_problems_add(p, "%s.weight: expected a number of vnodes from 1 to %d", at,
                             GW_RING_MAX_VNODES);
    }
}

static void check_pools(const json_t *pools, struct ctl_problems *p)
{
    static const char *const fields[] = {"ring", "conf", NULL};
    const char *name;
    json_t *v;

    if (!object_at(pools, "pools", p))
        return;
    json_object_foreach((json_t *)pools, name, v)
    {
        char path[400], sub[420];

        snprintf(path, sizeof(path), "pools.%.300s", name);
        if (!gw_pool_name_valid(name, strlen(name)))
            ctl_problems_add(p,
                             "%s: pool name refused: expected 1..%d printable characters, no "
                             "spaces or commas",
                             path, GW_POOL_NAME_MAX);
        if (!object_at(v, path, p))
            continue;
        only_fields(v, path, fields, p);
        snprintf(sub, sizeof(sub), "%s.ring", path);
        if (json_object_get(v, "ring"))
            check_ring(json_object_get(v, "ring"), sub, p);
        snprintf(sub, sizeof(sub), "%s.conf", path);
        check_tunables(json_object_get(v, "conf"), sub, p);
    }
}

static void check_replicas(const json_t *reps, struct ctl_problems *p)
{
    static const char *const fields[] = {"state", NULL};
    const char *addr;
    json_t *v;

    if (!object_at(reps, "replicas", p))
        return;
    json_object_foreach((json_t *)reps, addr, v)
    {
        char path[400], err[400];
        const char *st;

        snprintf(path, sizeof(path), "replicas.%.300s", addr);
        if (ctl_check_replica(addr, err, sizeof(err)) < 0)
            ctl_problems_add(p, "%s: %s", path, err);
        if (!object_at(v, path, p))
            continue;
        only_fields(v, path, fields, p);
        st = string_at(v, path, "state", 1, p);
        if (st && strcmp(st, "active") != 0 && strcmp(st, "drain") != 0)
            ctl_problems_add(p, "%s.state: '%s' refused: expected active or drain", path, st);
    }
}

/* Tenants go into <db>, so that the API keys can be checked against them. */
static void check_tenants(const json_t *tenants, struct gw_authdb *db, struct ctl_problems *p)
{
    static const char *const fields[] = {"models", "rps", "burst", NULL};
    const char *name;
    json_t *v;

    if (!object_at(tenants, "tenants", p))
        return;
    json_object_foreach((json_t *)tenants, name, v)
    {
        char path[400], err[300];
        const char *bad = "name";
        size_t n = p->total;

        snprintf(path, sizeof(path), "tenants.%.300s", name);
        if (!object_at(v, path, p))
            continue;
        only_fields(v, path, fields, p);
        const char *models = string_at(v, path, "models", 1, p);
        const char *rps = string_at(v, path, "rps", 0, p);
        const char *burst = string_at(v, path, "burst", 0, p);
        if (p->total != n)
            continue;
        int rc = gw_authdb_add_tenant(db, name, models, rps, burst, &bad, err, sizeof(err));
        if (rc == GW_AUTHDB_EINVAL && !strcmp(bad, "name"))
            ctl_problems_add(p, "%s: %s", path, err);
        else if (rc == GW_AUTHDB_EINVAL)
            ctl_problems_add(p, "%s.%s: %s", path, bad, err);
        else if (rc == GW_AUTHDB_ENOMEM)
            ctl_problems_add(p, "%s: out of memory", path);
    }
}

static void check_apikeys(const json_t *keys, struct gw_authdb *db, struct ctl_problems *p)
{
    static const char *const fields[] = {"tenant", "expires_at", NULL};
    const char *hex;
    json_t *v;

    if (!object_at(keys, "apikeys", p))
        return;
    json_object_foreach((json_t *)keys, hex, v)
    {
        char path[400], err[300];
        uint8_t hash[32];
        int64_t exp = 0;

        snprintf(path, sizeof(path), "apikeys.%.80s", hex);
        if (gw_apikey_hash_from_hex(hex, strlen(hex), hash) < 0) {
            ctl_problems_add(p, "%s: not a SHA-256 (64 lowercase hex digits)", path);
            continue;
        }
        if (!object_at(v, path, p))
            continue;
        only_fields(v, path, fields, p);
        const char *tenant = string_at(v, path, "tenant", 1, p);
        const char *e = string_at(v, path, "expires_at", 0, p);
        if (e && gw_apikey_parse_expires(e, &exp, err, sizeof(err)) < 0)
            ctl_problems_add(p, "%s.expires_at: %s", path, err);
        if (tenant && !gw_authdb_tenant(db, tenant))
            ctl_problems_add(p, "%s.tenant: tenant '%s' is not among the document's valid tenants",
                             path, tenant);
    }
}

int ctl_doc_check(const json_t *doc, struct ctl_problems *p)
{
    static const char *const fields[] = {"format",  "version", "taken_at", "config_version",
                                         "global",  "pools",   "replicas", "tenants",
                                         "apikeys", NULL};
    const json_t *ver = json_object_get(doc, "version"), *cv;
    const char *fmt = json_string_value(json_object_get(doc, "format"));
    size_t before = p->total;

    if (!json_is_object(doc)) {
        ctl_problems_add(p, "the document is not a JSON object");
        return -1;
    }
    if (!fmt || strcmp(fmt, CTL_DOC_FORMAT) != 0) {
        ctl_problems_add(p, "format: expected \"%s\" (not an infergw-ctl dump)", CTL_DOC_FORMAT);
        return -1;
    }
    if (json_is_integer(ver) && json_integer_value(ver) > CTL_DOC_VERSION) {
        ctl_problems_add(p,
                         "dump format version %lld is newer than this infergw-ctl understands "
                         "(%d)",
                         (long long)json_integer_value(ver), CTL_DOC_VERSION);
        return -1;
    }
    if (!json_is_integer(ver) || json_integer_value(ver) < 1)
        ctl_problems_add(p, "version: expected the integer %d", CTL_DOC_VERSION);
    only_fields(doc, "", fields, p);
    if (json_object_get(doc, "taken_at") && !json_is_string(json_object_get(doc, "taken_at")))
        ctl_problems_add(p, "taken_at: expected a string");
    cv = json_object_get(doc, "config_version");
    if (cv && (!json_is_integer(cv) || json_integer_value(cv) < 0))
        ctl_problems_add(p, "config_version: expected an integer >= 0");
    check_tunables(json_object_get(doc, "global"), "global", p);
    check_pools(json_object_get(doc, "pools"), p);
    check_replicas(json_object_get(doc, "replicas"), p);
    struct gw_authdb *db = gw_authdb_new();
    if (!db) {
        ctl_problems_add(p, "out of memory");
        return -1;
    }
    check_tenants(json_object_get(doc, "tenants"), db, p);
    check_apikeys(json_object_get(doc, "apikeys"), db, p);
    gw_authdb_free(db);
    return p->total == before ? 0 : -1;
}

/* --- keys --------------------------------------------------------------------- */

/* Adds key <key> of <type> with <fields> (taken) unless it has none. */
static int add_key(json_t *out, const char *key, const char *type, json_t *fields)
{
    if (!fields)
        return -1;
    if (json_object_size(fields) == 0) {
        json_decref(fields);
        return 0;
    }
    return json_object_set_new(out, key, json_pack("{s:s, s:o}", "type", type, "fields", fields));
}

/* A hash from a JSON object of strings (checked). */
static json_t *hash_fields(const json_t *obj)
{
    json_t *f = json_object();
    const char *k;
    json_t *v;

    if (f && obj)
        json_object_foreach((json_t *)obj, k, v) json_object_set(f, k, v);
    return f;
}

/* The keys of one family of records ("tenants", ...) built by <build>. */
static int add_records(json_t *out, const json_t *recs, const char *prefix,
                       int (*build)(char *, size_t, const char *, const char *))
{
    const char *name;
    json_t *v;
    int rc = 0;

    json_object_foreach((json_t *)recs, name, v)
    {
        char key[GW_KEY_LEN];
        if (build(key, sizeof(key), prefix, name) < 0 ||
            add_key(out, key, "hash", hash_fields(v)) < 0)
            rc = -1;
    }
    return rc;
}

static int add_pools(json_t *out, const json_t *pools, const char *prefix)
{
    char key[GW_KEY_LEN];
    json_t *set = json_object(), *v;
    const char *name;
    int rc = 0;

    json_object_foreach((json_t *)pools, name, v)
    {
        json_t *ring = json_object(), *e;
        size_t i;

        json_object_set_new(set, name, json_string(""));
        json_array_foreach(json_object_get(v, "ring"), i, e)
        {
            char w[24];
            snprintf(w, sizeof(w), "%lld",
                     (long long)json_integer_value(json_object_get(e, "weight")));
            json_object_set_new(ring, json_string_value(json_object_get(e, "replica")),
                                json_string(w));
        }
        if (gw_key_pool_ring(key, sizeof(key), prefix, name) < 0) {
            json_decref(ring);
            rc = -1;
        } else if (add_key(out, key, "ring", ring) < 0) {
            rc = -1;
        }
        if (gw_key_pool_conf(key, sizeof(key), prefix, name) < 0 ||
            add_key(out, key, "hash", hash_fields(json_object_get(v, "conf"))) < 0)
            rc = -1;
    }
    if (gw_key_pools(key, sizeof(key), prefix) < 0) {
        json_decref(set);
        rc = -1;
    } else if (add_key(out, key, "set", set) < 0) {
        rc = -1;
    }
    return rc;
}

json_t *ctl_doc_keys(const json_t *doc, const char *prefix)
{
    char key[GW_KEY_LEN];
    json_t *out = json_object();
    int rc = out ? 0 : -1;

    if (gw_key_conf(key, sizeof(key), prefix) < 0 ||
        add_key(out, key, "hash", hash_fields(json_object_get(doc, "global"))) < 0)
        rc = -1;
    if (add_pools(out, json_object_get(doc, "pools"), prefix) < 0 ||
        add_records(out, json_object_get(doc, "replicas"), prefix, gw_key_replica) < 0 ||
        add_records(out, json_object_get(doc, "tenants"), prefix, gw_key_tenant) < 0 ||
        add_records(out, json_object_get(doc, "apikeys"), prefix, gw_key_apikey) < 0)
        rc = -1;
    if (rc < 0) {
        json_decref(out);
        return NULL;
    }
    return out;
}

/* --- differences -------------------------------------------------------------- */

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The names of both objects, sorted, without duplicates; NULL when out of
 * memory. */
static const char **union_names(const json_t *a, const json_t *b, size_t *n)
{
    size_t cap = json_object_size(a) + json_object_size(b), k = 0, u = 0;
    const char **v = gw_calloc(cap + 1, sizeof(*v));
    const char *name;
    json_t *x;

    if (!v)
        return NULL;
    json_object_foreach((json_t *)a, name, x) v[k++] = name;
    json_object_foreach((json_t *)b, name, x) v[k++] = name;
    qsort(v, k, sizeof(*v), cmp_str);
    for (size_t i = 0; i < k; i++)
        if (!u || strcmp(v[u - 1], v[i]) != 0)
            v[u++] = v[i];
    *n = u;
    return v;
}

/* Field changes of one key; NULL when out of memory. */
static json_t *field_changes(const json_t *from, const json_t *to)
{
    size_t n = 0;
    const char **names = union_names(from, to, &n);
    json_t *out = json_array();

    if (!names || !out) {
        gw_free(names);
        json_decref(out);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object_get(from, names[i]), *w = json_object_get(to, names[i]);
        if (o && w && json_equal(o, w))
            continue;
        json_array_append_new(
            out, json_pack("{s:s, s:O?, s:O?}", "field", names[i], "old", o, "new", w));
    }
    gw_free(names);
    return out;
}

json_t *ctl_doc_diff(const json_t *from, const json_t *to)
{
    size_t n = 0, counts[4] = {0};
    const char **names = union_names(from, to, &n);
    json_t *keys = json_array();
    static const char *const change[] = {"added", "removed", "changed", "unchanged"};

    if (!names || !keys) {
        gw_free(names);
        json_decref(keys);
        return NULL;
    }
    for (size_t i = 0; i < n; i++) {
        json_t *o = json_object_get(from, names[i]), *w = json_object_get(to, names[i]);
        int c = !o ? 0 : !w ? 1 : json_equal(o, w) ? 3 : 2;
        counts[c]++;
        if (c == 3)
            continue;
        json_t *f = field_changes(json_object_get(o, "fields"), json_object_get(w, "fields"));
        json_array_append_new(keys, json_pack("{s:s, s:O, s:s, s:o?}", "key", names[i], "type",
                                              json_object_get(w ? w : o, "type"), "change",
                                              change[c], "fields", f));
    }
    gw_free(names);
    return json_pack("{s:I, s:I, s:I, s:I, s:o}", "added", (json_int_t)counts[0], "removed",
                     (json_int_t)counts[1], "changed", (json_int_t)counts[2], "unchanged",
                     (json_int_t)counts[3], "keys", keys);
}

static void print_value(FILE *out, const char *type, const json_t *v)
{
    if (strcmp(type, "set") != 0)
        fprintf(out, " = %s", json_string_value(v));
}

void ctl_doc_print_diff(FILE *out, const json_t *diff)
{
    size_t i, j;
    json_t *k, *f;

    json_array_foreach(json_object_get(diff, "keys"), i, k)
    {
        const char *c = json_string_value(json_object_get(k, "change"));
        const char *type = json_string_value(json_object_get(k, "type"));
        fprintf(out, "%c %s (%s)\n",
                c[0] == 'a'   ? '+'
                : c[0] == 'r' ? '-'
                              : '~',
                json_string_value(json_object_get(k, "key")),
                !strcmp(type, "ring") ? "ring: replica = weight" : type);
        json_array_foreach(json_object_get(k, "fields"), j, f)
        {
            json_t *o = json_object_get(f, "old"), *w = json_object_get(f, "new");
            o = json_is_string(o) ? o : NULL;
            w = json_is_string(w) ? w : NULL;
            fprintf(out, "    %c %s",
                    !o   ? '+'
                    : !w ? '-'
                         : '~',
                    json_string_value(json_object_get(f, "field")));
            print_value(out, type, o ? o : w);
            if (o && w)
                fprintf(out, " -> %s", json_string_value(w));
            fputc('\n', out);
        }
    }
    fprintf(out, "%lld key(s) added, %lld removed, %lld changed, %lld unchanged\n",
            (long long)json_integer_value(json_object_get(diff, "added")),
            (long long)json_integer_value(json_object_get(diff, "removed")),
            (long long)json_integer_value(json_object_get(diff, "changed")),
            (long long)json_integer_value(json_object_get(diff, "unchanged")));
}
