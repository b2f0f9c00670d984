/* test_money - amounts for people: integer minor units in the currency's decimals */
#include <criterion/criterion.h>
#include <stdint.h>

#include "money.h"

Test(money, two_decimals_with_thousands_separators)
{
    char out[64];
    money_format(1250000, "USD", out, sizeof out);
    cr_assert_str_eq(out, "12,500.00 USD");
    money_format(5, "eur", out, sizeof out);
    cr_assert_str_eq(out, "0.05 EUR", "lower-case codes are shown upper-case");
}

Test(money, zero_and_three_decimal_currencies)
{
    char out[64];
    money_format(123456789, "JPY", out, sizeof out);
    cr_assert_str_eq(out, "123,456,789 JPY");
    money_format(1234, "KWD", out, sizeof out);
    cr_assert_str_eq(out, "1.234 KWD");
    cr_assert_eq(money_decimals("krw"), 0);
    cr_assert_eq(money_decimals("GBP"), 2);
}

Test(money, negatives_and_extremes_need_no_floats)
{
    char out[64];
    money_number(-150, "USD", out, sizeof out);
    cr_assert_str_eq(out, "-1.50");
    money_number(INT64_MIN, "USD", out, sizeof out);
    cr_assert_str_eq(out, "-92,233,720,368,547,758.08");
    money_format(100, "U$D", out, sizeof out);
    cr_assert_str_eq(out, "1.00 ---", "not a currency code");
}
