/* cmd/enrollments: `relance enrollments show EMAIL`, each enrollment of a
 * contact: its state and why, the current step, the next send time in UTC
 * and in the contact's zone, and why it is not sooner — computed by the
 * same SQL functions the scheduler uses, so the answer is the
 * scheduler's. */
#include "cli.h"
#include "contact.h"

#include <stdio.h>
#include <string.h>

/* One row per enrollment of the contact, with the reason the next step is
 * not sooner computed by the same SQL functions the scheduler uses. */
static const char show_sql[] =
    "WITH e AS ("
    " SELECT e.*, s.name, c.email, c.timezone AS ctz, v.timezone AS vtz, v.fallback_timezone, v.window_start_min,"
    "  v.sender_pool,"
    "  v.window_end_min, v.days, st.step_id, st.wait_seconds, st.wait_days, st.wait_business_days,"
    "  relance_zone(v.timezone, c.timezone, v.fallback_timezone) AS zone,"
    "  (SELECT max(m.sent_at) FROM messages m WHERE m.enrollment_id = e.id) AS last_sent,"
    "  (SELECT count(*) FROM sequence_steps x WHERE x.sequence_id = e.sequence_id AND x.version = e.version)"
    "   AS n_steps"
    " FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN sequences s ON s.id = e.sequence_id"
    " JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version"
    " LEFT JOIN sequence_steps st ON st.sequence_id = e.sequence_id AND st.version = e.version"
    "  AND st.position = e.position"
    " WHERE c.email_key = lower(btrim($1)))"
    "SELECT e.id, e.name, e.version, e.state, e.state_reason,"
    " to_char(e.state_changed_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    /* After the last step the position is one past it: say so, counted
     * as the last step ("done (2 of 2)"), not as a step 3 of 2. */
    " CASE WHEN e.position >= e.n_steps THEN 'done' ELSE coalesce(e.step_id, '-') END,"
    " least(e.position + 1, e.n_steps), e.n_steps,"
    " to_char(e.next_send_at AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'),"
    " to_char(e.next_send_at AT TIME ZONE e.zone, 'YYYY-MM-DD HH24:MI:SS'), e.zone,"
    " CASE"
    "  WHEN e.state = 'held' THEN 'held: ' || e.state_reason"
    "  WHEN e.state <> 'active' THEN e.state"
    "  WHEN e.next_send_at IS NULL THEN 'being sent now'"
    "  WHEN e.account_id IS NOT NULL AND (SELECT a.state = 'paused' FROM accounts a WHERE a.id = e.account_id)"
    "   THEN 'account paused: ' || (SELECT coalesce(a.state_reason, '') FROM accounts a WHERE a.id = e.account_id)"
    /* A pool no configured account belongs to: nothing would ever send.
     * Said only once serve has synced some accounts, else nothing is known;
     * and not for transport capture ($3 false), which ignores pools. */
    "  WHEN $3 AND e.account_id IS NULL AND EXISTS (SELECT 1 FROM accounts a WHERE a.configured)"
    "       AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool AND a.configured)"
    "   THEN 'no such pool ''' || e.sender_pool || ''''"
    "  WHEN e.next_send_at <= $2 AND e.account_id IS NOT NULL AND (SELECT relance_account_remaining(a.id,"
    "       relance_local_day($2, a.timezone)) <= 0 FROM accounts a WHERE a.id = e.account_id)"
    "   THEN 'account capacity: the account reached its limit for today'"
    "  WHEN e.next_send_at <= $2 AND e.account_id IS NULL AND EXISTS (SELECT 1 FROM accounts a"
    "       WHERE a.pool = e.sender_pool) AND NOT EXISTS (SELECT 1 FROM accounts a WHERE a.pool = e.sender_pool"
    "       AND a.state = 'active' AND a.configured AND coalesce(relance_account_remaining(a.id,"
    "       relance_local_day($2, a.timezone)), 1) > 0)"
    "   THEN 'account capacity: every account of pool ' || e.sender_pool || ' is at its limit today or paused'"
    "  WHEN e.next_send_at <= $2 THEN 'due now'"
    "  WHEN e.position > 0 AND relance_add_wait(e.last_sent, e.zone, e.wait_seconds, e.wait_days,"
    "       e.wait_business_days) > $2 THEN 'wait: the step waits after the previous one'"
    "  WHEN relance_next_window(coalesce(CASE WHEN e.position > 0 THEN relance_add_wait(e.last_sent, e.zone,"
    "       e.wait_seconds, e.wait_days, e.wait_business_days) END, e.created_at), e.zone, e.window_start_min,"
    "       e.window_end_min, e.days) > coalesce(CASE WHEN e.position > 0 THEN relance_add_wait(e.last_sent,"
    "       e.zone, e.wait_seconds, e.wait_days, e.wait_business_days) END, e.created_at)"
    "   THEN CASE WHEN (e.days >> (extract(isodow FROM coalesce(CASE WHEN e.position > 0 THEN"
    "       relance_add_wait(e.last_sent, e.zone, e.wait_seconds, e.wait_days, e.wait_business_days) END,"
    "       e.created_at) AT TIME ZONE e.zone)::int - 1)) & 1 = 0"
    "        THEN 'weekday: not a sending day in ' || e.zone"
    "        ELSE 'window: outside the sending window in ' || e.zone END"
    "  ELSE 'jitter: a random delay inside the window' END"
    " FROM e ORDER BY e.id";

static int show(struct cli *cli, const struct cli_args *args)
{
    const char *email = args->operands[0];
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    PGconn *conn = cli->conn;
    char norm[CONTACT_EMAIL_MAX + 1];
    const char *smtp = strcmp(cli->config->transport, "smtp") == 0 ? "true" : "false";
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

static const struct cli_command subcommands[] = {
    {.name = "show", .summary = "each enrollment of the contact with this address", .operands = "EMAIL",
     .min_operands = 1, .max_operands = 1, .run = show},
    {0},
};

const struct cli_command cmd_enrollments = {
    .name = "enrollments",
    .summary = "show a contact's enrollments: state, next send time and why",
    .about = "Shows each enrollment of a contact: sequence and version, state and why,\n"
             "the current step, the next send time in UTC and in the contact's local\n"
             "time, and why it is not sooner (wait, window, weekday, held for a field).\n",
    .subcommands = subcommands,
};
