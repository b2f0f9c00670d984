/* api - the approvals API on approve's port: list, decide, review, whoami;
 * answers wait for the journal (see approve.h) */
#include <arpa/inet.h>
#include <assert.h>
#include <czmq.h>
#include <errno.h>
#include <jansson.h>
#include <microhttpd.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "approve.h"
#include "casedb.h"
#include "httpd.h"
#include "log.h"
#include "money.h"
#include "runbook.h"
#include "stage.h"
#include "utc.h"
#include "utf8.h"

/* api_audit_refusal - a refused request, on the trail (who, what, why).
 * Only a case approve holds is the record's case key: an id from the
 * request that names no case is kept as data ("requested_case", escaped),
 * so an unverified id never becomes a case in the index, the console or
 * the metrics. An unknown token's repeats from one source are one summary
 * a window (refusals.h, s_tick); a record the window cannot take now goes
 * into that summary too */
void api_audit_refusal(approve_t *a, event_type_t type, const char *who, const char *case_id, bool known,
                       unsigned status, const char *why, const char *peer)
{
    assert(a && why && peer);
    if (!case_id)
        case_id = "";
    assert(!known || case_id[0]);
    stage_count(a->st, "payguard_approve_refusals_total", "reason", event_type_name(type), 1);
    unsigned flags = (status == MHD_HTTP_UNAUTHORIZED || status == MHD_HTTP_FORBIDDEN ? REFUSALS_FAILURE : 0) |
                     (who ? 0 : REFUSALS_AGGREGATE);
    refusals_verdict_t v = refusals_note(a->refusals, peer, flags);
    if (!v.record)
        return; /* a repeat: counted in the source's summary */
    event_body_t *b = refusals_body(&v, who, known ? NULL : case_id, status, why, peer);
    if (known)
        event_body_str(b, EK_CASE_ID, case_id);
    char id[EVENT_ID_MAX + 1];
    if (stage_publish(a->st, "deny", type, known ? case_id : "", b, STAGE_TO_AUDIT, id, NULL, NULL) != 0)
        refusals_missed(a->refusals, peer);
    event_body_destroy(&b);
}

/* s_url_case - the case id a path names (/approvals/{id}..., /reviews/{id}/...), "" if none */
static void s_url_case(const char *url, char *out, size_t outlen)
{
    const char *rest = strncmp(url, "/approvals/", 11) == 0 ? url + 11
                       : strncmp(url, "/reviews/", 9) == 0  ? url + 9
                                                            : "";
    snprintf(out, outlen, "%.*s", (int) strcspn(rest, "/"), rest);
}

/* s_add_plan - the calls execute would make once a pending case is approved
 * (common/runbook.c over the facts approve holds), as "planned_runbook";
 * a case the planner refuses gets "plan_error" instead (caller holds mu) */
static void s_add_plan(const approve_t *a, const approval_t *c, json_t *j)
{
    if (!c->facts)
        return;
    json_t *rec = cases_record(c);
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

/* list_t - a list being made: cases on disk join those in memory */
typedef struct {
    approve_t *a;
    json_t *list;
    size_t limit;
} list_t;

/* s_list_row - one case from disk, unless memory holds it (and listed it) */
static void s_list_row(const char *row, void *arg)
{
    list_t *l = arg;
    approval_t *c = json_array_size(l->list) < l->limit ? cases_from_row(row) : NULL;
    if (c && (!l->a->index || !zhashx_lookup(l->a->index, c->case_id)))
        json_array_append_new(l->list, cases_json(c));
    if (c)
        cases_free(c);
}

/* s_list - GET /approvals?status=: every instance's (peers.c) unless a peer asks */
static enum MHD_Result s_list(approve_t *a, struct MHD_Connection *conn, bool via_peer, const char *client)
{
    const char *status = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "status");
    if (!status)
        status = "pending";
    approval_state_t want = APR_PENDING;
    bool all = strcmp(status, "all") == 0;
    if (!all && (!approval_state_of(status, &want) || want == APR_CLOSED))
        return httpd_error(conn, MHD_HTTP_BAD_REQUEST,
                           "status must be pending, approved, denied, expired, auto_approved, no_action or all");
    const char *lim = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "limit");
    char *end = NULL;
    long limit = lim ? strtol(lim, &end, 10) : CASEDB_LIST_MAX;
    if (lim && (*end || limit < 1 || limit > CASEDB_LIST_MAX))
        return httpd_error(conn, MHD_HTTP_BAD_REQUEST, "limit must be 1..1000");
    json_t *list = json_array();
    list_t l = {a, list, (size_t) limit};
    pthread_mutex_lock(&a->mu);
    for (size_t i = a->ncases; i-- > 0 && json_array_size(list) < l.limit;) /* in flight, newest first */
        if (all || a->cases[i]->state == want)
            json_array_append_new(list, cases_json(a->cases[i]));
    if (want != APR_PENDING || all) /* the rest are on disk, newest first (pending ones never leave memory) */
        casedb_each(a->db, all ? NULL : approval_state_name(want), l.limit, s_list_row, &l);
    pthread_mutex_unlock(&a->mu);
    char err[256];
    if (!via_peer && a->peer_httpd && peers_list(a, conn, status, client, &list, err, sizeof err) != 0) {
        json_decref(list);
        return httpd_error(conn, MHD_HTTP_BAD_GATEWAY, err);
    }
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

