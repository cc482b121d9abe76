/* xfer_pool: the threads libcurl's SMTP and IMAP transfers run on, and
 * the handover between them and the loop (xfer_pool.h says why). It owns
 * the pool's threads, its one mutex and its queue of work, and, per
 * struct xfer, the uv_async that carries a thread's events to the loop,
 * the socket it may shut down to end a transfer at once, and the cleanup
 * of the easy handle on a thread. It knows no protocol: what a transfer
 * sends, what its callbacks read and what its result means are its
 * owner's (smtp.c, imap.c). Nothing here logs.
 *
 * One thread per transfer in flight: queue_locked starts one when the
 * idle ones are fewer than the work queued, up to the cap, so a silent
 * server holds only its own transfer's thread. The number of channels busy
 * at one instant is small (an SMTP account sends one message at a time,
 * the watcher runs at most imap_max_connections tasks), so nothing needs
 * to move stuck work between threads.
 *
 * Lifetimes: an xfer counts in its pool from xfer_init until its handle's
 * close callback; the pool is freed by the last of xfer_pool_close and
 * that. The async handle is referenced on the loop only while work is
 * queued or running, so a loop run by a command ends when its channels
 * rest. */
#include "xfer_pool.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#define THREAD_STACK (1024 * 1024) /* libcurl and OpenSSL need far less; threads are one per transfer */

struct xfer_pool {
    pthread_mutex_t mu;
    pthread_cond_t cv;        /* (mu) work was queued, or the pool closes */
    struct xfer *head, *tail; /* (mu) xfers whose work waits for a thread */
    size_t queued;            /* (mu) how many */
    pthread_t *threads;
    size_t n, idle, max;      /* (mu) idle: threads waiting for work, woken or not yet */
    int closing;              /* (mu) the threads are told to leave */
    int closed;               /* (mu) they have: the last xfer closed frees the pool */
    size_t xfers;             /* (mu) not yet closed */
};

static void pool_destroy(struct xfer_pool *pool)
{
    pthread_cond_destroy(&pool->cv);
    pthread_mutex_destroy(&pool->mu);
    free(pool->threads);
    free(pool);
}

void xfer_lock(struct xfer *x)
{
    pthread_mutex_lock(&x->pool->mu);
}

void xfer_unlock(struct xfer *x)
{
    pthread_mutex_unlock(&x->pool->mu);
}

void xfer_wait_locked(struct xfer *x)
{
    pthread_cond_wait(&x->cv, &x->pool->mu);
}

void xfer_wake_locked(struct xfer *x)
{
    pthread_cond_broadcast(&x->cv);
}

int xfer_aborted_locked(const struct xfer *x)
{
    return x->abort;
}

void xfer_post_locked(struct xfer *x, unsigned events)
{
    x->events |= events;
    uv_async_send(&x->async);
}

/* ---- libcurl callbacks, on the transfer's thread */

/* libcurl's socket(), made here to keep errno when it fails and to know
 * the socket xfer_stop_locked may shut down. */
static curl_socket_t on_open_socket(void *userp, curlsocktype purpose, struct curl_sockaddr *a)
{
    struct xfer *x = userp;
    (void)purpose;
    curl_socket_t fd = socket(a->family, a->socktype, a->protocol);
    if (fd == CURL_SOCKET_BAD)
        x->socket_errno = errno;
    xfer_lock(x);
    x->sock = fd;
    xfer_unlock(x);
    return fd;
}

/* libcurl's close(): forgets the socket first, so xfer_stop_locked never
 * shuts down a descriptor number that has been reused since. */
static int on_close_socket(void *userp, curl_socket_t fd)
{
    struct xfer *x = userp;
    xfer_lock(x);
    if (x->sock == fd)
        x->sock = CURL_SOCKET_BAD;
    xfer_unlock(x);
    return close(fd);
}

/* Called by libcurl at least once a second while a transfer runs (in the
 * done phase's blocking wait too): non-zero ends it. */
