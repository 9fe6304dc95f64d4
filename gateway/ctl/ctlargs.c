/* SPDX-License-Identifier: Apache-2.0 */
/* ctlargs — infergw-ctl's command line; see ctlargs.h.
 *
 * One pass sorts argv into flags and positional words; the first one or two
 * words name the command (looked up in a table that also lists its operands
 * and the flags it takes), the rest are its operands, each validated by its
 * kind. The table drives the checks, so adding a command is one row plus
 * its help text.
 */
#include "ctlargs.h"

#include <ctype.h>
#include <stdlib.h>
#include <string.h>

#include "auth/authdb.h"
#include "base/config.h"
#include "base/err.h"
#include "base/names.h"
#include "base/hostport.h"
#include "control/redisconn.h"
#include "route/ring.h"
#include "route/tunables.h"

#define MAX_WORDS 16

/* Command flags a command may take. */
#define F_WEIGHT     1u
#define F_POOL       2u
#define F_MODELS     4u
#define F_RPS        8u
#define F_BURST      16u
#define F_EXPIRES_IN 32u
#define F_EXPIRES_AT 64u
#define F_TENANT     128u
#define F_FORCE      256u
#define F_TTL        512u
#define F_DRAIN_MS   1024u
#define F_GRACE      2048u
#define F_OUT        4096u
#define F_DRY_RUN    8192u
#define F_PROMPT     16384u

/* Flags with a value: global ones (bit 0), then command flags. */
static const struct {
    const char *name;
    unsigned bit;
} valued_flags[] = {
    {"--redis", 0},
    {"--redis-prefix", 0},
    {"--timeout-ms", 0},
    {"--weight", F_WEIGHT},
    {"--pool", F_POOL},
    {"--models", F_MODELS},
    {"--rps", F_RPS},
    {"--burst", F_BURST},
    {"--expires-in", F_EXPIRES_IN},
    {"--expires-at", F_EXPIRES_AT},
    {"--tenant", F_TENANT},
    {"--ttl", F_TTL},
    {"--drain-ms", F_DRAIN_MS},
    {"--grace", F_GRACE},
    {"--out", F_OUT},
    {"--prompt-file", F_PROMPT},
};
#define NVALUED (sizeof(valued_flags) / sizeof(valued_flags[0]))

/* Operand kinds, one letter each in cmd_spec.ops:
 * P pool, R replica, W weight, F tunable field, f optional tunable field,
 * U any field name (unset may remove a field the gateway does not know),
 * V tunable value (checked against the field), K route key, T tenant,
 * t optional tenant, X API key or key-hash prefix, S API key text,
 * D a file name or "-" (stdin).
 * A lowercase kind is optional and comes last. */
struct cmd_spec {
    const char *name; /* for messages */
    const char *w1, *w2;
    enum ctl_cmd cmd;
    const char *ops;
    unsigned flags;
};

static const struct cmd_spec cmds[] = {
    {"pool add", "pool", "add", CTL_POOL_ADD, "P", 0},
    {"pool remove", "pool", "remove", CTL_POOL_REMOVE, "P", 0},
    {"pool list", "pool", "list", CTL_POOL_LIST, "", 0},
    {"replica add", "replica", "add", CTL_REPLICA_ADD, "PR", F_WEIGHT},
    {"replica remove", "replica", "remove", CTL_REPLICA_REMOVE, "PR", 0},
    {"replica weight", "replica", "weight", CTL_REPLICA_WEIGHT, "PRW", 0},
    {"replica drain", "replica", "drain", CTL_REPLICA_DRAIN, "R", 0},
    {"replica undrain", "replica", "undrain", CTL_REPLICA_UNDRAIN, "R", 0},
    {"replica list", "replica", "list", CTL_REPLICA_LIST, "P", 0},
    {"replica register", "replica", "register", CTL_REPLICA_REGISTER, "PR",
     F_WEIGHT | F_TTL | F_DRAIN_MS},
    {"gc", "gc", NULL, CTL_GC, "", F_GRACE},
    {"status", "status", NULL, CTL_STATUS, "", 0},
    {"conf get", "conf", "get", CTL_CONF_GET, "f", F_POOL},
    {"conf set", "conf", "set", CTL_CONF_SET, "FV", F_POOL},
    {"conf unset", "conf", "unset", CTL_CONF_UNSET, "U", F_POOL},
    {"ring show", "ring", "show", CTL_RING_SHOW, "P", 0},
    {"route", "route", NULL, CTL_ROUTE, "Pk", F_PROMPT},
    {"tenant add", "tenant", "add", CTL_TENANT_ADD, "T", F_MODELS | F_RPS | F_BURST},
    {"tenant remove", "tenant", "remove", CTL_TENANT_REMOVE, "T", F_FORCE},
    {"tenant show", "tenant", "show", CTL_TENANT_SHOW, "t", 0},
    {"key create", "key", "create", CTL_KEY_CREATE, "T", F_EXPIRES_IN | F_EXPIRES_AT},
    {"key revoke", "key", "revoke", CTL_KEY_REVOKE, "X", 0},
    {"key list", "key", "list", CTL_KEY_LIST, "", F_TENANT},
    {"key hash", "key", "hash", CTL_KEY_HASH, "S", 0},
    {"dump", "dump", NULL, CTL_DUMP, "", F_OUT},
    {"restore", "restore", NULL, CTL_RESTORE, "D", F_DRY_RUN},
    {"version", "version", NULL, CTL_VERSION, "", 0},
    {"help", "help", NULL, CTL_HELP, "", 0},
};

