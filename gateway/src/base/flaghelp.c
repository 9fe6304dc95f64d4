/* SPDX-License-Identifier: Apache-2.0 */
/* flaghelp — --help and docs/flags.md, both printed from the flag table
 * (flags.c): the text of each flag wrapped under its section, and one
 * Markdown table per section. See flags.h. */
#include <string.h>

#include "base/flags.h"

#define HELP_INDENT 32 /* column of the help text */
#define HELP_WIDTH  88 /* longest help line */

/* The default as --help and the docs word it, or NULL (a flag without a value). */
static const char *shown_default(const struct gw_flag *f)
{
    return f->shown ? f->shown : f->def;
}

/* Writes <text> from column <col> on, wrapped at HELP_WIDTH, continuation
 * lines indented to HELP_INDENT; ends the line. */
static void wrap(FILE *out, int col, const char *text)
{
    const char *s = text;
    while (*s) {
        size_t w = strcspn(s, " ");
        if (col > HELP_INDENT && col + 1 + (int)w > HELP_WIDTH) {
            fprintf(out, "\n%*s", HELP_INDENT, "");
            col = HELP_INDENT;
        } else if (col > HELP_INDENT) {
            fputc(' ', out);
            col++;
        }
        fwrite(s, 1, w, out);
        col += (int)w;
        s += w;
        while (*s == ' ')
            s++;
    }
    fputc('\n', out);
}

static void help_one(FILE *out, const struct gw_flag *f)
{
    char head[96], text[1024];
    int n = snprintf(head, sizeof(head), "  %s--%s%s%s", f->kind == GW_FLAG_HELP ? "-h, " : "",
                     f->name, f->arg ? " " : "", f->arg ? f->arg : "");
    fputs(head, out);
    if (n >= HELP_INDENT - 1) /* no room for two spaces: the text starts below */
        fprintf(out, "\n%*s", HELP_INDENT, "");
    else
        fprintf(out, "%*s", HELP_INDENT - n, "");
    const char *d = shown_default(f);
    snprintf(text, sizeof(text), "%s%s%s%s", f->help, d ? " [" : "", d ? d : "", d ? "]" : "");
    wrap(out, HELP_INDENT, text);
}

void gw_flags_help(FILE *out)
{
    for (int s = 0; s < GW_SEC_COUNT; s++) {
        fprintf(out, "\n%s:\n", gw_flag_section_titles[s]);
        for (size_t i = 0; i < gw_nflags; i++)
            if (gw_flags[i].section == (enum gw_flag_section)s)
                help_one(out, &gw_flags[i]);
    }
}

/* <s> in a Markdown table cell: '|' escaped. */
static void md_cell(FILE *out, const char *s)
{
    for (; *s; s++) {
        if (*s == '|')
            fputc('\\', out);
        fputc(*s, out);
    }
}

static void markdown_one(FILE *out, const struct gw_flag *f)
{
    fputs("| `--", out);
    md_cell(out, f->name);
    if (f->arg) {
        fputc(' ', out);
        md_cell(out, f->arg);
    }
    fputs("` | ", out);
    if (f->def && !f->shown) {
        fputc('`', out);
        md_cell(out, f->def);
        fputc('`', out);
    } else if (f->shown) {
        md_cell(out, f->shown);
    }
    fputs(" | ", out);
    if (f->kind == GW_FLAG_U32 || f->kind == GW_FLAG_INT)
        fprintf(out, "%u..%u", (unsigned)f->min, (unsigned)f->max);
    else if (f->kind == GW_FLAG_PATH)
        fputs("a file name", out);
    else if (f->expect)
        md_cell(out, f->expect);
    fputs(" | ", out);
    md_cell(out, f->help);
    fputs(" |\n", out);
}

void gw_flags_markdown(FILE *out)
{
    fputs("# infergw flags\n"
          "\n"
          "Generated from the flag table in gateway/src/base/flags.c, the same table that\n"
          "parses the flags and prints `infergw --help`; do not edit by hand. Regenerate with\n"
          "`build/bin/infergw-flagdoc > docs/flags.md` (the test `unit_flagdoc` fails when this\n"
          "file is out of date). A value outside \"accepted\" is refused at start with\n"
          "`infergw: --FLAG 'VALUE': expected ...` and exit status 2. The topics behind the\n"
          "flags: [TLS](tls.md), [routing](routing.md), [authentication](auth.md), [replica\n"
          "health](health.md), [limits and timeouts](limits.md), [monitoring](monitoring.md).\n",
          out);
    for (int s = 0; s < GW_SEC_COUNT; s++) {
        fprintf(out, "\n## %s\n\n| flag | default | accepted | meaning |\n|---|---|---|---|\n",
                gw_flag_section_titles[s]);
        for (size_t i = 0; i < gw_nflags; i++)
            if (gw_flags[i].section == (enum gw_flag_section)s)
                markdown_one(out, &gw_flags[i]);
    }
}
