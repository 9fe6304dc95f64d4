/* SPDX-License-Identifier: Apache-2.0 */
/* authdb — tenants and API-key records; see authdb.h.
 *
 * Two arrays of records, each with an open-addressing index (slots hold
 * record index + 1, 0 = empty; at most half full, so a probe always ends
 * on an empty slot). Tenants are indexed by an FNV-1a hash of their name;
 * API keys by the first 8 bytes of their SHA-256, which is already uniform.
 * An API-key lookup compares the full 32 bytes of every record on its probe
 * path with CRYPTO_memcmp, so the time it takes does not depend on how many
 * leading bytes of a stored hash the presented key's hash shares.
 *
 * Records are appended while a db is built (one thread) and never change
 * once it is published; pointers returned by the lookups stay valid for the
 * life of the db.
 */
#include "auth/authdb.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <openssl/crypto.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "base/names.h"

struct apikey {
    uint8_t hash[32];
    uint32_t tenant; /* index into gw_authdb.tenants */
    int64_t expires_at;
};

struct gw_authdb {
    struct gw_tenant *tenants;
    size_t ntenants, tcap;
    uint32_t *tindex; /* tislots slots */
    size_t tislots;
    struct apikey *keys;
    size_t nkeys, kcap;
    uint32_t *kindex;
    size_t kislots;
};

static uint64_t name_hash(const char *s)
{
    uint64_t h = 1469598103934665603ULL; /* FNV-1a */
    for (; *s; s++)
        h = (h ^ (unsigned char)*s) * 1099511628211ULL;
    return h;
}

static uint64_t key_slot_hash(const uint8_t h[32])
{
    uint64_t v = 0;
    for (int i = 0; i < 8; i++)
        v = (v << 8) | h[i];
    return v;
}

/* ---- lookups (any thread) ---- */

static long tenant_find(const struct gw_authdb *db, const char *name)
{
    if (!db || !db->tislots)
        return -1;
    size_t mask = db->tislots - 1;
    for (size_t i = (size_t)name_hash(name) & mask;; i = (i + 1) & mask) {
        uint32_t s = db->tindex[i];
        if (!s)
            return -1;
        if (!strcmp(db->tenants[s - 1].name, name))
            return (long)s - 1;
    }
}

const struct gw_tenant *gw_authdb_tenant(const struct gw_authdb *db, const char *name)
{
    long i = tenant_find(db, name);
    return i < 0 ? NULL : &db->tenants[i];
}

static long key_find(const struct gw_authdb *db, const uint8_t sha256[32])
{
    if (!db || !db->kislots)
        return -1;
    size_t mask = db->kislots - 1;
    long found = -1;
    for (size_t i = (size_t)key_slot_hash(sha256) & mask;; i = (i + 1) & mask) {
        uint32_t s = db->kindex[i];
        if (!s)
            return found;
        /* No early exit on a match either: every record on the path is
         * compared in full. */
        if (CRYPTO_memcmp(db->keys[s - 1].hash, sha256, 32) == 0)
            found = (long)s - 1;
    }
}

const char *gw_authdb_apikey(const struct gw_authdb *db, const uint8_t sha256[32],
                             int64_t *expires_at)
{
    long i = key_find(db, sha256);
    if (i < 0)
        return NULL;
    *expires_at = db->keys[i].expires_at;
    return db->tenants[db->keys[i].tenant].name;
}

int gw_tenant_allows_model(const struct gw_tenant *t, const char *model, size_t len)
{
    if (t->all_models)
        return 1;
    for (size_t i = 0; i < t->nmodels; i++)
        if (strlen(t->models[i]) == len && !memcmp(t->models[i], model, len))
            return 1;
    return 0;
}

size_t gw_authdb_ntenants(const struct gw_authdb *db)
{
    return db ? db->ntenants : 0;
}

size_t gw_authdb_napikeys(const struct gw_authdb *db)
{
    return db ? db->nkeys : 0;
}

