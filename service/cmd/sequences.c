/* cmd/sequences: `relance sequences list|show NAME`, the applied
 * sequences as the database holds them: list gives each one's current
 * version, step count, pool and active enrollments; show every version of
 * one, with its schedule and its steps' waits. apply writes them. */
#include "cli.h"
#include "duration.h"
#include "sequence.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static void print_wait(const char *secs, const char *days, const char *bdays)
{
    struct duration d = {atoll(secs), atoi(days), atoi(bdays)};
    char buf[80];
    duration_format(&d, buf, sizeof buf);
    printf("%s", buf);
}

static int show(struct cli *cli, const struct cli_args *args)
{
    PGconn *conn = cli->conn;
    const char *name = args->operands[0];
    const char *p[1] = {name};
    PGresult *r = cli_query(conn,
                            "SELECT s.id, s.current_version, v.version, v.source_file, "
                            "to_char(v.created_at AT TIME ZONE 'UTC', 'YYYY-MM-DD HH24:MI:SS\"Z\"'), "
                            "v.sender_pool, coalesce(v.timezone, 'contact (fallback ' || v.fallback_timezone || ')'), "
                            "lpad((v.window_start_min / 60)::text, 2, '0') || ':' || "
                            "lpad((v.window_start_min % 60)::text, 2, '0') || '-' || "
                            "lpad((v.window_end_min / 60)::text, 2, '0') || ':' || "
                            "lpad((v.window_end_min % 60)::text, 2, '0'), v.days, "
                            "(SELECT count(*) FROM enrollments e WHERE e.sequence_id = s.id AND e.version = v.version) "
                            "FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id "
                            "WHERE s.name = $1 ORDER BY v.version",
                            1, p);
    if (!r)
        return CLI_ERROR;
    if (PQntuples(r) == 0) {
        PQclear(r);
        fprintf(stderr, "relance: no sequence named '%s' (relance sequences list shows them)\n", name);
        return CLI_ERROR;
    }
    printf("sequence %s (current v%s)\n", name, PQgetvalue(r, 0, 1));
    for (int i = 0; i < PQntuples(r); i++) {
        unsigned days = (unsigned)atoi(PQgetvalue(r, i, 8));
        printf("v%s  applied %s from %s, %s enrollment%s\n", PQgetvalue(r, i, 2), PQgetvalue(r, i, 4),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 9), strcmp(PQgetvalue(r, i, 9), "1") == 0 ? "" : "s");
        printf("    pool %s, zone %s, window %s, days", PQgetvalue(r, i, 5), PQgetvalue(r, i, 6),
               PQgetvalue(r, i, 7));
        for (int d = 0; d < 7; d++)
            if (days & (1u << d))
                printf(" %s", sequence_day_names[d]);
        printf("\n");
        const char *q[2] = {PQgetvalue(r, i, 0), PQgetvalue(r, i, 2)};
        PGresult *st = cli_query(conn,
                                 "SELECT position + 1, step_id, wait_seconds, wait_days, wait_business_days, thread "
                                 "FROM sequence_steps WHERE sequence_id = $1 AND version = $2 ORDER BY position",
                                 2, q);
        if (!st) {
            PQclear(r);
            return CLI_ERROR;
        }
        for (int k = 0; k < PQntuples(st); k++) {
            printf("    %s. %s  wait ", PQgetvalue(st, k, 0), PQgetvalue(st, k, 1));
            print_wait(PQgetvalue(st, k, 2), PQgetvalue(st, k, 3), PQgetvalue(st, k, 4));
            printf("%s\n", k > 0 && strcmp(PQgetvalue(st, k, 5), "t") == 0 ? ", threaded" : "");
        }
        PQclear(st);
    }
    PQclear(r);
    return CLI_OK;
}

static int list(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    PGresult *r = cli_query(cli->conn,
                            "SELECT s.name, s.current_version, "
                            "(SELECT count(*) FROM sequence_steps t WHERE t.sequence_id = s.id "
                            " AND t.version = s.current_version), v.sender_pool, "
                            "(SELECT count(*) FROM enrollments e WHERE e.sequence_id = s.id "
                            " AND e.state = 'active') "
                            "FROM sequences s JOIN sequence_versions v ON v.sequence_id = s.id "
                            "AND v.version = s.current_version ORDER BY s.name",
                            0, NULL);
    if (!r)
        return CLI_ERROR;
    for (int i = 0; i < PQntuples(r); i++)
        printf("%s\tv%s\t%s steps\tpool %s\t%s active\n", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1),
               PQgetvalue(r, i, 2), PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
    PQclear(r);
    return CLI_OK;
}

static const struct cli_command subcommands[] = {
    {.name = "list", .summary = "every applied sequence with its current version and step count", .run = list},
    {.name = "show", .summary = "every version of one sequence, its schedule and its steps with waits",
     .operands = "NAME", .min_operands = 1, .max_operands = 1, .run = show},
    {0},
};

const struct cli_command cmd_sequences = {
    .name = "sequences",
    .summary = "list applied sequences, or show one's versions and steps",
    .subcommands = subcommands,
};
