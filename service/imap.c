/* imap: the IMAP client, off the loop thread. It owns one easy handle per
 * channel, the per-command options (URL and TLS, login, the command), the
 * reading of the server's responses and what they mean. It does not know
 * accounts' state, the database or classification, and it logs nothing.
 *
 * Threads: libcurl 7.88 waits synchronously for the tagged answer after
 * an APPEND's upload (its done phase) and for LOGOUT's whenever it closes
 * a connection it does not know dead (easy cleanup, a connection its
 * cache lets go): on the loop, a silent IMAP server froze every account,
 * PostgreSQL I/O and /healthz. So every command runs on a thread of a
 * struct xfer_pool (xfer_pool.c, shared in design with smtp.c: one thread
 * per transfer in flight, curl_easy_perform on the channel's easy handle).
 * The header and read callbacks, and so the response reader, run on that
 * thread; the loop touches the command's reading state only once the
 * thread has reported its end, and every callback of this module's API
 * fires on the loop. imap_close of a busy channel ends its command at
 * once (socket shut down, libcurl's progress callback aborting); the
 * easy handle's cleanup (LOGOUT) runs on a pool thread, within
 * XFER_CLOSE_TIMEOUT_S. Each command is bounded by the account's
 * timeout, which also bounds every wait for an answer
 * (CURLOPT_SERVER_RESPONSE_TIMEOUT, the done phase's included).
 *
 * The channel's connection stays in its easy handle between commands and
 * is reused by the next one (same host, TLS settings and credentials), so
 * a watcher pass of EXAMINE, UID SEARCH and several UID FETCHes speaks
 * over one login, and a channel kept between passes (watcher.c) keeps it.
 *
 * Every command but APPEND is a libcurl "custom request" (CURLOPT_
 * CUSTOMREQUEST): libcurl logs in (STARTTLS first for imap://), SELECTs
 * the URL's mailbox when the URL names one, sends our command and waits
 * for its tagged answer. libcurl hands every line the server sends —
 * literals included — to the header callback, and only there do we read
 * them: a response reader (lib/imap_parse.c) reassembles responses with their
 * literals from those pieces, and pure parsers read STATUS, EXAMINE, SEARCH, FETCH
 * and LIST out of them. libcurl's own URL fetch sends BODY[] and its URL
 * search returns sequence numbers: neither is used.
 *
 * libcurl 7.88 reads response lines through a buffer of CURLOPT_BUFFERSIZE
 * bytes and cuts a line longer than half of it: with the default 16 KiB a
 * 64 KiB literal arrives cut. Fetches ask for prefixes of at most 64 KiB
 * (BODY.PEEK[HEADER]<0.N>, BODY.PEEK[TEXT]<0.N>), so no line exceeds
 * that, and the buffer is 160 KiB. Should a response still arrive cut, the
 * reader ends the command in the middle of a literal: the command fails
 * with -EPROTO and the next one opens a new connection. */
#include "imap.h"

#include "buf.h"
#include "utf8.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#define DEFAULT_CONNECT_TIMEOUT_MS 30000L
#define DEFAULT_TIMEOUT_MS 120000L
#define DEFAULT_IDLE_TIMEOUT_S 300L
#define RECEIVE_BUFFER (160L * 1024)
#define RESPONSE_MAX (IMAP_FETCH_HEADER_MAX + IMAP_FETCH_BODY_MAX + 4096)
#define FOLDER_MAX 512

/* ======================================================================
 * The client
 * ====================================================================== */

enum op { OP_NONE, OP_STATUS, OP_EXAMINE, OP_SEARCH, OP_FETCH, OP_LIST, OP_APPEND, OP_CAPABILITY };

/* What one fetch asked for and what came back, by index in want. */
struct fetch_state {
    uint32_t *want;           /* the UIDs asked for, ascending */
    size_t n;
    int sizes_only;           /* imap_fetch_sizes */
    char **fetched;           /* the FETCH response of each (imap_fetch) */
    size_t *fetched_len;
    struct imap_message *msgs; /* what the reply gives; uid 0: not (yet) seen */
};

