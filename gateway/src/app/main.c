/* SPDX-License-Identifier: Apache-2.0 */
/* main — infergw: parse flags, build the routing table and the TLS
 * contexts, start one worker per core, then wait for signals on the main
 * thread (signalfd): SIGHUP reloads the TLS certificate and key, and the
 * replica CA (built here, off the workers, then offered to each), and the
 * JWT verification keys; SIGTERM/SIGINT drain every worker (GOAWAY,
 * in-flight calls finish within the grace period) and exit 0; a second one
 * exits at once.
 *
 * At start the soft RLIMIT_NOFILE is raised to the hard limit (Debian's soft
 * 1024 is far below what --max-conns allows), and the result is logged with
 * a warning when --max-conns cannot fit in it.
 *
 * Every exit, refused or drained, leaves main through one cleanup path that
 * releases what was set up, in the reverse order. */
#include <errno.h>
#include <limits.h>
#include <jansson.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/signalfd.h>
#include <unistd.h>

#include "obs/accesslog.h"
#include "obs/admin.h"
#include "auth/auth.h"
#include "auth/authdb.h"
#include "base/config.h"
#include "control/kvreader.h"
#include "control/kvview.h"
#include "control/watcher.h"
#include "health/health.h"
#include "base/log.h"
#include "base/mem.h"
#include "route/route.h"
#include "h2/tls.h"
#include "engine/worker.h"

/* Warns when the certificate <ctx> presents has expired or soon will:
 * clients would refuse it, and nothing else in the gateway would say why. */
static void tls_check_expiry(SSL_CTX *ctx, const char *file)
{
    int days = gw_tls_days_left(ctx);
    if (days == INT_MIN || days >= 14)
        return;
    gw_log(GW_LOG_WARN, days < 0 ? "tls_certificate_expired" : "tls_certificate_expires_soon",
           "{s:s, s:i}", "file", file, "days_left", days);
}

/* Builds the TLS contexts the flags ask for into <tls> and <up_tls> (NULL
 * when not asked for). Returns 0, or -1 with the reason in <err>. */
static int tls_setup(const struct gw_config *cfg, SSL_CTX **tls, SSL_CTX **up_tls, char *err,
                     size_t errlen)
{
    *tls = *up_tls = NULL;
    if (cfg->tls_cert) {
        *tls = gw_tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, err, errlen);
        if (!*tls)
            return -1;
        char desc[512];
        gw_tls_describe_ctx(*tls, desc, sizeof(desc));
        gw_log(GW_LOG_INFO, "tls_certificate", "{s:s, s:s, s:b}", "certificate", desc, "file",
               cfg->tls_cert, "mutual_tls", cfg->tls_client_ca != NULL);
        tls_check_expiry(*tls, cfg->tls_cert);
    } else {
        gw_log(GW_LOG_INFO, "tls_off", "{s:s}", "message",
               "no --tls-cert: clients connect over plaintext h2c");
    }
    if (cfg->upstream_tls_ca) {
        *up_tls = gw_tls_client_ctx_new(cfg->upstream_tls_ca, cfg->upstream_tls_cert,
                                        cfg->upstream_tls_key, err, errlen);
        if (!*up_tls) {
            SSL_CTX_free(*tls);
            *tls = NULL;
            return -1;
        }
    }
    return 0;
}

/* SIGHUP: new contexts from the same files (front end, and replicas when
 * --upstream-tls-ca is set); the workers take them up for the connections
 * they make next. A file that no longer loads keeps the old context. */
