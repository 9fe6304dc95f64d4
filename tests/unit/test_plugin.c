/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/auth/plugin.c (the authentication chain) and the
 * built-in API-key and mTLS plugins: chain order and "first decisive answer
 * wins", answers made well-formed, loading shared objects (the example
 * plugin; a module reporting another ABI version, a missing file, a
 * library without the entry symbol are refused with a message saying so),
 * worker states, and out-of-memory while adding a plugin. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>
#include <openssl/evp.h>

#include "base/mem.h"
#include "auth/plugin.h"

extern const struct infergw_plugin infergw_apikey_plugin;
extern const struct infergw_plugin infergw_mtls_plugin;

/* --- a host with one API key ------------------------------------------------ */

static uint8_t known_hash[32];
static int64_t known_expiry;
static int64_t fake_now = 1700000000;

static const char *lookup(const struct infergw_host *h, const uint8_t sha256[32], int64_t *exp)
{
    (void)h;
    if (memcmp(sha256, known_hash, 32) != 0)
        return NULL;
    *exp = known_expiry;
    return "team-a";
}
static int64_t now_unix(const struct infergw_host *h)
{
    (void)h;
    return fake_now;
}
static void *zalloc(size_t n)
{
    return gw_calloc(1, n);
}

static struct infergw_host host = {.abi_version = INFERGW_PLUGIN_ABI_VERSION,
                                   .apikey_lookup = lookup,
                                   .now_unix = now_unix,
                                   .alloc = gw_malloc,
                                   .zalloc = zalloc,
                                   .free = gw_free,
                                   .nworkers = 2};

/* --- scripted plugins ------------------------------------------------------------ */

struct script {
    enum infergw_auth_result result;
    const char *tenant;
    int status, reason;
    int calls;
    int workers_made, workers_freed;
};

static int s_init(const char *args, const struct infergw_host *h, void **state, char *err,
                  size_t errlen)
{
    (void)h;
    if (!strcmp(args, "fail")) {
        snprintf(err, errlen, "bad args");
        return -1;
    }
    *state = (void *)(uintptr_t)strtoull(args, NULL, 16);
    return 0;
}
static void *s_worker_init(void *state, int index, int *failed)
{
    struct script *s = state;
    s->workers_made++;
    return (void *)(uintptr_t)(index + 1);
}
static void s_worker_destroy(void *state, void *ws)
{
    struct script *s = state;
    s->workers_freed++;
}
static enum infergw_auth_result s_auth(void *state, void *ws, const struct infergw_auth_request *r,
                                       const struct infergw_host *h,
                                       struct infergw_auth_answer *ans)
{
    struct script *s = state;
    s->calls++;
    if (s->tenant)
        snprintf(ans->tenant, sizeof(ans->tenant), "%s", s->tenant);
    if (s->status)
        ans->status = s->status;
    ans->reason = s->reason;
    return s->result;
}
static const struct infergw_plugin scripted = {
    .abi_version = INFERGW_PLUGIN_ABI_VERSION,
    .name = "scripted",
    .init = s_init,
    .worker_init = s_worker_init,
    .worker_destroy = s_worker_destroy,
    .authenticate = s_auth,
};

static void add(struct gw_plugin_chain *ch, struct script *s)
{
    char args[32], err[256];
    snprintf(args, sizeof(args), "%llx", (unsigned long long)(uintptr_t)s);
    assert_int_equal(
        gw_plugin_chain_add(ch, &scripted, args, NULL, "scripted", &host, err, sizeof(err)), 0);
}

static enum infergw_auth_result run(struct gw_plugin_chain *ch, struct infergw_auth_answer *ans,
                                    size_t *which)
{
    struct infergw_auth_request req = {.path = "/x"};
    return gw_plugin_chain_run(ch, 1, &req, &host, ans, which);
}

