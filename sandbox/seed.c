/* seed - the sandbox's demo data, and the loader shared with POST /_sandbox/seed.
 *
 * The built-in seed below is what a new database (and /_sandbox/reset)
 * starts from; the demo and the end-to-end tests rely on it exactly.
 * A seed document uses the field names of the API answers:
 *   payouts        {id, status, amount, currency, beneficiary_id}
 *   beneficiaries  {id, status: active|on_hold}   (payouts add theirs as active)
 *   payments       {id, amount, currency, customer_id, customer_risk, flagged, refunded_amount}
 *   psp_refunds    {id, amount, currency, status, payment_intent, metadata: {payment_id}}
 *   psp_payouts    {id, amount, currency, status, failure_code, failure_message, metadata: {payout_id}}
 *   entries        {type, ref, amount, currency[, case_id, memo, id, created_at]}
 *   events         Stripe event objects {id, type, created, data: {object}} the
 *                  PSP's Events API lists (psp.c): those a webhook delivered and
 *                  those it never did (an outage), as Stripe keeps both
 * Records with an id replace the record of that id; entries without one
 * are appended (ids le_000001, le_000002, ...).
 */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sandbox.h"

/* clang-format off */
static const char s_seed[] =
"{\n"
"  \"payouts\": [\n"
"    {\"id\": \"P-10492\", \"status\": \"paid\",     \"amount\": 1250000, \"currency\": \"USD\", \"beneficiary_id\": \"B-5521\"},\n"
"    {\"id\": \"P-20931\", \"status\": \"paid\",     \"amount\": 7500000, \"currency\": \"USD\", \"beneficiary_id\": \"B-6610\"},\n"
"    {\"id\": \"P-00417\", \"status\": \"paid\",     \"amount\":  180000, \"currency\": \"USD\", \"beneficiary_id\": \"B-1203\"},\n"
"    {\"id\": \"P-31000\", \"status\": \"reversed\", \"amount\":  250000, \"currency\": \"EUR\", \"beneficiary_id\": \"B-7788\"}\n"
"  ],\n"
"  \"psp_payouts\": [\n"
"    {\"id\": \"po_10492\", \"amount\": 1250000, \"currency\": \"usd\", \"status\": \"failed\", \"failure_code\": \"account_closed\",\n"
"     \"failure_message\": \"The bank account has been closed\", \"metadata\": {\"payout_id\": \"P-10492\"}},\n"
"    {\"id\": \"po_20931\", \"amount\": 7500000, \"currency\": \"usd\", \"status\": \"failed\", \"failure_code\": \"insufficient_funds\",\n"
"     \"failure_message\": \"The account has insufficient funds to cover the payout\", \"metadata\": {\"payout_id\": \"P-20931\"}},\n"
"    {\"id\": \"po_00417\", \"amount\":  180000, \"currency\": \"usd\", \"status\": \"failed\", \"failure_code\": \"invalid_account_number\",\n"
"     \"failure_message\": \"The bank account number is invalid\", \"metadata\": {\"payout_id\": \"P-00417\"}},\n"
"    {\"id\": \"po_31000\", \"amount\":  250000, \"currency\": \"eur\", \"status\": \"failed\", \"failure_code\": \"account_frozen\",\n"
"     \"failure_message\": \"The bank account has been frozen\", \"metadata\": {\"payout_id\": \"P-31000\"}}\n"
"  ],\n"
"  \"payments\": [\n"
"    {\"id\": \"pay_9\",  \"amount\":  5000, \"currency\": \"USD\", \"customer_id\": \"cus_1\", \"customer_risk\": \"low\",    \"flagged\": false, \"refunded_amount\":  1850},\n"
"    {\"id\": \"pay_12\", \"amount\": 12000, \"currency\": \"USD\", \"customer_id\": \"cus_2\", \"customer_risk\": \"medium\", \"flagged\": false, \"refunded_amount\": 12000},\n"
"    {\"id\": \"pay_31\", \"amount\":  8000, \"currency\": \"USD\", \"customer_id\": \"cus_3\", \"customer_risk\": \"low\",    \"flagged\": false, \"refunded_amount\":  3000},\n"
"    {\"id\": \"pay_44\", \"amount\":  9900, \"currency\": \"EUR\", \"customer_id\": \"cus_4\", \"customer_risk\": \"high\",   \"flagged\": true,  \"refunded_amount\":  2500},\n"
"    {\"id\": \"pay_50\", \"amount\": 20000, \"currency\": \"USD\", \"customer_id\": \"cus_5\", \"customer_risk\": \"low\",    \"flagged\": false, \"refunded_amount\":     0}\n"
"  ],\n"
"  \"psp_refunds\": [\n"
"    {\"id\": \"rf_123\", \"amount\":  1850, \"currency\": \"usd\", \"status\": \"succeeded\", \"payment_intent\": \"pi_9\",  \"metadata\": {\"payment_id\": \"pay_9\"}},\n"
"    {\"id\": \"rf_456\", \"amount\": 12000, \"currency\": \"usd\", \"status\": \"failed\",    \"payment_intent\": \"pi_12\", \"metadata\": {\"payment_id\": \"pay_12\"}},\n"
"    {\"id\": \"rf_789\", \"amount\":  3000, \"currency\": \"usd\", \"status\": \"pending\",   \"payment_intent\": \"pi_31\", \"metadata\": {\"payment_id\": \"pay_31\"}},\n"
"    {\"id\": \"rf_900\", \"amount\":  2500, \"currency\": \"eur\", \"status\": \"succeeded\", \"payment_intent\": \"pi_44\", \"metadata\": {\"payment_id\": \"pay_44\"}}\n"
"  ],\n"
"  \"entries\": [\n"
"    {\"type\": \"payout_paid\",      \"ref\": \"P-10492\", \"amount\": 1250000, \"currency\": \"USD\", \"memo\": \"seed\"},\n"
"    {\"type\": \"payout_paid\",      \"ref\": \"P-20931\", \"amount\": 7500000, \"currency\": \"USD\", \"memo\": \"seed\"},\n"
"    {\"type\": \"payout_paid\",      \"ref\": \"P-00417\", \"amount\":  180000, \"currency\": \"USD\", \"memo\": \"seed\"},\n"
"    {\"type\": \"payout_paid\",      \"ref\": \"P-31000\", \"amount\":  250000, \"currency\": \"EUR\", \"memo\": \"seed\"},\n"
"    {\"type\": \"payout_reversal\",  \"ref\": \"P-31000\", \"amount\":  250000, \"currency\": \"EUR\", \"memo\": \"seed: already consistent\"},\n"
"    {\"type\": \"refund_initiated\", \"ref\": \"rf_123\",  \"amount\":    1850, \"currency\": \"USD\", \"memo\": \"seed: refund_succeeded missing\"},\n"
"    {\"type\": \"refund_initiated\", \"ref\": \"rf_456\",  \"amount\":   12000, \"currency\": \"USD\", \"memo\": \"seed\"},\n"
"    {\"type\": \"refund_succeeded\", \"ref\": \"rf_456\",  \"amount\":   12000, \"currency\": \"USD\", \"memo\": \"seed: PSP says failed\"},\n"
"    {\"type\": \"refund_initiated\", \"ref\": \"rf_789\",  \"amount\":    3000, \"currency\": \"USD\", \"memo\": \"seed\"},\n"
"    {\"type\": \"refund_initiated\", \"ref\": \"rf_900\",  \"amount\":    2500, \"currency\": \"EUR\", \"memo\": \"seed\"}\n"
"  ]\n"
"}\n";
/* clang-format on */

