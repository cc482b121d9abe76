/* public: the public routes (see public.h). It owns the route table, the
 * reading of a one-click request, the confirmation page in each language
 * relance speaks, and the headers that keep that page to itself (no
 * script, no outside resource, no framing, no referrer); and the tracked
 * links' redirect and open image, answered at once, each hit then judged
 * (botcheck.c, on the facts SQL gives) and recorded. What an unsubscribe
 * does is SQL's (sql/functions/public.sql), as is what a hit records
 * (sql/functions/tracking.sql); the tokens are linktoken.c's.
 *
 * Nothing here blocks the loop: statements go through the API's
 * connections (ready_api_db) and answer later; each request carries what
 * its answer needs, so it outlives nothing it points at. */
#include "public.h"

#include "botcheck.h"
#include "clock.h"
#include "linktoken.h"
#include "log.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

struct public {
    const struct ready *ready;
    char prefix[PUBLIC_URL_MAX]; /* public_url's path, without a final '/'; "" for none */
    const char *secrets[2]; /* the current one, then the previous one */
    size_t n_secrets;
    long bot_window;         /* seconds; botcheck's rule, 0 for off */
};

/* The languages of the page. */
enum lang { LANG_EN, LANG_FR, LANG_N };
static const char *const lang_names[LANG_N] = {"en", "fr"};

struct words {
    const char *title, *ask, *button, *done_title, *done, *sorry_title, *sorry;
};

static const struct words words[LANG_N] = {
    [LANG_EN] = {"Unsubscribe", "Do you want to stop receiving these emails?", "Unsubscribe", "You are unsubscribed",
                 "You will not receive any more emails from us.", "Please try again later",
                 "We could not record your request just now."},
    [LANG_FR] = {"Désinscription", "Voulez-vous ne plus recevoir ces e-mails&nbsp;?", "Me désinscrire",
                 "Vous êtes désinscrit", "Vous ne recevrez plus d’e-mails de notre part.",
                 "Veuillez réessayer plus tard", "Nous n’avons pas pu enregistrer votre demande pour l’instant."},
};

/* One request on its way: what the answer needs once the database has
 * answered. */
struct pctx {
    struct http_request *req;
    enum lang lang;          /* Accept-Language's, or the form's */
    char message_id[LINKTOKEN_ID_MAX + 1];
};

/* ---- the route table ---------------------------------------------------- */

static void unsubscribe(struct public *pub, struct http_request *req, const struct linktoken *t);
static void click(struct public *pub, struct http_request *req, const struct linktoken *t);
static void open_image(struct public *pub, struct http_request *req, const struct linktoken *t);

struct route {
    const char *prefix;      /* "/u/" */
    const char *suffix;      /* after the token ("" or ".gif") */
    char kind;               /* the token kind it takes */
    void (*handle)(struct public *pub, struct http_request *req, const struct linktoken *t);
};

static const struct route routes[] = {
    {"/u/", "", LINKTOKEN_UNSUBSCRIBE, unsubscribe},
    {"/c/", "", LINKTOKEN_CLICK, click},
    {"/o/", ".gif", LINKTOKEN_OPEN, open_image},
};

/* Every answer here: never cached, never framed, nothing leaves the page,
 * no referrer to anywhere. */
static const char *const page_headers[] = {
    "Content-Security-Policy",
    "default-src 'none'; style-src 'unsafe-inline'; form-action 'self'; frame-ancestors 'none'; base-uri 'none'",
    "Referrer-Policy", "no-referrer",
    "X-Frame-Options", "DENY",
    "X-Content-Type-Options", "nosniff",
    "Cache-Control", "no-store",
    "X-Robots-Tag", "noindex, nofollow",
    NULL,
};

static void respond_text(struct http_request *req, int status, const char *text)
{
    http_respond_headers(req, status, "text/plain; charset=utf-8", text, strlen(text), page_headers);
}

static void not_found(struct http_request *req)
{
    respond_text(req, 404, "Not found\n");
}

