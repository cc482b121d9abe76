/* cmd/version: `relance version` (and `relance --version`), the version
 * the binary was built as. Needs nothing else. */
#include "cli.h"

#include <stdio.h>

int cmd_version(struct cli *cli, int argc, char **argv)
{
    (void)cli;
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance version\n\nPrints relance's version.\n");
        return CLI_OK;
    }
    printf("relance %s\n", RELANCE_VERSION);
    return CLI_OK;
}
