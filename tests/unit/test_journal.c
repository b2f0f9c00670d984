/* test_journal - the journal's API, on-disk format, recovery and group commit.
 *
 * Each test runs in its own directory under /tmp (removed afterwards). The
 * helpers below show the usual shapes: open, append, wait until durable,
 * read back with a reader, reopen. Some tests edit segment files by hand to
 * play a crash (torn tail) or a disk error (a flipped byte); they rely on the
 * on-disk format of journal.h: an 8-byte magic, then records of
 * u32 len | u32 crc | u64 seq | payload, little endian.
 */
#include "journal.h"

#include <criterion/criterion.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

static char s_root[64];
static char s_dir[128];

/* s_setup - a fresh temporary root; the journal dir inside does not exist
 * yet, so journal_open's mkdir is exercised too */
static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-journal-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
    snprintf(s_dir, sizeof s_dir, "%s/j", s_root);
}

/* s_rm - nftw callback: remove whatever it is given (depth first) */
static int s_rm(const char *path, const struct stat *st, int flag, struct FTW *ftw)
{
    (void) st, (void) flag, (void) ftw;
    return remove(path);
}

/* s_teardown - leave /tmp as we found it */
static void s_teardown(void)
{
    if (s_root[0])
        nftw(s_root, s_rm, 16, FTW_DEPTH | FTW_PHYS);
}

TestSuite(journal, .init = s_setup, .fini = s_teardown, .timeout = 60);

/* s_payload - deterministic content for record seq: length 1..maxlen, bytes
 * that differ by seq and position, so a misplaced byte is caught */
static size_t s_payload(uint64_t seq, unsigned char *buf, size_t maxlen)
{
    size_t len = 1 + (size_t) ((seq * 2654435761u) % maxlen);
    for (size_t j = 0; j < len; j++)
        buf[j] = (unsigned char) (seq * 131 + j * 7 + (seq >> 8));
    return len;
}

/* s_open - open s_dir with the given sync mode and segment size */
static journal_t *s_open(journal_sync_t sync, size_t segment_bytes)
{
    journal_opts_t opts = {.sync = sync, .segment_bytes = segment_bytes};
    char err[512];
    journal_t *j = journal_open(s_dir, &opts, err, sizeof err);
    cr_assert_not_null(j, "journal_open: %s", err);
    return j;
}

/* s_append_range - append the s_payload records first..last, checking the
 * seq each one is given */
static void s_append_range(journal_t *j, uint64_t first, uint64_t last, size_t maxlen)
{
    unsigned char buf[4096];
    cr_assert(maxlen <= sizeof buf);
    for (uint64_t seq = first; seq <= last; seq++) {
        size_t len = s_payload(seq, buf, maxlen);
        uint64_t got = 0;
        cr_assert_eq(journal_append(j, buf, len, &got), 0);
        cr_assert_eq(got, seq);
    }
}

/* s_expect_range - read from `from` and expect exactly the s_payload
 * records from..last, then the end */
static void s_expect_range(uint64_t from, uint64_t last, size_t maxlen)
{
    char err[512];
    journal_reader_t *r = journal_reader_new(s_dir, from, err, sizeof err);
    cr_assert_not_null(r, "journal_reader_new: %s", err);
    unsigned char want[4096];
    const void *data;
    size_t len;
    uint64_t seq;
    for (uint64_t expect = from; expect <= last; expect++) {
        int rc = journal_reader_next(r, &data, &len, &seq);
        cr_assert_eq(rc, 1, "seq %llu: rc %d (%s)", (unsigned long long) expect, rc, journal_reader_error(r));
        cr_assert_eq(seq, expect);
        size_t wlen = s_payload(seq, want, maxlen);
        cr_assert_eq(len, wlen, "seq %llu", (unsigned long long) seq);
        cr_assert(memcmp(data, want, len) == 0, "seq %llu: payload differs", (unsigned long long) seq);
    }
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 0, "%s", journal_reader_error(r));
    journal_reader_destroy(&r);
    cr_assert_null(r);
}

/* s_seg_path - path of the segment whose first record is seq */
static void s_seg_path(char *out, size_t outlen, uint64_t seq)
{
    snprintf(out, outlen, "%s/%020llu.seg", s_dir, (unsigned long long) seq);
}

/* s_slurp - whole file into a malloc'd buffer */
static unsigned char *s_slurp(const char *path, size_t *len)
{
    FILE *f = fopen(path, "rb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    fseek(f, 0, SEEK_END);
    long n = ftell(f);
    fseek(f, 0, SEEK_SET);
    unsigned char *buf = malloc((size_t) n + 1);
    cr_assert_not_null(buf);
    cr_assert_eq(fread(buf, 1, (size_t) n, f), (size_t) n);
    fclose(f);
    *len = (size_t) n;
    return buf;
}

/* s_spit - replace a file's content */
static void s_spit(const char *path, const unsigned char *buf, size_t len)
{
    FILE *f = fopen(path, "wb");
    cr_assert_not_null(f, "%s: %s", path, strerror(errno));
    cr_assert_eq(fwrite(buf, 1, len, f), len);
    cr_assert_eq(fclose(f), 0);
}

/* s_count_segments - how many *.seg files the journal has */
static int s_count_segments(void)
{
    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    int n = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0)
            n++;
    }
    closedir(d);
    return n;
}

