/* SPDX-License-Identifier: Apache-2.0 */
/* flags — the gateway's flag table: one row per command-line flag with its
 * name, value, kind, default, range or parser, the gw_config field it sets,
 * its help text and its section. config.c builds getopt_long's options from
 * it, applies the defaults and parses values through it, and prints --help
 * and docs/flags.md (infergw-flagdoc) from it; nothing else knows a flag.
 *
 * Each kind has one parser, and one refusal: "--NAME 'VALUE': expected
 * <expect>" (or "<min>..<max>" for numbers), except the flags of kind
 * GW_FLAG_CUSTOM, whose parser writes its own. A default is written as the
 * value one would give the flag and goes through the same parser.
 */
#ifndef INFERGW_FLAGS_H
#define INFERGW_FLAGS_H

#include <stddef.h>
#include <stdint.h>
#include <stdio.h>

#include "base/config_t.h"

enum gw_flag_kind {
    GW_FLAG_U32,     /* uint32_t in min..max */
    GW_FLAG_INT,     /* int in min..max */
    GW_FLAG_TEXT,    /* char[size]: shorter than size and valid() */
    GW_FLAG_PATH,    /* char *, owned: a non-empty file name; the last one wins */
    GW_FLAG_LIST,    /* char ** and a size_t count, owned: valid(); repeatable */
    GW_FLAG_CUSTOM,  /* parse() */
    GW_FLAG_HELP,    /* takes no value: --help, -h */
    GW_FLAG_VERSION, /* takes no value: --version */
};

enum gw_flag_section {
    GW_SEC_LISTEN,
    GW_SEC_POOLS,
    GW_SEC_AUTH,
    GW_SEC_UPSTREAM,
    GW_SEC_HEALTH,
    GW_SEC_LIMITS,
    GW_SEC_OBSERVE,
    GW_SEC_OTHER,
    GW_SEC_COUNT,
};

struct gw_flag {
    const char *name; /* without the leading "--" */
    const char *arg;  /* the value's name in --help; NULL: the flag takes no value */
    enum gw_flag_kind kind;
    enum gw_flag_section section;
    size_t off, size; /* the field of struct gw_config it sets, and its size */
    size_t off_n;     /* GW_FLAG_LIST: the count field */
    uint32_t min, max;
    const char *def;    /* default, as a value of the flag; NULL: none */
    const char *shown;  /* the default as --help words it, when not <def> */
    const char *expect; /* what the refusal says is expected; NULL: "<min>..<max>" */
    int (*valid)(const char *v);
    int (*parse)(struct gw_config *cfg, const char *v, char *err, size_t errlen);
    void (*machine_default)(struct gw_config *cfg); /* a default that depends on the host */
    const char *help;
};

/* The table, in --help order (grouped by section). */
extern const struct gw_flag gw_flags[];
extern const size_t gw_nflags;
#define GW_FLAGS_MAX 96 /* getopt_long's option array in config.c */

extern const char *const gw_flag_section_titles[GW_SEC_COUNT];

/* Sets the field of <f> from <v>. Returns 0, or -1 with the refusal in <err>
 * (the field may then hold a partial list, freed by gw_config_free()). */
int gw_flag_set(struct gw_config *cfg, const struct gw_flag *f, const char *v, char *err,
                size_t errlen);

/* Zeroes <cfg> and applies every default. Returns 0, or -1 with the reason
 * in <err> (a default its own parser refuses: a bug in the table). */
int gw_flags_defaults(struct gw_config *cfg, char *err, size_t errlen);

/* The flag list of --help, and docs/flags.md (flaghelp.c). */
void gw_flags_help(FILE *out);
void gw_flags_markdown(FILE *out);

#endif
