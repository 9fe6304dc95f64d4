/* authdb_none — stand-ins for authdb.c and ratelimit.c, compiled only while
 * those modules are absent from gateway/src (see gateway/CMakeLists.txt):
 * no tenant or API-key records exist and no rate limit applies, so with
 * authentication on every call is refused. */
#include <string.h>

#include "authdb.h"
#include "ratelimit.h"

const struct gw_tenant *gw_authdb_tenant(const struct gw_authdb *db, const char *name)
{
    (void)db;
    (void)name;
    return NULL;
}

const char *gw_authdb_apikey(const struct gw_authdb *db, const uint8_t sha256[32],
                             int64_t *expires_at)
{
    (void)db;
    (void)sha256;
    (void)expires_at;
    return NULL;
}

int gw_tenant_allows_model(const struct gw_tenant *t, const char *model, size_t len)
{
    if (t->all_models)
        return 1;
    for (size_t i = 0; i < t->nmodels; i++)
        if (strlen(t->models[i]) == len && !memcmp(t->models[i], model, len))
            return 1;
    return 0;
}

int gw_ratelimit_take(const struct gw_tenant *t, uint64_t now_ns, uint32_t *retry_after_ms)
{
    (void)t;
    (void)now_ns;
    (void)retry_after_ms;
    return 0;
}
