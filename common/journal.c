/* journal - append-only, segmented, checksummed record log (see journal.h).
 *
 * WRITER
 *   One mutex guards the tail: seq assignment, the writev of header+payload,
 *   segment rotation and the counters. Durability is tracked as two numbers,
 *   last_seq (written) and durable_seq (covered by an fdatasync). Group
 *   commit: a waiter whose seq is not yet durable either waits on the
 *   condition variable while another thread's fdatasync runs, or becomes the
 *   syncer itself: it notes target = last_seq, drops the lock, fdatasyncs,
 *   retakes the lock, sets durable_seq = target and wakes everyone. Appends
 *   go on while the sync runs; the next waiter's sync covers them.
 *   Rotation waits for a running sync to finish (the syncer holds the old
 *   fd without the lock), fdatasyncs the old segment, and only then creates
 *   the next one, so a later segment never exists beside an unsynced tail.
 *   Every failed write/fsync/fdatasync exits the process (fsyncgate).
 *   An flock on the directory keeps a second writer out.
 *
 * RECOVERY
 *   Segments are mapped read-only and checked record by record. A record is
 *   valid when its length is 1..JOURNAL_HARD_MAX_RECORD_BYTES, it fits in
 *   the file, its CRC matches and its seq is the next one. A checksummed
 *   record longer than the current max_record_bytes is kept (it was
 *   written under a larger setting; dropping it would lose acknowledged
 *   data). The first invalid record in the last segment is a torn tail,
 *   truncated, unless it is itself a checksummed record (wrong seq) or a
 *   valid record with a higher seq follows it: then, as for any invalid
 *   record in an earlier segment, journal_open refuses to start.
 *
 * READER
 *   Plain pread on its own fds, so it never disturbs the writer. It follows
 *   rotation by opening the segment named for the next expected seq when
 *   the current one ends on a record boundary. A partial record (its length
 *   runs past the end of the file) is "not written yet" and reads as the
 *   end (0), unless a later segment exists or a valid record with a later
 *   seq follows it in this one: then it is read once more (the writer may
 *   have finished it meanwhile) and, still partial, reported as corruption.
 *   So a broken length field is not mistaken for the end of the journal.
 */
#include "journal.h"

#include "crc32c.h"
#include "log.h"
#include "segzst.h"

#include <assert.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/random.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define JOURNAL_MAGIC "PGJRNL01"
#define JOURNAL_MAGIC_BYTES 8u
/* no record, whatever max_record_bytes says, may be larger than this */
#define JOURNAL_HARD_MAX_RECORD_BYTES (1u << 30)
/* segment file names: 20 digits + ".seg" */
#define JOURNAL_SEG_NAME_LEN 24u
#define JOURNAL_MAX_SEGMENTS (1u << 20)
#define JOURNAL_DIR_MAX 3900u
/* how far past a partial record a reader looks for a valid one */
#define JOURNAL_READER_SEARCH_BYTES (256u * 1024u * 1024u)

/* ------------------------------------------------------------------ */
/* shared helpers                                                       */

typedef struct {
    uint64_t seq;
    char name[JOURNAL_SEG_NAME_LEN + 1];
} s_segment_t;

static ssize_t s_pread_full(int fd, void *buf, size_t n, uint64_t off);

/* what one look at a record found */
typedef enum {
    S_REC_OK = 0,
    S_REC_PARTIAL, /* runs past the end of the data: torn or not yet written */
    S_REC_BAD,     /* complete but invalid: length, checksum */
    S_REC_BAD_SEQ, /* complete and checksummed, but not the seq expected */
    S_REC_END      /* reader: nothing after this record boundary (yet) */
} s_rec_t;

/* s_le32 - decode the on-disk little-endian u32 whatever the host order */
static uint32_t s_le32(const unsigned char *p)
{
    return (uint32_t) p[0] | (uint32_t) p[1] << 8 | (uint32_t) p[2] << 16 | (uint32_t) p[3] << 24;
}

/* s_le64 - decode the on-disk little-endian u64 whatever the host order */
static uint64_t s_le64(const unsigned char *p)
{
    return (uint64_t) s_le32(p) | (uint64_t) s_le32(p + 4) << 32;
}

/* s_put_le32 - encode little endian so files move between hosts */
static void s_put_le32(unsigned char *p, uint32_t v)
{
    for (int i = 0; i < 4; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

/* s_put_le64 - encode little endian so files move between hosts */
static void s_put_le64(unsigned char *p, uint64_t v)
{
    for (int i = 0; i < 8; i++)
        p[i] = (unsigned char) (v >> (8 * i));
}

/* s_record_crc - the checksum as the format defines it: len, seq, payload */
static uint32_t s_record_crc(const unsigned char *header, const void *payload, size_t len)
{
    uint32_t crc = crc32c_update(0, header, 4);
    crc = crc32c_update(crc, header + 8, 8);
    return crc32c_update(crc, payload, len);
}

/* s_err - fill the caller's error buffer, which may be absent */
__attribute__((format(printf, 3, 4))) static void s_err(char *err, size_t errlen, const char *fmt, ...)
{
    if (!err || errlen == 0)
        return;
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(err, errlen, fmt, ap);
    va_end(ap);
}

/* s_now_ns - monotonic clock for sync timings */
static uint64_t s_now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t) ts.tv_sec * 1000000000u + (uint64_t) ts.tv_nsec;
}

/* s_fatal - a failed write or sync leaves the disk state unknown: we must
 * not go on acknowledging, so log and exit for the supervisor (fsyncgate).
 * _exit, not exit: nothing more is to be written or flushed by atexit
 * handlers on a disk we no longer trust (and the log line above is already
 * out: the log is unbuffered). */
static void s_fatal(const char *dir, const char *what, int errnum)
{
    log_error("journal %s: %s failed: %s; exiting (nothing is acknowledged after a failed write or sync)", dir, what,
              strerror(errnum));
    _exit(JOURNAL_EXIT_SYNC_FAILED);
}

/* s_segment_name_parse - seq of a segment file name (archived: with
 * SEGZST_SUFFIX after it); false if not one */
static bool s_segment_name_parse(const char *name, uint64_t *seq, bool archived)
{
    size_t want = JOURNAL_SEG_NAME_LEN + (archived ? strlen(SEGZST_SUFFIX) : 0);
    if (strlen(name) != want || strncmp(name + 20, ".seg", 4) != 0 ||
        (archived && strcmp(name + JOURNAL_SEG_NAME_LEN, SEGZST_SUFFIX) != 0))
        return false;
    uint64_t v = 0;
    for (int i = 0; i < 20; i++) {
        if (name[i] < '0' || name[i] > '9')
            return false;
        unsigned d = (unsigned) (name[i] - '0');
        if (v > (UINT64_MAX - d) / 10)
            return false;
        v = v * 10 + d;
    }
    if (v == 0)
        return false;
    *seq = v;
    return true;
}

/* s_segment_name - the file name of the segment starting at seq */
static void s_segment_name(char out[JOURNAL_SEG_NAME_LEN + 1], uint64_t seq)
{
    snprintf(out, JOURNAL_SEG_NAME_LEN + 1, "%020llu.seg", (unsigned long long) seq);
}

/* s_segment_cmp - qsort order: by first seq */
static int s_segment_cmp(const void *a, const void *b)
{
    uint64_t x = ((const s_segment_t *) a)->seq, y = ((const s_segment_t *) b)->seq;
    return x < y ? -1 : x > y;
}

/* s_list_in - the segment files of dir (archived: compressed ones),
 * sorted; other names are ignored so an operator's notes or editor files do
 * not break startup */
