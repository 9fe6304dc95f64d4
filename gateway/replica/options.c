/* SPDX-License-Identifier: Apache-2.0 */
/* options — the replica's command line (see options.h).
 *
 * Flags are parsed by hand rather than with getopt_long so that every
 * message names the flag and the rejected value the same way, and so that
 * abbreviations (which getopt_long accepts) cannot silently match.
 */
#include "options.h"

#include <ctype.h>
#include <errno.h>
#include <math.h>
#include <stddef.h>
#include <stdlib.h>
#include <string.h>

#include "base/err.h"
#include "base/grpcwire.h"
#include "base/hostport.h"
#include "base/names.h"
#include "route/prefix.h"
#include "tokens.h"

void rp_config_usage(FILE *out)
{
    fprintf(out,
            "usage: infergw-replica [flags]\n"
            "\n"
            "Reference KServe v2 model replica for infergw: every model computes\n"
            "OUTPUT<i> = 2*x + 1 for each FP32 input tensor <i>.\n"
            "\n"
            "flags (default in brackets):\n"
            "  --listen HOST:PORT     address to serve on [" RP_DEFAULT_LISTEN "]\n"
            "  --id ID                replica id sent as x-replica-id and logged\n"
            "                         [the --listen address]\n"
            "  --model NAME           serve another model besides 'demo'; repeatable\n"
            "                         [demo only]\n"
            "  --latency-ms N         delay before each inference request's first\n"
            "                         response, and before ModelReady/ModelMetadata\n"
            "                         answers [0]\n"
            "  --slow-fraction F      fraction (0..1) of those calls that wait\n"
            "                         --slow-ms instead of --latency-ms [0]\n"
            "  --slow-ms N            delay of the slow calls [1000]\n"
            "  --error-fraction F     fraction (0..1) of ModelInfer and ModelStreamInfer\n"
            "                         calls that end with --error-code instead [0]\n"
            "  --error-code CODE      gRPC status of injected errors, by name or\n"
            "                         number 1..16 [UNAVAILABLE]\n"
            "  --error-after-headers  send response headers before an injected error\n"
            "                         (status in trailers) instead of trailers-only [off]\n"
            "  --error-pushback V     send grpc-retry-pushback-ms: V (sent as given, so\n"
            "                         malformed values can be tried) with injected\n"
            "                         errors [none]\n"
            "  --threads N            completion-queue threads, 1..%d [2]\n"
            "  --seed N               random seed for the fractions [from the clock]\n"
            "  --quiet                no per-call log lines (cancellations and\n"
            "                         counts are still logged) [off]\n"
            "  --tls-cert FILE        serve TLS (ALPN h2) with this PEM certificate\n"
            "                         chain; needs --tls-key [none: plaintext h2c]\n"
            "  --tls-key FILE         PEM private key of --tls-cert [none]\n"
            "  --tls-client-ca FILE   require a client certificate issued by a CA in\n"
            "                         this PEM bundle (needs --tls-cert) [none]\n"
            "  --token-model NAME     serve NAME as a token-streaming model: its\n"
            "                         ModelStreamInfer answers are max_tokens messages,\n"
            "                         one token each, deterministic for the request and\n"
            "                         its seed (docs/stream-resume.md); repeatable [none]\n"
            "  --max-tokens N         tokens per stream when the request has no\n"
            "                         max_tokens parameter, 1..%d [%d]\n"
            "  --token-ms N           pause between two tokens of a stream [0]\n"
            "  --no-resume            refuse x-resume-from with FAILED_PRECONDITION\n"
            "                         \"resume not supported\" [off: honoured]\n"
            "  --nondeterministic     mix a per-process random value into the tokens,\n"
            "                         so replicas disagree [off]\n"
            "\n"
            "LLM simulation (docs/llm-simulation.md):\n"
            "  --llm-model NAME       serve NAME as a simulated LLM: ModelInfer answers\n"
            "                         once, ModelStreamInfer once per token; a KV cache\n"
            "                         of prompt blocks, prefill and decode costs, load\n"
            "                         reports in trailers; repeatable [none]\n"
            "  --kv-blocks N          KV cache capacity in blocks (LRU), 1..%d [%d]\n"
            "  --prefix-input NAME    input tensor holding the prompt (BYTES text or\n"
            "                         INT32/INT64 ids) [text_input]\n"
            "  --prefix-block N       block size in bytes (text) or ids, 1..1024 [64]\n"
            "  --prefix-max-blocks N  blocks hashed per prompt, 1..1024 [128]\n"
            "  --prefill-us-per-unit N  prefill cost per uncached prompt byte or id,\n"
            "                         in microseconds, 0..%ld [%d]\n"
            "  --decode-tokens N      tokens per answer when the request has no\n"
            "                         max_tokens parameter, 1..%d [%d]\n"
            "  --decode-us-per-token N  decode cost per token in microseconds,\n"
            "                         0..%ld [%d]\n"
            "  --max-batch N          requests in prefill or decode at once, 1..%d [%d]\n"
            "  --max-queue N          requests waiting for the batch, 0..%d; more are\n"
            "                         refused with RESOURCE_EXHAUSTED [%d]\n"
            "  --seed N               (also) makes the generated tokens reproducible\n"
            "  --kv-events-redis HOST:PORT  publish KV-cache events to the Redis Stream\n"
            "                         <--kv-events-prefix>pool:<--kv-pool>:kv [off]\n"
            "  --kv-events-prefix P   key prefix, as the gateway's --redis-prefix, 1..127\n"
            "                         printable characters [infergw:]\n"
            "  --kv-pool NAME         pool of the events [the first --llm-model]\n"
            "  --kv-id ID             replica id in the events [--id]\n"
            "  --kv-events-maxlen N   XADD MAXLEN ~ N, 1..1000000000 [%d]\n"
            "  --kv-snapshot-ms N     complete snapshot period, 100..3600000 [%d]\n"
            "\n"
            "  --help                 print this text and exit\n"
            "\n"
            "signals: SIGUSR1 sets grpc.health.v1 to NOT_SERVING, SIGUSR2 back to\n"
            "SERVING; SIGTERM/SIGINT shut down (calls still running after 1 s are\n"
            "cancelled), print counts and exit 0.\n"
            "\n"
            "example:\n"
            "  infergw-replica --listen 127.0.0.1:7201 --id r1 --model resnet \\\n"
            "      --latency-ms 20 --slow-fraction 0.05 --slow-ms 400 \\\n"
            "      --error-fraction 0.01 --error-code UNAVAILABLE --error-after-headers\n"
            "  infergw-replica --listen 127.0.0.1:7443 --tls-cert cert.pem --tls-key key.pem\n"
            "  infergw-replica --listen 127.0.0.1:7202 --token-model llm --token-ms 20\n"
            "  infergw-replica --listen 127.0.0.1:7203 --llm-model llm --kv-blocks 256 \\\n"
            "      --prefill-us-per-unit 50 --decode-us-per-token 10000 --max-batch 4 \\\n"
            "      --seed 1 --kv-events-redis 127.0.0.1:6379\n",
            RP_MAX_THREADS, RP_TOKENS_MAX, RP_TOKENS_DEFAULT, RP_KV_BLOCKS_MAX,
            RP_KV_BLOCKS_DEFAULT, RP_MAX_US, RP_PREFILL_US_DEFAULT, RP_TOKENS_MAX,
            RP_DECODE_TOKENS_DEF, RP_MAX_US, RP_DECODE_US_DEFAULT, RP_MAX_BATCH,
            RP_MAX_BATCH_DEFAULT, RP_MAX_QUEUE, RP_MAX_QUEUE_DEFAULT, RP_KV_MAXLEN_DEFAULT,
            RP_KV_SNAPSHOT_DEFAULT);
}

