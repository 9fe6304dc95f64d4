/* SPDX-License-Identifier: Apache-2.0 */
/* authdb — tenants and API-key records, an immutable part of a routes
 * snapshot (route.h: gw_routes.authdb).
 *
 * Built off the workers (by the control plane from the Redis keys
 * infergw:tenant:<name> and infergw:apikey:<sha256-hex>, or at start from
 * --tenants/--api-keys files when there is no Redis), validated as it is
 * loaded, and read by the workers without locks. API keys are held only as
 * their SHA-256 hashes. Lookups are constant time in the key hash compare.
 */
#ifndef INFERGW_AUTHDB_H
#define INFERGW_AUTHDB_H

#include <stddef.h>
#include <stdint.h>

#define GW_TENANT_NAME_MAX  128
#define GW_TENANT_RPS_MIN   0.001 /* smallest rps other than 0 */
#define GW_TENANT_RPS_MAX   10000000.0
#define GW_TENANT_BURST_MAX 10000000u
#define GW_AUTHDB_HASH_HEX  64 /* lowercase hex of a SHA-256 */

/* Return codes of the builders below. */
#define GW_AUTHDB_EINVAL (-22) /* a field is not valid (err says which and why) */
#define GW_AUTHDB_ENOMEM (-12)
#define GW_AUTHDB_EEXIST (-17) /* a record with this name or hash is already there */
#define GW_AUTHDB_ENOENT (-2)  /* an API key names a tenant that is not there */

struct gw_tenant {
    char *name;
    char **models; /* allowed pools */
    size_t nmodels;
    int all_models; /* models = "*" */
    double rps;     /* 0 = unlimited */
    uint32_t burst; /* bucket size; 0 = max(1, rps) */
};

struct gw_authdb;

/* The tenant named <name>, or NULL. Borrowed, valid as long as the snapshot
 * holding <db> is. <db> may be NULL (no records loaded): returns NULL. */
const struct gw_tenant *gw_authdb_tenant(const struct gw_authdb *db, const char *name);

/* The API-key record of the key whose SHA-256 is <sha256>: returns its
 * tenant name (borrowed like above) and sets *expires_at (unix seconds, 0 =
 * never), or returns NULL when no record matches. <db> may be NULL. */
const char *gw_authdb_apikey(const struct gw_authdb *db, const uint8_t sha256[32],
                             int64_t *expires_at);

/* Whether tenant <t> may call pool <model> (<len> bytes). */
int gw_tenant_allows_model(const struct gw_tenant *t, const char *model, size_t len);

/* ---- Building a db (one thread; the db is read-only once published) ---- */

/* An empty db. Returns NULL when out of memory. Caller frees with
 * gw_authdb_free(), or hands it to a snapshot (gw_routes.authdb), which
 * frees it with the snapshot. */
struct gw_authdb *gw_authdb_new(void);
void gw_authdb_free(struct gw_authdb *db); /* NULL is a no-op */

size_t gw_authdb_ntenants(const struct gw_authdb *db);
size_t gw_authdb_napikeys(const struct gw_authdb *db);
/* The <i>th tenant in insertion order (i < gw_authdb_ntenants), borrowed. */
const struct gw_tenant *gw_authdb_tenant_at(const struct gw_authdb *db, size_t i);

/* Adds tenant <name> from the text of its fields, as they are stored in
 * Redis (infergw:tenant:<name>) and in --tenants files: <models> "a,b" (pool
 * names, spaces around items ignored) or "*", required; <rps> a decimal
 * number, 0 (unlimited) or GW_TENANT_RPS_MIN..GW_TENANT_RPS_MAX, NULL = 0;
 * <burst> an integer 0..GW_TENANT_BURST_MAX, NULL = 0. Returns 0,
 * GW_AUTHDB_EINVAL with *bad_field set to "name", "models", "rps" or "burst"
 * and the reason in <err>, GW_AUTHDB_EEXIST or GW_AUTHDB_ENOMEM. */
int gw_authdb_add_tenant(struct gw_authdb *db, const char *name, const char *models,
                         const char *rps, const char *burst, const char **bad_field, char *err,
                         size_t errlen);
/* Adds a copy of <t> (a record of another db: the last good one). Returns
 * 0, GW_AUTHDB_EEXIST or GW_AUTHDB_ENOMEM. */
int gw_authdb_copy_tenant(struct gw_authdb *db, const struct gw_tenant *t);
/* Adds the API key whose SHA-256 is <sha256>, for tenant <tenant> (which
 * must already be in <db>), expiring at <expires_at> (unix seconds, 0 =
 * never). Returns 0, GW_AUTHDB_ENOENT, GW_AUTHDB_EEXIST or GW_AUTHDB_ENOMEM. */
int gw_authdb_add_apikey(struct gw_authdb *db, const uint8_t sha256[32], const char *tenant,
                         int64_t expires_at);

/* ---- Field syntax, shared with infergw-ctl ---- */

/* A tenant name: 1..GW_TENANT_NAME_MAX printable ASCII bytes, no space,
 * no ','. Returns 1 or 0. */
int gw_tenant_name_valid(const char *s);
/* Validates a models value (see gw_authdb_add_tenant). Returns 0, or -1
 * with the reason in <err>. */
int gw_tenant_models_check(const char *s, char *err, size_t errlen);
/* Parse rps / burst / expires_at (unix seconds, 1..2^53) text. Return 0, or
 * -1 with the reason in <err> (<out> untouched). */
int gw_tenant_parse_rps(const char *s, double *out, char *err, size_t errlen);
int gw_tenant_parse_burst(const char *s, uint32_t *out, char *err, size_t errlen);
int gw_apikey_parse_expires(const char *s, int64_t *out, char *err, size_t errlen);
/* Exactly GW_AUTHDB_HASH_HEX lowercase hex digits (<len> bytes) into
 * <out>. Returns 0 or -1. */
int gw_apikey_hash_from_hex(const char *hex, size_t len, uint8_t out[32]);
/* Writes <sha256> as lowercase hex into <out> (65 bytes with the NUL). */
void gw_apikey_hash_to_hex(const uint8_t sha256[32], char out[GW_AUTHDB_HASH_HEX + 1]);
/* SHA-256 of the key text <key> (<len> bytes). */
void gw_apikey_hash(const char *key, size_t len, uint8_t out[32]);

/* ---- --tenants and --api-keys files ---- */

/* One record per line; blank lines and lines starting with '#' are skipped;
 * fields are separated by spaces or tabs:
 *   tenants:   <name> models=<a,b|*> [rps=<n>] [burst=<n>]
 *   api keys:  <sha256-hex of the key> tenant=<name> [expires_at=<unix s>]
 * (the field names and values of the Redis records). An unknown field, a
 * repeated record or a bad value is an error. */
enum gw_authdb_file { GW_AUTHDB_TENANTS, GW_AUTHDB_APIKEYS };

/* Adds the records of <text> (<len> bytes, the content of file <fname>, used
 * in messages) to <db>. API keys need their tenants loaded first. Returns 0,
 * or a GW_AUTHDB_* code with "<fname>:<line>: <reason>" in <err>. */
int gw_authdb_load_text(struct gw_authdb *db, enum gw_authdb_file kind, const char *text,
                        size_t len, const char *fname, char *err, size_t errlen);
/* Reads <tenants_path> then <keys_path> (either may be NULL or "") into a
 * new db. Returns the db, or NULL with the reason (file:line) in <err>. */
struct gw_authdb *gw_authdb_load_files(const char *tenants_path, const char *keys_path, char *err,
                                       size_t errlen);

#endif
