/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for plugins/jwt (jwt.c, jwt_plugin.c): base64url and the
 * three-part split; HS256, RS256 and ES256 tokens made here with keys
 * generated here (OpenSSL), verified with keys loaded from PEM and JWKS
 * files; exp/nbf with the leeway, iss, aud (string and array), kid
 * selection, alg none, algorithm confusion (HS256 keyed with the RSA public
 * key), forged signatures, malformed tokens; the plugin's per-worker cache. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/pem.h>

#include "infergw/plugin.h"
#include "jwt.h"

#define NOW 1700000000LL

static char dir[64];
static EVP_PKEY *rsa, *ec, *rsa_small;
static const uint8_t secret[32] = "0123456789abcdef0123456789abcdef";
static char rsa_pem_path[128], ec_jwks_path[128], oct_jwks_path[128];
static struct jwt_keyset ks;

/* --- token making ------------------------------------------------------------- */

static void b64url(const uint8_t *in, size_t n, char *out)
{
    int len = EVP_EncodeBlock((unsigned char *)out, in, (int)n);
    for (int i = 0; i < len; i++) {
        if (out[i] == '+')
            out[i] = '-';
        else if (out[i] == '/')
            out[i] = '_';
        else if (out[i] == '=') {
            out[i] = '\0';
            return;
        }
    }
    out[len] = '\0';
}

static size_t sign(const char *alg, const uint8_t *in, size_t n, uint8_t *sig)
{
    if (!strcmp(alg, "HS256")) {
        unsigned int l = 0;
        HMAC(EVP_sha256(), secret, sizeof(secret), in, n, sig, &l);
        return l;
    }
    EVP_PKEY *pk = !strcmp(alg, "RS256") ? rsa : ec;
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    uint8_t der[600];
    size_t dl = sizeof(der);
    assert_int_equal(EVP_DigestSignInit(ctx, NULL, EVP_sha256(), NULL, pk), 1);
    assert_int_equal(EVP_DigestSign(ctx, der, &dl, in, n), 1);
    EVP_MD_CTX_free(ctx);
    if (!strcmp(alg, "RS256")) {
        memcpy(sig, der, dl);
        return dl;
    }
    const uint8_t *p = der;
    ECDSA_SIG *es = d2i_ECDSA_SIG(NULL, &p, (long)dl);
    assert_non_null(es);
    BN_bn2binpad(ECDSA_SIG_get0_r(es), sig, 32);
    BN_bn2binpad(ECDSA_SIG_get0_s(es), sig + 32, 32);
    ECDSA_SIG_free(es);
    return 64;
}

/* header.payload.signature with <hdr> and <claims> JSON, signed for
 * <alg> (NULL: an empty signature). */
static char *token(const char *alg, const char *hdr, const char *claims)
{
    static char out[4][8192];
    static int k;
    char *t = out[k++ % 4];
    b64url((const uint8_t *)hdr, strlen(hdr), t);
    strcat(t, ".");
    b64url((const uint8_t *)claims, strlen(claims), t + strlen(t));
    size_t signed_len = strlen(t);
    strcat(t, ".");
    if (alg) {
        uint8_t sig[600];
        size_t sl = sign(alg, (const uint8_t *)t, signed_len, sig);
        b64url(sig, sl, t + strlen(t));
    }
    return t;
}

static const struct jwt_policy pol = {
    .issuer = "https://issuer.example", .audience = "infer", .tenant_claim = "sub", .leeway_s = 30};

static int verify(const char *tok, struct jwt_claims *c, struct jwt_error *e)
{
    return jwt_verify(&ks, &pol, tok, strlen(tok), NOW, c, e);
}

#define GOOD_CLAIMS                                                                                \
    "{\"sub\":\"acme\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\",\"exp\":1700000600}"

static void assert_refused(const char *tok, int reason, const char *msg_part)
{
    struct jwt_claims c;
    struct jwt_error e = {0};
    assert_int_equal(verify(tok, &c, &e), -1);
    if (e.reason != reason)
        fail_msg("reason %d, expected %d (%s)", e.reason, reason, e.message);
    assert_non_null(strstr(e.message, msg_part));
}

