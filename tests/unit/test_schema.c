/* test_schema - webhook bodies to normalized items (CONTRACT.md §1.1, §1.2).
 *
 * schema_parse takes a provider ("stripe" | "standard"), the raw body and,
 * for standard, the webhook-id header, and fills wh_item_t items: one per
 * payout or refund fact, or one WH_IGNORED item for an event type we do not
 * act on. A body it cannot trust is rejected with a reason naming the JSON
 * path. The bodies below are written with single quotes for readability;
 * J() turns them into JSON.
 */
#include "../../validate/validate.h"

#include <criterion/criterion.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

/* J - single-quoted JSON to JSON; a few rotating buffers so several J()
 * may appear in one expression */
static const char *J(const char *sq)
{
    static char bufs[4][8192];
    static int next;
    char *b = bufs[next++ % 4];
    size_t n = strlen(sq);
    cr_assert_lt(n, sizeof bufs[0]);
    for (size_t i = 0; i <= n; i++)
        b[i] = sq[i] == '\'' ? '"' : sq[i];
    return b;
}

/* s_ok - parse a body that must be accepted; returns the item count */
static size_t s_ok(const char *provider, const char *body, const char *webhook_id, wh_item_t *items, size_t max)
{
    char reason[256] = "";
    size_t n = 99;
    int rc = schema_parse(provider, body, strlen(body), webhook_id, items, max, &n, reason, sizeof reason);
    cr_assert_eq(rc, 0, "rejected: %s", reason);
    return n;
}

/* ------------------------------------------------------------- stripe */

Test(schema, stripe_payout_failed)
{
    const char *body = J("{'id':'evt_1Pq','object':'event','type':'payout.failed','created':1763719200,"
                         "'livemode':false,'data':{'object':{'id':'po_1Abc','object':'payout','amount':1250000,"
                         "'currency':'usd','status':'failed','failure_code':'account_closed',"
                         "'failure_message':'The bank account has been closed.','metadata':{'payout_id':'P-10492'}}}}");
    wh_item_t it[WH_MAX_ITEMS];
    cr_assert_eq(s_ok("stripe", body, NULL, it, WH_MAX_ITEMS), 1);
    cr_expect_eq(it[0].kind, WH_PAYOUT);
    cr_expect_str_eq(it[0].provider, "stripe");
    cr_expect_str_eq(it[0].event_type, "payout.failed");
    cr_expect_str_eq(it[0].psp_event_id, "evt_1Pq");
    cr_expect_eq(it[0].psp_time, 1763719200);
    cr_expect_str_eq(it[0].status, "failed");
    cr_expect_str_eq(it[0].object_id, "po_1Abc");
    cr_expect_str_eq(it[0].payout_id, "P-10492", "the internal id from metadata");
    cr_expect_str_eq(it[0].refund_id, "");
    cr_expect_str_eq(it[0].payment_id, "");
    cr_expect_str_eq(it[0].payment_intent, "");
    cr_expect_eq(it[0].amount, 1250000);
    cr_expect_str_eq(it[0].currency, "USD", "normalised to upper case");
    cr_expect_str_eq(it[0].failure_code, "account_closed");
    cr_expect_str_eq(it[0].failure_message, "The bank account has been closed.");
}

Test(schema, stripe_payout_canceled_without_metadata)
{
    const char *body = J("{'id':'evt_2','type':'payout.canceled','created':1763719300,'data':{'object':"
                         "{'id':'po_2','amount':0,'currency':'JPY','status':'canceled','failure_code':null,"
                         "'failure_message':null,'metadata':{}}}}");
    wh_item_t it[1];
    cr_assert_eq(s_ok("stripe", body, NULL, it, 1), 1);
    cr_expect_eq(it[0].kind, WH_PAYOUT);
    cr_expect_str_eq(it[0].event_type, "payout.canceled");
    cr_expect_str_eq(it[0].status, "canceled");
    cr_expect_str_eq(it[0].object_id, "po_2");
    cr_expect_str_eq(it[0].payout_id, "po_2", "no metadata.payout_id: the object id");
    cr_expect_eq(it[0].amount, 0);
    cr_expect_str_eq(it[0].currency, "JPY");
    cr_expect_str_eq(it[0].failure_code, "");
    cr_expect_str_eq(it[0].failure_message, "");
}

Test(schema, stripe_refund_updated)
{
    const char *body = J("{'id':'evt_3','type':'refund.updated','created':1763719400,'data':{'object':"
                         "{'id':'re_3','object':'refund','amount':1850,'currency':'eur','status':'succeeded',"
                         "'payment_intent':'pi_3','charge':'ch_3','metadata':{'payment_id':'pay_9'}}}}");
    wh_item_t it[1];
    cr_assert_eq(s_ok("stripe", body, NULL, it, 1), 1);
    cr_expect_eq(it[0].kind, WH_REFUND);
    cr_expect_str_eq(it[0].provider, "stripe");
    cr_expect_str_eq(it[0].event_type, "refund.updated");
    cr_expect_str_eq(it[0].psp_event_id, "evt_3");
    cr_expect_eq(it[0].psp_time, 1763719400);
    cr_expect_str_eq(it[0].status, "succeeded");
    cr_expect_str_eq(it[0].object_id, "re_3");
    cr_expect_str_eq(it[0].refund_id, "re_3");
    cr_expect_str_eq(it[0].payout_id, "");
    cr_expect_str_eq(it[0].payment_id, "pay_9", "metadata.payment_id wins over payment_intent");
    cr_expect_str_eq(it[0].payment_intent, "pi_3");
    cr_expect_eq(it[0].amount, 1850);
    cr_expect_str_eq(it[0].currency, "EUR");
}

