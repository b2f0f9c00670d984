/* test_source - source-address allowlists and X-Forwarded-For through trusted proxies.
 *
 * A netlist is parsed once from configuration ("10.0.0.0/8 2001:db8::/32,
 * 192.0.2.7") and asked about addresses. source_client_ip picks the address
 * to judge: the TCP peer, unless the peer is a trusted proxy, in which case
 * X-Forwarded-For is walked from the right past further trusted proxies.
 */
#include "../../validate/validate.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <string.h>

/* s_list - a netlist that must parse */
static netlist_t *s_list(const char *spec)
{
    char err[256] = "";
    netlist_t *n = netlist_parse(spec, err, sizeof err);
    cr_assert_not_null(n, "%s: %s", spec, err);
    return n;
}

Test(source, ipv4_cidr_boundaries)
{
    netlist_t *n = s_list("10.1.2.0/24, 192.168.0.0/15");
    cr_expect_eq(netlist_size(n), 2);
    cr_expect(netlist_contains(n, "10.1.2.0"));
    cr_expect(netlist_contains(n, "10.1.2.255"));
    cr_expect_not(netlist_contains(n, "10.1.1.255"));
    cr_expect_not(netlist_contains(n, "10.1.3.0"));
    /* a /15 spans two /16s */
    cr_expect(netlist_contains(n, "192.168.0.1"));
    cr_expect(netlist_contains(n, "192.169.255.255"));
    cr_expect_not(netlist_contains(n, "192.170.0.0"));
    cr_expect_not(netlist_contains(n, "192.167.255.255"));
    /* no IPv6 entry: no IPv6 address */
    cr_expect_not(netlist_contains(n, "::1"));
    cr_expect_not(netlist_contains(n, "not an address"));
    cr_expect_not(netlist_contains(n, ""));
    netlist_destroy(&n);
    cr_expect_null(n, "destroy NULLs the pointer");
    netlist_destroy(&n);
}

Test(source, ipv6_cidr_boundaries)
{
    netlist_t *n = s_list("2001:db8::/32 2001:db8:ffff:ff00::/57");
    cr_expect(netlist_contains(n, "2001:db8::"));
    cr_expect(netlist_contains(n, "2001:db8:ffff:ffff:ffff:ffff:ffff:ffff"));
    cr_expect_not(netlist_contains(n, "2001:db9::"));
    cr_expect_not(netlist_contains(n, "2001:db7:ffff:ffff:ffff:ffff:ffff:ffff"));
    netlist_destroy(&n);

    /* a prefix that is not a multiple of 8 */
    n = s_list("2001:db8:0:80::/57");
    cr_expect(netlist_contains(n, "2001:db8:0:80::1"));
    cr_expect(netlist_contains(n, "2001:db8:0:ff::1"));
    cr_expect_not(netlist_contains(n, "2001:db8:0:7f::1"));
    cr_expect_not(netlist_contains(n, "2001:db8:0:100::"));
    netlist_destroy(&n);
}

Test(source, slash_zero_and_bare_addresses)
{
    netlist_t *n = s_list("0.0.0.0/0");
    cr_expect(netlist_contains(n, "0.0.0.0"));
    cr_expect(netlist_contains(n, "255.255.255.255"));
    cr_expect_not(netlist_contains(n, "::1"), "the IPv4 /0 holds no IPv6 address");
    cr_expect(netlist_contains(n, "::ffff:8.8.8.8"), "but it holds IPv4-mapped ones");
    netlist_destroy(&n);

    n = s_list("::/0");
    cr_expect(netlist_contains(n, "::"));
    cr_expect(netlist_contains(n, "ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff"));
    cr_expect_not(netlist_contains(n, "8.8.8.8"));
    netlist_destroy(&n);

    /* bare addresses are /32 and /128 */
    n = s_list("192.0.2.7\n::1");
    cr_expect(netlist_contains(n, "192.0.2.7"));
    cr_expect_not(netlist_contains(n, "192.0.2.6"));
    cr_expect_not(netlist_contains(n, "192.0.2.8"));
    cr_expect(netlist_contains(n, "::1"));
    cr_expect(netlist_contains(n, "0:0:0:0:0:0:0:1"), "any spelling of the same address");
    cr_expect_not(netlist_contains(n, "::2"));
    netlist_destroy(&n);

    n = s_list("");
    cr_expect_eq(netlist_size(n), 0);
    cr_expect_not(netlist_contains(n, "127.0.0.1"), "the empty list holds nothing");
    netlist_destroy(&n);
    n = s_list(" , \t ");
    cr_expect_eq(netlist_size(n), 0);
    netlist_destroy(&n);
}

