/* SPDX-License-Identifier: Apache-2.0 */
/* badabi — a plugin that reports a plugin ABI version infergw does not
 * speak; the tests check that infergw refuses to start with it. */
#include "infergw/plugin.h"

static const struct infergw_plugin badabi_plugin = {
    .abi_version = INFERGW_PLUGIN_ABI_VERSION + 1,
    .name = "badabi",
};

__attribute__((visibility("default"))) const struct infergw_plugin *infergw_plugin_v1(void)
{
    return &badabi_plugin;
}
