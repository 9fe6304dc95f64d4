/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_pool — infergw-ctl pool add/remove/list and conf get/set/unset (the
 * pools set, a pool's ring and conf, the global conf). */
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
#include "route/tunables.h"

int ctl_run_pool_add(struct ctl *x)
{
    char pools[KEYLEN], ver[KEYLEN];
    struct ctl_eval e;
    redisReply *r;
    int rc;

    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_pool_add, 2);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, x->a->pool);
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (ctl_reply_is(r, "exists"))
        rc = ctl_report(x, -1, json_pack("{s:s}", "pool", x->a->pool), "pool %s already exists",
                        x->a->pool);
    else
        rc = ctl_report(x, ctl_reply_int(r, 1), json_pack("{s:s}", "pool", x->a->pool),
                        "pool %s added", x->a->pool);
    freeReplyObject(r);
    return rc;
}

int ctl_run_pool_remove(struct ctl *x)
{
    char pools[KEYLEN], ring[KEYLEN], conf[KEYLEN], ver[KEYLEN];
    struct ctl_eval e;
    redisReply *r;
    int rc;

    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    gw_key_pool_ring(ring, sizeof(ring), x->a->prefix, x->a->pool);
    gw_key_pool_conf(conf, sizeof(conf), x->a->prefix, x->a->pool);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_pool_remove, 4);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, ring);
    ctl_ea_str(&e, conf);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, x->a->pool);
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (ctl_reply_is(r, "nopool"))
        rc = ctl_say(CTL_EXIT_NOTFOUND, "pool %s does not exist", x->a->pool);
    else
        rc = ctl_report(x, ctl_reply_int(r, 1), json_pack("{s:s}", "pool", x->a->pool),
                        "pool %s removed with its ring and conf", x->a->pool);
    freeReplyObject(r);
    return rc;
}

int ctl_run_pool_list(struct ctl *x)
{
    char pools[KEYLEN];
    redisReply *r;
    const char **names;

    gw_key_pools(pools, sizeof(pools), x->a->prefix);
    if (!(r = ctl_command(x, "SMEMBERS %s", pools)))
        return CTL_EXIT_REDIS;
    names = gw_calloc(r->elements + 1, sizeof(*names));
    if (!names) {
        freeReplyObject(r);
        return ctl_say(CTL_EXIT_REDIS, "out of memory");
    }
    for (size_t i = 0; i < r->elements; i++)
        names[i] = r->element[i]->str ? r->element[i]->str : "";
    qsort(names, r->elements, sizeof(*names), ctl_cmp_str);
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

static void conf_keys(struct ctl *x, char *pools, char *hash, char *ver)
{
    gw_key_pools(pools, KEYLEN, x->a->prefix);
    if (x->a->pool)
        gw_key_pool_conf(hash, KEYLEN, x->a->prefix, x->a->pool);
    else
        gw_key_conf(hash, KEYLEN, x->a->prefix);
    gw_key_version(ver, KEYLEN, x->a->prefix);
}

int ctl_run_conf_write(struct ctl *x, int set)
{
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], hash[KEYLEN], ver[KEYLEN];
    struct ctl_eval e;
    redisReply *r;
    int rc;

    conf_keys(x, pools, hash, ver);
    ctl_ea_eval(&e, set ? ctl_lua_conf_set : ctl_lua_conf_unset, 3);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, hash);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, a->pool ? a->pool : "");
    ctl_ea_str(&e, a->field);
    if (set)
        ctl_ea_str(&e, a->value);
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;

    json_t *j = json_pack("{s:s?, s:s, s:s?}", "pool", a->pool, "field", a->field, "value",
                          set ? a->value : NULL);
    char where[300];

    if (a->pool)
        snprintf(where, sizeof(where), "for pool %s", a->pool);
    else
        snprintf(where, sizeof(where), "globally");
    if (ctl_reply_is(r, "nopool")) {
        json_decref(j);
        rc = ctl_no_pool(a->pool);
    } else if (ctl_reply_is(r, "notset")) {
        json_decref(j);
        rc = ctl_say(CTL_EXIT_NOTFOUND, "%s is not set %s (in %s)", a->field, where, hash);
    } else if (ctl_reply_is(r, "same")) {
        rc = ctl_report(x, -1, j, "%s is already %s %s", a->field, a->value, where);
    } else if (set) {
        rc = ctl_report(x, ctl_reply_int(r, 1), j, "%s set to %s %s", a->field, a->value, where);
    } else {
        rc = ctl_report(x, ctl_reply_int(r, 1), j, "%s unset %s", a->field, where);
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

int ctl_run_conf_get(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char pools[KEYLEN], hash[KEYLEN], ver[KEYLEN], global[KEYLEN];
    struct ctl_conf_value vals[GW_TUN_COUNT];
    struct ctl_problems probs = {0};
    struct ctl_eval e;
    const char **gp, **pp;
    size_t ng, np;
    redisReply *r;

    conf_keys(x, pools, hash, ver);
    gw_key_conf(global, sizeof(global), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_read_conf, 3);
    ctl_ea_str(&e, pools);
    ctl_ea_str(&e, global);
    ctl_ea_str(&e, hash);
    ctl_ea_str(&e, a->pool ? a->pool : "");
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (ctl_reply_int(r, 0) == 0) {
        freeReplyObject(r);
        return ctl_no_pool(a->pool);
    }
    gp = pairs_of(r->elements > 1 ? r->element[1] : NULL, &ng);
    pp = pairs_of(r->elements > 2 ? r->element[2] : NULL, &np);
    if (!gp || !pp) {
        gw_free(gp);
        gw_free(pp);
        freeReplyObject(r);
        return ctl_say(CTL_EXIT_REDIS, "out of memory");
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