static const char *const s_entry_types[] = {
    "payout_paid", "payout_reversal", "refund_initiated", "refund_succeeded", "refund_failed", "refund_reversal", NULL};

/* sbx_seed_default_json - the built-in seed document */
const char *sbx_seed_default_json(void)
{
    return s_seed;
}

/* sbx_seed_entry_types - the ledger's entry types (shared with ledger.c) */
const char *const *sbx_seed_entry_types(void)
{
    return s_entry_types;
}

/* s_currency - validate a currency of either case and normalise it */
static int s_currency(json_t *obj, bool lower, char out[4], char *err, size_t errlen)
{
    const char *c = sbx_str(obj, "currency", true, true, 3, err, errlen);
    if (!c)
        return -1;
    if (strlen(c) != 3 || !isalpha((unsigned char) c[0]) || !isalpha((unsigned char) c[1]) ||
        !isalpha((unsigned char) c[2])) {
        snprintf(err, errlen, "currency must be three letters (ISO 4217)");
        return -1;
    }
    for (int i = 0; i < 3; i++)
        out[i] = (char) (lower ? tolower((unsigned char) c[i]) : toupper((unsigned char) c[i]));
    out[3] = '\0';
    return 0;
}

/* s_enum - a required string field with a fixed set of values */
static const char *s_enum(json_t *obj, const char *key, const char *const *set, char *err, size_t errlen)
{
    const char *v = sbx_str(obj, key, true, true, 64, err, errlen);
    if (v && !sbx_in(v, set)) {
        snprintf(err, errlen, "%s '%s' is not one of the known values", key, v);
        return NULL;
    }
    return v;
}