static int s_list_in(const char *dir, bool archived, s_segment_t **out, size_t *count, char *err, size_t errlen)
{
    *out = NULL;
    *count = 0;
    DIR *d = opendir(dir);
    if (!d) {
        s_err(err, errlen, "journal %s: cannot list: %s", dir, strerror(errno));
        return -1;
    }
    s_segment_t *segs = NULL;
    size_t n = 0, cap = 0;
    struct dirent *de;
    int rc = 0;
    errno = 0;
    while ((de = readdir(d)) != NULL) {
        uint64_t seq;
        if (!s_segment_name_parse(de->d_name, &seq, archived))
            continue;
        if (n == JOURNAL_MAX_SEGMENTS) {
            s_err(err, errlen, "journal %s: more than %u segments", dir, JOURNAL_MAX_SEGMENTS);
            rc = -1;
            break;
        }
        if (n == cap) {
            size_t ncap = cap ? cap * 2 : 16;
            s_segment_t *ns = realloc(segs, ncap * sizeof *ns);
            if (!ns) {
                s_err(err, errlen, "journal %s: out of memory listing segments", dir);
                rc = -1;
                break;
            }
            segs = ns;
            cap = ncap;
        }
        segs[n].seq = seq;
        s_segment_name(segs[n].name, seq); /* the live name, archived or not */
        n++;
        errno = 0;
    }
    if (rc == 0 && errno != 0) {
        s_err(err, errlen, "journal %s: cannot list: %s", dir, strerror(errno));
        rc = -1;
    }
    closedir(d);
    if (rc != 0) {
        free(segs);
        return -1;
    }
    if (n > 1)
        qsort(segs, n, sizeof *segs, s_segment_cmp);
    *out = segs;
    *count = n;
    return 0;
}

/* s_list_segments - the live segment files of dir, sorted */
static int s_list_segments(const char *dir, s_segment_t **out, size_t *count, char *err, size_t errlen)
{
    return s_list_in(dir, false, out, count, err, errlen);
}

/* s_check_record - judge the record at p with avail bytes of data behind it;
 * used on mapped segments at recovery. why gets a reason when not OK. */
static s_rec_t s_check_record(const unsigned char *p, size_t avail, uint64_t expected, uint32_t *len_out,
                              uint64_t *seq_out, char *why, size_t whylen)
{
    if (avail < JOURNAL_HEADER_BYTES) {
        s_err(why, whylen, "header cut short (%zu of %u bytes)", avail, JOURNAL_HEADER_BYTES);
        return S_REC_PARTIAL;
    }
    uint32_t len = s_le32(p);
    uint64_t seq = s_le64(p + 8);
    if (len == 0 || len > JOURNAL_HARD_MAX_RECORD_BYTES) {
        s_err(why, whylen, "length %u out of range", len);
        return S_REC_BAD;
    }
    if (len > avail - JOURNAL_HEADER_BYTES) {
        s_err(why, whylen, "record cut short (%zu of %u payload bytes)", avail - JOURNAL_HEADER_BYTES, len);
        return S_REC_PARTIAL;
    }
    if (s_record_crc(p, p + JOURNAL_HEADER_BYTES, len) != s_le32(p + 4)) {
        s_err(why, whylen, "checksum mismatch");
        return S_REC_BAD;
    }
    *len_out = len;
    *seq_out = seq;
    if (seq != expected) {
        s_err(why, whylen, "checksummed record has seq %llu", (unsigned long long) seq);
        return S_REC_BAD_SEQ;
    }
    return S_REC_OK;
}

/* s_find_valid - search byte by byte for a checksummed record with a seq in
 * (after_seq, max_seq]: the proof that an invalid record is not a torn tail.
 * The seq window keeps the CRC work down to plausible candidates. */
static bool s_find_valid(const unsigned char *p, size_t size, size_t from, uint64_t after_seq, uint64_t max_seq,
                         size_t *at, uint64_t *seq_out)
{
    for (size_t pos = from; size >= JOURNAL_HEADER_BYTES && pos <= size - JOURNAL_HEADER_BYTES; pos++) {
        uint32_t len = s_le32(p + pos);
        if (len == 0 || len > JOURNAL_HARD_MAX_RECORD_BYTES || len > size - pos - JOURNAL_HEADER_BYTES)
            continue;
        uint64_t seq = s_le64(p + pos + 8);
        if (seq <= after_seq || seq > max_seq)
            continue;
        if (s_record_crc(p + pos, p + pos + JOURNAL_HEADER_BYTES, len) != s_le32(p + pos + 4))
            continue;
        *at = pos;
        *seq_out = seq;
        return true;
    }
    return false;
}

/* ------------------------------------------------------------------ */
/* writer                                                               */

struct journal_t {
    pthread_mutex_t lock;
    pthread_cond_t synced; /* broadcast when durable_seq moves or a sync ends */
    char dir[JOURNAL_DIR_MAX + 1];
    int dir_fd;             /* held open: flock + directory fsync */
    int fd;                 /* current segment, O_APPEND */
    uint64_t seg_first_seq; /* name of the current segment */
    uint64_t seg_size;      /* bytes in the current segment */
    journal_sync_t sync;
    size_t segment_bytes;
    size_t max_record_bytes;
    uint64_t last_seq;
    uint64_t durable_seq;
    uint64_t epoch; /* <dir>/epoch: which life of this journal (journal.h) */
    bool syncing;   /* a thread is in fdatasync without the lock */
    journal_stats_t stats;
};

/* journal_sync_parse - "always" | "batch" | "none" to the enum; -1 if unknown */
int journal_sync_parse(const char *text, journal_sync_t *out)
{
    if (!text || !out)
        return -1;
    if (strcmp(text, "batch") == 0)
        *out = JOURNAL_SYNC_BATCH;
    else if (strcmp(text, "always") == 0)
        *out = JOURNAL_SYNC_ALWAYS;
    else if (strcmp(text, "none") == 0)
        *out = JOURNAL_SYNC_NONE;
    else
        return -1;
    return 0;
}

/* s_fsync_dir_fd - make a create/unlink/rename in the directory durable */
static void s_fsync_dir_fd(const char *dir, int fd)
{
    if (fsync(fd) != 0)
        s_fatal(dir, "fsync of the directory", errno);
}

/* s_timed_fdatasync - fdatasync a segment (fatal on failure) and say how
 * long it took; the caller accounts for it with the lock held */
static uint64_t s_timed_fdatasync(const char *dir, int fd)
{
    uint64_t t0 = s_now_ns();
    if (fdatasync(fd) != 0)
        s_fatal(dir, "fdatasync", errno);
    return s_now_ns() - t0;
}

/* s_note_sync - count one fdatasync into the stats (lock held) */
static void s_note_sync(journal_t *self, uint64_t ns)
{
    self->stats.syncs++;
    self->stats.sync_ns_total += ns;
    if (ns > self->stats.sync_ns_max)
        self->stats.sync_ns_max = ns;
}

/* s_write_all - writev until everything is out: short writes and EINTR
 * are normal, anything else leaves a torn record and is fatal */
static void s_write_all(journal_t *self, struct iovec *iov, int iovcnt)
{
    while (iovcnt > 0) {
        ssize_t n = writev(self->fd, iov, iovcnt);
        if (n < 0) {
            if (errno == EINTR)
                continue;
            s_fatal(self->dir, "write", errno);
        }
        size_t left = (size_t) n;
        while (iovcnt > 0 && left >= iov->iov_len) {
            left -= iov->iov_len;
            iov++;
            iovcnt--;
        }
        if (iovcnt > 0) {
            iov->iov_base = (char *) iov->iov_base + left;
            iov->iov_len -= left;
        }
    }
}

/* s_segment_create - start the segment named seq: magic, fsync of file and
 * directory (unless sync=none), so the file exists after a crash before
 * any record in it is acknowledged. -1 with errno if it cannot be made. */
