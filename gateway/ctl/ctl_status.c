/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_status — infergw-ctl status (replica states as each live gateway
 * reports them) and version. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

#include "ctlview.h"

int ctl_run_status(struct ctl *x)
{
    struct ctl_records gws;
    int rc = ctl_scan_records(x, GW_KEY_GATEWAY, "", &gws);

    if (rc != CTL_EXIT_OK)
        return rc;
    struct ctl_status st;
    if (ctl_status_init(&st) < 0) {
        ctl_records_free(&gws);
        return ctl_say(CTL_EXIT_REDIS, "out of memory");
    }
    for (size_t i = 0; i < gws.n; i++) {
        const redisReply *h = gws.hashes[i];
        if (!h)
            continue;
        const char *id = ctl_record_suffix(x, gws.names[i], GW_KEY_GATEWAY);
        for (size_t k = 0; k + 1 < h->elements; k += 2)
            if (h->element[k]->str && h->element[k + 1]->str &&
                ctl_status_add(&st, id, h->element[k]->str, h->element[k + 1]->str) < 0) {
                ctl_status_free(&st);
                ctl_records_free(&gws);
                return ctl_say(CTL_EXIT_REDIS, "out of memory");
            }
        if (ctl_status_add(&st, id, NULL, NULL) < 0) {
            ctl_status_free(&st);
            ctl_records_free(&gws);
            return ctl_say(CTL_EXIT_REDIS, "out of memory");
        }
    }
    ctl_status_print(&st, stdout, x->a->json);
    ctl_status_free(&st);
    ctl_records_free(&gws);
    return CTL_EXIT_OK;
}

int ctl_run_version(struct ctl *x)
{
    char ver[KEYLEN];
    redisReply *r;

    gw_key_version(ver, sizeof(ver), x->a->prefix);
    if (!(r = ctl_command(x, "GET %s", ver)))
        return CTL_EXIT_REDIS;
    const char *v = r->type == REDIS_REPLY_STRING ? r->str : "0";
    if (x->a->json)
        ctl_view_print_json(stdout, json_pack("{s:s}", "version", v));
    else
        printf("%s\n", v);
    freeReplyObject(r);
    return CTL_EXIT_OK;
}
