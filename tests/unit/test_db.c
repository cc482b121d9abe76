/* Unit test for db's connection lifecycle where no server is needed: a
 * port that refuses connections (bound, not listening; no mock). The
 * connection's debug lines tell its states in order, the state callback
 * says the outage once, not at every retry, and a close from the backoff
 * leaves a loop that closes. Queries against a real PostgreSQL, and the
 * read-only cases, are tested end to end in tests/integration. */
#include "db.h"
#include "log_capture.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cmocka.h>

/* Past the first retry (BACKOFF_MIN_MS, 200 ms, after the first failure)
 * and well before the second (400 ms after the first retry). */
#define CLOSE_AFTER_MS 400

struct seen {
    int calls;
    enum db_link link;
    char reason[256];
    int closed;
    struct db *db;
};

static void on_state(struct db *db, enum db_link link, const char *reason, void *arg)
{
    (void)db;
    struct seen *x = arg;
    x->calls++;
    x->link = link;
    snprintf(x->reason, sizeof x->reason, "%s", reason ? reason : "");
}

static void on_db_closed(void *arg)
{
    ((struct seen *)arg)->closed++;
}

static void on_close_timer(uv_timer_t *t)
{
    struct seen *x = t->data;
    db_close(x->db, on_db_closed, x);
    uv_close((uv_handle_t *)t, NULL);
}

static void on_query(struct db *db, const PGresult *res, void *arg)
{
    (void)db;
    (void)res;
    (void)arg;
}

static void test_lifecycle_refused(void **state)
{
    (void)state;
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    int fd = socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
    assert_true(fd >= 0);
    assert_int_equal(bind(fd, (struct sockaddr *)&a, sizeof a), 0);
    assert_int_equal(getsockname(fd, (struct sockaddr *)&a, &len), 0);
    char conninfo[200];
    snprintf(conninfo, sizeof conninfo,
             "host=127.0.0.1 port=%d dbname=relance user=relance sslmode=disable gssencmode=disable",
             ntohs(a.sin_port));

    uv_loop_t loop;
    assert_int_equal(uv_loop_init(&loop), 0);
    struct seen x = {0};
    struct log_capture cap;
    assert_int_equal(log_capture_begin(&cap), 0);
    x.db = db_new(&loop, conninfo, on_state, &x);
    int started = x.db ? db_start(x.db) : -2;
    int again = x.db ? db_start(x.db) : -2;
    int queried = x.db ? db_query(x.db, "SELECT 1", 0, NULL, on_query, NULL) : -2;
    uv_timer_t t;
    uv_timer_init(&loop, &t);
    t.data = &x;
    uv_timer_start(&t, on_close_timer, CLOSE_AFTER_MS, 0);
    uv_run(&loop, UV_RUN_DEFAULT);
    char *lines = log_capture_end(&cap, "db", "connection");

    assert_int_equal(started, 0);
    assert_int_equal(again, -1); /* already started */
    assert_int_equal(queried, -1); /* not ready: refused, no callback */
    assert_int_equal(x.closed, 1);
    assert_int_equal(x.calls, 1); /* the same reason at the retry: said once */
    assert_int_equal(x.link, DB_LINK_DOWN);
    assert_int_equal(uv_loop_close(&loop), 0);
    const char *want = "connection DOWN -> CONNECTING\n"
                       "connection CONNECTING -> BACKOFF\n"
                       "connection BACKOFF -> CONNECTING\n"
                       "connection CONNECTING -> BACKOFF\n"
                       "connection BACKOFF -> CLOSING\n";
    if (!lines || strcmp(lines, want) != 0)
        fail_msg("the connection's debug lines were\n%s\nwant\n%s", lines ? lines : "(out of memory)", want);
    free(lines);
    close(fd);
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_lifecycle_refused),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