static void fetch_state_free(struct fetch_state *f)
{
    for (size_t i = 0; f->fetched && i < f->n; i++)
        free(f->fetched[i]);
    free(f->fetched);
    free(f->fetched_len);
    free(f->want);
    free(f->msgs);
    memset(f, 0, sizeof *f);
}

/* The channel's fields are the loop's, but for the command in flight's
 * reading state (reader, tagged, bytes, oom, unreadable, refused, what was
 * read, the upload offset, errbuf), which the header and read callbacks
 * write on the pool thread while the transfer runs; the loop touches it
 * only between commands (xfer_pool's handover orders the two). */
struct imap {
    struct xfer x;        /* the easy handle, on the pool's threads */
    const struct imap_account *acct;
    char base[512];       /* scheme://host[:port], no path */
    int implicit_tls;
    char errbuf[CURL_ERROR_SIZE];
    struct imap_reader reader;
    int fresh;            /* the next command opens a new connection */
    int in_cb;            /* a command's callback is running */
    int close_pending;    /* imap_close came during it */
    void (*closed_cb)(void *arg); /* imap_close's */
    void *closed_arg;

    /* the command in flight */
    int busy;
    enum op op;
    imap_cb cb;
    void *arg;
    char *url;
    char cmd[FOLDER_MAX * 2 + 128];
    char folder[FOLDER_MAX];
    uint32_t from_uid;
    struct fetch_state fx; /* a fetch's, from its start to the end of its callback */
    const char *data;     /* APPEND */
    size_t len, off;
    char tagged[IMAP_TEXT_MAX];
    size_t bytes;
    int oom;
    int unreadable;       /* a response of the command's kind could not be read */
    int refused;          /* a tagged NO or BAD came */
    /* what was read */
    int got_status;
    uint32_t uidnext, uidvalidity;
    uint32_t *uids;
    size_t n_uids, cap_uids;
    struct imap_select sel;
    char sent[FOLDER_MAX];
    int sent_special;
    int sent_named;
    int sent_rank;        /* imap_sent_rank of sent, when sent_named */
    /* the server's CAPABILITY, read once before the first LIST */
    int caps;             /* IMAP_CAP_* */
    int caps_known;
};

static void on_search_uid(void *arg, uint32_t n)
{
    struct imap *im = arg;
    if (n < im->from_uid)
        return; /* "n:*" with n past the last UID still returns the last */
    if (im->n_uids == im->cap_uids) {
        size_t cap = im->cap_uids ? im->cap_uids * 2 : 64;
        uint32_t *grown = cap > (1u << 24) ? NULL : realloc(im->uids, cap * sizeof *grown);
        if (!grown) {
            im->oom = 1;
            return;
        }
        im->uids = grown;
        im->cap_uids = cap;
    }
    im->uids[im->n_uids++] = n;
}

/* The index of uid in the fetch's want list, or SIZE_MAX. */
static size_t want_index(const struct fetch_state *f, uint32_t uid)
{
    size_t lo = 0, hi = f->n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (f->want[mid] == uid)
            return mid;
        if (f->want[mid] < uid)
            lo = mid + 1;
        else
            hi = mid;
    }
    return SIZE_MAX;
}

