/* Unit test of preview.c, what `relance preview` and the API's preview
 * share, without a database: which account a preview is sent from and
 * why (rows: the one asked for, in or out of the pool, unknown; the
 * enrollment's; the pool's first; none), and a composed message read back
 * into the reader's view (headers decoded, text and HTML parts with LF
 * line ends, values given by hand winning over the contact's fields). */
#include "config.h"
#include "preview.h"
#include "sequence.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static const char config_yaml[] = "pools:\n"
                                  "  main:\n"
                                  "    accounts:\n"
                                  "      - {email: ann@acme.example, smtp: smtps://smtp.acme.example}\n"
                                  "      - {email: bob@acme.example, smtp: smtps://smtp.acme.example}\n"
                                  "  other:\n"
                                  "    accounts:\n"
                                  "      - {email: cid@acme.example, smtp: smtps://smtp.acme.example}\n";

static const char sequence_yaml[] = "name: s\n"
                                    "sender_pool: main\n"
                                    "schedule: {timezone: UTC, window: \"09:00-17:00\"}\n"
                                    "steps:\n"
                                    "  - id: one\n"
                                    "    subject: \"Café, {{first_name}}\"\n"
                                    "    body: \"Hi {{first_name}} at {{company | your team}}.\\nBye.\"\n"
                                    "    html: \"<p>Hi {{first_name}}</p>\"\n"
                                    "  - {id: two, wait: 2 days, body: \"Again.\"}\n";

static struct sequence *parse_sequence(const char *pool)
{
    char yaml[1024];
    snprintf(yaml, sizeof yaml, "%s", sequence_yaml);
    if (pool) {
        char *p = strstr(yaml, "main");
        char rest[1024];
        snprintf(rest, sizeof rest, "%s", p + 4);
        snprintf(p, sizeof yaml - (size_t)(p - yaml), "%s%s", pool, rest);
    }
    struct sequence_options opt = {NULL, NULL, NULL};
    struct sequence *seq = NULL;
    struct sequence_diags d;
    int rc = sequence_parse("s.yaml", yaml, strlen(yaml), &opt, &seq, &d);
    char first[600] = "";
    if (d.n)
        sequence_diag_format(&d, 0, first, sizeof first);
    sequence_diags_free(&d);
    if (rc != 0)
        fail_msg("the sequence: %s", first);
    return seq;
}

