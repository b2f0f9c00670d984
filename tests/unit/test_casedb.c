/* test_casedb - approve's cases on disk: a snapshot at a journal position,
 * bound to one journal's epoch; approve's memory holds only cases in flight */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../approve/approve.h"
#include "../../approve/casedb.h"

static char s_root[64], s_db[128];

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-casedb-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
    snprintf(s_db, sizeof s_db, "%s/approve.0.cases.sqlite", s_root);
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(casedb, .init = s_setup, .fini = s_teardown, .timeout = 30);

static casedb_t *s_open(uint64_t epoch)
{
    char err[256];
    casedb_t *db = casedb_open(s_db, epoch, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    return db;
}

/* s_count - casedb_each's callback: count */
static void s_count(const char *row, void *arg)
{
    (void) row;
    ++*(size_t *) arg;
}

Test(casedb, rows_are_visible_at_once_and_durable_only_with_their_position)
{
    casedb_t *db = s_open(7);
    cr_assert_eq(casedb_applied(db), 0);
    cr_assert_eq(casedb_put(db, "payout-P-1", "pending", 1000, true, "{\"a\":1}"), 0);
    char *row = casedb_get(db, "payout-P-1");
    cr_assert_str_eq(row, "{\"a\":1}", "visible before the commit, on the same connection");
    free(row);
    casedb_close(&db); /* not committed: gone, the journal replays it */
    db = s_open(7);
    cr_assert_null(casedb_get(db, "payout-P-1"));
    cr_assert_eq(casedb_put(db, "payout-P-1", "pending", 1000, true, "{\"a\":2}"), 0);
    cr_assert_eq(casedb_put(db, "payout-P-2", "approved", 2000, false, "{\"b\":1}"), 0);
    cr_assert_eq(casedb_commit(db, 42), 0);
    casedb_close(&db);
    db = s_open(7);
    cr_assert_eq(casedb_applied(db), 42);
    cr_assert_eq(casedb_count(db), 2);
    size_t n = 0;
    cr_assert_eq(casedb_in_flight(db, s_count, &n), 1, "only the case in flight");
    n = 0;
    cr_assert_eq(casedb_each(db, "approved", 10, s_count, &n), 1);
    cr_assert_eq(casedb_each(db, NULL, 1, s_count, &n), 1, "the limit holds");
    casedb_close(&db);
}

Test(casedb, another_journal_epoch_empties_the_store)
{
    casedb_t *db = s_open(7);
    cr_assert_eq(casedb_put(db, "payout-P-1", "pending", 1000, true, "{}"), 0);
    cr_assert_eq(casedb_commit(db, 10), 0);
    casedb_close(&db);
    db = s_open(8); /* the journal was begun again, or repartitioned */
    cr_assert_eq(casedb_applied(db), 0);
    cr_assert_eq(casedb_count(db), 0);
    casedb_close(&db);
}

/* s_case - an approval with what a row must carry */
static approval_t *s_case(int n, approval_state_t s)
{
    approval_t *c = calloc(1, sizeof *c);
    snprintf(c->case_id, sizeof c->case_id, "payout-P-%d", n);
    snprintf(c->kind, sizeof c->kind, "payout");
    snprintf(c->ref, sizeof c->ref, "P-%d", n);
    snprintf(c->currency, sizeof c->currency, "USD");
    c->amount = 1000 + n;
    c->state = s;
    c->route.kind = ROUTE_HUMANS;
    c->route.tier = 2;
    c->route.nroles = 2;
    snprintf(c->route.roles[0], POLICY_ROLE_MAX, "finance_manager");
    snprintf(c->route.roles[1], POLICY_ROLE_MAX, "compliance");
    snprintf(c->route.rule, sizeof c->route.rule, "payout_tier_2");
    c->created_ms = 1795000000000 + n;
    c->expires_ms = c->created_ms + 86400000;
    c->advice = strdup("{\"classification\":\"payout_exception\"}");
    c->facts = strdup("{\"ref\":\"P-1\"}");
    decided_t *d = cases_decision_add(c);
    snprintf(d->who, sizeof d->who, "fin_mgr");
    snprintf(d->role, sizeof d->role, "finance_manager");
    snprintf(d->decision, sizeof d->decision, "approve");
    snprintf(d->comment, sizeof d->comment, "ok \"quoted\"");
    d->at_ms = 1795000001234;
    return c;
}

Test(casedb, an_approval_reads_back_as_it_was_written)
{
    approval_t *c = s_case(1, APR_PENDING);
    c->retry = 2;
    c->outcome_pending = true;
    char *row = cases_row(c);
    approval_t *b = cases_from_row(row);
    cr_assert_not_null(b);
    char *again = cases_row(b);
    cr_assert_str_eq(again, row, "every field survives");
    cr_assert_str_eq(b->decisions[0].comment, "ok \"quoted\"");
    cr_assert_eq(b->decisions[0].at_ms, 1795000001234);
    cr_assert_eq(b->route.nroles, 2);
    cr_assert(b->outcome_pending);
    cr_assert_null(cases_from_row("not json"));
    cr_assert_null(cases_from_row("{\"state\":\"nonsense\"}"));
    free(row);
    free(again);
    cases_free(c);
    cases_free(b);
}

Test(casedb, memory_keeps_only_cases_in_flight_and_finds_the_rest_on_disk)
{
    approve_t a = {.max_cases = 100};
    a.db = s_open(7);
    for (int n = 0; n < 50; n++)
        cases_store(&a, s_case(n, n % 10 == 0 ? APR_PENDING : APR_APPROVED));
    cr_assert_eq(cases_flush(&a, 99), 0);
    cr_assert_eq(a.ncases, 5, "the five pending stay in memory, the decided ones went to disk");
    cr_assert_eq(casedb_count(a.db), 50);
    approval_t *c = cases_find(&a, "payout-P-7");
    cr_assert_not_null(c, "read back from disk");
    cr_assert_eq(c->state, APR_APPROVED);
    cr_assert_eq(a.ncases, 6, "held while someone works on it");
    c->state = APR_CLOSED; /* a change: written at the next flush */
    cr_assert_eq(cases_flush(&a, 100), 0);
    cr_assert_eq(a.ncases, 5);
    casedb_close(&a.db);
    for (size_t i = 0; i < a.ncases; i++)
        cases_free(a.cases[i]);
    free(a.cases);
    zhashx_destroy(&a.index);

    approve_t b = {.max_cases = 100};
    b.db = s_open(7);
    cr_assert_eq(casedb_applied(b.db), 100);
    cr_assert_eq(cases_load(&b), 5, "a restart loads the cases in flight");
    cr_assert_eq(b.ncases, 5);
    cr_assert_eq(cases_find(&b, "payout-P-7")->state, APR_CLOSED, "the change was kept");
    casedb_close(&b.db);
    for (size_t i = 0; i < b.ncases; i++)
        cases_free(b.cases[i]);
    free(b.cases);
    zhashx_destroy(&b.index);
}
