/* http: libmicrohttpd driven by libuv. It owns the listening socket and
 * who is let in through it, the daemon, the loop handles that drive it
 * and the request lifetimes; routing and what the answers say belong to
 * api.c.
 *
 * relance accepts connections itself and hands each to the daemon
 * (MHD_USE_NO_LISTEN_SOCKET, MHD_add_connection): libmicrohttpd at its
 * connection limit, or out of descriptors, stops watching its listening
 * socket, and new clients, a liveness probe among them, then wait in the
 * kernel's backlog until some connection times out (issue 14: /healthz
 * took 18-30 s behind 1,000 idle connections). Here every pending
 * connection is accepted at once, in the kernel's order, ACCEPT_BATCH at a
 * time so the loop keeps turning, and admitted or closed on the spot:
 *
 * - at most per_ip from one address and max_conns in all (fdlimit.c sizes
 *   it below the descriptor limit, leaving SMTP, IMAP and PostgreSQL
 *   theirs). Over a cap, the connection idle the longest (no request in
 *   progress: waiting for one, or still reading its headers, which is what
 *   a slow-header client does) — from the same address for the
 *   per-address cap — is shut down to make room, so an idle crowd cannot
 *   lock a new client out. Only when every connection has a request in
 *   progress is the new one refused, closed at once. libmicrohttpd's own
 *   limits sit HTTP_EVICT_SLACK above ours, for the connections shut down
 *   and not yet closed.
 * - libmicrohttpd closes a connection after HTTP_IDLE_TIMEOUT_S without a
 *   byte read or written; a suspended request (waiting for its handler)
 *   never times out.
 * - out of descriptors, a spare one (/dev/null) is given up to accept the
 *   pending connection and close it, so it is refused rather than left
 *   hanging, and the shortage is logged as what it is. */
#include "http.h"

#include "buf.h"
#include "config.h"
#include "log.h"

#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <microhttpd.h>
#include <netdb.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#define ACCEPT_BATCH 32        /* accepts per loop turn */
#define ACCEPT_PAUSE_MS 100    /* out of descriptors with no spare to give */
#define SHORTAGE_LOG_MS 10000  /* "out of file descriptors" at most this often */

enum conn_state {
    CONN_IDLE,    /* no request in progress: waiting for one, or reading its headers */
    CONN_BUSY,    /* a request is in progress: never shut down to make room */
    CONN_EVICTED, /* shut down to make room; the daemon closes it on its next run */
};
static const char *const conn_state_names[] = {"IDLE", "BUSY", "EVICTED"};

/* One connection the daemon holds, in http's list: idle ones in the order
 * they became idle (the first is the one idle the longest). */
struct http_conn {
    struct http_conn *prev, *next;
    int fd; /* the daemon's: only ever shut down here, never closed */
    enum conn_state state;
    struct sockaddr_storage addr;
};

struct http {
    uv_loop_t *loop;
    struct MHD_Daemon *daemon;
    uv_poll_t poll;      /* the daemon's epoll descriptor */
    uv_timer_t timer;    /* the daemon's timeouts */
    uv_poll_t listener;  /* listen_fd */
    uv_timer_t pause;    /* accepting again after a descriptor shortage */
    int listen_fd;
    int spare_fd;        /* given up to refuse a connection when out of descriptors */
    struct http_conn *head, *tail;
    unsigned open;       /* connections held, not counting the evicted */
    unsigned evicting;   /* shut down, not yet closed by the daemon */
    unsigned max_conns, per_ip;
    uint64_t shortage_logged; /* loop time; 0: never */
    unsigned shortage_refused; /* since then */
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
    struct buf body;
    size_t body_total;  /* bytes of the body received, kept or not */
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

/* ---- connections: tracking, admission, making room */

static void conn_unlink(struct http *http, struct http_conn *c)
{
    if (c->prev)
        c->prev->next = c->next;
    else
        http->head = c->next;
    if (c->next)
        c->next->prev = c->prev;
    else
        http->tail = c->prev;
    c->prev = c->next = NULL;
}

static void conn_append(struct http *http, struct http_conn *c)
{
    c->prev = http->tail;
    c->next = NULL;
    if (http->tail)
        http->tail->next = c;
    else
        http->head = c;
    http->tail = c;
}

static struct http_conn *conn_of(struct MHD_Connection *mc)
{
    const union MHD_ConnectionInfo *i = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_SOCKET_CONTEXT);
    return i ? i->socket_context : NULL;
}

