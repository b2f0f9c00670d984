/* test_indexer - the case index follows the trail on its own thread: only
 * what is durable, everything that is, committed on stop, and a trail it
 * cannot read reported. */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "../../audit/indexer.h"
#include "journal.h"
#include "trail.h"

static char s_root[64], s_dir[96], s_db[96];
static journal_t *s_j;
static trail_head_t s_head;
static _Atomic uint64_t s_durable_seq; /* what the test says is durable */

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-indexer-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
    snprintf(s_dir, sizeof s_dir, "%s/audit.0", s_root);
    snprintf(s_db, sizeof s_db, "%s/cases.sqlite", s_root);
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    s_j = journal_open(s_dir, &o, err, sizeof err);
    cr_assert_not_null(s_j, "%s", err);
    memset(&s_head, 0, sizeof s_head);
    atomic_store(&s_durable_seq, 0);
}

static void s_teardown(void)
{
    journal_close(&s_j);
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(indexer, .init = s_setup, .fini = s_teardown, .timeout = 60);

/* s_fixed - the durable seq the test set */
static uint64_t s_fixed(void *arg)
{
    (void) arg;
    return atomic_load(&s_durable_seq);
}

/* s_live - the journal's own durable seq (sync none: every record written) */
static uint64_t s_live(void *arg)
{
    return journal_durable_seq(arg);
}

/* s_validated - case payout-P-<n> validated, stored as audit stores it */
static void s_validated(int n)
{
    event_head_t h = {.seq = 1, .time_ms = 1795000000000 + n};
    snprintf(h.id, sizeof h.id, "validate-%024d", n);
    snprintf(h.type, sizeof h.type, "validated");
    snprintf(h.case_key, sizeof h.case_key, "payout-P-%d", n);
    snprintf(h.stage, sizeof h.stage, "validate.0");
    snprintf(h.cause, sizeof h.cause, "rcpt_%d", n);
    event_body_t *b = event_body_new();
    event_body_str(b, "case_id", h.case_key);
    event_body_str(b, "kind", "payout");
    event_body_int(b, "amount", 1000 + n);
    event_body_str(b, "currency", "USD");
    char err[256];
    size_t len, reclen;
    void *raw = event_encode(&h, b, &len, err, sizeof err);
    cr_assert_not_null(raw, "%s", err);
    event_body_destroy(&b);
    event_t *ev = event_decode(raw, len, err, sizeof err);
    void *rec = trail_record_new(&s_head, ev, raw, len, h.time_ms, &reclen);
    cr_assert_eq(journal_append(s_j, rec, reclen, NULL), 0);
    free(rec);
    free(raw);
    event_destroy(&ev);
}

/* s_caught_up - wait (at most 10 s) until the indexer's lag is 0 */
static void s_caught_up(indexer_t *x)
{
    for (int i = 0; i < 1000 && indexer_lag(x) > 0; i++)
        usleep(10 * 1000);
    cr_assert_eq(indexer_lag(x), 0, "the indexer did not catch up");
}

/* s_known - is case payout-P-<n> in the index (a reader's connection)? */
static bool s_known(caseidx_t *r, int n)
{
    char id[32];
    snprintf(id, sizeof id, "payout-P-%d", n);
    char *j = caseidx_case_json(r, id);
    free(j);
    return j != NULL;
}

/* s_open - the writer connection, caught up with the trail as audit starts it */
static caseidx_t *s_open(void)
{
    char err[256];
    uint64_t applied;
    caseidx_t *idx = caseidx_open(s_db, s_dir, false, err, sizeof err);
    cr_assert_not_null(idx, "%s", err);
    cr_assert_eq(caseidx_sync(idx, s_dir, &applied, err, sizeof err), 0, "%s", err);
    return idx;
}

/* only durable records are applied: with 10 written and 5 durable, cases
 * 1..5 are in the index and 6..10 are not; then all 10 once durable */
Test(indexer, applies_what_is_durable_and_no_more)
{
    caseidx_t *idx = s_open();
    char err[256];
    indexer_t *x = indexer_new(idx, s_dir, s_fixed, NULL, 1, err, sizeof err);
    cr_assert_not_null(x, "%s", err);
    for (int n = 1; n <= 10; n++)
        s_validated(n);
    cr_assert_eq(indexer_lag(x), 0, "nothing durable yet: nothing owed");
    atomic_store(&s_durable_seq, 5);
    cr_assert_eq(indexer_lag(x) > 0, true);
    s_caught_up(x);
    caseidx_t *r = caseidx_open(s_db, s_dir, true, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    for (int n = 1; n <= 10; n++)
        cr_assert_eq(s_known(r, n), n <= 5, "case %d", n);
    atomic_store(&s_durable_seq, 10);
    s_caught_up(x);
    for (int n = 1; n <= 10; n++)
        cr_assert(s_known(r, n), "case %d", n);
    indexer_destroy(&x);
    cr_assert_null(x);
    caseidx_close(&r);
    caseidx_close(&idx);
}

/* beside a live writer appending in bursts: every record applied once, the
 * index's position the trail's last record, and a restart's sync finds
 * nothing left to apply */
Test(indexer, follows_a_live_trail)
{
    caseidx_t *idx = s_open();
    char err[256];
    indexer_t *x = indexer_new(idx, s_dir, s_live, s_j, 20, err, sizeof err);
    cr_assert_not_null(x, "%s", err);
    for (int n = 1; n <= 3000; n++) {
        s_validated(n);
        if (n % 500 == 0)
            usleep(5 * 1000);
    }
    s_caught_up(x);
    indexer_destroy(&x);
    cr_assert_eq(caseidx_applied_jseq(idx), journal_last_seq(s_j));
    caseidx_close(&idx);
    uint64_t applied = 99;
    idx = caseidx_open(s_db, s_dir, false, err, sizeof err);
    cr_assert_not_null(idx, "%s", err);
    cr_assert_eq(caseidx_sync(idx, s_dir, &applied, err, sizeof err), 0, "%s", err);
    cr_assert_eq(applied, 0, "all 3000 were committed");
    for (int n = 1; n <= 3000; n += 499)
        cr_assert(s_known(idx, n), "case %d", n);
    caseidx_close(&idx);
}

/* stopping with records it has not reached: it commits what it applied,
 * and the next start's sync applies the rest, each once */
Test(indexer, stop_leaves_the_rest_to_the_next_start)
{
    caseidx_t *idx = s_open();
    char err[256];
    indexer_t *x = indexer_new(idx, s_dir, s_fixed, NULL, 1, err, sizeof err);
    cr_assert_not_null(x, "%s", err);
    for (int n = 1; n <= 20; n++)
        s_validated(n);
    atomic_store(&s_durable_seq, 8);
    s_caught_up(x);
    indexer_destroy(&x);
    cr_assert_eq(caseidx_applied_jseq(idx), 8);
    caseidx_close(&idx);
    uint64_t applied = 0;
    idx = caseidx_open(s_db, s_dir, false, err, sizeof err);
    cr_assert_eq(caseidx_sync(idx, s_dir, &applied, err, sizeof err), 0, "%s", err);
    cr_assert_eq(applied, 12);
    cr_assert(s_known(idx, 20));
    caseidx_close(&idx);
}

/* a trail it cannot read: indexer_failed says so and why */
Test(indexer, an_unreadable_trail_is_reported)
{
    caseidx_t *idx = s_open();
    for (int n = 1; n <= 4; n++)
        s_validated(n);
    journal_close(&s_j);
    /* flip a byte inside the second record's payload: its checksum fails
     * and valid records follow, so it is corruption, not a torn tail */
    char path[160];
    snprintf(path, sizeof path, "%s/%020d.seg", s_dir, 1);
    FILE *f = fopen(path, "r+b");
    cr_assert_not_null(f, "%s", path);
    cr_assert_eq(fseek(f, 0, SEEK_END), 0);
    long size = ftell(f);
    cr_assert_eq(fseek(f, 8 + (size - 8) / 4 + (size - 8) / 8, SEEK_SET), 0);
    int c = fgetc(f);
    cr_assert_eq(fseek(f, -1, SEEK_CUR), 0);
    fputc(c ^ 0x5a, f);
    fclose(f);
    atomic_store(&s_durable_seq, 4);
    char err[256] = "";
    indexer_t *x = indexer_new(idx, s_dir, s_fixed, NULL, 1, err, sizeof err);
    cr_assert_not_null(x, "%s", err);
    bool failed = false;
    for (int i = 0; i < 1000 && !(failed = indexer_failed(x, err, sizeof err)); i++)
        usleep(10 * 1000);
    cr_assert(failed, "the indexer did not report the corruption");
    cr_assert(strstr(err, "journal") != NULL, "%s", err);
    cr_assert_gt(indexer_lag(x), 0, "what it could not read is still owed");
    indexer_destroy(&x);
    caseidx_close(&idx);
}