static void assert_accepted(const char *tok, const char *tenant)
{
    struct jwt_claims c;
    struct jwt_error e = {0};
    if (verify(tok, &c, &e) != 0)
        fail_msg("refused: %s", e.message);
    assert_string_equal(c.tenant, tenant);
}

/* --- key files ------------------------------------------------------------------ */

static void write_file(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    fputs(text, f);
    fclose(f);
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/test_jwt.XXXXXX");
    if (!mkdtemp(dir))
        return -1;
    rsa = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)2048);
    rsa_small = EVP_PKEY_Q_keygen(NULL, NULL, "RSA", (size_t)1024);
    ec = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    if (!rsa || !ec || !rsa_small)
        return -1;

    snprintf(rsa_pem_path, sizeof(rsa_pem_path), "%s/rsa-main.pem", dir);
    FILE *f = fopen(rsa_pem_path, "w");
    PEM_write_PUBKEY(f, rsa);
    fclose(f);

    uint8_t pub[65];
    size_t pl = 0;
    EVP_PKEY_get_octet_string_param(ec, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub), &pl);
    char x[64], y[64], k[64], jwks[512];
    b64url(pub + 1, 32, x);
    b64url(pub + 33, 32, y);
    snprintf(jwks, sizeof(jwks),
             "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-256\",\"kid\":\"ec1\",\"alg\":\"ES256\","
             "\"use\":\"sig\",\"x\":\"%s\",\"y\":\"%s\"}]}",
             x, y);
    snprintf(ec_jwks_path, sizeof(ec_jwks_path), "%s/ec.json", dir);
    write_file(ec_jwks_path, jwks);

    b64url(secret, sizeof(secret), k);
    snprintf(jwks, sizeof(jwks), "{\"kty\":\"oct\",\"kid\":\"hs1\",\"k\":\"%s\"}", k);
    snprintf(oct_jwks_path, sizeof(oct_jwks_path), "%s/oct.json", dir);
    write_file(oct_jwks_path, jwks);

    char err[256];
    if (jwt_keyset_load_file(&ks, rsa_pem_path, err, sizeof(err)) < 0 ||
        jwt_keyset_load_file(&ks, ec_jwks_path, err, sizeof(err)) < 0 ||
        jwt_keyset_load_file(&ks, oct_jwks_path, err, sizeof(err)) < 0) {
        fprintf(stderr, "key load: %s\n", err);
        return -1;
    }
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    jwt_keyset_free(&ks);
    EVP_PKEY_free(rsa);
    EVP_PKEY_free(rsa_small);
    EVP_PKEY_free(ec);
    char cmd[128];
    snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
    return system(cmd) == 0 ? 0 : -1;
}

/* --- tests ------------------------------------------------------------------------ */

static void test_b64url(void **state)
{
    (void)state;
    uint8_t out[16];
    size_t n;
    assert_int_equal(jwt_b64url_decode("Zm9vYmFy", 8, out, sizeof(out), &n), 0);
    assert_int_equal(n, 6);
    assert_memory_equal(out, "foobar", 6);
    assert_int_equal(jwt_b64url_decode("Zm9vYg", 6, out, sizeof(out), &n), 0);
    assert_int_equal(n, 4);
    assert_memory_equal(out, "foob", 4);
    assert_int_equal(jwt_b64url_decode("Zg", 2, out, sizeof(out), &n), 0);
    assert_int_equal(n, 1);
    assert_int_equal(jwt_b64url_decode("", 0, out, sizeof(out), &n), 0);
    assert_int_equal(n, 0);
    assert_int_equal(jwt_b64url_decode("-_8", 3, out, sizeof(out), &n), 0); /* 0xfb 0xff */
    assert_int_equal(out[0], 0xfb);
    assert_int_equal(out[1], 0xff);
    assert_int_equal(jwt_b64url_decode("Zg==", 4, out, sizeof(out), &n), -1);   /* padding */
    assert_int_equal(jwt_b64url_decode("Zm9v+g", 6, out, sizeof(out), &n), -1); /* '+' */
    assert_int_equal(jwt_b64url_decode("Zm9vY", 5, out, sizeof(out), &n), -1);  /* 1 mod 4 */
    assert_int_equal(jwt_b64url_decode("Zh", 2, out, sizeof(out), &n), -1);     /* unused bits */
    assert_int_equal(jwt_b64url_decode("Zm9vYmFy", 8, out, 5, &n), -1);         /* no room */
}