static void on_response(void *arg, const char *resp, size_t len, int truncated)
{
    struct imap *im = arg;
    char text[IMAP_TEXT_MAX];
    if (imap_parse_tagged(resp, len, text, sizeof text)) {
        /* keep a refusal: libcurl's LOGOUT after it answers OK */
        if (!im->refused)
            memcpy(im->tagged, text, sizeof text);
        if (strncasecmp(text, "OK", 2) != 0)
            im->refused = 1;
        return;
    }
    switch (im->op) {
    case OP_STATUS: {
        char name[FOLDER_MAX];
        uint32_t next, validity;
        if (imap_parse_status(resp, len, name, sizeof name, &next, &validity) == 0 &&
            (strcmp(name, im->folder) == 0 ||
             (strcasecmp(name, "INBOX") == 0 && strcasecmp(im->folder, "INBOX") == 0))) {
            im->got_status = 1;
            im->uidnext = next;
            im->uidvalidity = validity;
        }
        break;
    }
    case OP_EXAMINE:
        (void)imap_parse_select(resp, len, &im->sel); /* other untagged answers are not ours */
        break;
    case OP_SEARCH:
        if (len >= 8 && strncasecmp(resp, "* SEARCH", 8) == 0 &&
            imap_parse_search(resp, len, on_search_uid, im) < 0)
            im->unreadable = 1; /* a partial list would skip messages for good */
        break;
    case OP_FETCH: {
        struct fetch_state *fx = &im->fx;
        struct imap_fetch_data f;
        if (imap_parse_fetch(resp, len, &f) < 0 || !f.has_uid || !(fx->sizes_only ? f.has_size : f.has_header))
            break; /* an unsolicited FETCH (flags) is no answer */
        size_t i = want_index(fx, f.uid);
        if (i == SIZE_MAX || fx->msgs[i].uid)
            break; /* not asked for, or seen already */
        fx->msgs[i].uid = f.uid;
        fx->msgs[i].size = f.size;
        if (fx->sizes_only)
            break;
        (void)truncated; /* a cut response still holds a readable prefix */
        fx->fetched[i] = malloc(len + 1);
        if (!fx->fetched[i]) {
            im->oom = 1;
            break;
        }
        memcpy(fx->fetched[i], resp, len);
        fx->fetched[i][len] = '\0';
        fx->fetched_len[i] = len;
        break;
    }
    case OP_CAPABILITY: {
        int caps;
        if (imap_parse_capability(resp, len, &caps) == 0)
            im->caps |= caps;
        break;
    }
    case OP_LIST: {
        char name[FOLDER_MAX];
        char delim;
        int flags, rank;
        if (imap_parse_list(resp, len, &flags, &delim, name, sizeof name) < 0 || (flags & IMAP_LIST_NOSELECT))
            break;
        if (im->sent_special)
            break; /* the \Sent folder wins over any name */
        if (flags & IMAP_LIST_SENT) {
            snprintf(im->sent, sizeof im->sent, "%s", name);
            im->sent_special = 1;
            break;
        }
        rank = imap_sent_rank(name, delim);
        if (rank >= 0 && (!im->sent_named || rank < im->sent_rank)) {
            snprintf(im->sent, sizeof im->sent, "%s", name);
            im->sent_named = 1;
            im->sent_rank = rank;
        }
        break;
    }
    default:
        break;
    }
}

static size_t on_header(char *buf, size_t size, size_t nitems, void *userp)
{
    struct imap *im = userp;
    size_t total = size * nitems;
    im->bytes += total;
    if (imap_reader_feed(&im->reader, buf, total, on_response, im) < 0)
        im->oom = 1;
    return total;
}

/* Untagged responses also reach the write callback: already read above. */
static size_t on_write(char *buf, size_t size, size_t nitems, void *userp)
{
    (void)buf;
    (void)userp;
    return size * nitems;
}

static size_t on_read(char *buf, size_t size, size_t nitems, void *userp)
{
    struct imap *im = userp;
    size_t room = size * nitems, left = im->len - im->off;
    size_t n = left < room ? left : room;
    memcpy(buf, im->data + im->off, n);
    im->off += n;
    return n;
}

static void copy_text(char *dst, size_t size, const char *src)
{
    snprintf(dst, size, "%s", src ? src : "");
}

static int text_has(const char *text, const char *word)
{
    return text && strcasestr(text, word) != NULL;
}

