/* SPDX-License-Identifier: Apache-2.0 */
/* mtls — the built-in mutual-TLS authenticator (plugin ABI,
 * infergw/plugin.h).
 *
 * Claims calls on a connection whose client certificate verified against
 * the client CA (the TLS layer fills the peer identity only then) and maps
 * it to a tenant: args "from=cn" (subject CN), "from=san-dns" (first DNS
 * subjectAltName) or "from=san-uri" (first URI subjectAltName, e.g. a
 * SPIFFE ID). A verified certificate without that field is refused; a call
 * without a verified certificate is not this plugin's. No per-worker state.
 */
#include <stdio.h>
#include <string.h>

#include "infergw/plugin.h"

enum mtls_from { FROM_CN, FROM_SAN_DNS, FROM_SAN_URI };

struct mtls {
    enum mtls_from from;
    const struct infergw_host *host;
};

static int mtls_init(const char *args, const struct infergw_host *host, void **state, char *err,
                     size_t errlen)
{
    enum mtls_from from;
    if (!strcmp(args, "from=cn") || !args[0])
        from = FROM_CN;
    else if (!strcmp(args, "from=san-dns"))
        from = FROM_SAN_DNS;
    else if (!strcmp(args, "from=san-uri"))
        from = FROM_SAN_URI;
    else {
        snprintf(err, errlen, "args '%s': expected from=cn, from=san-dns or from=san-uri", args);
        return -1;
    }
    struct mtls *m = host->zalloc(sizeof(*m));
    if (!m) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    m->from = from;
    m->host = host;
    *state = m;
    return 0;
}

static void mtls_destroy(void *state)
{
    struct mtls *m = state;
    if (m)
        m->host->free(m);
}

static enum infergw_auth_result mtls_authenticate(void *state, void *wstate,
                                                  const struct infergw_auth_request *req,
                                                  const struct infergw_host *host,
                                                  struct infergw_auth_answer *ans)
{
    const struct mtls *m = state;
    (void)wstate;
    (void)host;
    const struct infergw_peer *p = req->peer;
    if (!p || !p->tls || !p->verified)
        return INFERGW_AUTH_PASS;
    if (m->from == FROM_CN) {
        if (!p->cn || !p->cn[0])
            return infergw_auth_reject(ans, INFERGW_REASON_BAD_CLAIMS,
                                       "client certificate has no subject CN to name a tenant");
        return infergw_auth_accept(ans, p->cn, strlen(p->cn));
    }
    const char *prefix = m->from == FROM_SAN_DNS ? "DNS:" : "URI:";
    for (size_t i = 0; i < p->nsans; i++)
        if (p->sans[i] && !strncmp(p->sans[i], prefix, 4) && p->sans[i][4])
            return infergw_auth_accept(ans, p->sans[i] + 4, strlen(p->sans[i] + 4));
    return infergw_auth_reject(
        ans, INFERGW_REASON_BAD_CLAIMS,
        m->from == FROM_SAN_DNS ? "client certificate has no DNS subjectAltName to name a tenant"
                                : "client certificate has no URI subjectAltName to name a tenant");
}

const struct infergw_plugin infergw_mtls_plugin = {
    .abi_version = INFERGW_PLUGIN_ABI_VERSION,
    .name = "mtls",
    .init = mtls_init,
    .authenticate = mtls_authenticate,
    .destroy = mtls_destroy,
};
