/* SPDX-License-Identifier: Apache-2.0 */
/* jwt — see jwt.h. */
#include "jwt.h"

#include <errno.h>
#include <jansson.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/ec.h>
#include <openssl/hmac.h>
#include <openssl/param_build.h>
#include <openssl/pem.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "infergw/plugin.h"

static void *default_zalloc(size_t n)
{
    return calloc(1, n);
}

static void *(*jwt_zalloc)(size_t) = default_zalloc;
static void (*jwt_free)(void *) = free;

void jwt_set_allocator(void *(*zalloc)(size_t), void (*release)(void *))
{
    jwt_zalloc = zalloc ? zalloc : default_zalloc;
    jwt_free = release ? release : free;
}

static int fail(struct jwt_error *e, int reason, const char *message)
{
    e->reason = reason;
    e->message = message;
    return -1;
}

/* --- base64url, split -------------------------------------------------------- */

static int b64url_value(unsigned char c)
{
    if (c >= 'A' && c <= 'Z')
        return c - 'A';
    if (c >= 'a' && c <= 'z')
        return c - 'a' + 26;
    if (c >= '0' && c <= '9')
        return c - '0' + 52;
    if (c == '-')
        return 62;
    if (c == '_')
        return 63;
    return -1;
}

int jwt_b64url_decode(const char *in, size_t len, uint8_t *out, size_t cap, size_t *outlen)
{
    if (len % 4 == 1)
        return -1;
    size_t need = len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0);
    if (need > cap)
        return -1;
    uint32_t acc = 0;
    int bits = 0;
    size_t o = 0;
    for (size_t i = 0; i < len; i++) {
        int v = b64url_value((unsigned char)in[i]);
        if (v < 0)
            return -1;
        acc = (acc << 6) | (uint32_t)v;
        bits += 6;
        if (bits >= 8) {
            bits -= 8;
            out[o++] = (uint8_t)(acc >> bits);
            acc &= (1u << bits) - 1;
        }
    }
    if (acc != 0) /* non-canonical: unused low bits set */
        return -1;
    *outlen = o;
    return 0;
}

int jwt_split(const char *tok, size_t len, struct jwt_parts *p)
{
    if (len == 0 || len > JWT_MAX_TOKEN)
        return -1;
    const char *d1 = memchr(tok, '.', len);
    if (!d1)
        return -1;
    const char *d2 = memchr(d1 + 1, '.', len - (size_t)(d1 + 1 - tok));
    if (!d2 || memchr(d2 + 1, '.', len - (size_t)(d2 + 1 - tok)))
        return -1;
    p->header = tok;
    p->header_len = (size_t)(d1 - tok);
    p->payload = d1 + 1;
    p->payload_len = (size_t)(d2 - (d1 + 1));
    p->sig = d2 + 1;
    p->sig_len = len - (size_t)(d2 + 1 - tok);
    p->signed_len = (size_t)(d2 - tok);
    return p->header_len && p->payload_len ? 0 : -1;
}

/* --- header and claims ----------------------------------------------------------- */

static enum jwt_alg alg_of(const char *s)
{
    if (!strcmp(s, "HS256"))
        return JWT_ALG_HS256;
    if (!strcmp(s, "RS256"))
        return JWT_ALG_RS256;
    if (!strcmp(s, "ES256"))
        return JWT_ALG_ES256;
    if (!strcmp(s, "none") || !strcmp(s, "None") || !strcmp(s, "NONE"))
        return JWT_ALG_NONE;
    return JWT_ALG_UNSUPPORTED;
}

int jwt_parse_header(const uint8_t *json, size_t len, struct jwt_header *h, struct jwt_error *e)
{
    memset(h, 0, sizeof(*h));
    json_t *root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: header is not a JSON object");
    }
    int rc = 0;
    json_t *alg = json_object_get(root, "alg");
    json_t *kid = json_object_get(root, "kid");
    if (!json_is_string(alg)) {
        rc = fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: header has no alg");
    } else if (json_object_get(root, "crit")) {
        rc = fail(e, INFERGW_REASON_MALFORMED, "JWT header has crit extensions, not supported");
    } else if (kid && (!json_is_string(kid) || json_string_length(kid) == 0 ||
                       json_string_length(kid) > JWT_KID_MAX)) {
        rc = fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: kid is not a 1..127-byte string");
    } else {
        h->alg = alg_of(json_string_value(alg));
        if (kid) {
            memcpy(h->kid, json_string_value(kid), json_string_length(kid));
            h->kid[json_string_length(kid)] = '\0';
            h->has_kid = 1;
        }
    }
    json_decref(root);
    return rc;
}

