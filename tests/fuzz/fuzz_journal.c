/* fuzz_journal - libFuzzer target for reading and recovering a journal
 * (common/journal.h), and for what is read out of one: stage records
 * (common/stage.h) and audit's trail records (common/trail.h).
 *
 * Input: the whole content of one segment file, 00000000000000000001.seg,
 * in a journal directory of its own (a real segment starts with the magic
 * "PGJRNL01", then records: u32 len, u32 crc32c, u64 seq, payload).
 * Inputs over FZ_MAX_BYTES are ignored. One directory, made once under
 * /dev/shm (so recovery's fsyncs cost nothing) or $TMPDIR, is emptied and
 * rewritten for every input and removed at exit.
 *
 * A mutated payload almost never keeps its checksum, so the records'
 * contents would stay out of reach: each input runs twice, as it is and
 * repaired - every record that fits in the file given the seq and
 * checksum a writer would have written - unless the repair changes
 * nothing. Behind a good magic, the repaired records must all read back.
 *
 * Each run goes through, in order:
 *   1. journal_reader_* to the end: the records, each given to
 *      trail_record_parse (and, when it parses, trail_record_hash_ok and
 *      trail_record_json);
 *   2. stage_read_event over the same file: every 'E', 'S' or chained
 *      'A' record whose envelope decodes, and trail_meta_json on it;
 *   3. trail_verify (with no checkpoints file and no key) and
 *      trail_head_recover, as `payguard audit verify` and a restarting
 *      audit read a journal;
 *   4. journal_open (recovery; sync=none, so no fdatasync and no exit on
 *      one): it may truncate a torn tail or refuse corruption.
 * Properties checked besides the sanitizers':
 *   - a reader ends (0 or -1) within as many steps as the file could hold
 *     records, and a -1 comes with a one-line message;
 *   - a parsed trail record's parts add up to the record;
 *   - trail_verify answers 0, 1 or -1 with a one-line problem or error,
 *     and without checkpoints verifies only a trail with no record;
 *   - journal_open refuses with a one-line message, or accepts and keeps
 *     exactly the records the reader read, unchanged (a CRC over their
 *     payloads matches); an accepted journal then takes one more record
 *     and reads back whole to a clean end (0, never -1).
 *
 *   make bin/fuzz_journal && mkdir -p build-fuzz/corpus/journal &&
 *   ./bin/fuzz_journal -max_total_time=10 build-fuzz/corpus/journal tests/fuzz/journal
 * (new finds go to the first directory; the seeds stay as they are)
 */
#include "fuzz_util.h"
#include "crc32c.h"
#include "journal.h"
#include "log.h"
#include "stage.h"
#include "trail.h"

#include <assert.h>
#include <dirent.h>
#include <fcntl.h>
#include <jansson.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#ifdef NDEBUG
#error "the properties are asserts: build fuzz targets without NDEBUG"
#endif

#define FZ_MAX_BYTES (64u * 1024u)
#define FZ_SEGMENT "00000000000000000001.seg"

static char s_dir[256];
static char s_seg[320];

/* s_remove_all - empty the journal directory (journal_open may have
 * replaced a torn segment by a fresh one) */
static void s_remove_all(void)
{
    DIR *d = opendir(s_dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d)) != NULL) {
        if (strcmp(de->d_name, ".") == 0 || strcmp(de->d_name, "..") == 0)
            continue;
        char path[600];
        snprintf(path, sizeof path, "%s/%s", s_dir, de->d_name);
        unlink(path);
    }
    closedir(d);
}

/* s_cleanup - at exit, leave nothing behind */
static void s_cleanup(void)
{
    s_remove_all();
    rmdir(s_dir);
}

/* LLVMFuzzerInitialize - quiet logs; one directory for every input */
int LLVMFuzzerInitialize(int *argc, char ***argv)
{
    (void) argc;
    (void) argv;
    log_init("fuzz_journal", "error", NULL);
    fz_tempdir("fuzz_journal", s_dir, sizeof s_dir);
    snprintf(s_seg, sizeof s_seg, "%s/" FZ_SEGMENT, s_dir);
    atexit(s_cleanup);
    return 0;
}

/* s_write_segment - the input as the journal's only segment */
static void s_write_segment(const uint8_t *data, size_t size)
{
    s_remove_all();
    fz_write_file(s_seg, data, size, 0640);
}

/* s_check_text - a message: written, NUL-terminated, one line */
static void s_check_text(const char *text, size_t cap)
{
    assert(memchr(text, '\0', cap) != NULL);
    assert(text[0] != '\0');
    assert(strchr(text, '\n') == NULL);
}

/* s_trail - one record as audit's trail record, if it is one */
static void s_trail(const void *data, size_t len)
{
    trail_view_t v;
    if (trail_record_parse(data, len, &v) != 0)
        return;
    assert(v.hash == (const unsigned char *) data + 1 && v.prev == (const unsigned char *) data + 33);
    assert(TRAIL_HEADER_BYTES + v.meta_len + v.envelope_len == len);
    assert((const char *) v.envelope == v.meta + v.meta_len);
    (void) trail_record_hash_ok(data, len);
    json_t *j = trail_record_json(&v);
    assert(j == NULL || json_is_object(j));
    json_decref(j);
}

/* s_read_all - every record from the start: how many, the last rc, and a
 * CRC over their payloads (so a later read can be compared) */