static int bad(char *err, size_t errlen, const char *flag, const char *value, const char *why)
{
    return gw_errf(err, errlen, "%s: '%s' %s", flag, value, why); /* RP_CONFIG_BAD */
}

static int parse_long(const char *s, long lo, long hi, long *out)
{
    uint64_t v;
    if (gw_parse_u64(s, (uint64_t)lo, (uint64_t)hi, &v) < 0)
        return -1;
    *out = (long)v;
    return 0;
}

static int parse_fraction(const char *s, double *out)
{
    char *end;
    double v;
    if (!*s || isspace((unsigned char)s[0]))
        return -1;
    errno = 0;
    v = strtod(s, &end);
    if (errno || *end || !isfinite(v) || v < 0.0 || v > 1.0)
        return -1;
    *out = v;
    return 0;
}

/* A gRPC status by name or number, OK excluded: an injected error is never
 * OK. */
static int parse_code(const char *s, grpc_status_code *out)
{
    int code = gw_grpc_status_parse(s);
    if (code <= GW_GRPC_OK)
        return -1;
    *out = (grpc_status_code)code;
    return 0;
}

/* HOST:PORT with a port 0..65535 ("[v6]:port" included), or a grpc
 * "unix:PATH" address. */
static int valid_listen(const char *s)
{
    const char *colon;
    long port;
    if (strncmp(s, "unix:", 5) == 0)
        return s[5] != '\0';
    colon = strrchr(s, ':');
    if (!colon || colon == s)
        return 0;
    return parse_long(colon + 1, 0, 65535, &port) == 0;
}

