/* cmd/smtp_send: `relance smtp-send`, the operator's "can this account
 * send?" check and the integration tests' entry to the SMTP transport.
 *
 * Sends each message file, one after the other, through one smtp channel
 * on a libuv loop — so all of them share one connection while the server
 * accepts them — and prints one line per file: FILE, outcome, reply code,
 * enhanced status ("-" when none), body started (0/1). Owns the command
 * line, reading the files and the loop's lifetime; the sending is smtp's.
 * With --account the settings are the configured account's, set up by the
 * sender exactly as serve sets them up, so the check is of what serve
 * would use; flags given beside it override. Without it the CA file is
 * still the configuration's tls_ca_file unless --ca-file says otherwise.
 * Never prints the password or token. */
#include "accounts.h"
#include "cli.h"
#include "secret.h"
#include "sender.h"
#include "smtp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX (32u << 20)

struct message_file {
    const char *path;
    struct buf text; /* CRLF line ends */
};

struct run {
    struct smtp_job job;
    struct message_file *files;
    int nfiles;
    int next;
    int all_sent;
    int body_start_calls; /* on_body_start calls for the send in flight */
    struct smtp *smtp;
    struct xfer_pool *pool;
    int closed;
};

static void finish_run(struct run *run)
{
    smtp_close(run->smtp);
    run->smtp = NULL;
    run->closed = 1;
}

static void on_sent(struct smtp *s, const struct smtp_result *r, void *arg);

static void on_body_start(void *arg)
{
    struct run *run = arg;
    run->body_start_calls++;
}

/* Starts the next file; when none is left (or a start fails), ends. */
static void send_next(struct run *run)
{
    while (run->next < run->nfiles) {
        struct message_file *m = &run->files[run->next];
        run->job.data = m->text.p;
        run->job.len = m->text.len;
        run->body_start_calls = 0;
        int rc = smtp_send(run->smtp, &run->job, on_sent, run);
        if (rc == 0)
            return;
        run->all_sent = 0;
        printf("%s\terror\t0\t-\t0\n", m->path);
        fprintf(stderr, "relance: %s: cannot start the send: %s\n", m->path, strerror(-rc));
        run->next++;
    }
    finish_run(run);
}

static void on_sent(struct smtp *s, const struct smtp_result *r, void *arg)
{
    struct run *run = arg;
    struct message_file *m = &run->files[run->next];
    (void)s;
    printf("%s\t%s\t%ld\t%s\t%d\n", m->path, smtp_outcome_name(r->outcome), r->reply_code,
           r->status[0] ? r->status : "-", r->body_started);
    fflush(stdout);
    if (run->body_start_calls != r->body_started) {
        /* the point of no return is reported once, and only when passed */
        run->all_sent = 0;
        fprintf(stderr, "relance: %s: body start reported %d times, body_started %d\n", m->path,
                run->body_start_calls, r->body_started);
    }
    if (r->outcome != SMTP_SENT) {
        run->all_sent = 0;
        fprintf(stderr, "relance: %s: %s (curl %d: %s; MAIL FROM %s): %s\n", m->path,
                smtp_outcome_name(r->outcome), (int)r->curl_code, curl_easy_strerror(r->curl_code),
                r->mail_accepted ? "accepted" : "not accepted", r->text);
    }
    run->next++;
    send_next(run);
}

static int parse_ms(const char *s, long *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || end == s || *end || v <= 0)
        return -1;
    *out = v;
    return 0;
}

enum {
    OPT_ACCOUNT, OPT_URL, OPT_FROM, OPT_TO, OPT_USER, OPT_PASSWORD_ENV, OPT_BEARER_ENV, OPT_AUTH, OPT_TLS, OPT_CA_FILE, OPT_SASL,
    OPT_CONNECT_TIMEOUT, OPT_TIMEOUT,
};

static const struct cli_option options[] = {
    [OPT_ACCOUNT] = {"account", 0, "EMAIL",
                     "a configured account: its URL, login, password, TLS and CA\n"
                     "file, as serve uses them; the flags below override", 0, 0},
    [OPT_URL] = {"url", 0, "URL",
                 "smtp://host:587/EHLO-NAME (STARTTLS required) or\n"
                 "smtps://host:465/EHLO-NAME (implicit TLS)", 0, 0},
    [OPT_FROM] = {"from", 0, "ADDR", "the envelope sender (MAIL FROM; default: --account)", 0, 0},
    [OPT_TO] = {"to", 0, "ADDR", "the recipient (RCPT TO)", CLI_OPTION_REQUIRED, 0},
    [OPT_USER] = {"user", 0, "USER", "the login (AUTH PLAIN, LOGIN, ...)", 0, 0},
    [OPT_PASSWORD_ENV] = {"password-env", 0, "VAR", "the password, read from environment variable VAR", 0, 0},
    [OPT_BEARER_ENV] = {"bearer-env", 0, "VAR", "an OAuth2 access token (AUTH XOAUTH2) from VAR", 0, 0},
    [OPT_AUTH] = {"auth", 0, "none", "no AUTH (test sinks)", 0, 0},
    [OPT_TLS] = {"tls", 0, "none", "plaintext smtp:// (test sinks)", 0, 0},
    [OPT_CA_FILE] = {"ca-file", 0, "FILE", "also trust the CA certificates in FILE (PEM); default:\n"
                     "the configuration's tls_ca_file", 0, 0},
    [OPT_SASL] = {"sasl", 0, "MECH", "use this SASL mechanism (PLAIN, LOGIN, ...)", 0, 0},
    [OPT_CONNECT_TIMEOUT] = {"connect-timeout", 0, "MS", "the connect timeout", 0, 0},
    [OPT_TIMEOUT] = {"timeout", 0, "MS", "the timeout for each reply", 0, 0},
    {0},
};

