/* Unit tests of botcheck, table-driven, with the user agents real
 * clients, mailbox providers' proxies, security gateways and scripts
 * send: which hits are human, which are a proxy's opens, which are
 * flagged and with what reason, and the order the rules are tried in
 * (method, user agent, time since delivery, click bursts). */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <string.h>

#include "botcheck.h"

#define CHROME "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) " \
               "Chrome/120.0.0.0 Safari/537.36"
#define EDGE CHROME " Edg/120.0.2210.91"
#define FIREFOX "Mozilla/5.0 (X11; Linux x86_64; rv:121.0) Gecko/20100101 Firefox/121.0"
#define SAFARI_IOS "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 " \
                   "(KHTML, like Gecko) Version/17.1.2 Mobile/15E148 Safari/604.1"
#define IOS_MAIL "Mozilla/5.0 (iPhone; CPU iPhone OS 17_1_2 like Mac OS X) AppleWebKit/605.1.15 " \
                 "(KHTML, like Gecko) Mobile/15E148"
#define SAMSUNG "Mozilla/5.0 (Linux; Android 14; SM-S918B) AppleWebKit/537.36 (KHTML, like Gecko) " \
                "SamsungBrowser/23.0 Chrome/115.0.0.0 Mobile Safari/537.36"
#define THUNDERBIRD "Mozilla/5.0 (X11; Linux x86_64; rv:115.0) Gecko/20100101 Thunderbird/115.5.0"
#define OUTLOOK_DESKTOP "Mozilla/4.0 (compatible; ms-office; MSOffice 16)"
#define OUTLOOK_OFFICE "Microsoft Office/16.0 (Windows NT 10.0; Microsoft Outlook 16.0.17029; Pro)"
#define GMAIL_PROXY "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
#define YAHOO_PROXY "YahooMailProxy; https://help.yahoo.com/kb/yahoo-mail-proxy-SLN28749.html"
#define HEADLESS "Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) " \
                 "HeadlessChrome/120.0.6099.109 Safari/537.36"

#define O BOTCHECK_OPEN
#define C BOTCHECK_CLICK
#define W BOTCHECK_WINDOW_DEFAULT
#define LATE 3600 /* an hour after delivery: no timing rule applies */

