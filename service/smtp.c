/* smtp: the SMTP transport, off the loop thread. It owns one easy handle
 * per channel (run on xfer_pool's threads), the per-send options
 * (URL and TLS, AUTH, envelope, timeouts),
 * the upload read callback that marks the point of no return, the capture
 * of the server's replies (through libcurl's header callback, which gets
 * every reply line of pingpong protocols) and the classification of the
 * outcome. It does not know accounts, caps, retries or the database, and
 * it logs nothing but its channel's state changes, at debug level: it
 * returns results.
 *
 * Threads: libcurl 7.88 reads the reply to the final dot synchronously,
 * inside its done phase, so on the loop a server that never answers it
 * stalled every account, the mailbox watcher, PostgreSQL and the HTTP
 * listener for a whole phase timeout. So every transfer runs on a thread
 * of a struct xfer_pool (xfer_pool.c: one thread per transfer in flight,
 * curl_easy_perform on the channel's easy handle, shared with imap.c), and
 * a silent server holds only its own transfer's thread, never another
 * account's. The loop and the thread meet under the pool's mutex: the
 * loop hands a send or a quit over, and the thread reports the body's
 * start (the point of no return; a held body then waits, on the thread,
 * for smtp_body_release: that hold is this module's own) and the
 * transfer's end; every callback of this module's API fires on the loop.
 * The loop never touches the easy handle while a thread runs its
 * transfer; smtp_close has the handle cleaned up (an idle connection's
 * QUIT) on a pool thread.
 *
 * Connection reuse: the easy handle keeps a finished transfer's connection
 * and reuses it for the next transfer with the same URL, TLS settings and
 * credentials, so a channel that sends its messages one after the other
 * speaks over one connection: RSET-free, MAIL FROM right after the
 * previous message's 250. A failed transaction makes libcurl close the
 * connection without QUIT; the next send opens a new one.
 * CURLOPT_MAXAGE_CONN stops an idle connection from being reused.
 *
 * Timeouts: each reply within the job's phase timeout
 * (CURLOPT_SERVER_RESPONSE_TIMEOUT, which bounds the done phase's wait
 * too), a stalled upload likewise, the whole transfer within ten phases.
 * smtp_close ends a transfer at once (xfer_stop_locked: the socket shut
 * down, libcurl's progress callback aborting). */
#include "smtp.h"

#include "log.h"
#include "mta_words.h"
#include "refusal.h"

#include <assert.h>
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <strings.h>
#include <unistd.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
#define DEFAULT_PHASE_TIMEOUT_MS 60000L
#define DEFAULT_IDLE_TIMEOUT_S 60L
#define ADDRESS_MAX 320
#define UPLOAD_BUFFER 16384L   /* libcurl's minimum: memory stays flat with many channels */
#define RECEIVE_BUFFER 4096L

static const char *const outcome_names[SMTP_OUTCOME_COUNT] = {
    "sent", "deferred", "rejected_hard", "rejected_policy", "rejected_other", "auth_failed", "unknown",
    "rejected_unauthenticated", "deferred_policy",
};

/* The channel's lifecycle. A send goes IDLE -> ENVELOPE -> RCPT ->
 * (HELD ->) BODY -> IDLE, or back to IDLE from any of them when it fails;
 * a held body given up goes HELD -> ABANDONING -> IDLE; smtp_quit's
 * transfer is IDLE -> QUITTING -> IDLE. */
enum smtp_state {
    SMTP_IDLE,       /* no transfer */
    SMTP_ENVELOPE,   /* a send's transfer: connecting, greeting, EHLO, AUTH, MAIL FROM */
    SMTP_RCPT,       /* RCPT TO went out, so MAIL FROM got its 2xx; DATA is next */
    SMTP_HELD,       /* the point of no return is passed (354 to DATA) and the
                        transfer paused before its first body byte (hold_body) */
    SMTP_ABANDONING, /* a held body was given up: the read callback aborts when
                        libcurl asks it again, no byte of the body sent */
    SMTP_BODY,       /* past the point of no return: the body goes out, then the final reply */
    SMTP_QUITTING,   /* smtp_quit's NOOP and QUIT */
    SMTP_STATE_COUNT
};
static const char *const state_names[] = {"IDLE", "ENVELOPE", "RCPT", "HELD", "ABANDONING", "BODY", "QUITTING"};
_Static_assert(sizeof state_names / sizeof state_names[0] == SMTP_STATE_COUNT, "a name for every state");

/* The transitions, one bit per target state. ENVELOPE may skip RCPT:
 * libcurl tells of RCPT TO through its debug output, whose details are
 * not an invariant of ours. */
