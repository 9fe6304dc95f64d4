/* SPDX-License-Identifier: Apache-2.0 */
/* upleave — the upstream module's news that a replica is leaving, for the
 * streams on its connections (declared in upstream.h): a GOAWAY from the
 * replica, or a snapshot in which it is drained, its lease is gone, or it is
 * no longer listed. Each call stream's owner hears it through
 * gw_up_stream_ops.on_leaving and may move the stream (stream resume); the
 * stream itself is left as it is. Loop thread only.
 */
#include "engine/upstream.h"

#include "engine/wstate.h"
#include "route/route.h"

/* Tells every call stream of <uc> that its replica is leaving (their
 * owners may move them: gw_up_stream_ops.on_leaving). An owner resets its
 * stream at most: none leaves the list while it is walked. */
void gw_upstream_conn_leaving(struct gw_up_conn *uc, const char *why)
{
    for (struct gw_up_stream *st = uc->streams, *next; st; st = next) {
        next = st->next;
        if (st->ops->on_leaving)
            st->ops->on_leaving(st, why);
    }
}

static void upstream_leaving(struct gw_upstream *up, const char *why)
{
    for (int i = 0; i < up->nconns; i++)
        if (up->conns[i])
            gw_upstream_conn_leaving(up->conns[i], why);
    for (struct gw_up_conn *uc = up->draining, *next; uc; uc = next) {
        next = uc->drain_next;
        gw_upstream_conn_leaving(uc, why);
    }
}

void gw_upstream_notify_leaving(struct gw_worker *w)
{
    const struct gw_routes *rt = w->routes;
    for (size_t i = 0; i < rt->nreplicas; i++)
        if (rt->replicas[i].drain)
            upstream_leaving(w->upmap[i], "the replica is drained (or its lease is gone)");
    for (size_t i = 0; i < w->nups; i++)
        if (!w->ups[i]->in_use)
            upstream_leaving(w->ups[i], "the replica left the routing snapshot");
}