const struct gw_tenant *gw_authdb_tenant_at(const struct gw_authdb *db, size_t i)
{
    return db && i < db->ntenants ? &db->tenants[i] : NULL;
}

/* ---- building ---- */

struct gw_authdb *gw_authdb_new(void)
{
    return gw_calloc(1, sizeof(struct gw_authdb));
}

static void tenant_free(struct gw_tenant *t)
{
    for (size_t i = 0; i < t->nmodels; i++)
        gw_free(t->models[i]);
    gw_free(t->models);
    gw_free(t->name);
}

void gw_authdb_free(struct gw_authdb *db)
{
    if (!db)
        return;
    for (size_t i = 0; i < db->ntenants; i++)
        tenant_free(&db->tenants[i]);
    gw_free(db->tenants);
    gw_free(db->tindex);
    gw_free(db->keys);
    gw_free(db->kindex);
    gw_free(db);
}

/* Makes room for one more record in an index of <*slots> over <n> records:
 * rebuilt twice as large when it would be more than half full. <hash_of>
 * gives record i's hash. */
static int index_grow(uint32_t **index, size_t *slots, size_t n,
                      uint64_t (*hash_of)(const struct gw_authdb *, size_t),
                      const struct gw_authdb *db)
{
    if ((n + 1) * 2 <= *slots)
        return 0;
    size_t ns = *slots ? *slots * 2 : 16;
    while ((n + 1) * 2 > ns)
        ns *= 2;
    uint32_t *ni = gw_calloc(ns, sizeof(uint32_t));
    if (!ni)
        return GW_AUTHDB_ENOMEM;
    for (size_t r = 0; r < n; r++) {
        size_t i = (size_t)hash_of(db, r) & (ns - 1);
        while (ni[i])
            i = (i + 1) & (ns - 1);
        ni[i] = (uint32_t)r + 1;
    }
    gw_free(*index);
    *index = ni;
    *slots = ns;
    return 0;
}

static void index_put(uint32_t *index, size_t slots, uint64_t h, size_t r)
{
    size_t i = (size_t)h & (slots - 1);
    while (index[i])
        i = (i + 1) & (slots - 1);
    index[i] = (uint32_t)r + 1;
}

static uint64_t tenant_hash_at(const struct gw_authdb *db, size_t r)
{
    return name_hash(db->tenants[r].name);
}

static uint64_t key_hash_at(const struct gw_authdb *db, size_t r)
{
    return key_slot_hash(db->keys[r].hash);
}

/* <arr> (<n> records of <size> bytes, room for *<cap>) with room for one
 * more: the same array, or a larger one (*cap updated); NULL when out of
 * memory (<arr> unchanged). */
static void *room(void *arr, size_t *cap, size_t n, size_t size)
{
    if (n < *cap)
        return arr;
    size_t nc = *cap ? *cap * 2 : 8;
    void *na = gw_realloc(arr, nc * size);
    if (na)
        *cap = nc;
    return na;
}

/* Appends <t> (whose allocations it takes over on success). */
static int tenant_append(struct gw_authdb *db, struct gw_tenant *t)
{
    if (tenant_find(db, t->name) >= 0)
        return GW_AUTHDB_EEXIST;
    struct gw_tenant *nt = room(db->tenants, &db->tcap, db->ntenants, sizeof(*nt));
    if (!nt)
        return GW_AUTHDB_ENOMEM;
    db->tenants = nt;
    if (index_grow(&db->tindex, &db->tislots, db->ntenants, tenant_hash_at, db) < 0)
        return GW_AUTHDB_ENOMEM;
    db->tenants[db->ntenants] = *t;
    index_put(db->tindex, db->tislots, name_hash(t->name), db->ntenants);
    db->ntenants++;
    return 0;
}

int gw_tenant_name_valid(const char *s)
{
    return gw_name_word(s, strlen(s), GW_TENANT_NAME_MAX, ",");
}