#define TO(st) (1u << (st))
static const unsigned state_next[SMTP_STATE_COUNT] = {
    [SMTP_IDLE] = TO(SMTP_ENVELOPE) | TO(SMTP_QUITTING),
    [SMTP_ENVELOPE] = TO(SMTP_RCPT) | TO(SMTP_HELD) | TO(SMTP_BODY) | TO(SMTP_IDLE),
    [SMTP_RCPT] = TO(SMTP_HELD) | TO(SMTP_BODY) | TO(SMTP_IDLE),
    [SMTP_HELD] = TO(SMTP_BODY) | TO(SMTP_ABANDONING) | TO(SMTP_IDLE),
    [SMTP_ABANDONING] = TO(SMTP_IDLE),
    [SMTP_BODY] = TO(SMTP_IDLE),
    [SMTP_QUITTING] = TO(SMTP_IDLE),
};
#undef TO

/* The one event the channel's thread posts besides the transfer's end. */
#define EV_BODY 1u /* the point of no return was passed: tell on_body_start */

/* Fields marked (mu) are shared by the loop and a pool thread and read or
 * written only under the pool's mutex (xfer_lock). The others are the
 * loop's, or the thread's while it runs the channel's transfer (the
 * callbacks' reply buffers, the upload offset); the handover in xfer_pool
 * (work queued, its end reported) orders every access between the two. */
struct smtp {
    struct xfer x;           /* the easy handle, on the pool's threads */
    char rcpt_buf[ADDRESS_MAX + 3];
    struct curl_slist rcpt; /* one element, pointing into rcpt_buf */
    char errbuf[CURL_ERROR_SIZE];
    enum smtp_state state;   /* (mu) */
    char name[ADDRESS_MAX + 1]; /* the last job's envelope sender, naming the channel in logs */

    /* the send in flight */
    const char *data;
    size_t len, off;
    smtp_send_cb cb;
    void *arg;
    void (*on_body_start)(void *arg);
    int hold_body;   /* the job's: pause at the point of no return */
    void (*quit_cb)(struct smtp *s, void *arg);
    void *quit_arg;
    int final_reply; /* a complete reply came after the body started */
    int utf8_rcpt;    /* the recipient's local part is UTF-8: SMTPUTF8 needed */
    int utf8_refused; /* ...and MAIL FROM went without it: stop before RCPT */

    /* replies: the one being read and the last complete one */
    long cur_code;
    char cur_text[SMTP_TEXT_MAX];
    size_t cur_len;
    long last_code;
    char last_text[SMTP_TEXT_MAX];
};

const char *smtp_outcome_name(enum smtp_outcome outcome)
{
    if ((unsigned)outcome >= SMTP_OUTCOME_COUNT)
        return "?";
    return outcome_names[outcome];
}

/* The one place the channel's state changes, said at debug level:
 * "channel HELD -> BODY account=alice@acme.example". The channel is
 * named by its envelope sender, its account's address; nothing secret.
 * The caller holds mu (the loop and the channel's thread both change it). */
static void state_set(struct smtp *s, enum smtp_state to)
{
    int allowed = (state_next[s->state] & (1u << to)) != 0;
    assert(allowed);
    char event[64];
    snprintf(event, sizeof event, "channel %s -> %s", state_names[s->state], state_names[to]);
    /* a release build (no assert) still says so, loudly */
    log_event(allowed ? LOG_DEBUG : LOG_ERROR, "smtp", event, "account", s->name[0] ? s->name : NULL, NULL);
    s->state = to;
}

/* Past the point of no return: the server answered DATA with 354. */
static int past_no_return(enum smtp_state st)
{
    return st == SMTP_HELD || st == SMTP_ABANDONING || st == SMTP_BODY;
}

static enum smtp_state state_get(struct smtp *s)
{
    xfer_lock(&s->x);
    enum smtp_state st = s->state;
    xfer_unlock(&s->x);
    return st;
}

/* state_set from outside mu. */
static void state_move(struct smtp *s, enum smtp_state to)
{
    xfer_lock(&s->x);
    state_set(s, to);
    xfer_unlock(&s->x);
}

/* ---- pure parts */

/* Reads 1 to max digits; returns how many. */
static size_t digits(const char *p, size_t max)
{
    size_t n = 0;
    while (n < max && isdigit((unsigned char)p[n]))
        n++;
    return n;
}