static void test_account(void **state)
{
    (void)state;
    char err[400];
    struct config *cfg = config_parse("c.yaml", config_yaml, strlen(config_yaml), err, sizeof err);
    if (!cfg)
        fail_msg("config: %s", err);
    struct sequence *seq = parse_sequence(NULL), *lonely = parse_sequence("nowhere");
    struct row {
        const struct config *cfg;
        const struct sequence *seq;
        const char *wanted, *enrolled;
        const char *want_email; /* NULL: a placeholder */
        int want_failed;
        const char *want_why;
    } rows[] = {
        {cfg, seq, "ann@acme.example", NULL, "ann@acme.example", 0, "--account"},
        {cfg, seq, "bob@acme.example", "ann@acme.example", "bob@acme.example", 0, "--account"},
        {cfg, seq, "cid@acme.example", NULL, "cid@acme.example", 0, "--account; not in the sequence's pool main"},
        {cfg, seq, "zed@acme.example", NULL, NULL, 1, NULL},
        {NULL, seq, "ann@acme.example", NULL, NULL, 1, NULL},
        {cfg, seq, NULL, "bob@acme.example", "bob@acme.example", 0,
         "the account the enrollment of p@x.example sends from"},
        {cfg, seq, NULL, "gone@acme.example", "ann@acme.example", 0,
         "the first of pool main; a new enrollment gets the pool's least-used account, --account chooses"},
        {cfg, seq, NULL, NULL, "ann@acme.example", 0,
         "the first of pool main; a new enrollment gets the pool's least-used account, --account chooses"},
        {cfg, lonely, NULL, NULL, NULL, 0, "a placeholder: no account of pool nowhere in the configuration"},
        {NULL, seq, NULL, "bob@acme.example", NULL, 0, "a placeholder: no account of pool main in the configuration"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        char why[300] = "";
        int failed = -1;
        const struct config_account *a = preview_account(rows[i].cfg, rows[i].seq, rows[i].wanted, "--account",
                                                         rows[i].enrolled, "p@x.example", why, sizeof why, &failed);
        if (failed != rows[i].want_failed)
            fail_msg("row %zu: failed %d, want %d", i, failed, rows[i].want_failed);
        const char *got = a ? a->email : NULL;
        if ((got == NULL) != (rows[i].want_email == NULL) || (got && strcmp(got, rows[i].want_email) != 0))
            fail_msg("row %zu: account %s, want %s", i, got ? got : "(none)",
                     rows[i].want_email ? rows[i].want_email : "(none)");
        if (rows[i].want_why && strcmp(why, rows[i].want_why) != 0)
            fail_msg("row %zu: why '%s', want '%s'", i, why, rows[i].want_why);
    }
    sequence_free(seq);
    sequence_free(lonely);
    config_free(cfg);
}

static void test_compose_and_view(void **state)
{
    (void)state;
    struct sequence *seq = parse_sequence(NULL);
    /* the contact's packed fields: key US value RS ... */
    const char *fields = "email\x1fp@x.example\x1e" "first_name\x1f" "Zoé";
    const char *keys[] = {"first_name", "first_name"}, *values[] = {"Ana", "Éva"};
    struct row {
        size_t n_vars;
        size_t step;
        const char *subject, *text; /* NULL: no header / part */
        int html;
    } rows[] = {
        {0, 0, "Café, Zoé", "Hi Zoé at your team.\nBye.\n", 1},
        {2, 0, "Café, Éva", "Hi Éva at your team.\nBye.\n", 1}, /* the last value given wins */
        {0, 1, "Re: Café, Zoé", "Again.\n", 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct preview_input in = {seq, &seq->steps[rows[i].step], keys, values, rows[i].n_vars, fields, NULL, 0, NULL};
        struct compose_result res;
        char err[300];
        int rc = preview_compose(&in, &res, err, sizeof err);
        if (rc != COMPOSE_OK)
            fail_msg("row %zu: compose %d: %s", i, rc, err);
        assert_non_null(strstr(res.text, "\r\n")); /* the bytes are SMTP's */
        struct preview_view v;
        assert_int_equal(preview_view_parse(res.text, res.len, &v), 0);
        assert_string_equal(v.headers[0], "Sender <sender@example.invalid>");
        assert_string_equal(v.headers[1], "p@x.example");
        if (!v.headers[2] || strcmp(v.headers[2], rows[i].subject) != 0)
            fail_msg("row %zu: subject '%s', want '%s'", i, v.headers[2] ? v.headers[2] : "(none)", rows[i].subject);
        assert_string_equal(v.headers[4], "<preview@example.invalid>");
        if (rows[i].step > 0)
            assert_string_equal(v.headers[5], "<previous-step@example.invalid>");
        else
            assert_null(v.headers[5]);
        assert_non_null(v.text);
        /* inside a multipart the last line break belongs to the boundary */
        size_t want = strlen(rows[i].text) - (rows[i].html ? 1 : 0);
        if (v.text_len != want || memcmp(v.text, rows[i].text, want) != 0)
            fail_msg("row %zu: text '%s', want '%s'", i, v.text, rows[i].text);
        if (rows[i].html) {
            assert_non_null(v.html);
            assert_non_null(strstr(v.html, rows[i].n_vars ? "<p>Hi Éva</p>" : "<p>Hi Zoé</p>"));
        } else {
            assert_null(v.html);
        }
        preview_view_free(&v);
        compose_result_free(&res);
    }
    /* a field with no value and no fallback */
    struct preview_input in = {seq, &seq->steps[0], NULL, NULL, 0, "email\x1fp@x.example", NULL, 0, NULL};
    struct compose_result res;
    char err[300];
    assert_int_equal(preview_compose(&in, &res, err, sizeof err), COMPOSE_MISSING_FIELD);
    assert_string_equal(res.missing, "first_name");
    sequence_free(seq);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_account),
        cmocka_unit_test(test_compose_and_view),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
