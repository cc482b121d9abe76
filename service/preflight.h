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

/* Checks each account's secrets (password_env set or password_file
 * readable, oauth2 variables), its smtp and imap URLs, tls and auth, and
 * each DKIM key file, as serve's set-up would. Returns how many problems
 * were reported through cb (0: serve would start). */
size_t preflight_check(const struct config *cfg, preflight_cb cb, void *arg);

#endif
