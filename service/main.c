/* main: the command table and its dispatch, as git.c's. relance's own
 * options come before the command; each command's options are read from
 * its table (cli_options.c), so a usage error or --help needs nothing
 * else; then main sets up what the command's entry says it needs — the
 * configuration, a database connection, a migrated database — once, hands
 * it to the command in struct cli, and closes it after. Exit codes: 0 ok,
 * 1 an error (with a message that says what to do), 2 usage. */
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* What a command needs before it runs. A command that needs one only
 * sometimes (preview's database, lint's configuration) asks cli.c
 * itself, and declares nothing. */
enum needs {
    NEEDS_CONFIG = 1u << 0,                /* the configuration, checked; logging set from it */
    NEEDS_DB = 1u << 1 | NEEDS_CONFIG,     /* a database connection (its URL is configuration) */
    NEEDS_MIGRATED = 1u << 2 | NEEDS_DB,   /* ... to a database `relance migrate` brought up to date */
};

struct command {
    const struct cli_command *cmd;
    unsigned needs;
};

/* `relance help [COMMAND [SUBCOMMAND]]`: the same text as --help, for
 * those who type it as git's. It needs main's table, so it lives here. */
static int help(struct cli *cli, const struct cli_args *args);

static const struct cli_command cmd_help = {
    .name = "help",
    .summary = "this list; 'relance help COMMAND' is 'relance COMMAND --help'",
    .operands = "[COMMAND [SUBCOMMAND]]",
    .max_operands = 2,
    .run = help,
};

static const struct command commands[] = {
    {&cmd_serve, NEEDS_CONFIG}, /* it connects on its own loop, and keeps running without a database */
    {&cmd_migrate, NEEDS_DB},
    {&cmd_config, NEEDS_CONFIG},
    {&cmd_next_send_time, NEEDS_MIGRATED},
    {&cmd_classify, 0},
    {&cmd_lint, 0},
    {&cmd_contacts, NEEDS_MIGRATED},
    {&cmd_suppress, NEEDS_MIGRATED},
    {&cmd_apply, NEEDS_MIGRATED},
    {&cmd_sequences, NEEDS_MIGRATED},
    {&cmd_preview, 0},
    {&cmd_accounts, NEEDS_MIGRATED},
    {&cmd_api_keys, NEEDS_MIGRATED},
    {&cmd_webhooks, 0}, /* list and deliveries connect themselves; secret needs nothing */
    {&cmd_enroll, NEEDS_MIGRATED},
    {&cmd_enrollments, NEEDS_MIGRATED},
    {&cmd_messages, NEEDS_MIGRATED},
    {&cmd_stats, NEEDS_MIGRATED},
    {&cmd_prune, NEEDS_MIGRATED},
    {&cmd_pause, NEEDS_MIGRATED},
    {&cmd_resume, NEEDS_MIGRATED},
    {&cmd_stop, NEEDS_MIGRATED},
    {&cmd_version, 0},
    {&cmd_dkim_sign, 0},
    {&cmd_smtp_send, 0},
    {&cmd_imap_check, NEEDS_CONFIG},
    {&cmd_healthcheck, NEEDS_CONFIG}, /* http.listen says where to ask */
    {&cmd_help, 0},
};

#define N_COMMANDS (sizeof commands / sizeof commands[0])

enum { OPT_CONFIG, OPT_LOG_FORMAT, OPT_VERSION };

static const struct cli_option global_options[] = {
    [OPT_CONFIG] = {"config", 0, "FILE",
                    "configuration file (default: $RELANCE_CONFIG, else\n"
                    "./relance.yaml when present, else built-in defaults)", 0, 0},
    [OPT_LOG_FORMAT] = {"log-format", 0, "FORMAT", "text (default) or json lines", 0, 0},
    [OPT_VERSION] = {"version", 0, NULL, "print relance's version", 0, 0},
    {0},
};

static const struct cli_command relance = {
    .name = "",
    .operands = "COMMAND [ARGS]",
    .max_operands = -1,
    .about = "Runs B2B follow-up cadences: sequences in YAML, sent over SMTP pools,\n"
             "stopped on replies seen over IMAP.\n",
    .options = global_options,
    .stop_at_operand = 1,
};

