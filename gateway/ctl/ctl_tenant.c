/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_tenant — infergw-ctl tenant add/remove/show and key
 * create/revoke/list/hash (tenant and API-key records; keys are stored only
 * as their SHA-256). */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <openssl/crypto.h>
#include <openssl/rand.h>
#include <time.h>

#include "ctl.h"

#include "auth/authdb.h"
#include "base/mem.h"
#include "ctlview.h"

/* The SHA-256 hex of API key <key>: the name of its record. */
static void key_hex(const char *key, char hex[GW_AUTHDB_HASH_HEX + 1])
{
    uint8_t h[32];

    gw_apikey_hash(key, strlen(key), h);
    gw_apikey_hash_to_hex(h, hex);
}

int ctl_run_tenant_add(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char key[KEYLEN], ver[KEYLEN];
    struct ctl_eval e;
    redisReply *r;
    int rc;

    gw_key_tenant(key, sizeof(key), x->a->prefix, a->tenant);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_tenant_add, 2);
    ctl_ea_str(&e, key);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, a->models);
    ctl_ea_str(&e, a->rps ? a->rps : "");
    ctl_ea_str(&e, a->burst ? a->burst : "");
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    const char *rps = r->elements > 3 && r->element[3]->str ? r->element[3]->str : "0";
    const char *burst = r->elements > 4 && r->element[4]->str ? r->element[4]->str : "0";
    json_t *j = json_pack("{s:s, s:s, s:s, s:s}", "tenant", a->tenant, "models", a->models, "rps",
                          rps, "burst", burst);
    if (ctl_reply_is(r, "same"))
        rc = ctl_report(x, -1, j, "tenant %s already has models=%s rps=%s burst=%s", a->tenant,
                        a->models, rps, burst);
    else
        rc =
            ctl_report(x, ctl_reply_int(r, 1), j, "tenant %s %s: models=%s rps=%s burst=%s",
                       a->tenant, ctl_reply_int(r, 2) ? "added" : "updated", a->models, rps, burst);
    freeReplyObject(r);
    return rc;
}

/* The API-key records (key names) that name <tenant>. */
static int keys_of_tenant(struct ctl *x, const char *tenant, struct ctl_records *keys,
                          const char ***names, size_t *n)
{
    int rc = ctl_scan_records(x, GW_KEY_APIKEY, "", keys);
    if (rc != CTL_EXIT_OK)
        return rc;
    *names = gw_calloc(keys->n + 1, sizeof(char *));
    if (!*names) {
        ctl_records_free(keys);
        return ctl_say(CTL_EXIT_REDIS, "out of memory");
    }
    *n = 0;
    for (size_t i = 0; i < keys->n; i++) {
        const char *t = ctl_field_of(keys->hashes[i], "tenant");
        if (t && !strcmp(t, tenant))
            (*names)[(*n)++] = keys->names[i];
    }
    return CTL_EXIT_OK;
}

int ctl_run_tenant_remove(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char key[KEYLEN], ver[KEYLEN];
    struct ctl_records keys;
    const char **mine;
    size_t nmine = 0;
    struct ctl_eval e;
    redisReply *r;
    int rc = keys_of_tenant(x, a->tenant, &keys, &mine, &nmine);

    if (rc != CTL_EXIT_OK)
        return rc;
    if (nmine && !a->force) {
        rc = ctl_say(CTL_EXIT_REDIS,
                     "tenant %s still has %zu API key%s; revoke them first (infergw-ctl key list "
                     "--tenant %s) or remove the tenant with --force, which revokes them too",
                     a->tenant, nmine, nmine == 1 ? "" : "s", a->tenant);
        goto out;
    }
    gw_key_tenant(key, sizeof(key), x->a->prefix, a->tenant);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_tenant_remove, (int)(2 + nmine));
    ctl_ea_str(&e, key);
    ctl_ea_str(&e, ver);
    for (size_t i = 0; i < nmine; i++)
        ctl_ea_str(&e, mine[i]);
    ctl_ea_str(&e, a->tenant);
    if (!(r = ctl_ea_run(x, &e))) {
        rc = CTL_EXIT_REDIS;
        goto out;
    }
    if (ctl_reply_is(r, "notenant")) {
        rc = ctl_say(CTL_EXIT_NOTFOUND, "tenant %s does not exist", a->tenant);
    } else {
        long long revoked = ctl_reply_int(r, 2);
        rc = ctl_report(
            x, ctl_reply_int(r, 1),
            json_pack("{s:s, s:I}", "tenant", a->tenant, "keys_revoked", (json_int_t)revoked),
            "tenant %s removed (%lld API key%s revoked)", a->tenant, revoked,
            revoked == 1 ? "" : "s");
    }
    freeReplyObject(r);
