/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_replica — infergw-ctl replica add/remove/weight/drain/undrain, and
 * the views of a pool's ring as the gateways build it: ring show, replica
 * list, route. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#include "base/mem.h"
#include "ctlview.h"
#include "route/ring.h"

/* Pushes the ring ZADD arguments of <replica> with <weight> vnodes: score
 * (its token, gw_hash32 of the member), then member "<replica>#<i>". */
void ctl_ea_ring_members(struct ctl_eval *e, const char *replica, uint32_t weight)
{
    char member[320], score[16];
    for (uint32_t i = 0; i < weight; i++) {
        int n = ctl_view_member(member, sizeof(member), replica, i);
        snprintf(score, sizeof(score), "%u", gw_hash32(member, (size_t)n));
        ctl_ea_str(e, score);
        ctl_ea_push(e, member, (size_t)n);
    }
}

int ctl_run_replica_set(struct ctl *x, enum ctl_set_mode mode)
{
    static const char *const modes[] = {"add", "weight", "remove"};
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], ring[KEYLEN], ver[KEYLEN], prefix[320], num[32];
    struct ctl_eval e;
    redisReply *r;
    int rc;

    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    gw_key_pool_ring(ring, sizeof(ring), x->a->prefix, a->pool);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    snprintf(prefix, sizeof(prefix), "%s#", a->replica);
    ctl_ea_eval(&e, ctl_lua_replica_set, 3);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, ring);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, a->pool);
    ctl_ea_str(&e, prefix);
    ctl_ea_str(&e, modes[mode]);
    snprintf(num, sizeof(num), "%d", GW_RING_MAX_REPLICAS);
    ctl_ea_str(&e, num);
    if (mode != CTL_SET_REMOVE)
        ctl_ea_ring_members(&e, a->replica, a->weight);
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;

    long long old = ctl_reply_int(r, 1);
    json_t *j = json_pack("{s:s, s:s}", "pool", a->pool, "replica", a->replica);

    if (ctl_reply_is(r, "nopool")) {
        json_decref(j);
        rc = ctl_no_pool(a->pool);
    } else if (ctl_reply_is(r, "noreplica")) {
        json_decref(j);
        rc = ctl_say(CTL_EXIT_NOTFOUND, "replica %s is not in pool %s", a->replica, a->pool);
    } else if (ctl_reply_is(r, "exists") && old != a->weight) {
        json_decref(j);
        rc = ctl_say(CTL_EXIT_USAGE,
                     "replica %s is already in pool %s with %lld vnodes; change its weight with: "
                     "infergw-ctl replica weight %s %s %u",
                     a->replica, a->pool, old, a->pool, a->replica, a->weight);
    } else if (ctl_reply_is(r, "full")) {
        json_decref(j);
        rc = ctl_say(CTL_EXIT_USAGE, "pool %s already has %lld replicas, the most a ring takes",
                     a->pool, old);
    } else if (ctl_reply_is(r, "exists") || ctl_reply_is(r, "same")) {
        json_object_set_new(j, "weight", json_integer(old));
        rc = ctl_report(x, -1, j, "replica %s is already in pool %s with %lld vnodes", a->replica,
                        a->pool, old);
    } else if (mode == CTL_SET_ADD) {
        ctl_warn_unresolvable(a->replica, a->pool);
        json_object_set_new(j, "weight", json_integer(a->weight));
        rc = ctl_report(x, ctl_reply_int(r, 2), j, "replica %s added to pool %s with %u vnodes",
                        a->replica, a->pool, a->weight);
    } else if (mode == CTL_SET_WEIGHT) {
        json_object_set_new(j, "old_weight", json_integer(old));
        json_object_set_new(j, "weight", json_integer(a->weight));
        rc = ctl_report(x, ctl_reply_int(r, 2), j, "replica %s in pool %s: %lld -> %u vnodes",
                        a->replica, a->pool, old, a->weight);
    } else {
        json_object_set_new(j, "old_weight", json_integer(old));
        rc = ctl_report(x, ctl_reply_int(r, 2), j,
                        "replica %s removed from pool %s (had %lld vnodes)", a->replica, a->pool,
                        old);
    }
    freeReplyObject(r);
    return rc;
}

redisReply *ctl_replica_state_set(struct ctl *x, const char *replica, const char *state)
{
    char pools[KEYLEN], hash[KEYLEN], ver[KEYLEN], member0[320];
    struct ctl_eval e;

    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    gw_key_replica(hash, sizeof(hash), x->a->prefix, replica);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    ctl_view_member(member0, sizeof(member0), replica, 0);
    ctl_ea_eval(&e, ctl_lua_replica_state, 3);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, hash);
    ctl_ea_str(&e, ver);
    ctl_ea_ring_head(x, &e);
    ctl_ea_str(&e, member0);
    ctl_ea_str(&e, state);
    return ctl_ea_run(x, &e);
}

