/* cases - approve's case table: the approvals it holds, found by case id,
 * as JSON for the API and as event bodies, rebuilt from the journal (see
 * approve.h) */
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

/* approve_js - a string member or "" */
const char *approve_js(json_t *o, const char *key)
{
    const char *v = json_string_value(json_object_get(o, key));
    return v ? v : "";
}

/* approve_json_text - a JSON value as compact text (malloc'd), NULL for none */
char *approve_json_text(const json_t *v)
{
    return v ? json_dumps(v, JSON_COMPACT | JSON_ENCODE_ANY) : NULL;
}

/* cases_free - an approval and what it owns */
void cases_free(approval_t *c)
{
    free(c->advice);
    free(c->facts);
    free(c->decisions);
    free(c);
}

/* cases_settle - a decided approval no longer needs the facts execute acts on
 * (they went out in its outcome; a retry round runs execute's own stored
 * plan): free them, the bulk of what a case holds */
void cases_settle(approval_t *c)
{
    if (c->state != APR_PENDING && !c->outcome_pending) {
        free(c->facts);
        c->facts = NULL;
    }
}

/* cases_decision_add - room for one more decision (at most APPROVE_MAX_DECISIONS) */
decided_t *cases_decision_add(approval_t *c)
{
    assert(c->ndecisions < APPROVE_MAX_DECISIONS);
    decided_t *d = realloc(c->decisions, (c->ndecisions + 1) * sizeof *d);
    assert(d);
    c->decisions = d;
    memset(&d[c->ndecisions], 0, sizeof *d);
    return &d[c->ndecisions++];
}

/* s_evictable - may a case be forgotten to make room? Decided, and its
 * outcome sent (the journal and the trail keep its record) */
static bool s_evictable(const approval_t *c)
{
    return c->state != APR_PENDING && !c->outcome_pending;
}

/* cases_full - see approve.h */
bool cases_full(const approve_t *a)
{
    if (a->max_cases <= 0 || a->ncases < (size_t) a->max_cases)
        return false;
    for (size_t i = 0; i < a->ncases; i++)
        if (s_evictable(a->cases[i]))
            return false;
    return true;
}

static int s_put(approve_t *a, approval_t *c);

/* cases_find - the approval of a case, from memory or read back from disk;
 * marked changed, since the caller may change it (caller holds mu) */
approval_t *cases_find(approve_t *a, const char *case_id)
{
    approval_t *c = a->index ? zhashx_lookup(a->index, case_id) : NULL;
    if (!c && a->db) {
        char *row = casedb_get(a->db, case_id);
        c = row ? cases_from_row(row) : NULL;
        if (row && !c)
            log_error("approve's case store: the row of %s is unreadable", case_id);
        free(row);
        if (c)
            cases_store(a, c);
    }
    if (c)
        c->dirty = true;
    return c;
}

/* s_roles_json - a role list as a JSON array */
static json_t *s_roles_json(const route_t *r)
{
    json_t *a = json_array();
    for (size_t i = 0; i < r->nroles; i++)
        json_array_append_new(a, json_string(r->roles[i]));
    return a;
}

/* cases_json - an approval as the API shows it (caller holds mu) */
json_t *cases_json(const approval_t *c)
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

/* cases_body - the whole approval as an event body: what a rebuild needs */
event_body_t *cases_body(const approval_t *c)
{
    event_body_t *b = event_body_new();
    json_t *j = cases_record(c);
    const char *k;
    json_t *v;
    json_object_foreach(j, k, v)
    {
        if (event_body_json(b, k, v) != 0)
            event_body_str(b, k, "");
    }
    json_decref(j);
    return approve_traced(c, b);
}

/* approve_traced - see approve.h */
event_body_t *approve_traced(const approval_t *c, event_body_t *b)
{
    assert(c && b);
    if (!c->trace[0])
        return b;
    event_body_t *t = event_body_new();
    event_body_copy_body(t, b, TRACE_KEY);
    event_body_str(t, TRACE_KEY, c->trace);
    event_body_destroy(&b);
    return t;
}

/* cases_record - the approval with what a rebuild and execute need:
 * times, reason, the triaged event's id, the retry round and the facts */