out:
    gw_free(mine);
    ctl_records_free(&keys);
    return rc;
}

int ctl_run_tenant_show(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    struct ctl_records tenants, keys;
    struct ctl_tenant_row *rows = NULL;
    struct ctl_problems probs = {0};
    size_t n = 0;
    int rc;

    if (a->tenant) {
        /* Exactly one record: read it, no SCAN. */
        char key[KEYLEN];
        redisReply *h;

        gw_key_tenant(key, sizeof(key), x->a->prefix, a->tenant);
        memset(&tenants, 0, sizeof(tenants));
        if (!(h = ctl_command(x, "HGETALL %s", key)))
            return CTL_EXIT_REDIS;
        tenants.hashes = gw_calloc(2, sizeof(*tenants.hashes));
        if (!tenants.hashes || ctl_records_push(&tenants, key, strlen(key)) < 0) {
            freeReplyObject(h);
            ctl_records_free(&tenants);
            return ctl_say(CTL_EXIT_REDIS, "out of memory");
        }
        if (h->type == REDIS_REPLY_ARRAY && h->elements > 0)
            tenants.hashes[0] = h;
        else
            freeReplyObject(h);
        rc = CTL_EXIT_OK;
    } else {
        rc = ctl_scan_records(x, GW_KEY_TENANT, "", &tenants);
    }
    if (rc != CTL_EXIT_OK)
        return rc;
    if ((rc = ctl_scan_records(x, GW_KEY_APIKEY, "", &keys)) != CTL_EXIT_OK) {
        ctl_records_free(&tenants);
        return rc;
    }
    rows = gw_calloc(tenants.n + 1, sizeof(*rows));
    if (!rows) {
        rc = ctl_say(CTL_EXIT_REDIS, "out of memory");
        goto out;
    }
    for (size_t i = 0; i < tenants.n; i++) {
        const redisReply *h = tenants.hashes[i];
        if (!h)
            continue;
        struct ctl_tenant_row *t = &rows[n++];
        t->name = ctl_record_suffix(x, tenants.names[i], GW_KEY_TENANT);
        t->models = ctl_field_of(h, "models");
        t->rps = ctl_field_of(h, "rps");
        t->burst = ctl_field_of(h, "burst");
        for (size_t k = 0; k < keys.n; k++) {
            const char *kt = ctl_field_of(keys.hashes[k], "tenant");
            t->nkeys += kt && !strcmp(kt, t->name);
        }
        ctl_view_tenant_check(t, tenants.names[i], &probs);
    }
    if (a->tenant && n == 0) {
        rc =
            ctl_say(CTL_EXIT_NOTFOUND,
                    "tenant %s does not exist; add it with: infergw-ctl tenant add %s --models ...",
                    a->tenant, a->tenant);
        goto out;
    }
    ctl_problems_print(&probs, stderr);
    ctl_view_print_tenants(stdout, a->json, rows, n);
    rc = CTL_EXIT_OK;
out:
    gw_free(rows);
    ctl_records_free(&tenants);
    ctl_records_free(&keys);
    return rc;
}

