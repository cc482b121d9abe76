/* smtp: the SMTP transport. One struct smtp is one sending account's
 * channel: one libcurl easy handle, used for one message at a time, whose
 * connection stays open between messages (libcurl reuses it when the next
 * message goes to the same URL with the same credentials) until it has
 * been idle for the job's idle_timeout_s. Its transfers run on a pool
 * thread each, so a server that stops answering holds up only its
 * account; every callback fires on the loop.
 *
 * A recipient with a UTF-8 local part goes only to a server that offers
 * SMTPUTF8 (RFC 6531); elsewhere the send stops before RCPT TO, refused
 * for good (rejected_hard, "553 5.6.7 not sent: ...": relance's words, not
 * the server's).
 *
 * One message, one recipient per smtp_send. The outcome says what the
 * server answered (reply code, enhanced status, text), what it means
 * (enum smtp_outcome, DESIGN semantic 6) and whether the point of no
 * return was passed: the first call of libcurl's upload read callback,
 * which libcurl makes only after the server's 354 to DATA.
 *
 * A pure transport: no database, no retries, and no logging but the
 * channel's state changes at debug level (named by the envelope sender);
 * secrets are handed to libcurl and never copied into results or logs.
 *
 * Callback contract (as libuv's): if smtp_send returns an error its
 * callback never fires; otherwise it fires exactly once, never from inside
 * smtp_send. */
#ifndef RELANCE_SMTP_H
#define RELANCE_SMTP_H

#include <curl/curl.h>
#include <stddef.h>
#include <uv.h>

#include "xfer_pool.h"

enum smtp_outcome {
    SMTP_SENT,            /* 2xx to the message */
    SMTP_DEFERRED,        /* 4xx at any phase; connection/TLS failure before the body */
    SMTP_REJECTED_HARD,   /* 5xx: the address or its domain does not exist (5.1.x, or words that
                             say so unambiguously when no precise status does: mta_words) */
    SMTP_REJECTED_POLICY, /* 5xx block: other 5.7.x, spam, reputation */
    SMTP_REJECTED_OTHER,  /* any other 5xx */
    SMTP_AUTH_FAILED,     /* the server refused our credentials */
    SMTP_UNKNOWN,         /* failed after the body started, without a final reply */
    SMTP_REJECTED_UNAUTHENTICATED, /* 5xx: the receiver refuses the sending account itself (5.7.26,
                                      5.7.515...: refusal.h); the recipient is not at fault */
    SMTP_DEFERRED_POLICY, /* a 4.7.x deferral (throttling, a temporary authentication refusal; not
                             greylisting): deferred, and counted against the account */
};
#define SMTP_OUTCOME_COUNT 9

/* "sent", "deferred", "rejected_hard", "rejected_policy", "rejected_other",
 * "auth_failed", "unknown", "rejected_unauthenticated", "deferred_policy". */
const char *smtp_outcome_name(enum smtp_outcome outcome);

enum smtp_tls {
    SMTP_TLS_REQUIRED, /* smtp:// with STARTTLS required, smtps:// implicit */
    SMTP_TLS_NONE,     /* plaintext smtp:// (test sinks only) */
};

enum smtp_auth {
    SMTP_AUTH_PASSWORD, /* AUTH with username + secret (PLAIN, LOGIN, ...) */
    SMTP_AUTH_XOAUTH2,  /* AUTH XOAUTH2/OAUTHBEARER with username + secret as the bearer token */
    SMTP_AUTH_NONE,     /* no AUTH (test sinks only) */
};

/* Everything one send needs. The strings and the message bytes are
 * borrowed: they must stay valid until the callback has fired. */
struct smtp_job {
    const char *url;       /* smtp://host:587/ehlo-name or smtps://host:465/ehlo-name */
    enum smtp_tls tls;
    enum smtp_auth auth;
    const char *username;  /* password and xoauth2 */
    const char *secret;    /* the password or the bearer token */
    const char *sasl_mech; /* e.g. "PLAIN" or "LOGIN"; NULL lets libcurl pick */
    const char *ca_file;   /* extra trusted CAs (PEM); NULL: the system's */
    const char *mail_from; /* envelope sender */
    const char *rcpt_to;   /* the one recipient */
    const char *data;      /* the RFC 5322 message, CRLF line ends */
    size_t len;
    long connect_timeout_ms; /* 0: 30 s */
    long phase_timeout_ms;   /* each reply, and stalls while sending; 0: 60 s */
    long idle_timeout_s;     /* close the connection after this idle; 0: 60 s */
    /* Optional: called once on the loop when the point of no return has
     * been passed (the body's start, told by the channel's thread). arg is
     * smtp_send's. */
    void (*on_body_start)(void *arg);
    /* With hold_body set, the transfer stops right there, before a byte
     * of the body is sent, until smtp_body_release: the caller makes the
     * point of no return durable first (so a crash can never make it send
     * a step twice), then releases — or gives up with ok = 0, and the
     * message ends deferred, no byte of it sent. */
    int hold_body;
};

