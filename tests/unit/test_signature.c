/* test_signature - webhook signatures: Stripe and Standard Webhooks, rotation, tolerance.
 *
 * The usual shape: load a provider's secrets (a file and/or an environment
 * variable), then ask sig_verify_* about one delivery's headers and raw
 * body at a given "now". The verdict decides; the reason is a one-line
 * explanation for the audit trail that never contains a secret.
 *
 * Expected signatures are computed here with OpenSSL's HMAC() directly, not
 * with sig_sign_*, so a bug shared by signing and verifying cannot hide.
 */
#include "../../validate/validate.h"

#include <criterion/criterion.h>
#include <fcntl.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define NOW INT64_C(1700000000)
#define TOL 300
static const char BODY[] = "{\"id\":\"evt_1\",\"type\":\"payout.failed\"}";

static char s_paths[32][64]; /* this test's temporary files */
static size_t s_npaths;

/* s_cleanup - remove the test's temporary files (each Criterion test runs
 * in its own process, so the list is per test) */
static void s_cleanup(void)
{
    for (size_t i = 0; i < s_npaths; i++)
        unlink(s_paths[i]);
    s_npaths = 0;
}

TestSuite(signature, .fini = s_cleanup);

/* s_file - a fresh temporary file holding text, removed after the test */
static const char *s_file(const char *text)
{
    cr_assert_lt(s_npaths, sizeof s_paths / sizeof s_paths[0]);
    char *path = s_paths[s_npaths++];
    snprintf(path, sizeof s_paths[0], "/tmp/pg-sig-XXXXXX");
    int fd = mkstemp(path);
    cr_assert_geq(fd, 0);
    cr_assert_eq(write(fd, text, strlen(text)), (ssize_t) strlen(text));
    close(fd);
    return path;
}

/* s_rewrite - replace a file's content in place, as an operator's editor would */
static void s_rewrite(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    cr_assert_not_null(f);
    fputs(text, f);
    fclose(f);
}

/* s_hex_hmac - hex(HMAC-SHA256(key, "<t>.<body>")), independently of signature.c */
static void s_hex_hmac(const char *key, int64_t t, const char *body, char out[65])
{
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%lld.%s", (long long) t, body);
    unsigned char mac[32];
    unsigned int len = 0;
    cr_assert_not_null(HMAC(EVP_sha256(), key, (int) strlen(key), (unsigned char *) msg, (size_t) n, mac, &len));
    cr_assert_eq(len, 32);
    for (int i = 0; i < 32; i++)
        sprintf(out + 2 * i, "%02x", mac[i]);
}

/* s_stripe_header - "t=<t>,v1=<hex>" signed with key */
static const char *s_stripe_header(const char *key, int64_t t, const char *body)
{
    static char header[128];
    char hex[65];
    s_hex_hmac(key, t, body, hex);
    snprintf(header, sizeof header, "t=%lld,v1=%s", (long long) t, hex);
    return header;
}

/* s_b64_hmac - base64(HMAC-SHA256(raw key, "<id>.<ts>.<body>")) */
static void s_b64_hmac(const unsigned char *key, int keylen, const char *id, const char *ts, const char *body,
                       char out[64])
{
    char msg[4096];
    int n = snprintf(msg, sizeof msg, "%s.%s.%s", id, ts, body);
    unsigned char mac[32];
    unsigned int len = 0;
    cr_assert_not_null(HMAC(EVP_sha256(), key, keylen, (unsigned char *) msg, (size_t) n, mac, &len));
    EVP_EncodeBlock((unsigned char *) out, mac, 32);
}

/* ------------------------------------------------------------- signing */

Test(signature, sign_stripe_is_hex_hmac_of_t_dot_body)
{
    char hex[65];
    sig_sign_stripe("whsec_test_secret", NOW, "{\"id\":\"evt_1\"}", 14, hex);
    /* computed once with Python's hmac module, a third implementation */
    cr_expect_str_eq(hex, "248a374f50f943a28b0f6ab50faf9a7e7e29b710fa26df9fb1618b9bf8ea9c9a");
    char expect[65];
    s_hex_hmac("whsec_test_secret", NOW, "{\"id\":\"evt_1\"}", expect);
    cr_expect_str_eq(hex, expect);
}

Test(signature, sign_standard_matches_the_standard_webhooks_reference_vector)
{
    /* the test vector of the Standard Webhooks reference libraries */
    char b64[64];
    cr_assert_eq(sig_sign_standard("whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "msg_p5jXN8AQM9LWM0D4loKWxJek",
                                   "1614265330", "{\"test\": 2432232314}", 20, b64),
                 0);
    cr_expect_str_eq(b64, "g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=");
    cr_expect_eq(sig_sign_standard("MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", "m", "1", "{}", 2, b64), -1,
                 "not whsec_: refused");
    cr_expect_eq(sig_sign_standard("whsec_***", "m", "1", "{}", 2, b64), -1, "bad base64: refused");
}

/* -------------------------------------------------------------- stripe */

