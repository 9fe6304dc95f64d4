/* SPDX-License-Identifier: Apache-2.0 */
/* keys — the one spelling of every Redis key of the control plane.
 *
 * The gateway's watcher (reader, and writer of its own health report) and
 * infergw-ctl (writer) build every key, SCAN pattern and channel name here;
 * no other file spells one. docs/redis-keys.md lists the same keys, and
 * tests/unit/test_keys.c pins each builder's output to that list. With the
 * default prefix "infergw:":
 *
 *   <prefix>pools                 SET    pool names
 *   <prefix>pool:<pool>:ring      ZSET   the pool's ring
 *   <prefix>pool:<pool>:conf      HASH   the pool's tunables
 *   <prefix>pool:<pool>:kv        STREAM the pool's KV-cache events
 *   <prefix>conf                  HASH   global tunables
 *   <prefix>replica:<host:port>   HASH   state = active | drain
 *   <prefix>version               STRING bumped by every write
 *   <prefix>changed               channel, the new version is published
 *   <prefix>tenant:<name>         HASH   a tenant
 *   <prefix>apikey:<sha256-hex>   HASH   an API key
 *   <prefix>lease:<host:port>     STRING a replica's lease
 *   <prefix>leased                SET    addresses with registrars
 *   <prefix>lease_gone            HASH   address -> time its lease was seen gone
 *   <prefix>gateway:<id>          HASH   a gateway's health report
 *
 * Every builder writes a NUL-terminated key into <buf> (<cap> bytes) and
 * returns 0, or -1 when it does not fit (then <buf> holds a truncated key,
 * or "" when even the prefix does not fit, and must not be used). Pure: no
 * allocation, no I/O.
 */
#ifndef INFERGW_KEYS_H
#define INFERGW_KEYS_H

#include <stddef.h>

/* Enough for every key of a prefix <= 127 bytes, a pool or field name <=
 * 255 bytes and an address or gateway id <= 299 bytes. */
#define GW_KEY_LEN 800

int gw_key_pools(char *buf, size_t cap, const char *prefix);
int gw_key_pool_ring(char *buf, size_t cap, const char *prefix, const char *pool);
int gw_key_pool_conf(char *buf, size_t cap, const char *prefix, const char *pool);
int gw_key_pool_kv(char *buf, size_t cap, const char *prefix, const char *pool);
int gw_key_conf(char *buf, size_t cap, const char *prefix);
int gw_key_replica(char *buf, size_t cap, const char *prefix, const char *addr);
int gw_key_version(char *buf, size_t cap, const char *prefix);
int gw_key_changed(char *buf, size_t cap, const char *prefix);
int gw_key_tenant(char *buf, size_t cap, const char *prefix, const char *name);
int gw_key_apikey(char *buf, size_t cap, const char *prefix, const char *hex);
int gw_key_lease(char *buf, size_t cap, const char *prefix, const char *addr);
int gw_key_leased(char *buf, size_t cap, const char *prefix);
int gw_key_lease_gone(char *buf, size_t cap, const char *prefix);
int gw_key_gateway(char *buf, size_t cap, const char *prefix, const char *id);

/* For Lua scripts that find keys by themselves (a replica on every pool's
 * ring, the leases of every leased address): the parts around the name, so
 * that head .. name .. tail is the key the builder above makes.
 *   gw_key_pool_ring_head:  "<prefix>pool:"  (tail GW_KEY_POOL_RING_TAIL)
 *   gw_key_lease_head:      "<prefix>lease:" (no tail) */
#define GW_KEY_POOL_RING_TAIL ":ring"
int gw_key_pool_ring_head(char *buf, size_t cap, const char *prefix);
int gw_key_lease_head(char *buf, size_t cap, const char *prefix);

/* The record families infergw-ctl and the watcher SCAN for (from 1, so
 * that no family is a null pointer constant passed for a string);
 * GW_KEY_REPLICA (replica states) only infergw-ctl dump/restore scans. */
enum gw_key_family { GW_KEY_TENANT = 1, GW_KEY_APIKEY, GW_KEY_GATEWAY, GW_KEY_REPLICA };

/* A SCAN MATCH pattern for the keys of <family> whose name starts with
 * <head> ("" = all): <prefix> with its glob characters (* ? [ ] \) escaped,
 * then "tenant:" (or "apikey:", "gateway:", "replica:"), <head> as given, and "*". */
int gw_key_scan(char *buf, size_t cap, const char *prefix, enum gw_key_family family,
                const char *head);

/* The name part of <key> ("acme" of "infergw:tenant:acme"), or NULL when
 * <key> does not start with <prefix> and the family's word. */
const char *gw_key_suffix(const char *key, const char *prefix, enum gw_key_family family);

#endif
