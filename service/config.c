/* config: YAML deployment configuration to struct config, checked key by
 * key against tables of known keys. It owns parsing, defaults and the
 * environment overrides, and how a URL or the database connection string
 * is shown without its password; it does not read secrets (the sender
 * reads password_env/password_file when it needs them). */
#include "config.h"

#include "buf.h"
#include "duration.h"
#include "linktoken.h"
#include "public.h"
#include "log.h"
#include "webhook_url.h"
#include "ytree.h"

#include <ctype.h>
#include <errno.h>
#include <libpq-fe.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

enum ftype { F_STR, F_INT, F_SECONDS, F_BOOL, F_NEST, F_STRLIST, F_KEEP };

/* One known key: where its value goes (an offset into the target struct)
 * and how to read it. F_NEST reads a mapping with its own table into the
 * same target struct. */
struct field {
    const char *key;
    enum ftype type;
    size_t off;
    const struct field *nest;
};

struct parse {
    const char *name;
    char *err;
    size_t errlen;
};

#define ACC(f) offsetof(struct config_account, f)
static const struct field warmup_fields[] = {
    {"start", F_INT, ACC(warmup_start), NULL},
    {"increase_per_day", F_INT, ACC(warmup_increase_per_day), NULL},
    {NULL, F_STR, 0, NULL},
};
static const struct field oauth2_fields[] = {
    {"token_url", F_STR, ACC(oauth2.token_url), NULL},
    {"client_id", F_STR, ACC(oauth2.client_id), NULL},
    {"client_secret_env", F_STR, ACC(oauth2.client_secret_env), NULL},
    {"refresh_token_env", F_STR, ACC(oauth2.refresh_token_env), NULL},
    {NULL, F_STR, 0, NULL},
};
static const struct field account_fields[] = {
    {"email", F_STR, ACC(email), NULL},
    {"from_name", F_STR, ACC(from_name), NULL},
    {"first_name", F_STR, ACC(first_name), NULL},
    {"signature", F_STR, ACC(signature), NULL},
    {"smtp", F_STR, ACC(smtp), NULL},
    {"imap", F_STR, ACC(imap), NULL},
    {"username", F_STR, ACC(username), NULL},
    {"password_env", F_STR, ACC(password_env), NULL},
    {"password_file", F_STR, ACC(password_file), NULL},
    {"daily_limit", F_INT, ACC(daily_limit), NULL},
    {"min_interval", F_SECONDS, ACC(min_interval), NULL},
    {"interval_jitter", F_SECONDS, ACC(interval_jitter), NULL},
    {"timezone", F_STR, ACC(timezone), NULL},
    {"warmup", F_NEST, 0, warmup_fields},
    {"tls_ca_file", F_STR, ACC(tls_ca_file), NULL},
    {"tls", F_STR, ACC(tls), NULL},
    {"auth", F_STR, ACC(auth), NULL},
    {"imap_auth", F_STR, ACC(imap_auth), NULL},
    {"watch_interval", F_SECONDS, ACC(watch_interval), NULL},
    {"max_bounce_rate", F_STR, ACC(max_bounce_rate), NULL},
    {"max_policy_blocks", F_INT, ACC(max_policy_blocks), NULL},
    {"save_sent", F_BOOL, ACC(save_sent), NULL},
    {"folders", F_STRLIST, ACC(folders), NULL},
    {"oauth2", F_NEST, 0, oauth2_fields},
    {NULL, F_STR, 0, NULL},
};
#undef ACC

#define CFG(f) offsetof(struct config, f)
static const struct field http_fields[] = {
    {"listen", F_STR, CFG(http_listen), NULL},
    {"public_url", F_STR, CFG(public_url), NULL},
    {"public_url_insecure", F_BOOL, CFG(public_url_insecure), NULL},
    {"public_listen", F_STR, CFG(public_listen), NULL},
    {"link_secret_env", F_STR, CFG(link_secret_env), NULL},
    {"link_secret_file", F_STR, CFG(link_secret_file), NULL},
    {"link_secret_previous_env", F_STR, CFG(link_secret_previous_env), NULL},
    {"link_secret_previous_file", F_STR, CFG(link_secret_previous_file), NULL},
    {"api_rate_limit", F_INT, CFG(api_rate_limit), NULL},
    {"api_rate_burst", F_INT, CFG(api_rate_burst), NULL},
    {"metrics_listen", F_STR, CFG(metrics_listen), NULL},
    {"metrics_token_env", F_STR, CFG(metrics_token_env), NULL},
    {"metrics_token_file", F_STR, CFG(metrics_token_file), NULL},
    {NULL, F_STR, 0, NULL},
};
/* How long personal data is kept (retention.c prunes it). */
static const struct field retention_fields[] = {
    {"events", F_KEEP, CFG(retention_events), NULL},
    {"messages", F_KEEP, CFG(retention_messages), NULL},
    {"inbound", F_KEEP, CFG(retention_inbound), NULL},
    {NULL, F_STR, 0, NULL},
};
/* Click and open tracking; its domains are read by read_tracking. */
static const struct field tracking_fields[] = {
    {"bot_window", F_SECONDS, CFG(bot_window), NULL},
    {"domains", F_NEST, 0, NULL},
    {NULL, F_STR, 0, NULL},
};
/* pools and dkim are maps of names; they are read by their own code. */
static const struct field top_fields[] = {
    {"database_url", F_STR, CFG(database_url), NULL},
    {"http", F_NEST, 0, http_fields},
    {"state_dir", F_STR, CFG(state_dir), NULL},
    {"log_format", F_STR, CFG(log_format), NULL},
    {"log_level", F_STR, CFG(log_level), NULL},
    {"transport", F_STR, CFG(transport), NULL},
    {"capture_dir", F_STR, CFG(capture_dir), NULL},
    {"tls_ca_file", F_STR, CFG(tls_ca_file), NULL},
    {"imap_max_connections", F_INT, CFG(imap_max_connections), NULL},
    {"smtp_idle_timeout", F_SECONDS, CFG(smtp_idle_timeout), NULL},
    {"smtp_timeout", F_SECONDS, CFG(smtp_timeout), NULL},
    {"shutdown_grace", F_SECONDS, CFG(shutdown_grace), NULL},
    {"retention", F_NEST, 0, retention_fields},
    {"tracking", F_NEST, 0, tracking_fields},
    {"pools", F_NEST, 0, NULL},
    {"dkim", F_NEST, 0, NULL},
    {"webhooks", F_NEST, 0, NULL},
    {"webhook_allow_insecure", F_STRLIST, CFG(webhook_allow_insecure), NULL},
    {"webhook_max_in_flight", F_INT, CFG(webhook_max_in_flight), NULL},
    {"webhook_timeout", F_SECONDS, CFG(webhook_timeout), NULL},
    {"webhook_connect_timeout", F_SECONDS, CFG(webhook_connect_timeout), NULL},
    {NULL, F_STR, 0, NULL},
};
#undef CFG