/* What a finished command's CURLcode and answers mean. */
static int outcome(struct imap *im, CURLcode code, struct imap_reply *r)
{
    const char *why = im->errbuf[0] ? im->errbuf : curl_easy_strerror(code);
    switch (code) {
    case CURLE_OK:
        if (im->oom) {
            copy_text(r->text, sizeof r->text, "out of memory while reading the answer");
            return -ENOMEM;
        }
        if (imap_reader_pending(&im->reader)) {
            /* the answer ended inside a literal or a line: cut somewhere */
            im->fresh = 1;
            copy_text(r->text, sizeof r->text, "the server's answer was cut; reconnecting");
            return -EPROTO;
        }
        if (im->unreadable) {
            copy_text(r->text, sizeof r->text, "the server's answer could not be read");
            return -EPROTO;
        }
        copy_text(r->text, sizeof r->text, im->tagged);
        return 0;
    case CURLE_LOGIN_DENIED:
        /* libcurl 7.88 reports a refused SELECT as a login failure too */
        if (text_has(why, "select")) {
            copy_text(r->text, sizeof r->text, im->tagged[0] ? im->tagged : why);
            return -ENOENT;
        }
        copy_text(r->text, sizeof r->text, im->tagged[0] ? im->tagged : why);
        return -EACCES;
    case CURLE_QUOTE_ERROR:
    case CURLE_UPLOAD_FAILED:
    case CURLE_REMOTE_FILE_NOT_FOUND:
        copy_text(r->text, sizeof r->text, im->tagged[0] ? im->tagged : why);
        if (text_has(im->tagged, "NONEXISTENT") || text_has(im->tagged, "TRYCREATE") ||
            text_has(im->tagged, "doesn't exist") || text_has(im->tagged, "does not exist") ||
            code == CURLE_REMOTE_FILE_NOT_FOUND)
            return -ENOENT;
        return -EPROTO;
    default:
        copy_text(r->text, sizeof r->text, why);
        im->fresh = 1;
        /* libcurl's charge for the answer's lines (imap.h): the command
         * asked for too much at once, the server is fine */
        return code == CURLE_RECV_ERROR && text_has(why, "Too large response") ? -E2BIG : -EIO;
    }
}

static int cmp_uid(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return x < y ? -1 : x > y;
}

static void on_closed(struct xfer *x)
{
    struct imap *im = x->data;
    void (*cb)(void *) = im->closed_cb;
    void *arg = im->closed_arg;
    free(im->url);
    free(im->uids);
    fetch_state_free(&im->fx);
    imap_reader_free(&im->reader);
    free(im);
    if (cb)
        cb(arg);
}

/* The easy handle is cleaned up on a pool thread (a live connection's
 * LOGOUT waits there, never on the loop); im is freed after. */
static void channel_close(struct imap *im)
{
    xfer_close(&im->x, on_closed);
}

static int list_after_capability(struct imap *im, struct imap_reply *r);

static void finish(struct imap *im, CURLcode code, int cancelled)
{
    struct imap_reply r;
    memset(&r, 0, sizeof r);
    r.curl_code = code;
    r.bytes_read = im->bytes;
    if (cancelled) {
        r.status = -ECANCELED;
        copy_text(r.text, sizeof r.text, "the IMAP channel was closed");
    } else {
        r.status = outcome(im, code, &r);
    }
    if (im->op == OP_CAPABILITY && !cancelled && list_after_capability(im, &r) == 0)
        return; /* the LIST runs now; its end fires the callback */
    /* the fetch's state leaves im: the callback may start another command */
    struct fetch_state fx = im->fx;
    memset(&im->fx, 0, sizeof im->fx);
    if (r.status == 0) {
        switch (im->op) {
        case OP_EXAMINE:
            if (!im->sel.uidvalidity || !im->sel.has_uidnext) {
                r.status = -EPROTO;
                copy_text(r.text, sizeof r.text,
                          im->sel.uidvalidity ? "no UIDNEXT in the EXAMINE answer" : "no UIDVALIDITY in the EXAMINE answer");
            }
            r.uidnext = im->sel.uidnext;
            r.uidvalidity = im->sel.uidvalidity;
            r.exists = im->sel.exists;
            break;
        case OP_STATUS:
            if (!im->got_status || !im->uidvalidity) {
                r.status = -EPROTO;
                copy_text(r.text, sizeof r.text, "no STATUS in the server's answer");
            }
            r.uidnext = im->uidnext;
            r.uidvalidity = im->uidvalidity;
            break;
        case OP_SEARCH:
            if (im->n_uids > 1) /* an empty search has no array: qsort(NULL, 0) is undefined */
                qsort(im->uids, im->n_uids, sizeof *im->uids, cmp_uid);
            r.uids = im->uids;
            r.n_uids = im->n_uids;
            break;
        case OP_FETCH:
            /* in place: the k-th found message moves to k <= i */
            for (size_t i = 0; i < fx.n; i++) {
                struct imap_fetch_data f;
                if (!fx.msgs[i].uid)
                    continue; /* expunged since the search */
                struct imap_message m = {.uid = fx.msgs[i].uid, .size = fx.msgs[i].size};
                if (!fx.sizes_only) {
                    if (!fx.fetched[i] || imap_parse_fetch(fx.fetched[i], fx.fetched_len[i], &f) < 0)
                        continue;
                    m.seen = f.seen;
                    m.header = f.header;
                    m.header_len = f.header_len;
                    m.body = f.has_body ? f.body : "";
                    m.body_len = f.body_len;
                }
                fx.msgs[r.n_messages++] = m;
            }
            r.messages = fx.msgs;
            break;
        case OP_LIST:
            r.folder = im->sent[0] ? im->sent : "Sent";
            r.special_use = im->sent_special;
            break;
        default:
            break;
        }
    }
    if (im->op == OP_EXAMINE && r.status < 0)
        im->fresh = 1; /* the server may have nothing selected now; libcurl thinks otherwise */
    imap_cb cb = im->cb;
    void *arg = im->arg;
    im->busy = 0;
    im->cb = NULL;
    im->arg = NULL;
    im->data = NULL;
    im->in_cb = 1;
    cb(im, &r, arg);
    im->in_cb = 0;
    fetch_state_free(&fx); /* what the reply pointed into */
    if (im->close_pending) {
        channel_close(im);
        return;
    }
    im->n_uids = 0;
    if (im->cap_uids > 4096) {
        free(im->uids);
        im->uids = NULL;
        im->cap_uids = 0;
    }
}

