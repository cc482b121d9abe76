/* curl_uv: the libcurl-multi-on-libuv adapter. It owns the multi handle,
 * one uv_poll_t per socket libcurl asks it to watch, the timer libcurl asks
 * for, and the list of running transfers with their completion callbacks.
 * It does not configure transfers, know their protocols or log: callers
 * set their easy handles up and read the results.
 *
 * Socket lifetimes: libcurl announces every socket it stops using with
 * CURL_POLL_REMOVE before it closes it (Curl_multi_closed), and that is
 * where the socket's poll handle is stopped and closed, so no poll handle
 * ever watches a closed or reused descriptor. The poll handle's memory is
 * freed in its close callback; a new socket that gets the same number
 * meanwhile gets a new poll handle.
 *
 * Errors: a socket the loop cannot watch fails only the transfers that
 * asked for it (returning -1 from the socket callback would make libcurl
 * fail every transfer of the multi); they are ended as soon as libcurl
 * returns from curl_multi_socket_action. */
#include "curl_uv.h"

#include <assert.h>
#include <stdlib.h>

struct watch {
    uv_poll_t handle;
    struct curl_uv *cu;
    curl_socket_t fd;
    int events;
    struct watch *prev, *next; /* cu->watches, while open */
};

struct transfer {
    CURL *easy;
    curl_uv_done_cb done;
    void *arg;
    int failed; /* its socket could not be watched */
    struct transfer *prev, *next;
};

struct curl_uv {
    uv_loop_t *loop;
    CURLM *multi;
    uv_timer_t timer; /* libcurl's timeout */
    struct watch *watches;
    struct transfer *transfers;
    int closing;
    int pending_closes;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

static void close_done(struct curl_uv *cu)
{
    if (--cu->pending_closes > 0 || !cu->closing)
        return;
    void (*cb)(void *) = cu->on_closed;
    void *arg = cu->closed_arg;
    free(cu);
    if (cb)
        cb(arg);
}

static void on_watch_closed(uv_handle_t *h)
{
    struct watch *w = h->data;
    struct curl_uv *cu = w->cu;
    free(w);
    close_done(cu);
}

static void watch_close(struct curl_uv *cu, struct watch *w)
{
    if (w->prev)
        w->prev->next = w->next;
    else
        cu->watches = w->next;
    if (w->next)
        w->next->prev = w->prev;
    w->prev = w->next = NULL;
    cu->pending_closes++;
    /* uv_close stops the poll at once (the descriptor leaves epoll now);
     * only the memory waits for the callback. */
    uv_close((uv_handle_t *)&w->handle, on_watch_closed);
}

/* The transfer an easy handle runs for, or NULL. */
static struct transfer *transfer_of(CURL *easy)
{
    char *p = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_PRIVATE, &p) != CURLE_OK)
        return NULL;
    return (struct transfer *)(void *)p;
}

static void transfer_unlink(struct curl_uv *cu, struct transfer *t)
{
    if (t->prev)
        t->prev->next = t->next;
    else
        cu->transfers = t->next;
    if (t->next)
        t->next->prev = t->prev;
}

/* Takes t's easy handle out of the multi, frees t, then reports result to
 * t's callback (the handle is free to be started again by then). */
static void transfer_finish(struct curl_uv *cu, struct transfer *t, CURLcode result)
{
    CURL *easy = t->easy;
    curl_uv_done_cb done = t->done;
    void *arg = t->arg;
    transfer_unlink(cu, t);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(t);
    /* Removing cannot fail for a handle that is in this multi; if it did,
     * the handle would stay in the multi and must not be reported done. */
    CURLMcode mc = curl_multi_remove_handle(cu->multi, easy);
    assert(mc == CURLM_OK);
    (void)mc;
    done(cu, easy, result, arg);
}

/* Reports every finished transfer. A callback may start transfers again
 * or close cu; both are fine here (we are not inside libcurl). */
static void check_done(struct curl_uv *cu)
{
    CURLMsg *msg;
    int left;
    while (!cu->closing) {
        msg = curl_multi_info_read(cu->multi, &left);
        if (!msg)
            break;
        if (msg->msg != CURLMSG_DONE)
            continue;
        struct transfer *t = transfer_of(msg->easy_handle);
        if (!t)
            continue; /* not ours: cannot happen */
        CURLcode result = msg->data.result;
        transfer_finish(cu, t, result); /* msg is invalid from here */
    }
}

