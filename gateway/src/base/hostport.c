/* SPDX-License-Identifier: Apache-2.0 */
/* hostport — "host:port" and "[v6]:port" addresses, split (see hostport.h). */
#include "base/hostport.h"

#include <string.h>

#include "base/err.h"

int gw_hostport_split(const char *addr, char *host, size_t hostlen, uint16_t *port)
{
    const char *colon;
    const char *h = addr;
    size_t hl;
    if (addr[0] == '[') {
        const char *close = strchr(addr, ']');
        if (!close || close[1] != ':')
            return -1;
        h = addr + 1;
        hl = (size_t)(close - h);
        colon = close + 1;
    } else {
        colon = strrchr(addr, ':');
        if (!colon)
            return -1;
        hl = (size_t)(colon - addr);
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    uint32_t p;
    if (gw_parse_u32(colon + 1, 1, 65535, &p) < 0)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (uint16_t)p;
    return 0;
}
