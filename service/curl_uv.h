/* curl_uv: one libcurl multi handle driven by the libuv loop.
 *
 * HTTPS transfers (OAuth2 token endpoints) run through a struct curl_uv:
 * libcurl tells it which sockets to watch (one uv_poll_t per socket) and
 * when to wake up (one uv_timer_t), and it answers with
 * curl_multi_socket_action. Nothing here blocks the loop as long as the
 * protocol's done phase and connection close never wait for the server:
 * true of HTTP in libcurl 7.88 (http_done reads nothing; OpenSSL's close
 * does one SSL_read and one SSL_shutdown on the non-blocking socket), not
 * of SMTP and IMAP, which run on xfer_pool's threads instead.
 *
 * The caller owns its easy handles and configures them; curl_uv only runs
 * them. It uses CURLOPT_PRIVATE of a running easy handle for itself.
 * Connections stay in the multi's cache between transfers, so an easy
 * handle run again with the same URL and credentials reuses its connection.
 *
 * Callback contract (as libuv's): if curl_uv_transfer_start returns an
 * error its callback never fires; otherwise it fires exactly once, from the
 * loop, never from inside curl_uv_transfer_start — unless the caller takes
 * the transfer back with curl_uv_transfer_abort, after which it never
 * fires. The easy handle is out of the multi when the callback runs, so the
 * callback may start it again at once. */
#ifndef RELANCE_CURL_UV_H
#define RELANCE_CURL_UV_H

#include <curl/curl.h>
#include <uv.h>

struct curl_uv;

/* result is the transfer's CURLcode; CURLE_ABORTED_BY_CALLBACK when
 * curl_uv_close ended it, or when the loop could not watch its socket. */
typedef void (*curl_uv_done_cb)(struct curl_uv *cu, CURL *easy, CURLcode result, void *arg);

/* A multi handle on loop. Returns NULL when out of memory or when libcurl
 * cannot be set up. curl_global_init must have been called. */
struct curl_uv *curl_uv_new(uv_loop_t *loop);

/* Pool-wide caps on connections (0: no cap): total open connections, and
 * open connections to one host. Transfers over a cap wait for a free
 * connection. The idle-connection cache is sized to max_total too: with
 * 0, libcurl keeps only 4 idle connections per transfer in progress, so a
 * pool that reuses one connection per account sets max_total to at least
 * its number of accounts. */
int curl_uv_limits_set(struct curl_uv *cu, long max_total, long max_per_host)
    __attribute__((warn_unused_result));

/* Starts running easy (configured by the caller, not running elsewhere).
 * Returns 0, or a negative error (closing, out of memory, libcurl refused
 * the handle) after which done never fires. */
int curl_uv_transfer_start(struct curl_uv *cu, CURL *easy, curl_uv_done_cb done, void *arg)
    __attribute__((warn_unused_result));

/* Takes a running transfer back: easy leaves the multi (its connection is
 * closed if it was in use) and its callback never fires. Returns 0, or -1
 * when easy was not running here. Must not be called from inside a libcurl
 * callback (read, header, ...) of any transfer. */
int curl_uv_transfer_abort(struct curl_uv *cu, CURL *easy) __attribute__((warn_unused_result));

/* Ends every running transfer (each callback fires once, inside this call,
 * with CURLE_ABORTED_BY_CALLBACK), closes the cached connections and every
 * handle. on_closed fires once the last handle is closed; cu is freed then.
 * Must not be called from inside a libcurl callback. */
void curl_uv_close(struct curl_uv *cu, void (*on_closed)(void *arg), void *arg);

#endif
