/* Unit tests of classify: the kinds in English, French, German,
 * Spanish, Italian, Portuguese and Dutch, vacation-program replies, return dates, the traps (a person who mentions being out of
 * office, a quoted auto-reply, a DSN that carries Auto-Submitted),
 * bounce status/recipient/Message-ID, encodings and hostile input.
 * Table-driven. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <cmocka.h>

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "classify.h"

/* Monday 25 November 2024 */
#define HDR(from, subject, extra)                                                          \
    "From: " from "\nTo: alice@acme.example\nSubject: " subject "\n"                        \
    "Date: Mon, 25 Nov 2024 10:00:00 +0100\nMessage-ID: <x1@remote.example>\n" extra "\n"

#define REPLY "In-Reply-To: <step1@acme.example>\nReferences: <step1@acme.example>\n"

struct row {
    const char *name;
    const char *msg;
    enum classify_kind kind;
    const char *status;    /* first recipient's status; NULL: don't care */
    const char *rcpt;      /* first recipient; NULL: don't care */
    const char *ret;       /* return date "YYYY-MM-DD"; "" = none; NULL: don't care */
};

static const struct row rows[] = {
    /* ---- human replies and the traps ---- */
    {"human en", HDR("Bob <bob@prospect.example>", "Re: faster follow-ups", REPLY)
     "Sounds good, can we talk Thursday?\n\nOn Mon, Nov 25, 2024 at 9:00 AM Alice wrote:\n> Hi Bob\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, ""},
    {"trap: out of office next week but interested",
     HDR("Bob <bob@prospect.example>", "Re: faster follow-ups", REPLY)
     "I'm out of office next week but interested - send me the deck?\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"trap: quoted auto-reply in a reply",
     HDR("Bob <bob@prospect.example>", "Re: Automatic reply: faster follow-ups", REPLY)
     "Back now. Yes, let's talk.\n\n-----Original Message-----\nFrom: Bob\nSent: Monday\n"
     "I am currently out of the office with limited access to email until 2 December.\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"trap: quoted OOO with > marks", HDR("Eva <eva@prospect.example>", "Re: hello", REPLY)
     "Happy to chat.\n\n> I am out of the office until Monday.\n> I will respond upon my return.\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"human fr", HDR("Jean <jean@prospect.example>", "RE: votre offre", REPLY)
     "Bonjour, oui cela m'intéresse.\n\nLe lun. 25 nov. 2024 à 09:00, Alice a écrit :\n> Bonjour\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"human de", HDR("Jan <jan@prospect.example>", "AW: Ihr Angebot", REPLY)
     "Hallo, gerne nächste Woche.\n\nAm 25.11.2024 um 09:00 schrieb Alice:\n> Hallo\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"human es", HDR("Ana <ana@prospect.example>", "RE: su oferta", REPLY)
     "Hola, me interesa. Hablamos?\n\nEl lun, 25 nov 2024 a las 9:00, Alice escribió:\n> Hola\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"human html only", HDR("Bob <bob@prospect.example>", "Re: hi",
                            REPLY "Content-Type: text/html; charset=utf-8\n")
     "<div>Yes please&nbsp;call me</div><div class=\"gmail_quote\">On Mon Alice wrote: "
     "unsubscribe link</div>",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},

    /* ---- auto-replies ---- */
    {"auto-submitted en", HDR("Bob <bob@prospect.example>", "Out of Office: faster follow-ups",
                              "Auto-Submitted: auto-replied\n")
     "I am out of the office until 3 December with limited access to email.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-03"},
    {"exchange en", HDR("Bob <bob@prospect.example>", "Automatic reply: faster follow-ups",
                        "X-Auto-Response-Suppress: All\nX-MS-Exchange-Inbox-Rules-Loop: bob@prospect.example\n")
     "I'm away until December 3rd, 2024.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-03"},
    {"body only en", HDR("Bob <bob@prospect.example>", "faster follow-ups", "")
     "I am currently out of the office on annual leave and will respond upon my return on Monday.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-02"},
    {"fr", HDR("Jean <jean@prospect.example>",
               "=?UTF-8?Q?R=C3=A9ponse_automatique=C2=A0:_votre_offre?=",
               "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n")
     "Bonjour, je suis absent du bureau jusqu'au 2 d=C3=A9cembre inclus.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-02"},
    {"fr latin1", HDR("Jean <jean@prospect.example>", "Absence", "Precedence: auto_reply\n"
                      "Content-Type: text/plain; charset=iso-8859-1\n")
     "Je serai de retour le lundi 9 d\xE9" "cembre.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-09"},
    {"de", HDR("Jan <jan@prospect.example>", "Abwesenheitsnotiz: Ihr Angebot",
               "Auto-Submitted: auto-replied\nContent-Type: text/plain; charset=utf-8\n")
     "Ich bin bis zum 4. Dezember nicht im Büro.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-04"},
    {"de numeric", HDR("Jan <jan@prospect.example>", "Automatische Antwort: Angebot",
                       "X-Autoreply: yes\n")
     "Ich bin ab dem 06.12.2024 wieder erreichbar.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-06"},
    {"es", HDR("Ana <ana@prospect.example>",
               "=?ISO-8859-1?Q?Respuesta_autom=E1tica:_su_oferta?=", "Auto-Submitted: auto-replied\n")
     "Estoy fuera de la oficina hasta el 1 de diciembre.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-01"},
    {"es weekday", HDR("Ana <ana@prospect.example>", "Fuera de la oficina", "X-Autorespond: yes\n")
     "Estoy de vacaciones, vuelvo hasta el viernes.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-11-29"},
    {"en weekday", HDR("Bob <bob@prospect.example>", "Auto reply", "Auto-Submitted: auto-replied\n")
     "Out of office, back on Wednesday.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-11-27"},
    {"iso date", HDR("Bob <bob@prospect.example>", "Out of office", "Auto-Submitted: auto-replied\n")
     "Away until 2024-12-10.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-10"},
    {"us numeric", HDR("Bob <bob@prospect.example>", "Out of office", "Auto-Submitted: auto-replied\n")
     "I will be out of the office until 12/4/2024.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-04"},
    {"next year", HDR("Bob <bob@prospect.example>", "Out of office", "Auto-Submitted: auto-replied\n")
     "Back on January 6th.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2025-01-06"},
    {"no date", HDR("Bob <bob@prospect.example>", "Auto reply", "Precedence: bulk\n")
     "Thank you for your e-mail. I will reply as soon as possible.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, ""},
    {"apple vacation", HDR("Bob <bob@prospect.example>", "Auto reply: hi", "X-Apple-Action: VACATION\n")
     "I'm only sleeping.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, ""},

    /* ---- removal requests ---- */
    {"unsubscribe subject", HDR("Bob <bob@prospect.example>", "unsubscribe", "") "\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"unsub en", HDR("Bob <bob@prospect.example>", "Re: hello", REPLY)
     "Please remove me from your list.\n\nOn Mon Alice wrote:\n> hi\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"unsub fr", HDR("Jean <jean@prospect.example>", "RE: offre", REPLY)
     "Merci de me retirer de votre liste, je ne souhaite plus recevoir vos messages.\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"unsub de", HDR("Jan <jan@prospect.example>", "AW: Angebot", REPLY)
     "Bitte tragen Sie mich aus Ihrem Verteiler aus.\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"unsub es", HDR("Ana <ana@prospect.example>", "RE: oferta", REPLY)
     "Por favor, darme de baja de esta lista.\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"quoted footer is not a request", HDR("Bob <bob@prospect.example>", "Re: hello", REPLY)
     "Interesting, tell me more.\n\nOn Mon Alice wrote:\n> To unsubscribe reply STOP\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},

    /* ---- bounces ---- */
    {"postfix dsn with auto-submitted (trap)",
     HDR("MAILER-DAEMON@mx.acme.example (Mail Delivery System)", "Undelivered Mail Returned to Sender",
         "Auto-Submitted: auto-replied\nContent-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: text/plain\n\n<bob@prospect.example>: host mx.prospect.example said: 550 5.1.1\n"
     "    <bob@prospect.example>: Recipient address rejected: User unknown in virtual mailbox\n"
     "    table (in reply to RCPT TO command)\n"
     "--B\nContent-Type: message/delivery-status\n\nReporting-MTA: dns; mx.acme.example\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: failed\nStatus: 5.1.1\n"
     "Diagnostic-Code: smtp; 550 5.1.1 <bob@prospect.example>: Recipient address rejected: User unknown\n\n"
     "--B\nContent-Type: text/rfc822-headers\n\nMessage-ID: <step1@acme.example>\nTo: bob@prospect.example\n"
     "--B--\n",
     CLASSIFY_HARD_BOUNCE, "5.1.1", "bob@prospect.example", NULL},
    {"mailbox full says 5.1.1 (soft)",
     HDR("MAILER-DAEMON@mx.acme.example", "Delivery Status Notification (Failure)",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\n\nfailed\n--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: failed\nStatus: 5.1.1\n"
     "Diagnostic-Code: smtp; 552 5.1.1 Mailbox full\n--B--\n",
     CLASSIFY_SOFT_BOUNCE, "5.1.1", "bob@prospect.example", NULL},
    {"spam block 5.7.1 (soft, block)",
     HDR("MAILER-DAEMON@mx.acme.example", "Undelivered Mail Returned to Sender",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: failed\nStatus: 5.7.1\n"
     "Diagnostic-Code: smtp; 554 5.7.1 Service unavailable; client host blocked using zen.spamhaus.org\n--B--\n",
     CLASSIFY_SOFT_BOUNCE, "5.7.1", "bob@prospect.example", NULL},
    {"outlook 5.7.515 dsn: the sender refused (soft, block)",
     HDR("MAILER-DAEMON@mx.acme.example", "Undelivered Mail Returned to Sender",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: failed\nStatus: 5.7.515\n"
     "Diagnostic-Code: smtp; 550 5.7.515 Access denied, sending domain acme.example doesn't meet the\n"
     "    required authentication level.\n--B--\n",
     CLASSIFY_SOFT_BOUNCE, "5.7.515", "bob@prospect.example", NULL},
    {"gmail 5.7.26 in an exim text bounce: the sender refused",
     HDR("Mail Delivery System <Mailer-Daemon@mx.acme.example>", "Mail delivery failed: returning message to sender",
         "X-Failed-Recipients: bob@prospect.example\n")
     "This message was created automatically by mail delivery software.\n\n"
     "A message that you sent could not be delivered to one or more of its\n"
     "recipients. This is a permanent error. The following address(es) failed:\n\n"
     "  bob@prospect.example\n"
     "    host gmail-smtp-in.l.google.com [142.250.1.26]\n"
     "    SMTP error from remote mail server after end of data:\n"
     "    550-5.7.26 Unauthenticated email from acme.example is not accepted due to domain's DMARC policy.\n",
     CLASSIFY_SOFT_BOUNCE, "5.7.26", "bob@prospect.example", NULL},
    {"450 4.1.1 and Action: failed: final, the mailbox does not exist (hard)",
     HDR("MAILER-DAEMON@mx.acme.example", "Undelivered Mail Returned to Sender",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: failed\nStatus: 4.1.1\n"
     "Diagnostic-Code: smtp; 450 4.1.1 <bob@prospect.example>: Recipient address rejected: User unknown in "
     "local recipient table\n--B--\n",
     CLASSIFY_HARD_BOUNCE, "4.1.1", "bob@prospect.example", NULL},
    {"450 4.1.1 still being retried (delayed): soft",
     HDR("MAILER-DAEMON@mx.acme.example", "Delayed Mail (still being retried)",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: delayed\nStatus: 4.1.1\n"
     "Diagnostic-Code: smtp; 450 4.1.1 <bob@prospect.example>: Recipient address rejected: User unknown in "
     "local recipient table\n--B--\n",
     CLASSIFY_SOFT_BOUNCE, "4.1.1", "bob@prospect.example", NULL},
    {"bare user unknown, the 550 reply echoes the recipient's path: RCPT refused (hard)",
     HDR("MAILER-DAEMON@mx.acme.example", "Failure Notice", "")
     "Sorry, we were unable to deliver your message to the following address.\n\n"
     "<bob@prospect.example>:\n550: <bob@prospect.example>: User unknown\n\n"
     "--- Below this line is a copy of the message.\n\nMessage-ID: <step1@acme.example>\n"
     "To: bob@prospect.example\n",
     CLASSIFY_HARD_BOUNCE, NULL, "bob@prospect.example", NULL},
    {"SES bounce notification through SNS (JSON inside a JSON string)",
     HDR("AWS Notifications <no-reply@sns.amazonaws.com>", "AWS Notification Message", "")
     "{\n  \"Type\" : \"Notification\",\n  \"Message\" : \"{\\\"notificationType\\\":\\\"Bounce\\\","
     "\\\"bounce\\\":{\\\"bounceType\\\":\\\"Permanent\\\",\\\"bouncedRecipients\\\":[{"
     "\\\"emailAddress\\\":\\\"bob@prospect.example\\\",\\\"status\\\":\\\"5.1.1\\\","
     "\\\"diagnosticCode\\\":\\\"smtp; 550 5.1.1 user unknown\\\"}]}}\"\n}\n",
     CLASSIFY_HARD_BOUNCE, "5.1.1", "bob@prospect.example", NULL},
    {"delayed dsn (soft)",
     HDR("MAILER-DAEMON@mx.acme.example", "Delayed Mail (still being retried)",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: delayed\nStatus: 4.4.1\n--B--\n",
     CLASSIFY_SOFT_BOUNCE, "4.4.1", "bob@prospect.example", NULL},
    {"delivered dsn (other)",
     HDR("MAILER-DAEMON@mx.acme.example", "Delivery report",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: delivered\nStatus: 2.0.0\n--B--\n",
     CLASSIFY_OTHER, NULL, NULL, NULL},
    {"exim text bounce", HDR("Mail Delivery System <Mailer-Daemon@mx.acme.example>",
                             "Mail delivery failed: returning message to sender",
                             "X-Failed-Recipients: bob@prospect.example\nAuto-Submitted: auto-replied\n")
     "This message was created automatically by mail delivery software.\n\n"
     "A message that you sent could not be delivered to one or more of its\n"
     "recipients. This is a permanent error. The following address(es) failed:\n\n"
     "  bob@prospect.example\n    host mx.prospect.example [192.0.2.1]\n"
     "    SMTP error from remote mail server after RCPT TO:<bob@prospect.example>:\n"
     "    550 5.1.1 No such user here\n\n"
     "------ This is a copy of the message, including all the headers. ------\n\n"
     "Message-ID: <step2@acme.example>\nTo: bob@prospect.example\n\nHi Bob\n",
     CLASSIFY_HARD_BOUNCE, "5.1.1", "bob@prospect.example", NULL},
    {"qmail host unknown", HDR("MAILER-DAEMON@mx.acme.example", "failure notice", "")
     "Hi. This is the qmail-send program at mx.acme.example.\n"
     "I'm afraid I wasn't able to deliver your message to the following addresses.\n"
     "This is a permanent error; I've given up. Sorry it didn't work out.\n\n"
     "<bob@nowhere.example>:\nSorry, I couldn't find any host named nowhere.example. (#5.1.2)\n\n"
     "--- Below this line is a copy of the message.\n\nTo: bob@nowhere.example\n",
     CLASSIFY_HARD_BOUNCE, "5.1.2", "bob@nowhere.example", NULL},
    {"rejected after DATA (soft)",
     HDR("MAILER-DAEMON@mx.acme.example", "Undelivered Mail Returned to Sender",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\n\n<bob@prospect.example>: host mx said: 550 Unknown user (in reply to end of DATA command)\n"
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: failed\nStatus: 5.0.0\n"
     "Diagnostic-Code: smtp; 550 Unknown user\n--B--\n",
     CLASSIFY_SOFT_BOUNCE, NULL, "bob@prospect.example", NULL},

    /* ---- generalisation: vacation programs, seven languages, MAIL FROM ---- */
    {"vacation program: Away subject, no Auto-Submitted",
     HDR("Sam <sam@prospect.example>", "Away: faster follow-ups", "")
     "I am on vacation until Monday 2 December and will read your mail when I get back.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, "2024-12-02"},
    {"Precedence: bulk and an away text", HDR("Sam <sam@prospect.example>", "Re: faster follow-ups",
                                             "Precedence: bulk\n")
     "I am away until 2 December.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, NULL},
    {"it vacation, no header", HDR("Marco <marco@prospect.example>", "Fuori sede: la vostra offerta", "")
     "Grazie per la sua email. Sarò in ferie e risponderò al mio rientro.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, NULL},
    {"nl vacation, no header", HDR("Daan <daan@prospect.example>", "Afwezig: uw aanbod", "")
     "Bedankt voor uw bericht. Ik ben met vakantie en lees mijn e-mail na terugkomst.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, NULL},
    {"pt vacation, no header", HDR("Joao <joao@prospect.example>", "Ausente: a sua proposta", "")
     "Obrigado pela sua mensagem. Estarei de f\xc3\xa9rias e responderei assim que regressar.\n",
     CLASSIFY_AUTO_REPLY, NULL, NULL, NULL},
    {"es unsubscribe in words", HDR("Ana <ana@prospect.example>", "RE: su oferta", REPLY)
     "Por favor, elim\xc3\xadneme de su lista de correo.\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"de unsubscribe in words", HDR("Jan <jan@prospect.example>", "AW: Ihr Angebot", REPLY)
     "Bitte nehmen Sie mich aus Ihrem Verteiler.\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"nl unsubscribe in words", HDR("Daan <daan@prospect.example>", "Re: uw aanbod", REPLY)
     "Haal mij alstublieft van uw verzendlijst.\n",
     CLASSIFY_UNSUBSCRIBE_REQUEST, NULL, NULL, NULL},
    {"it short no over an Outlook-quoted footer", HDR("Marco <marco@prospect.example>",
                                                     "R: la vostra offerta", REPLY)
     "Non mi interessa, grazie.\n\nDa: Alice <alice@acme.example>\nInviato: luned\xc3\xac 25 novembre 2024\n"
     "Oggetto: la vostra offerta\n\nSe non desidera altre email, risponda cancellami.\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"nl short no over a quoted footer", HDR("Daan <daan@prospect.example>", "Re: uw aanbod", REPLY)
     "Geen interesse, bedankt.\n\nOp ma 25 nov. 2024 om 09:00 schreef Alice <alice@acme.example>:\n"
     "Wilt u geen e-mails meer? Antwoord met afmelden.\n",
     CLASSIFY_HUMAN_REPLY, NULL, NULL, NULL},
    {"exim: refused after MAIL FROM is about our sender (soft)",
     HDR("Mail Delivery System <Mailer-Daemon@mx.acme.example>",
         "Mail delivery failed: returning message to sender",
         "X-Failed-Recipients: bob@prospect.example\nAuto-Submitted: auto-replied\n")
     "A message that you sent could not be delivered to one or more of its\n"
     "recipients. This is a permanent error. The following address(es) failed:\n\n"
     "  bob@prospect.example\n    host mx.prospect.example [192.0.2.1]\n"
     "    SMTP error from remote mail server after MAIL FROM:<alice@acme.example>:\n"
     "    550 5.1.7 No such domain acme.example\n\n"
     "------ This is a copy of the message, including all the headers. ------\n\n"
     "Message-ID: <step2@acme.example>\nTo: bob@prospect.example\n\nHi Bob\n",
     CLASSIFY_SOFT_BOUNCE, "5.1.7", "bob@prospect.example", NULL},
    {"521 5.3.2 not accepting network messages (hard)",
     HDR("MAILER-DAEMON@mx.acme.example", "Undelivered Mail Returned to Sender",
         "Content-Type: multipart/report; report-type=delivery-status; boundary=\"B\"\n")
     "--B\nContent-Type: message/delivery-status\n\n"
     "Final-Recipient: rfc822; bob@prospect.example\nAction: failed\nStatus: 5.3.2\n"
     "Diagnostic-Code: smtp; 521 5.3.2 <bob@prospect.example>: System not accepting network messages\n--B--\n",
     CLASSIFY_HARD_BOUNCE, "5.3.2", "bob@prospect.example", NULL},

    /* ---- others ---- */
    {"feedback report", HDR("feedback@isp.example", "Abuse report",
                            "Content-Type: multipart/report; report-type=feedback-report; boundary=B\n")
     "--B\n\nThis is an abuse report\n--B\nContent-Type: message/feedback-report\n\n"
     "Feedback-Type: abuse\n--B--\n",
     CLASSIFY_OTHER, NULL, NULL, NULL},
    {"newsletter", HDR("News <noreply@news.example>", "Our November digest",
                       "List-Unsubscribe: <mailto:unsub@news.example>\n")
     "Click to unsubscribe.\n",
     CLASSIFY_OTHER, NULL, NULL, NULL},
    {"no headers at all", "just some text without any header block\n", CLASSIFY_OTHER, NULL,
     NULL, NULL},
    {"empty", "", CLASSIFY_OTHER, NULL, NULL, NULL},
};

static void check_row(const struct row *r, const char *msg)
{
    struct classify_result res;
    assert_int_equal(classify_message(msg, strlen(msg), &res), 0);
    if (res.kind != r->kind)
        fail_msg("%s: kind %s, want %s", r->name, classify_kind_names[res.kind],
                 classify_kind_names[r->kind]);
    if (r->status) {
        assert_true(res.recipient_count > 0);
        if (strcmp(res.recipients[0].status, r->status) != 0)
            fail_msg("%s: status '%s', want '%s'", r->name, res.recipients[0].status, r->status);
    }
    if (r->rcpt) {
        assert_true(res.recipient_count > 0);
        if (strcmp(res.recipients[0].address, r->rcpt) != 0)
            fail_msg("%s: recipient '%s', want '%s'", r->name, res.recipients[0].address, r->rcpt);
    }
    if (r->ret) {
        char got[16] = "";
        if (res.has_return_date)
            snprintf(got, sizeof got, "%04d-%02d-%02d", res.return_year, res.return_month,
                     res.return_day);
        if (strcmp(got, r->ret) != 0)
            fail_msg("%s: return date '%s', want '%s'", r->name, got, r->ret);
    }
}

static void test_rows(void **state)
{
    (void)state;
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++) {
        check_row(&rows[i], rows[i].msg);
        /* the same with CRLF line ends */
        size_t n = strlen(rows[i].msg), k = 0;
        char *c = malloc(2 * n + 1);
        assert_non_null(c);
        for (size_t j = 0; j < n; j++) {
            if (rows[i].msg[j] == '\n')
                c[k++] = '\r';
            c[k++] = rows[i].msg[j];
        }
        c[k] = '\0';
        check_row(&rows[i], c);
        free(c);
    }
}

static const char *row_msg(const char *name)
{
    for (size_t i = 0; i < sizeof rows / sizeof rows[0]; i++)
        if (strcmp(rows[i].name, name) == 0)
            return rows[i].msg;
    fail_msg("no row %s", name);
    return NULL;
}

static void test_message_ids(void **state)
{
    (void)state;
    const struct {
        const char *msg, *want;
    } ids[] = {
        {HDR("Bob <bob@prospect.example>", "Re: x", "In-Reply-To: <a@acme.example>\n") "hi\n",
         "<a@acme.example>"},
        {HDR("Bob <bob@prospect.example>", "Re: x",
             "References: <first@acme.example> <second@acme.example>\n") "hi\n",
         "<second@acme.example>"},
        {row_msg("postfix dsn with auto-submitted (trap)"), "<step1@acme.example>"},
        {row_msg("exim text bounce"), "<step2@acme.example>"}, /* inline copy */
        {HDR("Bob <bob@prospect.example>", "hello", "") "hi\n", ""},
    };
    for (size_t i = 0; i < sizeof ids / sizeof ids[0]; i++) {
        struct classify_result res;
        assert_int_equal(classify_message(ids[i].msg, strlen(ids[i].msg), &res), 0);
        assert_string_equal(res.message_id, ids[i].want);
    }
}

static void test_block_flag(void **state)
{
    (void)state;
    static const struct {
        const char *row;
        int block;
    } b[] = {
        {"postfix dsn with auto-submitted (trap)", 0},
        {"mailbox full says 5.1.1 (soft)", 0},
        {"spam block 5.7.1 (soft, block)", 1},
        {"delayed dsn (soft)", 0},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        const char *m = row_msg(b[i].row);
        struct classify_result res;
        assert_int_equal(classify_message(m, strlen(m), &res), 0);
        if (res.is_block != b[i].block)
            fail_msg("%s: is_block %d", b[i].row, res.is_block);
    }
    assert_true(classify_reason_is_block(CLASSIFY_REASON_SPAM));
    assert_false(classify_reason_is_block(CLASSIFY_REASON_MAILBOX_FULL));
    assert_true(classify_reason_is_hard(CLASSIFY_REASON_HOST_UNKNOWN));
    for (int k = 0; k < CLASSIFY_KIND_COUNT; k++)
        assert_non_null(classify_kind_names[k]);
    for (int k = 0; k < CLASSIFY_REASON_COUNT; k++)
        assert_non_null(classify_reason_names[k]);
}

/* A bounce whose status refuses the sending account carries that status
 * and the server's words, for the account's pause; other bounces none. */
static void test_refusal(void **state)
{
    (void)state;
    static const struct {
        const char *row;
        const char *want;
    } b[] = {
        {"outlook 5.7.515 dsn: the sender refused (soft, block)",
         "550 5.7.515 Access denied, sending domain acme.example doesn't meet the required authentication level."},
        {"gmail 5.7.26 in an exim text bounce: the sender refused",
         "550-5.7.26 Unauthenticated email from acme.example is not accepted due to domain's DMARC policy."},
        {"spam block 5.7.1 (soft, block)", ""},
        {"postfix dsn with auto-submitted (trap)", ""},
        {"delayed dsn (soft)", ""},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) {
        const char *m = row_msg(b[i].row);
        struct classify_result res;
        assert_int_equal(classify_message(m, strlen(m), &res), 0);
        if (strcmp(res.refusal, b[i].want) != 0)
            fail_msg("%s: refusal \"%s\", want \"%s\"", b[i].row, res.refusal, b[i].want);
    }
}

static void test_return_dates(void **state)
{
    (void)state;
    /* Monday 25 November 2024, 09:00 UTC */
    const time_t sent = 1732525200;
    static const struct {
        const char *text, *want; /* NULL: none */
    } d[] = {
        {"I'm out until 3 December", "2024-12-03"},
        {"back on December 3rd", "2024-12-03"},
        {"returning Tuesday, Dec 3, 2024", "2024-12-03"},
        {"jusqu'au 2 décembre", "2024-12-02"},
        {"JUSQU'AU 2 DÉCEMBRE", "2024-12-02"},
        {"de retour le 1er décembre", "2024-12-01"},
        {"bis zum 4. Dezember", "2024-12-04"},
        {"bis 4.12.", "2024-12-04"},
        {"bis 04.12.24", "2024-12-04"},
        {"hasta el 1 de diciembre", "2024-12-01"},
        {"hasta el 1 de diciembre de 2024", "2024-12-01"},
        {"until Friday", "2024-11-29"},
        {"jusqu'à lundi", "2024-12-02"},
        {"bis Montag", "2024-12-02"},
        {"hasta el lunes", "2024-12-02"},
        {"from 20 November until 6 January", "2025-01-06"},
        {"meeting at 14.30 today", NULL},
        {"no date here", NULL},
        {"until 31 February", NULL},
    };
    for (size_t i = 0; i < sizeof d / sizeof d[0]; i++) {
        int y, m, dd;
        int rc = classify_return_date_parse(d[i].text, sent, &y, &m, &dd);
        if (!d[i].want) {
            if (rc == 0)
                fail_msg("'%s': got %04d-%02d-%02d, want none", d[i].text, y, m, dd);
            continue;
        }
        if (rc != 0)
            fail_msg("'%s': no date, want %s", d[i].text, d[i].want);
        char got[16];
        snprintf(got, sizeof got, "%04d-%02d-%02d", y, m, dd);
        if (strcmp(got, d[i].want) != 0)
            fail_msg("'%s': got %s, want %s", d[i].text, got, d[i].want);
    }
}

static void test_hostile(void **state)
{
    (void)state;
    size_t n = 4u << 20;
    char *b = malloc(n + 1);
    assert_non_null(b);
    /* nested multiparts, then a wall of '@' and digits, then OOO words */
    size_t k = 0;
    for (int i = 0; i < 2000 && k + 100 < n / 2; i++)
        k += (size_t)snprintf(b + k, n - k,
                              "From: MAILER-DAEMON@x\nContent-Type: multipart/mixed; boundary=q%d\n\n--q%d\n",
                              i, i);
    while (k + 8 < n) {
        memcpy(b + k, "@5.1.1 \n", 8);
        k += 8;
    }
    b[k] = '\0';
    struct classify_result res;
    assert_int_equal(classify_message(b, k, &res), 0);
    assert_true(res.kind < CLASSIFY_KIND_COUNT);
    memset(b, 'a', n);
    b[n] = '\0';
    assert_int_equal(classify_message(b, n, &res), 0);
    assert_int_equal(res.kind, CLASSIFY_OTHER);
    free(b);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_rows),
        cmocka_unit_test(test_message_ids),
        cmocka_unit_test(test_block_flag),
        cmocka_unit_test(test_refusal),
        cmocka_unit_test(test_return_dates),
        cmocka_unit_test(test_hostile),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
