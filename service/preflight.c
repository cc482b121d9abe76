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

#include <errno.h>
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

/* Runs on account a every check serve's set-up makes of it (deciding
 * only which apply, as server.c's set-up does), calling on_fail with each
 * one's code and message: -ENOENT for a secret that cannot be read now. */
static void account_checks(const struct config *cfg, const struct config_account *a,
                           void (*on_fail)(void *arg, int rc, const char *msg), void *arg)
{
    char err[512];
    int rc;
    /* oauth2_new reads the tokens of every auth: xoauth2 account, whatever
     * the transport */
    if (is_xoauth2(a->auth) && (rc = oauth2_account_check(a, err, sizeof err)) < 0)
        on_fail(arg, rc, err);
    if (strcmp(cfg->transport, "smtp") == 0 && (rc = sender_account_check(cfg, a, err, sizeof err)) < 0)
        on_fail(arg, rc, err);
    if (watcher_wanted(cfg) && a->imap) {
        struct imap_account x;
        char *password = NULL;
        if ((rc = watcher_imap_account(cfg, a, &x, &password, err, sizeof err)) < 0)
            on_fail(arg, rc, err);
        secret_free(password);
    }
}

/* The first secret an account's checks found missing. */
struct missing {
    char why[512];
};

static void on_missing(void *arg, int rc, const char *msg)
{
    struct missing *m = arg;
    if (rc == -ENOENT && !m->why[0])
        snprintf(m->why, sizeof m->why, "%s", msg);
}

size_t preflight_mark_unavailable(struct config *cfg, preflight_cb cb, void *arg)
{
    size_t n = 0;
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            struct config_account *a = &cfg->pools[i].accounts[k];
            struct missing m = {""};
            if (!a->unavailable)
                account_checks(cfg, a, on_missing, &m);
            if (!m.why[0])
                continue;
            const char *why = m.why;
            /* the pause reason names the account already: keep the rest */
            size_t skip = strlen("account ") + strlen(a->email) + 2;
            const char *reason = strncmp(why, "account ", 8) == 0 && strlen(why) > skip ? why + skip : why;
            a->unavailable = strdup(reason);
            cb(arg, why);
            n++;
        }
    return n;
}

static void on_problem(void *arg, int rc, const char *msg)
{
    (void)rc;
    report(arg, msg);
}

size_t preflight_check(const struct config *cfg, preflight_cb cb, void *arg)
{
    struct report r = {.cb = cb, .arg = arg};
    char err[512];
    for (size_t i = 0; i < cfg->n_pools; i++)
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            const struct config_account *a = &cfg->pools[i].accounts[k];
            r.last[0] = '\0';
            if (!a->unavailable) /* else serve pauses it: preflight_mark_unavailable said why */
                account_checks(cfg, a, on_problem, &r);
        }
    for (size_t i = 0; i < cfg->n_dkim; i++) {
        r.last[0] = '\0';
        if (sender_dkim_check(&cfg->dkim[i], err, sizeof err) < 0)
            report(&r, err);
    }
    /* a webhook that cannot sign would send what no consumer accepts */
    for (size_t i = 0; i < cfg->n_webhooks; i++) {
        char *secret = NULL;
        r.last[0] = '\0';
        if (secret_webhook(&cfg->webhooks[i], &secret, err, sizeof err) < 0)
            report(&r, err);
        secret_free(secret);
    }
    /* links that nobody can open would be worse than none */
    char *cur = NULL, *prev = NULL;
    r.last[0] = '\0';
    if (secret_link(cfg, &cur, &prev, err, sizeof err) < 0)
        report(&r, err);
    secret_free(cur);
    secret_free(prev);
    return r.n;
}
