/* keyring: the API keys' cache and rate limits (see keyring.h). It owns
 * the cached rows, their buckets, the requests waiting for the cache to
 * be read again, and the timer that reads it (and writes the keys'
 * last_used_at). What a key may do is the caller's (api.c). */
#include "keyring.h"

#include "apikey.h"
#include "db.h"
#include "buf.h"
#include "pgarray.h"
#include "ready.h"

#include <openssl/crypto.h>
#include <stdlib.h>
#include <string.h>

struct entry {
    char id[13];
    unsigned char hash[32];
    unsigned scopes;
    double tokens;
    uint64_t at; /* ms, when tokens was last brought up to date */
    int used;
};

struct waiter {
    struct waiter *next;
    unsigned char hash[32];
    char id[13];
    keyring_cb cb;
    void *arg;
};

struct keyring {
    uv_loop_t *loop;
    const struct ready *ready;
    uv_timer_t timer;
    struct entry *keys;
    size_t n;
    double rate, burst;
    uint64_t loaded_at;
    int loading;
    struct waiter *waiting;
    size_t queries;
    int closing, timer_closed;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void maybe_closed(struct keyring *k)
{
    if (!k->closing || !k->timer_closed || k->queries)
        return;
    void (*cb)(void *) = k->on_closed;
    void *arg = k->closed_arg;
    free(k->keys);
    free(k);
    if (cb)
        cb(arg);
}

static struct entry *find(const struct keyring *k, const char *id)
{
    for (size_t i = 0; i < k->n; i++)
        if (strcmp(k->keys[i].id, id) == 0)
            return &k->keys[i];
    return NULL;
}

static enum keyring_verdict verdict(const struct keyring *k, const char *id, const unsigned char *hash,
                                    unsigned *scopes)
{
    const struct entry *e = find(k, id);
    *scopes = 0;
    if (!e || CRYPTO_memcmp(e->hash, hash, sizeof e->hash) != 0)
        return KEYRING_UNKNOWN;
    *scopes = e->scopes;
    return KEYRING_OK;
}

static unsigned scopes_of(const char *list)
{
    unsigned bits = 0;
    const char *p = list;
    while (*p) {
        size_t n = strcspn(p, " ");
        for (size_t i = 0; apikey_scopes[i]; i++)
            if (strlen(apikey_scopes[i]) == n && strncmp(apikey_scopes[i], p, n) == 0)
                bits |= strcmp(apikey_scopes[i], "*") == 0 ? SCOPE_ALL : 1u << i;
        p += n;
        p += *p == ' ';
    }
    return bits;
}

static int hex_value(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    return -1;
}

static void on_loaded(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct keyring *k = arg;
    k->queries--;
    k->loading = 0;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && !k->closing) {
        int n = PQntuples(res);
        struct entry *keys = calloc(n ? (size_t)n : 1, sizeof *keys);
        if (keys) {
            size_t m = 0;
            uint64_t now = uv_now(k->loop);
            for (int r = 0; r < n; r++) {
                struct entry *e = &keys[m];
                const char *id = PQgetvalue(res, r, 0), *hex = PQgetvalue(res, r, 1);
                if (strlen(id) != 12 || strlen(hex) != 64)
                    continue;
                memcpy(e->id, id, 13);
                int bad = 0;
                for (size_t i = 0; i < 32; i++) {
                    int hi = hex_value(hex[2 * i]), lo = hex_value(hex[2 * i + 1]);
                    bad |= hi < 0 || lo < 0;
                    e->hash[i] = (unsigned char)(hi << 4 | lo);
                }
                if (bad)
                    continue;
                e->scopes = scopes_of(PQgetvalue(res, r, 2));
                const struct entry *old = find(k, id);
                e->tokens = old ? old->tokens : k->burst;
                e->at = old ? old->at : now;
                e->used = old ? old->used : 0;
                m++;
            }
            free(k->keys);
            k->keys = keys;
            k->n = m;
            k->loaded_at = uv_now(k->loop);
        }
    }
    /* the requests that waited: answered from what is known now */
    struct waiter *w = k->waiting;
    k->waiting = NULL;
    int ok = res && PQresultStatus(res) == PGRES_TUPLES_OK;
    while (w) {
        struct waiter *next = w->next;
        unsigned scopes;
        enum keyring_verdict v = verdict(k, w->id, w->hash, &scopes);
        if (v == KEYRING_UNKNOWN && !ok)
            v = KEYRING_UNAVAILABLE;
        w->cb(w->arg, v, scopes);
        OPENSSL_cleanse(w->hash, sizeof w->hash);
        free(w);
        w = next;
    }
    maybe_closed(k);
}

