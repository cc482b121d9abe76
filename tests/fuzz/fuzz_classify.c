/* libFuzzer target for the mail parser and the classifier: any bytes
 * must parse and classify without a crash, a leak or undefined
 * behaviour, in bounded time, and the result must be well formed. */
#include "classify.h"
#include "mime.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    struct mime_part root;
    if (mime_message_parse((const char *)data, size, &root) == 0) {
        const struct mime_part *ds = mime_part_find(&root, "message/delivery-status");
        if (ds && ds->body) {
            struct mime_dsn dsn;
            if (mime_dsn_parse(ds->body, ds->body_len, &dsn) == 0)
                mime_dsn_free(&dsn);
        }
        const char *subject = mime_headers_get(&root.headers, "Subject");
        char *d = mime_words_decode(subject ? subject : "");
        free(d);
    }
    mime_part_free(&root);

    struct classify_result r;
    if (classify_message((const char *)data, size, &r) == 0) {
        if ((unsigned)r.kind >= CLASSIFY_KIND_COUNT || r.recipient_count > CLASSIFY_MAX_RECIPIENTS)
            abort();
        for (size_t i = 0; i < r.recipient_count; i++)
            if (strnlen(r.recipients[i].address, sizeof r.recipients[i].address) ==
                sizeof r.recipients[i].address)
                abort();
        if (r.has_return_date && (r.return_month < 1 || r.return_month > 12 || r.return_day < 1 ||
                                  r.return_day > 31))
            abort();
    }
    return 0;
}
