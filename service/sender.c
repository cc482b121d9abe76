/* sender: per-account queues in front of smtp.c, the secrets and DKIM
 * keys, and the capture channel (transport: capture), which writes each
 * message into a Maildir and reports it sent through the same callback.
 * It runs on the loop; the SMTP transfers themselves run on the threads
 * of the xfer_pool it owns (smtp.c: one thread per transfer in flight, so
 * a silent server holds only its own account), and signatures on libuv's
 * thread pool.
 * It decides nothing about what to send or what an outcome means for an
 * enrollment (delivery.c and SQL do); it signs, carries messages out and
 * reports what the server said. */
#include "sender.h"

#include "capture.h"
#include "dkim.h"
#include "log.h"
#include "oauth2.h"
#include "secret.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

struct outgoing {
    struct outgoing *next;
    struct channel *channel; /* NULL: the capture channel */
    char *msg;
    size_t len;
    char *rcpt;
    char *id;                /* the Message-ID, naming a captured file */
    sender_cb cb;
    sender_body_cb on_body;
    void *arg;
};

/* One account's channel. IDLE: nothing in flight (a connection may be
 * cached: connected); TOKEN: waiting for an OAuth2 token for the head;
 * SENDING: the head is being sent; DRAINING: the same while the sender
 * closes (its body finishes, then the close goes on); QUITTING: an idle
 * connection is being closed with QUIT. Only channel_state_set changes
 * it. */
enum channel_state { CHANNEL_IDLE, CHANNEL_TOKEN, CHANNEL_SENDING, CHANNEL_DRAINING, CHANNEL_QUITTING };
static const char *const channel_state_names[] = {"IDLE", "TOKEN", "SENDING", "DRAINING", "QUITTING"};

struct channel {
    const struct config_account *cfg;
    struct smtp *smtp;
    char *secret;
    struct smtp_job job;
    struct outgoing *head, *tail; /* head is in flight unless IDLE */
    enum channel_state state;
    int connected;     /* a send left a connection in libcurl's cache */
    uint64_t last_used; /* loop time (ms) its last send ended */
    uint64_t held_since; /* loop time (ms) its body reached the point of no return */
    int token_retried; /* xoauth2: the server refused a token for the head once */
    int local_retries; /* the head was tried again for want of descriptors (LOCAL_RETRIES) */
    uint64_t retry_at; /* loop time (ms) to try the head again; 0: none due */
    char *bearer;      /* xoauth2: a copy of the token the head is sent with */
    struct sender *sender;
};

struct domain_key {
    const struct config_dkim *cfg;
    struct dkim_key *key;
};

struct sender {
    struct xfer_pool *pool; /* the threads SMTP transfers run on; NULL under capture */
    struct oauth2 *oauth2; /* the tokens of xoauth2 accounts (borrowed: the server's) */
    int closes;            /* the three timers still closing */
    struct channel *channels;
    size_t n_channels;
    struct domain_key *keys;
    size_t n_keys;
    size_t pending;
    int closing;
    size_t draining;          /* channels finishing a body while closing */
    size_t signing;           /* signatures in the thread pool */
    int close_after_signing;  /* close_now waits for them: they read the keys */
    uv_loop_t *loop;
    uv_timer_t drain_timer;   /* bounds that wait */
    uv_timer_t idle_timer;    /* closes connections left unused for smtp_idle_timeout */
    uint64_t idle_ms;
    uint64_t sweep_ms;        /* idle_timer's period */
    char *capture_dir;        /* transport capture: where messages are written; else NULL */
    struct outgoing *captured, *captured_tail; /* written, reported from capture_timer */
    uv_timer_t capture_timer;
    void (*on_closed)(void *arg);
    void *closed_arg;
};

/* Fills j from account a and reads its password into *secret (NULL when
 * the login needs none): every check the sender makes of an account's
 * settings, shared with sender_account_check so `relance config` refuses
 * what serve would. */