/* On the loop: the command's transfer ended on its thread. */
static void on_event(struct xfer *x, unsigned events, int done, CURLcode result)
{
    struct imap *im = x->data;
    (void)events; /* none are posted: only the end matters */
    if (!done)
        return;
    if (result == CURLE_ABORTED_BY_CALLBACK && !im->errbuf[0])
        copy_text(im->errbuf, sizeof im->errbuf, "the transport was closed or lost its socket");
    finish(im, result, 0);
}

/* Sets every per-command option; the handle keeps options between
 * commands, so unused ones are reset. path is the URL's mailbox (NULL:
 * none). Returns 0, or a negative error. */
static int configure(struct imap *im, const char *path, const char *custom, int upload)
{
    const struct imap_account *a = im->acct;
    CURL *e = im->x.easy;
    long connect_ms = a->connect_timeout_ms > 0 ? a->connect_timeout_ms : DEFAULT_CONNECT_TIMEOUT_MS;
    long timeout_ms = a->timeout_ms > 0 ? a->timeout_ms : DEFAULT_TIMEOUT_MS;
    long idle_s = a->idle_timeout_s > 0 ? a->idle_timeout_s : DEFAULT_IDLE_TIMEOUT_S;
    const char *token = NULL;
    if (a->auth == IMAP_AUTH_XOAUTH2) {
        token = a->bearer ? a->bearer(a->bearer_arg) : NULL;
        if (!token || !*token)
            return -EAGAIN;
    }
    free(im->url);
    im->url = NULL;
    char *escaped = NULL;
    if (path) {
        escaped = curl_easy_escape(e, path, 0);
        if (!escaped)
            return -ENOMEM;
    }
    if (asprintf(&im->url, "%s/%s", im->base, escaped ? escaped : "") < 0)
        im->url = NULL;
    curl_free(escaped);
    if (!im->url)
        return -ENOMEM;

    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_URL, im->url) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PROTOCOLS_STR, "imap,imaps") != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USE_SSL, a->tls == IMAP_TLS_NONE ? (long)CURLUSESSL_NONE
                                                                        : (long)CURLUSESSL_ALL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYPEER, 1L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSL_VERIFYHOST, 2L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SSLVERSION, (long)CURL_SSLVERSION_TLSv1_2) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CAINFO, a->ca_file ? a->ca_file : im->x.default_cainfo) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_USERNAME, a->username) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_PASSWORD, a->auth == IMAP_AUTH_PASSWORD ? a->password : NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_XOAUTH2_BEARER, token) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_LOGIN_OPTIONS, token ? "AUTH=XOAUTH2" : NULL) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CUSTOMREQUEST, custom) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_UPLOAD, upload ? 1L : 0L) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_INFILESIZE_LARGE, upload ? (curl_off_t)im->len : (curl_off_t)-1) !=
           CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_CONNECTTIMEOUT_MS, connect_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_TIMEOUT_MS, timeout_ms) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_SERVER_RESPONSE_TIMEOUT, (timeout_ms + 999) / 1000) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_MAXAGE_CONN, idle_s) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_FRESH_CONNECT, im->fresh ? 1L : 0L) != CURLE_OK;
    return bad ? -EINVAL : 0;
}

