/* control - the /_sandbox test-fixture API (no auth: the sandbox listens on loopback).
 *
 *   GET    /_sandbox/healthz   200 {"status":"ok"}
 *   GET    /_sandbox/calls[?system=S][&since=SEQ][&limit=N]
 *                              {"calls":[{"seq","time_ms","system","method","path","query",
 *                               "idempotency_key","auth","status","fault_id","request","response"}]}
 *                              oldest first; path is relative to the system's prefix (as a
 *                              fault's path_prefix); auth is "read", "write" or null; request
 *                              and response are JSON when they parse, else strings;
 *                              traceparent the header the call carried (or null)
 *   GET    /_sandbox/spans[?trace_id=T]  the spans the collector took (otlp.c)
 *   POST   /_sandbox/faults    {"system","method"?,"path_prefix"?,"query_has"?,"status","count"?,
 *                               "delay_ms"?,"retry_after_s"?,"after_effect"?} -> 201 {"id"};
 *                              query_has: only calls whose decoded query contains it (e.g.
 *                              "starting_after": the Events API's second page on);
 *                              after_effect true: the call takes effect, then the status is
 *                              answered (an answer lost after the work was done: POSTs,
 *                              status 400-599)
 *   GET    /_sandbox/faults    {"faults":[...]} (those not used up)
 *   DELETE /_sandbox/faults    clears them -> 200 {"deleted":N}
 *   POST   /_sandbox/reset     wipe everything (state, idempotency keys, faults, the LLM
 *                              override, the calls log, whose seq keeps counting) and
 *                              re-seed -> 200 {"reset":true}
 *   POST   /_sandbox/seed      a seed document (see seed.c) -> 200 {"<collection>":count,...}
 *   POST   /_sandbox/stripe/send  {"event","url"?,"secret"?}: keep a Stripe event (the Events
 *                              API lists it) and send it signed as a webhook (stripe.c)
 *   GET    /_sandbox/state     everything, for assertions
 *   POST   /_sandbox/llm       {"content":"<raw>"}: the LLM answers this verbatim from now on
 *   DELETE /_sandbox/llm       back to schema-built answers
 *   POST   /_sandbox/adyen/notify  signs Adyen notification items and sends them to ingest
 *                              (adyen.c; handled before this file, without the store)
 * Errors: 400/404/405 {"error"}. Runs under the store lock (http.c).
 */
#include <ctype.h>
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "sandbox.h"

/* s_query_int - a non-negative integer query argument; -1 if malformed */
static int s_query_int(struct MHD_Connection *conn, const char *name, long long dflt, long long *out)
{
    const char *v = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, name);
    if (!v) {
        *out = dflt;
        return 0;
    }
    char *end = NULL;
    errno = 0;
    long long n = strtoll(v, &end, 10);
    if (!*v || *end || errno || n < 0)
        return -1;
    *out = n;
    return 0;
}

/* s_calls - the calls log, filtered */
static int s_calls(sbx_store_t *st, struct MHD_Connection *conn, sbx_resp_t *resp)
{
    const char *system = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "system");
    long long since, limit;
    if (system && !sbx_system_by_name(system))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "unknown system '%.64s'", system);
    if (s_query_int(conn, "since", 0, &since) || s_query_int(conn, "limit", SBX_CALLS_KEEP, &limit))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "since and limit are non-negative integers");
    return sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:o}", "calls", sbx_store_calls(st, system, since, limit)));
}

/* s_int_field - an optional integer field in [min, max]; -1 + err */
static int s_int_field(json_t *o, const char *key, long long dflt, long long min, long long max, long long *out,
                       char *err, size_t errlen)
{
    json_t *v = json_object_get(o, key);
    if (!v) {
        *out = dflt;
        return 0;
    }
    if (!json_is_integer(v) || json_integer_value(v) < min || json_integer_value(v) > max) {
        snprintf(err, errlen, "%s must be an integer in [%lld, %lld]", key, min, max);
        return -1;
    }
    *out = (long long) json_integer_value(v);
    return 0;
}

