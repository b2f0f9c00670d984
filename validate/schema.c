/* schema - webhook JSON to normalized items, strictly (see validate.h, CONTRACT.md §1).
 *
 * The body is untrusted: at most SCHEMA_MAX_BODY bytes, parsed by jansson
 * with duplicate keys refused (two "amount" keys would let a forger's
 * reading and ours differ), and the top level must be an object. Every
 * field we use is checked for type and bounds, and every rejection names
 * the JSON path that failed ("data.object.amount: ..."). Fields we do not
 * use are ignored: Stripe adds fields to its objects over time.
 *
 *   money      an integer of minor units, 0 <= amount <= 2^53 (the largest
 *              integer every JSON reader along the way keeps exact); a real
 *              such as 12.5 or 12.0 is refused, never rounded
 *   currency   3 ASCII letters, upper-cased, an active ISO 4217 code
 *   ids        printable ASCII without spaces, 1..WH_ID_MAX-1 bytes
 *   text       failure messages are kept (never a reason to reject a real
 *              failure), truncated at a UTF-8 boundary to fit, with control
 *              characters replaced by spaces (the text reaches logs,
 *              tickets and an LLM prompt)
 *
 * Reasons quote at most a short, sanitized piece of the input (a currency
 * code, a status word, jansson's token), never the body.
 */
#include "validate.h"

#include <assert.h>
#include <jansson.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#define SCHEMA_MAX_BODY (256 * 1024)
#define SCHEMA_MAX_AMOUNT (INT64_C(1) << 53)
#define SCHEMA_PATH_MAX 128

typedef struct {
    char *buf;
    size_t len;
} s_why_t; /* where a rejection's reason goes */

/* s_fail - write the reason and return -1, so checks read "return s_fail(...)" */
__attribute__((format(printf, 2, 3))) static int s_fail(s_why_t *why, const char *fmt, ...)
{
    if (why->buf && why->len) {
        va_list ap;
        va_start(ap, fmt);
        vsnprintf(why->buf, why->len, fmt, ap);
        va_end(ap);
    }
    return -1;
}

/* s_shown - a short printable copy of untrusted text for quoting in a reason */
static const char *s_shown(const char *s, char out[40])
{
    size_t j = 0;
    for (; s && *s && j < 32; s++)
        out[j++] = (*s >= ' ' && *s <= '~' && *s != '"') ? *s : '?';
    if (s && *s)
        out[j++] = '.', out[j++] = '.', out[j++] = '.';
    out[j] = '\0';
    return out;
}

/* s_type_name - the JSON type of a value, as reasons say it */
static const char *s_type_name(const json_t *v)
{
    switch (json_typeof(v)) {
    case JSON_OBJECT:
        return "object";
    case JSON_ARRAY:
        return "array";
    case JSON_STRING:
        return "string";
    case JSON_INTEGER:
        return "integer";
    case JSON_REAL:
        return "real";
    case JSON_TRUE:
    case JSON_FALSE:
        return "boolean";
    case JSON_NULL:
        return "null";
    }
    return "unknown";
}

/* s_path - "<prefix>.<key>", or "<key>" at the top level */
static const char *s_path(char out[SCHEMA_PATH_MAX], const char *prefix, const char *key)
{
    snprintf(out, SCHEMA_PATH_MAX, "%s%s%s", prefix, *prefix ? "." : "", key);
    return out;
}

/* s_member - obj[key]; NULL when absent or null if optional, else a reason */
static json_t *s_member(const json_t *obj, const char *prefix, const char *key, bool required, s_why_t *why, int *rc)
{
    char path[SCHEMA_PATH_MAX];
    json_t *v = json_object_get(obj, key);
    *rc = 0;
    if (!v && required)
        *rc = s_fail(why, "missing field %s", s_path(path, prefix, key));
    if (v && json_is_null(v)) {
        if (required)
            *rc = s_fail(why, "%s: expected a value, got null", s_path(path, prefix, key));
        v = NULL;
    }
    return v;
}

/* s_check_id - an identifier: printable ASCII, no spaces, 1..max bytes; it
 * ends up in keys, URLs and file names downstream */
static int s_check_id(const char *path, const char *s, size_t n, size_t max, s_why_t *why)
{
    if (n == 0)
        return s_fail(why, "%s: empty", path);
    if (n > max)
        return s_fail(why, "%s: longer than %zu bytes", path, max);
    for (size_t i = 0; i < n; i++)
        if (s[i] <= ' ' || s[i] > '~')
            return s_fail(why, "%s: not printable ASCII without spaces", path);
    return 0;
}

/* s_get_id - an id field into out (outcap bytes with the NUL); an absent
 * optional one leaves out empty */
