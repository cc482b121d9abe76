/* config: the deployment configuration.
 *
 * Read from a YAML file (see deploy/relance.example.yaml), with ${NAME}
 * and ${NAME:-default} expanded from the environment in every value, then
 * overridden by environment variables (DATABASE_URL, RELANCE_HTTP_LISTEN,
 * ...). Precedence: environment, then file, then built-in defaults. Every
 * error names file:line:column and the key; unknown keys are errors.
 * Secrets are never stored here: accounts name the variable or file that
 * holds them (password_env, password_file). */
#ifndef RELANCE_CONFIG_H
#define RELANCE_CONFIG_H

#include <stddef.h>

struct config_oauth2 {
    char *token_url, *client_id, *client_secret_env, *refresh_token_env;
};

struct config_account {
    char *email, *from_name, *smtp, *imap, *username;
    char *first_name, *signature; /* {{sender.first_name}} and {{sender.signature}} (compose.h) */
    char *password_env, *password_file;
    long daily_limit;          /* 0: no limit */
    long min_interval;         /* seconds */
    long interval_jitter;      /* seconds */
    char *timezone;            /* the account's day, for daily_limit */
    long warmup_start, warmup_increase_per_day; /* warm-up only when start > 0 */
    char *tls_ca_file, *tls, *auth;
    /* the IMAP login: "password", "xoauth2" or "none"; never NULL after
     * config_parse (by default what auth says, so auth: none alone still
     * means no login on either side). auth stays the SMTP side's. */
    char *imap_auth;
    long watch_interval;       /* seconds */
    char *max_bounce_rate;     /* e.g. "5%" or "0.05": pause above this hard-bounce rate */
    long max_policy_blocks;    /* pause after this many 5.7.x blocks within 24 h */
    int save_sent;
    char **folders;            /* watched IMAP folders; NULL-terminated */
    struct config_oauth2 oauth2;
    int line;
    /* Not read from the file: why serve cannot read this account's secret
     * (preflight_mark_unavailable), or NULL. Such an account gets no SMTP
     * channel, mailbox or token here and is paused with the reason. */
    char *unavailable;
};

struct config_pool {
    char *name;
    long domain_hourly_limit;  /* 0: none */
    int bulk;                  /* sends in volume: lint wants a visible opt-out link */
    struct config_account *accounts;
    size_t n_accounts;
};

struct config_dkim {
    char *domain, *selector, *key_file;
};

/* Click and open tracking (tracking: {domains: {DOMAIN: {tracking_domain:
 * HOST}}}): the host, a CNAME under the sending domain to relance's
 * public address, that the tracked links of mail from DOMAIN use. */
struct config_tracking_domain {
    char *domain, *tracking_domain;
};

/* An endpoint the configuration declares (webhooks: NAME: {...}); its
 * secret is read from secret_env or secret_file by each replica, never
 * stored in the database. */
struct config_webhook {
    char *name, *url, *description, *secret_env, *secret_file;
    char **types;              /* NULL-terminated; NULL: every type */
    int line, col;
};