static int run_command(struct cli *cli, const struct cli_args *args)
{
    const char *url = cli_args_value(args, OPT_URL), *from = cli_args_value(args, OPT_FROM);
    const char *to = cli_args_value(args, OPT_TO), *user = cli_args_value(args, OPT_USER);
    const char *password_env = cli_args_value(args, OPT_PASSWORD_ENV);
    const char *bearer_env = cli_args_value(args, OPT_BEARER_ENV), *auth = cli_args_value(args, OPT_AUTH);
    const char *tls = cli_args_value(args, OPT_TLS), *ca_file = cli_args_value(args, OPT_CA_FILE);
    const char *sasl = cli_args_value(args, OPT_SASL), *connect_ms = cli_args_value(args, OPT_CONNECT_TIMEOUT);
    const char *phase_ms = cli_args_value(args, OPT_TIMEOUT), *account = cli_args_value(args, OPT_ACCOUNT);
    char *secret = NULL, err[512];
    struct run run;
    uv_loop_t loop;
    int loop_open = 0, curl_open = 0, rc = CLI_ERROR;

    memset(&run, 0, sizeof run);
    run.files = calloc((size_t)args->n_operands, sizeof *run.files);
    if (!run.files)
        return cli_fail(CLI_ERROR, "smtp-send: out of memory");
    for (int i = 0; i < args->n_operands; i++)
        run.files[run.nfiles++].path = args->operands[i];

    struct smtp_job *job = &run.job;
    if (auth && strcmp(auth, "none") != 0) {
        rc = cli_fail(CLI_USAGE, "smtp-send: --auth takes only 'none'");
        goto fail;
    }
    if (tls && strcmp(tls, "none") != 0) {
        rc = cli_fail(CLI_USAGE, "smtp-send: --tls takes only 'none' (the URL scheme decides TLS)");
        goto fail;
    }
    if (auth && (user || password_env || bearer_env)) {
        rc = cli_fail(CLI_USAGE, "smtp-send: --auth none takes no --user, --password-env or --bearer-env");
        goto fail;
    }
    if (password_env && bearer_env) {
        rc = cli_fail(CLI_USAGE, "smtp-send: give one of --password-env or --bearer-env");
        goto fail;
    }
    if (!account && (!url || !from)) {
        rc = cli_fail(CLI_USAGE, "smtp-send: give --url and --from, or --account");
        goto fail;
    }
    if (!account && !auth && (!user || (!password_env && !bearer_env))) {
        rc = cli_fail(CLI_USAGE, "smtp-send: give --user with one of --password-env or --bearer-env, "
                                 "or --auth none");
        goto fail;
    }
    /* serve trusts the configured CA file: so does the check, unless told
     * otherwise (a plaintext sink needs none, nor the configuration) */
    const struct config *cfg = NULL;
    if (account || (!ca_file && !tls)) {
        if (!(cfg = cli_config(cli)))
            goto fail;
    }
    if (account) {
        const struct config_account *a = accounts_find(cfg, account);
        if (!a) {
            rc = cli_fail(CLI_ERROR, "smtp-send: no account %s in the configuration", account);
            goto fail;
        }
        /* A borrowed view of the account with the flags' values in place,
         * so the sender checks them as it checks the configuration's; the
         * casts only borrow, nothing is written through or freed. */
        struct config_account view = *a;
        if (url)
            view.smtp = (char *)url;
        if (tls)
            view.tls = (char *)tls;
        if (ca_file)
            view.tls_ca_file = (char *)ca_file;
        if (user)
            view.username = (char *)user;
        if (auth) {
            view.auth = (char *)"none";
        } else if (password_env) {
            view.auth = (char *)"password";
            view.password_env = (char *)password_env;
            view.password_file = NULL;
        } else if (bearer_env) {
            view.auth = (char *)"xoauth2";
        }
        if (sender_account_job(cfg, &view, job, &secret, err, sizeof err) < 0) {
            rc = cli_fail(CLI_ERROR, "smtp-send: %s", err);
            goto fail;
        }
        if (job->auth == SMTP_AUTH_XOAUTH2) {
            /* serve fetches the token from token_url; this check takes it */
            if (!bearer_env) {
                rc = cli_fail(CLI_USAGE, "smtp-send: account %s logs in with xoauth2: give the access token "
                                         "with --bearer-env", account);
                goto fail;
            }
            job->secret = getenv(bearer_env);
            if (!job->secret || !*job->secret) {
                rc = cli_fail(CLI_ERROR, "smtp-send: environment variable %s is not set", bearer_env);
                goto fail;
            }
        }
        if (from)
            job->mail_from = from;
        job->rcpt_to = to;
    } else {
        job->url = url;
        job->mail_from = from;
        job->rcpt_to = to;
        job->tls = tls ? SMTP_TLS_NONE : SMTP_TLS_REQUIRED;
        job->auth = auth ? SMTP_AUTH_NONE : bearer_env ? SMTP_AUTH_XOAUTH2 : SMTP_AUTH_PASSWORD;
        job->username = user;
        job->ca_file = ca_file ? ca_file : cfg ? cfg->tls_ca_file : NULL;
        if (!auth) {
            const char *var = password_env ? password_env : bearer_env;
            job->secret = getenv(var);
            if (!job->secret || !*job->secret) {
                rc = cli_fail(CLI_ERROR, "smtp-send: environment variable %s is not set", var);
                goto fail;
            }
        }
    }
    job->sasl_mech = sasl;
    job->on_body_start = on_body_start;
    if ((connect_ms && parse_ms(connect_ms, &job->connect_timeout_ms) < 0) ||
        (phase_ms && parse_ms(phase_ms, &job->phase_timeout_ms) < 0)) {
        rc = cli_fail(CLI_USAGE, "smtp-send: timeouts are positive milliseconds");
        goto fail;
    }
    for (int i = 0; i < run.nfiles; i++) {
        int r = cli_read_file(run.files[i].path, MESSAGE_MAX, 1, &run.files[i].text);
        if (r < 0) {
            rc = cli_fail(CLI_ERROR, "smtp-send: cannot read %s: %s", run.files[i].path, strerror(-r));
            goto fail;
        }
        if (run.files[i].text.len == 0) {
            rc = cli_fail(CLI_ERROR, "smtp-send: %s is empty", run.files[i].path);
            goto fail;
        }
    }

    if (curl_global_init(CURL_GLOBAL_DEFAULT) != CURLE_OK) {
        cli_fail(CLI_ERROR, "smtp-send: cannot initialise libcurl");
        goto fail;
    }
    curl_open = 1;
    if (uv_loop_init(&loop) < 0) {
        cli_fail(CLI_ERROR, "smtp-send: cannot create the event loop");
        goto fail;
    }
    loop_open = 1;
    run.pool = xfer_pool_new(1);
    run.smtp = run.pool ? smtp_new(&loop, run.pool) : NULL;
    if (!run.smtp) {
        cli_fail(CLI_ERROR, "smtp-send: out of memory");
        goto fail;
    }
    run.all_sent = 1;
    send_next(&run);
    uv_run(&loop, UV_RUN_DEFAULT);
    if (!run.closed) {
        cli_fail(CLI_ERROR, "smtp-send: the loop stopped before the sends ended");
        goto fail;
    }
    rc = run.all_sent ? CLI_OK : CLI_ERROR;
fail:
    if (loop_open) {
        uv_run(&loop, UV_RUN_DEFAULT); /* let closing handles finish */
        xfer_pool_close(run.pool);
        if (uv_loop_close(&loop) != 0) {
            cli_fail(CLI_ERROR, "smtp-send: handles left open on the loop");
            rc = CLI_ERROR;
        }
    }
    if (curl_open)
        curl_global_cleanup();
    for (int i = 0; i < run.nfiles; i++)
        buf_free(&run.files[i].text);
    free(run.files);
    secret_free(secret);
    return rc;
}