const char *ctl_args_cmd_name(enum ctl_cmd cmd)
{
    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++)
        if (cmds[i].cmd == cmd)
            return cmds[i].name;
    return "?";
}

/* --- operand checks ----------------------------------------------------- */

/* 1..max bytes of printable ASCII without space; <extra> lists further
 * refused characters. */
static int printable_word(const char *s, size_t max, const char *extra)
{
    return gw_name_word(s, strlen(s), max, extra);
}

int ctl_check_pool(const char *name, char *err, size_t errlen)
{
    if (gw_pool_name_valid(name, strlen(name)))
        return 0;
    gw_errf(err, errlen,
            "pool name '%s' refused: expected 1..%d printable characters, no spaces or commas",
            name, GW_POOL_NAME_MAX);
    return -1;
}

int ctl_check_replica(const char *addr, char *err, size_t errlen)
{
    char host[256], canon[300];
    uint16_t port;

    if (!printable_word(addr, sizeof(canon) - 1, "#,/@") ||
        gw_hostport_split(addr, host, sizeof(host), &port) < 0) {
        gw_errf(err, errlen,
                "replica address '%s' refused: expected host:port or [ipv6]:port (port 1..65535; "
                "no spaces or '#', ',', '/', '@')",
                addr);
        return -1;
    }
    if (strchr(host, ':'))
        snprintf(canon, sizeof(canon), "[%s]:%u", host, port);
    else
        snprintf(canon, sizeof(canon), "%s:%u", host, port);
    if (strcmp(canon, addr) != 0) {
        gw_errf(err, errlen,
                "replica address '%s' refused: write it as %s (one spelling per replica, or the "
                "ring would hold it twice)",
                addr, canon);
        return -1;
    }
    return 0;
}

int ctl_check_weight(const char *s, uint32_t *out, char *err, size_t errlen)
{
    unsigned long v = 0;
    size_t n = strlen(s);

    for (size_t i = 0; i < n && v <= GW_RING_MAX_VNODES; i++) {
        if (s[i] < '0' || s[i] > '9') {
            v = 0;
            break;
        }
        v = v * 10 + (unsigned long)(s[i] - '0');
    }
    if (n == 0 || n > 5 || v < 1 || v > GW_RING_MAX_VNODES) {
        gw_errf(err, errlen, "weight '%s' refused: expected a number of vnodes from 1 to %d", s,
                GW_RING_MAX_VNODES);
        return -1;
    }
    *out = (uint32_t)v;
    return 0;
}

static int check_prefix(const char *p, char *err, size_t errlen)
{
    if (printable_word(p, 127, ""))
        return 0;
    gw_errf(err, errlen, "--redis-prefix '%s' refused: expected 1..127 printable characters", p);
    return -1;
}

static int check_timeout(const char *s, int *out, char *err, size_t errlen)
{
    uint32_t v;

    if (gw_parse_u32(s, 10, 60000, &v) < 0)
        return gw_errf(err, errlen, "--timeout-ms '%s' refused: expected 10..60000", s);
    *out = (int)v;
    return 0;
}

/* A whole decimal number <lo>..<hi> for flag <flag>. */
static int check_uint(const char *flag, const char *s, uint32_t lo, uint32_t hi, uint32_t *out,
                      char *err, size_t errlen)
{
    if (gw_parse_u32(s, lo, hi, out) < 0)
        return gw_errf(err, errlen, "%s '%s' refused: expected a whole number from %u to %u", flag,
                       s, lo, hi);
    return 0;
}

static int check_field(const char *f, char *err, size_t errlen)
{
    size_t len = 0;
    char names[400];

    if (gw_tunables_field(f) >= 0)
        return 0;
    names[0] = '\0';
    for (int i = 0; i < GW_TUN_COUNT; i++)
        len += (size_t)snprintf(names + len, sizeof(names) - len, "%s%s", i ? ", " : "",
                                gw_tunable_names[i]);
    gw_errf(err, errlen, "unknown tunable '%s'; the tunables are: %s", f, names);
    return -1;
}

