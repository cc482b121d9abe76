/* Unit tests for compose's sender fields: {{sender.NAME}} is the sending
 * account's and nothing else's (a contact field of the same name does not
 * shadow it), first_name falls back to the first word of from_name, the
 * signature keeps its lines (a <br> in HTML), and a field the account
 * lacks is missing under its full name, so the scheduler holds the
 * enrollment as missing_field:sender.NAME. The rest of compose (threading,
 * variants, MIME) is covered by the integration tests against Postfix. */
#include "compose.h"
#include "linktoken.h"
#include "sequence.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char yaml[] = "name: t\nsender_pool: p\nschedule:\n  timezone: UTC\n  window: \"09:00-17:00\"\n"
                           "steps:\n  - id: a\n    subject: \"Hi {{sender.first_name}}\"\n"
                           "    body: \"{{sender.first_name}} ({{sender.name}}, {{sender.email}})\\n{{sender.signature}}\"\n"
                           "    html: \"<p>{{sender.signature}}</p>\"\n";

/* The contact has a field named like a sender field: it must not win. */
static const char *contact_lookup(const char *field, void *arg)
{
    (void)arg;
    if (strcmp(field, "sender.first_name") == 0 || strcmp(field, "first_name") == 0)
        return "Contact";
    return NULL;
}

struct row {
    struct compose_sender sender;
    const char *subject;   /* the rendered subject */
    const char *body;      /* expected inside the message text (the text part, CRLF) */
    const char *missing;   /* or the field reported missing */
};

static const struct row rows[] = {
    {{"bob@acme.example", "Bob Dupont", NULL, "Bob Dupont\nAcme"}, "Hi Bob",
     "Bob (Bob Dupont, bob@acme.example)\r\nBob Dupont\r\nAcme", NULL},
    {{"e@beta.example", "Élodie Roy", "Élo", "Élodie\n\nBeta"}, "Hi Élo", NULL, NULL},
    {{"x@acme.example", "  Ann  Lee", NULL, "A"}, "Hi Ann", "Ann (Ann  Lee, x@acme.example)\r\nA", NULL},
    {{"bob@acme.example", "Bob Dupont", NULL, NULL}, NULL, NULL, "sender.signature"},
    {{"bob@acme.example", NULL, NULL, "S"}, NULL, NULL, "sender.first_name"},
};

/* The sequence of the YAML src; the test fails when it does not parse. */
static struct sequence *parsed(const char *src)
{
    struct sequence *seq = NULL;
    struct sequence_diags d = {0};
    const struct sequence_options opts = {NULL, NULL, NULL};
    if (sequence_parse("t.yaml", src, strlen(src), &opts, &seq, &d) != 0)
        fail_msg("does not parse: %s", src);
    sequence_diags_free(&d);
    return seq;
}

static void test_sender_fields(void **state)
{
    (void)state;
    struct sequence *seq = parsed(yaml);
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        const struct row *r = &rows[i];
        struct compose_input in = {
            .seq = seq,
            .to_addr = "ada@prospect.example",
            .lookup = contact_lookup,
            .from_addr = r->sender.email,
            .from_name = r->sender.name,
            .sender = &r->sender,
            .message_id = "<m@acme.example>",
            .date = 1767225600,
        };
        struct compose_result res;
        char err[300];
        int rc = compose_message(&in, &res, err, sizeof err);
        if (r->missing) {
            if (rc != COMPOSE_MISSING_FIELD || strcmp(res.missing, r->missing) != 0)
                fail_msg("row %zu: rc %d missing '%s', expected %s", i, rc, rc == 1 ? res.missing : "", r->missing);
            continue;
        }
        if (rc != COMPOSE_OK)
            fail_msg("row %zu: rc %d (%s)", i, rc, err);
        assert_string_equal(res.subject, r->subject);
        if (r->body && !strstr(res.text, r->body))
            fail_msg("row %zu: '%s' not in the message:\n%s", i, r->body, res.text);
        compose_result_free(&res);
    }
    sequence_free(seq);
}

/* Without a struct compose_sender the From is all there is: email and
 * name from it, the rest missing. */
static void test_sender_from_only(void **state)
{
    (void)state;
    struct compose_sender none = {0};
    char buf[64];
    assert_null(compose_sender_field(&none, "first_name", buf, sizeof buf));
    struct compose_sender s = {"a@b.example", "Zoé Durand-Lefèvre", NULL, NULL};
    assert_string_equal(compose_sender_field(&s, "first_name", buf, sizeof buf), "Zoé");
    assert_string_equal(compose_sender_field(&s, "email", buf, sizeof buf), "a@b.example");
    assert_null(compose_sender_field(&s, "signature", buf, sizeof buf));
    assert_null(compose_sender_field(&s, "phone", buf, sizeof buf));
}

/* Unsubscribing: the headers a sequence's unsubscribe settings give, with
 * and without a one-click link, the footer in both parts and the
 * {{unsubscribe_url}} field. */