static int job_setup(struct smtp_job *j, char **secret, const struct config *cfg, const struct config_account *a,
                     char *err, size_t errlen)
{
    *secret = NULL;
    if (!a->smtp) {
        snprintf(err, errlen, "account %s has no 'smtp' URL", a->email);
        return -1;
    }
    /* libcurl would take http:// and the like and fail every message as
     * temporary, deferring them forever without pausing the account */
    if (strncasecmp(a->smtp, "smtp://", 7) != 0 && strncasecmp(a->smtp, "smtps://", 8) != 0) {
        snprintf(err, errlen, "account %s: smtp must be an smtp:// (STARTTLS) or smtps:// URL", a->email);
        return -1;
    }
    j->url = a->smtp;
    j->idle_timeout_s = cfg->smtp_idle_timeout;
    j->phase_timeout_ms = cfg->smtp_timeout * 1000; /* 0: smtp.c's 60 s */
    j->tls = a->tls && strcmp(a->tls, "none") == 0 ? SMTP_TLS_NONE : SMTP_TLS_REQUIRED;
    if (a->tls && strcmp(a->tls, "none") != 0 && strcmp(a->tls, "required") != 0) {
        snprintf(err, errlen, "account %s: tls must be 'none' (test sinks only) or left out", a->email);
        return -1;
    }
    j->auth = !a->auth || strcmp(a->auth, "password") == 0 ? SMTP_AUTH_PASSWORD
              : strcmp(a->auth, "none") == 0                ? SMTP_AUTH_NONE
              : strcmp(a->auth, "xoauth2") == 0             ? SMTP_AUTH_XOAUTH2
                                                            : (enum smtp_auth)-1;
    if ((int)j->auth < 0) {
        snprintf(err, errlen, "account %s: auth must be password, xoauth2 or none", a->email);
        return -1;
    }
    j->username = a->username ? a->username : a->email;
    j->ca_file = a->tls_ca_file ? a->tls_ca_file : cfg->tls_ca_file;
    j->mail_from = a->email;
    if (j->auth == SMTP_AUTH_PASSWORD) {
        int rc = secret_account_password(a, secret, err, errlen);
        if (rc < 0)
            return rc; /* -ENOENT: a secret missing now, not a wrong setting */
        j->secret = *secret;
    }
    return 0;
}

static int channel_setup(struct channel *c, const struct config *cfg, char *err, size_t errlen)
{
    if (job_setup(&c->job, &c->secret, cfg, c->cfg, err, errlen) < 0)
        return -1;
    if (c->job.auth == SMTP_AUTH_XOAUTH2 && !oauth2_has(c->sender->oauth2, c->cfg->email)) {
        snprintf(err, errlen, "account %s: auth xoauth2 needs its oauth2 settings", c->cfg->email);
        return -1;
    }
    return 0;
}

int sender_account_check(const struct config *cfg, const struct config_account *account, char *err, size_t errlen)
{
    struct smtp_job j = {0};
    char *secret = NULL;
    int rc = job_setup(&j, &secret, cfg, account, err, errlen);
    secret_free(secret);
    return rc;
}

int sender_account_job(const struct config *cfg, const struct config_account *account, struct smtp_job *j,
                       char **secret, char *err, size_t errlen)
{
    return job_setup(j, secret, cfg, account, err, errlen);
}

/* The one way a domain's key is read: sender_new and sender_dkim_check. */
static int domain_key_load(const struct config_dkim *d, struct dkim_key **key, char *err, size_t errlen)
{
    char why[256];
    if (dkim_key_load_file(d->key_file, key, why, sizeof why) != 0) {
        snprintf(err, errlen, "dkim key for %s (%s): %s", d->domain, d->key_file, why);
        return -1;
    }
    return 0;
}

int sender_dkim_check(const struct config_dkim *d, char *err, size_t errlen)
{
    struct dkim_key *key = NULL;
    int rc = domain_key_load(d, &key, err, errlen);
    dkim_key_free(key);
    return rc;
}