size_t smtp_status_parse(const char *text, char *out, size_t out_size)
{
    if (out_size)
        out[0] = '\0';
    if (!text)
        return 0;
    const char *p = text;
    while (*p == ' ' || *p == '\t')
        p++;
    const char *start = p;
    if (*p != '2' && *p != '4' && *p != '5')
        return 0;
    p++;
    if (*p++ != '.')
        return 0;
    size_t n = digits(p, 3);
    if (n == 0 || isdigit((unsigned char)p[n]))
        return 0;
    p += n;
    if (*p++ != '.')
        return 0;
    n = digits(p, 3);
    if (n == 0 || isdigit((unsigned char)p[n]))
        return 0;
    p += n;
    if (*p && *p != ' ' && *p != '\t' && *p != '\r' && *p != '\n')
        return 0;
    size_t len = (size_t)(p - start);
    if (len + 1 > out_size)
        return 0;
    memcpy(out, start, len);
    out[len] = '\0';
    return len;
}

void smtp_reply_format(const struct smtp_result *r, char *out, size_t out_size)
{
    if (!out_size)
        return;
    if (!r->reply_code) {
        snprintf(out, out_size, "%s", r->text);
        return;
    }
    char st[sizeof r->status];
    int has_status = *r->status && smtp_status_parse(r->text, st, sizeof st) && strcmp(st, r->status) == 0;
    const char *text = r->text;
    if (has_status)
        while (*text == ' ' || *text == '\t')
            text++;
    snprintf(out, out_size, "%ld %s%s%s", r->reply_code, has_status ? "" : r->status,
             *r->status && !has_status ? " " : "", text);
}

static enum smtp_outcome classify_5xx(const char *status, const char *text)
{
    /* status is "5.S.D": subject and detail decide when given */
    if (status && status[0] == '5' && status[1] == '.') {
        int subject = atoi(status + 2);
        const char *dot = strchr(status + 2, '.');
        int detail = dot ? atoi(dot + 1) : 0;
        if (subject == 1) {
            /* 5.1.7 and 5.1.8 are about the sender's address */
            return detail == 7 || detail == 8 ? SMTP_REJECTED_OTHER : SMTP_REJECTED_HARD;
        }
        if (subject == 7)
            return refusal_classify(status, text) == REFUSAL_UNAUTHENTICATED ? SMTP_REJECTED_UNAUTHENTICATED
                                                                              : SMTP_REJECTED_POLICY;
        if (!(subject == 0 && detail == 0))
            return SMTP_REJECTED_OTHER;
    }
    /* No status, or the uninformative 5.0.0: the words decide, read from
     * the table the bounce classifier reads too (mta_words). Ambiguous
     * wordings (OpenSMTPD's "Invalid recipient", also said for a routing
     * rule's refusal) are rejected_other: retried, hard only after the
     * third refusal, because suppressing a deliverable prospect for good
     * costs more than two retries of an address that is really gone. */
    switch (mta_words_reason(text)) {
    case MTA_WORDS_USER_UNKNOWN:
    case MTA_WORDS_HOST_UNKNOWN:
        return SMTP_REJECTED_HARD;
    case MTA_WORDS_POLICY:
        return SMTP_REJECTED_POLICY;
    case MTA_WORDS_AMBIGUOUS:
    case MTA_WORDS_MAILBOX_FULL:
    case MTA_WORDS_NONE:
    case MTA_WORDS_REASON_COUNT:
        break;
    }
    return SMTP_REJECTED_OTHER;
}

enum smtp_outcome smtp_outcome_classify(CURLcode code, long reply_code, const char *status, const char *text,
                                        int body_started, int final_reply)
{
    if (code == CURLE_OK)
        return SMTP_SENT;
    /* past the point of no return, only a final reply tells what happened */
    if (body_started && !final_reply)
        return SMTP_UNKNOWN;
    /* 421 after the body: the server is closing the channel, a reply that
     * can come from a server shutting down after it queued the message
     * (seen with Postfix stopped mid-transaction). Retrying could deliver
     * twice; the step counts as maybe sent. */
    if (body_started && reply_code == 421)
        return SMTP_UNKNOWN;
    if (reply_code >= 400 && reply_code < 500)
        return refusal_classify(status, text) == REFUSAL_TEMPORARY ? SMTP_DEFERRED_POLICY : SMTP_DEFERRED;
    if (code == CURLE_LOGIN_DENIED)
        return SMTP_AUTH_FAILED;
    /* RFC 4954: 534 mechanism too weak, 535 invalid credentials, 538
     * encryption required for the mechanism, 530 authentication required */
    if (reply_code == 534 || reply_code == 535 || reply_code == 538 ||
        (reply_code == 530 && text && strcasestr(text, "auth")))
        return SMTP_AUTH_FAILED;
    if (reply_code >= 500 && reply_code < 600)
        return classify_5xx(status, text);
    if (body_started)
        return reply_code >= 200 && reply_code < 300 ? SMTP_SENT : SMTP_UNKNOWN;
    /* connection, TLS, timeout: nothing was sent */
    return SMTP_DEFERRED;
}

