/* SPDX-License-Identifier: Apache-2.0 */
/* tls — OpenSSL contexts, failure names and peer identity; see tls.h. */
#include "h2/tls.h"

#include <arpa/inet.h>
#include <errno.h>
#include <limits.h>
#include <openssl/err.h>
#include <openssl/x509v3.h>
#include <stdio.h>
#include <string.h>

#include "base/err.h"
#include "base/mem.h"
#include "obs/metrics.h"

/* TLS 1.2 suites HTTP/2 allows (RFC 7540 9.2.2: ephemeral key exchange, AEAD);
 * TLS 1.3 suites are OpenSSL's defaults, all of them AEAD. */
#define TLS12_CIPHERS                                                                              \
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"                                   \
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"                                   \
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"

/* Read buffer of each connection: with read-ahead, one read(2) takes up to
 * this much, rather than one call for each record header and body. */
#define TLS_READ_BUFFER (64 * 1024)

/* The reason of the last OpenSSL error, for messages; clears the queue. */
static const char *ossl_reason(char *buf, size_t len)
{
    unsigned long e, last = 0;
    while ((e = ERR_get_error()) != 0)
        last = e;
    const char *r = last ? ERR_reason_error_string(last) : NULL;
    snprintf(buf, len, "%s", r ? r : "unknown OpenSSL error");
    return buf;
}

/* Checks that <path> (the value of <flag>) can be opened for reading, so an
 * unreadable file is reported with errno rather than an OpenSSL code. */
static int readable(const char *flag, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        gw_errf(err, errlen, "%s '%s': %s", flag, path, strerror(errno));
        return -1;
    }
    fclose(f);
    return 0;
}

static int load_pair(SSL_CTX *ctx, const char *cert_flag, const char *cert, const char *key_flag,
                     const char *key, char *err, size_t errlen)
{
    char why[160];
    if (readable(cert_flag, cert, err, errlen) < 0 || readable(key_flag, key, err, errlen) < 0)
        return -1;
    ERR_clear_error();
    if (SSL_CTX_use_certificate_chain_file(ctx, cert) != 1) {
        gw_errf(err, errlen, "%s '%s': no usable PEM certificate (%s)", cert_flag, cert,
                ossl_reason(why, sizeof(why)));
        return -1;
    }
    if (SSL_CTX_use_PrivateKey_file(ctx, key, SSL_FILETYPE_PEM) != 1) {
        /* The key is not quoted from: only the file name and the reason. */
        gw_errf(err, errlen, "%s '%s': no usable PEM private key, or it does not match %s (%s)",
                key_flag, key, cert_flag, ossl_reason(why, sizeof(why)));
        return -1;
    }
    if (SSL_CTX_check_private_key(ctx) != 1) {
        gw_errf(err, errlen, "%s '%s' does not match the certificate in %s '%s'", key_flag, key,
                cert_flag, cert);
        ERR_clear_error();
        return -1;
    }
    return 0;
}

static int load_ca(SSL_CTX *ctx, const char *flag, const char *ca, char *err, size_t errlen)
{
    char why[160];
    if (readable(flag, ca, err, errlen) < 0)
        return -1;
    ERR_clear_error();
    if (SSL_CTX_load_verify_locations(ctx, ca, NULL) != 1) {
        gw_errf(err, errlen, "%s '%s': no usable PEM CA certificate (%s)", flag, ca,
                ossl_reason(why, sizeof(why)));
        return -1;
    }
    return 0;
}

/* Settings both sides share. Returns 0 or -1. */
static int common_setup(SSL_CTX *ctx)
{
    if (SSL_CTX_set_min_proto_version(ctx, TLS1_2_VERSION) != 1 ||
        SSL_CTX_set_cipher_list(ctx, TLS12_CIPHERS) != 1)
        return -1;
    /* No renegotiation and no compression; an EOF without close_notify is a
     * plain close (many clients end connections that way). */
    SSL_CTX_set_options(ctx, SSL_OP_NO_RENEGOTIATION | SSL_OP_NO_COMPRESSION |
                                 SSL_OP_IGNORE_UNEXPECTED_EOF | SSL_OP_CIPHER_SERVER_PREFERENCE);
    /* conn.c writes from a buffer that may move between retries and takes
     * partial progress; reads ahead so one syscall brings several records. */
    SSL_CTX_set_mode(ctx, SSL_MODE_ENABLE_PARTIAL_WRITE | SSL_MODE_ACCEPT_MOVING_WRITE_BUFFER);
    SSL_CTX_set_read_ahead(ctx, 1);
    SSL_CTX_set_default_read_buffer_len(ctx, TLS_READ_BUFFER);
    SSL_CTX_set_mode(ctx, SSL_MODE_RELEASE_BUFFERS);
    return 0;
}

