/* SPDX-License-Identifier: Apache-2.0 */
/* ctl_redis — infergw-ctl's shared Redis plumbing: messages, checked
 * replies, EVAL argument lists, publish and report after a write, and the
 * records a SCAN finds; the contract is in ctl.h. */
#include <errno.h>
#include <jansson.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <netdb.h>

#include "ctl.h"

#include "base/config.h"
#include "base/mem.h"
#include "base/hostport.h"
#include "ctlview.h"

/* Prints "infergw-ctl: <message>" on stderr; returns <code>. */
int ctl_say(int code, const char *fmt, ...)
{
    va_list ap;

    fputs("infergw-ctl: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

/* Checks a reply: NULL (I/O error) and error replies are reported. */
redisReply *ctl_checked(struct ctl *x, redisReply *r)
{
    if (!r) {
        ctl_say(CTL_EXIT_REDIS, "redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
        return NULL;
    }
    if (r->type == REDIS_REPLY_ERROR) {
        ctl_say(CTL_EXIT_REDIS, "redis answered: %s", r->str);
        freeReplyObject(r);
        return NULL;
    }
    return r;
}

redisReply *ctl_command(struct ctl *x, const char *fmt, ...)
{
    va_list ap;
    redisReply *r;

    va_start(ap, fmt);
    r = redisvCommand(x->c, fmt, ap);
    va_end(ap);
    return ctl_checked(x, r);
}

void ctl_ea_push(struct ctl_eval *e, const char *s, size_t len)
{
    if (e->oom)
        return;
    if (e->n == e->cap) {
        size_t cap = e->cap ? 2 * e->cap : 16;
        char **v = gw_realloc(e->v, cap * sizeof(*v));
        size_t *l = v ? gw_realloc(e->len, cap * sizeof(*l)) : NULL;

        if (v)
            e->v = v;
        if (!v || !l) {
            e->oom = 1;
            return;
        }
        e->len = l;
        e->cap = cap;
    }
    e->v[e->n] = gw_strndup(s, len);
    if (!e->v[e->n]) {
        e->oom = 1;
        return;
    }
    e->len[e->n++] = len;
}

void ctl_ea_str(struct ctl_eval *e, const char *s)
{
    ctl_ea_push(e, s, strlen(s));
}

void ctl_ea_free(struct ctl_eval *e)
{
    for (size_t i = 0; i < e->n; i++)
        gw_free(e->v[i]);
    gw_free(e->v);
    gw_free(e->len);
}

/* Starts "EVAL <script> <nkeys>". */
void ctl_ea_eval(struct ctl_eval *e, const char *script, int nkeys)
{
    char n[16];

    memset(e, 0, sizeof(*e));
    ctl_ea_str(e, "EVAL");
    ctl_ea_str(e, script);
    snprintf(n, sizeof(n), "%d", nkeys);
    ctl_ea_str(e, n);
}

/* Runs the EVAL and frees <e>. Returns an array reply whose first element
 * is an integer or status text, or NULL (reported). */
redisReply *ctl_ea_run(struct ctl *x, struct ctl_eval *e)
{
    redisReply *r = NULL;

    if (e->oom)
        ctl_say(CTL_EXIT_REDIS, "out of memory");
    else
        r = ctl_checked(x, redisCommandArgv(x->c, (int)e->n, (const char **)e->v, e->len));
    ctl_ea_free(e);
    if (r && (r->type != REDIS_REPLY_ARRAY || r->elements == 0)) {
        ctl_say(CTL_EXIT_REDIS, "unexpected script reply");
        freeReplyObject(r);
        r = NULL;
    }
    return r;
}

/* Pushes the head and the tail of a pool's ring key, for scripts that look
 * at every pool's ring. */
void ctl_ea_ring_head(struct ctl *x, struct ctl_eval *e)
{
    char head[KEYLEN];

    gw_key_pool_ring_head(head, sizeof(head), x->a->prefix);
    ctl_ea_str(e, head);
    ctl_ea_str(e, GW_KEY_POOL_RING_TAIL);
}

int ctl_reply_is(const redisReply *r, const char *s)
{
    const redisReply *e = r->element[0];

    return e->type == REDIS_REPLY_STRING && !strcmp(e->str, s);
}

/* Integer element <i> of a script reply (0 when absent). */
long long ctl_reply_int(const redisReply *r, size_t i)
{
    return i < r->elements && r->element[i]->type == REDIS_REPLY_INTEGER ? r->element[i]->integer
                                                                         : 0;
}

/* Announces version <v> after a write. */
void ctl_publish(struct ctl *x, long long v)
{
    char ch[KEYLEN];
    redisReply *r;

    gw_key_changed(ch, sizeof(ch), x->a->prefix);
    r = redisCommand(x->c, "PUBLISH %s %lld", ch, v);
    if (!r || r->type == REDIS_REPLY_ERROR)
        ctl_say(0,
                "warning: written (version %lld) but PUBLISH failed (%s); gateways see the change "
                "at their next version poll",
                v, r ? r->str : x->c->errstr);
    if (r)
        freeReplyObject(r);
}

/* Reports the outcome of a write: <version> < 0 when nothing changed.
 * <extra> (may be NULL, taken) carries the command's fields for --json. */
int ctl_report(struct ctl *x, long long version, json_t *extra, const char *fmt, ...)
{
    va_list ap;

    if (version >= 0)
        ctl_publish(x, version);
    if (x->a->json) {
        json_t *o = extra ? extra : json_object();

        json_object_set_new(o, "changed", json_boolean(version >= 0));
        json_object_set_new(o, "version", version >= 0 ? json_integer(version) : json_null());
        ctl_view_print_json(stdout, o);
        return CTL_EXIT_OK;
    }
    json_decref(extra);
    va_start(ap, fmt);
    vprintf(fmt, ap);
    va_end(ap);
    if (version >= 0)
        printf(" (version %lld)", version);
    putchar('\n');
    return CTL_EXIT_OK;
}

int ctl_no_pool(const char *pool)
{
    return ctl_say(CTL_EXIT_NOTFOUND,
                   "pool %s does not exist; create it with: infergw-ctl pool add %s", pool, pool);
}

int ctl_cmp_str(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* Warns when <addr>'s host does not resolve here: a gateway that cannot
 * resolve it refuses the pool's whole new ring. Only a warning, since the
 * gateways' resolver may know names this machine does not. */
void ctl_warn_unresolvable(const char *addr, const char *pool)
{
    struct addrinfo hints = {.ai_socktype = SOCK_STREAM}, *res = NULL;
    char host[256], port[8];
    uint16_t p;

    if (gw_hostport_split(addr, host, sizeof(host), &p) < 0)
        return;
    snprintf(port, sizeof(port), "%u", p);
    if (getaddrinfo(host, port, &hints, &res) == 0 && res) {
        freeaddrinfo(res);
        return;
    }
    ctl_say(0,
            "warning: %s does not resolve here; gateways that cannot resolve it keep the last good "
            "ring of pool %s",
            host, pool);
}

void ctl_records_free(struct ctl_records *r)
{
    for (size_t i = 0; i < r->n; i++) {
        gw_free(r->names[i]);
        if (r->hashes && r->hashes[i])
            freeReplyObject(r->hashes[i]);
    }
    gw_free(r->names);
    gw_free(r->hashes);
    memset(r, 0, sizeof(*r));
}

int ctl_records_push(struct ctl_records *r, const char *s, size_t len)
{
    if (r->n == r->cap) {
        size_t cap = r->cap ? 2 * r->cap : 64;
        char **nn = gw_realloc(r->names, cap * sizeof(*nn));
        if (!nn)
            return -1;
        r->names = nn;
        r->cap = cap;
    }
    if (!(r->names[r->n] = gw_strndup(s, len)))
        return -1;
    r->n++;
    return 0;
}

/* Collects the names of the keys of <family> whose name starts with <head>,
 * then reads the hashes pipelined. Returns CTL_EXIT_OK or CTL_EXIT_REDIS
 * (reported). */
int ctl_scan_records(struct ctl *x, enum gw_key_family family, const char *head,
                     struct ctl_records *out)
{
    char pattern[KEYLEN + 64], cursor[32] = "0";

    memset(out, 0, sizeof(*out));
    if (gw_key_scan(pattern, sizeof(pattern), x->a->prefix, family, head) < 0)
        return ctl_say(CTL_EXIT_USAGE, "key pattern too long");
    do {
        redisReply *r = ctl_command(x, "SCAN %s MATCH %s COUNT 1000", cursor, pattern);
        if (!r)
            goto fail;
        if (r->type != REDIS_REPLY_ARRAY || r->elements != 2 || !r->element[0]->str) {
            freeReplyObject(r);
            ctl_say(CTL_EXIT_REDIS, "unexpected SCAN reply");
            goto fail;
        }
        snprintf(cursor, sizeof(cursor), "%s", r->element[0]->str);
        for (size_t i = 0; i < r->element[1]->elements; i++)
            if (ctl_records_push(out, r->element[1]->element[i]->str,
                                 r->element[1]->element[i]->len) < 0) {
                freeReplyObject(r);
                ctl_say(CTL_EXIT_REDIS, "out of memory");
                goto fail;
            }
        freeReplyObject(r);
    } while (strcmp(cursor, "0") != 0);
    if (out->n)
        qsort(out->names, out->n, sizeof(char *), ctl_cmp_str);
    size_t u = 0;
    for (size_t i = 0; i < out->n; i++) {
        if (u && !strcmp(out->names[u - 1], out->names[i]))
            gw_free(out->names[i]);
        else
            out->names[u++] = out->names[i];
    }
    out->n = u;
    out->hashes = gw_calloc(out->n + 1, sizeof(*out->hashes));
    if (!out->hashes) {
        ctl_say(CTL_EXIT_REDIS, "out of memory");
        goto fail;
    }
    for (size_t i = 0; i < out->n; i++)
        redisAppendCommand(x->c, "HGETALL %s", out->names[i]);
    for (size_t i = 0; i < out->n; i++) {
        void *v = NULL;
        if (redisGetReply(x->c, &v) != REDIS_OK || !v) {
            ctl_say(CTL_EXIT_REDIS, "redis: %s", x->c->errstr[0] ? x->c->errstr : "no reply");
            goto fail;
        }
        redisReply *h = v;
        if (h->type == REDIS_REPLY_ARRAY && h->elements > 0)
            out->hashes[i] = h;
        else
            freeReplyObject(h); /* deleted since the SCAN, or not a hash */
    }
    return CTL_EXIT_OK;
fail:
    ctl_records_free(out);
    return CTL_EXIT_REDIS;
}

/* The value of <field> in an HGETALL reply (NULL reply or field: NULL). */
const char *ctl_field_of(const redisReply *h, const char *field)
{
    for (size_t i = 0; h && i + 1 < h->elements; i += 2)
        if (h->element[i]->str && !strcmp(h->element[i]->str, field))
            return h->element[i + 1]->str;
    return NULL;
}

/* The name part of record key <name> ("" when it is not of <family>). */
const char *ctl_record_suffix(struct ctl *x, const char *name, enum gw_key_family family)
{
    const char *s = gw_key_suffix(name, x->a->prefix, family);
    return s ? s : "";
}
