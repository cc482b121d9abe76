/* Unit tests of linkrewrite, table-driven: which hrefs of an HTML part
 * are offered for tracking and how the tracked URL is written back
 * (quoting, escaping, entities decoded first), which are left (other
 * schemes, the unsubscribe URL, template leftovers, comments, raw text
 * elements, references this decoder cannot be sure of), the callback's
 * refusals and errors, bare URLs of a text part and where they end, and
 * every cut of a document: copied as it came when nothing is tracked,
 * never a byte read past its end, never a tag added; and the same of
 * documents stitched at random. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "linkrewrite.h"

/* The test's callback: each URL offered is noted in seen ("|" between
 * them); a URL holding "skip" is left, one holding "fail" stops the
 * rewrite with -EIO; any other becomes https://t.example/c?k=N&v=1, N
 * counting from 1 (its '&' shows the escaping). */
struct tracker {
    struct buf seen;
    int n;
    const char *answer; /* when set, the tracked URL for every link */
};

static int track(void *ctx, const char *url, struct buf *tracked)
{
    struct tracker *t = ctx;
    if (t->seen.len)
        buf_addc(&t->seen, '|');
    buf_adds(&t->seen, url);
    if (strstr(url, "fail"))
        return -EIO;
    if (strstr(url, "skip"))
        return 0;
    if (t->answer)
        buf_adds(tracked, t->answer);
    else
        buf_addf(tracked, "https://t.example/c?k=%d&v=1", ++t->n);
    return 1;
}

#define UNSUB "https://p.example/u/tok_AbC?x=1&y=2"
#define T1 "\"https://t.example/c?k=1&amp;v=1\""
#define T2 "\"https://t.example/c?k=2&amp;v=1\""

