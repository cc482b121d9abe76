/* cmd/healthcheck: `relance healthcheck [--path P] [--timeout S]`, the
 * probe of a container image that has no curl: one GET of a path of the
 * running `relance serve` of this host, at the address http.listen gives
 * (0.0.0.0 and :: mean this host's loopback), and exit 0 on a 2xx answer,
 * 1 otherwise with one line saying what came back. It owns nothing of the
 * service and starts no loop: a blocking libcurl transfer, bounded by the
 * timeout, is all a Dockerfile's HEALTHCHECK needs. */
#include "cli.h"

#include <curl/curl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

enum { OPT_PATH, OPT_TIMEOUT };

static const struct cli_option options[] = {
    [OPT_PATH] = {"path", 0, "PATH", "what to ask for (default /healthz; /readyz for readiness)", 0, 0},
    [OPT_TIMEOUT] = {"timeout", 0, "SECONDS", "give up after this long (default 5)", 0, 0},
    {0},
};

/* The answer's body is not needed: the status says it all. */
static size_t discard(char *p, size_t size, size_t n, void *arg)
{
    (void)p;
    (void)arg;
    return size * n;
}

/* http://HOST:PORT of http.listen, with a wildcard address replaced by
 * the loopback the service also listens on. 0, or -1 when it does not fit. */
static int base_url(const char *listen, char *out, size_t len)
{
    char host[256];
    int port;
    if (config_split_listen(listen, host, sizeof host, &port) < 0)
        return -1;
    const char *h = host;
    if (strcmp(host, "0.0.0.0") == 0 || !*host)
        h = "127.0.0.1";
    else if (strcmp(host, "::") == 0)
        h = "::1";
    int v6 = strchr(h, ':') != NULL; /* an IPv6 literal goes in brackets */
    int n = snprintf(out, len, "http://%s%s%s:%d", v6 ? "[" : "", h, v6 ? "]" : "", port);
    return n > 0 && (size_t)n < len ? 0 : -1;
}

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *path = cli_args_value(args, OPT_PATH);
    const char *timeout = cli_args_value(args, OPT_TIMEOUT);
    if (!path)
        path = "/healthz";
    if (*path != '/' || strcspn(path, " \t\r\n") != strlen(path))
        return cli_fail(CLI_USAGE, "healthcheck: --path must start with '/' and hold no space, not '%s'", path);
    long secs = 5;
    if (timeout) {
        char *end = NULL;
        secs = strtol(timeout, &end, 10);
        if (!*timeout || *end || secs < 1 || secs > 300)
            return cli_fail(CLI_USAGE, "healthcheck: --timeout takes seconds from 1 to 300, not '%s'", timeout);
    }
    char base[300], url[900];
    if (base_url(cli->config->http_listen, base, sizeof base) < 0)
        return cli_fail(CLI_ERROR, "healthcheck: http.listen '%s' is not host:port", cli->config->http_listen);
    int n = snprintf(url, sizeof url, "%s%s", base, path);
    if (n < 0 || (size_t)n >= sizeof url)
        return cli_fail(CLI_USAGE, "healthcheck: --path is too long");
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK)
        return cli_fail(CLI_ERROR, "healthcheck: cannot initialise libcurl");
    CURL *h = curl_easy_init();
    if (!h) {
        curl_global_cleanup();
        return cli_fail(CLI_ERROR, "healthcheck: out of memory");
    }
    char err[CURL_ERROR_SIZE] = "";
    curl_easy_setopt(h, CURLOPT_URL, url);
    curl_easy_setopt(h, CURLOPT_PROTOCOLS_STR, "http");
    curl_easy_setopt(h, CURLOPT_TIMEOUT, secs);
    curl_easy_setopt(h, CURLOPT_NOSIGNAL, 1L);
    /* the probe's own address: no proxy of the environment in between */
    curl_easy_setopt(h, CURLOPT_NOPROXY, "*");
    curl_easy_setopt(h, CURLOPT_WRITEFUNCTION, discard);
    curl_easy_setopt(h, CURLOPT_ERRORBUFFER, err);
    CURLcode rc = curl_easy_perform(h);
    long status = 0;
    curl_easy_getinfo(h, CURLINFO_RESPONSE_CODE, &status);
    curl_easy_cleanup(h);
    curl_global_cleanup();
    if (rc != CURLE_OK)
        return cli_fail(CLI_ERROR, "healthcheck: %s: %s", url, *err ? err : curl_easy_strerror(rc));
    if (status < 200 || status > 299)
        return cli_fail(CLI_ERROR, "healthcheck: %s answered %ld", url, status);
    printf("%s: %ld\n", url, status);
    return CLI_OK;
}

const struct cli_command cmd_healthcheck = {
    .name = "healthcheck",
    .summary = "ask the relance serve of this host for /healthz (or --path): exit 0 on 2xx",
    .about = "One GET of http://HOST:PORT/healthz, where http.listen (RELANCE_HTTP_LISTEN)\n"
             "says HOST:PORT (0.0.0.0 and :: mean the loopback): exit 0 when serve answers\n"
             "2xx, 1 otherwise, with what came back. For a container's HEALTHCHECK (the\n"
             "image has no curl); --path /readyz asks for readiness instead.\n",
    .options = options,
    .run = run,
};