/* ALPN on the server: "h2" or nothing. A client that offers ALPN without h2
 * gets a fatal no_application_protocol alert; one that offers no ALPN at all
 * is refused by conn.c once the handshake is done. */
static int alpn_select(SSL *ssl, const unsigned char **out, unsigned char *outlen,
                       const unsigned char *in, unsigned int inlen, void *arg)
{
    for (unsigned int i = 0; i < inlen;) {
        unsigned int n = in[i];
        if (i + 1 + n > inlen)
            break;
        if (n == 2 && in[i + 1] == 'h' && in[i + 2] == '2') {
            *out = in + i + 1;
            *outlen = 2;
            return SSL_TLSEXT_ERR_OK;
        }
        i += 1 + n;
    }
    return SSL_TLSEXT_ERR_ALERT_FATAL;
}

SSL_CTX *gw_tls_server_ctx_new(const char *cert, const char *key, const char *client_ca, char *err,
                               size_t errlen)
{
    SSL_CTX *ctx = SSL_CTX_new(TLS_server_method());
    if (!ctx || common_setup(ctx) < 0) {
        gw_errf(err, errlen, "cannot create a TLS context (out of memory?)");
        goto fail;
    }
    if (load_pair(ctx, "--tls-cert", cert, "--tls-key", key, err, errlen) < 0)
        goto fail;
    SSL_CTX_set_alpn_select_cb(ctx, alpn_select, NULL);
    /* Session resumption across a client's connections; a client
     * certificate is bound to the session id context. */
    static const unsigned char sid_ctx[] = "infergw";
    SSL_CTX_set_session_id_context(ctx, sid_ctx, sizeof(sid_ctx) - 1);
    if (client_ca) {
        if (load_ca(ctx, "--tls-client-ca", client_ca, err, errlen) < 0)
            goto fail;
        STACK_OF(X509_NAME) *names = SSL_load_client_CA_file(client_ca);
        if (!names) {
            gw_errf(err, errlen, "--tls-client-ca '%s': no CA certificate names in it", client_ca);
            ERR_clear_error();
            goto fail;
        }
        SSL_CTX_set_client_CA_list(ctx, names);
        SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER | SSL_VERIFY_FAIL_IF_NO_PEER_CERT, NULL);
        SSL_CTX_set_verify_depth(ctx, 8);
    }
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

SSL_CTX *gw_tls_client_ctx_new(const char *ca, const char *cert, const char *key, char *err,
                               size_t errlen)
{
    static const unsigned char alpn[] = {2, 'h', '2'};
    SSL_CTX *ctx = SSL_CTX_new(TLS_client_method());
    if (!ctx || common_setup(ctx) < 0 || SSL_CTX_set_alpn_protos(ctx, alpn, sizeof(alpn)) != 0) {
        gw_errf(err, errlen, "cannot create a TLS context (out of memory?)");
        goto fail;
    }
    if (load_ca(ctx, "--upstream-tls-ca", ca, err, errlen) < 0)
        goto fail;
    if (cert && key &&
        load_pair(ctx, "--upstream-tls-cert", cert, "--upstream-tls-key", key, err, errlen) < 0)
        goto fail;
    SSL_CTX_set_verify(ctx, SSL_VERIFY_PEER, NULL);
    SSL_CTX_set_verify_depth(ctx, 8);
    return ctx;
fail:
    SSL_CTX_free(ctx);
    ERR_clear_error();
    return NULL;
}

SSL *gw_tls_client_ssl_new(SSL_CTX *ctx, const char *host)
{
    SSL *ssl = SSL_new(ctx);
    if (!ssl)
        return NULL;
    unsigned char ip[16];
    int ok;
    if (inet_pton(AF_INET, host, ip) == 1 || inet_pton(AF_INET6, host, ip) == 1) {
        ok = X509_VERIFY_PARAM_set1_ip_asc(SSL_get0_param(ssl), host) == 1;
    } else {
        ok = SSL_set_tlsext_host_name(ssl, host) == 1 && SSL_set1_host(ssl, host) == 1;
        SSL_set_hostflags(ssl, X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS);
    }
    if (!ok) {
        SSL_free(ssl);
        ERR_clear_error();
        return NULL;
    }
    return ssl;
}

