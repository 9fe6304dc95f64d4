/* SPDX-License-Identifier: Apache-2.0 */
/* kvreader — the KV event stream reader thread; see kvreader.h.
 *
 * Everything here runs on the reader thread with blocking hiredis calls
 * (bounded: connect and command timeouts of --redis-timeout-ms, plus the
 * XREAD BLOCK time for XREAD); the only contact with workers is through
 * the view's locks.
 */
#include "control/kvreader.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "base/log.h"
#include "base/timer.h"
#include "control/keys.h"
#include "control/loader.h"

#define BACKOFF_MIN_MS 100

/* Sleeps up to <ms> unless asked to stop. Returns 1 when stopping. */
static int reader_wait(struct gw_kvreader *r, int ms)
{
    return gw_stopper_wait(&r->stopper, ms);
}

/* Applies the entries [id, [f, v, ...]] of <entries> to followed pool
 * <pool>. Returns 0, or -1 when the reply has an unexpected shape. */
static int apply_entries(struct gw_kvview *v, size_t pool, const redisReply *entries)
{
    if (entries->type != REDIS_REPLY_ARRAY)
        return -1;
    for (size_t i = 0; i < entries->elements; i++) {
        const redisReply *e = entries->element[i];
        if (e->type != REDIS_REPLY_ARRAY || e->elements != 2 ||
            e->element[0]->type != REDIS_REPLY_STRING || e->element[0]->len >= GW_KVVIEW_ID_LEN)
            return -1;
        const redisReply *fv = e->element[1];
        struct gw_kv_field f[GW_KVREADER_FIELDS];
        size_t nf = 0;
        int ok = fv->type == REDIS_REPLY_ARRAY && fv->elements % 2 == 0 &&
                 fv->elements / 2 <= GW_KVREADER_FIELDS;
        for (size_t k = 0; ok && k + 1 < fv->elements; k += 2) {
            const redisReply *n = fv->element[k], *val = fv->element[k + 1];
            ok = n->type == REDIS_REPLY_STRING && val->type == REDIS_REPLY_STRING;
            if (ok)
                f[nf++] = (struct gw_kv_field){n->str, n->len, val->str, val->len};
        }
        /* An entry of the wrong shape is parsed as no fields: rejected, and
         * counted, like any malformed entry. */
        gw_kvview_apply(v, pool, e->element[0]->str, f, ok ? nf : 0);
    }
    return 0;
}

/* The type of <key> ("stream", "none", "string", ...) into <type>.
 * Returns 0, or -1 when Redis failed. */
static int key_type(redisContext *c, const char *key, char *type, size_t cap)
{
    redisReply *rep = gw_loader_cmd(c, "TYPE %s", key);
    if (!rep)
        return -1;
    int ok = rep->type == REDIS_REPLY_STATUS && rep->str;
    if (ok)
        snprintf(type, cap, "%s", rep->str);
    freeReplyObject(rep);
    return ok ? 0 : -1;
}

static int type_readable(const char *type)
{
    return !strcmp(type, "stream") || !strcmp(type, "none");
}

/* Pool i's key holds <type>: the pool leaves XREAD (its replicas stale)
 * until GW_KVREADER_RECHECK_MS from now; logged when it was read before. */
static void key_is_bad(struct gw_kvview *v, size_t i, const char *key, const char *type,
                       uint64_t now_ms)
{
    char why[128];
    snprintf(why, sizeof(why), "stream key is a %s, not a stream", type);
    if (!gw_kvview_key_bad(v, i))
        gw_log(GW_LOG_WARN, "kv_stream_wrong_type", "{s:s, s:s, s:s, s:s}", "pool",
               gw_kvview_pool_name(v, i), "key", key, "type", type, "routing",
               "estimation for this pool until the key is a stream");
    gw_kvview_set_key_bad(v, i, why, now_ms + GW_KVREADER_RECHECK_MS);
}

/* XREAD answered WRONGTYPE: the keys of <idx>[0..m) that hold another type
 * leave the read. Returns 0 when one did, -1 when none (or Redis failed). */