static int fail_at(struct parse *p, const struct ynode *n, const char *fmt, ...)
    __attribute__((format(printf, 3, 4)));

static int fail_at(struct parse *p, const struct ynode *n, const char *fmt, ...)
{
    char msg[400];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    if (n)
        snprintf(p->err, p->errlen, "%s:%d:%d: %s", p->name, n->line, n->col, msg);
    else
        snprintf(p->err, p->errlen, "%s: %s", p->name, msg);
    return -1;
}

char *config_expand(const char *s, char *err, size_t errlen)
{
    struct buf out = {0};
    buf_add(&out, "", 0);
    for (const char *p = s; *p;) {
        const char *piece = p;
        size_t plen = 1;
        char name[128];
        if (p[0] == '$' && p[1] == '$') {
            p += 2;
        } else if (p[0] == '$' && p[1] == '{') {
            const char *close = strchr(p, '}');
            if (!close) {
                snprintf(err, errlen, "unterminated ${ in '%s'", s);
                buf_free(&out);
                return NULL;
            }
            const char *body = p + 2, *dflt = NULL;
            size_t nlen = (size_t)(close - body);
            const char *sep = strstr(body, ":-");
            if (sep && sep < close) {
                dflt = sep + 2;
                nlen = (size_t)(sep - body);
            }
            if (nlen == 0 || nlen >= sizeof name) {
                snprintf(err, errlen, "bad variable name in '%s'", s);
                buf_free(&out);
                return NULL;
            }
            memcpy(name, body, nlen);
            name[nlen] = '\0';
            for (size_t i = 0; i < nlen; i++)
                if (!(isalnum((unsigned char)name[i]) || name[i] == '_')) {
                    snprintf(err, errlen, "bad variable name '%s'", name);
                    buf_free(&out);
                    return NULL;
                }
            const char *v = getenv(name);
            if (v && *v) {
                piece = v;
                plen = strlen(v);
            } else if (dflt) {
                piece = dflt;
                plen = (size_t)(close - dflt);
            } else {
                snprintf(err, errlen, "environment variable %s is not set", name);
                buf_free(&out);
                return NULL;
            }
            p = close + 1;
        } else {
            p++;
        }
        buf_add(&out, piece, plen);
    }
    if (out.oom) {
        buf_free(&out);
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    return out.p;
}

/* A scalar's value with the environment expanded; NULL on error. */
static char *scalar(struct parse *p, const struct ynode *key, const struct ynode *v)
{
    if (v->type != YNODE_SCALAR) {
        fail_at(p, v, "'%s' must be a single value, not %s", key->value, ytree_type_name(v));
        return NULL;
    }
    char why[300];
    char *s = config_expand(v->value, why, sizeof why);
    if (!s)
        fail_at(p, v, "'%s': %s", key->value, why);
    return s;
}

static int read_fields(struct parse *p, const struct ynode *map, const struct field *fields, void *target,
                       const char *where);

static int read_value(struct parse *p, const struct field *f, const struct ynode *key, const struct ynode *v,
                      void *target)
{
    char *base = target;
    if (f->type == F_NEST)
        return read_fields(p, v, f->nest, target, key->value);
    if (f->type == F_STRLIST) {
        if (v->type != YNODE_SEQ)
            return fail_at(p, v, "'%s' must be a list", key->value);
        char **list = calloc(v->n + 1, sizeof *list);
        if (!list)
            return fail_at(p, v, "out of memory");
        char ***slot = (char ***)(base + f->off);
        for (size_t i = 0; i < v->n; i++) {
            list[i] = scalar(p, key, v->items[i]);
            if (!list[i]) {
                for (size_t j = 0; j < i; j++)
                    free(list[j]);
                free(list);
                return -1;
            }
        }
        *slot = list;
        return 0;
    }
    char *s = scalar(p, key, v);
    if (!s)
        return -1;
    int rc = 0;
    switch (f->type) {
    case F_STR: {
        char **slot = (char **)(base + f->off);
        free(*slot);
        *slot = s;
        return 0;
    }
    case F_INT: {
        char *end;
        errno = 0;
        long n = strtol(s, &end, 10);
        if (errno || end == s || *end || n < 0)
            rc = fail_at(p, v, "'%s' must be a whole number >= 0, not '%s'", key->value, s);
        else
            *(long *)(base + f->off) = n;
        break;
    }
    case F_SECONDS: {
        struct duration d;
        char why[200];
        if (duration_parse(s, &d, why, sizeof why) < 0)
            rc = fail_at(p, v, "'%s': %s", key->value, why);
        else if (!duration_is_elapsed(&d))
            rc = fail_at(p, v, "'%s' must be in seconds, minutes or hours, not days", key->value);
        else
            *(long *)(base + f->off) = (long)d.seconds;
        break;
    }
    case F_KEEP: {
        /* a retention: any duration but business days (a day is 24 h
         * here: nothing depends on the wall clock), or "forever" (0) */
        struct duration d;
        char why[200];
        if (strcmp(s, "forever") == 0)
            *(long *)(base + f->off) = 0;
        else if (duration_parse(s, &d, why, sizeof why) < 0)
            rc = fail_at(p, v, "'%s': %s (or forever)", key->value, why);
        else if (d.business_days)
            rc = fail_at(p, v, "'%s' must be in seconds, minutes, hours or days, not business days", key->value);
        else
            *(long *)(base + f->off) = (long)(d.seconds + (int64_t)d.days * 86400);
        break;
    }
    case F_BOOL:
        if (strcmp(s, "true") == 0 || strcmp(s, "yes") == 0 || strcmp(s, "on") == 0)
            *(int *)(base + f->off) = 1;
        else if (strcmp(s, "false") == 0 || strcmp(s, "no") == 0 || strcmp(s, "off") == 0)
            *(int *)(base + f->off) = 0;
        else
            rc = fail_at(p, v, "'%s' must be true or false, not '%s'", key->value, s);
        break;
    default:
        break;
    }
    free(s);
    return rc;
}

static int unknown_key(struct parse *p, const struct ynode *k, const struct field *fields, const char *where)
{
    const char *names[64];
    size_t n = 0;
    for (const struct field *f = fields; f->key && n < 63; f++)
        names[n++] = f->key;
    names[n] = NULL;
    const char *hint = ytree_suggest(k->value, names);
    if (hint)
        return fail_at(p, k, "unknown key '%s'%s%s (did you mean '%s'?)", k->value, where ? " in " : "",
                       where ? where : "", hint);
    return fail_at(p, k, "unknown key '%s'%s%s", k->value, where ? " in " : "", where ? where : "");
}

static int read_fields(struct parse *p, const struct ynode *map, const struct field *fields, void *target,
                       const char *where)
{
    if (map->type != YNODE_MAP)
        return fail_at(p, map, "'%s' must be a mapping of keys, not %s", where ? where : "the file",
                       ytree_type_name(map));
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct ynode *k = map->items[i], *v = map->items[i + 1];
        if (k->type != YNODE_SCALAR)
            return fail_at(p, k, "keys must be plain names");
        for (size_t j = 0; j < i; j += 2)
            if (strcmp(map->items[j]->value, k->value) == 0)
                return fail_at(p, k, "duplicate key '%s'", k->value);
        const struct field *f = fields;
        while (f->key && strcmp(f->key, k->value) != 0)
            f++;
        if (!f->key)
            return unknown_key(p, k, fields, where);
        if (f->type == F_NEST && !f->nest)
            continue; /* read by the caller */
        if (ytree_is_null(v) && f->type != F_NEST)
            continue; /* an empty value keeps the default */
        if (read_value(p, f, k, v, target) < 0)
            return -1;
    }
    return 0;
}