static void on_idle_sweep(uv_timer_t *t);

/* The one place a channel's state changes: logged at debug level. */
static void channel_state_set(struct channel *c, enum channel_state to)
{
    if (c->state == to)
        return;
    char event[64];
    snprintf(event, sizeof event, "channel %s -> %s", channel_state_names[c->state], channel_state_names[to]);
    log_event(LOG_DEBUG, "sender", event, "account", c->cfg->email, NULL);
    c->state = to;
}

/* A draining channel's body ended: the close goes on when it was the last. */
static void channel_drained(struct channel *c);

struct sender *sender_new(uv_loop_t *loop, const struct config *cfg, struct oauth2 *oauth2, const char *capture_dir,
                          char *err, size_t errlen)
{
    struct sender *s = calloc(1, sizeof *s);
    size_t n = 0;
    if (!s)
        goto nomem;
    if (capture_dir) {
        if (capture_open(capture_dir) < 0) {
            snprintf(err, errlen, "cannot create the capture directory %s: %s", capture_dir, strerror(errno));
            goto fail;
        }
        s->capture_dir = strdup(capture_dir);
        if (!s->capture_dir)
            goto nomem;
    }
    for (size_t i = 0; !capture_dir && i < cfg->n_pools; i++)
        n += cfg->pools[i].n_accounts;
    s->channels = calloc(n + 1, sizeof *s->channels);
    s->keys = calloc(cfg->n_dkim + 1, sizeof *s->keys);
    if (!s->channels || !s->keys)
        goto nomem;
    s->loop = loop;
    s->oauth2 = oauth2;
    if (!capture_dir && !(s->pool = xfer_pool_new(SMTP_POOL_MAX)))
        goto nomem;
    for (size_t i = 0; !capture_dir && i < cfg->n_pools; i++) {
        for (size_t k = 0; k < cfg->pools[i].n_accounts; k++) {
            if (cfg->pools[i].accounts[k].unavailable)
                continue; /* paused for its missing secret: nothing to send with */
            struct channel *c = &s->channels[s->n_channels++];
            c->cfg = &cfg->pools[i].accounts[k];
            c->sender = s;
            if (channel_setup(c, cfg, err, errlen) < 0)
                goto fail;
            c->smtp = smtp_new(loop, s->pool);
            if (!c->smtp)
                goto nomem;
        }
    }
    for (size_t i = 0; i < cfg->n_dkim; i++) {
        struct domain_key *k = &s->keys[s->n_keys++];
        k->cfg = &cfg->dkim[i];
        if (domain_key_load(k->cfg, &k->key, err, errlen) < 0)
            goto fail;
    }
    uv_timer_init(loop, &s->drain_timer);
    s->drain_timer.data = s;
    uv_timer_init(loop, &s->capture_timer);
    s->capture_timer.data = s;
    uv_timer_init(loop, &s->idle_timer);
    s->idle_timer.data = s;
    s->idle_ms = (uint64_t)cfg->smtp_idle_timeout * 1000;
    uint64_t every = s->idle_ms / 4 < 250 ? 250 : s->idle_ms / 4 > 5000 ? 5000 : s->idle_ms / 4;
    s->sweep_ms = every;
    uv_timer_start(&s->idle_timer, on_idle_sweep, every, every);
    return s;
nomem:
    snprintf(err, errlen, "out of memory");
fail:
    if (s) {
        /* nothing is queued yet: close synchronously enough for set-up */
        for (size_t i = 0; i < s->n_channels; i++) {
            if (s->channels[i].smtp)
                smtp_close(s->channels[i].smtp);
            secret_free(s->channels[i].secret);
        }
        xfer_pool_close(s->pool); /* the last channel's handle close frees it */
        for (size_t i = 0; i < s->n_keys; i++)
            dkim_key_free(s->keys[i].key);
        free(s->channels);
        free(s->keys);
        free(s->capture_dir);
        free(s);
    }
    return NULL;
}

