/* cmd/classify: `relance classify FILE.eml...` — runs the classifier the
 * mailbox watcher uses over files and prints one tab-separated line per
 * file: file, kind, status (or -), bounced recipients (or -). With -v,
 * three more columns: the reason, the Message-ID answered (or -) and the
 * return date of an auto-reply (or -). Needs no configuration and no
 * database. It owns reading the files and the output format; the
 * decisions are classify's. */
#include "classify.h"
#include "cli.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MAX_FILE (64u << 20)

static void print_result(const char *path, const struct classify_result *r, int verbose)
{
    int bounce = r->kind == CLASSIFY_HARD_BOUNCE || r->kind == CLASSIFY_SOFT_BOUNCE;
    printf("%s\t%s\t", path, classify_kind_names[r->kind]);
    int any = 0;
    if (bounce) {
        for (size_t i = 0; i < r->recipient_count; i++)
            if (r->recipients[i].status[0])
                any = 1;
    }
    if (any) {
        for (size_t i = 0; i < r->recipient_count; i++)
            printf("%s%s", i ? "," : "", r->recipients[i].status[0] ? r->recipients[i].status : "-");
    } else {
        fputs("-", stdout);
    }
    fputc('\t', stdout);
    if (bounce && r->recipient_count) {
        for (size_t i = 0; i < r->recipient_count; i++)
            printf("%s%s", i ? "," : "", r->recipients[i].address);
    } else {
        fputs("-", stdout);
    }
    if (verbose) {
        printf("\t%s%s", classify_reason_names[r->reason], r->is_block ? "+block" : "");
        printf("\t%s", r->message_id[0] ? r->message_id : "-");
        if (r->has_return_date)
            printf("\t%04d-%02d-%02d", r->return_year, r->return_month, r->return_day);
        else
            fputs("\t-", stdout);
    }
    fputc('\n', stdout);
}

enum { OPT_VERBOSE };

static const struct cli_option options[] = {
    [OPT_VERBOSE] = {"verbose", 'v', NULL,
                     "add the bounce reason (with \"+block\" for a policy block),\n"
                     "the Message-ID answered and an auto-reply's return date", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    (void)cli;
    int verbose = cli_args_count(args, OPT_VERBOSE) > 0, rc = CLI_OK;
    char **files = args->operands;
    for (int i = 0; i < args->n_operands; i++) {
        struct buf b = {0};
        int e = cli_read_file(files[i], MAX_FILE, 0, &b);
        if (e < 0) {
            buf_free(&b);
            cli_fail(CLI_ERROR, "classify: cannot read %s: %s", files[i], strerror(-e));
            rc = CLI_ERROR;
            continue;
        }
        struct classify_result r;
        e = classify_message(b.p, b.len, &r);
        buf_free(&b);
        if (e < 0) {
            cli_fail(CLI_ERROR, "classify: %s: out of memory", files[i]);
            rc = CLI_ERROR;
            continue;
        }
        print_result(files[i], &r, verbose);
    }
    if (fflush(stdout) != 0)
        return cli_fail(CLI_ERROR, "classify: cannot write the output");
    return rc;
}

const struct cli_command cmd_classify = {
    .name = "classify",
    .summary = "classify .eml files: reply, auto-reply, bounce, unsubscribe",
    .operands = "FILE.eml...",
    .min_operands = 1,
    .max_operands = -1,
    .about = "Reads each message (RFC 5322, CRLF or LF) and prints one tab-separated line:\n"
             "  file, kind, status (or -), bounced recipients comma-separated (or -)\n"
             "Kinds: human_reply, auto_reply, hard_bounce, soft_bounce,\n"
             "       unsubscribe_request, other.\n"
             "\n"
             "Exit status: 0 all files read, 1 a file could not be read, 2 usage.\n",
    .options = options,
    .run = run,
};
