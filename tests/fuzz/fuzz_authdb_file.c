/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for the --tenants / --api-keys file parser (authdb.c). The
 * input is read as a tenants file, then as an API-keys file over the tenants
 * it defined. Either it loads, and then every record is found again by its
 * name or hash and holds only values the format allows, or it is refused
 * with "<file>:<line>: <reason>" and the db holds what came before that
 * line. */
#include "auth/authdb.h"
#include "fuzz.h"
#include "base/mem.h"

#include <string.h>

static void check_tenants(const struct gw_authdb *db)
{
    for (size_t i = 0; i < gw_authdb_ntenants(db); i++) {
        const struct gw_tenant *t = gw_authdb_tenant_at(db, i);
        FUZZ_CHECK(gw_tenant_name_valid(t->name));
        FUZZ_CHECK(gw_authdb_tenant(db, t->name) == t);
        FUZZ_CHECK(t->rps == 0 || (t->rps >= GW_TENANT_RPS_MIN && t->rps <= GW_TENANT_RPS_MAX));
        FUZZ_CHECK(t->burst <= GW_TENANT_BURST_MAX);
        FUZZ_CHECK(t->all_models ? t->nmodels == 0 : t->nmodels > 0);
        for (size_t m = 0; m < t->nmodels; m++) {
            FUZZ_CHECK(t->models[m][0] != '\0');
            FUZZ_CHECK(gw_tenant_allows_model(t, t->models[m], strlen(t->models[m])));
        }
    }
}

/* "f:<digits>: " */
static void check_error(const char *err)
{
    FUZZ_CHECK(err[0] == 'f' && err[1] == ':');
    size_t d = strspn(err + 2, "0123456789");
    FUZZ_CHECK(d > 0 && err[2 + d] == ':');
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct gw_authdb *db = gw_authdb_new();
    char err[512];

    FUZZ_CHECK(db != NULL);
    if (gw_authdb_load_text(db, GW_AUTHDB_TENANTS, (const char *)data, size, "f", err,
                            sizeof(err)) < 0)
        check_error(err);
    check_tenants(db);
    size_t nkeys_before = gw_authdb_napikeys(db);
    FUZZ_CHECK(nkeys_before == 0);
    if (gw_authdb_load_text(db, GW_AUTHDB_APIKEYS, (const char *)data, size, "f", err,
                            sizeof(err)) < 0)
        check_error(err);
    /* Every key loaded is found by its hash, as one of the tenants. The hash
     * of a key line is its first word: find them again from the text. */
    size_t found = 0;
    const char *p = (const char *)data, *end = p + size;
    while (p < end && found < gw_authdb_napikeys(db)) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        const char *w = p, *line_end = nl ? nl : end;
        while (w < line_end && (*w == ' ' || *w == '\t' || *w == '\r'))
            w++;
        uint8_t h[32];
        int64_t exp = -1;
        if (line_end - w >= GW_AUTHDB_HASH_HEX && gw_apikey_hash_from_hex(w, 64, h) == 0 &&
            (w + 64 == line_end || w[64] == ' ' || w[64] == '\t' || w[64] == '\r')) {
            const char *t = gw_authdb_apikey(db, h, &exp);
            if (t) {
                FUZZ_CHECK(gw_authdb_tenant(db, t) != NULL);
                FUZZ_CHECK(exp >= 0);
                found++;
            }
        }
        p = nl ? nl + 1 : end;
    }
    FUZZ_CHECK(found == gw_authdb_napikeys(db));
    gw_authdb_free(db);
    return 0;
}