/* s_record_offsets - parse a segment as the format says: the byte offset
 * at which each record starts; returns how many there are */
static size_t s_record_offsets(const unsigned char *seg, size_t size, size_t *offs, size_t max)
{
    cr_assert(size >= 8 && memcmp(seg, "PGJRNL01", 8) == 0, "segment magic");
    size_t n = 0, off = 8;
    while (off + 16 <= size && n < max) {
        uint32_t len = (uint32_t) seg[off] | (uint32_t) seg[off + 1] << 8 | (uint32_t) seg[off + 2] << 16 |
                       (uint32_t) seg[off + 3] << 24;
        offs[n++] = off;
        off += 16 + len;
    }
    cr_assert_eq(off, size, "records tile the segment");
    return n;
}

/* ------------------------------------------------------------------ */

/* the sync policy comes from config text */
Test(journal, sync_parse)
{
    journal_sync_t s = JOURNAL_SYNC_NONE;
    cr_assert_eq(journal_sync_parse("always", &s), 0);
    cr_assert_eq(s, JOURNAL_SYNC_ALWAYS);
    cr_assert_eq(journal_sync_parse("batch", &s), 0);
    cr_assert_eq(s, JOURNAL_SYNC_BATCH);
    cr_assert_eq(journal_sync_parse("none", &s), 0);
    cr_assert_eq(s, JOURNAL_SYNC_NONE);
    s = JOURNAL_SYNC_ALWAYS;
    cr_assert_eq(journal_sync_parse("BATCH", &s), -1);
    cr_assert_eq(journal_sync_parse("", &s), -1);
    cr_assert_eq(journal_sync_parse("batch ", &s), -1);
    cr_assert_eq(journal_sync_parse("fsync", &s), -1);
    cr_assert_eq(journal_sync_parse(NULL, &s), -1);
    cr_assert_eq(s, JOURNAL_SYNC_ALWAYS, "a rejected value leaves *out alone");
}

/* an empty record and one over max_record_bytes are refused with EMSGSIZE
 * and use up no seq; exactly max_record_bytes is fine */
Test(journal, append_size_limits)
{
    journal_opts_t opts = {.sync = JOURNAL_SYNC_NONE, .max_record_bytes = 1000};
    char err[512];
    journal_t *j = journal_open(s_dir, &opts, err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    static unsigned char buf[1001];
    uint64_t seq = 99;
    errno = 0;
    cr_assert_eq(journal_append(j, buf, 0, &seq), -1);
    cr_assert_eq(errno, EMSGSIZE);
    errno = 0;
    cr_assert_eq(journal_append(j, buf, 1001, &seq), -1);
    cr_assert_eq(errno, EMSGSIZE);
    cr_assert_eq(seq, 99, "seq_out untouched on refusal");
    cr_assert_eq(journal_last_seq(j), 0);
    cr_assert_eq(journal_append(j, buf, 1000, &seq), 0);
    cr_assert_eq(seq, 1);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.appends, 1);
    journal_close(&j);
    cr_assert_null(j);
}

/* open creates the directory, an empty journal reads as empty, and the
 * getters say where we are */
Test(journal, open_empty)
{
    journal_t *j = s_open(JOURNAL_SYNC_BATCH, 0);
    struct stat st;
    cr_assert_eq(stat(s_dir, &st), 0);
    cr_assert(S_ISDIR(st.st_mode));
    cr_assert_str_eq(journal_dir(j), s_dir);
    cr_assert_eq(journal_last_seq(j), 0);
    cr_assert_eq(journal_durable_seq(j), 0);
    s_expect_range(1, 0, 1);
    journal_close(&j);
    j = s_open(JOURNAL_SYNC_BATCH, 0);
    cr_assert_eq(journal_last_seq(j), 0);
    journal_close(&j);
}

/* a journal's epoch: drawn once, kept across opens, readable beside the
 * writer; another directory (a journal started again) has another; an
 * edited epoch file stops the open */
Test(journal, epoch_names_this_life_of_the_journal)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    uint64_t e = journal_epoch(j), read = 0;
    cr_expect_neq(e, 0);
    cr_assert_eq(journal_dir_epoch(s_dir, &read), 0);
    cr_expect_eq(read, e, "a reader sees the writer's epoch");
    journal_close(&j);
    j = s_open(JOURNAL_SYNC_NONE, 0);
    cr_expect_eq(journal_epoch(j), e, "the same journal reopened: the same epoch");
    journal_close(&j);
    char other[160], err[512], path[200];
    snprintf(other, sizeof other, "%s/again", s_root);
    journal_t *k = journal_open(other, NULL, err, sizeof err);
    cr_assert_not_null(k, "%s", err);
    cr_expect_neq(journal_epoch(k), e, "a journal started again has another epoch");
    journal_close(&k);
    cr_expect_neq(journal_dir_epoch(s_root, &read), 0, "no epoch file: -1");
    snprintf(path, sizeof path, "%s/epoch", s_dir);
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs("not hex at all!!\n", f);
    fclose(f);
    cr_expect_null(journal_open(s_dir, NULL, err, sizeof err));
    cr_expect(strstr(err, "epoch is not 16 hex digits"), "%s", err);
}

