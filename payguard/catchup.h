/* catchup - the pure parts of `payguard catch-up stripe` (catchup_cmd.c):
 * the times it takes, the Events API query of one page, the check of one
 * page's answer, and the state file that lets an interrupted run go on.
 * No network and no configuration here, so tests/unit/test_catchup.c can
 * drive each part alone.
 */
#ifndef PG_CATCHUP_H
#define PG_CATCHUP_H

#include <jansson.h>
#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define CATCHUP_PAGE_LIMIT 100       /* events a page asks for (Stripe's maximum) */
#define CATCHUP_ID_MAX 128           /* an event id, as validate's WH_ID_MAX */
#define CATCHUP_QUERY_MAX 1024       /* the path and query of one page */
#define CATCHUP_STATE_MAX_RUNS 32    /* runs the state file remembers (the oldest go first) */
#define CATCHUP_STATE_LINE_MAX 512   /* one run's line */
#define CATCHUP_TYPES_N 6            /* catchup_types */
#define CATCHUP_OPEN_UNTIL INT64_MIN /* --until not given */

/* catchup_types - the Stripe event types validate handles (CONTRACT.md
 * §1.1, validate/schema.c), NULL-terminated: the only ones listed */
extern const char *const catchup_types[CATCHUP_TYPES_N + 1];

/* catchup_time - a TIME argument in unix seconds: RFC 3339 in UTC
 * ("2026-11-21T08:00:00Z"), a day ("2026-11-21", its midnight), unix
 * seconds, or "now-<seconds>" (now given); 0, or -1 and why */
int catchup_time(const char *text, int64_t now, int64_t *out, char *err, size_t errlen);

/* catchup_id_ok - an event id the query and the state file can carry
 * ([A-Za-z0-9_], 1 to CATCHUP_ID_MAX - 1 bytes) */
bool catchup_id_ok(const char *id);

/* catchup_query - "/v1/events?created[gte]=...&created[lte]=...&limit=100
 * &types[]=...[&starting_after=ID]" (brackets percent-encoded) into out;
 * until CATCHUP_OPEN_UNTIL: no upper bound; after NULL or "": the first
 * page. 0, or -1 (a bad id, out too small) */
int catchup_query(int64_t since, int64_t until, const char *after, char *out, size_t outlen);

/* catchup_page - check one answer of the list call and append its events,
 * in the order listed (newest first), to events (a JSON array);
 * *has_more as the answer says. Each event needs a good id, a string type
 * and an integer created; at most CATCHUP_PAGE_LIMIT of them. The count
 * appended, or -1 and why (nothing appended) */
int catchup_page(const char *body, size_t len, json_t *events, bool *has_more, char *err, size_t errlen);

/* catchup_run_t - one run's progress, as the state file keeps it */
typedef struct {
    int64_t since;
    int64_t until;                /* as given: CATCHUP_OPEN_UNTIL when open */
    int64_t eff_until;            /* the upper bound used: until, or the first run's start */
    char last_id[CATCHUP_ID_MAX]; /* the last event handed in or found a duplicate; "" none yet */
    int64_t fetched, fresh, dups; /* so far, over every attempt of the run */
    bool done;
} catchup_run_t;

/* catchup_state_get - the run of (since, until) in the state file: 1 and
 * *run, 0 when the file or the run is not there, -1 and why */
int catchup_state_get(const char *path, int64_t since, int64_t until, catchup_run_t *run, char *err, size_t errlen);

/* catchup_state_put - record run (replacing the line of its range; the
 * newest last, at most CATCHUP_STATE_MAX_RUNS lines) through a temporary
 * file and a rename: a crash leaves the old state or the new; 0, or -1 */
int catchup_state_put(const char *path, const catchup_run_t *run, char *err, size_t errlen);

#endif
