/* cmd/lint: `relance lint PATH...`, the compiler-like check of sequence
 * files. It owns the command line; reading and checking the files is
 * lint.c's, shared with apply and preview. It needs no database; the
 * configuration is read only when one is named (--config or
 * RELANCE_CONFIG), to warn about an unknown sender_pool, so it asks for
 * it itself rather than through main's table. Exit 1 when there is any
 * error, 0 otherwise (warnings included), 2 on usage. */
#include "cli.h"
#include "lint.h"

#include <stdlib.h>

static int run(struct cli *cli, const struct cli_args *args)
{
    const char **pools = NULL, **bulk = NULL;
    struct config *cfg = NULL;
    if (cli->config_path) {
        cfg = cli_config(cli);
        if (!cfg)
            return CLI_ERROR;
        pools = calloc(cfg->n_pools + 1, sizeof *pools);
        bulk = calloc(cfg->n_pools + 1, sizeof *bulk);
        if (!pools || !bulk) {
            free(pools);
            free(bulk);
            return cli_fail(CLI_ERROR, "lint: out of memory");
        }
        for (size_t i = 0, nb = 0; i < cfg->n_pools; i++) {
            pools[i] = cfg->pools[i].name;
            if (cfg->pools[i].bulk)
                bulk[nb++] = cfg->pools[i].name;
        }
    }
    int errors = lint_collect_bulk(args->n_operands, args->operands, pools, bulk, cfg, NULL);
    free(pools);
    free(bulk);
    return errors ? CLI_ERROR : CLI_OK;
}

const struct cli_command cmd_lint = {
    .name = "lint",
    .summary = "check sequence files: file:line:column for every problem",
    .operands = "PATH...",
    .min_operands = 1,
    .max_operands = -1,
    .about = "Checks sequence files (see sequences/README.md) without a database. A PATH is\n"
             "a file or a folder; a folder means its *.yaml and *.yml files, by name, not\n"
             "its subfolders. Every problem is printed on stdout as\n"
             "  file:line:column: message\n"
             "  file:line:column: warning: message\n"
             "all of a file's problems at once, in file order. Time zones are checked\n"
             "against the system's tz database ($TZDIR or /usr/share/zoneinfo). With a\n"
             "configuration (--config or RELANCE_CONFIG), an unknown sender_pool is a warning,\n"
             "and so is a sequence of a pool marked bulk: true that shows no link to opt out\n"
             "(an unsubscribe footer, or {{unsubscribe_url}} in each step), and so is a\n"
             "tracked sequence (track:) whose pool sends from a domain without its own\n"
             "tracking_domain (tracking.domains in the configuration).\n"
             "\n"
             "Exit status: 0 when there is no error (warnings allowed), 1 when any file has\n"
             "an error or cannot be read, 2 on a usage error.\n",
    .run = run,
};
