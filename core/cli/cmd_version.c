/* surplus version */
#include <jansson.h>
#include <stdio.h>

#include <surplus/plugin.h>

#include "cli.h"

int cmd_version(struct cli *cli, int argc, char **argv)
{
    (void)argc;
    (void)argv;
    if (cli->json) {
        json_t *o = json_pack("{s:s, s:s}", "version", PACKAGE_VERSION,
                              "plugin_abi", SURPLUS_ABI_STRING);
        json_dumpf(o, stdout, JSON_INDENT(2));
        putchar('\n');
        json_decref(o);
        return 0;
    }
    printf("surplus %s (plugin ABI %s)\n", PACKAGE_VERSION,
           SURPLUS_ABI_STRING);
    return 0;
}