/* An --id: 1..200 printable ASCII bytes, no space. */
static int valid_id(const char *s)
{
    return gw_name_word(s, strlen(s), 200, "");
}

static void add_model(struct rp_config *cfg, const char *name)
{
    for (size_t i = 0; i < cfg->nmodels; i++) {
        if (strcmp(cfg->models[i], name) == 0)
            return;
    }
    cfg->models[cfg->nmodels++] = name;
}

/* --token-model: served like --model, and listed as a token model. */
static int add_token_model(struct rp_config *cfg, const char *flag, const char *value, char *err,
                           size_t errlen)
{
    if (!gw_pool_name_valid(value, strlen(value)))
        return bad(err, errlen, flag, value,
                   "is not a valid model name (1..255 printable characters, no spaces or commas)");
    for (size_t i = 0; i < cfg->nmodels; i++) {
        if (strcmp(cfg->models[i], value) == 0)
            return bad(err, errlen, flag, value,
                       "is already served (by --model, as 'demo', or by an earlier --token-model)");
    }
    if (cfg->nmodels == RP_MAX_MODELS)
        return bad(err, errlen, flag, value, "is one model too many (at most 64)");
    add_model(cfg, value);
    cfg->token_models[cfg->ntoken_models++] = value;
    return 0;
}

/* A whole number flag within lo..hi into *out; -1 with the message. */
static int number(const char *flag, const char *value, long lo, long hi, long *out, char *err,
                  size_t errlen)
{
    char why[96];
    if (parse_long(value, lo, hi, out) == 0)
        return 0;
    snprintf(why, sizeof(why), "is not a whole number in %ld..%ld", lo, hi);
    return bad(err, errlen, flag, value, why);
}

/* The LLM simulation's flags: 1 when <name> is one (parsed), 0 when not,
 * -1 with <err> for a bad value. */
