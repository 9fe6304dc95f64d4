/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_lease — infergw-ctl replica register (a foreground registrar that
 * keeps a replica's lease alive and drains and removes it on SIGTERM/SIGINT)
 * and gc (removes leased replicas whose lease has been gone for the grace
 * period). */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <poll.h>
#include <signal.h>
#include <time.h>

#include "ctl.h"

#include "ctlview.h"
#include "route/ring.h"

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
            ctl_say(0, "register: Redis unreachable (%s); retrying", err);
        *logged = 1;
        return -1;
    }
    if (*logged)
        ctl_say(0, "register: Redis reached again at %s", addr);
    *logged = 0;
    return 0;
}

/* One run of ctl_lua_register. Returns 1 done, 0 to retry (Redis error,
 * logged), or a CTL_EXIT_* code > 1 for a refusal on the first run. */
static int register_once(struct ctl *x, int first)
{
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], ring[KEYLEN], ver[KEYLEN], leased[KEYLEN], lease[KEYLEN], prefix[320],
        num[32];
    struct ctl_eval e;
    redisReply *r;
    int rc = 1;

    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    gw_key_pool_ring(ring, sizeof(ring), x->a->prefix, a->pool);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    gw_key_leased(leased, sizeof(leased), x->a->prefix);
    gw_key_lease(lease, sizeof(lease), x->a->prefix, a->replica);
    snprintf(prefix, sizeof(prefix), "%s#", a->replica);
    ctl_ea_eval(&e, ctl_lua_register, 5);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, ring);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, leased);
    ctl_ea_str(&e, lease);
    ctl_ea_str(&e, a->pool);
    ctl_ea_str(&e, prefix);
    snprintf(num, sizeof(num), "%d", GW_RING_MAX_REPLICAS);
    ctl_ea_str(&e, num);
    snprintf(num, sizeof(num), "%u", a->ttl_ms);
    ctl_ea_str(&e, num);
    ctl_ea_str(&e, a->replica);
    ctl_ea_ring_members(&e, a->replica, a->weight);
    if (!(r = ctl_ea_run(x, &e)))
        return 0;
    if (ctl_reply_is(r, "nopool")) {
        if (first)
            rc = ctl_no_pool(a->pool);
        else
            ctl_say(0, "register: pool %s is gone; lease kept, retrying", a->pool);
    } else if (ctl_reply_is(r, "full")) {
        rc = first ? ctl_say(CTL_EXIT_USAGE,
                             "pool %s already has %lld replicas, the most a ring takes", a->pool,
                             ctl_reply_int(r, 1))
                   : 1;
    } else if (ctl_reply_int(r, 2) >= 0) {
        ctl_publish(x, ctl_reply_int(r, 2));
        ctl_say(0,
                "register: replica %s added to pool %s with %u vnodes (version %lld); lease %u ms",
                a->replica, a->pool, a->weight, ctl_reply_int(r, 2), a->ttl_ms);
    } else if (first) {
        ctl_say(0, "register: replica %s already in pool %s with %lld vnodes; lease %u ms",
                a->replica, a->pool, ctl_reply_int(r, 1), a->ttl_ms);
    }
    freeReplyObject(r);
    return rc;
}

/* Drain, wait, remove. Returns 0 when done, -1 on a Redis error. */
static int deregister(struct ctl *x, const sigset_t *orig)
{
    const struct ctl_args *a = x->a;
    char hash[KEYLEN], ver[KEYLEN], ring[KEYLEN], leased[KEYLEN], lease[KEYLEN], prefix[320];
    struct ctl_eval e;
    redisReply *r;

    gw_key_replica(hash, sizeof(hash), x->a->prefix, a->replica);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    gw_key_pool_ring(ring, sizeof(ring), x->a->prefix, a->pool);
    gw_key_leased(leased, sizeof(leased), x->a->prefix);
    gw_key_lease(lease, sizeof(lease), x->a->prefix, a->replica);
    if (!(r = ctl_replica_state_set(x, a->replica, "drain")))
        return -1;
    if (ctl_reply_is(r, "ok")) {
        ctl_publish(x, ctl_reply_int(r, 1));
        ctl_say(0, "register: replica %s drained (version %lld); removing in %u ms", a->replica,
                ctl_reply_int(r, 1), a->drain_ms);
    }
    freeReplyObject(r);
    /* In-flight calls finish meanwhile; a second signal cuts the wait. */
    stop_signal = 0;
    sleep_or_signal((int)a->drain_ms, orig);
    snprintf(prefix, sizeof(prefix), "%s#", a->replica);
    ctl_ea_eval(&e, ctl_lua_deregister, 5);
    ctl_ea_str(&e, ring);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, leased);
    ctl_ea_str(&e, lease);
    ctl_ea_str(&e, hash);
    ctl_ea_str(&e, prefix);
    ctl_ea_str(&e, a->replica);
    if (!(r = ctl_ea_run(x, &e)))
        return -1;
    ctl_publish(x, ctl_reply_int(r, 2));
    ctl_say(0,
            "register: replica %s removed from pool %s (%lld vnodes), lease deleted (version %lld)",
            a->replica, a->pool, ctl_reply_int(r, 1), ctl_reply_int(r, 2));
    freeReplyObject(r);
    return 0;
}

int ctl_run_replica_register(struct ctl *x)
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
    ctl_warn_unresolvable(a->replica, a->pool);
    while (!stop_signal) {
        int rc = reconnect(x, &logged) == 0 ? register_once(x, first) : 0;
        if (rc > 1)
            return rc;
        if (rc == 1) {
            if (first)
                ctl_say(0, "register: keeping the lease of %s alive every %d ms until SIGTERM",
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
    ctl_say(0, "register: %s received; draining %s", stop_signal == SIGINT ? "SIGINT" : "SIGTERM",
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
    return ctl_say(CTL_EXIT_REDIS,
                   "register: could not remove %s (Redis unreachable); its lease expires within %u "
                   "ms and infergw-ctl gc removes it",
                   a->replica, a->ttl_ms);
}

int ctl_run_gc(struct ctl *x)
{
    char leased[KEYLEN], gone[KEYLEN], pools[KEYLEN], ver[KEYLEN], head[KEYLEN], grace[16];
    struct ctl_eval e;
    redisReply *r;
    int rc;

    gw_key_leased(leased, sizeof(leased), x->a->prefix);
    gw_key_lease_gone(gone, sizeof(gone), x->a->prefix);
    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    snprintf(grace, sizeof(grace), "%u", x->a->grace_s);
    ctl_ea_eval(&e, ctl_lua_gc, 4);
    ctl_ea_str(&e, leased);
    ctl_ea_str(&e, gone);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, ver);
    gw_key_lease_head(head, sizeof(head), x->a->prefix);
    ctl_ea_str(&e, head);
    ctl_ea_str(&e, grace);
    ctl_ea_ring_head(x, &e);
    if (!(r = ctl_ea_run(x, &e)))
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
        ctl_say(0, "gc: lease of %.*s gone; removed in %s s unless it comes back",
                (int)(sp ? sp - s : (ptrdiff_t)strlen(s)), s, sp ? sp + 1 : "?");
    }
    rc = ctl_report(x, ctl_reply_int(r, 1) >= 0 ? ctl_reply_int(r, 1) : -1,
                    json_pack("{s:o, s:o}", "removed", jr, "waiting", jw),
                    "gc: %zu replica%s removed%s%s, %zu waiting for the grace period", nrem,
                    nrem == 1 ? "" : "s", nrem ? ":" : "", list, nwait);
    freeReplyObject(r);
    return rc;
}
