/* cmd/pause: `relance pause|resume|stop`, one command under three names
 * (the name typed says which): pause holds active or held enrollments in
 * place, resume lets paused ones go on (every send gate is checked again
 * at send time), stop ends them for good. Each picks enrollments by id,
 * contact or sequence; the change is relance_enrollments_change's, the
 * HTTP API's too (enrollments.sql); a target that does not exist is an
 * error, one that exists with nothing to change is not (its count is 0). */
#include "cli.h"
#include "contact.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_ENROLLMENT, OPT_CONTACT, OPT_SEQUENCE };

static const struct cli_option options[] = {
    [OPT_ENROLLMENT] = {"enrollment", 0, "ID", "one enrollment, by its number", 0, 1},
    [OPT_CONTACT] = {"contact", 0, "EMAIL", "every enrollment of a contact", 0, 1},
    [OPT_SEQUENCE] = {"sequence", 0, "NAME", "every enrollment in a sequence", 0, 1},
    {0},
};

/* Which enrollments each option picks ($1 is its value): the argument of
 * relance_enrollments_change it fills, and whether the target itself
 * exists: a typo must not read as "nothing to do". */
static const struct pick {
    const char *noun, *exists, *args;
} picks[] = {
    [OPT_ENROLLMENT] = {"enrollment", "SELECT 1 FROM enrollments WHERE id = $1::bigint", "$1::bigint, NULL, NULL"},
    [OPT_CONTACT] = {"contact", "SELECT 1 FROM contacts WHERE email_key = lower(btrim($1))",
                     "NULL, (SELECT id FROM contacts WHERE email_key = lower(btrim($1))), NULL"},
    [OPT_SEQUENCE] = {"sequence", "SELECT 1 FROM sequences WHERE name = $1",
                      "NULL, NULL, (SELECT id FROM sequences WHERE name = $1)"},
};

/* What each name is called in relance_enrollments_change (which decides
 * the states each changes, shared with the HTTP API) and says it did. */
static const struct verb {
    const char *name, *done;
} verbs[] = {
    {"pause", "paused"},
    {"resume", "resumed"},
    {"stop", "stopped"},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const struct verb *verb = &verbs[0];
    for (size_t i = 0; i < sizeof verbs / sizeof verbs[0]; i++)
        if (strcmp(verbs[i].name, args->command->name) == 0)
            verb = &verbs[i];
    int by = OPT_ENROLLMENT; /* cli_options checked that exactly one is given */
    while (!cli_args_count(args, by))
        by++;
    const char *value = cli_args_value(args, by);
    if (by == OPT_ENROLLMENT && strspn(value, "0123456789") != strlen(value))
        return cli_fail(CLI_ERROR, "%s: --enrollment takes a number, not '%s'", verb->name, value);
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    char *sql = NULL;
    /* One statement: whether the target exists, and the change. */
    if (asprintf(&sql,
                 "SELECT EXISTS (%s), (SELECT count(*) FROM relance_enrollments_change('%s', %s, NULL, "
                 "$2::timestamptz))",
                 picks[by].exists, verb->name, picks[by].args) < 0)
        return CLI_ERROR;
    char norm[CONTACT_EMAIL_MAX + 1];
    const char *p[2] = {by == OPT_CONTACT ? contact_email_key(value, norm) : value, now};
    PGresult *r = PQexecParams(cli->conn, sql, 2, NULL, p, NULL, NULL, 0);
    free(sql);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        fprintf(stderr, "relance: %s", PQresultErrorMessage(r));
        rc = CLI_ERROR;
    } else if (strcmp(PQgetvalue(r, 0, 0), "t") != 0) {
        rc = cli_fail(CLI_ERROR, "%s: no such %s '%s'", verb->name, picks[by].noun, value);
    } else {
        const char *n = PQgetvalue(r, 0, 1);
        printf("%s %s enrollment%s\n", verb->done, n, strcmp(n, "1") == 0 ? "" : "s");
    }
    PQclear(r);
    return rc;
}

#define ABOUT                                                                                                   \
    "pause: active or held enrollments stop going forward and keep their place.\n"                              \
    "resume: paused enrollments go on; every gate (window, weekday, wait) is\n"                                 \
    "        checked again at send time, so nothing goes out off-hours.\n"                                      \
    "stop: enrollments end for good (state stopped, reason 'stopped by user').\n"

const struct cli_command cmd_pause = {
    .name = "pause",
    .summary = "pause an enrollment, a contact or a whole sequence",
    .about = ABOUT,
    .options = options,
    .run = run,
};

const struct cli_command cmd_resume = {
    .name = "resume",
    .summary = "resume what was paused (every send gate is checked again)",
    .about = ABOUT,
    .options = options,
    .run = run,
};

const struct cli_command cmd_stop = {
    .name = "stop",
    .summary = "stop an enrollment, a contact or a whole sequence for good",
    .about = ABOUT,
    .options = options,
    .run = run,
};
