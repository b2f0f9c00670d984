/* test_ticket - the pure half of exactly-once tickets (common/ticket.h):
 * search paths percent-encoded and JQL-escaped, the answers of Jira's
 * search, ServiceNow's table query and Jira's comment list read (found,
 * not found, malformed), and the comment marker. */
#include <criterion/criterion.h>
#include <string.h>

#include "ticket.h"

static char s_key[TICKET_KEY_MAX], s_id[TICKET_KEY_MAX], s_err[256];

/* s_search - ticket_search_found on a text, for step */
static int s_search(const char *system, const char *step, const char *body, long *matches)
{
    s_err[0] = '\0';
    return ticket_search_found(system, step, body, strlen(body), s_key, s_id, matches, s_err, sizeof s_err);
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
    cr_assert_eq(ticket_search_path("jira", "payout-P-1", path, sizeof path, s_err, sizeof s_err), 0);
    /* CONTRACT.md §2.4's search, labels="payguard-<case id>", with the labels listed */
    cr_assert_str_eq(path, "/rest/api/2/search?jql=labels%3D%22payguard-payout-P-1%22&maxResults=20&fields=labels");
    /* a quote, a backslash, an ampersand and a percent in a case id: JQL
     * escapes the first two, the URL encoding all four (none ends the
     * parameter or the string early) */
    cr_assert_eq(ticket_search_path("jira", "payout-a\"b\\c&d%e", path, sizeof path, s_err, sizeof s_err), 0);
    cr_assert_str_eq(path, "/rest/api/2/search?jql=labels%3D%22payguard-payout-a%5C%22b%5C%5Cc%26d%25e%22&maxResults=20"
                           "&fields=labels");
    cr_assert_null(strchr(path, '"'));
    cr_assert_eq(ticket_search_path("jira", "payout P", path, sizeof path, s_err, sizeof s_err), -1);
    cr_assert(strstr(s_err, "label"), "%s", s_err);
}

Test(ticket, servicenow_search_path_and_what_it_refuses)
{
    char path[TICKET_PATH_MAX];
    cr_assert_eq(ticket_search_path("servicenow", "refund-rf_1", path, sizeof path, s_err, sizeof s_err), 0);
    cr_assert_str_eq(path, "/api/now/table/incident?sysparm_query=correlation_id%3Drefund-rf_1&sysparm_limit=20"
                           "&sysparm_fields=sys_id%2Cnumber%2Ccorrelation_display");
    cr_assert_eq(ticket_search_path("servicenow", "refund-a=b&c", path, sizeof path, s_err, sizeof s_err), 0);
    cr_assert(strstr(path, "correlation_id%3Drefund-a%3Db%26c&sysparm_limit"), "%s", path);
    /* '^' is ServiceNow's AND: such a case cannot be searched for */
    cr_assert_eq(ticket_search_path("servicenow", "refund-a^b", path, sizeof path, s_err, sizeof s_err), -1);
    cr_assert(strstr(s_err, "'^'"), "%s", s_err);
    char id101[102];
    memset(id101, 'r', 101);
    id101[101] = '\0';
    cr_assert_eq(ticket_search_path("servicenow", id101, path, sizeof path, s_err, sizeof s_err), -1);
    cr_assert(strstr(s_err, "correlation_id"), "%s", s_err);
    cr_assert_eq(ticket_search_path("teams", "payout-P-1", path, sizeof path, s_err, sizeof s_err), -1);
}

