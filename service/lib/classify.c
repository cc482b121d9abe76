/* classify: reads one received message and says what it means for the
 * cadence. This file owns the entry point and the order of the
 * decision, the facts read once from the message (decoded subject and
 * sender, the text outside embedded mail, the returned original), and
 * the reply side: auto-reply headers and out-of-office wording, removal
 * requests, machine notices and the Message-ID a reply answers. The
 * other parts (classify_int.h declares what they share):
 *   classify_text.c    normalised text, wording patterns, addresses, ids
 *   classify_reason.c  status codes and bounce wording -> the reason
 *   classify_bounce.c  delivery reports, MTA and provider texts, SES
 *   classify_dates.c   the message's date, an out-of-office's return
 * It does not parse MIME (mime does), fetch mail (the watcher does) or
 * act on the result (the scheduler and the suppression list do).
 *
 * The order of the checks matters: delivery reports first (bounces carry
 * Auto-Submitted too), then provider and MTA bounce texts, then
 * auto-reply headers and wording, then removal requests, then the rest.
 * Wording is matched on a normalised copy of the text (classify_text.c).
 * Pure: no I/O, no logging. */
#include "classify.h"
#include "classify_int.h"

#include "mime.h"

#include <ctype.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

const char *const classify_kind_names[CLASSIFY_KIND_COUNT] = {
    [CLASSIFY_HUMAN_REPLY] = "human_reply",
    [CLASSIFY_AUTO_REPLY] = "auto_reply",
    [CLASSIFY_HARD_BOUNCE] = "hard_bounce",
    [CLASSIFY_SOFT_BOUNCE] = "soft_bounce",
    [CLASSIFY_UNSUBSCRIBE_REQUEST] = "unsubscribe_request",
    [CLASSIFY_OTHER] = "other",
};

/* ---- message-level facts ---- */

static int is_attachment(const struct mime_part *p)
{
    const char *cd = mime_headers_get(&p->headers, "Content-Disposition");
    return cd && strncasecmp(cd, "attachment", 10) == 0;
}

/* Crude HTML to text: tags dropped, block ends as line breaks, a few
 * entities; quoted history (blockquote, Gmail/Outlook markers) cut. */
static void add_html(struct buf *b, const char *s, size_t len)
{
    static const char *const cuts[] = {"<blockquote", "gmail_quote", "divrplyfwdmsg",
                                       "appendonsend", "moz-cite-prefix", "yahoo_quoted",
                                       "<hr", NULL};
    size_t end = len;
    for (size_t i = 0; i < len && i < CLS_TEXT_CAP; i++) {
        if (s[i] != '<' && s[i] != 'g' && s[i] != 'd' && s[i] != 'a' && s[i] != 'm' &&
            s[i] != 'y')
            continue;
        for (size_t c = 0; cuts[c]; c++) {
            size_t cl = strlen(cuts[c]);
            if (i + cl <= len && strncasecmp(s + i, cuts[c], cl) == 0) {
                end = i;
                break;
            }
        }
        if (end != len)
            break;
    }
    int in_tag = 0, in_style = 0;
    for (size_t i = 0; i < end; i++) {
        char c = s[i];
        if (in_tag) {
            if (c == '>')
                in_tag = 0;
            continue;
        }
        if (c == '<') {
            if (strncasecmp(s + i, "<style", 6) == 0 || strncasecmp(s + i, "<script", 7) == 0)
                in_style = 1;
            else if (strncasecmp(s + i, "</style", 7) == 0 || strncasecmp(s + i, "</script", 8) == 0)
                in_style = 0;
            if (strncasecmp(s + i, "<br", 3) == 0 || strncasecmp(s + i, "</p", 3) == 0 ||
                strncasecmp(s + i, "</div", 5) == 0 || strncasecmp(s + i, "<tr", 3) == 0)
                cls_text_adds(b, "\n");
            in_tag = 1;
            continue;
        }
        if (in_style)
            continue;
        if (c == '&') {
            static const struct {
                const char *ent, *txt;
            } ents[] = {{"&nbsp;", " "}, {"&amp;", "&"},  {"&lt;", "<"},
                        {"&gt;", ">"},   {"&quot;", "\""}, {"&#39;", "'"},
                        {"&apos;", "'"}, {"&rsquo;", "'"}, {"&eacute;", "\xC3\xA9"},
                        {"&egrave;", "\xC3\xA8"}, {"&agrave;", "\xC3\xA0"}, {"&uuml;", "\xC3\xBC"}};
            size_t k;
            for (k = 0; k < sizeof ents / sizeof ents[0]; k++) {
                size_t el = strlen(ents[k].ent);
                if (i + el <= end && strncasecmp(s + i, ents[k].ent, el) == 0) {
                    cls_text_adds(b, ents[k].txt);
                    i += el - 1;
                    break;
                }
            }
            if (k < sizeof ents / sizeof ents[0])
                continue;
        }
        cls_text_add(b, &c, 1);
    }
    cls_text_adds(b, "\n");
}

