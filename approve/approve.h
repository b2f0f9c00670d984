/* approve.h - approve's own state, shared by its modules (not by other
 * programs):
 *
 *   main.c  the stage: routes cases (common/policy.c), holds approvals,
 *           serves the approvals API, expires what waits too long
 *   sod.c   segregation of duties: may this person make this decision on
 *           this case, and what does it settle (pure)
 */
#ifndef PG_APPROVE_H
#define PG_APPROVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"
#include "people.h"
#include "policy.h"

/* approval states: X(ENUM, "name on the wire and in the API") */
#define APPROVAL_STATES(X)                                                                                             \
    X(APR_PENDING, "pending")                                                                                          \
    X(APR_APPROVED, "approved")                                                                                        \
    X(APR_DENIED, "denied")                                                                                            \
    X(APR_EXPIRED, "expired")                                                                                          \
    X(APR_AUTO_APPROVED, "auto_approved")                                                                              \
    X(APR_NO_ACTION, "no_action")                                                                                      \
    X(APR_CLOSED, "closed")

/* approval_state_t - where a case stands in approve */
typedef enum {
#define APPROVAL_STATE_ENUM(e, name) e,
    APPROVAL_STATES(APPROVAL_STATE_ENUM)
#undef APPROVAL_STATE_ENUM
        APR_NSTATES
} approval_state_t;

/* approval_state_name - the state's name ("?" out of range) */
const char *approval_state_name(approval_state_t s);
/* approval_state_of - the state named name; false (out untouched) if none */
bool approval_state_of(const char *name, approval_state_t *out);

/* decided_t - one person's recorded decision on a case */
typedef struct {
    char who[32];
    char role[POLICY_ROLE_MAX]; /* the required role this approval covered ("" for a deny) */
    char decision[8];
    char comment[512];
    int64_t at_ms;
} decided_t;

/* approval_t - a case as approve holds it */
typedef struct {
    char case_id[160];
    char kind[16];
    char ref[128];
    int64_t amount;
    char currency[4];
    approval_state_t state;
    route_t route;
    decided_t *decisions; /* ndecisions of them (malloc'd: most cases have one or two) */
    size_t ndecisions;
    int64_t created_ms, expires_ms;
    char raised_by[64];
    char triaged_id[EVENT_ID_MAX + 1];
    char *advice;         /* the recommendation, compact JSON text, for GET and cards
                             (text, not a jansson tree: kept for every case held) */
    char *facts;          /* the triaged case as recorded, compact JSON text: what execute
                             acts on (text, not a jansson tree: a tenth of the memory) */
    int retry;            /* 0, or the ops-review retry round this approval is for */
    bool outcome_pending; /* the deciding decision is journaled, its approved/denied event
                             not yet: emitted by s_tick (after a full window or a crash
                             between the two) */
    char outcome_by[32];  /* who made the deciding decision */
} approval_t;

/* sod_judge - segregation of duties for one decision (a pure function of
 * the case, the person, the decision and the time): 0 and in role the
 * required role an approval covers ("" for a deny); else the HTTP status
 * to refuse with and why: 404 no case (c NULL), 409 not pending or
 * expired, 403 the person raised the case, decided it already (one person
 * counts once, whatever roles they hold), holds none of the roles it still
 * needs, or (approving) only roles others already cover */
unsigned sod_judge(const approval_t *c, const person_t *who, bool approve, int64_t now_ms, char role[POLICY_ROLE_MAX],
                   char *why, size_t whylen);

/* sod_outcome - what the case's decisions so far settle: APR_DENIED once a
 * required approver denied, APR_APPROVED once every required role is
 * covered, else APR_PENDING */
approval_state_t sod_outcome(const approval_t *c, bool last_was_deny);

#endif
