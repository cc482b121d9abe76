/* webhook_url: the policy of webhook URLs (see webhook_url.h), on
 * libcurl's own URL parser so that what is checked is what libcurl will
 * connect to. */
#include "webhook_url.h"

#include "netaddr.h"

#include <curl/curl.h>
#include <stdio.h>
#include <string.h>
#include <strings.h>

static int host_listed(const char *host, char *const *allow)
{
    size_t n = strlen(host);
    if (n && host[n - 1] == '.')
        n--;
    for (size_t i = 0; allow && allow[i]; i++) {
        size_t m = strlen(allow[i]);
        if (m && allow[i][m - 1] == '.')
            m--;
        if (m == n && strncasecmp(host, allow[i], n) == 0)
            return 1;
    }
    return 0;
}

int webhook_url_check(const char *url, char *const *allow, int *listed, char *why, size_t len)
{
    int rc = -1;
    char *scheme = NULL, *host = NULL, *user = NULL, *password = NULL;
    CURLU *u = curl_url();
    if (!u) {
        snprintf(why, len, "out of memory");
        return -1;
    }
    if (strlen(url) > 2000) {
        snprintf(why, len, "the URL is longer than 2000 characters");
        goto done;
    }
    if (curl_url_set(u, CURLUPART_URL, url, 0) != CURLUE_OK || curl_url_get(u, CURLUPART_SCHEME, &scheme, 0)) {
        snprintf(why, len, "not an absolute http or https URL");
        goto done;
    }
    if (strcmp(scheme, "http") != 0 && strcmp(scheme, "https") != 0) {
        snprintf(why, len, "the scheme must be https (or http for a listed host), not %s", scheme);
        goto done;
    }
    if (curl_url_get(u, CURLUPART_HOST, &host, 0) != CURLUE_OK || !*host) {
        snprintf(why, len, "not an absolute http or https URL");
        goto done;
    }
    if (curl_url_get(u, CURLUPART_USER, &user, 0) == CURLUE_OK ||
        curl_url_get(u, CURLUPART_PASSWORD, &password, 0) == CURLUE_OK) {
        snprintf(why, len, "a user name or password in the URL is refused: it would show wherever the URL does");
        goto done;
    }
    /* an IPv6 literal comes back in brackets */
    char bare[256];
    size_t hl = strlen(host);
    if (hl >= sizeof bare) {
        snprintf(why, len, "the host name is too long");
        goto done;
    }
    if (host[0] == '[' && hl > 2 && host[hl - 1] == ']') {
        memcpy(bare, host + 1, hl - 2);
        bare[hl - 2] = '\0';
        char *zone = strchr(bare, '%');
        if (zone)
            *zone = '\0';
    } else {
        memcpy(bare, host, hl + 1);
    }
    int ok_listed = host_listed(bare, allow);
    if (!ok_listed && strcmp(scheme, "https") != 0) {
        snprintf(why, len, "http is allowed only for hosts listed in webhook_allow_insecure; %s is not", bare);
        goto done;
    }
    if (!ok_listed && netaddr_text_is_public(bare) == 0) {
        snprintf(why, len, "%s is not a public address: list it in webhook_allow_insecure to allow it", bare);
        goto done;
    }
    if (!ok_listed && (strcasecmp(bare, "localhost") == 0 || strcasecmp(bare, "localhost.") == 0)) {
        snprintf(why, len, "localhost is not a public address: list it in webhook_allow_insecure to allow it");
        goto done;
    }
    if (listed)
        *listed = ok_listed;
    rc = 0;
done:
    curl_free(scheme);
    curl_free(host);
    curl_free(user);
    curl_free(password);
    curl_url_cleanup(u);
    return rc;
}
