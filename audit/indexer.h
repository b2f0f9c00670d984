/* indexer - audit's case index kept up with the trail on a thread of its own.
 *
 * audit's loop thread stores each trail record and acknowledges it. Applying
 * the record to the case index (SQLite: the event's JSON, the case's facts
 * and state) cost more than storing it: on the loop thread the trail took
 * about 24,000 records/s, without the index about 60,000 (make bench-scale,
 * section c). The index is a projection of the trail (caseidx.h), so the
 * indexer follows the trail's journal instead, with a journal reader beside
 * the live writer:
 *   - it applies every record up to the journal's durable seq (never ahead
 *     of what a crash keeps, so the index is never ahead of the trail);
 *   - it looks at the journal's durable seq every INDEXER_POLL_MS (a
 *     mutex and a load: nothing to wake it with, since the loop thread
 *     makes its records durable after its turn's work);
 *   - it commits at most every commit_ms (each commit rewrites the same
 *     hot pages), and when it stops;
 *   - the cases API sees an event once it is committed; how far behind the
 *     index is, in records, is indexer_lag (a gauge).
 * The writer caseidx belongs to the indexer's thread from indexer_new to
 * indexer_destroy; readers keep their own connection (caseidx.h, THREADS).
 *
 * FAILURE
 *   A record the index cannot apply is logged and skipped, as on the loop
 *   thread before (the trail has it). A trail the reader cannot read
 *   (corruption) stops the indexer: indexer_failed says so and why, and
 *   audit exits for the supervisor, whose restart checks the trail.
 *
 * THREADS
 *   indexer_lag, indexer_failed: any thread.
 *   indexer_new, indexer_destroy: the owner's thread.
 */
#ifndef PG_AUDIT_INDEXER_H
#define PG_AUDIT_INDEXER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "caseidx.h"

#define INDEXER_COMMIT_MS_MAX 60000
#define INDEXER_POLL_MS 50 /* how often the thread looks for new durable records */

typedef struct indexer_t indexer_t;

/* indexer_durable_fn - the trail journal's durable seq (journal.h); called
 * on the indexer's thread, so it must be thread-safe */
typedef uint64_t(indexer_durable_fn)(void *arg);

/* indexer_new - start following the journal at dir from the record after
 * the index's applied seq; idx is the thread's until indexer_destroy.
 * commit_ms in 1..INDEXER_COMMIT_MS_MAX. NULL and err. */
indexer_t *indexer_new(caseidx_t *idx, const char *dir, indexer_durable_fn *durable, void *arg, long commit_ms,
                       char *err, size_t errlen);

/* indexer_lag - durable trail records not yet applied and committed */
uint64_t indexer_lag(indexer_t *self);

/* indexer_failed - true and the reason (into err) once the reader failed */
bool indexer_failed(indexer_t *self, char *err, size_t errlen);

/* indexer_destroy - stop the thread, committing what it applied (the
 * rest is applied by the next start's caseidx_sync) */
void indexer_destroy(indexer_t **self_p);

#endif
