/* Unit tests for sequence: the validator as a table of small files and
 * the diagnostics each must give, the model and its defaults, the
 * canonical JSON and content hash, and the weighted variant choice. The
 * corpus of whole files with exact lint output is in tests/sequences/,
 * checked by tests/integration/test_lint.py. */
#include "sequence.h"
#include "template.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

static int zone_exists(const char *name, void *arg)
{
    static const char *const zones[] = {"Europe/Paris", "UTC", "America/New_York", NULL};
    int *calls = arg;
    if (calls)
        (*calls)++;
    for (size_t i = 0; zones[i]; i++)
        if (strcmp(zones[i], name) == 0)
            return 1;
    return 0;
}

static const char *const pools[] = {"founders", "sdr", NULL};
static const struct sequence_options opts = {zone_exists, NULL, pools};

#define HEAD "name: t\nsender_pool: founders\nschedule:\n  timezone: UTC\n  window: \"09:00-17:00\"\n"
#define STEP1 "steps:\n  - id: a\n    subject: S\n    body: B\n"

struct row {
    const char *yaml;
    size_t errors, warnings;
    const char *first;     /* the first diagnostic as "line:col: message" */
};

static const struct row rows[] = {
    {HEAD STEP1, 0, 0, NULL},
    {HEAD STEP1 "  - id: b\n    wait: 2 days\n    body: C\n", 0, 0, NULL},
    {"", 1, 0, "1:1: the file is empty; a sequence needs name, sender_pool, schedule and steps"},
    {"[1, 2]", 1, 0, "1:1: a sequence file must be a mapping of keys (name, sender_pool, schedule, steps), not a list"},
    {"name: t\n", 3, 0, "1:1: missing required key 'sender_pool'"},
    {HEAD "stpes: []\n", 1, 0, "6:1: unknown key 'stpes' (did you mean 'steps'?)"},
    {HEAD STEP1 "name: u\n", 1, 0, "10:1: duplicate key 'name' (first at line 1)"},
    {"name: a--b\nsender_pool: founders\nschedule: {timezone: UTC, window: \"09:00-17:00\"}\n" STEP1, 1, 0,
     "1:7: name 'a--b' must be lower-case letters and digits, words joined by '-' (at most 64)"},
    {"name: -ab\nsender_pool: founders\nschedule: {timezone: UTC, window: \"09:00-17:00\"}\n" STEP1, 1, 0, NULL},
    {"name: t\nsender_pool: founder\nschedule: {timezone: UTC, window: \"09:00-17:00\"}\n" STEP1, 0, 1,
     "2:14: warning: sender_pool 'founder' is not a pool in the configuration (did you mean 'founders'?)"},
    {"name: t\nsender_pool: marketing\nschedule: {timezone: UTC, window: \"09:00-17:00\"}\n" STEP1, 0, 1,
     "2:14: warning: sender_pool 'marketing' is not a pool in the configuration"},
    {"name: t\nsender_pool: founders\nschedule: {window: \"09:00-17:00\"}\n" STEP1, 1, 0,
     "3:1: missing 'fallback_timezone' in schedule: it is required with timezone: contact (the default), for "
     "contacts without a zone"},
    {"name: t\nsender_pool: founders\nschedule: {timezone: contact, fallback_timezone: UTC, window: \"0:00-24:00\"}\n"
     STEP1, 0, 0, NULL},
    {"name: t\nsender_pool: founders\nschedule: {timezone: Europe/Pariss, window: \"09:00-17:00\"}\n" STEP1, 1, 0,
     "3:22: timezone: unknown time zone 'Europe/Pariss' (use an IANA name such as Europe/Paris or America/New_York)"},
    {"name: t\nsender_pool: founders\nschedule: {timezone: UTC, window: \"09:00-17:60\"}\n" STEP1, 1, 0, NULL},
    {"name: t\nsender_pool: founders\nschedule: {timezone: UTC, window: \"09:00 - 17:00\"}\n" STEP1, 0, 0, NULL},
    {"name: t\nsender_pool: founders\nschedule: {timezone: UTC, window: \"9:00-9:01\"}\n" STEP1, 0, 0, NULL},
    {"name: t\nsender_pool: founders\nschedule: {timezone: UTC, window: \"09:00-24:01\"}\n" STEP1, 1, 0, NULL},
    {"name: t\nsender_pool: founders\nschedule: {timezone: UTC, window: \"17:00-09:00\"}\n" STEP1, 1, 0,
     "3:35: window start 17:00 must be before its end 09:00 (a window cannot span midnight)"},
    {HEAD "  days: []\n" STEP1, 1, 0, "6:9: 'days' must name at least one day"},
    {HEAD "  days: [Mon]\n" STEP1, 1, 0, "6:10: unknown days entry 'Mon' (did you mean 'mon'?)"},
    {HEAD "  jitter: 13h\n" STEP1, 1, 0, "6:11: jitter must be at most 12h"},
    {HEAD "stop_on: []\n" STEP1, 0, 0, NULL},
    {HEAD STEP1 "    wait: 1h\n", 1, 0, "10:5: the first step takes no 'wait': it goes out at enrollment, inside the window"},
    {HEAD STEP1 "  - id: b\n    body: C\n", 1, 0, "10:5: step 'b' needs a 'wait' (how long after the previous step)"},
    {HEAD STEP1 "  - id: a\n    wait: 1h\n    body: C\n", 1, 0, "10:9: duplicate step id 'a' (first at line 7)"},
    {HEAD "steps:\n  - id: a\n    body: B\n", 1, 0, "7:5: the first step needs a 'subject'"},
    {HEAD "steps:\n  - id: a\n    subject: \"{{x\"\n    body: B\n", 1, 0,
     "8:15: subject of step 'a': unclosed '{{' (a field is written {{name}} on one line)"},
    {HEAD "steps:\n  - id: a\n    subject: S\n    body: |\n      line one\n      two {a||b}\n", 1, 0,
     "11:14: body of step 'a': empty spintax option"},
    {HEAD "steps:\n  - id: a\n    subject: S\n    body: >\n      line one\n      two {a||b}\n", 1, 0,
     "9:11: body of step 'a': empty spintax option"},
    {HEAD "steps:\n  - id: a\n    subject: S\n    body: \"x\\ty {a||b}\"\n", 1, 0,
     "9:11: body of step 'a': empty spintax option"},
    {HEAD "steps:\n  - id: a\n    subject: S\n    body: B\n    variants:\n      - weight: 0\n", 1, 0,
     "11:17: weight must be a whole number from 1 to 1000000, not '0'"},
    {HEAD "steps:\n  - id: a\n    subject: S\n    body: B\n    variants: []\n", 1, 0,
     "10:15: 'variants' must list at least one variant"},
    {HEAD "steps:\n  - id: a\n    body: B\n    variants:\n      - {weight: 1, subject: X}\n      - {weight: 2}\n", 1, 0,
     "11:9: variant 2 of the first step needs a 'subject' (the step has none)"},
    {HEAD STEP1 "  - id: b\n    wait: 1h\n    thread: false\n    body: C\n", 1, 0,
     "12:13: step 'b' has thread: false but no 'subject'; a new thread needs a subject"},
    {HEAD "steps:\n  - id: a\n    subject: \"" "0123456789012345678901234567890123456789"
          "01234567890123456789012345678901234567890\"\n    body: B\n", 0, 1,
     "8:14: warning: subject of step 'a' is 81 characters long; over 80 is often cut off"},
    {HEAD "steps:\n  - id: a\n    subject: S\n    body: http://a https://b HTTP://c https://d\n", 0, 1,
     "9:11: warning: body of step 'a' has 4 links; more than 3 hurts deliverability of cold email"},
    {HEAD "steps:\n  - id: a\n    subject: S\n    body: B\n    html: <p><img src=x></p>\n", 0, 1,
     "10:11: warning: html of step 'a' contains an image; images hurt deliverability of cold email"},
    {"name: &x t\n", 1, 0, "1:7: YAML anchors (&name) are not supported"},
    {"a:\n\tb: c\n", 1, 0, NULL},
    {"name: \"\\0\"\n", 4, 0, "1:1: missing required key 'sender_pool'"},
    /* unsubscribe and language */
    {HEAD "unsubscribe: {header: false, footer: \"Stop: {{ unsubscribe_url }}\"}\nlanguage: fr-CA\n" STEP1, 0, 0,
     NULL},
    {HEAD "unsubscribe: {header: maybe}\n" STEP1, 1, 0, "6:23: 'header' must be true or false, not 'maybe'"},
    {HEAD "unsubscribe: {heder: false}\n" STEP1, 1, 0,
     "6:15: unknown key 'heder' in unsubscribe (did you mean 'header'?)"},
    {HEAD "unsubscribe: false\n" STEP1, 1, 0,
     "6:14: 'unsubscribe' must be a mapping with 'header' and/or 'footer', not a scalar"},
    {HEAD "unsubscribe: {footer: \"Write back to stop\"}\n" STEP1, 0, 1,
     "6:23: warning: the unsubscribe footer has no {{unsubscribe_url}}: the prospect sees no link to opt out"},
    {HEAD "unsubscribe: {footer: \"{{unsubscribe_url\"}\n" STEP1, 1, 0, NULL},
    {HEAD "language: french\n" STEP1, 1, 0, "6:11: language 'french' must be a language tag such as en, fr or en-GB"},
    /* track */
    {HEAD "track: {clicks: true, opens: false, text_links: true}\n" STEP1, 0, 0, NULL},
    {HEAD "track: {clicks: sometimes}\n" STEP1, 1, 0, "6:17: 'clicks' must be true or false, not 'sometimes'"},
    {HEAD "track: {open: true}\n" STEP1, 1, 0, "6:9: unknown key 'open' in track (did you mean 'opens'?)"},
    {HEAD "track: true\n" STEP1, 1, 0, "6:8: 'track' must be a mapping with 'clicks' and/or 'opens', not a scalar"},
    {HEAD "track: {text_links: true}\n" STEP1, 0, 1, "6:21: warning: text_links does nothing without clicks: true"},
};