static void test_split(void **state)
{
    (void)state;
    struct jwt_parts p;
    assert_int_equal(jwt_split("a.bc.d", 6, &p), 0);
    assert_int_equal(p.header_len, 1);
    assert_int_equal(p.payload_len, 2);
    assert_int_equal(p.sig_len, 1);
    assert_int_equal(p.signed_len, 4);
    assert_int_equal(jwt_split("a.b.", 4, &p), 0); /* empty signature: alg none */
    assert_int_equal(jwt_split("a.b", 3, &p), -1);
    assert_int_equal(jwt_split("a.b.c.d", 7, &p), -1);
    assert_int_equal(jwt_split(".b.c", 4, &p), -1);
    assert_int_equal(jwt_split("a..c", 4, &p), -1);
}

static void test_valid_tokens(void **state)
{
    (void)state;
    assert_accepted(token("RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa-main\"}", GOOD_CLAIMS),
                    "acme");
    assert_accepted(
        token("ES256", "{\"alg\":\"ES256\",\"kid\":\"ec1\",\"typ\":\"JWT\"}", GOOD_CLAIMS), "acme");
    assert_accepted(token("HS256", "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", GOOD_CLAIMS), "acme");
    /* Without kid: the only key of the token's alg. */
    assert_accepted(token("ES256", "{\"alg\":\"ES256\"}", GOOD_CLAIMS), "acme");
    assert_accepted(token("RS256", "{\"alg\":\"RS256\"}", GOOD_CLAIMS), "acme");
    /* aud as an array; real-valued exp. */
    assert_accepted(token("RS256", "{\"alg\":\"RS256\"}",
                          "{\"sub\":\"t2\",\"iss\":\"https://issuer.example\",\"aud\":[\"x\","
                          "\"infer\"],\"exp\":1700000600.5}"),
                    "t2");
}

static void test_time_claims(void **state)
{
    (void)state;
    const char *h = "{\"alg\":\"ES256\",\"kid\":\"ec1\"}";
    /* exp 20 s ago: inside the 30 s leeway. 40 s ago: expired. */
    assert_accepted(token("ES256", h,
                          "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                          "\"exp\":1699999980}"),
                    "a");
    assert_refused(token("ES256", h,
                         "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                         "\"exp\":1699999960}"),
                   INFERGW_REASON_EXPIRED, "JWT expired");
    /* nbf 20 s ahead: inside the leeway. 60 s ahead: not yet valid. */
    assert_accepted(token("ES256", h,
                          "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                          "\"exp\":1700000600,\"nbf\":1700000020}"),
                    "a");
    assert_refused(token("ES256", h,
                         "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                         "\"exp\":1700000600,\"nbf\":1700000060}"),
                   INFERGW_REASON_NOT_YET_VALID, "not yet valid");
    assert_refused(
        token("ES256", h, "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\"}"),
        INFERGW_REASON_BAD_CLAIMS, "no exp");
    assert_refused(token("ES256", h,
                         "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                         "\"exp\":\"soon\"}"),
                   INFERGW_REASON_MALFORMED, "exp is not a number");
}

