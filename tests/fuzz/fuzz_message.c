/* libFuzzer target for message: arbitrary subject, names, bodies and an
 * extra header value go into message_build; whatever it accepts must be
 * CRLF-only, within 998 octets a line, and carry exactly the headers
 * relance writes (no injected field). The RFC 2047 and quoted-printable
 * encoders are checked for their line limits on the same input. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "message.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size);

static const char *const allowed[] = {"From:", "To:", "Subject:", "Date:", "Message-ID:", "In-Reply-To:",
                                      "References:", "List-Unsubscribe:", "X-Fuzz:", "MIME-Version:",
                                      "Content-Type:", "Content-Transfer-Encoding:"};

static void check_lines(const char *s, size_t len, size_t max)
{
    size_t line = 0;
    for (size_t i = 0; i < len; i++) {
        if (s[i] == '\r') {
            if (i + 1 >= len || s[i + 1] != '\n')
                abort();
            i++;
            line = 0;
        } else if (s[i] == '\n') {
            abort();
        } else if (++line > max) {
            abort();
        }
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    /* fields separated by 0x00: subject, from name, to name, text, html, extra */
    char *buf = malloc(size + 1);
    memcpy(buf, data, size);
    buf[size] = '\0';
    const char *field[6] = {"", NULL, NULL, NULL, NULL, "v"};
    size_t nf = 0;
    for (char *p = buf; nf < 6 && p <= buf + size; p += strlen(p) + 1)
        field[nf++] = p;

    struct message_header extra = {"X-Fuzz", field[5]};
    const char *refs[] = {"<r1@acme.example>"};
    struct message m = {
        .from_addr = "alice@acme.example",
        .from_name = field[1],
        .to_addr = "bob@corp.example",
        .to_name = field[2],
        .subject = field[0],
        .date = 1700000000,
        .message_id = "<m@acme.example>",
        .in_reply_to = "<r1@acme.example>",
        .references = refs,
        .n_references = 1,
        .list_unsubscribe = "<mailto:alice@acme.example?subject=unsubscribe>",
        .text = field[3],
        .html = field[4],
        .extra = &extra,
        .n_extra = 1,
    };
    char *out = NULL, err[256];
    size_t len = 0;
    if (message_build(&m, &out, &len, err, sizeof err) == 0) {
        check_lines(out, len, 998);
        const char *end = strstr(out, "\r\n\r\n");
        if (!end)
            abort();
        for (const char *p = out; p <= end; p = strstr(p, "\r\n") + 2) {
            if (*p == ' ' || *p == '\t')
                continue;
            int ok = 0;
            for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++)
                if (strncmp(p, allowed[i], strlen(allowed[i])) == 0)
                    ok = 1;
            if (!ok)
                abort();
        }
        free(out);
    }

    char *enc = NULL;
    if (message_header_encode(field[0], 9, &enc) == 0) {
        check_lines(enc, strlen(enc), 998);
        free(enc);
    }
    char *qp = NULL;
    size_t qplen = 0;
    if (message_qp_encode((const char *)data, size, &qp, &qplen) == 0) {
        check_lines(qp, qplen, 76);
        free(qp);
    }
    free(buf);
    return 0;
}
