/* SPDX-License-Identifier: Apache-2.0 */
/* plugin — the authentication chain: plugins (infergw/plugin.h) loaded from
 * shared objects (--plugin) or linked in (the built-ins), their state, and
 * one pass of a call through them.
 *
 * A chain is built on the main thread before the workers start and is
 * read-only afterwards; each plugin gets its per-worker states then, so a
 * worker runs the chain without locks.
 */
#ifndef INFERGW_PLUGIN_INTERNAL_H
#define INFERGW_PLUGIN_INTERNAL_H

#include <stddef.h>

#include "infergw/plugin.h"

struct gw_plugin {
    const struct infergw_plugin *desc;
    void *dl;      /* dlopen handle; NULL for a built-in */
    char *label;   /* the path or built-in name, for logs */
    void *state;   /* from init */
    void **wstate; /* [nworkers], from worker_init */
    int started;   /* worker_init ran for every worker */
};

struct gw_plugin_chain {
    struct gw_plugin *p;
    size_t n;
    int nworkers;
};

/* Appends the plugin <desc> with <args> to <chain>, calling its init with
 * <host> and then worker_init for workers 0..host->nworkers-1. Takes
 * ownership of <dl> (closed on failure too). Returns 0, or -1 with the
 * reason in <err> (nothing appended). Main thread. */
int gw_plugin_chain_add(struct gw_plugin_chain *chain, const struct infergw_plugin *desc,
                        const char *args, void *dl, const char *label,
                        const struct infergw_host *host, char *err, size_t errlen);

/* Loads "PATH[:ARGS]" (a shared object exporting infergw_plugin_v1; PATH
 * may not contain ':') and appends it like gw_plugin_chain_add. Refuses a
 * file that cannot be loaded, lacks the symbol, or whose descriptor has
 * another abi_version or misses authenticate. Returns 0 or -1 with the
 * reason in <err>. Main thread. */
int gw_plugin_chain_load(struct gw_plugin_chain *chain, const char *spec,
                         const struct infergw_host *host, char *err, size_t errlen);

/* Runs <req> through the chain on worker <worker> with that worker's
 * <host>: returns the first ACCEPT or REJECT (with <ans> filled and *which
 * set to the plugin's index), or INFERGW_AUTH_PASS when every plugin passed.
 * <ans> is zeroed first. A reject without a reason or a valid status gets
 * UNAUTHENTICATED / INFERGW_REASON_REFUSED. Worker thread. */
enum infergw_auth_result gw_plugin_chain_run(const struct gw_plugin_chain *chain, int worker,
                                             const struct infergw_auth_request *req,
                                             const struct infergw_host *host,
                                             struct infergw_auth_answer *ans, size_t *which);

/* Destroys every plugin (worker states first) and unloads the shared
 * objects. Main thread, after the workers stopped. */
void gw_plugin_chain_free(struct gw_plugin_chain *chain);

#endif
