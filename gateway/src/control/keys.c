/* SPDX-License-Identifier: Apache-2.0 */
/* keys — the one spelling of every Redis key of the control plane; the
 * contract is in keys.h. */
#include "control/keys.h"

#include <stdio.h>
#include <string.h>

static const char *const family_word[] = {[GW_KEY_TENANT] = "tenant:",
                                          [GW_KEY_APIKEY] = "apikey:",
                                          [GW_KEY_GATEWAY] = "gateway:",
                                          [GW_KEY_REPLICA] = "replica:"};

/* "<prefix><a><b><c>"; NULL parts are left out. */
static int build(char *buf, size_t cap, const char *prefix, const char *a, const char *b,
                 const char *c)
{
    if (cap == 0)
        return -1;
    if (strlen(prefix) >= cap) {
        buf[0] = '\0';
        return -1;
    }
    int n = snprintf(buf, cap, "%s%s%s%s", prefix, a, b ? b : "", c ? c : "");
    return n < 0 || (size_t)n >= cap ? -1 : 0;
}

int gw_key_pools(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "pools", NULL, NULL);
}

int gw_key_pool_ring(char *buf, size_t cap, const char *prefix, const char *pool)
{
    return build(buf, cap, prefix, "pool:", pool, GW_KEY_POOL_RING_TAIL);
}

int gw_key_pool_conf(char *buf, size_t cap, const char *prefix, const char *pool)
{
    return build(buf, cap, prefix, "pool:", pool, ":conf");
}

int gw_key_pool_kv(char *buf, size_t cap, const char *prefix, const char *pool)
{
    return build(buf, cap, prefix, "pool:", pool, ":kv");
}

int gw_key_conf(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "conf", NULL, NULL);
}

int gw_key_replica(char *buf, size_t cap, const char *prefix, const char *addr)
{
    return build(buf, cap, prefix, family_word[GW_KEY_REPLICA], addr, NULL);
}

int gw_key_version(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "version", NULL, NULL);
}

int gw_key_changed(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "changed", NULL, NULL);
}

int gw_key_tenant(char *buf, size_t cap, const char *prefix, const char *name)
{
    return build(buf, cap, prefix, family_word[GW_KEY_TENANT], name, NULL);
}

int gw_key_apikey(char *buf, size_t cap, const char *prefix, const char *hex)
{
    return build(buf, cap, prefix, family_word[GW_KEY_APIKEY], hex, NULL);
}

int gw_key_lease(char *buf, size_t cap, const char *prefix, const char *addr)
{
    return build(buf, cap, prefix, "lease:", addr, NULL);
}

int gw_key_leased(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "leased", NULL, NULL);
}

int gw_key_lease_gone(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "lease_gone", NULL, NULL);
}

int gw_key_gateway(char *buf, size_t cap, const char *prefix, const char *id)
{
    return build(buf, cap, prefix, family_word[GW_KEY_GATEWAY], id, NULL);
}

int gw_key_pool_ring_head(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "pool:", NULL, NULL);
}

int gw_key_lease_head(char *buf, size_t cap, const char *prefix)
{
    return build(buf, cap, prefix, "lease:", NULL, NULL);
}

int gw_key_scan(char *buf, size_t cap, const char *prefix, enum gw_key_family family,
                const char *head)
{
    size_t n = 0;

    if (cap == 0)
        return -1;
    buf[0] = '\0';
    for (const char *p = prefix; *p; p++) {
        if (n + 2 >= cap)
            return -1;
        if (strchr("*?[]\\", *p))
            buf[n++] = '\\';
        buf[n++] = *p;
    }
    int w = snprintf(buf + n, cap - n, "%s%s*", family_word[family], head);
    return w < 0 || (size_t)w >= cap - n ? -1 : 0;
}

const char *gw_key_suffix(const char *key, const char *prefix, enum gw_key_family family)
{
    size_t pl = strlen(prefix), wl = strlen(family_word[family]);

    if (strncmp(key, prefix, pl) != 0 || strncmp(key + pl, family_word[family], wl) != 0)
        return NULL;
    return key + pl + wl;
}
