/* SPDX-License-Identifier: Apache-2.0 */
/* names — the one rule for the names operators give: pool (model) names
 * everywhere (the gateway's --pool flag and Redis watcher, infergw-ctl,
 * tenants' model lists, infergw-replica --model), and the printable-word
 * check the other name rules (tenant names, replica ids) are made of.
 *
 * A pool name is 1..GW_POOL_NAME_MAX bytes of printable ASCII (0x21..0x7e:
 * no space, no control byte, nothing above 0x7e) without ','. ',' separates
 * names in lists (tenants' models, --pool replicas, hedge_exclude); '='
 * needs no refusal, since "--pool NAME=..." ends the name at the first '='.
 * Pure: no allocation, no I/O.
 */
#ifndef INFERGW_NAMES_H
#define INFERGW_NAMES_H

#include <stddef.h>

#define GW_POOL_NAME_MAX 255

/* 1 when the <n> bytes at <s> are 1..<max> bytes of printable ASCII
 * (0x21..0x7e) none of which is in <refused> (a NUL-terminated list, may be
 * ""); else 0. */
int gw_name_word(const char *s, size_t n, size_t max, const char *refused);

/* 1 when the <n> bytes at <s> are a valid pool name (above), else 0. */
int gw_pool_name_valid(const char *s, size_t n);

#endif
