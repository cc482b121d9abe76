/* compose: sequence step + contact -> message. It owns the rules that
 * make a follow-up a follow-up (subject, threading, sticky variant); the
 * template language lives in template.c and MIME in message.c. */
#include "compose.h"

#include "buf.h"
#include "linkrewrite.h"
#include "linktoken.h"
#include "message.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

/* Where the html footer's link goes: rendered as a field's value, then
 * replaced by the anchor (values are escaped as text; the link is ours). */
#define LINK_MARK "relance-unsubscribe-link-3c9e1f"

/* The subject, body and html a contact gets for a step (its variant's
 * where it has variants). */
static void step_content(const struct sequence_step *step, const char *email, const char **subject,
                         const char **body, const char **html, int *variant)
{
    *subject = step->subject;
    *body = step->body;
    *html = step->html;
    *variant = sequence_variant_choose(step, template_seed(email, step->id));
    if (*variant >= 0) {
        const struct sequence_variant *v = &step->variants[*variant];
        *subject = v->subject;
        *body = v->body;
        *html = v->html;
    }
}

/* What templates look up: sender.NAME is the account's, anything else
 * the caller's (the contact's). */
struct fields {
    const struct compose_input *in;
    struct compose_sender fallback; /* from_addr and from_name, without in->sender */
    const char *unsubscribe_url;    /* what {{unsubscribe_url}} gives */
    char buf[256];
};

static const char *const line_fields[] = {"sender.signature", NULL};

static const char *fields_lookup(const char *field, void *arg)
{
    struct fields *f = arg;
    if (strncmp(field, "sender.", 7) == 0)
        return compose_sender_field(f->in->sender ? f->in->sender : &f->fallback, field + 7, f->buf, sizeof f->buf);
    if (strcmp(field, "unsubscribe_url") == 0)
        return f->unsubscribe_url;
    return f->in->lookup ? f->in->lookup(field, f->in->lookup_arg) : NULL;
}

const char *compose_sender_field(const struct compose_sender *s, const char *name, char *buf, size_t len)
{
    if (strcmp(name, "email") == 0)
        return s->email;
    if (strcmp(name, "name") == 0)
        return s->name;
    if (strcmp(name, "signature") == 0)
        return s->signature;
    if (strcmp(name, "first_name") != 0)
        return NULL;
    if (s->first_name || !s->name)
        return s->first_name;
    /* "Bob Dupont" signs "Bob" unless told otherwise */
    const char *p = s->name + strspn(s->name, " \t");
    size_t n = strcspn(p, " \t");
    if (n == 0 || len == 0)
        return NULL;
    if (n >= len)
        n = len - 1;
    memcpy(buf, p, n);
    buf[n] = '\0';
    return buf;
}

/* Renders one part. escape is what the part is: TEMPLATE_ESCAPE_HTML for
 * the html body only; the subject (a header, encoded later by the message
 * module) and the text body take values as they are. */
static int render_url(const char *src, uint64_t seed, enum template_escape escape, const struct compose_input *in,
                      const char *url, char **out, struct compose_result *res, char *err, size_t errlen)
{
    struct template_out t = {0};
    struct fields f = {.in = in, .fallback = {in->from_addr, in->from_name, NULL, NULL}, .unsubscribe_url = url};
    int rc = template_render_lines(src, strlen(src), seed, escape, fields_lookup, &f, line_fields, &t);
    if (rc == TEMPLATE_MISSING_FIELD) {
        snprintf(res->missing, sizeof res->missing, "%s", t.missing);
        return COMPOSE_MISSING_FIELD;
    }
    if (rc != TEMPLATE_OK) {
        snprintf(err, errlen, "template %s", template_status_names[-rc]);
        return -1;
    }
    *out = t.text;
    return COMPOSE_OK;
}

static int render(const char *src, uint64_t seed, enum template_escape escape, const struct compose_input *in,
                  char **out, struct compose_result *res, char *err, size_t errlen)
{
    char mailto[400];
    snprintf(mailto, sizeof mailto, "mailto:%s?subject=unsubscribe", in->from_addr);
    return render_url(src, seed, escape, in, in->unsubscribe_url ? in->unsubscribe_url : mailto, out, res, err,
                      errlen);
}

