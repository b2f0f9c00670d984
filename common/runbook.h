/* runbook - the planner: an approved or denied case -> the exact calls,
 * fixed lists of bounded steps planned only from the recorded case
 * (CONTRACT.md §5). Pure (no I/O): execute runs the plans (journaling each
 * step started, with its Idempotency-Key, before the call and finished
 * after it), approve shows the plan a waiting case would run, and
 * `payguard plan` prints one.
 *
 * No runbook starts a new money movement: no payout, no refund. Those stay
 * recommendations for people.
 */
#ifndef PG_RUNBOOK_H
#define PG_RUNBOOK_H

#include "event_types.h"

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>

#define RB_MAX_STEPS 12
#define RB_NAME_MAX 40
#define RB_KEY_MAX 220

/* rb_step_t - one outbound call */
typedef struct {
    char name[RB_NAME_MAX];    /* hold_payout, hold_beneficiary, ledger_payout_reversal,
                                  ledger_refund_succeeded, ledger_refund_failed,
                                  ledger_refund_reversal, block_comms, open_ticket,
                                  ticket_comment, notify_teams, release_hold */
    char system[16];           /* payments | ledger | jira | servicenow | teams */
    char method[8];            /* "POST" */
    char path[300];            /* appended to outside/<system> (ids percent-encoded) */
    char *body;                /* the JSON body (owned) */
    char idem_key[RB_KEY_MAX]; /* "<case_id>:<name>": a pure function of (case, step) */
    bool customer_facing;      /* never runs after an earlier step failed */
} rb_step_t;

/* rb_plan_t - a runbook for one case */
typedef struct {
    char case_id[160];
    char runbook[48]; /* payout_exception | refund_post_succeeded | refund_post_failed |
                         refund_failed_after_success | ops_review_ticket | denied | none */
    rb_step_t steps[RB_MAX_STEPS];
    size_t n;
    char notes[RB_MAX_STEPS][160]; /* planned-but-skipped steps and why (e.g. "no payout_reversal:
                                      the ledger holds no payout_paid"); "" when none */
    size_t nnotes;
} rb_plan_t;

/* rb_opts_t - what the operator configured */
typedef struct {
    const char *ticket_system; /* "jira" or "servicenow" (whichever outside/ URL is set) */
    const char *jira_project;  /* execute/jira_project, e.g. "PAY" */
    const char *public_url;    /* approve/public_url, for links in tickets and cards */
} rb_opts_t;

/* runbook_plan - the runbook for a decided case. type is the decision event's
 * type ("approved" or "denied"); body its JSON body: approve's approval record
 * (case_id, kind, ref, amount, currency, tier, action, rule, decisions...,
 * "recommendation": the advice) with "facts": the triaged case (facts, the
 * state validate read: payout_state, payment_state, psp_state, ledger_state).
 *   approved + action payout_exception (CONTRACT.md §5.1): hold_payout;
 *     hold_beneficiary (payout_state.beneficiary_id); ledger_payout_reversal
 *     only if ledger_state holds a payout_paid and no payout_reversal (else a
 *     note); open_ticket (priority from the tier: 3 Highest, 2 High, 1 Medium;
 *     ServiceNow urgency 1/2/3); notify_teams (what was done + the AI's
 *     advisory next step).
 *   approved + refund_post_succeeded / refund_post_failed: the ledger entry
 *     (refund_succeeded / refund_failed for the refund's amount and currency,
 *     ref = refund id); notify_teams.
 *   approved + refund_failed_after_success (§5.2): block_comms for the ref;
 *     open_ticket (exception, High); ledger_refund_reversal (a human approved);
 *     notify_teams.
 *   approved + ops_review_ticket: open_ticket (ops review, Medium); notify_teams.
 *   denied (§5.1): no write except notify_teams (the denial) and, when the
 *     case already has a ticket (ticket_key in body), ticket_comment.
 *   action none: no steps.
 * Bodies follow CONTRACT.md §2 exactly; every step's idem_key is
 * "<case_id>:<step name>". Ticket steps (open_ticket, the failure plan's
 * failure_ticket, ticket_comment) carry what their lookup
 * (runbook_step_lookup, ticket.h) finds them by: Jira tickets the labels
 * payguard-<case id> and payguard-<step>, ServiceNow incidents
 * correlation_id <case id> and correlation_display payguard-<step>,
 * comments the marker [payguard:<case id>:ticket_comment]. 0, or -1 and err if the record lacks what a step
 * needs (e.g. no beneficiary id) — never a guess. */
int runbook_plan(event_type_t decision, const json_t *body, const rb_opts_t *opts, rb_plan_t *out, char *err,
                 size_t errlen);

/* runbook_failure_plan - after step failed_step failed for good (error: why):
 * open_ticket "<case>:failure_ticket" at Highest priority naming the step and
 * error, and notify_teams "<case>:failure_notice". Keys differ from the
 * normal steps'. */
int runbook_failure_plan(const rb_plan_t *plan, size_t failed_step, const char *error, const rb_opts_t *opts,
                         rb_plan_t *out, char *err, size_t errlen);

void runbook_plan_clear(rb_plan_t *plan);

#define RB_LOOKUP_MAX 300

/* runbook_step_lookup - the GET a ticket step makes before its POST
 * (ticket.h; Jira and ServiceNow ignore Idempotency-Key): for open_ticket
 * (the runbook's, or the failure plan's failure_ticket) the search listing
 * the case's tickets, for ticket_comment the ticket's newest comments; ""
 * for any other step. Computed, not stored: a plan costs no more for it.
 * 0, or -1 if a ticket step's lookup cannot be built (the planner refuses
 * such a case before any call) */
int runbook_step_lookup(const char *case_id, const rb_step_t *s, char out[RB_LOOKUP_MAX]);

#define RB_URL_MAX 512

/* runbook_case_url - {public_url}/case/{encoded case id}: the console's case
 * page, where tickets and Teams cards link; -1 and err if public_url is
 * unset, holds a character a URL cannot, or the result is too long */
int runbook_case_url(const rb_opts_t *o, const char *case_id, char url[RB_URL_MAX], char *err, size_t errlen);

/* runbook_plan_json - the plan as JSON {"case_id","runbook","steps":[{"name",
 * "system","method","path","idempotency_key","customer_facing","body":{...},
 * "lookup" (ticket steps only)}], "notes":[...]} (for the journal and
 * `payguard plan`) */
json_t *runbook_plan_json(const rb_plan_t *plan);

/* runbook_plan_from_json - the inverse (recovery after a crash); -1 if
 * malformed (a "lookup" other than runbook_step_lookup's included) */
int runbook_plan_from_json(const json_t *j, rb_plan_t *out);

#endif
