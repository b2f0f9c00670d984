/* test_reviewdb - execute's ops-review queue on disk */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../execute/reviewdb.h"

static char s_root[64], s_db[128];

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-reviewdb-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
    snprintf(s_db, sizeof s_db, "%s/execute.0.reviews.sqlite", s_root);
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(reviewdb, .init = s_setup, .fini = s_teardown, .timeout = 30);

typedef struct {
    char seen[512];
    int64_t last_at;
} seen_t;

/* s_seen - reviewdb_each's callback: "case:step:error;" in order */
static void s_seen(const review_row_t *r, void *arg)
{
    seen_t *s = arg;
    size_t l = strlen(s->seen);
    snprintf(s->seen + l, sizeof s->seen - l, "%s:%s:%s;", r->case_id, r->failed_step, r->error);
    s->last_at = r->at_ms;
}

Test(reviewdb, the_queue_survives_a_reopen_in_the_order_cases_failed)
{
    char err[256];
    reviewdb_t *db = reviewdb_open(s_db, err, sizeof err);
    cr_assert_not_null(db, "%s", err);
    cr_assert(reviewdb_is_new(db), "a new file says so (a journal without its first records cannot refill it)");
    cr_assert_eq(reviewdb_put(db, &(review_row_t){"payout-P-2", "{\"steps\":[]}", "ledger", "HTTP 400", 1000}), 0);
    cr_assert_eq(reviewdb_put(db, &(review_row_t){"payout-P-3", "{}", "hold_payout", "timeout", 2000}), 0);
    cr_assert_eq(reviewdb_put(db, &(review_row_t){"payout-P-4", "{}", "ticket", "HTTP 500", 3000}), 0);
    cr_assert_eq(reviewdb_drop(db, "payout-P-3"), 0, "closed by a person");
    cr_assert_eq(reviewdb_drop(db, "payout-P-404"), 0, "dropping what is not there changes nothing");
    reviewdb_close(&db);
    cr_assert_null(db);

    db = reviewdb_open(s_db, err, sizeof err);
    cr_assert_not(reviewdb_is_new(db));
    seen_t s = {0};
    cr_assert_eq(reviewdb_each(db, s_seen, &s), 2);
    cr_assert_str_eq(s.seen, "payout-P-2:ledger:HTTP 400;payout-P-4:ticket:HTTP 500;");
    cr_assert_eq(s.last_at, 3000);
    /* the same case failing again: one row, now the newest */
    cr_assert_eq(reviewdb_put(db, &(review_row_t){"payout-P-2", "{}", "notice", "HTTP 502", 4000}), 0);
    memset(&s, 0, sizeof s);
    cr_assert_eq(reviewdb_each(db, s_seen, &s), 2);
    cr_assert_str_eq(s.seen, "payout-P-4:ticket:HTTP 500;payout-P-2:notice:HTTP 502;");
    reviewdb_close(&db);
}

Test(reviewdb, an_unwritable_place_is_a_clear_error)
{
    char err[256] = "";
    cr_assert_null(reviewdb_open("/nonexistent/dir/reviews.sqlite", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/dir/reviews.sqlite") != NULL, "%s", err);
}
