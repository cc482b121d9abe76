/* imap: the IMAP client. One struct imap is one mailbox account's
 * channel: one libcurl easy handle running one command at a time on a
 * shared struct curl_uv, whose connection stays in the multi's cache and
 * is reused by the next command (libcurl reuses it for the same host,
 * TLS settings and credentials), so a watcher pass of STATUS, UID SEARCH
 * and several UID FETCHes speaks over one login.
 *
 * Read-only by construction where it reads: EXAMINE (SELECT's read-only
 * twin), STATUS, UID SEARCH and UID FETCH with BODY.PEEK (never BODY[],
 * which sets \Seen), and fetches are bounded (a header prefix and a body
 * prefix, never a whole large message). The one write is APPEND, for
 * copies of sent messages. CLOSE is never sent: on a mailbox opened with
 * SELECT it expunges what the user's own client flagged \Deleted.
 *
 * A pure transport: no logging, no database, no retries; the secret is
 * handed to libcurl and never copied into results. The response parsing
 * is pure and exposed below for tests.
 *
 * Callback contract (as libuv's): if an operation returns an error its
 * callback never fires; otherwise it fires exactly once, never from
 * inside the call that started it — except imap_close, which ends an
 * operation in flight by firing its callback with -ECANCELED inside. */
#ifndef RELANCE_IMAP_H
#define RELANCE_IMAP_H

#include "curl_uv.h"

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

/* Special-use attributes (RFC 6154) and the LIST flags that matter. */
enum {
    IMAP_LIST_SENT = 1 << 0,
    IMAP_LIST_JUNK = 1 << 1,
    IMAP_LIST_DRAFTS = 1 << 2,
    IMAP_LIST_TRASH = 1 << 3,
    IMAP_LIST_ARCHIVE = 1 << 4,
    IMAP_LIST_ALL = 1 << 5,
    IMAP_LIST_NOSELECT = 1 << 6, /* \Noselect or \NonExistent */
};

/* Bounds of one fetch: the header's first bytes and the body's. */
#define IMAP_FETCH_HEADER_MAX 65536
#define IMAP_FETCH_BODY_MAX 65536

/* UIDs in one fetch: one round trip for many messages (one at a time
 * read about 200 a second). */
#define IMAP_FETCH_BATCH 50
/* libcurl 7.88.1 (as Debian ships it) fails a command with "Too large
 * response headers" (-E2BIG here) once what it charges for the answer's
 * lines passes 300 KiB, and every IMAP response counts: measured against
 * Dovecot, each response is charged about what is left of the read behind
 * it, so an answer of k responses weighing W bytes costs about W * k / 2
 * (10 messages of 1.4 KB pass, 20 fail; 100 sizes pass, 200 fail; one
 * 64 KiB message passes). imap_fetch_plan keeps that under
 * IMAP_FETCH_CHARGE_MAX, a third below libcurl's limit. */
#define IMAP_FETCH_CHARGE_MAX (200 * 1024)
/* UIDs in one imap_fetch_sizes (about 45 bytes of answer each: 64 of
 * them are charged about 90 KiB). */
#define IMAP_SIZES_MAX 64

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

/* A channel on cu (which must outlive it) for account (borrowed). NULL
 * when out of memory or the account cannot be used (URL scheme, TLS off
 * on imaps, missing credentials). */
struct imap *imap_new(struct curl_uv *cu, const struct imap_account *account);

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

/* Frees im. A command in flight is abandoned (its connection closed) and
 * its callback fires inside this call with -ECANCELED. May be called from
 * inside im's own callback (im is freed when it returns); must not be
 * called from inside a libcurl callback. */
void imap_close(struct imap *im);

/* ---- pure parts, exposed for tests ------------------------------------ */

/* Splits the server's byte stream (as libcurl hands it to the header
 * callback, in pieces of any size) into responses: one line, or a line
 * with literals ({N} then N bytes) and what follows them up to the CRLF
 * that ends it. Stored bytes of one response are capped at max; a longer
 * one is delivered cut, with truncated set. */
struct imap_reader {
    char *buf;
    size_t len, cap, max;
    uint64_t literal_left; /* literal bytes still to come */
    char tail[24];         /* the last bytes of the current line, for {N} */
    size_t tail_len;
    int truncated;
    int failed;            /* out of memory */
};

typedef void (*imap_response_cb)(void *arg, const char *resp, size_t len, int truncated);

void imap_reader_init(struct imap_reader *r, size_t max);
/* Feeds p[0..n); on_response fires for each response completed. Returns
 * 0, or -ENOMEM (the reader then drops what it cannot hold). */
