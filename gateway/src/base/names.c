/* SPDX-License-Identifier: Apache-2.0 */
/* names — the one rule for pool names; the contract is in names.h. */
#include "base/names.h"

#include <string.h>

int gw_name_word(const char *s, size_t n, size_t max, const char *refused)
{
    if (n == 0 || n > max)
        return 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];

        if (c <= 0x20 || c >= 0x7f || strchr(refused, c))
            return 0;
    }
    return 1;
}

int gw_pool_name_valid(const char *s, size_t n)
{
    return gw_name_word(s, n, GW_POOL_NAME_MAX, ",");
}