/* A NumericDate (integer or real seconds) in *out. */
static int numeric_date(json_t *v, int64_t *out)
{
    if (json_is_integer(v)) {
        *out = (int64_t)json_integer_value(v);
        return 0;
    }
    if (json_is_real(v)) {
        double d = json_real_value(v);
        if (!(d > -9.0e18 && d < 9.0e18))
            return -1;
        *out = (int64_t)d;
        return 0;
    }
    return -1;
}

static int audience_matches(json_t *aud, const char *want)
{
    if (json_is_string(aud))
        return !strcmp(json_string_value(aud), want);
    if (!json_is_array(aud))
        return 0;
    size_t i;
    json_t *v;
    json_array_foreach(aud, i, v)
    {
        if (json_is_string(v) && !strcmp(json_string_value(v), want))
            return 1;
    }
    return 0;
}

int jwt_check_claims(const uint8_t *json, size_t len, const struct jwt_policy *pol, int64_t now,
                     struct jwt_claims *c, struct jwt_error *e)
{
    json_t *root = json_loadb((const char *)json, len, JSON_REJECT_DUPLICATES, NULL);
    if (!json_is_object(root)) {
        json_decref(root);
        return fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: claims are not a JSON object");
    }
    int rc = -1;
    int64_t exp, nbf;
    json_t *v = json_object_get(root, "exp");
    if (!v) {
        fail(e, INFERGW_REASON_BAD_CLAIMS, "JWT has no exp claim");
        goto out;
    }
    if (numeric_date(v, &exp) < 0) {
        fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: exp is not a number");
        goto out;
    }
    if (exp < INT64_MAX - pol->leeway_s && now > exp + pol->leeway_s) {
        fail(e, INFERGW_REASON_EXPIRED, "JWT expired");
        goto out;
    }
    v = json_object_get(root, "nbf");
    if (v) {
        if (numeric_date(v, &nbf) < 0) {
            fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: nbf is not a number");
            goto out;
        }
        if (nbf > now + pol->leeway_s) {
            fail(e, INFERGW_REASON_NOT_YET_VALID, "JWT not yet valid (nbf is in the future)");
            goto out;
        }
    }
    if (pol->issuer) {
        v = json_object_get(root, "iss");
        if (!json_is_string(v) || strcmp(json_string_value(v), pol->issuer) != 0) {
            fail(e, INFERGW_REASON_BAD_CLAIMS,
                 "JWT issuer (iss) is not the one this gateway "
                 "accepts");
            goto out;
        }
    }
    if (pol->audience && !audience_matches(json_object_get(root, "aud"), pol->audience)) {
        fail(e, INFERGW_REASON_BAD_CLAIMS, "JWT audience (aud) does not include this gateway's");
        goto out;
    }
    v = json_object_get(root, pol->tenant_claim);
    if (!json_is_string(v) || json_string_length(v) == 0 ||
        json_string_length(v) > JWT_TENANT_MAX) {
        fail(e, INFERGW_REASON_BAD_CLAIMS,
             "JWT has no tenant claim (a 1..128-byte string in the configured claim)");
        goto out;
    }
    memcpy(c->tenant, json_string_value(v), json_string_length(v));
    c->tenant[json_string_length(v)] = '\0';
    c->exp = exp;
    rc = 0;
out:
    json_decref(root);
    return rc;
}

/* --- signatures ------------------------------------------------------------------ */

/* Converts a JWS ES256 signature (r||s, 32 bytes each) to DER. Returns the
 * DER length, or 0. */
static size_t es256_to_der(const uint8_t *sig, uint8_t *der, size_t cap)
{
    ECDSA_SIG *es = ECDSA_SIG_new();
    BIGNUM *r = BN_bin2bn(sig, 32, NULL);
    BIGNUM *s = BN_bin2bn(sig + 32, 32, NULL);
    size_t n = 0;
    if (es && r && s && ECDSA_SIG_set0(es, r, s) == 1) {
        r = s = NULL; /* owned by es now */
        int len = i2d_ECDSA_SIG(es, NULL);
        if (len > 0 && (size_t)len <= cap) {
            uint8_t *p = der;
            n = (size_t)i2d_ECDSA_SIG(es, &p);
        }
    }
    BN_free(r);
    BN_free(s);
    ECDSA_SIG_free(es);
    return n;
}

