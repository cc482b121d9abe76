/* inbound: what relance_inbound (sql/functions/inbound.sql) needs from one
 * fetched message besides its classification — its Message-ID, its From
 * address, the ids it refers to (newest first) and a bounce's failed
 * recipients, as PostgreSQL array literals — and when it reached the
 * mailbox (for the reply-to-stop latency). Pure. */
#include "inbound.h"

#include "buf.h"
#include "classify_int.h"
#include "mime.h"
#include "pgarray.h"

#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define REFS_MAX 64

/* The msg-ids (<...> without spaces) of a header value, in order. */
static size_t msgids(const char *v, const char **starts, size_t *lens, size_t max)
{
    size_t n = 0;
    for (const char *s = v ? strchr(v, '<') : NULL; s && n < max; s = strchr(s + 1, '<')) {
        const char *e = strchr(s + 1, '>');
        if (!e)
            break;
        size_t len = (size_t)(e - s - 1);
        if (len > 0 && len < 500 && !memchr(s + 1, ' ', len) && !memchr(s + 1, '<', len)) {
            starts[n] = s + 1;
            lens[n] = len;
            n++;
            s = e;
        }
    }
    return n;
}

/* The address of a From value: inside <...>, else the word with an @. */
static void from_address(const char *v, char *out, size_t size)
{
    out[0] = '\0';
    if (!v)
        return;
    const char *b = NULL, *e = NULL;
    const char *lt = strrchr(v, '<');
    if (lt && strchr(lt, '>') && memchr(lt, '@', (size_t)(strchr(lt, '>') - lt))) {
        b = lt + 1;
        e = strchr(lt, '>');
    } else {
        const char *at = strchr(v, '@');
        if (!at)
            return;
        b = at;
        while (b > v && !isspace((unsigned char)b[-1]) && b[-1] != '<' && b[-1] != '"' && b[-1] != ',')
            b--;
        e = at;
        while (*e && !isspace((unsigned char)*e) && *e != '>' && *e != ',' && *e != '(')
            e++;
    }
    while (b < e && isspace((unsigned char)*b))
        b++;
    while (e > b && isspace((unsigned char)e[-1]))
        e--;
    size_t n = (size_t)(e - b);
    if (n == 0 || n >= size)
        return;
    for (size_t i = 0; i < n; i++)
        out[i] = (char)tolower((unsigned char)b[i]);
    out[n] = '\0';
}

static int seen_before(const char **starts, const size_t *lens, size_t n, const char *s, size_t len)
{
    for (size_t i = 0; i < n; i++)
        if (lens[i] == len && memcmp(starts[i], s, len) == 0)
            return 1;
    return 0;
}

int inbound_read(const char *raw, size_t len, const struct classify_result *c, struct inbound *out)
{
    memset(out, 0, sizeof *out);
    struct mime_headers h = {0};
    size_t consumed = 0;
    struct buf refs_b = {0}, rcpt_b = {0};
    int rc = -ENOMEM;
    if (mime_headers_parse(raw, len, &h, &consumed) < 0)
        goto done;
    const char *ids[1];
    size_t id_lens[1];
    if (msgids(mime_headers_get(&h, "Message-ID"), ids, id_lens, 1) == 1)
        snprintf(out->message_id, sizeof out->message_id, "%.*s", (int)id_lens[0], ids[0]);
    from_address(mime_headers_get(&h, "From"), out->from, sizeof out->from);
    /* "Received: from ... by ...; Mon, 7 Dec 2026 18:00:00 +0000": the
     * topmost is the delivery's, its date after the last semicolon */
    const char *received = mime_headers_get(&h, "Received");
    const char *semi = received ? strrchr(received, ';') : NULL;
    out->received = semi ? cls_parse_rfc_date(semi + 1) : 0;

    /* refs: classify's (the id our message had, read from a reply or a
     * bounce's returned headers), In-Reply-To, References newest first */
    const char *refs[REFS_MAX];
    size_t ref_lens[REFS_MAX], n = 0;
    if (c && c->message_id[0])
        n += msgids(c->message_id, refs, ref_lens, 1);
    const char *tmp[REFS_MAX];
    size_t tmp_lens[REFS_MAX];
    size_t k = msgids(mime_headers_get(&h, "In-Reply-To"), tmp, tmp_lens, REFS_MAX);
    for (size_t i = 0; i < k && n < REFS_MAX; i++)
        if (!seen_before(refs, ref_lens, n, tmp[i], tmp_lens[i])) {
            refs[n] = tmp[i];
            ref_lens[n++] = tmp_lens[i];
        }
    k = msgids(mime_headers_get(&h, "References"), tmp, tmp_lens, REFS_MAX);
    for (size_t i = k; i-- > 0 && n < REFS_MAX;)
        if (!seen_before(refs, ref_lens, n, tmp[i], tmp_lens[i])) {
            refs[n] = tmp[i];
            ref_lens[n++] = tmp_lens[i];
        }
    for (size_t i = 0; i < n; i++)
        pgarray_addn(&refs_b, refs[i], ref_lens[i], 0);
    if (c && (c->kind == CLASSIFY_HARD_BOUNCE || c->kind == CLASSIFY_SOFT_BOUNCE))
        for (size_t i = 0; i < c->recipient_count && i < CLASSIFY_MAX_RECIPIENTS; i++)
            if (c->recipients[i].address[0])
                pgarray_addn(&rcpt_b, c->recipients[i].address, strlen(c->recipients[i].address), 1);
    if (!pgarray_end(&refs_b) || !pgarray_end(&rcpt_b))
        goto done;
    out->refs = refs_b.p;
    out->recipients = rcpt_b.p;
    refs_b = rcpt_b = (struct buf){0};
    if (c && c->kind == CLASSIFY_AUTO_REPLY && c->has_return_date)
        snprintf(out->return_date, sizeof out->return_date, "%04d-%02d-%02d", c->return_year, c->return_month,
                 c->return_day);
    rc = 0;
done:
    mime_headers_free(&h);
    buf_free(&refs_b);
    buf_free(&rcpt_b);
    if (rc < 0)
        inbound_free(out);
    return rc;
}

void inbound_free(struct inbound *in)
{
    free(in->refs);
    free(in->recipients);
    in->refs = in->recipients = NULL;
}
