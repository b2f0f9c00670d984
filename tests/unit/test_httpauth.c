/* test_httpauth - basic auth of /webhooks/adyen (ingest/httpauth.c).
 *
 * The configuration gives a user and the SHA-256 of the password; a request's
 * Authorization value "Basic base64(user:password)" passes only when both
 * match. Parsing is strict (scheme, base64, the first ':' splits, bounds);
 * a password may itself hold ':' (RFC 7617 splits at the first one).
 */
#include "../../ingest/httpauth.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/sha.h>
#include <stdio.h>
#include <string.h>

/* s_sha_hex - SHA-256 of text in hex, as `printf %s TEXT | sha256sum` */
static void s_sha_hex(const char *text, char out[65])
{
    unsigned char md[32];
    SHA256((const unsigned char *) text, strlen(text), md);
    for (int i = 0; i < 32; i++)
        snprintf(out + 2 * i, 3, "%02x", md[i]);
}

/* s_basic - "Basic " + base64(userpass) */
static void s_basic(const char *userpass, char out[512])
{
    memcpy(out, "Basic ", 6);
    EVP_EncodeBlock((unsigned char *) out + 6, (const unsigned char *) userpass, (int) strlen(userpass));
}

Test(httpauth, not_configured_lets_everything_through)
{
    httpauth_t a;
    char err[256];
    cr_assert_eq(httpauth_init(&a, "", "", err, sizeof err), 0);
    cr_expect_not(a.enabled);
    cr_expect(httpauth_check(&a, NULL));
    cr_expect(httpauth_check(&a, "Basic !!!"));
}

Test(httpauth, configuration_is_checked)
{
    httpauth_t a;
    char err[256], sha[65];
    s_sha_hex("pw", sha);
    cr_expect_eq(httpauth_init(&a, "adyen", "", err, sizeof err), -1, "a user without a hash");
    cr_expect_eq(httpauth_init(&a, "", sha, err, sizeof err), -1, "a hash without a user");
    cr_expect_eq(httpauth_init(&a, "ad:yen", sha, err, sizeof err), -1, "':' ends a basic auth user");
    cr_expect_eq(httpauth_init(&a, "adyen", "pw", err, sizeof err), -1, "a password in place of its hash");
    cr_expect(strstr(err, "pw") == NULL || strstr(err, "password") != NULL, "%s", err);
    sha[10] = 'g';
    cr_expect_eq(httpauth_init(&a, "adyen", sha, err, sizeof err), -1, "not hex");
    cr_expect_not(a.enabled);
}

Test(httpauth, the_right_user_and_password_pass)
{
    httpauth_t a;
    char err[256], sha[65], h[512];
    s_sha_hex("s3cret: with colon", sha);
    cr_assert_eq(httpauth_init(&a, "adyen-ws", sha, err, sizeof err), 0, "%s", err);
    cr_assert(a.enabled);
    s_basic("adyen-ws:s3cret: with colon", h);
    cr_expect(httpauth_check(&a, h), "the first ':' splits; the password keeps its own");
    h[0] = 'b', h[1] = 'A'; /* the scheme in any case */
    cr_expect(httpauth_check(&a, h));
    s_basic("adyen-ws:s3cret: with colo", h);
    cr_expect_not(httpauth_check(&a, h), "a wrong password");
    s_basic("adyen-wz:s3cret: with colon", h);
    cr_expect_not(httpauth_check(&a, h), "a wrong user");
    s_basic("adyen-ws", h);
    cr_expect_not(httpauth_check(&a, h), "no ':'");
    cr_expect_not(httpauth_check(&a, NULL), "no header");
    cr_expect_not(httpauth_check(&a, "Bearer abc"), "another scheme");
}

Test(httpauth, parse_is_strict_and_bounded)
{
    char user[HTTPAUTH_USER_MAX + 1], pass[HTTPAUTH_PASS_MAX + 1], h[2048];
    s_basic("u:p", h);
    cr_assert_eq(httpauth_parse(h, user, pass), 0);
    cr_expect_str_eq(user, "u");
    cr_expect_str_eq(pass, "p");
    cr_expect_eq(httpauth_parse("Basic dTpwdw", user, pass), -1, "unpadded base64 (RFC 7617 pads)");
    cr_expect_eq(httpauth_parse("Basic dT=w", user, pass), -1, "'=' inside");
    cr_expect_eq(httpauth_parse("Basic d*pw", user, pass), -1, "not base64");
    cr_expect_eq(httpauth_parse("Basic ", user, pass), -1, "empty");
    char long_user[HTTPAUTH_USER_MAX + 8];
    memset(long_user, 'u', sizeof long_user - 3);
    memcpy(long_user + sizeof long_user - 3, ":p", 3);
    s_basic(long_user, h);
    cr_expect_eq(httpauth_parse(h, user, pass), -1, "a user over the bound");
}