/* Splits <s> into model names, or "*". With <t> NULL only validates. */
static int models_parse(const char *s, struct gw_tenant *t, char *err, size_t errlen)
{
    const char *p = s;
    while (*p == ' ' || *p == '\t')
        p++;
    if (p[0] == '*') {
        const char *q = p + 1;
        while (*q == ' ' || *q == '\t')
            q++;
        if (*q) {
            gw_errf(err, errlen, "'*' must stand alone");
            return -1;
        }
        if (t)
            t->all_models = 1;
        return 0;
    }
    if (!*p) {
        gw_errf(err, errlen, "empty: give a comma list of pools or *");
        return -1;
    }
    for (;;) {
        while (*p == ' ' || *p == '\t')
            p++;
        const char *start = p;
        while (*p && *p != ',')
            p++;
        const char *end = p;
        while (end > start && (end[-1] == ' ' || end[-1] == '\t'))
            end--;
        size_t n = (size_t)(end - start);
        if (n == 0) {
            gw_errf(err, errlen, "empty pool name in the list");
            return -1;
        }
        if (n > GW_POOL_NAME_MAX) {
            gw_errf(err, errlen, "pool name longer than 255 bytes");
            return -1;
        }
        /* A pool name (names.h); '*' is this list's wildcard, so no entry
         * may hold one. */
        if (!gw_pool_name_valid(start, n) || memchr(start, '*', n)) {
            gw_errf(err, errlen, "pool names are printable ASCII without spaces or '*'");
            return -1;
        }
        if (t) {
            char **nm = gw_realloc(t->models, (t->nmodels + 1) * sizeof(char *));
            if (!nm)
                return GW_AUTHDB_ENOMEM;
            t->models = nm;
            if (!(t->models[t->nmodels] = gw_strndup(start, n)))
                return GW_AUTHDB_ENOMEM;
            t->nmodels++;
        }
        if (!*p)
            return 0;
        p++; /* ',' */
    }
}

int gw_tenant_models_check(const char *s, char *err, size_t errlen)
{
    return models_parse(s, NULL, err, errlen) == 0 ? 0 : -1;
}

int gw_tenant_parse_rps(const char *s, double *out, char *err, size_t errlen)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    /* Plain decimal only: no hex floats, inf or nan. */
    for (const char *p = s; *p; p++)
        if (!isdigit((unsigned char)*p) && *p != '.') {
            gw_errf(err, errlen, "not a decimal number >= 0");
            return -1;
        }
    if (errno || end == s || *end || !isfinite(v) || v < 0) {
        gw_errf(err, errlen, "not a decimal number >= 0");
        return -1;
    }
    if (v != 0 && (v < GW_TENANT_RPS_MIN || v > GW_TENANT_RPS_MAX)) {
        gw_errf(err, errlen, "rps is 0 (unlimited) or %g..%g", GW_TENANT_RPS_MIN,
                GW_TENANT_RPS_MAX);
        return -1;
    }
    *out = v;
    return 0;
}

int gw_tenant_parse_burst(const char *s, uint32_t *out, char *err, size_t errlen)
{
    if (gw_parse_u32(s, 0, GW_TENANT_BURST_MAX, out) < 0)
        return gw_errf(err, errlen, "burst is an integer 0..%u", GW_TENANT_BURST_MAX);
    return 0;
}

int gw_apikey_parse_expires(const char *s, int64_t *out, char *err, size_t errlen)
{
    uint64_t v;
    if (gw_parse_u64(s, 1, 1ULL << 53, &v) < 0)
        return gw_errf(err, errlen, "expires_at is unix seconds (an integer > 0)");
    *out = (int64_t)v;
    return 0;
}

int gw_apikey_hash_from_hex(const char *hex, size_t len, uint8_t out[32])
{
    if (len != GW_AUTHDB_HASH_HEX)
        return -1;
    uint8_t tmp[32];
    for (size_t i = 0; i < 64; i++) {
        char c = hex[i];
        int v = c >= '0' && c <= '9' ? c - '0' : c >= 'a' && c <= 'f' ? c - 'a' + 10 : -1;
        if (v < 0)
            return -1;
        if (i % 2 == 0)
            tmp[i / 2] = (uint8_t)(v << 4);
        else
            tmp[i / 2] |= (uint8_t)v;
    }
    memcpy(out, tmp, 32);
    return 0;
}