/* "5%" or "0.05" as a fraction in [0, 1], or -1. */
double config_rate_parse(const char *s)
{
    char *end;
    errno = 0;
    double v = strtod(s, &end);
    if (end == s || errno)
        return -1;
    if (*end == '%') {
        v /= 100;
        end++;
    }
    if (*end || v < 0 || v > 1)
        return -1;
    return v;
}

/* auth: xoauth2 and the oauth2 block go together; the secrets themselves
 * are read by oauth2.c when serving. */
static int check_oauth2(struct parse *p, const struct ynode *n, const struct config_account *acc)
{
    const struct config_oauth2 *o = &acc->oauth2;
    if (acc->save_sent && !acc->imap)
        return fail_at(p, n, "account %s: 'save_sent' needs the account's 'imap' URL", acc->email);
    int xoauth2 = acc->auth && strcmp(acc->auth, "xoauth2") == 0;
    if (!xoauth2) {
        if (o->token_url || o->client_id || o->client_secret_env || o->refresh_token_env)
            return fail_at(p, n, "account %s has 'oauth2' settings but not 'auth: xoauth2'", acc->email);
        return 0;
    }
    const char *missing = !o->token_url           ? "token_url"
                          : !o->client_id         ? "client_id"
                          : !o->refresh_token_env ? "refresh_token_env"
                                                  : NULL;
    if (missing)
        return fail_at(p, n, "account %s: auth xoauth2 needs 'oauth2.%s'", acc->email, missing);
    /* the URL is not repeated: it may carry a credential */
    if (strncasecmp(o->token_url, "https://", 8) != 0 || !o->token_url[8])
        return fail_at(p, n, "account %s: 'oauth2.token_url' must be an https:// URL", acc->email);
    return 0;
}

static int set_default(char **slot, const char *value);

/* imap_auth: by default what auth says (as before the key existed), so
 * only a written imap_auth splits the two sides: an account that sends
 * through an IP-allow-listed relay (auth: none) still logs in to its
 * mailbox with imap_auth: password. "login" is accepted for "password".
 * auth's own values are checked here too, since the default copies it.
 * An IMAP server always needs a login, so none with an imap URL is an
 * error here rather than when serve starts the watcher. */
static int check_imap_auth(struct parse *p, const struct ynode *item, struct config_account *acc)
{
    const struct ynode *written = ytree_get(item, "imap_auth"), *auth = ytree_get(item, "auth");
    if (written && ytree_is_null(written))
        written = NULL;
    if (acc->auth && strcmp(acc->auth, "password") != 0 && strcmp(acc->auth, "xoauth2") != 0 &&
        strcmp(acc->auth, "none") != 0)
        return fail_at(p, auth ? auth : item, "'auth' must be password, xoauth2 or none, not '%s'", acc->auth);
    if (acc->imap_auth && strcmp(acc->imap_auth, "login") == 0) {
        free(acc->imap_auth);
        acc->imap_auth = NULL;
        if (set_default(&acc->imap_auth, "password") < 0)
            return fail_at(p, item, "out of memory");
    }
    if (set_default(&acc->imap_auth, acc->auth ? acc->auth : "password") < 0)
        return fail_at(p, item, "out of memory");
    const char *v = acc->imap_auth;
    if (strcmp(v, "password") != 0 && strcmp(v, "xoauth2") != 0 && strcmp(v, "none") != 0)
        return fail_at(p, written ? written : item, "'imap_auth' must be password (or login), xoauth2 or none, not '%s'",
                       v);
    if (strcmp(v, "none") == 0 && acc->imap) {
        if (written)
            return fail_at(p, written,
                           "account %s: 'imap_auth: none' with an 'imap' URL: an IMAP server always needs a login "
                           "(imap_auth: password or xoauth2)",
                           acc->email);
        return fail_at(p, auth ? auth : item,
                       "account %s: 'auth: none' also means no IMAP login, and an IMAP server always needs one: "
                       "add 'imap_auth: password' (or xoauth2)",
                       acc->email);
    }
    /* the token source (oauth2.c) and the oauth2 block follow auth */
    if (strcmp(v, "xoauth2") == 0 && (!acc->auth || strcmp(acc->auth, "xoauth2") != 0))
        return fail_at(p, written ? written : item,
                       "account %s: 'imap_auth: xoauth2' needs 'auth: xoauth2' and its 'oauth2' settings", acc->email);
    return 0;
}

