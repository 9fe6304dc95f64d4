/* SPDX-License-Identifier: Apache-2.0 */
/* watcher — the Redis control plane thread; see watcher.h.
 *
 * Everything here runs on the control-plane thread with blocking hiredis
 * calls (bounded by the Redis timeout); the only contact with workers is
 * gw_worker_offer_routes(). Loading is a plain sequence of reads: a write
 * that lands in the middle bumps infergw:version, so the next poll notices
 * and loads again.
 */
#include "control/watcher.h"

#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <time.h>
#include <unistd.h>

#include "auth/authdb.h"
#include "health/health.h"
#include "base/log.h"
#include "base/names.h"
#include "base/mem.h"
#include "route/ring.h"
#include "base/timer.h"
#include "base/hostport.h"
#include "control/keys.h"
#include "engine/worker.h"

#define BACKOFF_MIN_MS 100
#define MAX_VNODE      10000

struct lpool {
    char *name;
    char **addrs; /* owned */
    uint32_t *weights;
    size_t n;
    struct gw_tunables own; /* the pool's own settings (set bits) */
};

struct load {
    struct lpool *pools;
    size_t npools;
    struct gw_tunables global;
    char **drained;
    size_t ndrained;
    char *gone;               /* leased replicas whose lease is gone ("\n"-framed) */
    size_t nexpired;          /* replicas of the snapshot passed over for that */
    struct gw_authdb *authdb; /* tenants and API keys */
    int oom;                  /* an allocation failed while loading records */
    unsigned errors;
};

static void reject(struct gw_watcher *ctl, struct load *ld, const char *key, const char *field,
                   const char *value, const char *reason)
{
    ld->errors++;
    atomic_fetch_add(&ctl->config_errors, 1);
    gw_log(GW_LOG_WARN, "config_rejected", "{s:s, s:s, s:s, s:s}", "key", key, "field", field,
           "value", value, "reason", reason);
}

static void load_free(struct load *ld)
{
    for (size_t i = 0; i < ld->npools; i++) {
        for (size_t j = 0; j < ld->pools[i].n; j++)
            gw_free(ld->pools[i].addrs[j]);
        gw_free(ld->pools[i].addrs);
        gw_free(ld->pools[i].weights);
        gw_free(ld->pools[i].name);
    }
    gw_free(ld->pools);
    for (size_t i = 0; i < ld->ndrained; i++)
        gw_free(ld->drained[i]);
    gw_free(ld->drained);
    gw_authdb_free(ld->authdb);
    gw_free(ld->gone);
    memset(ld, 0, sizeof(*ld));
}