static void check_row(size_t i, const struct row *r)
{
    struct sequence *seq = NULL;
    struct sequence_diags d;
    int rc = sequence_parse("t.yaml", r->yaml, strlen(r->yaml), &opts, &seq, &d);
    char first[600] = "";
    if (d.n)
        sequence_diag_format(&d, 0, first, sizeof first);
    if (d.errors != r->errors || d.warnings != r->warnings)
        fail_msg("row %zu: %zu errors, %zu warnings (first: %s); expected %zu, %zu", i, d.errors, d.warnings, first,
                 r->errors, r->warnings);
    assert_int_equal(rc, r->errors ? -1 : 0);
    assert_true(r->errors ? seq == NULL : seq != NULL);
    if (r->first) {
        char want[600];
        snprintf(want, sizeof want, "t.yaml:%s", r->first);
        if (strcmp(first, want) != 0)
            fail_msg("row %zu:\n got  %s\n want %s", i, first, want);
    }
    for (size_t k = 1; k < d.n; k++) /* file order */
        assert_true(d.items[k - 1].line < d.items[k].line ||
                    (d.items[k - 1].line == d.items[k].line && d.items[k - 1].col <= d.items[k].col));
    sequence_free(seq);
    sequence_diags_free(&d);
}

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        check_row(i, &rows[i]);
}

