/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_dump — infergw-ctl dump and restore: the whole control-plane state as
 * one JSON document (ctldoc.h, docs/backup.md) and back.
 *
 * dump reads the state key by key (the global conf, the pools set, each
 * pool's ring and conf, then the replica, tenant and API-key records by
 * SCAN) between two reads of <prefix>version, and reads again when a write
 * moved the version meanwhile, so the document is one version's state.
 * Leases, <prefix>leased, <prefix>lease_gone and the gateways' reports are
 * live state and are left out.
 *
 * restore checks the whole document first (ctldoc.c: the gateways' rules;
 * any problem: exit 2, each message names its JSON path, nothing written),
 * reads the current state the same way, then either prints the difference
 * (--dry-run) or runs lua/restore.lua once: given the version read with the
 * state, it refuses when a write came in between (read again, up to three
 * times), else bumps the version (to at least the dump's config_version +
 * 1, so gateways that served the dumped state see a new version even after
 * Redis lost everything), deletes the keys of the current state and writes
 * those of the document, all in one atomic script. The new version is then
 * published like every other write.
 */
#include <errno.h>
#include <jansson.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "ctl.h"

#include "base/mem.h"
#include "ctldoc.h"
#include "ctlview.h"

#define READ_TRIES 5

/* The fields of HGETALL reply <h> as a JSON object of strings (a value that
 * is not UTF-8 is reported in <probs> and left out). */
static json_t *hash_object(const redisReply *h, const char *key, struct ctl_problems *probs)
{
    json_t *o = json_object();

    for (size_t i = 0; o && h && h->type == REDIS_REPLY_ARRAY && i + 1 < h->elements; i += 2) {
        const redisReply *f = h->element[i], *v = h->element[i + 1];
        json_t *s =
            f->str && v->str && strlen(f->str) == f->len ? json_stringn(v->str, v->len) : NULL;
        if (!s || json_object_set_new(o, f->str, s) < 0)
            ctl_problems_add(
                probs, "%s: a field that is not text (not UTF-8, or with a NUL byte) is left out",
                key);
    }
    return o;
}

/* Checks reply <r> of a read of <key>: 0 and *out = <r>; 1 when the key is
 * of another type than <type> (reported in <probs>: it is read as empty, so
 * that a dump, and a restore over it, still work); -1 on other errors
 * (reported). */
static int read_key(struct ctl *x, redisReply *r, const char *key, const char *type,
                    struct ctl_problems *probs, redisReply **out)
{
    *out = NULL;
    if (r && r->type == REDIS_REPLY_ERROR && !strncmp(r->str, "WRONGTYPE", 9)) {
        ctl_problems_add(probs, "%s is not a %s; left out", key, type);
        freeReplyObject(r);
        return 1;
    }
    return (*out = ctl_checked(x, r)) ? 0 : -1;
}

/* Reads hash <key> into *out. Returns 0 or -1 (reported). */
static int read_hash(struct ctl *x, const char *key, json_t **out, struct ctl_problems *probs)
{
    redisReply *r;
    int rc = read_key(x, redisCommand(x->c, "HGETALL %s", key), key, "hash", probs, &r);

    if (rc != 0) {
        *out = rc > 0 ? json_object() : NULL;
        return rc > 0 ? 0 : -1;
    }
    *out = hash_object(r, key, probs);
    freeReplyObject(r);
    return *out ? 0 : -1;
}

/* One pool's ring read back as [{"replica", "weight"}]. */
static int read_ring(struct ctl *x, const char *pool, json_t **out, struct ctl_problems *probs)
{
    char key[KEYLEN];
    struct ctl_ring_view v = {0};
    redisReply *r;

    gw_key_pool_ring(key, sizeof(key), x->a->prefix, pool);
    int wrong = read_key(x, redisCommand(x->c, "ZRANGE %s 0 -1 WITHSCORES", key), key, "sorted set",
                         probs, &r);
    if (wrong)
        return (*out = wrong > 0 ? json_array() : NULL) ? 0 : -1;
    size_t n = r->type == REDIS_REPLY_ARRAY ? r->elements / 2 : 0;
    const char **m = gw_calloc(n + 1, sizeof(*m)), **s = gw_calloc(n + 1, sizeof(*s));
    int rc = m && s ? 0 : -1;
    for (size_t i = 0; rc == 0 && i < n; i++) {
        m[i] = r->element[2 * i]->str;
        s[i] = r->element[2 * i + 1]->str;
    }
    if (rc == 0 && ctl_view_ring_parse(&v, m, s, n, probs) < 0)
        rc = -1;
    *out = json_array();
    for (size_t i = 0; rc == 0 && i < v.n; i++)
        json_array_append_new(*out, json_pack("{s:s, s:I}", "replica", v.addrs[i], "weight",
                                              (json_int_t)v.weights[i]));
    if (rc == 0)
        ctl_view_ring_free(&v);
    gw_free(m);
    gw_free(s);
    freeReplyObject(r);
    if (rc < 0)
        ctl_say(CTL_EXIT_REDIS, "out of memory");
    return rc;
}

