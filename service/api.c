/* api: routes of the HTTP API.
 *   GET /healthz  200 while the process is alive.
 *   GET /readyz   200 while the database is connected and migrated,
 *                 503 with {"status":"not ready","reason":...} otherwise.
 * Unknown paths get 404 and wrong methods 405, both with a JSON reason. */
#include "api.h"

#include "ready.h"

#include <stdio.h>
#include <string.h>

void api_json_string(const char *s, char *buf, size_t len)
{
    size_t n = 0;
    if (len < 3) {
        if (len)
            buf[0] = '\0';
        return;
    }
    buf[n++] = '"';
    for (const unsigned char *p = (const unsigned char *)s; *p && n + 8 < len; p++) {
        if (*p == '"' || *p == '\\') {
            buf[n++] = '\\';
            buf[n++] = (char)*p;
        } else if (*p < 0x20) {
            n += (size_t)snprintf(buf + n, len - n, "\\u%04x", *p);
        } else {
            buf[n++] = (char)*p;
        }
    }
    buf[n++] = '"';
    buf[n] = '\0';
}

static void readyz(struct http_request *req, const struct ready *ready)
{
    if (ready_db(ready)) {
        http_respond_json(req, 200, "{\"status\":\"ready\"}");
        return;
    }
    char reason[400], body[512];
    api_json_string(ready->reason, reason, sizeof reason);
    snprintf(body, sizeof body, "{\"status\":\"not ready\",\"reason\":%s}", reason);
    http_respond_json(req, 503, body);
}

struct route {
    const char *method, *path;
    void (*run)(struct http_request *req, const struct ready *ready);
};

static void healthz(struct http_request *req, const struct ready *ready)
{
    (void)ready;
    http_respond_json(req, 200, "{\"status\":\"ok\"}");
}

static const struct route routes[] = {
    {"GET", "/healthz", healthz},
    {"GET", "/readyz", readyz},
};

void api_handle(struct http_request *req, void *arg)
{
    const struct ready *ready = arg;
    const char *path = http_request_path(req), *method = http_request_method(req);
    int path_known = 0;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        if (strcmp(routes[i].path, path) != 0)
            continue;
        path_known = 1;
        if (strcmp(routes[i].method, method) == 0 ||
            (strcmp(method, "HEAD") == 0 && strcmp(routes[i].method, "GET") == 0)) {
            routes[i].run(req, ready);
            return;
        }
    }
    if (path_known)
        http_respond_json(req, 405, "{\"error\":\"method not allowed\"}");
    else
        http_respond_json(req, 404, "{\"error\":\"no such endpoint\"}");
}
