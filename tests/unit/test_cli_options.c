/* Unit tests of cli_options: argv read against an option table (long and
 * short names, --opt=value and --opt value, "--", repeated options,
 * required options and one-of groups, operand counts, subcommands, the
 * options before a command), the usage errors' words, and the --help
 * text printed from the same table. Table-driven: each row is a command
 * line and what the parse must give, or the one error it must print. */
#include "cli_options.h"

#include <errno.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

enum { OPT_SEQUENCE, OPT_CONTACT, OPT_JSON, OPT_VERBOSE };

static const struct cli_option plain_options[] = {
    [OPT_SEQUENCE] = {"sequence", 0, "NAME", "the sequence", CLI_OPTION_REQUIRED, 0},
    [OPT_CONTACT] = {"contact", 0, "EMAIL", "a contact's address;\nrepeatable", CLI_OPTION_REPEAT, 0},
    [OPT_JSON] = {"json", 0, NULL, "print JSON", 0, 0},
    [OPT_VERBOSE] = {"verbose", 'v', NULL, "say more", 0, 0},
    {0},
};

static const struct cli_command plain = {
    .name = "plain",
    .summary = "a command with every kind of option",
    .operands = "FILE...",
    .min_operands = 1,
    .max_operands = 2,
    .about = "Reads FILE.\n",
    .options = plain_options,
};

/* Same table, the words an old script matches for an unknown option. */
static const struct cli_command worded = {
    .name = "worded", .operands = "FILE...", .min_operands = 1, .max_operands = 2,
    .options = plain_options, .unknown = "unexpected argument",
};

static const struct cli_option group_options[] = {
    {"enrollment", 0, "ID", "one enrollment", 0, 1},
    {"contact", 0, "EMAIL", "a contact's", CLI_OPTION_REPEAT, 1},
    {"sequence", 0, "NAME", "a sequence's", 0, 1},
    {0},
};

static const struct cli_command grouped = {.name = "grouped", .options = group_options};

static const struct cli_option limit_options[] = {{"limit", 0, "N", "the first N only", 0, 0}, {0}};

static const struct cli_command subs[] = {
    {.name = "show", .summary = "one of them", .operands = "EMAIL", .min_operands = 1, .max_operands = 1},
    {.name = "list", .summary = "all of them", .options = limit_options},
    {0},
};

static const struct cli_command parent = {.name = "parent", .about = "Contacts.\n", .subcommands = subs};

static const struct cli_option global_options[] = {
    {"config", 0, "FILE", "the configuration file", 0, 0},
    {"version", 0, NULL, "the version", 0, 0},
    {0},
};

static const struct cli_command global = {
    .name = "", .operands = "COMMAND [ARGS]", .min_operands = 1, .max_operands = -1,
    .options = global_options, .stop_at_operand = 1,
};

/* A parse as one line: "[operands] name=value name ..." in argv's order;
 * flags have no "=". */
static void dump(const struct cli_args *a, char *out, size_t len)
{
    size_t at = (size_t)snprintf(out, len, "%s [", a->name);
    for (int i = 0; i < a->n_operands; i++)
        at += (size_t)snprintf(out + at, len - at, "%s%s", i ? "," : "", a->operands[i]);
    at += (size_t)snprintf(out + at, len - at, "]");
    for (int i = 0; i < a->n_given; i++) {
        const struct cli_arg_given *g = &a->given[i];
        at += (size_t)snprintf(out + at, len - at, " %s%s%s", a->command->options[g->option].name,
                               g->value ? "=" : "", g->value ? g->value : "");
    }
}

struct row {
    const struct cli_command *cmd;
    const char *argv; /* space-separated, argv[0] included */
    int rc;
    const char *want; /* rc 0: the dump; CLI_ARGS_HELP: the command's name; else the whole error */
};

