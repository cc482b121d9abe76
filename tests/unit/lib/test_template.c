/* Unit tests for template: syntax checks with offsets, rendering with
 * fields, fallbacks, spintax and escapes, missing fields, sanitising of
 * values, HTML escaping of values (and only of values), and the
 * determinism of spintax. Table-driven. */
#include "template.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- template_check ---- */

struct check_row {
    const char *src;
    size_t errors;
    size_t offset;        /* of the first problem */
    const char *message;  /* start of the first problem's message */
};

static const struct check_row check_rows[] = {
    {"plain text", 0, 0, NULL},
    {"", 0, 0, NULL},
    {"Hi {{first_name}}", 0, 0, NULL},
    {"Hi {{ first_name }}", 0, 0, NULL},
    {"Hi {{first_name | there}}", 0, 0, NULL},
    {"Hi {{first_name|}}", 0, 0, NULL},
    {"{{custom.plan-tier}}", 0, 0, NULL},
    {"{Hi|Hello} there", 0, 0, NULL},
    {"{Hi {{first_name}}|Hello {{first_name | you}}}", 0, 0, NULL},
    {"{a|b|c|d}", 0, 0, NULL},
    {"{ |b}", 0, 0, NULL},
    {"a | b outside spintax", 0, 0, NULL},
    {"\\{not spintax\\}", 0, 0, NULL},
    {"\\{\\{not a field\\}\\}", 0, 0, NULL},
    {"{a\\|b|c}", 0, 0, NULL},
    {"C:\\path\\n", 0, 0, NULL},
    {"Hi {{first_name", 1, 3, "unclosed '{{'"},
    {"Hi {{first_name\n}}", 2, 3, "unclosed '{{'"},
    {"{{a {{b}}", 1, 0, "unclosed '{{'"},
    {"{{}}", 1, 0, "empty field name"},
    {"{{ | x}}", 1, 0, "empty field name"},
    {"{{first name}}", 1, 2, "invalid field name 'first name'"},
    {"{{1st}}", 1, 2, "invalid field name '1st'"},
    {"{Hi||Hello}", 1, 4, "empty spintax option"},
    {"{|Hello}", 1, 1, "empty spintax option"},
    {"{Hello|}", 1, 7, "empty spintax option"},
    {"{}", 1, 1, "empty spintax option"},
    {"{Hi|Hello", 1, 0, "unclosed '{'"},
    {"x {company} y", 1, 2, "'{company}' is spintax with one option; did you mean '{{company}}'?"},
    {"{two words}", 1, 0, "spintax needs at least two options"},
    {"{a|{b|c}}", 1, 3, "spintax cannot be nested"},
    {"a }} b", 1, 2, "unmatched '}}'"},
    {"a } b", 1, 2, "unmatched '}'"},
    {"{a|{{b}", 1, 3, "unclosed '{{'"},
    {"{{x}} {a||b} }", 2, 9, "empty spintax option"},
    {"{{{a}}|{{b}}}", 0, 0, NULL},
    {"{{{a}}}", 1, 0, "spintax needs at least two options"},
    {"{a|{{b}", 1, 3, "unclosed '{{'"},
};

struct seen {
    size_t n;
    size_t first_offset;
    char first[200];
};

static void on_error(size_t offset, const char *message, void *arg)
{
    struct seen *s = arg;
    if (s->n++ == 0) {
        s->first_offset = offset;
        snprintf(s->first, sizeof s->first, "%s", message);
    }
}

static void test_check(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof check_rows / sizeof check_rows[0]; i++) {
        const struct check_row *r = &check_rows[i];
        struct seen s = {0};
        size_t n = template_check(r->src, strlen(r->src), on_error, &s);
        if (n != r->errors || s.n != n)
            fail_msg("'%s': %zu problems (first: %s), expected %zu", r->src, n, s.first, r->errors);
        if (!r->errors)
            continue;
        if (s.first_offset != r->offset || strncmp(s.first, r->message, strlen(r->message)) != 0)
            fail_msg("'%s': first problem at %zu '%s', expected at %zu '%s'", r->src, s.first_offset, s.first,
                     r->offset, r->message);
    }
}

/* ---- template_render ---- */

/* Fields given as "name=value;name=value"; a value may hold control
 * characters. */
struct fields {
    const char *spec;
    char buf[256];
    int calls;
};

