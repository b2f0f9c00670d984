/* test_archiver - audit's archiver thread: sealed segments move, the
 * checkpoints follow as whole lines, a failing archive keeps them live */
#include <criterion/criterion.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "../../audit/archiver.h"
#include "journal.h"

static char s_root[64], s_dir[128], s_ckpt[128];
static journal_t *s_j;
static _Atomic uint64_t s_sealed_upto;

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-archiver-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
    snprintf(s_dir, sizeof s_dir, "%s/audit.0", s_root);
    snprintf(s_ckpt, sizeof s_ckpt, "%s/audit.0.checkpoints", s_root);
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE, .segment_bytes = 4096};
    char err[256];
    s_j = journal_open(s_dir, &o, err, sizeof err);
    cr_assert_not_null(s_j, "%s", err);
    char rec[200];
    memset(rec, 'x', sizeof rec);
    for (int i = 0; i < 400; i++)
        cr_assert_eq(journal_append(s_j, rec, sizeof rec, NULL), 0);
    FILE *f = fopen(s_ckpt, "w");
    fputs("pgcp1 100 aa 1 sig\npgcp1 200 bb 2 sig\npgcp1 300 cc 3 si", f); /* the last line still being written */
    fclose(f);
    atomic_store(&s_sealed_upto, 0);
}

static void s_teardown(void)
{
    journal_close(&s_j);
    char cmd[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(archiver, .init = s_setup, .fini = s_teardown, .timeout = 30);

static uint64_t s_sealed(void *arg)
{
    (void) arg;
    return atomic_load(&s_sealed_upto);
}

static int s_move(void *arg, const char *archive, uint64_t upto, int64_t older_than_s, uint64_t *bytes,
                  uint64_t *zbytes, char *err, size_t errlen)
{
    (void) arg;
    (void) older_than_s; /* every segment here is seconds old: age is journal_archive's, tested there */
    return journal_archive(s_j, archive, upto, (int64_t) time(NULL) + 60, bytes, zbytes, err, errlen);
}

/* s_wait_stats - until fn says the stats are what the test waits for (5 s) */
static archiver_stats_t s_wait_stats(archiver_t *a, bool (*fn)(const archiver_stats_t *))
{
    archiver_stats_t st = {0};
    for (int i = 0; i < 500; i++) {
        archiver_stats(a, &st);
        if (fn(&st))
            break;
        usleep(10000);
    }
    return st;
}

static bool s_moved(const archiver_stats_t *s)
{
    return s->segments > 0;
}
static bool s_failed(const archiver_stats_t *s)
{
    return s->failures > 0;
}

Test(archiver, moves_only_what_a_checkpoint_seals_and_copies_whole_lines)
{
    char archive[160], err[256];
    snprintf(archive, sizeof archive, "%s/archive", s_root);
    archiver_t *a = archiver_new(archive, s_ckpt, 0, s_move, s_sealed, NULL, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    usleep(300000);
    archiver_stats_t st;
    archiver_stats(a, &st);
    cr_assert_eq(st.segments, 0, "nothing sealed, nothing moved");
    atomic_store(&s_sealed_upto, 200);
    s_wait_stats(a, s_moved);                                           /* the next pass, within ARCHIVER_POLL_MS */
    for (int i = 0; i < 500 && journal_first_live_seq(s_j) <= 150; i++) /* ...to its end */
        usleep(10000);
    archiver_stats(a, &st);
    archiver_destroy(&a); /* joins the thread: its pass, the checkpoints' copy included, is over */
    cr_assert_null(a);
    cr_assert_gt(st.segments, 2, "the segments at or below #200 moved (%llu)", (unsigned long long) st.segments);
    cr_assert_gt(st.bytes, st.zbytes, "compressed");
    cr_assert_eq(st.failures, 0);
    cr_assert_leq(journal_first_live_seq(s_j), 201, "nothing past #200 moved");
    cr_assert_gt(journal_first_live_seq(s_j), 150);
    char copy[192];
    snprintf(copy, sizeof copy, "%s/checkpoints", archive);
    FILE *f = fopen(copy, "r");
    cr_assert_not_null(f, "the checkpoints travel with the archive");
    char buf[256] = "";
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = '\0';
    cr_assert_str_eq(buf, "pgcp1 100 aa 1 sig\npgcp1 200 bb 2 sig\n", "whole lines only");
}

Test(archiver, an_archive_it_cannot_write_keeps_the_segments_live)
{
    char archive[256], err[256], blocker[160];
    snprintf(blocker, sizeof blocker, "%s/not-a-dir", s_root);
    FILE *f = fopen(blocker, "w");
    fclose(f);
    snprintf(archive, sizeof archive, "%s/archive", blocker); /* under a plain file: cannot be created */
    atomic_store(&s_sealed_upto, 400);
    uint64_t first = journal_first_live_seq(s_j);
    archiver_t *a = archiver_new(archive, s_ckpt, 0, s_move, s_sealed, NULL, err, sizeof err);
    cr_assert_not_null(a, "%s", err);
    archiver_stats_t st = s_wait_stats(a, s_failed);
    archiver_destroy(&a);
    cr_assert_gt(st.failures, 0, "counted");
    cr_assert_eq(st.segments, 0);
    cr_assert_eq(journal_first_live_seq(s_j), first, "every segment stays live");
    cr_assert_null(archiver_new("relative/archive", s_ckpt, 0, s_move, s_sealed, NULL, err, sizeof err));
    cr_assert(strstr(err, "absolute") != NULL, "%s", err);
}
