/* SPDX-License-Identifier: Apache-2.0 */
/* jwt_plugin — the built-in JWT authenticator (plugin ABI,
 * infergw/plugin.h) around jwt.h.
 *
 * Claims "authorization: Bearer <token>" tokens with two dots (JWS compact
 * serialisation). Arguments, comma-separated: keys=FILE (repeatable; PEM or
 * JWKS), issuer=ISS, audience=AUD, claim=NAME (tenant claim, default sub),
 * leeway=SECONDS (default 30), cache=N (default 4096).
 *
 * A signature check costs more than a whole proxied call (RS256 ~20 µs), so
 * each worker keeps a cache of tokens it verified: keyed by the SHA-256 of
 * the token, holding the tenant and valid until the token's exp plus the
 * leeway. It is 4-way set associative with N entries in all: a full set
 * evicts the entry that expires first, so memory stays bounded whatever
 * clients send. A reload (SIGHUP) publishes a new key generation; a worker
 * that sees it empties its cache first, so no entry outlives the keys that
 * verified it. Only verified tokens are cached.
 */
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergw/plugin.h"
#include "jwt.h"

#define WAYS 4

/* One generation of keys. A reload publishes a new one; older ones stay
 * until destroy, since a worker may be verifying with one right now (a
 * few kilobytes per reload). */
struct jwt_gen {
    struct jwt_keyset ks;
    uint64_t gen;
    struct jwt_gen *older;
};

struct jwt_state {
    const struct infergw_host *host;
    char *args;                    /* a copy, for the keys= files on reload */
    _Atomic(struct jwt_gen *) cur; /* the keys in force */
    char issuer[256], audience[256], claim[64];
    struct jwt_policy pol;
    size_t cache_sets; /* a power of two, or 0 = no cache */
    EVP_MD *sha256;    /* fetched once: no per-call algorithm lookup */
};

struct cache_ent {
    uint8_t hash[32];
    int64_t until; /* unix seconds; 0 = empty */
    char tenant[JWT_TENANT_MAX + 1];
};

struct jwt_wstate {
    struct cache_ent *ents; /* cache_sets * WAYS */
    uint64_t gen;           /* the key generation the entries were verified with */
    uint64_t hits, verified;
};

void jwt_plugin_cache_stats(const void *wstate, uint64_t *hits, uint64_t *verified)
{
    const struct jwt_wstate *w = wstate;
    *hits = w ? w->hits : 0;
    *verified = w ? w->verified : 0;
}

static void jwt_destroy(void *state)
{
    struct jwt_state *s = state;
    if (!s)
        return;
    for (struct jwt_gen *g = atomic_load(&s->cur), *older; g; g = older) {
        older = g->older;
        jwt_keyset_free(&g->ks);
        s->host->free(g);
    }
    EVP_MD_free(s->sha256);
    s->host->free(s->args);
    s->host->free(s);
}

/* Copies the value of one "name=value" argument into <dst>. */
static int arg_copy(char *dst, size_t cap, const char *v, size_t vl)
{
    if (vl == 0 || vl >= cap)
        return -1;
    memcpy(dst, v, vl);
    dst[vl] = '\0';
    return 0;
}

static int parse_uint(const char *v, size_t vl, unsigned long max, unsigned long *out)
{
    char buf[16];
    char *end;
    if (vl == 0 || vl >= sizeof(buf))
        return -1;
    memcpy(buf, v, vl);
    buf[vl] = '\0';
    unsigned long x = strtoul(buf, &end, 10);
    if (*end || buf[0] == '-' || x > max)
        return -1;
    *out = x;
    return 0;
}

/* A new generation from the keys=FILE arguments of <args>. Returns it, or
 * NULL with the reason in <err>. */
