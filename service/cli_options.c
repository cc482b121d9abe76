/* cli_options: reading a command's argv against its option table, and
 * printing its --help from the same table (see cli_options.h for the
 * rules). It owns the words of the usage errors every command shares
 * (unknown option, missing value, missing or extra operand, a required
 * option, one of a group); what a value means is the command's to check.
 * It does no set-up and never exits: main decides what an error costs. */
#include "cli_options.h"

#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>

#define HELP_WIDTH 80
#define LABEL_MAX 28 /* a longer label puts its help on the next line */

static int is_help(const char *a)
{
    return strcmp(a, "-h") == 0 || strcmp(a, "--help") == 0;
}

static size_t count_options(const struct cli_command *cmd)
{
    size_t n = 0;
    while (cmd->options && cmd->options[n].name)
        n++;
    return n;
}

static int usage_error(FILE *err, const char *name, const char *fmt, ...) __attribute__((format(printf, 3, 4)));

/* "relance: NAME: <message> (see relance NAME --help)" on one line. */
static int usage_error(FILE *err, const char *name, const char *fmt, ...)
{
    va_list ap;
    fprintf(err, "relance: %s%s", name, *name ? ": " : "");
    va_start(ap, fmt);
    vfprintf(err, fmt, ap);
    va_end(ap);
    fprintf(err, " (see relance%s%s --help)\n", *name ? " " : "", name);
    return -EINVAL;
}

/* The option that token names, or -1: "--name" or "--name=value" (*eq
 * then points at the '='), or "-x". */
static int find_option(const struct cli_command *cmd, const char *token, const char **eq)
{
    size_t n = count_options(cmd);
    *eq = NULL;
    if (token[1] == '-') {
        const char *name = token + 2, *e = strchr(name, '=');
        size_t len = e ? (size_t)(e - name) : strlen(name);
        for (size_t i = 0; i < n; i++)
            if (strlen(cmd->options[i].name) == len && strncmp(cmd->options[i].name, name, len) == 0) {
                *eq = e;
                return (int)i;
            }
        return -1;
    }
    if (token[1] == '\0' || token[2] != '\0')
        return -1;
    for (size_t i = 0; i < n; i++)
        if (cmd->options[i].short_name && cmd->options[i].short_name == token[1])
            return (int)i;
    return -1;
}

/* "--a, --b or --c": the members of a group, for its error. */
static void group_names(const struct cli_command *cmd, unsigned group, char *out, size_t len)
{
    size_t n = count_options(cmd), members = 0, at = 0, seen = 0;
    for (size_t i = 0; i < n; i++)
        members += cmd->options[i].group == group;
    out[0] = '\0';
    for (size_t i = 0; i < n && at < len; i++) {
        if (cmd->options[i].group != group)
            continue;
        seen++;
        const char *sep = seen == 1 ? "" : seen == members ? " or " : ", ";
        at += (size_t)snprintf(out + at, len - at, "%s--%s", sep, cmd->options[i].name);
    }
}

/* The index of the first option in option i's group. */
static size_t group_first(const struct cli_command *cmd, size_t i)
{
    size_t k = 0;
    while (cmd->options[k].group != cmd->options[i].group)
        k++;
    return k;
}

/* After the loop: the checks that need all of argv. */
static int check_counts(const struct cli_command *cmd, const char *name, const struct cli_args *a, FILE *err)
{
    if (cmd->max_operands >= 0 && a->n_operands > cmd->max_operands)
        return usage_error(err, name, "unexpected argument '%s'", a->operands[cmd->max_operands]);
    if (a->n_operands < cmd->min_operands) {
        cli_command_help(cmd, name, err);
        return -EINVAL;
    }
    size_t n = count_options(cmd);
    for (size_t i = 0; i < n; i++)
        if ((cmd->options[i].flags & CLI_OPTION_REQUIRED) && cli_args_count(a, (int)i) == 0)
            return usage_error(err, name, "--%s is required", cmd->options[i].name);
    for (size_t i = 0; i < n; i++) {
        unsigned g = cmd->options[i].group;
        if (!g || group_first(cmd, i) != i)
            continue; /* each group once, at its first member */
        int given = 0;
        for (size_t k = i; k < n; k++)
            given += cmd->options[k].group == g && cli_args_count(a, (int)k) > 0;
        if (given == 1)
            continue;
        char names[200];
        group_names(cmd, g, names, sizeof names);
        return usage_error(err, name, "give %s of %s", given ? "only one" : "one", names);
    }
    return 0;
}

