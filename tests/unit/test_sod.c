/* test_sod - segregation of duties as a pure function: who may decide a
 * case, which required role their approval covers, what the decisions
 * settle. (The HTTP API's answers to the same rules: tests/e2e/e2e_approve.sh.) */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "../../approve/approve.h"

#define NOW 1700000000000LL

static decided_t s_decisions[8];

/* s_case - a pending case needing roles (space-separated), raised by raiser */
static approval_t s_case(const char *roles, const char *raiser)
{
    approval_t c;
    memset(&c, 0, sizeof c);
    snprintf(c.case_id, sizeof c.case_id, "payout-P-1");
    c.state = APR_PENDING;
    snprintf(c.raised_by, sizeof c.raised_by, "%s", raiser ? raiser : "");
    c.expires_ms = NOW + 1000;
    c.route.kind = ROUTE_HUMANS;
    char buf[256];
    snprintf(buf, sizeof buf, "%s", roles);
    for (char *save = NULL, *r = strtok_r(buf, " ", &save); r; r = strtok_r(NULL, " ", &save))
        snprintf(c.route.roles[c.route.nroles++], POLICY_ROLE_MAX, "%s", r);
    c.decisions = s_decisions;
    memset(s_decisions, 0, sizeof s_decisions);
    return c;
}

/* s_person - name holding roles (space-separated) */
static person_t s_person(const char *name, const char *roles)
{
    person_t p;
    memset(&p, 0, sizeof p);
    snprintf(p.name, sizeof p.name, "%s", name);
    char buf[256];
    snprintf(buf, sizeof buf, "%s", roles);
    for (char *save = NULL, *r = strtok_r(buf, " ", &save); r; r = strtok_r(NULL, " ", &save))
        snprintf(p.roles[p.nroles++], PEOPLE_ROLE_MAX, "%s", r);
    return p;
}

/* s_add - record a decision as approve does after sod_judge said 0 */
static void s_add(approval_t *c, const person_t *who, const char *role, const char *decision)
{
    decided_t *d = &c->decisions[c->ndecisions++];
    snprintf(d->who, sizeof d->who, "%s", who->name);
    snprintf(d->role, sizeof d->role, "%s", role);
    snprintf(d->decision, sizeof d->decision, "%s", decision);
}

