/* cli: what every command shares — the global options, the
 * configuration and the database connection (main sets them up before a
 * command whose entry in its table asks for them; a command that needs
 * them only sometimes asks here itself), blocking libpq helpers (commands
 * are not the service loop), the exit codes, and the commands main
 * dispatches (one file each in service/cmd/). */
#ifndef RELANCE_CLI_H
#define RELANCE_CLI_H

#include "buf.h"
#include "cli_options.h"
#include "config.h"
#include "log.h"

#include <libpq-fe.h>
#include <stddef.h>
#include <stdio.h>

enum cli_exit { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

struct cli {
    const char *config_path;   /* --config, RELANCE_CONFIG, ./relance.yaml, or NULL */
    enum log_format log_format;
    int log_format_given;
    struct config *config;     /* loaded by cli_config; main frees it */
    PGconn *conn;              /* opened by cli_db_connect; main closes it */
};

/* The configuration, loaded on first use (by main, before a command that
 * needs it runs). On error prints one line to stderr and returns NULL;
 * the command then exits CLI_ERROR. */
struct config *cli_config(struct cli *cli);

/* The command's database connection, opened on first use (by main,
 * before a command that needs one runs) and kept in cli->conn, which main
 * closes after the command. Prints a clear line and returns NULL when the
 * database cannot be reached; when migrated is set, also refuses a
 * database that `relance migrate` has not brought up to date (the first
 * call decides). */
PGconn *cli_db_connect(struct cli *cli, int migrated);

/* Runs one statement on a command's connection; prints the server's
 * message and returns -1 when it fails. */
int cli_exec(PGconn *conn, const char *sql) __attribute__((warn_unused_result));

/* Runs one statement with text parameters; NULL after printing the
 * server's message when it fails. The caller PQclear()s the result. */
PGresult *cli_query(PGconn *conn, const char *sql, int n, const char *const *params);

/* Now, by relance's clock (RELANCE_TEST_CLOCK moves it in tests), as
 * PostgreSQL reads it. Returns 0, or -1 after printing why. */
int cli_now(char *buf, size_t len) __attribute__((warn_unused_result));

/* Reads all of f (a file the command opened, or stdin) into out (start
 * from {0}; the caller frees it with buf_free, also after an error). With
 * crlf, every line break (LF, CR or CRLF) becomes CRLF, as SMTP and DKIM
 * want a message file written on Unix. Returns 0, or -EFBIG past max
 * bytes, -ENOMEM, or -errno when reading fails. */
int cli_read(FILE *f, size_t max, int crlf, struct buf *out) __attribute__((warn_unused_result));
/* The same for the file at path; -errno when it cannot be opened. */
int cli_read_file(const char *path, size_t max, int crlf, struct buf *out) __attribute__((warn_unused_result));

/* Prints "relance: <message>" to stderr; returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* The commands main dispatches, one file each in service/cmd/. */
extern const struct cli_command cmd_serve, cmd_migrate, cmd_config, cmd_version, cmd_next_send_time, cmd_classify,
    cmd_lint, cmd_contacts, cmd_suppress, cmd_apply, cmd_sequences, cmd_preview, cmd_accounts, cmd_enroll,
    cmd_enrollments, cmd_messages, cmd_stats, cmd_pause, cmd_resume, cmd_stop, cmd_dkim_sign, cmd_smtp_send,
    cmd_imap_check;
extern const struct cli_command cmd_api_keys;
extern const struct cli_command cmd_prune;
extern const struct cli_command cmd_webhooks;
extern const struct cli_command cmd_healthcheck;

/* `relance apply PATH...`'s work on cli->conn (a migrated database), for
 * serve's RELANCE_APPLY_SEQUENCES too; returns its exit code. */
int apply_paths(struct cli *cli, int n, char **paths);

#endif
