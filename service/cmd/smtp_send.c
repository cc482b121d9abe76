/* cmd/smtp_send: `relance smtp-send`, the operator's "can this account
 * send?" check and the integration tests' entry to the SMTP transport.
 *
 * Sends each message file, one after the other, through one smtp channel
 * on a libuv loop — so all of them share one connection while the server
 * accepts them — and prints one line per file: FILE, outcome, reply code,
 * enhanced status ("-" when none), body started (0/1). Owns the command
 * line, reading the files and the loop's lifetime; the sending is smtp's.
 * Never prints the password or token. */
#include "cli.h"
#include "curl_uv.h"
#include "smtp.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MESSAGE_MAX (32u << 20)

struct message_file {
    const char *path;
    char *data;
    size_t len;
};

struct run {
    struct smtp_job job;
    struct message_file *files;
    int nfiles;
    int next;
    int all_sent;
    int body_start_calls; /* on_body_start calls for the send in flight */
    struct smtp *smtp;
    struct curl_uv *cu;
    int closed;
};

static void smtp_send_usage(FILE *f)
{
    fprintf(f,
            "usage: relance smtp-send --url URL --from ADDR --to ADDR\n"
            "                         [--user USER --password-env VAR | --user USER --bearer-env VAR\n"
            "                          | --auth none] [--tls none] [--ca-file FILE] [--sasl MECH]\n"
            "                         [--connect-timeout MS] [--timeout MS] FILE...\n"
            "\n"
            "Sends each FILE (a whole RFC 5322 message; line ends become CRLF) from ADDR\n"
            "to ADDR through the SMTP server at URL, one after the other over one\n"
            "connection, and prints one line per file:\n"
            "  FILE<TAB>outcome<TAB>reply_code<TAB>enhanced_status<TAB>body_started\n"
            "outcome is sent, deferred, rejected_hard, rejected_policy, rejected_other,\n"
            "auth_failed or unknown; the server's words for a failure go to stderr.\n"
            "Exits 0 when every message was sent, 1 otherwise.\n"
            "\n"
            "  --url URL           smtp://host:587/EHLO-NAME (STARTTLS required) or\n"
            "                      smtps://host:465/EHLO-NAME (implicit TLS)\n"
            "  --user USER         the login (AUTH PLAIN, LOGIN, ...)\n"
            "  --password-env VAR  the password, read from environment variable VAR\n"
            "  --bearer-env VAR    an OAuth2 access token (AUTH XOAUTH2) from VAR\n"
            "  --auth none         no AUTH (test sinks)\n"
            "  --tls none          plaintext smtp:// (test sinks)\n"
            "  --ca-file FILE      also trust the CA certificates in FILE (PEM)\n"
            "  --sasl MECH         use this SASL mechanism (PLAIN, LOGIN, ...)\n"
            "  --connect-timeout MS, --timeout MS   connect and per-reply timeouts\n");
}

/* Reads path into a malloc'd buffer with every line end as CRLF. */
static int read_crlf(const char *path, char **out, size_t *out_len)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return -errno;
    size_t cap = 8192, len = 0;
    char *buf = malloc(cap);
    int prev = -1, c, rc = 0;
    if (!buf) {
        fclose(f);
        return -ENOMEM;
    }
    for (;;) {
        c = getc(f);
        if (c == EOF)
            break;
        if (len + 3 > cap) {
            char *nb = cap >= MESSAGE_MAX ? NULL : realloc(buf, cap * 2);
            if (!nb) {
                rc = cap >= MESSAGE_MAX ? -EFBIG : -ENOMEM;
                goto fail;
            }
            buf = nb;
            cap *= 2;
        }
        if (c == '\n' && prev != '\r')
            buf[len++] = '\r';
        else if (prev == '\r' && c != '\n')
            buf[len++] = '\n';
        buf[len++] = (char)c;
        prev = c;
    }
    if (prev == '\r')
        buf[len++] = '\n';
    if (ferror(f)) {
        rc = -EIO;
        goto fail;
    }
    fclose(f);
    *out = buf;
    *out_len = len;
    return 0;
fail:
    fclose(f);
    free(buf);
    return rc;
}

static void on_cu_closed(void *arg)
{
    struct run *run = arg;
    run->closed = 1;
}

