/* psp - a Stripe-like PSP read API (CONTRACT.md §2.3), under /psp.
 *
 *   GET /v1/refunds/{id}  {"id","object":"refund","amount","created","currency","metadata":{"payment_id"},
 *                          "payment_intent","status"}
 *   GET /v1/payouts/{id}  {"id","object":"payout","amount","created","currency","failure_code",
 *                          "failure_message","metadata":{"payout_id"},"status"}
 * Currencies are lower-case, as Stripe writes them. Errors have Stripe's
 * shape: 404 {"error":{"type":"invalid_request_error","message":"No such refund: 'x'"}}.
 * Read only: any other method is 405.
 */
#include <stdarg.h>
#include <stdio.h>

#include "sandbox.h"

enum { R_REFUND, R_PAYOUT };

static const sbx_route_t s_routes[] = {
    [R_REFUND] = {"GET", "/v1/refunds/*"},
    [R_PAYOUT] = {"GET", "/v1/payouts/*"},
    {NULL, NULL},
};

/* s_stripe_error - Stripe's error object */
static int s_stripe_error(sbx_resp_t *resp, unsigned status, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(msg, sizeof msg, fmt, ap);
    va_end(ap);
    sbx_reply(resp, status, json_pack("{s:{s:s, s:s}}", "error", "type", "invalid_request_error", "message", msg));
    return -1;
}

/* s_route - the two read calls; Stripe's words for anything else */
static int s_route(sbx_req_t *req, sbx_resp_t *resp)
{
    int rc = sbx_route(req, s_routes);
    if (rc >= 0)
        return rc;
    if (rc == SBX_ID_TOO_LONG)
        return s_stripe_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid id: longer than %d characters", SBX_ID_MAX);
    if (rc == SBX_NO_METHOD)
        return s_stripe_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "This sandbox PSP is read only (%s %s).", req->method,
                              req->path);
    return s_stripe_error(resp, MHD_HTTP_NOT_FOUND, "Unrecognized request URL (%s: %s).", req->method, req->path);
}

/* s_handle - a refund or payout object, as Stripe serialises it */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    json_t *o;
    if (req->route == R_REFUND) {
        o = sbx_db_row(st,
                       "SELECT id, 'refund' AS object, amount, created, currency,"
                       " iif(payment_id IS NULL, '{}', json_object('payment_id', payment_id)) AS \"json:metadata\","
                       " payment_intent, status"
                       " FROM psp_refunds WHERE id = ?",
                       "s", req->ids[0]);
        if (!o)
            return s_stripe_error(resp, MHD_HTTP_NOT_FOUND, "No such refund: '%s'", req->ids[0]);
    } else {
        o = sbx_db_row(st,
                       "SELECT id, 'payout' AS object, amount, created, currency, failure_code, failure_message,"
                       " iif(payout_id IS NULL, '{}', json_object('payout_id', payout_id)) AS \"json:metadata\", status"
                       " FROM psp_payouts WHERE id = ?",
                       "s", req->ids[0]);
        if (!o)
            return s_stripe_error(resp, MHD_HTTP_NOT_FOUND, "No such payout: '%s'", req->ids[0]);
    }
    return sbx_reply(resp, MHD_HTTP_OK, o);
}

const sbx_system_t sbx_psp = {
    .name = "psp",
    .prefix = "/psp",
    .auth = true,
    .idempotent_posts = true,
    .route = s_route,
    .handle = s_handle,
};
