/* SPDX-License-Identifier: Apache-2.0 */
/* auth — see auth.h. One process-wide chain, built before the workers start
 * and never written afterwards, plus one host-services block per worker
 * (infergw_host) through which the plugins reach that worker's snapshot. */
#include "auth/auth.h"

#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

#include "auth/authdb.h"
#include "auth/bearer.h"
#include "base/config.h"
#include "base/grpcwire.h"
#include "base/hdrlist.h"
#include "base/log.h"
#include "base/mem.h"
#include "obs/metrics.h"
#include "auth/plugin.h"
#include "auth/ratelimit.h"
#include "route/route.h"

/* The built-in plugins (plugins/). */
extern const struct infergw_plugin infergw_apikey_plugin;
extern const struct infergw_plugin infergw_jwt_plugin;
extern const struct infergw_plugin infergw_mtls_plugin;

/* Metadata entries handed to the plugins; a call with more passes only the
 * first ones (the authorization value is read separately). */
#define AUTH_MAX_MD 64

struct auth_worker {
    struct infergw_host host;
    const struct gw_authdb *db; /* the calling worker's snapshot, set per call */
    uint64_t now_ns;
};

static struct {
    int on;
    int mtls;
    int nworkers;
    struct gw_plugin_chain chain;
    struct auth_worker *workers; /* [nworkers], host.impl points at each */
    struct auth_worker main;     /* for init/destroy on the main thread */
} g_auth;

/* --- host services --------------------------------------------------------- */

static const char *host_apikey_lookup(const struct infergw_host *host, const uint8_t sha256[32],
                                      int64_t *expires_at)
{
    const struct auth_worker *aw = host->impl;
    return gw_authdb_apikey(aw->db, sha256, expires_at);
}

static int64_t host_now_unix(const struct infergw_host *host)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (int64_t)ts.tv_sec;
}