static uint64_t s_read_all(bool parse, int *rc_out, uint32_t *crc_out, size_t bound)
{
    char err[256];
    journal_reader_t *r = journal_reader_new(s_dir, 1, err, sizeof err);
    assert(r);
    const void *data;
    size_t len;
    uint64_t seq, n = 0;
    uint32_t crc = 0;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
        n++;
        assert(seq == n && len >= 1);
        assert(n <= bound); /* a record takes at least 17 bytes of the file */
        crc = crc32c_update(crc, data, len);
        if (parse)
            s_trail(data, len);
    }
    assert(rc == 0 || rc == -1);
    if (rc == -1) {
        const char *why = journal_reader_error(r);
        s_check_text(why, strlen(why) + 1);
        assert(journal_reader_next(r, &data, &len, &seq) == -1); /* corruption is sticky */
    }
    journal_reader_destroy(&r);
    assert(r == NULL);
    *rc_out = rc;
    *crc_out = crc;
    return n;
}

/* s_stage_events - what a stage replays: the envelopes inside the records */
static void s_stage_events(size_t bound)
{
    char err[256];
    journal_reader_t *r = journal_reader_new(s_dir, 1, err, sizeof err);
    assert(r);
    uint64_t seq = 0, prev = 0;
    unsigned dest = 0;
    size_t n = 0;
    event_t *ev;
    while ((ev = stage_read_event(r, &seq, &dest)) != NULL) {
        n++;
        assert(seq > prev && n <= bound);
        prev = seq;
        assert(dest <= 0xff);
        char *meta = trail_meta_json(ev);
        assert(meta && meta[0] == '{');
        free(meta);
        event_destroy(&ev);
    }
    journal_reader_destroy(&r);
}

/* s_audit - the trail as audit's verify and restart read it */
static void s_audit(void)
{
    static trail_report_t report;
    char err[256], nocp[320];
    memset(err, 'Z', sizeof err);
    snprintf(nocp, sizeof nocp, "%s/no-checkpoints", s_dir);
    int rc = trail_verify(s_dir, nocp, NULL, &report, err, sizeof err);
    if (rc == 0)
        assert(report.records == 0 && report.problem[0] == '\0');
    else if (rc == 1)
        s_check_text(report.problem, sizeof report.problem);
    else
        s_check_text(err, sizeof err);
    assert(rc >= -1 && rc <= 1);
    trail_head_t head;
    rc = trail_head_recover(s_dir, 1, &head, err, sizeof err);
    assert(rc == 0 || rc == -1);
}

/* s_recover - journal_open's recovery against what the reader read */
static void s_recover(uint64_t read_n, uint32_t read_crc, size_t bound)
{
    char err[512];
    memset(err, 'Z', sizeof err);
    journal_opts_t opts = {.sync = JOURNAL_SYNC_NONE};
    journal_t *j = journal_open(s_dir, &opts, err, sizeof err);
    if (!j) {
        s_check_text(err, sizeof err);
        return;
    }
    /* recovery and the reader judge records alike: the valid prefix */
    uint64_t last = journal_last_seq(j);
    assert(last == read_n);
    assert(journal_durable_seq(j) == last);
    uint64_t seq = 0;
    int rc = journal_append(j, "fuzz", 4, &seq);
    assert(rc == 0 && seq == last + 1);
    (void) rc;
    journal_close(&j);
    assert(j == NULL);

    int end;
    uint32_t crc_after;
    uint64_t n = s_read_all(false, &end, &crc_after, bound + 1);
    assert(end == 0 && n == last + 1);
    /* the records kept are the ones read before, byte for byte */
    assert(crc32c_update(read_crc, "fuzz", 4) == crc_after);
}

/* s_repair - give every record that fits in buf the seq and checksum it
 * should have, as a writer would have written it; how many were fixed up
 * (stops at a length of 0 or one that runs past the end) */
static uint64_t s_repair(uint8_t *buf, size_t size)
{
    uint64_t seq = 0;
    size_t off = 8; /* after the magic, whatever it says */
    while (size >= JOURNAL_HEADER_BYTES && off <= size - JOURNAL_HEADER_BYTES) {
        uint8_t *h = buf + off;
        uint32_t len = (uint32_t) h[0] | (uint32_t) h[1] << 8 | (uint32_t) h[2] << 16 | (uint32_t) h[3] << 24;
        if (len == 0 || len > size - off - JOURNAL_HEADER_BYTES)
            break;
        seq++;
        for (int i = 0; i < 8; i++)
            h[8 + i] = (uint8_t) (seq >> (8 * i));
        uint32_t crc = crc32c_update(0, h, 4);
        crc = crc32c_update(crc, h + 8, 8);
        crc = crc32c_update(crc, h + JOURNAL_HEADER_BYTES, len);
        for (int i = 0; i < 4; i++)
            h[4 + i] = (uint8_t) (crc >> (8 * i));
        off += JOURNAL_HEADER_BYTES + len;
    }
    return seq;
}

/* s_run - one segment file through every pass (see the top); how many
 * records the reader read */
static uint64_t s_run(const uint8_t *data, size_t size)
{
    s_write_segment(data, size);
    size_t bound = size / (JOURNAL_HEADER_BYTES + 1);
    int end;
    uint32_t crc;
    uint64_t n = s_read_all(true, &end, &crc, bound);
    s_stage_events(bound);
    s_audit();
    s_recover(n, crc, bound);
    return n;
}

/* LLVMFuzzerTestOneInput - one input: one segment file, as it is and
 * repaired (see the top) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > FZ_MAX_BYTES)
        return 0;
    (void) s_run(data, size);
    uint8_t *fixed = malloc(size ? size : 1);
    assert(fixed);
    memcpy(fixed, data, size);
    uint64_t records = s_repair(fixed, size);
    if (memcmp(fixed, data, size) != 0) {
        uint64_t n = s_run(fixed, size);
        /* behind a good magic every repaired record is valid */
        if (size >= 8 && memcmp(fixed, "PGJRNL01", 8) == 0)
            assert(n == records);
    }
    free(fixed);
    return 0;
}