struct unsub_row {
    const char *unsubscribe;   /* the sequence's unsubscribe: value, or NULL */
    const char *url;           /* the caller's link, or NULL */
    const char *want[4];       /* in the message */
    const char *not[3];        /* not in it */
};

#define URL "https://go.acme.example/u/dG9rZW4"
static const struct unsub_row unsub_rows[] = {
    {NULL, URL,
     {"List-Unsubscribe: <" URL ">,\r\n <mailto:bob@acme.example?subject=unsubscribe>\r\n",
      "List-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n", "Stop: " URL, NULL},
     {NULL}},
    /* no public_url: today's mailto-only header, the field a mailto: */
    {NULL, NULL,
     {"List-Unsubscribe: <mailto:bob@acme.example?subject=unsubscribe>\r\n",
      "Stop: mailto:bob@acme.example?subject=unsubscribe", NULL},
     {"List-Unsubscribe-Post", NULL}},
    {"{header: false}", URL, {"Stop: " URL, NULL}, {"List-Unsubscribe", NULL}},
    {"{footer: 'No more? {{unsubscribe_url}}'}", URL,
     /* (the html part is quoted-printable: = is =3D, long lines wrap) */
     {"Stop: " URL "\r\n\r\nNo more? " URL "\r\n", "<p>No more? <a href=3D\"https://go.acme.example/u/",
      "\">" URL "</a></p>", NULL},
     {"relance-unsubscribe-link", NULL}},
};

static void test_unsubscribe(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof unsub_rows / sizeof unsub_rows[0]; i++) {
        const struct unsub_row *r = &unsub_rows[i];
        char src[600];
        snprintf(src, sizeof src,
                 "name: t\nsender_pool: p\nschedule:\n  timezone: UTC\n  window: \"09:00-17:00\"\n%s%s%s"
                 "steps:\n  - id: a\n    subject: Hi\n    body: \"Stop: {{unsubscribe_url}}\"\n"
                 "    html: \"<html><body><p>Hi</p></body></html>\"\n",
                 r->unsubscribe ? "unsubscribe: " : "", r->unsubscribe ? r->unsubscribe : "",
                 r->unsubscribe ? "\n" : "");
        struct sequence *seq = parsed(src);
        struct compose_sender s = {"bob@acme.example", "Bob", NULL, NULL};
        struct compose_input in = {
            .seq = seq,
            .to_addr = "ada@prospect.example",
            .from_addr = s.email,
            .from_name = s.name,
            .sender = &s,
            .message_id = "<m@acme.example>",
            .date = 1767225600,
            .unsubscribe_url = r->url,
        };
        struct compose_result res;
        char err[300];
        if (compose_message(&in, &res, err, sizeof err) != COMPOSE_OK)
            fail_msg("row %zu: %s", i, err);
        for (size_t k = 0; r->want[k]; k++)
            if (!strstr(res.text, r->want[k]))
                fail_msg("row %zu: '%s' not in the message:\n%s", i, r->want[k], res.text);
        for (size_t k = 0; r->not[k]; k++)
            if (strstr(res.text, r->not[k]))
                fail_msg("row %zu: '%s' in the message:\n%s", i, r->not[k], res.text);
        /* the footer goes inside the html's body */
        const char *p = strstr(res.text, "<p>No more?");
        if (p)
            assert_true(p < strstr(res.text, "</body>"));
        compose_result_free(&res);
        sequence_free(seq);
    }
}

/* The message's text with quoted-printable's soft breaks and =3D undone,
 * enough to read the links back. */
static char *unqp(const char *s)
{
    char *out = malloc(strlen(s) + 1), *o = out;
    for (; *s; s++) {
        if (strncmp(s, "=\r\n", 3) == 0)
            s += 2;
        else if (strncmp(s, "=3D", 3) == 0)
            *o++ = '=', s += 2;
        else
            *o++ = *s;
    }
    *o = '\0';
    return out;
}

/* The token after the n-th (0-based) occurrence of prefix in s, opened
 * with secret into t; -1 when there is none or it does not open. */
static int token_at(const char *s, const char *prefix, int n, const char *secret, struct linktoken *t)
{
    const char *p = s;
    for (int i = 0; i <= n; i++) {
        p = strstr(p, prefix);
        if (!p)
            return -1;
        p += strlen(prefix);
    }
    size_t len = strspn(p, "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_");
    const char *secrets[1] = {secret};
    return linktoken_open(secrets, 1, p, len, t) < 0 ? -1 : 0;
}

/* Tracking: each html link through /c/ with its own destination and the
 * message's count of destinations signed in, the unsubscribe link and a
 * mailto: untouched, the text part only with text_links, the open image
 * last in the html's body; nothing without a base, a secret or the
 * sequence's track keys. */