int ctl_run_key_create(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    uint8_t raw[32];
    char text[CTL_KEY_LEN + 1], hex[GW_AUTHDB_HASH_HEX + 1], tkey[KEYLEN], kkey[KEYLEN],
        ver[KEYLEN], exp[32] = "";
    int64_t now = (int64_t)time(NULL), expires_at = a->expires_at;
    struct ctl_eval e;
    redisReply *r;
    int rc;

    if (a->expires_in_s)
        expires_at = now + a->expires_in_s;
    if (expires_at && expires_at <= now)
        return ctl_say(CTL_EXIT_USAGE, "--expires-at %lld is not in the future; nothing written",
                       (long long)expires_at);
    if (expires_at)
        snprintf(exp, sizeof(exp), "%lld", (long long)expires_at);
    if (RAND_bytes(raw, sizeof(raw)) != 1)
        return ctl_say(CTL_EXIT_REDIS, "cannot get random bytes from OpenSSL; nothing written");
    ctl_key_format(raw, text);
    OPENSSL_cleanse(raw, sizeof(raw));
    key_hex(text, hex);
    gw_key_tenant(tkey, sizeof(tkey), x->a->prefix, a->tenant);
    gw_key_apikey(kkey, sizeof(kkey), x->a->prefix, hex);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_key_create, 3);
    ctl_ea_str(&e, tkey);
    ctl_ea_str(&e, kkey);
    ctl_ea_str(&e, ver);
    ctl_ea_str(&e, a->tenant);
    ctl_ea_str(&e, exp);
    if (!(r = ctl_ea_run(x, &e))) {
        OPENSSL_cleanse(text, sizeof(text));
        return CTL_EXIT_REDIS;
    }
    if (ctl_reply_is(r, "notenant")) {
        rc = ctl_say(CTL_EXIT_NOTFOUND,
                     "tenant %s does not exist; add it first with: infergw-ctl tenant add %s "
                     "--models ...",
                     a->tenant, a->tenant);
    } else if (ctl_reply_is(r, "exists")) {
        rc = ctl_say(CTL_EXIT_REDIS, "a record with this key's hash exists already; try again");
    } else {
        long long v = ctl_reply_int(r, 1);
        ctl_publish(x, v);
        if (a->json) {
            json_t *o = json_pack("{s:s, s:s, s:s, s:b, s:I}", "key", text, "tenant", a->tenant,
                                  "hash", hex, "changed", 1, "version", (json_int_t)v);
            json_object_set_new(o, "expires_at",
                                expires_at ? json_integer(expires_at) : json_null());
            ctl_view_print_json(stdout, o);
        } else {
            printf("%s\n", text);
            ctl_say(0,
                    "API key for tenant %s created (hash %.*s..., expires %s%s, version %lld); it "
                    "is shown only this once",
                    a->tenant, CTL_HASH_PREFIX, hex, expires_at ? "at unix " : "never",
                    expires_at ? exp : "", v);
        }
        rc = CTL_EXIT_OK;
    }
    OPENSSL_cleanse(text, sizeof(text));
    freeReplyObject(r);
    return rc;
}