static int s_segment_create(journal_t *self, uint64_t seq)
{
    char name[JOURNAL_SEG_NAME_LEN + 1];
    s_segment_name(name, seq);
    int fd = openat(self->dir_fd, name, O_WRONLY | O_CREAT | O_EXCL | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    int saved = self->fd;
    self->fd = fd;
    struct iovec iov = {.iov_base = (void *) JOURNAL_MAGIC, .iov_len = JOURNAL_MAGIC_BYTES};
    s_write_all(self, &iov, 1);
    if (self->sync != JOURNAL_SYNC_NONE) {
        if (fsync(fd) != 0)
            s_fatal(self->dir, "fsync of a new segment", errno);
        s_fsync_dir_fd(self->dir, self->dir_fd);
    }
    if (saved >= 0)
        close(saved);
    self->seg_first_seq = seq;
    self->seg_size = JOURNAL_MAGIC_BYTES;
    return 0;
}

/* s_rotate - close the full segment and start the next one (lock held,
 * no group-commit sync running: that one uses the old fd unlocked) */
static void s_rotate(journal_t *self)
{
    assert(!self->syncing);
    if (self->sync != JOURNAL_SYNC_NONE && self->durable_seq < self->last_seq) {
        s_note_sync(self, s_timed_fdatasync(self->dir, self->fd));
        self->durable_seq = self->last_seq;
        pthread_cond_broadcast(&self->synced);
    }
    if (s_segment_create(self, self->last_seq + 1) != 0)
        s_fatal(self->dir, "creating a segment", errno);
}

/* s_corrupt - the message of a refused start: file, offset, expected seq */
__attribute__((format(printf, 6, 7))) static void s_corrupt(char *err, size_t errlen, const char *dir, const char *name,
                                                            const char *what, const char *fmt, ...)
{
    char tail[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(tail, sizeof tail, fmt, ap);
    va_end(ap);
    s_err(err, errlen, "journal %s/%s: %s; refusing to start - %s", dir, name, what, tail);
}

/* s_recover_segment - check one segment; the last one may lose a torn tail.
 * *expected moves past every good record. 0 ok, 1 removed (too short to
 * hold its magic), -1 refused with a message in err. */
static int s_recover_segment(journal_t *self, const s_segment_t *seg, bool is_last, uint64_t *expected, char *err,
                             size_t errlen)
{
    int fd = openat(self->dir_fd, seg->name, (is_last ? O_RDWR : O_RDONLY) | O_CLOEXEC);
    if (fd < 0) {
        s_err(err, errlen, "journal %s/%s: cannot open: %s", self->dir, seg->name, strerror(errno));
        return -1;
    }
    struct stat st;
    if (fstat(fd, &st) != 0) {
        s_err(err, errlen, "journal %s/%s: cannot stat: %s", self->dir, seg->name, strerror(errno));
        close(fd);
        return -1;
    }
    if ((uint64_t) st.st_size > SIZE_MAX) {
        s_err(err, errlen, "journal %s/%s: too large to map", self->dir, seg->name);
        close(fd);
        return -1;
    }
    size_t size = (size_t) st.st_size;

    if (size < JOURNAL_MAGIC_BYTES) {
        /* a crash between creating the file and writing its magic */
        unsigned char head[JOURNAL_MAGIC_BYTES];
        ssize_t n = size ? pread(fd, head, size, 0) : 0;
        bool prefix = n == (ssize_t) size && memcmp(head, JOURNAL_MAGIC, size) == 0;
        if (!is_last || !prefix) {
            s_err(err, errlen, "journal %s/%s: %zu bytes, too short for a segment; refusing to start", self->dir,
                  seg->name, size);
            close(fd);
            return -1;
        }
        close(fd);
        if (seg->seq != *expected) {
            s_err(err, errlen, "journal %s/%s: named for seq %llu but seq %llu comes next; refusing to start",
                  self->dir, seg->name, (unsigned long long) seg->seq, (unsigned long long) *expected);
            return -1;
        }
        if (unlinkat(self->dir_fd, seg->name, 0) != 0) {
            s_err(err, errlen, "journal %s/%s: cannot remove: %s", self->dir, seg->name, strerror(errno));
            return -1;
        }
        s_fsync_dir_fd(self->dir, self->dir_fd);
        self->stats.truncated_bytes += size;
        log_warn("journal %s/%s: torn segment of %zu bytes (no complete magic), removed", self->dir, seg->name, size);
        return 1;
    }

    const unsigned char *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED) {
        s_err(err, errlen, "journal %s/%s: cannot map: %s", self->dir, seg->name, strerror(errno));
        close(fd);
        return -1;
    }
    int rc = 0;
    char what[256];
    char why[128];
    if (memcmp(map, JOURNAL_MAGIC, JOURNAL_MAGIC_BYTES) != 0) {
        s_err(err, errlen, "journal %s/%s: bad magic, not a journal segment; refusing to start", self->dir, seg->name);
        rc = -1;
        goto done;
    }
    if (seg->seq != *expected) {
        s_err(err, errlen,
              "journal %s/%s: named for seq %llu but seq %llu comes next (a segment is missing or misnamed); "
              "refusing to start",
              self->dir, seg->name, (unsigned long long) seg->seq, (unsigned long long) *expected);
        rc = -1;
        goto done;
    }

    size_t off = JOURNAL_MAGIC_BYTES;
    s_rec_t verdict = S_REC_OK;
    uint32_t len = 0;
    uint64_t seq = 0;
    while (off < size) {
        verdict = s_check_record(map + off, size - off, *expected, &len, &seq, why, sizeof why);
        if (verdict != S_REC_OK)
            break;
        (*expected)++;
        off += JOURNAL_HEADER_BYTES + len;
    }
    if (off == size)
        goto done;

    snprintf(what, sizeof what, "corrupt record at byte %zu (expected seq %llu): %s", off,
             (unsigned long long) *expected, why);
    if (!is_last) {
        s_corrupt(err, errlen, self->dir, seg->name, what, "later segments exist, so this is not a torn tail");
        rc = -1;
        goto done;
    }
    if (verdict == S_REC_BAD_SEQ) {
        s_corrupt(err, errlen, self->dir, seg->name, what, "a complete checksummed record is not a torn tail");
        rc = -1;
        goto done;
    }
    /* a torn tail is what a crash in the middle of a write leaves; a
     * checksummed record further on means something broke this one */
    uint64_t last_good = *expected - 1;
    uint64_t max_seq = last_good + 1 + (size - off) / (JOURNAL_HEADER_BYTES + 1);
    size_t at;
    uint64_t found;
    if (s_find_valid(map, size, off + 1, last_good, max_seq, &at, &found)) {
        s_corrupt(err, errlen, self->dir, seg->name, what,
                  "a valid record follows (seq %llu at byte %zu), so this is not a torn tail",
                  (unsigned long long) found, at);
        rc = -1;
        goto done;
    }
    munmap((void *) map, size);
    map = NULL;
    if (ftruncate(fd, (off_t) off) != 0)
        s_fatal(self->dir, "ftruncate of a torn tail", errno);
    if (fsync(fd) != 0)
        s_fatal(self->dir, "fsync of a truncated segment", errno);
    self->stats.truncated_bytes += size - off;
    log_warn("journal %s/%s: torn tail at byte %zu (expected seq %llu): %s; truncated %zu bytes", self->dir, seg->name,
             off, (unsigned long long) *expected, why, size - off);
    size = off;

done:
    if (map)
        munmap((void *) map, size);
    close(fd);
    return rc;
}

#define JOURNAL_RETIRED_FILE "retired"

/* s_retired_below - the first seq kept after a retirement (<dir>/retired),
 * 0 when none was retired */
static uint64_t s_retired_below(int dir_fd)
{
    int fd = openat(dir_fd, JOURNAL_RETIRED_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    char buf[32] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    uint64_t seq = 0;
    if (n > 0 && buf[0] >= '0' && buf[0] <= '9')
        seq = strtoull(buf, NULL, 10);
    return seq;
}

/* s_write_small - <dir>/name = text, durably: written, fdatasync'd,
 * renamed over the old one, the directory fsync'd; -1 and errno if not */
static int s_write_small(int dir_fd, const char *name, const char *text)
{
    char tmp[64];
    snprintf(tmp, sizeof tmp, "%s.tmp", name);
    size_t n = strlen(text);
    int fd = openat(dir_fd, tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0640);
    if (fd < 0)
        return -1;
    bool ok = write(fd, text, n) == (ssize_t) n && fdatasync(fd) == 0;
    close(fd);
    if (!ok || renameat(dir_fd, tmp, dir_fd, name) != 0)
        return -1;
    return fsync(dir_fd);
}

/* s_write_retired - <dir>/retired = seq, durably, before anything is unlinked */
static int s_write_retired(journal_t *self, uint64_t seq)
{
    char text[32];
    snprintf(text, sizeof text, "%llu\n", (unsigned long long) seq);
    return s_write_small(self->dir_fd, JOURNAL_RETIRED_FILE, text);
}

#define JOURNAL_EPOCH_FILE "epoch"

/* s_read_epoch - <dir>/epoch: 0 and the value, 1 when there is none, -1
 * when it is not 16 hex digits and a newline (someone edited it) */
static int s_read_epoch(int dir_fd, uint64_t *epoch)
{
    int fd = openat(dir_fd, JOURNAL_EPOCH_FILE, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? 1 : -1;
    char buf[32] = {0};
    ssize_t n = read(fd, buf, sizeof buf - 1);
    close(fd);
    if (n != 17 || buf[16] != '\n' || strspn(buf, "0123456789abcdef") != 16)
        return -1;
    *epoch = strtoull(buf, NULL, 16);
    return *epoch ? 0 : -1;
}

/* s_epoch - this journal's epoch: read, or drawn (getrandom, never 0) and
 * written durably when the directory has none; 0 and err on failure */
static uint64_t s_epoch(int dir_fd, const char *dir, char *err, size_t errlen)
{
    uint64_t epoch = 0;
    int rc = s_read_epoch(dir_fd, &epoch);
    if (rc == 0)
        return epoch;
    if (rc < 0) {
        s_err(err, errlen, "journal %s: %s is not 16 hex digits (edited or damaged)", dir, JOURNAL_EPOCH_FILE);
        return 0;
    }
    while (epoch == 0)
        if (getrandom(&epoch, sizeof epoch, 0) != (ssize_t) sizeof epoch) {
            s_err(err, errlen, "journal %s: no random epoch: %s", dir, strerror(errno));
            return 0;
        }
    char text[32];
    snprintf(text, sizeof text, "%016llx\n", (unsigned long long) epoch);
    if (s_write_small(dir_fd, JOURNAL_EPOCH_FILE, text) != 0) {
        s_err(err, errlen, "journal %s: cannot write %s: %s", dir, JOURNAL_EPOCH_FILE, strerror(errno));
        return 0;
    }
    return epoch;
}

/* journal_dir_epoch - see journal.h */
int journal_dir_epoch(const char *dir, uint64_t *epoch)
{
    int fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (fd < 0)
        return -1;
    int rc = s_read_epoch(fd, epoch);
    close(fd);
    return rc == 0 ? 0 : -1;
}

/* journal_epoch - see journal.h */
uint64_t journal_epoch(journal_t *self)
{
    return self->epoch;
}

/* s_retirable - how many of the listed segments (a prefix) journal_retire
 * may remove, their bytes in *size (caller holds the lock) */
static size_t s_retirable(journal_t *self, const s_segment_t *segs, size_t n, uint64_t upto, int64_t older_than_s,
                          uint64_t *size)
{
    size_t k = 0;
    *size = 0;
    for (; k + 1 < n && segs[k].seq != self->seg_first_seq && segs[k + 1].seq - 1 <= upto; k++) {
        struct stat st;
        if (fstatat(self->dir_fd, segs[k].name, &st, 0) != 0 || st.st_mtime >= older_than_s)
            break;
        *size += (uint64_t) st.st_size;
    }
    return k;
}

/* journal_first_live_seq - see journal.h */
uint64_t journal_first_live_seq(journal_t *self)
{
    assert(self);
    s_segment_t *segs = NULL;
    size_t n = 0;
    pthread_mutex_lock(&self->lock);
    uint64_t first = s_list_segments(self->dir, &segs, &n, NULL, 0) == 0 && n ? segs[0].seq : 1;
    pthread_mutex_unlock(&self->lock);
    free(segs);
    return first;
}

/* journal_usage - see journal.h */
int journal_usage(journal_t *self, size_t *segments, uint64_t *bytes, char *err, size_t errlen)
{
    assert(self && segments && bytes);
    s_segment_t *segs = NULL;
    size_t n = 0;
    *segments = 0;
    *bytes = 0;
    pthread_mutex_lock(&self->lock);
    int rc = s_list_segments(self->dir, &segs, &n, err, errlen);
    for (size_t i = 0; rc == 0 && i < n; i++) {
        struct stat st;
        if (fstatat(self->dir_fd, segs[i].name, &st, 0) == 0)
            *bytes += (uint64_t) st.st_size;
    }
    pthread_mutex_unlock(&self->lock);
    free(segs);
    *segments = rc == 0 ? n : 0;
    return rc;
}

/* journal_retirable - see journal.h */
int journal_retirable(journal_t *self, uint64_t upto, int64_t older_than_s, char *err, size_t errlen)
{
    assert(self);
    s_segment_t *segs = NULL;
    size_t n = 0;
    uint64_t size;
    pthread_mutex_lock(&self->lock);
    int rc = s_list_segments(self->dir, &segs, &n, err, errlen);
    size_t k = rc == 0 ? s_retirable(self, segs, n, upto, older_than_s, &size) : 0;
    pthread_mutex_unlock(&self->lock);
    free(segs);
    return rc == 0 ? (int) k : -1;
}

/* journal_retire - see journal.h */
int journal_retire(journal_t *self, uint64_t upto, int64_t older_than_s, uint64_t *bytes, char *err, size_t errlen)
{
    assert(self && bytes);
    *bytes = 0;
    s_segment_t *segs = NULL;
    size_t n = 0;
    pthread_mutex_lock(&self->lock);
    if (s_list_segments(self->dir, &segs, &n, err, errlen) != 0) {
        pthread_mutex_unlock(&self->lock);
        return -1;
    }
    uint64_t size = 0;
    size_t k = s_retirable(self, segs, n, upto, older_than_s, &size);
    int rc = 0;
    if (k > 0 && s_write_retired(self, segs[k].seq) != 0) {
        s_err(err, errlen, "journal %s: cannot write %s: %s", self->dir, JOURNAL_RETIRED_FILE, strerror(errno));
        rc = -1;
    }
    for (size_t i = 0; rc == 0 && i < k; i++)
        unlinkat(self->dir_fd, segs[i].name, 0);
    if (rc == 0 && k > 0)
        fsync(self->dir_fd);
    pthread_mutex_unlock(&self->lock);
    free(segs);
    *bytes = rc == 0 ? size : 0;
    return rc == 0 ? (int) k : -1;
}

#define JOURNAL_ARCHIVE_FILE "archive"
#define JOURNAL_COMPARE_BYTES (256u * 1024u)

/* s_archive_path - the archive directory <dir>/archive names (journal_archive);
 * 1 and the path, 0 when the journal has none */
static int s_archive_path(const char *dir, char *out, size_t outlen)
{
    char path[JOURNAL_DIR_MAX + 16];
    snprintf(path, sizeof path, "%s/%s", dir, JOURNAL_ARCHIVE_FILE);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return 0;
    ssize_t n = read(fd, out, outlen - 1);
    close(fd);
    if (n <= 1 || out[n - 1] != '\n')
        return 0;
    out[n - 1] = '\0';
    return 1;
}

/* s_same_bytes - do the files at fds a and b hold the same bytes? */
static bool s_same_bytes(int a, int b)
{
    unsigned char *x = malloc(2 * JOURNAL_COMPARE_BYTES), *y = x + JOURNAL_COMPARE_BYTES;
    bool same = x != NULL;
    for (uint64_t off = 0; same; off += JOURNAL_COMPARE_BYTES) {
        ssize_t n = s_pread_full(a, x, JOURNAL_COMPARE_BYTES, off), m = s_pread_full(b, y, JOURNAL_COMPARE_BYTES, off);
        same = n >= 0 && n == m && memcmp(x, y, (size_t) n) == 0;
        if (n < (ssize_t) JOURNAL_COMPARE_BYTES)
            break;
    }
    free(x);
    return same;
}

/* s_archive_copy - dir/name compressed to archive/name.zst, expanded again
 * and compared with the original; its size in *zbytes */
static int s_archive_copy(const char *dir, const char *archive, const char *name, uint64_t *zbytes, char *err,
                          size_t errlen)
{
    char src[JOURNAL_DIR_MAX + JOURNAL_SEG_NAME_LEN + 2], dst[PATH_MAX];
    snprintf(src, sizeof src, "%s/%s", dir, name);
    if (snprintf(dst, sizeof dst, "%s/%s%s", archive, name, SEGZST_SUFFIX) >= (int) sizeof dst)
        return s_err(err, errlen, "journal archive %s: path too long", archive), -1;
    if (mkdir(archive, 0750) != 0 && errno != EEXIST)
        return s_err(err, errlen, "journal archive %s: cannot create: %s", archive, strerror(errno)), -1;
    if (segzst_compress(src, dst, zbytes, err, errlen) != 0)
        return -1;
    int e = segzst_expand(dst, err, errlen), o = open(src, O_RDONLY | O_CLOEXEC);
    bool same = e >= 0 && o >= 0 && s_same_bytes(e, o);
    if (e >= 0)
        close(e);
    if (o >= 0)
        close(o);
    if (!same && e >= 0) {
        unlink(dst);
        s_err(err, errlen, "journal archive %s: the copy of %s does not read back the same (removed)", dst, src);
    }
    return same ? 0 : -1;
}

/* journal_archive - see journal.h */
int journal_archive(journal_t *self, const char *archive, uint64_t upto, int64_t older_than_s, uint64_t *bytes,
                    uint64_t *zbytes, char *err, size_t errlen)
{
    assert(self && archive && *archive == '/' && bytes && zbytes);
    *bytes = *zbytes = 0;
    s_segment_t *segs = NULL;
    size_t n = 0;
    pthread_mutex_lock(&self->lock); /* the list only: a closed segment never changes */
    int rc = s_list_segments(self->dir, &segs, &n, err, errlen);
    size_t k = rc == 0 ? s_retirable(self, segs, n, upto, older_than_s, bytes) : 0;
    s_segment_t seg = k ? segs[0] : (s_segment_t){0};
    uint64_t kept = k ? segs[1].seq : 0;
    pthread_mutex_unlock(&self->lock);
    free(segs);
    if (rc != 0 || k == 0)
        return rc;
    struct stat st;
    if (fstatat(self->dir_fd, seg.name, &st, 0) != 0)
        return s_err(err, errlen, "journal %s/%s: %s", self->dir, seg.name, strerror(errno)), -1;
    *bytes = (uint64_t) st.st_size;
    if (s_archive_copy(self->dir, archive, seg.name, zbytes, err, errlen) != 0)
        return -1;
    char text[PATH_MAX + 2], have[PATH_MAX + 2];
    snprintf(text, sizeof text, "%s\n", archive);
    pthread_mutex_lock(&self->lock);
    bool known = s_archive_path(self->dir, have, sizeof have) && strcmp(have, archive) == 0;
    rc = (known || s_write_small(self->dir_fd, JOURNAL_ARCHIVE_FILE, text) == 0) && s_write_retired(self, kept) == 0
             ? 0
             : -1;
    if (rc == 0 && (unlinkat(self->dir_fd, seg.name, 0) != 0 || fsync(self->dir_fd) != 0))
        rc = -1;
    pthread_mutex_unlock(&self->lock);
    if (rc != 0)
        return s_err(err, errlen, "journal %s: %s not moved to the archive: %s", self->dir, seg.name, strerror(errno)),
               -1;
    return 1;
}

/* s_make_dir - create dir (one level) if missing and make its entry durable */
static int s_make_dir(const char *dir, char *err, size_t errlen)
{
    if (mkdir(dir, 0750) == 0) {
        char parent[JOURNAL_DIR_MAX + 1];
        snprintf(parent, sizeof parent, "%s", dir);
        size_t n = strlen(parent);
        while (n > 1 && parent[n - 1] == '/')
            parent[--n] = '\0';
        char *slash = strrchr(parent, '/');
        if (!slash)
            snprintf(parent, sizeof parent, ".");
        else if (slash == parent)
            parent[1] = '\0';
        else
            *slash = '\0';
        int pfd = open(parent, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
        if (pfd < 0) {
            s_err(err, errlen, "journal %s: cannot open parent %s: %s", dir, parent, strerror(errno));
            return -1;
        }
        if (fsync(pfd) != 0)
            s_fatal(dir, "fsync of the parent directory", errno);
        close(pfd);
        return 0;
    }
    if (errno != EEXIST) {
        s_err(err, errlen, "journal %s: cannot create directory: %s", dir, strerror(errno));
        return -1;
    }
    return 0;
}

/* journal_open - open (creating dir if missing) and recover */
journal_t *journal_open(const char *dir, const journal_opts_t *opts, char *err, size_t errlen)
{
    s_err(err, errlen, "no error");
    if (!dir || !*dir || strlen(dir) > JOURNAL_DIR_MAX) {
        s_err(err, errlen, "journal: directory name missing or longer than %u bytes", JOURNAL_DIR_MAX);
        return NULL;
    }
    journal_opts_t o = opts ? *opts : (journal_opts_t){.sync = JOURNAL_SYNC_BATCH};
    if (o.segment_bytes == 0)
        o.segment_bytes = JOURNAL_DEFAULT_SEGMENT_BYTES;
    if (o.max_record_bytes == 0)
        o.max_record_bytes = JOURNAL_DEFAULT_MAX_RECORD_BYTES;
    if (o.max_record_bytes > JOURNAL_HARD_MAX_RECORD_BYTES) {
        s_err(err, errlen, "journal %s: max_record_bytes %zu over the limit of %u", dir, o.max_record_bytes,
              JOURNAL_HARD_MAX_RECORD_BYTES);
        return NULL;
    }
    if (o.sync != JOURNAL_SYNC_BATCH && o.sync != JOURNAL_SYNC_ALWAYS && o.sync != JOURNAL_SYNC_NONE) {
        s_err(err, errlen, "journal %s: unknown sync mode %d", dir, (int) o.sync);
        return NULL;
    }
    if (s_make_dir(dir, err, errlen) != 0)
        return NULL;

    journal_t *self = calloc(1, sizeof *self);
    if (!self) {
        s_err(err, errlen, "journal %s: out of memory", dir);
        return NULL;
    }
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    self->fd = -1;
    self->sync = o.sync;
    self->segment_bytes = o.segment_bytes;
    self->max_record_bytes = o.max_record_bytes;
    s_segment_t *segs = NULL;
    size_t nsegs = 0;

    self->dir_fd = open(dir, O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (self->dir_fd < 0) {
        s_err(err, errlen, "journal %s: cannot open directory: %s", dir, strerror(errno));
        goto fail;
    }
    if (flock(self->dir_fd, LOCK_EX | LOCK_NB) != 0) {
        s_err(err, errlen, "journal %s: %s", dir,
              errno == EWOULDBLOCK ? "already open for writing by another journal (process)" : strerror(errno));
        goto fail;
    }
    if ((self->epoch = s_epoch(self->dir_fd, dir, err, errlen)) == 0 ||
        s_list_segments(dir, &segs, &nsegs, err, errlen) != 0)
        goto fail;

    uint64_t expected = 1;
    if (nsegs && segs[0].seq > 1 && segs[0].seq <= s_retired_below(self->dir_fd))
        expected = segs[0].seq; /* its predecessors were retired on purpose (journal_retire) */
    for (size_t i = 0; i < nsegs; i++) {
        int rc = s_recover_segment(self, &segs[i], i + 1 == nsegs, &expected, err, errlen);
        if (rc < 0)
            goto fail;
        if (rc == 1) {
            assert(i + 1 == nsegs);
            nsegs--;
        }
    }
    self->last_seq = self->durable_seq = expected - 1;

    if (nsegs == 0) {
        if (s_segment_create(self, expected) != 0) {
            s_err(err, errlen, "journal %s: cannot create a segment: %s", dir, strerror(errno));
            goto fail;
        }
    } else {
        const s_segment_t *last = &segs[nsegs - 1];
        self->fd = openat(self->dir_fd, last->name, O_WRONLY | O_APPEND | O_CLOEXEC);
        struct stat st;
        if (self->fd < 0 || fstat(self->fd, &st) != 0) {
            s_err(err, errlen, "journal %s/%s: cannot open for append: %s", dir, last->name, strerror(errno));
            goto fail;
        }
        self->seg_first_seq = last->seq;
        self->seg_size = (uint64_t) st.st_size;
    }
    free(segs);
    segs = NULL;

    pthread_mutex_init(&self->lock, NULL);
    pthread_cond_init(&self->synced, NULL);
    if (self->sync == JOURNAL_SYNC_NONE)
        log_warn("journal %s: sync=none, records are NOT made durable (tests and benchmarks only)", dir);
    log_debug("journal %s: open, last seq %llu", dir, (unsigned long long) self->last_seq);
    return self;

fail:
    free(segs);
    if (self->fd >= 0)
        close(self->fd);
    if (self->dir_fd >= 0)
        close(self->dir_fd);
    free(self);
    return NULL;
}

/* s_wait_durable_locked - group commit: wait for a running sync or run one
 * for everybody written so far; returns with the lock held */
static void s_wait_durable_locked(journal_t *self, uint64_t seq)
{
    while (self->durable_seq < seq) {
        if (self->syncing) {
            pthread_cond_wait(&self->synced, &self->lock);
            continue;
        }
        self->syncing = true;
        uint64_t target = self->last_seq;
        int fd = self->fd; /* rotation waits for !syncing, so fd stays open */
        pthread_mutex_unlock(&self->lock);
        uint64_t ns = s_timed_fdatasync(self->dir, fd);
        pthread_mutex_lock(&self->lock);
        s_note_sync(self, ns);
        if (target > self->durable_seq)
            self->durable_seq = target;
        self->syncing = false;
        pthread_cond_broadcast(&self->synced);
    }
}

/* journal_close - sync what was written, close, NULL the pointer */
void journal_close(journal_t **self_p)
{
    assert(self_p);
    journal_t *self = *self_p;
    if (!self)
        return;
    pthread_mutex_lock(&self->lock);
    s_wait_durable_locked(self, self->last_seq);
    pthread_mutex_unlock(&self->lock);
    close(self->fd);
    close(self->dir_fd); /* drops the flock */
    pthread_cond_destroy(&self->synced);
    pthread_mutex_destroy(&self->lock);
    free(self);
    *self_p = NULL;
}

/* journal_append - write one record, its seq in *seq_out */
int journal_append(journal_t *self, const void *data, size_t len, uint64_t *seq_out)
{
    assert(self);
    if (len == 0 || len > self->max_record_bytes) {
        errno = EMSGSIZE;
        return -1;
    }
    assert(data);
    uint64_t record_bytes = JOURNAL_HEADER_BYTES + (uint64_t) len;
    unsigned char header[JOURNAL_HEADER_BYTES];

    pthread_mutex_lock(&self->lock);
    /* a segment holding records does not grow past segment_bytes; an
     * oversized record goes alone into a fresh one */
    while (self->seg_size > JOURNAL_MAGIC_BYTES && self->seg_size + record_bytes > self->segment_bytes) {
        if (self->syncing) {
            /* wait it out, then look again: another appender may have
             * rotated meanwhile */
            pthread_cond_wait(&self->synced, &self->lock);
            continue;
        }
        s_rotate(self);
    }
    uint64_t seq = self->last_seq + 1;
    s_put_le32(header, (uint32_t) len);
    s_put_le64(header + 8, seq);
    s_put_le32(header + 4, s_record_crc(header, data, len));
    struct iovec iov[2] = {
        {.iov_base = header, .iov_len = sizeof header},
        {.iov_base = (void *) data, .iov_len = len},
    };
    s_write_all(self, iov, 2);
    self->seg_size += record_bytes;
    self->last_seq = seq;
    self->stats.appends++;
    if (self->sync == JOURNAL_SYNC_ALWAYS) {
        /* a group-commit syncer may be running if someone called
         * journal_sync; our own fdatasync covers this record regardless */
        s_note_sync(self, s_timed_fdatasync(self->dir, self->fd));
        if (seq > self->durable_seq)
            self->durable_seq = seq;
        pthread_cond_broadcast(&self->synced);
    } else if (self->sync == JOURNAL_SYNC_NONE) {
        self->durable_seq = seq;
    }
    pthread_mutex_unlock(&self->lock);
    if (seq_out)
        *seq_out = seq;
    return 0;
}

/* journal_sync - make every record written so far durable (group commit) */
void journal_sync(journal_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    s_wait_durable_locked(self, self->last_seq);
    pthread_mutex_unlock(&self->lock);
}

/* journal_wait_durable - block until record seq is durable (group commit) */
void journal_wait_durable(journal_t *self, uint64_t seq)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    /* waiting for a record nobody has written would never end */
    assert(seq <= self->last_seq);
    s_wait_durable_locked(self, seq);
    pthread_mutex_unlock(&self->lock);
}

/* journal_last_seq - seq of the last record written; 0 when empty */
uint64_t journal_last_seq(journal_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    uint64_t v = self->last_seq;
    pthread_mutex_unlock(&self->lock);
    return v;
}

/* journal_durable_seq - every record up to this one survives a crash */
uint64_t journal_durable_seq(journal_t *self)
{
    assert(self);
    pthread_mutex_lock(&self->lock);
    uint64_t v = self->durable_seq;
    pthread_mutex_unlock(&self->lock);
    return v;
}

/* journal_dir - the directory, for messages */
const char *journal_dir(journal_t *self)
{
    assert(self);
    return self->dir;
}

/* journal_stats - a consistent snapshot of the counters */
void journal_stats(journal_t *self, journal_stats_t *out)
{
    assert(self && out);
    pthread_mutex_lock(&self->lock);
    *out = self->stats;
    pthread_mutex_unlock(&self->lock);
}

/* ------------------------------------------------------------------ */
/* reader                                                               */

struct journal_reader_t {
    char dir[JOURNAL_DIR_MAX + 1];
    int fd;            /* current segment, -1 until it exists */
    uint64_t seg_seq;  /* its name */
    uint64_t off;      /* next byte to read; 0 = magic not checked yet */
    uint64_t expected; /* seq of the next record */
    uint64_t from_seq;
    uint64_t last_off;                      /* where the last record returned starts (journal_reader_where) */
    char segname[JOURNAL_SEG_NAME_LEN + 1]; /* for error messages */
    unsigned char *win;                     /* read-ahead window of the segment: one pread serves many records */
    size_t win_cap;
    uint64_t win_off;         /* file offset of win[0] */
    size_t win_len;           /* bytes of win read from the file */
    const unsigned char *rec; /* payload of the last record returned (inside win) */
    bool failed;              /* corruption is sticky */
    char error[512];
};

#define JOURNAL_READ_AHEAD (256u * 1024u)

/* s_reader_bytes - n bytes at file offset off, from the read-ahead window
 * (refilled from off when they are not all in it: bytes once written never
 * change, so what the window holds stays true beside a live writer); the
 * count available (< n at the file's end, -1 on error) and *p into the
 * window, valid until the next call */
static ssize_t s_reader_bytes(journal_reader_t *self, uint64_t off, size_t n, const unsigned char **p)
{
    if (off >= self->win_off && off + n <= self->win_off + self->win_len) {
        *p = self->win + (off - self->win_off);
        return (ssize_t) n;
    }
    size_t want = n > JOURNAL_READ_AHEAD ? n : JOURNAL_READ_AHEAD;
    if (want > self->win_cap) {
        unsigned char *nw = realloc(self->win, want);
        if (!nw)
            return -1;
        self->win = nw;
        self->win_cap = want;
    }
    ssize_t got = s_pread_full(self->fd, self->win, want, off);
    if (got < 0) {
        self->win_len = 0;
        return -1;
    }
    self->win_off = off;
    self->win_len = (size_t) got;
    *p = self->win;
    return (size_t) got < n ? got : (ssize_t) n;
}

/* s_pread_full - pread until n bytes or end of file; bytes read or -1 */
static ssize_t s_pread_full(int fd, void *buf, size_t n, uint64_t off)
{
    size_t got = 0;
    while (got < n) {
        ssize_t r = pread(fd, (char *) buf + got, n - got, (off_t) (off + got));
        if (r < 0) {
            if (errno == EINTR)
                continue;
            return -1;
        }
        if (r == 0)
            break;
        got += (size_t) r;
    }
    return (ssize_t) got;
}

/* s_reader_fail - remember the corruption; every later call repeats it */
__attribute__((format(printf, 2, 3))) static int s_reader_fail(journal_reader_t *self, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(self->error, sizeof self->error, fmt, ap);
    va_end(ap);
    self->failed = true;
    return -1;
}

/* s_reader_open_segment - open the segment named seq; 1 opened, 0 absent */
static int s_reader_open_segment(journal_reader_t *self, uint64_t seq)
{
    char path[JOURNAL_DIR_MAX + JOURNAL_SEG_NAME_LEN + 2];
    char name[JOURNAL_SEG_NAME_LEN + 1];
    s_segment_name(name, seq);
    snprintf(path, sizeof path, "%s/%s", self->dir, name);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0 && errno == ENOENT) { /* moved to the archive (journal_archive), or not there yet */
        char archive[PATH_MAX], zpath[PATH_MAX + JOURNAL_SEG_NAME_LEN + 8];
        if (!s_archive_path(self->dir, archive, sizeof archive))
            return 0;
        snprintf(zpath, sizeof zpath, "%s/%s%s", archive, name, SEGZST_SUFFIX);
        if (access(zpath, F_OK) != 0)
            return access(path, F_OK) == 0 ? s_reader_open_segment(self, seq) : 0; /* archived meanwhile */
        if ((fd = segzst_expand(zpath, self->error, sizeof self->error)) < 0)
            return s_reader_fail(self, "journal %s: archived segment unreadable: %s", self->dir, self->error);
    } else if (fd < 0) {
        return s_reader_fail(self, "journal %s: cannot open: %s", path, strerror(errno));
    }
    if (self->fd >= 0)
        close(self->fd);
    self->fd = fd;
    self->seg_seq = seq;
    self->off = 0;
    self->win_off = 0;
    self->win_len = 0; /* the window was the other segment's */
    return 1;
}

/* s_reader_later_segment - does a segment after the current one exist? */
static int s_reader_later_segment(journal_reader_t *self)
{
    s_segment_t *segs;
    size_t n;
    if (s_list_segments(self->dir, &segs, &n, self->error, sizeof self->error) != 0) {
        self->failed = true;
        return -1;
    }
    bool later = n > 0 && segs[n - 1].seq > self->seg_seq;
    free(segs);
    return later;
}

/* s_reader_valid_follows - is there a checksummed record with a later seq
 * after the partial one at off? Then that one is not a record still being
 * written but a broken length. The bytes searched are bounded by the file,
 * read with pread (a mapping could fault if a recovering writer truncates). */
static int s_reader_valid_follows(journal_reader_t *self, uint64_t *at, uint64_t *found)
{
    struct stat st;
    if (fstat(self->fd, &st) != 0)
        return s_reader_fail(self, "journal %s: stat failed: %s", self->dir, strerror(errno));
    uint64_t size = (uint64_t) st.st_size;
    if (size <= self->off + JOURNAL_HEADER_BYTES)
        return 0;
    size_t rest = (size_t) (size - self->off);
    if (rest > JOURNAL_READER_SEARCH_BYTES)
        rest = JOURNAL_READER_SEARCH_BYTES;
    unsigned char *buf = malloc(rest);
    if (!buf)
        return s_reader_fail(self, "journal %s: out of memory searching a segment", self->dir);
    ssize_t n = s_pread_full(self->fd, buf, rest, self->off);
    if (n < 0) {
        free(buf);
        return s_reader_fail(self, "journal %s: read failed: %s", self->dir, strerror(errno));
    }
    uint64_t last_good = self->expected - 1;
    uint64_t max_seq = last_good + 1 + (uint64_t) n / (JOURNAL_HEADER_BYTES + 1);
    size_t pos;
    bool hit = s_find_valid(buf, (size_t) n, 1, last_good, max_seq, &pos, found);
    free(buf);
    *at = self->off + pos;
    return hit;
}

/* s_reader_segname - the current segment's file name, for error messages */
static const char *s_reader_segname(journal_reader_t *self)
{
    s_segment_name(self->segname, self->seg_seq);
    return self->segname;
}

static int s_reader_read_once(journal_reader_t *self, uint32_t *len_out, uint64_t *seq_out);

/* s_reader_read - read the record at off: S_REC_OK and its length,
 * S_REC_END on a clean end, S_REC_PARTIAL for a record not all there (yet),
 * -1 on an I/O error or corruption (message set).
 * A record that does not check is read once more from the file before it
 * is called corrupt: the read-ahead window may hold the bytes of a torn
 * tail that the writer has since cut and written over (a SIGKILLed writer
 * restarting while payguard replay reads beside it), and a header from the
 * window with a payload read afresh would not match. */
static int s_reader_read(journal_reader_t *self, uint32_t *len_out, uint64_t *seq_out)
{
    int rc = s_reader_read_once(self, len_out, seq_out);
    if (rc >= 0 || self->win_len == 0)
        return rc;
    self->win_len = 0; /* drop the window: header and payload from the file, in one read */
    self->failed = false;
    self->error[0] = '\0';
    return s_reader_read_once(self, len_out, seq_out);
}

/* s_reader_read_once - s_reader_read with what the window holds */
static int s_reader_read_once(journal_reader_t *self, uint32_t *len_out, uint64_t *seq_out)
{
    unsigned char h[JOURNAL_HEADER_BYTES];
    const unsigned char *hp;
    *len_out = 0;
    ssize_t n = s_reader_bytes(self, self->off, sizeof h, &hp);
    if (n < 0)
        return s_reader_fail(self, "journal %s/%s: read failed: %s", self->dir, s_reader_segname(self),
                             strerror(errno));
    if (n == 0)
        return S_REC_END;
    if (n < (ssize_t) sizeof h)
        return S_REC_PARTIAL;
    memcpy(h, hp, sizeof h);
    uint32_t len = s_le32(h);
    uint64_t seq = s_le64(h + 8);
    if (len == 0 || len > JOURNAL_HARD_MAX_RECORD_BYTES)
        return s_reader_fail(
            self, "journal %s/%s: corrupt record at byte %llu (expected seq %llu): length %u out of range", self->dir,
            s_reader_segname(self), (unsigned long long) self->off, (unsigned long long) self->expected, len);
    /* the window below grows only to bytes really in the file */
    struct stat st;
    if (self->off + JOURNAL_HEADER_BYTES + len > self->win_off + self->win_len) {
        if (fstat(self->fd, &st) != 0)
            return s_reader_fail(self, "journal %s/%s: stat failed: %s", self->dir, s_reader_segname(self),
                                 strerror(errno));
        if ((uint64_t) st.st_size < self->off + JOURNAL_HEADER_BYTES + len)
            return S_REC_PARTIAL;
    }
    const unsigned char *payload;
    n = s_reader_bytes(self, self->off + JOURNAL_HEADER_BYTES, len, &payload);
    if (n < 0)
        return s_reader_fail(self, "journal %s/%s: read failed: %s", self->dir, s_reader_segname(self),
                             strerror(errno));
    if ((size_t) n < len)
        return S_REC_PARTIAL;
    self->rec = payload;
    if (s_record_crc(h, self->rec, len) != s_le32(h + 4))
        return s_reader_fail(self, "journal %s/%s: corrupt record at byte %llu (expected seq %llu): checksum mismatch",
                             self->dir, s_reader_segname(self), (unsigned long long) self->off,
                             (unsigned long long) self->expected);
    if (seq != self->expected)
        return s_reader_fail(self, "journal %s/%s: corrupt record at byte %llu (expected seq %llu): seq %llu",
                             self->dir, s_reader_segname(self), (unsigned long long) self->off,
                             (unsigned long long) self->expected, (unsigned long long) seq);
    *len_out = len;
    *seq_out = seq;
    return S_REC_OK;
}

/* s_reader_archived_start - from_seq is before the live segments: start in
 * the archived segment that holds it, if the journal has an archive */
static void s_reader_archived_start(journal_reader_t *self)
{
    char archive[PATH_MAX];
    s_segment_t *segs = NULL;
    size_t n = 0;
    if (!s_archive_path(self->dir, archive, sizeof archive) || s_list_in(archive, true, &segs, &n, NULL, 0) != 0)
        return;
    size_t start = 0;
    while (start + 1 < n && segs[start + 1].seq <= self->from_seq)
        start++;
    if (n && segs[start].seq < self->expected)
        self->expected = segs[start].seq;
    free(segs);
}

/* journal_reader_new - iterate the records of dir with seq >= from_seq */
journal_reader_t *journal_reader_new(const char *dir, uint64_t from_seq, char *err, size_t errlen)
{
    s_err(err, errlen, "no error");
    if (!dir || !*dir || strlen(dir) > JOURNAL_DIR_MAX) {
        s_err(err, errlen, "journal: directory name missing or longer than %u bytes", JOURNAL_DIR_MAX);
        return NULL;
    }
    s_segment_t *segs;
    size_t n;
    if (s_list_segments(dir, &segs, &n, err, errlen) != 0)
        return NULL;
    journal_reader_t *self = calloc(1, sizeof *self);
    if (!self) {
        free(segs);
        s_err(err, errlen, "journal %s: out of memory", dir);
        return NULL;
    }
    snprintf(self->dir, sizeof self->dir, "%s", dir);
    self->fd = -1;
    self->from_seq = from_seq ? from_seq : 1;
    /* start in the last segment whose first seq is <= from_seq: every
     * segment before it holds only records we were asked to skip */
    size_t start = 0;
    while (start + 1 < n && segs[start + 1].seq <= self->from_seq)
        start++;
    self->expected = n ? segs[start].seq : 1;
    if (n == 0 || segs[0].seq > self->from_seq)
        s_reader_archived_start(self);
    free(segs);
    return self;
}

/* journal_reader_next - 1 and the record, 0 at the end, -1 on corruption */
int journal_reader_next(journal_reader_t *self, const void **data, size_t *len, uint64_t *seq)
{
    assert(self && data && len && seq);
    if (self->failed)
        return -1;
    for (;;) {
        if (self->fd < 0) {
            int rc = s_reader_open_segment(self, self->expected);
            if (rc <= 0)
                return rc;
        }
        if (self->off == 0) {
            unsigned char magic[JOURNAL_MAGIC_BYTES];
            ssize_t n = s_pread_full(self->fd, magic, sizeof magic, 0);
            if (n < 0)
                return s_reader_fail(self, "journal %s/%s: read failed: %s", self->dir, s_reader_segname(self),
                                     strerror(errno));
            if (memcmp(magic, JOURNAL_MAGIC, (size_t) n) != 0)
                return s_reader_fail(self, "journal %s/%s: bad magic, not a journal segment", self->dir,
                                     s_reader_segname(self));
            if (n < (ssize_t) sizeof magic)
                return 0; /* being created right now */
            self->off = JOURNAL_MAGIC_BYTES;
        }
        uint32_t rlen;
        uint64_t rseq = 0;
        int rc = s_reader_read(self, &rlen, &rseq);
        if (rc < 0)
            return -1;
        if (rc == S_REC_END) {
            /* on a record boundary: the writer may have moved on to the
             * segment that starts with the seq we expect (a segment holding
             * no record yet is simply the end) */
            if (self->expected == self->seg_seq)
                return 0;
            int opened = s_reader_open_segment(self, self->expected);
            if (opened <= 0)
                return opened;
            continue;
        }
        if (rc == S_REC_PARTIAL) {
            /* a record still being written - unless the writer has since
             * started another segment, which it does only after the write */
            int later = s_reader_later_segment(self);
            if (later < 0)
                return -1;
            uint64_t at = 0, found = 0;
            int follows = later ? 0 : s_reader_valid_follows(self, &at, &found);
            if (follows < 0)
                return -1;
            if (!later && !follows)
                return 0;
            /* the writer finishes a record before it writes the next one
             * or starts a segment: if this one is still partial, it is
             * broken */
            rc = s_reader_read(self, &rlen, &rseq);
            if (rc < 0)
                return -1;
            if (rc != S_REC_OK) {
                if (later)
                    return s_reader_fail(self,
                                         "journal %s/%s: corrupt record at byte %llu (expected seq %llu): cut "
                                         "short, but a later segment exists",
                                         self->dir, s_reader_segname(self), (unsigned long long) self->off,
                                         (unsigned long long) self->expected);
                return s_reader_fail(self,
                                     "journal %s/%s: corrupt record at byte %llu (expected seq %llu): length "
                                     "runs past the end, but a valid record follows (seq %llu at byte %llu)",
                                     self->dir, s_reader_segname(self), (unsigned long long) self->off,
                                     (unsigned long long) self->expected, (unsigned long long) found,
                                     (unsigned long long) at);
            }
        }
        assert(rc == S_REC_OK);
        self->last_off = self->off;
        self->off += JOURNAL_HEADER_BYTES + rlen;
        self->expected++;
        if (rseq < self->from_seq)
            continue;
        *data = self->rec;
        *len = rlen;
        *seq = rseq;
        return 1;
    }
}

/* journal_reader_where - see journal.h */
void journal_reader_where(const journal_reader_t *self, uint64_t *segment, uint64_t *offset)
{
    assert(self && segment && offset);
    *segment = self->seg_seq;
    *offset = self->last_off;
}

/* journal_reader_seek - see journal.h */
int journal_reader_seek(journal_reader_t *self, uint64_t seq, uint64_t segment, uint64_t offset)
{
    assert(self && seq >= segment && offset >= JOURNAL_MAGIC_BYTES);
    if (self->failed)
        return -1;
    if (self->fd < 0 || self->seg_seq != segment) {
        int rc = s_reader_open_segment(self, segment);
        if (rc <= 0)
            return rc < 0 ? -1
                          : s_reader_fail(self, "journal %s: no segment %llu, live or archived", self->dir,
                                          (unsigned long long) segment);
    }
    self->off = offset;
    self->expected = self->from_seq = seq;
    return 0;
}

/* journal_reader_error - why the last journal_reader_next returned -1 */
const char *journal_reader_error(journal_reader_t *self)
{
    assert(self);
    return self->failed ? self->error : "";
}

/* journal_reader_destroy - close the fds, free the buffer, NULL the pointer */
void journal_reader_destroy(journal_reader_t **self_p)
{
    assert(self_p);
    journal_reader_t *self = *self_p;
    if (!self)
        return;
    if (self->fd >= 0)
        close(self->fd);
    free(self->win);
    free(self);
    *self_p = NULL;
}
