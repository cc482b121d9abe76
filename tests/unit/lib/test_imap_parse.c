/* Unit tests for lib/imap_parse: the response reader (literals, pieces
 * of any size, the size cap, an answer cut inside a literal), the STATUS,
 * SEARCH, FETCH, LIST and tagged parsers as tables, folder quoting. */
#include "imap_parse.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>

/* ---- the reader */

struct collected {
    char resp[8][1024];
    size_t len[8];
    int truncated[8];
    int n;
};

static void collect(void *arg, const char *resp, size_t len, int truncated)
{
    struct collected *c = arg;
    assert_true(c->n < 8);
    assert_true(len < sizeof c->resp[0]);
    memcpy(c->resp[c->n], resp, len);
    c->resp[c->n][len] = '\0';
    c->len[c->n] = len;
    c->truncated[c->n] = truncated;
    c->n++;
}

static const char stream[] = "* OK [CAPABILITY IMAP4rev1] ready\r\n"
                             "* 3 FETCH (UID 7 RFC822.SIZE 120 FLAGS (\\Recent) BODY[HEADER]<0> {23}\r\n"
                             "Subject: hi\r\nX: {5}\r\n\r\n BODY[TEXT]<0> {5}\r\nbody!)\r\n"
                             "A005 OK Fetch completed.\r\n";

static void test_reader_pieces(void **state)
{
    (void)state;
    /* every way of cutting the stream gives the same three responses */
    size_t total = sizeof stream - 1;
    for (size_t piece = 1; piece <= total; piece++) {
        struct imap_reader r;
        struct collected c;
        memset(&c, 0, sizeof c);
        imap_reader_init(&r, 4096);
        for (size_t off = 0; off < total; off += piece) {
            size_t n = total - off < piece ? total - off : piece;
            assert_int_equal(imap_reader_feed(&r, stream + off, n, collect, &c), 0);
        }
        assert_int_equal(c.n, 3);
        assert_false(imap_reader_pending(&r));
        assert_string_equal(c.resp[0], "* OK [CAPABILITY IMAP4rev1] ready\r\n");
        assert_true(strncmp(c.resp[1], "* 3 FETCH", 9) == 0);
        assert_non_null(strstr(c.resp[1], "body!)\r\n"));
        assert_string_equal(c.resp[2], "A005 OK Fetch completed.\r\n");
        struct imap_fetch_data f;
        assert_int_equal(imap_parse_fetch(c.resp[1], c.len[1], &f), 0);
        assert_int_equal(f.uid, 7);
        assert_int_equal(f.size, 120);
        assert_int_equal(f.seen, 0);
        assert_int_equal(f.header_len, 23);
        /* the "{5}" inside the literal is data, not a literal marker */
        assert_memory_equal(f.header, "Subject: hi\r\nX: {5}\r\n\r\n", 23);
        assert_int_equal(f.body_len, 5);
        assert_memory_equal(f.body, "body!", 5);
        imap_reader_free(&r);
    }
}

static void test_reader_cap_and_cut(void **state)
{
    (void)state;
    struct imap_reader r;
    struct collected c;
    memset(&c, 0, sizeof c);
    imap_reader_init(&r, 40);
    const char big[] = "* 1 FETCH (UID 1 BODY[TEXT]<0> {60}\r\n"
                       "012345678901234567890123456789012345678901234567890123456789)\r\n";
    assert_int_equal(imap_reader_feed(&r, big, sizeof big - 1, collect, &c), 0);
    assert_int_equal(c.n, 1);
    assert_int_equal(c.len[0], 40);
    assert_int_equal(c.truncated[0], 1);
    assert_false(imap_reader_pending(&r));

    /* the stream ends inside a literal: what was read cannot be trusted */
    imap_reader_reset(&r);
    memset(&c, 0, sizeof c);
    const char cut[] = "* 1 FETCH (UID 1 BODY[TEXT]<0> {60}\r\n0123456789";
    assert_int_equal(imap_reader_feed(&r, cut, sizeof cut - 1, collect, &c), 0);
    assert_int_equal(c.n, 0);
    assert_true(imap_reader_pending(&r));
    imap_reader_free(&r);
}

