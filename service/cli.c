/* cli: shared plumbing of the subcommands, and the small commands that
 * need nothing else (version, migrate, config). */
#include "cli.h"

#include "migrate.h"

#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <unistd.h>

int cli_fail(int code, const char *fmt, ...)
{
    va_list ap;
    fputs("relance: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
    return code;
}

int cli_exec(PGconn *conn, const char *sql)
{
    PGresult *r = PQexec(conn, sql);
    int ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    if (!ok)
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
    PQclear(r);
    return ok ? 0 : -1;
}

int cli_wants_help(int argc, char **argv)
{
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--") == 0)
            break;
        if (strcmp(argv[i], "-h") == 0 || strcmp(argv[i], "--help") == 0)
            return 1;
    }
    return 0;
}

struct config *cli_config(struct cli *cli)
{
    if (cli->config)
        return cli->config;
    const char *path = cli->config_path;
    if (!path && access("relance.yaml", F_OK) == 0)
        path = "relance.yaml";
    char err[600];
    cli->config = config_load(path, err, sizeof err);
    if (!cli->config) {
        fprintf(stderr, "relance: config error: %s\n", err);
        return NULL;
    }
    enum log_format f = cli->log_format;
    enum log_level level = LOG_INFO;
    if (!cli->log_format_given && log_format_parse(cli->config->log_format, &f) < 0) {
        /* config_load checked it; a failed parse leaves the default */
    }
    if (log_level_parse(cli->config->log_level, &level) < 0) {
        /* likewise */
    }
    log_setup(f, level);
    return cli->config;
}

static void quiet_notice(void *arg, const char *msg)
{
    (void)arg;
    (void)msg;
}

PGconn *cli_db_connect(struct cli *cli, int migrated)
{
    struct config *cfg = cli_config(cli);
    if (!cfg)
        return NULL;
    PGconn *conn = PQconnectdb(cfg->database_url);
    if (PQstatus(conn) != CONNECTION_OK) {
        char where[512], why[512];
        config_conninfo_redact(cfg->database_url, where, sizeof where);
        config_conninfo_error(cfg->database_url, PQerrorMessage(conn), why, sizeof why);
        /* no "(where)" for libpq's defaults, nor for the placeholder of a
         * string that does not parse: why says that */
        int shown = *where && *where != '(';
        fprintf(stderr, "relance: cannot connect to the database%s%s%s: %s\n", shown ? " (" : "", shown ? where : "",
                shown ? ")" : "", why);
        fprintf(stderr, "relance: set DATABASE_URL (or database_url in the configuration) to a reachable "
                        "PostgreSQL\n");
        PQfinish(conn);
        return NULL;
    }
    PQsetNoticeProcessor(conn, quiet_notice, NULL);
    if (migrated) {
        char err[512];
        int rc = migrate_check(conn, err, sizeof err);
        if (rc <= 0) {
            if (rc < 0)
                fprintf(stderr, "relance: %s\n", err);
            else
                fprintf(stderr, "relance: the database is not migrated: run 'relance migrate' first\n");
            PQfinish(conn);
            return NULL;
        }
    }
    return conn;
}

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

int cmd_migrate(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance migrate [--status]\n\n"
               "Applies the embedded migrations (sql/migrations/NNN_*.sql) that the database\n"
               "lacks, then the function files (sql/functions/) whose content changed, in one\n"
               "transaction, under an advisory lock. Running it twice is a no-op; a migration\n"
               "changed after it was applied is an error.\n"
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
            printf("up to date (%d migrations, %d function files)\n", migrations_embedded_count,
                   functions_embedded_count);
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

int cmd_config_check(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance config\n\n"
               "Reads the configuration (file, then environment) and prints the settings\n"
               "relance will use, with secrets left out. Exit 1 on any error.\n");
        return CLI_OK;
    }
    if (argc > 1)
        return cli_fail(CLI_USAGE, "config: unexpected argument '%s'", argv[1]);
    struct config *cfg = cli_config(cli);
    if (!cfg)
        return CLI_ERROR;
    char db[512];
    config_conninfo_redact(cfg->database_url, db, sizeof db);
    printf("file: %s\n", cfg->path ? cfg->path : "(none: defaults and environment)");
    printf("database_url: %s\n", *db ? db : "(libpq defaults)");
    printf("http.listen: %s\n", cfg->http_listen);
    printf("transport: %s\n", cfg->transport);
    for (size_t i = 0; i < cfg->n_pools; i++) {
        printf("pool %s: %zu account%s\n", cfg->pools[i].name, cfg->pools[i].n_accounts,
               cfg->pools[i].n_accounts == 1 ? "" : "s");
        for (size_t j = 0; j < cfg->pools[i].n_accounts; j++) {
            /* the two logins apart: auth: none no longer implies the
             * mailbox has none */
            const struct config_account *a = &cfg->pools[i].accounts[j];
            printf("  %s (smtp auth: %s", a->email, a->auth ? a->auth : "password");
            if (a->imap)
                printf(", imap auth: %s", a->imap_auth ? a->imap_auth : "password");
            printf(")\n");
        }
    }
    for (size_t i = 0; i < cfg->n_dkim; i++)
        printf("dkim %s: selector %s\n", cfg->dkim[i].domain, cfg->dkim[i].selector);
    return CLI_OK;
}
