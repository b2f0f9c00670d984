/* utc - times as people read them: RFC 3339 / ISO 8601 in UTC, to the second. */
#ifndef PG_UTC_H
#define PG_UTC_H

#include <stdint.h>

#define UTC_ISO_MAX 32

/* utc_iso - unix milliseconds as "2026-11-21T08:03:56Z" into out; 0, or -1
 * and "" when the time is negative or cannot be represented */
int utc_iso(int64_t unix_ms, char out[UTC_ISO_MAX]);

/* utc_parse - a time as an operator types it into unix milliseconds:
 * "2026-11-21T08:03:56Z" (RFC 3339 in UTC, to the second), "2026-11-21"
 * (its midnight, UTC) or unix seconds ("1795248236"); years 1970..9999.
 * 0, or -1 for anything else (a zone other than Z, a day that does not
 * exist, trailing text) */
int utc_parse(const char *text, int64_t *unix_ms);

#endif
