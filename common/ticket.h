/* ticket - tickets exactly once in systems that ignore Idempotency-Key
 * (Jira, ServiceNow: CONTRACT.md §2.4), the pure half.
 *
 * Neither Jira nor ServiceNow answers a repeated create with the first
 * ticket: a create whose answer was lost (a crash before it was recorded, a
 * 5xx after the ticket was made) and that is made again opens a second
 * ticket. So each ticket names its case and step in fields the system can
 * search, and a ticket step looks first and creates only when nothing is
 * found. The search is CONTRACT.md §2.4's, by case; the step (a case can
 * have a runbook ticket, open_ticket, and a failure ticket, failure_ticket)
 * is told apart in the answer:
 *   Jira        labels "payguard-<case id>" and "payguard-<step>"; searched
 *               with GET /rest/api/2/search?jql=labels="payguard-<case id>"
 *               &maxResults=20&fields=labels (percent-encoded; quotes and
 *               backslashes escaped for JQL); the step's ticket is the
 *               listed issue whose fields.labels hold payguard-<step>
 *   ServiceNow  correlation_id = the case id, correlation_display =
 *               "payguard-<step>"; searched with GET /api/now/table/incident
 *               ?sysparm_query=correlation_id=<case id>&sysparm_limit=20
 *               &sysparm_fields=sys_id,number,correlation_display
 *   comments    the text carries the marker "[payguard:<case id>:<step>]";
 *               the ticket's comments are read (newest first) before adding.
 * A listed ticket whose answer omits the step field (labels,
 * correlation_display) counts as the step's: when in doubt, never a second
 * ticket.
 * This file builds those paths, labels and markers and reads the answers;
 * execute makes the calls (execute/main.c). No I/O here.
 */
#ifndef PG_TICKET_H
#define PG_TICKET_H

#include <stdbool.h>
#include <stddef.h>

#define TICKET_CASE_MAX 159      /* a case id (rb_plan_t.case_id holds 160 with the NUL) */
#define TICKET_PATH_MAX 300      /* a lookup path (as rb_step_t.path) */
#define TICKET_KEY_MAX 128       /* a ticket key, incident number, sys_id or comment id kept */
#define TICKET_LABEL_MAX 200     /* "payguard-<case id>" */
#define TICKET_MARKER_MAX 220    /* "[payguard:<case id>:<step>]" */
#define TICKET_COMMENTS_READ 100 /* comments read, newest first, before adding one */
#define TICKET_SN_FIELD_MAX 100  /* ServiceNow correlation_id and correlation_display */
#define TICKET_SEARCH_PAGE 20    /* tickets of one case listed by a search (a case has one or two) */

/* ticket_case_label - "payguard-<case id>" into out; -1 if the case id is
 * empty, too long, or holds a space or control byte (a Jira label cannot) */
int ticket_case_label(const char *case_id, char *out, size_t outlen);

/* ticket_step_tag - "payguard-<step>": the step's Jira label and
 * ServiceNow correlation_display; -1 if step is empty or not a word */
int ticket_step_tag(const char *step, char *out, size_t outlen);

/* ticket_marker - "[payguard:<case id>:<step>]", the mark of a comment; -1 if it does not fit */
int ticket_marker(const char *case_id, const char *step, char *out, size_t outlen);

/* ticket_search_path - the GET that lists the case's tickets, for system
 * "jira" or "servicenow" (see above); -1 and err if the case id cannot be
 * searched for (too long, a ServiceNow query operator '^' in it) */
int ticket_search_path(const char *system, const char *case_id, char *out, size_t outlen, char *err, size_t errlen);

/* ticket_comments_path - GET /rest/api/2/issue/{key}/comment, newest
 * first, TICKET_COMMENTS_READ of them (path is the comment step's own
 * POST path, "/rest/api/2/issue/{key}/comment"); -1 if it is not one */
int ticket_comments_path(const char *post_path, char *out, size_t outlen);

/* ticket_search_found - a search answer, for the ticket of step
 * ("open_ticket", "failure_ticket"): 1 found (key: the Jira key or
 * ServiceNow number, id: the Jira id or sys_id), 0 not among the case's
 * tickets, -1 and err if the answer is not the system's shape, or the case
 * has more tickets than the answer lists and none listed is the step's.
 * *matches: how many listed could be the step's (more than one: duplicates
 * made before payguard searched) */
int ticket_search_found(const char *system, const char *step, const char *body, size_t len, char key[TICKET_KEY_MAX],
                        char id[TICKET_KEY_MAX], long *matches, char *err, size_t errlen);

/* ticket_step_of_key - the step an Idempotency-Key "<case id>:<step>[:retry<n>]"
 * names ("open_ticket", "failure_ticket"); -1 if it is not the case's */
int ticket_step_of_key(const char *case_id, const char *idem_key, char *out, size_t outlen);

/* ticket_created - the key (and id) a create answered: Jira {"id","key"},
 * ServiceNow {"result":{"sys_id","number"}}; -1 if absent */
int ticket_created(const char *system, const char *body, size_t len, char key[TICKET_KEY_MAX], char id[TICKET_KEY_MAX]);

/* ticket_comments_marked - a Jira comment list {"comments":[{"id","body"}],
 * "total"}: 1 a comment holds marker (id: its id), 0 none does and the list
 * was whole, -1 and err if the answer is malformed or the ticket has more
 * comments than were read and none of those read holds the marker (payguard
 * cannot tell; a person looks) */
int ticket_comments_marked(const char *body, size_t len, const char *marker, char id[TICKET_KEY_MAX], char *err,
                           size_t errlen);

#endif
