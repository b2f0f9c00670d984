/* test_bearer - a Bearer token known by its SHA-256 (ingest's POST
 * /fetched/stripe, /metrics): only the hash is configured, the header is
 * checked in constant time, "" turns it off, messages name the setting */
#include <criterion/criterion.h>
#include <string.h>

#include "bearer.h"

/* SHA-256 of "pg_fetch_demo_4b1e7c2a9f0d63e8" (config/sandbox/fetch.token) */
#define DEMO_SHA "acf8cb4f9ff3b96ba257263cb7e74b548b2f9a592bdb8873e00bb05852ecff9e"

Test(bearer, checks_the_token_against_its_hash)
{
    bearer_t b;
    char err[256], why[200];
    cr_assert_eq(bearer_parse("ingest/fetch_token_sha256", DEMO_SHA, &b, err, sizeof err), 0, "%s", err);
    cr_assert(b.enabled);
    cr_assert_eq(bearer_check(&b, "Bearer pg_fetch_demo_4b1e7c2a9f0d63e8", why, sizeof why), 0);
    cr_assert_eq(bearer_check(&b, "bearer pg_fetch_demo_4b1e7c2a9f0d63e8", why, sizeof why), 0,
                 "the scheme is case-insensitive");
    cr_assert_eq(bearer_check(&b, "Bearer pg_fetch_demo_4b1e7c2a9f0d63e9", why, sizeof why), -1);
    cr_assert(strstr(why, "does not match ingest/fetch_token_sha256"), "%s", why);
    cr_assert_eq(bearer_check(&b, NULL, why, sizeof why), -1);
    cr_assert(strstr(why, "no Bearer token"));
    cr_assert_eq(bearer_check(&b, "Basic dXNlcjpwYXNz", why, sizeof why), -1);
    cr_assert_eq(bearer_check(&b, "Bearer ", why, sizeof why), -1);
    char huge[BEARER_TOKEN_MAX + 16] = "Bearer ";
    memset(huge + 7, 'a', sizeof huge - 8);
    huge[sizeof huge - 1] = '\0';
    cr_assert_eq(bearer_check(&b, huge, why, sizeof why), -1);
    cr_assert(strstr(why, "too long"));
    cr_assert(bearer_is_demo(DEMO_SHA));
}

Test(bearer, empty_is_off_and_bad_hashes_are_refused)
{
    bearer_t b;
    char err[256], why[200];
    cr_assert_eq(bearer_parse("payguard/metrics_token_sha256", "", &b, err, sizeof err), 0);
    cr_assert_not(b.enabled);
    cr_assert_eq(bearer_check(&b, "Bearer pg_fetch_demo_4b1e7c2a9f0d63e8", why, sizeof why), -1, "off: nothing passes");
    cr_assert(strstr(why, "off (payguard/metrics_token_sha256 is empty)"), "%s", why);
    cr_assert_eq(bearer_parse("payguard/metrics_token_sha256", "abc", &b, err, sizeof err), -1);
    cr_assert(strstr(err, "payguard/metrics_token_sha256: 64 hex digits"), "%s", err);
    char bad[65];
    memcpy(bad, DEMO_SHA, 65);
    bad[10] = 'g';
    cr_assert_eq(bearer_parse("ingest/fetch_token_sha256", bad, &b, err, sizeof err), -1);
    cr_assert(strstr(err, "not hex at character 11"), "%s", err);
    cr_assert_not(bearer_is_demo(bad));
}