static int on_progress(void *userp, curl_off_t dltotal, curl_off_t dlnow, curl_off_t ultotal, curl_off_t ulnow)
{
    struct xfer *x = userp;
    (void)dltotal;
    (void)dlnow;
    (void)ultotal;
    (void)ulnow;
    xfer_lock(x);
    int abort = x->abort;
    xfer_unlock(x);
    return abort;
}

/* ---- the threads */

/* Cleans easy up, closing a live connection politely (QUIT, LOGOUT) but
 * briefly: a silent server must not hold a thread long, nor the pool's
 * close at shutdown. libcurl 7.88 closes an easy handle's cached
 * connections through its connection cache's own "closure handle", whose
 * timeouts are copied from the last easy handle added to the multi (lib/
 * multi.c, curl_multi_add_handle) and never from an option set after it,
 * and that wait calls no progress callback of ours. So the short timeout
 * is set, then one perform without a URL (it fails at once, "No URL set",
 * before any connection is looked at) hands it to the closure handle, and
 * the cleanup's QUIT or LOGOUT waits at most XFER_CLOSE_TIMEOUT_S. */
static void close_briefly(CURL *easy)
{
    curl_easy_setopt(easy, CURLOPT_SERVER_RESPONSE_TIMEOUT, XFER_CLOSE_TIMEOUT_S);
    curl_easy_setopt(easy, CURLOPT_TIMEOUT_MS, XFER_CLOSE_TIMEOUT_S * 1000);
    if (curl_easy_setopt(easy, CURLOPT_URL, NULL) == CURLE_OK)
        (void)curl_easy_perform(easy);
    curl_easy_cleanup(easy);
}

/* A pool thread: takes each xfer's work in turn and runs it, blocking in
 * libcurl as long as the server takes (bounded by the owner's timeouts),
 * then reports its end. An exit cleans the easy handle up here: a live
 * connection's QUIT or LOGOUT never waits on the loop. */
static void *worker(void *arg)
{
    struct xfer_pool *pool = arg;
    pthread_mutex_lock(&pool->mu);
    for (;;) {
        while (!pool->head && !pool->closing) {
            pool->idle++;
            pthread_cond_wait(&pool->cv, &pool->mu);
            pool->idle--;
        }
        if (!pool->head)
            break; /* closing, and nothing is left to do */
        struct xfer *x = pool->head;
        pool->head = x->queued;
        if (!pool->head)
            pool->tail = NULL;
        pool->queued--;
        x->queued = NULL;
        x->running = 1;
        enum xfer_work work = x->work;
        pthread_mutex_unlock(&pool->mu);
        CURLcode rc = CURLE_OK;
        if (work == XFER_WORK_EXIT) {
            close_briefly(x->easy);
        } else {
            rc = curl_easy_perform(x->easy);
        }
        pthread_mutex_lock(&pool->mu);
        /* A server that let a reply time out is not spoken to again, not
         * even for QUIT or LOGOUT: the connection is dropped (libcurl then
         * finds it dead and the next transfer opens a new one). */
        if ((rc == CURLE_OPERATION_TIMEDOUT || rc == CURLE_ABORTED_BY_CALLBACK) && x->sock != CURL_SOCKET_BAD)
            shutdown(x->sock, SHUT_RDWR);
        x->running = 0;
        x->work = XFER_WORK_NONE;
        if (work == XFER_WORK_EXIT) {
            x->easy = NULL;
            x->exited = 1;
        } else {
            x->done_code = rc;
            x->ev_done = 1;
        }
        pthread_cond_broadcast(&x->cv); /* xfer_stop_locked may be waiting for the end */
        uv_async_send(&x->async);
    }
    pthread_mutex_unlock(&pool->mu);
    return NULL;
}

/* Queues work for x (under mu), starting a thread when the idle ones are
 * fewer than the work queued (a woken thread counts as idle until it runs:
 * two transfers queued before it does must not share it, or the second
 * would wait for the first, which may be stuck) and the pool may grow.
 * Returns 0, or -1 when no thread can run it. */