static int start(struct imap *im, enum op op, const char *path, const char *custom, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (!cb)
        return -EINVAL;
    im->op = op;
    int rc = configure(im, path, custom, op == OP_APPEND);
    if (rc < 0)
        return rc;
    im->fresh = 0;
    imap_reader_reset(&im->reader);
    im->errbuf[0] = '\0';
    im->tagged[0] = '\0';
    im->bytes = 0;
    im->oom = 0;
    im->unreadable = 0;
    im->refused = 0;
    im->got_status = 0;
    im->uidnext = im->uidvalidity = 0;
    memset(&im->sel, 0, sizeof im->sel);
    im->n_uids = 0;
    im->sent[0] = '\0';
    im->sent_special = im->sent_named = 0;
    im->cb = cb;
    im->arg = arg;
    if (xfer_start(&im->x) < 0) {
        im->cb = NULL;
        im->arg = NULL;
        return -ENOMEM;
    }
    im->busy = 1;
    return 0;
}

static int folder_ok(const char *folder)
{
    return folder && *folder && strlen(folder) < FOLDER_MAX && !strpbrk(folder, "\r\n");
}

/* "VERB "folder"TAIL" as a command of ours, with no mailbox in the URL:
 * libcurl sends it without a SELECT of its own. */
static int folder_command(struct imap *im, enum op op, const char *verb, const char *folder, const char *tail,
                          imap_cb cb, void *arg)
{
    char q[FOLDER_MAX * 2 + 3];
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || imap_quote(folder, q, sizeof q) < 0)
        return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    snprintf(im->cmd, sizeof im->cmd, "%s %s%s", verb, q, tail);
    return start(im, op, NULL, im->cmd, cb, arg);
}

int imap_status(struct imap *im, const char *folder, imap_cb cb, void *arg)
{
    return folder_command(im, OP_STATUS, "STATUS", folder, " (UIDNEXT UIDVALIDITY)", cb, arg);
}

/* libcurl keeps its own idea of the selected mailbox and skips its SELECT
 * when a later command's URL names the one it selected last: after this
 * EXAMINE of F, the next command here is for F (the search), so either
 * libcurl selects F again or F is already what the server has selected.
 * Should EXAMINE fail, the server has nothing selected while libcurl may
 * think otherwise: the next command opens a new connection (finish). */
int imap_examine(struct imap *im, const char *folder, imap_cb cb, void *arg)
{
    return folder_command(im, OP_EXAMINE, "EXAMINE", folder, "", cb, arg);
}

int imap_search(struct imap *im, const char *folder, uint32_t from, time_t since, imap_cb cb, void *arg)
{
    static const char *const months[12] = {"Jan", "Feb", "Mar", "Apr", "May", "Jun",
                                           "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"};
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || from == 0)
        return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    im->from_uid = from;
    char date[40] = "";
    struct tm tm;
    if (since > 0 && gmtime_r(&since, &tm))
        snprintf(date, sizeof date, " SINCE %d-%s-%d", tm.tm_mday, months[tm.tm_mon], tm.tm_year + 1900);
    snprintf(im->cmd, sizeof im->cmd, "UID SEARCH UID %lu:*%s", (unsigned long)from, date);
    return start(im, OP_SEARCH, folder, im->cmd, cb, arg);
}