/* The records of <family> as {name: {field: value}}. */
static int read_records(struct ctl *x, enum gw_key_family family, json_t *out,
                        struct ctl_problems *probs)
{
    struct ctl_records recs;
    int rc = ctl_scan_records(x, family, "", &recs);

    if (rc != CTL_EXIT_OK)
        return -1;
    for (size_t i = 0; i < recs.n; i++) {
        const char *name = ctl_record_suffix(x, recs.names[i], family);
        if (!recs.hashes[i] || !name[0])
            continue; /* gone since the SCAN, not a hash, or no name */
        json_object_set_new(out, name, hash_object(recs.hashes[i], recs.names[i], probs));
    }
    ctl_records_free(&recs);
    return 0;
}

static int read_pools(struct ctl *x, json_t *pools, struct ctl_problems *probs)
{
    char key[KEYLEN];
    redisReply *r;

    gw_key_pools(key, sizeof(key), x->a->prefix);
    int wrong = read_key(x, redisCommand(x->c, "SMEMBERS %s", key), key, "set", probs, &r);
    if (wrong)
        return wrong > 0 ? 0 : -1;
    const char **names = gw_calloc(r->elements + 1, sizeof(*names));
    int rc = names ? 0 : -1;
    for (size_t i = 0; names && i < r->elements; i++)
        names[i] = r->element[i]->str ? r->element[i]->str : "";
    if (names)
        qsort(names, r->elements, sizeof(*names), ctl_cmp_str);
    for (size_t i = 0; rc == 0 && i < r->elements; i++) {
        json_t *ring = NULL, *conf = NULL;
        gw_key_pool_conf(key, sizeof(key), x->a->prefix, names[i]);
        rc = read_ring(x, names[i], &ring, probs);
        if (rc == 0)
            rc = read_hash(x, key, &conf, probs);
        if (rc == 0)
            json_object_set_new(pools, names[i],
                                json_pack("{s:o, s:o}", "ring", ring, "conf", conf));
        else
            json_decref(ring);
    }
    gw_free(names);
    freeReplyObject(r);
    return rc;
}

/* <prefix>version as text ("" when absent) into <ver>. */
static int read_version(struct ctl *x, char *ver, size_t cap)
{
    char key[KEYLEN];
    redisReply *r;

    gw_key_version(key, sizeof(key), x->a->prefix);
    if (!(r = ctl_command(x, "GET %s", key)))
        return -1;
    snprintf(ver, cap, "%s", r->type == REDIS_REPLY_STRING ? r->str : "");
    freeReplyObject(r);
    return 0;
}

/* One reading of the whole state (see the top of the file). */
static json_t *read_once(struct ctl *x, const char *ver, struct ctl_problems *probs)
{
    char key[KEYLEN], stamp[32];
    time_t now = time(NULL);
    struct tm tm;
    char *end;
    long long cv = strtoll(ver, &end, 10);

    if (*end || cv < 0) {
        ctl_problems_add(probs, "the version '%s' is not a number; config_version 0", ver);
        cv = 0;
    }
    gmtime_r(&now, &tm);
    strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%SZ", &tm);
    json_t *global = NULL, *pools = json_object(), *reps = json_object(), *tenants = json_object(),
           *keys = json_object();
    gw_key_conf(key, sizeof(key), x->a->prefix);
    if (read_hash(x, key, &global, probs) < 0 || read_pools(x, pools, probs) < 0 ||
        read_records(x, GW_KEY_REPLICA, reps, probs) < 0 ||
        read_records(x, GW_KEY_TENANT, tenants, probs) < 0 ||
        read_records(x, GW_KEY_APIKEY, keys, probs) < 0) {
        json_decref(global);
        json_decref(pools);
        json_decref(reps);
        json_decref(tenants);
        json_decref(keys);
        return NULL;
    }
    return json_pack("{s:s, s:i, s:s, s:I, s:o, s:o, s:o, s:o, s:o}", "format", CTL_DOC_FORMAT,
                     "version", CTL_DOC_VERSION, "taken_at", stamp, "config_version",
                     (json_int_t)cv, "global", global, "pools", pools, "replicas", reps, "tenants",
                     tenants, "apikeys", keys);
}

/* The state of one version: read until the version is the same before and
 * after. <ver> gets that version's text. NULL on failure (reported). */
