/* cmd/preview: `relance preview SEQUENCE --step ID`, the message a
 * contact would get for one step: the same compose_message the scheduler
 * uses, fed from a sequence file or an applied sequence (read and checked
 * by lint.c, as apply does), the fields of a contact in the database
 * (--contact) and --var values. It connects to the database only when it
 * needs it (an applied sequence, or --contact), and reads the
 * configuration only when one is named or --account is given: the
 * sender shown, whose sender.NAME fields the templates get, is the one
 * the contact's enrollment sends from, else the pool's first, and the
 * view says which and why. By default it prints a reader's view of that message,
 * read back with the MIME parser the watcher uses (headers and text
 * decoded to UTF-8, the A/B variant named); --raw prints the exact bytes.
 * It does not own any encoding or decoding itself; composing, the
 * account's choice and the view are preview.c's, shared with the HTTP
 * API's preview. */
#include "accounts.h"
#include "cli.h"
#include "compose.h"
#include "contact.h"
#include "lint.h"
#include "preview.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct vars {
    const char **keys, **values;
    size_t n;
};

/* The sequence to preview: a file path, else an applied sequence's name. */
static int preview_load(struct cli *cli, const char *what, struct lint_files *files)
{
    struct stat st;
    if (stat(what, &st) == 0) {
        char *paths[1] = {(char *)what};
        return lint_collect(1, paths, NULL, files) == 0 && files->n == 1 ? 0 : -1;
    }
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        return -1;
    const char *p[1] = {what};
    PGresult *r = cli_query(conn,
                            "SELECT v.source_file, v.source FROM sequences s JOIN sequence_versions v "
                            "ON v.sequence_id = s.id AND v.version = s.current_version WHERE s.name = $1",
                            1, p);
    if (!r)
        return -1;
    if (PQntuples(r) == 0) {
        PQclear(r);
        fprintf(stderr, "relance: '%s' is neither a file nor an applied sequence\n", what);
        return -1;
    }
    int rc = lint_parse_source(PQgetvalue(r, 0, 0), PQgetvalue(r, 0, 1), (size_t)PQgetlength(r, 0, 1), files);
    PQclear(r);
    return rc;
}

/* The account a preview is sent from, and why that one (preview.c's
 * rule): --account, the contact's enrollment's (the account it really
 * sends from), else the pool's first. NULL when the configuration has
 * none to offer. */