/* UID FETCH uids[0..n) (items), as one command. */
static int fetch_start(struct imap *im, const char *folder, const uint32_t *uids, size_t n, size_t max,
                       const char *items, int sizes_only, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || !uids || n == 0 || n > max)
        return -EINVAL;
    for (size_t i = 0; i < n; i++)
        if (uids[i] == 0 || (i > 0 && uids[i] <= uids[i - 1]))
            return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    /* the UID set, runs of consecutive UIDs as a:b */
    struct buf cmd = {0};
    buf_adds(&cmd, "UID FETCH ");
    for (size_t i = 0; i < n;) {
        size_t j = i;
        while (j + 1 < n && uids[j + 1] == uids[j] + 1)
            j++;
        if (j > i)
            buf_addf(&cmd, "%s%lu:%lu", i ? "," : "", (unsigned long)uids[i], (unsigned long)uids[j]);
        else
            buf_addf(&cmd, "%s%lu", i ? "," : "", (unsigned long)uids[i]);
        i = j + 1;
    }
    buf_addf(&cmd, " (%s)", items);
    struct fetch_state *fx = &im->fx;
    fetch_state_free(fx);
    fx->n = n;
    fx->sizes_only = sizes_only;
    fx->want = malloc(n * sizeof *fx->want);
    fx->msgs = calloc(n, sizeof *fx->msgs);
    if (!sizes_only) {
        fx->fetched = calloc(n, sizeof *fx->fetched);
        fx->fetched_len = calloc(n, sizeof *fx->fetched_len);
    }
    int rc = -ENOMEM;
    if (!cmd.oom && fx->want && fx->msgs && (sizes_only || (fx->fetched && fx->fetched_len))) {
        memcpy(fx->want, uids, n * sizeof *uids);
        rc = start(im, OP_FETCH, folder, cmd.p, cb, arg); /* libcurl copies the command */
    }
    buf_free(&cmd);
    if (rc < 0)
        fetch_state_free(fx);
    return rc;
}

int imap_fetch(struct imap *im, const char *folder, const uint32_t *uids, size_t n, size_t body_max, imap_cb cb,
               void *arg)
{
    if (body_max > IMAP_FETCH_BODY_MAX)
        body_max = IMAP_FETCH_BODY_MAX;
    char items[128];
    snprintf(items, sizeof items, "UID RFC822.SIZE FLAGS BODY.PEEK[HEADER]<0.%d>", IMAP_FETCH_HEADER_MAX);
    if (body_max)
        snprintf(items + strlen(items), sizeof items - strlen(items), " BODY.PEEK[TEXT]<0.%zu>", body_max);
    return fetch_start(im, folder, uids, n, IMAP_FETCH_BATCH, items, 0, cb, arg);
}

int imap_fetch_sizes(struct imap *im, const char *folder, const uint32_t *uids, size_t n, imap_cb cb, void *arg)
{
    return fetch_start(im, folder, uids, n, IMAP_SIZES_MAX, "UID RFC822.SIZE", 1, cb, arg);
}

/* RETURN (SPECIAL-USE) is LIST-EXTENDED syntax flagging SPECIAL-USE
 * folders: a server that lacks either may refuse the whole command
 * (Courier answers NO). A plain LIST still carries \Sent on servers
 * that flag folders without LIST-EXTENDED; else the name decides. */
static int list_start(struct imap *im, imap_cb cb, void *arg)
{
    const int both = IMAP_CAP_SPECIAL_USE | IMAP_CAP_LIST_EXTENDED;
    snprintf(im->cmd, sizeof im->cmd, "%s",
             (im->caps & both) == both ? "LIST \"\" \"*\" RETURN (SPECIAL-USE)" : "LIST \"\" \"*\"");
    return start(im, OP_LIST, NULL, im->cmd, cb, arg);
}

/* finish() of a CAPABILITY sent for imap_sent_folder: the LIST follows on
 * the same callback. Returns 0 when it started (the callback is now the
 * LIST's), else -1 with r saying why for the callback to hear. A refused
 * CAPABILITY (every IMAP server has it, but) is taken as "nothing
 * extended"; a transport failure is reported as it is. */
static int list_after_capability(struct imap *im, struct imap_reply *r)
{
    if (r->status < 0 && r->status != -EPROTO)
        return -1;
    im->caps_known = 1;
    imap_cb cb = im->cb;
    void *arg = im->arg;
    im->busy = 0;
    int rc = list_start(im, cb, arg);
    if (rc == 0)
        return 0;
    im->busy = 1; /* finish() ends the command as a failure */
    im->cb = cb;
    im->arg = arg;
    r->status = rc;
    copy_text(r->text, sizeof r->text, "cannot start LIST");
    return -1;
}

