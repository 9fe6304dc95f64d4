/* SPDX-License-Identifier: Apache-2.0 */
/* ctl — infergw-ctl's Redis side, shared by its command files: the
 * operator CLI edits the pools, rings, tunables and replica states that the
 * gateways load from Redis (keys built by control/keys.h, listed in
 * docs/redis-keys.md), and shows what the gateways will make of them.
 *
 * Every write is one Lua script run with EVAL: it checks what must exist
 * (the pool, the replica, the tenant), bumps <prefix>version and changes the keys, all
 * atomically, so a gateway never loads half a change and two operators
 * never interleave. INCR comes right after the checks and before any other
 * write: Redis does not roll a script back, and INCR is the only write that
 * can fail on a value (a version that is not a number), so failing there
 * leaves everything untouched. After the script the new version is
 * PUBLISHed on <prefix>changed; if that message is lost the gateways still
 * see the version change at their next poll. Ring members are computed here
 * (ring.h's gw_hash32) and passed to the script; the script finds the
 * members a replica already has by their "<host:port>#" prefix, which no
 * other replica's members share because '#' cannot occur in an address.
 *
 * The scripts are the files lua/<name>.lua, embedded at build time as
 * ctl_lua_<name> (embed_lua.cmake) and tested on their own against a real
 * redis-server (tests/integration/python/test_lua.py); each file's comment
 * gives its KEYS, ARGV and replies.
 *
 * Files: ctl_main.c (main, dispatch), ctl_redis.c (this header's helpers:
 * messages, replies, EVAL arguments, publish/report, SCAN of records),
 * ctl_pool.c (pool, conf), ctl_replica.c (replica add/remove/weight/drain,
 * ring show, replica list, route), ctl_prompt.c (route --prompt-file), ctl_tenant.c (tenant, key),
 * ctl_lease.c (replica register, gc), ctl_status.c (status, version), ctl_dump.c (dump, restore).
 * Argument checks, ring and conf computations, output formats and the dump document live in
 * ctlargs.c, ctlview.c and ctldoc.c (pure, unit-tested); the ctl_*.c files only talk to Redis.
 */
#ifndef INFERGW_CTL_H
#define INFERGW_CTL_H

#include <hiredis/hiredis.h>
#include <jansson.h>
#include <stddef.h>
#include <stdint.h>

#include "control/keys.h"
#include "control/redisconn.h"
#include "ctlargs.h"

/* Key buffers (keys.h builds every key; the operands are length-checked
 * by ctlargs.c: prefix <= 127, pool <= 255, replica <= 299, so they fit). */
#define KEYLEN GW_KEY_LEN

/* One run of infergw-ctl: its arguments, its Redis URL and connection. */
struct ctl {
    const struct ctl_args *a;
    const struct gw_redis_url *url;
    redisContext *c;
};

/* --- the Lua scripts (lua/<name>.lua, NUL-terminated) ------------------------------- */

extern const char ctl_lua_pool_add[], ctl_lua_pool_remove[], ctl_lua_replica_set[],
    ctl_lua_replica_state[], ctl_lua_conf_set[], ctl_lua_conf_unset[], ctl_lua_read_ring[],
    ctl_lua_read_conf[], ctl_lua_tenant_add[], ctl_lua_tenant_remove[], ctl_lua_key_create[],
    ctl_lua_key_revoke[], ctl_lua_register[], ctl_lua_deregister[], ctl_lua_gc[], ctl_lua_restore[];

/* --- messages and replies (ctl_redis.c) ------------------------------------------------ */

/* Prints "infergw-ctl: <message>" on stderr; returns <code>. */
int ctl_say(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));
/* Checks a reply: NULL (I/O error) and error replies are reported (NULL). */
redisReply *ctl_checked(struct ctl *x, redisReply *r);
/* One command (hiredis format), checked. */
redisReply *ctl_command(struct ctl *x, const char *fmt, ...);
/* Whether the first element of script reply <r> is the string <s>. */
int ctl_reply_is(const redisReply *r, const char *s);
/* Integer element <i> of a script reply (0 when absent). */
long long ctl_reply_int(const redisReply *r, size_t i);
/* Announces version <v> on <prefix>changed after a write (a failure is
 * only a warning: gateways also poll the version). */
void ctl_publish(struct ctl *x, long long v);
/* Reports the outcome of a write: <version> < 0 when nothing changed.
 * <extra> (may be NULL, taken) carries the command's fields for --json.
 * Returns CTL_EXIT_OK. */
int ctl_report(struct ctl *x, long long version, json_t *extra, const char *fmt, ...)
    __attribute__((format(printf, 4, 5)));
/* "pool P does not exist; ..." on stderr; returns CTL_EXIT_NOTFOUND. */
int ctl_no_pool(const char *pool);
/* qsort comparison of two const char *. */
int ctl_cmp_str(const void *a, const void *b);
/* Warns when <addr>'s host does not resolve here (gateways that cannot
 * resolve it refuse the pool's new ring). */
