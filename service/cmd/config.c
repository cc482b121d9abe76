/* cmd/config: `relance config`, which checks the configuration (file,
 * then environment) and prints the settings relance will use with every
 * secret left out: the database connection string as libpq reads it with
 * its password as ***, each account's logins by kind, never a password.
 * Then it runs serve's start-up checks (preflight.c: secrets, URLs, DKIM
 * keys) and lists every problem on stderr, so one run shows all there is
 * to fix, saying of a secret that cannot be read that serve would pause
 * that account rather than refuse to start. Reading and checking the file is config.c's; main loads it. */
#include "cli.h"
#include "duration.h"
#include "preflight.h"

#include <stdint.h>
#include <stdio.h>

static void on_problem(void *arg, const char *problem)
{
    (void)arg;
    fprintf(stderr, "relance: config error: %s\n", problem);
}

static void on_unavailable(void *arg, const char *problem)
{
    (void)arg;
    fprintf(stderr, "relance: config error: %s (serve pauses this account until it can be read)\n", problem);
}

/* A retention as the file would say it: "30 days", "12h", "forever". */
static void keep_format(long seconds, char *buf, size_t len)
{
    if (seconds == 0) {
        snprintf(buf, len, "forever");
        return;
    }
    struct duration d = {.seconds = seconds % 86400, .days = (int32_t)(seconds / 86400)};
    duration_format(&d, buf, len);
}

static int run(struct cli *cli, const struct cli_args *args)
{
    (void)args;
    struct config *cfg = cli->config;
    char db[512];
    config_conninfo_redact(cfg->database_url, db, sizeof db);
    printf("file: %s\n", cfg->path ? cfg->path : "(none: defaults and environment)");
    printf("database_url: %s\n", *db ? db : "(libpq defaults)");
    printf("http.listen: %s\n", cfg->http_listen);
    printf("http.metrics_listen: %s\n", cfg->metrics_listen ? cfg->metrics_listen : "(on http.listen)");
    if (cfg->metrics_token_env)
        printf("http.metrics_token: from the environment variable %s\n", cfg->metrics_token_env);
    else if (cfg->metrics_token_file)
        printf("http.metrics_token: from the file %s\n", cfg->metrics_token_file);
    else
        printf("http.metrics_token: none (GET /metrics is open to whoever reaches it)\n");
    if (cfg->public_url) {
        printf("http.public_url: %s (one-click unsubscribe links)\n", cfg->public_url);
        printf("http.public_listen: %s\n", cfg->public_listen ? cfg->public_listen : "(on http.listen)");
        printf("http.link_secret: from the %s %s%s\n", cfg->link_secret_env ? "environment variable" : "file",
               cfg->link_secret_env ? cfg->link_secret_env : cfg->link_secret_file,
               cfg->link_secret_previous_env || cfg->link_secret_previous_file ? ", and the previous one" : "");
    } else {
        printf("http.public_url: none (List-Unsubscribe: mailto: only)\n");
    }
    for (size_t i = 0; i < cfg->n_tracking_domains; i++)
        printf("tracking.domains.%s: tracked links through https://%s\n", cfg->tracking_domains[i].domain,
               cfg->tracking_domains[i].tracking_domain);
    printf("tracking.bot_window: %lds\n", cfg->bot_window);
    printf("http.api_rate_limit: %ld requests a second a key, bursts of %ld (per replica)\n", cfg->api_rate_limit,
           cfg->api_rate_burst);
    printf("transport: %s\n", cfg->transport);
    printf("shutdown_grace: %lds (SIGTERM to exit)\n", cfg->shutdown_grace);
    char ev[64], msg[64], in[64];
    keep_format(cfg->retention_events, ev, sizeof ev);
    keep_format(cfg->retention_messages, msg, sizeof msg);
    keep_format(cfg->retention_inbound, in, sizeof in);
    printf("retention: events %s, messages %s, inbound %s\n", ev, msg, in);
    for (size_t i = 0; i < cfg->n_pools; i++) {
        printf("pool %s: %zu account%s%s\n", cfg->pools[i].name, cfg->pools[i].n_accounts,
               cfg->pools[i].n_accounts == 1 ? "" : "s", cfg->pools[i].bulk ? " (bulk)" : "");
        for (size_t j = 0; j < cfg->pools[i].n_accounts; j++) {
            /* the two logins apart: auth: none no longer implies the
             * mailbox has none */
            const struct config_account *a = &cfg->pools[i].accounts[j];
            printf("  %s (smtp auth: %s", a->email, a->auth ? a->auth : "password");
            if (a->imap)
                printf(", imap auth: %s", a->imap_auth ? a->imap_auth : "password");
            printf(")\n");
        }
    }
    for (size_t i = 0; i < cfg->n_dkim; i++)
        printf("dkim %s: selector %s\n", cfg->dkim[i].domain, cfg->dkim[i].selector);
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        const struct config_webhook *w = &cfg->webhooks[i];
        char url[600];
        config_url_redact(w->url, url, sizeof url);
        printf("webhook %s: %s (", w->name, url);
        for (size_t k = 0; w->types && w->types[k]; k++)
            printf("%s%s", k ? ", " : "", w->types[k]);
        printf("%s; secret from %s %s)\n", w->types ? "" : "every event type", w->secret_env ? "variable" : "file",
               w->secret_env ? w->secret_env : w->secret_file);
    }
    printf("webhook delivery: %ld requests in flight per endpoint and replica, %lds timeout, %lds to connect\n",
           cfg->webhook_max_in_flight, cfg->webhook_timeout, cfg->webhook_connect_timeout);
    for (size_t i = 0; cfg->webhook_allow_insecure && cfg->webhook_allow_insecure[i]; i++)
        printf("webhook_allow_insecure: %s (http and private addresses allowed)\n", cfg->webhook_allow_insecure[i]);
    fflush(stdout); /* the settings before the problems, when both go to one place */
    if (!cfg->public_url)
        fprintf(stderr, "relance: config warning: http.public_url is not set: messages carry a mailto: "
                        "List-Unsubscribe only, which mail clients do not offer as one-click unsubscribe "
                        "(RFC 8058; Gmail and Yahoo require it of bulk senders)\n");
    size_t paused = preflight_mark_unavailable(cfg, on_unavailable, NULL);
    size_t n = preflight_check(cfg, on_problem, NULL);
    if (n) {
        fprintf(stderr, "relance: %zu problem%s; serve would refuse to start\n", n + paused,
                n + paused == 1 ? "" : "s");
        return CLI_ERROR;
    }
    if (paused) {
        fprintf(stderr, "relance: %zu problem%s; serve would start with %s paused\n", paused,
                paused == 1 ? "" : "s", paused == 1 ? "that account" : "those accounts");
        return CLI_ERROR;
    }
    return CLI_OK;
}

const struct cli_command cmd_config = {
    .name = "config",
    .summary = "check the configuration file and print what relance will use",
    .about = "Reads the configuration (file, then environment) and prints the settings\n"
             "relance will use, with secrets left out, then checks what serve checks at\n"
             "start (each account's password or oauth2 variables, its smtp and imap URLs,\n"
             "each DKIM key file) and lists every problem. Exit 1 on any error.\n",
    .run = run,
};
