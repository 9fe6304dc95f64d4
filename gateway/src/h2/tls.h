/* SPDX-License-Identifier: Apache-2.0 */
/* tls — OpenSSL contexts and peer identity for the gateway's TLS.
 *
 * The front end (--tls-cert, --tls-key, --tls-client-ca) and the connections
 * to replicas (--upstream-tls-ca, --upstream-tls-cert, --upstream-tls-key)
 * each get one SSL_CTX, built on the main thread, never on a worker: TLS 1.2
 * and 1.3 only, the HTTP/2 cipher suites of RFC 7540 9.2 for TLS 1.2, no
 * renegotiation, ALPN "h2" required both ways. Mutual TLS asks for a client
 * certificate and refuses the handshake without one that chains to the
 * --tls-client-ca bundle. An SSL_CTX is reference-counted by OpenSSL
 * (SSL_CTX_up_ref / SSL_CTX_free) and every SSL holds its own reference, so a
 * certificate reload builds a new context and hands it to the workers
 * (gw_worker_offer_tls), while connections made with the old one keep it
 * alive until they close.
 *
 * The socket side of a TLS connection (non-blocking handshake, read, write)
 * lives in conn.c; this module only builds contexts and SSL objects, names
 * handshake failures, and reads the identity of a verified peer. It never
 * logs or returns key material. Any thread (each function touches only what
 * it is given).
 */
#ifndef INFERGW_TLS_H
#define INFERGW_TLS_H

#include <openssl/ssl.h>
#include <stddef.h>

#define GW_TLS_MAX_SANS 64 /* subjectAltNames kept of one certificate */

/* Builds the front-end context from the PEM certificate chain <cert>, its
 * private key <key> and, when <client_ca> is not NULL, the CA bundle client
 * certificates must chain to (mutual TLS). Refuses unreadable files, files
 * without a certificate or key, and a key that does not match the
 * certificate. Returns the context (caller frees with SSL_CTX_free), or NULL
 * with a message naming the flag and file in <err>. */
SSL_CTX *gw_tls_server_ctx_new(const char *cert, const char *key, const char *client_ca, char *err,
                               size_t errlen);

/* Builds the context for connections to replicas: their certificate must
 * chain to <ca>; <cert>/<key> (both or neither) is the gateway's client
 * certificate. Returns the context or NULL with a message in <err>. */
SSL_CTX *gw_tls_client_ctx_new(const char *ca, const char *cert, const char *key, char *err,
                               size_t errlen);

/* A new client SSL of <ctx> that verifies the server as <host> (an IP
 * address is matched against IP subjectAltNames, a name against DNS ones and
 * sent as SNI). Returns the SSL (caller frees with SSL_free) or NULL. */
SSL *gw_tls_client_ssl_new(SSL_CTX *ctx, const char *host);

/* Writes "subject=..., serial=..., not_after=..." of the certificate <ctx>
 * presents into <out> (for logs). */
void gw_tls_describe_ctx(SSL_CTX *ctx, char *out, size_t outlen);

/* Whole days until the certificate <ctx> presents expires (negative once it
 * has), or INT_MIN when there is none. */
int gw_tls_days_left(SSL_CTX *ctx);

/* Names why the handshake of <ssl> failed, given SSL_get_error() <ssl_err>
 * of the failed call: returns an enum gw_metrics_tls_fail value and writes a
 * one-line reason (the OpenSSL reason, the certificate verification result)
 * into <detail>. Consumes the thread's OpenSSL error queue. */
int gw_tls_classify_failure(SSL *ssl, int ssl_err, char *detail, size_t detaillen);

/* The identity of a verified peer certificate <x>: the subject CN (<cn>,
 * NULL when there is none) and the subjectAltNames as "DNS:<name>",
 * "URI:<uri>" and "IP:<addr>" (<sans>, <nsans>; others are skipped, and so
 * are values with control characters). On success the caller owns the
 * strings and frees them with gw_tls_identity_free(). Returns 0, or -ENOMEM
 * with the out-parameters untouched. */
int gw_tls_identity(X509 *x, char **cn, char ***sans, size_t *nsans);
void gw_tls_identity_free(char *cn, char **sans, size_t nsans);

#endif