/* ---- parsers */

struct status_row {
    const char *resp;
    int rc;
    const char *mailbox;
    uint32_t uidnext, uidvalidity;
};

static const struct status_row status_rows[] = {
    {"* STATUS INBOX (UIDNEXT 3 UIDVALIDITY 1795743692)\r\n", 0, "INBOX", 3, 1795743692u},
    {"* STATUS \"INBOX\" (UIDVALIDITY 9 UIDNEXT 12 MESSAGES 4)\r\n", 0, "INBOX", 12, 9},
    {"* STATUS \"Sent Items\" (MESSAGES 2 UIDNEXT 5 UIDVALIDITY 7)\r\n", 0, "Sent Items", 5, 7},
    {"* STATUS {7}\r\nA \"b\\ c (UIDNEXT 1 UIDVALIDITY 2)\r\n", 0, "A \"b\\ c", 1, 2},
    {"* status inbox (uidnext 8 uidvalidity 1)\r\n", 0, "inbox", 8, 1},
    {"* STATUS \"a\\\"q\" (UIDNEXT 4)\r\n", 0, "a\"q", 4, 0},
    {"* STATUS INBOX (UIDNEXT 99999999999 UIDVALIDITY 1)\r\n", -1, NULL, 0, 0},
    {"* STATUS INBOX (UIDNEXT x)\r\n", -1, NULL, 0, 0},
    {"* STATUS INBOX UIDNEXT 3\r\n", -1, NULL, 0, 0},
    {"* LIST () \"/\" INBOX\r\n", -1, NULL, 0, 0},
    {"A1 OK STATUS done\r\n", -1, NULL, 0, 0},
    {"* STATUS INBOX (UIDNEXT 3\r\n", -1, NULL, 0, 0},
};

static void test_status(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof status_rows / sizeof status_rows[0]; i++) {
        const struct status_row *row = &status_rows[i];
        char name[64];
        uint32_t next = 0, validity = 0;
        int rc = imap_parse_status(row->resp, strlen(row->resp), name, sizeof name, &next, &validity);
        if (rc != row->rc)
            fail_msg("row %zu (%s): rc %d, want %d", i, row->resp, rc, row->rc);
        if (rc == 0) {
            assert_string_equal(name, row->mailbox);
            assert_int_equal(next, row->uidnext);
            assert_int_equal(validity, row->uidvalidity);
        }
    }
}

/* Each row is one SELECT/EXAMINE answer line applied to a struct
 * starting from {1, 2, 3, 0}: rc, then the fields after. */
struct select_row {
    const char *resp;
    int rc;
    uint32_t uidvalidity, uidnext, exists;
    int has_uidnext;
};

static const struct select_row select_rows[] = {
    {"* OK [UIDVALIDITY 1796618884] UIDs valid\r\n", 0, 1796618884u, 2, 3, 0},
    {"* OK [UIDNEXT 4] Predicted next UID\r\n", 0, 1, 4, 3, 1},
    {"* ok [uidnext 9]\r\n", 0, 1, 9, 3, 1},
    {"* 17 EXISTS\r\n", 0, 1, 2, 17, 0},
    {"* 0 exists\r\n", 0, 1, 2, 0, 0},
    {"* 5 RECENT\r\n", -1, 1, 2, 3, 0},
    {"* OK [UNSEEN 3] First unseen.\r\n", -1, 1, 2, 3, 0},
    {"* OK [PERMANENTFLAGS (\\Deleted \\Seen \\*)] Flags permitted.\r\n", -1, 1, 2, 3, 0},
    {"* FLAGS (\\Answered \\Flagged \\Deleted \\Seen \\Draft)\r\n", -1, 1, 2, 3, 0},
    {"* OK [UIDNEXT 99999999999]\r\n", -1, 1, 2, 3, 0},
    {"* OK [UIDNEXT x]\r\n", -1, 1, 2, 3, 0},
    {"* OK [UIDNEXT 4\r\n", -1, 1, 2, 3, 0},
    {"* OK UIDNEXT 4\r\n", -1, 1, 2, 3, 0},
    {"* 3 FETCH (FLAGS (\\Seen))\r\n", -1, 1, 2, 3, 0},
    {"A4 OK [READ-ONLY] Examine completed\r\n", -1, 1, 2, 3, 0},
    {"* STATUS INBOX (UIDNEXT 3 UIDVALIDITY 1)\r\n", -1, 1, 2, 3, 0},
};

