/* utc - see utc.h */
#include "utc.h"

#include <time.h>

/* utc_iso - see utc.h */
int utc_iso(int64_t unix_ms, char out[UTC_ISO_MAX])
{
    time_t t = (time_t) (unix_ms / 1000);
    struct tm tm;
    out[0] = '\0';
    if (unix_ms < 0 || !gmtime_r(&t, &tm) || strftime(out, UTC_ISO_MAX, "%Y-%m-%dT%H:%M:%SZ", &tm) == 0) {
        out[0] = '\0';
        return -1;
    }
    return 0;
}