static void close_now(struct sender *s);
static void outgoing_report(struct outgoing *o, const struct smtp_result *r, const char *held);
static void outgoing_not_sent(struct outgoing *o);
static void on_token(int status, const char *token, const char *reason, void *arg);

/* One signature on its way through the thread pool. The worker reads
 * only the job and the key, which the sender keeps until every job is
 * back (close_now waits for them), and writes only the job. */
struct sign_job {
    uv_work_t req; /* first: the job is found from its request */
    struct sender *s;
    const struct domain_key *key;
    struct outgoing *o; /* its msg becomes the signature and the message */
    int64_t now;
    int rc;
    char err[300];
};

/* In a worker thread: signs, and puts the signature in front (a copy of
 * the whole message, made here rather than on the loop). */
static void sign_work(uv_work_t *req)
{
    struct sign_job *j = (struct sign_job *)req;
    struct outgoing *o = j->o;
    char *header = NULL;
    j->rc = dkim_sign(j->key->key, j->key->cfg->domain, j->key->cfg->selector, o->msg, o->len, j->now, &header,
                      j->err, sizeof j->err);
    if (j->rc != 0)
        return;
    size_t hl = strlen(header);
    char *out = malloc(hl + o->len + 1);
    if (!out) {
        j->rc = -ENOMEM;
        snprintf(j->err, sizeof j->err, "out of memory");
    } else {
        memcpy(out, header, hl);
        memcpy(out + hl, o->msg, o->len);
        out[hl + o->len] = '\0';
        free(o->msg);
        o->msg = out;
        o->len += hl;
    }
    free(header);
}

static void enqueue(struct sender *s, struct outgoing *o);

static void sign_done(uv_work_t *req, int status)
{
    struct sign_job *j = (struct sign_job *)req;
    struct sender *s = j->s;
    struct outgoing *o = j->o;
    s->signing--;
    if (status < 0 || s->closing) {
        s->pending--;
        outgoing_not_sent(o); /* the row stays 'sending': the stop gives it back */
    } else if (j->rc != 0) {
        s->pending--;
        outgoing_report(o, NULL, j->err); /* cannot be signed: held, never sent unsigned */
    } else {
        enqueue(s, o);
    }
    free(j);
    if (s->close_after_signing && s->signing == 0)
        close_now(s);
}

/* Queues o's signature in the thread pool when its domain has a DKIM key
 * (an RSA signature costs about a millisecond, which on the loop would
 * hold every connection up). Returns 1 when there is nothing to sign, 0
 * when queued, -1 when it could not be. */
static int sign(struct sender *s, const char *from, struct outgoing *o)
{
    const char *at = strrchr(from, '@');
    const struct domain_key *key = NULL;
    for (size_t i = 0; at && i < s->n_keys && !key; i++)
        if (strcasecmp(s->keys[i].cfg->domain, at + 1) == 0)
            key = &s->keys[i];
    if (!key)
        return 1;
    struct sign_job *j = calloc(1, sizeof *j);
    if (!j)
        return -1;
    j->s = s;
    j->key = key;
    j->o = o;
    j->now = (int64_t)time(NULL);
    if (uv_queue_work(s->loop, &j->req, sign_work, sign_done) < 0) {
        free(j);
        return -1;
    }
    s->signing++;
    return 0;
}

/* The capture channel: written messages are reported from the loop,
 * never from inside sender_submit. */
static void on_capture_timer(uv_timer_t *t)
{
    struct sender *s = t->data;
    struct outgoing *o = s->captured;
    s->captured = s->captured_tail = NULL;
    while (o) {
        struct outgoing *next = o->next;
        struct smtp_result r = {0};
        r.outcome = SMTP_SENT;
        snprintf(r.text, sizeof r.text, "captured");
        s->pending--;
        outgoing_report(o, &r, NULL);
        o = next;
    }
}