static int s_get_id(const json_t *obj, const char *prefix, const char *key, bool required, char *out, size_t outcap,
                    s_why_t *why)
{
    char path[SCHEMA_PATH_MAX];
    int rc;
    out[0] = '\0';
    json_t *v = s_member(obj, prefix, key, required, why, &rc);
    if (rc < 0 || !v)
        return rc;
    s_path(path, prefix, key);
    if (!json_is_string(v))
        return s_fail(why, "%s: expected a string, got %s", path, s_type_name(v));
    size_t n = json_string_length(v);
    if (s_check_id(path, json_string_value(v), n, outcap - 1, why) < 0)
        return -1;
    memcpy(out, json_string_value(v), n + 1);
    return 0;
}

/* s_copy_text - untrusted text into out: cut at a UTF-8 character boundary
 * to fit, C0/C1 controls and DEL become spaces (jansson has checked the
 * UTF-8 is valid) */
static void s_copy_text(const char *s, size_t n, char *out, size_t outcap)
{
    assert(outcap > 0);
    if (n > outcap - 1) {
        n = outcap - 1;
        while (n > 0 && ((unsigned char) s[n] & 0xC0) == 0x80)
            n--; /* s[n] continues a character: cut before it */
    }
    size_t j = 0;
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char) s[i];
        if (c < 0x20 || c == 0x7f) {
            out[j++] = ' ';
        } else if (c == 0xC2 && i + 1 < n && (unsigned char) s[i + 1] >= 0x80 && (unsigned char) s[i + 1] <= 0x9f) {
            out[j++] = ' '; /* U+0080..U+009F */
            i++;
        } else {
            out[j++] = (char) c;
        }
    }
    out[j] = '\0';
}

/* s_get_text - an optional free-text field (string or null) */
static int s_get_text(const json_t *obj, const char *prefix, const char *key, char *out, size_t outcap, s_why_t *why)
{
    char path[SCHEMA_PATH_MAX];
    int rc;
    out[0] = '\0';
    json_t *v = s_member(obj, prefix, key, false, why, &rc);
    if (!v)
        return rc;
    if (!json_is_string(v))
        return s_fail(why, "%s: expected a string, got %s", s_path(path, prefix, key), s_type_name(v));
    s_copy_text(json_string_value(v), json_string_length(v), out, outcap);
    return 0;
}

/* s_get_string - a required string whose content is not ours to judge */
static int s_get_string(const json_t *obj, const char *prefix, const char *key, const char **out, s_why_t *why)
{
    char path[SCHEMA_PATH_MAX];
    int rc;
    json_t *v = s_member(obj, prefix, key, true, why, &rc);
    if (rc < 0)
        return rc;
    if (!json_is_string(v))
        return s_fail(why, "%s: expected a string, got %s", s_path(path, prefix, key), s_type_name(v));
    *out = json_string_value(v);
    return 0;
}

/* s_get_object - an object field; absent/null allowed only when optional */
static int s_get_object(const json_t *obj, const char *prefix, const char *key, bool required, json_t **out,
                        s_why_t *why)
{
    char path[SCHEMA_PATH_MAX];
    int rc;
    *out = s_member(obj, prefix, key, required, why, &rc);
    if (rc < 0 || !*out)
        return rc;
    if (!json_is_object(*out))
        return s_fail(why, "%s: expected an object, got %s", s_path(path, prefix, key), s_type_name(*out));
    return 0;
}

/* s_get_amount - money: an integer of minor units in 0..2^53, never a real */
static int s_get_amount(const json_t *obj, const char *prefix, const char *key, int64_t *out, s_why_t *why)
{
    char path[SCHEMA_PATH_MAX];
    int rc;
    json_t *v = s_member(obj, prefix, key, true, why, &rc);
    if (rc < 0)
        return rc;
    s_path(path, prefix, key);
    if (!json_is_integer(v))
        return s_fail(why, "%s: expected an integer (minor units), got %s", path, s_type_name(v));
    json_int_t a = json_integer_value(v);
    if (a < 0)
        return s_fail(why, "%s: must be >= 0, got %lld", path, (long long) a);
    if (a > SCHEMA_MAX_AMOUNT)
        return s_fail(why, "%s: %lld is above 2^53", path, (long long) a);
    *out = (int64_t) a;
    return 0;
}

