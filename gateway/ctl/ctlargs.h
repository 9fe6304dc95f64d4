/* SPDX-License-Identifier: Apache-2.0 */
/* ctlargs — infergw-ctl's command line: global and command flags, the
 * command table, validation of every operand, and --help.
 *
 * Pure logic (no Redis, no sockets), so each refusal is unit-tested. Flags
 * may come before or after the command words ("infergw-ctl pool list
 * --json" works); "--" ends the flags, for a route key that starts with
 * '-'. Every operand is checked here, before anything talks to Redis, with
 * the same rules the gateway applies when it loads the keys, so a value
 * infergw-ctl writes is never one the gateways reject.
 */
#ifndef INFERGW_CTL_ARGS_H
#define INFERGW_CTL_ARGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

/* Exit codes, documented in --help: scripts rely on them. */
#define CTL_EXIT_OK       0
#define CTL_EXIT_REDIS    1 /* Redis unreachable, or it answered an error */
#define CTL_EXIT_USAGE    2 /* bad command line or a value that fails validation */
#define CTL_EXIT_NOTFOUND 3 /* the pool, replica, field, tenant or key named does not exist */

#define CTL_DEFAULT_REDIS      "redis://127.0.0.1:6379"
#define CTL_DEFAULT_TIMEOUT_MS 2000
#define CTL_MAX_NAME           255 /* pool names, field names */

enum ctl_cmd {
    CTL_HELP = 0,
    CTL_POOL_ADD,
    CTL_POOL_REMOVE,
    CTL_POOL_LIST,
    CTL_REPLICA_ADD,
    CTL_REPLICA_REMOVE,
    CTL_REPLICA_WEIGHT,
    CTL_REPLICA_DRAIN,
    CTL_REPLICA_UNDRAIN,
    CTL_REPLICA_LIST,
    CTL_CONF_GET,
    CTL_CONF_SET,
    CTL_CONF_UNSET,
    CTL_RING_SHOW,
    CTL_ROUTE,
    CTL_VERSION,
    CTL_TENANT_ADD,
    CTL_TENANT_REMOVE,
    CTL_TENANT_SHOW,
    CTL_KEY_CREATE,
    CTL_KEY_REVOKE,
    CTL_KEY_LIST,
    CTL_KEY_HASH,
    CTL_REPLICA_REGISTER,
    CTL_GC,
    CTL_STATUS,
    CTL_DUMP,
    CTL_RESTORE,
};

#define CTL_DEFAULT_DRAIN_MS 2000
#define CTL_DEFAULT_GC_GRACE 60 /* seconds */
#define CTL_MAX_TTL_S        86400

/* API keys infergw-ctl makes: "igw_" and 32 random bytes in base64url
 * without padding (43 characters). */
#define CTL_KEY_PREFIX      "igw_"
#define CTL_KEY_LEN         47
#define CTL_HASH_PREFIX     12 /* hex digits of a key hash that key list shows */
#define CTL_HASH_PREFIX_MIN 8  /* fewest hex digits key revoke takes */

/* A parsed command line. Strings are borrowed from argv (or the
 * environment), valid as long as they are. */
struct ctl_args {
    const char *redis_url; /* --redis, else $INFERGW_REDIS, else CTL_DEFAULT_REDIS */
    const char *prefix;    /* --redis-prefix, default "infergw:" */
    int timeout_ms;        /* --timeout-ms, default CTL_DEFAULT_TIMEOUT_MS */
    int json;              /* --json */
    enum ctl_cmd cmd;
    const char *pool;        /* <pool> operand or --pool; NULL = none (global conf) */
    const char *replica;     /* <host:port> */
    uint32_t weight;         /* --weight or <N>; GW_RING_DEFAULT_VNODES if not given */
    const char *field;       /* conf field; NULL = all (conf get) */
    const char *value;       /* conf set value */
    const char *key;         /* route key */
    const char *prompt_file; /* route --prompt-file: a file, or "-" for stdin */
    /* tenants and API keys */
    const char *tenant;   /* <tenant> operand, or --tenant (key list); NULL = all */
    const char *models;   /* --models */
    const char *rps;      /* --rps, validated; NULL = not given */
    const char *burst;    /* --burst, validated; NULL = not given */
    int force;            /* --force */
    int64_t expires_in_s; /* --expires-in, seconds; 0 = not given */
    int64_t expires_at;   /* --expires-at, unix seconds; 0 = not given */
    const char *revoke;   /* key revoke operand: the key, or a hash prefix */
    int revoke_is_hash;   /* ... 8..64 lowercase hex digits: a hash (prefix) */
    /* leases */
    uint32_t ttl_ms;   /* replica register --ttl S (required), in ms */
    uint32_t drain_ms; /* replica register --drain-ms [CTL_DEFAULT_DRAIN_MS] */
    uint32_t grace_s;  /* gc --grace S [CTL_DEFAULT_GC_GRACE] */
    /* dump and restore */
    const char *out;  /* dump --out FILE; NULL = stdout */
    const char *file; /* restore operand: a file, or "-" for stdin */
    int dry_run;      /* restore --dry-run */
};

/* Parses argv (argv[0] is the program). <env_redis> is $INFERGW_REDIS (may
 * be NULL). Returns 0 with <a> filled (cmd CTL_HELP for --help or "help"),
 * or CTL_EXIT_USAGE with the reason in <err>: unknown command or flag, a
 * flag without its value, too few or too many operands, a flag the command
 * does not take, or an operand that fails its check below (conf set values
 * are validated with gw_tunables_set). */
int ctl_args_parse(struct ctl_args *a, int argc, char **argv, const char *env_redis, char *err,
                   size_t errlen);

/* Writes --help: every command, flag, default, exit code and examples. */
void ctl_args_usage(FILE *out);

/* The command's words ("replica weight"), for messages. */
const char *ctl_args_cmd_name(enum ctl_cmd cmd);

/* A pool name: gw_pool_name_valid (base/names.h: 1..255 bytes, printable
 * ASCII, no space and no comma; the
 * gateway's rules). Returns 0, or -1 with the reason in <err>. */
int ctl_check_pool(const char *name, char *err, size_t errlen);

/* A replica address as the ring stores it: "host:port" or "[v6]:port",
 * accepted by gw_hostport_split, written canonically (no leading zero in
 * the port, brackets only around IPv6, so one replica has one spelling),
 * no '#' (it separates the vnode index in ring members), no ',', '/', '@'
 * or space. Returns 0, or -1 with the reason in <err>. */
int ctl_check_replica(const char *addr, char *err, size_t errlen);

/* A weight (vnode count): decimal 1..GW_RING_MAX_VNODES. Returns 0 and
 * sets *out, or -1 with the reason in <err> (*out untouched). */
int ctl_check_weight(const char *s, uint32_t *out, char *err, size_t errlen);

/* A duration for --expires-in: a whole number with a unit s, m, h, d or w
 * ("90d", "12h"; a bare number is seconds), 1 s .. 100 years. Returns 0
 * and sets *out (seconds), or -1 with the reason in <err>. */
int ctl_parse_duration(const char *s, int64_t *out, char *err, size_t errlen);

/* Writes the API key text for 32 random bytes <raw> into <out>
 * (CTL_KEY_PREFIX + base64url without padding, NUL-terminated). */
void ctl_key_format(const uint8_t raw[32], char out[CTL_KEY_LEN + 1]);

#endif