void gw_apikey_hash_to_hex(const uint8_t sha256[32], char out[GW_AUTHDB_HASH_HEX + 1])
{
    static const char digits[] = "0123456789abcdef";
    for (size_t i = 0; i < 32; i++) {
        out[2 * i] = digits[sha256[i] >> 4];
        out[2 * i + 1] = digits[sha256[i] & 15];
    }
    out[64] = '\0';
}

void gw_apikey_hash(const char *key, size_t len, uint8_t out[32])
{
    SHA256((const unsigned char *)key, len, out);
}

int gw_authdb_add_tenant(struct gw_authdb *db, const char *name, const char *models,
                         const char *rps, const char *burst, const char **bad_field, char *err,
                         size_t errlen)
{
    const char *field = "name";
    struct gw_tenant t = {0};
    int rc = GW_AUTHDB_EINVAL;
    if (!gw_tenant_name_valid(name)) {
        gw_errf(err, errlen, "tenant names are 1..%d printable ASCII bytes without spaces or ','",
                GW_TENANT_NAME_MAX);
        goto fail;
    }
    field = "models";
    if (!models) {
        gw_errf(err, errlen, "missing: give a comma list of pools or *");
        goto fail;
    }
    rc = models_parse(models, &t, err, errlen);
    if (rc != 0) {
        if (rc == -1)
            rc = GW_AUTHDB_EINVAL;
        goto fail;
    }
    rc = GW_AUTHDB_EINVAL;
    field = "rps";
    if (rps && gw_tenant_parse_rps(rps, &t.rps, err, errlen) < 0)
        goto fail;
    field = "burst";
    if (burst && gw_tenant_parse_burst(burst, &t.burst, err, errlen) < 0)
        goto fail;
    field = NULL;
    t.name = gw_strdup(name);
    if (!t.name) {
        rc = GW_AUTHDB_ENOMEM;
        goto fail;
    }
    rc = tenant_append(db, &t);
    if (rc == GW_AUTHDB_EEXIST)
        gw_errf(err, errlen, "tenant '%s' is already defined", name);
    if (rc == 0)
        return 0;
fail:
    if (rc == GW_AUTHDB_ENOMEM)
        gw_errf(err, errlen, "out of memory");
    if (bad_field)
        *bad_field = rc == GW_AUTHDB_EINVAL ? field : NULL;
    tenant_free(&t);
    return rc;
}

int gw_authdb_copy_tenant(struct gw_authdb *db, const struct gw_tenant *src)
{
    struct gw_tenant t = {0};
    t.all_models = src->all_models;
    t.rps = src->rps;
    t.burst = src->burst;
    t.name = gw_strdup(src->name);
    if (!t.name)
        goto oom;
    if (src->nmodels) {
        t.models = gw_calloc(src->nmodels, sizeof(char *));
        if (!t.models)
            goto oom;
        for (; t.nmodels < src->nmodels; t.nmodels++)
            if (!(t.models[t.nmodels] = gw_strdup(src->models[t.nmodels])))
                goto oom;
    }
    int rc = tenant_append(db, &t);
    if (rc < 0)
        tenant_free(&t);
    return rc;
oom:
    tenant_free(&t);
    return GW_AUTHDB_ENOMEM;
}

int gw_authdb_add_apikey(struct gw_authdb *db, const uint8_t sha256[32], const char *tenant,
                         int64_t expires_at)
{
    long ti = tenant_find(db, tenant);
    if (ti < 0)
        return GW_AUTHDB_ENOENT;
    if (key_find(db, sha256) >= 0)
        return GW_AUTHDB_EEXIST;
    struct apikey *nk = room(db->keys, &db->kcap, db->nkeys, sizeof(*nk));
    if (!nk)
        return GW_AUTHDB_ENOMEM;
    db->keys = nk;
    if (index_grow(&db->kindex, &db->kislots, db->nkeys, key_hash_at, db) < 0)
        return GW_AUTHDB_ENOMEM;
    struct apikey *k = &db->keys[db->nkeys];
    memcpy(k->hash, sha256, 32);
    k->tenant = (uint32_t)ti;
    k->expires_at = expires_at;
    index_put(db->kindex, db->kislots, key_slot_hash(sha256), db->nkeys);
    db->nkeys++;
    return 0;
}

