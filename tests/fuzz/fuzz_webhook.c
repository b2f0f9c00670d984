/* fuzz_webhook - libFuzzer target for the validate gates a webhook meets first.
 *
 * Input: one selector byte, then the rest.
 *   bit 0   provider: 0 stripe, 1 standard
 *   bit 1   0: signature headers are carved from the rest ("\n"-separated
 *              lines: stripe header | standard id, timestamp, signature;
 *              what follows is the body)
 *           1: the rest is a body signed here with the fixed secret; the
 *              verifier must say ok, mismatch once a byte changes, stale
 *              past the tolerance (sign/verify agree on every input)
 *   bit 2   also run the source gate on the carved lines (trusted CIDRs,
 *           peer, X-Forwarded-For)
 *   bit 3   standard only: pass a webhook-id to schema_parse
 *   bit 4   Adyen instead (bits 0 and 3 unused): adyen_parse on the rest
 *           (the batch, each item's signing string, HMAC and facts, with
 *           two live hex keys); with bit 1, the rest is also a signing
 *           string signed here, which must verify, and not once a byte
 *           changes
 * schema_parse always runs on the whole rest (adyen_parse with bit 4). Properties checked besides
 * the sanitizers': verdicts are in range, every reason is written as one
 * NUL-terminated line, a signature reason never contains a secret, signing
 * and verifying agree, parsed items respect their bounds.
 *
 *   make bin/fuzz_webhook && ./bin/fuzz_webhook tests/fuzz/webhook
 */
#include "../../validate/adyen.h"
#include "../../validate/validate.h"

#include <assert.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define FZ_NOW INT64_C(1700000000)
#define FZ_TOL 300
#define FZ_LINE_MAX 8192

static const char s_stripe_secret[] = "whsec_fuzzStripeSecret0123";
static const char s_std_secret[] = "whsec_ZnV6elN0YW5kYXJkS2V5MDEyMzQ1Njc4OQ=="; /* "fuzzStandardKey0123456789" */

/* hex of "fuzzAdyenKey0123456789abcdefghij": the first live Adyen key */
static const char s_adyen_key[] = "66757a7a416479656e4b6579303132333435363738396162636465666768696a";

static sigkeys_t *s_stripe_keys;
static sigkeys_t *s_std_keys;
static sigkeys_t *s_adyen_keys;

/* s_init - the fixed key sets, loaded once from environment variables as
 * the stage would (an expired second secret keeps that path busy too) */
static void s_init(void)
{
    if (s_stripe_keys)
        return;
    setenv("PG_FUZZ_STRIPE_SECRETS", "whsec_fuzzStripeSecret0123,whsec_other", 1);
    setenv("PG_FUZZ_STANDARD_SECRETS", "whsec_ZnV6elN0YW5kYXJkS2V5MDEyMzQ1Njc4OQ== whsec_b3RoZXI=", 1);
    char err[256];
    s_stripe_keys = sigkeys_load(SIG_STRIPE, NULL, "PG_FUZZ_STRIPE_SECRETS", err, sizeof err);
    s_std_keys = sigkeys_load(SIG_STANDARD, NULL, "PG_FUZZ_STANDARD_SECRETS", err, sizeof err);
    setenv("PG_FUZZ_ADYEN_SECRETS", "66757a7a416479656e4b6579303132333435363738396162636465666768696a 0A0B0C0D", 1);
    s_adyen_keys = sigkeys_load(SIG_ADYEN, NULL, "PG_FUZZ_ADYEN_SECRETS", err, sizeof err);
    if (!s_stripe_keys || !s_std_keys || !s_adyen_keys) {
        fprintf(stderr, "fuzz_webhook: %s\n", err);
        abort();
    }
}

/* s_check_text - a reason or err: written, NUL-terminated, one line */
static void s_check_text(const char *text, size_t cap)
{
    assert(memchr(text, '\0', cap) != NULL);
    assert(strchr(text, '\n') == NULL);
}

/* s_check_sig_text - a signature reason, which must also never hold a
 * secret (schema and source reasons may quote input, which may by chance
 * contain the same bytes, so only the signature gate is held to this) */
static void s_check_sig_text(const char *text, size_t cap)
{
    s_check_text(text, cap);
    assert(strstr(text, "fuzzStripeSecret") == NULL);
    assert(strstr(text, "ZnV6elN0YW5kYXJk") == NULL);
    assert(strstr(text, "fuzzStandardKey") == NULL);
    assert(strstr(text, "66757a7a416479656e") == NULL);
    assert(strstr(text, "fuzzAdyenKey") == NULL);
}

