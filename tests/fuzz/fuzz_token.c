/* SPDX-License-Identifier: Apache-2.0 */
/* Fuzz target for token parsing: the "authorization: Bearer" value
 * (bearer.c), the JWT split, base64url decoding, the header and claims JSON
 * and the whole verification (plugins/jwt/jwt.c) against a fixed keyset (an
 * HS256 secret and an ES256 key), so that seeds signed with the secret
 * reach the claims checks after the signature.
 *
 * Checks: an accepted bearer token lies inside the input, is 1 to
 * GW_BEARER_MAX bytes of the token68 alphabet; base64url decoding accepts
 * only canonical text, so what it decodes encodes back to the same text,
 * and never writes past its room; a verification that succeeds names a
 * tenant of 1..128 bytes with no NUL and an exp; a failure has a reason in
 * range and a message, and the message never contains the token. */
#include "fuzz.h"

#include <openssl/evp.h>
#include <string.h>

#include "auth/bearer.h"
#include "infergw/plugin.h"
#include "jwt.h"

/* The HS256 secret seeds are signed with (tests/fuzz/corpus/fuzz_token). */
static const uint8_t secret[32] = "infergw-fuzz-token-hs256-secret!";
static struct jwt_keyset ks;

static void setup(void)
{
    if (ks.n)
        return;
    struct jwt_key k = {.alg = JWT_ALG_HS256, .secret_len = sizeof(secret)};
    snprintf(k.kid, sizeof(k.kid), "fz");
    k.secret = malloc(sizeof(secret));
    FUZZ_CHECK(k.secret);
    memcpy(k.secret, secret, sizeof(secret));
    FUZZ_CHECK(jwt_keyset_add(&ks, &k) == 0);
    struct jwt_key e = {.alg = JWT_ALG_ES256};
    snprintf(e.kid, sizeof(e.kid), "ec");
    e.pkey = EVP_PKEY_Q_keygen(NULL, NULL, "EC", "P-256");
    FUZZ_CHECK(e.pkey);
    FUZZ_CHECK(jwt_keyset_add(&ks, &e) == 0);
}

static const char alphabet[] = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_";

/* Decodes <in> and, when accepted, checks the round trip. */
static void check_b64(const char *in, size_t len)
{
    static uint8_t out[JWT_MAX_TOKEN];
    static char back[JWT_MAX_TOKEN + 4];
    size_t n = 0, cap = len / 4 * 3 + 2;
    if (cap > sizeof(out))
        cap = sizeof(out);
    if (jwt_b64url_decode(in, len, out, cap, &n) < 0)
        return;
    FUZZ_CHECK(n <= cap && n == len / 4 * 3 + (len % 4 ? len % 4 - 1 : 0));
    size_t o = 0;
    for (size_t i = 0; i < n; i += 3) {
        uint32_t v = (uint32_t)out[i] << 16;
        if (i + 1 < n)
            v |= (uint32_t)out[i + 1] << 8;
        if (i + 2 < n)
            v |= out[i + 2];
        size_t chars = i + 2 < n ? 4 : i + 1 < n ? 3 : 2;
        for (size_t c = 0; c < chars; c++)
            back[o++] = alphabet[(v >> (18 - 6 * c)) & 63];
    }
    FUZZ_CHECK(o == len && memcmp(back, in, len) == 0);
}

static void check_token(const char *tok, size_t len)
{
    struct jwt_parts p;
    if (jwt_split(tok, len, &p) == 0) {
        FUZZ_CHECK(p.header == tok && p.header_len > 0 && p.payload_len > 0);
        FUZZ_CHECK(p.header_len + p.payload_len + p.sig_len + 2 == len);
        FUZZ_CHECK(p.signed_len == p.header_len + 1 + p.payload_len);
        check_b64(p.header, p.header_len);
        check_b64(p.payload, p.payload_len);
        check_b64(p.sig, p.sig_len);
    }
    static const struct jwt_policy pol = {
        .issuer = "fuzz-issuer", .audience = "fuzz-aud", .tenant_claim = "sub", .leeway_s = 30};
    struct jwt_claims c;
    struct jwt_error e = {0};
    if (jwt_verify(&ks, &pol, tok, len, 1700000000, &c, &e) == 0) {
        size_t tl = strlen(c.tenant);
        FUZZ_CHECK(tl >= 1 && tl <= JWT_TENANT_MAX);
    } else {
        FUZZ_CHECK(e.reason >= 0 && e.reason < INFERGW_REASON_COUNT_PLUGIN);
        FUZZ_CHECK(e.message && e.message[0]);
        FUZZ_CHECK(len < 8 || !memmem(e.message, strlen(e.message), tok, len));
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    setup();
    const char *in = (const char *)data;
    const char *tok;
    size_t toklen;
    if (gw_bearer_parse(in, size, &tok, &toklen) == 0) {
        FUZZ_CHECK(tok > in && tok + toklen <= in + size);
        FUZZ_CHECK(toklen >= 1 && toklen <= GW_BEARER_MAX);
        for (size_t i = 0; i < toklen; i++)
            FUZZ_CHECK(tok[i] > 0x20 && tok[i] < 0x7f && tok[i] != ' ');
        check_token(tok, toklen);
    } else if (size <= JWT_MAX_TOKEN) {
        check_token(in, size);
    }
    /* The JSON parsers on raw bytes, whatever the signature. */
    struct jwt_header hd;
    struct jwt_error e;
    if (jwt_parse_header(data, size, &hd, &e) == 0)
        FUZZ_CHECK(!hd.has_kid || (strlen(hd.kid) >= 1 && strlen(hd.kid) <= JWT_KID_MAX));
    static const struct jwt_policy any = {.tenant_claim = "sub", .leeway_s = 0};
    struct jwt_claims c;
    if (jwt_check_claims(data, size, &any, 1700000000, &c, &e) == 0)
        FUZZ_CHECK(strlen(c.tenant) >= 1 && strlen(c.tenant) <= JWT_TENANT_MAX);
    if (size <= JWT_MAX_TOKEN)
        check_b64(in, size);
    return 0;
}