/* Text leaves outside embedded messages; html only when no plain. */
static void collect_text(const struct mime_part *p, struct buf *plain, struct buf *html, int top)
{
    if (p->part_count > 0) {
        if (strcmp(p->type, "message/rfc822") == 0 || strcmp(p->type, "message/global") == 0)
            return;
        for (size_t i = 0; i < p->part_count; i++)
            collect_text(&p->parts[i], plain, html, 0);
        return;
    }
    if (!p->body || (!top && is_attachment(p) && strcmp(p->type, "text/plain") != 0))
        return;
    if (strcmp(p->type, "text/plain") == 0 || strcmp(p->type, "text/enriched") == 0) {
        cls_text_add(plain, p->body, p->body_len);
        cls_text_adds(plain, "\n");
    } else if (strcmp(p->type, "text/html") == 0) {
        add_html(html, p->body, p->body_len);
    }
}

static const struct mime_part *find_returned(const struct mime_part *p)
{
    if (strcmp(p->type, "message/rfc822") == 0 || strcmp(p->type, "message/global") == 0 ||
        strcmp(p->type, "text/rfc822-headers") == 0 ||
        strcmp(p->type, "message/global-headers") == 0 ||
        strcmp(p->type, "message/rfc822-headers") == 0) {
        if (p->part_count > 0)
            return &p->parts[0];
        return NULL;
    }
    for (size_t i = 0; i < p->part_count; i++) {
        const struct mime_part *r = find_returned(&p->parts[i]);
        if (r)
            return r;
    }
    return NULL;
}

static char *decoded_norm(const char *v)
{
    char *d = mime_words_decode(v ? v : "");
    if (!d)
        return NULL;
    char *n = cls_norm(d, strlen(d));
    free(d);
    return n;
}

static void msg_free(struct cls_msg *m)
{
    free(m->subject);
    free(m->from);
    buf_free(&m->text);
    free(m->ntext);
}

static int msg_load(struct cls_msg *m, const struct mime_part *root)
{
    memset(m, 0, sizeof *m);
    m->root = root;
    m->h = &root->headers;
    m->subject = decoded_norm(mime_headers_get(m->h, "Subject"));
    m->from = decoded_norm(mime_headers_get(m->h, "From"));
    if (!m->subject || !m->from)
        return -ENOMEM;
    if (cls_first_address(mime_headers_get(m->h, "From"), m->from_addr, sizeof m->from_addr) < 0)
        m->from_addr[0] = '\0';
    if (cls_first_address(mime_headers_get(m->h, "To"), m->to_addr, sizeof m->to_addr) < 0)
        m->to_addr[0] = '\0';
    m->date = cls_parse_rfc_date(mime_headers_get(m->h, "Date"));
    struct buf html = {0};
    collect_text(root, &m->text, &html, 1);
    if (m->text.len == 0 && html.len)
        cls_text_add(&m->text, html.p, html.len);
    int oom = html.oom || m->text.oom;
    buf_free(&html);
    if (oom)
        return -ENOMEM;
    m->ntext = cls_norm(cls_text_str(&m->text), m->text.len);
    if (!m->ntext)
        return -ENOMEM;
    m->returned = find_returned(root);
    return 0;
}

