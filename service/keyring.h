/* keyring: the HTTP API's keys, as this replica knows them — a cache of
 * the api_keys rows not revoked (their id, the SHA-256 of the whole key
 * and the scopes), read again every KEYRING_REFRESH_MS, so that a key
 * revoked on any replica is refused here within that time; and each
 * key's rate limit, a token bucket kept per replica. Only hashes are
 * held: a presented key is hashed and compared in constant time. */
#ifndef RELANCE_KEYRING_H
#define RELANCE_KEYRING_H

#include <stddef.h>
#include <uv.h>

struct ready;
struct keyring;

#define KEYRING_REFRESH_MS 5000

/* The scopes, one bit each, in the order of apikey_scopes (apikey.h). */
enum {
    SCOPE_CONTACTS_READ = 1u << 0,
    SCOPE_CONTACTS_WRITE = 1u << 1,
    SCOPE_ENROLLMENTS_READ = 1u << 2,
    SCOPE_ENROLLMENTS_WRITE = 1u << 3,
    SCOPE_SEQUENCES_READ = 1u << 4,
    SCOPE_SEQUENCES_WRITE = 1u << 5,
    SCOPE_SUPPRESSIONS_READ = 1u << 6,
    SCOPE_SUPPRESSIONS_WRITE = 1u << 7,
    SCOPE_ACCOUNTS_READ = 1u << 8,
    SCOPE_ACCOUNTS_WRITE = 1u << 9,
    SCOPE_STATS_READ = 1u << 10,
    SCOPE_EVENTS_READ = 1u << 11,
    SCOPE_WEBHOOKS_WRITE = 1u << 12,
};
#define SCOPE_ALL ((1u << 13) - 1) /* "*" */

/* What keyring_check found. */
enum keyring_verdict {
    KEYRING_OK,          /* the key is known and its hash matches */
    KEYRING_UNKNOWN,     /* malformed, unknown, revoked or wrong secret */
    KEYRING_UNAVAILABLE, /* not known here and the database cannot be asked */
};

typedef void (*keyring_cb)(void *arg, enum keyring_verdict v, unsigned scopes);

/* rate: requests a second per key, burst: the bucket's size. */
struct keyring *keyring_new(uv_loop_t *loop, const struct ready *ready, double rate, double burst);
/* Checks a presented key ("rl_<id>_<secret>"); id (13 bytes) gets its id
 * when well formed. cb fires once, at once when the key is in the cache,
 * else after the cache was read again (a key created a moment ago). */
void keyring_check(struct keyring *k, const char *key, char id[13], keyring_cb cb, void *arg);
/* Takes one request from key id's bucket: 0, or the seconds until one is
 * free (at least 1). Marks the key used (its last_used_at is written at
 * the next refresh). */
unsigned keyring_take(struct keyring *k, const char *id);
void keyring_close(struct keyring *k, void (*on_closed)(void *arg), void *arg);

#endif