/* ---- SMTPUTF8 (RFC 6531)
 *
 * libcurl 7.88 writes a recipient's domain as A-labels, and adds SMTPUTF8
 * to MAIL FROM by itself when the server's EHLO offered it and an address
 * of the transaction is not ASCII (lib/smtp.c, smtp_perform_mail); but it
 * sends a UTF-8 local part in RCPT TO whether or not the server offered
 * SMTPUTF8, which RFC 6531 3.2 forbids (and the message's To: header then
 * holds raw UTF-8, valid only under SMTPUTF8: RFC 6532). So the channel
 * reads the MAIL FROM libcurl wrote (on reused connections too, where no
 * EHLO is seen) and, when it lacks SMTPUTF8 for such a recipient, ends the
 * transfer at the server's reply to it: RCPT TO never goes out, and the
 * message is refused for good, as a relaying MTA would bounce it (5.6.7). */

static int utf8_local_part(const char *addr)
{
    const char *at = addr ? strrchr(addr, '@') : NULL;
    for (const char *p = addr; p && p < at; p++)
        if ((unsigned char)*p >= 0x80)
            return 1;
    return 0;
}

/* A command libcurl sent (CURLINFO_HEADER_OUT). */
static void utf8_command(struct smtp *s, const char *data, size_t size)
{
    if (s->utf8_rcpt && size >= 10 && strncasecmp(data, "MAIL FROM:", 10) == 0)
        s->utf8_refused = !memmem(data, size, " SMTPUTF8", 9);
}

/* The outcome of a transaction ended by utf8_command's finding. */
static void utf8_refusal(struct smtp_result *r)
{
    r->outcome = SMTP_REJECTED_HARD; /* no retry can change the server's extensions */
    r->reply_code = 553;
    r->mail_accepted = 0;
    snprintf(r->status, sizeof r->status, "5.6.7");
    snprintf(r->text, sizeof r->text,
             "not sent: the recipient's address has a non-ASCII local part, which needs SMTPUTF8 (RFC 6531), "
             "and this server does not offer SMTPUTF8");
}

/* ---- out of descriptors
 *
 * libcurl 7.88 reports a socket() that failed as CURLE_COULDNT_CONNECT,
 * the code of a server that does not answer, and keeps no errno for it
 * (lib/cf-socket.c); its resolver's socket pair failing reads as a host
 * that cannot be resolved, and the CA file that cannot be opened for TLS
 * as a bad certificate file, after the server's greeting. Either way
 * relance is short of descriptors, not the server at fault:
 * on_open_socket keeps socket()'s errno, and a failure that can come from
 * a local resource, with no error reply to explain it, also looks whether
 * a descriptor can be had right now. */

static int descriptors_short(int err)
{
    return err == EMFILE || err == ENFILE;
}

/* What libcurl says when a descriptor it needed could not be had. */
static int may_be_local(CURLcode code)
{
    return code == CURLE_COULDNT_CONNECT || code == CURLE_COULDNT_RESOLVE_HOST || code == CURLE_SSL_CACERT_BADFILE ||
           code == CURLE_SSL_CERTPROBLEM || code == CURLE_SSL_CONNECT_ERROR || code == CURLE_FAILED_INIT;
}

/* EMFILE or ENFILE when the descriptors a connection needs at once (its
 * socket, and the resolver's pair or the CA file) cannot be had now,
 * else 0. Asked after the failed attempt let its own go, hence all three. */
static int descriptors_short_now(void)
{
    int fds[3], n = 0, err = 0;
    while (n < 3) {
        fds[n] = open("/dev/null", O_RDONLY | O_CLOEXEC);
        if (fds[n] < 0) {
            err = errno;
            break;
        }
        n++;
    }
    while (n > 0)
        close(fds[--n]);
    return descriptors_short(err) ? err : 0;
}

/* The outcome of a send that could not get a descriptor: deferred, with
 * what happened and the limit, no reply and nothing counted. */
static void descriptor_shortage(struct smtp_result *r, int err)
{
    struct rlimit rl;
    char limit[24] = "?";
    if (getrlimit(RLIMIT_NOFILE, &rl) == 0)
        snprintf(limit, sizeof limit, "%llu", (unsigned long long)rl.rlim_cur);
    r->outcome = SMTP_DEFERRED;
    r->local_errno = err;
    r->reply_code = 0;
    r->status[0] = '\0';
    r->mail_accepted = 0;
    snprintf(r->text, sizeof r->text,
             "out of file descriptors (limit %s): relance could not open a socket or file it needed (%s); "
             "the server is not at fault",
             limit, strerror(err));
}

