/* SPDX-License-Identifier: Apache-2.0 */
/* ctldoc — the document of infergw-ctl dump/restore: format "infergw-dump",
 * version 1 (docs/backup.md):
 *
 *   {"format": "infergw-dump", "version": 1, "taken_at": "<UTC ISO 8601>",
 *    "config_version": N,
 *    "global":   {tunable: "value", ...},
 *    "pools":    {pool: {"ring": [{"replica": "host:port", "weight": N}, ...],
 *                        "conf": {tunable: "value", ...}}},
 *    "replicas": {"host:port": {"state": "active" | "drain"}},
 *    "tenants":  {name: {"models": "a,b", "rps": "N", "burst": "N"}},
 *    "apikeys":  {sha256-hex: {"tenant": name, "expires_at": "unix s"}}}
 *
 * Values are strings as Redis holds them; weight and the versions are JSON
 * integers. Leases and gateway reports are live state and not part of it.
 *
 * Pure (no Redis, no I/O but the diff printer): checking a document with the
 * gateway's own rules, turning it into the Redis keys it stands for, and
 * the difference between two documents key by key.
 */
#ifndef INFERGW_CTL_DOC_H
#define INFERGW_CTL_DOC_H

#include <jansson.h>
#include <stdio.h>

#include "ctlview.h"

#define CTL_DOC_FORMAT  "infergw-dump"
#define CTL_DOC_VERSION 1

/* Checks <doc> with the rules the gateways apply when they load the keys:
 * pool names (base/names.c), tunables (gw_tunables_set), replica addresses
 * and weights (ctlargs.c), replica states (active, drain), tenant and
 * API-key records (auth/authdb.c; an API key's tenant must be in the
 * document); unknown fields and values of the wrong JSON type are refused
 * too. Each problem goes to <probs> as "<JSON path>: <reason>"
 * ("pools.demo.conf.hedge_delay_ms: ..."). A document of a newer format
 * version is one problem, and nothing else is checked. Returns 0 when
 * there is none, -1 otherwise. */
int ctl_doc_check(const json_t *doc, struct ctl_problems *probs);

/* The keys a checked document stands for, with key prefix <prefix>: a new
 * object key -> {"type": "set" | "ring" | "hash", "fields": {field: value}}.
 * Set members are fields with value ""; a ring's fields are replica ->
 * weight (decimal: its vnodes are written by the caller). Keys that would
 * hold nothing (no pools, an empty conf) are left out, as Redis does not
 * keep empty keys. The version key is not part of it. Returns NULL when
 * out of memory or a key does not fit GW_KEY_LEN. */
json_t *ctl_doc_keys(const json_t *doc, const char *prefix);

/* What turning keys <from> into keys <to> (both from ctl_doc_keys) changes:
 * {"added": N, "removed": N, "changed": N, "unchanged": N, "keys": [{"key",
 * "type", "change": "added" | "removed" | "changed", "fields": [{"field",
 * "old", "new"}]}]}, keys in name order, old/new null where absent. NULL
 * when out of memory. */
json_t *ctl_doc_diff(const json_t *from, const json_t *to);

/* Writes <diff> for people: one line per key ("+ key", "- key", "~ key"),
 * then one per field, then a summary. */
void ctl_doc_print_diff(FILE *out, const json_t *diff);

#endif
