/* psp - a Stripe-like PSP read API (CONTRACT.md §2.3), under /psp.
 *
 *   GET /v1/refunds/{id}  {"id","object":"refund","amount","created","currency","metadata":{"payment_id"},
 *                          "payment_intent","status"}
 *   GET /v1/payouts/{id}  {"id","object":"payout","amount","created","currency","failure_code",
 *                          "failure_message","metadata":{"payout_id"},"status"}
 *   GET /v1/events        Stripe's list of events: {"object":"list","data":[...],"has_more",
 *                         "url":"/v1/events"}, newest first (created, then insertion);
 *                         created[gte], created[lte], limit (1-100, default 10),
 *                         starting_after (an event id: the ones listed after it),
 *                         types[] (repeated: any of them); the events are the seed's
 *                         "events" (seed.c): delivered by webhook or not
 *   GET /v1/events/{id}   one event
 * Currencies are lower-case, as Stripe writes them. Errors have Stripe's
 * shape: 404 {"error":{"type":"invalid_request_error","message":"No such refund: 'x'"}}.
 * Read only: any other method is 405.
 */
#include <assert.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

enum { R_REFUND, R_PAYOUT, R_EVENTS, R_EVENT };

#define PSP_TYPES_MAX 16    /* types[] of one list call */
#define PSP_TYPES_TEXT 1024 /* " t1 t2 ... " */

static const sbx_route_t s_routes[] = {
    [R_REFUND] = {"GET", "/v1/refunds/*"},
    [R_PAYOUT] = {"GET", "/v1/payouts/*"},
    [R_EVENTS] = {"GET", "/v1/events"},
    [R_EVENT] = {"GET", "/v1/events/*"},
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

/* types_t - the types[] arguments of a list call, as " t1 t2 " */
typedef struct {
    char text[PSP_TYPES_TEXT];
    size_t len;
    int n;
    bool over;
} types_t;

/* s_type_arg - libmicrohttpd's argument iterator: collect every types[] */
static enum MHD_Result s_type_arg(void *cls, enum MHD_ValueKind kind, const char *key, const char *value)
{
    (void) kind;
    types_t *t = cls;
    if (strcmp(key, "types[]") != 0 || !value)
        return MHD_YES;
    int w = snprintf(t->text + t->len, sizeof t->text - t->len, "%s%s ", t->len ? "" : " ", value);
    if (++t->n > PSP_TYPES_MAX || w < 0 || t->len + (size_t) w >= sizeof t->text || strchr(value, ' '))
        t->over = true;
    else
        t->len += (size_t) w;
    return MHD_YES;
}

/* s_int_arg - an integer query argument in [lo, hi] (dflt when absent); -1 if malformed */
static int s_int_arg(const sbx_req_t *req, const char *name, long long lo, long long hi, long long dflt, long long *out)
{
    const char *v = sbx_query(req, name);
    char *end = NULL;
    *out = v ? strtoll(v, &end, 10) : dflt;
    return v && (!*v || *end || *out < lo || *out > hi) ? -1 : 0;
}

/* s_events - the list call, newest first, one page */
static int s_events(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    long long gte, lte, limit, c0 = 0, s0 = 0;
    assert(st && req && resp);
    assert(req->route == R_EVENTS);
    if (s_int_arg(req, "created[gte]", 0, INT64_MAX, 0, &gte) ||
        s_int_arg(req, "created[lte]", 0, INT64_MAX, INT64_MAX, &lte))
        return s_stripe_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid created[gte] or created[lte]: unix seconds");
    if (s_int_arg(req, "limit", 1, 100, 10, &limit))
        return s_stripe_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid limit: must be an integer from 1 to 100");
    types_t t = {.len = 0};
    MHD_get_connection_values(req->conn, MHD_GET_ARGUMENT_KIND, s_type_arg, &t);
    if (t.over)
        return s_stripe_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid types[]: at most %d types", PSP_TYPES_MAX);
    const char *after = sbx_query(req, "starting_after");
    if (after) {
        json_t *cur = sbx_db_row(st, "SELECT created, seq FROM psp_events WHERE id = ?", "s", after);
        if (!cur)
            return s_stripe_error(resp, MHD_HTTP_BAD_REQUEST, "Invalid starting_after: no such event: '%.128s'", after);
        c0 = (long long) json_integer_value(json_object_get(cur, "created"));
        s0 = (long long) json_integer_value(json_object_get(cur, "seq"));
        json_decref(cur);
    }
    json_t *rows = sbx_db_rows(st,
                               "SELECT body AS \"json:event\" FROM psp_events WHERE created >= ?1 AND created <= ?2"
                               " AND (?3 = '' OR instr(?3, ' ' || type || ' ') > 0)"
                               " AND (?4 = 0 OR created < ?5 OR (created = ?5 AND seq < ?6))"
                               " ORDER BY created DESC, seq DESC LIMIT ?7",
                               "iisiiii", gte, lte, t.text, (long long) (after != NULL), c0, s0, limit + 1);
    json_t *data = json_array();
    for (size_t i = 0; i < json_array_size(rows) && i < (size_t) limit; i++)
        json_array_append(data, json_object_get(json_array_get(rows, i), "event"));
    bool more = json_array_size(rows) > (size_t) limit;
    assert(json_array_size(data) <= (size_t) limit);
    json_decref(rows);
    return sbx_reply(
        resp, MHD_HTTP_OK,
        json_pack("{s:s, s:o, s:b, s:s}", "object", "list", "data", data, "has_more", more, "url", "/v1/events"));
}

/* s_handle - a refund or payout object, as Stripe serialises it; events */
static int s_handle(sbx_store_t *st, sbx_req_t *req, sbx_resp_t *resp)
{
    json_t *o;
    if (req->route == R_EVENTS)
        return s_events(st, req, resp);
    if (req->route == R_EVENT) {
        o = sbx_db_row(st, "SELECT body AS \"json:event\" FROM psp_events WHERE id = ?", "s", req->ids[0]);
        json_t *e = json_incref(json_object_get(o, "event"));
        json_decref(o);
        if (!e)
            return s_stripe_error(resp, MHD_HTTP_NOT_FOUND, "No such event: '%s'", req->ids[0]);
        return sbx_reply(resp, MHD_HTTP_OK, e);
    }
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
