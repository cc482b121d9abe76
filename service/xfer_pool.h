/* xfer_pool: runs a libcurl easy transfer on a pool thread and reports on
 * the loop. One struct xfer, embedded in its owner (smtp.c's and imap.c's
 * channels), is one easy handle whose transfers run one at a time with
 * curl_easy_perform on a thread of a struct xfer_pool, and whose events
 * reach the loop through the xfer's own uv_async.
 *
 * Why threads: libcurl 7.88 waits synchronously inside the done phase of
 * the pingpong protocols (SMTP's reply to the final dot, IMAP's tagged
 * answer to APPEND) and when it closes their connections (QUIT, LOGOUT).
 * On the loop, a silent server would stall every account, PostgreSQL I/O
 * and the HTTP listener; on a thread of its own it holds only that thread.
 *
 * Threads: one per transfer in flight, started when none is idle, up to
 * the pool's cap (beyond it a transfer waits for a thread; a stuck one
 * frees its thread within its own timeouts). The loop and the threads meet
 * only under the pool's one mutex (xfer_lock), which owners also use for
 * the state they share with their transfer's callbacks.
 *
 * Contract: the loop never touches the easy handle while its transfer is
 * queued or running (from xfer_start until on_event reports it done); the
 * easy handle's callbacks run on the thread. on_event fires on the loop,
 * never from inside xfer_start. xfer_stop_locked ends a transfer at once:
 * the socket shut down (a blocked read returns) and libcurl's progress
 * callback told to abort (libcurl calls it at least once a second, in the
 * done phase's wait too). xfer_close cleans the easy handle up on a pool
 * thread (which may send QUIT or LOGOUT and wait, briefly: XFER_CLOSE_
 * TIMEOUT_S), never on the loop. */
#ifndef RELANCE_XFER_POOL_H
#define RELANCE_XFER_POOL_H

#include <curl/curl.h>
#include <pthread.h>
#include <uv.h>

/* How long a closing channel's connection may wait for its QUIT's or
 * LOGOUT's answer, on its pool thread. */
#define XFER_CLOSE_TIMEOUT_S 2L

struct xfer_pool;

/* A pool of at most max_threads threads (0: 1), started as needed.
 * NULL when out of memory. */
struct xfer_pool *xfer_pool_new(size_t max_threads);

/* Waits for the pool's threads to leave, once the work queued on them is
 * done (call it after closing its channels). The pool is freed when the
 * last of its channels has closed too. */
void xfer_pool_close(struct xfer_pool *pool);

struct xfer;

/* On the loop: the thread posted events (xfer_post_locked's bits), and/or
 * the transfer is done (done set, result its CURLcode). The easy handle is
 * the loop's again when done is set: on_event may start the next transfer. */
typedef void (*xfer_event_cb)(struct xfer *x, unsigned events, int done, CURLcode result);

/* Fires on the loop once the easy handle is cleaned up and the xfer's
 * handle closed: the owner may free the memory x lives in. */
typedef void (*xfer_closed_cb)(struct xfer *x);

enum xfer_work { XFER_WORK_NONE, XFER_WORK_PERFORM, XFER_WORK_EXIT };

/* Fields marked (mu) are read and written under the pool's mutex; the
 * others are the loop's. Owners read none of them but data and easy. */
struct xfer {
    void *data;              /* the owner's */
    CURL *easy;              /* the owner's to configure while no transfer runs */
    char *default_cainfo;    /* libcurl's built-in CA bundle, for transfers without a CA file */
    struct xfer_pool *pool;
    uv_loop_t *loop;
    uv_async_t async;        /* a thread -> the loop: events, done, exited */
    pthread_cond_t cv;       /* (mu) the work ended, or xfer_wake_locked */
    struct xfer *queued;     /* (mu) next in the pool's queue */
    enum xfer_work work;     /* (mu) set by the loop, back to NONE by the thread when done */
    int running;             /* (mu) a thread has taken the work */
    unsigned events;         /* (mu) posted by the thread, not yet told */
    int ev_done;             /* (mu) the transfer ended with done_code, not yet told */
    CURLcode done_code;      /* (mu) */
    int exited;              /* (mu) the easy handle is cleaned up */
    int abort;               /* (mu) xfer_stop_locked: end the transfer now */
    int closing;             /* xfer_close was called: no more on_event */
    curl_socket_t sock;      /* (mu) the connection's socket, CURL_SOCKET_BAD when none */
    int socket_errno;        /* why the last socket() failed, else 0 (the thread's until done) */
    xfer_event_cb on_event;
    xfer_closed_cb on_closed;
};

/* Sets x up: a new easy handle (x->easy, cleaned up by xfer_close) whose
 * transfers run on pool's threads, with on_event called on loop. The
 * handle has what every channel's needs: no signals, TCP keepalive, and
 * the socket open/close and progress callbacks this module ends transfers
 * with (CURLOPT_OPENSOCKET*, CLOSESOCKET*, XFERINFO*, NOPROGRESS: owners
 * must leave them); the owner sets the rest. Returns 0, or -ENOMEM after
 * which x holds nothing. Once it returned 0, x is closed with xfer_close,
 * even when the owner's own set-up fails after it. */
int xfer_init(struct xfer *x, uv_loop_t *loop, struct xfer_pool *pool, xfer_event_cb on_event)
    __attribute__((warn_unused_result));

/* Runs curl_easy_perform on x's easy handle on a pool thread; on_event
 * tells its end. Returns 0, -EBUSY while x has work, or -ENOMEM when no
 * thread can run it (then on_event never fires for it). Loop only. */
int xfer_start(struct xfer *x) __attribute__((warn_unused_result));

/* The pool's mutex, and waiting on it from a transfer's callback (for
 * xfer_wake_locked or an abort; check xfer_aborted_locked after). */
void xfer_lock(struct xfer *x);
void xfer_unlock(struct xfer *x);
void xfer_wait_locked(struct xfer *x);
void xfer_wake_locked(struct xfer *x);
int xfer_aborted_locked(const struct xfer *x);

/* From a transfer's callback: or-s events into what on_event will be
 * told, and wakes the loop. */
void xfer_post_locked(struct xfer *x, unsigned events);

/* On the loop, under xfer_lock: ends x's work now (work not yet taken by
 * a thread is taken back; a running transfer is aborted and waited for:
 * at most about a second) and drops what on_event was not told yet.
 * Returns 1 when a transfer had ended unreported (*result: its code), else
 * 0. After it, on_event fires no more for that work. */
int xfer_stop_locked(struct xfer *x, CURLcode *result);

/* On the loop, after xfer_stop_locked (or with nothing in flight): the
 * easy handle is cleaned up on a pool thread (a live connection is closed
 * politely, within XFER_CLOSE_TIMEOUT_S), then x's handle closes and
 * on_closed fires on the loop. */
void xfer_close(struct xfer *x, xfer_closed_cb on_closed);

#endif
