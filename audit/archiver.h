/* archiver - the trail's sealed segments moved to the archive, on a thread
 * of its own.
 *
 * The trail is never removed (PCI DSS 10.5: audit records kept and
 * protected), but it need not stay on the journal's disk uncompressed.
 * Every ARCHIVER_POLL_MS the thread moves each segment that is
 *   - sealed: every record in it at or below the last signed checkpoint
 *     (a record moves only once a signature covers it), and
 *   - older than audit/archive_after_s (last written that long ago), and
 *   - not the segment being written,
 * to audit/archive_dir as <first seq>.seg.zst (journal_archive: written
 * durably, read back and compared before the live copy is unlinked), one
 * at a time, so a stop waits for one segment at most. After a move it
 * brings <archive_dir>/checkpoints up to the checkpoints file (appends the
 * whole lines it lacks, fdatasync'd): the archive alone, with the public
 * key, is enough to verify what it holds.
 *
 * Readers of the trail (journal.h, ARCHIVE) read archived segments as if
 * they were live: `payguard audit verify`, `audit export`, the case index,
 * replay.
 *
 * FAILURE
 *   A move that fails (archive full, unreachable mount) leaves the segment
 *   live, logs once per distinct error, counts it, and is tried again at
 *   the next poll: the trail keeps growing on the journal's disk, where
 *   payguard/journal/min_free_mb protects it as always.
 *
 * THREADS
 *   archiver_stats: any thread. archiver_new, archiver_destroy: the owner's.
 */
#ifndef PG_AUDIT_ARCHIVER_H
#define PG_AUDIT_ARCHIVER_H

#include <stddef.h>
#include <stdint.h>

#define ARCHIVER_POLL_MS 2000

typedef struct archiver_t archiver_t;

/* archiver_sealed_fn - the trail seq the last checkpoint seals; any thread */
typedef uint64_t(archiver_sealed_fn)(void *arg);
/* archiver_move_fn - journal_archive (journal.h) on the trail's journal
 * (audit: stage_journal_archive); called on the archiver's thread */
typedef int(archiver_move_fn)(void *arg, const char *archive, uint64_t upto, int64_t older_than_s, uint64_t *bytes,
                              uint64_t *zbytes, char *err, size_t errlen);

typedef struct {
    uint64_t segments; /* moved since start */
    uint64_t bytes;    /* their size live */
    uint64_t zbytes;   /* their size archived */
    uint64_t failures; /* moves that failed */
} archiver_stats_t;

/* archiver_new - start the thread; archive is an absolute directory path,
 * after_s >= 0; move and sealed are called with arg. NULL and err. */
archiver_t *archiver_new(const char *archive, const char *checkpoints_path, long after_s, archiver_move_fn *move,
                         archiver_sealed_fn *sealed, void *arg, char *err, size_t errlen);
void archiver_stats(archiver_t *self, archiver_stats_t *out);
/* archiver_destroy - stop the thread (after the segment being moved) */
void archiver_destroy(archiver_t **self_p);

#endif
