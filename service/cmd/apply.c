/* cmd/apply: `relance apply PATH...`, which puts sequences into the
 * database (sequences.c and preview.c read them back).
 *
 * It lints first (the same code as `relance lint`, see lint.h) and
 * applies nothing unless every file is clean; then it upserts every
 * sequence in one transaction (relance_sequence_apply, in
 * sql/functions/sequences.sql): a new name is created at v1, a changed
 * model becomes vN+1, an identical one is left alone. The YAML source is
 * stored as applied, so every version stays readable and the scheduler,
 * show and preview re-read it with the same loader. */
#include "cli.h"
#include "lint.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    PGresult *r = cli_query(conn, "SELECT result, version FROM relance_sequence_apply($1, $2, $3, $4, $5)", 5, p);
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

static int run(struct cli *cli, const struct cli_args *args)
{
    struct lint_files files = {0};
    /* An unknown sender_pool is not an error here: accounts may come later. */
    if (lint_collect(args->n_operands, args->operands, NULL, &files) != 0) {
        lint_files_free(&files);
        fprintf(stderr, "relance: nothing applied: fix the errors above first\n");
        return CLI_ERROR;
    }
    char now[40];
    PGconn *conn = cli->conn;
    int rc = CLI_ERROR;
    if (cli_now(now, sizeof now) < 0)
        goto out;
    /* one transaction; relance_sequence_apply locks out other applies */
    if (cli_exec(conn, "BEGIN") < 0)
        goto rollback;
    for (size_t i = 0; i < files.n; i++)
        if (apply_one(conn, &files.items[i], now) < 0)
            goto rollback;
    if (cli_exec(conn, "COMMIT") == 0)
        rc = CLI_OK;
    goto out;
rollback:
    if (cli_exec(conn, "ROLLBACK") < 0)
        fprintf(stderr, "relance: rollback failed\n");
    fprintf(stderr, "relance: nothing applied\n");
out:
    lint_files_free(&files);
    return rc;
}

const struct cli_command cmd_apply = {
    .name = "apply",
    .summary = "lint sequence files and store them: created, updated to vN, unchanged",
    .operands = "PATH...",
    .min_operands = 1,
    .max_operands = -1,
    .about = "Lints the sequence files (files or folders, as relance lint) and, when there\n"
             "is no error, applies them all in one transaction: a new sequence is created,\n"
             "a changed one gets a new version (enrollments keep the version they started\n"
             "with), an unchanged one is left alone. Prints one line per sequence:\n"
             "'NAME: created', 'NAME: updated to vN' or 'NAME: unchanged'. With any error\n"
             "nothing is applied (exit 1).\n",
    .run = run,
};
