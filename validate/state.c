/* state - validate's reads of the operator's systems (see state.h) */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "log.h"

/* s_get - GET a JSON object; CHECK_OK + *out, CHECK_REJECT on 404,
 * CHECK_TRANSIENT on anything else (with reason) */
static check_t s_get(httpc_t *h, const char *what, const char *path, const httpc_retry_t *retry, json_t **out,
                     char *reason, size_t reasonlen)
{
    httpc_resp_t resp = {0};
    int rc = httpc_call(h, "GET", path, NULL, NULL, retry, &resp);
    check_t v = CHECK_TRANSIENT;
    if (rc != 0) {
        snprintf(reason, reasonlen, "%s: %s", what,
                 resp.status ? "still failing after retries" : (resp.error[0] ? resp.error : "no answer"));
        if (resp.status)
            snprintf(reason + strlen(reason), reasonlen - strlen(reason), " (HTTP %ld)", resp.status);
    } else if (resp.status == 404) {
        v = CHECK_REJECT;
    } else if (resp.status < 200 || resp.status > 299) {
        /* 401/403/400 from a read: our configuration is wrong, not the webhook */
        snprintf(reason, reasonlen, "%s: HTTP %ld (check outside/* URLs and validate/token_file)", what, resp.status);
        log_error("%s", reason);
    } else {
        json_error_t je;
        *out = json_loadb(resp.body ? resp.body : "", resp.len, 0, &je);
        if (*out && json_is_object(*out))
            v = CHECK_OK;
        else {
            snprintf(reason, reasonlen, "%s: answer is not a JSON object", what);
            json_decref(*out);
            *out = NULL;
        }
    }
    httpc_resp_free(&resp);
    return v;
}

/* s_int - an integer member, or -1 if absent or not an integer */
static int64_t s_int(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_integer(v) ? (int64_t) json_integer_value(v) : -1;
}

/* s_str - a string member or "" */
static const char *s_str(const json_t *o, const char *key)
{
    json_t *v = json_object_get(o, key);
    return json_is_string(v) ? json_string_value(v) : "";
}

/* s_matches - amount and currency of an answer against the event */
static check_t s_matches(const json_t *o, const char *system, const wh_item_t *item, const char *id, char code[40],
                         char *reason, size_t reasonlen)
{
    const char *cur = s_str(o, "currency");
    if (strcasecmp(cur, item->currency) != 0) {
        snprintf(code, 40, "currency_mismatch");
        snprintf(reason, reasonlen, "currency mismatch for %s: event says %s, %s says %s", id, item->currency, system,
                 *cur ? cur : "(none)");
        return CHECK_REJECT;
    }
    int64_t amount = s_int(o, "amount");
    if (amount != item->amount) {
        snprintf(code, 40, "amount_mismatch");
        snprintf(reason, reasonlen, "amount mismatch for %s: event says %lld %s, %s says %lld", id,
                 (long long) item->amount, item->currency, system, (long long) amount);
        return CHECK_REJECT;
    }
    return CHECK_OK;
}

/* s_ledger - GET /entries?ref=<ref> */
static check_t s_ledger(outside_t *out, const char *ref, json_t **ledger, char *reason, size_t reasonlen)
{
    char *esc = httpc_escape(ref);
    char path[512];
    snprintf(path, sizeof path, "/entries?ref=%s", esc);
    free(esc);
    check_t v = s_get(out->ledger, "ledger", path, &out->retry, ledger, reason, reasonlen);
    if (v == CHECK_REJECT) { /* a ledger that 404s a query is broken, not the webhook */
        snprintf(reason, reasonlen, "ledger: GET /entries answered 404");
        return CHECK_TRANSIENT;
    }
    if (v == CHECK_OK && !json_is_array(json_object_get(*ledger, "entries"))) {
        snprintf(reason, reasonlen, "ledger: answer has no entries array");
        return CHECK_TRANSIENT;
    }
    return v;
}

/* s_fetch - GET <prefix><id> from one system; a 404 rejects with code and
 * "unknown <noun> <id>: <who> does not know it" */
static check_t s_fetch(httpc_t *h, const char *what, const char *who, const char *prefix, const char *id,
                       const char *noun, const httpc_retry_t *retry, json_t **out, char code[40], char *reason,
                       size_t reasonlen)
{
    char *esc = httpc_escape(id);
    char path[512];
    snprintf(path, sizeof path, "%s%s", prefix, esc);
    free(esc);
    check_t v = s_get(h, what, path, retry, out, reason, reasonlen);
    if (v == CHECK_REJECT) {
        snprintf(code, 40, "unknown_%s", noun);
        snprintf(reason, reasonlen, "unknown %s %s: %s does not know it", noun, id, who);
    }
    return v;
}

