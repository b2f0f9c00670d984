/* test_relay - X-Payguard-Client: parsed strictly, formatted back, and
 * believed on approve's public port only with the console's seal of that
 * address for that request's Authorization */
#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

#include "relay.h"

static const unsigned char s_key[SEALKEY_BYTES] = "the console's relay key, 32 B..";

Test(relay, a_header_is_parsed_and_formatted_back)
{
    relay_t r;
    cr_assert_eq(relay_parse("203.0.113.5", &r), 0);
    cr_expect_str_eq(r.client, "203.0.113.5");
    cr_expect_str_eq(r.via, "");
    cr_expect_str_eq(r.seal, "");
    cr_assert_eq(relay_parse("2001:db8::7;via=127.0.0.1", &r), 0);
    cr_expect_str_eq(r.client, "2001:db8::7");
    cr_expect_str_eq(r.via, "127.0.0.1");
    char value[RELAY_VALUE_MAX];
    relay_format(&r, value);
    cr_expect_str_eq(value, "2001:db8::7;via=127.0.0.1");
    relay_seal(s_key, "203.0.113.5", "Bearer t", r.seal);
    snprintf(r.client, sizeof r.client, "203.0.113.5");
    r.via[0] = '\0';
    relay_format(&r, value);
    relay_t back;
    cr_assert_eq(relay_parse(value, &back), 0, "%s", value);
    cr_expect_str_eq(back.seal, r.seal);
}

Test(relay, anything_else_is_not_a_header)
{
    relay_t r;
    const char *bad[] = {"",
                         "203.0.113.5 ",
                         "a b",
                         "1.2.3.4;via=",
                         "1.2.3.4;via=5.6.7.8;via=9.9.9.9",
                         "1.2.3.4;who=x",
                         "1.2.3.4;seal=abc",
                         "1.2.3.4;seal=" /* 64 upper-case digits */
                         "ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789ABCDEF0123456789",
                         "1.2.3.4\r\nX-Evil: 1",
                         "1.2.3.4;via=<script>"};
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++)
        cr_expect_eq(relay_parse(bad[i], &r), -1, "%s", bad[i]);
    char longaddr[RELAY_ADDR_MAX + 1];
    memset(longaddr, '1', sizeof longaddr - 1);
    longaddr[sizeof longaddr - 1] = '\0';
    cr_expect_eq(relay_parse(longaddr, &r), -1, "an address over 63 bytes");
    cr_expect_eq(relay_parse(NULL, &r), -1);
}

Test(relay, only_the_consoles_seal_for_this_token_is_believed)
{
    relay_t r = {.client = "203.0.113.5"};
    cr_expect_not(relay_check(s_key, &r, "Bearer fin"), "no seal: not believed");
    relay_seal(s_key, r.client, "Bearer fin", r.seal);
    cr_expect(relay_check(s_key, &r, "Bearer fin"), "the console's seal for this request");
    cr_expect_not(relay_check(s_key, &r, "Bearer other"), "the seal of another token's request");
    cr_expect_not(relay_check(s_key, &r, NULL), "a request without a token");
    static const unsigned char other[SEALKEY_BYTES] = "somebody else's key, 32 bytes..";
    cr_expect_not(relay_check(other, &r, "Bearer fin"), "another key");
    relay_t moved = r;
    snprintf(moved.client, sizeof moved.client, "198.51.100.7");
    cr_expect_not(relay_check(s_key, &moved, "Bearer fin"), "the seal of another address");
    char again[RELAY_SEAL_HEX + 1];
    relay_seal(s_key, r.client, "Bearer fin", again);
    cr_expect_str_eq(again, r.seal, "the same request seals the same");
}