static int parse_llm_flag(struct rp_config *cfg, const char *name, const char *value, char *err,
                          size_t errlen)
{
    static const struct {
        const char *name;
        size_t off;
        long lo, hi;
    } nums[] = {
        {"--kv-blocks", offsetof(struct rp_config, kv_blocks), 1, RP_KV_BLOCKS_MAX},
        {"--prefix-block", offsetof(struct rp_config, prefix_block), 1, GW_PREFIX_BLOCK_MAX},
        {"--prefix-max-blocks", offsetof(struct rp_config, prefix_max_blocks), 1,
         GW_PREFIX_BLOCKS_MAX},
        {"--prefill-us-per-unit", offsetof(struct rp_config, prefill_us_per_unit), 0, RP_MAX_US},
        {"--decode-tokens", offsetof(struct rp_config, decode_tokens), 1, RP_TOKENS_MAX},
        {"--decode-us-per-token", offsetof(struct rp_config, decode_us_per_token), 0, RP_MAX_US},
        {"--max-batch", offsetof(struct rp_config, max_batch), 1, RP_MAX_BATCH},
        {"--max-queue", offsetof(struct rp_config, max_queue), 0, RP_MAX_QUEUE},
        {"--kv-events-maxlen", offsetof(struct rp_config, kv_events_maxlen), 1, 1000000000L},
        {"--kv-snapshot-ms", offsetof(struct rp_config, kv_snapshot_ms), 100, RP_MAX_DELAY_MS},
    };
    for (size_t i = 0; i < sizeof(nums) / sizeof(nums[0]); i++) {
        if (strcmp(name, nums[i].name) == 0)
            return number(name, value, nums[i].lo, nums[i].hi, (long *)((char *)cfg + nums[i].off),
                          err, errlen) < 0
                       ? -1
                       : 1;
    }
    if (strcmp(name, "--llm-model") == 0) {
        if (add_token_model(cfg, name, value, err, errlen) < 0)
            return -1;
        cfg->llm_models[cfg->nllm_models++] = value;
    } else if (strcmp(name, "--prefix-input") == 0) {
        if (!gw_name_word(value, strlen(value), 255, ""))
            return bad(err, errlen, name, value,
                       "is not a tensor name (1..255 printable characters, no spaces)");
        cfg->prefix_input = value;
    } else if (strcmp(name, "--kv-events-redis") == 0) {
        char host[256];
        uint16_t port;
        if (gw_hostport_split(value, host, sizeof(host), &port) < 0)
            return bad(err, errlen, name, value, "is not HOST:PORT (port 1..65535)");
        cfg->kv_events_redis = value;
    } else if (strcmp(name, "--kv-pool") == 0) {
        if (!gw_pool_name_valid(value, strlen(value)))
            return bad(err, errlen, name, value,
                       "is not a valid pool name (1..255 printable characters, no spaces or "
                       "commas)");
        cfg->kv_pool = value;
    } else if (strcmp(name, "--kv-events-prefix") == 0) {
        if (!gw_name_word(value, strlen(value), 127, ""))
            return bad(err, errlen, name, value,
                       "is not a key prefix (1..127 printable characters, no spaces)");
        cfg->kv_prefix = value;
    } else if (strcmp(name, "--kv-id") == 0) {
        if (!valid_id(value))
            return bad(err, errlen, name, value,
                       "is not a valid id (1..200 printable characters, no spaces)");
        cfg->kv_id = value;
    } else {
        return 0;
    }
    return 1;
}

/* The LLM flags make sense only together: 0, or -1 with <err>. */
static int check_llm(struct rp_config *cfg, int llm_flags, char *err, size_t errlen)
{
    if (llm_flags && cfg->nllm_models == 0)
        return gw_errf(err, errlen,
                       "the LLM simulation flags (--kv-blocks, --prefill-us-per-unit, ...) need "
                       "--llm-model");
    if ((cfg->kv_pool || cfg->kv_id || cfg->kv_prefix) && !cfg->kv_events_redis)
        return gw_errf(err, errlen,
                       "--kv-pool, --kv-id and --kv-events-prefix need --kv-events-redis");
    if (!cfg->kv_prefix)
        cfg->kv_prefix = "infergw:";
    if (!cfg->kv_pool && cfg->nllm_models)
        cfg->kv_pool = cfg->llm_models[0];
    return 0;
}

static const char *const switches[] = {"--error-after-headers", "--quiet", "--no-resume",
                                       "--nondeterministic",    "--help",  "-h"};
static const char *const valued[] = {"--listen",
                                     "--id",
                                     "--model",
                                     "--latency-ms",
                                     "--slow-ms",
                                     "--slow-fraction",
                                     "--error-fraction",
                                     "--error-code",
                                     "--error-pushback",
                                     "--threads",
                                     "--seed",
                                     "--tls-cert",
                                     "--tls-key",
                                     "--tls-client-ca",
                                     "--token-model",
                                     "--max-tokens",
                                     "--token-ms",
                                     "--llm-model",
                                     "--kv-blocks",
                                     "--prefix-input",
                                     "--prefix-block",
                                     "--prefix-max-blocks",
                                     "--prefill-us-per-unit",
                                     "--decode-tokens",
                                     "--decode-us-per-token",
                                     "--max-batch",
                                     "--max-queue",
                                     "--kv-events-redis",
                                     "--kv-events-prefix",
                                     "--kv-pool",
                                     "--kv-id",
                                     "--kv-events-maxlen",
                                     "--kv-snapshot-ms"};

static int in_list(const char *name, const char *const *list, size_t n)
{
    for (size_t i = 0; i < n; i++) {
        if (strcmp(name, list[i]) == 0)
            return 1;
    }
    return 0;
}

/* 0 for a flag without value, 1 for a flag that takes one, -1 unknown. */
static int flag_kind(const char *name)
{
    if (in_list(name, switches, sizeof(switches) / sizeof(switches[0])))
        return 0;
    if (in_list(name, valued, sizeof(valued) / sizeof(valued[0])))
        return 1;
    return -1;
}

