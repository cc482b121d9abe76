/* cli: the plumbing every command shares — the configuration and the
 * database connection (main sets them up for a command whose table entry
 * asks; a command that needs them only sometimes, like preview, asks here
 * itself), blocking libpq helpers and the one-line error. The commands
 * themselves are in service/cmd/; their command lines are read by
 * cli_options.c. */
#include "cli.h"

#include "clock.h"
#include "migrate.h"

#include <errno.h>
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

PGresult *cli_query(PGconn *conn, const char *sql, int n, const char *const *params)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, params, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

int cli_now(char *buf, size_t len)
{
    char err[200];
    if (clock_setup(err, sizeof err) < 0) {
        fprintf(stderr, "relance: %s\n", err);
        return -1;
    }
    clock_format(clock_now(), buf, len);
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
    if (cli->conn)
        return cli->conn;
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
    cli->conn = conn;
    return conn;
}

int cli_read(FILE *f, size_t max, int crlf, struct buf *out)
{
    char chunk[65536];
    int prev = -1, rc = 0, read_errno = 0;
    for (;;) {
        errno = 0;
        size_t n = fread(chunk, 1, sizeof chunk, f);
        if (n == 0) {
            read_errno = ferror(f) ? (errno ? errno : EIO) : 0;
            break;
        }
        if (!crlf) {
            buf_add(out, chunk, n);
        } else {
            for (size_t i = 0; i < n; i++) {
                char c = chunk[i];
                if (c == '\n' && prev != '\r')
                    buf_addc(out, '\r');
                else if (prev == '\r' && c != '\n')
                    buf_addc(out, '\n');
                buf_addc(out, c);
                prev = (unsigned char)c;
            }
        }
        if (out->oom || out->len > max)
            break;
    }
    if (prev == '\r')
        buf_addc(out, '\n');
    buf_add(out, "", 0); /* an empty file is still a string */
    if (out->oom)
        rc = -ENOMEM;
    else if (out->len > max)
        rc = -EFBIG;
    else if (read_errno)
        rc = -read_errno; /* a directory says "Is a directory" */
    return rc;
}

int cli_read_file(const char *path, size_t max, int crlf, struct buf *out)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    int rc = cli_read(f, max, crlf, out);
    fclose(f);
    return rc;
}
