/* test_ticket - the pure half of exactly-once tickets (common/ticket.h):
 * search paths percent-encoded and JQL-escaped, the answers of Jira's
 * search, ServiceNow's table query and Jira's comment list read (found,
 * not found, malformed), and the comment marker. */
#include <criterion/criterion.h>
#include <string.h>

#include "ticket.h"

static char s_key[TICKET_KEY_MAX], s_id[TICKET_KEY_MAX], s_err[256];

/* s_search - ticket_search_found on a text */
static int s_search(const char *system, const char *body, long *total)
{
    s_err[0] = '\0';
    return ticket_search_found(system, body, strlen(body), s_key, s_id, total, s_err, sizeof s_err);
}

Test(ticket, labels_tags_and_markers)
{
    char out[TICKET_MARKER_MAX];
    cr_assert_eq(ticket_case_label("payout-P-10492", out, sizeof out), 0);
    cr_assert_str_eq(out, "payguard-payout-P-10492");
    cr_assert_eq(ticket_step_tag("failure_ticket", out, sizeof out), 0);
    cr_assert_str_eq(out, "payguard-failure_ticket");
    cr_assert_eq(ticket_marker("refund-rf_1", "ticket_comment", out, sizeof out), 0);
    cr_assert_str_eq(out, "[payguard:refund-rf_1:ticket_comment]");
    /* a Jira label cannot hold a space or a control byte; nothing empty */
    cr_assert_eq(ticket_case_label("payout-P 1", out, sizeof out), -1);
    cr_assert_eq(ticket_case_label("payout-P\n1", out, sizeof out), -1);
    cr_assert_eq(ticket_case_label("", out, sizeof out), -1);
    cr_assert_eq(ticket_step_tag("Open Ticket", out, sizeof out), -1);
    cr_assert_eq(ticket_marker("", "ticket_comment", out, sizeof out), -1);
    char longid[200];
    memset(longid, 'a', sizeof longid - 1);
    longid[sizeof longid - 1] = '\0';
    cr_assert_eq(ticket_case_label(longid, out, sizeof out), -1, "over TICKET_CASE_MAX");
    char tiny[12];
    cr_assert_eq(ticket_case_label("payout-P-10492", tiny, sizeof tiny), -1, "does not fit");
}

Test(ticket, jira_search_path_is_jql_escaped_and_percent_encoded)
{
    char path[TICKET_PATH_MAX];
    cr_assert_eq(ticket_search_path("jira", "payout-P-1", "open_ticket", path, sizeof path, s_err, sizeof s_err), 0);
    cr_assert_str_eq(path, "/rest/api/2/search?jql=labels%20%3D%20%22payguard-payout-P-1%22%20AND%20labels%20%3D%20"
                           "%22payguard-open_ticket%22&maxResults=1&fields=key");
    /* a quote, a backslash, an ampersand and a percent in a case id: JQL
     * escapes the first two, the URL encoding all four (none ends the
     * parameter or the string early) */
    cr_assert_eq(
        ticket_search_path("jira", "payout-a\"b\\c&d%e", "open_ticket", path, sizeof path, s_err, sizeof s_err), 0);
    cr_assert(strstr(path, "%22payguard-payout-a%5C%22b%5C%5Cc%26d%25e%22%20AND"), "%s", path);
    cr_assert_null(strchr(path + strlen("/rest/api/2/search?jql="), '"'));
    cr_assert_eq(ticket_search_path("jira", "payout P", "open_ticket", path, sizeof path, s_err, sizeof s_err), -1);
    cr_assert(strstr(s_err, "label"), "%s", s_err);
}

Test(ticket, servicenow_search_path_and_what_it_refuses)
{
    char path[TICKET_PATH_MAX];
    cr_assert_eq(
        ticket_search_path("servicenow", "refund-rf_1", "failure_ticket", path, sizeof path, s_err, sizeof s_err), 0);
    cr_assert_str_eq(path, "/api/now/table/incident?sysparm_query=correlation_id%3Drefund-rf_1%5Ecorrelation_display%3D"
                           "payguard-failure_ticket&sysparm_limit=1&sysparm_fields=sys_id%2Cnumber");
    cr_assert_eq(
        ticket_search_path("servicenow", "refund-a=b&c", "open_ticket", path, sizeof path, s_err, sizeof s_err), 0);
    cr_assert(strstr(path, "correlation_id%3Drefund-a%3Db%26c%5E"), "%s", path);
    /* '^' is ServiceNow's AND: such a case cannot be searched for */
    cr_assert_eq(ticket_search_path("servicenow", "refund-a^b", "open_ticket", path, sizeof path, s_err, sizeof s_err),
                 -1);
    cr_assert(strstr(s_err, "'^'"), "%s", s_err);
    char id101[102];
    memset(id101, 'r', 101);
    id101[101] = '\0';
    cr_assert_eq(ticket_search_path("servicenow", id101, "open_ticket", path, sizeof path, s_err, sizeof s_err), -1);
    cr_assert(strstr(s_err, "correlation_id"), "%s", s_err);
    cr_assert_eq(ticket_search_path("teams", "payout-P-1", "open_ticket", path, sizeof path, s_err, sizeof s_err), -1);
}

Test(ticket, comments_path_from_the_comment_post)
{
    char path[TICKET_PATH_MAX];
    cr_assert_eq(ticket_comments_path("/rest/api/2/issue/PAY-7/comment", path, sizeof path), 0);
    cr_assert_str_eq(path, "/rest/api/2/issue/PAY-7/comment?orderBy=-created&maxResults=100");
    cr_assert_eq(ticket_comments_path("/rest/api/2/issue//comment", path, sizeof path), -1);
    cr_assert_eq(ticket_comments_path("/rest/api/2/issue/A/B/comment", path, sizeof path), -1);
    cr_assert_eq(ticket_comments_path("/rest/api/2/issue", path, sizeof path), -1);
    cr_assert_eq(ticket_comments_path(NULL, path, sizeof path), -1);
}