static const char *lookup(const char *field, void *arg)
{
    struct fields *f = arg;
    size_t n = strlen(field);
    f->calls++;
    for (const char *p = f->spec; p && *p;) {
        const char *end = strchr(p, ';');
        size_t len = end ? (size_t)(end - p) : strlen(p);
        if (len > n && strncmp(p, field, n) == 0 && p[n] == '=') {
            snprintf(f->buf, sizeof f->buf, "%.*s", (int)(len - n - 1), p + n + 1);
            return f->buf;
        }
        p = end ? end + 1 : NULL;
    }
    return NULL;
}

struct render_row {
    const char *src;
    const char *fields;
    int status;
    const char *expected;   /* the text, or the missing field's name */
};

static const struct render_row render_rows[] = {
    {"plain", "", TEMPLATE_OK, "plain"},
    {"", "", TEMPLATE_OK, ""},
    {"Hi {{first_name}},", "first_name=Ada", TEMPLATE_OK, "Hi Ada,"},
    {"Hi {{ first_name }},", "first_name=Ada", TEMPLATE_OK, "Hi Ada,"},
    {"Hi {{first_name | there}},", "", TEMPLATE_OK, "Hi there,"},
    {"Hi {{first_name | there}},", "first_name=", TEMPLATE_OK, "Hi there,"},
    {"Hi {{first_name | there}},", "first_name=   ", TEMPLATE_OK, "Hi there,"},
    {"Hi {{first_name | there}},", "first_name=Zoé", TEMPLATE_OK, "Hi Zoé,"},
    {"Bonjour {{first_name | }},", "", TEMPLATE_OK, "Bonjour ,"},
    {"{{company}} and you", "", TEMPLATE_MISSING_FIELD, "company"},
    {"{{a | x}} {{b}} {{c}}", "", TEMPLATE_MISSING_FIELD, "b"},
    {"{{custom.plan}}", "custom.plan=Pro", TEMPLATE_OK, "Pro"},
    {"Hi {{first_name}}", "first_name=Al\r\nBcc: x@y", TEMPLATE_OK, "Hi Al  Bcc: x@y"},
    {"[{{v}}]", "v=\ta\x01" "b\x7f", TEMPLATE_OK, "[a b]"},
    {"[{{v}}]", "v=a\xc2\x85" "b", TEMPLATE_OK, "[a b]"},
    {"[{{v}}]", "v=a\xe2\x80\xa8" "b", TEMPLATE_OK, "[a b]"},
    {"[{{v}}]", "v=a\xff" "b", TEMPLATE_OK, "[a\xef\xbf\xbd" "b]"},
    {"[{{v}}]", "v=\r\n", TEMPLATE_MISSING_FIELD, "v"},
    {"[{{v | none}}]", "v=\r\n", TEMPLATE_OK, "[none]"},
    {"\\{literal\\} \\| \\\\", "", TEMPLATE_OK, "{literal} | \\"},
    {"C:\\path", "", TEMPLATE_OK, "C:\\path"},
    {"{{x | a\\}b}}", "", TEMPLATE_OK, "a}b"},
    {"{same|same}", "", TEMPLATE_OK, "same"},
    {"{{{a}}|{{a}}}", "a=1", TEMPLATE_OK, "1"},
    {"{Hi {{n}}|Hello {{n}}}!", "n=Bo", TEMPLATE_OK, NULL},   /* either; checked below */
    {"{{unclosed", "", TEMPLATE_INVALID, NULL},
    {"{a||b}", "", TEMPLATE_INVALID, NULL},
};

static void test_render(void **state)
{
    (void)state;
    uint64_t seed = template_seed("ada@example.com", "intro");
    for (size_t i = 0; i < sizeof render_rows / sizeof render_rows[0]; i++) {
        const struct render_row *r = &render_rows[i];
        struct fields f = {r->fields, "", 0};
        struct template_out out;
        int rc = template_render(r->src, strlen(r->src), seed, TEMPLATE_ESCAPE_NONE, lookup, &f, &out);
        if (rc != r->status)
            fail_msg("'%s': status %s, expected %s", r->src, template_status_names[-rc],
                     template_status_names[-r->status]);
        if (rc == TEMPLATE_OK) {
            if (r->expected)
                assert_string_equal(out.text, r->expected);
            else
                assert_true(strcmp(out.text, "Hi Bo!") == 0 || strcmp(out.text, "Hello Bo!") == 0);
            assert_int_equal(out.len, strlen(out.text));
            free(out.text);
        } else {
            assert_null(out.text);
            if (rc == TEMPLATE_MISSING_FIELD)
                assert_string_equal(out.missing, r->expected);
        }
    }
}

