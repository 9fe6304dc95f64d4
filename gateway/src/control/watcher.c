/* SPDX-License-Identifier: Apache-2.0 */
/* watcher — the Redis control plane thread; see watcher.h.
 *
 * Everything here runs on the control-plane thread with blocking hiredis
 * calls (bounded by the Redis timeout); the only contact with workers is
 * gw_worker_offer_routes(). Reading and validating the keys is the loader's
 * (loader.h): this file connects and subscribes, polls the version and the
 * leases, turns each load into a snapshot (Redis pools, then the --pool
 * pools Redis does not define) and publishes it, keeps the history of
 * published versions, and writes the gateway's own health report.
 */
#include "control/watcher.h"

#include <errno.h>
#include <jansson.h>
#include <poll.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "auth/authdb.h"
#include "base/hostport.h"
#include "base/log.h"
#include "base/mem.h"
#include "base/timer.h"
#include "control/keys.h"
#include "control/kvview.h"
#include "control/loader.h"
#include "engine/worker.h"
#include "health/health.h"

#define BACKOFF_MIN_MS 100

static void publish(struct gw_watcher *ctl, struct gw_routes *rt)
{
    for (int i = 0; i < ctl->nworkers; i++)
        gw_worker_offer_routes(&ctl->workers[i], rt);
    gw_kvview_want(gw_kvview_global(), rt); /* its precise pools, for the KV stream reader */
    gw_routes_unref(ctl->current);
    ctl->current = rt;
    atomic_store(&ctl->version, rt->version);
    atomic_fetch_add(&ctl->reloads, 1);
    uint64_t at = gw_realtime_ms();
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
    int gone = gw_loader_in_list(ctl->lease_gone_pub, addr);
    pthread_mutex_unlock(&ctl->applied_mu);
    return gone;
}

/* Loads a snapshot at <version> and publishes it. Returns 0, or -1 on a
 * Redis error (the connection is to be dropped). */
static int reload(struct gw_watcher *ctl, redisContext *c, uint64_t version)
{
    struct gw_load ld = {
        .cfg = ctl->cfg, .prev = ctl->current, .config_errors = &ctl->config_errors};
    if (gw_loader_run(c, &ld) < 0) {
        gw_loader_free(&ld);
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
        gw_loader_free(&ld);
        return 0;
    }
    /* Redis pools, then the --pool pools Redis does not define. */
    size_t nflags = ctl->flags ? ctl->flags->npools : 0;
    struct gw_pool_spec *specs = gw_calloc(ld.npools + nflags + 1, sizeof(*specs));
    if (!specs) {
        gw_loader_free(&ld);
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
    gw_loader_free(&ld);
    return 0;
}

/* infergw:version as a number (missing = 0). Returns 0, or -1 on error. */
static int read_version(struct gw_watcher *ctl, redisContext *c, uint64_t *out)
{
    char key[512];
    gw_key_version(key, sizeof(key), ctl->cfg->redis_prefix);
    redisReply *r = gw_loader_cmd(c, "GET %s", key);
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
    redisReply *r = gw_loader_cmd(c, "ROLE");
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
        int gone = gw_loader_in_list(ctl->lease_gone, r->addr);
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
    return gw_stopper_wait(&ctl->stopper, ms);
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

    while (!gw_stopper_stopping(&ctl->stopper)) {
        if (!c) {
            char err[256], addr[300] = "";
            c = gw_redis_connect(&ctl->url, (int)cfg->redis_timeout_ms, addr, sizeof(addr), err,
                                 sizeof(err));
            if (c)
                sub = gw_redis_connect(&ctl->url, (int)cfg->redis_timeout_ms, NULL, 0, err,
                                       sizeof(err));
            redisReply *r = sub ? gw_loader_cmd(sub, "SUBSCRIBE %s", channel) : NULL;
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
            char *gone = gw_loader_lease_gone(c, ctl->cfg->redis_prefix);
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
                                  {.fd = ctl->stopper.fd, .events = POLLIN}};
            int pr = poll(p, 2, (int)cfg->redis_poll_ms);
            if (gw_stopper_stopping(&ctl->stopper))
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
    ctl->stopper.fd = -1;
    if (gw_redis_url_parse(cfg->redis_url, &ctl->url, err, errlen) < 0)
        return -1;
    int src = gw_stopper_init(&ctl->stopper);
    if (src < 0) {
        snprintf(err, errlen, "eventfd: %s", strerror(-src));
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
    return gw_stopper_start(&ctl->stopper, ctrl_main, ctl);
}

void gw_watcher_stop(struct gw_watcher *ctl)
{
    gw_stopper_stop(&ctl->stopper);
    gw_routes_unref(ctl->current);
    gw_routes_unref(ctl->flags);
    ctl->current = ctl->flags = NULL;
    gw_free(ctl->lease_gone);
    ctl->lease_gone = NULL;
    gw_free(ctl->lease_gone_pub);
    ctl->lease_gone_pub = NULL;
    pthread_mutex_destroy(&ctl->applied_mu);
}