static void add_escaped(struct buf *b, const char *s)
{
    for (; *s; s++) {
        switch (*s) {
        case '&': buf_adds(b, "&amp;"); break;
        case '<': buf_adds(b, "&lt;"); break;
        case '>': buf_adds(b, "&gt;"); break;
        case '"': buf_adds(b, "&quot;"); break;
        case '\'': buf_adds(b, "&#39;"); break;
        default: buf_addc(b, *s);
        }
    }
}

/* The text body with the footer after a blank line. */
static char *text_with_footer(const char *body, const char *footer)
{
    size_t n = strlen(body);
    while (n > 0 && (body[n - 1] == '\n' || body[n - 1] == '\r'))
        n--;
    char *out = NULL;
    if (asprintf(&out, "%.*s%s%s\n", (int)n, body, n ? "\n\n" : "", footer) < 0)
        return NULL;
    return out;
}

/* Where what is added last goes in an html body: before its last
 * </body>, else at the end. */
static size_t body_end(const char *html)
{
    const char *end = NULL;
    for (const char *p = html; (p = strcasestr(p, "</body")); p++)
        end = p;
    return end ? (size_t)(end - html) : strlen(html);
}

/* The html body with the footer as a last paragraph (before </body> when
 * there is one), its link mark made a link to url. */
static char *html_with_footer(const char *html, const char *footer, const char *url)
{
    struct buf b = {0};
    size_t head = body_end(html);
    buf_add(&b, html, head);
    buf_adds(&b, "<p>");
    for (const char *p = footer;;) {
        const char *m = strstr(p, LINK_MARK);
        if (!m) {
            buf_adds(&b, p);
            break;
        }
        buf_add(&b, p, (size_t)(m - p));
        buf_adds(&b, "<a href=\"");
        add_escaped(&b, url);
        buf_adds(&b, "\">");
        add_escaped(&b, url);
        buf_adds(&b, "</a>");
        p = m + strlen(LINK_MARK);
    }
    buf_adds(&b, "</p>\n");
    buf_adds(&b, html + head);
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    return b.p;
}

/* Appends the sequence's unsubscribe footer to the parts. */
static int add_footer(const struct compose_input *in, uint64_t seed, char **body, char **html,
                      struct compose_result *res, char *err, size_t errlen)
{
    const char *src = in->seq->unsubscribe_footer;
    char *text = NULL, *marked = NULL;
    char mailto[400];
    snprintf(mailto, sizeof mailto, "mailto:%s?subject=unsubscribe", in->from_addr);
    const char *url = in->unsubscribe_url ? in->unsubscribe_url : mailto;
    int rc = render_url(src, seed, TEMPLATE_ESCAPE_NONE, in, url, &text, res, err, errlen);
    if (rc == COMPOSE_OK && *html)
        rc = render_url(src, seed, TEMPLATE_ESCAPE_HTML, in, LINK_MARK, &marked, res, err, errlen);
    if (rc != COMPOSE_OK)
        goto done;
    char *b = text_with_footer(*body, text);
    char *h = *html ? html_with_footer(*html, marked, url) : NULL;
    if (!b || (*html && !h)) {
        free(b);
        free(h);
        snprintf(err, errlen, "out of memory");
        rc = -1;
        goto done;
    }
    free(*body);
    *body = b;
    if (h) {
        free(*html);
        *html = h;
    }
done:
    free(text);
    free(marked);
    return rc;
}

/* ---- tracking ------------------------------------------------------------ */

/* The distinct destinations a message tracks: the first pass collects
 * them (their number goes into every click token, for botcheck's "every
 * link clicked"), the second writes the tracked URLs. */
struct track {
    const struct compose_input *in;
    char id[LINKTOKEN_ID_MAX + 1]; /* the Message-ID without <> */
    char **urls;
    size_t n_urls, cap;
    int counting;                  /* the first pass: collect, write nothing */
};

static int track_seen(struct track *t, const char *url)
{
    for (size_t i = 0; i < t->n_urls; i++)
        if (strcmp(t->urls[i], url) == 0)
            return 1;
    return 0;
}

