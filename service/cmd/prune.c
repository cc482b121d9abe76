/* cmd/prune: `relance prune [--batch N]`, retention's one-shot face (for
 * cron, and for tests): it prunes everything due now, by relance's clock,
 * batch after batch until none is left, and prints how many of each kind
 * went. The configuration says how long each kind is kept (retention:);
 * what pruning does, and what it never touches, is SQL's
 * (relance_retention_prune in sql/functions/retention.sql). serve runs
 * the same batches on its own (retention.c). */
#include "cli.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_BATCH };

static const struct cli_option options[] = {
    [OPT_BATCH] = {"batch", 0, "N", "rows of each kind per batch (default 1000)", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *batch = cli_args_value(args, OPT_BATCH);
    if (!batch)
        batch = "1000";
    if (!*batch || strspn(batch, "0123456789") != strlen(batch) || strlen(batch) > 7 || atol(batch) < 1)
        return cli_fail(CLI_ERROR, "prune: --batch takes a number from 1 to 9999999, not '%s'", batch);
    const struct config *cfg = cli->config;
    char now[64], ev[32], msg[32], in[32];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    snprintf(ev, sizeof ev, "%ld", cfg->retention_events);
    snprintf(msg, sizeof msg, "%ld", cfg->retention_messages);
    snprintf(in, sizeof in, "%ld", cfg->retention_inbound);
    const char *p[5] = {now, ev, msg, in, batch};
    long events = 0, messages = 0, inbound = 0, batches = 0;
    for (;;) {
        PGresult *r = cli_query(cli->conn, "SELECT * FROM relance_retention_prune($1, $2, $3, $4, $5)", 5, p);
        if (!r)
            return CLI_ERROR;
        int busy = strcmp(PQgetvalue(r, 0, 4), "t") == 0, more = strcmp(PQgetvalue(r, 0, 3), "t") == 0;
        events += atol(PQgetvalue(r, 0, 0));
        messages += atol(PQgetvalue(r, 0, 1));
        inbound += atol(PQgetvalue(r, 0, 2));
        PQclear(r);
        if (busy)
            return cli_fail(CLI_ERROR, "prune: another replica or prune is pruning now; try again later");
        batches++;
        if (!more)
            break;
    }
    printf("pruned in %ld batch%s: %ld event%s deleted; %ld message%s and %ld inbound message%s stripped of "
           "addresses and subjects\n",
           batches, batches == 1 ? "" : "es", events, events == 1 ? "" : "s", messages, messages == 1 ? "" : "s",
           inbound, inbound == 1 ? "" : "s");
    return CLI_OK;
}

const struct cli_command cmd_prune = {
    .name = "prune",
    .summary = "apply the retention now: delete old events, strip old messages of personal data",
    .about = "Prunes what the configuration's retention: says is past keeping, as of now,\n"
             "in small batches until nothing is left: events older than retention.events\n"
             "are deleted; messages older than retention.messages and inbound messages\n"
             "older than retention.inbound keep their row (what the stats count) but lose\n"
             "addresses, subject and reply. The messages of live enrollments (active,\n"
             "paused, held) are kept whole: their follow-ups need them. serve does the\n"
             "same every 10 minutes; this is for cron or a one-off.\n",
    .options = options,
    .run = run,
};
