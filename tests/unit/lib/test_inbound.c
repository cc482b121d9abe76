/* Unit tests for lib/inbound: what the watcher hands relance_inbound (its Message-ID,
 * From, the references newest first and a bounce's recipients as
 * PostgreSQL arrays), read from whole messages. */
#include "classify.h"
#include "inbound.h"

#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <cmocka.h>


static void test_inbound_reply(void **state)
{
    (void)state;
    const char msg[] = "From: =?utf-8?q?Zo=C3=A9?= <Zoe@Prospects.Example>\r\n"
                       "To: alice@acme.example\r\n"
                       "Subject: Re: An idea\r\n"
                       "Message-ID: <r1@mail.prospects.example>\r\n"
                       "In-Reply-To: <s2@acme.example>\r\n"
                       "References: <s1@acme.example>\r\n <s2@acme.example> <x\"y@z>\r\n"
                       "\r\n"
                       "Yes.\r\n";
    struct classify_result c;
    struct inbound in;
    assert_int_equal(classify_message(msg, sizeof msg - 1, &c), 0);
    assert_int_equal(c.kind, CLASSIFY_HUMAN_REPLY);
    assert_int_equal(inbound_read(msg, sizeof msg - 1, &c, &in), 0);
    assert_string_equal(in.message_id, "r1@mail.prospects.example");
    assert_string_equal(in.from, "zoe@prospects.example");
    /* classify's id (In-Reply-To), then References newest first, once each */
    assert_string_equal(in.refs, "{\"s2@acme.example\",\"x\\\"y@z\",\"s1@acme.example\"}");
    assert_string_equal(in.recipients, "{}");
    assert_string_equal(in.return_date, "");
    inbound_free(&in);
}

static void test_inbound_bounce(void **state)
{
    (void)state;
    const char msg[] = "From: MAILER-DAEMON@mx.example (Mail Delivery System)\r\n"
                       "To: alice@acme.example\r\n"
                       "Subject: Undelivered Mail Returned to Sender\r\n"
                       "MIME-Version: 1.0\r\n"
                       "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\r\n"
                       "\r\n"
                       "--B\r\nContent-Type: text/plain\r\n\r\nYour message could not be delivered.\r\n"
                       "--B\r\nContent-Type: message/delivery-status\r\n\r\n"
                       "Reporting-MTA: dns; mx.example\r\n\r\n"
                       "Final-Recipient: rfc822; P3@Gone.Example\r\nAction: failed\r\nStatus: 5.1.1\r\n"
                       "Diagnostic-Code: smtp; 550 5.1.1 User unknown\r\n\r\n"
                       "--B\r\nContent-Type: text/rfc822-headers\r\n\r\n"
                       "From: alice@acme.example\r\nTo: p3@gone.example\r\nMessage-ID: <s9@acme.example>\r\n"
                       "Subject: An idea\r\n\r\n"
                       "--B--\r\n";
    struct classify_result c;
    struct inbound in;
    assert_int_equal(classify_message(msg, sizeof msg - 1, &c), 0);
    assert_int_equal(c.kind, CLASSIFY_HARD_BOUNCE);
    assert_int_equal(inbound_read(msg, sizeof msg - 1, &c, &in), 0);
    assert_string_equal(in.message_id, "");
    assert_string_equal(in.from, "mailer-daemon@mx.example");
    assert_string_equal(in.refs, "{\"s9@acme.example\"}");
    assert_string_equal(in.recipients, "{\"p3@gone.example\"}");
    inbound_free(&in);
}

static void test_inbound_plain_from(void **state)
{
    (void)state;
    const char msg[] = "From: bob@b.example (Bob)\r\nSubject: x\r\n\r\nhello\r\n";
    struct inbound in;
    assert_int_equal(inbound_read(msg, sizeof msg - 1, NULL, &in), 0);
    assert_string_equal(in.from, "bob@b.example");
    assert_string_equal(in.refs, "{}");
    inbound_free(&in);
}

/* The arrival: the topmost Received field's date (the delivering server's,
 * after the last semicolon, folded or not), not a later hop's nor Date. */
static void test_inbound_received(void **state)
{
    (void)state;
    const char msg[] = "Return-Path: <zoe@prospects.example>\r\n"
                       "Received: from mx.prospects.example (mx.prospects.example [192.0.2.1])\r\n"
                       "\tby mail.acme.example (Postfix; release 3, patch 7) with LMTP id x1;\r\n"
                       "\tMon, 2 Mar 2026 10:00:05 +0100\r\n"
                       "Received: by mx.prospects.example; Mon, 2 Mar 2026 08:00:00 +0000\r\n"
                       "Date: Sun, 1 Mar 2026 00:00:00 +0000\r\n"
                       "From: zoe@prospects.example\r\n\r\nYes.\r\n";
    struct inbound in;
    assert_int_equal(inbound_read(msg, sizeof msg - 1, NULL, &in), 0);
    assert_int_equal((long long)in.received, 1772442005LL); /* 2026-03-02T09:00:05Z */
    inbound_free(&in);
    const char none[] = "From: zoe@prospects.example\r\nDate: Mon, 2 Mar 2026 10:00:05 +0100\r\n\r\nYes.\r\n";
    assert_int_equal(inbound_read(none, sizeof none - 1, NULL, &in), 0);
    assert_int_equal((long long)in.received, 0); /* no Received field: no arrival, not the Date */
    inbound_free(&in);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_inbound_reply),
        cmocka_unit_test(test_inbound_bounce),
        cmocka_unit_test(test_inbound_plain_from),
        cmocka_unit_test(test_inbound_received),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