/* Ends the transfers whose sockets could not be watched. */
static void reap_failed(struct curl_uv *cu)
{
    struct transfer *t = cu->transfers;
    while (t && !cu->closing) {
        if (t->failed) {
            transfer_finish(cu, t, CURLE_ABORTED_BY_CALLBACK);
            t = cu->transfers; /* a callback may have changed the list */
        } else {
            t = t->next;
        }
    }
}

static void mark_failed(CURL *easy)
{
    struct transfer *t = easy ? transfer_of(easy) : NULL;
    if (t)
        t->failed = 1;
}

static void socket_action(struct curl_uv *cu, curl_socket_t fd, int flags)
{
    int running;
    CURLMcode mc = curl_multi_socket_action(cu->multi, fd, flags, &running);
    /* Errors of single transfers come back through info_read; a multi-level
     * error (out of memory) leaves transfers to their timeouts, which the
     * timer still drives. */
    (void)mc;
    check_done(cu);
    reap_failed(cu);
}

static void on_poll(uv_poll_t *h, int status, int events)
{
    struct watch *w = h->data;
    int flags = 0;
    if (status < 0)
        flags = CURL_CSELECT_ERR;
    else {
        if (events & UV_READABLE)
            flags |= CURL_CSELECT_IN;
        if (events & UV_WRITABLE)
            flags |= CURL_CSELECT_OUT;
    }
    socket_action(w->cu, w->fd, flags);
    /* On POLLERR libuv has stopped the handle. libcurl asks for the
     * socket again only when what it wants changes, so a socket it keeps
     * is watched again here; one it gave up is closing by now. */
    if (status < 0 && !uv_is_closing((uv_handle_t *)h) && !uv_is_active((uv_handle_t *)h) && w->events &&
        uv_poll_start(h, w->events, on_poll) < 0) {
        /* cannot watch it: libcurl's own timeouts end its transfers */
    }
}

static void on_timeout(uv_timer_t *timer)
{
    socket_action(timer->data, CURL_SOCKET_TIMEOUT, 0);
}

/* CURLMOPT_SOCKETFUNCTION: what to watch on socket s. */
static int on_socket(CURL *easy, curl_socket_t s, int what, void *userp, void *socketp)
{
    struct curl_uv *cu = userp;
    struct watch *w = socketp;

    if (what == CURL_POLL_REMOVE) {
        if (w) {
            curl_multi_assign(cu->multi, s, NULL);
            watch_close(cu, w);
        }
        return 0;
    }
    if (cu->closing)
        return 0;
    if (!w) {
        w = calloc(1, sizeof *w);
        if (!w)
            goto fail;
        if (uv_poll_init_socket(cu->loop, &w->handle, s) < 0) {
            free(w);
            goto fail;
        }
        w->handle.data = w;
        w->cu = cu;
        w->fd = s;
        w->next = cu->watches;
        if (cu->watches)
            cu->watches->prev = w;
        cu->watches = w;
        if (curl_multi_assign(cu->multi, s, w) != CURLM_OK) {
            watch_close(cu, w);
            goto fail;
        }
    }
    int events = 0;
    if (what & CURL_POLL_IN)
        events |= UV_READABLE;
    if (what & CURL_POLL_OUT)
        events |= UV_WRITABLE;
    if (events != w->events || !uv_is_active((uv_handle_t *)&w->handle)) {
        if (uv_poll_start(&w->handle, events, on_poll) < 0)
            goto fail;
        w->events = events;
    }
    return 0;
fail:
    mark_failed(easy);
    return 0;
}

/* CURLMOPT_TIMERFUNCTION: call socket_action(TIMEOUT) in timeout_ms; -1
 * means no timeout. A zero timeout still goes through the loop, which is
 * what keeps callbacks out of curl_uv_transfer_start. */
static int on_timer_change(CURLM *multi, long timeout_ms, void *userp)
{
    struct curl_uv *cu = userp;
    (void)multi;
    if (cu->closing)
        return 0;
    if (timeout_ms < 0) {
        uv_timer_stop(&cu->timer);
        return 0;
    }
    /* uv_timer_start cannot fail on an open timer with a callback */
    uv_timer_start(&cu->timer, on_timeout, (uint64_t)timeout_ms, 0);
    return 0;
}