static void finish_run(struct run *run)
{
    smtp_close(run->smtp);
    run->smtp = NULL;
    curl_uv_close(run->cu, on_cu_closed, run);
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
        run->job.data = m->data;
        run->job.len = m->len;
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

int cmd_smtp_send(struct cli *cli, int argc, char **argv)
{
    const char *url = NULL, *from = NULL, *to = NULL, *user = NULL, *password_env = NULL, *bearer_env = NULL;
    const char *auth = NULL, *tls = NULL, *ca_file = NULL, *sasl = NULL, *connect_ms = NULL, *phase_ms = NULL;
    struct run run;
    uv_loop_t loop;
    int loop_open = 0, curl_open = 0, rc = CLI_ERROR;

    (void)cli;
    memset(&run, 0, sizeof run);
    if (cli_wants_help(argc, argv)) {
        smtp_send_usage(stdout);
        return CLI_OK;
    }
    run.files = calloc((size_t)argc, sizeof *run.files);
    if (!run.files)
        return cli_fail(CLI_ERROR, "smtp-send: out of memory");
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        const char **slot = NULL;
        if (strcmp(a, "--url") == 0)
            slot = &url;
        else if (strcmp(a, "--from") == 0)
            slot = &from;
        else if (strcmp(a, "--to") == 0)
            slot = &to;
        else if (strcmp(a, "--user") == 0)
            slot = &user;
        else if (strcmp(a, "--password-env") == 0)
            slot = &password_env;
        else if (strcmp(a, "--bearer-env") == 0)
            slot = &bearer_env;
        else if (strcmp(a, "--auth") == 0)
            slot = &auth;
        else if (strcmp(a, "--tls") == 0)
            slot = &tls;
        else if (strcmp(a, "--ca-file") == 0)
            slot = &ca_file;
        else if (strcmp(a, "--sasl") == 0)
            slot = &sasl;
        else if (strcmp(a, "--connect-timeout") == 0)
            slot = &connect_ms;
        else if (strcmp(a, "--timeout") == 0)
            slot = &phase_ms;
        if (slot) {
            if (i + 1 >= argc) {
                rc = cli_fail(CLI_USAGE, "smtp-send: %s needs a value", a);
                goto fail;
            }
            *slot = argv[++i];
        } else if (a[0] == '-' && a[1] != '\0') {
            rc = cli_fail(CLI_USAGE, "smtp-send: unknown option '%s' (see relance smtp-send --help)", a);
            goto fail;
        } else {
            run.files[run.nfiles++].path = a;
        }
    }

    struct smtp_job *job = &run.job;
    if (!url || !from || !to || run.nfiles == 0) {
        rc = cli_fail(CLI_USAGE, "smtp-send: --url, --from, --to and at least one FILE are required "
                                 "(see relance smtp-send --help)");
        goto fail;
    }
    if (auth && strcmp(auth, "none") != 0) {
        rc = cli_fail(CLI_USAGE, "smtp-send: --auth takes only 'none'");
        goto fail;
    }
    if (tls && strcmp(tls, "none") != 0) {
        rc = cli_fail(CLI_USAGE, "smtp-send: --tls takes only 'none' (the URL scheme decides TLS)");
        goto fail;
    }
    if (auth ? (user || password_env || bearer_env)
             : (!user || (!password_env == !bearer_env))) {
        rc = cli_fail(CLI_USAGE, "smtp-send: give --user with one of --password-env or --bearer-env, "
                                 "or --auth none");
        goto fail;
    }
    job->url = url;
    job->mail_from = from;
    job->rcpt_to = to;
    job->tls = tls ? SMTP_TLS_NONE : SMTP_TLS_REQUIRED;
    job->auth = auth ? SMTP_AUTH_NONE : bearer_env ? SMTP_AUTH_XOAUTH2 : SMTP_AUTH_PASSWORD;
    job->username = user;
    job->ca_file = ca_file;
    job->sasl_mech = sasl;
    job->on_body_start = on_body_start;
    if (!auth) {
        const char *var = password_env ? password_env : bearer_env;
        job->secret = getenv(var);
        if (!job->secret || !*job->secret) {
            rc = cli_fail(CLI_ERROR, "smtp-send: environment variable %s is not set", var);
            goto fail;
        }
    }
    if ((connect_ms && parse_ms(connect_ms, &job->connect_timeout_ms) < 0) ||
        (phase_ms && parse_ms(phase_ms, &job->phase_timeout_ms) < 0)) {
        rc = cli_fail(CLI_USAGE, "smtp-send: timeouts are positive milliseconds");
        goto fail;
    }
    for (int i = 0; i < run.nfiles; i++) {
        int r = read_crlf(run.files[i].path, &run.files[i].data, &run.files[i].len);
        if (r < 0) {
            rc = cli_fail(CLI_ERROR, "smtp-send: cannot read %s: %s", run.files[i].path, strerror(-r));
            goto fail;
        }
        if (run.files[i].len == 0) {
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
    run.cu = curl_uv_new(&loop);
    if (!run.cu) {
        cli_fail(CLI_ERROR, "smtp-send: cannot set up libcurl on the loop");
        goto fail;
    }
    if (curl_uv_limits_set(run.cu, 4, 4) < 0) {
        cli_fail(CLI_ERROR, "smtp-send: cannot set connection limits");
        curl_uv_close(run.cu, on_cu_closed, &run);
        goto fail;
    }
    run.smtp = smtp_new(run.cu);
    if (!run.smtp) {
        cli_fail(CLI_ERROR, "smtp-send: out of memory");
        curl_uv_close(run.cu, on_cu_closed, &run);
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
        if (uv_loop_close(&loop) != 0) {
            cli_fail(CLI_ERROR, "smtp-send: handles left open on the loop");
            rc = CLI_ERROR;
        }
    }
    if (curl_open)
        curl_global_cleanup();
    for (int i = 0; i < run.nfiles; i++)
        free(run.files[i].data);
    free(run.files);
    return rc;
}
