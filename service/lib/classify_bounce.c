/* classify_bounce: reads a bounce. It owns the three shapes one comes
 * in (an RFC 3464 delivery report; the free text of MTAs and providers
 * that write none: Exim, qmail, old Sendmail, Exchange, Lotus; an Amazon
 * SES notification as JSON) and takes from each the failed recipients,
 * their status codes, the kind (hard when any address is gone) and the
 * Message-ID of the returned original. Each recipient's reason comes
 * from classify_reason.c. It does not read replies (classify.c does).
 * Pure: no I/O, no logging. */
#include "classify.h"
#include "classify_int.h"

#include "mime.h"
#include "refusal.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* The lines about addr in the notification text: the line that names
 * it and those after it up to a blank line (at most 8 lines), plus the
 * line before. Normalised; NULL when addr is absent or out of memory. */
static char *recipient_context(const char *text, const char *addr)
{
    if (!addr[0])
        return NULL;
    const char *p = strcasestr(text, addr);
    if (!p)
        return NULL;
    const char *s = p;
    while (s > text && s[-1] != '\n')
        s--;
    if (s > text) { /* the line before, unless blank */
        const char *q = s - 1;
        while (q > text && q[-1] != '\n')
            q--;
        size_t k = 0;
        while (q + k < s && isspace((unsigned char)q[k]))
            k++;
        if (q + k < s)
            s = q;
    }
    const char *e = p;
    for (int lines = 0; *e && lines < 8; lines++) {
        const char *nl = strchr(e, '\n');
        if (!nl) {
            e += strlen(e);
            break;
        }
        e = nl + 1;
        size_t k = 0;
        while (e[k] == ' ' || e[k] == '\t' || e[k] == '\r')
            k++;
        if (e[k] == '\n' || e[k] == '\0')
            break;
    }
    if (e - s > 1200)
        e = s + 1200;
    return cls_norm(s, (size_t)(e - s));
}

static int skip_address(const struct cls_msg *m, const char *a)
{
    static const char *const locals[] = {"mailer-daemon@", "mailer_daemon@",
                                         "double-bounce@", "mail-daemon@", NULL};
    for (size_t i = 0; locals[i]; i++)
        if (strncasecmp(a, locals[i], strlen(locals[i])) == 0)
            return 1;
    if (m->from_addr[0] && strcasecmp(a, m->from_addr) == 0)
        return 1;
    if (m->to_addr[0] && strcasecmp(a, m->to_addr) == 0)
        return 1;
    return 0;
}

static int add_recipient(struct classify_result *out, const char *addr, const char *status,
                         enum classify_reason reason)
{
    for (size_t i = 0; i < out->recipient_count; i++)
        if (strcasecmp(out->recipients[i].address, addr) == 0)
            return 0;
    if (out->recipient_count >= CLASSIFY_MAX_RECIPIENTS)
        return 0;
    struct classify_recipient *r = &out->recipients[out->recipient_count++];
    snprintf(r->address, sizeof r->address, "%s", addr);
    snprintf(r->status, sizeof r->status, "%s", status ? status : "");
    r->reason = reason;
    return 1;
}

/* NTT docomo answers "550 Unknown user" when the recipient's own
 * domain filter refuses the sender: the address exists. */
static enum classify_reason provider_adjust(const char *addr, enum classify_reason r)
{
    const char *at = strrchr(addr, '@');
    if (r == CLASSIFY_REASON_USER_UNKNOWN && at &&
        (strcasestr(at, ".docomo.") || strcasestr(at, "@docomo.")))
        return CLASSIFY_REASON_FILTERED;
    return r;
}

