/* cmd/imap_check: `relance imap-check`, the operator's "can relance read
 * this mailbox?" check and the integration tests' entry to the IMAP
 * client outside `relance serve`.
 *
 * Logs in as a configured account (its imap URL, TLS, CA file and
 * secret, as the watcher does), prints STATUS (UIDNEXT UIDVALIDITY) of
 * each watched folder — read-only, nothing is selected or flagged — and
 * with --append saves a message file into the account's Sent folder (the
 * folder save_sent uses). Owns the command line, the file, the loop's
 * lifetime and the IMAP channel's thread pool (a pool of one: one command
 * at a time); the IMAP is imap.c's, HTTPS for an OAuth2 token curl_uv's.
 * Never prints the password. */
#include "accounts.h"
#include "cli.h"
#include "curl_uv.h"
#include "imap.h"
#include "oauth2.h"
#include "secret.h"
#include "watcher.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX (32u << 20)

struct run {
    struct imap *imap;
    const char **folders;
    size_t next;
    const char *append_path;
    struct buf msg; /* the file to append, CRLF line ends */
    int appending;
    char sent[512];       /* the folder appended to, and how it was found */
    int sent_special;
    int failed;
    char *bearer; /* xoauth2: the access token, for the command to log in with */
};

static void step(struct run *r);

static const char *run_bearer(void *arg)
{
    return ((struct run *)arg)->bearer;
}

/* xoauth2: with the token, the checks start; without, say why. */
static void on_token(int status, const char *token, const char *reason, void *arg)
{
    struct run *r = arg;
    if (status < 0 || !(r->bearer = strdup(token))) {
        if (status != -ECANCELED)
            fprintf(stderr, "relance: no OAuth2 access token: %s\n", reason ? reason : "out of memory");
        r->failed = 1;
        return;
    }
    step(r);
}

static void on_reply(struct imap *im, const struct imap_reply *rep, void *arg)
{
    (void)im;
    struct run *r = arg;
    if (rep->status < 0) {
        fprintf(stderr, "relance: %s: %s\n", r->appending ? "append" : r->folders[r->next - 1], rep->text);
        r->failed = 1;
        return; /* stop at the first failure */
    }
    if (r->appending == 1) { /* the folder list */
        snprintf(r->sent, sizeof r->sent, "%s", rep->folder);
        r->sent_special = rep->special_use;
        r->appending = 2;
        int rc = imap_append(r->imap, r->sent, r->msg.p, r->msg.len, on_reply, r);
        if (rc < 0) {
            fprintf(stderr, "relance: cannot append: %s\n", strerror(-rc));
            r->failed = 1;
        }
        return;
    }
    if (r->appending == 2) { /* the server's OK to the APPEND: only now is it saved */
        printf("appended\t%s\t%s\n", r->sent, r->sent_special ? "special-use" : "by-name");
        return;
    }
    printf("%s\tuidnext=%lu\tuidvalidity=%lu\n", r->folders[r->next - 1], (unsigned long)rep->uidnext,
           (unsigned long)rep->uidvalidity);
    step(r);
}

static void step(struct run *r)
{
    int rc;
    if (r->folders[r->next]) {
        rc = imap_status(r->imap, r->folders[r->next++], on_reply, r);
    } else if (r->append_path && !r->appending) {
        r->appending = 1;
        rc = imap_sent_folder(r->imap, on_reply, r);
    } else {
        return;
    }
    if (rc < 0) {
        fprintf(stderr, "relance: cannot start an IMAP command: %s\n", strerror(-rc));
        r->failed = 1;
    }
}

static void on_closed(void *arg)
{
    *(int *)arg = 1;
}

enum { OPT_FOLDER, OPT_APPEND };

static const struct cli_option options[] = {
    [OPT_FOLDER] = {"folder", 0, "NAME", "this folder rather than the ones the account watches", CLI_OPTION_REPEAT, 0},
    [OPT_APPEND] = {"append", 0, "FILE", "also save FILE into the account's Sent folder", 0, 0},
    {0},
};