static const struct row rows[] = {
    /* values: both spellings, anywhere among the operands */
    {&plain, "plain --sequence s a", 0, "plain [a] sequence=s"},
    {&plain, "plain a --sequence=s b", 0, "plain [a,b] sequence=s"},
    {&plain, "plain --sequence= a", 0, "plain [a] sequence="},
    {&plain, "plain --sequence a=b a", 0, "plain [a] sequence=a=b"},
    {&plain, "plain --sequence -x a", 0, "plain [a] sequence=-x"},
    /* flags, short names, repeats (the last value wins, all are kept) */
    {&plain, "plain -v --json --sequence s a", 0, "plain [a] verbose json sequence=s"},
    {&plain, "plain --verbose --sequence s a", 0, "plain [a] verbose sequence=s"},
    {&plain, "plain --contact x --sequence s --contact y a", 0, "plain [a] contact=x sequence=s contact=y"},
    {&plain, "plain --sequence s --sequence t a", 0, "plain [a] sequence=s sequence=t"},
    /* "--" ends the options; "-" is an operand */
    {&plain, "plain --sequence s -- --json", 0, "plain [--json] sequence=s"},
    {&plain, "plain --sequence s - -- -v", 0, "plain [-,-v] sequence=s"},
    /* help anywhere before "--", even after an error */
    {&plain, "plain --frobnicate --help", CLI_ARGS_HELP, "plain"},
    {&plain, "plain -h", CLI_ARGS_HELP, "plain"},
    {&plain, "plain --sequence s -- --help", 0, "plain [--help] sequence=s"},
    /* usage errors: one line each */
    {&plain, "plain --frobnicate a", -EINVAL,
     "relance: plain: unknown option '--frobnicate' (see relance plain --help)\n"},
    {&plain, "plain --sequence=s --jso a", -EINVAL,
     "relance: plain: unknown option '--jso' (see relance plain --help)\n"},
    {&plain, "plain -x a", -EINVAL, "relance: plain: unknown option '-x' (see relance plain --help)\n"},
    {&plain, "plain -vx a", -EINVAL, "relance: plain: unknown option '-vx' (see relance plain --help)\n"},
    {&plain, "plain a --sequence", -EINVAL, "relance: plain: --sequence needs a value (see relance plain --help)\n"},
    {&plain, "plain --sequence s --json=yes a", -EINVAL,
     "relance: plain: --json takes no value (see relance plain --help)\n"},
    {&plain, "plain a", -EINVAL, "relance: plain: --sequence is required (see relance plain --help)\n"},
    {&plain, "plain --sequence s a b c", -EINVAL,
     "relance: plain: unexpected argument 'c' (see relance plain --help)\n"},
    {&worded, "worded --frobnicate a", -EINVAL,
     "relance: worded: unexpected argument '--frobnicate' (see relance worded --help)\n"},
    /* one of a group */
    {&grouped, "grouped --contact a --contact b", 0, "grouped [] contact=a contact=b"},
    {&grouped, "grouped --enrollment=3", 0, "grouped [] enrollment=3"},
    {&grouped, "grouped", -EINVAL,
     "relance: grouped: give one of --enrollment, --contact or --sequence (see relance grouped --help)\n"},
    {&grouped, "grouped --enrollment 3 --sequence s", -EINVAL,
     "relance: grouped: give only one of --enrollment, --contact or --sequence (see relance grouped --help)\n"},
    {&grouped, "grouped x --sequence s", -EINVAL,
     "relance: grouped: unexpected argument 'x' (see relance grouped --help)\n"},
    /* subcommands */
    {&parent, "parent list --limit 3", 0, "parent list [] limit=3"},
    {&parent, "parent show a@b.example", 0, "parent show [a@b.example]"},
    {&parent, "parent --help", CLI_ARGS_HELP, "parent"},
    {&parent, "parent list --help", CLI_ARGS_HELP, "parent list"},
    {&parent, "parent frob", -EINVAL,
     "relance: parent: unknown subcommand 'frob' (show or list; see relance parent --help)\n"},
    {&parent, "parent list x", -EINVAL,
     "relance: parent list: unexpected argument 'x' (see relance parent list --help)\n"},
    /* relance's own options stop at the command */
    {&global, "relance --config f stats --json x", 0, " [stats,--json,x] config=f"},
    {&global, "relance --config=f -- stats", 0, " [stats] config=f"},
    {&global, "relance stats --help", 0, " [stats,--help]"},
    {&global, "relance --config f --help", CLI_ARGS_HELP, ""},
    {&global, "relance --version", -EINVAL, NULL}, /* no command: the help, on err */
    {&global, "relance --bogus stats", -EINVAL, "relance: unknown option '--bogus' (see relance --help)\n"},
};

static char *capture_text(FILE *f)
{
    long n = ftell(f);
    char *s = calloc(1, (size_t)n + 1);
    rewind(f);
    if (s && n > 0 && fread(s, 1, (size_t)n, f) != (size_t)n)
        s[0] = '\0';
    return s;
}

static void test_parse(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        char line[300], *argv[32];
        int argc = 0;
        snprintf(line, sizeof line, "%s", r->argv);
        for (char *save, *tok = strtok_r(line, " ", &save); tok; tok = strtok_r(NULL, " ", &save))
            argv[argc++] = tok;
        FILE *err = tmpfile();
        assert_non_null(err);
        struct cli_args a;
        const char *name = r->cmd == &global ? "" : r->cmd->name;
        int rc = cli_args_parse(r->cmd, name, argc, argv, &a, err);
        char *said = capture_text(err);
        fclose(err);
        if (rc != r->rc)
            fail_msg("row %zu '%s': rc %d, want %d (%s)", i, r->argv, rc, r->rc, said);
        if (rc == 0) {
            char got[300];
            dump(&a, got, sizeof got);
            if (strcmp(got, r->want) != 0)
                fail_msg("row %zu '%s': got '%s', want '%s'", i, r->argv, got, r->want);
            assert_string_equal(said, "");
        } else if (rc == CLI_ARGS_HELP) {
            assert_string_equal(a.name, r->want);
            assert_string_equal(said, "");
        } else if (r->want) {
            if (strcmp(said, r->want) != 0)
                fail_msg("row %zu '%s': said '%s', want '%s'", i, r->argv, said, r->want);
        } else {
            assert_non_null(strstr(said, "usage: relance"));
        }
        if (rc >= 0)
            cli_args_free(&a);
        free(said);
    }
}