static void capture(struct sender *s, struct outgoing *o)
{
    if (capture_write(s->capture_dir, o->id, o->msg, o->len) < 0) {
        /* the step is held with the reason: a dry run that cannot write is the user's to fix */
        char why[400];
        snprintf(why, sizeof why, "transport_error: cannot write into %s: %s", s->capture_dir, strerror(errno));
        s->pending--;
        outgoing_report(o, NULL, why);
        return;
    }
    o->next = NULL;
    if (s->captured_tail)
        s->captured_tail->next = o;
    else
        s->captured = o;
    s->captured_tail = o;
    uv_timer_start(&s->capture_timer, on_capture_timer, 0, 0);
}

static void start_next(struct channel *c);

static void on_quit(struct smtp *smtp, void *arg)
{
    (void)smtp;
    struct channel *c = arg;
    channel_state_set(c, CHANNEL_IDLE);
    c->connected = 0;
    if (!c->sender->closing)
        start_next(c); /* what was queued meanwhile */
}

/* A body held at its point of no return waits for the caller to record
 * that point (a database write). If no answer comes within this long, the
 * message is given up (nothing of the body was sent: it is deferred), so
 * one lost answer cannot stall the account's queue. */
#define HOLD_MAX_MS 30000

/* A send that failed for want of a descriptor here (smtp.c's local_errno)
 * is relance's shortage, not the server's failure nor the account's: the
 * message stays at the head and goes again after LOCAL_RETRY_MS, up to
 * LOCAL_RETRIES times, before it is reported (deferred, retried in 10 min,
 * not counted against the cap). Descriptors held by a burst come back
 * within seconds (HTTP idle connections are closed after 10 s). */
#define LOCAL_RETRY_MS 1000
#define LOCAL_RETRIES 10

/* Connections unused for smtp_idle_timeout are closed with QUIT (libcurl
 * itself would only drop them when the next transfer looks for one).
 * xoauth2 channels are left to that: their token, part of the connection's
 * identity, is not kept between sends. Bodies held too long are given up. */
static void on_idle_sweep(uv_timer_t *t)
{
    struct sender *s = t->data;
    uint64_t now = uv_now(t->loop);
    for (size_t i = 0; i < s->n_channels && !s->closing; i++) {
        struct channel *c = &s->channels[i];
        if (c->smtp && c->state == CHANNEL_SENDING && smtp_body_held(c->smtp) && now - c->held_since >= HOLD_MAX_MS) {
            log_event(LOG_WARN, "sender", "giving up a body whose point of no return was not confirmed",
                      "account", c->cfg->email, NULL);
            if (smtp_body_release(c->smtp, 0) < 0) {
                /* not held any more: nothing to give up */
            }
            continue;
        }
        if (c->smtp && c->state == CHANNEL_IDLE && c->head && c->retry_at && now >= c->retry_at) {
            start_next(c); /* after a descriptor shortage */
            continue;
        }
        if (!c->smtp || c->state != CHANNEL_IDLE || c->head || !c->connected || c->job.auth == SMTP_AUTH_XOAUTH2 ||
            now - c->last_used < s->idle_ms)
            continue;
        if (smtp_quit(c->smtp, &c->job, on_quit, c) == 0)
            channel_state_set(c, CHANNEL_QUITTING);
        else
            c->connected = 0; /* could not even try: libcurl's own pruning will */
    }
}

static void outgoing_free(struct outgoing *o)
{
    free(o->msg);
    free(o->rcpt);
    free(o->id);
    free(o);
}

/* Reports o's end to its owner and frees o. */
static void outgoing_report(struct outgoing *o, const struct smtp_result *r, const char *held)
{
    struct sender_report rep = {r, held, o->msg, o->len, 0};
    o->cb(&rep, o->arg);
    outgoing_free(o);
}

