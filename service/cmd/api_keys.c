/* cmd/api_keys: `relance api-keys create|list|revoke`, the HTTP API's
 * bearer keys from the command line.
 *
 * It owns making a key: random bytes from OpenSSL's RAND_bytes, the key
 * string and its SHA-256 (lib/apikey.c), the row (relance_api_key_create,
 * sql/functions/api_keys.sql, given only the id and the hash), and
 * showing the key once, on stdout, and nowhere else: it is never logged,
 * never sent to the database, and wiped from memory after use. list and
 * revoke show and end keys by their id. Checking a presented key is the
 * HTTP side's, not this file's.
 *
 * A bad name or scope is a usage error (exit 2) and stores nothing. */
#include "apikey.h"
#include "cli.h"
#include "pgarray.h"
#include "pgerr.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <openssl/crypto.h>
#include <openssl/rand.h>

#define NAME_MAX_BYTES 200

/* A name is shown on one line of a tab-separated list: no control
 * character, so it cannot break a line or a column. */
static int name_check(const char *name)
{
    if (!*name)
        return cli_fail(CLI_USAGE, "api-keys create: the name must not be empty");
    if (strlen(name) > NAME_MAX_BYTES)
        return cli_fail(CLI_USAGE, "api-keys create: the name is longer than %d bytes", NAME_MAX_BYTES);
    for (const unsigned char *p = (const unsigned char *)name; *p; p++)
        if (*p < 0x20 || *p == 0x7f)
            return cli_fail(CLI_USAGE, "api-keys create: the name must not hold control characters (tab, line break)");
    return CLI_OK;
}

/* Reads "a,b,..." into a PostgreSQL array literal in out, and the same
 * list comma-separated in shown: each scope trimmed of spaces, known to
 * apikey_scope_valid, once (a repeat is dropped), in the order given.
 * Returns CLI_OK, or the exit code after printing why; the caller frees
 * both either way. */
static int scopes_read(const char *list, struct buf *out, struct buf *shown)
{
    char *copy = strdup(list);
    if (!copy)
        return cli_fail(CLI_ERROR, "out of memory");
    int rc = CLI_OK, n = 0;
    const char *seen[64];
    char *save = NULL;
    /* strtok_r would skip an empty item: walk the commas by hand */
    for (char *item = copy; item && rc == CLI_OK; item = save) {
        char *comma = strchr(item, ',');
        save = comma ? comma + 1 : NULL;
        if (comma)
            *comma = '\0';
        item += strspn(item, " \t");
        size_t len = strlen(item);
        while (len && (item[len - 1] == ' ' || item[len - 1] == '\t'))
            item[--len] = '\0';
        if (!len) {
            rc = cli_fail(CLI_USAGE, "api-keys create: --scopes has an empty scope (give them as a,b,c)");
            break;
        }
        if (!apikey_scope_valid(item)) {
            struct buf known = {0};
            for (size_t i = 0; apikey_scopes[i]; i++)
                buf_addf(&known, "%s%s", i ? " " : "", apikey_scopes[i]);
            rc = cli_fail(CLI_USAGE, "api-keys create: unknown scope '%s' (known: %s)", item,
                          known.p ? known.p : "");
            buf_free(&known);
            break;
        }
        int repeat = 0;
        for (int i = 0; i < n; i++)
            repeat |= strcmp(seen[i], item) == 0;
        if (repeat)
            continue;
        if (n == (int)(sizeof seen / sizeof seen[0])) {
            rc = cli_fail(CLI_USAGE, "api-keys create: too many scopes");
            break;
        }
        seen[n++] = item;
        pgarray_add(out, item);
        buf_addf(shown, "%s%s", n > 1 ? "," : "", item);
    }
    free(copy);
    return rc;
}

/* A new key into key (APIKEY_LEN + 1 bytes): 128 random bytes are enough
 * for all but one key in 10^40 (apikey.h); a fresh draw covers that one. */