/* only one writer per directory: a second open is refused while the
 * first is open (readers are always welcome) */
Test(journal, second_writer_refused)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    char err[512];
    journal_t *k = journal_open(s_dir, NULL, err, sizeof err);
    cr_assert_null(k);
    cr_assert(strstr(err, "already open") != NULL, "%s", err);
    journal_close(&j);
    k = journal_open(s_dir, NULL, err, sizeof err);
    cr_assert_not_null(k, "%s", err);
    journal_close(&k);
}

/* 100,000 records of 1..600 bytes survive close and reopen byte for byte,
 * and numbering carries on where it stopped */
Test(journal, round_trip_100k)
{
    enum { N = 100000, MAXLEN = 600 };
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    s_append_range(j, 1, N, MAXLEN);
    cr_assert_eq(journal_last_seq(j), N);
    cr_assert_eq(journal_durable_seq(j), N, "sync=none counts written as durable");
    journal_close(&j);

    j = s_open(JOURNAL_SYNC_NONE, 0);
    cr_assert_eq(journal_last_seq(j), N);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.truncated_bytes, 0);
    s_expect_range(1, N, MAXLEN);
    s_expect_range(N - 5, N, MAXLEN);
    s_append_range(j, N + 1, N + 1, MAXLEN);
    journal_close(&j);
    s_expect_range(N - 1, N + 1, MAXLEN);
}

/* a crash in the middle of writing the last record leaves any prefix of
 * it on disk: at every cut, open keeps the N-1 complete records, truncates
 * the rest, and the next append is seq N again */
Test(journal, torn_tail_every_offset)
{
    enum { N = 20, MAXLEN = 30 };
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    s_append_range(j, 1, N, MAXLEN);
    journal_close(&j);

    char path[256];
    s_seg_path(path, sizeof path, 1);
    size_t size;
    unsigned char *orig = s_slurp(path, &size);
    size_t offs[N + 1];
    cr_assert_eq(s_record_offsets(orig, size, offs, N + 1), N);
    size_t start = offs[N - 1];

    for (size_t cut = start; cut < size; cut++) {
        s_spit(path, orig, cut);
        j = s_open(JOURNAL_SYNC_NONE, 0);
        cr_assert_eq(journal_last_seq(j), N - 1, "cut at %zu", cut);
        journal_stats_t st;
        journal_stats(j, &st);
        cr_assert_eq(st.truncated_bytes, cut - start, "cut at %zu", cut);
        struct stat fst;
        cr_assert_eq(stat(path, &fst), 0);
        cr_assert_eq((size_t) fst.st_size, start, "truncated back to the last good record");
        s_expect_range(1, N - 1, MAXLEN);
        s_append_range(j, N, N, MAXLEN);
        journal_close(&j);
        s_expect_range(1, N, MAXLEN);
    }
    free(orig);
}

/* a crash can also leave the file longer with zeros where data never
 * landed: no valid record follows, so it is a torn tail too */
Test(journal, zero_filled_tail)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    s_append_range(j, 1, 10, 50);
    journal_close(&j);
    char path[256];
    s_seg_path(path, sizeof path, 1);
    FILE *f = fopen(path, "ab");
    cr_assert_not_null(f);
    static const unsigned char zeros[100];
    cr_assert_eq(fwrite(zeros, 1, sizeof zeros, f), sizeof zeros);
    fclose(f);

    j = s_open(JOURNAL_SYNC_NONE, 0);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.truncated_bytes, 100);
    cr_assert_eq(journal_last_seq(j), 10);
    journal_close(&j);
    s_expect_range(1, 10, 50);
}

/* a crash right after creating a segment leaves a file too short for its
 * magic: it is removed and made again on the next append */
Test(journal, short_last_segment_removed)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    s_append_range(j, 1, 5, 50);
    journal_close(&j);
    char path[256];
    s_seg_path(path, sizeof path, 6);
    s_spit(path, (const unsigned char *) "PGJ", 3);
    cr_assert_eq(s_count_segments(), 2);

    j = s_open(JOURNAL_SYNC_NONE, 0);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.truncated_bytes, 3);
    cr_assert_eq(journal_last_seq(j), 5);
    cr_assert_eq(s_count_segments(), 1);
    s_append_range(j, 6, 6, 50);
    journal_close(&j);
    s_expect_range(1, 6, 50);
}

/* one flipped byte in a record in the middle - in its header or its
 * payload - is corruption, not a torn tail: open refuses, naming the file
 * and byte offset, and leaves the file as it is; a reader stops there with
 * -1 instead of skipping it */