/* ---- files ---- */

#define MAX_FIELDS 8

/* One record line split into words; <line> is modified. Returns the number
 * of words, or -1 when there are too many. */
static int split_words(char *line, char **w)
{
    int n = 0;
    char *p = line;
    for (;;) {
        while (*p == ' ' || *p == '\t' || *p == '\r')
            p++;
        if (!*p)
            return n;
        if (n == MAX_FIELDS)
            return -1;
        w[n++] = p;
        while (*p && *p != ' ' && *p != '\t' && *p != '\r')
            p++;
        if (*p)
            *p++ = '\0';
    }
}

/* Finds "<name>=" among words 1..n-1: the value, NULL when absent; -1 in
 * *dup when the field is given twice. */
static const char *field_of(char **w, int n, const char *name, int *dup)
{
    const char *v = NULL;
    size_t len = strlen(name);
    for (int i = 1; i < n; i++)
        if (!strncmp(w[i], name, len) && w[i][len] == '=') {
            if (v)
                *dup = 1;
            v = w[i] + len + 1;
        }
    return v;
}

static int load_line(struct gw_authdb *db, enum gw_authdb_file kind, char *line, char *err,
                     size_t errlen)
{
    char *w[MAX_FIELDS];
    int n = split_words(line, w);
    if (n == 0 || w[0][0] == '#')
        return 0;
    if (n < 0) {
        gw_errf(err, errlen, "too many fields");
        return GW_AUTHDB_EINVAL;
    }
    static const char *const tenant_fields[] = {"models", "rps", "burst", NULL};
    static const char *const key_fields[] = {"tenant", "expires_at", NULL};
    const char *const *known = kind == GW_AUTHDB_TENANTS ? tenant_fields : key_fields;
    for (int i = 1; i < n; i++) {
        char *eq = strchr(w[i], '=');
        int ok = 0;
        for (size_t k = 0; eq && known[k] && !ok; k++)
            ok = strlen(known[k]) == (size_t)(eq - w[i]) && !strncmp(w[i], known[k], eq - w[i]);
        if (!ok) {
            gw_errf(err, errlen, "unknown field '%.*s' (expected %s)",
                    eq ? (int)(eq - w[i]) : (int)strlen(w[i]), w[i],
                    kind == GW_AUTHDB_TENANTS ? "models=, rps=, burst=" : "tenant=, expires_at=");
            return GW_AUTHDB_EINVAL;
        }
    }
    int dup = 0;
    if (kind == GW_AUTHDB_TENANTS) {
        const char *models = field_of(w, n, "models", &dup);
        const char *rps = field_of(w, n, "rps", &dup);
        const char *burst = field_of(w, n, "burst", &dup);
        if (dup) {
            gw_errf(err, errlen, "a field is given twice");
            return GW_AUTHDB_EINVAL;
        }
        const char *bad = NULL;
        char why[200];
        int rc = gw_authdb_add_tenant(db, w[0], models, rps, burst, &bad, why, sizeof(why));
        if (rc == GW_AUTHDB_EINVAL)
            gw_errf(err, errlen, "tenant '%s': %s: %s", w[0], bad ? bad : "", why);
        else if (rc < 0)
            gw_errf(err, errlen, "%s", why);
        return rc;
    }
    uint8_t hash[32];
    if (gw_apikey_hash_from_hex(w[0], strlen(w[0]), hash) < 0) {
        /* Never echo the word: it may be a key pasted by mistake. */
        gw_errf(err, errlen,
                "the first field is not a SHA-256 in 64 lowercase hex digits (this file "
                "holds key hashes, never keys: infergw-ctl key hash KEY prints one)");
        return GW_AUTHDB_EINVAL;
    }
    const char *tenant = field_of(w, n, "tenant", &dup);
    const char *exp = field_of(w, n, "expires_at", &dup);
    if (dup) {
        gw_errf(err, errlen, "a field is given twice");
        return GW_AUTHDB_EINVAL;
    }
    if (!tenant) {
        gw_errf(err, errlen, "tenant= is missing");
        return GW_AUTHDB_EINVAL;
    }
    int64_t expires_at = 0;
    char why[200];
    if (exp && gw_apikey_parse_expires(exp, &expires_at, why, sizeof(why)) < 0) {
        gw_errf(err, errlen, "expires_at '%s': %s", exp, why);
        return GW_AUTHDB_EINVAL;
    }
    int rc = gw_authdb_add_apikey(db, hash, tenant, expires_at);
    if (rc == GW_AUTHDB_ENOENT)
        gw_errf(err, errlen, "tenant '%s' is not defined (in the --tenants file)", tenant);
    else if (rc == GW_AUTHDB_EEXIST)
        gw_errf(err, errlen, "this key hash is already listed");
    else if (rc < 0)
        gw_errf(err, errlen, "out of memory");
    return rc;
}

