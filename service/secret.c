/* secret: reading account passwords from the environment or a file, for
 * the parts that log in as an account. It owns nothing past the call: the
 * caller keeps (and wipes) the copy. It does not know protocols or log. */
#include "secret.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static char *read_file(const char *path, const char *who, char *err, size_t errlen)
{
    FILE *f = fopen(path, "r");
    if (!f) {
        snprintf(err, errlen, "account %s: cannot read password_file %s: %s", who, path, strerror(errno));
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
        *out = read_file(a->password_file, a->email, err, errlen);
        return *out ? 0 : -ENOENT; /* (out of memory reads the same: rare, and said in err) */
    }
    snprintf(err, errlen, "account %s needs password_env or password_file (or, for SMTP only, auth: none)",
             a->email);
    return -EINVAL;
}

void secret_free(char *s)
{
    if (!s)
        return;
    memset(s, 0, strlen(s));
    free(s);
}
