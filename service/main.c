/* main: command-line dispatch. Global options come before the subcommand;
 * each subcommand parses its own options and answers --help. Exit codes:
 * 0 ok, 1 a user error (with a message that says what to do), 2 usage. */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct command {
    const char *name;
    int (*run)(struct cli *cli, int argc, char **argv);
    const char *summary;
};

static const struct command commands[] = {
    {"serve", cmd_serve, "run the service: scheduler, sender, mailbox watcher, HTTP API"},
    {"migrate", cmd_migrate, "apply the database migrations that are missing"},
    {"config", cmd_config_check, "check the configuration file and print what relance will use"},
    {"next-send-time", cmd_next_send_time, "print when a step would go out: wait, window, weekdays, zone"},
    {"classify", cmd_classify, "classify .eml files: reply, auto-reply, bounce, unsubscribe"},
    {"lint", cmd_lint, "check sequence files: file:line:column for every problem"},
    {"contacts", cmd_contacts, "import contacts from CSV, show and list them"},
    {"suppress", cmd_suppress, "suppress addresses or domains: add, remove, list"},
    {"apply", cmd_apply, "lint sequence files and store them: created, updated to vN, unchanged"},
    {"sequences", cmd_sequences, "list applied sequences, or show one's versions and steps"},
    {"preview", cmd_preview, "print the exact message a contact would get for a step"},
    {"accounts", cmd_accounts, "sender accounts: sync from the configuration, list usage, resume"},
    {"enroll", cmd_enroll, "enroll contacts into a sequence"},
    {"enrollments", cmd_enrollments, "show a contact's enrollments: state, next send time and why"},
    {"messages", cmd_messages, "list messages by state (sent, deferred, bounced, unknown...)"},
    {"stats", cmd_stats, "per step and variant: sent, replied, auto-replied, bounced, reply rate"},
    {"pause", cmd_pause, "pause an enrollment, a contact or a whole sequence"},
    {"resume", cmd_pause, "resume what was paused (every send gate is checked again)"},
    {"stop", cmd_pause, "stop an enrollment, a contact or a whole sequence for good"},
    {"version", cmd_version, "print relance's version"},
    {"dkim-sign", cmd_dkim_sign, "sign a message with a DKIM key, or print the DNS record to publish"},
    {"smtp-send", cmd_smtp_send, "send message files through an SMTP account (a connection check)"},
    {"imap-check", cmd_imap_check, "log in to an account's mailbox: folder status, or save a copy in Sent"},
};

static void usage(FILE *f)
{
    fprintf(f,
            "usage: relance [--config FILE] [--log-format text|json] COMMAND [ARGS]\n"
            "\n"
            "Runs B2B follow-up cadences: sequences in YAML, sent over SMTP pools,\n"
            "stopped on replies seen over IMAP.\n"
            "\n"
            "Commands:\n");
    for (size_t i = 0; i < sizeof commands / sizeof commands[0]; i++)
        fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].summary);
    fprintf(f,
            "\n"
            "Global options:\n"
            "  --config FILE        configuration file (default: $RELANCE_CONFIG, else\n"
            "                       ./relance.yaml when present, else built-in defaults)\n"
            "  --log-format FORMAT  text (default) or json lines\n"
            "  -h, --help           this help; 'relance COMMAND --help' for a command\n"
            "\n"
            "Environment: DATABASE_URL, RELANCE_HTTP_LISTEN, RELANCE_CONFIG, ... override\n"
            "the file; see deploy/relance.example.yaml.\n");
}

int main(int argc, char **argv)
{
    struct cli cli = {0};
    int i = 1;

    for (; i < argc && argv[i][0] == '-'; i++) {
        const char *a = argv[i];
        if (strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0) {
            usage(stdout);
            return CLI_OK;
        } else if (strcmp(a, "--version") == 0) {
            return cmd_version(&cli, 1, argv);
        } else if (strcmp(a, "--config") == 0 || strcmp(a, "--log-format") == 0) {
            if (i + 1 >= argc)
                return cli_fail(CLI_USAGE, "%s needs a value (see relance --help)", a);
            if (a[2] == 'c') {
                cli.config_path = argv[++i];
            } else if (log_format_parse(argv[++i], &cli.log_format) < 0) {
                return cli_fail(CLI_USAGE, "--log-format must be text or json, not '%s'", argv[i]);
            } else {
                cli.log_format_given = 1;
            }
        } else if (strncmp(a, "--config=", 9) == 0) {
            cli.config_path = a + 9;
        } else {
            return cli_fail(CLI_USAGE, "unknown option '%s' (see relance --help)", a);
        }
    }
    if (i >= argc) {
        usage(stderr);
        return CLI_USAGE;
    }
    if (!cli.config_path) {
        const char *env = getenv("RELANCE_CONFIG");
        if (env && *env)
            cli.config_path = env;
    }
    log_setup(cli.log_format, LOG_INFO);

    const char *name = argv[i];
    for (size_t c = 0; c < sizeof commands / sizeof commands[0]; c++) {
        if (strcmp(commands[c].name, name) == 0) {
            int rc = commands[c].run(&cli, argc - i, argv + i);
            config_free(cli.config);
            return rc;
        }
    }
    return cli_fail(CLI_USAGE, "unknown command '%s' (see relance --help)", name);
}
