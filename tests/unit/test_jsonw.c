/* test_jsonw - the direct JSON writer: its text is jansson's compact dump of
 * the same values, commas and nesting included, every byte below 0x20 and
 * the two that need escaping escaped as jansson escapes them */
#include "jsonw.h"

#include <criterion/criterion.h>
#include <jansson.h>
#include <stdlib.h>
#include <string.h>

/* dump - jansson's compact text of a tree (consumed) */
static char *dump(json_t *tree)
{
    cr_assert_not_null(tree);
    char *text = json_dumps(tree, JSON_COMPACT | JSON_ENCODE_ANY);
    json_decref(tree);
    cr_assert_not_null(text);
    return text;
}

Test(jsonw, every_byte_of_a_string_as_jansson_writes_it)
{
    char all[256];
    for (int i = 0; i < 128; i++) /* every ASCII byte, NUL included */
        all[i] = (char) i;
    jsonw_t w;
    jsonw_init(&w);
    jsonw_str(&w, all, 128);
    char *got = jsonw_take(&w);
    char *want = dump(json_stringn(all, 128));
    cr_expect_str_eq(got, want);
    cr_expect_not_null(strstr(got, "\\u0000\\u0001"), "%s", got);
    cr_expect_not_null(strstr(got, "\\b\\t\\n\\u000B\\f\\r"), "%s", got);
    cr_expect_not_null(strstr(got, "!\\\"#"), "%s", got);
    cr_expect_not_null(strstr(got, "[\\\\]"), "%s", got);
    free(got);
    free(want);
}

Test(jsonw, objects_and_arrays_with_their_commas)
{
    jsonw_t w;
    jsonw_init(&w);
    jsonw_open(&w, '{');
    jsonw_key(&w, "a", 1);
    jsonw_int(&w, -5);
    jsonw_key(&w, "empty_obj", 9);
    jsonw_open(&w, '{');
    jsonw_close(&w, '}');
    jsonw_key(&w, "list", 4);
    jsonw_open(&w, '[');
    jsonw_null(&w);
    jsonw_bool(&w, true);
    jsonw_open(&w, '[');
    jsonw_close(&w, ']');
    jsonw_open(&w, '{');
    jsonw_key(&w, "x", 1);
    jsonw_str(&w, "\xe2\x82\xac", 3);
    jsonw_close(&w, '}');
    jsonw_uint(&w, 18);
    jsonw_close(&w, ']');
    jsonw_key(&w, "no", 2);
    jsonw_bool(&w, false);
    jsonw_close(&w, '}');
    char *got = jsonw_take(&w);
    char *want = dump(json_pack("{s:I, s:{}, s:[n, b, [], {s:s}, I], s:b}", "a", (json_int_t) -5, "empty_obj", "list",
                                1, "x", "\xe2\x82\xac", (json_int_t) 18, "no", 0));
    cr_expect_str_eq(got, want);
    free(got);
    free(want);
}

Test(jsonw, take_empties_the_writer_and_reset_drops_the_text)
{
    jsonw_t w;
    jsonw_init(&w);
    char *nothing = jsonw_take(&w);
    cr_expect_str_eq(nothing, "", "nothing written is the empty text, not NULL");
    free(nothing);
    jsonw_int(&w, 1);
    jsonw_int(&w, 2); /* two values at the top level are two texts' worth: the writer still separates them */
    char *two = jsonw_take(&w);
    cr_expect_str_eq(two, "1,2");
    free(two);
    jsonw_open(&w, '[');
    jsonw_str(&w, "dropped", 7);
    jsonw_close(&w, ']');
    jsonw_reset(&w);
    jsonw_int(&w, INT64_MIN);
    char *min = jsonw_take(&w);
    cr_expect_str_eq(min, "-9223372036854775808");
    free(min);
}

Test(jsonw, utf8_validity_is_strict)
{
    cr_expect(jsonw_utf8_valid((const unsigned char *) "h\xc3\xa9", 3, false));
    cr_expect(jsonw_utf8_valid((const unsigned char *) "\xf4\x8f\xbf\xbf", 4, false), "U+10FFFF");
    cr_expect_not(jsonw_utf8_valid((const unsigned char *) "\xf4\x90\x80\x80", 4, false), "past U+10FFFF");
    cr_expect_not(jsonw_utf8_valid((const unsigned char *) "\xc0\xaf", 2, false), "overlong");
    cr_expect_not(jsonw_utf8_valid((const unsigned char *) "\xe0\x80\xaf", 3, false), "overlong, 3 bytes");
    cr_expect_not(jsonw_utf8_valid((const unsigned char *) "\xed\xa0\x80", 3, false), "a surrogate");
    cr_expect_not(jsonw_utf8_valid((const unsigned char *) "\xe2\x82", 2, false), "cut short");
    cr_expect_not(jsonw_utf8_valid((const unsigned char *) "a\0b", 3, false), "NUL refused");
    cr_expect(jsonw_utf8_valid((const unsigned char *) "a\0b", 3, true), "NUL allowed");
}
