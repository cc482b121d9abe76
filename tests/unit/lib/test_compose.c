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

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_sender_fields),
        cmocka_unit_test(test_sender_from_only),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
