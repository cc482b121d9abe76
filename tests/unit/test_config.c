/* Unit tests of config: parsing, ${ENV} expansion, precedence, errors
 * with file:line:column, redaction, listen addresses. Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "config.h"

static void test_expand(void **state)
{
    (void)state;
    setenv("RT_A", "alpha", 1);
    setenv("RT_EMPTY", "", 1);
    unsetenv("RT_UNSET");
    static const struct {
        const char *in, *out, *err;
    } rows[] = {
        {"plain", "plain", NULL},
        {"${RT_A}", "alpha", NULL},
        {"x-${RT_A}-y", "x-alpha-y", NULL},
        {"${RT_A}${RT_A}", "alphaalpha", NULL},
        {"${RT_UNSET:-fallback}", "fallback", NULL},
        {"${RT_EMPTY:-fallback}", "fallback", NULL},
        {"${RT_A:-fallback}", "alpha", NULL},
        {"$$ {RT_A}", "$ {RT_A}", NULL},
        {"$${RT_A}", "${RT_A}", NULL},
        {"cost $5", "cost $5", NULL},
        {"${RT_UNSET}", NULL, "environment variable RT_UNSET is not set"},
        {"${RT_EMPTY}", NULL, "environment variable RT_EMPTY is not set"},
        {"${RT_A", NULL, "unterminated ${"},
        {"${}", NULL, "bad variable name"},
        {"${A-B}", NULL, "bad variable name 'A-B'"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[200] = "";
        char *got = config_expand(rows[i].in, err, sizeof err);
        if (rows[i].out) {
            assert_non_null(got);
            assert_string_equal(got, rows[i].out);
        } else {
            assert_null(got);
            assert_non_null(strstr(err, rows[i].err));
        }
        free(got);
    }
}

static void test_errors(void **state)
{
    (void)state;
    unsetenv("RT_UNSET");
    static const struct {
        const char *yaml, *err;
    } rows[] = {
        {"databse_url: x\n", "f.yaml:1:1: unknown key 'databse_url' (did you mean 'database_url'?)"},
        {"http:\n  lisen: 1.2.3.4:5\n", "f.yaml:2:3: unknown key 'lisen' in http (did you mean 'listen'?)"},
        {"zzz: 1\n", "f.yaml:1:1: unknown key 'zzz'"},
        {"http: {listen: nope}\n", "f.yaml: http.listen 'nope' must be host:port"},
        {"http: [a]\n", "f.yaml:1:7: 'http' must be a mapping of keys, not a list"},
        {"database_url: [a]\n", "f.yaml:1:15: 'database_url' must be a single value, not a list"},
        {"database_url: ${RT_UNSET}\n", "f.yaml:1:15: 'database_url': environment variable RT_UNSET is not set"},
        {"a: [1\n", "f.yaml:2:1: invalid YAML"},
        {"database_url: a\ndatabase_url: b\n", "f.yaml:2:1: duplicate key 'database_url'"},
        {"log_format: xml\n", "log_format must be 'text' or 'json'"},
        {"log_level: verbose\n", "log_level must be 'debug', 'info', 'warn' or 'error', not 'verbose'"},
        {"transport: pigeon\n", "transport must be 'smtp' or 'capture'"},
        {"x: &a 1\ny: *a\n", "f.yaml:1:4: YAML anchors (&name) are not supported"},
        {"pools:\n  p:\n    accounts:\n      - from_name: A\n", "f.yaml:4:9: account in pool 'p' needs 'email'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        daily_limit: lots\n",
         "f.yaml:5:22: 'daily_limit' must be a whole number >= 0, not 'lots'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        min_interval: 3 days\n",
         "f.yaml:5:23: 'min_interval' must be in seconds, minutes or hours, not days"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        min_interval: 9 parsecs\n",
         "f.yaml:5:23: 'min_interval': unknown unit 'parsecs'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n      - email: a@b.c\n",
         "f.yaml:5:9: duplicate account a@b.c"},
        {"pools:\n  p:\n    acounts: []\n", "f.yaml:3:5: unknown key 'acounts' in p (did you mean 'accounts'?)"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        warmup: {start: 1, increse_per_day: 2}\n",
         "unknown key 'increse_per_day' in warmup (did you mean 'increase_per_day'?)"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        save_sent: maybe\n",
         "'save_sent' must be true or false, not 'maybe'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        save_sent: true\n",
         "f.yaml:4:9: account a@b.c: 'save_sent' needs the account's 'imap' URL"},
        {"dkim:\n  a.example: {selector: s1}\n", "f.yaml:2:14: dkim for a.example needs 'selector' and 'key_file'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        watch_interval: 0\n",
         "'watch_interval' must be at least 1s"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        watch_interval: 0.5s\n",
         "f.yaml:5:25: 'watch_interval': fractions are not supported in duration '0.5s'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        max_bounce_rate: lots\n",
         "'max_bounce_rate' must be a percentage like 5% or a fraction like 0.05, not 'lots'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        max_bounce_rate: 150%\n",
         "'max_bounce_rate' must be a percentage"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        imap_auth: kerberos\n",
         "f.yaml:5:20: 'imap_auth' must be password (or login), xoauth2 or none, not 'kerberos'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        imap: imaps://h\n        imap_auth: none\n",
         "f.yaml:6:20: account a@b.c: 'imap_auth: none' with an 'imap' URL: an IMAP server always needs a login "
         "(imap_auth: password or xoauth2)"},
        /* the default follows auth: auth none leaves the IMAP side without a login */
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        imap: imaps://h\n        auth: none\n",
         "f.yaml:6:15: account a@b.c: 'auth: none' also means no IMAP login, and an IMAP server always needs one: "
         "add 'imap_auth: password' (or xoauth2)"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        auth: login\n",
         "f.yaml:5:15: 'auth' must be password, xoauth2 or none, not 'login'"},
        {"pools:\n  p:\n    accounts:\n      - email: a@b.c\n        imap: imaps://h\n        imap_auth: xoauth2\n",
         "f.yaml:6:20: account a@b.c: 'imap_auth: xoauth2' needs 'auth: xoauth2' and its 'oauth2' settings"},
        /* the public links: https, and a secret to sign them */
        {"http: {public_url: 'http://go.example', link_secret_env: LS}\n",
         "http.public_url 'http://go.example' must be https://"},
        {"http: {public_url: 'ftp://go.example', link_secret_env: LS}\n", "must be an https:// URL"},
        {"http: {public_url: 'https://', link_secret_env: LS}\n", "must be an https:// URL"},
        {"http: {public_url: 'https://go.example/a b', link_secret_env: LS}\n", "must be an https:// URL"},
        {"http: {public_url: 'https://go.example'}\n", "http.public_url needs a secret to sign its links"},
        {"http: {link_secret_env: A, link_secret_file: /b}\n", "one or the other, not both"},
        {"http: {link_secret_previous_env: A}\n", "needs the current secret too"},
        {"http: {public_listen: nope}\n", "http.public_listen 'nope' must be host:port"},
        {"pools:\n  p:\n    bulk: sometimes\n", "'bulk' must be true or false"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[400] = "";
        struct config *cfg = config_parse("f.yaml", rows[i].yaml, strlen(rows[i].yaml), err, sizeof err);
        if (cfg || !strstr(err, rows[i].err))
            fail_msg("row %zu: yaml %s\n  got error: '%s'\n  want: '%s'", i, rows[i].yaml, err, rows[i].err);
        config_free(cfg);
    }
}