int ctl_run_replica_state(struct ctl *x, int drain)
{
    const char *state = drain ? "drain" : "active";
    redisReply *r;
    int rc;

    if (!(r = ctl_replica_state_set(x, x->a->replica, state)))
        return CTL_EXIT_REDIS;
    json_t *j = json_pack("{s:s, s:s}", "replica", x->a->replica, "state", state);
    if (ctl_reply_is(r, "noreplica")) {
        json_decref(j);
        rc = ctl_say(CTL_EXIT_NOTFOUND,
                     "replica %s is in no pool; add it with: infergw-ctl replica add <pool> %s",
                     x->a->replica, x->a->replica);
    } else if (ctl_reply_is(r, "same")) {
        rc = ctl_report(x, -1, j, "replica %s is already %s", x->a->replica,
                        drain ? "draining" : "active");
    } else {
        rc = ctl_report(x, ctl_reply_int(r, 1), j, "replica %s %s", x->a->replica,
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
        return ctl_say(CTL_EXIT_REDIS, "out of memory");
    for (size_t i = 0; i < p->view.n; i++) {
        gw_key_replica(key, sizeof(key), x->a->prefix, p->view.addrs[i]);
        redisAppendCommand(x->c, "HGET %s state", key);
    }
    for (size_t i = 0; i < p->view.n; i++) {
        void *v = NULL;
        redisReply *r;

        if (redisGetReply(x->c, &v) != REDIS_OK || !(r = ctl_checked(x, v)))
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
    struct ctl_eval e;
    redisReply *r, *z;
    const char **members = NULL, **scores = NULL;
    int rc = CTL_EXIT_REDIS;

    memset(p, 0, sizeof(*p));
    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    gw_key_pool_ring(ring, sizeof(ring), x->a->prefix, x->a->pool);
    ctl_ea_eval(&e, ctl_lua_read_ring, 2);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, ring);
    ctl_ea_str(&e, x->a->pool);
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (ctl_reply_int(r, 0) == 0) {
        freeReplyObject(r);
        return ctl_no_pool(x->a->pool);
    }
    z = r->element[1];
    size_t n = z->type == REDIS_REPLY_ARRAY ? z->elements / 2 : 0;
    members = gw_calloc(n + 1, sizeof(*members));
    scores = gw_calloc(n + 1, sizeof(*scores));
    if (!members || !scores) {
        ctl_say(CTL_EXIT_REDIS, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < n; i++) {
        members[i] = z->element[2 * i]->str;
        scores[i] = z->element[2 * i + 1]->str;
    }
    if (ctl_view_ring_parse(&p->view, members, scores, n, &p->probs) < 0) {
        ctl_say(CTL_EXIT_REDIS, "out of memory");
        goto out;
    }
    if (p->view.n) {
        int b =
            gw_ring_build(&p->ring, (const char *const *)p->view.addrs, p->view.weights, p->view.n);
        if (b < 0) {
            /* The replicas are valid and distinct: -EINVAL means too many. */
            ctl_say(CTL_EXIT_REDIS, "cannot build the ring of pool %s: %s", x->a->pool,
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
int ctl_run_show_ring(struct ctl *x)
{
    struct pool_ring p;
    int rc = load_pool_ring(x, &p);

    if (rc != CTL_EXIT_OK)
        return rc;
    ctl_problems_print(&p.probs, stderr);
    if (p.probs.total)
        ctl_say(0, "warning: the gateways refuse invalid ring entries (see above); the view below "
                   "leaves them out");
    if (x->a->cmd == CTL_RING_SHOW) {
        ctl_view_print_ring(stdout, x->a->json, x->a->pool, &p.ring, p.drain);
    } else if (x->a->cmd == CTL_REPLICA_LIST) {
        ctl_view_print_replicas(stdout, x->a->json, x->a->pool, &p.ring, p.drain);
    } else if (x->a->prompt_file) {
        rc = ctl_route_prompt(x, &p.ring, p.drain);
    } else {
        uint32_t point;
        int first, second;

        ctl_view_route(&p.ring, p.drain, x->a->key, strlen(x->a->key), &point, &first, &second);
        ctl_view_print_route(stdout, x->a->json, x->a->pool, x->a->key, point, &p.ring, first,
                             second);
        if (first < 0)
            rc = ctl_say(CTL_EXIT_NOTFOUND, "pool %s has %s", x->a->pool,
                         p.view.n ? "no active replica (all drained)" : "no replicas");
    }
    pool_ring_free(&p);
    return rc;
}