/* s_decision_span - a person's decision is a span of the case's trace, a
 * child of approve's (from when it was recorded to now): its record b
 * carries it, and the collector gets it */
static void s_decision_span(approve_t *a, const approval_t *c, const decided_t *d, event_body_t *b)
{
    trace_t parent, span;
    if (!c->trace[0] || trace_parse(c->trace, strlen(c->trace), &parent) != 0)
        return;
    trace_child(&parent, &span);
    char tp[TRACE_HEADER_LEN + 1];
    trace_format(&span, tp);
    event_body_str(b, TRACE_KEY, tp);
    char name[OTLP_NAME_MAX + 1];
    snprintf(name, sizeof name, "approve decision %s by %.24s", d->decision, d->who);
    stage_span(a->st, name, OTLP_SERVER, &span, &parent, d->at_ms, false, c->case_id, NULL);
}

/* s_record_decision - a decision that passed segregation of duties: on the
 * case, journaled (the request answered once durable), and the outcome it
 * settles, if any, emitted; 0, or -1 when it could not be journaled (the
 * caller undoes it; caller holds mu) */
static int s_record_decision(approve_t *a, approval_t *c, const person_t *who, const char *role, const char *decision,
                             const char *comment, const char *peer, request_t *req)
{
    /* record it: the decision, and the case's outcome if this settles it */
    decided_t *d = cases_decision_add(c);
    snprintf(d->who, sizeof d->who, "%s", who->name);
    snprintf(d->role, sizeof d->role, "%s", role); /* "" for a deny */
    snprintf(d->decision, sizeof d->decision, "%s", decision);
    snprintf(d->comment, sizeof d->comment, "%s", comment);
    d->at_ms = stage_now_ms();
    approval_state_t outcome = sod_outcome(c, strcmp(decision, "deny") == 0);
    c->state = outcome;
    event_body_t *b = event_body_new();
    event_body_str(b, EK_CASE_ID, c->case_id);
    event_body_str(b, EK_WHO, who->name);
    event_body_str(b, EK_ROLE, d->role);
    event_body_str(b, EK_DECISION, decision);
    event_body_str(b, EK_COMMENT, comment);
    event_body_str(b, "client_ip", peer);
    if (req->via[0]) /* the console it came through */
        event_body_str(b, "via", req->via);
    event_body_str(b, EK_STATE, approval_state_name(c->state));
    s_decision_span(a, c, d, b);
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
        api_emit_outcome(a, c);
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
    approval_t *c = cases_find(a, case_id);
    bool approve = strcmp(decision, "approve") == 0;
    unsigned status = sod_judge(c, who, approve, stage_now_ms(), role, why, sizeof why);
    if (status) {
        bool known = c != NULL;
        pthread_mutex_unlock(&a->mu);
        json_decref(body);
        api_audit_refusal(a, EV_DECISION_REFUSED, who->name, case_id, known, status, why, peer);
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

/* api_emit_outcome - the approved/denied event of a decided approval, and
 * its Teams card; 0, or -1 and it stays pending for s_tick (caller holds mu) */
int api_emit_outcome(approve_t *a, approval_t *c)
{
    assert(c->outcome_pending);
    char id[EVENT_ID_MAX + 1];
    event_body_t *b = cases_body(c);
    event_body_str(b, "decided_by", c->outcome_by);
    int rc = stage_publish(a->st, "dec", c->state == APR_APPROVED ? EV_APPROVED : EV_DENIED, c->case_id, b,
                           STAGE_TO_BOTH, id, NULL, NULL);
    event_body_destroy(&b);
    if (rc != 0)
        return -1;
    c->outcome_pending = false;
    c->dirty = true;
    a->outcomes_pending--;
    cases_settle(c);
    event_body_t *card = cards_card(a, c, c->state == APR_APPROVED ? "Case approved" : "Case denied");
    stage_publish(a->st, "dec", EV_NOTICE, c->case_id, card, STAGE_TO_BOTH, id, NULL, NULL);
    event_body_destroy(&card);
    return 0;
}

/* s_review_refuse - 0 if who may retry or close c now (under mu); else the
 * status and why. *ask_audit: c was approved, so only audit can say whether
 * its runbook failed into ops review or ran (review.c). */
static unsigned s_review_refuse(approve_t *a, const approval_t *c, const person_t *who, const char *what,
                                bool *ask_audit, char *why, size_t whylen)
{
    *ask_audit = false;
    if (!c) {
        snprintf(why, whylen, "no such case");
        return MHD_HTTP_NOT_FOUND;
    }
    if (c->state == APR_PENDING || c->state == APR_NO_ACTION || c->state == APR_CLOSED ||
        (strcmp(what, "retry") == 0 && c->state == APR_DENIED)) {
        snprintf(why, whylen, "case is %s: nothing to %s", approval_state_name(c->state), what);
        return MHD_HTTP_CONFLICT;
    }
    /* the case's tier: its route's once people were asked (escalation
     * included), else the tier its amount falls in */
    route_t tier;
    int t = c->route.kind == ROUTE_HUMANS && c->route.tier > 0 ? c->route.tier
                                                               : policy_amount_tier(&a->policy, c->amount, c->currency);
    if (policy_tier(&a->policy, t, &tier) != 0)
        policy_tier(&a->policy, 3, &tier);
    unsigned status = sod_review(&tier, who, what, why, whylen);
    *ask_audit = status == 0 && c->state == APR_APPROVED;
    return status;
}

/* s_review_apply - close c, or open a retry round for it (under mu); the
 * record's publish status, its id in id */
static int s_review_apply(approve_t *a, request_t *req, approval_t *c, const person_t *who, const char *what,
                          const char *comment, const char *peer, char id[EVENT_ID_MAX + 1])
{
    int rc;
    if (strcmp(what, "close") == 0) {
        c->state = APR_CLOSED;
        event_body_t *b = event_body_new();
        event_body_str(b, EK_CASE_ID, c->case_id);
        event_body_str(b, EK_WHO, who->name);
        event_body_str(b, EK_COMMENT, comment);
        event_body_str(b, "client_ip", peer);
        if (req->via[0])
            event_body_str(b, "via", req->via);
        b = approve_traced(c, b);
        rc = stage_publish(a->st, "rev", EV_CLOSED, c->case_id, b, STAGE_TO_BOTH, id, s_on_durable, req);
        event_body_destroy(&b);
        return rc;
    }
    c->retry++;
    c->ndecisions = 0;
    c->state = APR_PENDING;
    snprintf(c->raised_by, sizeof c->raised_by, "%s", who->name);
    if (c->route.nroles == 0) /* policy had approved it: people decide a retry */
        policy_tier(&a->policy, policy_amount_tier(&a->policy, c->amount, c->currency), &c->route);
    c->route.kind = ROUTE_HUMANS;
    snprintf(c->route.rule, sizeof c->route.rule, "ops_review_retry");
    utf8_fmt(c->route.reason, sizeof c->route.reason, "%s asked to retry the failed runbook: %s", who->name,
             *comment ? comment : "(no comment)"); /* a long comment is cut, never half a character */
    c->expires_ms = stage_now_ms() + a->expiry_s * 1000;
    event_body_t *b = cases_body(c);
    rc = stage_publish(a->st, "rev", EV_ROUTED, c->case_id, b, STAGE_TO_AUDIT, id, s_on_durable, req);
    event_body_destroy(&b);
    b = cards_card(a, c, "A retry of a failed payguard runbook awaits your decision");
    stage_publish(a->st, "rev", EV_NOTICE, c->case_id, b, STAGE_TO_BOTH, id, NULL, NULL);
    event_body_destroy(&b);
    return rc;
}

/* s_review - POST /reviews/{case}/retry|close: a person acts on a case in
 * ops review. close ends it (audited); retry opens a new approval round for
 * the failed runbook, with the requester as its raiser, so the same
 * approvals, by others, are needed before execute tries again. Either needs
 * a role of the case's tier, and a case approve handed to execute must be
 * in ops review by audit's account (asked outside the lock; the case must
 * not have moved meanwhile). */
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
    char why[256] = "";
    bool ask_audit = false;
    pthread_mutex_lock(&a->mu);
    approval_t *c = cases_find(a, case_id);
    unsigned status = s_review_refuse(a, c, who, what, &ask_audit, why, sizeof why);
    approval_state_t seen = c ? c->state : APR_PENDING;
    pthread_mutex_unlock(&a->mu);
    if (!status && ask_audit)
        status =
            review_in_ops(a->audit_url, case_id,
                          MHD_lookup_connection_value(req->conn, MHD_HEADER_KIND, "Authorization"), why, sizeof why);
    pthread_mutex_lock(&a->mu);
    c = cases_find(a, case_id);
    if (!status && (!c || c->state != seen)) {
        status = MHD_HTTP_CONFLICT;
        snprintf(why, sizeof why, "case changed meanwhile: try again");
    }
    char id[EVENT_ID_MAX + 1];
    int rc = status ? 0 : s_review_apply(a, req, c, who, what, comment, peer, id);
    if (!status) {
        snprintf(req->state, sizeof req->state, "%s", approval_state_name(c->state));
        snprintf(req->case_id, sizeof req->case_id, "%s", c->case_id);
    }
    bool known = c != NULL;
    pthread_mutex_unlock(&a->mu);
    json_decref(body);
    if (status) {
        api_audit_refusal(a, EV_DECISION_REFUSED, who->name, case_id, known, status, why, peer);
        return httpd_error(req->conn, status, why);
    }
    if (rc != 0)
        return httpd_error(req->conn, MHD_HTTP_SERVICE_UNAVAILABLE, "cannot record it right now");
    stage_count(a->st, "payguard_approve_reviews_total", "action", what, 1);
    return s_answer_when_durable(a, req);
}

/* s_case_route - the requests about one case: answered here when this
 * instance owns the case (or a peer passed it on), else passed on (peers.c) */
static enum MHD_Result s_case_route(approve_t *a, request_t *req, bool via_peer, const char *url, const char *method,
                                    const person_t *who, const char *peer)
{
    struct MHD_Connection *conn = req->conn;
    if (strncmp(url, "/approvals/", 11) == 0) {
        char case_id[160];
        const char *rest = url + 11;
        const char *slash = strchr(rest, '/');
        size_t n = slash ? (size_t) (slash - rest) : strlen(rest);
        if (n == 0 || n >= sizeof case_id)
            return httpd_error(conn, MHD_HTTP_NOT_FOUND, "no such case");
        memcpy(case_id, rest, n);
        case_id[n] = '\0';
        int owner = via_peer ? stage_index(a->st) : peers_owner(a, case_id);
        if (owner != stage_index(a->st) && (!slash || strcmp(slash, "/decisions") == 0))
            return peers_forward(a, conn, owner, method, "/approvals/", case_id, slash ? slash : "", req->body, peer,
                                 req->via);
        if (slash && strcmp(slash, "/decisions") == 0) {
            if (strcmp(method, "POST") != 0)
                return httpd_error(conn, MHD_HTTP_METHOD_NOT_ALLOWED, "POST a decision");
            req->answered = false; /* answered once durable */
            return s_decide(a, req, who, case_id, peer);
        }
        if (!slash && strcmp(method, "GET") == 0) {
            pthread_mutex_lock(&a->mu);
            approval_t *c = cases_find(a, case_id);
            json_t *j = c ? cases_json(c) : NULL;
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
            int owner = via_peer ? stage_index(a->st) : peers_owner(a, case_id);
            if (owner != stage_index(a->st))
                return peers_forward(a, conn, owner, method, "/reviews/", case_id, slash, req->body, peer, req->via);
            req->answered = false; /* answered once durable */
            return s_review(a, req, who, case_id, what, peer);
        }
    }
    return httpd_error(conn, MHD_HTTP_NOT_FOUND, "unknown path");
}

/* s_admit - the person a request comes from, copied into *me (a reload may
 * replace the set meanwhile): true; false and *rc the answer when its
 * address is throttled (429, refusals.h; a peer's client is its front
 * instance's to throttle) or its token is unknown or expired (401, on the
 * trail with the id the path names, and an expired one's "token of <name>
 * expired at <time>") */
static bool s_admit(approve_t *a, struct MHD_Connection *conn, bool via_peer, const char *url, const char *peer,
                    person_t *me, enum MHD_Result *rc)
{
    long wait_s = via_peer ? 0 : refusals_throttled(a->refusals, peer);
    if (wait_s) {
        stage_count(a->st, "payguard_refusals_throttled_total", NULL, NULL, 1);
        *rc = httpd_throttled(conn, wait_s);
        return false;
    }
    char why[PEOPLE_WHY_MAX];
    if (people_live_auth(a->people, MHD_lookup_connection_value(conn, MHD_HEADER_KIND, "Authorization"), stage_now_ms(),
                         me, why))
        return true;
    char asked[1024];
    s_url_case(url, asked, sizeof asked);
    api_audit_refusal(a, EV_ACCESS_DENIED, me->name[0] ? me->name : NULL, asked, false, MHD_HTTP_UNAUTHORIZED, why,
                      peer);
    *rc = me->name[0] ? httpd_token_refused(conn, why) : httpd_unauthorized(conn);
    return false;
}

/* s_answer - the approvals API, from a client or (via_peer) passed on by
 * another instance */
static enum MHD_Result s_answer(approve_t *a, bool via_peer, struct MHD_Connection *conn, const char *url,
                                const char *method, const char *upload, size_t *upload_size, void **con_cls)
{
    request_t *req = *con_cls;
    if (!req) {
        if (strcmp(method, "GET") == 0 && strcmp(url, "/healthz") == 0)
            return httpd_reply(conn, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
        if (strcmp(method, "GET") == 0 && strcmp(url, "/readyz") == 0) {
            char why[256];
            bool ready = stage_ready(a->st, why, sizeof why);
            return httpd_readyz(conn, ready, why);
        }
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
    char peer[RELAY_ADDR_MAX]; /* the person's address; the console's, if they came through it, in req->via */
    peers_client(a, conn, via_peer, peer, req->via);
    if (req->body)
        req->body[req->len] = '\0';
    person_t me; /* a copy: a reload may replace the set meanwhile */
    enum MHD_Result refused;
    if (!s_admit(a, conn, via_peer, url, peer, &me, &refused))
        return refused;
    const person_t *who = &me;
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
        return s_list(a, conn, via_peer, peer);
    }
    return s_case_route(a, req, via_peer, url, method, who, peer);
}

/* api_answer - the approvals API */
enum MHD_Result api_answer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                           const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) version;
    return s_answer(cls, false, conn, url, method, upload, upload_size, con_cls);
}

/* api_answer_peer - see approve.h */
enum MHD_Result api_answer_peer(void *cls, struct MHD_Connection *conn, const char *url, const char *method,
                                const char *version, const char *upload, size_t *upload_size, void **con_cls)
{
    (void) version;
    return s_answer(cls, true, conn, url, method, upload, upload_size, con_cls);
}

/* api_completed - free a request */
void api_completed(void *cls, struct MHD_Connection *conn, void **con_cls, enum MHD_RequestTerminationCode toe)
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

/* api_serve - see approve.h */
httpd_t *api_serve(approve_t *a, int fd, bool via_peer, char *err, size_t errlen)
{
    httpd_opts_t o = {.name = via_peer ? "approvals API for the other instances" : "approvals API",
                      .listen_fd = fd,
                      .threads = 2,
                      .max_connections = CONFIG_HTTP_CONNECTIONS,
                      .answer = via_peer ? api_answer_peer : api_answer,
                      .completed = api_completed,
                      .cls = a,
                      .st = a->st};
    return httpd_serve(stage_config(a->st), "approve", &o, err, errlen);
}