/* Settles kind, reason and block flag from the recipients. */
static void finish_bounce(struct classify_result *out, enum classify_reason fallback)
{
    /* One report can fail several recipients for different reasons; the
     * kind follows the worst (a gone address), each recipient keeps its
     * own reason for the suppression list. */
    int hard = 0;
    for (size_t i = 0; i < out->recipient_count; i++) {
        out->recipients[i].reason =
            provider_adjust(out->recipients[i].address, out->recipients[i].reason);
        if (classify_reason_is_hard(out->recipients[i].reason))
            hard = 1;
        if (classify_reason_is_block(out->recipients[i].reason))
            out->is_block = 1;
    }
    out->reason = out->recipient_count ? out->recipients[0].reason : fallback;
    if (out->recipient_count == 0) {
        hard = classify_reason_is_hard(fallback);
        out->is_block = classify_reason_is_block(fallback);
    }
    out->kind = hard ? CLASSIFY_HARD_BOUNCE : CLASSIFY_SOFT_BOUNCE;
}

/* Keeps the first refusal of the sending account (refusal.h) among the
 * failed recipients: status st and the server's words, text[0..n) on one
 * line (spaces collapsed), with st in front when the words lack it. */
static void note_refusal(struct classify_result *out, const char *st, const char *text, size_t n)
{
    if (out->refusal[0] || refusal_classify(st, text) != REFUSAL_UNAUTHENTICATED)
        return;
    /* room for a status (at most 15 characters) and a space in front */
    char words[sizeof out->refusal - 17];
    size_t k = 0;
    for (size_t i = 0; i < n && text[i] && k + 1 < sizeof words; i++) {
        int space = isspace((unsigned char)text[i]);
        if (space && (k == 0 || words[k - 1] == ' '))
            continue;
        words[k++] = space ? ' ' : text[i];
    }
    while (k > 0 && words[k - 1] == ' ')
        k--;
    words[k] = '\0';
    if (strstr(words, st))
        snprintf(out->refusal, sizeof out->refusal, "%s", words);
    else
        snprintf(out->refusal, sizeof out->refusal, "%.15s%s%s", st, k ? " " : "", words);
}

static void returned_message_id(const struct cls_msg *m, struct classify_result *out)
{
    if (m->returned &&
        cls_extract_msgid(mime_headers_get(&m->returned->headers, "Message-ID"), 0, out->message_id,
                      sizeof out->message_id) == 0)
        return;
    /* inline returned headers in a plain-text bounce */
    const char *t = cls_text_str(&m->text);
    for (const char *p = strcasestr(t, "message-id:"); p; p = strcasestr(p + 1, "message-id:")) {
        if (p == t || p[-1] == '\n' || p[-1] == ' ') {
            char line[600];
            size_t n = strcspn(p, "\n");
            cls_copy_str(line, sizeof line, p, n);
            if (cls_extract_msgid(line + 11, 0, out->message_id, sizeof out->message_id) == 0)
                return;
        }
    }
}

static void strip_diag_type(const char *v, char *out, size_t outlen)
{
    const char *semi = v ? strchr(v, ';') : NULL;
    const char *s = v ? v : "";
    if (semi && semi - s < 12)
        s = semi + 1;
    while (*s == ' ')
        s++;
    snprintf(out, outlen, "%s", s);
}

