/* libFuzzer target: opening arbitrary text as a public link's token.
 *
 * Nothing but a token made with one of the secrets opens. When the input
 * does open (the fuzzer may reach one by mutating a seed made with the
 * key below), making a token again from what it carries must give the
 * input back, byte for byte: one token has one spelling. The input's
 * first byte also picks a kind and makes a token of the rest as a
 * Message-ID and data, which must open to them. Any crash, leak,
 * sanitizer report or abort() here is a bug. */
#include "linktoken.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const secrets[] = {"fuzz-current-secret-0123456789abcdef", "fuzz-previous-secret-0123456789abcdef"};

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct linktoken t;
    static char again[LINKTOKEN_MAX];
    int rc = linktoken_open(secrets, 2, (const char *)data, size, &t);
    if (rc >= 0) {
        if (linktoken_make(secrets[rc], t.kind, t.message_id, t.data, t.data_len, again, sizeof again) != 0 ||
            strlen(again) != size || memcmp(again, data, size) != 0)
            abort();
    }
    /* the other way: whatever a caller passes in, made tokens open */
    if (size < 2)
        return 0;
    static const char kinds[] = {LINKTOKEN_UNSUBSCRIBE, LINKTOKEN_CLICK, LINKTOKEN_OPEN, 'x'};
    char kind = kinds[data[0] % 4];
    size_t idn = data[1] % 64;
    if (idn > size - 2)
        idn = size - 2;
    char id[64];
    memcpy(id, data + 2, idn);
    id[idn] = '\0';
    const uint8_t *rest = data + 2 + idn;
    size_t rn = size - 2 - idn;
    char tok[LINKTOKEN_MAX];
    if (linktoken_make(secrets[0], kind, id, rest, rn, tok, sizeof tok) != 0)
        return 0;
    if (linktoken_open(secrets, 1, tok, strlen(tok), &t) != 0 || t.kind != kind || strcmp(t.message_id, id) != 0 ||
        t.data_len != rn || (rn && memcmp(t.data, rest, rn) != 0))
        abort();
    return 0;
}
