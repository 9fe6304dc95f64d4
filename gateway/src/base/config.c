/* SPDX-License-Identifier: Apache-2.0 */
/* config — command-line parsing with getopt_long over the flag table
 * (flags.c), the rules that involve several flags, and --help; see
 * config.h. */
#include "base/config.h"

#include <getopt.h>
#include <string.h>

#include "base/err.h"
#include "base/flags.h"
#include "base/mem.h"

#ifndef INFERGW_VERSION
#define INFERGW_VERSION "0.1.0"
#endif

#define OPT_BASE 256 /* getopt_long value of gw_flags[i]: OPT_BASE + i */

void gw_config_usage(FILE *out)
{
    fputs("Usage: infergw [flags]\n"
          "\n"
          "infergw is a gRPC inference gateway: it authenticates each call, routes it to a\n"
          "model replica by consistent hashing, and relays it over HTTP/2.\n"
          "\n"
          "Flags (default in brackets), by section:\n",
          out);
    gw_flags_help(out);
    fputs("\n"
          "Pool of a call: metadata 'x-model', else the KServe v2 'model_name' of the first\n"
          "request message, else 'default'. Same routing key, same replica.\n"
          "\n"
          "Example:\n"
          "  infergw --listen 127.0.0.1:7100 --auth=none \\\n"
          "      --pool demo=127.0.0.1:7201,127.0.0.1:7202 --pool default=127.0.0.1:7201\n"
          "  infergw --auth=none --redis redis://127.0.0.1:6379\n"
          "  infergw --redis redis://127.0.0.1:6379 --jwt-keys /etc/infergw/jwks.json \\\n"
          "      --jwt-issuer https://idp.example --jwt-audience infergw\n"
          "  infergw --auth=none --pool demo=127.0.0.1:7201 --tls-cert /etc/infergw/cert.pem \\\n"
          "      --tls-key /etc/infergw/key.pem --tls-client-ca /etc/infergw/clients-ca.pem\n"
          "  infergw --auth=none --pool demo=127.0.0.1:7201,127.0.0.1:7202,127.0.0.1:7203 \\\n"
          "      --health-interval-ms 500 --unhealthy-threshold 2 --outlier-failures 5\n",
          out);
}

/* The combinations of TLS flags that make sense. */
static int check_tls_flags(const struct gw_config *cfg, char *err, size_t errlen)
{
    if (!cfg->tls_cert != !cfg->tls_key)
        return gw_errf(err, errlen, "%s given without %s: both are needed to serve TLS",
                       cfg->tls_cert ? "--tls-cert" : "--tls-key",
                       cfg->tls_cert ? "--tls-key" : "--tls-cert");
    if (cfg->tls_client_ca && !cfg->tls_cert)
        return gw_errf(err, errlen,
                       "--tls-client-ca needs --tls-cert and --tls-key: mutual TLS runs over TLS");
    if (!cfg->upstream_tls_cert != !cfg->upstream_tls_key)
        return gw_errf(err, errlen, "%s given without %s",
                       cfg->upstream_tls_cert ? "--upstream-tls-cert" : "--upstream-tls-key",
                       cfg->upstream_tls_cert ? "--upstream-tls-key" : "--upstream-tls-cert");
    if (cfg->upstream_tls_cert && !cfg->upstream_tls_ca)
        return gw_errf(err, errlen,
                       "--upstream-tls-cert needs --upstream-tls-ca: replicas are reached over TLS "
                       "only with a CA to verify them");
    return 0;
}

