/* ticket - search paths, labels, markers and answers of the ticket systems
 * (see ticket.h): what makes a ticket step exactly-once against Jira and
 * ServiceNow, which ignore Idempotency-Key. Pure: strings in, strings out.
 *
 * Case ids are printable ASCII without spaces (validate's schema), so they
 * may hold '"', '\\', '&', '=', '%'...: in a JQL string '"' and '\\' are
 * escaped with a backslash, then the whole query is percent-encoded
 * outside RFC 3986's unreserved set. ServiceNow's encoded query has no
 * escape for '^' (its AND): a case id holding one cannot be searched for,
 * and is refused (the planner says so before any call).
 */
#include <assert.h>
#include <jansson.h>
#include <stdio.h>
#include <string.h>

#include "ticket.h"

#define TICKET_JQL_MAX 600 /* the JQL text before encoding */

/* s_err - write err (if any); -1 */
static int s_err(char *err, size_t errlen, const char *what)
{
    if (err && errlen)
        snprintf(err, errlen, "%s", what);
    return -1;
}

/* s_pct_append - src percent-encoded outside the unreserved set, appended at *len; -1 if it does not fit */
static int s_pct_append(char *dst, size_t dstlen, size_t *len, const char *src)
{
    static const char hex[] = "0123456789ABCDEF";
    assert(dst && len && *len < dstlen);
    for (const unsigned char *p = (const unsigned char *) src; *p; p++) {
        bool plain = (*p >= 'A' && *p <= 'Z') || (*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '-' ||
                     *p == '.' || *p == '_' || *p == '~';
        size_t need = plain ? 1 : 3;
        if (*len + need >= dstlen)
            return -1;
        if (plain) {
            dst[(*len)++] = (char) *p;
        } else {
            dst[(*len)++] = '%';
            dst[(*len)++] = hex[*p >> 4];
            dst[(*len)++] = hex[*p & 15];
        }
    }
    dst[*len] = '\0';
    return 0;
}

/* s_raw_append - plain text appended at *len; -1 if it does not fit */
static int s_raw_append(char *dst, size_t dstlen, size_t *len, const char *src)
{
    size_t n = strlen(src);
    assert(*len < dstlen);
    if (*len + n >= dstlen)
        return -1;
    memcpy(dst + *len, src, n + 1);
    *len += n;
    return 0;
}

/* s_case_ok - a case id a label, query or marker can carry */
static bool s_case_ok(const char *case_id)
{
    size_t n = case_id ? strlen(case_id) : 0;
    if (n == 0 || n > TICKET_CASE_MAX)
        return false;
    for (const unsigned char *p = (const unsigned char *) case_id; *p; p++)
        if (*p <= 0x20 || *p >= 0x7f)
            return false;
    return true;
}

/* ticket_case_label - see ticket.h */
int ticket_case_label(const char *case_id, char *out, size_t outlen)
{
    assert(out && outlen > 0);
    out[0] = '\0';
    if (!s_case_ok(case_id))
        return -1;
    int n = snprintf(out, outlen, "payguard-%s", case_id);
    assert(n > 0);
    return (size_t) n < outlen ? 0 : -1;
}

/* ticket_step_tag - see ticket.h */
int ticket_step_tag(const char *step, char *out, size_t outlen)
{
    assert(out && outlen > 0);
    out[0] = '\0';
    size_t n = step ? strlen(step) : 0;
    if (n == 0 || n > 40)
        return -1;
    for (const char *p = step; *p; p++)
        if (!((*p >= 'a' && *p <= 'z') || (*p >= '0' && *p <= '9') || *p == '_'))
            return -1;
    int w = snprintf(out, outlen, "payguard-%s", step);
    assert(w > 0);
    return (size_t) w < outlen ? 0 : -1;
}

/* ticket_marker - see ticket.h */
int ticket_marker(const char *case_id, const char *step, char *out, size_t outlen)
{
    char tag[64];
    assert(out && outlen > 0);
    out[0] = '\0';
    if (!s_case_ok(case_id) || ticket_step_tag(step, tag, sizeof tag) != 0)
        return -1;
    int n = snprintf(out, outlen, "[payguard:%s:%s]", case_id, step);
    assert(n > 0);
    return (size_t) n < outlen ? 0 : -1;
}

/* s_jql_string - "text" as a JQL string literal ('"' and '\\' escaped) appended at *len */
static int s_jql_string(char *dst, size_t dstlen, size_t *len, const char *text)
{
    if (*len + 1 >= dstlen)
        return -1;
    dst[(*len)++] = '"';
    for (const char *p = text; *p; p++) {
        if (*len + 3 >= dstlen)
            return -1;
        if (*p == '"' || *p == '\\')
            dst[(*len)++] = '\\';
        dst[(*len)++] = *p;
    }
    dst[(*len)++] = '"';
    dst[*len] = '\0';
    return 0;
}

/* s_jira_search - /rest/api/2/search?jql=labels="<label>"&maxResults=N&fields=labels */
static int s_jira_search(const char *label, char *out, size_t outlen)
{
    char jql[TICKET_JQL_MAX], tail[64];
    size_t j = 0, n = 0;
    jql[0] = out[0] = '\0';
    snprintf(tail, sizeof tail, "&maxResults=%d&fields=labels", TICKET_SEARCH_PAGE);
    if (s_raw_append(jql, sizeof jql, &j, "labels=") || s_jql_string(jql, sizeof jql, &j, label))
        return -1;
    return s_raw_append(out, outlen, &n, "/rest/api/2/search?jql=") || s_pct_append(out, outlen, &n, jql) ||
                   s_raw_append(out, outlen, &n, tail)
               ? -1
               : 0;
}

/* s_sn_search - /api/now/table/incident?sysparm_query=correlation_id=<case>&sysparm_limit=N&sysparm_fields=... */
static int s_sn_search(const char *case_id, char *out, size_t outlen)
{
    char q[TICKET_JQL_MAX], tail[96];
    int w = snprintf(q, sizeof q, "correlation_id=%s", case_id);
    size_t n = 0;
    out[0] = '\0';
    if (w < 0 || (size_t) w >= sizeof q)
        return -1;
    snprintf(tail, sizeof tail, "&sysparm_limit=%d&sysparm_fields=sys_id%%2Cnumber%%2Ccorrelation_display",
             TICKET_SEARCH_PAGE);
    return s_raw_append(out, outlen, &n, "/api/now/table/incident?sysparm_query=") ||
                   s_pct_append(out, outlen, &n, q) || s_raw_append(out, outlen, &n, tail)
               ? -1
               : 0;
}

/* ticket_search_path - see ticket.h */
int ticket_search_path(const char *system, const char *case_id, char *out, size_t outlen, char *err, size_t errlen)
{
    char label[TICKET_LABEL_MAX];
    assert(system && out && outlen > 0);
    assert(outlen >= 64); /* the fixed part of either path fits */
    out[0] = '\0';
    if (ticket_case_label(case_id, label, sizeof label) != 0)
        return s_err(err, errlen, "the case id cannot be a ticket label (empty, too long, a space or control byte)");
    if (strcmp(system, "jira") == 0) {
        if (s_jira_search(label, out, outlen) != 0)
            return s_err(err, errlen, "the Jira search for the case's tickets is too long");
        return 0;
    }
    if (strcmp(system, "servicenow") != 0)
        return s_err(err, errlen, "tickets are searched in jira or servicenow only");
    if (strlen(case_id) > TICKET_SN_FIELD_MAX)
        return s_err(err, errlen, "the case id is longer than ServiceNow's correlation_id (100)");
    if (strchr(case_id, '^'))
        return s_err(err, errlen,
                     "the case id holds '^', ServiceNow's query separator: its incident cannot be "
                     "searched for");
    if (s_sn_search(case_id, out, outlen) != 0)
        return s_err(err, errlen, "the ServiceNow search for the case's incidents is too long");
    return 0;
}

/* ticket_comments_path - see ticket.h */
int ticket_comments_path(const char *post_path, char *out, size_t outlen)
{
    static const char prefix[] = "/rest/api/2/issue/", suffix[] = "/comment";
    assert(out && outlen > 0);
    out[0] = '\0';
    size_t n = post_path ? strlen(post_path) : 0, lp = sizeof prefix - 1, ls = sizeof suffix - 1;
    if (n <= lp + ls || strncmp(post_path, prefix, lp) != 0 || strcmp(post_path + n - ls, suffix) != 0 ||
        memchr(post_path + lp, '/', n - lp - ls) || memchr(post_path, '?', n))
        return -1;
    int w = snprintf(out, outlen, "%s?orderBy=-created&maxResults=%d", post_path, TICKET_COMMENTS_READ);
    assert(w > 0);
    return (size_t) w < outlen ? 0 : -1;
}

/* s_copy_str - a string member (non-empty, shorter than TICKET_KEY_MAX) into dst; -1 if not */
static int s_copy_str(const json_t *obj, const char *name, char dst[TICKET_KEY_MAX])
{
    const char *v = json_string_value(json_object_get(obj, name));
    dst[0] = '\0';
    if (!v || !*v || strlen(v) >= TICKET_KEY_MAX)
        return -1;
    snprintf(dst, TICKET_KEY_MAX, "%s", v);
    return 0;
}

/* s_pick - of a listed ticket: 2 it is the step's (its step field holds
 * tag), 1 unknown (the answer omits that field: taken as the step's, never
 * risking a second ticket), 0 another step's */
static int s_pick(const json_t *tag_field, const char *tag)
{
    if (json_is_string(tag_field))
        return strcmp(json_string_value(tag_field), tag) == 0 ? 2 : 0;
    if (!json_is_array(tag_field))
        return 1;
    size_t i;
    json_t *v;
    json_array_foreach(tag_field, i, v) if (json_is_string(v) && strcmp(json_string_value(v), tag) == 0) return 2;
    return 0;
}

/* s_choose - the step's ticket among a list: the first holding its tag,
 * else the first that does not say; its index, -1 if none. *matches: how
 * many could be it */
static long s_choose(const json_t *list, const char *tag, bool jira, long *matches)
{
    assert(json_is_array(list) && matches);
    assert(tag && strncmp(tag, "payguard-", 9) == 0);
    long best = -1, fallback = -1;
    size_t i;
    json_t *t;
    *matches = 0;
    json_array_foreach(list, i, t)
    {
        const json_t *f =
            jira ? json_object_get(json_object_get(t, "fields"), "labels") : json_object_get(t, "correlation_display");
        int p = s_pick(f, tag);
        *matches += p > 0;
        if (p == 2 && best < 0)
            best = (long) i;
        if (p == 1 && fallback < 0)
            fallback = (long) i;
    }
    return best >= 0 ? best : fallback;
}

/* s_search_list - the listed tickets of a search answer and whether the list is whole; NULL + err if malformed */
static const json_t *s_search_list(const json_t *j, bool jira, bool *whole, char *err, size_t errlen)
{
    assert(json_is_object(j) && whole);
    if (jira) {
        json_t *t = json_object_get(j, "total"), *issues = json_object_get(j, "issues");
        if (!json_is_integer(t) || json_integer_value(t) < 0 || !json_is_array(issues)) {
            s_err(err, errlen, "the Jira search answer has no total and issues");
            return NULL;
        }
        if (json_array_size(issues) == 0 && json_integer_value(t) > 0) {
            s_err(err, errlen, "the Jira search counts issues but lists none");
            return NULL;
        }
        *whole = json_integer_value(t) <= (json_int_t) json_array_size(issues);
        return issues;
    }
    json_t *rows = json_object_get(j, "result");
    if (!json_is_array(rows)) {
        s_err(err, errlen, "the ServiceNow answer has no result list");
        return NULL;
    }
    *whole = json_array_size(rows) < TICKET_SEARCH_PAGE;
    return rows;
}

/* s_search - see ticket_search_found */
static int s_search(const json_t *j, bool jira, const char *tag, char key[TICKET_KEY_MAX], char id[TICKET_KEY_MAX],
                    long *matches, char *err, size_t errlen)
{
    bool whole = true;
    const json_t *list = s_search_list(j, jira, &whole, err, errlen);
    if (!list)
        return -1;
    long at = s_choose(list, tag, jira, matches);
    assert(at < (long) json_array_size(list) && *matches >= (at >= 0));
    if (at < 0)
        return whole ? 0
                     : s_err(err, errlen,
                             "the case has more tickets than one search lists, none of those listed this step's: "
                             "payguard cannot tell whether it exists");
    const json_t *t = json_array_get(list, (size_t) at);
    if (s_copy_str(t, jira ? "key" : "number", key) != 0 || s_copy_str(t, jira ? "id" : "sys_id", id) != 0)
        return s_err(err, errlen,
                     jira ? "the Jira search lists an issue without id and key"
                          : "the ServiceNow answer lists an incident without sys_id and number");
    return 1;
}

/* ticket_search_found - see ticket.h */
int ticket_search_found(const char *system, const char *step, const char *body, size_t len, char key[TICKET_KEY_MAX],
                        char id[TICKET_KEY_MAX], long *matches, char *err, size_t errlen)
{
    char tag[64];
    assert(system && key && id && matches);
    key[0] = id[0] = '\0';
    *matches = 0;
    bool jira = strcmp(system, "jira") == 0;
    if (!jira && strcmp(system, "servicenow") != 0)
        return s_err(err, errlen, "tickets are searched in jira or servicenow only");
    if (ticket_step_tag(step, tag, sizeof tag) != 0)
        return s_err(err, errlen, "the step name cannot be a ticket label");
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    int rc = json_is_object(j) ? s_search(j, jira, tag, key, id, matches, err, errlen)
                               : s_err(err, errlen, "the search answer is not a JSON object");
    json_decref(j);
    assert(rc >= -1 && rc <= 1);
    return rc;
}

/* ticket_step_of_key - see ticket.h */
int ticket_step_of_key(const char *case_id, const char *idem_key, char *out, size_t outlen)
{
    assert(out && outlen > 0);
    assert(!idem_key || strlen(idem_key) < 1024); /* an Idempotency-Key is at most 255 bytes */
    out[0] = '\0';
    size_t cl = case_id ? strlen(case_id) : 0;
    if (!cl || !idem_key || strncmp(idem_key, case_id, cl) != 0 || idem_key[cl] != ':')
        return -1;
    const char *step = idem_key + cl + 1;
    size_t n = strcspn(step, ":");
    if (n == 0 || n >= outlen)
        return -1;
    memcpy(out, step, n);
    out[n] = '\0';
    return 0;
}

/* ticket_created - see ticket.h */
int ticket_created(const char *system, const char *body, size_t len, char key[TICKET_KEY_MAX], char id[TICKET_KEY_MAX])
{
    assert(system && key && id);
    key[0] = id[0] = '\0';
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    int rc = -1;
    if (json_is_object(j) && strcmp(system, "servicenow") == 0) {
        json_t *r = json_object_get(j, "result");
        rc = s_copy_str(r, "number", key) || s_copy_str(r, "sys_id", id) ? -1 : 0;
    } else if (json_is_object(j)) {
        rc = s_copy_str(j, "key", key) || s_copy_str(j, "id", id) ? -1 : 0;
    }
    json_decref(j);
    return rc;
}

/* ticket_comments_marked - see ticket.h */
int ticket_comments_marked(const char *body, size_t len, const char *marker, char id[TICKET_KEY_MAX], char *err,
                           size_t errlen)
{
    assert(marker && *marker && id);
    assert(errlen == 0 || err);
    id[0] = '\0';
    json_t *j = body ? json_loadb(body, len, 0, NULL) : NULL;
    json_t *list = json_object_get(j, "comments"), *t = json_object_get(j, "total");
    int rc = 0;
    if (!json_is_array(list) || (t && !json_is_integer(t))) {
        rc = s_err(err, errlen, "the comment list is not Jira's {\"comments\":[...],\"total\":N}");
    } else {
        size_t i;
        json_t *c;
        json_array_foreach(list, i, c)
        {
            const char *text = json_string_value(json_object_get(c, "body"));
            if (text && strstr(text, marker)) {
                if (s_copy_str(c, "id", id) != 0)
                    snprintf(id, TICKET_KEY_MAX, "?");
                rc = 1;
                break;
            }
        }
        if (rc == 0 && t && json_integer_value(t) > (json_int_t) json_array_size(list))
            rc = s_err(err, errlen,
                       "the ticket has more comments than payguard reads; none of those read is its own, "
                       "so it cannot tell whether its comment is there");
    }
    json_decref(j);
    return rc;
}
