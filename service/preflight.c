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