static void test_select(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof select_rows / sizeof select_rows[0]; i++) {
        const struct select_row *row = &select_rows[i];
        struct imap_select sel = {1, 2, 3, 0};
        int rc = imap_parse_select(row->resp, strlen(row->resp), &sel);
        if (rc != row->rc || sel.uidvalidity != row->uidvalidity || sel.uidnext != row->uidnext ||
            sel.exists != row->exists || sel.has_uidnext != row->has_uidnext)
            fail_msg("row %zu (%s): rc %d validity %u next %u exists %u has_next %d", i, row->resp, rc,
                     sel.uidvalidity, sel.uidnext, sel.exists, sel.has_uidnext);
    }
}

/* imap_fetch_plan: how many messages one fetch asks for. */
struct plan_row {
    uint32_t size; /* every message of the row is this big */
    size_t n, cap, want;
};

static const struct plan_row plan_rows[] = {
    {1400, 40, 50, 15},     /* 10 such passed against Dovecot, 20 failed */
    {1400, 5, 50, 5},       /* fewer than the plan: all of them */
    {1400, 40, 8, 8},       /* the cap (halved after -E2BIG) wins */
    {1400, 40, 500, 15},    /* a cap above IMAP_FETCH_BATCH is IMAP_FETCH_BATCH */
    {200, 500, 50, 29},     /* small replies: many at once */
    {200, 500, 20, 20},
    {10000, 40, 50, 6},
    {65536, 10, 50, 2},
    {5000000, 10, 50, 1},   /* bigger than the prefixes: weighs the prefixes, and one always goes */
    {0, 100, 50, 50},       /* all gone: they weigh nothing */
    {1400, 0, 50, 0},
};

static void test_fetch_plan(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof plan_rows / sizeof plan_rows[0]; i++) {
        const struct plan_row *row = &plan_rows[i];
        uint32_t sizes[500];
        for (size_t k = 0; k < row->n; k++)
            sizes[k] = row->size;
        size_t got = imap_fetch_plan(sizes, row->n, row->cap);
        if (got != row->want)
            fail_msg("row %zu (size %u, n %zu, cap %zu): %zu, want %zu", i, row->size, row->n, row->cap, got,
                     row->want);
    }
}

struct uids {
    uint32_t v[16];
    int n;
};

static void add_uid(void *arg, uint32_t n)
{
    struct uids *u = arg;
    if (u->n < 16)
        u->v[u->n++] = n;
}

static void test_search(void **state)
{
    (void)state;
    struct {
        const char *resp;
        int rc, n;
        uint32_t first, last;
    } rows[] = {
        {"* SEARCH 1 2 10 4294967295\r\n", 0, 4, 1, 4294967295u},
        {"* SEARCH\r\n", 0, 0, 0, 0},
        {"* SEARCH 5 (MODSEQ 917162500)\r\n", 0, 1, 5, 5},
        {"* search 3\r\n", 0, 1, 3, 3},
        {"* SEARCH 1 x\r\n", -1, 1, 1, 1},
        {"* SEARCHING 1\r\n", -1, 0, 0, 0},
        {"* 3 EXISTS\r\n", -1, 0, 0, 0},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        struct uids u = {{0}, 0};
        int rc = imap_parse_search(rows[i].resp, strlen(rows[i].resp), add_uid, &u);
        if (rc != rows[i].rc || u.n != rows[i].n)
            fail_msg("row %zu (%s): rc %d n %d", i, rows[i].resp, rc, u.n);
        if (u.n) {
            assert_int_equal(u.v[0], rows[i].first);
            assert_int_equal(u.v[u.n - 1], rows[i].last);
        }
    }
}

