/* accounts: sender accounts between the configuration and the database.
 * The configuration declares pools and accounts; relance_sync_accounts
 * (relance_sync_accounts, sql/functions/accounts.sql) makes the database match, at serve's start and
 * with `relance accounts sync`. Secrets never pass through here: the
 * database holds no password, only what caps and rotation need. */
#ifndef RELANCE_ACCOUNTS_H
#define RELANCE_ACCOUNTS_H

#include "config.h"

/* The pools and accounts of cfg as the JSON relance_sync_accounts takes:
 * malloc'd, the caller frees it; NULL when out of memory. now (serve's
 * clock) is given only by serve, whose environment holds the secrets:
 * then the JSON says which accounts are unavailable, and the sync pauses
 * those and resumes the ones paused for a secret serve now has. */
char *accounts_config_json(const struct config *cfg, const char *now);

/* The configured account with this address, or NULL. */
const struct config_account *accounts_find(const struct config *cfg, const char *email);

#endif
