/* cmd_apply: the commands that put sequences into the database and read
 * them back — apply, sequences list/show, preview.
 *
 * apply lints first (the same code as `relance lint`, see lint.h) and
 * applies nothing unless every file is clean; then it upserts every
 * sequence in one transaction (relance_sequence_apply, in
 * sql/functions/sequences.sql): a new name is created at v1, a changed
 * model becomes vN+1, an identical one is left alone. The YAML source is
 * stored as applied, so every version stays readable and the scheduler,
 * show and preview re-read it with the same loader. */
#include "cli.h"
#include "clock.h"
#include "compose.h"
#include "contact.h"
#include "lint.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>

static PGresult *exec_params(PGconn *conn, const char *sql, int n, const char *const *p)
{
    PGresult *r = PQexecParams(conn, sql, n, NULL, p, NULL, NULL, 0);
    ExecStatusType st = PQresultStatus(r);
    if (st != PGRES_COMMAND_OK && st != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        PQclear(r);
        return NULL;
    }
    return r;
}

/* Upserts one sequence (relance_sequence_apply, sql/functions/
 * sequences.sql); prints what happened. */
static int apply_one(PGconn *conn, const struct lint_file *f, const char *now)
{
    char hash[65];
    char *json = sequence_to_json(f->seq);
    if (!json || sequence_hash(f->seq, hash) < 0) {
        free(json);
        fprintf(stderr, "relance: out of memory\n");
        return -1;
    }
    const char *p[5] = {json, hash, f->path, f->source, now};
    PGresult *r = exec_params(conn, "SELECT result, version FROM relance_sequence_apply($1, $2, $3, $4, $5)", 5, p);
    free(json);
    if (!r)
        return -1;
    const char *result = PQgetvalue(r, 0, 0);
    if (strcmp(result, "updated") == 0)
        printf("%s: updated to v%s\n", f->seq->name, PQgetvalue(r, 0, 1));
    else
        printf("%s: %s\n", f->seq->name, result);
    PQclear(r);
    return 0;
}

int cmd_apply(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance apply PATH...\n\n"
               "Lints the sequence files (files or folders, as relance lint) and, when there\n"
               "is no error, applies them all in one transaction: a new sequence is created,\n"
               "a changed one gets a new version (enrollments keep the version they started\n"
               "with), an unchanged one is left alone. Prints one line per sequence:\n"
               "'NAME: created', 'NAME: updated to vN' or 'NAME: unchanged'. With any error\n"
               "nothing is applied (exit 1).\n");
        return CLI_OK;
    }
    if (argc < 2)
        return cli_fail(CLI_USAGE, "apply: give sequence files or folders (see relance apply --help)");
    struct lint_files files = {0};
    /* An unknown sender_pool is not an error here: accounts may come later. */
    if (lint_collect(argc - 1, argv + 1, NULL, &files) != 0) {
        lint_files_free(&files);
        fprintf(stderr, "relance: nothing applied: fix the errors above first\n");
        return CLI_ERROR;
    }
    char now[40], err[200];
    if (clock_setup(err, sizeof err) < 0) {
        lint_files_free(&files);
        return cli_fail(CLI_ERROR, "%s", err);
    }
    clock_format(clock_now(), now, sizeof now);
    PGconn *conn = cli_db_connect(cli, 1);
    int rc = CLI_ERROR;
    if (!conn)
        goto out;
    /* one transaction; relance_sequence_apply locks out other applies */
    if (cli_exec(conn, "BEGIN") < 0)
        goto rollback;
    for (size_t i = 0; i < files.n; i++)
        if (apply_one(conn, &files.items[i], now) < 0)
            goto rollback;
    if (cli_exec(conn, "COMMIT") == 0)
        rc = CLI_OK;
    goto close;
rollback:
    if (cli_exec(conn, "ROLLBACK") < 0)
        fprintf(stderr, "relance: rollback failed\n");
    fprintf(stderr, "relance: nothing applied\n");
close:
    PQfinish(conn);