int imap_reader_feed(struct imap_reader *r, const char *p, size_t n, imap_response_cb on_response, void *arg)
    __attribute__((warn_unused_result));
/* True when the stream ended in the middle of a response (a literal or a
 * line not finished): what was read cannot be trusted. */
int imap_reader_pending(const struct imap_reader *r);
void imap_reader_reset(struct imap_reader *r);
void imap_reader_free(struct imap_reader *r);

/* The parsers take one whole response (as the reader delivers it) and
 * return 0 when it is of their kind and readable, else -1. */

/* "* STATUS mailbox (UIDNEXT n UIDVALIDITY m ...)". mailbox gets the
 * name (quoted, literal or atom), cut to mailbox_size - 1. A missing item
 * is left 0. */
int imap_parse_status(const char *resp, size_t len, char *mailbox, size_t mailbox_size, uint32_t *uidnext,
                      uint32_t *uidvalidity);

/* How many of the messages of sizes[0..n) (RFC822.SIZE; 0 for one known
 * gone) one imap_fetch should ask for: at most cap (<= IMAP_FETCH_BATCH),
 * at least 1, and no more than keeps libcurl's charge for the answer
 * under IMAP_FETCH_CHARGE_MAX (each message weighs its fetched prefixes,
 * at most IMAP_FETCH_HEADER_MAX + IMAP_FETCH_BODY_MAX, and its FETCH
 * line). */
size_t imap_fetch_plan(const uint32_t *sizes, size_t n, size_t cap);

/* What a SELECT or EXAMINE answer says of the folder. */
struct imap_select {
    uint32_t uidvalidity, uidnext, exists;
    int has_uidnext;
};
/* One untagged response of a SELECT or EXAMINE answer: "* OK [UIDNEXT n]",
 * "* OK [UIDVALIDITY n]" or "* n EXISTS" sets its field of sel (the
 * others are left as they are). */
int imap_parse_select(const char *resp, size_t len, struct imap_select *sel);

/* "* SEARCH n n ...": calls each(arg, n) for every number. */
int imap_parse_search(const char *resp, size_t len, void (*each)(void *arg, uint32_t n), void *arg);

struct imap_fetch_data {
    uint32_t seq, uid, size;
    int has_uid, has_size, has_flags, seen;
    const char *header; /* BODY[HEADER] (also BODY[HEADER]<0>); points into resp */
    size_t header_len;
    int has_header;
    const char *body;   /* BODY[TEXT] */
    size_t body_len;
    int has_body;
};
/* "* n FETCH (UID u RFC822.SIZE s FLAGS (...) BODY[HEADER]<0> {N}..." */
int imap_parse_fetch(const char *resp, size_t len, struct imap_fetch_data *out);

/* "* LIST (\flags) "/" name": the IMAP_LIST_* flags and the name. */
int imap_parse_list(const char *resp, size_t len, int *flags, char *name, size_t name_size);

/* Capabilities (RFC 3501 CAPABILITY) that change what the client sends. */
enum {
    IMAP_CAP_SPECIAL_USE = 1 << 0,   /* RFC 6154 */
    IMAP_CAP_LIST_EXTENDED = 1 << 1, /* RFC 5258: LIST ... RETURN (...) */
    IMAP_CAP_IDLE = 1 << 2,
    IMAP_CAP_UNSELECT = 1 << 3,
};
/* "* CAPABILITY IMAP4rev1 IDLE ..." or "* OK [CAPABILITY ...] text": the
 * IMAP_CAP_* it lists (names case-insensitive; others ignored). */
int imap_parse_capability(const char *resp, size_t len, int *caps);

/* How much a folder's name (as LIST gives it: modified UTF-7, delim its
 * hierarchy delimiter, 0 for none) says "sent mail", for servers that
 * flag no folder \Sent: 0 is best ("Sent"), then "Sent Items", "Sent
 * Messages", "Sent Mail" and the usual localised names (compared in
 * UTF-8, case-insensitively); the same under "INBOX" + delim (Courier's
 * INBOX.Sent) ranks just after its top-level twin. -1: not such a name. */
int imap_sent_rank(const char *name, char delim);

/* "A003 OK text": 1 when resp is a tagged answer (copies "OK text" into
 * text), else 0. */
int imap_parse_tagged(const char *resp, size_t len, char *text, size_t text_size);

/* folder as an IMAP quoted string ("INBOX", "Sent Items"), into out.
 * Returns 0, or -1 when it does not fit or holds CR, LF or NUL. */
int imap_quote(const char *folder, char *out, size_t out_size);

#endif