/* --- parsing ---------------------------------------------------------------- */

/* Matches "--name" or "--name=value" in <arg>. Returns 0 when no match, 1
 * and *inline_val (NULL when there is no '=') when it matches. */
static int flag_is(const char *arg, const char *name, const char **inline_val)
{
    size_t n = strlen(name);

    if (strncmp(arg, name, n) != 0)
        return 0;
    if (arg[n] == '\0') {
        *inline_val = NULL;
        return 1;
    }
    if (arg[n] == '=') {
        *inline_val = arg + n + 1;
        return 1;
    }
    return 0;
}

static const struct cmd_spec *find_cmd(const char *const *words, size_t nwords, size_t *used,
                                       char *err, size_t errlen)
{
    const struct cmd_spec *first = NULL;
    char subs[128] = "";
    size_t len = 0;

    for (size_t i = 0; i < sizeof(cmds) / sizeof(cmds[0]); i++) {
        if (strcmp(cmds[i].w1, words[0]) != 0)
            continue;
        first = &cmds[i];
        if (!cmds[i].w2) {
            *used = 1;
            return &cmds[i];
        }
        if (nwords > 1 && !strcmp(cmds[i].w2, words[1])) {
            *used = 2;
            return &cmds[i];
        }
        len +=
            (size_t)snprintf(subs + len, sizeof(subs) - len, "%s%s", len ? ", " : "", cmds[i].w2);
    }
    if (!first)
        gw_errf(err, errlen,
                "unknown command '%s': expected pool, replica, conf, ring, route, tenant, key, "
                "gc, status, dump, restore, version or help (see --help)",
                words[0]);
    else if (nwords > 1)
        gw_errf(err, errlen, "unknown command '%s %s': '%s' takes %s", words[0], words[1], words[0],
                subs);
    else
        gw_errf(err, errlen, "'%s' needs one of: %s", words[0], subs);
    return NULL;
}

static const char *op_name(char k)
{
    switch (k) {
    case 'P':
        return "<pool>";
    case 'R':
        return "<host:port>";
    case 'W':
        return "<weight>";
    case 'F':
    case 'f':
    case 'U':
        return "<field>";
    case 'V':
        return "<value>";
    case 'K':
    case 'k':
        return "<key>";
    case 'T':
    case 't':
        return "<tenant>";
    case 'X':
        return "<key-or-hash-prefix>";
    case 'S':
        return "<api-key>";
    case 'D':
        return "<file|->";
    }
    return "?";
}

static int take_operand(struct ctl_args *a, char kind, const char *w, char *err, size_t errlen)
{
    switch (kind) {
    case 'P':
        a->pool = w;
        return ctl_check_pool(w, err, errlen);
    case 'R':
        a->replica = w;
        return ctl_check_replica(w, err, errlen);
    case 'W':
        return ctl_check_weight(w, &a->weight, err, errlen);
    case 'F':
    case 'f':
        a->field = w;
        return check_field(w, err, errlen);
    case 'U':
        a->field = w;
        if (printable_word(w, CTL_MAX_NAME, ""))
            return 0;
        gw_errf(err, errlen, "field name '%s' refused: expected 1..%d printable characters", w,
                CTL_MAX_NAME);
        return -1;
    case 'V': {
        struct gw_tunables t;
        char why[300];

        a->value = w;
        gw_tunables_defaults(&t);
        if (gw_tunables_set(&t, a->field, w, why, sizeof(why)) == 0)
            return 0;
        gw_errf(err, errlen, "refused, nothing written: %s", why);
        return -1;
    }
    case 'K':
    case 'k':
        a->key = w;
        if (w[0])
            return 0;
        gw_errf(err, errlen, "empty route key: a call without a key is spread by load, not routed");
        return -1;
    case 'T':
    case 't':
        a->tenant = w;
        if (gw_tenant_name_valid(w))
            return 0;
        gw_errf(
            err, errlen,
            "tenant name '%s' refused: expected 1..%d printable characters, no spaces or commas", w,
            GW_TENANT_NAME_MAX);
        return -1;
    case 'X': {
        size_t n = strlen(w), hex = strspn(w, "0123456789abcdef");
        a->revoke = w;
        a->revoke_is_hash = hex == n && n >= CTL_HASH_PREFIX_MIN && n <= GW_AUTHDB_HASH_HEX;
        if (!a->revoke_is_hash && hex == n && n > 0) {
            gw_errf(err, errlen,
                    "'%s' refused: a key-hash prefix has %d to %d lowercase hex digits (key list "
                    "shows %d)",
                    w, CTL_HASH_PREFIX_MIN, GW_AUTHDB_HASH_HEX, CTL_HASH_PREFIX);
            return -1;
        }
        if (n)
            return 0;
        gw_errf(err, errlen, "empty key");
        return -1;
    }
    case 'S':
        a->key = w;
        if (w[0])
            return 0;
        gw_errf(err, errlen, "empty key");
        return -1;
    case 'D':
        a->file = w;
        if (w[0])
            return 0;
        gw_errf(err, errlen, "empty file name (give - for stdin)");
        return -1;
    }
    return -1;
}