static void test_iss_aud_tenant(void **state)
{
    (void)state;
    const char *h = "{\"alg\":\"HS256\"}";
    assert_refused(token("HS256", h,
                         "{\"sub\":\"a\",\"iss\":\"https://evil.example\",\"aud\":\"infer\","
                         "\"exp\":1700000600}"),
                   INFERGW_REASON_BAD_CLAIMS, "issuer");
    assert_refused(token("HS256", h, "{\"sub\":\"a\",\"aud\":\"infer\",\"exp\":1700000600}"),
                   INFERGW_REASON_BAD_CLAIMS, "issuer");
    assert_refused(token("HS256", h,
                         "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":\"other\","
                         "\"exp\":1700000600}"),
                   INFERGW_REASON_BAD_CLAIMS, "audience");
    assert_refused(token("HS256", h,
                         "{\"sub\":\"a\",\"iss\":\"https://issuer.example\",\"aud\":[\"a\",\"b\"],"
                         "\"exp\":1700000600}"),
                   INFERGW_REASON_BAD_CLAIMS, "audience");
    assert_refused(token("HS256", h,
                         "{\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                         "\"exp\":1700000600}"),
                   INFERGW_REASON_BAD_CLAIMS, "tenant claim");
    assert_refused(token("HS256", h,
                         "{\"sub\":7,\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                         "\"exp\":1700000600}"),
                   INFERGW_REASON_BAD_CLAIMS, "tenant claim");
    /* Another tenant claim. */
    struct jwt_policy p2 = pol;
    p2.tenant_claim = "org";
    struct jwt_claims c;
    struct jwt_error e;
    const char *t = token("HS256", h,
                          "{\"sub\":\"u1\",\"org\":\"team-b\",\"iss\":\"https://issuer.example\","
                          "\"aud\":\"infer\",\"exp\":1700000600}");
    assert_int_equal(jwt_verify(&ks, &p2, t, strlen(t), NOW, &c, &e), 0);
    assert_string_equal(c.tenant, "team-b");
}

static void test_algorithms_refused(void **state)
{
    (void)state;
    assert_refused(token(NULL, "{\"alg\":\"none\"}", GOOD_CLAIMS), INFERGW_REASON_BAD_ALGORITHM,
                   "'none'");
    assert_refused(token(NULL, "{\"alg\":\"none\",\"kid\":\"rsa-main\"}", GOOD_CLAIMS),
                   INFERGW_REASON_BAD_ALGORITHM, "'none'");
    assert_refused(token("HS256", "{\"alg\":\"HS512\"}", GOOD_CLAIMS), INFERGW_REASON_BAD_ALGORITHM,
                   "not supported");
    /* Algorithm confusion: HS256 whose HMAC secret is the RSA public key
     * (PEM text), naming the RSA key by kid, or without kid. */
    BIO *bio = BIO_new(BIO_s_mem());
    PEM_write_bio_PUBKEY(bio, rsa);
    char *pem;
    long pl = BIO_get_mem_data(bio, &pem);
    char hdr[] = "{\"alg\":\"HS256\",\"kid\":\"rsa-main\"}";
    char t[4096], sig64[64];
    b64url((const uint8_t *)hdr, strlen(hdr), t);
    strcat(t, ".");
    b64url((const uint8_t *)GOOD_CLAIMS, strlen(GOOD_CLAIMS), t + strlen(t));
    uint8_t mac[32];
    unsigned int ml;
    HMAC(EVP_sha256(), pem, (int)pl, (const uint8_t *)t, strlen(t), mac, &ml);
    b64url(mac, 32, sig64);
    strcat(t, ".");
    strcat(t, sig64);
    BIO_free(bio);
    assert_refused(t, INFERGW_REASON_BAD_ALGORITHM, "does not fit");
    /* The same MAC without kid goes to the oct key and fails there. */
    char hdr2[] = "{\"alg\":\"HS256\"}";
    b64url((const uint8_t *)hdr2, strlen(hdr2), t);
    strcat(t, ".");
    b64url((const uint8_t *)GOOD_CLAIMS, strlen(GOOD_CLAIMS), t + strlen(t));
    strcat(t, ".");
    strcat(t, sig64);
    assert_refused(t, INFERGW_REASON_BAD_SIGNATURE, "signature");
    /* ES256 token naming the RSA key, RS256 naming the EC key. */
    assert_refused(token("ES256", "{\"alg\":\"ES256\",\"kid\":\"rsa-main\"}", GOOD_CLAIMS),
                   INFERGW_REASON_BAD_ALGORITHM, "does not fit");
    assert_refused(token("RS256", "{\"alg\":\"RS256\",\"kid\":\"ec1\"}", GOOD_CLAIMS),
                   INFERGW_REASON_BAD_ALGORITHM, "does not fit");
}