static struct jwt_gen *load_keys(const struct jwt_state *s, const char *args, char *err,
                                 size_t errlen)
{
    struct jwt_gen *g = s->host->zalloc(sizeof(*g));
    if (!g) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    for (const char *a = args; *a;) {
        size_t l = strcspn(a, ",");
        char path[1024];
        if (l > 5 && !memcmp(a, "keys=", 5)) {
            if (arg_copy(path, sizeof(path), a + 5, l - 5) < 0) {
                snprintf(err, errlen, "argument 'keys': bad value");
                goto fail;
            }
            if (jwt_keyset_load_file(&g->ks, path, err, errlen) < 0)
                goto fail;
        }
        a += l;
        if (*a == ',')
            a++;
    }
    if (g->ks.n == 0) {
        snprintf(err, errlen, "no verification keys (keys=FILE)");
        goto fail;
    }
    for (size_t i = 0; i < g->ks.n; i++)
        for (size_t j = i + 1; j < g->ks.n; j++)
            if (g->ks.keys[i].kid[0] && !strcmp(g->ks.keys[i].kid, g->ks.keys[j].kid)) {
                snprintf(err, errlen, "two keys have kid '%s'", g->ks.keys[i].kid);
                goto fail;
            }
    return g;
fail:
    jwt_keyset_free(&g->ks);
    s->host->free(g);
    return NULL;
}

static int jwt_init(const char *args, const struct infergw_host *host, void **state, char *err,
                    size_t errlen)
{
    jwt_set_allocator(host->zalloc, host->free);
    struct jwt_state *s = host->zalloc(sizeof(*s));
    if (!s) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    s->host = host;
    atomic_init(&s->cur, NULL);
    snprintf(s->claim, sizeof(s->claim), "sub");
    if (!(s->sha256 = EVP_MD_fetch(NULL, "SHA256", NULL))) {
        snprintf(err, errlen, "OpenSSL has no SHA-256");
        goto fail;
    }
    unsigned long leeway = 30, cache = 4096;
    const char *a = args;
    while (*a) {
        size_t l = strcspn(a, ",");
        const char *eq = memchr(a, '=', l);
        if (!eq) {
            snprintf(err, errlen, "argument '%.*s': expected NAME=VALUE", (int)l, a);
            goto fail;
        }
        size_t nl = (size_t)(eq - a), vl = l - nl - 1;
        const char *v = eq + 1;
        int bad = 0;
        if (nl == 4 && !memcmp(a, "keys", 4)) {
            /* loaded below */
        } else if (nl == 6 && !memcmp(a, "issuer", 6)) {
            bad = arg_copy(s->issuer, sizeof(s->issuer), v, vl);
        } else if (nl == 8 && !memcmp(a, "audience", 8)) {
            bad = arg_copy(s->audience, sizeof(s->audience), v, vl);
        } else if (nl == 5 && !memcmp(a, "claim", 5)) {
            bad = arg_copy(s->claim, sizeof(s->claim), v, vl);
        } else if (nl == 6 && !memcmp(a, "leeway", 6)) {
            bad = parse_uint(v, vl, 3600, &leeway);
        } else if (nl == 5 && !memcmp(a, "cache", 5)) {
            bad = parse_uint(v, vl, 1ul << 20, &cache);
        } else {
            snprintf(err, errlen,
                     "unknown argument '%.*s' (keys, issuer, audience, claim, "
                     "leeway, cache)",
                     (int)nl, a);
            goto fail;
        }
        if (bad) {
            snprintf(err, errlen, "argument '%.*s': bad value", (int)nl, a);
            goto fail;
        }
        a += l;
        if (*a == ',')
            a++;
    }
    size_t alen = strlen(args);
    if (!(s->args = host->alloc(alen + 1))) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    memcpy(s->args, args, alen + 1);
    struct jwt_gen *g = load_keys(s, args, err, errlen);
    if (!g)
        goto fail;
    g->gen = 1;
    atomic_init(&s->cur, g);
    s->pol.issuer = s->issuer[0] ? s->issuer : NULL;
    s->pol.audience = s->audience[0] ? s->audience : NULL;
    s->pol.tenant_claim = s->claim;
    s->pol.leeway_s = (int64_t)leeway;
    if (cache) {
        size_t sets = 1;
        while (sets * WAYS < cache)
            sets <<= 1;
        s->cache_sets = sets;
    }
    *state = s;
    return 0;
fail:
    jwt_destroy(s);
    return -1;
}

static void *jwt_worker_init(void *state, int index, int *failed)
{
    struct jwt_state *s = state;
    (void)index;
    if (!s->cache_sets)
        return NULL;
    struct jwt_wstate *w = s->host->zalloc(sizeof(*w));
    if (w)
        w->ents = s->host->zalloc(s->cache_sets * WAYS * sizeof(*w->ents));
    if (!w || !w->ents) {
        if (w)
            s->host->free(w);
        *failed = 1;
        return NULL;
    }
    return w;
}

