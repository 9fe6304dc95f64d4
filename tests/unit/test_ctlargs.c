/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/ctl/ctlargs.c: infergw-ctl's command line —
 * defaults and the environment, flags anywhere, every command and its
 * operands, every refusal (exit code 2 with a reason), the operand checks,
 * and a --help that names every command, flag and exit code. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

#include "ctlargs.h"

static char err[1024];

/* Parses the NULL-terminated words after the program name. */
static int parse_env(struct ctl_args *a, const char *env, ...)
{
    char *argv[64];
    int argc = 1;
    va_list ap;

    argv[0] = "infergw-ctl";
    va_start(ap, env);
    for (char *w; (w = va_arg(ap, char *)) != NULL;)
        argv[argc++] = w;
    va_end(ap);
    argv[argc] = NULL;
    err[0] = '\0';
    return ctl_args_parse(a, argc, argv, env, err, sizeof(err));
}

#define parse(a, ...) parse_env(a, NULL, __VA_ARGS__, (char *)NULL)

static void refused(const char *needle, int rc)
{
    assert_int_equal(rc, CTL_EXIT_USAGE);
    if (!strstr(err, needle))
        fail_msg("error '%s' lacks '%s'", err, needle);
}

static void test_defaults_and_env(void **state)
{
    (void)state;
    struct ctl_args a;

    assert_int_equal(parse(&a, "pool", "list"), 0);
    assert_int_equal(a.cmd, CTL_POOL_LIST);
    assert_string_equal(a.redis_url, "redis://127.0.0.1:6379");
    assert_string_equal(a.prefix, "infergw:");
    assert_int_equal(a.timeout_ms, CTL_DEFAULT_TIMEOUT_MS);
    assert_int_equal(a.json, 0);
    assert_null(a.pool);

    assert_int_equal(parse_env(&a, "redis://10.0.0.1:6379/2", "version", (char *)NULL), 0);
    assert_string_equal(a.redis_url, "redis://10.0.0.1:6379/2");
    assert_int_equal(a.cmd, CTL_VERSION);
    /* An empty variable counts as unset; --redis beats the environment. */
    assert_int_equal(parse_env(&a, "", "version", (char *)NULL), 0);
    assert_string_equal(a.redis_url, "redis://127.0.0.1:6379");
    assert_int_equal(
        parse_env(&a, "redis://env:1", "--redis", "redis://flag:2", "version", (char *)NULL), 0);
    assert_string_equal(a.redis_url, "redis://flag:2");
}