out:
    lint_files_free(&files);
    return rc;
}

/* ---- sequences list / show --------------------------------------------- */

static void print_wait(const char *secs, const char *days, const char *bdays)
{
    struct duration d = {atoll(secs), atoi(days), atoi(bdays)};
    char buf[80];
    duration_format(&d, buf, sizeof buf);
    printf("%s", buf);
}

static int sequences_show(PGconn *conn, const char *name)
{
    const char *p[1] = {name};
    PGresult *r = exec_params(conn,
                              "SELECT s.id, s.current_version, v.version, v.source_file, "
                              "to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), "
                              "v.sender_pool, coalesce(v.timezone, 'contact (fallback ' || v.fallback_timezone || ')'), "
                              "lpad((v.window_start_min / 60)::text, 2, '0') || ':' || "
                              "lpad((v.window_start_min % 60)::text, 2, '0') || '-' || "
                              "lpad((v.window_end_min / 60)::text, 2, '0') || ':' || "
                              "lpad((v.window_end_min % 60)::text, 2, '0'), v.days, "
                              "(SELECT count(*) FROM enrollments e WHERE e.sequence_id = s.id AND e.version = v.version) "
                              "FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id "
                              "WHERE s.name = $1 ORDER BY v.version",
                              1, p);
    if (!r)
        return CLI_ERROR;
    if (PQntuples(r) == 0) {
        PQclear(r);
        fprintf(stderr, "relance: no sequence named '%s' (relance sequences list shows them)\n", name);
        return CLI_ERROR;
    }
    printf("sequence %s (current v%s)\n", name, PQgetvalue(r, 0, 1));
    for (int i = 0; i < PQntuples(r); i++) {
        unsigned days = (unsigned)atoi(PQgetvalue(r, i, 8));
        printf("v%s  applied %s from %s, %s enrollment%s\n", PQgetvalue(r, i, 2), PQgetvalue(r, i, 4),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 9), strcmp(PQgetvalue(r, i, 9), "1") == 0 ? "" : "s");
        printf("    pool %s, zone %s, window %s, days", PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
               PQgetvalue(r, i, 7));
        for (int d = 0; d < 7; d++)
            if (days & (1u << d))
                printf(" %s", sequence_day_names[d]);
        printf("\n");
        const char *q[2] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 2)};
        PGresult *st = exec_params(conn,
                                   "SELECT position + 1, step_id, wait_seconds, wait_days, wait_business_days, thread "
                                   "FROM sequence_steps WHERE sequence_id = $1 AND version = $2 ORDER BY position",
                                   2, q);
        if (!st) {
            PQclear(r);
            return CLI_ERROR;
        }
        for (int k = 0; k < PQntuples(st); k++) {
            printf("    %s. %s  wait ", PQgetvalue(st, k, 0), PQgetvalue(st, k, 1));
            print_wait(PQgetvalue(st, k, 2), PQgetvalue(st, k, 3), PQgetvalue(st, k, 4));
            printf("%s\n", k > 0 && strcmp(PQgetvalue(st, k, 5), "t") == 0 ? ", threaded" : "");
        }
        PQclear(st);
    }
    PQclear(r);
    return CLI_OK;
}

int cmd_sequences(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc < 2) {
        printf("usage: relance sequences list\n"
               "       relance sequences show NAME\n\n"
               "list: every applied sequence with its current version and step count.\n"
               "show: every version of one sequence, its schedule and its steps with waits.\n");
        return argc < 2 && !cli_wants_help(argc, argv) ? CLI_USAGE : CLI_OK;
    }
    int list = strcmp(argv[1], "list") == 0 && argc == 2;
    int show = strcmp(argv[1], "show") == 0 && argc == 3;
    if (!list && !show)
        return cli_fail(CLI_USAGE, "sequences: use 'list' or 'show NAME' (see relance sequences --help)");
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        return CLI_ERROR;
    int rc = CLI_OK;
    if (show) {
        rc = sequences_show(conn, argv[2]);
    } else {
        PGresult *r = exec_params(conn,
                                  "SELECT s.name, s.current_version, "
                                  "(SELECT count(*) FROM sequence_steps t WHERE t.sequence_id = s.id "
                                  " AND t.version = s.current_version), v.sender_pool, "
                                  "(SELECT count(*) FROM enrollments e WHERE e.sequence_id = s.id "
                                  " AND e.state = 'active') "
                                  "FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id "
                                  "AND v.version = s.current_version ORDER BY s.name",
                                  0, NULL);
        if (!r) {
            rc = CLI_ERROR;
        } else {
            for (int i = 0; i < PQntuples(r); i++)
                printf("%s\tv%s\t%s steps\tpool %s\t%s active\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
                       PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
            PQclear(r);
        }
    }
    PQfinish(conn);
    return rc;
}