static const char full[] =
    "# comment\n"
    "name: full-example\n"
    "description: Test sequence\n"
    "sender_pool: founders\n"
    "schedule:\n"
    "  timezone: contact\n"
    "  fallback_timezone: Europe/Paris\n"
    "  window: \"08:30-24:00\"\n"
    "  days: [sun, mon]\n"
    "  jitter: 90s\n"
    "stop_on: [company_reply, reply]\n"
    "steps:\n"
    "  - id: intro\n"
    "    subject: \"Hello \\\"{{company}}\\\"\"\n"
    "    body: |\n"
    "      Hi {{first_name | there}},\n"
    "      Café.\n"
    "  - id: bump\n"
    "    wait: 3 business days\n"
    "    body: Bump\n"
    "  - id: split\n"
    "    wait: 1 day 4h\n"
    "    thread: false\n"
    "    subject: New\n"
    "    body: Base\n"
    "    html: <p>Base</p>\n"
    "    variants:\n"
    "      - weight: 3\n"
    "      - weight: 1\n"
    "        body: Other\n";

static const char full_json[] =
    "{\"format\":1,\"name\":\"full-example\",\"description\":\"Test sequence\",\"sender_pool\":\"founders\","
    "\"schedule\":{\"timezone\":\"contact\",\"fallback_timezone\":\"Europe/Paris\","
    "\"window\":{\"start\":\"08:30\",\"end\":\"24:00\",\"start_minute\":510,\"end_minute\":1440},"
    "\"days\":[\"mon\",\"sun\"],\"jitter_seconds\":90},\"stop_on\":[\"reply\",\"company_reply\"],"
    "\"steps\":[{\"id\":\"intro\",\"wait\":{\"text\":\"0\",\"seconds\":0,\"days\":0,\"business_days\":0},"
    "\"subject\":\"Hello \\\"{{company}}\\\"\",\"body\":\"Hi {{first_name | there}},\\nCafé.\\n\",\"html\":null,"
    "\"thread\":false,\"variants\":[]},"
    "{\"id\":\"bump\",\"wait\":{\"text\":\"3 business days\",\"seconds\":0,\"days\":0,\"business_days\":3},"
    "\"subject\":null,\"body\":\"Bump\",\"html\":null,\"thread\":true,\"variants\":[]},"
    "{\"id\":\"split\",\"wait\":{\"text\":\"1 day 4h\",\"seconds\":14400,\"days\":1,\"business_days\":0},"
    "\"subject\":\"New\",\"body\":\"Base\",\"html\":\"<p>Base</p>\",\"thread\":false,\"variants\":["
    "{\"weight\":3,\"subject\":\"New\",\"body\":\"Base\",\"html\":\"<p>Base</p>\"},"
    "{\"weight\":1,\"subject\":\"New\",\"body\":\"Other\",\"html\":null}]}]}";