static void test_signatures_and_kids(void **state)
{
    (void)state;
    char t[8192];
    snprintf(t, sizeof(t), "%s",
             token("RS256", "{\"alg\":\"RS256\",\"kid\":\"rsa-main\"}", GOOD_CLAIMS));
    /* Flip one signature character. */
    char *last = t + strlen(t) - 5;
    *last = *last == 'A' ? 'B' : 'A';
    assert_refused(t, INFERGW_REASON_BAD_SIGNATURE, "does not verify");
    /* Claims swapped under a valid signature. */
    char a[8192], b[8192];
    snprintf(a, sizeof(a), "%s", token("ES256", "{\"alg\":\"ES256\"}", GOOD_CLAIMS));
    snprintf(b, sizeof(b), "%s",
             token("ES256", "{\"alg\":\"ES256\"}",
                   "{\"sub\":\"admin\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                   "\"exp\":1700000600}"));
    char *sa = strrchr(a, '.'), *sb = strrchr(b, '.');
    strcpy(sb, sa); /* b's claims with a's signature */
    assert_refused(b, INFERGW_REASON_BAD_SIGNATURE, "does not verify");
    /* ES256 signature of the wrong length. */
    snprintf(a, sizeof(a), "%s", token("ES256", "{\"alg\":\"ES256\"}", GOOD_CLAIMS));
    a[strlen(a) - 6] = '\0'; /* 60 bytes */
    assert_refused(a, INFERGW_REASON_BAD_SIGNATURE, "does not verify");
    assert_refused(token("RS256", "{\"alg\":\"RS256\",\"kid\":\"nope\"}", GOOD_CLAIMS),
                   INFERGW_REASON_UNKNOWN_KEY, "kid names no configured key");
}

static void test_malformed(void **state)
{
    (void)state;
    assert_refused("abc", INFERGW_REASON_MALFORMED, "header.payload.signature");
    assert_refused("a.b.c.d", INFERGW_REASON_MALFORMED, "header.payload.signature");
    assert_refused("@@@.e30.", INFERGW_REASON_MALFORMED, "base64url");
    assert_refused(token("HS256", "[1]", GOOD_CLAIMS), INFERGW_REASON_MALFORMED, "header");
    assert_refused(token("HS256", "{\"alg\":\"HS256\",\"alg\":\"none\"}", GOOD_CLAIMS),
                   INFERGW_REASON_MALFORMED, "header");
    assert_refused(token("HS256", "{\"alg\":\"HS256\",\"crit\":[\"x\"]}", GOOD_CLAIMS),
                   INFERGW_REASON_MALFORMED, "crit");
    assert_refused(token("HS256", "{\"alg\":\"HS256\",\"kid\":5}", GOOD_CLAIMS),
                   INFERGW_REASON_MALFORMED, "kid");
    assert_refused(token("HS256", "{\"alg\":\"HS256\"}", "not json"), INFERGW_REASON_MALFORMED,
                   "claims");
    assert_refused(
        token("HS256", "{\"alg\":\"HS256\"}", "{\"sub\":\"a\",\"sub\":\"b\",\"exp\":1700000600}"),
        INFERGW_REASON_MALFORMED, "claims");
    char big[JWT_MAX_TOKEN + 10];
    memset(big, 'a', sizeof(big) - 1);
    big[sizeof(big) - 1] = '\0';
    big[10] = big[20] = '.';
    assert_refused(big, INFERGW_REASON_MALFORMED, "header.payload.signature");
}

static void test_key_files(void **state)
{
    (void)state;
    struct jwt_keyset k2 = {0};
    char err[256], path[160];
    /* RSA below 2048 bits. */
    snprintf(path, sizeof(path), "%s/small.pem", dir);
    FILE *f = fopen(path, "w");
    PEM_write_PUBKEY(f, rsa_small);
    fclose(f);
    assert_int_equal(jwt_keyset_load_file(&k2, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "2048"));
    /* A JWK whose alg does not fit its kty. */
    snprintf(path, sizeof(path), "%s/bad.json", dir);
    write_file(path, "{\"kty\":\"oct\",\"alg\":\"RS256\",\"k\":"
                     "\"MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY\"}");
    assert_int_equal(jwt_keyset_load_file(&k2, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "does not fit"));
    /* A short HMAC secret. */
    write_file(path, "{\"keys\":[{\"kty\":\"oct\",\"k\":\"c2hvcnQ\"}]}");
    assert_int_equal(jwt_keyset_load_file(&k2, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "32 bytes"));
    /* An EC key on another curve. */
    write_file(path, "{\"keys\":[{\"kty\":\"EC\",\"crv\":\"P-384\",\"x\":\"AA\",\"y\":\"AA\"}]}");
    assert_int_equal(jwt_keyset_load_file(&k2, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "P-256"));
    write_file(path, "neither");
    assert_int_equal(jwt_keyset_load_file(&k2, path, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "neither"));
    assert_int_equal(jwt_keyset_load_file(&k2, "/nonexistent/x.pem", err, sizeof(err)), -1);
    assert_int_equal(k2.n, 0);
}