/* s_line - the next '\n'-terminated line of [*p, end) as a C string */
static char *s_line(const uint8_t **p, const uint8_t *end)
{
    const uint8_t *nl = memchr(*p, '\n', (size_t) (end - *p));
    size_t n = nl ? (size_t) (nl - *p) : (size_t) (end - *p);
    if (n > FZ_LINE_MAX)
        n = FZ_LINE_MAX;
    char *s = malloc(n + 1);
    assert(s);
    memcpy(s, *p, n);
    s[n] = '\0'; /* an embedded NUL just ends the string early */
    *p = nl ? nl + 1 : end;
    return s;
}

/* s_check_items - what schema_parse accepted respects its own bounds */
static void s_check_items(const wh_item_t *items, size_t n)
{
    assert(n >= 1 && n <= WH_MAX_ITEMS);
    for (size_t i = 0; i < n; i++) {
        const wh_item_t *it = &items[i];
        assert(it->kind == WH_PAYOUT || it->kind == WH_REFUND || it->kind == WH_IGNORED);
        assert(it->psp_event_id[0] != '\0');
        if (it->kind != WH_IGNORED) {
            assert(it->amount >= 0 && it->amount <= (INT64_C(1) << 53));
            assert(iso4217_known(it->currency));
            assert(it->status[0] != '\0' && it->object_id[0] != '\0');
        }
        assert(strlen(it->failure_message) < WH_TEXT_MAX);
        char key[2 * WH_ID_MAX];
        idempotency_key(it, key, sizeof key);
        assert(key[0] != '\0');
    }
}

/* s_schema - schema_parse on the whole rest */
static void s_schema(bool standard, bool with_id, const uint8_t *data, size_t size)
{
    static wh_item_t items[WH_MAX_ITEMS];
    char reason[256];
    memset(reason, 'Z', sizeof reason); /* no NUL: a reason must be written */
    size_t n = 0;
    int rc = schema_parse(standard ? "standard" : "stripe", (const char *) data, size,
                          standard && with_id ? "msg_fuzz" : NULL, items, WH_MAX_ITEMS, &n, reason, sizeof reason);
    if (rc == 0)
        s_check_items(items, n);
    else
        s_check_text(reason, sizeof reason);
}

/* s_adyen - adyen_parse on the whole rest: every item in bounds, every
 * rejection one line naming its item, no key in any reason */
static void s_adyen(const uint8_t *data, size_t size)
{
    static wh_item_t items[ADYEN_MAX_ITEMS];
    char reason[256];
    memset(reason, 'Z', sizeof reason);
    size_t n = 0, authentic = 0;
    int rc = adyen_parse(s_adyen_keys, (const char *) data, size, FZ_NOW, items, ADYEN_MAX_ITEMS, &n, &authentic,
                         reason, sizeof reason);
    if (rc != 0) {
        assert(n == 0);
        s_check_text(reason, sizeof reason);
        return;
    }
    assert(n >= 1 && n <= ADYEN_MAX_ITEMS && authentic <= n);
    for (size_t i = 0; i < n; i++) {
        const wh_item_t *it = &items[i];
        if (it->kind == WH_REJECTED) {
            s_check_sig_text(it->reject_reason, sizeof it->reject_reason);
            assert(strncmp(it->reject_reason, "notification item ", 18) == 0);
            assert(strncmp(it->reject_code, "signature_", 10) == 0 || strcmp(it->reject_code, "schema_invalid") == 0);
            continue;
        }
        assert(strcmp(it->provider, "adyen") == 0);
        s_check_items(it, 1);
    }
}

/* s_adyen_signed - the rest as a signing string, signed here: it verifies,
 * and a changed byte does not */
static void s_adyen_signed(const uint8_t *data, size_t size)
{
    char b64[64], reason[256];
    memset(reason, 'Z', sizeof reason);
    int rc = sig_sign_adyen(s_adyen_key, (const char *) data, size, b64);
    assert(rc == 0);
    (void) rc;
    assert(sig_verify_adyen(s_adyen_keys, (const char *) data, size, b64, FZ_NOW, reason, sizeof reason) == SIG_OK);
    s_check_sig_text(reason, sizeof reason);
    if (size) {
        uint8_t *copy = malloc(size);
        assert(copy);
        memcpy(copy, data, size);
        copy[size / 2] ^= 0x01;
        assert(sig_verify_adyen(s_adyen_keys, (const char *) copy, size, b64, FZ_NOW, NULL, 0) == SIG_MISMATCH);
        free(copy);
    }
}

