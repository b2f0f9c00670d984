/* test_trail - the audit trail: hash chain, signed checkpoints, verify.
 *
 * Tampering is done the way an attacker who knows the format would: the
 * journal is rewritten with fresh frames (valid CRCs, consecutive journal
 * seqs), so only the chain and the checkpoints can tell. One test also
 * flips a byte in place, which the journal's own checksum catches. */
#include <criterion/criterion.h>
#include <jansson.h>
#include <fcntl.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "event.h"
#include "journal.h"
#include "trail.h"

static char s_root[64], s_dir[96], s_cps[96], s_key[96], s_pub[96];

static void s_setup(void)
{
    snprintf(s_root, sizeof s_root, "/tmp/pg-trail-XXXXXX");
    cr_assert_not_null(mkdtemp(s_root));
    snprintf(s_dir, sizeof s_dir, "%s/audit.0", s_root);
    snprintf(s_cps, sizeof s_cps, "%s/checkpoints", s_root);
    snprintf(s_key, sizeof s_key, "%s/signing.key", s_root);
    snprintf(s_pub, sizeof s_pub, "%s/signing.pub", s_root);
}

static void s_teardown(void)
{
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_root);
    cr_assert_eq(system(cmd), 0);
}

TestSuite(trail, .init = s_setup, .fini = s_teardown, .timeout = 60);

/* s_event - an encoded event of type for case (the i-th of a run) */
static void *s_event(const char *type, const char *case_key, unsigned i, event_body_t *body, size_t *len)
{
    event_head_t h = {.seq = i + 1, .time_ms = 1795000000000 + i};
    snprintf(h.id, sizeof h.id, "validate-%024u", i);
    snprintf(h.type, sizeof h.type, "%s", type);
    snprintf(h.case_key, sizeof h.case_key, "%s", case_key);
    snprintf(h.stage, sizeof h.stage, "validate.0");
    snprintf(h.cause, sizeof h.cause, "rcpt_%024u", i);
    char err[256];
    void *raw = event_encode(&h, body, len, err, sizeof err);
    cr_assert_not_null(raw, "%s", err);
    return raw;
}

/* s_write_trail - n chained records into dir; a checkpoint after each of
 * the seqs in cps (0-terminated); the final head in *head */
static void s_write_trail(const char *dir, unsigned n, const uint64_t *cps, trail_key_t *key, trail_head_t *head)
{
    char err[256];
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    journal_t *j = journal_open(dir, &o, err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    memset(head, 0, sizeof *head);
    for (unsigned i = 0; i < n; i++) {
        event_body_t *b = event_body_new();
        event_body_str(b, "case_id", "payout-P-1");
        event_body_int(b, "amount", 1000 + i);
        size_t rawlen, reclen;
        void *raw = s_event("validated", "payout-P-1", i, b, &rawlen);
        event_body_destroy(&b);
        event_t *ev = event_decode(raw, rawlen, err, sizeof err);
        cr_assert_not_null(ev, "%s", err);
        void *rec = trail_record_new(head, ev, raw, rawlen, 1795000000000 + i, &reclen);
        cr_assert_not_null(rec);
        cr_assert_eq(journal_append(j, rec, reclen, NULL), 0);
        free(rec);
        free(raw);
        event_destroy(&ev);
        for (const uint64_t *c = cps; c && *c; c++)
            if (*c == head->seq)
                cr_assert_eq(trail_checkpoint_append(s_cps, key, head, 1795000000000 + i, err, sizeof err), 0, "%s",
                             err);
    }
    journal_close(&j);
}

typedef struct {
    void *data;
    size_t len;
} rec_t;

/* s_read_all - every record of a journal, copied */
static size_t s_read_all(const char *dir, rec_t *out, size_t max)
{
    char err[256];
    journal_reader_t *r = journal_reader_new(dir, 1, err, sizeof err);
    cr_assert_not_null(r, "%s", err);
    const void *d;
    size_t len, n = 0;
    uint64_t seq;
    while (journal_reader_next(r, &d, &len, &seq) == 1) {
        cr_assert_lt(n, max);
        out[n].data = malloc(len);
        memcpy(out[n].data, d, len);
        out[n++].len = len;
    }
    journal_reader_destroy(&r);
    return n;
}

/* s_rewrite - replace the journal at dir by recs (fresh frames: valid CRCs, consecutive seqs) */
static void s_rewrite(const char *dir, rec_t *recs, size_t n)
{
    char cmd[160], err[256];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    cr_assert_eq(system(cmd), 0);
    journal_opts_t o = {.sync = JOURNAL_SYNC_NONE};
    journal_t *j = journal_open(dir, &o, err, sizeof err);
    cr_assert_not_null(j, "%s", err);
    for (size_t i = 0; i < n; i++) {
        cr_assert_eq(journal_append(j, recs[i].data, recs[i].len, NULL), 0);
        free(recs[i].data);
    }
    journal_close(&j);
}

/* s_verify - run verify with the public key; its result */
static int s_verify(trail_report_t *rep)
{
    char err[256];
    trail_key_t *pub = trail_pubkey_load(s_pub, err, sizeof err);
    cr_assert_not_null(pub, "%s", err);
    int rc = trail_verify(s_dir, s_cps, pub, rep, err, sizeof err);
    cr_assert_geq(rc, 0, "%s", err);
    trail_key_destroy(&pub);
    return rc;
}

/* s_key_new - a fresh signing key (and its public key file) */
static trail_key_t *s_key_new(void)
{
    char err[256];
    trail_key_t *k = trail_key_load(s_key, s_pub, true, err, sizeof err);
    cr_assert_not_null(k, "%s", err);
    return k;
}

Test(trail, untouched_trail_of_100000_records_verifies)
{
    trail_key_t *k = s_key_new();
    trail_head_t head;
    const uint64_t cps[] = {25000, 50000, 75000, 100000, 0};
    s_write_trail(s_dir, 100000, cps, k, &head);
    trail_key_destroy(&k);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 0, "%s", rep.problem);
    cr_assert_eq(rep.records, 100000);
    cr_assert_eq(rep.checkpoints, 4);
    cr_assert_eq(rep.last_checkpoint, 100000);
    cr_assert_eq(memcmp(rep.head, head.head, TRAIL_HASH_BYTES), 0, "verify ends at the writer's head");
}