int ctl_parse_duration(const char *s, int64_t *out, char *err, size_t errlen)
{
    static const struct {
        char unit;
        int64_t secs;
    } units[] = {{'s', 1}, {'m', 60}, {'h', 3600}, {'d', 86400}, {'w', 604800}};
    const int64_t max = 100LL * 366 * 86400;
    size_t n = strlen(s), digits = strspn(s, "0123456789");
    int64_t mult = 0;

    if (digits == n)
        mult = 1;
    else if (digits + 1 == n)
        for (size_t i = 0; i < sizeof(units) / sizeof(units[0]); i++)
            if (s[digits] == units[i].unit)
                mult = units[i].secs;
    int64_t v = 0;
    for (size_t i = 0; i < digits && v <= max; i++)
        v = v * 10 + (s[i] - '0');
    if (digits == 0 || mult == 0 || v > max || v * mult > max || v == 0) {
        gw_errf(err, errlen,
                "duration '%s' refused: expected a whole number with a unit s, m, h, d or w "
                "(90d, 12h), from 1s to 100 years",
                s);
        return -1;
    }
    *out = v * mult;
    return 0;
}

void ctl_key_format(const uint8_t raw[32], char out[CTL_KEY_LEN + 1])
{
    static const char b64url[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";
    size_t o = strlen(CTL_KEY_PREFIX);
    uint32_t acc = 0;
    int bits = 0;

    memcpy(out, CTL_KEY_PREFIX, o);
    for (size_t i = 0; i < 32; i++) {
        acc = (acc << 8) | raw[i];
        bits += 8;
        while (bits >= 6) {
            bits -= 6;
            out[o++] = b64url[(acc >> bits) & 63];
        }
    }
    if (bits > 0)
        out[o++] = b64url[(acc << (6 - bits)) & 63];
    out[o] = '\0';
}

int ctl_args_parse(struct ctl_args *a, int argc, char **argv, const char *env_redis, char *err,
                   size_t errlen)
{
    const char *words[MAX_WORDS];
    size_t nwords = 0, used = 0, nops;
    const char *weight_flag = NULL, *pool_flag = NULL, *tenant_flag = NULL;
    const char *expires_in = NULL, *expires_at = NULL;
    const char *ttl = NULL, *drain_ms = NULL, *grace = NULL;
    unsigned given = 0;
    int help = 0, ended = 0;
    const struct cmd_spec *spec;
    char why[300];

    memset(a, 0, sizeof(*a));
    a->redis_url = env_redis && env_redis[0] ? env_redis : CTL_DEFAULT_REDIS;
    a->prefix = GW_REDIS_DEFAULT_PREFIX;
    a->timeout_ms = CTL_DEFAULT_TIMEOUT_MS;
    a->weight = GW_RING_DEFAULT_VNODES;
    a->drain_ms = CTL_DEFAULT_DRAIN_MS;
    a->grace_s = CTL_DEFAULT_GC_GRACE;

    for (int i = 1; i < argc; i++) {
        const char *arg = argv[i], *v = NULL;

        if (ended || arg[0] != '-' || arg[1] == '\0') {
            if (nwords == MAX_WORDS) {
                gw_errf(err, errlen, "too many arguments (see --help)");
                return CTL_EXIT_USAGE;
            }
            words[nwords++] = arg;
            continue;
        }
        if (!strcmp(arg, "--")) {
            ended = 1;
            continue;
        }
        if (!strcmp(arg, "--help") || !strcmp(arg, "-h")) {
            help = 1;
            continue;
        }
        if (!strcmp(arg, "--json")) {
            a->json = 1;
            continue;
        }
        if (!strcmp(arg, "--force")) {
            a->force = 1;
            given |= F_FORCE;
            continue;
        }
        if (!strcmp(arg, "--dry-run")) {
            a->dry_run = 1;
            given |= F_DRY_RUN;
            continue;
        }
        size_t k;

        for (k = 0; k < NVALUED; k++)
            if (flag_is(arg, valued_flags[k].name, &v))
                break;
        if (k == NVALUED) {
            gw_errf(err, errlen,
                    "unknown flag '%s' (see --help; put a key starting with '-' after --)", arg);
            return CTL_EXIT_USAGE;
        }
        if (!v) {
            if (i + 1 >= argc) {
                gw_errf(err, errlen, "%s needs a value", valued_flags[k].name);
                return CTL_EXIT_USAGE;
            }
            v = argv[++i];
        }
        given |= valued_flags[k].bit;
        switch (k) {
        case 0:
            a->redis_url = v;
            break;
        case 1:
            if (check_prefix(v, err, errlen) < 0)
                return CTL_EXIT_USAGE;
            a->prefix = v;
            break;
        case 2:
            if (check_timeout(v, &a->timeout_ms, err, errlen) < 0)
                return CTL_EXIT_USAGE;
            break;
        case 3:
            weight_flag = v;
            break;
        case 4:
            pool_flag = v;
            break;
        case 5:
            a->models = v;
            break;
        case 6:
            a->rps = v;
            break;
        case 7:
            a->burst = v;
            break;
        case 8:
            expires_in = v;
            break;
        case 9:
            expires_at = v;
            break;
        case 10:
            tenant_flag = v;
            break;
        case 11:
            ttl = v;
            break;
        case 12:
            drain_ms = v;
            break;
        case 13:
            grace = v;
            break;
        case 14:
            if (!v[0]) {
                gw_errf(err, errlen, "--out needs a file name");
                return CTL_EXIT_USAGE;
            }
            a->out = v;
            break;
        default:
            if (!v[0]) {
                gw_errf(err, errlen, "--prompt-file needs a file name (or - for stdin)");
                return CTL_EXIT_USAGE;
            }
            a->prompt_file = v;
            break;
        }
    }
    if (help) {
        a->cmd = CTL_HELP;
        return 0;
    }
    if (nwords == 0) {
        gw_errf(err, errlen, "no command given (see --help)");
        return CTL_EXIT_USAGE;
    }
    spec = find_cmd(words, nwords, &used, err, errlen);
    if (!spec)
        return CTL_EXIT_USAGE;
    a->cmd = spec->cmd;

    nops = strlen(spec->ops);
    size_t min = nops - (nops && spec->ops[nops - 1] >= 'a' && spec->ops[nops - 1] <= 'z');
    if (nwords - used < min || nwords - used > nops) {
        char syn[128];
        size_t len = 0;

        for (size_t k = 0; k < nops; k++)
            len += (size_t)snprintf(syn + len, sizeof(syn) - len, " %s%s%s",
                                    islower((unsigned char)spec->ops[k]) ? "[" : "",
                                    op_name(spec->ops[k]),
                                    islower((unsigned char)spec->ops[k]) ? "]" : "");
        gw_errf(err, errlen, "%s: %s operands; usage: infergw-ctl %s%s (see --help)",
                ctl_args_cmd_name(spec->cmd), nwords - used < min ? "missing" : "too many",
                ctl_args_cmd_name(spec->cmd), syn);
        return CTL_EXIT_USAGE;
    }
    unsigned extra = given & ~spec->flags;
    if (extra) {
        const char *fname = extra & F_DRY_RUN ? "--dry-run" : "--force";
        for (size_t k = 0; k < NVALUED; k++)
            if (valued_flags[k].bit & extra)
                fname = valued_flags[k].name;
        gw_errf(err, errlen, "%s does not take %s", ctl_args_cmd_name(spec->cmd), fname);
        return CTL_EXIT_USAGE;
    }
    if (a->models && gw_tenant_models_check(a->models, why, sizeof(why)) < 0) {
        gw_errf(err, errlen, "--models '%s' refused: %s", a->models, why);
        return CTL_EXIT_USAGE;
    }
    if (spec->cmd == CTL_TENANT_ADD && !a->models) {
        gw_errf(err, errlen, "tenant add needs --models (a comma list of pools, or * for all)");
        return CTL_EXIT_USAGE;
    }
    double rps;
    uint32_t burst;
    if (a->rps && gw_tenant_parse_rps(a->rps, &rps, why, sizeof(why)) < 0) {
        gw_errf(err, errlen, "--rps '%s' refused: %s", a->rps, why);
        return CTL_EXIT_USAGE;
    }
    if (a->burst && gw_tenant_parse_burst(a->burst, &burst, why, sizeof(why)) < 0) {
        gw_errf(err, errlen, "--burst '%s' refused: %s", a->burst, why);
        return CTL_EXIT_USAGE;
    }
    if (expires_in && expires_at) {
        gw_errf(err, errlen, "give --expires-in or --expires-at, not both");
        return CTL_EXIT_USAGE;
    }
    if (expires_in && ctl_parse_duration(expires_in, &a->expires_in_s, err, errlen) < 0)
        return CTL_EXIT_USAGE;
    if (expires_at && gw_apikey_parse_expires(expires_at, &a->expires_at, why, sizeof(why)) < 0) {
        gw_errf(err, errlen, "--expires-at '%s' refused: %s", expires_at, why);
        return CTL_EXIT_USAGE;
    }
    if (tenant_flag) {
        a->tenant = tenant_flag;
        if (!gw_tenant_name_valid(tenant_flag)) {
            gw_errf(err, errlen, "--tenant '%s' refused: not a tenant name", tenant_flag);
            return CTL_EXIT_USAGE;
        }
    }
    if (weight_flag && ctl_check_weight(weight_flag, &a->weight, err, errlen) < 0)
        return CTL_EXIT_USAGE;
    if (spec->cmd == CTL_REPLICA_REGISTER && !ttl) {
        gw_errf(err, errlen, "replica register needs --ttl S (lease time to live, seconds)");
        return CTL_EXIT_USAGE;
    }
    uint32_t u;
    if (ttl) {
        if (check_uint("--ttl", ttl, 1, CTL_MAX_TTL_S, &u, err, errlen) < 0)
            return CTL_EXIT_USAGE;
        a->ttl_ms = u * 1000u;
    }
    if (drain_ms && check_uint("--drain-ms", drain_ms, 0, 600000, &a->drain_ms, err, errlen) < 0)
        return CTL_EXIT_USAGE;
    if (grace && check_uint("--grace", grace, 0, 30 * 86400, &a->grace_s, err, errlen) < 0)
        return CTL_EXIT_USAGE;
    if (pool_flag) {
        a->pool = pool_flag;
        if (ctl_check_pool(pool_flag, err, errlen) < 0)
            return CTL_EXIT_USAGE;
    }
    for (size_t k = 0; used + k < nwords; k++)
        if (take_operand(a, spec->ops[k], words[used + k], err, errlen) < 0)
            return CTL_EXIT_USAGE;
    if (spec->cmd == CTL_ROUTE && !a->key == !a->prompt_file) {
        gw_errf(err, errlen,
                "route needs a routing key or --prompt-file F, not both (usage: infergw-ctl route "
                "<pool> <key> | infergw-ctl route <pool> --prompt-file F)");
        return CTL_EXIT_USAGE;
    }
    return 0;
}

void ctl_args_usage(FILE *out)
{
    fprintf(
        out,
        "Usage: infergw-ctl [flags] <command> [operands]\n"
        "\n"
        "Operator CLI for infergw: edits the pools, rings, tunables, replica states, tenants\n"
        "and API keys that the gateways load from Redis. Every write is atomic, bumps\n"
        "<prefix>version and is announced on channel <prefix>changed; gateways apply it\n"
        "within about a second.\n"
        "\n"
        "Pools and replicas:\n"
        "  pool add <pool>                   create a pool (model); idempotent\n"
        "  pool remove <pool>                delete a pool with its ring and conf\n"
        "  pool list                         pool names, one per line\n"
        "  replica add <pool> <host:port> [--weight N]\n"
        "                                    put a replica on the pool's ring with N vnodes\n"
        "                                    (1..10000) [100]; the pool must exist; a replica\n"
        "                                    already there with the same weight is left alone\n"
        "  replica remove <pool> <host:port> take a replica off the pool's ring (its drain\n"
        "                                    state, shared by all pools, stays)\n"
        "  replica weight <pool> <host:port> <N>\n"
        "                                    change its vnode count (rewritten atomically)\n"
        "  replica drain <host:port>         state drain: no new calls in any pool; in-flight\n"
        "                                    calls finish; its keys go to the next replica;\n"
        "                                    the replica must be on some pool's ring\n"
        "  replica undrain <host:port>       state active again\n"
        "  replica list <pool>               address, weight (vnodes) and state\n"
        "  replica register <pool> <host:port> --ttl S [--weight N] [--drain-ms N]\n"
        "                                    join and stay: add the replica (if absent) and\n"
        "                                    keep its lease <prefix>lease:<host:port> alive\n"
        "                                    (refreshed every S/3), in the foreground; on\n"
        "                                    SIGTERM/SIGINT drain it, wait --drain-ms, take it\n"
        "                                    off the ring, delete the lease, exit 0. Gateways\n"
        "                                    pass over a replica whose lease expired\n"
        "  gc [--grace S]                    take off every ring the leased replicas whose\n"
        "                                    lease has been gone for S seconds or more [60];\n"
        "                                    the first gc that sees a lease gone records the\n"
        "                                    time in <prefix>lease_gone\n"
        "  status                            each replica's health as each live gateway\n"
        "                                    reports it (<prefix>gateway:<id>), and a summary\n"
        "\n"
        "Tunables (global: <prefix>conf; per pool: <prefix>pool:<pool>:conf):\n"
        "  conf get [--pool P] [field]       effective value and its source: default, global\n"
        "                                    or pool\n"
        "  conf set [--pool P] <field> <value>\n"
        "                                    validated first: a bad value is refused (exit 2)\n"
        "                                    and nothing is written\n"
        "  conf unset [--pool P] <field>     back to the global value or the default; exit 3\n"
        "                                    when it is not set there\n"
        "  fields: balance_factor (0 off, or 1.0..100) [1.25]; hedge_delay_ms (off, auto,\n"
        "  1..600000) [off]; hedge_budget_percent (0..100) [10]; hedge_exclude (comma list\n"
        "  of /pkg.Service/Method) []; retry_max_attempts (1..10) [3]; retry_on (comma list\n"
        "  of gRPC status names) [UNAVAILABLE]; retry_budget_percent (0..100) [20];\n"
        "  per_try_timeout_ms (0 none, 1..3600000) [0]; route_header (lowercase metadata\n"
        "  key) [x-route-key, or the gateway's --route-header]; slo_target (availability\n"
        "  objective in percent, above 50 and below 100, up to 3 decimals) [99.9];\n"
        "  stream_resume (off, replay, continue) [off, or the gateway's --stream-resume];\n"
        "  route_by (ring, least_loaded, prefix) [ring]; prefix_mode (estimate, precise)\n"
        "  [estimate]; prefix_input (tensor name) [text_input]; prefix_block (1..1024)\n"
        "  [64]; prefix_max_blocks (1..1024) [128]; prefix_ttl_ms (1000..86400000)\n"
        "  [600000]; prefix_load_weight (0..100) [1]; prefix_imbalance (0 off, or\n"
        "  1.0..100) [1.5]\n"
        "\n"
        "Ring:\n"
        "  ring show <pool>                  replicas, vnodes, share of the hash space each\n"
        "                                    owns, state\n"
        "  route <pool> <key>                the replica the gateways pick for routing key <key>\n"
        "                                    when every replica is healthy, and the second\n"
        "                                    choice (used for hedges and retries). Drained\n"
        "                                    replicas are passed over as the gateways do: they\n"
        "                                    stay on the ring and their keys go to the next\n"
        "                                    replica clockwise; health and load, which only\n"
        "                                    the gateways see, are not taken into account;\n"
        "                                    exit 3 when no replica is eligible\n"
        "  route <pool> --prompt-file F      prefix-cache routing (route_by prefix): the\n"
        "                                    prompt's block hashes (F's bytes as the text\n"
        "                                    tensor's first element; - = stdin) with the pool's\n"
        "                                    tunables, the ring fallback replica (the point of\n"
        "                                    the first block's hash), and with prefix_mode\n"
        "                                    precise the replica holding the longest prefix,\n"
        "                                    from the pool's KV event stream (XRANGE, at most\n"
        "                                    1000000 entries); estimation is per gateway\n"
        "\n"
        "Tenants and API keys (<prefix>tenant:<name>, <prefix>apikey:<sha256-hex>):\n"
        "  tenant add <tenant> --models a,b|* [--rps N] [--burst N]\n"
        "                                    add or update a tenant: the pools it may call\n"
        "                                    (* = all); at most N calls a second (decimal, 0 =\n"
        "                                    unlimited) with bursts of N (0 = max(1, rps));\n"
        "                                    rps and burst left out keep their value on an\n"
        "                                    update and are 0 on a new tenant\n"
        "  tenant remove <tenant> [--force]  delete a tenant; refused (exit 1) while API keys\n"
        "                                    belong to it, unless --force, which revokes them\n"
        "  tenant show [<tenant>]            models, rps, burst and number of keys; all\n"
        "                                    tenants when none is named\n"
        "  key create <tenant> [--expires-in DURATION | --expires-at UNIX]\n"
        "                                    make a new API key and print it ONCE on stdout\n"
        "                                    (details on stderr): \"" CTL_KEY_PREFIX
        "\" and 32 random\n"
        "                                    bytes (OpenSSL RAND_bytes) in base64url; only its\n"
        "                                    SHA-256 is stored. DURATION: 90d, 12h, 30m, 3600s\n"
        "  key revoke <key-or-hash-prefix>   delete a key record: give the key itself (hashed\n"
        "                                    here, never sent) or 8..64 hex digits of its hash\n"
        "                                    that match exactly one record (exit 2 if several)\n"
        "  key list [--tenant T]             hash prefix (12 hex digits), tenant and expiry of\n"
        "                                    every key; never the keys themselves\n"
        "  key hash <api-key>                print the key's SHA-256 hex, as a --api-keys file\n"
        "                                    line needs (no Redis involved)\n"
        "\n"
        "Backup (docs/backup.md):\n"
        "  dump [--out FILE]                 the whole control-plane state (pools, rings,\n"
        "                                    tunables, replica states, tenants, API-key\n"
        "                                    hashes; not leases or gateway reports) as one\n"
        "                                    JSON document, format infergw-dump version 1,\n"
        "                                    on stdout or into FILE (written whole, then\n"
        "                                    renamed); values the gateways would refuse are\n"
        "                                    reported on stderr\n"
        "  restore [--dry-run] <file|->      check a dump with the gateways' rules (any bad\n"
        "                                    value: exit 2, the message names its JSON path,\n"
        "                                    nothing written), then replace the control-plane\n"
        "                                    keys with it in one atomic script, bump the\n"
        "                                    version and announce it; --dry-run prints what\n"
        "                                    would change (keys and fields) and writes nothing\n"
        "\n"
        "  version                           the current <prefix>version\n"
        "  help                              this text\n"
        "\n"
        "Flags (anywhere on the line; -- ends them):\n"
        "  --redis URL          redis://[[user]:password@]host:port[/db] or\n"
        "                       sentinel://[[user]:password@]h1:p1,h2:p2/MASTER[/db]\n"
        "                       [$INFERGW_REDIS, else " CTL_DEFAULT_REDIS "]\n"
        "  --redis-prefix P     prefix of every key [" GW_REDIS_DEFAULT_PREFIX "]\n"
        "  --timeout-ms N       connect and command timeout, 10..60000 [%d]\n"
        "  --json               machine-readable output: one JSON document on stdout;\n"
        "                       writes print {..., \"changed\": bool, \"version\": N|null}\n"
        "  --weight N           replica add: vnodes, 1..10000 [100]\n"
        "  --pool P             conf get/set/unset: the pool's own tunables [global]\n"
        "  --models LIST        tenant add: comma list of pools, or *\n"
        "  --rps N              tenant add: calls a second, 0 = unlimited [0 or kept]\n"
        "  --burst N            tenant add: bucket size, 0 = max(1, rps) [0 or kept]\n"
        "  --force              tenant remove: also revoke the tenant's API keys\n"
        "  --expires-in D       key create: expire D from now (s, m, h, d, w) [never]\n"
        "  --expires-at UNIX    key create: expire at this unix time [never]\n"
        "  --tenant T           key list: only the keys of tenant T [all]\n"
        "  --ttl S              replica register: lease time to live, 1..86400 s\n"
        "  --drain-ms N         replica register: wait between drain and removal [2000]\n"
        "  --grace S            gc: seconds a lease must have been gone [60]\n"
        "  --out FILE           dump: write FILE instead of stdout\n"
        "  --prompt-file F      route: predict for the prompt in F (- = stdin)\n"
        "  --dry-run            restore: show the changes, write nothing\n"
        "  --help, -h           this text\n"
        "\n"
        "Ring layout: member <host:port>#<i> for i = 0..N-1, score = first 4 bytes of\n"
        "SHA-256(member) read big-endian; a key goes to the first member with score >=\n"
        "the high 32 bits of XXH3-64(key) (seed 0), wrapping (ties ordered by address).\n"
        "\n"
        "Exit codes: 0 ok; 1 Redis unreachable or answered an error; 2 usage or validation\n"
        "error (nothing written); 3 not found (pool, replica, field, tenant or key); tenant\n"
        "remove refused while keys remain: 1. Errors go to stderr\n"
        "and start with \"infergw-ctl: \".\n"
        "\n"
        "Examples:\n"
        "  infergw-ctl pool add demo\n"
        "  infergw-ctl replica add demo 127.0.0.1:7201 --weight 200\n"
        "  infergw-ctl replica drain 127.0.0.1:7201\n"
        "  infergw-ctl conf set --pool demo hedge_delay_ms 50\n"
        "  infergw-ctl route demo customer-42\n"
        "  infergw-ctl route demo --prompt-file prompt.txt --json\n"
        "  infergw-ctl replica register demo 10.0.0.8:7201 --ttl 10\n"
        "  infergw-ctl gc --grace 300\n"
        "  infergw-ctl dump --out infergw-dump.json\n"
        "  infergw-ctl restore --dry-run infergw-dump.json\n"
        "  infergw-ctl tenant add acme --models demo,resnet --rps 50 --burst 100\n"
        "  infergw-ctl key create acme --expires-in 90d\n"
        "  infergw-ctl key revoke 3f2a9c1b77e0\n"
        "  infergw-ctl --redis sentinel://10.0.0.5:26379,10.0.0.6:26379/infergw ring show demo\n"
        "  INFERGW_REDIS=redis://:secret@10.0.0.7:6379/1 infergw-ctl --json replica list demo\n",
        CTL_DEFAULT_TIMEOUT_MS);
}