/* The rules that involve more than one flag, once every flag is read. */
static int check_combinations(const struct gw_config *cfg, char *err, size_t errlen)
{
    /* One source of truth for who may call: with Redis, a revoked key must
     * not live on in a file. */
    if (cfg->redis_url[0] && (cfg->tenants_file[0] || cfg->api_keys_file[0]))
        return gw_errf(err, errlen,
                       "--tenants/--api-keys cannot be combined with --redis: with Redis, tenants "
                       "and API keys are read from Redis (add them with infergw-ctl tenant/key)");
    if (cfg->api_keys_file[0] && !cfg->tenants_file[0])
        return gw_errf(err, errlen, "--api-keys needs --tenants (the tenants the keys belong to)");
    if (check_tls_flags(cfg, err, errlen) < 0)
        return -1;
    if (cfg->outlier_max_ms < cfg->outlier_base_ms)
        return gw_errf(err, errlen,
                       "--outlier-max-ms %u is below --outlier-base-ms %u: the longest ejection "
                       "cannot be shorter than the first",
                       (unsigned)cfg->outlier_max_ms, (unsigned)cfg->outlier_base_ms);
    if (cfg->health_interval_ms > 0 && cfg->health_timeout_ms > cfg->health_interval_ms)
        return gw_errf(err, errlen,
                       "--health-timeout-ms %u is above --health-interval-ms %u: a check must "
                       "end before the next one starts",
                       (unsigned)cfg->health_timeout_ms, (unsigned)cfg->health_interval_ms);
    if (cfg->npools == 0 && !cfg->redis_url[0])
        return gw_errf(err, errlen,
                       "no pool configured: give at least one --pool NAME=HOST:PORT, or --redis "
                       "URL");
    return 0;
}

/* getopt_long's options, one per row of the table. */
static void build_options(struct option *opts)
{
    for (size_t i = 0; i < gw_nflags; i++)
        opts[i] =
            (struct option){gw_flags[i].name, gw_flags[i].arg ? required_argument : no_argument,
                            NULL, OPT_BASE + (int)i};
    opts[gw_nflags] = (struct option){NULL, 0, NULL, 0};
}

int gw_config_parse(struct gw_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    if (gw_flags_defaults(cfg, err, errlen) < 0)
        return -1;
    struct option opts[GW_FLAGS_MAX + 1];
    build_options(opts);
    optind = 0; /* 0, not 1: glibc then also resets its internal state */
    opterr = 0;
    int c;
    while ((c = getopt_long(argc, argv, ":h", opts, NULL)) != -1) {
        const char *name = optind > 0 && optind <= argc ? argv[optind - 1] : "?";
        if (c == ':')
            return gw_errf(err, errlen, "%s needs a value", name);
        if (c == 'h') {
            gw_config_usage(stdout);
            return 1;
        }
        if (c < OPT_BASE || c >= OPT_BASE + (int)gw_nflags)
            return gw_errf(err, errlen, "unknown flag '%s' (see --help)", name);
        const struct gw_flag *f = &gw_flags[c - OPT_BASE];
        if (f->kind == GW_FLAG_HELP) {
            gw_config_usage(stdout);
            return 1;
        }
        if (f->kind == GW_FLAG_VERSION) {
            printf("infergw %s\n", INFERGW_VERSION);
            return 1;
        }
        if (gw_flag_set(cfg, f, optarg, err, errlen) < 0)
            return -1;
    }
    if (optind < argc)
        return gw_errf(err, errlen, "unexpected argument '%s' (see --help)", argv[optind]);
    return check_combinations(cfg, err, errlen);
}

void gw_config_free(struct gw_config *cfg)
{
    for (size_t i = 0; i < cfg->npools; i++) {
        for (size_t j = 0; j < cfg->pools[i].naddrs; j++)
            gw_free(cfg->pools[i].addrs[j]);
        gw_free(cfg->pools[i].addrs);
        gw_free(cfg->pools[i].name);
    }
    gw_free(cfg->pools);
    cfg->pools = NULL;
    cfg->npools = 0;
    struct gw_auth_conf *a = &cfg->auth;
    for (size_t i = 0; i < a->nplugins; i++)
        gw_free(a->plugins[i]);
    for (size_t i = 0; i < a->njwt_keys; i++)
        gw_free(a->jwt_keys[i]);
    gw_free(a->plugins);
    gw_free(a->jwt_keys);
    a->plugins = a->jwt_keys = NULL;
    a->nplugins = a->njwt_keys = 0;
    char **paths[] = {&cfg->tls_cert,        &cfg->tls_key,           &cfg->tls_client_ca,
                      &cfg->upstream_tls_ca, &cfg->upstream_tls_cert, &cfg->upstream_tls_key};
    for (size_t i = 0; i < sizeof(paths) / sizeof(paths[0]); i++) {
        gw_free(*paths[i]);
        *paths[i] = NULL;
    }
}
