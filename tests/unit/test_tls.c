/* SPDX-License-Identifier: Apache-2.0 */
/* Unit tests for gateway/src/h2/tls.c: contexts built from files (good pair,
 * missing file, key that does not match), handshakes between a client and a
 * server SSL over an in-memory BIO pair (ALPN h2, mutual TLS refusals named
 * by gw_tls_classify_failure, hostname and IP verification of a replica),
 * and the peer identity read from a certificate, with every allocation
 * failed in turn. Certificates are made in the test with the OpenSSL API. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cmocka.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include "base/mem.h"
#include "obs/metrics.h"
#include "h2/tls.h"

/* A key pair and a certificate for it, signed by <ca> (self-signed when
 * NULL), with subject CN <cn> and subjectAltName <san> (NULL = none). */
struct pki {
    EVP_PKEY *key;
    X509 *cert;
};

static struct pki make_cert(const struct pki *ca, const char *cn, const char *san, int is_ca)
{
    struct pki p;
    static long serial = 1;
    p.key = EVP_EC_gen("P-256");
    assert_non_null(p.key);
    p.cert = X509_new();
    assert_non_null(p.cert);
    X509_set_version(p.cert, 2);
    ASN1_INTEGER_set(X509_get_serialNumber(p.cert), serial++);
    X509_gmtime_adj(X509_getm_notBefore(p.cert), -60);
    X509_gmtime_adj(X509_getm_notAfter(p.cert), 3600);
    X509_set_pubkey(p.cert, p.key);
    X509_NAME *name = X509_get_subject_name(p.cert);
    X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_UTF8, (const unsigned char *)cn, -1, -1, 0);
    X509_set_issuer_name(p.cert, ca ? X509_get_subject_name(ca->cert) : name);
    X509V3_CTX v3;
    X509V3_set_ctx(&v3, ca ? ca->cert : p.cert, p.cert, NULL, NULL, 0);
    if (san) {
        X509_EXTENSION *ext = X509V3_EXT_conf_nid(NULL, &v3, NID_subject_alt_name, san);
        assert_non_null(ext);
        X509_add_ext(p.cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    if (is_ca) {
        X509_EXTENSION *ext =
            X509V3_EXT_conf_nid(NULL, &v3, NID_basic_constraints, "critical,CA:TRUE");
        X509_add_ext(p.cert, ext, -1);
        X509_EXTENSION_free(ext);
    }
    assert_true(X509_sign(p.cert, ca ? ca->key : p.key, EVP_sha256()) > 0);
    return p;
}

static void pki_free(struct pki *p)
{
    X509_free(p->cert);
    EVP_PKEY_free(p->key);
}

static char dir[64];
static struct pki ca, other_ca, server, client, stranger;

static void write_pem(const char *name, X509 *cert, EVP_PKEY *key)
{
    char path[128];
    snprintf(path, sizeof(path), "%s/%s", dir, name);
    FILE *f = fopen(path, "w");
    assert_non_null(f);
    if (cert)
        PEM_write_X509(f, cert);
    if (key)
        PEM_write_PrivateKey(f, key, NULL, NULL, 0, NULL, NULL);
    fclose(f);
}

static const char *file(const char *name)
{
    static char path[4][128];
    static int i;
    i = (i + 1) % 4;
    snprintf(path[i], sizeof(path[i]), "%s/%s", dir, name);
    return path[i];
}

static int setup(void **state)
{
    (void)state;
    snprintf(dir, sizeof(dir), "/tmp/infergw-test-tls.XXXXXX");
    assert_non_null(mkdtemp(dir));
    ca = make_cert(NULL, "test-ca", NULL, 1);
    other_ca = make_cert(NULL, "other-ca", NULL, 1);
    server = make_cert(&ca, "replica", "DNS:localhost,IP:127.0.0.1", 0);
    client = make_cert(&ca, "tenant-a", "DNS:tenant-a.example,URI:spiffe://example.org/a", 0);
    stranger = make_cert(&other_ca, "tenant-a", NULL, 0);
    write_pem("ca.pem", ca.cert, NULL);
    write_pem("server.pem", server.cert, NULL);
    write_pem("server.key", NULL, server.key);
    write_pem("client.pem", client.cert, NULL);
    write_pem("client.key", NULL, client.key);
    write_pem("stranger.pem", stranger.cert, NULL);
    write_pem("stranger.key", NULL, stranger.key);
    return 0;
}

static int teardown(void **state)
{
    (void)state;
    const char *names[] = {"ca.pem",     "server.pem",   "server.key",  "client.pem",
                           "client.key", "stranger.pem", "stranger.key"};
    for (size_t i = 0; i < sizeof(names) / sizeof(names[0]); i++)
        unlink(file(names[i]));
    rmdir(dir);
    pki_free(&ca);
    pki_free(&other_ca);
    pki_free(&server);
    pki_free(&client);
    pki_free(&stranger);
    return 0;
}

static void test_server_ctx_from_files(void **state)
{
    (void)state;
    char err[512] = "";
    SSL_CTX *ctx =
        gw_tls_server_ctx_new(file("server.pem"), file("server.key"), NULL, err, sizeof(err));
    assert_non_null(ctx);
    char desc[512];
    gw_tls_describe_ctx(ctx, desc, sizeof(desc));
    assert_non_null(strstr(desc, "CN=replica"));
    assert_non_null(strstr(desc, "serial="));
    assert_int_equal(gw_tls_days_left(ctx), 0); /* made to expire in an hour */
    SSL_CTX_free(ctx);

    ctx = gw_tls_server_ctx_new(file("nope.pem"), file("server.key"), NULL, err, sizeof(err));
    assert_null(ctx);
    assert_non_null(strstr(err, "--tls-cert"));
    assert_non_null(strstr(err, "No such file"));

    ctx = gw_tls_server_ctx_new(file("server.pem"), file("client.key"), NULL, err, sizeof(err));
    assert_null(ctx);
    assert_non_null(strstr(err, "--tls-key"));
    assert_null(strstr(err, "BEGIN")); /* never any of the key */

    ctx = gw_tls_server_ctx_new(file("server.key"), file("server.key"), NULL, err, sizeof(err));
    assert_null(ctx);
    assert_non_null(strstr(err, "no usable PEM certificate"));

    ctx = gw_tls_server_ctx_new(file("server.pem"), file("server.key"), file("server.key"), err,
                                sizeof(err));
    assert_null(ctx);
    assert_non_null(strstr(err, "--tls-client-ca"));

    ctx = gw_tls_client_ctx_new(file("nope.pem"), NULL, NULL, err, sizeof(err));
    assert_null(ctx);
    assert_non_null(strstr(err, "--upstream-tls-ca"));
    assert_int_equal(ERR_peek_error(), 0); /* the error queue is left clean */
}

/* Runs both sides of a handshake over a BIO pair until both are done or
 * one fails. Returns 0, or the failing side's gw_tls_classify_failure()
 * value (<*server_failed> says which side) with its detail. */
static int handshake(SSL *c, SSL *s, int *server_failed, char *detail, size_t len)
{
    BIO *bc, *bs;
    assert_int_equal(BIO_new_bio_pair(&bc, 0, &bs, 0), 1);
    SSL_set_bio(c, bc, bc);
    SSL_set_bio(s, bs, bs);
    SSL_set_connect_state(c);
    SSL_set_accept_state(s);
    int cdone = 0, sdone = 0;
    for (int round = 0; round < 50 && !(cdone && sdone); round++) {
        SSL *sides[2] = {c, s};
        int *done[2] = {&cdone, &sdone};
        for (int i = 0; i < 2; i++) {
            if (*done[i])
                continue;
            ERR_clear_error();
            int r = SSL_do_handshake(sides[i]);
            if (r == 1) {
                *done[i] = 1;
                /* TLS 1.3: the server decides on the client certificate
                 * after the client is done; a read shows its verdict. */
                if (i == 0) {
                    char b;
                    SSL_read(c, &b, 1);
                }
                continue;
            }
            int e = SSL_get_error(sides[i], r);
            if (e == SSL_ERROR_WANT_READ || e == SSL_ERROR_WANT_WRITE)
                continue;
            *server_failed = i == 1;
            return gw_tls_classify_failure(sides[i], e, detail, len);
        }
    }
    assert_true(cdone && sdone);
    return 0;
}

static SSL_CTX *server_ctx(int mtls)
{
    char err[512];
    SSL_CTX *ctx = gw_tls_server_ctx_new(file("server.pem"), file("server.key"),
                                         mtls ? file("ca.pem") : NULL, err, sizeof(err));
    if (!ctx)
        fail_msg("%s", err);
    return ctx;
}

static SSL *client_ssl(const char *cert, const char *key, const char *host)
{
    char err[512];
    SSL_CTX *ctx = gw_tls_client_ctx_new(file("ca.pem"), cert ? file(cert) : NULL,
                                         key ? file(key) : NULL, err, sizeof(err));
    if (!ctx)
        fail_msg("%s", err);
    SSL *ssl = gw_tls_client_ssl_new(ctx, host);
    SSL_CTX_free(ctx); /* the SSL keeps its own reference */
    assert_non_null(ssl);
    return ssl;
}

static void test_handshake_alpn_h2_and_identity(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(1);
    SSL *s = SSL_new(sctx);
    SSL *c = client_ssl("client.pem", "client.key", "127.0.0.1");
    int server_failed = 0;
    char detail[160] = "";
    assert_int_equal(handshake(c, s, &server_failed, detail, sizeof(detail)), 0);
    const unsigned char *p;
    unsigned int n;
    SSL_get0_alpn_selected(s, &p, &n);
    assert_int_equal(n, 2);
    assert_memory_equal(p, "h2", 2);
    assert_int_equal(SSL_get_verify_result(s), X509_V_OK);
    char *cn, **sans;
    size_t nsans;
    assert_int_equal(gw_tls_identity(SSL_get0_peer_certificate(s), &cn, &sans, &nsans), 0);
    assert_string_equal(cn, "tenant-a");
    assert_int_equal(nsans, 2);
    assert_string_equal(sans[0], "DNS:tenant-a.example");
    assert_string_equal(sans[1], "URI:spiffe://example.org/a");
    gw_tls_identity_free(cn, sans, nsans);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
}

static void expect_failure(int mtls, const char *cert, const char *key, const char *host,
                           int want_server, int want, const char *want_detail)
{
    SSL_CTX *sctx = server_ctx(mtls);
    SSL *s = SSL_new(sctx);
    SSL *c = client_ssl(cert, key, host);
    int server_failed = -1;
    char detail[160] = "";
    int why = handshake(c, s, &server_failed, detail, sizeof(detail));
    assert_int_equal(server_failed, want_server);
    if (why != want)
        fail_msg("reason %d (%s), want %d", why, detail, want);
    assert_non_null(strstr(detail, want_detail));
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
}

static void test_handshake_refusals(void **state)
{
    (void)state;
    /* Mutual TLS without a client certificate, or with one of another CA. */
    expect_failure(1, NULL, NULL, "127.0.0.1", 1, GW_TLS_FAIL_NO_PEER_CERT, "no certificate");
    expect_failure(1, "stranger.pem", "stranger.key", "127.0.0.1", 1, GW_TLS_FAIL_CERT_VERIFY,
                   "certificate verify failed");
    /* A replica whose certificate does not name the address dialled. */
    expect_failure(0, NULL, NULL, "127.0.0.2", 0, GW_TLS_FAIL_CERT_VERIFY, "mismatch");
    expect_failure(0, NULL, NULL, "replica.example", 0, GW_TLS_FAIL_CERT_VERIFY, "mismatch");
}

static void test_handshake_by_name(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(0);
    SSL *s = SSL_new(sctx);
    SSL *c = client_ssl(NULL, NULL, "localhost");
    int server_failed = 0;
    char detail[160] = "";
    assert_int_equal(handshake(c, s, &server_failed, detail, sizeof(detail)), 0);
    assert_string_equal(SSL_get_servername(s, TLSEXT_NAMETYPE_host_name), "localhost");
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
}

static void test_client_offering_no_h2_is_refused(void **state)
{
    (void)state;
    SSL_CTX *sctx = server_ctx(0);
    SSL *s = SSL_new(sctx);
    SSL *c = client_ssl(NULL, NULL, "127.0.0.1");
    static const unsigned char http11[] = {8, 'h', 't', 't', 'p', '/', '1', '.', '1'};
    SSL_set_alpn_protos(c, http11, sizeof(http11));
    int server_failed = 0;
    char detail[160] = "";
    assert_int_equal(handshake(c, s, &server_failed, detail, sizeof(detail)),
                     GW_TLS_FAIL_NO_ALPN_H2);
    assert_int_equal(server_failed, 1);
    SSL_free(c);
    SSL_free(s);
    SSL_CTX_free(sctx);
}

static void test_identity(void **state)
{
    (void)state;
    struct pki p = make_cert(&ca, "svc\x01evil",
                             "email:a@b.example,DNS:a.example,IP:10.1.2.3,IP:::1,URI:urn:x", 0);
    char *cn = (char *)1, **sans = NULL;
    size_t n = 99;
    assert_int_equal(gw_tls_identity(p.cert, &cn, &sans, &n), 0);
    assert_null(cn);        /* a control character: no CN rather than a confusable one */
    assert_int_equal(n, 4); /* the e-mail name is skipped */
    assert_string_equal(sans[0], "DNS:a.example");
    assert_string_equal(sans[1], "IP:10.1.2.3");
    assert_string_equal(sans[2], "IP:::1");
    assert_string_equal(sans[3], "URI:urn:x");
    gw_tls_identity_free(cn, sans, n);

    /* Fail the 1st, 2nd, ... allocation in turn: -ENOMEM, nothing left
     * allocated, out-parameters untouched. */
    gw_mem_fail_after(-1);
    long before = gw_mem_live();
    for (long k = 0;; k++) {
        cn = (char *)1;
        gw_mem_fail_after(k);
        int rc = gw_tls_identity(client.cert, &cn, &sans, &n);
        gw_mem_fail_after(-1);
        if (rc == 0) {
            assert_string_equal(cn, "tenant-a");
            gw_tls_identity_free(cn, sans, n);
            break;
        }
        assert_int_equal(rc, -12);
        assert_ptr_equal(cn, (char *)1);
        assert_int_equal(gw_mem_live(), before);
        assert_true(k < 10); /* the first run in which nothing fails is among the first ten */
    }
    assert_int_equal(gw_mem_live(), before);
    pki_free(&p);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_server_ctx_from_files),
        cmocka_unit_test(test_handshake_alpn_h2_and_identity),
        cmocka_unit_test(test_handshake_refusals),
        cmocka_unit_test(test_handshake_by_name),
        cmocka_unit_test(test_client_offering_no_h2_is_refused),
        cmocka_unit_test(test_identity),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