int public_route(struct http_request *req, struct public *pub)
{
    const char *path = http_request_path(req);
    size_t pre = strlen(pub->prefix);
    if (pre > 0 && strncmp(path, pub->prefix, pre) == 0 && path[pre] == '/')
        path += pre;
    for (size_t i = 0; i < sizeof routes / sizeof routes[0]; i++) {
        const struct route *r = &routes[i];
        size_t pl = strlen(r->prefix), sl = strlen(r->suffix), n = strlen(path);
        if (strncmp(path, r->prefix, pl) != 0)
            continue;
        if (n < pl + sl || strcmp(path + n - sl, r->suffix) != 0) {
            not_found(req);
            return 1;
        }
        struct linktoken *t = malloc(sizeof *t);
        if (!t) {
            respond_text(req, 503, "Service unavailable\n");
            return 1;
        }
        /* a token that does not open says nothing of why */
        if (linktoken_open(pub->secrets, pub->n_secrets, path + pl, n - pl - sl, t) < 0 || t->kind != r->kind)
            not_found(req);
        else
            r->handle(pub, req, t);
        free(t);
        return 1;
    }
    return 0;
}

void public_handle(struct http_request *req, void *arg)
{
    if (!public_route(req, arg))
        not_found(req);
}

/* ---- languages ---------------------------------------------------------- */

static int lang_find(const char *tag, size_t n, enum lang *out)
{
    size_t primary = 0;
    while (primary < n && tag[primary] != '-' && tag[primary] != '_')
        primary++;
    for (int i = 0; i < LANG_N; i++)
        if (primary == strlen(lang_names[i]) && strncasecmp(tag, lang_names[i], primary) == 0) {
            *out = (enum lang)i;
            return 0;
        }
    return -1;
}

/* The language of the page from Accept-Language: the one with the
 * highest q among those relance speaks (the first of equals); English
 * without one. */
static enum lang lang_accepted(const char *h)
{
    enum lang best = LANG_EN;
    double best_q = -1;
    for (const char *p = h; p && *p;) {
        p += strspn(p, " \t,");
        size_t n = strcspn(p, ",;");
        while (n > 0 && (p[n - 1] == ' ' || p[n - 1] == '\t'))
            n--;
        const char *tag = p;
        double q = 1.0;
        p += strcspn(p, ",;");
        if (*p == ';') {
            const char *qs = strstr(p, "q=");
            const char *next = strchr(p, ',');
            if (qs && (!next || qs < next))
                q = strtod(qs + 2, NULL);
            p = next ? next : p + strlen(p);
        }
        enum lang l;
        if (n > 0 && q > 0 && q > best_q && lang_find(tag, n, &l) == 0) {
            best = l;
            best_q = q;
        }
    }
    return best;
}

/* ---- the page ----------------------------------------------------------- */

enum page { PAGE_ASK, PAGE_DONE, PAGE_SORRY };

static void page(struct http_request *req, int status, enum lang lang, enum page which)
{
    const struct words *w = &words[lang];
    const char *title = which == PAGE_ASK ? w->title : which == PAGE_DONE ? w->done_title : w->sorry_title;
    const char *text = which == PAGE_ASK ? w->ask : which == PAGE_DONE ? w->done : w->sorry;
    char form[400] = "";
    if (which == PAGE_ASK)
        /* the same request a mail client's button makes, and the page's
         * language so that the answer speaks it too */
        snprintf(form, sizeof form,
                 "<form method=\"post\"><input type=\"hidden\" name=\"List-Unsubscribe\" value=\"One-Click\">"
                 "<input type=\"hidden\" name=\"lang\" value=\"%s\"><button type=\"submit\">%s</button></form>",
                 lang_names[lang], w->button);
    char *body = NULL;
    int n = asprintf(&body,
                     "<!DOCTYPE html>\n<html lang=\"%s\"><head><meta charset=\"utf-8\">"
                     "<meta name=\"viewport\" content=\"width=device-width, initial-scale=1\">"
                     "<meta name=\"robots\" content=\"noindex\"><title>%s</title>"
                     "<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:4rem auto;padding:0 1rem;"
                     "color:#222;line-height:1.5}button{font:inherit;padding:.6rem 1.4rem;cursor:pointer}</style>"
                     "</head><body><main><h1>%s</h1><p>%s</p>%s</main></body></html>\n",
                     lang_names[lang], title, title, text, form);
    if (n < 0) {
        respond_text(req, 503, "Service unavailable\n");
        return;
    }
    http_respond_headers(req, status, "text/html; charset=utf-8", body, (size_t)n, page_headers);
    free(body);
}

