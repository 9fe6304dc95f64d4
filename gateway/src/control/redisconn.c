/* SPDX-License-Identifier: Apache-2.0 */
/* redisconn — Redis URLs and blocking connections with timeouts; see
 * redisconn.h.
 *
 * The parser works on a local struct and copies it out only when the whole
 * URL is good, so a caller's previous value survives a bad one. The
 * authority ends at the first '/', as in any URL, so a '/' in a password
 * must be percent-encoded; the user info ends at the last '@' before it, so
 * an unencoded '@' in a password still works. Error texts name the part
 * that is wrong but never quote the user info.
 *
 * Sentinel discovery asks each sentinel in the order given and takes the
 * first answer that leads to a node whose ROLE is master: during a failover
 * a sentinel may still name the old master (now a replica, or down), and the
 * next sentinel, or the caller's next reconnect, gets the new one. The
 * reasons each candidate failed are joined into <err>, so an operator sees
 * why every sentinel was passed over.
 */
#include "control/redisconn.h"

#include <ctype.h>
#include <errno.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/time.h>

#include "base/err.h"

/* Appends to <err> (already NUL-terminated), separated by "; ". */
static void add_err(char *err, size_t errlen, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static void add_err(char *err, size_t errlen, const char *fmt, ...)
{
    va_list ap;
    size_t used;

    if (!err || errlen == 0)
        return;
    used = strlen(err);
    if (used && used + 2 < errlen) {
        memcpy(err + used, "; ", 3);
        used += 2;
    }
    if (used + 1 >= errlen)
        return;
    va_start(ap, fmt);
    vsnprintf(err + used, errlen - used, fmt, ap);
    va_end(ap);
}

/* --- URL parsing ---------------------------------------------------------- */

static int hexval(int c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Percent-decodes <s>[0..n) into <out> (cap bytes with the NUL). Refuses a
 * bad escape, a decoded NUL, and a result that does not fit. */
static int pct_decode(const char *s, size_t n, char *out, size_t cap)
{
    size_t o = 0;

    for (size_t i = 0; i < n; i++) {
        int c = (unsigned char)s[i];

        if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int h = hexval((unsigned char)s[i + 1]), l = hexval((unsigned char)s[i + 2]);
            if (h < 0 || l < 0)
                return -1;
            c = h << 4 | l;
            if (c == 0)
                return -1;
            i += 2;
        }
        if (o + 1 >= cap)
            return -1;
        out[o++] = (char)c;
    }
    out[o] = '\0';
    return 0;
}

/* Digits only, value in [min, max]. */
static int parse_num(const char *s, size_t n, long min, long max, long *out)
{
    long v = 0;

    if (n == 0 || n > 10)
        return -1;
    for (size_t i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    if (v < min || v > max)
        return -1;
    *out = v;
    return 0;
}

static int host_char(int c)
{
    return isalnum(c) || c == '.' || c == '-' || c == '_';
}

/* Parses "host[:port]" or "[v6][:port]" from <s>[0..n). */
static int parse_hostport(const char *s, size_t n, uint16_t defport, char *host, size_t hostcap,
                          uint16_t *port, char *err, size_t errlen)
{
    const char *h = s, *rest;
    size_t hl;
    long p = defport;

    if (n && s[0] == '[') {
        const char *close = memchr(s, ']', n);

        if (!close) {
            gw_errf(err, errlen, "IPv6 address without its closing ']'");
            return -1;
        }
        h = s + 1;
        hl = (size_t)(close - h);
        for (size_t i = 0; i < hl; i++)
            if (!isxdigit((unsigned char)h[i]) && h[i] != ':' && h[i] != '.') {
                gw_errf(err, errlen, "bad character in IPv6 address");
                return -1;
            }
        if (hl == 0 || !memchr(h, ':', hl)) {
            gw_errf(err, errlen, "brackets hold no IPv6 address");
            return -1;
        }
        rest = close + 1;
    } else {
        const char *colon = memchr(s, ':', n);

        hl = colon ? (size_t)(colon - s) : n;
        for (size_t i = 0; i < hl; i++)
            if (!host_char((unsigned char)s[i])) {
                gw_errf(err, errlen, "bad character in host name");
                return -1;
            }
        if (colon && memchr(colon + 1, ':', n - hl - 1)) {
            gw_errf(err, errlen, "an IPv6 address must be written in brackets, [::1]:6379");
            return -1;
        }
        rest = s + hl;
    }
    if (hl == 0) {
        gw_errf(err, errlen, "empty host");
        return -1;
    }
    if (hl >= hostcap) {
        gw_errf(err, errlen, "host name longer than %zu bytes", hostcap - 1);
        return -1;
    }
    if (rest < s + n) {
        size_t pl = (size_t)(s + n - rest);

        if (rest[0] != ':' || parse_num(rest + 1, pl - 1, 1, 65535, &p) < 0) {
            gw_errf(err, errlen, "port is not a number in 1..65535");
            return -1;
        }
    }
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}

static int parse_userinfo(const char *s, size_t n, struct gw_redis_url *u, char *err, size_t errlen)
{
    const char *colon = memchr(s, ':', n);

    if (!colon) {
        gw_errf(err, errlen, "credentials must be ':password@' or 'user:password@'");
        return -1;
    }
    if (pct_decode(s, (size_t)(colon - s), u->username, sizeof(u->username)) < 0) {
        gw_errf(err, errlen, "bad user name (bad %%-escape or longer than %zu bytes)",
                sizeof(u->username) - 1);
        return -1;
    }
    if (pct_decode(colon + 1, n - (size_t)(colon - s) - 1, u->password, sizeof(u->password)) < 0) {
        gw_errf(err, errlen, "bad password (bad %%-escape or longer than %zu bytes)",
                sizeof(u->password) - 1);
        return -1;
    }
    if (!u->password[0]) {
        gw_errf(err, errlen, "empty password");
        return -1;
    }
    return 0;
}

static int parse_db(const char *s, size_t n, struct gw_redis_url *u, char *err, size_t errlen)
{
    long db = 0;

    if (n && parse_num(s, n, 0, INT_MAX, &db) < 0) {
        gw_errf(err, errlen, "db is not a number in 0..%d", INT_MAX);
        return -1;
    }
    u->db = (int)db;
    return 0;
}

static int parse_url(const char *url, struct gw_redis_url *u, char *err, size_t errlen)
{
    const char *p, *end, *auth_end, *at = NULL;
    uint16_t defport;

    if (!strncmp(url, "redis://", 8)) {
        p = url + 8;
        defport = GW_REDIS_DEFAULT_PORT;
    } else if (!strncmp(url, "sentinel://", 11)) {
        u->sentinel = 1;
        p = url + 11;
        defport = GW_REDIS_DEFAULT_SENTINEL_PORT;
    } else {
        gw_errf(err, errlen, "scheme must be redis:// or sentinel://");
        return -1;
    }
    end = p + strlen(p);
    for (const char *q = p; q < end; q++)
        if ((unsigned char)*q <= 0x20 || (unsigned char)*q >= 0x7f) {
            gw_errf(err, errlen, "spaces and control characters are not allowed");
            return -1;
        }
    if (memchr(p, '?', (size_t)(end - p)) || memchr(p, '#', (size_t)(end - p))) {
        gw_errf(err, errlen, "query strings and fragments are not supported");
        return -1;
    }
    auth_end = memchr(p, '/', (size_t)(end - p));
    if (!auth_end)
        auth_end = end;
    for (const char *q = p; q < auth_end; q++)
        if (*q == '@')
            at = q;
    if (at) {
        if (parse_userinfo(p, (size_t)(at - p), u, err, errlen) < 0)
            return -1;
        p = at + 1;
    }

    /* Hosts, comma-separated. */
    for (;;) {
        const char *comma = memchr(p, ',', (size_t)(auth_end - p));
        const char *he = comma ? comma : auth_end;

        if (u->nhosts == GW_REDIS_MAX_HOSTS) {
            gw_errf(err, errlen, "more than %d hosts", GW_REDIS_MAX_HOSTS);
            return -1;
        }
        if (parse_hostport(p, (size_t)(he - p), defport, u->hosts[u->nhosts].host,
                           sizeof(u->hosts[0].host), &u->hosts[u->nhosts].port, err, errlen) < 0)
            return -1;
        u->nhosts++;
        if (!comma)
            break;
        p = comma + 1;
    }
    if (!u->sentinel && u->nhosts > 1) {
        gw_errf(err, errlen, "redis:// takes one host; use sentinel://h1,h2/MASTER for several");
        return -1;
    }

    /* Path: redis:// [/db]; sentinel:// /master[/db]. */
    p = auth_end;
    if (!u->sentinel)
        return p == end ? 0 : parse_db(p + 1, (size_t)(end - p - 1), u, err, errlen);
    if (p == end || p + 1 == end || p[1] == '/') {
        gw_errf(err, errlen, "sentinel:// needs the master name: sentinel://h:p,h:p/MASTER");
        return -1;
    }
    {
        const char *ms = p + 1, *me = memchr(ms, '/', (size_t)(end - ms));

        if (!me)
            me = end;
        if ((size_t)(me - ms) >= sizeof(u->master)) {
            gw_errf(err, errlen, "master name longer than %zu bytes", sizeof(u->master) - 1);
            return -1;
        }
        memcpy(u->master, ms, (size_t)(me - ms));
        u->master[me - ms] = '\0';
        if (me == end)
            return 0;
        return parse_db(me + 1, (size_t)(end - me - 1), u, err, errlen);
    }
}

int gw_redis_url_parse(const char *url, struct gw_redis_url *out, char *err, size_t errlen)
{
    struct gw_redis_url u;
    char why[200] = "";

    memset(&u, 0, sizeof(u));
    if (!url || parse_url(url, &u, why, sizeof(why)) < 0) {
        gw_errf(err, errlen,
                "bad Redis URL (%s); expected redis://[:password@]host:port[/db] or "
                "sentinel://[:password@]h1:p1,h2:p2/MASTER[/db]",
                url ? why : "none given");
        return -1;
    }
    *out = u;
    return 0;
}

/* "host:port", bracketing an IPv6 host. */
static int format_hostport(char *buf, size_t cap, const char *host, unsigned port)
{
    int n = strchr(host, ':') ? snprintf(buf, cap, "[%s]:%u", host, port)
                              : snprintf(buf, cap, "%s:%u", host, port);

    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int gw_redis_url_format(const struct gw_redis_url *u, char *buf, size_t cap)
{
    size_t used;
    int n;

    if (cap == 0)
        return -1;
    n = snprintf(buf, cap, "%s://%s%s%s", u->sentinel ? "sentinel" : "redis", u->username,
                 u->password[0] || u->username[0] ? ":***" : "",
                 u->password[0] || u->username[0] ? "@" : "");
    if (n < 0 || (size_t)n >= cap)
        return -1;
    used = (size_t)n;
    for (size_t i = 0; i < u->nhosts; i++) {
        if (i) {
            if (used + 1 >= cap)
                return -1;
            buf[used++] = ',';
            buf[used] = '\0';
        }
        if (format_hostport(buf + used, cap - used, u->hosts[i].host, u->hosts[i].port) < 0)
            return -1;
        used += strlen(buf + used);
    }
    if (u->sentinel)
        n = snprintf(buf + used, cap - used, "/%s/%d", u->master, u->db);
    else
        n = snprintf(buf + used, cap - used, "/%d", u->db);
    return n < 0 || (size_t)n >= cap - used ? -1 : 0;
}

/* --- connecting ----------------------------------------------------------- */

/* A reply that is an error, or an I/O failure (reply NULL), is turned into
 * <err> naming <node> and <what>; the reply is freed. */
static redisReply *node_cmd_check(redisContext *c, redisReply *r, const char *node,
                                  const char *what, char *err, size_t errlen)
{
    if (!r) {
        add_err(err, errlen, "%s: %s: %s", node, what, c->errstr[0] ? c->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        add_err(err, errlen, "%s: %s: %s", node, what, r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

static redisContext *node_connect(const char *host, uint16_t port, int timeout_ms, const char *node,
                                  char *err, size_t errlen)
{
    struct timeval tv = {.tv_sec = timeout_ms / 1000, .tv_usec = (timeout_ms % 1000) * 1000};
    redisContext *c = redisConnectWithTimeout(host, port, tv);

    if (!c) {
        add_err(err, errlen, "%s: out of memory", node);
        return NULL;
    }
    if (c->err) {
        add_err(err, errlen, "%s: %s", node, c->errstr);
        redisFree(c);
        return NULL;
    }
    if (redisSetTimeout(c, tv) != REDIS_OK) {
        add_err(err, errlen, "%s: cannot set timeouts: %s", node, c->errstr);
        redisFree(c);
        return NULL;
    }
    return c;
}

/* Connects to a data node and authenticates, selects the db and, for
 * sentinel URLs, checks with ROLE that it is a master. */
static redisContext *data_connect(const struct gw_redis_url *u, const char *host, uint16_t port,
                                  int timeout_ms, char *addr_out, size_t addr_cap, char *err,
                                  size_t errlen)
{
    char node[300];
    redisContext *c;
    redisReply *r;

    if (format_hostport(node, sizeof(node), host, port) < 0) {
        add_err(err, errlen, "node address too long");
        return NULL;
    }
    c = node_connect(host, port, timeout_ms, node, err, errlen);
    if (!c)
        return NULL;
    if (u->password[0]) {
        r = u->username[0] ? redisCommand(c, "AUTH %s %s", u->username, u->password)
                           : redisCommand(c, "AUTH %s", u->password);
        if (!(r = node_cmd_check(c, r, node, "AUTH", err, errlen)))
            goto fail;
        freeReplyObject(r);
    }
    if (u->db) {
        r = node_cmd_check(c, redisCommand(c, "SELECT %d", u->db), node, "SELECT", err, errlen);
        if (!r)
            goto fail;
        freeReplyObject(r);
    }
    if (u->sentinel) {
        r = node_cmd_check(c, redisCommand(c, "ROLE"), node, "ROLE", err, errlen);
        if (!r)
            goto fail;
        int master = r->type == REDIS_REPLY_ARRAY && r->elements > 0 &&
                     r->element[0]->type == REDIS_REPLY_STRING &&
                     !strcmp(r->element[0]->str, "master");
        freeReplyObject(r);
        if (!master) {
            add_err(err, errlen, "%s: not a master (failover in progress?)", node);
            goto fail;
        }
    } else if (!u->password[0] && !u->db) {
        /* Nothing asked yet: make sure it is a Redis that lets us in, so a
         * missing password shows up here and not at the first command. */
        r = node_cmd_check(c, redisCommand(c, "PING"), node, "PING", err, errlen);
        if (!r)
            goto fail;
        freeReplyObject(r);
    }
    if (addr_out && addr_cap)
        snprintf(addr_out, addr_cap, "%s", node);
    return c;
fail:
    redisFree(c);
    return NULL;
}

/* Asks one sentinel for the master's address. Returns 0 and fills
 * <host>/<port>, or -1 with the reason appended to <err>. */
static int sentinel_ask(const struct gw_redis_url *u, size_t i, int timeout_ms, char *host,
                        size_t hostcap, uint16_t *port, char *err, size_t errlen)
{
    char node[300];
    redisContext *c;
    redisReply *r;
    int rc = -1;
    long p;

    format_hostport(node, sizeof(node), u->hosts[i].host, u->hosts[i].port);
    c = node_connect(u->hosts[i].host, u->hosts[i].port, timeout_ms, node, err, errlen);
    if (!c)
        return -1;
    r = node_cmd_check(c, redisCommand(c, "SENTINEL get-master-addr-by-name %s", u->master), node,
                       "SENTINEL get-master-addr-by-name", err, errlen);
    if (!r)
        goto out;
    if (r->type == REDIS_REPLY_NIL) {
        add_err(err, errlen, "sentinel %s: does not know master '%s'", node, u->master);
    } else if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 ||
               r->element[0]->type != REDIS_REPLY_STRING ||
               r->element[1]->type != REDIS_REPLY_STRING || r->element[0]->len == 0 ||
               r->element[0]->len >= hostcap ||
               parse_num(r->element[1]->str, r->element[1]->len, 1, 65535, &p) < 0) {
        add_err(err, errlen, "sentinel %s: unexpected answer for master '%s'", node, u->master);
    } else {
        memcpy(host, r->element[0]->str, r->element[0]->len + 1);
        *port = (uint16_t)p;
        rc = 0;
    }
    freeReplyObject(r);
out:
    redisFree(c);
    return rc;
}

redisContext *gw_redis_connect(const struct gw_redis_url *u, int timeout_ms, char *addr_out,
                               size_t addr_cap, char *err, size_t errlen)
{
    if (err && errlen)
        err[0] = '\0';
    if (timeout_ms <= 0)
        timeout_ms = GW_REDIS_DEFAULT_TIMEOUT_MS;
    if (u->nhosts == 0) {
        gw_errf(err, errlen, "no Redis host");
        return NULL;
    }
    if (!u->sentinel)
        return data_connect(u, u->hosts[0].host, u->hosts[0].port, timeout_ms, addr_out, addr_cap,
                            err, errlen);
    for (size_t i = 0; i < u->nhosts; i++) {
        char host[256];
        uint16_t port;
        redisContext *c;

        if (sentinel_ask(u, i, timeout_ms, host, sizeof(host), &port, err, errlen) < 0)
            continue;
        c = data_connect(u, host, port, timeout_ms, addr_out, addr_cap, err, errlen);
        if (c) {
            if (err && errlen)
                err[0] = '\0';
            return c;
        }
    }
    {
        char why[768];

        snprintf(why, sizeof(why), "%s", err ? err : "");
        gw_errf(err, errlen, "no sentinel led to a reachable master '%s': %s", u->master, why);
    }
    return NULL;
}
