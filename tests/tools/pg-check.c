/*++
 * NAME
 *	pg-check - check payguard's end-to-end properties from its journals
 * SYNOPSIS
 *	pg-check --data DIR [--receipts receipts.txt]
 *	         [--stages validate,triage,approve,execute] [--quiet]
 * DESCRIPTION
 *	Reads the journal of every stage instance under DIR (directories named
 *	<stage>.<n>, e.g. ingest.0, triage.1, audit.0), the system of record,
 *	and checks what the pipeline promises. Records (common/stage.h):
 *	'E' <dest mask> <envelope> emitted, 'S' <envelope> or 'A' <trail record> stored (audit),
 *	'I' <input> taken (with no output: as 'C'), 'F' producers' floors,
 *	'C' <input id> consumed with no output, 'W' watermarks.
 *
 *	a  receipts: every receipt id of the receipts file (lines "<event id>
 *	   <receipt id>", as pg-load --out writes them) is an ingest 'E' record,
 *	   or, when ingest retired old segments (its "retired" file), stored in
 *	   audit's trail.
 *	b  chains, one check per stage of --stages: starting from the receipts
 *	   (every ingest receipt when no file is given), every event of the
 *	   previous stage that was sent on (dest mask has STAGE_TO_NEXT) has a
 *	   successor in this stage: an 'E' record whose cause is its id, over
 *	   all instances of the stage. An input the stage journaled as 'C', or
 *	   as 'I' with no output (e.g. a duplicate dropped), counts as answered
 *	   and ends its chain; the line says how many did. Stages left out of
 *	   --stages are still walked through, just not reported.
 *	c  exactly-once effects, one check per stage present:
 *	   - within each instance, no event id is journaled twice ('E'), and
 *	     audit stores no id twice ('S'): a re-delivered input was handled
 *	     once;
 *	   - the 'E' records answering one input (same cause) carry exactly the
 *	     ids event_derive_id(stage, cause, 0..n-1), so a cause answered
 *	     twice, or an id not derived from its cause, is caught;
 *	   - across the instances of a multi-instance stage (triage workers) an
 *	     id may repeat (a re-delivery handled by two workers) but only with
 *	     the same content (type, case key, cause, body); repeats are
 *	     reported, conflicts fail.
 *	d  audit completeness: every 'E' record of every non-audit instance
 *	   with STAGE_TO_AUDIT in its mask is among audit's 'S' records, with
 *	   the same content (a receipt's as the trail stores it: its body
 *	   replaced by its hash and size, trail_receipt_view).
 *	e  every journal reads to its end without corruption, and every record
 *	   decodes (strict event_decode, known kinds, well-formed 'I'/'F'/'C'/'W').
 *	Each check prints "ok ..." or "FAIL ..." with counts and up to 5
 *	example ids; the last line is "N passed, N failed".
 *
 *	--quiet prints only the FAIL lines and the last line.
 * EXIT STATUS
 *	0 all checks passed; 1 a check failed; 2 bad usage or an unreadable
 *	data directory or receipts file.
 * LIMITS
 *	At most CHECK_MAX_RECORDS records and CHECK_MAX_INSTANCES instances;
 *	receipts file lines at most 512 bytes. Ids are interned once; records
 *	are 24 bytes each, so a million events take tens of megabytes.
 *--*/
#include <dirent.h>
#include <errno.h>
#include <getopt.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>

#include "config.h"
#include "event.h"
#include "journal.h"
#include "stage.h"
#include "trail.h"

#define CHECK_MAX_INSTANCES 128
#define CHECK_MAX_RECORDS 200000000u
#define CHECK_MAX_POOL_BYTES (8ull * 1024 * 1024 * 1024)
#define CHECK_MAX_LINE 512
#define CHECK_EXAMPLES 5
#define CHECK_EXAMPLE_BYTES 160
#define CHECK_NO_ID UINT32_MAX

/* ---- pool: interned strings (ids), open addressing ------------------- */

typedef struct {
    char *chars; /* NUL-terminated strings back to back */
    size_t len, cap;
    size_t *off; /* offset of string k in chars */
    uint32_t count, offcap;
    uint32_t *slots; /* 0 empty, else k + 1 */
    size_t nslots;   /* power of two */
} pool_t;

/* s_hash - FNV-1a 64 */
static uint64_t s_hash(const void *data, size_t len, uint64_t h)
{
    const unsigned char *p = data;
    for (size_t i = 0; i < len; i++) {
        h ^= p[i];
        h *= 0x100000001b3ull;
    }
    return h;
}
#define HASH_SEED 0xcbf29ce484222325ull

/* s_xrealloc - realloc that cannot fail quietly: out of memory exits 2 */
static void *s_xrealloc(void *p, size_t n)
{
    void *q = realloc(p, n ? n : 1);
    if (!q) {
        fprintf(stderr, "pg-check: out of memory (%zu bytes)\n", n);
        exit(2);
    }
    return q;
}

/* s_pool_str - string k (borrowed; valid until the next intern) */
static const char *s_pool_str(const pool_t *p, uint32_t k)
{
    return p->chars + p->off[k];
}

/* s_pool_slot - the slot holding s, or the empty slot where it belongs */
static size_t s_pool_slot(const pool_t *p, const char *s, size_t len)
{
    size_t mask = p->nslots - 1;
    size_t i = (size_t) s_hash(s, len, HASH_SEED) & mask;
    while (p->slots[i]) {
        const char *t = s_pool_str(p, p->slots[i] - 1);
        if (strncmp(t, s, len) == 0 && t[len] == '\0')
            return i;
        i = (i + 1) & mask;
    }
    return i;
}

