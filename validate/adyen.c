/* adyen - Adyen standard notifications to items, one item at a time (see adyen.h).
 *
 * Why a module of its own: Stripe and Standard Webhooks sign a whole body
 * in a header, so validate checks the signature first and then parses.
 * Adyen signs each item of a batch inside the body, so here the order is
 * turned around: the batch's envelope is parsed first (nothing in it is
 * believed: an envelope that is not one rejects the whole request, as an
 * unproven sender), then each item is judged alone, signature before
 * schema, and a bad item becomes a WH_REJECTED item that names it
 * ("notification item 2 of 3: signature_mismatch: ...") while the others
 * go on through the same idempotency, order and state gates as any
 * webhook's items. The facts reuse schema.c's field readers (ids, integer
 * minor units, ISO 4217, untrusted text) and common/route.c's eventCode
 * table, which routing uses too.
 *
 * The signing string (Adyen's "HMAC signature calculation"): pspReference,
 * originalReference, merchantAccountCode, merchantReference, amount.value,
 * amount.currency, eventCode, success, joined with ':', an absent field
 * empty, '\' and ':' inside a field escaped "\\" and "\:". It is bounded
 * (ADYEN_SIGNING_MAX) and built in a stack buffer. Reasons never quote a
 * key or a signature.
 */
#include "adyen.h"

#include <assert.h>
#include <inttypes.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "route.h"

#define ADYEN_NFIELDS 8
#define ADYEN_SIG_B64_MAX 128 /* an hmacSignature longer than this is malformed (base64 of 32 bytes is 44) */

