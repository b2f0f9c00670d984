/* jira - Jira's REST API v2, the part the ticket step speaks (CONTRACT.md §2.4), under /jira.
 *
 *   POST /rest/api/2/issue               {"fields":{"project":{"key"},"summary","description",
 *                                         "issuetype":{"name"},"priority":{"name":"Highest|High|Medium"},
 *                                         "labels":[...]}} -> 201 {"id":"10001","key":"OPS-1","self"}
 *   POST /rest/api/2/issue/{key}/comment {"body"} -> 201 {"id","self","body","created"}
 *   GET  /rest/api/2/issue/{key|id}      the issue, its fields and comments (fields.comment.comments)
 *   GET  /rest/api/2/issue/{key}/comment[?startAt=&maxResults=&orderBy=created|-created]
 *                                        {"startAt","maxResults","total","comments":[{"id","body","created"}]}
 *   GET  /rest/api/2/search?jql=...[&startAt=&maxResults=&fields=a,b]
 *                                        {"startAt","maxResults","total","issues":[{"id","key","self","fields"}]}
 *                                        JQL: labels = "x" (or labels = x), up to 4 joined by AND;
 *                                        anything else is 400, as Jira answers a query it cannot parse
 * Keys are numbered per project (OPS-1, OPS-2, ...), ids from 10001.
 * Like Jira, an Idempotency-Key is neither required nor honoured: a create
 * sent twice makes two issues (payguard searches by label first).
 * Errors have Jira's shape: {"errorMessages":[...],"errors":{"<field>":"..."}}.
 */
#include <assert.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>
#include <time.h>

#include "sandbox.h"

#define JIRA_JQL_CLAUSES 4    /* labels = "x" clauses in one search */
#define JIRA_MAX_RESULTS 1000 /* issues or comments in one page */

enum { R_CREATE, R_COMMENT, R_GET, R_COMMENTS, R_SEARCH };

static const sbx_route_t s_routes[] = {
    [R_CREATE] = {"POST", "/rest/api/2/issue"}, [R_COMMENT] = {"POST", "/rest/api/2/issue/*/comment"},
    [R_GET] = {"GET", "/rest/api/2/issue/*"},   [R_COMMENTS] = {"GET", "/rest/api/2/issue/*/comment"},
    [R_SEARCH] = {"GET", "/rest/api/2/search"}, {NULL, NULL},
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
    if (!rc) /* the label index searches use */
        rc = sbx_db_exec(st, "INSERT INTO jira_labels(issue_key, label) SELECT ?1, value FROM json_each(?2)", "ss", key,
                         labels_text);
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

/* s_page_arg - startAt / maxResults: a non-negative integer up to max, or dflt when absent; -1 if malformed */
static long long s_page_arg(const sbx_req_t *req, const char *name, long long dflt, long long max)
{
    const char *v = sbx_query(req, name);
    if (!v)
        return dflt;
    char *end = NULL;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || n < 0)
        return -1;
    return n > max ? max : n;
}

/* s_comment_page - GET .../comment: a page of an issue's comments, oldest
 * first or (orderBy=-created) newest first */
static int s_comment_page(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp, const char *key)
{
    assert(req->route == R_COMMENTS);
    assert(key && *key);
    const char *order = sbx_query(req, "orderBy");
    long long start = s_page_arg(req, "startAt", 0, 1LL << 40), max = s_page_arg(req, "maxResults", 5000, 5000);
    if (start < 0 || max < 0 ||
        (order && strcmp(order, "created") != 0 && strcmp(order, "+created") != 0 && strcmp(order, "-created") != 0))
        return s_jira_error(resp, MHD_HTTP_BAD_REQUEST,
                            "startAt and maxResults are integers; orderBy is created or "
                            "-created.",
                            NULL);
    bool newest = order && order[0] == '-';
    long long total = sbx_db_int(st, 0, "SELECT COUNT(*) FROM jira_comments WHERE issue_key = ?", "s", key);
    json_t *page = sbx_db_rows(st,
                               newest ? "SELECT id, body, created FROM jira_comments WHERE issue_key = ?"
                                        " ORDER BY seq DESC LIMIT ? OFFSET ?"
                                      : "SELECT id, body, created FROM jira_comments WHERE issue_key = ?"
                                        " ORDER BY seq LIMIT ? OFFSET ?",
                               "sii", key, max, start);
    return sbx_reply(resp, MHD_HTTP_OK,
                     json_pack("{s:I, s:I, s:I, s:o}", "startAt", (json_int_t) start, "maxResults", (json_int_t) max,
                               "total", (json_int_t) total, "comments", page));
}

/* s_jql_labels - parse `labels = "x" [AND labels = "y"]...` (values quoted
 * with \" and \\ escapes, or bare words) into labels[]; how many, or -1 */