static void test_values_and_precedence(void **state)
{
    (void)state;
    const char *yaml = "database_url: postgresql://file/db\n"
                       "http: {listen: '0.0.0.0:9000', public_url: https://go.example.com/, link_secret_env: LS}\n"
                       "pools:\n"
                       "  founders:\n"
                       "    domain_hourly_limit: 7\n"
                       "    accounts:\n"
                       "      - email: alice@acme.example\n"
                       "        daily_limit: 40\n"
                       "        min_interval: 90s\n"
                       "        interval_jitter: 1m\n"
                       "        warmup: {start: 5, increase_per_day: 3}\n"
                       "        save_sent: true\n"
                       "        imap: imaps://imap.acme.example\n"
                       "        folders: [INBOX, Junk]\n"
                       "dkim:\n"
                       "  acme.example: {selector: s1, key_file: /k.pem}\n";
    char err[400];
    unsetenv("DATABASE_URL");
    unsetenv("RELANCE_HTTP_LISTEN");
    struct config *cfg = config_parse("f.yaml", yaml, strlen(yaml), err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(cfg->database_url, "postgresql://file/db");
    assert_string_equal(cfg->http_listen, "0.0.0.0:9000");
    assert_string_equal(cfg->public_url, "https://go.example.com"); /* links add /u/... */
    assert_false(cfg->public_url_insecure);
    assert_null(cfg->public_listen);
    assert_string_equal(cfg->transport, "smtp");
    assert_int_equal(cfg->n_pools, 1);
    assert_string_equal(cfg->pools[0].name, "founders");
    assert_int_equal(cfg->pools[0].domain_hourly_limit, 7);
    const struct config_account *a = &cfg->pools[0].accounts[0];
    assert_int_equal(a->daily_limit, 40);
    assert_int_equal(a->min_interval, 90);
    assert_int_equal(a->interval_jitter, 60);
    assert_int_equal(a->warmup_start, 5);
    assert_int_equal(a->warmup_increase_per_day, 3);
    assert_int_equal(a->watch_interval, 60); /* default */
    assert_int_equal(a->save_sent, 1);
    assert_string_equal(a->folders[1], "Junk");
    assert_null(a->folders[2]);
    assert_string_equal(cfg->dkim[0].selector, "s1");
    config_free(cfg);

    /* environment wins over the file */
    setenv("DATABASE_URL", "postgresql://env/db", 1);
    setenv("RELANCE_HTTP_LISTEN", "127.0.0.1:1234", 1);
    cfg = config_parse("f.yaml", yaml, strlen(yaml), err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(cfg->database_url, "postgresql://env/db");
    assert_string_equal(cfg->http_listen, "127.0.0.1:1234");
    config_free(cfg);
    unsetenv("DATABASE_URL");
    unsetenv("RELANCE_HTTP_LISTEN");

    /* no file: defaults */
    cfg = config_parse(NULL, NULL, 0, err, sizeof err);
    assert_non_null(cfg);
    assert_string_equal(cfg->http_listen, "127.0.0.1:8080");
    assert_string_equal(cfg->database_url, "");
    assert_string_equal(cfg->log_format, "text");
    assert_string_equal(cfg->log_level, "info");
    config_free(cfg);

    /* an empty file is the defaults too */
    cfg = config_parse("f.yaml", "", 0, err, sizeof err);
    assert_non_null(cfg);
    config_free(cfg);
}

/* imap_auth: the IMAP side's login, by default the same as auth's */
static void test_imap_auth(void **state)
{
    (void)state;
    static const struct {
        const char *keys, *auth, *imap_auth;
    } rows[] = {
        {"", NULL, "password"},
        {"        auth: password\n", "password", "password"},
        {"        auth: none\n", "none", "none"},
        {"        auth: xoauth2\n        oauth2: {token_url: https://t.example/token, client_id: c, "
         "refresh_token_env: R}\n        imap: imaps://h\n",
         "xoauth2", "xoauth2"},
        {"        auth: none\n        imap_auth: login\n        imap: imaps://h\n", "none", "password"},
        {"        auth: none\n        imap_auth: password\n        imap: imaps://h\n", "none", "password"},
        {"        auth: xoauth2\n        oauth2: {token_url: https://t.example/token, client_id: c, "
         "refresh_token_env: R}\n        imap_auth: password\n        imap: imaps://h\n",
         "xoauth2", "password"},
        {"        imap_auth: none\n", NULL, "none"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char yaml[600], err[400] = "";
        snprintf(yaml, sizeof yaml, "pools:\n  p:\n    accounts:\n      - email: a@b.c\n%s", rows[i].keys);
        struct config *cfg = config_parse("f.yaml", yaml, strlen(yaml), err, sizeof err);
        if (!cfg)
            fail_msg("row %zu: %s", i, err);
        const struct config_account *a = &cfg->pools[0].accounts[0];
        if (rows[i].auth)
            assert_string_equal(a->auth, rows[i].auth);
        else
            assert_null(a->auth);
        assert_non_null(a->imap_auth);
        assert_string_equal(a->imap_auth, rows[i].imap_auth);
        config_free(cfg);
    }
}

static void test_redact(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"},
        {"postgresql://u@h/db", "postgresql://u@h/db"},
        {"postgresql://h:5432/db", "postgresql://h:5432/db"},
        {"https://u:secret@h/token", "https://u:***@h/token"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[200];
        config_url_redact(rows[i].in, buf, sizeof buf);
        assert_string_equal(buf, rows[i].out);
    }
}

/* The database's connection string as libpq reads it, rebuilt: a URL
 * stays a URL, and no spelling of the password shows. */
static void test_conninfo_redact(void **state)
{
    (void)state;
    static const struct {
        const char *in, *out;
    } rows[] = {
        {"postgresql://u:secret@h:5432/db", "postgresql://u:***@h:5432/db"},
        {"postgres://u@h/db?password=secret&sslmode=disable", "postgresql://u:***@h/db?sslmode=disable"},
        {"postgresql://h1:1,h2:2/db", "postgresql://h1:1,h2:2/db"},
        {"postgresql://[::1]:5432/db?sslpassword=secret", "postgresql://[::1]:5432/db?sslpassword=***"},
        {"postgresql://%2Ftmp/db", "postgresql://%2Ftmp/db"},
        {"host=h password=secret dbname=x", "password=*** dbname=x host=h"},
        {"host=h password = secret", "password=*** host=h"},
        {"password= secret host=h", "password=*** host=h"},
        {"password='a b c' host=h", "password=*** host=h"},
        {"password=a\\ b host=h", "password=*** host=h"},
        {"application_name='a b\\'c' host=h", "host=h application_name='a b\\'c'"},
        {"host=h password=a b", "(unparseable connection string)"},
        {"postgresql://u:se%zzcret@h/db", "(unparseable connection string)"},
        {"", ""},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char buf[200];
        config_conninfo_redact(rows[i].in, buf, sizeof buf);
        assert_string_equal(buf, rows[i].out);
    }
    char buf[200];
    config_conninfo_error("host=h password='pw 1'", "FATAL: pw 1 rejected\nsecond line", buf, sizeof buf);
    assert_string_equal(buf, "FATAL: *** rejected");
    config_conninfo_error("host=h password=a b", "missing \"=\" after \"b\"", buf, sizeof buf);
    assert_null(strstr(buf, "\"b\""));
}

static void test_listen(void **state)
{
    (void)state;
    static const struct {
        const char *in, *host;
        int port, ok;
    } rows[] = {
        {"127.0.0.1:8080", "127.0.0.1", 8080, 1}, {"0.0.0.0:0", "0.0.0.0", 0, 1}, {"[::1]:80", "::1", 80, 1},
        {"localhost:1", "localhost", 1, 1},      {"8080", NULL, 0, 0},            {":8080", NULL, 0, 0},
        {"h:99999", NULL, 0, 0},                 {"h:x", NULL, 0, 0},             {"h:", NULL, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char host[64];
        int port = -1;
        int rc = config_split_listen(rows[i].in, host, sizeof host, &port);
        assert_int_equal(rc == 0, rows[i].ok);
        if (rows[i].ok) {
            assert_string_equal(host, rows[i].host);
            assert_int_equal(port, rows[i].port);
        }
    }
}

/* What the caller exported — relance's settings, DATABASE_URL, libpq's
 * PG* — must not change a result: every RELANCE_* but the harness's own,
 * DATABASE_URL and PG* leave this process's environment first. */
static void clear_callers_settings(void)
{
    extern char **environ;
    for (size_t i = 0; environ[i];) {
        const char *e = environ[i];
        size_t n = strcspn(e, "=");
        char name[256];
        if (n < sizeof name && (strncmp(e, "RELANCE_", 8) == 0 || strncmp(e, "PG", 2) == 0 ||
                                (n == 12 && strncmp(e, "DATABASE_URL", 12) == 0))) {
            memcpy(name, e, n);
            name[n] = '\0';
            unsetenv(name); /* environ shifts down: look at index i again */
            continue;
        }
        i++;
    }
}

/* retention: durations with days, 0 or forever for keeping everything,
 * the defaults when unset, and what is refused. */
static void test_retention(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        long events, messages, inbound;
        const char *err;
    } rows[] = {
        {"log_level: info\n", 30 * 86400L, 365 * 86400L, 90 * 86400L, NULL},
        {"retention: {events: 12h, messages: 2 weeks, inbound: 1 day 4h}\n", 12 * 3600L, 14 * 86400L,
         86400L + 4 * 3600L, NULL},
        {"retention: {events: forever, messages: 0}\n", 0, 0, 90 * 86400L, NULL},
        {"retention: {inbound: 3 business days}\n", 0, 0, 0,
         "f.yaml:1:22: 'inbound' must be in seconds, minutes, hours or days, not business days"},
        {"retention: {events: always}\n", 0, 0, 0, "f.yaml:1:21: 'events': expected a number in duration 'always' (or forever)"},
        {"retention: {event: 1d}\n", 0, 0, 0, "unknown key 'event' in retention (did you mean 'events'?)"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[400] = "";
        struct config *cfg = config_parse("f.yaml", rows[i].yaml, strlen(rows[i].yaml), err, sizeof err);
        if (rows[i].err) {
            if (cfg || !strstr(err, rows[i].err))
                fail_msg("row %zu: got error '%s', want '%s'", i, err, rows[i].err);
        } else if (!cfg) {
            fail_msg("row %zu: %s", i, err);
        } else if (cfg->retention_events != rows[i].events || cfg->retention_messages != rows[i].messages ||
                   cfg->retention_inbound != rows[i].inbound) {
            fail_msg("row %zu: got %ld %ld %ld", i, cfg->retention_events, cfg->retention_messages,
                     cfg->retention_inbound);
        }
        config_free(cfg);
    }
}

/* tracking: the bot window, each sending domain's tracking host, the
 * base of its links (the host, else public_url, else none), and what is
 * refused. */
static void test_tracking(void **state)
{
    (void)state;
    static const struct {
        const char *yaml;
        long bot_window;
        const char *alice, *bob; /* the bases of alice@acme.example's and bob@beta.example's links */
        const char *err;
    } rows[] = {
        {"log_level: info\n", 30, NULL, NULL, NULL},
        {"http: {public_url: \"https://go.example.com\", link_secret_env: S}\n"
         "tracking: {bot_window: 1m, domains: {acme.example: {tracking_domain: links.acme.example}}}\n",
         60, "https://links.acme.example", "https://go.example.com", NULL},
        {"http: {link_secret_env: S}\ntracking: {bot_window: 0s, domains: {ACME.example: {tracking_domain: t.acme.example}}}\n",
         0, "https://t.acme.example", NULL, NULL},
        {"tracking: {domains: {acme.example: {tracking_domain: t.acme.example}}}\n", 0, NULL, NULL,
         "tracking.domains needs a secret to sign the tracked links"},
        {"tracking: {domains: {acme.example: {tracking_domain: \"https://t.acme.example\"}}}\n", 0, NULL, NULL,
         "f.yaml:1:36: tracking_domain 'https://t.acme.example' of acme.example must be a host name such as "
         "links.acme.example (no scheme, no path)"},
        {"tracking: {domains: {acme.example: {}}}\n", 0, NULL, NULL, "tracking for acme.example needs 'tracking_domain'"},
        {"tracking: {domains: {acme.example: {tracking_host: x.acme.example}}}\n", 0, NULL, NULL,
         "unknown key 'tracking_host' in acme.example"},
        {"tracking: {bot_window: 2 days}\n", 0, NULL, NULL, "'bot_window' must be in seconds, minutes or hours"},
        {"tracking: {domains: [a]}\n", 0, NULL, NULL, "'tracking.domains' must map sending domains"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char err[400] = "", a[300], b[300];
        struct config *cfg = config_parse("f.yaml", rows[i].yaml, strlen(rows[i].yaml), err, sizeof err);
        if (rows[i].err) {
            if (cfg || !strstr(err, rows[i].err))
                fail_msg("row %zu: got error '%s', want '%s'", i, err, rows[i].err);
            config_free(cfg);
            continue;
        }
        if (!cfg)
            fail_msg("row %zu: %s", i, err);
        const char *ga = config_tracking_base(cfg, "alice@acme.example", a, sizeof a);
        const char *gb = config_tracking_base(cfg, "bob@beta.example", b, sizeof b);
        if (cfg->bot_window != rows[i].bot_window || (ga == NULL) != (rows[i].alice == NULL) ||
            (ga && strcmp(ga, rows[i].alice) != 0) || (gb == NULL) != (rows[i].bob == NULL) ||
            (gb && strcmp(gb, rows[i].bob) != 0))
            fail_msg("row %zu: got %ld '%s' '%s'", i, cfg->bot_window, ga ? ga : "(null)", gb ? gb : "(null)");
        config_free(cfg);
    }
}

int main(void)
{
    clear_callers_settings();
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_expand),
        cmocka_unit_test(test_errors),
        cmocka_unit_test(test_values_and_precedence),
        cmocka_unit_test(test_imap_auth),
        cmocka_unit_test(test_redact),
        cmocka_unit_test(test_conninfo_redact),
        cmocka_unit_test(test_listen),
        cmocka_unit_test(test_retention),
        cmocka_unit_test(test_tracking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