static int read_pools(struct parse *p, struct config *cfg, const struct ynode *pools)
{
    if (pools->type != YNODE_MAP)
        return fail_at(p, pools, "'pools' must map pool names to pools");
    cfg->pools = calloc(pools->n / 2 + 1, sizeof *cfg->pools);
    if (!cfg->pools)
        return fail_at(p, pools, "out of memory");
    for (size_t i = 0; i + 1 < pools->n; i += 2) {
        const struct ynode *k = pools->items[i], *v = pools->items[i + 1];
        struct config_pool *pool = &cfg->pools[cfg->n_pools++];
        pool->name = strdup(k->value);
        if (v->type != YNODE_MAP)
            return fail_at(p, v, "pool '%s' must be a mapping with 'accounts'", k->value);
        for (size_t j = 0; j + 1 < v->n; j += 2) {
            const struct ynode *pk = v->items[j], *pv = v->items[j + 1];
            if (strcmp(pk->value, "domain_hourly_limit") == 0) {
                static const struct field f = {"domain_hourly_limit", F_INT,
                                               offsetof(struct config_pool, domain_hourly_limit), NULL};
                if (read_value(p, &f, pk, pv, pool) < 0)
                    return -1;
            } else if (strcmp(pk->value, "bulk") == 0) {
                static const struct field f = {"bulk", F_BOOL, offsetof(struct config_pool, bulk), NULL};
                if (read_value(p, &f, pk, pv, pool) < 0)
                    return -1;
            } else if (strcmp(pk->value, "accounts") == 0) {
                if (pv->type != YNODE_SEQ)
                    return fail_at(p, pv, "'accounts' must be a list");
                pool->accounts = calloc(pv->n + 1, sizeof *pool->accounts);
                if (!pool->accounts)
                    return fail_at(p, pv, "out of memory");
                for (size_t a = 0; a < pv->n; a++) {
                    struct config_account *acc = &pool->accounts[pool->n_accounts++];
                    acc->watch_interval = 60;
                    acc->max_policy_blocks = 3;
                    acc->line = pv->items[a]->line;
                    if (read_fields(p, pv->items[a], account_fields, acc, "account") < 0)
                        return -1;
                    if (!acc->email || !strchr(acc->email, '@'))
                        return fail_at(p, pv->items[a], "account in pool '%s' needs 'email' (an address)",
                                       pool->name);
                    if (acc->max_bounce_rate && config_rate_parse(acc->max_bounce_rate) < 0)
                        return fail_at(p, pv->items[a], "'max_bounce_rate' must be a percentage like 5%% or a "
                                                         "fraction like 0.05, not '%s'", acc->max_bounce_rate);
                    if (acc->watch_interval < 1)
                        return fail_at(p, pv->items[a], "'watch_interval' must be at least 1s");
                    if (check_oauth2(p, pv->items[a], acc) < 0)
                        return -1;
                    if (check_imap_auth(p, pv->items[a], acc) < 0)
                        return -1;
                    for (size_t q = 0; q < i / 2; q++)
                        for (size_t r = 0; r < cfg->pools[q].n_accounts; r++)
                            if (strcmp(cfg->pools[q].accounts[r].email, acc->email) == 0)
                                return fail_at(p, pv->items[a], "account %s is already in pool '%s'",
                                               acc->email, cfg->pools[q].name);
                    for (size_t r = 0; r < a; r++)
                        if (strcmp(pool->accounts[r].email, acc->email) == 0)
                            return fail_at(p, pv->items[a], "duplicate account %s", acc->email);
                }
            } else {
                static const struct field pool_fields[] = {
                    {"accounts", F_STR, 0, NULL}, {"domain_hourly_limit", F_INT, 0, NULL}, {"bulk", F_BOOL, 0, NULL},
                    {NULL, F_STR, 0, NULL}};
                return unknown_key(p, pk, pool_fields, pool->name);
            }
        }
    }
    return 0;
}

static int read_dkim(struct parse *p, struct config *cfg, const struct ynode *dkim)
{
    static const struct field dkim_fields[] = {
        {"selector", F_STR, offsetof(struct config_dkim, selector), NULL},
        {"key_file", F_STR, offsetof(struct config_dkim, key_file), NULL},
        {NULL, F_STR, 0, NULL},
    };
    if (dkim->type != YNODE_MAP)
        return fail_at(p, dkim, "'dkim' must map domains to {selector, key_file}");
    cfg->dkim = calloc(dkim->n / 2 + 1, sizeof *cfg->dkim);
    if (!cfg->dkim)
        return fail_at(p, dkim, "out of memory");
    for (size_t i = 0; i + 1 < dkim->n; i += 2) {
        struct config_dkim *d = &cfg->dkim[cfg->n_dkim++];
        d->domain = strdup(dkim->items[i]->value);
        if (read_fields(p, dkim->items[i + 1], dkim_fields, d, d->domain) < 0)
            return -1;
        if (!d->selector || !d->key_file)
            return fail_at(p, dkim->items[i + 1], "dkim for %s needs 'selector' and 'key_file'", d->domain);
    }
    return 0;
}

/* A tracking host: a DNS name (letters, digits, '-', at least one dot),
 * nothing else, since links are "https://HOST/c/TOKEN". */
static int host_ok(const char *h)
{
    size_t n = strlen(h);
    if (n == 0 || n > 253 || h[0] == '.' || h[0] == '-' || h[n - 1] == '.' || h[n - 1] == '-' || !strchr(h, '.'))
        return 0;
    for (const char *c = h; *c; c++)
        if (!(isalnum((unsigned char)*c) || *c == '-' || (*c == '.' && c[1] != '.')))
            return 0;
    return 1;
}

/* tracking.domains: a map of sending domains to {tracking_domain: HOST}. */
static int read_tracking(struct parse *p, struct config *cfg, const struct ynode *map)
{
    static const struct field fields[] = {
        {"tracking_domain", F_STR, offsetof(struct config_tracking_domain, tracking_domain), NULL},
        {NULL, F_STR, 0, NULL},
    };
    if (map->type != YNODE_MAP)
        return fail_at(p, map, "'tracking.domains' must map sending domains to {tracking_domain: HOST}");
    cfg->tracking_domains = calloc(map->n / 2 + 1, sizeof *cfg->tracking_domains);
    if (!cfg->tracking_domains)
        return fail_at(p, map, "out of memory");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        struct config_tracking_domain *t = &cfg->tracking_domains[cfg->n_tracking_domains++];
        t->domain = strdup(map->items[i]->value);
        if (!t->domain)
            return fail_at(p, map->items[i], "out of memory");
        if (read_fields(p, map->items[i + 1], fields, t, t->domain) < 0)
            return -1;
        if (!t->tracking_domain)
            return fail_at(p, map->items[i + 1], "tracking for %s needs 'tracking_domain'", t->domain);
        if (!host_ok(t->tracking_domain))
            return fail_at(p, map->items[i + 1],
                           "tracking_domain '%s' of %s must be a host name such as links.%s (no scheme, no path)",
                           t->tracking_domain, t->domain, t->domain);
    }
    return 0;
}

const char *config_tracking_domain(const struct config *cfg, const char *address)
{
    const char *at = address ? strrchr(address, '@') : NULL;
    const char *domain = at ? at + 1 : address;
    for (size_t i = 0; domain && i < cfg->n_tracking_domains; i++)
        if (strcasecmp(cfg->tracking_domains[i].domain, domain) == 0)
            return cfg->tracking_domains[i].tracking_domain;
    return NULL;
}

