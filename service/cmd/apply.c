/* cmd/apply: `relance apply PATH...`, which puts sequences into the
 * database (sequences.c and preview.c read them back).
 *
 * It lints first (the same code as `relance lint`, see lint.h) and
 * applies nothing unless every file is clean; then it upserts every
 * sequence in one transaction (relance_sequence_apply, in
 * sql/functions/sequences.sql): a new name is created at v1, a changed
 * model becomes vN+1, an identical one is left alone. The YAML source is
 * stored as applied, so every version stays readable and the scheduler,
 * show and preview re-read it with the same loader.
 *
 * A sequence naming a pool with no account is applied (accounts may come
 * later) but warned about: its enrollments would wait without a word. */
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

/* Whether pool is known: from the configuration when it has a file or
 * pools; else from the accounts `relance serve` last synced into the
 * database. -1 when nothing is known (no pool anywhere yet) or on error:
 * no warning then. */
static int pool_known(const struct cli *cli, const char *pool)
{
    const struct config *cfg = cli->config;
    if (cfg->path || cfg->n_pools) {
        for (size_t i = 0; i < cfg->n_pools; i++)
            if (strcmp(cfg->pools[i].name, pool) == 0)
                return 1;
        return 0;
    }
    const char *p[1] = {pool};
    PGresult *r = cli_query(cli->conn,
                            "SELECT bool_or(pool = $1), count(*) > 0 FROM accounts WHERE configured", 1, p);
    if (!r)
        return -1;
    int known = strcmp(PQgetvalue(r, 0, 1), "t") != 0 ? -1 : strcmp(PQgetvalue(r, 0, 0), "t") == 0;
    PQclear(r);
    return known;
}

/* Transport capture ignores pools: its enrollments never wait for one. */
static void warn_unknown_pools(const struct cli *cli, const struct lint_files *files)
{
    if (strcmp(cli->config->transport, "smtp") != 0)
        return;
    for (size_t i = 0; i < files->n; i++) {
        const struct sequence *seq = files->items[i].seq;
        if (pool_known(cli, seq->sender_pool) == 0)
            fprintf(stderr,
                    "relance: warning: sequence '%s' names pool '%s', which the configuration does not have: "
                    "its enrollments will wait\n",
                    seq->name, seq->sender_pool);
    }
}

int apply_paths(struct cli *cli, int n, char **paths)
{
    struct lint_files files = {0};
    /* An unknown sender_pool is not an error here: accounts may come later. */
    if (lint_collect(n, paths, NULL, &files) != 0) {
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
    if (cli_exec(conn, "COMMIT") == 0) {
        rc = CLI_OK;
        warn_unknown_pools(cli, &files);
    }
    goto out;
rollback:
    if (cli_exec(conn, "ROLLBACK") < 0)
        fprintf(stderr, "relance: rollback failed\n");
    fprintf(stderr, "relance: nothing applied\n");
out:
    lint_files_free(&files);
    return rc;
}

static int run(struct cli *cli, const struct cli_args *args)
{
    return apply_paths(cli, args->n_operands, args->operands);
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
             "nothing is applied (exit 1). A sequence whose sender_pool the configuration\n"
             "does not have is applied with a warning: its enrollments wait until it does.\n",
    .run = run,
};
