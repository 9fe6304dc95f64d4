/* SPDX-License-Identifier: Apache-2.0 */
/* apikey — the built-in API-key authenticator (plugin ABI, infergw/plugin.h).
 *
 * Claims "authorization: Bearer <key>" where the key has no '.' (a token
 * with dots is a JWT and left to the next plugin). The key is hashed with
 * SHA-256 and looked up in the gateway's tenant records through the host
 * (the records hold only hashes; the compare there is constant time), then
 * its expiry is checked. Messages name the failure, never the key.
 * No arguments, no per-worker state: a lookup costs one SHA-256 of the key
 * (with the digest fetched once at init, not looked up per call).
 */
#include <openssl/evp.h>
#include <stdio.h>
#include <string.h>

#include "infergw/plugin.h"

static int apikey_init(const char *args, const struct infergw_host *host, void **state, char *err,
                       size_t errlen)
{
    (void)host;
    if (args && args[0]) {
        snprintf(err, errlen, "takes no arguments");
        return -1;
    }
    EVP_MD *sha256 = EVP_MD_fetch(NULL, "SHA256", NULL);
    if (!sha256) {
        snprintf(err, errlen, "OpenSSL has no SHA-256");
        return -1;
    }
    *state = sha256;
    return 0;
}

static void apikey_destroy(void *state)
{
    EVP_MD_free(state);
}

static enum infergw_auth_result apikey_authenticate(void *state, void *wstate,
                                                    const struct infergw_auth_request *req,
                                                    const struct infergw_host *host,
                                                    struct infergw_auth_answer *ans)
{
    (void)wstate;
    if (!req->bearer || memchr(req->bearer, '.', req->bearer_len))
        return INFERGW_AUTH_PASS;
    uint8_t md[EVP_MAX_MD_SIZE];
    unsigned int mdlen = 0;
    if (!EVP_Digest(req->bearer, req->bearer_len, md, &mdlen, state, NULL) || mdlen != 32)
        return infergw_auth_reject(ans, INFERGW_REASON_REFUSED, "API key check failed");
    int64_t expires_at = 0;
    const char *tenant = host->apikey_lookup(host, md, &expires_at);
    if (!tenant)
        return infergw_auth_reject(ans, INFERGW_REASON_UNKNOWN_KEY, "API key not recognised");
    if (expires_at > 0 && host->now_unix(host) >= expires_at)
        return infergw_auth_reject(ans, INFERGW_REASON_EXPIRED, "API key expired");
    return infergw_auth_accept(ans, tenant, strlen(tenant));
}

const struct infergw_plugin infergw_apikey_plugin = {
    .abi_version = INFERGW_PLUGIN_ABI_VERSION,
    .name = "apikey",
    .init = apikey_init,
    .authenticate = apikey_authenticate,
    .destroy = apikey_destroy,
};
