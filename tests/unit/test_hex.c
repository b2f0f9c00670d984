/* test_hex - hex_decode: either case, an even count of digits only */
#include <criterion/criterion.h>
#include <string.h>

#include "hex.h"

Test(hex, digits_of_either_case_to_bytes)
{
    unsigned char out[4];
    size_t n = 0;
    cr_assert_eq(hex_decode("0aFf10", 6, out, sizeof out, &n), 0);
    cr_expect_eq(n, 3);
    cr_expect_eq(memcmp(out, "\x0a\xff\x10", 3), 0);
}

Test(hex, anything_else_is_refused)
{
    unsigned char out[4];
    size_t n = 0;
    cr_expect_eq(hex_decode("abc", 3, out, sizeof out, &n), -1, "odd count");
    cr_expect_eq(hex_decode("", 0, out, sizeof out, &n), -1, "empty");
    cr_expect_eq(hex_decode("5?", 2, out, sizeof out, &n), -1, "not a digit");
    cr_expect_eq(hex_decode(" f", 2, out, sizeof out, &n), -1, "a space (sscanf's %2x took it)");
    cr_expect_eq(hex_decode("-1", 2, out, sizeof out, &n), -1, "a sign");
    cr_expect_eq(hex_decode("0011223344", 10, out, sizeof out, &n), -1, "more bytes than out holds");
    cr_expect_eq(hex_decode(NULL, 2, out, sizeof out, &n), -1);
}

Test(hex, bytes_to_lower_case_digits_and_back)
{
    const unsigned char in[] = {0x00, 0x0a, 0xff, 0x10};
    char text[2 * sizeof in + 1];
    hex_encode(in, sizeof in, text);
    cr_expect_str_eq(text, "000aff10");
    unsigned char back[4];
    size_t n = 0;
    cr_assert_eq(hex_decode(text, strlen(text), back, sizeof back, &n), 0);
    cr_expect_eq(memcmp(back, in, sizeof in), 0);
    hex_encode(in, 0, text);
    cr_expect_str_eq(text, "");
}
