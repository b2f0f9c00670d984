/* payments - the operator's payments API (CONTRACT.md §2.1), under /payments.
 *
 *   GET  /payouts/{id}                 {"id","status","amount","currency","beneficiary_id"}
 *   POST /payouts/{id}/hold            {"case_id","reason"} -> {"id","status":"on_hold","previous_status"}
 *   POST /payouts/{id}/release         {"case_id","to_status"} -> {"id","status":to_status}
 *   GET  /beneficiaries/{id}           {"id","status"}
 *   POST /beneficiaries/{id}/hold      {"case_id","reason"} -> {"id","status":"on_hold"}
 *   GET  /payments/{id}                {"id","amount","currency","customer_id","customer_risk",
 *                                      "flagged","refunded_amount"}
 *   POST /comms/blocks                 {"ref","case_id","reason"} -> 201 {"id"}
 * Unknown ids: 404 {"error"}. Bodies are decoded strictly (unknown fields: 400).
 */
#include <string.h>

#include "sandbox.h"

enum { R_PAYOUT, R_HOLD, R_RELEASE, R_BENEFICIARY, R_BEN_HOLD, R_PAYMENT, R_BLOCK };

static const sbx_route_t s_routes[] = {
    [R_PAYOUT] = {"GET", "/payouts/*"},
    [R_HOLD] = {"POST", "/payouts/*/hold"},
    [R_RELEASE] = {"POST", "/payouts/*/release"},
    [R_BENEFICIARY] = {"GET", "/beneficiaries/*"},
    [R_BEN_HOLD] = {"POST", "/beneficiaries/*/hold"},
    [R_PAYMENT] = {"GET", "/payments/*"},
    [R_BLOCK] = {"POST", "/comms/blocks"},
    {NULL, NULL},
};

/* s_route - which payments call this is */
static int s_route(sbx_req_t *req, sbx_resp_t *resp)
{
    int rc = sbx_route(req, s_routes);
    return rc >= 0 ? rc : sbx_route_error(rc, req, resp);
}

/* s_payout_json - the payout as GET answers it */
static json_t *s_payout_json(sbx_store_t *st, const char *id)
{
    return sbx_db_row(st, "SELECT id, status, amount, currency, beneficiary_id FROM payouts WHERE id = ?", "s", id);
}