static void test_flags_anywhere(void **state)
{
    (void)state;
    struct ctl_args a;

    assert_int_equal(parse(&a, "pool", "list", "--json", "--redis=redis://h:1", "--redis-prefix",
                           "t1:", "--timeout-ms=500"),
                     0);
    assert_int_equal(a.cmd, CTL_POOL_LIST);
    assert_int_equal(a.json, 1);
    assert_string_equal(a.redis_url, "redis://h:1");
    assert_string_equal(a.prefix, "t1:");
    assert_int_equal(a.timeout_ms, 500);

    assert_int_equal(parse(&a, "--json", "replica", "--weight", "7", "add", "demo", "h:1"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_ADD);
    assert_int_equal(a.weight, 7);

    /* --help wins wherever it is, even after an unknown command. */
    assert_int_equal(parse(&a, "frob", "--help"), 0);
    assert_int_equal(a.cmd, CTL_HELP);
    assert_int_equal(parse(&a, "-h"), 0);
    assert_int_equal(a.cmd, CTL_HELP);
    assert_int_equal(parse(&a, "help"), 0);
    assert_int_equal(a.cmd, CTL_HELP);
}

static void test_commands(void **state)
{
    (void)state;
    struct ctl_args a;

    assert_int_equal(parse(&a, "pool", "add", "demo"), 0);
    assert_int_equal(a.cmd, CTL_POOL_ADD);
    assert_string_equal(a.pool, "demo");
    assert_int_equal(parse(&a, "pool", "remove", "demo"), 0);
    assert_int_equal(a.cmd, CTL_POOL_REMOVE);

    assert_int_equal(parse(&a, "replica", "add", "demo", "127.0.0.1:7201"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_ADD);
    assert_string_equal(a.pool, "demo");
    assert_string_equal(a.replica, "127.0.0.1:7201");
    assert_int_equal(a.weight, 100);
    assert_int_equal(parse(&a, "replica", "remove", "demo", "[::1]:7201"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_REMOVE);
    assert_string_equal(a.replica, "[::1]:7201");
    assert_int_equal(parse(&a, "replica", "weight", "demo", "h:1", "10000"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_WEIGHT);
    assert_int_equal(a.weight, 10000);
    assert_int_equal(parse(&a, "replica", "drain", "h:1"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_DRAIN);
    assert_null(a.pool);
    assert_int_equal(parse(&a, "replica", "undrain", "h:1"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_UNDRAIN);
    assert_int_equal(parse(&a, "replica", "list", "demo"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_LIST);

    assert_int_equal(parse(&a, "conf", "get"), 0);
    assert_int_equal(a.cmd, CTL_CONF_GET);
    assert_null(a.field);
    assert_null(a.pool);
    assert_int_equal(parse(&a, "conf", "get", "--pool", "demo", "retry_on"), 0);
    assert_string_equal(a.pool, "demo");
    assert_string_equal(a.field, "retry_on");
    assert_int_equal(parse(&a, "conf", "set", "hedge_delay_ms", "auto", "--pool=demo"), 0);
    assert_int_equal(a.cmd, CTL_CONF_SET);
    assert_string_equal(a.field, "hedge_delay_ms");
    assert_string_equal(a.value, "auto");
    assert_string_equal(a.pool, "demo");
    /* An empty value is fine where the tunable accepts it. */
    assert_int_equal(parse(&a, "conf", "set", "hedge_exclude", ""), 0);
    assert_string_equal(a.value, "");
    /* unset takes any field name, so junk written by hand can be removed. */
    assert_int_equal(parse(&a, "conf", "unset", "not_a_tunable"), 0);
    assert_int_equal(a.cmd, CTL_CONF_UNSET);
    assert_string_equal(a.field, "not_a_tunable");

    assert_int_equal(parse(&a, "ring", "show", "demo"), 0);
    assert_int_equal(a.cmd, CTL_RING_SHOW);
    assert_int_equal(parse(&a, "route", "demo", "customer 42"), 0);
    assert_int_equal(a.cmd, CTL_ROUTE);
    assert_string_equal(a.key, "customer 42");
    assert_int_equal(parse(&a, "route", "demo", "--prompt-file", "p.txt"), 0);
    assert_int_equal(a.cmd, CTL_ROUTE);
    assert_string_equal(a.prompt_file, "p.txt");
    assert_null(a.key);
    assert_int_equal(parse(&a, "route", "demo", "--", "-k"), 0);
    assert_string_equal(a.key, "-k");
    assert_int_equal(parse(&a, "--json", "route", "demo", "--", "--json"), 0);
    assert_string_equal(a.key, "--json");
    assert_int_equal(a.json, 1);
    assert_int_equal(parse(&a, "version"), 0);
    assert_int_equal(a.cmd, CTL_VERSION);

    assert_string_equal(ctl_args_cmd_name(CTL_REPLICA_WEIGHT), "replica weight");
    assert_string_equal(ctl_args_cmd_name(CTL_ROUTE), "route");
}

static void test_refusals(void **state)
{
    (void)state;
    struct ctl_args a;

    refused("no command", parse(&a, "--json"));
    refused("unknown command 'frob'", parse(&a, "frob"));
    refused("'pool' needs one of: add, remove, list", parse(&a, "pool"));
    refused("'replica' takes add, remove, weight, drain, undrain, list",
            parse(&a, "replica", "frob"));
    refused("missing operands", parse(&a, "pool", "add"));
    refused("usage: infergw-ctl replica weight <pool> <host:port> <weight>",
            parse(&a, "replica", "weight", "demo", "h:1"));
    refused("too many operands", parse(&a, "pool", "list", "x"));
    refused("too many operands", parse(&a, "conf", "get", "retry_on", "x"));
    refused("unknown flag '--frob'", parse(&a, "pool", "list", "--frob"));
    refused("unknown flag '-x'", parse(&a, "route", "demo", "-x"));
    refused("--pool needs a value", parse(&a, "conf", "get", "--pool"));
    refused("replica drain does not take --weight",
            parse(&a, "replica", "drain", "h:1", "--weight", "3"));
    refused("pool add does not take --pool", parse(&a, "pool", "add", "x", "--pool", "y"));
    refused("weight '0'", parse(&a, "replica", "add", "demo", "h:1", "--weight", "0"));
    refused("weight 'x'", parse(&a, "replica", "weight", "demo", "h:1", "x"));
    refused("pool name 'a b'", parse(&a, "pool", "add", "a b"));
    refused("pool name 'a,b'", parse(&a, "conf", "get", "--pool", "a,b"));
    refused("replica address 'h'", parse(&a, "replica", "drain", "h"));
    refused("--timeout-ms '9'", parse(&a, "version", "--timeout-ms", "9"));
    refused("--timeout-ms '60001'", parse(&a, "version", "--timeout-ms", "60001"));
    refused("--timeout-ms '1x'", parse(&a, "version", "--timeout-ms", "1x"));
    refused("--redis-prefix ''", parse(&a, "version", "--redis-prefix="));
    refused("empty route key", parse(&a, "route", "demo", ""));
    refused("route needs a routing key or --prompt-file", parse(&a, "route", "demo"));
    refused("not both", parse(&a, "route", "demo", "k", "--prompt-file", "p.txt"));
    refused("--prompt-file needs a file name", parse(&a, "route", "demo", "--prompt-file", ""));
    refused("ring show does not take --prompt-file",
            parse(&a, "ring", "show", "demo", "--prompt-file", "p.txt"));

    /* Tunables: unknown names list the known ones; bad values say what is
     * accepted and that nothing was written. */
    refused("unknown tunable 'hedge_delay'", parse(&a, "conf", "get", "hedge_delay"));
    refused("route_header", parse(&a, "conf", "set", "nope", "1"));
    refused("refused, nothing written: hedge_delay_ms 'banana'",
            parse(&a, "conf", "set", "hedge_delay_ms", "banana"));
    refused("expected off, auto, or 1..600000", parse(&a, "conf", "set", "hedge_delay_ms", "0"));
    refused("balance_factor '0.5'", parse(&a, "conf", "set", "balance_factor", "0.5"));
    refused("retry_on 'OK'", parse(&a, "conf", "set", "retry_on", "OK"));
    refused("field name 'a b'", parse(&a, "conf", "unset", "a b"));
}

static void test_check_pool(void **state)
{
    (void)state;
    char name[300];

    assert_int_equal(ctl_check_pool("demo", err, sizeof(err)), 0);
    assert_int_equal(ctl_check_pool("resnet-50_v2.onnx:1", err, sizeof(err)), 0);
    memset(name, 'p', 255);
    name[255] = '\0';
    assert_int_equal(ctl_check_pool(name, err, sizeof(err)), 0);
    name[255] = 'p';
    name[256] = '\0';
    assert_int_equal(ctl_check_pool(name, err, sizeof(err)), -1);
    const char *bad[] = {"", "a b", "a,b", "a\tb", "caf\xc3\xa9", "a\x7f"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        assert_int_equal(ctl_check_pool(bad[i], err, sizeof(err)), -1);
}

static void test_check_replica(void **state)
{
    (void)state;
    const char *good[] = {"127.0.0.1:7201", "[::1]:80", "replica-1.example.com:65535", "h:1",
                          "[fe80::1]:9000"};
    for (size_t i = 0; i < sizeof(good) / sizeof(good[0]); i++)
        if (ctl_check_replica(good[i], err, sizeof(err)) != 0)
            fail_msg("refused %s: %s", good[i], err);

    const char *bad[] = {"",       "h",       "h:",     "h:0",          "h:65536", "h:x",
                         "h#1:80", "h:80#0",  "a b:1",  "a,b:1",        "a/b:1",   "u@h:1",
                         ":80",    "[::1]80", "[::1]:", "caf\xc3\xa9:1"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++)
        if (ctl_check_replica(bad[i], err, sizeof(err)) != -1)
            fail_msg("accepted %s", bad[i]);

    /* One spelling per replica: the refusal says which. */
    assert_int_equal(ctl_check_replica("h:080", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "write it as h:80"));
    assert_int_equal(ctl_check_replica("::1:80", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "write it as [::1]:80"));
    assert_int_equal(ctl_check_replica("[h]:80", err, sizeof(err)), -1);
    assert_non_null(strstr(err, "write it as h:80"));
}

static void test_check_weight(void **state)
{
    (void)state;
    uint32_t w = 42;

    assert_int_equal(ctl_check_weight("1", &w, err, sizeof(err)), 0);
    assert_int_equal(w, 1);
    assert_int_equal(ctl_check_weight("10000", &w, err, sizeof(err)), 0);
    assert_int_equal(w, 10000);
    const char *bad[] = {"",   "0",   "10001", "99999999999999999999", "-1", "+5", " 5",
                         "5 ", "1e3", "0x10"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        w = 42;
        assert_int_equal(ctl_check_weight(bad[i], &w, err, sizeof(err)), -1);
        assert_int_equal(w, 42);
    }
}

static void test_usage_names_everything(void **state)
{
    (void)state;
    char *text = NULL;
    size_t len = 0;
    FILE *f = open_memstream(&text, &len);

    assert_non_null(f);
    ctl_args_usage(f);
    fclose(f);
    const char *needles[] = {"pool add <pool>",
                             "pool remove <pool>",
                             "pool list",
                             "replica add <pool> <host:port>",
                             "--weight N",
                             "replica remove",
                             "replica weight",
                             "replica drain",
                             "replica undrain",
                             "replica list",
                             "conf get",
                             "conf set",
                             "conf unset",
                             "ring show",
                             "route <pool> <key>",
                             "dump [--out FILE]",
                             "restore [--dry-run] <file|->",
                             "version",
                             "--redis URL",
                             "INFERGW_REDIS",
                             "redis://127.0.0.1:6379",
                             "sentinel://",
                             "--redis-prefix",
                             "[infergw:]",
                             "--timeout-ms",
                             "[2000]",
                             "--json",
                             "--help",
                             "--pool P",
                             "Exit codes: 0 ok; 1 Redis",
                             "2 usage",
                             "3 not found",
                             "Examples:",
                             "hedge_delay_ms",
                             "route_header",
                             "Drained",
                             "tenant add <tenant> --models",
                             "tenant remove <tenant> [--force]",
                             "tenant show [<tenant>]",
                             "key create <tenant>",
                             "--expires-in",
                             "--expires-at",
                             "key revoke <key-or-hash-prefix>",
                             "key list [--tenant T]",
                             "key hash",
                             "RAND_bytes",
                             "only its",
                             "never the keys",
                             "replica register <pool> <host:port> --ttl S",
                             "--drain-ms",
                             "gc [--grace S]",
                             "--grace S",
                             "status"};
    for (size_t i = 0; i < sizeof(needles) / sizeof(needles[0]); i++)
        if (!strstr(text, needles[i]))
            fail_msg("--help lacks '%s'", needles[i]);
    /* Fits an 80-column terminal. */
    for (char *line = text; *line;) {
        char *nl = strchr(line, '\n');
        size_t n = nl ? (size_t)(nl - line) : strlen(line);

        if (n > 90)
            fail_msg("--help line over 90 columns: %.*s", (int)n, line);
        line += n + (nl != NULL);
    }
    free(text);
}

static void test_tenant_commands(void **state)
{
    (void)state;
    struct ctl_args a;

    assert_int_equal(
        parse(&a, "tenant", "add", "acme", "--models", "a,b", "--rps=50", "--burst", "100"), 0);
    assert_int_equal(a.cmd, CTL_TENANT_ADD);
    assert_string_equal(a.tenant, "acme");
    assert_string_equal(a.models, "a,b");
    assert_string_equal(a.rps, "50");
    assert_string_equal(a.burst, "100");
    assert_int_equal(parse(&a, "tenant", "add", "--models", "*", "root"), 0);
    assert_string_equal(a.models, "*");
    assert_null(a.rps);
    assert_null(a.burst);
    assert_int_equal(parse(&a, "tenant", "add", "t", "--models", "m", "--rps", "0.5"), 0);

    assert_int_equal(parse(&a, "tenant", "remove", "acme"), 0);
    assert_int_equal(a.cmd, CTL_TENANT_REMOVE);
    assert_int_equal(a.force, 0);
    assert_int_equal(parse(&a, "tenant", "remove", "--force", "acme"), 0);
    assert_int_equal(a.force, 1);
    assert_int_equal(parse(&a, "tenant", "show"), 0);
    assert_int_equal(a.cmd, CTL_TENANT_SHOW);
    assert_null(a.tenant);
    assert_int_equal(parse(&a, "tenant", "show", "acme", "--json"), 0);
    assert_string_equal(a.tenant, "acme");

    refused("needs --models", parse(&a, "tenant", "add", "acme"));
    refused("--models ',a' refused", parse(&a, "tenant", "add", "acme", "--models", ",a"));
    refused("--models '' refused", parse(&a, "tenant", "add", "acme", "--models", ""));
    refused("--rps '-1' refused", parse(&a, "tenant", "add", "t", "--models", "*", "--rps", "-1"));
    refused("--rps 'x' refused", parse(&a, "tenant", "add", "t", "--models", "*", "--rps", "x"));
    refused("--burst '1.5' refused",
            parse(&a, "tenant", "add", "t", "--models", "*", "--burst", "1.5"));
    refused("tenant name 'a,b' refused", parse(&a, "tenant", "add", "a,b", "--models", "*"));
    refused("tenant remove does not take --models",
            parse(&a, "tenant", "remove", "t", "--models", "*"));
    refused("tenant add does not take --force",
            parse(&a, "tenant", "add", "t", "--models", "*", "--force"));
    refused("missing operands", parse(&a, "tenant", "remove"));
    refused("too many operands", parse(&a, "tenant", "show", "a", "b"));
    refused("'tenant' takes add, remove, show", parse(&a, "tenant", "delete", "x"));
}

static void test_key_commands(void **state)
{
    (void)state;
    struct ctl_args a;

    assert_int_equal(parse(&a, "key", "create", "acme"), 0);
    assert_int_equal(a.cmd, CTL_KEY_CREATE);
    assert_string_equal(a.tenant, "acme");
    assert_int_equal(a.expires_in_s, 0);
    assert_int_equal(a.expires_at, 0);
    assert_int_equal(parse(&a, "key", "create", "acme", "--expires-in", "90d"), 0);
    assert_int_equal(a.expires_in_s, 90 * 86400);
    assert_int_equal(parse(&a, "key", "create", "acme", "--expires-at=1900000000"), 0);
    assert_int_equal(a.expires_at, 1900000000);
    refused("not both",
            parse(&a, "key", "create", "acme", "--expires-in", "1h", "--expires-at", "1900000000"));
    refused("duration '1y' refused", parse(&a, "key", "create", "acme", "--expires-in", "1y"));
    refused("--expires-at 'soon' refused",
            parse(&a, "key", "create", "acme", "--expires-at", "soon"));

    /* revoke: 8..64 lowercase hex digits are a hash prefix, anything else a key. */
    assert_int_equal(parse(&a, "key", "revoke", "3f2a9c1b"), 0);
    assert_int_equal(a.cmd, CTL_KEY_REVOKE);
    assert_int_equal(a.revoke_is_hash, 1);
    assert_int_equal(parse(&a, "key", "revoke",
                           "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad"),
                     0);
    assert_int_equal(a.revoke_is_hash, 1);
    assert_int_equal(parse(&a, "key", "revoke", "igw_AbCdEf0123"), 0);
    assert_int_equal(a.revoke_is_hash, 0);
    assert_string_equal(a.revoke, "igw_AbCdEf0123");
    assert_int_equal(parse(&a, "key", "revoke", "3F2A9C1B"), 0); /* not lowercase: a key */
    assert_int_equal(a.revoke_is_hash, 0);
    refused("8 to 64 lowercase hex digits", parse(&a, "key", "revoke", "3f2a9c1"));
    refused("8 to 64 lowercase hex digits",
            parse(&a, "key", "revoke",
                  "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad0"));
    /* A key that starts with '-' goes after --. */
    assert_int_equal(parse(&a, "key", "revoke", "--", "-igw"), 0);
    assert_string_equal(a.revoke, "-igw");

    assert_int_equal(parse(&a, "key", "list"), 0);
    assert_int_equal(a.cmd, CTL_KEY_LIST);
    assert_null(a.tenant);
    assert_int_equal(parse(&a, "key", "list", "--tenant", "acme"), 0);
    assert_string_equal(a.tenant, "acme");
    refused("key create does not take --tenant",
            parse(&a, "key", "create", "acme", "--tenant", "b"));
    assert_int_equal(parse(&a, "key", "hash", "igw_x"), 0);
    assert_int_equal(a.cmd, CTL_KEY_HASH);
    assert_string_equal(a.key, "igw_x");
}

static void test_duration(void **state)
{
    (void)state;
    int64_t v = -1;

    assert_int_equal(ctl_parse_duration("3600", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 3600);
    assert_int_equal(ctl_parse_duration("30s", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 30);
    assert_int_equal(ctl_parse_duration("90m", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 5400);
    assert_int_equal(ctl_parse_duration("12h", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 43200);
    assert_int_equal(ctl_parse_duration("2w", &v, err, sizeof(err)), 0);
    assert_int_equal(v, 1209600);
    v = 7;
    const char *bad[] = {"",    "0",   "0d",  "d",     "1.5h",
                         "-1h", "1hh", "10y", "5300w", "99999999999999999999999"};
    for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
        if (ctl_parse_duration(bad[i], &v, err, sizeof(err)) != -1)
            fail_msg("duration '%s' accepted", bad[i]);
    }
    assert_int_equal(v, 7);
}

static void test_key_format(void **state)
{
    (void)state;
    uint8_t raw[32];
    char key[CTL_KEY_LEN + 1];

    memset(raw, 0, sizeof(raw));
    ctl_key_format(raw, key);
    assert_int_equal(strlen(key), CTL_KEY_LEN);
    assert_string_equal(key, "igw_AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA");
    memset(raw, 0xff, sizeof(raw));
    ctl_key_format(raw, key);
    /* 256 bits = 42 full sextets and 4 bits padded with zeros (111100 = '8'). */
    assert_string_equal(key, "igw___________________________________________8");
    /* The same text as Python's base64.urlsafe_b64encode without '='. */
    for (int i = 0; i < 32; i++)
        raw[i] = (uint8_t)(i * 37 + 11);
    ctl_key_format(raw, key);
    assert_string_equal(key, "igw_CzBVep_E6Q4zWH2ix-wRNluApcrvFDleg6jN8hc8YYY");
}

static void test_lease_commands(void **state)
{
    (void)state;
    struct ctl_args a;

    /* The command line deploy/ runs. */
    assert_int_equal(parse(&a, "replica", "register", "demo", "10.0.0.8:7201", "--ttl", "10"), 0);
    assert_int_equal(a.cmd, CTL_REPLICA_REGISTER);
    assert_string_equal(a.pool, "demo");
    assert_string_equal(a.replica, "10.0.0.8:7201");
    assert_int_equal(a.ttl_ms, 10000);
    assert_int_equal(a.drain_ms, CTL_DEFAULT_DRAIN_MS);
    assert_int_equal(a.weight, 100);
    assert_int_equal(parse(&a, "--ttl=2", "replica", "register", "demo", "h:1", "--weight", "7",
                           "--drain-ms", "0"),
                     0);
    assert_int_equal(a.ttl_ms, 2000);
    assert_int_equal(a.weight, 7);
    assert_int_equal(a.drain_ms, 0);
    refused("needs --ttl", parse(&a, "replica", "register", "demo", "h:1"));
    refused("--ttl '0' refused", parse(&a, "replica", "register", "demo", "h:1", "--ttl", "0"));
    refused("--ttl '86401' refused",
            parse(&a, "replica", "register", "demo", "h:1", "--ttl", "86401"));
    refused("--ttl '2s' refused", parse(&a, "replica", "register", "demo", "h:1", "--ttl", "2s"));
    refused("--ttl '' refused", parse(&a, "replica", "register", "demo", "h:1", "--ttl", ""));
    refused("--drain-ms '600001' refused",
            parse(&a, "replica", "register", "demo", "h:1", "--ttl", "2", "--drain-ms", "600001"));
    refused("missing operands", parse(&a, "replica", "register", "demo", "--ttl", "2"));
    refused("replica address", parse(&a, "replica", "register", "demo", "h:01", "--ttl", "2"));
    refused("does not take --ttl", parse(&a, "replica", "add", "demo", "h:1", "--ttl", "2"));
    refused("does not take --grace",
            parse(&a, "replica", "register", "demo", "h:1", "--ttl", "2", "--grace", "1"));

    assert_int_equal(parse(&a, "gc"), 0);
    assert_int_equal(a.cmd, CTL_GC);
    assert_int_equal(a.grace_s, CTL_DEFAULT_GC_GRACE);
    assert_int_equal(parse(&a, "gc", "--grace", "0"), 0);
    assert_int_equal(a.grace_s, 0);
    refused("--grace '-1' refused", parse(&a, "gc", "--grace=-1"));
    refused("too many operands", parse(&a, "gc", "now"));
    refused("does not take --ttl", parse(&a, "gc", "--ttl", "3"));

    assert_int_equal(parse(&a, "status", "--json"), 0);
    assert_int_equal(a.cmd, CTL_STATUS);
    assert_int_equal(a.json, 1);
    refused("too many operands", parse(&a, "status", "demo"));
}

static void test_dump_commands(void **state)
{
    (void)state;
    struct ctl_args a;

    assert_int_equal(parse(&a, "dump"), 0);
    assert_int_equal(a.cmd, CTL_DUMP);
    assert_null(a.out);
    assert_int_equal(parse(&a, "dump", "--out", "/tmp/d.json"), 0);
    assert_string_equal(a.out, "/tmp/d.json");
    assert_int_equal(parse(&a, "--out=d.json", "dump"), 0);
    assert_string_equal(a.out, "d.json");
    refused("--out needs a file name", parse(&a, "dump", "--out="));
    refused("too many operands", parse(&a, "dump", "d.json"));
    refused("does not take --dry-run", parse(&a, "dump", "--dry-run"));

    assert_int_equal(parse(&a, "restore", "d.json"), 0);
    assert_int_equal(a.cmd, CTL_RESTORE);
    assert_string_equal(a.file, "d.json");
    assert_int_equal(a.dry_run, 0);
    assert_int_equal(parse(&a, "restore", "--dry-run", "-"), 0);
    assert_string_equal(a.file, "-");
    assert_int_equal(a.dry_run, 1);
    refused("missing operands", parse(&a, "restore"));
    refused("empty file name", parse(&a, "restore", ""));
    refused("does not take --out", parse(&a, "restore", "d.json", "--out", "x"));
    refused("does not take --dry-run", parse(&a, "pool", "list", "--dry-run"));
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_defaults_and_env), cmocka_unit_test(test_flags_anywhere),
        cmocka_unit_test(test_commands),         cmocka_unit_test(test_refusals),
        cmocka_unit_test(test_check_pool),       cmocka_unit_test(test_check_replica),
        cmocka_unit_test(test_check_weight),     cmocka_unit_test(test_usage_names_everything),
        cmocka_unit_test(test_tenant_commands),  cmocka_unit_test(test_key_commands),
        cmocka_unit_test(test_duration),         cmocka_unit_test(test_key_format),
        cmocka_unit_test(test_lease_commands),   cmocka_unit_test(test_dump_commands),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