/* RFC 3464 report. Returns 1 when it decided the message. */
static int dsn_read(const struct cls_msg *m, const struct mime_part *ds,
                    struct classify_result *out)
{
    struct mime_dsn dsn;
    if (mime_dsn_parse(ds->body ? ds->body : "", ds->body_len, &dsn) < 0)
        return -ENOMEM;
    int failed = 0, delivered = 0, rc = 0;
    for (size_t i = 0; i < dsn.count; i++) {
        const struct mime_headers *b = &dsn.blocks[i];
        const char *fr = mime_headers_get(b, "Final-Recipient");
        const char *or = mime_headers_get(b, "Original-Recipient");
        const char *action = mime_headers_get(b, "Action");
        const char *status = mime_headers_get(b, "Status");
        if (!fr && !or && !action)
            continue;
        char st[16] = "";
        if (status) {
            size_t k = 0;
            while (status[k] == ' ')
                k++;
            size_t n = cls_status_at(status + k, status + k);
            if (n)
                cls_copy_str(st, sizeof st, status + k, n);
        }
        int is_fail = 0;
        if (action) {
            if (strncasecmp(action, "failed", 6) == 0 || strncasecmp(action, "delayed", 7) == 0)
                is_fail = 1;
            else if (strncasecmp(action, "deliver", 7) == 0 ||
                     strncasecmp(action, "relayed", 7) == 0 ||
                     strncasecmp(action, "expanded", 8) == 0)
                delivered++;
            else if (st[0] == '4' || st[0] == '5')
                is_fail = 1;
        } else if (st[0] == '4' || st[0] == '5') {
            is_fail = 1;
        }
        if (!is_fail)
            continue;
        failed++;
        char addr[256] = "";
        if (cls_first_address(fr, addr, sizeof addr) < 0 &&
            cls_first_address(or, addr, sizeof addr) < 0)
            addr[0] = '\0';
        char diag[1024];
        const char *dc = mime_headers_get(b, "Diagnostic-Code");
        strip_diag_type(dc, diag, sizeof diag);
        char *nd = cls_norm(diag, strlen(diag));
        char *ctx = recipient_context(cls_text_str(&m->text), addr);
        if (!nd) {
            free(ctx);
            rc = -ENOMEM;
            goto done;
        }
        /* a bare 5.0.0 says less than the code the text quotes */
        char better[16] = "";
        if (cls_status_is_generic(st) &&
            (cls_find_status(diag, strlen(diag), better, sizeof better) == 0 ||
             (ctx && cls_find_status(ctx, strlen(ctx), better, sizeof better) == 0)))
            snprintf(st, sizeof st, "%s", better);
        enum classify_reason r = cls_decide_reason(nd, ctx, st, m->ntext);
        /* Action: failed is final (RFC 3464 2.3.3: the MTA abandoned
         * delivery). A transient-class code that says the mailbox or its
         * system does not exist (X.1.1 bad destination mailbox, X.1.2 bad
         * destination system: a server in soft-bounce mode, Postfix's
         * 450 4.1.1) then describes the address, not a moment: as hard as
         * its 5.x.x twin. */
        if (action && strncasecmp(action, "failed", 6) == 0 && st[0] == '4' &&
            (strncmp(st + 1, ".1.1", 4) == 0 || strncmp(st + 1, ".1.2", 4) == 0) &&
            (r == CLASSIFY_REASON_SYSTEM || r == CLASSIFY_REASON_NETWORK))
            r = st[4] == '1' ? CLASSIFY_REASON_USER_UNKNOWN : CLASSIFY_REASON_HOST_UNKNOWN;
        /* a local delivery program failed (procmail, maildrop): the
         * mailbox is there, the program around it is not */
        if (dc && strncasecmp(dc, "x-unix", 6) == 0 && classify_reason_is_hard(r))
            r = CLASSIFY_REASON_SYSTEM;
        free(nd);
        free(ctx);
        note_refusal(out, st, diag, strlen(diag));
        if (addr[0])
            add_recipient(out, addr, st, r);
        else if (out->recipient_count == 0 && i + 1 == dsn.count)
            finish_bounce(out, r);
        if (!addr[0] && out->reason == CLASSIFY_REASON_NONE)
            out->reason = r;
    }
    if (failed == 0) {
        if (delivered > 0) {
            out->kind = CLASSIFY_OTHER;
            rc = 1;
        }
        goto done;
    }
    finish_bounce(out, out->reason != CLASSIFY_REASON_NONE
                           ? out->reason
                           : cls_decide_reason(m->ntext, NULL, "", m->ntext));
    returned_message_id(m, out);
    rc = 1;
done:
    mime_dsn_free(&dsn);
    return rc;
}

static const char *const bounce_subjects[] = {
    "undeliver", "undelivered", "delivery status notification", "delivery failure",
    "delivery failed", "failure notice", "returned mail", "mail delivery failed",
    "non-deliverable", "nondeliverable", "non deliverable", "could not be delivered",
    "returned to sender", "mail system error", "delivery problem", "delivery notification",
    "failed delivery", "delivery has failed", "not delivered", "message not delivered",
    "delivery error", "mail delivery error", "undeliverable", "rejected", "warning: could not",
    "delayed mail", "delivery delayed", "delivery is delayed", "mail could not be delivered",
    "unzustellbar", "nicht zustellbar", "non remis", "non distribuable",
    "échec de la remise", "echec de la remise", "no se puede entregar", "no entregado",
    "error de entrega", "mensaje devuelto", "bounce", "nondelivery", "non-delivery",
    "unable to deliver", "delivery report", "mail failure", "failed mail",
    "returned message", "mail returned", "could not send", "email undeliverable",
    "mail failed", "returning to sender", "error sending your mail", NULL};