Test(trail, key_is_generated_private_and_reloaded)
{
    trail_key_t *k = s_key_new();
    trail_key_destroy(&k);
    struct stat sb;
    cr_assert_eq(stat(s_key, &sb), 0);
    cr_assert_eq(sb.st_mode & 0777, 0600, "the private key is readable by its owner only");
    char err[256];
    k = trail_key_load(s_key, s_pub, false, err, sizeof err);
    cr_assert_not_null(k, "the same file loads again: %s", err);
    trail_key_destroy(&k);
    cr_assert_null(trail_key_load("/nonexistent/key", NULL, false, err, sizeof err));
    cr_assert(strstr(err, "/nonexistent/key"), "the error names the file: %s", err);
    FILE *f = fopen(s_pub, "w");
    fputs("not a key\n", f);
    fclose(f);
    cr_assert_null(trail_pubkey_load(s_pub, err, sizeof err));
    cr_assert(strstr(err, "not an Ed25519 key"), "%s", err);
}

/* s_tampered - write 100 records with a checkpoint at 50 and 100, read them back */
static size_t s_tampered(rec_t *recs)
{
    trail_key_t *k = s_key_new();
    trail_head_t head;
    const uint64_t cps[] = {50, 100, 0};
    s_write_trail(s_dir, 100, cps, k, &head);
    trail_key_destroy(&k);
    return s_read_all(s_dir, recs, 128);
}

Test(trail, an_edited_byte_is_found_in_its_record)
{
    rec_t recs[128];
    size_t n = s_tampered(recs);
    unsigned char *p = recs[41].data; /* trail #42 */
    p[recs[41].len - 3] ^= 0x01;      /* inside the event (e.g. the amount) */
    s_rewrite(s_dir, recs, n);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert_eq(rep.bad_seq, 42, "%s", rep.problem);
    cr_assert(strstr(rep.problem, "#42") && strstr(rep.problem, "edited"), "%s", rep.problem);
    cr_assert_eq(rep.records, 41, "everything before it verified");
}

Test(trail, a_deleted_record_is_named)
{
    rec_t recs[128];
    size_t n = s_tampered(recs);
    free(recs[59].data); /* trail #60 */
    memmove(&recs[59], &recs[60], (n - 60) * sizeof recs[0]);
    s_rewrite(s_dir, recs, n - 1);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert_eq(rep.bad_seq, 60, "%s", rep.problem);
    cr_assert(strstr(rep.problem, "deleted") && strstr(rep.problem, "#60"), "%s", rep.problem);
}

