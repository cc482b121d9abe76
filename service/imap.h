/* imap: the IMAP client. One struct imap is one mailbox account's
 * channel: one libcurl easy handle running one command at a time on a
 * thread of a struct xfer_pool (imap.c says why: libcurl 7.88 waits
 * synchronously after APPEND and at LOGOUT), whose connection stays with
 * the channel and is reused by the next command (libcurl reuses it for the
 * same host, TLS settings and credentials), so a watcher pass of EXAMINE,
 * UID SEARCH and several UID FETCHes speaks over one login.
 *
 * Read-only by construction where it reads: EXAMINE (SELECT's read-only
 * twin), STATUS, UID SEARCH and UID FETCH with BODY.PEEK (never BODY[],
 * which sets \Seen), and fetches are bounded (a header prefix and a body
 * prefix, never a whole large message). The one write is APPEND, for
 * copies of sent messages. CLOSE is never sent: on a mailbox opened with
 * SELECT it expunges what the user's own client flagged \Deleted.
 *
 * A pure transport: no logging, no database, no retries; the secret is
 * handed to libcurl and never copied into results. The response reader
 * and parsers are pure and live in lib/imap_parse.c.
 *
 * Callback contract (as libuv's): if an operation returns an error its
 * callback never fires; otherwise it fires exactly once, never from
 * inside the call that started it — except imap_close, which ends an
 * operation in flight by firing its callback with -ECANCELED inside. */
#ifndef RELANCE_IMAP_H
#define RELANCE_IMAP_H

#include "imap_parse.h"
#include "xfer_pool.h"

#include <stddef.h>
#include <stdint.h>
#include <time.h>

enum imap_tls {
    IMAP_TLS_REQUIRED, /* imap:// with STARTTLS required, imaps:// implicit */
    IMAP_TLS_NONE,     /* plaintext imap:// (test servers only) */
};

enum imap_auth {
    IMAP_AUTH_PASSWORD, /* LOGIN / AUTHENTICATE PLAIN with username + password */
    IMAP_AUTH_XOAUTH2,  /* AUTHENTICATE XOAUTH2 with username + a bearer token */
};

/* Where and how to log in. The strings are borrowed: they must stay valid
 * while the struct imap lives. */
struct imap_account {
    const char *url;      /* imap://host[:143] or imaps://host[:993]; any path is ignored */
    enum imap_tls tls;
    enum imap_auth auth;
    const char *username;
    const char *password; /* IMAP_AUTH_PASSWORD */
    /* IMAP_AUTH_XOAUTH2: asked for the current access token before each
     * command (the OAuth2 module owns tokens and their refresh; the
     * string must stay valid until the command's callback has fired).
     * NULL or a NULL answer fails the command with -EAGAIN. */
    const char *(*bearer)(void *arg);
    void *bearer_arg;
    const char *ca_file;  /* extra trusted CAs (PEM); NULL: the system's */
    long connect_timeout_ms; /* 0: 30 s */
    long timeout_ms;         /* one command, connecting included; 0: 120 s */
    long idle_timeout_s;     /* do not reuse a connection idle this long; 0: 300 s */
};

#define IMAP_TEXT_MAX 256

/* One message of a fetch. */
struct imap_message {
    uint32_t uid, size;       /* size: RFC822.SIZE, the whole message */
    int seen;                 /* \Seen was set when fetched */
    const char *header;       /* raw header prefix (with its blank line when whole) */
    size_t header_len;
    const char *body;         /* raw body prefix */
    size_t body_len;
};

/* What an operation found. Pointers are valid only during the callback. */
struct imap_reply {
    /* 0, or: -ECANCELED (imap_close), -EACCES (login refused), -ENOENT
     * (the folder does not exist or cannot be selected), -EIO (connection,
     * TLS, timeout), -E2BIG (libcurl refused an answer as too large:
     * ask for fewer messages at once), -EPROTO (the server's answer could not be read or
     * the command was refused), -EAGAIN (no OAuth2 token yet). */
    int status;
    CURLcode curl_code;
    char text[IMAP_TEXT_MAX]; /* the server's last tagged answer, else libcurl's error */
    /* imap_status and imap_examine */
    uint32_t uidnext, uidvalidity;
    uint32_t exists;          /* imap_examine: messages in the folder */
    /* imap_search: the UIDs at or above the asked one, ascending */
    const uint32_t *uids;
    size_t n_uids;
    /* imap_fetch: the asked messages that still exist, by UID ascending
     * (an expunged one is simply absent) */
    const struct imap_message *messages;
    size_t n_messages;
    size_t bytes_read;        /* bytes of responses this command read */
    /* imap_sent_folder: the \Sent folder, else "Sent" (special_use 0) */
    const char *folder;
    int special_use;
};