/* The sender closes before o reached SMTP: reported as never sent. */
static void outgoing_not_sent(struct outgoing *o)
{
    struct smtp_result r = {0};
    r.outcome = SMTP_DEFERRED;
    snprintf(r.text, sizeof r.text, "relance stopped before sending");
    struct sender_report rep = {&r, NULL, o->msg, o->len, 1};
    o->cb(&rep, o->arg);
    outgoing_free(o);
}

static void on_body(void *arg)
{
    struct channel *c = arg;
    c->held_since = uv_now(c->sender->idle_timer.loop);
    if (c->head && c->head->on_body)
        c->head->on_body(c->head->arg);
}

static void bearer_wipe(struct channel *c)
{
    if (c->bearer) {
        memset(c->bearer, 0, strlen(c->bearer));
        free(c->bearer);
        c->bearer = NULL;
    }
    c->job.secret = c->secret;
}

/* The head message is done: reports r and takes it off the queue. */
static void head_done(struct channel *c, const struct smtp_result *r)
{
    struct outgoing *o = c->head;
    c->head = o->next;
    if (!c->head)
        c->tail = NULL;
    c->token_retried = 0;
    c->local_retries = 0;
    c->sender->pending--;
    outgoing_report(o, r, NULL);
}

/* The head message could not be tried: reported with no reply, never
 * silently dropped. */
static void head_fail(struct channel *c, enum smtp_outcome outcome, const char *text)
{
    struct smtp_result r = {0};
    r.outcome = outcome;
    snprintf(r.text, sizeof r.text, "%s", text);
    head_done(c, &r);
}

static void on_sent(struct smtp *smtp, const struct smtp_result *r, void *arg)
{
    (void)smtp;
    struct channel *c = arg;
    int drained = c->state == CHANNEL_DRAINING;
    channel_state_set(c, CHANNEL_IDLE);
    c->connected = r->reply_code != 0; /* a server answered: libcurl keeps its connection unless it failed */
    c->last_used = uv_now(c->sender->idle_timer.loop);
    if (r->local_errno && !r->body_started && !c->sender->closing && c->local_retries < LOCAL_RETRIES) {
        if (c->local_retries++ == 0)
            log_event(LOG_WARN, "sender", "out of file descriptors: trying again shortly", "account", c->cfg->email,
                      "error", r->text, NULL);
        c->retry_at = c->last_used + LOCAL_RETRY_MS;
        bearer_wipe(c);
        /* the sweep picks it up: its next run, sooner */
        uv_timer_start(&c->sender->idle_timer, on_idle_sweep, LOCAL_RETRY_MS, c->sender->sweep_ms);
        return;
    }
    if (r->outcome == SMTP_AUTH_FAILED && c->job.auth == SMTP_AUTH_XOAUTH2 && !r->body_started &&
        !c->token_retried && !c->sender->closing) {
        /* the token may have ended early or been revoked: one refresh,
         * one more try, before it counts as an authentication failure */
        c->token_retried = 1;
        oauth2_token_reject(c->sender->oauth2, c->cfg->email, c->bearer);
        bearer_wipe(c);
        start_next(c);
        return;
    }
    bearer_wipe(c);
    head_done(c, r);
    if (!c->sender->closing)
        start_next(c);
    else if (drained)
        channel_drained(c);
}

static void channel_drained(struct channel *c)
{
    if (--c->sender->draining == 0)
        close_now(c->sender);
}

/* Sends the head message with the channel's job. 0, or -1 when the
 * transfer could not start. */
static int send_head(struct channel *c)
{
    struct outgoing *o = c->head;
    c->job.rcpt_to = o->rcpt;
    c->job.data = o->msg;
    c->job.len = o->len;
    c->job.on_body_start = on_body;
    c->job.hold_body = 1;
    if (smtp_send(c->smtp, &c->job, on_sent, c) != 0)
        return -1;
    channel_state_set(c, CHANNEL_SENDING);
    return 0;
}