/* s_add_fault - validate and store one fault */
static int s_add_fault(sbx_store_t *st, json_t *o, sbx_resp_t *resp)
{
    static const char *const fields[] = {"system",   "method",        "path_prefix",  "status",    "count",
                                         "delay_ms", "retry_after_s", "after_effect", "query_has", NULL};
    static const char *const methods[] = {"GET", "POST", "PUT", "PATCH", "DELETE", NULL};
    char err[256], method[16] = "";
    long long status, count, delay, retry;
    const char *system, *m, *prefix, *qhas;
    if (sbx_only_fields(o, fields, err, sizeof err) ||
        !(system = sbx_str(o, "system", true, true, 32, err, sizeof err)) ||
        !(m = sbx_str(o, "method", false, false, 8, err, sizeof err)) ||
        !(prefix = sbx_str(o, "path_prefix", false, false, 512, err, sizeof err)) ||
        !(qhas = sbx_str(o, "query_has", false, false, 512, err, sizeof err)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (!sbx_system_by_name(system))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST,
                         "unknown system '%s' (payments, ledger, psp, jira, servicenow, teams, llm)", system);
    for (size_t i = 0; m[i] && i < sizeof method - 1; i++)
        method[i] = (char) toupper((unsigned char) m[i]);
    if (*method && !sbx_in(method, methods))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "method must be GET, POST, PUT, PATCH or DELETE");
    if (*prefix && *prefix != '/')
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "path_prefix starts with / (relative to the system's prefix)");
    if (!json_object_get(o, "status"))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "status is required (e.g. 500, 429; 0: answer normally)");
    if (s_int_field(o, "status", 0, 0, 599, &status, err, sizeof err) ||
        s_int_field(o, "count", 1, 1, 1000000, &count, err, sizeof err) ||
        s_int_field(o, "delay_ms", 0, 0, SBX_MAX_DELAY_MS, &delay, err, sizeof err) ||
        s_int_field(o, "retry_after_s", 0, 0, 86400, &retry, err, sizeof err))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    if (status != 0 && status < 100)
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "status is 0 or an HTTP status (100-599)");
    json_t *after = json_object_get(o, "after_effect");
    if (after && !json_is_boolean(after))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "after_effect is true or false");
    if (json_is_true(after) && (status < 400 || !(*method == '\0' || strcmp(method, "POST") == 0)))
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "after_effect needs an error status (400-599) and POST calls");
    if (sbx_db_exec(st,
                    "INSERT INTO faults(system, method, path_prefix, status, remaining, delay_ms, retry_after_s,"
                    " after_effect, query_has) VALUES(?,?,?,?,?,?,?,?,?)",
                    "sssiiiiis", system, *method ? method : NULL, *prefix ? prefix : NULL, status, count, delay, retry,
                    (long long) json_is_true(after), *qhas ? qhas : NULL))
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    return sbx_reply(resp, MHD_HTTP_CREATED, json_pack("{s:I}", "id", (json_int_t) sbx_db_last_id(st)));
}

/* s_seed - load a seed document in one transaction: all or nothing */
static int s_seed(sbx_store_t *st, json_t *doc, sbx_resp_t *resp)
{
    char err[512] = "";
    json_t *counts = json_object();
    if (sbx_store_begin(st) != 0) {
        json_decref(counts);
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    }
    if (sbx_seed_apply(st, doc, counts, err, sizeof err) != 0) {
        sbx_store_rollback(st);
        json_decref(counts);
        return sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", err);
    }
    if (sbx_store_commit(st) != 0) {
        sbx_store_rollback(st);
        json_decref(counts);
        return sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
    }
    return sbx_reply(resp, MHD_HTTP_OK, counts);
}

/* s_state - every table, shaped like the APIs answer, for assertions */
static json_t *s_state(sbx_store_t *st)
{
    json_t *issues = sbx_db_rows(st,
                                 "SELECT id, key, project, summary, description, issuetype, priority,"
                                 " labels AS \"json:labels\", created FROM jira_issues ORDER BY seq",
                                 "");
    size_t i;
    json_t *issue;
    json_array_foreach(issues, i, issue)
    {
        json_object_set_new(issue, "comments",
                            sbx_db_rows(st,
                                        "SELECT id, body, created FROM jira_comments WHERE issue_key = ? ORDER BY seq",
                                        "s", json_string_value(json_object_get(issue, "key"))));
    }
    char *llm = sbx_store_setting_get(st, "sbx_llm_content");
    json_t *out = json_pack(
        "{s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:o, s:I}", "payouts",
        sbx_db_rows(
            st,
            "SELECT id, status, amount, currency, beneficiary_id, held_from AS \"opt:held_from\","
            " hold_case_id AS \"opt:hold_case_id\", hold_reason AS \"opt:hold_reason\" FROM payouts ORDER BY id",
            ""),
        "beneficiaries",
        sbx_db_rows(st,
                    "SELECT id, status, case_id AS \"opt:case_id\", reason AS \"opt:reason\" FROM beneficiaries"
                    " ORDER BY id",
                    ""),
        "payments",
        sbx_db_rows(
            st,
            "SELECT id, amount, currency, customer_id, customer_risk, flagged AS \"bool:flagged\", refunded_amount"
            " FROM payments ORDER BY id",
            ""),
        "psp_refunds",
        sbx_db_rows(st,
                    "SELECT id, 'refund' AS object, amount, created, currency,"
                    " iif(payment_id IS NULL, '{}', json_object('payment_id', payment_id)) AS \"json:metadata\","
                    " payment_intent, status FROM psp_refunds ORDER BY id",
                    ""),
        "psp_payouts",
        sbx_db_rows(st,
                    "SELECT id, 'payout' AS object, amount, created, currency, failure_code, failure_message,"
                    " iif(payout_id IS NULL, '{}', json_object('payout_id', payout_id)) AS \"json:metadata\", status"
                    " FROM psp_payouts ORDER BY id",
                    ""),
        "entries",
        sbx_db_rows(st, "SELECT id, type, amount, currency, ref, case_id, memo, created_at FROM entries ORDER BY seq",
                    ""),
        "comms_blocks",
        sbx_db_rows(st, "SELECT id, ref, case_id, reason, created_at FROM comms_blocks ORDER BY seq", ""),
        "jira_issues", issues, "servicenow_incidents",
        sbx_db_rows(st,
                    "SELECT sys_id, number, short_description, description, urgency, correlation_id,"
                    " correlation_display, created FROM sn_incidents ORDER BY seq",
                    ""),
        "teams_cards",
        sbx_db_rows(st, "SELECT seq, received_at, message AS \"json:message\" FROM teams_cards ORDER BY seq", ""),
        "faults",
        sbx_db_rows(st,
                    "SELECT id, system, method, path_prefix, status, remaining, delay_ms, retry_after_s,"
                    " after_effect AS \"bool:after_effect\" FROM faults ORDER BY id",
                    ""),
        "llm_override", llm ? json_string(llm) : json_null(), "idempotency_keys",
        (json_int_t) sbx_db_int(st, 0, "SELECT COUNT(*) FROM idempotency", ""));
    free(llm);
    return out;
}

