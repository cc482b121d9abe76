/* cmd/messages: `relance messages list [--state STATE] [--limit N]`, one
 * message a line, with its state as the sender and the mailbox watcher
 * left it ('unknown': may have been delivered, never sent again). */
#include "cli.h"

#include <stdio.h>
#include <string.h>

int cmd_messages(struct cli *cli, int argc, char **argv)
{
    if (cli_wants_help(argc, argv) || argc < 2) {
        printf("usage: relance messages list [--state STATE] [--limit N]\n\n"
               "One message a line: time (UTC), state, recipient, sequence, step, sender, last\n"
               "reply. STATE is sending, sent, deferred, bounced, unknown or failed. 'unknown'\n"
               "messages may have been delivered: relance never sends them again.\n");
        return argc < 2 && !cli_wants_help(argc, argv) ? CLI_USAGE : CLI_OK;
    }
    if (strcmp(argv[1], "list") != 0)
        return cli_fail(CLI_USAGE, "messages: use 'list' (see relance messages --help)");
    const char *state = NULL, *limit = "1000";
    for (int i = 2; i < argc; i++) {
        if (strcmp(argv[i], "--state") == 0 && i + 1 < argc)
            state = argv[++i];
        else if (strcmp(argv[i], "--limit") == 0 && i + 1 < argc)
            limit = argv[++i];
        else
            return cli_fail(CLI_USAGE, "messages: unexpected argument '%s'", argv[i]);
    }
    static const char *const states[] = {"sending", "sent", "deferred", "bounced", "unknown", "failed", NULL};
    int known = !state;
    for (size_t i = 0; state && states[i]; i++)
        known |= strcmp(states[i], state) == 0;
    if (!known)
        return cli_fail(CLI_ERROR, "messages: unknown state '%s' (sending, sent, deferred, bounced, unknown, failed)",
                        state);
    if (strspn(limit, "0123456789") != strlen(limit) || !*limit)
        return cli_fail(CLI_ERROR, "messages: --limit takes a number");
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn)
        return CLI_ERROR;
    const char *p[2] = {state, limit};
    PGresult *r = PQexecParams(conn,
                               "SELECT to_char(coalesce(m.sent_at, m.created_at) AT TIME ZONE 'UTC', "
                               "'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"'), m.state, m.recipient, s.name, m.step_id, "
                               "coalesce(m.sender, '-'), coalesce(m.reply, '-') "
                               "FROM messages m JOIN enrollments e ON e.id = m.enrollment_id "
                               "JOIN sequences s ON s.id = e.sequence_id "
                               "WHERE $1::text IS NULL OR m.state = $1 ORDER BY m.id LIMIT $2::int",
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
    PQfinish(conn);
    return rc;
}