/* s_pool_grow - double the slot table when half full */
static void s_pool_grow(pool_t *p)
{
    size_t n = p->nslots ? p->nslots * 2 : 1024;
    uint32_t *old = p->slots;
    size_t oldn = p->nslots;
    p->slots = calloc(n, sizeof *p->slots);
    if (!p->slots) {
        fprintf(stderr, "pg-check: out of memory\n");
        exit(2);
    }
    p->nslots = n;
    for (size_t i = 0; i < oldn; i++)
        if (old[i]) {
            const char *t = s_pool_str(p, old[i] - 1);
            p->slots[s_pool_slot(p, t, strlen(t))] = old[i];
        }
    free(old);
}

/* s_pool_find - index of s if interned; false if not */
static bool s_pool_find(const pool_t *p, const char *s, size_t len, uint32_t *out)
{
    if (!p->nslots)
        return false;
    size_t i = s_pool_slot(p, s, len);
    if (!p->slots[i])
        return false;
    *out = p->slots[i] - 1;
    return true;
}

/* s_pool_intern - index of s, adding it if new */
static uint32_t s_pool_intern(pool_t *p, const char *s, size_t len)
{
    if ((size_t) p->count * 2 >= p->nslots)
        s_pool_grow(p);
    size_t i = s_pool_slot(p, s, len);
    if (p->slots[i])
        return p->slots[i] - 1;
    if (p->count >= CHECK_MAX_RECORDS || p->len + len + 1 > CHECK_MAX_POOL_BYTES) {
        fprintf(stderr, "pg-check: over %u distinct ids; raise CHECK_MAX_RECORDS\n", CHECK_MAX_RECORDS);
        exit(2);
    }
    if (p->len + len + 1 > p->cap) {
        p->cap = (p->cap ? p->cap * 2 : 1 << 20) + len + 1;
        p->chars = s_xrealloc(p->chars, p->cap);
    }
    if (p->count == p->offcap) {
        p->offcap = p->offcap ? p->offcap * 2 : 1024;
        p->off = s_xrealloc(p->off, p->offcap * sizeof *p->off);
    }
    memcpy(p->chars + p->len, s, len);
    p->chars[p->len + len] = '\0';
    p->off[p->count] = p->len;
    p->len += len + 1;
    p->slots[i] = p->count + 1;
    return p->count++;
}

/* ---- what was read ---------------------------------------------------- */

/* rec - one 'E', 'S' or 'C' record */
typedef struct {
    uint32_t id;      /* event id; for 'C' the consumed input's id */
    uint32_t cause;   /* CHECK_NO_ID for 'C' and for receipts */
    uint64_t content; /* hash of type, case key, cause, body */
    uint16_t inst;
    char kind;
    uint8_t dest; /* DEST_UNKNOWN: a stored copy of an event whose own record was retired */
    int8_t from;  /* the stage index of the event's producer (its head's stage), -1 if none */
} rec_t;
#define DEST_UNKNOWN 0xFF

/* inst - one stage instance's journal */
typedef struct {
    char name[64]; /* "triage.1" */
    char stage[32];
    int stage_idx, index;
    uint64_t n_e, n_s, n_c, n_w, records;
    uint64_t bad; /* undecodable or unknown records */
    char bad_example[256];
    bool corrupt; /* the reader stopped with an error */
    char error[256];
} inst_t;

/* examples - a count and the first few ids behind it */
typedef struct {
    uint64_t n;
    int shown;
    char v[CHECK_EXAMPLES][CHECK_EXAMPLE_BYTES];
} examples_t;

typedef struct {
    const char *data_dir;
    const char *receipts_path;
    bool stage_listed[CONFIG_NSTAGES];
    bool quiet;
    pool_t pool;
    rec_t *recs;
    size_t nrecs, caprecs;
    inst_t inst[CHECK_MAX_INSTANCES];
    int ninst;
    int stage_ninst[CONFIG_NSTAGES];
    uint32_t *receipts; /* receipt ids of the file, in file order */
    size_t nreceipts;
    uint64_t receipt_bad_lines;
    char receipt_bad_example[CHECK_EXAMPLE_BYTES];
    int passed, failed;
} check_t;

/* ---- small helpers ---------------------------------------------------- */

/* s_example - count one case; keep its text if fewer than 5 are kept */
static void s_example(examples_t *ex, const char *fmt, const char *a, const char *b)
{
    if (ex->shown < CHECK_EXAMPLES) {
        snprintf(ex->v[ex->shown], CHECK_EXAMPLE_BYTES, fmt, a, b ? b : "");
        ex->shown++;
    }
    ex->n++;
}

/* s_examples_text - " (e.g. a b c)" or "" */
static void s_examples_text(const examples_t *ex, char *out, size_t outlen)
{
    out[0] = '\0';
    if (!ex->shown)
        return;
    size_t n = (size_t) snprintf(out, outlen, " (e.g.");
    for (int i = 0; i < ex->shown && n < outlen; i++)
        n += (size_t) snprintf(out + n, outlen - n, " %s", ex->v[i]);
    if (n < outlen)
        snprintf(out + n, outlen - n, ")");
}

/* s_result - print one check's line, count it */
static void s_result(check_t *C, bool ok, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static void s_result(check_t *C, bool ok, const char *fmt, ...)
{
    if (ok)
        C->passed++;
    else
        C->failed++;
    if (ok && C->quiet)
        return;
    va_list ap;
    va_start(ap, fmt);
    fputs(ok ? "ok   " : "FAIL ", stdout);
    vprintf(fmt, ap);
    fputc('\n', stdout);
    va_end(ap);
}

/* s_cmp_u64 - qsort order */
static int s_cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *) a, y = *(const uint64_t *) b;
    return (x > y) - (x < y);
}

