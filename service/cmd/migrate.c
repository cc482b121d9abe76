/* cmd/migrate: `relance migrate [--status]`, the command face of
 * migrate.c: it applies the embedded migrations the database lacks and
 * the function files that changed, or only says whether it is up to
 * date. The migrations, their checksums and
 * the advisory lock are migrate.c's; main opens the connection. */
#include "cli.h"

#include "migrate.h"

#include <stdio.h>

enum { OPT_STATUS };

static const struct cli_option options[] = {
    [OPT_STATUS] = {"status", 0, NULL, "only report whether the database is up to date (exit 1 if not)", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    PGconn *conn = cli->conn;
    char err[1024];
    int rc;
    if (cli_args_count(args, OPT_STATUS)) {
        rc = migrate_check(conn, err, sizeof err);
        if (rc > 0)
            printf("up to date (%d migrations, %d function files)\n", migrations_embedded_count,
                   functions_embedded_count);
        else if (rc == 0)
            printf("not migrated: run 'relance migrate'\n");
        else
            fprintf(stderr, "relance: %s\n", err);
        return rc > 0 ? CLI_OK : CLI_ERROR;
    }
    rc = migrate_run(conn, stdout, err, sizeof err) == 0 ? CLI_OK : CLI_ERROR;
    if (rc != CLI_OK)
        fprintf(stderr, "relance: %s\n", err);
    return rc;
}

const struct cli_command cmd_migrate = {
    .name = "migrate",
    .summary = "apply the database migrations that are missing",
    .about = "Applies the embedded migrations (sql/migrations/NNN_*.sql) that the database\n"
             "lacks, then the function files (sql/functions/) whose content changed, in one\n"
             "transaction, under an advisory lock. Running it twice is a no-op; a migration\n"
             "changed after it was applied is an error.\n",
    .options = options,
    .run = run,
};
