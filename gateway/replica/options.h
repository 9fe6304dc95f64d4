/* SPDX-License-Identifier: Apache-2.0 */
/* options — the replica's command line.
 *
 * Parses argv into a struct rp_config and validates every value, so the rest
 * of the replica never sees a bad setting. Pure logic: no I/O except writing
 * the usage text to the stream the caller names, so it can be tested without
 * starting a server.
 */
#ifndef INFERGW_REPLICA_OPTIONS_H
#define INFERGW_REPLICA_OPTIONS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include <grpc/status.h>

#define RP_MAX_MODELS     64
#define RP_MAX_THREADS    64
#define RP_MAX_DELAY_MS   3600000L
#define RP_DEFAULT_LISTEN "127.0.0.1:7200"
/* LLM simulation bounds and defaults (docs/llm-simulation.md). */
#define RP_KV_BLOCKS_DEFAULT   1024
#define RP_KV_BLOCKS_MAX       4194304 /* kvcache.h's RP_KVCACHE_MAX */
#define RP_MAX_BATCH           4096
#define RP_MAX_QUEUE           100000
#define RP_MAX_US              10000000L /* 10 s per unit or token */
#define RP_PREFILL_US_DEFAULT  20
#define RP_DECODE_US_DEFAULT   5000
#define RP_DECODE_TOKENS_DEF   16
#define RP_MAX_BATCH_DEFAULT   8
#define RP_MAX_QUEUE_DEFAULT   256
#define RP_KV_MAXLEN_DEFAULT   100000
#define RP_KV_SNAPSHOT_DEFAULT 5000

struct rp_config {
    const char *listen;                /* borrowed from argv (or the default) */
    const char *id;                    /* borrowed; defaults to listen */
    const char *models[RP_MAX_MODELS]; /* borrowed; models[0] is "demo" */
    size_t nmodels;
    long latency_ms;
    double slow_fraction;
    long slow_ms;
    double error_fraction;
    grpc_status_code error_code;
    int error_after_headers;
    const char *error_pushback; /* grpc-retry-pushback-ms with injected errors, or NULL */
    int threads;
    uint64_t seed;
    int seed_given;
    int quiet;
    const char *tls_cert; /* borrowed; PEM chain, with tls_key: serve TLS */
    const char *tls_key;
    const char *tls_client_ca; /* borrowed; require client certificates from this CA */
    /* Token-streaming models (tokens.h): borrowed names, also in models[]. */
    const char *token_models[RP_MAX_MODELS];
    size_t ntoken_models;
    long max_tokens;      /* max_tokens of requests that give none */
    long token_ms;        /* pause between two tokens of a stream */
    int no_resume;        /* refuse x-resume-from (FAILED_PRECONDITION) */
    int nondeterministic; /* token streams differ from replica to replica */
    /* LLM simulation (llmsim.h): borrowed names, also in models[] and
     * token_models[]; the rest as docs/llm-simulation.md says. */
    const char *llm_models[RP_MAX_MODELS];
    size_t nllm_models;
    long kv_blocks;
    const char *prefix_input; /* borrowed */
    long prefix_block, prefix_max_blocks;
    long prefill_us_per_unit, decode_tokens, decode_us_per_token;
    long max_batch, max_queue;
    const char *kv_events_redis; /* borrowed; NULL: no KV events */
    const char *kv_pool;         /* borrowed; default the first --llm-model */
    const char *kv_id;           /* borrowed; default --id */
    const char *kv_prefix;       /* borrowed; the stream key's prefix, default "infergw:" */
    long kv_events_maxlen, kv_snapshot_ms;
};

#define RP_CONFIG_OK   0
#define RP_CONFIG_HELP 1    /* --help was given: print usage, exit 0 */
#define RP_CONFIG_BAD  (-1) /* <err> says what is wrong: exit 2 */

/* Parses argv[1..argc-1] into <cfg> (defaults first, then the flags).
 * Each flag is "--name value" or "--name=value".
 * Returns RP_CONFIG_OK, RP_CONFIG_HELP, or RP_CONFIG_BAD with a one-line
 * message in <err>. <cfg> borrows strings from argv. */
int rp_config_parse(struct rp_config *cfg, int argc, char **argv, char *err, size_t errlen);

/* Writes the --help text: every flag, its default and an example. */
void rp_config_usage(FILE *out);

#endif