static int run_command(struct cli *cli, const struct cli_args *args)
{
    const char *account = args->operands[0], *append = cli_args_value(args, OPT_APPEND);
    const struct config *cfg = cli->config;
    /* room for every --folder, or else for INBOX, and a NULL; more below
     * when the account's own folders need it */
    size_t room = (size_t)cli_args_count(args, OPT_FOLDER) + 2;
    const char **folders = calloc(room, sizeof *folders);
    size_t n_folders = 0;
    if (!folders)
        return cli_fail(CLI_ERROR, "out of memory");
    int pos = 0;
    for (const char *f = cli_args_next(args, OPT_FOLDER, &pos); f; f = cli_args_next(args, OPT_FOLDER, &pos))
        folders[n_folders++] = f;
    const struct config_account *a = accounts_find(cfg, account);
    if (!a) {
        free(folders);
        return cli_fail(CLI_ERROR, "no account %s in the configuration", account);
    }
    if (!n_folders) {
        static char inbox[] = "INBOX";
        size_t n = 0;
        while (a->folders && a->folders[n])
            n++;
        if (n + 1 > room) {
            const char **grown = realloc(folders, (n + 1) * sizeof *folders);
            if (!grown) {
                free(folders);
                return cli_fail(CLI_ERROR, "out of memory");
            }
            folders = grown;
            memset(folders, 0, (n + 1) * sizeof *folders);
        }
        for (size_t i = 0; a->folders && a->folders[i]; i++)
            folders[n_folders++] = a->folders[i];
        if (!n_folders)
            folders[n_folders++] = inbox;
    }
    struct run r = {0};
    r.folders = folders;
    r.append_path = append;
    if (append && cli_read_file(append, MESSAGE_MAX, 1, &r.msg) < 0) {
        buf_free(&r.msg);
        free(folders);
        return cli_fail(CLI_ERROR, "cannot read %s", append);
    }
    struct imap_account acct;
    char *password = NULL, err[512];
    if (watcher_imap_account(cfg, a, &acct, &password, err, sizeof err) < 0) {
        free(folders);
        buf_free(&r.msg);
        return cli_fail(CLI_ERROR, "%s", err);
    }
    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        secret_free(password);
        free(folders);
        buf_free(&r.msg);
        return cli_fail(CLI_ERROR, "cannot initialise libcurl");
    }
    uv_loop_t loop;
    uv_loop_init(&loop);
    struct curl_uv *cu = curl_uv_new(&loop);
    struct xfer_pool *pool = xfer_pool_new(1);
    struct oauth2 *oauth2 = NULL;
    if (acct.auth == IMAP_AUTH_XOAUTH2) {
        acct.bearer = run_bearer;
        acct.bearer_arg = &r;
    }
    r.imap = cu && pool ? imap_new(&loop, pool, &acct) : NULL;
    int closed = 0, rc = CLI_OK;
    if (!r.imap) {
        fprintf(stderr, "relance: cannot set up the IMAP client for %s\n", a->email);
        rc = CLI_ERROR;
    } else if (acct.auth == IMAP_AUTH_XOAUTH2) {
        /* the token first (over HTTPS, from the account's token_url) */
        if (!(oauth2 = oauth2_new(&loop, cu, cfg, err, sizeof err))) {
            fprintf(stderr, "relance: %s\n", err);
            rc = CLI_ERROR;
        } else if (oauth2_token_get(oauth2, a->email, on_token, &r) < 0) {
            fprintf(stderr, "relance: cannot ask for the OAuth2 token of %s\n", a->email);
            rc = CLI_ERROR;
        } else {
            uv_run(&loop, UV_RUN_DEFAULT);
            if (r.failed)
                rc = CLI_ERROR;
        }
    } else {
        step(&r);
        uv_run(&loop, UV_RUN_DEFAULT);
        if (r.failed)
            rc = CLI_ERROR;
    }
    if (r.imap) {
        /* its LOGOUT runs on the pool's thread; the loop waits for it */
        imap_close(r.imap, on_closed, &closed);
        uv_run(&loop, UV_RUN_DEFAULT);
        closed = 0;
    }
    xfer_pool_close(pool);
    if (oauth2) {
        oauth2_close(oauth2, on_closed, &closed);
        uv_run(&loop, UV_RUN_DEFAULT);
        closed = 0;
    }
    if (r.bearer) {
        memset(r.bearer, 0, strlen(r.bearer));
        free(r.bearer);
    }
    if (cu) {
        curl_uv_close(cu, on_closed, &closed);
        uv_run(&loop, UV_RUN_DEFAULT);
    }
    if (uv_loop_close(&loop) != 0)
        rc = CLI_ERROR;
    curl_global_cleanup();
    secret_free(password);
    free(folders);
    buf_free(&r.msg);
    return rc;
}

const struct cli_command cmd_imap_check = {
    .name = "imap-check",
    .summary = "log in to an account's mailbox: folder status, or save a copy in Sent",
    .operands = "ACCOUNT",
    .min_operands = 1,
    .max_operands = 1,
    .about = "Logs in to the IMAP mailbox of ACCOUNT (a configured sender account with an\n"
             "imap URL, its credentials and TLS settings; for auth: xoauth2, an access token\n"
             "fetched from its token_url first) and prints, for each folder it\n"
             "watches (or each --folder):\n"
             "  FOLDER<TAB>uidnext=N<TAB>uidvalidity=N\n"
             "Nothing is selected, read or flagged. With --append, also saves FILE (a whole\n"
             "RFC 5322 message; line ends become CRLF) into the account's Sent folder,\n"
             "found by its \\Sent special-use flag, else by name (Sent, Sent Items,\n"
             "INBOX.Sent, Gesendet, ...), and once the server has accepted it prints\n"
             "  appended<TAB>FOLDER<TAB>special-use|by-name\n"
             "Exits 0 when everything worked, 1 otherwise (the server's words on stderr).\n",
    .options = options,
    .run = run_command,
};
