/* store - validate's state: idempotency keys and cases, in SQLite.
 *
 * A projection of validate's own journal, never the other way round: every
 * row is written after the journal record that decided it (and stamped with
 * that record's seq in meta.applied_seq). At start, validate replays its
 * journal past applied_seq into the store; if the store is missing, corrupt,
 * or AHEAD of the journal (its commit survived a crash the journal's record
 * did not), it is wiped and rebuilt from the journal. So losing the file
 * loses nothing. The schema carries a version (PRAGMA user_version): a file
 * of another version is dropped and rebuilt the same way.
 *
 * SNAPSHOT CONTRACT
 *   validate writes the rows of each decision in one open transaction and
 *   commits it only from its tick (at most every VALIDATE_COMMIT_MS), after
 *   syncing its journal: a committed store is never ahead of what a crash
 *   keeps of the journal, and meta.applied_seq is a position retention may
 *   trust (validate/retention_s removes only segments at or below it).
 */
#ifndef PG_VALIDATE_STORE_H
#define PG_VALIDATE_STORE_H

#include <stddef.h>
#include <stdint.h>

#include "validate.h"

#define STORE_CASE_ID_MAX 160

typedef struct store_t store_t;

/* case_row_t - what validate knows of a case */
typedef struct {
    char case_id[STORE_CASE_ID_MAX];
    char kind[16];       /* payout | refund */
    char ref[WH_ID_MAX]; /* payout id or refund id */
    int64_t psp_time;    /* newest PSP event time applied */
    char status[32];     /* the PSP status that event stated */
    int64_t amount;
    char currency[4];
    char payment_id[WH_ID_MAX];
    int64_t updated_ms; /* when it was applied */
    int receipts;       /* receipts about the case: accepted, duplicate, out of order */
    int duplicates;
    int out_of_order;
} case_row_t;

store_t *store_open(const char *path, char *err, size_t errlen);
void store_close(store_t **self_p);
/* store_wipe - drop everything (before a rebuild from the journal) */
int store_wipe(store_t *self);
uint64_t store_applied_seq(store_t *self);
int store_set_applied(store_t *self, uint64_t seq);
/* store_begin - open a transaction unless one is open; store_commit - commit it */
int store_begin(store_t *self);
int store_commit(store_t *self);

/* store_key_find - 1 and the key's case and first event if seen, 0 if not */
int store_key_find(store_t *self, const char *key, char case_id[STORE_CASE_ID_MAX], char first_event[80],
                   int64_t *count);
int store_key_add(store_t *self, const char *key, const char *case_id, const char *event_id);
/* store_key_seen_again - count one more receipt of a known key */
int store_key_seen_again(store_t *self, const char *key);

/* store_case_get - 1 and the row, 0 if unknown */
int store_case_get(store_t *self, const char *case_id, case_row_t *out);
/* store_case_put - apply an accepted event's facts; counts one receipt
 * (the row's own counters are ignored: they are the store's) */
int store_case_put(store_t *self, const case_row_t *row);
/* store_case_bump - one more receipt of a known case: a duplicate
 * (which = 'd') or an out-of-order one ('o') */
int store_case_bump(store_t *self, const char *case_id, char which);
/* store_pending_refunds - refund cases whose last status is pending and
 * that were last updated before older_than_ms; at most max rows */
size_t store_pending_refunds(store_t *self, int64_t older_than_ms, case_row_t *out, size_t max);

#endif
