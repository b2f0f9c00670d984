/* journal - append-only, segmented, checksummed record log with group commit.
 *
 * Every stage instance appends what it emits here before sending it on; the
 * journals together are payguard's system of record.
 *
 * ON DISK
 *   <dir>/<first-seq as 20 decimal digits>.seg   one file per segment
 *   each segment starts with the 8-byte magic "PGJRNL01", then records:
 *     u32 len     payload length, little endian, 1..max_record_bytes
 *     u32 crc     CRC-32C over (the 4 len bytes, the 8 seq bytes, payload)
 *     u64 seq     sequence number, little endian; 1 for the first record,
 *                 each record exactly one more than the one before
 *     payload     len bytes
 *   A new segment is started when the current one would grow past
 *   segment_bytes; the directory is fsync'd after a segment is created.
 *
 * DURABILITY CONTRACT
 *   journal_append() write(2)s the record; it is durable only once
 *   journal_durable_seq() >= its seq. sync policy:
 *     ALWAYS  every append fdatasyncs before it returns;
 *     BATCH   (default) journal_wait_durable()/journal_sync() fdatasync, and
 *             one fdatasync covers every record written before it: many
 *             concurrent writers waiting share one sync (group commit: the
 *             first waiter syncs for all, the others wait on a condition);
 *     NONE    never fdatasync: records count as durable when written (tests,
 *             benchmarks; says so in the log at open).
 *   A failed fdatasync/fsync/write is fatal: the process logs and exits
 *   (exit code 75), because after a failed fsync the kernel may have dropped
 *   the dirty pages and a later "successful" sync proves nothing (fsyncgate).
 *   Nothing is ever acknowledged after a failed sync.
 *
 * RETIREMENT (journal_retire)
 *   The oldest segments may be removed on purpose, as a prefix: before any
 *   is unlinked, <dir>/retired is replaced (written, fsync'd, renamed, the
 *   directory fsync'd) with the first seq kept, as decimal text. A journal
 *   whose first segment starts after 1 opens only if that file says its
 *   predecessors were retired; segments missing otherwise stop journal_open
 *   as before. Readers start at the first segment kept.
 *
 * ARCHIVE (journal_archive)
 *   A journal that must never lose a record (audit's trail) moves its old
 *   segments to an archive directory instead of retiring them:
 *   <archive>/<first seq>.seg.zst, and <dir>/archive holds that
 *   directory's path (one line). A reader asked for a seq whose segment
 *   is no longer in <dir> finds it there and expands it into memory
 *   (segzst.h): every reader (verify, export, replay, the case index)
 *   reads archived records as if they were live. journal_open needs only
 *   <dir>/retired, as after a retirement.
 *
 * EPOCH
 *   <dir>/epoch holds 16 hex digits drawn at random when the directory is
 *   first opened (written durably like <dir>/retired). It names this life
 *   of the journal: a journal removed and started again, whose seqs begin
 *   at 1 once more, has another epoch, so whoever remembers positions in
 *   the old one (a consumer's dedup, dedup.h) knows they no longer apply.
 *   A damaged epoch file stops journal_open.
 *
 * RECOVERY (journal_open)
 *   Every complete, checksummed record is kept. In the last segment, an
 *   invalid record with no valid record anywhere after it is a torn tail:
 *   the file is truncated at its start (and the truncation fsync'd). An
 *   invalid record followed by a valid one, or any invalid record in a
 *   segment that is not the last, is corruption: journal_open fails with a
 *   message naming the segment file, byte offset and expected seq.
 *
 * THREADS
 *   journal_append, journal_sync, journal_wait_durable and the getters are
 *   safe to call from several threads. A reader is used by one thread.
 */
#ifndef PG_JOURNAL_H
#define PG_JOURNAL_H

#include <stddef.h>
#include <stdint.h>

typedef enum { JOURNAL_SYNC_BATCH = 0, JOURNAL_SYNC_ALWAYS, JOURNAL_SYNC_NONE } journal_sync_t;

#define JOURNAL_HEADER_BYTES 16u
#define JOURNAL_DEFAULT_SEGMENT_BYTES (64u * 1024u * 1024u)
#define JOURNAL_DEFAULT_MAX_RECORD_BYTES (4u * 1024u * 1024u)
#define JOURNAL_EXIT_SYNC_FAILED 75

typedef struct {
    journal_sync_t sync;     /* default BATCH */
    size_t segment_bytes;    /* 0 = JOURNAL_DEFAULT_SEGMENT_BYTES */
    size_t max_record_bytes; /* 0 = JOURNAL_DEFAULT_MAX_RECORD_BYTES */
} journal_opts_t;

typedef struct {
    uint64_t appends;       /* records appended since open */
    uint64_t syncs;         /* fdatasync calls since open */
    uint64_t sync_ns_total; /* time spent in fdatasync */
    uint64_t sync_ns_max;
    uint64_t truncated_bytes; /* torn tail dropped at open */
} journal_stats_t;

