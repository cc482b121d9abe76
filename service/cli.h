/* cli: what every command shares — the global options, the lazily
 * loaded configuration, a database connection for commands (blocking
 * libpq; commands are not the service loop), the exit codes, and the
 * commands main dispatches (one file each in service/cmd/). */
#ifndef RELANCE_CLI_H
#define RELANCE_CLI_H

#include "config.h"
#include "log.h"

#include <libpq-fe.h>
#include <stddef.h>

enum cli_exit { CLI_OK = 0, CLI_ERROR = 1, CLI_USAGE = 2 };

struct cli {
    const char *config_path;   /* --config, RELANCE_CONFIG, ./relance.yaml, or NULL */
    enum log_format log_format;
    int log_format_given;
    struct config *config;     /* loaded by cli_config */
};

/* The configuration, loaded on first use. On error prints one line to
 * stderr and returns NULL; the command then exits CLI_ERROR. */
struct config *cli_config(struct cli *cli);

/* A connected database for a command: prints a clear line and returns
 * NULL when the database cannot be reached. When migrated is set, also
 * refuses a database that `relance migrate` has not brought up to date. */
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

/* True when argv holds -h or --help. */
int cli_wants_help(int argc, char **argv);

/* Prints "relance: <message>" to stderr; returns code. */
int cli_fail(int code, const char *fmt, ...) __attribute__((format(printf, 2, 3)));

/* Subcommands: argv[0] is the subcommand's name. */
int cmd_serve(struct cli *cli, int argc, char **argv);
int cmd_migrate(struct cli *cli, int argc, char **argv);
int cmd_version(struct cli *cli, int argc, char **argv);
int cmd_config_check(struct cli *cli, int argc, char **argv);
int cmd_contacts(struct cli *cli, int argc, char **argv);
int cmd_suppress(struct cli *cli, int argc, char **argv);
int cmd_apply(struct cli *cli, int argc, char **argv);
int cmd_sequences(struct cli *cli, int argc, char **argv);
int cmd_preview(struct cli *cli, int argc, char **argv);
int cmd_enroll(struct cli *cli, int argc, char **argv);
int cmd_accounts(struct cli *cli, int argc, char **argv);
int cmd_enrollments(struct cli *cli, int argc, char **argv);
int cmd_messages(struct cli *cli, int argc, char **argv);
int cmd_stats(struct cli *cli, int argc, char **argv);
/* pause, resume and stop: argv[0] says which. */
int cmd_pause(struct cli *cli, int argc, char **argv);
int cmd_next_send_time(struct cli *cli, int argc, char **argv);
int cmd_classify(struct cli *cli, int argc, char **argv);
int cmd_lint(struct cli *cli, int argc, char **argv);
int cmd_dkim_sign(struct cli *cli, int argc, char **argv);
int cmd_smtp_send(struct cli *cli, int argc, char **argv);
int cmd_imap_check(struct cli *cli, int argc, char **argv);

#endif