static const char *const bounce_bodies[] = {
    "could not be delivered", "couldn't be delivered", "wasn't delivered",
    "was not delivered", "delivery has failed", "delivery failed", "permanent error",
    "permanent fatal error", "undeliverable", "following address failed",
    "following addresses failed", "following recipient", "this is the mail system at host",
    "wasn't able to deliver", "was not able to deliver", "unable to deliver",
    "could not deliver", "couldn't deliver", "not be delivered", "delivery to the following",
    "qmail-send program", "returned mail", "mail delivery failed", "delivery failure",
    "failed to deliver", "did not reach", "could not reach", "message could not be sent",
    "has not yet been delivered", "delivery attempts will continue", "transcript of session",
    "rejected your message", "message was rejected", "message has been rejected",
    "non remis", "unzustellbar", "no se ha podido entregar", "no pudo ser entregado",
    "error de entrega", "trouble delivering", "failed addresses follow",
    "requested action not taken", "invalid user address", NULL};

static int daemon_sender(const struct cls_msg *m)
{
    static const char *const names[] = {"mailer-daemon", "mailer_daemon", "mail-daemon",
                                        "mailer daemon", "post_master",
                                        "maildaemon", "postmaster", "mail delivery",
                                        "mail administrator", "delivery subsystem",
                                        "mail delivery subsystem", "mailerdaemon",
                                        "mdaemon", "bounce", "mail system", "mailadmin",
                                        "ezweb", NULL};
    if (cls_any_match(m->from, names))
        return 1;
    /* "From: <>" */
    return m->from_addr[0] == '\0' && strstr(m->from, "<>") != NULL;
}

/* Bounces without a machine-readable report: Exim, qmail, old Sendmail,
 * Exchange, Lotus, providers. Returns 1 when it decided the message. */