const char *config_tracking_base(const struct config *cfg, const char *address, char *buf, size_t len)
{
    const char *host = config_tracking_domain(cfg, address);
    if (host) {
        int n = snprintf(buf, len, "https://%s", host);
        return n < 0 || (size_t)n >= len ? NULL : buf;
    }
    if (!cfg->public_url)
        return NULL;
    int n = snprintf(buf, len, "%s", cfg->public_url);
    return n < 0 || (size_t)n >= len ? NULL : buf;
}

/* webhooks: a map of names to {url, types, description, secret_env |
 * secret_file}. The URL is checked once webhook_allow_insecure is known
 * (check_webhooks). */
static int read_webhooks(struct parse *p, struct config *cfg, const struct ynode *map)
{
    static const struct field webhook_fields[] = {
        {"url", F_STR, offsetof(struct config_webhook, url), NULL},
        {"types", F_STRLIST, offsetof(struct config_webhook, types), NULL},
        {"description", F_STR, offsetof(struct config_webhook, description), NULL},
        {"secret_env", F_STR, offsetof(struct config_webhook, secret_env), NULL},
        {"secret_file", F_STR, offsetof(struct config_webhook, secret_file), NULL},
        {NULL, F_STR, 0, NULL},
    };
    if (map->type != YNODE_MAP)
        return fail_at(p, map, "'webhooks' must map names to {url, types, secret_env or secret_file}");
    cfg->webhooks = calloc(map->n / 2 + 1, sizeof *cfg->webhooks);
    if (!cfg->webhooks)
        return fail_at(p, map, "out of memory");
    for (size_t i = 0; i + 1 < map->n; i += 2) {
        const struct ynode *item = map->items[i + 1];
        struct config_webhook *w = &cfg->webhooks[cfg->n_webhooks++];
        w->name = strdup(map->items[i]->value);
        w->line = item->line;
        w->col = item->col;
        if (!w->name)
            return fail_at(p, item, "out of memory");
        if (read_fields(p, item, webhook_fields, w, w->name) < 0)
            return -1;
        if (!w->url)
            return fail_at(p, item, "webhook %s needs a 'url'", w->name);
        if (!w->secret_env == !w->secret_file)
            return fail_at(p, item, "webhook %s needs its secret from one of 'secret_env' or 'secret_file'",
                           w->name);
        for (size_t k = 0; w->types && w->types[k]; k++) {
            const char *t = w->types[k], *dot = strchr(t, '.');
            if (!dot || dot == t || !dot[1] || strspn(t, "abcdefghijklmnopqrstuvwxyz_.") != strlen(t) ||
                strchr(dot + 1, '.'))
                return fail_at(p, item, "webhook %s: '%s' is not an event type (e.g. reply.received)", w->name,
                               t);
        }
        if (!w->description && !(w->description = strdup("")))
            return fail_at(p, item, "out of memory");
    }
    return 0;
}

static int check_webhooks(struct parse *p, const struct config *cfg)
{
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        char why[300];
        if (webhook_url_check(cfg->webhooks[i].url, cfg->webhook_allow_insecure, NULL, why, sizeof why) < 0) {
            snprintf(p->err, p->errlen, "%s:%d:%d: webhook %s: %s", p->name, cfg->webhooks[i].line, cfg->webhooks[i].col,
                     cfg->webhooks[i].name, why);
            return -1;
        }
    }
    if (cfg->webhook_max_in_flight < 1 || cfg->webhook_timeout < 1 || cfg->webhook_connect_timeout < 1)
        return fail_at(p, NULL, "webhook_max_in_flight, webhook_timeout and webhook_connect_timeout must be at "
                                "least 1");
    return 0;
}

static int set_default(char **slot, const char *value)
{
    if (*slot)
        return 0;
    *slot = strdup(value);
    return *slot ? 0 : -1;
}

/* Environment first: each variable, when set and not empty, wins. */
static int apply_env(struct config *cfg)
{
    static const struct {
        const char *var;
        size_t off;
    } env[] = {
        {"DATABASE_URL", offsetof(struct config, database_url)},
        {"RELANCE_HTTP_LISTEN", offsetof(struct config, http_listen)},
        {"RELANCE_METRICS_LISTEN", offsetof(struct config, metrics_listen)},
        {"RELANCE_PUBLIC_URL", offsetof(struct config, public_url)},
        {"RELANCE_PUBLIC_LISTEN", offsetof(struct config, public_listen)},
        {"RELANCE_STATE_DIR", offsetof(struct config, state_dir)},
        {"RELANCE_LOG_FORMAT", offsetof(struct config, log_format)},
        {"RELANCE_LOG_LEVEL", offsetof(struct config, log_level)},
        {"RELANCE_TRANSPORT", offsetof(struct config, transport)},
        {"RELANCE_CAPTURE_DIR", offsetof(struct config, capture_dir)},
        {"RELANCE_TLS_CA_FILE", offsetof(struct config, tls_ca_file)},
    };
    for (size_t i = 0; i < sizeof env / sizeof env[0]; i++) {
        const char *v = getenv(env[i].var);
        if (!v || !*v)
            continue;
        char **slot = (char **)((char *)cfg + env[i].off);
        free(*slot);
        *slot = strdup(v);
        if (!*slot)
            return -1;
    }
    return 0;
}

/* DATABASE_URL_FILE: the connection string (it holds a password) as the
 * first line of a file, the containers' convention for a secret mounted
 * as a file (Kubernetes' Secret volumes, podman's and Docker's secrets).
 * It counts as the environment: DATABASE_URL itself wins over it, and it
 * wins over the file's database_url. 0, or -1 with the reason in p. */
static int database_url_file(struct parse *p, struct config *cfg)
{
    const char *path = getenv("DATABASE_URL_FILE");
    const char *url = getenv("DATABASE_URL");
    if (!path || !*path || (url && *url))
        return 0;
    FILE *f = fopen(path, "r");
    if (!f)
        return fail_at(p, NULL, "DATABASE_URL_FILE %s cannot be read: %s", path, strerror(errno));
    char line[4096];
    int got = fgets(line, sizeof line, f) != NULL;
    fclose(f);
    line[got ? strcspn(line, "\r\n") : 0] = '\0';
    if (!*line)
        return fail_at(p, NULL, "DATABASE_URL_FILE %s is empty: its first line is the connection string", path);
    char *copy = strdup(line);
    explicit_bzero(line, sizeof line);
    if (!copy)
        return fail_at(p, NULL, "out of memory");
    free(cfg->database_url);
    cfg->database_url = copy;
    return 0;
}