/* ---- libcurl callbacks */

static void append_text(struct smtp *s, const char *p, size_t n)
{
    if (s->cur_len && s->cur_len + 1 < sizeof s->cur_text)
        s->cur_text[s->cur_len++] = ' ';
    size_t room = sizeof s->cur_text - 1 - s->cur_len;
    if (n > room)
        n = room;
    memcpy(s->cur_text + s->cur_len, p, n);
    s->cur_len += n;
    s->cur_text[s->cur_len] = '\0';
}

/* One reply line: "250-text" continues, "250 text" (or "250") ends. */
static void reply_line(struct smtp *s, const char *p, size_t n)
{
    while (n && (p[n - 1] == '\r' || p[n - 1] == '\n'))
        n--;
    if (n < 3 || digits(p, 3) != 3 || (n > 3 && p[3] != ' ' && p[3] != '-'))
        return; /* not a reply line */
    long code = (p[0] - '0') * 100 + (p[1] - '0') * 10 + (p[2] - '0');
    if (s->cur_len == 0 && s->cur_code == 0)
        s->cur_code = code;
    if (n > 4)
        append_text(s, p + 4, n - 4);
    if (n > 3 && p[3] == '-')
        return;
    if (s->cur_code == 221 && s->last_code) {
        /* QUIT's answer when libcurl closes the connection after a failed
         * transaction: the reply that failed it is the one to keep */
        s->cur_code = 0;
        s->cur_len = 0;
        s->cur_text[0] = '\0';
        return;
    }
    s->last_code = s->cur_code;
    memcpy(s->last_text, s->cur_text, s->cur_len + 1);
    s->cur_code = 0;
    s->cur_len = 0;
    s->cur_text[0] = '\0';
    if (past_no_return(state_get(s)))
        s->final_reply = 1;
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userp)
{
    struct smtp *s = userp;
    size_t total = size * nitems;
    if (s->utf8_refused)
        return 0; /* the reply to MAIL FROM: libcurl fails the transfer before RCPT TO */
    const char *p = buf, *end = buf + total;
    while (p < end) {
        const char *nl = memchr(p, '\n', (size_t)(end - p));
        size_t n = nl ? (size_t)(nl - p) + 1 : (size_t)(end - p);
        reply_line(s, p, n);
        p += n;
    }
    return total;
}

/* Sees the commands libcurl sends (CURLINFO_HEADER_OUT) and nothing else
 * — not the AUTH lines' contents, not the body. libcurl sends RCPT TO only
 * after a 2xx to MAIL FROM; MAIL FROM tells whether it asked for SMTPUTF8. */
static int on_debug(CURL *easy, curl_infotype type, char *data, size_t size, void *userp)
{
    struct smtp *s = userp;
    (void)easy;
    if (type == CURLINFO_HEADER_OUT && size >= 8 && strncasecmp(data, "RCPT TO:", 8) == 0) {
        xfer_lock(&s->x);
        if (s->state == SMTP_ENVELOPE)
            state_set(s, SMTP_RCPT);
        xfer_unlock(&s->x);
    }
    if (type == CURLINFO_HEADER_OUT)
        utf8_command(s, data, size);
    return 0;
}

/* The upload read callback, on the channel's thread. libcurl calls it
 * only once the server has answered DATA with 354: its first call is the
 * point of no return, told to the loop (on_body_start); a held body then
 * waits here, before its first byte, for smtp_body_release. The bytes
 * come straight from the caller's buffer. */
static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct smtp *s = userp;
    xfer_lock(&s->x);
    if (!past_no_return(s->state)) {
        state_set(s, s->hold_body ? SMTP_HELD : SMTP_BODY);
        xfer_post_locked(&s->x, EV_BODY);
    }
    while (s->state == SMTP_HELD && !xfer_aborted_locked(&s->x))
        xfer_wait_locked(&s->x);
    int give_up = s->state == SMTP_ABANDONING || xfer_aborted_locked(&s->x);
    xfer_unlock(&s->x);
    if (give_up)
        return CURL_READFUNC_ABORT; /* libcurl fails the transfer: no end-of-data mark */
    size_t room = size * nitems;
    size_t left = s->len - s->off;
    size_t n = left < room ? left : room;
    memcpy(buf, s->data + s->off, n);
    s->off += n;
    return n;
}

/* ---- sending */

static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

/* Reports the send: body_started says whether a byte of the body may have
 * gone (a held body given up, or cut, never did). */
