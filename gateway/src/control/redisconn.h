/* SPDX-License-Identifier: Apache-2.0 */
/* redisconn — reaching the Redis that holds infergw's control plane, shared
 * by the gateway's control-plane thread and infergw-ctl.
 *
 * URLs:  redis://[[user]:password@]host[:port][/db]
 *        sentinel://[[user]:password@]h1[:p1],h2[:p2],.../<master-name>[/db]
 * (the password is Redis's, used for AUTH on the data node; sentinels are
 * asked without one). Ports default to 6379 (redis://) and 26379 (sentinels);
 * an IPv6 address is written in brackets, "[::1]:6379"; a user name makes it
 * "AUTH user password" (Redis 6 ACLs). '@', '/', ':' and '%' inside the user
 * or password are percent-encoded ("%40"). At most GW_REDIS_MAX_HOSTS
 * sentinels; db 0..2147483647 (default 0).
 *
 * For sentinel URLs the master is found by asking each sentinel in turn
 * SENTINEL get-master-addr-by-name, and the node reached is checked with
 * ROLE to really be a master, so a client reconnecting after a failover
 * follows it. Blocking hiredis calls with timeouts: never used on a worker
 * thread. No error text written here ever contains the password.
 */
#ifndef INFERGW_REDISCONN_H
#define INFERGW_REDISCONN_H

#include <hiredis/hiredis.h>
#include <stddef.h>
#include <stdint.h>

#define GW_REDIS_MAX_HOSTS             8
#define GW_REDIS_DEFAULT_PREFIX        "infergw:"
#define GW_REDIS_DEFAULT_PORT          6379
#define GW_REDIS_DEFAULT_SENTINEL_PORT 26379
#define GW_REDIS_DEFAULT_TIMEOUT_MS    1000

struct gw_redis_url {
    int sentinel;
    char password[256]; /* "" = none */
    int db;
    size_t nhosts;
    struct {
        char host[256]; /* without brackets, "::1" */
        uint16_t port;
    } hosts[GW_REDIS_MAX_HOSTS];
    char master[128];   /* sentinel master name */
    char username[128]; /* "" = none: AUTH <password> */
};

/* Parses <url>. Returns 0, or -1 with the reason in <err> (out untouched).
 * Refuses: other schemes, an empty host, a bad or zero port, IPv6 without
 * brackets, more than one host for redis://, more than GW_REDIS_MAX_HOSTS
 * sentinels, a sentinel URL without a master name, a db that is not a
 * number, query strings, fields that do not fit the struct. */
int gw_redis_url_parse(const char *url, struct gw_redis_url *out, char *err, size_t errlen);

/* Writes <u> back as a URL with the password masked ("***"), for logs and
 * messages. Returns 0, or -1 when it does not fit <cap> (<buf> then holds a
 * truncated, NUL-terminated text). */
int gw_redis_url_format(const struct gw_redis_url *u, char *buf, size_t cap);

/* Connects to the (master) node of <u> with <timeout_ms> for connect and for
 * every command (<= 0 means GW_REDIS_DEFAULT_TIMEOUT_MS), authenticates and
 * selects the db. Returns the context (caller frees with redisFree), or NULL
 * with the reason in <err>. When <addr_out> is not NULL it receives
 * "host:port" of the node reached ("[v6]:port" for IPv6). */
redisContext *gw_redis_connect(const struct gw_redis_url *u, int timeout_ms, char *addr_out,
                               size_t addr_cap, char *err, size_t errlen);

#endif