/* --- the plugin and its cache ------------------------------------------------------ */

static int64_t fake_now = NOW;
static int64_t host_now_unix(const struct infergw_host *h)
{
    (void)h;
    return fake_now;
}
static void *zalloc(size_t n)
{
    return calloc(1, n);
}

static void test_plugin_cache(void **state)
{
    (void)state;
    struct infergw_host host = {.abi_version = INFERGW_PLUGIN_ABI_VERSION,
                                .now_unix = host_now_unix,
                                .alloc = malloc,
                                .zalloc = zalloc,
                                .free = free,
                                .nworkers = 1};
    char args[512], err[256];
    snprintf(args, sizeof(args),
             "keys=%s,keys=%s,issuer=https://issuer.example,audience=infer,leeway=30,cache=8",
             rsa_pem_path, ec_jwks_path);
    void *st = NULL;
    assert_int_equal(infergw_jwt_plugin.init(args, &host, &st, err, sizeof(err)), 0);
    int failed = 0;
    void *ws = infergw_jwt_plugin.worker_init(st, 0, &failed);
    assert_int_equal(failed, 0);

    char tok[8192];
    snprintf(tok, sizeof(tok), "%s", token("RS256", "{\"alg\":\"RS256\"}", GOOD_CLAIMS));
    struct infergw_auth_request req = {.bearer = tok, .bearer_len = strlen(tok)};
    struct infergw_auth_answer ans;
    uint64_t hits, verified;
    for (int i = 0; i < 3; i++) {
        memset(&ans, 0, sizeof(ans));
        assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                         INFERGW_AUTH_ACCEPT);
        assert_string_equal(ans.tenant, "acme");
    }
    jwt_plugin_cache_stats(ws, &hits, &verified);
    assert_int_equal(verified, 1); /* one signature check for three calls */
    assert_int_equal(hits, 2);

    /* Past exp + leeway the cached entry no longer answers. */
    fake_now = 1700000600 + 31;
    assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                     INFERGW_AUTH_REJECT);
    assert_int_equal(ans.reason, INFERGW_REASON_EXPIRED);
    fake_now = NOW;

    /* Many distinct tokens: the cache stays bounded (8 entries) and correct. */
    for (int i = 0; i < 40; i++) {
        char claims[256];
        snprintf(claims, sizeof(claims),
                 "{\"sub\":\"t%d\",\"iss\":\"https://issuer.example\",\"aud\":\"infer\","
                 "\"exp\":%d}",
                 i, 1700000600 + i);
        snprintf(tok, sizeof(tok), "%s", token("ES256", "{\"alg\":\"ES256\"}", claims));
        req.bearer_len = strlen(tok);
        memset(&ans, 0, sizeof(ans));
        assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                         INFERGW_AUTH_ACCEPT);
        char want[16];
        snprintf(want, sizeof(want), "t%d", i);
        assert_string_equal(ans.tenant, want);
    }
    /* A forged token is never served from the cache. */
    tok[strlen(tok) - 3] = tok[strlen(tok) - 3] == 'A' ? 'B' : 'A';
    assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                     INFERGW_AUTH_REJECT);
    assert_int_equal(ans.reason, INFERGW_REASON_BAD_SIGNATURE);
    /* Not a JWT: not this plugin's. */
    req.bearer = "opaque-api-key";
    req.bearer_len = strlen(req.bearer);
    assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans), INFERGW_AUTH_PASS);
    req.bearer = NULL;
    assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans), INFERGW_AUTH_PASS);

    infergw_jwt_plugin.worker_destroy(st, ws);
    infergw_jwt_plugin.destroy(st);

    /* Refused arguments. */
    assert_int_equal(infergw_jwt_plugin.init("", &host, &st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "no verification keys"));
    snprintf(args, sizeof(args), "keys=%s,bogus=1", rsa_pem_path);
    assert_int_equal(infergw_jwt_plugin.init(args, &host, &st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "unknown argument"));
    snprintf(args, sizeof(args), "keys=%s,keys=%s", ec_jwks_path, ec_jwks_path);
    assert_int_equal(infergw_jwt_plugin.init(args, &host, &st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "two keys have kid"));
}

