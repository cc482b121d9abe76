/* cli_options: the command line of every relance command, read from one
 * table per command. A command declares its options (long name, short
 * letter, the value it takes, its help line), its operands and, when it has
 * them, its subcommands; cli_args_parse reads argv against that table and
 * cli_command_help prints `relance COMMAND --help` from the same table, so
 * the help can never miss an option the parser accepts.
 *
 * The rules, for every command alike: --name VALUE and --name=VALUE; -x
 * VALUE for an option with a short letter (no bundling: -vx is unknown);
 * options and operands in any order; "--" ends the options; a lone "-" is
 * an operand (standard input); -h or --help anywhere before "--" asks for
 * the help; an option given twice keeps its last value, and a repeatable
 * one keeps them all in order. */
#ifndef RELANCE_CLI_OPTIONS_H
#define RELANCE_CLI_OPTIONS_H

#include <stdio.h>

struct cli;
struct cli_args;

enum cli_option_flags {
    CLI_OPTION_REQUIRED = 1u << 0, /* must be given */
    CLI_OPTION_REPEAT = 1u << 1,   /* meant to be given several times: "..." in the usage line */
};

struct cli_option {
    const char *name;   /* the long name without its dashes: "sequence" for --sequence */
    char short_name;    /* 'v' for -v, or 0 */
    const char *value;  /* the value's name in the help ("FILE"); NULL: a flag that takes none */
    const char *help;   /* the help line; '\n' continues it on the next line */
    unsigned flags;     /* enum cli_option_flags */
    unsigned group;     /* options with the same non-zero group: exactly one of them must be given */
};

struct cli_command {
    const char *name;    /* as typed: "serve", or a subcommand's "import" */
    const char *summary; /* one line, for the list of commands or subcommands */
    const char *operands; /* the operands in the usage line ("PATH...", "[FILE]"), or NULL */
    int min_operands, max_operands; /* max_operands < 0: no limit */
    const char *about;   /* the help's paragraphs after the usage line, or NULL */
    const struct cli_option *options; /* NULL, or ends with an entry whose name is NULL */
    /* The words of the unknown-option error where scripts already match
     * them ("unexpected argument"); NULL: "unknown option". */
    const char *unknown;
    /* Options end at the first operand, which starts what follows (the
     * command after relance's own options). */
    int stop_at_operand;
    /* Runs the command once main has parsed it and set up what its entry
     * in main's table needs; returns the exit code (enum cli_exit). */
    int (*run)(struct cli *cli, const struct cli_args *args);
    /* NULL, or ends with an entry whose name is NULL: then the first
     * argument names one, which parses the rest and runs. */
    const struct cli_command *subcommands;
};

struct cli_arg_given {
    int option;         /* index in the command's options */
    const char *value;  /* NULL for a flag */
};

struct cli_args {
    const struct cli_command *command; /* the one that parsed: a subcommand when it has them */
    char name[64];                     /* as typed, for messages: "contacts import" */
    char **operands;                   /* in argv's order; with stop_at_operand, all that follows */
    int n_operands;
    struct cli_arg_given *given;       /* every option in argv's order */
    int n_given;
};

#define CLI_ARGS_HELP 1

/* Reads argv (argv[0] is the command's name as typed, given in name) with
 * cmd's table into *out. Returns 0; CLI_ARGS_HELP when -h or --help asked
 * for the help of out->command (the caller prints it); -EINVAL after
 * writing why to err ("relance: NAME: ..." on one line, or the help when
 * operands or the subcommand are missing); -ENOMEM. On success and on
 * CLI_ARGS_HELP the caller frees *out with cli_args_free; otherwise there
 * is nothing to free. out points into argv, which must outlive it. */
int cli_args_parse(const struct cli_command *cmd, const char *name, int argc, char **argv, struct cli_args *out,
                   FILE *err) __attribute__((warn_unused_result));

void cli_args_free(struct cli_args *a);

/* How many times the option (its index in the command's options) was given. */
int cli_args_count(const struct cli_args *a, int option);

/* The option's last value, or NULL when it was not given (or is a flag). */
const char *cli_args_value(const struct cli_args *a, int option);

/* The values of a repeated option in argv's order: start with *pos = 0,
 * call until it returns NULL. */
const char *cli_args_next(const struct cli_args *a, int option, int *pos);

/* Prints `relance NAME --help` from cmd's table: the usage line (one per
 * subcommand when it has them), its text, then its options or its
 * subcommands. */
void cli_command_help(const struct cli_command *cmd, const char *name, FILE *f);

#endif
