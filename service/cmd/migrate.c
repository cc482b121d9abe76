/* cmd/migrate: `relance migrate [--status]`, the command face of
 * migrate.c: it applies the embedded migrations the database lacks, or
 * only says whether it is up to date. The migrations, their checksums and
 * the advisory lock are migrate.c's. */
#include "cli.h"

#include "migrate.h"

#include <stdio.h>
#include <string.h>

int cmd_migrate(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance migrate [--status]\n\n"
               "Applies the embedded migrations (sql/NNN_*.sql) that the database lacks, each\n"
               "in its own transaction, under an advisory lock. Running it twice is a no-op;\n"
               "a migration changed after it was applied is an error.\n"
               "  --status   only report whether the database is up to date (exit 1 if not)\n");
        return CLI_OK;
    }
    int status_only = 0;
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--status") == 0)
            status_only = 1;
        else
            return cli_fail(CLI_USAGE, "migrate: unknown argument '%s' (see relance migrate --help)", argv[i]);
    }
    PGconn *conn = cli_db_connect(cli, 0);
    if (!conn)
        return CLI_ERROR;
    char err[1024];
    int rc;
    if (status_only) {
        rc = migrate_check(conn, err, sizeof err);
        if (rc > 0)
            printf("up to date (%d migrations)\n", migrations_embedded_count);
        else if (rc == 0)
            printf("not migrated: run 'relance migrate'\n");
        else
            fprintf(stderr, "relance: %s\n", err);
        rc = rc > 0 ? CLI_OK : CLI_ERROR;
    } else {
        rc = migrate_run(conn, stdout, err, sizeof err) == 0 ? CLI_OK : CLI_ERROR;
        if (rc != CLI_OK)
            fprintf(stderr, "relance: %s\n", err);
    }
    PQfinish(conn);
    return rc;
}