static socklen_t address_len(const struct sockaddr *sa)
{
    return sa->sa_family == AF_INET6 ? sizeof(struct sockaddr_in6) : sizeof(struct sockaddr_in);
}

static int same_host(const struct sockaddr_storage *a, const struct sockaddr_storage *b)
{
    if (a->ss_family != b->ss_family)
        return 0;
    if (a->ss_family == AF_INET)
        return ((const struct sockaddr_in *)a)->sin_addr.s_addr == ((const struct sockaddr_in *)b)->sin_addr.s_addr;
    if (a->ss_family == AF_INET6)
        return memcmp(&((const struct sockaddr_in6 *)a)->sin6_addr, &((const struct sockaddr_in6 *)b)->sin6_addr,
                      sizeof(struct in6_addr)) == 0;
    return 0;
}

/* The daemon took a connection (inside MHD_add_connection) or closed one.
 * Every connection is tracked from here, so the counts are the daemon's. */
static void on_connection(void *cls, struct MHD_Connection *mc, void **socket_context,
                          enum MHD_ConnectionNotificationCode code)
{
    struct http *http = cls;
    struct http_conn *c = *socket_context;
    if (code == MHD_CONNECTION_NOTIFY_STARTED) {
        const union MHD_ConnectionInfo *fd = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CONNECTION_FD);
        const union MHD_ConnectionInfo *ad = MHD_get_connection_info(mc, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
        c = fd && ad && ad->client_addr ? calloc(1, sizeof *c) : NULL;
        if (!c) {
            /* one we could not count is one we could not cap: dropped */
            if (fd)
                shutdown(fd->connect_fd, SHUT_RDWR);
            return;
        }
        c->fd = fd->connect_fd;
        memcpy(&c->addr, ad->client_addr, address_len(ad->client_addr));
        conn_append(http, c);
        http->open++;
        *socket_context = c;
        return;
    }
    if (!c)
        return;
    *socket_context = NULL;
    conn_unlink(http, c);
    if (c->state == CONN_EVICTED)
        http->evicting--;
    else
        http->open--;
    free(c);
}

/* The one place a connection's state changes. Idle again, it goes last
 * in line to make room. Evicted, it is shut down: the daemon sees the
 * hang-up on its next run and closes it as if the client had gone (the
 * descriptor stays the daemon's). */
static void conn_set_state(struct http *http, struct http_conn *c, enum conn_state to)
{
    if (c->state == to || c->state == CONN_EVICTED)
        return;
    char fd[16], event[64];
    snprintf(fd, sizeof fd, "%d", c->fd);
    snprintf(event, sizeof event, "connection %s -> %s", conn_state_names[c->state], conn_state_names[to]);
    log_event(LOG_DEBUG, "http", event, "fd", fd, NULL);
    if (to == CONN_IDLE) {
        conn_unlink(http, c);
        conn_append(http, c);
    } else if (to == CONN_EVICTED) {
        shutdown(c->fd, SHUT_RDWR);
        http->open--;
        http->evicting++;
    }
    c->state = to;
}

/* Lets the accepted fd in, making room if a cap is reached, or closes it
 * at once when there is no idle connection to make room with. */
static void admit(struct http *http, int fd, const struct sockaddr_storage *addr, socklen_t len)
{
    if (http->evicting >= HTTP_EVICT_SLACK)
        MHD_run(http->daemon); /* closes those shut down, before shutting more */
    unsigned same = 0;
    struct http_conn *idlest = NULL, *idlest_same = NULL;
    for (struct http_conn *c = http->head; c; c = c->next) {
        if (c->state == CONN_EVICTED)
            continue;
        int mine = same_host(&c->addr, addr);
        same += (unsigned)mine;
        if (c->state == CONN_IDLE && !idlest)
            idlest = c;
        if (c->state == CONN_IDLE && mine && !idlest_same)
            idlest_same = c;
    }
    struct http_conn *room = NULL;
    int full = 0;
    if (same >= http->per_ip) {
        full = 1;
        room = idlest_same;
    } else if (http->open >= http->max_conns) {
        full = 1;
        room = idlest;
    }
    if (full && (!room || http->evicting >= HTTP_EVICT_SLACK)) {
        close(fd); /* every connection is at work: refused, not left waiting */
        log_event(LOG_DEBUG, "http", "connection refused: every connection has a request in progress", NULL);
        return;
    }
    if (room)
        conn_set_state(http, room, CONN_EVICTED);
    if (MHD_add_connection(http->daemon, fd, (const struct sockaddr *)addr, len) != MHD_YES) {
        /* the daemon closed it (its own limits, or memory) */
    }
}

