/* http: libmicrohttpd driven by libuv. It owns the daemon, the loop
 * handles that drive it and the request lifetimes; routing and what the
 * answers say belong to api.c. */
#include "http.h"

#include "config.h"
#include "log.h"

#include <arpa/inet.h>
#include <microhttpd.h>
#include <netdb.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

struct http {
    uv_loop_t *loop;
    struct MHD_Daemon *daemon;
    uv_poll_t poll;
    uv_timer_t timer;
    http_handler handler;
    void *arg;
    int port;
    int closing, pending_closes;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

struct http_request {
    struct http *http;
    struct MHD_Connection *conn;
    char *method, *path;
    char *body;
    size_t body_len;
    int too_large;
    int dispatched;     /* handler called */
    int suspended;
    int gone;           /* MHD finished the connection before we answered */
    struct MHD_Response *response;
    int status;
};

static void schedule(struct http *http);

static void run(struct http *http)
{
    if (http->closing)
        return;
    MHD_run(http->daemon);
    schedule(http);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    (void)status;
    (void)events;
    run(h->data);
}

static void on_timer(uv_timer_t *t)
{
    run(t->data);
}

/* Arms the timer for libmicrohttpd's next timeout (idle connections). */
static void schedule(struct http *http)
{
    MHD_UNSIGNED_LONG_LONG ms;
    if (MHD_get_timeout(http->daemon, &ms) == MHD_YES)
        uv_timer_start(&http->timer, on_timer, ms, 0);
    else
        uv_timer_stop(&http->timer);
}

static void request_free(struct http_request *req)
{
    if (req->response)
        MHD_destroy_response(req->response);
    free(req->method);
    free(req->path);
    free(req->body);
    free(req);
}

static enum MHD_Result queue(struct http_request *req)
{
    enum MHD_Result r = MHD_queue_response(req->conn, (unsigned)req->status, req->response);
    MHD_destroy_response(req->response);
    req->response = NULL;
    return r;
}

static enum MHD_Result on_access(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                 const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    struct http *http = cls;
    struct http_request *req = *con_cls;
    (void)version;
    if (!req) {
        req = calloc(1, sizeof *req);
        if (!req)
            return MHD_NO;
        req->http = http;
        req->conn = conn;
        req->method = strdup(method);
        req->path = strdup(url);
        if (!req->method || !req->path) {
            request_free(req);
            return MHD_NO;
        }
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size) {
        if (!req->too_large && req->body_len + *upload_size <= HTTP_MAX_BODY) {
            char *grown = realloc(req->body, req->body_len + *upload_size + 1);
            if (!grown)
                return MHD_NO;
            req->body = grown;
            memcpy(req->body + req->body_len, upload, *upload_size);
            req->body_len += *upload_size;
            req->body[req->body_len] = '\0';
        } else {
            req->too_large = 1;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->response)
        return queue(req);
    if (req->dispatched)
        return MHD_YES; /* still waiting for the handler */
    req->dispatched = 1;
    if (req->too_large) {
        http_respond_json(req, 413, "{\"error\":\"request body too large\"}");
    } else {
        http->handler(req, http->arg);
    }
    if (req->response)
        return queue(req);
    MHD_suspend_connection(conn);
    req->suspended = 1;
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    (void)cls;
    (void)conn;
    (void)code;
    struct http_request *req = *con_cls;
    if (!req)
        return;
    *con_cls = NULL;
    if (req->dispatched && req->status == 0)
        req->gone = 1; /* the handler will still answer; free it then */
    else
        request_free(req);
}

void http_respond(struct http_request *req, int status, const char *content_type, const char *body,
                  size_t len)
{
    if (req->gone) {
        request_free(req);
        return;
    }
    req->status = status;
    req->response = MHD_create_response_from_buffer(len, (void *)body, MHD_RESPMEM_MUST_COPY);
    if (req->response) {
        MHD_add_response_header(req->response, MHD_HTTP_HEADER_CONTENT_TYPE, content_type);
        MHD_add_response_header(req->response, MHD_HTTP_HEADER_CACHE_CONTROL, "no-store");
    }
    if (req->suspended) {
        req->suspended = 0;
        MHD_resume_connection(req->conn);
        /* let libmicrohttpd pick it up on the next turn of the loop */
        uv_timer_start(&req->http->timer, on_timer, 0, 0);
    }
}

void http_respond_json(struct http_request *req, int status, const char *json)
{
    http_respond(req, status, "application/json", json, strlen(json));
}

const char *http_request_method(const struct http_request *req)
{
    return req->method;
}

const char *http_request_path(const struct http_request *req)
{
    return req->path;
}

const char *http_request_arg(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_GET_ARGUMENT_KIND, name);
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_body(const struct http_request *req, size_t *len)
{
    *len = req->body_len;
    return req->body ? req->body : "";
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_event(LOG_DEBUG, "http", msg, NULL);
}

struct http *http_new(uv_loop_t *loop, const char *listen, http_handler handler, void *arg, char *err,
                      size_t errlen)
{
    char host[256];
    int port;
    struct addrinfo hints = {0}, *ai = NULL;
    struct http *http = NULL;
    char portstr[16];

    if (config_split_listen(listen, host, sizeof host, &port) < 0) {
        snprintf(err, errlen, "listen address '%s' must be host:port", listen);
        return NULL;
    }
    snprintf(portstr, sizeof portstr, "%d", port);
    hints.ai_family = AF_UNSPEC;
    hints.ai_socktype = SOCK_STREAM;
    hints.ai_flags = AI_PASSIVE;
    int gai = getaddrinfo(host, portstr, &hints, &ai);
    if (gai != 0) {
        snprintf(err, errlen, "cannot resolve listen address '%s': %s", listen, gai_strerror(gai));
        return NULL;
    }
    http = calloc(1, sizeof *http);
    if (!http)
        goto fail;
    http->loop = loop;
    http->handler = handler;
    http->arg = arg;
    unsigned flags = MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG;
    if (ai->ai_family == AF_INET6)
        flags |= MHD_USE_IPv6;
    http->daemon = MHD_start_daemon(flags, (uint16_t)port, NULL, NULL, on_access, http,
                                    MHD_OPTION_SOCK_ADDR, ai->ai_addr,
                                    MHD_OPTION_NOTIFY_COMPLETED, on_completed, http,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)30,
                                    MHD_OPTION_CONNECTION_LIMIT, (unsigned)1000,
                                    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, http,
                                    MHD_OPTION_END);
    if (!http->daemon) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not an address of this machine?)", listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    const union MHD_DaemonInfo *pinfo = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_BIND_PORT);
    http->port = pinfo ? pinfo->port : port;
    if (!info || uv_poll_init(loop, &http->poll, info->epoll_fd) < 0) {
        snprintf(err, errlen, "cannot watch the HTTP listener");
        MHD_stop_daemon(http->daemon);
        goto fail;
    }
    uv_timer_init(loop, &http->timer);
    http->poll.data = http;
    http->timer.data = http;
    uv_poll_start(&http->poll, UV_READABLE, on_poll);
    schedule(http);
    freeaddrinfo(ai);
    return http;
fail:
    free(http);
    freeaddrinfo(ai);
    return NULL;
}

int http_port(const struct http *http)
{
    return http->port;
}

static void on_handle_closed(uv_handle_t *h)
{
    struct http *http = h->data;
    if (--http->pending_closes > 0)
        return;
    void (*cb)(void *) = http->on_closed;
    void *arg = http->closed_arg;
    free(http);
    if (cb)
        cb(arg);
}

void http_close(struct http *http, void (*on_closed)(void *arg), void *arg)
{
    if (http->closing)
        return;
    http->closing = 1;
    http->on_closed = on_closed;
    http->closed_arg = arg;
    http->pending_closes = 2;
    /* stop watching the epoll descriptor before libmicrohttpd closes it */
    uv_close((uv_handle_t *)&http->poll, on_handle_closed);
    uv_close((uv_handle_t *)&http->timer, on_handle_closed);
    MHD_stop_daemon(http->daemon);
    http->daemon = NULL;
}