struct curl_uv *curl_uv_new(uv_loop_t *loop)
{
    struct curl_uv *cu = calloc(1, sizeof *cu);
    if (!cu)
        return NULL;
    cu->loop = loop;
    cu->multi = curl_multi_init();
    if (!cu->multi)
        goto fail;
    if (curl_multi_setopt(cu->multi, CURLMOPT_SOCKETFUNCTION, on_socket) != CURLM_OK ||
        curl_multi_setopt(cu->multi, CURLMOPT_SOCKETDATA, cu) != CURLM_OK ||
        curl_multi_setopt(cu->multi, CURLMOPT_TIMERFUNCTION, on_timer_change) != CURLM_OK ||
        curl_multi_setopt(cu->multi, CURLMOPT_TIMERDATA, cu) != CURLM_OK)
        goto fail;
    /* The timer is initialised last: nothing after it can fail, so the
     * failure path never has a handle to close. */
    if (uv_timer_init(loop, &cu->timer) < 0)
        goto fail;
    cu->timer.data = cu;
    return cu;
fail:
    if (cu->multi)
        curl_multi_cleanup(cu->multi);
    free(cu);
    return NULL;
}

int curl_uv_limits_set(struct curl_uv *cu, long max_total, long max_per_host)
{
    if (max_total < 0 || max_per_host < 0)
        return -1;
    if (curl_multi_setopt(cu->multi, CURLMOPT_MAX_TOTAL_CONNECTIONS, max_total) != CURLM_OK ||
        curl_multi_setopt(cu->multi, CURLMOPT_MAX_HOST_CONNECTIONS, max_per_host) != CURLM_OK ||
        curl_multi_setopt(cu->multi, CURLMOPT_MAXCONNECTS, max_total) != CURLM_OK)
        return -1;
    return 0;
}

int curl_uv_transfer_start(struct curl_uv *cu, CURL *easy, curl_uv_done_cb done, void *arg)
{
    if (cu->closing || !easy || !done)
        return -1;
    struct transfer *t = calloc(1, sizeof *t);
    if (!t)
        return -1;
    t->easy = easy;
    t->done = done;
    t->arg = arg;
    if (curl_easy_setopt(easy, CURLOPT_PRIVATE, t) != CURLE_OK)
        goto fail;
    /* libcurl only asks for a timer here (a zero timeout: the transfer
     * starts from the loop), so no callback can fire inside this call. */
    if (curl_multi_add_handle(cu->multi, easy) != CURLM_OK)
        goto fail;
    t->next = cu->transfers;
    if (cu->transfers)
        cu->transfers->prev = t;
    cu->transfers = t;
    return 0;
fail:
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(t);
    return -1;
}

int curl_uv_transfer_abort(struct curl_uv *cu, CURL *easy)
{
    struct transfer *t = cu->transfers;
    while (t && t->easy != easy)
        t = t->next;
    if (!t)
        return -1;
    transfer_unlink(cu, t);
    curl_easy_setopt(easy, CURLOPT_PRIVATE, NULL);
    free(t);
    CURLMcode mc = curl_multi_remove_handle(cu->multi, easy);
    assert(mc == CURLM_OK);
    (void)mc;
    return 0;
}

static void on_timer_closed(uv_handle_t *h)
{
    close_done(h->data);
}

void curl_uv_close(struct curl_uv *cu, void (*on_closed)(void *arg), void *arg)
{
    if (cu->closing)
        return;
    cu->on_closed = on_closed;
    cu->closed_arg = arg;
    cu->closing = 1;
    /* End the running transfers first; their callbacks cannot start new
     * ones any more. Removing a handle closes its connection if it was in
     * use, and libcurl says CURL_POLL_REMOVE for its socket first. */
    while (cu->transfers)
        transfer_finish(cu, cu->transfers, CURLE_ABORTED_BY_CALLBACK);
    /* Stop watching the cached connections' sockets before libcurl closes
     * them in curl_multi_cleanup. */
    while (cu->watches) {
        curl_multi_assign(cu->multi, cu->watches->fd, NULL);
        watch_close(cu, cu->watches);
    }
    curl_multi_cleanup(cu->multi);
    cu->multi = NULL;
    cu->pending_closes++;
    uv_close((uv_handle_t *)&cu->timer, on_timer_closed);
}