/* s_get_currency - 3 letters, upper-cased, known to ISO 4217 */
static int s_get_currency(const json_t *obj, const char *prefix, const char *key, char out[4], s_why_t *why)
{
    char path[SCHEMA_PATH_MAX];
    int rc;
    json_t *v = s_member(obj, prefix, key, true, why, &rc);
    if (rc < 0)
        return rc;
    s_path(path, prefix, key);
    if (!json_is_string(v))
        return s_fail(why, "%s: expected a string, got %s", path, s_type_name(v));
    const char *s = json_string_value(v);
    if (json_string_length(v) != 3)
        return s_fail(why, "%s: expected a 3-letter ISO 4217 code", path);
    for (int i = 0; i < 3; i++) {
        char c = s[i];
        if (c >= 'a' && c <= 'z')
            c = (char) (c - 'a' + 'A');
        if (c < 'A' || c > 'Z')
            return s_fail(why, "%s: expected a 3-letter ISO 4217 code", path);
        out[i] = c;
    }
    out[3] = '\0';
    if (!iso4217_known(out))
        return s_fail(why, "%s: unknown ISO 4217 code \"%s\"", path, out);
    return 0;
}

/* s_get_event_type - "type": a short printable word that must fit the item */
static int s_get_event_type(const json_t *root, char out[64], s_why_t *why)
{
    return s_get_id(root, "", "type", true, out, 64, why);
}

/* s_expect_object_kind - Stripe's "object" discriminator, when sent, must
 * name what the event type says the object is */
static int s_expect_object_kind(const json_t *obj, const char *prefix, const char *kind, s_why_t *why)
{
    char path[SCHEMA_PATH_MAX];
    json_t *v = json_object_get(obj, "object");
    if (!v)
        return 0;
    if (!json_is_string(v) || strcmp(json_string_value(v), kind) != 0)
        return s_fail(why, "%s: expected \"%s\"", s_path(path, prefix, "object"), kind);
    return 0;
}

/* s_copy - a known-short string into a fixed field */
static void s_copy(char *dst, size_t cap, const char *src)
{
    size_t n = strlen(src);
    assert(n < cap);
    memcpy(dst, src, n + 1);
}

/* s_refund_status - the refund statuses Stripe has; anything else is a
 * state we do not know how to reconcile */
static bool s_refund_status(const char *s)
{
    static const char *const known[] = {"succeeded", "failed", "pending", "canceled", "requires_action"};
    for (size_t i = 0; i < sizeof known / sizeof known[0]; i++)
        if (strcmp(s, known[i]) == 0)
            return true;
    return false;
}

/* s_stripe_payout - a payout object of payout.failed / payout.canceled */
static int s_stripe_payout(const json_t *obj, const char *status, wh_item_t *item, s_why_t *why)
{
    static const char P[] = "data.object";
    const char *psp_status;
    json_t *meta;
    item->kind = WH_PAYOUT;
    s_copy(item->status, sizeof item->status, status);
    if (s_expect_object_kind(obj, P, "payout", why) < 0 ||
        s_get_id(obj, P, "id", true, item->object_id, WH_ID_MAX, why) < 0 ||
        s_get_amount(obj, P, "amount", &item->amount, why) < 0 ||
        s_get_currency(obj, P, "currency", item->currency, why) < 0 ||
        s_get_string(obj, P, "status", &psp_status, why) < 0 ||
        s_get_id(obj, P, "failure_code", false, item->failure_code, sizeof item->failure_code, why) < 0 ||
        s_get_text(obj, P, "failure_message", item->failure_message, sizeof item->failure_message, why) < 0 ||
        s_get_object(obj, P, "metadata", false, &meta, why) < 0)
        return -1;
    if (meta &&
        (s_get_id(meta, "data.object.metadata", "payout_id", false, item->payout_id, WH_ID_MAX, why) < 0 ||
         s_get_id(meta, "data.object.metadata", "raised_by", false, item->raised_by, sizeof item->raised_by, why) < 0))
        return -1;
    if (!item->payout_id[0])
        s_copy(item->payout_id, WH_ID_MAX, item->object_id);
    return 0;
}

/* s_payment_ids - an object's metadata.payment_id and payment_intent, both
 * optional; refunds and charges carry them the same way */
static int s_payment_ids(const json_t *obj, const char *prefix, char payment_id[WH_ID_MAX],
                         char payment_intent[WH_ID_MAX], s_why_t *why)
{
    char mpath[SCHEMA_PATH_MAX];
    json_t *meta;
    payment_id[0] = '\0';
    if (s_get_id(obj, prefix, "payment_intent", false, payment_intent, WH_ID_MAX, why) < 0 ||
        s_get_object(obj, prefix, "metadata", false, &meta, why) < 0)
        return -1;
    if (meta && s_get_id(meta, s_path(mpath, prefix, "metadata"), "payment_id", false, payment_id, WH_ID_MAX, why) < 0)
        return -1;
    return 0;
}