static void test_tracking(void **state)
{
    (void)state;
    static const char secret[] = "0123456789abcdef0123456789abcdef";
    static const struct {
        const char *track;       /* the sequence's track: value, or NULL */
        const char *base;        /* the caller's track_base */
        int links, pixel, text;  /* links rewritten, the image added, the text's URL rewritten */
    } trows[] = {
        {"{clicks: true, opens: true}", "https://links.acme.example", 3, 1, 0},
        {"{clicks: true, text_links: true}", "https://links.acme.example", 4, 0, 1},
        {"{opens: true}", "https://links.acme.example", 0, 1, 0},
        {"{clicks: true, opens: true}", NULL, 0, 0, 0},
        {NULL, "https://links.acme.example", 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof trows / sizeof trows[0]; i++) {
        char src[900];
        snprintf(src, sizeof src,
                 "name: t\nsender_pool: p\nschedule:\n  timezone: UTC\n  window: \"09:00-17:00\"\n%s%s%s"
                 "unsubscribe: {footer: \"Stop: {{unsubscribe_url}}\"}\n"
                 "steps:\n  - id: a\n    subject: Hi\n    body: \"See https://acme.example/pricing today\"\n"
                 "    html: \"<html><body><p><a href='https://acme.example/pricing?a=1&amp;b=2'>Pricing</a> "
                 "<a href=https://acme.example/demo>Demo</a> <a href='https://acme.example/demo'>again</a> "
                 "<a href='mailto:bob@acme.example'>Bob</a> <a href='{{unsubscribe_url}}'>Stop</a></p>"
                 "</body></html>\"\n",
                 trows[i].track ? "track: " : "", trows[i].track ? trows[i].track : "", trows[i].track ? "\n" : "");
        struct sequence *seq = parsed(src);
        struct compose_sender s = {"bob@acme.example", "Bob", NULL, NULL};
        struct compose_input in = {
            .seq = seq,
            .to_addr = "ada@prospect.example",
            .from_addr = s.email,
            .from_name = s.name,
            .sender = &s,
            .message_id = "<m1@acme.example>",
            .date = 1767225600,
            .unsubscribe_url = "https://go.acme.example/u/dG9rZW4",
            .track_base = trows[i].base,
            .link_secret = secret,
        };
        struct compose_result res;
        char err[300];
        if (compose_message(&in, &res, err, sizeof err) != COMPOSE_OK)
            fail_msg("row %zu: %s", i, err);
        char *text = unqp(res.text);
        if (res.tracked_links != trows[i].links || res.open_pixel != trows[i].pixel)
            fail_msg("row %zu: %d links, pixel %d:\n%s", i, res.tracked_links, res.open_pixel, text);
        /* never rewritten */
        assert_non_null(strstr(text, "href='https://go.acme.example/u/dG9rZW4'"));
        assert_non_null(strstr(text, "mailto:bob@acme.example'"));
        /* nor the footer's link, in either part (text_links included) */
        assert_non_null(strstr(text, "Stop: https://go.acme.example/u/dG9rZW4\r\n"));
        assert_non_null(strstr(text, "<a href=\"https://go.acme.example/u/dG9rZW4\">"));
        struct linktoken t;
        if (trows[i].links >= 2) {
            static const char *const want[] = {"https://acme.example/pricing?a=1&b=2", "https://acme.example/demo",
                                               "https://acme.example/demo"};
            for (int k = 0; k < 3; k++) {
                if (token_at(text, "<a href=\"https://links.acme.example/c/", k, secret, &t) < 0)
                    fail_msg("row %zu: link %d has no token:\n%s", i, k, text);
                assert_int_equal(t.kind, 'c');
                assert_string_equal(t.message_id, "m1@acme.example");
                assert_int_equal(t.data[0], trows[i].text ? 3 : 2); /* distinct destinations, both parts */
                assert_int_equal(t.data_len, strlen(want[k]) + 1);
                assert_memory_equal(t.data + 1, want[k], strlen(want[k]));
            }
        } else {
            assert_null(strstr(text, "/c/"));
        }
        if (trows[i].text) {
            assert_int_equal(token_at(text, "See https://links.acme.example/c/", 0, secret, &t), 0);
            assert_memory_equal(t.data + 1, "https://acme.example/pricing", 28);
        } else {
            assert_non_null(strstr(text, "See https://acme.example/pricing today"));
        }
        const char *img = strstr(text, "<img src=\"https://links.acme.example/o/");
        if (trows[i].pixel) {
            assert_non_null(img);
            assert_int_equal(token_at(text, "<img src=\"https://links.acme.example/o/", 0, secret, &t), 0);
            assert_int_equal(t.kind, 'o');
            assert_int_equal(t.data_len, 0);
            assert_non_null(strstr(img, ".gif\" width=\"1\" height=\"1\" alt=\"\"></body>"));
        } else {
            assert_null(img);
        }
        free(text);
        compose_result_free(&res);
        sequence_free(seq);
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sender_fields),
        cmocka_unit_test(test_sender_from_only),
        cmocka_unit_test(test_unsubscribe),
        cmocka_unit_test(test_tracking),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
