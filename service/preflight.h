/* preflight: every check `relance serve` makes of a loaded configuration
 * before it starts, gathered in one pass so `relance config` can report
 * them all at once and serve can refuse with the whole list. The checks
 * themselves stay with the parts that set up from the configuration
 * (sender, watcher, oauth2); this only runs them on every account and key
 * that serve would set up. */
#ifndef RELANCE_PREFLIGHT_H
#define RELANCE_PREFLIGHT_H

#include "config.h"

#include <stddef.h>

/* Called once per problem with a one-line message naming the account or
 * domain and the setting, never a secret's value. */
typedef void (*preflight_cb)(void *arg, const char *problem);

/* Marks each account whose secret cannot be read now (password_env
 * unset, password_file unreadable, an oauth2 variable unset) as
 * unavailable, with the reason, and calls cb with the reason for each:
 * serve starts without such an account and pauses it ('missing secret:
 * ...') rather than stop every other. A secret the configuration does not
 * say where to find is a configuration error, left to preflight_check.
 * Returns how many were marked. */
size_t preflight_mark_unavailable(struct config *cfg, preflight_cb cb, void *arg);

/* Checks each account's secrets (password_env set or password_file
 * readable, oauth2 variables), its smtp and imap URLs, tls and auth, and
 * each DKIM key file, as serve's set-up would; an account marked
 * unavailable is not checked again. Returns how many problems were
 * reported through cb (0: serve would start). */
size_t preflight_check(const struct config *cfg, preflight_cb cb, void *arg);

#endif