/* The values of a repeated option, in order; the last value of one given
 * twice; counts. */
static void test_values(void **state)
{
    (void)state;
    char *argv[] = {"plain", "--contact", "x", "a", "--contact=y", "--sequence", "s", "--sequence", "t", "-v"};
    struct cli_args a;
    assert_int_equal(cli_args_parse(&plain, "plain", 10, argv, &a, stderr), 0);
    int pos = 0;
    assert_string_equal(cli_args_next(&a, OPT_CONTACT, &pos), "x");
    assert_string_equal(cli_args_next(&a, OPT_CONTACT, &pos), "y");
    assert_null(cli_args_next(&a, OPT_CONTACT, &pos));
    assert_string_equal(cli_args_value(&a, OPT_SEQUENCE), "t");
    assert_int_equal(cli_args_count(&a, OPT_SEQUENCE), 2);
    assert_int_equal(cli_args_count(&a, OPT_VERBOSE), 1);
    assert_int_equal(cli_args_count(&a, OPT_JSON), 0);
    assert_null(cli_args_value(&a, OPT_JSON));
    assert_int_equal(a.n_operands, 1);
    cli_args_free(&a);
}

struct help_row {
    const struct cli_command *cmd;
    const char *name, *want;
};

static const struct help_row help_rows[] = {
    {&plain, "plain",
     "usage: relance plain --sequence NAME [--contact EMAIL]... [--json] [-v] FILE...\n"
     "\n"
     "Reads FILE.\n"
     "\n"
     "Options:\n"
     "  --sequence NAME  the sequence\n"
     "  --contact EMAIL  a contact's address;\n"
     "                   repeatable\n"
     "  --json           print JSON\n"
     "  -v, --verbose    say more\n"
     "  -h, --help       this help\n"},
    {&grouped, "grouped",
     "usage: relance grouped (--enrollment ID | --contact EMAIL... | --sequence NAME)\n"
     "\n"
     "Options:\n"
     "  --enrollment ID  one enrollment\n"
     "  --contact EMAIL  a contact's\n"
     "  --sequence NAME  a sequence's\n"
     "  -h, --help       this help\n"},
    {&parent, "parent",
     "usage: relance parent show EMAIL\n"
     "       relance parent list [--limit N]\n"
     "\n"
     "Contacts.\n"
     "\n"
     "Subcommands:\n"
     "  show  one of them\n"
     "  list  all of them\n"
     "\n"
     "'relance parent SUBCOMMAND --help' gives a subcommand's options.\n"},
    {&subs[1], "parent list",
     "usage: relance parent list [--limit N]\n"
     "\n"
     "Options:\n"
     "  --limit N   the first N only\n"
     "  -h, --help  this help\n"},
};

static void test_help(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof help_rows / sizeof help_rows[0]; i++) {
        FILE *f = tmpfile();
        assert_non_null(f);
        cli_command_help(help_rows[i].cmd, help_rows[i].name, f);
        char *got = capture_text(f);
        fclose(f);
        assert_string_equal(got, help_rows[i].want);
        free(got);
    }
}

/* A usage line longer than the terminal wraps under the command's name,
 * and every option of the table is in the help. */
static void test_help_wraps(void **state)
{
    (void)state;
    static const struct cli_option many[] = {
        {"url", 0, "URL", "u", CLI_OPTION_REQUIRED, 0},   {"from", 0, "ADDR", "f", CLI_OPTION_REQUIRED, 0},
        {"to", 0, "ADDR", "t", CLI_OPTION_REQUIRED, 0},   {"user", 0, "USER", "u", 0, 0},
        {"password-env", 0, "VAR", "p", 0, 0},            {"bearer-env", 0, "VAR", "b", 0, 0},
        {"connect-timeout", 0, "MS", "c", 0, 0},          {0},
    };
    static const struct cli_command cmd = {.name = "smtp-send", .operands = "FILE...", .min_operands = 1,
                                           .max_operands = -1, .options = many};
    FILE *f = tmpfile();
    assert_non_null(f);
    cli_command_help(&cmd, "smtp-send", f);
    char *got = capture_text(f);
    fclose(f);
    const char *want_usage = "usage: relance smtp-send --url URL --from ADDR --to ADDR [--user USER]\n"
                             "                         [--password-env VAR] [--bearer-env VAR]\n"
                             "                         [--connect-timeout MS] FILE...\n";
    assert_memory_equal(got, want_usage, strlen(want_usage));
    for (size_t i = 0; many[i].name; i++) {
        char opt[64];
        snprintf(opt, sizeof opt, "\n  --%s %s", many[i].name, many[i].value);
        assert_non_null(strstr(got, opt));
    }
    for (char *p = got; *p;) {
        size_t n = strcspn(p, "\n");
        assert_true(n <= 80);
        p += n + (p[n] != '\0');
    }
    free(got);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_parse),
        cmocka_unit_test(test_values),
        cmocka_unit_test(test_help),
        cmocka_unit_test(test_help_wraps),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
