/* SPDX-License-Identifier: Apache-2.0 */
/* auth — authentication (the plugin chain), authorization and rate limits
 * of a call, before it is routed.
 *
 * gw_auth_init builds the chain once at start from the flags: the --plugin
 * shared objects in flag order, then the built-in authenticators (plugins/
 * on the same ABI, infergw/plugin.h): API key (always, when authentication
 * is on), JWT (with --jwt-keys), mTLS (with --mtls-tenant-from). The chain
 * is read-only while the workers run; each worker has its own plugin states
 * (e.g. the JWT cache), so a call is decided without locks or I/O: API keys
 * and tenants come from the worker's routing snapshot (authdb.h).
 *
 * The module knows nothing of calls or connections: the call engine fills a
 * read-only view of the request (gw_auth_request: headers, path, peer,
 * tenant records, worker, clock) and applies the verdict it gets back
 * (gw_auth_verdict: a status, its message, the tenant, a pushback). Refusals
 * are counted in the worker's metrics and logged (auth_refused) here.
 */
#ifndef INFERGW_AUTH_H
#define INFERGW_AUTH_H

#include <stddef.h>
#include <stdint.h>

#include "auth/authdb.h"

struct gw_pool;
struct gw_config;
struct gw_hdrlist;
struct gw_metrics;

/* What authentication reads of a call (filled by the call engine). */
struct gw_auth_request {
    const struct gw_hdrlist *hdrs; /* request headers; pseudo-headers are skipped */
    const char *path;              /* :path */
    const char *peer;              /* the client's address */
    int tls;                       /* the connection is TLS */
    int peer_verified;             /* a client certificate verified (mutual TLS) */
    const char *peer_cn;           /* its subject CN, when verified (or NULL) */
    const char *const *peer_sans;  /* its subjectAltNames, when verified */
    size_t peer_nsans;
    const struct gw_authdb *db; /* tenants and API keys of the worker's snapshot (may be NULL) */
    struct gw_metrics *metrics; /* the worker's: refusals are counted there */
    int worker;                 /* the worker's index (each has its plugin states) */
    uint64_t now_ns;            /* the loop's clock */
    uint64_t call_id;           /* for log lines */
};

/* What the call engine applies. */
struct gw_auth_verdict {
    int status;          /* GW_GRPC_OK: the call goes on; else it ends with this status */
    int64_t pushback_ms; /* >= 0: send grpc-retry-pushback-ms with the refusal; -1: none */
    char tenant[GW_TENANT_NAME_MAX + 1]; /* the authenticated tenant, "" = none */
    char message[512];                   /* why it was refused; never contains the credential */
};

/* Builds the chain from cfg->auth for cfg->workers workers, loading and
 * initialising every plugin, and logs what is on (a loud warning with
 * --auth=none). Returns 0, or -1 with the reason in <err> (a plugin that
 * cannot be loaded, another plugin ABI, a bad key file: exit 2). Main
 * thread, before the workers start. */
int gw_auth_init(const struct gw_config *cfg, char *err, size_t errlen);
/* SIGHUP: asks every plugin that can (e.g. JWT: its key files) to read its
 * files again, while the workers run; logs auth_reloaded or
 * auth_reload_failed (the plugin keeps what it had) for each. Returns the
 * number of plugins that failed. Main thread. */
int gw_auth_reload(void);
/* Destroys the chain. Main thread, after the workers stopped. */
void gw_auth_shutdown(void);

/* Decides a call whose request headers are complete (never the gateway's
 * own grpc.health.v1 Check): authenticates <req>, names the tenant, and
 * takes a token from the tenant's rate limit. Fills <v> and returns 0 when
 * the call may go on (v->tenant set; "" with authentication off), or -1
 * (v->status UNAUTHENTICATED; PERMISSION_DENIED for a tenant without a
 * record; RESOURCE_EXHAUSTED over the rate, with v->pushback_ms). Worker
 * thread. */
int gw_auth_on_headers(const struct gw_auth_request *req, struct gw_auth_verdict *v);

/* Called when the pool of a call by <tenant> is known, before a replica is
 * picked, with the worker's current tenant records <db> (the snapshot may
 * have changed since the headers). Returns 0 when the tenant may call
 * <pool>, or -1 with <v> filled (PERMISSION_DENIED; counted in <metrics>).
 * Worker thread. */
int gw_auth_on_pool(const struct gw_authdb *db, struct gw_metrics *metrics, const char *tenant,
                    const struct gw_pool *pool, struct gw_auth_verdict *v);
/* Whether <tenant> may use model <model> (<len> bytes) under <db>; 1 when
 * authentication is off. Loop thread. */
int gw_auth_model_allowed(const struct gw_authdb *db, const char *tenant, const char *model,
                          size_t len);

#endif
