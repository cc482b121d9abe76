/* api_bound: the bound of tests/bench's api scenario — what one API read
 * costs without HTTP: the key's check as relance makes it (SHA-256 of the
 * presented key, compared in constant time with the stored hash) and the
 * very statement relance runs for the request, prepared once, through one
 * libpq connection in a tight loop.
 *
 *   relance-api-bound CONNINFO SECONDS KEY STORED_HASH_HEX SQL PARAM
 *
 * prints "requests N seconds S rate R" (R requests a second). Not part of
 * relance: built beside it for the benchmark only. */
#include <libpq-fe.h>
#include <openssl/crypto.h>
#include <openssl/evp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

static double now(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

int main(int argc, char **argv)
{
    if (argc != 7) {
        fprintf(stderr, "usage: %s CONNINFO SECONDS KEY STORED_HASH_HEX SQL PARAM\n", argv[0]);
        return 2;
    }
    double seconds = atof(argv[2]);
    const char *key = argv[3], *hex = argv[4], *sql = argv[5], *param = argv[6];
    unsigned char stored[32];
    for (int i = 0; i < 32 && hex[2 * i] && hex[2 * i + 1]; i++) {
        char byte[3] = {hex[2 * i], hex[2 * i + 1], 0};
        stored[i] = (unsigned char)strtoul(byte, NULL, 16);
    }
    PGconn *conn = PQconnectdb(argv[1]);
    if (PQstatus(conn) != CONNECTION_OK) {
        fprintf(stderr, "api_bound: %s", PQerrorMessage(conn));
        return 1;
    }
    PGresult *res = PQprepare(conn, "q", sql, 1, NULL);
    if (PQresultStatus(res) != PGRES_COMMAND_OK) {
        fprintf(stderr, "api_bound: %s", PQerrorMessage(conn));
        return 1;
    }
    PQclear(res);
    long n = 0;
    double start = now(), end = start + seconds;
    while (now() < end) {
        unsigned char hash[32];
        if (EVP_Digest(key, strlen(key), hash, NULL, EVP_sha256(), NULL) != 1 ||
            CRYPTO_memcmp(hash, stored, sizeof hash) != 0) {
            fprintf(stderr, "api_bound: the key does not match its stored hash\n");
            return 1;
        }
        const char *p[1] = {param};
        res = PQexecPrepared(conn, "q", 1, p, NULL, NULL, 0);
        if (PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
            fprintf(stderr, "api_bound: %s", PQerrorMessage(conn));
            return 1;
        }
        PQclear(res);
        n++;
    }
    double took = now() - start;
    printf("requests %ld seconds %.3f rate %.1f\n", n, took, (double)n / took);
    PQfinish(conn);
    return 0;
}