json_t *cases_record(const approval_t *c)
{
    json_t *j = cases_json(c);
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

/* cases_store - add or replace a case's approval (caller holds mu) */
void cases_store(approve_t *a, approval_t *c)
{
    if (!a->index) { /* the replay hook stores before init runs */
        a->index = zhashx_new();
        assert(a->index);
    }
    approval_t *old = zhashx_lookup(a->index, c->case_id);
    for (size_t i = 0; old && i < a->ncases; i++)
        if (a->cases[i] == old) {
            a->outcomes_pending -= old->outcome_pending;
            cases_free(old);
            a->cases[i] = c;
            zhashx_update(a->index, c->case_id, c);
            return;
        }
    if (a->max_cases > 0 && a->ncases >= (size_t) a->max_cases) {
        /* bounded: forget the oldest decided case (its record is in the journal and audit);
         * with none decided the bound is kept at intake instead (cases_full) */
        for (size_t i = 0; i < a->ncases; i++)
            if (s_evictable(a->cases[i]) && (!a->cases[i]->dirty || !a->db || s_put(a, a->cases[i]) == 0)) {
                zhashx_delete(a->index, a->cases[i]->case_id);
                cases_free(a->cases[i]);
                memmove(&a->cases[i], &a->cases[i + 1], (a->ncases - i - 1) * sizeof *a->cases);
                a->ncases--;
                break;
            }
    }
    if (a->ncases % 1024 == 0) {
        a->cases = realloc(a->cases, (a->ncases + 1024) * sizeof *a->cases);
        assert(a->cases);
    }
    c->dirty = true;
    a->cases[a->ncases++] = c;
    zhashx_insert(a->index, c->case_id, c);
}

/* s_apply_decision - a journaled decision onto its approval (cases_apply) */
static void s_apply_decision(approve_t *a, approval_t *c, json_t *b)
{
    assert(a && c);
    if (c->ndecisions < APPROVE_MAX_DECISIONS) {
        decided_t *d = cases_decision_add(c);
        snprintf(d->who, sizeof d->who, "%s", approve_js(b, "who"));
        snprintf(d->role, sizeof d->role, "%s", approve_js(b, "role"));
        snprintf(d->decision, sizeof d->decision, "%s", approve_js(b, "decision"));
        snprintf(d->comment, sizeof d->comment, "%s", approve_js(b, "comment"));
    }
    approval_state_of(approve_js(b, "state"), &c->state); /* absent: as it was */
    if ((c->state == APR_APPROVED || c->state == APR_DENIED) && !c->outcome_pending) {
        c->outcome_pending = true; /* until its outcome event shows it was emitted */
        a->outcomes_pending++;
        snprintf(c->outcome_by, sizeof c->outcome_by, "%s", approve_js(b, "who"));
    }
}

/* s_from_record - an approval as a routed/escalated/decided event body states it */
void cases_apply(approve_t *a, event_type_t type, json_t *b, const char *case_id)
{
    approval_t *c = cases_find(a, case_id);
    if (type == EV_ROUTED && json_is_string(json_object_get(b, "state"))) {
        c = calloc(1, sizeof *c);
        snprintf(c->case_id, sizeof c->case_id, "%s", case_id);
        cases_store(a, c);
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
        s_apply_decision(a, c, b);
        return;
    }
    if ((type == EV_APPROVED || type == EV_DENIED) && c->outcome_pending) {
        c->outcome_pending = false;
        a->outcomes_pending--;
    }
    /* routed, escalated, expired, approved, denied carry the whole approval */
#define STR(dst, key) snprintf(dst, sizeof dst, "%s", approve_js(b, key))
    if (json_is_string(json_object_get(b, TRACE_KEY)))
        STR(c->trace, TRACE_KEY);
    STR(c->kind, "kind");
    STR(c->ref, "ref");
    STR(c->currency, "currency");
    approval_state_of(approve_js(b, "state"), &c->state);
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
        c->advice = approve_json_text(rec);
    }
    json_t *facts = json_object_get(b, "facts");
    if (facts) {
        free(c->facts);
        c->facts = json_dumps(facts, JSON_COMPACT);
    }
}

/* cases_expire - pending approvals past their deadline: escalated to the
 * next tier's roles (a new deadline), or, past the top tier, expired to ops
 * review; expiry never approves (caller holds mu) */
