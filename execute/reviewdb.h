/* reviewdb - execute's ops-review queue on disk (execute/review_db, SQLite).
 *
 * A case whose runbook failed for good waits in ops review, sometimes for
 * days, and a retry re-runs the plan that failed. The plan is in the
 * journal's "runbook" record, which retention (execute/retention_s) removes
 * in time; so every change of the queue is also written here, right after
 * the journal record that made it:
 *   add   the review record (case, the plan, the step that failed, why,
 *         when);
 *   drop  the case left ops review (a retry finished, or a person closed it).
 * At start execute loads the queue from here, then replays the journal
 * retention left: adds and drops are idempotent and applied in journal
 * order, and every record older than this file's last write is also older
 * than any record still kept, so the queue ends as the whole journal says.
 *
 * THREADS: execute's loop thread only.
 */
#ifndef PG_EXECUTE_REVIEWDB_H
#define PG_EXECUTE_REVIEWDB_H

#include <stddef.h>
#include <stdint.h>

typedef struct reviewdb_t reviewdb_t;

/* review_row_t - one case in ops review */
typedef struct {
    const char *case_id;
    const char *plan_json;   /* the plan that failed: what a retry re-runs */
    const char *failed_step; /* its step that failed for good */
    const char *error;       /* why */
    int64_t at_ms;           /* when it failed */
} review_row_t;

/* reviewdb_open - open or create; NULL and err */
reviewdb_t *reviewdb_open(const char *path, char *err, size_t errlen);
void reviewdb_close(reviewdb_t **self_p);
/* reviewdb_put - add or replace a case's review; 0 or -1 (logged) */
int reviewdb_put(reviewdb_t *self, const review_row_t *r);
/* reviewdb_drop - the case left the queue; 0 or -1 (logged) */
int reviewdb_drop(reviewdb_t *self, const char *case_id);
/* reviewdb_each - every review, oldest first; how many */
size_t reviewdb_each(reviewdb_t *self, void (*fn)(const review_row_t *r, void *arg), void *arg);
/* reviewdb_is_new - was the file created by this open (nothing in it yet)? */
int reviewdb_is_new(reviewdb_t *self);

#endif