static struct sequence *load(const char *yaml)
{
    struct sequence *seq = NULL;
    struct sequence_diags d;
    int zone_calls = 0;
    struct sequence_options o = {zone_exists, &zone_calls, NULL};
    int rc = sequence_parse("full.yaml", yaml, strlen(yaml), &o, &seq, &d);
    if (rc != 0) {
        char line[600];
        sequence_diag_format(&d, 0, line, sizeof line);
        fail_msg("unexpected: %s", line);
    }
    assert_int_equal(d.n, 0);
    assert_true(zone_calls >= 1);
    sequence_diags_free(&d);
    return seq;
}

static void test_model(void **state)
{
    (void)state;
    struct sequence *seq = load(full);
    assert_string_equal(seq->name, "full-example");
    assert_int_equal(seq->name_line, 2);
    assert_int_equal(seq->name_col, 7);
    assert_true(seq->schedule.contact_zone);
    assert_null(seq->schedule.timezone);
    assert_string_equal(seq->schedule.fallback_timezone, "Europe/Paris");
    assert_int_equal(seq->schedule.window_start, 510);
    assert_int_equal(seq->schedule.window_end, 1440);
    assert_int_equal(seq->schedule.days, (1u << 0) | (1u << 6));
    assert_int_equal(seq->schedule.jitter, 90);
    assert_int_equal(seq->stop_on, SEQUENCE_STOP_REPLY | SEQUENCE_STOP_COMPANY_REPLY);
    assert_int_equal(seq->n_steps, 3);
    assert_int_equal(seq->steps[0].thread, 0);
    assert_int_equal(seq->steps[1].thread, 1);
    assert_null(seq->steps[1].subject);
    assert_int_equal(seq->steps[1].wait.business_days, 3);
    assert_int_equal(seq->steps[2].n_variants, 2);
    assert_string_equal(seq->steps[2].variants[0].body, "Base");
    assert_string_equal(seq->steps[2].variants[0].html, "<p>Base</p>");
    assert_string_equal(seq->steps[2].variants[1].body, "Other");
    assert_null(seq->steps[2].variants[1].html);
    assert_ptr_equal(sequence_step_find(seq, "bump"), &seq->steps[1]);
    assert_null(sequence_step_find(seq, "nope"));
    sequence_free(seq);

    /* defaults */
    seq = load(HEAD STEP1);
    assert_false(seq->schedule.contact_zone);
    assert_string_equal(seq->schedule.timezone, "UTC");
    assert_int_equal(seq->schedule.days, SEQUENCE_DAYS_WEEKDAYS);
    assert_int_equal(seq->schedule.jitter, 600);
    assert_int_equal(seq->stop_on, SEQUENCE_STOP_DEFAULT);
    assert_null(seq->description);
    sequence_free(seq);
}