Test(trail, two_swapped_records_are_named)
{
    rec_t recs[128];
    size_t n = s_tampered(recs);
    rec_t t = recs[9]; /* trail #10 and #11 */
    recs[9] = recs[10];
    recs[10] = t;
    s_rewrite(s_dir, recs, n);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert_eq(rep.bad_seq, 10, "%s", rep.problem);
    cr_assert(strstr(rep.problem, "swapped"), "%s", rep.problem);
}

Test(trail, a_tail_truncated_after_a_checkpoint_is_caught)
{
    rec_t recs[128];
    size_t n = s_tampered(recs);
    for (size_t i = 80; i < n; i++) /* keep #1..#80; #100 was sealed */
        free(recs[i].data);
    s_rewrite(s_dir, recs, 80);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert_eq(rep.bad_seq, 81, "%s", rep.problem);
    cr_assert(strstr(rep.problem, "truncated") && strstr(rep.problem, "#81..#100"), "%s", rep.problem);
}

Test(trail, a_rewritten_chain_is_caught_by_the_signed_checkpoint)
{
    /* the attacker edits #30 and recomputes every hash after it: the chain
     * is consistent again, but the head signed at #50 no longer matches */
    rec_t recs[128];
    size_t n = s_tampered(recs);
    unsigned char prev[TRAIL_HASH_BYTES];
    for (size_t i = 0; i < n; i++) {
        unsigned char *p = recs[i].data;
        if (i == 29)
            p[recs[i].len - 3] ^= 0x01;
        if (i >= 29) {
            memcpy(p + 33, prev, TRAIL_HASH_BYTES);
            SHA256(p + 33, recs[i].len - 33, p + 1); /* the record's own hash, recomputed */
        }
        memcpy(prev, p + 1, TRAIL_HASH_BYTES);
    }
    s_rewrite(s_dir, recs, n);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert_eq(rep.bad_seq, 50, "%s", rep.problem);
    cr_assert(strstr(rep.problem, "rewritten"), "%s", rep.problem);
}

Test(trail, a_byte_flipped_in_place_breaks_the_frame)
{
    trail_key_t *k = s_key_new();
    trail_head_t head;
    const uint64_t cps[] = {10, 0};
    s_write_trail(s_dir, 10, cps, k, &head);
    trail_key_destroy(&k);
    char seg[160];
    snprintf(seg, sizeof seg, "%s/%020d.seg", s_dir, 1);
    int fd = open(seg, O_RDWR);
    cr_assert_geq(fd, 0);
    off_t size = lseek(fd, 0, SEEK_END);
    unsigned char c;
    cr_assert_eq(pread(fd, &c, 1, size / 2), 1);
    c ^= 0x20;
    cr_assert_eq(pwrite(fd, &c, 1, size / 2), 1);
    close(fd);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert_gt(rep.bad_seq, 0);
    cr_assert_lt(rep.bad_seq, 10);
    cr_assert(strstr(rep.problem, "frame is broken"), "%s", rep.problem);
}

Test(trail, forged_or_foreign_checkpoints_are_refused)
{
    trail_key_t *k = s_key_new();
    trail_head_t head;
    const uint64_t cps[] = {5, 0};
    s_write_trail(s_dir, 5, cps, k, &head);
    trail_key_destroy(&k);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 0, "%s", rep.problem);
    /* another key's public half: every signature is foreign */
    char other[128], err[256];
    snprintf(other, sizeof other, "%s/other.key", s_root);
    trail_key_t *o = trail_key_load(other, NULL, true, err, sizeof err);
    cr_assert_not_null(o, "%s", err);
    trail_key_destroy(&o);
    trail_key_t *opub = trail_pubkey_load(other, err, sizeof err);
    cr_assert_not_null(opub, "a private key file gives its public half: %s", err);
    cr_assert_eq(trail_verify(s_dir, s_cps, opub, &rep, err, sizeof err), 1);
    cr_assert(strstr(rep.problem, "bad signature"), "%s", rep.problem);
    trail_key_destroy(&opub);
    /* a checkpoint line edited by hand */
    FILE *f = fopen(s_cps, "r+");
    char line[512];
    cr_assert_not_null(fgets(line, sizeof line, f));
    char *hex = strchr(strchr(line, ' ') + 1, ' ') + 1;
    hex[0] = hex[0] == 'a' ? 'b' : 'a';
    rewind(f);
    fputs(line, f);
    fclose(f);
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert(strstr(rep.problem, "bad signature"), "%s", rep.problem);
}

