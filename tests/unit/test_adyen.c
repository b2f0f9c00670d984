/* test_adyen - Adyen standard notifications (validate/adyen.c, CONTRACT.md §1.5).
 *
 * The signing string and its escapes; Adyen's own published example (the
 * key, item and signature of the HMAC test in Adyen's PHP API library,
 * tests/Adyen/Util/HmacSignatureTest.php, which `openssl dgst -sha256 -mac
 * HMAC -macopt hexkey:<key>` reproduces too); a batch parsed item by item,
 * a bad item rejected alone and named; the idempotency key; the eventCode
 * table and the case ids it gives; the batch's bounds. Items are signed
 * here with OpenSSL's HMAC() directly, not with sig_sign_adyen, so a bug
 * shared by signing and verifying cannot hide.
 */
#include "../../validate/adyen.h"

#include <criterion/criterion.h>
#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "route.h"

#define NOW INT64_C(1796000000)
/* Adyen's published example (Adyen PHP API library, HmacSignatureTest) */
#define ADYEN_DOC_KEY "DFB1EB5485895CFA84146406857104ABB4CBCABDC8AAF103A624C8F6A3EAAB00"
#define ADYEN_DOC_SIGNING "7914073381342284::TestMerchant:TestPayment-1407325143704:1130:EUR:AUTHORISATION:true"
#define ADYEN_DOC_HMAC "Ny9gS2veKo5E4w8/OL6xz1/wvT/hYkAXy1xNc/QvO4I="
#define KEY_A "44782DEF547AAA06C910C43932B1EB0C71FC68D9D0C057550C48EC2ACF6BA056"
#define KEY_B "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"

/* s_keys - a key set from the environment, as validate loads it */
static sigkeys_t *s_keys(const char *keys)
{
    char err[256] = "";
    setenv("PG_TEST_ADYEN_KEYS", keys, 1);
    sigkeys_t *k = sigkeys_load(SIG_ADYEN, NULL, "PG_TEST_ADYEN_KEYS", err, sizeof err);
    cr_assert_not_null(k, "%s", err);
    return k;
}

/* s_hmac - base64(HMAC-SHA256(hex key, text)) with OpenSSL directly */
static void s_hmac(const char *hex, const char *text, char out[64])
{
    unsigned char key[64], mac[32];
    size_t n = strlen(hex) / 2;
    for (size_t i = 0; i < n; i++)
        sscanf(hex + 2 * i, "%2hhx", &key[i]);
    unsigned len = 0;
    cr_assert_not_null(HMAC(EVP_sha256(), key, (int) n, (const unsigned char *) text, strlen(text), mac, &len));
    EVP_EncodeBlock((unsigned char *) out, mac, 32);
}

/* s_item - one NotificationRequestItem, signed over its signing string
 * with hex (NULL: unsigned); extra is more JSON fields (with a leading ,) */
static char *s_item(const char *hex, const char *event, const char *success, const char *psp, const char *mref,
                    long long value, const char *cur, const char *payment, const char *extra)
{
    char signing[1024], mac[64] = "", data[512] = "", *out = malloc(4096);
    cr_assert_not_null(out);
    snprintf(signing, sizeof signing, "%s::PayguardTest:%s:%lld:%s:%s:%s", psp, mref, value, cur, event, success);
    if (hex) {
        s_hmac(hex, signing, mac);
        snprintf(data, sizeof data, "\"hmacSignature\":\"%s\"%s", mac, payment ? "," : "");
    }
    if (payment)
        snprintf(data + strlen(data), sizeof data - strlen(data), "\"metadata.payment_id\":\"%s\"", payment);
    snprintf(
        out, 4096,
        "{\"NotificationRequestItem\":{\"additionalData\":{%s},\"amount\":{\"value\":%lld,\"currency\":\"%s\"},"
        "\"eventCode\":\"%s\",\"eventDate\":\"2026-11-21T10:00:00+01:00\",\"merchantAccountCode\":\"PayguardTest\","
        "\"merchantReference\":\"%s\",\"pspReference\":\"%s\",\"success\":\"%s\"%s}}",
        data, value, cur, event, mref, psp, success, extra ? extra : "");
    return out;
}

/* s_batch - {"live":"false","notificationItems":[a,b,c]} (NULLs left out) */
static char *s_batch(char *a, char *b, char *c)
{
    char *out = malloc(16384);
    cr_assert_not_null(out);
    snprintf(out, 16384, "{\"live\":\"false\",\"notificationItems\":[%s%s%s%s%s]}", a, b ? "," : "", b ? b : "",
             c ? "," : "", c ? c : "");
    free(a), free(b), free(c);
    return out;
}