/* sbx_control_handle - route a /_sandbox call */
void sbx_control_handle(sbx_store_t *st, const char *method, const char *path, struct MHD_Connection *conn,
                        const char *body, size_t len, sbx_resp_t *resp)
{
    bool get = strcmp(method, "GET") == 0, post = strcmp(method, "POST") == 0, del = strcmp(method, "DELETE") == 0;
    json_t *doc = NULL;
    if (post) {
        json_error_t jerr;
        doc = json_loadb(body ? body : "", len, JSON_REJECT_DUPLICATES, &jerr);
        bool empty_ok = strcmp(path, "/reset") == 0;
        if (!json_is_object(doc) && !(empty_ok && len == 0)) {
            json_decref(doc);
            sbx_error(resp, MHD_HTTP_BAD_REQUEST, "body must be a JSON object: %s", doc ? "not an object" : jerr.text);
            return;
        }
    }
    char err[512] = "";
    if (strcmp(path, "/healthz") == 0 && get)
        sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:s}", "status", "ok"));
    else if (strcmp(path, "/calls") == 0 && get)
        s_calls(st, conn, resp);
    else if (strcmp(path, "/spans") == 0 && get) {
        const char *tid = MHD_lookup_connection_value(conn, MHD_GET_ARGUMENT_KIND, "trace_id");
        sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:o}", "spans", sbx_otlp_spans(st, tid)));
    } else if (strcmp(path, "/faults") == 0 && post)
        s_add_fault(st, doc, resp);
    else if (strcmp(path, "/faults") == 0 && get)
        sbx_reply(resp, MHD_HTTP_OK,
                  json_pack("{s:o}", "faults", sbx_db_rows(st, "SELECT * FROM faults ORDER BY id", "")));
    else if (strcmp(path, "/faults") == 0 && del) {
        long long n = sbx_db_int(st, 0, "SELECT COUNT(*) FROM faults", "");
        sbx_db_exec(st, "DELETE FROM faults", "");
        sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:I}", "deleted", (json_int_t) n));
    } else if (strcmp(path, "/reset") == 0 && post) {
        if (sbx_store_reset(st, err, sizeof err) != 0)
            sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "reset: %s", err);
        else
            sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:b}", "reset", 1));
    } else if (strcmp(path, "/seed") == 0 && post)
        s_seed(st, doc, resp);
    else if (strcmp(path, "/stripe/send") == 0 && post)
        sbx_stripe_send(st, doc, resp);
    else if (strcmp(path, "/state") == 0 && get)
        sbx_reply(resp, MHD_HTTP_OK, s_state(st));
    else if (strcmp(path, "/llm") == 0 && post) {
        const char *content = sbx_str(doc, "content", true, false, SBX_MAX_BODY, err, sizeof err);
        if (!content || json_object_size(doc) != 1)
            sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%s", content ? "only the field content is allowed" : err);
        else if (sbx_store_setting_set(st, "sbx_llm_content", content))
            sbx_error(resp, MHD_HTTP_INTERNAL_SERVER_ERROR, "sandbox storage: %s", sbx_store_error(st));
        else
            sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:s}", "content", content));
    } else if (strcmp(path, "/llm") == 0 && del) {
        sbx_store_setting_set(st, "sbx_llm_content", NULL);
        sbx_reply(resp, MHD_HTTP_OK, json_pack("{s:n}", "content"));
    } else if (sbx_in(path, (const char *const[]){"/healthz", "/calls", "/spans", "/faults", "/reset", "/seed",
                                                  "/state", "/llm", "/stripe/send", NULL}))
        sbx_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on /_sandbox%s", method, path);
    else
        sbx_error(resp, MHD_HTTP_NOT_FOUND, "unknown control path /_sandbox%s", path);
    json_decref(doc);
}