static void test_fetch(void **state)
{
    (void)state;
    struct imap_fetch_data f;
    const char *seen = "* 12 FETCH (FLAGS (\\Seen \\Answered) UID 40 RFC822.SIZE 5242880 "
                       "BODY[HEADER]<0> {4}\r\nA: b BODY[TEXT]<0> \"x\\\"y\" MODSEQ (12))\r\n";
    assert_int_equal(imap_parse_fetch(seen, strlen(seen), &f), 0);
    assert_int_equal(f.seq, 12);
    assert_int_equal(f.uid, 40);
    assert_int_equal(f.size, 5242880);
    assert_int_equal(f.seen, 1);
    assert_int_equal(f.has_header, 1);
    assert_int_equal(f.header_len, 4);
    assert_int_equal(f.has_body, 1);
    assert_int_equal(f.body_len, 4); /* raw, still escaped */

    const char *flags_only = "* 3 FETCH (FLAGS (\\Seen))\r\n"; /* another client's change */
    assert_int_equal(imap_parse_fetch(flags_only, strlen(flags_only), &f), 0);
    assert_int_equal(f.has_uid, 0);
    assert_int_equal(f.has_header, 0);

    const char *nil = "* 1 FETCH (UID 2 BODY[HEADER] NIL BODY[TEXT]<0> {0}\r\n)\r\n";
    assert_int_equal(imap_parse_fetch(nil, strlen(nil), &f), 0);
    assert_int_equal(f.has_header, 1);
    assert_int_equal(f.header_len, 0);
    assert_int_equal(f.has_body, 1);
    assert_int_equal(f.body_len, 0);

    const char *other = "* 1 FETCH (UID 2 BODY[HEADER.FIELDS (FROM TO)] {3}\r\nabc INTERNALDATE "
                        "\"02-Mar-2026 10:00:00 +0000\" BODY[HEADER]<0> {2}\r\nhi)\r\n";
    assert_int_equal(imap_parse_fetch(other, strlen(other), &f), 0);
    assert_int_equal(f.header_len, 2); /* HEADER.FIELDS is skipped, HEADER read */
    assert_memory_equal(f.header, "hi", 2);

    const char *bad[] = {
        "* 1 FETCH UID 2\r\n", "* FETCH (UID 2)\r\n", "* 1 FETCH (UID x)\r\n",
        "* 1 FETCH (BODY[HEADER] {9}\r\nshort)\r\n" /* a cut literal is kept as far as it goes */,
    };
    assert_int_equal(imap_parse_fetch(bad[0], strlen(bad[0]), &f), -1);
    assert_int_equal(imap_parse_fetch(bad[1], strlen(bad[1]), &f), -1);
    assert_int_equal(imap_parse_fetch(bad[2], strlen(bad[2]), &f), -1);
    assert_int_equal(imap_parse_fetch(bad[3], strlen(bad[3]), &f), -1);
    assert_int_equal(f.header_len, 8);
}

static void test_list(void **state)
{
    (void)state;
    struct {
        const char *resp;
        int rc, flags;
        const char *name;
    } rows[] = {
        {"* LIST (\\HasNoChildren \\Sent) \"/\" Sent\r\n", 0, IMAP_LIST_SENT, "Sent"},
        {"* LIST (\\Junk) \".\" \"Spam Box\"\r\n", 0, IMAP_LIST_JUNK, "Spam Box"},
        {"* LIST (\\HasNoChildren) \"/\" INBOX\r\n", 0, 0, "INBOX"},
        {"* LIST (\\Noselect \\HasChildren) \"/\" \"[Gmail]\"\r\n", 0, IMAP_LIST_NOSELECT, "[Gmail]"},
        {"* LIST (\\All \\HasNoChildren) NIL {16}\r\n[Gmail]/All Mail\r\n", 0, IMAP_LIST_ALL, "[Gmail]/All Mail"},
        {"* LIST (\\sent) \"/\" \"Sent Messages\"\r\n", 0, IMAP_LIST_SENT, "Sent Messages"},
        {"* LIST \\Sent \"/\" Sent\r\n", -1, 0, NULL},
        {"* LSUB () \"/\" Sent\r\n", -1, 0, NULL},
    };
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        int flags;
        char name[64], delim;
        int rc = imap_parse_list(rows[i].resp, strlen(rows[i].resp), &flags, &delim, name, sizeof name);
        if (rc != rows[i].rc)
            fail_msg("row %zu (%s): rc %d", i, rows[i].resp, rc);
        if (rc == 0) {
            assert_int_equal(flags, rows[i].flags);
            assert_string_equal(name, rows[i].name);
        }
    }
}

