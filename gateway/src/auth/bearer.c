/* SPDX-License-Identifier: Apache-2.0 */
/* bearer — see bearer.h. */
#include "auth/bearer.h"

#include <string.h>

static int is_blank(char c)
{
    return c == ' ' || c == '\t';
}

static int is_token68(char c)
{
    return (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '-' ||
           c == '.' || c == '_' || c == '~' || c == '+' || c == '/';
}

int gw_bearer_parse(const char *value, size_t len, const char **tok, size_t *toklen)
{
    static const char scheme[] = "bearer";
    size_t n = sizeof(scheme) - 1;
    if (len <= n || !is_blank(value[n]))
        return -1;
    for (size_t i = 0; i < n; i++) {
        char c = value[i];
        if (c >= 'A' && c <= 'Z')
            c = (char)(c - 'A' + 'a');
        if (c != scheme[i])
            return -1;
    }
    size_t b = n;
    while (b < len && is_blank(value[b]))
        b++;
    size_t e = len;
    while (e > b && is_blank(value[e - 1]))
        e--;
    if (e == b || e - b > GW_BEARER_MAX)
        return -1;
    size_t i = b;
    while (i < e && is_token68(value[i]))
        i++;
    while (i < e && value[i] == '=') /* padding, only at the end */
        i++;
    if (i != e)
        return -1;
    *tok = value + b;
    *toklen = e - b;
    return 0;
}