Test(signature, stripe_good_signature_verifies)
{
    char err[256], reason[256];
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, s_file("# live secret\nwhsec_alpha\n"), NULL, err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    cr_expect_eq(sigkeys_live(keys, NOW), 1);

    const char *h = s_stripe_header("whsec_alpha", NOW, BODY);
    cr_expect_eq(sig_verify_stripe(keys, h, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_OK, "%s", reason);
    cr_expect_str_eq(reason, "stripe signature: v1 #1 of 1 matches secret #1");

    /* one changed byte of the body: no match */
    char tampered[sizeof BODY];
    memcpy(tampered, BODY, sizeof BODY);
    tampered[8] = 'X';
    cr_expect_eq(sig_verify_stripe(keys, h, tampered, strlen(tampered), NOW, TOL, reason, sizeof reason), SIG_MISMATCH);
    cr_expect_str_eq(reason, "stripe signature: no v1 signature matches any of 1 live secret");
    /* the body is bytes, not a C string: its length counts */
    cr_expect_eq(sig_verify_stripe(keys, h, BODY, strlen(BODY) - 1, NOW, TOL, NULL, 0), SIG_MISMATCH);

    sigkeys_destroy(&keys);
    cr_expect_null(keys, "destroy NULLs the pointer");
    sigkeys_destroy(&keys);
}

Test(signature, stripe_any_v1_may_match_and_other_schemes_are_ignored)
{
    char reason[256], hex[65], header[512];
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, s_file("whsec_alpha\n"), NULL, NULL, 0);
    cr_assert_not_null(keys);
    s_hex_hmac("whsec_alpha", NOW, BODY, hex);

    /* a wrong v1 first, the right one second, a v0 (Stripe's test scheme) between */
    snprintf(header, sizeof header, "t=%lld,v1=%064d,v0=%s,v1=%s", (long long) NOW, 0, "deadbeef", hex);
    cr_expect_eq(sig_verify_stripe(keys, header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_OK, "%s",
                 reason);
    cr_expect_str_eq(reason, "stripe signature: v1 #2 of 2 matches secret #1");

    /* hex is compared as bytes: upper case is the same signature */
    for (char *p = hex; *p; p++)
        if (*p >= 'a' && *p <= 'f')
            *p = (char) (*p - 'a' + 'A');
    snprintf(header, sizeof header, "t=%lld, v1=%s", (long long) NOW, hex);
    cr_expect_eq(sig_verify_stripe(keys, header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_OK, "%s",
                 reason);
    sigkeys_destroy(&keys);
}

Test(signature, stripe_two_live_secrets_both_verify_during_rotation)
{
    char err[256], reason[256];
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, s_file("whsec_old\nwhsec_new\n"), NULL, err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    cr_expect_eq(sigkeys_live(keys, NOW), 2);
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_old", NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                   sizeof reason),
                 SIG_OK);
    cr_expect_str_eq(reason, "stripe signature: v1 #1 of 1 matches secret #1");
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_new", NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                   sizeof reason),
                 SIG_OK);
    cr_expect_str_eq(reason, "stripe signature: v1 #1 of 1 matches secret #2");
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_other", NOW, BODY), BODY, strlen(BODY), NOW, TOL,
                                   reason, sizeof reason),
                 SIG_MISMATCH);
    cr_expect_str_eq(reason, "stripe signature: no v1 signature matches any of 2 live secrets");
    sigkeys_destroy(&keys);
}

Test(signature, an_expired_secret_does_not_verify)
{
    char err[256], reason[256];
    /* the old secret expires at NOW: it verifies up to the second before */
    char text[128];
    snprintf(text, sizeof text, "whsec_old expires=%lld\n\n  whsec_new   \n", (long long) NOW);
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, s_file(text), NULL, err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    cr_expect_eq(sigkeys_live(keys, NOW - 1), 2);
    cr_expect_eq(sigkeys_live(keys, NOW), 1);

    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_old", NOW - 1, BODY), BODY, strlen(BODY), NOW - 1, TOL,
                                   reason, sizeof reason),
                 SIG_OK);
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_old", NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                   sizeof reason),
                 SIG_MISMATCH);
    cr_expect_str_eq(reason, "stripe signature: no v1 signature matches any of 1 live secret");
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_new", NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                   sizeof reason),
                 SIG_OK);
    sigkeys_destroy(&keys);
}