static void jwt_worker_destroy(void *state, void *wstate)
{
    struct jwt_state *s = state;
    struct jwt_wstate *w = wstate;
    if (!w)
        return;
    s->host->free(w->ents);
    s->host->free(w);
}

static struct cache_ent *cache_set(const struct jwt_state *s, struct jwt_wstate *w,
                                   const uint8_t hash[32])
{
    uint64_t h;
    memcpy(&h, hash, sizeof(h));
    return &w->ents[(h & (s->cache_sets - 1)) * WAYS];
}

static enum infergw_auth_result jwt_authenticate(void *state, void *wstate,
                                                 const struct infergw_auth_request *req,
                                                 const struct infergw_host *host,
                                                 struct infergw_auth_answer *ans)
{
    const struct jwt_state *s = state;
    struct jwt_wstate *w = wstate;
    const char *tok = req->bearer;
    size_t len = req->bearer_len;
    const char *d1 = tok ? memchr(tok, '.', len) : NULL;
    if (!d1 || !memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok)))
        return INFERGW_AUTH_PASS; /* not a JWT */
    int64_t now = host->now_unix(host);
    const struct jwt_gen *g = atomic_load_explicit(&s->cur, memory_order_acquire);
    if (w && w->gen != g->gen) { /* keys reloaded: what was verified before no longer counts */
        memset(w->ents, 0, s->cache_sets * WAYS * sizeof(*w->ents));
        w->gen = g->gen;
    }

    uint8_t hash[32];
    unsigned int hl = 0;
    struct cache_ent *set = NULL;
    if (w && EVP_Digest(tok, len, hash, &hl, s->sha256, NULL) && hl == 32) {
        set = cache_set(s, w, hash);
        for (int i = 0; i < WAYS; i++)
            if (set[i].until && CRYPTO_memcmp(set[i].hash, hash, 32) == 0) {
                if (now <= set[i].until) {
                    w->hits++;
                    return infergw_auth_accept(ans, set[i].tenant, strlen(set[i].tenant));
                }
                set[i].until = 0; /* expired: verify again, which says so */
            }
    }
    struct jwt_claims c;
    struct jwt_error e;
    if (w)
        w->verified++;
    if (jwt_verify(&g->ks, &s->pol, tok, len, now, &c, &e) < 0)
        return infergw_auth_reject(ans, e.reason, e.message);
    if (set) {
        struct cache_ent *victim = &set[0];
        for (int i = 0; i < WAYS; i++) {
            if (!set[i].until) {
                victim = &set[i];
                break;
            }
            if (set[i].until < victim->until)
                victim = &set[i];
        }
        memcpy(victim->hash, hash, 32);
        victim->until = c.exp > INT64_MAX - s->pol.leeway_s ? INT64_MAX : c.exp + s->pol.leeway_s;
        memcpy(victim->tenant, c.tenant, sizeof(c.tenant));
    }
    return infergw_auth_accept(ans, c.tenant, strlen(c.tenant));
}

/* Reads the keys=FILE files again and publishes them (release store); the
 * workers see the new generation at their next JWT call and drop their
 * cached tokens then. On failure the keys in force stay. Main thread. */
static int jwt_reload(void *state, char *err, size_t errlen)
{
    struct jwt_state *s = state;
    struct jwt_gen *g = load_keys(s, s->args, err, errlen);
    if (!g)
        return -1;
    struct jwt_gen *old = atomic_load_explicit(&s->cur, memory_order_relaxed);
    g->gen = old->gen + 1;
    g->older = old;
    atomic_store_explicit(&s->cur, g, memory_order_release);
    return 0;
}

const struct infergw_plugin infergw_jwt_plugin = {
    .abi_version = INFERGW_PLUGIN_ABI_VERSION,
    .name = "jwt",
    .init = jwt_init,
    .worker_init = jwt_worker_init,
    .worker_destroy = jwt_worker_destroy,
    .authenticate = jwt_authenticate,
    .destroy = jwt_destroy,
    .reload = jwt_reload,
};