int jwt_verify_sig(const struct jwt_key *k, enum jwt_alg alg, const uint8_t *input, size_t inlen,
                   const uint8_t *sig, size_t siglen)
{
    if (alg != k->alg)
        return 0;
    if (alg == JWT_ALG_HS256) {
        uint8_t mac[EVP_MAX_MD_SIZE];
        unsigned int maclen = 0;
        if (siglen != 32 || !k->secret ||
            !HMAC(EVP_sha256(), k->secret, (int)k->secret_len, input, inlen, mac, &maclen) ||
            maclen != 32)
            return 0;
        return CRYPTO_memcmp(mac, sig, 32) == 0;
    }
    uint8_t der[80];
    if (alg == JWT_ALG_ES256) {
        if (siglen != 64 || !(siglen = es256_to_der(sig, der, sizeof(der))))
            return 0;
        sig = der;
    } else if (alg != JWT_ALG_RS256 || siglen == 0) {
        return 0;
    }
    EVP_MD_CTX *ctx = EVP_MD_CTX_new();
    int ok = ctx && k->pkey && EVP_DigestVerifyInit(ctx, NULL, EVP_sha256(), NULL, k->pkey) == 1 &&
             EVP_DigestVerify(ctx, sig, siglen, input, inlen) == 1;
    EVP_MD_CTX_free(ctx);
    return ok;
}

const struct jwt_key *jwt_keyset_find(const struct jwt_keyset *ks, const struct jwt_header *h,
                                      struct jwt_error *e)
{
    if (h->alg == JWT_ALG_NONE) {
        fail(e, INFERGW_REASON_BAD_ALGORITHM, "JWT alg 'none' is refused");
        return NULL;
    }
    if (h->alg == JWT_ALG_UNSUPPORTED) {
        fail(e, INFERGW_REASON_BAD_ALGORITHM,
             "JWT alg not supported (this gateway verifies HS256, RS256, ES256)");
        return NULL;
    }
    const struct jwt_key *found = NULL;
    for (size_t i = 0; i < ks->n; i++) {
        const struct jwt_key *k = &ks->keys[i];
        if (h->has_kid) {
            if (strcmp(k->kid, h->kid) != 0)
                continue;
            if (k->alg != h->alg) {
                fail(e, INFERGW_REASON_BAD_ALGORITHM,
                     "JWT alg does not fit the type of the key its kid names");
                return NULL;
            }
            return k;
        }
        if (k->alg != h->alg)
            continue;
        if (found) {
            fail(e, INFERGW_REASON_UNKNOWN_KEY,
                 "JWT has no kid and several configured keys fit its alg");
            return NULL;
        }
        found = k;
    }
    if (!found)
        fail(e, INFERGW_REASON_UNKNOWN_KEY,
             h->has_kid ? "JWT kid names no configured key"
                        : "JWT has no kid and no configured key fits its alg");
    return found;
}

int jwt_verify(const struct jwt_keyset *ks, const struct jwt_policy *pol, const char *tok,
               size_t len, int64_t now, struct jwt_claims *c, struct jwt_error *e)
{
    struct jwt_parts p;
    if (jwt_split(tok, len, &p) < 0)
        return fail(e, INFERGW_REASON_MALFORMED,
                    "JWT malformed: expected header.payload.signature");
    /* Decoded parts are at most 3/4 of a token of JWT_MAX_TOKEN bytes. */
    uint8_t buf[JWT_MAX_TOKEN / 4 * 3 + 3];
    size_t n;
    struct jwt_header h;
    if (jwt_b64url_decode(p.header, p.header_len, buf, sizeof(buf), &n) < 0)
        return fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: header is not base64url");
    if (jwt_parse_header(buf, n, &h, e) < 0)
        return -1;
    const struct jwt_key *k = jwt_keyset_find(ks, &h, e);
    if (!k)
        return -1;
    if (jwt_b64url_decode(p.sig, p.sig_len, buf, sizeof(buf), &n) < 0)
        return fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: signature is not base64url");
    if (!jwt_verify_sig(k, h.alg, (const uint8_t *)tok, p.signed_len, buf, n))
        return fail(e, INFERGW_REASON_BAD_SIGNATURE, "JWT signature does not verify");
    if (jwt_b64url_decode(p.payload, p.payload_len, buf, sizeof(buf), &n) < 0)
        return fail(e, INFERGW_REASON_MALFORMED, "JWT malformed: payload is not base64url");
    return jwt_check_claims(buf, n, pol, now, c, e);
}

