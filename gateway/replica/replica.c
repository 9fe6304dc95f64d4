/* SPDX-License-Identifier: Apache-2.0 */
/* replica — infergw-replica, the reference KServe v2 model server.
 *
 * main(): parses the flags, blocks the signals it handles in every thread
 * (before grpc_init starts any), starts the server, then waits for signals
 * with sigwaitinfo, so no work ever runs in a signal handler: SIGUSR1 and
 * SIGUSR2 flip the grpc.health.v1 status, SIGTERM and SIGINT shut down and
 * print the final counts. The server itself lives in server.c.
 */
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <time.h>
#include <unistd.h>

#include <grpc/grpc.h>

#include "options.h"
#include "jlog.h"
#include "server.h"

#define SHUTDOWN_GRACE_MS 1000

static void log_health(const char *id, const char *status)
{
    struct rp_jline l;
    rp_jlog_begin(&l, "health", id);
    rp_jlog_str(&l, "status", status);
    rp_jlog_end(&l);
}

/* Serves until SIGTERM or SIGINT. */
static void wait_for_signals(struct rp_server *srv, const struct rp_config *cfg,
                             const sigset_t *set)
{
    for (;;) {
        int sig = sigwaitinfo(set, NULL);
        if (sig == SIGUSR1) {
            rp_server_set_serving(srv, 0);
            log_health(cfg->id, "NOT_SERVING");
        } else if (sig == SIGUSR2) {
            rp_server_set_serving(srv, 1);
            log_health(cfg->id, "SERVING");
        } else if (sig == SIGTERM || sig == SIGINT) {
            struct rp_jline l;
            rp_jlog_begin(&l, "stopping", cfg->id);
            rp_jlog_str(&l, "signal", sig == SIGTERM ? "SIGTERM" : "SIGINT");
            rp_jlog_end(&l);
            return;
        }
    }
}

int main(int argc, char **argv)
{
    struct rp_config cfg;
    struct rp_server *srv;
    struct rp_stats st;
    struct rp_jline l;
    sigset_t set;
    char err[512];

    switch (rp_config_parse(&cfg, argc, argv, err, sizeof(err))) {
    case RP_CONFIG_HELP:
        rp_config_usage(stdout);
        return 0;
    case RP_CONFIG_BAD:
        fprintf(stderr, "infergw-replica: %s (see --help)\n", err);
        return 2;
    default:
        break;
    }
    if (!cfg.seed_given)
        cfg.seed = (uint64_t)time(NULL) ^ ((uint64_t)getpid() << 32);

    /* Blocked here, these signals stay blocked in every thread grpc and the
     * server start, and reach only sigwaitinfo below. */
    sigemptyset(&set);
    sigaddset(&set, SIGUSR1);
    sigaddset(&set, SIGUSR2);
    sigaddset(&set, SIGTERM);
    sigaddset(&set, SIGINT);
    pthread_sigmask(SIG_BLOCK, &set, NULL);
    signal(SIGPIPE, SIG_IGN);

    rp_jlog_capture_grpc(cfg.id);
    grpc_init();
    srv = rp_server_start(&cfg, err, sizeof(err));
    if (!srv) {
        rp_jlog_begin(&l, "fatal", cfg.id);
        rp_jlog_str(&l, "message", err);
        rp_jlog_end(&l);
        grpc_shutdown();
        return 1;
    }
    rp_jlog_begin(&l, "listening", cfg.id);
    rp_jlog_str(&l, "addr", rp_server_addr(srv));
    rp_jlog_num(&l, "seed", cfg.seed);
    rp_jlog_str(&l, "transport", cfg.tls_cert ? "TLS (ALPN h2)" : "h2c");
    rp_jlog_end(&l);

    wait_for_signals(srv, &cfg, &set);

    rp_server_stop(srv, SHUTDOWN_GRACE_MS, &st);
    grpc_shutdown();
    rp_jlog_begin(&l, "exit", cfg.id);
    rp_jlog_num(&l, "calls", st.calls);
    rp_jlog_num(&l, "ok", st.ok);
    rp_jlog_num(&l, "errors", st.errors);
    rp_jlog_num(&l, "injected_errors", st.injected_errors);
    rp_jlog_num(&l, "cancelled", st.cancelled);
    rp_jlog_end(&l);
    return 0;
}