static void finish(struct smtp *s, CURLcode code, int body_started)
{
    struct smtp_result r;
    memset(&r, 0, sizeof r);
    r.curl_code = code;
    r.body_started = body_started;
    r.mail_accepted = s->state != SMTP_ENVELOPE; /* RCPT TO went out */
    long info = 0;
    if (curl_easy_getinfo(s->x.easy, CURLINFO_RESPONSE_CODE, &info) != CURLE_OK)
        info = 0;
    /* A reply seen in this transaction or nothing: never a stale code of
     * the channel's previous message. */
    r.reply_code = s->last_code ? (info ? info : s->last_code) : 0;
    int reply_is_the_story = s->last_code && (code == CURLE_OK || s->last_code >= 400);
    if (reply_is_the_story || (s->last_code && !s->errbuf[0])) {
        copy_text(r.text, sizeof r.text, s->last_text);
        char st[sizeof r.status];
        /* the enhanced status's class must match the reply's */
        if (smtp_status_parse(s->last_text, st, sizeof st) && st[0] == '0' + s->last_code / 100)
            copy_text(r.status, sizeof r.status, st);
    } else {
        copy_text(r.text, sizeof r.text, s->errbuf[0] ? s->errbuf : curl_easy_strerror(code));
    }
    r.outcome = smtp_outcome_classify(code, r.reply_code, r.status, s->last_text, body_started, s->final_reply);
    if (may_be_local(code) && !body_started && s->last_code < 400) {
        int shortage = descriptors_short(s->x.socket_errno) ? s->x.socket_errno : descriptors_short_now();
        if (shortage)
            descriptor_shortage(&r, shortage);
    }
    if (s->utf8_refused)
        utf8_refusal(&r);
    s->utf8_refused = s->utf8_rcpt = 0;
    smtp_send_cb cb = s->cb;
    void *arg = s->arg;
    state_move(s, SMTP_IDLE);
    s->cb = NULL;
    s->arg = NULL;
    s->data = NULL;
    cb(s, &r, arg);
}

static void quit_done(struct smtp *s)
{
    void (*cb)(struct smtp *, void *) = s->quit_cb;
    void *arg = s->quit_arg;
    curl_easy_setopt(s->x.easy, CURLOPT_CUSTOMREQUEST, NULL);
    curl_easy_setopt(s->x.easy, CURLOPT_FORBID_REUSE, 0L);
    state_move(s, SMTP_IDLE);
    s->quit_cb = NULL;
    s->quit_arg = NULL;
    if (cb)
        cb(s, arg);
}

/* A send's transfer ended on its own with result, the channel in state st:
 * reported. A body given up was never sent, not one byte of it. */
static void send_ended(struct smtp *s, CURLcode result, enum smtp_state st)
{
    if (st == SMTP_ABANDONING)
        snprintf(s->errbuf, sizeof s->errbuf, "the point of no return could not be recorded; not sent");
    finish(s, result, st != SMTP_ABANDONING && past_no_return(st));
}

/* On the loop: what the channel's thread reported. The body's start comes
 * first, so on_body_start is told before the send's end (the state is the
 * loop's to read once the transfer is done). */
static void on_event(struct xfer *x, unsigned events, int done, CURLcode result)
{
    struct smtp *s = x->data;
    if ((events & EV_BODY) && s->on_body_start)
        s->on_body_start(s->arg);
    if (!done)
        return;
    enum smtp_state st = state_get(s);
    if (st == SMTP_QUITTING)
        quit_done(s);
    else
        send_ended(s, result, st);
}

static int bad_address(const char *a)
{
    if (!a || !*a || strlen(a) > ADDRESS_MAX)
        return 1;
    for (const char *p = a; *p; p++) {
        unsigned char c = (unsigned char)*p;
        if (c < 0x20 || c == 0x7f || c == '<' || c == '>')
            return 1; /* would break or inject an SMTP command */
    }
    return 0;
}

static int url_scheme(const char *url, int *implicit_tls)
{
    if (!url)
        return -1;
    if (strncasecmp(url, "smtp://", 7) == 0) {
        *implicit_tls = 0;
        return 0;
    }
    if (strncasecmp(url, "smtps://", 8) == 0) {
        *implicit_tls = 1;
        return 0;
    }
    return -1;
}

/* Sets every per-send option; unused ones are reset, since the handle
 * keeps options from the previous send. Returns 0 or -1. */