static int s_jql_labels(const char *jql, char labels[JIRA_JQL_CLAUSES][256])
{
    int n = 0;
    const char *p = jql;
    assert(jql && labels);
    assert(JIRA_JQL_CLAUSES > 0 && sizeof labels[0] == 256);
    while (true) {
        while (*p == ' ')
            p++;
        if (n == JIRA_JQL_CLAUSES || strncasecmp(p, "labels", 6) != 0)
            return -1;
        p += 6;
        while (*p == ' ')
            p++;
        if (*p++ != '=')
            return -1;
        while (*p == ' ')
            p++;
        size_t l = 0;
        if (*p == '"') {
            for (p++; *p && *p != '"'; p++) {
                if (*p == '\\' && (p[1] == '"' || p[1] == '\\'))
                    p++;
                if (l + 1 >= 256)
                    return -1;
                labels[n][l++] = *p;
            }
            if (*p++ != '"')
                return -1;
        } else {
            for (; *p && *p != ' '; p++) {
                if (*p == '"' || *p == '(' || *p == ')' || l + 1 >= 256)
                    return -1;
                labels[n][l++] = *p;
            }
        }
        labels[n][l] = '\0';
        if (l == 0)
            return -1;
        n++;
        while (*p == ' ')
            p++;
        if (!*p)
            return n;
        if (strncasecmp(p, "AND ", 4) != 0)
            return -1;
        p += 4;
    }
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
        json_decref(comments);
        int rc = s_comment_page(st, req, resp, key);
        json_decref(i);
        return rc;
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

#define JIRA_SEARCH_WHERE                                                                                              \
    " FROM jira_issues WHERE key IN (SELECT issue_key FROM jira_labels WHERE label = ?1)"                              \
    " AND (?2 IS NULL OR key IN (SELECT issue_key FROM jira_labels WHERE label = ?2))"                                 \
    " AND (?3 IS NULL OR key IN (SELECT issue_key FROM jira_labels WHERE label = ?3))"                                 \
    " AND (?4 IS NULL OR key IN (SELECT issue_key FROM jira_labels WHERE label = ?4))"

/* s_search_issue - one search hit in Jira's shape: id, key, self and the fields asked for */
static json_t *s_search_issue(const sbx_req_t *req, json_t *row, const char *want)
{
    static const char *const names[] = {"summary", "description", "issuetype", "priority",
                                        "labels",  "project",     "created",   NULL};
    bool all = !want || strcmp(want, "*all") == 0 || strcmp(want, "*navigable") == 0;
    json_t *fields = json_object();
    for (size_t k = 0; names[k]; k++) {
        const char *f = names[k];
        const char *at = all ? NULL : strstr(want, f);
        size_t fl = strlen(f);
        bool asked = all || (at && (at == want || at[-1] == ',') && (at[fl] == '\0' || at[fl] == ','));
        if (!asked)
            continue;
        json_t *v = json_object_get(row, f);
        bool named = strcmp(f, "issuetype") == 0 || strcmp(f, "priority") == 0 || strcmp(f, "project") == 0;
        json_object_set_new(fields, f,
                            named ? json_pack("{s:O}", strcmp(f, "project") ? "name" : "key", v) : json_incref(v));
    }
    char what[64];
    snprintf(what, sizeof what, "issue/%s", json_string_value(json_object_get(row, "id")));
    return json_pack("{s:s, s:O, s:o, s:O, s:o}", "expand", "", "id", json_object_get(row, "id"), "self",
                     s_self(req, what), "key", json_object_get(row, "key"), "fields", fields);
}

/* s_search - GET /rest/api/2/search?jql=labels = "x" [AND labels = "y"]: the issues carrying every label */
static int s_search(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    char labels[JIRA_JQL_CLAUSES][256];
    assert(st && req && resp);
    assert(req->route == R_SEARCH);
    const char *jql = sbx_query(req, "jql");
    int n = jql ? s_jql_labels(jql, labels) : -1;
    if (n < 1)
        return s_jira_error(resp, MHD_HTTP_BAD_REQUEST,
                            "Error in the JQL Query: this sandbox understands labels = \"x\" clauses joined by AND.",
                            NULL);
    long long start = s_page_arg(req, "startAt", 0, 1LL << 40),
              max = s_page_arg(req, "maxResults", 50, JIRA_MAX_RESULTS);
    if (start < 0 || max < 0)
        return s_jira_error(resp, MHD_HTTP_BAD_REQUEST, "startAt and maxResults are non-negative integers.", NULL);
    const char *l[JIRA_JQL_CLAUSES] = {NULL};
    for (int k = 0; k < n; k++)
        l[k] = labels[k];
    long long total = sbx_db_int(st, 0, "SELECT COUNT(*)" JIRA_SEARCH_WHERE, "ssss", l[0], l[1], l[2], l[3]);
    json_t *rows =
        sbx_db_rows(st,
                    "SELECT id, key, project, summary, description, issuetype, priority,"
                    " labels AS \"json:labels\", created" JIRA_SEARCH_WHERE " ORDER BY seq LIMIT ?5 OFFSET ?6",
                    "ssssii", l[0], l[1], l[2], l[3], max, start);
    json_t *issues = json_array();
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row) json_array_append_new(issues, s_search_issue(req, row, sbx_query(req, "fields")));
    json_decref(rows);
    return sbx_reply(resp, MHD_HTTP_OK,
                     json_pack("{s:s, s:I, s:I, s:I, s:o}", "expand", "schema,names", "startAt", (json_int_t) start,
                               "maxResults", (json_int_t) max, "total", (json_int_t) total, "issues", issues));
}

/* s_handle - serve one routed Jira call */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    switch (req->route) {
    case R_CREATE:
        return s_create(st, req, resp);
    case R_COMMENT:
        return s_comment(st, req, resp);
    case R_SEARCH:
        return s_search(st, req, resp);
    default:
        return s_get(st, req, resp);
    }
}

const sbx_system_t sbx_jira = {
    .name = "jira",
    .prefix = "/jira",
    .auth = true,
    .idempotent_posts = false, /* like the real one: Idempotency-Key is ignored */
    .route = s_route,
    .handle = s_handle,
};
