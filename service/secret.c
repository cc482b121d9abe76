/* secret: reading account passwords from the environment or a file, for
 * the parts that log in as an account. It owns nothing past the call: the
 * caller keeps (and wipes) the copy. It does not know protocols or log. */
#include "secret.h"

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

int secret_account_password(const struct config_account *a, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (a->password_env) {
        const char *v = getenv(a->password_env);
        if (!v || !*v) {
            snprintf(err, errlen, "account %s: environment variable %s (password_env) is not set", a->email,
                     a->password_env);
            return -ENOENT;
        }
        *out = strdup(v);
        if (!*out) {
            snprintf(err, errlen, "out of memory");
            return -ENOMEM;
        }
        return 0;
    }
    if (a->password_file) {
        char who[400];
        snprintf(who, sizeof who, "account %s", a->email);
        *out = read_file(a->password_file, who, "password_file", err, errlen);
        return *out ? 0 : -ENOENT; /* (out of memory reads the same: rare, and said in err) */
    }
    snprintf(err, errlen, "account %s needs password_env or password_file (or, for SMTP only, auth: none)",
             a->email);
    return -EINVAL;
}

int secret_metrics_token(const struct config *cfg, char **out, char *err, size_t errlen)
{
    *out = NULL;
    if (cfg->metrics_token_env) {
        const char *v = getenv(cfg->metrics_token_env);
        if (!v || !*v) {
            snprintf(err, errlen, "environment variable %s (http.metrics_token_env) is not set",
                     cfg->metrics_token_env);
            return -ENOENT;
        }
        *out = strdup(v);
    } else if (cfg->metrics_token_file) {
        *out = read_file(cfg->metrics_token_file, "metrics", "http.metrics_token_file", err, errlen);
        if (*out && !**out) {
            secret_free(*out);
            *out = NULL;
            snprintf(err, errlen, "http.metrics_token_file %s is empty", cfg->metrics_token_file);
        }
        return *out ? 0 : -ENOENT;
    } else {
        return 0;
    }
    if (!*out) {
        snprintf(err, errlen, "out of memory");
        return -ENOMEM;
    }
    return 0;
}

void secret_free(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s));
    free(s);
}