static int configure(struct smtp *s, const struct smtp_job *job)
{
    CURL *e = s->x.easy;
    long connect_ms = job->connect_timeout_ms > 0 ? job->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    long phase_ms = job->phase_timeout_ms > 0 ? job->phase_timeout_ms : DEFAULT_PHASE_TIMEOUT_MS;
    long phase_s = (phase_ms + 999) / 1000;
    long idle_s = job->idle_timeout_s > 0 ? job->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
    int with_user = job->auth != SMTP_AUTH_NONE;
    char login_options[64] = "";
    if (job->sasl_mech && *job->sasl_mech)
        snprintf(login_options, sizeof login_options, "AUTH=%s", job->sasl_mech);
    else if (job->auth == SMTP_AUTH_XOAUTH2)
        snprintf(login_options, sizeof login_options, "AUTH=XOAUTH2");

    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, job->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "smtp,smtps") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USE_SSL, job->tls == SMTP_TLS_NONE ? (long)CURLUSESSL_NONE
                                                                          : (long)CURLUSESSL_ALL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CAINFO, job->ca_file ? job->ca_file : s->x.default_cainfo) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERNAME, with_user ? job->username : NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PASSWORD, job->auth == SMTP_AUTH_PASSWORD ? job->secret : NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, job->auth == SMTP_AUTH_XOAUTH2 ? job->secret : NULL) !=
           CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_LOGIN_OPTIONS, login_options[0] ? login_options : NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAIL_FROM, job->mail_from) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAIL_RCPT, &s->rcpt) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_UPLOAD, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, (curl_off_t)job->len) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, phase_s) != CURLE_OK;
    /* a body upload that stalls for a phase is as dead as a silent reply */
    bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_LIMIT, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_LOW_SPEED_TIME, phase_s) != CURLE_OK;
    /* and a server that drips every reply just under the phase timeout
     * still ends: connect plus ten phases in all */
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, connect_ms + 10 * phase_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, idle_s) != CURLE_OK;
    return bad ? -1 : 0;
}

/* Replies to the NOOP of smtp_quit: read and dropped. */
static size_t on_write(char *p, size_t size, size_t nmemb, void *userp)
{
    (void)p;
    (void)userp;
    return size * nmemb;
}

int smtp_quit(struct smtp *s, const struct smtp_job *job, void (*cb)(struct smtp *s, void *arg), void *arg)
{
    int implicit_tls;
    if (state_get(s) != SMTP_IDLE)
        return -EBUSY;
    if (!job || !cb || url_scheme(job->url, &implicit_tls) < 0 || (implicit_tls && job->tls == SMTP_TLS_NONE))
        return -EINVAL;
    if (job->auth != SMTP_AUTH_NONE && (!job->username || !*job->username || !job->secret || !*job->secret))
        return -EINVAL; /* another login than the cached connection's: it would not be reused */
    if (configure(s, job) < 0)
        return -EINVAL;
    /* no MAIL transaction: one NOOP on the cached connection, which
     * FORBID_REUSE then closes with QUIT */
    int bad = 0;
    bad |= curl_easy_setopt(s->x.easy, CURLOPT_MAIL_RCPT, NULL) != CURLE_OK;
    bad |= curl_easy_setopt(s->x.easy, CURLOPT_UPLOAD, 0L) != CURLE_OK;
    bad |= curl_easy_setopt(s->x.easy, CURLOPT_CUSTOMREQUEST, "NOOP") != CURLE_OK;
    bad |= curl_easy_setopt(s->x.easy, CURLOPT_FORBID_REUSE, 1L) != CURLE_OK;
    if (bad) {
        curl_easy_setopt(s->x.easy, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(s->x.easy, CURLOPT_FORBID_REUSE, 0L);
        return -EINVAL;
    }
    s->cb = NULL;
    s->data = NULL;
    s->quit_cb = cb;
    s->quit_arg = arg;
    snprintf(s->name, sizeof s->name, "%s", job->mail_from ? job->mail_from : "");
    state_move(s, SMTP_QUITTING);
    if (xfer_start(&s->x) < 0) {
        state_move(s, SMTP_IDLE);
        s->quit_cb = NULL;
        curl_easy_setopt(s->x.easy, CURLOPT_CUSTOMREQUEST, NULL);
        curl_easy_setopt(s->x.easy, CURLOPT_FORBID_REUSE, 0L);
        return -ENOMEM;
    }
    return 0;
}

int smtp_send(struct smtp *s, const struct smtp_job *job, smtp_send_cb cb, void *arg)
{
    int implicit_tls;
    if (state_get(s) != SMTP_IDLE)
        return -EBUSY;
    if (!job || !cb || url_scheme(job->url, &implicit_tls) < 0 || bad_address(job->mail_from) ||
        bad_address(job->rcpt_to) || !job->data || job->len == 0)
        return -EINVAL;
    if (implicit_tls && job->tls == SMTP_TLS_NONE)
        return -EINVAL; /* smtps:// is TLS by definition */
    if (job->auth != SMTP_AUTH_NONE && (!job->username || !*job->username || !job->secret || !*job->secret))
        return -EINVAL;

    snprintf(s->rcpt_buf, sizeof s->rcpt_buf, "<%s>", job->rcpt_to);
    s->rcpt.data = s->rcpt_buf;
    s->rcpt.next = NULL;
    if (configure(s, job) < 0)
        return -EINVAL;

    s->data = job->data;
    s->len = job->len;
    s->off = 0;
    s->on_body_start = job->on_body_start;
    s->hold_body = job->hold_body;
    s->final_reply = 0;
    s->utf8_rcpt = utf8_local_part(job->rcpt_to);
    s->utf8_refused = 0;
    s->cur_code = 0;
    s->cur_len = 0;
    s->cur_text[0] = '\0';
    s->last_code = 0;
    s->last_text[0] = '\0';
    s->errbuf[0] = '\0';
    s->cb = cb;
    s->arg = arg;
    snprintf(s->name, sizeof s->name, "%s", job->mail_from);
    state_move(s, SMTP_ENVELOPE);
    if (xfer_start(&s->x) < 0) {
        state_move(s, SMTP_IDLE);
        s->cb = NULL;
        s->arg = NULL;
        s->data = NULL;
        return -ENOMEM;
    }
    return 0;
}

static void on_closed(struct xfer *x)
{
    free(x->data);
}

struct smtp *smtp_new(uv_loop_t *loop, struct xfer_pool *pool)
{
    struct smtp *s = calloc(1, sizeof *s);
    if (!s)
        return NULL;
    if (xfer_init(&s->x, loop, pool, on_event) < 0) {
        free(s);
        return NULL;
    }
    s->x.data = s;
    CURL *e = s->x.easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, s->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_READDATA, s) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, s) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_UPLOAD_BUFFERSIZE, UPLOAD_BUFFER) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER) != CURLE_OK;
    /* verbose only feeds on_debug (which watches for RCPT TO); nothing is
     * printed */
    bad |= curl_easy_setopt(e, CURLOPT_DEBUGFUNCTION, on_debug) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_DEBUGDATA, s) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_VERBOSE, 1L) != CURLE_OK;
    if (bad) {
        xfer_close(&s->x, on_closed); /* frees s */
        return NULL;
    }
    return s;
}

