/* sender: the SMTP pool of `relance serve`. One smtp channel per
 * configured account (its connection reused across messages), one
 * libcurl multi on the loop for all of them with a pool-wide cap on open
 * connections, the accounts' secrets (read from password_env or
 * password_file at start, never logged; xoauth2 accounts take a bearer
 * token from oauth2.c before each message, refreshed once and tried again
 * if the server refuses it) and the DKIM keys (loaded once).
 * Messages for one account go out one after another, in submit order.
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
#include <uv.h>

#define SENDER_MAX_CONNECTIONS 100
#define SENDER_DRAIN_MS 10000 /* closing: how long a body on the wire may take to finish */

struct sender;

typedef void (*sender_cb)(const struct smtp_result *r, void *arg);
/* Called when the account's message body is about to go out (libcurl
 * asked for it after the server's 354): the point of no return. The body
 * is held until sender_body_release. */
typedef void (*sender_body_cb)(void *arg);

/* Reads every account's secret and every DKIM key. NULL with a reason in
 * err (naming the account or domain, never the secret). */
struct sender *sender_new(uv_loop_t *loop, const struct config *cfg, char *err, size_t errlen);

/* A signed message (rc 0: msg is the new buffer, the signature first) or
 * a reason (rc -1: msg is NULL; the unsigned message has been freed). */
typedef void (*sender_signed_cb)(void *arg, int rc, char *msg, size_t len, const char *err);

/* Signs msg with the DKIM key of from_domain, if one is configured, in
 * libuv's thread pool (an RSA signature costs about a millisecond, which
 * on the loop would hold every connection up). Returns 1 when there is
 * nothing to sign (msg untouched, cb never fires), 0 when queued (msg
 * passes to the sender; cb fires exactly once, also while the sender
 * closes, which waits for it), or -1 when memory is short (msg
 * untouched). */
int sender_sign(struct sender *s, const char *from_domain, char *msg, size_t len, sender_signed_cb cb, void *arg)
    __attribute__((warn_unused_result));

/* Queues msg (ownership passes to the sender) from account to rcpt.
 * Returns 0, or -1 when the account is unknown or memory is short. */
int sender_submit(struct sender *s, const char *account, const char *rcpt, char *msg, size_t len,
                  sender_cb cb, sender_body_cb on_body, void *arg) __attribute__((warn_unused_result));

/* The body of account's message in flight is held at the point of no
 * return (sender_body_cb has fired): let it go once that is recorded
 * (ok), or give the message up (!ok; its callback fires, deferred). */
void sender_body_release(struct sender *s, const char *account, int ok);

/* Messages queued or in flight. */
size_t sender_pending(const struct sender *s);

/* The OAuth2 tokens of the xoauth2 accounts, for others who log in as
 * them (the IMAP watcher). Owned by the sender: NULL once sender_close
 * has begun to close it, so ask again each time rather than keep it. */
struct oauth2 *sender_oauth2(struct sender *s);

/* Closes in two phases. What is queued is deferred at once, a transfer
 * before its body is cut (deferred), a held body is given up (deferred);
 * a body on the wire finishes first (its real outcome), for at most
 * SENDER_DRAIN_MS, else it is cut (unknown). Every callback fires once,
 * some from inside this call. Then connections and handles close,
 * on_closed fires and s is freed. */
void sender_close(struct sender *s, void (*on_closed)(void *arg), void *arg);

#endif