Test(source, ipv4_mapped_ipv6_matches_ipv4_entries)
{
    netlist_t *n = s_list("127.0.0.0/8");
    cr_expect(netlist_contains(n, "::ffff:127.0.0.1"), "a dual-stack listener's view of 127.0.0.1");
    cr_expect(netlist_contains(n, "::ffff:7f00:2"));
    cr_expect_not(netlist_contains(n, "::ffff:128.0.0.1"));
    cr_expect_not(netlist_contains(n, "::127.0.0.1"), "IPv4-compatible (deprecated) is not mapped");
    netlist_destroy(&n);

    /* and a mapped entry is the IPv4 range it names */
    n = s_list("::ffff:10.0.0.0/104");
    cr_expect(netlist_contains(n, "10.255.0.1"));
    cr_expect(netlist_contains(n, "::ffff:10.0.0.1"));
    cr_expect_not(netlist_contains(n, "11.0.0.1"));
    netlist_destroy(&n);
}

Test(source, bad_entries_are_named)
{
    struct {
        const char *spec;
        const char *err;
    } bad[] = {
        {"10.0.0.0/8 10.0.0.300", "netlist: bad entry \"10.0.0.300\": not an IPv4 or IPv6 address"},
        {"10.0.0.0/33", "netlist: bad entry \"10.0.0.0/33\": prefix length must be 0..32"},
        {"2001:db8::/129", "netlist: bad entry \"2001:db8::/129\": prefix length must be 0..128"},
        {"10.0.0.0/", "netlist: bad entry \"10.0.0.0/\": prefix length must be 0..32"},
        {"10.0.0.0/-1", "netlist: bad entry \"10.0.0.0/-1\": prefix length must be 0..32"},
        {"10.0.0.0/8/8", "netlist: bad entry \"10.0.0.0/8/8\": prefix length must be 0..32"},
        {"10.0.0.1/8", "netlist: bad entry \"10.0.0.1/8\": host bits set beyond /8"},
        {"2001:db8::1/32", "netlist: bad entry \"2001:db8::1/32\": host bits set beyond /32"},
        {"localhost", "netlist: bad entry \"localhost\": not an IPv4 or IPv6 address"},
        {"/8", "netlist: bad entry \"/8\": not an IPv4 or IPv6 address"},
        {"[::1]", "netlist: bad entry \"[::1]\": not an IPv4 or IPv6 address"},
        {"10.0.0.0/8;rm", "netlist: bad entry \"10.0.0.0/8;rm\": prefix length must be 0..32"},
    };
    char err[256];
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        err[0] = '\0';
        netlist_t *n = netlist_parse(bad[i].spec, err, sizeof err);
        cr_expect_null(n, "%s", bad[i].spec);
        cr_expect_str_eq(err, bad[i].err);
    }
    /* at most 64 entries */
    char spec[2048] = "";
    for (int i = 0; i < 65; i++)
        snprintf(spec + strlen(spec), sizeof spec - strlen(spec), "10.0.%d.0/24 ", i);
    cr_expect_null(netlist_parse(spec, err, sizeof err));
    cr_expect_str_eq(err, "netlist: more than 64 entries");
    spec[strlen(spec) - strlen("10.0.64.0/24 ")] = '\0';
    netlist_t *n = s_list(spec);
    cr_expect_eq(netlist_size(n), 64);
    netlist_destroy(&n);
}