/* s_hold - put a payout on hold and say what it was before (for a release) */
static int s_hold(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    static const char *const fields[] = {"case_id", "reason", NULL};
    char err[256];
    const char *id = req->ids[0], *case_id, *reason;
    if (sbx_only_fields(req->json, fields, err, sizeof err) ||
        !(case_id = sbx_str(req->json, "case_id", true, true, SBX_ID_MAX, err, sizeof err)) ||
        !(reason = sbx_str(req->json, "reason", false, false, 4096, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    json_t *p = s_payout_json(st, id);
    if (!p)
        return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such payout: %s", id);
    const char *prev = json_string_value(json_object_get(p, "status"));
    if (strcmp(prev, "on_hold") != 0 &&
        sbx_db_exec(st,
                    "UPDATE payouts SET status = 'on_hold', held_from = ?, hold_case_id = ?, hold_reason = ?"
                    " WHERE id = ?",
                    "ssss", prev, case_id, reason, id)) {
        json_decref(p);
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    }
    sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:s, s:s, s:s}", "id", id, "status", "on_hold", "previous_status", prev));
    json_decref(p);
    return 0;
}

/* s_release - roll a hold back to the status the caller names */
static int s_release(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    static const char *const fields[] = {"case_id", "to_status", NULL};
    static const char *const states[] = {"pending", "paid", "failed", "reversed", NULL};
    char err[256];
    const char *id = req->ids[0], *to;
    if (sbx_only_fields(req->json, fields, err, sizeof err) ||
        !sbx_str(req->json, "case_id", true, true, SBX_ID_MAX, err, sizeof err) ||
        !(to = sbx_str(req->json, "to_status", true, true, 32, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (!sbx_in(to, states))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "to_status must be pending, paid, failed or reversed");
    json_t *p = s_payout_json(st, id);
    if (!p)
        return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such payout: %s", id);
    const char *now = json_string_value(json_object_get(p, "status"));
    if (strcmp(now, "on_hold") != 0) {
        sbx_error(resp, MHD_HTTP_CONFLICT, "payout %s is not on hold (status %s)", id, now);
        json_decref(p);
        return -1;
    }
    json_decref(p);
    if (sbx_db_exec(st,
                    "UPDATE payouts SET status = ?, held_from = NULL, hold_case_id = NULL, hold_reason = NULL"
                    " WHERE id = ?",
                    "ss", to, id))
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:s, s:s}", "id", id, "status", to));
}

/* s_ben_hold - stop further payouts to a beneficiary */
static int s_ben_hold(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    static const char *const fields[] = {"case_id", "reason", NULL};
    char err[256];
    const char *id = req->ids[0], *case_id, *reason;
    if (sbx_only_fields(req->json, fields, err, sizeof err) ||
        !(case_id = sbx_str(req->json, "case_id", true, true, SBX_ID_MAX, err, sizeof err)) ||
        !(reason = sbx_str(req->json, "reason", false, false, 4096, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (sbx_db_int(st, 0, "SELECT COUNT(*) FROM beneficiaries WHERE id = ?", "s", id) == 0)
        return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such beneficiary: %s", id);
    if (sbx_db_exec(st, "UPDATE beneficiaries SET status = 'on_hold', case_id = ?, reason = ? WHERE id = ?", "sss",
                    case_id, reason, id))
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:s, s:s}", "id", id, "status", "on_hold"));
}

/* s_block - hold customer "refund complete" messages for a ref */
static int s_block(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    static const char *const fields[] = {"ref", "case_id", "reason", NULL};
    char err[256], now[32];
    const char *ref, *case_id, *reason;
    if (sbx_only_fields(req->json, fields, err, sizeof err) ||
        !(ref = sbx_str(req->json, "ref", true, true, SBX_ID_MAX, err, sizeof err)) ||
        !(case_id = sbx_str(req->json, "case_id", true, true, SBX_ID_MAX, err, sizeof err)) ||
        !(reason = sbx_str(req->json, "reason", false, false, 4096, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    sbx_now_rfc3339(now);
    if (sbx_db_exec(st,
                    "INSERT INTO comms_blocks(id, ref, case_id, reason, created_at)"
                    " VALUES(printf('cb_%06d', " SBX_NEXT_SEQ("comms_blocks") "),?,?,?,?)",
                    "ssss", ref, case_id, reason, now))
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    return sbx_reply(resp, MHD_HTTP_CREATED,
                     sbx_db_row(st, "SELECT id FROM comms_blocks WHERE seq = (SELECT MAX(seq) FROM comms_blocks)", ""));
}

/* s_handle - serve one routed payments call */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    json_t *o;
    switch (req->route) {
    case R_PAYOUT:
        if (!(o = s_payout_json(st, req->ids[0])))
            return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such payout: %s", req->ids[0]);
        return sbx_reply(resp, MHD_HTTP_OK, o);
    case R_HOLD:
        return s_hold(st, req, resp);
    case R_RELEASE:
        return s_release(st, req, resp);
    case R_BENEFICIARY:
        if (!(o = sbx_db_row(st, "SELECT id, status FROM beneficiaries WHERE id = ?", "s", req->ids[0])))
            return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such beneficiary: %s", req->ids[0]);
        return sbx_reply(resp, MHD_HTTP_OK, o);
    case R_BEN_HOLD:
        return s_ben_hold(st, req, resp);
    case R_PAYMENT:
        if (!(o = sbx_db_row(st,
                             "SELECT id, amount, currency, customer_id, customer_risk, flagged AS \"bool:flagged\","
                             " refunded_amount FROM payments WHERE id = ?",
                             "s", req->ids[0])))
            return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such payment: %s", req->ids[0]);
        return sbx_reply(resp, MHD_HTTP_OK, o);
    case R_BLOCK:
        return s_block(st, req, resp);
    }
    return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such resource");
}

const sbx_system_t sbx_payments = {
    .name = "payments",
    .prefix = "/payments",
    .auth = true,
    .idempotent_posts = true,
    .route = s_route,
    .handle = s_handle,
};