int gw_authdb_load_text(struct gw_authdb *db, enum gw_authdb_file kind, const char *text,
                        size_t len, const char *fname, char *err, size_t errlen)
{
    const char *p = text, *end = text + len;
    for (unsigned lineno = 1; p < end; lineno++) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
        char *line = gw_strndup(p, n);
        if (!line) {
            gw_errf(err, errlen, "%s:%u: out of memory", fname, lineno);
            return GW_AUTHDB_ENOMEM;
        }
        if (strlen(line) != n) {
            gw_free(line);
            gw_errf(err, errlen, "%s:%u: NUL byte in the line", fname, lineno);
            return GW_AUTHDB_EINVAL;
        }
        char why[400];
        int rc = load_line(db, kind, line, why, sizeof(why));
        gw_free(line);
        if (rc < 0) {
            gw_errf(err, errlen, "%s:%u: %s", fname, lineno, why);
            return rc;
        }
        p += n + (nl ? 1 : 0);
    }
    return 0;
}

static int load_file(struct gw_authdb *db, enum gw_authdb_file kind, const char *path, char *err,
                     size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        gw_errf(err, errlen, "%s: %s", path, strerror(errno));
        return GW_AUTHDB_EINVAL;
    }
    char *text = NULL;
    size_t len = 0, cap = 0;
    int rc = 0;
    for (;;) {
        if (len + 4096 > cap) {
            size_t nc = cap ? cap * 2 : 8192;
            char *nt = gw_realloc(text, nc);
            if (!nt) {
                rc = GW_AUTHDB_ENOMEM;
                gw_errf(err, errlen, "%s: out of memory", path);
                break;
            }
            text = nt;
            cap = nc;
        }
        size_t got = fread(text + len, 1, cap - len, f);
        len += got;
        if (got == 0) {
            if (ferror(f)) {
                rc = GW_AUTHDB_EINVAL;
                gw_errf(err, errlen, "%s: read error", path);
            }
            break;
        }
    }
    fclose(f);
    if (rc == 0)
        rc = gw_authdb_load_text(db, kind, text ? text : "", len, path, err, errlen);
    gw_free(text);
    return rc;
}

struct gw_authdb *gw_authdb_load_files(const char *tenants_path, const char *keys_path, char *err,
                                       size_t errlen)
{
    struct gw_authdb *db = gw_authdb_new();
    if (!db) {
        gw_errf(err, errlen, "out of memory");
        return NULL;
    }
    if ((tenants_path && *tenants_path &&
         load_file(db, GW_AUTHDB_TENANTS, tenants_path, err, errlen) < 0) ||
        (keys_path && *keys_path && load_file(db, GW_AUTHDB_APIKEYS, keys_path, err, errlen) < 0)) {
        gw_authdb_free(db);
        return NULL;
    }
    return db;
}
