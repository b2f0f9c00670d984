/* refusals - refused requests per source address, for the processes that
 * answer people's tokens (approve, audit, console): repeats aggregated for
 * the trail, a source throttled after repeated failures.
 *
 * One bounded table per process (opts.max_sources sources; a new one
 * evicts the least recently refused), safe from any thread (one mutex),
 * on an injectable clock (unix ms; tests drive it):
 *
 *   AGGREGATION - the first refusal of a source opens its window and is
 *   recorded at once, on its own (an attack is on the trail at once); the
 *   repeats within payguard/refusals/window_s are counted, and once the
 *   window has ended refusals_flush hands out one summary for them:
 *   "N refusals from X between T1 and T2". The next refusal opens a new
 *   window. A refusal the caller could not record (refusals_missed: the
 *   trail's window full) is counted into the summary, never lost; so is
 *   the summary of an evicted source (held until the next flush; past
 *   REFUSALS_DUE_MAX of them, merged into one of "(evicted sources)").
 *   Refusals of authenticated people (a segregation-of-duties 403) are
 *   recorded one by one, naming them: only REFUSALS_AGGREGATE ones are
 *   folded.
 *
 *   THROTTLE - payguard/refusals/throttle_after failures (REFUSALS_FAILURE:
 *   a 401 or 403) from one source within window_s throttle it for
 *   throttle_s: every request it sends meanwhile is answered 429 with
 *   Retry-After (refusals_throttled) and counted into its summary; the
 *   refusal that starts the throttle is recorded on its own, saying so.
 *   Addresses in payguard/refusals/exempt are never throttled (still
 *   recorded and aggregated): the console's, as approve and audit see
 *   it, since the console passes on every person's requests and
 *   throttles its own sources itself.
 *
 * Refused ids are data (refusals_escape: printable ASCII, the rest as
 * %XX), never a case key.
 */
#ifndef PG_REFUSALS_H
#define PG_REFUSALS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "event.h"
#include "stage.h"

#define REFUSALS_SOURCE_MAX 64  /* a source address as text, with its NUL */
#define REFUSALS_SOURCES 4096   /* sources each process tracks at once */
#define REFUSALS_EXEMPT_MAX 16  /* addresses in payguard/refusals/exempt */
#define REFUSALS_DUE_MAX 256    /* summaries of evicted sources held until a flush */
#define REFUSALS_TEXT_MAX 256   /* an escaped id as recorded, with its NUL */
#define REFUSALS_REASON_MAX 320 /* a refusal's reason with the throttle note */

typedef struct refusals_t refusals_t;

/* refusals_clock_fn - now, in unix milliseconds */
typedef int64_t refusals_clock_fn(void *arg);

typedef struct {
    long window_s;       /* payguard/refusals/window_s */
    long throttle_after; /* failures within a window before the source is throttled */
    long throttle_s;     /* how long */
    size_t max_sources;  /* sources tracked at once (REFUSALS_SOURCES) */
    const char *exempt;  /* addresses never throttled, space-separated (may be NULL) */
} refusals_opts_t;

/* what refusals_note is told about a refusal (flags) */
#define REFUSALS_FAILURE 1u   /* a 401 or 403: counts toward the throttle */
#define REFUSALS_AGGREGATE 2u /* unauthenticated: recorded on its own only when the verdict says so */

/* refusals_verdict_t - what to do with a refusal just noted */
typedef struct {
    bool record;         /* record it on the trail now, on its own */
    bool throttled;      /* it started the source's throttle */
    long throttle_s;     /* for how long (with throttled) */
    unsigned long fails; /* after how many failures (with throttled) */
} refusals_verdict_t;

/* refusals_summary_t - the refusals of one source not recorded on their own */
typedef struct {
    char source[REFUSALS_SOURCE_MAX];
    uint64_t count;     /* refusals it stands for */
    uint64_t throttled; /* of which answered 429 */
    int64_t first_ms, last_ms;
} refusals_summary_t;

typedef struct {
    size_t sources;       /* in the table now */
    size_t throttled_now; /* of which throttled */
    uint64_t throttled;   /* requests answered 429, ever */
    uint64_t aggregated;  /* refusals handed out in summaries, ever */
} refusals_stats_t;

/* refusals_config - opts from payguard/refusals/ (bounded in config.c);
 * exempt points into c. 0, or -1 and why */
int refusals_config(const config_t *c, refusals_opts_t *opts, char *err, size_t errlen);

/* refusals_exempt_check - a payguard/refusals/exempt value: at most
 * REFUSALS_EXEMPT_MAX IPv4 or IPv6 addresses, space-separated (config_load
 * refuses anything else). 0, or -1 and why */
int refusals_exempt_check(const char *list, char *err, size_t errlen);

/* refusals_new - a table (clock NULL: the real time); NULL and why when
 * opts are out of range or exempt is not a list of addresses */
refusals_t *refusals_new(const refusals_opts_t *opts, refusals_clock_fn *clock, void *clock_arg, char *err,
                         size_t errlen);
void refusals_destroy(refusals_t **self_p);

/* refusals_throttled - 0 when source may be served; else the seconds until
 * its throttle ends (Retry-After, at least 1), and the request is counted
 * as one more refusal (429) of its summary. A source that was never
 * refused takes no room in the table. */
long refusals_throttled(refusals_t *self, const char *source);

/* refusals_note - one refused request from source (flags above) */
refusals_verdict_t refusals_note(refusals_t *self, const char *source, unsigned flags);

/* refusals_missed - a refusal the caller was told to record and could not
 * (back-pressure): it goes into the source's next summary instead */
void refusals_missed(refusals_t *self, const char *source);

/* refusals_emit_fn - record one summary: 0, or -1 to keep it for the next
 * flush (the caller's window is full) */
typedef int refusals_emit_fn(const refusals_summary_t *s, void *arg);

/* refusals_flush - hand the summaries due to emit (under the table's lock:
 * emit must not call back into it): those of evicted sources, of windows
 * that ended, and with all (stopping) of every open window. Stops at the
 * first emit that fails. How many were emitted */
size_t refusals_flush(refusals_t *self, bool all, refusals_emit_fn *emit, void *arg);

/* refusals_trail_flush - refusals_flush onto the trail of a stage: each
 * summary an access_denied event (stage_inject, from the loop thread),
 * counted in payguard_refusals_aggregated_total */
size_t refusals_trail_flush(refusals_t *self, stage_t *st, bool all);

/* refusals_stats - the table's numbers, for the metrics */
void refusals_stats(refusals_t *self, refusals_stats_t *out);

/* refusals_summary_text - "N refusals from X between T1 and T2" (and how
 * many were answered 429) */
void refusals_summary_text(const refusals_summary_t *s, char *out, size_t outlen);

/* refusals_reason - why, and when the verdict started a throttle, that
 * too ("; <throttle note>") */
void refusals_reason(const refusals_verdict_t *v, const char *why, char out[REFUSALS_REASON_MAX]);

/* refusals_body - a refusal recorded on its own, as an event body: who
 * ("(unknown token)" when NULL), the id asked for as data (escaped, under
 * "requested_case"; NULL: none), the status, the reason with the throttle
 * note, the client address */
event_body_t *refusals_body(const refusals_verdict_t *v, const char *who, const char *requested, unsigned status,
                            const char *why, const char *peer);

/* refusals_escape - in as recorded: bytes 0x21..0x7e but '%' as they
 * are, every other byte as %XX (so any id is printable ASCII, and no two
 * ids read the same); cut with "..." to fit outlen (at least 8) */
void refusals_escape(const char *in, char *out, size_t outlen);

#endif
