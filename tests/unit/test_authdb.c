/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/auth/authdb.c: a db built from records, tenant and
 * API-key lookups (many records, near-miss hashes), the models list and
 * '*', field validation with the failing field named, copies of last good
 * records, the --tenants/--api-keys file format with file:line messages,
 * and every allocation failing in turn. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>

#include "auth/authdb.h"
#include "base/mem.h"

static struct gw_authdb *sample(void)
{
    struct gw_authdb *db = gw_authdb_new();
    assert_non_null(db);
    const char *bad = NULL;
    char err[200];
    assert_int_equal(
        gw_authdb_add_tenant(db, "acme", "resnet, bert ,gpt", "50", "100", &bad, err, sizeof(err)),
        0);
    assert_int_equal(gw_authdb_add_tenant(db, "root", "*", NULL, NULL, &bad, err, sizeof(err)), 0);
    return db;
}

static void key_of(const char *text, uint8_t h[32])
{
    gw_apikey_hash(text, strlen(text), h);
}

static void test_tenants_and_models(void **state)
{
    (void)state;
    long before = gw_mem_live();
    struct gw_authdb *db = sample();
    assert_int_equal(gw_authdb_ntenants(db), 2);
    const struct gw_tenant *t = gw_authdb_tenant(db, "acme");
    assert_non_null(t);
    assert_string_equal(t->name, "acme");
    assert_int_equal(t->nmodels, 3);
    assert_string_equal(t->models[0], "resnet");
    assert_string_equal(t->models[1], "bert");
    assert_string_equal(t->models[2], "gpt");
    assert_false(t->all_models);
    assert_true(t->rps == 50.0);
    assert_int_equal(t->burst, 100);
    assert_true(gw_tenant_allows_model(t, "bert", 4));
    assert_true(gw_tenant_allows_model(t, "resnetX", 6)); /* <len> bytes of it */
    assert_false(gw_tenant_allows_model(t, "ber", 3));
    assert_false(gw_tenant_allows_model(t, "berts", 5));
    assert_false(gw_tenant_allows_model(t, "default", 7));

    const struct gw_tenant *r = gw_authdb_tenant(db, "root");
    assert_true(r->all_models);
    assert_true(r->rps == 0);
    assert_int_equal(r->burst, 0);
    assert_true(gw_tenant_allows_model(r, "anything", 8));

    assert_null(gw_authdb_tenant(db, "acm"));
    assert_null(gw_authdb_tenant(db, "ACME"));
    assert_null(gw_authdb_tenant(NULL, "acme"));
    assert_ptr_equal(gw_authdb_tenant_at(db, 1), r);
    gw_authdb_free(db);
    assert_int_equal(gw_mem_live(), before);
}

static void test_apikeys(void **state)
{
    (void)state;
    struct gw_authdb *db = sample();
    uint8_t k1[32], k2[32], other[32];
    key_of("igw_first", k1);
    key_of("igw_second", k2);
    key_of("igw_unknown", other);
    assert_int_equal(gw_authdb_add_apikey(db, k1, "acme", 0), 0);
    assert_int_equal(gw_authdb_add_apikey(db, k2, "root", 1900000000), 0);
    assert_int_equal(gw_authdb_add_apikey(db, k1, "root", 0), GW_AUTHDB_EEXIST);
    assert_int_equal(gw_authdb_add_apikey(db, other, "nobody", 0), GW_AUTHDB_ENOENT);
    assert_int_equal(gw_authdb_napikeys(db), 2);

    int64_t exp = -1;
    assert_string_equal(gw_authdb_apikey(db, k1, &exp), "acme");
    assert_int_equal(exp, 0);
    assert_string_equal(gw_authdb_apikey(db, k2, &exp), "root");
    assert_int_equal(exp, 1900000000);
    exp = 42;
    assert_null(gw_authdb_apikey(db, other, &exp));
    assert_int_equal(exp, 42); /* untouched on a miss */
    assert_null(gw_authdb_apikey(NULL, k1, &exp));

    /* A hash that differs only in its last byte, or only in its first (so it
     * lands in another slot), is not a match. */
    uint8_t near[32];
    memcpy(near, k1, 32);
    near[31] ^= 1;
    assert_null(gw_authdb_apikey(db, near, &exp));
    memcpy(near, k1, 32);
    near[0] ^= 0x80;
    assert_null(gw_authdb_apikey(db, near, &exp));
    gw_authdb_free(db);
}