/* A reply that is not an error: otherwise the connection is given up. */
static redisReply *cmd(redisContext *c, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    redisReply *r = redisvCommand(c, fmt, ap);
    va_end(ap);
    if (r && r->type == REDIS_REPLY_ERROR) {
        gw_log(GW_LOG_WARN, "redis_error", "{s:s}", "error", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static int resolvable(const char *addr)
{
    char host[256], port[8];
    uint16_t p;
    if (gw_hostport_split(addr, host, sizeof(host), &p) < 0)
        return 0;
    snprintf(port, sizeof(port), "%u", p);
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    if (getaddrinfo(host, port, &hints, &res) != 0 || !res)
        return 0;
    freeaddrinfo(res);
    return 1;
}

/* Applies a HASH of tunables onto <t>; an invalid value keeps the value
 * <prev> has for that field (the last good one). */
static void apply_conf(struct gw_watcher *ctl, struct load *ld, const char *key, redisReply *h,
                       struct gw_tunables *t, const struct gw_tunables *prev)
{
    for (size_t i = 0; h && i + 1 < h->elements; i += 2) {
        const char *field = h->element[i]->str, *value = h->element[i + 1]->str;
        if (!field || !value)
            continue;
        char err[256];
        int rc = gw_tunables_set(t, field, value, err, sizeof(err));
        if (rc == 0)
            continue;
        reject(ctl, ld, key, field, value, err);
        if (rc == -2 && prev) {
            char good[600];
            int f = gw_tunables_field(field);
            gw_tunables_format(prev, (enum gw_tunable_field)f, good, sizeof(good));
            gw_tunables_set(t, field, good, err, sizeof(err));
        }
    }
}

/* Reads one pool's ring ZSET into <lp>. Returns 0 when every member is
 * valid, 1 when some are not (the caller keeps the last good ring), -1 on a
 * Redis error. */
static int load_ring(struct gw_watcher *ctl, redisContext *c, struct load *ld, struct lpool *lp)
{
    const char *prefix = ctl->cfg->redis_prefix;
    char key[512];
    gw_key_pool_ring(key, sizeof(key), prefix, lp->name);
    redisReply *r = cmd(c, "ZRANGE %s 0 -1 WITHSCORES", key);
    if (!r)
        return -1;
    int bad = 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        reject(ctl, ld, key, "", "", "not a sorted set");
        freeReplyObject(r);
        return 1;
    }
    /* Per address: how many vnodes, and the highest index seen. */
    size_t cap = r->elements / 2 + 1;
    lp->addrs = gw_calloc(cap, sizeof(char *));
    lp->weights = gw_calloc(cap, sizeof(uint32_t));
    uint32_t *maxidx = gw_calloc(cap, sizeof(uint32_t));
    if (!lp->addrs || !lp->weights || !maxidx) {
        gw_free(maxidx);
        freeReplyObject(r);
        return -1;
    }
    for (size_t i = 0; i + 1 < r->elements; i += 2) {
        const char *member = r->element[i]->str, *score = r->element[i + 1]->str;
        if (!member || !score)
            continue;
        const char *hash = strrchr(member, '#');
        char *end;
        errno = 0;
        unsigned long vnode = hash ? strtoul(hash + 1, &end, 10) : 0;
        /* Canonical decimal only: "#01" would name another token than #1. */
        if (!hash || hash == member || !hash[1] || *end || errno || vnode >= MAX_VNODE ||
            hash[1] < '0' || hash[1] > '9' || (hash[1] == '0' && hash[2])) {
            reject(ctl, ld, key, member, score, "member is not <host:port>#<vnode 0..9999>");
            bad = 1;
            continue;
        }
        char addr[300], host[256];
        uint16_t port;
        size_t alen = (size_t)(hash - member);
        if (alen >= sizeof(addr)) {
            reject(ctl, ld, key, member, score, "address too long");
            bad = 1;
            continue;
        }
        memcpy(addr, member, alen);
        addr[alen] = '\0';
        if (gw_hostport_split(addr, host, sizeof(host), &port) < 0) {
            reject(ctl, ld, key, member, score, "address is not host:port");
            bad = 1;
            continue;
        }
        errno = 0;
        unsigned long long tok = strtoull(score, &end, 10);
        if (*end || errno || score[0] == '-' || tok > UINT32_MAX ||
            tok != gw_hash32(member, strlen(member))) {
            reject(ctl, ld, key, member, score,
                   "score is not the member's token (first 4 bytes of SHA-256, big-endian)");
            bad = 1;
            continue;
        }
        size_t k = 0;
        while (k < lp->n && strcmp(lp->addrs[k], addr) != 0)
            k++;
        if (k == lp->n) {
            if (!resolvable(addr)) {
                reject(ctl, ld, key, member, score, "replica host does not resolve");
                bad = 1;
                continue;
            }
            lp->addrs[k] = gw_strdup(addr);
            if (!lp->addrs[k]) {
                gw_free(maxidx);
                freeReplyObject(r);
                return -1;
            }
            lp->n++;
        }
        lp->weights[k]++;
        if (vnode > maxidx[k])
            maxidx[k] = (uint32_t)vnode;
    }
    /* Vnodes must be #0..#w-1: the gateway rebuilds the ring from weights. */
    for (size_t k = 0; k < lp->n; k++)
        if (maxidx[k] + 1 != lp->weights[k]) {
            char v[32];
            snprintf(v, sizeof(v), "%u vnodes", lp->weights[k]);
            reject(ctl, ld, key, lp->addrs[k], v, "vnode indexes are not 0..weight-1");
            bad = 1;
        }
    gw_free(maxidx);
    freeReplyObject(r);
    return bad;
}

/* Replaces <lp>'s replicas with the ring <prev> had (the last good one). */
static int keep_previous_ring(struct lpool *lp, const struct gw_pool *prev)
{
    for (size_t j = 0; j < lp->n; j++)
        gw_free(lp->addrs[j]);
    lp->n = 0;
    if (!prev)
        return 0;
    size_t n = prev->ring.nreplicas;
    char **a = gw_realloc(lp->addrs, (n ? n : 1) * sizeof(char *));
    uint32_t *w = gw_realloc(lp->weights, (n ? n : 1) * sizeof(uint32_t));
    if (a)
        lp->addrs = a;
    if (w)
        lp->weights = w;
    if (!a || !w)
        return -1;
    for (size_t j = 0; j < n; j++) {
        lp->addrs[j] = gw_strdup(prev->ring.replicas[j]);
        if (!lp->addrs[j])
            return -1;
        lp->weights[j] = prev->ring.weights ? prev->ring.weights[j] : GW_RING_DEFAULT_VNODES;
        lp->n++;
    }
    return 0;
}

/* ---- tenants and API keys ---- */

/* The value of <field> in an HGETALL reply, or NULL. */
static const char *hash_field(const redisReply *h, const char *field)
{
    for (size_t i = 0; i + 1 < h->elements; i += 2)
        if (h->element[i]->str && !strcmp(h->element[i]->str, field))
            return h->element[i + 1]->str;
    return NULL;
}

typedef void (*record_fn)(struct gw_watcher *ctl, struct load *ld, const char *key,
                          const char *suffix, const redisReply *hash, const struct gw_authdb *prev);

/* SCANs (never KEYS: it would block Redis on a large keyspace) every key
 * of family <kind> (keys.h) and hands each one's HGETALL to <fn>, a SCAN batch at a
 * time with the HGETALLs pipelined. A key that is not a hash is rejected.
 * Returns 0, or -1 on a Redis error. */
static int scan_records(struct gw_watcher *ctl, redisContext *c, struct load *ld,
                        enum gw_key_family kind, record_fn fn, const struct gw_authdb *prev)
{
    const char *prefix = ctl->cfg->redis_prefix;
    char pattern[600];
    if (gw_key_scan(pattern, sizeof(pattern), prefix, kind, "") < 0)
        return -1;
    char cursor[32] = "0";
    do {
        redisReply *r = cmd(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r)
            return -1;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element[0]->str ||
            r->element[1]->type != REDIS_REPLY_ARRAY) {
            freeReplyObject(r);
            return -1;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        const redisReply *keys = r->element[1];
        for (size_t i = 0; i < keys->elements; i++)
            redisAppendCommand(c, "HGETALL %b", keys->element[i]->str,
                               (size_t)keys->element[i]->len);
        int rc = 0;
        for (size_t i = 0; i < keys->elements; i++) {
            void *v = NULL;
            if (redisGetReply(c, &v) != REDIS_OK || !v) {
                rc = -1; /* the connection is unusable now */
                break;
            }
            redisReply *h = v;
            const char *key = keys->element[i]->str;
            const char *name = key ? gw_key_suffix(key, prefix, kind) : NULL;
            if (rc == 0 && name && *name) {
                if (h->type == REDIS_REPLY_ARRAY)
                    fn(ctl, ld, key, name, h->elements ? h : NULL, prev);
                else
                    fn(ctl, ld, key, name, h, prev);
            }
            freeReplyObject(h);
        }
        freeReplyObject(r);
        if (rc < 0)
            return -1;
    } while (strcmp(cursor, "0") != 0);
    return 0;
}

/* One infergw:tenant:<name> record. A record with a bad field keeps the
 * tenant's last good record (or is left out when there was none). */
static void tenant_record(struct gw_watcher *ctl, struct load *ld, const char *key,
                          const char *name, const redisReply *h, const struct gw_authdb *prev)
{
    if (!h)
        return; /* deleted between SCAN and HGETALL */
    const struct gw_tenant *last = gw_authdb_tenant(prev, name);
    const char *bad = "", *value = "";
    char err[256];
    int rc;
    if (h->type != REDIS_REPLY_ARRAY) {
        reject(ctl, ld, key, "", "", "not a hash");
        rc = GW_AUTHDB_EINVAL;
    } else {
        rc = gw_authdb_add_tenant(ld->authdb, name, hash_field(h, "models"), hash_field(h, "rps"),
                                  hash_field(h, "burst"), &bad, err, sizeof(err));
        if (rc == GW_AUTHDB_EINVAL) {
            value = !strcmp(bad, "name") ? name : hash_field(h, bad);
            reject(ctl, ld, key, bad, value ? value : "", err);
        }
    }
    if (rc == GW_AUTHDB_EINVAL && last) {
        gw_log(GW_LOG_WARN, "config_kept", "{s:s, s:s}", "key", key, "kept", "last good record");
        rc = gw_authdb_copy_tenant(ld->authdb, last);
    }
    if (rc == GW_AUTHDB_ENOMEM)
        ld->oom = 1;
}

/* One infergw:apikey:<sha256-hex> record; the same last-good rule, as long
 * as the tenant the last good record names is still there. */
static void apikey_record(struct gw_watcher *ctl, struct load *ld, const char *key, const char *hex,
                          const redisReply *h, const struct gw_authdb *prev)
{
    if (!h)
        return;
    uint8_t hash[32];
    if (gw_apikey_hash_from_hex(hex, strlen(hex), hash) < 0) {
        /* Not a hash: it may be a key stored in clear by mistake, so the
         * key name is not logged whole. */
        char shown[600], len[64];
        snprintf(len, sizeof(len), "%zu bytes", strlen(hex));
        snprintf(shown, sizeof(shown), "%.*s<not shown>", (int)(hex - key), key);
        reject(ctl, ld, shown, "", len,
               "the key name does not end in a SHA-256 (64 lowercase hex digits)");
        return;
    }
    const char *tenant = NULL, *exp = NULL;
    int64_t expires_at = 0;
    int bad = 1;
    char err[256];
    if (h->type != REDIS_REPLY_ARRAY) {
        reject(ctl, ld, key, "", "", "not a hash");
    } else if (!(tenant = hash_field(h, "tenant"))) {
        reject(ctl, ld, key, "tenant", "", "missing");
    } else if ((exp = hash_field(h, "expires_at")) &&
               gw_apikey_parse_expires(exp, &expires_at, err, sizeof(err)) < 0) {
        reject(ctl, ld, key, "expires_at", exp, err);
    } else {
        int rc = gw_authdb_add_apikey(ld->authdb, hash, tenant, expires_at);
        if (rc == GW_AUTHDB_ENOENT)
            reject(ctl, ld, key, "tenant", tenant, "no such tenant (or its record is invalid)");
        else if (rc == GW_AUTHDB_ENOMEM)
            ld->oom = 1;
        bad = rc == GW_AUTHDB_ENOENT;
    }
    int64_t last_exp;
    const char *last = bad ? gw_authdb_apikey(prev, hash, &last_exp) : NULL;
    if (last && gw_authdb_tenant(ld->authdb, last) &&
        gw_authdb_add_apikey(ld->authdb, hash, last, last_exp) == 0)
        gw_log(GW_LOG_WARN, "config_kept", "{s:s, s:s}", "key", key, "kept", "last good record");
}

/* Reads every tenant, then every API key, into ld->authdb. Returns 0, or -1
 * on a Redis error or when out of memory. */
static int load_authdb(struct gw_watcher *ctl, redisContext *c, struct load *ld,
                       const struct gw_authdb *prev)
{
    ld->authdb = gw_authdb_new();
    if (!ld->authdb)
        return -1;
    if (scan_records(ctl, c, ld, GW_KEY_TENANT, tenant_record, prev) < 0 ||
        scan_records(ctl, c, ld, GW_KEY_APIKEY, apikey_record, prev) < 0)
        return -1;
    return ld->oom ? -1 : 0;
}

/* ---- leases ---- */

static int cmp_strp(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* The replicas listed in <prefix>leased whose <prefix>lease:<addr> key is
 * gone, sorted and framed by newlines ("\n" when none, "\na\nb\n"), as
 * a new string. NULL on a Redis error or when out of memory. */
static char *read_lease_gone(struct gw_watcher *ctl, redisContext *c)
{
    const char *prefix = ctl->cfg->redis_prefix;
    char key[512];
    gw_key_leased(key, sizeof(key), prefix);
    redisReply *r = cmd(c, "SMEMBERS %s", key);
    if (!r)
        return NULL;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements : 0, k = 0, total = 2;
    const char **names = gw_calloc(n + 1, sizeof(*names));
    int *gone = gw_calloc(n + 1, sizeof(*gone));
    char *out = NULL;
    if (!names || !gone)
        goto done;
    for (size_t i = 0; i < n; i++)
        if (r->element[i]->str && r->element[i]->len > 0 && r->element[i]->len < 300 &&
            !strchr(r->element[i]->str, '\n'))
            names[k++] = r->element[i]->str;
    qsort(names, k, sizeof(*names), cmp_strp);
    for (size_t i = 0; i < k; i++) {
        gw_key_lease(key, sizeof(key), prefix, names[i]);
        redisAppendCommand(c, "EXISTS %s", key);
    }
    for (size_t i = 0; i < k; i++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK || !v)
            goto done; /* the connection is unusable now */
        redisReply *e = v;
        if (e->type == REDIS_REPLY_INTEGER && e->integer == 0) {
            gone[i] = 1;
            total += strlen(names[i]) + 1;
        }
        freeReplyObject(e);
    }
    out = gw_malloc(total);
    if (!out)
        goto done;
    size_t len = 0;
    out[len++] = '\n';
    for (size_t i = 0; i < k; i++)
        if (gone[i]) {
            size_t l = strlen(names[i]);
            memcpy(out + len, names[i], l);
            len += l;
            out[len++] = '\n';
        }
    out[len] = '\0';
done:
    gw_free(names);
    gw_free(gone);
    freeReplyObject(r);
    return out;
}

/* Is <addr> in a "\n"-framed list? */
static int in_list(const char *list, const char *addr)
{
    size_t n = strlen(addr);
    for (const char *p = list ? strstr(list, addr) : NULL; p; p = strstr(p + 1, addr))
        if (p > list && p[-1] == '\n' && p[n] == '\n')
            return 1;
    return 0;
}

/* Reads everything into <ld>. Returns 0, or -1 on a Redis error. */
static int load_all(struct gw_watcher *ctl, redisContext *c, struct load *ld)
{
    const char *prefix = ctl->cfg->redis_prefix;
    const struct gw_routes *prev = ctl->current;
    char key[512];

    gw_tunables_defaults(&ld->global);
    memcpy(ld->global.route_header, ctl->cfg->route_header, sizeof(ld->global.route_header));
    ld->global.set = 0;
    gw_key_conf(key, sizeof(key), prefix);
    redisReply *r = cmd(c, "HGETALL %s", key);
    if (!r)
        return -1;
    apply_conf(ctl, ld, key, r->type == REDIS_REPLY_ARRAY ? r : NULL, &ld->global,
               prev ? &prev->global : NULL);
    freeReplyObject(r);

    gw_key_pools(key, sizeof(key), prefix);
    redisReply *pools = cmd(c, "SMEMBERS %s", key);
    if (!pools)
        return -1;
    if (pools->type != REDIS_REPLY_ARRAY) {
        freeReplyObject(pools);
        return 0;
    }
    ld->pools = gw_calloc(pools->elements + 1, sizeof(*ld->pools));
    if (!ld->pools) {
        freeReplyObject(pools);
        return -1;
    }
    int rc = 0;
    for (size_t i = 0; i < pools->elements && rc == 0; i++) {
        const char *name = pools->element[i]->str;
        if (!name || !gw_pool_name_valid(name, pools->element[i]->len)) {
            reject(ctl, ld, key, "member", name ? name : "", "invalid pool name");
            continue;
        }
        struct lpool *lp = &ld->pools[ld->npools++];
        lp->name = gw_strdup(name);
        if (!lp->name) {
            rc = -1;
            break;
        }
        const struct gw_pool *pp = prev ? gw_routes_find_pool(prev, name, strlen(name)) : NULL;
        int lr = load_ring(ctl, c, ld, lp);
        if (lr < 0) {
            rc = -1;
            break;
        }
        if (lr > 0 && pp && pp->from_redis && keep_previous_ring(lp, pp) < 0) {
            rc = -1;
            break;
        }
        char ckey[512];
        gw_key_pool_conf(ckey, sizeof(ckey), prefix, name);
        redisReply *h = cmd(c, "HGETALL %s", ckey);
        if (!h) {
            rc = -1;
            break;
        }
        memset(&lp->own, 0, sizeof(lp->own));
        gw_tunables_defaults(&lp->own);
        lp->own.set = 0;
        apply_conf(ctl, ld, ckey, h->type == REDIS_REPLY_ARRAY ? h : NULL, &lp->own,
                   pp ? &pp->tun : NULL);
        freeReplyObject(h);
    }
    freeReplyObject(pools);
    if (rc < 0)
        return -1;

    /* Leases first: a replica whose lease is gone is passed over. */
    if (!(ld->gone = read_lease_gone(ctl, c)))
        return -1;

    /* Replica states, once per distinct address. */
    for (size_t i = 0; i < ld->npools; i++) {
        for (size_t j = 0; j < ld->pools[i].n; j++) {
            const char *addr = ld->pools[i].addrs[j];
            int seen = 0;
            for (size_t p = 0; p < i && !seen; p++)
                for (size_t q = 0; q < ld->pools[p].n && !seen; q++)
                    seen = !strcmp(ld->pools[p].addrs[q], addr);
            for (size_t q = 0; q < j && !seen; q++)
                seen = !strcmp(ld->pools[i].addrs[q], addr);
            if (seen)
                continue;
            gw_key_replica(key, sizeof(key), prefix, addr);
            redisReply *st = cmd(c, "HGET %s state", key);
            if (!st)
                return -1;
            int drain = 0;
            if (st->type == REDIS_REPLY_STRING) {
                if (!strcmp(st->str, "drain"))
                    drain = 1;
                else if (strcmp(st->str, "active") != 0) {
                    reject(ctl, ld, key, "state", st->str, "expected active or drain");
                    int pi = prev ? gw_routes_find_replica(prev, addr) : -1;
                    drain = pi >= 0 && prev->replicas[pi].drain;
                }
            }
            freeReplyObject(st);
            if (!drain && in_list(ld->gone, addr)) {
                drain = 1;
                ld->nexpired++;
            }
            if (drain) {
                char **nd = gw_realloc(ld->drained, (ld->ndrained + 1) * sizeof(char *));
                if (!nd)
                    return -1;
                ld->drained = nd;
                if (!(ld->drained[ld->ndrained] = gw_strdup(addr)))
                    return -1;
                ld->ndrained++;
            }
        }
    }
    return load_authdb(ctl, c, ld, prev ? prev->authdb : NULL);
}

static void publish(struct gw_watcher *ctl, struct gw_routes *rt)
{
    for (int i = 0; i < ctl->nworkers; i++)
        gw_worker_offer_routes(&ctl->workers[i], rt);
    gw_routes_unref(ctl->current);
    ctl->current = rt;
    atomic_store(&ctl->version, rt->version);
    atomic_fetch_add(&ctl->reloads, 1);
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    uint64_t at = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    atomic_store(&ctl->loaded_at_ms, (unsigned long long)at);
    char *gone = ctl->lease_gone ? gw_strdup(ctl->lease_gone) : NULL;
    pthread_mutex_lock(&ctl->applied_mu);
    /* A snapshot at the version in force (leases changed, the thread's
     * first load) is not a new version. */
    if (!ctl->napplied ||
        ctl->applied[(ctl->napplied - 1) % GW_WATCHER_HISTORY].version != rt->version) {
        ctl->applied[ctl->napplied % GW_WATCHER_HISTORY] =
            (struct gw_watcher_applied){.version = rt->version, .at_ms = at};
        ctl->napplied++;
    }
    gw_free(ctl->lease_gone_pub);
    ctl->lease_gone_pub = gone; /* NULL when out of memory: shown as no lease gone */
    pthread_mutex_unlock(&ctl->applied_mu);
}

size_t gw_watcher_history(struct gw_watcher *ctl, struct gw_watcher_applied *out, size_t max)
{
    pthread_mutex_lock(&ctl->applied_mu);
    size_t n = 0;
    for (uint64_t i = ctl->napplied; i > 0 && n < max && n < GW_WATCHER_HISTORY; i--)
        out[n++] = ctl->applied[(i - 1) % GW_WATCHER_HISTORY];
    pthread_mutex_unlock(&ctl->applied_mu);
    return n;
}

int gw_watcher_lease_gone(struct gw_watcher *ctl, const char *addr)
{
    pthread_mutex_lock(&ctl->applied_mu);
    int gone = in_list(ctl->lease_gone_pub, addr);
    pthread_mutex_unlock(&ctl->applied_mu);
    return gone;
}

/* Loads a snapshot at <version> and publishes it. Returns 0, or -1 on a
 * Redis error (the connection is to be dropped). */
static int reload(struct gw_watcher *ctl, redisContext *c, uint64_t version)
{
    struct load ld = {0};
    if (load_all(ctl, c, &ld) < 0) {
        load_free(&ld);
        return -1;
    }
    gw_free(ctl->lease_gone);
    ctl->lease_gone = ld.gone; /* the leases this load has seen */
    ld.gone = NULL;
    /* A Redis that lost its data (restarted without persistence, flushed)
     * reads as no pools at version 0: keep serving what was loaded before
     * rather than dropping every pool, until a writer sets it up again. */
    if (ld.npools == 0 && version == 0 && ctl->current && ctl->current->version > 0) {
        gw_log(GW_LOG_WARN, "redis_empty", "{s:I, s:s}", "version_in_force",
               (json_int_t)ctl->current->version, "serving", "last good snapshot");
        load_free(&ld);
        return 0;
    }
    /* Redis pools, then the --pool pools Redis does not define. */
    size_t nflags = ctl->flags ? ctl->flags->npools : 0;
    struct gw_pool_spec *specs = gw_calloc(ld.npools + nflags + 1, sizeof(*specs));
    if (!specs) {
        load_free(&ld);
        return 0;
    }
    size_t n = 0;
    for (size_t i = 0; i < ld.npools; i++) {
        specs[n].name = ld.pools[i].name;
        specs[n].addrs = (const char *const *)ld.pools[i].addrs;
        specs[n].weights = ld.pools[i].weights;
        specs[n].n = ld.pools[i].n;
        specs[n].tun = &ld.pools[i].own;
        specs[n].from_redis = 1;
        n++;
    }
    for (size_t i = 0; i < nflags; i++) {
        const struct gw_pool *fp = &ctl->flags->pools[i];
        int dup = 0;
        for (size_t j = 0; j < ld.npools && !dup; j++)
            dup = !strcmp(ld.pools[j].name, fp->name);
        if (dup)
            continue;
        specs[n].name = fp->name;
        specs[n].addrs = (const char *const *)fp->ring.replicas;
        specs[n].weights = fp->ring.weights;
        specs[n].n = fp->ring.nreplicas;
        n++;
    }
    char err[256];
    struct gw_routes *rt = gw_routes_build(specs, n, &ld.global, (const char *const *)ld.drained,
                                           ld.ndrained, version, err, sizeof(err));
    if (!rt) {
        atomic_fetch_add(&ctl->config_errors, 1);
        gw_log(GW_LOG_ERROR, "config_not_applied", "{s:I, s:s}", "version", (json_int_t)version,
               "error", err);
    } else {
        size_t nrep = rt->nreplicas, npools = rt->npools;
        size_t ntenants = gw_authdb_ntenants(ld.authdb), nkeys = gw_authdb_napikeys(ld.authdb);
        rt->authdb = ld.authdb; /* the snapshot owns it now */
        ld.authdb = NULL;
        publish(ctl, rt);
        gw_log(GW_LOG_INFO, "config_applied", "{s:I, s:i, s:i, s:i, s:i, s:i, s:i, s:i}", "version",
               (json_int_t)version, "pools", (int)npools, "replicas", (int)nrep, "drained",
               (int)(ld.ndrained - ld.nexpired), "lease_expired", (int)ld.nexpired, "tenants",
               (int)ntenants, "api_keys", (int)nkeys, "rejected_values", (int)ld.errors);
    }
    gw_free(specs);
    load_free(&ld);
    return 0;
}

/* infergw:version as a number (missing = 0). Returns 0, or -1 on error. */
static int read_version(struct gw_watcher *ctl, redisContext *c, uint64_t *out)
{
    char key[512];
    gw_key_version(key, sizeof(key), ctl->cfg->redis_prefix);
    redisReply *r = cmd(c, "GET %s", key);
    if (!r)
        return -1;
    uint64_t v = 0;
    if (r->type == REDIS_REPLY_STRING)
        v = strtoull(r->str, NULL, 10);
    freeReplyObject(r);
    *out = v;
    return 0;
}

/* Sentinel mode: still talking to the master? */
static int still_master(redisContext *c)
{
    redisReply *r = cmd(c, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str &&
             !strcmp(r->element[0]->str, "master");
    if (r)
        freeReplyObject(r);
    return ok;
}

/* Writes this gateway's view of every replica of its snapshot to the HASH
 * <prefix>gateway:<id>, at most every GW_CTRL_REPORT_MS, replaced in one
 * MULTI/EXEC and expiring after 3 periods. A field's value is words
 * separated by spaces: the active health state (healthy, unhealthy,
 * not_serving, unknown), then any of ejected, down, drain, lease_gone.
 * With a health record, a field "@avail:<replica>" holds its availability:
 * "failures=N recoveries=N mtbf_s=X mttr_s=X availability=X" (see
 * struct gw_health_avail_stats). Returns 0, or -1 on a Redis error. */
static int report_health(struct gw_watcher *ctl, redisContext *c)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    uint64_t now_ms = (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
    if (now_ms < ctl->report_due_ms || !ctl->current)
        return 0;
    ctl->report_due_ms = now_ms + GW_CTRL_REPORT_MS;
    const struct gw_routes *rt = ctl->current;
    char key[800];
    gw_key_gateway(key, sizeof(key), ctl->cfg->redis_prefix, ctl->gateway_id);
    uint64_t now = gw_now_ns();
    size_t navail = 0;
    redisAppendCommand(c, "MULTI");
    redisAppendCommand(c, "DEL %s", key);
    for (size_t i = 0; i < rt->nreplicas; i++) {
        const struct gw_replica *r = &rt->replicas[i];
        struct gw_health *h = ctl->health ? gw_health_find(ctl->health, r->addr) : NULL;
        int gone = in_list(ctl->lease_gone, r->addr);
        char v[96];
        snprintf(v, sizeof(v), "%s%s%s%s%s",
                 gw_health_state_name(h ? atomic_load(&h->state) : GW_HEALTH_UNKNOWN),
                 h && gw_health_ejected(h, now) ? " ejected" : "",
                 h && atomic_load(&h->connect_failures) ? " down" : "",
                 r->drain && !gone ? " drain" : "", gone ? " lease_gone" : "");
        redisAppendCommand(c, "HSET %s %s %s", key, r->addr, v);
        if (h) {
            struct gw_health_avail_stats st;
            char f[320], a[160];
            gw_health_avail_sync(h, now, &st);
            snprintf(f, sizeof(f), "@avail:%s", r->addr);
            snprintf(a, sizeof(a),
                     "failures=%u recoveries=%u mtbf_s=%.3f mttr_s=%.3f availability=%.6f",
                     st.failures, st.recoveries, st.mtbf_s, st.mttr_s, st.availability);
            redisAppendCommand(c, "HSET %s %s %s", key, f, a);
            navail++;
        }
    }
    redisAppendCommand(c, "HSET %s %s %llu", key, "@version", (unsigned long long)rt->version);
    redisAppendCommand(c, "PEXPIRE %s %d", key, 3 * GW_CTRL_REPORT_MS);
    redisAppendCommand(c, "EXEC");
    size_t replies = rt->nreplicas + navail + 5;
    int rc = 0;
    for (size_t i = 0; i < replies; i++) {
        void *v = NULL;
        if (redisGetReply(c, &v) != REDIS_OK || !v)
            return -1;
        if (((redisReply *)v)->type == REDIS_REPLY_ERROR && rc == 0) {
            gw_log(GW_LOG_WARN, "redis_error", "{s:s}", "error", ((redisReply *)v)->str);
            rc = -1;
        }
        freeReplyObject(v);
    }
    return rc;
}

/* Sleeps up to <ms> unless asked to stop. Returns 1 when stopping. */
static int ctrl_wait(struct gw_watcher *ctl, int ms)
{
    struct pollfd p = {.fd = ctl->stopfd, .events = POLLIN};
    poll(&p, 1, ms);
    return atomic_load(&ctl->stop);
}

static void *ctrl_main(void *arg)
{
    struct gw_watcher *ctl = arg;
    const struct gw_config *cfg = ctl->cfg;
    redisContext *c = NULL, *sub = NULL;
    int backoff = BACKOFF_MIN_MS, logged_down = 0, need_load = 1;
    uint64_t loaded = atomic_load(&ctl->version);
    char channel[512];
    gw_key_changed(channel, sizeof(channel), cfg->redis_prefix);

    while (!atomic_load(&ctl->stop)) {
        if (!c) {
            char err[256], addr[300] = "";
            c = gw_redis_connect(&ctl->url, (int)cfg->redis_timeout_ms, addr, sizeof(addr), err,
                                 sizeof(err));
            if (c)
                sub = gw_redis_connect(&ctl->url, (int)cfg->redis_timeout_ms, NULL, 0, err,
                                       sizeof(err));
            redisReply *r = sub ? cmd(sub, "SUBSCRIBE %s", channel) : NULL;
            if (!r) {
                if (c)
                    redisFree(c);
                if (sub)
                    redisFree(sub);
                c = sub = NULL;
                if (!logged_down) {
                    logged_down = 1;
                    gw_log(GW_LOG_WARN, "redis_unreachable", "{s:s, s:s}", "error", err, "serving",
                           "last good snapshot");
                }
                atomic_store(&ctl->redis_up, 0);
                if (ctrl_wait(ctl, backoff))
                    break;
                /* Capped at the poll period: a Redis that comes back is
                 * noticed as fast as a change would be. */
                int cap = (int)cfg->redis_poll_ms;
                backoff = backoff * 2 > cap ? cap : backoff * 2;
                continue;
            }
            freeReplyObject(r);
            atomic_store(&ctl->redis_up, 1);
            gw_log(GW_LOG_INFO, "redis_connected", "{s:s}", "addr", addr);
            logged_down = 0;
            backoff = BACKOFF_MIN_MS;
            need_load = 1;
        }
        uint64_t v;
        int ok = read_version(ctl, c, &v) == 0;
        if (ok && ctl->url.sentinel && !still_master(c)) {
            gw_log(GW_LOG_WARN, "redis_not_master", "{s:s}", "action", "reconnecting");
            ok = 0;
        }
        if (ok && (need_load || v != loaded)) {
            ok = reload(ctl, c, v) == 0;
            if (ok) {
                loaded = v;
                need_load = 0;
            }
        } else if (ok) {
            /* No version change: a lease may still have expired (or come
             * back), which no writer announces. */
            char *gone = read_lease_gone(ctl, c);
            if (!gone) {
                ok = 0;
            } else if (!ctl->lease_gone || strcmp(gone, ctl->lease_gone) != 0) {
                gw_log(GW_LOG_INFO, "leases_changed", "{s:s}", "gone", gone);
                ok = reload(ctl, c, v) == 0;
            }
            gw_free(gone);
        }
        if (ok)
            ok = report_health(ctl, c) == 0;
        if (ok) {
            /* Wait for a change message, the next poll, or stop. */
            struct pollfd p[2] = {{.fd = sub->fd, .events = POLLIN},
                                  {.fd = ctl->stopfd, .events = POLLIN}};
            int pr = poll(p, 2, (int)cfg->redis_poll_ms);
            if (atomic_load(&ctl->stop))
                break;
            if (pr > 0 && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
                if (redisBufferRead(sub) != REDIS_OK) {
                    ok = 0;
                } else {
                    void *reply;
                    while (redisGetReplyFromReader(sub, &reply) == REDIS_OK && reply) {
                        freeReplyObject(reply);
                        need_load = 1; /* a writer published: load now */
                    }
                }
            }
        }
        if (!ok) {
            gw_log(GW_LOG_WARN, "redis_unreachable", "{s:s, s:s}", "error",
                   c->errstr[0] ? c->errstr : (sub && sub->errstr[0] ? sub->errstr : "lost"),
                   "serving", "last good snapshot");
            logged_down = 1;
            atomic_store(&ctl->redis_up, 0);
            redisFree(c);
            redisFree(sub);
            c = sub = NULL;
            if (ctrl_wait(ctl, backoff))
                break;
        }
    }
    if (c)
        redisFree(c);
    if (sub)
        redisFree(sub);
    return NULL;
}

int gw_watcher_init(struct gw_watcher *ctl, const struct gw_config *cfg, struct gw_routes *flags,
                    char *err, size_t errlen)
{
    memset(ctl, 0, sizeof(*ctl));
    pthread_mutex_init(&ctl->applied_mu, NULL);
    ctl->cfg = cfg;
    ctl->stopfd = -1;
    if (gw_redis_url_parse(cfg->redis_url, &ctl->url, err, errlen) < 0)
        return -1;
    ctl->stopfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
    if (ctl->stopfd < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(errno));
        return -1;
    }
    if (cfg->gateway_id[0]) {
        snprintf(ctl->gateway_id, sizeof(ctl->gateway_id), "%s", cfg->gateway_id);
    } else {
        char host[256] = "gateway", lhost[256];
        uint16_t port = 0;
        if (gethostname(host, sizeof(host) - 1) != 0)
            snprintf(host, sizeof(host), "gateway");
        host[sizeof(host) - 1] = '\0';
        if (gw_hostport_split(cfg->listen, lhost, sizeof(lhost), &port) < 0)
            port = 0;
        snprintf(ctl->gateway_id, sizeof(ctl->gateway_id), "%s:%u", host, (unsigned)port);
    }
    gw_routes_ref(flags);
    ctl->flags = flags;
    gw_routes_ref(flags);
    ctl->current = flags;
    return 0;
}

struct gw_routes *gw_watcher_initial(struct gw_watcher *ctl)
{
    char err[256], addr[300] = "";
    redisContext *c = gw_redis_connect(&ctl->url, (int)ctl->cfg->redis_timeout_ms, addr,
                                       sizeof(addr), err, sizeof(err));
    uint64_t v;
    if (!c) {
        gw_log(GW_LOG_WARN, "redis_unreachable", "{s:s, s:s}", "error", err, "serving",
               "--pool flags until Redis answers");
    } else if (read_version(ctl, c, &v) == 0 && reload(ctl, c, v) == 0) {
        atomic_store(&ctl->redis_up, 1);
    }
    if (c)
        redisFree(c);
    gw_routes_ref(ctl->current);
    return ctl->current;
}

int gw_watcher_start(struct gw_watcher *ctl, struct gw_worker *workers, int nworkers)
{
    ctl->workers = workers;
    ctl->nworkers = nworkers;
    int rc = pthread_create(&ctl->thread, NULL, ctrl_main, ctl);
    if (rc == 0)
        ctl->started = 1;
    return rc;
}

void gw_watcher_stop(struct gw_watcher *ctl)
{
    if (ctl->started) {
        atomic_store(&ctl->stop, 1);
        uint64_t one = 1;
        ssize_t w = write(ctl->stopfd, &one, sizeof(one));
        (void)w;
        pthread_join(ctl->thread, NULL);
        ctl->started = 0;
    }
    if (ctl->stopfd >= 0)
        close(ctl->stopfd);
    ctl->stopfd = -1;
    gw_routes_unref(ctl->current);
    gw_routes_unref(ctl->flags);
    ctl->current = ctl->flags = NULL;
    gw_free(ctl->lease_gone);
    ctl->lease_gone = NULL;
    gw_free(ctl->lease_gone_pub);
    ctl->lease_gone_pub = NULL;
    pthread_mutex_destroy(&ctl->applied_mu);
}