static void usage(FILE *f)
{
    cli_command_help(&relance, "", f);
    int width = 0;
    for (size_t i = 0; i < N_COMMANDS; i++)
        if ((int)strlen(commands[i].cmd->name) > width)
            width = (int)strlen(commands[i].cmd->name);
    fprintf(f, "\nCommands:\n");
    for (size_t i = 0; i < N_COMMANDS; i++)
        fprintf(f, "  %-*s  %s\n", width, commands[i].cmd->name, commands[i].cmd->summary);
    fprintf(f, "\n"
               "'relance COMMAND --help' describes a command and its options.\n"
               "Environment: DATABASE_URL, RELANCE_HTTP_LISTEN, RELANCE_CONFIG, ... override\n"
               "the file; see deploy/relance.example.yaml.\n");
}

/* Each level includes the ones below it: all of its bits must be set. */
static int needs(const struct command *c, unsigned what)
{
    return (c->needs & what) == what;
}

/* Parses the command's line, sets up what it needs, runs it. */
static int dispatch(struct cli *cli, const struct command *c, int argc, char **argv)
{
    struct cli_args args;
    int rc = cli_args_parse(c->cmd, c->cmd->name, argc, argv, &args, stderr);
    if (rc == CLI_ARGS_HELP) {
        cli_command_help(args.command, args.name, stdout);
        cli_args_free(&args);
        return CLI_OK;
    }
    if (rc < 0)
        return rc == -ENOMEM ? CLI_ERROR : CLI_USAGE;
    rc = CLI_ERROR;
    if (needs(c, NEEDS_CONFIG) && !cli_config(cli))
        goto out;
    if (needs(c, NEEDS_DB) && !cli_db_connect(cli, needs(c, NEEDS_MIGRATED)))
        goto out;
    rc = args.command->run(cli, &args);
out:
    cli_args_free(&args);
    return rc;
}

static const struct command *command_find(const char *name)
{
    for (size_t i = 0; i < N_COMMANDS; i++)
        if (strcmp(commands[i].cmd->name, name) == 0)
            return &commands[i];
    return NULL;
}

static int help(struct cli *cli, const struct cli_args *args)
{
    if (args->n_operands == 0) {
        usage(stdout);
        return CLI_OK;
    }
    const struct command *c = command_find(args->operands[0]);
    if (!c)
        return cli_fail(CLI_USAGE, "help: unknown command '%s' (see relance --help)", args->operands[0]);
    /* The command's own line with --help after it: its parser prints
     * the help, or its usage error for an unknown subcommand. */
    static char help_flag[] = "--help";
    char *argv[3];
    int n = 0;
    for (; n < args->n_operands; n++)
        argv[n] = args->operands[n];
    argv[n++] = help_flag;
    return dispatch(cli, c, n, argv);
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    struct cli_args global;
    int rc = cli_args_parse(&relance, "", argc, argv, &global, stderr);
    if (rc == CLI_ARGS_HELP) {
        usage(stdout);
        cli_args_free(&global);
        return CLI_OK;
    }
    if (rc < 0)
        return rc == -ENOMEM ? CLI_ERROR : CLI_USAGE;
    static char version[] = "version";
    char *version_argv[] = {version};
    int n = global.n_operands;
    char **rest = global.operands;
    if (cli_args_count(&global, OPT_VERSION)) {
        n = 1;
        rest = version_argv;
    }
    cli.config_path = cli_args_value(&global, OPT_CONFIG);
    const char *format = cli_args_value(&global, OPT_LOG_FORMAT);
    if (format && log_format_parse(format, &cli.log_format) < 0) {
        rc = cli_fail(CLI_USAGE, "--log-format must be text or json, not '%s'", format);
        goto out;
    }
    cli.log_format_given = format != NULL;
    if (n == 0) {
        usage(stderr);
        rc = CLI_USAGE;
        goto out;
    }
    if (!cli.config_path) {
        const char *env = getenv("RELANCE_CONFIG");
        if (env && *env)
            cli.config_path = env;
    }
    log_setup(cli.log_format, LOG_INFO);

    const struct command *c = command_find(rest[0]);
    if (c)
        rc = dispatch(&cli, c, n, rest);
    else
        rc = cli_fail(CLI_USAGE, "unknown command '%s' (see relance --help)", rest[0]);
out:
    if (cli.conn)
        PQfinish(cli.conn);
    config_free(cli.config);
    cli_args_free(&global);
    return rc;
}
