/* SPDX-License-Identifier: Apache-2.0 */
/* example — a minimal infergw authentication plugin to copy.
 *
 * Accepts a call that carries the metadata "x-shared-secret: <secret>" and
 * maps it to a fixed tenant; refuses a wrong secret; leaves every other
 * call to the next plugin of the chain. Arguments: "secret=S,tenant=T".
 *
 * Build it as a shared object against infergw/plugin.h only:
 *     cc -shared -fPIC -I gateway/include -o example.so plugins/example/example.c -lcrypto
 * and load it with
 *     infergw --plugin ./example.so:secret=s3cret,tenant=team-a ...
 */
#include <openssl/crypto.h>
#include <stdio.h>
#include <string.h>

#include "infergw/plugin.h"

struct example {
    const struct infergw_host *host;
    char secret[128];
    size_t secret_len;
    char tenant[INFERGW_TENANT_MAX + 1];
};

/* Copies the value of argument <name> in "a=x,b=y" into <out>. */
static int arg(const char *args, const char *name, char *out, size_t cap)
{
    size_t nl = strlen(name);
    for (const char *a = args; *a;) {
        size_t l = strcspn(a, ",");
        if (l > nl && a[nl] == '=' && !memcmp(a, name, nl)) {
            size_t vl = l - nl - 1;
            if (vl == 0 || vl >= cap)
                return -1;
            memcpy(out, a + nl + 1, vl);
            out[vl] = '\0';
            return 0;
        }
        a += l;
        if (*a == ',')
            a++;
    }
    return -1;
}

static int example_init(const char *args, const struct infergw_host *host, void **state, char *err,
                        size_t errlen)
{
    struct example *ex = host->zalloc(sizeof(*ex));
    if (!ex) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    ex->host = host;
    if (arg(args, "secret", ex->secret, sizeof(ex->secret)) < 0 ||
        arg(args, "tenant", ex->tenant, sizeof(ex->tenant)) < 0) {
        snprintf(err, errlen, "expected arguments secret=S,tenant=T");
        host->free(ex);
        return -1;
    }
    ex->secret_len = strlen(ex->secret);
    *state = ex;
    return 0;
}

static void example_destroy(void *state)
{
    struct example *ex = state;
    OPENSSL_cleanse(ex->secret, sizeof(ex->secret));
    ex->host->free(ex);
}

static enum infergw_auth_result example_authenticate(void *state, void *wstate,
                                                     const struct infergw_auth_request *req,
                                                     const struct infergw_host *host,
                                                     struct infergw_auth_answer *ans)
{
    const struct example *ex = state;
    (void)wstate;
    (void)host;
    for (size_t i = 0; i < req->nmd; i++) {
        const struct infergw_metadata *m = &req->md[i];
        if (m->name_len != 15 || memcmp(m->name, "x-shared-secret", 15) != 0)
            continue;
        /* Constant time, so the secret cannot be guessed byte by byte. */
        if (m->value_len == ex->secret_len &&
            CRYPTO_memcmp(m->value, ex->secret, ex->secret_len) == 0)
            return infergw_auth_accept(ans, ex->tenant, strlen(ex->tenant));
        return infergw_auth_reject(ans, INFERGW_REASON_UNKNOWN_KEY,
                                   "x-shared-secret does not match");
    }
    return INFERGW_AUTH_PASS;
}

static const struct infergw_plugin example_plugin = {
    .abi_version = INFERGW_PLUGIN_ABI_VERSION,
    .name = "example",
    .init = example_init,
    .authenticate = example_authenticate,
    .destroy = example_destroy,
};

/* The one exported symbol (INFERGW_PLUGIN_SYMBOL). */
__attribute__((visibility("default"))) const struct infergw_plugin *infergw_plugin_v1(void)
{
    return &example_plugin;
}