/* The public links: an address mail clients can be sent to, and a
 * secret to sign them with. */
static int check_public(struct parse *p, struct config *cfg)
{
    char host[256];
    int port;
    if (cfg->public_listen && config_split_listen(cfg->public_listen, host, sizeof host, &port) < 0)
        return fail_at(p, NULL, "http.public_listen '%s' must be host:port", cfg->public_listen);
    if ((cfg->link_secret_env && cfg->link_secret_file) ||
        (cfg->link_secret_previous_env && cfg->link_secret_previous_file))
        return fail_at(p, NULL, "http.link_secret_env and http.link_secret_file (and their _previous_ pair): "
                                "one or the other, not both");
    if ((cfg->link_secret_previous_env || cfg->link_secret_previous_file) &&
        !(cfg->link_secret_env || cfg->link_secret_file))
        return fail_at(p, NULL, "http.link_secret_previous_* needs the current secret too (http.link_secret_env "
                                "or http.link_secret_file)");
    if (cfg->n_tracking_domains && !cfg->link_secret_env && !cfg->link_secret_file)
        return fail_at(p, NULL, "tracking.domains needs a secret to sign the tracked links: http.link_secret_env (a "
                                "variable) or http.link_secret_file (a file), at least %d characters",
                       LINKTOKEN_SECRET_MIN);
    if (!cfg->public_url)
        return 0;
    char *u = cfg->public_url;
    size_t n = strlen(u);
    while (n > 0 && u[n - 1] == '/') /* links add "/u/TOKEN" */
        u[--n] = '\0';
    const char *rest = NULL;
    if (strncasecmp(u, "https://", 8) == 0)
        rest = u + 8;
    else if (strncasecmp(u, "http://", 7) == 0 && cfg->public_url_insecure)
        rest = u + 7;
    else if (strncasecmp(u, "http://", 7) == 0)
        return fail_at(p, NULL, "http.public_url '%s' must be https:// (mail clients and providers expect it; "
                                "http.public_url_insecure: true allows http:// for tests)", u);
    if (n >= PUBLIC_URL_MAX)
        return fail_at(p, NULL, "http.public_url is too long (at most %d characters)", PUBLIC_URL_MAX - 1);
    if (!rest || !*rest || *rest == '/' || strcspn(u, " \t\r\n\"<>?#") != n)
        return fail_at(p, NULL, "http.public_url '%s' must be an https:// URL such as https://links.acme.example", u);
    if (!cfg->link_secret_env && !cfg->link_secret_file)
        return fail_at(p, NULL, "http.public_url needs a secret to sign its links: http.link_secret_env (a variable) "
                                "or http.link_secret_file (a file), at least %d characters", LINKTOKEN_SECRET_MIN);
    return 0;
}

static int check(struct parse *p, struct config *cfg)
{
    char host[256];
    int port;
    if (config_split_listen(cfg->http_listen, host, sizeof host, &port) < 0)
        return fail_at(p, NULL, "http.listen '%s' must be host:port", cfg->http_listen);
    if (cfg->metrics_listen && config_split_listen(cfg->metrics_listen, host, sizeof host, &port) < 0)
        return fail_at(p, NULL, "http.metrics_listen '%s' must be host:port", cfg->metrics_listen);
    if (cfg->metrics_token_env && cfg->metrics_token_file)
        return fail_at(p, NULL, "http.metrics_token_env and http.metrics_token_file: one or the other, not both");
    if (check_public(p, cfg) < 0)
        return -1;
    if (strcmp(cfg->log_format, "text") != 0 && strcmp(cfg->log_format, "json") != 0)
        return fail_at(p, NULL, "log_format must be 'text' or 'json', not '%s'", cfg->log_format);
    enum log_level level;
    if (log_level_parse(cfg->log_level, &level) < 0)
        return fail_at(p, NULL, "log_level must be 'debug', 'info', 'warn' or 'error', not '%s'", cfg->log_level);
    if (strcmp(cfg->transport, "smtp") != 0 && strcmp(cfg->transport, "capture") != 0)
        return fail_at(p, NULL, "transport must be 'smtp' or 'capture', not '%s'", cfg->transport);
    if (cfg->imap_max_connections < 1)
        return fail_at(p, NULL, "imap_max_connections must be at least 1");
    if (cfg->api_rate_limit < 1 || cfg->api_rate_burst < 1)
        return fail_at(p, NULL, "http.api_rate_limit and http.api_rate_burst must be at least 1");
    if (cfg->smtp_idle_timeout < 1)
        return fail_at(p, NULL, "smtp_idle_timeout must be at least 1s");
    if (cfg->smtp_timeout < 1)
        return fail_at(p, NULL, "smtp_timeout must be at least 1s");
    /* below 2 s there is no time left for the leases' release */
    if (cfg->shutdown_grace < 2 || cfg->shutdown_grace > 3600)
        return fail_at(p, NULL, "shutdown_grace must be between 2s and 1h");
    return 0;
}

struct config *config_parse(const char *name, const char *buf, size_t len, char *err, size_t errlen)
{
    struct parse p = {name ? name : "(defaults)", err, errlen};
    struct config *cfg = calloc(1, sizeof *cfg);
    struct ynode *root = NULL;
    if (!cfg) {
        snprintf(err, errlen, "out of memory");
        return NULL;
    }
    if (name && !(cfg->path = strdup(name)))
        goto fail;
    cfg->imap_max_connections = 20;
    cfg->api_rate_limit = 50;
    cfg->api_rate_burst = 100;
    cfg->smtp_idle_timeout = 60;
    cfg->smtp_timeout = 60;
    cfg->shutdown_grace = 20;
    cfg->retention_events = 30 * 86400L;
    cfg->retention_messages = 365 * 86400L;
    cfg->retention_inbound = 90 * 86400L;
    cfg->webhook_max_in_flight = 4;
    cfg->webhook_timeout = 15;
    cfg->webhook_connect_timeout = 5;
    cfg->bot_window = 30;
    if (buf) {
        struct yerror yerr;
        if (ytree_parse(buf, len, &root, &yerr) < 0) {
            snprintf(err, errlen, "%s:%d:%d: %s", p.name, yerr.line, yerr.col, yerr.msg);
            goto fail;
        }
        if (root && !ytree_is_null(root)) {
            if (read_fields(&p, root, top_fields, cfg, NULL) < 0)
                goto fail;
            const struct ynode *pools = ytree_get(root, "pools");
            if (pools && !ytree_is_null(pools) && read_pools(&p, cfg, pools) < 0)
                goto fail;
            const struct ynode *dkim = ytree_get(root, "dkim");
            if (dkim && !ytree_is_null(dkim) && read_dkim(&p, cfg, dkim) < 0)
                goto fail;
            const struct ynode *tracking = ytree_get(root, "tracking");
            const struct ynode *tdomains =
                tracking && tracking->type == YNODE_MAP ? ytree_get(tracking, "domains") : NULL;
            if (tdomains && !ytree_is_null(tdomains) && read_tracking(&p, cfg, tdomains) < 0)
                goto fail;
            const struct ynode *webhooks = ytree_get(root, "webhooks");
            if (webhooks && !ytree_is_null(webhooks) && read_webhooks(&p, cfg, webhooks) < 0)
                goto fail;
        }
    }
    if (apply_env(cfg) < 0 || set_default(&cfg->database_url, "") < 0 ||
        set_default(&cfg->http_listen, "127.0.0.1:8080") < 0 || set_default(&cfg->log_format, "text") < 0 ||
        set_default(&cfg->log_level, "info") < 0 ||
        set_default(&cfg->transport, "smtp") < 0) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    if (database_url_file(&p, cfg) < 0 || check(&p, cfg) < 0 || check_webhooks(&p, cfg) < 0)
        goto fail;
    ytree_free(root);
    return cfg;
fail:
    ytree_free(root);
    config_free(cfg);
    return NULL;
}