int ctl_run_key_revoke(struct ctl *x)
{
    const struct ctl_args *a = x->a;
    char hex[GW_AUTHDB_HASH_HEX + 1], kkey[KEYLEN], ver[KEYLEN];
    struct ctl_eval e;
    redisReply *r;
    int rc;

    if (!a->revoke_is_hash) {
        key_hex(a->revoke, hex);
    } else if (strlen(a->revoke) == GW_AUTHDB_HASH_HEX) {
        snprintf(hex, sizeof(hex), "%s", a->revoke);
    } else {
        struct ctl_records found;
        if ((rc = ctl_scan_records(x, GW_KEY_APIKEY, a->revoke, &found)) != CTL_EXIT_OK)
            return rc;
        size_t n = 0, pick = 0;
        for (size_t i = 0; i < found.n; i++)
            if (found.hashes[i] &&
                strlen(ctl_record_suffix(x, found.names[i], GW_KEY_APIKEY)) == GW_AUTHDB_HASH_HEX) {
                n++;
                pick = i;
            }
        if (n == 1)
            snprintf(hex, sizeof(hex), "%s",
                     ctl_record_suffix(x, found.names[pick], GW_KEY_APIKEY));
        if (n > 1) {
            fprintf(stderr, "infergw-ctl: %zu keys have a hash starting with %s:\n", n, a->revoke);
            for (size_t i = 0; i < found.n; i++)
                if (found.hashes[i])
                    fprintf(stderr, "  %.*s  tenant %s\n", 16,
                            ctl_record_suffix(x, found.names[i], GW_KEY_APIKEY),
                            ctl_field_of(found.hashes[i], "tenant")
                                ? ctl_field_of(found.hashes[i], "tenant")
                                : "(none)");
        }
        ctl_records_free(&found);
        if (n == 0)
            return ctl_say(CTL_EXIT_NOTFOUND, "no API key has a hash starting with %s", a->revoke);
        if (n > 1)
            return ctl_say(CTL_EXIT_USAGE, "give more hex digits: the prefix is ambiguous");
    }
    gw_key_apikey(kkey, sizeof(kkey), x->a->prefix, hex);
    gw_key_version(ver, sizeof(ver), x->a->prefix);
    ctl_ea_eval(&e, ctl_lua_key_revoke, 2);
    ctl_ea_str(&e, kkey);
    ctl_ea_str(&e, ver);
    if (!(r = ctl_ea_run(x, &e)))
        return CTL_EXIT_REDIS;
    if (ctl_reply_is(r, "nokey")) {
        rc = ctl_say(CTL_EXIT_NOTFOUND, "no such API key (hash %.*s...)", CTL_HASH_PREFIX, hex);
    } else {
        const char *t = r->elements > 2 && r->element[2]->str ? r->element[2]->str : "";
        char pfx[CTL_HASH_PREFIX + 1];
        memcpy(pfx, hex, CTL_HASH_PREFIX);
        pfx[CTL_HASH_PREFIX] = '\0';
        rc = ctl_report(x, ctl_reply_int(r, 1),
                        json_pack("{s:s, s:s}", "hash_prefix", pfx, "tenant", t),
                        "API key %s (tenant %s) revoked", pfx, t[0] ? t : "(none)");
    }
    freeReplyObject(r);
    return rc;
}

int ctl_run_key_list(struct ctl *x)
{
    struct ctl_records keys;
    struct ctl_key_row *rows;
    size_t n = 0;
    int rc = ctl_scan_records(x, GW_KEY_APIKEY, "", &keys);

    if (rc != CTL_EXIT_OK)
        return rc;
    rows = gw_calloc(keys.n + 1, sizeof(*rows));
    if (!rows) {
        ctl_records_free(&keys);
        return ctl_say(CTL_EXIT_REDIS, "out of memory");
    }
    for (size_t i = 0; i < keys.n; i++) {
        const char *hash = ctl_record_suffix(x, keys.names[i], GW_KEY_APIKEY);
        uint8_t h[32];
        if (!keys.hashes[i])
            continue;
        if (gw_apikey_hash_from_hex(hash, strlen(hash), h) < 0) {
            char family[KEYLEN];
            gw_key_apikey(family, sizeof(family), x->a->prefix, "");
            ctl_say(0,
                    "warning: %s<%zu bytes, not shown> is not named by a SHA-256 hex; the "
                    "gateways refuse it",
                    family, strlen(hash));
            continue;
        }
        struct ctl_key_row *k = &rows[n];
        k->hash = hash;
        k->tenant = ctl_field_of(keys.hashes[i], "tenant");
        k->expires_at = ctl_field_of(keys.hashes[i], "expires_at");
        if (x->a->tenant && (!k->tenant || strcmp(k->tenant, x->a->tenant) != 0))
            continue;
        n++;
    }
    ctl_view_sort_keys(rows, n);
    ctl_view_print_keys(stdout, x->a->json, rows, n, (int64_t)time(NULL));
    gw_free(rows);
    ctl_records_free(&keys);
    return CTL_EXIT_OK;
}

/* key hash: no Redis. */
int ctl_run_key_hash(const struct ctl_args *a)
{
    char hex[GW_AUTHDB_HASH_HEX + 1];

    key_hex(a->key, hex);
    if (a->json)
        ctl_view_print_json(stdout, json_pack("{s:s}", "hash", hex));
    else
        printf("%s\n", hex);
    return CTL_EXIT_OK;
}