void ctl_warn_unresolvable(const char *addr, const char *pool);

/* --- EVAL arguments (ctl_redis.c) ----------------------------------------------------- */

/* Arguments of one EVAL, copied. */
struct ctl_eval {
    char **v;
    size_t *len;
    size_t n, cap;
    int oom;
};

/* Appends a copy of <len> bytes at <s> (out of memory: remembered, and
 * ctl_ea_run refuses to run). */
void ctl_ea_push(struct ctl_eval *e, const char *s, size_t len);
void ctl_ea_str(struct ctl_eval *e, const char *s);
void ctl_ea_free(struct ctl_eval *e);
/* Starts "EVAL <script> <nkeys>". */
void ctl_ea_eval(struct ctl_eval *e, const char *script, int nkeys);
/* Runs the EVAL and frees <e>. Returns an array reply whose first element
 * is an integer or status text, or NULL (reported). */
redisReply *ctl_ea_run(struct ctl *x, struct ctl_eval *e);
/* Pushes the head and the tail of a pool's ring key (keys.h), for scripts
 * that look at every pool's ring. */
void ctl_ea_ring_head(struct ctl *x, struct ctl_eval *e);
/* Pushes the ring ZADD arguments of <replica> with <weight> vnodes: score
 * (its token, gw_hash32 of the member), then member "<replica>#<i>"
 * (ctl_replica.c). */
void ctl_ea_ring_members(struct ctl_eval *e, const char *replica, uint32_t weight);

/* --- records found by SCAN (ctl_redis.c) ------------------------------------------- */

/* Every key matching "<prefix><rest>" (SCAN, never KEYS) with its HGETALL
 * reply, sorted by key name and without the duplicates SCAN may return. */
struct ctl_records {
    char **names;
    redisReply **hashes; /* NULL where the key is gone or not a hash */
    size_t n, cap;
};

void ctl_records_free(struct ctl_records *r);
/* Appends a copy of name <s>. Returns 0, or -1 when out of memory. */
int ctl_records_push(struct ctl_records *r, const char *s, size_t len);
/* Collects the names of the keys of <family> whose name starts with <head>,
 * then reads the hashes pipelined. Returns CTL_EXIT_OK or CTL_EXIT_REDIS
 * (reported). */
int ctl_scan_records(struct ctl *x, enum gw_key_family family, const char *head,
                     struct ctl_records *out);
/* The value of <field> in an HGETALL reply (NULL reply or field: NULL). */
const char *ctl_field_of(const redisReply *h, const char *field);
/* The name part of record key <name> ("" when it is not of <family>). */
const char *ctl_record_suffix(struct ctl *x, const char *name, enum gw_key_family family);

/* --- the commands: each returns a CTL_EXIT_* code, messages printed ------------------ */

/* ctl_pool.c */
int ctl_run_pool_add(struct ctl *x);
int ctl_run_pool_remove(struct ctl *x);
int ctl_run_pool_list(struct ctl *x);
int ctl_run_conf_get(struct ctl *x);
/* conf set (<set> = 1) or conf unset (0). */
int ctl_run_conf_write(struct ctl *x, int set);

/* ctl_replica.c */
enum ctl_set_mode { CTL_SET_ADD, CTL_SET_WEIGHT, CTL_SET_REMOVE };
int ctl_run_replica_set(struct ctl *x, enum ctl_set_mode mode);
/* replica drain (<drain> = 1) or undrain (0). */
int ctl_run_replica_state(struct ctl *x, int drain);
/* Sets <replica>'s state ("drain" or "active") with the replica_state
 * script: the reply ("noreplica", "same", or "ok" and the new version), or
 * NULL on a Redis error (reported). Shared by drain/undrain and register's
 * deregistration. */
redisReply *ctl_replica_state_set(struct ctl *x, const char *replica, const char *state);
/* ring show, replica list, route. */
int ctl_run_show_ring(struct ctl *x);
/* route <pool> --prompt-file F on the loaded ring <r> with its drain flags
 * (ctl_prompt.c). */
struct gw_ring;
int ctl_route_prompt(struct ctl *x, const struct gw_ring *r, const int *drain);

/* ctl_tenant.c */
int ctl_run_tenant_add(struct ctl *x);
int ctl_run_tenant_remove(struct ctl *x);
int ctl_run_tenant_show(struct ctl *x);
int ctl_run_key_create(struct ctl *x);
int ctl_run_key_revoke(struct ctl *x);
int ctl_run_key_list(struct ctl *x);
/* key hash: no Redis. */
int ctl_run_key_hash(const struct ctl_args *a);

/* ctl_lease.c */
int ctl_run_replica_register(struct ctl *x);
int ctl_run_gc(struct ctl *x);

/* ctl_status.c */
int ctl_run_status(struct ctl *x);
int ctl_run_version(struct ctl *x);

/* ctl_dump.c */
int ctl_run_dump(struct ctl *x);
int ctl_run_restore(struct ctl *x);

#endif