static void test_chain_order(void **state)
{
    (void)state;
    struct script pass = {.result = INFERGW_AUTH_PASS};
    struct script acc = {.result = INFERGW_AUTH_ACCEPT, .tenant = "t1"};
    struct script rej = {.result = INFERGW_AUTH_REJECT, .reason = INFERGW_REASON_EXPIRED};
    struct gw_plugin_chain ch = {0};
    add(&ch, &pass);
    add(&ch, &acc);
    add(&ch, &rej);
    assert_int_equal(pass.workers_made, 2);
    struct infergw_auth_answer ans;
    size_t which = 99;
    assert_int_equal(run(&ch, &ans, &which), INFERGW_AUTH_ACCEPT);
    assert_int_equal(which, 1);
    assert_string_equal(ans.tenant, "t1");
    assert_int_equal(pass.calls, 1);
    assert_int_equal(rej.calls, 0); /* the first decisive answer wins */

    acc.result = INFERGW_AUTH_PASS;
    assert_int_equal(run(&ch, &ans, &which), INFERGW_AUTH_REJECT);
    assert_int_equal(which, 2);
    assert_int_equal(ans.status, INFERGW_STATUS_UNAUTHENTICATED);
    assert_int_equal(ans.reason, INFERGW_REASON_EXPIRED);
    assert_string_equal(ans.message, "refused by plugin scripted"); /* filled in */

    /* Out-of-range answers are made well-formed. */
    rej.status = 3;
    rej.reason = 999;
    assert_int_equal(run(&ch, &ans, &which), INFERGW_AUTH_REJECT);
    assert_int_equal(ans.status, INFERGW_STATUS_UNAUTHENTICATED);
    assert_int_equal(ans.reason, INFERGW_REASON_REFUSED);
    rej.status = INFERGW_STATUS_PERMISSION_DENIED;
    assert_int_equal(run(&ch, &ans, &which), INFERGW_AUTH_REJECT);
    assert_int_equal(ans.status, INFERGW_STATUS_PERMISSION_DENIED);
    /* An accept without a tenant is a reject. */
    acc.result = INFERGW_AUTH_ACCEPT;
    acc.tenant = NULL;
    assert_int_equal(run(&ch, &ans, &which), INFERGW_AUTH_REJECT);
    assert_int_equal(which, 1);
    /* Everyone passes. */
    acc.result = rej.result = INFERGW_AUTH_PASS;
    assert_int_equal(run(&ch, &ans, &which), INFERGW_AUTH_PASS);

    gw_plugin_chain_free(&ch);
    assert_int_equal(pass.workers_freed, 2);
}

static void test_init_failure_and_oom(void **state)
{
    (void)state;
    gw_mem_fail_after(-1); /* starts the live count */
    long live = gw_mem_live();
    struct gw_plugin_chain ch = {0};
    char err[256];
    assert_int_equal(
        gw_plugin_chain_add(&ch, &scripted, "fail", NULL, "s", &host, err, sizeof(err)), -1);
    assert_string_equal(err, "plugin s: bad args");
    assert_int_equal(ch.n, 0);
    struct script s = {.result = INFERGW_AUTH_PASS};
    char args[32];
    snprintf(args, sizeof(args), "%llx", (unsigned long long)(uintptr_t)&s);
    /* Allocation n failing, n = 0, 1, ...: out of memory, until the first run
     * in which nothing failed adds the plugin (3 allocations: 3 such runs). */
    long n;
    for (n = 0;; n++) {
        gw_mem_fail_after(n);
        int rc = gw_plugin_chain_add(&ch, &scripted, args, NULL, "s", &host, err, sizeof(err));
        gw_mem_fail_after(-1);
        if (rc == 0)
            break;
        assert_int_equal(rc, -1);
        assert_non_null(strstr(err, "out of memory"));
        assert_int_equal(ch.n, 0);
        assert_true(n < 100);
    }
    assert_int_equal(n, 3);
    assert_int_equal(ch.n, 1);
    gw_plugin_chain_free(&ch);
    assert_int_equal(gw_mem_live(), live);
}

static void test_load_modules(void **state)
{
    (void)state;
    struct gw_plugin_chain ch = {0};
    char err[512], spec[512];
    snprintf(spec, sizeof(spec), "%s/infergw-plugin-badabi.so", PLUGIN_DIR);
    assert_int_equal(gw_plugin_chain_load(&ch, spec, &host, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "built for plugin ABI version 2"));
    assert_non_null(strstr(err, "speaks version 1"));
    assert_int_equal(gw_plugin_chain_load(&ch, "/nonexistent/p.so", &host, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "cannot load"));
    assert_int_equal(gw_plugin_chain_load(&ch, "libm.so.6", &host, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no symbol infergw_plugin_v1"));
    snprintf(spec, sizeof(spec), "%s/infergw-plugin-example.so", PLUGIN_DIR);
    assert_int_equal(gw_plugin_chain_load(&ch, spec, &host, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "secret=S,tenant=T"));
    assert_int_equal(ch.n, 0);

    snprintf(spec, sizeof(spec), "%s/infergw-plugin-example.so:secret=s3cret,tenant=team-x",
             PLUGIN_DIR);
    assert_int_equal(gw_plugin_chain_load(&ch, spec, &host, err, sizeof(err)), 0);
    struct infergw_metadata md[] = {{"x-other", 7, "1", 1}, {"x-shared-secret", 15, "s3cret", 6}};
    struct infergw_auth_request req = {.md = md, .nmd = 2};
    struct infergw_auth_answer ans;
    size_t which;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_ACCEPT);
    assert_string_equal(ans.tenant, "team-x");
    md[1].value = "s3creX";
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_REJECT);
    assert_null(strstr(ans.message, "s3cre"));
    req.nmd = 1;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_PASS);
    gw_plugin_chain_free(&ch);
}

