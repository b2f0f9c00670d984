/* caseidx - audit's case index: every case, its state and its timeline, in
 * SQLite, answering GET /cases/{id}, GET /cases?state= and `payguard case
 * show`.
 *
 * A projection of the trail, never the other way round: each trail record
 * is applied once (keyed by its event id) and the index remembers the last
 * journal record applied (meta.applied_jseq). At start, audit applies the
 * journal past that point; an index that is missing, of another schema
 * version, or AHEAD of the journal (a commit that outlived the journal's
 * unsynced tail) is wiped and rebuilt from the trail. Losing the file loses
 * nothing. Commits are batched (audit's indexer: at most every 100 ms).
 *
 * WHAT IT KEEPS
 *   Each case's facts and state; for each event only what the lists show
 *   (type, time, stage, id, cause, its one-line summary) and where the
 *   trail holds it (journal seq, segment, offset: journal_reader_where).
 *   The case view reads each event's body from the trail at that place
 *   (journal_reader_seek; the record's checksum and seq are checked; an
 *   archived segment is expanded into memory once per view and let go
 *   after it), so the index grows by a
 *   few hundred bytes an event, not by the event again. A body the trail
 *   cannot give shows as "detail": null, "detail_unreadable": true.
 *
 * CASE STATES
 *   rejected            validate refused the webhook (its reason on the timeline)
 *   validated           accepted, not yet triaged
 *   triaged             advice recorded, not yet routed
 *   awaiting_approval   people must decide (query alias: pending)
 *   approved            approved (by people, or auto-approved by policy)
 *   denied              denied by a required approver
 *   expired             nobody decided in time, past the top tier
 *   executing           its runbook is running
 *   executed            its runbook ran to the end
 *   ops_review          a runbook step failed for good: people look at it
 *   already_consistent  nothing to do: our records already agree
 *   closed              taken out of ops review by a person
 *   A state moves with the newest state-bearing event (by event time);
 *   duplicates, late events and advice about duplicates never move it back,
 *   and a later event that finds nothing left to do (already_consistent)
 *   does not hide that the case was executed or is in ops review.
 *
 * FINDING A CASE (GET /cases?q=)
 *   Every id a person may be told about a case is kept in the ids table,
 *   keyed (id, case): the case id; from validate's verdicts the payout,
 *   refund and payment ids (and the payment intent), the PSP's event id
 *   (Stripe evt_..., Adyen's eventCode:pspReference:success; a Standard
 *   Webhooks webhook-id, whose event id it is, as webhook_id), Adyen's
 *   pspReference and the idempotency key; from execute's ticket steps the
 *   ticket key. Ingest's receipt ids are found through the links table
 *   (receipt -> case) the timeline already keeps. Ids are kept ASCII-
 *   lowercased, so a search ignores ASCII case. A query matches whole ids
 *   first; only when none matches whole, and it is CASEIDX_PREFIX_MIN bytes
 *   or longer, the ids it begins ("evt_1N" finds evt_1NxYz...). A case keeps
 *   at most ids_max ids (audit/case_ids_max; its case id and ticket keys
 *   always): more event ids for one case (a PSP sending many distinct
 *   events about one payout) are not indexed, and counted. Nothing removes
 *   a case from the index (the trail is archived, never removed), so its
 *   ids live as long as it does; a rebuild wipes and refills both.
 *
 * THREADS
 *   One writer (at start audit's main thread, then its indexer's thread:
 *   indexer.h); readers on other threads use a connection of their own
 *   (caseidx_open with readonly) under WAL.
 */
#ifndef PG_AUDIT_CASEIDX_H
#define PG_AUDIT_CASEIDX_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "event.h"

#define CASEIDX_LIST_MAX 1000
#define CASEIDX_SUMMARY_MAX 1024 /* a timeline entry's one line */
#define CASEIDX_QUERY_MAX 128    /* a find query (?q=), bytes: above any id payguard keeps */
#define CASEIDX_PREFIX_MIN 4     /* shorter queries match whole ids only */
#define CASEIDX_IDS_DEFAULT 64   /* ids kept per case unless caseidx_set_ids_max says otherwise */