Test(journal, flipped_byte_in_middle_refuses)
{
    enum { N = 30, K = 15, MAXLEN = 40 };
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    s_append_range(j, 1, N, MAXLEN);
    journal_close(&j);

    char path[256];
    s_seg_path(path, sizeof path, 1);
    size_t size;
    unsigned char *orig = s_slurp(path, &size);
    size_t offs[N];
    cr_assert_eq(s_record_offsets(orig, size, offs, N), N);
    size_t rec = offs[K - 1];
    size_t rec_end = offs[K];
    unsigned char *bad = malloc(size);
    cr_assert_not_null(bad);

    /* every header byte (len, crc, seq) and the payload's first, middle, last */
    size_t targets[20];
    size_t nt = 0;
    for (size_t i = 0; i < 16; i++)
        targets[nt++] = rec + i;
    targets[nt++] = rec + 16;
    targets[nt++] = rec + 16 + (rec_end - rec - 16) / 2;
    targets[nt++] = rec_end - 1;

    char want[64];
    snprintf(want, sizeof want, "at byte %zu ", rec);
    for (size_t t = 0; t < nt; t++) {
        memcpy(bad, orig, size);
        bad[targets[t]] ^= 0xff;
        s_spit(path, bad, size);

        char err[512];
        journal_opts_t opts = {.sync = JOURNAL_SYNC_NONE};
        j = journal_open(s_dir, &opts, err, sizeof err);
        cr_assert_null(j, "flip at %zu must be refused", targets[t]);
        cr_assert(strstr(err, want) != NULL, "flip at %zu: %s", targets[t], err);
        cr_assert(strstr(err, "00000000000000000001.seg") != NULL, "%s", err);
        cr_assert(strstr(err, "expected seq 15") != NULL, "%s", err);
        cr_assert(strstr(err, "refusing to start") != NULL, "%s", err);

        size_t now_len;
        unsigned char *now = s_slurp(path, &now_len);
        cr_assert_eq(now_len, size, "a refused open must not truncate");
        cr_assert(memcmp(now, bad, size) == 0);
        free(now);

        journal_reader_t *r = journal_reader_new(s_dir, 1, err, sizeof err);
        cr_assert_not_null(r, "%s", err);
        const void *data;
        size_t len;
        uint64_t seq;
        for (int i = 1; i < K; i++)
            cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 1);
        cr_assert_eq(journal_reader_next(r, &data, &len, &seq), -1, "flip at %zu: reader must not skip", targets[t]);
        cr_assert(strstr(journal_reader_error(r), want) != NULL, "%s", journal_reader_error(r));
        cr_assert_eq(journal_reader_next(r, &data, &len, &seq), -1, "errors are sticky");
        journal_reader_destroy(&r);
    }
    free(bad);
    free(orig);
}

/* a complete, checksummed record with the wrong seq at the end (here a
 * copy of record 5) is never a torn tail: a crash cannot write one */
Test(journal, wrong_seq_at_tail_refuses)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    s_append_range(j, 1, 10, 50);
    journal_close(&j);
    char path[256];
    s_seg_path(path, sizeof path, 1);
    size_t size;
    unsigned char *seg = s_slurp(path, &size);
    size_t offs[10];
    cr_assert_eq(s_record_offsets(seg, size, offs, 10), 10);
    unsigned char *longer = malloc(size + (offs[5] - offs[4]));
    cr_assert_not_null(longer);
    memcpy(longer, seg, size);
    memcpy(longer + size, seg + offs[4], offs[5] - offs[4]);
    s_spit(path, longer, size + (offs[5] - offs[4]));

    char err[512], want[64];
    cr_assert_null(journal_open(s_dir, NULL, err, sizeof err));
    snprintf(want, sizeof want, "at byte %zu (expected seq 11)", size);
    cr_assert(strstr(err, want) != NULL, "%s", err);
    cr_assert(strstr(err, "has seq 5") != NULL, "%s", err);
    free(longer);
    free(seg);
}

/* a bad record in a segment that is not the last is corruption even with
 * nothing valid after it in that segment */
Test(journal, corrupt_in_earlier_segment_refuses)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 512);
    s_append_range(j, 1, 60, 40);
    journal_close(&j);
    cr_assert_gt(s_count_segments(), 2);

    char path[256];
    s_seg_path(path, sizeof path, 1);
    size_t size;
    unsigned char *seg = s_slurp(path, &size);
    seg[size - 1] ^= 0x01; /* payload of the segment's last record */
    s_spit(path, seg, size);

    char err[512];
    cr_assert_null(journal_open(s_dir, NULL, err, sizeof err));
    cr_assert(strstr(err, "checksum mismatch") != NULL, "%s", err);
    cr_assert(strstr(err, "not a torn tail") != NULL, "%s", err);
    size_t now_len;
    free(s_slurp(path, &now_len));
    cr_assert_eq(now_len, size);
    free(seg);
}

/* segment names must agree with the records in them: a gap or a rename
 * is refused rather than silently renumbered */
Test(journal, misnamed_segment_refuses)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 512);
    s_append_range(j, 1, 60, 40);
    journal_close(&j);

    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    uint64_t best = 0;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long v;
        if (sscanf(de->d_name, "%20llu.seg", &v) == 1 && v > 1 && (best == 0 || v < best))
            best = v;
    }
    closedir(d);
    cr_assert_gt(best, 1);
    char from[256], to[256];
    s_seg_path(from, sizeof from, best);
    s_seg_path(to, sizeof to, best + 1);
    cr_assert_eq(rename(from, to), 0);

    char err[512];
    cr_assert_null(journal_open(s_dir, NULL, err, sizeof err));
    cr_assert(strstr(err, "missing or misnamed") != NULL, "%s", err);
}