static void on_ignore(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)res;
    struct keyring *k = arg;
    k->queries--;
    maybe_closed(k);
}

/* Writes the used keys' last_used_at, then reads the keys again. */
static void load(struct keyring *k)
{
    struct db *db = ready_api_db(k->ready);
    if (k->loading || k->closing)
        return;
    if (!db) {
        k->queries++; /* on_loaded counts it back */
        on_loaded(NULL, NULL, k);
        return;
    }
    struct buf used = {0};
    for (size_t i = 0; i < k->n; i++)
        if (k->keys[i].used) {
            pgarray_add(&used, k->keys[i].id);
            k->keys[i].used = 0;
        }
    const char *ids = used.len ? pgarray_end(&used) : NULL;
    if (ids && db_query(db, "UPDATE api_keys SET last_used_at = now() WHERE id = ANY($1::text[])", 1, &ids,
                        on_ignore, k) == 0)
        k->queries++;
    buf_free(&used);
    if (db_query(db,
                 "SELECT id, encode(secret_hash, 'hex'), array_to_string(scopes, ' ') FROM api_keys "
                 "WHERE revoked_at IS NULL",
                 0, NULL, on_loaded, k) < 0) {
        k->queries++;
        on_loaded(NULL, NULL, k);
        return;
    }
    k->queries++;
    k->loading = 1;
}

static void on_timer(uv_timer_t *t)
{
    load(t->data);
}

static void on_timer_closed(uv_handle_t *h)
{
    struct keyring *k = h->data;
    k->timer_closed = 1;
    maybe_closed(k);
}

struct keyring *keyring_new(uv_loop_t *loop, const struct ready *ready, double rate, double burst)
{
    struct keyring *k = calloc(1, sizeof *k);
    if (!k)
        return NULL;
    k->loop = loop;
    k->ready = ready;
    k->rate = rate;
    k->burst = burst;
    uv_timer_init(loop, &k->timer);
    k->timer.data = k;
    uv_timer_start(&k->timer, on_timer, KEYRING_REFRESH_MS, KEYRING_REFRESH_MS);
    return k;
}

void keyring_check(struct keyring *k, const char *key, char id[13], keyring_cb cb, void *arg)
{
    unsigned char hash[32];
    unsigned scopes;
    id[0] = '\0';
    if (k->closing || apikey_parse(key, id) < 0 || apikey_hash(key, hash) < 0) {
        cb(arg, KEYRING_UNKNOWN, 0);
        return;
    }
    enum keyring_verdict v = verdict(k, id, hash, &scopes);
    /* an id not known: maybe a key created since the cache was read,
     * which must work at once; the cache is read again (the table is
     * small, and requests that miss while it is read wait for that one
     * read). A known id with a wrong secret needs no read. */
    if (v == KEYRING_OK || find(k, id)) {
        OPENSSL_cleanse(hash, sizeof hash);
        cb(arg, v, scopes);
        return;
    }
    struct waiter *w = calloc(1, sizeof *w);
    if (!w) {
        cb(arg, KEYRING_UNAVAILABLE, 0);
        return;
    }
    memcpy(w->hash, hash, sizeof hash);
    OPENSSL_cleanse(hash, sizeof hash);
    memcpy(w->id, id, 13);
    w->cb = cb;
    w->arg = arg;
    w->next = k->waiting;
    k->waiting = w;
    load(k);
}

unsigned keyring_take(struct keyring *k, const char *id)
{
    struct entry *e = find(k, id);
    if (!e)
        return 0;
    uint64_t now = uv_now(k->loop);
    e->tokens += (double)(now - e->at) / 1000.0 * k->rate;
    if (e->tokens > k->burst)
        e->tokens = k->burst;
    e->at = now;
    e->used = 1;
    if (e->tokens >= 1.0) {
        e->tokens -= 1.0;
        return 0;
    }
    double wait = (1.0 - e->tokens) / k->rate;
    unsigned s = (unsigned)wait;
    return s < wait || s == 0 ? s + 1 : s;
}

void keyring_close(struct keyring *k, void (*on_closed)(void *arg), void *arg)
{
    k->closing = 1;
    k->on_closed = on_closed;
    k->closed_arg = arg;
    /* requests still waiting: the database is going */
    struct waiter *w = k->waiting;
    k->waiting = NULL;
    while (w) {
        struct waiter *next = w->next;
        w->cb(w->arg, KEYRING_UNAVAILABLE, 0);
        free(w);
        w = next;
    }
    uv_close((uv_handle_t *)&k->timer, on_timer_closed);
}