Test(schema, stripe_refund_failed_forces_failed_and_falls_back_to_payment_intent)
{
    const char *body = J("{'id':'evt_4','type':'refund.failed','created':1763719500,'data':{'object':"
                         "{'id':'re_4','object':'refund','amount':500,'currency':'KWD','status':'pending',"
                         "'failure_reason':'expired_or_canceled_card','payment_intent':'pi_4','metadata':null}}}");
    wh_item_t it[1];
    cr_assert_eq(s_ok("stripe", body, NULL, it, 1), 1);
    cr_expect_eq(it[0].kind, WH_REFUND);
    cr_expect_str_eq(it[0].status, "failed", "the event type says failed, whatever the object's status");
    cr_expect_str_eq(it[0].refund_id, "re_4");
    cr_expect_str_eq(it[0].payment_id, "pi_4", "no metadata.payment_id: the payment intent");
    cr_expect_str_eq(it[0].payment_intent, "pi_4");
    cr_expect_str_eq(it[0].failure_code, "expired_or_canceled_card");
    cr_expect_eq(it[0].amount, 500);
    cr_expect_str_eq(it[0].currency, "KWD");
}

Test(schema, stripe_charge_refund_updated)
{
    const char *body = J("{'id':'evt_5','type':'charge.refund.updated','created':1763719600,'data':{'object':"
                         "{'id':'re_5','object':'refund','amount':99,'currency':'GBP','status':'requires_action',"
                         "'payment_intent':null,'metadata':{'payment_id':'pay_5','order':'o-1'}}}}");
    wh_item_t it[1];
    cr_assert_eq(s_ok("stripe", body, NULL, it, 1), 1);
    cr_expect_eq(it[0].kind, WH_REFUND);
    cr_expect_str_eq(it[0].event_type, "charge.refund.updated");
    cr_expect_str_eq(it[0].status, "requires_action");
    cr_expect_str_eq(it[0].refund_id, "re_5");
    cr_expect_str_eq(it[0].object_id, "re_5");
    cr_expect_str_eq(it[0].payment_id, "pay_5");
    cr_expect_str_eq(it[0].payment_intent, "");
    cr_expect_eq(it[0].amount, 99);
    cr_expect_str_eq(it[0].currency, "GBP");
}