static int parse_subcommand(const struct cli_command *cmd, const char *name, int argc, char **argv,
                            struct cli_args *out, FILE *err)
{
    if (argc < 2) {
        cli_command_help(cmd, name, err);
        return -EINVAL;
    }
    if (is_help(argv[1])) {
        memset(out, 0, sizeof *out);
        out->command = cmd;
        snprintf(out->name, sizeof out->name, "%s", name);
        return CLI_ARGS_HELP;
    }
    for (const struct cli_command *sub = cmd->subcommands; sub->name; sub++) {
        if (strcmp(sub->name, argv[1]) != 0)
            continue;
        char full[64];
        snprintf(full, sizeof full, "%s %s", name, sub->name);
        return cli_args_parse(sub, full, argc - 1, argv + 1, out, err);
    }
    char names[200];
    size_t at = 0, n = 0;
    while (cmd->subcommands[n].name)
        n++;
    names[0] = '\0';
    for (size_t i = 0; i < n && at < sizeof names; i++)
        at += (size_t)snprintf(names + at, sizeof names - at, "%s%s", i == 0 ? "" : i + 1 == n ? " or " : ", ",
                               cmd->subcommands[i].name);
    fprintf(err, "relance: %s: unknown subcommand '%s' (%s; see relance %s --help)\n", name, argv[1], names, name);
    return -EINVAL;
}

int cli_args_parse(const struct cli_command *cmd, const char *name, int argc, char **argv, struct cli_args *out,
                   FILE *err)
{
    if (cmd->subcommands)
        return parse_subcommand(cmd, name, argc, argv, out, err);
    memset(out, 0, sizeof *out);
    out->command = cmd;
    snprintf(out->name, sizeof out->name, "%s", name);
    /* Help wins over any error earlier on the line, as it always did;
     * before the command, only relance's own options are looked at. */
    for (int i = 1; i < argc && !cmd->stop_at_operand && strcmp(argv[i], "--") != 0; i++)
        if (is_help(argv[i]))
            return CLI_ARGS_HELP;
    size_t slots = argc > 0 ? (size_t)argc : 1;
    out->operands = calloc(slots, sizeof *out->operands);
    out->given = calloc(slots, sizeof *out->given);
    if (!out->operands || !out->given) {
        cli_args_free(out);
        fprintf(err, "relance: out of memory\n");
        return -ENOMEM;
    }
    int rc = 0, options_end = 0;
    for (int i = 1; i < argc && rc == 0; i++) {
        const char *a = argv[i], *eq;
        if (options_end || a[0] != '-' || a[1] == '\0') {
            out->operands[out->n_operands++] = argv[i];
            options_end = cmd->stop_at_operand;
            continue;
        }
        if (strcmp(a, "--") == 0) {
            options_end = 1;
            continue;
        }
        if (is_help(a)) {
            rc = CLI_ARGS_HELP; /* relance --config F --help: found in order */
            break;
        }
        int o = find_option(cmd, a, &eq);
        if (o < 0) {
            rc = usage_error(err, name, "%s '%s'", cmd->unknown ? cmd->unknown : "unknown option", a);
            break;
        }
        const struct cli_option *opt = &cmd->options[o];
        const char *value = NULL;
        if (!opt->value && eq) {
            rc = usage_error(err, name, "--%s takes no value", opt->name);
        } else if (opt->value && eq) {
            value = eq + 1;
        } else if (opt->value && i + 1 < argc) {
            value = argv[++i];
        } else if (opt->value) {
            rc = usage_error(err, name, "%s needs a value", a);
        }
        out->given[out->n_given++] = (struct cli_arg_given){o, value};
    }
    if (rc == 0)
        rc = check_counts(cmd, name, out, err);
    if (rc < 0)
        cli_args_free(out);
    return rc;
}

void cli_args_free(struct cli_args *a)
{
    free(a->operands);
    free(a->given);
    a->operands = NULL;
    a->given = NULL;
    a->n_operands = a->n_given = 0;
}

int cli_args_count(const struct cli_args *a, int option)
{
    int n = 0;
    for (int i = 0; i < a->n_given; i++)
        n += a->given[i].option == option;
    return n;
}

const char *cli_args_value(const struct cli_args *a, int option)
{
    for (int i = a->n_given; i-- > 0;)
        if (a->given[i].option == option)
            return a->given[i].value;
    return NULL;
}

const char *cli_args_next(const struct cli_args *a, int option, int *pos)
{
    while (*pos < a->n_given) {
        const struct cli_arg_given *g = &a->given[(*pos)++];
        if (g->option == option)
            return g->value;
    }
    return NULL;
}

/* ---- help ------------------------------------------------------------------ */

