/* SPDX-License-Identifier: Apache-2.0 */
/* loader — reads the control plane's keys from Redis into one load; see
 * loader.h.
 *
 * Everything here runs on the watcher's thread with blocking hiredis calls
 * (bounded by the Redis timeout). Loading is a plain sequence of reads: a
 * write that lands in the middle bumps infergw:version, so the watcher's
 * next poll notices and loads again.
 */
#include "control/loader.h"

#include <errno.h>
#include <netdb.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authdb.h"
#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/names.h"
#include "control/keys.h"
#include "route/ring.h"

static void reject(struct gw_load *ld, const char *key, const char *field, const char *value,
                   const char *reason)
{
    ld->errors++;
    atomic_fetch_add(ld->config_errors, 1);
    gw_log(GW_LOG_WARN, "config_rejected", "{s:s, s:s, s:s, s:s}", "key", key, "field", field,
           "value", value, "reason", reason);
}

void gw_loader_free(struct gw_load *ld)
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
redisReply *gw_loader_cmd(redisContext *c, const char *fmt, ...)
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
static void apply_conf(struct gw_load *ld, const char *key, redisReply *h, struct gw_tunables *t,
                       const struct gw_tunables *prev)
{
    for (size_t i = 0; h && i + 1 < h->elements; i += 2) {
        const char *field = h->element[i]->str, *value = h->element[i + 1]->str;
        if (!field || !value)
            continue;
        char err[256];
        int rc = gw_tunables_set(t, field, value, err, sizeof(err));
        if (rc == 0)
            continue;
        reject(ld, key, field, value, err);
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
static int load_ring(redisContext *c, struct gw_load *ld, struct gw_load_pool *lp)
{
    const char *prefix = ld->cfg->redis_prefix;
    char key[512];
    gw_key_pool_ring(key, sizeof(key), prefix, lp->name);
    redisReply *r = gw_loader_cmd(c, "ZRANGE %s 0 -1 WITHSCORES", key);
    if (!r)
        return -1;
    int bad = 0;
    if (r->type != REDIS_REPLY_ARRAY) {
        reject(ld, key, "", "", "not a sorted set");
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
        if (!hash || hash == member || !hash[1] || *end || errno || vnode >= GW_RING_MAX_VNODES ||
            hash[1] < '0' || hash[1] > '9' || (hash[1] == '0' && hash[2])) {
            reject(ld, key, member, score, "member is not <host:port>#<vnode 0..9999>");
            bad = 1;
            continue;
        }
        char addr[300], host[256];
        uint16_t port;
        size_t alen = (size_t)(hash - member);
        if (alen >= sizeof(addr)) {
            reject(ld, key, member, score, "address too long");
            bad = 1;
            continue;
        }
        memcpy(addr, member, alen);
        addr[alen] = '\0';
        if (gw_hostport_split(addr, host, sizeof(host), &port) < 0) {
            reject(ld, key, member, score, "address is not host:port");
            bad = 1;
            continue;
        }
        errno = 0;
        unsigned long long tok = strtoull(score, &end, 10);
        if (*end || errno || score[0] == '-' || tok > UINT32_MAX ||
            tok != gw_hash32(member, strlen(member))) {
            reject(ld, key, member, score,
                   "score is not the member's token (first 4 bytes of SHA-256, big-endian)");
            bad = 1;
            continue;
        }
        size_t k = 0;
        while (k < lp->n && strcmp(lp->addrs[k], addr) != 0)
            k++;
        if (k == lp->n) {
            if (!resolvable(addr)) {
                reject(ld, key, member, score, "replica host does not resolve");
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
            reject(ld, key, lp->addrs[k], v, "vnode indexes are not 0..weight-1");
            bad = 1;
        }
    gw_free(maxidx);
    freeReplyObject(r);
    return bad;
}

/* Replaces <lp>'s replicas with the ring <prev> had (the last good one). */
static int keep_previous_ring(struct gw_load_pool *lp, const struct gw_pool *prev)
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

typedef void (*record_fn)(struct gw_load *ld, const char *key, const char *suffix,
                          const redisReply *hash, const struct gw_authdb *prev);

/* SCANs (never KEYS: it would block Redis on a large keyspace) every key
 * of family <kind> (keys.h) and hands each one's HGETALL to <fn>, a SCAN batch at a
 * time with the HGETALLs pipelined. A key that is not a hash is rejected.
 * Returns 0, or -1 on a Redis error. */
static int scan_records(redisContext *c, struct gw_load *ld, enum gw_key_family kind, record_fn fn,
                        const struct gw_authdb *prev)
{
    const char *prefix = ld->cfg->redis_prefix;
    char pattern[600];
    if (gw_key_scan(pattern, sizeof(pattern), prefix, kind, "") < 0)
        return -1;
    char cursor[32] = "0";
    do {
        redisReply *r = gw_loader_cmd(c, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
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
                    fn(ld, key, name, h->elements ? h : NULL, prev);
                else
                    fn(ld, key, name, h, prev);
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
static void tenant_record(struct gw_load *ld, const char *key, const char *name,
                          const redisReply *h, const struct gw_authdb *prev)
{
    if (!h)
        return; /* deleted between SCAN and HGETALL */
    const struct gw_tenant *last = gw_authdb_tenant(prev, name);
    const char *bad = "", *value = "";
    char err[256];
    int rc;
    if (h->type != REDIS_REPLY_ARRAY) {
        reject(ld, key, "", "", "not a hash");
        rc = GW_AUTHDB_EINVAL;
    } else {
        rc = gw_authdb_add_tenant(ld->authdb, name, hash_field(h, "models"), hash_field(h, "rps"),
                                  hash_field(h, "burst"), &bad, err, sizeof(err));
        if (rc == GW_AUTHDB_EINVAL) {
            value = !strcmp(bad, "name") ? name : hash_field(h, bad);
            reject(ld, key, bad, value ? value : "", err);
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
static void apikey_record(struct gw_load *ld, const char *key, const char *hex, const redisReply *h,
                          const struct gw_authdb *prev)
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
        reject(ld, shown, "", len,
               "the key name does not end in a SHA-256 (64 lowercase hex digits)");
        return;
    }
    const char *tenant = NULL, *exp = NULL;
    int64_t expires_at = 0;
    int bad = 1;
    char err[256];
    if (h->type != REDIS_REPLY_ARRAY) {
        reject(ld, key, "", "", "not a hash");
    } else if (!(tenant = hash_field(h, "tenant"))) {
        reject(ld, key, "tenant", "", "missing");
    } else if ((exp = hash_field(h, "expires_at")) &&
               gw_apikey_parse_expires(exp, &expires_at, err, sizeof(err)) < 0) {
        reject(ld, key, "expires_at", exp, err);
    } else {
        int rc = gw_authdb_add_apikey(ld->authdb, hash, tenant, expires_at);
        if (rc == GW_AUTHDB_ENOENT)
            reject(ld, key, "tenant", tenant, "no such tenant (or its record is invalid)");
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
static int load_authdb(redisContext *c, struct gw_load *ld, const struct gw_authdb *prev)
{
    ld->authdb = gw_authdb_new();
    if (!ld->authdb)
        return -1;
    if (scan_records(c, ld, GW_KEY_TENANT, tenant_record, prev) < 0 ||
        scan_records(c, ld, GW_KEY_APIKEY, apikey_record, prev) < 0)
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
char *gw_loader_lease_gone(redisContext *c, const char *prefix)
{
    char key[512];
    gw_key_leased(key, sizeof(key), prefix);
    redisReply *r = gw_loader_cmd(c, "SMEMBERS %s", key);
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
int gw_loader_in_list(const char *list, const char *addr)
{
    size_t n = strlen(addr);
    for (const char *p = list ? strstr(list, addr) : NULL; p; p = strstr(p + 1, addr))
        if (p > list && p[-1] == '\n' && p[n] == '\n')
            return 1;
    return 0;
}

/* Reads everything into <ld>. Returns 0, or -1 on a Redis error. */
int gw_loader_run(redisContext *c, struct gw_load *ld)
{
    const char *prefix = ld->cfg->redis_prefix;
    const struct gw_routes *prev = ld->prev;
    char key[512];

    gw_tunables_defaults(&ld->global);
    memcpy(ld->global.route_header, ld->cfg->route_header, sizeof(ld->global.route_header));
    gw_tunables_default_resume(&ld->global, ld->cfg->stream_resume);
    ld->global.set = 0;
    gw_key_conf(key, sizeof(key), prefix);
    redisReply *r = gw_loader_cmd(c, "HGETALL %s", key);
    if (!r)
        return -1;
    apply_conf(ld, key, r->type == REDIS_REPLY_ARRAY ? r : NULL, &ld->global,
               prev ? &prev->global : NULL);
    freeReplyObject(r);

    gw_key_pools(key, sizeof(key), prefix);
    redisReply *pools = gw_loader_cmd(c, "SMEMBERS %s", key);
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
            reject(ld, key, "member", name ? name : "", "invalid pool name");
            continue;
        }
        struct gw_load_pool *lp = &ld->pools[ld->npools++];
        lp->name = gw_strdup(name);
        if (!lp->name) {
            rc = -1;
            break;
        }
        const struct gw_pool *pp = prev ? gw_routes_find_pool(prev, name, strlen(name)) : NULL;
        int lr = load_ring(c, ld, lp);
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
        redisReply *h = gw_loader_cmd(c, "HGETALL %s", ckey);
        if (!h) {
            rc = -1;
            break;
        }
        memset(&lp->own, 0, sizeof(lp->own));
        gw_tunables_defaults(&lp->own);
        lp->own.set = 0;
        apply_conf(ld, ckey, h->type == REDIS_REPLY_ARRAY ? h : NULL, &lp->own,
                   pp ? &pp->tun : NULL);
        freeReplyObject(h);
    }
    freeReplyObject(pools);
    if (rc < 0)
        return -1;

    /* Leases first: a replica whose lease is gone is passed over. */
    if (!(ld->gone = gw_loader_lease_gone(c, prefix)))
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
            redisReply *st = gw_loader_cmd(c, "HGET %s state", key);
            if (!st)
                return -1;
            int drain = 0;
            if (st->type == REDIS_REPLY_STRING) {
                if (!strcmp(st->str, "drain"))
                    drain = 1;
                else if (strcmp(st->str, "active") != 0) {
                    reject(ld, key, "state", st->str, "expected active or drain");
                    int pi = prev ? gw_routes_find_replica(prev, addr) : -1;
                    drain = pi >= 0 && prev->replicas[pi].drain;
                }
            }
            freeReplyObject(st);
            if (!drain && gw_loader_in_list(ld->gone, addr)) {
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
    return load_authdb(c, ld, prev ? prev->authdb : NULL);
}