static int queue_locked(struct xfer *x, enum xfer_work work)
{
    struct xfer_pool *pool = x->pool;
    if (pool->queued + 1 > pool->idle && pool->n < pool->max) {
        pthread_attr_t attr;
        int rc = pthread_attr_init(&attr);
        if (rc == 0) {
            pthread_attr_setstacksize(&attr, THREAD_STACK);
            rc = pthread_create(&pool->threads[pool->n], &attr, worker, pool);
            pthread_attr_destroy(&attr);
        }
        if (rc == 0)
            pool->n++;
        else if (pool->n == 0)
            return -1; /* no thread at all: the work would wait forever */
    }
    x->work = work;
    x->queued = NULL;
    if (pool->tail)
        pool->tail->queued = x;
    else
        pool->head = x;
    pool->tail = x;
    pool->queued++;
    pthread_cond_signal(&pool->cv);
    return 0;
}

struct xfer_pool *xfer_pool_new(size_t max_threads)
{
    struct xfer_pool *pool = calloc(1, sizeof *pool);
    if (!pool)
        return NULL;
    pool->max = max_threads ? max_threads : 1;
    pool->threads = calloc(pool->max, sizeof *pool->threads);
    if (!pool->threads || pthread_mutex_init(&pool->mu, NULL) != 0) {
        free(pool->threads);
        free(pool);
        return NULL;
    }
    if (pthread_cond_init(&pool->cv, NULL) != 0) {
        pthread_mutex_destroy(&pool->mu);
        free(pool->threads);
        free(pool);
        return NULL;
    }
    return pool;
}

void xfer_pool_close(struct xfer_pool *pool)
{
    if (!pool)
        return;
    pthread_mutex_lock(&pool->mu);
    pool->closing = 1;
    pthread_cond_broadcast(&pool->cv);
    pthread_mutex_unlock(&pool->mu);
    for (size_t i = 0; i < pool->n; i++)
        pthread_join(pool->threads[i], NULL); /* each leaves once the queue is empty */
    /* an xfer whose handle's close has not run yet frees the pool last */
    pthread_mutex_lock(&pool->mu);
    pool->closed = 1;
    int last = pool->xfers == 0;
    pthread_mutex_unlock(&pool->mu);
    if (last)
        pool_destroy(pool);
}

/* ---- one xfer, on the loop */

static void on_async_closed(uv_handle_t *h)
{
    struct xfer *x = h->data;
    struct xfer_pool *pool = x->pool;
    pthread_cond_destroy(&x->cv);
    free(x->default_cainfo);
    x->default_cainfo = NULL;
    pthread_mutex_lock(&pool->mu);
    pool->xfers--;
    int last = pool->closed && pool->xfers == 0;
    pthread_mutex_unlock(&pool->mu);
    if (last)
        pool_destroy(pool);
    x->on_closed(x); /* may free x */
}

/* What x's thread reported. Events come before the end, so the owner
 * hears of them first. */
static void on_async(uv_async_t *h)
{
    struct xfer *x = h->data;
    xfer_lock(x);
    unsigned events = x->events;
    int done = x->ev_done, exited = x->exited, busy = x->work != XFER_WORK_NONE;
    CURLcode result = x->done_code;
    x->events = 0;
    x->ev_done = 0;
    xfer_unlock(x);
    if (exited) {
        uv_close((uv_handle_t *)&x->async, on_async_closed);
        return;
    }
    if (!busy)
        uv_unref((uv_handle_t *)&x->async); /* resting: a command's loop may end */
    if (x->closing || (!events && !done))
        return;
    x->on_event(x, events, done, result);
}