static int find_wrong_types(struct gw_kvview *v, redisContext *c, char (*keys)[GW_KEY_LEN],
                            const size_t *idx, size_t m)
{
    uint64_t now = gw_now_ns() / 1000000;
    int found = 0;
    for (size_t j = 0; j < m; j++) {
        char type[32];
        if (key_type(c, keys[idx[j]], type, sizeof(type)) < 0)
            return -1;
        if (!type_readable(type)) {
            key_is_bad(v, idx[j], keys[idx[j]], type, now);
            found = 1;
        }
    }
    return found ? 0 : -1;
}

/* One XREAD round over the <n> followed pools (those whose key holds
 * another type than a stream left out, and looked at again when due).
 * Returns 0, or -1 on a Redis error or an unexpected reply. */
static int read_round(struct gw_kvreader *r, redisContext *c, size_t n)
{
    struct gw_kvview *v = r->view;
    const char *argv[6 + 2 * GW_KVVIEW_POOLS];
    size_t lens[6 + 2 * GW_KVVIEW_POOLS], idx[GW_KVVIEW_POOLS], m = 0;
    static char keys[GW_KVVIEW_POOLS][GW_KEY_LEN];
    char count[16], block[16];
    uint64_t now = gw_now_ns() / 1000000;
    for (size_t i = 0; i < n; i++) {
        gw_key_pool_kv(keys[i], sizeof(keys[i]), r->cfg->redis_prefix, gw_kvview_pool_name(v, i));
        uint64_t due = gw_kvview_key_bad(v, i);
        if (due && now >= due) {
            char type[32];
            if (key_type(c, keys[i], type, sizeof(type)) < 0)
                return -1;
            if (type_readable(type)) {
                gw_kvview_set_key_bad(v, i, NULL, 0);
                gw_log(GW_LOG_INFO, "kv_stream_key_fixed", "{s:s, s:s, s:s}", "pool",
                       gw_kvview_pool_name(v, i), "key", keys[i], "type", type);
            } else {
                key_is_bad(v, i, keys[i], type, now);
            }
        }
        if (!gw_kvview_key_bad(v, i))
            idx[m++] = i;
    }
    if (m == 0) {
        reader_wait(r, GW_KVREADER_BLOCK_MS);
        return 0;
    }
    snprintf(count, sizeof(count), "%d", GW_KVREADER_COUNT);
    snprintf(block, sizeof(block), "%d", GW_KVREADER_BLOCK_MS);
    size_t a = 0;
    argv[a++] = "XREAD";
    argv[a++] = "COUNT";
    argv[a++] = count;
    argv[a++] = "BLOCK";
    argv[a++] = block;
    argv[a++] = "STREAMS";
    for (size_t j = 0; j < m; j++)
        argv[a++] = keys[idx[j]];
    for (size_t j = 0; j < m; j++)
        argv[a++] = gw_kvview_last_id(v, idx[j]);
    for (size_t i = 0; i < a; i++)
        lens[i] = strlen(argv[i]);
    redisReply *rep = redisCommandArgv(c, (int)a, argv, lens);
    if (!rep)
        return -1;
    int rc = 0;
    if (rep->type == REDIS_REPLY_ERROR && !strncmp(rep->str, "WRONGTYPE", 9)) {
        /* One pool's key must not stop the others' reading. */
        rc = find_wrong_types(v, c, keys, idx, m);
        if (rc < 0)
            gw_log(GW_LOG_WARN, "kv_stream_error", "{s:s}", "error", rep->str);
    } else if (rep->type == REDIS_REPLY_ERROR) {
        gw_log(GW_LOG_WARN, "kv_stream_error", "{s:s}", "error", rep->str);
        rc = -1;
    } else if (rep->type == REDIS_REPLY_ARRAY) {
        /* RESP2 (the connection never asks for RESP3): [[key, entries], ...]. */
        for (size_t k = 0; rc == 0 && k < rep->elements; k++) {
            const redisReply *s = rep->element[k];
            int shaped = s->type == REDIS_REPLY_ARRAY && s->elements == 2 &&
                         s->element[0]->type == REDIS_REPLY_STRING;
            size_t j = 0;
            while (shaped && j < m && strcmp(keys[idx[j]], s->element[0]->str))
                j++;
            if (!shaped || j == m)
                rc = -1;
            else
                rc = apply_entries(v, idx[j], s->element[1]);
        }
        if (rc < 0)
            gw_log(GW_LOG_WARN, "kv_stream_error", "{s:s}", "error", "unexpected XREAD reply");
    } else if (rep->type != REDIS_REPLY_NIL) {
        rc = -1;
    }
    freeReplyObject(rep);
    return rc;
}