static const struct html_row {
    const char *in;
    const char *out; /* NULL: the same as in */
    int count;
    const char *seen; /* the URLs offered, "|" between them */
} html_rows[] = {
    /* quoting, case, unquoted values, other attributes kept as written */
    {"<a href=\"https://a.example/x\">A</a>", "<a href=" T1 ">A</a>", 1, "https://a.example/x"},
    {"<A HREF='https://a.example/y'>A</A>", "<A HREF=" T1 ">A</A>", 1, "https://a.example/y"},
    {"<a class=c href=https://a.example/z title='t'>", "<a class=c href=" T1 " title='t'>", 1,
     "https://a.example/z"},
    {"<a href = \"http://a.example/\" >", "<a href = " T1 " >", 1, "http://a.example/"},
    {"<a\nhref=\"HTTPS://A.EXAMPLE/\">", "<a\nhref=" T1 ">", 1, "HTTPS://A.EXAMPLE/"},
    {"<a/href=\"https://a.example/\">", "<a/href=" T1 ">", 1, "https://a.example/"},
    {"<area shape=rect coords=\"0,0,1,1\" href=\"https://a.example/m\">",
     "<area shape=rect coords=\"0,0,1,1\" href=" T1 ">", 1, "https://a.example/m"},
    {"<a href=\"https://a.example/1\">1</a> and <a href='https://a.example/2'>2</a>",
     "<a href=" T1 ">1</a> and <a href=" T2 ">2</a>", 2, "https://a.example/1|https://a.example/2"},
    /* a '>' inside a quoted value does not end the tag */
    {"<a title=\"a>b\" href=\"https://a.example/\">", "<a title=\"a>b\" href=" T1 ">", 1, "https://a.example/"},
    /* the first of two hrefs is the link, as in a browser */
    {"<a href=\"https://a.example/\" href=\"https://b.example/\">",
     "<a href=" T1 " href=\"https://b.example/\">", 1, "https://a.example/"},
    {"<a data-href=\"https://a.example/\" href=\"https://b.example/\">",
     "<a data-href=\"https://a.example/\" href=" T1 ">", 1, "https://b.example/"},
    /* white space around the URL is dropped, as browsers do */
    {"<a href=\"\n  https://a.example/s \">", "<a href=" T1 ">", 1, "https://a.example/s"},

    /* entities decoded before the callback; the answer escaped */
    {"<a href=\"https://a.example/?p=1&amp;q=2\">", "<a href=" T1 ">", 1, "https://a.example/?p=1&q=2"},
    {"<a href=\"https://a.example/?p=1&#38;q=2&#x26;r=3&#X26s\">", "<a href=" T1 ">", 1,
     "https://a.example/?p=1&q=2&r=3&s"},
    {"<a href=\"https://a.example/?a=&apos;x&apos;&AMP;b=1&AMP\">", "<a href=" T1 ">", 1,
     "https://a.example/?a='x'&b=1&"},
    {"<a href=\"https://a.example/caf&#233;\">", "<a href=" T1 ">", 1, "https://a.example/caf\xc3\xa9"},
    /* no ';': text when letters, digits or '=' follow, or not a legacy name */
    {"<a href=\"https://a.example/?a=1&utm_source=x&ampx=2&copy=3&notify=4\">", "<a href=" T1 ">", 1,
     "https://a.example/?a=1&utm_source=x&ampx=2&copy=3&notify=4"},
    {"<a href=\"https://a.example/?a=1&amp\">", "<a href=" T1 ">", 1, "https://a.example/?a=1&"},
    {"<a href=\"https://a.example/?a&#\">", "<a href=" T1 ">", 1, "https://a.example/?a&#"},
    /* what this decoder cannot be sure a browser reads: left alone */
    {"<a href=\"https://a.example/?a=1&copy;\">", NULL, 0, ""},
    {"<a href=\"https://a.example/?a=1&para\">", NULL, 0, ""},
    {"<a href=\"https://a.example/?a=1&nbsp&b\">", NULL, 0, ""},
    {"<a href=\"https://a.example/&#150;\">", NULL, 0, ""},
    {"<a href=\"https://a.example/&#0;x\">", "<a href=" T1 ">", 1, "https://a.example/\xef\xbf\xbdx"},

    /* never offered: other schemes, relative, the unsubscribe URL,
     * template leftovers, broken URLs */
    {"<a href=\"mailto:a@b.example\">m</a><a href=\"tel:+331\">t</a><a href=\"#top\">#</a>"
     "<a href=\"/path\">r</a><a href=\"page.html\">r</a><a href=\"//a.example/\">p</a>"
     "<a href=\"javascript:alert(1)\">j</a><a href=\"data:text/html,x\">d</a>"
     "<a href=\"ftp://a.example/\">f</a><a href=\"https://\">e</a><a href=\"\">e</a><a href>e</a>"
     "<a href=>e</a><a name=x>n</a>",
     NULL, 0, ""},
    {"<a href=\"https://p.example/u/tok_AbC?x=1&amp;y=2\">unsubscribe</a>", NULL, 0, ""},
    {"<a href=\"https://a.example/{{first_name}}\">x</a><a href=\"https://a.example/?n=%7B%7Bx%7d%7d\">y</a>"
     "<a href=\"https://a.example/}}\">z</a>",
     NULL, 0, ""},
    {"<a href=\"https://a.example/a b\">x</a><a href=\"https://a.example/\ta\">y</a>", NULL, 0, ""},
    {"<a href=https://a.example/<b>x</a><a href='https://a.example/\"'>y</a><a href=\"https://a.example/`\">z</a>"
     "<a href=\"https://a.example/\\x\">w</a><a href=\"https://a.example/?a=&quot;&lt;&gt;\">v</a>",
     NULL, 0, ""},

    /* not links: other tags and attributes, text, comments, raw text */
    {"<link href=\"https://a.example/s.css\"><img src=\"https://a.example/i.png\">"
     "<abbr href=\"https://a.example/\">x</abbr><base href=\"https://a.example/\">",
     NULL, 0, ""},
    {"<p>see https://a.example/ now</p>", NULL, 0, ""},
    {"<!-- <a href=\"https://a.example/c\"> --><a href=\"https://b.example/\">",
     "<!-- <a href=\"https://a.example/c\"> --><a href=" T1 ">", 1, "https://b.example/"},
    {"<!--><a href=\"https://a.example/\"><!---><a href=\"https://b.example/\">",
     "<!--><a href=" T1 "><!---><a href=" T2 ">", 2, "https://a.example/|https://b.example/"},
    {"<script>var s = '<a href=\"https://a.example/\">';</script ><a href=\"https://b.example/\">",
     "<script>var s = '<a href=\"https://a.example/\">';</script ><a href=" T1 ">", 1, "https://b.example/"},
    {"<STYLE>a[x='<a href=\"https://a.example/\">']{}</style><a href=\"https://b.example/\">",
     "<STYLE>a[x='<a href=\"https://a.example/\">']{}</style><a href=" T1 ">", 1, "https://b.example/"},
    {"<script></scripts><a href=\"https://a.example/\"></script>", NULL, 0, ""},
    {"<title><a href=\"https://a.example/\"></title><textarea><a href=\"https://a.example/\"></textarea>",
     NULL, 0, ""},
    {"<!DOCTYPE html><?xml x?></p x=\">\"><a href=\"https://a.example/\">",
     "<!DOCTYPE html><?xml x?></p x=\">\"><a href=" T1 ">", 1, "https://a.example/"},
    {"a < b and 1<2 <a href=\"https://a.example/\">", "a < b and 1<2 <a href=" T1 ">", 1, "https://a.example/"},

    /* the callback leaves one */
    {"<a href=\"https://a.example/skip\">s</a><a href=\"https://b.example/\">b</a>",
     "<a href=\"https://a.example/skip\">s</a><a href=" T1 ">b</a>", 1, "https://a.example/skip|https://b.example/"},

    /* malformed: from the tag or quote never closed on, copied as it is */
    {"<a href=\"https://a.example/\">ok</a><a href=\"https://b.example/",
     "<a href=" T1 ">ok</a><a href=\"https://b.example/", 1, "https://a.example/"},
    {"<a href=https://a.example/", NULL, 0, ""},
    {"<a href='https://a.example/'", NULL, 0, ""},
    {"<a href=\"https://a.example/\">x<!-- <a href=\"https://b.example/\">",
     "<a href=" T1 ">x<!-- <a href=\"https://b.example/\">", 1, "https://a.example/"},
    {"<script><a href=\"https://a.example/\">", NULL, 0, ""},
    {"<", NULL, 0, ""},
    {"", NULL, 0, ""},
};