/* s_meta - metadata.<key> (or a top-level key of the same name), "" if absent */
static const char *s_meta(json_t *obj, const char *key, char *err, size_t errlen)
{
    json_t *md = json_object_get(obj, "metadata");
    if (md && !json_is_object(md)) {
        snprintf(err, errlen, "metadata must be an object");
        return NULL;
    }
    if (md && json_object_get(md, key))
        return sbx_str(md, key, false, false, SBX_ID_MAX, err, errlen);
    return sbx_str(obj, key, false, false, SBX_ID_MAX, err, errlen);
}

/* s_payout - one internal payout (and its beneficiary, if new) */
static int s_payout(sbx_store_t *st, json_t *o, char *err, size_t errlen)
{
    static const char *const fields[] = {"id", "status", "amount", "currency", "beneficiary_id", NULL};
    static const char *const states[] = {"pending", "paid", "failed", "reversed", "on_hold", NULL};
    char cur[4];
    long long amount;
    const char *id, *status, *ben;
    if (sbx_only_fields(o, fields, err, errlen) || !(id = sbx_str(o, "id", true, true, SBX_ID_MAX, err, errlen)) ||
        !(status = s_enum(o, "status", states, err, errlen)) || sbx_amount(o, "amount", &amount, err, errlen) ||
        s_currency(o, false, cur, err, errlen) ||
        !(ben = sbx_str(o, "beneficiary_id", true, true, SBX_ID_MAX, err, errlen)))
        return -1;
    if (sbx_db_exec(st,
                    "INSERT OR REPLACE INTO payouts(id, status, amount, currency, beneficiary_id) VALUES(?,?,?,?,?)",
                    "ssiss", id, status, amount, cur, ben) ||
        sbx_db_exec(st, "INSERT OR IGNORE INTO beneficiaries(id, status) VALUES(?, 'active')", "s", ben)) {
        snprintf(err, errlen, "sqlite: %s", sbx_store_error(st));
        return -1;
    }
    return 0;
}

/* s_beneficiary - a beneficiary and its hold status */
static int s_beneficiary(sbx_store_t *st, json_t *o, char *err, size_t errlen)
{
    static const char *const fields[] = {"id", "status", NULL};
    static const char *const states[] = {"active", "on_hold", NULL};
    const char *id, *status;
    if (sbx_only_fields(o, fields, err, errlen) || !(id = sbx_str(o, "id", true, true, SBX_ID_MAX, err, errlen)) ||
        !(status = s_enum(o, "status", states, err, errlen)))
        return -1;
    if (sbx_db_exec(st, "INSERT OR REPLACE INTO beneficiaries(id, status) VALUES(?, ?)", "ss", id, status)) {
        snprintf(err, errlen, "sqlite: %s", sbx_store_error(st));
        return -1;
    }
    return 0;
}

/* s_payment - a customer payment (the refund checks read it) */
static int s_payment(sbx_store_t *st, json_t *o, char *err, size_t errlen)
{
    static const char *const fields[] = {"id",      "amount",          "currency", "customer_id", "customer_risk",
                                         "flagged", "refunded_amount", NULL};
    static const char *const risks[] = {"low", "medium", "high", NULL};
    char cur[4];
    long long amount, refunded = 0;
    const char *id, *customer, *risk;
    if (sbx_only_fields(o, fields, err, errlen) || !(id = sbx_str(o, "id", true, true, SBX_ID_MAX, err, errlen)) ||
        sbx_amount(o, "amount", &amount, err, errlen) || s_currency(o, false, cur, err, errlen) ||
        !(customer = sbx_str(o, "customer_id", true, true, SBX_ID_MAX, err, errlen)) ||
        !(risk = s_enum(o, "customer_risk", risks, err, errlen)))
        return -1;
    json_t *flagged = json_object_get(o, "flagged"), *ref = json_object_get(o, "refunded_amount");
    if (flagged && !json_is_boolean(flagged)) {
        snprintf(err, errlen, "flagged must be true or false");
        return -1;
    }
    if (ref && (!json_is_integer(ref) || json_integer_value(ref) < 0)) {
        snprintf(err, errlen, "refunded_amount must be a non-negative integer (minor units)");
        return -1;
    }
    if (ref)
        refunded = (long long) json_integer_value(ref);
    if (sbx_db_exec(st,
                    "INSERT OR REPLACE INTO payments(id, amount, currency, customer_id, customer_risk, flagged,"
                    " refunded_amount) VALUES(?,?,?,?,?,?,?)",
                    "sisssii", id, amount, cur, customer, risk, (long long) json_is_true(flagged), refunded)) {
        snprintf(err, errlen, "sqlite: %s", sbx_store_error(st));
        return -1;
    }
    return 0;
}

