/* webhook_sink: the receiver of tests/bench's webhooks scenario — a CRM
 * that answers 200 at once to every POST, on libmicrohttpd's own threads,
 * and notes when each request arrived.
 *
 *   relance-webhook-sink PORT OUT [EXPECT]
 *
 * prints "ready" once listening, and "received EXPECT" once that many
 * requests came (so that the benchmark waits on a pipe rather than
 * polling the database, which would take CPU from the side it measures);
 * on SIGTERM or SIGINT writes one line per request to OUT, "<webhook-id>
 * <Unix time, microseconds>", and exits.
 * Not part of relance: built beside it for the benchmark only. */
#include <microhttpd.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

struct hit {
    char id[40];
    double at;
};

static struct hit *hits;
static size_t n_hits, cap_hits;
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static volatile sig_atomic_t stop;
static int marker;
static size_t expect;

static double wall(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_REALTIME, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static enum MHD_Result on_request(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                  const char *version, const char *data, size_t *size, void **state)
{
    (void)cls;
    (void)url;
    (void)method;
    (void)version;
    (void)data;
    if (!*state) {
        *state = &marker;
        return MHD_YES;
    }
    if (*size) {
        *size = 0; /* the body is not looked at */
        return MHD_YES;
    }
    const char *id = MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "webhook-id");
    double at = wall();
    pthread_mutex_lock(&lock);
    if (n_hits == cap_hits) {
        cap_hits = cap_hits ? 2 * cap_hits : 65536;
        hits = realloc(hits, cap_hits * sizeof *hits);
        if (!hits)
            abort();
    }
    snprintf(hits[n_hits].id, sizeof hits[n_hits].id, "%s", id ? id : "-");
    hits[n_hits++].at = at;
    if (n_hits == expect) {
        printf("received %zu\n", expect);
        fflush(stdout);
    }
    pthread_mutex_unlock(&lock);
    struct MHD_Response *r = MHD_create_response_from_buffer(0, (void *)"", MHD_RESPMEM_PERSISTENT);
    enum MHD_Result ok = MHD_queue_response(conn, 200, r);
    MHD_destroy_response(r);
    return ok;
}

static void on_signal(int sig)
{
    (void)sig;
    stop = 1;
}

int main(int argc, char **argv)
{
    if (argc != 3 && argc != 4) {
        fprintf(stderr, "usage: %s PORT OUT [EXPECT]\n", argv[0]);
        return 2;
    }
    if (argc == 4)
        expect = (size_t)strtoul(argv[3], NULL, 10);
    signal(SIGTERM, on_signal);
    signal(SIGINT, on_signal);
    struct MHD_Daemon *d = MHD_start_daemon(MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL, (uint16_t)atoi(argv[1]),
                                            NULL, NULL, on_request, NULL, MHD_OPTION_THREAD_POOL_SIZE, 2u,
                                            MHD_OPTION_CONNECTION_LIMIT, 1000u, MHD_OPTION_LISTEN_BACKLOG_SIZE, 512u,
                                            MHD_OPTION_END);
    if (!d) {
        fprintf(stderr, "cannot listen on %s\n", argv[1]);
        return 1;
    }
    printf("ready\n");
    fflush(stdout);
    while (!stop)
        pause();
    MHD_stop_daemon(d);
    FILE *f = fopen(argv[2], "w");
    if (!f)
        return 1;
    for (size_t i = 0; i < n_hits; i++)
        fprintf(f, "%s %.6f\n", hits[i].id, hits[i].at);
    fclose(f);
    free(hits);
    return 0;
}