static void test_tagged_and_quote(void **state)
{
    (void)state;
    char text[64];
    assert_int_equal(imap_parse_tagged("A003 OK Logged in\r\n", 19, text, sizeof text), 1);
    assert_string_equal(text, "OK Logged in");
    assert_int_equal(imap_parse_tagged("B12 NO [TRYCREATE] Mailbox doesn't exist: Sent\r\n", 48, text, 20), 1);
    assert_string_equal(text, "NO [TRYCREATE] Mail");
    assert_int_equal(imap_parse_tagged("* OK ready\r\n", 12, text, sizeof text), 0);
    assert_int_equal(imap_parse_tagged("+ go ahead\r\n", 12, text, sizeof text), 0);
    assert_int_equal(imap_parse_tagged("Subject: hi\r\n", 13, text, sizeof text), 0);

    char q[32];
    assert_int_equal(imap_quote("INBOX", q, sizeof q), 0);
    assert_string_equal(q, "\"INBOX\"");
    assert_int_equal(imap_quote("a \"b\" \\c", q, sizeof q), 0);
    assert_string_equal(q, "\"a \\\"b\\\" \\\\c\"");
    assert_int_equal(imap_quote("x\r\nA1 LOGOUT", q, sizeof q), -1);
    assert_int_equal(imap_quote("INBOX", q, 7), -1);
}

/* ---- what the watcher hands relance_inbound */

/* ---- CAPABILITY and the Sent folder by name */

struct capability_row {
    const char *resp;
    int rc, caps;
};

static const struct capability_row capability_rows[] = {
    {"* CAPABILITY IMAP4rev1 SASL-IR LITERAL+ ID ENABLE IDLE SORT LIST-EXTENDED SPECIAL-USE UNSELECT\r\n", 0,
     IMAP_CAP_IDLE | IMAP_CAP_LIST_EXTENDED | IMAP_CAP_SPECIAL_USE | IMAP_CAP_UNSELECT},
    /* Courier: neither SPECIAL-USE nor LIST-EXTENDED */
    {"* CAPABILITY IMAP4rev1 UIDPLUS CHILDREN NAMESPACE THREAD=ORDEREDSUBJECT SORT QUOTA IDLE\r\n", 0,
     IMAP_CAP_IDLE},
    {"* capability imap4rev1 special-use\r\n", 0, IMAP_CAP_SPECIAL_USE},
    {"* CAPABILITY IMAP4rev1\r\n", 0, 0},
    {"* CAPABILITY\r\n", 0, 0},
    /* names are whole words */
    {"* CAPABILITY IDLEX XLIST SPECIAL-USEFUL LIST-EXTENDED2\r\n", 0, 0},
    /* the greeting's and the login's form */
    {"* OK [CAPABILITY IMAP4rev1 IDLE SPECIAL-USE] Dovecot ready.\r\n", 0, IMAP_CAP_IDLE | IMAP_CAP_SPECIAL_USE},
    {"* OK [CAPABILITY IMAP4rev1 LIST-EXTENDED]\r\n", 0, IMAP_CAP_LIST_EXTENDED},
    {"* OK ready\r\n", -1, 0},
    {"* OK [ALERT] CAPABILITY IDLE\r\n", -1, 0},
    {"* CAPABILITYX IDLE\r\n", -1, 0},
    {"A001 CAPABILITY IDLE\r\n", -1, 0},
    {"* LIST () \"/\" INBOX\r\n", -1, 0},
    {"", -1, 0},
};