Test(ticket, the_step_of_a_key)
{
    char step[40];
    cr_assert_eq(ticket_step_of_key("payout-P-1", "payout-P-1:open_ticket", step, sizeof step), 0);
    cr_assert_str_eq(step, "open_ticket");
    cr_assert_eq(ticket_step_of_key("payout-P-1", "payout-P-1:open_ticket:retry2", step, sizeof step), 0);
    cr_assert_str_eq(step, "open_ticket");
    cr_assert_eq(ticket_step_of_key("payout-P-1", "payout-P-1:failure_ticket", step, sizeof step), 0);
    cr_assert_str_eq(step, "failure_ticket");
    cr_assert_eq(ticket_step_of_key("payout-P-1", "payout-P-11:open_ticket", step, sizeof step), -1);
    cr_assert_eq(ticket_step_of_key("payout-P-1", "payout-P-1:", step, sizeof step), -1);
    cr_assert_eq(ticket_step_of_key("payout-P-1", "payout-P-1", step, sizeof step), -1);
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

#define OPEN "[\"payguard\",\"payguard-payout-P-1\",\"payguard-open_ticket\"]"
#define FAIL "[\"payguard\",\"runbook-failure\",\"payguard-payout-P-1\",\"payguard-failure_ticket\"]"

Test(ticket, jira_search_answers)
{
    long n = -1;
    cr_assert_eq(s_search("jira", "open_ticket", "{\"startAt\":0,\"maxResults\":20,\"total\":0,\"issues\":[]}", &n), 0);
    cr_assert_eq(n, 0);
    const char *one =
        "{\"total\":1,\"issues\":[{\"id\":\"10004\",\"key\":\"PAY-4\",\"fields\":{\"labels\":" OPEN "}}]}";
    cr_assert_eq(s_search("jira", "open_ticket", one, &n), 1);
    cr_assert_str_eq(s_key, "PAY-4");
    cr_assert_str_eq(s_id, "10004");
    cr_assert_eq(n, 1);
    /* the case's failure ticket is not its runbook ticket, and the other way round */
    cr_assert_eq(s_search("jira", "failure_ticket", one, &n), 0);
    const char *both = "{\"total\":2,\"issues\":[{\"id\":\"10007\",\"key\":\"PAY-7\",\"fields\":{\"labels\":" FAIL
                       "}},{\"id\":\"10009\",\"key\":\"PAY-9\",\"fields\":{\"labels\":" OPEN "}}]}";
    cr_assert_eq(s_search("jira", "open_ticket", both, &n), 1);
    cr_assert_str_eq(s_key, "PAY-9");
    cr_assert_eq(s_search("jira", "failure_ticket", both, &n), 1);
    cr_assert_str_eq(s_key, "PAY-7");
    /* duplicates made before payguard searched: the first, and counted */
    const char *dup = "{\"total\":2,\"issues\":[{\"id\":\"10001\",\"key\":\"PAY-1\",\"fields\":{\"labels\":" OPEN
                      "}},{\"id\":\"10002\",\"key\":\"PAY-2\",\"fields\":{\"labels\":" OPEN "}}]}";
    cr_assert_eq(s_search("jira", "open_ticket", dup, &n), 1);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(s_key, "PAY-1");
    /* an answer that does not list labels: taken as the step's (never a second ticket) */
    cr_assert_eq(
        s_search("jira", "failure_ticket", "{\"total\":1,\"issues\":[{\"id\":\"10003\",\"key\":\"PAY-3\"}]}", &n), 1);
    cr_assert_str_eq(s_key, "PAY-3");
    /* more tickets than listed, none listed the step's: payguard cannot tell */
    const char *partial =
        "{\"total\":25,\"issues\":[{\"id\":\"10007\",\"key\":\"PAY-7\",\"fields\":{\"labels\":" FAIL "}}]}";
    cr_assert_eq(s_search("jira", "open_ticket", partial, &n), -1);
    cr_assert(strstr(s_err, "cannot tell"), "%s", s_err);
    /* not Jira's shape: an error, never "not found" (that would create) */
    cr_assert_eq(s_search("jira", "open_ticket", "{\"issues\":[]}", &n), -1);
    cr_assert_eq(s_search("jira", "open_ticket", "{\"total\":2,\"issues\":[]}", &n), -1);
    cr_assert_eq(s_search("jira", "open_ticket", "{\"total\":1,\"issues\":[{\"id\":\"1\"}]}", &n), -1);
    cr_assert_eq(s_search("jira", "open_ticket", "<html>login</html>", &n), -1);
    cr_assert_eq(s_search("jira", "open_ticket", "[]", &n), -1);
    cr_assert_eq(s_search("jira", "Open Ticket", one, &n), -1);
    cr_assert(s_err[0]);
}

Test(ticket, servicenow_search_answers)
{
    long n = -1;
    cr_assert_eq(s_search("servicenow", "open_ticket", "{\"result\":[]}", &n), 0);
    cr_assert_eq(n, 0);
    const char *two = "{\"result\":[{\"sys_id\":\"f1\",\"number\":\"INC0010001\",\"correlation_display\":"
                      "\"payguard-failure_ticket\"},{\"sys_id\":\"a2\",\"number\":\"INC0010002\","
                      "\"correlation_display\":\"payguard-open_ticket\"}]}";
    cr_assert_eq(s_search("servicenow", "open_ticket", two, &n), 1);
    cr_assert_str_eq(s_key, "INC0010002");
    cr_assert_str_eq(s_id, "a2");
    cr_assert_eq(s_search("servicenow", "failure_ticket", two, &n), 1);
    cr_assert_str_eq(s_key, "INC0010001");
    cr_assert_eq(s_search("servicenow", "open_ticket",
                          "{\"result\":[{\"sys_id\":\"f1\",\"number\":\"INC1\",\"correlation_display\":"
                          "\"payguard-failure_ticket\"}]}",
                          &n),
                 0);
    /* no correlation_display in the answer (another system's fields, an ACL): taken as the step's */
    cr_assert_eq(
        s_search("servicenow", "open_ticket", "{\"result\":[{\"sys_id\":\"abc\",\"number\":\"INC0010009\"}]}", &n), 1);
    cr_assert_str_eq(s_key, "INC0010009");
    cr_assert_eq(s_search("servicenow", "open_ticket", "{\"result\":{\"sys_id\":\"abc\"}}", &n), -1);
    cr_assert_eq(s_search("servicenow", "open_ticket", "{\"result\":[{\"number\":\"INC1\"}]}", &n), -1);
    cr_assert_eq(s_search("servicenow", "open_ticket", "{\"error\":{\"message\":\"x\"}}", &n), -1);
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