/* ---- reading a one-click request ---------------------------------------- */

static int hexval(char c)
{
    if (c >= '0' && c <= '9')
        return c - '0';
    if (c >= 'a' && c <= 'f')
        return c - 'a' + 10;
    if (c >= 'A' && c <= 'F')
        return c - 'A' + 10;
    return -1;
}

/* Decodes one application/x-www-form-urlencoded name or value (n bytes)
 * into out (size len); -1 when it does not fit or is malformed. */
static int form_decode(const char *s, size_t n, char *out, size_t len)
{
    size_t o = 0;
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '+') {
            c = ' ';
        } else if (c == '%') {
            if (i + 2 >= n)
                return -1;
            int hi = hexval(s[i + 1]), lo = hexval(s[i + 2]);
            if (hi < 0 || lo < 0)
                return -1;
            c = (char)(hi * 16 + lo);
            i += 2;
        }
        if (o + 1 >= len || c == '\0')
            return -1;
        out[o++] = c;
    }
    out[o] = '\0';
    return 0;
}

/* What a form-encoded body says: whether it holds List-Unsubscribe=
 * One-Click, and its lang (the confirmation page's) when it has one. */
static int form_one_click(const char *body, size_t len, enum lang *lang)
{
    int yes = 0;
    for (size_t i = 0; i < len;) {
        size_t end = i;
        while (end < len && body[end] != '&')
            end++;
        size_t eq = i;
        while (eq < end && body[eq] != '=')
            eq++;
        char k[64], v[64];
        if (eq < end && form_decode(body + i, eq - i, k, sizeof k) == 0 &&
            form_decode(body + eq + 1, end - eq - 1, v, sizeof v) == 0) {
            if (strcmp(k, "List-Unsubscribe") == 0 && strcmp(v, "One-Click") == 0)
                yes = 1;
            else if (strcmp(k, "lang") == 0)
                (void)lang_find(v, strlen(v), lang);
        }
        i = end + 1;
    }
    return yes;
}

/* Whether a multipart/form-data body has a part named List-Unsubscribe
 * whose value is One-Click. Read leniently — the part's headers, a blank
 * line, the value on the next line — since RFC 8058's own example does
 * not put "--" before its boundaries. */
static int multipart_one_click(const char *body, size_t len)
{
    static const char name[] = "name=\"List-Unsubscribe\"";
    const char *end = body + len;
    for (const char *p = body; p < end;) {
        const char *m = memmem(p, (size_t)(end - p), name, sizeof name - 1);
        if (!m)
            return 0;
        p = m + sizeof name - 1;
        const char *blank = memmem(p, (size_t)(end - p), "\r\n\r\n", 4);
        const char *lf = memmem(p, (size_t)(end - p), "\n\n", 2);
        const char *v = blank && (!lf || blank < lf) ? blank + 4 : lf ? lf + 2 : NULL;
        if (!v)
            return 0;
        size_t n = 0;
        while (v + n < end && v[n] != '\r' && v[n] != '\n')
            n++;
        while (n > 0 && (v[n - 1] == ' ' || v[n - 1] == '\t'))
            n--;
        if (n == 9 && memcmp(v, "One-Click", 9) == 0)
            return 1;
    }
    return 0;
}

/* ---- /u/TOKEN ----------------------------------------------------------- */

static struct pctx *pctx_new(struct http_request *req, const struct linktoken *t)
{
    struct pctx *x = calloc(1, sizeof *x);
    if (!x)
        return NULL;
    x->req = req;
    x->lang = lang_accepted(http_request_header(req, "Accept-Language"));
    snprintf(x->message_id, sizeof x->message_id, "%s", t->message_id);
    return x;
}