/* s_sort_u64 - sort ascending (qsort must not see a NULL array, even empty) */
static void s_sort_u64(uint64_t *v, size_t n)
{
    if (n > 1)
        qsort(v, n, sizeof *v, s_cmp_u64);
}

/* s_key - a sortable (key, record index) pair */
static uint64_t s_key(uint32_t key, size_t rec)
{
    return ((uint64_t) key << 32) | (uint32_t) rec;
}

/* s_key_of - the key half of a pair */
static uint32_t s_key_of(uint64_t k)
{
    return (uint32_t) (k >> 32);
}

/* s_rec_of - the record-index half of a pair */
static size_t s_rec_of(uint64_t k)
{
    return (size_t) (uint32_t) k;
}

/* s_lower - first position in sorted v[0..n) whose key is >= key */
static size_t s_lower(const uint64_t *v, size_t n, uint32_t key)
{
    uint64_t want = (uint64_t) key << 32;
    size_t lo = 0, hi = n;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        if (v[mid] < want)
            lo = mid + 1;
        else
            hi = mid;
    }
    return lo;
}

/* index - sorted (key, record) pairs; an index of records by id or cause */
typedef struct {
    uint64_t *v;
    size_t n;
} index_t;

/* s_index_find - first position of key in ix and how many share it */
static size_t s_index_find(const index_t *ix, uint32_t key, size_t *count)
{
    size_t i = s_lower(ix->v, ix->n, key), j = i;
    while (j < ix->n && s_key_of(ix->v[j]) == key)
        j++;
    *count = j - i;
    return i;
}

/* s_index_build - the records of stage (all instances, or only inst if
 * >= 0) of kind, keyed by id (by_cause false) or by cause, sorted */
static index_t s_index_build(const check_t *C, int stage_idx, int inst, char kind, bool by_cause)
{
    index_t ix = {0};
    size_t cap = 0;
    for (size_t r = 0; r < C->nrecs; r++) {
        const rec_t *x = &C->recs[r];
        if (x->kind != kind || C->inst[x->inst].stage_idx != stage_idx || (inst >= 0 && x->inst != inst))
            continue;
        uint32_t key = by_cause ? x->cause : x->id;
        if (key == CHECK_NO_ID)
            continue;
        if (ix.n == cap) {
            cap = cap ? cap * 2 : 1024;
            ix.v = s_xrealloc(ix.v, cap * sizeof *ix.v);
        }
        ix.v[ix.n++] = s_key(key, r);
    }
    s_sort_u64(ix.v, ix.n);
    return ix;
}

/* ---- reading ------------------------------------------------------------ */

/* s_content - hash of what must agree between copies of one event */
static uint64_t s_content(const event_t *ev)
{
    const event_head_t *h = event_head(ev);
    uint64_t x = s_hash(h->type, strlen(h->type) + 1, HASH_SEED);
    x = s_hash(h->case_key, strlen(h->case_key) + 1, x);
    x = s_hash(h->cause, strlen(h->cause) + 1, x);
    size_t blen = 0;
    const void *body = event_body_raw(ev, &blen);
    return s_hash(body, blen, x);
}

/* s_add_rec - append one record */
static void s_add_rec(check_t *C, rec_t r)
{
    if (C->nrecs >= CHECK_MAX_RECORDS) {
        fprintf(stderr, "pg-check: over %u records; raise CHECK_MAX_RECORDS\n", CHECK_MAX_RECORDS);
        exit(2);
    }
    if (C->nrecs == C->caprecs) {
        C->caprecs = C->caprecs ? C->caprecs * 2 : 4096;
        C->recs = s_xrealloc(C->recs, C->caprecs * sizeof *C->recs);
    }
    C->recs[C->nrecs++] = r;
}

/* s_bad - note an undecodable record of an instance */
static void s_bad(inst_t *in, uint64_t seq, const char *why)
{
    if (!in->bad) {
        char name[sizeof in->name]; /* a copy: gcc cannot tell the fields apart (-Wrestrict) */
        memcpy(name, in->name, sizeof name);
        snprintf(in->bad_example, sizeof in->bad_example, "%s seq %llu: %.100s", name, (unsigned long long) seq, why);
    }
    in->bad++;
}

/* s_read_event - decode an 'E' or 'S' record's envelope into a rec */
static void s_read_event(check_t *C, int k, const unsigned char *p, size_t len, uint64_t seq)
{
    inst_t *in = &C->inst[k];
    const void *env;
    size_t envlen;
    unsigned mask;
    int carries = stage_record_envelope(p, len, &env, &envlen, &mask);
    if (carries != 1) {
        s_bad(in, seq, carries < 0 ? "malformed trail record" : "record too short");
        return;
    }
    char kind = p[0] == STAGE_REC_EVENT ? STAGE_REC_EVENT : STAGE_REC_STORED; /* 'A' is audit's stored */
    char err[200];
    event_t *ev = event_decode(env, envlen, err, sizeof err);
    if (!ev) {
        s_bad(in, seq, err);
        return;
    }
    const event_head_t *h = event_head(ev);
    char from[32];
    int from_idx;
    rec_t r = {.kind = kind, .inst = (uint16_t) k, .dest = (uint8_t) mask, .from = -1};
    if (config_parse_instance(h->stage, from, &from_idx) == 0)
        r.from = (int8_t) config_stage_index(from);
    r.id = s_pool_intern(&C->pool, h->id, strlen(h->id));
    r.cause = h->cause[0] ? s_pool_intern(&C->pool, h->cause, strlen(h->cause)) : CHECK_NO_ID;
    /* a receipt as ingest sent it is compared as the trail stores it:
     * without its body, which becomes its hash and size */
    size_t vlen = 0;
    void *view = trail_receipt_view(ev, &vlen);
    event_t *vev = view ? event_decode(view, vlen, err, sizeof err) : NULL;
    r.content = s_content(vev ? vev : ev);
    event_destroy(&vev);
    free(view);
    event_destroy(&ev);
    s_add_rec(C, r);
    if (kind == STAGE_REC_EVENT)
        in->n_e++;
    else
        in->n_s++;
}