/* group commit: 8 threads append and wait until durable; fdatasyncs are
 * shared, so there are fewer of them than appends */
typedef struct {
    journal_t *j;
    int id;
    int count;
    int failures;
} s_writer_t;

/* s_writer_run - append count records "t<id>:<i>" and wait for each */
static void *s_writer_run(void *arg)
{
    s_writer_t *w = arg;
    for (int i = 0; i < w->count; i++) {
        char rec[32];
        int n = snprintf(rec, sizeof rec, "t%d:%d", w->id, i);
        uint64_t seq;
        if (journal_append(w->j, rec, (size_t) n, &seq) != 0) {
            w->failures++;
            continue;
        }
        journal_wait_durable(w->j, seq);
        if (journal_durable_seq(w->j) < seq)
            w->failures++;
    }
    return NULL;
}

/* s_run_writers - nthreads writers of count records each on j */
static void s_run_writers(journal_t *j, int nthreads, int count)
{
    pthread_t th[8];
    s_writer_t w[8];
    cr_assert(nthreads <= 8);
    for (int t = 0; t < nthreads; t++) {
        w[t] = (s_writer_t){.j = j, .id = t, .count = count};
        cr_assert_eq(pthread_create(&th[t], NULL, s_writer_run, &w[t]), 0);
    }
    for (int t = 0; t < nthreads; t++) {
        pthread_join(th[t], NULL);
        cr_assert_eq(w[t].failures, 0, "writer %d", t);
    }
}

/* s_expect_writers - every "t<id>:<i>" record exactly once, seqs 1..n */
static void s_expect_writers(int nthreads, int count)
{
    char err[512];
    journal_reader_t *r = journal_reader_new(s_dir, 1, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    static unsigned char seen[8][500];
    memset(seen, 0, sizeof seen);
    const void *data;
    size_t len;
    uint64_t seq, expect = 1;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
        cr_assert_eq(seq, expect++);
        char rec[32];
        cr_assert_lt(len, sizeof rec);
        memcpy(rec, data, len);
        rec[len] = '\0';
        int t, i;
        cr_assert_eq(sscanf(rec, "t%d:%d", &t, &i), 2, "%s", rec);
        cr_assert(t >= 0 && t < nthreads && i >= 0 && i < count, "%s", rec);
        cr_assert_eq(seen[t][i], 0, "%s twice", rec);
        seen[t][i] = 1;
    }
    cr_assert_eq(rc, 0, "%s", journal_reader_error(r));
    cr_assert_eq(expect - 1, (uint64_t) nthreads * (uint64_t) count);
    journal_reader_destroy(&r);
}

Test(journal, group_commit_batch)
{
    enum { THREADS = 8, EACH = 500 };
    journal_t *j = s_open(JOURNAL_SYNC_BATCH, 0);
    s_run_writers(j, THREADS, EACH);
    cr_assert_eq(journal_last_seq(j), THREADS * EACH);
    cr_assert_eq(journal_durable_seq(j), THREADS * EACH);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.appends, THREADS * EACH);
    cr_assert_gt(st.syncs, 0);
    cr_assert_lt(st.syncs, st.appends, "syncs %llu: group commit shares them", (unsigned long long) st.syncs);
    cr_assert_geq(st.sync_ns_total, st.sync_ns_max);
    cr_assert_gt(st.sync_ns_max, 0);
    journal_close(&j);
    s_expect_writers(THREADS, EACH);
}

/* group commit across segment rotation: rotation waits for a running
 * sync, and nothing is lost or reordered at the segment boundaries */
Test(journal, group_commit_with_rotation)
{
    enum { THREADS = 4, EACH = 300 };
    journal_t *j = s_open(JOURNAL_SYNC_BATCH, 1024);
    s_run_writers(j, THREADS, EACH);
    cr_assert_eq(journal_durable_seq(j), THREADS * EACH);
    journal_close(&j);
    cr_assert_gt(s_count_segments(), 10);
    s_expect_writers(THREADS, EACH);
    j = s_open(JOURNAL_SYNC_BATCH, 1024);
    cr_assert_eq(journal_last_seq(j), THREADS * EACH);
    journal_close(&j);
}

/* journal_usage: the live segments and what they take on disk */
Test(journal, usage_counts_live_segments_and_bytes)
{
    journal_t *j = s_open(JOURNAL_SYNC_BATCH, 1024);
    size_t segments = 99;
    uint64_t bytes = 99;
    char err[256];
    cr_assert_eq(journal_usage(j, &segments, &bytes, err, sizeof err), 0, "%s", err);
    cr_expect_eq(segments, 1, "an empty journal has its first segment");
    unsigned char rec[100] = {0};
    for (int i = 0; i < 50; i++)
        cr_assert_eq(journal_append(j, rec, sizeof rec, NULL), 0);
    journal_sync(j);
    cr_assert_eq(journal_usage(j, &segments, &bytes, err, sizeof err), 0, "%s", err);
    cr_expect_eq((uint64_t) segments, (uint64_t) s_count_segments());
    cr_expect_gt(segments, 3, "1 KiB segments: 50 records of 100 bytes rotate");
    cr_expect_geq(bytes, 50 * sizeof rec, "every record is on disk: %llu", (unsigned long long) bytes);
    journal_close(&j);
}