/* Enough records to grow both indexes many times; every one is found. */
static void test_many_records(void **state)
{
    (void)state;
    long before = gw_mem_live();
    struct gw_authdb *db = gw_authdb_new();
    char name[32], err[200];
    for (int i = 0; i < 3000; i++) {
        snprintf(name, sizeof(name), "t%d", i);
        assert_int_equal(gw_authdb_add_tenant(db, name, "m", "1", "1", NULL, err, sizeof(err)), 0);
    }
    for (int i = 0; i < 5000; i++) {
        uint8_t h[32];
        snprintf(name, sizeof(name), "key-%d", i);
        key_of(name, h);
        char tn[32];
        snprintf(tn, sizeof(tn), "t%d", i % 3000);
        assert_int_equal(gw_authdb_add_apikey(db, h, tn, i), 0);
    }
    for (int i = 0; i < 5000; i++) {
        uint8_t h[32];
        int64_t exp;
        snprintf(name, sizeof(name), "key-%d", i);
        key_of(name, h);
        char tn[32];
        snprintf(tn, sizeof(tn), "t%d", i % 3000);
        const char *got = gw_authdb_apikey(db, h, &exp);
        assert_non_null(got);
        assert_string_equal(got, tn);
        assert_int_equal(exp, i);
        /* The returned name is the tenant record's own. */
        assert_ptr_equal(got, gw_authdb_tenant(db, tn)->name);
    }
    gw_authdb_free(db);
    assert_int_equal(gw_mem_live(), before);
}

static void expect_bad(const char *name, const char *models, const char *rps, const char *burst,
                       const char *field)
{
    struct gw_authdb *db = gw_authdb_new();
    const char *bad = "unset";
    char err[200] = "";
    assert_int_equal(gw_authdb_add_tenant(db, name, models, rps, burst, &bad, err, sizeof(err)),
                     GW_AUTHDB_EINVAL);
    assert_non_null(bad);
    assert_string_equal(bad, field);
    assert_true(err[0] != '\0');
    assert_int_equal(gw_authdb_ntenants(db), 0);
    gw_authdb_free(db);
}