/* --- keys -------------------------------------------------------------------------- */

int jwt_keyset_add(struct jwt_keyset *ks, const struct jwt_key *k)
{
    struct jwt_key *nk = jwt_zalloc((ks->n + 1) * sizeof(*nk));
    if (!nk)
        return -1;
    if (ks->n)
        memcpy(nk, ks->keys, ks->n * sizeof(*nk));
    nk[ks->n] = *k;
    jwt_free(ks->keys);
    ks->keys = nk;
    ks->n++;
    return 0;
}

static void key_clear(struct jwt_key *k)
{
    EVP_PKEY_free(k->pkey);
    if (k->secret) {
        OPENSSL_cleanse(k->secret, k->secret_len);
        jwt_free(k->secret);
    }
    memset(k, 0, sizeof(*k));
}

void jwt_keyset_free(struct jwt_keyset *ks)
{
    for (size_t i = 0; i < ks->n; i++)
        key_clear(&ks->keys[i]);
    jwt_free(ks->keys);
    ks->keys = NULL;
    ks->n = 0;
}

/* The algorithm a public key verifies: RS256 for RSA >= 2048 bits, ES256
 * for EC on P-256; else JWT_ALG_UNSUPPORTED. */
static enum jwt_alg pkey_alg(EVP_PKEY *pk)
{
    if (EVP_PKEY_is_a(pk, "RSA"))
        return EVP_PKEY_get_bits(pk) >= 2048 ? JWT_ALG_RS256 : JWT_ALG_UNSUPPORTED;
    if (EVP_PKEY_is_a(pk, "EC")) {
        char group[64];
        size_t gl = 0;
        if (EVP_PKEY_get_utf8_string_param(pk, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof(group),
                                           &gl) == 1 &&
            (!strcmp(group, "prime256v1") || !strcmp(group, "P-256")))
            return JWT_ALG_ES256;
    }
    return JWT_ALG_UNSUPPORTED;
}

/* A base64url member of <jwk> decoded into a fresh buffer. */
static uint8_t *jwk_bytes(json_t *jwk, const char *name, size_t *len)
{
    json_t *v = json_object_get(jwk, name);
    if (!json_is_string(v))
        return NULL;
    size_t sl = json_string_length(v);
    uint8_t *out = jwt_zalloc(sl / 4 * 3 + 3);
    if (out && jwt_b64url_decode(json_string_value(v), sl, out, sl / 4 * 3 + 3, len) == 0 &&
        *len > 0)
        return out;
    jwt_free(out);
    return NULL;
}

static EVP_PKEY *pkey_fromdata(const char *type, OSSL_PARAM_BLD *bld)
{
    OSSL_PARAM *params = OSSL_PARAM_BLD_to_param(bld);
    EVP_PKEY_CTX *ctx = EVP_PKEY_CTX_new_from_name(NULL, type, NULL);
    EVP_PKEY *pk = NULL;
    if (!params || !ctx || EVP_PKEY_fromdata_init(ctx) != 1 ||
        EVP_PKEY_fromdata(ctx, &pk, EVP_PKEY_PUBLIC_KEY, params) != 1)
        pk = NULL;
    EVP_PKEY_CTX_free(ctx);
    OSSL_PARAM_free(params);
    return pk;
}

