/* cmd/enrollments: `relance enrollments show EMAIL`, each enrollment of a
 * contact: its state and why, the current step, the next send time in UTC
 * and in the contact's zone, and why it is not sooner — computed by the
 * same SQL functions the scheduler uses, so the answer is the
 * scheduler's; and `relance enrollments list`, one enrollment a line,
 * picked by sequence and state. */
#include "cli.h"
#include "config.h"
#include "contact.h"

#include <stdio.h>
#include <string.h>

/* A timestamptz as the UTC instant every line of the command shows. */
#define UTC(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* One row per enrollment of the contact, as relance_enrollments_show
 * (enrollments.sql) gives it, which the API's GET /v1/enrollments/{id}
 * answers too: why the next step is not sooner is computed there, by the
 * same SQL functions the scheduler uses. After the last step the position
 * is one past it: said so, counted as the last step ("done (2 of 2)"), not
 * as a step 3 of 2. */
static const char show_sql[] =
    "SELECT e.id, e.sequence, e.version, e.state, e.state_reason, relance_show_time(e.state_changed_at),"
    " CASE WHEN e.position >= e.n_steps THEN 'done' ELSE coalesce(e.step_id, '-') END,"
    " least(e.position + 1, e.n_steps), e.n_steps, relance_show_time(e.next_send_at),"
    " to_char(e.next_send_at AT TIME ZONE e.zone, 'YYYY-MM-DD HH24:MI:SS'), e.zone, e.why_not_sooner"
    " FROM relance_enrollments_show(ARRAY(SELECT e.id FROM enrollments e JOIN contacts c ON c.id = e.contact_id"
    " WHERE c.email_key = lower(btrim($1))), $2, $3) e ORDER BY e.id";

static int show(struct cli *cli, const struct cli_args *args)
{
    const char *email = args->operands[0];
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    PGconn *conn = cli->conn;
    char norm[CONTACT_EMAIL_MAX + 1];
    const char *smtp = config_claims_by_account(cli->config) ? "true" : "false";
    const char *p[3] = {contact_email_key(email, norm), now, smtp};
    PGresult *r = PQexecParams(conn, show_sql, 3, NULL, p, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else if (PQntuples(r) == 0) {
        fprintf(stderr, "relance: no enrollment for %s\n", email);
        rc = CLI_ERROR;
    }
    for (int i = 0; rc == CLI_OK && i < PQntuples(r); i++) {
        printf("enrollment %s: %s v%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2));
        printf("  state: %s (%s, since %s)\n", PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5));
        printf("  step: %s (%s of %s)\n", PQgetvalue(r, i, 6), PQgetvalue(r, i, 7), PQgetvalue(r, i, 8));
        if (!PQgetisnull(r, i, 9))
            printf("  next send: %s (%s %s)\n", PQgetvalue(r, i, 9), PQgetvalue(r, i, 10), PQgetvalue(r, i, 11));
        else
            printf("  next send: -\n");
        printf("  why not sooner: %s\n", PQgetvalue(r, i, 12));
    }
    PQclear(r);
    return rc;
}

/* What --state accepts: every state enrollments.state may hold. */
static const char *const states[] = {"active",       "paused",    "held",   "replied", "bounced",
                                     "unsubscribed", "completed", "failed", "stopped", NULL};

enum { OPT_SEQUENCE, OPT_STATE, OPT_LIMIT };

static const struct cli_option list_options[] = {
    [OPT_SEQUENCE] = {"sequence", 0, "NAME", "only this sequence's enrollments", 0, 0},
    [OPT_STATE] = {"state", 0, "STATE",
                   "only this state: active, paused, held, replied, bounced,\nunsubscribed, completed, failed or "
                   "stopped",
                   0, 0},
    [OPT_LIMIT] = {"limit", 0, "N", "at most N enrollments (default 1000)", 0, 0},
    {0},
};

static int list(struct cli *cli, const struct cli_args *args)
{
    const char *seq = cli_args_value(args, OPT_SEQUENCE), *state = cli_args_value(args, OPT_STATE);
    const char *limit = cli_args_value(args, OPT_LIMIT);
    if (!limit)
        limit = "1000";
    int known = !state;
    for (size_t i = 0; state && states[i]; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known)
        return cli_fail(CLI_ERROR,
                        "enrollments: unknown state '%s' (active, paused, held, replied, bounced, unsubscribed, "
                        "completed, failed, stopped)",
                        state);
    if (!*limit || strspn(limit, "0123456789") != strlen(limit) || strlen(limit) > 9)
        return cli_fail(CLI_ERROR, "enrollments: --limit takes a number");
    const char *p[3] = {seq, state, limit};
    /* The first row says whether the sequence exists, in the same
     * statement: a typo is an error, not an empty list. */
    PGresult *r = PQexecParams(cli->conn,
                               "SELECT $1::text IS NULL OR EXISTS (SELECT 1 FROM sequences WHERE name = $1),"
                               " NULL::bigint, NULL, NULL, NULL, NULL, NULL "
                               "UNION ALL (SELECT NULL, e.id, c.email, s.name || ' v' || e.version, e.state,"
                               " 'step ' || least(e.position + 1, n.steps) || ' of ' || n.steps,"
                               " coalesce(" UTC("e.next_send_at") ", '-') "
                               "FROM enrollments e JOIN contacts c ON c.id = e.contact_id "
                               "JOIN sequences s ON s.id = e.sequence_id "
                               "CROSS JOIN LATERAL (SELECT count(*) AS steps FROM sequence_steps x "
                               " WHERE x.sequence_id = e.sequence_id AND x.version = e.version) n "
                               "WHERE ($1::text IS NULL OR s.name = $1) AND ($2::text IS NULL OR e.state = $2) "
                               "ORDER BY e.id DESC LIMIT $3::int)",
                               3, NULL, p, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        rc = cli_fail(CLI_ERROR, "enrollments: no such sequence '%s' (relance sequences list shows them)", seq);
    }
    for (int i = 1; rc == CLI_OK && i < PQntuples(r); i++)
        printf("%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 1), PQgetvalue(r, i, 2), PQgetvalue(r, i, 3),
               PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
    PQclear(r);
    return rc;
}

static const struct cli_command subcommands[] = {
    {.name = "show", .summary = "each enrollment of the contact with this address", .operands = "EMAIL",
     .min_operands = 1, .max_operands = 1, .run = show},
    {.name = "list", .summary = "one enrollment a line, newest first", .options = list_options, .run = list},
    {0},
};

const struct cli_command cmd_enrollments = {
    .name = "enrollments",
    .summary = "list enrollments; show a contact's: state, next send time and why",
    .about = "show: each enrollment of a contact: sequence and version, state and why, the\n"
             "current step, the next send time in UTC and in the contact's local time, and\n"
             "why it is not sooner (wait, window, weekday, held for a field, an auto-reply's\n"
             "return, a deferral, the account's pause, cap or pacing).\n"
             "list: one enrollment a line, newest first: id, contact, sequence and version,\n"
             "state, step k of n, next send time (UTC).\n"
             "States: active, paused (by hand), held (until something is fixed, such as a\n"
             "contact field), replied, bounced, unsubscribed, completed (the last step went\n"
             "out), failed (relance could not go on), stopped (by hand or by a suppression).\n",
    .subcommands = subcommands,
};