/* s_read_record - one journal record, by kind */
static void s_read_record(check_t *C, int k, const unsigned char *p, size_t len, uint64_t seq)
{
    inst_t *in = &C->inst[k];
    in->records++;
    switch (p[0]) {
    case STAGE_REC_EVENT:
    case STAGE_REC_STORED:
    case TRAIL_REC:
        s_read_event(C, k, p, len, seq);
        break;
    case STAGE_REC_CONSUMED:
        if (len < 2 || len > 1 + EVENT_ID_MAX || memchr(p + 1, '\0', len - 1)) {
            s_bad(in, seq, "malformed 'C' record");
            break;
        }
        s_add_rec(C, (rec_t){.kind = STAGE_REC_CONSUMED,
                             .inst = (uint16_t) k,
                             .cause = CHECK_NO_ID,
                             .id = s_pool_intern(&C->pool, (const char *) p + 1, len - 1)});
        in->n_c++;
        break;
    case STAGE_REC_TAKEN: {
        stage_taken_t t;
        if (stage_record_taken(p, len, &t) != 0)
            s_bad(in, seq, "malformed 'I' record");
        else if ((t.flags & STAGE_TAKEN_NO_OUTPUT) &&
                 !(t.flags & STAGE_TAKEN_POSITION)) { /* answered with nothing: like 'C' */
            s_add_rec(C, (rec_t){.kind = STAGE_REC_CONSUMED,
                                 .inst = (uint16_t) k,
                                 .cause = CHECK_NO_ID,
                                 .id = s_pool_intern(&C->pool, t.id, strlen(t.id))});
            in->n_c++;
        }
        break;
    }
    case STAGE_REC_FLOOR:
        if (stage_record_floor(p, len, &(stage_floor_t){0}) != 0)
            s_bad(in, seq, "malformed 'F' record");
        break;
    case STAGE_REC_WATERMARK:
        if (len != 17)
            s_bad(in, seq, "malformed 'W' record");
        else
            in->n_w++;
        break;
    default:
        s_bad(in, seq, "unknown record kind");
        break;
    }
}

/* s_read_journal - every record of instance k's journal */
static void s_read_journal(check_t *C, int k)
{
    inst_t *in = &C->inst[k];
    char dir[4096], err[256];
    snprintf(dir, sizeof dir, "%s/%s", C->data_dir, in->name);
    journal_reader_t *r = journal_reader_new(dir, 1, err, sizeof err);
    if (!r) {
        in->corrupt = true;
        snprintf(in->error, sizeof in->error, "%s", err);
        return;
    }
    const void *data;
    size_t len;
    uint64_t seq;
    int rc;
    while ((rc = journal_reader_next(r, &data, &len, &seq)) == 1) {
        if (len == 0) {
            s_bad(in, seq, "empty record");
            continue;
        }
        s_read_record(C, k, data, len, seq);
    }
    if (rc < 0) {
        in->corrupt = true;
        snprintf(in->error, sizeof in->error, "%s", journal_reader_error(r));
    }
    journal_reader_destroy(&r);
}

/* s_cmp_inst - pipeline order, then instance index */
static int s_cmp_inst(const void *a, const void *b)
{
    const inst_t *x = a, *y = b;
    if (x->stage_idx != y->stage_idx)
        return x->stage_idx - y->stage_idx;
    return x->index - y->index;
}

/* s_find_instances - the <stage>.<n> directories of the data dir */
static int s_find_instances(check_t *C)
{
    DIR *d = opendir(C->data_dir);
    if (!d) {
        fprintf(stderr, "pg-check: cannot open data directory %s: %s\n", C->data_dir, strerror(errno));
        return -1;
    }
    struct dirent *de;
    while ((de = readdir(d))) {
        inst_t in = {0};
        if (strlen(de->d_name) >= sizeof in.name || config_parse_instance(de->d_name, in.stage, &in.index) != 0)
            continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", C->data_dir, de->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode))
            continue;
        if (C->ninst >= CHECK_MAX_INSTANCES) {
            fprintf(stderr, "pg-check: over %d instance directories in %s\n", CHECK_MAX_INSTANCES, C->data_dir);
            closedir(d);
            return -1;
        }
        memcpy(in.name, de->d_name, strlen(de->d_name) + 1); /* length checked above */
        in.stage_idx = config_stage_index(in.stage);
        C->inst[C->ninst++] = in;
    }
    closedir(d);
    if (C->ninst == 0) {
        fprintf(stderr, "pg-check: no <stage>.<n> journal directories in %s\n", C->data_dir);
        return -1;
    }
    qsort(C->inst, (size_t) C->ninst, sizeof C->inst[0], s_cmp_inst);
    for (int k = 0; k < C->ninst; k++)
        C->stage_ninst[C->inst[k].stage_idx]++;
    return 0;
}