/* s_stripe_refund - a refund object (of refund.* / charge.refund.updated, or
 * one of a charge's refunds.data[]); forced: the status the event type
 * implies, or NULL; charge_*: the enclosing charge's ids, the fallback */
static int s_stripe_refund(const json_t *obj, const char *P, const char *forced, const char *charge_payment_id,
                           const char *charge_intent, wh_item_t *item, s_why_t *why)
{
    const char *status;
    char status_path[SCHEMA_PATH_MAX], shown[40], own_payment_id[WH_ID_MAX];
    item->kind = WH_REFUND;
    if (s_expect_object_kind(obj, P, "refund", why) < 0 ||
        s_get_id(obj, P, "id", true, item->refund_id, WH_ID_MAX, why) < 0 ||
        s_get_amount(obj, P, "amount", &item->amount, why) < 0 ||
        s_get_currency(obj, P, "currency", item->currency, why) < 0 || s_get_string(obj, P, "status", &status, why) < 0)
        return -1;
    if (!s_refund_status(status))
        return s_fail(why, "%s: unknown refund status \"%s\"", s_path(status_path, P, "status"),
                      s_shown(status, shown));
    if (s_get_id(obj, P, "failure_reason", false, item->failure_code, sizeof item->failure_code, why) < 0 ||
        s_payment_ids(obj, P, own_payment_id, item->payment_intent, why) < 0)
        return -1;
    s_copy(item->status, sizeof item->status, forced ? forced : status);
    s_copy(item->object_id, WH_ID_MAX, item->refund_id);
    /* internal ids before the PSP's: the refund's own metadata, then the
     * charge's (its refunds inherit it), then the payment intents */
    const char *payment_id = own_payment_id[0]                           ? own_payment_id
                             : charge_payment_id && charge_payment_id[0] ? charge_payment_id
                             : item->payment_intent[0]                   ? item->payment_intent
                             : charge_intent                             ? charge_intent
                                                                         : "";
    if (!item->payment_intent[0] && charge_intent)
        s_copy(item->payment_intent, WH_ID_MAX, charge_intent);
    if (!payment_id[0])
        return s_fail(why, "%s: refund has neither metadata.payment_id nor payment_intent", P);
    s_copy(item->payment_id, WH_ID_MAX, payment_id);
    return 0;
}

/* s_stripe_charge - charge.refunded: one item per refunds.data[] entry */
static int s_stripe_charge(const json_t *obj, const wh_item_t *base, wh_item_t *items, size_t max_items,
                           size_t *n_items, s_why_t *why)
{
    static const char P[] = "data.object";
    char charge_id[WH_ID_MAX], charge_payment_id[WH_ID_MAX], charge_intent[WH_ID_MAX], path[SCHEMA_PATH_MAX];
    json_t *refunds;
    int rc;
    if (s_expect_object_kind(obj, P, "charge", why) < 0 ||
        s_get_id(obj, P, "id", true, charge_id, WH_ID_MAX, why) < 0 ||
        s_payment_ids(obj, P, charge_payment_id, charge_intent, why) < 0 ||
        s_get_object(obj, P, "refunds", true, &refunds, why) < 0)
        return -1;
    json_t *data = s_member(refunds, "data.object.refunds", "data", true, why, &rc);
    if (rc < 0)
        return rc;
    if (!json_is_array(data))
        return s_fail(why, "data.object.refunds.data: expected an array, got %s", s_type_name(data));
    size_t n = json_array_size(data), limit = max_items < WH_MAX_ITEMS ? max_items : WH_MAX_ITEMS;
    if (n == 0)
        return s_fail(why, "data.object.refunds.data: empty (charge.refunded lists its refunds)");
    if (n > limit)
        return s_fail(why, "data.object.refunds.data: %zu refunds (limit %zu)", n, limit);
    for (size_t i = 0; i < n; i++) {
        json_t *r = json_array_get(data, i);
        snprintf(path, sizeof path, "data.object.refunds.data[%zu]", i);
        if (!json_is_object(r))
            return s_fail(why, "%s: expected an object, got %s", path, s_type_name(r));
        items[i] = *base;
        if (s_stripe_refund(r, path, NULL, charge_payment_id, charge_intent[0] ? charge_intent : NULL, &items[i], why) <
            0)
            return -1;
    }
    *n_items = n;
    return 0;
}

