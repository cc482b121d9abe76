/* secret: an account's password, read from where the configuration says
 * it is (password_env: an environment variable; password_file: the first
 * line of a file). Used by every part that logs in as an account (the
 * SMTP pool, the mailbox watcher). The secret is never logged and never
 * copied into an error message; callers wipe it with secret_free. */
#ifndef RELANCE_SECRET_H
#define RELANCE_SECRET_H

#include "config.h"

#include <stddef.h>

/* Sets *out to a malloc'd copy of account's password. Returns 0, or with
 * a reason in err that names the account and the variable or file, never
 * the secret: -ENOENT when the secret cannot be read now (an unset
 * variable, an unreadable file: serve pauses such an account), -EINVAL
 * when the configuration names neither, -ENOMEM. */
int secret_account_password(const struct config_account *account, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sets *out to a malloc'd copy of the token GET /metrics wants
 * (http.metrics_token_env or http.metrics_token_file), or NULL when none
 * is configured. Returns 0, or -ENOENT with a reason in err (never the
 * token) when one is configured and cannot be read, -ENOMEM. */
int secret_metrics_token(const struct config *cfg, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sets *out to a malloc'd copy of webhook w's signing secret (secret_env
 * or secret_file), checked to be a whsec_ secret. Returns 0 or, with a
 * reason that never holds the secret, -ENOENT (unset, unreadable or
 * malformed), -EINVAL, -ENOMEM. */
int secret_webhook(const struct config_webhook *w, char **out, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Sets *current and *previous to malloc'd copies of the secrets that sign
 * public links (http.link_secret_env or _file, and the previous pair),
 * each NULL when not configured. Returns 0, or -ENOENT with a reason in
 * err (never the secret) when one is configured and cannot be read or is
 * shorter than LINKTOKEN_SECRET_MIN, -ENOMEM; on failure both are NULL. */
int secret_link(const struct config *cfg, char **current, char **previous, char *err, size_t errlen)
    __attribute__((warn_unused_result));

/* Overwrites s with zeros and frees it; NULL is fine. */
void secret_free(char *s);

#endif
