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
    char state[16]; /* pending | approved | denied | expired | auto_approved | no_action */
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

/* sod_outcome - what the case's decisions so far settle: "denied" once a
 * required approver denied, "approved" once every required role is
 * covered, else NULL (still pending) */
const char *sod_outcome(const approval_t *c, bool last_was_deny);

#endif