/* s_token_ok - an id as the receipts file may hold it */
static bool s_token_ok(const char *s, size_t len)
{
    if (len == 0 || len > EVENT_ID_MAX)
        return false;
    for (size_t i = 0; i < len; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return false;
    return true;
}

/* s_read_receipts - the receipt ids of the file; -1 if unreadable */
static int s_read_receipts(check_t *C)
{
    FILE *f = fopen(C->receipts_path, "r");
    if (!f) {
        fprintf(stderr, "pg-check: cannot open receipts file %s: %s\n", C->receipts_path, strerror(errno));
        return -1;
    }
    char line[CHECK_MAX_LINE + 2];
    size_t cap = 0, lineno = 0;
    while (fgets(line, sizeof line, f)) {
        lineno++;
        size_t n = strlen(line);
        bool whole = n > 0 && line[n - 1] == '\n';
        if (!whole && !feof(f)) { /* over-long: skip the rest of it */
            int c;
            while ((c = fgetc(f)) != EOF && c != '\n')
                ;
        }
        while (n > 0 && (line[n - 1] == '\n' || line[n - 1] == '\r'))
            line[--n] = '\0';
        if (n == 0 || line[0] == '#')
            continue;
        char *sp = strchr(line, ' ');
        const char *rid = sp ? sp + 1 : NULL;
        if (!whole && !feof(f))
            rid = NULL;
        if (!rid || !s_token_ok(line, (size_t) (sp - line)) || !s_token_ok(rid, strlen(rid))) {
            if (!C->receipt_bad_lines++)
                snprintf(C->receipt_bad_example, sizeof C->receipt_bad_example, "line %zu", lineno);
            continue;
        }
        if (C->nreceipts == cap) {
            cap = cap ? cap * 2 : 4096;
            C->receipts = s_xrealloc(C->receipts, cap * sizeof *C->receipts);
        }
        C->receipts[C->nreceipts++] = s_pool_intern(&C->pool, rid, strlen(rid));
    }
    bool failed = ferror(f);
    fclose(f);
    if (failed) {
        fprintf(stderr, "pg-check: reading %s failed\n", C->receipts_path);
        return -1;
    }
    return 0;
}

/* ---- checks --------------------------------------------------------------- */

/* s_stage_retired - has an instance of stage s removed old segments on
 * purpose (its journal directory's "retired" file: journal.h)? */
static bool s_stage_retired(const check_t *C, int s)
{
    for (int k = 0; k < C->ninst; k++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s/retired", C->data_dir, C->inst[k].name);
        if (C->inst[k].stage_idx == s && access(path, F_OK) == 0)
            return true;
    }
    return false;
}

/* s_check_receipts - a: every receipt of the file is an ingest 'E' record,
 * or, where ingest retired the segment that held it, stored in audit */
static void s_check_receipts(check_t *C, const index_t *ingest_by_id)
{
    if (!C->receipts_path) {
        if (!C->quiet)
            printf("skip a: no receipts file; chains start from every ingest receipt\n");
        return;
    }
    bool retired = s_stage_retired(C, 0);
    int audit = config_stage_index("audit");
    index_t stored = retired ? s_index_build(C, audit, -1, STAGE_REC_STORED, false) : (index_t){0};
    examples_t missing = {0};
    size_t in_trail = 0;
    for (size_t i = 0; i < C->nreceipts; i++) {
        size_t n;
        s_index_find(ingest_by_id, C->receipts[i], &n);
        if (!n && retired)
            s_index_find(&stored, C->receipts[i], &n), in_trail += n > 0;
        if (!n)
            s_example(&missing, "%s%s", s_pool_str(&C->pool, C->receipts[i]), NULL);
    }
    free(stored.v);
    char ex[1024], trail[96] = "";
    s_examples_text(&missing, ex, sizeof ex);
    if (retired)
        snprintf(trail, sizeof trail, " (%zu of them from segments ingest retired: found in audit's trail)", in_trail);
    /* an empty file proves nothing: most likely the load never ran */
    bool ok = missing.n == 0 && C->receipt_bad_lines == 0 && C->nreceipts > 0;
    s_result(C, ok,
             "a receipts: %zu of %zu receipt ids are ingest 'E' records%s, %llu missing%s, %llu malformed lines%s%s%s",
             C->nreceipts - (size_t) missing.n, C->nreceipts, trail, (unsigned long long) missing.n, ex,
             (unsigned long long) C->receipt_bad_lines, C->receipt_bad_lines ? " e.g. " : "",
             C->receipt_bad_lines ? C->receipt_bad_example : "", C->nreceipts ? "" : "; the file holds no receipts");
}

/* s_frontier_unique - sort (id, rec) pairs and keep one per id */
static void s_frontier_unique(uint64_t *v, size_t *n)
{
    s_sort_u64(v, *n);
    size_t k = 0;
    for (size_t i = 0; i < *n; i++)
        if (k == 0 || s_key_of(v[k - 1]) != s_key_of(v[i]))
            v[k++] = v[i];
    *n = k;
}

/* s_push - append to a growable u64 array */
static void s_push(uint64_t **v, size_t *n, size_t *cap, uint64_t x)
{
    if (*n == *cap) {
        *cap = *cap ? *cap * 2 : 1024;
        *v = s_xrealloc(*v, *cap * sizeof **v);
    }
    (*v)[(*n)++] = x;
}

/* s_initial_frontier - the receipts the chains start from: those of the
 * file found in ingest, or every ingest receipt without a file */
static void s_initial_frontier(const check_t *C, const index_t *ingest_by_id, uint64_t **v, size_t *n)
{
    size_t cap = 0;
    *v = NULL;
    *n = 0;
    if (!C->receipts_path) {
        for (size_t i = 0; i < ingest_by_id->n; i++)
            s_push(v, n, &cap, ingest_by_id->v[i]);
    } else {
        for (size_t i = 0; i < C->nreceipts; i++) {
            size_t cnt, at = s_index_find(ingest_by_id, C->receipts[i], &cnt);
            if (cnt)
                s_push(v, n, &cap, ingest_by_id->v[at]);
        }
    }
    s_frontier_unique(*v, n);
}

/* chain_t - one stage's step of check b */
typedef struct {
    index_t by_cause, consumed;
    index_t stored; /* with retired segments: audit's stored copies, by cause */
    uint64_t *next;
    size_t nnext, capnext;
    uint64_t inputs, answered, consumed_only, in_trail, unknown;
    examples_t missing;
} chain_t;

/* s_successors - push stage s's answers to x (its 'E' records, or where s
 * retired them, audit's stored copies made by s, whose own dest is not
 * known); true if any */
static bool s_successors(check_t *C, chain_t *ch, int s, const rec_t *x)
{
    size_t cnt, at = s_index_find(&ch->by_cause, x->id, &cnt);
    bool found = cnt > 0;
    for (size_t j = at; j < at + cnt; j++) {
        size_t r = s_rec_of(ch->by_cause.v[j]);
        s_push(&ch->next, &ch->nnext, &ch->capnext, s_key(C->recs[r].id, r));
    }
    if (found || !ch->stored.n)
        return found;
    at = s_index_find(&ch->stored, x->id, &cnt);
    for (size_t j = at; j < at + cnt; j++) {
        size_t r = s_rec_of(ch->stored.v[j]);
        if (C->recs[r].from != s)
            continue;
        C->recs[r].dest = DEST_UNKNOWN;
        s_push(&ch->next, &ch->nnext, &ch->capnext, s_key(C->recs[r].id, r));
        found = true;
    }
    ch->in_trail += found;
    return found;
}

/* s_chain_step - stage s's answers to the frontier; the next frontier in ch */
static void s_chain_step(check_t *C, chain_t *ch, int s, const uint64_t *front, size_t nfront)
{
    ch->by_cause = s_index_build(C, s, -1, STAGE_REC_EVENT, true);
    ch->consumed = s_index_build(C, s, -1, STAGE_REC_CONSUMED, false);
    if (s_stage_retired(C, s))
        ch->stored = s_index_build(C, config_stage_index("audit"), -1, STAGE_REC_STORED, true);
    for (size_t i = 0; i < nfront; i++) {
        const rec_t *x = &C->recs[s_rec_of(front[i])];
        if (!(x->dest & STAGE_TO_NEXT))
            continue;
        ch->inputs++;
        size_t cnt;
        if (s_successors(C, ch, s, x)) {
            ch->answered++;
            continue;
        }
        s_index_find(&ch->consumed, x->id, &cnt);
        if (cnt)
            ch->consumed_only++;
        else if (x->dest == DEST_UNKNOWN) /* a copy: it may never have been sent on */
            ch->unknown++, ch->inputs--;
        else
            s_example(&ch->missing, "%s%s", s_pool_str(&C->pool, x->id), NULL);
    }
    free(ch->by_cause.v);
    free(ch->consumed.v);
    free(ch->stored.v);
}

/* s_check_chains - b: walk the receipts' chains stage by stage; each
 * listed stage must answer every event sent on to it */
static void s_check_chains(check_t *C, const index_t *ingest_by_id)
{
    int last = 0;
    for (int s = 1; s < CONFIG_NSTAGES - 1; s++)
        if (C->stage_listed[s])
            last = s;
    uint64_t *front;
    size_t nfront;
    s_initial_frontier(C, ingest_by_id, &front, &nfront);
    for (int s = 1; s <= last; s++) {
        chain_t ch = {0};
        s_chain_step(C, &ch, s, front, nfront);
        if (C->stage_listed[s]) {
            char ex[1024], trail[160] = "";
            s_examples_text(&ch.missing, ex, sizeof ex);
            if (ch.in_trail || ch.unknown)
                snprintf(trail, sizeof trail,
                         " (%llu found in audit's trail: %s retired their records; %llu copies there never sent on)",
                         (unsigned long long) ch.in_trail, config_stages[s], (unsigned long long) ch.unknown);
            const char *prev = s == 1 ? "receipts" : config_stages[s - 1];
            s_result(C, ch.missing.n == 0 && C->stage_ninst[s] > 0,
                     "b chain %s: %llu of %llu %s sent on have a successor in %s (%d instance%s)%s, "
                     "%llu consumed with no output, %llu missing%s%s",
                     config_stages[s], (unsigned long long) ch.answered, (unsigned long long) ch.inputs, prev,
                     config_stages[s], C->stage_ninst[s], C->stage_ninst[s] == 1 ? "" : "s", trail,
                     (unsigned long long) ch.consumed_only, (unsigned long long) ch.missing.n, ex,
                     C->stage_ninst[s] ? "" : "; no journal directory for this stage");
        }
        free(front);
        s_frontier_unique(ch.next, &ch.nnext);
        front = ch.next;
        nfront = ch.nnext;
    }
    free(front);
}

/* s_dup_ids - ids appearing more than once in a by-id index (one instance) */
static void s_dup_ids(const check_t *C, const index_t *ix, examples_t *dups)
{
    for (size_t i = 1; i < ix->n; i++)
        if (s_key_of(ix->v[i]) == s_key_of(ix->v[i - 1]) && (i < 2 || s_key_of(ix->v[i - 1]) != s_key_of(ix->v[i - 2])))
            s_example(dups, "%s@%s", s_pool_str(&C->pool, s_key_of(ix->v[i])),
                      C->inst[C->recs[s_rec_of(ix->v[i])].inst].name);
}

/* s_cmp_u32 - qsort order */
static int s_cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *) a, y = *(const uint32_t *) b;
    return (x > y) - (x < y);
}