int smtp_body_held(const struct smtp *s)
{
    return state_get((struct smtp *)s) == SMTP_HELD;
}

int smtp_in_body(const struct smtp *s)
{
    return past_no_return(state_get((struct smtp *)s));
}

int smtp_body_release(struct smtp *s, int ok)
{
    xfer_lock(&s->x);
    if (s->state != SMTP_HELD) {
        xfer_unlock(&s->x);
        return -1;
    }
    /* Given up, the read callback aborts: libcurl fails the transfer and
     * closes the connection without the end-of-data mark; the callback
     * fires from the loop, deferred. */
    state_set(s, ok ? SMTP_BODY : SMTP_ABANDONING);
    xfer_wake_locked(&s->x);
    xfer_unlock(&s->x);
    return 0;
}


void smtp_close(struct smtp *s)
{
    if (!s)
        return;
    /* A transfer that ended on its own but is not reported yet is reported
     * as it ended. One still running is ended now (xfer_stop_locked: its
     * socket shut down, a held body given up, libcurl's progress callback
     * told to abort); work a thread has not taken yet is simply taken back. */
    CURLcode code;
    xfer_lock(&s->x);
    int ended = xfer_stop_locked(&s->x, &code);
    enum smtp_state st = s->state;
    if (st == SMTP_QUITTING)
        state_set(s, SMTP_IDLE); /* the channel is going: its quit callback is not wanted */
    xfer_unlock(&s->x);
    /* no thread has the channel now: the easy handle is the loop's */
    if (st != SMTP_IDLE && st != SMTP_QUITTING) {
        if (ended) {
            send_ended(s, code, st);
        } else {
            /* held before its first byte, or not started: never sent. A
             * body given up but not yet aborted by libcurl counts as maybe
             * sent, as it always has. */
            int body_started = st != SMTP_HELD && past_no_return(st);
            snprintf(s->errbuf, sizeof s->errbuf, "send abandoned: the channel was closed");
            s->last_code = 0; /* no reply tells this message's story any more */
            finish(s, CURLE_ABORTED_BY_CALLBACK, body_started);
        }
    }
    /* the easy handle (and an idle connection's QUIT) closes on a pool
     * thread; the struct goes when that and the handle's close are done */
    xfer_close(&s->x, on_closed);
}