static void test_json_and_hash(void **state)
{
    (void)state;
    struct sequence *seq = load(full);
    char *json = sequence_to_json(seq);
    assert_non_null(json);
    assert_string_equal(json, full_json);
    char h1[65], h2[65], h3[65];
    assert_int_equal(sequence_hash(seq, h1), 0);
    assert_int_equal(strlen(h1), 64);
    free(json);
    sequence_free(seq);

    /* comments, quoting, key order and flow style do not change the hash */
    static const char reordered[] =
        "steps:\n"
        "  - {id: intro, subject: 'Hello \"{{company}}\"', body: \"Hi {{first_name | there}},\\nCafé.\\n\"}\n"
        "  - id: bump\n"
        "    thread: yes   # the default anyway\n"
        "    body: \"Bump\"\n"
        "    wait: 3 business day\n"
        "  - id: split\n"
        "    wait: 4h 1d\n"
        "    thread: false\n"
        "    subject: New\n"
        "    body: Base\n"
        "    html: <p>Base</p>\n"
        "    variants: [{weight: 3}, {weight: 1, body: Other}]\n"
        "stop_on: [reply, company_reply]\n"
        "schedule: {days: [mon, sun], window: 08:30-24:00, jitter: 1m 30s, fallback_timezone: Europe/Paris}\n"
        "sender_pool: founders\n"
        "description: Test sequence\n"
        "name: full-example\n";
    seq = load(reordered);
    assert_int_equal(sequence_hash(seq, h2), 0);
    assert_string_equal(h1, h2);
    sequence_free(seq);

    /* any change of content does */
    char *changed = strdup(full);
    char *p = strstr(changed, "Bump");
    p[0] = 'b';
    seq = load(changed);
    assert_int_equal(sequence_hash(seq, h3), 0);
    assert_string_not_equal(h1, h3);
    sequence_free(seq);
    free(changed);
}

static void test_json_escapes(void **state)
{
    (void)state;
    struct sequence *seq = load(HEAD "steps:\n  - id: a\n    subject: \"x\\\\y\"\n    body: \"a\\tb\\u0001\\u007f\\\\\"\n");
    char *json = sequence_to_json(seq);
    assert_non_null(strstr(json, "\"subject\":\"x\\\\y\""));
    assert_non_null(strstr(json, "\"body\":\"a\\tb\\u0001\\u007f\\\\\""));
    free(json);
    sequence_free(seq);
}

static void test_variant_choose(void **state)
{
    (void)state;
    struct sequence *seq = load(HEAD "steps:\n  - id: a\n    subject: S\n    body: B\n    variants:\n"
                                     "      - weight: 1\n      - weight: 3\n");
    const struct sequence_step *st = &seq->steps[0];
    int counts[2] = {0, 0};
    for (int i = 0; i < 4000; i++) {
        char email[40];
        snprintf(email, sizeof email, "p%d@example.org", i);
        uint64_t seed = template_seed(email, st->id);
        int v = sequence_variant_choose(st, seed);
        assert_in_range(v, 0, 1);
        assert_int_equal(v, sequence_variant_choose(st, seed));
        counts[v]++;
    }
    assert_in_range(counts[0], 850, 1150);
    assert_in_range(counts[1], 2850, 3150);
    struct sequence_step none = {0};
    assert_int_equal(sequence_variant_choose(&none, 42), -1);
    sequence_free(seq);
}