struct imap;

typedef void (*imap_cb)(struct imap *im, const struct imap_reply *r, void *arg);

/* A channel for account (borrowed) whose commands run on pool's threads
 * and whose callbacks fire on loop. The pool must outlive it: close the
 * channel, let its close callback fire, then close the pool. NULL when out
 * of memory or the account cannot be used (URL scheme, TLS off on imaps,
 * missing credentials). */
struct imap *imap_new(uv_loop_t *loop, struct xfer_pool *pool, const struct imap_account *account);

/* Each returns 0, -EBUSY while a command is in flight, -EINVAL for bad
 * arguments, -ENOMEM. */

/* STATUS folder (UIDNEXT UIDVALIDITY), without selecting it. Only for a
 * connection that has no folder selected (RFC 3501 6.3.10: a server may
 * answer STATUS on the selected folder from a stale view; Dovecot does);
 * the watcher uses imap_examine. */
int imap_status(struct imap *im, const char *folder, imap_cb cb, void *arg) __attribute__((warn_unused_result));
/* EXAMINE folder: selects it read-only, which refreshes the connection's
 * view of it (new mail included, on a connection held since the last
 * pass), and reads UIDVALIDITY, UIDNEXT and EXISTS from the answer. The
 * commands that follow on this channel for the same folder run on that
 * view. A server that does not send UIDNEXT fails it with -EPROTO. */
int imap_examine(struct imap *im, const char *folder, imap_cb cb, void *arg) __attribute__((warn_unused_result));
/* UID SEARCH UID from:* in folder: the UIDs >= from; with since (not
 * 0), only messages the server received on or after that day (UTC). */
int imap_search(struct imap *im, const char *folder, uint32_t from, time_t since, imap_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* UID FETCH of uids[0..n) (n <= IMAP_FETCH_BATCH, ascending, borrowed
 * until the call returns; as many as imap_fetch_plan says, else libcurl
 * may fail the answer with -E2BIG) in one command, with
 * BODY.PEEK: RFC822.SIZE,
 * FLAGS, the first IMAP_FETCH_HEADER_MAX bytes of each header and the
 * first body_max (<= IMAP_FETCH_BODY_MAX; 0: none) bytes of each body.
 * Never sets \Seen. */
int imap_fetch(struct imap *im, const char *folder, const uint32_t *uids, size_t n, size_t body_max, imap_cb cb,
               void *arg) __attribute__((warn_unused_result));
/* UID FETCH of uids[0..n) (n <= IMAP_SIZES_MAX, ascending) asking only
 * RFC822.SIZE: messages gives each one's uid and size (no header, no
 * body), so the caller can plan its fetches (imap_fetch_plan). */
int imap_fetch_sizes(struct imap *im, const char *folder, const uint32_t *uids, size_t n, imap_cb cb, void *arg)
    __attribute__((warn_unused_result));
/* The folder for copies of sent mail: the one flagged \Sent, else the
 * best by name (imap_sent_rank), else "Sent" (which may not exist).
 * Reads CAPABILITY first, once per channel (cached for its life): with
 * SPECIAL-USE and LIST-EXTENDED it lists with RETURN (SPECIAL-USE), else
 * with a plain LIST "" "*" (Courier answers NO to the RETURN form). */
int imap_sent_folder(struct imap *im, imap_cb cb, void *arg) __attribute__((warn_unused_result));
/* APPEND data[0..len) (an RFC 5322 message, CRLF line ends; borrowed
 * until the callback) to folder, flagged \Seen. */
int imap_append(struct imap *im, const char *folder, const char *data, size_t len, imap_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Makes the next command open a new connection (after a failure that may
 * have left the cached one confused). */
void imap_reconnect(struct imap *im);

/* Closes im. A command in flight is ended at once (its connection
 * dropped; the loop waits for its thread: about a second at most) and its
 * callback fires inside this call with -ECANCELED. May be called from
 * inside im's own callback (closed when it returns). The connection is
 * closed (LOGOUT, within XFER_CLOSE_TIMEOUT_S) on a pool thread; then im
 * is freed and on_closed (may be NULL) fires on the loop with arg. */
void imap_close(struct imap *im, void (*on_closed)(void *arg), void *arg);

#endif