/* ---- HTML escaping ---- */

/* One value, v, given whole (it may hold ';' and '='); NULL: no value. */
static const char *lookup_v(const char *field, void *arg)
{
    return strcmp(field, "v") == 0 ? arg : NULL;
}

struct escape_row {
    const char *src;
    const char *v;
    const char *html;   /* rendered with TEMPLATE_ESCAPE_HTML */
    const char *text;   /* rendered with TEMPLATE_ESCAPE_NONE */
};

static const struct escape_row escape_rows[] = {
    /* each special character, in text and in a quoted attribute */
    {"[{{v}}]", "&", "[&amp;]", "[&]"},
    {"[{{v}}]", "<", "[&lt;]", "[<]"},
    {"[{{v}}]", ">", "[&gt;]", "[>]"},
    {"[{{v}}]", "\"", "[&quot;]", "[\"]"},
    {"[{{v}}]", "'", "[&#39;]", "[']"},
    {"[{{v}}]", "Tom & <Jerry>", "[Tom &amp; &lt;Jerry&gt;]", "[Tom & <Jerry>]"},
    {"<p>{{v}}</p>", "</p><a href=\"https://evil.test\">x</a>",
     "<p>&lt;/p&gt;&lt;a href=&quot;https://evil.test&quot;&gt;x&lt;/a&gt;</p>",
     "<p></p><a href=\"https://evil.test\">x</a></p>"},
    {"<p>{{v}}</p>", "<script>alert(1)</script>", "<p>&lt;script&gt;alert(1)&lt;/script&gt;</p>",
     "<p><script>alert(1)</script></p>"},
    {"<a title=\"{{v}}\">", "\" onclick=\"x", "<a title=\"&quot; onclick=&quot;x\">", "<a title=\"\" onclick=\"x\">"},
    {"<a title='{{v}}'>", "' onclick='x", "<a title='&#39; onclick=&#39;x'>", "<a title='' onclick='x'>"},
    /* a value is text, even when it looks escaped already */
    {"[{{v}}]", "&amp;", "[&amp;amp;]", "[&amp;]"},
    {"[{{v}}]", "&lt;b&gt;", "[&amp;lt;b&amp;gt;]", "[&lt;b&gt;]"},
    /* UTF-8 passes unchanged, other characters too */
    {"[{{v}}]", "Zoé 東京 😀 ;=/", "[Zoé 東京 😀 ;=/]", "[Zoé 東京 😀 ;=/]"},
    /* sanitising then escaping: controls are spaces, blanks trimmed,
     * invalid UTF-8 is U+FFFD */
    {"[{{v}}]", "  <\r\n>\t ", "[&lt;  &gt;]", "[<  >]"},
    {"[{{v}}]", "\xff<", "[\xef\xbf\xbd&lt;]", "[\xef\xbf\xbd<]"},
    /* a fallback is a value: escaped in html, as written in text */
    {"Hi {{v | R&D <lead>}}", NULL, "Hi R&amp;D &lt;lead&gt;", "Hi R&D <lead>"},
    {"Hi {{v | R&D <lead>}}", "   ", "Hi R&amp;D &lt;lead&gt;", "Hi R&D <lead>"},
    {"Hi {{v | \"a\\|b\"}}", NULL, "Hi &quot;a|b&quot;", "Hi \"a|b\""},
    {"Hi {{v | R&D}}", "<x>", "Hi &lt;x&gt;", "Hi <x>"},
    /* the author's markup, entities and escapes are untouched */
    {"<p class=\"a\">&amp; &copy; <b>{{v}}</b></p>", "x", "<p class=\"a\">&amp; &copy; <b>x</b></p>",
     "<p class=\"a\">&amp; &copy; <b>x</b></p>"},
    {"<i>\\{{{v}}\\}</i> a | b", "&", "<i>{&amp;}</i> a | b", "<i>{&}</i> a | b"},
    {"<p>'\"&<>'</p>", NULL, "<p>'\"&<>'</p>", "<p>'\"&<>'</p>"},
    /* spintax is the author's: options are markup, fields in them values */
    {"{<b>a</b>|<b>a</b>}", NULL, "<b>a</b>", "<b>a</b>"},
    {"{<i>{{v}}</i>|<i>{{v}}</i>}", "<&>", "<i>&lt;&amp;&gt;</i>", "<i><&></i>"},
    {"{{{v}}|{{v}}}", "'", "&#39;", "'"},
};

