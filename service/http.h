/* http: the HTTP/1.1 listener on the libuv loop.
 *
 * libmicrohttpd in external-epoll mode: its epoll descriptor is watched by
 * one uv_poll_t and its timeouts by one uv_timer_t, so it runs on the
 * loop's thread and never blocks it. Each request reaches the handler once
 * its body is complete. A body over HTTP_MAX_BODY is not kept: the rest
 * is read and dropped up to HTTP_DISCARD_MAX, so that the client, still
 * sending, sees the answer (http_request_too_large says so, and the
 * handler answers 413); past HTTP_DISCARD_MAX the handler is called at
 * once, its answer sent and the connection closed. The handler answers
 * with http_respond, at once or later from any loop callback (the
 * connection is suspended meanwhile) — exactly once.
 *
 * Connections are capped so that idle clients can neither lock a new one
 * (a liveness probe) out nor run the process out of descriptors: at most
 * HTTP_PER_IP from one address, at most max_connections in all, each
 * closed after HTTP_IDLE_TIMEOUT_S without a request in progress; over a
 * cap, the connection idle the longest makes room (http.c says how). */
#ifndef RELANCE_HTTP_H
#define RELANCE_HTTP_H

#include <stddef.h>
#include <uv.h>

#define HTTP_MAX_BODY (1u << 20)    /* bytes of a request body kept for the handler */
#define HTTP_DISCARD_MAX (8u << 20) /* bytes read and dropped beyond it before the answer */
#define HTTP_MAX_CONNECTIONS 256 /* the total's ceiling, whatever the descriptor limit allows */
#define HTTP_PER_IP 64           /* connections from one client address */
#define HTTP_IDLE_TIMEOUT_S 10   /* no byte in or out, no request in progress: closed */
/* Connections being closed to make room, beyond max_connections: what the
 * descriptor budget must leave for them (fdlimit.c). */
#define HTTP_EVICT_SLACK 32

struct http;
struct http_request;

typedef void (*http_handler)(struct http_request *req, void *arg);

/* Listens on "host:port", keeping at most max_connections open (0:
 * HTTP_MAX_CONNECTIONS). Returns NULL with a reason in err. */
struct http *http_new(uv_loop_t *loop, const char *listen, unsigned max_connections, http_handler handler,
                      void *arg, char *err, size_t errlen);
/* The port actually bound (useful with port 0). */
int http_port(const struct http *http);

const char *http_request_method(const struct http_request *req);
const char *http_request_path(const struct http_request *req);
/* A query-string argument or header, or NULL. */
const char *http_request_arg(const struct http_request *req, const char *name);
/* The same with its length (*len), which is more than strlen when the
 * decoded value holds a NUL (%00). */
const char *http_request_arg_n(const struct http_request *req, const char *name, size_t *len);
const char *http_request_header(const struct http_request *req, const char *name);
/* The name of the first query-string argument not in known (a
 * NULL-terminated list, or NULL for none), or NULL when all are; valid
 * until the handler returns. */
const char *http_request_unknown_arg(const struct http_request *req, const char *const *known);
const char *http_request_body(const struct http_request *req, size_t *len);
/* True when the body was over HTTP_MAX_BODY (and is empty here). */
int http_request_too_large(const struct http_request *req);

/* Sends the response (body copied) and ends the request. */
void http_respond(struct http_request *req, int status, const char *content_type, const char *body,
                  size_t len);
/* The same with extra headers: name, value, name, value, ..., NULL. */
void http_respond_headers(struct http_request *req, int status, const char *content_type, const char *body,
                          size_t len, const char *const *headers);
/* Convenience for JSON bodies. */
void http_respond_json(struct http_request *req, int status, const char *json);

/* Stops listening and closes the handles; on_closed fires when done. */
void http_close(struct http *http, void (*on_closed)(void *arg), void *arg);

#endif
