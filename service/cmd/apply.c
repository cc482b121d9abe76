/* cmd/apply: `relance apply PATH...`, which puts sequences into the
 * database (sequences.c and preview.c read them back).
 *
 * It lints first (the same code as `relance lint`, see lint.h) and
 * applies nothing unless every file is clean; then it upserts every
 * sequence in one transaction: a new name is created at v1, a changed
 * model becomes vN+1, an identical one is left alone. The YAML source is
 * stored as applied, so every version stays readable and the scheduler,
 * show and preview re-read it with the same loader. */
#include "cli.h"
#include "lint.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void stop_on_array(unsigned bits, char *buf, size_t len)
{
    size_t n = (size_t)snprintf(buf, len, "{");
    for (int i = 0; i < 4; i++)
        if (bits & (1u << i))
            n += (size_t)snprintf(buf + n, len - n, "%s%s", n > 1 ? "," : "", sequence_stop_names[i]);
    snprintf(buf + n, len - n, "}");
}

/* Writes one version's rows. */
static int insert_version(PGconn *conn, const char *seq_id, int version, const struct lint_file *f,
                          const char *hash, const char *json)
{
    const struct sequence *s = f->seq;
    char ver[16], ws[16], we[16], days[16], jitter[32], stop[80];
    snprintf(ver, sizeof ver, "%d", version);
    snprintf(ws, sizeof ws, "%d", s->schedule.window_start);
    snprintf(we, sizeof we, "%d", s->schedule.window_end);
    snprintf(days, sizeof days, "%u", s->schedule.days);
    snprintf(jitter, sizeof jitter, "%lld", (long long)s->schedule.jitter);
    stop_on_array(s->stop_on, stop, sizeof stop);
    const char *p[14] = {seq_id, ver, hash, f->path, f->source, json, s->sender_pool,
                         s->schedule.contact_zone ? NULL : s->schedule.timezone,
                         s->schedule.fallback_timezone, ws, we, days, jitter, stop};
    PGresult *r = cli_query(conn,
                            "INSERT INTO sequence_versions (sequence_id, version, content_hash, source_file, "
                            "source, model, sender_pool, timezone, fallback_timezone, window_start_min, "
                            "window_end_min, days, jitter_seconds, stop_on) VALUES ($1, $2, $3, $4, $5, $6, $7, "
                            "$8, $9, $10, $11, $12, $13, $14)",
                            14, p);
    if (!r)
        return -1;
    PQclear(r);
    for (size_t i = 0; i < s->n_steps; i++) {
        const struct sequence_step *st = &s->steps[i];
        char pos[24], secs[32], d[16], bd[16];
        snprintf(pos, sizeof pos, "%zu", i);
        snprintf(secs, sizeof secs, "%lld", (long long)st->wait.seconds);
        snprintf(d, sizeof d, "%d", st->wait.days);
        snprintf(bd, sizeof bd, "%d", st->wait.business_days);
        const char *q[8] = {seq_id, ver, pos, st->id, secs, d, bd, st->thread ? "true" : "false"};
        r = cli_query(conn,
                      "INSERT INTO sequence_steps (sequence_id, version, position, step_id, wait_seconds, "
                      "wait_days, wait_business_days, thread) VALUES ($1, $2, $3, $4, $5, $6, $7, $8)",
                      8, q);
        if (!r)
            return -1;
        PQclear(r);
    }
    return 0;
}

/* Upserts one sequence; prints what happened. */
static int apply_one(PGconn *conn, const struct lint_file *f, const char *now)
{
    char hash[65];
    char *json = sequence_to_json(f->seq);
    if (!json || sequence_hash(f->seq, hash) < 0) {
        free(json);
        fprintf(stderr, "relance: out of memory\n");
        return -1;
    }
    int rc = -1;
    const char *p[2] = {f->seq->name, now};
    PGresult *r = cli_query(conn,
                            "SELECT s.id, s.current_version, v.content_hash FROM sequences s "
                            "JOIN sequence_versions v ON v.sequence_id = s.id AND v.version = s.current_version "
                            "WHERE s.name = $1 FOR UPDATE OF s",
                            1, p);
    if (!r)
        goto out;
    if (PQntuples(r) == 0) {
        PQclear(r);
        r = cli_query(conn,
                      "INSERT INTO sequences (name, current_version, created_at, updated_at) "
                      "VALUES ($1, 1, $2, $2) RETURNING id",
                      2, p);
        if (!r || insert_version(conn, PQgetvalue(r, 0, 0), 1, f, hash, json) < 0)
            goto out;
        printf("%s: created\n", f->seq->name);
    } else if (strcmp(PQgetvalue(r, 0, 2), hash) == 0) {
        printf("%s: unchanged\n", f->seq->name);
    } else {
        int version = atoi(PQgetvalue(r, 0, 1)) + 1;
        char id[32], ver[16];
        snprintf(id, sizeof id, "%s", PQgetvalue(r, 0, 0));
        snprintf(ver, sizeof ver, "%d", version);
        PQclear(r);
        r = NULL;
        if (insert_version(conn, id, version, f, hash, json) < 0)
            goto out;
        const char *q[3] = {id, ver, now};
        r = cli_query(conn, "UPDATE sequences SET current_version = $2, updated_at = $3 WHERE id = $1", 3, q);
        if (!r)
            goto out;
        printf("%s: updated to v%d\n", f->seq->name, version);
    }
    rc = 0;
out:
    if (r)
        PQclear(r);
    free(json);
    return rc;
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
    /* One apply at a time: versions are numbered by reading the last. */
    if (cli_exec(conn, "BEGIN") < 0 || cli_exec(conn, "LOCK TABLE sequences IN SHARE ROW EXCLUSIVE MODE") < 0)
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