static void test_escape_html(void **state)
{
    (void)state;
    uint64_t seed = template_seed("ada@example.com", "intro");
    for (size_t i = 0; i < sizeof escape_rows / sizeof escape_rows[0]; i++) {
        const struct escape_row *r = &escape_rows[i];
        struct template_out html, text;
        int rc = template_render(r->src, strlen(r->src), seed, TEMPLATE_ESCAPE_HTML, lookup_v, (void *)r->v, &html);
        if (rc != TEMPLATE_OK)
            fail_msg("row %zu '%s': html status %s", i, r->src, template_status_names[-rc]);
        rc = template_render(r->src, strlen(r->src), seed, TEMPLATE_ESCAPE_NONE, lookup_v, (void *)r->v, &text);
        if (rc != TEMPLATE_OK)
            fail_msg("row %zu '%s': text status %s", i, r->src, template_status_names[-rc]);
        if (strcmp(html.text, r->html) != 0)
            fail_msg("row %zu '%s' v='%s': html '%s', expected '%s'", i, r->src, r->v ? r->v : "(none)", html.text,
                     r->html);
        if (strcmp(text.text, r->text) != 0)
            fail_msg("row %zu '%s' v='%s': text '%s', expected '%s'", i, r->src, r->v ? r->v : "(none)", text.text,
                     r->text);
        assert_int_equal(html.len, strlen(html.text));
        assert_int_equal(text.len, strlen(text.text));
        free(html.text);
        free(text.text);
    }
}

/* Escaping does not change what counts as missing: a value of only
 * blanks is missing in both modes, and a value of only '&' is not. */
static void test_escape_missing(void **state)
{
    (void)state;
    struct template_out out;
    const char *src = "[{{v}}]";
    assert_int_equal(template_render(src, strlen(src), 1, TEMPLATE_ESCAPE_HTML, lookup_v, " \r\n ", &out),
                     TEMPLATE_MISSING_FIELD);
    assert_null(out.text);
    assert_string_equal(out.missing, "v");
    assert_int_equal(template_render(src, strlen(src), 1, TEMPLATE_ESCAPE_HTML, lookup_v, NULL, &out),
                     TEMPLATE_MISSING_FIELD);
    assert_string_equal(out.missing, "v");
    assert_int_equal(template_render(src, strlen(src), 1, TEMPLATE_ESCAPE_HTML, lookup_v, "&", &out), TEMPLATE_OK);
    assert_string_equal(out.text, "[&amp;]");
    free(out.text);
}

/* ---- values that keep their lines (a signature) ---- */

struct lines_row {
    const char *v;     /* the value of field v, listed as a lines field */
    const char *text;  /* "[{{v}}]" rendered as text */
    const char *html;  /* ... and as HTML */
};

static const struct lines_row lines_rows[] = {
    {"Bob\nAcme", "[Bob\nAcme]", "[Bob<br>\nAcme]"},
    {"Bob\r\nAcme\rSales", "[Bob\nAcme\nSales]", "[Bob<br>\nAcme<br>\nSales]"},
    /* blank lines around the value go, blank lines inside stay */
    {"\n\n  Bob\n\nAcme \n\n", "[Bob\n\nAcme]", "[Bob<br>\n<br>\nAcme]"},
    /* "-- " keeps its space inside the value; other controls are spaces */
    {"-- \nBob\tDupont", "[-- \nBob Dupont]", "[-- <br>\nBob Dupont]"},
    /* data never becomes markup */
    {"R&D <b>\n'x'", "[R&D <b>\n'x']", "[R&amp;D &lt;b&gt;<br>\n&#39;x&#39;]"},
};

