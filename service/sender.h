/* sender: the way out. With transport smtp, the SMTP pool of `relance
 * serve`: one smtp channel per configured account (its connection reused
 * across messages), one libcurl multi on the loop for all of them with a
 * pool-wide cap on open connections, the accounts' secrets (read from
 * password_env or password_file at start, never logged; xoauth2 accounts
 * take a bearer token from the server's oauth2 store before each message,
 * refreshed once and tried again if the server refuses it). With
 * transport capture, one capture channel that writes each message into a
 * Maildir (how users try a sequence end to end, and how the scheduler is
 * tested) and reports it sent through the same callback. Both sign with
 * the DKIM keys (loaded once) before anything goes out, so a captured
 * message is what would really be sent. Messages for one account go out
 * one after another, in submit order.
 *
 * Callback contract: if sender_submit fails its callback never fires;
 * otherwise it fires exactly once — from the loop, or inside
 * sender_submit itself when libcurl refuses to start the transfer (then
 * as deferred). */
#ifndef RELANCE_SENDER_H
#define RELANCE_SENDER_H

#include "config.h"
#include "smtp.h"

#include <stddef.h>
#include <stdint.h>
#include <uv.h>

struct sender;

/* What became of one message. r is the SMTP outcome (capture: sent, with
 * the text "captured"); or r is NULL and held says why the message could
 * not be made ready to go (its DKIM signature failed, the capture folder
 * cannot be written): nothing went out, and the step is to be held. msg
 * is the message as it went out (signed), valid during the call only.
 * not_sent: the sender was closing and the message never reached SMTP
 * (still queued, or not yet signed); r says deferred, and nothing of it
 * is to be recorded: the stop gives the row back, due at once. */
struct sender_report {
    const struct smtp_result *r;
    const char *held;
    const char *msg;
    size_t len;
    int not_sent;
};
typedef void (*sender_cb)(const struct sender_report *rep, void *arg);
/* Called when the account's message body is about to go out (libcurl
 * asked for it after the server's 354): the point of no return. The body
 * is held until sender_body_release. Never called for capture. */
typedef void (*sender_body_cb)(void *arg);

/* Reads every account's secret and every DKIM key. oauth2 (the tokens of
 * xoauth2 accounts; the server's, shared with the IMAP watcher) is
 * borrowed and must outlive the sender. With capture_dir (transport
 * capture) it creates that Maildir and has no SMTP channel. NULL with a
 * reason in err (naming the account or domain, never the secret). */
struct oauth2;
struct sender *sender_new(uv_loop_t *loop, const struct config *cfg, struct oauth2 *oauth2, const char *capture_dir,
                          char *err, size_t errlen);

/* What sender_new checks of one account (smtp URL an smtp:// or smtps://
 * one, tls, auth, the password readable) and of one DKIM key (the file
 * loads), with nothing kept. 0, or negative with a reason in err naming
 * the account or domain and the setting, never a secret (-ENOENT: the
 * password cannot be read now). */
int sender_account_check(const struct config *cfg, const struct config_account *account, char *err, size_t errlen)
    __attribute__((warn_unused_result));
int sender_dkim_check(const struct config_dkim *dkim, char *err, size_t errlen) __attribute__((warn_unused_result));
/* The smtp job serve would send account's mail with (URL, TLS, CA file,
 * login, MAIL FROM), for `relance smtp-send --account`. *secret gets the
 * password (NULL when the login needs none; free it with secret_free),
 * and j->secret borrows it. An xoauth2 account's token is not fetched:
 * j->secret stays NULL. 0, or -1 with a reason in err. */
int sender_account_job(const struct config *cfg, const struct config_account *account, struct smtp_job *j,
                       char **secret, char *err, size_t errlen) __attribute__((warn_unused_result));


/* One message to send. The strings are borrowed during the call. */
struct sender_message {
    const char *account; /* the sending account's address (capture: the From address) */
    const char *rcpt;
    const char *id;      /* its Message-ID without <> (names a captured file) */
    char *msg;           /* RFC 5322, CRLF; ownership passes when the call succeeds */
    size_t len;
};

/* Signs m's message with its domain's DKIM key when one is configured
 * (in libuv's thread pool: an RSA signature costs about a millisecond,
 * which on the loop would hold every connection up) and queues it on its
 * account's channel. Returns 0, or -1 when the account is unknown, the
 * sender is closing or memory is short (m->msg is still the caller's). */
int sender_submit(struct sender *s, const struct sender_message *m, sender_cb cb, sender_body_cb on_body, void *arg)
    __attribute__((warn_unused_result));

/* The body of account's message in flight is held at the point of no
 * return (sender_body_cb has fired): let it go once that is recorded
 * (ok), or give the message up (!ok; its callback fires, deferred). */
void sender_body_release(struct sender *s, const char *account, int ok);

/* Messages queued or in flight. */
size_t sender_pending(const struct sender *s);

/* Closes in two phases. What is queued is deferred at once, a transfer
 * before its body is cut (deferred), a held body is given up (deferred);
 * a body on the wire finishes first (its real outcome), for at most
 * drain_ms (what the server's shutdown_grace leaves), else it is cut
 * (unknown). Every callback fires once, some from inside this call. Then
 * connections and handles close, on_closed fires and s is freed. */
void sender_close(struct sender *s, uint64_t drain_ms, void (*on_closed)(void *arg), void *arg);

#endif