void cases_expire(approve_t *a, int64_t now)
{
    stage_t *st = a->st;
    char id[EVENT_ID_MAX + 1];
    for (size_t i = 0; i < a->ncases; i++) {
        approval_t *c = a->cases[i];
        if (c->state != APR_PENDING || now < c->expires_ms)
            continue;
        c->dirty = true;
        int next = c->route.tier + 1;
        route_t r = c->route;
        if (next <= POLICY_TIERS && policy_tier(&a->policy, next, &r) == 0) {
            snprintf(r.rule, sizeof r.rule, "escalated_to_tier_%d", next);
            snprintf(r.reason, sizeof r.reason, "no decision within %ld s at tier %d: escalated to tier %d",
                     a->expiry_s, c->route.tier, next);
            snprintf(r.action, sizeof r.action, "%s", c->route.action);
            c->route = r;
            c->expires_ms = now + a->expiry_s * 1000;
            event_body_t *b = cases_body(c);
            stage_publish(st, "esc", EV_ESCALATED, c->case_id, b, STAGE_TO_AUDIT, id, NULL, NULL);
            event_body_destroy(&b);
            b = cards_card(a, c, "A payguard case was escalated to you");
            stage_publish(st, "esc", EV_NOTICE, c->case_id, b, STAGE_TO_BOTH, id, NULL, NULL);
            event_body_destroy(&b);
        } else {
            c->state = APR_EXPIRED;
            event_body_t *b = cases_body(c);
            stage_publish(st, "esc", EV_EXPIRED, c->case_id, b, STAGE_TO_AUDIT, id, NULL, NULL);
            cases_settle(c);
            event_body_destroy(&b);
            b = cards_card(a, c, "A payguard case expired without a decision: ops review");
            stage_publish(st, "esc", EV_NOTICE, c->case_id, b, STAGE_TO_BOTH, id, NULL, NULL);
            event_body_destroy(&b);
        }
        stage_count(st, "payguard_approve_expiries_total", NULL, NULL, 1);
    }
}

/* ------------------------------------------------------------ on disk */

/* cases_row - everything an approval holds, as compact JSON text for
 * casedb (malloc'd); cases_from_row reads it back */
char *cases_row(const approval_t *c)
{
    json_t *ds = json_array(), *roles = json_array();
    for (size_t i = 0; i < c->ndecisions; i++)
        json_array_append_new(ds, json_pack("{s:s, s:s, s:s, s:s, s:I}", "who", c->decisions[i].who, "role",
                                            c->decisions[i].role, "decision", c->decisions[i].decision, "comment",
                                            c->decisions[i].comment, "at_ms", (json_int_t) c->decisions[i].at_ms));
    for (size_t i = 0; i < c->route.nroles; i++)
        json_array_append_new(roles, json_string(c->route.roles[i]));
    json_t *j =
        json_pack("{s:s, s:s, s:s, s:I, s:s, s:s, s:i, s:i, s:o, s:s, s:s, s:s, s:o, s:I, s:I, s:s, s:s, s:i,"
                  " s:b, s:s}",
                  "case_id", c->case_id, "kind", c->kind, "ref", c->ref, "amount", (json_int_t) c->amount, "currency",
                  c->currency, "state", approval_state_name(c->state), "route_kind", (int) c->route.kind, "tier",
                  c->route.tier, "roles", roles, "action", c->route.action, "rule", c->route.rule, "reason",
                  c->route.reason, "decisions", ds, "created_ms", (json_int_t) c->created_ms, "expires_ms",
                  (json_int_t) c->expires_ms, "raised_by", c->raised_by, "triaged_id", c->triaged_id, "retry", c->retry,
                  "outcome_pending", c->outcome_pending, "outcome_by", c->outcome_by);
    if (c->trace[0])
        json_object_set_new(j, "trace", json_string(c->trace));
    if (c->advice)
        json_object_set_new(j, "advice", json_string(c->advice));
    if (c->facts)
        json_object_set_new(j, "facts", json_string(c->facts));
    char *text = json_dumps(j, JSON_COMPACT);
    json_decref(j);
    return text;
}

/* s_str - a string member into dst */
#define S_STR(dst, o, key) snprintf(dst, sizeof dst, "%s", approve_js(o, key))

