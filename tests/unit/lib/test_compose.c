/* Unit tests for compose's sender fields: {{sender.NAME}} is the sending
 * account's and nothing else's (a contact field of the same name does not
 * shadow it), first_name falls back to the first word of from_name, the
 * signature keeps its lines (a <br> in HTML), and a field the account
 * lacks is missing under its full name, so the scheduler holds the
 * enrollment as missing_field:sender.NAME. The rest of compose (threading,
 * variants, MIME) is covered by the integration tests against Postfix. */
#include "compose.h"
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

static void test_sender_fields(void **state)
{
    (void)state;
    struct sequence *seq = NULL;
    struct sequence_diags d = {0};
    const struct sequence_options opts = {NULL, NULL, NULL};
    assert_int_equal(sequence_parse("t.yaml", yaml, strlen(yaml), &opts, &seq, &d), 0);
    sequence_diags_free(&d);
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
        struct sequence *seq = NULL;
        struct sequence_diags d = {0};
        const struct sequence_options opts = {NULL, NULL, NULL};
        if (sequence_parse("t.yaml", src, strlen(src), &opts, &seq, &d) != 0)
            fail_msg("row %zu: does not parse", i);
        sequence_diags_free(&d);
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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sender_fields),
        cmocka_unit_test(test_sender_from_only),
        cmocka_unit_test(test_unsubscribe),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
