/* SPDX-License-Identifier: Apache-2.0 */
/* config — the gateway's command line: parsing, validation, --help.
 *
 * Every flag is one row of the flag table (flags.h): its default, range or
 * parser, the field below it sets and its help text live there, and
 * docs/flags.md is generated from it. Parsing validates ranges and formats
 * and names the flag and value it refuses; the rules that involve several
 * flags are checked once all are read. The result is read-only once the
 * workers start.
 */
#ifndef INFERGW_CONFIG_H
#define INFERGW_CONFIG_H

#include <stddef.h>
#include <stdio.h>

#include "base/config_t.h"

/* Parses argv into <cfg> (defaults first). Returns 0 to run, 1 when --help
 * or --version was printed (exit 0), -1 on a bad command line with the reason
 * in <err> (exit 2). <cfg> is freed with gw_config_free() in every case. */
int gw_config_parse(struct gw_config *cfg, int argc, char **argv, char *err, size_t errlen);
void gw_config_free(struct gw_config *cfg);
void gw_config_usage(FILE *out);

#endif
