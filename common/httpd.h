/* httpd - what every payguard HTTP server (libmicrohttpd) answers the same
 * way: JSON replies and errors, the peer's address, GET /metrics. */
#ifndef PG_HTTPD_H
#define PG_HTTPD_H

#include <microhttpd.h>
#include <stdbool.h>
#include <stddef.h>

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
/* httpd_metrics - the group's metrics (metrics_collect over run_dir) */
enum MHD_Result httpd_metrics(struct MHD_Connection *conn, const char *run_dir);
/* httpd_peer - the client's address as text ("unknown" if none) */
void httpd_peer(struct MHD_Connection *conn, char *out, size_t outlen);

#endif
