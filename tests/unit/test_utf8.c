/* test_utf8 - cuts on character boundaries: what fits is kept whole, a
 * character the cut would split is left out, the rest stays valid UTF-8 */
#include <criterion/criterion.h>
#include <string.h>

#include "jsonw.h"
#include "utf8.h"

#define E_ACUTE "\xc3\xa9"          /* 2 bytes */
#define EURO "\xe2\x82\xac"         /* 3 bytes */
#define GRINNING "\xf0\x9f\x98\x80" /* 4 bytes */

Test(utf8, a_text_that_fits_is_kept_whole)
{
    cr_expect_eq(utf8_cut("abc", 3, 3), 3);
    cr_expect_eq(utf8_cut(EURO, 3, 10), 3);
    cr_expect_eq(utf8_cut("", 0, 0), 0);
}

Test(utf8, a_cut_inside_a_character_leaves_it_out)
{
    const char *s = "ab" EURO "cd"; /* a b E2 82 AC c d */
    cr_expect_eq(utf8_cut(s, strlen(s), 2), 2, "before the euro: a boundary");
    cr_expect_eq(utf8_cut(s, strlen(s), 3), 2, "after its first byte");
    cr_expect_eq(utf8_cut(s, strlen(s), 4), 2, "after its second byte");
    cr_expect_eq(utf8_cut(s, strlen(s), 5), 5, "after it: a boundary");
    const char *g = GRINNING GRINNING;
    for (size_t max = 4; max < 8; max++)
        cr_expect_eq(utf8_cut(g, 8, max), 4, "max %zu", max);
    cr_expect_eq(utf8_cut(E_ACUTE, 2, 1), 0, "nothing of a character that does not fit");
}

Test(utf8, bytes_that_are_not_utf8_are_cut_where_asked)
{
    const char *s = "\x80\x80\x80\x80\x80\x80";
    cr_expect_eq(utf8_cut(s, 6, 5), 5);
}

Test(utf8, fmt_cuts_on_a_boundary_and_stays_valid)
{
    char out[16];
    /* "reason: " is 8 bytes; the 4-byte characters put a boundary at 8,
     * 12 and 16: 15 bytes fit, so the second is left out whole */
    size_t n = utf8_fmt(out, sizeof out, "reason: %s", GRINNING GRINNING "x");
    cr_expect_eq(n, 12);
    cr_expect_str_eq(out, "reason: " GRINNING);
    cr_expect(jsonw_utf8_valid((const unsigned char *) out, strlen(out), false));
    for (size_t len = 1; len <= sizeof out; len++) { /* every cut point */
        utf8_fmt(out, len, "%s%s%s", E_ACUTE "a", EURO, GRINNING E_ACUTE);
        cr_expect(jsonw_utf8_valid((const unsigned char *) out, strlen(out), false), "dstlen %zu: %s", len, out);
    }
    cr_expect_eq(utf8_fmt(out, sizeof out, "%d-%s", 7, "ok"), 4, "what fits is written as snprintf does");
    cr_expect_str_eq(out, "7-ok");
}
