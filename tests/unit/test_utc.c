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