static json_t *read_state(struct ctl *x, char *ver, size_t cap, struct ctl_problems *probs)
{
    char after[64];

    for (int i = 0; i < READ_TRIES; i++) {
        memset(probs, 0, sizeof(*probs));
        if (read_version(x, ver, cap) < 0)
            return NULL;
        json_t *doc = read_once(x, ver, probs);
        if (!doc || read_version(x, after, sizeof(after)) < 0) {
            json_decref(doc);
            return NULL;
        }
        if (!strcmp(ver, after))
            return doc;
        json_decref(doc);
    }
    ctl_say(CTL_EXIT_REDIS, "the state kept changing while it was read (%d tries)", READ_TRIES);
    return NULL;
}

/* Writes <doc> to <path> whole: a temporary file beside it, then rename. */
static int write_file(const char *path, const json_t *doc)
{
    char tmp[4200];
    FILE *f;

    if ((size_t)snprintf(tmp, sizeof(tmp), "%s.tmp.%ld", path, (long)getpid()) >= sizeof(tmp))
        return ctl_say(CTL_EXIT_USAGE, "--out: file name too long");
    if (!(f = fopen(tmp, "w")))
        return ctl_say(CTL_EXIT_REDIS, "cannot write %s: %s", tmp, strerror(errno));
    int bad = json_dumpf(doc, f, JSON_INDENT(2)) < 0 || fputc('\n', f) == EOF || fflush(f) != 0 ||
              fsync(fileno(f)) != 0;
    int err = errno;
    if (fclose(f) != 0 && !bad) {
        bad = 1;
        err = errno;
    }
    if (!bad && rename(tmp, path) != 0) {
        bad = 1;
        err = errno;
    }
    if (bad) {
        unlink(tmp);
        return ctl_say(CTL_EXIT_REDIS, "cannot write %s: %s", path, strerror(err));
    }
    return CTL_EXIT_OK;
}

int ctl_run_dump(struct ctl *x)
{
    char ver[64];
    struct ctl_problems probs, bad = {0};
    json_t *doc = read_state(x, ver, sizeof(ver), &probs);
    int rc;

    if (!doc)
        return CTL_EXIT_REDIS;
    ctl_problems_print(&probs, stderr);
    ctl_doc_check(doc, &bad);
    for (size_t i = 0; i < bad.n; i++)
        ctl_say(0, "warning: %s (restore refuses this document until it is fixed)", bad.msg[i]);
    if (x->a->out) {
        rc = write_file(x->a->out, doc);
    } else {
        rc = json_dumpf(doc, stdout, JSON_INDENT(2)) < 0 || putchar('\n') == EOF
                 ? ctl_say(CTL_EXIT_REDIS, "cannot write the dump to stdout")
                 : CTL_EXIT_OK;
    }
    if (rc == CTL_EXIT_OK && x->a->out)
        ctl_say(0, "dump of version %s written to %s (%zu pools, %zu tenants, %zu API keys)",
                ver[0] ? ver : "0", x->a->out, json_object_size(json_object_get(doc, "pools")),
                json_object_size(json_object_get(doc, "tenants")),
                json_object_size(json_object_get(doc, "apikeys")));
    json_decref(doc);
    return rc;
}

/* --- restore --------------------------------------------------------------------- */

/* Reads and checks the document of <file> ("-" = stdin). NULL when it is
 * not valid (reported, CTL_EXIT_USAGE) or cannot be read. */
static json_t *load_doc(const char *file, int *rc)
{
    json_error_t e;
    json_t *doc = !strcmp(file, "-") ? json_loadf(stdin, JSON_REJECT_DUPLICATES, &e)
                                     : json_load_file(file, JSON_REJECT_DUPLICATES, &e);
    struct ctl_problems probs = {0};

    *rc = CTL_EXIT_USAGE;
    if (!doc) {
        ctl_say(0, "%s: line %d column %d: %s", !strcmp(file, "-") ? "stdin" : file, e.line,
                e.column, e.text);
        ctl_say(0, "restore refused: not a JSON document; nothing written");
        return NULL;
    }
    if (ctl_doc_check(doc, &probs) == 0)
        return doc;
    for (size_t i = 0; i < probs.n; i++)
        ctl_say(0, "%s", probs.msg[i]);
    if (probs.total > probs.n)
        ctl_say(0, "... and %zu more", probs.total - probs.n);
    ctl_say(0, "restore refused: %zu invalid value%s in %s; nothing written", probs.total,
            probs.total == 1 ? "" : "s", !strcmp(file, "-") ? "stdin" : file);
    json_decref(doc);
    return NULL;
}