static void test_validation(void **state)
{
    (void)state;
    long before = gw_mem_live();
    expect_bad("", "*", NULL, NULL, "name");
    expect_bad("has space", "*", NULL, NULL, "name");
    expect_bad("a,b", "*", NULL, NULL, "name");
    char longname[GW_TENANT_NAME_MAX + 2];
    memset(longname, 'x', sizeof(longname) - 1);
    longname[sizeof(longname) - 1] = '\0';
    expect_bad(longname, "*", NULL, NULL, "name");
    expect_bad("t", NULL, NULL, NULL, "models");
    expect_bad("t", "", NULL, NULL, "models");
    expect_bad("t", "a,,b", NULL, NULL, "models");
    expect_bad("t", "a,", NULL, NULL, "models");
    expect_bad("t", "*,a", NULL, NULL, "models");
    expect_bad("t", "a,*", NULL, NULL, "models");
    expect_bad("t", "a b", NULL, NULL, "models");
    expect_bad("t", "*", "-1", NULL, "rps");
    expect_bad("t", "*", "abc", NULL, "rps");
    expect_bad("t", "*", "", NULL, "rps");
    expect_bad("t", "*", "1e3", NULL, "rps");
    expect_bad("t", "*", "inf", NULL, "rps");
    expect_bad("t", "*", "nan", NULL, "rps");
    expect_bad("t", "*", "0.0001", NULL, "rps");
    expect_bad("t", "*", "20000000", NULL, "rps");
    expect_bad("t", "*", "5", "-1", "burst");
    expect_bad("t", "*", "5", "1.5", "burst");
    expect_bad("t", "*", "5", "", "burst");
    expect_bad("t", "*", "5", "99999999999999999999", "burst");
    expect_bad("t", "*", "5", "10000001", "burst");

    /* Edges that are fine. */
    struct gw_authdb *db = gw_authdb_new();
    char err[200];
    memset(longname, 'x', GW_TENANT_NAME_MAX);
    longname[GW_TENANT_NAME_MAX] = '\0';
    assert_int_equal(gw_authdb_add_tenant(db, longname, " * ", "0", "0", NULL, err, sizeof(err)),
                     0);
    assert_int_equal(
        gw_authdb_add_tenant(db, "u@example.com", "a", "0.5", "10000000", NULL, err, sizeof(err)),
        0);
    assert_true(gw_authdb_tenant(db, "u@example.com")->rps == 0.5);
    assert_int_equal(
        gw_authdb_add_tenant(db, "u@example.com", "a", NULL, NULL, NULL, err, sizeof(err)),
        GW_AUTHDB_EEXIST);
    gw_authdb_free(db);

    uint8_t h[32];
    int64_t exp;
    assert_int_equal(gw_apikey_hash_from_hex("00", 2, h), -1);
    char hex[65];
    uint8_t k[32];
    key_of("abc", k);
    gw_apikey_hash_to_hex(k, hex);
    /* FIPS 180-2 test vector. */
    assert_string_equal(hex, "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    assert_int_equal(gw_apikey_hash_from_hex(hex, 64, h), 0);
    assert_memory_equal(h, k, 32);
    hex[3] = 'F'; /* uppercase is not the canonical form */
    assert_int_equal(gw_apikey_hash_from_hex(hex, 64, h), -1);
    hex[3] = 'g';
    assert_int_equal(gw_apikey_hash_from_hex(hex, 64, h), -1);
    assert_int_equal(gw_apikey_parse_expires("1900000000", &exp, err, sizeof(err)), 0);
    assert_int_equal(exp, 1900000000);
    assert_int_equal(gw_apikey_parse_expires("0", &exp, err, sizeof(err)), -1);
    assert_int_equal(gw_apikey_parse_expires("-5", &exp, err, sizeof(err)), -1);
    assert_int_equal(gw_apikey_parse_expires("12x", &exp, err, sizeof(err)), -1);
    assert_int_equal(gw_mem_live(), before);
}

/* The last good record of a tenant carried into a new db. */
static void test_copy_tenant(void **state)
{
    (void)state;
    long before = gw_mem_live();
    struct gw_authdb *old = sample(), *db = gw_authdb_new();
    assert_int_equal(gw_authdb_copy_tenant(db, gw_authdb_tenant(old, "acme")), 0);
    assert_int_equal(gw_authdb_copy_tenant(db, gw_authdb_tenant(old, "root")), 0);
    assert_int_equal(gw_authdb_copy_tenant(db, gw_authdb_tenant(old, "root")), GW_AUTHDB_EEXIST);
    gw_authdb_free(old);
    const struct gw_tenant *t = gw_authdb_tenant(db, "acme");
    assert_int_equal(t->nmodels, 3);
    assert_string_equal(t->models[2], "gpt");
    assert_int_equal(t->burst, 100);
    assert_true(gw_authdb_tenant(db, "root")->all_models);
    gw_authdb_free(db);
    assert_int_equal(gw_mem_live(), before);
}

static const char TENANTS[] = "# tenants\n"
                              "\n"
                              "acme   models=resnet,bert rps=50 burst=100\n"
                              "  root\tmodels=*\r\n"
                              "free models=a";
static const char KEYS_FMT[] = "# api keys\n"
                               "%s tenant=acme\n"
                               "%s tenant=root expires_at=1900000000\n";

static void test_load_text(void **state)
{
    (void)state;
    long before = gw_mem_live();
    struct gw_authdb *db = gw_authdb_new();
    char err[300];
    assert_int_equal(gw_authdb_load_text(db, GW_AUTHDB_TENANTS, TENANTS, strlen(TENANTS), "t.conf",
                                         err, sizeof(err)),
                     0);
    assert_int_equal(gw_authdb_ntenants(db), 3);
    assert_true(gw_authdb_tenant(db, "root")->all_models);
    assert_true(gw_authdb_tenant(db, "free")->rps == 0);
    uint8_t k1[32], k2[32];
    char h1[65], h2[65], keys[300];
    key_of("igw_one", k1);
    key_of("igw_two", k2);
    gw_apikey_hash_to_hex(k1, h1);
    gw_apikey_hash_to_hex(k2, h2);
    snprintf(keys, sizeof(keys), KEYS_FMT, h1, h2);
    assert_int_equal(
        gw_authdb_load_text(db, GW_AUTHDB_APIKEYS, keys, strlen(keys), "k.conf", err, sizeof(err)),
        0);
    int64_t exp;
    assert_string_equal(gw_authdb_apikey(db, k1, &exp), "acme");
    assert_string_equal(gw_authdb_apikey(db, k2, &exp), "root");
    assert_int_equal(exp, 1900000000);
    gw_authdb_free(db);
    assert_int_equal(gw_mem_live(), before);
}

/* <text> of <kind> fails with a message that starts with <where> and holds
 * <what>. */
static void expect_file_error(enum gw_authdb_file kind, const char *text, const char *where,
                              const char *what)
{
    struct gw_authdb *db = gw_authdb_new();
    char err[400] = "";
    assert_int_equal(gw_authdb_load_text(db, GW_AUTHDB_TENANTS, "acme models=*\n", 14, "t.conf",
                                         err, sizeof(err)),
                     0);
    assert_true(gw_authdb_load_text(db, kind, text, strlen(text), "f.conf", err, sizeof(err)) < 0);
    if (strncmp(err, where, strlen(where)) != 0 || !strstr(err, what))
        fail_msg("message '%s' lacks '%s' or '%s'", err, where, what);
    gw_authdb_free(db);
}

static void test_file_errors(void **state)
{
    (void)state;
    char hex[65], line[200];
    uint8_t h[32];
    key_of("igw_x", h);
    gw_apikey_hash_to_hex(h, hex);
    expect_file_error(GW_AUTHDB_TENANTS, "a models=*\nb model=x\n", "f.conf:2:", "model");
    expect_file_error(GW_AUTHDB_TENANTS, "\n\na models=x rps=fast\n", "f.conf:3:", "rps");
    expect_file_error(GW_AUTHDB_TENANTS, "a rps=5\n", "f.conf:1:", "models");
    expect_file_error(GW_AUTHDB_TENANTS, "acme models=*\n", "f.conf:1:", "already");
    expect_file_error(GW_AUTHDB_TENANTS, "a models=x models=y\n", "f.conf:1:", "twice");
    expect_file_error(GW_AUTHDB_TENANTS, "a models=x burst\n", "f.conf:1:", "burst");
    expect_file_error(GW_AUTHDB_APIKEYS, "# c\nnot-a-hash tenant=acme\n", "f.conf:2:", "SHA-256");
    /* A clear key pasted into the file is never echoed back. */
    struct gw_authdb *db = gw_authdb_new();
    char err[400];
    const char *pasted = "igw_SECRETSECRET tenant=acme\n";
    assert_true(gw_authdb_load_text(db, GW_AUTHDB_APIKEYS, pasted, strlen(pasted), "f", err,
                                    sizeof(err)) < 0);
    assert_null(strstr(err, "SECRET"));
    gw_authdb_free(db);
    snprintf(line, sizeof(line), "%s\n", hex);
    expect_file_error(GW_AUTHDB_APIKEYS, line, "f.conf:1:", "tenant");
    snprintf(line, sizeof(line), "%s tenant=ghost\n", hex);
    expect_file_error(GW_AUTHDB_APIKEYS, line, "f.conf:1:", "ghost");
    snprintf(line, sizeof(line), "%s tenant=acme expires_at=soon\n", hex);
    expect_file_error(GW_AUTHDB_APIKEYS, line, "f.conf:1:", "expires_at");
    snprintf(line, sizeof(line), "%s tenant=acme\n%s tenant=acme\n", hex, hex);
    expect_file_error(GW_AUTHDB_APIKEYS, line, "f.conf:2:", "already");
}

static void test_load_files(void **state)
{
    (void)state;
    char tpath[] = "/tmp/infergw-test-tenants-XXXXXX";
    int fd = mkstemp(tpath);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, TENANTS, strlen(TENANTS)), (ssize_t)strlen(TENANTS));
    close(fd);
    char err[400];
    struct gw_authdb *db = gw_authdb_load_files(tpath, NULL, err, sizeof(err));
    assert_non_null(db);
    assert_int_equal(gw_authdb_ntenants(db), 3);
    gw_authdb_free(db);
    db = gw_authdb_load_files(tpath, "/nonexistent/keys", err, sizeof(err));
    assert_null(db);
    assert_non_null(strstr(err, "/nonexistent/keys"));
    unlink(tpath);
}