/* a write the disk refuses is fatal: the process exits with
 * JOURNAL_EXIT_SYNC_FAILED instead of going on (here a file size limit
 * makes write(2) fail with EFBIG) */
Test(journal, write_failure_exits, .exit_code = JOURNAL_EXIT_SYNC_FAILED)
{
    atexit(s_teardown); /* .fini does not run after exit() */
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    signal(SIGXFSZ, SIG_IGN);
    struct rlimit lim = {.rlim_cur = 4096, .rlim_max = RLIM_INFINITY};
    cr_assert_eq(setrlimit(RLIMIT_FSIZE, &lim), 0);
    static unsigned char buf[1000];
    for (int i = 0; i < 10; i++)
        journal_append(j, buf, sizeof buf, NULL);
    cr_assert_fail("appending past the file size limit did not exit");
}

/* journal_sync makes everything written so far durable in one go */
Test(journal, batch_sync_covers_all_written)
{
    journal_t *j = s_open(JOURNAL_SYNC_BATCH, 0);
    s_append_range(j, 1, 50, 100);
    cr_assert_eq(journal_last_seq(j), 50);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.syncs, 0, "batch appends do not sync by themselves");
    journal_sync(j);
    cr_assert_eq(journal_durable_seq(j), 50);
    journal_stats(j, &st);
    cr_assert_eq(st.syncs, 1);
    journal_wait_durable(j, 17); /* already durable: no new sync */
    journal_stats(j, &st);
    cr_assert_eq(st.syncs, 1);
    journal_close(&j);
}

/* sync=always: every append is durable when it returns */
Test(journal, sync_always)
{
    enum { THREADS = 4, EACH = 40 };
    journal_t *j = s_open(JOURNAL_SYNC_ALWAYS, 0);
    uint64_t seq;
    cr_assert_eq(journal_append(j, "x", 1, &seq), 0);
    cr_assert_eq(journal_durable_seq(j), seq);
    s_run_writers(j, THREADS, EACH);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.appends, 1 + THREADS * EACH);
    cr_assert_geq(st.syncs, st.appends);
    journal_close(&j);
}

/* sync=none: never an fdatasync; written counts as durable */
Test(journal, sync_none)
{
    enum { THREADS = 8, EACH = 500 };
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 0);
    s_run_writers(j, THREADS, EACH);
    journal_sync(j);
    journal_stats_t st;
    journal_stats(j, &st);
    cr_assert_eq(st.appends, THREADS * EACH);
    cr_assert_eq(st.syncs, 0);
    cr_assert_eq(journal_durable_seq(j), THREADS * EACH);
    journal_close(&j);
    s_expect_writers(THREADS, EACH);
}

/* small segments: many files, none over segment_bytes, named by their
 * first seq; a reader can start at any seq; reopen finds everything */
Test(journal, segment_rotation)
{
    enum { N = 3000, MAXLEN = 300, SEG = 4096 };
    journal_t *j = s_open(JOURNAL_SYNC_BATCH, SEG);
    s_append_range(j, 1, N, MAXLEN);
    journal_sync(j);
    cr_assert_eq(journal_durable_seq(j), N);
    journal_close(&j);

    int nseg = s_count_segments();
    cr_assert_gt(nseg, 50, "%d segments", nseg);
    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        unsigned long long first;
        if (sscanf(de->d_name, "%20llu.seg", &first) != 1)
            continue;
        char path[256];
        s_seg_path(path, sizeof path, first);
        size_t size;
        unsigned char *seg = s_slurp(path, &size);
        cr_assert_leq(size, SEG, "%s", de->d_name);
        uint64_t seq0 = 0;
        for (int i = 0; i < 8; i++)
            seq0 |= (uint64_t) seg[8 + 8 + i] << (8 * i);
        cr_assert_eq(seq0, first, "%s starts with seq %llu", de->d_name, (unsigned long long) seq0);
        free(seg);
    }
    closedir(d);

    s_expect_range(1, N, MAXLEN);
    s_expect_range(1234, N, MAXLEN);
    s_expect_range(N, N, MAXLEN);
    s_expect_range(N + 1, N, MAXLEN); /* past the end: nothing */

    j = s_open(JOURNAL_SYNC_BATCH, SEG);
    cr_assert_eq(journal_last_seq(j), N);
    /* a record bigger than a segment goes alone into a fresh one */
    static unsigned char big[3 * SEG];
    memset(big, 'B', sizeof big);
    uint64_t seq;
    cr_assert_eq(journal_append(j, big, sizeof big, &seq), 0);
    cr_assert_eq(seq, N + 1);
    cr_assert_eq(journal_append(j, "after", 5, &seq), 0);
    journal_close(&j);
    char path[256];
    s_seg_path(path, sizeof path, N + 1);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq((size_t) st.st_size, 8 + 16 + sizeof big);
    s_seg_path(path, sizeof path, N + 2);
    cr_assert_eq(stat(path, &st), 0, "the record after the big one starts another segment");

    char err[512];
    journal_reader_t *r = journal_reader_new(s_dir, N + 1, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    const void *data;
    size_t len;
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 1, "%s", journal_reader_error(r));
    cr_assert_eq(seq, N + 1);
    cr_assert_eq(len, sizeof big);
    cr_assert(memcmp(data, big, len) == 0);
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 1);
    cr_assert_eq(seq, N + 2);
    cr_assert_eq(len, 5);
    cr_assert(memcmp(data, "after", 5) == 0);
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 0);
    journal_reader_destroy(&r);

    j = s_open(JOURNAL_SYNC_BATCH, SEG);
    cr_assert_eq(journal_last_seq(j), N + 2);
    journal_close(&j);
}