Test(schema, stripe_charge_refunded_gives_one_item_per_refund)
{
    const char *body = J(
        "{'id':'evt_6','type':'charge.refunded','created':1763719700,'data':{'object':"
        "{'id':'ch_6','object':'charge','amount':5000,'currency':'usd','payment_intent':'pi_6',"
        "'metadata':{'payment_id':'pay_6'},'refunds':{'object':'list','data':["
        "{'id':'re_6a','object':'refund','amount':1000,'currency':'usd','status':'succeeded','payment_intent':'pi_6'},"
        "{'id':'re_6b','object':'refund','amount':2500,'currency':'usd','status':'pending',"
        "'metadata':{'payment_id':'pay_6_override'}}],'has_more':false}}}}");
    wh_item_t it[WH_MAX_ITEMS];
    cr_assert_eq(s_ok("stripe", body, NULL, it, WH_MAX_ITEMS), 2);
    for (int i = 0; i < 2; i++) {
        cr_expect_eq(it[i].kind, WH_REFUND);
        cr_expect_str_eq(it[i].provider, "stripe");
        cr_expect_str_eq(it[i].event_type, "charge.refunded");
        cr_expect_str_eq(it[i].psp_event_id, "evt_6");
        cr_expect_eq(it[i].psp_time, 1763719700);
        cr_expect_str_eq(it[i].payment_intent, "pi_6", "the refund's own, else the charge's");
        cr_expect_str_eq(it[i].currency, "USD");
    }
    cr_expect_str_eq(it[0].refund_id, "re_6a");
    cr_expect_str_eq(it[0].object_id, "re_6a");
    cr_expect_str_eq(it[0].status, "succeeded");
    cr_expect_eq(it[0].amount, 1000);
    cr_expect_str_eq(it[0].payment_id, "pay_6", "the charge's metadata.payment_id");
    cr_expect_str_eq(it[1].refund_id, "re_6b");
    cr_expect_str_eq(it[1].status, "pending");
    cr_expect_eq(it[1].amount, 2500);
    cr_expect_str_eq(it[1].payment_id, "pay_6_override", "the refund's own metadata first");

    /* a charge without metadata: its payment intent is the payment id */
    body = J("{'id':'evt_7','type':'charge.refunded','created':1,'data':{'object':{'id':'ch_7','payment_intent':'pi_7',"
             "'refunds':{'data':[{'id':'re_7','amount':1,'currency':'usd','status':'succeeded'}]}}}}");
    cr_assert_eq(s_ok("stripe", body, NULL, it, WH_MAX_ITEMS), 1);
    cr_expect_str_eq(it[0].payment_id, "pi_7");
    cr_expect_str_eq(it[0].payment_intent, "pi_7");

    /* more refunds than the caller has room for */
    char reason[256];
    size_t n = 99;
    body = J("{'id':'evt_6','type':'charge.refunded','created':1,'data':{'object':{'id':'ch_6','payment_intent':'pi_6',"
             "'refunds':{'data':[{'id':'re_a','amount':1,'currency':'usd','status':'succeeded'},"
             "{'id':'re_b','amount':1,'currency':'usd','status':'succeeded'}]}}}}");
    cr_expect_eq(schema_parse("stripe", body, strlen(body), NULL, it, 1, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "data.object.refunds.data: 2 refunds (limit 1)");
    cr_expect_eq(n, 0);
}

Test(schema, an_unknown_type_is_ignored_not_rejected)
{
    const char *body = J("{'id':'evt_8','type':'customer.created','created':1763719800,'data':{'object':"
                         "{'id':'cus_1','email':'a@example.com'}}}");
    wh_item_t it[1];
    cr_assert_eq(s_ok("stripe", body, NULL, it, 1), 1);
    cr_expect_eq(it[0].kind, WH_IGNORED);
    cr_expect_str_eq(it[0].provider, "stripe");
    cr_expect_str_eq(it[0].event_type, "customer.created");
    cr_expect_str_eq(it[0].psp_event_id, "evt_8");
    cr_expect_eq(it[0].psp_time, 1763719800);
    cr_expect_str_eq(it[0].status, "");
    cr_expect_str_eq(it[0].object_id, "");
    cr_expect_eq(it[0].amount, 0);

    body = J("{'id':'evt_9','type':'payout.paid','created_at':'2026-11-21T10:00:00Z','payout':{'id':'P-1'}}");
    cr_assert_eq(s_ok("standard", body, NULL, it, 1), 1);
    cr_expect_eq(it[0].kind, WH_IGNORED);
    cr_expect_str_eq(it[0].provider, "standard");
    cr_expect_str_eq(it[0].event_type, "payout.paid");
    cr_expect_str_eq(it[0].psp_event_id, "evt_9");
    cr_expect_eq(it[0].psp_time, 1795255200);
}

/* ----------------------------------------------------------- standard */

Test(schema, standard_payout_types)
{
    static const char *types[][2] = {{"payout.failed", "failed"},
                                     {"payout.settlement_failed", "settlement_failed"},
                                     {"payout.reversed", "reversed"}};
    for (int i = 0; i < 3; i++) {
        char sq[1024];
        snprintf(sq, sizeof sq,
                 "{'id':'evt_123','type':'%s','created_at':'2026-11-21T10:00:00Z',"
                 "'payout':{'id':'P-10492','amount':1250000,'currency':'USD','failure_code':'account_closed',"
                 "'failure_message':'Account closed by beneficiary'}}",
                 types[i][0]);
        wh_item_t it[1];
        cr_assert_eq(s_ok("standard", J(sq), "msg_2Lx", it, 1), 1);
        cr_expect_eq(it[0].kind, WH_PAYOUT);
        cr_expect_str_eq(it[0].provider, "standard");
        cr_expect_str_eq(it[0].event_type, types[i][0]);
        cr_expect_str_eq(it[0].psp_event_id, "msg_2Lx", "the webhook-id header, not the body id");
        cr_expect_eq(it[0].psp_time, 1795255200, "2026-11-21T10:00:00Z");
        cr_expect_str_eq(it[0].status, types[i][1]);
        cr_expect_str_eq(it[0].object_id, "P-10492");
        cr_expect_str_eq(it[0].payout_id, "P-10492");
        cr_expect_str_eq(it[0].refund_id, "");
        cr_expect_str_eq(it[0].payment_id, "");
        cr_expect_eq(it[0].amount, 1250000);
        cr_expect_str_eq(it[0].currency, "USD");
        cr_expect_str_eq(it[0].failure_code, "account_closed");
        cr_expect_str_eq(it[0].failure_message, "Account closed by beneficiary");
    }
}

Test(schema, standard_refund_types)
{
    static const char *types[][2] = {
        {"refund.succeeded", "succeeded"}, {"refund.failed", "failed"}, {"refund.pending", "pending"}};
    for (int i = 0; i < 3; i++) {
        char sq[1024];
        snprintf(sq, sizeof sq,
                 "{'id':'evt_124','type':'%s','created_at':'2026-11-21T10:00:00.123456+00:00',"
                 "'refund':{'id':'rf_123','payment_id':'pay_9','amount':1850,'currency':'bhd'}}",
                 types[i][0]);
        wh_item_t it[1];
        cr_assert_eq(s_ok("standard", J(sq), NULL, it, 1), 1);
        cr_expect_eq(it[0].kind, WH_REFUND);
        cr_expect_str_eq(it[0].provider, "standard");
        cr_expect_str_eq(it[0].event_type, types[i][0]);
        cr_expect_str_eq(it[0].psp_event_id, "evt_124", "no webhook-id: the body id");
        cr_expect_eq(it[0].psp_time, 1795255200, "fractions dropped, +00:00 is UTC");
        cr_expect_str_eq(it[0].status, types[i][1]);
        cr_expect_str_eq(it[0].object_id, "rf_123");
        cr_expect_str_eq(it[0].refund_id, "rf_123");
        cr_expect_str_eq(it[0].payment_id, "pay_9");
        cr_expect_str_eq(it[0].payment_intent, "");
        cr_expect_str_eq(it[0].payout_id, "");
        cr_expect_eq(it[0].amount, 1850);
        cr_expect_str_eq(it[0].currency, "BHD");
    }
}

Test(schema, rfc3339_times)
{
    struct {
        const char *t;
        int64_t unix_s;
    } ok[] = {
        {"1970-01-01T00:00:00Z", 0},
        {"2026-11-21T10:00:00z", 1795255200},
        {"2026-11-21t10:00:00.5Z", 1795255200},
        {"2024-02-29T23:59:59Z", 1709251199},
        {"2000-02-29T00:00:00+00:00", 951782400},
    };
    for (size_t i = 0; i < sizeof ok / sizeof ok[0]; i++) {
        char sq[512];
        snprintf(sq, sizeof sq, "{'id':'e','type':'other','created_at':'%s'}", ok[i].t);
        wh_item_t it[1];
        cr_assert_eq(s_ok("standard", J(sq), NULL, it, 1), 1);
        cr_expect_eq(it[0].psp_time, ok[i].unix_s, "%s", ok[i].t);
    }
}

Test(schema, failure_message_is_sanitized_and_truncated_not_rejected)
{
    wh_item_t it[1];
    const char *body =
        J("{'id':'evt_1','type':'payout.failed','created_at':'2026-11-21T10:00:00Z','payout':{'id':'P-1',"
          "'amount':1,'currency':'USD','failure_message':'line one\\nline two\\t\\u0007\\u0085end\\u007f'}}");
    cr_assert_eq(s_ok("standard", body, NULL, it, 1), 1);
    cr_expect_str_eq(it[0].failure_message, "line one line two   end ", "controls became spaces");

    /* 511 bytes fit; a 2-byte character straddling the end is dropped whole */
    char msg[700], sq[1024];
    for (int extra = 0; extra < 2; extra++) {
        memset(msg, 'a', sizeof msg);
        size_t as = 509 + (size_t) extra;
        memcpy(msg + as, "\xc3\xa9zzzz", 7); /* U+00E9 */
        snprintf(sq, sizeof sq,
                 "{'id':'evt_1','type':'payout.failed','created_at':'2026-11-21T10:00:00Z','payout':"
                 "{'id':'P-1','amount':1,'currency':'USD','failure_message':'%s'}}",
                 msg);
        cr_assert_eq(s_ok("standard", J(sq), NULL, it, 1), 1);
        size_t got = strlen(it[0].failure_message);
        if (extra == 0) {
            cr_expect_eq(got, 511, "509 'a' + the whole 2-byte character");
            cr_expect_eq(memcmp(it[0].failure_message + 509, "\xc3\xa9", 2), 0);
        } else {
            cr_expect_eq(got, 510, "the character would not fit whole: cut before it");
            cr_expect_eq(it[0].failure_message[509], 'a');
        }
    }
}

/* ------------------------------------------------------------ rejects */

#define SP(obj) "{'id':'evt_1','type':'payout.failed','created':1700000000,'data':{'object':" obj "}}"
#define SR(obj) "{'id':'evt_1','type':'refund.updated','created':1700000000,'data':{'object':" obj "}}"
#define SC(refunds)                                                                                                    \
    "{'id':'evt_1','type':'charge.refunded','created':1,'data':{'object':{'id':'ch_1','payment_intent':'pi_1','"       \
    "refunds':" refunds "}}}"
#define PO "'id':'po_1','amount':100,'currency':'USD','status':'failed'"
#define RE "'id':'re_1','amount':100,'currency':'USD','payment_intent':'pi_1'"
#define STD(type, rest) "{'id':'evt_1','type':'" type "','created_at':'2026-11-21T10:00:00Z'," rest "}"
#define SPAY "'payout':{'id':'P-1','amount':100,'currency':'USD'}"
#define SREF "'refund':{'id':'rf_1','payment_id':'pay_1','amount':100,'currency':'USD'}"

Test(schema, bad_bodies_are_rejected_with_a_precise_reason)
{
    static const struct {
        const char *provider;
        const char *body; /* single-quoted; NULL: raw */
        const char *raw;
        const char *reason; /* expected substring */
    } bad[] = {
        /* JSON itself */
        {"stripe", "", NULL, "invalid JSON at line 1 column 0: '[' or '{' expected near end of file"},
        {"stripe", "{'id':", NULL, "invalid JSON at line 1 column 6: unexpected token near end of file"},
        {"stripe", SP("{" PO "}") " x", NULL, "invalid JSON at line 1 column"},
        {"stripe", "{'id':'a','id':'b','type':'x','created':1,'data':{'object':{}}}", NULL, "duplicate object key"},
        {"stripe", SP("{" PO ",'amount':5}"), NULL, "duplicate object key"},
        {"stripe", NULL, "{\"id\":\"\xff\"}", "invalid JSON at line 1 column 7: unable to decode byte 0xff"},
        {"stripe", "{'id':'a\\u0000b'}", NULL, "invalid JSON"},
        {"stripe", "[{'id':'evt_1'}]", NULL, "top level: expected an object, got array"},
        {"standard", "'evt_1'", NULL, "invalid JSON"},
        {"stripe", SP("{'id':'po_1','amount':99999999999999999999,'currency':'USD','status':'failed'}"), NULL,
         "too big integer"},
        /* the Stripe envelope */
        {"stripe", "{'type':'payout.failed','created':1,'data':{'object':{}}}", NULL, "missing field id"},
        {"stripe", "{'id':7,'type':'payout.failed','created':1,'data':{'object':{}}}", NULL,
         "id: expected a string, got integer"},
        {"stripe", "{'id':'','type':'payout.failed','created':1,'data':{'object':{}}}", NULL, "id: empty"},
        {"stripe", "{'id':'evt 1','type':'payout.failed','created':1,'data':{'object':{}}}", NULL,
         "id: not printable ASCII without spaces"},
        {"stripe", "{'id':'evt_\\u00e9','type':'payout.failed','created':1,'data':{'object':{}}}", NULL,
         "id: not printable ASCII without spaces"},
        {"stripe", "{'id':'evt_1','created':1,'data':{'object':{}}}", NULL, "missing field type"},
        {"stripe", "{'id':'evt_1','type':['payout.failed'],'created':1,'data':{'object':{}}}", NULL,
         "type: expected a string, got array"},
        {"stripe", "{'id':'evt_1','type':'payout.failed','data':{'object':{}}}", NULL, "missing field created"},
        {"stripe", "{'id':'evt_1','type':'payout.failed','created':1.5,'data':{'object':{}}}", NULL,
         "created: expected an integer (unix seconds), got real"},
        {"stripe", "{'id':'evt_1','type':'payout.failed','created':-1,'data':{'object':{}}}", NULL,
         "created: must be >= 0, got -1"},
        {"stripe", "{'id':'evt_1','type':'payout.failed','created':1}", NULL, "missing field data"},
        {"stripe", "{'id':'evt_1','type':'payout.failed','created':1,'data':{}}", NULL, "missing field data.object"},
        {"stripe", "{'id':'evt_1','type':'payout.failed','created':1,'data':{'object':[]}}", NULL,
         "data.object: expected an object, got array"},
        {"stripe", "{'id':'evt_1','type':'payout.failed','created':1,'data':null}", NULL,
         "data: expected a value, got null"},
        /* payouts */
        {"stripe", SP("{'amount':100,'currency':'USD','status':'failed'}"), NULL, "missing field data.object.id"},
        {"stripe", SP("{'id':'po_1','currency':'USD','status':'failed'}"), NULL, "missing field data.object.amount"},
        {"stripe", SP("{'id':'po_1','amount':12.5,'currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: expected an integer (minor units), got real"},
        {"stripe", SP("{'id':'po_1','amount':12.0,'currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: expected an integer (minor units), got real"},
        {"stripe", SP("{'id':'po_1','amount':1e3,'currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: expected an integer (minor units), got real"},
        {"stripe", SP("{'id':'po_1','amount':-1,'currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: must be >= 0, got -1"},
        {"stripe", SP("{'id':'po_1','amount':'100','currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: expected an integer (minor units), got string"},
        {"stripe", SP("{'id':'po_1','amount':true,'currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: expected an integer (minor units), got boolean"},
        {"stripe", SP("{'id':'po_1','amount':null,'currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: expected a value, got null"},
        {"stripe", SP("{'id':'po_1','amount':9007199254740993,'currency':'USD','status':'failed'}"), NULL,
         "data.object.amount: 9007199254740993 is above 2^53"},
        {"stripe", SP("{'id':'po_1','amount':100,'status':'failed'}"), NULL, "missing field data.object.currency"},
        {"stripe", SP("{'id':'po_1','amount':100,'currency':'usx','status':'failed'}"), NULL,
         "data.object.currency: unknown ISO 4217 code \"USX\""},
        {"stripe", SP("{'id':'po_1','amount':100,'currency':'XAU','status':'failed'}"), NULL,
         "data.object.currency: unknown ISO 4217 code \"XAU\""},
        {"stripe", SP("{'id':'po_1','amount':100,'currency':'US','status':'failed'}"), NULL,
         "data.object.currency: expected a 3-letter ISO 4217 code"},
        {"stripe", SP("{'id':'po_1','amount':100,'currency':'U$D','status':'failed'}"), NULL,
         "data.object.currency: expected a 3-letter ISO 4217 code"},
        {"stripe", SP("{'id':'po_1','amount':100,'currency':840,'status':'failed'}"), NULL,
         "data.object.currency: expected a string, got integer"},
        {"stripe", SP("{'id':'po_1','amount':100,'currency':'USD'}"), NULL, "missing field data.object.status"},
        {"stripe", SP("{" PO ",'object':'refund'}"), NULL, "data.object.object: expected \"payout\""},
        {"stripe", SP("{" PO ",'metadata':'P-1'}"), NULL, "data.object.metadata: expected an object, got string"},
        {"stripe", SP("{" PO ",'metadata':{'payout_id':42}}"), NULL,
         "data.object.metadata.payout_id: expected a string, got integer"},
        {"stripe", SP("{" PO ",'metadata':{'payout_id':''}}"), NULL, "data.object.metadata.payout_id: empty"},
        {"stripe", SP("{" PO ",'failure_code':404}"), NULL, "data.object.failure_code: expected a string, got integer"},
        {"stripe", SP("{" PO ",'failure_message':['x']}"), NULL,
         "data.object.failure_message: expected a string, got array"},
        /* refunds */
        {"stripe", SR("{" RE ",'status':'weird'}"), NULL, "data.object.status: unknown refund status \"weird\""},
        {"stripe", SR("{" RE ",'status':'Succeeded'}"), NULL,
         "data.object.status: unknown refund status \"Succeeded\""},
        {"stripe", SR("{" RE "}"), NULL, "missing field data.object.status"},
        {"stripe", SR("{'id':'re_1','amount':100,'currency':'USD','status':'succeeded'}"), NULL,
         "data.object: refund has neither metadata.payment_id nor payment_intent"},
        {"stripe", SR("{'id':'re_1','amount':100,'currency':'USD','status':'succeeded','metadata':{'other':'x'}}"),
         NULL, "data.object: refund has neither metadata.payment_id nor payment_intent"},
        {"stripe", SR("{" RE ",'status':'succeeded','metadata':{'payment_id':['pay_1']}}"), NULL,
         "data.object.metadata.payment_id: expected a string, got array"},
        {"stripe", SR("{" RE ",'status':'succeeded','object':'payout'}"), NULL,
         "data.object.object: expected \"refund\""},
        {"stripe", SR("{'id':'re_1','amount':100,'currency':'USD','status':'failed','payment_intent':5}"), NULL,
         "data.object.payment_intent: expected a string, got integer"},
        /* charges */
        {"stripe", "{'id':'evt_1','type':'charge.refunded','created':1,'data':{'object':{'id':'ch_1'}}}", NULL,
         "missing field data.object.refunds"},
        {"stripe", SC("{'data':{}}"), NULL, "data.object.refunds.data: expected an array, got object"},
        {"stripe", SC("{'object':'list'}"), NULL, "missing field data.object.refunds.data"},
        {"stripe", SC("{'data':[]}"), NULL, "data.object.refunds.data: empty"},
        {"stripe", SC("{'data':[7]}"), NULL, "data.object.refunds.data[0]: expected an object, got integer"},
        {"stripe", SC("{'data':[{" RE ",'status':'succeeded'},{" RE ",'amount':1.5,'status':'succeeded'}]}"), NULL,
         "duplicate object key"},
        {"stripe",
         SC("{'data':[{" RE
            ",'status':'succeeded'},{'id':'re_2','amount':1.5,'currency':'USD','status':'succeeded'}]}"),
         NULL, "data.object.refunds.data[1].amount: expected an integer (minor units), got real"},
        {"stripe", SC("{'data':[{'id':'re_2','amount':1,'currency':'ZZZ','status':'succeeded'}]}"), NULL,
         "data.object.refunds.data[0].currency: unknown ISO 4217 code \"ZZZ\""},
        /* standard */
        {"standard", STD("payout.failed", SPAY "," SREF), NULL, "expected exactly one of payout/refund, got both"},
        {"standard", STD("refund.succeeded", SPAY), NULL,
         "expected exactly one of payout/refund: type refund.succeeded needs refund, got payout"},
        {"standard", STD("payout.reversed", SREF), NULL,
         "expected exactly one of payout/refund: type payout.reversed needs payout, got refund"},
        {"standard", STD("payout.failed", "'other':1"), NULL,
         "expected exactly one of payout/refund: type payout.failed needs payout, got neither"},
        {"standard", STD("payout.failed", "'payout':[1]"), NULL, "payout: expected an object, got array"},
        {"standard", "{'type':'payout.failed','created_at':'2026-11-21T10:00:00Z'," SPAY "}", NULL, "missing field id"},
        {"standard", "{'id':'evt_1','type':'payout.failed'," SPAY "}", NULL, "missing field created_at"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':1795255200," SPAY "}", NULL,
         "created_at: expected a string, got integer"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'2026-11-21 10:00:00Z'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'2026-11-21T10:00:00+01:00'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'2026-11-21T10:00:00'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'2026-02-29T10:00:00Z'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'2026-11-21T24:00:00Z'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'2026-11-21T10:00:00.Z'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'1969-12-31T23:59:59Z'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", "{'id':'evt_1','type':'payout.failed','created_at':'2026-11-2T10:00:00ZZ'," SPAY "}", NULL,
         "created_at: not an RFC 3339 UTC time"},
        {"standard", STD("payout.failed", "'payout':{'amount':100,'currency':'USD'}"), NULL, "missing field payout.id"},
        {"standard", STD("payout.failed", "'payout':{'id':'P-1','amount':100,'currency':'USX'}"), NULL,
         "payout.currency: unknown ISO 4217 code \"USX\""},
        {"standard", STD("payout.failed", "'payout':{'id':'P-1','amount':-100,'currency':'USD'}"), NULL,
         "payout.amount: must be >= 0, got -100"},
        {"standard", STD("payout.failed", "'payout':{'id':'P-1','amount':100.25,'currency':'USD'}"), NULL,
         "payout.amount: expected an integer (minor units), got real"},
        {"standard", STD("payout.failed", "'payout':{'id':'P-1','amount':100,'currency':'USD','failure_code':'a b'}"),
         NULL, "payout.failure_code: not printable ASCII without spaces"},
        {"standard", STD("refund.failed", "'refund':{'id':'rf_1','amount':100,'currency':'USD'}"), NULL,
         "missing field refund.payment_id"},
        {"standard", STD("refund.failed", "'refund':{'id':'rf_1','payment_id':'pay_1','amount':'1','currency':'USD'}"),
         NULL, "refund.amount: expected an integer (minor units), got string"},
        {"standard", STD("refund.pending", "'refund':{'payment_id':'pay_1','amount':1,'currency':'USD'}"), NULL,
         "missing field refund.id"},
    };
    size_t n_bad = sizeof bad / sizeof bad[0];
    cr_assert_geq(n_bad, 40);
    for (size_t i = 0; i < n_bad; i++) {
        const char *body = bad[i].body ? J(bad[i].body) : bad[i].raw;
        wh_item_t it[WH_MAX_ITEMS];
        char reason[256] = "";
        size_t n = 99;
        int rc = schema_parse(bad[i].provider, body, strlen(body), NULL, it, WH_MAX_ITEMS, &n, reason, sizeof reason);
        cr_expect_eq(rc, -1, "case %zu accepted: %s", i, body);
        cr_expect_eq(n, 0, "case %zu: no items on a reject", i);
        cr_expect(strstr(reason, bad[i].reason) != NULL, "case %zu: reason \"%s\", expected \"%s\"", i, reason,
                  bad[i].reason);
        cr_expect(strchr(reason, '\n') == NULL, "case %zu: one line", i);
    }
}

Test(schema, lower_case_currencies_are_normalised_but_still_checked)
{
    wh_item_t it[1];
    cr_assert_eq(s_ok("stripe", J(SP("{'id':'po_1','amount':100,'currency':'usd','status':'failed'}")), NULL, it, 1),
                 1);
    cr_expect_str_eq(it[0].currency, "USD");
    cr_assert_eq(s_ok("stripe", J(SP("{'id':'po_1','amount':100,'currency':'jPy','status':'failed'}")), NULL, it, 1),
                 1);
    cr_expect_str_eq(it[0].currency, "JPY");
    /* exactly 2^53 is still exact, so still accepted */
    cr_assert_eq(s_ok("stripe", J(SP("{'id':'po_1','amount':9007199254740992,'currency':'usd','status':'failed'}")),
                      NULL, it, 1),
                 1);
    cr_expect_eq(it[0].amount, INT64_C(9007199254740992));
}

Test(schema, limits_on_the_body_the_ids_and_the_refund_count)
{
    char reason[256];
    wh_item_t it[WH_MAX_ITEMS];
    size_t n;

    /* more than 256 KiB is refused before parsing */
    size_t big = 256 * 1024 + 1;
    char *body = malloc(big + 1);
    cr_assert_not_null(body);
    memset(body, ' ', big);
    body[0] = '{';
    body[big - 1] = '}';
    body[big] = '\0';
    cr_expect_eq(schema_parse("stripe", body, big, NULL, it, WH_MAX_ITEMS, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "body is 262145 bytes (limit 262144)");
    free(body);

    /* ids: 127 bytes fit, 128 do not */
    char id[129], sq[512];
    memset(id, 'x', 128);
    id[127] = '\0';
    snprintf(sq, sizeof sq, SP("{'id':'%s','amount':1,'currency':'usd','status':'failed'}"), id);
    cr_assert_eq(s_ok("stripe", J(sq), NULL, it, 1), 1);
    cr_expect_str_eq(it[0].payout_id, id);
    id[127] = 'x';
    id[128] = '\0';
    snprintf(sq, sizeof sq, SP("{'id':'%s','amount':1,'currency':'usd','status':'failed'}"), id);
    cr_expect_eq(schema_parse("stripe", J(sq), strlen(sq), NULL, it, 1, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "data.object.id: longer than 127 bytes");

    /* the webhook-id header, when given, is checked like an id */
    const char *std = J(STD("payout.failed", SPAY));
    cr_expect_eq(schema_parse("standard", std, strlen(std), "msg 1", it, 1, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "webhook-id: not printable ASCII without spaces");

    /* event types must fit the item */
    char type[80];
    memset(type, 't', 64);
    type[64] = '\0';
    snprintf(sq, sizeof sq, "{'id':'e','type':'%s','created':1,'data':{'object':{}}}", type);
    cr_expect_eq(schema_parse("stripe", J(sq), strlen(sq), NULL, it, 1, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "type: longer than 63 bytes");

    /* at most WH_MAX_ITEMS refunds, and never more than the caller's room */
    char refunds[4096] = "";
    for (int i = 0; i < WH_MAX_ITEMS + 1; i++)
        snprintf(refunds + strlen(refunds), sizeof refunds - strlen(refunds),
                 "%s{'id':'re_%d','amount':1,'currency':'usd','status':'succeeded'}", i ? "," : "", i);
    char charge[8192];
    snprintf(charge, sizeof charge, SC("{'data':[%s]}"), refunds);
    const char *json = J(charge);
    cr_expect_eq(schema_parse("stripe", json, strlen(json), NULL, it, WH_MAX_ITEMS, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "data.object.refunds.data: 17 refunds (limit 16)");
    cr_expect_eq(schema_parse("stripe", json, strlen(json), NULL, it, 3, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "data.object.refunds.data: 17 refunds (limit 3)");
    *strstr(refunds, ",{'id':'re_16'") = '\0'; /* 16 refunds */
    snprintf(charge, sizeof charge, SC("{'data':[%s]}"), refunds);
    json = J(charge);
    cr_expect_eq(schema_parse("stripe", json, strlen(json), NULL, it, WH_MAX_ITEMS, &n, reason, sizeof reason), 0, "%s",
                 reason);
    cr_expect_eq(n, WH_MAX_ITEMS);
    cr_expect_str_eq(it[15].refund_id, "re_15");

    cr_expect_eq(schema_parse("paypal", "{}", 2, NULL, it, 1, &n, reason, sizeof reason), -1);
    cr_expect_str_eq(reason, "unknown provider \"paypal\"");
}

/* ------------------------------------------------------ currencies, keys */

Test(schema, iso4217_table)
{
    cr_expect(iso4217_known("USD"));
    cr_expect(iso4217_known("EUR"));
    cr_expect(iso4217_known("AED"), "first of the table");
    cr_expect(iso4217_known("ZWG"), "last of the table");
    cr_expect(iso4217_known("XOF"), "a real X currency");
    cr_expect_not(iso4217_known("usd"), "upper-case only: callers normalise");
    cr_expect_not(iso4217_known("USX"));
    cr_expect_not(iso4217_known("XAU"), "precious metal");
    cr_expect_not(iso4217_known("XDR"), "special drawing right");
    cr_expect_not(iso4217_known("XTS"), "testing");
    cr_expect_not(iso4217_known("USDX"));
    cr_expect_not(iso4217_known(""));
    cr_expect_eq(iso4217_minor_units("USD"), 2);
    cr_expect_eq(iso4217_minor_units("JPY"), 0);
    cr_expect_eq(iso4217_minor_units("KRW"), 0);
    cr_expect_eq(iso4217_minor_units("KWD"), 3);
    cr_expect_eq(iso4217_minor_units("BHD"), 3);
    cr_expect_eq(iso4217_minor_units("CLP"), 0);
    cr_expect_eq(iso4217_minor_units("XAU"), -1);
}

Test(schema, idempotency_keys)
{
    char key[2 * WH_ID_MAX];
    wh_item_t it[WH_MAX_ITEMS];

    /* payout: event id and internal payout id */
    cr_assert_eq(s_ok("standard", J(STD("payout.failed", "'payout':{'id':'P-10492','amount':1,'currency':'USD'}")),
                      "msg_1", it, 1),
                 1);
    idempotency_key(&it[0], key, sizeof key);
    cr_expect_str_eq(key, "msg_1:P-10492");
    cr_assert_eq(s_ok("stripe", J(SP("{" PO ",'metadata':{'payout_id':'P-7'}}")), NULL, it, 1), 1);
    idempotency_key(&it[0], key, sizeof key);
    cr_expect_str_eq(key, "evt_1:P-7");

    /* refund: the event id */
    cr_assert_eq(s_ok("stripe", J(SR("{" RE ",'status':'succeeded'}")), NULL, it, 1), 1);
    idempotency_key(&it[0], key, sizeof key);
    cr_expect_str_eq(key, "evt_1");

    /* a refund fact without an event id (e.g. read back from the PSP by the sweep) */
    wh_item_t swept = {.kind = WH_REFUND, .status = "succeeded", .refund_id = "re_9", .amount = 1850};
    idempotency_key(&swept, key, sizeof key);
    cr_expect_str_eq(key, "re_9:succeeded:1850");

    /* ignored events: the event id */
    cr_assert_eq(s_ok("stripe", J("{'id':'evt_x','type':'ping','created':1,'data':{'object':{}}}"), NULL, it, 1), 1);
    idempotency_key(&it[0], key, sizeof key);
    cr_expect_str_eq(key, "evt_x");
}