/* s_derived_group - do the n records answering one cause carry exactly the
 * ids event_derive_id(stage, cause, 0..n-1)? (over GROUP_MAX answers to
 * one input counts as no) */
static bool s_derived_group(check_t *C, const char *stage, const index_t *by_cause, size_t at, size_t n, bool retired)
{
    enum { GROUP_MAX = 256 };
    if (n > GROUP_MAX)
        return false;
    uint32_t have[GROUP_MAX], want[GROUP_MAX];
    const char *cause = s_pool_str(&C->pool, s_key_of(by_cause->v[at]));
    char id[EVENT_ID_MAX + 1];
    for (size_t j = 0; j < n; j++)
        have[j] = C->recs[s_rec_of(by_cause->v[at + j])].id;
    qsort(have, n, sizeof have[0], s_cmp_u32);
    /* the answers 0..n-1; where the instance retired old segments, the first
     * answers of the input at the boundary may be gone: off..off+n-1 */
    for (size_t off = 0; off == 0 || (retired && off + n <= GROUP_MAX); off++) {
        bool known = true;
        for (size_t j = 0; known && j < n; j++) {
            event_derive_id(id, stage, cause, (unsigned) (off + j));
            known = s_pool_find(&C->pool, id, strlen(id), &want[j]);
        }
        if (!known)
            continue;
        qsort(want, n, sizeof want[0], s_cmp_u32);
        if (memcmp(have, want, n * sizeof have[0]) == 0)
            return true;
    }
    return false;
}

