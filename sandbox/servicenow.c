/* servicenow - ServiceNow's Table API for incidents (CONTRACT.md §2.4), under /servicenow.
 *
 *   POST /api/now/table/incident          {"short_description","description","urgency":"1|2|3",
 *                                          "correlation_id"} -> 201 {"result":{"sys_id","number":"INC0010001",...}}
 *   GET  /api/now/table/incident/{sys_id} {"result":{...}}
 *   GET  /api/now/table/incident[?sysparm_query=correlation_id=X]  {"result":[...]}
 * Like ServiceNow, fields the table does not have are ignored. Errors have
 * its shape: {"error":{"message","detail"},"status":"failure"}.
 */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "sandbox.h"

enum { R_CREATE, R_GET, R_LIST };

static const sbx_route_t s_routes[] = {
    [R_CREATE] = {"POST", "/api/now/table/incident"},
    [R_GET] = {"GET", "/api/now/table/incident/*"},
    [R_LIST] = {"GET", "/api/now/table/incident"},
    {NULL, NULL},
};

#define INCIDENT_COLUMNS                                                                                               \
    "sys_id, number, short_description, description, urgency, correlation_id, '1' AS state,"                           \
    " created AS sys_created_on"

/* s_sn_error - ServiceNow's error object */
static int s_sn_error(sbx_resp_t *resp, unsigned status, const char *message, const char *fmt, ...)
{
    char detail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(detail, sizeof detail, fmt, ap);
    va_end(ap);
    sbx_reply(resp, status,
              json_pack("{s:{s:s, s:s}, s:s}", "error", "message", message, "detail", detail, "status", "failure"));
    return -1;
}

/* s_route - incidents only */
static int s_route(sbx_req_t *req, sbx_resp_t *resp)
{
    int rc = sbx_route(req, s_routes);
    if (rc >= 0)
        return rc;
    if (rc == SBX_ID_TOO_LONG)
        return s_sn_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid sys_id", "longer than %d characters", SBX_ID_MAX);
    if (rc == SBX_NO_METHOD)
        return s_sn_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not Supported", "%s %s", req->method, req->path);
    return s_sn_error(resp, MHD_HTTP_BAD_REQUEST, "Requested URI does not represent any resource", "%s", req->path);
}

/* s_create - validate and open an incident */
static int s_create(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    static const char *const urgencies[] = {"1", "2", "3", NULL};
    char err[256], now[32];
    const char *sd, *desc, *urgency, *corr;
    if (!(sd = sbx_str(req->json, "short_description", true, true, 160, err, sizeof err)) ||
        !(desc = sbx_str(req->json, "description", false, false, 65536, err, sizeof err)) ||
        !(urgency = sbx_str(req->json, "urgency", true, true, 1, err, sizeof err)) ||
        !(corr = sbx_str(req->json, "correlation_id", false, false, 100, err, sizeof err)))
        return s_sn_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid request", "%s", err);
    if (!sbx_in(urgency, urgencies))
        return s_sn_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid request", "urgency must be \"1\", \"2\" or \"3\"");
    sbx_now_rfc3339(now);
    /* named in the statement that inserts it (under the store lock) */
    long long seq = sbx_db_int(st, 0, "SELECT " SBX_NEXT_SEQ("sn_incidents"), "");
    char seqs[32], sys_id[65], number[32];
    int l = snprintf(seqs, sizeof seqs, "incident:%lld", seq);
    const char *parts[] = {seqs};
    size_t lens[] = {(size_t) l};
    sbx_sha256_hex(parts, lens, 1, sys_id);
    sys_id[32] = '\0'; /* a sys_id is 32 hex digits */
    snprintf(number, sizeof number, "INC%07lld", 10000 + seq);
    if (seq <= 0 || sbx_db_exec(st,
                                "INSERT INTO sn_incidents(seq, sys_id, number, short_description, description, urgency,"
                                " correlation_id, created) VALUES(?,?,?,?,?,?,?,?)",
                                "isssssss", seq, sys_id, number, sd, desc, urgency, *corr ? corr : NULL, now))
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    json_t *row = sbx_db_row(st, "SELECT " INCIDENT_COLUMNS " FROM sn_incidents WHERE seq = ?", "i", seq);
    return sbx_reply(resp, MHD_HTTP_CREATED, json_pack("{s:o}", "result", row));
}

/* s_handle - serve one routed ServiceNow call */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    if (req->route == R_CREATE)
        return s_create(st, req, resp);
    if (req->route == R_GET) {
        json_t *row =
            sbx_db_row(st, "SELECT " INCIDENT_COLUMNS " FROM sn_incidents WHERE sys_id = ?", "s", req->ids[0]);
        if (!row)
            return s_sn_error(resp, MHD_HTTP_NOT_FOUND, "No Record found",
                              "Record doesn't exist or ACL restricts the record retrieval");
        return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:o}", "result", row));
    }
    const char *q = sbx_query(req, "sysparm_query");
    const char *corr = (q && strncmp(q, "correlation_id=", 15) == 0) ? q + 15 : NULL;
    if (q && !corr)
        return s_sn_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid query",
                          "this sandbox filters by sysparm_query=correlation_id=<value> only");
    json_t *rows = sbx_db_rows(st,
                               "SELECT " INCIDENT_COLUMNS " FROM sn_incidents WHERE ?1 IS NULL OR correlation_id = ?1"
                               " ORDER BY seq",
                               "s", corr);
    return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:o}", "result", rows));
}

const sbx_system_t sbx_servicenow = {
    .name = "servicenow",
    .prefix = "/servicenow",
    .auth = true,
    .idempotent_posts = true,
    .route = s_route,
    .handle = s_handle,
};