static uint64_t host_now_ns(const struct infergw_host *host)
{
    const struct auth_worker *aw = host->impl;
    if (aw->now_ns)
        return aw->now_ns;
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void host_log(const struct infergw_host *host, int level, const char *event,
                     const char *message)
{
    if (level < GW_LOG_DEBUG)
        level = GW_LOG_DEBUG;
    if (level > GW_LOG_ERROR)
        level = GW_LOG_ERROR;
    gw_log((enum gw_log_level)level, event ? event : "plugin", "{s:s}", "message",
           message ? message : "");
}

static void *host_zalloc(size_t n)
{
    return gw_calloc(1, n);
}

static void host_setup(struct auth_worker *aw, int nworkers)
{
    memset(aw, 0, sizeof(*aw));
    aw->host.abi_version = INFERGW_PLUGIN_ABI_VERSION;
    aw->host.apikey_lookup = host_apikey_lookup;
    aw->host.now_unix = host_now_unix;
    aw->host.now_ns = host_now_ns;
    aw->host.log = host_log;
    aw->host.alloc = gw_malloc;
    aw->host.zalloc = host_zalloc;
    aw->host.free = gw_free;
    aw->host.nworkers = nworkers;
    aw->host.impl = aw;
}

/* --- start and stop ---------------------------------------------------------- */

/* "keys=A,keys=B,issuer=I,audience=A,claim=C,leeway=N,cache=N" for the
 * built-in JWT plugin (config.c refuses commas in these values). */
static int jwt_args(const struct gw_auth_conf *a, char *out, size_t outlen)
{
    size_t n = 0;
    int w;
    for (size_t i = 0; i < a->njwt_keys; i++) {
        w = snprintf(out + n, outlen - n, "keys=%s,", a->jwt_keys[i]);
        if (w < 0 || (size_t)w >= outlen - n)
            return -1;
        n += (size_t)w;
    }
    w = snprintf(out + n, outlen - n, "claim=%s,leeway=%u,cache=%u%s%s%s%s", a->jwt_tenant_claim,
                 a->jwt_leeway_s, a->jwt_cache_size, a->jwt_issuer[0] ? ",issuer=" : "",
                 a->jwt_issuer, a->jwt_audience[0] ? ",audience=" : "", a->jwt_audience);
    return w < 0 || (size_t)w >= outlen - n ? -1 : 0;
}

int gw_auth_init(const struct gw_config *cfg, char *err, size_t errlen)
{
    const struct gw_auth_conf *a = &cfg->auth;
    memset(&g_auth, 0, sizeof(g_auth));
    if (a->none) {
        if (a->nplugins || a->njwt_keys || a->mtls_tenant_from[0]) {
            snprintf(err, errlen,
                     "--auth=none turns authentication off: drop --plugin, --jwt-keys and "
                     "--mtls-tenant-from, or use --auth=on");
            return -1;
        }
        gw_log(GW_LOG_WARN, "auth_disabled", "{s:s}", "message",
               "--auth=none: every call is accepted without authentication, no tenant "
               "limits apply; use only for local development");
        return 0;
    }
    int nworkers = cfg->workers > 0 ? cfg->workers : 1;
    g_auth.workers = gw_calloc((size_t)nworkers, sizeof(*g_auth.workers));
    if (!g_auth.workers) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    g_auth.nworkers = nworkers;
    for (int i = 0; i < nworkers; i++)
        host_setup(&g_auth.workers[i], nworkers);
    host_setup(&g_auth.main, nworkers);
    const struct infergw_host *h = &g_auth.main.host;

    json_t *names = json_array();
    for (size_t i = 0; i < a->nplugins; i++)
        if (gw_plugin_chain_load(&g_auth.chain, a->plugins[i], h, err, errlen) < 0)
            goto fail;
    if (gw_plugin_chain_add(&g_auth.chain, &infergw_apikey_plugin, "", NULL, "apikey", h, err,
                            errlen) < 0)
        goto fail;
    if (a->njwt_keys) {
        char args[8192];
        if (jwt_args(a, args, sizeof(args)) < 0) {
            snprintf(err, errlen, "--jwt-keys: too many or too long paths");
            goto fail;
        }
        if (gw_plugin_chain_add(&g_auth.chain, &infergw_jwt_plugin, args, NULL, "jwt", h, err,
                                errlen) < 0)
            goto fail;
    }
    if (a->mtls_tenant_from[0]) {
        char args[32];
        snprintf(args, sizeof(args), "from=%s", a->mtls_tenant_from);
        if (gw_plugin_chain_add(&g_auth.chain, &infergw_mtls_plugin, args, NULL, "mtls", h, err,
                                errlen) < 0)
            goto fail;
        g_auth.mtls = 1;
    }
    for (size_t i = 0; i < g_auth.chain.n; i++)
        json_array_append_new(names, json_string(g_auth.chain.p[i].desc->name));
    gw_log(GW_LOG_INFO, "auth", "{s:s, s:o}", "mode", "on", "chain", names);
    g_auth.on = 1;
    return 0;
fail:
    json_decref(names);
    gw_auth_shutdown();
    return -1;
}

int gw_auth_reload(void)
{
    int failed = 0;
    for (size_t i = 0; i < g_auth.chain.n; i++) {
        const struct gw_plugin *p = &g_auth.chain.p[i];
        if (!p->desc->reload)
            continue;
        char err[256] = "";
        if (p->desc->reload(p->state, err, sizeof(err)) < 0) {
            failed++;
            gw_log(GW_LOG_ERROR, "auth_reload_failed", "{s:s, s:s}", "plugin", p->desc->name,
                   "error", err[0] ? err : "reload failed");
        } else {
            gw_log(GW_LOG_INFO, "auth_reloaded", "{s:s}", "plugin", p->desc->name);
        }
    }
    return failed;
}

void gw_auth_shutdown(void)
{
    gw_plugin_chain_free(&g_auth.chain);
    gw_free(g_auth.workers);
    memset(&g_auth, 0, sizeof(g_auth));
}

/* --- per call ------------------------------------------------------------------ */

static void verdict(struct gw_auth_verdict *v, int status, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));
static void verdict(struct gw_auth_verdict *v, int status, const char *fmt, ...)
{
    v->status = status;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(v->message, sizeof(v->message), fmt, ap);
    va_end(ap);
}

static void refuse(const struct gw_auth_request *req, struct gw_auth_verdict *v, int status,
                   int reason, const char *plugin, const char *message)
{
    gw_metrics_auth_failure(req->metrics, reason);
    gw_log(GW_LOG_DEBUG, "auth_refused", "{s:I, s:s, s:s, s:s}", "call", (json_int_t)req->call_id,
           "peer", req->peer ? req->peer : "", "plugin", plugin, "reason",
           gw_metrics_auth_reason_name(reason));
    verdict(v, status, "%s", message);
}

/* The message when no plugin recognised the call's credentials. */
static void refuse_unclaimed(const struct gw_auth_request *r, struct gw_auth_verdict *v,
                             const struct infergw_auth_request *req)
{
    if (req->bad_authorization)
        refuse(r, v, GW_GRPC_UNAUTHENTICATED, INFERGW_REASON_MALFORMED, "chain",
               "authorization metadata is not 'Bearer <token>'");
    else if (req->bearer)
        refuse(r, v, GW_GRPC_UNAUTHENTICATED, INFERGW_REASON_UNKNOWN_KEY, "chain",
               "bearer token not recognised by any authenticator (a JWT needs --jwt-keys)");
    else
        refuse(r, v, GW_GRPC_UNAUTHENTICATED, INFERGW_REASON_NO_CREDENTIALS, "chain",
               g_auth.mtls ? "no credentials: send 'authorization: Bearer <API key or JWT>' or "
                             "a client certificate"
                           : "no credentials: send 'authorization: Bearer <API key or JWT>'");
}