static void test_lines(void **state)
{
    (void)state;
    static const char *const lines[] = {"v", NULL};
    const char *src = "[{{v}}]";
    for (size_t i = 0; i < sizeof lines_rows / sizeof lines_rows[0]; i++) {
        const struct lines_row *r = &lines_rows[i];
        struct template_out text, html;
        assert_int_equal(template_render_lines(src, strlen(src), 1, TEMPLATE_ESCAPE_NONE, lookup_v, (void *)r->v,
                                               lines, &text), TEMPLATE_OK);
        assert_int_equal(template_render_lines(src, strlen(src), 1, TEMPLATE_ESCAPE_HTML, lookup_v, (void *)r->v,
                                               lines, &html), TEMPLATE_OK);
        if (strcmp(text.text, r->text) != 0 || strcmp(html.text, r->html) != 0)
            fail_msg("row %zu: text '%s' html '%s', expected '%s' and '%s'", i, text.text, html.text, r->text, r->html);
        free(text.text);
        free(html.text);
    }
    /* a field not listed keeps today's rule: breaks are spaces */
    struct template_out out;
    static const char *const other[] = {"w", NULL};
    assert_int_equal(template_render_lines(src, strlen(src), 1, TEMPLATE_ESCAPE_NONE, lookup_v, "a\nb", other, &out),
                     TEMPLATE_OK);
    assert_string_equal(out.text, "[a b]");
    free(out.text);
    /* only breaks and blanks: missing, as any blank value is */
    assert_int_equal(template_render_lines(src, strlen(src), 1, TEMPLATE_ESCAPE_NONE, lookup_v, " \n\r\n ", lines,
                                           &out), TEMPLATE_MISSING_FIELD);
}

/* The same contact and step always get the same text, and the same
 * choices in text and html mode (the two parts of a message agree);
 * across contacts every option is used, roughly evenly. */
static void test_spintax_deterministic(void **state)
{
    (void)state;
    const char *src = "{a|b|c} {x|y}";
    int counts[3] = {0};
    char email[64];
    for (int i = 0; i < 3000; i++) {
        snprintf(email, sizeof email, "contact%d@example.com", i);
        uint64_t seed = template_seed(email, "bump");
        struct template_out a, b;
        assert_int_equal(template_render(src, strlen(src), seed, TEMPLATE_ESCAPE_NONE, NULL, NULL, &a), TEMPLATE_OK);
        assert_int_equal(template_render(src, strlen(src), seed, TEMPLATE_ESCAPE_HTML, NULL, NULL, &b), TEMPLATE_OK);
        assert_string_equal(a.text, b.text);
        counts[a.text[0] - 'a']++;
        free(a.text);
        free(b.text);
    }
    for (int k = 0; k < 3; k++)
        assert_in_range(counts[k], 800, 1200);
    /* the e-mail is case-insensitive; the step id matters */
    assert_true(template_seed("Ada@Example.COM", "intro") == template_seed("ada@example.com", "intro"));
    assert_true(template_seed("ada@example.com", "intro") != template_seed("ada@example.com", "bump"));
    assert_true(template_seed("ada@example.comintro", "") != template_seed("ada@example.com", "intro"));
}

/* Only fields of the chosen option are looked up. */
static void test_lookup_only_chosen(void **state)
{
    (void)state;
    const char *src = "{{{a}}|{{b}}}";
    for (int i = 0; i < 50; i++) {
        char email[40];
        snprintf(email, sizeof email, "u%d@x.example", i);
        struct fields f = {"a=1", "", 0};
        struct template_out out;
        int rc = template_render(src, strlen(src), template_seed(email, "s"), TEMPLATE_ESCAPE_NONE, lookup, &f, &out);
        assert_int_equal(f.calls, 1);
        if (rc == TEMPLATE_OK) {
            assert_string_equal(out.text, "1");
            free(out.text);
        } else {
            assert_int_equal(rc, TEMPLATE_MISSING_FIELD);
            assert_string_equal(out.missing, "b");
        }
    }
}

struct clean_row {
    const char *in;
    size_t buflen;
    const char *out;
};

static const struct clean_row clean_rows[] = {
    {"plain", 64, "plain"},
    {"  trim me \t", 64, "trim me"},
    {"a\r\nb", 64, "a  b"},
    {"x\r\nBcc: evil@example.com", 64, "x  Bcc: evil@example.com"},
    {"été", 64, "été"},
    {"été", 3, "é"},      /* cut on a character boundary */
    {"été", 2, ""},
    {"", 8, ""},
};

static void test_value_clean(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof clean_rows / sizeof clean_rows[0]; i++) {
        char buf[64];
        size_t n = template_value_clean(clean_rows[i].in, buf, clean_rows[i].buflen);
        assert_string_equal(buf, clean_rows[i].out);
        assert_int_equal(n, strlen(buf));
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_check),
        cmocka_unit_test(test_render),
        cmocka_unit_test(test_spintax_deterministic),
        cmocka_unit_test(test_lookup_only_chosen),
        cmocka_unit_test(test_escape_html),
        cmocka_unit_test(test_escape_missing),
        cmocka_unit_test(test_lines),
        cmocka_unit_test(test_value_clean),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