static int on_link(void *ctx, const char *url, struct buf *tracked)
{
    struct track *t = ctx;
    size_t n = strlen(url);
    if (n + 1 > LINKTOKEN_DATA_MAX)
        return 0; /* too long to sign in: left as it is */
    if (t->counting) {
        if (track_seen(t, url))
            return 1;
        if (t->n_urls == t->cap) {
            size_t cap = t->cap ? t->cap * 2 : 8;
            char **grown = realloc(t->urls, cap * sizeof *grown);
            if (!grown)
                return -ENOMEM;
            t->urls = grown;
            t->cap = cap;
        }
        char *copy = strdup(url);
        if (!copy)
            return -ENOMEM;
        t->urls[t->n_urls++] = copy;
        return 1;
    }
    unsigned char data[LINKTOKEN_DATA_MAX];
    data[0] = (unsigned char)(t->n_urls > 255 ? 255 : t->n_urls);
    memcpy(data + 1, url, n);
    char tok[LINKTOKEN_MAX];
    int rc = linktoken_make(t->in->link_secret, LINKTOKEN_CLICK, t->id, data, n + 1, tok, sizeof tok);
    if (rc < 0)
        return rc;
    buf_addf(tracked, "%s/c/%s", t->in->track_base, tok);
    return tracked->oom ? -ENOMEM : 1;
}

/* Rewrites one part through on_link into *part. */
static int track_part(struct track *t, char **part, int html, int *count)
{
    struct buf b = {0};
    struct linkrewrite_opts o = {on_link, t, t->in->unsubscribe_url};
    size_t len = strlen(*part);
    int rc = html ? linkrewrite_html(*part, len, &o, &b, count) : linkrewrite_text(*part, len, &o, &b, count);
    if (rc == 0)
        buf_add(&b, "", 1);
    if (rc == 0 && b.oom)
        rc = -ENOMEM;
    if (rc < 0 || t->counting) {
        buf_free(&b);
        return rc;
    }
    free(*part);
    *part = b.p;
    return 0;
}

/* The open image, last in the html (before </body> when there is one):
 * 1x1 and empty alt, so that nothing shows where images are blocked. */
static int add_pixel(struct track *t, char **html)
{
    char tok[LINKTOKEN_MAX];
    int rc = linktoken_make(t->in->link_secret, LINKTOKEN_OPEN, t->id, NULL, 0, tok, sizeof tok);
    if (rc < 0)
        return rc;
    size_t head = body_end(*html);
    struct buf b = {0};
    buf_add(&b, *html, head);
    buf_addf(&b, "<img src=\"%s/o/%s.gif\" width=\"1\" height=\"1\" alt=\"\">", t->in->track_base, tok);
    buf_adds(&b, *html + head);
    buf_add(&b, "", 1);
    if (b.oom) {
        buf_free(&b);
        return -ENOMEM;
    }
    free(*html);
    *html = b.p;
    return 0;
}

/* Applies the sequence's track: keys to the rendered parts. */
static int track(const struct compose_input *in, char **body, char **html, struct compose_result *res)
{
    const struct sequence *seq = in->seq;
    int clicks = seq->track_clicks && (*html || seq->track_text_links);
    int opens = seq->track_opens && *html;
    if (!in->track_base || !in->link_secret || !(clicks || opens))
        return 0;
    struct track t = {.in = in};
    size_t idlen = strlen(in->message_id);
    if (idlen < 3 || in->message_id[0] != '<' || idlen - 2 > LINKTOKEN_ID_MAX)
        return -EINVAL;
    memcpy(t.id, in->message_id + 1, idlen - 2);
    t.id[idlen - 2] = '\0';
    int rc = 0, n = 0;
    for (t.counting = 1; clicks && t.counting >= 0 && rc == 0; t.counting--) {
        res->tracked_links = 0;
        if (*html) {
            rc = track_part(&t, html, 1, &n);
            res->tracked_links += n;
        }
        if (rc == 0 && seq->track_text_links) {
            rc = track_part(&t, body, 0, &n);
            res->tracked_links += n;
        }
    }
    if (rc == 0 && opens) {
        rc = add_pixel(&t, html);
        res->open_pixel = rc == 0;
    }
    for (size_t i = 0; i < t.n_urls; i++)
        free(t.urls[i]);
    free(t.urls);
    return rc;
}

