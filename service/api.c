/* api: routes of the HTTP API.
 *   GET /healthz  200 while the process is alive.
 *   GET /readyz   200 while the database is connected and migrated,
 *                 503 with {"status":"not ready","reason":...} otherwise.
 * Unknown paths get 404 and wrong methods 405, both with a JSON reason. */
#include "api.h"

#include "buf.h"
#include "json.h"
#include "ready.h"

#include <string.h>

static void readyz(struct http_request *req, const struct ready *ready)
{
    if (ready_db(ready)) {
        http_respond_json(req, 200, "{\"status\":\"ready\"}");
        return;
    }
    struct buf body = {0};
    buf_adds(&body, "{\"status\":\"not ready\",\"reason\":");
    json_add_string(&body, ready->reason);
    buf_addc(&body, '}');
    http_respond_json(req, 503, body.oom ? "{\"status\":\"not ready\"}" : body.p);
    buf_free(&body);
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
