/* authdb — tenants and API-key records, an immutable part of a routes
 * snapshot (route.h: gw_routes.authdb).
 *
 * Built off the workers (by the control plane from the Redis keys
 * infergw:tenant:<name> and infergw:apikey:<sha256-hex>, or at start from
 * --tenants/--api-keys files when there is no Redis), validated as it is
 * loaded, and read by the workers without locks. API keys are held only as
 * their SHA-256 hashes. Lookups are constant time in the key hash compare.
 */
#ifndef INFERGW_AUTHDB_H
#define INFERGW_AUTHDB_H

#include <stddef.h>
#include <stdint.h>

#define GW_TENANT_NAME_MAX 128

struct gw_tenant {
    char *name;
    char **models; /* allowed pools */
    size_t nmodels;
    int all_models; /* models = "*" */
    double rps;     /* 0 = unlimited */
    uint32_t burst; /* bucket size; 0 = max(1, rps) */
};

struct gw_authdb;

/* The tenant named <name>, or NULL. Borrowed, valid as long as the snapshot
 * holding <db> is. <db> may be NULL (no records loaded): returns NULL. */
const struct gw_tenant *gw_authdb_tenant(const struct gw_authdb *db, const char *name);

/* The API-key record of the key whose SHA-256 is <sha256>: returns its
 * tenant name (borrowed like above) and sets *expires_at (unix seconds, 0 =
 * never), or returns NULL when no record matches. <db> may be NULL. */
const char *gw_authdb_apikey(const struct gw_authdb *db, const uint8_t sha256[32],
                             int64_t *expires_at);

/* Whether tenant <t> may call pool <model> (<len> bytes). */
int gw_tenant_allows_model(const struct gw_tenant *t, const char *model, size_t len);

#endif