/* s_stripe - a Stripe event: envelope, then the object its type names */
static int s_stripe(const json_t *root, wh_item_t *items, size_t max_items, size_t *n_items, s_why_t *why)
{
    wh_item_t base;
    memset(&base, 0, sizeof base);
    s_copy(base.provider, sizeof base.provider, "stripe");
    json_t *created, *data, *obj;
    int rc;
    if (s_get_id(root, "", "id", true, base.psp_event_id, WH_ID_MAX, why) < 0 ||
        s_get_event_type(root, base.event_type, why) < 0)
        return -1;
    created = s_member(root, "", "created", true, why, &rc);
    if (rc < 0)
        return rc;
    if (!json_is_integer(created))
        return s_fail(why, "created: expected an integer (unix seconds), got %s", s_type_name(created));
    if (json_integer_value(created) < 0)
        return s_fail(why, "created: must be >= 0, got %lld", (long long) json_integer_value(created));
    base.psp_time = (int64_t) json_integer_value(created);
    if (s_get_object(root, "", "data", true, &data, why) < 0 ||
        s_get_object(data, "data", "object", true, &obj, why) < 0)
        return -1;

    const char *type = base.event_type;
    items[0] = base;
    *n_items = 1;
    if (strcmp(type, "payout.failed") == 0 || strcmp(type, "payout.canceled") == 0)
        return s_stripe_payout(obj, strcmp(type, "payout.failed") == 0 ? "failed" : "canceled", &items[0], why);
    if (strcmp(type, "refund.updated") == 0 || strcmp(type, "refund.failed") == 0 ||
        strcmp(type, "charge.refund.updated") == 0)
        return s_stripe_refund(obj, "data.object", strcmp(type, "refund.failed") == 0 ? "failed" : NULL, NULL, NULL,
                               &items[0], why);
    if (strcmp(type, "charge.refunded") == 0)
        return s_stripe_charge(obj, &base, items, max_items, n_items, why);
    items[0].kind = WH_IGNORED;
    return 0;
}

/* s_digits - n decimal digits at s as a number; -1 if any is not a digit */
static int s_digits(const char *s, int n)
{
    int v = 0;
    for (int i = 0; i < n; i++) {
        if (s[i] < '0' || s[i] > '9')
            return -1;
        v = v * 10 + (s[i] - '0');
    }
    return v;
}

/* s_parse_rfc3339 - "YYYY-MM-DDTHH:MM:SS[.frac](Z|+00:00)" to unix seconds;
 * only UTC offsets, since the PSP's time orders events and a local offset
 * is one more thing to get wrong, unless offsets (Adyen writes its
 * eventDate in local time: "+01:00"); fractions are dropped */