/* Pushes the ARGV plan of one key to write (lua/restore.lua). */
static void push_plan(struct ctl_eval *e, const json_t *k)
{
    const char *type = json_string_value(json_object_get(k, "type")), *f;
    json_t *fields = json_object_get(k, "fields"), *v;
    unsigned long long n = 0;
    char num[32];

    json_object_foreach(fields, f, v) n += !strcmp(type, "ring")
                                               ? 2 * strtoull(json_string_value(v), NULL, 10)
                                           : !strcmp(type, "set") ? 1
                                                                  : 2;
    ctl_ea_str(e, !strcmp(type, "ring") ? "zset" : type);
    snprintf(num, sizeof(num), "%llu", n);
    ctl_ea_str(e, num);
    json_object_foreach(fields, f, v)
    {
        if (!strcmp(type, "ring")) {
            ctl_ea_ring_members(e, f, (uint32_t)strtoul(json_string_value(v), NULL, 10));
        } else {
            ctl_ea_str(e, f);
            if (strcmp(type, "set") != 0)
                ctl_ea_str(e, json_string_value(v));
        }
    }
}

/* Runs lua/restore.lua: the keys of <from> are deleted, those of <to>
 * written. Returns its reply (NULL: reported). */
static redisReply *apply(struct ctl *x, const char *ver, long long floor, const json_t *from,
                         const json_t *to)
{
    char key[KEYLEN], num[32];
    struct ctl_eval e;
    const char *k;
    json_t *v;

    gw_key_version(key, sizeof(key), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_restore, (int)(1 + json_object_size(from) + json_object_size(to)));
    ctl_ea_str(&e, key);
    json_object_foreach((json_t *)from, k, v) ctl_ea_str(&e, k);
    json_object_foreach((json_t *)to, k, v) ctl_ea_str(&e, k);
    ctl_ea_str(&e, ver);
    snprintf(num, sizeof(num), "%lld", floor);
    ctl_ea_str(&e, num);
    snprintf(num, sizeof(num), "%zu", json_object_size(from));
    ctl_ea_str(&e, num);
    json_object_foreach((json_t *)to, k, v) push_plan(&e, v);
    return ctl_ea_run(x, &e);
}

/* One attempt: read the state, then show or apply the difference. Returns
 * a CTL_EXIT_* code, or -1 when the version moved (try again). */
static int restore_once(struct ctl *x, const json_t *doc, const json_t *to)
{
    char ver[64];
    struct ctl_problems probs;
    json_t *cur = read_state(x, ver, sizeof(ver), &probs);
    json_t *from = cur ? ctl_doc_keys(cur, x->a->prefix) : NULL;
    json_t *diff = from ? ctl_doc_diff(from, to) : NULL;
    int rc = CTL_EXIT_OK;

    json_decref(cur);
    if (!diff) {
        json_decref(from);
        return cur ? ctl_say(CTL_EXIT_REDIS, "out of memory") : CTL_EXIT_REDIS;
    }
    if (x->a->dry_run) {
        if (x->a->json) {
            json_object_set_new(diff, "dry_run", json_true());
            ctl_view_print_json(stdout, json_incref(diff));
        } else {
            ctl_doc_print_diff(stdout, diff);
            printf("dry run: nothing written (Redis at version %s)\n", ver[0] ? ver : "0");
        }
        goto out;
    }
    long long floor = json_integer_value(json_object_get(doc, "config_version"));
    redisReply *r = apply(x, ver, floor, from, to);
    if (!r) {
        rc = CTL_EXIT_REDIS;
    } else if (ctl_reply_is(r, "changed")) {
        rc = -1;
    } else {
        json_int_t a = json_integer_value(json_object_get(diff, "added")),
                   d = json_integer_value(json_object_get(diff, "removed")),
                   c = json_integer_value(json_object_get(diff, "changed"));
        rc = ctl_report(x, ctl_reply_int(r, 1),
                        json_pack("{s:s, s:I, s:I, s:I, s:I}", "file", x->a->file, "keys",
                                  (json_int_t)json_object_size(to), "keys_added", a, "keys_removed",
                                  d, "keys_changed", c),
                        "restored %zu keys from %s (%lld added, %lld removed, %lld changed)",
                        json_object_size(to), x->a->file, (long long)a, (long long)d, (long long)c);
    }
    if (r)
        freeReplyObject(r);
out:
    json_decref(diff);
    json_decref(from);
    return rc;
}

int ctl_run_restore(struct ctl *x)
{
    int rc;
    json_t *doc = load_doc(x->a->file, &rc), *to;

    if (!doc)
        return rc;
    if (!(to = ctl_doc_keys(doc, x->a->prefix))) {
        json_decref(doc);
        return ctl_say(CTL_EXIT_USAGE, "restore refused: a key does not fit (prefix too long?)");
    }
    for (int i = 0; i < 3; i++)
        if ((rc = restore_once(x, doc, to)) >= 0)
            break;
    if (rc < 0)
        rc = ctl_say(CTL_EXIT_REDIS,
                     "Redis changed while restoring (3 times); nothing written, run it again");
    json_decref(to);
    json_decref(doc);
    return rc;
}
