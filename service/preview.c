/* preview: what `relance preview` and the HTTP API's preview share (see
 * preview.h): the choice of the account shown, the fields a template sees
 * (values given by hand over the contact's), the sender (the account's,
 * sender.NAME values given by hand standing in for what it lacks, or
 * placeholders), the stand-in Message-IDs, the links as sent (signed with
 * a stand-in key), and the reader's view read back
 * with the MIME parser the watcher uses. Composing is compose.c's; finding
 * the sequence, the contact and the enrollment is the callers'. */
#include "preview.h"

#include "accounts.h"
#include "linktoken.h"
#include "mime.h"
#include "public.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

const char *const preview_header_names[PREVIEW_HEADERS] = {"From",       "To",          "Subject",   "Date",
                                                           "Message-ID", "In-Reply-To", "References"};

const struct config_account *preview_account(const struct config *cfg, const struct sequence *seq, const char *wanted,
                                             const char *chosen_by, const char *enrolled, const char *contact,
                                             char *why, size_t len, int *failed)
{
    *failed = 0;
    if (wanted) {
        const struct config_account *a = cfg ? accounts_find(cfg, wanted) : NULL;
        if (!a) {
            *failed = 1;
            return NULL;
        }
        snprintf(why, len, "%s", chosen_by);
        for (size_t i = 0; i < cfg->n_pools; i++)
            if (strcmp(cfg->pools[i].name, seq->sender_pool) == 0)
                for (size_t k = 0; k < cfg->pools[i].n_accounts; k++)
                    if (&cfg->pools[i].accounts[k] == a)
                        return a;
        snprintf(why, len, "%s; not in the sequence's pool %s", chosen_by, seq->sender_pool);
        return a;
    }
    const struct config_account *a = enrolled && cfg ? accounts_find(cfg, enrolled) : NULL;
    if (a) {
        snprintf(why, len, "the account the enrollment of %s sends from", contact);
        return a;
    }
    for (size_t i = 0; cfg && i < cfg->n_pools; i++)
        if (strcmp(cfg->pools[i].name, seq->sender_pool) == 0 && cfg->pools[i].n_accounts) {
            snprintf(why, len, "the first of pool %s; a new enrollment gets the pool's least-used account, "
                               "%s chooses", seq->sender_pool, chosen_by);
            return &cfg->pools[i].accounts[0];
        }
    snprintf(why, len, "a placeholder: no account of pool %s in the configuration", seq->sender_pool);
    return NULL;
}

struct fields {
    const struct preview_input *in;
    char value[4096];
};

static const char *lookup(const char *field, void *arg)
{
    struct fields *f = arg;
    for (size_t i = f->in->n_vars; i-- > 0;) /* the last value given wins */
        if (strcmp(f->in->var_keys[i], field) == 0)
            return f->in->var_values[i];
    return compose_field_find(f->in->contact_fields, field, f->value, sizeof f->value);
}

int preview_compose(const struct preview_input *in, struct compose_result *res, char *err, size_t errlen)
{
    struct fields f = {in, {0}};
    /* copied: the lookup's buffer is reused by the next lookup */
    const char *found = lookup("email", &f);
    char *to = strdup(found ? found : PREVIEW_TO_DEFAULT);
    if (!to) {
        snprintf(err, errlen, "out of memory");
        return -1;
    }
    const struct config_account *acct = in->account;
    const char *from = acct ? acct->email : "sender@example.invalid";
    const char *from_name = acct ? acct->from_name : "Sender";
    /* sender.NAME values given by hand stand in for what the account lacks */
    struct compose_sender sender = {from, from_name, acct ? acct->first_name : NULL, acct ? acct->signature : NULL};
    const char **sf[] = {&sender.email, &sender.name, &sender.first_name, &sender.signature};
    static const char *const sf_names[] = {"sender.email", "sender.name", "sender.first_name", "sender.signature"};
    for (size_t i = 0; i < in->n_vars; i++)
        for (size_t k = 0; k < sizeof sf / sizeof *sf; k++)
            if (strcmp(in->var_keys[i], sf_names[k]) == 0)
                *sf[k] = in->var_values[i];
    const char *at = strrchr(from, '@');
    const char *dom = at ? at + 1 : "example.invalid";
    char mid[300], prev[300];
    char bare[290];
    snprintf(bare, sizeof bare, "preview@%s", dom);
    snprintf(mid, sizeof mid, "<%s>", bare);
    snprintf(prev, sizeof prev, "<previous-step@%s>", dom);
    const char *thread[1] = {prev};
    size_t position = (size_t)(in->step - in->seq->steps);
    /* the links as sent, signed with the stand-in key: a Message-ID is
     * made at the claim, and a preview must not mint working links */
    char link[PUBLIC_LINK_MAX], base[PUBLIC_URL_MAX];
    const struct config *cfg = in->cfg;
    int linked = cfg && cfg->public_url &&
                 public_link(cfg->public_url, PREVIEW_LINK_SECRET, LINKTOKEN_UNSUBSCRIBE, bare, link,
                             sizeof link) == 0;
    const char *track_base = cfg ? config_tracking_base(cfg, from, base, sizeof base) : NULL;
    struct compose_input ci = {
        .seq = in->seq,
        .position = position,
        .unsubscribe_url = linked ? link : NULL,
        .track_base = track_base,
        .link_secret = track_base ? PREVIEW_LINK_SECRET : NULL,
        .to_addr = to,
        .lookup = lookup,
        .lookup_arg = &f,
        .from_addr = from,
        .from_name = from_name,
        .sender = &sender,
        .message_id = mid,
        .date = in->date,
        .thread_ids = thread,
        .n_thread = position > 0 ? 1 : 0,
    };
    int rc = compose_message(&ci, res, err, errlen);
    free(to);
    return rc;
}

/* A leaf's body with CRLF line ends turned into LF: the view is for
 * people, not for SMTP. */
static char *lf_copy(const char *s, size_t len, size_t *out_len)
{
    char *p = malloc(len + 1);
    size_t n = 0;
    if (!p)
        return NULL;
    for (size_t i = 0; i < len; i++)
        if (!(s[i] == '\r' && i + 1 < len && s[i + 1] == '\n'))
            p[n++] = s[i];
    p[n] = '\0';
    *out_len = n;
    return p;
}

int preview_view_parse(const char *msg, size_t len, struct preview_view *out)
{
    struct mime_part root = {0};
    int rc = -1;
    memset(out, 0, sizeof *out);
    if (mime_message_parse(msg, len, &root) < 0)
        goto out;
    for (size_t i = 0; i < PREVIEW_HEADERS; i++) {
        const char *value = mime_headers_get(&root.headers, preview_header_names[i]);
        out->headers[i] = value ? mime_words_decode(value) : NULL;
        if (value && !out->headers[i])
            goto out;
    }
    const struct mime_part *text = mime_part_find(&root, "text/plain");
    const struct mime_part *html = mime_part_find(&root, "text/html");
    if (text && text->body) {
        out->text = lf_copy(text->body, text->body_len, &out->text_len);
        if (!out->text)
            goto out;
    }
    if (html && html->body) {
        out->html = lf_copy(html->body, html->body_len, &out->html_len);
        if (!out->html)
            goto out;
    }
    rc = 0;
out:
    mime_part_free(&root);
    return rc;
}

void preview_view_free(struct preview_view *v)
{
    for (size_t i = 0; i < PREVIEW_HEADERS; i++)
        free(v->headers[i]);
    free(v->text);
    free(v->html);
    memset(v, 0, sizeof *v);
}
