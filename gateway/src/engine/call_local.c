/* SPDX-License-Identifier: Apache-2.0 */
/* call_local — the methods the gateway answers itself (localsvc.h: the
 * KServe server liveness and readiness calls): the request is read whole
 * from the log and the answer relayed as a replica's would be. See call.h
 * and call_int.h.
 */
#include "engine/call_int.h"

#include "base/mem.h"
#include "route/route.h"

static int pools_ready(struct gw_worker *w)
{
    const struct gw_routes *rt = w->routes;
    for (size_t i = 0; i < rt->npools; i++) {
        const struct gw_pool *p = &rt->pools[i];
        int any = 0;
        for (size_t j = 0; j < p->ring.nreplicas && !any; j++)
            any = !rt->replicas[p->replica_ids[j]].drain &&
                  gw_upstream_eligible(w->upmap[p->replica_ids[j]]);
        if (!any)
            return 0;
    }
    return 1;
}

void call__answer_local(struct gw_call *c)
{
    uint8_t *req = NULL;
    size_t len = c->reqlog.len;
    if (len < 5) {
        gw_call_fail(c, GW_GRPC_INVALID_ARGUMENT, "request message missing");
        return;
    }
    req = gw_malloc(len);
    if (!req) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    gw_bufq_read(&c->reqlog, req, len);
    uint32_t mlen =
        (uint32_t)req[1] << 24 | (uint32_t)req[2] << 16 | (uint32_t)req[3] << 8 | req[4];
    int compressed = req[0] != 0;
    if (compressed || mlen != len - 5) {
        gw_free(req);
        gw_call_fail(c, compressed ? GW_GRPC_UNIMPLEMENTED : GW_GRPC_INVALID_ARGUMENT,
                     compressed ? "compressed requests are not supported for this method"
                                : "expected exactly one request message");
        return;
    }
    uint8_t *out = NULL;
    size_t outlen = 0;
    const char *err = NULL;
    int st = gw_localsvc_answer(c->local, req + 5, mlen, pools_ready(c->w), c->w->draining, &out,
                                &outlen, &err);
    gw_free(req);
    if (st != GW_GRPC_OK) {
        gw_call_fail(c, st, "%s", err);
        return;
    }
    int rc = gw_bufq_append(&c->respbuf, out, outlen);
    if (rc == 0)
        call__conn_held(c, (int64_t)outlen);
    gw_free(out);
    if (rc < 0 || gw_hdrlist_add(&c->resp_hdrs, "content-type", 12, "application/grpc", 16) < 0 ||
        gw_hdrlist_add(&c->resp_trailers, "grpc-status", 11, "0", 1) < 0) {
        gw_call_fail(c, GW_GRPC_RESOURCE_EXHAUSTED, "gateway out of memory");
        return;
    }
    c->trailers_ready = 1;
    c->resp_done = 1;
    gw_loop_timer_cancel(&c->w->loop, &c->deadline_timer);
    call__relay_response(c);
}
