/* ticket - tickets exactly once in systems that ignore Idempotency-Key
 * (Jira, ServiceNow: CONTRACT.md §2.4), the pure half.
 *
 * Neither Jira nor ServiceNow answers a repeated create with the first
 * ticket: a create whose answer was lost (a crash before it was recorded, a
 * 5xx after the ticket was made) and that is made again opens a second
 * ticket. So each ticket names its case and step in fields the system can
 * search, and a ticket step looks first and creates only when nothing is
 * found:
 *   Jira        labels "payguard-<case id>" (every ticket of the case) and
 *               "payguard-<step>" (open_ticket, failure_ticket: a case can
 *               have both); searched with
 *               GET /rest/api/2/search?jql=labels = "payguard-<case id>" AND
 *               labels = "payguard-<step>" (percent-encoded; quotes and
 *               backslashes escaped for JQL)
 *   ServiceNow  correlation_id = the case id, correlation_display =
 *               "payguard-<step>"; searched with
 *               GET /api/now/table/incident?sysparm_query=correlation_id=<case
 *               id>^correlation_display=payguard-<step>&sysparm_limit=1
 *   comments    the text carries the marker "[payguard:<case id>:<step>]";
 *               the ticket's comments are read (newest first) before adding.
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

/* ticket_case_label - "payguard-<case id>" into out; -1 if the case id is
 * empty, too long, or holds a space or control byte (a Jira label cannot) */
int ticket_case_label(const char *case_id, char *out, size_t outlen);

/* ticket_step_tag - "payguard-<step>": the step's Jira label and
 * ServiceNow correlation_display; -1 if step is empty or not a word */
int ticket_step_tag(const char *step, char *out, size_t outlen);

/* ticket_marker - "[payguard:<case id>:<step>]", the mark of a comment; -1 if it does not fit */
int ticket_marker(const char *case_id, const char *step, char *out, size_t outlen);

/* ticket_search_path - the GET that finds the ticket a step opened, for
 * system "jira" or "servicenow" (see above); -1 and err if the case id
 * cannot be searched for (too long, a ServiceNow query operator '^' in it) */
int ticket_search_path(const char *system, const char *case_id, const char *step, char *out, size_t outlen, char *err,
                       size_t errlen);

/* ticket_comments_path - GET /rest/api/2/issue/{key}/comment, newest
 * first, TICKET_COMMENTS_READ of them (path is the comment step's own
 * POST path, "/rest/api/2/issue/{key}/comment"); -1 if it is not one */
int ticket_comments_path(const char *post_path, char *out, size_t outlen);

/* ticket_search_found - a search answer: 1 found (key: the Jira key or
 * ServiceNow number, id: the Jira id or sys_id), 0 nothing found, -1 and err
 * if the answer is not the system's shape. *total: how many matched (Jira's
 * total; ServiceNow: the rows returned), more than one meaning duplicates
 * made before payguard searched */
int ticket_search_found(const char *system, const char *body, size_t len, char key[TICKET_KEY_MAX],
                        char id[TICKET_KEY_MAX], long *total, char *err, size_t errlen);

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