static struct tracker tracker_new(void)
{
    struct tracker t = {0};
    buf_adds(&t.seen, ""); /* so seen.p is never NULL */
    return t;
}

typedef int (*rewrite_fn)(const char *, size_t, const struct linkrewrite_opts *, struct buf *, int *);

/* Each row through rewrite: its output (the input when out is NULL), how
 * many links it tracked, and the URLs the callback saw. */
static void run_rows(const struct html_row *rows, size_t n, rewrite_fn rewrite)
{
    for (size_t i = 0; i < n; i++) {
        const struct html_row *r = &rows[i];
        struct tracker t = tracker_new();
        struct linkrewrite_opts o = {.track = track, .ctx = &t, .unsubscribe_url = UNSUB};
        struct buf out = {0};
        int count = -1;
        int rc = rewrite(r->in, strlen(r->in), &o, &out, &count);
        const char *want = r->out ? r->out : r->in;
        if (rc != 0 || strcmp(out.p, want) != 0 || count != r->count || strcmp(t.seen.p, r->seen) != 0)
            fail_msg("row %zu: %s\n  rc %d count %d (want %d)\n  got  %s\n  want %s\n  seen %s\n  want %s", i,
                     r->in, rc, count, r->count, out.p, want, t.seen.p, r->seen);
        buf_free(&out);
        buf_free(&t.seen);
    }
}

static void test_html(void **state)
{
    (void)state;
    run_rows(html_rows, sizeof html_rows / sizeof html_rows[0], linkrewrite_html);
}

/* The tracked URL is escaped for a double-quoted attribute, whatever the
 * callback gives. */
static void test_escaping(void **state)
{
    (void)state;
    struct tracker t = tracker_new();
    t.answer = "https://t.example/c?a=\"x\"&b=<y>'z'";
    struct linkrewrite_opts o = {.track = track, .ctx = &t};
    struct buf out = {0};
    int count;
    const char *in = "<a href='https://a.example/'>";
    assert_int_equal(linkrewrite_html(in, strlen(in), &o, &out, &count), 0);
    assert_string_equal(out.p, "<a href=\"https://t.example/c?a=&quot;x&quot;&amp;b=&lt;y&gt;'z'\">");
    assert_int_equal(count, 1);
    buf_free(&out);
    buf_free(&t.seen);
}

/* A negative answer stops the rewrite and is returned; out keeps what
 * was there before the call, plus a part of the document. */
static void test_callback_error(void **state)
{
    (void)state;
    struct tracker t = tracker_new();
    struct linkrewrite_opts o = {.track = track, .ctx = &t};
    struct buf out = {0};
    buf_adds(&out, "kept:");
    int count;
    const char *in = "<a href=\"https://a.example/\"><a href=\"https://a.example/fail\">"
                     "<a href=\"https://c.example/\">";
    assert_int_equal(linkrewrite_html(in, strlen(in), &o, &out, &count), -EIO);
    assert_memory_equal(out.p, "kept:", 5);
    assert_string_equal(t.seen.p, "https://a.example/|https://a.example/fail");
    const char *text = "x https://a.example/fail y";
    assert_int_equal(linkrewrite_text(text, strlen(text), &o, &out, &count), -EIO);
    buf_free(&out);
    buf_free(&t.seen);
}

