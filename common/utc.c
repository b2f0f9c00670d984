/* utc - see utc.h */
#include "utc.h"

#include <stdbool.h>
#include <stdio.h>
#include <string.h>
#include <time.h>

/* s_days - days from 1970-01-01 to y-m-d in the proleptic Gregorian
 * calendar (Howard Hinnant's days_from_civil) */
static int64_t s_days(int64_t y, int64_t m, int64_t d)
{
    y -= m <= 2;
    int64_t era = y / 400, yoe = y - era * 400;
    int64_t doy = (153 * (m + (m > 2 ? -3 : 9)) + 2) / 5 + d - 1;
    int64_t doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    return era * 146097 + doe - 719468;
}

/* s_month_days - the days of month m (1..12) of year y */
static int s_month_days(int y, int m)
{
    static const int days[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    bool leap = (y % 4 == 0 && y % 100 != 0) || y % 400 == 0;
    return m == 2 && leap ? 29 : days[m - 1];
}

/* utc_parse - see utc.h */
int utc_parse(const char *text, int64_t *unix_ms)
{
    size_t n = strlen(text);
    if (n > 0 && n <= 11 && strspn(text, "0123456789") == n) { /* unix seconds */
        long long s = 0;
        sscanf(text, "%lld", &s);
        *unix_ms = (int64_t) s * 1000;
        return 0;
    }
    int y, mo, d, h = 0, mi = 0, s = 0, used = 0;
    if (n == 10 && sscanf(text, "%4d-%2d-%2d%n", &y, &mo, &d, &used) == 3 && used == 10)
        ;
    else if (n != 20 || sscanf(text, "%4d-%2d-%2dT%2d:%2d:%2dZ%n", &y, &mo, &d, &h, &mi, &s, &used) != 6 || used != 20)
        return -1;
    if (text[4] != '-' || text[7] != '-' || y < 1970 || mo < 1 || mo > 12 || d < 1 || d > s_month_days(y, mo) ||
        h > 23 || mi > 59 || s > 59 || h < 0 || mi < 0 || s < 0)
        return -1;
    *unix_ms = ((s_days(y, mo, d) * 24 + h) * 60 + mi) * 60000 + (int64_t) s * 1000;
    return 0;
}

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
