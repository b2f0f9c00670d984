/* jira - Jira's REST API v2, the part the ticket step speaks (CONTRACT.md §2.4), under /jira.
 *
 *   POST /rest/api/2/issue               {"fields":{"project":{"key"},"summary","description",
 *                                         "issuetype":{"name"},"priority":{"name":"Highest|High|Medium"},
 *                                         "labels":[...]}} -> 201 {"id":"10001","key":"OPS-1","self"}
 *   POST /rest/api/2/issue/{key}/comment {"body"} -> 201 {"id","self","body","created"}
 *   GET  /rest/api/2/issue/{key|id}      the issue, its fields and comments (fields.comment.comments)
 *   GET  /rest/api/2/issue/{key}/comment {"comments":[...],"total"}
 * Keys are numbered per project (OPS-1, OPS-2, ...), ids from 10001.
 * Errors have Jira's shape: {"errorMessages":[...],"errors":{"<field>":"..."}}.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

enum { R_CREATE, R_COMMENT, R_GET, R_COMMENTS };

static const sbx_route_t s_routes[] = {
    [R_CREATE] = {"POST", "/rest/api/2/issue"},
    [R_COMMENT] = {"POST", "/rest/api/2/issue/*/comment"},
    [R_GET] = {"GET", "/rest/api/2/issue/*"},
    [R_COMMENTS] = {"GET", "/rest/api/2/issue/*/comment"},
    {NULL, NULL},
};

/* s_jira_error - {"errorMessages":[message?],"errors":errors (stolen, may be NULL)} */
static int s_jira_error(sbx_resp_t *resp, unsigned status, const char *message, json_t *errors)
{
    json_t *msgs = json_array();
    if (message)
        json_array_append_new(msgs, json_string(message));
    sbx_reply(resp, status, json_pack("{s:o, s:o}", "errorMessages", msgs, "errors", errors ? errors : json_object()));
    return -1;
}

/* s_route - Jira's 404 for paths it does not serve */
static int s_route(sbx_req_t *req, sbx_resp_t *resp)
{
    int rc = sbx_route(req, s_routes);
    if (rc >= 0)
        return rc;
    if (rc == SBX_ID_TOO_LONG)
        return s_jira_error(resp, MHD_HTTP_BAD_REQUEST, "Issue key or id is too long.", NULL);
    if (rc == SBX_NO_METHOD)
        return s_jira_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "Method not allowed.", NULL);
    return s_jira_error(resp, MHD_HTTP_NOT_FOUND, "No resource found at this path.", NULL);
}

/* s_created - Jira's timestamp format, 2026-11-21T10:00:00.000+0000 */
static void s_created(char out[40])
{
    time_t t = time(NULL);
    struct tm tm;
    gmtime_r(&t, &tm);
    strftime(out, 40, "%Y-%m-%dT%H:%M:%S.000+0000", &tm);
}

/* s_self - the REST URL of an issue or comment, when the Host is known */
static json_t *s_self(const sbx_req_t *req, const char *what)
{
    if (!req->host)
        return json_null();
    char url[512];
    snprintf(url, sizeof url, "http://%s/jira/rest/api/2/%s", req->host, what);
    return json_string(url);
}