static int text_bounce_read(const struct cls_msg *m, struct classify_result *out)
{
    const char *xfr = mime_headers_get(m->h, "X-Failed-Recipients");
    const char *rp = mime_headers_get(m->h, "Return-Path");
    int null_sender = rp && (strstr(rp, "<>") != NULL || rp[0] == '\0');
    int subj = cls_any_match(m->subject, bounce_subjects);
    const char *t = cls_text_str(&m->text);

    /* The notification ends where the returned message starts. */
    static const char *const cut_marks[] = {
        "------ this is a copy of the message", "--- below this line is a copy of the message",
        "original message follows", "unsent message follows", "message header follows",
        "original message headers", "- returned message", "the header of the original message",
        "------ original message", "----- original message", "headers of the original",
        "--- the header of the original", NULL};
    size_t cut = m->text.len;
    for (size_t i = 0; cut_marks[i]; i++) {
        const char *p = strcasestr(t, cut_marks[i]);
        if (p && (size_t)(p - t) < cut)
            cut = (size_t)(p - t);
    }
    for (const char *p = t; p && *p && (size_t)(p - t) < cut; p = strchr(p, '\n')) {
        if (*p == '\n')
            p++;
        if (strncasecmp(p, "received: from", 14) == 0 || strncasecmp(p, "return-path:", 12) == 0) {
            if ((size_t)(p - t) < cut)
                cut = (size_t)(p - t);
            break;
        }
    }
    char *head = cls_norm(t, cut);
    if (!head)
        return -ENOMEM;
    int body = cls_any_match(head, bounce_bodies);
    int daemon = daemon_sender(m);
    /* a list manager refusing our post (not a member, loop) */
    static const char *const list_admin[] = {"-admin@", "-owner@", "owner-", "-request@", NULL};
    int list_refusal = (mime_headers_get(m->h, "X-MLServer") || mime_headers_get(m->h, "X-ML-Server")) &&
                       cls_any_match(m->from, list_admin);
    int is_bounce = xfr != NULL || (daemon && (subj || body)) || (null_sender && body) ||
                    list_refusal;
    if (!is_bounce) {
        free(head);
        return 0;
    }

    char status[16] = "";
    cls_find_status(t, cut, status, sizeof status);
    if (xfr) {
        size_t pos = 0;
        char a[256];
        while (cls_next_address(xfr, &pos, a, sizeof a))
            add_recipient(out, a, status, CLASSIFY_REASON_NONE);
    }
    /* Addresses in the notification, each with the text after it as its
     * own diagnostic. */
    size_t pos = 0;
    char a[256];
    const char *starts[CLASSIFY_MAX_RECIPIENTS + 1];
    size_t idx[CLASSIFY_MAX_RECIPIENTS];
    size_t n = 0;
    char *tcopy = strndup(t, cut);
    if (!tcopy) {
        free(head);
        return -ENOMEM;
    }
    const char *s;
    while (n < CLASSIFY_MAX_RECIPIENTS &&
           (s = cls_next_address(tcopy, &pos, a, sizeof a)) != NULL) {
        /* skip message ids and mailto links */
        if (s > tcopy && (s[-1] == '<') && strchr(a, '$'))
            continue;
        const char *ls = s;
        while (ls > tcopy && ls[-1] != '\n')
            ls--;
        while (*ls == ' ' || *ls == '\t')
            ls++;
        static const char *const not_rcpt[] = {"message-id", "from:", "to:", "cc:",
                                               "references", "in-reply-to", "mail from",
                                               "reply-to", "sender:", "return-path", NULL};
        int skip = 0;
        for (size_t k = 0; not_rcpt[k] && !skip; k++)
            skip = strncasecmp(ls, not_rcpt[k], strlen(not_rcpt[k])) == 0;
        if (skip || skip_address(m, a))
            continue;
        size_t before = out->recipient_count;
        if (add_recipient(out, a, "", CLASSIFY_REASON_NONE) && out->recipient_count > before) {
            idx[n] = out->recipient_count - 1;
            starts[n++] = s;
        }
    }
    starts[n] = tcopy + strlen(tcopy);
    for (size_t i = 0; i < n; i++) {
        /* one recipient: the whole notification is about it; several:
         * the text from each address to the next */
        size_t off = n == 1 ? 0 : (size_t)(starts[i] - tcopy);
        size_t end = n == 1 ? strlen(tcopy) : (size_t)(starts[i + 1] - tcopy);
        if (end - off > 2000)
            end = off + 2000;
        char st[16] = "";
        if (cls_find_status(tcopy + off, end - off, st, sizeof st) < 0)
            snprintf(st, sizeof st, "%s", status);
        char *nd = cls_norm(tcopy + off, end - off);
        if (!nd) {
            free(tcopy);
            free(head);
            return -ENOMEM;
        }
        struct classify_recipient *r = &out->recipients[idx[i]];
        snprintf(r->status, sizeof r->status, "%s", st);
        r->reason = cls_decide_reason(nd, NULL, st, head);
        free(nd);
    }
    for (size_t i = 0; i < out->recipient_count; i++)
        if (out->recipients[i].reason == CLASSIFY_REASON_NONE)
            out->recipients[i].reason = cls_decide_reason(head, NULL, status, head);
    /* the server's words for a refusal of the account: the line of the
     * notification that quotes its status */
    for (size_t i = 0; i < out->recipient_count; i++) {
        const char *st = out->recipients[i].status;
        const char *at = st[0] ? strstr(tcopy, st) : NULL;
        if (!at)
            continue;
        const char *ls = at;
        while (ls > tcopy && ls[-1] != '\n')
            ls--;
        note_refusal(out, st, ls, strcspn(ls, "\n"));
    }
    if (out->recipient_count == 0 && m->returned) {
        char to[256];
        if (cls_first_address(mime_headers_get(&m->returned->headers, "To"), to, sizeof to) == 0)
            add_recipient(out, to, status, cls_decide_reason(head, NULL, status, head));
    }
    finish_bounce(out, cls_decide_reason(head, NULL, status, head));
    free(tcopy);
    free(head);
    returned_message_id(m, out);
    return 1;
}

