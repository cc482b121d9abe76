/* cmd/messages: `relance messages list [--state STATE] [--limit N]`, one
 * message a line in time order (sent or last attempted, then created),
 * with its state as the sender and the mailbox watcher left it
 * ('unknown': may have been delivered, never sent again). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

enum { OPT_STATE, OPT_LIMIT };

static const struct cli_option options[] = {
    [OPT_STATE] = {"state", 0, "STATE", "sending, sent, deferred, bounced, unknown or failed", 0, 0},
    [OPT_LIMIT] = {"limit", 0, "N", "at most N messages (default 1000)", 0, 0},
    {0},
};

static int list(struct cli *cli, const struct cli_args *args)
{
    const char *state = cli_args_value(args, OPT_STATE), *limit = cli_args_value(args, OPT_LIMIT);
    if (!limit)
        limit = "1000";
    static const char *const states[] = {"sending", "sent", "deferred", "bounced", "unknown", "failed", NULL};
    int known = !state;
    for (size_t i = 0; state && states[i]; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known)
        return cli_fail(CLI_ERROR, "messages: unknown state '%s' (sending, sent, deferred, bounced, unknown, failed)",
                        state);
    if (strspn(limit, "0123456789") != strlen(limit) || !*limit)
        return cli_fail(CLI_ERROR, "messages: --limit takes a number");
    PGconn *conn = cli->conn;
    const char *p[2] = {state, limit};
    PGresult *r = PQexecParams(conn,
                               "SELECT to_char(coalesce(m.sent_at, m.created_at) AT TIME ZONE 'UTC', "
                               "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), m.state, m.recipient, s.name, m.step_id, "
                               "coalesce(m.sender, '-'), coalesce(m.reply, '-') "
                               "FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                               "JOIN sequences s ON s.id = e.sequence_id "
                               "WHERE $1::text IS NULL OR m.state = $1 "
                               "ORDER BY coalesce(m.sent_at, m.created_at), m.id LIMIT $2::int",
                               2, NULL, p, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    }
    for (int i = 0; rc == CLI_OK && i < PQntuples(r); i++)
        printf("%s\t%s\t%s\t%s\t%s\t%s\t%s\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4), PQgetvalue(r, i, 5), PQgetvalue(r, i, 6));
    PQclear(r);
    return rc;
}

static const struct cli_command subcommands[] = {
    {.name = "list", .summary = "messages in the order they were sent or attempted", .options = options, .run = list},
    {0},
};

const struct cli_command cmd_messages = {
    .name = "messages",
    .summary = "list messages by state (sent, deferred, bounced, unknown...)",
    .about = "One message a line: time (UTC), state, recipient, sequence, step, sender, last\n"
             "reply. 'unknown' messages may have been delivered: relance never sends them\n"
             "again.\n",
    .subcommands = subcommands,
};
