/* cmd/version: `relance version` (and `relance --version`), the version
 * the binary was built as. Needs nothing else. */
#include "cli.h"

#include <stdio.h>

static int run(struct cli *cli, const struct cli_args *args)
{
    (void)cli;
    (void)args;
    printf("relance %s\n", RELANCE_VERSION);
    return CLI_OK;
}

const struct cli_command cmd_version = {
    .name = "version",
    .summary = "print relance's version",
    .about = "Prints relance's version.\n",
    .run = run,
};