struct config *config_load(const char *path, char *err, size_t errlen)
{
    if (!path)
        return config_parse(NULL, NULL, 0, err, errlen);
    FILE *f = fopen(path, "rb");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read configuration: %s", path, strerror(errno));
        return NULL;
    }
    /* 16 MiB is far beyond any configuration: a bigger file is a mistake */
    const size_t most = 16u << 20;
    struct buf b = {0};
    char chunk[8192];
    for (;;) {
        size_t n = fread(chunk, 1, sizeof chunk, f);
        if (n == 0 || b.oom || b.len > most)
            break;
        buf_add(&b, chunk, n);
    }
    fclose(f);
    if (b.oom || b.len > most) {
        snprintf(err, errlen, "%s: configuration too large", path);
        buf_free(&b);
        return NULL;
    }
    struct config *cfg = config_parse(path, b.p ? b.p : "", b.len, err, errlen);
    buf_free(&b);
    return cfg;
}

static void strlist_free(char **list)
{
    for (size_t i = 0; list && list[i]; i++)
        free(list[i]);
    free(list);
}

static void free_account(struct config_account *a)
{
    char **strs[] = {&a->email, &a->from_name, &a->first_name, &a->signature, &a->unavailable, &a->smtp, &a->imap, &a->username, &a->password_env, &a->max_bounce_rate,
                     &a->password_file, &a->timezone, &a->tls_ca_file, &a->tls, &a->auth, &a->imap_auth,
                     &a->oauth2.token_url, &a->oauth2.client_id, &a->oauth2.client_secret_env,
                     &a->oauth2.refresh_token_env};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    strlist_free(a->folders);
}

void config_free(struct config *cfg)
{
    if (!cfg)
        return;
    for (size_t i = 0; i < cfg->n_pools; i++) {
        for (size_t j = 0; j < cfg->pools[i].n_accounts; j++)
            free_account(&cfg->pools[i].accounts[j]);
        free(cfg->pools[i].accounts);
        free(cfg->pools[i].name);
    }
    free(cfg->pools);
    for (size_t i = 0; i < cfg->n_dkim; i++) {
        free(cfg->dkim[i].domain);
        free(cfg->dkim[i].selector);
        free(cfg->dkim[i].key_file);
    }
    free(cfg->dkim);
    for (size_t i = 0; i < cfg->n_tracking_domains; i++) {
        free(cfg->tracking_domains[i].domain);
        free(cfg->tracking_domains[i].tracking_domain);
    }
    free(cfg->tracking_domains);
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        struct config_webhook *w = &cfg->webhooks[i];
        free(w->name);
        free(w->url);
        free(w->description);
        free(w->secret_env);
        free(w->secret_file);
        strlist_free(w->types);
    }
    free(cfg->webhooks);
    strlist_free(cfg->webhook_allow_insecure);
    char **strs[] = {&cfg->path, &cfg->database_url, &cfg->http_listen, &cfg->public_url, &cfg->state_dir,
                     &cfg->log_format, &cfg->log_level, &cfg->transport, &cfg->capture_dir, &cfg->tls_ca_file,
                     &cfg->metrics_listen, &cfg->metrics_token_env, &cfg->metrics_token_file,
                     &cfg->public_listen, &cfg->link_secret_env, &cfg->link_secret_file,
                     &cfg->link_secret_previous_env, &cfg->link_secret_previous_file};
    for (size_t i = 0; i < sizeof strs / sizeof strs[0]; i++)
        free(*strs[i]);
    free(cfg);
}

void config_url_redact(const char *url, char *buf, size_t len)
{
    snprintf(buf, len, "%s", url);
    /* scheme://user:password@host -> scheme://user:***@host */
    char *scheme = strstr(buf, "://");
    if (scheme) {
        char *at = strchr(scheme + 3, '@');
        char *colon = strchr(scheme + 3, ':');
        if (at && colon && colon < at) {
            size_t tail = strlen(at);
            if ((size_t)(colon + 1 - buf) + 3 + tail < len) {
                memmove(colon + 4, at, tail + 1);
                memcpy(colon + 1, "***", 3);
            }
        }
    }
}

/* ---- the database connection string --------------------------------------
 * Shown only as libpq reads it: parsed by PQconninfoParse and rebuilt from
 * its options, never copied from the text, so no spelling of a password
 * (spaces around '=', quotes, escapes, a URL's query) can slip through a
 * pattern. libpq marks its secret options ("password", "sslpassword") with
 * a '*' in dispchar; their values are never written. */

#define CONNINFO_HIDDEN "***"

static int conninfo_secret(const PQconninfoOption *o)
{
    return o->dispchar && strchr(o->dispchar, '*') != NULL;
}

/* libpq's own test for the URL form: one of its two prefixes. */
static int conninfo_is_url(const char *s)
{
    return strncmp(s, "postgresql://", 13) == 0 || strncmp(s, "postgres://", 11) == 0;
}

static const char *conninfo_get(const PQconninfoOption *opts, const char *key)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++)
        if (strcmp(o->keyword, key) == 0)
            return o->val && *o->val ? o->val : NULL;
    return NULL;
}

/* Percent-encodes s for a URL, leaving unreserved characters and those in
 * keep as they are. */