int imap_sent_folder(struct imap *im, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (im->caps_known)
        return list_start(im, cb, arg);
    im->caps = 0;
    snprintf(im->cmd, sizeof im->cmd, "CAPABILITY");
    return start(im, OP_CAPABILITY, NULL, im->cmd, cb, arg);
}

int imap_append(struct imap *im, const char *folder, const char *data, size_t len, imap_cb cb, void *arg)
{
    if (im->busy)
        return -EBUSY;
    if (!folder_ok(folder) || !data || len == 0)
        return -EINVAL;
    snprintf(im->folder, sizeof im->folder, "%s", folder);
    im->data = data;
    im->len = len;
    im->off = 0;
    /* libcurl sends APPEND mailbox (\Seen) {len} and the bytes */
    int rc = start(im, OP_APPEND, folder, NULL, cb, arg);
    if (rc < 0)
        im->data = NULL;
    return rc;
}

void imap_reconnect(struct imap *im)
{
    im->fresh = 1;
}

/* scheme://host[:port] of url, without a path; implicit_tls for imaps. */
static int url_base(const char *url, char *base, size_t size, int *implicit_tls)
{
    if (!url)
        return -1;
    if (strncasecmp(url, "imap://", 7) == 0)
        *implicit_tls = 0;
    else if (strncasecmp(url, "imaps://", 8) == 0)
        *implicit_tls = 1;
    else
        return -1;
    const char *host = strstr(url, "://") + 3;
    size_t n = strcspn(host, "/?#");
    if (n == 0 || (size_t)(host - url) + n + 1 > size)
        return -1;
    memcpy(base, url, (size_t)(host - url) + n);
    base[(size_t)(host - url) + n] = '\0';
    return 0;
}

struct imap *imap_new(uv_loop_t *loop, struct xfer_pool *pool, const struct imap_account *a)
{
    int implicit_tls;
    char base[sizeof ((struct imap *)0)->base];
    if (url_base(a->url, base, sizeof base, &implicit_tls) < 0)
        return NULL;
    if (implicit_tls && a->tls == IMAP_TLS_NONE)
        return NULL; /* imaps:// is TLS by definition */
    if (!a->username || !*a->username)
        return NULL;
    if (a->auth == IMAP_AUTH_PASSWORD && (!a->password || !*a->password))
        return NULL;
    struct imap *im = calloc(1, sizeof *im);
    if (!im)
        return NULL;
    if (xfer_init(&im->x, loop, pool, on_event) < 0) {
        free(im);
        return NULL;
    }
    im->x.data = im;
    im->acct = a;
    memcpy(im->base, base, sizeof base);
    im->implicit_tls = implicit_tls;
    imap_reader_init(&im->reader, RESPONSE_MAX);
    CURL *e = im->x.easy;
    int bad = 0;
    bad |= curl_easy_setopt(e, CURLOPT_ERRORBUFFER, im->errbuf) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERFUNCTION, on_header) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_HEADERDATA, im) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEFUNCTION, on_write) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_WRITEDATA, im) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_READFUNCTION, on_read) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_READDATA, im) != CURLE_OK;
    bad |= curl_easy_setopt(e, CURLOPT_BUFFERSIZE, RECEIVE_BUFFER) != CURLE_OK;
    if (bad) {
        channel_close(im); /* frees im */
        return NULL;
    }
    return im;
}

void imap_close(struct imap *im, void (*on_closed_cb)(void *arg), void *arg)
{
    if (!im || im->close_pending)
        return;
    im->closed_cb = on_closed_cb;
    im->closed_arg = arg;
    if (im->in_cb) {
        /* from inside its own callback: closed once that returns */
        im->close_pending = 1;
        return;
    }
    if (im->busy) {
        /* ended now, on its thread (at most about a second); whatever it
         * had come to, the caller hears -ECANCELED */
        CURLcode ignored;
        xfer_lock(&im->x);
        (void)xfer_stop_locked(&im->x, &ignored);
        xfer_unlock(&im->x);
        im->close_pending = 1;
        finish(im, CURLE_ABORTED_BY_CALLBACK, 1); /* closes im */
        return;
    }
    channel_close(im);
}
