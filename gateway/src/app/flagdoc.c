/* SPDX-License-Identifier: Apache-2.0 */
/* flagdoc — infergw-flagdoc: prints docs/flags.md from the gateway's flag
 * table (base/flags.c), so the reference cannot drift from the parser.
 * Usage: infergw-flagdoc > docs/flags.md. Exits 0, or 1 when stdout fails. */
#include <stdio.h>

#include "base/flags.h"

int main(void)
{
    gw_flags_markdown(stdout);
    return fflush(stdout) == 0 && !ferror(stdout) ? 0 : 1;
}
