/* casedb - approve's cases on disk: every case it holds, as of a journal
 * position, in SQLite (approve/case_db).
 *
 * approve keeps in memory only the cases still in flight (awaiting people,
 * or decided with their outcome not yet sent); every other case lives here,
 * and is read back when someone asks for it (GET, a late decision that
 * gets its 409, an ops-review retry or close).
 *
 * SNAPSHOT CONTRACT
 *   A commit writes the cases that changed (casedb_put) and applied_jseq
 *   together, in one transaction: the table is then exactly what approve's
 *   journal says up to applied_jseq. The caller commits only a seq its
 *   journal holds durably, and only when every change of every record up to
 *   it is in what it put (approve commits from its loop thread, under its
 *   lock, after syncing the journal). At start approve reads the journal
 *   only after applied_jseq, so a restart costs what happened since the
 *   last commit, not the whole history. A file whose applied_jseq is past
 *   the journal's end (a journal that lost its unsynced tail), or of another
 *   journal (its epoch), is emptied and rebuilt from the journal; a missing file is
 *   rebuilt the same way (cases.c, main.c).
 *
 * DURABILITY
 *   WAL, synchronous=NORMAL: a commit survives a crash of approve; a power
 *   loss may take the last commits, which the journal replays.
 *
 * THREADS
 *   One connection, used under approve's lock (approve_t.mu).
 */
#ifndef PG_APPROVE_CASEDB_H
#define PG_APPROVE_CASEDB_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CASEDB_LIST_MAX 1000

typedef struct casedb_t casedb_t;

/* casedb_open - open or create the store of the journal whose epoch is
 * epoch (journal.h); a store of another epoch (a journal removed and begun
 * again, or rewritten by payguard repartition) is emptied. NULL and err */
casedb_t *casedb_open(const char *path, uint64_t epoch, char *err, size_t errlen);
void casedb_close(casedb_t **self_p);
/* casedb_applied - the journal seq the table reflects (0: none) */
uint64_t casedb_applied(casedb_t *self);
/* casedb_wipe - forget every case and the position (a rebuild follows) */
int casedb_wipe(casedb_t *self);
/* casedb_put - a case's row (in a transaction opened on demand; visible
 * to casedb_get at once, durable at the next casedb_commit); 0 or -1 */
int casedb_put(casedb_t *self, const char *case_id, const char *state, int64_t created_ms, bool in_flight,
               const char *row);
/* casedb_commit - what was put, with applied_jseq; 0 or -1 (logged; the
 * rows stay in the transaction for the next try) */
int casedb_commit(casedb_t *self, uint64_t applied_jseq);
/* casedb_get - a case's row (malloc'd), NULL if none */
char *casedb_get(casedb_t *self, const char *case_id);
/* casedb_each - up to limit rows, newest first, of one state (NULL: all);
 * fn gets each row; returns how many */
size_t casedb_each(casedb_t *self, const char *state, size_t limit, void (*fn)(const char *row, void *arg), void *arg);
/* casedb_in_flight - every row put with in_flight (what approve holds in
 * memory), oldest first; how many */
size_t casedb_in_flight(casedb_t *self, void (*fn)(const char *row, void *arg), void *arg);
/* casedb_count - cases on disk */
int64_t casedb_count(casedb_t *self);

#endif