static const struct config_account *account_of(struct cli *cli, const struct sequence *seq, const char *contact,
                                               const char *wanted, char *why, size_t len, int *failed)
{
    struct config *cfg = cli->config_path || getenv("RELANCE_CONFIG") || wanted ? cli_config(cli) : NULL;
    char *enrolled = NULL;
    if (!wanted && contact && cfg) {
        PGconn *conn = cli_db_connect(cli, 1);
        char norm[CONTACT_EMAIL_MAX + 1];
        const char *p[2] = {contact_email_key(contact, norm), seq->name};
        PGresult *r = conn ? cli_query(conn,
                                       "SELECT relance_preview_enrolled_account(c.id, $2) FROM contacts c "
                                       "WHERE c.email_key = lower(btrim($1))",
                                       2, p)
                               : NULL;
        if (r && PQntuples(r) && !PQgetisnull(r, 0, 0))
            enrolled = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    const struct config_account *a = preview_account(cfg, seq, wanted, "--account", enrolled, contact, why, len, failed);
    if (*failed)
        fprintf(stderr, "relance: preview: no account %s in the configuration\n", wanted);
    free(enrolled);
    return a;
}

/* The reader's view of msg[0..len): the headers a person checks, the A/B
 * variant (named as `relance stats` names it: A is the first in the
 * file, - a step without variants), then the text part decoded. */
static __attribute__((warn_unused_result)) int put_human(const char *msg, size_t len, int variant,
                                                         const char *account, const char *why)
{
    struct preview_view view;
    if (preview_view_parse(msg, len, &view) < 0) {
        preview_view_free(&view);
        return -1;
    }
    for (size_t i = 0; i < PREVIEW_HEADERS; i++)
        if (view.headers[i])
            printf("%s: %s\n", preview_header_names[i], view.headers[i]);
    if (variant >= 0)
        printf("variant: %c\n", (char)('A' + variant));
    else
        printf("variant: - (the step has no A/B variants)\n");
    printf("account: %s (%s)\n", account, why);
    if (view.html)
        printf("html: an HTML part is sent too (relance preview --raw shows it)\n");
    putchar('\n');
    if (view.text)
        fwrite(view.text, 1, view.text_len, stdout);
    /* inside a multipart the last line break belongs to the boundary */
    if (view.text_len && view.text[view.text_len - 1] != '\n')
        putchar('\n');
    preview_view_free(&view);
    return 0;
}

enum { OPT_STEP, OPT_VAR, OPT_CONTACT, OPT_ACCOUNT, OPT_RAW };

static const struct cli_option options[] = {
    [OPT_STEP] = {"step", 0, "ID", "the step to preview", CLI_OPTION_REQUIRED, 0},
    [OPT_VAR] = {"var", 0, "KEY=VALUE", "a field's value (wins over --contact's); repeatable", CLI_OPTION_REPEAT, 0},
    [OPT_CONTACT] = {"contact", 0, "EMAIL", "take the fields of this contact in the database", 0, 0},
    [OPT_ACCOUNT] = {"account", 0, "EMAIL", "send from this configured account (default: the\n"
                                            "contact's enrollment's, else the pool's first)", 0, 0},
    [OPT_RAW] = {"raw", 0, NULL, "print the exact bytes sent (CRLF, encoded) instead of\n"
                                 "the decoded view", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *what = args->operands[0], *step_id = cli_args_value(args, OPT_STEP);
    const char *contact = cli_args_value(args, OPT_CONTACT);
    char *fields = NULL;
    struct vars v = {0};
    int rc = CLI_ERROR, n = cli_args_count(args, OPT_VAR) + 1, pos = 0;
    struct lint_files files = {0};
    v.keys = calloc((size_t)n, sizeof *v.keys);
    v.values = calloc((size_t)n, sizeof *v.values);
    char **owned = calloc((size_t)n, sizeof *owned);
    if (!v.keys || !v.values || !owned)
        goto out;
    for (const char *kv = cli_args_next(args, OPT_VAR, &pos); kv; kv = cli_args_next(args, OPT_VAR, &pos)) {
        const char *eq = strchr(kv, '=');
        if (!eq || eq == kv) {
            rc = cli_fail(CLI_USAGE, "preview: --var takes KEY=VALUE, not '%s'", kv);
            goto out;
        }
        owned[v.n] = strndup(kv, (size_t)(eq - kv));
        v.keys[v.n] = owned[v.n];
        v.values[v.n++] = eq + 1;
    }
    if (preview_load(cli, what, &files) < 0)
        goto out;
    const struct sequence *seq = files.items[0].seq;
    const struct sequence_step *step = sequence_step_find(seq, step_id);
    if (!step) {
        fprintf(stderr, "relance: sequence %s has no step '%s' (steps:", seq->name, step_id);
        for (size_t i = 0; i < seq->n_steps; i++)
            fprintf(stderr, " %s", seq->steps[i].id);
        fprintf(stderr, ")\n");
        goto out;
    }
    if (contact) {
        PGconn *conn = cli_db_connect(cli, 1);
        if (!conn)
            goto out;
        char norm[CONTACT_EMAIL_MAX + 1];
        const char *p[1] = {contact_email_key(contact, norm)}; /* user@Bücher.example as stored */
        PGresult *r = cli_query(conn,
                                "SELECT relance_contact_fields(id) FROM contacts WHERE email_key = lower(btrim($1))",
                                1, p);
        if (!r)
            goto out;
        if (PQntuples(r) == 0) {
            PQclear(r);
            fprintf(stderr, "relance: no contact %s\n", contact);
            goto out;
        }
        fields = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    char why[300];
    int failed;
    const struct config_account *acct =
        account_of(cli, seq, contact, cli_args_value(args, OPT_ACCOUNT), why, sizeof why, &failed);
    if (failed)
        goto out;
    const char *from = acct ? acct->email : "sender@example.invalid";
    struct preview_input in = {seq, step, v.keys, v.values, v.n, fields, acct, time(NULL),
                               cli->config_path || getenv("RELANCE_CONFIG") ? cli_config(cli) : NULL};
    struct compose_result res;
    char err[300];
    int c = preview_compose(&in, &res, err, sizeof err);
    if (c == COMPOSE_MISSING_FIELD && strncmp(res.missing, "sender.", 7) == 0) {
        fprintf(stderr, "relance: the account %s has no %s (add '%s:' to its configuration, or give --var %s=...); "
                        "its enrollments would be held as missing_field:%s\n",
                from, res.missing + 7, res.missing + 7, res.missing, res.missing);
        goto out;
    }
    if (c == COMPOSE_MISSING_FIELD) {
        fprintf(stderr, "relance: the field '%s' has no value and no fallback: give --var %s=... (a contact "
                        "without it would be held as missing_field:%s)\n",
                res.missing, res.missing, res.missing);
        goto out;
    }
    if (c < 0) {
        fprintf(stderr, "relance: %s\n", err);
        goto out;
    }
    if (cli_args_count(args, OPT_RAW)) {
        fprintf(stderr, "relance: account: %s (%s)\n", from, why);
        fwrite(res.text, 1, res.len, stdout);
    } else if (put_human(res.text, res.len, res.variant, from, why) < 0) {
        compose_result_free(&res);
        fprintf(stderr, "relance: out of memory\n");
        goto out;
    }
    compose_result_free(&res);
    rc = CLI_OK;
out:
    lint_files_free(&files);
    for (size_t i = 0; owned && i < v.n; i++)
        free(owned[i]);
    free(owned);
    free(v.keys);
    free(v.values);
    free(fields);
    return rc;
}

const struct cli_command cmd_preview = {
    .name = "preview",
    .summary = "show the message a contact would get for a step (--raw: the exact bytes)",
    .operands = "SEQUENCE",
    .min_operands = 1,
    .max_operands = 1,
    .about = "Shows the message a contact would receive for one step, as a reader sees it:\n"
             "From, To, Subject, Date, Message-ID (and In-Reply-To, References on a\n"
             "follow-up) decoded, the A/B variant chosen (A is the first in the file), a\n"
             "note when an HTML part is sent too, then the text body decoded to UTF-8.\n"
             "--raw prints instead the exact RFC 5322 text relance sends, except the Date\n"
             "and Message-ID values (and, once DKIM signing is configured, the\n"
             "signature).\n"
             "\n"
             "SEQUENCE is a file or the name of an applied sequence. Fields come from\n"
             "--contact (a contact in the database) and --var (which wins); sender.NAME\n"
             "fields from the account shown (--account, else the contact's enrollment's,\n"
             "else the pool's first; the view names it), or --var sender.NAME=...; spintax and\n"
             "A/B variants are chosen exactly as for the real send, from the contact's\n"
             "address (--var email=...).\n",
    .options = options,
    .run = run,
};