Test(sod, tier2_needs_two_distinct_people)
{
    approval_t c = s_case("finance_manager compliance", NULL);
    person_t risk = s_person("risk_lead", "finance_manager compliance");
    person_t comp = s_person("compliance_officer", "compliance");
    char role[POLICY_ROLE_MAX], why[256];
    cr_assert_eq(sod_judge(&c, &risk, true, NOW, role, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(role, "finance_manager", "the first required role they hold that nobody covers");
    s_add(&c, &risk, role, "approve");
    cr_expect_eq(sod_outcome(&c, false), APR_PENDING, "one of two roles: still pending");
    cr_expect_eq(sod_judge(&c, &risk, true, NOW, role, why, sizeof why), 403);
    cr_expect_str_eq(why, "risk_lead already decided this case: one person counts once");
    cr_expect_str_eq(role, "");
    cr_assert_eq(sod_judge(&c, &comp, true, NOW, role, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(role, "compliance");
    s_add(&c, &comp, role, "approve");
    cr_expect_eq(sod_outcome(&c, false), APR_APPROVED);
}

Test(sod, roles_already_covered_or_not_held)
{
    approval_t c = s_case("finance_manager compliance", NULL);
    person_t fin1 = s_person("fin_a", "finance_manager");
    person_t fin2 = s_person("fin_b", "finance_manager");
    person_t ops = s_person("ops_lead", "payments_ops_lead");
    char role[POLICY_ROLE_MAX], why[256];
    cr_assert_eq(sod_judge(&c, &fin1, true, NOW, role, why, sizeof why), 0);
    s_add(&c, &fin1, role, "approve");
    cr_expect_eq(sod_judge(&c, &fin2, true, NOW, role, why, sizeof why), 403);
    cr_expect_str_eq(why, "fin_b's required roles are already covered by others");
    cr_expect_eq(sod_judge(&c, &ops, true, NOW, role, why, sizeof why), 403);
    cr_expect_str_eq(why, "ops_lead holds none of the roles this case still needs");
    cr_expect_eq(sod_judge(&c, &ops, false, NOW, role, why, sizeof why), 403, "nor may they deny");
    /* a required approver whose role is covered may still deny */
    cr_expect_eq(sod_judge(&c, &fin2, false, NOW, role, why, sizeof why), 0, "%s", why);
    cr_expect_str_eq(role, "", "a deny covers no role");
}

Test(sod, a_deny_from_a_required_approver_denies)
{
    approval_t c = s_case("finance_manager compliance", NULL);
    person_t fin = s_person("fin", "finance_manager");
    person_t comp = s_person("comp", "compliance");
    char role[POLICY_ROLE_MAX], why[256];
    cr_assert_eq(sod_judge(&c, &fin, true, NOW, role, why, sizeof why), 0);
    s_add(&c, &fin, role, "approve");
    cr_assert_eq(sod_judge(&c, &comp, false, NOW, role, why, sizeof why), 0);
    s_add(&c, &comp, role, "deny");
    cr_expect_eq(sod_outcome(&c, true), APR_DENIED);
}

Test(sod, nobody_decides_a_case_they_raised)
{
    approval_t c = s_case("payments_ops_lead", "ops_lead");
    person_t ops = s_person("ops_lead", "payments_ops_lead");
    char role[POLICY_ROLE_MAX], why[256];
    cr_expect_eq(sod_judge(&c, &ops, true, NOW, role, why, sizeof why), 403);
    cr_expect_str_eq(why, "ops_lead raised this case and cannot decide it");
    cr_expect_eq(sod_judge(&c, &ops, false, NOW, role, why, sizeof why), 403, "nor deny it");
}

Test(sod, state_names_round_trip)
{
    for (int st = 0; st < APR_NSTATES; st++) {
        approval_state_t back = APR_NSTATES;
        cr_expect(approval_state_of(approval_state_name((approval_state_t) st), &back), "state %d", st);
        cr_expect_eq(back, st);
    }
    approval_state_t untouched = APR_EXPIRED;
    cr_expect_not(approval_state_of("maybe", &untouched));
    cr_expect_not(approval_state_of(NULL, &untouched));
    cr_expect_eq(untouched, APR_EXPIRED, "an unknown name changes nothing");
    cr_expect_str_eq(approval_state_name(APR_AUTO_APPROVED), "auto_approved");
}

Test(sod, only_pending_unexpired_known_cases)
{
    person_t ops = s_person("ops_lead", "payments_ops_lead");
    char role[POLICY_ROLE_MAX], why[256];
    cr_expect_eq(sod_judge(NULL, &ops, true, NOW, role, why, sizeof why), 404);
    cr_expect_str_eq(why, "no such case");
    approval_t c = s_case("payments_ops_lead", NULL);
    cr_expect_eq(sod_judge(&c, &ops, true, NOW + 1000, role, why, sizeof why), 409, "expiry never approves");
    cr_expect_str_eq(why, "the approval expired");
    c.state = APR_APPROVED;
    cr_expect_eq(sod_judge(&c, &ops, true, NOW, role, why, sizeof why), 409);
    cr_expect_str_eq(why, "case is approved, not awaiting a decision");
}

/* ops review: a retry or a close needs a role of the case's tier (a treasury
 * approver retried and closed a tier-1 case before: issue 21, finding 3) */
Test(sod, review_needs_a_role_of_the_cases_tier)
{
    approval_t c = s_case("payments_ops_lead", NULL);
    c.route.tier = 1;
    person_t lead = s_person("ops_lead", "payments_ops_lead");
    person_t treasurer = s_person("treasurer", "treasury");
    person_t two = s_person("risk_lead", "finance_manager compliance");
    char why[256];
    cr_assert_eq(sod_review(&c.route, &lead, "retry", why, sizeof why), 0);
    cr_assert_str_empty(why);
    cr_assert_eq(sod_review(&c.route, &treasurer, "retry", why, sizeof why), 403);
    cr_assert_str_eq(why,
                     "treasurer holds none of the roles of the case's tier 1 (payments_ops_lead): cannot retry it");
    cr_assert_eq(sod_review(&c.route, &two, "close", why, sizeof why), 403);
    cr_assert(strstr(why, "cannot close it"));
    approval_t t2 = s_case("finance_manager compliance", NULL);
    t2.route.tier = 2;
    cr_assert_eq(sod_review(&t2.route, &two, "close", why, sizeof why), 0);
    cr_assert_eq(sod_review(&t2.route, &lead, "retry", why, sizeof why), 403);
    cr_assert(strstr(why, "tier 2 (finance_manager, compliance)"), "%s", why);
}

/* ops review: audit's answer about an approved case, read */
Test(sod, review_judges_audits_answer)
{
    char why[256];
    cr_assert_eq(review_judge(200, "{\"case_id\":\"payout-P-1\",\"state\":\"ops_review\"}", why, sizeof why), 0);
    cr_assert_str_empty(why);
    cr_assert_eq(review_judge(200, "{\"state\":\"executed\"}", why, sizeof why), 409);
    cr_assert_str_eq(why, "case is executed in the audit trail, not in ops review: nothing to retry or close");
    cr_assert_eq(review_judge(200, "{\"state\":\"executing\"}", why, sizeof why), 409);
    cr_assert_eq(review_judge(404, "{\"error\":\"no such case\"}", why, sizeof why), 409);
    cr_assert_eq(review_judge(200, "{}", why, sizeof why), 503);
    cr_assert(strstr(why, "no state"));
    cr_assert_eq(review_judge(200, "not json", why, sizeof why), 503);
    cr_assert_eq(review_judge(401, "", why, sizeof why), 503);
    cr_assert(strstr(why, "audit answered HTTP 401"), "%s", why);
    cr_assert_eq(review_judge(0, NULL, why, sizeof why), 503);
}