static const struct row {
    enum botcheck_kind kind;
    const char *method;
    const char *ua;
    int64_t since, window;
    int recent, total;
    int bot, proxy;
    const char *reason; /* NULL: none */
} rows[] = {
    /* people: browsers and mail clients, late enough */
    {C, "GET", CHROME, LATE, W, 1, 4, 0, 0, NULL},
    {C, "GET", EDGE, LATE, W, 1, 4, 0, 0, NULL},
    {C, "GET", FIREFOX, 120, W, 1, 1, 0, 0, NULL},
    {C, "GET", SAFARI_IOS, 45, W, 1, 0, 0, 0, NULL},
    {C, "GET", SAMSUNG, LATE, W, 1, 2, 0, 0, NULL},
    {O, "GET", IOS_MAIL, LATE, W, 0, 0, 0, 0, NULL},
    {O, "GET", THUNDERBIRD, LATE, W, 0, 0, 0, 0, NULL},
    {O, NULL, CHROME, LATE, W, 0, 0, 0, 0, NULL}, /* no method given: a GET */
    /* Outlook desktop loading images is a reader; its link check is not */
    {O, "GET", OUTLOOK_DESKTOP, LATE, W, 0, 0, 0, 0, NULL},
    {C, "GET", OUTLOOK_DESKTOP, LATE, W, 1, 3, 1, 0, "Microsoft Office link check"},
    {C, "GET", OUTLOOK_OFFICE, LATE, W, 1, 3, 1, 0, "Microsoft Office link check"},

    /* Apple Mail Privacy Protection: the bare Mozilla/5.0 */
    {O, "GET", "Mozilla/5.0", LATE, W, 0, 0, 1, 0, "Apple Mail Privacy Protection"},
    {O, "GET", " Mozilla/5.0 ", LATE, W, 0, 0, 1, 0, "Apple Mail Privacy Protection"},
    {C, "GET", "Mozilla/5.0", LATE, W, 1, 3, 1, 0, "bare Mozilla/5.0 user agent"},
    {O, "GET", "Mozilla/5.0 (Macintosh)", LATE, W, 0, 0, 0, 0, NULL},

    /* providers' image proxies: an open, unattributable */
    {O, "GET", GMAIL_PROXY, LATE, W, 0, 0, 0, 1, "Gmail image proxy"},
    {O, "GET", YAHOO_PROXY, LATE, W, 0, 0, 0, 1, "Yahoo Mail proxy"},
    {O, "GET", GMAIL_PROXY, 4, W, 0, 0, 1, 1, "within bot_window of delivery"},
    {O, "HEAD", GMAIL_PROXY, LATE, W, 0, 0, 1, 0, "HEAD request"},
    {C, "GET", GMAIL_PROXY, LATE, W, 1, 3, 1, 0, "Gmail image proxy"},
    {C, "GET", YAHOO_PROXY, LATE, W, 1, 3, 1, 0, "Yahoo Mail proxy"},

    /* security gateways and scanners */
    {C, "GET", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) BingPreview/1.0b",
     LATE, W, 1, 3, 1, 0, "Microsoft link scanner (BingPreview)"},
    {C, "GET", "Mozilla/5.0 (compatible; Proofpoint URL Defense)", LATE, W, 1, 3, 1, 0, "Proofpoint URL Defense"},
    {O, "GET", "Mozilla/5.0 (Windows NT 10.0; Win64; x64) Mimecast-URL-Protect/1.0", LATE, W, 0, 0, 1, 0,
     "Mimecast URL Protect"},
    {C, "GET", "Barracuda Sentinel (EE)", LATE, W, 1, 3, 1, 0, "Barracuda Link Protection"},
    {C, "GET", HEADLESS, LATE, W, 1, 3, 1, 0, "headless Chrome"},
    {C, "GET", "Mozilla/5.0 (Unknown; Linux x86_64) AppleWebKit/538.1 (KHTML, like Gecko) PhantomJS/2.1.1 Safari/538.1",
     LATE, W, 1, 3, 1, 0, "headless browser (PhantomJS)"},

    /* scripts */
    {C, "GET", "curl/8.5.0", LATE, W, 1, 3, 1, 0, "HTTP library (curl)"},
    {C, "GET", "Wget/1.21.3", LATE, W, 1, 3, 1, 0, "HTTP library (Wget)"},
    {C, "GET", "python-requests/2.31.0", LATE, W, 1, 3, 1, 0, "HTTP library (python-requests)"},
    {O, "GET", "Python-urllib/3.11", LATE, W, 0, 0, 1, 0, "HTTP library (Python urllib)"},
    {C, "GET", "Go-http-client/1.1", LATE, W, 1, 3, 1, 0, "HTTP library (Go)"},
    {C, "GET", "okhttp/4.12.0", LATE, W, 1, 3, 1, 0, "HTTP library (OkHttp)"},
    {C, "GET", "Java/17.0.9", LATE, W, 1, 3, 1, 0, "HTTP library (Java)"},
    {C, "GET", "axios/1.6.2", LATE, W, 1, 3, 1, 0, "HTTP library (axios)"},

    /* crawlers and link previews by their words */
    {C, "GET", "Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)", LATE, W, 1, 3, 1, 0,
     "bot user agent"},
    {C, "GET", "Slackbot-LinkExpanding 1.0 (+https://api.slack.com/robots)", LATE, W, 1, 3, 1, 0, "bot user agent"},
    {C, "GET", "Mozilla/5.0 (compatible; Baiduspider/2.0; +http://www.baidu.com/search/spider.html)", LATE, W, 1, 3,
     1, 0, "spider user agent"},
    {C, "GET", "Mozilla/5.0 (Windows NT 6.1; WOW64) SkypeUriPreview Preview/0.5", LATE, W, 1, 3, 1, 0,
     "link preview fetcher"},
    {C, "GET", "SecurityCrawler/1.0", LATE, W, 1, 3, 1, 0, "crawler user agent"},
    {C, "GET", "LinkScanner/2.3", LATE, W, 1, 3, 1, 0, "scanner user agent"},

    /* the method and a missing user agent come first */
    {C, "HEAD", CHROME, LATE, W, 1, 3, 1, 0, "HEAD request"},
    {O, "OPTIONS", CHROME, LATE, W, 0, 0, 1, 0, "not a GET request"},
    {O, "GET", NULL, LATE, W, 0, 0, 1, 0, "no user agent"},
    {C, "GET", "", LATE, W, 1, 3, 1, 0, "no user agent"},
    {C, "GET", "  ", LATE, W, 1, 3, 1, 0, "no user agent"},

    /* within bot_window of delivery: a person's browser or not */
    {C, "GET", CHROME, 0, W, 1, 3, 1, 0, "within bot_window of delivery"},
    {O, "GET", IOS_MAIL, 29, W, 0, 0, 1, 0, "within bot_window of delivery"},
    {O, "GET", IOS_MAIL, 30, W, 0, 0, 0, 0, NULL},
    {C, "GET", CHROME, 50, 60, 1, 3, 1, 0, "within bot_window of delivery"},
    {C, "GET", CHROME, 5, 0, 1, 3, 0, 0, NULL},     /* the rule off */
    {C, "GET", CHROME, -1, W, 1, 3, 0, 0, NULL},    /* delivery time unknown */

    /* click bursts: every link, or several, within seconds */
    {C, "GET", CHROME, LATE, W, 2, 2, 1, 0, "every link clicked within seconds"},
    {C, "GET", CHROME, LATE, W, 4, 4, 1, 0, "every link clicked within seconds"},
    {C, "GET", CHROME, LATE, W, 3, 10, 1, 0, "several links clicked within seconds"},
    {C, "GET", CHROME, LATE, W, 3, 0, 1, 0, "several links clicked within seconds"},
    {C, "GET", CHROME, LATE, W, 1, 1, 0, 0, NULL}, /* the one link of a message */
    {C, "GET", CHROME, LATE, W, 2, 5, 0, 0, NULL},
    {C, "GET", CHROME, LATE, W, 2, 0, 0, 0, NULL},
    {O, "GET", IOS_MAIL, LATE, W, 5, 5, 0, 0, NULL}, /* an open has no burst */
};

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        struct botcheck_hit hit = {
            .kind = r->kind,
            .method = r->method,
            .user_agent = r->ua,
            .since_delivery = r->since,
            .bot_window = r->window,
            .links_clicked_recently = r->recent,
            .links_total = r->total,
        };
        struct botcheck_verdict v = {.bot_suspected = -1, .proxy = -1, .reason = "stale"};
        botcheck_judge(&hit, &v);
        int reason_ok = r->reason ? v.reason && strcmp(v.reason, r->reason) == 0 : v.reason == NULL;
        if (v.bot_suspected != r->bot || v.proxy != r->proxy || !reason_ok)
            fail_msg("row %zu (%s, %s): bot %d proxy %d reason %s; want %d %d %s", i, r->kind == O ? "open" : "click",
                     r->ua ? r->ua : "(none)", v.bot_suspected, v.proxy, v.reason ? v.reason : "(none)", r->bot,
                     r->proxy, r->reason ? r->reason : "(none)");
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