/* s_check_instance_once - c, one instance: duplicate ids, ids not derived
 * from their cause; counts into the stage's tallies */
static void s_check_instance_once(check_t *C, int k, examples_t *dups, examples_t *underived, uint64_t *multi)
{
    const inst_t *in = &C->inst[k];
    index_t by_id = s_index_build(C, in->stage_idx, k, STAGE_REC_EVENT, false);
    s_dup_ids(C, &by_id, dups);
    free(by_id.v);
    if (config_stage_index("audit") == in->stage_idx) {
        index_t stored = s_index_build(C, in->stage_idx, k, STAGE_REC_STORED, false);
        s_dup_ids(C, &stored, dups);
        free(stored.v);
    }
    index_t by_cause = s_index_build(C, in->stage_idx, k, STAGE_REC_EVENT, true);
    char path[1024];
    snprintf(path, sizeof path, "%s/%s/retired", C->data_dir, in->name);
    bool retired = access(path, F_OK) == 0;
    for (size_t i = 0; i < by_cause.n;) {
        size_t n;
        s_index_find(&by_cause, s_key_of(by_cause.v[i]), &n);
        if (n > 1)
            (*multi)++;
        if (!s_derived_group(C, in->stage, &by_cause, i, n, retired))
            s_example(underived, "%s@%s", s_pool_str(&C->pool, s_key_of(by_cause.v[i])), in->name);
        i += n;
    }
    free(by_cause.v);
}

/* s_cross_instance - c, a multi-instance stage: ids in several workers'
 * journals must agree on content; repeats counted, conflicts examples */
static void s_cross_instance(check_t *C, int s, uint64_t *repeats, examples_t *conflicts)
{
    index_t by_id = s_index_build(C, s, -1, STAGE_REC_EVENT, false);
    for (size_t i = 1; i < by_id.n; i++) {
        const rec_t *a = &C->recs[s_rec_of(by_id.v[i - 1])], *b = &C->recs[s_rec_of(by_id.v[i])];
        if (a->id != b->id || a->inst == b->inst)
            continue;
        (*repeats)++;
        if (a->content != b->content)
            s_example(conflicts, "%s@%s", s_pool_str(&C->pool, b->id), C->inst[b->inst].name);
    }
    free(by_id.v);
}

/* s_check_once - c: exactly-once effects, one line per stage present */
static void s_check_once(check_t *C)
{
    for (int s = 0; s < CONFIG_NSTAGES; s++) {
        if (!C->stage_ninst[s])
            continue;
        examples_t dups = {0}, underived = {0}, conflicts = {0};
        uint64_t multi = 0, repeats = 0;
        for (int k = 0; k < C->ninst; k++)
            if (C->inst[k].stage_idx == s)
                s_check_instance_once(C, k, &dups, &underived, &multi);
        if (C->stage_ninst[s] > 1)
            s_cross_instance(C, s, &repeats, &conflicts);
        char e1[1024], e2[1024], e3[1024], cross[1200] = "";
        s_examples_text(&dups, e1, sizeof e1);
        s_examples_text(&underived, e2, sizeof e2);
        s_examples_text(&conflicts, e3, sizeof e3);
        if (C->stage_ninst[s] > 1)
            snprintf(
                cross, sizeof cross,
                "; across its %d instances %llu repeated ids (re-deliveries), %llu of them with different content%s",
                C->stage_ninst[s], (unsigned long long) repeats, (unsigned long long) conflicts.n, e3);
        s_result(C, dups.n == 0 && underived.n == 0 && conflicts.n == 0,
                 "c once %s: %llu ids journaled twice by one instance%s, %llu inputs whose answers are not "
                 "their derived ids%s, %llu inputs answered by several events%s",
                 config_stages[s], (unsigned long long) dups.n, e1, (unsigned long long) underived.n, e2,
                 (unsigned long long) multi, cross);
    }
}

