/* cmd/dkim_sign: `relance dkim-sign`, the operator's tool for DKIM keys.
 *
 * Signs a message read from a file or stdin with a key file and prints
 * it with the DKIM-Signature in front (to check a key against a verifier
 * or a mailbox), or prints the DNS TXT record that publishes the key.
 * Owns only the command line and the reading and writing; the signing
 * is dkim's. Never prints key material other than the public key. */
#include "cli.h"
#include "dkim.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define MESSAGE_MAX (64u << 20)

/* One zone-file line; TXT character-strings hold at most 255 bytes. */
static void print_dns(const char *selector, const char *domain, const char *record)
{
    printf("%s._domainkey.%s IN TXT", selector, domain);
    size_t n = strlen(record);
    for (size_t i = 0; i < n; i += 255)
        printf(" \"%.*s\"", (int)(n - i < 255 ? n - i : 255), record + i);
    printf("\n");
}

enum { OPT_KEY, OPT_DOMAIN, OPT_SELECTOR, OPT_PRINT_DNS };

static const struct cli_option options[] = {
    [OPT_KEY] = {"key", 0, "FILE", "the private key (PEM, RSA or Ed25519)", CLI_OPTION_REQUIRED, 0},
    [OPT_DOMAIN] = {"domain", 0, "DOMAIN", "the signing domain (d=)", CLI_OPTION_REQUIRED, 0},
    [OPT_SELECTOR] = {"selector", 0, "SEL", "the selector (s=)", CLI_OPTION_REQUIRED, 0},
    [OPT_PRINT_DNS] = {"print-dns", 0, NULL, "print the DNS TXT record to publish instead", 0, 0},
    {0},
};

static int run(struct cli *cli, const struct cli_args *args)
{
    const char *key_path = cli_args_value(args, OPT_KEY), *domain = cli_args_value(args, OPT_DOMAIN);
    const char *selector = cli_args_value(args, OPT_SELECTOR);
    const char *input = args->n_operands ? args->operands[0] : NULL;
    int print_dns_only = cli_args_count(args, OPT_PRINT_DNS) > 0;
    struct dkim_key *key = NULL;
    struct buf msg = {0};
    char *sig = NULL, *record = NULL;
    int rc = CLI_ERROR;
    char err[512];

    (void)cli;
    if (print_dns_only && input)
        return cli_fail(CLI_USAGE, "dkim-sign: --print-dns takes no message");

    if (dkim_key_load_file(key_path, &key, err, sizeof err) < 0)
        return cli_fail(CLI_ERROR, "%s", err);

    if (print_dns_only) {
        if (dkim_key_record(key, &record) < 0) {
            cli_fail(CLI_ERROR, "dkim-sign: cannot derive the public key");
            goto fail;
        }
        print_dns(selector, domain, record);
        rc = CLI_OK;
        goto fail;
    }

    FILE *f = stdin;
    if (input && strcmp(input, "-") != 0) {
        f = fopen(input, "rb");
        if (!f) {
            cli_fail(CLI_ERROR, "dkim-sign: cannot open %s: %s", input, strerror(errno));
            goto fail;
        }
    }
    int r = cli_read(f, MESSAGE_MAX, 1, &msg);
    if (f != stdin)
        fclose(f);
    if (r < 0) {
        cli_fail(CLI_ERROR, "dkim-sign: cannot read the message: %s", strerror(-r));
        goto fail;
    }
    if (dkim_sign(key, domain, selector, msg.p, msg.len, (int64_t)time(NULL), &sig, err, sizeof err) < 0) {
        cli_fail(CLI_ERROR, "dkim-sign: %s", err);
        goto fail;
    }
    if (fwrite(sig, 1, strlen(sig), stdout) != strlen(sig) || fwrite(msg.p, 1, msg.len, stdout) != msg.len ||
        fflush(stdout) != 0) {
        cli_fail(CLI_ERROR, "dkim-sign: cannot write the signed message");
        goto fail;
    }
    rc = CLI_OK;
fail:
    free(record);
    free(sig);
    buf_free(&msg);
    dkim_key_free(key);
    return rc;
}

const struct cli_command cmd_dkim_sign = {
    .name = "dkim-sign",
    .summary = "sign a message with a DKIM key, or print the DNS record to publish",
    .operands = "[MESSAGE-FILE]",
    .max_operands = 1,
    .about = "Signs the message in MESSAGE-FILE (default: standard input) with the DKIM\n"
             "private key in FILE (PEM, RSA or Ed25519; relaxed/relaxed, rsa-sha256 or\n"
             "ed25519-sha256) for d=DOMAIN s=SEL, and prints it with the DKIM-Signature\n"
             "header in front. Line ends are written as CRLF.\n"
             "\n"
             "With --print-dns (and no MESSAGE-FILE), prints the TXT record to publish\n"
             "instead, as a zone-file line (strings longer than 255 characters split in\n"
             "quoted pieces):\n"
             "  SEL._domainkey.DOMAIN IN TXT \"v=DKIM1; k=rsa; p=...\"\n"
             "\n"
             "Make a key: openssl genpkey -algorithm ed25519 -out dkim.pem\n"
             "        or: openssl genpkey -algorithm RSA -pkeyopt rsa_keygen_bits:2048 -out dkim.pem\n",
    .options = options,
    .run = run,
};