/* s_carved - signature headers taken from the input's first lines */
static void s_carved(bool standard, const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char reason[256];
    memset(reason, 'Z', sizeof reason);
    sig_verdict_t v;
    if (!standard) {
        char *header = s_line(&p, end);
        v = sig_verify_stripe(s_stripe_keys, header, p, (size_t) (end - p), FZ_NOW, FZ_TOL, reason, sizeof reason);
        free(header);
    } else {
        char *id = s_line(&p, end), *ts = s_line(&p, end), *sig = s_line(&p, end);
        v = sig_verify_standard(s_std_keys, id, ts, sig, p, (size_t) (end - p), FZ_NOW, FZ_TOL, reason, sizeof reason);
        free(id);
        free(ts);
        free(sig);
    }
    assert(v >= SIG_OK && v <= SIG_NO_SECRETS);
    assert(strcmp(sig_verdict_name(v), "unknown") != 0);
    s_check_sig_text(reason, sizeof reason);
}

/* s_signed - sign the input here: the verifier must agree on every body */
static void s_signed(bool standard, const uint8_t *data, size_t size)
{
    char reason[256];
    memset(reason, 'Z', sizeof reason);
    int64_t t = FZ_NOW - (size ? data[0] % 200 : 0);
    sig_verdict_t ok, stale;
    if (!standard) {
        char hex[65], header[128];
        sig_sign_stripe(s_stripe_secret, t, data, size, hex);
        snprintf(header, sizeof header, "t=%lld,v1=%s", (long long) t, hex);
        ok = sig_verify_stripe(s_stripe_keys, header, data, size, FZ_NOW, FZ_TOL, reason, sizeof reason);
        stale = sig_verify_stripe(s_stripe_keys, header, data, size, t + FZ_TOL + 1, FZ_TOL, NULL, 0);
        if (size) {
            uint8_t *copy = malloc(size);
            assert(copy);
            memcpy(copy, data, size);
            copy[size / 2] ^= 0x01;
            assert(sig_verify_stripe(s_stripe_keys, header, copy, size, FZ_NOW, FZ_TOL, NULL, 0) == SIG_MISMATCH);
            free(copy);
        }
    } else {
        char b64[64], header[128], ts[24];
        snprintf(ts, sizeof ts, "%lld", (long long) t);
        int rc = sig_sign_standard(s_std_secret, "msg_fuzz", ts, data, size, b64);
        assert(rc == 0);
        (void) rc;
        snprintf(header, sizeof header, "v1a,xyz v1,%s", b64);
        ok = sig_verify_standard(s_std_keys, "msg_fuzz", ts, header, data, size, FZ_NOW, FZ_TOL, reason, sizeof reason);
        stale = sig_verify_standard(s_std_keys, "msg_fuzz", ts, header, data, size, t + FZ_TOL + 1, FZ_TOL, NULL, 0);
        assert(sig_verify_standard(s_std_keys, "msg_fuzz2", ts, header, data, size, FZ_NOW, FZ_TOL, NULL, 0) ==
               SIG_MISMATCH);
    }
    assert(ok == SIG_OK);
    assert(stale == SIG_STALE);
    s_check_sig_text(reason, sizeof reason);
}

/* s_source - the source gate on carved lines: CIDR list, peer, X-Forwarded-For */
static void s_source(const uint8_t *data, size_t size)
{
    const uint8_t *p = data, *end = data + size;
    char *spec = s_line(&p, end), *peer = s_line(&p, end), *xff = s_line(&p, end);
    char err[256], out[64], reason[256];
    memset(err, 'Z', sizeof err);
    memset(reason, 'Z', sizeof reason);
    bool spoofed;
    netlist_t *list = netlist_parse(spec, err, sizeof err);
    if (!list) {
        s_check_text(err, sizeof err);
    } else {
        assert(netlist_size(list) <= 64);
        (void) netlist_contains(list, peer);
        if (source_client_ip(list, peer, xff, out, &spoofed, reason, sizeof reason) == 0) {
            assert(out[0] != '\0' && memchr(out, '\0', sizeof out));
            (void) netlist_contains(list, out);
        }
        s_check_text(reason, sizeof reason);
        netlist_destroy(&list);
        assert(list == NULL);
    }
    free(spec);
    free(peer);
    free(xff);
}

/* LLVMFuzzerTestOneInput - one input: the selector byte, then the rest (see the top) */
int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    s_init();
    if (size < 1)
        return 0;
    uint8_t sel = data[0];
    bool standard = sel & 1;
    data++;
    size--;
    if (sel & 16) {
        s_adyen(data, size);
        if (sel & 2)
            s_adyen_signed(data, size);
        return 0;
    }
    s_schema(standard, sel & 8, data, size);
    if (sel & 2)
        s_signed(standard, data, size);
    else
        s_carved(standard, data, size);
    if (sel & 4)
        s_source(data, size);
    return 0;
}
