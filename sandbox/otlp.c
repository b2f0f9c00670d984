/* otlp - the sandbox as an OpenTelemetry collector, for tests: spans sent
 * over OTLP/HTTP with the JSON encoding are kept in the store.
 *
 *   POST /otlp/v1/traces        an ExportTraceServiceRequest (JSON) -> 200 {}
 *                               (400 for a body that is not one)
 *   GET  /_sandbox/spans[?trace_id=T]   {"spans":[{"service","trace_id",
 *                               "span_id","parent_span_id","name","kind",
 *                               "start_ns","end_ns","attributes"}]} oldest first
 *
 * Point payguard at it with payguard/trace/otlp_endpoint =
 * http://127.0.0.1:<sandbox port>/otlp. The newest SBX_SPANS_KEEP are kept.
 */
#include <string.h>

#include "log.h"
#include "sandbox.h"

/* s_service - the resource's service.name, "" if it has none */
static const char *s_service(json_t *resource)
{
    size_t i;
    json_t *a;
    json_array_foreach(json_object_get(resource, "attributes"), i, a)
    {
        const char *k = json_string_value(json_object_get(a, "key"));
        const char *v = json_string_value(json_object_get(json_object_get(a, "value"), "stringValue"));
        if (k && v && strcmp(k, "service.name") == 0)
            return v;
    }
    return "";
}

/* s_span - keep one span; -1 if it lacks what a span must have */
static int s_span(sbx_store_t *st, const char *service, json_t *s)
{
    const char *tid = json_string_value(json_object_get(s, "traceId"));
    const char *sid = json_string_value(json_object_get(s, "spanId"));
    const char *name = json_string_value(json_object_get(s, "name"));
    const char *start = json_string_value(json_object_get(s, "startTimeUnixNano"));
    const char *end = json_string_value(json_object_get(s, "endTimeUnixNano"));
    const char *parent = json_string_value(json_object_get(s, "parentSpanId"));
    if (!tid || strlen(tid) != 32 || !sid || strlen(sid) != 16 || !name || !start || !end)
        return -1;
    char *attrs = json_dumps(json_object_get(s, "attributes") ? json_object_get(s, "attributes") : json_array(),
                             JSON_COMPACT | JSON_ENCODE_ANY);
    int rc = sbx_db_exec(st,
                         "INSERT INTO spans(service, trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns,"
                         " attributes) VALUES(?,?,?,?,?,?,?,?,?)",
                         "sssssisss", service, tid, sid, parent ? parent : "", name,
                         (long long) json_integer_value(json_object_get(s, "kind")), start, end, attrs ? attrs : "[]");
    free(attrs);
    return rc;
}

/* sbx_otlp - POST /otlp/v1/traces */
void sbx_otlp(sbx_store_t *st, const char *method, const char *body, size_t len, sbx_resp_t *resp)
{
    if (strcmp(method, "POST") != 0) {
        sbx_error(resp, MHD_HTTP_METHOD_NOT_ALLOWED, "%s is not allowed on /otlp/v1/traces", method);
        return;
    }
    json_t *req = json_loadb(body ? body : "", len, 0, NULL);
    json_t *rs = json_object_get(req, "resourceSpans");
    if (!json_is_array(rs)) {
        json_decref(req);
        sbx_error(resp, MHD_HTTP_BAD_REQUEST, "not an ExportTraceServiceRequest: no resourceSpans array");
        return;
    }
    size_t i, j, k, bad = 0, n = 0;
    json_t *r, *ss, *s;
    sbx_store_lock(st);
    json_array_foreach(rs, i, r)
    {
        const char *service = s_service(json_object_get(r, "resource"));
        json_array_foreach(json_object_get(r, "scopeSpans"), j, ss)
            json_array_foreach(json_object_get(ss, "spans"), k, s)
        {
            if (s_span(st, service, s) != 0)
                bad++;
            n++;
        }
    }
    long long last = sbx_db_last_id(st);
    if (last > SBX_SPANS_KEEP)
        sbx_db_exec(st, "DELETE FROM spans WHERE seq <= ?", "i", last - SBX_SPANS_KEEP);
    sbx_store_unlock(st);
    json_decref(req);
    if (bad)
        sbx_error(resp, MHD_HTTP_BAD_REQUEST, "%zu of %zu spans lack traceId, spanId, name or times", bad, n);
    else
        sbx_reply(resp, MHD_HTTP_OK, json_object());
}

/* sbx_otlp_spans - GET /_sandbox/spans */
json_t *sbx_otlp_spans(sbx_store_t *st, const char *trace_id)
{
    json_t *rows = sbx_db_rows(st,
                               "SELECT service, trace_id, span_id, parent_span_id, name, kind, start_ns, end_ns,"
                               " attributes FROM spans WHERE (?1 = '' OR trace_id = ?1) ORDER BY seq",
                               "s", trace_id ? trace_id : "");
    size_t i;
    json_t *row;
    json_array_foreach(rows, i, row)
    {
        json_t *a = json_loads(json_string_value(json_object_get(row, "attributes")), 0, NULL);
        json_object_set_new(row, "attributes", a ? a : json_array());
    }
    return rows;
}
