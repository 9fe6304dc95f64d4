/* SPDX-License-Identifier: Apache-2.0 */
/* plugin — the authentication chain; see plugin.h and infergw/plugin.h. */
#include "auth/plugin.h"

#include <dlfcn.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"

static void plugin_fini(struct gw_plugin *p)
{
    if (p->wstate) {
        for (int i = 0; p->started && i < p->started; i++)
            if (p->desc->worker_destroy)
                p->desc->worker_destroy(p->state, p->wstate[i]);
        gw_free(p->wstate);
    }
    if (p->desc && p->desc->destroy)
        p->desc->destroy(p->state);
    if (p->dl)
        dlclose(p->dl);
    gw_free(p->label);
    memset(p, 0, sizeof(*p));
}

int gw_plugin_chain_add(struct gw_plugin_chain *chain, const struct infergw_plugin *desc,
                        const char *args, void *dl, const char *label,
                        const struct infergw_host *host, char *err, size_t errlen)
{
    struct gw_plugin p = {.desc = desc, .dl = dl};
    int nworkers = host->nworkers > 0 ? host->nworkers : 1;
    p.label = gw_strdup(label);
    p.wstate = gw_calloc((size_t)nworkers, sizeof(*p.wstate));
    struct gw_plugin *np = gw_realloc(chain->p, (chain->n + 1) * sizeof(*np));
    if (np)
        chain->p = np;
    if (!p.label || !p.wstate || !np) {
        gw_errf(err, errlen, "plugin %s: out of memory", label);
        p.desc = NULL; /* init never ran */
        plugin_fini(&p);
        return -1;
    }
    char perr[256] = "";
    if (desc->init && desc->init(args ? args : "", host, &p.state, perr, sizeof(perr)) < 0) {
        gw_errf(err, errlen, "plugin %s: %s", label, perr[0] ? perr : "init failed");
        p.desc = NULL; /* init cleaned up after itself */
        plugin_fini(&p);
        return -1;
    }
    for (; p.started < nworkers; p.started++) {
        if (!desc->worker_init)
            continue;
        int failed = 0;
        p.wstate[p.started] = desc->worker_init(p.state, p.started, &failed);
        if (failed) {
            gw_errf(err, errlen, "plugin %s: cannot set up worker %d (out of memory?)", label,
                    p.started);
            plugin_fini(&p);
            return -1;
        }
    }
    chain->p[chain->n++] = p;
    if (nworkers > chain->nworkers)
        chain->nworkers = nworkers;
    return 0;
}

int gw_plugin_chain_load(struct gw_plugin_chain *chain, const char *spec,
                         const struct infergw_host *host, char *err, size_t errlen)
{
    char path[1024];
    const char *colon = strchr(spec, ':');
    size_t plen = colon ? (size_t)(colon - spec) : strlen(spec);
    if (plen == 0 || plen >= sizeof(path)) {
        gw_errf(err, errlen, "--plugin '%s': expected PATH.so[:ARGS]", spec);
        return -1;
    }
    memcpy(path, spec, plen);
    path[plen] = '\0';
    const char *args = colon ? colon + 1 : "";

    void *dl = dlopen(path, RTLD_NOW | RTLD_LOCAL);
    if (!dl) {
        gw_errf(err, errlen, "--plugin %s: cannot load: %s", path, dlerror());
        return -1;
    }
    infergw_plugin_entry_fn entry;
    *(void **)&entry = dlsym(dl, INFERGW_PLUGIN_SYMBOL);
    if (!entry) {
        gw_errf(err, errlen,
                "--plugin %s: no symbol %s: not an infergw plugin, or built for another plugin "
                "ABI (this infergw speaks ABI version %d)",
                path, INFERGW_PLUGIN_SYMBOL, INFERGW_PLUGIN_ABI_VERSION);
        dlclose(dl);
        return -1;
    }
    const struct infergw_plugin *desc = entry();
    if (!desc || desc->abi_version != INFERGW_PLUGIN_ABI_VERSION) {
        gw_errf(err, errlen,
                "--plugin %s: built for plugin ABI version %u, but this infergw speaks version "
                "%d: rebuild it against this infergw's infergw/plugin.h",
                path, desc ? (unsigned)desc->abi_version : 0u, INFERGW_PLUGIN_ABI_VERSION);
        dlclose(dl);
        return -1;
    }
    if (!desc->authenticate || !desc->name) {
        gw_errf(err, errlen, "--plugin %s: its descriptor has no name or no authenticate", path);
        dlclose(dl);
        return -1;
    }
    return gw_plugin_chain_add(chain, desc, args, dl, path, host, err, errlen);
}

enum infergw_auth_result gw_plugin_chain_run(const struct gw_plugin_chain *chain, int worker,
                                             const struct infergw_auth_request *req,
                                             const struct infergw_host *host,
                                             struct infergw_auth_answer *ans, size_t *which)
{
    for (size_t i = 0; i < chain->n; i++) {
        const struct gw_plugin *p = &chain->p[i];
        ans->tenant[0] = '\0';
        ans->message[0] = '\0';
        ans->status = INFERGW_STATUS_UNAUTHENTICATED;
        ans->reason = INFERGW_REASON_REFUSED;
        enum infergw_auth_result r =
            p->desc->authenticate(p->state, p->wstate[worker], req, host, ans);
        if (r == INFERGW_AUTH_PASS)
            continue;
        *which = i;
        if (r == INFERGW_AUTH_ACCEPT) {
            ans->tenant[INFERGW_TENANT_MAX] = '\0';
            if (ans->tenant[0])
                return INFERGW_AUTH_ACCEPT;
            infergw_auth_reject(ans, INFERGW_REASON_REFUSED, "authenticated without a tenant");
            return INFERGW_AUTH_REJECT;
        }
        /* Anything else is a reject, made well-formed. */
        ans->message[INFERGW_MESSAGE_MAX] = '\0';
        if (ans->status != INFERGW_STATUS_UNAUTHENTICATED &&
            ans->status != INFERGW_STATUS_PERMISSION_DENIED)
            ans->status = INFERGW_STATUS_UNAUTHENTICATED;
        if (ans->reason < 0 || ans->reason >= INFERGW_REASON_COUNT_PLUGIN)
            ans->reason = INFERGW_REASON_REFUSED;
        if (!ans->message[0])
            snprintf(ans->message, sizeof(ans->message), "refused by plugin %s", p->desc->name);
        return INFERGW_AUTH_REJECT;
    }
    return INFERGW_AUTH_PASS;
}

void gw_plugin_chain_free(struct gw_plugin_chain *chain)
{
    for (size_t i = chain->n; i-- > 0;)
        plugin_fini(&chain->p[i]);
    gw_free(chain->p);
    memset(chain, 0, sizeof(*chain));
}