int xfer_init(struct xfer *x, uv_loop_t *loop, struct xfer_pool *pool, xfer_event_cb on_event)
{
    CURL *easy = curl_easy_init();
    if (!easy)
        return -ENOMEM;
    x->data = NULL;
    x->easy = easy;
    x->default_cainfo = NULL;
    x->pool = pool;
    x->loop = loop;
    x->queued = NULL;
    x->work = XFER_WORK_NONE;
    x->running = x->ev_done = x->exited = x->abort = x->closing = 0;
    x->events = 0;
    x->done_code = CURLE_OK;
    x->sock = CURL_SOCKET_BAD;
    x->socket_errno = 0;
    x->on_event = on_event;
    x->on_closed = NULL;
    char *cainfo = NULL;
    if (curl_easy_getinfo(easy, CURLINFO_CAINFO, &cainfo) == CURLE_OK && cainfo) {
        x->default_cainfo = strdup(cainfo);
        if (!x->default_cainfo)
            goto fail;
    }
    int bad = 0;
    bad |= curl_easy_setopt(easy, CURLOPT_NOSIGNAL, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_TCP_KEEPALIVE, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_OPENSOCKETFUNCTION, on_open_socket) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_OPENSOCKETDATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_CLOSESOCKETFUNCTION, on_close_socket) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_CLOSESOCKETDATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_XFERINFOFUNCTION, on_progress) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_XFERINFODATA, x) != CURLE_OK;
    bad |= curl_easy_setopt(easy, CURLOPT_NOPROGRESS, 0L) != CURLE_OK;
    if (bad || pthread_cond_init(&x->cv, NULL) != 0)
        goto fail;
    if (uv_async_init(loop, &x->async, on_async) < 0) {
        pthread_cond_destroy(&x->cv);
        goto fail;
    }
    x->async.data = x;
    uv_unref((uv_handle_t *)&x->async);
    pthread_mutex_lock(&pool->mu);
    pool->xfers++;
    pthread_mutex_unlock(&pool->mu);
    return 0;
fail:
    curl_easy_cleanup(easy); /* no connection yet: nothing to wait for */
    free(x->default_cainfo);
    x->default_cainfo = NULL;
    x->easy = NULL;
    return -ENOMEM;
}

int xfer_start(struct xfer *x)
{
    xfer_lock(x);
    if (x->work != XFER_WORK_NONE || x->closing) {
        xfer_unlock(x);
        return -EBUSY;
    }
    x->abort = 0;
    x->socket_errno = 0;
    int rc = queue_locked(x, XFER_WORK_PERFORM);
    xfer_unlock(x);
    if (rc < 0)
        return -ENOMEM;
    uv_ref((uv_handle_t *)&x->async);
    return 0;
}

int xfer_stop_locked(struct xfer *x, CURLcode *result)
{
    struct xfer_pool *pool = x->pool;
    int ended = x->ev_done;
    *result = x->done_code;
    if (x->work != XFER_WORK_NONE) {
        x->abort = 1;
        if (!x->running) {
            /* not taken by a thread yet: simply taken back */
            struct xfer **p = &pool->head, *prev = NULL;
            while (*p && *p != x) {
                prev = *p;
                p = &(*p)->queued;
            }
            if (*p) {
                *p = x->queued;
                if (pool->tail == x)
                    pool->tail = prev;
                pool->queued--;
            }
            x->work = XFER_WORK_NONE;
        } else if (x->sock != CURL_SOCKET_BAD) {
            shutdown(x->sock, SHUT_RDWR); /* a blocked read returns at once */
        }
        pthread_cond_broadcast(&x->cv); /* a callback waiting in xfer_wait_locked */
        while (x->work != XFER_WORK_NONE)
            pthread_cond_wait(&x->cv, &pool->mu);
    }
    x->events = 0;
    x->ev_done = 0;
    return ended;
}

void xfer_close(struct xfer *x, xfer_closed_cb on_closed)
{
    x->closing = 1;
    x->on_closed = on_closed;
    xfer_lock(x);
    int rc = x->work == XFER_WORK_NONE ? queue_locked(x, XFER_WORK_EXIT) : -1;
    xfer_unlock(x);
    if (rc < 0) {
        /* no thread to take it (or misuse: work in flight): cleaned up
         * here rather than leaked */
        CURLcode ignored;
        xfer_lock(x);
        (void)xfer_stop_locked(x, &ignored);
        xfer_unlock(x);
        close_briefly(x->easy);
        x->easy = NULL;
        uv_close((uv_handle_t *)&x->async, on_async_closed);
        return;
    }
    uv_ref((uv_handle_t *)&x->async);
}