const struct cli_command cmd_smtp_send = {
    .name = "smtp-send",
    .summary = "send message files through an SMTP account (a connection check)",
    .operands = "FILE...",
    .min_operands = 1,
    .max_operands = -1,
    .about = "Sends each FILE (a whole RFC 5322 message; line ends become CRLF) from ADDR\n"
             "to ADDR through the SMTP server at URL, one after the other over one\n"
             "connection, and prints one line per file:\n"
             "  FILE<TAB>outcome<TAB>reply_code<TAB>enhanced_status<TAB>body_started\n"
             "outcome is sent, deferred, deferred_policy (4.7.x), rejected_hard,\n"
             "rejected_policy, rejected_unauthenticated (5.7.26, 5.7.515...: the receiver\n"
             "refuses the sender), rejected_other, auth_failed or unknown; the server's\n"
             "words for a failure go to stderr.\n"
             "Log in with --user and one of --password-env or --bearer-env, or not at all\n"
             "with --auth none. Or name a configured account with --account EMAIL: its\n"
             "smtp URL, username, password (password_env or password_file), tls, auth and\n"
             "tls_ca_file, exactly as serve would use them, from the account's address;\n"
             "the other flags override them (an xoauth2 account needs --bearer-env).\n"
             "Without --ca-file the configuration's tls_ca_file is trusted, as by serve.\n"
             "Exits 0 when every message was sent, 1 otherwise.\n",
    .options = options,
    .run = run_command,
};