static void test_capability(void **state)
{
    (void)state;
    const struct capability_row *rows = capability_rows;
    for (size_t i = 0; i < sizeof capability_rows / sizeof capability_rows[0]; i++) {
        int caps = -1;
        int rc = imap_parse_capability(rows[i].resp, strlen(rows[i].resp), &caps);
        if (rc != rows[i].rc || (rc == 0 && caps != rows[i].caps))
            fail_msg("row %zu (%s): rc %d caps %#x", i, rows[i].resp, rc, (unsigned)caps);
    }
}

struct sent_rank_row {
    const char *name; /* as LIST gives it: modified UTF-7 */
    char delim;
    int rank;         /* -1: not a Sent folder; else compared with the rows' order below */
};

static const struct sent_rank_row sent_rank_rows[] = {
    {"Sent", '/', 0},
    {"sent", '/', 0},
    {"INBOX/Sent", '/', 1},
    {"INBOX.Sent", '.', 1},
    {"inbox.sent", '.', 1},
    {"Sent Items", '/', 2},
    {"SENT ITEMS", '.', 2},
    {"INBOX.Sent Items", '.', 3},
    {"Sent Messages", '/', 4},
    {"Sent Mail", '/', 6},
    {"Gesendete Elemente", '/', 12},
    {"Gesendet", '/', 16},
    {"&AMk-l&AOk-ments envoy&AOk-s", '/', 18},     /* Éléments envoyés */
    {"&AMk-L&AMk-MENTS ENVOY&AMk-S", '/', 18},     /* ÉLÉMENTS ENVOYÉS */
    {"INBOX/&AMk-l&AOk-ments envoy&AOk-s", '/', 19},
    {"Elementos enviados", '/', 24},
    {"Posta inviata", '/', 30},
    {"Verzonden items", '/', 34},
    {"Wys&AUI-ane", '/', 46},                       /* Wysłane */
    {"&BB4EQgQ,BEAEMAQyBDsENQQ9BD0ESwQ1-", '/', 50}, /* Отправленные */
    /* not a Sent folder */
    {"INBOX", '/', -1},
    {"Drafts", '/', -1},
    {"Sent Items Archive", '/', -1},
    {"Archive/Sent", '/', -1},
    {"INBOX.Sent", '/', -1}, /* '.' is not this server's delimiter: a folder named so */
    {"INBOX/Sent", 0, -1},    /* a flat namespace */
    {"INBOX/", '/', -1},
    {"Sentx", '/', -1},
    {"", '/', -1},
    {"&AMk-l&AOk", '/', -1}, /* broken modified UTF-7 */
    {"&Zm9v", '/', -1},
    {"S&-nt", '/', -1},      /* "S&nt" */
};

static void test_sent_rank(void **state)
{
    (void)state;
    const struct sent_rank_row *rows = sent_rank_rows;
    for (size_t i = 0; i < sizeof sent_rank_rows / sizeof sent_rank_rows[0]; i++) {
        int rank = imap_sent_rank(rows[i].name, rows[i].delim);
        if (rank != rows[i].rank)
            fail_msg("row %zu (%s): rank %d, want %d", i, rows[i].name, rank, rows[i].rank);
    }
    /* the order that matters: Sent, then its INBOX twin, then Sent Items */
    assert_true(imap_sent_rank("Sent", '.') < imap_sent_rank("INBOX.Sent", '.'));
    assert_true(imap_sent_rank("INBOX.Sent", '.') < imap_sent_rank("Sent Items", '.'));
    assert_int_equal(imap_sent_rank(NULL, '/'), -1);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_reader_pieces),  cmocka_unit_test(test_reader_cap_and_cut),
        cmocka_unit_test(test_status),         cmocka_unit_test(test_select),
        cmocka_unit_test(test_fetch_plan),
        cmocka_unit_test(test_search),
        cmocka_unit_test(test_fetch),          cmocka_unit_test(test_list),
        cmocka_unit_test(test_tagged_and_quote),
        cmocka_unit_test(test_capability),     cmocka_unit_test(test_sent_rank),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