/* a reader follows a live writer: 0 means "nothing more yet", and later
 * calls pick up new records, across segment boundaries too */
Test(journal, reader_follows_writer)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 1024);
    char err[512];
    journal_reader_t *r = journal_reader_new(s_dir, 1, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    const void *data;
    size_t len;
    uint64_t seq, next = 1;
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 0);
    unsigned char want[128];
    for (uint64_t upto = 3; upto <= 300; upto += 37) {
        s_append_range(j, journal_last_seq(j) + 1, upto, 100);
        int rc;
        while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
            cr_assert_eq(seq, next++);
            size_t wlen = s_payload(seq, want, 100);
            cr_assert_eq(len, wlen);
            cr_assert(memcmp(data, want, len) == 0);
        }
        cr_assert_eq(rc, 0, "%s", journal_reader_error(r));
        cr_assert_eq(next, upto + 1);
    }
    cr_assert_gt(s_count_segments(), 5);
    journal_reader_destroy(&r);
    journal_close(&j);
}

/* a reader beside a writer that was killed mid-record and restarted: the
 * reader's read-ahead held the torn record's bytes, the restarted writer
 * cut them and wrote a longer record in their place; the reader reads the
 * new record, not "checksum mismatch" (e2e_backbone saw it once) */
Test(journal, reader_rereads_a_torn_tail_written_over)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 1 << 20);
    unsigned char small[100], big[300];
    memset(small, 'a', sizeof small);
    memset(big, 'b', sizeof big);
    uint64_t seq;
    cr_assert_eq(journal_append(j, "one", 3, &seq), 0);
    cr_assert_eq(journal_append(j, small, sizeof small, &seq), 0);
    cr_assert_eq(seq, 2);
    journal_close(&j);
    char path[256];
    s_seg_path(path, sizeof path, 1);
    struct stat st;
    cr_assert_eq(stat(path, &st), 0);
    cr_assert_eq(truncate(path, st.st_size - 40), 0, "record 2 torn: its last 40 bytes never written");
    char err[512];
    journal_reader_t *r = journal_reader_new(s_dir, 1, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    const void *data;
    size_t len;
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 1);
    cr_assert_eq(seq, 1);
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 0, "a torn tail reads as the end for now");
    j = s_open(JOURNAL_SYNC_NONE, 1 << 20); /* the restart: the torn tail is cut */
    cr_assert_eq(journal_append(j, big, sizeof big, &seq), 0);
    cr_assert_eq(seq, 2);
    int rc = journal_reader_next(r, &data, &len, &seq);
    cr_assert_eq(rc, 1, "the record written over the torn one is read: %s", rc < 0 ? journal_reader_error(r) : "");
    cr_assert_eq(seq, 2);
    cr_assert_eq(len, sizeof big);
    cr_assert(memcmp(data, big, len) == 0);
    journal_reader_destroy(&r);
    journal_close(&j);
}

/* a reader over a missing directory fails with a reason */
Test(journal, reader_missing_dir)
{
    char err[512] = "";
    cr_assert_null(journal_reader_new(s_dir, 1, err, sizeof err));
    cr_assert(strstr(err, s_dir) != NULL, "%s", err);
}

/* s_first_segment - the seq the oldest segment file starts at */
static uint64_t s_first_segment(void)
{
    DIR *d = opendir(s_dir);
    cr_assert_not_null(d);
    uint64_t first = UINT64_MAX;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        size_t l = strlen(de->d_name);
        if (l > 4 && strcmp(de->d_name + l - 4, ".seg") == 0) {
            uint64_t s = strtoull(de->d_name, NULL, 10);
            first = s < first ? s : first;
        }
    }
    closedir(d);
    return first;
}

/* retirement removes a prefix of whole segments, bounded by seq and by
 * age, never the one being written; the journal reopens and reads from the
 * first segment kept, and appends go on after it */