Test(source, xff_from_an_untrusted_peer_is_ignored_and_flagged)
{
    netlist_t *trusted = s_list("10.0.0.0/8");
    char out[64], reason[256];
    bool spoofed = false;
    cr_expect_eq(source_client_ip(trusted, "203.0.113.9", "127.0.0.1", out, &spoofed, reason, sizeof reason), 0);
    cr_expect_str_eq(out, "203.0.113.9", "the peer, whatever the header claims");
    cr_expect(spoofed);
    cr_expect_str_eq(reason, "source: client 203.0.113.9 (direct; X-Forwarded-For from an untrusted peer ignored)");

    /* no header: not spoofed; garbage in it from an untrusted peer is not an error either */
    cr_expect_eq(source_client_ip(trusted, "203.0.113.9", NULL, out, &spoofed, reason, sizeof reason), 0);
    cr_expect_not(spoofed);
    cr_expect_str_eq(reason, "source: client 203.0.113.9 (direct)");
    cr_expect_eq(source_client_ip(trusted, "203.0.113.9", " ", out, &spoofed, NULL, 0), 0);
    cr_expect_not(spoofed, "an empty header is no header");
    cr_expect_eq(source_client_ip(trusted, "203.0.113.9", "%%garbage%%", out, &spoofed, NULL, 0), 0);
    cr_expect(spoofed);

    /* with no trusted proxy at all, nobody's header is believed */
    netlist_t *none = s_list("");
    cr_expect_eq(source_client_ip(none, "10.0.0.1", "1.2.3.4", out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "10.0.0.1");
    cr_expect(spoofed);
    cr_expect_eq(source_client_ip(NULL, "10.0.0.1", "1.2.3.4", out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "10.0.0.1");

    /* the peer is written canonically, a mapped peer as IPv4 */
    cr_expect_eq(source_client_ip(none, "::ffff:192.0.2.1", NULL, out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "192.0.2.1");
    cr_expect_eq(source_client_ip(none, "2001:DB8:0:0::1", NULL, out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "2001:db8::1");

    cr_expect_eq(source_client_ip(none, "nonsense", NULL, out, &spoofed, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "source: peer \"nonsense\" is not an address");
    netlist_destroy(&trusted);
    netlist_destroy(&none);
}

Test(source, trusted_chain_is_walked_from_the_right)
{
    netlist_t *trusted = s_list("10.0.0.0/8 fd00::/8");
    char out[64], reason[256];
    bool spoofed = true;

    /* client, a spoofed entry the client wrote, then two of our proxies */
    const char *xff = "198.51.100.1, 6.6.6.6 ,203.0.113.50, 10.0.0.7";
    cr_expect_eq(source_client_ip(trusted, "10.0.0.2", xff, out, &spoofed, reason, sizeof reason), 0, "%s", reason);
    cr_expect_str_eq(out, "203.0.113.50", "the first untrusted address from the right");
    cr_expect_not(spoofed);
    cr_expect_str_eq(reason, "source: client 203.0.113.50 (X-Forwarded-For, 2 trusted hops)");

    /* ports and brackets, as some proxies write them */
    cr_expect_eq(source_client_ip(trusted, "10.0.0.2", "[2001:db8::5]:443", out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "2001:db8::5");
    cr_expect_eq(source_client_ip(trusted, "10.0.0.2", "1.2.3.4:80", out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "1.2.3.4");
    cr_expect_eq(source_client_ip(trusted, "10.0.0.2", "[2001:db8::6], [fd00::1]:8080", out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "2001:db8::6");
    cr_expect_eq(source_client_ip(trusted, "[fd00::2]:1234", "::ffff:1.2.3.5", out, &spoofed, reason, sizeof reason),
                 0);
    cr_expect_str_eq(out, "1.2.3.5");
    cr_expect_str_eq(reason, "source: client 1.2.3.5 (X-Forwarded-For, 1 trusted hop)");

    /* a trusted peer without a header is itself the client */
    cr_expect_eq(source_client_ip(trusted, "10.0.0.2", NULL, out, &spoofed, reason, sizeof reason), 0);
    cr_expect_str_eq(out, "10.0.0.2");
    cr_expect_str_eq(reason, "source: client 10.0.0.2 (trusted proxy, no X-Forwarded-For)");
    netlist_destroy(&trusted);
}

Test(source, an_all_trusted_chain_gives_the_leftmost_address)
{
    netlist_t *trusted = s_list("10.0.0.0/8");
    char out[64], reason[256];
    bool spoofed;
    cr_expect_eq(
        source_client_ip(trusted, "10.0.0.1", "10.9.9.9, 10.0.0.5,10.0.0.6", out, &spoofed, reason, sizeof reason), 0);
    cr_expect_str_eq(out, "10.9.9.9");
    cr_expect_str_eq(reason, "source: client 10.9.9.9 (every X-Forwarded-For entry is a trusted proxy)");

    /* at most 32 trusted hops are walked */
    char xff[1024] = "";
    for (int i = 0; i < 33; i++)
        snprintf(xff + strlen(xff), sizeof xff - strlen(xff), "%s10.0.0.%d", i ? "," : "", i);
    cr_expect_eq(source_client_ip(trusted, "10.0.0.1", xff, out, &spoofed, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "source: X-Forwarded-For has more than 32 trusted hops");
    cr_expect_str_eq(out, "");
    /* but a long header is fine when the client is found within 32 hops */
    char long_xff[1100];
    snprintf(long_xff, sizeof long_xff, "1.1.1.1,%s,%s", xff, "203.0.113.1");
    cr_expect_eq(source_client_ip(trusted, "10.0.0.1", long_xff, out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "203.0.113.1");
    netlist_destroy(&trusted);
}

Test(source, garbage_from_a_trusted_proxy_is_an_error_but_not_left_of_the_client)
{
    netlist_t *trusted = s_list("10.0.0.0/8");
    char out[64], reason[256];
    bool spoofed;
    struct {
        const char *xff;
        const char *reason;
    } bad[] = {
        {"unknown", "source: X-Forwarded-For entry 1 from the right is not an address: \"unknown\""},
        {"1.2.3.4, 10.0.0.3, ", "source: X-Forwarded-For entry 1 from the right is not an address: \"\""},
        {"1.2.3.4,,10.0.0.3", "source: X-Forwarded-For entry 2 from the right is not an address: \"\""},
        {"1.2.3.4:99999", "source: X-Forwarded-For entry 1 from the right is not an address: \"1.2.3.4:99999\""},
        {"1.2.3.4:", "source: X-Forwarded-For entry 1 from the right is not an address: \"1.2.3.4:\""},
        {"[1.2.3.4]:80", "source: X-Forwarded-For entry 1 from the right is not an address: \"[1.2.3.4]:80\""},
        {"[::1", "source: X-Forwarded-For entry 1 from the right is not an address: \"[::1\""},
        {"::1:80x", "source: X-Forwarded-For entry 1 from the right is not an address: \"::1:80x\""},
        {"1.2.3.4\x01", "source: X-Forwarded-For entry 1 from the right is not an address: \"1.2.3.4?\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        reason[0] = '\0';
        cr_expect_eq(source_client_ip(trusted, "10.0.0.1", bad[i].xff, out, &spoofed, reason, sizeof reason), -1, "%s",
                     bad[i].xff);
        cr_expect_str_eq(reason, bad[i].reason);
        cr_expect_str_eq(out, "");
    }
    /* what the client wrote left of itself is never parsed */
    cr_expect_eq(source_client_ip(trusted, "10.0.0.1", "<script>, ,1.2.3.4, 10.0.0.9", out, &spoofed, NULL, 0), 0);
    cr_expect_str_eq(out, "1.2.3.4");
    netlist_destroy(&trusted);
}
