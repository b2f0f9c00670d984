/* test_utc - times as people read them */
#include <criterion/criterion.h>

#include "utc.h"

Test(utc, iso_to_the_second)
{
    char out[UTC_ISO_MAX];
    cr_assert_eq(utc_iso(1795248236578, out), 0);
    cr_assert_str_eq(out, "2026-11-21T08:03:56Z");
    cr_assert_eq(utc_iso(0, out), 0);
    cr_assert_str_eq(out, "1970-01-01T00:00:00Z");
}

Test(utc, out_of_range_is_empty)
{
    char out[UTC_ISO_MAX] = "x";
    cr_assert_eq(utc_iso(-1, out), -1);
    cr_assert_str_eq(out, "");
}

/* what an operator types for --since and --until */
Test(utc, parse_what_people_type)
{
    int64_t ms = 0;
    cr_assert_eq(utc_parse("2026-11-21T08:03:56Z", &ms), 0);
    cr_assert_eq(ms, 1795248236000);
    cr_assert_eq(utc_parse("2026-11-21", &ms), 0);
    cr_assert_eq(ms, 1795219200000);
    cr_assert_eq(utc_parse("1795248236", &ms), 0);
    cr_assert_eq(ms, 1795248236000);
    cr_assert_eq(utc_parse("1970-01-01T00:00:00Z", &ms), 0);
    cr_assert_eq(ms, 0);
    cr_assert_eq(utc_parse("2024-02-29", &ms), 0, "a leap day");
    cr_assert_eq(ms, 1709164800000);
    /* round trip with utc_iso over a few centuries */
    char out[UTC_ISO_MAX];
    for (int64_t t = 0; t < 400LL * 366 * 86400000; t += 86400000LL * 97 + 3723000) {
        cr_assert_eq(utc_iso(t, out), 0);
        cr_assert_eq(utc_parse(out, &ms), 0, "%s", out);
        cr_assert_eq(ms, t - t % 1000, "%s", out);
    }
}

Test(utc, parse_refuses_what_is_not_a_time)
{
    int64_t ms = 7;
    const char *bad[] = {"",
                         "yesterday",
                         "2026-11-21T08:03:56",
                         "2026-11-21T08:03:56+01:00",
                         "2026-13-01",
                         "2026-02-29",
                         "2025-11-31",
                         "2026-11-21T24:00:00Z",
                         "2026-11-21T08:60:00Z",
                         "1969-12-31",
                         "2026-11-21 08:03:56Z",
                         "2026/11/21",
                         "2026-11-21x",
                         "-5",
                         "123456789012"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_assert_eq(utc_parse(bad[i], &ms), -1, "'%s' taken", bad[i]);
    cr_assert_eq(ms, 7, "nothing written on refusal");
}
