/* state - validate's reads of the operator's systems (see state.h) */
#include "state.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "httpc_multi.h"
#include "log.h"

#include <assert.h>

/* slot - one GET of a read and its answer */
typedef struct {
    state_read_t *r;
    bool used, back;
    int rc;
    httpc_resp_t resp;
} slot_t;

enum { SLOT_PAYMENTS = 0, SLOT_PSP = 1, SLOT_LEDGER = 2, NSLOTS = 3 };

struct state_read_t {
    slot_t slot[NSLOTS];
    size_t outstanding;
    bool abandoned;
    state_done_fn *fn;
    void *user;
};

/* s_release - free a read whose last answer is in (or that never started one) */
static void s_release(state_read_t *r)
{
    for (int i = 0; i < NSLOTS; i++)
        httpc_resp_free(&r->slot[i].resp);
    free(r);
}

/* s_on_answer - one GET is back */
static void s_on_answer(void *user, int rc, httpc_resp_t *resp)
{
    slot_t *sl = user;
    state_read_t *r = sl->r;
    sl->back = true;
    sl->rc = rc;
    sl->resp = *resp;
    r->outstanding--;
    if (r->abandoned || resp->cancelled) {
        if (!r->outstanding && r->abandoned)
            s_release(r);
        return;
    }
    if (!r->outstanding)
        r->fn(r->user);
}

/* s_start - one GET of a read */
static int s_start(outside_t *out, state_read_t *r, int slot, httpc_t *h, int sys, const char *prefix, const char *id,
                   char *reason, size_t reasonlen)
{
    char *esc = httpc_escape(id);
    char path[512];
    snprintf(path, sizeof path, "%s%s", prefix, esc ? esc : "");
    free(esc);
    slot_t *sl = &r->slot[slot];
    sl->r = r;
    sl->used = true;
    char err[256];
    if (httpc_multi_start(out->http, sys, h, "GET", path, NULL, NULL, &out->retry, s_on_answer, sl, err, sizeof err)) {
        snprintf(reason, reasonlen, "cannot start a read: %s", err);
        sl->used = false;
        return -1;
    }
    r->outstanding++;
    return 0;
}

/* state_read_start - see state.h */
state_read_t *state_read_start(outside_t *out, const wh_item_t *item, state_done_fn *fn, void *user, char *reason,
                               size_t reasonlen)
{
    state_read_t *r = calloc(1, sizeof *r);
    assert(r);
    r->fn = fn;
    r->user = user;
    int rc;
    if (item->kind == WH_PAYOUT)
        rc = s_start(out, r, SLOT_PAYMENTS, out->payments, out->sys_payments, "/payouts/", item->payout_id, reason,
                     reasonlen) ||
             s_start(out, r, SLOT_LEDGER, out->ledger, out->sys_ledger, "/entries?ref=", item->payout_id, reason,
                     reasonlen);
    else
        rc = s_start(out, r, SLOT_PAYMENTS, out->payments, out->sys_payments, "/payments/", item->payment_id, reason,
                     reasonlen) ||
             s_start(out, r, SLOT_PSP, out->psp, out->sys_psp, "/v1/refunds/", item->refund_id, reason, reasonlen) ||
             s_start(out, r, SLOT_LEDGER, out->ledger, out->sys_ledger, "/entries?ref=", item->refund_id, reason,
                     reasonlen);
    if (rc) {
        state_read_free(&r);
        return NULL;
    }
    return r;
}

/* state_read_done - see state.h */
bool state_read_done(const state_read_t *r)
{
    return r && r->outstanding == 0;
}

/* state_read_free - see state.h */
void state_read_free(state_read_t **r_p)
{
    state_read_t *r = *r_p;
    if (!r)
        return;
    *r_p = NULL;
    if (r->outstanding) {
        r->abandoned = true; /* the last answer frees it */
        return;
    }
    s_release(r);
}

/* s_get - a slot's answer as a JSON object; CHECK_OK + *out, CHECK_REJECT
 * on 404, CHECK_TRANSIENT on anything else (with reason) */
