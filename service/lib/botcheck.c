/* botcheck: the rules that sort open and click hits into human and
 * machine (see botcheck.h), in the order a verdict is reached: the
 * method, the user agent (the table below), then the timing rules, which
 * catch the scanners that dress as a browser (Microsoft's Safe Links and
 * Defender sandboxes send an ordinary Chrome or Edge user agent, and
 * neither they nor most gateways publish a token of their own).
 *
 * The table is written from what mail senders and the gateways' own
 * documentation say these fetchers send; every entry is matched as a
 * case-insensitive substring, first match wins, so the specific names
 * come before the generic words. A user agent can be forged either way:
 * these are signs, which is why the hit is kept and only flagged. */
#include "botcheck.h"

#include <stddef.h>
#include <string.h>

#define KIND_OPEN 1u
#define KIND_CLICK 2u
#define KIND_ANY (KIND_OPEN | KIND_CLICK)

static const struct agent {
    const char *token; /* matched anywhere, ignoring ASCII case */
    unsigned kinds;    /* the hits it applies to */
    int proxy;         /* on an open: a provider's image proxy, not a bot */
    const char *reason;
} agents[] = {
    /* Gmail fetches images through its proxy when the message is shown
     * ("... (via ggpht.com GoogleImageProxy)"): a person opened it. A
     * link followed by the image proxy is no person's click. */
    {"GoogleImageProxy", KIND_ANY, 1, "Gmail image proxy"},
    /* Yahoo Mail's proxy, for images and link previews
     * ("YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-...") */
    {"YahooMailProxy", KIND_ANY, 1, "Yahoo Mail proxy"},
    /* Office applications, Outlook desktop included, ask the server about
     * a link (Office protocol discovery) before handing it to the browser,
     * which then makes the person's own request. Outlook desktop also
     * loads images with "ms-office; MSOffice 16" in its user agent: on an
     * open that is a person reading, so these are for clicks only. */
    {"ms-office", KIND_CLICK, 0, "Microsoft Office link check"},
    {"Microsoft Office", KIND_CLICK, 0, "Microsoft Office link check"},
    /* Bing's preview fetcher, which Outlook.com has used to check the
     * links of incoming mail ("BingPreview/1.0b") */
    {"BingPreview", KIND_ANY, 0, "Microsoft link scanner (BingPreview)"},
    /* Proofpoint's URL Defense / TAP URL protection fetches rewritten
     * links before the reader does; its fetcher names Proofpoint */
    {"Proofpoint", KIND_ANY, 0, "Proofpoint URL Defense"},
    /* Mimecast's URL Protect and its sandbox */
    {"Mimecast", KIND_ANY, 0, "Mimecast URL Protect"},
    /* Barracuda's Link Protection and Advanced Threat Protection */
    {"Barracuda", KIND_ANY, 0, "Barracuda Link Protection"},
    /* Chrome driven by a program: the gateways' sandboxes and crawlers
     * ("... HeadlessChrome/120.0.0.0 Safari/537.36") */
    {"HeadlessChrome", KIND_ANY, 0, "headless Chrome"},
    {"PhantomJS", KIND_ANY, 0, "headless browser (PhantomJS)"},
    /* HTTP libraries and command-line tools: scripts, not people */
    {"curl/", KIND_ANY, 0, "HTTP library (curl)"},
    {"Wget", KIND_ANY, 0, "HTTP library (Wget)"},
    {"python-requests", KIND_ANY, 0, "HTTP library (python-requests)"},
    {"python-urllib", KIND_ANY, 0, "HTTP library (Python urllib)"},
    {"aiohttp", KIND_ANY, 0, "HTTP library (aiohttp)"},
    {"Go-http-client", KIND_ANY, 0, "HTTP library (Go)"},
    {"okhttp", KIND_ANY, 0, "HTTP library (OkHttp)"},
    {"Java/", KIND_ANY, 0, "HTTP library (Java)"},
    {"libwww-perl", KIND_ANY, 0, "HTTP library (libwww-perl)"},
    {"node-fetch", KIND_ANY, 0, "HTTP library (node-fetch)"},
    {"axios/", KIND_ANY, 0, "HTTP library (axios)"},
    /* The words crawlers, scanners and link-preview fetchers (Slack's,
     * Teams', Skype's) put in their names. "bot" also matches a few phone
     * models' names (Cubot): rare enough, and the hit is still kept. */
    {"bot", KIND_ANY, 0, "bot user agent"},
    {"spider", KIND_ANY, 0, "spider user agent"},
    {"crawler", KIND_ANY, 0, "crawler user agent"},
    {"scanner", KIND_ANY, 0, "scanner user agent"},
    {"preview", KIND_ANY, 0, "link preview fetcher"},
};