/* s_check_audit - d: every event sent to audit is stored there, unchanged */
static void s_check_audit(check_t *C)
{
    int a = config_stage_index("audit");
    index_t stored = s_index_build(C, a, -1, STAGE_REC_STORED, false);
    uint64_t expected = 0;
    examples_t missing = {0}, changed = {0};
    for (size_t r = 0; r < C->nrecs; r++) {
        const rec_t *x = &C->recs[r];
        if (x->kind != STAGE_REC_EVENT || C->inst[x->inst].stage_idx == a || !(x->dest & STAGE_TO_AUDIT))
            continue;
        expected++;
        size_t cnt, at = s_index_find(&stored, x->id, &cnt);
        if (!cnt)
            s_example(&missing, "%s@%s", s_pool_str(&C->pool, x->id), C->inst[x->inst].name);
        else if (C->recs[s_rec_of(stored.v[at])].content != x->content)
            s_example(&changed, "%s@%s", s_pool_str(&C->pool, x->id), C->inst[x->inst].name);
    }
    char e1[1024], e2[1024];
    s_examples_text(&missing, e1, sizeof e1);
    s_examples_text(&changed, e2, sizeof e2);
    s_result(C, C->stage_ninst[a] > 0 && missing.n == 0 && changed.n == 0,
             "d audit: %llu of %llu events sent to audit are stored in %d audit instance%s, %llu missing%s, "
             "%llu stored with different content%s%s",
             (unsigned long long) (expected - missing.n - changed.n), (unsigned long long) expected, C->stage_ninst[a],
             C->stage_ninst[a] == 1 ? "" : "s", (unsigned long long) missing.n, e1, (unsigned long long) changed.n, e2,
             C->stage_ninst[a] ? "" : "; no audit journal directory");
    free(stored.v);
}

/* s_check_journals - e: every journal read cleanly, every record decoded */
static void s_check_journals(check_t *C)
{
    uint64_t records = 0, bad = 0;
    int corrupt = 0;
    examples_t ex = {0};
    for (int k = 0; k < C->ninst; k++) {
        const inst_t *in = &C->inst[k];
        records += in->records;
        bad += in->bad;
        if (in->corrupt) {
            corrupt++;
            s_example(&ex, "[%s: %s]", in->name, in->error);
        }
        if (in->bad)
            s_example(&ex, "[%s%s]", in->bad_example, "");
    }
    char e[2048];
    s_examples_text(&ex, e, sizeof e);
    s_result(C, corrupt == 0 && bad == 0,
             "e journals: %d instances, %llu records read, %d journals corrupt, %llu undecodable records%s", C->ninst,
             (unsigned long long) records, corrupt, (unsigned long long) bad, e);
}

/* s_print_inventory - what was found, one line per instance */
static void s_print_inventory(const check_t *C)
{
    if (C->quiet)
        return;
    for (int k = 0; k < C->ninst; k++) {
        const inst_t *in = &C->inst[k];
        printf("# %-10s records=%llu E=%llu S=%llu C=%llu W=%llu\n", in->name, (unsigned long long) in->records,
               (unsigned long long) in->n_e, (unsigned long long) in->n_s, (unsigned long long) in->n_c,
               (unsigned long long) in->n_w);
    }
    if (C->receipts_path)
        printf("# receipts file: %zu receipt ids\n", C->nreceipts);
}

/* ---- command line ------------------------------------------------------ */

/* s_usage - the synopsis; exit 2 */
static void s_usage(const char *why)
{
    if (why)
        fprintf(stderr, "pg-check: %s\n", why);
    fprintf(stderr, "usage: pg-check --data DIR [--receipts receipts.txt]\n"
                    "                [--stages validate,triage,approve,execute] [--quiet]\n");
    exit(2);
}

/* s_parse_stages - "validate,triage" into the listed flags */
static void s_parse_stages(check_t *C, const char *text)
{
    memset(C->stage_listed, 0, sizeof C->stage_listed);
    char buf[256];
    if (strlen(text) >= sizeof buf)
        s_usage("--stages is too long");
    snprintf(buf, sizeof buf, "%s", text);
    char *save = NULL;
    for (char *t = strtok_r(buf, ",", &save); t; t = strtok_r(NULL, ",", &save)) {
        int s = config_stage_index(t);
        if (s < 1 || s >= CONFIG_NSTAGES - 1) {
            char why[300];
            snprintf(why, sizeof why, "--stages: '%.40s' is not one of validate, triage, approve, execute", t);
            s_usage(why);
        }
        C->stage_listed[s] = true;
    }
}

/* s_parse_args - command line to the check's settings */
static void s_parse_args(check_t *C, int argc, char **argv)
{
    static const struct option longopts[] = {
        {"data", required_argument, NULL, 'd'},   {"receipts", required_argument, NULL, 'r'},
        {"stages", required_argument, NULL, 's'}, {"quiet", no_argument, NULL, 'q'},
        {"help", no_argument, NULL, 'h'},         {NULL, 0, NULL, 0}};
    s_parse_stages(C, "validate,triage,approve,execute");
    int c;
    while ((c = getopt_long(argc, argv, "", longopts, NULL)) != -1) {
        switch (c) {
        case 'd':
            C->data_dir = optarg;
            break;
        case 'r':
            C->receipts_path = optarg;
            break;
        case 's':
            s_parse_stages(C, optarg);
            break;
        case 'q':
            C->quiet = true;
            break;
        case 'h':
            s_usage(NULL);
            break;
        default:
            s_usage("unknown option");
            break;
        }
    }
    if (optind < argc)
        s_usage("unexpected argument");
    if (!C->data_dir)
        s_usage("--data is required");
}

int main(int argc, char **argv)
{
    static check_t C;
    s_parse_args(&C, argc, argv);
    if (s_find_instances(&C) != 0)
        return 2;
    if (C.receipts_path && s_read_receipts(&C) != 0)
        return 2;
    for (int k = 0; k < C.ninst; k++)
        s_read_journal(&C, k);
    s_print_inventory(&C);

    index_t ingest_by_id = s_index_build(&C, 0, -1, STAGE_REC_EVENT, false);
    s_check_receipts(&C, &ingest_by_id);
    s_check_chains(&C, &ingest_by_id);
    free(ingest_by_id.v);
    s_check_once(&C);
    s_check_audit(&C);
    s_check_journals(&C);

    printf("%d passed, %d failed\n", C.passed, C.failed);
    free(C.recs);
    free(C.receipts);
    free(C.pool.chars);
    free(C.pool.off);
    free(C.pool.slots);
    return C.failed ? 1 : 0;
}
