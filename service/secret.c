/* secret: reading account passwords and webhook secrets from the
 * environment or a file, for the parts that log in as an account or sign
 * as an endpoint. It owns nothing past the call: the
 * caller keeps (and wipes) the copy. It does not know protocols or log. */
#include "secret.h"

#include "linktoken.h"
#include "whsig.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* who and key name the secret in err: "account alice@...", "password_file". */
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
 * file file, named in messages by their keys (env_key, file_key).
 * -EINVAL when neither is given. */
static int read_secret(const char *who, const char *env_key, const char *env, const char *file_key,
                       const char *file, char **out, char *err, size_t errlen)
{
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
    int rc = read_secret(who, "password_env", a->password_env, "password_file", a->password_file, out, err,
                         errlen);
    if (rc == -EINVAL)
        snprintf(err, errlen, "account %s needs password_env or password_file (or, for SMTP only, auth: none)",
                 a->email);
    return rc;
}

int secret_metrics_token(const struct config *cfg, char **out, char *err, size_t errlen)
{
    int rc = read_secret("metrics", "http.metrics_token_env", cfg->metrics_token_env, "http.metrics_token_file",
                         cfg->metrics_token_file, out, err, errlen);
    if (rc == 0 && !**out) { /* an empty token would let anyone in */
        secret_free(*out);
        *out = NULL;
        snprintf(err, errlen, "http.metrics_token_file %s is empty", cfg->metrics_token_file);
        return -ENOENT;
    }
    return rc == -EINVAL ? 0 : rc; /* none configured: /metrics is open */
}

int secret_webhook(const struct config_webhook *w, char **out, char *err, size_t errlen)
{
    char who[300];
    snprintf(who, sizeof who, "webhook %s", w->name);
    int rc = read_secret(who, "secret_env", w->secret_env, "secret_file", w->secret_file, out, err, errlen);
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

/* One link secret, or NULL when neither key is set. */
static int link_secret(const char *env_key, const char *env, const char *file_key, const char *file, char **out,
                       char *err, size_t errlen)
{
    int rc = read_secret("link secret", env_key, env, file_key, file, out, err, errlen);
    if (rc == -EINVAL)
        return 0;
    if (rc == 0 && !linktoken_secret_ok(*out)) {
        snprintf(err, errlen, "link secret: %s %s holds fewer than %d characters (e.g. 'openssl rand -hex 32')",
                 env ? env_key : file_key, env ? env : file, LINKTOKEN_SECRET_MIN);
        secret_free(*out);
        *out = NULL;
        rc = -ENOENT;
    }
    return rc;
}

int secret_link(const struct config *cfg, char **current, char **previous, char *err, size_t errlen)
{
    *current = *previous = NULL;
    int rc = link_secret("http.link_secret_env", cfg->link_secret_env, "http.link_secret_file", cfg->link_secret_file,
                         current, err, errlen);
    if (rc == 0)
        rc = link_secret("http.link_secret_previous_env", cfg->link_secret_previous_env,
                         "http.link_secret_previous_file", cfg->link_secret_previous_file, previous, err, errlen);
    if (rc < 0) {
        secret_free(*current);
        *current = NULL;
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