static void tls_reload(const struct gw_config *cfg, struct gw_worker *workers, int n)
{
    if (!cfg->tls_cert && !cfg->upstream_tls_ca) {
        gw_log(GW_LOG_INFO, "reload", "{s:s}", "message",
               "SIGHUP: no --tls-cert or --upstream-tls-ca, nothing to reload");
        return;
    }
    char err[512] = "";
    SSL_CTX *front = NULL, *up = NULL;
    if (cfg->tls_cert) {
        front = gw_tls_server_ctx_new(cfg->tls_cert, cfg->tls_key, cfg->tls_client_ca, err,
                                      sizeof(err));
        if (!front)
            gw_log(GW_LOG_ERROR, "tls_reload_failed", "{s:s, s:s, s:s}", "side", "client", "error",
                   err, "message", "the previous certificate stays in use");
    }
    if (cfg->upstream_tls_ca) {
        up = gw_tls_client_ctx_new(cfg->upstream_tls_ca, cfg->upstream_tls_cert,
                                   cfg->upstream_tls_key, err, sizeof(err));
        if (!up)
            gw_log(GW_LOG_ERROR, "tls_reload_failed", "{s:s, s:s, s:s}", "side", "upstream",
                   "error", err, "message", "the previous CA and certificate stay in use");
    }
    for (int i = 0; i < n; i++)
        gw_worker_offer_tls(&workers[i], front, up);
    if (front) {
        char desc[512];
        gw_tls_describe_ctx(front, desc, sizeof(desc));
        gw_log(GW_LOG_INFO, "tls_reloaded", "{s:s, s:s, s:s}", "side", "client", "certificate",
               desc, "file", cfg->tls_cert);
        tls_check_expiry(front, cfg->tls_cert);
    }
    if (up)
        gw_log(GW_LOG_INFO, "tls_reloaded", "{s:s, s:s}", "side", "upstream", "file",
               cfg->upstream_tls_ca);
    SSL_CTX_free(front); /* the workers hold their own references */
    SSL_CTX_free(up);
}

/* Raises the soft descriptor limit to the hard one and logs both; warns
 * when the client connections --max-conns allows (plus a margin for
 * replicas, Redis and the admin endpoint) do not fit. */
static void raise_nofile(const struct gw_config *cfg)
{
    struct rlimit rl;
    if (getrlimit(RLIMIT_NOFILE, &rl) < 0)
        return;
    rlim_t before = rl.rlim_cur;
    const char *error = NULL;
    if (rl.rlim_cur < rl.rlim_max) {
        rl.rlim_cur = rl.rlim_max;
        if (setrlimit(RLIMIT_NOFILE, &rl) < 0) {
            error = strerror(errno);
            rl.rlim_cur = before;
        }
    }
    gw_log(GW_LOG_INFO, "nofile_limit", "{s:I, s:I, s:I, s:s?}", "soft_before", (json_int_t)before,
           "soft", (json_int_t)rl.rlim_cur, "hard", (json_int_t)rl.rlim_max, "error", error);
    uint64_t need = (uint64_t)cfg->max_conns + 256;
    if (rl.rlim_cur != RLIM_INFINITY && need > rl.rlim_cur)
        gw_log(GW_LOG_WARN, "nofile_limit_low", "{s:I, s:I, s:s}", "soft", (json_int_t)rl.rlim_cur,
               "max_conns", (json_int_t)cfg->max_conns, "effect",
               "accept pauses when descriptors run out before --max-conns is reached");
}

/* The pools being served, one log line each, at start. */
static void log_pools(const struct gw_routes *routes)
{
    for (size_t i = 0; i < routes->npools; i++) {
        json_t *reps = json_array();
        for (size_t j = 0; j < routes->pools[i].ring.nreplicas; j++)
            json_array_append_new(reps, json_string(routes->pools[i].ring.replicas[j]));
        gw_log(GW_LOG_INFO, "pool", "{s:s, s:o}", "pool", routes->pools[i].name, "replicas", reps);
    }
}

/* Waits on a signalfd for SIGTERM or SIGINT (the signals of <set>, blocked
 * since before the threads started), reloading on each SIGHUP meanwhile.
 * Returns the signal that ended the wait (SIGTERM when the signalfd cannot
 * be read). */
static int wait_for_stop(sigset_t *set, const struct gw_config *cfg, struct gw_worker *workers,
                         int started)
{
    sigdelset(set, SIGPIPE);
    int sfd = signalfd(-1, set, SFD_CLOEXEC);
    struct signalfd_siginfo si = {.ssi_signo = SIGTERM};
    for (;;) {
        ssize_t got = sfd >= 0 ? read(sfd, &si, sizeof(si)) : -1;
        if (got < 0 && errno == EINTR)
            continue;
        if (got == (ssize_t)sizeof(si) && si.ssi_signo == SIGHUP) {
            tls_reload(cfg, workers, started);
            gw_auth_reload(); /* JWT keys */
            continue;
        }
        break;
    }
    if (sfd >= 0)
        close(sfd);
    return (int)si.ssi_signo;
}

/* Drains every started worker; a second SIGTERM/SIGINT from now on exits at
 * once (default action), and SIGHUP is ignored (no reload while draining). */