static void test_apikey_plugin(void **state)
{
    (void)state;
    const char *key = "igw_0123456789abcdef";
    unsigned int l;
    EVP_Digest(key, strlen(key), known_hash, &l, EVP_sha256(), NULL);
    struct gw_plugin_chain ch = {0};
    char err[256];
    assert_int_equal(gw_plugin_chain_add(&ch, &infergw_apikey_plugin, "", NULL, "apikey", &host,
                                         err, sizeof(err)),
                     0);
    struct infergw_auth_request req = {.bearer = key, .bearer_len = strlen(key)};
    struct infergw_auth_answer ans;
    size_t which;
    known_expiry = 0;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_ACCEPT);
    assert_string_equal(ans.tenant, "team-a");
    known_expiry = fake_now + 1;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_ACCEPT);
    known_expiry = fake_now;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_REJECT);
    assert_string_equal(ans.message, "API key expired");
    assert_int_equal(ans.reason, INFERGW_REASON_EXPIRED);
    req.bearer = "igw_wrong";
    req.bearer_len = 9;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_REJECT);
    assert_string_equal(ans.message, "API key not recognised");
    assert_int_equal(ans.reason, INFERGW_REASON_UNKNOWN_KEY);
    req.bearer = "a.b.c"; /* a JWT: not this plugin's */
    req.bearer_len = 5;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_PASS);
    req.bearer = NULL;
    assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_PASS);
    gw_plugin_chain_free(&ch);
}

static void test_mtls_plugin(void **state)
{
    (void)state;
    struct gw_plugin_chain ch = {0};
    char err[256];
    assert_int_equal(gw_plugin_chain_add(&ch, &infergw_mtls_plugin, "from=bogus", NULL, "mtls",
                                         &host, err, sizeof(err)),
                     -1);
    assert_non_null(strstr(err, "from=cn"));
    const char *from[] = {"from=cn", "from=san-dns", "from=san-uri"};
    const char *want[] = {"client-a", "a.tenants.example", "spiffe://example/tenant-a"};
    const char *sans[] = {"IP:127.0.0.1", "DNS:a.tenants.example", "URI:spiffe://example/tenant-a"};
    for (int i = 0; i < 3; i++) {
        assert_int_equal(gw_plugin_chain_add(&ch, &infergw_mtls_plugin, from[i], NULL, "mtls",
                                             &host, err, sizeof(err)),
                         0);
        struct infergw_peer peer = {.addr = "127.0.0.1:1",
                                    .tls = 1,
                                    .verified = 1,
                                    .cn = "client-a",
                                    .sans = sans,
                                    .nsans = 3};
        struct infergw_auth_request req = {.peer = &peer};
        struct infergw_auth_answer ans;
        size_t which;
        assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which),
                         INFERGW_AUTH_ACCEPT);
        assert_string_equal(ans.tenant, want[i]);
        peer.nsans = 1; /* only the IP SAN */
        peer.cn = NULL;
        assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which),
                         INFERGW_AUTH_REJECT);
        assert_int_equal(ans.reason, INFERGW_REASON_BAD_CLAIMS);
        peer.verified = 0; /* no verified certificate: not this plugin's */
        assert_int_equal(gw_plugin_chain_run(&ch, 0, &req, &host, &ans, &which), INFERGW_AUTH_PASS);
        gw_plugin_chain_free(&ch);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_chain_order),  cmocka_unit_test(test_init_failure_and_oom),
        cmocka_unit_test(test_load_modules), cmocka_unit_test(test_apikey_plugin),
        cmocka_unit_test(test_mtls_plugin),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