static void log_shortage(struct http *http, int err)
{
    http->shortage_refused++;
    uint64_t now = uv_now(http->loop);
    if (http->shortage_logged && now - http->shortage_logged < SHORTAGE_LOG_MS)
        return;
    struct rlimit rl;
    char limit[24] = "?", held[16], refused[16];
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        snprintf(limit, sizeof limit, "%llu", (unsigned long long)rl.rlim_cur);
    snprintf(held, sizeof held, "%u", http->open + http->evicting);
    snprintf(refused, sizeof refused, "%u", http->shortage_refused);
    log_event(LOG_WARN, "http", "out of file descriptors: refusing new connections", "limit", limit,
              "http_connections", held, "refused", refused, "error", strerror(err), NULL);
    http->shortage_logged = now ? now : 1;
    http->shortage_refused = 0;
}

static void on_accept(uv_poll_t *h, int status, int events);

static void on_accept_resume(uv_timer_t *t)
{
    struct http *http = t->data;
    if (!http->closing)
        uv_poll_start(&http->listener, UV_READABLE, on_accept);
}

/* accept failed for want of a descriptor (which it does before it looks
 * for a pending connection): refuses the pending connection, if any, with
 * the spare descriptor. Returns 0 to go on accepting, -1 to stop (none
 * pending, or no spare to give: accepting then pauses briefly, rather than
 * spin on a listening socket that stays readable). */
static int refuse_short(struct http *http, int err)
{
    if (http->spare_fd >= 0) {
        close(http->spare_fd);
        int fd = accept4(http->listen_fd, NULL, NULL, SOCK_CLOEXEC);
        if (fd >= 0) {
            close(fd);
            log_shortage(http, err);
        }
        http->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (http->spare_fd >= 0)
            return fd >= 0 ? 0 : -1;
    }
    log_shortage(http, err);
    uv_poll_stop(&http->listener);
    uv_timer_start(&http->pause, on_accept_resume, ACCEPT_PAUSE_MS, 0);
    return -1;
}

static void on_accept(uv_poll_t *h, int status, int events)
{
    struct http *http = h->data;
    (void)events;
    if (status < 0 || http->closing)
        return;
    for (int i = 0; i < ACCEPT_BATCH; i++) {
        struct sockaddr_storage addr;
        socklen_t len = sizeof addr;
        int fd = accept4(http->listen_fd, (struct sockaddr *)&addr, &len, SOCK_NONBLOCK | SOCK_CLOEXEC);
        if (fd >= 0) {
            admit(http, fd, &addr, len);
            continue;
        }
        if (errno == EINTR || errno == ECONNABORTED)
            continue;
        if ((errno == EMFILE || errno == ENFILE) && refuse_short(http, errno) == 0)
            continue;
        break; /* none pending (EAGAIN), or the next readiness tries again */
    }
    run(http);
}

static void request_free(struct http_request *req)
{
    if (req->response)
        MHD_destroy_response(req->response);
    free(req->method);
    free(req->path);
    buf_free(&req->body);
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
        struct http_conn *c = conn_of(conn);
        if (c)
            conn_set_state(http, c, CONN_BUSY);
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
        req->body_total += *upload_size;
        if (!req->too_large && req->body_total <= HTTP_MAX_BODY) {
            buf_add(&req->body, upload, *upload_size);
            if (req->body.oom)
                return MHD_NO;
        } else if (!req->too_large) {
            req->too_large = 1; /* dropped from here on, still read */
            buf_free(&req->body);
        }
        *upload_size = 0;
        if (req->body_total <= HTTP_DISCARD_MAX || req->dispatched)
            return MHD_YES;
        /* past what is worth reading: answer now, then close */
        req->dispatched = 1;
        http->handler(req, http->arg);
        return req->response ? queue(req) : MHD_NO;
    }
    if (req->response)
        return queue(req);
    if (req->dispatched)
        return MHD_YES; /* still waiting for the handler */
    req->dispatched = 1;
    http->handler(req, http->arg);
    if (req->response)
        return queue(req);
    MHD_suspend_connection(conn);
    req->suspended = 1;
    return MHD_YES;
}