/* ---- replies ---- */

/* s[0..n) into dst[cap], without trailing spaces and CR: its length. */
static size_t copy_line(char *dst, size_t cap, const char *s, size_t n)
{
    cls_copy_str(dst, cap, s, n);
    size_t len = strlen(dst);
    while (len > 0 && (dst[len - 1] == '\r' || dst[len - 1] == ' '))
        dst[--len] = '\0';
    return len;
}

/* The part a person wrote: lines before the quoted original. */
static char *new_text(const char *t)
{
    struct buf b = {0};
    const char *line = t;
    size_t lines = 0;
    while (*line && lines < 400) {
        size_t n = strcspn(line, "\n");
        char l[256];
        size_t k = 0;
        while (k < n && (line[k] == ' ' || line[k] == '\t'))
            k++;
        size_t ll = copy_line(l, sizeof l, line + k, n - k);
        for (char *c = l; *c; c++)
            *c = (char)tolower((unsigned char)*c);
        const char *next = line[n] ? line + n + 1 : line + n;
        if (strncmp(l, "-----", 5) == 0 && (strstr(l, "original") || strstr(l, "ursprüngliche") ||
                                            strstr(l, "origine") || strstr(l, "forward") ||
                                            strstr(l, "mensaje")))
            break;
        if (strncmp(l, "________________", 16) == 0 || strncmp(l, "begin forwarded", 15) == 0)
            break;
        /* the attribution line of a quoted original, in each language */
        if (ll > 6 && (strcmp(l + ll - 6, "wrote:") == 0 || strstr(l, "a écrit") ||
                       strstr(l, "schrieb") || strstr(l, "escribió:") ||
                       strstr(l, "ha scritto") || strstr(l, "escreveu:") ||
                       (strncmp(l, "op ", 3) == 0 && strstr(l, " schreef "))))
            break;
        if (strncmp(l, "on ", 3) == 0) {
            /* "On <date>, <name>" wrapped before "wrote:" */
            char l2[256];
            size_t l2l = copy_line(l2, sizeof l2, next, strcspn(next, "\n"));
            if (l2l >= 6 && strcmp(l2 + l2l - 6, "wrote:") == 0)
                break;
        }
        /* an Outlook-style header block of the original: From / Sent in
         * the reader's language */
        if ((strncmp(l, "from:", 5) == 0 || strncmp(l, "de :", 4) == 0 ||
             strncmp(l, "de:", 3) == 0 || strncmp(l, "von:", 4) == 0 ||
             strncmp(l, "da:", 3) == 0 || strncmp(l, "van:", 4) == 0) &&
            (strcasestr(next, "sent:") || strcasestr(next, "date:") ||
             strcasestr(next, "envoyé") || strcasestr(next, "gesendet:") ||
             strcasestr(next, "enviado:") || strcasestr(next, "datum:") ||
             strcasestr(next, "inviato:") || strcasestr(next, "verzonden:") ||
             strcasestr(next, "data:") || strcasestr(next, "fecha:")) &&
            (size_t)(strcasestr(next, "\n") ? strcasestr(next, "\n") - next : 0) < 300)
            break;
        if (l[0] != '>') {
            cls_text_add(&b, line, n);
            cls_text_adds(&b, "\n");
        }
        line = next;
        lines++;
    }
    if (b.oom) {
        buf_free(&b);
        return NULL;
    }
    if (!b.p)
        return strdup("");
    return b.p;
}

