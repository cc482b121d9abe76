/* libFuzzer target for what an IMAP server sends back: any bytes, in
 * pieces of any size, must go through the response reader and the STATUS, SELECT,
 * SEARCH, FETCH, LIST and tagged parsers without a crash, a leak or
 * undefined behaviour, and what they return must point inside the
 * response. The first byte chooses the piece size. Then the watcher's
 * reading of a message (Message-ID, From, references) on the same bytes. */
#include "classify.h"
#include "imap_parse.h"
#include "inbound.h"

#include <stddef.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static void count(void *arg, uint32_t n)
{
    (void)n;
    (*(size_t *)arg)++;
}

static void inside(const char *p, size_t n, const char *resp, size_t len)
{
    if (n && (p < resp || p + n > resp + len))
        abort();
}

static void on_response(void *arg, const char *resp, size_t len, int truncated)
{
    (void)arg;
    (void)truncated;
    char name[64], text[64];
    uint32_t a, b;
    int flags;
    char delim;
    size_t uids = 0;
    struct imap_fetch_data f;
    if (imap_parse_status(resp, len, name, sizeof name, &a, &b) == 0 && strlen(name) >= sizeof name)
        abort();
    struct imap_select sel = {0};
    (void)imap_parse_select(resp, len, &sel);
    (void)imap_parse_search(resp, len, count, &uids);
    if (imap_parse_fetch(resp, len, &f) == 0) {
        if (f.has_header)
            inside(f.header, f.header_len, resp, len);
        if (f.has_body)
            inside(f.body, f.body_len, resp, len);
    }
    if (imap_parse_list(resp, len, &flags, &delim, name, sizeof name) == 0 && strlen(name) >= sizeof name)
        abort();
    if (imap_parse_tagged(resp, len, text, sizeof text) && strlen(text) >= sizeof text)
        abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size == 0)
        return 0;
    size_t piece = (size_t)data[0] + 1;
    const char *p = (const char *)data + 1;
    size_t n = size - 1;
    struct imap_reader r;
    imap_reader_init(&r, 4096);
    for (size_t off = 0; off < n; off += piece)
        (void)imap_reader_feed(&r, p + off, n - off < piece ? n - off : piece, on_response, NULL);
    (void)imap_reader_pending(&r);
    imap_reader_free(&r);

    struct classify_result c;
    struct inbound in;
    if (classify_message(p, n, &c) == 0 && inbound_read(p, n, &c, &in) == 0) {
        if (!in.refs || in.refs[0] != '{' || !in.recipients || in.recipients[0] != '{')
            abort();
        inbound_free(&in);
    }
    return 0;
}
