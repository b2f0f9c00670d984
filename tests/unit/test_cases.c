/* test_cases - approve's cases held in memory: bounded by approve/max_cases,
 * decided cases make room, and a bound full of cases awaiting people is
 * kept at intake (cases_full) instead of aborting */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>

#include "../../approve/approve.h"

/* s_case - a new approval of case_id in state s */
static approval_t *s_case(int n, approval_state_t s)
{
    approval_t *c = calloc(1, sizeof *c);
    cr_assert_not_null(c);
    snprintf(c->case_id, sizeof c->case_id, "payout-P-%d", n);
    c->state = s;
    return c;
}

/* s_free_all - what a test stored */
static void s_free_all(approve_t *a)
{
    for (size_t i = 0; i < a->ncases; i++)
        cases_free(a->cases[i]);
    free(a->cases);
    zhashx_destroy(&a->index);
}

Test(cases, full_of_pending_is_kept_at_intake)
{
    approve_t a = {.max_cases = 100};
    for (int n = 0; n < 100; n++)
        cases_store(&a, s_case(n, APR_PENDING));
    cr_assert_eq(a.ncases, 100);
    cr_assert(cases_full(&a), "100 of 100 await people");
    /* one is decided: it can make room, so the bound is not full */
    cases_find(&a, "payout-P-7")->state = APR_APPROVED;
    cr_assert_not(cases_full(&a));
    cases_store(&a, s_case(100, APR_PENDING));
    cr_assert_eq(a.ncases, 100, "the decided one made room");
    cr_assert_null(cases_find(&a, "payout-P-7"), "the decided one is forgotten (the journal and trail keep it)");
    cr_assert_not_null(cases_find(&a, "payout-P-100"));
    cr_assert(cases_full(&a), "full again");
    s_free_all(&a);
}

Test(cases, an_outcome_not_yet_sent_is_not_forgotten)
{
    approve_t a = {.max_cases = 100};
    for (int n = 0; n < 100; n++) {
        approval_t *c = s_case(n, APR_APPROVED);
        c->outcome_pending = true;
        cases_store(&a, c);
    }
    a.outcomes_pending = 100;
    cr_assert(cases_full(&a), "decided, but their outcome is still to be sent");
    s_free_all(&a);
}

Test(cases, a_rebuild_keeps_every_case)
{
    /* before init (max_cases 0) the journal's cases are all kept, and a
     * bound lowered below what awaits people later holds new ones back
     * instead of dropping or aborting */
    approve_t a = {0};
    for (int n = 0; n < 150; n++)
        cases_store(&a, s_case(n, APR_PENDING));
    cr_assert_eq(a.ncases, 150);
    a.max_cases = 100;
    cr_assert(cases_full(&a));
    cases_store(&a, s_case(150, APR_PENDING)); /* a store past the bound still keeps a pending case */
    cr_assert_eq(a.ncases, 151);
    s_free_all(&a);
}