/* Subjects that vacation programs and mail clients put on their
 * out-of-office answers ("Away:", "Auto:", "Automatic reply:",
 * "Abwesenheitsnotiz:", "Réponse automatique :" ...), in the seven
 * languages the lexicons cover. A subject is evidence, not proof: a
 * person may answer "Re: absence policy". */
static const char *const auto_subjects[] = {
    /* en */
    "automatic reply", "automated reply", "auto reply", "autoreply", "auto-reply",
    "autoresponse", "auto-response", "auto response", "autorespons", "~auto:", "~away:",
    "out of office", "out of the office", "out-of-office", "~ooo~", "away until", "away from",
    "on vacation", "vacation reply", "on holiday", "on leave", "annual leave",
    /* de */
    "abwesenheit", "automatische antwort", "autoantwort", "abwesend", "urlaub",
    "nicht im büro",
    /* fr */
    "réponse automatique", "reponse automatique", "~absence", "~absent", "en congé",
    "hors du bureau", "auto-réponse",
    /* es */
    "respuesta automática", "respuesta automatica", "fuera de la oficina", "fuera de oficina",
    "~ausente", "~ausencia", "vacaciones",
    /* it */
    "risposta automatica", "fuori ufficio", "fuori sede", "~assente", "~in ferie",
    /* pt */
    "resposta automática", "resposta automatica", "fora do escritório", "~férias",
    "~ausência",
    /* nl */
    "automatisch antwoord", "~afwezig", "niet aanwezig", "~vakantie", "~autosvar", NULL};

/* Out-of-office wording: each match is one point of evidence. */
static const char *const ooo_phrases[] = {
    /* en */
    "out of the office", "out of office", "away from the office", "away from my desk",
    "currently away", "currently out", "i am away", "i'm away", "~will be away",
    "~away until", "on vacation", "on holiday", "on annual leave", "on leave", "on maternity",
    "on paternity", "on parental leave", "on sick leave", "limited access to",
    "upon my return", "on my return", "when i return", "after my return", "when i get back",
    "when i'm back", "i will be back", "i'll be back", "will return on", "returning on",
    "returning to the office", "back in the office", "back in office", "no longer with",
    "no longer in use", "no longer monitored", "not monitored", "no longer work",
    "thank you for your e-mail", "thank you for your email", "thank you for your message",
    "thanks for your email", "thanks for your message", "will endeavour to",
    "will reply as soon as", "will respond as soon as", "get back to you as soon",
    "respond to your email", "automatic reply", "automated response", "automatic response",
    "auto-reply", "this is an automat", "will read your mail", "will read your e-mail",
    "will read your message", "urgent matters", "for anything urgent",
    /* fr */
    "je suis absent", "je serai absent", "absent du bureau", "absente du bureau", "en congé",
    "en vacances", "de retour le", "de retour au bureau", "je serai de retour",
    "accès limité", "réponse automatique", "ne serai pas disponible", "hors du bureau",
    "à mon retour", "dès mon retour", "je prendrai connaissance", "en déplacement jusqu",
    "en cas d'urgence",
    /* de */
    "nicht im büro", "außer haus", "ausser haus", "abwesend", "im urlaub", "wieder im büro",
    "wieder erreichbar", "keinen zugriff", "automatische antwort", "eingeschränkt",
    "nach meiner rückkehr", "nicht weitergeleitet", "in dringenden fällen",
    "vielen dank für ihre nachricht", "bin ich wieder",
    /* es */
    "estoy fuera", "estaré fuera", "me encuentro fuera", "fuera de la oficina",
    "de vacaciones", "ausente", "regresaré", "volveré", "estaré de vuelta", "acceso limitado",
    "respuesta automática", "no estaré disponible", "a mi regreso", "a mi vuelta",
    "gracias por su mensaje", "asuntos urgentes", "en caso de urgencia",
    /* it */
    "fuori ufficio", "fuori sede", "in ferie", "sarò assente", "sono assente",
    "al mio rientro", "accesso limitato", "risposta automatica", "non sarò raggiungibile",
    "per urgenze", "grazie per la sua email", "grazie per il suo messaggio",
    /* pt */
    "fora do escritório", "de férias", "acesso limitado", "quando regressar",
    "assim que regressar", "no meu regresso", "quando voltar", "estarei fora",
    "estou fora", "resposta automática", "assuntos urgentes", "obrigado pela sua mensagem",
    /* nl */
    "~afwezig", "met vakantie", "op vakantie", "niet aanwezig", "beperkt toegang",
    "na terugkomst", "na mijn terugkomst", "weer aanwezig", "weer bereikbaar",
    "automatisch antwoord", "dringende zaken", "niet op kantoor", "bedankt voor uw bericht",
    NULL};