static void on_completed(void *cls, struct MHD_Connection *conn, void **con_cls,
                         enum MHD_RequestTerminationCode code)
{
    struct http *http = cls;
    (void)code;
    struct http_conn *c = conn_of(conn);
    if (c)
        conn_set_state(http, c, CONN_IDLE);
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
    http_respond_headers(req, status, content_type, body, len, NULL);
}

void http_respond_headers(struct http_request *req, int status, const char *content_type, const char *body,
                          size_t len, const char *const *headers)
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
        for (size_t i = 0; headers && headers[i] && headers[i + 1]; i += 2)
            MHD_add_response_header(req->response, headers[i], headers[i + 1]);
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

const char *http_request_arg_n(const struct http_request *req, const char *name, size_t *len)
{
    const char *v = NULL;
    *len = 0;
    if (MHD_lookup_connection_value_n(req->conn, MHD_GET_ARGUMENT_KIND, name, strlen(name), &v, len) != MHD_YES)
        return NULL;
    return v;
}

struct unknown_arg {
    const char *const *known;
    const char *name;
};

static enum MHD_Result unknown_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    struct unknown_arg *u = cls;
    (void)kind;
    (void)value;
    for (size_t i = 0; u->known && u->known[i]; i++)
        if (strcmp(u->known[i], key) == 0)
            return MHD_YES;
    u->name = key;
    return MHD_NO;
}

const char *http_request_unknown_arg(const struct http_request *req, const char *const *known)
{
    struct unknown_arg u = {known, NULL};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, unknown_arg, &u);
    return u.name;
}

const char *http_request_header(const struct http_request *req, const char *name)
{
    return MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, name);
}

const char *http_request_body(const struct http_request *req, size_t *len)
{
    *len = req->body.len;
    return req->body.p ? req->body.p : "";
}

int http_request_too_large(const struct http_request *req)
{
    return req->too_large;
}

__attribute__((format(printf, 2, 0))) static void on_mhd_log(void *cls, const char *fmt, va_list ap)
{
    (void)cls;
    char msg[256];
    vsnprintf(msg, sizeof msg, fmt, ap);
    msg[strcspn(msg, "\n")] = '\0';
    log_event(LOG_DEBUG, "http", msg, NULL);
}

/* A listening socket on ai (non-blocking) and the port it got; -1 with
 * errno. */