/* s_check_payout - CONTRACT.md §5.1 checks */
static check_t s_check_payout(outside_t *out, const wh_item_t *item, state_t *st, char code[40], char *reason,
                              size_t reasonlen)
{
    check_t v = s_fetch(out->payments, "payments", "the payments API", "/payouts/", item->payout_id, "payout",
                        &out->retry, &st->payout, code, reason, reasonlen);
    if (v != CHECK_OK)
        return v;
    if ((v = s_matches(st->payout, "the payments API", item, item->payout_id, code, reason, reasonlen)) != CHECK_OK)
        return v;
    return s_ledger(out, item->payout_id, &st->ledger, reason, reasonlen);
}

/* s_ledger_has_entries - does the ledger already hold an entry for this refund? */
static bool s_ledger_has_entries(const json_t *ledger)
{
    return json_array_size(json_object_get(ledger, "entries")) > 0;
}

/* s_check_refund - CONTRACT.md §5.2 checks */
static check_t s_check_refund(outside_t *out, const wh_item_t *item, state_t *st, char code[40], char *reason,
                              size_t reasonlen)
{
    check_t v = s_fetch(out->payments, "payments", "the payments API", "/payments/", item->payment_id, "payment",
                        &out->retry, &st->payment, code, reason, reasonlen);
    if (v != CHECK_OK)
        return v;
    const char *pcur = s_str(st->payment, "currency");
    if (strcasecmp(pcur, item->currency) != 0) {
        snprintf(code, 40, "currency_mismatch");
        snprintf(reason, reasonlen, "currency mismatch: refund %s is in %s, payment %s in %s", item->refund_id,
                 item->currency, item->payment_id, *pcur ? pcur : "(none)");
        return CHECK_REJECT;
    }
    v = s_fetch(out->psp, "PSP", "the PSP", "/v1/refunds/", item->refund_id, "refund", &out->retry, &st->psp_refund,
                code, reason, reasonlen);
    if (v != CHECK_OK)
        return v;
    if ((v = s_matches(st->psp_refund, "the PSP", item, item->refund_id, code, reason, reasonlen)) != CHECK_OK)
        return v;
    if ((v = s_ledger(out, item->refund_id, &st->ledger, reason, reasonlen)) != CHECK_OK)
        return v;
    /* refunded_amount already counts this refund once the ledger holds an
     * entry for it; count it once, not twice */
    int64_t payment_amount = s_int(st->payment, "amount");
    int64_t refunded = s_int(st->payment, "refunded_amount");
    if (refunded < 0)
        refunded = 0;
    int64_t others = refunded - (s_ledger_has_entries(st->ledger) ? item->amount : 0);
    if (others < 0)
        others = 0;
    if (payment_amount < 0 || item->amount + others > payment_amount) {
        snprintf(code, 40, "refund_exceeds_payment");
        snprintf(reason, reasonlen, "refund %s of %lld plus %lld already refunded exceeds payment %s of %lld %s",
                 item->refund_id, (long long) item->amount, (long long) others, item->payment_id,
                 (long long) payment_amount, item->currency);
        return CHECK_REJECT;
    }
    return CHECK_OK;
}

/* state_check - see state.h */
check_t state_check(outside_t *out, const wh_item_t *item, state_t *st, char code[40], char *reason, size_t reasonlen)
{
    code[0] = '\0';
    reason[0] = '\0';
    if (item->kind == WH_PAYOUT)
        return s_check_payout(out, item, st, code, reason, reasonlen);
    if (item->kind == WH_REFUND)
        return s_check_refund(out, item, st, code, reason, reasonlen);
    return CHECK_OK;
}

/* state_clear - free what was read */
void state_clear(state_t *st)
{
    json_decref(st->payout);
    json_decref(st->payment);
    json_decref(st->psp_refund);
    json_decref(st->ledger);
    memset(st, 0, sizeof *st);
}

/* state_fetch_psp_refund - the PSP's current word on a refund */
json_t *state_fetch_psp_refund(outside_t *out, const char *refund_id, check_t *verdict, char *reason, size_t reasonlen)
{
    json_t *o = NULL;
    char code[40];
    *verdict = s_fetch(out->psp, "PSP", "the PSP", "/v1/refunds/", refund_id, "refund", &out->retry, &o, code, reason,
                       reasonlen);
    return o;
}