Test(journal, retire_removes_old_acknowledged_segments)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 4096);
    s_append_range(j, 1, 400, 200);
    int before = s_count_segments();
    cr_assert_gt(before, 5, "small segments: %d", before);
    uint64_t bytes = 0;
    char err[256];
    int64_t future = (int64_t) time(NULL) + 60;
    cr_assert_eq(journal_retire(j, 400, (int64_t) time(NULL) - 3600, &bytes, err, sizeof err), 0,
                 "younger than the age bound: nothing");
    cr_assert_eq(journal_retire(j, 0, future, &bytes, err, sizeof err), 0, "nothing acknowledged: nothing");
    /* up to seq 150: only segments whose every record is <= 150 */
    int k = journal_retire(j, 150, future, &bytes, err, sizeof err);
    cr_assert_gt(k, 0, "%s", err);
    cr_assert_gt(bytes, 0);
    uint64_t first = s_first_segment();
    cr_assert_leq(first, 151, "a segment holding seq 151 stays (first kept: %llu)", (unsigned long long) first);
    cr_assert_gt(first, 1);
    cr_assert_eq(s_count_segments(), before - k);
    s_expect_range(first, 400, 200);
    /* everything acknowledged: all but the segment being written */
    k = journal_retire(j, 400, future, &bytes, err, sizeof err);
    cr_assert_geq(k, 1);
    cr_assert_eq(s_count_segments(), 1, "the current segment stays");
    first = s_first_segment();
    s_append_range(j, 401, 410, 200);
    journal_close(&j);
    j = s_open(JOURNAL_SYNC_NONE, 4096); /* reopens after a retirement */
    cr_assert_eq(journal_last_seq(j), 410);
    s_append_range(j, 411, 420, 200);
    journal_close(&j);
    s_expect_range(first, 420, 200);
    char err2[512];
    journal_reader_t *r = journal_reader_new(s_dir, 1, err2, sizeof err2);
    const void *data;
    size_t len;
    uint64_t seq = 0;
    cr_assert_eq(journal_reader_next(r, &data, &len, &seq), 1, "%s", journal_reader_error(r));
    cr_assert_eq(seq, first, "a reader from seq 1 starts at the first kept");
    journal_reader_destroy(&r);
}

/* a leading segment that disappears without a retirement is still a gap */
Test(journal, a_missing_first_segment_without_retirement_refuses)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 4096);
    s_append_range(j, 1, 100, 200);
    journal_close(&j);
    char path[256];
    s_seg_path(path, sizeof path, 1);
    cr_assert_eq(unlink(path), 0);
    journal_opts_t opts = {.sync = JOURNAL_SYNC_NONE, .segment_bytes = 4096};
    char err[512];
    cr_assert_null(journal_open(s_dir, &opts, err, sizeof err), "opened with its first segment gone");
    cr_assert(strstr(err, "a segment is missing") != NULL, "%s", err);
}

/* archiving moves old segments, one a call, into the archive as .seg.zst;
 * readers read every record from seq 1 (and from the middle of an
 * archived segment) as if nothing had moved; the journal reopens and goes
 * on; a damaged archived segment is an error, never a short read */
Test(journal, archive_moves_old_segments_and_readers_still_read_them)
{
    journal_t *j = s_open(JOURNAL_SYNC_NONE, 4096);
    s_append_range(j, 1, 400, 200);
    int before = s_count_segments();
    char archive[192], err[512];
    snprintf(archive, sizeof archive, "%s/archive", s_root);
    uint64_t bytes = 0, zbytes = 0;
    int64_t future = (int64_t) time(NULL) + 60;
    cr_assert_eq(journal_archive(j, archive, 0, future, &bytes, &zbytes, err, sizeof err), 0, "nothing sealed");
    cr_assert_eq(journal_archive(j, archive, 400, (int64_t) time(NULL) - 3600, &bytes, &zbytes, err, sizeof err), 0,
                 "too young");
    int moved = 0, rc;
    while ((rc = journal_archive(j, archive, 300, future, &bytes, &zbytes, err, sizeof err)) == 1) {
        cr_assert_gt(bytes, 0);
        cr_assert_gt(zbytes, 0);
        cr_assert_lt(zbytes, bytes, "compressed: %llu of %llu", (unsigned long long) zbytes,
                     (unsigned long long) bytes);
        moved++;
    }
    cr_assert_eq(rc, 0, "%s", err);
    cr_assert_gt(moved, 2);
    cr_assert_eq(s_count_segments(), before - moved);
    uint64_t first = s_first_segment();
    cr_assert_gt(first, 1);
    cr_assert_leq(first, 301, "the segment holding seq 301 stays live (first: %llu)", (unsigned long long) first);
    cr_assert_eq(journal_first_live_seq(j), first, "where a reader of live segments only starts");
    s_expect_range(1, 400, 200);
    s_expect_range(first > 5 ? first - 3 : 2, 400, 200); /* starts inside an archived segment */
    s_append_range(j, 401, 420, 200);
    journal_close(&j);
    j = s_open(JOURNAL_SYNC_NONE, 4096);
    cr_assert_eq(journal_last_seq(j), 420);
    journal_close(&j);
    s_expect_range(1, 420, 200);

    char zpath[256];
    snprintf(zpath, sizeof zpath, "%s/%020llu.seg.zst", archive, 1ull);
    size_t len = 0;
    unsigned char *z = s_slurp(zpath, &len);
    z[len / 2] ^= 0x40;
    s_spit(zpath, z, len);
    free(z);
    journal_reader_t *r = journal_reader_new(s_dir, 1, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    const void *data;
    size_t dlen;
    uint64_t seq;
    cr_assert_eq(journal_reader_next(r, &data, &dlen, &seq), -1, "a damaged archive read as records");
    cr_assert(strstr(journal_reader_error(r), "archived segment unreadable") != NULL, "%s", journal_reader_error(r));
    journal_reader_destroy(&r);
}