void gw_tls_describe_ctx(SSL_CTX *ctx, char *out, size_t outlen)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    if (!x || outlen == 0) {
        snprintf(out, outlen, "no certificate");
        return;
    }
    char subject[256] = "", serial[80] = "?", not_after[64] = "?";
    X509_NAME_oneline(X509_get_subject_name(x), subject, sizeof(subject));
    BIGNUM *bn = ASN1_INTEGER_to_BN(X509_get0_serialNumber(x), NULL);
    char *hex = bn ? BN_bn2hex(bn) : NULL;
    if (hex)
        snprintf(serial, sizeof(serial), "%s", hex);
    OPENSSL_free(hex);
    BN_free(bn);
    BIO *b = BIO_new(BIO_s_mem());
    if (b && ASN1_TIME_print(b, X509_get0_notAfter(x)) == 1) {
        int n = BIO_read(b, not_after, (int)sizeof(not_after) - 1);
        not_after[n > 0 ? n : 0] = '\0';
    }
    BIO_free(b);
    snprintf(out, outlen, "subject=%s, serial=%s, not_after=%s", subject, serial, not_after);
    ERR_clear_error();
}

int gw_tls_days_left(SSL_CTX *ctx)
{
    X509 *x = SSL_CTX_get0_certificate(ctx);
    int days = 0, secs = 0;
    if (!x || ASN1_TIME_diff(&days, &secs, NULL, X509_get0_notAfter(x)) != 1)
        return INT_MIN;
    return days - (days == 0 && secs < 0 ? 1 : 0);
}

int gw_tls_classify_failure(SSL *ssl, int ssl_err, char *detail, size_t detaillen)
{
    int saved_errno = errno;
    unsigned long e, first = 0;
    while ((e = ERR_get_error()) != 0)
        if (!first)
            first = e;
    if (ssl_err == SSL_ERROR_ZERO_RETURN || (ssl_err == SSL_ERROR_SYSCALL && !first)) {
        if (ssl_err == SSL_ERROR_SYSCALL && saved_errno && saved_errno != EAGAIN)
            snprintf(detail, detaillen, "%s", strerror(saved_errno));
        else
            snprintf(detail, detaillen, "the peer closed the connection");
        return GW_TLS_FAIL_PEER_CLOSED;
    }
    const char *r = first ? ERR_reason_error_string(first) : NULL;
    snprintf(detail, detaillen, "%s", r ? r : "unknown TLS error");
    if (!first || ERR_GET_LIB(first) != ERR_LIB_SSL)
        return GW_TLS_FAIL_OTHER;
    int reason = ERR_GET_REASON(first);
    switch (reason) {
    case SSL_R_PEER_DID_NOT_RETURN_A_CERTIFICATE:
        snprintf(detail, detaillen, "the client sent no certificate");
        return GW_TLS_FAIL_NO_PEER_CERT;
    case SSL_R_CERTIFICATE_VERIFY_FAILED: {
        long v = SSL_get_verify_result(ssl);
        snprintf(detail, detaillen, "certificate verify failed: %s",
                 X509_verify_cert_error_string(v));
        return GW_TLS_FAIL_CERT_VERIFY;
    }
    case SSL_R_NO_APPLICATION_PROTOCOL:
    case SSL_R_CALLBACK_FAILED:
        snprintf(detail, detaillen, "ALPN h2 not offered");
        return GW_TLS_FAIL_NO_ALPN_H2;
    case SSL_R_WRONG_VERSION_NUMBER:
    case SSL_R_HTTP_REQUEST:
    case SSL_R_HTTPS_PROXY_REQUEST:
    case SSL_R_PACKET_LENGTH_TOO_LONG:
    case SSL_R_RECORD_LENGTH_MISMATCH:
    case SSL_R_UNKNOWN_PROTOCOL:
        snprintf(detail, detaillen, "not a TLS handshake (%s)", r ? r : "?");
        return GW_TLS_FAIL_NOT_TLS;
    case SSL_R_UNSUPPORTED_PROTOCOL:
    case SSL_R_NO_SHARED_CIPHER:
    case SSL_R_NO_PROTOCOLS_AVAILABLE:
    case SSL_R_VERSION_TOO_LOW:
        return GW_TLS_FAIL_PROTOCOL;
    case SSL_R_UNEXPECTED_EOF_WHILE_READING:
        return GW_TLS_FAIL_PEER_CLOSED;
    default:
        /* Alerts the peer sent come as reasons SSL_AD_REASON_OFFSET + code. */
        if (reason >= SSL_AD_REASON_OFFSET && reason < SSL_AD_REASON_OFFSET + 256) {
            snprintf(detail, detaillen, "the peer sent alert: %s", r ? r : "?");
            return GW_TLS_FAIL_PEER_ALERT;
        }
        return GW_TLS_FAIL_OTHER;
    }
}