Test(signature, reload_after_rewriting_the_file_retires_a_secret)
{
    char err[256], reason[256];
    const char *path = s_file("whsec_old\nwhsec_new\n");
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, path, NULL, err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    cr_expect_eq(sigkeys_reload(keys, err, sizeof err), 0, "unchanged file: nothing to do");

    s_rewrite(path, "whsec_new\n");
    cr_expect_eq(sigkeys_reload(keys, err, sizeof err), 1, "%s", err);
    cr_expect_eq(sigkeys_live(keys, NOW), 1);
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_old", NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                   sizeof reason),
                 SIG_MISMATCH, "the retired secret no longer verifies");
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_new", NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                   sizeof reason),
                 SIG_OK);
    cr_expect_eq(sigkeys_reload(keys, err, sizeof err), 0);

    /* same size, new content: the mtime (to the nanosecond) gives it away */
    s_rewrite(path, "whsec_nex\n");
    struct timespec times[2] = {{.tv_sec = 1, .tv_nsec = 0}, {.tv_sec = 1234567890, .tv_nsec = 123}};
    cr_assert_eq(utimensat(AT_FDCWD, path, times, 0), 0);
    cr_expect_eq(sigkeys_reload(keys, err, sizeof err), 1, "%s", err);
    cr_expect_eq(sig_verify_stripe(keys, s_stripe_header("whsec_nex", NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                   sizeof reason),
                 SIG_OK);
    sigkeys_destroy(&keys);
}