static int s_parse_rfc3339(const char *s, size_t n, bool offsets, int64_t *out)
{
    static const int mdays[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
    if (n < 20 || s[4] != '-' || s[7] != '-' || (s[10] != 'T' && s[10] != 't') || s[13] != ':' || s[16] != ':')
        return -1;
    int year = s_digits(s, 4), mon = s_digits(s + 5, 2), day = s_digits(s + 8, 2);
    int hour = s_digits(s + 11, 2), min = s_digits(s + 14, 2), sec = s_digits(s + 17, 2);
    if (year < 1970 || mon < 1 || mon > 12 || day < 1 || hour < 0 || hour > 23 || min < 0 || min > 59 || sec < 0 ||
        sec > 60)
        return -1;
    bool leap = (year % 4 == 0 && year % 100 != 0) || year % 400 == 0;
    if (day > mdays[mon - 1] + (mon == 2 && leap))
        return -1;
    size_t i = 19;
    if (s[i] == '.') {
        size_t f = ++i;
        while (i < n && i - f < 9 && s[i] >= '0' && s[i] <= '9')
            i++;
        if (i == f)
            return -1;
    }
    const char *zone = s + i;
    size_t zn = n - i;
    int off_s = 0;
    if (offsets && zn == 6 && (zone[0] == '+' || zone[0] == '-') && zone[3] == ':') {
        int oh = s_digits(zone + 1, 2), om = s_digits(zone + 4, 2);
        if (oh < 0 || oh > 23 || om < 0 || om > 59)
            return -1;
        off_s = (zone[0] == '-' ? -1 : 1) * (oh * 3600 + om * 60);
    } else if (!((zn == 1 && (*zone == 'Z' || *zone == 'z')) || (zn == 6 && memcmp(zone, "+00:00", 6) == 0)))
        return -1;
    struct tm tm = {
        .tm_year = year - 1900, .tm_mon = mon - 1, .tm_mday = day, .tm_hour = hour, .tm_min = min, .tm_sec = sec};
    time_t t = timegm(&tm);
    if (t == (time_t) -1)
        return -1;
    *out = (int64_t) t - off_s;
    return 0;
}

typedef struct {
    const char *type;
    wh_kind_t kind;
    const char *status;
} s_std_type_t;

/* the Standard event types we act on; the status is the type's suffix */
static const s_std_type_t s_std_types[] = {
    {"payout.failed", WH_PAYOUT, "failed"},     {"payout.settlement_failed", WH_PAYOUT, "settlement_failed"},
    {"payout.reversed", WH_PAYOUT, "reversed"}, {"refund.succeeded", WH_REFUND, "succeeded"},
    {"refund.failed", WH_REFUND, "failed"},     {"refund.pending", WH_REFUND, "pending"},
};

/* s_standard_payout - the "payout" member of a canonical event */
static int s_standard_payout(const json_t *obj, wh_item_t *item, s_why_t *why)
{
    if (s_get_id(obj, "payout", "id", true, item->payout_id, WH_ID_MAX, why) < 0 ||
        s_get_amount(obj, "payout", "amount", &item->amount, why) < 0 ||
        s_get_currency(obj, "payout", "currency", item->currency, why) < 0 ||
        s_get_id(obj, "payout", "failure_code", false, item->failure_code, sizeof item->failure_code, why) < 0 ||
        s_get_text(obj, "payout", "failure_message", item->failure_message, sizeof item->failure_message, why) < 0)
        return -1;
    s_copy(item->object_id, WH_ID_MAX, item->payout_id);
    return 0;
}

/* s_standard_refund - the "refund" member of a canonical event */
static int s_standard_refund(const json_t *obj, wh_item_t *item, s_why_t *why)
{
    if (s_get_id(obj, "refund", "id", true, item->refund_id, WH_ID_MAX, why) < 0 ||
        s_get_id(obj, "refund", "payment_id", true, item->payment_id, WH_ID_MAX, why) < 0 ||
        s_get_amount(obj, "refund", "amount", &item->amount, why) < 0 ||
        s_get_currency(obj, "refund", "currency", item->currency, why) < 0)
        return -1;
    s_copy(item->object_id, WH_ID_MAX, item->refund_id);
    return 0;
}

/* s_standard - the canonical event of /webhooks/standard (CONTRACT.md §1.2) */
static int s_standard(const json_t *root, const char *webhook_id, wh_item_t *item, s_why_t *why)
{
    char body_id[WH_ID_MAX];
    const char *created_at;
    memset(item, 0, sizeof *item);
    s_copy(item->provider, sizeof item->provider, "standard");
    if (s_get_id(root, "", "id", true, body_id, WH_ID_MAX, why) < 0 ||
        s_get_event_type(root, item->event_type, why) < 0 || s_get_string(root, "", "created_at", &created_at, why) < 0)
        return -1;
    if (webhook_id && *webhook_id) {
        if (s_check_id("webhook-id", webhook_id, strlen(webhook_id), WH_ID_MAX - 1, why) < 0)
            return -1;
        s_copy(item->psp_event_id, WH_ID_MAX, webhook_id);
    } else {
        s_copy(item->psp_event_id, WH_ID_MAX, body_id);
    }
    if (s_parse_rfc3339(created_at, strlen(created_at), false, &item->psp_time) < 0)
        return s_fail(why, "created_at: not an RFC 3339 UTC time");

    const s_std_type_t *known = NULL;
    for (size_t i = 0; i < sizeof s_std_types / sizeof s_std_types[0]; i++)
        if (strcmp(item->event_type, s_std_types[i].type) == 0)
            known = &s_std_types[i];
    if (!known) {
        item->kind = WH_IGNORED;
        return 0;
    }
    item->kind = known->kind;
    s_copy(item->status, sizeof item->status, known->status);
    json_t *payout = json_object_get(root, "payout"), *refund = json_object_get(root, "refund");
    payout = json_is_null(payout) ? NULL : payout;
    refund = json_is_null(refund) ? NULL : refund;
    json_t *want = known->kind == WH_PAYOUT ? payout : refund;
    const char *want_name = known->kind == WH_PAYOUT ? "payout" : "refund";
    if (payout && refund)
        return s_fail(why, "expected exactly one of payout/refund, got both");
    if (!want)
        return s_fail(why, "expected exactly one of payout/refund: type %s needs %s, got %s", item->event_type,
                      want_name, payout || refund ? (payout ? "payout" : "refund") : "neither");
    if (!json_is_object(want))
        return s_fail(why, "%s: expected an object, got %s", want_name, s_type_name(want));
    return known->kind == WH_PAYOUT ? s_standard_payout(want, item, why) : s_standard_refund(want, item, why);
}

/* schema_parse - see validate.h */
int schema_parse(const char *provider, const char *body, size_t len, const char *webhook_id, wh_item_t *items,
                 size_t max_items, size_t *n_items, char *reason, size_t reasonlen)
{
    assert(provider && items && n_items && max_items > 0);
    assert(body || len == 0);
    s_why_t why = {reason, reasonlen};
    *n_items = 0;
    bool stripe = strcmp(provider, "stripe") == 0;
    if (!stripe && strcmp(provider, "standard") != 0) {
        char shown[40];
        return s_fail(&why, "unknown provider \"%s\"", s_shown(provider, shown));
    }
    if (len > SCHEMA_MAX_BODY)
        return s_fail(&why, "body is %zu bytes (limit %d)", len, SCHEMA_MAX_BODY);
    json_error_t jerr;
    json_t *root = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
    if (!root) {
        char text[sizeof jerr.text];
        size_t j = 0;
        for (const char *p = jerr.text; *p && j + 1 < sizeof text; p++)
            text[j++] = (*p >= ' ' && *p <= '~') ? *p : '?';
        text[j] = '\0';
        return s_fail(&why, "invalid JSON at line %d column %d: %s", jerr.line, jerr.column, text);
    }
    int rc;
    size_t n = 0;
    if (!json_is_object(root))
        rc = s_fail(&why, "top level: expected an object, got %s", s_type_name(root));
    else if (stripe)
        rc = s_stripe(root, items, max_items, &n, &why);
    else if ((rc = s_standard(root, webhook_id, &items[0], &why)) == 0)
        n = 1;
    json_decref(root);
    if (rc == 0)
        *n_items = n;
    return rc;
}

typedef struct {
    char code[4];
    int minor;
} s_currency_t;

/* Active ISO 4217 currencies with their minor units, sorted for bsearch.
 * Left out on purpose: funds codes (BOV CHE CHW CLF COU MXV USN UYI UYW),
 * precious metals, SDR and bond units (XAU XAG XPD XPT XDR XBA..XBD XSU
 * XUA), the testing and "no currency" codes (XTS and X-X-X), and withdrawn
 * codes (HRK 2023, ZWL 2024, SLL, CUC). ANG stays while XCG replaces it:
 * refunds of older payments may still name it. */
static const s_currency_t s_currencies[] = {
    {"AED", 2}, {"AFN", 2}, {"ALL", 2}, {"AMD", 2}, {"ANG", 2}, {"AOA", 2}, {"ARS", 2}, {"AUD", 2}, {"AWG", 2},
    {"AZN", 2}, {"BAM", 2}, {"BBD", 2}, {"BDT", 2}, {"BGN", 2}, {"BHD", 3}, {"BIF", 0}, {"BMD", 2}, {"BND", 2},
    {"BOB", 2}, {"BRL", 2}, {"BSD", 2}, {"BTN", 2}, {"BWP", 2}, {"BYN", 2}, {"BZD", 2}, {"CAD", 2}, {"CDF", 2},
    {"CHF", 2}, {"CLP", 0}, {"CNY", 2}, {"COP", 2}, {"CRC", 2}, {"CUP", 2}, {"CVE", 2}, {"CZK", 2}, {"DJF", 0},
    {"DKK", 2}, {"DOP", 2}, {"DZD", 2}, {"EGP", 2}, {"ERN", 2}, {"ETB", 2}, {"EUR", 2}, {"FJD", 2}, {"FKP", 2},
    {"GBP", 2}, {"GEL", 2}, {"GHS", 2}, {"GIP", 2}, {"GMD", 2}, {"GNF", 0}, {"GTQ", 2}, {"GYD", 2}, {"HKD", 2},
    {"HNL", 2}, {"HTG", 2}, {"HUF", 2}, {"IDR", 2}, {"ILS", 2}, {"INR", 2}, {"IQD", 3}, {"IRR", 2}, {"ISK", 0},
    {"JMD", 2}, {"JOD", 3}, {"JPY", 0}, {"KES", 2}, {"KGS", 2}, {"KHR", 2}, {"KMF", 0}, {"KPW", 2}, {"KRW", 0},
    {"KWD", 3}, {"KYD", 2}, {"KZT", 2}, {"LAK", 2}, {"LBP", 2}, {"LKR", 2}, {"LRD", 2}, {"LSL", 2}, {"LYD", 3},
    {"MAD", 2}, {"MDL", 2}, {"MGA", 2}, {"MKD", 2}, {"MMK", 2}, {"MNT", 2}, {"MOP", 2}, {"MRU", 2}, {"MUR", 2},
    {"MVR", 2}, {"MWK", 2}, {"MXN", 2}, {"MYR", 2}, {"MZN", 2}, {"NAD", 2}, {"NGN", 2}, {"NIO", 2}, {"NOK", 2},
    {"NPR", 2}, {"NZD", 2}, {"OMR", 3}, {"PAB", 2}, {"PEN", 2}, {"PGK", 2}, {"PHP", 2}, {"PKR", 2}, {"PLN", 2},
    {"PYG", 0}, {"QAR", 2}, {"RON", 2}, {"RSD", 2}, {"RUB", 2}, {"RWF", 0}, {"SAR", 2}, {"SBD", 2}, {"SCR", 2},
    {"SDG", 2}, {"SEK", 2}, {"SGD", 2}, {"SHP", 2}, {"SLE", 2}, {"SOS", 2}, {"SRD", 2}, {"SSP", 2}, {"STN", 2},
    {"SVC", 2}, {"SYP", 2}, {"SZL", 2}, {"THB", 2}, {"TJS", 2}, {"TMT", 2}, {"TND", 3}, {"TOP", 2}, {"TRY", 2},
    {"TTD", 2}, {"TWD", 2}, {"TZS", 2}, {"UAH", 2}, {"UGX", 0}, {"USD", 2}, {"UYU", 2}, {"UZS", 2}, {"VED", 2},
    {"VES", 2}, {"VND", 0}, {"VUV", 0}, {"WST", 2}, {"XAF", 0}, {"XCD", 2}, {"XCG", 2}, {"XOF", 0}, {"XPF", 0},
    {"YER", 2}, {"ZAR", 2}, {"ZMW", 2}, {"ZWG", 2},
};

/* s_currency_cmp - bsearch order: the code */
static int s_currency_cmp(const void *key, const void *elem)
{
    return strcmp(key, ((const s_currency_t *) elem)->code);
}

/* s_currency - the table entry of an upper-case 3-letter code, or NULL */
static const s_currency_t *s_currency(const char *code)
{
    if (!code || strlen(code) != 3)
        return NULL;
    return bsearch(code, s_currencies, sizeof s_currencies / sizeof s_currencies[0], sizeof s_currencies[0],
                   s_currency_cmp);
}

/* iso4217_known - see validate.h */
bool iso4217_known(const char *code)
{
    return s_currency(code) != NULL;
}

/* iso4217_minor_units - see validate.h */
int iso4217_minor_units(const char *code)
{
    const s_currency_t *c = s_currency(code);
    return c ? c->minor : -1;
}

/* idempotency_key - see validate.h. Every part is bounded by the item's
 * field sizes, so a buffer of 2 * WH_ID_MAX always holds the key: a
 * truncated key could merge two events, hence the assertion. */
void idempotency_key(const wh_item_t *item, char *out, size_t outlen)
{
    assert(item && out && outlen >= 2 * WH_ID_MAX);
    int n;
    if (strcmp(item->provider, "adyen") == 0) /* eventCode:pspReference:success, whatever the kind */
        n = snprintf(out, outlen, "%s", item->psp_event_id);
    else if (item->kind == WH_PAYOUT)
        n = snprintf(out, outlen, "%s:%s", item->psp_event_id, item->payout_id);
    else if (item->psp_event_id[0] || item->kind != WH_REFUND)
        n = snprintf(out, outlen, "%s", item->psp_event_id);
    else
        n = snprintf(out, outlen, "%s:%s:%lld", item->refund_id, item->status, (long long) item->amount);
    assert(n >= 0 && (size_t) n < outlen);
    (void) n;
}

/* schema_field_id - see validate.h */
int schema_field_id(const json_t *obj, const char *prefix, const char *key, bool required, char *out, size_t outcap,
                    char *reason, size_t reasonlen)
{
    s_why_t why = {reason, reasonlen};
    return s_get_id(obj, prefix, key, required, out, outcap, &why);
}

/* schema_field_amount - see validate.h */
int schema_field_amount(const json_t *obj, const char *prefix, const char *key, int64_t *out, char *reason,
                        size_t reasonlen)
{
    s_why_t why = {reason, reasonlen};
    return s_get_amount(obj, prefix, key, out, &why);
}

/* schema_field_currency - see validate.h */
int schema_field_currency(const json_t *obj, const char *prefix, const char *key, char out[4], char *reason,
                          size_t reasonlen)
{
    s_why_t why = {reason, reasonlen};
    return s_get_currency(obj, prefix, key, out, &why);
}

/* schema_field_text - see validate.h */
int schema_field_text(const json_t *obj, const char *prefix, const char *key, char *out, size_t outcap, char *reason,
                      size_t reasonlen)
{
    s_why_t why = {reason, reasonlen};
    return s_get_text(obj, prefix, key, out, outcap, &why);
}

/* schema_time - see validate.h */
int schema_time(const char *s, size_t n, bool offsets, int64_t *out)
{
    return s ? s_parse_rfc3339(s, n, offsets, out) : -1;
}