static check_t s_get(slot_t *sl, const char *what, json_t **out, char *reason, size_t reasonlen)
{
    const httpc_resp_t *resp = &sl->resp;
    check_t v = CHECK_TRANSIENT;
    if (sl->rc != 0) {
        snprintf(reason, reasonlen, "%s: %s", what,
                 resp->status ? "still failing after retries" : (resp->error[0] ? resp->error : "no answer"));
        if (resp->status)
            snprintf(reason + strlen(reason), reasonlen - strlen(reason), " (HTTP %ld)", resp->status);
    } else if (resp->status == 404) {
        v = CHECK_REJECT;
    } else if (resp->status < 200 || resp->status > 299) {
        /* 401/403/400 from a read: our configuration is wrong, not the webhook */
        snprintf(reason, reasonlen, "%s: HTTP %ld (check outside/* URLs and validate/token_file)", what, resp->status);
        log_error("%s", reason);
    } else {
        json_error_t je;
        *out = json_loadb(resp->body ? resp->body : "", resp->len, 0, &je);
        if (*out && json_is_object(*out))
            v = CHECK_OK;
        else {
            snprintf(reason, reasonlen, "%s: answer is not a JSON object", what);
            json_decref(*out);
            *out = NULL;
        }
    }
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

/* s_ledger - the answer of GET /entries?ref=<ref> */
static check_t s_ledger(slot_t *sl, json_t **ledger, char *reason, size_t reasonlen)
{
    check_t v = s_get(sl, "ledger", ledger, reason, reasonlen);
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

/* s_fetch - a slot's object; a 404 rejects with code and "unknown <noun>
 * <id>: <who> does not know it" */
static check_t s_fetch(slot_t *sl, const char *what, const char *who, const char *id, const char *noun, json_t **out,
                       char code[40], char *reason, size_t reasonlen)
{
    check_t v = s_get(sl, what, out, reason, reasonlen);
    if (v == CHECK_REJECT) {
        snprintf(code, 40, "unknown_%s", noun);
        snprintf(reason, reasonlen, "unknown %s %s: %s does not know it", noun, id, who);
    }
    return v;
}

/* s_check_payout - CONTRACT.md §5.1 checks */
static check_t s_check_payout(state_read_t *r, const wh_item_t *item, state_t *st, char code[40], char *reason,
                              size_t reasonlen)
{
    check_t v = s_fetch(&r->slot[SLOT_PAYMENTS], "payments", "the payments API", item->payout_id, "payout", &st->payout,
                        code, reason, reasonlen);
    if (v != CHECK_OK)
        return v;
    if ((v = s_matches(st->payout, "the payments API", item, item->payout_id, code, reason, reasonlen)) != CHECK_OK)
        return v;
    return s_ledger(&r->slot[SLOT_LEDGER], &st->ledger, reason, reasonlen);
}

/* s_ledger_has_entries - does the ledger already hold an entry for this refund? */
static bool s_ledger_has_entries(const json_t *ledger)
{
    return json_array_size(json_object_get(ledger, "entries")) > 0;
}

/* s_check_refund - CONTRACT.md §5.2 checks */
static check_t s_check_refund(state_read_t *r, const wh_item_t *item, state_t *st, char code[40], char *reason,
                              size_t reasonlen)
{
    check_t v = s_fetch(&r->slot[SLOT_PAYMENTS], "payments", "the payments API", item->payment_id, "payment",
                        &st->payment, code, reason, reasonlen);
    if (v != CHECK_OK)
        return v;
    const char *pcur = s_str(st->payment, "currency");
    if (strcasecmp(pcur, item->currency) != 0) {
        snprintf(code, 40, "currency_mismatch");
        snprintf(reason, reasonlen, "currency mismatch: refund %s is in %s, payment %s in %s", item->refund_id,
                 item->currency, item->payment_id, *pcur ? pcur : "(none)");
        return CHECK_REJECT;
    }
    v = s_fetch(&r->slot[SLOT_PSP], "PSP", "the PSP", item->refund_id, "refund", &st->psp_refund, code, reason,
                reasonlen);
    if (v != CHECK_OK)
        return v;
    if ((v = s_matches(st->psp_refund, "the PSP", item, item->refund_id, code, reason, reasonlen)) != CHECK_OK)
        return v;
    if ((v = s_ledger(&r->slot[SLOT_LEDGER], &st->ledger, reason, reasonlen)) != CHECK_OK)
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

/* state_judge - see state.h */
check_t state_judge(state_read_t *r, const wh_item_t *item, state_t *st, char code[40], char *reason, size_t reasonlen)
{
    assert(state_read_done(r));
    code[0] = '\0';
    reason[0] = '\0';
    if (item->kind == WH_PAYOUT)
        return s_check_payout(r, item, st, code, reason, reasonlen);
    if (item->kind == WH_REFUND)
        return s_check_refund(r, item, st, code, reason, reasonlen);
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

/* sweep - one PSP refund read for the sweep */
typedef struct {
    state_refund_fn *fn;
    void *user;
    char id[256];
} sweep_read_t;

/* s_on_refund - the sweep's answer */
static void s_on_refund(void *user, int rc, httpc_resp_t *resp)
{
    sweep_read_t *sr = user;
    if (!resp->cancelled) {
        slot_t sl = {.rc = rc, .resp = *resp, .back = true};
        json_t *o = NULL;
        char code[40], reason[512] = "";
        check_t v = s_fetch(&sl, "PSP", "the PSP", sr->id, "refund", &o, code, reason, sizeof reason);
        sr->fn(sr->user, v == CHECK_OK ? o : NULL, reason);
        if (v != CHECK_OK)
            json_decref(o);
    }
    httpc_resp_free(resp);
    free(sr);
}

/* state_psp_refund_start - see state.h */
int state_psp_refund_start(outside_t *out, const char *refund_id, state_refund_fn *fn, void *user)
{
    sweep_read_t *sr = calloc(1, sizeof *sr);
    assert(sr);
    sr->fn = fn;
    sr->user = user;
    snprintf(sr->id, sizeof sr->id, "%s", refund_id);
    char *esc = httpc_escape(refund_id);
    char path[512], err[256];
    snprintf(path, sizeof path, "/v1/refunds/%s", esc ? esc : "");
    free(esc);
    if (httpc_multi_start(out->http, out->sys_psp, out->psp, "GET", path, NULL, NULL, &out->retry, s_on_refund, sr, err,
                          sizeof err)) {
        log_warn("sweep of refund %s: %s", refund_id, err);
        free(sr);
        return -1;
    }
    return 0;
}