static void on_token(int status, const char *token, const char *reason, void *arg)
{
    struct channel *c = arg;
    channel_state_set(c, CHANNEL_IDLE);
    if (status == -ECANCELED || c->sender->closing || !c->head)
        return; /* sender_close reports what is queued */
    if (status == 0) {
        bearer_wipe(c);
        c->bearer = strdup(token);
        c->job.secret = c->bearer;
        if (c->bearer && send_head(c) == 0)
            return;
        bearer_wipe(c);
        head_fail(c, SMTP_DEFERRED, "could not start the SMTP transfer");
    } else {
        /* a refused grant is the account's authentication failing (it
         * pauses); an unreachable token endpoint only defers */
        head_fail(c, status == -EACCES ? SMTP_AUTH_FAILED : SMTP_DEFERRED, reason ? reason : "no OAuth2 token");
    }
    start_next(c);
}

static void start_next(struct channel *c)
{
    c->retry_at = 0;
    while (c->state == CHANNEL_IDLE && c->head) {
        if (c->job.auth == SMTP_AUTH_XOAUTH2) {
            /* a token for each message: the current one, or a fresh one */
            if (oauth2_token_get(c->sender->oauth2, c->cfg->email, on_token, c) == 0) {
                channel_state_set(c, CHANNEL_TOKEN); /* until on_token */
                return;
            }
            head_fail(c, SMTP_DEFERRED, "could not ask for an OAuth2 token");
            continue;
        }
        if (send_head(c) == 0)
            return;
        head_fail(c, SMTP_DEFERRED, "could not start the SMTP transfer");
    }
}

static void enqueue(struct sender *s, struct outgoing *o)
{
    struct channel *c = o->channel;
    if (!c) {
        capture(s, o);
        return;
    }
    if (c->tail)
        c->tail->next = o;
    else
        c->head = o;
    c->tail = o;
    if (c->state == CHANNEL_IDLE)
        start_next(c);
}

int sender_submit(struct sender *s, const struct sender_message *m, sender_cb cb, sender_body_cb on_body_cb, void *arg)
{
    struct channel *c = NULL;
    for (size_t i = 0; !s->capture_dir && i < s->n_channels && !c; i++)
        if (strcasecmp(s->channels[i].cfg->email, m->account) == 0)
            c = &s->channels[i];
    if ((!c && !s->capture_dir) || s->closing)
        return -1;
    struct outgoing *o = calloc(1, sizeof *o);
    if (!o)
        return -1;
    o->rcpt = strdup(m->rcpt);
    o->id = strdup(m->id ? m->id : "message");
    if (!o->rcpt || !o->id) {
        free(o->rcpt);
        free(o->id);
        free(o);
        return -1;
    }
    o->channel = c;
    o->cb = cb;
    o->on_body = on_body_cb;
    o->arg = arg;
    o->msg = m->msg; /* ours, unless this call fails */
    o->len = m->len;
    int rc = sign(s, m->account, o);
    if (rc < 0) {
        o->msg = NULL; /* still the caller's */
        outgoing_free(o);
        return -1;
    }
    s->pending++;
    if (rc == 1)
        enqueue(s, o);
    return 0;
}

void sender_body_release(struct sender *s, const char *account, int ok)
{
    for (size_t i = 0; i < s->n_channels; i++) {
        struct channel *c = &s->channels[i];
        if (c->smtp && strcasecmp(c->cfg->email, account) == 0) {
            log_event(LOG_DEBUG, "sender", ok ? "body released" : "body given up", "account", account, "held",
                      smtp_body_held(c->smtp) ? "yes" : "no", NULL);
            if (smtp_body_release(c->smtp, ok) < 0 && ok) {
                /* could not resume: give it up rather than leave it hanging */
                if (smtp_body_release(c->smtp, 0) < 0)
                    return;
            }
            return;
        }
    }
}

size_t sender_pending(const struct sender *s)
{
    return s->pending;
}

/* The timers each report their close; the last frees s. (Each channel's
 * smtp closes its own handle and frees itself.) */