/* s_fail - a reason, and -1 */
__attribute__((format(printf, 3, 4))) static int s_fail(char *reason, size_t reasonlen, const char *fmt, ...)
{
    if (reason && reasonlen) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(reason, reasonlen, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* adyen_escape - see adyen.h */
int adyen_escape(const char *in, size_t n, char *out, size_t cap)
{
    assert(in || n == 0);
    assert(out && cap > 0);
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        bool esc = in[i] == '\\' || in[i] == ':';
        if (j + 1 + esc >= cap)
            return -1;
        if (esc)
            out[j++] = '\\';
        out[j++] = in[i];
    }
    out[j] = '\0';
    return (int) j;
}

/* s_field_text - one signing-string field's text: a string as sent, an
 * integer in decimal (amount.value), a boolean as "true"/"false"
 * (success), absent or null empty; -1 for another type */
static int s_field_text(const json_t *v, bool integer, bool boolean, const char **text, size_t *len, char num[24])
{
    if (!v || json_is_null(v)) {
        *text = "", *len = 0;
    } else if (json_is_string(v)) {
        *text = json_string_value(v), *len = json_string_length(v);
    } else if (integer && json_is_integer(v)) {
        *len = (size_t) snprintf(num, 24, "%" PRId64, (int64_t) json_integer_value(v));
        *text = num;
    } else if (boolean && json_is_boolean(v)) {
        *text = json_is_true(v) ? "true" : "false";
        *len = strlen(*text);
    } else {
        return -1;
    }
    return 0;
}

/* adyen_signing_string - see adyen.h */
int adyen_signing_string(const json_t *nri, char *out, size_t cap, char *reason, size_t reasonlen)
{
    static const char *const names[ADYEN_NFIELDS] = {
        "pspReference", "originalReference", "merchantAccountCode", "merchantReference",
        "amount.value", "amount.currency",   "eventCode",           "success"};
    assert(nri && out && cap > 0);
    const json_t *amount = json_object_get(nri, "amount");
    if (amount && !json_is_null(amount) && !json_is_object(amount))
        return s_fail(reason, reasonlen, "amount: expected an object");
    const json_t *v[ADYEN_NFIELDS] = {json_object_get(nri, "pspReference"),
                                      json_object_get(nri, "originalReference"),
                                      json_object_get(nri, "merchantAccountCode"),
                                      json_object_get(nri, "merchantReference"),
                                      json_object_get(amount, "value"),
                                      json_object_get(amount, "currency"),
                                      json_object_get(nri, "eventCode"),
                                      json_object_get(nri, "success")};
    size_t used = 0;
    for (int f = 0; f < ADYEN_NFIELDS; f++) {
        const char *text;
        size_t len;
        char num[24];
        if (s_field_text(v[f], f == 4, f == 7, &text, &len, num) < 0)
            return s_fail(reason, reasonlen, "%s: expected %s", names[f],
                          f == 4   ? "an integer (minor units)"
                          : f == 7 ? "\"true\" or \"false\""
                                   : "a string");
        if (f > 0 && used + 1 < cap)
            out[used++] = ':';
        int w = used + 1 < cap ? adyen_escape(text, len, out + used, cap - used) : -1;
        if (w < 0)
            return s_fail(reason, reasonlen, "the signing string is over %zu bytes (at %s)", cap - 1, names[f]);
        used += (size_t) w;
    }
    assert(used < cap && out[used] == '\0');
    return (int) used;
}

/* s_reject_item - an item rejected alone, saying which and why */
static void s_reject_item(wh_item_t *it, size_t i, size_t n, const char *gate, const char *code, const char *why)
{
    memset(it, 0, sizeof *it);
    it->kind = WH_REJECTED;
    snprintf(it->provider, sizeof it->provider, "adyen");
    snprintf(it->reject_gate, sizeof it->reject_gate, "%s", gate);
    snprintf(it->reject_code, sizeof it->reject_code, "%s", code);
    snprintf(it->reject_reason, sizeof it->reject_reason, "notification item %zu of %zu: %s: %s", i + 1, n, code, why);
}

/* s_success - the item's success as "true" or "false"; NULL for anything else */
static const char *s_success(const json_t *nri)
{
    const json_t *v = json_object_get(nri, "success");
    if (json_is_boolean(v))
        return json_is_true(v) ? "true" : "false";
    if (json_is_string(v) && (strcmp(json_string_value(v), "true") == 0 || strcmp(json_string_value(v), "false") == 0))
        return json_string_value(v);
    return NULL;
}

/* s_envelope - what every item states: eventCode, pspReference, success,
 * eventDate; the idempotency key; the kind its eventCode gives */
static int s_envelope(const json_t *nri, wh_item_t *it, const char **status, const char **failure_code, char *reason,
                      size_t rl)
{
    assert(nri && it && status && failure_code);
    const char *success = s_success(nri), *kind;
    const json_t *date = json_object_get(nri, "eventDate");
    if (schema_field_id(nri, "", "eventCode", true, it->event_type, ADYEN_EVENT_CODE_MAX, reason, rl) < 0 ||
        schema_field_id(nri, "", "pspReference", true, it->object_id, ADYEN_PSP_REF_MAX, reason, rl) < 0)
        return -1;
    if (!success)
        return s_fail(reason, rl, "success: expected \"true\" or \"false\"");
    if (!json_is_string(date) ||
        schema_time(json_string_value(date), json_string_length(date), true, &it->psp_time) < 0)
        return s_fail(reason, rl, "eventDate: expected an RFC 3339 time (e.g. 2026-11-21T10:00:00+01:00)");
    int w = snprintf(it->psp_event_id, sizeof it->psp_event_id, "%s:%s:%s", it->event_type, it->object_id, success);
    assert(w > 0 && (size_t) w < sizeof it->psp_event_id);
    assert(json_is_string(date)); /* schema_time read it */
    if (route_adyen_kind(it->event_type, success, &kind, status, failure_code) < 0) {
        it->kind = WH_IGNORED;
        return 0;
    }
    it->kind = strcmp(kind, "payout") == 0 ? WH_PAYOUT : WH_REFUND;
    return 0;
}

/* s_facts - one authentic item's facts (CONTRACT.md §1.5): the refund or
 * payout id is merchantReference, a refund's payment
 * additionalData["metadata.payment_id"], amount.value minor units */
static int s_facts(const json_t *nri, wh_item_t *it, char *reason, size_t rl)
{
    assert(nri && it);
    const char *status = "", *failure_code = "";
    snprintf(it->provider, sizeof it->provider, "adyen");
    if (s_envelope(nri, it, &status, &failure_code, reason, rl) < 0)
        return -1;
    if (it->kind == WH_IGNORED)
        return 0;
    assert(it->kind == WH_PAYOUT || it->kind == WH_REFUND);
    snprintf(it->status, sizeof it->status, "%s", status);
    const json_t *amount = json_object_get(nri, "amount"), *extra = json_object_get(nri, "additionalData");
    char *ref = it->kind == WH_PAYOUT ? it->payout_id : it->refund_id;
    if (schema_field_id(nri, "", "merchantReference", true, ref, WH_ID_MAX, reason, rl) < 0)
        return -1;
    if (!json_is_object(amount))
        return s_fail(reason, rl, "missing field amount (an object: value, currency)");
    if (schema_field_amount(amount, "amount", "value", &it->amount, reason, rl) < 0 ||
        schema_field_currency(amount, "amount", "currency", it->currency, reason, rl) < 0)
        return -1;
    if (it->kind == WH_PAYOUT) {
        snprintf(it->failure_code, sizeof it->failure_code, "%s", failure_code);
        return schema_field_text(nri, "", "reason", it->failure_message, sizeof it->failure_message, reason, rl);
    }
    if (schema_field_id(nri, "", "originalReference", false, it->payment_intent, WH_ID_MAX, reason, rl) < 0 ||
        schema_field_id(extra, "additionalData", "metadata.payment_id", true, it->payment_id, WH_ID_MAX, reason, rl) <
            0)
        return -1;
    return 0;
}

/* s_item - item i of n: its signature against every live key, then its facts */
static void s_item(const sigkeys_t *keys, const json_t *entry, size_t i, size_t n, int64_t now, wh_item_t *it,
                   size_t *authentic)
{
    char signing[ADYEN_SIGNING_MAX + 1], why[WH_TEXT_MAX - 64], code[40];
    assert(it && authentic && i < n);
    assert(n <= ADYEN_MAX_ITEMS);
    const json_t *nri = json_object_get(entry, "NotificationRequestItem");
    memset(it, 0, sizeof *it);
    if (!json_is_object(nri)) {
        s_reject_item(it, i, n, "schema", "schema_invalid", "expected {\"NotificationRequestItem\":{...}}");
        return;
    }
    int len = adyen_signing_string(nri, signing, sizeof signing, why, sizeof why);
    if (len < 0) {
        s_reject_item(it, i, n, "schema", "schema_invalid", why);
        return;
    }
    const json_t *extra = json_object_get(nri, "additionalData");
    const json_t *mac = json_object_get(extra, "hmacSignature");
    if (extra && !json_is_null(extra) && !json_is_object(extra)) {
        s_reject_item(it, i, n, "schema", "schema_invalid", "additionalData: expected an object");
        return;
    }
    const char *mac_text = json_is_string(mac) && json_string_length(mac) <= ADYEN_SIG_B64_MAX ? json_string_value(mac)
                           : mac                                                               ? "!"
                                                                                               : NULL;
    sig_verdict_t sv = sig_verify_adyen(keys, signing, (size_t) len, mac_text, now, why, sizeof why);
    if (sv != SIG_OK) {
        snprintf(code, sizeof code, "signature_%s", sig_verdict_name(sv));
        s_reject_item(it, i, n, "signature", code, why);
        return;
    }
    ++*authentic;
    if (s_facts(nri, it, why, sizeof why) < 0)
        s_reject_item(it, i, n, "schema", "schema_invalid", why);
}

/* adyen_parse - see adyen.h */
int adyen_parse(const sigkeys_t *keys, const char *body, size_t len, int64_t now, wh_item_t *items, size_t max_items,
                size_t *n_items, size_t *authentic, char *reason, size_t reasonlen)
{
    assert(items && n_items && authentic && max_items > 0);
    assert(body || len == 0);
    *n_items = *authentic = 0;
    if (len > ADYEN_MAX_BODY)
        return s_fail(reason, reasonlen, "body is %zu bytes (limit %d)", len, ADYEN_MAX_BODY);
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    const json_t *list = json_object_get(root, "notificationItems"), *live = json_object_get(root, "live");
    size_t n = json_array_size(list), limit = max_items < ADYEN_MAX_ITEMS ? max_items : ADYEN_MAX_ITEMS;
    int rc = 0;
    if (!root)
        rc = s_fail(reason, reasonlen, "invalid JSON at line %d column %d", jerr.line, jerr.column);
    else if (!json_is_object(root))
        rc = s_fail(reason, reasonlen, "top level: expected an object");
    else if (live && !json_is_boolean(live) &&
             !(json_is_string(live) &&
               (strcmp(json_string_value(live), "true") == 0 || strcmp(json_string_value(live), "false") == 0)))
        rc = s_fail(reason, reasonlen, "live: expected \"true\" or \"false\"");
    else if (!json_is_array(list))
        rc = s_fail(reason, reasonlen, "notificationItems: expected an array of notification items");
    else if (n == 0)
        rc = s_fail(reason, reasonlen, "notificationItems: empty");
    else if (n > limit)
        rc = s_fail(reason, reasonlen, "notificationItems: %zu items (limit %zu a request)", n, limit);
    for (size_t i = 0; rc == 0 && i < n; i++)
        s_item(keys, json_array_get(list, i), i, n, now, &items[i], authentic);
    if (rc == 0)
        *n_items = n;
    json_decref(root);
    return rc;
}