static void url_add(struct buf *b, const char *s, size_t n, const char *keep)
{
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (isalnum(c) || strchr("-._~", c) || strchr(keep, c))
            buf_addc(b, (char)c);
        else
            buf_addf(b, "%%%02X", c);
    }
}

/* The i-th item of a comma-separated list (libpq's multi-host host and
 * port), or the only item when the list has one: libpq gives a single
 * port to every host. */
static const char *list_item(const char *list, size_t i, size_t *n)
{
    if (!list || !strchr(list, ','))
        i = 0;
    for (const char *p = list; p; i--) {
        const char *comma = strchr(p, ',');
        if (i == 0) {
            *n = comma ? (size_t)(comma - p) : strlen(p);
            return p;
        }
        p = comma ? comma + 1 : NULL;
    }
    *n = 0;
    return NULL;
}

static size_t list_len(const char *list)
{
    size_t n = list ? 1 : 0;
    for (const char *p = list; p && *p; p++)
        n += *p == ',';
    return n;
}

/* postgresql://user:***@host:port,host2:port2/dbname?key=value&... */
static void conninfo_url(struct buf *b, const PQconninfoOption *opts)
{
    const char *user = conninfo_get(opts, "user"), *host = conninfo_get(opts, "host");
    const char *port = conninfo_get(opts, "port"), *dbname = conninfo_get(opts, "dbname");
    buf_adds(b, "postgresql://");
    if (user)
        url_add(b, user, strlen(user), "");
    if (conninfo_get(opts, "password"))
        buf_adds(b, ":" CONNINFO_HIDDEN);
    if (user || conninfo_get(opts, "password"))
        buf_addc(b, '@');
    size_t hosts = list_len(host) > list_len(port) ? list_len(host) : list_len(port);
    for (size_t i = 0; i < hosts; i++) {
        size_t hn, pn;
        const char *h = list_item(host, i, &hn), *p = list_item(port, i, &pn);
        if (i)
            buf_addc(b, ',');
        if (h && memchr(h, ':', hn)) { /* IPv6 */
            buf_addc(b, '[');
            url_add(b, h, hn, ":");
            buf_addc(b, ']');
        } else if (h) {
            url_add(b, h, hn, "");
        }
        if (p && pn) {
            buf_addc(b, ':');
            url_add(b, p, pn, "");
        }
    }
    if (dbname) {
        buf_addc(b, '/');
        url_add(b, dbname, strlen(dbname), "");
    }
    char sep = '?';
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        static const char *const in_path[] = {"user", "password", "host", "port", "dbname"};
        int skip = !o->val;
        for (size_t i = 0; i < sizeof in_path / sizeof in_path[0] && !skip; i++)
            skip = strcmp(o->keyword, in_path[i]) == 0;
        if (skip)
            continue;
        buf_addf(b, "%c%s=", sep, o->keyword);
        if (conninfo_secret(o))
            buf_adds(b, CONNINFO_HIDDEN);
        else
            url_add(b, o->val, strlen(o->val), "");
        sep = '&';
    }
}

/* key=value key='quoted value' ..., quoting as libpq reads it back. */
static void conninfo_keywords(struct buf *b, const PQconninfoOption *opts)
{
    for (const PQconninfoOption *o = opts; o->keyword; o++) {
        if (!o->val)
            continue;
        buf_addf(b, "%s%s=", b->len ? " " : "", o->keyword);
        if (conninfo_secret(o)) {
            buf_adds(b, CONNINFO_HIDDEN);
            continue;
        }
        int plain = *o->val != '\0';
        for (const char *p = o->val; *p && plain; p++)
            plain = !isspace((unsigned char)*p) && *p != '\'' && *p != '\\';
        if (plain) {
            buf_adds(b, o->val);
            continue;
        }
        buf_addc(b, '\'');
        for (const char *p = o->val; *p; p++) {
            if (*p == '\'' || *p == '\\')
                buf_addc(b, '\\');
            buf_addc(b, *p);
        }
        buf_addc(b, '\'');
    }
}

void config_conninfo_redact(const char *conninfo, char *buf, size_t len)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (!opts) {
        snprintf(buf, len, "(unparseable connection string)");
        return;
    }
    struct buf b = {0};
    if (conninfo_is_url(conninfo))
        conninfo_url(&b, opts);
    else
        conninfo_keywords(&b, opts);
    snprintf(buf, len, "%s", b.oom ? "(out of memory)" : b.p ? b.p : "");
    buf_free(&b);
    PQconninfoFree(opts);
}

void config_conninfo_error(const char *conninfo, const char *msg, char *buf, size_t len)
{
    PQconninfoOption *opts = PQconninfoParse(conninfo, NULL);
    if (!opts) {
        /* libpq's parse errors quote the text around the fault */
        snprintf(buf, len, "libpq cannot parse the connection string (check the quoting of its values)");
        return;
    }
    /* Masked over the whole message before it is cut to its first line
     * and to len, so that no cut leaves a part of a secret. */
    struct buf b = {0};
    for (const char *p = msg ? msg : ""; *p;) {
        size_t hit = 0;
        for (const PQconninfoOption *o = opts; o->keyword && !hit; o++)
            if (conninfo_secret(o) && o->val && *o->val && strncmp(p, o->val, strlen(o->val)) == 0)
                hit = strlen(o->val);
        if (hit) {
            buf_adds(&b, CONNINFO_HIDDEN);
            p += hit;
        } else {
            buf_addc(&b, *p++);
        }
    }
    const char *text = b.oom ? "(out of memory)" : b.p ? b.p : "";
    snprintf(buf, len, "%.*s", (int)strcspn(text, "\n"), text);
    buf_free(&b);
    PQconninfoFree(opts);
}

int config_split_listen(const char *listen, char *host, size_t hostlen, int *port)
{
    const char *colon = strrchr(listen, ':');
    if (!colon || colon == listen)
        return -1;
    const char *h = listen;
    size_t hl = (size_t)(colon - listen);
    if (h[0] == '[' && hl >= 2 && h[hl - 1] == ']') {
        h++;
        hl -= 2;
    }
    if (hl == 0 || hl >= hostlen)
        return -1;
    char *end;
    long p = strtol(colon + 1, &end, 10);
    if (*end || end == colon + 1 || p < 0 || p > 65535)
        return -1;
    memcpy(host, h, hl);
    host[hl] = '\0';
    *port = (int)p;
    return 0;
}

int config_claims_by_account(const struct config *cfg)
{
    int by = strcmp(cfg->transport, "smtp") == 0;
    for (size_t i = 0; i < cfg->n_pools; i++)
        by |= cfg->pools[i].n_accounts > 0;
    return by;
}