/* Sets <*out> to a copy of <len> bytes of <s> behind <prefix>, or to NULL
 * when <s> holds a control character or NUL (such a name cannot name a
 * tenant, and is skipped). Returns 0, or -1 when out of memory. */
static int clean_copy(const char *prefix, const unsigned char *s, size_t len, char **out)
{
    *out = NULL;
    for (size_t i = 0; i < len; i++)
        if (s[i] < 0x20 || s[i] == 0x7f)
            return 0;
    size_t pl = strlen(prefix);
    char *c = gw_malloc(pl + len + 1);
    if (!c)
        return -1;
    memcpy(c, prefix, pl);
    memcpy(c + pl, s, len);
    c[pl + len] = '\0';
    *out = c;
    return 0;
}

/* "IP:<addr>" of a 4- or 16-byte address (NULL for another length). */
static int ip_copy(const ASN1_OCTET_STRING *o, char **out)
{
    char a[INET6_ADDRSTRLEN];
    int len = ASN1_STRING_length(o);
    const unsigned char *d = ASN1_STRING_get0_data(o);
    *out = NULL;
    if (!(len == 4 && inet_ntop(AF_INET, d, a, sizeof(a))) &&
        !(len == 16 && inet_ntop(AF_INET6, d, a, sizeof(a))))
        return 0;
    return clean_copy("IP:", (const unsigned char *)a, strlen(a), out);
}

void gw_tls_identity_free(char *cn, char **sans, size_t nsans)
{
    gw_free(cn);
    for (size_t i = 0; i < nsans; i++)
        gw_free(sans[i]);
    gw_free(sans);
}

/* The subject CN of <x> as UTF-8 into <*cn> (NULL when absent or not
 * clean). Returns 0 or -1 when out of memory. */
static int subject_cn(X509 *x, char **cn)
{
    *cn = NULL;
    X509_NAME *name = X509_get_subject_name(x);
    int idx = name ? X509_NAME_get_index_by_NID(name, NID_commonName, -1) : -1;
    if (idx < 0)
        return 0;
    ASN1_STRING *d = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(name, idx));
    unsigned char *utf8 = NULL;
    int len = d ? ASN1_STRING_to_UTF8(&utf8, d) : -1;
    if (len < 0)
        return 0;
    int rc = clean_copy("", utf8, (size_t)len, cn);
    OPENSSL_free(utf8);
    return rc;
}

int gw_tls_identity(X509 *x, char **cn_out, char ***sans_out, size_t *nsans_out)
{
    char *cn = NULL, **sans = NULL;
    size_t n = 0;
    GENERAL_NAMES *gens = NULL;
    if (subject_cn(x, &cn) < 0)
        goto oom;
    gens = X509_get_ext_d2i(x, NID_subject_alt_name, NULL, NULL);
    int ng = gens ? sk_GENERAL_NAME_num(gens) : 0;
    if (ng > 0) {
        sans = gw_calloc((size_t)(ng < GW_TLS_MAX_SANS ? ng : GW_TLS_MAX_SANS), sizeof(*sans));
        if (!sans)
            goto oom;
    }
    for (int i = 0; i < ng && n < GW_TLS_MAX_SANS; i++) {
        const GENERAL_NAME *g = sk_GENERAL_NAME_value(gens, i);
        char *s = NULL;
        int rc = 0;
        if (g->type == GEN_DNS)
            rc = clean_copy("DNS:", ASN1_STRING_get0_data(g->d.dNSName),
                            (size_t)ASN1_STRING_length(g->d.dNSName), &s);
        else if (g->type == GEN_URI)
            rc = clean_copy("URI:", ASN1_STRING_get0_data(g->d.uniformResourceIdentifier),
                            (size_t)ASN1_STRING_length(g->d.uniformResourceIdentifier), &s);
        else if (g->type == GEN_IPADD)
            rc = ip_copy(g->d.iPAddress, &s);
        if (rc < 0)
            goto oom;
        if (s)
            sans[n++] = s;
    }
    GENERAL_NAMES_free(gens);
    if (n == 0) {
        gw_free(sans);
        sans = NULL;
    }
    *cn_out = cn;
    *sans_out = sans;
    *nsans_out = n;
    return 0;
oom:
    GENERAL_NAMES_free(gens);
    gw_tls_identity_free(cn, sans, n);
    return -ENOMEM;
}