struct config {
    char *path;                /* the file read, or NULL */
    char *database_url;        /* "" means libpq's defaults (PG* variables) */
    char *http_listen;         /* host:port */
    char *metrics_listen;      /* host:port of GET /metrics alone, or NULL: on http_listen */
    char *metrics_token_env;   /* GET /metrics wants Authorization: Bearer <this variable's value> */
    char *metrics_token_file;  /* ... or the first line of this file; neither: no token */
    /* The public links (one-click unsubscribe, public.c): the address the
     * ingress exposes them at, "https://host[:port][/prefix]" without a
     * final '/' (http:// only with public_url_insecure), or NULL: messages
     * then carry only a mailto: List-Unsubscribe. */
    char *public_url;
    int public_url_insecure;   /* http:// allowed (tests, a private trial) */
    char *public_listen;       /* host:port of the public routes alone, or NULL: on http_listen */
    /* The secret that signs the links (linktoken.h): a variable or a file,
     * and the one before a rotation, which still opens old links. */
    char *link_secret_env, *link_secret_file;
    char *link_secret_previous_env, *link_secret_previous_file;
    char *state_dir;
    char *log_format;          /* "text" or "json" */
    char *log_level;           /* "debug", "info", "warn" or "error" */
    char *transport;           /* "smtp" or "capture" */
    char *capture_dir;
    char *tls_ca_file;
    long imap_max_connections; /* pool-wide cap on open IMAP connections (default 20) */
    long api_rate_limit;       /* HTTP API requests a second per key, per replica (default 50) */
    long api_rate_burst;       /* and the burst above it (default 100) */
    long smtp_idle_timeout;    /* seconds an SMTP connection stays open unused (default 60) */
    long smtp_timeout;         /* seconds for each SMTP reply, and a stalled upload (default 60) */
    long shutdown_grace;       /* seconds from SIGTERM to exit, drain included (default 20) */
    /* retention: seconds personal data is kept, 0 for forever (retention.c) */
    long retention_events;     /* events are deleted after this (default 30 days) */
    long retention_messages;   /* sent messages lose addresses and subject (default 365 days) */
    long retention_inbound;    /* inbound messages lose their sender (default 90 days) */
    struct config_pool *pools;
    size_t n_pools;
    struct config_dkim *dkim;
    size_t n_dkim;
    struct config_webhook *webhooks;
    size_t n_webhooks;
    /* tracking: a hit this many seconds after delivery is a scanner's
     * (default 30; 0 turns the rule off), and the tracking hosts */
    long bot_window;
    struct config_tracking_domain *tracking_domains;
    size_t n_tracking_domains;
    char **webhook_allow_insecure; /* hosts reachable over http or at private addresses; NULL-terminated */
    long webhook_max_in_flight;  /* requests per endpoint and replica (default 4) */
    long webhook_timeout;        /* seconds for a whole request (default 15) */
    long webhook_connect_timeout; /* seconds to connect (default 5) */
};

/* Loads path (NULL: defaults only) and applies the environment. Returns
 * a config the caller frees with config_free, or NULL with a one-line
 * message in err ("relance.yaml:3:1: unknown key 'databse_url' (did you
 * mean 'database_url'?)"). */
struct config *config_load(const char *path, char *err, size_t errlen);
/* The same from a buffer; name is used in messages. */
struct config *config_parse(const char *name, const char *buf, size_t len, char *err, size_t errlen);
void config_free(struct config *cfg);

/* Expands ${NAME} and ${NAME:-default} (and $$ as a literal $) in s.
 * Returns a malloc'd string, or NULL with a reason in err. */
char *config_expand(const char *s, char *err, size_t errlen);

/* "5%" or "0.05" as a fraction in [0, 1], or -1 when it is neither. */
double config_rate_parse(const char *s);

/* Copies a URL (an OAuth2 token endpoint's) into buf with the password of
 * its user:password@ part replaced by "***", for logs. Not for the
 * database's connection string: config_conninfo_redact. */
void config_url_redact(const char *url, char *buf, size_t len);

/* The database connection string (database_url: a libpq URL or
 * keyword/value string) for logs and output: parsed by libpq and rebuilt
 * from its options with every secret one (password, sslpassword) as
 * "***"; a URL stays a URL. "" (libpq's defaults) stays "". A string libpq
 * cannot parse is not shown at all: "(unparseable connection string)".
 * Every place that shows database_url goes through here. */
void config_conninfo_redact(const char *conninfo, char *buf, size_t len);

/* The first line of libpq's error message msg about a connection made
 * from conninfo, safe to show: a secret option's value is masked should
 * libpq ever echo it, and when conninfo does not parse (libpq's parse
 * errors quote the string) a fixed text replaces msg. */
void config_conninfo_error(const char *conninfo, const char *msg, char *buf, size_t len);

/* Splits "host:port" ("[::1]:8080" too). Returns 0 or -1. */
int config_split_listen(const char *listen, char *host, size_t hostlen, int *port)
    __attribute__((warn_unused_result));

/* The tracking host of the domain of address (an e-mail address or a bare
 * domain; compared without case), or NULL when that domain has none. */
const char *config_tracking_domain(const struct config *cfg, const char *address);

/* The base of the tracked links of mail from address into buf (size len):
 * "https://TRACKING_DOMAIN" for its domain, else http.public_url; NULL
 * when there is neither (nothing can be tracked). */
const char *config_tracking_base(const struct config *cfg, const char *address, char *buf, size_t len);

/* Whether the scheduler claims per sender account (transport smtp, or
 * capture with accounts configured: a dry run then shows the real From,
 * rotation, caps and spacing) rather than with relance_claim_due. The
 * scheduler, `relance enrollments show` and the API's why_not_sooner all
 * ask this. */
int config_claims_by_account(const struct config *cfg);

#endif