int compose_message(const struct compose_input *in, struct compose_result *out, char *err, size_t errlen)
{
    const struct sequence_step *step = &in->seq->steps[in->position];
    const char *subject_src, *body_src, *html_src;
    char *subject = NULL, *body = NULL, *html = NULL, *first = NULL, *unsub = NULL;
    int rc;

    memset(out, 0, sizeof *out);
    step_content(step, in->to_addr, &subject_src, &body_src, &html_src, &out->variant);
    uint64_t seed = template_seed(in->to_addr, step->id);

    if (subject_src) {
        rc = render(subject_src, seed, TEMPLATE_ESCAPE_NONE, in, &subject, out, err, errlen);
        if (rc != COMPOSE_OK)
            goto fail;
    } else {
        /* A follow-up without a subject answers the first step's. */
        if (in->first_subject) {
            first = strdup(in->first_subject);
        } else {
            const struct sequence_step *s0 = &in->seq->steps[0];
            const char *fs, *fb, *fh;
            int fv;
            step_content(s0, in->to_addr, &fs, &fb, &fh, &fv);
            rc = render(fs ? fs : "", template_seed(in->to_addr, s0->id), TEMPLATE_ESCAPE_NONE, in, &first, out,
                        err, errlen);
            if (rc != COMPOSE_OK)
                goto fail;
        }
        if (!first || asprintf(&subject, "%s%s", strncmp(first, "Re: ", 4) == 0 ? "" : "Re: ", first) < 0) {
            subject = NULL;
            snprintf(err, errlen, "out of memory");
            rc = -1;
            goto fail;
        }
    }
    rc = render(body_src ? body_src : "", seed, TEMPLATE_ESCAPE_NONE, in, &body, out, err, errlen);
    if (rc != COMPOSE_OK)
        goto fail;
    if (html_src) {
        rc = render(html_src, seed, TEMPLATE_ESCAPE_HTML, in, &html, out, err, errlen);
        if (rc != COMPOSE_OK)
            goto fail;
    }
    if (in->seq->unsubscribe_footer) {
        rc = add_footer(in, seed, &body, &html, out, err, errlen);
        if (rc != COMPOSE_OK)
            goto fail;
    }
    if (track(in, &body, &html, out) < 0) {
        snprintf(err, errlen, "tracking: out of memory or a Message-ID too long to sign");
        rc = -1;
        goto fail;
    }
    int one_click = in->seq->unsubscribe_header && in->unsubscribe_url;
    if (in->seq->unsubscribe_header &&
        asprintf(&unsub, "%s%s%s<mailto:%s?subject=unsubscribe>", one_click ? "<" : "",
                 one_click ? in->unsubscribe_url : "", one_click ? ">, " : "", in->from_addr) < 0) {
        unsub = NULL;
        snprintf(err, errlen, "out of memory");
        rc = -1;
        goto fail;
    }
    /* RFC 8058: the POST a mail client makes for its Unsubscribe button */
    static const struct message_header post = {"List-Unsubscribe-Post", "List-Unsubscribe=One-Click"};
    int threaded = in->position > 0 && step->thread && in->n_thread > 0;
    struct message m = {
        .from_addr = in->from_addr,
        .from_name = in->from_name,
        .to_addr = in->to_addr,
        .subject = subject,
        .date = in->date,
        .message_id = in->message_id,
        .in_reply_to = threaded ? in->thread_ids[in->n_thread - 1] : NULL,
        .references = threaded ? in->thread_ids : NULL,
        .n_references = threaded ? in->n_thread : 0,
        .list_unsubscribe = unsub,
        .text = body,
        .html = html,
        .extra = one_click ? &post : NULL,
        .n_extra = one_click ? 1 : 0,
    };
    if (message_build(&m, &out->text, &out->len, err, errlen) != 0) {
        rc = -1;
        goto fail;
    }
    out->subject = subject;
    subject = NULL;
    rc = COMPOSE_OK;
fail:
    free(subject);
    free(body);
    free(html);
    free(first);
    free(unsub);
    return rc;
}

void compose_result_free(struct compose_result *r)
{
    free(r->text);
    free(r->subject);
    r->text = r->subject = NULL;
}

const char *compose_field_find(const char *packed, const char *field, char *buf, size_t len)
{
    size_t flen = strlen(field);
    for (const char *p = packed; p && *p;) {
        const char *us = strchr(p, '\x1f'), *rs = strchr(p, '\x1e');
        if (!us || (rs && rs < us))
            break;
        const char *end = rs ? rs : p + strlen(p);
        if ((size_t)(us - p) == flen && memcmp(p, field, flen) == 0) {
            size_t n = (size_t)(end - us - 1);
            if (n >= len)
                n = len - 1;
            memcpy(buf, us + 1, n);
            buf[n] = '\0';
            return buf;
        }
        p = rs ? rs + 1 : NULL;
    }
    return NULL;
}