#define TT1 "https://t.example/c?k=1&v=1"
#define TT2 "https://t.example/c?k=2&v=1"

static const struct html_row text_rows[] = {
    {"See https://a.example/x.", "See " TT1 ".", 1, "https://a.example/x"},
    {"See https://a.example/x, https://b.example/y; ok", "See " TT1 ", " TT2 "; ok", 2,
     "https://a.example/x|https://b.example/y"},
    {"Really? https://a.example/!?", "Really? " TT1 "!?", 1, "https://a.example/"},
    {"(https://a.example/wiki/Foo_(bar))", "(" TT1 ")", 1, "https://a.example/wiki/Foo_(bar)"},
    {"(see https://a.example/p)", "(see " TT1 ")", 1, "https://a.example/p"},
    {"[https://a.example/a[1]]", "[" TT1 "]", 1, "https://a.example/a[1]"},
    {"<https://a.example/q?a=1&b=2>", "<" TT1 ">", 1, "https://a.example/q?a=1&b=2"},
    {"\"https://a.example/\" 'https://b.example/'", "\"" TT1 "\" '" TT2 "'", 2,
     "https://a.example/|https://b.example/"},
    {"HTTP://A.EXAMPLE/*_~:", TT1 "*_~:", 1, "HTTP://A.EXAMPLE/"},
    {"line\nhttps://a.example/\r\nnext", "line\n" TT1 "\r\nnext", 1, "https://a.example/"},
    {"caf\xc3\xa9 https://a.example/caf\xc3\xa9 ok", "caf\xc3\xa9 " TT1 " ok", 1, "https://a.example/caf\xc3\xa9"},
    /* not links */
    {"xhttps://a.example/ 1http://a.example/ https:// http:/a.example ftp://a.example/ mailto:a@b.example",
     NULL, 0, ""},
    {"unsubscribe: " UNSUB, NULL, 0, ""},
    {"https://a.example/{{first_name}} https://a.example/skip", NULL, 0, "https://a.example/skip"},
    {"", NULL, 0, ""},
};

static void test_text(void **state)
{
    (void)state;
    run_rows(text_rows, sizeof text_rows / sizeof text_rows[0], linkrewrite_text);
}

/* An unsubscribe URL whose token ends in '_' (a base64url token does,
 * one time in 64): a bare-URL reader would cut the '_' as punctuation;
 * the text part must still leave the whole URL as written. */
static void test_text_unsubscribe_ending_in_underscore(void **state)
{
    (void)state;
    static const char unsub[] = "https://p.example/u/AbCd_";
    static const char text[] = "Stop: https://p.example/u/AbCd_ and https://a.example/x";
    struct tracker t = tracker_new();
    struct linkrewrite_opts o = {.track = track, .ctx = &t, .unsubscribe_url = unsub};
    struct buf out = {0};
    int count = -1;
    assert_int_equal(linkrewrite_text(text, strlen(text), &o, &out, &count), 0);
    assert_string_equal(out.p, "Stop: https://p.example/u/AbCd_ and " TT1);
    assert_int_equal(count, 1);
    assert_string_equal(t.seen.p, "https://a.example/x");
    buf_free(&out);
    buf_free(&t.seen);
}

static size_t count_byte(const char *s, size_t n, char c)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++)
        k += s[i] == c;
    return k;
}

static int leave_all(void *ctx, const char *url, struct buf *tracked)
{
    (void)ctx;
    (void)url;
    (void)tracked;
    return 0;
}

/* Every prefix of a document that has every construct, in a buffer of
 * exactly its size (ASan catches a read past the end): with nothing
 * tracked, the output is the input; tracked, it has the same tags. */