/* One JWK into <k>. Returns 0 or -1 with <err>. */
static int jwk_load(json_t *jwk, struct jwt_key *k, char *err, size_t errlen)
{
    memset(k, 0, sizeof(*k));
    json_t *kty = json_object_get(jwk, "kty");
    json_t *kid = json_object_get(jwk, "kid");
    json_t *alg = json_object_get(jwk, "alg");
    json_t *use = json_object_get(jwk, "use");
    if (!json_is_string(kty)) {
        snprintf(err, errlen, "a JWK has no kty");
        return -1;
    }
    if (use && (!json_is_string(use) || strcmp(json_string_value(use), "sig") != 0)) {
        snprintf(err, errlen, "a JWK has use other than \"sig\"");
        return -1;
    }
    if (kid) {
        if (!json_is_string(kid) || json_string_length(kid) == 0 ||
            json_string_length(kid) > JWT_KID_MAX) {
            snprintf(err, errlen, "a JWK kid is not a 1..127-byte string");
            return -1;
        }
        snprintf(k->kid, sizeof(k->kid), "%s", json_string_value(kid));
    }
    const char *t = json_string_value(kty);
    size_t l1 = 0, l2 = 0;
    uint8_t *b1 = NULL, *b2 = NULL;
    OSSL_PARAM_BLD *bld = NULL;
    BIGNUM *n = NULL, *e = NULL;
    int rc = -1;
    if (!strcmp(t, "oct")) {
        k->alg = JWT_ALG_HS256;
        k->secret = jwk_bytes(jwk, "k", &k->secret_len);
        if (!k->secret || k->secret_len < 32) {
            snprintf(err, errlen, "oct JWK '%s': k must be a base64url secret of >= 32 bytes",
                     k->kid);
            goto out;
        }
    } else if (!strcmp(t, "RSA")) {
        k->alg = JWT_ALG_RS256;
        b1 = jwk_bytes(jwk, "n", &l1);
        b2 = jwk_bytes(jwk, "e", &l2);
        bld = OSSL_PARAM_BLD_new();
        if (!b1 || !b2 || !bld || !(n = BN_bin2bn(b1, (int)l1, NULL)) ||
            !(e = BN_bin2bn(b2, (int)l2, NULL)) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_N, n) ||
            !OSSL_PARAM_BLD_push_BN(bld, OSSL_PKEY_PARAM_RSA_E, e) ||
            !(k->pkey = pkey_fromdata("RSA", bld))) {
            snprintf(err, errlen, "RSA JWK '%s': bad n or e", k->kid);
            goto out;
        }
    } else if (!strcmp(t, "EC")) {
        k->alg = JWT_ALG_ES256;
        json_t *crv = json_object_get(jwk, "crv");
        b1 = jwk_bytes(jwk, "x", &l1);
        b2 = jwk_bytes(jwk, "y", &l2);
        uint8_t pub[65];
        if (!json_is_string(crv) || strcmp(json_string_value(crv), "P-256") != 0) {
            snprintf(err, errlen, "EC JWK '%s': only crv P-256 (ES256) is supported", k->kid);
            goto out;
        }
        if (!b1 || !b2 || l1 != 32 || l2 != 32) {
            snprintf(err, errlen, "EC JWK '%s': x and y must be 32 bytes each", k->kid);
            goto out;
        }
        pub[0] = 0x04;
        memcpy(pub + 1, b1, 32);
        memcpy(pub + 33, b2, 32);
        bld = OSSL_PARAM_BLD_new();
        if (!bld ||
            !OSSL_PARAM_BLD_push_utf8_string(bld, OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) ||
            !OSSL_PARAM_BLD_push_octet_string(bld, OSSL_PKEY_PARAM_PUB_KEY, pub, sizeof(pub)) ||
            !(k->pkey = pkey_fromdata("EC", bld))) {
            snprintf(err, errlen, "EC JWK '%s': x, y is not a point of P-256", k->kid);
            goto out;
        }
    } else {
        snprintf(err, errlen, "JWK kty '%s' not supported (oct, RSA, EC)", t);
        goto out;
    }
    if (k->pkey && pkey_alg(k->pkey) != k->alg) {
        snprintf(err, errlen, "JWK '%s': RSA keys must have >= 2048 bits", k->kid);
        goto out;
    }
    if (alg && (!json_is_string(alg) || alg_of(json_string_value(alg)) != k->alg)) {
        snprintf(err, errlen,
                 "JWK '%s': alg does not fit kty %s (oct: HS256, RSA: RS256, EC: ES256)", k->kid,
                 t);
        goto out;
    }
    rc = 0;
out:
    BN_free(n);
    BN_free(e);
    OSSL_PARAM_BLD_free(bld);
    jwt_free(b1);
    jwt_free(b2);
    if (rc < 0)
        key_clear(k);
    return rc;
}