static const char *const interest_phrases[] = {
    "interested", "let's", "lets talk", "sounds good", "sounds great", "happy to",
    "schedule a", "book a", "set up a call", "send me more", "tell me more", "intéress",
    "interessiert", "interesa", "parlons", "gerne", "me gustaría", "possiamo sentirci",
    "podemos falar", "graag even", NULL};

/* A person asking to be taken off the list, in the seven languages. Read
 * only in what the person wrote (new_text): our own footer quoted below
 * a reply says "unsubscribe" too. */
static const char *const unsub_phrases[] = {
    /* en */
    "unsubscribe", "remove me", "take me off", "remove my email", "remove my address",
    "remove us from", "remove from your list", "remove from your mailing",
    "remove * from your * list", "take * off your * list", "off your mailing list",
    "off your distribution list", "delete * from your * list",
    "stop emailing", "stop sending", "stop contacting", "stop writing",
    "do not contact me", "don't contact me", "do not email me", "don't email me",
    "do not send me", "don't send me", "opt me out", "opt out", "no more emails",
    /* fr */
    "désinscri", "desinscri", "désabonn", "desabonn", "retirez-moi", "retirez moi",
    "supprimez-moi", "supprimez moi", "ne plus recevoir", "ne me contactez plus",
    "arrêtez de m'envoyer", "retirer de votre liste", "retirez mon adresse",
    "supprimer mon adresse", "supprimez mon adresse", "retirer mon adresse",
    "me retirer de", "de vos listes", "de votre liste de diffusion", "de votre fichier",
    "ne plus m'écrire", "ne plus me contacter", "ne plus m'envoyer",
    /* de */
    "abmelden", "austragen", "tragen sie mich", "entfernen sie mich", "löschen sie mich",
    "nehmen sie mich aus", "streichen sie mich", "aus ihrem verteiler",
    "aus dem verteiler", "aus ihrer liste", "aus ihrem e-mail-verteiler", "abbestellen",
    "keine weiteren e-mails", "keine e-mails mehr", "keine emails mehr",
    "keine weiteren nachrichten", "nicht mehr kontaktieren", "nicht mehr anschreiben",
    /* es */
    "darme de baja", "dar de baja", "dame de baja", "denme de baja", "elimíname",
    "eliminarme", "elimínenme", "elimíneme", "elimineme", "eliminen mi", "elimine mi",
    "bórrame", "borrarme", "bórrenme", "borren mi", "no me contacte", "no me contactes",
    "no me escriba", "no me escribas", "no me envíen", "no me envíe", "dejen de enviar",
    "deje de enviar", "no quiero recibir", "quitarme de", "sacarme de",
    "de su lista de correo", "de vuestra lista",
    /* it */
    "cancellarmi", "cancellami", "cancellatemi", "rimuovermi", "rimuovetemi",
    "rimuovere il mio indirizzo", "dalla vostra lista", "dalla vostra mailing list",
    "dalla sua lista", "non contattarmi", "non scrivermi", "non inviatemi", "disiscriv",
    "non voglio più ricevere",
    /* pt */
    "remover meu", "remover o meu", "removam o meu", "retirem o meu", "retire o meu",
    "retire meu", "da vossa lista", "da sua lista", "descadastr", "cancelar a subscrição",
    "não quero receber", "deixem de enviar", "parem de enviar", "não me enviem",
    "remova-me", "removam-me", "tirem-me",
    /* nl */
    "afmelden", "uitschrijven", "schrijf mij uit", "schrijf me uit", "van uw verzendlijst",
    "van uw mailinglijst", "uit uw mailinglijst", "van jullie lijst", "van uw lijst",
    "uit uw bestand", "mij verwijderen", "me verwijderen", "verwijder mij", "verwijder me",
    "haal mij", "haal me", "geen e-mails meer", "niet meer mailen", "niet meer benaderen",
    NULL};

