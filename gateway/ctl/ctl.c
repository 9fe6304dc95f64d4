/* infergw-ctl — the operator CLI: edits the pools, rings, tunables and
 * replica states that the gateways load from Redis (key layout in
 * docs/redis-keys.md), and shows what the gateways will make of them.
 *
 * Every write is one Lua script run with EVAL: it checks what must exist
 * (the pool, the replica, the tenant), bumps <prefix>version and changes the keys, all
 * atomically, so a gateway never loads half a change and two operators
 * never interleave. INCR comes right after the checks and before any other
 * write: Redis does not roll a script back, and INCR is the only write that
 * can fail on a value (a version that is not a number), so failing there
 * leaves everything untouched. After the script the new version is
 * PUBLISHed on <prefix>changed; if that message is lost the gateways still
 * see the version change at their next poll. Ring members are computed here
 * (ring.h's gw_hash32) and passed to the script; the script finds the
 * members a replica already has by their "<host:port>#" prefix, which no
 * other replica's members share because '#' cannot occur in an address.
 *
 * Argument checks, ring and conf computations and output formats live in
 * ctlargs.c and ctlview.c (pure, unit-tested); this file only talks to
 * Redis.
 */
#include <errno.h>
#include <jansson.h>
#include <netdb.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <poll.h>
#include <signal.h>
#include <stddef.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "auth/authdb.h"
#include "ctlargs.h"
#include "base/config.h"
#include "ctlview.h"
#include "base/mem.h"
#include "control/redisconn.h"
#include "route/ring.h"
#include "route/tunables.h"

#define KEYLEN 512 /* prefix <= 127, pool <= 255, replica <= 299 */

/* --- the scripts ----------------------------------------------------------------- */