/* s_project_key_ok - Jira project keys: an upper-case letter, then A-Z 0-9 _ */
static bool s_project_key_ok(const char *k)
{
    if (!k || !*k || strlen(k) > 32 || k[0] < 'A' || k[0] > 'Z')
        return false;
    for (const char *p = k; *p; p++)
        if (!((*p >= 'A' && *p <= 'Z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return false;
    return true;
}

/* s_named - fields.<key>.<sub> as a non-empty string, or NULL */
static const char *s_named(json_t *fields, const char *key, const char *sub)
{
    json_t *o = json_object_get(fields, key);
    json_t *v = json_is_object(o) ? json_object_get(o, sub) : NULL;
    const char *s = json_is_string(v) ? json_string_value(v) : NULL;
    return (s && *s && strlen(s) <= 255) ? s : NULL;
}

/* s_check_fields - every problem of an issue's fields, keyed by field */
static json_t *s_check_fields(json_t *fields)
{
    static const char *const known[] = {"project", "summary", "description", "issuetype", "priority", "labels", NULL};
    static const char *const priorities[] = {"Highest", "High", "Medium", NULL};
    json_t *errors = json_object();
    const char *key;
    json_t *v;
    json_object_foreach(fields, key, v)
    {
        if (!sbx_in(key, known)) {
            char msg[160];
            snprintf(msg, sizeof msg, "Field '%.64s' cannot be set. It is not on the appropriate screen, or unknown.",
                     key);
            json_object_set_new(errors, key, json_string(msg));
        }
    }
    if (!s_project_key_ok(s_named(fields, "project", "key")))
        json_object_set_new(errors, "project", json_string("valid project is required"));
    json_t *summary = json_object_get(fields, "summary");
    if (!json_is_string(summary) || !json_string_length(summary))
        json_object_set_new(errors, "summary", json_string("You must specify a summary of the issue."));
    else if (json_string_length(summary) > 255)
        json_object_set_new(errors, "summary", json_string("Summary must be less than 255 characters."));
    json_t *desc = json_object_get(fields, "description");
    if (desc && !json_is_string(desc) && !json_is_null(desc))
        json_object_set_new(errors, "description", json_string("description must be a string"));
    if (!s_named(fields, "issuetype", "name"))
        json_object_set_new(errors, "issuetype", json_string("issue type is required"));
    const char *prio = s_named(fields, "priority", "name");
    if (!prio || !sbx_in(prio, priorities))
        json_object_set_new(errors, "priority", json_string("priority.name must be Highest, High or Medium"));
    json_t *labels = json_object_get(fields, "labels");
    if (labels) {
        bool ok = json_is_array(labels);
        size_t i;
        json_t *l;
        json_array_foreach(labels, i, l)
        {
            const char *s = json_string_value(l);
            if (!s || !*s || strchr(s, ' ') || strlen(s) > 255)
                ok = false;
        }
        if (!ok)
            json_object_set_new(errors, "labels", json_string("labels are non-empty strings without spaces"));
    }
    return errors;
}

/* s_create - validate and store an issue, numbered within its project */
static int s_create(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    json_t *fields = json_object_get(req->json, "fields");
    if (!json_is_object(fields) || json_object_size(req->json) != 1)
        return s_jira_error(resp, MHD_HTTP_BAD_REQUEST, "The request body must be {\"fields\": {...}}.", NULL);
    json_t *errors = s_check_fields(fields);
    if (json_object_size(errors))
        return s_jira_error(resp, MHD_HTTP_BAD_REQUEST, NULL, errors);
    json_decref(errors);

    const char *project = s_named(fields, "project", "key");
    json_t *labels = json_object_get(fields, "labels");
    json_t *label_arr = labels ? json_incref(labels) : json_array();
    char *labels_text = json_dumps(label_arr, JSON_COMPACT);
    json_decref(label_arr);
    char created[40], key[64];
    s_created(created);
    long long n = sbx_db_int(st, 0, "SELECT COUNT(*) FROM jira_issues WHERE project = ?", "s", project) + 1;
    snprintf(key, sizeof key, "%s-%lld", project, n);
    const char *desc = json_string_value(json_object_get(fields, "description"));
    int rc =
        sbx_db_exec(st,
                    "INSERT INTO jira_issues(id, key, project, summary, description, issuetype, priority, labels,"
                    " created) VALUES(CAST(10000 + " SBX_NEXT_SEQ("jira_issues") " AS TEXT),?,?,?,?,?,?,?,?)",
                    "ssssssss", key, project, json_string_value(json_object_get(fields, "summary")), desc,
                    s_named(fields, "issuetype", "name"), s_named(fields, "priority", "name"), labels_text, created);
    free(labels_text);
    long long seq = rc ? 0 : sbx_db_int(st, 0, "SELECT seq FROM jira_issues WHERE key = ?", "s", key);
    if (rc || seq <= 0)
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    char id[32], what[64];
    snprintf(id, sizeof id, "%lld", 10000 + seq);
    snprintf(what, sizeof what, "issue/%s", id);
    return sbx_reply(resp, MHD_HTTP_CREATED,
                     json_pack("{s:s, s:s, s:o}", "id", id, "key", key, "self", s_self(req, what)));
}

/* s_issue - an issue named by its key or its id, NULL if none */
static json_t *s_issue(sbx_store_t *st, const char *key_or_id)
{
    return sbx_db_row(st,
                      "SELECT id, key, project, summary, description, issuetype, priority, labels AS \"json:labels\","
                      " created FROM jira_issues WHERE key = ?1 OR id = ?1",
                      "s", key_or_id);
}

/* s_comments - an issue's comments, oldest first */
static json_t *s_comments(sbx_store_t *st, const char *key)
{
    return sbx_db_rows(st, "SELECT id, body, created FROM jira_comments WHERE issue_key = ? ORDER BY seq", "s", key);
}

/* s_comment - add a comment to an existing issue */
static int s_comment(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    static const char *const fields[] = {"body", "visibility", NULL};
    char err[256], created[40];
    const char *body;
    if (sbx_only_fields(req->json, fields, err, sizeof err) ||
        !(body = sbx_str(req->json, "body", true, true, 32767, err, sizeof err)))
        return s_jira_error(resp, MHD_HTTP_BAD_REQUEST, NULL, json_pack("{s:s}", "comment", err));
    json_t *issue = s_issue(st, req->ids[0]);
    if (!issue)
        return s_jira_error(resp, MHD_HTTP_NOT_FOUND, "Issue does not exist or you do not have permission to see it.",
                            NULL);
    s_created(created);
    int rc = sbx_db_exec(st,
                         "INSERT INTO jira_comments(id, issue_key, body, created)"
                         " VALUES(CAST(10000 + " SBX_NEXT_SEQ("jira_comments") " AS TEXT),?,?,?)",
                         "sss", json_string_value(json_object_get(issue, "key")), body, created);
    long long seq = rc ? 0 : sbx_db_int(st, 0, "SELECT MAX(seq) FROM jira_comments", "");
    char what[200], id[32];
    snprintf(id, sizeof id, "%lld", 10000 + seq);
    snprintf(what, sizeof what, "issue/%s/comment/%s", json_string_value(json_object_get(issue, "id")), id);
    json_decref(issue);
    if (rc || seq <= 0)
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    return sbx_reply(
        resp, MHD_HTTP_CREATED,
        json_pack("{s:s, s:o, s:s, s:s}", "id", id, "self", s_self(req, what), "body", body, "created", created));
}

/* s_get - the issue in Jira's shape, comments included */
static int s_get(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    json_t *i = s_issue(st, req->ids[0]);
    if (!i)
        return s_jira_error(resp, MHD_HTTP_NOT_FOUND, "Issue does not exist or you do not have permission to see it.",
                            NULL);
    const char *key = json_string_value(json_object_get(i, "key"));
    json_t *comments = s_comments(st, key);
    size_t n = json_array_size(comments);
    if (req->route == R_COMMENTS) {
        json_decref(i);
        return sbx_reply(resp, MHD_HTTP_OK,
                         json_pack("{s:i, s:i, s:i, s:o}", "startAt", 0, "maxResults", (int) n, "total", (int) n,
                                   "comments", comments));
    }
    char what[64];
    snprintf(what, sizeof what, "issue/%s", json_string_value(json_object_get(i, "id")));
#define F(name) json_object_get(i, name)
    json_t *fields =
        json_pack("{s:{s:O}, s:O, s:O, s:{s:O}, s:{s:O}, s:O, s:O, s:{s:i, s:i, s:i, s:o}}", "project", "key",
                  F("project"), "summary", F("summary"), "description", F("description"), "issuetype", "name",
                  F("issuetype"), "priority", "name", F("priority"), "labels", F("labels"), "created", F("created"),
                  "comment", "startAt", 0, "maxResults", (int) n, "total", (int) n, "comments", comments);
#undef F
    json_t *out = json_pack("{s:O, s:O, s:o, s:o}", "id", json_object_get(i, "id"), "key", json_object_get(i, "key"),
                            "self", s_self(req, what), "fields", fields);
    json_decref(i);
    return sbx_reply(resp, MHD_HTTP_OK, out);
}

/* s_handle - serve one routed Jira call */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    switch (req->route) {
    case R_CREATE:
        return s_create(st, req, resp);
    case R_COMMENT:
        return s_comment(st, req, resp);
    default:
        return s_get(st, req, resp);
    }
}

const sbx_system_t sbx_jira = {
    .name = "jira",
    .prefix = "/jira",
    .auth = true,
    .idempotent_posts = true,
    .route = s_route,
    .handle = s_handle,
};
