/* apikey: the HTTP API's bearer keys as strings — their format
 * (`rl_<id>_<secret>`), the scopes a key may hold, and the hash stored in
 * place of the key. Pure: the random bytes come from the caller, nothing
 * is read, written or logged. */
#ifndef RELANCE_APIKEY_H
#define RELANCE_APIKEY_H

#include <stddef.h>

#define APIKEY_ID_LEN 12     /* [A-Za-z0-9]: public, names the key in lists and logs */
#define APIKEY_SECRET_LEN 43 /* base62: 43 * log2(62) > 256 bits */
/* "rl_" + id + "_" + secret, without the NUL */
#define APIKEY_LEN (3 + APIKEY_ID_LEN + 1 + APIKEY_SECRET_LEN)
#define APIKEY_HASH_LEN 32   /* SHA-256 */

/* Writes a new key "rl_<id>_<secret>" and its NUL into out (outlen >=
 * APIKEY_LEN + 1), one base62 character per byte of random taken in
 * order; a byte >= 248 is skipped, so that each of the 62 characters is
 * exactly as likely (248 = 4 * 62). Returns 0; -EAGAIN when the n bytes
 * ran out before the key was complete (the caller draws a fresh, longer
 * buffer and calls again: 128 bytes run out with a probability below
 * 10^-40); -ERANGE when out is too small. out holds no key unless 0 is
 * returned. The caller wipes random and out when done with them. */
int apikey_format(const unsigned char *random, size_t n, char *out, size_t outlen)
    __attribute__((warn_unused_result));

/* 0 when key is exactly "rl_" + 12 [A-Za-z0-9] + "_" + 43 [A-Za-z0-9]
 * (no space, no line break, nothing after), with its id and a NUL copied
 * into id; -1 otherwise (id is then an empty string). It says nothing of
 * whether the key exists: that is the stored hash's to say. */
int apikey_parse(const char *key, char id[APIKEY_ID_LEN + 1]) __attribute__((warn_unused_result));

/* 1 when scope is one the API knows (the contract's list, "*" included),
 * else 0. */
int apikey_scope_valid(const char *scope);

/* Every scope apikey_scope_valid accepts, in the contract's order, then
 * NULL: for messages and help that list them. */
extern const char *const apikey_scopes[];

/* SHA-256 of the whole key string (as apikey_format wrote it, or as a
 * client presented it), the value stored in api_keys.secret_hash.
 * Returns 0, or -ENOMEM when OpenSSL could not run the digest. */
int apikey_hash(const char *key, unsigned char out[APIKEY_HASH_LEN]) __attribute__((warn_unused_result));

#endif