int gw_auth_on_headers(const struct gw_auth_request *r, struct gw_auth_verdict *v)
{
    v->status = GW_GRPC_OK;
    v->pushback_ms = -1;
    v->tenant[0] = '\0';
    v->message[0] = '\0';
    if (!g_auth.on)
        return 0;
    int wi = r->worker < g_auth.nworkers ? r->worker : 0;
    struct auth_worker *aw = &g_auth.workers[wi];
    aw->db = r->db;
    aw->now_ns = r->now_ns;

    struct infergw_metadata md[AUTH_MAX_MD];
    struct infergw_auth_request req = {.path = r->path, .md = md};
    const struct gw_hdrlist *hl = r->hdrs;
    for (size_t i = 0; i < hl->n && req.nmd < AUTH_MAX_MD; i++) {
        const struct gw_hdr_ent *e = &hl->ent[i];
        if (e->name_len && hl->buf[e->name_off] == ':')
            continue;
        md[req.nmd++] = (struct infergw_metadata){hl->buf + e->name_off, e->name_len,
                                                  hl->buf + e->value_off, e->value_len};
    }
    size_t alen;
    const char *auth = gw_hdrlist_get(hl, "authorization", &alen);
    if (auth && gw_bearer_parse(auth, alen, &req.bearer, &req.bearer_len) < 0)
        req.bad_authorization = 1;

    struct infergw_peer peer = {.addr = r->peer, .tls = r->tls, .verified = r->peer_verified};
    if (r->peer_verified) {
        peer.cn = r->peer_cn;
        peer.sans = r->peer_sans;
        peer.nsans = r->peer_nsans;
    }
    req.peer = &peer;

    struct infergw_auth_answer ans;
    size_t which = 0;
    enum infergw_auth_result res =
        gw_plugin_chain_run(&g_auth.chain, wi, &req, &aw->host, &ans, &which);
    aw->now_ns = 0;
    if (res == INFERGW_AUTH_PASS) {
        refuse_unclaimed(r, v, &req);
        return -1;
    }
    const char *plugin = g_auth.chain.p[which].desc->name;
    if (res == INFERGW_AUTH_REJECT) {
        refuse(r, v, ans.status, ans.reason, plugin, ans.message);
        return -1;
    }
    const struct gw_tenant *t = gw_authdb_tenant(aw->db, ans.tenant);
    if (!t) {
        char msg[256];
        snprintf(msg, sizeof(msg), "tenant '%s' is not configured on this gateway", ans.tenant);
        refuse(r, v, GW_GRPC_PERMISSION_DENIED, GW_AUTH_REASON_UNKNOWN_TENANT, plugin, msg);
        return -1;
    }
    snprintf(v->tenant, sizeof(v->tenant), "%s", ans.tenant);
    uint32_t retry_ms = 0;
    if (gw_ratelimit_take(t, r->now_ns, &retry_ms) < 0) {
        gw_metrics_ratelimited(r->metrics, t->name);
        verdict(v, GW_GRPC_RESOURCE_EXHAUSTED,
                "tenant '%s' is over its rate limit (%g calls/s): retry in %u ms", t->name, t->rps,
                retry_ms);
        v->pushback_ms = retry_ms;
        return -1;
    }
    return 0;
}

int gw_auth_on_pool(const struct gw_authdb *db, struct gw_metrics *metrics, const char *tenant,
                    const struct gw_pool *pool, struct gw_auth_verdict *v)
{
    v->status = GW_GRPC_OK;
    v->pushback_ms = -1;
    if (!g_auth.on)
        return 0;
    /* The snapshot may have changed since the headers: the caller passes the
     * current one rather than keep a pointer into an older one. */
    const struct gw_tenant *t = gw_authdb_tenant(db, tenant);
    if (!t) {
        gw_metrics_auth_failure(metrics, GW_AUTH_REASON_UNKNOWN_TENANT);
        verdict(v, GW_GRPC_PERMISSION_DENIED, "tenant '%s' is not configured on this gateway",
                tenant);
        return -1;
    }
    if (!gw_tenant_allows_model(t, pool->name, pool->name_len)) {
        gw_metrics_auth_failure(metrics, GW_AUTH_REASON_MODEL_DENIED);
        verdict(v, GW_GRPC_PERMISSION_DENIED, "tenant '%s' may not call model '%s'", tenant,
                pool->name);
        return -1;
    }
    return 0;
}

int gw_auth_model_allowed(const struct gw_authdb *db, const char *tenant, const char *model,
                          size_t len)
{
    if (!g_auth.on)
        return 1;
    const struct gw_tenant *t = gw_authdb_tenant(db, tenant);
    return t && gw_tenant_allows_model(t, model, len);
}
