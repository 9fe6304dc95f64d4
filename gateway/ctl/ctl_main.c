/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_main — infergw-ctl's entry point: parses the command line
 * (ctlargs.c), connects to Redis and runs the command (ctl.h). */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

static int dispatch(struct ctl *x)
{
    switch (x->a->cmd) {
    case CTL_POOL_ADD:
        return ctl_run_pool_add(x);
    case CTL_POOL_REMOVE:
        return ctl_run_pool_remove(x);
    case CTL_POOL_LIST:
        return ctl_run_pool_list(x);
    case CTL_REPLICA_ADD:
        return ctl_run_replica_set(x, CTL_SET_ADD);
    case CTL_REPLICA_WEIGHT:
        return ctl_run_replica_set(x, CTL_SET_WEIGHT);
    case CTL_REPLICA_REMOVE:
        return ctl_run_replica_set(x, CTL_SET_REMOVE);
    case CTL_REPLICA_DRAIN:
        return ctl_run_replica_state(x, 1);
    case CTL_REPLICA_UNDRAIN:
        return ctl_run_replica_state(x, 0);
    case CTL_REPLICA_LIST:
    case CTL_RING_SHOW:
    case CTL_ROUTE:
        return ctl_run_show_ring(x);
    case CTL_CONF_GET:
        return ctl_run_conf_get(x);
    case CTL_CONF_SET:
        return ctl_run_conf_write(x, 1);
    case CTL_CONF_UNSET:
        return ctl_run_conf_write(x, 0);
    case CTL_VERSION:
        return ctl_run_version(x);
    case CTL_TENANT_ADD:
        return ctl_run_tenant_add(x);
    case CTL_TENANT_REMOVE:
        return ctl_run_tenant_remove(x);
    case CTL_TENANT_SHOW:
        return ctl_run_tenant_show(x);
    case CTL_KEY_CREATE:
        return ctl_run_key_create(x);
    case CTL_KEY_REVOKE:
        return ctl_run_key_revoke(x);
    case CTL_KEY_LIST:
        return ctl_run_key_list(x);
    case CTL_REPLICA_REGISTER:
        return ctl_run_replica_register(x);
    case CTL_GC:
        return ctl_run_gc(x);
    case CTL_STATUS:
        return ctl_run_status(x);
    case CTL_DUMP:
        return ctl_run_dump(x);
    case CTL_RESTORE:
        return ctl_run_restore(x);
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
        return ctl_say(rc, "%s", err);
    if (a.cmd == CTL_HELP) {
        ctl_args_usage(stdout);
        return CTL_EXIT_OK;
    }
    if (a.cmd == CTL_KEY_HASH)
        return ctl_run_key_hash(&a);
    if (gw_redis_url_parse(a.redis_url, &url, err, sizeof(err)) < 0)
        return ctl_say(CTL_EXIT_USAGE, "--redis: %s", err);
    x.c = gw_redis_connect(&url, a.timeout_ms, NULL, 0, err, sizeof(err));
    if (!x.c && a.cmd == CTL_REPLICA_REGISTER) {
        ctl_say(0, "register: Redis unreachable (%s); retrying", err);
    } else if (!x.c) {
        char where[600];

        gw_redis_url_format(&url, where, sizeof(where));
        return ctl_say(CTL_EXIT_REDIS, "cannot reach Redis at %s: %s", where, err);
    }
    rc = dispatch(&x);
    if (x.c)
        redisFree(x.c);
    if (fflush(stdout) != 0 && rc == CTL_EXIT_OK)
        rc = CTL_EXIT_REDIS;
    return rc;
}
