/* utc - times as people read them: RFC 3339 / ISO 8601 in UTC, to the second. */
#ifndef PG_UTC_H
#define PG_UTC_H

#include <stdint.h>

#define UTC_ISO_MAX 32

/* utc_iso - unix milliseconds as "2026-11-21T08:03:56Z" into out; 0, or -1
 * and "" when the time is negative or cannot be represented */
int utc_iso(int64_t unix_ms, char out[UTC_ISO_MAX]);

#endif
