/* httpd - every payguard HTTP server (libmicrohttpd): started one way, with
 * the same limits, and answering the same way (JSON replies and errors, the
 * peer's address, GET /metrics).
 *
 * httpd_start serves a listening socket for a stage's access handler with:
 *   - a connection limit in all and per client address (libmicrohttpd's
 *     MHD_OPTION_PER_IP_CONNECTION_LIMIT): a connection over either is
 *     closed as soon as it is accepted;
 *   - a whole-request deadline: a request that is not received and
 *     answered within deadline_s of its start (the connection's accept, or
 *     the previous answer on a kept-alive connection) has its connection
 *     shut down (shutdown(2), which libmicrohttpd then sees as the client
 *     gone), however slowly it trickles in or reads its answer.
 *     libmicrohttpd's own timeout is an idle timeout that every byte
 *     renews; it stays, at the same value, for connections that send
 *     nothing. A watchdog thread per server looks every HTTPD_SWEEP_MS at
 *     the connections, which the library's notify-connection callback
 *     registers (their socket, their start) and unregisters before it
 *     closes their socket, under one mutex: the watchdog never shuts down
 *     a descriptor that was reused;
 *   - GET /metrics answered here, before the stage's handler: the group's
 *     metrics, open, or only with "Authorization: Bearer <token>" whose
 *     SHA-256 is payguard/metrics_token_sha256 (else 401);
 *   - connections cut or refused counted (payguard_http_deadline_closed_total,
 *     payguard_http_limit_refused_total) and logged at most every
 *     HTTPD_REPORT_MS, summed (an attacker cannot flood the log).
 * Handlers that block (the console's calls to approve and audit) ask for a
 * thread per connection (threads 0): a slow answer then holds its own
 * connection's thread and no other.
 */
#ifndef PG_HTTPD_H
#define PG_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"

#define HTTPD_MAX_CONNECTIONS 4096
#define HTTPD_MAX_THREADS 64
#define HTTPD_MAX_DEADLINE_S 3600
#define HTTPD_SWEEP_MS 250
#define HTTPD_REPORT_MS 10000

typedef struct stage_t stage_t;
typedef struct httpd_t httpd_t;

/* httpd_opts_t - one server: what it serves and its limits */
typedef struct {
    const char *name;                 /* what it serves, for logs ("approvals API") */
    const char *section;              /* the configuration section of its limits ("approve") */
    int listen_fd;                    /* a listening socket (listenfd.h); httpd_stop closes it */
    unsigned threads;                 /* a pool of this many (epoll, suspend/resume); 0: a thread per connection */
    unsigned max_connections;         /* 1..HTTPD_MAX_CONNECTIONS */
    unsigned max_per_address;         /* 1..max_connections, from one client address */
    unsigned deadline_s;              /* 1..HTTPD_MAX_DEADLINE_S: a request received and answered within it, or cut */
    size_t memory_limit;              /* per connection (0: libmicrohttpd's, 32 KiB) */
    bool strict;                      /* libmicrohttpd's strict parsing (400 for HTTP/1.1 without Host) */
    MHD_AccessHandlerCallback answer; /* the stage's handler */
    MHD_RequestCompletedCallback completed; /* may be NULL */
    void *cls;                              /* answer's and completed's */
    MHD_LogCallback log;                    /* libmicrohttpd's other messages (NULL: not logged) */
    void *log_cls;
    const char *run_dir;              /* GET /metrics: the group's metrics (metrics_collect) */
    const char *metrics_token_sha256; /* "" or NULL: /metrics open; else its Bearer token's SHA-256 */
    stage_t *st;                      /* the counters (NULL: not counted: the console) */
} httpd_opts_t;

/* httpd_serve - httpd_start with the configured part of opts filled in
 * (section; <section>/http_max_per_address and http_deadline_s;
 * payguard/metrics_token_sha256; the run directory) and, when
 * opts->listen_fd < 0, a socket bound here on <section>/http_bind:http_port;
 * NULL and err */
httpd_t *httpd_serve(const config_t *c, const char *section, httpd_opts_t *opts, char *err, size_t errlen);

/* httpd_start - serve opts->listen_fd (the strings of opts must outlive
 * the server); NULL and err (a limit out of range, a bad token hash, the
 * library refused) */
httpd_t *httpd_start(const httpd_opts_t *opts, char *err, size_t errlen);
/* httpd_quiesce - accept no new connection; those open go on */
void httpd_quiesce(httpd_t *self);
/* httpd_stop - close every connection, stop the watchdog, free; NULLs *self_p */
void httpd_stop(httpd_t **self_p);
/* httpd_stats - connections cut at the deadline and refused over the limits so far */
void httpd_stats(httpd_t *self, uint64_t *cut, uint64_t *refused);

/* httpd_reply - obj (a json_t *, stolen) as the JSON answer, not cached */
enum MHD_Result httpd_reply(struct MHD_Connection *conn, unsigned status, void *obj);
/* httpd_reply_header - httpd_reply with one more header (hname NULL: none) */
enum MHD_Result httpd_reply_header(struct MHD_Connection *conn, unsigned status, void *obj, const char *hname,
                                   const char *hvalue);
/* httpd_reply_text - JSON text (malloc'd, stolen) as the answer */
enum MHD_Result httpd_reply_text(struct MHD_Connection *conn, unsigned status, char *text);
/* httpd_error - {"error": why} */
enum MHD_Result httpd_error(struct MHD_Connection *conn, unsigned status, const char *why);
/* httpd_unauthorized - 401 {"error":"unknown or missing token"} with WWW-Authenticate: Bearer */
enum MHD_Result httpd_unauthorized(struct MHD_Connection *conn);
/* httpd_token_refused - 401 {"error": why} with WWW-Authenticate: Bearer:
 * a token the server knows but refuses (expired), said as it is */
enum MHD_Result httpd_token_refused(struct MHD_Connection *conn, const char *why);
/* httpd_readyz - GET /readyz: 200 {"ready":true}, or 503
 * {"ready":false,"why":why} (/healthz stays liveness: the process answers) */
enum MHD_Result httpd_readyz(struct MHD_Connection *conn, bool ready, const char *why);
/* httpd_throttled - 429 {"error"} with Retry-After: retry_after_s, for a
 * source throttled after repeated refused requests (refusals.h) */
enum MHD_Result httpd_throttled(struct MHD_Connection *conn, long retry_after_s);
/* httpd_peer - the client's address as text ("unknown" if none) */
void httpd_peer(struct MHD_Connection *conn, char *out, size_t outlen);

#endif
