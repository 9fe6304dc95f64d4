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
 */
#ifndef INFERGW_AUTH_H
#define INFERGW_AUTH_H

#include <stddef.h>

struct gw_call;
struct gw_pool;
struct gw_config;
struct gw_worker;

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

/* Called once the request headers of <c> are complete (never for the
 * gateway's own grpc.health.v1 Check). Authenticates the call, sets
 * c->tenant, and takes a token from the tenant's rate limit. Returns 0 when
 * the call may go on, or -1 after ending it with gw_call_fail
 * (UNAUTHENTICATED; PERMISSION_DENIED for a tenant without a record;
 * RESOURCE_EXHAUSTED over the rate). The message says why and never
 * contains the credential. Worker thread. */
int gw_auth_on_headers(struct gw_call *c);

/* Called when the pool of <c> is known, before a replica is picked.
 * Returns 0 when the tenant may call <pool>, or -1 after ending the call
 * with PERMISSION_DENIED. Worker thread. */
int gw_auth_on_pool(struct gw_call *c, const struct gw_pool *pool);
/* Whether the tenant of call <c> may use model <model> (<len> bytes); 1 when
 * authentication is off. Loop thread. */
int gw_auth_model_allowed(const struct gw_call *c, const char *model, size_t len);

#endif