static int key_make(char *key)
{
    unsigned char random[128];
    int rc = -EAGAIN;
    for (int tries = 0; tries < 4 && rc == -EAGAIN; tries++) {
        if (RAND_bytes(random, (int)sizeof random) != 1) {
            rc = -EIO;
            break;
        }
        rc = apikey_format(random, sizeof random, key, APIKEY_LEN + 1);
    }
    OPENSSL_cleanse(random, sizeof random);
    return rc;
}

enum { OPT_SCOPES };

static const struct cli_option create_options[] = {
    [OPT_SCOPES] = {"scopes", 0, "S,...", "what the key may do, comma-separated (see relance api-keys --help)",
                    CLI_OPTION_REQUIRED, 0},
    {0},
};

static int create(struct cli *cli, const struct cli_args *args)
{
    const char *name = args->operands[0];
    int rc = name_check(name);
    if (rc != CLI_OK)
        return rc;
    struct buf scopes = {0}, shown = {0};
    rc = scopes_read(cli_args_value(args, OPT_SCOPES), &scopes, &shown);
    const char *scope_array = rc == CLI_OK ? pgarray_end(&scopes) : NULL;
    char now[40];
    if (rc == CLI_OK && (!scope_array || shown.oom))
        rc = cli_fail(CLI_ERROR, "out of memory");
    else if (rc == CLI_OK && cli_now(now, sizeof now) < 0)
        rc = CLI_ERROR;
    if (rc != CLI_OK) {
        buf_free(&scopes);
        buf_free(&shown);
        return rc;
    }

    char key[APIKEY_LEN + 1], id[APIKEY_ID_LEN + 1], hex[2 * APIKEY_HASH_LEN + 1];
    unsigned char hash[APIKEY_HASH_LEN];
    rc = CLI_ERROR;
    int begun = 0;
    if (key_make(key) < 0) {
        fprintf(stderr, "relance: api-keys create: OpenSSL could not draw random bytes\n");
        goto out;
    }
    if (apikey_parse(key, id) < 0 || apikey_hash(key, hash) < 0) {
        fprintf(stderr, "relance: api-keys create: could not hash the key\n");
        goto out;
    }
    for (size_t i = 0; i < sizeof hash; i++)
        snprintf(hex + 2 * i, 3, "%02x", hash[i]);
    /* The row commits only once the key is on stdout: a key nobody saw
     * must not be left working. */
    if (cli_exec(cli->conn, "BEGIN") < 0)
        goto out;
    begun = 1;
    const char *p[5] = {id, name, scope_array, hex, now};
    PGresult *r = PQexecParams(cli->conn,
                               "SELECT relance_api_key_create($1, $2, $3::text[], decode($4, 'hex'), $5::timestamptz)",
                               5, NULL, p, NULL, NULL, 0);
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: api-keys create: %s\n", pgerr_line(r, cli->conn, NULL, m, sizeof m));
        PQclear(r);
        goto out;
    }
    PQclear(r);
    if (printf("%s\n", key) < 0 || fflush(stdout) != 0) {
        fprintf(stderr, "relance: api-keys create: could not write the key to stdout: nothing was stored\n");
        goto out;
    }
    if (cli_exec(cli->conn, "COMMIT") < 0) {
        begun = 0;
        fprintf(stderr, "relance: api-keys create: the key was not stored: do not use it\n");
        goto out;
    }
    begun = 0;
    fprintf(stderr, "relance: created API key %s '%s' (%s); it is shown this once and cannot be shown again\n", id,
            name, shown.p);
    rc = CLI_OK;
out:
    if (begun && cli_exec(cli->conn, "ROLLBACK") < 0)
        rc = CLI_ERROR;
    OPENSSL_cleanse(key, sizeof key);
    OPENSSL_cleanse(hash, sizeof hash);
    buf_free(&scopes);
    buf_free(&shown);
    return rc;
}

#define UTC(x) "to_char((" x ") AT TIME ZONE 'UTC', 'YYYY-MM-DD\"T\"HH24:MI:SS\"Z\"')"