/* SIGHUP: the keys files are read again; a worker drops what it cached
 * under the old keys, and a bad file keeps the keys in force. */
static void test_plugin_reload(void **state)
{
    (void)state;
    struct infergw_host host = {.abi_version = INFERGW_PLUGIN_ABI_VERSION,
                                .now_unix = host_now_unix,
                                .alloc = malloc,
                                .zalloc = zalloc,
                                .free = free,
                                .nworkers = 1};
    char path[160], args[256], err[256], text[1024];
    snprintf(path, sizeof(path), "%s/reload.json", dir);
    FILE *f = fopen(ec_jwks_path, "r");
    size_t n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    write_file(path, text);
    snprintf(args, sizeof(args), "keys=%s,issuer=https://issuer.example,audience=infer", path);
    void *st = NULL;
    assert_int_equal(infergw_jwt_plugin.init(args, &host, &st, err, sizeof(err)), 0);
    int failed = 0;
    void *ws = infergw_jwt_plugin.worker_init(st, 0, &failed);

    char es[8192], hs[8192];
    snprintf(es, sizeof(es), "%s",
             token("ES256", "{\"alg\":\"ES256\",\"kid\":\"ec1\"}", GOOD_CLAIMS));
    snprintf(hs, sizeof(hs), "%s",
             token("HS256", "{\"alg\":\"HS256\",\"kid\":\"hs1\"}", GOOD_CLAIMS));
    struct infergw_auth_request req = {.bearer = es, .bearer_len = strlen(es)};
    struct infergw_auth_answer ans;
    for (int i = 0; i < 2; i++)
        assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                         INFERGW_AUTH_ACCEPT);
    uint64_t hits, verified;
    jwt_plugin_cache_stats(ws, &hits, &verified);
    assert_int_equal(hits, 1);

    /* The file now holds only the HMAC key. */
    f = fopen(oct_jwks_path, "r");
    n = fread(text, 1, sizeof(text) - 1, f);
    fclose(f);
    text[n] = '\0';
    write_file(path, text);
    assert_int_equal(infergw_jwt_plugin.reload(st, err, sizeof(err)), 0);
    assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                     INFERGW_AUTH_REJECT); /* not from the cache */
    assert_int_equal(ans.reason, INFERGW_REASON_UNKNOWN_KEY);
    req.bearer = hs;
    req.bearer_len = strlen(hs);
    assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                     INFERGW_AUTH_ACCEPT);

    /* A bad file: refused, the keys in force stay. */
    write_file(path, "{\"keys\": 5}");
    assert_int_equal(infergw_jwt_plugin.reload(st, err, sizeof(err)), -1);
    assert_non_null(strstr(err, "keys"));
    assert_int_equal(infergw_jwt_plugin.authenticate(st, ws, &req, &host, &ans),
                     INFERGW_AUTH_ACCEPT);

    infergw_jwt_plugin.worker_destroy(st, ws);
    infergw_jwt_plugin.destroy(st);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_b64url),
        cmocka_unit_test(test_split),
        cmocka_unit_test(test_valid_tokens),
        cmocka_unit_test(test_time_claims),
        cmocka_unit_test(test_iss_aud_tenant),
        cmocka_unit_test(test_algorithms_refused),
        cmocka_unit_test(test_signatures_and_kids),
        cmocka_unit_test(test_malformed),
        cmocka_unit_test(test_key_files),
        cmocka_unit_test(test_plugin_cache),
        cmocka_unit_test(test_plugin_reload),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