#define SMTP_TEXT_MAX 512

struct smtp_result {
    enum smtp_outcome outcome;
    long reply_code;          /* CURLINFO_RESPONSE_CODE: the last reply's code, 0 if none */
    char status[16];          /* enhanced status of that reply ("5.1.1"), "" if none */
    char text[SMTP_TEXT_MAX]; /* the reply's text, else libcurl's error, else "" */
    CURLcode curl_code;
    int mail_accepted;        /* the server took MAIL FROM (what counts against an account's cap) */
    int body_started;         /* the point of no return was passed */
    int local_errno;          /* EMFILE or ENFILE: relance was out of descriptors, the server had not refused
                                 anything (deferred; the server is not at fault); else 0 */
};

struct smtp;

/* r is valid only during the call. The callback may call smtp_send again
 * (the next message on the same connection) or smtp_close. */
typedef void (*smtp_send_cb)(struct smtp *s, const struct smtp_result *r, void *arg);

/* The cap of the sender's xfer_pool (smtp.c says why transfers run on
 * threads): one thread per transfer in flight, started as needed. */
#define SMTP_POOL_MAX 100

/* A channel whose callbacks fire on loop and whose transfers run on
 * pool's threads (the pool must outlive it: close the channel, then the
 * pool). NULL when out of memory. */
struct smtp *smtp_new(uv_loop_t *loop, struct xfer_pool *pool);

/* Sends job's message. Returns 0, -EBUSY while a send is in flight,
 * -EINVAL for a job that cannot be sent (URL scheme, missing fields, TLS
 * off on smtps), -ENOMEM. */
int smtp_send(struct smtp *s, const struct smtp_job *job, smtp_send_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Lets a held body go (ok) or abandons the message (!ok: the callback
 * fires later from the loop, deferred; libcurl ends the transfer itself,
 * so the server never sees an end-of-data mark). Call it from the loop.
 * Returns 0, or -1 when no body is held. */
int smtp_body_release(struct smtp *s, int ok) __attribute__((warn_unused_result));

/* Closes the channel's idle connection politely: one NOOP on the cached
 * connection of job's server and login, then QUIT. job is the channel's
 * (only its connection settings are read; borrowed until cb). cb fires
 * once from the loop when done, whatever happened; sends wait until then
 * (-EBUSY). Returns 0, -EBUSY, -EINVAL, -ENOMEM. If no cached connection
 * is left (the server closed it), libcurl opens one for the NOOP: the
 * caller quits only connections it believes open. */
int smtp_quit(struct smtp *s, const struct smtp_job *job, void (*cb)(struct smtp *s, void *arg), void *arg)
    __attribute__((warn_unused_result));

/* True while a send is paused at its point of no return. */
int smtp_body_held(const struct smtp *s);
/* True while a send is past its point of no return (held or not). */
int smtp_in_body(const struct smtp *s);

/* Closes s (freed once the loop has run its handle's close and a pool
 * thread has closed its connection, with QUIT when idle). A send in
 * flight is ended at once (its socket shut down) and its callback fires
 * inside this call: deferred, or unknown if the body had started; a send
 * that had ended unreported is reported as it ended. The loop waits for
 * the transfer's thread meanwhile: at most about a second (libcurl's
 * progress callback). */
void smtp_close(struct smtp *s);

/* Pure parts, exposed for tests. */

/* Copies the enhanced status code (RFC 3463: class.subject.detail, e.g.
 * "5.1.1") at the start of text, after optional spaces, into out. Returns
 * its length, or 0 (out = "") when text does not start with one. */
size_t smtp_status_parse(const char *text, char *out, size_t out_size);

/* Writes the reply as it is stored and logged: "550 5.1.1 <text>", the
 * enhanced status once. The server's text usually starts with the status
 * already (finish() parses it from there), so it is prepended only when the
 * text lacks it (a status relance set itself). Without a reply code, the
 * text alone. Truncates to out_size. */
void smtp_reply_format(const struct smtp_result *r, char *out, size_t out_size);

/* The classification table. reply_code and status belong to the last
 * reply; final_reply says a reply came after the body started. */
enum smtp_outcome smtp_outcome_classify(CURLcode code, long reply_code, const char *status, const char *text,
                                        int body_started, int final_reply);

#endif
