/* cmd/enrollments: `relance enrollments show EMAIL`, each enrollment of a
 * contact: its state and why, the current step, the next send time in UTC
 * and in the contact's zone, and why it is not sooner — computed by the
 * same SQL functions the scheduler uses, so the answer is the
 * scheduler's; and `relance enrollments list`, one enrollment a line,
 * picked by sequence and state. */
#include "cli.h"
#include "contact.h"

#include <stdio.h>
#include <string.h>

/* A timestamptz as the UTC instant every line of the command shows. */
#define UTC(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

/* One row per enrollment of the contact, with the reason the next step is
 * not sooner computed by the same SQL functions the scheduler uses: the
 * state, then the sending account (paused, missing, at its cap, spacing
 * its messages) for a due step, then for a step not due yet what set its
 * time (an auto-reply's return, the server's deferral, the wait, the
 * window). */
static const char show_sql[] =
    "WITH e AS ("
    " SELECT e.*, s.name, c.email, c.timezone AS ctz, v.timezone AS vtz, v.fallback_timezone, v.window_start_min,"
    "  v.sender_pool,"
    "  v.window_end_min, v.days, st.step_id, st.wait_seconds, st.wait_days, st.wait_business_days,"
    "  relance_zone(v.timezone, c.timezone, v.fallback_timezone) AS zone,"
    "  (SELECT max(m.sent_at) FROM messages m WHERE m.enrollment_id = e.id) AS last_sent,"
    "  (SELECT count(*) FROM sequence_steps x WHERE x.sequence_id = e.sequence_id AND x.version = e.version)"
    "   AS n_steps,"
    /* the current step's message when the server deferred it: retried at
     * next_send_at (outcomes.sql, relance_step_deferred) */
    "  d.id AS deferred_id, d.reply AS deferred_reply,"
    /* the return date of the auto-reply that set not_before (inbound.sql) */
    "  (SELECT i.return_date FROM inbound_messages i WHERE i.enrollment_id = e.id AND i.effect = 'auto_reply'"
    "    AND i.return_date IS NOT NULL ORDER BY i.detected_at DESC, i.id DESC LIMIT 1) AS return_date,"
    "  a.email AS account, a.next_send_after AS account_after"
    " FROM enrollments e JOIN contacts c ON c.id = e.contact_id JOIN sequences s ON s.id = e.sequence_id"
    " JOIN sequence_versions v ON v.sequence_id = e.sequence_id AND v.version = e.version"
    " LEFT JOIN sequence_steps st ON st.sequence_id = e.sequence_id AND st.version = e.version"
    "  AND st.position = e.position"
    " LEFT JOIN messages d ON d.enrollment_id = e.id AND d.position = e.position AND d.state = 'deferred'"
    " LEFT JOIN accounts a ON a.id = e.account_id"
    " WHERE c.email_key = lower(btrim($1)))"
    "SELECT e.id, e.name, e.version, e.state, e.state_reason,"
    " " UTC("e.state_changed_at") ","
    /* After the last step the position is one past it: say so, counted
     * as the last step ("done (2 of 2)"), not as a step 3 of 2. */
    " CASE WHEN e.position >= e.n_steps THEN 'done' ELSE coalesce(e.step_id, '-') END,"
    " least(e.position + 1, e.n_steps), e.n_steps,"
    " " UTC("e.next_send_at") ","
    " to_char(e.next_send_at AT TIME ZONE e.zone, 'YYYY-MM-DD HH24:MI:SS'), e.zone,"
    " CASE"
    "  WHEN e.state = 'held' THEN 'held: ' || e.state_reason"
    "  WHEN e.state <> 'active' THEN e.state"
    "  WHEN e.next_send_at IS NULL THEN 'being sent now'"
    "  WHEN e.account_id IS NOT NULL AND (SELECT a.state = 'paused' FROM accounts a WHERE a.id = e.account_id)"
    "   THEN 'account paused: ' || (SELECT coalesce(a.state_reason, '') FROM accounts a WHERE a.id = e.account_id)"
    /* A pool no configured account belongs to: nothing would ever send.
     * Said only once serve has synced some accounts, else nothing is known;
     * and not for capture without accounts ($3 false), which ignores
     * pools (with accounts, capture claims per account as smtp does). */
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
    /* min_interval: an account's claim takes nothing before its
     * next_send_after (claim.sql), so a due step waits for it; after an
     * account's resume its due steps go out one interval apart. */
    "  WHEN $3 AND e.next_send_at <= $2 AND e.account_after > $2"
    "   THEN 'account pacing: ' || e.account || ' sends its next message at ' || " UTC("e.account_after")
    "        || ' (min_interval)'"
    "  WHEN $3 AND e.next_send_at <= $2 AND e.account_id IS NULL AND EXISTS (SELECT 1 FROM accounts a"
    "       WHERE a.pool = e.sender_pool AND a.state = 'active' AND a.configured) AND NOT EXISTS (SELECT 1"
    "       FROM accounts a WHERE a.pool = e.sender_pool AND a.state = 'active' AND a.configured"
    "       AND (a.next_send_after IS NULL OR a.next_send_after <= $2))"
    "   THEN 'account pacing: every account of pool ' || e.sender_pool || ' waits for its min_interval, the"
    " first until ' || (SELECT " UTC("min(a.next_send_after)") " FROM accounts a WHERE a.pool = e.sender_pool"
    "       AND a.state = 'active' AND a.configured)"
    "  WHEN e.next_send_at <= $2 THEN 'due now'"
    /* An auto-reply's return holds the step until the first window on or
     * after that day (the not_before trigger sets next_send_at to it). */
    "  WHEN e.not_before IS NOT NULL AND e.next_send_at <= e.not_before"
    "   THEN 'auto-reply: away until ' || coalesce(e.return_date::text, 'a return date') || ', no step before '"
    "        || " UTC("e.not_before")
    "  WHEN e.deferred_id IS NOT NULL"
    "   THEN 'deferred: the server answered ''' || coalesce(left(split_part(e.deferred_reply, E'\\n', 1), 200),"
    "        '') || ''', retried at ' || " UTC("e.next_send_at")
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
    int by_account = strcmp(cli->config->transport, "smtp") == 0;
    for (size_t i = 0; i < cli->config->n_pools; i++)
        by_account |= cli->config->pools[i].n_accounts > 0;
    const char *smtp = by_account ? "true" : "false";
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
