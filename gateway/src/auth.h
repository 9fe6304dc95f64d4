/* auth — authentication (the plugin chain), authorization and rate limits
 * of a call, before it is routed. Loop thread only.
 */
#ifndef INFERGW_AUTH_H
#define INFERGW_AUTH_H

struct gw_call;
struct gw_pool;

/* Called once the request headers of <c> are complete (never for the
 * gateway's own grpc.health.v1 Check). Authenticates the call, sets
 * c->tenant, and takes a token from the tenant's rate limit. Returns 0 when
 * the call may go on, or -1 after ending it with gw_call_fail
 * (UNAUTHENTICATED, RESOURCE_EXHAUSTED with grpc-retry-pushback-ms). */
int gw_auth_on_headers(struct gw_call *c);

/* Called when the pool of <c> is known, before a replica is picked.
 * Returns 0 when the tenant may call <pool>, or -1 after ending the call
 * with PERMISSION_DENIED. */
int gw_auth_on_pool(struct gw_call *c, const struct gw_pool *pool);

#endif