/* Every allocation of a build failing in turn: a clean error, no leak. */
static void test_alloc_failures(void **state)
{
    (void)state;
    uint8_t h[32];
    key_of("k", h);
    for (long n = 0;; n++) {
        long before = gw_mem_live();
        gw_mem_fail_after(n);
        int rc = 0;
        char err[200];
        struct gw_authdb *db = gw_authdb_new();
        if (db) {
            rc = gw_authdb_load_text(db, GW_AUTHDB_TENANTS, TENANTS, strlen(TENANTS), "t", err,
                                     sizeof(err));
            if (rc == 0)
                rc = gw_authdb_add_apikey(db, h, "acme", 0);
            if (rc == 0) {
                rc = gw_authdb_copy_tenant(db, gw_authdb_tenant(db, "acme"));
                rc = rc == GW_AUTHDB_EEXIST ? 0 : rc == 0 ? -1 : rc;
            }
        }
        gw_mem_fail_after(-1);
        int ok = db && rc == 0;
        if (db && rc != 0)
            assert_int_equal(rc, GW_AUTHDB_ENOMEM);
        gw_authdb_free(db);
        assert_int_equal(gw_mem_live(), before);
        if (ok)
            break;
        assert_true(n < 1000);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_tenants_and_models), cmocka_unit_test(test_apikeys),
        cmocka_unit_test(test_many_records),       cmocka_unit_test(test_validation),
        cmocka_unit_test(test_copy_tenant),        cmocka_unit_test(test_load_text),
        cmocka_unit_test(test_file_errors),        cmocka_unit_test(test_load_files),
        cmocka_unit_test(test_alloc_failures),
    };
    gw_mem_fail_after(-1); /* start counting live allocations */
    return cmocka_run_group_tests(tests, NULL, NULL);
}