/* ---- preview --------------------------------------------------------------- */

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
static int preview_load(struct cli *cli, const char *what, PGconn **conn, struct lint_files *files)
{
    struct stat st;
    if (stat(what, &st) == 0) {
        char *paths[1] = {(char *)what};
        return lint_collect(1, paths, NULL, files) == 0 && files->n == 1 ? 0 : -1;
    }
    if (!*conn)
        *conn = cli_db_connect(cli, 1);
    if (!*conn)
        return -1;
    const char *p[1] = {what};
    PGresult *r = exec_params(*conn,
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

int cmd_preview(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance preview SEQUENCE --step ID [--var KEY=VALUE]... [--contact EMAIL]\n\n"
               "Prints the message a contact would receive for one step: the exact RFC 5322\n"
               "text relance sends, except the Date and Message-ID values (and, once DKIM\n"
               "signing is configured, the signature). SEQUENCE is a file or the name of an\n"
               "applied sequence. Fields come from --contact (a contact in the database) and\n"
               "--var (which wins); spintax and A/B variants are chosen exactly as for the\n"
               "real send, from the contact's address (--var email=...).\n");
        return CLI_OK;
    }
    const char *what = NULL, *step_id = NULL, *contact = NULL;
    char *to_copy = NULL;
    struct vars v = {0};
    int rc = CLI_ERROR;
    PGconn *conn = NULL;
    struct lint_files files = {0};
    v.keys = calloc((size_t)argc, sizeof *v.keys);
    v.values = calloc((size_t)argc, sizeof *v.values);
    char **owned = calloc((size_t)argc, sizeof *owned);
    if (!v.keys || !v.values || !owned)
        goto out;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strcmp(a, "--step") == 0 && i + 1 < argc) {
            step_id = argv[++i];
        } else if (strcmp(a, "--contact") == 0 && i + 1 < argc) {
            contact = argv[++i];
        } else if (strcmp(a, "--var") == 0 && i + 1 < argc) {
            const char *kv = argv[++i], *eq = strchr(kv, '=');
            if (!eq || eq == kv) {
                rc = cli_fail(CLI_USAGE, "preview: --var takes KEY=VALUE, not '%s'", kv);
                goto out;
            }
            owned[v.n] = strndup(kv, (size_t)(eq - kv));
            v.keys[v.n] = owned[v.n];
            v.values[v.n++] = eq + 1;
        } else if (a[0] != '-' && !what) {
            what = a;
        } else {
            rc = cli_fail(CLI_USAGE, "preview: unexpected argument '%s' (see relance preview --help)", a);
            goto out;
        }
    }
    if (!what || !step_id) {
        rc = cli_fail(CLI_USAGE, "preview: give a SEQUENCE and --step ID (see relance preview --help)");
        goto out;
    }
    if (preview_load(cli, what, &conn, &files) < 0)
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
        if (!conn)
            conn = cli_db_connect(cli, 1);
        if (!conn)
            goto out;
        char norm[CONTACT_EMAIL_MAX + 1];
        const char *p[1] = {contact_email_key(contact, norm)}; /* user@Bücher.example as stored */
        PGresult *r = exec_params(conn,
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
    if (conn)
        PQfinish(conn);
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