/* The page speaks the sequence's language when relance speaks it. */
static void on_message(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct pctx *x = arg;
    int suppressed = 0;
    if (res && PQresultStatus(res) == PGRES_TUPLES_OK && PQntuples(res) == 1) {
        /* from the stored model: a public GET parses no YAML */
        if (!PQgetisnull(res, 0, 0))
            (void)lang_find(PQgetvalue(res, 0, 0), strlen(PQgetvalue(res, 0, 0)), &x->lang);
        suppressed = strcmp(PQgetvalue(res, 0, 1), "t") == 0;
    }
    /* the database gone, or the message pruned: the page all the same */
    page(x->req, 200, x->lang, suppressed ? PAGE_DONE : PAGE_ASK);
    free(x);
}

static void on_unsubscribed(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct pctx *x = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        char msg[300] = "the database connection closed";
        if (res)
            snprintf(msg, sizeof msg, "%s", PQresultErrorMessage(res));
        msg[strcspn(msg, "\r\n")] = '\0';
        log_event(LOG_WARN, "public", "one-click unsubscribe not recorded", "message_id", x->message_id, "error",
                  msg, NULL);
        page(x->req, 503, x->lang, PAGE_SORRY);
        free(x);
        return;
    }
    const char *what = PQgetvalue(res, 0, 0);
    if (strcmp(what, "unsubscribed") == 0)
        log_event(LOG_INFO, "public", "one-click unsubscribe", "message_id", x->message_id, NULL);
    /* 'already' and 'unknown' read the same: the person is not written to */
    page(x->req, 200, x->lang, PAGE_DONE);
    free(x);
}

static void unsubscribe(struct public *pub, struct http_request *req, const struct linktoken *t)
{
    const char *method = http_request_method(req);
    int post = strcmp(method, "POST") == 0;
    if (!post && strcmp(method, "GET") != 0 && strcmp(method, "HEAD") != 0) {
        static const char *const allow[] = {"Allow", "GET, HEAD, POST", NULL};
        http_respond_headers(req, 405, "text/plain; charset=utf-8", "Method not allowed\n", 19, allow);
        return;
    }
    struct pctx *x = pctx_new(req, t);
    if (!x) {
        respond_text(req, 503, "Service unavailable\n");
        return;
    }
    const char *p[2] = {x->message_id, NULL};
    if (!post) {
        /* a GET (a person, or a scanner prefetching) changes nothing */
        struct db *db = ready_api_db(pub->ready);
        if (!db || db_query(db, "SELECT * FROM relance_public_page($1)", 1, p, on_message, x) < 0) {
            page(req, 200, x->lang, PAGE_ASK);
            free(x);
        }
        return;
    }
    size_t len = 0;
    const char *body = http_request_body(req, &len);
    if (http_request_too_large(req) || !body ||
        !(form_one_click(body, len, &x->lang) || multipart_one_click(body, len))) {
        respond_text(req, 400, "Bad request\n");
        free(x);
        return;
    }
    char now[40];
    clock_format(clock_now(), now, sizeof now);
    p[1] = now;
    struct db *db = ready_api_db(pub->ready);
    if (!db || db_query(db, "SELECT relance_one_click_unsubscribe($1, $2)", 2, p, on_unsubscribed, x) < 0) {
        page(req, 503, x->lang, PAGE_SORRY);
        free(x);
    }
}

/* ---- /c/TOKEN and /o/TOKEN.gif --------------------------------------------- */

/* One hit on its way to the database, once answered: what botcheck and
 * the record need, copied from the request. */
struct hit {
    enum botcheck_kind kind;
    long bot_window;         /* copied: pub may be freed before the database answers */
    char method[8];
    char message_id[LINKTOKEN_ID_MAX + 1];
    char *url;               /* a click's destination; NULL for an open */
    char *user_agent;        /* NULL when absent */
    int links_total;         /* the message's distinct tracked destinations, from the token */
    char at[40];
};

static void hit_free(struct hit *h)
{
    free(h->url);
    free(h->user_agent);
    free(h);
}

