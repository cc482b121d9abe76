/* apikey: the API key's string form. It owns the format ("rl_" + a
 * 12-character id + "_" + a 43-character secret, all base62), the
 * rejection sampling that turns random bytes into uniform base62
 * characters, the check that a presented string has that format, the list
 * of scopes, and the SHA-256 that is stored instead of the key. It does
 * not draw random bytes (the caller does, from OpenSSL's RAND_bytes), and
 * it does not decide whether a key is valid, unrevoked or allowed: the
 * database and the HTTP side do.
 *
 * The id is part of the key so that a presented key is found by its id
 * (one index lookup) and then checked against its hash; the hash covers
 * the whole string, id and prefix included. */
#include "apikey.h"

#include <errno.h>
#include <string.h>

#include <openssl/evp.h>

#define PREFIX "rl_"
#define PREFIX_LEN 3

static const char base62[] = "0123456789ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz";

/* 248 is the largest multiple of 62 a byte can hold: below it, b % 62
 * maps exactly four byte values onto each character. */
#define BYTE_LIMIT 248

const char *const apikey_scopes[] = {
    "contacts:read",     "contacts:write",     "enrollments:read", "enrollments:write", "sequences:read",
    "sequences:write",   "suppressions:read",  "suppressions:write", "accounts:read",   "accounts:write",
    "stats:read",        "events:read",        "webhooks:write",   "*",                 NULL,
};

int apikey_format(const unsigned char *random, size_t n, char *out, size_t outlen)
{
    if (outlen < APIKEY_LEN + 1)
        return -ERANGE;
    char key[APIKEY_LEN + 1];
    memcpy(key, PREFIX, PREFIX_LEN);
    size_t pos = PREFIX_LEN, used = 0;
    while (pos < APIKEY_LEN) {
        if (pos == PREFIX_LEN + APIKEY_ID_LEN) {
            key[pos++] = '_';
            continue;
        }
        if (used == n) {
            /* a partial key must not linger on the stack */
            memset(key, 0, sizeof key);
            return -EAGAIN;
        }
        unsigned char b = random[used++];
        if (b >= BYTE_LIMIT)
            continue;
        key[pos++] = base62[b % 62];
    }
    key[APIKEY_LEN] = '\0';
    memcpy(out, key, sizeof key);
    memset(key, 0, sizeof key);
    return 0;
}

static int is_base62(char c)
{
    return (c >= '0' && c <= '9') || (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z');
}

/* 1 when s[0..n) are all base62 characters (a NUL stops it: not one). */
static int all_base62(const char *s, size_t n)
{
    for (size_t i = 0; i < n; i++)
        if (!is_base62(s[i]))
            return 0;
    return 1;
}

int apikey_parse(const char *key, char id[APIKEY_ID_LEN + 1])
{
    id[0] = '\0';
    if (!key || strncmp(key, PREFIX, PREFIX_LEN) != 0)
        return -1;
    const char *p = key + PREFIX_LEN;
    /* all_base62 stops at a NUL before reading past it, so a short string
     * is refused without a strlen of the whole input first */
    if (!all_base62(p, APIKEY_ID_LEN) || p[APIKEY_ID_LEN] != '_')
        return -1;
    const char *secret = p + APIKEY_ID_LEN + 1;
    if (!all_base62(secret, APIKEY_SECRET_LEN) || secret[APIKEY_SECRET_LEN] != '\0')
        return -1;
    memcpy(id, p, APIKEY_ID_LEN);
    id[APIKEY_ID_LEN] = '\0';
    return 0;
}

int apikey_scope_valid(const char *scope)
{
    if (!scope)
        return 0;
    for (size_t i = 0; apikey_scopes[i]; i++)
        if (strcmp(scope, apikey_scopes[i]) == 0)
            return 1;
    return 0;
}

int apikey_hash(const char *key, unsigned char out[APIKEY_HASH_LEN])
{
    unsigned int len = 0;
    if (EVP_Digest(key, strlen(key), out, &len, EVP_sha256(), NULL) != 1 || len != APIKEY_HASH_LEN)
        return -ENOMEM;
    return 0;
}
