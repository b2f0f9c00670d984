/* dedup - which inputs a stage instance has taken already, in memory set by
 * configuration, never by how much it has processed.
 *
 * Every input comes from a producer instance ("validate.1") and names its
 * position there: the seq of its record in the producer's journal. With
 * each event the producer sends its journal's epoch (journal.h) and its
 * floor for this link: the lowest seq it still waits for an ack of from
 * this stage (its delivery window, stage_window.c). Everything below the
 * floor was acknowledged by an instance of this stage, and an instance
 * acknowledges only what it has journaled, so it was taken. Per producer
 * (a link), dedup keeps:
 *   epoch  of the producer's journal: another epoch (a journal started
 *          again, seqs from 1) starts the link afresh;
 *   floor  the highest floor heard: a seq below it was taken;
 *   first  the first floor heard in that epoch, as journaled: below it,
 *          what was acknowledged may have been taken by a journal this
 *          instance no longer has (lost, being rebuilt by payguard replay
 *          --rebuild), or by a sibling instance before this one heard of
 *          the producer: so an event replayed to rebuild is a duplicate
 *          there only when its seq or id is remembered;
 *   seqs   the seqs at or above the floor this instance took, sorted.
 * Those seqs are in the producer's window, which holds at most
 * max_inflight events, and after the producer's restart what its last
 * journaled watermark leaves (at most max_inflight more, stage_emit.c):
 * so link_cap = 3 x max_inflight + 1024 always suffices. A link over its
 * cap (a producer configured otherwise) forgets its lowest seq and counts
 * it: a re-send of that one would be taken again (a duplicate, never a
 * loss).
 *
 * A stage that is not partitioned (triage) gets its inputs round-robin,
 * so a re-send can reach a sibling of the instance that took the first
 * copy; the sibling takes it too and emits the same derived ids
 * (event_derive_id), which then reach the next stage from two producers.
 * So dedup also keeps the ids of the last recent_ids inputs taken (two
 * generations of idset.h: when the newer is full the older is dropped,
 * so between recent_ids / 2 and recent_ids are remembered), and an id
 * among them is a duplicate too.
 *
 * epoch 0 means unknown (an 'I' record read back before its producer's
 * 'F'): the link keeps its epoch and floor; a link that epoch 0 started
 * takes the first real epoch without starting afresh. An input that came
 * without an epoch at all (one frame: a test tool, or anyone who can reach
 * the socket) is the owner's to check by id only (producer NULL), so the
 * position it claims cannot hide a real producer's event. floor 0 means
 * no floor (payguard replay): checked against, never raised.
 *
 * The owner journals what rebuilds this at start (stage_recover.c): the
 * floors and epochs (dedup_dirty) and every input taken.
 */
#ifndef PG_DEDUP_H
#define PG_DEDUP_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define DEDUP_MAX_LINKS 128       /* producer instances remembered; then the least recently heard goes */
#define DEDUP_PRODUCER_MAX 24     /* a producer's name: EVENT_STAGE_MAX (stage_recover.c asserts it) */
#define DEDUP_LINK_CAP_EXTRA 1024 /* link_cap = 3 x max_inflight + this */

typedef struct dedup_t dedup_t;

typedef struct {
    size_t links;       /* producers known */
    size_t seqs;        /* seqs above floors, over every link */
    size_t recent;      /* recent ids remembered */
    uint64_t forgotten; /* seqs dropped over a link's cap, links dropped over DEDUP_MAX_LINKS */
} dedup_stats_t;

/* dedup_new - NULL when out of memory or no random key for the id sets */
dedup_t *dedup_new(size_t link_cap, size_t recent_ids);
void dedup_destroy(dedup_t **self_p);

/* dedup_meet - bring producer's link to epoch and raise its floor to floor
 * (dropping the seqs below it): 1 when the link is new or starts a new
 * epoch (journal the floor before the input's own record), else 0 */
int dedup_meet(dedup_t *self, const char *producer, uint64_t epoch, uint64_t floor);

/* dedup_seen - was this input taken: DEDUP_BY_POSITION when seq is below
 * producer's floor (and, when rebuild, at or above its first floor) or
 * among its seqs; else DEDUP_BY_ID when id is among the recent ids (a
 * sibling's copy: its position is new here); else DEDUP_NEW (0).
 * producer NULL: by id only */
enum { DEDUP_NEW = 0, DEDUP_BY_POSITION = 1, DEDUP_BY_ID = 2 };
int dedup_seen(dedup_t *self, const char *producer, uint64_t seq, const char *id, bool rebuild);

/* dedup_add - the input was taken: its seq on producer's link (which
 * dedup_meet made; producer NULL: none) and its id among the recent (id
 * NULL: the position only, as a checkpoint restores it) */
void dedup_add(dedup_t *self, const char *producer, uint64_t seq, const char *id);

/* dedup_dirty - the next link, from *it (start at 0), whose epoch or floor
 * moved since it was last returned here: true and its values, which then
 * count as journaled; false after the last. To restore one: dedup_meet
 * with its first floor, then with its floor */
bool dedup_dirty(dedup_t *self, size_t *it, const char **producer, uint64_t *epoch, uint64_t *floor, uint64_t *first);

/* dedup_link_t - one link as it stands (dedup_link_at) */
typedef struct {
    const char *producer; /* borrowed until the next change */
    uint64_t epoch, floor, first;
    size_t nseqs;
} dedup_link_t;

/* dedup_link_at - link i of dedup_stats' links: false past the last */
bool dedup_link_at(const dedup_t *self, size_t i, dedup_link_t *out);
/* dedup_link_seq - seq k (< nseqs) of link i, ascending */
uint64_t dedup_link_seq(const dedup_t *self, size_t i, size_t k);

/* dedup_link_size - seqs held above producer's floor (0: no such link) */
size_t dedup_link_size(const dedup_t *self, const char *producer);

void dedup_stats(const dedup_t *self, dedup_stats_t *out);

#endif