static void on_judged(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    struct hit *h = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
        log_event(LOG_WARN, "public", "tracking verdict not recorded (the hit stays 'not judged')", "message_id",
                  h->message_id, NULL);
    hit_free(h);
}

/* The hit is written (relance_tracking_hit, with what botcheck needs):
 * judged here, the verdict and the event written. */
static void on_written(struct db *db, const PGresult *res, void *arg)
{
    struct hit *h = arg;
    if (!res || PQresultStatus(res) != PGRES_TUPLES_OK || PQntuples(res) != 1) {
        /* the message is not there, or its person was erased (no row):
         * nothing to record it against; or the database went */
        if (!res || PQresultStatus(res) != PGRES_TUPLES_OK)
            log_event(LOG_WARN, "public", "tracking hit not recorded", "message_id", h->message_id, NULL);
        hit_free(h);
        return;
    }
    struct botcheck_hit bh = {
        .kind = h->kind,
        .method = h->method,
        .user_agent = h->user_agent,
        .since_delivery = PQgetisnull(res, 0, 1) ? -1 : (int64_t)strtod(PQgetvalue(res, 0, 1), NULL),
        .bot_window = h->bot_window,
        .links_clicked_recently = (int)strtol(PQgetvalue(res, 0, 2), NULL, 10),
        .links_total = h->links_total,
    };
    struct botcheck_verdict v;
    botcheck_judge(&bh, &v);
    const char *p[4] = {PQgetvalue(res, 0, 0), v.bot_suspected ? "t" : "f", v.reason, v.proxy ? "t" : "f"};
    if (db_query(db, "SELECT relance_tracking_judged($1, $2, $3, $4)", 4, p, on_judged, h) < 0) {
        log_event(LOG_WARN, "public", "tracking verdict not recorded (the hit stays 'not judged')", "message_id",
                  h->message_id, NULL);
        hit_free(h);
    }
}

/* Records the hit after its answer went: a person's redirect or image
 * never waits for the database, and a database away loses the record,
 * not the click. */
static void hit_record(struct public *pub, struct http_request *req, const struct linktoken *t, const char *url,
                       int links_total)
{
    struct hit *h = calloc(1, sizeof *h);
    if (!h)
        return;
    h->bot_window = pub->bot_window;
    h->kind = url ? BOTCHECK_CLICK : BOTCHECK_OPEN;
    snprintf(h->method, sizeof h->method, "%s", http_request_method(req));
    snprintf(h->message_id, sizeof h->message_id, "%s", t->message_id);
    const char *ua = http_request_header(req, "User-Agent");
    h->url = url ? strdup(url) : NULL;
    h->user_agent = ua ? strndup(ua, 256) : NULL;
    h->links_total = links_total;
    clock_format(clock_now(), h->at, sizeof h->at);
    if ((url && !h->url) || (ua && !h->user_agent)) {
        hit_free(h);
        return;
    }
    char burst[16];
    snprintf(burst, sizeof burst, "%d", BOTCHECK_BURST_SECONDS);
    const char *p[6] = {h->message_id, h->kind == BOTCHECK_CLICK ? "click" : "open", h->url, h->at, h->user_agent,
                        burst};
    struct db *db = ready_api_db(pub->ready);
    if (!db || db_query(db, "SELECT * FROM relance_tracking_hit($1, $2, $3, $4, $5, $6)", 6, p, on_written, h) < 0) {
        log_event(LOG_WARN, "public", "tracking hit not recorded (the database is away)", "message_id",
                  h->message_id, NULL);
        hit_free(h);
    }
}

/* GET and HEAD only: a scanner's HEAD is answered and recorded as one. */
static int get_or_head(struct http_request *req)
{
    const char *method = http_request_method(req);
    if (strcmp(method, "GET") == 0 || strcmp(method, "HEAD") == 0)
        return 1;
    static const char *const allow[] = {"Allow", "GET, HEAD", NULL};
    http_respond_headers(req, 405, "text/plain; charset=utf-8", "Method not allowed\n", 19, allow);
    return 0;
}

/* The destination a click token binds: after the byte that counts the
 * message's links, an absolute http:// or https:// URL with nothing a
 * header could be split on. Anything else (which only a holder of the
 * secret could have signed) goes nowhere. */
