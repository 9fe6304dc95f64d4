/* SPDX-License-Identifier: Apache-2.0 */
/* wstate — the helpers of a worker's shared state; see wstate.h. */
#include "engine/wstate.h"

uint64_t gw_worker_limit_hit(struct gw_worker *w, enum gw_metrics_limit which)
{
    gw_metrics_limit(w->metrics, which);
    return gw_log_limit_pass(&w->limit_log[which], w->loop.now_ns);
}

void gw_worker_access_log_flush(struct gw_timer *t, void *arg)
{
    struct gw_worker *w = arg;
    gw_accesslog_flush(&w->alog);
}

void gw_worker_access_log(struct gw_worker *w, const struct gw_access_entry *e)
{
    if (gw_accesslog_append(&w->alog, e))
        gw_loop_timer_in(&w->loop, &w->alog_timer, (uint64_t)GW_ACCESSLOG_FLUSH_MS * 1000000);
}

void gw_worker_adopt_ctx(_Atomic(SSL_CTX *) *slot, SSL_CTX **cur)
{
    if (!atomic_load_explicit(slot, memory_order_relaxed))
        return;
    SSL_CTX *ctx = atomic_exchange(slot, NULL);
    if (ctx) {
        SSL_CTX_free(*cur);
        *cur = ctx;
    }
}

SSL_CTX *gw_worker_tls_ctx(struct gw_worker *w)
{
    gw_worker_adopt_ctx(&w->tls_pending, &w->tls_ctx);
    return w->tls_ctx;
}
