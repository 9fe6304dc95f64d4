/* SPDX-License-Identifier: Apache-2.0 */
/* poolstate — per-worker, per-pool learned state; see poolstate.h. */
#include "route/poolstate.h"

#include <string.h>

#include "base/mem.h"

struct gw_poolstate *gw_poolstate_get(struct gw_poolstate **head, const char *name, size_t len)
{
    /* A handful of pools per gateway: a list with move-to-front keeps the
     * busiest pools first. */
    for (struct gw_poolstate **pp = head; *pp; pp = &(*pp)->next) {
        struct gw_poolstate *ps = *pp;
        if (ps->name_len == len && memcmp(ps->name, name, len) == 0) {
            if (pp != head) {
                *pp = ps->next;
                ps->next = *head;
                *head = ps;
            }
            return ps;
        }
    }
    struct gw_poolstate *ps = gw_calloc(1, sizeof(*ps));
    if (!ps)
        return NULL;
    ps->name = gw_malloc(len + 1);
    if (!ps->name) {
        gw_free(ps);
        return NULL;
    }
    memcpy(ps->name, name, len);
    ps->name[len] = '\0';
    ps->name_len = len;
    gw_latency_init(&ps->latency, 0);
    ps->next = *head;
    *head = ps;
    return ps;
}

void gw_poolstate_free_all(struct gw_poolstate **head)
{
    while (*head) {
        struct gw_poolstate *ps = *head;
        *head = ps->next;
        gw_free(ps->name);
        gw_free(ps);
    }
}