static int subject_is_unsubscribe(const char *subj)
{
    const char *s = subj;
    for (;;) {
        while (*s == ' ')
            s++;
        if (strncmp(s, "re:", 3) == 0 || strncmp(s, "aw:", 3) == 0 || strncmp(s, "tr:", 3) == 0 ||
            strncmp(s, "sv:", 3) == 0 || strncmp(s, "ri:", 3) == 0)
            s += 3;
        else if (strncmp(s, "r:", 2) == 0)
            s += 2;
        else if (strncmp(s, "re :", 4) == 0)
            s += 4;
        else
            break;
    }
    static const char *const words[] = {"unsubscribe", "remove", "remove me", "stop",
                                        "désinscription", "desinscription", "désabonnement",
                                        "désinscrire", "abmelden", "austragen", "baja",
                                        "darse de baja", "opt out", "opt-out", "cancellami",
                                        "cancellazione", "disiscrivimi", "remover",
                                        "descadastrar", "afmelden", "uitschrijven", NULL};
    for (size_t i = 0; words[i]; i++) {
        size_t l = strlen(words[i]);
        if (strncmp(s, words[i], l) == 0) {
            const char *r = s + l;
            while (*r == ' ' || *r == '.' || *r == '!')
                r++;
            if (*r == '\0')
                return 1;
        }
    }
    return 0;
}

static int header_says_auto(const struct cls_msg *m)
{
    const struct mime_headers *h = m->h;
    const char *as = mime_headers_get(h, "Auto-Submitted");
    if (as && strncasecmp(as, "no", 2) != 0)
        return 1;
    static const char *const flags[] = {"X-Autoreply", "X-Autorespond", "X-Autoresponder",
                                        "X-AutoReply-From", "X-Mail-Autoreply",
                                        "X-Autogenerated", "X-Vacation", "X-Auto-Reply",
                                        "X-Autoresponse", "X-Auto-Response", NULL};
    for (size_t i = 0; flags[i]; i++) {
        const char *v = mime_headers_get(h, flags[i]);
        if (v && strncasecmp(v, "no", 2) != 0 && strncasecmp(v, "false", 5) != 0)
            return 1;
    }
    const char *apple = mime_headers_get(h, "X-Apple-Action");
    if (apple && strcasestr(apple, "vacation"))
        return 1;
    const char *prec = mime_headers_get(h, "Precedence");
    /* vacation(1) and most list servers mark what no person wrote */
    if (prec && (strcasestr(prec, "auto_reply") || strcasestr(prec, "bulk") ||
                 strcasestr(prec, "junk") || strcasestr(prec, "list")))
        return 1;
    return 0;
}

/* ---- the entry point ---- */

static void reply_message_id(const struct cls_msg *m, struct classify_result *out)
{
    if (cls_extract_msgid(mime_headers_get(m->h, "In-Reply-To"), 0, out->message_id,
                      sizeof out->message_id) == 0)
        return;
    cls_extract_msgid(mime_headers_get(m->h, "References"), 1, out->message_id,
                  sizeof out->message_id);
}

