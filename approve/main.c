/*++
 * NAME
 *	approve - policy routing, people, segregation of duties
 * SYNOPSIS
 *	approve [-c CONFIG] [-i 0]	(started by `payguard up`; one instance)
 * DESCRIPTION
 *	For each triaged case, policy (approve/policy.c, CONTRACT.md §4) picks
 *	the route and records the rule that chose it:
 *	  no action     the systems already agree ("already_consistent");
 *	  auto          policy approves (refund corrections within the limits,
 *	                tickets) and the case goes to execute;
 *	  humans        the roles of the amount tier must each be covered by a
 *	                distinct person before execute may act.
 *	Policy reads recorded facts, the advice's closed-set labels and its
 *	confidence; nothing else the advice says.
 *
 *	People decide through the approvals API (CONTRACT.md §3.1), served here
 *	with libmicrohttpd, or `payguard approve`:
 *	  GET  /approvals?status=pending|approved|denied|expired|all
 *	  GET  /approvals/{case_id}
 *	  POST /approvals/{case_id}/decisions {"decision":"approve|deny","comment"}
 *	  POST /reviews/{case_id}/retry|close {"comment"}  (ops review, below)
 *	  GET  /metrics, GET /healthz (no token)
 *	Every request needs Authorization: Bearer <token> of a configured
 *	approver (approvers/<name>/token_sha256: the SHA-256 of the token, never
 *	the token; compared in constant time). 401 unknown token; 403 lacking a
 *	required role, deciding twice, or approving a case one raised; 409 not
 *	awaiting a decision (decided or expired); 404 unknown case. Every
 *	refusal is recorded in the audit trail (access_denied, decision_refused).
 *
 *	SEGREGATION OF DUTIES: a person counts once per case whatever roles they
 *	hold; each required role needs its own person; the person who raised the
 *	case (metadata.raised_by of the payout) cannot approve it; a deny from a
 *	person holding a required role denies the case.
 *
 *	A decision is journaled, and durable, before it is answered 200: a 200
 *	is never lost. The decision that settles a case is followed by its
 *	approved/denied event (what execute acts on) as a record of its own;
 *	until that record is journaled the outcome is pending, and each loop
 *	turn emits pending outcomes, so neither a full delivery window nor a
 *	crash between the two records strands a decided case (at start the
 *	journal shows which decisions lack their outcome). Pending approvals expire after approve/expiry_s and
 *	escalate to the next tier's roles (past tier 3 they stay expired, for
 *	ops review); expiry never approves. The state is rebuilt from this
 *	stage's journal at start, so pending approvals survive a restart.
 *
 *	OPS REVIEW: a person may close a case whose runbook failed (a "closed"
 *	event: execute stops listing it), or ask for a retry: that opens a new
 *	approval round for the case with the requester as its raiser, so the
 *	same roles, held by others, must approve before execute tries again.
 *
 *	Teams: when a case awaits people, and when it is decided, expires or
 *	escalates, an Adaptive Card notice goes to execute, which alone posts to
 *	outside/teams (least privilege: approve holds no credential of another
 *	system).
 * INPUT
 *	"triaged" events from triage (facts, state, advice).
 * OUTPUT
 *	"routed" (audit), "approved" and "denied" (execute and audit),
 *	"decision", "decision_refused", "access_denied", "escalated", "expired"
 *	(audit), "notice" (execute: a Teams card).
 * SECURITY
 *	Holds token hashes only. Case text is data: the API answers JSON.
 * CONFIGURATION
 *	approve/http_bind, http_port, public_url, expiry_s, confidence_min,
 *	tier{1,2,3}_roles, thresholds/<CUR>; approvers/<name>/{roles,token_sha256}.
 *--*/
#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <stdatomic.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "approve.h"
#include "policy.h"
#include "runbook.h"
#include "log.h"
#include "httpd.h"
#include "people.h"
#include "money.h"
#include "stage.h"
#include "utc.h"

#define APPROVE_MAX_CASES 100000
#define APPROVE_MAX_DECISIONS 16
#define APPROVE_MAX_BODY 8192

typedef struct {
    stage_t *st;
    struct MHD_Daemon *httpd;
    policy_t policy;
    people_t people;
    char public_url[256];
    char ticket_system[16]; /* for the planned runbook shown while a case waits */
    rb_opts_t rb_opts;
    long expiry_s;
    pthread_mutex_t mu; /* approvals: loop thread and HTTP threads */
    approval_t **cases;
    size_t ncases;
    _Atomic long waiting;
    size_t outcomes_pending; /* approvals with outcome_pending (under mu) */
    zhashx_t *index;         /* case_id -> approval_t * (borrowed from cases) */
    int64_t next_scan_ms;    /* expiry is looked for a few times a second, not every turn */
} approve_t;

/* request - one API request whose answer waits for the journal */
typedef struct {
    struct MHD_Connection *conn;
    char *body;
    size_t len;
    bool too_large;
    pthread_mutex_t mu;
    bool suspended, durable, answered;
    unsigned status;
    char case_id[160];
    char state[16];
} request_t;

/* ----------------------------------------------------------- state */