static void drain(sigset_t *set, const struct gw_config *cfg, struct gw_worker *workers,
                  int started, int signo)
{
    gw_log(GW_LOG_INFO, "draining", "{s:s, s:i}", "signal", strsignal(signo), "grace_ms",
           (int)cfg->shutdown_grace_ms);
    for (int i = 0; i < started; i++)
        gw_worker_drain(&workers[i]);
    struct sigaction sa = {.sa_handler = SIG_DFL};
    sigaction(SIGTERM, &sa, NULL);
    sigaction(SIGINT, &sa, NULL);
    struct sigaction ign = {.sa_handler = SIG_IGN};
    sigaction(SIGHUP, &ign, NULL);
    pthread_sigmask(SIG_UNBLOCK, set, NULL);
}

/* Exit status: 0 after a drain (or --help/--version), 2 for a configuration
 * refused at start (bad flag, plugin, key, certificate, --redis URL), 1 when
 * a valid configuration cannot run (the address is taken, a thread or the
 * admin endpoint does not start, out of memory). Every exit goes through
 * `out`, which releases what was set up, in reverse order. */
int main(int argc, char **argv)
{
    struct gw_config cfg;
    char err[512] = "";
    int status = 0, auth_up = 0, alog_up = 0, ctl_up = 0, started = 0, drained = 0, log_exit = 0;
    int kv_up = 0;
    struct gw_kvreader kvr = {.stopper.fd = -1};
    SSL_CTX *tls = NULL, *up_tls = NULL;
    struct gw_routes *routes = NULL;
    struct gw_watcher ctl;
    struct gw_health_registry *health = NULL;
    struct gw_worker *workers = NULL;
    struct gw_admin admin = {0};
    sigset_t set;

    int rc = gw_config_parse(&cfg, argc, argv, err, sizeof(err));
    if (rc != 0) {
        if (rc < 0)
            fprintf(stderr, "infergw: %s\n", err);
        status = rc < 0 ? 2 : 0;
        goto out;
    }
    gw_log_set_level(cfg.log_level);
    raise_nofile(&cfg);
    /* The authentication chain: plugins are loaded and keys read now, so a
     * bad plugin or key file stops the start (exit 2). */
    if (gw_auth_init(&cfg, err, sizeof(err)) < 0) {
        fprintf(stderr, "infergw: %s\n", err);
        gw_log(GW_LOG_ERROR, "config_invalid", "{s:s}", "error", err);
        status = 2;
        goto out;
    }
    auth_up = 1;
    if (cfg.access_log[0]) {
        if (gw_accesslog_open(cfg.access_log, err, sizeof(err)) < 0) {
            fprintf(stderr, "infergw: --access-log: %s\n", err);
            status = 2;
            goto out;
        }
        alog_up = 1;
    }
    if (tls_setup(&cfg, &tls, &up_tls, err, sizeof(err)) < 0) {
        fprintf(stderr, "infergw: %s\n", err);
        gw_log(GW_LOG_ERROR, "config_invalid", "{s:s}", "error", err);
        status = 2;
        goto out;
    }
    routes = gw_routes_from_config(&cfg, err, sizeof(err)); /* the --pool flags */
    if (!routes) {
        gw_log(GW_LOG_ERROR, "config_invalid", "{s:s}", "error", err);
        status = 2;
        goto out;
    }
    if (routes->authdb)
        gw_log(GW_LOG_INFO, "tenants_loaded", "{s:s, s:s, s:i, s:i}", "tenants_file",
               cfg.tenants_file, "api_keys_file", cfg.api_keys_file, "tenants",
               (int)gw_authdb_ntenants(routes->authdb), "api_keys",
               (int)gw_authdb_napikeys(routes->authdb));
    /* The precise prefix view (prefix_mode = precise pools), fed from Redis
     * by the KV stream reader; its indexes share one budget of
     * --prefix-index-bytes. */
    if (gw_kvview_init(cfg.prefix_index_bytes) < 0) {
        gw_log(GW_LOG_ERROR, "startup_failed", "{s:s}", "error", "out of memory");
        status = 1;
        goto out;
    }
    kv_up = 1;
    /* With --redis, start from what Redis holds when it answers now. */
    if (cfg.redis_url[0]) {
        if (gw_watcher_init(&ctl, &cfg, routes, err, sizeof(err)) < 0) {
            fprintf(stderr, "infergw: --redis: %s\n", err);
            status = 2;
            goto out;
        }
        ctl_up = 1;
        struct gw_routes *initial = gw_watcher_initial(&ctl);
        gw_routes_unref(routes);
        routes = initial;
    }

    int prc = gw_worker_probe_listen(cfg.listen);
    if (prc < 0) {
        gw_log(GW_LOG_ERROR, "listen_failed", "{s:s, s:s}", "addr", cfg.listen, "error",
               prc == -EADDRINUSE ? "address already in use (is another infergw running?)"
                                  : strerror(-prc));
        status = 1;
        goto out;
    }

    /* Signals go to the signalfd only: block them before threads start. */
    sigemptyset(&set);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    sigaddset(&set, SIGHUP);
    sigaddset(&set, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &set, NULL);

    health = gw_health_registry_new();
    workers = gw_calloc((size_t)cfg.workers, sizeof(*workers));
    if (!workers || !health) {
        gw_log(GW_LOG_ERROR, "startup_failed", "{s:s}", "error", "out of memory");
        status = 1;
        goto out;
    }
    log_exit = 1; /* from here on the gateway ran, or tried to: its exit is logged */
    for (int i = 0; i < cfg.workers; i++) {
        if (gw_worker_init(&workers[i], i, &cfg, routes, health, tls, up_tls) < 0 ||
            gw_worker_start(&workers[i]) != 0) {
            gw_worker_free(&workers[i]); /* logged by gw_worker_init, or never started */
            status = 1;
            goto out;
        }
        started++;
    }
    if (ctl_up) {
        ctl.health = health;
        if (gw_watcher_start(&ctl, workers, started) != 0) {
            gw_log(GW_LOG_ERROR, "startup_failed", "{s:s}", "error",
                   "cannot start the control plane");
            status = 1;
            goto out;
        }
        if (gw_kvreader_start(&kvr, &cfg, gw_kvview_global(), err, sizeof(err)) < 0) {
            gw_log(GW_LOG_ERROR, "startup_failed", "{s:s, s:s}", "error",
                   "cannot start the KV stream reader", "reason", err);
            status = 1;
            goto out;
        }
    }
    if (gw_admin_start(&admin, &cfg, workers, (size_t)started, ctl_up ? &ctl : NULL, err,
                       sizeof(err)) < 0) {
        gw_log(GW_LOG_ERROR, "admin_not_started", "{s:s, s:s}", "addr", cfg.admin, "error", err);
        status = 1;
        goto out;
    }
    log_pools(routes);
    gw_log(GW_LOG_INFO, "listening", "{s:s, s:i, s:s}", "addr", cfg.listen, "workers", cfg.workers,
           "transport",
           !tls                ? "h2c (plaintext HTTP/2, prior knowledge)"
           : cfg.tls_client_ca ? "TLS 1.2+ with ALPN h2, client certificate required"
                               : "TLS 1.2+ with ALPN h2");
    drain(&set, &cfg, workers, started, wait_for_stop(&set, &cfg, workers, started));
    drained = 1;

out:
    if (!drained)
        for (int i = 0; i < started; i++)
            gw_worker_drain(&workers[i]);
    gw_admin_stop(&admin);  /* reads worker and ctrl state: goes first */
    gw_kvreader_stop(&kvr); /* no more KV events applied */
    if (ctl_up)
        gw_watcher_stop(&ctl); /* no more snapshots offered to the workers */
    for (int i = 0; i < started; i++) {
        gw_worker_join(&workers[i]);
        gw_worker_free(&workers[i]);
    }
    gw_free(workers);
    gw_health_registry_free(health); /* after every worker is gone */
    if (kv_up)
        gw_kvview_shutdown(); /* after the workers, the watcher and the reader */
    gw_routes_unref(routes);
    SSL_CTX_free(up_tls); /* the workers held their own references */
    SSL_CTX_free(tls);
    if (alog_up)
        gw_accesslog_close(); /* after the workers flushed their lines */
    if (auth_up)
        gw_auth_shutdown(); /* after the workers: they ran the chain */
    gw_config_free(&cfg);
    if (log_exit)
        gw_log(GW_LOG_INFO, "exit", "{s:i}", "status", status);
    return status;
}
