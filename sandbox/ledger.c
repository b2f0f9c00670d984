/* ledger - the operator's append-only ledger (CONTRACT.md §2.2), under /ledger.
 *
 *   GET  /entries?ref=X   {"entries":[{"id","type","amount","currency","ref","case_id","created_at"}]}
 *                         oldest first; case_id is null for entries not written by a case
 *   GET  /entries/{id}    one entry
 *   POST /entries         {"type","ref","amount","currency","case_id","memo"} -> 201 {"id"}
 *                         the same Idempotency-Key again (same body): 200, same id
 * PUT, PATCH and DELETE answer 405: a wrong entry is corrected by a
 * compensating entry, never changed. POST bodies are checked strictly:
 * type one of the six entry types, amount a positive integer, currency
 * three upper-case letters, ref and case_id non-empty, memo optional,
 * no other field; 400 {"error": reason} otherwise.
 */
#include <string.h>

#include "sandbox.h"

enum { R_LIST, R_POST, R_ONE };

static const sbx_route_t s_routes[] = {
    [R_LIST] = {"GET", "/entries"},
    [R_POST] = {"POST", "/entries"},
    [R_ONE] = {"GET", "/entries/*"},
    {NULL, NULL},
};

#define ENTRY_COLUMNS "id, type, amount, currency, ref, case_id, created_at"

/* s_route - which ledger call; any change of an entry is refused */
static int s_route(sbx_req_t *req, sbx_resp_t *resp)
{
    int rc = sbx_route(req, s_routes);
    if (rc == SBX_NO_METHOD)
        return sbx_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED,
                         "the ledger is append-only: %s is not allowed (post a compensating entry)", req->method);
    return rc >= 0 ? rc : sbx_route_error(rc, req, resp);
}

/* s_post - validate and append one entry */
static int s_post(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    static const char *const fields[] = {"type", "ref", "amount", "currency", "case_id", "memo", NULL};
    char err[256], now[32];
    long long amount;
    const char *type, *ref, *cur, *case_id, *memo;
    json_t *o = req->json;
    if (sbx_only_fields(o, fields, err, sizeof err) || !(type = sbx_str(o, "type", true, true, 64, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (!sbx_in(type, sbx_seed_entry_types()))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST,
                         "type '%s' is not an entry type (payout_paid, payout_reversal, refund_initiated,"
                         " refund_succeeded, refund_failed, refund_reversal)",
                         type);
    if (!(ref = sbx_str(o, "ref", true, true, SBX_ID_MAX, err, sizeof err)) ||
        sbx_amount(o, "amount", &amount, err, sizeof err) ||
        !(cur = sbx_str(o, "currency", true, true, 16, err, sizeof err)) ||
        !(case_id = sbx_str(o, "case_id", true, true, SBX_ID_MAX, err, sizeof err)) ||
        !(memo = sbx_str(o, "memo", false, false, 4096, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (!sbx_currency_ok(cur, false))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "currency '%s' must be three upper-case letters (ISO 4217)", cur);
    sbx_now_rfc3339(now);
    /* one statement names the entry after the seq it gets (AUTOINCREMENT: the
     * largest seq ever + 1), so no half-made row can outlive a failure */
    if (sbx_db_exec(st,
                    "INSERT INTO entries(id, type, ref, amount, currency, case_id, memo, created_at)"
                    " VALUES(printf('le_%06d', " SBX_NEXT_ENTRY_SEQ "),?,?,?,?,?,?,?)",
                    "ssissss", type, ref, amount, cur, case_id, *memo ? memo : NULL, now))
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    return sbx_reply(resp, MHD_HTTP_CREATED,
                     sbx_db_row(st, "SELECT id FROM entries WHERE seq = (SELECT MAX(seq) FROM entries)", ""));
}

/* s_handle - serve one routed ledger call */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    if (req->route == R_POST)
        return s_post(st, req, resp);
    if (req->route == R_ONE) {
        json_t *e = sbx_db_row(st, "SELECT " ENTRY_COLUMNS " FROM entries WHERE id = ?", "s", req->ids[0]);
        if (!e)
            return sbx_error(resp, MHD_HTTP_NOT_FOUND, "no such entry: %s", req->ids[0]);
        return sbx_reply(resp, MHD_HTTP_OK, e);
    }
    const char *ref = sbx_query(req, "ref");
    if (!ref || !*ref)
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "query parameter ref is required (a payout or refund id)");
    if (strlen(ref) > SBX_ID_MAX)
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "ref longer than %d characters", SBX_ID_MAX);
    json_t *rows = sbx_db_rows(st, "SELECT " ENTRY_COLUMNS " FROM entries WHERE ref = ? ORDER BY seq", "s", ref);
    return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:o}", "entries", rows));
}

const sbx_system_t sbx_ledger = {
    .name = "ledger",
    .prefix = "/ledger",
    .auth = true,
    .idempotent_posts = true,
    .replay_201_as_200 = true,
    .route = s_route,
    .handle = s_handle,
};