/* s_created - optional unix "created" (Stripe objects), now by default */
static int s_created(json_t *o, long long *out, char *err, size_t errlen)
{
    json_t *c = json_object_get(o, "created");
    if (c && (!json_is_integer(c) || json_integer_value(c) < 0)) {
        snprintf(err, errlen, "created must be unix seconds");
        return -1;
    }
    *out = c ? (long long) json_integer_value(c) : (long long) time(NULL);
    return 0;
}

/* s_psp_refund - the PSP's view of a refund (Stripe refund object) */
static int s_psp_refund(sbx_store_t *st, json_t *o, char *err, size_t errlen)
{
    static const char *const fields[] = {"id",      "object",         "amount",   "currency",   "status",
                                         "created", "payment_intent", "metadata", "payment_id", NULL};
    static const char *const states[] = {"pending", "requires_action", "succeeded", "failed", "canceled", NULL};
    char cur[4];
    long long amount, created;
    const char *id, *status, *pi, *pay;
    if (sbx_only_fields(o, fields, err, errlen) || !(id = sbx_str(o, "id", true, true, SBX_ID_MAX, err, errlen)) ||
        sbx_amount(o, "amount", &amount, err, errlen) || s_currency(o, true, cur, err, errlen) ||
        !(status = s_enum(o, "status", states, err, errlen)) ||
        !(pi = sbx_str(o, "payment_intent", false, false, SBX_ID_MAX, err, errlen)) ||
        !(pay = s_meta(o, "payment_id", err, errlen)) || s_created(o, &created, err, errlen))
        return -1;
    if (sbx_db_exec(
            st,
            "INSERT OR REPLACE INTO psp_refunds(id, amount, currency, status, payment_intent, payment_id, created)"
            " VALUES(?,?,?,?,?,?,?)",
            "sissssi", id, amount, cur, status, *pi ? pi : NULL, *pay ? pay : NULL, created)) {
        snprintf(err, errlen, "sqlite: %s", sbx_store_error(st));
        return -1;
    }
    return 0;
}

/* s_psp_payout - the PSP's view of a payout (Stripe payout object) */
static int s_psp_payout(sbx_store_t *st, json_t *o, char *err, size_t errlen)
{
    static const char *const fields[] = {"id",      "object",       "amount",          "currency", "status",
                                         "created", "failure_code", "failure_message", "metadata", "payout_id",
                                         NULL};
    static const char *const states[] = {"paid", "pending", "in_transit", "canceled", "failed", NULL};
    char cur[4];
    long long amount, created;
    const char *id, *status, *code, *msg, *payout;
    if (sbx_only_fields(o, fields, err, errlen) || !(id = sbx_str(o, "id", true, true, SBX_ID_MAX, err, errlen)) ||
        sbx_amount(o, "amount", &amount, err, errlen) || s_currency(o, true, cur, err, errlen) ||
        !(status = s_enum(o, "status", states, err, errlen)) ||
        !(code = sbx_str(o, "failure_code", false, false, 64, err, errlen)) ||
        !(msg = sbx_str(o, "failure_message", false, false, 1024, err, errlen)) ||
        !(payout = s_meta(o, "payout_id", err, errlen)) || s_created(o, &created, err, errlen))
        return -1;
    if (sbx_db_exec(st,
                    "INSERT OR REPLACE INTO psp_payouts(id, amount, currency, status, failure_code, failure_message,"
                    " payout_id, created) VALUES(?,?,?,?,?,?,?,?)",
                    "sisssssi", id, amount, cur, status, *code ? code : NULL, *msg ? msg : NULL,
                    *payout ? payout : NULL, created)) {
        snprintf(err, errlen, "sqlite: %s", sbx_store_error(st));
        return -1;
    }
    return 0;
}

