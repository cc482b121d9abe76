/* preflight: runs the set-up checks of the sender, the mailbox watcher and
 * the OAuth2 token keeper on a loaded configuration without starting any
 * of them, and reports every problem instead of stopping at the first.
 * It decides only which checks apply (as server.c's set-up does: no SMTP
 * channel under transport capture, no watcher without it); what each
 * check refuses is the owning part's, so the two cannot drift apart. */
#include "preflight.h"

#include "imap.h"
#include "oauth2.h"
#include "secret.h"
#include "sender.h"
#include "watcher.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct report {
    preflight_cb cb;
    void *arg;
    size_t n;
    char last[512]; /* an account's SMTP and IMAP logins share a password:
                     * its absence is said once */
};

static void report(struct report *r, const char *problem)
{
    if (strcmp(problem, r->last) == 0)
        return;
    snprintf(r->last, sizeof r->last, "%s", problem);
    r->cb(r->arg, problem);
    r->n++;
}

static int is_xoauth2(const char *login)
{
    return login && strcmp(login, "xoauth2") == 0;
}

/* The variable named by an oauth2 setting, when set in the
 * configuration but empty or unset in the environment. */
static int env_missing(const struct config_account *a, const char *key, const char *var, char *why, size_t len)
{
    const char *v = var ? getenv(var) : NULL;
    if (!var || (v && *v))
        return 0;
    snprintf(why, len, "account %s: environment variable %s (%s) is not set", a->email, var, key);
    return 1;
}

/* 1 with the reason in why when a secret the account logs in with is
 * configured but cannot be read now. Which logins need one is decided as
 * in preflight_check: SMTP under transport smtp, IMAP where watched, the
 * OAuth2 token keeper for every auth: xoauth2 account. */
static int secret_missing(const struct config *cfg, const struct config_account *a, char *why, size_t len)
{
    int smtp = strcmp(cfg->transport, "smtp") == 0, watched = watcher_wanted(cfg) && a->imap;
    const char *imap_login = a->imap_auth ? a->imap_auth : a->auth;
    int password = (smtp && (!a->auth || strcmp(a->auth, "password") == 0)) ||
                   (watched && (!imap_login || strcmp(imap_login, "password") == 0 || strcmp(imap_login, "login") == 0));
    if (password && (a->password_env || a->password_file)) {
        char *secret = NULL;
        int rc = secret_account_password(a, &secret, why, len);
        secret_free(secret);
        if (rc < 0)
            return 1;
    }
    if (is_xoauth2(a->auth))
        return env_missing(a, "oauth2.refresh_token_env", a->oauth2.refresh_token_env, why, len) ||
               env_missing(a, "oauth2.client_secret_env", a->oauth2.client_secret_env, why, len);
    return 0;
}

size_t preflight_mark_unavailable(struct config *cfg, preflight_cb cb, void *arg)
{
    size_t n = 0;
    char why[512];
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            struct config_account *a = &cfg->pools[i].accounts[k];
            if (a->unavailable || !secret_missing(cfg, a, why, sizeof why))
                continue;
            /* the pause reason names the account already: keep the rest */
            size_t skip = strlen("account ") + strlen(a->email) + 2;
            const char *reason = strncmp(why, "account ", 8) == 0 && strlen(why) > skip ? why + skip : why;
            a->unavailable = strdup(reason);
            cb(arg, why);
            n++;
        }
    return n;
}

size_t preflight_check(const struct config *cfg, preflight_cb cb, void *arg)
{
    struct report r = {.cb = cb, .arg = arg};
    char err[512];
    int smtp = strcmp(cfg->transport, "smtp") == 0;
    int watch = watcher_wanted(cfg);
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            const struct config_account *a = &cfg->pools[i].accounts[k];
            r.last[0] = '\0';
            if (a->unavailable)
                continue; /* serve pauses it: preflight_mark_unavailable said why */
            /* oauth2_new reads the tokens of every auth: xoauth2 account,
             * whatever the transport */
            if (is_xoauth2(a->auth) && oauth2_account_check(a, err, sizeof err) < 0)
                report(&r, err);
            if (smtp && sender_account_check(cfg, a, err, sizeof err) < 0)
                report(&r, err);
            if (watch && a->imap) {
                struct imap_account x;
                char *password = NULL;
                if (watcher_imap_account(cfg, a, &x, &password, err, sizeof err) < 0)
                    report(&r, err);
                secret_free(password);
            }
        }
    for (size_t i = 0; i < cfg->n_dkim; i++) {
        r.last[0] = '\0';
        if (sender_dkim_check(&cfg->dkim[i], err, sizeof err) < 0)
            report(&r, err);
    }
    return r.n;
}