/* cases_from_row - see cases_row; NULL if the text is not one */
approval_t *cases_from_row(const char *row)
{
    json_t *j = json_loads(row, 0, NULL);
    approval_t *c = json_is_object(j) ? calloc(1, sizeof *c) : NULL;
    if (!c || !approval_state_of(approve_js(j, "state"), &c->state)) {
        json_decref(j);
        free(c);
        return NULL;
    }
    S_STR(c->case_id, j, "case_id");
    S_STR(c->kind, j, "kind");
    S_STR(c->ref, j, "ref");
    S_STR(c->currency, j, "currency");
    S_STR(c->route.action, j, "action");
    S_STR(c->route.rule, j, "rule");
    S_STR(c->route.reason, j, "reason");
    S_STR(c->raised_by, j, "raised_by");
    S_STR(c->triaged_id, j, "triaged_id");
    S_STR(c->outcome_by, j, "outcome_by");
    S_STR(c->trace, j, "trace");
    c->amount = json_integer_value(json_object_get(j, "amount"));
    c->route.kind = (route_kind_t) json_integer_value(json_object_get(j, "route_kind"));
    c->route.tier = (int) json_integer_value(json_object_get(j, "tier"));
    c->created_ms = json_integer_value(json_object_get(j, "created_ms"));
    c->expires_ms = json_integer_value(json_object_get(j, "expires_ms"));
    c->retry = (int) json_integer_value(json_object_get(j, "retry"));
    c->outcome_pending = json_is_true(json_object_get(j, "outcome_pending"));
    size_t i;
    json_t *v;
    json_array_foreach(json_object_get(j, "roles"), i, v) if (c->route.nroles < POLICY_MAX_ROLES) snprintf(
        c->route.roles[c->route.nroles++], POLICY_ROLE_MAX, "%s", json_string_value(v) ? json_string_value(v) : "");
    json_array_foreach(json_object_get(j, "decisions"), i, v) if (c->ndecisions < APPROVE_MAX_DECISIONS)
    {
        decided_t *d = cases_decision_add(c);
        S_STR(d->who, v, "who");
        S_STR(d->role, v, "role");
        S_STR(d->decision, v, "decision");
        S_STR(d->comment, v, "comment");
        d->at_ms = json_integer_value(json_object_get(v, "at_ms"));
    }
    if (json_is_string(json_object_get(j, "advice")))
        c->advice = strdup(approve_js(j, "advice"));
    if (json_is_string(json_object_get(j, "facts")))
        c->facts = strdup(approve_js(j, "facts"));
    json_decref(j);
    return c;
}
#undef S_STR

/* s_put - one case onto disk (in casedb's open transaction); 0 or -1 */
static int s_put(approve_t *a, approval_t *c)
{
    char *row = cases_row(c);
    int rc =
        row ? casedb_put(a->db, c->case_id, approval_state_name(c->state), c->created_ms, !s_evictable(c), row) : -1;
    free(row);
    if (rc == 0)
        c->dirty = false;
    return rc;
}

/* s_load - one case in flight back into memory */
static void s_load(const char *row, void *arg)
{
    approve_t *a = arg;
    approval_t *c = cases_from_row(row);
    if (!c) {
        log_error("approve's case store: a row is unreadable: %.80s", row);
        return;
    }
    a->outcomes_pending += c->outcome_pending;
    cases_store(a, c);
    c->dirty = false;
}

/* cases_load - see approve.h */
size_t cases_load(approve_t *a)
{
    assert(a->db && a->ncases == 0);
    return casedb_in_flight(a->db, s_load, a);
}

/* cases_flush - see approve.h */
int cases_flush(approve_t *a, uint64_t jseq)
{
    assert(a->db);
    size_t kept = 0, wrote = 0;
    int rc = 0;
    for (size_t i = 0; rc == 0 && i < a->ncases; i++)
        if (a->cases[i]->dirty) {
            rc = s_put(a, a->cases[i]);
            wrote++;
        }
    if (rc != 0 || ((wrote || jseq != casedb_applied(a->db)) && casedb_commit(a->db, jseq) != 0))
        return -1; /* everything stays in memory; the next flush tries again */
    for (size_t i = 0; i < a->ncases; i++) {
        approval_t *c = a->cases[i];
        if (s_evictable(c)) { /* on disk now: read back when someone asks */
            zhashx_delete(a->index, c->case_id);
            cases_free(c);
        } else {
            a->cases[kept++] = c;
        }
    }
    a->ncases = kept;
    return 0;
}