Test(trail, no_checkpoint_for_a_non_empty_trail_fails)
{
    trail_key_t *k = s_key_new();
    trail_head_t head;
    s_write_trail(s_dir, 3, NULL, k, &head);
    trail_key_destroy(&k);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 1);
    cr_assert(strstr(rep.problem, "no checkpoint"), "%s", rep.problem);
}

Test(trail, head_recovers_from_the_journal)
{
    trail_key_t *k = s_key_new();
    trail_head_t head, got;
    s_write_trail(s_dir, 200, NULL, k, &head);
    trail_key_destroy(&k);
    char err[256];
    cr_assert_eq(trail_head_recover(s_dir, 150, &got, err, sizeof err), 0, "%s", err);
    cr_assert_eq(got.seq, 200);
    cr_assert_eq(memcmp(got.head, head.head, TRAIL_HASH_BYTES), 0);
    cr_assert_eq(trail_head_recover(s_dir, 5000, &got, err, sizeof err), 0, "a hint past the end falls back");
    cr_assert_eq(got.seq, 200);
}

/* s_meta - the meta JSON of an event built by fill */
static char *s_meta(const char *type, const char *case_key, void (*fill)(event_body_t *))
{
    event_body_t *b = event_body_new();
    fill(b);
    size_t len;
    void *raw = s_event(type, case_key, 7, b, &len);
    event_body_destroy(&b);
    char err[256];
    event_t *ev = event_decode(raw, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    char *m = trail_meta_json(ev);
    event_destroy(&ev);
    free(raw);
    return m;
}

/* s_sorted_compact - m is exactly jansson's compact dump of itself with
 * sorted keys: the form trail records have always had */
static void s_sorted_compact(const char *m)
{
    json_error_t jerr;
    json_t *j = json_loads(m, 0, &jerr);
    cr_assert_not_null(j, "%s: %s", m, jerr.text);
    char *again = json_dumps(j, JSON_COMPACT | JSON_SORT_KEYS);
    cr_expect_str_eq(m, again);
    free(again);
    json_decref(j);
}

static void s_fill_ref_only(event_body_t *b)
{
    event_body_str(b, "ref", "rf_9");
    event_body_str(b, "who", "bad \xff name");
    event_body_str(b, "step", "ledger_entry");
    event_body_str(b, "status", "failed");
}

static void s_fill_decision(event_body_t *b)
{
    event_body_str(b, "who", "fin_mgr");
    event_body_str(b, "decision", "approve");
    event_body_str(b, "client_ip", "10.1.2.3");
}
static void s_fill_receipt(event_body_t *b)
{
    event_body_str(b, "endpoint", "stripe");
    event_body_str(b, "peer", "192.0.2.7");
    event_body_bin(b, "body", "abc", 3);
}
static void s_fill_rejected(event_body_t *b)
{
    event_body_str(b, "payout_id", "P-404");
    event_body_str(b, "reason", "unknown payout");
}

Test(trail, meta_answers_who_what_when_outcome_origin_resource)
{
    char *m = s_meta("decision", "payout-P-1", s_fill_decision);
    cr_assert(strstr(m, "\"who\":\"person:fin_mgr\""), "%s", m);
    cr_assert(strstr(m, "\"what\":\"decision approve\""), "%s", m);
    cr_assert(strstr(m, "\"at_ms\":1795000000007"), "%s", m);
    cr_assert(strstr(m, "\"outcome\":\"success\""), "%s", m);
    cr_assert(strstr(m, "\"address\":\"10.1.2.3\"") && strstr(m, "\"instance\":\"validate.0\""), "%s", m);
    cr_assert(strstr(m, "\"case\":\"payout-P-1\""), "%s", m);
    s_sorted_compact(m);
    free(m);
    m = s_meta("receipt", "", s_fill_receipt);
    cr_assert(strstr(m, "\"who\":\"psp:stripe\""), "%s", m);
    /* SHA-256("abc") */
    cr_assert(strstr(m, "\"payload_sha256\":\"ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad\""),
              "%s", m);
    cr_assert(strstr(m, "\"address\":\"192.0.2.7\""), "%s", m);
    s_sorted_compact(m);
    free(m);
    m = s_meta("rejected", "payout-P-404", s_fill_rejected);
    cr_assert(strstr(m, "\"outcome\":\"failure\""), "%s", m);
    cr_assert(strstr(m, "\"who\":\"stage:validate.0\""), "%s", m);
    cr_assert(strstr(m, "\"payout\":\"P-404\""), "%s", m);
    s_sorted_compact(m);
    free(m);
    /* a step with only a "ref": the case says it is a refund; a "who" that
     * is not text is left out (JSON cannot carry it), not written broken */
    m = s_meta("step", "refund-rf_9", s_fill_ref_only);
    cr_assert(strstr(m, "\"resource\":{\"case\":\"refund-rf_9\",\"refund\":\"rf_9\"}"), "%s", m);
    cr_assert(strstr(m, "\"what\":\"step ledger_entry failed\""), "%s", m);
    cr_assert(strstr(m, "\"outcome\":\"failure\""), "%s", m);
    cr_assert_null(strstr(m, "\"who\""), "%s", m);
    s_sorted_compact(m);
    free(m);
}

Test(trail, an_empty_trail_sealed_at_first_start_verifies)
{
    trail_key_t *k = s_key_new();
    trail_head_t genesis = {0};
    char err[256];
    cr_assert_eq(trail_checkpoint_append(s_cps, k, &genesis, 1795000000000, err, sizeof err), 0, "%s", err);
    trail_head_t head;
    s_write_trail(s_dir, 0, NULL, k, &head);
    trail_report_t rep;
    cr_assert_eq(s_verify(&rep), 0, "%s", rep.problem);
    cr_assert_eq(rep.records, 0);
    cr_assert_eq(rep.checkpoints, 1);
    /* records appended after it are reported unsealed, and still verify */
    char cmd[128];
    snprintf(cmd, sizeof cmd, "rm -rf %s", s_dir);
    cr_assert_eq(system(cmd), 0);
    s_write_trail(s_dir, 3, NULL, k, &head);
    cr_assert_eq(s_verify(&rep), 0, "%s", rep.problem);
    cr_assert_eq(rep.records, 3);
    cr_assert_eq(rep.last_checkpoint, 0, "3 records after the last checkpoint, not yet sealed");
    trail_key_destroy(&k);
}

/* the trail keeps a receipt's body only as its hash and size; the rest of
 * the event, head and fields, as sent; the meta's payload hash is the same
 * from the view as from the event it came from */
Test(trail, a_receipt_is_stored_without_its_body)
{
    event_body_t *b = event_body_new();
    s_fill_receipt(b);
    event_body_str(b, "received_ms", "x");
    size_t len;
    void *raw = s_event("receipt", "", 3, b, &len);
    event_body_destroy(&b);
    char err[256];
    event_t *ev = event_decode(raw, len, err, sizeof err);
    cr_assert_not_null(ev, "%s", err);
    size_t vlen = 0;
    void *view = trail_receipt_view(ev, &vlen);
    cr_assert_not_null(view);
    event_t *v = event_decode(view, vlen, err, sizeof err);
    cr_assert_not_null(v, "the view decodes: %s", err);
    const void *body;
    size_t blen;
    cr_expect_neq(event_get_bin(v, EK_BODY, &body, &blen), 0, "no body in the view");
    char buf[80];
    cr_expect_str_eq(event_get_strbuf(v, "body_sha256", buf, sizeof buf),
                     "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
    int64_t n = 0;
    cr_expect_eq(event_get_int(v, "body_bytes", &n), 0);
    cr_expect_eq(n, 3);
    cr_expect_str_eq(event_get_strbuf(v, EK_PEER, buf, sizeof buf), "192.0.2.7", "the other fields stay");
    cr_expect_str_eq(event_head(v)->id, event_head(ev)->id, "the same event");
    cr_expect_eq(event_head(v)->seq, event_head(ev)->seq);
    cr_expect_eq(event_head(v)->time_ms, event_head(ev)->time_ms);
    char *m1 = trail_meta_json(ev), *m2 = trail_meta_json(v);
    cr_expect_str_eq(m1, m2, "the meta is the same from the view");
    size_t again = 0;
    cr_expect_null(trail_receipt_view(v, &again), "a view has no body left to take");
    free(m1);
    free(m2);
    event_destroy(&v);
    free(view);
    event_destroy(&ev);
    free(raw);
    /* not a receipt: stored as sent */
    b = event_body_new();
    s_fill_rejected(b);
    raw = s_event("rejected", "payout-P-404", 4, b, &len);
    event_body_destroy(&b);
    ev = event_decode(raw, len, err, sizeof err);
    cr_expect_null(trail_receipt_view(ev, &vlen));
    event_destroy(&ev);
    free(raw);
}