static void on_part_closed(void *arg)
{
    struct sender *s = arg;
    if (--s->closes > 0)
        return;
    /* every channel is closed: their pool threads leave once the closes
     * queued on them (an idle connection's QUIT, 2 s at most) are done */
    xfer_pool_close(s->pool);
    void (*cb)(void *) = s->on_closed;
    void *cb_arg = s->closed_arg;
    free(s);
    if (cb)
        cb(cb_arg);
}

static void on_timer_closed(uv_handle_t *h)
{
    on_part_closed(h->data);
}

/* Reports what still waits for its turn on c as never sent. */
static void channel_flush_queue(struct sender *s, struct channel *c, struct outgoing **from)
{
    while (*from) {
        struct outgoing *o = *from;
        *from = o->next;
        s->pending--;
        outgoing_not_sent(o);
    }
    c->tail = c->head;
}

/* The second phase: whatever still runs is abandoned (deferred, or
 * unknown when its body had started), connections and handles close. */
static void close_now(struct sender *s)
{
    if (s->closes)
        return; /* already closing */
    if (s->signing) { /* their workers read the keys: the last one back closes */
        s->close_after_signing = 1;
        return;
    }
    s->closes = 3;
    uv_timer_stop(&s->drain_timer);
    uv_close((uv_handle_t *)&s->drain_timer, on_timer_closed);
    uv_close((uv_handle_t *)&s->idle_timer, on_timer_closed);
    on_capture_timer(&s->capture_timer); /* what was written is reported */
    uv_close((uv_handle_t *)&s->capture_timer, on_timer_closed);
    for (size_t i = 0; i < s->n_channels; i++) {
        struct channel *c = &s->channels[i];
        /* the token store outlives the sender: a request still waiting
         * is taken back, so its callback never reaches a freed channel */
        if (s->oauth2)
            oauth2_token_cancel(s->oauth2, on_token, c);
        if (c->state == CHANNEL_DRAINING)
            channel_state_set(c, CHANNEL_SENDING); /* cut now: the drain is over */
        /* smtp_close reports the message in flight (deferred or unknown) */
        smtp_close(c->smtp);
        c->smtp = NULL;
        channel_flush_queue(s, c, &c->head);
        bearer_wipe(c);
        secret_free(c->secret);
    }
    for (size_t i = 0; i < s->n_keys; i++)
        dkim_key_free(s->keys[i].key);
    free(s->channels);
    free(s->keys);
    free(s->capture_dir);
    s->capture_dir = NULL;
}

static void on_drain_timeout(uv_timer_t *t)
{
    close_now(t->data);
}

/* The first phase: nothing new starts; queued messages are deferred;
 * a transfer before its point of no return is cut at once (the server
 * is not in DATA, so nothing can be delivered); a held body is given up
 * (the channel's thread aborts it); a body on the wire is let finish, for at most
 * drain_ms, so that no prospect gets half a message. */
void sender_close(struct sender *s, uint64_t drain_ms, void (*on_closed)(void *arg), void *arg)
{
    s->closing = 1;
    s->on_closed = on_closed;
    s->closed_arg = arg;
    for (size_t i = 0; i < s->n_channels; i++) {
        struct channel *c = &s->channels[i];
        if (!c->smtp)
            continue;
        if (c->state == CHANNEL_SENDING && c->head && smtp_in_body(c->smtp)) {
            channel_flush_queue(s, c, &c->head->next);
            if (smtp_body_held(c->smtp) && smtp_body_release(c->smtp, 0) < 0)
                continue; /* could not give it up: close_now cuts it */
            if (c->state != CHANNEL_SENDING)
                continue; /* given up at once */
            channel_state_set(c, CHANNEL_DRAINING);
            s->draining++;
        } else {
            smtp_close(c->smtp);
            c->smtp = NULL;
            channel_flush_queue(s, c, &c->head);
        }
    }
    if (s->draining == 0) {
        close_now(s);
        return;
    }
    uv_timer_start(&s->drain_timer, on_drain_timeout, drain_ms, 0);
}
