/* http: the HTTP/1.1 listener on the libuv loop.
 *
 * libmicrohttpd in external-epoll mode: its epoll descriptor is watched by
 * one uv_poll_t and its timeouts by one uv_timer_t, so it runs on the
 * loop's thread and never blocks it. Each request reaches the handler once
 * its body is complete (bodies over HTTP_MAX_BODY get 413 first). The
 * handler answers with http_respond, at once or later from any loop
 * callback (the connection is suspended meanwhile) — exactly once.
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

#define HTTP_MAX_BODY (16u << 20)
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
const char *http_request_header(const struct http_request *req, const char *name);
const char *http_request_body(const struct http_request *req, size_t *len);

/* Sends the response (body copied) and ends the request. */
void http_respond(struct http_request *req, int status, const char *content_type, const char *body,
                  size_t len);
/* Convenience for JSON bodies. */
void http_respond_json(struct http_request *req, int status, const char *json);

/* Stops listening and closes the handles; on_closed fires when done. */
void http_close(struct http *http, void (*on_closed)(void *arg), void *arg);

#endif