static int destination(const struct linktoken *t, char *out, size_t len)
{
    if (t->data_len < 2 || t->data_len - 1 >= len)
        return -1;
    memcpy(out, t->data + 1, t->data_len - 1);
    out[t->data_len - 1] = '\0';
    for (size_t i = 0; i < t->data_len - 1; i++)
        if ((unsigned char)out[i] <= 0x20 || out[i] == 0x7f)
            return -1;
    if (strncasecmp(out, "https://", 8) != 0 && strncasecmp(out, "http://", 7) != 0)
        return -1;
    return 0;
}

/* GET /c/TOKEN: 302 to exactly the destination signed into the token. */
static void click(struct public *pub, struct http_request *req, const struct linktoken *t)
{
    if (!get_or_head(req))
        return;
    char url[LINKTOKEN_DATA_MAX + 1];
    if (destination(t, url, sizeof url) < 0) {
        not_found(req);
        return;
    }
    /* the token stays here: no referrer carries it to the destination */
    const char *headers[] = {"Location", url, "Cache-Control", "no-store", "Referrer-Policy", "no-referrer",
                             "X-Robots-Tag", "noindex, nofollow", NULL};
    static const char body[] = "Redirecting\n";
    http_respond_headers(req, 302, "text/plain; charset=utf-8", body, sizeof body - 1, headers);
    hit_record(pub, req, t, url, t->data[0]);
}

/* A transparent 1x1 GIF89a: two colours, the first transparent. */
static const unsigned char pixel[] = {
    'G', 'I', 'F', '8', '9', 'a', 0x01, 0x00, 0x01, 0x00, 0x80, 0x00, 0x00, 0x00, 0x00, 0x00,
    0xff, 0xff, 0xff, 0x21, 0xf9, 0x04, 0x01, 0x00, 0x00, 0x00, 0x00, 0x2c, 0x00, 0x00, 0x00, 0x00,
    0x01, 0x00, 0x01, 0x00, 0x00, 0x02, 0x02, 0x44, 0x01, 0x00, 0x3b,
};

/* GET /o/TOKEN.gif: the image, never cached, so that each open asks. */
static void open_image(struct public *pub, struct http_request *req, const struct linktoken *t)
{
    if (!get_or_head(req))
        return;
    static const char *const headers[] = {"Cache-Control", "no-store, no-cache, must-revalidate, max-age=0",
                                          "Pragma", "no-cache", "Expires", "0", "X-Robots-Tag", "noindex", NULL};
    http_respond_headers(req, 200, "image/gif", (const char *)pixel, sizeof pixel, headers);
    hit_record(pub, req, t, NULL, 0);
}

/* ---- the struct and links ----------------------------------------------- */

struct public *public_new(const struct ready *ready, const char *public_url, const char *secret,
                          const char *previous)
{
    struct public *pub = calloc(1, sizeof *pub);
    if (!pub)
        return NULL;
    pub->ready = ready;
    pub->bot_window = BOTCHECK_WINDOW_DEFAULT;
    const char *host = public_url ? strstr(public_url, "://") : NULL;
    const char *path = host ? strchr(host + 3, '/') : NULL;
    if (path)
        snprintf(pub->prefix, sizeof pub->prefix, "%s", path);
    if (secret)
        pub->secrets[pub->n_secrets++] = secret;
    if (previous)
        pub->secrets[pub->n_secrets++] = previous;
    return pub;
}

void public_set_bot_window(struct public *pub, long seconds)
{
    pub->bot_window = seconds;
}

void public_free(struct public *pub)
{
    free(pub);
}

int public_link(const char *public_url, const char *secret, char kind, const char *message_id, char *out,
                size_t len)
{
    char tok[LINKTOKEN_MAX];
    int rc = linktoken_make(secret, kind, message_id, NULL, 0, tok, sizeof tok);
    if (rc < 0)
        return rc;
    int n = snprintf(out, len, "%s/%c/%s", public_url, kind, tok);
    return n < 0 || (size_t)n >= len ? -ENOSPC : 0;
}
