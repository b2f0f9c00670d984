/* sod - segregation of duties, and the names of approval states (see approve.h): one person counts once per
 * case whatever roles they hold; nobody decides a case they raised; a deny
 * from any required approver denies; approval needs every required role
 * covered by distinct people. Pure: no clock, no lock, no I/O. */
#include "approve.h"

#include <assert.h>
#include <stdio.h>
#include <string.h>

/* s_covered - has an earlier approval covered role? */
static bool s_covered(const approval_t *c, const char *role)
{
    for (size_t i = 0; i < c->ndecisions; i++)
        if (strcmp(c->decisions[i].role, role) == 0)
            return true;
    return false;
}

/* s_refuse_state - 404/409 for a case that cannot take a decision now */
static unsigned s_refuse_state(const approval_t *c, int64_t now_ms, char *why, size_t whylen)
{
    if (!c) {
        snprintf(why, whylen, "no such case");
        return 404;
    }
    if (c->state != APR_PENDING) {
        snprintf(why, whylen, "case is %s, not awaiting a decision", approval_state_name(c->state));
        return 409;
    }
    if (now_ms >= c->expires_ms) {
        snprintf(why, whylen, "the approval expired");
        return 409;
    }
    return 0;
}

/* s_refuse_person - 403 for a person who may not decide this case */
static unsigned s_refuse_person(const approval_t *c, const person_t *who, char *why, size_t whylen)
{
    if (c->raised_by[0] && strcmp(c->raised_by, who->name) == 0) {
        snprintf(why, whylen, "%s raised this case and cannot decide it", who->name);
        return 403;
    }
    for (size_t i = 0; i < c->ndecisions; i++)
        if (strcmp(c->decisions[i].who, who->name) == 0) {
            snprintf(why, whylen, "%s already decided this case: one person counts once", who->name);
            return 403;
        }
    return 0;
}

/* sod_review - see approve.h */
unsigned sod_review(const route_t *tier, const person_t *who, const char *what, char *why, size_t whylen)
{
    assert(tier && who && what && why && whylen > 0);
    why[0] = '\0';
    for (size_t r = 0; r < tier->nroles; r++)
        if (people_holds(who, tier->roles[r]))
            return 0;
    char roles[POLICY_MAX_ROLES * (POLICY_ROLE_MAX + 1)] = "";
    for (size_t r = 0; r < tier->nroles; r++)
        snprintf(roles + strlen(roles), sizeof roles - strlen(roles), "%s%s", r ? ", " : "", tier->roles[r]);
    snprintf(why, whylen, "%s holds none of the roles of the case's tier %d (%s): cannot %s it", who->name, tier->tier,
             roles, what);
    return 403;
}

/* sod_judge - see approve.h */
unsigned sod_judge(const approval_t *c, const person_t *who, bool approve, int64_t now_ms, char role[POLICY_ROLE_MAX],
                   char *why, size_t whylen)
{
    assert(who && role && why && whylen > 0);
    role[0] = '\0';
    why[0] = '\0';
    unsigned status = s_refuse_state(c, now_ms, why, whylen);
    if (!status)
        status = s_refuse_person(c, who, why, whylen);
    if (status)
        return status;
    /* the first required role this person holds that nobody covers yet */
    bool holds_any = false;
    for (size_t r = 0; r < c->route.nroles && !role[0]; r++) {
        if (!people_holds(who, c->route.roles[r]))
            continue;
        holds_any = true;
        if (!s_covered(c, c->route.roles[r]))
            snprintf(role, POLICY_ROLE_MAX, "%s", c->route.roles[r]);
    }
    if (!holds_any || (approve && !role[0])) {
        snprintf(why, whylen,
                 holds_any ? "%s's required roles are already covered by others"
                           : "%s holds none of the roles this case still needs",
                 who->name);
        role[0] = '\0';
        return 403;
    }
    if (!approve)
        role[0] = '\0'; /* a deny covers no role */
    return 0;
}

/* sod_outcome - see approve.h */
approval_state_t sod_outcome(const approval_t *c, bool last_was_deny)
{
    assert(c);
    if (last_was_deny)
        return APR_DENIED;
    size_t covered = 0;
    for (size_t r = 0; r < c->route.nroles; r++)
        covered += s_covered(c, c->route.roles[r]);
    assert(covered <= c->route.nroles);
    return covered == c->route.nroles ? APR_APPROVED : APR_PENDING;
}

static const char *const s_state_names[APR_NSTATES] = {
#define APPROVAL_STATE_NAME(e, name) [e] = name,
    APPROVAL_STATES(APPROVAL_STATE_NAME)
#undef APPROVAL_STATE_NAME
};

/* approval_state_name - see approve.h */
const char *approval_state_name(approval_state_t s)
{
    return (unsigned) s < APR_NSTATES ? s_state_names[s] : "?";
}

/* approval_state_of - see approve.h */
bool approval_state_of(const char *name, approval_state_t *out)
{
    for (int s = 0; s < APR_NSTATES; s++)
        if (name && strcmp(name, s_state_names[s]) == 0) {
            *out = (approval_state_t) s;
            return true;
        }
    return false;
}
