/* libFuzzer target: the sequence loader and linter on arbitrary bytes.
 *
 * Runs sequence_parse (YAML reading, every check, the diagnostics and
 * their formatting), then for a valid model its canonical JSON, its hash,
 * the variant choice and the rendering of every template; the raw input
 * also goes through template_check and template_render directly. Zone
 * names are checked against a small fixed list so the target does no I/O.
 * Any crash, leak, sanitizer report or hang is a bug. */
#include "sequence.h"
#include "template.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static int zone_exists(const char *name, void *arg)
{
    (void)arg;
    static const char *const zones[] = {"Europe/Paris", "UTC", "America/New_York", "Asia/Tokyo", NULL};
    for (size_t i = 0; zones[i]; i++)
        if (strcmp(zones[i], name) == 0)
            return 1;
    return 0;
}

static const char *lookup(const char *field, void *arg)
{
    (void)arg;
    if (strcmp(field, "first_name") == 0)
        return "Zoé\r\nBcc: x@y";
    if (strcmp(field, "company") == 0)
        return "Acme";
    return NULL;
}

static void render(const char *src, const char *step)
{
    if (!src)
        return;
    struct template_out out;
    if (template_render(src, strlen(src), template_seed("a@b.example", step), TEMPLATE_ESCAPE_NONE, lookup, NULL,
                        &out) == TEMPLATE_OK) {
        /* sanitised values never bring a line break into the text */
        free(out.text);
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static const char *const pools[] = {"founders", "sdr", NULL};
    const struct sequence_options opt = {zone_exists, NULL, pools};
    struct sequence *seq = NULL;
    struct sequence_diags d;
    char line[600];

    if (sequence_parse("fuzz.yaml", (const char *)data, size, &opt, &seq, &d) == 0) {
        char *json = sequence_to_json(seq);
        free(json);
        char hex[65];
        if (sequence_hash(seq, hex) < 0)
            abort();
        for (size_t i = 0; i < seq->n_steps; i++) {
            const struct sequence_step *st = &seq->steps[i];
            render(st->subject, st->id);
            render(st->body, st->id);
            render(st->html, st->id);
            int v = sequence_variant_choose(st, template_seed("a@b.example", st->id));
            if (st->n_variants && (v < 0 || (size_t)v >= st->n_variants))
                abort();
            for (size_t j = 0; j < st->n_variants; j++) {
                render(st->variants[j].subject, st->id);
                render(st->variants[j].body, st->id);
            }
        }
    } else if (d.errors == 0 && !d.nomem) {
        abort(); /* a refusal always says why */
    }
    for (size_t i = 0; i < d.n; i++)
        sequence_diag_format(&d, i, line, sizeof line);
    sequence_free(seq);
    sequence_diags_free(&d);

    /* the template language on the raw bytes, too */
    if (size <= 4096) {
        char *s = malloc(size + 1);
        if (!s)
            return 0;
        memcpy(s, data, size);
        s[size] = '\0';
        size_t n = strlen(s);
        size_t problems = template_check(s, n, NULL, NULL);
        struct template_out out;
        int rc = template_render(s, n, 42, size & 1 ? TEMPLATE_ESCAPE_HTML : TEMPLATE_ESCAPE_NONE, lookup, NULL, &out);
        if ((problems == 0) != (rc != TEMPLATE_INVALID))
            abort();
        if (rc == TEMPLATE_OK)
            free(out.text);
        free(s);
    }
    return 0;
}
