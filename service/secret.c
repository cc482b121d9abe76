/* secret: reading account passwords and webhook secrets from the
 * environment or a file, for the parts that log in as an account or sign
 * as an endpoint. It owns nothing past the call: the
 * caller keeps (and wipes) the copy. It does not know protocols or log. */
#include "secret.h"

#include "whsig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, const char *who, const char *key, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "%s: cannot read %s %s: %s", who, key, path, strerror(errno));
        return NULL;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    buf[strcspn(buf, "\r\n")] = '\0';
    char *s = strdup(buf);
    memset(buf, 0, sizeof buf);
    if (!s)
        snprintf(err, errlen, "out of memory");
    return s;
}

/* The secret of who (e.g. "account a@x") from the variable env or the
 * file file, named in messages by their keys (kind "password": keys
 * password_env and password_file). -EINVAL when neither is given. */
static int read_secret(const char *who, const char *kind, const char *env, const char *file, char **out, char *err,
                       size_t errlen)
{
    char env_key[32], file_key[32];
    snprintf(env_key, sizeof env_key, "%s_env", kind);
    snprintf(file_key, sizeof file_key, "%s_file", kind);
    *out = NULL;
    if (env) {
        const char *v = getenv(env);
        if (!v || !*v) {
            snprintf(err, errlen, "%s: environment variable %s (%s) is not set", who, env, env_key);
            return -ENOENT;
        }
        *out = strdup(v);
        if (!*out) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        return 0;
    }
    if (file) {
        *out = read_file(file, who, file_key, err, errlen);
        return *out ? 0 : -ENOENT; /* (out of memory reads the same: rare, and said in err) */
    }
    return -EINVAL;
}

int secret_account_password(const struct config_account *a, char **out, char *err, size_t errlen)
{
    char who[300];
    snprintf(who, sizeof who, "account %s", a->email);
    int rc = read_secret(who, "password", a->password_env, a->password_file, out, err, errlen);
    if (rc == -EINVAL)
        snprintf(err, errlen, "account %s needs password_env or password_file (or, for SMTP only, auth: none)",
                 a->email);
    return rc;
}

int secret_webhook(const struct config_webhook *w, char **out, char *err, size_t errlen)
{
    char who[300];
    snprintf(who, sizeof who, "webhook %s", w->name);
    int rc = read_secret(who, "secret", w->secret_env, w->secret_file, out, err, errlen);
    if (rc == -EINVAL)
        snprintf(err, errlen, "webhook %s needs secret_env or secret_file", w->name);
    if (rc == 0 && !whsig_secret_valid(*out)) {
        snprintf(err, errlen, "webhook %s: its secret is not a Standard Webhooks secret (whsec_ and the base64 of "
                              "24 to 64 random bytes, e.g. from 'relance webhooks secret')", w->name);
        secret_free(*out);
        *out = NULL;
        rc = -ENOENT;
    }
    return rc;
}

void secret_free(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s));
    free(s);
}