static int listen_socket(const struct addrinfo *ai, int *port)
{
    int on = 1;
    struct sockaddr_storage bound;
    socklen_t len = sizeof bound;
    int fd = socket(ai->ai_family, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
    if (fd < 0)
        return -1;
    /* SO_REUSEADDR: a restarted relance binds at once, whatever is left in
     * TIME_WAIT; IPv6 only on an IPv6 address, as libmicrohttpd did */
    if (setsockopt(fd, SOL_SOCKET, SO_REUSEADDR, &on, sizeof on) < 0 ||
        (ai->ai_family == AF_INET6 && setsockopt(fd, IPPROTO_IPV6, IPV6_V6ONLY, &on, sizeof on) < 0) ||
        bind(fd, ai->ai_addr, ai->ai_addrlen) < 0 || listen(fd, SOMAXCONN) < 0 ||
        getsockname(fd, (struct sockaddr *)&bound, &len) < 0) {
        int e = errno;
        close(fd);
        errno = e;
        return -1;
    }
    *port = ntohs(bound.ss_family == AF_INET6 ? ((const struct sockaddr_in6 *)&bound)->sin6_port
                                              : ((const struct sockaddr_in *)&bound)->sin_port);
    return fd;
}

static void close_fds(struct http *http)
{
    if (http->listen_fd >= 0)
        close(http->listen_fd);
    if (http->spare_fd >= 0)
        close(http->spare_fd);
    http->listen_fd = http->spare_fd = -1;
}

static void on_handle_closed(uv_handle_t *h);

struct http *http_new(uv_loop_t *loop, const char *listen, unsigned max_connections, http_handler handler,
                      void *arg, char *err, size_t errlen)
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
    if (!http) {
        snprintf(err, errlen, "out of memory");
        goto fail;
    }
    http->loop = loop;
    http->handler = handler;
    http->arg = arg;
    http->spare_fd = -1;
    http->max_conns = max_connections ? max_connections : HTTP_MAX_CONNECTIONS;
    http->per_ip = HTTP_PER_IP < http->max_conns ? HTTP_PER_IP : http->max_conns;
    http->listen_fd = listen_socket(ai, &http->port);
    if (http->listen_fd < 0) {
        snprintf(err, errlen, "cannot listen on %s (in use, or not an address of this machine?)", listen);
        goto fail;
    }
    /* without it, a descriptor shortage only pauses accepting */
    http->spare_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    http->daemon = MHD_start_daemon(MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ERROR_LOG |
                                        MHD_USE_NO_LISTEN_SOCKET,
                                    0, NULL, NULL, on_access, http,
                                    /* first, or libmicrohttpd prints some messages itself */
                                    MHD_OPTION_EXTERNAL_LOGGER, on_mhd_log, http,
                                    MHD_OPTION_NOTIFY_COMPLETED, on_completed, http,
                                    MHD_OPTION_NOTIFY_CONNECTION, on_connection, http,
                                    MHD_OPTION_CONNECTION_TIMEOUT, (unsigned)HTTP_IDLE_TIMEOUT_S,
                                    /* admit() keeps within ours; these bound the evicted too */
                                    MHD_OPTION_CONNECTION_LIMIT, http->max_conns + HTTP_EVICT_SLACK,
                                    MHD_OPTION_PER_IP_CONNECTION_LIMIT, http->per_ip + HTTP_EVICT_SLACK,
                                    MHD_OPTION_END);
    if (!http->daemon) {
        snprintf(err, errlen, "cannot start the HTTP server on %s", listen);
        goto fail;
    }
    const union MHD_DaemonInfo *info = MHD_get_daemon_info(http->daemon, MHD_DAEMON_INFO_EPOLL_FD);
    if (!info || uv_poll_init(loop, &http->poll, info->epoll_fd) < 0) {
        snprintf(err, errlen, "cannot watch the HTTP listener");
        goto fail;
    }
    http->poll.data = http;
    if (uv_poll_init(loop, &http->listener, http->listen_fd) < 0) {
        /* the first handle is set up: it closes on the loop, which frees http */
        snprintf(err, errlen, "cannot watch the HTTP listener");
        http->closing = 1;
        http->pending_closes = 1;
        uv_close((uv_handle_t *)&http->poll, on_handle_closed);
        MHD_stop_daemon(http->daemon);
        close_fds(http);
        freeaddrinfo(ai);
        return NULL;
    }
    uv_timer_init(loop, &http->timer);
    uv_timer_init(loop, &http->pause);
    http->listener.data = http;
    http->timer.data = http;
    http->pause.data = http;
    uv_poll_start(&http->poll, UV_READABLE, on_poll);
    uv_poll_start(&http->listener, UV_READABLE, on_accept);
    schedule(http);
    freeaddrinfo(ai);
    return http;
fail:
    if (http) {
        if (http->daemon)
            MHD_stop_daemon(http->daemon);
        close_fds(http);
    }
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
    http->pending_closes = 4;
    /* stop accepting, and stop watching the descriptors before they close */
    uv_close((uv_handle_t *)&http->listener, on_handle_closed);
    uv_close((uv_handle_t *)&http->pause, on_handle_closed);
    uv_close((uv_handle_t *)&http->poll, on_handle_closed);
    uv_close((uv_handle_t *)&http->timer, on_handle_closed);
    close_fds(http);
    MHD_stop_daemon(http->daemon); /* closes every connection: on_connection frees each record */
    http->daemon = NULL;
}