typedef struct journal_t journal_t;
typedef struct journal_reader_t journal_reader_t;

/* journal_sync_parse - "always" | "batch" | "none" to the enum; -1 if unknown */
int journal_sync_parse(const char *text, journal_sync_t *out);

/* journal_open - open (creating dir if missing) and recover; NULL and a
 * message in err on failure. opts may be NULL for defaults. */
journal_t *journal_open(const char *dir, const journal_opts_t *opts, char *err, size_t errlen);

/* journal_close - sync what was written, close, NULL the pointer */
void journal_close(journal_t **self_p);

/* journal_append - write one record, its seq in *seq_out; -1 if len is 0 or
 * over max_record_bytes (errno EMSGSIZE). I/O failures are fatal. */
int journal_append(journal_t *self, const void *data, size_t len, uint64_t *seq_out);

/* journal_sync - make every record written so far durable (group commit) */
void journal_sync(journal_t *self);

/* journal_wait_durable - block until record seq is durable (group commit) */
void journal_wait_durable(journal_t *self, uint64_t seq);

uint64_t journal_last_seq(journal_t *self); /* 0 when empty */
uint64_t journal_durable_seq(journal_t *self);
const char *journal_dir(journal_t *self);
/* journal_epoch - this journal's epoch (EPOCH above), never 0 */
uint64_t journal_epoch(journal_t *self);
/* journal_dir_epoch - the epoch of the journal in dir, read only (for
 * readers beside the writer, e.g. payguard replay); 0, or -1 if it has none */
int journal_dir_epoch(const char *dir, uint64_t *epoch);
void journal_stats(journal_t *self, journal_stats_t *out);

/* journal_reader_new - iterate the records of dir with seq >= from_seq
 * (1 = from the start). Read-only; works beside a live writer: a record
 * still being written at the tail reads as the end. NULL + err on failure. */
journal_reader_t *journal_reader_new(const char *dir, uint64_t from_seq, char *err, size_t errlen);

/* journal_reader_next - 1 and the record (borrowed until the next call),
 * 0 at the end, -1 on corruption (see journal_reader_error) */
int journal_reader_next(journal_reader_t *self, const void **data, size_t *len, uint64_t *seq);

const char *journal_reader_error(journal_reader_t *self);
/* journal_reader_where - the segment (its first seq) and byte offset of the
 * record journal_reader_next returned last: a place to come back to */
void journal_reader_where(const journal_reader_t *self, uint64_t *segment, uint64_t *offset);
/* journal_reader_seek - make the next journal_reader_next return record
 * seq, which journal_reader_where placed at (segment, offset); the record
 * is checked as always (checksum, seq), so a wrong place is an error, never
 * another record. 0, or -1 (see journal_reader_error; sticky) */
int journal_reader_seek(journal_reader_t *self, uint64_t seq, uint64_t segment, uint64_t offset);

/* journal_retire - remove the oldest segments whose records all have seq
 * <= upto and whose files were last written before older_than_s (unix
 * seconds); never the segment being written. Only a prefix goes: the first
 * segment that must stay stops it. The number removed (0: none), their
 * bytes in *bytes; -1 and err when the marker cannot be written (nothing
 * removed then) */
int journal_retire(journal_t *self, uint64_t upto, int64_t older_than_s, uint64_t *bytes, char *err, size_t errlen);
/* journal_retirable - how many segments journal_retire would remove now
 * (nothing is removed), -1 and err if the directory cannot be listed */
int journal_retirable(journal_t *self, uint64_t upto, int64_t older_than_s, char *err, size_t errlen);
/* journal_usage - the live segments in the journal's directory: how many
 * and their bytes (what the journal takes on disk, archived ones aside);
 * 0, or -1 and err if the directory cannot be listed */
int journal_usage(journal_t *self, size_t *segments, uint64_t *bytes, char *err, size_t errlen);
/* journal_first_live_seq - the first seq of the oldest segment still in
 * the journal's directory (1 when none was retired or archived): where a
 * reader that must not expand archived segments starts */
uint64_t journal_first_live_seq(journal_t *self);
/* journal_archive - move the oldest segment that journal_retire would
 * remove (records all <= upto, last written before older_than_s, not the
 * segment being written) to the directory archive (an absolute path,
 * created if missing, may be a mounted remote) as <name>.seg.zst
 * (segzst.h): compressed there durably, expanded again and compared with
 * the original; then <dir>/archive names that directory, <dir>/retired
 * the first seq kept, and the segment is unlinked. One segment a call, so
 * a caller can bound each call's work; the lock is held only to list and
 * to unlink, never while compressing. 1 moved (its bytes and the
 * archive's in *bytes, *zbytes), 0 nothing to move, -1 and err (the
 * segment stays live, nothing lost). */
int journal_archive(journal_t *self, const char *archive, uint64_t upto, int64_t older_than_s, uint64_t *bytes,
                    uint64_t *zbytes, char *err, size_t errlen);
void journal_reader_destroy(journal_reader_t **self_p);

#endif