/* s_js - a string member or "" */
static const char *s_js(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* s_json_text - a JSON value as compact text (malloc'd), NULL for none */
static char *s_json_text(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* s_free_case - an approval and what it owns */
static void s_free_case(approval_t *c)
{
    free(c->advice);
    free(c->facts);
    free(c->decisions);
    free(c);
}

/* s_settle - a decided approval no longer needs the facts execute acts on
 * (they went out in its outcome; a retry round runs execute's own stored
 * plan): free them, the bulk of what a case holds */
static void s_settle(approval_t *c)
{
    if (c->state != APR_PENDING && !c->outcome_pending) {
        free(c->facts);
        c->facts = NULL;
    }
}

/* s_decision_add - room for one more decision (at most APPROVE_MAX_DECISIONS) */
static decided_t *s_decision_add(approval_t *c)
{
    assert(c->ndecisions < APPROVE_MAX_DECISIONS);
    decided_t *d = realloc(c->decisions, (c->ndecisions + 1) * sizeof *d);
    assert(d);
    c->decisions = d;
    memset(&d[c->ndecisions], 0, sizeof *d);
    return &d[c->ndecisions++];
}

/* s_find - the approval of a case (caller holds mu) */
static approval_t *s_find(approve_t *a, const char *case_id)
{
    return a->index ? zhashx_lookup(a->index, case_id) : NULL;
}

/* s_roles_json - a role list as a JSON array */
static json_t *s_roles_json(const route_t *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->nroles; i++)
        json_array_append_new(a, json_string(r->roles[i]));
    return a;
}

/* s_approval_json - an approval as the API shows it (caller holds mu) */
static json_t *s_approval_json(const approval_t *c)
{
    char exp[UTC_ISO_MAX];
    utc_iso(c->expires_ms, exp);
    json_t *ds = json_array();
    for (size_t i = 0; i < c->ndecisions; i++) {
        char at[UTC_ISO_MAX];
        utc_iso(c->decisions[i].at_ms, at);
        json_array_append_new(ds, json_pack("{s:s, s:s, s:s, s:s, s:s}", "approver", c->decisions[i].who, "decision",
                                            c->decisions[i].decision, "role", c->decisions[i].role, "comment",
                                            c->decisions[i].comment, "at", at));
    }
    json_t *missing = json_array();
    for (size_t r = 0; r < c->route.nroles; r++) {
        bool covered = false;
        for (size_t i = 0; i < c->ndecisions; i++)
            covered |= strcmp(c->decisions[i].role, c->route.roles[r]) == 0;
        if (!covered)
            json_array_append_new(missing, json_string(c->route.roles[r]));
    }
    json_t *rec = c->advice ? json_loads(c->advice, 0, NULL) : NULL;
    if (!json_is_object(rec)) {
        json_decref(rec);
        rec = json_object();
    }
    json_object_set_new(rec, "advisory", json_true());
    return json_pack("{s:s, s:s, s:s, s:I, s:s, s:i, s:o, s:o, s:o, s:s, s:s, s:s, s:s, s:s, s:o}", "case_id",
                     c->case_id, "kind", c->kind, "ref", c->ref, "amount", (json_int_t) c->amount, "currency",
                     c->currency, "tier", c->route.tier, "required_roles", s_roles_json(&c->route), "missing_roles",
                     missing, "decisions", ds, "expires_at", exp, "state", approval_state_name(c->state), "action",
                     c->route.action, "rule", c->route.rule, "raised_by", c->raised_by, "recommendation", rec);
}

static json_t *s_approval_record(const approval_t *c);

/* s_add_plan - the calls execute would make once a pending case is approved
 * (execute/runbook.c over the facts approve holds), as "planned_runbook";
 * a case the planner refuses gets "plan_error" instead (caller holds mu) */
static void s_add_plan(const approve_t *a, const approval_t *c, json_t *j)
{
    if (!c->facts)
        return;
    json_t *rec = s_approval_record(c);
    rb_plan_t plan;
    char err[256];
    if (runbook_plan(EV_APPROVED, rec, &a->rb_opts, &plan, err, sizeof err) == 0) {
        json_object_set_new(j, "planned_runbook", runbook_plan_json(&plan));
        runbook_plan_clear(&plan);
    } else {
        json_object_set_new(j, "plan_error", json_string(err));
    }
    json_decref(rec);
}

/* s_card - an Adaptive Card 1.4 about a case, as a "notice" body for execute */
static event_body_t *s_card(approve_t *a, const approval_t *c, const char *title)
{
    char amount[64], exp[32], tier[8];
    money_format(c->amount, c->currency, amount, sizeof amount);
    snprintf(tier, sizeof tier, "%d", c->route.tier);
    utc_iso(c->expires_ms, exp);
    char roles[256] = "";
    for (size_t i = 0; i < c->route.nroles; i++)
        snprintf(roles + strlen(roles), sizeof roles - strlen(roles), "%s%s", i ? ", " : "", c->route.roles[i]);
    json_t *rec = c->advice ? json_loads(c->advice, 0, NULL) : NULL;
    const char *advice = "";
    json_t *s = json_object_get(rec, "summary");
    if (json_is_string(s))
        advice = json_string_value(s);
    char url[RB_URL_MAX], err[256];
    if (runbook_case_url(&a->rb_opts, c->case_id, url, err, sizeof err) != 0) {
        log_warn("case %s: the card gets no link: %s", c->case_id, err);
        url[0] = '\0';
    }
    json_t *facts =
        json_pack("[{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s},{s:s,s:s}]", "title", "Case", "value",
                  c->case_id, "title", "Kind", "value", c->kind, "title", "Amount", "value", amount, "title", "Tier",
                  "value", tier, "title", "Required roles", "value", roles, "title", "State", "value",
                  approval_state_name(c->state), "title", "Expires", "value", exp);
    json_t *card = json_pack(
        "{s:s, s:s, s:s, s:[{s:s, s:s, s:s, s:b}, {s:s, s:o}, {s:s, s:s, s:b, s:s}, {s:s, s:s, s:b}], "
        "s:[{s:s, s:s, s:s}]}",
        "type", "AdaptiveCard", "version", "1.4", "$schema", "http://adaptivecards.io/schemas/adaptive-card.json",
        "body", "type", "TextBlock", "size", "Medium", "text", title, "wrap", 1, "type", "FactSet", "facts", facts,
        "type", "TextBlock", "text", "AI advice (advisory only; people and policy decide):", "wrap", 1, "weight",
        "Bolder", "type", "TextBlock", "text", advice, "wrap", 1, "actions", "type", "Action.OpenUrl", "title",
        "Open the case", "url", url);
    json_decref(rec); /* advice pointed into it; json_pack copied the text */
    event_body_t *b = event_body_new();
    event_body_str(b, "channel", "teams");
    event_body_str(b, "case_id", c->case_id);
    event_body_str(b, "title", title);
    event_body_json(b, "card", card);
    json_decref(card);
    return b;
}

/* s_approval_body - the whole approval as an event body: what a rebuild needs */
static event_body_t *s_approval_body(const approval_t *c)
{
    event_body_t *b = event_body_new();
    json_t *j = s_approval_record(c);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (event_body_json(b, k, v) != 0)
            event_body_str(b, k, "");
    }
    json_decref(j);
    return b;
}

/* s_approval_record - the approval with what a rebuild and execute need:
 * times, reason, the triaged event's id, the retry round and the facts */
static json_t *s_approval_record(const approval_t *c)
{
    json_t *j = s_approval_json(c);
    json_object_set_new(j, "created_ms", json_integer(c->created_ms));
    json_object_set_new(j, "expires_ms", json_integer(c->expires_ms));
    json_object_set_new(j, "reason", json_string(c->route.reason));
    json_object_set_new(j, "triaged_id", json_string(c->triaged_id));
    json_object_set_new(j, "retry", json_integer(c->retry));
    json_t *facts = c->facts ? json_loads(c->facts, 0, NULL) : NULL;
    if (facts)
        json_object_set_new(j, "facts", facts);
    return j;
}

/* ------------------------------------------------------------- routing */

/* s_store - add or replace a case's approval (caller holds mu) */
static void s_store(approve_t *a, approval_t *c)
{
    if (!a->index) { /* the replay hook stores before init runs */
        a->index = zhashx_new();
        assert(a->index);
    }
    approval_t *old = zhashx_lookup(a->index, c->case_id);
    for (size_t i = 0; old && i < a->ncases; i++)
        if (a->cases[i] == old) {
            a->outcomes_pending -= old->outcome_pending;
            s_free_case(old);
            a->cases[i] = c;
            zhashx_update(a->index, c->case_id, c);
            return;
        }
    if (a->ncases == APPROVE_MAX_CASES) {
        /* bounded: forget the oldest decided case (its record is in the journal and audit) */
        for (size_t i = 0; i < a->ncases; i++)
            if (a->cases[i]->state != APR_PENDING && !a->cases[i]->outcome_pending) {
                zhashx_delete(a->index, a->cases[i]->case_id);
                s_free_case(a->cases[i]);
                memmove(&a->cases[i], &a->cases[i + 1], (a->ncases - i - 1) * sizeof *a->cases);
                a->ncases--;
                break;
            }
    }
    assert(a->ncases < APPROVE_MAX_CASES);
    if (a->ncases % 1024 == 0) {
        a->cases = realloc(a->cases, (a->ncases + 1024) * sizeof *a->cases);
        assert(a->cases);
    }
    a->cases[a->ncases++] = c;
    zhashx_insert(a->index, c->case_id, c);
}

/* s_takes - the input approve routes: triaged cases (the switch names every
 * type, so a new one must be placed here) */
static bool s_takes(event_type_t type)
{
    switch (type) {
    case EV_TRIAGED:
        return true;
    case EV_RECEIPT:
    case EV_VALIDATED:
    case EV_REJECTED:
    case EV_DUPLICATE:
    case EV_IGNORED:
    case EV_OUT_OF_ORDER:
    case EV_SWEEP:
    case EV_ROUTED:
    case EV_DECISION:
    case EV_APPROVED:
    case EV_DENIED:
    case EV_EXPIRED:
    case EV_EXECUTED:
    case EV_RUNBOOK:
    case EV_STEP:
    case EV_REVIEW:
    case EV_NOTICE:
    case EV_ACCESS_DENIED:
    case EV_DECISION_REFUSED:
    case EV_ESCALATED:
    case EV_CLOSED:
    case EV_AUDIT_VERIFIED:
    case EV_NONE:
    case EV_NTYPES:
        return false;
    }
    return false;
}

/* s_handle - route a triaged case */
static int s_handle(stage_t *st, const event_t *in, void *arg)
{
    approve_t *a = arg;
    if (!s_takes(event_head(in)->kind)) {
        log_warn("ignoring a %s event: approve takes triaged cases", event_head(in)->type);
        return STAGE_DONE;
    }
    json_t *body = event_body_to_json(in);
    policy_input_t pin;
    policy_input_from_json(body, &pin);
    approval_t *c = calloc(1, sizeof *c);
    assert(c);
    snprintf(c->case_id, sizeof c->case_id, "%s", event_head(in)->case_key);
    snprintf(c->kind, sizeof c->kind, "%s", pin.kind);
    snprintf(c->ref, sizeof c->ref, "%s",
             json_is_string(json_object_get(body, "ref")) ? json_string_value(json_object_get(body, "ref")) : "");
    snprintf(c->raised_by, sizeof c->raised_by, "%s",
             json_is_string(json_object_get(body, "raised_by")) ? json_string_value(json_object_get(body, "raised_by"))
                                                                : "");
    c->amount = pin.amount;
    snprintf(c->currency, sizeof c->currency, "%s", pin.currency);
    snprintf(c->triaged_id, sizeof c->triaged_id, "%s", event_head(in)->id);
    /* times from validate's decision, not the clock: a replay of this stage
     * over the same input, from whichever triage worker, reaches the same record */
    json_t *vms = json_object_get(body, "validated_ms");
    c->created_ms = json_is_integer(vms) ? json_integer_value(vms) : event_head(in)->time_ms;
    c->expires_ms = c->created_ms + a->expiry_s * 1000;
    c->advice = s_json_text(json_object_get(body, "advice"));
    c->facts = json_dumps(body, JSON_COMPACT);
    policy_route(&a->policy, &pin, &c->route);
    c->state = c->route.kind == ROUTE_NO_ACTION ? APR_NO_ACTION
               : c->route.kind == ROUTE_AUTO    ? APR_AUTO_APPROVED
                                                : APR_PENDING;

    pthread_mutex_lock(&a->mu);
    approval_t *prior = s_find(a, c->case_id);
    bool busy = prior && prior->state == APR_PENDING;
    pthread_mutex_unlock(&a->mu);
    if (busy) {
        /* a newer fact about a case already awaiting people: on the
         * timeline; the pending decision stands (they see the case page) */
        event_body_t *b = event_body_new();
        event_body_str(b, "case_id", c->case_id);
        event_body_str(b, "note", "a new event for a case already awaiting a decision; the pending approval stands");
        stage_emit(st, EV_ROUTED, c->case_id, b, STAGE_TO_AUDIT);
        event_body_destroy(&b);
        s_free_case(c);
        json_decref(body);
        return STAGE_DONE;
    }
    /* the route, with the rule that chose it */
    event_body_t *b = s_approval_body(c); /* with the facts execute will act on */
    stage_emit(st, EV_ROUTED, c->case_id, b, STAGE_TO_AUDIT);
    event_body_destroy(&b);
    if (c->route.kind == ROUTE_AUTO) {
        b = s_approval_body(c);
        event_body_str(b, "decided_by", "policy");
        stage_emit(st, EV_APPROVED, c->case_id, b, STAGE_TO_BOTH);
        event_body_destroy(&b);
    } else if (c->route.kind == ROUTE_HUMANS) {
        b = s_card(a, c, "A payguard case awaits your decision");
        stage_emit(st, EV_NOTICE, c->case_id, b, STAGE_TO_BOTH);
        event_body_destroy(&b);
    }
    stage_count(st, "payguard_approve_routes_total", "rule", c->route.rule, 1);
    s_settle(c); /* auto-approved or nothing to do: decided already */
    pthread_mutex_lock(&a->mu);
    s_store(a, c);
    pthread_mutex_unlock(&a->mu);
    json_decref(body);
    return STAGE_DONE;
}

/* ---------------------------------------------------------- people */

/* s_audit_refusal - a refused request, on the trail (who, what, why) */
static void s_audit_refusal(approve_t *a, event_type_t type, const char *who, const char *case_id, unsigned status,
                            const char *why, const char *peer)
{
    event_body_t *b = event_body_new();
    event_body_str(b, "who", who ? who : "(unknown token)");
    event_body_str(b, "case_id", case_id ? case_id : "");
    event_body_int(b, "status", status);
    event_body_str(b, "reason", why);
    event_body_str(b, "client_ip", peer);
    char id[EVENT_ID_MAX + 1];
    stage_publish(a->st, "deny", type, case_id ? case_id : "", b, STAGE_TO_AUDIT, id, NULL, NULL);
    event_body_destroy(&b);
    stage_count(a->st, "payguard_approve_refusals_total", "reason", event_type_name(type), 1);
}

/* ------------------------------------------------------------- HTTP */

/* s_list - GET /approvals?status= */
static enum MHD_Result s_list(approve_t *a, struct MHD_Connection *conn)
{
    const char *status = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
    if (!status)
        status = "pending";
    approval_state_t want = APR_PENDING;
    bool all = strcmp(status, "all") == 0;
    if (!all && (!approval_state_of(status, &want) || want == APR_CLOSED))
        return httpd_error(conn, MHD_HTTP_BAD_REQUEST,
                           "status must be pending, approved, denied, expired, auto_approved, no_action or all");
    json_t *list = json_array();
    pthread_mutex_lock(&a->mu);
    for (size_t i = a->ncases; i-- > 0;) /* newest first */
        if (all || a->cases[i]->state == want)
            json_array_append_new(list, s_approval_json(a->cases[i]));
    pthread_mutex_unlock(&a->mu);
    return httpd_reply(conn, MHD_HTTP_OK, json_pack("{s:o}", "approvals", list));
}

/* s_on_durable - a decision is on disk: answer its request */
static void s_on_durable(void *arg, int status)
{
    (void) status;
    request_t *req = arg;
    pthread_mutex_lock(&req->mu);
    req->durable = true;
    bool resume = req->suspended;
    req->suspended = false;
    pthread_mutex_unlock(&req->mu);
    if (resume)
        MHD_resume_connection(req->conn);
}

static int s_emit_outcome(approve_t *a, approval_t *c);

/* s_answer_when_durable - 200 {case_id, state} once what the request
 * published is on disk: now if it already is, else suspend the request
 * until s_on_durable resumes it */
static enum MHD_Result s_answer_when_durable(approve_t *a, request_t *req)
{
    req->status = MHD_HTTP_OK;
    pthread_mutex_lock(&req->mu);
    bool durable = req->durable;
    if (!durable) {
        req->suspended = true;
        atomic_fetch_add(&a->waiting, 1);
        MHD_suspend_connection(req->conn);
    }
    pthread_mutex_unlock(&req->mu);
    if (durable) {
        req->answered = true;
        return httpd_reply(req->conn, MHD_HTTP_OK,
                           json_pack("{s:s, s:s}", "case_id", req->case_id, "state", req->state));
    }
    return MHD_YES;
}

/* s_record_decision - a decision that passed segregation of duties: on the
 * case, journaled (the request answered once durable), and the outcome it
 * settles, if any, emitted; 0, or -1 when it could not be journaled (the
 * caller undoes it; caller holds mu) */
static int s_record_decision(approve_t *a, approval_t *c, const person_t *who, const char *role, const char *decision,
                             const char *comment, const char *peer, request_t *req)
{
    /* record it: the decision, and the case's outcome if this settles it */
    decided_t *d = s_decision_add(c);
    snprintf(d->who, sizeof d->who, "%s", who->name);
    snprintf(d->role, sizeof d->role, "%s", role); /* "" for a deny */
    snprintf(d->decision, sizeof d->decision, "%s", decision);
    snprintf(d->comment, sizeof d->comment, "%s", comment);
    d->at_ms = stage_now_ms();
    approval_state_t outcome = sod_outcome(c, strcmp(decision, "deny") == 0);
    c->state = outcome;
    event_body_t *b = event_body_new();
    event_body_str(b, "case_id", c->case_id);
    event_body_str(b, "who", who->name);
    event_body_str(b, "role", d->role);
    event_body_str(b, "decision", decision);
    event_body_str(b, "comment", comment);
    event_body_str(b, "client_ip", peer);
    event_body_str(b, "state", approval_state_name(c->state));
    char id[EVENT_ID_MAX + 1];
    /* the answer waits for the decision itself: once it is on disk it is
     * recorded, and a deciding one is followed by its outcome (now, or by
     * s_tick if the window is full or we crash in between) */
    int rc = stage_publish(a->st, "dec", EV_DECISION, c->case_id, b, STAGE_TO_AUDIT, id, s_on_durable, req);
    event_body_destroy(&b);
    if (rc == 0 && outcome != APR_PENDING) {
        c->outcome_pending = true;
        a->outcomes_pending++;
        snprintf(c->outcome_by, sizeof c->outcome_by, "%s", who->name);
        s_emit_outcome(a, c);
    }
    return rc;
}

/* s_decide - POST /approvals/{case}/decisions: SoD, then journal, then 200 */
static enum MHD_Result s_decide(approve_t *a, request_t *req, const person_t *who, const char *case_id,
                                const char *peer)
{
    json_error_t je;
    json_t *body = json_loadb(req->body ? req->body : "", req->len, JSON_REJECT_DUPLICATES, &je);
    const char *decision = json_string_value(json_object_get(body, "decision"));
    json_t *comment_j = json_object_get(body, "comment");
    if (!json_is_object(body) || !decision || (strcmp(decision, "approve") && strcmp(decision, "deny")) ||
        (comment_j && !json_is_string(comment_j)) || (comment_j && json_string_length(comment_j) > 500)) {
        json_decref(body);
        return httpd_error(req->conn, MHD_HTTP_BAD_REQUEST,
                           "body must be {\"decision\":\"approve|deny\",\"comment\":\"...\" (at most 500 bytes)}");
    }
    const char *comment = comment_j ? json_string_value(comment_j) : "";
    /* the metric's label outlives body (freed before the reply): a literal */
    const char *decision_label = strcmp(decision, "approve") == 0 ? "approve" : "deny";
    char why[256] = "";
    char role[POLICY_ROLE_MAX] = "";
    pthread_mutex_lock(&a->mu);
    approval_t *c = s_find(a, case_id);
    bool approve = strcmp(decision, "approve") == 0;
    unsigned status = sod_judge(c, who, approve, stage_now_ms(), role, why, sizeof why);
    if (status) {
        pthread_mutex_unlock(&a->mu);
        json_decref(body);
        s_audit_refusal(a, EV_DECISION_REFUSED, who->name, case_id, status, why, peer);
        return httpd_error(req->conn, status, why);
    }
    int rc = s_record_decision(a, c, who, role, decision, comment, peer, req);
    snprintf(req->state, sizeof req->state, "%s", approval_state_name(c->state));
    snprintf(req->case_id, sizeof req->case_id, "%s", c->case_id);
    if (rc != 0) { /* could not journal: undo, and say so */
        c->ndecisions--;
        c->state = APR_PENDING;
    }
    pthread_mutex_unlock(&a->mu);
    json_decref(body);
    if (rc != 0)
        return httpd_reply(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE,
                           json_pack("{s:s}", "error", "cannot record the decision right now"));
    stage_count(a->st, "payguard_approve_decisions_total", "decision", decision_label, 1);
    return s_answer_when_durable(a, req);
}

/* s_emit_outcome - the approved/denied event of a decided approval, and
 * its Teams card; 0, or -1 and it stays pending for s_tick (caller holds mu) */
static int s_emit_outcome(approve_t *a, approval_t *c)
{
    assert(c->outcome_pending);
    char id[EVENT_ID_MAX + 1];
    event_body_t *b = s_approval_body(c);
    event_body_str(b, "decided_by", c->outcome_by);
    int rc = stage_publish(a->st, "dec", c->state == APR_APPROVED ? EV_APPROVED : EV_DENIED, c->case_id, b,
                           STAGE_TO_BOTH, id, NULL, NULL);
    event_body_destroy(&b);
    if (rc != 0)
        return -1;
    c->outcome_pending = false;
    a->outcomes_pending--;
    s_settle(c);
    event_body_t *card = s_card(a, c, c->state == APR_APPROVED ? "Case approved" : "Case denied");
    stage_publish(a->st, "dec", EV_NOTICE, c->case_id, card, STAGE_TO_BOTH, id, NULL, NULL);
    event_body_destroy(&card);
    return 0;
}

/* s_review - POST /reviews/{case}/retry|close: a person acts on a case in
 * ops review. close ends it (audited); retry opens a new approval round for
 * the failed runbook, with the requester as its raiser, so the same
 * approvals, by others, are needed before execute tries again. */
static enum MHD_Result s_review(approve_t *a, request_t *req, const person_t *who, const char *case_id,
                                const char *what, const char *peer)
{
    json_t *body = req->len ? json_loadb(req->body, req->len, JSON_REJECT_DUPLICATES, NULL) : json_object();
    json_t *cj = json_object_get(body, "comment");
    if (!json_is_object(body) || (cj && (!json_is_string(cj) || json_string_length(cj) > 500))) {
        json_decref(body);
        return httpd_error(req->conn, MHD_HTTP_BAD_REQUEST, "body must be {\"comment\":\"...\"} (at most 500 bytes)");
    }
    const char *comment = cj ? json_string_value(cj) : "";
    unsigned status = 0;
    char why[256] = "";
    pthread_mutex_lock(&a->mu);
    approval_t *c = s_find(a, case_id);
    if (!c) {
        status = MHD_HTTP_NOT_FOUND;
        snprintf(why, sizeof why, "no such case");
    } else if (c->state == APR_PENDING || c->state == APR_NO_ACTION || c->state == APR_CLOSED ||
               (strcmp(what, "retry") == 0 && c->state == APR_DENIED)) {
        status = MHD_HTTP_CONFLICT;
        snprintf(why, sizeof why, "case is %s: nothing to %s", approval_state_name(c->state), what);
    }
    if (status) {
        pthread_mutex_unlock(&a->mu);
        json_decref(body);
        s_audit_refusal(a, EV_DECISION_REFUSED, who->name, case_id, status, why, peer);
        return httpd_error(req->conn, status, why);
    }
    char id[EVENT_ID_MAX + 1];
    int rc;
    if (strcmp(what, "close") == 0) {
        c->state = APR_CLOSED;
        event_body_t *b = event_body_new();
        event_body_str(b, "case_id", c->case_id);
        event_body_str(b, "who", who->name);
        event_body_str(b, "comment", comment);
        event_body_str(b, "client_ip", peer);
        rc = stage_publish(a->st, "rev", EV_CLOSED, c->case_id, b, STAGE_TO_BOTH, id, s_on_durable, req);
        event_body_destroy(&b);
    } else {
        c->retry++;
        c->ndecisions = 0;
        c->state = APR_PENDING;
        snprintf(c->raised_by, sizeof c->raised_by, "%s", who->name);
        if (c->route.nroles == 0) /* policy had approved it: people decide a retry */
            policy_tier(&a->policy, policy_amount_tier(&a->policy, c->amount, c->currency), &c->route);
        c->route.kind = ROUTE_HUMANS;
        snprintf(c->route.rule, sizeof c->route.rule, "ops_review_retry");
        snprintf(c->route.reason, sizeof c->route.reason, "%s asked to retry the failed runbook: %s", who->name,
                 *comment ? comment : "(no comment)");
        c->expires_ms = stage_now_ms() + a->expiry_s * 1000;
        event_body_t *b = s_approval_body(c);
        rc = stage_publish(a->st, "rev", EV_ROUTED, c->case_id, b, STAGE_TO_AUDIT, id, s_on_durable, req);
        event_body_destroy(&b);
        b = s_card(a, c, "A retry of a failed payguard runbook awaits your decision");
        stage_publish(a->st, "rev", EV_NOTICE, c->case_id, b, STAGE_TO_BOTH, id, NULL, NULL);
        event_body_destroy(&b);
    }
    snprintf(req->state, sizeof req->state, "%s", approval_state_name(c->state));
    snprintf(req->case_id, sizeof req->case_id, "%s", c->case_id);
    pthread_mutex_unlock(&a->mu);
    json_decref(body);
    if (rc != 0)
        return httpd_error(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot record it right now");
    stage_count(a->st, "payguard_approve_reviews_total", "action", what, 1);
    return s_answer_when_durable(a, req);
}

/* s_answer - the approvals API */
static enum MHD_Result s_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) version;
    approve_t *a = cls;
    request_t *req = *con_cls;
    if (!req) {
        if (strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0)
            return httpd_reply(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
        if (strcmp(method, "GET") == 0 && strcmp(url, "/metrics") == 0)
            return httpd_metrics(conn, config_run_dir(stage_config(a->st)));
        req = calloc(1, sizeof *req);
        assert(req);
        req->conn = conn;
        pthread_mutex_init(&req->mu, NULL);
        *con_cls = req;
        return MHD_YES;
    }
    if (*upload_size) {
        if (req->len + *upload_size <= APPROVE_MAX_BODY) {
            req->body = realloc(req->body, req->len + *upload_size + 1);
            memcpy(req->body + req->len, upload, *upload_size);
            req->len += *upload_size;
        } else {
            req->too_large = true;
        }
        *upload_size = 0;
        return MHD_YES;
    }
    if (req->answered)
        return MHD_NO;
    if (req->status) { /* resumed: the decision is durable */
        req->answered = true;
        atomic_fetch_sub(&a->waiting, 1);
        return httpd_reply(conn, req->status, json_pack("{s:s, s:s}", "case_id", req->case_id, "state", req->state));
    }
    req->answered = true;
    char peer[64];
    httpd_peer(conn, peer, sizeof peer);
    const person_t *who =
        people_by_auth(&a->people, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"));
    if (!who) {
        s_audit_refusal(a, EV_ACCESS_DENIED, NULL, "", MHD_HTTP_UNAUTHORIZED, "unknown or missing token", peer);
        return httpd_unauthorized(conn);
    }
    if (req->too_large)
        return httpd_error(conn, MHD_HTTP_CONTENT_TOO_LARGE, "body over 8 KiB");
    if (strcmp(url, "/whoami") == 0 && strcmp(method, "GET") == 0) {
        json_t *roles = json_array();
        for (size_t i = 0; i < who->nroles; i++)
            json_array_append_new(roles, json_string(who->roles[i]));
        return httpd_reply(conn, MHD_HTTP_OK, json_pack("{s:s, s:o}", "name", who->name, "roles", roles));
    }
    if (strcmp(url, "/approvals") == 0) {
        if (strcmp(method, "GET") != 0)
            return httpd_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "GET /approvals");
        return s_list(a, conn);
    }
    if (strncmp(url, "/approvals/", 11) == 0) {
        char case_id[160];
        const char *rest = url + 11;
        const char *slash = strchr(rest, '/');
        size_t n = slash ? (size_t) (slash - rest) : strlen(rest);
        if (n == 0 || n >= sizeof case_id)
            return httpd_error(conn, MHD_HTTP_NOT_FOUND, "no such case");
        memcpy(case_id, rest, n);
        case_id[n] = '\0';
        if (slash && strcmp(slash, "/decisions") == 0) {
            if (strcmp(method, "POST") != 0)
                return httpd_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST a decision");
            req->answered = false; /* answered once durable */
            return s_decide(a, req, who, case_id, peer);
        }
        if (!slash && strcmp(method, "GET") == 0) {
            pthread_mutex_lock(&a->mu);
            approval_t *c = s_find(a, case_id);
            json_t *j = c ? s_approval_json(c) : NULL;
            if (c && c->state == APR_PENDING)
                s_add_plan(a, c, j);
            pthread_mutex_unlock(&a->mu);
            return j ? httpd_reply(conn, MHD_HTTP_OK, j) : httpd_error(conn, MHD_HTTP_NOT_FOUND, "no such case");
        }
    }
    if (strncmp(url, "/reviews/", 9) == 0 && strcmp(method, "POST") == 0) {
        char case_id[160], what[16];
        const char *rest = url + 9, *slash = strchr(rest, '/');
        if (slash && (size_t) (slash - rest) < sizeof case_id &&
            (strcmp(slash, "/retry") == 0 || strcmp(slash, "/close") == 0)) {
            memcpy(case_id, rest, (size_t) (slash - rest));
            case_id[slash - rest] = '\0';
            snprintf(what, sizeof what, "%s", slash + 1);
            req->answered = false; /* answered once durable */
            return s_review(a, req, who, case_id, what, peer);
        }
    }
    return httpd_error(conn, MHD_HTTP_NOT_FOUND, "unknown path");
}

/* s_completed - free a request */
static void s_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
{
    (void) cls, (void) conn, (void) toe;
    request_t *req = *con_cls;
    if (!req)
        return;
    pthread_mutex_destroy(&req->mu);
    free(req->body);
    free(req);
    *con_cls = NULL;
}

/* ----------------------------------------------------------- time */

/* s_tick - expiry and escalation: expiry never approves */
static void s_tick(stage_t *st, void *arg)
{
    approve_t *a = arg;
    int64_t now = stage_now_ms();
    char id[EVENT_ID_MAX + 1];
    pthread_mutex_lock(&a->mu);
    for (size_t i = 0; a->outcomes_pending && i < a->ncases; i++)
        if (a->cases[i]->outcome_pending && s_emit_outcome(a, a->cases[i]) != 0)
            break; /* the window is still full: next turn */
    if (now < a->next_scan_ms) {
        pthread_mutex_unlock(&a->mu);
        return;
    }
    a->next_scan_ms = now + 200;
    for (size_t i = 0; i < a->ncases; i++) {
        approval_t *c = a->cases[i];
        if (c->state != APR_PENDING || now < c->expires_ms)
            continue;
        int next = c->route.tier + 1;
        route_t r = c->route;
        if (next <= POLICY_TIERS && policy_tier(&a->policy, next, &r) == 0) {
            snprintf(r.rule, sizeof r.rule, "escalated_to_tier_%d", next);
            snprintf(r.reason, sizeof r.reason, "no decision within %ld s at tier %d: escalated to tier %d",
                     a->expiry_s, c->route.tier, next);
            snprintf(r.action, sizeof r.action, "%s", c->route.action);
            c->route = r;
            c->expires_ms = now + a->expiry_s * 1000;
            event_body_t *b = s_approval_body(c);
            stage_publish(st, "esc", EV_ESCALATED, c->case_id, b, STAGE_TO_AUDIT, id, NULL, NULL);
            event_body_destroy(&b);
            b = s_card(a, c, "A payguard case was escalated to you");
            stage_publish(st, "esc", EV_NOTICE, c->case_id, b, STAGE_TO_BOTH, id, NULL, NULL);
            event_body_destroy(&b);
        } else {
            c->state = APR_EXPIRED;
            event_body_t *b = s_approval_body(c);
            stage_publish(st, "esc", EV_EXPIRED, c->case_id, b, STAGE_TO_AUDIT, id, NULL, NULL);
            s_settle(c);
            event_body_destroy(&b);
            b = s_card(a, c, "A payguard case expired without a decision: ops review");
            stage_publish(st, "esc", EV_NOTICE, c->case_id, b, STAGE_TO_BOTH, id, NULL, NULL);
            event_body_destroy(&b);
        }
        stage_count(st, "payguard_approve_expiries_total", NULL, NULL, 1);
    }
    size_t pending = 0;
    for (size_t i = 0; i < a->ncases; i++)
        pending += a->cases[i]->state == APR_PENDING;
    pthread_mutex_unlock(&a->mu);
    stage_gauge(st, "payguard_approvals_pending", (int64_t) pending);
}

/* ------------------------------------------------------------ start */

/* s_from_record - an approval as a routed/escalated/decided event body states it */
static void s_apply_record(approve_t *a, event_type_t type, json_t *b, const char *case_id)
{
    approval_t *c = s_find(a, case_id);
    if (type == EV_ROUTED && json_is_string(json_object_get(b, "state"))) {
        c = calloc(1, sizeof *c);
        snprintf(c->case_id, sizeof c->case_id, "%s", case_id);
        s_store(a, c);
    }
    if (!c)
        return;
    if (type == EV_CLOSED) {
        c->state = APR_CLOSED;
        return;
    }
    if (type == EV_ROUTED && json_integer_value(json_object_get(b, "retry")) > 0)
        c->ndecisions = 0; /* a retry round starts without decisions */
    if (type == EV_DECISION) {
        if (c->ndecisions < APPROVE_MAX_DECISIONS) {
            decided_t *d = s_decision_add(c);
            snprintf(d->who, sizeof d->who, "%s", s_js(b, "who"));
            snprintf(d->role, sizeof d->role, "%s", s_js(b, "role"));
            snprintf(d->decision, sizeof d->decision, "%s", s_js(b, "decision"));
            snprintf(d->comment, sizeof d->comment, "%s", s_js(b, "comment"));
        }
        approval_state_of(s_js(b, "state"), &c->state); /* absent: as it was */
        if ((c->state == APR_APPROVED || c->state == APR_DENIED) && !c->outcome_pending) {
            c->outcome_pending = true; /* until its outcome event shows it was emitted */
            a->outcomes_pending++;
            snprintf(c->outcome_by, sizeof c->outcome_by, "%s", s_js(b, "who"));
        }
        return;
    }
    if ((type == EV_APPROVED || type == EV_DENIED) && c->outcome_pending) {
        c->outcome_pending = false;
        a->outcomes_pending--;
    }
    /* routed, escalated, expired, approved, denied carry the whole approval */
#define STR(dst, key) snprintf(dst, sizeof dst, "%s", s_js(b, key))
    STR(c->kind, "kind");
    STR(c->ref, "ref");
    STR(c->currency, "currency");
    approval_state_of(s_js(b, "state"), &c->state);
    STR(c->raised_by, "raised_by");
    STR(c->triaged_id, "triaged_id");
    STR(c->route.action, "action");
    STR(c->route.rule, "rule");
    STR(c->route.reason, "reason");
#undef STR
    c->amount = json_integer_value(json_object_get(b, "amount"));
    c->retry = (int) json_integer_value(json_object_get(b, "retry"));
    c->route.tier = (int) json_integer_value(json_object_get(b, "tier"));
    c->created_ms = json_integer_value(json_object_get(b, "created_ms"));
    c->expires_ms = json_integer_value(json_object_get(b, "expires_ms"));
    c->route.kind = c->state == APR_NO_ACTION       ? ROUTE_NO_ACTION
                    : c->state == APR_AUTO_APPROVED ? ROUTE_AUTO
                                                    : ROUTE_HUMANS;
    c->route.nroles = 0;
    size_t i;
    json_t *r;
    json_array_foreach(json_object_get(b, "required_roles"), i, r) if (c->route.nroles < POLICY_MAX_ROLES) snprintf(
        c->route.roles[c->route.nroles++], POLICY_ROLE_MAX, "%s", json_is_string(r) ? json_string_value(r) : "");
    json_t *rec = json_object_get(b, "recommendation");
    if (rec) {
        free(c->advice);
        c->advice = s_json_text(rec);
    }
    json_t *facts = json_object_get(b, "facts");
    if (facts) {
        free(c->facts);
        c->facts = json_dumps(facts, JSON_COMPACT);
    }
}

/* s_replay - pending approvals survive a restart: each of our journaled
 * events, as the skeleton's recovery reads it, rebuilds the state */
static void s_replay(stage_t *st, const event_t *ev, void *arg)
{
    (void) st;
    approve_t *a = arg;
    event_type_t type = event_head(ev)->kind;
    switch (type) {
    case EV_ROUTED:
    case EV_DECISION:
    case EV_APPROVED:
    case EV_DENIED:
    case EV_ESCALATED:
    case EV_EXPIRED:
    case EV_CLOSED:
        break; /* what approve's state is made of */
    case EV_RECEIPT:
    case EV_VALIDATED:
    case EV_REJECTED:
    case EV_DUPLICATE:
    case EV_IGNORED:
    case EV_OUT_OF_ORDER:
    case EV_SWEEP:
    case EV_TRIAGED:
    case EV_EXECUTED:
    case EV_RUNBOOK:
    case EV_STEP:
    case EV_REVIEW:
    case EV_NOTICE:
    case EV_ACCESS_DENIED:
    case EV_DECISION_REFUSED:
    case EV_AUDIT_VERIFIED:
    case EV_NONE:
    case EV_NTYPES:
        return; /* cards, refusals: nothing to rebuild */
    }
    json_t *b = event_body_to_json(ev);
    s_apply_record(a, type, b, event_head(ev)->case_key);
    json_decref(b);
}

/* s_init - policy, people, state, the API */
static int s_init(stage_t *st, void *arg)
{
    approve_t *a = arg;
    a->st = st;
    pthread_mutex_init(&a->mu, NULL);
    const config_t *c = stage_config(st);
    char err[512];
    long port;
    if (policy_load(c, &a->policy, err, sizeof err) != 0 ||
        config_int(c, "approve/http_port", 1, 65535, &port, err, sizeof err) ||
        config_int(c, "approve/expiry_s", 1, 30L * 86400, &a->expiry_s, err, sizeof err)) {
        log_error("%s", err);
        return -1;
    }
    snprintf(a->public_url, sizeof a->public_url, "%s", config_get(c, "approve/public_url"));
    const char *sn = config_get(c, "outside/servicenow");
    snprintf(a->ticket_system, sizeof a->ticket_system, "%s", sn && *sn ? "servicenow" : "jira");
    a->rb_opts = (rb_opts_t){.ticket_system = a->ticket_system,
                             .jira_project = config_get(c, "execute/jira_project"),
                             .public_url = a->public_url};
    if (people_load(c, &a->people, err, sizeof err) != 0) {
        log_error("%s", err);
        return -1;
    }
    if (a->people.demo)
        log_warn("using the embedded DEMO approvers (tokens in config/sandbox/): list your own under approvers");
    for (size_t i = 0; i < a->ncases; i++) /* rebuilt from the journal: decided ones keep no facts */
        s_settle(a->cases[i]);
    log_info("%zu approvers configured", a->people.n);
    size_t pending = 0;
    for (size_t i = 0; i < a->ncases; i++)
        pending += a->cases[i]->state == APR_PENDING;
    log_info("approvals rebuilt from the journal: %zu cases, %zu pending", a->ncases, pending);
    struct sockaddr_in sin = {.sin_family = AF_INET, .sin_port = htons((uint16_t) port)};
    if (inet_pton(AF_INET, config_get(c, "approve/http_bind"), &sin.sin_addr) != 1) {
        log_error("config: approve/http_bind must be an IPv4 address");
        return -1;
    }
    a->httpd = MHD_start_daemon(
        MHD_USE_INTERNAL_POLLING_THREAD | MHD_USE_EPOLL | MHD_ALLOW_SUSPEND_RESUME | MHD_USE_ITC, (uint16_t) port, NULL,
        NULL, s_answer, a, MHD_OPTION_SOCK_ADDR, (struct sockaddr *) &sin, MHD_OPTION_THREAD_POOL_SIZE, 2u,
        MHD_OPTION_CONNECTION_TIMEOUT, 30u, MHD_OPTION_CONNECTION_LIMIT, 256u, MHD_OPTION_NOTIFY_COMPLETED, s_completed,
        a, MHD_OPTION_END);
    if (!a->httpd) {
        log_error("cannot serve the approvals API on port %ld: %s", port, strerror(errno));
        return -1;
    }
    log_info("approvals API on http://%s:%ld", config_get(c, "approve/http_bind"), port);
    return 0;
}

/* s_drain - stop taking requests */
static void s_drain(stage_t *st, void *arg)
{
    (void) st;
    approve_t *a = arg;
    if (a->httpd)
        MHD_quiesce_daemon(a->httpd);
}

/* s_busy - decisions still waiting for the journal */
static bool s_busy(stage_t *st, void *arg)
{
    (void) st;
    return atomic_load(&((approve_t *) arg)->waiting) > 0;
}

/* s_fini - stop the API, free the state */
static void s_fini(stage_t *st, void *arg)
{
    (void) st;
    approve_t *a = arg;
    if (a->httpd)
        MHD_stop_daemon(a->httpd);
    zhashx_destroy(&a->index);
    for (size_t i = 0; i < a->ncases; i++)
        s_free_case(a->cases[i]);
    free(a->cases);
}

int main(int argc, char **argv)
{
    static approve_t a;
    static const stage_def_t def = {.name = "approve",
                                    .replay = s_replay,
                                    .init = s_init,
                                    .handle = s_handle,
                                    .tick = s_tick,
                                    .drain = s_drain,
                                    .busy = s_busy,
                                    .fini = s_fini,
                                    .arg = &a};
    return stage_main(argc, argv, &def);
}
