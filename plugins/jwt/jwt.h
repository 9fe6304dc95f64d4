/* SPDX-License-Identifier: Apache-2.0 */
/* jwt — JSON Web Token (JWS compact) verification for the built-in JWT
 * authenticator: base64url, the three-part split, the header and claims
 * (parsed with jansson), HS256/RS256/ES256 signatures (OpenSSL EVP), and
 * verification keys from PEM or JWKS files.
 *
 * Every key carries the one algorithm it verifies (oct: HS256, RSA: RS256,
 * EC P-256: ES256) and a token's alg must equal its key's: an RSA or EC
 * public key is never used as an HMAC secret (algorithm confusion), and
 * alg "none" is always refused. Tokens must carry exp. Pure functions of
 * their inputs apart from key loading (files), callable from any thread
 * on a keyset that is no longer being changed.
 */
#ifndef INFERGW_JWT_H
#define INFERGW_JWT_H

#include <openssl/evp.h>
#include <stddef.h>
#include <stdint.h>

#define JWT_MAX_TOKEN  8192
#define JWT_KID_MAX    127
#define JWT_TENANT_MAX 128

enum jwt_alg { JWT_ALG_UNSUPPORTED = 0, JWT_ALG_NONE, JWT_ALG_HS256, JWT_ALG_RS256, JWT_ALG_ES256 };

struct jwt_key {
    char kid[JWT_KID_MAX + 1]; /* "" = none */
    enum jwt_alg alg;          /* the only algorithm this key verifies */
    EVP_PKEY *pkey;            /* RS256, ES256 */
    uint8_t *secret;           /* HS256 */
    size_t secret_len;
};

struct jwt_keyset {
    struct jwt_key *keys;
    size_t n;
};

struct jwt_policy {
    const char *issuer;       /* NULL = not checked */
    const char *audience;     /* NULL = not checked */
    const char *tenant_claim; /* e.g. "sub" */
    int64_t leeway_s;
};

struct jwt_parts {
    const char *header, *payload, *sig; /* base64url text, pointing into the token */
    size_t header_len, payload_len, sig_len;
    size_t signed_len; /* header '.' payload */
};

struct jwt_header {
    enum jwt_alg alg;
    char kid[JWT_KID_MAX + 1];
    int has_kid;
};

struct jwt_claims {
    char tenant[JWT_TENANT_MAX + 1];
    int64_t exp;
};

/* Result of a verification; the reason values are those of
 * infergw/plugin.h (enum infergw_auth_reason). */
struct jwt_error {
    int reason;
    const char *message; /* static text, never containing the token */
};

/* Where allocations of keysets go (default malloc/calloc/free). */
void jwt_set_allocator(void *(*zalloc)(size_t), void (*release)(void *));

/* Decodes base64url <in> (<len> bytes, no padding, RFC 7515 §2) into <out>
 * (room for <cap> bytes). Refuses '=' padding, characters outside the
 * alphabet, a length of 1 mod 4 and non-zero unused bits. Returns 0 with
 * *outlen set, or -1. */
int jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen);

/* Splits <tok> into its three parts: exactly two '.', non-empty header and
 * payload (the signature may be empty: alg none). Returns 0 or -1. */
int jwt_split(const char *tok, size_t len, struct jwt_parts *p);

/* Parses the decoded header JSON. Returns 0, or -1 with <e> set
 * (malformed, a "crit" extension, a kid that is not a short string). */
int jwt_parse_header(const uint8_t *json, size_t len, struct jwt_header *h, struct jwt_error *e);

/* Checks the decoded claims JSON at unix time <now> against <pol>: exp
 * (required) and nbf with the leeway, iss, aud (a string or an array of
 * strings), and the tenant claim (a 1..128-byte string). Returns 0 with <c>
 * filled, or -1 with <e> set. */
int jwt_check_claims(const uint8_t *json, size_t len, const struct jwt_policy *pol, int64_t now,
                     struct jwt_claims *c, struct jwt_error *e);

/* Verifies signature <sig> of <input> with key <k> for <alg> (which must be
 * k->alg). Returns 1 when it verifies, 0 otherwise. ES256 signatures are
 * the 64-byte r||s of JWS, converted to DER for OpenSSL. */
int jwt_verify_sig(const struct jwt_key *k, enum jwt_alg alg, const uint8_t *input, size_t inlen,
                   const uint8_t *sig, size_t siglen);

/* Picks the key for <h>: by kid when the token has one, else the only key
 * of the token's algorithm. Returns it, or NULL with <e> set (no such kid,
 * alg none or unsupported, alg not fitting the key's type, no or several
 * candidate keys). */
const struct jwt_key *jwt_keyset_find(const struct jwt_keyset *ks, const struct jwt_header *h,
                                      struct jwt_error *e);

/* Full verification of <tok> at unix time <now>. Returns 0 with <c>
 * filled, or -1 with <e> set. */
int jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *pol, const char *tok,
               size_t len, int64_t now, struct jwt_claims *c, struct jwt_error *e);

/* Adds the keys of file <path> to <ks>: a PEM public key (RSA >= 2048
 * bits, or EC P-256; kid = file name without directory and extension) or a
 * JWKS ({"keys": [...]}) or single JWK (kty RSA, EC P-256, oct >= 32
 * bytes; an "alg" member must fit the kty). Returns 0, or -1 with the
 * reason in <err> (<ks> unchanged). */
int jwt_keyset_load_file(struct jwt_keyset *ks, const char *path, char *err, size_t errlen);
/* Adds an already built key (takes ownership of its pkey/secret). 0 / -1. */
int jwt_keyset_add(struct jwt_keyset *ks, const struct jwt_key *k);
void jwt_keyset_free(struct jwt_keyset *ks);

/* The built-in plugin's descriptor (jwt_plugin.c), and the cache counters
 * of one of its worker states: calls answered from the cache, and
 * signature verifications done. */
struct infergw_plugin;
extern const struct infergw_plugin infergw_jwt_plugin;
void jwt_plugin_cache_stats(const void *wstate, uint64_t *hits, uint64_t *verified);

#endif