/* s_parse - adyen_parse that must accept the batch */
static size_t s_parse(const sigkeys_t *k, const char *body, wh_item_t *items, size_t *authentic)
{
    char reason[512] = "";
    size_t n = 99;
    int rc = adyen_parse(k, body, strlen(body), NOW, items, ADYEN_MAX_ITEMS, &n, authentic, reason, sizeof reason);
    cr_assert_eq(rc, 0, "batch rejected: %s", reason);
    return n;
}

Test(adyen, escapes_backslash_and_colon)
{
    char out[64];
    cr_expect_eq(adyen_escape("a:b\\c", 5, out, sizeof out), 7);
    cr_expect_str_eq(out, "a\\:b\\\\c");
    cr_expect_eq(adyen_escape("", 0, out, sizeof out), 0);
    cr_expect_str_eq(out, "");
    cr_expect_eq(adyen_escape("::", 2, out, 5), 4, "exactly fits with its NUL");
    cr_expect_eq(adyen_escape("::", 2, out, 4), -1, "one byte short");
}

Test(adyen, signing_string_keeps_empty_fields_and_escapes)
{
    json_t *nri = json_loads("{\"pspReference\":\"7914073381342284\",\"merchantAccountCode\":\"Test:Merchant\\\\EU\","
                             "\"merchantReference\":\"a:b\",\"amount\":{\"value\":1130,\"currency\":\"EUR\"},"
                             "\"eventCode\":\"REFUND\",\"success\":true}",
                             0, NULL);
    cr_assert_not_null(nri);
    char out[ADYEN_SIGNING_MAX + 1], reason[256];
    int n = adyen_signing_string(nri, out, sizeof out, reason, sizeof reason);
    cr_assert_geq(n, 0, "%s", reason);
    cr_expect_str_eq(out, "7914073381342284::Test\\:Merchant\\\\EU:a\\:b:1130:EUR:REFUND:true");
    cr_expect_eq((size_t) n, strlen(out));
    cr_expect_eq(adyen_signing_string(nri, out, 20, reason, sizeof reason), -1, "over the bound: refused");
    cr_expect(strstr(reason, "over 19 bytes") != NULL, "%s", reason);
    json_object_set_new(json_object_get(nri, "amount"), "value", json_real(11.3));
    cr_expect_eq(adyen_signing_string(nri, out, sizeof out, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "amount.value: expected an integer (minor units)");
    json_decref(nri);
}

Test(adyen, adyens_published_example)
{
    json_t *nri = json_loads("{\"pspReference\":\"7914073381342284\",\"merchantAccountCode\":\"TestMerchant\","
                             "\"merchantReference\":\"TestPayment-1407325143704\",\"amount\":{\"value\":1130,"
                             "\"currency\":\"EUR\"},\"eventCode\":\"AUTHORISATION\",\"success\":\"true\"}",
                             0, NULL);
    char signing[ADYEN_SIGNING_MAX + 1], reason[256], mac[64];
    int n = adyen_signing_string(nri, signing, sizeof signing, reason, sizeof reason);
    cr_assert_str_eq(signing, ADYEN_DOC_SIGNING);
    cr_assert_eq(sig_sign_adyen(ADYEN_DOC_KEY, signing, (size_t) n, mac), 0);
    cr_expect_str_eq(mac, ADYEN_DOC_HMAC, "Adyen's library computes this signature for this item and key");
    sigkeys_t *k = s_keys(KEY_A " " ADYEN_DOC_KEY); /* rotation: the second key matches */
    cr_expect_eq(sig_verify_adyen(k, signing, (size_t) n, ADYEN_DOC_HMAC, NOW, reason, sizeof reason), SIG_OK);
    cr_expect_str_eq(reason, "adyen signature: hmacSignature matches key #2");
    cr_expect_eq(sig_verify_adyen(k, signing, (size_t) n - 1, ADYEN_DOC_HMAC, NOW, NULL, 0), SIG_MISMATCH);
    cr_expect_eq(sig_verify_adyen(k, signing, (size_t) n, NULL, NOW, NULL, 0), SIG_MISSING);
    cr_expect_eq(sig_verify_adyen(k, signing, (size_t) n, "not base64!", NOW, NULL, 0), SIG_MALFORMED);
    cr_expect(strstr(reason, ADYEN_DOC_KEY) == NULL && strstr(reason, "DFB1") == NULL, "no key in a reason");
    sigkeys_destroy(&k);
    json_decref(nri);
}

Test(adyen, keys_are_hex)
{
    char err[256];
    setenv("PG_TEST_ADYEN_BAD", "ABC", 1); /* odd */
    cr_expect_null(sigkeys_load(SIG_ADYEN, NULL, "PG_TEST_ADYEN_BAD", err, sizeof err));
    cr_expect(strstr(err, "even number of hex digits") != NULL, "%s", err);
    setenv("PG_TEST_ADYEN_BAD", "XYZW", 1);
    cr_expect_null(sigkeys_load(SIG_ADYEN, NULL, "PG_TEST_ADYEN_BAD", err, sizeof err));
    cr_expect(strstr(err, "XYZW") == NULL, "the key is not quoted: %s", err);
    sigkeys_t *none = s_keys("");
    cr_expect_eq(sig_verify_adyen(none, "x", 1, ADYEN_DOC_HMAC, NOW, err, sizeof err), SIG_NO_SECRETS);
    sigkeys_destroy(&none);
}

Test(adyen, a_batch_of_three_with_one_bad_hmac)
{
    sigkeys_t *k = s_keys(KEY_A);
    char *body = s_batch(s_item(KEY_A, "REFUND", "true", "PSP0001", "rf_123", 1850, "USD", "pay_9", NULL),
                         s_item(KEY_B, "REFUND", "false", "PSP0002", "rf_456", 12000, "USD", "pay_12", NULL),
                         s_item(KEY_A, "PAYOUT_DECLINE", "true", "PSP0003", "P-10492", 1250000, "USD", NULL,
                                ",\"reason\":\"Declined\\u0007 by the bank\""));
    wh_item_t items[ADYEN_MAX_ITEMS];
    size_t authentic;
    cr_assert_eq(s_parse(k, body, items, &authentic), 3);
    cr_expect_eq(authentic, 2);
    cr_expect_eq(items[0].kind, WH_REFUND);
    cr_expect_str_eq(items[0].provider, "adyen");
    cr_expect_str_eq(items[0].status, "succeeded");
    cr_expect_str_eq(items[0].refund_id, "rf_123");
    cr_expect_str_eq(items[0].payment_id, "pay_9");
    cr_expect_eq(items[0].amount, 1850);
    cr_expect_str_eq(items[0].currency, "USD");
    cr_expect_str_eq(items[0].event_type, "REFUND");
    cr_expect_eq(items[0].psp_time, INT64_C(1795251600), "10:00 at +01:00 is 09:00 UTC");
    cr_expect_eq(items[1].kind, WH_REJECTED);
    cr_expect_str_eq(items[1].reject_gate, "signature");
    cr_expect_str_eq(items[1].reject_code, "signature_mismatch");
    cr_expect_str_eq(items[1].reject_reason, "notification item 2 of 3: signature_mismatch: adyen signature: "
                                             "hmacSignature matches none of 1 live key");
    cr_expect_eq(items[2].kind, WH_PAYOUT);
    cr_expect_str_eq(items[2].payout_id, "P-10492");
    cr_expect_str_eq(items[2].status, "failed");
    cr_expect_str_eq(items[2].failure_code, "declined");
    cr_expect_str_eq(items[2].failure_message, "Declined  by the bank", "control characters become spaces");
    free(body);
    sigkeys_destroy(&k);
}

Test(adyen, idempotency_key_is_event_code_psp_reference_success)
{
    sigkeys_t *k = s_keys(KEY_A);
    char *body = s_batch(s_item(KEY_A, "REFUND", "false", "PSPX", "rf_1", 5, "USD", "pay_1", NULL),
                         s_item(KEY_A, "PAYOUT_EXPIRE", "true", "PSPY", "P-1", 7, "USD", NULL, NULL), NULL);
    wh_item_t items[ADYEN_MAX_ITEMS];
    size_t authentic;
    cr_assert_eq(s_parse(k, body, items, &authentic), 2);
    char key[2 * WH_ID_MAX];
    idempotency_key(&items[0], key, sizeof key);
    cr_expect_str_eq(key, "REFUND:PSPX:false", "not the refund id, not the status");
    idempotency_key(&items[1], key, sizeof key);
    cr_expect_str_eq(key, "PAYOUT_EXPIRE:PSPY:true", "a payout's key is not suffixed with its id either");
    free(body);
    sigkeys_destroy(&k);
}

Test(adyen, event_codes_and_case_ids)
{
    const char *kind, *status, *fc;
    static const struct {
        const char *code, *success, *kind, *status;
    } want[] = {
        {"REFUND", "true", "refund", "succeeded"},          {"REFUND", "false", "refund", "failed"},
        {"REFUND_FAILED", "true", "refund", "failed"},      {"REFUNDED_REVERSED", "true", "refund", "failed"},
        {"PAYOUT_DECLINE", "true", "payout", "failed"},     {"PAYOUT_EXPIRE", "true", "payout", "failed"},
        {"PAYOUT_THIRDPARTY", "false", "payout", "failed"},
    };
    for (size_t i = 0; i < sizeof want / sizeof want[0]; i++) {
        cr_assert_eq(route_adyen_kind(want[i].code, want[i].success, &kind, &status, &fc), 0, "%s", want[i].code);
        cr_expect_str_eq(kind, want[i].kind, "%s", want[i].code);
        cr_expect_str_eq(status, want[i].status, "%s", want[i].code);
    }
    cr_expect_eq(route_adyen_kind("PAYOUT_THIRDPARTY", "true", &kind, &status, &fc), -1, "a payout that went out");
    cr_expect_eq(route_adyen_kind("AUTHORISATION", "true", &kind, &status, &fc), -1);
    cr_expect_eq(route_adyen_kind("refund", "true", &kind, &status, &fc), -1, "codes are upper case");
    char key[ROUTE_KEY_MAX];
    const char body[] =
        "{\"notificationItems\":[{\"NotificationRequestItem\":{\"eventCode\":\"AUTHORISATION\","
        "\"merchantReference\":\"o-1\",\"success\":\"true\"}},{\"NotificationRequestItem\":{\"eventCode\":"
        "\"PAYOUT_DECLINE\",\"merchantReference\":\"P-10492\",\"success\":\"true\"}}]}";
    route_receipt_key("adyen", body, strlen(body), key);
    cr_expect_str_eq(key, "payout-P-10492", "routed by its first handled item: the case id Stripe's event gets");
    route_receipt_key("adyen", "{\"notificationItems\":[]}", 23, key);
    cr_expect_str_eq(key, "");
}

Test(adyen, unknown_event_codes_are_ignored_and_need_no_amount)
{
    sigkeys_t *k = s_keys(KEY_A);
    char signing[] = "PSPA::PayguardTest::::AUTHORISATION:true", mac[64], body[1024];
    s_hmac(KEY_A, signing, mac);
    snprintf(body, sizeof body,
             "{\"live\":\"false\",\"notificationItems\":[{\"NotificationRequestItem\":{\"additionalData\":{"
             "\"hmacSignature\":\"%s\"},\"eventCode\":\"AUTHORISATION\",\"eventDate\":\"2026-11-21T10:00:00Z\","
             "\"merchantAccountCode\":\"PayguardTest\",\"pspReference\":\"PSPA\",\"success\":\"true\"}}]}",
             mac);
    wh_item_t items[ADYEN_MAX_ITEMS];
    size_t authentic;
    cr_assert_eq(s_parse(k, body, items, &authentic), 1);
    cr_expect_eq(items[0].kind, WH_IGNORED);
    cr_expect_str_eq(items[0].psp_event_id, "AUTHORISATION:PSPA:true");
    sigkeys_destroy(&k);
}

Test(adyen, amounts_in_jpy_and_kwd_and_bad_ones)
{
    sigkeys_t *k = s_keys(KEY_A);
    char *body = s_batch(s_item(KEY_A, "REFUND", "true", "PSPJ", "rf_jp", 1200, "JPY", "pay_jp", NULL),
                         s_item(KEY_A, "REFUND", "true", "PSPK", "rf_kw", 12345, "KWD", "pay_kw", NULL),
                         s_item(KEY_A, "REFUND", "true", "PSPZ", "rf_zz", 100, "ZZZ", "pay_zz", NULL));
    wh_item_t items[ADYEN_MAX_ITEMS];
    size_t authentic;
    cr_assert_eq(s_parse(k, body, items, &authentic), 3);
    cr_expect_eq(authentic, 3);
    cr_expect(items[0].kind == WH_REFUND && items[0].amount == 1200 && strcmp(items[0].currency, "JPY") == 0);
    cr_expect(items[1].kind == WH_REFUND && items[1].amount == 12345 && strcmp(items[1].currency, "KWD") == 0);
    cr_expect_eq(iso4217_minor_units(items[1].currency), 3);
    cr_expect_eq(items[2].kind, WH_REJECTED, "an authentic item with an unknown currency");
    cr_expect_str_eq(items[2].reject_code, "schema_invalid");
    cr_expect_str_eq(items[2].reject_reason,
                     "notification item 3 of 3: schema_invalid: amount.currency: unknown ISO 4217 code \"ZZZ\"");
    free(body);
    sigkeys_destroy(&k);
}

Test(adyen, a_refund_needs_its_payment_id)
{
    sigkeys_t *k = s_keys(KEY_A);
    char *body = s_batch(s_item(KEY_A, "REFUND", "true", "PSPN", "rf_1", 5, "USD", NULL, NULL), NULL, NULL);
    wh_item_t items[ADYEN_MAX_ITEMS];
    size_t authentic;
    cr_assert_eq(s_parse(k, body, items, &authentic), 1);
    cr_expect_eq(items[0].kind, WH_REJECTED);
    cr_expect(strstr(items[0].reject_reason, "additionalData.metadata.payment_id") != NULL, "%s",
              items[0].reject_reason);
    free(body);
    sigkeys_destroy(&k);
}

Test(adyen, batches_that_are_not_one)
{
    sigkeys_t *k = s_keys(KEY_A);
    wh_item_t items[ADYEN_MAX_ITEMS];
    size_t n, authentic;
    char reason[256], big[8192];
    static const struct {
        const char *body, *reason;
    } bad[] = {
        {"not json", "invalid JSON at line 1 column 3"},
        {"[]", "top level: expected an object"},
        {"{\"live\":\"false\"}", "notificationItems: expected an array of notification items"},
        {"{\"notificationItems\":[]}", "notificationItems: empty"},
        {"{\"live\":7,\"notificationItems\":[{}]}", "live: expected \"true\" or \"false\""},
        {"{\"live\":\"maybe\",\"notificationItems\":[{}]}", "live: expected \"true\" or \"false\""},
    };
    for (size_t i = 0; i < sizeof bad / sizeof bad[0]; i++) {
        cr_expect_eq(adyen_parse(k, bad[i].body, strlen(bad[i].body), NOW, items, ADYEN_MAX_ITEMS, &n, &authentic,
                                 reason, sizeof reason),
                     -1, "%s", bad[i].body);
        cr_expect_str_eq(reason, bad[i].reason);
    }
    size_t w = (size_t) snprintf(big, sizeof big, "{\"notificationItems\":[");
    for (int i = 0; i < ADYEN_MAX_ITEMS + 1; i++)
        w += (size_t) snprintf(big + w, sizeof big - w, "%s{\"NotificationRequestItem\":{}}", i ? "," : "");
    snprintf(big + w, sizeof big - w, "]}");
    cr_expect_eq(adyen_parse(k, big, strlen(big), NOW, items, ADYEN_MAX_ITEMS, &n, &authentic, reason, sizeof reason),
                 -1);
    cr_expect_str_eq(reason, "notificationItems: 17 items (limit 16 a request)");
    cr_expect_eq(n, 0);
    const char one[] = "{\"notificationItems\":[{\"NotificationRequestItem\":7}]}";
    cr_assert_eq(adyen_parse(k, one, strlen(one), NOW, items, ADYEN_MAX_ITEMS, &n, &authentic, reason, sizeof reason),
                 0);
    cr_expect_eq(items[0].kind, WH_REJECTED, "a bad item alone is rejected alone");
    cr_expect_str_eq(items[0].reject_reason,
                     "notification item 1 of 1: schema_invalid: expected {\"NotificationRequestItem\":{...}}");
    sigkeys_destroy(&k);
}

Test(adyen, event_dates_keep_their_offset)
{
    const char s[] = "2026-11-21T10:00:00.123-05:30";
    int64_t t = 0;
    cr_assert_eq(schema_time(s, strlen(s), true, &t), 0);
    cr_expect_eq(t, INT64_C(1795251600) + 3600 + 5 * 3600 + 1800, "10:00 at -05:30 is 15:30 UTC");
    cr_expect_eq(schema_time(s, strlen(s), false, &t), -1, "the standard format takes UTC only");
    cr_expect_eq(schema_time("2026-11-21T10:00:00+24:00", 25, true, &t), -1, "no such offset");
}