/* Sentinel mode: still talking to the master? */
static int still_master(redisContext *c)
{
    redisReply *r = gw_loader_cmd(c, "ROLE");
    int ok = r && r->type == REDIS_REPLY_ARRAY && r->elements > 0 && r->element[0]->str &&
             !strcmp(r->element[0]->str, "master");
    if (r)
        freeReplyObject(r);
    return ok;
}

static void *reader_main(void *arg)
{
    struct gw_kvreader *r = arg;
    redisContext *c = NULL;
    int backoff = BACKOFF_MIN_MS, logged_down = 0;
    uint64_t role_due = 0; /* Sentinel: next ROLE check (monotonic ms) */
    int cap =
        (int)r->cfg->redis_poll_ms > BACKOFF_MIN_MS ? (int)r->cfg->redis_poll_ms : BACKOFF_MIN_MS;
    while (!gw_stopper_stopping(&r->stopper)) {
        size_t n = gw_kvview_sync(r->view);
        if (n == 0) {
            /* Nothing to follow: hold no connection. */
            if (c) {
                redisFree(c);
                c = NULL;
                gw_kvview_set_up(r->view, 0, "no precise pool");
            }
            if (reader_wait(r, GW_KVREADER_BLOCK_MS))
                break;
            continue;
        }
        if (!c) {
            char err[256], addr[300] = "";
            int timeout = (int)r->cfg->redis_timeout_ms + GW_KVREADER_BLOCK_MS;
            c = gw_redis_connect(&r->url, timeout, addr, sizeof(addr), err, sizeof(err));
            if (!c) {
                if (!logged_down)
                    gw_log(GW_LOG_WARN, "kv_stream_lost", "{s:s, s:s}", "error", err, "routing",
                           "estimation until the stream is read again");
                logged_down = 1;
                if (reader_wait(r, backoff))
                    break;
                backoff = backoff * 2 > cap ? cap : backoff * 2;
                continue;
            }
            atomic_fetch_add(&r->reconnects, 1);
            gw_log(GW_LOG_INFO, "kv_stream_connected", "{s:s, s:i}", "addr", addr, "pools", (int)n);
            logged_down = 0;
            backoff = BACKOFF_MIN_MS;
            gw_kvview_set_up(r->view, 1, NULL);
            role_due = 0;
        }
        int ok = 1;
        uint64_t now = gw_now_ns() / 1000000;
        if (r->url.sentinel && now >= role_due) {
            ok = still_master(c);
            role_due = now + GW_KVREADER_BLOCK_MS;
        }
        if (ok)
            ok = read_round(r, c, n) == 0;
        if (!ok) {
            const char *why = c->errstr[0] ? c->errstr : "redis error";
            gw_kvview_set_up(r->view, 0, "KV stream lost");
            gw_log(GW_LOG_WARN, "kv_stream_lost", "{s:s, s:s}", "error", why, "routing",
                   "estimation until each replica's next snapshot");
            logged_down = 1;
            redisFree(c);
            c = NULL;
            if (reader_wait(r, backoff))
                break;
            backoff = backoff * 2 > cap ? cap : backoff * 2;
        }
    }
    if (c)
        redisFree(c);
    gw_kvview_set_up(r->view, 0, "reader stopped");
    return NULL;
}

int gw_kvreader_start(struct gw_kvreader *r, const struct gw_config *cfg, struct gw_kvview *view,
                      char *err, size_t errlen)
{
    memset(r, 0, sizeof(*r));
    r->cfg = cfg;
    r->view = view;
    r->stopper.fd = -1;
    if (gw_redis_url_parse(cfg->redis_url, &r->url, err, errlen) < 0)
        return -1;
    int rc = gw_stopper_init(&r->stopper);
    if (rc < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(-rc));
        return -1;
    }
    rc = gw_stopper_start(&r->stopper, reader_main, r);
    if (rc != 0) {
        snprintf(err, errlen, "pthread_create: %s", strerror(rc));
        gw_stopper_stop(&r->stopper);
        return -1;
    }
    return 0;
}

void gw_kvreader_stop(struct gw_kvreader *r)
{
    gw_stopper_stop(&r->stopper);
}