typedef struct caseidx_t caseidx_t;

/* caseidx_open - open (or create, unless readonly) the index at path of
 * the trail whose journal is in the directory trail; NULL and a reason */
caseidx_t *caseidx_open(const char *path, const char *trail, bool readonly, char *err, size_t errlen);
void caseidx_close(caseidx_t **self_p);

/* caseidx_sync - make the index reflect the journal at dir (the audit
 * trail): apply what is past applied_jseq, or wipe and rebuild when the
 * index is ahead of the journal. Prints nothing; counts in *applied.
 * 0, or -1 and a reason. */
int caseidx_sync(caseidx_t *self, const char *dir, uint64_t *applied, char *err, size_t errlen);

/* caseidx_apply - one stored event (trail record at journal seq jseq);
 * opens a transaction if none is open. 0, or -1 (logged). */
typedef struct {
    uint64_t jseq;     /* the trail record's journal seq */
    uint64_t seg, off; /* where it is (journal_reader_where) */
} caseidx_pos_t;
int caseidx_apply(caseidx_t *self, const event_t *ev, const caseidx_pos_t *at);
/* caseidx_commit - commit the open transaction, if any */
int caseidx_commit(caseidx_t *self);
uint64_t caseidx_applied_jseq(caseidx_t *self);
/* caseidx_set_ids_max - how many ids one case keeps for finding it (see
 * FINDING A CASE; audit/case_ids_max) */
void caseidx_set_ids_max(caseidx_t *self, size_t ids_max);
/* caseidx_ids_dropped - ids not kept since open because their case was full */
uint64_t caseidx_ids_dropped(caseidx_t *self);

/* caseidx_case_json - the case as JSON text (CONTRACT.md §3.2), the
 * caller's to free; NULL if unknown */
char *caseidx_case_json(caseidx_t *self, const char *case_id);

/* caseidx_filter_t - what a list asks for; zero/NULL fields match all */
typedef struct {
    const char *state;        /* a CASE STATE or an alias */
    const char *kind;         /* payout | refund */
    int tier;                 /* 1..3 */
    int64_t created_after_ms; /* cases created at or after this time */
    size_t limit;             /* <= CASEIDX_LIST_MAX (0: the maximum) */
    const char *q;            /* an id to find the cases of (caseidx_query_ok), or NULL */
} caseidx_filter_t;

/* caseidx_find_json - {"cases":[...]} newest first, filtered; each case
 * with "last": its latest timeline entry {type, at, summary} (what the ops
 * review queue shows as why) and, for a case in ops review, "review": the
 * entry that put it there (the failed step, what a later notice hides);
 * the caller's to free. With f->q, only the
 * cases one of whose ids it matches (FINDING A CASE), each with "matched":
 * [{"field": "payout_id", "id": "P-10492"}, ...], and beside the list
 * "match": "exact", "prefix" or "none" */
char *caseidx_find_json(caseidx_t *self, const caseidx_filter_t *f);

/* caseidx_query_ok - q is a query ?q= may carry: 1..CASEIDX_QUERY_MAX
 * bytes, no control character, no space at either end; false and why */
bool caseidx_query_ok(const char *q, char *why, size_t whylen);

/* caseidx_state_known - is state one of the CASE STATES (or an alias)? */
bool caseidx_state_known(const char *state);

/* caseidx_counts - call fn for each state with its number of cases */
void caseidx_counts(caseidx_t *self, void (*fn)(const char *state, int64_t n, void *arg), void *arg);

/* caseidx_summary - one readable line for a timeline entry (an event as
 * JSON: a json_t *, as void *), into out */
void caseidx_summary(const void *event_json, char *out, size_t outlen);

#endif
