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

/* cases_find - the approval of a case (caller holds mu) */
approval_t *cases_find(approve_t *a, const char *case_id)
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
    return b;
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
            if (s_evictable(a->cases[i])) {
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
    a->cases[a->ncases++] = c;
    zhashx_insert(a->index, c->case_id, c);
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
        return;
    }
    if ((type == EV_APPROVED || type == EV_DENIED) && c->outcome_pending) {
        c->outcome_pending = false;
        a->outcomes_pending--;
    }
    /* routed, escalated, expired, approved, denied carry the whole approval */
#define STR(dst, key) snprintf(dst, sizeof dst, "%s", approve_js(b, key))
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
