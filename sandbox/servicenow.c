/* servicenow - ServiceNow's Table API for incidents (CONTRACT.md §2.4), under /servicenow.
 *
 *   POST /api/now/table/incident          {"short_description","description","urgency":"1|2|3",
 *                                          "correlation_id"} -> 201 {"result":{"sys_id","number":"INC0010001",...}}
 *   GET  /api/now/table/incident/{sys_id} {"result":{...}}
 *   GET  /api/now/table/incident[?sysparm_query=F=V[^F=V...]][&sysparm_limit=N][&sysparm_fields=a,b]
 *                                         {"result":[...]} oldest first; F one of correlation_id,
 *                                         correlation_display, number (equality, up to 3, ^ = AND);
 *                                         sysparm_fields keeps only the listed fields
 * Like ServiceNow, fields the table does not have are ignored, and an
 * Idempotency-Key is neither required nor honoured (a create sent twice
 * opens two incidents). Errors have its shape:
 * {"error":{"message","detail"},"status":"failure"}.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
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
    "sys_id, number, short_description, description, urgency, correlation_id, correlation_display, '1' AS state,"      \
    " created AS sys_created_on"
#define SN_QUERY_TERMS 3   /* F=V terms of one sysparm_query */
#define SN_LIMIT_MAX 10000 /* sysparm_limit (ServiceNow's default is 10000) */

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
    const char *sd, *desc, *urgency, *corr, *disp;
    if (!(sd = sbx_str(req->json, "short_description", true, true, 160, err, sizeof err)) ||
        !(desc = sbx_str(req->json, "description", false, false, 65536, err, sizeof err)) ||
        !(urgency = sbx_str(req->json, "urgency", true, true, 1, err, sizeof err)) ||
        !(corr = sbx_str(req->json, "correlation_id", false, false, 100, err, sizeof err)) ||
        !(disp = sbx_str(req->json, "correlation_display", false, false, 100, err, sizeof err)))
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
    if (seq <= 0 ||
        sbx_db_exec(st,
                    "INSERT INTO sn_incidents(seq, sys_id, number, short_description, description, urgency,"
                    " correlation_id, correlation_display, created) VALUES(?,?,?,?,?,?,?,?,?)",
                    "issssssss", seq, sys_id, number, sd, desc, urgency, *corr ? corr : NULL, *disp ? disp : NULL, now))
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    json_t *row = sbx_db_row(st, "SELECT " INCIDENT_COLUMNS " FROM sn_incidents WHERE seq = ?", "i", seq);
    return sbx_reply(resp, MHD_HTTP_CREATED, json_pack("{s:o}", "result", row));
}

/* s_terms - sysparm_query "F=V^F=V..." into values by field (NULL: not
 * filtered): correlation_id, correlation_display, number; -1 if not that */
static int s_terms(const char *q, char vals[SN_QUERY_TERMS][128])
{
    static const char *const names[SN_QUERY_TERMS] = {"correlation_id", "correlation_display", "number"};
    for (int k = 0; k < SN_QUERY_TERMS; k++)
        vals[k][0] = '\0';
    const char *p = q;
    assert(q && vals);
    assert(SN_QUERY_TERMS == 3);
    for (int t = 0; t < SN_QUERY_TERMS && *p; t++) {
        const char *eq = strchr(p, '='), *end = strchr(p, '^');
        if (!end)
            end = p + strlen(p);
        if (!eq || eq > end)
            return -1;
        int k = 0;
        while (k < SN_QUERY_TERMS && (strlen(names[k]) != (size_t) (eq - p) || strncmp(p, names[k], eq - p) != 0))
            k++;
        if (k == SN_QUERY_TERMS || end - eq - 1 <= 0 || end - eq - 1 >= 128 || vals[k][0])
            return -1;
        snprintf(vals[k], 128, "%.*s", (int) (end - eq - 1), eq + 1);
        p = *end ? end + 1 : end;
    }
    return *p ? -1 : 0;
}

/* s_only_fields - keep the sysparm_fields of each row (comma-separated names) */
static void s_only_fields(json_t *rows, const char *want)
{
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        const char *key;
        void *tmp;
        json_t *v;
        json_object_foreach_safe(row, tmp, key, v)
        {
            const char *at = strstr(want, key);
            size_t kl = strlen(key);
            while (at && !((at == want || at[-1] == ',') && (at[kl] == '\0' || at[kl] == ',')))
                at = strstr(at + 1, key);
            if (!at)
                json_object_del(row, key);
        }
    }
}

/* s_list - GET /api/now/table/incident with an encoded query, a limit, fields */
static int s_list(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    char v[SN_QUERY_TERMS][128];
    assert(st && req && resp);
    assert(req->route == R_LIST);
    const char *q = sbx_query(req, "sysparm_query"), *lim = sbx_query(req, "sysparm_limit");
    if (s_terms(q ? q : "", v) != 0)
        return s_sn_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid query",
                          "this sandbox filters by correlation_id, correlation_display and number (F=V joined by ^)");
    char *end = NULL;
    long long limit = lim ? strtoll(lim, &end, 10) : SN_LIMIT_MAX;
    if (lim && (!*lim || *end || limit < 1))
        return s_sn_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid sysparm_limit", "a positive integer");
    json_t *rows = sbx_db_rows(st,
                               "SELECT " INCIDENT_COLUMNS " FROM sn_incidents WHERE (?1 = '' OR correlation_id = ?1)"
                               " AND (?2 = '' OR correlation_display = ?2) AND (?3 = '' OR number = ?3)"
                               " ORDER BY seq LIMIT ?4",
                               "sssi", v[0], v[1], v[2], limit > SN_LIMIT_MAX ? SN_LIMIT_MAX : limit);
    const char *fields = sbx_query(req, "sysparm_fields");
    if (fields && *fields)
        s_only_fields(rows, fields);
    return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:o}", "result", rows));
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
    return s_list(st, req, resp);
}

const sbx_system_t sbx_servicenow = {
    .name = "servicenow",
    .prefix = "/servicenow",
    .auth = true,
    .idempotent_posts = false, /* like the real one: Idempotency-Key is ignored */
    .route = s_route,
    .handle = s_handle,
};