static void test_truncated(void **state)
{
    (void)state;
    const char *doc =
        "<!DOCTYPE html><html><head><title>a<a href=x></title><style>p{}</style></head>"
        "<body><!-- c <a href=\"https://c.example/\"> --><p>Hi &amp; https://x.example/ bye.</p>"
        "<a class='k' HREF=\"https://a.example/?p=1&amp;q=&#x26;&copy=2\" title=\"a>b\">A</a>"
        "<area href=https://b.example/m alt=m><a href='mailto:a@b.example'>m</a>"
        "<script>if (a<b) x='<a href=\"https://s.example/\">';</script>"
        "<a href=\"" UNSUB "\">u</a>(https://w.example/F_(b)).</body></html>";
    size_t len = strlen(doc);
    for (size_t n = 0; n <= len; n++) {
        char *copy = malloc(n ? n : 1);
        assert_non_null(copy);
        memcpy(copy, doc, n);
        struct linkrewrite_opts o = {.track = leave_all, .unsubscribe_url = UNSUB};
        struct buf out = {0};
        int count;
        assert_int_equal(linkrewrite_html(copy, n, &o, &out, &count), 0);
        if (out.len != n || memcmp(out.p, copy, n) != 0 || count != 0)
            fail_msg("html cut at %zu: changed with nothing tracked", n);
        buf_clear(&out);
        assert_int_equal(linkrewrite_text(copy, n, &o, &out, &count), 0);
        if (out.len != n || memcmp(out.p, copy, n) != 0 || count != 0)
            fail_msg("text cut at %zu: changed with nothing tracked", n);

        struct tracker t = tracker_new();
        o.track = track;
        o.ctx = &t;
        buf_clear(&out);
        assert_int_equal(linkrewrite_html(copy, n, &o, &out, &count), 0);
        if (count_byte(out.p, out.len, '<') != count_byte(copy, n, '<') || count > 2)
            fail_msg("html cut at %zu: %d links, tags changed: %s", n, count, out.p);
        buf_clear(&out);
        assert_int_equal(linkrewrite_text(copy, n, &o, &out, &count), 0);
        buf_free(&out);
        buf_free(&t.seen);
        free(copy);
    }
}

/* Documents stitched at random from the pieces HTML and URLs are made
 * of (a fixed seed: the same ones each run), each in a buffer of exactly
 * its size: nothing tracked leaves every byte as it was, and tracking
 * never adds a tag nor rewrites more links than there are <a and <area. */
static void test_random(void **state)
{
    (void)state;
    static const char *const pieces[] = {
        "<a", "<A", "<area", " href=", " HREF = ", "\"", "'", "https://a.example/", "http://b.example/p?q",
        "&amp;", "&#38", "&copy", "&", ";", "<!--", "-->", "<script>", "</script", "<style>", "</", ">", " ",
        "\n", "{{", "}}", "mailto:x", "#f", "(", ")", ".", "=", "/", "x", "<!", "<?", UNSUB,
    };
    uint32_t seed = 12345;
    char doc[512];
    for (int round = 0; round < 20000; round++) {
        size_t len = 0;
        seed = seed * 1103515245u + 12345u;
        int npieces = (int)(seed >> 16) % 24;
        for (int k = 0; k < npieces; k++) {
            seed = seed * 1103515245u + 12345u;
            const char *p = pieces[(seed >> 16) % (sizeof pieces / sizeof pieces[0])];
            size_t pl = strlen(p);
            if (len + pl > sizeof doc)
                break;
            memcpy(doc + len, p, pl);
            len += pl;
        }
        char *copy = malloc(len ? len : 1);
        assert_non_null(copy);
        memcpy(copy, doc, len);
        struct linkrewrite_opts o = {.track = leave_all, .unsubscribe_url = UNSUB};
        struct buf out = {0};
        int count;
        assert_int_equal(linkrewrite_html(copy, len, &o, &out, &count), 0);
        if (out.len != len || memcmp(out.p, copy, len) != 0 || count != 0)
            fail_msg("round %d: changed with nothing tracked: %.*s", round, (int)len, copy);
        buf_clear(&out);
        assert_int_equal(linkrewrite_text(copy, len, &o, &out, &count), 0);
        if (out.len != len || memcmp(out.p, copy, len) != 0 || count != 0)
            fail_msg("round %d: text changed with nothing tracked: %.*s", round, (int)len, copy);

        struct tracker t = tracker_new();
        o.track = track;
        o.ctx = &t;
        buf_clear(&out);
        assert_int_equal(linkrewrite_html(copy, len, &o, &out, &count), 0);
        size_t anchors = 0;
        for (size_t i = 0; i + 1 < len; i++)
            anchors += copy[i] == '<' && (copy[i + 1] == 'a' || copy[i + 1] == 'A');
        if (count_byte(out.p, out.len, '<') != count_byte(copy, len, '<') || (size_t)count > anchors)
            fail_msg("round %d: %d links of %zu, tags changed:\n  %.*s\n  %s", round, count, anchors, (int)len,
                     copy, out.p);
        buf_clear(&out);
        assert_int_equal(linkrewrite_text(copy, len, &o, &out, &count), 0);
        buf_free(&out);
        buf_free(&t.seen);
        free(copy);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_html),
        cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_callback_error),
        cmocka_unit_test(test_text),
        cmocka_unit_test(test_text_unsubscribe_ending_in_underscore),
        cmocka_unit_test(test_truncated),
        cmocka_unit_test(test_random),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