/* "-v" or "--name VALUE" as the usage line shows an option. */
static void option_usage(const struct cli_option *o, char *out, size_t len)
{
    if (o->short_name && !o->value)
        snprintf(out, len, "-%c", o->short_name);
    else
        snprintf(out, len, "--%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
}

struct line {
    FILE *f;
    size_t col, indent;
};

/* Adds one piece to the usage line, wrapping before it at HELP_WIDTH. */
static void line_add(struct line *l, const char *piece)
{
    size_t n = strlen(piece);
    if (l->col + 1 + n > HELP_WIDTH && l->col > l->indent) {
        fprintf(l->f, "\n%*s", (int)l->indent, "");
        l->col = l->indent;
    } else {
        fputc(' ', l->f);
        l->col++;
    }
    fputs(piece, l->f);
    l->col += n;
}

static void usage_line(const struct cli_command *cmd, const char *name, const char *lead, FILE *f)
{
    struct line l = {f, 0, 0};
    l.col = (size_t)fprintf(f, "%srelance%s%s", lead, *name ? " " : "", name);
    l.indent = l.col + 1;
    size_t n = count_options(cmd);
    for (size_t i = 0; i < n; i++) {
        const struct cli_option *o = &cmd->options[i];
        char piece[300], one[120];
        size_t at = 0;
        if (o->group) {
            if (group_first(cmd, i) != i)
                continue;
            for (size_t k = i; k < n; k++) {
                if (cmd->options[k].group != o->group)
                    continue;
                option_usage(&cmd->options[k], one, sizeof one);
                at += (size_t)snprintf(piece + at, sizeof piece - at, "%s%s%s", at ? " | " : "(", one,
                                       cmd->options[k].flags & CLI_OPTION_REPEAT ? "..." : "");
                if (at >= sizeof piece)
                    at = sizeof piece - 1;
            }
            snprintf(piece + at, sizeof piece - at, ")");
        } else {
            option_usage(o, one, sizeof one);
            int required = o->flags & CLI_OPTION_REQUIRED;
            snprintf(piece, sizeof piece, "%s%s%s%s", required ? "" : "[", one, required ? "" : "]",
                     o->flags & CLI_OPTION_REPEAT ? "..." : "");
        }
        line_add(&l, piece);
    }
    if (cmd->operands)
        line_add(&l, cmd->operands);
    fputc('\n', f);
}

/* "  -v, --verbose" or "  --since DATE": an option's label in the list. */
static int option_label(const struct cli_option *o, char *out, size_t len)
{
    if (o->short_name)
        return snprintf(out, len, "  -%c, --%s%s%s", o->short_name, o->name, o->value ? " " : "",
                        o->value ? o->value : "");
    return snprintf(out, len, "  --%s%s%s", o->name, o->value ? " " : "", o->value ? o->value : "");
}

/* The help text at column col, each of its lines indented alike. */
static void help_text(const char *text, int col, FILE *f)
{
    for (const char *p = text;;) {
        size_t n = strcspn(p, "\n");
        fprintf(f, "%.*s\n", (int)n, p);
        if (!p[n])
            break;
        p += n + 1;
        fprintf(f, "%*s", col, "");
    }
}

static void options_list(const struct cli_command *cmd, FILE *f)
{
    static const struct cli_option help = {"help", 'h', NULL, "this help", 0, 0};
    size_t n = count_options(cmd);
    int width = 0;
    char label[160];
    for (size_t i = 0; i <= n; i++) {
        int w = option_label(i < n ? &cmd->options[i] : &help, label, sizeof label);
        if (w <= LABEL_MAX && w > width)
            width = w;
    }
    fprintf(f, "\nOptions:\n");
    for (size_t i = 0; i <= n; i++) {
        const struct cli_option *o = i < n ? &cmd->options[i] : &help;
        int w = option_label(o, label, sizeof label);
        if (w > width)
            fprintf(f, "%s\n%*s", label, width + 2, "");
        else
            fprintf(f, "%-*s", width + 2, label);
        help_text(o->help ? o->help : "", width + 2, f);
    }
}

void cli_command_help(const struct cli_command *cmd, const char *name, FILE *f)
{
    if (cmd->subcommands) {
        for (const struct cli_command *sub = cmd->subcommands; sub->name; sub++) {
            char full[64];
            snprintf(full, sizeof full, "%s %s", name, sub->name);
            usage_line(sub, full, sub == cmd->subcommands ? "usage: " : "       ", f);
        }
    } else {
        usage_line(cmd, name, "usage: ", f);
    }
    if (cmd->about) {
        size_t n = strlen(cmd->about);
        fprintf(f, "\n%s%s", cmd->about, n && cmd->about[n - 1] == '\n' ? "" : "\n");
    }
    if (cmd->subcommands) {
        int width = 0;
        for (const struct cli_command *sub = cmd->subcommands; sub->name; sub++)
            if ((int)strlen(sub->name) > width)
                width = (int)strlen(sub->name);
        fprintf(f, "\nSubcommands:\n");
        for (const struct cli_command *sub = cmd->subcommands; sub->name; sub++) {
            fprintf(f, "  %-*s  ", width, sub->name);
            help_text(sub->summary ? sub->summary : "", width + 4, f);
        }
        fprintf(f, "\n'relance %s SUBCOMMAND --help' gives a subcommand's options.\n", name);
        return;
    }
    options_list(cmd, f);
}
