/* cmd/lint: `relance lint PATH...`, the compiler-like check of sequence
 * files. It owns the command line; reading and checking the files is
 * lint.c's, shared with apply and preview. It needs no database; the
 * configuration is read only when one is named (--config or
 * RELANCE_CONFIG), to warn about an unknown sender_pool. Exit 1 when
 * there is any error, 0 otherwise (warnings included), 2 on usage. */
#include "cli.h"
#include "lint.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void usage(FILE *f)
{
    fprintf(f,
            "usage: relance lint PATH...\n"
            "\n"
            "Checks sequence files (see sequences/README.md) without a database. A PATH is\n"
            "a file or a folder; a folder means its *.yaml and *.yml files, by name, not\n"
            "its subfolders. Every problem is printed on stdout as\n"
            "  file:line:column: message\n"
            "  file:line:column: warning: message\n"
            "all of a file's problems at once, in file order. Time zones are checked\n"
            "against the system's tz database ($TZDIR or /usr/share/zoneinfo). With a\n"
            "configuration (--config or RELANCE_CONFIG), an unknown sender_pool is a warning.\n"
            "\n"
            "Exit status: 0 when there is no error (warnings allowed), 1 when any file has\n"
            "an error or cannot be read, 2 on a usage error.\n");
}

int cmd_lint(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        usage(stdout);
        return CLI_OK;
    }
    int first = 1;
    if (first < argc && strcmp(argv[first], "--") == 0)
        first++;
    else
        for (int i = 1; i < argc; i++)
            if (argv[i][0] == '-' && argv[i][1] != '\0')
                return cli_fail(CLI_USAGE, "lint: unknown option '%s' (see relance lint --help)", argv[i]);
    if (first >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }

    const char **pools = NULL;
    if (cli->config_path) {
        struct config *cfg = cli_config(cli);
        if (!cfg)
            return CLI_ERROR;
        pools = calloc(cfg->n_pools + 1, sizeof *pools);
        if (!pools)
            return cli_fail(CLI_ERROR, "lint: out of memory");
        for (size_t i = 0; i < cfg->n_pools; i++)
            pools[i] = cfg->pools[i].name;
    }
    int errors = lint_collect(argc - first, argv + first, pools, NULL);
    free(pools);
    return errors ? CLI_ERROR : CLI_OK;
}