Test(signature, a_failed_reload_keeps_the_old_secrets)
{
    char err[256], reason[256];
    const char *path = s_file("whsec_S3cretKeyAAA\n");
    sigkeys_t *keys = sigkeys_load(SIG_STANDARD, path, NULL, err, sizeof err);
    cr_assert_not_null(keys, "%s", err);

    s_rewrite(path, "whsec_S3cretKeyAAA\nwhsec_!!notbase64!!\n");
    cr_expect_eq(sigkeys_reload(keys, err, sizeof err), -1);
    cr_expect(strstr(err, "line 2") != NULL, "%s", err);
    cr_expect(strstr(err, "notbase64") == NULL, "err never quotes a secret: %s", err);
    cr_expect_eq(sigkeys_live(keys, NOW), 1, "old set kept");

    unlink(path);
    cr_expect_eq(sigkeys_reload(keys, err, sizeof err), -1);
    cr_expect(strstr(err, "old secrets kept") != NULL, "%s", err);

    char sig[64], ts[16], header[80];
    snprintf(ts, sizeof ts, "%lld", (long long) NOW);
    cr_assert_eq(sig_sign_standard("whsec_S3cretKeyAAA", "msg_1", ts, BODY, strlen(BODY), sig), 0);
    snprintf(header, sizeof header, "v1,%s", sig);
    cr_expect_eq(sig_verify_standard(keys, "msg_1", ts, header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
                 SIG_OK, "%s", reason);
    sigkeys_destroy(&keys);
}

Test(signature, tolerance_is_inclusive_on_both_sides)
{
    char reason[256];
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, s_file("whsec_alpha\n"), NULL, NULL, 0);
    cr_assert_not_null(keys);
    struct {
        int64_t t;
        sig_verdict_t v;
        const char *reason;
    } cases[] = {
        {NOW - TOL, SIG_OK, NULL},
        {NOW + TOL, SIG_OK, NULL},
        {NOW - TOL - 1, SIG_STALE, "stripe signature: timestamp 1699999699 is 301 s old (tolerance 300 s)"},
        {NOW + TOL + 1, SIG_FUTURE, "stripe signature: timestamp 1700000301 is 301 s in the future (tolerance 300 s)"},
        {NOW - 412, SIG_STALE, "stripe signature: timestamp 1699999588 is 412 s old (tolerance 300 s)"},
        {0, SIG_STALE, "stripe signature: timestamp 0 is 1700000000 s old (tolerance 300 s)"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        const char *h = s_stripe_header("whsec_alpha", cases[i].t, BODY);
        cr_expect_eq(sig_verify_stripe(keys, h, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), cases[i].v,
                     "t=%lld: %s", (long long) cases[i].t, reason);
        if (cases[i].reason)
            cr_expect_str_eq(reason, cases[i].reason);
    }
    /* tolerance 0: only the exact second */
    cr_expect_eq(
        sig_verify_stripe(keys, s_stripe_header("whsec_alpha", NOW, BODY), BODY, strlen(BODY), NOW, 0, NULL, 0),
        SIG_OK);
    cr_expect_eq(
        sig_verify_stripe(keys, s_stripe_header("whsec_alpha", NOW, BODY), BODY, strlen(BODY), NOW + 1, 0, NULL, 0),
        SIG_STALE);
    sigkeys_destroy(&keys);
}

Test(signature, stripe_malformed_and_missing_headers)
{
    char reason[256], good[65];
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, s_file("whsec_alpha\n"), NULL, NULL, 0);
    cr_assert_not_null(keys);
    s_hex_hmac("whsec_alpha", NOW, BODY, good);
    char h_no_t[100], h_bad_t[100], h_neg_t[100], h_two_t[120], h_empty_el[120], h_bad_hex[100], h_short[100],
        h_noeq[100], h_trailing[100];
    snprintf(h_no_t, sizeof h_no_t, "v1=%s", good);
    snprintf(h_bad_t, sizeof h_bad_t, "t=17000abc,v1=%s", good);
    snprintf(h_neg_t, sizeof h_neg_t, "t=-1700000000,v1=%s", good);
    snprintf(h_two_t, sizeof h_two_t, "t=1700000000,t=1700000001,v1=%s", good);
    snprintf(h_empty_el, sizeof h_empty_el, "t=1700000000,,v1=%s", good);
    snprintf(h_bad_hex, sizeof h_bad_hex, "t=1700000000,v1=%.63sg", good);
    snprintf(h_short, sizeof h_short, "t=1700000000,v1=%.62s", good);
    snprintf(h_noeq, sizeof h_noeq, "t=1700000000,v1%s", good);
    snprintf(h_trailing, sizeof h_trailing, "t=1700000000,v1=%s,", good);
    char *h_long = malloc(5000);
    cr_assert_not_null(h_long);
    int n = snprintf(h_long, 5000, "t=1700000000,v1=%s", good);
    memset(h_long + n, 'x', 5000 - (size_t) n - 1);
    memcpy(h_long + n, ",v0=", 4);
    h_long[4999] = '\0';

    struct {
        const char *header;
        sig_verdict_t v;
        const char *reason;
    } cases[] = {
        {NULL, SIG_MISSING, "stripe signature: missing Stripe-Signature header"},
        {"", SIG_MISSING, "stripe signature: missing Stripe-Signature header"},
        {h_no_t, SIG_MALFORMED, "stripe signature: no t= timestamp"},
        {h_bad_t, SIG_MALFORMED, "stripe signature: t is not a decimal unix time"},
        {"t=,v1=00", SIG_MALFORMED, "stripe signature: t is not a decimal unix time"},
        {h_neg_t, SIG_MALFORMED, "stripe signature: t is not a decimal unix time"},
        {"t=99999999999999999999,v1=00", SIG_MALFORMED, "stripe signature: t is not a decimal unix time"},
        {h_two_t, SIG_MALFORMED, "stripe signature: two different t= values"},
        {"t=1700000000", SIG_MALFORMED, "stripe signature: no v1 signature"},
        {"t=1700000000,v0=abc", SIG_MALFORMED, "stripe signature: no v1 signature"},
        {h_empty_el, SIG_MALFORMED, "stripe signature: element 2 is not key=value"},
        {h_trailing, SIG_MALFORMED, "stripe signature: element 3 is not key=value"},
        {h_noeq, SIG_MALFORMED, "stripe signature: element 2 is not key=value"},
        {"garbage", SIG_MALFORMED, "stripe signature: element 1 is not key=value"},
        {h_bad_hex, SIG_MALFORMED, "stripe signature: v1 #1 is not 64 hex digits"},
        {h_short, SIG_MALFORMED, "stripe signature: v1 #1 is not 64 hex digits"},
        {h_long, SIG_MALFORMED, "stripe signature: header longer than 4096 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reason[0] = '\0';
        cr_expect_eq(sig_verify_stripe(keys, cases[i].header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
                     cases[i].v, "case %zu: %s", i, reason);
        cr_expect_str_eq(reason, cases[i].reason, "case %zu", i);
    }
    free(h_long);
    sigkeys_destroy(&keys);
}

Test(signature, stripe_header_sent_twice_arrives_merged_and_verifies)
{
    char err[256], reason[256], header[512], bad[65], good[65];
    setenv("PG_TEST_STRIPE_SECRETS", "whsec_alpha", 1);
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, NULL, "PG_TEST_STRIPE_SECRETS", err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    s_hex_hmac("whsec_other", NOW, BODY, bad);
    s_hex_hmac("whsec_alpha", NOW, BODY, good);
    /* two Stripe-Signature fields, merged by ingest as RFC 9110 §5.3 says */
    snprintf(header, sizeof header, "t=%lld,v1=%s, t=%lld,v1=%s", (long long) NOW, bad, (long long) NOW, good);
    cr_expect_eq(sig_verify_stripe(keys, header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_OK, "%s",
                 reason);
    cr_expect_str_eq(reason, "stripe signature: v1 #2 of 2 matches secret #1");
    /* two fields with different timestamps: which one was signed is unknowable */
    snprintf(header, sizeof header, "t=%lld,v1=%s, t=%lld,v1=%s", (long long) NOW - 1, bad, (long long) NOW, good);
    cr_expect_eq(sig_verify_stripe(keys, header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_MALFORMED);
    cr_expect_str_eq(reason, "stripe signature: two different t= values");
    sigkeys_destroy(&keys);
}

/* ------------------------------------------------------------ standard */

Test(signature, standard_header_sent_twice_arrives_merged_and_verifies)
{
    char err[256], reason[256], sig[64], header[256];
    setenv("PG_TEST_STD_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    sigkeys_t *keys = sigkeys_load(SIG_STANDARD, NULL, "PG_TEST_STD_SECRETS", err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    unsigned char key[32];
    int klen = EVP_DecodeBlock(key, (const unsigned char *) "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32);
    s_b64_hmac(key, klen, "msg_2", "1700000000", BODY, sig);
    /* "v1,<stale>" and "v1,<good>" sent as two webhook-signature fields */
    snprintf(header, sizeof header, "v1,%s, v1,%s", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", sig);
    cr_expect_eq(
        sig_verify_standard(keys, "msg_2", "1700000000", header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
        SIG_OK, "%s", reason);
    cr_expect_str_eq(reason, "standard signature: v1 #2 of 2 matches secret #1");
    /* the good one first: its trailing join comma is not part of the signature */
    snprintf(header, sizeof header, "v1,%s, v1,%s", sig, "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=");
    cr_expect_eq(
        sig_verify_standard(keys, "msg_2", "1700000000", header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
        SIG_OK, "%s", reason);
    cr_expect_str_eq(reason, "standard signature: v1 #1 of 2 matches secret #1");
    sigkeys_destroy(&keys);
}

Test(signature, standard_good_signature_verifies)
{
    char err[256], reason[256], sig[64], header[256];
    setenv("PG_TEST_STD_SECRETS", "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 1);
    sigkeys_t *keys = sigkeys_load(SIG_STANDARD, NULL, "PG_TEST_STD_SECRETS", err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    const char *body = "{\"test\": 2432232314}";
    cr_expect_eq(sig_verify_standard(keys, "msg_p5jXN8AQM9LWM0D4loKWxJek", "1614265330",
                                     "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE=", body, strlen(body), 1614265330,
                                     TOL, reason, sizeof reason),
                 SIG_OK, "%s", reason);
    cr_expect_str_eq(reason, "standard signature: v1 #1 of 1 matches secret #1");

    /* the key is the decoded bytes after whsec_, checked independently */
    unsigned char key[32];
    int klen = EVP_DecodeBlock(key, (const unsigned char *) "MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw", 32);
    cr_assert_eq(klen, 24);
    s_b64_hmac(key, klen, "msg_2", "1700000000", BODY, sig);
    /* an asymmetric v1a entry and a stale v1 before the right one, extra spaces */
    snprintf(header, sizeof header, "v1a,AAAA  v1,%s v1,%s ", "AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=", sig);
    cr_expect_eq(
        sig_verify_standard(keys, "msg_2", "1700000000", header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
        SIG_OK, "%s", reason);
    cr_expect_str_eq(reason, "standard signature: v1 #2 of 2 matches secret #1");

    /* the id is signed: another id with the same signature fails */
    snprintf(header, sizeof header, "v1,%s", sig);
    cr_expect_eq(
        sig_verify_standard(keys, "msg_3", "1700000000", header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
        SIG_MISMATCH);
    cr_expect_str_eq(reason, "standard signature: no v1 signature matches any of 1 live secret");
    sigkeys_destroy(&keys);
}

Test(signature, standard_tolerance)
{
    char reason[256], sig[64], header[128], ts[32];
    const char *secret = "whsec_ZGVtby1zdGFuZGFyZC13ZWJob29rLWtleQ==";
    sigkeys_t *keys =
        sigkeys_load(SIG_STANDARD, s_file("# demo\nwhsec_ZGVtby1zdGFuZGFyZC13ZWJob29rLWtleQ==\n"), NULL, NULL, 0);
    cr_assert_not_null(keys);
    int64_t ts_values[] = {NOW - TOL, NOW + TOL, NOW - TOL - 1, NOW + TOL + 1};
    sig_verdict_t expect[] = {SIG_OK, SIG_OK, SIG_STALE, SIG_FUTURE};
    for (int i = 0; i < 4; i++) {
        snprintf(ts, sizeof ts, "%lld", (long long) ts_values[i]);
        cr_assert_eq(sig_sign_standard(secret, "msg_t", ts, BODY, strlen(BODY), sig), 0);
        snprintf(header, sizeof header, "v1,%s", sig);
        cr_expect_eq(
            sig_verify_standard(keys, "msg_t", ts, header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
            expect[i], "%s: %s", ts, reason);
    }
    cr_expect_str_eq(reason, "standard signature: timestamp 1700000301 is 301 s in the future (tolerance 300 s)");
    sigkeys_destroy(&keys);
}

Test(signature, standard_missing_and_malformed_headers)
{
    char reason[256], sig[64], good[128];
    const char *secret = "whsec_ZGVtby1zdGFuZGFyZC13ZWJob29rLWtleQ==";
    sigkeys_t *keys = sigkeys_load(SIG_STANDARD, s_file("whsec_ZGVtby1zdGFuZGFyZC13ZWJob29rLWtleQ==\n"), NULL, NULL, 0);
    cr_assert_not_null(keys);
    cr_assert_eq(sig_sign_standard(secret, "msg_1", "1700000000", BODY, strlen(BODY), sig), 0);
    snprintf(good, sizeof good, "v1,%s", sig);
    char long_id[200];
    memset(long_id, 'a', sizeof long_id - 1);
    long_id[sizeof long_id - 1] = '\0';
    char *long_sig = malloc(5000);
    cr_assert_not_null(long_sig);
    memset(long_sig, ' ', 4999);
    memcpy(long_sig, good, strlen(good));
    long_sig[4999] = '\0';

    struct {
        const char *id, *ts, *sig;
        sig_verdict_t v;
        const char *reason;
    } cases[] = {
        {NULL, "1700000000", good, SIG_MISSING, "standard signature: missing webhook-id header"},
        {"", "1700000000", good, SIG_MISSING, "standard signature: missing webhook-id header"},
        {"msg_1", NULL, good, SIG_MISSING, "standard signature: missing webhook-timestamp header"},
        {"msg_1", "", good, SIG_MISSING, "standard signature: missing webhook-timestamp header"},
        {"msg_1", "1700000000", NULL, SIG_MISSING, "standard signature: missing webhook-signature header"},
        {"msg_1", "1700000000", "", SIG_MISSING, "standard signature: missing webhook-signature header"},
        {"msg 1", "1700000000", good, SIG_MALFORMED,
         "standard signature: webhook-id has a space or non-printable byte"},
        {long_id, "1700000000", good, SIG_MALFORMED, "standard signature: webhook-id longer than 127 bytes"},
        {"msg_1", "1700000000.5", good, SIG_MALFORMED,
         "standard signature: webhook-timestamp is not a decimal unix time"},
        {"msg_1", "abc", good, SIG_MALFORMED, "standard signature: webhook-timestamp is not a decimal unix time"},
        {"msg_1", "1700000000", "v1", SIG_MALFORMED, "standard signature: entry 1 is not <version>,<signature>"},
        {"msg_1", "1700000000", ",abc", SIG_MALFORMED, "standard signature: entry 1 is not <version>,<signature>"},
        {"msg_1", "1700000000", "v1,!!!!", SIG_MALFORMED, "standard signature: v1 #1 is not base64 of 32 bytes"},
        {"msg_1", "1700000000", "v1,AAAA", SIG_MALFORMED, "standard signature: v1 #1 is not base64 of 32 bytes"},
        {"msg_1", "1700000000", "v1a,AAAA v2,BBBB", SIG_MALFORMED, "standard signature: no v1 signature"},
        {"msg_1", "1700000000", long_sig, SIG_MALFORMED,
         "standard signature: webhook-signature longer than 4096 bytes"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        reason[0] = '\0';
        cr_expect_eq(sig_verify_standard(keys, cases[i].id, cases[i].ts, cases[i].sig, BODY, strlen(BODY), NOW, TOL,
                                         reason, sizeof reason),
                     cases[i].v, "case %zu: %s", i, reason);
        cr_expect_str_eq(reason, cases[i].reason, "case %zu", i);
    }
    cr_expect_eq(sig_verify_standard(keys, "msg_1", "1700000000", good, BODY, strlen(BODY), NOW, TOL, NULL, 0), SIG_OK);
    free(long_sig);
    sigkeys_destroy(&keys);
}

/* ------------------------------------------------------------- loading */

Test(signature, standard_secrets_must_be_whsec_base64)
{
    char err[256];
    struct {
        const char *file;
        const char *err;
    } bad[] = {
        {"whsec_not*base64\n", "secrets file %s line 1: the key after whsec_ is not valid base64 of 1..256 bytes"},
        {"# ok\nwhsec_QUJD=D\n", "secrets file %s line 2: the key after whsec_ is not valid base64 of 1..256 bytes"},
        {"whsec_\n", "secrets file %s line 1: a Standard Webhooks secret must be whsec_<base64 key>"},
        {"c2VjcmV0LWtleQ==\n", "secrets file %s line 1: a Standard Webhooks secret must be whsec_<base64 key>"},
        {"whsec_QUJD expires=soon\n", "secrets file %s line 1: expires= is not a positive decimal unix time"},
        {"whsec_QUJD expiry=5\n",
         "secrets file %s line 1: unexpected text after the secret (only \" expires=<unix seconds>\")"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        const char *path = s_file(bad[i].file);
        char expect[256];
        snprintf(expect, sizeof expect, bad[i].err, path);
        sigkeys_t *keys = sigkeys_load(SIG_STANDARD, path, NULL, err, sizeof err);
        cr_expect_null(keys, "case %zu", i);
        cr_expect_str_eq(err, expect, "case %zu", i);
    }
    /* unpadded base64 is accepted, and is the same key as padded */
    char sig1[64], sig2[64];
    cr_expect_eq(sig_sign_standard("whsec_QUJDRA", "m", "1", "{}", 2, sig1), 0);
    cr_expect_eq(sig_sign_standard("whsec_QUJDRA==", "m", "1", "{}", 2, sig2), 0);
    cr_expect_str_eq(sig1, sig2);
}

Test(signature, secrets_from_the_environment)
{
    char err[256], reason[256];
    setenv("PG_TEST_SECRETS", " whsec_a, whsec_b\twhsec_c ,", 1);
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, s_file("whsec_file\n"), "PG_TEST_SECRETS", err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    cr_expect_eq(sigkeys_live(keys, NOW), 4, "one from the file, three from the variable");
    const char *all[] = {"whsec_file", "whsec_a", "whsec_b", "whsec_c"};
    for (int i = 0; i < 4; i++)
        cr_expect_eq(sig_verify_stripe(keys, s_stripe_header(all[i], NOW, BODY), BODY, strlen(BODY), NOW, TOL, reason,
                                       sizeof reason),
                     SIG_OK, "%s: %s", all[i], reason);
    sigkeys_destroy(&keys);

    /* an unset variable is no secret, not an error */
    unsetenv("PG_TEST_SECRETS");
    keys = sigkeys_load(SIG_STRIPE, NULL, "PG_TEST_SECRETS", err, sizeof err);
    cr_assert_not_null(keys);
    cr_expect_eq(sigkeys_live(keys, NOW), 0);
    sigkeys_destroy(&keys);

    /* a bad standard secret in the variable is named by position */
    setenv("PG_TEST_SECRETS", "whsec_QUJD whsec_%%%", 1);
    keys = sigkeys_load(SIG_STANDARD, NULL, "PG_TEST_SECRETS", err, sizeof err);
    cr_expect_null(keys);
    cr_expect_str_eq(err, "environment variable PG_TEST_SECRETS secret 2: the key after whsec_ is not valid base64 of "
                          "1..256 bytes");
}

Test(signature, no_secrets_fails_closed)
{
    char err[256], reason[256];
    sigkeys_t *keys = sigkeys_load(SIG_STRIPE, NULL, NULL, err, sizeof err);
    cr_assert_not_null(keys, "having no secret is allowed");
    cr_expect_eq(sigkeys_live(keys, NOW), 0);
    const char *h = s_stripe_header("whsec_alpha", NOW, BODY);
    cr_expect_eq(sig_verify_stripe(keys, h, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_NO_SECRETS);
    cr_expect_str_eq(reason, "stripe signature: no secret configured");
    cr_expect_eq(sig_verify_stripe(NULL, h, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_NO_SECRETS,
                 "no key set at all: the same");
    cr_expect_eq(sigkeys_reload(keys, err, sizeof err), 0, "no file: nothing to reload");
    sigkeys_destroy(&keys);

    /* a file of comments only, and a file whose only secret has expired */
    keys = sigkeys_load(SIG_STANDARD, s_file("# rotated out\n\n   # nothing here\n"), NULL, err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    cr_expect_eq(sig_verify_standard(keys, "msg_1", "1700000000", "v1,AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=",
                                     BODY, strlen(BODY), NOW, TOL, reason, sizeof reason),
                 SIG_NO_SECRETS);
    cr_expect_str_eq(reason, "standard signature: no secret configured");
    sigkeys_destroy(&keys);

    keys = sigkeys_load(SIG_STRIPE, s_file("whsec_alpha expires=1600000000\n"), NULL, err, sizeof err);
    cr_assert_not_null(keys, "%s", err);
    cr_expect_eq(sig_verify_stripe(keys, h, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason), SIG_NO_SECRETS);
    cr_expect_str_eq(reason, "stripe signature: no live secret (all 1 expired)");
    sigkeys_destroy(&keys);
}

Test(signature, file_errors_name_the_file_and_line)
{
    char err[256];
    cr_expect_null(sigkeys_load(SIG_STRIPE, "/nonexistent/pg.secrets", NULL, err, sizeof err));
    cr_expect_str_eq(err, "secrets file /nonexistent/pg.secrets: No such file or directory");

    char text[4096] = "";
    for (int i = 0; i < SIG_MAX_SECRETS + 1; i++)
        snprintf(text + strlen(text), sizeof text - strlen(text), "whsec_%d\n", i);
    const char *path = s_file(text);
    cr_expect_null(sigkeys_load(SIG_STRIPE, path, NULL, err, sizeof err));
    char expect[256];
    snprintf(expect, sizeof expect, "secrets file %s line 17: more than 16 secrets", path);
    cr_expect_str_eq(err, expect);

    char *big = malloc(2100);
    cr_assert_not_null(big);
    memset(big, 'k', 2098);
    big[2098] = '\n';
    big[2099] = '\0';
    path = s_file(big);
    cr_expect_null(sigkeys_load(SIG_STRIPE, path, NULL, err, sizeof err));
    snprintf(expect, sizeof expect, "secrets file %s line 1: longer than 1024 bytes", path);
    cr_expect_str_eq(err, expect);

    big[300] = '\n';
    big[301] = '\0';
    path = s_file(big);
    cr_expect_null(sigkeys_load(SIG_STRIPE, path, NULL, err, sizeof err));
    snprintf(expect, sizeof expect, "secrets file %s line 1: a secret must be 1..256 bytes", path);
    cr_expect_str_eq(err, expect);
    cr_expect(strstr(err, "kkkk") == NULL);
    free(big);
}

Test(signature, no_err_or_reason_ever_contains_a_secret)
{
    /* secrets that are easy to spot in any string */
    const char *stripe_secret = "whsec_SEKRIT_stripe_Zq9";
    const char *std_b64 = "U0VLUklUX3N0YW5kYXJkX1pxOQ=="; /* "SEKRIT_standard_Zq9" */
    const char *needles[] = {"SEKRIT", "U0VLUklU", "Zq9", "ZXE5"};
    char texts[40][300];
    size_t nt = 0;
    char err[300], reason[300], text[256];

    snprintf(text, sizeof text, "%s\n%s expires=%lld\n", stripe_secret, "whsec_SEKRIT_old_Zq9", (long long) NOW - 10);
    sigkeys_t *sk = sigkeys_load(SIG_STRIPE, s_file(text), NULL, err, sizeof err);
    cr_assert_not_null(sk, "%s", err);
    snprintf(text, sizeof text, "whsec_%s\n", std_b64);
    sigkeys_t *wk = sigkeys_load(SIG_STANDARD, s_file(text), NULL, err, sizeof err);
    cr_assert_not_null(wk, "%s", err);

    /* every verdict of both schemes */
    char copy[5][128];
    snprintf(copy[0], sizeof copy[0], "%s", s_stripe_header(stripe_secret, NOW, BODY));
    snprintf(copy[1], sizeof copy[1], "%s", s_stripe_header("whsec_SEKRIT_old_Zq9", NOW, BODY));
    snprintf(copy[2], sizeof copy[2], "%s", "");
    snprintf(copy[3], sizeof copy[3], "%s", "t=x,v1=1");
    snprintf(copy[4], sizeof copy[4], "%s", "t=1700000000,v1=00");
    for (int i = 0; i < 5; i++) {
        sig_verify_stripe(sk, copy[i], BODY, strlen(BODY), NOW, TOL, reason, sizeof reason);
        snprintf(texts[nt++], sizeof texts[0], "%s", reason);
        sig_verify_stripe(sk, copy[i], BODY, strlen(BODY), NOW + 1000, TOL, reason, sizeof reason);
        snprintf(texts[nt++], sizeof texts[0], "%s", reason);
        sig_verify_stripe(sk, copy[i], BODY, strlen(BODY), NOW - 1000, TOL, reason, sizeof reason);
        snprintf(texts[nt++], sizeof texts[0], "%s", reason);
    }
    char sig[64], header[128];
    snprintf(text, sizeof text, "whsec_%s", std_b64);
    cr_assert_eq(sig_sign_standard(text, "msg_1", "1700000000", BODY, strlen(BODY), sig), 0);
    snprintf(header, sizeof header, "v1,%s", sig);
    sig_verify_standard(wk, "msg_1", "1700000000", header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason);
    cr_expect_str_eq(reason, "standard signature: v1 #1 of 1 matches secret #1");
    snprintf(texts[nt++], sizeof texts[0], "%s", reason);
    sig_verify_standard(wk, "msg_2", "1700000000", header, BODY, strlen(BODY), NOW, TOL, reason, sizeof reason);
    snprintf(texts[nt++], sizeof texts[0], "%s", reason);

    /* load errors on lines that hold secrets */
    const char *bad_files[] = {"whsec_SEKRIT_stripe_Zq9 expires=tomorrow\n", "whsec_SEKRIT_stripe_Zq9 SEKRIT2\n"};
    for (int i = 0; i < 2; i++) {
        cr_expect_null(sigkeys_load(SIG_STRIPE, s_file(bad_files[i]), NULL, err, sizeof err));
        snprintf(texts[nt++], sizeof texts[0], "%s", err);
    }
    cr_expect_null(sigkeys_load(SIG_STANDARD, s_file("whsec_U0VLUklU*Zq9\n"), NULL, err, sizeof err));
    snprintf(texts[nt++], sizeof texts[0], "%s", err);
    cr_expect_null(sigkeys_load(SIG_STANDARD, s_file("SEKRIT_Zq9\n"), NULL, err, sizeof err));
    snprintf(texts[nt++], sizeof texts[0], "%s", err);
    setenv("PG_TEST_SECRETS", "whsec_SEKRIT_Zq9", 1);
    cr_expect_null(sigkeys_load(SIG_STANDARD, NULL, "PG_TEST_SECRETS", err, sizeof err));
    snprintf(texts[nt++], sizeof texts[0], "%s", err);

    for (size_t i = 0; i < nt; i++) {
        cr_expect(texts[i][0] != '\0', "text %zu is empty", i);
        for (size_t k = 0; k < sizeof needles / sizeof needles[0]; k++)
            cr_expect(strstr(texts[i], needles[k]) == NULL, "text %zu leaks a secret: %s", i, texts[i]);
    }
    sigkeys_destroy(&sk);
    sigkeys_destroy(&wk);
}

Test(signature, verdict_names)
{
    cr_expect_str_eq(sig_verdict_name(SIG_OK), "ok");
    cr_expect_str_eq(sig_verdict_name(SIG_MISSING), "missing");
    cr_expect_str_eq(sig_verdict_name(SIG_MALFORMED), "malformed");
    cr_expect_str_eq(sig_verdict_name(SIG_STALE), "stale");
    cr_expect_str_eq(sig_verdict_name(SIG_FUTURE), "future");
    cr_expect_str_eq(sig_verdict_name(SIG_MISMATCH), "mismatch");
    cr_expect_str_eq(sig_verdict_name(SIG_NO_SECRETS), "no_secrets");
}
