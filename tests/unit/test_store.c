/* test_store - validate's state store: keys, cases, the applied seq, wipe */
#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../validate/store.h"

static char s_dir[64];
static char s_path[96];

/* s_setup - a fresh store file in a temp directory */
static void s_setup(void)
{
    snprintf(s_dir, sizeof s_dir, "/tmp/pg-store-XXXXXX");
    cr_assert_not_null(mkdtemp(s_dir));
    snprintf(s_path, sizeof s_path, "%s/v.sqlite", s_dir);
}

/* s_teardown - remove the store and its WAL files */
static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(store, .init = s_setup, .fini = s_teardown);

/* s_row - a case row for tests */
static case_row_t s_row(const char *id, const char *kind, const char *status, int64_t psp_time, int64_t updated_ms)
{
    case_row_t r = {0};
    snprintf(r.case_id, sizeof r.case_id, "%s", id);
    snprintf(r.kind, sizeof r.kind, "%s", kind);
    snprintf(r.ref, sizeof r.ref, "%s", id + 7);
    snprintf(r.status, sizeof r.status, "%s", status);
    snprintf(r.currency, sizeof r.currency, "USD");
    r.amount = 1850;
    r.psp_time = psp_time;
    r.updated_ms = updated_ms;
    return r;
}

Test(store, keys_are_remembered_and_counted)
{
    char err[256];
    store_t *s = store_open(s_path, err, sizeof err);
    cr_assert_not_null(s, "%s", err);
    char case_id[STORE_CASE_ID_MAX], first[80];
    int64_t count = 0;
    cr_assert_eq(store_key_find(s, "evt_1:P-1", case_id, first, &count), 0);
    cr_assert_eq(store_key_add(s, "evt_1:P-1", "payout-P-1", "validate-abc"), 0);
    cr_assert_eq(store_key_add(s, "evt_1:P-1", "payout-P-1", "validate-other"), 0, "adding twice is harmless");
    cr_assert_eq(store_key_seen_again(s, "evt_1:P-1"), 0);
    cr_assert_eq(store_key_find(s, "evt_1:P-1", case_id, first, &count), 1);
    cr_assert_str_eq(case_id, "payout-P-1");
    cr_assert_str_eq(first, "validate-abc", "the first event keeps the key");
    cr_assert_eq(count, 2);
    store_close(&s);
    cr_assert_null(s);
}

Test(store, state_survives_a_reopen_with_its_applied_seq)
{
    char err[256];
    store_t *s = store_open(s_path, err, sizeof err);
    case_row_t r = s_row("refund-rf_1", "refund", "succeeded", 1700000000, 5);
    cr_assert_eq(store_begin(s), 0);
    cr_assert_eq(store_case_put(s, &r), 0);
    cr_assert_eq(store_set_applied(s, 42), 0);
    cr_assert_eq(store_commit(s), 0);
    store_close(&s);

    s = store_open(s_path, err, sizeof err);
    cr_assert_eq(store_applied_seq(s), 42);
    case_row_t got;
    cr_assert_eq(store_case_get(s, "refund-rf_1", &got), 1);
    cr_assert_str_eq(got.status, "succeeded");
    cr_assert_eq(got.psp_time, 1700000000);
    cr_assert_eq(got.amount, 1850);
    cr_assert_eq(store_case_get(s, "refund-none", &got), 0);
    store_close(&s);
}

Test(store, wipe_forgets_everything_for_a_rebuild)
{
    char err[256];
    store_t *s = store_open(s_path, err, sizeof err);
    case_row_t r = s_row("payout-P-9", "payout", "failed", 1, 1);
    store_case_put(s, &r);
    store_key_add(s, "k", "payout-P-9", "e");
    store_set_applied(s, 7);
    cr_assert_eq(store_wipe(s), 0);
    char case_id[STORE_CASE_ID_MAX], first[80];
    cr_assert_eq(store_applied_seq(s), 0);
    cr_assert_eq(store_key_find(s, "k", case_id, first, NULL), 0);
    cr_assert_eq(store_case_get(s, "payout-P-9", &r), 0);
    store_close(&s);
}

Test(store, pending_refunds_are_the_old_pending_ones_oldest_first)
{
    char err[256];
    store_t *s = store_open(s_path, err, sizeof err);
    case_row_t rows[] = {
        s_row("refund-rf_a", "refund", "pending", 1, 3000),   /* old enough */
        s_row("refund-rf_b", "refund", "pending", 1, 1000),   /* oldest */
        s_row("refund-rf_c", "refund", "pending", 1, 9000),   /* too recent */
        s_row("refund-rf_d", "refund", "succeeded", 1, 1000), /* not pending */
        s_row("payout-P-e1", "payout", "pending", 1, 1000),   /* not a refund */
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        cr_assert_eq(store_case_put(s, &rows[i]), 0);
    case_row_t out[8];
    size_t n = store_pending_refunds(s, 5000, out, 8);
    cr_assert_eq(n, 2);
    cr_assert_str_eq(out[0].case_id, "refund-rf_b");
    cr_assert_str_eq(out[1].case_id, "refund-rf_a");
    cr_assert_eq(store_pending_refunds(s, 5000, out, 1), 1, "bounded by max");
    store_close(&s);
}

Test(store, an_unopenable_path_is_a_clear_error)
{
    char err[256] = "";
    cr_assert_null(store_open("/nonexistent-dir/x/v.sqlite", err, sizeof err));
    cr_assert(strstr(err, "/nonexistent-dir/x/v.sqlite"), "%s", err);
}