/* KEYS: pools, version. ARGV: pool. */
static const char script_pool_add[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 1 then return {'exists'} end\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('SADD', KEYS[1], ARGV[1])\n"
    "return {'ok', v}\n";

/* KEYS: pools, ring, conf, version. ARGV: pool. */
static const char script_pool_remove[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'nopool'} end\n"
    "local v = redis.call('INCR', KEYS[4])\n"
    "redis.call('SREM', KEYS[1], ARGV[1])\n"
    "redis.call('DEL', KEYS[2], KEYS[3])\n"
    "return {'ok', v}\n";

/* KEYS: pools, ring, version. ARGV: pool, "<host:port>#", mode (add, weight,
 * remove), the most replicas a ring takes, then score/member pairs of the
 * replica's new vnodes. Returns {'ok', old vnode count, version} or a
 * refusal: nopool, noreplica, {'exists', count} (add), {'full', replicas}
 * (add), {'same', count} (weight: nothing to change). */
static const char script_replica_set[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'nopool'} end\n"
    "local old, have, addrs, n = {}, {}, {}, 0\n"
    "for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
    "  if string.sub(m, 1, #ARGV[2]) == ARGV[2] then old[#old + 1] = m; have[m] = true end\n"
    "  local a = string.match(m, '^(.*)#')\n"
    "  if a and not addrs[a] then addrs[a] = true; n = n + 1 end\n"
    "end\n"
    "if ARGV[3] == 'add' and #old > 0 then return {'exists', #old} end\n"
    "if ARGV[3] == 'add' and n >= tonumber(ARGV[4]) then return {'full', n} end\n"
    "if ARGV[3] ~= 'add' and #old == 0 then return {'noreplica'} end\n"
    "if ARGV[3] == 'weight' and #old * 2 == #ARGV - 4 then\n"
    "  local same = true\n"
    "  for i = 6, #ARGV, 2 do if not have[ARGV[i]] then same = false; break end end\n"
    "  if same then return {'same', #old} end\n"
    "end\n"
    "local v = redis.call('INCR', KEYS[3])\n"
    "for i = 1, #old, 1000 do\n"
    "  redis.call('ZREM', KEYS[2], unpack(old, i, math.min(i + 999, #old)))\n"
    "end\n"
    "for i = 5, #ARGV, 1000 do\n"
    "  redis.call('ZADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))\n"
    "end\n"
    "return {'ok', #old, v}\n";

/* KEYS: pools, replica hash, version. ARGV: prefix, "<host:port>#0", state.
 * The replica must be on some pool's ring (every replica has vnode #0), or
 * have a state already (so a replica removed from every pool can still be
 * undrained). */
static const char script_state[] =
    "local found = redis.call('EXISTS', KEYS[2]) == 1\n"
    "if not found then\n"
    "  for _, p in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "    if redis.call('ZSCORE', ARGV[1] .. 'pool:' .. p .. ':ring', ARGV[2]) then\n"
    "      found = true; break\n"
    "    end\n"
    "  end\n"
    "end\n"
    "if not found then return {'noreplica'} end\n"
    "if (redis.call('HGET', KEYS[2], 'state') or 'active') == ARGV[3] then return {'same'} end\n"
    "local v = redis.call('INCR', KEYS[3])\n"
    "redis.call('HSET', KEYS[2], 'state', ARGV[3])\n"
    "return {'ok', v}\n";

/* KEYS: pools, conf hash, version. ARGV: pool ('' = global), field, value. */
static const char script_conf_set[] =
    "if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then\n"
    "  return {'nopool'}\n"
    "end\n"
    "if redis.call('HGET', KEYS[2], ARGV[2]) == ARGV[3] then return {'same'} end\n"
    "local v = redis.call('INCR', KEYS[3])\n"
    "redis.call('HSET', KEYS[2], ARGV[2], ARGV[3])\n"
    "return {'ok', v}\n";

/* KEYS: pools, conf hash, version. ARGV: pool ('' = global), field. */
static const char script_conf_unset[] =
    "if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then\n"
    "  return {'nopool'}\n"
    "end\n"
    "if redis.call('HEXISTS', KEYS[2], ARGV[2]) == 0 then return {'notset'} end\n"
    "local v = redis.call('INCR', KEYS[3])\n"
    "redis.call('HDEL', KEYS[2], ARGV[2])\n"
    "return {'ok', v}\n";

/* Reads, in one atomic step. KEYS: pools, ring. ARGV: pool. */
static const char script_read_ring[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {0} end\n"
    "return {1, redis.call('ZRANGE', KEYS[2], 0, -1, 'WITHSCORES')}\n";

/* KEYS: pools, global conf, pool conf. ARGV: pool ('' = global only). */
static const char script_read_conf[] =
    "if ARGV[1] ~= '' and redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {0} end\n"
    "local p = {}\n"
    "if ARGV[1] ~= '' then p = redis.call('HGETALL', KEYS[3]) end\n"
    "return {1, redis.call('HGETALL', KEYS[2]), p}\n";

/* KEYS: tenant hash, version. ARGV: models, rps, burst ('' = keep the
 * current value, or 0 for a new tenant). Returns {'same'} or {'ok', version,
 * created (0/1), rps, burst}. */
static const char script_tenant_add[] =
    "local new = redis.call('EXISTS', KEYS[1]) == 0\n"
    "local rps, burst = ARGV[2], ARGV[3]\n"
    "if rps == '' then rps = (not new and redis.call('HGET', KEYS[1], 'rps')) or '0' end\n"
    "if burst == '' then burst = (not new and redis.call('HGET', KEYS[1], 'burst')) or '0' end\n"
    "if not new and redis.call('HGET', KEYS[1], 'models') == ARGV[1]\n"
    "   and redis.call('HGET', KEYS[1], 'rps') == rps\n"
    "   and redis.call('HGET', KEYS[1], 'burst') == burst then\n"
    "  return {'same', 0, 0, rps, burst}\n"
    "end\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('HSET', KEYS[1], 'models', ARGV[1], 'rps', rps, 'burst', burst)\n"
    "return {'ok', v, new and 1 or 0, rps, burst}\n";

/* KEYS: tenant hash, version, then API-key hashes to revoke with it.
 * ARGV: tenant. A key is deleted only if it still names the tenant.
 * Returns {'notenant'} or {'ok', version, keys revoked}. */
static const char script_tenant_remove[] =
    "local gone = {}\n"
    "for i = 3, #KEYS do\n"
    "  if redis.call('HGET', KEYS[i], 'tenant') == ARGV[1] then gone[#gone + 1] = KEYS[i] end\n"
    "end\n"
    "if redis.call('EXISTS', KEYS[1]) == 0 and #gone == 0 then return {'notenant'} end\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('DEL', KEYS[1])\n"
    "for _, k in ipairs(gone) do redis.call('DEL', k) end\n"
    "return {'ok', v, #gone}\n";

/* KEYS: tenant hash, API-key hash, version. ARGV: tenant, expires_at ('' =
 * never). Returns {'notenant'}, {'exists'} or {'ok', version}. */
static const char script_key_create[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {'notenant'} end\n"
    "if redis.call('EXISTS', KEYS[2]) == 1 then return {'exists'} end\n"
    "local v = redis.call('INCR', KEYS[3])\n"
    "if ARGV[2] == '' then\n"
    "  redis.call('HSET', KEYS[2], 'tenant', ARGV[1])\n"
    "else\n"
    "  redis.call('HSET', KEYS[2], 'tenant', ARGV[1], 'expires_at', ARGV[2])\n"
    "end\n"
    "return {'ok', v}\n";

/* KEYS: API-key hash, version. Returns {'nokey'} or {'ok', version, tenant}. */
static const char script_key_revoke[] =
    "if redis.call('EXISTS', KEYS[1]) == 0 then return {'nokey'} end\n"
    "local t = redis.call('HGET', KEYS[1], 'tenant') or ''\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "redis.call('DEL', KEYS[1])\n"
    "return {'ok', v, t}\n";

/* --- plumbing ------------------------------------------------------------------------ */

struct ctl {
    const struct ctl_args *a;
    const struct gw_redis_url *url;
    redisContext *c;
};

static int say(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Prints "infergw-ctl: <message>" on stderr; returns <code>. */
static int say(int code, const char *fmt, ...)
{
    va_list ap;

    fputs("infergw-ctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

/* Checks a reply: NULL (I/O error) and error replies are reported. */
static redisReply *checked(struct ctl *x, redisReply *r)
{
    if (!r) {
        say(CTL_EXIT_REDIS, "redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        say(CTL_EXIT_REDIS, "redis answered: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static redisReply *cmd(struct ctl *x, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(x->c, fmt, ap);
    va_end(ap);
    return checked(x, r);
}

/* Builds "<prefix><rest>". The operands are length-checked, so it fits. */
#define KEY(buf, ...) gw_redis_key(buf, sizeof(buf), x->a->prefix, __VA_ARGS__)

/* Arguments of one EVAL, copied. */
struct evalargs {
    char **v;
    size_t *len;
    size_t n, cap;
    int oom;
};

static void ea_push(struct evalargs *e, const char *s, size_t len)
{
    if (e->oom)
        return;
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 16;
        char **v = gw_realloc(e->v, cap * sizeof(*v));
        size_t *l = v ? gw_realloc(e->len, cap * sizeof(*l)) : NULL;

        if (v)
            e->v = v;
        if (!v || !l) {
            e->oom = 1;
            return;
        }
        e->len = l;
        e->cap = cap;
    }
    e->v[e->n] = gw_strndup(s, len);
    if (!e->v[e->n]) {
        e->oom = 1;
        return;
    }
    e->len[e->n++] = len;
}

static void ea_str(struct evalargs *e, const char *s)
{
    ea_push(e, s, strlen(s));
}

static void ea_free(struct evalargs *e)
{
    for (size_t i = 0; i < e->n; i++)
        gw_free(e->v[i]);
    gw_free(e->v);
    gw_free(e->len);
}

/* Starts "EVAL <script> <nkeys>". */
static void ea_eval(struct evalargs *e, const char *script, int nkeys)
{
    char n[16];

    memset(e, 0, sizeof(*e));
    ea_str(e, "EVAL");
    ea_str(e, script);
    snprintf(n, sizeof(n), "%d", nkeys);
    ea_str(e, n);
}

/* Runs the EVAL and frees <e>. Returns an array reply whose first element
 * is an integer or status text, or NULL (reported). */
static redisReply *ea_run(struct ctl *x, struct evalargs *e)
{
    redisReply *r = NULL;

    if (e->oom)
        say(CTL_EXIT_REDIS, "out of memory");
    else
        r = checked(x, redisCommandArgv(x->c, (int)e->n, (const char **)e->v, e->len));
    ea_free(e);
    if (r && (r->type != REDIS_REPLY_ARRAY || r->elements == 0)) {
        say(CTL_EXIT_REDIS, "unexpected script reply");
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

static int status_is(const redisReply *r, const char *s)
{
    const redisReply *e = r->element[0];

    return e->type == REDIS_REPLY_STRING && !strcmp(e->str, s);
}

/* Integer element <i> of a script reply (0 when absent). */
static long long int_at(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                                                                         : 0;
}

/* Announces version <v> after a write. */
static void publish(struct ctl *x, long long v)
{
    char ch[KEYLEN];
    redisReply *r;

    KEY(ch, "changed");
    r = redisCommand(x->c, "PUBLISH %s %lld", ch, v);
    if (!r || r->type == REDIS_REPLY_ERROR)
        say(0,
            "warning: written (version %lld) but PUBLISH failed (%s); gateways see the change "
            "at their next version poll",
            v, r ? r->str : x->c->errstr);
    if (r)
        freeReplyObject(r);
}

/* Reports the outcome of a write: <version> < 0 when nothing changed.
 * <extra> (may be NULL, taken) carries the command's fields for --json. */
static int report(struct ctl *x, long long version, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));

static int report(struct ctl *x, long long version, json_t *extra, const char *fmt, ...)
{
    va_list ap;

    if (version >= 0)
        publish(x, version);
    if (x->a->json) {
        json_t *o = extra ? extra : json_object();

        json_object_set_new(o, "changed", json_boolean(version >= 0));
        json_object_set_new(o, "version", version >= 0 ? json_integer(version) : json_null());
        ctl_view_print_json(stdout, o);
        return CTL_EXIT_OK;
    }
    json_decref(extra);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (version >= 0)
        printf(" (version %lld)", version);
    putchar('\n');
    return CTL_EXIT_OK;
}

static int no_pool(const char *pool)
{
    return say(CTL_EXIT_NOTFOUND, "pool %s does not exist; create it with: infergw-ctl pool add %s",
               pool, pool);
}

/* --- pools ---------------------------------------------------------------------------- */

static int pool_add(struct ctl *x)
{
    char pools[KEYLEN], ver[KEYLEN];
    struct evalargs e;
    redisReply *r;
    int rc;

    KEY(pools, "pools");
    KEY(ver, "version");
    ea_eval(&e, script_pool_add, 2);
    ea_str(&e, pools);
    ea_str(&e, ver);
    ea_str(&e, x->a->pool);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (status_is(r, "exists"))
        rc = report(x, -1, json_pack("{s:s}", "pool", x->a->pool), "pool %s already exists",
                    x->a->pool);
    else
        rc = report(x, int_at(r, 1), json_pack("{s:s}", "pool", x->a->pool), "pool %s added",
                    x->a->pool);
    freeReplyObject(r);
    return rc;
}

static int pool_remove(struct ctl *x)
{
    char pools[KEYLEN], ring[KEYLEN], conf[KEYLEN], ver[KEYLEN];
    struct evalargs e;
    redisReply *r;
    int rc;

    KEY(pools, "pools");
    KEY(ring, "pool:%s:ring", x->a->pool);
    KEY(conf, "pool:%s:conf", x->a->pool);
    KEY(ver, "version");
    ea_eval(&e, script_pool_remove, 4);
    ea_str(&e, pools);
    ea_str(&e, ring);
    ea_str(&e, conf);
    ea_str(&e, ver);
    ea_str(&e, x->a->pool);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (status_is(r, "nopool"))
        rc = say(CTL_EXIT_NOTFOUND, "pool %s does not exist", x->a->pool);
    else
        rc = report(x, int_at(r, 1), json_pack("{s:s}", "pool", x->a->pool),
                    "pool %s removed with its ring and conf", x->a->pool);
    freeReplyObject(r);
    return rc;
}

static int cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

static int pool_list(struct ctl *x)
{
    char pools[KEYLEN];
    redisReply *r;
    const char **names;

    KEY(pools, "pools");
    if (!(r = cmd(x, "SMEMBERS %s", pools)))
        return CTL_EXIT_REDIS;
    names = gw_calloc(r->elements + 1, sizeof(*names));
    if (!names) {
        freeReplyObject(r);
        return say(CTL_EXIT_REDIS, "out of memory");
    }
    for (size_t i = 0; i < r->elements; i++)
        names[i] = r->element[i]->str ? r->element[i]->str : "";
    qsort(names, r->elements, sizeof(*names), cmp_str);
    if (x->a->json) {
        json_t *arr = json_array();

        for (size_t i = 0; i < r->elements; i++)
            json_array_append_new(arr, json_string(names[i]));
        ctl_view_print_json(stdout, arr);
    } else {
        for (size_t i = 0; i < r->elements; i++)
            printf("%s\n", names[i]);
    }
    gw_free(names);
    freeReplyObject(r);
    return CTL_EXIT_OK;
}

/* Warns when <addr>'s host does not resolve here: a gateway that cannot
 * resolve it refuses the pool's whole new ring. Only a warning, since the
 * gateways' resolver may know names this machine does not. */
static void warn_unresolvable(const char *addr, const char *pool)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char host[256], port[8];
    uint16_t p;

    if (gw_config_split_addr(addr, host, sizeof(host), &p) < 0)
        return;
    snprintf(port, sizeof(port), "%u", p);
    if (getaddrinfo(host, port, &hints, &res) == 0 && res) {
        freeaddrinfo(res);
        return;
    }
    say(0,
        "warning: %s does not resolve here; gateways that cannot resolve it keep the last good "
        "ring of pool %s",
        host, pool);
}

/* --- replicas -------------------------------------------------------------------------- */

/* Pushes the ring ZADD arguments of <replica> with <weight> vnodes: score
 * (its token, gw_hash32 of the member), then member "<replica>#<i>". */
static void ea_ring_members(struct evalargs *e, const char *replica, uint32_t weight)
{
    char member[320], score[16];
    for (uint32_t i = 0; i < weight; i++) {
        int n = ctl_view_member(member, sizeof(member), replica, i);
        snprintf(score, sizeof(score), "%u", gw_hash32(member, (size_t)n));
        ea_str(e, score);
        ea_push(e, member, (size_t)n);
    }
}

enum set_mode { SET_ADD, SET_WEIGHT, SET_REMOVE };

static int replica_set(struct ctl *x, enum set_mode mode)
{
    static const char *const modes[] = {"add", "weight", "remove"};
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], ring[KEYLEN], ver[KEYLEN], prefix[320], num[32];
    struct evalargs e;
    redisReply *r;
    int rc;

    KEY(pools, "pools");
    KEY(ring, "pool:%s:ring", a->pool);
    KEY(ver, "version");
    snprintf(prefix, sizeof(prefix), "%s#", a->replica);
    ea_eval(&e, script_replica_set, 3);
    ea_str(&e, pools);
    ea_str(&e, ring);
    ea_str(&e, ver);
    ea_str(&e, a->pool);
    ea_str(&e, prefix);
    ea_str(&e, modes[mode]);
    snprintf(num, sizeof(num), "%d", GW_RING_MAX_REPLICAS);
    ea_str(&e, num);
    if (mode != SET_REMOVE)
        ea_ring_members(&e, a->replica, a->weight);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;

    long long old = int_at(r, 1);
    json_t *j = json_pack("{s:s, s:s}", "pool", a->pool, "replica", a->replica);

    if (status_is(r, "nopool")) {
        json_decref(j);
        rc = no_pool(a->pool);
    } else if (status_is(r, "noreplica")) {
        json_decref(j);
        rc = say(CTL_EXIT_NOTFOUND, "replica %s is not in pool %s", a->replica, a->pool);
    } else if (status_is(r, "exists") && old != a->weight) {
        json_decref(j);
        rc = say(CTL_EXIT_USAGE,
                 "replica %s is already in pool %s with %lld vnodes; change its weight with: "
                 "infergw-ctl replica weight %s %s %u",
                 a->replica, a->pool, old, a->pool, a->replica, a->weight);
    } else if (status_is(r, "full")) {
        json_decref(j);
        rc = say(CTL_EXIT_USAGE, "pool %s already has %lld replicas, the most a ring takes",
                 a->pool, old);
    } else if (status_is(r, "exists") || status_is(r, "same")) {
        json_object_set_new(j, "weight", json_integer(old));
        rc = report(x, -1, j, "replica %s is already in pool %s with %lld vnodes", a->replica,
                    a->pool, old);
    } else if (mode == SET_ADD) {
        warn_unresolvable(a->replica, a->pool);
        json_object_set_new(j, "weight", json_integer(a->weight));
        rc = report(x, int_at(r, 2), j, "replica %s added to pool %s with %u vnodes", a->replica,
                    a->pool, a->weight);
    } else if (mode == SET_WEIGHT) {
        json_object_set_new(j, "old_weight", json_integer(old));
        json_object_set_new(j, "weight", json_integer(a->weight));
        rc = report(x, int_at(r, 2), j, "replica %s in pool %s: %lld -> %u vnodes", a->replica,
                    a->pool, old, a->weight);
    } else {
        json_object_set_new(j, "old_weight", json_integer(old));
        rc = report(x, int_at(r, 2), j, "replica %s removed from pool %s (had %lld vnodes)",
                    a->replica, a->pool, old);
    }
    freeReplyObject(r);
    return rc;
}

static int replica_state(struct ctl *x, int drain)
{
    const char *state = drain ? "drain" : "active";
    char pools[KEYLEN], hash[KEYLEN], ver[KEYLEN], member0[320];
    struct evalargs e;
    redisReply *r;
    int rc;

    KEY(pools, "pools");
    KEY(hash, "replica:%s", x->a->replica);
    KEY(ver, "version");
    ctl_view_member(member0, sizeof(member0), x->a->replica, 0);
    ea_eval(&e, script_state, 3);
    ea_str(&e, pools);
    ea_str(&e, hash);
    ea_str(&e, ver);
    ea_str(&e, x->a->prefix);
    ea_str(&e, member0);
    ea_str(&e, state);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    json_t *j = json_pack("{s:s, s:s}", "replica", x->a->replica, "state", state);
    if (status_is(r, "noreplica")) {
        json_decref(j);
        rc = say(CTL_EXIT_NOTFOUND,
                 "replica %s is in no pool; add it with: infergw-ctl replica add <pool> %s",
                 x->a->replica, x->a->replica);
    } else if (status_is(r, "same")) {
        rc = report(x, -1, j, "replica %s is already %s", x->a->replica,
                    drain ? "draining" : "active");
    } else {
        rc = report(x, int_at(r, 1), j, "replica %s %s", x->a->replica,
                    drain ? "drained: no new calls; in-flight calls finish"
                          : "active: takes new calls again");
    }
    freeReplyObject(r);
    return rc;
}

/* A pool's ring as the gateways build it, with the replicas' states. */
struct pool_ring {
    struct ctl_ring_view view;
    struct gw_ring ring; /* zeroed when the pool has no replicas */
    int *drain;
    struct ctl_problems probs;
};

static void pool_ring_free(struct pool_ring *p)
{
    ctl_view_ring_free(&p->view);
    gw_ring_free(&p->ring);
    gw_free(p->drain);
}

static int load_states(struct ctl *x, struct pool_ring *p)
{
    char key[KEYLEN];

    p->drain = gw_calloc(p->view.n ? p->view.n : 1, sizeof(*p->drain));
    if (!p->drain)
        return say(CTL_EXIT_REDIS, "out of memory");
    for (size_t i = 0; i < p->view.n; i++) {
        KEY(key, "replica:%s", p->view.addrs[i]);
        redisAppendCommand(x->c, "HGET %s state", key);
    }
    for (size_t i = 0; i < p->view.n; i++) {
        void *v = NULL;
        redisReply *r;

        if (redisGetReply(x->c, &v) != REDIS_OK || !(r = checked(x, v)))
            return CTL_EXIT_REDIS;
        p->drain[i] = ctl_view_state(p->view.addrs[i],
                                     r->type == REDIS_REPLY_STRING ? r->str : NULL, &p->probs);
        freeReplyObject(r);
    }
    return CTL_EXIT_OK;
}

static int load_pool_ring(struct ctl *x, struct pool_ring *p)
{
    char pools[KEYLEN], ring[KEYLEN];
    struct evalargs e;
    redisReply *r, *z;
    const char **members = NULL, **scores = NULL;
    int rc = CTL_EXIT_REDIS;

    memset(p, 0, sizeof(*p));
    KEY(pools, "pools");
    KEY(ring, "pool:%s:ring", x->a->pool);
    ea_eval(&e, script_read_ring, 2);
    ea_str(&e, pools);
    ea_str(&e, ring);
    ea_str(&e, x->a->pool);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (int_at(r, 0) == 0) {
        freeReplyObject(r);
        return no_pool(x->a->pool);
    }
    z = r->element[1];
    size_t n = z->type == REDIS_REPLY_ARRAY ? z->elements / 2 : 0;
    members = gw_calloc(n + 1, sizeof(*members));
    scores = gw_calloc(n + 1, sizeof(*scores));
    if (!members || !scores) {
        say(CTL_EXIT_REDIS, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        members[i] = z->element[2 * i]->str;
        scores[i] = z->element[2 * i + 1]->str;
    }
    if (ctl_view_ring_parse(&p->view, members, scores, n, &p->probs) < 0) {
        say(CTL_EXIT_REDIS, "out of memory");
        goto out;
    }
    if (p->view.n) {
        int b =
            gw_ring_build(&p->ring, (const char *const *)p->view.addrs, p->view.weights, p->view.n);
        if (b < 0) {
            /* The replicas are valid and distinct: -EINVAL means too many. */
            say(CTL_EXIT_REDIS, "cannot build the ring of pool %s: %s", x->a->pool,
                b == -ENOMEM ? "out of memory" : "more replicas than a ring takes");
            goto out;
        }
    }
    rc = load_states(x, p);
out:
    gw_free(members);
    gw_free(scores);
    freeReplyObject(r);
    if (rc != CTL_EXIT_OK)
        pool_ring_free(p);
    return rc;
}

/* ring show, replica list, route. */
static int show_ring(struct ctl *x)
{
    struct pool_ring p;
    int rc = load_pool_ring(x, &p);

    if (rc != CTL_EXIT_OK)
        return rc;
    ctl_problems_print(&p.probs, stderr);
    if (p.probs.total)
        say(0, "warning: the gateways refuse invalid ring entries (see above); the view below "
               "leaves them out");
    if (x->a->cmd == CTL_RING_SHOW) {
        ctl_view_print_ring(stdout, x->a->json, x->a->pool, &p.ring, p.drain);
    } else if (x->a->cmd == CTL_REPLICA_LIST) {
        ctl_view_print_replicas(stdout, x->a->json, x->a->pool, &p.ring, p.drain);
    } else {
        uint32_t point;
        int first, second;

        ctl_view_route(&p.ring, p.drain, x->a->key, strlen(x->a->key), &point, &first, &second);
        ctl_view_print_route(stdout, x->a->json, x->a->pool, x->a->key, point, &p.ring, first,
                             second);
        if (first < 0)
            rc = say(CTL_EXIT_NOTFOUND, "pool %s has %s", x->a->pool,
                     p.view.n ? "no active replica (all drained)" : "no replicas");
    }
    pool_ring_free(&p);
    return rc;
}

/* --- tunables ---------------------------------------------------------------------------- */

static void conf_keys(struct ctl *x, char *pools, char *hash, char *ver)
{
    snprintf(pools, KEYLEN, "%spools", x->a->prefix);
    if (x->a->pool)
        snprintf(hash, KEYLEN, "%spool:%s:conf", x->a->prefix, x->a->pool);
    else
        snprintf(hash, KEYLEN, "%sconf", x->a->prefix);
    snprintf(ver, KEYLEN, "%sversion", x->a->prefix);
}

static int conf_write(struct ctl *x, int set)
{
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], hash[KEYLEN], ver[KEYLEN];
    struct evalargs e;
    redisReply *r;
    int rc;

    conf_keys(x, pools, hash, ver);
    ea_eval(&e, set ? script_conf_set : script_conf_unset, 3);
    ea_str(&e, pools);
    ea_str(&e, hash);
    ea_str(&e, ver);
    ea_str(&e, a->pool ? a->pool : "");
    ea_str(&e, a->field);
    if (set)
        ea_str(&e, a->value);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;

    json_t *j = json_pack("{s:s?, s:s, s:s?}", "pool", a->pool, "field", a->field, "value",
                          set ? a->value : NULL);
    char where[300];

    if (a->pool)
        snprintf(where, sizeof(where), "for pool %s", a->pool);
    else
        snprintf(where, sizeof(where), "globally");
    if (status_is(r, "nopool")) {
        json_decref(j);
        rc = no_pool(a->pool);
    } else if (status_is(r, "notset")) {
        json_decref(j);
        rc = say(CTL_EXIT_NOTFOUND, "%s is not set %s (in %s)", a->field, where, hash);
    } else if (status_is(r, "same")) {
        rc = report(x, -1, j, "%s is already %s %s", a->field, a->value, where);
    } else if (set) {
        rc = report(x, int_at(r, 1), j, "%s set to %s %s", a->field, a->value, where);
    } else {
        rc = report(x, int_at(r, 1), j, "%s unset %s", a->field, where);
    }
    freeReplyObject(r);
    return rc;
}

/* Field/value strings of an HGETALL reply; caller frees the array. */
static const char **pairs_of(const redisReply *h, size_t *n)
{
    size_t k = h && h->type == REDIS_REPLY_ARRAY ? h->elements / 2 : 0;
    const char **p = gw_calloc(2 * k + 1, sizeof(*p));

    *n = k;
    for (size_t i = 0; p && i < 2 * k; i++)
        p[i] = h->element[i]->str;
    return p;
}

static int conf_get(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], hash[KEYLEN], ver[KEYLEN], global[KEYLEN];
    struct ctl_conf_value vals[GW_TUN_COUNT];
    struct ctl_problems probs = {0};
    struct evalargs e;
    const char **gp, **pp;
    size_t ng, np;
    redisReply *r;

    conf_keys(x, pools, hash, ver);
    KEY(global, "conf");
    ea_eval(&e, script_read_conf, 3);
    ea_str(&e, pools);
    ea_str(&e, global);
    ea_str(&e, hash);
    ea_str(&e, a->pool ? a->pool : "");
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (int_at(r, 0) == 0) {
        freeReplyObject(r);
        return no_pool(a->pool);
    }
    gp = pairs_of(r->elements > 1 ? r->element[1] : NULL, &ng);
    pp = pairs_of(r->elements > 2 ? r->element[2] : NULL, &np);
    if (!gp || !pp) {
        gw_free(gp);
        gw_free(pp);
        freeReplyObject(r);
        return say(CTL_EXIT_REDIS, "out of memory");
    }
    ctl_view_conf(vals, global, gp, ng, hash, a->pool ? pp : NULL, np, &probs);
    ctl_problems_print(&probs, stderr);
    ctl_view_print_conf(stdout, a->json, a->pool, vals,
                        a->field ? gw_tunables_field(a->field) : -1);
    gw_free(gp);
    gw_free(pp);
    freeReplyObject(r);
    return CTL_EXIT_OK;
}

static int version(struct ctl *x)
{
    char ver[KEYLEN];
    redisReply *r;

    KEY(ver, "version");
    if (!(r = cmd(x, "GET %s", ver)))
        return CTL_EXIT_REDIS;
    const char *v = r->type == REDIS_REPLY_STRING ? r->str : "0";
    if (x->a->json)
        ctl_view_print_json(stdout, json_pack("{s:s}", "version", v));
    else
        printf("%s\n", v);
    freeReplyObject(r);
    return CTL_EXIT_OK;
}

/* --- tenants and API keys ------------------------------------------------------------- */

/* Every key matching "<prefix><rest>" (SCAN, never KEYS) with its HGETALL
 * reply, sorted by key name and without the duplicates SCAN may return. */
struct records {
    char **names;
    redisReply **hashes; /* NULL where the key is gone or not a hash */
    size_t n, cap;
};

static void records_free(struct records *r)
{
    for (size_t i = 0; i < r->n; i++) {
        gw_free(r->names[i]);
        if (r->hashes && r->hashes[i])
            freeReplyObject(r->hashes[i]);
    }
    gw_free(r->names);
    gw_free(r->hashes);
    memset(r, 0, sizeof(*r));
}

static int push_name(struct records *r, const char *s, size_t len)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        char **nn = gw_realloc(r->names, cap * sizeof(*nn));
        if (!nn)
            return -1;
        r->names = nn;
        r->cap = cap;
    }
    if (!(r->names[r->n] = gw_strndup(s, len)))
        return -1;
    r->n++;
    return 0;
}

/* Collects the names, then reads the hashes pipelined. Returns
 * CTL_EXIT_OK or CTL_EXIT_REDIS (reported). */
static int scan_records(struct ctl *x, const char *rest, struct records *out)
{
    char pattern[KEYLEN + 64], cursor[32] = "0";

    memset(out, 0, sizeof(*out));
    if (gw_redis_scan_pattern(pattern, sizeof(pattern), x->a->prefix, rest) < 0)
        return say(CTL_EXIT_USAGE, "key pattern too long");
    do {
        redisReply *r = cmd(x, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r)
            goto fail;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element[0]->str) {
            freeReplyObject(r);
            say(CTL_EXIT_REDIS, "unexpected SCAN reply");
            goto fail;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++)
            if (push_name(out, r->element[1]->element[i]->str, r->element[1]->element[i]->len) <
                0) {
                freeReplyObject(r);
                say(CTL_EXIT_REDIS, "out of memory");
                goto fail;
            }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (out->n)
        qsort(out->names, out->n, sizeof(char *), cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (u && !strcmp(out->names[u - 1], out->names[i]))
            gw_free(out->names[i]);
        else
            out->names[u++] = out->names[i];
    }
    out->n = u;
    out->hashes = gw_calloc(out->n + 1, sizeof(*out->hashes));
    if (!out->hashes) {
        say(CTL_EXIT_REDIS, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < out->n; i++)
        redisAppendCommand(x->c, "HGETALL %s", out->names[i]);
    for (size_t i = 0; i < out->n; i++) {
        void *v = NULL;
        if (redisGetReply(x->c, &v) != REDIS_OK || !v) {
            say(CTL_EXIT_REDIS, "redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
            goto fail;
        }
        redisReply *h = v;
        if (h->type == REDIS_REPLY_ARRAY && h->elements > 0)
            out->hashes[i] = h;
        else
            freeReplyObject(h); /* deleted since the SCAN, or not a hash */
    }
    return CTL_EXIT_OK;
fail:
    records_free(out);
    return CTL_EXIT_REDIS;
}

/* The value of <field> in an HGETALL reply (NULL reply or field: NULL). */
static const char *field_of(const redisReply *h, const char *field)
{
    for (size_t i = 0; h && i + 1 < h->elements; i += 2)
        if (h->element[i]->str && !strcmp(h->element[i]->str, field))
            return h->element[i + 1]->str;
    return NULL;
}

/* The suffix of record key <name> after "<prefix><kind>:". */
static const char *record_suffix(struct ctl *x, const char *name, const char *kind)
{
    size_t skip = strlen(x->a->prefix) + strlen(kind) + 1;
    return strlen(name) >= skip ? name + skip : "";
}

/* The SHA-256 hex of API key <key>: the name of its record. */
static void key_hex(const char *key, char hex[GW_AUTHDB_HASH_HEX + 1])
{
    uint8_t h[32];

    gw_apikey_hash(key, strlen(key), h);
    gw_apikey_hash_to_hex(h, hex);
}

static int tenant_add(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char key[KEYLEN], ver[KEYLEN];
    struct evalargs e;
    redisReply *r;
    int rc;

    KEY(key, "tenant:%s", a->tenant);
    KEY(ver, "version");
    ea_eval(&e, script_tenant_add, 2);
    ea_str(&e, key);
    ea_str(&e, ver);
    ea_str(&e, a->models);
    ea_str(&e, a->rps ? a->rps : "");
    ea_str(&e, a->burst ? a->burst : "");
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    const char *rps = r->elements > 3 && r->element[3]->str ? r->element[3]->str : "0";
    const char *burst = r->elements > 4 && r->element[4]->str ? r->element[4]->str : "0";
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "tenant", a->tenant, "models", a->models, "rps",
                          rps, "burst", burst);
    if (status_is(r, "same"))
        rc = report(x, -1, j, "tenant %s already has models=%s rps=%s burst=%s", a->tenant,
                    a->models, rps, burst);
    else
        rc = report(x, int_at(r, 1), j, "tenant %s %s: models=%s rps=%s burst=%s", a->tenant,
                    int_at(r, 2) ? "added" : "updated", a->models, rps, burst);
    freeReplyObject(r);
    return rc;
}

/* The API-key records (key names) that name <tenant>. */
static int keys_of_tenant(struct ctl *x, const char *tenant, struct records *keys,
                          const char ***names, size_t *n)
{
    int rc = scan_records(x, "apikey:*", keys);
    if (rc != CTL_EXIT_OK)
        return rc;
    *names = gw_calloc(keys->n + 1, sizeof(char *));
    if (!*names) {
        records_free(keys);
        return say(CTL_EXIT_REDIS, "out of memory");
    }
    *n = 0;
    for (size_t i = 0; i < keys->n; i++) {
        const char *t = field_of(keys->hashes[i], "tenant");
        if (t && !strcmp(t, tenant))
            (*names)[(*n)++] = keys->names[i];
    }
    return CTL_EXIT_OK;
}

static int tenant_remove(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char key[KEYLEN], ver[KEYLEN];
    struct records keys;
    const char **mine;
    size_t nmine = 0;
    struct evalargs e;
    redisReply *r;
    int rc = keys_of_tenant(x, a->tenant, &keys, &mine, &nmine);

    if (rc != CTL_EXIT_OK)
        return rc;
    if (nmine && !a->force) {
        rc = say(CTL_EXIT_REDIS,
                 "tenant %s still has %zu API key%s; revoke them first (infergw-ctl key list "
                 "--tenant %s) or remove the tenant with --force, which revokes them too",
                 a->tenant, nmine, nmine == 1 ? "" : "s", a->tenant);
        goto out;
    }
    KEY(key, "tenant:%s", a->tenant);
    KEY(ver, "version");
    ea_eval(&e, script_tenant_remove, (int)(2 + nmine));
    ea_str(&e, key);
    ea_str(&e, ver);
    for (size_t i = 0; i < nmine; i++)
        ea_str(&e, mine[i]);
    ea_str(&e, a->tenant);
    if (!(r = ea_run(x, &e))) {
        rc = CTL_EXIT_REDIS;
        goto out;
    }
    if (status_is(r, "notenant")) {
        rc = say(CTL_EXIT_NOTFOUND, "tenant %s does not exist", a->tenant);
    } else {
        long long revoked = int_at(r, 2);
        rc = report(
            x, int_at(r, 1),
            json_pack("{s:s, s:I}", "tenant", a->tenant, "keys_revoked", (json_int_t)revoked),
            "tenant %s removed (%lld API key%s revoked)", a->tenant, revoked,
            revoked == 1 ? "" : "s");
    }
    freeReplyObject(r);
out:
    gw_free(mine);
    records_free(&keys);
    return rc;
}

static int tenant_show(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    struct records tenants, keys;
    struct ctl_tenant_row *rows = NULL;
    struct ctl_problems probs = {0};
    size_t n = 0;
    int rc;

    if (a->tenant) {
        /* Exactly one record: read it, no SCAN. */
        char key[KEYLEN];
        redisReply *h;

        KEY(key, "tenant:%s", a->tenant);
        memset(&tenants, 0, sizeof(tenants));
        if (!(h = cmd(x, "HGETALL %s", key)))
            return CTL_EXIT_REDIS;
        tenants.hashes = gw_calloc(2, sizeof(*tenants.hashes));
        if (!tenants.hashes || push_name(&tenants, key, strlen(key)) < 0) {
            freeReplyObject(h);
            records_free(&tenants);
            return say(CTL_EXIT_REDIS, "out of memory");
        }
        if (h->type == REDIS_REPLY_ARRAY && h->elements > 0)
            tenants.hashes[0] = h;
        else
            freeReplyObject(h);
        rc = CTL_EXIT_OK;
    } else {
        rc = scan_records(x, "tenant:*", &tenants);
    }
    if (rc != CTL_EXIT_OK)
        return rc;
    if ((rc = scan_records(x, "apikey:*", &keys)) != CTL_EXIT_OK) {
        records_free(&tenants);
        return rc;
    }
    rows = gw_calloc(tenants.n + 1, sizeof(*rows));
    if (!rows) {
        rc = say(CTL_EXIT_REDIS, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < tenants.n; i++) {
        const redisReply *h = tenants.hashes[i];
        if (!h)
            continue;
        struct ctl_tenant_row *t = &rows[n++];
        t->name = record_suffix(x, tenants.names[i], "tenant");
        t->models = field_of(h, "models");
        t->rps = field_of(h, "rps");
        t->burst = field_of(h, "burst");
        for (size_t k = 0; k < keys.n; k++) {
            const char *kt = field_of(keys.hashes[k], "tenant");
            t->nkeys += kt && !strcmp(kt, t->name);
        }
        ctl_view_tenant_check(t, tenants.names[i], &probs);
    }
    if (a->tenant && n == 0) {
        rc = say(CTL_EXIT_NOTFOUND,
                 "tenant %s does not exist; add it with: infergw-ctl tenant add %s --models ...",
                 a->tenant, a->tenant);
        goto out;
    }
    ctl_problems_print(&probs, stderr);
    ctl_view_print_tenants(stdout, a->json, rows, n);
    rc = CTL_EXIT_OK;
out:
    gw_free(rows);
    records_free(&tenants);
    records_free(&keys);
    return rc;
}

static int key_create(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    uint8_t raw[32];
    char text[CTL_KEY_LEN + 1], hex[GW_AUTHDB_HASH_HEX + 1], tkey[KEYLEN], kkey[KEYLEN],
        ver[KEYLEN], exp[32] = "";
    int64_t now = (int64_t)time(NULL), expires_at = a->expires_at;
    struct evalargs e;
    redisReply *r;
    int rc;

    if (a->expires_in_s)
        expires_at = now + a->expires_in_s;
    if (expires_at && expires_at <= now)
        return say(CTL_EXIT_USAGE, "--expires-at %lld is not in the future; nothing written",
                   (long long)expires_at);
    if (expires_at)
        snprintf(exp, sizeof(exp), "%lld", (long long)expires_at);
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return say(CTL_EXIT_REDIS, "cannot get random bytes from OpenSSL; nothing written");
    ctl_key_format(raw, text);
    OPENSSL_cleanse(raw, sizeof(raw));
    key_hex(text, hex);
    KEY(tkey, "tenant:%s", a->tenant);
    KEY(kkey, "apikey:%s", hex);
    KEY(ver, "version");
    ea_eval(&e, script_key_create, 3);
    ea_str(&e, tkey);
    ea_str(&e, kkey);
    ea_str(&e, ver);
    ea_str(&e, a->tenant);
    ea_str(&e, exp);
    if (!(r = ea_run(x, &e))) {
        OPENSSL_cleanse(text, sizeof(text));
        return CTL_EXIT_REDIS;
    }
    if (status_is(r, "notenant")) {
        rc = say(CTL_EXIT_NOTFOUND,
                 "tenant %s does not exist; add it first with: infergw-ctl tenant add %s "
                 "--models ...",
                 a->tenant, a->tenant);
    } else if (status_is(r, "exists")) {
        rc = say(CTL_EXIT_REDIS, "a record with this key's hash exists already; try again");
    } else {
        long long v = int_at(r, 1);
        publish(x, v);
        if (a->json) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:I}", "key", text, "tenant", a->tenant,
                                  "hash", hex, "changed", 1, "version", (json_int_t)v);
            json_object_set_new(o, "expires_at",
                                expires_at ? json_integer(expires_at) : json_null());
            ctl_view_print_json(stdout, o);
        } else {
            printf("%s\n", text);
            say(0,
                "API key for tenant %s created (hash %.*s..., expires %s%s, version %lld); it "
                "is shown only this once",
                a->tenant, CTL_HASH_PREFIX, hex, expires_at ? "at unix " : "never",
                expires_at ? exp : "", v);
        }
        rc = CTL_EXIT_OK;
    }
    OPENSSL_cleanse(text, sizeof(text));
    freeReplyObject(r);
    return rc;
}

static int key_revoke(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char hex[GW_AUTHDB_HASH_HEX + 1], kkey[KEYLEN], ver[KEYLEN];
    struct evalargs e;
    redisReply *r;
    int rc;

    if (!a->revoke_is_hash) {
        key_hex(a->revoke, hex);
    } else if (strlen(a->revoke) == GW_AUTHDB_HASH_HEX) {
        snprintf(hex, sizeof(hex), "%s", a->revoke);
    } else {
        struct records found;
        char rest[96];
        snprintf(rest, sizeof(rest), "apikey:%s*", a->revoke);
        if ((rc = scan_records(x, rest, &found)) != CTL_EXIT_OK)
            return rc;
        size_t n = 0, pick = 0;
        for (size_t i = 0; i < found.n; i++)
            if (found.hashes[i] &&
                strlen(record_suffix(x, found.names[i], "apikey")) == GW_AUTHDB_HASH_HEX) {
                n++;
                pick = i;
            }
        if (n == 1)
            snprintf(hex, sizeof(hex), "%s", record_suffix(x, found.names[pick], "apikey"));
        if (n > 1) {
            fprintf(stderr, "infergw-ctl: %zu keys have a hash starting with %s:\n", n, a->revoke);
            for (size_t i = 0; i < found.n; i++)
                if (found.hashes[i])
                    fprintf(stderr, "  %.*s  tenant %s\n", 16,
                            record_suffix(x, found.names[i], "apikey"),
                            field_of(found.hashes[i], "tenant")
                                ? field_of(found.hashes[i], "tenant")
                                : "(none)");
        }
        records_free(&found);
        if (n == 0)
            return say(CTL_EXIT_NOTFOUND, "no API key has a hash starting with %s", a->revoke);
        if (n > 1)
            return say(CTL_EXIT_USAGE, "give more hex digits: the prefix is ambiguous");
    }
    KEY(kkey, "apikey:%s", hex);
    KEY(ver, "version");
    ea_eval(&e, script_key_revoke, 2);
    ea_str(&e, kkey);
    ea_str(&e, ver);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (status_is(r, "nokey")) {
        rc = say(CTL_EXIT_NOTFOUND, "no such API key (hash %.*s...)", CTL_HASH_PREFIX, hex);
    } else {
        const char *t = r->elements > 2 && r->element[2]->str ? r->element[2]->str : "";
        char pfx[CTL_HASH_PREFIX + 1];
        memcpy(pfx, hex, CTL_HASH_PREFIX);
        pfx[CTL_HASH_PREFIX] = '\0';
        rc = report(x, int_at(r, 1), json_pack("{s:s, s:s}", "hash_prefix", pfx, "tenant", t),
                    "API key %s (tenant %s) revoked", pfx, t[0] ? t : "(none)");
    }
    freeReplyObject(r);
    return rc;
}

static int key_list(struct ctl *x)
{
    struct records keys;
    struct ctl_key_row *rows;
    size_t n = 0;
    int rc = scan_records(x, "apikey:*", &keys);

    if (rc != CTL_EXIT_OK)
        return rc;
    rows = gw_calloc(keys.n + 1, sizeof(*rows));
    if (!rows) {
        records_free(&keys);
        return say(CTL_EXIT_REDIS, "out of memory");
    }
    for (size_t i = 0; i < keys.n; i++) {
        const char *hash = record_suffix(x, keys.names[i], "apikey");
        uint8_t h[32];
        if (!keys.hashes[i])
            continue;
        if (gw_apikey_hash_from_hex(hash, strlen(hash), h) < 0) {
            say(0,
                "warning: %sapikey:<%zu bytes, not shown> is not named by a SHA-256 hex; the "
                "gateways refuse it",
                x->a->prefix, strlen(hash));
            continue;
        }
        struct ctl_key_row *k = &rows[n];
        k->hash = hash;
        k->tenant = field_of(keys.hashes[i], "tenant");
        k->expires_at = field_of(keys.hashes[i], "expires_at");
        if (x->a->tenant && (!k->tenant || strcmp(k->tenant, x->a->tenant) != 0))
            continue;
        n++;
    }
    ctl_view_sort_keys(rows, n);
    ctl_view_print_keys(stdout, x->a->json, rows, n, (int64_t)time(NULL));
    gw_free(rows);
    records_free(&keys);
    return CTL_EXIT_OK;
}

/* key hash: no Redis. */
static int key_hash(const struct ctl_args *a)
{
    char hex[GW_AUTHDB_HASH_HEX + 1];

    key_hex(a->key, hex);
    if (a->json)
        ctl_view_print_json(stdout, json_pack("{s:s}", "hash", hex));
    else
        printf("%s\n", hex);
    return CTL_EXIT_OK;
}

/* --- leases: replica register, gc --------------------------------------------------- */

/* KEYS: pools, ring, version, leased, lease. ARGV: pool, "<host:port>#",
 * the most replicas a ring takes, ttl ms, host:port, then score/member
 * pairs of the replica's vnodes. Adds the replica when it has no member on
 * the ring (as replica add), then sets the lease and lists the address in
 * <prefix>leased. Returns {'nopool'}, {'full', replicas} or {'ok', vnodes
 * it had (0 = added now), version or -1}. */
static const char script_register[] =
    "if redis.call('SISMEMBER', KEYS[1], ARGV[1]) == 0 then return {'nopool'} end\n"
    "local old, addrs, n = 0, {}, 0\n"
    "for _, m in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do\n"
    "  if string.sub(m, 1, #ARGV[2]) == ARGV[2] then old = old + 1 end\n"
    "  local a = string.match(m, '^(.*)#')\n"
    "  if a and not addrs[a] then addrs[a] = true; n = n + 1 end\n"
    "end\n"
    "local v = -1\n"
    "if old == 0 then\n"
    "  if n >= tonumber(ARGV[3]) then return {'full', n} end\n"
    "  v = redis.call('INCR', KEYS[3])\n"
    "  for i = 6, #ARGV, 1000 do\n"
    "    redis.call('ZADD', KEYS[2], unpack(ARGV, i, math.min(i + 999, #ARGV)))\n"
    "  end\n"
    "end\n"
    "redis.call('SET', KEYS[5], '1', 'PX', ARGV[4])\n"
    "redis.call('SADD', KEYS[4], ARGV[5])\n"
    "return {'ok', old, v}\n";

/* KEYS: ring, version, leased, lease, replica hash. ARGV: "<host:port>#",
 * host:port. Takes the replica off the pool's ring and ends its lease; the
 * drain state the registrar set is deleted with it. Returns {'ok', vnodes
 * removed, version}. */
static const char script_deregister[] =
    "local old = {}\n"
    "for _, m in ipairs(redis.call('ZRANGE', KEYS[1], 0, -1)) do\n"
    "  if string.sub(m, 1, #ARGV[1]) == ARGV[1] then old[#old + 1] = m end\n"
    "end\n"
    "local v = redis.call('INCR', KEYS[2])\n"
    "for i = 1, #old, 1000 do\n"
    "  redis.call('ZREM', KEYS[1], unpack(old, i, math.min(i + 999, #old)))\n"
    "end\n"
    "redis.call('SREM', KEYS[3], ARGV[2])\n"
    "redis.call('DEL', KEYS[4], KEYS[5])\n"
    "return {'ok', #old, v}\n";

/* KEYS: leased, lease_gone, pools, version. ARGV: prefix, grace seconds.
 * For every leased address: lease present -> forget any gone-time; lease
 * absent -> note the first time it was seen gone (Redis TIME), and once it
 * has been gone for the grace period take its members off every pool's
 * ring and forget the address. Returns {'ok', version or -1, {removed},
 * {waiting}}. */
static const char script_gc[] =
    "local now = tonumber(redis.call('TIME')[1])\n"
    "local grace = tonumber(ARGV[2])\n"
    "local live, fresh, removed, waiting = {}, {}, {}, {}\n"
    "for _, a in ipairs(redis.call('SMEMBERS', KEYS[1])) do\n"
    "  if redis.call('EXISTS', ARGV[1] .. 'lease:' .. a) == 1 then\n"
    "    live[#live + 1] = a\n"
    "  else\n"
    "    local t = tonumber(redis.call('HGET', KEYS[2], a) or '')\n"
    "    if not t then t = now; fresh[#fresh + 1] = a end\n"
    "    if now - t >= grace then removed[#removed + 1] = a\n"
    "    else waiting[#waiting + 1] = a .. ' ' .. (grace - (now - t)) end\n"
    "  end\n"
    "end\n"
    "local v = -1\n"
    "if #removed > 0 then v = redis.call('INCR', KEYS[4]) end\n"
    "for _, a in ipairs(live) do redis.call('HDEL', KEYS[2], a) end\n"
    "for _, a in ipairs(fresh) do redis.call('HSET', KEYS[2], a, now) end\n"
    "local pools = redis.call('SMEMBERS', KEYS[3])\n"
    "for _, a in ipairs(removed) do\n"
    "  for _, p in ipairs(pools) do\n"
    "    local ring, old = ARGV[1] .. 'pool:' .. p .. ':ring', {}\n"
    "    for _, m in ipairs(redis.call('ZRANGE', ring, 0, -1)) do\n"
    "      if string.sub(m, 1, #a + 1) == a .. '#' then old[#old + 1] = m end\n"
    "    end\n"
    "    for i = 1, #old, 1000 do\n"
    "      redis.call('ZREM', ring, unpack(old, i, math.min(i + 999, #old)))\n"
    "    end\n"
    "  end\n"
    "  redis.call('SREM', KEYS[1], a)\n"
    "  redis.call('HDEL', KEYS[2], a)\n"
    "end\n"
    "return {'ok', v, removed, waiting}\n";

static volatile sig_atomic_t stop_signal;

static void on_stop(int sig)
{
    stop_signal = sig;
}

/* Sleeps <ms> or until SIGTERM/SIGINT (blocked outside this call). */
static void sleep_or_signal(int ms, const sigset_t *orig)
{
    struct timespec ts = {.tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L};
    if (!stop_signal)
        ppoll(NULL, 0, &ts, orig);
}

/* Connects x->c if needed. Returns 0, or -1 (logged once per outage). */
static int reconnect(struct ctl *x, int *logged)
{
    char err[300], addr[300] = "";

    if (x->c && !x->c->err)
        return 0;
    if (x->c)
        redisFree(x->c);
    x->c = gw_redis_connect(x->url, x->a->timeout_ms, addr, sizeof(addr), err, sizeof(err));
    if (!x->c) {
        if (!*logged)
            say(0, "register: Redis unreachable (%s); retrying", err);
        *logged = 1;
        return -1;
    }
    if (*logged)
        say(0, "register: Redis reached again at %s", addr);
    *logged = 0;
    return 0;
}

/* One run of script_register. Returns 1 done, 0 to retry (Redis error,
 * logged), or a CTL_EXIT_* code > 1 for a refusal on the first run. */
static int register_once(struct ctl *x, int first)
{
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], ring[KEYLEN], ver[KEYLEN], leased[KEYLEN], lease[KEYLEN], prefix[320],
        num[32];
    struct evalargs e;
    redisReply *r;
    int rc = 1;

    KEY(pools, "pools");
    KEY(ring, "pool:%s:ring", a->pool);
    KEY(ver, "version");
    KEY(leased, "leased");
    KEY(lease, "lease:%s", a->replica);
    snprintf(prefix, sizeof(prefix), "%s#", a->replica);
    ea_eval(&e, script_register, 5);
    ea_str(&e, pools);
    ea_str(&e, ring);
    ea_str(&e, ver);
    ea_str(&e, leased);
    ea_str(&e, lease);
    ea_str(&e, a->pool);
    ea_str(&e, prefix);
    snprintf(num, sizeof(num), "%d", GW_RING_MAX_REPLICAS);
    ea_str(&e, num);
    snprintf(num, sizeof(num), "%u", a->ttl_ms);
    ea_str(&e, num);
    ea_str(&e, a->replica);
    ea_ring_members(&e, a->replica, a->weight);
    if (!(r = ea_run(x, &e)))
        return 0;
    if (status_is(r, "nopool")) {
        if (first)
            rc = no_pool(a->pool);
        else
            say(0, "register: pool %s is gone; lease kept, retrying", a->pool);
    } else if (status_is(r, "full")) {
        rc = first ? say(CTL_EXIT_USAGE, "pool %s already has %lld replicas, the most a ring takes",
                         a->pool, int_at(r, 1))
                   : 1;
    } else if (int_at(r, 2) >= 0) {
        publish(x, int_at(r, 2));
        say(0, "register: replica %s added to pool %s with %u vnodes (version %lld); lease %u ms",
            a->replica, a->pool, a->weight, int_at(r, 2), a->ttl_ms);
    } else if (first) {
        say(0, "register: replica %s already in pool %s with %lld vnodes; lease %u ms", a->replica,
            a->pool, int_at(r, 1), a->ttl_ms);
    }
    freeReplyObject(r);
    return rc;
}

/* Drain, wait, remove. Returns 0 when done, -1 on a Redis error. */
static int deregister(struct ctl *x, const sigset_t *orig)
{
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], hash[KEYLEN], ver[KEYLEN], ring[KEYLEN], leased[KEYLEN], lease[KEYLEN],
        member0[320], prefix[320];
    struct evalargs e;
    redisReply *r;

    KEY(pools, "pools");
    KEY(hash, "replica:%s", a->replica);
    KEY(ver, "version");
    KEY(ring, "pool:%s:ring", a->pool);
    KEY(leased, "leased");
    KEY(lease, "lease:%s", a->replica);
    ctl_view_member(member0, sizeof(member0), a->replica, 0);
    ea_eval(&e, script_state, 3);
    ea_str(&e, pools);
    ea_str(&e, hash);
    ea_str(&e, ver);
    ea_str(&e, a->prefix);
    ea_str(&e, member0);
    ea_str(&e, "drain");
    if (!(r = ea_run(x, &e)))
        return -1;
    if (status_is(r, "ok")) {
        publish(x, int_at(r, 1));
        say(0, "register: replica %s drained (version %lld); removing in %u ms", a->replica,
            int_at(r, 1), a->drain_ms);
    }
    freeReplyObject(r);
    /* In-flight calls finish meanwhile; a second signal cuts the wait. */
    stop_signal = 0;
    sleep_or_signal((int)a->drain_ms, orig);
    snprintf(prefix, sizeof(prefix), "%s#", a->replica);
    ea_eval(&e, script_deregister, 5);
    ea_str(&e, ring);
    ea_str(&e, ver);
    ea_str(&e, leased);
    ea_str(&e, lease);
    ea_str(&e, hash);
    ea_str(&e, prefix);
    ea_str(&e, a->replica);
    if (!(r = ea_run(x, &e)))
        return -1;
    publish(x, int_at(r, 2));
    say(0, "register: replica %s removed from pool %s (%lld vnodes), lease deleted (version %lld)",
        a->replica, a->pool, int_at(r, 1), int_at(r, 2));
    freeReplyObject(r);
    return 0;
}

static int replica_register(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    struct sigaction sa = {.sa_handler = on_stop};
    sigset_t block, orig;
    int logged = x->c ? 0 : 1, first = 1, backoff = 100;
    int period = (int)(a->ttl_ms / 3);

    sigemptyset(&sa.sa_mask);
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    sigemptyset(&block);
    sigaddset(&block, SIGTERM);
    sigaddset(&block, SIGINT);
    sigprocmask(SIG_BLOCK, &block, &orig);
    warn_unresolvable(a->replica, a->pool);
    while (!stop_signal) {
        int rc = reconnect(x, &logged) == 0 ? register_once(x, first) : 0;
        if (rc > 1)
            return rc;
        if (rc == 1) {
            if (first)
                say(0, "register: keeping the lease of %s alive every %d ms until SIGTERM",
                    a->replica, period);
            first = 0;
            backoff = 100;
            sleep_or_signal(period, &orig);
        } else {
            /* Retry well within the lease: a short outage costs no expiry. */
            if (x->c && !x->c->err) {
                redisFree(x->c);
                x->c = NULL;
            }
            sleep_or_signal(backoff < period ? backoff : period, &orig);
            backoff = backoff * 2 > 2000 ? 2000 : backoff * 2;
        }
    }
    say(0, "register: %s received; draining %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
        a->replica);
    for (int attempt = 0; attempt < 10; attempt++) {
        stop_signal = 0;
        if (reconnect(x, &logged) == 0 && deregister(x, &orig) == 0)
            return CTL_EXIT_OK;
        if (x->c) {
            redisFree(x->c);
            x->c = NULL;
        }
        sleep_or_signal(500, &orig);
    }
    return say(CTL_EXIT_REDIS,
               "register: could not remove %s (Redis unreachable); its lease expires within %u "
               "ms and infergw-ctl gc removes it",
               a->replica, a->ttl_ms);
}

static int gc(struct ctl *x)
{
    char leased[KEYLEN], gone[KEYLEN], pools[KEYLEN], ver[KEYLEN], grace[16];
    struct evalargs e;
    redisReply *r;
    int rc;

    KEY(leased, "leased");
    KEY(gone, "lease_gone");
    KEY(pools, "pools");
    KEY(ver, "version");
    snprintf(grace, sizeof(grace), "%u", x->a->grace_s);
    ea_eval(&e, script_gc, 4);
    ea_str(&e, leased);
    ea_str(&e, gone);
    ea_str(&e, pools);
    ea_str(&e, ver);
    ea_str(&e, x->a->prefix);
    ea_str(&e, grace);
    if (!(r = ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    const redisReply *rem = r->elements > 2 ? r->element[2] : NULL;
    const redisReply *wait = r->elements > 3 ? r->element[3] : NULL;
    size_t nrem = rem && rem->type == REDIS_REPLY_ARRAY ? rem->elements : 0;
    size_t nwait = wait && wait->type == REDIS_REPLY_ARRAY ? wait->elements : 0;
    json_t *jr = json_array(), *jw = json_array();
    char list[4096] = "";
    size_t len = 0;

    for (size_t i = 0; i < nrem; i++) {
        const char *s = rem->element[i]->str ? rem->element[i]->str : "";
        json_array_append_new(jr, json_string(s));
        if (len < sizeof(list))
            len += (size_t)snprintf(list + len, sizeof(list) - len, " %s", s);
    }
    for (size_t i = 0; i < nwait; i++) {
        const char *s = wait->element[i]->str ? wait->element[i]->str : "";
        const char *sp = strchr(s, ' ');
        json_array_append_new(jw, json_pack("{s:s%, s:i}", "replica", s,
                                            (size_t)(sp ? sp - s : (ptrdiff_t)strlen(s)),
                                            "seconds_left", sp ? atoi(sp + 1) : 0));
        say(0, "gc: lease of %.*s gone; removed in %s s unless it comes back",
            (int)(sp ? sp - s : (ptrdiff_t)strlen(s)), s, sp ? sp + 1 : "?");
    }
    rc = report(x, int_at(r, 1) >= 0 ? int_at(r, 1) : -1,
                json_pack("{s:o, s:o}", "removed", jr, "waiting", jw),
                "gc: %zu replica%s removed%s%s, %zu waiting for the grace period", nrem,
                nrem == 1 ? "" : "s", nrem ? ":" : "", list, nwait);
    freeReplyObject(r);
    return rc;
}

/* --- status ----------------------------------------------------------------------------- */

static int status(struct ctl *x)
{
    struct records gws;
    int rc = scan_records(x, "gateway:*", &gws);

    if (rc != CTL_EXIT_OK)
        return rc;
    struct ctl_status st;
    if (ctl_status_init(&st) < 0) {
        records_free(&gws);
        return say(CTL_EXIT_REDIS, "out of memory");
    }
    for (size_t i = 0; i < gws.n; i++) {
        const redisReply *h = gws.hashes[i];
        if (!h)
            continue;
        const char *id = record_suffix(x, gws.names[i], "gateway");
        for (size_t k = 0; k + 1 < h->elements; k += 2)
            if (h->element[k]->str && h->element[k + 1]->str &&
                ctl_status_add(&st, id, h->element[k]->str, h->element[k + 1]->str) < 0) {
                ctl_status_free(&st);
                records_free(&gws);
                return say(CTL_EXIT_REDIS, "out of memory");
            }
        if (ctl_status_add(&st, id, NULL, NULL) < 0) {
            ctl_status_free(&st);
            records_free(&gws);
            return say(CTL_EXIT_REDIS, "out of memory");
        }
    }
    ctl_status_print(&st, stdout, x->a->json);
    ctl_status_free(&st);
    records_free(&gws);
    return CTL_EXIT_OK;
}

static int dispatch(struct ctl *x)
{
    switch (x->a->cmd) {
    case CTL_POOL_ADD:
        return pool_add(x);
    case CTL_POOL_REMOVE:
        return pool_remove(x);
    case CTL_POOL_LIST:
        return pool_list(x);
    case CTL_REPLICA_ADD:
        return replica_set(x, SET_ADD);
    case CTL_REPLICA_WEIGHT:
        return replica_set(x, SET_WEIGHT);
    case CTL_REPLICA_REMOVE:
        return replica_set(x, SET_REMOVE);
    case CTL_REPLICA_DRAIN:
        return replica_state(x, 1);
    case CTL_REPLICA_UNDRAIN:
        return replica_state(x, 0);
    case CTL_REPLICA_LIST:
    case CTL_RING_SHOW:
    case CTL_ROUTE:
        return show_ring(x);
    case CTL_CONF_GET:
        return conf_get(x);
    case CTL_CONF_SET:
        return conf_write(x, 1);
    case CTL_CONF_UNSET:
        return conf_write(x, 0);
    case CTL_VERSION:
        return version(x);
    case CTL_TENANT_ADD:
        return tenant_add(x);
    case CTL_TENANT_REMOVE:
        return tenant_remove(x);
    case CTL_TENANT_SHOW:
        return tenant_show(x);
    case CTL_KEY_CREATE:
        return key_create(x);
    case CTL_KEY_REVOKE:
        return key_revoke(x);
    case CTL_KEY_LIST:
        return key_list(x);
    case CTL_REPLICA_REGISTER:
        return replica_register(x);
    case CTL_GC:
        return gc(x);
    case CTL_STATUS:
        return status(x);
    case CTL_KEY_HASH:
    case CTL_HELP:
        break;
    }
    return CTL_EXIT_OK;
}

int main(int argc, char **argv)
{
    struct ctl_args a;
    struct gw_redis_url url;
    struct ctl x = {.a = &a, .url = &url};
    char err[1024];
    int rc;

    rc = ctl_args_parse(&a, argc, argv, getenv("INFERGW_REDIS"), err, sizeof(err));
    if (rc != 0)
        return say(rc, "%s", err);
    if (a.cmd == CTL_HELP) {
        ctl_args_usage(stdout);
        return CTL_EXIT_OK;
    }
    if (a.cmd == CTL_KEY_HASH)
        return key_hash(&a);
    if (gw_redis_url_parse(a.redis_url, &url, err, sizeof(err)) < 0)
        return say(CTL_EXIT_USAGE, "--redis: %s", err);
    x.c = gw_redis_connect(&url, a.timeout_ms, NULL, 0, err, sizeof(err));
    if (!x.c && a.cmd == CTL_REPLICA_REGISTER) {
        say(0, "register: Redis unreachable (%s); retrying", err);
    } else if (!x.c) {
        char where[600];

        gw_redis_url_format(&url, where, sizeof(where));
        return say(CTL_EXIT_REDIS, "cannot reach Redis at %s: %s", where, err);
    }
    rc = dispatch(&x);
    if (x.c)
        redisFree(x.c);
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
        rc = CTL_EXIT_REDIS;
    return rc;
}