/* s_entry - a ledger entry, appended (or replacing the entry of its id) */
static int s_entry(sbx_store_t *st, json_t *o, char *err, size_t errlen)
{
    static const char *const fields[] = {"id",      "type", "ref",        "amount", "currency",
                                         "case_id", "memo", "created_at", NULL};
    char cur[4], now[32];
    long long amount;
    const char *id, *type, *ref, *case_id, *memo, *created;
    if (sbx_only_fields(o, fields, err, errlen) || !(id = sbx_str(o, "id", false, false, SBX_ID_MAX, err, errlen)) ||
        !(type = s_enum(o, "type", s_entry_types, err, errlen)) ||
        !(ref = sbx_str(o, "ref", true, true, SBX_ID_MAX, err, errlen)) ||
        sbx_amount(o, "amount", &amount, err, errlen) || s_currency(o, false, cur, err, errlen) ||
        !(case_id = sbx_str(o, "case_id", false, false, SBX_ID_MAX, err, errlen)) ||
        !(memo = sbx_str(o, "memo", false, false, 4096, err, errlen)) ||
        !(created = sbx_str(o, "created_at", false, false, 64, err, errlen)))
        return -1;
    sbx_now_rfc3339(now);
    if (*id ? sbx_db_exec(st,
                          "INSERT OR REPLACE INTO entries(id, type, ref, amount, currency, case_id, memo, created_at)"
                          " VALUES(?,?,?,?,?,?,?,?)",
                          "sssissss", id, type, ref, amount, cur, *case_id ? case_id : NULL, *memo ? memo : NULL,
                          *created ? created : now)
            : sbx_db_exec(st,
                          "INSERT INTO entries(id, type, ref, amount, currency, case_id, memo, created_at)"
                          " VALUES(printf('le_%06d', " SBX_NEXT_ENTRY_SEQ "),?,?,?,?,?,?,?)",
                          "ssissss", type, ref, amount, cur, *case_id ? case_id : NULL, *memo ? memo : NULL,
                          *created ? created : now)) {
        snprintf(err, errlen, "sqlite: %s", sbx_store_error(st));
        return -1;
    }
    return 0;
}

/* s_event - a Stripe event the Events API lists (kept whole, as given) */
static int s_event(sbx_store_t *st, json_t *o, char *err, size_t errlen)
{
    const char *id, *type;
    json_t *created = json_object_get(o, "created");
    if (!(id = sbx_str(o, "id", true, true, SBX_ID_MAX, err, errlen)) ||
        !(type = sbx_str(o, "type", true, true, 64, err, errlen)))
        return -1;
    if (!json_is_integer(created) || json_integer_value(created) < 0 ||
        !json_is_object(json_object_get(json_object_get(o, "data"), "object"))) {
        snprintf(err, errlen, "an event needs created (unix seconds) and data.object");
        return -1;
    }
    char *body = json_dumps(o, JSON_COMPACT);
    int rc = body ? sbx_db_exec(st,
                                "INSERT INTO psp_events(id, type, created, body) VALUES(?,?,?,?) ON CONFLICT(id)"
                                " DO UPDATE SET type = excluded.type, created = excluded.created, body = excluded.body",
                                "ssis", id, type, (long long) json_integer_value(created), body)
                  : -1;
    free(body);
    if (rc != 0)
        snprintf(err, errlen, "sqlite: %s", sbx_store_error(st));
    return rc;
}

/* sbx_seed_apply - every collection of the document, in a fixed order */
int sbx_seed_apply(sbx_store_t *store, json_t *doc, json_t *counts, char *err, size_t errlen)
{
    static const struct {
        const char *name;
        int (*load)(sbx_store_t *, json_t *, char *, size_t);
    } kinds[] = {{"payouts", s_payout},
                 {"beneficiaries", s_beneficiary},
                 {"payments", s_payment},
                 {"psp_refunds", s_psp_refund},
                 {"psp_payouts", s_psp_payout},
                 {"entries", s_entry},
                 {"events", s_event}};
    const size_t nkinds = sizeof kinds / sizeof kinds[0];
    if (!json_is_object(doc)) {
        snprintf(err, errlen, "a seed is a JSON object");
        return -1;
    }
    const char *key;
    json_t *v;
    json_object_foreach(doc, key, v)
    {
        size_t k = 0;
        while (k < nkinds && strcmp(key, kinds[k].name) != 0)
            k++;
        if (k == nkinds) {
            snprintf(err, errlen, "unknown collection '%.64s'", key);
            return -1;
        }
        if (!json_is_array(v)) {
            snprintf(err, errlen, "%s must be an array", key);
            return -1;
        }
    }
    for (size_t k = 0; k < nkinds; k++) {
        json_t *arr = json_object_get(doc, kinds[k].name);
        size_t i;
        json_t *rec;
        json_array_foreach(arr, i, rec)
        {
            char why[256] = "";
            if (!json_is_object(rec)) {
                snprintf(err, errlen, "%s[%zu]: not an object", kinds[k].name, i);
                return -1;
            }
            if (kinds[k].load(store, rec, why, sizeof why) != 0) {
                snprintf(err, errlen, "%s[%zu]: %s", kinds[k].name, i, why);
                return -1;
            }
        }
        if (arr)
            json_object_set_new(counts, kinds[k].name, json_integer((json_int_t) json_array_size(arr)));
    }
    return 0;
}
