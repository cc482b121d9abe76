/* cmd/preview: `relance preview SEQUENCE --step ID`, the exact message a
 * contact would get for one step: the same compose_message the scheduler
 * uses, fed from a sequence file or an applied sequence (read and checked
 * by lint.c, as apply does), the fields of a contact in the database
 * (--contact) and --var values. It connects to the database only when it
 * needs it (an applied sequence, or --contact), and reads the
 * configuration only when one is named (the pool's first account is the
 * sender shown). */
#include "cli.h"
#include "compose.h"
#include "contact.h"
#include "lint.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

struct vars {
    const char **keys, **values;
    size_t n;
    char *contact; /* "key<US>value<RS>..." from relance_contact_fields */
    char value[4096];
};

static const char *vars_lookup(const char *field, void *arg)
{
    struct vars *v = arg;
    for (size_t i = v->n; i-- > 0;) /* the last --var wins */
        if (strcmp(v->keys[i], field) == 0)
            return v->values[i];
    return compose_field_find(v->contact, field, v->value, sizeof v->value);
}

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

static const char *pool_account(struct config *cfg, const char *pool, const char **name)
{
    *name = NULL;
    for (size_t i = 0; cfg && i < cfg->n_pools; i++)
        if (strcmp(cfg->pools[i].name, pool) == 0 && cfg->pools[i].n_accounts) {
            *name = cfg->pools[i].accounts[0].from_name;
            return cfg->pools[i].accounts[0].email;
        }
    return NULL;
}

enum { OPT_STEP, OPT_VAR, OPT_CONTACT };

static const struct cli_option options[] = {
    [OPT_STEP] = {"step", 0, "ID", "the step to preview", CLI_OPTION_REQUIRED, 0},
    [OPT_VAR] = {"var", 0, "KEY=VALUE", "a field's value (wins over --contact's); repeatable", CLI_OPTION_REPEAT, 0},
    [OPT_CONTACT] = {"contact", 0, "EMAIL", "take the fields of this contact in the database", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *what = args->operands[0], *step_id = cli_args_value(args, OPT_STEP);
    const char *contact = cli_args_value(args, OPT_CONTACT);
    char *to_copy = NULL;
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
        v.contact = strdup(PQgetvalue(r, 0, 0));
        PQclear(r);
    }
    /* copied: the lookup's buffer is reused by the next lookup */
    const char *found = vars_lookup("email", &v);
    to_copy = strdup(found ? found : "prospect@example.com");
    if (!to_copy)
        goto out;
    const char *to = to_copy;
    const char *from_name = NULL, *from = pool_account(cli->config_path || getenv("RELANCE_CONFIG")
                                                           ? cli_config(cli) : NULL,
                                                       seq->sender_pool, &from_name);
    if (!from) {
        from = "sender@example.invalid";
        from_name = "Sender";
    }
    const char *dom = strrchr(from, '@') + 1;
    char mid[300], prev[300];
    snprintf(mid, sizeof mid, "<preview@%s>", dom);
    snprintf(prev, sizeof prev, "<previous-step@%s>", dom);
    const char *thread[1] = {prev};
    size_t position = (size_t)(step - seq->steps);
    struct compose_input in = {
        .seq = seq,
        .position = position,
        .to_addr = to,
        .lookup = vars_lookup,
        .lookup_arg = &v,
        .from_addr = from,
        .from_name = from_name,
        .message_id = mid,
        .date = time(NULL),
        .thread_ids = thread,
        .n_thread = position > 0 ? 1 : 0,
    };
    struct compose_result res;
    char err[300];
    int c = compose_message(&in, &res, err, sizeof err);
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
    fwrite(res.text, 1, res.len, stdout);
    compose_result_free(&res);
    rc = CLI_OK;
out:
    lint_files_free(&files);
    for (size_t i = 0; owned && i < v.n; i++)
        free(owned[i]);
    free(owned);
    free(v.keys);
    free(v.values);
    free(v.contact);
    free(to_copy);
    return rc;
}

const struct cli_command cmd_preview = {
    .name = "preview",
    .summary = "print the exact message a contact would get for a step",
    .operands = "SEQUENCE",
    .min_operands = 1,
    .max_operands = 1,
    .about = "Prints the message a contact would receive for one step: the exact RFC 5322\n"
             "text relance sends, except the Date and Message-ID values (and, once DKIM\n"
             "signing is configured, the signature). SEQUENCE is a file or the name of an\n"
             "applied sequence. Fields come from --contact (a contact in the database) and\n"
             "--var (which wins); spintax and A/B variants are chosen exactly as for the\n"
             "real send, from the contact's address (--var email=...).\n",
    .options = options,
    .run = run,
};