static int load_jwks(struct jwt_keyset *ks, const char *path, const char *text, size_t len,
                     char *err, size_t errlen)
{
    json_error_t je;
    json_t *root = json_loadb(text, len, JSON_REJECT_DUPLICATES, &je);
    if (!json_is_object(root)) {
        snprintf(err, errlen, "%s: not a JSON object (line %d: %s)", path, je.line, je.text);
        json_decref(root);
        return -1;
    }
    json_t *keys = json_object_get(root, "keys");
    size_t before = ks->n, i;
    json_t *jwk;
    char kerr[200];
    if (!keys) { /* a single JWK */
        struct jwt_key k;
        if (jwk_load(root, &k, kerr, sizeof(kerr)) < 0)
            goto bad;
        if (jwt_keyset_add(ks, &k) < 0) {
            key_clear(&k);
            snprintf(kerr, sizeof(kerr), "out of memory");
            goto bad;
        }
    } else if (!json_is_array(keys) || json_array_size(keys) == 0) {
        snprintf(kerr, sizeof(kerr), "\"keys\" is not a non-empty array");
        goto bad;
    } else {
        json_array_foreach(keys, i, jwk)
        {
            struct jwt_key k;
            if (!json_is_object(jwk)) {
                snprintf(kerr, sizeof(kerr), "keys[%zu] is not an object", i);
                goto bad;
            }
            if (jwk_load(jwk, &k, kerr, sizeof(kerr)) < 0)
                goto bad;
            if (jwt_keyset_add(ks, &k) < 0) {
                key_clear(&k);
                snprintf(kerr, sizeof(kerr), "out of memory");
                goto bad;
            }
        }
    }
    json_decref(root);
    return 0;
bad:
    snprintf(err, errlen, "%s: %s", path, kerr);
    while (ks->n > before)
        key_clear(&ks->keys[--ks->n]);
    json_decref(root);
    return -1;
}

static int load_pem(struct jwt_keyset *ks, const char *path, const char *text, size_t len,
                    char *err, size_t errlen)
{
    BIO *bio = BIO_new_mem_buf(text, (int)len);
    EVP_PKEY *pk = bio ? PEM_read_bio_PUBKEY(bio, NULL, NULL, NULL) : NULL;
    BIO_free(bio);
    if (!pk) {
        snprintf(err, errlen, "%s: neither a JWKS (JSON) nor a PEM public key", path);
        return -1;
    }
    struct jwt_key k = {.pkey = pk, .alg = pkey_alg(pk)};
    if (k.alg == JWT_ALG_UNSUPPORTED) {
        snprintf(err, errlen,
                 "%s: only RSA (>= 2048 bits, RS256) and EC P-256 (ES256) public "
                 "keys are supported",
                 path);
        EVP_PKEY_free(pk);
        return -1;
    }
    const char *base = strrchr(path, '/');
    base = base ? base + 1 : path;
    size_t bl = strcspn(base, ".");
    if (bl > JWT_KID_MAX)
        bl = JWT_KID_MAX;
    memcpy(k.kid, base, bl);
    k.kid[bl] = '\0';
    if (jwt_keyset_add(ks, &k) < 0) {
        EVP_PKEY_free(pk);
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    return 0;
}

int jwt_keyset_load_file(struct jwt_keyset *ks, const char *path, char *err, size_t errlen)
{
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: %s", path, strerror(errno));
        return -1;
    }
    enum { MAX_FILE = 1 << 20 };
    char *text = jwt_zalloc(MAX_FILE + 1);
    size_t len = text ? fread(text, 1, MAX_FILE + 1, f) : 0;
    int ioerr = ferror(f);
    fclose(f);
    int rc = -1;
    if (!text)
        snprintf(err, errlen, "out of memory");
    else if (ioerr)
        snprintf(err, errlen, "%s: read error", path);
    else if (len > MAX_FILE)
        snprintf(err, errlen, "%s: larger than 1 MiB", path);
    else {
        size_t i = 0;
        while (i < len && (text[i] == ' ' || text[i] == '\n' || text[i] == '\r' || text[i] == '\t'))
            i++;
        rc = i < len && text[i] == '{' ? load_jwks(ks, path, text, len, err, errlen)
                                       : load_pem(ks, path, text, len, err, errlen);
    }
    if (text) {
        OPENSSL_cleanse(text, len);
        jwt_free(text);
    }
    return rc;
}