static int list(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    PGresult *r = PQexec(cli->conn, "SELECT id, name, array_to_string(scopes, ','), " UTC("created_at") ", "
                                    "coalesce(" UTC("last_used_at") ", 'never'), " UTC("revoked_at")
                                    " FROM relance_api_keys_list()");
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: api-keys list: %s\n", pgerr_line(r, cli->conn, NULL, m, sizeof m));
        PQclear(r);
        return CLI_ERROR;
    }
    for (int i = 0; i < PQntuples(r); i++) {
        printf("%s\t%s\t%s\tcreated %s\tlast used %s", PQgetvalue(r, i, 0), PQgetvalue(r, i, 1), PQgetvalue(r, i, 2),
               PQgetvalue(r, i, 3), PQgetvalue(r, i, 4));
        if (!PQgetisnull(r, i, 5))
            printf("\trevoked %s", PQgetvalue(r, i, 5));
        printf("\n");
    }
    PQclear(r);
    return CLI_OK;
}

static int revoke(struct cli *cli, const struct cli_args *args)
{
    const char *given = args->operands[0];
    char id[APIKEY_ID_LEN + 1];
    /* The whole key names its id too; only the id goes any further. */
    if (apikey_parse(given, id) < 0) {
        if (strlen(given) > APIKEY_ID_LEN)
            return cli_fail(CLI_ERROR, "api-keys revoke: no API key '%.*s...' (relance api-keys list shows them)",
                            APIKEY_ID_LEN, given);
        snprintf(id, sizeof id, "%s", given);
    }
    char now[40];
    if (cli_now(now, sizeof now) < 0)
        return CLI_ERROR;
    const char *p[2] = {id, now};
    PGresult *r = PQexecParams(cli->conn,
                               "SELECT " UTC("revoked_at") ", already FROM relance_api_key_revoke($1, $2::timestamptz)",
                               2, NULL, p, NULL, NULL, 0);
    int rc = CLI_OK;
    if (PQresultStatus(r) != PGRES_TUPLES_OK) {
        char m[1024];
        fprintf(stderr, "relance: api-keys revoke: %s\n", pgerr_line(r, cli->conn, NULL, m, sizeof m));
        rc = CLI_ERROR;
    } else if (PQntuples(r) == 0) {
        rc = cli_fail(CLI_ERROR, "api-keys revoke: no API key '%s' (relance api-keys list shows them)", id);
    } else if (strcmp(PQgetvalue(r, 0, 1), "t") == 0) {
        printf("API key %s was already revoked at %s\n", id, PQgetvalue(r, 0, 0));
    } else {
        printf("revoked API key %s\n", id);
    }
    PQclear(r);
    return rc;
}

static const struct cli_command subcommands[] = {
    {.name = "create", .summary = "make a key; it is printed once, on stdout, and cannot be shown again",
     .operands = "NAME", .min_operands = 1, .max_operands = 1, .options = create_options, .run = create},
    {.name = "list", .summary = "one key a line: id, name, scopes, created, last used, revoked (never the key)",
     .run = list},
    {.name = "revoke", .summary = "end a key at once; it stays listed, as revoked", .operands = "ID",
     .min_operands = 1, .max_operands = 1, .run = revoke},
    {0},
};

const struct cli_command cmd_api_keys = {
    .name = "api-keys",
    .summary = "keys for the HTTP API: create, list, revoke",
    .about = "A key is rl_<id>_<secret> and goes in an 'Authorization: Bearer' header. Only\n"
             "its id and a SHA-256 of it are stored: create prints it once, and nothing can\n"
             "show it again (revoke it and create another). A name is unique among keys not\n"
             "revoked. Scopes: contacts:read contacts:write enrollments:read enrollments:write\n"
             "sequences:read sequences:write suppressions:read suppressions:write\n"
             "accounts:read accounts:write stats:read events:read webhooks:write, or * for\n"
             "all. An unknown scope, an empty --scopes or a bad name is refused (exit 2);\n"
             "revoking an unknown id exits 1.\n",
    .subcommands = subcommands,
};