/* What compose and lint read of the unsubscribe settings. */
static void test_unsubscribe_model(void **state)
{
    (void)state;
    struct sequence *seq = load(HEAD STEP1);
    assert_true(seq->unsubscribe_header);
    assert_null(seq->unsubscribe_footer);
    assert_null(seq->language);
    assert_string_equal(sequence_step_without_opt_out(seq), "a");
    char *plain = sequence_to_json(seq);
    sequence_free(seq);
    seq = load(HEAD "unsubscribe: {header: false, footer: \"Stop: {{unsubscribe_url}}\"}\nlanguage: fr\n" STEP1);
    assert_false(seq->unsubscribe_header);
    assert_string_equal(seq->unsubscribe_footer, "Stop: {{unsubscribe_url}}");
    assert_string_equal(seq->language, "fr");
    assert_null(sequence_step_without_opt_out(seq));
    /* the settings change the hash; a file without them keeps its own */
    char *set = sequence_to_json(seq);
    assert_non_null(strstr(set, "\"unsubscribe\":{\"header\":false,\"footer\":\"Stop: {{unsubscribe_url}}\"}"));
    assert_null(strstr(plain, "unsubscribe\":"));
    assert_null(strstr(plain, "language"));
    free(plain);
    free(set);
    sequence_free(seq);
    seq = load(HEAD "steps:\n  - id: a\n    subject: S\n    body: \"B {{unsubscribe_url | x}}\"\n"
                    "  - id: b\n    wait: 1 day\n    body: C\n    html: \"<a href='{{unsubscribe_url}}'>x</a>\"\n");
    assert_null(sequence_step_without_opt_out(seq));
    sequence_free(seq);
    assert_true(sequence_uses_unsubscribe_url("a {{unsubscribe_url}} b"));
    assert_false(sequence_uses_unsubscribe_url("a {{unsubscribe_urls}} b"));
    assert_false(sequence_uses_unsubscribe_url("unsubscribe_url"));
    assert_false(sequence_uses_unsubscribe_url(NULL));
}

/* Tracking is off unless asked for, and a file without track keeps its
 * hash. */
static void test_track_model(void **state)
{
    (void)state;
    struct sequence *seq = load(HEAD STEP1);
    assert_false(seq->track_clicks);
    assert_false(seq->track_opens);
    assert_false(seq->track_text_links);
    char *plain = sequence_to_json(seq);
    assert_null(strstr(plain, "track"));
    free(plain);
    sequence_free(seq);
    seq = load(HEAD "track: {opens: true}\n" STEP1);
    assert_false(seq->track_clicks);
    assert_true(seq->track_opens);
    char *set = sequence_to_json(seq);
    assert_non_null(strstr(set, "\"track\":{\"clicks\":false,\"opens\":true,\"text_links\":false}"));
    free(set);
    sequence_free(seq);
}

static void test_too_large_and_too_many(void **state)
{
    (void)state;
    size_t n = SEQUENCE_MAX_BYTES + 1;
    char *big = malloc(n);
    memset(big, 'a', n);
    struct sequence *seq;
    struct sequence_diags d;
    assert_int_equal(sequence_parse("big.yaml", big, n, &opts, &seq, &d), -1);
    assert_int_equal(d.n, 1);
    assert_non_null(strstr(d.items[0].message, "file too large"));
    sequence_diags_free(&d);
    free(big);

    /* thousands of unknown keys: the list is capped and says so */
    size_t cap = 4000 * 16;
    char *many = malloc(cap);
    size_t len = 0;
    for (int i = 0; i < 4000; i++)
        len += (size_t)snprintf(many + len, cap - len, "zz%d: 1\n", i);
    assert_int_equal(sequence_parse("many.yaml", many, len, &opts, &seq, &d), -1);
    assert_int_equal(d.n, SEQUENCE_MAX_DIAGS);
    assert_non_null(strstr(d.items[d.n - 1].message, "too many problems"));
    sequence_diags_free(&d);
    free(many);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_model),
        cmocka_unit_test(test_json_and_hash),
        cmocka_unit_test(test_json_escapes),
        cmocka_unit_test(test_variant_choose),
        cmocka_unit_test(test_too_large_and_too_many),
        cmocka_unit_test(test_unsubscribe_model),
        cmocka_unit_test(test_track_model),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