static int is_machine_notice(const struct cls_msg *m)
{
    static const char *const senders[] = {"no-reply", "noreply", "do-not-reply", "donotreply",
                                          "do_not_reply", "notifications@", "notification@",
                                          NULL};
    if (mime_headers_get(m->h, "In-Reply-To") || mime_headers_get(m->h, "References"))
        return 0;
    if (cls_any_match(m->from, senders))
        return 1;
    if (mime_headers_get(m->h, "List-Id") || mime_headers_get(m->h, "List-Unsubscribe"))
        return 1;
    return 0;
}

int classify_message(const char *raw, size_t len, struct classify_result *out)
{
    struct mime_part root;
    struct cls_msg m;
    int rc;
    char *fresh = NULL;
    memset(out, 0, sizeof *out);
    out->kind = CLASSIFY_OTHER;
    memset(&m, 0, sizeof m);
    rc = mime_message_parse(raw, len, &root);
    if (rc < 0)
        goto done;
    rc = msg_load(&m, &root);
    if (rc < 0)
        goto done;
    out->date = m.date;
    if (root.headers.count == 0) {
        rc = 0; /* no header block at all: nothing to read */
        goto done;
    }

    /* 1. machine reports */
    const char *ct = mime_headers_get(m.h, "Content-Type");
    char report_type[64] = "";
    mime_param_get(ct, "report-type", report_type, sizeof report_type);
    if (strcasecmp(report_type, "feedback-report") == 0 ||
        mime_part_find(&root, "message/feedback-report") ||
        strcasecmp(report_type, "disposition-notification") == 0) {
        out->kind = CLASSIFY_OTHER;
        rc = 0;
        goto done;
    }
    rc = cls_bounce_read(&m, out);
    if (rc != 0) {
        rc = rc < 0 ? rc : 0;
        goto done;
    }

    /* 2. auto-replies */
    reply_message_id(&m, out);
    fresh = new_text(cls_text_str(&m.text));
    if (!fresh) {
        rc = -ENOMEM;
        goto done;
    }
    char *nfresh = cls_norm(fresh, strlen(fresh));
    if (!nfresh) {
        rc = -ENOMEM;
        goto done;
    }
    if (strlen(nfresh) > 4000)
        nfresh[4000] = '\0';
    int score = 0;
    if (header_says_auto(&m))
        score += 3;
    if (cls_any_match(m.subject, auto_subjects))
        score += strncmp(m.subject, "re:", 3) == 0 ? 1 : 2;
    const char *xars = mime_headers_get(m.h, "X-Auto-Response-Suppress");
    if (xars && (mime_headers_get(m.h, "X-MS-Exchange-Inbox-Rules-Loop") ||
                 mime_headers_get(m.h, "X-MS-Exchange-Generated-Message-Source")))
        score += 2;
    else if (xars)
        score += 1;
    int ooo = cls_count_matches(nfresh, ooo_phrases);
    score += ooo;
    if (score < 3)
        score -= cls_count_matches(nfresh, interest_phrases);
    if (score >= 3 || (score >= 2 && ooo > 0 && xars)) {
        out->kind = CLASSIFY_AUTO_REPLY;
        cls_set_return_date(&m, fresh, out);
        free(nfresh);
        rc = 0;
        goto done;
    }

    /* 3. removal requests, from a person (a newsletter's own footer
     * says "unsubscribe" too) */
    if (!is_machine_notice(&m) &&
        (subject_is_unsubscribe(m.subject) || cls_any_match(nfresh, unsub_phrases))) {
        out->kind = CLASSIFY_UNSUBSCRIBE_REQUEST;
        free(nfresh);
        rc = 0;
        goto done;
    }
    free(nfresh);

    /* 4. a person, or a machine notice */
    out->kind = is_machine_notice(&m) ? CLASSIFY_OTHER : CLASSIFY_HUMAN_REPLY;
    rc = 0;
done:
    free(fresh);
    msg_free(&m);
    mime_part_free(&root);
    if (rc < 0)
        out->kind = CLASSIFY_OTHER;
    return rc;
}