Test(ticket, jira_search_answers)
{
    long total = -1;
    cr_assert_eq(s_search("jira", "{\"startAt\":0,\"maxResults\":1,\"total\":0,\"issues\":[]}", &total), 0);
    cr_assert_eq(total, 0);
    cr_assert_eq(
        s_search("jira", "{\"total\":1,\"issues\":[{\"id\":\"10004\",\"key\":\"PAY-4\",\"fields\":{}}]}", &total), 1);
    cr_assert_str_eq(s_key, "PAY-4");
    cr_assert_str_eq(s_id, "10004");
    cr_assert_eq(total, 1);
    /* duplicates made before payguard searched: found, and counted */
    cr_assert_eq(s_search("jira", "{\"total\":3,\"issues\":[{\"id\":\"10001\",\"key\":\"PAY-1\"}]}", &total), 1);
    cr_assert_eq(total, 3);
    cr_assert_str_eq(s_key, "PAY-1");
    /* not Jira's shape: an error, never "not found" (that would create) */
    cr_assert_eq(s_search("jira", "{\"issues\":[]}", &total), -1);
    cr_assert_eq(s_search("jira", "{\"total\":2,\"issues\":[]}", &total), -1);
    cr_assert_eq(s_search("jira", "{\"total\":1,\"issues\":[{\"id\":\"1\"}]}", &total), -1);
    cr_assert_eq(s_search("jira", "<html>login</html>", &total), -1);
    cr_assert_eq(s_search("jira", "[]", &total), -1);
    cr_assert(s_err[0]);
}

Test(ticket, servicenow_search_answers)
{
    long total = -1;
    cr_assert_eq(s_search("servicenow", "{\"result\":[]}", &total), 0);
    cr_assert_eq(total, 0);
    cr_assert_eq(s_search("servicenow", "{\"result\":[{\"sys_id\":\"abc\",\"number\":\"INC0010002\"}]}", &total), 1);
    cr_assert_str_eq(s_key, "INC0010002");
    cr_assert_str_eq(s_id, "abc");
    cr_assert_eq(s_search("servicenow", "{\"result\":{\"sys_id\":\"abc\"}}", &total), -1);
    cr_assert_eq(s_search("servicenow", "{\"result\":[{\"number\":\"INC1\"}]}", &total), -1);
    cr_assert_eq(s_search("servicenow", "{\"error\":{\"message\":\"x\"}}", &total), -1);
}

Test(ticket, created_answers)
{
    const char *j = "{\"id\":\"10001\",\"key\":\"PAY-1\",\"self\":\"http://x\"}";
    cr_assert_eq(ticket_created("jira", j, strlen(j), s_key, s_id), 0);
    cr_assert_str_eq(s_key, "PAY-1");
    cr_assert_str_eq(s_id, "10001");
    const char *sn = "{\"result\":{\"sys_id\":\"f00\",\"number\":\"INC0010001\"}}";
    cr_assert_eq(ticket_created("servicenow", sn, strlen(sn), s_key, s_id), 0);
    cr_assert_str_eq(s_key, "INC0010001");
    cr_assert_eq(ticket_created("servicenow", j, strlen(j), s_key, s_id), -1);
    cr_assert_eq(ticket_created("jira", "{}", 2, s_key, s_id), -1);
    cr_assert_eq(ticket_created("jira", NULL, 0, s_key, s_id), -1);
}

Test(ticket, comment_markers_found_absent_or_unknowable)
{
    const char *m = "[payguard:payout-P-1:ticket_comment]";
    const char *none = "{\"startAt\":0,\"maxResults\":2,\"total\":2,\"comments\":[{\"id\":\"1\",\"body\":\"hello\"},"
                       "{\"id\":\"2\",\"body\":\"[payguard:payout-P-2:ticket_comment] another case\"}]}";
    cr_assert_eq(ticket_comments_marked(none, strlen(none), m, s_id, s_err, sizeof s_err), 0);
    const char *found = "{\"total\":2,\"comments\":[{\"id\":\"1\",\"body\":\"hello\"},"
                        "{\"id\":\"10009\",\"body\":\"[payguard:payout-P-1:ticket_comment] payguard case ...\"}]}";
    cr_assert_eq(ticket_comments_marked(found, strlen(found), m, s_id, s_err, sizeof s_err), 1);
    cr_assert_str_eq(s_id, "10009");
    /* more comments than read, none of those read ours: payguard cannot tell */
    const char *partial = "{\"total\":150,\"comments\":[{\"id\":\"1\",\"body\":\"hello\"}]}";
    cr_assert_eq(ticket_comments_marked(partial, strlen(partial), m, s_id, s_err, sizeof s_err), -1);
    cr_assert(strstr(s_err, "cannot tell"), "%s", s_err);
    /* ... but if ours is among them, it is there */
    const char *partial_found = "{\"total\":150,\"comments\":[{\"id\":\"7\",\"body\":\"x [payguard:payout-P-1:"
                                "ticket_comment]\"}]}";
    cr_assert_eq(ticket_comments_marked(partial_found, strlen(partial_found), m, s_id, s_err, sizeof s_err), 1);
    cr_assert_eq(ticket_comments_marked("{\"total\":0}", 11, m, s_id, s_err, sizeof s_err), -1);
    cr_assert_eq(ticket_comments_marked("nope", 4, m, s_id, s_err, sizeof s_err), -1);
}