int rp_config_parse(struct rp_config *cfg, int argc, char **argv, char *err, size_t errlen)
{
    long n;
    int llm_flags = 0;

    memset(cfg, 0, sizeof(*cfg));
    cfg->listen = RP_DEFAULT_LISTEN;
    cfg->models[0] = "demo";
    cfg->nmodels = 1;
    cfg->slow_ms = 1000;
    cfg->error_code = GRPC_STATUS_UNAVAILABLE;
    cfg->threads = 2;
    cfg->max_tokens = RP_TOKENS_DEFAULT;
    cfg->kv_blocks = RP_KV_BLOCKS_DEFAULT;
    cfg->prefix_input = "text_input";
    cfg->prefix_block = 64;
    cfg->prefix_max_blocks = 128;
    cfg->prefill_us_per_unit = RP_PREFILL_US_DEFAULT;
    cfg->decode_tokens = RP_DECODE_TOKENS_DEF;
    cfg->decode_us_per_token = RP_DECODE_US_DEFAULT;
    cfg->max_batch = RP_MAX_BATCH_DEFAULT;
    cfg->max_queue = RP_MAX_QUEUE_DEFAULT;
    cfg->kv_events_maxlen = RP_KV_MAXLEN_DEFAULT;
    cfg->kv_snapshot_ms = RP_KV_SNAPSHOT_DEFAULT;

    for (int i = 1; i < argc; i++) {
        char name[64];
        int kind;
        const char *arg = argv[i], *value = NULL, *eq;

        if (strncmp(arg, "--", 2) != 0 && strcmp(arg, "-h") != 0) {
            gw_errf(err, errlen, "unexpected argument '%s' (flags start with --)", arg);
            return RP_CONFIG_BAD;
        }
        eq = strchr(arg, '=');
        if (eq) {
            size_t len = (size_t)(eq - arg);
            if (len >= sizeof(name))
                len = sizeof(name) - 1;
            memcpy(name, arg, len);
            name[len] = '\0';
            value = eq + 1;
        } else {
            snprintf(name, sizeof(name), "%s", arg);
        }

        kind = flag_kind(name);
        if (kind < 0) {
            gw_errf(err, errlen, "unknown flag '%s'", name);
            return RP_CONFIG_BAD;
        } else if (kind == 0) {
            if (value) {
                gw_errf(err, errlen, "%s takes no value", name);
                return RP_CONFIG_BAD;
            }
        } else if (!value) {
            if (i + 1 >= argc) {
                gw_errf(err, errlen, "%s needs a value", name);
                return RP_CONFIG_BAD;
            }
            value = argv[++i];
        }

        int llm = parse_llm_flag(cfg, name, value, err, errlen);
        if (llm < 0)
            return RP_CONFIG_BAD;
        if (llm > 0) {
            llm_flags |= strcmp(name, "--llm-model") != 0;
        } else if (strcmp(name, "--help") == 0 || strcmp(name, "-h") == 0) {
            return RP_CONFIG_HELP;
        } else if (strcmp(name, "--quiet") == 0) {
            cfg->quiet = 1;
        } else if (strcmp(name, "--no-resume") == 0) {
            cfg->no_resume = 1;
        } else if (strcmp(name, "--nondeterministic") == 0) {
            cfg->nondeterministic = 1;
        } else if (strcmp(name, "--error-after-headers") == 0) {
            cfg->error_after_headers = 1;
        } else if (strcmp(name, "--error-pushback") == 0) {
            if (strlen(value) > 64)
                return bad(err, errlen, name, value, "is longer than 64 characters");
            cfg->error_pushback = value;
        } else if (strcmp(name, "--listen") == 0) {
            if (!valid_listen(value))
                return bad(err, errlen, name, value, "is not HOST:PORT (port 0..65535)");
            cfg->listen = value;
        } else if (strcmp(name, "--id") == 0) {
            if (!valid_id(value))
                return bad(err, errlen, name, value,
                           "is not a valid id (1..200 printable characters, no spaces)");
            cfg->id = value;
        } else if (strcmp(name, "--model") == 0) {
            if (!gw_pool_name_valid(value, strlen(value)))
                return bad(err, errlen, name, value,
                           "is not a valid model name (1..255 printable characters, no spaces "
                           "or commas)");
            if (cfg->nmodels == RP_MAX_MODELS)
                return bad(err, errlen, name, value, "is one model too many (at most 64)");
            add_model(cfg, value);
        } else if (strcmp(name, "--token-model") == 0) {
            if (add_token_model(cfg, name, value, err, errlen) < 0)
                return RP_CONFIG_BAD;
        } else if (strcmp(name, "--max-tokens") == 0) {
            if (parse_long(value, 1, RP_TOKENS_MAX, &cfg->max_tokens) < 0)
                return bad(err, errlen, name, value, "is not a token count in 1..100000");
        } else if (strcmp(name, "--token-ms") == 0) {
            if (parse_long(value, 0, RP_MAX_DELAY_MS, &cfg->token_ms) < 0)
                return bad(err, errlen, name, value,
                           "is not a whole number of milliseconds in 0..3600000");
        } else if (strcmp(name, "--latency-ms") == 0) {
            if (parse_long(value, 0, RP_MAX_DELAY_MS, &cfg->latency_ms) < 0)
                return bad(err, errlen, name, value,
                           "is not a whole number of milliseconds in 0..3600000");
        } else if (strcmp(name, "--slow-ms") == 0) {
            if (parse_long(value, 0, RP_MAX_DELAY_MS, &cfg->slow_ms) < 0)
                return bad(err, errlen, name, value,
                           "is not a whole number of milliseconds in 0..3600000");
        } else if (strcmp(name, "--slow-fraction") == 0) {
            if (parse_fraction(value, &cfg->slow_fraction) < 0)
                return bad(err, errlen, name, value, "is not a fraction in 0..1");
        } else if (strcmp(name, "--error-fraction") == 0) {
            if (parse_fraction(value, &cfg->error_fraction) < 0)
                return bad(err, errlen, name, value, "is not a fraction in 0..1");
        } else if (strcmp(name, "--error-code") == 0) {
            if (parse_code(value, &cfg->error_code) < 0)
                return bad(err, errlen, name, value,
                           "is not a gRPC error code (a name such as UNAVAILABLE, or 1..16)");
        } else if (strcmp(name, "--threads") == 0) {
            if (parse_long(value, 1, RP_MAX_THREADS, &n) < 0)
                return bad(err, errlen, name, value, "is not a thread count in 1..64");
            cfg->threads = (int)n;
        } else if (strcmp(name, "--seed") == 0) {
            uint64_t seed;
            if (gw_parse_u64(value, 0, UINT64_MAX, &seed) < 0)
                return bad(err, errlen, name, value, "is not a non-negative whole number");
            cfg->seed = seed;
            cfg->seed_given = 1;
        } else if (strcmp(name, "--tls-cert") == 0) {
            if (!*value)
                return bad(err, errlen, name, value, "is not a file name");
            cfg->tls_cert = value;
        } else if (strcmp(name, "--tls-key") == 0) {
            if (!*value)
                return bad(err, errlen, name, value, "is not a file name");
            cfg->tls_key = value;
        } else if (strcmp(name, "--tls-client-ca") == 0) {
            if (!*value)
                return bad(err, errlen, name, value, "is not a file name");
            cfg->tls_client_ca = value;
        } else {
            gw_errf(err, errlen, "unknown flag '%s'", name);
            return RP_CONFIG_BAD;
        }
    }
    if (!cfg->tls_cert != !cfg->tls_key) {
        gw_errf(err, errlen, "%s given without %s: both are needed to serve TLS",
                cfg->tls_cert ? "--tls-cert" : "--tls-key",
                cfg->tls_cert ? "--tls-key" : "--tls-cert");
        return RP_CONFIG_BAD;
    }
    if (cfg->tls_client_ca && !cfg->tls_cert) {
        gw_errf(err, errlen, "--tls-client-ca needs --tls-cert and --tls-key");
        return RP_CONFIG_BAD;
    }
    if (!cfg->id)
        cfg->id = cfg->listen;
    if (check_llm(cfg, llm_flags, err, errlen) < 0)
        return RP_CONFIG_BAD;
    if (!cfg->kv_id)
        cfg->kv_id = cfg->id;
    return RP_CONFIG_OK;
}