/* Amazon SES notifications delivered as mail: the JSON body t. */
static int ses_json_read(const char *t, struct classify_result *out)
{
    const char *nt = strstr(t, "\"notificationType\"");
    if (!nt)
        return 0;
    if (!strstr(nt, "\"Bounce\"")) {
        out->kind = CLASSIFY_OTHER;
        return 1;
    }
    const char *bt = strstr(t, "\"bounceType\"");
    int permanent = bt && strncmp(bt, "\"bounceType\":\"Permanent\"", 24) == 0;
    const char *recips = strstr(t, "\"bouncedRecipients\"");
    const char *p = recips;
    while (p && out->recipient_count < CLASSIFY_MAX_RECIPIENTS) {
        const char *ea = strstr(p, "\"emailAddress\"");
        if (!ea)
            break;
        char a[256];
        size_t pos = 0;
        const char *end = strchr(ea + 16, '"');
        if (!end)
            break;
        char tmp[300];
        cls_copy_str(tmp, sizeof tmp, ea + 15, (size_t)(end - ea - 15));
        if (cls_next_address(tmp, &pos, a, sizeof a)) {
            char st[16] = "";
            const char *sp = strstr(ea, "\"status\"");
            if (sp && sp - ea < 400)
                cls_find_status(sp, 30, st, sizeof st);
            char diag[512] = "";
            const char *dp = strstr(ea, "\"diagnosticCode\"");
            if (dp && dp - ea < 600) {
                const char *q = strchr(dp + 16, '"');
                const char *qe = q ? strchr(q + 1, '"') : NULL;
                if (q && qe)
                    cls_copy_str(diag, sizeof diag, q + 1, (size_t)(qe - q - 1));
            }
            char *nd = cls_norm(diag, strlen(diag));
            if (!nd)
                return -ENOMEM;
            enum classify_reason r = cls_decide_reason(nd, NULL, st, NULL);
            free(nd);
            if (r == CLASSIFY_REASON_UNKNOWN && permanent)
                r = CLASSIFY_REASON_USER_UNKNOWN;
            add_recipient(out, a, st, r);
        }
        p = end;
    }
    finish_bounce(out, permanent ? CLASSIFY_REASON_USER_UNKNOWN : CLASSIFY_REASON_UNKNOWN);
    return 1;
}

/* The SES notification as it comes: its own JSON body, or (through an
 * SNS topic subscribed by e-mail) a JSON string inside the SNS envelope's
 * "Message" field, quotes escaped as \" one level down. */
static int ses_read(const struct cls_msg *m, struct classify_result *out)
{
    const char *t = cls_text_str(&m->text);
    if (strstr(t, "\"notificationType\"") || !strstr(t, "\\\"notificationType\\\""))
        return ses_json_read(t, out);
    size_t n = strlen(t);
    char *u = malloc(n + 1);
    if (!u)
        return -ENOMEM;
    size_t k = 0;
    for (size_t i = 0; i < n; i++) {
        if (t[i] == '\\' && i + 1 < n && (t[i + 1] == '"' || t[i + 1] == '\\'))
            i++; /* one level of JSON string escaping */
        u[k++] = t[i];
    }
    u[k] = '\0';
    int rc = ses_json_read(u, out);
    free(u);
    return rc;
}

/* A delivery report first (it is exact where it is present), then an
 * SES notification, then the free text of MTAs that write no report. */
int cls_bounce_read(const struct cls_msg *m, struct classify_result *out)
{
    const struct mime_part *ds = mime_part_find(m->root, "message/delivery-status");
    if (!ds)
        ds = mime_part_find(m->root, "message/global-delivery-status");
    int rc = ds ? dsn_read(m, ds, out) : 0;
    if (rc == 0)
        rc = ses_read(m, out);
    if (rc == 0)
        rc = text_bounce_read(m, out);
    return rc;
}