static unsigned char lower(unsigned char c)
{
    return c >= 'A' && c <= 'Z' ? (unsigned char)(c + 32) : c;
}

static int contains(const char *s, const char *w)
{
    size_t wl = strlen(w);
    for (; *s; s++) {
        size_t k = 0;
        while (k < wl && s[k] && lower((unsigned char)s[k]) == lower((unsigned char)w[k]))
            k++;
        if (k == wl)
            return 1;
    }
    return 0;
}

static int is_space(char c)
{
    return c == ' ' || c == '\t';
}

/* 1 when ua is "Mozilla/5.0" and nothing else: what Apple's Mail Privacy
 * Protection proxy sends when it fetches a message's images on delivery,
 * and what no browser sends (each adds its platform and engine). */
static int bare_mozilla(const char *ua)
{
    while (is_space(*ua))
        ua++;
    static const char bare[] = "Mozilla/5.0";
    if (strncmp(ua, bare, sizeof bare - 1) != 0)
        return 0;
    ua += sizeof bare - 1;
    while (is_space(*ua))
        ua++;
    return *ua == '\0';
}

static void verdict_bot(struct botcheck_verdict *v, const char *reason)
{
    v->bot_suspected = 1;
    v->reason = reason;
}

void botcheck_judge(const struct botcheck_hit *hit, struct botcheck_verdict *v)
{
    unsigned kind = hit->kind == BOTCHECK_CLICK ? KIND_CLICK : KIND_OPEN;
    v->bot_suspected = 0;
    v->proxy = 0;
    v->reason = NULL;

    /* a scanner checks that a link answers without taking its body */
    if (hit->method && strcmp(hit->method, "GET") != 0) {
        verdict_bot(v, strcmp(hit->method, "HEAD") == 0 ? "HEAD request" : "not a GET request");
        return;
    }

    const char *ua = hit->user_agent ? hit->user_agent : "";
    const char *p = ua;
    while (is_space(*p))
        p++;
    if (*p == '\0') {
        /* every browser and mail client sends one */
        verdict_bot(v, "no user agent");
        return;
    }
    if (bare_mozilla(ua)) {
        verdict_bot(v, kind == KIND_OPEN ? "Apple Mail Privacy Protection" : "bare Mozilla/5.0 user agent");
        return;
    }
    for (size_t i = 0; i < sizeof agents / sizeof agents[0]; i++) {
        const struct agent *a = &agents[i];
        if (!(a->kinds & kind) || !contains(ua, a->token))
            continue;
        if (!(a->proxy && kind == KIND_OPEN)) {
            verdict_bot(v, a->reason);
            return;
        }
        /* a proxy's open is a person's; the timing rules still apply,
         * since a provider that prefetches on delivery is no reader */
        v->proxy = 1;
        v->reason = a->reason;
        break;
    }

    if (hit->bot_window > 0 && hit->since_delivery >= 0 && hit->since_delivery < hit->bot_window) {
        verdict_bot(v, "within bot_window of delivery");
        return;
    }
    if (kind == KIND_CLICK) {
        int n = hit->links_clicked_recently;
        /* a person reads before clicking, and rarely follows every link
         * of a message, let alone within seconds */
        if (n >= 2 && hit->links_total >= 2 && n >= hit->links_total) {
            verdict_bot(v, "every link clicked within seconds");
            return;
        }
        if (n >= 3) {
            verdict_bot(v, "several links clicked within seconds");
            return;
        }
    }
}
