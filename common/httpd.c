/* httpd - shared answers of payguard's HTTP servers (see httpd.h) */
#include "httpd.h"

#include <arpa/inet.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "metrics.h"

static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status, char *text, const char *hname,
                               const char *hvalue);

/* httpd_reply - see httpd.h */
enum MHD_Result httpd_reply(struct MHD_Connection *conn, unsigned status, void *obj)
{
    return httpd_reply_header(conn, status, obj, NULL, NULL);
}

/* httpd_reply_header - see httpd.h */
enum MHD_Result httpd_reply_header(struct MHD_Connection *conn, unsigned status, void *obj, const char *hname,
                                   const char *hvalue)
{
    char *text = json_dumps(obj, JSON_COMPACT);
    json_decref(obj);
    return s_reply(conn, status, text, hname, hvalue);
}

/* httpd_reply_text - see httpd.h */
enum MHD_Result httpd_reply_text(struct MHD_Connection *conn, unsigned status, char *text)
{
    return s_reply(conn, status, text, NULL, NULL);
}

/* s_reply - JSON text (stolen) as the answer, not cached, one extra header optional */
static enum MHD_Result s_reply(struct MHD_Connection *conn, unsigned status, char *text, const char *hname,
                               const char *hvalue)
{
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "Cache-Control", "no-store");
    if (hname)
        MHD_add_response_header(r, hname, hvalue);
    enum MHD_Result rc = MHD_queue_response(conn, status, r);
    MHD_destroy_response(r);
    return rc;
}

/* httpd_error - see httpd.h */
enum MHD_Result httpd_error(struct MHD_Connection *conn, unsigned status, const char *why)
{
    return httpd_reply(conn, status, json_pack("{s:s}", "error", why));
}

/* httpd_unauthorized - see httpd.h */
enum MHD_Result httpd_unauthorized(struct MHD_Connection *conn)
{
    static const char body[] = "{\"error\":\"unknown or missing token\"}";
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(body), (void *) body, MHD_RESPMEM_PERSISTENT);
    MHD_add_response_header(r, "Content-Type", "application/json");
    MHD_add_response_header(r, "WWW-Authenticate", "Bearer");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_UNAUTHORIZED, r);
    MHD_destroy_response(r);
    return rc;
}

/* httpd_token_refused - see httpd.h */
enum MHD_Result httpd_token_refused(struct MHD_Connection *conn, const char *why)
{
    return httpd_reply_header(conn, MHD_HTTP_UNAUTHORIZED, json_pack("{s:s}", "error", why), "WWW-Authenticate",
                              "Bearer");
}

/* httpd_readyz - see httpd.h */
enum MHD_Result httpd_readyz(struct MHD_Connection *conn, bool ready, const char *why)
{
    if (ready)
        return httpd_reply(conn, MHD_HTTP_OK, json_pack("{s:b}", "ready", 1));
    return httpd_reply(conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                       json_pack("{s:b, s:s}", "ready", 0, "why", why && *why ? why : "not ready"));
}

/* httpd_throttled - see httpd.h */
enum MHD_Result httpd_throttled(struct MHD_Connection *conn, long retry_after_s)
{
    char ra[24], why[128];
    snprintf(ra, sizeof ra, "%ld", retry_after_s);
    snprintf(why, sizeof why, "too many refused requests from this address: try again in %ld s", retry_after_s);
    return httpd_reply_header(conn, MHD_HTTP_TOO_MANY_REQUESTS, json_pack("{s:s}", "error", why), "Retry-After", ra);
}

/* httpd_metrics - see httpd.h */
enum MHD_Result httpd_metrics(struct MHD_Connection *conn, const char *run_dir)
{
    char *text = metrics_collect(run_dir);
    struct MHD_Response *r = MHD_create_response_from_buffer(strlen(text), text, MHD_RESPMEM_MUST_FREE);
    MHD_add_response_header(r, "Content-Type", "text/plain; version=0.0.4");
    enum MHD_Result rc = MHD_queue_response(conn, MHD_HTTP_OK, r);
    MHD_destroy_response(r);
    return rc;
}

/* httpd_peer - see httpd.h */
void httpd_peer(struct MHD_Connection *conn, char *out, size_t outlen)
{
    snprintf(out, outlen, "unknown");
    const union MHD_ConnectionInfo *ci = MHD_get_connection_info(conn, MHD_CONNECTION_INFO_CLIENT_ADDRESS);
    if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET)
        inet_ntop(AF_INET, &((const struct sockaddr_in *) ci->client_addr)->sin_addr, out, (socklen_t) outlen);
    else if (ci && ci->client_addr && ci->client_addr->sa_family == AF_INET6)
        inet_ntop(AF_INET6, &((const struct sockaddr_in6 *) ci->client_addr)->sin6_addr, out, (socklen_t) outlen);
}
