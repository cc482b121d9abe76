/* cmd/pause: `relance pause|resume|stop`, one command under three names
 * (the name typed says which): pause holds active or held enrollments in
 * place, resume lets paused ones go on (every send gate is checked again
 * at send time), stop ends them for good. Each picks enrollments by id,
 * contact or sequence, in one UPDATE. */
#include "cli.h"
#include "contact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int cmd_pause(struct cli *cli, int argc, char **argv)
{
    const char *verb = argv[0];
    if (cli_wants_help(argc, argv)) {
        printf("usage: relance %s (--enrollment ID | --contact EMAIL | --sequence NAME)\n\n"
               "pause: active or held enrollments stop going forward and keep their place.\n"
               "resume: paused enrollments go on; every gate (window, weekday, wait) is\n"
               "        checked again at send time, so nothing goes out off-hours.\n"
               "stop: enrollments end for good (state completed, reason 'stopped').\n",
               verb);
        return CLI_OK;
    }
    if (argc != 3)
        return cli_fail(CLI_USAGE, "%s: give one of --enrollment ID, --contact EMAIL, --sequence NAME", verb);
    const char *which;
    if (strcmp(argv[1], "--enrollment") == 0)
        which = "e.id = $1::bigint";
    else if (strcmp(argv[1], "--contact") == 0)
        which = "e.contact_id = (SELECT id FROM contacts WHERE email_key = lower(btrim($1)))";
    else if (strcmp(argv[1], "--sequence") == 0)
        which = "e.sequence_id = (SELECT id FROM sequences WHERE name = $1)";
    else
        return cli_fail(CLI_USAGE, "%s: unknown option '%s'", verb, argv[1]);
    if (strcmp(argv[1], "--enrollment") == 0 && strspn(argv[2], "0123456789") != strlen(argv[2]))
        return cli_fail(CLI_ERROR, "%s: --enrollment takes a number, not '%s'", verb, argv[2]);
    const char *set, *from;
    if (strcmp(verb, "pause") == 0) {
        set = "state = 'paused', state_reason = 'paused by user'";
        from = "('active', 'held')";
    } else if (strcmp(verb, "resume") == 0) {
        set = "state = 'active', state_reason = 'resumed by user'";
        from = "('paused')";
    } else {
        set = "state = 'completed', state_reason = 'stopped by user', next_send_at = NULL";
        from = "('active', 'paused', 'held')";
    }
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    char *sql = NULL;
    if (asprintf(&sql, "UPDATE enrollments e SET %s, state_changed_at = $2 WHERE %s AND e.state IN %s", set, which,
                 from) < 0)
        return CLI_ERROR;
    PGconn *conn = cli_db_connect(cli, 1);
    if (!conn) {
        free(sql);
        return CLI_ERROR;
    }
    char norm[CONTACT_EMAIL_MAX + 1];
    const char *p[2] = {strcmp(argv[1], "--contact") == 0 ? contact_email_key(argv[2], norm) : argv[2], now};
    PGresult *r = PQexecParams(conn, sql, 2, NULL, p, NULL, NULL, 0);
    free(sql);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_COMMAND_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else {
        const char *n = PQcmdTuples(r);
        printf("%s %s enrollment%s\n",
               strcmp(verb, "pause") == 0 ? "paused" : strcmp(verb, "resume") == 0 ? "resumed" : "stopped", n,
               strcmp(n, "1") == 0 ? "" : "s");
    }
    PQclear(r);
    PQfinish(conn);
    return rc;
}

